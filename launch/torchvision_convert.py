#!/usr/bin/python3
"""Converts torchvision resnet/vgg weights to a strata checkpoint and back.

Usage:
  torchvision_convert.py to-strata --arch ARCH (--state-dict FILE.pt | --random [--seed S])
                         --out CKPT.h5 [--classes K] [--input CxHxW] [--strata PATH]
  torchvision_convert.py to-torch --ckpt CKPT.h5 --out FILE.pt

to-strata writes a `kind = "weights"` checkpoint (docs/checkpoint-format.md) of strata's ARCH
with the original head (`--head original`): every torchvision tensor under strata's name, in
the layer group strata puts it in. The names, groups, cut and group boundaries come from
`strata model ARCH --head original ... [--params]`, so nothing of strata's grouping is
re-implemented here. Every torchvision key must be used and every strata tensor filled
(num_batches_tracked aside, which strata does not keep); anything else is an error naming the
key. --random converts a freshly initialised torchvision model (torch.manual_seed(S)).

to-torch reads a strata checkpoint (training or weights) of a resnet/vgg with the original
head and saves a state_dict that torchvision.models.ARCH(num_classes=K).load_state_dict(sd,
strict=True) accepts (num_batches_tracked = tensor(0), as a new torchvision model has).

Name mapping (strata's body children are torchvision's top-level children; the original
head is AdaptiveAvgPool2d, Flatten, then torchvision's classifier):
  resnet: conv1 -> body.0, bn1 -> body.1, layerN -> body.(3+N), fc -> head.2
  vgg:    features.i -> body.i, classifier.j -> head.(j+2)

Uses Debian's python3-torch, python3-torchvision and python3-h5py. Exit status 0 on
success, 1 on an error (message on stderr), 2 on a usage error.
"""
import argparse
import datetime
import os
import pickle
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np

ARCHS = ["resnet18", "resnet34", "resnet50", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn",
         "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]
FORMAT = "strata-checkpoint"
FORMAT_VERSION = 1
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class ConvertError(Exception):
    pass


def problems(what, errors, limit=20):
    """One error listing up to limit problems."""
    more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
    return ConvertError(f"{what}:\n  " + "\n  ".join(errors[:limit]) + more)


def family(arch):
    return "resnet" if arch.startswith("resnet") else "vgg"


# ---- names ----------------------------------------------------------------------------

def tv_to_strata(arch, key):
    """strata's name of a torchvision state_dict key, or None when it has none."""
    m = re.fullmatch(r"([A-Za-z_]+[0-9]*)\.(.+)", key)
    if not m:
        return None
    top, rest = m.groups()
    if family(arch) == "resnet":
        if top == "conv1":
            return "body.0." + rest
        if top == "bn1":
            return "body.1." + rest
        lm = re.fullmatch(r"layer([1-4])", top)
        if lm:
            return f"body.{3 + int(lm.group(1))}.{rest}"
        if top == "fc":
            return "head.2." + rest
        return None
    m = re.fullmatch(r"(features|classifier)\.([0-9]+)\.(.+)", key)
    if not m:
        return None
    part, i, rest = m.groups()
    return f"body.{int(i)}.{rest}" if part == "features" else f"head.{int(i) + 2}.{rest}"


def strata_to_tv(arch, name):
    """The torchvision key of a strata name, or None when it has none."""
    m = re.fullmatch(r"(body|head)\.([0-9]+)\.(.+)", name)
    if not m:
        return None
    part, i, rest = m.group(1), int(m.group(2)), m.group(3)
    if family(arch) == "resnet":
        if part == "body":
            top = {0: "conv1", 1: "bn1"}.get(i) or (f"layer{i - 3}" if 4 <= i <= 7 else None)
        else:
            top = "fc" if i == 2 else None
        return f"{top}.{rest}" if top else None
    if part == "body":
        return f"features.{i}.{rest}"
    return f"classifier.{i - 2}.{rest}" if i >= 2 else None


# ---- strata's view of the model -------------------------------------------------------

def find_strata(path):
    for cand in (path, os.environ.get("STRATA"), os.path.join(ROOT, "build", "strata"),
                 shutil.which("strata")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise ConvertError("cannot find the strata binary (build it, or pass --strata PATH)")


def run_strata(strata, args):
    p = subprocess.run([strata] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise ConvertError(f"{strata} {' '.join(args)}: {p.stderr.strip() or 'exit status %d' % p.returncode}")
    return p.stdout


def strata_layout(strata, arch, input_chw, classes):
    """Parameters (name, group, shape) in visit order, buffers {name: numel}, cut, and the
    group table [(name, first, last)] as `strata model ARCH --head original` prints them."""
    base = ["model", arch, "--head", "original", "--input", "x".join(map(str, input_chw)),
            "--classes", str(classes)]
    params, buffers = [], {}
    for line in run_strata(strata, base + ["--params"]).splitlines():
        f = line.split()
        if len(f) == 4 and f[0] == "param":
            params.append((f[1], int(f[2]), tuple(int(d) for d in f[3].split("x"))))
        elif len(f) == 3 and f[0] == "buffer":
            buffers[f[1]] = int(f[2])
    text = run_strata(strata, base)
    m = re.search(r"cut (\d+), (\d+) layer groups", text)
    if not m or not params:
        raise ConvertError(f"cannot read the model's cut and parameters from `strata {' '.join(base)}`")
    cut, ngroups = int(m.group(1)), int(m.group(2))
    groups = []
    for gm in re.finditer(r"# ---- layer group (\d+): (?:body children (\d+)-(\d+)|(head))", text):
        g = int(gm.group(1))
        if g != len(groups):
            raise ConvertError(f"strata model printed layer group {g} out of order")
        if gm.group(4):
            groups.append(("head", -1, -1))
        else:
            groups.append((f"body{g}", int(gm.group(2)), int(gm.group(3))))
    if len(groups) != ngroups or groups[-1][0] != "head":
        raise ConvertError(f"strata model printed {len(groups)} layer groups, its header says {ngroups}")
    return params, buffers, cut, groups


# ---- torch side -----------------------------------------------------------------------

def torch_modules():
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ConvertError(f"needs python3-torch and python3-torchvision ({e})")
    return torch, torchvision


def load_state_dict(torch, path):
    # weights_only: the unpickler builds tensors and plain containers and nothing else, so a
    # downloaded file cannot run code here (a full pickle can: its __reduce__ calls anything).
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConvertError(
            f"{path}: refused: it holds more than tensors (a pickled model or other objects), "
            "which torch.load can only read by running code from the file. Save only the "
            "weights, torch.save(model.state_dict(), path), from a source you trust, and "
            f"convert that file. (torch: {str(e).rpartition('WeightsUnpickler error: ')[2] or e})")
    except Exception as e:  # torch raises many kinds for a bad file
        raise ConvertError(f"{path}: cannot load with torch.load: {e}")
    if isinstance(obj, dict) and not any(torch.is_tensor(v) for v in obj.values()):
        for k in ("state_dict", "model"):
            if isinstance(obj.get(k), dict):
                obj = obj[k]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise ConvertError(f"{path}: not a state_dict (a dict of tensor names to tensors)")
    return obj


def classes_of(arch, sd):
    key = "fc.weight" if family(arch) == "resnet" else "classifier.6.weight"
    return int(sd[key].shape[0]) if key in sd and sd[key].dim() == 2 else None


# ---- to-strata ------------------------------------------------------------------------

def chunks_of(shape, elem):
    """strata's chunking (io_ckpt.c): at most 1 MiB a chunk, the last dimensions first."""
    chunk, total = [0] * len(shape), elem
    for i in range(len(shape) - 1, -1, -1):
        d = shape[i] or 1
        room = (1 << 20) // total
        chunk[i] = 1 if room == 0 else min(d, room)
        total *= chunk[i]
    return tuple(chunk)


def put_dataset(f, path, data):
    f.create_dataset(path, data=data, chunks=chunks_of(data.shape, data.dtype.itemsize),
                     fletcher32=True)


def put_str(obj, name, s):
    """A fixed-length, NUL-padded ASCII string attribute; "" is stored as one space."""
    obj.attrs[name] = np.bytes_((s or " ").encode("ascii"))


def put_int(obj, name, v):
    obj.attrs[name] = np.int64(v)


def to_strata(a):
    if a.arch not in ARCHS:
        raise ConvertError(f"--arch {a.arch}: not supported (supported: {', '.join(ARCHS)})")
    try:
        input_chw = tuple(int(v) for v in a.input.lower().split("x"))
        if len(input_chw) != 3 or min(input_chw) <= 0:
            raise ValueError
    except ValueError:
        raise ConvertError(f"--input {a.input}: expected CxHxW, e.g. 3x224x224")
    torch, torchvision = torch_modules()
    if a.random:
        torch.manual_seed(a.seed)
        sd = getattr(torchvision.models, a.arch)(num_classes=a.classes or 1000).state_dict()
        source = f"torchvision.models.{a.arch}, random (seed {a.seed})"
    else:
        sd = load_state_dict(torch, a.state_dict)
        source = a.state_dict
    classes = a.classes or classes_of(a.arch, sd) or 1000
    strata = find_strata(a.strata)
    params, buffers, cut, groups = strata_layout(strata, a.arch, input_chw, classes)
    shapes = {n: s for n, _, s in params}

    values, errors = {}, []
    for key, t in sd.items():
        if key.endswith(".num_batches_tracked"):
            continue  # strata keeps no batch counter
        name = tv_to_strata(a.arch, key)
        if name is None or (name not in shapes and name not in buffers):
            errors.append(f"torchvision key '{key}' has no place in strata's {a.arch}"
                          + (f" (it would be '{name}')" if name else ""))
            continue
        if not t.is_floating_point():
            errors.append(f"torchvision key '{key}' is {t.dtype}, not floating point")
            continue
        want = shapes.get(name, (buffers.get(name),))
        if tuple(t.shape) != want:
            errors.append(f"torchvision key '{key}' has shape {tuple(t.shape)}, strata's "
                          f"'{name}' needs {want} ({classes} classes, input {a.input})")
            continue
        if t.dtype != torch.float32:
            print(f"torchvision_convert: note: '{key}' is {t.dtype}, stored as float32",
                  file=sys.stderr)
        values[name] = t.detach().to(torch.float32).contiguous().numpy()
    for name in [n for n, _, _ in params] + list(buffers):
        if name not in values and not any(e.find(f"'{name}'") >= 0 for e in errors):
            errors.append(f"missing torchvision key '{strata_to_tv(a.arch, name)}' "
                          f"(strata's '{name}')")
    if errors:
        raise problems(f"{source} does not fit strata's {a.arch}", errors)

    out = os.path.abspath(a.out)
    tmp = f"{out}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            put_str(f, "format", FORMAT)
            put_int(f, "format_version", FORMAT_VERSION)
            put_str(f, "strata_version", run_strata(strata, ["version"]).split()[-1])
            put_str(f, "hdf5_version", h5py.version.hdf5_version)
            put_str(f, "created", datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"))
            put_int(f, "world_size", 1)
            put_str(f, "kind", "weights")
            put_dataset(f, "config", np.array([b" "], dtype="S1"))
            m = f.create_group("model")
            put_str(m, "arch", a.arch)
            m.attrs["input"] = np.array(input_chw, dtype=np.int64)
            put_int(m, "classes", classes)
            put_int(m, "cut", cut)
            put_str(m, "head", "original")
            put_int(m, "small_stem", 0)
            put_int(m, "ngroups", len(groups))
            f.create_group("groups")
            for g, (gname, first, last) in enumerate(groups):
                names = [n for n, pg, _ in params if pg == g]  # visit order = slab order
                grp = f.create_group(f"groups/{g}")
                put_int(grp, "index", g)
                put_str(grp, "name", gname)
                put_int(grp, "first", first)
                put_int(grp, "last", last)
                put_int(grp, "frozen", 0)
                for k in ("lr", "wd", "momentum"):  # never trained by strata
                    grp.attrs[k] = np.float64(0.0)
                put_int(grp, "numel", sum(values[n].size for n in names))
                if names:
                    w = max(len(n) for n in names)
                    put_dataset(f, f"groups/{g}/parameters",
                                np.array([n.encode("ascii") for n in names], dtype=f"S{w}"))
                for n in names:
                    put_dataset(f, f"params/group{g}/{n}", values[n])
            for n in buffers:
                put_dataset(f, f"buffers/{n}", values[n].reshape(-1))
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    nparams = sum(values[n].size for n, _, _ in params)
    print(f"torchvision_convert: {source} -> {a.out}: {a.arch}, {classes} classes, input "
          f"{a.input}, cut {cut}, {len(groups)} layer groups, {len(params)} parameters "
          f"({nparams:,} values), {len(buffers)} buffers")


# ---- to-torch -------------------------------------------------------------------------

def text(v):
    if isinstance(v, (bytes, np.bytes_)):
        v = v.decode("ascii", "replace")
    return str(v).rstrip(" ")


def to_torch(a):
    path = a.ckpt
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise ConvertError(f"{path}: not an HDF5 file (a strata checkpoint is HDF5)")
    torch, torchvision = torch_modules()
    with h5py.File(path, "r") as f:
        if text(f.attrs.get("format", "")) != FORMAT:
            raise ConvertError(f"{path}: an HDF5 file but not a strata checkpoint (root "
                               f"attribute format is not '{FORMAT}')")
        if int(f.attrs.get("format_version", -1)) != FORMAT_VERSION:
            raise ConvertError(f"{path}: checkpoint format version "
                               f"{f.attrs.get('format_version')}; this script reads {FORMAT_VERSION}")
        kind = text(f.attrs.get("kind", ""))
        if kind not in ("training", "weights"):
            raise ConvertError(f"{path}: root attribute kind is '{kind}', not training or weights")
        if "model" not in f:
            raise ConvertError(f"{path}: no group /model")
        m = f["model"].attrs
        arch = text(m.get("arch", ""))
        head = text(m.get("head", "default")) or "default"
        classes = int(m.get("classes", 0))
        if arch not in ARCHS:
            raise ConvertError(f"{path}: holds a {arch or '(no arch)'}; only torchvision's "
                               f"{', '.join(ARCHS)} convert")
        if head != "original":
            raise ConvertError(f"{path}: the model has the '{head}' head; only the 'original' head "
                               "(torchvision's classifier) converts (train with model.head: original)")
        if int(m.get("small_stem", 0)):
            raise ConvertError(f"{path}: a small-stem resnet (3x3 conv1, no maxpool) has no "
                               "torchvision equivalent")
        sd, errors = {}, []
        for g in range(int(m.get("ngroups", 0))):
            names = f[f"groups/{g}/parameters"][()] if f"groups/{g}/parameters" in f else []
            for n in (text(x) for x in names):
                key = strata_to_tv(arch, n)
                if key is None:
                    errors.append(f"strata parameter '{n}' has no torchvision name")
                else:
                    sd[key] = np.asarray(f[f"params/group{g}/{n}"][()], dtype=np.float32)
        for n, d in (f["buffers"].items() if "buffers" in f else []):
            key = strata_to_tv(arch, n)
            if key is None:
                errors.append(f"strata buffer '{n}' has no torchvision name")
            else:
                sd[key] = np.asarray(d[()], dtype=np.float32)
    ref = getattr(torchvision.models, arch)(num_classes=classes)
    want = ref.state_dict()
    out = {}
    for key, t in want.items():
        if key.endswith(".num_batches_tracked"):
            out[key] = torch.tensor(0)
        elif key not in sd:
            errors.append(f"no tensor for torchvision key '{key}' (strata's "
                          f"'{tv_to_strata(arch, key)}')")
        elif tuple(sd[key].shape) != tuple(t.shape):
            errors.append(f"'{key}' has shape {tuple(sd[key].shape)} in the checkpoint, "
                          f"torchvision's {arch} needs {tuple(t.shape)}")
        else:
            out[key] = torch.from_numpy(sd[key])
    errors += [f"strata tensor '{tv_to_strata(arch, k)}' has no place in torchvision's {arch}"
               for k in sd if k not in want]
    if errors:
        raise problems(f"{path} does not fit torchvision's {arch}", errors)
    ref.load_state_dict(out, strict=True)
    torch.save(out, a.out)
    print(f"torchvision_convert: {path} ({kind}) -> {a.out}: torchvision.models.{arch}"
          f"(num_classes={classes}), {len(out)} keys")


def main(argv):
    p = argparse.ArgumentParser(prog="torchvision_convert.py",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("to-strata", help="a torchvision state_dict to a strata weights checkpoint")
    s.add_argument("--arch", required=True, help="resnet18/34/50, vgg11..19 and _bn")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--state-dict", metavar="FILE.pt", help="torch.save'd state_dict")
    src.add_argument("--random", action="store_true", help="a new torchvision model")
    s.add_argument("--seed", type=int, default=0, help="torch.manual_seed for --random (0)")
    s.add_argument("--out", required=True, metavar="CKPT.h5")
    s.add_argument("--classes", type=int, help="default: the state_dict's (1000 with --random)")
    s.add_argument("--input", default="3x224x224", metavar="CxHxW",
                   help="input sample shape recorded in /model (default 3x224x224)")
    s.add_argument("--strata", metavar="PATH", help="the strata binary (default: $STRATA, "
                   "build/strata of this checkout, or strata on PATH)")
    t = sub.add_parser("to-torch", help="a strata checkpoint to a torchvision state_dict")
    t.add_argument("--ckpt", required=True, metavar="CKPT.h5")
    t.add_argument("--out", required=True, metavar="FILE.pt")
    a = p.parse_args(argv)
    if a.cmd == "to-strata" and a.classes is not None and a.classes <= 0:
        p.error(f"--classes {a.classes}: must be positive")
    try:
        (to_strata if a.cmd == "to-strata" else to_torch)(a)
    except (ConvertError, OSError) as e:
        print(f"torchvision_convert: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
