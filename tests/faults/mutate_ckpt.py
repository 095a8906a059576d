#!/usr/bin/python3
"""Seeded mutation test of strata's checkpoint readers (issue 17 item 8).

Three real checkpoints are made first, then N mutants of them (STRATA_MUTANTS, default 240,
spread over the three in turn):
  A  an mlp/SGD training checkpoint (CONFIG, --stop-after 8; momentum buffers),
  B  a cnn with BatchNorm and the fastai head under AdamW (CONFIG2, --stop-after 6; /buffers,
     exp_avg, exp_avg_sq, two phases),
  W  the weights.h5 (kind weights) of a finished run of CONFIG.
Mutations: raw bytes (flips anywhere, in HDF5 metadata only, in tensor chunks only, in the
superblock; truncation; zeroed or random ranges; trailing garbage) and structured edits
through h5py (a dataset, group or attribute deleted; an attribute's value, type or shape
changed; a dataset's dtype or shape changed; unexpected datasets, groups, attributes, soft,
hard and external links; NaN/inf/huge values in weights and optimizer state; negative or huge
/train_state and /optimizer/step values; group-table inconsistencies; bad strings in
/config, /metrics and string attributes; root attributes; two or three edits at once).

Each mutant M is given to
  strata inspect M --verify
  strata train CFG --resume M --set run.dir=<copy of the run that made it> --stop-after S
      (W: strata train CFG --set model.init_from=M --stop-after 2, a fresh run.dir)
  strata eval CFG --weights M
and, for every fourth mutant of A and B, train --resume auto with M installed as the run's
latest checkpoint. Each command must end within STRATA_MUTATE_TIMEOUT seconds (default 60),
not by a signal, with no sanitizer report, and a non-zero exit must say why on stderr in a
"strata...: ..." line (tests/faults/mutate_common.py). Exit 0 is fine.

Mutant i is the same edit for the same seed (random.Random("strata-ckpt:SEED:i")); a byte
offset can move by a few bytes between runs, as a base's /metrics holds timings, so a failing
mutant is saved with its base run and the command that reproduces it.

Usage: mutate_ckpt.py STRATA CONFIG CONFIG2
Env: STRATA_MUTANTS (count), STRATA_MUTATE_SEED (default 17), STRATA_MUTATE_TIMEOUT,
     STRATA_MUTATE_JOBS (mutants run at a time, default 3; the outcome does not depend on it),
     STRATA_MUTANT_ONLY=I (just mutant I, to rerun one), STRATA_MUTANTS_SAVE=DIR (where failing
     mutants go; default a new directory printed at the end), KEEP=1 (keep the work directory).
Exit: 0 pass, 1 a failure, 77 h5py or numpy missing.
"""
import os
import random
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate_common as mc  # noqa: E402

try:
    import h5py
    import numpy as np
except ImportError as e:
    print(f"SKIP: {sys.executable} lacks h5py/numpy ({e})")
    sys.exit(77)

if len(sys.argv) != 4:
    sys.exit(__doc__)
STRATA, CONFIG, CONFIG2 = (os.path.abspath(a) for a in sys.argv[1:4])
N = mc.env_int("STRATA_MUTANTS", 240)
SEED = mc.env_int("STRATA_MUTATE_SEED", 17)
TIMEOUT = mc.env_int("STRATA_MUTATE_TIMEOUT", 60)
ONLY = os.environ.get("STRATA_MUTANT_ONLY", "").strip()
JOBS = max(1, mc.env_int("STRATA_MUTATE_JOBS", 3))

work = tempfile.mkdtemp(prefix="strata-mutate-ckpt.", dir=os.environ.get("TMPDIR"))
box = mc.FailureBox("strata-mutate-ckpt-failures.")
tally = mc.Tally()

# ---------------------------------------------------------------- the three base checkpoints

BASES = {
    "A": {"config": CONFIG, "sets": [], "stop": 8, "resume_stop": 10},
    "B": {"config": CONFIG2, "sets": ["--set", "optimizer.type=adamw"], "stop": 6,
          "resume_stop": 9},
    "W": {"config": CONFIG, "sets": [], "stop": None, "resume_stop": 2},
}


def make_bases():
    for name, b in BASES.items():
        run = os.path.join(work, f"base-run-{name}")
        argv = [STRATA, "train", b["config"], "--set", f"run.dir={run}"] + b["sets"]
        if b["stop"]:
            argv += ["--stop-after", str(b["stop"])]
        else:
            argv += ["--set", "train.epochs=1", "--set", "train.max_steps=2"]
        r = mc.run(argv, work, 300)
        if r["rc"] != 0:
            sys.stdout.write(r["err"].decode("utf-8", "replace")[-2000:])
            sys.exit(f"FAIL: the base run {name} did not train: {mc.quote(argv)} (exit {r['rc']})")
        if b["stop"]:
            ck = os.path.join(run, "checkpoints", f"ckpt-{b['stop']:09d}.h5")
        else:
            ck = os.path.join(run, "weights.h5")
        if not os.path.exists(ck):
            sys.exit(f"FAIL: the base run {name} left no {ck}")
        b["run"], b["ckpt"] = run, ck
        b["tree"] = survey(ck)


def survey(path):
    """The objects of a checkpoint: datasets, groups, attributes, tensors' byte ranges."""
    t = {"datasets": [], "groups": [], "attrs": [], "raw": [], "size": os.path.getsize(path)}
    with h5py.File(path, "r") as f:
        t["attrs"] += [("/", a) for a in f.attrs]

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                t["datasets"].append(name)
                dsid = obj.id
                try:
                    if obj.chunks:
                        for i in range(dsid.get_num_chunks()):
                            ci = dsid.get_chunk_info(i)
                            t["raw"].append((ci.byte_offset, ci.size))
                    else:
                        off = dsid.get_offset()
                        if off is not None:
                            t["raw"].append((off, dsid.get_storage_size()))
                except Exception:
                    pass
            else:
                t["groups"].append(name)
            t["attrs"] += [(name, a) for a in obj.attrs]
        f.visititems(visit)
    t["raw"].sort()
    t["tensors"] = [d for d in t["datasets"]
                    if d.startswith(("params/", "buffers/", "optimizer/")) and
                    d not in ("optimizer/step", "optimizer/step_bn")]
    t["params"] = [d for d in t["datasets"] if d.startswith("params/")]
    return t


# ---------------------------------------------------------------- value pools

HUGE_INTS = [2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**62, 2**63 - 1, -2**63, -2**31, -1, -7,
             10**15, 0]
BAD_FLOATS = [float("nan"), float("inf"), float("-inf"), -1.0, 0.0, -0.0, 1e300, -1e300,
              1e-320, 3.5e38, 1.0, 2.0]
BAD_STRINGS = [b"", b" ", b"x" * 100000, b"\xff\xfe\x80", b"strata-checkpoint\x00junk",
               b"weights", b"training", b"resnet50", b"adamw", b"sgd", b"head", b"body0",
               b"../../etc/passwd", b"%s%s%n", b"\x00", "caf\u00e9".encode(), b"slice(1e-3)"]


def pick_value(rng, like=None):
    """A hostile value, mostly of like's kind."""
    r = rng.random()
    if isinstance(like, (bytes, str)) and r < 0.6:
        return rng.choice(BAD_STRINGS)
    if isinstance(like, (float, np.floating)) and r < 0.6:
        return np.float64(rng.choice(BAD_FLOATS))
    if r < 0.75:
        return np.int64(rng.choice(HUGE_INTS))
    if r < 0.9:
        return np.float64(rng.choice(BAD_FLOATS))
    return rng.choice(BAD_STRINGS)


def other_type(rng, v):
    """v in another type or shape: int <-> float <-> string, scalar <-> array, vlen strings."""
    choices = [
        lambda: np.float64(float(np.asarray(v).flat[0])) if np.asarray(v).dtype.kind in "iuf" else np.float64(1.5),
        lambda: np.int32(int(np.asarray(v).flat[0])) if np.asarray(v).dtype.kind in "iuf" else np.int32(3),
        lambda: np.uint8(7),
        lambda: np.bytes_(str(np.asarray(v).flat[0]).encode()[:100]),
        lambda: str(np.asarray(v).flat[0]),                       # a variable-length string
        lambda: np.array([1, 2, 3], dtype=np.int64),
        lambda: np.array([[1, 2], [3, 4]], dtype=np.int64),
        lambda: np.array([], dtype=np.int64),
        lambda: np.array([1.5, float("nan")]),
        lambda: np.array([b"a", b"bb"]),
        lambda: np.array([True]),
        lambda: np.complex64(1 + 2j),
        lambda: np.zeros((), dtype=[("a", "<i4"), ("b", "<f8")]),
        lambda: h5py.Empty("f"),
    ]
    return rng.choice(choices)()


# ---------------------------------------------------------------- byte mutations

def raw_ranges(t):
    return t["raw"] or [(0, 0)]


def meta_offset(rng, t):
    """An offset outside every tensor chunk: HDF5's metadata (object headers, B-trees, heaps)."""
    for _ in range(1000):
        o = rng.randrange(t["size"])
        if not any(a <= o < a + n for a, n in t["raw"]):
            return o
    return rng.randrange(min(t["size"], 2048))


def data_offset(rng, t):
    a, n = rng.choice(raw_ranges(t))
    return a + rng.randrange(max(n, 1))


def poke(path, offsets, how):
    with open(path, "r+b") as f:
        for o in offsets:
            f.seek(o)
            b = f.read(1)
            if not b:
                continue
            f.seek(o)
            f.write(bytes([how(b[0])]))


def m_flip_any(rng, path, t):
    offs = [rng.randrange(t["size"]) for _ in range(rng.randint(1, 8))]
    poke(path, offs, lambda x: x ^ rng.randint(1, 255))
    return f"flipped {len(offs)} byte(s) at {offs}"


def m_flip_meta(rng, path, t):
    offs = [meta_offset(rng, t) for _ in range(rng.randint(1, 4))]
    poke(path, offs, lambda x: x ^ (1 << rng.randrange(8)) if rng.random() < 0.5 else rng.randrange(256))
    return f"metadata byte(s) changed at {offs}"


def m_flip_data(rng, path, t):
    offs = [data_offset(rng, t) for _ in range(rng.randint(1, 3))]
    poke(path, offs, lambda x: x ^ (1 << rng.randrange(8)))
    return f"tensor-chunk bit(s) flipped at {offs}"


def m_superblock(rng, path, t):
    offs = [rng.randrange(96) for _ in range(rng.randint(1, 2))]
    poke(path, offs, lambda x: x ^ rng.randint(1, 255))
    return f"superblock byte(s) changed at {offs}"


def m_truncate(rng, path, t):
    r = rng.random()
    if r < 0.15:
        n = rng.choice([0, 1, 7, 8, 96, 512])
    elif r < 0.5:
        n = meta_offset(rng, t)
    else:
        n = rng.randrange(t["size"])
    os.truncate(path, n)
    return f"truncated to {n} of {t['size']} bytes"


def m_zero_range(rng, path, t):
    o = meta_offset(rng, t) if rng.random() < 0.6 else rng.randrange(t["size"])
    n = rng.choice([1, 4, 8, 16, 64, 512, 4096])
    with open(path, "r+b") as f:
        f.seek(o)
        f.write(b"\0" * min(n, t["size"] - o))
    return f"zeroed {n} byte(s) at {o}"


def m_random_range(rng, path, t):
    o = rng.randrange(t["size"])
    n = rng.choice([2, 16, 256, 2048])
    with open(path, "r+b") as f:
        f.seek(o)
        f.write(bytes(rng.randrange(256) for _ in range(min(n, t["size"] - o))))
    return f"{n} random byte(s) at {o}"


def m_append(rng, path, t):
    n = rng.choice([1, 100, 4096])
    with open(path, "ab") as f:
        f.write(bytes(rng.randrange(256) for _ in range(n)))
    return f"{n} byte(s) of garbage appended"


# ---------------------------------------------------------------- structured (h5py) mutations

def recreate(f, name, data, rng, like=None):
    """Replace dataset name by data (chunked with a checksum, as strata writes, or not)."""
    attrs = dict(f[name].attrs) if name in f else {}
    if name in f:
        del f[name]
    data = np.asarray(data)
    kw = {}
    if data.ndim > 0 and data.size > 0 and data.dtype.kind in "iufb" and rng.random() < 0.6:
        kw = {"chunks": True, "fletcher32": True}
    d = f.create_dataset(name, data=data, **kw)
    for k, v in attrs.items():
        d.attrs[k] = v


def m_del_dataset(rng, path, t):
    name = rng.choice(t["datasets"])
    with h5py.File(path, "r+") as f:
        del f[name]
    return f"deleted dataset /{name}"


def m_del_group(rng, path, t):
    name = rng.choice(t["groups"])
    with h5py.File(path, "r+") as f:
        del f[name]
    return f"deleted group /{name}"


def m_del_attr(rng, path, t):
    obj, a = rng.choice(t["attrs"])
    with h5py.File(path, "r+") as f:
        del f[obj].attrs[a]
    return f"deleted attribute {a} of {obj}"


def m_attr_value(rng, path, t):
    obj, a = rng.choice(t["attrs"])
    with h5py.File(path, "r+") as f:
        old = f[obj].attrs[a]
        v = pick_value(rng, old.item() if hasattr(old, "item") and np.ndim(old) == 0 else old)
        f[obj].attrs[a] = v
    return f"attribute {a} of {obj}: {old!r:.60} -> {v!r:.60}"


def m_attr_type(rng, path, t):
    obj, a = rng.choice(t["attrs"])
    with h5py.File(path, "r+") as f:
        old = f[obj].attrs[a]
        v = other_type(rng, old)
        f[obj].attrs[a] = v
    return f"attribute {a} of {obj}: {old!r:.60} -> another type or shape {v!r:.60}"


def m_ds_dtype(rng, path, t):
    name = rng.choice(t["datasets"])
    dt = rng.choice(["<f8", "<f2", "<i4", "<i8", "<u8", "u1", "?", "<c8", ">f4", "S8"])
    with h5py.File(path, "r+") as f:
        a = f[name][()]
        try:
            b = np.asarray(a).astype(dt)
        except (ValueError, TypeError):
            b = np.zeros(np.shape(a), dtype=dt)
        recreate(f, name, b, rng)
    return f"dataset /{name} rewritten as {dt}"


def m_ds_shape(rng, path, t):
    name = rng.choice(t["tensors"] + t["datasets"])
    with h5py.File(path, "r+") as f:
        a = np.asarray(f[name][()])
        k = rng.randrange(7)
        if k == 0:
            b = a.reshape(-1)                                  # flattened
        elif k == 1:
            b = a.reshape(-1)[:-1] if a.size > 1 else a.reshape(-1)[:0]   # one element short
        elif k == 2:
            b = np.concatenate([a.reshape(-1), a.reshape(-1)[:1]])        # one element long
        elif k == 3:
            b = a.T if a.ndim > 1 else a.reshape(1, -1)                   # transposed / 2-D
        elif k == 4:
            b = a.reshape(-1)[:0]                                         # empty
        elif k == 5:
            b = a.reshape(-1)[0] if a.size else np.float32(0)             # scalar
        else:
            b = np.zeros((2, 3, 4, 5, 6, 7, 8), dtype=a.dtype if a.dtype.kind != "S" else "f4")
        recreate(f, name, b, rng)
    return f"dataset /{name} reshaped {a.shape} -> {np.shape(b)} (kind {k})"


def m_nonfinite(rng, path, t):
    name = rng.choice(t["tensors"])
    v = rng.choice([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e-45])
    with h5py.File(path, "r+") as f:
        d = f[name]
        a = d[()]
        idx = rng.randrange(a.size) if rng.random() < 0.7 else None
        if idx is None:
            a[...] = v
        else:
            a.flat[idx] = v
        d[...] = a
    return f"/{name}[{'all' if idx is None else idx}] = {v}"


def m_train_state(rng, path, t):
    with h5py.File(path, "r+") as f:
        if "train_state" not in f:
            return m_attr_value(rng, path, t)
        ts = f["train_state"]
        a = rng.choice(sorted(ts.attrs))
        old = ts.attrs[a]
        v = rng.choice([-1, -2**63, 2**63 - 1, 2**62, 2**31, 10**12, 99, 1, 0, 15, 16, 17, 48, 7])
        if a == "seed":
            v = rng.choice([0, 2**64 - 1, 1])
            ts.attrs.modify(a, np.uint64(v))
        elif rng.random() < 0.8:
            ts.attrs.modify(a, old.dtype.type(v))
        else:
            ts.attrs[a] = np.float64(rng.choice([float(v), float("nan"), float("inf")]))
    return f"/train_state {a}: {old} -> {v}"


def m_counters(rng, path, t):
    """Optimizer step counters and the RNG state."""
    names = [d for d in t["datasets"] if d in ("optimizer/step", "optimizer/step_bn", "train_state/rng")]
    if not names:
        return m_ds_shape(rng, path, t)
    name = rng.choice(names)
    with h5py.File(path, "r+") as f:
        d = f[name]
        a = d[()]
        k = rng.randrange(3)
        if k == 0:
            j = rng.randrange(a.size)
            v = rng.choice([-1, -2**63, 2**63 - 1, 0]) if a.dtype.kind == "i" else rng.choice([0, 2**64 - 1])
            a.flat[j] = v
            d[...] = a
            what = f"[{j}] = {v}"
        elif k == 1:
            d[...] = 0
            what = "all 0"
        else:
            recreate(f, name, np.concatenate([a.reshape(-1), a.reshape(-1)]).reshape((2,) + a.shape), rng)
            what = "given twice (another shape)"
    return f"/{name} {what}"


def m_add_object(rng, path, t):
    with h5py.File(path, "r+") as f:
        k = rng.randrange(9)
        g = rng.choice(["params/group0", "params", "groups", "groups/0", "optimizer",
                        "optimizer/momentum_buffer/group0", "buffers", "train_state", "model", ""])
        if g and g not in f:
            g = ""
        base = f[g] if g else f
        where = f"/{g}" if g else "/"
        if k == 0:
            base.create_dataset("body.99.weight", data=np.ones((3, 3), np.float32), fletcher32=True, chunks=True)
            what = "a dataset body.99.weight"
        elif k == 1:
            base.create_group("extra")
            what = "a group extra"
        elif k == 2:
            if g == "groups":
                n = len(f["groups"])
                base.create_group(str(n))
                what = f"an empty group table entry {n}"
            else:
                base.create_group("7")
                what = "a group 7"
        elif k == 3:
            base.attrs["unexpected"] = np.int64(1)
            what = "an attribute"
        elif k == 4:
            tgt = rng.choice(t["datasets"])
            base["link_" + str(rng.randrange(100))] = h5py.SoftLink("/" + tgt)
            what = f"a soft link to /{tgt}"
        elif k == 5:
            base["dangling"] = h5py.SoftLink("/no/such/thing")
            what = "a dangling soft link"
        elif k == 6:
            base["ext"] = h5py.ExternalLink("no-such-file.h5", "/x")
            what = "an external link to a missing file"
        elif k == 7:
            # a group table entry that is a dataset, not a group
            if "groups" in f:
                f["groups"].create_dataset(str(len(f["groups"])), data=np.int64(1))
                what = "a dataset in /groups"
            else:
                f.create_group("groups")
                what = "an empty /groups"
        else:
            # the same parameter reachable twice: a hard link into another group
            ps = [p for p in t["params"] if p in f]
            if ps and "params/group1" in f:
                src = rng.choice(ps)
                f["params/group1/" + src.split("/")[-1] + "_dup"] = f[src]
                what = f"a hard link to /{src} in /params/group1"
            else:
                f.attrs["unexpected"] = np.bytes_(b"x")
                what = "a root attribute"
    return f"added {what} under {where}"


def m_replace_link(rng, path, t):
    name = rng.choice(t["datasets"])
    with h5py.File(path, "r+") as f:
        del f[name]
        k = rng.randrange(3)
        if k == 0:
            tgt = rng.choice([d for d in t["datasets"] if d != name] or [name])
            f[name] = h5py.SoftLink("/" + tgt)
            what = f"a soft link to /{tgt}"
        elif k == 1:
            f[name] = h5py.SoftLink("/" + name)      # a link to itself
            what = "a soft link to itself"
        else:
            f[name] = h5py.ExternalLink(os.path.basename(path), "/" + name)
            what = "an external link into its own file, to itself"
    return f"dataset /{name} replaced by {what}"


def m_group_table(rng, path, t):
    with h5py.File(path, "r+") as f:
        if "groups" not in f or "model" not in f:
            return m_add_object(rng, path, t)
        ng = len(f["groups"])
        g = rng.randrange(ng)
        grp = f[f"groups/{g}"]
        k = rng.randrange(10)
        if k <= 4 and "parameters" in grp:
            names = list(grp["parameters"][()])
            if k == 0 and names:
                names = names[:-1]
                what = "its last parameter dropped from the list"
            elif k == 1 and names:
                names = names + names[:1]
                what = "a parameter listed twice"
            elif k == 2:
                names = names + [b"body.42.weight"]
                what = "a parameter no model has"
            elif k == 3:
                other = list(f[f"groups/{(g + 1) % ng}/parameters"][()])
                names = names + other[:1]
                what = "a parameter of the next group listed too"
            else:
                names = [b"x" * 300] if rng.random() < 0.5 else []
                what = "a parameter list of a 300-character name, or empty"
            del grp["parameters"]
            if names:
                grp.create_dataset("parameters", data=np.array(names))
            else:
                grp.create_dataset("parameters", data=np.array([], dtype="S1"))
        elif k == 5:
            a = rng.choice(["first", "last", "index", "numel", "frozen"])
            v = rng.choice([-2, -1, 0, 1, 2, 5, 31, 32, 1000, 2**62, -2**63])
            grp.attrs.modify(a, np.int64(v))
            what = f"{a} = {v}"
        elif k == 6:
            v = rng.choice([0, 1, ng - 1, ng + 1, 32, 33, -1, 2**62])
            f["model"].attrs.modify("ngroups", np.int64(v))
            what = f"/model ngroups = {v} (the table has {ng})"
        elif k == 7 and ng > 1:
            h = (g + 1) % ng
            f.move(f"groups/{g}", "groups/tmp")
            f.move(f"groups/{h}", f"groups/{g}")
            f.move("groups/tmp", f"groups/{h}")
            what = f"groups {g} and {h} swapped (their index attributes not)"
        elif k == 8:
            f.move(f"groups/{g}", f"groups/{ng + 3}")
            what = f"renamed to groups/{ng + 3}"
        else:
            if f"params/group{g}" in f:
                f.move(f"params/group{g}", f"params/group{(g + 1) % ng}x")
            what = f"/params/group{g} renamed"
    return f"group table, group {g}: {what}"


def m_strings(rng, path, t):
    with h5py.File(path, "r+") as f:
        k = rng.randrange(4)
        name = rng.choice([d for d in ("config", "metrics") if d in f] or ["config"])
        if k == 0:
            v = rng.choice([b"", b" ", b"\xff\xfe\x00\x80", b"model: [\n", b"model:\n  arch: resnet50\n",
                            b"\x00" * 64, b"{" * 5000, b"a: " + b"x" * 200000, b"- - - -\n" * 100,
                            b'{"step": 1e999, "loss": NaN}\n', b'{"step":\n'])
            if name in f:
                del f[name]
            f.create_dataset(name, data=np.array([v]))
            what = f"/{name} = {v[:40]!r}"
        elif k == 1:
            if name in f:
                del f[name]
            f.create_dataset(name, data=np.array([b"a", b"b", b"c"]))
            what = f"/{name} three strings"
        elif k == 2:
            if name in f:
                del f[name]
            f.create_dataset(name, data=np.arange(10, dtype=np.int32))
            what = f"/{name} an int array"
        else:
            if name in f:
                del f[name]
            f.create_dataset(name, data="variable-length \u00e9", dtype=h5py.string_dtype())
            what = f"/{name} a variable-length UTF-8 string"
    return what


def m_root(rng, path, t):
    with h5py.File(path, "r+") as f:
        a = rng.choice(["format", "format_version", "world_size", "kind", "strata_version", "hdf5_version"])
        v = {
            "format": [b"strata-checkpoinT", b"", b"hdf5", b"strata-checkpoint "],
            "format_version": [np.int64(0), np.int64(2), np.int64(-1), np.int64(2**62), np.float64(1.0)],
            "world_size": [np.int64(0), np.int64(-1), np.int64(2), np.int64(3), np.int64(2**62), np.int64(100000)],
            "kind": [b"weights", b"training", b"", b"TRAINING", b"x" * 1000],
            "strata_version": [b"", b"99.0.0", b"\xff"],
            "hdf5_version": [b"", b"0.0.0", b"\xff"],
        }[a]
        f.attrs[a] = rng.choice(v)
    return f"root attribute {a} changed"


def m_combo(rng, path, t):
    parts = []
    for _ in range(rng.randint(2, 3)):
        fn = rng.choice(STRUCTURED)
        try:
            parts.append(fn(rng, path, survey(path)))
        except Exception as e:
            parts.append(f"({fn.__name__[2:]} not applicable: {type(e).__name__})")
    return "; ".join(parts)


BYTES = [m_flip_any, m_flip_meta, m_flip_data, m_superblock, m_truncate, m_zero_range,
         m_random_range, m_append]
STRUCTURED = [m_del_dataset, m_del_group, m_del_attr, m_attr_value, m_attr_type, m_ds_dtype,
              m_ds_shape, m_nonfinite, m_train_state, m_counters, m_add_object, m_replace_link,
              m_group_table, m_strings, m_root]


def make_mutant(i):
    """Mutant i: its base, kind, path and description (the same for the same seed and i)."""
    rng = random.Random(f"strata-ckpt:{SEED}:{i}")
    base = "ABW"[i % 3]
    b = BASES[base]
    # byte mutations a third of the time, structured ones (combinations included) the rest
    for attempt in range(20):
        fn = rng.choice(BYTES) if rng.random() < 0.35 else rng.choice(STRUCTURED + [m_combo, m_combo])
        path = os.path.join(work, f"mutant-{i:03d}-{base}-{fn.__name__[2:]}.h5")
        shutil.copyfile(b["ckpt"], path)
        try:
            desc = fn(rng, path, b["tree"])
            return base, fn.__name__[2:], path, desc
        except Exception as e:      # not applicable to this base (a missing object): another
            os.remove(path)
            last = e
    raise RuntimeError(f"mutant {i}: no mutation applied ({last})")


# ---------------------------------------------------------------- running the mutants

def commands(i, base, path):
    """(label, argv, setup) for mutant path of base; setup() prepares a run directory."""
    b = BASES[base]
    cfg, sets = b["config"], b["sets"]
    cmds = [("inspect", [STRATA, "inspect", path, "--verify"], None)]
    rdir = os.path.join(work, f"run-{i:03d}")
    if base == "W":
        cmds.append(("train-init", [STRATA, "train", cfg, "--set", f"run.dir={rdir}",
                                    "--set", f"model.init_from={path}", "--stop-after",
                                    str(b["resume_stop"])] + sets, None))
    else:
        cmds.append(("train-resume", [STRATA, "train", cfg, "--resume", path, "--set",
                                      f"run.dir={rdir}", "--stop-after", str(b["resume_stop"])] + sets,
                     lambda: copy_run(b["run"], rdir)))
    edir = os.path.join(work, f"eval-{i:03d}")
    cmds.append(("eval", [STRATA, "eval", cfg, "--weights", path, "--set", f"run.dir={edir}"] + sets, None))
    if base != "W" and i % 4 == 0:
        adir = os.path.join(work, f"auto-{i:03d}")
        cmds.append(("train-auto", [STRATA, "train", cfg, "--resume", "auto", "--set",
                                    f"run.dir={adir}", "--stop-after", str(b["resume_stop"])] + sets,
                     lambda: install(b, path, adir)))
    return cmds


def copy_run(src, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)


def install(b, path, dst):
    copy_run(b["run"], dst)
    shutil.copyfile(path, os.path.join(dst, "checkpoints", os.path.basename(b["ckpt"])))


def one(i):
    """Make mutant i and run its commands: (base, kind, path, description, results)."""
    base, kind, path, desc = make_mutant(i)
    results = []
    for label, argv, setup in commands(i, base, path):
        if setup:
            setup()
        r = mc.run(argv, work, TIMEOUT)
        verdict, why = mc.judge(r, TIMEOUT)
        results.append((label, argv, verdict, why, r))
    for d in ("run", "eval", "auto"):
        shutil.rmtree(os.path.join(work, f"{d}-{i:03d}"), ignore_errors=True)
    return base, kind, path, desc, results


def main():
    print(f"strata: {STRATA}{mc.sanitizer_env_note()}\nseed {SEED}, {N} mutant(s), timeout {TIMEOUT} s, "
          f"{JOBS} at a time, work {work}")
    t0 = time.monotonic()
    make_bases()
    for name, b in BASES.items():
        print(f"base {name}: {b['ckpt']} ({b['tree']['size']} bytes, {len(b['tree']['datasets'])} datasets, "
              f"{len(b['tree']['attrs'])} attributes)")
    which = [int(ONLY)] if ONLY else range(N)
    # Mutants are independent: JOBS of them at a time (a strata start is mostly waiting for
    # MPI's singleton start-up, not CPU), reported in order.
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        for i, (base, kind, path, desc, results) in zip(which, pool.map(one, which)):
            tally.mutants += 1
            tally.by_kind.setdefault(kind, {"n": 0, "ok": 0, "refused": 0, "FAIL": 0})["n"] += 1
            outcomes = []
            for label, argv, verdict, why, r in results:
                if b"HDF5-DIAG" in r["err"]:
                    tally.hdf5_diag += 1
                tally.add(label, kind, verdict)
                outcomes.append(f"{label} {verdict if verdict != 'ok' else 'ran'}")
            print(f"mutant {i:03d} {base} {kind}: {desc[:150]}\n    " + ", ".join(outcomes), flush=True)
            failed = [x for x in results if x[2] == "FAIL"]
            for label, argv, verdict, why, r in failed:
                report_failure(i, base, kind, desc, path, label, argv, why, r)
            os.remove(path)
    return mc.finish(tally, "mutate_ckpt", t0, f"mutants, their base runs and reproducers in {box.path()}")


def report_failure(i, base, kind, desc, path, label, argv, why, r):
    saved = box.save(path)
    b = BASES[base]
    saved_run = box.save(b["run"], f"base-run-{base}")
    rdir = os.path.join(box.path(), f"repro-run-{i:03d}")
    argv = [a.replace(path, saved) if isinstance(a, str) else a for a in argv]
    argv = [a.replace(os.path.join(work, f"run-{i:03d}"), rdir).replace(os.path.join(work, f"auto-{i:03d}"), rdir)
            .replace(os.path.join(work, f"eval-{i:03d}"), rdir) for a in argv]
    prep = f"rm -rf {mc.quote([rdir])}"
    if label == "train-resume":
        prep += f" && cp -a {mc.quote([saved_run, rdir])}"
    elif label == "train-auto":
        prep += (f" && cp -a {mc.quote([saved_run, rdir])} && cp {mc.quote([saved])} "
                 f"{mc.quote([os.path.join(rdir, 'checkpoints', os.path.basename(b['ckpt']))])}")
    repro = f"{prep} && {mc.quote(argv)}"
    with open(os.path.join(box.path(), f"repro-{i:03d}-{label}.sh"), "w") as f:
        f.write(f"#!/bin/sh\n# mutant {i} ({base} {kind}): {desc}\n# {label}: {why}\n{repro}\n")
    with open(os.path.join(box.path(), f"stderr-{i:03d}-{label}.txt"), "wb") as f:
        f.write(r["err"])
    print(f"    FAIL {label}: {why}\n    reproduce: {repro}")
    tail = r["err"].decode("utf-8", "replace").strip().splitlines()[-6:]
    for line in tail:
        print(f"      | {line[:200]}")
    tally.failures.append(f"mutant {i:03d} ({base} {kind}) {label}: {why}\n    {repro}")


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    sys.exit(rc)
