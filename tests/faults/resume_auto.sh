#!/usr/bin/env bash
# --resume auto never starts over existing checkpoints: with checkpoints/latest deleted it
# resumes from the newest ckpt-*.h5 and says why; with latest stale (naming an older file)
# likewise; when no checkpoint there opens it stops with an error and keeps every file.
# Usage: resume_auto.sh STRATA CONFIG
set -uo pipefail
strata=$1 config=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-resume-auto.XXXXXX")
trap 'rm -rf "$dir"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
run=$dir/run ck=$dir/run/checkpoints
"$strata" train "$config" --set run.dir="$run" --set train.epochs=3 --stop-after 40 > "$dir/a.log" 2>&1 ||
    { cat "$dir/a.log"; echo "FAIL: the first run"; exit 1; }
newest=$(ls "$ck" | grep '^ckpt-.*\.h5$' | sort | tail -1)
older=$(ls "$ck" | grep '^ckpt-.*\.h5$' | sort | head -1)
[ -n "$newest" ] && [ "$newest" != "$older" ] || { ls "$ck"; echo "FAIL: expected two checkpoints or more"; exit 1; }

cp -a "$run" "$dir/keep"
rm "$ck/latest"
"$strata" train "$config" --set run.dir="$run" --set train.epochs=3 --resume auto > "$dir/b.log" 2>&1
st=$?
if ((st == 0)) && grep -q "latest is missing; resuming from $ck/$newest" "$dir/b.log" && ! grep -q "starting from the beginning" "$dir/b.log"; then
    ok "latest missing: resumed from $newest"
else
    bad "latest missing (exit $st)"; tail -5 "$dir/b.log"
fi

rm -rf "$run" && cp -a "$dir/keep" "$run"
echo "$older" > "$ck/latest"
"$strata" train "$config" --set run.dir="$run" --set train.epochs=3 --resume auto > "$dir/c.log" 2>&1
st=$?
if ((st == 0)) && grep -q "latest names $older, but $newest is newer; resuming from $ck/$newest" "$dir/c.log"; then
    ok "latest stale: resumed from $newest"
else
    bad "latest stale (exit $st)"; tail -5 "$dir/c.log"
fi

rm -rf "$run" && cp -a "$dir/keep" "$run"
for f in "$ck"/ckpt-*.h5; do printf 'torn' > "$f"; done
n=$(ls "$ck" | wc -l)
"$strata" train "$config" --set run.dir="$run" --set train.epochs=3 --resume auto > "$dir/d.log" 2>&1
st=$?
if ((st != 0 && st < 128)) && grep -q "no ckpt-\*.h5 file opens" "$dir/d.log" && [ "$(ls "$ck" | wc -l)" = "$n" ] &&
    grep -q torn "$ck/$newest"; then
    ok "no checkpoint opens: refused (exit $st), the $n files kept"
else
    bad "torn checkpoints (exit $st)"; tail -5 "$dir/d.log"; ls -l "$ck"
fi
exit $((fails > 0))
