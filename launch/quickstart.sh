#!/usr/bin/env bash
# Installs what is missing, builds strata and runs the main job: fastai's layer-group workflow
# on Fashion-MNIST under mpirun with 2 ranks (a frozen-body phase, then an unfrozen phase
# with slice learning rates), as launch/configs/quickstart.yaml says:
#   mpirun -np 2 build/strata train launch/configs/quickstart.yaml [EXTRA_ARGS...]
#
# Usage: ./launch/quickstart.sh [EXTRA_ARGS...]
#   EXTRA_ARGS   passed to `strata train`, e.g. --set train.phases.1.epochs=3
#   STRATA_NP    ranks to start (default 2)
# strata train runs in the repository root; the run directory is runs/quickstart/.
set -euo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=launch/deps.sh
source "$ROOT/launch/deps.sh"

case "${1:-}" in
    -h | --help)
        sed -n '2,8s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
esac

strata_step "1/3 Checking Debian packages"
strata_install_deps

strata_step "2/3 Building (Release) in $ROOT/build"
strata_build "$ROOT/build"

np=${STRATA_NP:-2}
mpi_flags=(-np "$np")
if ((np > $(nproc))); then
    mpi_flags+=(--oversubscribe)
fi
cmd=(mpirun "${mpi_flags[@]}" "$ROOT/build/strata" train "$ROOT/launch/configs/quickstart.yaml" "$@")
run_dir="$ROOT/runs/quickstart"
log="$run_dir/console-$(date +%Y%m%d-%H%M%S).log"
# The quickstart starts over each time: strata refuses to train into a directory that holds
# a different run or this run's checkpoints (those continue with --resume auto).
if [ -d "$run_dir" ]; then
    echo "Removing the previous quickstart run in $run_dir"
    rm -rf -- "$run_dir"
fi
mkdir -p "$run_dir"
strata_step "3/3 Training on Fashion-MNIST: ${cmd[*]#"$ROOT/"}"
echo "(in $ROOT; console output also goes to $log)"

cd "$ROOT"
strata_mpi_env
rc=0
"${cmd[@]}" 2>&1 | tee "$log" || rc=$?

strata_step "Output"
echo "Console log: $log"
if ((rc != 0)); then
    echo "strata train failed (exit status $rc)." >&2
fi
exit "$rc"
