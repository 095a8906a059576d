#!/usr/bin/env bash
# A rank that dies mid-training (kill -9) ends the whole job: mpiexec exits non-zero within
# 30 s and no rank of the job is left running. Once with rank 1 killed, once with rank 0
# (the one writing metrics.jsonl). The job is a long synthetic run; a rank is killed as soon
# as metrics.jsonl has a line, found by its unique run.dir and its OMPI_COMM_WORLD_RANK.
# Usage: train_rank_killed.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The pids of this job's strata processes (not mpiexec's, whose arguments also name run.dir).
ranks_of() { pgrep -f "^$strata train .*run.dir=$1( |$)"; }
pass=0 fail=0
check() { # VICTIM_RANK
    local victim=$1 run="$dir/killed-rank$1"
    timeout 60 "$mpiexec" -n 2 --oversubscribe "$strata" train "$config" --set run.dir="$run" \
        --set train.max_steps=0 --set train.epochs=100000 --set train.log_every=10 \
        --set data.batch_size=32 > "$dir/out$victim.log" 2>&1 &
    local job=$!
    pids+=("$job")
    local t0=$(now_ms)
    while [[ ! -s $run/metrics.jsonl ]] && (($(now_ms) - t0 < 30000)); do sleep 0.1; done
    local pid="" p
    for p in $(ranks_of "$run"); do
        tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim" && pid=$p
    done
    if [[ ! -s $run/metrics.jsonl || -z $pid ]]; then
        echo "FAIL: rank $victim: the job did not start training, or its rank $victim was not found:"
        tail -20 "$dir/out$victim.log"
        fail=$((fail + 1))
        kill -9 "$job" 2>/dev/null
        return
    fi
    t0=$(now_ms)
    kill -9 "$pid"
    wait "$job"
    local st=$? ms=$(($(now_ms) - t0))
    sleep 0.2
    local left=$(ranks_of "$run" | tr '\n' ' ')
    if ((st != 0 && st != 124 && ms <= 30000)) && [[ -z $left ]]; then
        echo "ok: rank $victim killed (pid $pid): mpiexec exited $st after $ms ms"
        pass=$((pass + 1))
    else
        echo "FAIL: rank $victim killed (pid $pid): mpiexec exited $st after $ms ms (limit 30000 ms; 124 is the timeout); ranks left running: '${left}'"
        tail -20 "$dir/out$victim.log"
        fail=$((fail + 1))
    fi
}
check 1
check 0
echo "$pass passed, $fail failed"
((fail == 0))
