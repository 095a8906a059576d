#!/usr/bin/env bash
# A process killed (SIGKILL) at any moment, during a save included, never loses or damages
# a checkpoint: after each kill, checkpoints/latest names a checkpoint that passes
# `strata inspect --verify`; `--resume auto` continues, and the run killed again and again
# ends with exactly (bitwise) the state of a run never killed. Checkpoints every step of a
# 9 MB model, so most kills land inside a save (the test requires that some did: a
# temporary file left behind).
# Usage: ckpt_kill.sh STRATA CONFIG
set -uo pipefail
strata=$1 config=$2
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
pid=
args=(--set model.widths=[1024,1024] --set data.batch_size=32 --set checkpoint.every_steps=1
      --set checkpoint.keep=2 --set train.epochs=2)
"$strata" train "$config" --set run.dir="$dir/straight" "${args[@]}" > "$dir/straight.log" 2>&1 ||
    { cat "$dir/straight.log"; echo "FAIL: the uninterrupted run"; exit 1; }
# Kills at fixed delays land anywhere (a busy machine may delay the start past them), and
# "save" kills wait until a save's temporary file appears and kill at once: at least those
# land inside a save whatever the load.
temps() { ls "$dir/killed/checkpoints" 2>/dev/null | grep '\.tmp\.'; }
in_save() { # waits (at most 20 s) for a temporary file not among $1: a save in progress
    for _ in $(seq 4000); do
        temps | grep -qvxF -e "$1" -e __none__ && return 0
        sleep 0.005
    done
    return 1
}
fails=0 kills=0 torn=0
for delay in 0.45 save 0.35 0.7 save 0.4 0.65 save 0.3 0.75; do
    before=$(temps) # a dead save's file left by the previous kill is not this one's
    "$strata" train "$config" --set run.dir="$dir/killed" "${args[@]}" --resume auto >> "$dir/killed.log" 2>&1 &
    pid=$!
    if [ "$delay" = save ]; then
        in_save "$before" || echo "note: no save seen within 20 s"
    else
        sleep "$delay"
    fi
    kill -9 "$pid" 2>/dev/null && kills=$((kills + 1))
    wait "$pid" 2>/dev/null
    ls "$dir/killed/checkpoints" 2>/dev/null | grep -q '\.tmp\.' && torn=$((torn + 1))
    if [ -f "$dir/killed/checkpoints/latest" ]; then
        ck="$dir/killed/checkpoints/$(cat "$dir/killed/checkpoints/latest")"
        if ! "$strata" inspect "$ck" --verify > "$dir/inspect.log" 2>&1; then
            cat "$dir/inspect.log"
            echo "FAIL: after a kill at ${delay}s, $ck does not verify"
            fails=$((fails + 1))
        fi
    fi
done
"$strata" train "$config" --set run.dir="$dir/killed" "${args[@]}" --resume auto >> "$dir/killed.log" 2>&1 ||
    { tail -20 "$dir/killed.log"; echo "FAIL: the last resume"; exit 1; }
echo "$kills kills, $torn of them left a save's temporary file behind (a save was interrupted)"
((torn > 0)) || { echo "FAIL: no kill landed inside a save: the test did not test it"; fails=$((fails + 1)); }
final() { echo "$1/checkpoints/$(cat "$1/checkpoints/latest")"; }
/usr/bin/python3 "$here/ckpt_compare.py" "$(final "$dir/straight")" "$(final "$dir/killed")" || fails=$((fails + 1))
ls "$dir/killed" "$dir/killed/checkpoints" | grep -q '\.tmp\.' && { echo "FAIL: temporary files were not cleaned up"; fails=$((fails + 1)); }
echo "$((fails == 0 ? 1 : 0)) passed, $((fails == 0 ? 0 : 1)) failed"
((fails == 0))
