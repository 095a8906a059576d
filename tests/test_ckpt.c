/* Checkpoint files without a training run: io_ckpt's save and open (every table back as
 * written, checksums that catch a flipped byte, refusals that name the file), its run
 * directory helpers (latest, prune), and trainer_ckpt's mapping between a model with its
 * optimizer and a file (a full load, a body-only load under a new head, a shape mismatch).
 * The end-to-end tests (tests/ckpt_*.sh) resume real runs; these pin each piece. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn/nn.h"
#include "testutil.h"
#include "trainer/trainer.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define NN_CHECK(call)                                                                   \
    do {                                                                                 \
        int rc__ = (call);                                                               \
        if (rc__) {                                                                      \
            print_error("%s failed: %s (%s)\n", #call, nn_errmsg(), nn_errname(rc__));   \
            fail();                                                                      \
        }                                                                                \
    } while (0)

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata-test-ckpt");
}

/* ---- io_ckpt: a hand-made checkpoint ---------------------------------------------------- */

enum { W_N = 12, B_N = 3, RM_N = 3 };

/* Values no other tensor holds, so the corruption test finds them in the file. */
typedef struct {
    float w[W_N], b[B_N], w_mom[W_N], b_mom[B_N], rmean[RM_N];
    uint64_t rng[2][4];
    io_ckpt_param params[2];
    io_ckpt_buffer buf;
    io_ckpt ck;
} handmade;

static void handmade_init(handmade *h)
{
    memset(h, 0, sizeof *h);
    for (int i = 0; i < W_N; i++) h->w[i] = 1000.0f + 0.5f * (float)i, h->w_mom[i] = -0.25f * (float)i;
    for (int i = 0; i < B_N; i++) h->b[i] = 7.0f + (float)i, h->b_mom[i] = 0.125f * (float)i;
    for (int i = 0; i < RM_N; i++) h->rmean[i] = 0.01f * (float)(i + 1);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 4; k++) h->rng[r][k] = 0x9E3779B97F4A7C15ull * (uint64_t)(r * 4 + k + 1);
    io_ckpt *ck = &h->ck;
    ck->world_size = 2;
    ck->config = "model:\n  arch: mlp\n";
    ck->metrics = "{\"step\":1}\n";
    snprintf(ck->arch, sizeof ck->arch, "mlp");
    ck->input[0] = 1, ck->input[1] = 2, ck->input[2] = 2;
    ck->classes = 3;
    ck->cut = -1;
    snprintf(ck->head, sizeof ck->head, "linear");
    ck->ngroups = 2;
    io_ckpt_group *g = ck->groups;
    snprintf(g[0].name, sizeof g[0].name, "body0");
    g[0].first = 0, g[0].last = 1, g[0].frozen = 1, g[0].lr = 1e-4, g[0].wd = 0.01;
    g[0].momentum = 0.9, g[0].numel = W_N, g[0].nparams = 1;
    snprintf(g[1].name, sizeof g[1].name, "head");
    g[1].first = -1, g[1].last = -1, g[1].lr = 3e-3, g[1].wd = 0.0, g[1].momentum = 0.85;
    g[1].numel = B_N, g[1].nparams = 1;
    io_ckpt_param *p = h->params;
    snprintf(p[0].name, sizeof p[0].name, "body.0.weight");
    p[0].group = 0, p[0].ndim = 2, p[0].shape[0] = 3, p[0].shape[1] = 4, p[0].numel = W_N;
    p[0].data = h->w, p[0].state[0] = h->w_mom;
    snprintf(p[1].name, sizeof p[1].name, "head.0.bias");
    p[1].group = 1, p[1].ndim = 1, p[1].shape[0] = B_N, p[1].numel = B_N;
    p[1].data = h->b, p[1].state[0] = h->b_mom;
    ck->params = p;
    ck->nparams = 2;
    snprintf(h->buf.name, sizeof h->buf.name, "body.1.running_mean");
    h->buf.numel = RM_N, h->buf.data = h->rmean;
    ck->buffers = &h->buf;
    ck->nbuffers = 1;
    snprintf(ck->opt_type, sizeof ck->opt_type, "sgd");
    ck->nesterov = 1;
    ck->nstates = 1;
    snprintf(ck->state_names[0], sizeof ck->state_names[0], "momentum_buffer");
    ck->opt_step[0] = 5, ck->opt_step[1] = 17, ck->opt_step_bn[0] = 9, ck->opt_step_bn[1] = 17;
    io_ckpt_train *t = &ck->train;
    t->has = 1, t->phase = 1, t->epoch = 3, t->epoch_in_phase = 1, t->step_in_epoch = 4;
    t->phase_step = 21, t->global_step = 17, t->steps_per_epoch = 6, t->global_batch = 64;
    t->seed = 12345678901ull, t->finished = 0, t->nrng = 2, t->rng = h->rng;
}

static void expect_floats(io_ckpt_reader *r, int i, int state, const float *want, size_t n)
{
    float got[W_N];
    assert_true(n <= W_N);
    NN_CHECK(io_ckpt_read_param(r, i, state, got));
    assert_memory_equal(got, want, n * sizeof *want);
}

static void roundtrip_every_table(void **state)
{
    (void)state;
    handmade h;
    handmade_init(&h);
    char path[1024];
    tu_tmp_path(path, sizeof path, "hand.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));

    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    const io_ckpt *in = io_ckpt_info(r);
    assert_string_equal(io_ckpt_path(r), path);
    assert_string_equal(in->kind, "training");
    assert_int_equal(in->world_size, 2);
    assert_string_equal(in->config, h.ck.config);
    assert_string_equal(in->metrics, h.ck.metrics);
    assert_string_equal(in->arch, "mlp");
    assert_memory_equal(in->input, h.ck.input, sizeof in->input);
    assert_int_equal(in->classes, 3);
    assert_int_equal(in->cut, -1);
    assert_string_equal(in->head, "linear");
    assert_int_equal(in->ngroups, 2);
    for (int g = 0; g < 2; g++) {
        const io_ckpt_group *a = &in->groups[g], *b = &h.ck.groups[g];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->first, b->first);
        assert_int_equal(a->last, b->last);
        assert_int_equal(a->frozen, b->frozen);
        assert_true(a->lr == b->lr && a->wd == b->wd && a->momentum == b->momentum);
        assert_int_equal(a->numel, b->numel);
        assert_int_equal(a->nparams, b->nparams);
        assert_int_equal(in->opt_step[g], h.ck.opt_step[g]);
        assert_int_equal(in->opt_step_bn[g], h.ck.opt_step_bn[g]);
    }
    assert_int_equal(in->nparams, 2);
    const int iw = io_ckpt_find_param(r, "body.0.weight"), ib = io_ckpt_find_param(r, "head.0.bias");
    assert_true(iw >= 0 && ib >= 0 && iw != ib);
    assert_int_equal(io_ckpt_find_param(r, "head.0.weight"), -1);
    assert_int_equal(in->params[iw].ndim, 2);
    assert_int_equal(in->params[iw].shape[0], 3);
    assert_int_equal(in->params[iw].shape[1], 4);
    assert_int_equal(in->params[ib].group, 1);
    assert_null(in->params[iw].data); /* tensors are read on demand */
    expect_floats(r, iw, -1, h.w, W_N);
    expect_floats(r, iw, 0, h.w_mom, W_N);
    expect_floats(r, ib, -1, h.b, B_N);
    expect_floats(r, ib, 0, h.b_mom, B_N);
    const int ibuf = io_ckpt_find_buffer(r, "body.1.running_mean");
    assert_true(ibuf >= 0);
    float rm[RM_N];
    NN_CHECK(io_ckpt_read_buffer(r, ibuf, rm));
    assert_memory_equal(rm, h.rmean, sizeof rm);
    assert_string_equal(in->opt_type, "sgd");
    assert_int_equal(in->nesterov, 1);
    assert_int_equal(in->nstates, 1);
    assert_string_equal(in->state_names[0], "momentum_buffer");
    const io_ckpt_train *a = &in->train, *b = &h.ck.train;
    assert_int_equal(a->has, 1);
    assert_int_equal(a->phase, b->phase);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->epoch_in_phase, b->epoch_in_phase);
    assert_int_equal(a->step_in_epoch, b->step_in_epoch);
    assert_int_equal(a->phase_step, b->phase_step);
    assert_int_equal(a->global_step, b->global_step);
    assert_int_equal(a->steps_per_epoch, b->steps_per_epoch);
    assert_int_equal(a->global_batch, b->global_batch);
    assert_true(a->seed == b->seed);
    assert_int_equal(a->nrng, 2);
    assert_memory_equal(a->rng, h.rng, sizeof h.rng);

    int nd = 0;
    size_t nbytes = 0;
    NN_CHECK(io_ckpt_verify(r, &nd, &nbytes));
    /* At least the four tensors, the buffer and the RNG states were read. */
    assert_true(nd >= 6);
    assert_true(nbytes >= sizeof h.w + sizeof h.w_mom + sizeof h.b + sizeof h.b_mom + sizeof h.rmean);
    io_ckpt_close(r);
}

/* Flips one byte in the middle of body.0.weight's values on disk. */
static void flip_weight_byte(const char *path, const float *w)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    static unsigned char img[1 << 20];
    const size_t n = fread(img, 1, sizeof img, f);
    assert_true(n > 0 && n < sizeof img);
    long at = -1;
    for (size_t i = 0; i + sizeof(float) * W_N <= n; i++)
        if (!memcmp(img + i, w, sizeof(float) * W_N)) {
            at = (long)i;
            break;
        }
    assert_true(at >= 0);
    img[at + 5 * sizeof(float) + 1] ^= 0x40;
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    assert_int_equal(fwrite(img + at, 1, sizeof(float) * W_N, f), sizeof(float) * W_N);
    assert_int_equal(fclose(f), 0);
}

static void flipped_byte_is_caught(void **state)
{
    (void)state;
    handmade h;
    handmade_init(&h);
    char path[1024];
    tu_tmp_path(path, sizeof path, "flipped.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    flip_weight_byte(path, h.w);

    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path)); /* the tables are intact */
    float got[W_N];
    const int iw = io_ckpt_find_param(r, "body.0.weight");
    assert_int_not_equal(io_ckpt_read_param(r, iw, -1, got), 0);
    tu_expect_msg(path, "body.0.weight");
    assert_int_not_equal(io_ckpt_verify(r, NULL, NULL), 0);
    tu_expect_msg(path, "body.0.weight");
    /* The other tensors still read. */
    expect_floats(r, io_ckpt_find_param(r, "head.0.bias"), -1, h.b, B_N);
    io_ckpt_close(r);
}

static void refusals_name_the_file(void **state)
{
    (void)state;
    io_ckpt_reader *r = (io_ckpt_reader *)1;
    char path[1024];
    tu_tmp_path(path, sizeof path, "absent.h5");
    assert_int_not_equal(io_ckpt_open(&r, path), 0);
    assert_null(r);
    tu_expect_msg(path, "no such checkpoint");

    tu_tmp_path(path, sizeof path, "text.h5");
    tu_write_file(path, "model: mlp\n", 11, 0);
    assert_int_equal(io_ckpt_open(&r, path), NN_EFORMAT);
    tu_expect_msg(path, "not an HDF5 file");

    /* HDF5, but without strata's format attribute. */
    tu_tmp_path(path, sizeof path, "other.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    assert_int_equal(io_ckpt_open(&r, path), NN_EFORMAT);
    tu_expect_msg(path, "not a strata checkpoint");

    /* A save that cannot hold its tables is refused before anything is written. */
    handmade h;
    handmade_init(&h);
    h.ck.ngroups = IO_CKPT_MAX_GROUPS + 1;
    tu_tmp_path(path, sizeof path, "too-many.h5");
    assert_int_equal(io_ckpt_save(path, &h.ck), NN_EINVAL);
    tu_expect_msg(path, "33 groups");
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
}

/* A save over an existing checkpoint replaces it whole: the new values read back. */
static void save_replaces(void **state)
{
    (void)state;
    handmade h;
    handmade_init(&h);
    char path[1024];
    tu_tmp_path(path, sizeof path, "replaced.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    for (int i = 0; i < B_N; i++) h.b[i] = -3.0f * (float)(i + 1);
    h.ck.train.global_step = 18;
    io_ckpt_scratch keep = {0};
    NN_CHECK(io_ckpt_save_reuse(path, &h.ck, &keep));
    NN_CHECK(io_ckpt_save_reuse(path, &h.ck, &keep)); /* and again with the kept memory */
    io_ckpt_scratch_free(&keep);
    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    assert_int_equal(io_ckpt_info(r)->train.global_step, 18);
    expect_floats(r, io_ckpt_find_param(r, "head.0.bias"), -1, h.b, B_N);
    io_ckpt_close(r);
}

/* The bytes of the file at path, malloc'd, *len of them. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

/* How many files of tu_tmpdir() start with prefix. */
static int count_prefixed(const char *prefix)
{
    DIR *d = opendir(tu_tmpdir());
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += !strncmp(e->d_name, prefix, strlen(prefix));
    closedir(d);
    return n;
}

/* A save whose file cannot be written (ulimit -f here: RLIMIT_FSIZE, with SIGXFSZ ignored as
 * the CLI ignores it) fails with NN_EIO naming the file and the system's cause wherever the
 * write fails: in a tensor (a limit of 1 byte), in the metadata HDF5 writes last (a limit
 * just under the file's size). The previous file stays whole, no temporary file is left,
 * the next save works, and HDF5 does not crash at exit (HDF5's sec2 driver did: ctest sees
 * the signal). */
static void failed_write_is_an_error(void **state)
{
    (void)state;
    handmade h;
    handmade_init(&h);
    char path[1024];
    tu_tmp_path(path, sizeof path, "full.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    size_t len;
    unsigned char *before = slurp(path, &len);
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    const rlim_t limits[] = {1, 600, len / 2, len - 64, len - 1};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        h.ck.train.global_step = 100 + (long)i; /* a new file, not the same bytes again */
        struct rlimit lim = {limits[i], old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
        const int rc = io_ckpt_save(path, &h.ck);
        assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
        if (rc != NN_EIO) print_error("limit %zu of %zu bytes: rc %d: %s\n", (size_t)limits[i], len, rc, nn_errmsg());
        assert_int_equal(rc, NN_EIO);
        tu_expect_msg(path, "cannot write the temporary file", "full.h5.tmp.", "File too large");
        size_t now_len;
        unsigned char *now = slurp(path, &now_len);
        assert_int_equal(now_len, len);
        assert_memory_equal(now, before, len);
        free(now);
        assert_int_equal(count_prefixed("full.h5.tmp."), 0);
    }
    signal(SIGXFSZ, old_sig);
    free(before);
    NN_CHECK(io_ckpt_save(path, &h.ck));
    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    NN_CHECK(io_ckpt_verify(r, NULL, NULL));
    assert_int_equal(io_ckpt_info(r)->train.global_step, 104);
    io_ckpt_close(r);
}

/* Replaces dataset name of the checkpoint at path by one of n values of type mtype (stored
 * as ftype), contiguous and without a checksum, as another tool might write it. */
static void replace_dataset(const char *path, const char *name, hid_t ftype, hid_t mtype,
                            int ndim, const hsize_t *dims, const void *data)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Ldelete(f, name, H5P_DEFAULT) >= 0);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
}

/* Weights of another type are refused by name, never converted; a dataset without a
 * checksum reads, but --verify does not vouch for it. */
static void foreign_types_and_unchecked_datasets(void **state)
{
    (void)state;
    handmade h;
    handmade_init(&h);
    char path[1024];
    io_ckpt_reader *r = NULL;

    tu_tmp_path(path, sizeof path, "int-weights.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    const int32_t iw[W_N] = {1, 2, 3};
    const hsize_t wd[2] = {3, 4};
    replace_dataset(path, "params/group0/body.0.weight", H5T_STD_I32LE, H5T_NATIVE_INT32, 2, wd, iw);
    assert_int_equal(io_ckpt_open(&r, path), NN_EFORMAT);
    tu_expect_msg(path, "dataset /params/group0/body.0.weight is int32", "float32");

    tu_tmp_path(path, sizeof path, "double-buffer.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    const double dm[RM_N] = {0.5, 0.25, 0.125};
    const hsize_t bd[1] = {RM_N};
    replace_dataset(path, "buffers/body.1.running_mean", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, bd, dm);
    NN_CHECK(io_ckpt_open(&r, path));
    float rm[RM_N];
    assert_int_equal(io_ckpt_read_buffer(r, io_ckpt_find_buffer(r, "body.1.running_mean"), rm),
                     NN_EFORMAT);
    tu_expect_msg("dataset /buffers/body.1.running_mean is float64");
    io_ckpt_close(r);

    tu_tmp_path(path, sizeof path, "unchecked.h5");
    NN_CHECK(io_ckpt_save(path, &h.ck));
    const float fm[RM_N] = {0.5f, 0.25f, 0.125f};
    replace_dataset(path, "buffers/body.1.running_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, bd, fm);
    NN_CHECK(io_ckpt_open(&r, path));
    NN_CHECK(io_ckpt_read_buffer(r, io_ckpt_find_buffer(r, "body.1.running_mean"), rm));
    assert_memory_equal(rm, fm, sizeof fm);
    assert_int_equal(io_ckpt_verify(r, NULL, NULL), NN_EFORMAT);
    tu_expect_msg(path, "datasets have no fletcher32 checksum", "/buffers/body.1.running_mean");
    io_ckpt_close(r);
}

/* ---- io_ckpt: the run directory ----------------------------------------------------------- */

static int exists_in(const char *dir, const char *name)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static void latest_and_prune(void **state)
{
    (void)state;
    char dir[1024], p[1200];
    tu_tmp_path(dir, sizeof dir, "rundir");
    assert_int_equal(mkdir(dir, 0777), 0);
    assert_int_equal(io_ckpt_latest(p, sizeof p, dir), NN_ENOTFOUND);
    tu_expect_msg(dir, "no checkpoint yet");

    const char *names[] = {"ckpt-000000010.h5", "ckpt-000000020.h5", "ckpt-000000030.h5",
                           "ckpt-000000040.h5", "ckpt-000000050.h5"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        tu_write_file(p, "x", 1, 0);
    }
    /* A dead save's temporary file (no process 2^22 + 1 exists: above Linux's pid_max
     * default), and a file prune must not touch. */
    snprintf(p, sizeof p, "%s/ckpt-000000060.h5.tmp.4194305.1", dir);
    tu_write_file(p, "x", 1, 0);
    snprintf(p, sizeof p, "%s/weights.h5", dir);
    tu_write_file(p, "x", 1, 0);

    NN_CHECK(io_ckpt_set_latest(dir, "ckpt-000000020.h5"));
    char got[1200], want[1200];
    NN_CHECK(io_ckpt_latest(got, sizeof got, dir));
    snprintf(want, sizeof want, "%s/ckpt-000000020.h5", dir);
    assert_string_equal(got, want);

    int removed = -1;
    NN_CHECK(io_ckpt_prune(dir, 2, &removed));
    /* The two newest stay, and the one latest names; the dead save's file goes. */
    assert_int_equal(removed, 3);
    assert_false(exists_in(dir, names[0]));
    assert_true(exists_in(dir, names[1]));
    assert_false(exists_in(dir, names[2]));
    assert_true(exists_in(dir, names[3]));
    assert_true(exists_in(dir, names[4]));
    assert_false(exists_in(dir, "ckpt-000000060.h5.tmp.4194305.1"));
    assert_true(exists_in(dir, "weights.h5"));

    assert_int_equal(io_ckpt_prune(dir, 0, NULL), NN_ERANGE);
    tu_expect_msg("checkpoint.keep 0");

    /* io_clean_temps: only dead writers' temporary files (of a checkpoint, latest or any file
     * io_write_atomic writes), never a checkpoint, a name that merely holds ".tmp.", or one
     * of a live process (this one's, or pid 1's). */
    const char *temps[] = {"ckpt-000000070.h5.tmp.4194305.2", "latest.tmp.4194305.3",
                           "config.yaml.tmp.4194305.9"};
    const char *kept[] = {"notes.tmp.txt", "x.tmp.4194305.", "y.tmp.4194305.1a"};
    char live[2][64];
    snprintf(live[0], sizeof live[0], "ckpt-000000080.h5.tmp.%ld.1", (long)getpid());
    snprintf(live[1], sizeof live[1], "latest.tmp.1.4");
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, temps[i]);
        tu_write_file(p, "x", 1, 0);
        snprintf(p, sizeof p, "%s/%s", dir, kept[i]);
        tu_write_file(p, "x", 1, 0);
        if (i == 2) continue;
        snprintf(p, sizeof p, "%s/%s", dir, live[i]);
        tu_write_file(p, "x", 1, 0);
    }
    NN_CHECK(io_clean_temps(dir, &removed));
    assert_int_equal(removed, 3);
    for (int i = 0; i < 3; i++) {
        assert_false(exists_in(dir, temps[i]));
        assert_true(exists_in(dir, kept[i]));
        if (i < 2) assert_true(exists_in(dir, live[i]));
    }
    assert_true(exists_in(dir, names[4]));
    assert_true(exists_in(dir, "latest"));
    char nodir[1200];
    snprintf(nodir, sizeof nodir, "%s/none", dir);
    assert_int_equal(io_clean_temps(nodir, &removed), NN_EIO);

    snprintf(p, sizeof p, "%s/latest", dir);
    tu_write_file(p, "../../etc/passwd\n", 17, 0);
    assert_int_equal(io_ckpt_latest(got, sizeof got, dir), NN_EFORMAT);
    tu_expect_msg(dir, "does not hold a checkpoint file name");
}

/* The global step a checkpoint file holds. */
static long file_step(const char *path)
{
    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    const long step = io_ckpt_info(r)->train.global_step;
    io_ckpt_close(r);
    return step;
}

/* --resume auto's choice: the newest checkpoint that opens, whatever latest says. */
static void find_resume_whatever_latest_says(void **state)
{
    (void)state;
    char dir[1024], p[1200];
    tu_tmp_path(dir, sizeof dir, "resume-dir");
    assert_int_equal(mkdir(dir, 0777), 0);
    io_ckpt_found got;
    assert_int_equal(io_ckpt_find_resume(&got, dir), NN_ENOTFOUND);
    tu_expect_msg(dir, "no checkpoint to resume from (no ckpt-*.h5 files)");

    handmade h;
    handmade_init(&h);
    char want[1200];
    for (int step = 10; step <= 30; step += 10) {
        snprintf(p, sizeof p, "%s/ckpt-%09d.h5", dir, step);
        h.ck.train.global_step = step;
        NN_CHECK(io_ckpt_save(p, &h.ck));
    }
    snprintf(want, sizeof want, "%s/ckpt-000000030.h5", dir);

    /* latest missing: the newest file, and why says so. */
    NN_CHECK(io_ckpt_find_resume(&got, dir));
    assert_string_equal(got.path, want);
    assert_int_equal(got.latest_ok, 0);
    assert_non_null(strstr(got.why, "latest is missing"));

    NN_CHECK(io_ckpt_set_latest(dir, "ckpt-000000030.h5"));
    NN_CHECK(io_ckpt_find_resume(&got, dir));
    assert_string_equal(got.path, want);
    assert_int_equal(got.latest_ok, 1);
    assert_string_equal(got.why, "");

    /* latest stale (a crash between a save's rename and latest's update). */
    NN_CHECK(io_ckpt_set_latest(dir, "ckpt-000000020.h5"));
    NN_CHECK(io_ckpt_find_resume(&got, dir));
    assert_string_equal(got.path, want);
    assert_int_equal(got.latest_ok, 0);
    assert_non_null(strstr(got.why, "latest names ckpt-000000020.h5, but ckpt-000000030.h5 is newer"));

    /* A newer file that does not open is skipped and named, not taken for none. */
    NN_CHECK(io_ckpt_set_latest(dir, "ckpt-000000030.h5"));
    snprintf(p, sizeof p, "%s/ckpt-000000040.h5", dir);
    tu_write_file(p, "torn", 4, 0);
    NN_CHECK(io_ckpt_find_resume(&got, dir));
    assert_string_equal(got.path, want);
    assert_int_equal(got.latest_ok, 1);
    assert_int_equal(got.skipped, 1);
    assert_non_null(strstr(got.why, "1 newer file(s) do not open"));
    assert_non_null(strstr(got.why, "ckpt-000000040.h5: not an HDF5 file"));
    assert_int_equal(file_step(want), 30);

    /* Nothing that opens: an error naming the newest file's problem. */
    for (int step = 10; step <= 30; step += 10) {
        snprintf(p, sizeof p, "%s/ckpt-%09d.h5", dir, step);
        tu_write_file(p, "torn", 4, 0);
    }
    assert_int_equal(io_ckpt_find_resume(&got, dir), NN_ENOTFOUND);
    tu_expect_msg("no ckpt-*.h5 file opens", "ckpt-000000040.h5: not an HDF5 file");
}

/* ---- trainer_ckpt: a model and its optimizer to a file and back ------------------------- */

static nn_model *mlp(int classes, int width, uint64_t seed)
{
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.arch = "mlp";
    s.in_c = 1, s.in_h = 4, s.in_w = 4;
    s.classes = classes;
    s.head = NN_HEAD_LINEAR;
    s.nwidths = 2;
    s.widths[0] = width;
    s.widths[1] = 8;
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_model *m = NULL;
    NN_CHECK(nn_model_init(&m, &s, &rng));
    return m;
}

/* Saves m (with opt's state filled with known values) to path as the trainer does. */
static void save_model(const char *path, nn_model *m, trainer_opt *opt)
{
    for (int g = 0; g < m->ngroups; g++) {
        for (size_t i = 0; i < m->groups[g].numel; i++) opt->state1[g][i] = 0.5f + (float)(g * 1000 + i);
        opt->step[g] = 10 + g;
        opt->step_bn[g] = 20 + g;
    }
    io_ckpt ck;
    NN_CHECK(trainer_ckpt_fill(&ck, m, opt));
    ck.config = "";
    for (int g = 0; g < ck.ngroups; g++) ck.groups[g].lr = 1e-3, ck.groups[g].momentum = 0.9;
    NN_CHECK(io_ckpt_save(path, &ck));
    trainer_ckpt_release(&ck);
}

static float *slab_copy(const nn_group *g)
{
    float *c = malloc(g->numel * sizeof *c + 1);
    assert_non_null(c);
    memcpy(c, g->param_slab, g->numel * sizeof *c);
    return c;
}

static void model_and_optimizer_round_trip(void **state)
{
    (void)state;
    nn_model *a = mlp(3, 16, 11), *b = mlp(3, 16, 99);
    trainer_opt oa, ob;
    NN_CHECK(trainer_opt_init(&oa, a, TRAINER_OPT_SGD, 0, 0.99, 1e-5, 0));
    NN_CHECK(trainer_opt_init(&ob, b, TRAINER_OPT_SGD, 0, 0.99, 1e-5, 0));
    assert_true(a->ngroups >= 2);
    /* Different seeds: a load that did nothing would fail below. */
    assert_memory_not_equal(a->groups[0].param_slab, b->groups[0].param_slab,
                            a->groups[0].numel * sizeof(float));
    char path[1024];
    tu_tmp_path(path, sizeof path, "model.h5");
    save_model(path, a, &oa);

    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    trainer_ckpt_counts n;
    NN_CHECK(trainer_ckpt_load(b, &ob, r, 0, &n));
    size_t total = 0;
    int nparams = 0;
    for (int g = 0; g < a->ngroups; g++) {
        const size_t bytes = a->groups[g].numel * sizeof(float);
        assert_memory_equal(b->groups[g].param_slab, a->groups[g].param_slab, bytes);
        assert_memory_equal(ob.state1[g], oa.state1[g], bytes);
        /* The step counters travel in the tables (the trainer restores them with the
         * schedule's position), the state tensors through the load. */
        assert_int_equal(io_ckpt_info(r)->opt_step[g], 10 + g);
        assert_int_equal(io_ckpt_info(r)->opt_step_bn[g], 20 + g);
        total += a->groups[g].numel;
        nparams += a->groups[g].nparams;
    }
    assert_int_equal(n.loaded, nparams);
    assert_int_equal(n.loaded_values, total);
    assert_int_equal(n.fresh, 0);
    io_ckpt_close(r);
    trainer_opt_free(&oa);
    trainer_opt_free(&ob);
    nn_model_free(a);
    nn_model_free(b);
}

/* fastai's transfer: the body from the file, a new head (5 classes, not 3) left as it was. */
static void body_only_under_a_new_head(void **state)
{
    (void)state;
    nn_model *a = mlp(3, 16, 11), *b = mlp(5, 16, 99);
    trainer_opt oa;
    NN_CHECK(trainer_opt_init(&oa, a, TRAINER_OPT_SGD, 0, 0.99, 1e-5, 0));
    char path[1024];
    tu_tmp_path(path, sizeof path, "body.h5");
    save_model(path, a, &oa);
    const int head = b->ngroups - 1;
    float *head_before = slab_copy(&b->groups[head]);

    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    trainer_ckpt_counts n;
    NN_CHECK(trainer_ckpt_load(b, NULL, r, 1, &n));
    for (int g = 0; g < head; g++)
        assert_memory_equal(b->groups[g].param_slab, a->groups[g].param_slab,
                            a->groups[g].numel * sizeof(float));
    assert_memory_equal(b->groups[head].param_slab, head_before,
                        b->groups[head].numel * sizeof(float));
    assert_int_equal(n.fresh, b->groups[head].nparams);
    assert_int_equal(n.fresh_values, b->groups[head].numel);

    /* The whole model cannot load: the head's shapes differ, and the message says which. */
    assert_int_equal(trainer_ckpt_load(b, NULL, r, 0, &n), NN_ESHAPE);
    tu_expect_msg(path, "head", "in the checkpoint, the model needs");
    io_ckpt_close(r);
    free(head_before);
    trainer_opt_free(&oa);
    nn_model_free(a);
    nn_model_free(b);
}

static void body_shape_mismatch_is_refused(void **state)
{
    (void)state;
    nn_model *a = mlp(3, 16, 11), *b = mlp(3, 12, 99);
    char path[1024];
    tu_tmp_path(path, sizeof path, "narrow.h5");
    io_ckpt ck;
    NN_CHECK(trainer_ckpt_fill(&ck, a, NULL));
    ck.config = "";
    NN_CHECK(io_ckpt_save(path, &ck));
    trainer_ckpt_release(&ck);
    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    assert_string_equal(io_ckpt_info(r)->kind, "weights");
    trainer_ckpt_counts n;
    assert_int_equal(trainer_ckpt_load(b, NULL, r, 1, &n), NN_ESHAPE);
    tu_expect_msg(path, "has shape (16, 16) in the checkpoint, the model needs (12, 16)");
    io_ckpt_close(r);
    nn_model_free(a);
    nn_model_free(b);
}

/* A non-finite weight, optimizer state or buffer is never filled into a checkpoint; one that
 * reaches a file anyway (written by io directly) is refused on load, naming the tensor. */
static void nonfinite_never_saved_nor_loaded(void **state)
{
    (void)state;
    nn_model *a = mlp(3, 16, 11), *b = mlp(3, 16, 99);
    trainer_opt o;
    NN_CHECK(trainer_opt_init(&o, a, TRAINER_OPT_ADAMW, 0, 0.99, 1e-8, 0));
    io_ckpt ck;
    o.state2[1][3] = INFINITY;
    assert_int_equal(trainer_ckpt_fill(&ck, a, &o), NN_ERANGE);
    tu_expect_msg("nothing saved", "optimizer state 2 of parameter", "inf at index 3");
    assert_null(ck.params);
    o.state2[1][3] = 0.0f;
    a->groups[0].param_slab[7] = NAN;
    assert_int_equal(trainer_ckpt_fill(&ck, a, NULL), NN_ERANGE);
    tu_expect_msg("nothing saved", "parameter 'body.", "nan at index 7");

    char path[1024];
    tu_tmp_path(path, sizeof path, "nan.h5");
    a->groups[0].param_slab[7] = 0.0f;
    NN_CHECK(trainer_ckpt_fill(&ck, a, NULL));
    a->groups[0].param_slab[7] = NAN; /* ck points into the model: the file gets the NaN */
    ck.config = "";
    NN_CHECK(io_ckpt_save(path, &ck));
    trainer_ckpt_release(&ck);
    io_ckpt_reader *r = NULL;
    NN_CHECK(io_ckpt_open(&r, path));
    trainer_ckpt_counts n;
    assert_int_equal(trainer_ckpt_load(b, NULL, r, 0, &n), NN_ERANGE);
    tu_expect_msg(path, "holds a non-finite value (nan at index 7");
    io_ckpt_close(r);
    trainer_opt_free(&o);
    nn_model_free(a);
    nn_model_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_every_table),
        cmocka_unit_test(flipped_byte_is_caught),
        cmocka_unit_test(refusals_name_the_file),
        cmocka_unit_test(save_replaces),
        cmocka_unit_test(failed_write_is_an_error),
        cmocka_unit_test(foreign_types_and_unchecked_datasets),
        cmocka_unit_test(latest_and_prune),
        cmocka_unit_test(find_resume_whatever_latest_says),
        cmocka_unit_test(model_and_optimizer_round_trip),
        cmocka_unit_test(body_only_under_a_new_head),
        cmocka_unit_test(body_shape_mismatch_is_refused),
        cmocka_unit_test(nonfinite_never_saved_nor_loaded),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
