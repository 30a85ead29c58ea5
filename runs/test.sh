#!/bin/sh
# Installs the package with its test extras (CPU torch first, never the CUDA build) and runs the test suite.
set -e
cd "$(dirname "$0")/.."
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test,hubert]"
# crepe and fcpe pitch: their packages declare torchaudio (which would pull another torch); voiceconv
# works without it, so they are installed without dependencies.
python3 -m pip install --quiet --no-deps torchcrepe==0.0.24 resampy==0.4.3 torchfcpe==0.0.4 \
    local-attention==1.11.2 hyper-connections==0.4.11 einops==0.8.2
python3 -m pytest "$@"
