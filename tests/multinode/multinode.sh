#!/usr/bin/env bash
# strata across hosts: each case runs strata train on 2 to 4 hosts made of network namespaces
# (tests/multinode/hosts.sh; Open MPI over TCP between them, mpirun in the first host, its
# daemons started by tests/multinode/agent.sh as ssh would) and checks what a cluster run
# must do. Skipped (77) where namespaces cannot be made. Every mpirun runs under a timeout,
# so a hang fails the case instead of stalling CI.
#   equiv        tests/configs/equiv.yaml on 2 and 4 hosts: the losses and weights of one host
#                (tests/compare_runs.py's tolerance)
#   loss         the same on 2 hosts whose links drop 1% of packets (netem, or an nftables
#                rule where the kernel has no netem); the drops are counted, so the case
#                cannot pass without any
#   resume       resume.yaml (BatchNorm, dropout, two phases): 2 hosts straight equal bitwise
#                2 ranks on one host, and 12 steps, a stop and a resume across the hosts
#                (checkpoint written by rank 0 on shared storage); a resume onto 4 hosts
#                keeps the global batch and finishes; onto 3 hosts it is refused on every
#                rank, naming the global batch and the host count
#   hidden       the same stop and resume when run.dir exists only on rank 0's host (the other
#                hosts see an empty tmpfs at the test's directory: agent.sh's SMN_HIDE, a
#                mount namespace per host), bitwise equal to the straight run; a checkpoint
#                with a flipped byte, and a --resume path missing, are refused on every rank
#                with rank 0's message, non-zero
#   sigstop      3 hosts, rank 1 stopped (SIGSTOP) on its host mid-training under
#                comm.timeout_s 5: ended within the timeout + 10 s, non-zero, ranks 0 and 2
#                both name rank 1 and its host; the newest checkpoint verifies and --resume
#                auto continues it on the three hosts
#   linkdown     3 hosts, host 1's link set down (ip link, from the root namespace) mid-step:
#                the same, and --resume auto continues on the 2 hosts left (another host
#                count). The namespaces use net.ipv4.tcp_retries2 = 3: Open MPI's mpirun
#                waits for its lost daemon until TCP gives up on it (15 retries, about 15
#                minutes, by default; docs/cluster.md)
#   unreachable  a host list naming an address with no host: Open MPI's own error ("ORTE was
#                unable to reliably start one or more daemons"), non-zero, within 60 s, and
#                no strata process left
#   differ       host 1 sees another strata build (the same binary with another git id) at the
#                same path, then another config at the same path: every rank exits non-zero,
#                the message names both ranks and both hosts
# Usage: multinode.sh CASE STRATA TESTS_DIR
set -uo pipefail
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case=$1 strata=$(realpath "$2") tests=$(realpath "$3")
source "$tests/multinode/hosts.sh"
smn_can
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-multinode.XXXXXX")
chmod 755 "$dir"
cleanup() { smn_down; rm -rf "$dir"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
py() { /usr/bin/python3 "$@"; }

# train NAME N CONFIG ARGS...: strata train on hosts 0..N-1, or on $HOSTS (addresses) if set
# (N = 0: one host, no namespaces, 1 rank), run.dir $dir/NAME, the log appended to
# $dir/NAME.log; sets st and returns it.
train() {
    local name=$1 n=$2 config=$3
    shift 3
    local cmd=("$strata" train "$config" --set run.dir="$dir/$name" "$@")
    if ((n == 0)); then
        timeout -k 5 120 "${cmd[@]}" >> "$dir/$name.log" 2>&1
    else
        smn_mpirun -n "$n" -H "${HOSTS:-$(smn_hosts "$n")}" "${cmd[@]}" >> "$dir/$name.log" 2>&1
    fi
    st=$?
    return $st
}
# must NAME N CONFIG ARGS...: train, which must succeed.
must() {
    train "$@"
    ((st == 0)) || { tail -30 "$dir/$1.log"; bad "$1: strata train on $2 host(s) exited $st"; exit 1; }
}
final() { echo "$dir/$1/checkpoints/$(cat "$dir/$1/checkpoints/latest")"; }
same_ckpt() { # WHAT A B: bitwise equal checkpoints
    if py "$tests/ckpt_compare.py" "$2" "$3" > "$dir/cmp.log" 2>&1; then ok "$1"; else bad "$1:"; cat "$dir/cmp.log"; fi
}
compare() { # REF OTHERS...: losses and weights of equiv.yaml runs
    py - "$tests" "$dir" "$@" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from compare_runs import compare
fails, _ = compare(sys.argv[2], sys.argv[3], sys.argv[4:], 20)
sys.exit(1 if fails else 0)
PY
    (($? == 0)) || bad "the runs differ (above)"
}
# on_every_rank N WANT LOG: every rank 0..N-1 printed a line with WANT (fixed text).
on_every_rank() {
    local r
    for ((r = 0; r < $1; r++)); do
        grep -F "rank $r: " "$3" | grep -qF -- "$2" || { bad "rank $r does not say '$2':"; tail -20 "$3"; return 1; }
    done
    ok "every rank of $1 says '$2'; rank $(($1 - 1)): $(grep -F "rank $(($1 - 1)): " "$3" | grep -F -- "$2" | head -1)"
}
left_running() { pgrep -f "^$strata train .*run.dir=$dir/" > /dev/null; }

case_equiv() {
    smn_up 4 || exit 1
    local eq=$tests/configs/equiv.yaml
    must one 0 "$eq"
    must hosts2 2 "$eq" --set data.batch_size=32
    must hosts4 4 "$eq" --set data.batch_size=16
    grep -q "4 rank(s) x batch 16 = global batch 64" "$dir/hosts4.log" || bad "hosts4 did not run 4 ranks"
    compare one hosts2 hosts4
}

# Drops 1% of the packets each host sends on its link: netem where the kernel has it, else
# an nftables rule in each namespace (its counter is the number dropped).
lossy_links() {
    local k
    if tc qdisc add dev smn-v0 root netem loss 1% 2> /dev/null; then
        tc qdisc del dev smn-v0 root
        for ((k = 0; k < SMN_N; k++)); do ip netns exec "smn-h$k" tc qdisc add dev "smn-e$k" root netem loss 1% || return 1; done
        loss_by=netem
        return 0
    fi
    command -v nft > /dev/null || smn_skip "no netem in this kernel and no nft (Debian's nftables) to drop packets"
    for ((k = 0; k < SMN_N; k++)); do
        ip netns exec "smn-h$k" nft -f - <<EOF || smn_skip "no netem, and nftables cannot drop packets at random here (numgen)"
table inet smn_loss {
    chain out { type filter hook output priority 0; oifname "smn-e$k" numgen random mod 100 < 1 counter drop; }
}
EOF
    done
    loss_by=nftables
}
dropped() { # packets dropped on every host's link so far
    local k n=0 d
    for ((k = 0; k < SMN_N; k++)); do
        if [[ $loss_by == netem ]]; then
            d=$(ip netns exec "smn-h$k" tc -s qdisc show dev "smn-e$k" | grep -o 'dropped [0-9]*' | head -1 | awk '{print $2}')
        else
            d=$(ip netns exec "smn-h$k" nft list table inet smn_loss | grep -o 'packets [0-9]*' | awk '{print $2}')
        fi
        n=$((n + ${d:-0}))
    done
    echo "$n"
}

case_loss() {
    smn_up 2 || exit 1
    local eq=$tests/configs/equiv.yaml
    lossy_links
    must one 0 "$eq"
    must lossy 2 "$eq" --set data.batch_size=32
    local n
    n=$(dropped)
    if ((n > 0)); then ok "$n packet(s) dropped by $loss_by during the 2-host run"; else bad "no packet was dropped ($loss_by): the case tested nothing"; fi
    compare one lossy
}

# The checks of a resume across hosts: straight against stopped and resumed (bitwise).
resume_pair() { # NAME ARGS...(for both runs)
    local name=$1
    shift
    must "$name" 2 "$tests/configs/resume.yaml" --set data.batch_size=16 --stop-after 12 "$@"
    grep -q "stopped after global step 12" "$dir/$name.log" || bad "$name: no stop at step 12"
    cp "$(final "$name")" "$dir/$name-12.h5" # for case_hidden's bad checkpoints
    must "$name" 2 "$tests/configs/resume.yaml" --set data.batch_size=16 --resume auto "$@"
    grep -q "resuming at phase 2, epoch 1 of the phase, step 5 of the epoch (global step 13)" "$dir/$name.log" ||
        bad "$name: did not resume at step 13"
    same_ckpt "$name: 12 steps, a stop and a resume across 2 hosts equal the straight run bitwise" \
        "$(final straight)" "$(final "$name")"
}

case_resume() {
    smn_up 4 || exit 1
    local rs=$tests/configs/resume.yaml
    must straight 2 "$rs" --set data.batch_size=16
    timeout -k 5 120 mpirun -n 2 --oversubscribe "$strata" train "$rs" --set run.dir="$dir/onehost" \
        --set data.batch_size=16 > "$dir/onehost.log" 2>&1 || { tail -20 "$dir/onehost.log"; bad "2 ranks on one host failed"; }
    same_ckpt "2 ranks on 2 hosts equal 2 ranks on one host bitwise" "$(final onehost)" "$(final straight)"
    resume_pair split
    # Another host count, from a copy of the stop at step 12.
    must world 2 "$rs" --set data.batch_size=16 --stop-after 12
    cp -a "$dir/world" "$dir/world3"
    must world 4 "$rs" --set data.batch_size=16 --resume auto
    grep -q "resuming a run of 2 rank(s) on 4: data.batch_size 16 -> 8 per rank, keeping the global batch 32" "$dir/world.log" &&
        "$strata" inspect "$(final world)" | grep -q "finished; .*global step 24, global batch 32" &&
        ok "a 2-host checkpoint resumed on 4 hosts keeps the global batch 32 and finishes at step 24" ||
        { tail -20 "$dir/world.log"; bad "the resume onto 4 hosts"; }
    train world3 3 "$rs" --set data.batch_size=16 --resume auto
    ((st != 0 && st != 124 && st != 137)) || bad "resume onto 3 hosts: exit $st, expected a refusal"
    on_every_rank 3 "cannot resume a run of global batch 32 (2 rank(s) in the checkpoint) on 3 rank(s) with train.accumulate 1: 32 is not a multiple of 3" "$dir/world3.log"
}

case_hidden() {
    smn_up 2 || exit 1
    local rs=$tests/configs/resume.yaml
    export SMN_HIDE=$dir
    # What host 1 sees at $dir: nothing (the check that the isolation holds).
    local seen
    touch "$dir/marker"
    seen=$(smn_mpirun -n 2 -H "$(smn_hosts 2)" /bin/sh -c 'echo "$OMPI_COMM_WORLD_RANK:$(ls -A "$0")"' "$dir" 2> /dev/null | sort | tr '\n' ' ')
    [[ $seen == "0:marker 1: " ]] && ok "run.dir's directory is visible on host 0 only ($seen)" ||
        { bad "host 1 sees the test's directory, or host 0 does not: '$seen'"; return; }
    must straight 2 "$rs" --set data.batch_size=16
    resume_pair split
    # A flipped byte inside a weight's stored data, and a path that does not exist.
    py - "$dir/split-12.h5" "$dir/flipped.h5" <<'PY'
import shutil, sys, h5py
shutil.copy(sys.argv[1], sys.argv[2])
with h5py.File(sys.argv[2], "r") as f:
    info = f["params/group0/body.1.weight"].id.get_chunk_info(0)
with open(sys.argv[2], "r+b") as f:
    f.seek(info.byte_offset + info.size // 2)
    b = f.read(4)
    f.seek(info.byte_offset + info.size // 2)
    f.write(bytes(x ^ 0xFF for x in b))
PY
    train bad 2 "$rs" --set data.batch_size=16 --resume "$dir/flipped.h5"
    ((st != 0 && st < 124)) && ok "a flipped byte: refused, exit $st" || bad "a flipped byte: exit $st"
    on_every_rank 2 "params/group0/body.1.weight" "$dir/bad.log"
    : > "$dir/bad.log"
    train bad 2 "$rs" --set data.batch_size=16 --resume "$dir/nothere.h5"
    ((st != 0 && st < 124)) && ok "a missing checkpoint: refused, exit $st" || bad "a missing checkpoint: exit $st"
    on_every_rank 2 "$dir/nothere.h5" "$dir/bad.log"
    unset SMN_HIDE
}

# A 3-host job under comm.timeout_s 5 that checkpoints every 5 steps, trains until stopped
# and is hit by FAULT (a command) once a checkpoint exists; checks the end, the message of
# ranks 0 and 2, the newest checkpoint and a --resume auto on RESUME_HOSTS (addresses). The
# job must end within the timeout + SLACK s.
silent_rank() { # FAULT SLACK RESUME_HOSTS
    local fault=$1 slack=$2 rhosts=$3 T=5 rn
    rn=$(tr ',' '\n' <<< "$rhosts" | wc -l)
    local sets=(--set comm.timeout_s=$T --set checkpoint.every_steps=5 --set checkpoint.keep=3
                --set train.max_steps=0 --set train.epochs=100000 --set train.log_every=5)
    local eq=$tests/configs/equiv.yaml ck=$dir/job/checkpoints
    train job 3 "$eq" "${sets[@]}" --set data.batch_size=32 &
    local job=$! t0
    t0=$(date +%s%N)
    while [[ ! -s $ck/latest ]] && (($(date +%s%N) - t0 < 60000000000)); do sleep 0.1; done
    sleep 0.5
    [[ -s $ck/latest ]] || { bad "no checkpoint after 60 s"; wait "$job"; tail -20 "$dir/job.log"; return; }
    t0=$(date +%s%N)
    $fault || { bad "could not inject the fault ($fault)"; wait "$job"; return; }
    wait "$job"
    st=$?
    local ms=$((($(date +%s%N) - t0) / 1000000)) limit=$(((T + slack) * 1000))
    ((st != 0 && st != 124 && st != 137 && ms <= limit)) &&
        ok "$fault: the job ended with status $st after $ms ms (limit $limit)" ||
        { bad "$fault: mpirun exited $st after $ms ms (limit $limit; 124: the harness's timeout)"; tail -20 "$dir/job.log"; }
    local r re
    for r in 0 2; do
        re="^strata: rank $r \(smn-h$r\): step [0-9]+: .+ (did not complete within comm.timeout_s = $T s|had waited [0-9.]+ s when rank [0-9]+ \(smn-h[0-9]\), past its comm.timeout_s = $T s, asked); no answer from rank 1 \(smn-h1\) \(stopped, hung or unreachable\); ending the job$"
        grep -Eq "$re" "$dir/job.log" && ok "rank $r names rank 1 on smn-h1: $(grep -E "$re" "$dir/job.log")" ||
            { bad "rank $r does not name rank 1 (smn-h1):"; grep "^strata: rank" "$dir/job.log"; }
    done
    cont_victim
    local newest step
    newest=$(cat "$ck/latest")
    "$strata" inspect "$ck/$newest" --verify > "$dir/inspect.log" 2>&1 &&
        ok "the newest checkpoint $newest verifies" || { bad "$newest does not verify:"; cat "$dir/inspect.log"; }
    step=${newest#ckpt-} step=${step%.h5} step=$((10#$step))
    HOSTS=$rhosts train job "$rn" "$eq" "${sets[@]}" --set data.batch_size=32 --resume auto --stop-after $((step + 6))
    ((st == 0)) && grep -q "resumed from .*/$newest" "$dir/job.log" &&
        grep -q "stopped after global step $((step + 6))" "$dir/job.log" &&
        ok "--resume auto on $rn hosts continued from $newest to step $((step + 6))" ||
        { bad "--resume auto on $rn hosts (exit $st):"; tail -20 "$dir/job.log"; }
}
stop_rank1() {
    victim=$(smn_pid_on 1 "^$strata train ") && kill -STOP "$victim"
}
link1_down() { ip link set smn-v1 down; }
cont_victim() { [[ -n ${victim:-} ]] && kill -CONT "$victim" 2> /dev/null; victim=""; sleep 0.5; }

case_sigstop() {
    smn_up 3 || exit 1
    silent_rank stop_rank1 10 "$(smn_hosts 3)"
}

case_linkdown() {
    smn_up 3 || exit 1
    local k
    for ((k = 0; k < 3; k++)); do
        ip netns exec "smn-h$k" sh -c 'echo 3 > /proc/sys/net/ipv4/tcp_retries2' || exit 1
    done
    # TCP's give-up (tcp_retries2 3: about 6 s) comes on top of the timeout's 3 s.
    silent_rank link1_down 20 "$SMN_NET.1,$SMN_NET.3"
}

case_unreachable() {
    smn_up 2 || exit 1
    printf '%s slots=1\n%s slots=1\n' "$SMN_NET.1" "$SMN_NET.9" > "$dir/hostfile"
    local t0 ms
    t0=$(date +%s%N)
    SMN_TIMEOUT=60 smn_mpirun -n 2 --hostfile "$dir/hostfile" "$strata" train "$tests/configs/equiv.yaml" \
        --set run.dir="$dir/run" > "$dir/run.log" 2>&1
    st=$? ms=$((($(date +%s%N) - t0) / 1000000))
    ((st != 0 && st != 124 && st != 137)) && ok "exit $st after $ms ms" || bad "exit $st after $ms ms (124: hung until the harness's timeout)"
    grep -q "ssh: connect to host $SMN_NET.9 port 22: No route to host" "$dir/run.log" &&
        grep -q "ORTE was unable to reliably start one or more daemons" "$dir/run.log" &&
        ok "Open MPI says: $(grep -m1 ssh: "$dir/run.log"); ORTE was unable to reliably start one or more daemons" ||
        { bad "not Open MPI's message:"; cat "$dir/run.log"; }
    left_running && bad "a strata process is left running" || ok "no strata process left"
}

case_differ() {
    smn_up 2 || exit 1
    local eq=$tests/configs/equiv.yaml id other
    # Another build: the same binary with one character of its git id changed.
    id=$("$strata" version | sed -n 's/.*(git \([^)]*\)).*/\1/p')
    [[ -n $id ]] || { bad "no git id in '$("$strata" version)'"; return; }
    other=$(py - "$strata" "$dir/strata-other" "$id" <<'PY'
import sys
src, dst, gid = sys.argv[1], sys.argv[2], sys.argv[3].encode()
b = open(src, "rb").read()
other = (b"0" if gid[:1] != b"0" else b"1") + gid[1:]
assert b.count(b"(git " + gid + b")") == 1, "the git id is not in the binary once"
open(dst, "wb").write(b.replace(b"(git " + gid + b")", b"(git " + other + b")"))
print(other.decode())
PY
) || { bad "could not make another build"; return; }
    chmod 755 "$dir/strata-other"
    SMN_BIND_1="$dir/strata-other $strata" train build 2 "$eq"
    ((st != 0 && st < 124)) || bad "another build on host 1: exit $st"
    local v
    v=$("$strata" version | sed 's/^strata //')
    on_every_rank 2 "ranks disagree on the strata build: rank 0 (smn-h0) has '$v', rank 1 (smn-h1) has '${v/$id/$other}'" "$dir/build.log"
    # Another config at the same path on host 1.
    cp "$eq" "$dir/config.yaml"
    sed 's/^  lr: 0.02$/  lr: 0.01/' "$eq" > "$dir/config-other.yaml"
    SMN_BIND_1="$dir/config-other.yaml $dir/config.yaml" train config 2 "$dir/config.yaml"
    ((st != 0 && st < 124)) || bad "another config on host 1: exit $st"
    on_every_rank 2 "ranks disagree on the effective config in groups: rank 0 (smn-h0) has '  lr: 0.02', rank 1 (smn-h1) has '  lr: 0.01'" "$dir/config.log"
}

case $case in
equiv | loss | resume | hidden | sigstop | linkdown | unreachable | differ) "case_$case" ;;
*) echo "usage: multinode.sh equiv|loss|resume|hidden|sigstop|linkdown|unreachable|differ STRATA TESTS_DIR"; exit 2 ;;
esac
left_running && { bad "strata processes left running: $(pgrep -f "^$strata train .*run.dir=$dir/" | tr '\n' ' ')"; }
if ((fails)); then echo "multinode $case: FAILED ($fails)"; exit 1; fi
echo "multinode $case: passed"
