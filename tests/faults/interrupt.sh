#!/usr/bin/env bash
# Stopping a run by signal (issue 17 item 6; docs/cluster.md "Signals"):
#  1. strata train alone, Ctrl-C (SIGINT) once: a checkpoint after the current step, exit 75,
#     status "preempted", the checkpoint verifies;
#  2. Ctrl-C twice: the process ends at once (exit 130), status "interrupted";
#  3. launch/strata-mpirun -n 2, SIGTERM: every rank saves and stops, the launcher exits 75;
#  4. launch/strata-mpirun -n 2, Ctrl-C twice: every rank is gone when the launcher returns
#     (exit 140: the ranks ended on SIGUSR2), status "interrupted".
# Before the fix: 1 and 2 died at once with status "running"; 4 left ranks running after
# mpirun returned, status "running".
# Usage: interrupt.sh STRATA CONFIG LAUNCHER
set -uo pipefail
strata=$1 config=$2 launcher=$3
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-interrupt.XXXXXX")
trap 'pkill -KILL -f "run.dir=$dir/" 2>/dev/null; rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
# Background jobs of a script ignore SIGINT, and a program cannot undo that for itself: start
# them with SIGINT at its default, as a terminal would.
sigint_default() { exec /usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"; }
# Waits (at most 60 s) until run.dir $1 has a checkpoint, i.e. training is under way.
started() {
    for _ in $(seq 600); do
        ls "$1"/checkpoints/ckpt-*.h5 > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
# The strata processes of run.dir $1 still alive.
alive() { pgrep -f "run.dir=$1 " | wc -l; }
long=(--set train.epochs=100000 --set checkpoint.every_steps=16)
big=(--set model.widths=[2048,2048]) # steps long enough for a second signal to land mid-step

# 1. One SIGINT: checkpoint and exit 75; then resume to the end.
run=$dir/one
sigint_default "$strata" train "$config" --set run.dir="$run" "${long[@]}" > "$dir/one.log" 2>&1 &
pid=$!
started "$run" || bad "case 1 did not start"
kill -INT $pid
wait $pid
st=$?
if ((st == 75)) && [ "$(cat "$run/status")" = preempted ] && grep -q "stopped on signal 2" "$dir/one.log"; then
    ok "one SIGINT: checkpoint saved, exit 75"
else
    bad "one SIGINT (exit $st, status '$(cat "$run/status")')"; tail -3 "$dir/one.log"
fi
latest=$run/checkpoints/$(cat "$run/checkpoints/latest")
"$strata" inspect "$latest" --verify > /dev/null 2>&1 && ok "its checkpoint verifies" || bad "checkpoint $latest"

# 2. Two SIGINTs: the end, at once.
run=$dir/two
sigint_default "$strata" train "$config" --set run.dir="$run" "${long[@]}" "${big[@]}" > "$dir/two.log" 2>&1 &
pid=$!
started "$run" || bad "case 2 did not start"
kill -INT $pid
sleep 0.05
kill -INT $pid
wait $pid
st=$?
if ((st == 130)) && grep -q "^interrupted: signal 2" "$run/status"; then
    ok "two SIGINTs: ended at once (exit 130), status interrupted"
else
    bad "two SIGINTs (exit $st, status '$(cat "$run/status")')"
fi

# 3. The launcher, SIGTERM.
run=$dir/term
"$launcher" -n 2 --oversubscribe train "$config" --set run.dir="$run" "${long[@]}" > "$dir/term.log" 2>&1 &
pid=$!
started "$run" || bad "case 3 did not start"
kill -TERM $pid
wait $pid
st=$?
n=$(alive "$run")
if ((st == 75 && n == 0)) && [ "$(cat "$run/status")" = preempted ]; then
    ok "launcher, SIGTERM: every rank saved and stopped, exit 75"
else
    bad "launcher, SIGTERM (exit $st, $n rank(s) alive, status '$(cat "$run/status")')"; tail -3 "$dir/term.log"
fi

# 4. The launcher, Ctrl-C twice.
run=$dir/int2
sigint_default "$launcher" -n 2 --oversubscribe train "$config" --set run.dir="$run" "${long[@]}" "${big[@]}" \
    > "$dir/int2.log" 2>&1 &
pid=$!
started "$run" || bad "case 4 did not start"
kill -INT $pid
sleep 0.1
kill -INT $pid
wait $pid
st=$?
n=$(alive "$run")
if ((st != 0 && n == 0)) && grep -q "^interrupted: " "$run/status"; then
    ok "launcher, two SIGINTs: every rank gone on return (exit $st), status interrupted"
else
    bad "launcher, two SIGINTs (exit $st, $n rank(s) alive, status '$(cat "$run/status")')"
fi

((fails == 0)) && echo "all interrupt cases passed" || echo "$fails case(s) failed"
exit $((fails > 0))
