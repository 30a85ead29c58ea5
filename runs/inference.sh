#!/bin/sh
# Render mel files with a noise schedule, with the reference's flags:
#   sh runs/inference.sh -c configs/default.json -ch logs/default/checkpoint_10000.pt \
#       -ns schedules/6iters.pt -m mels.txt [-v yes|no] [--out-dir DIR] [--device cpu]
# Every argument goes to `wavegrad inference`; CUDA_VISIBLE_DEVICES defaults to the first GPU, as the reference.
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-0}
exec python3 -m wavegrad inference "$@"
