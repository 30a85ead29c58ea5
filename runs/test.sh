#!/bin/sh
# Installs the package with its test extras (CPU torch first, never the CUDA build) and runs the test suite.
set -e
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test,hubert]"
sh runs/install_trackers.sh
python3 -m pytest "$@"
