#!/usr/bin/env bash
# A short training on synthetic data under `mpiexec -n NP`: it must exit 0, lower the loss
# (first logged train_loss > last) and reach 0.9 validation accuracy, with metrics.jsonl
# written once, by rank 0.
# Usage: train_mpi.sh MPIEXEC STRATA CONFIG NP
set -euo pipefail
mpiexec=$1 strata=$2 config=$3 np=$4
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$mpiexec" -n "$np" --oversubscribe "$strata" train "$config" --set run.dir="$dir" \
    --set train.epochs=2 > "$dir/out.log" 2>&1 || { cat "$dir/out.log"; echo "FAIL: strata train exited non-zero"; exit 1; }
cat "$dir/out.log"
/usr/bin/python3 - "$dir/metrics.jsonl" "$np" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r["train_loss"] for r in rows if "train_loss" in r]
valid = [r["valid_acc"] for r in rows if "valid_acc" in r]
ok = len(train) >= 2 and train[-1] < train[0] and len(valid) == 2 and valid[-1] >= 0.9
print(f"np={sys.argv[2]}: train_loss {train[0]:.4f} -> {train[-1]:.4f}, valid_acc {valid}")
if not ok:
    print("FAIL: the loss did not fall or validation accuracy stayed below 0.9")
    sys.exit(1)
print("1 passed, 0 failed")
PY
