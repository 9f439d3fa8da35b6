#!/usr/bin/env bash
# `make images`: build every image of docker-compose.yml on this machine, one per job.
#   personaops-api:$PERSONA_VERSION      03_deployment/api.Dockerfile (api, secrets-check)
#   personaops-app:$PERSONA_VERSION      03_deployment/Dockerfile  (persona CLI: cli,
#                                        bootstrap, mlflow-setup, governance)
#   personaops-mlflow:$PERSONA_VERSION   03_deployment/mlflow.Dockerfile (mlflow server)
#   personaops-mage:$PERSONA_VERSION     02_pipeline/mage.Dockerfile
#   personaops-nginx:$PERSONA_VERSION    03_deployment/nginx.Dockerfile (the front, nginx-light)
#   personaops-local-postgres:15         docker/local/postgres.Dockerfile  (compose.local.yml)
#   personaops-local-gcs:$GCS_EMULATOR_VERSION  docker/local/gcs.Dockerfile (compose.local.yml)
# PYTHON_IMAGE empty (default): the base is the local Debian image of docker/base-image.sh,
# built first if missing; set PYTHON_IMAGE=python:3.11.13-slim-bookworm where Docker Hub
# answers. Builds run with --network host (pip and apt reach the registries as the host
# does). IMAGE_WHEELHOUSE (a folder; empty = off) is filled on the host from the two locks
# with the host's pip (its cache and index settings) and served read-only on
# 127.0.0.1:$IMAGE_WHEELHOUSE_PORT for the duration of the builds: pip in the builds then
# installs from it only (PIP_NO_INDEX), so a cold build downloads nothing twice.
# IMAGES (default: all) names the ones to build: api app mlflow mage nginx postgres gcs.
# Every image gets the label $IMAGE_LABEL; after the builds the dangling ones with it (an
# image a rebuild replaced) are removed, so rebuilds leave none of ours behind. Build-stage
# images carry no label and stay: they are the layer cache.
# Prints one line per image (seconds, size) and writes them to $VAR_DIR/images.json.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${PERSONA_VERSION:-0.1.0}"
GCS_VERSION="$(sed -n 's/^gcp-storage-emulator==//p' requirements/app.lock)"
BASE="${PYTHON_IMAGE:-}"
LOCAL_BASE="${LOCAL_BASE_IMAGE:-personaops-debian-base:bookworm}"
WHEELHOUSE="${IMAGE_WHEELHOUSE-/var/cache/personaops-wheels}"
PORT="${IMAGE_WHEELHOUSE_PORT:-38481}"
HOST_PY="${HOST_PYTHON:-python3.11}"
OUT="${VAR_DIR:-var}/images.json"
LABEL="${IMAGE_LABEL:-org.personaops.project=personaops}"
WANTED=" ${IMAGES:-api app mlflow mage nginx postgres gcs} "

if [[ -z "$BASE" ]]; then
  LOCAL_BASE_IMAGE="$LOCAL_BASE" bash docker/base-image.sh
  BASE="$LOCAL_BASE"
fi

args=(--network host --label "$LABEL")
server=""
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; true; }
trap cleanup EXIT
if [[ -n "$WHEELHOUSE" ]]; then
  mkdir -p "$WHEELHOUSE"
  t0=$SECONDS
  # Filled once per content of the two locks (pip download re-asks the index for every pin).
  # Not in the locks (pip freeze leaves setuptools out): the project's build backend, and
  # the setuptools mage-ai pins (mage-ai 0.9.80 requires setuptools==70.0.0).
  # Debian's Python is 3.11.2: redis wants async-timeout below 3.11.3 (the freeze was made
  # on a newer 3.11, so it lacks it).
  EXTRA_WHEELS=('setuptools>=68' wheel 'setuptools==70.0.0' 'async-timeout==5.0.1')
  stamp="$WHEELHOUSE/.filled-$( (cat requirements/app.lock 02_pipeline/requirements-mage.txt; echo "${EXTRA_WHEELS[*]}") | sha256sum | cut -c1-16)"
  if [[ ! -e "$stamp" ]]; then
    # --no-deps: each lock is a complete freeze; the project's build backend comes along.
    # The spark extra (pyspark, an sdist, and py4j) is not in any image.
    for lock in requirements/app.lock 02_pipeline/requirements-mage.txt; do
      "$HOST_PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELHOUSE" \
        -r <(grep -v -E '^(pyspark|py4j)==' "$lock") 2> >(grep -v 'is ignored' >&2)
    done
    "$HOST_PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELHOUSE" \
      "${EXTRA_WHEELS[@]}" 2> >(grep -v 'is ignored' >&2)
    touch "$stamp"
  fi
  echo "images: wheelhouse $WHEELHOUSE ready in $((SECONDS - t0)) s ($(ls "$WHEELHOUSE" | wc -l) files)"
  setsid "$HOST_PY" -m http.server "$PORT" --bind 127.0.0.1 --directory "$WHEELHOUSE" \
    >/dev/null 2>&1 </dev/null &
  server=$!
  for _ in $(seq 1 50); do
    "$HOST_PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/', timeout=1)" \
      2>/dev/null && break
    sleep 0.2
  done
  # The Mage env's stage declares no PIP_NO_INDEX: the index stays its fallback (its freeze
  # was made on a newer 3.11 than Debian's 3.11.2, whose markers may want one pin more).
  args+=(--build-arg "PIP_FIND_LINKS=http://127.0.0.1:$PORT/" --build-arg PIP_NO_INDEX=1)
fi

declare -A secs
build() {  # name tag dockerfile context [extra args...]
  local name="$1" tag="$2" file="$3" ctx="$4"
  shift 4
  [[ "$WANTED" == *" $name "* ]] || return 0
  local t0=$SECONDS log
  log="$(mktemp)"
  echo "images: building $tag ($file)"
  # The classic builder: dockerd 20.10's BuildKit needs the buildx plugin on a 2x CLI.
  if ! DOCKER_BUILDKIT=0 docker build "${args[@]}" "$@" -t "$tag" -f "$file" "$ctx" >"$log" 2>&1; then
    tail -40 "$log" >&2
    rm -f "$log"
    echo "images: building $tag failed" >&2
    exit 1
  fi
  rm -f "$log"
  secs[$tag]=$((SECONDS - t0))
}

py=(--build-arg "PYTHON_IMAGE=$BASE")
build api "personaops-api:$VERSION" 03_deployment/api.Dockerfile . "${py[@]}"
build app "personaops-app:$VERSION" 03_deployment/Dockerfile . "${py[@]}"
build mlflow "personaops-mlflow:$VERSION" 03_deployment/mlflow.Dockerfile . "${py[@]}"
mage_args=("${py[@]}")
# Debian's Python 3.11.2 is below soupsieve 4.1.3's declared Requires-Python (>=3.11.5).
[[ "$BASE" == "$LOCAL_BASE" ]] && mage_args+=(--build-arg PIP_IGNORE_REQUIRES_PYTHON=1)
build mage "personaops-mage:$VERSION" 02_pipeline/mage.Dockerfile . "${mage_args[@]}"
build nginx "personaops-nginx:$VERSION" 03_deployment/nginx.Dockerfile 03_deployment \
  --build-arg "BASE_IMAGE=$BASE"
build postgres "personaops-local-postgres:15" docker/local/postgres.Dockerfile docker/local \
  --build-arg "BASE_IMAGE=$BASE"
build gcs "personaops-local-gcs:$GCS_VERSION" docker/local/gcs.Dockerfile docker/local \
  --build-arg "BASE_IMAGE=$BASE" --build-arg "GCS_EMULATOR_VERSION=$GCS_VERSION"

# The images these builds replaced (untagged now, with our label): nothing else uses them.
pruned="$(docker image prune --force --filter "label=$LABEL" | tail -1)"
echo "images: removed our dangling images: ${pruned:-none}"

mkdir -p "$(dirname "$OUT")"
{
  echo "{"
  first=1
  for tag in "${!secs[@]}"; do
    size="$(docker image inspect -f '{{.Size}}' "$tag")"
    ((first)) || echo ","
    first=0
    printf '  "%s": {"build_s": %s, "size_mb": %s}' "$tag" "${secs[$tag]}" "$((size / 1000000))"
    printf 'images: %-40s %5s s %6s MB\n' "$tag" "${secs[$tag]}" "$((size / 1000000))" >&2
  done
  echo
  echo "}"
} >"$OUT"
