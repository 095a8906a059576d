#!/usr/bin/env bash
# Bad input under `mpiexec -n 2` ends the job on every rank with a message and a non-zero
# status, never a hang (ctest's TIMEOUT catches a hang): a batch larger than a rank's share,
# a missing data file, a config that does not parse, labels out of range, a corrupted IDX
# header and a metrics.jsonl that cannot be written (a full disk).
# Usage: train_mpi_bad.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf 'model:\n  arch: mlp\n  widths: [8\n' > "$dir/broken.yaml"
pass=0 fail=0
check() { # NAME EXPECTED_TEXT ARGS...
    local name=$1 want=$2
    shift 2
    "$mpiexec" -n 2 --oversubscribe "$strata" train "$@" > "$dir/out.log" 2>&1
    local st=$?
    if ((st != 0)) && grep -q "rank 0: .*$want" "$dir/out.log" && grep -q "rank 1: " "$dir/out.log"; then
        echo "ok: $name (exit $st)"
        pass=$((pass + 1))
    else
        echo "FAIL: $name: exit $st, expected a non-zero exit and '$want' from every rank:"
        cat "$dir/out.log"
        fail=$((fail + 1))
    fi
}
check "batch larger than a rank's share" "data.batch_size 300 x 2 ranks = 600 samples per optimizer step, more than data.train's 512 samples (synthetic), 256 per rank per epoch" \
    "$config" --set run.dir="$dir/r1" --set data.batch_size=300
check "missing data file" "/nonexistent/data.h5" \
    "$config" --set run.dir="$dir/r2" --set data.train=/nonexistent/data.h5
check "config that does not parse" "broken.yaml:" "$dir/broken.yaml"
check "labels out of range" "label 3" \
    "$config" --set run.dir="$dir/r3" --set model.classes=3
# A Fashion-MNIST directory whose image file has a corrupted header (bad magic).
mkdir -p "$dir/fm"
printf '\x00\x00\x08\x04\x00\x00\x00\x01\x00\x00\x00\x1c\x00\x00\x00\x1c' | gzip > "$dir/fm/train-images-idx3-ubyte.gz"
printf '\x00\x00\x08\x01\x00\x00\x00\x01\x05' | gzip > "$dir/fm/train-labels-idx1-ubyte.gz"
check "corrupted IDX header" "bad magic 0x00000804" \
    "$config" --set run.dir="$dir/r4" --set data.train=fashion-mnist --set data.valid= \
    --set data.dir="$dir/fm" --set model.input=null --set model.classes=null
# metrics.jsonl on a full disk (a link to /dev/full): the failed write is rank 0's error,
# naming the file, and every rank stops instead of waiting at the next step.
mkdir -p "$dir/r5" && ln -s /dev/full "$dir/r5/metrics.jsonl"
check "metrics.jsonl on a full disk" "cannot write $dir/r5/metrics.jsonl: No space left on device" \
    "$config" --set run.dir="$dir/r5"
echo "$pass passed, $fail failed"
((fail == 0))
