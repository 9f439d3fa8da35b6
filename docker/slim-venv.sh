#!/bin/sh
# `sh docker/slim-venv.sh VENV`: remove from a virtualenv what never runs, in the build
# stage before the runtime stage copies it: the test suites that numpy, pandas, scipy,
# scikit-learn, matplotlib, pyarrow and dask ship inside their packages (nothing imports
# them; Evidently's `tests` package is its API and stays), pyarrow's C++ headers and sources
# (for building extensions against it), and setuptools when nothing needs it at
# run time (SLIM_DROP_SETUPTOOLS=1: pip builds the project's wheel in its own isolated env).
set -eu
venv="$1"
for sp in "$venv"/lib/python3*/site-packages; do
  for pkg in numpy pandas scipy sklearn matplotlib pyarrow dask; do
    if [ -d "$sp/$pkg" ]; then
      find "$sp/$pkg" -depth -type d -name tests -exec rm -rf {} +
    fi
  done
  rm -rf "$sp/pyarrow/include" "$sp/pyarrow/src"
done
if [ "${SLIM_DROP_SETUPTOOLS:-0}" = 1 ]; then
  "$venv/bin/pip" uninstall -q -y setuptools
fi
du -sh "$venv"
