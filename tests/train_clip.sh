#!/usr/bin/env bash
# Clipping by global norm: plain SGD (no momentum, no weight decay) with lr 1 and
# train.clip_norm 1e-3 moves the weights by exactly lr * clip_norm in global L2 norm per step
# (the unclipped gradient is far larger), on 1 and on 2 ranks (clipping after the reduction),
# and by at most 5 * lr * clip_norm over 5 steps. The start weights come from the same run
# with lr 1e-30. With the body frozen the norm is over the head alone: the body does not move.
# Without clipping the same step moves the weights by more than 10 * clip_norm.
# Usage: train_clip.sh MPIEXEC STRATA CONFIG
set -euo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # NAME NP STEPS ARGS...
    local name=$1 np=$2 steps=$3
    shift 3
    "$mpiexec" -n "$np" --oversubscribe "$strata" train "$config" --set run.dir="$dir/$name" \
        --set data.batch_size=$((32 / np)) --set train.max_steps="$steps" --set groups.momentum=0 \
        --set groups.wd=0 "$@" > "$dir/$name.log" 2>&1 ||
        { cat "$dir/$name.log"; echo "FAIL: $name: strata train exited non-zero"; exit 1; }
}
run start 1 1 --set groups.lr=1e-30 # (lr 0 is refused; this moves nothing that matters)
run clip1 1 1 --set groups.lr=1 --set train.clip_norm=0.001
run clip2 2 1 --set groups.lr=1 --set train.clip_norm=0.001
run clip5 1 5 --set groups.lr=1 --set train.clip_norm=0.001
run frozen 2 1 --set groups.lr=1 --set train.clip_norm=0.001 --set groups.freeze_to=-1
run noclip 1 1 --set groups.lr=1
STRATA_TESTS=$(dirname "$0") /usr/bin/python3 - "$dir" <<'PY'
import os, sys
import numpy as np
sys.path.insert(0, os.environ["STRATA_TESTS"])
from strata_h5 import tensors
root = sys.argv[1]
def weights(name):
    return {k: v.astype(np.float64) for k, v in tensors(f"{root}/{name}/weights.h5").items()}
W0 = weights("start")
def moved(name, keys=None):
    W = weights(name)
    return float(np.sqrt(sum(np.sum((W[k] - W0[k]) ** 2) for k in (keys or W0))))
c = 1e-3
head = [k for k in W0 if k.startswith("head.")]
body = [k for k in W0 if not k.startswith("head.")]
checks = [
    ("1 rank, 1 step: moved by lr * clip_norm", moved("clip1"), lambda d: abs(d - c) <= 1e-3 * c),
    ("2 ranks, 1 step: moved by lr * clip_norm", moved("clip2"), lambda d: abs(d - c) <= 1e-3 * c),
    ("1 rank, 5 steps: moved by at most 5 * lr * clip_norm", moved("clip5"), lambda d: 0 < d <= 5 * c * (1 + 1e-3)),
    ("body frozen: the head moved by lr * clip_norm", moved("frozen", head), lambda d: abs(d - c) <= 1e-3 * c),
    ("body frozen: the body did not move", moved("frozen", body), lambda d: d <= 1e-20),
    ("no clipping: moved by more than 10 * clip_norm", moved("noclip"), lambda d: d > 10 * c),
]
fails = 0
for what, d, ok in checks:
    good = bool(head) and bool(body) and ok(d)
    fails += not good
    print(f"{'ok' if good else 'FAIL'}: {what} ({d:.6g})")
print(f"{len(checks) - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
