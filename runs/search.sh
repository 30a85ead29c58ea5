#!/bin/sh
# Search the 6-, 7- and 12-iteration schedules (grid + refinement) and the 25-iteration one (Fibonacci
# initialisation + refinement) for a trained checkpoint; the 25-step schedule is also repeated to 50, 100, 1000.
#   CHECKPOINT=pretrained/small_16k.pt sh runs/search.sh [extra `wavegrad search` flags]
# Resumable: rerunning skips every candidate already in schedules/<n>iters.stats.jsonl.
CHECKPOINT=${CHECKPOINT:-}
CONFIG=${CONFIG:-}                  # only for reference-format checkpoints
CLIPS=${CLIPS:-filelists/test.txt}  # held-out audio to score on
OUT_DIR=${OUT_DIR:-schedules}
JOBS=${JOBS:-2}
if [ -z "$CHECKPOINT" ]; then
    echo "usage: CHECKPOINT=path/to/checkpoint.pt [CLIPS=...] [OUT_DIR=...] [JOBS=...] sh runs/search.sh [flags]" >&2
    exit 2
fi
set -e
for N in 6 7 12; do
    python3 -m wavegrad search ${CONFIG:+-c "$CONFIG"} -ch "$CHECKPOINT" -n "$N" --clips "$CLIPS" --jobs "$JOBS" \
        --out "$OUT_DIR/${N}iters.pt" "$@"
done
python3 -m wavegrad search ${CONFIG:+-c "$CONFIG"} -ch "$CHECKPOINT" -n 25 --init fibonacci --clips "$CLIPS" \
    --jobs "$JOBS" --out "$OUT_DIR/25iters.pt" --repeat 2 4 40 "$@"
