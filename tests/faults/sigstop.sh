#!/usr/bin/env bash
# The collective timeout (comm.timeout_s) against a rank that stops answering: a 2-rank job
# on one host takes step checkpoints, then rank 1 is stopped with SIGSTOP mid-training. The
# job must end non-zero within comm.timeout_s plus 10 s, rank 0 must say which rank (and
# host) stopped answering and at which step, no rank may be left running, the newest
# checkpoint must verify (strata inspect --verify), and --resume auto must continue from it.
# Without the timeout the job waits for ever (the outer `timeout` turns that into a failure).
# Usage: sigstop.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
T=5
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-sigstop.XXXXXX")
run=$dir/run ck=$dir/run/checkpoints
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The pids of this job's strata processes (not mpiexec's, whose arguments also name run.dir).
ranks_of() { pgrep -f "^$strata train .*run.dir=$1( |$)"; }
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
sets=(--set run.dir="$run" --set comm.timeout_s=$T --set checkpoint.every_steps=5
      --set checkpoint.keep=3 --set train.max_steps=0 --set train.epochs=100000
      --set train.log_every=5 --set data.batch_size=32)

timeout -k 5 120 "$mpiexec" -n 2 --oversubscribe "$strata" train "$config" "${sets[@]}" \
    > "$dir/a.log" 2>&1 &
job=$!
pids+=("$job")
t0=$(now_ms)
while [[ ! -s $ck/latest ]] && (($(now_ms) - t0 < 60000)); do sleep 0.1; done
sleep 0.5 # a few more steps and checkpoints
victim=""
for p in $(ranks_of "$run"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
if [[ ! -s $ck/latest || -z $victim ]]; then
    echo "FAIL: the job took no checkpoint, or its rank 1 was not found:"; tail -20 "$dir/a.log"; exit 1
fi
pids+=("$victim")
t0=$(now_ms)
kill -STOP "$victim"
wait "$job"
st=$? ms=$(($(now_ms) - t0))
limit=$(((T + 10) * 1000))
line=$(grep -m1 "^strata: rank 0 (" "$dir/a.log" | grep "did not complete within")
if ((st != 0 && st != 124 && st != 137 && ms <= limit)); then
    ok "rank 1 stopped (pid $victim): the job ended with status $st after $ms ms (limit $limit)"
else
    bad "rank 1 stopped (pid $victim): mpiexec exited $st after $ms ms (limit $limit ms; 124: it hung until the outer timeout)"
    tail -20 "$dir/a.log"
fi
if grep -Eq "^strata: rank 0 \([^)]+\): step [0-9]+: .+ did not complete within comm.timeout_s = $T s; no answer from rank 1 \([^)]+\) \(stopped, hung or unreachable\); ending the job$" <<< "$line"; then
    ok "rank 0 named rank 1: $line"
else
    bad "rank 0's message does not name rank 1 and the step:"; tail -20 "$dir/a.log"
fi
sleep 0.5
kill -CONT "$victim" 2>/dev/null
sleep 0.5
left=$(ranks_of "$run" | tr '\n' ' ')
[[ -z $left ]] && ok "no rank left running" || { bad "ranks left running: $left"; kill -9 $left 2>/dev/null; }

newest=$(cat "$ck/latest" 2>/dev/null)
if [[ -n $newest ]] && "$strata" inspect "$ck/$newest" --verify > "$dir/inspect.log" 2>&1; then
    ok "the newest checkpoint $newest verifies"
else
    bad "the newest checkpoint '$newest' does not verify:"; cat "$dir/inspect.log"
fi
step=${newest#ckpt-} step=${step%.h5} step=$((10#$step))
timeout -k 5 120 "$mpiexec" -n 2 --oversubscribe "$strata" train "$config" "${sets[@]}" \
    --resume auto --stop-after $((step + 7)) > "$dir/b.log" 2>&1
st=$?
if ((st == 0)) && grep -q "resumed from .*/$newest" "$dir/b.log" &&
    grep -q "stopped after global step $((step + 7))" "$dir/b.log"; then
    ok "--resume auto continued from $newest to step $((step + 7))"
else
    bad "--resume auto (exit $st):"; tail -20 "$dir/b.log"
fi
exit $((fails > 0))
