#!/usr/bin/env bash
# Frozen groups send nothing, end to end, on 2 ranks: with groups.freeze_to=-1 for the
# whole run, every metrics.jsonl line shows 0 bytes and 0 collectives for the body groups
# and, for the head, 4 bytes per head parameter (weights.h5) per step so far, one collective
# per step. Then two phases, freeze_to -1 for 5 steps and 0 for 5 more: the body's counters
# stay at 0 through the first phase and grow by the body's size per step from the first step
# of the second (checked across ranks by the phase check). Then the cnn frozen with
# train_bn: its body groups send their BatchNorm parameters only. Last, the cnn frozen with
# train_bn false, in both BatchNorm modes (fastai v2's training mode, and bn_freeze's eval
# mode): its body groups send nothing; in training mode the frozen running statistics move,
# under bn_freeze they stay at their initial values (mean 0, variance 1).
# Usage: train_frozen_silent.sh MPIEXEC STRATA CONFIG
set -euo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
run() { # NAME ARGS...
    local name=$1
    shift
    "$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/$name" \
        --set data.batch_size=32 --set train.max_steps=5 "$@" > "$dir/$name.log" 2>&1 ||
        { cat "$dir/$name.log"; echo "FAIL: $name: strata train exited non-zero"; exit 1; }
}
run frozen --set groups.freeze_to=-1 --set train.epochs=2
run phases --set 'train.phases=[{epochs: 1, freeze_to: -1}, {epochs: 1, freeze_to: 0}]'
# The cnn with its body frozen but its BatchNorm trained (train_bn): each body group sends
# only the BatchNorm parameters at the tail of its slab, nothing of its convolutions.
run bn --set model.arch=cnn --set model.widths=null --set groups.freeze_to=-1 \
    --set groups.train_bn=true --set train.epochs=2
for mode in train freeze; do
    run "bn_$mode" --set model.arch=cnn --set model.widths=null --set groups.freeze_to=-1 \
        --set groups.train_bn=false --set groups.bn_freeze=$([ $mode = freeze ] && echo true || echo false) \
        --set train.epochs=2
done
/usr/bin/python3 - "$dir" "$(dirname "$0")" <<'PY'
import json, sys
import h5py, numpy as np
sys.path.insert(0, sys.argv[2])
from strata_h5 import tensors
root = sys.argv[1]
fails = checks = 0
def check(ok, what):
    global fails, checks
    checks += 1
    fails += not ok
    print(f"{'ok' if ok else 'FAIL'}: {what}")
for name, frozen_steps in (("frozen", 10), ("phases", 5)):
    rows = [json.loads(l) for l in open(f"{root}/{name}/metrics.jsonl") if "train_loss" in l]
    sizes = {k: v.size for k, v in tensors(f"{root}/{name}/weights.h5").items()}
    head = sum(v for k, v in sizes.items() if k.startswith("head."))
    body = sum(v for k, v in sizes.items() if not k.startswith("head."))
    check(len(rows) == 10 and head > 0 and body > 0,
          f"{name}: 10 logged steps ({len(rows)}), {head} head and {body} body parameters")
    for r in rows:
        s, comm = r["step"], r["comm"]
        got_head = (comm[-1]["bytes"], comm[-1]["collectives"])
        got_body = [(c["bytes"], c["collectives"]) for c in comm[:-1]]
        want_head = (4 * head * s, s)
        unfrozen = max(0, s - frozen_steps)
        if unfrozen == 0:
            body_ok = all(b == (0, 0) for b in got_body) and r["frozen"] == list(range(len(got_body)))
        else:
            body_ok = sum(b for b, _ in got_body) == 4 * body * unfrozen and \
                all(c == unfrozen for _, c in got_body) and r["frozen"] == []
        check(got_head == want_head and body_ok,
              f"{name} step {s}: frozen {r['frozen']}, head {got_head} (expected {want_head}), "
              f"body {got_body} (expected {'0 bytes' if unfrozen == 0 else f'{4 * body * unfrozen} bytes in all'})")
# train_bn: the cnn's convolutions have no bias, so the body's 1-D tensors are exactly its
# BatchNorm parameters; the checkpoint lists each parameter under its group in PyTorch's shape.
rows = [json.loads(l) for l in open(f"{root}/bn/metrics.jsonl") if "train_loss" in l]
ck = open(f"{root}/bn/checkpoints/latest").read().strip()
with h5py.File(f"{root}/bn/checkpoints/{ck}", "r") as f:
    bn = [sum(d.size for d in f[f"params/group{g}"].values() if d.ndim == 1) for g in (0, 1)]
check(len(rows) == 10 and bn[0] > 0 and bn[1] > 0,
      f"bn: 10 logged steps ({len(rows)}), BatchNorm parameters per body group {bn}")
for r in rows:
    s, comm = r["step"], r["comm"]
    got = [(c["bytes"], c["collectives"]) for c in comm[:-1]]
    want = [(4 * n * s, s) for n in bn]
    check(got == want and r["frozen"] == [0, 1],
          f"bn step {s}: frozen {r['frozen']}, body {got} (expected {want}: BatchNorm only)")
# train_bn false: the body is silent in both BatchNorm modes; its running statistics move
# only in fastai v2's training mode.
for mode in ("train", "freeze"):
    rows = [json.loads(l) for l in open(f"{root}/bn_{mode}/metrics.jsonl") if "train_loss" in l]
    silent = all(all((c["bytes"], c["collectives"]) == (0, 0) for c in r["comm"][:-1]) for r in rows)
    check(len(rows) == 10 and silent, f"bn_{mode}: 10 logged steps ({len(rows)}), body groups send nothing")
    W = tensors(f"{root}/bn_{mode}/weights.h5")
    moved = [k for k in W if k.startswith("body.") and k.endswith("running_mean")
             and np.abs(W[k]).max() > 0]
    n = sum(1 for k in W if k.startswith("body.") and k.endswith("running_mean"))
    want = n if mode == "train" else 0
    check(n > 0 and len(moved) == want,
          f"bn_{mode}: {len(moved)} of {n} frozen running means moved (expected {want})")
print(f"{checks - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
PY
