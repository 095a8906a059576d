#!/usr/bin/python3
"""PyTorch DDP (gloo) reference for bench/bench_comm.c: the same models and per-rank batches,
one thread per process, on 1 process without DDP, on 1 and 2 DDP ranks, and on 2 DDP ranks
with the body frozen.

A step is what `strata train` does per batch: forward, cross-entropy, zero_grad, backward
(DDP all-reduces the gradients in buckets, overlapped with backward) and SGD(momentum=0.9).
The data are random tensors made once per rank (strata reads Fashion-MNIST; turning a
batch of 64-128 bytes-per-pixel images into floats is a few microseconds per sample).

The ranks are started with torch.multiprocessing (no torchrun): each sets one thread, joins a
gloo process group on 127.0.0.1, warms up, and times --reps repetitions of enough steps to
last --min-time seconds; the step count is rank 0's, broadcast, so the ranks stay in step. A
repetition's time is the slowest rank's. The best repetition is reported, the median next
to it.

Runs on Debian's python3-torch 1.13 and on the newest PyTorch from PyPI (2.x, in the venv of
bench/torch_venv.sh) alike. Prints one JSON line on stdout:
  {"torch": "1.13.0a0", "backend": "gloo", "threads": 1, "interop_threads": 1,
   "python": "/usr/bin/python3", "build": {...}, "reps": 5,
   "results": {"mlp": {"batch": 128, "single_samples_per_s": ..., "world1_samples_per_s": ...,
                       "world2_samples_per_s": ..., "ratio": ..., ...}, "cnn": {...}}}
"threads" and "interop_threads" are what the ranks' torch reported after one_thread()
(torch_ref.py's), "build" is torch_ref.py's torch_info(); samples/s count every rank's
samples; "ratio" is world2 over single (the issue's "2-rank throughput over its own
single-process throughput"). Progress goes to stderr.

Options (unknown ones are ignored, so a driver can pass the same options to several
programs):
  --reps N        timed repetitions per case (default 5)
  --min-time S    seconds each repetition runs at least (default 1.0)
  --only LIST     comma-separated models (mlp, cnn, resnet18) and sections (reduce, train),
                  as for strata_bench_comm: only "train" has a DDP counterpart; resnet18 runs
                  only when named
  --runs LIST     which runs, in order (default single,world1,world2): single (1 process,
                  no DDP), world1 and world2 (DDP on 1 and 2 processes), world2_frozen (DDP
                  on 2 processes with the body frozen: requires_grad False everywhere but
                  the head, the body's BatchNorm in eval mode, DDP built after freezing, as
                  strata's groups.freeze_to -1 with train_bn false)
"""
import os

# One thread everywhere, set before torch loads its BLAS (Debian's torch calls the system
# OpenBLAS, which reads its own variable); the spawned ranks inherit the environment.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import json
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import MODELS as REF_MODELS, head_of, one_thread, torch_info  # noqa: E402

# id -> (constructor, batch per rank, input shape of one sample), as in torch_ref.py.
MODELS = {case_id: (make, batch, in_shape) for case_id, make, batch, in_shape in REF_MODELS}

# The runs: label -> (processes, DDP or not, body frozen or not). "single" is the denominator
# of DDP's scaling; "world2_frozen" is the fine-tune step (only the head trains).
RUNS = {"single": (1, False, False), "world1": (1, True, False), "world2": (2, True, False),
        "world2_frozen": (2, True, True)}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_case(step, reps, min_time, world):
    """Warm-up, then `reps` repetitions of the same number of steps on every rank; seconds per
    step of the slowest rank, per repetition."""
    # Under DDP every step is a collective, so every count below is agreed on by all ranks
    # (a warm-up that stopped on each rank's own clock could leave one rank a step ahead,
    # its all-reduce then meeting the other's broadcast: a hang).
    def agreed(x):
        if world > 1:
            t = torch.tensor([x], dtype=torch.float64)
            dist.broadcast(t, 0)
            x = float(t.item())
        return x

    t0 = time.perf_counter()
    for _ in range(3):
        step()
    per = agreed((time.perf_counter() - t0) / 3)
    for _ in range(max(0, int(0.3 / per + 0.999) - 3)):  # warm-up of at least 0.3 s in all
        step()
    steps = max(1, int(min_time / per + 0.999))
    times = []
    for _ in range(reps):
        if world > 1:
            dist.barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        dt = torch.tensor([(time.perf_counter() - t0) / steps], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(dt, op=dist.ReduceOp.MAX)
        times.append(float(dt.item()))
    return times, steps


def make_step(name, rank, use_ddp, frozen):
    make, batch, in_shape = MODELS[name]
    torch.manual_seed(0)  # the same initial weights on every rank (DDP broadcasts rank 0's)
    model = make()
    model.train()
    if frozen:
        # strata's groups.freeze_to -1 with train_bn false: the body computes no gradient and
        # its BatchNorm layers run in eval mode; only the head (the last Linear) trains. DDP
        # is built after freezing, so it reduces the head's gradients alone.
        head = head_of(model)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.eval()
    if use_ddp:
        model = DDP(model)  # default buckets: 25 MB, the first 1 MB
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.randn((batch,) + in_shape, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01,
                          momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, batch


def worker(rank, world, port, names, reps, min_time, use_ddp, frozen, queue):
    one_thread()
    if use_ddp:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    for name in names:
        step, batch = make_step(name, rank, use_ddp, frozen)
        times, steps = time_case(step, reps, min_time, world if use_ddp else 1)
        out[name] = {"batch": batch, "steps": steps, "times": times}
    if use_ddp:
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        queue.put({"info": torch_info(), "results": out})


def run(world, names, reps, min_time, use_ddp, frozen):
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    mp.start_processes(worker, args=(world, port, names, reps, min_time, use_ddp, frozen, queue),
                       nprocs=world, join=True, start_method="spawn")
    return queue.get()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--only", default="")
    ap.add_argument("--runs", default="single,world1,world2",
                    help="comma-separated, in order: " + ", ".join(RUNS))
    args, _unknown = ap.parse_known_args()
    labels = [r for r in args.runs.split(",") if r]
    bad = [r for r in labels if r not in RUNS]
    if bad:
        print(f"ddp_ref: unknown run(s) {', '.join(bad)}; known: {', '.join(RUNS)}",
              file=sys.stderr)
        return 2
    # --only as strata_bench_comm reads it: models (mlp, cnn) and sections (reduce, train);
    # only the training section has a DDP counterpart.
    only = set(s for s in args.only.split(",") if s)
    sections = only & {"reduce", "train"}
    # resnet18's steps take seconds: it runs only when named, as in strata_bench_comm
    names = [n for n in MODELS if n in only or (not (only & set(MODELS)) and n != "resnet18")]
    if sections and "train" not in sections:
        names = []
    if not dist.is_available() or not dist.is_gloo_available():
        print("ddp_ref: this torch has no gloo backend", file=sys.stderr)
        return 1
    results = {n: {"batch": MODELS[n][1]} for n in names}
    info = None
    for label in (labels if names else ()):
        world, use_ddp, frozen = RUNS[label]
        print(f"ddp_ref: {label} ({world} process(es){', DDP gloo' if use_ddp else ', no DDP'}"
              f"{', body frozen' if frozen else ''})...", file=sys.stderr)
        got = run(world, names, args.reps, args.min_time, use_ddp, frozen)
        info, out = info or got["info"], got["results"]
        for n in names:
            times, batch = out[n]["times"], out[n]["batch"]
            best, med = min(times), statistics.median(times)
            r = results[n]
            r[f"{label}_samples_per_s"] = round(world * batch / best, 1)
            r[f"{label}_ms_per_step"] = round(best * 1e3, 4)
            r[f"{label}_ms_per_step_median"] = round(med * 1e3, 4)
            r[f"{label}_samples_per_s_median"] = round(world * batch / med, 1)
            print(f"ddp_ref: {n:4s} {label:7s} batch {batch:4d}/rank  {best * 1e3:9.3f} ms/step "
                  f"(median {med * 1e3:.3f})  {world * batch / best:9.1f} samples/s",
                  file=sys.stderr)
    for n in names:
        r = results[n]
        if "world2_samples_per_s" in r and "single_samples_per_s" in r:
            r["ratio"] = round(r["world2_samples_per_s"] / r["single_samples_per_s"], 4)
            r["ratio_median"] = round(r["world2_samples_per_s_median"] /
                                      r["single_samples_per_s_median"], 4)
    if info is None:  # nothing ran: what this process's torch says
        one_thread()
        info = torch_info()
    print(json.dumps(dict(info, backend="gloo", reps=args.reps, results=results),
                     separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
