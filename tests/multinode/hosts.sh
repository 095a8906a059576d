# Hosts in network namespaces for the multi-node tests (sourced by tests/multinode/*.sh).
#
# smn_up N makes N "hosts" smn-h0 .. smn-h(N-1): each a network namespace with its loopback up
# and one veth, smn-eK inside at 10.213.7.(K+1)/24, whose other end smn-vK sits on the bridge
# smn-br in the root namespace. The bridge and the root-side ends have no address, so the
# root namespace's routes and addresses are untouched and 10.213.7.0/24 exists only between
# the hosts. smn_mpirun runs mpirun inside smn-h0 (its rank 0 there) with
# tests/multinode/agent.sh as its ssh, which starts Open MPI's daemons in the other hosts'
# namespaces; ranks talk TCP over the veths, as on a cluster.
#
# What a namespace host shares with the machine: the file system (the strata binary, the
# configs, a run.dir: shared storage, unless SMN_HIDE hides it, see agent.sh), the process
# table and the CPUs. What it does not: its network (addresses, links, a link that goes down,
# a packet filter) and its host name (agent.sh gives each its own UTS namespace).
#
# Names all start with smn- and are made by nothing else; smn_down removes every one of them
# (and kills what runs in the namespaces), and smn_up first does the same, so a run killed
# with SIGKILL leaves nothing that the next run does not remove. smn_trap installs smn_down on
# EXIT, INT and TERM. A lock (/tmp/strata-multinode.lock) keeps two test scripts from
# sharing the names at once.
#
# smn_can exits 77 (ctest's skip) with a message saying why, where namespaces cannot be made
# (not root, no `ip netns`, no veth or bridge support) or mpirun is missing.

SMN_NET=10.213.7
SMN_HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SMN_AGENT=$SMN_HERE/agent.sh
SMN_N=0

smn_skip() { echo "SKIPPED: multinode: $*"; exit 77; }

# Exits 77 where this machine cannot make namespace hosts.
smn_can() {
    (($(id -u) == 0)) || smn_skip "needs root to make network namespaces (running as $(id -un))"
    command -v ip > /dev/null || smn_skip "no 'ip' command (Debian's iproute2)"
    command -v unshare > /dev/null || smn_skip "no 'unshare' command (util-linux)"
    command -v mpirun > /dev/null || smn_skip "no mpirun (Debian's openmpi-bin)"
    smn_lock
    smn_down
    local err
    if ! err=$({ ip netns add smn-probe && ip link add smn-probe0 type veth peer name smn-probe1 &&
                 ip link add smn-probebr type bridge; } 2>&1); then
        ip link del smn-probe0 2> /dev/null; ip link del smn-probebr 2> /dev/null
        ip netns del smn-probe 2> /dev/null
        smn_skip "cannot make a network namespace, a veth pair or a bridge here: $err"
    fi
    ip link del smn-probe0; ip link del smn-probebr; ip netns del smn-probe
}

# Holds /tmp/strata-multinode.lock on fd 9 until the script exits (10 minutes at most).
smn_lock() {
    exec 9> /tmp/strata-multinode.lock
    flock -w 600 9 || { echo "FAIL: multinode: /tmp/strata-multinode.lock held for 10 minutes"; exit 1; }
}

# Removes every smn- namespace (killing its processes first), veth and bridge.
smn_down() {
    local ns p
    for ns in $(ip netns list 2> /dev/null | awk '$1 ~ /^smn-/ { print $1 }'); do
        for p in $(ip netns pids "$ns" 2> /dev/null); do kill -CONT "$p" 2> /dev/null; kill -9 "$p" 2> /dev/null; done
    done
    for ns in $(ip netns list 2> /dev/null | awk '$1 ~ /^smn-/ { print $1 }'); do
        for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -z $(ip netns pids "$ns" 2> /dev/null) ]] && break; sleep 0.1; done
        ip netns del "$ns" 2> /dev/null
    done
    for p in $(ip -o link show 2> /dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep '^smn-'); do
        ip link del "$p" 2> /dev/null
    done
}

smn_trap() {
    trap 'smn_down' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Makes hosts smn-h0 .. smn-h(N-1) on the bridge smn-br (after removing any leftovers).
smn_up() {
    local n=$1 k
    smn_down
    ip link add smn-br type bridge && ip link set smn-br up || return 1
    for ((k = 0; k < n; k++)); do
        ip netns add "smn-h$k" &&
            ip link add "smn-v$k" type veth peer name "smn-e$k" netns "smn-h$k" &&
            ip link set "smn-v$k" master smn-br up &&
            ip -n "smn-h$k" link set lo up &&
            ip -n "smn-h$k" addr add "$SMN_NET.$((k + 1))/24" dev "smn-e$k" &&
            ip -n "smn-h$k" link set "smn-e$k" up || return 1
    done
    SMN_N=$n
    smn_wait_net
}

# Until every host reaches every other (the bridge forwards once its ports are up).
smn_wait_net() {
    local k j t
    for ((t = 0; t < 100; t++)); do
        local okay=1
        for ((k = 1; k < SMN_N; k++)); do
            local out
            out=$(ip netns exec smn-h0 timeout 1 bash -c "exec 3<>/dev/tcp/$SMN_NET.$((k + 1))/22" 2>&1)
            [[ $out == *"Connection refused"* ]] || okay=0
        done
        ((okay)) && return 0
        sleep 0.1
    done
    echo "FAIL: multinode: the namespace hosts do not reach each other"
    return 1
}

# The addresses of the first N hosts, comma-separated, one slot each (mpirun -H).
smn_hosts() {
    local n=$1 k out=""
    for ((k = 0; k < n; k++)); do out+="${out:+,}$SMN_NET.$((k + 1))"; done
    echo "$out"
}

# mpirun ARGS... inside smn-h0 (rank 0's host), ranks and daemons reached over 10.213.7.0/24,
# under the host name smn-h0. Its daemons on the other hosts come through agent.sh. Ended
# after SMN_TIMEOUT seconds (default 120; then status 124, or 137 if it ignored SIGTERM).
smn_mpirun() {
    timeout -k 5 "${SMN_TIMEOUT:-120}" ip netns exec smn-h0 unshare --uts /bin/sh -c 'echo smn-h0 > /proc/sys/kernel/hostname && exec "$@"' \
        smn-mpirun env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
        mpirun --oversubscribe --bind-to none \
        --mca plm_rsh_agent "$SMN_AGENT" --mca plm_rsh_no_tree_spawn 1 \
        --mca btl tcp,self --mca btl_tcp_if_include "$SMN_NET.0/24" \
        --mca oob_tcp_if_include "$SMN_NET.0/24" \
        -x OPENBLAS_NUM_THREADS=1 -x STRATA_BLAS_THREADS=1 "$@"
}

# The pid of the process on host K whose command line matches the extended regex RE.
smn_pid_on() {
    local k=$1 re=$2 p
    for p in $(ip netns pids "smn-h$k" 2> /dev/null); do
        tr '\0' ' ' < "/proc/$p/cmdline" 2> /dev/null | grep -Eq "$re" && { echo "$p"; return 0; }
    done
    return 1
}
