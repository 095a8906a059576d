#!/usr/bin/env bash
# Gradient accumulation: an optimizer step over A micro-batches of B samples, reduced once,
# is the step over one batch of A * B samples. Rank r's step b takes shard_r[b*B*A ..
# (b+1)*B*A) (trainer_step.c), so 1 rank x 16 x accumulate 2, 1 rank x 32, 2 ranks x 16 and
# 2 ranks x 8 x accumulate 2 all train on the same 32 samples each step: their 20 losses
# must agree within 1e-5 (relative) and their final weights within 1e-4.
# Usage: train_accumulate.sh MPIEXEC STRATA CONFIG
set -euo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # NAME NP BATCH ACCUMULATE
    "$mpiexec" -n "$2" --oversubscribe "$strata" train "$config" --set run.dir="$dir/$1" \
        --set data.batch_size="$3" --set train.accumulate="$4" > "$dir/$1.log" 2>&1 ||
        { cat "$dir/$1.log"; echo "FAIL: $1: strata train exited non-zero"; exit 1; }
}
run np1_b32_a1 1 32 1
run np1_b16_a2 1 16 2
run np2_b16_a1 2 16 1
run np2_b8_a2 2 8 2
/usr/bin/python3 - "$(dirname "$0")" "$dir" np1_b32_a1 np1_b16_a2 np2_b16_a1 np2_b8_a2 <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from compare_runs import compare
root, ref, others = sys.argv[2], sys.argv[3], sys.argv[4:]
fails, W0 = compare(root, ref, others, 20)
print(f"{len(others) - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
