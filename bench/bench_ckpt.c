/*
 * strata_bench_ckpt: how long a checkpoint of a resnet34-sized model takes to save and to
 * load, against a raw sequential write and read of the same number of bytes in the same
 * directory, measured in the same run.
 *
 * The model is resnet34 (3x224x224, 1000 classes, the default head) with SGD and momentum,
 * so the file holds every parameter once as weights and once as momentum_buffer, the
 * BatchNorm running statistics, the group table and a train state: what `strata train`
 * writes at every checkpoint. Parameters, buffers and momentum are random (an nn_rng), so
 * checksums see real data. The cases:
 *
 *   save        io_ckpt_save_reuse() with its chunk buffer kept between saves, as the
 *               trainer does: streams the file to a temporary file as HDF5 makes it
 *               (strata's file driver, raw chunks with their checksums), fsyncs it, renames
 *               it over the checkpoint, fsyncs the directory;
 *   raw write   the same number of bytes from one malloc'd buffer, with the same steps: an
 *               exclusive temporary file, write(), fsync, rename over the previous raw file,
 *               fsync of the directory. save / raw write is the format's overhead;
 *   load        io_ckpt_open + trainer_ckpt_load (every parameter, momentum tensor and
 *               buffer, into the model and its optimizer: what --resume does) + close;
 *   raw read    read() of the whole checkpoint file into a buffer (and, reported apart, of
 *               the raw file).
 *
 * Reads are timed twice: "cold", after fsync and posix_fadvise(POSIX_FADV_DONTNEED) on the
 * file, whose effect is checked with mincore() (the resident fraction is printed), and
 * "cached", straight from the page cache, which leaves only the CPU's share. On a virtual
 * machine a cold read may still come from the host's cache; the MB/s say which it was.
 *
 * Speeds are the checkpoint file's bytes over the time (MB = 10^6 bytes) for every case; a
 * ratio is the reference's time over strata's (1.00 = as fast as raw I/O), from the best
 * times, from the medians, and within each round (the two cases seconds apart). The machine
 * may be shared and noisy: one warm-up round, then --reps rounds, the cases interleaved and
 * their order alternated from round to round; the table shows the best, the median and
 * the range. Nothing here is a pass/fail threshold.
 *
 *   strata_bench_ckpt [--dir DIR] [--reps N] [--arch NAME] [--json FILE] [--keep]
 *
 * --dir: where the files go (created if missing; default a fresh directory under $TMPDIR,
 * or next to this program, that is build/, when TMPDIR is unset; removed afterwards).
 * --arch: another model of the zoo (cnn for a quick check). --keep: leave the files.
 */
#define _DEFAULT_SOURCE /* mincore, realpath, statfs */
#include "nn/nn.h"
#include "trainer/trainer.h"
#include "util/util.h"

#include "bench/bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 64

static const char *prog = "strata_bench_ckpt";

static void die_nn(const char *what, int rc)
{
    fprintf(stderr, "%s: %s: %s (%s)\n", prog, what, nn_errmsg(), nn_errname(rc));
    exit(1);
}

static void die_sys(const char *what, const char *path)
{
    fprintf(stderr, "%s: %s %s: %s\n", prog, what, path, strerror(errno));
    exit(1);
}

/* ---- the model, its optimizer and the checkpoint they fill ------------------------------- */

typedef struct {
    nn_rng *rng;
} fill_job;

/* Running means around 0, running variances in [0.5, 1.5): what a trained BatchNorm holds. */
static int fill_buffer(void *ud, const char *name, nn_buffer *b)
{
    fill_job *j = ud;
    if (strstr(name, "running_var"))
        nn_rng_fill_uniform(j->rng, b->data, b->numel, 0.5f, 1.5f);
    else
        nn_rng_fill_normal(j->rng, b->data, b->numel, 0.1f);
    return 0;
}

/* FNV-1a over every parameter, momentum and buffer byte: equal before a save and after a
 * load means the round trip kept every bit. */
typedef struct {
    uint64_t h;
} hash_job;

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const unsigned char *c = p;
    uint64_t x = *h;
    for (size_t i = 0; i < n; i++) x = (x ^ c[i]) * 0x100000001b3ull;
    *h = x;
}

static int hash_buffer(void *ud, const char *name, nn_buffer *b)
{
    hash_bytes(&((hash_job *)ud)->h, b->data, b->numel * sizeof(float));
    return 0;
}

static uint64_t model_hash(nn_model *m, const trainer_opt *o)
{
    hash_job j = {0xcbf29ce484222325ull};
    for (int g = 0; g < m->ngroups; g++) {
        hash_bytes(&j.h, m->groups[g].param_slab, m->groups[g].numel * sizeof(float));
        if (o->state1[g]) hash_bytes(&j.h, o->state1[g], m->groups[g].numel * sizeof(float));
    }
    nn_model_visit_buffers(m, hash_buffer, &j);
    return j.h;
}

static int zero_buffer(void *ud, const char *name, nn_buffer *b)
{
    memset(b->data, 0, b->numel * sizeof(float));
    return 0;
}

static void model_zero(nn_model *m, trainer_opt *o)
{
    for (int g = 0; g < m->ngroups; g++) {
        memset(m->groups[g].param_slab, 0, m->groups[g].numel * sizeof(float));
        if (o->state1[g]) memset(o->state1[g], 0, m->groups[g].numel * sizeof(float));
    }
    nn_model_visit_buffers(m, zero_buffer, NULL);
}

/* ---- the filesystem ------------------------------------------------------------------- */

/* statfs's magic numbers of the filesystems a run directory is likely to be on. */
static const char *fs_magic_name(long type)
{
    switch ((unsigned long)type) {
    case 0xEF53: return "ext2/ext3/ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x6969: return "nfs";
    case 0xFF534D42: return "cifs";
    case 0x2FC12FC1: return "zfs";
    case 0x65735546: return "fuse";
    case 0x0BD00BD0: return "lustre";
    case 0x47504653: return "gpfs";
    default: return "unknown";
    }
}

/* Copies src into dst[0..len), cut short if need be. */
static void copy_str(char *dst, size_t len, const char *src)
{
    size_t l = strlen(src);
    if (l >= len) l = len - 1;
    memcpy(dst, src, l);
    dst[l] = '\0';
}

/* The mount that holds dir (the longest mount point that is a prefix of its real path):
 * device, type and options from /proc/self/mounts. */
static void mount_of(const char *dir, char *dev, char *type, char *opts, size_t len)
{
    snprintf(dev, len, "?");
    snprintf(type, len, "?");
    snprintf(opts, len, "?");
    char real[4096];
    if (!realpath(dir, real)) return;
    FILE *f = fopen("/proc/self/mounts", "r");
    if (!f) return;
    char line[8192], d[4096], mp[4096], t[256], o[2048];
    size_t best = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%4095s %4095s %255s %2047s", d, mp, t, o) != 4) continue;
        size_t l = strlen(mp);
        int under = !strcmp(mp, "/") || (!strncmp(real, mp, l) && (real[l] == '/' || !real[l]));
        if (!under || l < best) continue;
        best = l;
        copy_str(dev, len, d);
        copy_str(type, len, t);
        copy_str(opts, len, o);
    }
    fclose(f);
}

/* ---- raw I/O: the references ----------------------------------------------------------- */

static void fsync_path(const char *p)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die_sys("cannot open to sync", p);
    if (fsync(fd) != 0 && errno != EINVAL) die_sys("cannot fsync", p);
    close(fd);
}

static void write_all(int fd, const void *buf, size_t len, const char *path)
{
    const char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) die_sys("cannot write", path);
        done += (size_t)n;
    }
}

/* The steps io_ckpt_save takes around its write (io_write_atomic): an exclusive temporary
 * file next to path, closed, opened again and written, closed, fsynced, renamed over path,
 * and the directory fsynced. */
static void raw_write(const char *path, const char *dir, const void *buf, size_t len)
{
    static unsigned counter;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) die_sys("cannot create", tmp);
    close(fd);
    fd = open(tmp, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) die_sys("cannot open", tmp);
    write_all(fd, buf, len, tmp);
    if (close(fd)) die_sys("cannot close", tmp);
    fsync_path(tmp);
    if (rename(tmp, path)) die_sys("cannot rename onto", path);
    fsync_path(dir);
}

/* read() of the whole file into buf (cap bytes); returns the bytes read. */
static size_t raw_read(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die_sys("cannot open", path);
    char *p = buf;
    size_t done = 0;
    for (;;) {
        ssize_t n = read(fd, p + done, cap - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die_sys("cannot read", path);
        if (n == 0 || done + (size_t)n == cap) {
            done += (size_t)n;
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    return done;
}

static size_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st)) die_sys("cannot stat", path);
    return (size_t)st.st_size;
}

/* The fraction of path's pages in the page cache (mincore on a shared mapping, which
 * faults nothing in); -1 when it cannot tell. */
static double resident_fraction(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1.0;
    size_t len = file_size(path);
    double frac = -1.0;
    void *map = len ? mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (map != MAP_FAILED) {
        long pg = sysconf(_SC_PAGESIZE);
        size_t npages = (len + (size_t)pg - 1) / (size_t)pg;
        unsigned char *vec = bench_xcalloc(prog, npages, 1);
        if (mincore(map, len, vec) == 0) {
            size_t in = 0;
            for (size_t i = 0; i < npages; i++) in += vec[i] & 1;
            frac = (double)in / (double)npages;
        }
        free(vec);
        munmap(map, len);
    }
    close(fd);
    return frac;
}

/* Asks the kernel to drop path's pages from the page cache: fsync (only clean pages can be
 * dropped), then POSIX_FADV_DONTNEED. Returns the resident fraction afterwards. */
static double drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die_sys("cannot open", path);
    if (fsync(fd) != 0 && errno != EINVAL) die_sys("cannot fsync", path);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return resident_fraction(path);
}

/* ---- the cases ----------------------------------------------------------------------- */

enum {
    C_SAVE,
    C_RAW_WRITE,
    C_LOAD_COLD,
    C_READ_COLD,
    C_READ_RAW_COLD,
    C_LOAD_CACHED,
    C_READ_CACHED,
    NCASES
};

static const char *const case_name[NCASES] = {
    "save", "raw write", "load, cold", "raw read, cold", "raw read of the raw file, cold",
    "load, cached", "raw read, cached",
};
static const char *const case_id[NCASES] = {
    "save", "raw_write", "load_cold", "read_cold", "read_raw_cold", "load_cached", "read_cached",
};

typedef struct {
    double t[MAX_REPS];
    int n;
    double best, median, worst;
    double resident_max; /* cold reads: the largest resident fraction after the drop */
} series;

static void series_add(series *s, double t)
{
    if (s->n < MAX_REPS) s->t[s->n++] = t;
}

static void series_finish(series *s)
{
    double v[MAX_REPS];
    memcpy(v, s->t, sizeof(double) * (size_t)s->n);
    qsort(v, (size_t)s->n, sizeof v[0], bench_cmp_double);
    s->best = v[0];
    s->worst = v[s->n - 1];
    s->median = s->n % 2 ? v[s->n / 2] : 0.5 * (v[s->n / 2 - 1] + v[s->n / 2]);
}

typedef struct {
    nn_model *m;
    trainer_opt *opt;
    const io_ckpt *ck;
    const char *ckpt, *raw, *dir;
    void *wbuf, *rbuf;
    size_t bytes, cap;
    io_ckpt_scratch keep; /* kept between saves, as the trainer keeps it */
} bench;

static double time_save(bench *b)
{
    double t0 = util_now_s();
    int rc = io_ckpt_save_reuse(b->ckpt, b->ck, &b->keep);
    double t = util_now_s() - t0;
    if (rc) die_nn("save", rc);
    return t;
}

static double time_raw_write(bench *b)
{
    double t0 = util_now_s();
    raw_write(b->raw, b->dir, b->wbuf, b->bytes);
    return util_now_s() - t0;
}

static double time_load(bench *b)
{
    double t0 = util_now_s();
    io_ckpt_reader *rd = NULL;
    int rc = io_ckpt_open(&rd, b->ckpt);
    trainer_ckpt_counts n;
    if (!rc) rc = trainer_ckpt_load(b->m, b->opt, rd, 0, &n);
    io_ckpt_close(rd);
    double t = util_now_s() - t0;
    if (rc) die_nn("load", rc);
    return t;
}

static double time_read(bench *b, const char *path)
{
    double t0 = util_now_s();
    size_t got = raw_read(path, b->rbuf, b->cap);
    double t = util_now_s() - t0;
    if (got != b->bytes) {
        fprintf(stderr, "%s: read %zu bytes of %s, expected %zu\n", prog, got, path, b->bytes);
        exit(1);
    }
    return t;
}

/* One round: every case once, the writes and the reads each in an order that alternates
 * with the round's parity. */
static void round_run(bench *b, series *s, int rep, int record)
{
    double t[NCASES], res[NCASES] = {0};
    if (rep % 2 == 0) {
        t[C_SAVE] = time_save(b);
        t[C_RAW_WRITE] = time_raw_write(b);
    } else {
        t[C_RAW_WRITE] = time_raw_write(b);
        t[C_SAVE] = time_save(b);
    }
    if (rep % 2 == 0) {
        res[C_LOAD_COLD] = drop_cache(b->ckpt);
        t[C_LOAD_COLD] = time_load(b);
        res[C_READ_COLD] = drop_cache(b->ckpt);
        t[C_READ_COLD] = time_read(b, b->ckpt);
        res[C_READ_RAW_COLD] = drop_cache(b->raw);
        t[C_READ_RAW_COLD] = time_read(b, b->raw);
        t[C_LOAD_CACHED] = time_load(b);
        t[C_READ_CACHED] = time_read(b, b->ckpt);
    } else {
        res[C_READ_RAW_COLD] = drop_cache(b->raw);
        t[C_READ_RAW_COLD] = time_read(b, b->raw);
        res[C_READ_COLD] = drop_cache(b->ckpt);
        t[C_READ_COLD] = time_read(b, b->ckpt);
        res[C_LOAD_COLD] = drop_cache(b->ckpt);
        t[C_LOAD_COLD] = time_load(b);
        t[C_READ_CACHED] = time_read(b, b->ckpt);
        t[C_LOAD_CACHED] = time_load(b);
    }
    if (!record) return;
    for (int c = 0; c < NCASES; c++) {
        series_add(&s[c], t[c]);
        if (res[c] > s[c].resident_max) s[c].resident_max = res[c];
    }
}

/* ---- main ---------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s [--dir DIR] [--reps N] [--arch NAME] [--input CxHxW] [--classes K]\n"
            "       [--head NAME] [--small-stem] [--json FILE] [--keep]\n"
            "  --dir DIR    where the checkpoint and the raw file go (default: a fresh directory\n"
            "               under $TMPDIR, or next to this program when TMPDIR is unset)\n"
            "  --reps N     timed rounds after one warm-up (default 5, at most %d)\n"
            "  --arch NAME  the model (default resnet34: 3x224x224, 1000 classes)\n"
            "  --input CxHxW, --classes K, --head fastai|linear|original, --small-stem\n"
            "               the model's input, classes, head and resnet stem, as for strata model\n"
            "  --json FILE  also write the results as JSON\n"
            "  --keep       leave the files (and a directory this program made) in place\n",
            prog, MAX_REPS);
}

int main(int argc, char **argv)
{
    const char *dir_opt = NULL, *json = NULL, *arch = "resnet34";
    int reps = 5, keep = 0;
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--keep")) {
            keep = 1;
        } else if (!strcmp(a, "--small-stem")) {
            spec.small_stem = 1;
        } else if (i + 1 < argc && !strcmp(a, "--input")) {
            if (sscanf(argv[++i], "%dx%dx%d", &spec.in_c, &spec.in_h, &spec.in_w) != 3 ||
                spec.in_c < 1 || spec.in_h < 1 || spec.in_w < 1) {
                fprintf(stderr, "%s: --input %s: expected CxHxW\n", prog, argv[i]);
                return 2;
            }
        } else if (i + 1 < argc && !strcmp(a, "--classes")) {
            spec.classes = atoi(argv[++i]);
            if (spec.classes < 1) {
                fprintf(stderr, "%s: --classes %s: expected a positive count\n", prog, argv[i]);
                return 2;
            }
        } else if (i + 1 < argc && !strcmp(a, "--head")) {
            const char *h = argv[++i];
            spec.head = !strcmp(h, "fastai")     ? NN_HEAD_FASTAI
                        : !strcmp(h, "linear")   ? NN_HEAD_LINEAR
                        : !strcmp(h, "original") ? NN_HEAD_ORIGINAL
                                                 : -1;
            if (spec.head < 0) {
                fprintf(stderr, "%s: --head %s: expected fastai, linear or original\n", prog, h);
                return 2;
            }
        } else if (i + 1 < argc && !strcmp(a, "--dir")) {
            dir_opt = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--json")) {
            json = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--arch")) {
            arch = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--reps")) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > MAX_REPS) {
                fprintf(stderr, "%s: --reps %s: expected 1 to %d\n", prog, argv[i], MAX_REPS);
                return 2;
            }
            reps = (int)v;
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", prog, a);
            usage(stderr);
            return 2;
        }
    }

    /* The directory: --dir (made if missing) or a fresh one. */
    char dir[4096];
    int made_dir = 0;
    if (dir_opt) {
        snprintf(dir, sizeof dir, "%s", dir_opt);
        if (mkdir(dir, 0777) == 0)
            made_dir = 1;
        else if (errno != EEXIST)
            die_sys("cannot create the directory", dir);
        struct stat st;
        if (stat(dir, &st) || !S_ISDIR(st.st_mode)) die_sys("not a directory:", dir);
    } else {
        const char *base = getenv("TMPDIR");
        char exe[4096];
        if (!base || !base[0]) {
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n > 0) {
                exe[n] = '\0';
                char *slash = strrchr(exe, '/');
                if (slash) *slash = '\0';
                base = exe;
            } else {
                base = "/tmp";
            }
        }
        if (strlen(base) > sizeof dir - 64) {
            fprintf(stderr, "%s: the directory %s is too long\n", prog, base);
            return 2;
        }
        snprintf(dir, sizeof dir, "%.4000s/strata_bench_ckpt.XXXXXX", base);
        if (!mkdtemp(dir)) die_sys("cannot create a directory under", base);
        made_dir = 1;
    }
    char ckpt[4200], raw[4200];
    snprintf(ckpt, sizeof ckpt, "%s/bench-ckpt.h5", dir);
    snprintf(raw, sizeof raw, "%s/bench-raw.bin", dir);

    struct statfs sf;
    long fstype = statfs(dir, &sf) == 0 ? (long)sf.f_type : 0;
    char mdev[512], mtype[512], mopts[512];
    mount_of(dir, mdev, mtype, mopts, sizeof mdev);

    /* The model: skip_init, then random parameters, buffers and momentum. */
    nn_blas_threads(1);
    spec.arch = arch;
    spec.skip_init = 1;
    nn_rng rng;
    nn_rng_seed(&rng, 20261130);
    nn_model *m = NULL;
    int rc = nn_model_init(&m, &spec, &rng);
    if (rc) die_nn("model", rc);
    trainer_opt opt;
    rc = trainer_opt_init(&opt, m, TRAINER_OPT_SGD, 0, 0.999, 1e-8, 0);
    if (rc) die_nn("optimizer", rc);
    for (int g = 0; g < m->ngroups; g++) {
        nn_rng_fill_normal(&rng, m->groups[g].param_slab, m->groups[g].numel, 0.05f);
        nn_rng_fill_normal(&rng, opt.state1[g], m->groups[g].numel, 0.01f);
        opt.step[g] = opt.step_bn[g] = 1000;
    }
    fill_job fj = {&rng};
    nn_model_visit_buffers(m, fill_buffer, &fj);

    io_ckpt ck;
    rc = trainer_ckpt_fill(&ck, m, &opt);
    if (rc) die_nn("trainer_ckpt_fill", rc);
    uint64_t rng_state[1][4];
    memcpy(rng_state[0], rng.s, sizeof rng_state[0]);
    ck.world_size = 1;
    ck.config = "";
    ck.metrics = NULL;
    for (int g = 0; g < m->ngroups; g++) {
        ck.groups[g].lr = 1e-3 * (g + 1);
        ck.groups[g].wd = 1e-2;
        ck.groups[g].momentum = 0.9;
    }
    ck.train = (io_ckpt_train){1, 0, 3, 3, 10, 10, 3010, 1000, 256, 42, 0, 1, rng_state};
    size_t payload = 0;
    for (int i = 0; i < ck.nparams; i++) payload += ck.params[i].numel * (size_t)(1 + ck.nstates);
    for (int i = 0; i < ck.nbuffers; i++) payload += ck.buffers[i].numel;
    payload *= sizeof(float);

    /* A first save gives the file's size, which sizes the raw buffers. */
    bench b = {m, &opt, &ck, ckpt, raw, dir, NULL, NULL, 0, 0, {0}};
    const uint64_t h0 = model_hash(m, &opt);
    time_save(&b);
    b.bytes = file_size(ckpt);
    b.cap = b.bytes + 1; /* one more, so a file that grew is noticed */
    b.wbuf = bench_xcalloc(prog, b.bytes, 1);
    b.rbuf = bench_xcalloc(prog, b.cap, 1);
    /* Random bytes for the raw file, and both buffers touched once so no page faults are
     * timed (load writes into the model's memory, which exists already). */
    {
        nn_rng r2;
        nn_rng_seed(&r2, 7);
        uint64_t *w = b.wbuf;
        for (size_t i = 0; i < b.bytes / 8; i++) w[i] = nn_rng_next(&r2);
        memset((char *)b.wbuf + b.bytes / 8 * 8, 0x5a, b.bytes % 8);
        memset(b.rbuf, 0, b.cap);
    }
    /* The round trip: zero everything, load, and every bit must be back. */
    model_zero(m, &opt);
    time_load(&b);
    const uint64_t h1 = model_hash(m, &opt);
    if (h1 != h0) {
        fprintf(stderr, "%s: the loaded model differs from the saved one (hash %016llx, saved %016llx)\n",
                prog, (unsigned long long)h1, (unsigned long long)h0);
        return 1;
    }

    char host[256] = "?";
    gethostname(host, sizeof host);
    double load1[3] = {0, 0, 0};
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf %lf %lf", &load1[0], &load1[1], &load1[2]) != 3) load1[0] = -1;
        fclose(la);
    }

    printf("strata_bench_ckpt: checkpoint save and load against raw I/O of the same bytes\n");
    printf("model      %s, %dx%dx%d, %d classes, %zu parameters in %d tensors, %d groups; "
           "sgd momentum (1 state tensor each); %d BatchNorm buffers\n",
           m->arch, m->in_shape[0], m->in_shape[1], m->in_shape[2], m->classes, nn_model_numel(m), ck.nparams,
           m->ngroups, ck.nbuffers);
    printf("file       %zu bytes (%.1f MB): tensors %zu bytes, format %zu bytes (%.2f%%); "
           "round trip bit-identical\n",
           b.bytes, b.bytes / 1e6, payload, b.bytes - payload,
           100.0 * (double)(b.bytes - payload) / (double)b.bytes);
    printf("directory  %s\n", dir);
    printf("filesystem statfs type 0x%lx (%s); mounted %s from %s (%s)\n", (unsigned long)fstype,
           fs_magic_name(fstype), mtype, mdev, mopts);
    printf("host       %s, %ld CPUs online, load average %.2f %.2f %.2f at the start\n", host,
           sysconf(_SC_NPROCESSORS_ONLN), load1[0], load1[1], load1[2]);
    printf("rounds     1 warm-up + %d timed, cases interleaved, order alternated\n\n", reps);
    fflush(stdout);

    series s[NCASES];
    memset(s, 0, sizeof s);
    round_run(&b, s, 0, 0);
    for (int r = 0; r < reps; r++) round_run(&b, s, r, 1);
    for (int c = 0; c < NCASES; c++) series_finish(&s[c]);

    printf("%-32s %13s %9s %9s %19s %9s %9s\n", "case", "bytes", "best ms", "median ms",
           "range ms", "MB/s best", "MB/s med");
    for (int c = 0; c < NCASES; c++) {
        char range[40];
        snprintf(range, sizeof range, "%.1f - %.1f", s[c].best * 1e3, s[c].worst * 1e3);
        printf("%-32s %13zu %9.1f %9.1f %19s %9.0f %9.0f\n", case_name[c], b.bytes, s[c].best * 1e3,
               s[c].median * 1e3, range, b.bytes / s[c].best / 1e6, b.bytes / s[c].median / 1e6);
    }
    const double save_best = s[C_RAW_WRITE].best / s[C_SAVE].best;
    const double save_med = s[C_RAW_WRITE].median / s[C_SAVE].median;
    const double loadc_best = s[C_READ_COLD].best / s[C_LOAD_COLD].best;
    const double loadc_med = s[C_READ_COLD].median / s[C_LOAD_COLD].median;
    const double loadw_best = s[C_READ_CACHED].best / s[C_LOAD_CACHED].best;
    const double loadw_med = s[C_READ_CACHED].median / s[C_LOAD_CACHED].median;
    /* The ratio within each round too: the two cases ran seconds apart, so a burst of
     * someone else's I/O moves both; its median and range show how much to trust the rest. */
    series pr[3];
    memset(pr, 0, sizeof pr);
    const int pairs[3][2] = {{C_RAW_WRITE, C_SAVE}, {C_READ_COLD, C_LOAD_COLD}, {C_READ_CACHED, C_LOAD_CACHED}};
    for (int k = 0; k < 3; k++) {
        for (int r = 0; r < s[pairs[k][0]].n; r++) series_add(&pr[k], s[pairs[k][0]].t[r] / s[pairs[k][1]].t[r]);
        series_finish(&pr[k]);
    }
    printf("\nratios (speed = file bytes / time; 1.00 = as fast as raw I/O)\n");
    printf("%-26s %6s %7s   %s\n", "", "best", "median", "within each round: median (range)");
    const char *const rname[3] = {"save / raw write", "load / raw read, cold", "load / raw read, cached"};
    const double rb[3] = {save_best, loadc_best, loadw_best}, rm[3] = {save_med, loadc_med, loadw_med};
    for (int k = 0; k < 3; k++)
        printf("  %-24s %6.2f %7.2f   %.2f (%.2f - %.2f)\n", rname[k], rb[k], rm[k], pr[k].median,
               pr[k].best, pr[k].worst);
    const double res_max = s[C_LOAD_COLD].resident_max > s[C_READ_COLD].resident_max
                               ? s[C_LOAD_COLD].resident_max
                               : s[C_READ_COLD].resident_max;
    const double res_raw = s[C_READ_RAW_COLD].resident_max;
    if (res_max < 0 || res_raw < 0)
        printf("\ncold reads: could not check the page cache with mincore()\n");
    else
        printf("\ncold reads: after fsync + POSIX_FADV_DONTNEED at most %.1f%% of the checkpoint's "
               "and %.1f%% of the raw file's pages were still cached (mincore); %s\n",
               100.0 * res_max, 100.0 * res_raw,
               res_max < 0.01 && res_raw < 0.01 ? "the drop took effect in this guest's page cache "
                                                  "(a host cache below it cannot be seen from here)"
                                                : "the drop did NOT fully take effect");

    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) die_sys("cannot write", json);
        fprintf(f, "{\"arch\": \"%s\", \"bytes\": %zu, \"payload_bytes\": %zu, \"reps\": %d, "
                   "\"dir\": \"%s\", \"statfs_type\": \"0x%lx\", \"fs\": \"%s\", "
                   "\"mount_type\": \"%s\", \"loadavg\": [%.2f, %.2f, %.2f],\n \"cases\": {",
                m->arch, b.bytes, payload, reps, dir, (unsigned long)fstype, fs_magic_name(fstype),
                mtype, load1[0], load1[1], load1[2]);
        for (int c = 0; c < NCASES; c++) {
            fprintf(f, "%s\n  \"%s\": {\"best_ms\": %.3f, \"median_ms\": %.3f, \"worst_ms\": %.3f, "
                       "\"mb_s_best\": %.1f, \"mb_s_median\": %.1f, \"ms\": [",
                    c ? "," : "", case_id[c], s[c].best * 1e3, s[c].median * 1e3, s[c].worst * 1e3,
                    b.bytes / s[c].best / 1e6, b.bytes / s[c].median / 1e6);
            for (int r = 0; r < s[c].n; r++) fprintf(f, "%s%.3f", r ? ", " : "", s[c].t[r] * 1e3);
            fprintf(f, "]}");
        }
        fprintf(f, "},\n \"ratios\": {\"save_raw_write\": {\"best\": %.4f, \"median\": %.4f}, "
                   "\"load_raw_read_cold\": {\"best\": %.4f, \"median\": %.4f}, "
                   "\"load_raw_read_cached\": {\"best\": %.4f, \"median\": %.4f}},\n"
                   " \"ratios_within_rounds\": {\"save_raw_write\": [%.4f, %.4f, %.4f], "
                   "\"load_raw_read_cold\": [%.4f, %.4f, %.4f], \"load_raw_read_cached\": [%.4f, %.4f, %.4f]},\n"
                   " \"resident_after_drop\": {\"checkpoint\": %.4f, \"raw\": %.4f}}\n",
                save_best, save_med, loadc_best, loadc_med, loadw_best, loadw_med, pr[0].median,
                pr[0].best, pr[0].worst, pr[1].median, pr[1].best, pr[1].worst, pr[2].median,
                pr[2].best, pr[2].worst, res_max, res_raw);
        if (fclose(f)) die_sys("cannot write", json);
    }

    if (!keep) {
        unlink(ckpt);
        unlink(raw);
        if (made_dir) rmdir(dir);
    }
    io_ckpt_scratch_free(&b.keep);
    free(b.wbuf);
    free(b.rbuf);
    trainer_ckpt_release(&ck);
    trainer_opt_free(&opt);
    nn_model_free(m);
    return 0;
}
