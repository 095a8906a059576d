"""Reading strata's HDF5 files in tests (Debian's python3-h5py and numpy).

tensors(path): every parameter and BatchNorm buffer of a weights.h5 or checkpoint by its
PyTorch name, in its stored shape: /params/group<g>/<name> and /buffers/<name>
(docs/checkpoint-format.md), or, for a flat weights file of strata before 2026-12-03, the
root datasets. group_numel(path): parameter elements per layer group, from the shapes."""
import h5py
import numpy as np


def tensors(path):
    out = {}
    with h5py.File(path, "r") as f:
        if "params" not in f:  # the old flat layout
            return {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        for g in f["params"].values():
            out.update({k: d[()] for k, d in g.items()})
        out.update({k: d[()] for k, d in f.get("buffers", {}).items()})
    return out


def group_numel(path):
    with h5py.File(path, "r") as f:
        n = int(f["model"].attrs["ngroups"])
        return [sum(int(np.prod(d.shape)) for d in f[f"params/group{g}"].values())
                if f"params/group{g}" in f else 0 for g in range(n)]
