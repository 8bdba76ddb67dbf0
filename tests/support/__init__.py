"""Shared test support: the embedded moto server, AWS clients on it, and Airflow DAG runs."""
