#!/usr/bin/env bash
# Shared helpers for launch/quickstart.sh and launch/test.sh: the Debian packages strata needs,
# installing the missing ones, and building.
#
# Sourced by both scripts (after they set ROOT to the repository root). Run on its own,
# `./launch/deps.sh` only installs the dependencies.

if [[ -z "${ROOT:-}" ]]; then
    ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
fi

# Everything needed to build strata, run its tests and run the quickstart (Debian 12 names).
# python3-matplotlib draws the plots (strata lr-find's PNG); python3-h5py (with numpy)
# reads weights files in the multi-rank tests.
STRATA_DEPS=(
    build-essential cmake pkg-config
    libopenmpi-dev openmpi-bin
    libhdf5-dev hdf5-tools
    libopenblas-dev libdnnl-dev libcmocka-dev libyaml-dev zlib1g-dev
    dataset-fashion-mnist
    python3 python3-matplotlib python3-h5py
)
# Only for the test suite, so launch/test.sh installs them and launch/quickstart.sh does not: a
# one-node Slurm that tests/slurm/ starts to run the launch/slurm/ templates (the tests skip
# without it). Installing slurm-wlm on a machine with systemd enables its services; they stay
# unconfigured and idle (the tests use their own configuration in a temporary directory).
# python3-torch and python3-torchvision run the torchvision converter's round trip
# (tests/convert_roundtrip.sh: launch/torchvision_convert.py is a torch tool; the numerical
# tests read committed fixtures and need no torch); they are also what tests/make_fixtures.py
# and the PyTorch comparisons in bench/ use.
# iproute2 and nftables make the multi-node tests' hosts (tests/multinode/: network namespaces,
# and a link that drops packets where the kernel has no netem).
STRATA_TEST_DEPS=(slurm-wlm munge python3-torch python3-torchvision iproute2 nftables)

# Prints a step header.
strata_step() {
    printf '\n==> %s\n' "$*"
}

# Returns 0 when the Debian package is installed.
strata_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# Prints the packages of the given list that are not installed, one per line.
strata_missing_pkgs() {
    local pkg
    for pkg in "$@"; do
        strata_pkg_installed "$pkg" || printf '%s\n' "$pkg"
    done
}

# Returns 0 when apt has no installation candidate for one of the given packages (its package
# lists are empty, as on a fresh container, or do not know the package yet).
strata_apt_needs_update() {
    local pkg candidate
    for pkg in "$@"; do
        candidate=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
        if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
            return 0
        fi
    done
    return 1
}

# The packages the calling script needs: STRATA_DEPS, and STRATA_TEST_DEPS for launch/test.sh
# and for ./launch/deps.sh run on its own (every listed package).
strata_wanted_deps() {
    printf '%s\n' "${STRATA_DEPS[@]}"
    case "$(basename -- "${BASH_SOURCE[-1]}")" in
        test.sh | deps.sh) printf '%s\n' "${STRATA_TEST_DEPS[@]}" ;;
    esac
}

# Installs the missing packages of strata_wanted_deps. Does nothing when all are installed. As
# root it runs apt-get (apt-get update only when needed); otherwise it prints the command to
# run and returns 1.
strata_install_deps() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "error: dpkg-query not found: these scripts set up Debian 12 machines." >&2
        echo "Install the equivalents of these Debian packages, then build by hand (see README.md):" >&2
        echo "  $(strata_wanted_deps | tr '\n' ' ')" >&2
        return 1
    fi

    local wanted=() missing=()
    mapfile -t wanted < <(strata_wanted_deps)
    mapfile -t missing < <(strata_missing_pkgs "${wanted[@]}")
    if ((${#missing[@]} == 0)); then
        echo "All ${#wanted[@]} required packages are installed."
    elif (($(id -u) != 0)); then
        {
            echo "error: missing Debian packages: ${missing[*]}"
            echo "Install them (as root or with sudo), then run this script again:"
            echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}"
            echo "(If apt cannot find a package, run 'sudo apt-get update' first.)"
        } >&2
        return 1
    else
        echo "Installing missing packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        local updated=0
        if strata_apt_needs_update "${missing[@]}"; then
            apt-get update
            updated=1
        fi
        if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
            # Stale package lists can name files the mirror no longer has: refresh once.
            if ((updated)); then
                echo "error: apt-get install failed for: ${missing[*]}" >&2
                return 1
            fi
            apt-get update
            apt-get install -y --no-install-recommends "${missing[@]}" || {
                echo "error: apt-get install failed for: ${missing[*]}" >&2
                return 1
            }
        fi
        mapfile -t missing < <(strata_missing_pkgs "${wanted[@]}")
        if ((${#missing[@]} != 0)); then
            echo "error: still not installed after apt-get: ${missing[*]}" >&2
            return 1
        fi
    fi
}

# Configures and builds strata. Usage: strata_build [BUILD_DIR [CMAKE_ARGS...]]; the default is
# $ROOT/build as a Release build. Re-running it only rebuilds what changed.
strata_build() {
    local dir=${1:-"$ROOT/build"}
    shift || true
    local args=("$@")
    ((${#args[@]} != 0)) || args=(-DCMAKE_BUILD_TYPE=Release)
    cmake -S "$ROOT" -B "$dir" "${args[@]}" || {
        echo "error: cmake could not configure $dir (see above)." >&2
        return 1
    }
    cmake --build "$dir" -j"$(nproc)" || {
        echo "error: the build in $dir failed (see above)." >&2
        return 1
    }
}

# OpenMPI's launcher refuses to run as root (CI runs as root in a container) unless told to.
strata_mpi_env() {
    if (($(id -u) == 0)); then
        export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1}
        export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
    fi
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    strata_step "Checking Debian packages"
    strata_install_deps
fi
