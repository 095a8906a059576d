#!/usr/bin/env bash
# Data parallelism changes nothing but the speed: the same global batch (64) and seed on 1,
# 2 and 4 ranks give the same loss at each of 20 steps (relative difference at most 1e-5)
# and close final weights (largest difference of any tensor at most 1e-4 of that tensor's
# largest magnitude). Two more 2-rank runs must match as well: without overlap, and with
# buckets of 1000 floats (boundaries inside groups).
# Usage: train_equiv.sh MPIEXEC STRATA CONFIG
set -euo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # NAME NP ARGS...
    local name=$1 np=$2
    shift 2
    "$mpiexec" -n "$np" --oversubscribe "$strata" train "$config" --set run.dir="$dir/$name" \
        --set data.batch_size=$((64 / np)) "$@" > "$dir/$name.log" 2>&1 ||
        { cat "$dir/$name.log"; echo "FAIL: $name: strata train exited non-zero"; exit 1; }
}
run np1 1
run np2 2
run np4 4
run np2_no_overlap 2 --no-overlap
run np2_buckets 2 --set comm.bucket_mb=0.003814697265625 # 1000 floats
/usr/bin/python3 - "$dir" np1 np2 np4 np2_no_overlap np2_buckets <<'PY'
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
# The counters of the last step: every group sends its whole slab each step, in one
# collective with the default 4 MiB buckets, in ceil(numel / 1000) with buckets of 1000.
def comm(name):
    rows = [json.loads(l) for l in open(f"{root}/{name}/metrics.jsonl")]
    return rows[-1]["comm"]
numel = [c["bytes"] // (4 * 20) for c in comm("np2")]
total = sum(int(np.prod(v.shape)) for v in W0.values())
want_default = [(20 * n * 4, 20) for n in numel]
want_buckets = [(20 * n * 4, 20 * -(-n // 1000)) for n in numel]
for name, want in (("np2", want_default), ("np2_buckets", want_buckets)):
    got = [(c["bytes"], c["collectives"]) for c in comm(name)]
    ok = got == want and sum(numel) == total
    fails += not ok
    print(f"{'ok' if ok else 'FAIL'}: {name}: (bytes, collectives) per group after 20 steps {got}, "
          f"expected {want}; {sum(numel)} parameters in the counters, {total} in weights.h5")
print(f"{len(others) + 2 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
