#!/usr/bin/env bash
# The collective timeout (comm_set_timeout) case by case, with tests/faults/comm_timeout.c:
# a rank that never joins (late by 600 s, outside MPI) ends the job non-zero within the
# timeout plus 10 s, and the rank(s) still waiting name it, its host and the step, and only
# it; a rank late by less than the timeout, or by less than 10 x the timeout after work it
# does alone (comm_agree_after), does not trigger it; ranks waiting in different collectives
# all answer and are described as such.
# Usage: comm_timeout.sh CASE MPIEXEC PROG
set -uo pipefail
case=$1 mpiexec=$2 prog=$3
log=$(mktemp "${TMPDIR:-/tmp}/strata-comm-timeout.XXXXXX")
trap 'rm -f "$log"' EXIT
T=2
job() { # NP LATE_S: runs the case; sets st and took (seconds)
    local start=$(date +%s%N)
    timeout -k 5 60 "$mpiexec" -n "$1" --oversubscribe "$prog" "$case" $T "$2" > "$log" 2>&1
    st=$? took=$((($(date +%s%N) - start) / 1000000000))
}
fail() { echo "FAIL: $case: $* (exit $st after ${took}s):"; cat "$log"; exit 1; }
# RANK's line: it timed out at step 7 in WHAT and names rank 1 alone.
named() { # RANK WHAT
    grep -Eq "^strata: rank $1 \([^)]+\): step 7: $2 (did not complete within comm.timeout_s = $T s|had waited [0-9.]+ s when rank [0-9]+ \([^)]+\), past its comm.timeout_s = $T s, asked); no answer from rank 1 \([^)]+\) \(stopped, hung or unreachable\); ending the job$" "$log"
}
ended() { # [LIMIT_S]: the job ended non-zero within LIMIT_S, by default the timeout plus 10 s
    local limit=${1:-$((T + 10))}
    ((st == 124 || st == 137)) && fail "the job hung (killed after 60 s)"
    ((st != 0 && took <= limit)) || fail "expected a non-zero exit within $limit s"
}
case $case in
agree)
    job 3 600; ended
    named 0 "the ranks' agreement" || fail "rank 0 does not name rank 1 alone"
    named 2 "the ranks' agreement" || fail "rank 2 (late but alive) does not name rank 1 alone"
    job 2 1; ((st == 0)) || fail "a rank 1 s late under a 2 s timeout ended the job"
    ;;
nonblocking | after)
    job 2 600; ended
    named 0 "the gradient all-reduce of group [01]" || fail "rank 0 does not name rank 1"
    ;;
thread)
    job 2 600; ended
    named 0 "the gradient all-reduce of group [01] \(communication thread\)" || fail "rank 0 does not name rank 1"
    ;;
alone)
    job 2 4; ((st == 0)) || fail "rank 0 waited 4 s for rank 1's work alone (limit 10 x $T s) and timed out"
    job 2 600; ended $((10 * T + 10))
    grep -Eq "^strata: rank 0 \([^)]+\): step 7: the ranks' agreement did not complete within $((10 * T)) s \(10 x comm.timeout_s = $T s: it follows work one rank does alone\); no answer from rank 1 " "$log" ||
        fail "rank 0 does not name rank 1 after 10 x the timeout"
    ;;
mismatch)
    job 2 0; ended
    grep -Eq "^strata: rank 0 \([^)]+\): step 7: a broadcast from rank 0 .*; every rank answered, so they wait in different collectives: rank 1 \([^)]+\) at step 7 in a broadcast from rank 1; ending the job$" "$log" ||
        fail "rank 0 does not say that rank 1 waits in its own broadcast"
    ;;
*) echo "unknown case $case"; exit 2 ;;
esac
echo "ok: $case (last job: exit $st after ${took}s)"
grep "^strata: rank" "$log" || true
