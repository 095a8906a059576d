#!/usr/bin/env bash
# Installs what is missing, builds strata and runs the whole test suite with ctest.
#
# Usage: ./launch/test.sh [--sanitize] [CTEST_ARGS...]
#   --sanitize   build into build-asan with ASan+UBSan (Debug) and run the tests there
#   CTEST_ARGS   passed to ctest, e.g. -R zoo
# The exit status is ctest's.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=launch/deps.sh
source "$ROOT/launch/deps.sh"

sanitize=0
ctest_args=()
for arg in "$@"; do
    case "$arg" in
        --sanitize) sanitize=1 ;;
        -h | --help)
            sed -n '2,7s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *) ctest_args+=("$arg") ;;
    esac
done

strata_step "1/3 Checking Debian packages"
strata_install_deps

if ((sanitize)); then
    build_dir="$ROOT/build-asan"
    strata_step "2/3 Building with ASan+UBSan (Debug) in $build_dir"
    strata_build "$build_dir" -DSTRATA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    # Options already in the environment win (e.g. ASAN_OPTIONS=detect_leaks=0 where
    # LeakSanitizer's tracer cannot run: "Tracer caught signal 11" in some sandboxes).
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    # Open MPI's own leaks are suppressed (see launch/lsan.supp); options already set come last.
    export LSAN_OPTIONS="suppressions=$ROOT/launch/lsan.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
else
    build_dir="$ROOT/build"
    strata_step "2/3 Building (Release) in $build_dir"
    strata_build "$build_dir"
fi

strata_step "3/3 Running the tests (ctest)"
strata_mpi_env
rc=0
ctest --test-dir "$build_dir" --output-on-failure "${ctest_args[@]}" || rc=$?
if ((rc == 0)); then
    echo "All tests passed."
else
    echo "ctest failed (exit status $rc)." >&2
fi
exit "$rc"
