#!/bin/sh
# The end-to-end demo on the bundled voices (about 9 minutes on 2 CPU cores after installing; more with --retrain-vocoder).
# Installs CPU PyTorch first (never the CUDA build), then the package with its evaluation extras and the
# fcpe pitch tracker.
# Outputs go to logs/demo/ (git-ignored); --refresh-samples also copies them into generated_samples/.
set -e
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[eval]"
sh runs/install_trackers.sh
python3 runs/demo.py "$@"
