/*
 * strata_bench_comm: the cost of keeping replicas in step, under mpirun.
 *
 * Run under `mpirun -np 1` and `mpirun -np 2` (bench/run_comm.sh does both, then prints the
 * combined table with --report). Every number is set against a reference measured in the
 * same run:
 *
 *   a) reduction bandwidth (2 or more ranks): the gradient slabs of the real models' layer
 *      groups (mlp, cnn, resnet18 with the small stem, 11.2M floats, and resnet34 with
 *      torchvision's own head, 21.8M floats; built with skip_init, so no initialisation), reduced through comm_reducer exactly as a training
 *      step does (begin, group_done head first, finish with scale 1: the trainer scales the
 *      loss gradient by 1/world before backward, so no averaging pass), against one plain
 *      MPI_Allreduce(MPI_IN_PLACE) over a buffer of the same total size. Buckets of 1, 4 and
 *      16 MiB and one bucket per group, with overlap (nonblocking MPI_Iallreduce, all buckets
 *      in flight) and without (blocking MPI_Allreduce per bucket). All variants of a model
 *      are timed in turn within each repetition, so noise spreads evenly over them. Before
 *      the models, MPI alone: one MPI_Allreduce against one MPI_Iallreduce + MPI_Wait at
 *      0.25 to 64 MiB, the two calls the reducer issues without and with overlap;
 *   b-d) training: `strata train` itself (trainer_train, what the CLI calls after loading
 *      the config) on Fashion-MNIST with bench/configs/{mlp,cnn}.yaml, batch 128 and 64 per
 *      rank, for a fixed number of steps, with comm.overlap on (comm.progress nonblocking, and,
 *      on 2 or more ranks, thread), off, and with the body frozen (groups.freeze_to -1,
 *      train_bn false, bn_freeze true: bench/ddp_ref.py's world2_frozen twin).
 *      Step time, exposed communication (comm_exposed_seconds), bytes and collectives per
 *      step come from the run's metrics.jsonl, over the steps after the
 *      first log window (warm-up excluded): a line's cumulative samples_per_s gives the time
 *      at that step, and the differences between the first and last kept lines give the
 *      per-step numbers. bench/configs/resnet18.yaml (synthetic 3x32x32 data, batch 32 per
 *      rank) runs when named in --only (its steps take seconds); --variants picks variants;
 *   e) memory (only when named in --only, one model per process): the peak resident memory
 *      (ru_maxrss) of every rank over a short `strata train` run, against what the model
 *      needs: parameters, gradients, optimizer state, every tensor a training step allocates
 *      (each layer's output and input gradient, and what layers keep inside: max-pool
 *      indices, residual blocks' activations, im2col workspace; measured with mallinfo2 on
 *      the same model after the run), one input batch, and the training set as loaded.
 *
 * The machine may be shared: every training run records how much CPU other processes used
 * while it ran (/proc/stat busy time minus this job's own CPU time, in cores), each case is
 * repeated --reps times with the cases interleaved, and the best and the median are kept.
 *
 * Output: a table on stdout and, with --json FILE, one JSON line appended to FILE. With
 * --report FILE... (no mpirun) it reads such lines (1-rank and 2-rank runs, any number of
 * rounds) and prints the combined table with 2-rank/1-rank ratios and the verdicts; --ddp FILE
 * adds PyTorch DDP's numbers from bench/ddp_ref.py.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "comm/comm.h"
#include "io/io.h"
#include "nn/nn.h"
#include "trainer/trainer.h"
#include "util/util.h"

#include "bench/bench_util.h"

#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <math.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_REPS 64
#define MIB_FLOATS (1048576 / sizeof(float))

typedef struct {
    int reps;             /* training repetitions per case */
    int reduce_reps;      /* reduction repetitions per variant */
    const char *only;     /* comma-separated: reduce, train, mlp, cnn, resnet34; NULL: all */
    const char *json;     /* append the JSON line here */
    const char *configs;  /* directory of mlp.yaml and cnn.yaml */
    const char *run_dir;  /* where the training runs write */
    double bucket_mb;     /* training: comm.bucket_mb override, 0: the config's */
    double timeout;       /* the collective timeout (reduction: comm_set_timeout; training:
                             comm.timeout_s); < 0: off for reductions, the config's for training */
    int mlp_steps, cnn_steps, resnet18_steps;
    const char *variants; /* training variants to run (overlap, no_overlap, thread, frozen);
                             NULL: all */
} bench_opts;

static double median_of(const double *v, int n)
{
    double s[MAX_REPS * 4];
    if (n <= 0) return 0.0;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof s[0], bench_cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double min_of(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
    return m;
}

static int in_list(const char *list, const char *word)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (!strcmp(tok, word)) return 1;
    return 0;
}

/* --only names sections (reduce, train, memory) and models (mlp, cnn, resnet18, resnet34): a
 * section runs when it is named or no section is (memory only when named), a model when it is
 * named or no model is (resnet18's training only when named). */
static int wanted(const bench_opts *o, const char *section, const char *model)
{
    if (!strcmp(section, "memory") && (!o->only || !in_list(o->only, "memory"))) return 0;
    /* resnet18's steps take seconds: its training runs only when it is named */
    if (!strcmp(section, "train") && !strcmp(model, "resnet18") &&
        (!o->only || !in_list(o->only, "resnet18")))
        return 0;
    if (!o->only) return 1;
    const int any_section = in_list(o->only, "reduce") || in_list(o->only, "train") ||
                            in_list(o->only, "memory");
    const int any_model = in_list(o->only, "mlp") || in_list(o->only, "cnn") ||
                          in_list(o->only, "resnet18") || in_list(o->only, "resnet34");
    return (!any_section || in_list(o->only, section)) && (!any_model || in_list(o->only, model));
}

/* Ends every rank: a benchmark has nothing to recover. */
static void fail(comm *c, const char *what, int rc)
{
    char msg[1400];
    snprintf(msg, sizeof msg, "strata_bench_comm: %s: %s (%s)", what, nn_errmsg(), nn_errname(rc));
    if (c) comm_abort(c, 1, msg);
    fprintf(stderr, "%s\n", msg);
    exit(1);
}

/* ---- other processes' load ---------------------------------------------------------------- */

/* Busy and steal time of the whole machine from /proc/stat, in seconds. */
static void machine_cpu(double *busy, double *steal)
{
    *busy = *steal = 0.0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8) return;
    /* user nice system idle iowait irq softirq steal (guest time is inside user) */
    *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / 100.0;
    *steal = (double)v[7] / 100.0;
}

static double own_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * ru.ru_stime.tv_usec;
}

typedef struct {
    double wall, busy, steal, own;
} load_mark;

static load_mark load_start(void)
{
    load_mark m;
    m.wall = util_now_s();
    machine_cpu(&m.busy, &m.steal);
    m.own = own_cpu();
    return m;
}

/* CPU cores other processes kept busy since m (this job's ranks excluded, summed over all of
 * them), and the hypervisor's steal, in cores. Collective: every rank calls it. */
static void load_end(const load_mark *m, double *other, double *steal)
{
    double busy, st;
    machine_cpu(&busy, &st);
    double own = own_cpu() - m->own, wall = util_now_s() - m->wall;
    MPI_Allreduce(MPI_IN_PLACE, &own, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    double o = (busy - m->busy - own) / wall;
    *other = o > 0.0 ? o : 0.0;
    *steal = (st - m->steal) / wall;
}

/* ---- a) reduction bandwidth --------------------------------------------------------------- */

typedef struct {
    const char *arch;
    int in_c, in_hw, classes, head, small_stem;
} slab_model;

static const slab_model slab_models[] = {
    {"mlp", 1, 28, 10, NN_HEAD_DEFAULT, 0},
    {"cnn", 1, 28, 10, NN_HEAD_DEFAULT, 0},
    /* bench/configs/resnet18.yaml's model: 11.2M parameters */
    {"resnet18", 3, 32, 10, NN_HEAD_ORIGINAL, 1},
    {"resnet34", 3, 224, 1000, NN_HEAD_ORIGINAL, 0}, /* torchvision's 21.8M parameters */
};

/* Bucket sizes in MiB; 0 stands for one bucket per group. */
static const double bucket_mbs[] = {1, 4, 16, 0};
#define NBUCKETS ((int)(sizeof bucket_mbs / sizeof bucket_mbs[0]))
#define NVARIANTS (1 + 2 * NBUCKETS) /* plain, then (bucket, overlap 1/0) pairs */

static double max_over_ranks(double t)
{
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

static void bench_reduce_model(comm *c, const slab_model *sm, const bench_opts *o, util_str *js,
                               int *first)
{
    const int rank = comm_rank(c);
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.arch = sm->arch;
    spec.in_c = sm->in_c;
    spec.in_h = spec.in_w = sm->in_hw;
    spec.classes = sm->classes;
    spec.head = sm->head;
    spec.small_stem = sm->small_stem;
    spec.skip_init = 1;
    nn_model *m;
    int rc = nn_model_init(&m, &spec, NULL);
    if (rc) fail(c, sm->arch, rc);
    const int G = m->ngroups;
    float *slabs[NN_MAX_GROUPS];
    size_t counts[NN_MAX_GROUPS], total = 0, largest = 0;
    int active[NN_MAX_GROUPS];
    for (int g = 0; g < G; g++) {
        slabs[g] = m->groups[g].grad_slab;
        counts[g] = m->groups[g].numel;
        total += counts[g];
        largest = counts[g] > largest ? counts[g] : largest;
        active[g] = 1;
        /* Zeros stay zeros however often they are summed, and every page is touched before
         * timing. */
        for (size_t i = 0; i < counts[g]; i++) slabs[g][i] = 0.0f;
    }
    float *plain = bench_xcalloc("strata_bench_comm", total, sizeof(float)); /* zeros stay zeros */
    comm_reducer *red[2 * NBUCKETS];
    int nbk[NBUCKETS];
    for (int b = 0; b < NBUCKETS; b++) {
        size_t be = bucket_mbs[b] > 0 ? (size_t)(bucket_mbs[b] * MIB_FLOATS) : largest;
        nbk[b] = 0;
        for (int g = 0; g < G; g++) nbk[b] += (int)((counts[g] + be - 1) / be);
        for (int ov = 0; ov < 2; ov++) {
            rc = comm_reducer_init(&red[2 * b + ov], c, G, slabs, counts, NULL, be,
                                   ov == 0 ? COMM_REDUCE_NONBLOCKING : COMM_REDUCE_AFTER);
            if (rc) fail(c, "comm_reducer_init", rc);
        }
    }
    /* An averaging pass over the slabs, timed on its own: what finish would add with a scale
     * other than 1 (the trainer passes 1 since the loss gradient carries the 1/world). */
    double tscale[MAX_REPS * 4];
    static double t[NVARIANTS][MAX_REPS * 4];
    const int R = o->reduce_reps;
    MPI_Barrier(MPI_COMM_WORLD);
    load_mark lm = load_start();
    for (int k = -2; k < R; k++) { /* two warm-up rounds */
        for (int v = 0; v < NVARIANTS; v++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = util_now_s();
            if (v == 0) {
                rc = MPI_Allreduce(MPI_IN_PLACE, plain, (int)total, MPI_FLOAT, MPI_SUM,
                                   MPI_COMM_WORLD);
                if (rc != MPI_SUCCESS) fail(c, "MPI_Allreduce", NN_EMPI);
            } else {
                comm_reducer *r = red[v - 1];
                comm_reducer_begin(r, active);
                for (int g = G - 1; g >= 0 && !rc; g--) rc = comm_reducer_group_done(r, g);
                /* scale 1, as trainer_train calls it (the sum is already the average) */
                if (!rc) rc = comm_reducer_finish(r, 1.0f);
                if (rc) fail(c, "comm_reducer", rc);
            }
            double dt = max_over_ranks(util_now_s() - t0);
            if (k >= 0) t[v][k] = dt;
        }
        double t0 = util_now_s();
        for (int g = 0; g < G; g++) {
            float *x = slabs[g];
            volatile float one = 1.0f; /* the compiler cannot drop x *= s */
            const float s = one;
            for (size_t i = 0; i < counts[g]; i++) x[i] *= s;
        }
        if (k >= 0) tscale[k] = max_over_ranks(util_now_s() - t0);
    }
    double other, steal;
    load_end(&lm, &other, &steal);
    const double bytes = (double)total * sizeof(float);
    const double pbest = min_of(t[0], R), pmed = median_of(t[0], R);
    if (rank == 0) {
        printf("\n%s: %d groups of", sm->arch, G);
        for (int g = G - 1; g >= 0; g--) printf(" %zu%s", counts[g], g ? "," : "");
        printf(" floats (head first), %.2f MB; plain MPI_Allreduce %.3f ms (median %.3f), "
               "%.2f GB/s; averaging pass %.3f ms; other processes' load %.2f cores\n",
               bytes / 1e6, pbest * 1e3, pmed * 1e3, bytes / pmed / 1e9,
               median_of(tscale, R) * 1e3, other);
        printf("| bucket | buckets | reducer overlap ms (median) | %% of plain | reducer blocking ms "
               "(median) | %% of plain |\n|---|---:|---:|---:|---:|---:|\n");
    }
    for (int b = 0; b < NBUCKETS; b++) {
        char name[32];
        if (bucket_mbs[b] > 0)
            snprintf(name, sizeof name, "%g MiB", bucket_mbs[b]);
        else
            snprintf(name, sizeof name, "per group");
        double ob = min_of(t[1 + 2 * b], R), om = median_of(t[1 + 2 * b], R);
        double bb = min_of(t[2 + 2 * b], R), bm = median_of(t[2 + 2 * b], R);
        if (rank == 0) {
            printf("| %s | %d | %.3f (%.3f) | %.0f%% | %.3f (%.3f) | %.0f%% |\n", name, nbk[b], ob * 1e3,
                   om * 1e3, 100.0 * pmed / om, bb * 1e3, bm * 1e3, 100.0 * pmed / bm);
            char key[64];
            if (bucket_mbs[b] > 0)
                snprintf(key, sizeof key, "%g", bucket_mbs[b]);
            else
                snprintf(key, sizeof key, "group");
            for (int ov = 1; ov >= 0; ov--) {
                const double *tv = t[1 + 2 * b + (ov ? 0 : 1)];
                util_str_printf(js, "%s\"reduce.%s.%s.%s\":{\"floats\":%zu,\"buckets\":%d,\"ms\":%.6g,"
                       "\"ms_median\":%.6g,\"plain_ms\":%.6g,\"plain_ms_median\":%.6g,"
                       "\"pct_of_plain\":%.4g}",
                       *first ? "" : ",", sm->arch, key, ov ? "overlap" : "blocking", total, nbk[b],
                       min_of(tv, R) * 1e3, median_of(tv, R) * 1e3, pbest * 1e3, pmed * 1e3,
                       100.0 * pmed / median_of(tv, R));
                *first = 0;
            }
        }
    }
    if (rank == 0) {
        util_str_printf(js, ",\"reduce.%s.plain\":{\"floats\":%zu,\"groups\":%d,\"ms\":%.6g,\"ms_median\":%.6g,"
               "\"gb_per_s\":%.4g,\"scale_ms\":%.6g,\"other_load\":%.3g}",
               sm->arch, total, G, pbest * 1e3, pmed * 1e3, bytes / pmed / 1e9,
               median_of(tscale, R) * 1e3, other);
        fflush(stdout);
    }
    for (int v = 0; v < 2 * NBUCKETS; v++) comm_reducer_free(red[v]);
    free(plain);
    nn_model_free(m);
}

/* MPI itself, without strata: one in-place MPI_Allreduce against one MPI_Iallreduce +
 * MPI_Wait of the same size, which is what the reducer issues with and without overlap. Shows
 * which message sizes the MPI library handles well, and how its nonblocking algorithm
 * compares with its blocking one. */
static void bench_mpi_sizes(comm *c, const bench_opts *o, util_str *js, int *first)
{
    static const double mib[] = {0.25, 1, 4, 16, 64};
    const int rank = comm_rank(c), R = o->reduce_reps;
    if (rank == 0)
        printf("\nMPI alone: in-place sum of one buffer, medians of %d (2 warm-up)\n"
               "| MiB | MPI_Allreduce ms | GB/s | MPI_Iallreduce + MPI_Wait ms | GB/s | Iallreduce/Allreduce "
               "bandwidth |\n|---:|---:|---:|---:|---:|---:|\n",
               R);
    for (size_t i = 0; i < sizeof mib / sizeof mib[0]; i++) {
        const size_t n = (size_t)(mib[i] * MIB_FLOATS);
        float *x = bench_xcalloc("strata_bench_comm", n, sizeof(float));
        double t[2][MAX_REPS * 4];
        for (int k = -2; k < R; k++)
            for (int v = 0; v < 2; v++) {
                MPI_Barrier(MPI_COMM_WORLD);
                double t0 = util_now_s();
                int rc;
                if (v == 0) {
                    rc = MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
                } else {
                    MPI_Request q;
                    rc = MPI_Iallreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &q);
                    if (rc == MPI_SUCCESS) rc = MPI_Wait(&q, MPI_STATUS_IGNORE);
                }
                if (rc != MPI_SUCCESS) fail(c, v ? "MPI_Iallreduce" : "MPI_Allreduce", NN_EMPI);
                double dt = max_over_ranks(util_now_s() - t0);
                if (k >= 0) t[v][k] = dt;
            }
        free(x);
        const double a = median_of(t[0], R), b = median_of(t[1], R), bytes = (double)n * sizeof(float);
        if (rank == 0) {
            printf("| %g | %.3f | %.2f | %.3f | %.2f | %.0f%% |\n", mib[i], a * 1e3, bytes / a / 1e9,
                   b * 1e3, bytes / b / 1e9, 100.0 * a / b);
            util_str_printf(js, "%s\"mpi.%g\":{\"bytes\":%.0f,\"allreduce_ms\":%.6g,\"iallreduce_ms\":%.6g}",
                   *first ? "" : ",", mib[i], bytes, a * 1e3, b * 1e3);
            *first = 0;
        }
    }
    if (rank == 0) fflush(stdout);
}

/* rm -rf path (the bench's own scratch directory). */
static int remove_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(p); /* best effort: what cannot be removed makes strata train say so */
    return 0;
}

static void remove_tree(const char *path)
{
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- b-d) training through trainer_train ------------------------------------------------- */

typedef struct {
    const char *model; /* mlp, cnn */
    const char *variant; /* overlap, no_overlap, thread, frozen */
} train_case;

typedef struct {
    double ms;          /* per step, steady state */
    double ms_window;   /* the median over the log windows (robust to bursts of load) */
    double exposed_ms;  /* per step */
    double bytes;       /* per step, all groups */
    double collectives; /* per step */
    double group_ms[NN_MAX_GROUPS]; /* per step: comm seconds per group */
    int ngroups;
    double other, steal; /* other processes' load, cores */
    int batch, steps;
} train_rep;

/* One metrics.jsonl progress line. */
typedef struct {
    long step;
    double sps, exposed, bytes, coll;
    double gsec[NN_MAX_GROUPS];
    int ng;
} mline;

static int parse_mline(mline *l, const char *s)
{
    const char *p = strstr(s, "\"samples_per_s\": ");
    const char *st = strstr(s, "\"step\": ");
    const char *e = strstr(s, "\"comm_exposed_seconds\": ");
    if (!p || !st || !e) return 0;
    memset(l, 0, sizeof *l);
    l->step = atol(st + 8);
    l->sps = strtod(p + 17, NULL);
    l->exposed = strtod(e + 24, NULL);
    for (const char *g = strstr(s, "{\"group\": "); g && l->ng < NN_MAX_GROUPS;
         g = strstr(g + 1, "{\"group\": ")) {
        const char *b = strstr(g, "\"bytes\": "), *c = strstr(g, "\"collectives\": "),
                   *sec = strstr(g, "\"seconds\": ");
        if (!b || !c || !sec) break;
        l->bytes += strtod(b + 9, NULL);
        l->coll += strtod(c + 15, NULL);
        l->gsec[l->ng++] = strtod(sec + 11, NULL);
    }
    return 1;
}

/* Steady-state numbers from rank 0's metrics.jsonl: the first log line (warm-up) is dropped,
 * the rest give the per-step differences. */
static int read_metrics(train_rep *out, const char *path, int batch, int world)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[8192];
    mline first = {0}, last = {0}, cur;
    double win[MAX_REPS * 4], tprev = 0.0;
    long sprev = 0;
    int n = 0, nw = 0;
    while (fgets(line, sizeof line, f))
        if (parse_mline(&cur, line)) {
            /* a line's cumulative samples/s gives the time since the epoch started */
            const double t = (double)cur.step * batch * world / cur.sps;
            if (n == 1) first = cur;
            if (n >= 2 && nw < MAX_REPS * 4 && cur.step > sprev)
                win[nw++] = (t - tprev) / (double)(cur.step - sprev) * 1e3;
            if (n >= 1) last = cur;
            tprev = t;
            sprev = cur.step;
            n++;
        }
    fclose(f);
    if (n < 3 || last.step <= first.step) return -1;
    const double steps = (double)(last.step - first.step);
    const double t1 = (double)first.step * batch * world / first.sps;
    const double t2 = (double)last.step * batch * world / last.sps;
    out->ms = (t2 - t1) / steps * 1e3;
    out->ms_window = median_of(win, nw);
    out->exposed_ms = (last.exposed - first.exposed) / steps * 1e3;
    out->bytes = (last.bytes - first.bytes) / steps;
    out->collectives = (last.coll - first.coll) / steps;
    out->ngroups = last.ng;
    for (int g = 0; g < last.ng; g++) out->group_ms[g] = (last.gsec[g] - first.gsec[g]) / steps * 1e3;
    out->steps = (int)steps;
    return 0;
}

/* The training models, each with its bench/configs/<model>.yaml. */
static const char *const train_models[] = {"mlp", "cnn", "resnet18"};
#define NTRAIN_MODELS ((int)(sizeof train_models / sizeof train_models[0]))

static int model_steps(const bench_opts *o, const char *model)
{
    return !strcmp(model, "mlp") ? o->mlp_steps : !strcmp(model, "cnn") ? o->cnn_steps : o->resnet18_steps;
}

static void run_train(comm *c, const bench_opts *o, const train_case *tc, int rep, train_rep *out)
{
    const int rank = comm_rank(c), world = comm_size(c);
    const int steps = model_steps(o, tc->model);
    char path[1024], dir[1024], sets[10][1100];
    const char *setp[10];
    int ns = 0;
    snprintf(path, sizeof path, "%s/%s.yaml", o->configs, tc->model);
    snprintf(dir, sizeof dir, "%s/np%d-%s-%s", o->run_dir, world, tc->model, tc->variant);
    snprintf(sets[ns++], sizeof sets[0], "train.max_steps=%d", steps);
    /* at least 3 progress lines after the first (dropped) one */
    snprintf(sets[ns++], sizeof sets[0], "train.log_every=%d", steps >= 100 ? 10 : steps >= 30 ? 5 : 2);
    snprintf(sets[ns++], sizeof sets[0], "comm.overlap=%s",
             strcmp(tc->variant, "no_overlap") ? "true" : "false");
    snprintf(sets[ns++], sizeof sets[0], "comm.progress=%s",
             strcmp(tc->variant, "thread") ? "nonblocking" : "thread");
    snprintf(sets[ns++], sizeof sets[0], "groups.freeze_to=%d", strcmp(tc->variant, "frozen") ? 0 : -1);
    if (!strcmp(tc->variant, "frozen")) {
        /* bench/ddp_ref.py's world2_frozen: only the head trains, the body's BatchNorm in eval
         * mode (fastai's train_bn would also train the body's BatchNorm, through a backward
         * of the whole body, which the twin does not do) */
        snprintf(sets[ns++], sizeof sets[0], "groups.train_bn=false");
        snprintf(sets[ns++], sizeof sets[0], "groups.bn_freeze=true");
    }
    snprintf(sets[ns++], sizeof sets[0], "run.dir=%s", dir);
    if (o->bucket_mb > 0) snprintf(sets[ns++], sizeof sets[0], "comm.bucket_mb=%g", o->bucket_mb);
    if (o->timeout >= 0) snprintf(sets[ns++], sizeof sets[0], "comm.timeout_s=%g", o->timeout);
    for (int i = 0; i < ns; i++) setp[i] = sets[i];
    io_config cfg;
    int rc = trainer_config_load(&cfg, path, setp, ns);
    rc = comm_agree(c, rc, NULL);
    if (rc) fail(c, path, rc);
    FILE *log = NULL;
    if (rank == 0) {
        char lp[1100];
        if (util_mkdirs(o->run_dir)) {
            fprintf(stderr, "strata_bench_comm: %s\n", nn_errmsg());
            comm_abort(c, 1, "run dir");
        }
        /* strata train refuses a run.dir that holds a run's checkpoints: each repetition
         * starts from an empty one (the last repetition's stays for KEEP). */
        remove_tree(dir);
        snprintf(lp, sizeof lp, "%s/np%d-%s-%s.log", o->run_dir, world, tc->model, tc->variant);
        log = fopen(lp, "w");
        if (!log) log = fopen("/dev/null", "w");
    }
    MPI_Barrier(MPI_COMM_WORLD);
    load_mark lm = load_start();
    rc = trainer_train(&cfg, c, log);
    double other, steal;
    load_end(&lm, &other, &steal);
    if (log) fclose(log);
    if (rc) fail(c, "strata train", rc);
    memset(out, 0, sizeof *out);
    out->other = other;
    out->steal = steal;
    out->batch = cfg.data.batch_size;
    if (rank == 0) {
        char mp[1100];
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", dir);
        /* samples/s counts every micro-batch of a step */
        if (read_metrics(out, mp, cfg.data.batch_size * cfg.train.accumulate, world)) {
            fprintf(stderr, "strata_bench_comm: %s has too few progress lines\n", mp);
            comm_abort(c, 1, "metrics");
        }
        fprintf(stderr, "strata_bench_comm: np%d %s %-10s run %d: %8.3f ms/step (windows' median "
                "%.3f), exposed %.3f ms, %.0f bytes/step, other load %.2f cores\n",
                world, tc->model, tc->variant, rep + 1, out->ms, out->ms_window, out->exposed_ms,
                out->bytes, other);
    }
}

static void bench_train(comm *c, const bench_opts *o, util_str *js, int *first)
{
    const int rank = comm_rank(c), world = comm_size(c);
    train_case cases[4 * NTRAIN_MODELS];
    int nc = 0;
    /* --variants: a variant runs when it is listed or no list was given */
#define VARIANT(v) (!o->variants || in_list(o->variants, v))
    for (int mi = 0; mi < NTRAIN_MODELS; mi++) {
        const char *model = train_models[mi];
        if (!wanted(o, "train", model)) continue;
        if (VARIANT("overlap")) cases[nc++] = (train_case){model, "overlap"};
        /* On one rank the reducer sends nothing either way. */
        if (world > 1 && VARIANT("no_overlap")) cases[nc++] = (train_case){model, "no_overlap"};
        /* Overlap by the reducer's communication thread (comm.progress: thread). */
        if (world > 1 && VARIANT("thread")) cases[nc++] = (train_case){model, "thread"};
        if (VARIANT("frozen")) cases[nc++] = (train_case){model, "frozen"};
    }
#undef VARIANT
    if (!nc) return;
    static train_rep reps[4 * NTRAIN_MODELS][MAX_REPS];
    for (int k = 0; k < o->reps; k++)
        for (int i = 0; i < nc; i++) run_train(c, o, &cases[i], k, &reps[i][k]);
    if (rank) return;
    printf("\nTraining (strata train, bench/configs/*.yaml), %d rank(s): steady-state step, best "
           "and median of %d runs\n",
           world, o->reps);
    printf("| model | variant | batch/rank | steps | ms/step (median) | best window median ms | "
           "samples/s | exposed comm ms/step (median) | comm ms/step per group (head first) | "
           "bytes/step | collectives/step | other load, cores |\n"
           "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|\n");
    for (int i = 0; i < nc; i++) {
        double ms[MAX_REPS], ex[MAX_REPS], other[MAX_REPS], mw[MAX_REPS];
        int best = 0;
        for (int k = 0; k < o->reps; k++) {
            ms[k] = reps[i][k].ms;
            mw[k] = reps[i][k].ms_window;
            ex[k] = reps[i][k].exposed_ms;
            other[k] = reps[i][k].other;
            if (ms[k] < ms[best]) best = k;
        }
        const train_rep *b = &reps[i][best];
        const double sps = (double)b->batch * world / (b->ms * 1e-3);
        char gm[256] = "";
        for (int g = b->ngroups - 1, n = 0; g >= 0; g--)
            n += snprintf(gm + n, sizeof gm - (size_t)n, "%s%.3f", g == b->ngroups - 1 ? "" : ", ",
                          b->group_ms[g]);
        double omax = other[0];
        for (int k = 1; k < o->reps; k++) omax = other[k] > omax ? other[k] : omax;
        printf("| %s | %s | %d | %d | %.3f (%.3f) | %.3f | %.0f | %.3f (%.3f) | %s | %.0f | %.1f | "
               "%.2f (runs: %.2f-%.2f) |\n",
               cases[i].model, cases[i].variant, b->batch, b->steps, b->ms, median_of(ms, o->reps),
               min_of(mw, o->reps), sps, b->exposed_ms, median_of(ex, o->reps), gm, b->bytes, b->collectives, b->other,
               min_of(other, o->reps), omax);
        util_str_printf(js, "%s\"train.%s.%s\":{\"batch\":%d,\"steps\":%d,\"ms_per_step\":%.6g,"
               "\"ms_per_step_median\":%.6g,\"samples_per_s\":%.6g,\"exposed_ms\":%.6g,"
               "\"exposed_ms_median\":%.6g,\"bytes_per_step\":%.6g,\"collectives_per_step\":%.4g,"
               "\"other_load\":%.3g,\"other_load_median\":%.3g,\"steal\":%.3g,"
               "\"ms_per_step_window\":%.6g",
               *first ? "" : ",", cases[i].model, cases[i].variant, b->batch, b->steps, b->ms,
               median_of(ms, o->reps), sps, b->exposed_ms, median_of(ex, o->reps), b->bytes,
               b->collectives, b->other, median_of(other, o->reps), b->steal, min_of(mw, o->reps));
        for (int g = 0; g < b->ngroups; g++) util_str_printf(js, ",\"group%d_ms\":%.6g", g, b->group_ms[g]);
        util_str_printf(js, "}");
        *first = 0;
    }
    fflush(stdout);
}

/* ---- e) peak memory per rank against what the model needs ---------------------------------- */

/* A line of /proc/self/status ("VmRSS:", "VmHWM:"), in KiB; 0 when absent. */
static double proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0.0;
    char line[256];
    double v = 0.0;
    const size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, n)) {
            v = atof(line + n);
            break;
        }
    fclose(f);
    return v;
}

/* The bytes of every y and dx tensor a layer subtree owns (views, cap 0, own nothing). */
static size_t layer_tensor_bytes(const nn_layer *l)
{
    size_t b = (l->y.cap + l->dx.cap) * sizeof(float);
    for (int i = 0; i < l->nkids; i++) b += layer_tensor_bytes(l->kids[i]);
    return b;
}

typedef struct {
    double params, grads, opt;  /* parameter slabs, gradient slabs, optimizer state */
    double act_visible;         /* every layer's y and dx, and the model's dlogits */
    double act_internal;        /* what layers keep besides: max-pool indices, residual blocks'
                                   activations and gradient staging, im2col workspace, BN stats */
    double input;               /* one batch of inputs and labels */
    double data;                /* the training set as held in memory, on every rank */
    double need;                /* the sum */
} mem_need;

/* What training cfg's model needs on one rank, in bytes: builds the same model and optimizer
 * as trainer_train, runs training steps at the batch size and measures the heap they took
 * (mallinfo2: every allocation, big mmap'd ones included) besides what the walk of the layers
 * sees; the data set's size from loading it as the trainer does. */
static int memory_need(mem_need *nd, const io_config *cfg)
{
    memset(nd, 0, sizeof *nd);
    io_synthetic_opts syn = {cfg->data.synthetic.samples, cfg->data.synthetic.classes,
                             cfg->data.synthetic.input[0], cfg->data.synthetic.input[1],
                             cfg->data.synthetic.input[2], cfg->data.synthetic.seed};
    io_dataset ds;
    memset(&ds, 0, sizeof ds);
    int rc = io_data_open(&ds, cfg->data.train, cfg->data.dir, 1, &syn);
    if (rc) return rc;
    const double pix = (double)ds.n * ds.c * ds.h * ds.w;
    nd->data = pix * (ds.images ? 1.0 : sizeof(float)) + (double)ds.n * sizeof(int32_t);
    nn_model_spec spec;
    rc = trainer_model_spec(&spec, cfg, ds.c, ds.h, ds.w, ds.classes);
    io_dataset_free(&ds);
    if (rc) return rc;

    const int N = cfg->data.batch_size;
    nn_tensor x = {0}, dlogits = {0};
    int32_t *labels = bench_xcalloc("strata_bench_comm", (size_t)N, sizeof(int32_t));
    rc = nn_tensor_resize(&x, N, spec.in_c, spec.in_h, spec.in_w);
    if (!rc) rc = nn_tensor_resize(&dlogits, N, spec.classes, 1, 1);
    if (rc) {
        nn_tensor_free(&x);
        free(labels);
        return rc;
    }
    nn_rng rng;
    nn_rng_seed(&rng, 3);
    nn_rng_fill_normal(&rng, x.data, nn_tensor_numel(&x), 1.0f);
    for (int i = 0; i < N; i++) labels[i] = (int32_t)(nn_rng_next(&rng) % (uint64_t)spec.classes);
    nd->input = (double)nn_tensor_numel(&x) * sizeof(float) + (double)N * sizeof(int32_t);

    struct mallinfo2 before = mallinfo2();
    nn_model *m = NULL;
    trainer_opt opt;
    int type = TRAINER_OPT_SGD, have_opt = 0;
    rc = nn_model_init(&m, &spec, &rng);
    if (!rc) rc = trainer_opt_parse_type(&type, cfg->optimizer.type);
    if (!rc) rc = trainer_opt_init(&opt, m, type, cfg->optimizer.nesterov, cfg->optimizer.beta2,
                                   cfg->optimizer.eps, cfg->optimizer.decay_bn_bias);
    have_opt = rc == 0;
    if (!rc) rc = nn_model_freeze_to(m, cfg->groups.freeze_to, NULL);
    if (!rc) {
        nn_model_set_train_bn(m, cfg->groups.train_bn);
        nn_model_set_training(m, 1);
    }
    float lr[NN_MAX_GROUPS], mom[NN_MAX_GROUPS], wd[NN_MAX_GROUPS];
    for (int g = 0; g < NN_MAX_GROUPS; g++) lr[g] = 1e-3f, mom[g] = 0.9f, wd[g] = 0.0f;
    nn_ctx ctx = {&rng};
    for (int step = 0; step < 2 && !rc; step++) { /* the second step allocates nothing new */
        const nn_tensor *logits;
        float loss;
        rc = nn_model_forward(&logits, m, &x, &ctx);
        if (!rc) rc = nn_cross_entropy(&loss, &dlogits, NULL, logits, labels);
        if (!rc) {
            nn_model_zero_grad(m);
            rc = nn_model_backward(m, &dlogits);
        }
        if (!rc) trainer_opt_step(&opt, m, lr, mom, wd);
    }
    if (!rc) {
        struct mallinfo2 after = mallinfo2();
        const double heap = (double)(after.uordblks + after.hblkhd) - (double)(before.uordblks + before.hblkhd);
        for (int g = 0; g < m->ngroups; g++) {
            nd->params += (double)m->groups[g].numel * sizeof(float);
            nd->grads += (double)m->groups[g].numel * sizeof(float);
            if (opt.state1[g]) nd->opt += (double)m->groups[g].numel * sizeof(float);
            if (opt.state2[g]) nd->opt += (double)m->groups[g].numel * sizeof(float);
        }
        nd->act_visible = (double)(layer_tensor_bytes(m->body) + layer_tensor_bytes(m->head) +
                                   m->dlogits.cap * sizeof(float));
        nd->act_internal = heap - nd->params - nd->grads - nd->opt - nd->act_visible;
        if (nd->act_internal < 0) nd->act_internal = 0;
        nd->need = nd->params + nd->grads + nd->opt + nd->act_visible + nd->act_internal +
                   nd->input + nd->data;
    }
    if (have_opt) trainer_opt_free(&opt);
    nn_model_free(m);
    nn_tensor_free(&x);
    nn_tensor_free(&dlogits);
    free(labels);
    return rc;
}

/* Peak resident memory of every rank over one short training run (trainer_train, overlap
 * on), against memory_need. Run one model per process (bench/run does): ru_maxrss is the
 * process's peak, so a second model here would be measured on top of the first. */
static void bench_memory(comm *c, const bench_opts *o, const double *start_kib, util_str *js,
                         int *first)
{
    const int rank = comm_rank(c), world = comm_size(c);
    int done = 0;
    for (int mi = 0; mi < NTRAIN_MODELS; mi++) {
        const char *model = train_models[mi];
        if (!wanted(o, "memory", model)) continue;
        if (done++ && rank == 0)
            fprintf(stderr, "strata_bench_comm: memory of %s is measured after another model's in "
                    "the same process: its peak includes the earlier one's (use one model per run)\n",
                    model);
        const int steps = !strcmp(model, "mlp") ? 20 : !strcmp(model, "cnn") ? 8 : 3;
        char path[1024], dir[1024], sets[3][1100];
        const char *setp[3];
        snprintf(path, sizeof path, "%s/%s.yaml", o->configs, model);
        snprintf(dir, sizeof dir, "%s/np%d-%s-memory", o->run_dir, world, model);
        snprintf(sets[0], sizeof sets[0], "train.max_steps=%d", steps);
        snprintf(sets[1], sizeof sets[1], "train.log_every=%d", steps);
        snprintf(sets[2], sizeof sets[2], "run.dir=%s", dir);
        for (int i = 0; i < 3; i++) setp[i] = sets[i];
        io_config cfg;
        int rc = trainer_config_load(&cfg, path, setp, 3);
        rc = comm_agree(c, rc, NULL);
        if (rc) fail(c, path, rc);
        FILE *log = NULL;
        if (rank == 0) {
            char lp[1100];
            if (util_mkdirs(o->run_dir)) comm_abort(c, 1, nn_errmsg());
            remove_tree(dir); /* strata train refuses a run.dir holding a run's checkpoints */
            snprintf(lp, sizeof lp, "%s/np%d-%s-memory.log", o->run_dir, world, model);
            log = fopen(lp, "w");
            if (!log) log = fopen("/dev/null", "w");
        }
        MPI_Barrier(MPI_COMM_WORLD);
        rc = trainer_train(&cfg, c, log);
        if (log) fclose(log);
        if (rc) fail(c, "strata train", rc);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        /* KiB: the peak, then at the start VmRSS, RssAnon, RssFile, RssShmem */
        double mine[5] = {(double)ru.ru_maxrss, start_kib[0], start_kib[1], start_kib[2], start_kib[3]};
        double all[5 * 64] = {0};
        if (world > 64) fail(c, "memory: more than 64 ranks", NN_ERANGE);
        MPI_Gather(mine, 5, MPI_DOUBLE, all, 5, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        mem_need nd;
        rc = memory_need(&nd, &cfg);
        rc = comm_agree(c, rc, NULL);
        if (rc) fail(c, "memory need", rc);
        if (rank) continue;
        printf("\nPeak memory, %s, batch %d per rank, %d steps on %d rank(s) (ru_maxrss):\n", model,
               cfg.data.batch_size, steps, world);
        printf("  need %.1f MB = parameters %.1f + gradients %.1f + optimizer state %.1f + layer "
               "outputs and input gradients (y, dx) %.1f + other tensors layers keep (saved "
               "indices, block activations, im2col workspace) %.1f + one input batch %.1f + "
               "the training set %.1f\n",
               nd.need / 1e6, nd.params / 1e6, nd.grads / 1e6, nd.opt / 1e6, nd.act_visible / 1e6,
               nd.act_internal / 1e6, nd.input / 1e6, nd.data / 1e6);
        util_str_printf(js, "%s\"memory.%s\":{\"batch\":%d,\"steps\":%d,\"params_bytes\":%.0f,\"grads_bytes\":%.0f,"
               "\"opt_bytes\":%.0f,\"act_visible_bytes\":%.0f,\"act_internal_bytes\":%.0f,"
               "\"input_bytes\":%.0f,\"data_bytes\":%.0f,\"need_bytes\":%.0f,\"ranks\":[",
               *first ? "" : ",", model, cfg.data.batch_size, steps, nd.params, nd.grads, nd.opt,
               nd.act_visible, nd.act_internal, nd.input, nd.data, nd.need);
        *first = 0;
        for (int r = 0; r < world; r++) {
            const double *a = all + 5 * r;
            const double peak = a[0] * 1024.0, start = a[1] * 1024.0;
            printf("  rank %d: peak %.1f MB (%.2fx the need); %.1f MB at start (anonymous %.1f, "
                   "files/libraries %.1f, shared memory %.1f), peak - start %.1f MB (%.2fx)\n",
                   r, peak / 1e6, peak / nd.need, start / 1e6, a[2] * 1.024e-3, a[3] * 1.024e-3,
                   a[4] * 1.024e-3, (peak - start) / 1e6, (peak - start) / nd.need);
            util_str_printf(js, "%s{\"peak_bytes\":%.0f,\"start_bytes\":%.0f,\"start_anon_bytes\":%.0f,"
                   "\"start_file_bytes\":%.0f,\"start_shmem_bytes\":%.0f,\"ratio\":%.4g}",
                   r ? "," : "", peak, start, a[2] * 1024.0, a[3] * 1024.0, a[4] * 1024.0,
                   peak / nd.need);
        }
        util_str_printf(js, "]}");
        fflush(stdout);
    }
}

/* ---- --report: the 1-rank and 2-rank JSON lines (and DDP's) in one table ------------------ */

#define MAX_LINES 64

typedef struct {
    char *lines[MAX_LINES];
    int world[MAX_LINES];
    int n;
    char *ddp; /* ddp_ref.py's JSON line, NULL when absent */
} report_in;

/* The number `field` inside the flat object "key":{...} of a JSON line; NAN when absent. */
static double jget(const char *line, const char *key, const char *field)
{
    if (!line) return NAN;
    char k[128];
    snprintf(k, sizeof k, "\"%s\":{", key);
    const char *p = strstr(line, k);
    if (!p) return NAN;
    const char *end = strchr(p + strlen(k), '}');
    snprintf(k, sizeof k, "\"%s\":", field);
    const char *f = strstr(p + 1, k);
    if (!f || (end && f > end)) return NAN;
    return strtod(f + strlen(k), NULL);
}

/* Over the lines of one world size: the smallest value of field (min = 1), or the median. */
static double over_lines(const report_in *in, int world, const char *key, const char *field,
                         int min)
{
    double v[MAX_LINES];
    int n = 0;
    for (int i = 0; i < in->n; i++) {
        if (in->world[i] != world) continue;
        double x = jget(in->lines[i], key, field);
        if (!isnan(x)) v[n++] = x;
    }
    if (!n) return NAN;
    return min ? min_of(v, n) : median_of(v, n);
}

/* The field from the line (of this world size) where key's ms_per_step was lowest. */
static double at_best(const report_in *in, int world, const char *key, const char *field)
{
    double best = INFINITY, v = NAN;
    for (int i = 0; i < in->n; i++) {
        if (in->world[i] != world) continue;
        double ms = jget(in->lines[i], key, "ms_per_step");
        if (!isnan(ms) && ms < best) {
            best = ms;
            v = jget(in->lines[i], key, field);
        }
    }
    return v;
}

static int count_world(const report_in *in, int world)
{
    int n = 0;
    for (int i = 0; i < in->n; i++) n += in->world[i] == world;
    return n;
}

static void fmt(char *buf, size_t len, const char *f, double x)
{
    if (isnan(x))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, f, x);
}

static int report(const char *const *files, int nfiles, const char *ddp_path)
{
    report_in in = {0};
    for (int f = 0; f < nfiles; f++) {
        char *text;
        if (util_read_file(&text, NULL, files[f], 0)) {
            fprintf(stderr, "strata_bench_comm: %s\n", nn_errmsg());
            return 1;
        }
        for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n"))
            if (!strncmp(l, "{\"bench\":\"comm\"", 15) && in.n < MAX_LINES) {
                in.lines[in.n] = strdup(l);
                const char *w = strstr(l, "\"world\":");
                in.world[in.n++] = w ? atoi(w + 8) : 0;
            }
        free(text);
    }
    if (ddp_path) {
        char *t = NULL;
        (void)util_read_file(&t, NULL, ddp_path, 0); /* absent: said below */
        char *l = t ? (t[0] == '{' ? t : strstr(t, "\n{")) : NULL;
        if (l && strstr(l, "\"results\""))
            in.ddp = t;
        else {
            fprintf(stderr, "strata_bench_comm: %s holds no ddp_ref.py JSON; DDP columns left empty\n",
                    ddp_path);
            free(t);
        }
    }
    const int n1 = count_world(&in, 1), n2 = count_world(&in, 2);
    printf("strata_bench_comm report: %d one-rank run(s), %d two-rank run(s)%s\n", n1, n2,
           in.ddp ? ", PyTorch DDP (gloo) from bench/ddp_ref.py" : ", PyTorch DDP not measured");
    if (in.ddp) {
        char ver[32] = "?";
        const char *v = strstr(in.ddp, "\"torch\":\"");
        if (v) sscanf(v + 9, "%31[^\"]", ver);
        printf("PyTorch %s, gloo, 1 thread per process\n", ver);
    }

    /* a) reduction bandwidth */
    static const char *const archs[] = {"mlp", "cnn", "resnet18", "resnet34"};
    static const char *const bks[] = {"1", "4", "16", "group"};
    int red_ok = 1, red_any = 0;
    printf("\n## Reduction bandwidth, 2 ranks: comm_reducer (begin, group_done head first, finish) "
           "against one MPI_Allreduce of the same bytes\n\n");
    printf("Medians of the repetitions; with several rounds, the median over rounds (range in "
           "brackets).\n\n");
    printf("| model | MB | plain MPI_Allreduce ms (GB/s) | bucket | buckets | overlap (Iallreduce) "
           "%% of plain | blocking (Allreduce) %% of plain |\n|---|---:|---:|---|---:|---:|---:|\n");
    for (int a = 0; a < 4; a++) {
        char key[64];
        snprintf(key, sizeof key, "reduce.%s.plain", archs[a]);
        double floats = over_lines(&in, 2, key, "floats", 0);
        if (isnan(floats)) continue;
        double pms = over_lines(&in, 2, key, "ms_median", 0), gbs = over_lines(&in, 2, key, "gb_per_s", 0);
        for (int b = 0; b < 4; b++) {
            char cells[2][64];
            double nb = NAN;
            for (int ov = 0; ov < 2; ov++) {
                snprintf(key, sizeof key, "reduce.%s.%s.%s", archs[a], bks[b], ov ? "blocking" : "overlap");
                double med = over_lines(&in, 2, key, "pct_of_plain", 0);
                double lo = over_lines(&in, 2, key, "pct_of_plain", 1);
                double hi = NAN; /* the largest over rounds */
                for (int i = 0; i < in.n; i++) {
                    if (in.world[i] != 2) continue;
                    double x = jget(in.lines[i], key, "pct_of_plain");
                    if (!isnan(x) && (isnan(hi) || x > hi)) hi = x;
                }
                nb = over_lines(&in, 2, key, "buckets", 0);
                if (n2 > 1)
                    snprintf(cells[ov], sizeof cells[ov], "%.0f%% [%.0f-%.0f]", med, lo, hi);
                else
                    fmt(cells[ov], sizeof cells[ov], "%.0f%%", med);
                if (!isnan(med)) {
                    red_any = 1;
                    if (ov == 0 && b == 1 && med < 95.0) red_ok = 0; /* the default: 4 MiB, overlap */
                }
            }
            char bname[32];
            snprintf(bname, sizeof bname, b < 3 ? "%s MiB" : "one per group", bks[b]);
            printf("| %s | %.2f | %.3f (%.2f) | %s | %.0f | %s | %s |\n", archs[a], floats * 4e-6, pms,
                   gbs, bname, nb, cells[0], cells[1]);
        }
    }

    {
        static const char *const sizes[] = {"0.25", "1", "4", "16", "64"};
        int any = 0;
        for (int i = 0; i < 5; i++) {
            char key[32];
            snprintf(key, sizeof key, "mpi.%s", sizes[i]);
            double bytes = over_lines(&in, 2, key, "bytes", 0);
            if (isnan(bytes)) continue;
            if (!any)
                printf("\nMPI alone, one buffer (medians over rounds of medians):\n\n| MiB | "
                       "MPI_Allreduce GB/s | MPI_Iallreduce + MPI_Wait GB/s |\n|---:|---:|---:|\n");
            any = 1;
            printf("| %s | %.2f | %.2f |\n", sizes[i],
                   bytes / over_lines(&in, 2, key, "allreduce_ms", 0) / 1e6,
                   bytes / over_lines(&in, 2, key, "iallreduce_ms", 0) / 1e6);
        }
    }

    /* b) throughput */
    printf("\n## Throughput: 2 ranks over 1 rank (strata train)\n\n");
    printf("samples/s of all ranks: the best run (the median run in brackets); 'other load' is the "
           "CPU other processes used during the best runs, in cores (1 rank / 2 ranks with "
           "overlap).\n\n");
    printf("| model | batch/rank | strata 1 rank | strata 2 ranks, overlap on (nonblocking) | 2/1 | "
           "strata 2 ranks, overlap on (thread) | 2/1 | strata 2 ranks, overlap off | 2/1 | other "
           "load | DDP 1 process | DDP 2 ranks | DDP 2/1 | issue's DDP 2/1 | target >= 1.9x "
           "(overlap on, nonblocking) |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    static const char *const *const models = train_models;
    static const double issue_ddp[NTRAIN_MODELS] = {0.69, 1.88, NAN}; /* resnet18: none given */
    double ratio[NTRAIN_MODELS] = {NAN, NAN, NAN};
    for (int mi = 0; mi < NTRAIN_MODELS; mi++) {
        char k1[64], k0[64], kt[64];
        snprintf(k1, sizeof k1, "train.%s.overlap", models[mi]);
        snprintf(k0, sizeof k0, "train.%s.no_overlap", models[mi]);
        snprintf(kt, sizeof kt, "train.%s.thread", models[mi]);
        double b = at_best(&in, 1, k1, "batch");
        if (isnan(b)) b = at_best(&in, 2, k1, "batch");
        /* samples/s of the best run and of the median run (from the median step time) */
        double s1 = at_best(&in, 1, k1, "samples_per_s"), s2 = at_best(&in, 2, k1, "samples_per_s");
        double s0 = at_best(&in, 2, k0, "samples_per_s"), st = at_best(&in, 2, kt, "samples_per_s");
        double m1 = b / (over_lines(&in, 1, k1, "ms_per_step_median", 0) * 1e-3);
        double m2 = 2 * b / (over_lines(&in, 2, k1, "ms_per_step_median", 0) * 1e-3);
        double m0 = 2 * b / (over_lines(&in, 2, k0, "ms_per_step_median", 0) * 1e-3);
        double mt = 2 * b / (over_lines(&in, 2, kt, "ms_per_step_median", 0) * 1e-3);
        if (isnan(s1) && isnan(s2)) continue;
        ratio[mi] = s2 / s1;
        double dsingle = jget(in.ddp, models[mi], "single_samples_per_s");
        double d2 = jget(in.ddp, models[mi], "world2_samples_per_s");
        char c[11][64];
        snprintf(c[0], 64, "%.0f (%.0f)", s1, m1);
        snprintf(c[1], 64, "%.0f (%.0f)", s2, m2);
        snprintf(c[2], 64, "%.2fx (%.2fx)", s2 / s1, m2 / m1);
        snprintf(c[3], 64, "%.0f (%.0f)", s0, m0);
        snprintf(c[4], 64, "%.2fx (%.2fx)", s0 / s1, m0 / m1);
        snprintf(c[5], 64, "%.2f / %.2f", at_best(&in, 1, k1, "other_load"),
                 at_best(&in, 2, k1, "other_load"));
        fmt(c[6], 64, "%.0f", dsingle);
        fmt(c[7], 64, "%.0f", d2);
        fmt(c[8], 64, "%.2fx", d2 / dsingle);
        snprintf(c[9], 64, "%.0f (%.0f)", st, mt);
        snprintf(c[10], 64, "%.2fx (%.2fx)", st / s1, mt / m1);
        for (int i = 0; i < 11; i++)
            if (strstr(c[i], "nan")) snprintf(c[i], 64, "-");
        char issue[16];
        fmt(issue, sizeof issue, "%.2fx", issue_ddp[mi]);
        printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
               models[mi], b, c[0], c[1], c[2], c[9], c[10], c[3], c[4], c[5], c[6], c[7], c[8],
               issue,
               isnan(ratio[mi]) ? "not measured" : ratio[mi] >= 1.9 ? "met" : "NOT met");
    }

    /* c) exposed communication */
    printf("\n## Exposed communication per step, 2 ranks (best run; median run in brackets)\n\n");
    printf("| model | overlap | ms/step | exposed ms/step | exposed share | comm ms/step per group, "
           "head first (first bucket start to last completion) | bytes/step | collectives/step |\n"
           "|---|---|---:|---:|---:|---|---:|---:|\n");
    /* The 2-rank training variants: key suffix and how the table names them. */
    static const char *const vkeys[] = {"overlap", "thread", "no_overlap"};
    static const char *const vnames[] = {"on (nonblocking)", "on (thread)", "off"};
    for (int mi = 0; mi < NTRAIN_MODELS; mi++)
        for (int v = 0; v < 3; v++) {
            char key[64];
            snprintf(key, sizeof key, "train.%s.%s", models[mi], vkeys[v]);
            double ms = at_best(&in, 2, key, "ms_per_step");
            if (isnan(ms)) continue;
            double ex = at_best(&in, 2, key, "exposed_ms");
            char gm[128] = "";
            for (int g = NN_MAX_GROUPS - 1, n = 0; g >= 0; g--) {
                char f[16];
                snprintf(f, sizeof f, "group%d_ms", g);
                double x = at_best(&in, 2, key, f);
                if (!isnan(x)) n += snprintf(gm + n, sizeof gm - (size_t)n, "%s%.3f", n ? ", " : "", x);
            }
            printf("| %s | %s | %.3f (%.3f) | %.3f (%.3f) | %.0f%% | %s | %.0f | %.1f |\n", models[mi],
                   vnames[v], ms, over_lines(&in, 2, key, "ms_per_step_median", 0), ex,
                   over_lines(&in, 2, key, "exposed_ms_median", 0), 100.0 * ex / ms, gm,
                   at_best(&in, 2, key, "bytes_per_step"), at_best(&in, 2, key, "collectives_per_step"));
        }

    /* d) frozen body */
    printf("\n## Body frozen (freeze_to -1) against unfrozen (best run; median run in brackets)\n\n");
    printf("| model | ranks | unfrozen ms/step | unfrozen bytes/step | frozen ms/step | frozen "
           "bytes/step | frozen exposed ms/step | step time frozen/unfrozen |\n"
           "|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int mi = 0; mi < NTRAIN_MODELS; mi++)
        for (int w = 1; w <= 2; w++) {
            char ku[64], kf[64];
            snprintf(ku, sizeof ku, "train.%s.overlap", models[mi]);
            snprintf(kf, sizeof kf, "train.%s.frozen", models[mi]);
            double mu = at_best(&in, w, ku, "ms_per_step"), mf = at_best(&in, w, kf, "ms_per_step");
            if (isnan(mu) || isnan(mf)) continue;
            printf("| %s | %d | %.3f (%.3f) | %.0f | %.3f (%.3f) | %.0f | %.3f | %.2f |\n", models[mi], w,
                   mu, over_lines(&in, w, ku, "ms_per_step_median", 0), at_best(&in, w, ku, "bytes_per_step"),
                   mf, over_lines(&in, w, kf, "ms_per_step_median", 0), at_best(&in, w, kf, "bytes_per_step"),
                   at_best(&in, w, kf, "exposed_ms"), mf / mu);
        }

    /* Where a 2-rank step's extra time goes: the exposed communication (waiting in finish,
     * which includes waiting for the slower rank), and the rest, which is compute slowed by
     * sharing the machine and, with overlap, the reduction's own CPU work done during
     * backward (MPI_Testall runs the copies and sums on the rank's core). */
    printf("\n## Where the 2-rank step's extra time goes (best runs)\n\n");
    printf("| model | overlap | 1-rank ms/step | 2-rank ms/step | extra | of which exposed comm | "
           "the rest |\n|---|---|---:|---:|---:|---:|---:|\n");
    for (int mi = 0; mi < NTRAIN_MODELS; mi++)
        for (int v = 0; v < 3; v++) {
            char k1[64], k2[64];
            snprintf(k1, sizeof k1, "train.%s.overlap", models[mi]);
            snprintf(k2, sizeof k2, "train.%s.%s", models[mi], vkeys[v]);
            double m1 = at_best(&in, 1, k1, "ms_per_step"), m2 = at_best(&in, 2, k2, "ms_per_step");
            double ex = at_best(&in, 2, k2, "exposed_ms");
            if (isnan(m1) || isnan(m2)) continue;
            printf("| %s | %s | %.3f | %.3f | %.3f | %.3f | %.3f |\n", models[mi], vnames[v], m1, m2, m2 - m1, ex, m2 - m1 - ex);
        }

    printf("\nTargets:\n");
    if (red_any)
        printf("  reduction at the default bucket (4 MiB, overlap) >= 95%% of a plain MPI_Allreduce for "
               "every model: %s\n",
               red_ok ? "met" : "NOT met");
    else
        printf("  reduction bandwidth: not measured (needs a 2-rank run)\n");
    for (int mi = 0; mi < NTRAIN_MODELS; mi++)
        printf("  %s 2-rank/1-rank throughput >= 1.9x: %s\n", models[mi],
               isnan(ratio[mi]) ? "not measured"
                                : ratio[mi] >= 1.9 ? "met" : "NOT met");
    for (int i = 0; i < in.n; i++) free(in.lines[i]);
    free(in.ddp);
    return 0;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mpirun -np N strata_bench_comm [--reps N] [--reduce-reps N] [--only LIST]\n"
            "                 [--configs DIR] [--run-dir DIR] [--bucket-mb X] [--timeout S] [--mlp-steps N]\n"
            "                 [--cnn-steps N] [--resnet18-steps N] [--variants LIST] [--json FILE]\n"
            "       strata_bench_comm --report FILE... [--ddp FILE]\n"
            "  --reps N         training runs per case, interleaved (default 3)\n"
            "  --reduce-reps N  timed reductions per variant (default 15)\n"
            "  --only LIST      sections (reduce, train, memory) and models (mlp, cnn, resnet18,\n"
            "                   resnet34); memory runs only when named (one model per process),\n"
            "                   resnet18's training only when named\n"
            "  --configs DIR    where mlp.yaml and cnn.yaml are (default bench/configs)\n"
            "  --run-dir DIR    where the training runs write (default runs/bench_comm)\n"
            "  --bucket-mb X    training: comm.bucket_mb (default: the config's)\n"
            "  --timeout S      the collective timeout in seconds, 0 off: the reductions' and\n"
            "                   training's comm.timeout_s (default: off, and the config's)\n"
            "  --mlp-steps N    steps of each mlp run (default 200)\n"
            "  --cnn-steps N    steps of each cnn run (default 60)\n"
            "  --resnet18-steps N  steps of each resnet18 run (default 12)\n"
            "  --variants LIST  training variants: overlap, no_overlap, thread, frozen (default all)\n"
            "  --json FILE      append the result's JSON line to FILE\n"
            "  --report FILE... combine JSON lines of 1- and 2-rank runs into the final table\n"
            "  --ddp FILE       with --report: bench/ddp_ref.py's JSON line\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {.reps = 3, .reduce_reps = 15, .configs = "bench/configs",
                    .run_dir = "runs/bench_comm", .mlp_steps = 200, .cnn_steps = 60,
                    .resnet18_steps = 12, .timeout = -1.0};
    const char *files[MAX_LINES];
    int nfiles = 0, report_mode = 0;
    const char *ddp = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--report")) {
            report_mode = 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && nfiles < MAX_LINES)
                files[nfiles++] = argv[++i];
        } else if (!strcmp(a, "--ddp") && v) {
            ddp = v, i++;
        } else if (!strcmp(a, "--reps") && v) {
            o.reps = atoi(v), i++;
        } else if (!strcmp(a, "--reduce-reps") && v) {
            o.reduce_reps = atoi(v), i++;
        } else if (!strcmp(a, "--only") && v) {
            o.only = v, i++;
        } else if (!strcmp(a, "--json") && v) {
            o.json = v, i++;
        } else if (!strcmp(a, "--configs") && v) {
            o.configs = v, i++;
        } else if (!strcmp(a, "--run-dir") && v) {
            o.run_dir = v, i++;
        } else if (!strcmp(a, "--bucket-mb") && v) {
            o.bucket_mb = atof(v), i++;
        } else if (!strcmp(a, "--timeout") && v) {
            o.timeout = atof(v), i++;
        } else if (!strcmp(a, "--mlp-steps") && v) {
            o.mlp_steps = atoi(v), i++;
        } else if (!strcmp(a, "--cnn-steps") && v) {
            o.cnn_steps = atoi(v), i++;
        } else if (!strcmp(a, "--resnet18-steps") && v) {
            o.resnet18_steps = atoi(v), i++;
        } else if (!strcmp(a, "--variants") && v) {
            o.variants = v, i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "strata_bench_comm: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (report_mode) {
        if (!nfiles) {
            fprintf(stderr, "strata_bench_comm: --report needs at least one file\n");
            return 2;
        }
        return report(files, nfiles, ddp);
    }
    if (o.reps < 1 || o.reps > MAX_REPS || o.reduce_reps < 1 || o.reduce_reps > 4 * MAX_REPS ||
        o.mlp_steps < 30 || o.cnn_steps < 15 || o.resnet18_steps < 6) {
        fprintf(stderr, "strata_bench_comm: --reps 1..%d, --reduce-reps 1..%d, --mlp-steps >= 30, "
                "--cnn-steps >= 15, --resnet18-steps >= 6\n", MAX_REPS, 4 * MAX_REPS);
        return 2;
    }
    comm *c = NULL;
    int rc = comm_init(&c, &argc, &argv);
    if (rc) fail(NULL, "comm_init", rc);
    /* Resident memory before anything of strata's: libraries' pages (RssFile), MPI's shared
     * memory (RssShmem) and the heap so far (RssAnon). */
    const double start_kib[4] = {proc_status_kib("VmRSS:"), proc_status_kib("RssAnon:"),
                                 proc_status_kib("RssFile:"), proc_status_kib("RssShmem:")};
    nn_blas_threads(1);
    const int rank = comm_rank(c), world = comm_size(c);
    char loadavg[64] = "?";
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (!fgets(loadavg, sizeof loadavg, lf)) loadavg[0] = '\0';
        loadavg[strcspn(loadavg, "\n")] = '\0';
        fclose(lf);
    }
    int mpi_major = 0, mpi_minor = 0;
    MPI_Get_version(&mpi_major, &mpi_minor);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int liblen = 0;
    MPI_Get_library_version(lib, &liblen);
    lib[strcspn(lib, ",\n")] = '\0';
    if (rank == 0) {
        printf("strata_bench_comm: %d rank(s), %s, 1 BLAS thread per rank; load average at start: %s\n",
               world, lib, loadavg);
#if !defined(__OPTIMIZE__) || !defined(NDEBUG)
        printf("build: NOT optimised (not a Release build): these numbers mean little\n");
#endif
        fflush(stdout);
    }
    util_str js = {0};
    util_str_printf(&js, "{\"bench\":\"comm\",\"world\":%d,\"strata\":\"%s\",\"mpi\":\"%s\",\"reps\":%d,"
           "\"reduce_reps\":%d,\"timeout\":%g,\"loadavg\":\"%s\",\"cases\":{",
           world, STRATA_VERSION, lib, o.reps, o.reduce_reps, o.timeout, loadavg);
    int first = 1;
    if (o.timeout > 0) comm_set_timeout(c, o.timeout);
    if (world > 1) {
        const int sections = o.only && (in_list(o.only, "reduce") || in_list(o.only, "train") ||
                                         in_list(o.only, "memory"));
        if (!sections || in_list(o.only, "reduce")) bench_mpi_sizes(c, &o, &js, &first);
        for (size_t i = 0; i < sizeof slab_models / sizeof slab_models[0]; i++)
            if (wanted(&o, "reduce", slab_models[i].arch))
                bench_reduce_model(c, &slab_models[i], &o, &js, &first);
    } else if (rank == 0 && wanted(&o, "reduce", "mlp")) {
        printf("\n(reduction bandwidth needs 2 or more ranks: skipped)\n");
    }
    bench_train(c, &o, &js, &first);
    bench_memory(c, &o, start_kib, &js, &first);
    util_str_printf(&js, "}}");
    if (js.failed) comm_abort(c, 1, "out of memory building the JSON line");
    if (rank == 0) {
        printf("\n%s\n", js.s);
        if (o.json) {
            FILE *f = fopen(o.json, "a");
            if (!f || fprintf(f, "%s\n", js.s) < 0 || fclose(f)) {
                fprintf(stderr, "strata_bench_comm: cannot write %s: %s\n", o.json, strerror(errno));
                rc = 1;
            }
        }
    }
    free(js.s);
    comm_free(c);
    return rc ? 1 : 0;
}
