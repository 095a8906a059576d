"""Shared by mutate_ckpt.py and mutate_config.py: run one strata command under a timeout and
judge its outcome, count outcomes, and save what fails so it can be rerun by hand.

A command passes when it
  - ends within the timeout (a timeout is a hang: failure),
  - is not ended by a signal (Python's negative returncode, or a shell's status >= 128),
  - leaves no sanitizer report on stderr (AddressSanitizer, UndefinedBehaviorSanitizer),
  - and, when its status is not 0, says why on stderr in a line "strata...: something".
Exit 75 (a stop on SIGTERM/SIGUSR1) cannot be asked for here, so it is a failure too.
Exit 0 is always allowed: a mutant that still loads is not judged beyond that.
"""
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "AddressSanitizer:DEADLYSIGNAL",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
    "SUMMARY: AddressSanitizer",
)
MESSAGE = re.compile(rb"^strata[^\n:]*: *\S", re.M)


def env_int(name, default):
    v = os.environ.get(name, "")
    try:
        return int(v) if v.strip() else default
    except ValueError:
        sys.exit(f"{name}={v!r} is not an integer")


def run(argv, cwd, timeout, stdin_data=None):
    """Run argv in its own session (so a timeout kills whatever it started too).
    Returns a dict: rc (None after a timeout), out, err (bytes), secs, timed_out."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        timed_out = False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        timed_out = True
    # Anything the command left in its session (an MPI singleton's helper) goes too.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return {"rc": None if timed_out else p.returncode, "out": out, "err": err,
            "secs": time.monotonic() - t0, "timed_out": timed_out}


def judge(r, timeout):
    """('ok' | 'refused' | 'FAIL', why)."""
    err = r["err"]
    text = err.decode("utf-8", "replace")
    for mark in SANITIZER_MARKS:
        if mark in text:
            line = next((l for l in text.splitlines() if mark in l), mark)
            return "FAIL", f"sanitizer report: {line.strip()[:200]}"
    if r["timed_out"]:
        return "FAIL", f"no end within {timeout} s (hang?)"
    rc = r["rc"]
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = str(-rc)
        return "FAIL", f"ended by signal {name}"
    if rc >= 128:
        return "FAIL", f"exit status {rc} (a signal's?)"
    if rc == 75:
        return "FAIL", "exit status 75 (a stop on a signal) though no signal was sent"
    if rc == 0:
        return "ok", "exit 0"
    m = MESSAGE.search(err)
    if not m:
        last = text.strip().splitlines()[-1:] or ["<empty stderr>"]
        return "FAIL", f"exit {rc} without a 'strata...: why' line on stderr (last: {last[0][:160]!r})"
    line = err[m.start():].split(b"\n", 1)[0].decode("utf-8", "replace")
    return "refused", line[:200]


class Tally:
    """Outcome counts per command and per mutation kind, and the list of failures."""

    def __init__(self):
        self.by_cmd = {}
        self.by_kind = {}
        self.failures = []
        self.hdf5_diag = 0
        self.mutants = 0
        self.secs = 0.0

    def add(self, cmd, kind, verdict):
        c = self.by_cmd.setdefault(cmd, {"ok": 0, "refused": 0, "FAIL": 0})
        c[verdict] += 1
        k = self.by_kind.setdefault(kind, {"n": 0, "ok": 0, "refused": 0, "FAIL": 0})
        k[verdict] += 1

    def summary(self, what):
        lines = [f"{what}: {self.mutants} mutant(s) tried in {self.secs:.0f} s"]
        for cmd, c in self.by_cmd.items():
            lines.append(f"  {cmd:<14} ran (exit 0) {c['ok']:4d}   refused with a message "
                         f"{c['refused']:4d}   FAILED {c['FAIL']:4d}")
        lines.append("  by mutation kind (mutants; command outcomes ok/refused/FAILED):")
        for kind in sorted(self.by_kind):
            k = self.by_kind[kind]
            lines.append(f"    {kind:<22} {k['n']:4d}   {k['ok']:4d} / {k['refused']:4d} / {k['FAIL']:4d}")
        if self.hdf5_diag:
            lines.append(f"  (note: {self.hdf5_diag} command(s) also printed HDF5-DIAG error stacks)")
        return "\n".join(lines)


class FailureBox:
    """A directory kept after the test for failing mutants and their reproducers."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.dir = None

    def path(self):
        if self.dir is None:
            want = os.environ.get("STRATA_MUTANTS_SAVE", "")
            if want:
                os.makedirs(want, exist_ok=True)
                self.dir = os.path.abspath(want)
            else:
                self.dir = tempfile.mkdtemp(prefix=self.prefix, dir=os.environ.get("TMPDIR"))
        return self.dir

    def save(self, src, name=None):
        dst = os.path.join(self.path(), name or os.path.basename(src))
        if os.path.isdir(src):
            if not os.path.exists(dst):
                shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copyfile(src, dst)
        return dst


def finish(tally, name, t0, where):
    """Prints the summary and the failures (mutants and reproducers in where); the exit status."""
    tally.secs = time.monotonic() - t0
    print(tally.summary(name))
    if tally.failures:
        print(f"{len(tally.failures)} FAILURE(S); {where}:")
        for line in tally.failures:
            print("  " + line)
        return 1
    print("no hang, crash or sanitizer report; every refusal named its reason")
    return 0


def quote(argv):
    return " ".join(shlex.quote(str(a)) for a in argv)


def sanitizer_env_note():
    a = os.environ.get("ASAN_OPTIONS")
    return f" (ASAN_OPTIONS={a})" if a else ""
