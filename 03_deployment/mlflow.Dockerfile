# PersonaOps MLflow server image: `mlflow server` (the stack's `mlflow` service) with its
# basic-auth app, the registry in PostgreSQL (psycopg2) and the artifacts in GCS
# (google-cloud-storage), pinned by requirements/mlflow.txt (a subset of
# requirements/app.lock). Without what only MLflow's model flavours and job runner import
# (scikit-learn, scipy, matplotlib, pyarrow, huey...): the server never loads a
# model. The persona package (no dependencies) for its `persona.mlflow_server` wrapper.
#   docker build -f 03_deployment/mlflow.Dockerfile -t personaops-mlflow:0.1.0 .
# Where python:*-slim cannot be pulled, `make images` passes the local Debian base
# (docker/base-image.sh) and a wheelhouse on loopback (PIP_FIND_LINKS + PIP_NO_INDEX).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build --------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN python -m venv /opt/mlflow-venv
WORKDIR /src
COPY requirements/mlflow.txt docker/slim-venv.sh ./
RUN /opt/mlflow-venv/bin/pip install --no-deps -r mlflow.txt \
 && SLIM_DROP_SETUPTOOLS=1 sh slim-venv.sh /opt/mlflow-venv
COPY pyproject.toml README.m[d] ./
COPY src/ src/
RUN /opt/mlflow-venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid ${APP_UID} persona \
 && useradd --system --uid ${APP_UID} --gid persona --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin persona
COPY --from=build /opt/mlflow-venv /opt/mlflow-venv
# /app/var: the server's `mlflowauth` volume (basic-auth's SQLite users; docker/mlflow).
RUN mkdir -p /app/var && chown -R persona:persona /app/var
COPY --from=build /wheels/ /tmp/wheels/
# The server's app (basic-auth, PostgreSQL, GCS) must import without the left-out packages.
RUN /opt/mlflow-venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/mlflow-venv/bin/python -c "import persona.mlflow_server, mlflow.server.auth, mlflow.server.fastapi_app, psycopg2, google.cloud.storage"
WORKDIR /app
ENV PATH=/opt/mlflow-venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER persona
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=3)"]
CMD ["python", "-m", "persona.mlflow_server", "--host=0.0.0.0", "--port=5000"]
