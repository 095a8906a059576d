"""Compares two strata checkpoints (docs/checkpoint-format.md) for tests: every parameter,
BatchNorm buffer and optimizer state tensor, the optimizer's step counters, the group table
and the train state (with every RNG state) must be bitwise equal.
Usage: ckpt_compare.py A.h5 B.h5   (exit 0 when equal; prints what differs)."""
import sys

import h5py
import numpy as np


def tensors(f):
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.split("/")[0] in ("params", "buffers", "optimizer", "train_state"):
            out[name] = obj[()]
    f.visititems(visit)
    return out


def attrs(f, path):
    return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f[path].attrs.items()}


def main(a, b):
    fails = []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        ta, tb = tensors(fa), tensors(fb)
        if sorted(ta) != sorted(tb):
            fails.append(f"different datasets: only in A {sorted(set(ta) - set(tb))}, only in B {sorted(set(tb) - set(ta))}")
        n = 0
        for k in sorted(set(ta) & set(tb)):
            x, y = ta[k], tb[k]
            if x.shape != y.shape or x.dtype != y.dtype or x.tobytes() != y.tobytes():
                d = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.shape == y.shape else float("nan")
                fails.append(f"{k}: differs (largest difference {d:.3g})")
            n += x.size
        for path in ["train_state"] + [f"groups/{g}" for g in range(int(fa["model"].attrs["ngroups"]))]:
            if attrs(fa, path) != attrs(fb, path):
                fails.append(f"/{path} attributes differ: {attrs(fa, path)} vs {attrs(fb, path)}")
        if attrs(fa, "optimizer") != attrs(fb, "optimizer"):
            fails.append("/optimizer attributes differ")
    for f in fails:
        print("FAIL:", f)
    print(f"{'ok' if not fails else 'FAIL'}: {a} vs {b}: {len(ta)} datasets, {n} values compared bitwise")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
