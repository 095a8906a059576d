#!/usr/bin/env bash
# Bad checkpoints and bad resumes: a clear error that names the file and what is wrong, a
# non-zero exit, no crash, and the previous checkpoint intact. Each case runs `strata
# inspect` (and --verify) and, where it says more, `strata train --resume` on 2 ranks (every
# rank must exit non-zero). Cases: a truncated file, flipped bytes inside a weight dataset,
# a file that is not HDF5, an HDF5 file that is not a strata checkpoint, a missing dataset, a
# directory, no read permission, a full disk while saving (ulimit -f), another group
# partition (and --regroup), another optimizer, another shape, a world size that cannot keep
# the global batch.
# Usage: ckpt_bad_input.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; [ -f "$dir/out.log" ] && cat "$dir/out.log"; fail=$((fail + 1)); }
# expect NAME WANT CMD...: CMD exits non-zero (not a signal) and prints WANT.
expect() {
    local name=$1 want=$2
    shift 2
    "$@" > "$dir/out.log" 2>&1
    local st=$?
    if ((st != 0 && st < 128)) && grep -qF -- "$want" "$dir/out.log"; then ok "$name (exit $st)"; else bad "$name: exit $st, expected a non-zero exit and '$want'"; fi
}
# resume NAME WANT CKPT ARGS...: a 2-rank resume fails on both ranks with WANT.
resume() {
    local name=$1 want=$2 ck=$3
    shift 3
    "$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/resumed" --resume "$ck" "$@" > "$dir/out.log" 2>&1
    local st=$?
    if ((st != 0 && st < 128)) && grep -q "rank 0: .*$want" "$dir/out.log" && grep -q "rank 1: " "$dir/out.log"; then
        ok "resume: $name (exit $st)"
    else
        bad "resume: $name: exit $st, expected every rank to fail with '$want'"
    fi
}
py() { /usr/bin/python3 - "$@" || { echo "FAIL: a python step of the test failed"; exit 1; }; }

# A good checkpoint to spoil, taken in the middle of training: 2 ranks, global batch 32 (16
# per rank), 16 steps an epoch, stopped at step 8.
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/run" --set data.batch_size=16 \
    --stop-after 8 > "$dir/train.log" 2>&1 || { cat "$dir/train.log"; echo "FAIL: training"; exit 1; }
good="$dir/run/checkpoints/$(cat "$dir/run/checkpoints/latest")"
"$strata" inspect "$good" --verify > "$dir/out.log" 2>&1 && grep -q "every fletcher32 checksum matched" "$dir/out.log" &&
    ok "a good checkpoint verifies" || bad "a good checkpoint does not verify"

size=$(stat -c %s "$good")
head -c $((size / 2)) "$good" > "$dir/truncated.h5"
expect "truncated file" "truncated.h5: " "$strata" inspect "$dir/truncated.h5"
resume "truncated file" "truncated.h5" "$dir/truncated.h5"

# Flip bytes in the middle of a weight dataset's stored chunk.
cp "$good" "$dir/flipped.h5"
py "$dir/flipped.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    ds = f["params/group0/body.1.weight"]
    info = ds.id.get_chunk_info(0)
    off = info.byte_offset + info.size // 2
with open(sys.argv[1], "r+b") as f:
    f.seek(off)
    b = f.read(4)
    f.seek(off)
    f.write(bytes(x ^ 0xFF for x in b))
PY
expect "flipped bytes: inspect --verify" "/params/group0/body.1.weight" "$strata" inspect "$dir/flipped.h5" --verify
resume "flipped bytes in a weight" "params/group0/body.1.weight" "$dir/flipped.h5"

echo "not a checkpoint" > "$dir/text.h5"
expect "not HDF5" "not an HDF5 file" "$strata" inspect "$dir/text.h5"
resume "not HDF5" "not an HDF5 file" "$dir/text.h5"

py "$dir/other.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = np.zeros(3)
PY
expect "HDF5 but not strata" "not a strata checkpoint" "$strata" inspect "$dir/other.h5"
resume "HDF5 but not strata" "not a strata checkpoint" "$dir/other.h5"

cp "$good" "$dir/version.h5"
py "$dir/version.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["format_version"] = np.int64(2)
PY
expect "another format version" "checkpoint format version 2; this strata (0.1.0) reads version 1" "$strata" inspect "$dir/version.h5"
resume "another format version" "format version 2" "$dir/version.h5"

cp "$good" "$dir/missing.h5"
py "$dir/missing.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    del f["optimizer/momentum_buffer/group1/body.3.weight"]
PY
expect "missing optimizer dataset: inspect --verify" "optimizer/momentum_buffer/group1/body.3.weight is missing" \
    "$strata" inspect "$dir/missing.h5" --verify
resume "missing optimizer dataset" "optimizer/momentum_buffer/group1/body.3.weight is missing" "$dir/missing.h5"
cp "$good" "$dir/missing2.h5"
py "$dir/missing2.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    del f["params/group2/head.1.weight"]
PY
expect "missing weight dataset" "/params/group2/head.1.weight is missing" "$strata" inspect "$dir/missing2.h5"

# Written by h5py with Python strs (variable-length UTF-8 strings): reads; then an extra
# dataset under /params that no group lists is refused by name.
py "$dir/utf8.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f.attrs.update(format="strata-checkpoint", format_version=1, world_size=1, kind="weights")
    m = f.create_group("model")
    m.attrs.update(arch="mlp", input=np.array([1, 8, 8]), classes=4, cut=5, ngroups=1)
    g = f.create_group("groups/0")
    g.attrs.update(index=0, name="head", first=-1, last=-1, frozen=0, lr=0.0, wd=0.0, momentum=0.0, numel=6)
    g["parameters"] = ["head.1.weight"]
    f["params/group0/head.1.weight"] = np.zeros((2, 3), np.float32)
PY
"$strata" inspect "$dir/utf8.h5" > "$dir/out.log" 2>&1 && grep -q "kind weights" "$dir/out.log" &&
    ok "a checkpoint written by h5py with UTF-8 strings reads" || bad "h5py UTF-8 strings"
# Its datasets carry no checksum: --verify reads them but does not say they matched.
expect "--verify of datasets without checksums" \
    "2 of 2 datasets have no fletcher32 checksum, so their bytes cannot be checked: /groups/0/parameters, /params/group0/head.1.weight" \
    "$strata" inspect "$dir/utf8.h5" --verify
py "$dir/utf8.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f["params/group0/stray"] = np.zeros(3, np.float32)
PY
expect "a dataset no group lists" "dataset /params/group0/stray is not listed by the group table" "$strata" inspect "$dir/utf8.h5"

mkdir -p "$dir/adir.h5"
expect "a directory" "adir.h5" "$strata" inspect "$dir/adir.h5"
resume "a directory" "adir.h5" "$dir/adir.h5"

cp "$good" "$dir/noread.h5"
chmod 000 "$dir/noread.h5"
if [ "$(id -u)" = 0 ]; then
    # root reads anything: drop to nobody for this case.
    expect "no read permission" "cannot read the checkpoint: Permission denied" \
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$strata" inspect "$dir/noread.h5"
else
    expect "no read permission" "cannot read the checkpoint: Permission denied" "$strata" inspect "$dir/noread.h5"
fi

resume "another group partition" "the group partition differs from the config" "$good" --set data.batch_size=16 --set model.split=[1]
resume "another optimizer" "optimizer sgd in the checkpoint, optimizer.type adamw in the config" "$good" \
    --set data.batch_size=16 --set optimizer.type=adamw
resume "another shape" "has shape (32, 32) in the checkpoint, the model needs (16, 32)" "$good" \
    --set data.batch_size=16 --set model.widths=[32,16]
"$mpiexec" -n 3 --oversubscribe "$strata" train "$config" --set run.dir="$dir/r3" --resume "$good" > "$dir/out.log" 2>&1
st=$?
((st != 0 && st < 128)) && grep -q "cannot resume a run of global batch 32 (2 rank(s) in the checkpoint) on 3 rank(s)" "$dir/out.log" &&
    ok "3 ranks cannot keep a global batch of 32 (exit $st)" || bad "3 ranks: exit $st"
# --regroup loads into another split on purpose.
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/regroup" --resume "$good" --regroup \
    --set data.batch_size=16 --set model.split=[1] --set train.epochs=2 > "$dir/out.log" 2>&1 &&
    grep -q "regrouped by parameter name" "$dir/out.log" && ok "--regroup into another split" ||
    bad "--regroup into another split"

# A full disk while saving: a wider mlp (checkpoints of 9 MB) stopped at step 4, then resumed
# under ulimit -f 4096 (KiB: MPI's start-up, the config and the metrics fit, a checkpoint
# does not): the next save fails, the error names the file, the exit is non-zero, and the
# previous checkpoint is intact.
wide="--set model.widths=[1024,1024] --set data.batch_size=32"
"$strata" train "$config" --set run.dir="$dir/full" $wide --stop-after 4 > "$dir/out.log" 2>&1 ||
    { cat "$dir/out.log"; echo "FAIL: training the wide mlp"; exit 1; }
before=$(cat "$dir/full/checkpoints/latest")
sum=$(md5sum < "$dir/full/checkpoints/$before")
(
    ulimit -f 4096
    "$strata" train "$config" --set run.dir="$dir/full" $wide --resume auto > "$dir/out.log" 2>&1
)
st=$?
if ((st != 0 && st < 128)) && grep -q "cannot write\|File too large" "$dir/out.log" &&
    [ "$(cat "$dir/full/checkpoints/latest")" = "$before" ] &&
    [ "$(md5sum < "$dir/full/checkpoints/$before")" = "$sum" ] &&
    "$strata" inspect "$dir/full/checkpoints/$before" --verify > /dev/null 2>&1 &&
    [ -z "$(ls "$dir/full/checkpoints" | grep tmp)" ]; then
    ok "full disk while saving (exit $st): previous checkpoint intact, no temporary file left"
else
    bad "full disk while saving: exit $st"
fi
echo "$pass passed, $fail failed"
((fail == 0))
