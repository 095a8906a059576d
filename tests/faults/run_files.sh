#!/usr/bin/env bash
# The files of a run directory (issue 17 items 5 and 6):
#  1. run.dir is compared after realpath: a fresh run in the directory an earlier run left
#     (its config.yaml, no checkpoints) is the same run whether run.dir is spelled relative,
#     absolute or through a symlink; a different config there is still refused;
#  2. run.dir/status that cannot be written (a directory in its way) stops the run with the
#     path and the reason, instead of a run that reports nothing;
#  3. a resumed run removes the temporary files of writes that were killed midway
#     (ckpt-N.h5.tmp.*, latest.tmp.*, config.yaml.tmp.*) even when nothing is left to train.
# Before the fix 1 was refused, 2 exited 0 without a status, 3 left the files.
# Usage: run_files.sh STRATA CONFIG
set -uo pipefail
strata=$1 config=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-run-files.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
cd "$dir" || exit 1
args=(--set train.epochs=1)

# 1. Three spellings of one directory.
"$strata" train "$config" --set run.dir=runs/a "${args[@]}" > a.log 2>&1 || { tail -3 a.log; bad "first run"; }
ln -s "$dir/runs" "$dir/link"
for spelling in "$dir/runs/a" "./runs/../runs/a" "$dir/link/a"; do
    rm -rf runs/a/checkpoints
    "$strata" train "$config" --set run.dir="$spelling" "${args[@]}" > b.log 2>&1
    st=$?
    ((st == 0)) && ok "run.dir $spelling is the same run" || { bad "run.dir $spelling (exit $st)"; tail -2 b.log; }
done
rm -rf runs/a/checkpoints
"$strata" train "$config" --set run.dir="$dir/runs/a" --set train.epochs=2 > c.log 2>&1
st=$?
((st != 0)) && grep -q "already holds a different run" c.log && ok "a different config is still refused" ||
    { bad "a different config (exit $st)"; tail -2 c.log; }

# 2. A status that cannot be written.
mkdir -p runs/s/status/inside
"$strata" train "$config" --set run.dir=runs/s "${args[@]}" > s.log 2>&1
st=$?
((st != 0)) && grep -q "runs/s/status" s.log && ok "status in the way: exit $st, $(grep -o 'runs/s/status: .*' s.log | head -1)" ||
    { bad "status in the way (exit $st)"; tail -2 s.log; }

# 3. Dead saves' temporary files, a finished run resumed.
ck=runs/a/checkpoints
"$strata" train "$config" --set run.dir=runs/a --set train.epochs=1 --resume auto > d.log 2>&1 || { tail -2 d.log; bad "run to resume"; }
ls "$ck"/ckpt-*.h5 > /dev/null 2>&1 || bad "no checkpoint to resume"
touch "$ck/ckpt-000000099.h5.tmp.4194305.1" "$ck/latest.tmp.4194305.2" runs/a/config.yaml.tmp.4194305.3
"$strata" train "$config" --set run.dir=runs/a --set train.epochs=1 --resume auto > e.log 2>&1
st=$?
if ((st == 0)) && ! ls "$ck" runs/a | grep -q '\.tmp\.' && grep -q "removed 2 temporary file(s)" e.log &&
    grep -q "removed 1 temporary file(s)" e.log; then
    ok "temporary files removed on a resume with nothing to do"
else
    bad "temporary files (exit $st): $(ls "$ck" | tr '\n' ' ')"; tail -2 e.log
fi

((fails == 0)) && echo "all run-file cases passed" || echo "$fails case(s) failed"
exit $((fails > 0))
