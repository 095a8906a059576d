#!/usr/bin/env bash
# weights.h5 is a checkpoint of kind "weights" (docs/checkpoint-format.md#weightsh5): format
# attributes, model description and group table, tensors in PyTorch's shapes; the Python
# lines of that section, run as printed, load it into a PyTorch twin of strata's cnn whose
# eval-mode logits equal strata's (ckpt_forward) within 1e-4; strata eval reads it; a flat
# weights.h5 of strata before 2026-12-03 still evaluates to the same loss, and a flat file
# with a tensor of the wrong size, or used as model.init_from, is refused with a message
# naming it. Uses Debian's python3-h5py and python3-torch (launch/deps.sh); exit 77 without.
# Usage: weights_format.sh STRATA CKPT_FORWARD CONFIG   (CONFIG: tests/configs/resume.yaml)
set -uo pipefail
strata=$1 forward=$2 config=$3
here=$(cd -- "$(dirname -- "$0")" && pwd -P)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
if ! /usr/bin/python3 -c "import torch, h5py" 2> /dev/null; then
    echo "SKIP: Debian's python3-torch or python3-h5py is not installed (launch/deps.sh)"
    exit 77
fi
common=(--set model.head=default --set 'train.phases=[{name: a, epochs: 1}]' --set groups.lr=0.1)
"$strata" train "$config" --set run.dir="$dir/r" "${common[@]}" > "$dir/train.log" 2>&1 ||
    { cat "$dir/train.log"; echo "FAIL: strata train"; exit 1; }
w="$dir/r/weights.h5"
/usr/bin/python3 - "$here" "$dir" "$w" <<'PY' || fails=$((fails + 1))
import sys
import h5py, numpy as np
here, d, w = sys.argv[1:]
x = np.random.default_rng(7).standard_normal((5, 1, 16, 16)).astype(np.float32)
with h5py.File(f"{d}/in.h5", "w") as f:
    f["x"] = x
with h5py.File(w, "r") as f:
    a = f.attrs
    ok = (a["format"] == b"strata-checkpoint" and a["kind"] == b"weights" and a["format_version"] == 1
          and "optimizer" not in f and "train_state" not in f and f["model"].attrs["arch"] == b"cnn"
          and f["model"].attrs["ngroups"] == 3 and f["params/group0/body.0.weight"].shape == (32, 1, 3, 3)
          and f["params/group2/head.2.weight"].shape == (4, 128))
    # the old layout, every tensor 1-D at the root
    flat = {}
    f.visititems(lambda n, o: flat.__setitem__(n.split("/")[-1], o[()].ravel())
                 if isinstance(o, h5py.Dataset) and n.split("/")[0] in ("params", "buffers") else None)
for name, bad in (("flat", None), ("flat_bad", "body.3.weight")):
    with h5py.File(f"{d}/{name}.h5", "w") as f:
        for k, v in flat.items():
            f[k] = v[:-1] if k == bad else v
print(f"{'ok' if ok else 'FAIL'}: format attributes, kind weights, no optimizer or train state, PyTorch shapes")
sys.exit(0 if ok else 1)
PY
"$forward" "$w" "$dir/in.h5" "$dir/strata.h5" || { echo "FAIL: ckpt_forward"; fails=$((fails + 1)); }
# The docs' Python block, as printed, on a torch twin of the cnn (body as strata's zoo, head
# pool + flatten + linear).
sed -n '/^## weights.h5/,/^## /p' "$here/../docs/checkpoint-format.md" |
    sed -n '/^```python/,/^```/p' | sed '1d;$d' > "$dir/snippet.py"
/usr/bin/python3 - "$dir" "$w" <<'PY' || fails=$((fails + 1))
import sys
import h5py, numpy as np, torch
from torch import nn
d, w = sys.argv[1:]
def conv(i, o):
    return nn.Conv2d(i, o, 3, padding=1, bias=False)
class BodyHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(conv(1, 32), nn.BatchNorm2d(32), nn.ReLU(), conv(32, 32),
                                  nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, 2),
                                  conv(32, 64), nn.BatchNorm2d(64), nn.ReLU(), conv(64, 64),
                                  nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, 2),
                                  conv(64, 128), nn.BatchNorm2d(128), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 4))
    def forward(self, x):
        return self.head(self.body(x))
model = BodyHead()
src = open(f"{d}/snippet.py").read().replace("runs/cnn/weights.h5", w)
ok = "strata_state_dict" in src and "load_state_dict" in src
exec(compile(src, "docs/checkpoint-format.md", "exec"))
model.eval()
with h5py.File(f"{d}/in.h5", "r") as f:
    x = torch.from_numpy(f["x"][()])
with h5py.File(f"{d}/strata.h5", "r") as f:
    want = f["logits"][()]
with torch.no_grad():
    got = model(x).numpy()
err = float(np.max(np.abs(got - want)) / max(1e-6, float(np.max(np.abs(want)))))
ok = ok and got.shape == want.shape and err <= 1e-4
print(f"{'ok' if ok else 'FAIL'}: the docs' lines load weights.h5 into torch; logits vs strata's, relative error {err:.2e}")
sys.exit(0 if ok else 1)
PY
# strata eval: the weights file and its flat twin give the same loss; the bad twin is refused.
loss() { sed -n 's/.*: \(loss [0-9.]* accuracy [0-9.]*\)$/\1/p' "$1" | tail -1; }
for name in r/weights flat; do
    "$strata" eval "$config" --set run.dir="$dir/r" "${common[@]}" --weights "$dir/$name.h5" \
        > "$dir/eval-${name//\//_}.log" 2>&1 || { cat "$dir/eval-${name//\//_}.log"; echo "FAIL: eval $name"; fails=$((fails + 1)); }
done
a=$(loss "$dir/eval-r_weights.log") b=$(loss "$dir/eval-flat.log")
if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok: strata eval: weights.h5 and its flat twin, $a"
else cat "$dir"/eval-*.log; echo "FAIL: eval losses '$a' and '$b'"; fails=$((fails + 1)); fi
expect_fail() { # NAME PATTERN CMD...
    local name=$1 pattern=$2
    shift 2
    if "$@" > "$dir/$name.log" 2>&1; then echo "FAIL: $name: exit status 0"; fails=$((fails + 1))
    elif grep -q -- "$pattern" "$dir/$name.log"; then echo "ok: $name: $(grep -m1 -- "$pattern" "$dir/$name.log")"
    else cat "$dir/$name.log"; echo "FAIL: $name: no '$pattern'"; fails=$((fails + 1)); fi
}
expect_fail flat_bad "flat_bad.h5: dataset 'body.3.weight' has 9215 values, the model needs 9216" \
    "$strata" eval "$config" --set run.dir="$dir/r" "${common[@]}" --weights "$dir/flat_bad.h5"
expect_fail flat_init_from "model.init_from: .*flat.h5.*not a strata checkpoint" \
    "$strata" train "$config" --set run.dir="$dir/i" "${common[@]}" --set model.init_from="$dir/flat.h5"
echo "$fails failed"
exit $((fails ? 1 : 0))
