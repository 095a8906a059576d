#!/usr/bin/python3
"""PyTorch reference for bench/bench_nn.c: the same models, layers and batches, one thread.

A step is what strata_bench times: forward, loss (cross-entropy for the models; a fixed
upstream gradient for single layers), zero_grad, backward and an SGD(momentum=0.9) step. Each
case is warmed up, then timed over several repetitions; the best repetition is reported.

Runs on Debian's python3-torch 1.13 and on the newest PyTorch from PyPI (2.x, in the venv of
bench/torch_venv.sh) alike. Prints one JSON line on stdout:
  {"torch": "1.13.1", "threads": 1, "interop_threads": 1, "python": "/usr/bin/python3",
   "build": {"mkldnn": true, "mkl": false, "cpu_capability": null, "cuda": null}, "reps": 5,
   "results": {"mlp": {"batch": 128, "samples_per_s": ..., "ms_per_step": ...,
                       "ms_per_step_median": ...}, ...}}
The result ids match bench_nn.c's case ids. Progress goes to stderr.

Options (unknown ones are ignored, so bench/run.sh can pass the same options to both):
  --reps N        timed repetitions per case (default 5)
  --min-time S    seconds each repetition runs at least (default 0.5)
  --only LIST     comma-separated: layers, models, mlp, cnn, resnet18, or case ids
"""
import os

# One thread everywhere, set before torch loads its BLAS: torch.set_num_threads covers OpenMP
# and oneDNN, but Debian's torch calls the system OpenBLAS, which reads its own variable.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def mlp(in_features=784, widths=(1024, 1024), classes=10):
    """strata's "mlp": body Flatten, (Linear, ReLU) per width; head Flatten, Linear."""
    layers = [nn.Flatten()]
    prev = in_features
    for w in widths:
        layers += [nn.Linear(prev, w), nn.ReLU(inplace=True)]
        prev = w
    layers += [nn.Flatten(), nn.Linear(prev, classes)]
    return nn.Sequential(*layers)


def conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


def cnn(in_c=1, classes=10):
    """strata's "cnn": 5 x (conv3x3, BN, ReLU) with two max pools; head AdaptiveAvgPool2d(1),
    Flatten, Linear(128, classes)."""
    layers = (conv_bn_relu(in_c, 32) + conv_bn_relu(32, 32) + [nn.MaxPool2d(2, 2)] +
              conv_bn_relu(32, 64) + conv_bn_relu(64, 64) + [nn.MaxPool2d(2, 2)] +
              conv_bn_relu(64, 128) +
              [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes)])
    return nn.Sequential(*layers)


def resnet18(in_c=3, classes=10):
    """strata's resnet18 with --small-stem and --head original: torchvision's resnet18 with
    conv1 a 3x3 stride-1 convolution and no max pool, for 32x32 inputs."""
    import torchvision  # only this model needs it (python3-torchvision)
    m = torchvision.models.resnet18(weights=None, num_classes=classes)
    m.conv1 = nn.Conv2d(in_c, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def head_of(model):
    """The module strata's head trains when the body is frozen (freeze_to -1): the last
    Linear of every model here (mlp's and cnn's Linear(., classes), resnet18's fc)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


# Single-layer cases: id, constructor, input shape of one sample, batch, whether dx is needed.
LAYERS = [
    ("linear_784_1024", lambda: nn.Linear(784, 1024), (784,), 128, True),
    ("linear_1024_1024", lambda: nn.Linear(1024, 1024), (1024,), 128, True),
    ("conv_1_32_28", lambda: nn.Conv2d(1, 32, 3, padding=1, bias=False), (1, 28, 28), 64, False),
    ("conv_32_32_28", lambda: nn.Conv2d(32, 32, 3, padding=1, bias=False), (32, 28, 28), 64, True),
    ("conv_32_64_14", lambda: nn.Conv2d(32, 64, 3, padding=1, bias=False), (32, 14, 14), 64, True),
    ("conv_64_64_14", lambda: nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 14, 14), 64, True),
    ("conv_64_128_7", lambda: nn.Conv2d(64, 128, 3, padding=1, bias=False), (64, 7, 7), 64, True),
    # resnet18 (small stem, 32x32, batch 32): each stage's stride-1 3x3 convolution
    ("conv_64_64_32", lambda: nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 32, 32), 32, True),
    ("conv_128_128_16", lambda: nn.Conv2d(128, 128, 3, padding=1, bias=False), (128, 16, 16), 32,
     True),
    ("conv_256_256_8", lambda: nn.Conv2d(256, 256, 3, padding=1, bias=False), (256, 8, 8), 32, True),
    ("conv_512_512_4", lambda: nn.Conv2d(512, 512, 3, padding=1, bias=False), (512, 4, 4), 32, True),
]
# Whole models: id, constructor, batch, input shape of one sample.
MODELS = [("mlp", mlp, 128, (1, 28, 28)), ("cnn", cnn, 64, (1, 28, 28)),
          ("resnet18", resnet18, 32, (3, 32, 32))]


def one_thread():
    """One intra-op thread (OpenMP, MKL, oneDNN) and one inter-op thread: PyTorch 2.x starts
    an inter-op pool of one thread per core unless told, 1.13 from Debian one. Call before any
    tensor work (set_num_interop_threads refuses once the pool exists)."""
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)


def torch_info():
    """The fields every reference's JSON carries about the PyTorch it ran on (cpu_capability:
    the kernels ATen dispatches to, e.g. "AVX512"; null on 1.13, which cannot say)."""
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)  # 2.x only
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(), "python": sys.executable,
            "build": {"mkldnn": torch.backends.mkldnn.is_available(),
                      "mkl": torch.backends.mkl.is_available(),
                      "cpu_capability": cap() if cap else None, "cuda": torch.version.cuda}}


def time_steps(step, reps, min_time):
    """Warm-up, then `reps` repetitions of enough steps to last min_time; seconds per step
    (best, median)."""
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.2:
        step()
        n += 1
    per = (time.perf_counter() - t0) / n
    steps = max(1, int(min_time / per + 0.999))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        times.append((time.perf_counter() - t0) / steps)
    return min(times), statistics.median(times)


def model_step_fn(model, batch, in_shape, classes):
    g = torch.Generator().manual_seed(1)
    x = torch.randn((batch,) + in_shape, generator=g)
    y = torch.randint(0, classes, (batch,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def step():
        out = model(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def layer_step_fn(layer, batch, in_shape, need_dx):
    g = torch.Generator().manual_seed(2)
    x = torch.randn((batch,) + in_shape, generator=g).requires_grad_(need_dx)
    with torch.no_grad():
        dy = torch.randn_like(layer(x))
    opt = torch.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        if need_dx:
            x.grad = None
        layer(x).backward(dy)
        opt.step()
    return step


def selected(only, case_id, group):
    return not only or case_id in only or group in only


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--only", default="")
    args, _unknown = ap.parse_known_args()
    only = set(s for s in args.only.split(",") if s)
    one_thread()
    torch.manual_seed(0)
    results = {}

    def record(case_id, batch, best, median):
        results[case_id] = {"batch": batch, "samples_per_s": round(batch / best, 1),
                            "ms_per_step": round(best * 1e3, 4),
                            "ms_per_step_median": round(median * 1e3, 4)}
        print(f"torch_ref: {case_id:18s} batch {batch:4d}  {best * 1e3:9.3f} ms/step  "
              f"{batch / best:10.1f} samples/s", file=sys.stderr)

    for case_id, make, in_shape, batch, need_dx in LAYERS:
        if selected(only, case_id, "layers"):
            best, med = time_steps(layer_step_fn(make(), batch, in_shape, need_dx), args.reps,
                                   args.min_time)
            record(case_id, batch, best, med)
    for case_id, make, batch, in_shape in MODELS:
        if selected(only, case_id, "models"):
            best, med = time_steps(model_step_fn(make(), batch, in_shape, 10), args.reps,
                                   args.min_time)
            record(case_id, batch, best, med)
    print(json.dumps(dict(torch_info(), reps=args.reps, results=results), separators=(",", ":")))


if __name__ == "__main__":
    main()
