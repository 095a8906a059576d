#!/usr/bin/env bash
# launch/sweep_report.py on hand-made run directories (no Slurm, no training): a 3x2x2 grid
# whose runs finished, failed, were preempted, are still running (a live process holds the
# run's metrics.jsonl open), were killed (status `running`, no process) or never started (no
# status); a metrics.jsonl with a bare `nan` and a torn last line. Every run is listed, best
# first, with its overrides; both plots are written; one-key and two-key sweeps; clear errors
# for a missing directory and one without run-* directories.
# Usage: sweep_report_test.sh REPORT_PY
set -euo pipefail
report=$1
py=/usr/bin/python3
dir=$(mktemp -d)
holder=
cleanup() {
    [[ -z "$holder" ]] || { kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; }
    rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

# make_sweep DIR RUNS KEYS... : writes run-III directories of a RUNS-run grid from a table on stdin:
#   INDEX STATUS LOSS_PER_EPOCH(comma list or -) VALUE_PER_KEY...
make_sweep() {
    "$py" -c "$gen" "$@"
}
gen=$(cat <<'EOF'
import json, os, sys
out, runs, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
os.makedirs(out, exist_ok=True)
for line in sys.stdin:
    f = line.split()
    if not f:
        continue
    idx, status, losses, vals = int(f[0]), f[1], f[2], f[3:]
    d = os.path.join(out, f"run-{idx:03d}")
    os.makedirs(os.path.join(d, "checkpoints"), exist_ok=True)
    with open(os.path.join(d, "sweep.json"), "w") as g:
        json.dump({"index": idx, "runs": runs, "sweep": os.path.join(out, "sweep.yaml"),
                   "overrides": dict(zip(keys, vals))}, g)
    if status != "none":
        with open(os.path.join(d, "status"), "w") as g:
            g.write(status.replace("_", " ") + "\n")
    if losses == "-":
        continue
    with open(os.path.join(d, "metrics.jsonl"), "w") as g:
        step = 0
        for e, l in enumerate(losses.split(",")):
            for _ in range(2):
                step += 5
                g.write(json.dumps({"step": step, "epoch": e, "phase": 0, "train_loss": 1.0, "train_acc": 0.5,
                                    "lr": [0.1, 0.1, 0.1], "frozen": [], "samples_per_s": 100.0}) + "\n")
            if l == "nan":
                g.write('{"step": %d, "epoch": %d, "phase": 0, "valid_loss": nan, "valid_acc": 0.25}\n' % (step, e))
            else:
                g.write(json.dumps({"step": step, "epoch": e, "phase": 0, "valid_loss": float(l),
                                    "valid_acc": round(1 - float(l) / 3, 4)}) + "\n")
EOF
)

# A 3x2x2 grid (sweep.json's overrides: the grid keys, in the sweep file's order), the first key slowest; the best run (lowest final loss) is run 7.
s3="$dir/three"
make_sweep "$s3" 12 groups.lr.0 groups.lr.2 train.phases.1.lr <<'EOF'
0  finished            1.2,1.0,0.9        1e-4 1e-3 0.01
1  finished            1.1,0.8,0.7        1e-4 1e-3 0.1
2  failed:_diverged    1.0,nan            1e-4 1e-2 0.01
3  finished            1.0,0.9,0.85       1e-4 1e-2 0.1
4  preempted           1.3,1.1            1e-3 1e-3 0.01
5  running             1.2                1e-3 1e-3 0.1
6  running             1.0,0.7            1e-3 1e-2 0.01
7  finished            0.9,0.5,0.3        1e-3 1e-2 0.1
8  none                -                  1e-2 1e-3 0.01
9  finished            1.5,1.4,1.35       1e-2 1e-3 0.1
10 finished            1.4,1.2,1.1        1e-2 1e-2 0.01
11 finished            0.8,0.6,0.5        1e-2 1e-2 0.1
EOF
printf '{"step": 99, "epoch"' >>"$s3/run-007/metrics.jsonl" # torn last line (killed mid-write)
# Run 5 is still training: a process holds its metrics.jsonl open. Run 6 says running, but
# nothing trains it (killed): unfinished.
sleep 300 3>>"$s3/run-005/metrics.jsonl" &
holder=$!
sleep 0.2

"$py" "$report" "$s3" >"$dir/out3.txt" 2>&1 || { cat "$dir/out3.txt"; fail "report on a 3-key sweep exited non-zero"; }
cat "$dir/out3.txt"
"$py" - "$s3/report.csv" <<'EOF' || fail "report.csv is wrong"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cols = list(rows[0].keys())
assert cols[:6] == ["index", "run", "status", "groups.lr.0", "groups.lr.2", "train.phases.1.lr"], cols
for c in ("final_valid_loss", "final_valid_acc", "best_valid_acc", "last_step"):
    assert c in cols, c
order = [int(r["index"]) for r in rows]
status = {int(r["index"]): r["status"] for r in rows}
# finished by loss (7 0.3, 11 0.5, 1 0.7, 3 0.85, 0 0.9, 10 1.1, 9 1.35), then running and
# preempted (4 1.1, 5 1.2), unfinished (6 with a loss, 8 without), failed (2).
assert order == [7, 11, 1, 3, 0, 10, 9, 4, 5, 6, 8, 2], order
assert status[2] == "failed" and status[4] == "preempted" and status[5] == "running", status
assert status[6] == "unfinished" and status[8] == "unfinished", status
r = {int(r["index"]): r for r in rows}
assert r[7]["groups.lr.0"] == "1e-3" and r[7]["groups.lr.2"] == "1e-2" and r[7]["train.phases.1.lr"] == "0.1"
assert float(r[7]["final_valid_loss"]) == 0.3 and r[7]["last_step"] == "30", r[7]
assert float(r[7]["best_valid_acc"]) == 0.9, r[7]
assert r[2]["message"] == "diverged" and r[8]["final_valid_loss"] == "", (r[2], r[8])
print("report.csv ok:", order)
EOF
grep -q "12 run(s): 7 finished" "$dir/out3.txt" || fail "summary line"
grep -q "run-006: unfinished: status 'running' but no process trains it" "$dir/out3.txt" || fail "unfinished run not explained"
for png in heatmap curves; do
    [[ -s "$s3/$png.png" ]] || fail "$png.png not written"
    head -c 8 "$s3/$png.png" | grep -q PNG || fail "$png.png is not a PNG"
done

# --active-within: a run on another machine counts as running when its files are fresh.
"$py" "$report" "$s3" --active-within 3600 >"$dir/out3b.txt" 2>&1 || { cat "$dir/out3b.txt"; fail "--active-within"; }
grep -q '^6,run-006,running,' "$s3/report.csv" || fail "--active-within did not count run 6 as running"

# Two keys (a plain heatmap) and one key (bar charts), no sweep file to read the grid from.
make_sweep "$dir/two" 4 groups.lr.0 groups.lr.2 <<'EOF'
0 finished 1.0,0.5 0.1 0.01
1 finished 1.0,0.4 0.1 0.1
2 finished 1.0,0.6 1 0.01
3 none     -       1 0.1
EOF
"$py" "$report" "$dir/two" >"$dir/out2.txt" 2>&1 || { cat "$dir/out2.txt"; fail "2-key sweep"; }
head -1 "$dir/two/report.csv" | grep -q '^index,run,status,groups.lr.0,groups.lr.2,final_valid_loss' || fail "2-key header"
make_sweep "$dir/one" 5 groups.lr <<'EOF'
0 finished 1.0,0.5 0.1
1 finished 1.0,0.4 0.01
2 failed:_out_of_memory 1.0 1
EOF
"$py" "$report" "$dir/one" >"$dir/out1.txt" 2>&1 || { cat "$dir/out1.txt"; fail "1-key sweep"; }
[[ -s "$dir/one/heatmap.png" && -s "$dir/one/curves.png" ]] || fail "1-key plots"
sed -n 2p "$dir/one/report.csv" | grep -q '^1,run-001,finished,0.01,' || fail "1-key order"
# Runs 3 and 4 of 5 never started (no directory): listed as unfinished, not dropped.
grep -q '^3,run-003,unfinished,,.*not started' "$dir/one/report.csv" &&
    grep -q '^4,run-004,unfinished,' "$dir/one/report.csv" || { cat "$dir/one/report.csv"; fail "runs not started are missing"; }

# Clear errors: no such directory; a directory without run-* directories.
rc=0
"$py" "$report" "$dir/nope" >"$dir/err.txt" 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q "no such directory" "$dir/err.txt" || { cat "$dir/err.txt"; fail "missing dir: rc $rc"; }
mkdir "$dir/empty"
rc=0
"$py" "$report" "$dir/empty" >"$dir/err.txt" 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q "no run-\* directories" "$dir/err.txt" || { cat "$dir/err.txt"; fail "empty dir: rc $rc"; }
echo "sweep_report: all checks passed"
