#!/usr/bin/env bash
# The start-up agreement (trainer_agree): an MPMD launch whose two ranks differ in what must be
# the same ends on both ranks, non-zero, within 20 s, with a message naming what differs,
# both ranks, their hosts and both values; before it, each of these hung or trained silently.
#   resume      --resume on rank 1 only (rank 0 has 'none')
#   stop_after  --stop-after on rank 1 only
#   subcommand  `strata version` on rank 1 beside `strata train` on rank 0
#   data        data.train is the same relative path, data.h5, but each rank runs in its own
#               directory (mpiexec -wdir) and rank 1's copy has one pixel changed
# Each rank's own exit status is recorded by a bash wrapper; a rank that Open MPI killed after
# the other exited has none, and must then have printed the message itself.
# Usage: startup_agree.sh CASE MPIEXEC STRATA CONFIG
set -uo pipefail
case=$1 mpiexec=$2 strata=$(realpath "$3") config=$4
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-agree.XXXXXX")
trap 'rm -rf "$dir"' EXIT
host=$(hostname)
wrap='"$0" "$@"; s=$?; echo $s > "'"$dir"'/status.$OMPI_COMM_WORLD_RANK"; exit $s'
train=("$strata" train "$(realpath "$config")" --set run.dir="$dir/run")
wdir0=() wdir1=()

# Two copies of a 256-sample 1x8x8 dataset that differ in one pixel of sample 100, each made
# with `strata data convert` from IDX files (plain python3, no modules).
make_data() { # DIR CHANGED
    mkdir -p "$1"
    python3 - "$1" "$2" <<'PY' || return 1
import struct, sys
d, changed = sys.argv[1], int(sys.argv[2])
n = 256
img = bytearray((i * 7 + j * 13) % 256 for i in range(n) for j in range(64))
if changed:
    img[100 * 64 + 5] ^= 1
open(f"{d}/img.idx", "wb").write(struct.pack(">IIII", 0x803, n, 8, 8) + bytes(img))
open(f"{d}/lab.idx", "wb").write(struct.pack(">II", 0x801, n) + bytes(i % 4 for i in range(n)))
PY
    "$strata" data convert --images "$1/img.idx" --labels "$1/lab.idx" --out "$1/data.h5" > /dev/null
}

case $case in
resume)
    cmd0=("${train[@]}") cmd1=("${train[@]}" --resume "$dir/ckpt.h5")
    want="ranks disagree on --resume: rank 0 ($host) has 'none', rank 1 ($host) has '$dir/ckpt.h5'" ;;
stop_after)
    cmd0=("${train[@]}") cmd1=("${train[@]}" --stop-after 3)
    want="ranks disagree on --stop-after: rank 0 ($host) has 'none', rank 1 ($host) has '3'" ;;
subcommand)
    cmd0=("${train[@]}") cmd1=("$strata" version)
    want="ranks disagree on the subcommand: rank 0 ($host) has 'train', rank 1 ($host) has 'version'" ;;
data)
    make_data "$dir/a" 0 && make_data "$dir/b" 1 || { echo "FAIL: could not make the data"; exit 1; }
    cmd0=("${train[@]}" --set data.train=data.h5) cmd1=("${cmd0[@]}")
    wdir0=(-wdir "$dir/a") wdir1=(-wdir "$dir/b")
    want="ranks disagree on data.train (data.h5): rank 0 ($host) has '256 samples of 1x8x8 uint8, 4 classes, hash " ;;
*) echo "usage: startup_agree.sh resume|stop_after|subcommand|data MPIEXEC STRATA CONFIG"; exit 2 ;;
esac

t0=$(date +%s%N)
timeout -k 5 60 "$mpiexec" --oversubscribe \
    -n 1 "${wdir0[@]}" bash -c "$wrap" "${cmd0[@]}" : \
    -n 1 "${wdir1[@]}" bash -c "$wrap" "${cmd1[@]}" > "$dir/out.log" 2>&1
st=$? ms=$((($(date +%s%N) - t0) / 1000000))
fails=0
bad() { echo "FAIL: $case: $*"; fails=$((fails + 1)); }
((st == 124 || st == 137)) && bad "the job hung (killed after 60 s)"
((st == 0)) && bad "mpiexec exited 0"
((ms < 20000)) || bad "took ${ms} ms (limit 20 s)"
for r in 0 1; do
    s=$(cat "$dir/status.$r" 2>/dev/null || echo none)
    if [[ $s == none ]]; then
        grep -q "rank $r: ranks disagree" "$dir/out.log" || bad "rank $r: no exit status and no message"
    elif ((s == 0)); then
        bad "rank $r exited 0"
    fi
    echo "rank $r: exit $s"
done
grep -qF "$want" "$dir/out.log" || bad "expected \"$want\""
if ((fails)); then
    echo "--- mpiexec exit $st after ${ms} ms:"; grep -v '^ *$' "$dir/out.log" | head -30; exit 1
fi
echo "ok: $case: mpiexec exit $st after ${ms} ms: $(grep -m1 -F "ranks disagree" "$dir/out.log")"
