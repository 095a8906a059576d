#!/usr/bin/python3
"""PyTorch DDP twin of launch/configs/fmnist_cnn.yaml for bench/tta: the same model, schedule,
optimizer, augmentation, batch and sharding rule, on 2 gloo ranks with one thread each, timed
from start to the first validation at or above the target accuracy.

The recipe, as strata runs it (docs/training.md, docs/data.md):
  - strata's `cnn` (bench/torch_ref.py's twin), PyTorch's default initialisation (strata's too);
  - Fashion-MNIST from Debian's dataset-fashion-mnist, normalised by mean 0.2860, std 0.3530;
    augmentation per sample: RandomCrop(28, padding=P) with black padding, then
    RandomHorizontalFlip(); the validation set (the 10,000 test images) is not augmented;
  - each epoch a fresh permutation, rank r taking every world-th sample, per-rank batches of B,
    the last partial global batch dropped;
  - SGD with Nesterov momentum (dampening 0) whose lr and momentum follow fastai's one-cycle
    (cos_anneal from lr/div to lr over pct_start of the steps, then to lr/div_final; momentum
    0.95 -> 0.85 -> 0.95) per step; weight decay on conv and linear weights only (fastai's
    wd_bn_bias False), coupled L2 (torch.optim.SGD) or decoupled (--true-wd: p *= 1 - lr*wd);
  - cross-entropy; BatchNorm statistics kept per rank (DDP's default broadcast_buffers makes
    rank 0's the ones validated, as strata validates with rank-averaged statistics: both are
    one replica's choice of statistics and neither is tuned here);
  - validation after every epoch, sharded over the ranks, the correct counts summed.

Prints, like `strata train`, "epoch E/N valid loss L valid accuracy A (T s)" per epoch on rank
0 (T: seconds since this script started), and at the end one JSON line:
  {"torch": ..., "epochs": N, "reached": true, "seconds_to_target": T, "accuracy": A,
   "epoch_reached": E, "history": [[epoch, acc, seconds], ...]}
It stops at the first epoch that reaches --target (DAWNBench's rule) unless --full.

Options: --epochs N --lr X --wd X --batch B --crop-padding P --flip 0|1 --target A --seed S
         --true-wd --full --data DIR --max-seconds S (give up, "reached": false)
"""
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import gzip
import json
import math
import socket
import struct
import sys
import time

T0 = time.monotonic()

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import cnn, one_thread  # noqa: E402

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def cos_anneal(s, e, x):
    return s + (1.0 + math.cos(math.pi * (1.0 - x))) * (e - s) / 2.0


def one_cycle(p, pct, start, middle, end):
    if p < pct:
        return cos_anneal(start, middle, p / pct)
    return cos_anneal(middle, end, (p - pct) / (1.0 - pct) if pct < 1.0 else 1.0)


def to_float(images):
    return ((images.float() / 255.0) - MEAN) / STD


def augment(images, padding, flip, gen):
    """RandomCrop(padding) with black pixels, then RandomHorizontalFlip, per sample."""
    n, h, w = images.shape
    x = images
    if padding > 0:
        x = F.pad(images, (padding, padding, padding, padding))
        top = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        left = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
        rows = (top[:, None] + torch.arange(h))[:, :, None]
        cols = (left[:, None] + torch.arange(w))[:, None, :]
        x = x[torch.arange(n)[:, None, None], rows, cols]
    if flip:
        mask = torch.rand(n, generator=gen) < 0.5
        x = torch.where(mask[:, None, None], x.flip(-1), x)
    return x


def validate(model, images, labels, rank, world):
    model.eval()
    correct = torch.zeros(2, dtype=torch.float64)
    with torch.no_grad():
        idx = torch.arange(rank, images.shape[0], world)
        for i in range(0, idx.numel(), 500):
            sel = idx[i:i + 500]
            out = model(to_float(images[sel]).unsqueeze(1))
            correct[0] += (out.argmax(1) == labels[sel]).sum().item()
            correct[1] += F.cross_entropy(out, labels[sel], reduction="sum").item()
    dist.all_reduce(correct)
    model.train()
    return correct[0].item() / images.shape[0], correct[1].item() / images.shape[0]


def param_groups(model, wd):
    decay, rest = [], []
    for m in model.modules():
        for name, p in m.named_parameters(recurse=False):
            is_weight = name == "weight" and isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))
            (decay if is_weight else rest).append(p)
    return [{"params": decay, "wd": wd}, {"params": rest, "wd": 0.0}]


def rank_main(rank, world, port, a, queue):
    one_thread()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xva, yva = load(a.data, "t10k")
    model = DDP(cnn(1, 10))
    groups = param_groups(model, a.wd)
    opt = torch.optim.SGD([{"params": g["params"], "weight_decay": 0.0 if a.true_wd else g["wd"]}
                           for g in groups], lr=a.lr, momentum=0.9, nesterov=True)
    steps = xtr.shape[0] // (a.batch * world)
    total = steps * a.epochs
    gen = torch.Generator().manual_seed(a.seed * 1000 + rank)
    history, reached, t = [], None, 0
    for epoch in range(a.epochs):
        perm = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(a.seed + epoch))
        mine = perm[rank::world]
        for b in range(steps):
            p = t / total
            lr = one_cycle(p, 0.25, a.lr / 25.0, a.lr, a.lr / 1e5)
            mom = one_cycle(p, 0.25, 0.95, 0.85, 0.95)
            for gi, g in enumerate(opt.param_groups):
                g["lr"], g["momentum"] = lr, mom
                if a.true_wd and groups[gi]["wd"] > 0:
                    with torch.no_grad():
                        for q in g["params"]:
                            q.mul_(1.0 - lr * groups[gi]["wd"])
            sel = mine[b * a.batch:(b + 1) * a.batch]
            x = to_float(augment(xtr[sel], a.crop_padding, a.flip, gen)).unsqueeze(1)
            loss = F.cross_entropy(model(x), ytr[sel])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            t += 1
        acc, vloss = validate(model, xva, yva, rank, world)
        secs = time.monotonic() - T0
        history.append([epoch + 1, acc, secs])
        if rank == 0:
            print(f"epoch {epoch + 1}/{a.epochs} valid loss {vloss:.4f} valid accuracy "
                  f"{acc:.4f} ({secs:.1f} s)", file=sys.stderr, flush=True)
        if reached is None and acc >= a.target:
            reached = (epoch + 1, acc, secs)
        stop = torch.tensor([1 if (reached and not a.full) or secs > a.max_seconds else 0])
        dist.broadcast(stop, 0)
        if stop.item():
            break
    if rank == 0:
        queue.put({"history": history, "reached": reached})
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--crop-padding", type=int, default=2)
    ap.add_argument("--flip", type=int, default=1)
    ap.add_argument("--target", type=float, default=0.93)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--true-wd", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=float("inf"))
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a, _ = ap.parse_known_args()
    port = free_port()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=rank_main, args=(r, a.world, port, a, queue))
             for r in range(a.world)]
    for pr in procs:
        pr.start()
    res = queue.get()
    for pr in procs:
        pr.join()
    if any(pr.exitcode for pr in procs):
        sys.exit("tta_ddp: a rank failed")
    r = res["reached"]
    print(json.dumps({"torch": torch.__version__, "epochs": a.epochs, "lr": a.lr,
                      "true_wd": a.true_wd, "target": a.target, "reached": bool(r),
                      "seconds_to_target": r[2] if r else None, "accuracy": r[1] if r else None,
                      "epoch_reached": r[0] if r else None, "history": res["history"]}))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
