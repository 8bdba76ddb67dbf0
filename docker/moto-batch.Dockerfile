# syntax=docker/dockerfile:1
# The compose stack's local AWS: moto's server plus the local Batch stand-in, on top of the worker
# image, so that every job face_indexing submits (and every array child) runs as a real worker process
# in this container, on the CPU, with its output in the job's CloudWatch log stream.
#
# Build the worker image first (compose builds this one FROM it):
#   docker compose --profile worker build worker && docker compose build moto
ARG WORKER_IMAGE=faceidx-worker:local
FROM ${WORKER_IMAGE}

USER 0:0
# moto pinned to the release the tests run (requirements.lock); the worker's own pins stay as they are.
RUN uv pip install --python /opt/venv/bin/python "moto[server]==5.2.5"
# The stand-in is plain Python with no dependency beyond moto: only faceidx_dev.local is copied.
COPY dev/faceidx_dev/__init__.py /opt/faceidx/faceidx_dev/__init__.py
COPY dev/faceidx_dev/local /opt/faceidx/faceidx_dev/local
COPY docker/moto_serve.py /faceidx/moto_serve.py
ENV PYTHONPATH=/opt/faceidx \
    FACEIDX_LOCAL_BATCH=1 \
    FACEIDX_WORKER_DIR=/app

USER 10001:10001
ENTRYPOINT ["python", "/faceidx/moto_serve.py"]
