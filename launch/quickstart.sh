#!/usr/bin/env bash
# Installs what is missing, builds strata and trains a small CNN on Fashion-MNIST for one epoch:
#   build/strata train --arch cnn --epochs 1 --batch-size 64 --lr 0.05 [EXTRA_ARGS...]
#
# Usage: ./launch/quickstart.sh [EXTRA_ARGS...]
#   EXTRA_ARGS   passed to `strata train`, e.g. --epochs 3 (replaces the default --epochs 1)
# strata train runs in the repository root, so relative paths in EXTRA_ARGS are taken from there.
# Its console output is also saved in runs/quickstart/.
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

# The defaults, each dropped when EXTRA_ARGS gives that option (as --opt VALUE or --opt=VALUE).
defaults=(--arch cnn --epochs 1 --batch-size 64 --lr 0.05)
cmd=("$ROOT/build/strata" train)
for ((i = 0; i < ${#defaults[@]}; i += 2)); do
    opt=${defaults[i]}
    given=0
    for arg in "$@"; do
        [[ "$arg" == "$opt" || "$arg" == "$opt="* ]] && given=1
    done
    ((given)) || cmd+=("$opt" "${defaults[i + 1]}")
done
cmd+=("$@")
run_dir="$ROOT/runs/quickstart"
log="$run_dir/train-$(date +%Y%m%d-%H%M%S).log"
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
