#!/usr/bin/env bash
# Preemption under mpiexec -n 2: SIGUSR1 (what Slurm's --signal sends, forwarded by mpirun to
# the ranks) stops every rank after the same step with a checkpoint and exit status 75;
# run.dir/status says preempted; --resume auto finishes, bitwise equal to an uninterrupted
# run (an mlp: no BatchNorm statistics to average at the extra checkpoint). Then a fresh run
# refuses the directory of a finished run and of a different run (nothing overwritten), and a
# second SIGTERM ends a run at once.
# Usage: train_preempt.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pid=
trap 'kill -9 $pid 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
args=(--set model.widths=[256,256] --set data.batch_size=16 --set train.epochs=40 --set checkpoint.every_epochs=5)
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/straight" "${args[@]}" > "$dir/straight.log" 2>&1 ||
    { tail "$dir/straight.log"; echo "FAIL: uninterrupted run"; exit 1; }
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/run" "${args[@]}" > "$dir/run.log" 2>&1 &
pid=$!
for _ in $(seq 300); do [ -f "$dir/run/checkpoints/latest" ] && break; sleep 0.1; done
kill -USR1 "$pid"
wait "$pid"
st=$?
pid=
if ((st == 75)) && grep -q "stopped on signal 10 after global step" "$dir/run.log" && [ "$(cat "$dir/run/status")" = preempted ]; then
    ok "SIGUSR1: exit 75, status preempted, $(grep -o 'after global step [0-9]*' "$dir/run.log")"
else
    tail -5 "$dir/run.log"; bad "SIGUSR1: exit $st, status $(cat "$dir/run/status" 2>/dev/null)"
fi
grep -q "global step 640" "$dir/run.log" && bad "the run finished before the signal: the test did not test it"
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/run" "${args[@]}" --resume auto >> "$dir/run.log" 2>&1 ||
    bad "resume after preemption"
[ "$(cat "$dir/run/status")" = finished ] && ok "resumed and finished" || bad "status after resume: $(cat "$dir/run/status")"
final() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
/usr/bin/python3 "$here/ckpt_compare.py" "$(final "$dir/straight")" "$(final "$dir/run")" || bad "preempted run differs"
# Nothing of an earlier run is overwritten.
"$strata" train "$config" --set run.dir="$dir/run" "${args[@]}" --set data.batch_size=32 > "$dir/again.log" 2>&1
st=$?
((st == 1)) && grep -q "already holds a different run: its config.yaml has '  batch_size: 16" "$dir/again.log" &&
    ok "a different run into the same run.dir is refused" || { cat "$dir/again.log" | tail -2; bad "different run: exit $st"; }
"$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$dir/run" "${args[@]}" > "$dir/again.log" 2>&1
st=$?
((st == 1)) && grep -q "already holds this run's checkpoints" "$dir/again.log" &&
    ok "the same run again without --resume is refused" || { tail -2 "$dir/again.log"; bad "same run again: exit $st"; }
/usr/bin/python3 "$here/ckpt_compare.py" "$(final "$dir/straight")" "$(final "$dir/run")" > /dev/null || bad "the refused runs changed the checkpoint"
# A second SIGTERM stops at once (SIGTERM's default action), without waiting for the step.
# (Wide layers: the stop's step and checkpoint outlast the 20 ms between the signals.)
"$strata" train "$config" --set run.dir="$dir/twice" "${args[@]}" --set model.widths=[4096,4096] \
    --set train.epochs=4000 > "$dir/twice.log" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "epoch 2/4000" "$dir/twice.log" && break; sleep 0.1; done
kill -TERM "$pid"; sleep 0.02; kill -TERM "$pid"
wait "$pid"
st=$?
pid=
((st == 128 + 15)) && ok "a second SIGTERM: killed by it (exit $st)" || bad "a second SIGTERM: exit $st"
echo "$((fails == 0 ? 1 : 0)) passed, $((fails == 0 ? 0 : 1)) failed"
((fails == 0))
