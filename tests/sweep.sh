#!/usr/bin/env bash
# Sweeps without Slurm: `strata sweep plan` numbers the runs of a grid (first key slowest) and
# checks every override against the base config; `strata train --sweep` runs one (index from
# --sweep-index or SLURM_ARRAY_TASK_ID) in DIR/run-III with its sweep.json; bad input (an
# empty or malformed file, an empty list, a key the config lacks, an index out of range, a
# run directory that holds a different run) is a clear error with a non-zero exit.
# Usage: sweep.sh STRATA
set -uo pipefail
strata=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAIL: $1"; [ -f "$dir/out.log" ] && tail -5 "$dir/out.log"; fail=$((fail + 1)); }
expect() { # NAME WANT CMD...: non-zero exit (not a signal) and WANT in the output
    local name=$1 want=$2
    shift 2
    "$@" > "$dir/out.log" 2>&1
    local st=$?
    if ((st != 0 && st < 128)) && grep -qF -- "$want" "$dir/out.log"; then ok "$name (exit $st)"; else bad "$name: exit $st, expected '$want'"; fi
}
cat > "$dir/base.yaml" <<'YAML'
model: {arch: mlp, widths: [16, 16], input: [1, 8, 8], classes: 4}
groups: {lr: [0.01, 0.01, 0.05], wd: 0}
schedule: {type: constant}
data: {train: synthetic, valid: synthetic, batch_size: 32, synthetic: {samples: 128, classes: 4, input: [1, 8, 8], seed: 7}}
train: {epochs: 1, seed: 1, log_every: 2}
YAML
cat > "$dir/lr.yaml" <<YAML
config: base.yaml
dir: $dir/runs
set:
  train.epochs: 2
grid:
  groups.lr: ["slice(1e-3, 1e-1)", [0.02, 0.02, 0.05]]
  groups.momentum: [0.9, 0.8, 0.95]
YAML
"$strata" sweep plan "$dir/lr.yaml" > "$dir/plan.txt" 2>&1 || { cat "$dir/plan.txt"; bad "sweep plan"; }
if grep -q "^# 6 run(s)$" "$dir/plan.txt" && grep -q '^0  groups.lr="slice(1e-3, 1e-1)"  groups.momentum=0.9$' "$dir/plan.txt" &&
    grep -q '^5  groups.lr=\[0.02, 0.02, 0.05\]  groups.momentum=0.95$' "$dir/plan.txt" && grep -q "every run: --set train.epochs=2" "$dir/plan.txt"; then
    ok "sweep plan: 6 runs, first key slowest"
else
    cat "$dir/plan.txt"; bad "sweep plan output"
fi
# Run 4 by index, run 1 by SLURM_ARRAY_TASK_ID.
"$strata" train "$dir/base.yaml" --sweep "$dir/lr.yaml" --sweep-index 4 > "$dir/r4.log" 2>&1 || { tail "$dir/r4.log"; bad "run 4"; }
SLURM_ARRAY_TASK_ID=1 "$strata" train "$dir/base.yaml" --sweep "$dir/lr.yaml" > "$dir/r1.log" 2>&1 || { tail "$dir/r1.log"; bad "run 1"; }
grep -q "max lr per group 0.02, 0.02, 0.05;" "$dir/r4.log" && grep -q "max lr per group 0.001, 0.01, 0.1;" "$dir/r1.log" &&
    grep -q "^  momentum: 0.8$" "$dir/runs/run-004/config.yaml" && grep -q "^  momentum: 0.8$" "$dir/runs/run-001/config.yaml" &&
    [ "$(cat "$dir/runs/run-004/status")" = finished ] && [ "$(cat "$dir/runs/run-001/status")" = finished ] &&
    grep -q "epoch 2/2" "$dir/r4.log" &&
    grep -qF '"index": 4, "runs": 6,' "$dir/runs/run-004/sweep.json" &&
    grep -qF '"overrides": {"groups.lr": "[0.02, 0.02, 0.05]", "groups.momentum": "0.8"}' "$dir/runs/run-004/sweep.json" &&
    ok "runs 1 and 4: their learning rates and momentum, status finished, sweep.json" || bad "sweep runs"

# Without CONFIG the sweep's own config is used; another CONFIG than the sweep's is refused.
"$strata" train --sweep "$dir/lr.yaml" --sweep-index 0 > "$dir/r0.log" 2>&1 && [ "$(cat "$dir/runs/run-000/status")" = finished ] &&
    ok "train --sweep without CONFIG uses the sweep's config" || { tail -3 "$dir/r0.log"; bad "train --sweep without CONFIG"; }
cp "$dir/base.yaml" "$dir/other_base.yaml"
expect "a CONFIG that is not the sweep's" "is not the sweep's config" \
    "$strata" train "$dir/other_base.yaml" --sweep "$dir/lr.yaml" --sweep-index 2
printf '' > "$dir/empty.yaml"
expect "empty sweep file" "the sweep file is empty" "$strata" sweep plan "$dir/empty.yaml"
printf 'grid: [1\n' > "$dir/broken.yaml"
expect "malformed sweep file" "broken.yaml:2: YAML syntax" "$strata" sweep plan "$dir/broken.yaml"
printf 'grid:\n  groups.lr.0: []\n' > "$dir/emptylist.yaml"
expect "an empty list" "emptylist.yaml:2: grid.groups.lr.0: expected a non-empty list" "$strata" sweep plan "$dir/emptylist.yaml"
printf 'config: base.yaml\ngrid:\n  train.epoch: [1, 2]\n' > "$dir/nokey.yaml"
expect "a key the config lacks" "run 0: --set train.epoch=1: train.epoch: unknown key; did you mean 'epochs'?" \
    "$strata" sweep plan "$dir/nokey.yaml"
expect "a key the config lacks, at train" "train.epoch: unknown key" \
    "$strata" train "$dir/base.yaml" --sweep "$dir/nokey.yaml" --sweep-index 0
printf 'grids:\n  a: [1]\n' > "$dir/typo.yaml"
expect "an unknown top-level key" "typo.yaml:1: grids: unknown key 'grids'" "$strata" sweep plan "$dir/typo.yaml"
expect "index out of range" "has 6 runs (indices 0 to 5): index 6 is out of range" \
    "$strata" train "$dir/base.yaml" --sweep "$dir/lr.yaml" --sweep-index 6
expect "no index" "needs --sweep-index I or SLURM_ARRAY_TASK_ID" "$strata" train "$dir/base.yaml" --sweep "$dir/lr.yaml"
# The run directory of run 4 holds run 4; another sweep pointing its run 4 there is refused
# and nothing there changes.
sum=$(cat "$dir/runs/run-004/"{config.yaml,metrics.jsonl,sweep.json,status} | md5sum)
sed 's/0.05\]\]/0.07]]/' "$dir/lr.yaml" > "$dir/other.yaml"
expect "a run directory holding a different run" "already holds a different run" \
    "$strata" train "$dir/base.yaml" --sweep "$dir/other.yaml" --sweep-index 4
[ "$(cat "$dir/runs/run-004/"{config.yaml,metrics.jsonl,sweep.json,status} | md5sum)" = "$sum" ] &&
    ok "run 4's files are untouched" || bad "run 4's files changed"
# A set: of 1,000 overrides (each every run's): all of them reach the config, whose first
# unknown one is the error (it once overflowed fixed arrays of 64 and 352 overrides).
{ printf 'config: base.yaml\ndir: %s/runs-big\nset:\n' "$dir"; for i in $(seq 0 999); do echo "  data.k$i: $i"; done
  echo 'grid:'; echo '  train.epochs: [1]'; } > "$dir/bigset.yaml"
expect "a set: of 1,000 overrides, plan" "run 0: --set data.k0=0: data.k0: unknown key" "$strata" sweep plan "$dir/bigset.yaml"
expect "a set: of 1,000 overrides, train" "--set data.k0=0: data.k0: unknown key" \
    "$strata" train --sweep "$dir/bigset.yaml" --sweep-index 0
echo "$pass passed, $fail failed"
((fail == 0))
