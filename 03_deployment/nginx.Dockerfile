# PersonaOps front: Debian's nginx-light with 03_deployment/nginx.conf, in front of the API
# container (the stack's `nginx` service). The whole nginx runs as an unprivileged user
# (master and workers), listens on 8080 and answers every error it makes itself as JSON.
#   docker build -f 03_deployment/nginx.Dockerfile -t personaops-nginx:0.1.0 03_deployment
# Where debian:*-slim cannot be pulled, `make images` passes the local Debian base.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG NGINX_UID=10002
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled /etc/nginx/conf.d \
 && groupadd --system --gid ${NGINX_UID} front \
 && useradd --system --uid ${NGINX_UID} --gid front --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin front
COPY nginx.conf /etc/nginx/nginx.conf
USER front
RUN nginx -e stderr -t -c /etc/nginx/nginx.conf
EXPOSE 8080
# nginx stops at once on SIGQUIT (graceful: open requests finish) and on SIGTERM (fast).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /_nginx/health HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200 '"]
CMD ["nginx", "-e", "stderr", "-c", "/etc/nginx/nginx.conf"]
