#!/usr/bin/env bash
# Every number finite, every position inside the run (issue 17 items 3 and 4):
#  1. a run that diverges (groups.lr 1e3; SGD and AdamW) stops non-zero at the step that made a
#     weight, optimizer state or BatchNorm statistic non-finite, and every checkpoint it leaves
#     (checkpoint.keep 3) loads: no NaN written, none of the finite ones deleted;
#  2. a checkpoint whose weights hold a NaN is refused on --resume and by eval, naming the tensor;
#  3. a checkpoint whose /train_state says phase 99 (or an epoch past its phase), or whose
#     optimizer step counts exceed its global step, is refused on --resume instead of
#     skipping every step and exiting 0 (or overflowing AdamW's counter);
#  4. learning rates that round to 0 or overflow in float32 are refused when the config is read.
# Before the fix, 1 exited 0 with NaN checkpoints, 2 and 3 resumed silently, 4 trained.
# Usage: nonfinite.sh STRATA PYTHON   (PYTHON with h5py and numpy; exit 77 without)
set -uo pipefail
strata=$1 python=$2
"$python" -c "import h5py, numpy" 2>/dev/null || { echo "SKIP: $python has no h5py/numpy"; exit 77; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-nonfinite.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
cat > "$dir/cnn.yaml" <<'EOF'
model: {arch: cnn, input: [1, 8, 8], classes: 4}
groups: {lr: 0.01}
optimizer: {type: sgd}
data:
  train: synthetic
  valid: synthetic
  batch_size: 32
  synthetic: {samples: 512, classes: 4, input: [1, 8, 8], seed: 7}
train: {epochs: 3, seed: 1, log_every: 4}
checkpoint: {every_steps: 4, keep: 3}
EOF
cfg=$dir/cnn.yaml

# 1. Divergence stops the run; what is left on disk is finite.
for opt in sgd adamw; do
    run=$dir/div-$opt
    "$strata" train "$cfg" --set run.dir="$run" --set groups.lr=1e3 --set optimizer.type=$opt \
        > "$dir/div-$opt.log" 2>&1
    st=$?
    if ((st != 0)) && grep -Eq "step [0-9]+ \(phase 1, epoch [0-9]+\): .*non-finite.*training diverged" "$dir/div-$opt.log" &&
        grep -q "^failed: " "$run/status"; then
        ok "$opt: diverged run stopped (exit $st): $(grep -o 'step [0-9]* (phase.*' "$dir/div-$opt.log" | head -1 | cut -c1-120)"
    else
        bad "$opt: diverged run (exit $st, status $(cat "$run/status" 2>/dev/null))"; tail -3 "$dir/div-$opt.log"
    fi
    n=0
    for ck in "$run"/checkpoints/ckpt-*.h5; do
        [ -e "$ck" ] || continue
        n=$((n + 1))
        # Read with h5py, not strata: every float tensor (weights, state, BN statistics).
        "$python" - "$ck" > "$dir/scan.log" 2>&1 <<'EOF'
import sys, h5py, numpy as np
bad = []
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and not np.isfinite(obj[...]).all():
        bad.append(name)
with h5py.File(sys.argv[1], "r") as f:
    f.visititems(visit)
print(" ".join(bad))
sys.exit(1 if bad else 0)
EOF
        (($? == 0)) || bad "$opt: $(basename "$ck") holds non-finite tensors: $(cut -c1-200 "$dir/scan.log")"
    done
    latest=$(cat "$run/checkpoints/latest" 2>/dev/null)
    if ((n > 0)) && [ -e "$run/checkpoints/$latest" ]; then
        ok "$opt: $n checkpoint(s) left, latest $latest"
    else
        bad "$opt: expected finite checkpoints and a latest that names one (n=$n, latest '$latest')"
    fi
done

# A good checkpoint to spoil: 8 steps of a sane run.
good=$dir/good
"$strata" train "$cfg" --set run.dir="$good" --stop-after 8 > "$dir/good.log" 2>&1 ||
    { tail -5 "$dir/good.log"; echo "FAIL: the sane run"; exit 1; }
cp "$(ls "$good"/checkpoints/ckpt-*.h5 | sort | tail -1)" "$dir/good.h5" && cp -a "$good" "$dir/good-run"
ck=$dir/good.h5

# 2. A NaN in a weight (written through HDF5's filters, so the checksum still matches).
cp "$ck" "$dir/nan.h5"
"$python" - "$dir/nan.h5" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f["params/group1/body.7.weight"]
    a = d[...]
    a.flat[5] = np.nan
    d[...] = a
EOF
"$strata" inspect "$dir/nan.h5" --verify > "$dir/verify.log" 2>&1 ||
    bad "the NaN checkpoint should still verify (its checksums match): $(tail -1 "$dir/verify.log")"
"$strata" train "$cfg" --set run.dir="$good" --resume "$dir/nan.h5" > "$dir/nan.log" 2>&1
st=$?
if ((st != 0)) && grep -q "nan.h5: parameter 'body.7.weight' holds a non-finite value (nan at index 5" "$dir/nan.log"; then
    ok "NaN weight refused on --resume"
else
    bad "NaN weight on --resume (exit $st)"; tail -3 "$dir/nan.log"
fi
"$strata" eval "$cfg" --set run.dir="$good" --weights "$dir/nan.h5" > "$dir/nan-eval.log" 2>&1
st=$?
if ((st != 0)) && grep -q "parameter 'body.7.weight' holds a non-finite value" "$dir/nan-eval.log"; then
    ok "NaN weight refused by eval"
else
    bad "NaN weight in eval (exit $st)"; tail -3 "$dir/nan-eval.log"
fi

# 3. Training positions outside the run.
spoil_position() { # FILE ATTR VALUE
    "$python" - "$@" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    a = f["train_state"].attrs
    a.modify(sys.argv[2], a[sys.argv[2]].dtype.type(int(sys.argv[3])))
EOF
}
for case in "phase 99 phase 99 (0-based), but this run has 1 phase" \
            "epoch_in_phase 7 epoch 7 (0-based) of phase 0 'train', which has 3 epoch" \
            "step_in_epoch 999 step 999 of an epoch of"; do
    set -- $case
    attr=$1 value=$2
    shift 2
    want="$*"
    cp "$ck" "$dir/pos.h5"
    spoil_position "$dir/pos.h5" "$attr" "$value"
    rm -rf "$dir/pos-run" && cp -a "$dir/good-run" "$dir/pos-run"
    "$strata" train "$cfg" --set run.dir="$dir/pos-run" --resume "$dir/pos.h5" > "$dir/pos.log" 2>&1
    st=$?
    if ((st != 0)) && grep -qF "$want" "$dir/pos.log"; then
        ok "$attr = $value refused"
    else
        bad "$attr = $value (exit $st)"; tail -3 "$dir/pos.log"
    fi
done

# An optimizer step count past the checkpoint's global step (it overflowed AdamW's counter).
cp "$ck" "$dir/steps.h5"
"$python" - "$dir/steps.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["optimizer/step"]
    a = d[...]
    a[0] = 2**63 - 1
    d[...] = a
EOF
rm -rf "$dir/pos-run" && cp -a "$dir/good-run" "$dir/pos-run"
"$strata" train "$cfg" --set run.dir="$dir/pos-run" --resume "$dir/steps.h5" > "$dir/steps.log" 2>&1
st=$?
if ((st != 0)) && grep -q "/optimizer/step of group 0 is 9223372036854775807, outside 0..8" "$dir/steps.log"; then
    ok "an optimizer step count past the global step refused"
else
    bad "optimizer step count (exit $st)"; tail -2 "$dir/steps.log"
fi

# A resume under another train.seed would not continue the run's data order.
rm -rf "$dir/pos-run" && cp -a "$dir/good-run" "$dir/pos-run"
"$strata" train "$cfg" --set run.dir="$dir/pos-run" --resume "$ck" --set train.seed=7 > "$dir/seed.log" 2>&1
st=$?
if ((st != 0)) && grep -q "the checkpoint's train.seed is 1, the config's 7" "$dir/seed.log"; then
    ok "a resume under another train.seed refused"
else
    bad "resume under another seed (exit $st)"; tail -2 "$dir/seed.log"
fi

# 4. Learning rates float32 cannot hold.
for lr in 1e-300 "slice(1e-300, 1e300)" "[0.01, 1e39, 0.01]"; do
    "$strata" train "$cfg" --set run.dir="$dir/lr" --set "groups.lr=$lr" > "$dir/lr.log" 2>&1
    st=$?
    if ((st != 0)) && grep -q "in float32" "$dir/lr.log" && [ ! -e "$dir/lr/checkpoints" ]; then
        ok "groups.lr $lr refused"
    else
        bad "groups.lr $lr (exit $st)"; tail -2 "$dir/lr.log"
    fi
done

((fails == 0)) && echo "all non-finite and position cases passed" || echo "$fails case(s) failed"
exit $((fails > 0))
