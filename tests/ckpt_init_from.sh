#!/usr/bin/env bash
# Transfer learning: model.init_from loads a trained body by parameter name under a new head
# (here a linear head in place of fastai's) and says what was loaded and what is new; with
# the body frozen and its BatchNorm fixed (train_bn false, bn_freeze true: fastai 0.7) the body
# after training is bitwise the checkpoint's.
# A checkpoint of another architecture is refused, naming the parameter it lacks.
# Usage: ckpt_init_from.sh STRATA CONFIG   (CONFIG: tests/configs/resume.yaml)
set -uo pipefail
strata=$1 config=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
"$strata" train "$config" --set run.dir="$dir/src" > "$dir/src.log" 2>&1 || { cat "$dir/src.log"; echo "FAIL: source run"; exit 1; }
src="$dir/src/checkpoints/$(cat "$dir/src/checkpoints/latest")"
"$strata" train "$config" --set run.dir="$dir/new" --set model.init_from="$src" --set model.head=linear \
    --set groups.train_bn=false --set groups.bn_freeze=true --set 'train.phases=[{name: head, epochs: 1, freeze_to: -1}]' > "$dir/new.log" 2>&1 ||
    { cat "$dir/new.log"; echo "FAIL: init_from run"; exit 1; }
if grep -q "model.init_from .*(cnn): loaded the body, 15 tensors (139168 values) by name; new: the head, 2 tensors (516 values)" "$dir/new.log"; then
    echo "ok: init_from reports what it loaded and what is new"
else
    grep "init_from" "$dir/new.log"; echo "FAIL: init_from report"; fails=$((fails + 1))
fi
new="$dir/new/checkpoints/$(cat "$dir/new/checkpoints/latest")"
/usr/bin/python3 - "$src" "$new" <<'PY' || fails=$((fails + 1))
import sys, h5py
def body(path):
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("params", "buffers"):
                leaf = name.split("/")[-1]
                if leaf.startswith("body."):
                    out[leaf] = obj[()]
            return None
        f.visititems(visit)
    return out
a, b = body(sys.argv[1]), body(sys.argv[2])
ok = sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a) and len(a) == 25
print(f"{'ok' if ok else 'FAIL'}: {len(a)} body tensors of the source, {len(b)} after training with the body frozen, bitwise equal: {ok}")
sys.exit(0 if ok else 1)
PY
# Another architecture's checkpoint: the body parameters it lacks are named.
"$strata" train "$config" --set run.dir="$dir/mlp" --set model.arch=mlp --set model.head=null \
    --set train.phases=null --set train.epochs=1 > "$dir/mlp.log" 2>&1 || { cat "$dir/mlp.log"; echo "FAIL: mlp run"; exit 1; }
mlp="$dir/mlp/checkpoints/$(cat "$dir/mlp/checkpoints/latest")"
"$strata" train "$config" --set run.dir="$dir/bad" --set model.init_from="$mlp" > "$dir/bad.log" 2>&1
st=$?
if ((st == 1)) && grep -q "model.init_from: .*no parameter 'body.0.weight'" "$dir/bad.log"; then
    echo "ok: a checkpoint of another architecture is refused (exit $st)"
else
    cat "$dir/bad.log"; echo "FAIL: init_from another architecture: exit $st"; fails=$((fails + 1))
fi
echo "$((3 - fails)) passed, $fails failed"
((fails == 0))
