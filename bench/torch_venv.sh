#!/usr/bin/env bash
# Builds, once, the virtualenv with the newest PyTorch from PyPI that bench/run measures beside
# Debian's python3-torch (1.13): `/usr/bin/python3 -m venv` (no system site packages, so
# Debian's torch cannot leak in), then `pip install --upgrade pip` and
# `pip install torch torchvision numpy` from PyPI. It prints what it installed: the torch,
# torchvision and numpy versions, the first lines of torch.__config__.show(), whether
# MKL-DNN (oneDNN) and MKL are on, the CUDA version the wheel was built for, and the venv's
# size.
#
#   bench/torch_venv.sh             # build it if it is not there (or does not import torch)
#   bench/torch_venv.sh --upgrade   # install the newest torch/torchvision into the existing one
#
# Idempotent: when the venv already imports torch and torchvision it installs nothing and only
# prints what is there. A venv that exists but does not import them (a broken or interrupted
# install) is removed and built again; one this script creates is removed again if the
# install fails, so a half-built venv is never left behind.
#
# Where: $STRATA_BENCH_VENV, default ${XDG_CACHE_HOME:-~/.cache}/strata-bench/venv. bench/run
# uses that venv's bin/python by default (`bench/run --torch-pypi PATH` for another one,
# `--no-pypi` for none).
#
# What it downloads: only pypi.org (and files.pythonhosted.org) is needed. PyPI's Linux x86_64
# torch wheel is the CUDA build (torch 2.15.0+cu132: a 539 MB wheel) and pulls in the
# nvidia-* / cuda-toolkit and triton wheels: 3.0 GB downloaded and 5.4 GB installed (measured
# 2026-12-02), all of it unused here (the benchmarks run on the CPU and never touch CUDA).
# PyPI has no CPU-only Linux x86_64 wheel: that one (torch==X+cpu) is published only on
# download.pytorch.org, and PyPI accepts no local versions such as "+cpu". Where that index is
# reachable (from the machine this was written on it is not: its name does not resolve),
#   PIP_INDEX_URL=https://download.pytorch.org/whl/cpu PIP_EXTRA_INDEX_URL=https://pypi.org/simple \
#       bench/torch_venv.sh
# installs the CPU-only wheels instead, a much smaller venv. Before installing, the script
# checks that $STRATA_BENCH_VENV_NEED_MB (default 10000) MB are free on the venv's filesystem,
# where pip's download directory goes too (both are there at once; pip's own cache is not
# used, so nothing is stored twice), and that the index answers.
#
# Needs: Debian's python3-venv (installed with apt-get when run as root, else the exact
# command is printed); python3-venv is not in launch/deps.sh, since no test needs it.
# Exit status: 0 when the venv imports torch and torchvision at the end, 1 when it cannot
# be built (no venv module, no network, not enough disk, pip failed), 2 for a bad option.
# Environment: STRATA_BENCH_VENV (the venv), STRATA_BENCH_BASE_PYTHON (the Python the venv is
# made from, default /usr/bin/python3), STRATA_BENCH_VENV_NEED_MB, PIP_INDEX_URL.
set -euo pipefail

venv=${STRATA_BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench/venv}
base=${STRATA_BENCH_BASE_PYTHON:-/usr/bin/python3}
need_mb=${STRATA_BENCH_VENV_NEED_MB:-10000}
index=${PIP_INDEX_URL:-https://pypi.org/simple}
packages=(torch torchvision numpy)

say() { printf 'torch_venv.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

upgrade=0
for arg in "$@"; do
    case $arg in
    --upgrade) upgrade=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown option '$arg' (known: --upgrade, --help)"; exit 2 ;;
    esac
done
[[ $need_mb =~ ^[0-9]+$ ]] || die "STRATA_BENCH_VENV_NEED_MB must be a whole number of MB, not '$need_mb'"

# Prints what the venv holds; fails (status 1) when it does not import torch and torchvision.
report() {
    "$venv/bin/python" - "$venv" <<'EOF'
import sys
import torch, torchvision
try:
    import numpy
    np_version = numpy.__version__
except ImportError:
    np_version = "not installed"
print(f"venv:        {sys.argv[1]} (Python {sys.version.split()[0]})")
print(f"torch:       {torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
print(f"torchvision: {torchvision.__version__}, numpy: {np_version}")
print(f"MKL-DNN (oneDNN): {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
      f"MKL: {'on' if torch.backends.mkl.is_available() else 'off'}, "
      f"OpenMP: {'on' if torch.backends.openmp.is_available() else 'off'}")
cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
if cap:
    print(f"CPU capability: {cap()}")
print("torch.__config__.show():")
for line in torch.__config__.show().strip().splitlines()[:8]:
    print("  " + line.rstrip())
EOF
}

imports() {
    [[ -x $venv/bin/python ]] && "$venv/bin/python" -c 'import torch, torchvision' >/dev/null 2>&1
}

if [[ $upgrade == 0 && -x $venv/bin/python ]] && report 2>/dev/null; then
    say "the venv already imports torch and torchvision: nothing installed (--upgrade installs the newest)"
    exit 0
fi

# The venv module: Debian ships ensurepip (which venv needs for pip) in python3-venv.
[[ -x $base ]] || die "no Python at $base (STRATA_BENCH_BASE_PYTHON); install Debian's python3"
if ! "$base" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "$base has no venv/ensurepip module: installing Debian's python3-venv"
        apt-get install -y python3-venv || { apt-get update && apt-get install -y python3-venv; } ||
            die "apt-get install -y python3-venv failed"
        "$base" -c 'import venv, ensurepip' >/dev/null 2>&1 ||
            die "$base still has no venv/ensurepip module after installing python3-venv"
    else
        die "$base has no venv/ensurepip module; install it with: sudo apt-get install python3-venv"
    fi
fi

parent=$(dirname -- "$venv")
mkdir -p -- "$parent" || die "cannot create $parent"
exec 9>"$parent/.torch_venv.lock"
flock -n 9 || { say "another torch_venv.sh is building in $parent; waiting for it"; flock 9; }
if [[ $upgrade == 0 && -x $venv/bin/python ]] && report 2>/dev/null; then  # the other one built it
    exit 0
fi

# Free disk where the venv and pip's download directory go (one filesystem: tmp is below it).
free_mb=$(df -Pm -- "$parent" | awk 'NR == 2 { print $4 }')
have_mb=0
if [[ -d $venv ]]; then
    have_mb=$(du -sm -- "$venv" | awk '{ print $1 }')
fi
if ((free_mb + have_mb < need_mb)); then
    die "not enough disk for PyPI's torch: $free_mb MB free on the filesystem of $parent, about" \
        "$need_mb MB needed (the CUDA wheel and its nvidia-* dependencies: about 3 GB downloaded" \
        "and 5.4 GB installed, both there at once); free some, or set STRATA_BENCH_VENV to a" \
        "larger filesystem"
fi

# PyPI reachable? (pip's own failure after minutes of retries says less.)
probe="${index%/}/torch/"
if ! "$base" - "$probe" <<'EOF'
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=30).read(1)
except Exception as e:
    print(f"torch_venv.sh: error: cannot reach {sys.argv[1]}: {e}", file=sys.stderr)
    sys.exit(1)
EOF
then
    die "no network to the package index ($index, PIP_INDEX_URL): torch cannot be installed"
fi

created=0
tmp=""
cleanup() {
    local rc=$?
    [[ -n $tmp ]] && rm -rf -- "$tmp"
    if ((rc != 0 && created)); then
        say "removing the incomplete venv $venv"
        rm -rf -- "$venv"
    fi
}
trap cleanup EXIT

if [[ ! -x $venv/bin/python ]] || ! imports; then
    if [[ -e $venv ]]; then
        [[ -f $venv/pyvenv.cfg ]] ||
            die "$venv exists and is not a virtualenv (no pyvenv.cfg); remove it or set STRATA_BENCH_VENV"
        say "$venv exists but does not import torch and torchvision: building it again"
        rm -rf -- "$venv"
    fi
    say "creating the venv: $base -m venv $venv"
    created=1
    "$base" -m venv -- "$venv" || die "$base -m venv $venv failed"
fi

tmp=$(mktemp -d "$parent/tmp.XXXXXX")
pip=("$venv/bin/python" -m pip install --no-cache-dir --upgrade --progress-bar off)
say "upgrading pip in the venv"
TMPDIR=$tmp "${pip[@]}" pip || die "pip install --upgrade pip failed (status $?)"
say "installing ${packages[*]} from $index (several GB; takes minutes)"
TMPDIR=$tmp "${pip[@]}" "${packages[@]}" ||
    die "pip install ${packages[*]} failed (status $?): see pip's message above"
imports || die "the venv $venv was installed but does not import torch and torchvision"
created=0

report
say "venv size: $(du -sh -- "$venv" | awk '{ print $1 }')"
