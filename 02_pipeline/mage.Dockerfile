# PersonaOps Mage image: two virtualenvs that cannot be merged (conflicting pins):
#   /opt/app-venv   the `persona` package from this repo (requirements/app.txt)
#   /opt/mage-venv  mage-ai from 02_pipeline/requirements-mage.txt
# Mage blocks send cycle steps to `$PERSONA_BIN cycle serve` (the app env's `persona`).
#   docker build -f 02_pipeline/mage.Dockerfile -t personaops-mage:0.1.0 .
# Where python:*-slim cannot be pulled, `make images` passes the local Debian base
# (docker/base-image.sh) and a wheelhouse on loopback (PIP_FIND_LINKS + PIP_NO_INDEX).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# --- app env: the persona package --------------------------------------------------------
FROM ${PYTHON_IMAGE} AS app-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
RUN python -m venv /opt/app-venv
WORKDIR /src
COPY requirements/app.txt docker/slim-venv.sh ./
# Same steps as 03_deployment/Dockerfile's build stage (the layer cache shares them):
# the locked set, checked complete; a change under src/ reuses this layer.
RUN /opt/app-venv/bin/pip install --no-deps -r app.txt \
 && /opt/app-venv/bin/pip check \
 && sh slim-venv.sh /opt/app-venv
# The package as a wheel beside the venv (see 03_deployment/Dockerfile): a change under src/
# leaves the venv layers cached.
COPY pyproject.toml README.m[d] ./
COPY src/ src/
RUN /opt/app-venv/bin/pip wheel --no-deps --wheel-dir /wheels .

# --- mage env: mage-ai with its own pins ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS mage-build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# No PIP_NO_INDEX here: the index is the fallback for what the wheelhouse lacks.
ARG PIP_FIND_LINKS
# Set by `make images` on the Debian base only: its Python is 3.11.2 and the lock (frozen on
# a newer 3.11) holds soupsieve 4.1.3, which declares Requires-Python >=3.11.5.
ARG PIP_IGNORE_REQUIRES_PYTHON
RUN python -m venv /opt/mage-venv
COPY 02_pipeline/requirements-mage.txt docker/slim-venv.sh /tmp/
RUN /opt/mage-venv/bin/pip install -r /tmp/requirements-mage.txt \
 && sh /tmp/slim-venv.sh /opt/mage-venv

# --- envs: both venvs, the packages they pin alike stored once --------------------------
# pandas, scipy, pyarrow, SQLAlchemy... have the same pin in both locks: the Mage env's copy
# becomes a link to the app env's (about 450 MB less; docker/share-venv-packages.sh).
FROM ${PYTHON_IMAGE} AS envs
COPY --from=app-build /opt/app-venv /opt/app-venv
COPY --from=mage-build /opt/mage-venv /opt/mage-venv
COPY docker/share-venv-packages.sh /tmp/
RUN sh /tmp/share-venv-packages.sh /opt/mage-venv /opt/app-venv

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid ${APP_UID} persona \
 && useradd --system --uid ${APP_UID} --gid persona --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin persona
# Least often changed first: the two envs, then the package wheel
# and the Mage project (a source change rebuilds only those small layers).
COPY --from=envs /opt/app-venv /opt/app-venv
COPY --from=envs /opt/mage-venv /opt/mage-venv
RUN mkdir -p /app/var/mage_data && chown -R persona:persona /app/var
COPY --from=app-build /wheels/ /tmp/wheels/
RUN /opt/app-venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl \
 && rm -rf /tmp/wheels \
 && /opt/app-venv/bin/persona --help >/dev/null \
 && /opt/mage-venv/bin/python -c "import pandas, pyarrow.parquet, scipy.stats, sqlalchemy, mage_ai"
WORKDIR /app
COPY 01_model/personas.yaml 01_model/personas.yaml
# The Mage project (Mage writes block versions next to it, so the user owns it).
COPY --chown=persona:persona 02_pipeline/ 02_pipeline/
ENV PATH=/opt/mage-venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    PERSONA_BIN=/opt/app-venv/bin/persona \
    MAGE_VENV=/opt/mage-venv \
    MAGE_DATA_DIR=/app/var/mage_data \
    VAR_DIR=/app/var \
    PERSONA_CATALOG=/app/01_model/personas.yaml \
    MAGE_HOST=0.0.0.0 \
    MAGE_PORT=6789
USER persona
EXPOSE 6789
HEALTHCHECK --interval=20s --timeout=6s --start-period=90s --retries=5 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/status' % os.environ.get('MAGE_PORT', '6789'), timeout=5)"]
CMD ["bash", "02_pipeline/start_mage.sh"]
