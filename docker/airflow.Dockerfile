# syntax=docker/dockerfile:1
# The Airflow image of docker-compose.yaml: the official image extended with faceidx, the way
# https://airflow.apache.org/docs/docker-stack/build.html extends it. Build context: the repository root
# (docker/airflow.Dockerfile.dockerignore keeps the context to the few files copied below).
#
#   docker compose build                      # what `docker compose up` does when the image is missing
#   docker build -f docker/airflow.Dockerfile -t faceidx-airflow:3.3.2 .
#
# The tag must match the apache-airflow pin of requirements.txt (tests/docker checks it).
FROM apache/airflow:3.3.2-python3.11

# Our requirements, with Airflow pinned in the same install (AIRFLOW_VERSION is set by the base image),
# so resolving them can never up- or downgrade Airflow. requirements.lock, the resolution the test
# suite runs on, constrains every shared dependency to the version we test.
COPY --chown=airflow:0 requirements.txt requirements.lock /opt/faceidx/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /opt/faceidx/requirements.txt -c /opt/faceidx/requirements.lock

# The faceidx package, installed in editable mode from the plugins folder: the triggerer imports
# faceidx's triggers as an installed package, and compose mounts ./plugins over /opt/airflow/plugins so
# every component runs the checked-out code without a rebuild. The DAGs and the infra/ specs (read from
# beside plugins/, as in the repository) are copied too, so the image also runs without the mounts.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:0 plugins/faceidx /opt/airflow/plugins/faceidx
# The worker's model code, installed with faceidx: face_search runs the same detector and recognizer.
COPY --chown=airflow:0 worker/faceidx_worker /opt/airflow/worker/faceidx_worker
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 infra /opt/airflow/infra
RUN pip install --no-cache-dir --no-deps --editable /opt/airflow \
    && python -c "import faceidx.indexing.triggers, faceidx_worker.model"
