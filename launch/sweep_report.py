#!/usr/bin/python3
"""A learning-rate sweep's results in one table and two plots.

Usage: sweep_report.py DIR [--active-within SECONDS]
       (what `strata sweep report DIR` runs)

DIR is a sweep's `dir:`, holding one run-III directory per run of the grid (written by
`strata train CONFIG --sweep SWEEP`). From every run's sweep.json (index and overrides), status
and metrics.jsonl this writes

  DIR/report.csv   index, run, status, one column per grid key, final valid_loss, final
                   valid_acc, best valid_acc, last step, message (why a run failed)
  DIR/heatmap.png  final validation loss and accuracy over the first two grid keys (other keys
                   fixed at the best run's values, as the title says); one key: bar charts
  DIR/curves.png   validation loss and accuracy per epoch of the best runs (up to 5)

and prints the table, best first: finished runs by lowest final validation loss, then runs
still running or preempted (to be resumed), then unfinished runs, then failed ones. No run is
ever left out, not even one that has no directory yet (sweep.json says how many runs the
grid has). A run's status is its status file's: `finished`, `preempted`, `failed: ...`
(failed), and `running` while a process on this machine trains it (it holds the run's
metrics.jsonl open, or its command line names the sweep and the index); `running` with no
such process, or no status file at all, is "unfinished" (killed, or not started yet).
On a cluster, where runs train on other machines, --active-within SECONDS counts a run as
running when its files changed in the last SECONDS seconds.

Exit status: 0 when the report and plots were written; 1 when DIR does not exist or holds no
run-* directory, or the plots could not be drawn (python3-matplotlib missing); 2 for a bad
command line. Plots use Debian's python3-matplotlib with the Agg backend (no display needed).
"""
import argparse
import csv
import json
import math
import os
import re
import sys
import time

MAX_CURVES = 5
RANK = {"finished": 0, "running": 1, "preempted": 1, "unfinished": 2, "failed": 3}
_BARE = re.compile(r'(?<=[:\[,\s])(-?)(nan|inf)(?=[,\]}\s])', re.IGNORECASE)


def fail(msg):
    print(f"sweep_report: error: {msg}", file=sys.stderr)
    sys.exit(1)


def warn(msg):
    print(f"sweep_report: warning: {msg}", file=sys.stderr)


def parse_line(line):
    """One metrics.jsonl record; printf's bare nan/inf (not JSON) read as NaN/Infinity."""
    try:
        return json.loads(line)
    except ValueError:
        fixed = _BARE.sub(lambda m: ("-Infinity" if m.group(1) else "Infinity")
                          if m.group(2).lower() == "inf" else "NaN", line)
        return json.loads(fixed)


def number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def read_metrics(path):
    """(validation records in order, one per step, the last kept; last step; bad lines)."""
    valid, last_step, bad = {}, None, 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError:
        return [], None, 0
    for i, line in enumerate(lines):
        line = line.strip()
        if not line:
            continue
        try:
            rec = parse_line(line)
        except ValueError:
            # A run killed while writing leaves half a last line: not worth a warning.
            if i != len(lines) - 1:
                bad += 1
            continue
        if not isinstance(rec, dict):
            bad += 1
            continue
        step = rec.get("step")
        if isinstance(step, int) and (last_step is None or step > last_step):
            last_step = step
        if "valid_loss" in rec:
            valid[step] = rec  # a resumed run may repeat a step: the newest record wins
    recs = sorted(valid.values(), key=lambda r: (r.get("step") or 0))
    return recs, last_step, bad


def files_changed_within(run_dir, seconds):
    now = time.time()
    for name in ("status", "metrics.jsonl", "checkpoints/latest"):
        try:
            if now - os.stat(os.path.join(run_dir, name)).st_mtime <= seconds:
                return True
        except OSError:
            pass
    return False


def _proc_args(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _proc_env(pid, name):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                k, _, v = item.decode(errors="replace").partition("=")
                if k == name:
                    return v
    except OSError:
        pass
    return None


def live_process(run_dir, sweep_path, index):
    """True when a process on this machine trains this run: it holds a file of the run
    directory open (rank 0 keeps metrics.jsonl open), or it is `strata train ... --sweep
    SWEEP` for this index (--sweep-index, or SLURM_ARRAY_TASK_ID)."""
    real_dir = os.path.realpath(run_dir) + os.sep
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        if int(pid) == os.getpid():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(real_dir):
                        return True
                except OSError:
                    pass
        except OSError:
            pass
        args = _proc_args(pid)
        if not args or not os.path.basename(args[0]).startswith("strata") or "train" not in args:
            continue
        sweep_arg, index_arg = None, None
        for i, a in enumerate(args):
            if a == "--sweep" and i + 1 < len(args):
                sweep_arg = args[i + 1]
            elif a.startswith("--sweep="):
                sweep_arg = a.split("=", 1)[1]
            elif a == "--sweep-index" and i + 1 < len(args):
                index_arg = args[i + 1]
            elif a.startswith("--sweep-index="):
                index_arg = a.split("=", 1)[1]
        if sweep_arg is None or not sweep_path:
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = "/"
        same = (sweep_arg == sweep_path or
                os.path.realpath(os.path.join(cwd, sweep_arg)) == os.path.realpath(os.path.join(cwd, sweep_path)))
        if index_arg is None:
            index_arg = _proc_env(pid, "SLURM_ARRAY_TASK_ID")
        if same and index_arg is not None and index_arg.strip() == str(index):
            return True
    return False


def read_run(run_dir, active_within):
    name = os.path.basename(run_dir)
    run = {"run": name, "dir": run_dir, "index": None, "overrides": {}, "sweep": None, "runs": None,
           "status": "unfinished", "message": "", "valid": [], "last_step": None}
    m = re.fullmatch(r"run-(\d+)", name)
    if m:
        run["index"] = int(m.group(1))
    try:
        with open(os.path.join(run_dir, "sweep.json"), encoding="utf-8") as f:
            meta = json.load(f)
        if isinstance(meta.get("index"), int):
            run["index"] = meta["index"]
        if isinstance(meta.get("overrides"), dict):
            run["overrides"] = {str(k): str(v) for k, v in meta["overrides"].items()}
        run["sweep"] = meta.get("sweep")
        run["runs"] = meta.get("runs")
    except FileNotFoundError:
        run["message"] = "no sweep.json (not started?)"
    except (OSError, ValueError) as e:
        run["message"] = f"unreadable sweep.json: {e}"

    try:
        with open(os.path.join(run_dir, "status"), encoding="utf-8", errors="replace") as f:
            status = f.read().strip().splitlines()
        status = status[0].strip() if status else ""
    except OSError:
        status = None
    if status == "finished":
        run["status"] = "finished"
    elif status == "preempted":
        run["status"] = "preempted"
    elif status is not None and status.startswith("failed"):
        run["status"] = "failed"
        run["message"] = status.partition(":")[2].strip() or status
    else:
        live = live_process(run_dir, run["sweep"], run["index"]) or \
            (active_within > 0 and files_changed_within(run_dir, active_within))
        if live:
            run["status"] = "running"
        else:
            run["status"] = "unfinished"
            if status not in (None, "running", ""):
                run["message"] = f"unknown status '{status}'"
            elif status == "running":
                run["message"] = run["message"] or "status 'running' but no process trains it"
            elif not run["message"]:
                run["message"] = "no status file"

    run["valid"], run["last_step"], bad = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    if bad:
        warn(f"{name}/metrics.jsonl: {bad} line(s) that are not JSON were skipped")
    losses = [number(r.get("valid_loss")) for r in run["valid"]]
    accs = [number(r.get("valid_acc")) for r in run["valid"]]
    run["final_loss"] = losses[-1] if losses else None
    run["final_acc"] = accs[-1] if accs else None
    finite_accs = [a for a in accs if a is not None and math.isfinite(a)]
    run["best_acc"] = max(finite_accs) if finite_accs else None
    return run


def grid_keys(runs):
    """The grid's keys in the sweep file's order (first key varying slowest): sweep.json's
    overrides hold exactly the grid keys, in that order (the sweep's `set:` is not there)."""
    keys = []
    for r in sorted(runs, key=lambda r: (r["index"] is None, r["index"] or 0)):
        for k in r["overrides"]:
            if k not in keys:
                keys.append(k)
    return keys


def missing_runs(runs, sweep_dir):
    """Runs of the sweep (sweep.json's "runs": how many the grid has) with no directory yet:
    listed as unfinished, never dropped."""
    total = max((r["runs"] for r in runs if isinstance(r.get("runs"), int)), default=0)
    have = {r["index"] for r in runs}
    out = []
    for i in range(total):
        if i not in have:
            name = f"run-{i:03d}"
            out.append({"run": name, "dir": os.path.join(sweep_dir, name), "index": i, "overrides": {},
                        "sweep": None, "runs": total, "status": "unfinished",
                        "message": "not started (no run directory)", "valid": [], "last_step": None,
                        "final_loss": None, "final_acc": None, "best_acc": None})
    return out


def sort_key(run):
    loss = run["final_loss"]
    has = loss is not None and math.isfinite(loss)
    return (RANK[run["status"]], not has, loss if has else 0.0,
            run["index"] if run["index"] is not None else 1 << 30, run["run"])


def fmt(v, digits=4):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}g}" if (not math.isfinite(v) or abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3)) \
            else f"{v:.{digits}f}"
    return str(v)


def write_csv(path, runs, keys):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["index", "run", "status"] + keys +
                   ["final_valid_loss", "final_valid_acc", "best_valid_acc", "last_step", "message"])
        for r in runs:
            w.writerow([r["index"] if r["index"] is not None else "", r["run"], r["status"]] +
                       [r["overrides"].get(k, "") for k in keys] +
                       ["" if r["final_loss"] is None else repr(r["final_loss"]),
                        "" if r["final_acc"] is None else repr(r["final_acc"]),
                        "" if r["best_acc"] is None else repr(r["best_acc"]),
                        "" if r["last_step"] is None else r["last_step"], r["message"]])


def print_table(runs, keys, sweep_dir):
    head = ["#", "index", "status"] + keys + ["valid_loss", "valid_acc", "best_acc", "step"]
    rows = []
    for i, r in enumerate(runs, 1):
        rows.append([str(i), fmt(r["index"]), r["status"]] + [r["overrides"].get(k, "") for k in keys] +
                    [fmt(r["final_loss"]), fmt(r["final_acc"]), fmt(r["best_acc"]), fmt(r["last_step"])])
    widths = [max(len(h), *(len(row[c]) for row in rows)) for c, h in enumerate(head)]
    counts = {}
    for r in runs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    print(f"sweep {sweep_dir}: {len(runs)} run(s): " +
          ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: RANK[s])))
    print("  ".join(h.rjust(w) if c != 2 else h.ljust(w) for c, (h, w) in enumerate(zip(head, widths))))
    for row in rows:
        print("  ".join(v.rjust(w) if c != 2 else v.ljust(w) for c, (v, w) in enumerate(zip(row, widths))))
    for r in runs:
        if r["status"] in ("failed", "unfinished") and r["message"]:
            print(f"  {r['run']}: {r['status']}: {r['message']}")


def _sort_values(vals):
    """Grid values in numeric order when they are all numbers, else as first seen."""
    nums = [number(v) for v in vals]
    if all(n is not None for n in nums):
        return [v for _, v in sorted(zip(nums, vals), key=lambda t: t[0])]
    return vals


def draw_heatmap(plt, path, runs, keys, best):
    metrics = [("final_loss", "final validation loss", "viridis_r"), ("final_acc", "final validation accuracy", "viridis")]
    title_extra = ""
    if len(keys) > 2 and best is not None:
        fixed = {k: best["overrides"].get(k) for k in keys[2:]}
        title_extra = "other keys fixed at the best run's values: " + ", ".join(f"{k}={v}" for k, v in fixed.items())
        runs = [r for r in runs if all(r["overrides"].get(k) == v for k, v in fixed.items())]
    if len(keys) >= 2:
        k0, k1 = keys[0], keys[1]
        rows = _sort_values(list(dict.fromkeys(r["overrides"].get(k0) for r in runs if k0 in r["overrides"])))
        cols = _sort_values(list(dict.fromkeys(r["overrides"].get(k1) for r in runs if k1 in r["overrides"])))
        fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(cols) * 2 + 3), max(3.5, 0.8 * len(rows) + 2.5)))
        for ax, (field, label, cmap) in zip(axes, metrics):
            grid = [[float("nan")] * len(cols) for _ in rows]
            text = [[""] * len(cols) for _ in rows]
            for r in runs:
                a, b = r["overrides"].get(k0), r["overrides"].get(k1)
                if a not in rows or b not in cols:
                    continue
                i, j = rows.index(a), cols.index(b)
                v = r[field]
                if v is not None and math.isfinite(v) and r["status"] not in ("failed", "unfinished"):
                    grid[i][j] = v
                    text[i][j] = fmt(v) + ("" if r["status"] == "finished" else f"\n({r['status']})")
                else:
                    text[i][j] = r["status"] if r["status"] != "finished" else "no value"
            im = ax.imshow(grid, cmap=cmap, aspect="auto")
            ax.set_xticks(range(len(cols)), labels=cols)
            ax.set_yticks(range(len(rows)), labels=rows)
            ax.set_xlabel(k1)
            ax.set_ylabel(k0)
            ax.set_title(label)
            for i in range(len(rows)):
                for j in range(len(cols)):
                    color = "black"
                    if not math.isnan(grid[i][j]):  # white on dark cells, black on light ones
                        r_, g_, b_, _ = im.cmap(im.norm(grid[i][j]))
                        color = "black" if 0.299 * r_ + 0.587 * g_ + 0.114 * b_ > 0.5 else "white"
                    ax.text(j, i, text[i][j], ha="center", va="center", fontsize=8, color=color)
            if best is not None and best["overrides"].get(k0) in rows and best["overrides"].get(k1) in cols:
                i, j = rows.index(best["overrides"][k0]), cols.index(best["overrides"][k1])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
            fig.colorbar(im, ax=ax)
    else:
        key = keys[0] if keys else None
        label_of = (lambda r: r["overrides"].get(key, "?")) if key else (lambda r: r["run"])
        shown = sorted(runs, key=lambda r: r["index"] if r["index"] is not None else 1 << 30)
        if key:
            order = _sort_values(list(dict.fromkeys(label_of(r) for r in shown)))
            shown = sorted(shown, key=lambda r: order.index(label_of(r)))
        fig, axes = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(shown) * 2 + 3), 4))
        for ax, (field, label, _) in zip(axes, metrics):
            vals = [r[field] if r[field] is not None and math.isfinite(r[field]) and
                    r["status"] not in ("failed", "unfinished") else 0.0 for r in shown]
            xs = range(len(shown))
            bars = ax.bar(xs, vals, color=["tab:blue" if r["status"] == "finished" else "tab:gray" for r in shown])
            for b, r, v in zip(bars, shown, vals):
                note = fmt(v) if r["status"] not in ("failed", "unfinished") else r["status"]
                ax.annotate(note, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
            ax.set_xticks(list(xs), labels=[label_of(r) for r in shown], rotation=30 if len(shown) > 6 else 0)
            ax.set_xlabel(key or "run")
            ax.set_title(label)
    fig.suptitle(f"sweep {os.path.basename(os.path.normpath(os.path.dirname(path)))}" +
                 (" (red: the best run)" if len(keys) >= 2 and best is not None else "") +
                 (f"\n{title_extra}" if title_extra else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_curves(plt, path, runs, keys):
    chosen = [r for r in runs if r["valid"] and r["status"] not in ("failed", "unfinished")][:MAX_CURVES]
    if not chosen:  # nothing finished: show whatever has validation records
        chosen = [r for r in runs if r["valid"]][:MAX_CURVES]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in chosen:
        xs = [(rec.get("epoch") if isinstance(rec.get("epoch"), int) else i) + 1 for i, rec in enumerate(r["valid"])]
        label = f"{r['run']}: " + (", ".join(f"{k}={r['overrides'].get(k, '?')}" for k in keys) or r["run"])
        if r["status"] != "finished":
            label += f" ({r['status']})"
        for ax, field in zip(axes, ("valid_loss", "valid_acc")):
            ax.plot(xs, [number(rec.get(field)) for rec in r["valid"]], marker="o", markersize=3, label=label)
    from matplotlib.ticker import MaxNLocator
    for ax, name in zip(axes, ("validation loss", "validation accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    if chosen:
        axes[0].legend(fontsize=7)
    else:
        for ax in axes:
            ax.text(0.5, 0.5, "no run has validation results yet", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"the best {len(chosen)} run(s) of sweep {os.path.basename(os.path.normpath(os.path.dirname(path)))}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    ap = argparse.ArgumentParser(prog="sweep_report.py", description=__doc__.split("\n")[0],
                                 epilog="See docs/cluster.md.")
    ap.add_argument("dir", metavar="DIR", help="the sweep's dir: (holding run-III directories)")
    ap.add_argument("--active-within", type=float, default=0, metavar="SECONDS",
                    help="also count a run as running when its files changed this recently (for runs on other machines)")
    args = ap.parse_args(argv)
    sweep_dir = args.dir
    if not os.path.exists(sweep_dir):
        fail(f"{sweep_dir}: no such directory (the sweep file's dir:)")
    if not os.path.isdir(sweep_dir):
        fail(f"{sweep_dir}: not a directory (expected the sweep file's dir:, holding run-III directories)")
    names = sorted(n for n in os.listdir(sweep_dir)
                   if n.startswith("run-") and os.path.isdir(os.path.join(sweep_dir, n)))
    if not names:
        fail(f"{sweep_dir}: no run-* directories: no run of this sweep has started "
             "(strata train CONFIG --sweep SWEEP --sweep-index I, or launch/slurm/sweep.sbatch)")

    runs = [read_run(os.path.join(sweep_dir, n), args.active_within) for n in names]
    keys = grid_keys(runs)
    runs += missing_runs(runs, sweep_dir)
    runs.sort(key=sort_key)
    best = next((r for r in runs if r["status"] != "failed" and r["final_loss"] is not None
                 and math.isfinite(r["final_loss"])), None)

    csv_path = os.path.join(sweep_dir, "report.csv")
    try:
        write_csv(csv_path, runs, keys)
    except OSError as e:
        fail(f"cannot write {csv_path}: {e}")
    print_table(runs, keys, sweep_dir)
    print(f"wrote {csv_path}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("matplotlib is not installed (Debian package python3-matplotlib): "
             "report.csv written, no plots")
    for name, draw in (("heatmap.png", lambda p: draw_heatmap(plt, p, runs, keys, best)),
                       ("curves.png", lambda p: draw_curves(plt, p, runs, keys))):
        p = os.path.join(sweep_dir, name)
        try:
            draw(p)
        except OSError as e:
            fail(f"cannot write {p}: {e}")
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
