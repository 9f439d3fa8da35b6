# PostgreSQL 15 from Debian's packages, with the contract of the official postgres image that
# docker-compose.yml relies on: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA at
# /var/lib/postgresql/data, /docker-entrypoint-initdb.d scripts run once on an empty volume,
# pg_isready on PATH. For machines that cannot pull postgres:15.13-bookworm (`make images`).
#   docker build --network host --build-arg BASE_IMAGE=personaops-debian-base:bookworm \
#     -f docker/local/postgres.Dockerfile -t personaops-local-postgres:15 docker/local
ARG BASE_IMAGE=debian:12.11-slim
FROM ${BASE_IMAGE}
# Debian creates a "main" cluster on install unless told not to; the entrypoint makes PGDATA.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-common \
 && sed -ri 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data \
 && chmod 2777 /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=3s --retries=20 CMD pg_isready -q -U "${POSTGRES_USER:-postgres}"
ENTRYPOINT ["bash", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
