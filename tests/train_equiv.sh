#!/usr/bin/env bash
# Data parallelism changes nothing but the speed: the same global batch (64) and seed on 1,
# 2 and 4 ranks give the same loss at each of 20 steps (relative difference at most 1e-5)
# and close final weights (largest difference of any tensor at most 1e-4 of that tensor's
# largest magnitude). Two more 2-rank runs must match as well: without overlap, and with
# buckets of 1000 floats (boundaries inside groups); and so must runs on 1, 2 and 4 ranks
# with the communication thread (comm.progress: thread).
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
for np in 1 2 4; do run np${np}_thread $np --set comm.progress=thread; done
/usr/bin/python3 - "$(dirname "$0")" "$dir" np1 np2 np4 np2_no_overlap np2_buckets np1_thread \
    np2_thread np4_thread <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from compare_runs import compare
from strata_h5 import group_numel
root, ref, others = sys.argv[2], sys.argv[3], sys.argv[4:]
fails, W0 = compare(root, ref, others, 20)
# The counters of the last step: every group sends its whole slab each step, in one
# collective with the default 4 MiB buckets, in ceil(numel / 1000) with buckets of 1000.
# numel per group comes from the parameter shapes of the 1-rank run's weights.h5, not from
# any counter.
def comm(name):
    rows = [json.loads(l) for l in open(f"{root}/{name}/metrics.jsonl")]
    return rows[-1]["comm"]
numel = group_numel(f"{root}/{ref}/weights.h5")
total = sum(int(np.prod(v.shape)) for v in W0.values())
want_default = [(20 * n * 4, 20) for n in numel]
want_buckets = [(20 * n * 4, 20 * -(-n // 1000)) for n in numel]
for name, want in (("np2", want_default), ("np2_buckets", want_buckets),
                   ("np2_thread", want_default), ("np4_thread", want_default)):
    got = [(c["bytes"], c["collectives"]) for c in comm(name)]
    ok = got == want and sum(numel) == total
    fails += not ok
    print(f"{'ok' if ok else 'FAIL'}: {name}: (bytes, collectives) per group after 20 steps {got}, "
          f"expected {want}; {sum(numel)} parameters in the counters, {total} in weights.h5")
print(f"{len(others) + 4 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
