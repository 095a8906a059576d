#!/usr/bin/env bash
# Gradient accumulation: an optimizer step over A micro-batches of B samples, reduced once,
# is the step over one batch of A * B samples. Rank r's step b takes shard_r[b*B*A ..
# (b+1)*B*A) (trainer_run.c), so 1 rank x 16 x accumulate 2, 1 rank x 32, 2 ranks x 16 and
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
/usr/bin/python3 - "$dir" np1_b32_a1 np1_b16_a2 np2_b16_a1 np2_b8_a2 <<'PY'
import json, sys
import h5py, numpy as np
root, ref, others = sys.argv[1], sys.argv[2], sys.argv[3:]
def losses(name):
    rows = [json.loads(l) for l in open(f"{root}/{name}/metrics.jsonl")]
    return [r["train_loss"] for r in rows if "train_loss" in r]
def weights(name):
    with h5py.File(f"{root}/{name}/weights.h5", "r") as f:
        out = {}
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
        return out
fails = 0
L0, W0 = losses(ref), weights(ref)
if len(L0) != 20 or not L0[-1] < 0.9 * L0[0]:
    print(f"FAIL: {ref}: expected 20 logged steps with a falling loss, got {L0}")
    sys.exit(1)
for name in others:
    L, W = losses(name), weights(name)
    rel = max(abs(a - b) / abs(a) for a, b in zip(L0, L)) if len(L) == len(L0) else float("inf")
    wrel = max(float(np.max(np.abs(W0[k] - W[k])) / np.max(np.abs(W0[k]))) for k in W0) \
        if sorted(W) == sorted(W0) else float("inf")
    ok = rel <= 1e-5 * (1 + 1e-9) and wrel <= 1e-4  # (1 + 1e-9): 1.00001 vs 1.0 in binary
    fails += not ok
    print(f"{'ok' if ok else 'FAIL'}: {name} vs {ref}: {len(L)} steps, largest relative loss "
          f"difference {rel:.2e} (limit 1e-5), largest relative weight difference {wrel:.2e} (limit 1e-4)")
    if not ok:
        for s, (a, b) in enumerate(zip(L0, L)):
            print(f"  step {s + 1}: {a} {b}")
print(f"{len(others) - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
