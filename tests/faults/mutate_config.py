#!/usr/bin/python3
"""Seeded mutation test of strata's YAML config and sweep readers (issue 17 item 8).

N mutants (STRATA_MUTANTS, default 300) of the configs given (tests/configs/*.yaml; one that
reads Fashion-MNIST is first rewritten to synthetic data of the same shape, so nothing is read
from /usr/share/datasets) and of a small sweep file. Each mutant is 1 to 3 edits:
  lines     deleted, duplicated, moved; indentation changed, tabs, everything flush left;
  values    swapped between keys, replaced by a hostile value (huge, negative, NaN, .inf, empty,
            long, nested lists and maps, slices, quoting, YAML tags such as !!binary, anchors
            and aliases, block scalars, non-UTF-8 bytes, NUL, tabs), keys renamed or duplicated;
  the file  truncated, bytes flipped, non-UTF-8/NUL/BOM/CR inserted, CRLF endings, a very long
            line, deep nesting, document markers and directives, an empty or comment-only file,
            a scalar or a list at the root.
A config mutant runs
  strata train M --set run.dir=<tmp> --set train.max_steps=1 --set train.epochs=1
                 --set data.dir=<missing dir> --stop-after 4
(--stop-after bounds a mutant whose phases ask for many epochs; data.dir makes a mutant that
lost its data.train line fail at once instead of reading Fashion-MNIST); a sweep mutant runs
  strata sweep plan M.
Each must end within STRATA_MUTATE_TIMEOUT seconds (default 60), not by a signal, with no
sanitizer report, and a non-zero exit must say why on stderr in a "strata...: ..." line
(tests/faults/mutate_common.py). Exit 0 is fine.

Usage: mutate_config.py STRATA CONFIG...
Env: STRATA_MUTANTS, STRATA_MUTATE_SEED (default 17), STRATA_MUTATE_TIMEOUT,
     STRATA_MUTATE_JOBS, STRATA_MUTANT_ONLY=I, STRATA_MUTANTS_SAVE=DIR, KEEP=1 (as mutate_ckpt.py).
Exit: 0 pass, 1 a failure.
"""
import os
import random
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate_common as mc  # noqa: E402

if len(sys.argv) < 3:
    sys.exit(__doc__)
STRATA = os.path.abspath(sys.argv[1])
CONFIGS = [os.path.abspath(a) for a in sys.argv[2:]]
N = mc.env_int("STRATA_MUTANTS", 300)
SEED = mc.env_int("STRATA_MUTATE_SEED", 17)
TIMEOUT = mc.env_int("STRATA_MUTATE_TIMEOUT", 60)
ONLY = os.environ.get("STRATA_MUTANT_ONLY", "").strip()
JOBS = max(1, mc.env_int("STRATA_MUTATE_JOBS", 3))

work = tempfile.mkdtemp(prefix="strata-mutate-config.", dir=os.environ.get("TMPDIR"))
box = mc.FailureBox("strata-mutate-config-failures.")
tally = mc.Tally()
NO_DATA = os.path.join(work, "no-fashion-mnist-here")

SWEEP = b"""# a small sweep over the synthetic base
config: base-synthetic.yaml
dir: runs
set:
  train.epochs: 1
  data.batch_size: 16
grid:
  groups.lr: ["slice(1e-3, 1e-1)", [0.02, 0.02, 0.05], 0.01]
  groups.momentum: [0.9, 0.8]
  model.widths: [[16], [16, 16]]
"""


def synthetic_only(text):
    """A config that reads Fashion-MNIST, rewritten to synthetic data of the same shape."""
    if b"fashion-mnist" not in text:
        return text
    out = []
    for line in text.split(b"\n"):
        m = re.match(rb"^(\s*)(train|valid):\s*fashion-mnist\b(.*)$", line)
        if m:
            line = m.group(1) + m.group(2) + b": synthetic" + m.group(3)
        out.append(line)
        if re.match(rb"^data:\s*(#.*)?$", line):
            out.append(b"  synthetic: {samples: 256, classes: 10, input: [1, 28, 28], seed: 3}")
    return b"\n".join(out)


# ---------------------------------------------------------------- hostile values

def long_string(rng):
    return b"x" * rng.choice([31, 32, 33, 255, 256, 4096, 65536, 300000])


def deep(rng, open_, close):
    k = rng.choice([8, 31, 32, 33, 64, 1000, 20000])
    return open_ * k + b"1" + close * k


VALUES = [
    # numbers out of every range
    lambda r: b"0", lambda r: b"-1", lambda r: b"-0", lambda r: b"2147483648",
    lambda r: b"4294967296", lambda r: b"9223372036854775807", lambda r: b"9223372036854775808",
    lambda r: b"18446744073709551616", lambda r: b"-9223372036854775809",
    lambda r: b"1" * r.choice([30, 400, 5000]), lambda r: b"1e308", lambda r: b"1.8e308",
    lambda r: b"1e400", lambda r: b"-1e400", lambda r: b"4.9e-324", lambda r: b"1e-45",
    lambda r: b"0x7fffffff", lambda r: b"0o777", lambda r: b"0b101", lambda r: b"1_000",
    lambda r: b"+1", lambda r: b".5", lambda r: b"1.", lambda r: b"1e", lambda r: b"0.9999999999999999",
    lambda r: b"65537", lambda r: b"33", lambda r: b"-33", lambda r: b"1000000",
    # NaN and infinities
    lambda r: b".nan", lambda r: b".NaN", lambda r: b"nan", lambda r: b"NaN", lambda r: b".inf",
    lambda r: b"-.inf", lambda r: b"+.inf", lambda r: b"inf", lambda r: b"Infinity",
    # booleans, nulls
    lambda r: b"true", lambda r: b"no", lambda r: b"on", lambda r: b"null", lambda r: b"~",
    lambda r: b"", lambda r: b"NULL",
    # strings
    lambda r: b'""', lambda r: b"''", lambda r: b'" "', lambda r: b'"3"', long_string,
    lambda r: b'"' + long_string(r) + b'"', lambda r: b'"a\\0b"', lambda r: b'"\\0"',
    lambda r: b'"\\x80\\xff"', lambda r: b'"\\uD800"', lambda r: b'"\\U0010FFFF"',
    lambda r: "caf\u00e9".encode(), lambda r: b'"abc', lambda r: b"'abc", lambda r: b"'it''s'",
    lambda r: b"a: b", lambda r: b"a #b", lambda r: b"%s%n%x", lambda r: b"../../../etc/passwd",
    lambda r: b"cnn", lambda r: b"mlp", lambda r: b"resnet9", lambda r: b"adamw", lambda r: b"sgd",
    lambda r: b"one_cycle", lambda r: b"cosine", lambda r: b"step", lambda r: b"fine_tune",
    lambda r: b"synthetic", lambda r: b"1x8x8", lambda r: b"0x0x0", lambda r: b"99999999x1x1",
    lambda r: b"\"1x8x\"",
    # slices
    lambda r: b"slice(", lambda r: b"slice()", lambda r: b"slice(1e-4, 1e-2)", lambda r: b"slice(0)",
    lambda r: b"slice(-1, 1)", lambda r: b"slice(1e400)", lambda r: b"slice(nan, 1)",
    lambda r: b"slice(1, 2, 3)", lambda r: b'"slice(1e-300, 1e300)"', lambda r: b"slice(" + b"1" * 500 + b")",
    # lists and maps
    lambda r: b"[]", lambda r: b"{}", lambda r: b"[1, 2, 3]", lambda r: b"[[1, 2], [3]]",
    lambda r: b"[0.01, 1e39, 0.01]", lambda r: b"[-1, -2]", lambda r: b"[.nan]", lambda r: b"[1, [2, {a: 1}]]",
    lambda r: b"[" + b", ".join([b"1"] * r.choice([3, 16, 17, 30, 31, 32, 33, 1000])) + b"]",
    lambda r: b"[" + b", ".join([b"0.01"] * r.choice([31, 32, 33])) + b"]",
    lambda r: b"[1, 8, 8, 8]", lambda r: b"[0, 0, 0]", lambda r: b"[1, 0, 8]",
    lambda r: b"{a: 1}", lambda r: b"{epochs: 1}", lambda r: b"{lr: 0.1, lr: 0.2}", lambda r: b"{[1]: 2}",
    lambda r: b"{? a}", lambda r: b"[a, b", lambda r: b"{a: 1", lambda r: b"]",
    lambda r: deep(r, b"[", b"]"), lambda r: deep(r, b"{a: ", b"}"),
    lambda r: b"[{epochs: 1, freeze_to: -1}, {epochs: 1, lr: slice(1e-3)}]",
    lambda r: b"[" + b", ".join([b"{epochs: 1}"] * r.choice([16, 17])) + b"]",
    # anchors, aliases, merge keys
    lambda r: b"&a 1", lambda r: b"*a", lambda r: b"*undefined", lambda r: b"&a [1, 2]",
    lambda r: b"&a {x: 1}", lambda r: b"{<<: {a: 1}}", lambda r: b"&a [*a]",
    # tags
    lambda r: b"!!binary aGVsbG8=", lambda r: b"!!str 3", lambda r: b"!!int x", lambda r: b"!!int 3",
    lambda r: b"!!float 1", lambda r: b"!!map {}", lambda r: b"!!seq []", lambda r: b"!!null ''",
    lambda r: b"!!bool maybe", lambda r: b"!!timestamp 2001-12-14", lambda r: b"!!python/object:os.system ls",
    lambda r: b"!foo bar", lambda r: b"!<tag:yaml.org,2002:int> 3", lambda r: b"!!set {a, b}",
    lambda r: b"!!omap [a: 1]", lambda r: b"! 3", lambda r: b"!!binary " + b"A" * 10001,
    # block scalars, whitespace, bytes
    lambda r: b"|\n  text\n  more", lambda r: b">-\n  folded", lambda r: b"|", lambda r: b"|9\n x",
    lambda r: b"\t1", lambda r: b"1\t", lambda r: b"\t", lambda r: b"1 \t # comment",
    lambda r: b"\xff\xfe", lambda r: b"\xc3\x28", lambda r: b"\x80abc", lambda r: b"\xed\xa0\x80",
    lambda r: b"a\x00b", lambda r: b"\x00", lambda r: b"\x1b[31m", lambda r: b"\r", lambda r: b"\xef\xbb\xbf1",
]

KEYLINE = re.compile(rb"^(\s*(?:-\s+)?)([^\s#:][^:#]*?)\s*:(?:\s+(.*?))?\s*$")


def key_lines(lines, with_value=False):
    out = []
    for i, l in enumerate(lines):
        m = KEYLINE.match(l)
        if m and (not with_value or (m.group(3) and not m.group(3).startswith(b"#"))):
            out.append(i)
    return out


def value(rng):
    return rng.choice(VALUES)(rng)


def set_value(line, v):
    m = KEYLINE.match(line)
    if not m:
        return line + b" " + v
    comment = b""
    if m.group(3) and b" #" in m.group(3):
        comment = b" #" + m.group(3).split(b" #", 1)[1]
    return m.group(1) + m.group(2) + b": " + v + comment


# ---------------------------------------------------------------- text mutations (bytes in, bytes out)

def t_delete_lines(rng, b):
    lines = b.split(b"\n")
    i = rng.randrange(len(lines))
    n = rng.choice([1, 1, 2, 3])
    del lines[i:i + n]
    return b"\n".join(lines), f"deleted {n} line(s) from line {i + 1}"


def t_duplicate_line(rng, b):
    lines = b.split(b"\n")
    i = rng.randrange(len(lines))
    j = i + 1 if rng.random() < 0.6 else rng.randrange(len(lines) + 1)
    lines.insert(j, lines[i])
    return b"\n".join(lines), f"line {i + 1} duplicated at {j + 1}"


def t_move_line(rng, b):
    lines = b.split(b"\n")
    i = rng.randrange(len(lines))
    l = lines.pop(i)
    j = rng.randrange(len(lines) + 1)
    lines.insert(j, l)
    return b"\n".join(lines), f"line {i + 1} moved to {j + 1}"


def t_reindent(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines) or [0]
    i = rng.choice(ks)
    d = rng.choice([-4, -2, -1, 1, 2, 3, 8])
    s = lines[i].lstrip(b" ")
    lines[i] = b" " * max(0, len(lines[i]) - len(s) + d) + s
    return b"\n".join(lines), f"line {i + 1} indented by {d:+d}"


def t_tabs(rng, b):
    lines = b.split(b"\n")
    ks = [i for i in key_lines(lines) if lines[i].startswith(b" ")] or [0]
    i = rng.choice(ks)
    lines[i] = re.sub(rb"^ +", b"\t", lines[i]) if rng.random() < 0.7 else lines[i].replace(b": ", b":\t", 1)
    return b"\n".join(lines), f"a tab in line {i + 1}"


def t_flush_left(rng, b):
    return b"\n".join(l.lstrip() for l in b.split(b"\n")), "every line flush left"


def t_swap_values(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines, with_value=True)
    if len(ks) < 2:
        return t_replace_value(rng, b)
    i, j = rng.sample(ks, 2)
    vi, vj = KEYLINE.match(lines[i]).group(3), KEYLINE.match(lines[j]).group(3)
    vi, vj = vi.split(b" #")[0].strip(), vj.split(b" #")[0].strip()
    lines[i], lines[j] = set_value(lines[i], vj), set_value(lines[j], vi)
    return b"\n".join(lines), f"values of lines {i + 1} and {j + 1} swapped ({vi[:30]!r} <-> {vj[:30]!r})"


def t_replace_value(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines, with_value=rng.random() < 0.8) or key_lines(lines) or [0]
    i = rng.choice(ks)
    v = value(rng)
    lines[i] = set_value(lines[i], v)
    return b"\n".join(lines), f"line {i + 1} value -> {v[:40]!r}{'...' if len(v) > 40 else ''}"


def t_replace_key(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines) or [0]
    i = rng.choice(ks)
    m = KEYLINE.match(lines[i])
    others = [KEYLINE.match(lines[k]).group(2) for k in ks if KEYLINE.match(lines[k])] or [b"k"]
    new = rng.choice([rng.choice(others), b"unknown_key", b"", b"a b", b"1", b"<<", b"? x",
                      b"x" * 1000, b"\xff", b"epoch", b"lrs", b'"lr"', b"'arch'", b"[a]", b"{a: 1}",
                      b"&k key", b"!!str key", b"*k"])
    if m:
        lines[i] = m.group(1) + new + b":" + ((b" " + m.group(3)) if m.group(3) else b"")
    return b"\n".join(lines), f"line {i + 1} key -> {new[:30]!r}"


def t_duplicate_key(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines, with_value=True) or [0]
    i = rng.choice(ks)
    lines.insert(i + 1, set_value(lines[i], value(rng)) if rng.random() < 0.7 else lines[i])
    return b"\n".join(lines), f"key of line {i + 1} given twice"


def t_alias(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines) or [0]
    k = rng.randrange(4)
    if k == 0 and len(ks) >= 2:
        i, j = sorted(rng.sample(ks, 2))
        m = KEYLINE.match(lines[i])
        lines[i] = m.group(1) + m.group(2) + b": &a" + ((b" " + m.group(3)) if m.group(3) else b"")
        lines[j] = set_value(lines[j], b"*a")
        what = f"anchor at line {i + 1}, alias at {j + 1}"
    elif k == 1:
        i = rng.choice(ks)
        lines[i] = set_value(lines[i], b"*a")
        what = f"alias to an undefined anchor at line {i + 1}"
    elif k == 2:
        # a small billion-laughs: each level 9 aliases of the one before
        laughs = [b'x0: &a0 "lol"']
        for n in range(1, rng.choice([3, 6, 9]) + 1):
            laughs.append(b"x%d: &a%d [" % (n, n) + b", ".join([b"*a%d" % (n - 1)] * 9) + b"]")
        lines = laughs + lines
        what = f"{len(laughs)} levels of aliases at the top"
    else:
        i = rng.choice(ks)
        lines.insert(i + 1, KEYLINE.match(lines[i]).group(1) + b"<<: *a" if KEYLINE.match(lines[i]) else b"<<: *a")
        lines.insert(0, b"base: &a {lr: 0.1}")
        what = f"a merge key after line {i + 1}"
    return b"\n".join(lines), what


def t_tag(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines) or [0]
    i = rng.choice(ks)
    tag = rng.choice([b"!!binary", b"!!str", b"!!int", b"!!float", b"!!map", b"!!seq", b"!!null",
                      b"!!python/tuple", b"!custom", b"!<tag:x,2000:y>", b"!!merge", b"!!value"])
    m = KEYLINE.match(lines[i])
    if m:
        lines[i] = m.group(1) + m.group(2) + b": " + tag + ((b" " + m.group(3)) if m.group(3) else b"")
    return b"\n".join(lines), f"tag {tag.decode()} on line {i + 1}"


def t_document(rng, b):
    lines = b.split(b"\n")
    i = rng.randrange(len(lines) + 1)
    mark = rng.choice([b"---", b"...", b"--- !!map", b"%YAML 1.1\n---", b"%YAML 2.0\n---",
                       b"%TAG ! tag:x,2000:\n---", b"--- |\n  text", b"---\n---", b"%FOO bar"])
    lines.insert(i, mark)
    return b"\n".join(lines), f"{mark.splitlines()[0].decode()!r} at line {i + 1}"


def t_truncate(rng, b):
    n = rng.randrange(len(b) + 1) if rng.random() < 0.9 else rng.choice([0, 1])
    return b[:n], f"truncated to {n} of {len(b)} bytes"


def t_flip_bytes(rng, b):
    a = bytearray(b)
    offs = [rng.randrange(len(a)) for _ in range(rng.randint(1, 6))] if a else []
    for o in offs:
        a[o] = rng.randrange(256) if rng.random() < 0.5 else a[o] ^ (1 << rng.randrange(8))
    return bytes(a), f"byte(s) changed at {offs}"


def t_insert_bytes(rng, b):
    ins = rng.choice([b"\xff", b"\xfe\xff", b"\xc3", b"\xc3\x28", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80",
                      b"\x00", b"\xef\xbb\xbf", b"\r", b"\x0b", b"\x1a", b"\x7f", b"\xc0\x80",
                      "\u2028".encode(), "\u00a0".encode()])
    at = 0 if rng.random() < 0.2 else rng.randrange(len(b) + 1)
    return b[:at] + ins + b[at:], f"{ins!r} inserted at byte {at}"


def t_crlf(rng, b):
    return (b.replace(b"\n", b"\r\n") if rng.random() < 0.7 else b.replace(b"\n", b"\r")), "CR line endings"


def t_long_line(rng, b):
    lines = b.split(b"\n")
    n = rng.choice([10000, 100000, 1000000])
    i = rng.randrange(len(lines) + 1)
    k = rng.randrange(3)
    line = [b"# " + b"c" * n, b"x: " + b"y" * n, b" " * n + b"z: 1"][k]
    if k == 1:
        ks = key_lines(lines, with_value=True)
        if ks:
            i = rng.choice(ks)
            lines[i] = set_value(lines[i], b"y" * n)
            return b"\n".join(lines), f"a {n}-character value at line {i + 1}"
    lines.insert(i, line)
    return b"\n".join(lines), f"a {n}-character line (kind {k}) at line {i + 1}"


def t_nest(rng, b):
    lines = b.split(b"\n")
    ks = key_lines(lines) or [0]
    i = rng.choice(ks)
    m = KEYLINE.match(lines[i])
    depth = rng.choice([20, 33, 40, 200])
    ind = m.group(1) if m else b""
    block = [lines[i].split(b":")[0] + b":"]
    for d in range(1, depth + 1):
        block.append(ind + b"  " * d + b"k%d:" % d)
    block[-1] += b" 1"
    lines[i:i + 1] = block
    return b"\n".join(lines), f"{depth} nested block maps at line {i + 1}"


def t_whole(rng, b):
    k = rng.choice([b"", b"\n", b"# only a comment\n", b"null\n", b"~", b"3\n", b"hello\n", b"- a\n- b\n",
                    b"[1, 2]\n", b"{}\n", b"---\n...\n", b"\x00\x00\x00", b"\xff\xfe" + "model: {}".encode("utf-16-le"),
                    b"model: *a\n", b" " * 100 + b"\n", b"\t\n", b": x\n", b"? [a]\n: b\n"])
    return k, f"the whole file replaced by {k[:30]!r}"


LINES = [t_delete_lines, t_duplicate_line, t_move_line, t_reindent, t_tabs, t_flush_left]
VALUEMUT = [t_swap_values, t_replace_value, t_replace_value, t_replace_value, t_replace_key,
            t_duplicate_key, t_alias, t_tag]
FILEMUT = [t_document, t_truncate, t_flip_bytes, t_insert_bytes, t_crlf, t_long_line, t_nest, t_whole]
ALL = LINES + VALUEMUT + FILEMUT


def make_mutant(i, bases):
    rng = random.Random(f"strata-config:{SEED}:{i}")
    name = rng.choice(sorted(bases))
    text = bases[name]
    kinds, descs = [], []
    for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):
        for attempt in range(20):
            fn = rng.choice(ALL)
            try:
                text, d = fn(rng, text)
                break
            except (AttributeError, IndexError, ValueError):   # nothing for it to edit: another
                continue
        else:
            continue
        kinds.append(fn.__name__[2:])
        descs.append(d)
    kind = kinds[0] if len(kinds) == 1 else "combo"
    path = os.path.join(work, f"mutant-{i:03d}-{name}-{kind}.yaml")
    with open(path, "wb") as f:
        f.write(text)
    return name, kind, path, "; ".join(descs) + (f" [{' + '.join(kinds)}]" if len(kinds) > 1 else "")


def command(i, name, path):
    if name == "sweep":
        return "sweep-plan", [STRATA, "sweep", "plan", path]
    return "train", [STRATA, "train", path, "--set", f"run.dir={os.path.join(work, f'run-{i:03d}')}",
                     "--set", "train.max_steps=1", "--set", "train.epochs=1",
                     "--set", f"data.dir={NO_DATA}", "--stop-after", "4"]


def main():
    print(f"strata: {STRATA}{mc.sanitizer_env_note()}\nseed {SEED}, {N} mutant(s), timeout {TIMEOUT} s, "
          f"{JOBS} at a time, work {work}")
    t0 = time.monotonic()
    bases = {}
    for c in CONFIGS:
        with open(c, "rb") as f:
            bases[os.path.splitext(os.path.basename(c))[0]] = synthetic_only(f.read())
    with open(os.path.join(work, "base-synthetic.yaml"), "wb") as f:
        f.write(bases.get("synthetic") or next(iter(bases.values())))
    # Every base must train (or plan) as it is, or the mutants test nothing.
    for name, text in list(bases.items()) + [("sweep", SWEEP)]:
        path = os.path.join(work, f"base-{name}.yaml")
        if name != "synthetic":
            with open(path, "wb") as f:
                f.write(text)
        label, argv = command(999, name, path)
        r = mc.run(argv, work, 300)
        if r["rc"] != 0:
            sys.stdout.write(r["err"].decode("utf-8", "replace")[-2000:])
            sys.exit(f"FAIL: base {name} does not {label}: {mc.quote(argv)} (exit {r['rc']})")
        shutil.rmtree(os.path.join(work, "run-999"), ignore_errors=True)
        print(f"base {name}: {label} exit 0 in {r['secs']:.1f} s")
    bases["sweep"] = SWEEP
    base_names = {k: v for k, v in bases.items() if k != "sweep"}
    which = [int(ONLY)] if ONLY else range(N)

    def one(i):
        # every fifth mutant is of the sweep file, the others of a config chosen by the seed
        name, kind, path, desc = make_mutant(i, base_names if i % 5 else {"sweep": SWEEP})
        label, argv = command(i, name, path)
        r = mc.run(argv, work, TIMEOUT)
        shutil.rmtree(os.path.join(work, f"run-{i:03d}"), ignore_errors=True)
        return name, kind, path, desc, label, argv, r

    # JOBS mutants at a time (a strata start mostly waits for MPI's singleton start-up), in order.
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        for i, (name, kind, path, desc, label, argv, r) in zip(which, pool.map(one, which)):
            verdict, why = mc.judge(r, TIMEOUT)
            tally.mutants += 1
            tally.by_kind.setdefault(kind, {"n": 0, "ok": 0, "refused": 0, "FAIL": 0})["n"] += 1
            tally.add(label, kind, verdict)
            shown = desc if len(desc) < 160 else desc[:157] + "..."
            print(f"mutant {i:03d} {name} {kind}: {shown}\n    {label} "
                  f"{'ran' if verdict == 'ok' else verdict}: {why if verdict != 'ok' else ''}"[:400].rstrip(),
                  flush=True)
            if verdict == "FAIL":
                report_failure(i, name, kind, desc, path, label, argv, why, r)
            os.remove(path)
    return mc.finish(tally, "mutate_config", t0, f"mutants and reproducers in {box.path()}")


def report_failure(i, name, kind, desc, path, label, argv, why, r):
    saved = box.save(path)
    if name == "sweep":
        box.save(os.path.join(work, "base-synthetic.yaml"))
    rdir = os.path.join(box.path(), f"repro-run-{i:03d}")
    argv = [a.replace(path, saved).replace(os.path.join(work, f"run-{i:03d}"), rdir).replace(NO_DATA, os.path.join(box.path(), "no-data"))
            for a in argv]
    repro = f"rm -rf {mc.quote([rdir])} && {mc.quote(argv)}"
    with open(os.path.join(box.path(), f"repro-{i:03d}.sh"), "w") as f:
        f.write(f"#!/bin/sh\n# mutant {i} ({name} {kind}): {desc[:2000]}\n# {label}: {why}\n{repro}\n")
    with open(os.path.join(box.path(), f"stderr-{i:03d}.txt"), "wb") as f:
        f.write(r["err"])
    print(f"    reproduce: {repro}")
    for line in r["err"].decode("utf-8", "replace").strip().splitlines()[-6:]:
        print(f"      | {line[:200]}")
    tally.failures.append(f"mutant {i:03d} ({name} {kind}) {label}: {why}\n    {repro}")


if __name__ == "__main__":
    try:
        rc = main()
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"work directory kept: {work}")
    sys.exit(rc)
