#!/usr/bin/env bash
# strata's gradient reduction and training across hosts under bandwidth limits (issue 15,
# item 4): hosts made of network namespaces (tests/multinode/hosts.sh: smn-h0..3 on the bridge
# smn-br, Open MPI over TCP between them, mpirun in smn-h0, its daemons started by
# tests/multinode/agent.sh), each host's link shaped with tc's tbf on both ends of its veth
# (smn-eK inside the host: what it sends; smn-vK on the bridge: what it receives).
#
#   bench/multinode_scaling.sh [--out DIR] [--rates LIST] [--sweep-hosts LIST] [--reduce-hosts LIST]
#                              [--train-hosts LIST] [--reduce-reps N] [--reps N]
#                              [--resnet18-steps N] [--resnet18-rates LIST] [--train-models LIST]
#                              [--ddp] [--ddp-models LIST]
#                              [--skip-sweep] [--skip-reduce] [--skip-train]
#   bench/multinode_scaling.sh --report DIR     # tables and the alpha-beta fit from DIR
#                                               # (ALPHA_US=X: the prediction with alpha X us)
#
# Defaults: --rates none,10gbit,1gbit (none: no shaping), --sweep-hosts 2,4, --reduce-hosts 2,4,
# --train-hosts 2 (1: one host, unshaped, the baseline of the scaling), --reduce-reps 5 (3 at 1gbit), --reps 1, --resnet18-steps 6,
# --resnet18-rates none,1gbit, --out bench/results/2026-12-04-multinode (one JSON line per
# run of strata_bench_comm, named reduce-hN-RATE.json / train-hN-RATE.json, and its log).
# --train-models (default mlp,cnn; empty: none) are trained at every rate, resnet18 at
# --resnet18-rates. --ddp-models (default mlp,cnn) are DDP's.
# --ddp also runs PyTorch DDP (gloo) across the namespace hosts, one process per host, with
# bench/ddp_ref.py's models and step (its make_step and time_case), tcp:// rendezvous at
# 10.213.7.1; it needs bench/torch_venv.sh's venv (PYTHON to override).
#
# What is measured, per host count and rate:
#   sweep:  MPI alone, MPI_Allreduce and MPI_Iallreduce of 8 B to 32 MiB (a small MPI program
#           built from this script with mpicc): the points of the alpha-beta fit;
#   reduce: strata_bench_comm --only reduce,mlp,cnn,resnet18 -- MPI alone (MPI_Allreduce and
#           MPI_Iallreduce of 0.25-64 MiB) and strata's comm_reducer over the models' layer
#           groups (overlap and blocking, 1/4/16 MiB buckets and one per group) against one
#           plain MPI_Allreduce of the same size;
#   train:  strata_bench_comm --only train,mlp,cnn (and resnet18 at --resnet18-rates) with the
#           variants overlap, no_overlap and frozen: step time, exposed communication.
# No latency is added: this kernel has no netem (CONFIG_NET_SCH_NETEM), only tbf.
# The namespaces share one kernel and the machine's cores: with more ranks than cores the
# compute (and TCP's own CPU cost on veths) is shared, so only the reduction is compared there.
#
# Every run is bounded by timeout; everything (namespaces, veths, the bridge and with them
# the qdiscs, and what runs in the namespaces) is removed on exit, INT and TERM, and first
# thing at start (smn_up removes leftovers of a run killed with SIGKILL).
# Environment: BUILD_DIR (default build/), PYTHON (default ~/.cache/strata-bench/venv/bin/python),
# LOCK (default /tmp/strata-cpu.lock: the whole run holds it, taken before the multinode lock
# of hosts.sh, in the order a ctest run under it takes them; LOCK= for none).
set -uo pipefail
argv=("$@")
root=$(cd "$(dirname "$0")/.." && pwd -P)
build=${BUILD_DIR:-$root/build}
bench=$build/strata_bench_comm
python=${PYTHON:-$HOME/.cache/strata-bench/venv/bin/python}
lock=${LOCK-/tmp/strata-cpu.lock}
out=$root/bench/results/2026-12-04-multinode
rates=none,10gbit,1gbit
reduce_hosts=2,4
sweep_hosts=2,4
train_hosts=2
reduce_reps=5
reps=1
r18_steps=6
r18_rates=none,1gbit
train_models=mlp,cnn ddp_models=mlp,cnn
do_sweep=1 do_reduce=1 do_train=1 do_ddp=0 report_dir=""
while (($#)); do
    case $1 in
    --out) out=$2; shift 2 ;;
    --rates) rates=$2; shift 2 ;;
    --reduce-hosts) reduce_hosts=$2; shift 2 ;;
    --sweep-hosts) sweep_hosts=$2; shift 2 ;;
    --train-hosts) train_hosts=$2; shift 2 ;;
    --reduce-reps) reduce_reps=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --resnet18-steps) r18_steps=$2; shift 2 ;;
    --resnet18-rates) r18_rates=$2; shift 2 ;;
    --ddp) do_ddp=1; shift ;;
    --ddp-models) ddp_models=$2; shift 2 ;;
    --train-models) train_models=$2; shift 2 ;;
    --skip-sweep) do_sweep=0; shift ;;
    --skip-reduce) do_reduce=0; shift ;;
    --skip-train) do_train=0; shift ;;
    --report) report_dir=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "multinode_scaling.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

# ---- the report: tables and the alpha-beta fit from the JSON lines in DIR ------------------
report() {
    /usr/bin/python3 - "$1" <<'PY'
import glob, json, os, re, sys
d = sys.argv[1]
def load(kind):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, f"{kind}-h*-*.json"))):
        m = re.match(rf"{kind}-h(\d+)-(\w+)\.json$", os.path.basename(f))
        lines = [json.loads(l) for l in open(f) if l.strip()]
        if lines:
            out[(int(m.group(1)), m.group(2))] = lines[-1]["cases"]
    return out
RATE_ORDER = {"none": 0, "10gbit": 1, "1gbit": 2}
key = lambda k: (k[0], RATE_ORDER.get(k[1], 9))
red = load("reduce")
print(f"# strata across namespace hosts under tbf bandwidth limits ({d})\n")
if red:
    print("## MPI alone: MPI_Allreduce (in place, sum) ms, median\n")
    sizes = ["0.25", "1", "4", "16", "64"]
    print("| hosts | rate | " + " | ".join(f"{s} MiB" for s in sizes) + " | 64 MiB bus GB/s |")
    print("|---:|---|" + "---:|" * (len(sizes) + 1))
    for k in sorted(red, key=key):
        r = red[k]
        row = [f"{r[f'mpi.{s}']['allreduce_ms']:.3f}" if f"mpi.{s}" in r else "-" for s in sizes]
        p = k[0]
        m = r.get("mpi.64")
        bus = (2 * (p - 1) / p * m["bytes"] / (m["allreduce_ms"] * 1e-3) / 1e9) if m else float("nan")
        print(f"| {k[0]} | {k[1]} | " + " | ".join(row) + f" | {bus:.2f} |")
    print()
    # the reducer over the models' groups (medians)
    print("## strata's reducer against one plain MPI_Allreduce of the same size (ms, median)\n")
    print("| hosts | rate | model | MB | plain ms | reducer overlap ms, by bucket 1/4/16 MiB/group | "
          "reducer blocking ms, same buckets |")
    print("|---:|---|---|---:|---:|---|---|")
    for k in sorted(red, key=key):
        c = red[k]
        for model in ("mlp", "cnn", "resnet18"):
            pl = c.get(f"reduce.{model}.plain")
            if not pl:
                continue
            cell = lambda kind: " / ".join(f"{c[f'reduce.{model}.{b}.{kind}']['ms_median']:.2f}"
                                           for b in ("1", "4", "16", "group")
                                           if f"reduce.{model}.{b}.{kind}" in c)
            print(f"| {k[0]} | {k[1]} | {model} | {pl['floats'] * 4 / 1e6:.2f} | {pl['ms_median']:.3f} | "
                  f"{cell('overlap')} | {cell('blocking')} |")
    print()
    print()
sweep = {}
for f in sorted(glob.glob(os.path.join(d, "sweep-h*-*.json"))):
    m = re.match(r"sweep-h(\d+)-(\w+)\.json$", os.path.basename(f))
    txt = open(f).read().strip()
    if txt:
        sweep[(int(m.group(1)), m.group(2))] = json.loads(txt.splitlines()[-1])["sizes"]
fits = {}
if sweep:
    sz = sorted({e["bytes"] for v in sweep.values() for e in v})
    print("## MPI alone, 8 B to 32 MiB (sweep): MPI_Allreduce ms, median (MPI_Iallreduce + MPI_Wait in brackets)\n")
    print("| hosts | rate | " + " | ".join(f"{b} B" if b < 1024 else f"{b >> 10} KiB" if b < 1 << 20 else f"{b >> 20} MiB" for b in sz) + " |")
    print("|---:|---|" + "---:|" * len(sz))
    for k in sorted(sweep, key=key):
        e = {x["bytes"]: x for x in sweep[k]}
        print(f"| {k[0]} | {k[1]} | " + " | ".join(f"{e[b]['allreduce_ms']:.3g} ({e[b]['iallreduce_ms']:.3g})" if b in e else "-" for b in sz) + " |")
    print()
    def fit(rows):  # rows: (messages, wire bytes, t); least squares on the relative error
        A = [[0.0, 0.0], [0.0, 0.0]]; B = [0.0, 0.0]
        for msgs, byts, t in rows:
            w = 1 / t ** 2
            A[0][0] += w * msgs * msgs; A[0][1] += w * msgs * byts; A[1][1] += w * byts * byts
            B[0] += w * msgs * t; B[1] += w * byts * t
        det = A[0][0] * A[1][1] - A[0][1] ** 2
        a = (B[0] * A[1][1] - A[0][1] * B[1]) / det
        b = (A[0][0] * B[1] - A[0][1] * B[0]) / det
        return a, b, [100 * (a * m + b * n - t) / t for m, n, t in rows]
    print("## Alpha-beta fit, ring all-reduce: t = alpha * 2(p-1) + beta * 2(p-1)/p * n (n: bytes per rank), "
          "least squares on the relative error, over the sweep's sizes\n")
    print("| rate | call | hosts fitted | sizes | points | alpha us | beta ps/B (GB/s) | residuals: median abs, max abs | "
          "residuals, % by size (p = 2; p = 4 where fitted) |")
    print("|---|---|---|---|---:|---:|---:|---|---|")
    for rate in sorted({k[1] for k in sweep}, key=lambda r: RATE_ORDER.get(r, 9)):
        for call in ("allreduce_ms", "iallreduce_ms"):
            for hosts, lo in (((2,), 0), ((2, 4), 0), ((2,), 512 << 10), ((2, 4), 512 << 10)):
                rows, labels = [], []
                for p in hosts:
                    for e in sweep.get((p, rate), []):
                        if e["bytes"] < lo:
                            continue
                        rows.append((2 * (p - 1), 2 * (p - 1) / p * e["bytes"], e[call] * 1e-3))
                        labels.append(p)
                if len(rows) < 3 or (len(hosts) > 1 and len(set(labels)) < 2):
                    continue
                a, b, res = fit(rows)
                ab = sorted(abs(x) for x in res)
                by = "; ".join(" ".join(f"{x:+.0f}" for x, l in zip(res, labels) if l == p) for p in hosts)
                print(f"| {rate} | {call.split('_')[0]} | {','.join(map(str, hosts))} | {'all' if not lo else '>= 512 KiB'} | {len(rows)} | {a * 1e6:.1f} | "
                      f"{b * 1e12:.0f} ({1 / b / 1e9:.3f}) | {ab[len(ab) // 2]:.0f}%, {ab[-1]:.0f}% | {by} |")
                fits[f"{rate}.{call.split('_')[0]}.p{''.join(map(str, hosts))}{'.large' if lo else ''}"] = {"alpha_s": a, "beta_s_per_byte": b,
                                                                         "residuals_pct": res}
    print()
if fits:
    json.dump(fits, open(os.path.join(d, "fit.json"), "w"), indent=1)
# ---- prediction (estimates, not measurements): ring all-reduce at 100 Gbit/s, 16-1024 nodes
fitj = os.path.join(d, "fit.json")
if os.path.exists(fitj):
    fits = json.load(open(fitj))
    ref = fits.get("10gbit.allreduce.p2") or fits.get("10gbit.allreduce.p24")
    alpha = max(ref["alpha_s"], 1e-6)
    if os.environ.get("ALPHA_US"):  # another per-message cost, for the sensitivity of the prediction
        alpha = float(os.environ["ALPHA_US"]) * 1e-6
    big = fits.get("1gbit.allreduce.p2.large")
    # the link efficiency the 1gbit fit reached on large messages (the veths' TCP reaches about
    # 1.3 GB/s, so 10 Gbit/s is CPU-bound here and says nothing about a link's efficiency)
    eff = min(1.0, (1 / big["beta_s_per_byte"]) / 0.125e9) if big else 0.9
    beta = 1 / (12.5e9 * eff)
    # groups head first: (bytes, share of the backward time); compute per step (assumed GPU).
    MODELS = {
        "resnet18": dict(groups=[(5130 * 4, 0.005), (10493440 * 4, 0.725), (675392 * 4, 0.27)],
                         step_ms=15.0, what="small stem, 32x32, batch 128/GPU, est. 15 ms/step"),
        "resnet50": dict(groups=[(2049000 * 4, 0.005), (23282688 * 4, 0.795), (225344 * 4, 0.2)],
                         step_ms=100.0, what="224x224, batch 256/GPU mixed precision, est. 100 ms/step"),
    }
    BWD = 2 / 3  # backward's share of the step (estimate)
    def ring(p, nbytes, msgs=1):
        return msgs * 2 * (p - 1) * alpha + 2 * (p - 1) / p * nbytes * beta
    def strata_exposed(p, groups, bwd_s, bucket):
        t = end = 0.0
        for nbytes, share in groups:  # head first: each group's reduction starts when its backward ends
            t += share * bwd_s
            k = max(1, -(-nbytes // bucket))
            end = max(end, t) + ring(p, nbytes, k)
        return max(0.0, end - bwd_s)
    def fine_exposed(p, groups, bwd_s, bucket):  # buckets released as their bytes' backward ends
        total = sum(g[0] for g in groups)
        k = max(1, -(-total // bucket))
        t = end = 0.0
        for i in range(k):
            nb = min(bucket, total - i * bucket)
            t += nb / total * bwd_s
            end = max(end, t) + ring(p, nb)
        return max(0.0, end - bwd_s)
    print(f"## Prediction (estimate): 100 Gbit/s ring all-reduce, alpha {alpha * 1e6:.1f} us (the 10gbit MPI_Allreduce fit, 2 hosts, all sizes), "
          f"beta {beta * 1e12:.1f} ps/B ({eff * 100:.0f}% of 12.5 GB/s: the efficiency of the 1gbit fit on sizes >= 512 KiB)\n")
    print("| model | nodes | ring all-reduce ms, 1 message | strata 4 MiB buckets: comm ms | strata exposed ms "
          "(per-group overlap) | exposed with 25 MB buckets released through backward | assumed step ms | "
          "strata scaling efficiency |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, m in MODELS.items():
        total = sum(g[0] for g in m["groups"])
        bwd = m["step_ms"] * 1e-3 * BWD
        for p in (2, 4, 16, 64, 256, 1024):
            comm4 = sum(ring(p, g[0], max(1, -(-g[0] // (4 << 20)))) for g in m["groups"])
            ex = strata_exposed(p, m["groups"], bwd, 4 << 20)
            fe = fine_exposed(p, m["groups"], bwd, 25_000_000)
            eff_s = m["step_ms"] / (m["step_ms"] + ex * 1e3)
            print(f"| {name} ({total / 1e6:.1f} MB) | {p} | {ring(p, total) * 1e3:.2f} | {comm4 * 1e3:.2f} | "
                  f"{ex * 1e3:.2f} | {fe * 1e3:.2f} | {m['step_ms']:.0f} | {eff_s * 100:.0f}% |")
    print("\nAssumed compute: " + "; ".join(f"{k}: {v['what']}" for k, v in MODELS.items()) +
          f"; backward {BWD:.2f} of the step. Group sizes: resnet18 from strata's model (head, body, stem); "
          "resnet50 from torchvision's parameter counts split the same way (head; layer2-4; stem+layer1). Shares of the backward "
          "time per group (head, body, first group): resnet18 0.005/0.725/0.27, resnet50 0.005/0.795/0.2, estimates from "
          "the layers' multiply-adds (the first group runs at the full resolution).\n")
tr = load("train")
tr.update({(k[0], k[1] + " (resnet18 run)"): v for k, v in load("train18").items()})
if tr:
    print("## Training, strata_bench_comm (ms/step and exposed communication ms/step, best run)\n")
    print("| hosts | rate | model | variant | ms/step | exposed comm ms/step | MB/step | samples/s |")
    print("|---:|---|---|---|---:|---:|---:|---:|")
    for k in sorted(tr, key=key):
        r = tr[k]
        for name, v in r.items():
            if name.startswith("train."):
                _, model, variant = name.split(".", 2)
                print(f"| {k[0]} | {k[1]} | {model} | {variant} | {v['ms_per_step']:.2f} | "
                      f"{v['exposed_ms']:.2f} | {v['bytes_per_step'] / 1e6:.2f} | {v['samples_per_s']:.0f} |")
    print()
ddp = sorted(glob.glob(os.path.join(d, "ddp-h*-*.json")))
if ddp:
    print("## PyTorch DDP (gloo), one process per host (ms/step: best of 3 repetitions, median in brackets)\n")
    print("| hosts | rate | model | run | batch/rank | ms/step | samples/s |")
    print("|---:|---|---|---|---:|---:|---:|")
    for f in ddp:
        m = re.match(r"ddp-h(\d+)-(\w+?)(-[\w-]+)?\.json$", os.path.basename(f))
        txt = open(f).read().strip()
        if not txt:
            continue
        res = json.loads(txt.splitlines()[-1])["results"]
        if m.group(1) == "1":  # bench/ddp_ref.py's own line: single process, no DDP
            res = {f"{k}.single": {"batch": v["batch"], "ms": v["single_ms_per_step"],
                                   "ms_median": v["single_ms_per_step_median"],
                                   "samples_per_s": v["single_samples_per_s"]} for k, v in res.items()}
        for name, v in res.items():
            model, run = name.split(".")
            print(f"| {m.group(1)} | {m.group(2)} | {model} | {run} | {v['batch']} | {v['ms']:.2f} ({v['ms_median']:.2f}) | "
                  f"{v['samples_per_s']:.0f} |")
    print()
PY
}
if [[ -n $report_dir ]]; then report "$report_dir"; exit; fi

if [[ -n $lock && -z ${STRATA_MN_LOCKED:-} ]]; then
    STRATA_MN_LOCKED=1 exec flock "$lock" "$0" "${argv[@]}"
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
source "$root/tests/multinode/hosts.sh"
[[ -x $bench ]] || { echo "multinode_scaling.sh: no $bench (cmake --build $build --target strata_bench_comm)" >&2; exit 1; }
smn_can
scratch=$(mktemp -d "${TMPDIR:-/tmp}/strata-mnscale.XXXXXX")
chmod 755 "$scratch"
cleanup() { smn_down; rm -rf "$scratch"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$out"

# shape RATE: tbf at RATE on both ends of every host's veth (none: no qdisc). The burst is
# 1 ms at the rate (at least 64 KiB, so a GSO segment fits), the queue at most 20 ms.
shape() {
    local rate=$1 k burst
    [[ $rate == none ]] && return 0
    case $rate in
    *gbit) burst=$((${rate%gbit} * 125000)) ;;
    *mbit) burst=$((${rate%mbit} * 125)) ;;
    *) echo "multinode_scaling.sh: rate $rate: use Nmbit or Ngbit" >&2; return 1 ;;
    esac
    ((burst < 65536)) && burst=65536
    for ((k = 0; k < SMN_N; k++)); do
        tc qdisc add dev "smn-v$k" root tbf rate "$rate" burst "$burst" latency 20ms || return 1
        ip netns exec "smn-h$k" tc qdisc add dev "smn-e$k" root tbf rate "$rate" burst "$burst" latency 20ms || return 1
    done
}

# What the qdiscs sent and dropped (tbf drops what would wait longer than its 20 ms queue).
tc_stats() {
    local k
    for ((k = 0; k < SMN_N; k++)); do
        echo "tc smn-v$k: $(tc -s qdisc show dev "smn-v$k" | grep -o 'Sent .*' | head -1)"
        echo "tc smn-e$k: $(ip netns exec "smn-h$k" tc -s qdisc show dev "smn-e$k" | grep -o 'Sent .*' | head -1)"
    done
}

# bench_on KIND N RATE ARGS...: strata_bench_comm on N hosts at RATE, a JSON line to
# $out/KIND-hN-RATE.json, the table to its .log.
bench_on() {
    local kind=$1 n=$2 rate=$3
    shift 3
    local js=$out/$kind-h$n-$rate.json log=$out/$kind-h$n-$rate.log extra=()
    ((n > $(nproc))) && extra=(--mca mpi_yield_when_idle 1) # see sweep_on
    rm -f "$js"
    smn_up "$n" || return 1
    shape "$rate" || return 1
    echo "== $kind on $n hosts, rate $rate: $(date -u +%H:%M:%S)" | tee "$log"
    tc qdisc show dev smn-v0 >> "$log"
    ( cd "$root" && SMN_TIMEOUT=${SMN_TIMEOUT:-900} smn_mpirun "${extra[@]}" -n "$n" -H "$(smn_hosts "$n")" "$bench" --json "$js" --configs bench/configs \
        --run-dir "$scratch/$kind-h$n-$rate" "$@" ) >> "$log" 2>&1
    local st=$?
    echo "== exit $st, $(date -u +%H:%M:%S)" >> "$log"
    ((st == 0)) || { echo "   FAILED ($st), see $log"; tail -5 "$log"; }
    smn_down
    return 0
}

# sweep_on N RATE: MPI alone, 8 B to 32 MiB (x4), MPI_Allreduce and MPI_Iallreduce + MPI_Wait,
# the median over the ranks' slowest of 30 (up to 1 MiB), 8 (up to 16 MiB) or 4 repetitions
# after 2 warm-up: the small messages that the alpha of the fit needs (strata_bench_comm starts
# at 0.25 MiB). With more ranks than cores Open MPI's ranks yield when idle
# (mpi_yield_when_idle): busy-polling ranks sharing a core wait a scheduler slice per message.
sweep_on() {
    local n=$1 rate=$2 extra=()
    local js=$out/sweep-h$n-$rate.json log=$out/sweep-h$n-$rate.log
    if [[ ! -x $scratch/mn_sweep ]]; then
        mpicc -O2 -o "$scratch/mn_sweep" -x c - <<'C' || return 1
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int r, p;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    if (!r) printf("{\"world\":%d,\"sizes\":[", p);
    for (size_t n = 8; n <= (32u << 20); n *= 4) {
        const int reps = n <= (1u << 20) ? 30 : n <= (16u << 20) ? 8 : 4;
        const int cnt = (int)(n / sizeof(float)) < 1 ? 1 : (int)(n / sizeof(float));
        float *x = calloc((size_t)cnt, sizeof(float));
        double med[2];
        for (int v = 0; v < 2; v++) {
            double t[64];
            for (int k = -2; k < reps; k++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = MPI_Wtime();
                if (v == 0) {
                    MPI_Allreduce(MPI_IN_PLACE, x, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                } else {
                    MPI_Request q;
                    MPI_Iallreduce(MPI_IN_PLACE, x, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
                    MPI_Wait(&q, MPI_STATUS_IGNORE);
                }
                double dt = MPI_Wtime() - t0, mx;
                MPI_Allreduce(&dt, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                if (k >= 0) t[k] = mx;
            }
            qsort(t, (size_t)reps, sizeof t[0], cmp);
            med[v] = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
        }
        free(x);
        if (!r) printf("%s{\"bytes\":%zu,\"reps\":%d,\"allreduce_ms\":%.6g,\"iallreduce_ms\":%.6g}", n == 8 ? "" : ",",
                       (size_t)cnt * sizeof(float), reps, med[0] * 1e3, med[1] * 1e3);
    }
    if (!r) printf("]}\n");
    MPI_Finalize();
    return 0;
}
C
    fi
    ((n > $(nproc))) && extra=(--mca mpi_yield_when_idle 1)
    smn_up "$n" || return 1
    shape "$rate" || return 1
    echo "== sweep on $n hosts, rate $rate: $(date -u +%H:%M:%S)" | tee "$log"
    SMN_TIMEOUT=300 smn_mpirun "${extra[@]}" -n "$n" -H "$(smn_hosts "$n")" "$scratch/mn_sweep" > "$js" 2>> "$log"
    local st=$?
    echo "== exit $st, $(date -u +%H:%M:%S)" >> "$log"
    tc_stats >> "$log"
    ((st == 0)) || { echo "   FAILED ($st), see $log"; tail -5 "$log"; }
    smn_down
    return 0
}

# ddp_on N RATE MODELS: PyTorch DDP (gloo) with one process per host, bench/ddp_ref.py's step.
ddp_on() {
    local n=$1 rate=$2 models=$3 k pids=()
    local tag=$rate
    [[ $models == mlp,cnn ]] || tag=$rate-${models//,/-}
    local js=$out/ddp-h$n-$tag.json log=$out/ddp-h$n-$tag.log
    smn_up "$n" || return 1
    shape "$rate" || return 1
    echo "== ddp on $n hosts, rate $rate: $(date -u +%H:%M:%S)" | tee "$log"
    for ((k = 0; k < n; k++)); do
        GLOO_SOCKET_IFNAME=smn-e$k timeout -k 5 600 ip netns exec "smn-h$k" "$python" - "$root/bench" "$k" "$n" "$models" "$js" \
            >> "$log" 2>&1 <<'PY' &
import json, os, statistics, sys
sys.path.insert(0, sys.argv[1])
import ddp_ref, torch.distributed as dist
rank, world, models, js = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), sys.argv[5]
ddp_ref.one_thread()
dist.init_process_group("gloo", init_method="tcp://10.213.7.1:29517", rank=rank, world_size=world)
res = {}
for frozen in (False, True):
    for name in models:
        step, batch = ddp_ref.make_step(name, rank, True, frozen)
        times, steps = ddp_ref.time_case(step, 3, 1.0, world)
        res[f"{name}.{'frozen' if frozen else 'ddp'}"] = {
            "batch": batch, "steps": steps, "ms": min(times) * 1e3,
            "ms_median": statistics.median(times) * 1e3, "samples_per_s": world * batch / min(times)}
dist.barrier()
dist.destroy_process_group()
if rank == 0:
    with open(js, "w") as f:
        f.write(json.dumps({"hosts": world, "backend": "gloo", "results": res}) + "\n")
    print(json.dumps(res, indent=1))
PY
        pids+=($!)
    done
    local st=0
    for k in "${pids[@]}"; do wait "$k" || st=$?; done
    echo "== exit $st, $(date -u +%H:%M:%S)" >> "$log"
    smn_down
}

IFS=, read -ra R <<< "$rates"
if ((do_sweep)); then
    IFS=, read -ra H <<< "$sweep_hosts"
    for n in "${H[@]}"; do
        for rate in "${R[@]}"; do sweep_on "$n" "$rate"; done
    done
fi
if ((do_reduce)); then
    IFS=, read -ra H <<< "$reduce_hosts"
    for n in "${H[@]}"; do
        for rate in "${R[@]}"; do
            rr=$reduce_reps
            [[ $rate == 1gbit ]] && ((rr > 3)) && rr=3
            bench_on reduce "$n" "$rate" --only reduce,mlp,cnn,resnet18 --reduce-reps "$rr"
        done
    done
fi
if ((do_train)); then
    IFS=, read -ra H <<< "$train_hosts"
    for n in "${H[@]}"; do
        for rate in "${R[@]}"; do
            ((n == 1)) && [[ $rate != none ]] && continue # one host: no link to shape
            [[ -n $train_models ]] && bench_on train "$n" "$rate" --only "train,$train_models" --reps "$reps" --variants overlap,no_overlap,frozen
            if [[ ,$r18_rates, == *",$rate,"* ]]; then
                bench_on train18 "$n" "$rate" --only train,resnet18 --reps 1 --resnet18-steps "$r18_steps" \
                    --variants overlap,no_overlap,frozen
            fi
        done
    done
fi
if ((do_ddp)); then
    IFS=, read -ra H <<< "$train_hosts"
    for n in "${H[@]}"; do
        for rate in "${R[@]}"; do
            if ((n == 1)); then # one process without DDP: bench/ddp_ref.py's "single"
                [[ $rate == none ]] || continue
                tag=none
                [[ $ddp_models == mlp,cnn ]] || tag=none-${ddp_models//,/-}
                echo "== ddp_ref.py single (1 process, no DDP): $(date -u +%H:%M:%S)" | tee "$out/ddp-h1-$tag.log"
                timeout -k 5 600 "$python" "$root/bench/ddp_ref.py" --runs single --only "train,$ddp_models" --reps 3 \
                    > "$out/ddp-h1-$tag.json" 2>> "$out/ddp-h1-$tag.log"
            else
                ddp_on "$n" "$rate" "$ddp_models"
            fi
        done
    done
fi
report "$out" | tee "$out.md"
