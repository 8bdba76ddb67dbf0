"""faceidx: Airflow 3 DAGs, sensors and hooks that turn images uploaded to S3 into a face index.

Importing this package imports nothing heavy: DAG files import from it at parse time.
"""

__version__ = "0.1.0"
