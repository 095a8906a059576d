#!/bin/sh
# Builds strata_bench (Release) if needed and runs it; when python3 can import torch, runs
# bench/torch_ref.py first (one thread, same models and batches) and passes its JSON line to
# strata_bench for the PyTorch columns. The two never run at the same time.
#
#   bench/run.sh [--reps N] [--min-time S] [--only LIST] [--breakdown]
#
# Options go to both programs (torch_ref.py ignores --breakdown). Environment: BUILD_DIR
# (default build/ in the repository), PYTHON (default /usr/bin/python3).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
python=${PYTHON:-/usr/bin/python3}

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$type" != "Release" ]; then
    echo "warning: $build is a '$type' build, not Release; use BUILD_DIR=... for a Release build" >&2
fi
cmake --build "$build" --target strata_bench -j2 >/dev/null

torch_json=""
cleanup() { if [ -n "$torch_json" ]; then rm -f "$torch_json"; fi; }
trap cleanup EXIT INT TERM

if [ -x "$python" ] && "$python" -c 'import torch' >/dev/null 2>&1; then
    torch_json=$(mktemp "${TMPDIR:-/tmp}/strata_torch_ref.XXXXXX")
    echo "Running the PyTorch reference (bench/torch_ref.py)..." >&2
    if ! "$python" "$root/bench/torch_ref.py" "$@" >"$torch_json"; then
        echo "bench/torch_ref.py failed: PyTorch reference skipped" >&2
        rm -f "$torch_json"
        torch_json=""
    fi
else
    echo "PyTorch not installed: reference skipped"
fi

echo "Running strata_bench..." >&2
if [ -n "$torch_json" ]; then
    "$build/strata_bench" --torch "$torch_json" "$@"
else
    "$build/strata_bench" "$@"
fi
