#!/bin/sh
# `sh docker/share-venv-packages.sh FROM_VENV TO_VENV [--dry-run]`: every top-level package
# folder of FROM_VENV's site-packages that TO_VENV holds identically (the same pin in both
# locks: pandas, scipy, pyarrow, SQLAlchemy...; compiled caches aside) becomes a symbolic
# link to TO_VENV's copy, so an image with both venvs stores it once. Each venv keeps its
# own *.dist-info. Run in a build stage that holds both venvs; the runtime stage copies /opt
# as one layer.
set -eu
from="$(echo "$1"/lib/python3*/site-packages)"
to="$(echo "$2"/lib/python3*/site-packages)"
saved=0
for dir in "$from"/*/; do
  name="$(basename "$dir")"
  case "$name" in *.dist-info|__pycache__|_distutils_hack|pip|setuptools|pkg_resources) continue ;; esac
  [ -d "$to/$name" ] && [ ! -L "$from/$name" ] || continue
  diff -r -q -x __pycache__ "$from/$name" "$to/$name" >/dev/null 2>&1 || continue
  kb="$(du -sk "$from/$name" | cut -f1)"
  saved=$((saved + kb))
  echo "shared: $name ($((kb / 1024)) MB)"
  if [ "${3:-}" != "--dry-run" ]; then
    rm -rf "$from/$name"
    ln -s "$to/$name" "$from/$name"
  fi
done
echo "shared: $((saved / 1024)) MB in all"
