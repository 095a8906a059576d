#!/usr/bin/env bash
# launch/slurm/train.sbatch on a real two-node Slurm: two network-namespace hosts
# (tests/multinode/hosts.sh: smn-h0 at 10.213.7.1 and smn-h1 at 10.213.7.2, each with its own
# host name), slurmctld and one slurmd in smn-h0, one slurmd in smn-h1 (NodeName=smn-hK
# NodeAddr=10.213.7.(K+1)), and munged in the root namespace: its socket is a path, which
# every namespace sees. The client commands (sbatch, squeue, scontrol) run in smn-h0, the only
# place the cluster's addresses exist. Every job is `sbatch -N 2 --ntasks-per-node=1`.
#   straight  train.sbatch with the mpirun wrapper (Open MPI starts its daemon on smn-h1 with
#             srun: no ssh, no agent): one rank runs in each namespace, under host names
#             smn-h0 and smn-h1, mpirun's map names both nodes, and the run finishes
#   preempt   the same run, sent SIGUSR1 once its first checkpoint exists, as its
#             --signal=B:USR1@120 line would (scancel --signal=USR1 --batch): strata saves and
#             exits 75, the job requeues itself, runs again on both nodes, resumes from that
#             checkpoint and finishes bitwise equal to straight's final checkpoint
#   srun      train.sbatch with STRATA_LAUNCHER=srun (srun --mpi=pmix) on the two nodes, also
#             bitwise equal to straight
# Open MPI's TCP traffic is held to the hosts' subnet by OMPI_MCA_btl_tcp_if_include and
# OMPI_MCA_oob_tcp_if_include in the job's environment (sbatch passes it on).
# Usage: slurm_nodes.sh STRATA SOURCE_DIR
# Exit status 77 (skipped) without slurm-wlm and munge, not as root, or where network
# namespaces cannot be made. Every wait is bounded; the daemons, namespaces and the temporary
# directory are removed on exit, and by a watchdog if this script is killed (SIGKILL).
set -uo pipefail
strata=$(realpath "$1")
src=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
slurm_cluster_check || { echo "SKIP: slurm_nodes: no Slurm here (above)"; exit 77; }
# shellcheck source=tests/multinode/hosts.sh
source "$src/tests/multinode/hosts.sh"
smn_can # 77 where namespaces cannot be made; holds the multinode lock, removes leftovers
slurm_cluster_forget

# A short path: munged's socket lives under it.
work=$(mktemp -d /tmp/strata-slurmnodes.XXXXXX)
chmod 755 "$work"
c=$work/cluster
SLURM_CLUSTER_DIR=$c
watchdog=
cleanup() {
    [[ -z "$watchdog" ]] || kill -KILL "$watchdog" 2>/dev/null
    [[ -z "${SLURM_CONF:-}" ]] || on_ctl 10 scancel --user=root >/dev/null 2>&1
    slurm_cluster_down # slurmd, slurmctld, then munged, by process id
    smn_down           # then anything left in the namespaces (job steps), and the namespaces
    if [[ -n "${KEEP_SLURM_TEST:-}" ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pass=0 failed=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }

# on_ctl SECONDS COMMAND...: a client command in smn-h0, where slurmctld listens; ended after
# SECONDS.
on_ctl() {
    local limit=$1
    shift
    timeout -k 2 "$limit" ip netns exec smn-h0 "$@"
}
# as_host K COMMAND...: COMMAND in host K's network namespace under host name smn-hK (a UTS
# namespace of its own: slurmctld checks its host name against SlurmctldHost, and the jobs'
# processes inherit it). It replaces itself with COMMAND, so a background as_host's $! is
# COMMAND's process id.
# nsenter --net, not `ip netns exec`: that one also mounts a fresh sysfs on /sys (in a mount
# namespace of its own), which hides the machine's cgroup file systems under /sys/fs/cgroup,
# and slurmd 22.05 then does not start ("No filesystem mounted on /sys/fs/cgroup", "Unable to
# initialize cgroup plugin", "slurmd initialization failed"), even with proctrack/linuxproc.
as_host() {
    local k=$1
    shift
    # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
    exec nsenter --net="/run/netns/smn-h$k" unshare --uts /bin/sh -c \
        'echo "$0" > /proc/sys/kernel/hostname && exec "$@"' "smn-h$k" "$@"
}
job_gone() { [[ -z "$(on_ctl 10 squeue -h -j "$1" -t PD,R,CG,CF,S,RQ,RS 2>/dev/null)" ]]; }

# ---- the cluster
smn_up 2 || { echo "FAIL: the namespace hosts did not come up"; exit 1; }
mkdir -p "$c"/{etc,munge,log,spool/ctld,spool/d-smn-h0,spool/d-smn-h1,run,tmp-smn-h0,tmp-smn-h1}
chmod 700 "$c/munge"
slurm_cluster_munged "$c" || { echo "FAIL: munged did not start"; exit 1; }
# The ports are the namespaces' own: nothing else listens on 10.213.7.0/24, so Slurm's
# defaults cannot collide with tests/slurm/cluster.sh's cluster (127.0.0.1, free ports).
slurm_cluster_conf "$c" smn-h0 "$SMN_NET.1" 6817 6818 \
    "A two-node cluster, one slurmd in each of the namespace hosts smn-h0 and smn-h1," ||
    { echo "FAIL: cannot write slurm.conf"; exit 1; }
cat >>"$c/etc/slurm.conf" <<EOF
NodeName=smn-h0 NodeAddr=$SMN_NET.1 $SLURM_CLUSTER_HW State=UNKNOWN
NodeName=smn-h1 NodeAddr=$SMN_NET.2 $SLURM_CLUSTER_HW State=UNKNOWN
# Each node's own temporary directory: Slurm's PMIx plugin makes its per-step directory there
# (spmix_appdir_UID_JOB.STEP), and both nodes' steps in one /tmp collide ("File exists").
TmpFS=$c/tmp-%n
PartitionName=debug Nodes=smn-h0,smn-h1 Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
export SLURM_CONF=$c/etc/slurm.conf
# The daemons at the lowest priority: the machine is shared.
(as_host 0 nice -n 19 slurmctld -D -i -f "$SLURM_CONF" >>"$c/log/slurmctld.out" 2>&1) &
SLURM_CLUSTER_PIDS+=($!)
wait_for 30 "slurmctld to answer in smn-h0" on_ctl 5 scontrol ping >/dev/null ||
    { show_logs; echo "FAIL: slurmctld did not come up"; exit 1; }
for k in 0 1; do
    (as_host "$k" nice -n 19 slurmd -D -N "smn-h$k" -f "$SLURM_CONF" >>"$c/log/slurmd-smn-h$k.out" 2>&1) &
    SLURM_CLUSTER_PIDS+=($!)
done
both_idle() { [[ "$(on_ctl 5 sinfo -h -N -o '%N=%t' 2>/dev/null | sort | tr '\n' ' ')" == "smn-h0=idle smn-h1=idle " ]]; }
wait_for 60 "nodes smn-h0 and smn-h1 to be idle" both_idle ||
    { on_ctl 5 sinfo -N -l; show_logs; echo "FAIL: the two slurmd did not register"; exit 1; }
# A watchdog outside this script's process tree (so a test runner that kills the tree on a
# timeout leaves it alone): once this shell is gone without its EXIT trap, it stops the
# daemons, kills what is left in the namespaces, removes them and the directory.
owner=$BASHPID
watchdog=$(
    (
        trap '' INT TERM
        while kill -0 "$owner" 2>/dev/null; do sleep 1; done
        kill -TERM "${SLURM_CLUSTER_PIDS[@]}" 2>/dev/null
        sleep 3
        kill -KILL "${SLURM_CLUSTER_PIDS[@]}" 2>/dev/null
        smn_down
        rm -rf "$work"
    ) </dev/null >/dev/null 2>&1 &
    echo $!
)
echo "slurm_nodes: cluster up in $c: $(on_ctl 5 sinfo -h -N -o '%N(%t)' | tr '\n' ' ')"

# ---- the jobs
# Open MPI between the namespace hosts: TCP on their subnet only, set the way a real cluster
# sets it (docs/cluster.md; here each namespace has only lo and its veth, so this makes the
# choice explicit rather than changing it). Passed to the job by sbatch (--export=ALL, the
# default), by mpirun and srun on to Open MPI's daemons and the ranks.
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=$SMN_NET.0/24 OMPI_MCA_oob_tcp_if_include=$SMN_NET.0/24
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# mpirun prints which node each rank runs on.
export OMPI_MCA_rmaps_base_display_map=1
# One rank per node, and both "nodes" are this machine's cores: do not bind both ranks to
# core 0 (each node's mpirun daemon would pick its first core).
export STRATA_BIND_TO=none
export STRATA=$strata STRATA_ROOT=$src
d=$work/jobs
mkdir -p "$d"
# tests/slurm/slurm_jobs.sh's preempt config (an mlp, nothing rank-local, 64 steps an epoch)
# for 20 epochs: about 10 s on the two nodes here, so that the signal, which takes a second or
# two to reach the ranks, comes well before the end, and the resumed attempt runs long enough
# to be looked at.
cat >"$d/long.yaml" <<YAML
model: {arch: mlp, widths: [512, 512], input: [1, 32, 32], classes: 4}
groups: {lr: [0.01, 0.02, 0.05], wd: 0.0001, momentum: 0.9}
optimizer: {type: sgd}
schedule: {type: one_cycle}
data: {train: synthetic, valid: synthetic, batch_size: 32,
       synthetic: {samples: 4096, classes: 4, input: [1, 32, 32], seed: 7}}
train: {epochs: 20, seed: 42, log_every: 64}
checkpoint: {every_steps: 50, keep: 3}
YAML

# submit NAME [ENV=VALUE...]: train.sbatch on 2 nodes, 1 task each, run.dir $d/NAME, the
# output in $d/NAME.out; prints the job id.
submit() {
    local name=$1
    shift
    (cd "$d" && env "$@" timeout 20 ip netns exec smn-h0 sbatch --parsable -N 2 --ntasks-per-node=1 \
        --output="$d/$name.out" "$src/launch/slurm/train.sbatch" "$d/long.yaml" --set run.dir="$d/$name")
}
# rank_on K: the process id of a strata rank of this test in host K's network namespace.
rank_on() { smn_pid_on "$1" "^$strata train $d/long.yaml "; }
# ranks_named: sets p0, p1 (a rank in smn-h0's and smn-h1's network namespace) and h0, h1
# (the host names those processes see); 1 until both exist.
ranks_named() {
    p0=$(rank_on 0) && p1=$(rank_on 1) &&
        h0=$(nsenter -t "$p0" -u hostname 2>/dev/null) && h1=$(nsenter -t "$p1" -u hostname 2>/dev/null)
}
# check_ranks WHAT: one rank in each namespace, each under its host's name.
check_ranks() {
    local p0 p1 h0 h1
    wait_for 60 "a rank in each of smn-h0 and smn-h1 ($1)" ranks_named || { bad "$1: not one rank per host"; return 1; }
    [[ "$h0" == smn-h0 && "$h1" == smn-h1 ]] &&
        ok "$1: rank processes $p0 in smn-h0 (host name $h0) and $p1 in smn-h1 (host name $h1)" ||
        bad "$1: the ranks' host names are '$h0' and '$h1', expected smn-h0 and smn-h1"
}
finished() { [[ "$(cat "$d/$1/status" 2>/dev/null)" == finished ]] && job_gone "$2"; }
final() { echo "$d/$1/checkpoints/$(cat "$d/$1/checkpoints/latest")"; }
# compare_straight WHAT NAME: NAME's final checkpoint equals straight's, bitwise.
compare_straight() {
    [[ -s "$d/straight/checkpoints/latest" ]] || { bad "$1: the straight run left no checkpoint to compare with"; return; }
    if /usr/bin/python3 "$src/tests/ckpt_compare.py" "$(final straight)" "$(final "$2")" >"$d/cmp.log" 2>&1; then
        ok "$1"
    else
        bad "$1:"
        cat "$d/cmp.log"
    fi
}

test_straight() {
    local job out=$d/straight.out
    job=$(submit straight) || { bad "sbatch -N 2 train.sbatch failed: $job"; return 1; }
    echo "submitted job $job (straight)"
    check_ranks "straight"
    wait_for 120 "job $job to finish" finished straight "$job" ||
        { on_ctl 5 squeue; show_logs "$out"; bad "straight: did not finish"; return 1; }
    local info
    info=$(on_ctl 5 scontrol show job "$job")
    grep -q " NodeList=smn-h\[0-1\]" <<<"$info" && grep -q "JobState=COMPLETED" <<<"$info" &&
        ok "straight: job $job COMPLETED on NodeList=smn-h[0-1]" ||
        { echo "$info"; bad "straight: not completed on both nodes"; }
    grep -A1 "Data for node: smn-h0" "$out" | grep -q "Process rank: 0 " &&
        grep -A1 "Data for node: smn-h1" "$out" | grep -q "Process rank: 1 " &&
        ok "straight: mpirun's map puts rank 0 on smn-h0 and rank 1 on smn-h1" ||
        { show_logs "$out"; bad "straight: mpirun's map does not name both nodes"; }
}

test_preempt() {
    local job out=$d/run.out
    job=$(submit run) || { bad "sbatch -N 2 train.sbatch failed: $job"; return 1; }
    echo "submitted job $job (preempt)"
    wait_for 120 "the first checkpoint" test -e "$d/run/checkpoints/latest" ||
        { show_logs "$out"; bad "preempt: no checkpoint"; return 1; }
    check_ranks "preempt, first attempt"
    [[ "$(cat "$d/run/status" 2>/dev/null)" == running ]] ||
        { bad "preempt: the run is '$(cat "$d/run/status" 2>/dev/null)' before the signal, expected running"; return 1; }
    on_ctl 10 scancel --signal=USR1 --batch "$job" || { bad "scancel --signal=USR1 --batch $job failed"; return 1; }
    echo "sent SIGUSR1 to job $job's batch shell on smn-h0"
    requeued() { grep -q "requeueing job $job" "$out" 2>/dev/null; }
    wait_for 60 "strata to stop with 75 and the job to requeue" requeued ||
        { show_logs "$out"; bad "preempt: the job did not requeue itself"; return 1; }
    local stopped
    stopped=$(sed -n 's/.*stopped on signal 10 after global step \([0-9]*\).*/\1/p' "$out" | head -n 1)
    [[ -n "$stopped" ]] && ok "preempt: strata stopped on SIGUSR1 after global step $stopped, exit 75, job requeued" ||
        { show_logs "$out"; bad "preempt: no 'stopped on signal' line"; return 1; }
    check_ranks "preempt, after the requeue"
    wait_for 120 "the requeued job to finish" finished run "$job" ||
        { on_ctl 5 squeue; show_logs "$out"; bad "preempt: the requeued job did not finish"; return 1; }
    grep -q "strata job $job (restart 1) on smn-h0" "$out" && ok "preempt: the job ran again (restart 1) with its batch shell on smn-h0" ||
        { show_logs "$out"; bad "preempt: no second run on smn-h0 in $out"; }
    local info
    info=$(on_ctl 5 scontrol show job "$job")
    grep -q "Restarts=1" <<<"$info" && grep -q " NodeList=smn-h\[0-1\]" <<<"$info" &&
        ok "preempt: Slurm counts one restart, NodeList=smn-h[0-1]" || { echo "$info"; bad "preempt: restarts or nodes"; }
    (($(grep -c "Data for node: smn-h1" "$out") == 2)) && ok "preempt: both attempts mapped a rank to smn-h1" ||
        bad "preempt: smn-h1 is in $(grep -c "Data for node: smn-h1" "$out") of mpirun's maps, expected 2"
    grep -q "resumed from $d/run/checkpoints/ckpt-0*$stopped.h5" "$out" &&
        grep -q "resuming at .*(global step $((stopped + 1)))" "$out" &&
        ok "preempt: resumed from the checkpoint of step $stopped at global step $((stopped + 1))" ||
        { grep -n "resum" "$out"; bad "preempt: did not resume from the checkpoint saved at the signal"; }
    compare_straight "preempt: the preempted and requeued 2-node run ends bitwise where the straight one does" run
}

test_srun() {
    local job out=$d/srun.out
    job=$(submit srun STRATA_LAUNCHER=srun) || { bad "sbatch -N 2 train.sbatch (srun) failed: $job"; return 1; }
    echo "submitted job $job (srun --mpi=pmix)"
    check_ranks "srun"
    wait_for 120 "job $job to finish" finished srun "$job" ||
        { on_ctl 5 squeue; show_logs "$out"; bad "srun: did not finish"; return 1; }
    grep -q "srun --mpi=pmix" "$out" && ok "srun: the ranks were started by srun --mpi=pmix" || bad "srun: not launched by srun"
    compare_straight "srun: srun --mpi=pmix on 2 nodes ends bitwise where mpirun on 2 nodes does" srun
}

t0=$SECONDS
test_straight && echo "straight: $((SECONDS - t0)) s"
t0=$SECONDS
test_preempt && echo "preempt: $((SECONDS - t0)) s"
t0=$SECONDS
test_srun && echo "srun: $((SECONDS - t0)) s"
echo "$pass passed, $failed failed"
((failed == 0))
