#!/usr/bin/env bash
# Open MPI's launch agent for the network-namespace hosts of tests/multinode/hosts.sh: what
# ssh is on a real cluster. mpirun (plm_rsh_agent) runs it as `agent.sh HOST COMMAND...` and
# it runs COMMAND (an orted, as one shell line, as ssh would) in HOST's namespace.
#
# HOST is an address 10.213.7.(K+1) or a name smn-hK; it becomes namespace smn-hK. Like ssh,
# it first connects to HOST's port 22 from the caller's namespace (bash's /dev/tcp; nothing
# listens there, so a reachable host refuses at once): an address with no host behind it, or
# a host whose link is down, fails here as ssh does, "No route to host" or a timeout, exit
# 255. Then COMMAND runs under
#   ip netns exec smn-hK unshare --uts --mount --propagation private
# with the host name smn-hK (so strata names hosts) and, in its own mount namespace, what the
# test asked of this host:
#   SMN_HIDE=DIR         hosts other than smn-h0 see an empty tmpfs at DIR: storage that only
#                        the first host has (a node-local run.dir)
#   SMN_BIND_K="SRC DST" host K sees file SRC at DST (another strata build or config there)
# The mounts end with the namespace's last process: nothing to clean up.
set -u
host=$1
shift
case $host in
10.213.7.*) k=$((${host##*.} - 1)) ;;
smn-h[0-9]) k=${host#smn-h} ;;
*) echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255 ;;
esac
if ! err=$(timeout 5 bash -c "exec 3<>/dev/tcp/10.213.7.$((k + 1))/22" 2>&1); then
    case $err in
    *"Connection refused"*) ;; # reachable: nothing listens on 22
    *"No route to host"*) echo "ssh: connect to host $host port 22: No route to host" >&2; exit 255 ;;
    *) echo "ssh: connect to host $host port 22: Connection timed out" >&2; exit 255 ;;
    esac
fi
if ! ip netns list | grep -qx "smn-h$k\( .*\)\?"; then
    echo "ssh: connect to host $host port 22: No route to host" >&2; exit 255
fi
bind_var=SMN_BIND_$k
export SMN_K=$k SMN_CMD="$*" SMN_HIDE_HERE="" SMN_BIND_HERE="${!bind_var:-}"
((k > 0)) && SMN_HIDE_HERE=${SMN_HIDE:-}
exec ip netns exec "smn-h$k" unshare --uts --mount --propagation private /bin/sh -c '
    echo "smn-h$SMN_K" > /proc/sys/kernel/hostname || exit 255
    if [ -n "$SMN_HIDE_HERE" ]; then mount -t tmpfs smn-hidden "$SMN_HIDE_HERE" || exit 255; fi
    if [ -n "$SMN_BIND_HERE" ]; then mount --bind $SMN_BIND_HERE || exit 255; fi
    unset SMN_K SMN_HIDE_HERE SMN_BIND_HERE
    exec /bin/sh -c "$SMN_CMD"'
