#!/bin/sh
# Builds strata_bench_comm (Release) if needed, runs it under `mpirun -np 1` and `mpirun -np 2`
# in alternating rounds, runs bench/ddp_ref.py (PyTorch DDP over gloo, 1 and 2 processes) first
# when python3 can import torch, and prints the combined table (strata_bench_comm --report).
# Nothing runs at the same time as anything else.
#
#   bench/run_comm.sh [--rounds N] [--min-time S] [--reps N] [--reduce-reps N] [--only LIST]
#                     [--bucket-mb X] [--mlp-steps N] [--cnn-steps N]
#
# --rounds (default 3) is how many times the 1-rank and the 2-rank runs alternate; --min-time
# goes to ddp_ref.py alone (seconds per timed repetition); the other options go to
# strata_bench_comm and to ddp_ref.py, which ignores the ones it does not know.
# Environment: BUILD_DIR (default build/ in the repository), PYTHON (default /usr/bin/python3),
# MPIRUN (default mpirun), KEEP=DIR keeps the JSON lines and the training runs' directories in
# DIR instead of a temporary directory.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
python=${PYTHON:-/usr/bin/python3}
mpirun=${MPIRUN:-mpirun}

rounds=3
pass=""
ddp_pass=""
while [ $# -gt 0 ]; do
    case $1 in
    --rounds)
        [ $# -ge 2 ] || { echo "run_comm.sh: --rounds needs a value" >&2; exit 2; }
        rounds=$2
        shift 2
        ;;
    --min-time)
        [ $# -ge 2 ] || { echo "run_comm.sh: --min-time needs a value" >&2; exit 2; }
        ddp_pass="--min-time $2"
        shift 2
        ;;
    *)
        pass="$pass $1"
        shift
        ;;
    esac
done

# Open MPI's launcher refuses to run as root unless told to (containers, CI).
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT="${OMPI_ALLOW_RUN_AS_ROOT:-1}"
    export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}"
fi

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$type" != "Release" ]; then
    echo "warning: $build is a '$type' build, not Release; use BUILD_DIR=... for a Release build" >&2
fi
cmake --build "$build" --target strata_bench_comm -j2 >/dev/null

if [ -n "${KEEP:-}" ]; then
    work=$KEEP
    mkdir -p "$work"
    rm -f "$work/np1.json" "$work/np2.json" "$work/ddp.json" # --json appends
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/strata_bench_comm.XXXXXX")
    trap 'rm -rf "$work"' EXIT INT TERM
fi

ddp=""
if [ -x "$python" ] && "$python" -c 'import torch, torch.distributed as d; assert d.is_gloo_available()' >/dev/null 2>&1; then
    echo "Running the PyTorch DDP reference (bench/ddp_ref.py)..." >&2
    # shellcheck disable=SC2086 # options are words without spaces
    if "$python" "$root/bench/ddp_ref.py" $pass $ddp_pass >"$work/ddp.json"; then
        ddp="$work/ddp.json"
    else
        echo "bench/ddp_ref.py failed: PyTorch DDP reference skipped" >&2
    fi
else
    echo "PyTorch (with gloo) not installed: DDP reference skipped"
fi

r=1
while [ "$r" -le "$rounds" ]; do
    for np in 1 2; do
        echo "Round $r/$rounds: mpirun -np $np strata_bench_comm..." >&2
        # shellcheck disable=SC2086
        "$mpirun" -np "$np" "$build/strata_bench_comm" --configs "$root/bench/configs" \
            --run-dir "$work/runs" --json "$work/np$np.json" $pass >&2
    done
    r=$((r + 1))
done

if [ -n "$ddp" ]; then
    "$build/strata_bench_comm" --report "$work/np1.json" "$work/np2.json" --ddp "$ddp"
else
    "$build/strata_bench_comm" --report "$work/np1.json" "$work/np2.json"
fi
if [ -n "${KEEP:-}" ]; then
    echo "JSON lines and runs kept in $work"
fi
