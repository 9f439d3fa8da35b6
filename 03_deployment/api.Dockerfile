# PersonaOps API image: gunicorn serving the champion and nothing else (the stack's `api`
# service, behind its nginx). Only what `persona.serving` imports: numpy, Flask, gunicorn,
# orjson, pydantic, PyYAML, prometheus-client, SQLAlchemy (Settings parses DATABASE_URL with
# it) and MLflow's client (mlflow-skinny: the alias and the model's JSON artifact, through
# the MLflow server's artifact proxy), pinned by requirements/api.txt (a subset of
# requirements/app.lock). No pandas, scikit-learn, Evidently, database driver or cloud SDK:
# the persona package is installed without its dependencies, so the training, monitoring
# and store code it carries cannot even import. One layer (FROM scratch), under 300 MB.
#   docker build -f 03_deployment/api.Dockerfile -t personaops-api:0.1.0 .
# Where python:*-slim cannot be pulled, `make images` passes the local Debian base
# (docker/base-image.sh) and a wheelhouse on loopback (PIP_FIND_LINKS + PIP_NO_INDEX).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- build: the serving dependencies in a venv, the package as a wheel ---------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN python -m venv /opt/app-venv
WORKDIR /src
COPY requirements/api.txt docker/slim-venv.sh ./
RUN /opt/app-venv/bin/pip install --no-deps -r api.txt \
 && SLIM_DROP_SETUPTOOLS=1 sh slim-venv.sh /opt/app-venv
COPY pyproject.toml README.m[d] ./
COPY src/ src/
RUN /opt/app-venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- runtime-fs: the file system of the image -------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime-fs
ARG APP_UID=10001
RUN groupadd --system --gid ${APP_UID} persona \
 && useradd --system --uid ${APP_UID} --gid persona --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin persona
COPY --from=build /opt/app-venv /opt/app-venv
WORKDIR /app
COPY 01_model/personas.yaml 01_model/personas.yaml
# /app/var: the api's state volume (a named volume copies this folder's owner, so the app
# user can write its model cache there).
RUN mkdir -p /app/var/model-cache && chown -R persona:persona /app/var
# The package (the serving app must import), then what serving never uses goes: pip,
# the base's translations and venv wheels, apt's caches.
COPY --from=build /wheels/ /tmp/wheels/
RUN /opt/app-venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/app-venv/bin/python -c "import persona.serving.app, persona.registry_read, gunicorn" \
 && /opt/app-venv/bin/pip uninstall -q -y pip \
 && rm -rf /usr/share/locale/* /usr/share/python-wheels /var/lib/apt/lists/* /var/cache/apt/*
COPY 03_deployment/gunicorn.conf.py 03_deployment/wsgi.py 03_deployment/

# --- runtime: that file system as one layer (the base's deleted files are not kept below) --
FROM scratch AS runtime
COPY --from=runtime-fs / /
WORKDIR /app
ENV PATH=/opt/app-venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    VAR_DIR=/app/var \
    PERSONA_CATALOG=/app/01_model/personas.yaml \
    MODEL_CACHE_DIR=/app/var/model-cache \
    API_HOST=0.0.0.0 \
    API_PORT=8000
USER persona
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('API_PORT', '8000'), timeout=3)"]
CMD ["gunicorn", "-c", "03_deployment/gunicorn.conf.py", "--chdir", "03_deployment", "wsgi:app"]
