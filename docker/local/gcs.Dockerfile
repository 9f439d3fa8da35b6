# GCS emulator (gcp-storage-emulator from PyPI, the one `make up` and the integration tests
# run) for machines that cannot pull fsouza/fake-gcs-server. Same contract for the stack:
# the JSON API on port 4443, one bucket ($GCS_BUCKET), non-root (65534). Objects are kept on
# disk under /data (the stack mounts its `gcsdata` volume there), so model artifacts
# survive `docker compose down` / `up` like the registry in PostgreSQL does.
#   docker build --network host --build-arg BASE_IMAGE=personaops-debian-base:bookworm \
#     -f docker/local/gcs.Dockerfile -t personaops-local-gcs:2026.7.19 docker/local
ARG BASE_IMAGE=python:3.11.13-slim-bookworm
FROM ${BASE_IMAGE}
ARG GCS_EMULATOR_VERSION=2026.7.19
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN python -m venv /opt/gcs-venv \
 && /opt/gcs-venv/bin/pip install "gcp-storage-emulator==${GCS_EMULATOR_VERSION}"
RUN mkdir -p /data && chown 65534:65534 /data
ENV PATH=/opt/gcs-venv/bin:$PATH PYTHONUNBUFFERED=1 GCS_BUCKET=persona-mlflow-artifacts \
    STORAGE_BASE=/data
USER 65534:65534
EXPOSE 4443
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4443/storage/v1/b', timeout=2)"]
CMD ["sh", "-c", "exec gcp-storage-emulator start --host=0.0.0.0 --port=4443 --default-bucket=\"$GCS_BUCKET\""]
