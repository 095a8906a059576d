#!/usr/bin/python3
"""PyTorch DDP (gloo) reference for bench/bench_comm.c: the same models and per-rank batches,
one thread per process, on 1 process without DDP, and on 1 and 2 DDP ranks.

A step is what `strata train` does per batch: forward, cross-entropy, zero_grad, backward
(DDP all-reduces the gradients in buckets, overlapped with backward) and SGD(momentum=0.9).
The data are random tensors made once per rank (strata reads Fashion-MNIST; turning a
batch of 64-128 bytes-per-pixel images into floats is a few microseconds per sample).

The ranks are started with torch.multiprocessing (no torchrun): each sets one thread, joins a
gloo process group on 127.0.0.1, warms up, and times --reps repetitions of enough steps to
last --min-time seconds; the step count is rank 0's, broadcast, so the ranks stay in step. A
repetition's time is the slowest rank's. The best repetition is reported, the median next
to it.

Prints one JSON line on stdout:
  {"torch": "1.13.0a0", "backend": "gloo", "threads": 1, "reps": 5,
   "results": {"mlp": {"batch": 128, "single_samples_per_s": ..., "world1_samples_per_s": ...,
                       "world2_samples_per_s": ..., "ratio": ..., ...}, "cnn": {...}}}
samples/s count every rank's samples; "ratio" is world2 over single (the issue's "2-rank
throughput over its own single-process throughput"). Progress goes to stderr.

Options (unknown ones are ignored, so a driver can pass the same options to several
programs):
  --reps N        timed repetitions per case (default 5)
  --min-time S    seconds each repetition runs at least (default 1.0)
  --only LIST     comma-separated models (mlp, cnn) and sections (reduce, train), as for
                  strata_bench_comm: only "train" has a DDP counterpart
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
from torch_ref import cnn, mlp  # noqa: E402  (the same models as bench_nn's reference)

MODELS = {"mlp": (mlp, 128), "cnn": (cnn, 64)}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def time_case(step, reps, min_time, world):
    """Warm-up, then `reps` repetitions of the same number of steps on every rank; seconds per
    step of the slowest rank, per repetition."""
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.3:
        step()
        n += 1
    steps = max(1, int(min_time / ((time.perf_counter() - t0) / n) + 0.999))
    if world > 1:
        t = torch.tensor([steps], dtype=torch.int64)
        dist.broadcast(t, 0)
        steps = int(t.item())
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


def make_step(name, rank, use_ddp):
    make, batch = MODELS[name]
    torch.manual_seed(0)  # the same initial weights on every rank (DDP broadcasts rank 0's)
    model = make()
    model.train()
    if use_ddp:
        model = DDP(model)  # default buckets: 25 MB, the first 1 MB
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.randn((batch, 1, 28, 28), generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, batch


def worker(rank, world, port, names, reps, min_time, use_ddp, queue):
    torch.set_num_threads(1)
    if use_ddp:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    for name in names:
        step, batch = make_step(name, rank, use_ddp)
        times, steps = time_case(step, reps, min_time, world if use_ddp else 1)
        out[name] = {"batch": batch, "steps": steps, "times": times}
    if use_ddp:
        dist.barrier()
        dist.destroy_process_group()
    if rank == 0:
        queue.put(out)


def run(world, names, reps, min_time, use_ddp):
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    mp.start_processes(worker, args=(world, port, names, reps, min_time, use_ddp, queue),
                       nprocs=world, join=True, start_method="spawn")
    return queue.get()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--only", default="")
    args, _unknown = ap.parse_known_args()
    # --only as strata_bench_comm reads it: models (mlp, cnn) and sections (reduce, train);
    # only the training section has a DDP counterpart.
    only = set(s for s in args.only.split(",") if s)
    sections = only & {"reduce", "train"}
    names = [n for n in MODELS if not (only & set(MODELS)) or n in only]
    if sections and "train" not in sections:
        names = []
    if not dist.is_available() or not dist.is_gloo_available():
        print("ddp_ref: this torch has no gloo backend", file=sys.stderr)
        return 1
    results = {n: {"batch": MODELS[n][1]} for n in names}
    runs = (("single", 1, False), ("world1", 1, True), ("world2", 2, True)) if names else ()
    for label, world, use_ddp in runs:
        print(f"ddp_ref: {label} ({world} process(es){', DDP gloo' if use_ddp else ', no DDP'})...",
              file=sys.stderr)
        out = run(world, names, args.reps, args.min_time, use_ddp)
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
        r["ratio"] = round(r["world2_samples_per_s"] / r["single_samples_per_s"], 4)
        r["ratio_median"] = round(r["world2_samples_per_s_median"] /
                                  r["single_samples_per_s_median"], 4)
    print(json.dumps({"torch": torch.__version__, "backend": "gloo", "threads": 1,
                      "reps": args.reps, "results": results}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
