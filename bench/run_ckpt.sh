#!/bin/sh
# Builds strata_bench_ckpt (Release) if needed and runs it: the time to save and to load a
# checkpoint of resnet34 (3x224x224, 1000 classes, SGD with momentum) against a raw
# sequential write and read of the same number of bytes in the same directory, with the
# same durability steps (temporary file, fsync, rename, fsync of the directory). It prints
# a table of best and median times, MB/s and the ratios save / raw write and load / raw
# read; nothing is a pass/fail threshold. docs/performance.md has results.
#
#   bench/run_ckpt.sh [--dir DIR] [--reps N] [--arch NAME] [--json FILE] [--keep]
#
#   --dir DIR    where the files go, created if missing: put it on the filesystem whose
#                speed matters (the run directory's). Default: a fresh directory under
#                $TMPDIR, or under the build directory when TMPDIR is unset; removed after.
#   --reps N     timed rounds after one warm-up round (default 5); each round runs every
#                case once, interleaved, in an order that alternates between rounds.
#   --arch NAME  another model of the zoo (default resnet34; cnn for a quick check).
#   --json FILE  also write every timing and ratio as JSON.
#   --keep       leave the checkpoint and the raw file in place.
#
# The directory needs about twice the checkpoint's size free (resnet34: 2 x 208 MB) plus a
# temporary file while a save runs. Cold reads drop the files from the page cache with
# posix_fadvise first (no root needed); the program says whether that took effect.
# Environment: BUILD_DIR (default build/ in the repository).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}

if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release
fi
type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")
if [ "$type" != "Release" ]; then
    echo "warning: $build is a '$type' build, not Release; use BUILD_DIR=... for a Release build" >&2
fi
cmake --build "$build" --target strata_bench_ckpt -j2 >/dev/null

echo "Running strata_bench_ckpt (commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown))..." >&2
exec "$build/strata_bench_ckpt" "$@"
