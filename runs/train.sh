#!/bin/sh
# Train WaveGrad with torchrun: one process per visible GPU (one process on a CPU-only machine).
# Run from the repository root; extra arguments go to `wavegrad train` (e.g. --resume,
# --set training_config.max_steps=100; see `python -m wavegrad train --help`).
# Several machines: run this on each with the same MASTER_ADDR/MASTER_PORT/NNODES and NODE_RANK 0..NNODES-1.
CONFIG=${CONFIG:-configs/default.json}
EXP=${EXP:-}                        # logs/<EXP>; empty: training_config.logdir
export CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-0}   # e.g. "0,1,2,3"; empty: CPU
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}

set -e
NPROC=$(python -c "import torch; print(max(torch.cuda.device_count(), 1))")
exec torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NPROC" \
    --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
    -m wavegrad train -c "$CONFIG" ${EXP:+--exp "$EXP"} "$@"
