#!/usr/bin/env bash
# Local Debian base image for machines that cannot pull python:*-slim-bookworm (no Docker Hub):
# a minimal bookworm root file system made by debootstrap from Debian's packages (Python
# 3.11, venv, CA certificates), imported with `docker import`. The mirror is the one this
# machine's apt sources name (docker/debian-mirror.sh; DEBIAN_MIRROR overrides it); the
# image's own apt sources point at it too. The Dockerfiles take it as
# their PYTHON_IMAGE build argument (`make images`); production keeps the official images.
#   bash docker/base-image.sh          # builds $LOCAL_BASE_IMAGE unless it exists
#   bash docker/base-image.sh --force  # rebuilds it
# This machine's extra CA certificates (/usr/local/share/ca-certificates: a TLS-inspecting
# egress) go into the image's trust store, and PIP_CERT points pip at that store, so pip and
# apt inside `docker build --network host` reach the registries the way the host does.
set -euo pipefail

IMAGE="${LOCAL_BASE_IMAGE:-personaops-debian-base:bookworm}"
SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

if [[ "${1:-}" != "--force" ]] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base: $IMAGE exists ($(docker image inspect -f '{{.Created}}' "$IMAGE"))"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "base: debootstrap missing (bash docker/engine.sh install)" >&2; exit 1; }
# The machine's own Debian mirror (its apt sources), or DEBIAN_MIRROR.
MIRROR="$(bash "$(dirname "$0")/debian-mirror.sh" "$SUITE")"

root="$(mktemp -d /var/tmp/personaops-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
start=$SECONDS
echo "base: debootstrap $SUITE ($PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 \
  || { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
# Smaller image: no apt lists, caches, docs or man pages (apt-get update restores the lists).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/*
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  --change 'CMD ["python3"]' \
  - "$IMAGE" >/dev/null
echo "base: $IMAGE built in $((SECONDS - start)) s: $(docker run --rm "$IMAGE" python --version)"
