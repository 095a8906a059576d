#!/usr/bin/env bash
# Replicas that disagree end the job on every rank, with a message, within 10 s: an MPMD
# launch (`mpiexec -n 1 strata ... : -n 1 strata ... --set KEY=OTHER`) where rank 1 has a
# different groups.lr, a different model (model.widths), or a config that is invalid on rank
# 1 alone. Each rank's own exit status is recorded by a small bash wrapper and must be
# non-zero; both ranks must name what differs (the start-up agreement: the config's first
# differing line and its section, both ranks, hosts and values), or, for the invalid config,
# rank 1 the error and rank 0 that it stopped. (Open MPI ends the job as soon as one rank
# exits non-zero, so a rank may be killed between printing its message and exiting: then it
# has no recorded status, and its message shows it had failed by itself.) No strata process
# of the job may be left.
# Usage: train_replica_mismatch.sh MPIEXEC STRATA CONFIG
set -uo pipefail
mpiexec=$1 strata=$2 config=$3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
wrap='"$0" "$@"; s=$?; echo $s > "'"$dir"'/status.$OMPI_COMM_WORLD_RANK"; exit $s'
pass=0 fail=0
check() { # NAME RANK1_TEXT RANK0_TEXT RANK1_SET
    local name=$1 want1=$2 want0=$3 set1=$4
    rm -f "$dir"/status.*
    local t0=$(date +%s%N)
    timeout 60 "$mpiexec" --oversubscribe \
        -n 1 bash -c "$wrap" "$strata" train "$config" --set run.dir="$dir/run" : \
        -n 1 bash -c "$wrap" "$strata" train "$config" --set run.dir="$dir/run" --set "$set1" \
        > "$dir/out.log" 2>&1
    local st=$? t1=$(date +%s%N)
    local ms=$(((t1 - t0) / 1000000)) s0=$(cat "$dir/status.0" 2>/dev/null || echo none)
    local s1=$(cat "$dir/status.1" 2>/dev/null || echo none)
    local left=$(pgrep -f "^$strata train .*run.dir=$dir/run( |$)" | tr '\n' ' ')
    if ((st != 0 && st != 124 && ms < 10000)) && [[ -z $left ]] &&
        [[ $s0 =~ ^[1-9][0-9]*$|^none$ && $s1 =~ ^[1-9][0-9]*$|^none$ && $s0$s1 != nonenone ]] &&
        grep -qF "rank 1: $want1" "$dir/out.log" && grep -qF "rank 0: $want0" "$dir/out.log"; then
        echo "ok: $name: mpiexec exit $st, rank 0 exit $s0, rank 1 exit $s1, ${ms} ms"
        pass=$((pass + 1))
    else
        echo "FAIL: $name: mpiexec exit $st, rank 0 exit $s0, rank 1 exit $s1, ${ms} ms (limit 10 s), left running: '$left';"
        echo "  expected 'rank 1: $want1' and 'rank 0: $want0' in:"
        grep -E "^strata|rank [01]" "$dir/out.log" | head -20
        fail=$((fail + 1))
    fi
}
host=$(hostname)
check "groups.lr differs" \
    "ranks disagree on the effective config in groups: rank 0 ($host) has '  lr: 0.02', rank 1 ($host) has '  lr: 0.03'" \
    "ranks disagree on the effective config in groups: rank 0 ($host) has '  lr: 0.02', rank 1 ($host) has '  lr: 0.03'" \
    groups.lr=0.03
check "model.widths differs" \
    "ranks disagree on the effective config in model: rank 0 ($host) has '  widths: [64, 32]', rank 1 ($host) has '  widths: [64, 16]'" \
    "ranks disagree on the effective config in model: rank 0 ($host) has '  widths: [64, 32]'" \
    "model.widths=[64, 16]"
check "invalid config on rank 1 only" \
    "--set groups.lr=-1: groups.lr: a learning rate must be > 0" \
    "stopped because rank 1 failed" \
    groups.lr=-1
echo "$pass passed, $fail failed"
((fail == 0))
