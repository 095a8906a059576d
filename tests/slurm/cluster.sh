#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for tests and for trying the templates in
# launch/slurm/: munged with its own key, slurmctld and slurmd, all configured, spooled and
# logged in one temporary directory, on free ports; nothing in /etc is read or changed.
#
# Sourced (what the tests do):
#   source tests/slurm/cluster.sh
#   slurm_cluster_up DIR     # writes DIR/etc/slurm.conf, starts the daemons, exports SLURM_CONF,
#                            # waits for the node to be idle; installs an EXIT trap that stops
#                            # every daemon it started, by process id (a shell that has an EXIT
#                            # trap already calls slurm_cluster_down in it instead)
#   sbatch ...               # the client commands now talk to this cluster
# Run on its own, it starts a cluster in a temporary directory, runs COMMAND in it (an
# interactive shell by default), and stops the cluster when COMMAND ends:
#   tests/slurm/cluster.sh [COMMAND [ARGS...]]
# Needs root (slurmd runs jobs as their user) and the Debian packages slurm-wlm and munge.
# Exit status 77 (skipped) when they are missing.

# The process ids of the daemons this shell started, stopped by slurm_cluster_down.
SLURM_CLUSTER_PIDS=()
SLURM_CLUSTER_WATCHDOG=
SLURM_CLUSTER_DIR=
SLURM_CLUSTER_SOCK=
SLURM_CLUSTER_HW=

slurm_cluster_log() { printf 'slurm-cluster: %s\n' "$*" >&2; }

# Returns 0 when everything a cluster needs is installed, else prints what is missing and
# returns 1.
slurm_cluster_check() {
    local missing=() cmd
    for cmd in munged mungekey slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if ((${#missing[@]} != 0)); then
        slurm_cluster_log "not installed: ${missing[*]} (Debian packages slurm-wlm and munge;" \
            "./launch/test.sh installs them)"
        return 1
    fi
    if (($(id -u) != 0)); then
        slurm_cluster_log "needs root (slurmd starts jobs as their user)"
        return 1
    fi
}

# Prints a TCP port nothing listens on (the kernel's choice), so that two clusters, or a
# system Slurm, never collide.
slurm_cluster_free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until COMMAND... succeeds, checking every half second, for at most SECONDS.
# Usage: slurm_cluster_wait SECONDS WHAT COMMAND... ; returns 1 (with a message) on timeout.
slurm_cluster_wait() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            slurm_cluster_log "timed out after ${limit}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# Stops every daemon started by slurm_cluster_up, by process id: SIGTERM, then SIGKILL after
# 10 seconds for any that is still there. Safe to call twice.
slurm_cluster_down() {
    local pid i
    if [[ -n "$SLURM_CLUSTER_WATCHDOG" ]]; then
        kill "$SLURM_CLUSTER_WATCHDOG" 2>/dev/null
        wait "$SLURM_CLUSTER_WATCHDOG" 2>/dev/null
        SLURM_CLUSTER_WATCHDOG=
    fi
    ((${#SLURM_CLUSTER_PIDS[@]} != 0)) || return 0
    # Jobs still running are killed with the daemons; cancel them first so slurmd ends them.
    if [[ -n "${SLURM_CONF:-}" ]]; then
        timeout 10 scancel --user="$(id -un)" >/dev/null 2>&1 || true
    fi
    # Newest first: slurmd, slurmctld, then munged, which the other two need until they end.
    for ((i = ${#SLURM_CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${SLURM_CLUSTER_PIDS[i]}
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 20); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SLURM_CLUSTER_PIDS=()
}

# Prints the daemons' logs (for a failing test).
slurm_cluster_logs() {
    local f
    for f in "$SLURM_CLUSTER_DIR"/log/*.log; do
        [[ -f "$f" ]] || continue
        echo "---- $f (last 40 lines) ----"
        tail -n 40 "$f"
    done
}

show_logs() { # FILES...: the job outputs, then the daemons' logs
    local f
    for f in "$@"; do [[ -f "$f" ]] && { echo "---- $f"; tail -n 40 "$f"; }; done
    slurm_cluster_logs
}

# wait_for SECONDS WHAT COMMAND...: polls every half second; 1 (and a message) on timeout.
wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            echo "timed out after ${limit}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

# Inside another Slurm job (or with a SLURM_CONF of a real cluster), the client commands,
# sbatch's option variables and mpirun would see that other cluster: forget it.
slurm_cluster_forget() {
    local var
    for var in $(compgen -e | grep '^SLURM_\|^SBATCH_\|^SALLOC_\|^SRUN_\|^SQUEUE_\|^SCANCEL_'); do
        unset "$var"
    done
}

# Starts munged with a key of its own and its socket in DIR/munge (DIR/{munge,log,run} must
# exist); sets SLURM_CLUSTER_SOCK. Returns 1 (with the logs) if its socket does not appear.
# The socket is a path, so processes in other network namespaces reach it too.
slurm_cluster_munged() {
    local dir=$1
    local sock="$dir/munge/munge.socket"
    mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1 ||
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$dir/munge/munge.key"
    munged --foreground --force --socket="$sock" --key-file="$dir/munge/munge.key" \
        --pid-file="$dir/run/munged.pid" --seed-file="$dir/munge/munged.seed" \
        --log-file="$dir/log/munged.log" >>"$dir/log/munged.log" 2>&1 &
    SLURM_CLUSTER_PIDS+=($!)
    slurm_cluster_wait 20 "munged's socket $sock" test -S "$sock" || { slurm_cluster_logs; return 1; }
    SLURM_CLUSTER_SOCK=$sock
}

# Writes DIR/etc/slurm.conf without its NodeName and PartitionName lines (the caller appends
# them; SLURM_CLUSTER_HW holds this machine's hardware fields for a NodeName line) and
# DIR/etc/cgroup.conf. Usage: slurm_cluster_conf DIR CTLD_NAME CTLD_ADDR CTLD_PORT D_PORT WHAT.
# CTLD_NAME must be the host name slurmctld runs under; every slurmd listens on D_PORT at its
# NodeAddr. Needs slurm_cluster_munged first (the socket).
slurm_cluster_conf() {
    local dir=$1 ctld_name=$2 ctld_addr=$3 ctld_port=$4 d_port=$5 what=$6
    # The machine's real CPUs and memory, as slurmd itself sees them (the line starts with
    # NodeName=HOSTNAME; keep only the hardware fields).
    local hw cpus mem
    hw=$(slurmd -C | head -n 1)
    cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    hw=$(sed 's/^NodeName=[^ ]* //; s/ *UpTime=.*//' <<<"$hw")
    [[ -n "$cpus" && -n "$mem" ]] || { slurm_cluster_log "cannot read the hardware from 'slurmd -C': $hw"; return 1; }
    SLURM_CLUSTER_HW=$hw
    # cred_expire is also how long a requeued job waits before it may start again (120 s by
    # default); 10 s keeps the preemption test short.
    cat >"$dir/etc/slurm.conf" <<EOF
# $what for strata's tests (tests/slurm/); everything lives in $dir.
ClusterName=strata-test
SlurmctldHost=$ctld_name($ctld_addr)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SLURM_CLUSTER_SOCK,cred_expire=10
StateSaveLocation=$dir/spool/ctld
# %n: the node's name, so that several slurmd on one machine keep apart.
SlurmdSpoolDir=$dir/spool/d-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups, no accounting: processes are tracked through /proc, tasks are not confined.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
# Look at pending jobs every 2 s (default 60), so a requeued job starts as soon as it may.
SchedulerParameters=sched_interval=2
# Requeued jobs (exit status 75 in launch/slurm/*.sbatch) come back; big sweeps fit.
JobRequeue=1
MaxArraySize=100001
MaxJobCount=200000
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
EOF
    cat >"$dir/etc/cgroup.conf" <<EOF
# Unused (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none); present so that no
# plugin looks for /etc/slurm/cgroup.conf.
CgroupAutomount=no
EOF
}

# Writes the configuration, starts munged, slurmctld and slurmd, and waits for the node to be
# idle. Usage: slurm_cluster_up DIR. DIR must exist and be empty or new; its path must be
# short enough for a Unix socket (under about 90 characters).
slurm_cluster_up() {
    local dir=$1
    slurm_cluster_check || return 1
    slurm_cluster_forget
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    SLURM_CLUSTER_DIR=$dir
    mkdir -p "$dir"/{etc,munge,log,spool/ctld,run}
    chmod 700 "$dir/munge"
    # Stop the daemons when the shell exits; a shell with an EXIT trap of its own keeps it and
    # must call slurm_cluster_down there.
    [[ -n "$(trap -p EXIT)" ]] || trap slurm_cluster_down EXIT

    slurm_cluster_munged "$dir" || return 1
    local ctld_port d_port host
    ctld_port=$(slurm_cluster_free_port)
    d_port=$(slurm_cluster_free_port)
    host=$(hostname -s)
    slurm_cluster_conf "$dir" "$host" 127.0.0.1 "$ctld_port" "$d_port" "A one-node cluster" || return 1
    cat >>"$dir/etc/slurm.conf" <<EOF
NodeName=localhost NodeAddr=127.0.0.1 $SLURM_CLUSTER_HW State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    export SLURM_CONF="$dir/etc/slurm.conf"

    slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 &
    SLURM_CLUSTER_PIDS+=($!)
    slurm_cluster_wait 30 "slurmctld to answer" scontrol ping || { slurm_cluster_logs; return 1; }
    slurmd -D -N localhost -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 &
    SLURM_CLUSTER_PIDS+=($!)
    _slurm_cluster_idle() { [[ "$(sinfo -h -n localhost -o %t)" == idle ]]; }
    slurm_cluster_wait 60 "node localhost to be idle (sinfo)" _slurm_cluster_idle ||
        { sinfo -N -l; slurm_cluster_logs; return 1; }
    # A watchdog for when this shell is killed without running its traps (SIGKILL, e.g. a
    # test timeout): it stops the daemons once this shell is gone.
    local owner=$BASHPID pids="${SLURM_CLUSTER_PIDS[*]}"
    (
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null
        sleep 5
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
    SLURM_CLUSTER_WATCHDOG=$!
    slurm_cluster_log "up in $dir ($SLURM_CLUSTER_HW; SLURM_CONF=$SLURM_CONF)"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -uo pipefail
    slurm_cluster_check || exit 77
    dir=$(mktemp -d /tmp/strata-slurm.XXXXXX)
    slurm_cluster_up "$dir" || exit 1
    trap 'slurm_cluster_down; rm -rf "$dir"' EXIT
    trap 'exit 143' TERM INT
    if (($# == 0)); then
        set -- "${SHELL:-/bin/bash}"
    fi
    rc=0
    "$@" || rc=$?
    exit "$rc"
fi
