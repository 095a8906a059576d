#!/usr/bin/env bash
# Exact resume: training 2N steps straight gives bitwise the same weights, BatchNorm buffers,
# optimizer state, RNG states and train state as N steps, a stop, a resume and the rest, on
# the same number of ranks; resuming mid-epoch, in the second phase, with dropout and BN.
# Then a resume on another world size keeps the global batch and finishes.
# Usage: ckpt_resume.sh MPIEXEC STRATA CONFIG NP
set -euo pipefail
mpiexec=$1 strata=$2 config=$3 np=$4
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # NAME NP ARGS...
    local name=$1 n=$2
    shift 2
    "$mpiexec" -n "$n" --oversubscribe "$strata" train "$config" --set run.dir="$dir/$name" \
        --set data.batch_size=$((32 / n)) "$@" >> "$dir/$name.log" 2>&1 ||
        { cat "$dir/$name.log"; echo "FAIL: $name: strata train $* exited non-zero"; exit 1; }
}
final() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }

run straight "$np"
run split "$np" --stop-after 12
grep -q "stopped after global step 12" "$dir/split.log" || { cat "$dir/split.log"; echo "FAIL: no stop at step 12"; exit 1; }
# The stopped run's newest checkpoint is mid-epoch (step 4 of 8) of phase 2.
"$strata" inspect "$(final "$dir/split")" | grep -q "in progress; phase 1, epoch 1 (0 done in the phase), step 4 of 8" ||
    { "$strata" inspect "$(final "$dir/split")"; echo "FAIL: unexpected position"; exit 1; }
run split "$np" --resume auto
grep -q "resuming at phase 2, epoch 1 of the phase, step 5 of the epoch (global step 13)" "$dir/split.log" ||
    { cat "$dir/split.log"; echo "FAIL: did not resume at step 13"; exit 1; }
/usr/bin/python3 "$here/ckpt_compare.py" "$(final "$dir/straight")" "$(final "$dir/split")"
# metrics.jsonl continues the history: one line per step and one per validation, none twice.
steps=$(grep -c '"train_loss"' "$dir/split/metrics.jsonl")
[ "$steps" = 24 ] || { echo "FAIL: split/metrics.jsonl has $steps step lines, expected 24"; exit 1; }
# A finished run resumed again has nothing to do.
run split "$np" --resume auto
grep -q "the run already finished" "$dir/split.log" || { echo "FAIL: a finished run was trained again"; exit 1; }

# Another world size: same global batch (32), from the stop at step 12.
other=$((np == 1 ? 2 : 1))
run world "$np" --stop-after 12
run world "$other" --resume auto --set data.batch_size=$((32 / np)) # the first run's config
grep -q "keeping the global batch 32" "$dir/world.log" || { cat "$dir/world.log"; echo "FAIL: batch not adjusted"; exit 1; }
"$strata" inspect "$(final "$dir/world")" | grep -q "finished; .*global step 24, global batch 32" ||
    { "$strata" inspect "$(final "$dir/world")"; echo "FAIL: world-size resume did not finish at step 24"; exit 1; }
echo "1 passed, 0 failed"
