#!/usr/bin/python3
"""Draws the learning-rate finder's curve: plot_lr_find.py CSV PNG [NAME=LR:AT_LR:AT_LOSS ...].

Reads the CSV that `strata lr-find` writes (lr, loss, smoothed_loss) and plots the smoothed
loss against the learning rate on a log axis, with each suggestion marked as fastai's
plot_lr_find marks it: a dot at (AT_LR, AT_LOSS) labelled with its name and LR (valley,
slide, minimum, steep; the first is the suggestion). A bare number is drawn as a vertical
line. Uses Debian's python3-matplotlib with the non-interactive Agg backend.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(argv):
    if len(argv) < 3:
        print("usage: plot_lr_find.py CSV PNG [NAME=LR:AT_LR:AT_LOSS ...]", file=sys.stderr)
        return 2
    lrs, raw, smooth = [], [], []
    with open(argv[1], newline="") as f:
        for row in csv.DictReader(f):
            lrs.append(float(row["lr"]))
            raw.append(float(row["loss"]))
            smooth.append(float(row["smoothed_loss"]))
    if not lrs:
        print(f"{argv[1]}: no rows", file=sys.stderr)
        return 1
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, raw, color="0.75", linewidth=0.8, label="loss")
    ax.plot(lrs, smooth, color="C0", linewidth=1.8, label="smoothed loss")
    for i, arg in enumerate(argv[3:]):
        color = f"C{i + 1}"
        if "=" not in arg:
            s = float(arg)
            ax.axvline(s, color=color, linestyle="--", label=f"suggested lr {s:.2e}")
            continue
        name, vals = arg.split("=", 1)
        lr, at_lr, at_loss = (float(v) for v in vals.split(":"))
        label = f"{name} {lr:.2e}" + (" (the suggestion)" if i == 0 else "")
        ax.plot([at_lr], [at_loss], "o", color=color, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (every layer group)")
    ax.set_ylabel("training loss")
    ax.set_title("strata lr-find")
    lo, hi = min(smooth), max(smooth)
    ax.set_ylim(lo - 0.05 * (hi - lo), min(hi, 4 * lo) + 0.05 * (hi - lo))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(argv[2], dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
