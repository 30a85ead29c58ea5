#!/bin/sh
# On a lent GPU machine (the device tool; torch with CUDA is already there, nothing is installed): train
# the small config on the GPU for MINUTES (fp16 autocast + GradScaler, batch BATCH) from INIT's weights,
# export the newest checkpoint, then run the CUDA tests. Weights, logs and the test log land in $OUT.
#   run: OUT=$OUT sh runs/gpu_check.sh      (from the repository root)
set -e
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
MINUTES=${MINUTES:-7}
BATCH=${BATCH:-96}
INIT=${INIT:-pretrained/small_16k.pt}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# The CPU time of a GPU training process tracks its wall time: max_cpu_seconds caps the run.
python3 -m wavegrad train -c configs/small_16k.yaml --device cuda --init-from "$INIT" \
    --set training_config.logdir="$OUT/run" --set training_config.batch_size="$BATCH" \
    --set training_config.max_cpu_seconds="$((MINUTES * 60))" --set training_config.checkpoint_interval=200 \
    --set training_config.num_workers=4 --set training_config.test_interval=50 2>&1 | tr '\r' '\n' \
    | grep -v 'step/s\]$' | tee "$OUT/train.log"
python3 -m wavegrad export -ch "$(ls "$OUT"/run/checkpoint_*.pt | sort -V | tail -1)" -o "$OUT/small_16k_gpu.pt"
rm -f "$OUT"/run/checkpoint_*.pt
python3 -m pytest -q -rs tests/test_cuda.py 2>&1 | tee "$OUT/cuda_tests.log"
