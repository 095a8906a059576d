"""Compares strata runs that must train identically (tests/train_equiv.sh,
tests/train_accumulate.sh): the train_loss of every logged step within 1e-5 relative and
every tensor of weights.h5 within 1e-4 relative. Uses Debian's python3-h5py and numpy."""
import json

import numpy as np
from strata_h5 import tensors


def losses(root, name):
    """The train_loss values of run root/name, in step order."""
    rows = [json.loads(line) for line in open(f"{root}/{name}/metrics.jsonl")]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def weights(root, name):
    """Every tensor of root/name/weights.h5, by name."""
    return tensors(f"{root}/{name}/weights.h5")


def compare(root, ref, others, steps):
    """Checks ref against each of others; returns (number of failures, ref's weights)."""
    L0, W0 = losses(root, ref), weights(root, ref)
    if len(L0) != steps or not L0[-1] < 0.9 * L0[0]:
        print(f"FAIL: {ref}: expected {steps} logged steps with a falling loss, got {L0}")
        return len(others) + 1, W0
    fails = 0
    for name in others:
        L, W = losses(root, name), weights(root, name)
        rel = max(abs(a - b) / abs(a) for a, b in zip(L0, L)) if len(L) == len(L0) else float("inf")
        wrel = max(float(np.max(np.abs(W0[k] - W[k])) / np.max(np.abs(W0[k]))) for k in W0) \
            if sorted(W) == sorted(W0) else float("inf")
        ok = rel <= 1e-5 * (1 + 1e-9) and wrel <= 1e-4  # (1 + 1e-9): 1.00001 vs 1.0 in binary
        fails += not ok
        print(f"{'ok' if ok else 'FAIL'}: {name} vs {ref}: {len(L)} steps, largest relative loss "
              f"difference {rel:.2e} (limit 1e-5), largest relative weight difference {wrel:.2e} (limit 1e-4)")
        if not ok:
            for s, (a, b) in enumerate(zip(L0, L)):
                print(f"  step {s + 1}: {a} {b}")
    return fails, W0
