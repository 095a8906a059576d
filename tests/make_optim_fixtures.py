#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/test_optim.c compares strata's optimizers
(trainer/trainer_optim.c) against: optim_sgd.h5, optim_sgd_nesterov.h5 and optim_adamw.h5.

Run from anywhere as:  /usr/bin/python3 tests/make_optim_fixtures.py
It writes into tests/fixtures next to this script; the files are the same on every run.

The model mirrors strata's `mlp` with widths {8} on 1x2x2 inputs and 3 classes:
body = Sequential(Flatten, Linear(4, 8), ReLU), head = Sequential(Flatten, Linear(8, 3)),
so its parameter names (body.1.weight, body.1.bias, head.1.weight, head.1.bias) are strata's.
It has two layer groups, the body and the head. No forward or backward is run: every step
gets its own fixed gradients, which the C test copies into strata's gradient slabs.

Each layer group becomes two torch parameter groups, as fastai builds them: the weights with
the group's weight decay and the biases with weight decay 0 (strata's default rule, no decay
for biases and BatchNorm parameters). Learning rate, momentum (SGD momentum or AdamW beta1)
and weight decay change at every step and differ between the groups, as under one_cycle.

Layout of every file (float32 datasets; the references are computed in float64 from float32
starting values, gradients and hyperparameters):
  /params/<name>              the parameters before the first step
  /hparams/lr, mom, wd        (K, G): step k's value for layer group g
  /beta2, /eps                AdamW's settings (scalars; SGD files hold them too, unused)
  /step<k>/grads/<name>       the gradients given to step k (k = 0 .. K-1)
  /step<k>/params/<name>      the parameters after step k
  attributes                  optimizer ("sgd" or "adamw"), nesterov, steps (K),
                              groups (G), decay_bn_bias (0), description
"""

import os

import numpy as np
import torch
import torch.nn as nn

from fixture_util import h5_create, h5_group

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
STEPS = 5
GROUPS = 2


class BodyHead(nn.Module):
    """strata's model layout: a body Sequential and a head Sequential."""

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x):
        return self.head(self.body(x))


def mlp8():
    """strata's mlp(widths {8}) on 1x2x2 inputs with 3 classes, PyTorch's default init drawn
    in float32, then moved to float64."""
    torch.set_default_dtype(torch.float32)
    m = BodyHead(nn.Sequential(nn.Flatten(), nn.Linear(4, 8), nn.ReLU()),
                 nn.Sequential(nn.Flatten(), nn.Linear(8, 3)))
    return m.double()


def f32(x):
    """A Python float rounded to float32, so that torch and strata use the same value."""
    return float(np.float32(x))


def hparams(kind):
    """Per-step, per-group lr, momentum and weight decay, (K, G) each, float32-representable.
    Shaped like a one-cycle: lr rises then falls, momentum falls then rises; the body gets a
    tenth of the head's lr, as slice(b) gives. SGD's group 0 has momentum 0 at step 2, so the
    momentum buffer must be left untouched there and resumed afterwards, as PyTorch does."""
    head_lr = [0.02, 0.08, 0.1, 0.06, 0.01] if kind == "sgd" else [2e-3, 8e-3, 1e-2, 6e-3, 1e-3]
    moms = [0.95, 0.9, 0.85, 0.9, 0.95]
    lr = np.array([[h / 10.0, h] for h in head_lr], dtype=np.float32)
    mom = np.array([[m, m - 0.05] for m in moms], dtype=np.float32)
    if kind == "sgd":
        mom[2, 0] = 0.0
    wd = np.array([[0.01 * (k + 1), 0.05 + 0.02 * k] for k in range(STEPS)], dtype=np.float32)
    if kind == "adamw":
        wd *= 10.0  # decoupled decay is lr * wd per step: make it visible at AdamW's lrs
    return lr, mom, wd


def grads_for(model, gen):
    """One set of fixed gradients: N(0, 1) in float32, except the head's bias, whose gradients
    are small (1e-4) so that AdamW's eps (1e-5) is not negligible next to sqrt(v)."""
    out = {}
    for name, p in model.named_parameters():
        g = torch.randn(p.shape, generator=gen, dtype=torch.float32)
        if name == "head.1.bias":
            g = g * np.float32(1e-4)
        out[name] = g.double()
    return out


def write_tensors(parent, path, tensors):
    """Writes name -> tensor as float32 datasets under the group path (created level by level)."""
    g = parent
    for part in path.split("/"):
        g = g[part] if part in g else h5_group(g, part)
    for name, t in tensors.items():
        g.create_dataset(name, data=t.detach().numpy().astype(np.float32))


def make(fname, kind, nesterov=False, beta2=0.99, eps=1e-5, seed=0):
    beta2, eps = f32(beta2), f32(eps)  # stored as float32, so both sides use the same value
    torch.manual_seed(seed)
    model = mlp8()
    gen = torch.Generator().manual_seed(seed + 1000)
    group_of = {name: (0 if name.startswith("body.") else 1)
                for name, _ in model.named_parameters()}
    # Per layer group: its decayed parameters, then its biases (no weight decay).
    torch_groups = []
    for g in range(GROUPS):
        for decay in (True, False):
            ps = [p for name, p in model.named_parameters()
                  if group_of[name] == g and name.endswith(".bias") != decay]
            torch_groups.append({"params": ps, "layer_group": g, "decay": decay})
    if kind == "sgd":
        opt = torch.optim.SGD(torch_groups, lr=0.1, momentum=0.9, nesterov=nesterov)
    else:
        opt = torch.optim.AdamW(torch_groups, lr=1e-3, betas=(0.9, beta2), eps=eps)
    lr, mom, wd = hparams(kind)

    path = os.path.join(OUT, fname)
    tmp = path + ".tmp"
    with h5_create(tmp) as f:
        f.attrs["optimizer"] = kind
        f.attrs["nesterov"] = np.int64(1 if nesterov else 0)
        f.attrs["steps"] = np.int64(STEPS)
        f.attrs["groups"] = np.int64(GROUPS)
        f.attrs["decay_bn_bias"] = np.int64(0)
        f.attrs["description"] = ("torch.optim.%s%s on strata's mlp(8), 2 layer groups, "
                                  "%d steps with per-step, per-group lr/mom/wd; biases not "
                                  "decayed" % ("SGD" if kind == "sgd" else "AdamW",
                                               " (nesterov)" if nesterov else "", STEPS))
        f.create_dataset("beta2", data=np.float32(beta2))
        f.create_dataset("eps", data=np.float32(eps))
        write_tensors(f, "params", dict(model.named_parameters()))
        hp = h5_group(f, "hparams")
        for name, arr in (("lr", lr), ("mom", mom), ("wd", wd)):
            hp.create_dataset(name, data=arr)
        for k in range(STEPS):
            grads = grads_for(model, gen)
            for pg in opt.param_groups:
                g = pg["layer_group"]
                pg["lr"] = f32(lr[k, g])
                pg["weight_decay"] = f32(wd[k, g]) if pg["decay"] else 0.0
                if kind == "sgd":
                    pg["momentum"] = f32(mom[k, g])
                else:
                    pg["betas"] = (f32(mom[k, g]), beta2)
            for name, p in model.named_parameters():
                p.grad = grads[name].clone()
            opt.step()
            write_tensors(f, "step%d/grads" % k, grads)
            write_tensors(f, "step%d/params" % k, dict(model.named_parameters()))
    os.replace(tmp, path)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    make("optim_sgd.h5", "sgd", seed=1)
    make("optim_sgd_nesterov.h5", "sgd", nesterov=True, seed=2)
    make("optim_adamw.h5", "adamw", seed=3)
    for fn in ("optim_sgd.h5", "optim_sgd_nesterov.h5", "optim_adamw.h5"):
        print("%-24s %8d bytes" % (fn, os.path.getsize(os.path.join(OUT, fn))))


if __name__ == "__main__":
    main()
