#!/usr/bin/python3
"""Writes the PyTorch reference fixtures that tests/test_nn_fixtures.c compares nn/ against.

Run from anywhere as:  /usr/bin/python3 tests/make_fixtures.py
It writes tests/fixtures/*.h5 next to this script. Every case seeds torch on its own, so the
files are the same on every run (and a case can be changed without disturbing the others).

Conventions of every file (see tests/fixture_h5.h for the C side):
  /input            float32, always 4-D NCHW; a 2-D input (N, F) is stored as (N, F, 1, 1)
  /output           float32, 4-D the same way
  /grad_input       float32, 4-D, d loss / d input
  /labels, /loss    int32 (N) and a float32 scalar, for cases whose loss is the mean
                    cross-entropy of the output; backward starts from that loss
  /dy               float32, shaped like /output, for every other case; the loss is
                    sum(output * dy), so d loss / d output = dy
  /params/<name>    the parameters before the step, PyTorch state_dict names and shapes
  /grads/<name>     their gradients
  /buffers/<name>   BatchNorm running_mean / running_var before the forward
  /buffers_after/<name>  the same after it (num_batches_tracked is left out)
  attributes        mode ("train" or "eval") and description (one line)

References are computed in float64, but every input, parameter and buffer is drawn in
float32 first, so the C side (float32) starts from exactly the same values; every float
dataset is stored as float32.
"""

import copy
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_util import h5_create, h5_group

torch.set_default_dtype(torch.float64)
torch.use_deterministic_algorithms(True)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fixtures")


# --------------------------------------------------------------------------------------
# Helpers: float32-representable values and module construction.

def f32(t):
    """Rounds a tensor to float32 and returns it as float64 again."""
    return t.detach().float().double()


def randn32(*shape):
    """N(0, 1) drawn in float32, returned as float64."""
    return torch.randn(*shape, dtype=torch.float32).double()


def build(ctor):
    """Builds a module with PyTorch's default init drawn in float32, then moves it to
    float64 and gives every BatchNorm random affine parameters and running statistics
    (also drawn in float32), so that a BN bug cannot hide behind weight 1 and bias 0."""
    torch.set_default_dtype(torch.float32)
    try:
        m = ctor()
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                with torch.no_grad():
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.5, 0.5)
                    mod.running_mean.normal_(0.0, 0.2)
                    mod.running_var.uniform_(0.5, 1.5)
    finally:
        torch.set_default_dtype(torch.float64)
    return m.double()


def as4d(a):
    """numpy float32 array, 2-D (N, F) -> (N, F, 1, 1); 4-D unchanged."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 2:
        a = a.reshape(a.shape[0], a.shape[1], 1, 1)
    assert a.ndim == 4, a.shape
    return a


def np32(t):
    return t.detach().cpu().numpy().astype(np.float32)


def params_of(m):
    return {k: v for k, v in m.named_parameters()}


def buffers_of(m):
    """BatchNorm running statistics (not num_batches_tracked), as float32 numpy copies."""
    return {k: np32(v).copy() for k, v in m.named_buffers()
            if not k.endswith("num_batches_tracked")}


def write(name, description, mode, x, out, grad_input, dy=None, labels=None, loss=None,
          params=None, grads=None, buffers=None, buffers_after=None, extra=None, attrs=None):
    """Writes one fixture file. Tensors may be torch tensors or numpy arrays."""
    path = os.path.join(OUT, name)
    tmp = path + ".tmp"
    with h5_create(tmp) as f:
        f.attrs["mode"] = mode
        f.attrs["description"] = description
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
        f.create_dataset("input", data=as4d(np32(x)))
        f.create_dataset("output", data=as4d(np32(out)))
        f.create_dataset("grad_input", data=as4d(np32(grad_input)))
        if dy is not None:
            f.create_dataset("dy", data=as4d(np32(dy)))
        if labels is not None:
            f.create_dataset("labels", data=labels.numpy().astype(np.int32))
        if loss is not None:
            f.create_dataset("loss", data=np.float32(loss.item()))
        for key, arr in (extra or {}).items():
            f.create_dataset(key, data=arr)
        for grp, d in (("params", params), ("grads", grads),
                       ("buffers", buffers), ("buffers_after", buffers_after)):
            if d:
                g = h5_group(f, grp)
                for k, v in d.items():
                    g.create_dataset(k, data=v if isinstance(v, np.ndarray) else np32(v))
    os.replace(tmp, path)


def run_dy(name, description, model, x, mode="train", attrs=None):
    """Runs a module forward on x, then backward from loss = sum(out * dy) with a random dy;
    records everything the C side compares."""
    model.train(mode == "train")
    params = {k: np32(v).copy() for k, v in params_of(model).items()}
    bufs = buffers_of(model)
    x = x.clone().requires_grad_(True)
    out = model(x)
    dy = randn32(*out.shape)
    (out * dy).sum().backward()
    grads = {k: v.grad for k, v in params_of(model).items() if v.grad is not None}
    write(name, description, mode, x, out, x.grad, dy=dy, params=params, grads=grads,
          buffers=bufs, buffers_after=buffers_of(model), attrs=attrs)


def run_ce(name, description, model, x, labels, prepare=None, attrs=None):
    """Like run_dy but the loss is the mean cross-entropy of the logits against labels.
    prepare(model) may change modes and requires_grad after model.train()."""
    model.train(True)
    if prepare is not None:
        prepare(model)
    params = {k: np32(v).copy() for k, v in params_of(model).items()}
    bufs = buffers_of(model)
    x = x.clone().requires_grad_(True)
    out = model(x)
    loss = F.cross_entropy(out, labels.long())
    loss.backward()
    grads = {k: v.grad for k, v in params_of(model).items()
             if v.requires_grad and v.grad is not None}
    write(name, description, "train", x, out, x.grad, labels=labels, loss=loss,
          params=params, grads=grads, buffers=bufs, buffers_after=buffers_of(model),
          attrs=attrs)


# --------------------------------------------------------------------------------------
# Models.

class BodyHead(nn.Module):
    """A model as strata's zoo builds it: a body Sequential and a head Sequential."""

    def __init__(self, body, head):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x):
        return self.head(self.body(x))


def mlp_model():
    body = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(),
                         nn.Linear(64, 32), nn.ReLU())
    head = nn.Sequential(nn.Flatten(), nn.Linear(32, 10))
    return BodyHead(body, head)


def cnn_model():
    def conv(i, o):
        return nn.Conv2d(i, o, 3, padding=1, bias=False)

    body = nn.Sequential(
        conv(1, 32), nn.BatchNorm2d(32), nn.ReLU(),            # 0 1 2
        conv(32, 32), nn.BatchNorm2d(32), nn.ReLU(),           # 3 4 5
        nn.MaxPool2d(2, 2),                                    # 6
        conv(32, 64), nn.BatchNorm2d(64), nn.ReLU(),           # 7 8 9
        conv(64, 64), nn.BatchNorm2d(64), nn.ReLU(),           # 10 11 12
        nn.MaxPool2d(2, 2),                                    # 13
        conv(64, 128), nn.BatchNorm2d(128), nn.ReLU())         # 14 15 16
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10))
    return BodyHead(body, head)


def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False)


def conv1x1(i, o, stride=1):
    return nn.Conv2d(i, o, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """The residual block of resnet18/34, with torchvision's attribute names and order."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + shortcut)


class Bottleneck(nn.Module):
    """The resnet50 block (v1.5: the stride sits on the 3x3 conv), expansion 4."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(conv1x1(inplanes, out, stride),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + shortcut)


class AdaptiveConcatPool2d(nn.Module):
    """fastai's pooling: adaptive max and adaptive average, concatenated (max first)."""

    def __init__(self, size=1):
        super().__init__()
        self.mp = nn.AdaptiveMaxPool2d(size)
        self.ap = nn.AdaptiveAvgPool2d(size)

    def forward(self, x):
        return torch.cat([self.mp(x), self.ap(x)], 1)


# --------------------------------------------------------------------------------------
# Cases.

def case_mlp():
    torch.manual_seed(1)
    m = build(mlp_model)
    x = randn32(8, 1, 28, 28)
    labels = torch.randint(0, 10, (8,), dtype=torch.int32)
    run_ce("mlp.h5", "zoo mlp widths 64,32 on 1x28x28, 10 classes, linear head; "
           "mean cross-entropy", m, x, labels)


def kink_margin(m, x):
    """The smallest distance from a kink of the body's ReLUs and max pools, relative to the
    largest magnitude at that layer: min |input| of each ReLU, and for each 2x2 max-pool
    window with a positive maximum its gap to the runner-up. A float32 forward lands on the
    other side of a kink closer than its rounding (~1e-7 relative; Winograd ~1e-6), and the
    gradient then goes to another element: the fixture would test a tie-break, not the
    arithmetic."""
    m = copy.deepcopy(m).train()  # the forward must not touch the fixture's BatchNorm buffers
    seen = []
    hooks = [mod.register_forward_hook(lambda mod, inp, out: seen.append((mod, inp[0].detach())))
             for mod in m.body if isinstance(mod, (nn.ReLU, nn.MaxPool2d))]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    worst = 1.0
    for mod, a in seen:
        scale = a.abs().max()
        if isinstance(mod, nn.ReLU):
            worst = min(worst, (a.abs() / scale).min().item())
            continue
        n, c, h, w = a.shape
        win = a.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
        top = win.topk(2, dim=-1).values
        gap = (top[..., 0] - top[..., 1]) / scale
        worst = min(worst, gap[top[..., 0] > 0].min().item())
    return worst


def cnn_setup():
    """The cnn model, input and labels shared by cnn.h5 and cnn_frozen.h5. The seed is one
    whose batch stays at least 3e-6 (relative) away from every kink (kink_margin; seed 2's
    came within 9e-8 at the first max pool, and AVX2 Winograd's rounding took the other
    side)."""
    torch.manual_seed(173)
    m = build(cnn_model)
    x = randn32(4, 1, 28, 28)
    labels = torch.randint(0, 10, (4,), dtype=torch.int32)
    margin = kink_margin(m, x)
    assert margin >= 3e-6, "cnn fixture batch within %.2g of a ReLU/max-pool kink" % margin
    return m, x, labels


def case_cnn():
    m, x, labels = cnn_setup()
    run_ce("cnn.h5", "zoo cnn on 1x28x28, 10 classes, linear head (avgpool, flatten, "
           "linear); mean cross-entropy", m, x, labels)


def case_cnn_frozen():
    m, x, labels = cnn_setup()

    def freeze(model):
        # fastai 0.7's freeze_to(1): group 0 (body children 0..6) runs in eval mode
        # (BatchNorm on running statistics, which stay unchanged) and gets no gradients.
        for i in range(7):
            model.body[i].eval()
            for p in model.body[i].parameters():
                p.requires_grad_(False)

    run_ce("cnn_frozen.h5", "cnn.h5's model, params and batch with body children 0-6 "
           "frozen (eval mode, no grads; /grads holds the trainable params only; "
           "grad_input is PyTorch's, not computed by a frozen model)", m, x, labels,
           prepare=freeze, attrs={"eval_children": "0-6"})


def case_vgg_block():
    torch.manual_seed(4)
    m = build(lambda: nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.MaxPool2d(2, 2)))
    run_dy("vgg_block.h5", "vgg_bn block: conv3x3(3,16)+bias, BN, ReLU, conv3x3(16,16)+bias, "
           "BN, ReLU, maxpool 2; odd 9x9 input; the conv bias grads are zero in exact arithmetic "
           "(a train-mode BN follows each conv)", m, randn32(2, 3, 9, 9))


def case_basicblock():
    torch.manual_seed(5)
    m = build(lambda: BasicBlock(16, 32, 2))
    run_dy("basicblock.h5", "torchvision BasicBlock(16, 32, stride 2) with downsample "
           "(1x1 conv stride 2 + BN)", m, randn32(2, 16, 9, 9))


def case_basicblock_id():
    torch.manual_seed(6)
    m = build(lambda: BasicBlock(16, 16, 1))
    run_dy("basicblock_id.h5", "torchvision BasicBlock(16, 16, stride 1), identity shortcut",
           m, randn32(2, 16, 7, 7))


def case_bottleneck():
    torch.manual_seed(7)
    m = build(lambda: Bottleneck(32, 8, 2))
    run_dy("bottleneck.h5", "torchvision Bottleneck v1.5 (32, planes 8 -> 32, stride 2) with "
           "downsample", m, randn32(2, 32, 7, 7))


def case_cross_entropy():
    torch.manual_seed(8)
    logits = randn32(5, 7).requires_grad_(True)
    labels = torch.randint(0, 7, (5,), dtype=torch.int32)
    loss = F.cross_entropy(logits, labels.long())
    loss.backward()
    write("cross_entropy.h5", "mean cross-entropy of softmax: logits (5, 7), output = logits, "
          "grad_input = d loss / d logits", "train", logits, logits, logits.grad,
          labels=labels, loss=loss)


def case_mse():
    torch.manual_seed(9)
    pred = randn32(3, 4).requires_grad_(True)
    target = randn32(3, 4)
    loss = F.mse_loss(pred, target)
    loss.backward()
    write("mse.h5", "mean squared error: pred (3, 4), output = pred, grad_input = "
          "d loss / d pred", "train", pred, pred, pred.grad, loss=loss,
          extra={"target": as4d(np32(target))})


def case_adaptive_avgpool():
    torch.manual_seed(10)
    run_dy("adaptive_avgpool.h5", "AdaptiveAvgPool2d((3, 2)) on 7x5 (overlapping, uneven "
           "windows)", nn.AdaptiveAvgPool2d((3, 2)), randn32(2, 3, 7, 5))


def case_adaptive_concatpool():
    torch.manual_seed(11)
    run_dy("adaptive_concatpool.h5", "fastai AdaptiveConcatPool2d(1): cat([max, avg], 1)",
           AdaptiveConcatPool2d(1), randn32(2, 4, 5, 5))


def case_maxpool_pad():
    torch.manual_seed(12)
    run_dy("maxpool_pad.h5", "MaxPool2d(3, stride 2, padding 1) on 9x8",
           nn.MaxPool2d(3, 2, 1), randn32(2, 3, 9, 8))


def case_avgpool():
    torch.manual_seed(13)
    run_dy("avgpool.h5", "AvgPool2d(3, stride 2, padding 1, count_include_pad=True) on 9x8",
           nn.AvgPool2d(3, 2, 1), randn32(2, 3, 9, 8))


def case_bn1d():
    torch.manual_seed(14)
    m = build(lambda: nn.BatchNorm1d(5))
    run_dy("bn1d.h5", "BatchNorm1d(5) in train mode on (6, 5)", m, randn32(6, 5))


def case_linear():
    torch.manual_seed(15)
    m = build(lambda: nn.Linear(7, 5))
    run_dy("linear.h5", "Linear(7, 5) with bias on (3, 7)", m, randn32(3, 7))


def case_conv_s2():
    torch.manual_seed(16)
    m = build(lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True))
    run_dy("conv_s2.h5", "Conv2d(3, 4, 3, stride 2, padding 1, bias) on 8x7", m,
           randn32(2, 3, 8, 7))


# --------------------------------------------------------------------------------------
# torchvision reference counts for the zoo tests.

def torchvision_counts():
    """Parameter and child counts of torchvision's models (weights=None, nothing is
    downloaded). Root attribute <model> = int64 [params, children] where children counts
    the top-level children (for vgg, the children of `features`); datasets
    <model>_child_names and <model>_child_types list them for resnet34 and vgg16_bn."""
    try:
        import torchvision.models as tvm
    except ImportError:
        print("torchvision is not installed: skipping torchvision_counts.h5",
              file=sys.stderr)
        return
    names = ["resnet18", "resnet34", "resnet50"]
    for d in (11, 13, 16, 19):
        names += ["vgg%d" % d, "vgg%d_bn" % d]
    path = os.path.join(OUT, "torchvision_counts.h5")
    with h5_create(path + ".tmp") as f:
        f.attrs["description"] = ("torchvision %s model sizes: attribute <model> = int64 "
                                  "[total params, top-level children (vgg: of features)]"
                                  % __import__("torchvision").__version__)
        f.attrs["columns"] = "params,children"
        for name in names:
            torch.manual_seed(0)
            torch.set_default_dtype(torch.float32)
            try:
                m = getattr(tvm, name)(weights=None)
            finally:
                torch.set_default_dtype(torch.float64)
            top = m.features if name.startswith("vgg") else m
            kids = list(top.named_children())
            nparams = sum(p.numel() for p in m.parameters())
            f.attrs[name] = np.array([nparams, len(kids)], dtype=np.int64)
            if name in ("resnet34", "vgg16_bn"):
                f.create_dataset(name + "_child_names",
                                 data=np.array([k for k, _ in kids], dtype="S32"))
                f.create_dataset(name + "_child_types",
                                 data=np.array([type(c).__name__ for _, c in kids],
                                               dtype="S32"))
    os.replace(path + ".tmp", path)


CASES = [case_mlp, case_cnn, case_cnn_frozen, case_vgg_block, case_basicblock,
         case_basicblock_id, case_bottleneck, case_cross_entropy, case_mse,
         case_adaptive_avgpool, case_adaptive_concatpool, case_maxpool_pad, case_avgpool,
         case_bn1d, case_linear, case_conv_s2]


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    for case in CASES:
        case()
    torchvision_counts()
    for fn in sorted(os.listdir(OUT)):
        if fn.endswith(".h5"):
            print("%-26s %8d bytes" % (fn, os.path.getsize(os.path.join(OUT, fn))))


if __name__ == "__main__":
    main()
