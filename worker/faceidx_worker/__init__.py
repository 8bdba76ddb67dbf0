"""faceidx worker: long-polls SQS, indexes faces with insightface, writes Parquet. No Airflow here."""
