#!/usr/bin/env bash
# The Slurm templates on a real one-node Slurm (tests/slurm/cluster.sh):
#   sweep    launch/slurm/sweep.sbatch as a 4-task job array over a 2x2 learning-rate grid
#            (groups.lr.0 x groups.lr.2): every run finishes in its run-III directory, and
#            `strata sweep report` lists all four with the overrides `strata sweep plan` gave
#            them, best first, and draws both plots.
#   preempt  launch/slurm/train.sbatch on 2 ranks: once the first checkpoint exists, the job
#            gets SIGUSR1 the way its --signal=B:USR1@120 line delivers it
#            (scancel --signal=USR1 --batch), strata saves and exits 75, the job requeues
#            itself, runs again, resumes from that checkpoint and finishes; its final
#            checkpoint equals, bitwise, that of the same training run without interruption.
# Usage: slurm_jobs.sh STRATA SOURCE_DIR [sweep|preempt|all]
# Exit status 77 (skipped) when slurm-wlm or munge is not installed or not run as root.
set -uo pipefail
strata=$(realpath "$1")
src=$(realpath "$2")
what=${3:-all}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
slurm_cluster_check || { echo "SKIP: no Slurm here"; exit 77; }

work=$(mktemp -d /tmp/strata-slurm-test.XXXXXX)
cleanup() {
    slurm_cluster_down
    if [[ -n "${KEEP_SLURM_TEST:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT # the EXIT trap then stops the cluster
pass=0 failed=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

# Returns 0 when Slurm has no pending, running or completing task left of job $1.
job_gone() { [[ -z "$(squeue -h -j "$1" -t PD,R,CG,CF,S,RQ,RS 2>/dev/null)" ]]; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
slurm_cluster_up "$work/cluster" || { echo "FAIL: the one-node Slurm did not come up"; exit 1; }
# The jobs run the templates from the source tree with this build's strata.
export STRATA=$strata STRATA_ROOT=$src

test_sweep() {
    local d="$work/sweep"
    mkdir -p "$d"
    cat >"$d/base.yaml" <<'YAML'
# A few seconds per run: an mlp (3 layer groups) on synthetic data.
model: {arch: mlp, widths: [32, 32], input: [1, 8, 8], classes: 4}
groups: {lr: [0.05, 0.05, 0.05], wd: 0, momentum: 0.9}
optimizer: {type: sgd}
schedule: {type: constant}
data: {train: synthetic, valid: synthetic, batch_size: 32,
       synthetic: {samples: 256, classes: 4, input: [1, 8, 8], seed: 7}}
train: {epochs: 3, seed: 42, log_every: 4}
YAML
    cat >"$d/lr.yaml" <<YAML
config: base.yaml
dir: $d/runs
grid:
  groups.lr.0: [0.001, 0.03]
  groups.lr.2: [0.01, 0.1]
YAML
    "$strata" sweep plan "$d/lr.yaml" >"$d/plan.txt" 2>&1 || { cat "$d/plan.txt"; bad "sweep plan failed"; return; }
    cat "$d/plan.txt"
    grep -q '^# 4 run(s)$' "$d/plan.txt" && ok "sweep plan: 4 runs" || { bad "sweep plan does not say 4 runs"; return; }

    local job
    job=$(cd "$d" && sbatch --parsable --array=0-3 --ntasks=1 --output="$d/slurm-%A_%a.out" \
        "$src/launch/slurm/sweep.sbatch" "$d/base.yaml" "$d/lr.yaml") ||
        { bad "sbatch sweep.sbatch failed: $job"; return; }
    echo "submitted array job $job"
    all_done() {
        local i s
        for i in 0 1 2 3; do
            s=$(cat "$d/runs/run-00$i/status" 2>/dev/null) || return 1
            [[ "$s" == finished || "$s" == failed* ]] || return 1
        done
        job_gone "$job"
    }
    wait_for 180 "the 4 array tasks to finish" all_done || { squeue; show_logs "$d"/slurm-*.out; bad "sweep array did not finish"; return; }
    local i n=0
    for i in 0 1 2 3; do
        [[ "$(cat "$d/runs/run-00$i/status")" == finished ]] && n=$((n + 1)) ||
            { show_logs "$d/slurm-${job}_$i.out"; bad "run $i: status $(cat "$d/runs/run-00$i/status")"; }
    done
    ((n == 4)) && ok "array job $job: all 4 runs finished"
    grep -q "strata sweep task ${job}_2 (run 2, restart 0)" "$d/slurm-${job}_2.out" &&
        ok "each task logs to its own file" || bad "no task log ${job}_2"

    "$strata" sweep report "$d/runs" >"$d/report.txt" 2>&1 || { cat "$d/report.txt"; bad "strata sweep report failed"; return; }
    cat "$d/report.txt"
    /usr/bin/python3 - "$d/runs/report.csv" "$d/plan.txt" <<'PY' && ok "report.csv: 4 finished runs, each with its overrides from the plan, best first" || bad "report.csv"
import csv, math, sys
rows = list(csv.DictReader(open(sys.argv[1])))
plan = {}
for line in open(sys.argv[2]):
    if line[:1].isdigit():
        idx, *sets = line.split()
        plan[int(idx)] = dict(s.split("=", 1) for s in sets)
assert len(rows) == 4, rows
keys = ["groups.lr.0", "groups.lr.2"]
assert list(rows[0].keys())[3:5] == keys, list(rows[0].keys())
for r in rows:
    i = int(r["index"])
    assert r["status"] == "finished", r
    assert r["run"] == f"run-{i:03d}", r
    for k in keys:
        assert float(r[k]) == float(plan[i][k]), (i, k, r[k], plan[i][k])
    assert r["final_valid_loss"] and r["final_valid_acc"] and r["best_valid_acc"] and r["last_step"], r
losses = [float(r["final_valid_loss"]) for r in rows]
assert losses == sorted(losses), losses
assert sorted(int(r["index"]) for r in rows) == [0, 1, 2, 3]
print("report.csv:", [(r["index"], r["groups.lr.0"], r["groups.lr.2"], r["final_valid_loss"]) for r in rows])
PY
    local png
    for png in heatmap curves; do
        [[ "$(head -c 4 "$d/runs/$png.png" 2>/dev/null | tail -c 3)" == PNG ]] &&
            ok "$png.png written" || bad "$png.png missing or not a PNG"
    done
}

test_preempt() {
    local d="$work/preempt"
    mkdir -p "$d"
    # About 10-20 s on 2 ranks: an mlp (no BatchNorm, no dropout: nothing rank-local), a
    # checkpoint every 20 steps, 64 steps an epoch.
    cat >"$d/long.yaml" <<YAML
model: {arch: mlp, widths: [256, 256], input: [1, 16, 16], classes: 4}
groups: {lr: [0.01, 0.02, 0.05], wd: 0.0001, momentum: 0.9}
optimizer: {type: sgd}
schedule: {type: one_cycle}
data: {train: synthetic, valid: synthetic, batch_size: 32,
       synthetic: {samples: 4096, classes: 4, input: [1, 16, 16], seed: 7}}
train: {epochs: 6, seed: 42, log_every: 16}
checkpoint: {every_steps: 20, keep: 3}
run: {dir: $d/run}
YAML
    local job out="$d/train.out"
    job=$(cd "$d" && sbatch --parsable --ntasks=2 --output="$out" "$src/launch/slurm/train.sbatch" "$d/long.yaml") ||
        { bad "sbatch train.sbatch failed: $job"; return; }
    echo "submitted job $job"
    wait_for 120 "the first checkpoint" test -e "$d/run/checkpoints/latest" ||
        { show_logs "$out"; bad "no checkpoint"; return; }
    # What --signal=B:USR1@120 does before the time limit: SIGUSR1 to the batch shell only.
    scancel --signal=USR1 --batch "$job" || { bad "scancel --signal=USR1 --batch $job failed"; return; }
    echo "sent SIGUSR1 to job $job's batch shell"
    requeued() { grep -q "requeueing job $job" "$out" 2>/dev/null; }
    wait_for 60 "strata to stop with 75 and the job to requeue" requeued ||
        { show_logs "$out"; bad "the job did not requeue itself"; return; }
    # Until the requeued job starts again (cred_expire, 10 s here, at the earliest):
    [[ "$(cat "$d/run/status")" == preempted ]] && ok "status: preempted" ||
        bad "status after the stop: $(cat "$d/run/status")"
    local stopped
    stopped=$(sed -n 's/.*stopped on signal 10 after global step \([0-9]*\).*/\1/p' "$out" | head -n 1)
    [[ -n "$stopped" ]] && ok "strata stopped on SIGUSR1 after global step $stopped, exit 75, job requeued" ||
        { show_logs "$out"; bad "no 'stopped on signal' line"; }
    finished() { [[ "$(cat "$d/run/status" 2>/dev/null)" == finished ]] && job_gone "$job"; }
    # A requeued job waits cred_expire (10 s here) before it may start again.
    wait_for 180 "the requeued job to finish" finished || { squeue; show_logs "$out"; bad "the requeued job did not finish"; return; }
    grep -q "strata job $job (restart 1)" "$out" && ok "the job ran again (restart 1)" ||
        { show_logs "$out"; bad "no second run in $out"; }
    scontrol show job "$job" | grep -q "Restarts=1" && ok "Slurm counts one restart" ||
        { scontrol show job "$job"; bad "Slurm does not count a restart"; }
    grep -q "resumed from $d/run/checkpoints/ckpt-0*$stopped.h5" "$out" &&
        grep -q "resuming at .*(global step $((stopped + 1)))" "$out" &&
        ok "resumed from the checkpoint of step $stopped at global step $((stopped + 1))" ||
        { grep -n "resum" "$out"; bad "did not resume from the checkpoint saved at the signal"; }

    # The same training without interruption (same launcher, same 2 ranks, another run.dir).
    "$src/launch/strata-mpirun" -n 2 train "$d/long.yaml" --set run.dir="$d/straight" \
        >"$d/straight.log" 2>&1 || { tail -n 30 "$d/straight.log"; bad "the uninterrupted run failed"; return; }
    local a b
    a="$d/straight/checkpoints/$(cat "$d/straight/checkpoints/latest")"
    b="$d/run/checkpoints/$(cat "$d/run/checkpoints/latest")"
    /usr/bin/python3 "$src/tests/ckpt_compare.py" "$a" "$b" &&
        ok "the preempted and requeued run ends bitwise where the uninterrupted one does" ||
        bad "final checkpoints differ"
}

case "$what" in
    sweep) test_sweep ;;
    preempt) test_preempt ;;
    all) test_sweep; test_preempt ;;
    *) echo "unknown test '$what' (sweep, preempt or all)"; exit 2 ;;
esac
echo "$pass passed, $failed failed"
((failed == 0))
