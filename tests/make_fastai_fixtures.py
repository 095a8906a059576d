#!/usr/bin/python3
"""Writes the fixtures that compare strata with fastai v2's own code (issue 18):

  fastai_optim_sgd.h5   fastai's SGD (decouple_wd=True, true weight decay), per-step,
                        per-group lr / mom / wd on fixed gradients
  fastai_optim_adam.h5  fastai's Adam (decoupled weight decay: AdamW) likewise
  fastai_sched.h5       every group's lr and momentum at every step of fit_one_cycle(2,
                        slice(1e-4, 1e-2)) and of fine_tune(2), on a 3-group copy of strata's
                        cnn (1x8x8 inputs, 8 batches an epoch)
  fastai_lr_find.h5     LRFinder's learning rates for the defaults (1e-7, 10, 100) and the four
                        suggestion functions (valley, slide, minimum, steep) on fixed curves

The optimizer files have the layout of tests/make_optim_fixtures.py's (strata's mlp(8), two
layer groups, biases not decayed), plus the attributes true_wd = 1 and fastai_version, so
tests/test_optim.c reads them with the same code. tests/test_optim.c also reads the lr_find
file. No test needs fastai: only this script does.

Run from anywhere as:  /usr/bin/python3 tests/make_fastai_fixtures.py
It first makes (once) a virtualenv in ~/.cache/strata-fastai/venv on top of Debian's
python3-torch (--system-site-packages), installs fastai and its imports from PyPI with
--no-deps (so Debian's numpy and torch stay), and runs itself there. fastai 2.8.12 imports
torch.amp.GradScaler, which torch 1.13 keeps in torch.cuda.amp: the script aliases it before
importing fastai (mixed precision is not used here). The files are the same on every run.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")
VENV = os.path.expanduser("~/.cache/strata-fastai/venv")
FASTAI = "2.8.12"
# fastai's imports, pinned to versions that work with Debian 12's numpy 1.24 and torch 1.13.
PACKAGES = ["fastai==" + FASTAI, "fastcore==2.2.41", "fastprogress==1.1.6",
            "fasttransform==0.0.5", "plum-dispatch==2.9.0", "beartype==0.23.1",
            "typing_extensions==4.16.0", "cloudpickle==3.1.3", "fastdownload==0.0.8",
            "rich==15.0.0", "markdown_it_py==4.3.0", "mdurl==0.1.2", "pandas==2.0.3",
            "tzdata==2026.6", "scikit_learn==1.3.2", "joblib==1.6.0", "threadpoolctl==3.8.0"]


def ensure_venv():
    """Re-runs this script inside the fastai virtualenv, making it first if needed."""
    py = os.path.join(VENV, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    if not os.path.exists(py):
        subprocess.check_call(["/usr/bin/python3", "-m", "venv", "--system-site-packages", VENV])
        subprocess.check_call([py, "-m", "pip", "install", "--no-deps"] + PACKAGES)
    os.execv(py, [py] + sys.argv)


def import_fastai():
    import torch
    import torch.amp
    import torch.cuda.amp.grad_scaler as grad_scaler
    if not hasattr(torch.amp, "GradScaler"):  # torch 1.13: only under torch.cuda.amp
        torch.amp.GradScaler = torch.cuda.amp.GradScaler
        sys.modules.setdefault("torch.amp.grad_scaler", grad_scaler)
    import fastai
    return fastai


def write_optim(fname, kind, fastai_version, seed):
    """fastai's SGD or Adam on make_optim_fixtures' mlp(8), gradients and hyperparameters."""
    import numpy as np
    import torch
    from fastai.optimizer import SGD, Adam
    import make_optim_fixtures as mo
    from fixture_util import h5_create, h5_group

    beta2, eps = mo.f32(0.99), mo.f32(1e-5)
    torch.manual_seed(seed)
    model = mo.mlp8()
    gen = torch.Generator().manual_seed(seed + 1000)
    groups = [[p for n, p in model.named_parameters() if n.startswith(pre)]
              for pre in ("body.", "head.")]
    lr, mom, wd = mo.hparams("sgd" if kind == "sgd" else "adamw")
    if kind == "sgd":
        opt = SGD(groups, lr=0.1, mom=0.9, wd=0.0, decouple_wd=True)
    else:
        opt = Adam(groups, lr=1e-3, mom=0.9, sqr_mom=beta2, eps=eps, wd=0.0, decouple_wd=True)
    for n, p in model.named_parameters():  # fastai's wd_bn_bias=False: no decay on biases
        opt.state[p]["do_wd"] = not n.endswith(".bias")
    path = os.path.join(OUT, fname)
    tmp = path + ".tmp"
    with h5_create(tmp) as f:
        f.attrs["optimizer"] = "sgd" if kind == "sgd" else "adamw"
        f.attrs["nesterov"] = np.int64(0)
        f.attrs["steps"] = np.int64(mo.STEPS)
        f.attrs["groups"] = np.int64(mo.GROUPS)
        f.attrs["decay_bn_bias"] = np.int64(0)
        f.attrs["true_wd"] = np.int64(1)
        f.attrs["fastai_version"] = fastai_version
        f.attrs["description"] = ("fastai %s %s(decouple_wd=True) on strata's mlp(8), 2 layer "
                                  "groups, %d steps with per-step, per-group lr/mom/wd; biases "
                                  "not decayed" % (fastai_version, "SGD" if kind == "sgd"
                                                   else "Adam", mo.STEPS))
        f.create_dataset("beta2", data=np.float32(beta2))
        f.create_dataset("eps", data=np.float32(eps))
        mo.write_tensors(f, "params", dict(model.named_parameters()))
        hp = h5_group(f, "hparams")
        for name, arr in (("lr", lr), ("mom", mom), ("wd", wd)):
            hp.create_dataset(name, data=arr)
        for k in range(mo.STEPS):
            grads = mo.grads_for(model, gen)
            opt.set_hyper("lr", [mo.f32(v) for v in lr[k]])
            opt.set_hyper("mom", [mo.f32(v) for v in mom[k]])
            opt.set_hyper("wd", [mo.f32(v) for v in wd[k]])
            for name, p in model.named_parameters():
                p.grad = grads[name].clone()
            opt.step()
            mo.write_tensors(f, "step%d/grads" % k, grads)
            mo.write_tensors(f, "step%d/params" % k, dict(model.named_parameters()))
    os.replace(tmp, path)


def curves():
    """Fixed smoothed-loss curves (float32) for the suggestion functions: (name, lrs, losses,
    num_it). A classic full sweep, one stopped early, a noisy one and a short one."""
    import numpy as np
    from fastai.callback.schedule import SchedExp
    rng = np.random.default_rng(18)
    out = []
    for name, n, num_it, noise in (("full", 100, 100, 0.0), ("stopped", 71, 100, 0.01),
                                   ("noisy", 100, 100, 0.03), ("short", 40, 40, 0.0)):
        lrs = np.array([SchedExp(1e-7, 10)(k / num_it) for k in range(n)])
        x = np.log10(lrs)
        loss = 2.3 - 1.2 / (1 + np.exp(-(x + 3.5) * 2.0)) + 0.8 * np.exp((x - 0.3) * 1.6)
        loss = loss + noise * rng.standard_normal(n)
        out.append((name, lrs, loss.astype(np.float32), num_it))
    return out


def write_lr_find(fastai_version):
    import numpy as np
    import torch
    from fastai.callback.schedule import SchedExp, valley, slide, minimum, steep
    from fixture_util import h5_create, h5_group

    path = os.path.join(OUT, "fastai_lr_find.h5")
    tmp = path + ".tmp"
    with h5_create(tmp) as f:
        f.attrs["fastai_version"] = fastai_version
        f.attrs["description"] = ("fastai %s LRFinder: lrs of the default sweep (SchedExp(1e-7, "
                                  "10) at train_iter/num_it), and valley, slide, minimum, steep "
                                  "as Learner.lr_find calls them, on fixed curves"
                                  % fastai_version)
        sweep = [SchedExp(1e-7, 10)(k / 100) for k in range(100)]
        f.create_dataset("sweep_lrs", data=np.array(sweep, dtype=np.float64))
        for name, lrs, loss, num_it in curves():
            g = h5_group(f, name)
            g.attrs["num_it"] = np.int64(num_it)
            g.create_dataset("lrs", data=lrs.astype(np.float64))
            g.create_dataset("losses", data=loss)
            # Exactly Learner.lr_find's code: the window, then each function.
            wl = torch.tensor(list(lrs[num_it // 10:-5]))
            wv = torch.tensor(list(loss.astype(np.float64)[num_it // 10:-5]))
            names, vals, pts = [], [], []
            for fn in (valley, slide, minimum, steep):
                v, (plr, ploss) = fn(wl, wv, num_it)
                names.append(fn.__name__)
                vals.append(float(v))
                pts.append((float(plr), float(ploss)))
            g.create_dataset("suggestions", data=np.array(vals, dtype=np.float64))
            g.create_dataset("points", data=np.array(pts, dtype=np.float64))
            g.attrs["names"] = ",".join(names)
    os.replace(tmp, path)


def cnn_learner(fastai_version):
    """A fastai Learner on a copy of strata's cnn (body children 0-16, cut 17, split 7; head
    AdaptiveAvgPool2d, Flatten, Linear), 3 groups, 128 random 1x8x8 samples in 8 batches."""
    import torch
    import torch.nn as nn
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.torch_core import params
    import make_optim_fixtures as mo

    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]
    torch.manual_seed(5)
    body = nn.Sequential(*cbr(1, 32), *cbr(32, 32), nn.MaxPool2d(2, 2), *cbr(32, 64),
                         *cbr(64, 64), nn.MaxPool2d(2, 2), *cbr(64, 128))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 3))
    model = mo.BodyHead(body, head)
    gen = torch.Generator().manual_seed(6)
    xs = torch.randn(128, 1, 8, 8, generator=gen)
    ys = torch.randint(0, 3, (128,), generator=gen)
    data = list(zip(xs, ys))
    dls = DataLoaders(DataLoader(data, bs=16, shuffle=False, drop_last=True),
                      DataLoader(data[:32], bs=16))
    split = lambda m: [params(m.body[:7]), params(m.body[7:]), params(m.head)]
    import tempfile
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), splitter=split,
                   path=tempfile.mkdtemp())


def write_sched(fastai_version):
    """Per-step lr and mom of every group, recorded after ParamScheduler set them."""
    import numpy as np
    from fastai.callback.core import Callback
    from fixture_util import h5_create, h5_group

    class Record(Callback):
        order = 70  # after ParamScheduler (60)

        def __init__(self):
            self.lr, self.mom = [], []

        def before_batch(self):
            if self.training:
                self.lr.append([h["lr"] for h in self.opt.hypers])
                self.mom.append([h["mom"] for h in self.opt.hypers])

    path = os.path.join(OUT, "fastai_sched.h5")
    tmp = path + ".tmp"
    with h5_create(tmp) as f:
        f.attrs["fastai_version"] = fastai_version
        f.attrs["description"] = ("fastai %s: lr and mom (steps, 3 groups) of every training "
                                  "step of fit_one_cycle(2, slice(1e-4, 1e-2)) and of "
                                  "fine_tune(2) (base_lr 2e-3), 8 steps an epoch"
                                  % fastai_version)
        f.attrs["steps_per_epoch"] = np.int64(8)
        for name in ("fit_one_cycle", "fine_tune"):
            learn = cnn_learner(fastai_version)
            rec = Record()
            if name == "fit_one_cycle":
                learn.fit_one_cycle(2, slice(1e-4, 1e-2), cbs=rec)
            else:
                learn.fine_tune(2, cbs=rec)
            g = h5_group(f, name)
            g.create_dataset("lr", data=np.array(rec.lr, dtype=np.float64))
            g.create_dataset("mom", data=np.array(rec.mom, dtype=np.float64))
    os.replace(tmp, path)


def main():
    ensure_venv()
    sys.path.insert(0, HERE)
    fastai = import_fastai()
    import torch
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    write_optim("fastai_optim_sgd.h5", "sgd", fastai.__version__, seed=11)
    write_optim("fastai_optim_adam.h5", "adam", fastai.__version__, seed=12)
    write_lr_find(fastai.__version__)
    write_sched(fastai.__version__)
    for fn in ("fastai_optim_sgd.h5", "fastai_optim_adam.h5", "fastai_lr_find.h5",
               "fastai_sched.h5"):
        print("%-24s %8d bytes (fastai %s)" % (fn, os.path.getsize(os.path.join(OUT, fn)),
                                               fastai.__version__))


if __name__ == "__main__":
    main()
