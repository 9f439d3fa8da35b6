#!/usr/bin/env bash
# Docker engine for `make images` / the container e2e test on a machine without one.
#   bash docker/engine.sh install   # apt: docker.io (dockerd 20.10) + debootstrap; compose v2 plugin
#   bash docker/engine.sh start     # dockerd --data-root $DOCKER_DATA_ROOT (no-op if an engine answers)
#   bash docker/engine.sh stop      # stops the dockerd THIS script started (pid file), nothing else
#   bash docker/engine.sh status
# Idempotent. The data root defaults to /var/lib/personaops-docker so the layer cache
# survives fresh clones (CI); set DOCKER_DATA_ROOT to put it elsewhere (e.g. var/docker).
# Compose v2 is Debian trixie's `docker-compose` package (a static Go binary), fetched with
# `apt-get download` against a source list kept apart from the system's and unpacked into
# ~/.docker/cli-plugins/ (bookworm's docker-compose 1.29 cannot read docker-compose.yml),
# from the Debian mirror of the machine's apt sources (docker/debian-mirror.sh, or
# DEBIAN_MIRROR).
set -euo pipefail

DATA_ROOT="${DOCKER_DATA_ROOT:-/var/lib/personaops-docker}"
RUN_DIR="${DOCKER_RUN_DIR:-/run/personaops-docker}"
PID_FILE="$RUN_DIR/dockerd.pid"
LOG_FILE="$RUN_DIR/dockerd.log"
START_TIMEOUT_S="${DOCKER_START_TIMEOUT_S:-120}"
COMPOSE_VERSION="${DOCKER_COMPOSE_DEB_VERSION:-}"   # empty = what trixie ships
PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
APT=(apt-get -o DPkg::Lock::Timeout=600 -qq)

log() { echo "engine: $*" >&2; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

install_packages() {
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v debootstrap >/dev/null || need+=(debootstrap)
  if ((${#need[@]})); then
    log "installing ${need[*]} (Debian)"
    "${APT[@]}" update
    DEBIAN_FRONTEND=noninteractive "${APT[@]}" install -y --no-install-recommends "${need[@]}"
  fi
  command -v docker >/dev/null || { log "no docker CLI after install"; exit 1; }
}

install_compose() {
  if docker compose version >/dev/null 2>&1; then
    return 0
  fi
  log "installing the compose v2 plugin from Debian trixie's docker-compose package"
  local dir
  dir="$(mktemp -d)"
  trap 'rm -rf "$dir"' RETURN
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/extract"
  # A source list of its own: the system's apt stays on bookworm.
  # The main archive of this machine's own apt sources (or DEBIAN_MIRROR).
  local codename mirror
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
  mirror="$(bash "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh" "$codename")"
  cat >"$dir/trixie.sources" <<EOF
Types: deb
URIs: $mirror
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local opts=(-o "Dir::Etc::sourcelist=$dir/trixie.sources" -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o "APT::Get::List-Cleanup=0"
    -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
  apt-get -qq "${opts[@]}" update
  (cd "$dir" && apt-get -qq "${opts[@]}" download "docker-compose${COMPOSE_VERSION:+=$COMPOSE_VERSION}")
  dpkg-deb -x "$dir"/docker-compose_*.deb "$dir/extract"
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$dir/extract/usr/libexec/docker/cli-plugins/docker-compose" \
    "$PLUGIN_DIR/docker-compose"
  docker compose version
}

start() {
  if engine_answers; then
    log "an engine already answers: $(docker info -f '{{.ServerVersion}} {{.DockerRootDir}}')"
    return 0
  fi
  mkdir -p "$DATA_ROOT" "$RUN_DIR"
  log "starting dockerd (data root $DATA_ROOT, log $LOG_FILE)"
  # setsid: the daemon outlives this shell; its pid file is ours to stop it by.
  setsid dockerd --data-root "$DATA_ROOT" --pidfile "$PID_FILE" \
    >>"$LOG_FILE" 2>&1 </dev/null &
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until engine_answers; do
    if ((SECONDS > deadline)); then
      log "dockerd did not answer within ${START_TIMEOUT_S}s (DOCKER_START_TIMEOUT_S); log:"
      tail -20 "$LOG_FILE" >&2
      exit 1
    fi
    sleep 1
  done
  log "up: $(docker info -f '{{.ServerVersion}} {{.Driver}} cgroup v{{.CgroupVersion}}')"
}

stop() {
  if [[ ! -s "$PID_FILE" ]]; then
    log "no dockerd started by this script (no $PID_FILE)"
    return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  if ! kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid is not running"
    rm -f "$PID_FILE"
    return 0
  fi
  log "stopping dockerd $pid"
  kill -TERM "$pid"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      log "dockerd $pid did not stop within ${START_TIMEOUT_S}s"
      exit 1
    fi
    sleep 1
  done
  rm -f "$PID_FILE"
}

case "${1:-}" in
  install) install_packages; install_compose ;;
  start) start ;;
  stop) stop ;;
  status)
    if engine_answers; then
      docker info -f 'engine {{.ServerVersion}}, data root {{.DockerRootDir}}, {{.ContainersRunning}} running'
    else
      echo "engine: not running"
      exit 3
    fi
    ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
