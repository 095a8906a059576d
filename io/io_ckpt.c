/* Checkpoints in HDF5: the layout of docs/checkpoint-format.md, written atomically through
 * io_write_atomic and read back table by table, tensors on demand. */
#include "io/io.h"
#include "io/io_internal.h"

#include "nn/nn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small HDF5 helpers: each returns 0 or a negative HDF5 status --------------------- */

static int attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n, const void *v)
{
    hsize_t dims[1] = {(hsize_t)n};
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, mtype, v) < 0) ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return rc;
}

static int attr_int(hid_t obj, const char *name, long long v)
{
    int64_t x = v;
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &x);
}

static int attr_u64(hid_t obj, const char *name, uint64_t v)
{
    return attr_write(obj, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, 0, &v);
}

static int attr_double(hid_t obj, const char *name, double v)
{
    return attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &v);
}

static int attr_ints(hid_t obj, const char *name, const int *v, int n)
{
    int64_t x[8];
    for (int i = 0; i < n; i++) x[i] = v[i];
    return attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, n, x);
}

/* A fixed-length, NUL-terminated string type of the string's own length. */
static hid_t str_type(size_t len)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t >= 0 && (H5Tset_size(t, len ? len : 1) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0)) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

static int attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = str_type(strlen(s));
    int rc = t < 0 ? -1 : attr_write(obj, name, t, t, 0, s[0] ? s : " ");
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* Dataset creation properties: fletcher32 (which needs chunks) on chunks as large as the
 * tensor up to IO__CHUNK_MAX bytes; a larger tensor is cut into equal chunks along its first
 * dimension that can be cut, so a chunk never pads more than a few rows. No fill values
 * (every chunk is written in full). */
#define IO__CHUNK_MAX ((size_t)256 << 20)
static hid_t dcpl_checked(int ndim, const hsize_t *dims, size_t elem)
{
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    if (pl < 0) return -1;
    hsize_t chunk[4];
    for (int i = 0; i < ndim; i++) chunk[i] = dims[i] ? dims[i] : 1;
    for (int i = 0; i < ndim; i++) {
        size_t inner = elem; /* bytes of one slice along dimension i */
        for (int j = i + 1; j < ndim; j++) inner *= chunk[j];
        const size_t whole = inner * chunk[i];
        if (whole <= IO__CHUNK_MAX) break;
        if (inner <= IO__CHUNK_MAX) {
            const size_t n = (whole + IO__CHUNK_MAX - 1) / IO__CHUNK_MAX;
            chunk[i] = (chunk[i] + n - 1) / n;
            break;
        }
        chunk[i] = 1;
    }
    if (H5Pset_chunk(pl, ndim, chunk) < 0 || H5Pset_fletcher32(pl) < 0 ||
        H5Pset_fill_time(pl, H5D_FILL_TIME_NEVER) < 0) {
        H5Pclose(pl);
        return -1;
    }
    return pl;
}

/* A dataset at path (intermediate groups created) of ndim dims, chunked and checksummed. */
static int dset_write(hid_t f, const char *path, hid_t ftype, hid_t mtype, int ndim,
                      const hsize_t *dims, const void *data, size_t elem)
{
    hid_t pl = dcpl_checked(ndim, dims, elem);
    int rc = pl < 0 ? -1 : io__h5_dset_write(f, path, ftype, mtype, ndim, dims, pl, data);
    if (pl >= 0) H5Pclose(pl);
    return rc;
}

/* A 1-element dataset holding one string (large text: the config, the metrics). */
static int dset_text(hid_t f, const char *path, const char *s)
{
    const size_t len = strlen(s);
    hid_t t = str_type(len);
    hsize_t dims[1] = {1};
    int rc = t < 0 ? -1 : dset_write(f, path, t, t, 1, dims, len ? s : " ", len ? len : 1);
    if (t >= 0) H5Tclose(t);
    return rc;
}

/* ---- save ------------------------------------------------------------------------------ */

typedef struct {
    const io_ckpt *ck;
    char where[640]; /* what was being written when something failed */
    uint8_t *chunk;  /* scratch for a chunk and its checksum, grown as needed */
    size_t chunk_cap;
    const io__h5fd_state *io; /* the file driver's state: a failed write shows there */
} save_job;

/* HDF5's Fletcher-32 checksum (H5_checksum_fletcher32: 16-bit big-endian words, both sums
 * in ones' complement modulo 65535 kept in [1, 65535] once positive), computed in blocks of
 * 360 words as a sum and a weighted sum, which the compiler vectorises: about 4 times the
 * speed of HDF5's own loop. tests/ckpt_*.sh read every dataset back through HDF5's filter,
 * which checks it. */
static uint32_t fletcher32(const void *data, size_t nbytes)
{
    const uint8_t *p = data;
    size_t n = nbytes / 2;
    uint64_t s1 = 0, s2 = 0;
    int any = 0;
    enum { B = 360 }; /* the weighted sum of 360 words fits 32 bits */
    while (n) {
        const size_t b = n < B ? n : B;
        uint32_t bs = 0, bw = 0;
        for (size_t i = 0; i < b; i++) {
            const uint32_t w = ((uint32_t)p[2 * i] << 8) | p[2 * i + 1];
            bs += w;
            bw += (uint32_t)(b - i) * w;
        }
        any |= bs != 0;
        s2 = (s2 + (uint64_t)b * s1 + bw) % 65535;
        s1 = (s1 + bs) % 65535;
        p += 2 * b;
        n -= b;
    }
    if (nbytes % 2) {
        const uint32_t w = (uint32_t)p[0] << 8;
        any |= w != 0;
        s1 = (s1 + w) % 65535;
        s2 = (s2 + s1) % 65535;
    }
    if (!any) return 0;
    const uint32_t a = s1 ? (uint32_t)s1 : 65535, b2 = s2 ? (uint32_t)s2 : 65535;
    return (b2 << 16) | a;
}

/* A float32 tensor at path. A tensor that is one chunk (all but those over IO__CHUNK_MAX) is
 * written as a raw chunk (H5Dwrite_chunk): its bytes and their Fletcher-32 checksum, as
 * HDF5's filter would store them (little-endian hosts; elsewhere the filter pipeline). */
static int dset_write_f32(hid_t f, save_job *job, const char *path, int ndim, const hsize_t *dims,
                          const float *data)
{
    hid_t pl = dcpl_checked(ndim, dims, sizeof(float));
    hid_t d = pl < 0 ? -1 : io__h5_dset_create(f, path, H5T_IEEE_F32LE, ndim, dims, pl);
    int rc = d < 0 ? -1 : 0;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i];
    hsize_t chunk[4];
    int one_chunk = 0;
    if (!rc && H5Pget_chunk(pl, 4, chunk) == ndim) {
        one_chunk = 1;
        for (int i = 0; i < ndim; i++) one_chunk &= chunk[i] == dims[i];
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (!rc && one_chunk && numel > 0) {
        const size_t nbytes = numel * sizeof(float);
        if (job->chunk_cap < nbytes + 4) {
            uint8_t *nb = realloc(job->chunk, nbytes + 4);
            if (!nb) rc = -1;
            else job->chunk = nb, job->chunk_cap = nbytes + 4;
        }
        if (!rc) {
            memcpy(job->chunk, data, nbytes);
            const uint32_t sum = fletcher32(job->chunk, nbytes);
            for (int k = 0; k < 4; k++) job->chunk[nbytes + k] = (uint8_t)(sum >> (8 * k));
            hsize_t offset[4] = {0, 0, 0, 0};
            rc = H5Dwrite_chunk(d, H5P_DEFAULT, 0, offset, nbytes + 4, job->chunk) < 0 ? -1 : 0;
        }
        one_chunk = 2; /* written */
    }
#endif
    if (!rc && one_chunk != 2 && H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = -1;
    if (d >= 0) H5Dclose(d);
    if (pl >= 0) H5Pclose(pl);
    return rc;
}

/* For the write_* helpers: when expr fails (negative) or the file driver recorded a failed
 * write, records in job->where what was being written and jumps to the helper's fail label,
 * which returns save_fail's error (write_file puts the driver's in its place). */
#define TRY(expr, ...)                                                  \
    do {                                                                \
        if ((expr) < 0 || job->io->failed) {                            \
            snprintf(job->where, sizeof job->where, __VA_ARGS__);       \
            goto fail;                                                  \
        }                                                               \
    } while (0)

static int build_file(hid_t f, save_job *job, const char *path);

/* The file streams to tmp as HDF5 makes it, through strata's file driver (io_h5fd.c): no
 * image of it is held in memory, and a failed write (a full disk, ulimit -f, EIO) is an
 * NN_EIO error with the system's cause and what was being written, while every HDF5 close
 * still completes (HDF5's own sec2 driver fails the close, which keeps the file open and
 * crashes HDF5 at exit). fsync, rename and the directory's fsync are io_write_atomic's. */
static int write_file(const char *tmp, const char *path, void *ud)
{
    save_job *job = ud;
    io__h5fd_state st;
    int rc = io__h5fd_begin(&st, tmp, path);
    if (rc) return rc;
    job->io = &st;
    hid_t fapl = io__h5fd_fapl(&st);
    hid_t f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    if (fapl >= 0) H5Pclose(fapl);
    if (f < 0) {
        rc = io__h5_fail(path, "cannot create the checkpoint file");
    } else {
        rc = build_file(f, job, path);
        if (!rc && (H5Fflush(f, H5F_SCOPE_LOCAL) < 0 || st.failed)) {
            snprintf(job->where, sizeof job->where, "the file's metadata");
            rc = io__h5_fail(path, "cannot finish the checkpoint file");
        }
        if (H5Fclose(f) < 0 && !rc) rc = io__h5_fail(path, "cannot close the checkpoint file");
    }
    job->io = NULL;
    return io__h5fd_end(&st, rc, tmp, path, job->where);
}

/* The error for a failed write: NN_EHDF5 "cannot write <job->where>" with HDF5's message,
 * taken before g (-1: none) is closed, since a call into HDF5 clears its error stack. */
static int save_fail(save_job *job, const char *path, hid_t g)
{
    char doing[700];
    snprintf(doing, sizeof doing, "cannot write %s", job->where);
    const int rc = io__h5_fail(path, doing);
    if (g >= 0) H5Gclose(g);
    return rc;
}

/* Writes the root attributes (format, versions, creation time, world size, kind) and the
 * config and metrics texts. 0, or save_fail's error. */
static int write_root(hid_t f, save_job *job, const char *path)
{
    const io_ckpt *ck = job->ck;
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    char hv[32], when[32];
    snprintf(hv, sizeof hv, "%u.%u.%u", maj, min, rel);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    TRY(attr_str(f, "format", IO_CKPT_FORMAT), "root attribute format");
    TRY(attr_int(f, "format_version", IO_CKPT_VERSION), "root attribute format_version");
    TRY(attr_str(f, "strata_version", STRATA_VERSION), "root attribute strata_version");
    TRY(attr_str(f, "hdf5_version", hv), "root attribute hdf5_version");
    TRY(attr_str(f, "created", when), "root attribute created");
    TRY(attr_int(f, "world_size", ck->world_size), "root attribute world_size");
    TRY(attr_str(f, "kind", ck->train.has ? "training" : "weights"), "root attribute kind");
    TRY(dset_text(f, "config", ck->config ? ck->config : ""), "dataset config");
    if (ck->metrics) TRY(dset_text(f, "metrics", ck->metrics), "dataset metrics");
    return 0;
fail:
    return save_fail(job, path, -1);
}

/* Writes /model with its attributes and the empty /groups that write_group fills. 0, or
 * save_fail's error. */
static int write_model(hid_t f, save_job *job, const char *path)
{
    const io_ckpt *ck = job->ck;
    hid_t g = -1;
    TRY(g = H5Gcreate2(f, "model", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group model");
    TRY(attr_str(g, "arch", ck->arch), "model attribute arch");
    TRY(attr_ints(g, "input", ck->input, 3), "model attribute input");
    TRY(attr_int(g, "classes", ck->classes), "model attribute classes");
    TRY(attr_int(g, "cut", ck->cut), "model attribute cut");
    TRY(attr_str(g, "head", ck->head[0] ? ck->head : "default"), "model attribute head");
    TRY(attr_int(g, "small_stem", ck->small_stem), "model attribute small_stem");
    TRY(attr_int(g, "ngroups", ck->ngroups), "model attribute ngroups");
    H5Gclose(g);
    g = -1;
    TRY(g = H5Gcreate2(f, "groups", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group groups");
    H5Gclose(g);
    return 0;
fail:
    return save_fail(job, path, g);
}

/* Writes /groups/<k>/parameters: the names of group k's parameters (ck->params from pi on)
 * in slab order, one fixed-length string each. 0, NN_ENOMEM, or save_fail's error. */
static int write_group_names(hid_t f, save_job *job, const char *path, int k, int pi)
{
    const io_ckpt *ck = job->ck;
    const io_ckpt_group *gr = &ck->groups[k];
    char p[512];
    size_t w = 1;
    for (int i = 0; i < gr->nparams; i++) {
        size_t l = strlen(ck->params[pi + i].name);
        if (l > w) w = l;
    }
    char *names = calloc((size_t)gr->nparams, w);
    if (!names) return nn_err(NN_ENOMEM, "%s: cannot allocate the names of group %d", path, k);
    for (int i = 0; i < gr->nparams; i++)
        memcpy(names + (size_t)i * w, ck->params[pi + i].name, strlen(ck->params[pi + i].name));
    hid_t t = str_type(w);
    hsize_t dims[1] = {(hsize_t)gr->nparams};
    snprintf(p, sizeof p, "groups/%d/parameters", k);
    int rc = t < 0 ? -1 : dset_write(f, p, t, t, 1, dims, names, w);
    if (t >= 0) H5Tclose(t);
    free(names);
    TRY(rc, "dataset %s", p);
    return 0;
fail:
    return save_fail(job, path, -1);
}

/* Writes /groups/<k> with its attributes and, when it has any, its parameter names (pi: the
 * index of its first parameter in ck->params). 0, NN_ENOMEM, or save_fail's error. */
static int write_group(hid_t f, save_job *job, const char *path, int k, int pi)
{
    const io_ckpt_group *gr = &job->ck->groups[k];
    hid_t g = -1;
    char p[512];
    snprintf(p, sizeof p, "groups/%d", k);
    TRY(g = H5Gcreate2(f, p, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group %s", p);
    TRY(attr_int(g, "index", k), "%s attributes", p);
    TRY(attr_str(g, "name", gr->name), "%s attributes", p);
    TRY(attr_int(g, "first", gr->first), "%s attributes", p);
    TRY(attr_int(g, "last", gr->last), "%s attributes", p);
    TRY(attr_int(g, "frozen", gr->frozen), "%s attributes", p);
    TRY(attr_double(g, "lr", gr->lr), "%s attributes", p);
    TRY(attr_double(g, "wd", gr->wd), "%s attributes", p);
    TRY(attr_double(g, "momentum", gr->momentum), "%s attributes", p);
    TRY(attr_int(g, "numel", (long long)gr->numel), "%s attributes", p);
    H5Gclose(g);
    return gr->nparams > 0 ? write_group_names(f, job, path, k, pi) : 0;
fail:
    return save_fail(job, path, g);
}

/* Writes every parameter (with its PyTorch shape) and its optimizer state, then the
 * buffers, as float32 datasets. 0, or save_fail's error. */
static int write_tensors(hid_t f, save_job *job, const char *path)
{
    const io_ckpt *ck = job->ck;
    char p[512];
    for (int i = 0; i < ck->nparams; i++) {
        const io_ckpt_param *pa = &ck->params[i];
        hsize_t dims[4];
        for (int d = 0; d < pa->ndim; d++) dims[d] = (hsize_t)pa->shape[d];
        snprintf(p, sizeof p, "params/group%d/%s", pa->group, pa->name);
        TRY(dset_write_f32(f, job, p, pa->ndim, dims, pa->data),
            "dataset %s", p);
        for (int s = 0; s < ck->nstates; s++) {
            snprintf(p, sizeof p, "optimizer/%s/group%d/%s", ck->state_names[s], pa->group, pa->name);
            TRY(dset_write_f32(f, job, p, pa->ndim, dims, pa->state[s]),
                "dataset %s", p);
        }
    }
    for (int i = 0; i < ck->nbuffers; i++) {
        hsize_t dims[1] = {ck->buffers[i].numel};
        snprintf(p, sizeof p, "buffers/%s", ck->buffers[i].name);
        TRY(dset_write_f32(f, job, p, 1, dims, ck->buffers[i].data),
            "dataset %s", p);
    }
    return 0;
fail:
    return save_fail(job, path, -1);
}

/* Writes the optimizer's settings (attributes of /optimizer, which write_tensors may have
 * created) and its per-group step counters. 0, or save_fail's error. */
static int write_optimizer(hid_t f, save_job *job, const char *path)
{
    const io_ckpt *ck = job->ck;
    hid_t g = -1;
    if (H5Lexists(f, "optimizer", H5P_DEFAULT) > 0)
        g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    else
        g = H5Gcreate2(f, "optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    TRY(g, "group optimizer");
    TRY(attr_str(g, "type", ck->opt_type), "optimizer attributes");
    TRY(attr_int(g, "nesterov", ck->nesterov), "optimizer attributes");
    TRY(attr_double(g, "beta2", ck->beta2), "optimizer attributes");
    TRY(attr_double(g, "eps", ck->eps), "optimizer attributes");
    TRY(attr_int(g, "decay_bn_bias", ck->decay_bn_bias), "optimizer attributes");
    H5Gclose(g);
    g = -1;
    int64_t st[IO_CKPT_MAX_GROUPS], stbn[IO_CKPT_MAX_GROUPS];
    for (int k = 0; k < ck->ngroups; k++) st[k] = ck->opt_step[k], stbn[k] = ck->opt_step_bn[k];
    hsize_t dims[1] = {(hsize_t)ck->ngroups};
    TRY(dset_write(f, "optimizer/step", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims, st, 8),
        "dataset optimizer/step");
    TRY(dset_write(f, "optimizer/step_bn", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, dims, stbn, 8),
        "dataset optimizer/step_bn");
    return 0;
fail:
    return save_fail(job, path, g);
}

/* Writes /train_state: where training stands, and the ranks' RNG states. 0, or save_fail's
 * error. */
static int write_train_state(hid_t f, save_job *job, const char *path)
{
    const io_ckpt_train *t = &job->ck->train;
    hid_t g = -1;
    TRY(g = H5Gcreate2(f, "train_state", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), "group train_state");
    TRY(attr_int(g, "phase", t->phase), "train_state attributes");
    TRY(attr_int(g, "epoch", t->epoch), "train_state attributes");
    TRY(attr_int(g, "epoch_in_phase", t->epoch_in_phase), "train_state attributes");
    TRY(attr_int(g, "step_in_epoch", t->step_in_epoch), "train_state attributes");
    TRY(attr_int(g, "phase_step", t->phase_step), "train_state attributes");
    TRY(attr_int(g, "global_step", t->global_step), "train_state attributes");
    TRY(attr_int(g, "steps_per_epoch", t->steps_per_epoch), "train_state attributes");
    TRY(attr_int(g, "global_batch", t->global_batch), "train_state attributes");
    TRY(attr_u64(g, "seed", t->seed), "train_state attributes");
    TRY(attr_int(g, "finished", t->finished), "train_state attributes");
    H5Gclose(g);
    g = -1;
    hsize_t dims[2] = {(hsize_t)t->nrng, 4};
    if (t->nrng > 0)
        TRY(dset_write(f, "train_state/rng", H5T_STD_U64LE, H5T_NATIVE_UINT64, 2, dims, t->rng, 8),
            "dataset train_state/rng");
    return 0;
fail:
    return save_fail(job, path, g);
}

/* Writes every table and tensor of job->ck into the open file f: the root, the model and
 * its group table, the tensors, then the optimizer and the train state when there are any.
 * Stops at the first failure, whose error it returns. */
static int build_file(hid_t f, save_job *job, const char *path)
{
    const io_ckpt *ck = job->ck;
    int rc = write_root(f, job, path);
    if (!rc) rc = write_model(f, job, path);
    for (int k = 0, pi = 0; !rc && k < ck->ngroups; k++) {
        rc = write_group(f, job, path, k, pi);
        pi += ck->groups[k].nparams;
    }
    if (!rc) rc = write_tensors(f, job, path);
    if (!rc && ck->opt_type[0]) rc = write_optimizer(f, job, path);
    if (!rc && ck->train.has) rc = write_train_state(f, job, path);
    return rc;
}
#undef TRY

int io_ckpt_save(const char *path, const io_ckpt *ck)
{
    return io_ckpt_save_reuse(path, ck, NULL);
}

void io_ckpt_scratch_free(io_ckpt_scratch *s)
{
    if (!s) return;
    free(s->chunk);
    memset(s, 0, sizeof *s);
}

int io_ckpt_save_reuse(const char *path, const io_ckpt *ck, io_ckpt_scratch *keep)
{
    if (!path || !ck) return nn_err(NN_EINVAL, "io_ckpt_save: NULL argument");
    if (ck->ngroups < 1 || ck->ngroups > IO_CKPT_MAX_GROUPS || ck->nstates < 0 ||
        ck->nstates > IO_CKPT_MAX_STATES)
        return nn_err(NN_EINVAL, "%s: a checkpoint of %d groups and %d optimizer states", path,
                      ck->ngroups, ck->nstates);
    save_job job = {ck, {0}, keep ? keep->chunk : NULL, keep ? keep->chunk_cap : 0, NULL};
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    int rc = io_write_atomic(path, write_file, &job);
    if (keep) {
        keep->chunk = job.chunk;
        keep->chunk_cap = job.chunk_cap;
    } else {
        free(job.chunk);
    }
    io__h5_quiet_end(&q);
    return rc;
}

/* ---- load ------------------------------------------------------------------------------ */

struct io_ckpt_reader {
    char *path;
    hid_t f;
    io_ckpt info;
    char *config, *metrics;
};

/* Reads a numeric attribute (any integer or float type) converted to mtype. Missing: -2. */
static int attr_read(hid_t obj, const char *name, hid_t mtype, void *out, int n)
{
    if (H5Aexists(obj, name) <= 0) return -2;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t sp = a < 0 ? -1 : H5Aget_space(a);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    H5T_class_t cl = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    int rc = (np != (n ? n : 1) || (cl != H5T_INTEGER && cl != H5T_FLOAT) ||
              H5Aread(a, mtype, out) < 0)
                 ? -1
                 : 0;
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (a >= 0) H5Aclose(a);
    return rc;
}

/* Reads a string attribute into buf. Missing: -2. */
static int attr_read_str(hid_t obj, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    if (H5Aexists(obj, name) <= 0) return -2;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a);
    int rc = -1;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t)); /* h5py writes Python strs as UTF-8 */
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, len, "%s", s);
                H5free_memory(s);
                rc = 0;
            }
            H5Tclose(mt);
        } else {
            size_t sz = H5Tget_size(t);
            char *s = calloc(sz + 1, 1);
            if (s && H5Aread(a, t, s) >= 0) {
                snprintf(buf, len, "%s", s);
                rc = 0;
            }
            free(s);
        }
    }
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    /* Trailing padding (a written " " for an empty string). */
    for (size_t l = strlen(buf); l > 0 && buf[l - 1] == ' '; l--) buf[l - 1] = '\0';
    return rc;
}

/* Reads the strings of a 1-D string dataset (fixed or variable length): *out is an array of
 * n malloc'd strings. */
static int dset_read_strs(hid_t f, const char *path, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int rc = -1;
    if (t >= 0 && np >= 0 && H5Tget_class(t) == H5T_STRING) {
        char **v = calloc((size_t)(np ? np : 1), sizeof(char *));
        if (v && H5Tis_variable_str(t) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Dread(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++) {
                    char *c = strdup(v[i] ? v[i] : "");
                    H5free_memory(v[i]);
                    v[i] = c;
                    if (!c) rc = -1;
                }
            }
            H5Tclose(mt);
        } else if (v) {
            size_t w = H5Tget_size(t);
            char *raw = calloc((size_t)(np ? np : 1), w);
            if (raw && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
                rc = 0;
                for (hssize_t i = 0; i < np; i++) {
                    v[i] = calloc(w + 1, 1);
                    if (!v[i]) rc = -1;
                    else memcpy(v[i], raw + (size_t)i * w, w);
                }
            }
            free(raw);
        }
        if (rc == 0) {
            *out = v;
            *n = (int)np;
        } else if (v) {
            for (hssize_t i = 0; i < np; i++) free(v[i]);
            free(v);
        }
    }
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return rc;
}

static void strs_free(char **v, int n)
{
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

/* The text of a 1-element string dataset, malloc'd in *out. */
static int dset_read_text(hid_t f, const char *path, char **out)
{
    char **v;
    int n;
    *out = NULL;
    if (dset_read_strs(f, path, &v, &n) < 0 || n != 1) {
        strs_free(v, n);
        return -1;
    }
    *out = v[0];
    free(v);
    size_t l = strlen(*out);
    if (l == 1 && (*out)[0] == ' ') (*out)[0] = '\0';
    return 0;
}

void io_ckpt_close(io_ckpt_reader *r)
{
    if (!r) return;
    if (r->f >= 0) H5Fclose(r->f);
    free(r->info.params);
    free(r->info.buffers);
    free(r->info.train.rng);
    free(r->config);
    free(r->metrics);
    free(r->path);
    free(r);
}

const io_ckpt *io_ckpt_info(const io_ckpt_reader *r)
{
    return &r->info;
}

const char *io_ckpt_path(const io_ckpt_reader *r)
{
    return r->path;
}

/* Collects the buffer names under /buffers. */
typedef struct {
    io_ckpt_buffer *b;
    int n, cap;
    hid_t g;
    int bad;
} buf_list;

static herr_t collect_buffer(hid_t g, const char *name, const H5L_info_t *info, void *ud)
{
    buf_list *l = ud;
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        io_ckpt_buffer *nb = realloc(l->b, sizeof *nb * (size_t)cap);
        if (!nb) return -1;
        l->b = nb;
        l->cap = cap;
    }
    io_ckpt_buffer *b = &l->b[l->n];
    memset(b, 0, sizeof *b);
    if (strlen(name) >= sizeof b->name) return (l->bad = 1), -1;
    snprintf(b->name, sizeof b->name, "%s", name);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (np < 0) return (l->bad = 1), -1;
    b->numel = (size_t)np;
    l->n++;
    return 0;
}

/* Counts the datasets below a group. */
typedef struct {
    const io_ckpt *ck;
    int n;
    char unlisted[256]; /* a dataset no group lists, if any */
} count_job;

static herr_t count_datasets(hid_t g, const char *name, const H5O_info_t *info, void *ud)
{
    count_job *c = ud;
    if (info->type != H5O_TYPE_DATASET) return 0;
    c->n++;
    int listed = 0;
    char p[300];
    for (int i = 0; i < c->ck->nparams && !listed; i++) {
        snprintf(p, sizeof p, "group%d/%s", c->ck->params[i].group, c->ck->params[i].name);
        listed = !strcmp(p, name);
    }
    if (!listed && !c->unlisted[0]) snprintf(c->unlisted, sizeof c->unlisted, "%s", name);
    return 0;
}

/* 0 when dataset d holds IEEE float32 values (either byte order); otherwise NN_EFORMAT naming
 * the dataset and its type ("int32", "float64", "a string", ...): strata never converts
 * weights of another type silently. */
static int want_f32(hid_t d, const char *path, const char *p)
{
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    const H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    const size_t size = t < 0 ? 0 : H5Tget_size(t);
    const int sgn = cls == H5T_INTEGER ? H5Tget_sign(t) : -1;
    if (t >= 0) H5Tclose(t);
    if (cls == H5T_FLOAT && size == 4) return 0;
    char what[48];
    if (cls == H5T_FLOAT)
        snprintf(what, sizeof what, "float%zu", 8 * size);
    else if (cls == H5T_INTEGER)
        snprintf(what, sizeof what, "%sint%zu", sgn == H5T_SGN_NONE ? "u" : "", 8 * size);
    else
        snprintf(what, sizeof what, "%s", cls == H5T_STRING ? "a string" : "not a number type");
    return nn_err(NN_EFORMAT, "%s: dataset /%s is %s; a strata tensor is float32 (convert it "
                  "explicitly, e.g. with h5py: f[name][...].astype('float32'))", path, p, what);
}

/* Checks that path is a readable HDF5 file, opens it into r->f and reads the root table:
 * format and its version, world size, kind, and the config and metrics texts. 0, or an
 * error naming path. */
static int read_root(io_ckpt_reader *r)
{
    const char *path = r->path;
    io_ckpt *ck = &r->info;
    char s[64];
    if (access(path, F_OK)) return nn_err(NN_EIO, "%s: no such checkpoint: %s", path, strerror(errno));
    if (access(path, R_OK)) return nn_err(NN_EIO, "%s: cannot read the checkpoint: %s", path, strerror(errno));
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0) {
        FILE *fp = fopen(path, "rb");
        if (!fp) return nn_err(NN_EIO, "%s: cannot read the checkpoint: %s", path, strerror(errno));
        fclose(fp);
        return nn_err(NN_EFORMAT, "%s: not an HDF5 file (a strata checkpoint is HDF5; is it a directory, truncated, or another format?)", path);
    }
    r->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (r->f < 0) return io__h5_fail(path, "cannot open the checkpoint");
    hid_t f = r->f;
    int rc = attr_read_str(f, "format", s, sizeof s);
    if (rc == -2 || (rc == 0 && strcmp(s, IO_CKPT_FORMAT)))
        return nn_err(NN_EFORMAT, "%s: an HDF5 file but not a strata checkpoint (root attribute format is %s%s%s, expected '%s')",
                      path, rc == -2 ? "missing" : "'", rc == -2 ? "" : s, rc == -2 ? "" : "'", IO_CKPT_FORMAT);
    if (rc) return io__h5_fail(path, "cannot read root attribute format");
    int64_t v = 0;
    if (attr_read(f, "format_version", H5T_NATIVE_INT64, &v, 0))
        return nn_err(NN_EFORMAT, "%s: root attribute format_version is missing or not an integer", path);
    if (v != IO_CKPT_VERSION)
        return nn_err(NN_EFORMAT, "%s: checkpoint format version %lld; this strata (%s) reads version %d",
                      path, (long long)v, STRATA_VERSION, IO_CKPT_VERSION);
    if (attr_read(f, "world_size", H5T_NATIVE_INT64, &v, 0) || v < 1)
        return nn_err(NN_EFORMAT, "%s: root attribute world_size is missing or not a positive integer", path);
    ck->world_size = (int)v;
    attr_read_str(f, "strata_version", ck->strata_version, sizeof ck->strata_version);
    attr_read_str(f, "hdf5_version", ck->hdf5_version, sizeof ck->hdf5_version);
    attr_read_str(f, "created", ck->created, sizeof ck->created);
    char *kind = ck->kind;
    if (attr_read_str(f, "kind", kind, sizeof ck->kind) || (strcmp(kind, "training") && strcmp(kind, "weights")))
        return nn_err(NN_EFORMAT, "%s: root attribute kind is missing or not 'training' or 'weights'", path);
    if (H5Lexists(f, "config", H5P_DEFAULT) > 0) {
        if (dset_read_text(f, "config", &r->config)) return io__h5_fail(path, "cannot read dataset config");
    }
    ck->config = r->config;
    if (H5Lexists(f, "metrics", H5P_DEFAULT) > 0) {
        if (dset_read_text(f, "metrics", &r->metrics)) return io__h5_fail(path, "cannot read dataset metrics");
    }
    ck->metrics = r->metrics;
    return 0;
}

/* Reads /model: the architecture, input, classes, cut, head, stem and group count. 0, or
 * NN_EFORMAT naming path. */
static int read_model(hid_t f, const char *path, io_ckpt *ck)
{
    if (H5Lexists(f, "model", H5P_DEFAULT) <= 0)
        return nn_err(NN_EFORMAT, "%s: no group /model (the architecture and group count)", path);
    hid_t g = H5Gopen2(f, "model", H5P_DEFAULT);
    int64_t in[3] = {0, 0, 0}, classes = 0, cut = 0, ng = 0;
    int rc = g < 0 ? -1 : 0;
    if (!rc) rc = attr_read_str(g, "arch", ck->arch, sizeof ck->arch);
    if (!rc) rc = attr_read(g, "input", H5T_NATIVE_INT64, in, 3);
    if (!rc) rc = attr_read(g, "classes", H5T_NATIVE_INT64, &classes, 0);
    if (!rc) rc = attr_read(g, "cut", H5T_NATIVE_INT64, &cut, 0);
    if (!rc) rc = attr_read(g, "ngroups", H5T_NATIVE_INT64, &ng, 0);
    int64_t stem = 0;
    if (!rc && attr_read_str(g, "head", ck->head, sizeof ck->head) == -1) rc = -1;
    if (!rc && attr_read(g, "small_stem", H5T_NATIVE_INT64, &stem, 0) == -1) rc = -1;
    ck->small_stem = stem != 0;
    if (!ck->head[0]) snprintf(ck->head, sizeof ck->head, "default");
    if (g >= 0) H5Gclose(g);
    if (rc) return nn_err(NN_EFORMAT, "%s: /model lacks one of its attributes arch, input, classes, cut, ngroups (or head or small_stem is malformed)", path);
    if (ng < 1 || ng > IO_CKPT_MAX_GROUPS)
        return nn_err(NN_EFORMAT, "%s: /model ngroups is %lld (1 to %d)", path, (long long)ng, IO_CKPT_MAX_GROUPS);
    for (int i = 0; i < 3; i++) ck->input[i] = (int)in[i];
    ck->classes = (int)classes;
    ck->cut = (int)cut;
    ck->ngroups = (int)ng;
    return 0;
}

/* Reads the attributes of the group table's entry /groups/<k> into gr. 0, or NN_EFORMAT
 * naming path. */
static int read_group_attrs(hid_t f, const char *path, int k, int ngroups, io_ckpt_group *gr)
{
    char p[512];
    snprintf(p, sizeof p, "groups/%d", k);
    if (H5Lexists(f, "groups", H5P_DEFAULT) <= 0 || H5Lexists(f, p, H5P_DEFAULT) <= 0)
        return nn_err(NN_EFORMAT, "%s: no group table entry /%s (the model has %d groups)", path, p, ngroups);
    hid_t g = H5Gopen2(f, p, H5P_DEFAULT);
    int64_t first = 0, last = 0, frozen = 0, numel = 0;
    int rc = g < 0 ? -1 : 0;
    if (!rc) rc = attr_read_str(g, "name", gr->name, sizeof gr->name);
    if (!rc) rc = attr_read(g, "first", H5T_NATIVE_INT64, &first, 0);
    if (!rc) rc = attr_read(g, "last", H5T_NATIVE_INT64, &last, 0);
    if (!rc) rc = attr_read(g, "frozen", H5T_NATIVE_INT64, &frozen, 0);
    if (!rc) rc = attr_read(g, "lr", H5T_NATIVE_DOUBLE, &gr->lr, 0);
    if (!rc) rc = attr_read(g, "wd", H5T_NATIVE_DOUBLE, &gr->wd, 0);
    if (!rc) rc = attr_read(g, "momentum", H5T_NATIVE_DOUBLE, &gr->momentum, 0);
    if (!rc) rc = attr_read(g, "numel", H5T_NATIVE_INT64, &numel, 0);
    if (g >= 0) H5Gclose(g);
    if (rc)
        return nn_err(NN_EFORMAT, "%s: /%s lacks one of its attributes name, first, last, frozen, lr, wd, momentum, numel",
                      path, p);
    gr->first = (int)first;
    gr->last = (int)last;
    gr->frozen = frozen != 0;
    gr->numel = (size_t)numel;
    return 0;
}

/* Appends parameter name of group k to ck->params (which has room for it): its name must be
 * new and short enough, and /params/group<k>/<name> a float32 tensor of 1 to 4 dimensions,
 * whose shape it takes. 0, or NN_EFORMAT naming path. */
static int read_param(hid_t f, const char *path, io_ckpt *ck, int k, const char *name)
{
    char p[512];
    io_ckpt_param *pa = &ck->params[ck->nparams++];
    memset(pa, 0, sizeof *pa);
    pa->group = k;
    if (strlen(name) >= sizeof pa->name)
        return nn_err(NN_EFORMAT, "%s: group %d lists a parameter name longer than %zu characters",
                      path, k, sizeof pa->name - 1);
    snprintf(pa->name, sizeof pa->name, "%s", name);
    for (int q = 0; q < ck->nparams - 1; q++)
        if (!strcmp(ck->params[q].name, pa->name))
            return nn_err(NN_EFORMAT, "%s: parameter '%s' is listed by group %d and by group %d",
                          path, pa->name, ck->params[q].group, k);
    char gp[64];
    snprintf(gp, sizeof gp, "params/group%d", k);
    snprintf(p, sizeof p, "%s/%s", gp, pa->name);
    /* H5Lexists needs every link on the way to exist. */
    if (H5Lexists(f, "params", H5P_DEFAULT) <= 0 || H5Lexists(f, gp, H5P_DEFAULT) <= 0 ||
        H5Lexists(f, p, H5P_DEFAULT) <= 0)
        return nn_err(NN_EFORMAT, "%s: group %d lists parameter '%s' but dataset /%s is missing",
                      path, k, pa->name, p);
    hid_t d = H5Dopen2(f, p, H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (nd >= 0 && nd <= 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    const int bad_type = d >= 0 && nd >= 1 && nd <= 4 ? want_f32(d, path, p) : 0;
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (bad_type) return bad_type;
    if (nd < 1 || nd > 4)
        return nn_err(NN_EFORMAT, "%s: dataset /%s is not a tensor of 1 to 4 dimensions", path, p);
    pa->ndim = nd;
    pa->numel = 1;
    for (int dd = 0; dd < nd; dd++) pa->shape[dd] = (int)dims[dd], pa->numel *= dims[dd];
    return 0;
}

/* Reads the group table's entry k and appends the parameters it lists to ck->params (grown
 * as needed; *cap is its room), checking that they hold the entry's numel values. 0, or an
 * error naming path. */
static int read_group(hid_t f, const char *path, io_ckpt *ck, int k, int *cap)
{
    io_ckpt_group *gr = &ck->groups[k];
    char p[512];
    int rc = read_group_attrs(f, path, k, ck->ngroups, gr);
    if (rc) return rc;
    char **names = NULL;
    int n = 0;
    snprintf(p, sizeof p, "groups/%d/parameters", k);
    if (H5Lexists(f, p, H5P_DEFAULT) > 0 && dset_read_strs(f, p, &names, &n) < 0)
        return io__h5_fail(path, "cannot read a group's parameter names");
    if (ck->nparams + n > *cap) {
        *cap = (ck->nparams + n) * 2 + 16;
        io_ckpt_param *np = realloc(ck->params, sizeof *np * (size_t)*cap);
        if (!np) {
            strs_free(names, n);
            return nn_err(NN_ENOMEM, "%s: out of memory", path);
        }
        ck->params = np;
    }
    gr->nparams = n;
    size_t sum = 0;
    for (int i = 0; i < n; i++) {
        rc = read_param(f, path, ck, k, names[i]);
        if (rc) {
            strs_free(names, n);
            return rc;
        }
        sum += ck->params[ck->nparams - 1].numel;
    }
    strs_free(names, n);
    if (sum != gr->numel)
        return nn_err(NN_EFORMAT, "%s: group %d says numel %zu but its parameters hold %zu values",
                      path, k, gr->numel, sum);
    return 0;
}

/* Checks that every dataset under /params is one the group table lists. 0, or an error
 * naming path. */
static int check_params_listed(hid_t f, const char *path, const io_ckpt *ck)
{
    if (H5Lexists(f, "params", H5P_DEFAULT) <= 0) return 0;
    count_job cj = {ck, 0, ""};
    if (H5Ovisit_by_name(f, "params", H5_INDEX_NAME, H5_ITER_INC, count_datasets, &cj, H5P_DEFAULT) < 0)
        return io__h5_fail(path, "cannot list /params");
    if (cj.unlisted[0])
        return nn_err(NN_EFORMAT, "%s: dataset /params/%s is not listed by the group table (/groups/<g>/parameters)",
                      path, cj.unlisted);
    return 0;
}

/* Lists the BatchNorm buffers under /buffers, if any, into ck->buffers (names and sizes;
 * kept even when listing fails). 0, or an error naming path. */
static int read_buffers(hid_t f, const char *path, io_ckpt *ck)
{
    if (H5Lexists(f, "buffers", H5P_DEFAULT) <= 0) return 0;
    buf_list l = {NULL, 0, 0, H5Gopen2(f, "buffers", H5P_DEFAULT), 0};
    herr_t e = l.g < 0 ? -1 : H5Literate(l.g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_buffer, &l);
    if (l.g >= 0) H5Gclose(l.g);
    ck->buffers = l.b;
    ck->nbuffers = l.n;
    if (e < 0) return io__h5_fail(path, "cannot list /buffers");
    return 0;
}

/* Reads /optimizer/step and /optimizer/step_bn, one integer per group. 0, or NN_EFORMAT
 * naming path. */
static int read_opt_steps(hid_t f, const char *path, io_ckpt *ck)
{
    int64_t st[IO_CKPT_MAX_GROUPS];
    const char *const names[2] = {"optimizer/step", "optimizer/step_bn"};
    for (int w = 0; w < 2; w++) {
        hid_t d = H5Lexists(f, names[w], H5P_DEFAULT) > 0 ? H5Dopen2(f, names[w], H5P_DEFAULT) : -1;
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
        int rc = (np != ck->ngroups || H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, st) < 0) ? -1 : 0;
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
        if (rc) return nn_err(NN_EFORMAT, "%s: dataset /%s is missing or does not hold %d integers", path, names[w], ck->ngroups);
        for (int k = 0; k < ck->ngroups; k++) (w ? ck->opt_step_bn : ck->opt_step)[k] = (long)st[k];
    }
    return 0;
}

/* Reads /optimizer, if there is one: its settings, the names of its states (from its type,
 * sgd or adamw) and its step counters. 0, or NN_EFORMAT naming path. */
static int read_optimizer(hid_t f, const char *path, io_ckpt *ck)
{
    if (H5Lexists(f, "optimizer", H5P_DEFAULT) <= 0) return 0;
    hid_t g = H5Gopen2(f, "optimizer", H5P_DEFAULT);
    int64_t nest = 0, dbb = 0;
    int rc = g < 0 ? -1 : 0;
    if (!rc) rc = attr_read_str(g, "type", ck->opt_type, sizeof ck->opt_type);
    if (!rc) rc = attr_read(g, "nesterov", H5T_NATIVE_INT64, &nest, 0);
    if (!rc) rc = attr_read(g, "beta2", H5T_NATIVE_DOUBLE, &ck->beta2, 0);
    if (!rc) rc = attr_read(g, "eps", H5T_NATIVE_DOUBLE, &ck->eps, 0);
    if (!rc) rc = attr_read(g, "decay_bn_bias", H5T_NATIVE_INT64, &dbb, 0);
    if (g >= 0) H5Gclose(g);
    if (rc) return nn_err(NN_EFORMAT, "%s: /optimizer lacks one of its attributes type, nesterov, beta2, eps, decay_bn_bias", path);
    ck->nesterov = nest != 0;
    ck->decay_bn_bias = dbb != 0;
    if (!strcmp(ck->opt_type, "sgd")) {
        ck->nstates = 1;
        snprintf(ck->state_names[0], sizeof ck->state_names[0], "momentum_buffer");
    } else if (!strcmp(ck->opt_type, "adamw")) {
        ck->nstates = 2;
        snprintf(ck->state_names[0], sizeof ck->state_names[0], "exp_avg");
        snprintf(ck->state_names[1], sizeof ck->state_names[1], "exp_avg_sq");
    } else {
        return nn_err(NN_EFORMAT, "%s: /optimizer type '%s' is not sgd or adamw", path, ck->opt_type);
    }
    return read_opt_steps(f, path, ck);
}

/* Reads /train_state/rng, the ranks' RNG states ((ranks, 4) uint64), into t->rng
 * (malloc'd). 0, or NN_EFORMAT naming path. */
static int read_rng(hid_t f, const char *path, io_ckpt_train *t)
{
    hid_t d = H5Lexists(f, "train_state/rng", H5P_DEFAULT) > 0 ? H5Dopen2(f, "train_state/rng", H5P_DEFAULT) : -1;
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[2] = {0, 0};
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    int rc = (nd != 2 || dims[1] != 4 || dims[0] < 1 || dims[0] > 1u << 20) ? -1 : 0;
    if (!rc) {
        t->rng = malloc(sizeof *t->rng * dims[0]);
        t->nrng = (int)dims[0];
        if (!t->rng || H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->rng) < 0) rc = -1;
    }
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    if (rc) return nn_err(NN_EFORMAT, "%s: dataset /train_state/rng is missing or not (ranks, 4) uint64 RNG states", path);
    return 0;
}

/* Reads /train_state, if there is one: where training stands (no counter negative) and the
 * RNG states; sets ck->train.has. 0, or NN_EFORMAT naming path. */
static int read_train_state(hid_t f, const char *path, io_ckpt *ck)
{
    if (H5Lexists(f, "train_state", H5P_DEFAULT) <= 0) return 0;
    io_ckpt_train *t = &ck->train;
    char s[64];
    hid_t g = H5Gopen2(f, "train_state", H5P_DEFAULT);
    int64_t x[9];
    const char *const keys[9] = {"phase", "epoch", "epoch_in_phase", "step_in_epoch", "phase_step",
                                 "global_step", "steps_per_epoch", "global_batch", "finished"};
    int rc = g < 0 ? -1 : 0;
    for (int i = 0; i < 9 && !rc; i++) {
        rc = attr_read(g, keys[i], H5T_NATIVE_INT64, &x[i], 0);
        if (rc) snprintf(s, sizeof s, "%s", keys[i]);
    }
    if (!rc && attr_read(g, "seed", H5T_NATIVE_UINT64, &t->seed, 0)) rc = -1, snprintf(s, sizeof s, "seed");
    if (g >= 0) H5Gclose(g);
    if (rc) return nn_err(NN_EFORMAT, "%s: /train_state lacks its attribute %s", path, s);
    for (int i = 0; i < 9; i++)
        if (x[i] < 0) return nn_err(NN_EFORMAT, "%s: /train_state %s is negative (%lld)", path, keys[i], (long long)x[i]);
    t->phase = (int)x[0];
    t->epoch = (int)x[1];
    t->epoch_in_phase = (int)x[2];
    t->step_in_epoch = (long)x[3];
    t->phase_step = (long)x[4];
    t->global_step = (long)x[5];
    t->steps_per_epoch = (long)x[6];
    t->global_batch = (int)x[7];
    t->finished = x[8] != 0;
    rc = read_rng(f, path, t);
    if (rc) return rc;
    t->has = 1;
    return 0;
}

/* Opens path and reads every table, in the order of the file's outline: the root, the model,
 * the group table and its parameters, the buffers, the optimizer and the train state.
 * Stops at the first error, which names path and the table. */
static int reader_load(io_ckpt_reader *r)
{
    const char *path = r->path;
    io_ckpt *ck = &r->info;
    int rc = read_root(r);
    if (!rc) rc = read_model(r->f, path, ck);
    for (int k = 0, cap = 0; !rc && k < ck->ngroups; k++) rc = read_group(r->f, path, ck, k, &cap);
    if (!rc) rc = check_params_listed(r->f, path, ck);
    if (!rc) rc = read_buffers(r->f, path, ck);
    if (!rc) rc = read_optimizer(r->f, path, ck);
    if (!rc) rc = read_train_state(r->f, path, ck);
    return rc;
}

int io_ckpt_open(io_ckpt_reader **out, const char *path)
{
    *out = NULL;
    if (!path) return nn_err(NN_EINVAL, "io_ckpt_open: NULL path");
    io_ckpt_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return nn_err(NN_ENOMEM, "%s: out of memory", path);
    }
    r->f = -1;
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    int rc = reader_load(r);
    io__h5_quiet_end(&q);
    if (rc) {
        io_ckpt_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int io_ckpt_find_param(const io_ckpt_reader *r, const char *name)
{
    for (int i = 0; i < r->info.nparams; i++)
        if (!strcmp(r->info.params[i].name, name)) return i;
    return -1;
}

int io_ckpt_find_buffer(const io_ckpt_reader *r, const char *name)
{
    for (int i = 0; i < r->info.nbuffers; i++)
        if (!strcmp(r->info.buffers[i].name, name)) return i;
    return -1;
}

/* Reads the whole float dataset at p (numel values) into out. */
static int read_floats(io_ckpt_reader *r, const char *p, size_t numel, float *out)
{
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    int rc = 0;
    char doing[600];
    snprintf(doing, sizeof doing, "cannot read dataset /%s", p);
    if (H5Lexists(r->f, p, H5P_DEFAULT) <= 0) {
        rc = nn_err(NN_ENOTFOUND, "%s: dataset /%s is missing", r->path, p);
    } else {
        hid_t d = H5Dopen2(r->f, p, H5P_DEFAULT);
        hid_t sp = d < 0 ? -1 : H5Dget_space(d);
        hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
        if (np < 0)
            rc = io__h5_fail(r->path, doing);
        else if ((rc = want_f32(d, r->path, p)) != 0)
            ;
        else if ((size_t)np != numel)
            rc = nn_err(NN_ESHAPE, "%s: dataset /%s holds %lld values, expected %zu", r->path, p,
                        (long long)np, numel);
        else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
            rc = io__h5_fail(r->path, doing); /* a checksum or I/O error */
        if (sp >= 0) H5Sclose(sp);
        if (d >= 0) H5Dclose(d);
    }
    io__h5_quiet_end(&q);
    return rc;
}

int io_ckpt_read_param(io_ckpt_reader *r, int i, int state, float *out)
{
    if (i < 0 || i >= r->info.nparams || state >= r->info.nstates)
        return nn_err(NN_EINVAL, "%s: no parameter %d or optimizer state %d", r->path, i, state);
    const io_ckpt_param *pa = &r->info.params[i];
    char p[512];
    if (state < 0)
        snprintf(p, sizeof p, "params/group%d/%s", pa->group, pa->name);
    else
        snprintf(p, sizeof p, "optimizer/%s/group%d/%s", r->info.state_names[state], pa->group, pa->name);
    return read_floats(r, p, pa->numel, out);
}

int io_ckpt_read_buffer(io_ckpt_reader *r, int i, float *out)
{
    if (i < 0 || i >= r->info.nbuffers) return nn_err(NN_EINVAL, "%s: no buffer %d", r->path, i);
    char p[512];
    snprintf(p, sizeof p, "buffers/%s", r->info.buffers[i].name);
    return read_floats(r, p, r->info.buffers[i].numel, out);
}

/* Reads every dataset of the file: H5Ovisit calls this for every object. */
typedef struct {
    const char *path;
    int rc, n;
    size_t bytes;
    int unchecked;       /* datasets without a fletcher32 filter */
    char names[400];     /* the first of them, for the message */
} verify_job;

/* Notes dataset name when it has no fletcher32 filter: its bytes read back unchecked. */
static void note_unchecked(verify_job *v, hid_t d, const char *name)
{
    hid_t pl = H5Dget_create_plist(d);
    unsigned flags = 0, cd[8];
    size_t ncd = 8;
    const int has = pl >= 0 && H5Pget_filter_by_id2(pl, H5Z_FILTER_FLETCHER32, &flags, &ncd, cd, 0,
                                                    NULL, NULL) >= 0;
    if (pl >= 0) H5Pclose(pl);
    if (has) return;
    const size_t len = strlen(v->names);
    if (v->unchecked++ < 5)
        snprintf(v->names + len, sizeof v->names - len, "%s/%s", len ? ", " : "", name);
}

static herr_t verify_obj(hid_t root, const char *name, const H5O_info_t *info, void *ud)
{
    verify_job *v = ud;
    if (info->type != H5O_TYPE_DATASET) return 0;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    hid_t t = d < 0 ? -1 : H5Dget_type(d);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    size_t sz = t < 0 ? 0 : H5Tget_size(t);
    int var = t >= 0 && H5Tis_variable_str(t) > 0;
    char doing[600];
    snprintf(doing, sizeof doing, "dataset /%s failed verification", name);
    void *buf = (np >= 0 && sz > 0 && !var) ? malloc((size_t)(np ? np : 1) * sz) : NULL;
    if (d < 0 || t < 0 || np < 0 || (!var && !buf)) {
        v->rc = io__h5_fail(v->path, doing);
    } else if (!var && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        v->rc = io__h5_fail(v->path, doing);
    } else {
        v->n++;
        v->bytes += var ? 0 : (size_t)np * sz;
        note_unchecked(v, d, name);
    }
    free(buf);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (d >= 0) H5Dclose(d);
    return v->rc ? -1 : 0;
}

int io_ckpt_verify(io_ckpt_reader *r, int *ndatasets, size_t *nbytes)
{
    verify_job v = {r->path, 0, 0, 0, 0, ""};
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    herr_t e = H5Ovisit(r->f, H5_INDEX_NAME, H5_ITER_INC, verify_obj, &v);
    if (e < 0 && !v.rc) v.rc = io__h5_fail(r->path, "cannot walk the file's objects");
    /* Every tensor the tables name must be there too (a deleted dataset reads nothing). */
    char p[512];
    for (int i = 0; i < r->info.nparams && !v.rc; i++)
        for (int s = -1; s < r->info.nstates && !v.rc; s++) {
            const io_ckpt_param *pa = &r->info.params[i];
            if (s < 0)
                snprintf(p, sizeof p, "params/group%d/%s", pa->group, pa->name);
            else
                snprintf(p, sizeof p, "optimizer/%s/group%d/%s", r->info.state_names[s], pa->group, pa->name);
            if (H5Lexists(r->f, p, H5P_DEFAULT) <= 0) /* negative too: a missing group on the way */
                v.rc = nn_err(NN_ENOTFOUND, "%s: dataset /%s is missing", r->path, p);
        }
    io__h5_quiet_end(&q);
    if (!v.rc && v.unchecked)
        v.rc = nn_err(NN_EFORMAT, "%s: %d of %d datasets have no fletcher32 checksum, so their "
                      "bytes cannot be checked: %s%s (strata writes one on every dataset: was the "
                      "file rewritten by another tool?)", r->path, v.unchecked, v.n, v.names,
                      v.unchecked > 5 ? ", ..." : "");
    if (ndatasets) *ndatasets = v.n;
    if (nbytes) *nbytes = v.bytes;
    return v.rc;
}

/* ---- the checkpoint directory ------------------------------------------------------------ */

typedef struct {
    const char *text;
} latest_job;

static int write_latest(const char *tmp, const char *path, void *ud)
{
    FILE *f = fopen(tmp, "w");
    if (!f) return nn_err(NN_EIO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
    fprintf(f, "%s\n", ((latest_job *)ud)->text);
    if (fclose(f)) return nn_err(NN_EIO, "%s: cannot write %s: %s", path, tmp, strerror(errno));
    return 0;
}

int io_ckpt_set_latest(const char *dir, const char *file)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/latest", dir);
    latest_job job = {file};
    return io_write_atomic(path, write_latest, &job);
}

int io_ckpt_latest(char *out, size_t len, const char *dir)
{
    char path[1100], name[256];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return nn_err(NN_ENOTFOUND, "%s: no checkpoint yet (no %s)", dir, path);
        return nn_err(NN_EIO, "%s: cannot read %s: %s", dir, path, strerror(errno));
    }
    int ok = fgets(name, sizeof name, f) != NULL;
    fclose(f);
    name[strcspn(name, "\r\n")] = '\0';
    if (!ok || !name[0] || strchr(name, '/'))
        return nn_err(NN_EFORMAT, "%s: %s does not hold a checkpoint file name", dir, path);
    if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
        return nn_err(NN_ERANGE, "%s: the checkpoint path is too long", dir);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void names_free(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The ckpt-*.h5 files of dir (temporary files aside), oldest first (the steps are
 * zero-padded), into *names (*n of them; free with names_free). Temporary files of saves
 * that died (io__stale_temp) are removed when removed is not NULL, and counted there. */
static int list_ckpts(const char *dir, char ***names, int *n, int *removed)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return nn_err(NN_EIO, "cannot list %s: %s", dir, strerror(errno));
    int cap = 0, rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && !rc) {
        const char *s = e->d_name;
        const size_t l = strlen(s);
        if (removed && io__stale_temp(s)) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", dir, s);
            if (unlink(path) == 0) (*removed)++;
            continue;
        }
        if (strncmp(s, "ckpt-", 5) || strstr(s, ".h5.tmp.")) continue;
        if (l < 8 || strcmp(s + l - 3, ".h5")) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(*names, sizeof *nn * (size_t)cap);
            if (!nn) {
                rc = nn_err(NN_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *names = nn;
        }
        if (!((*names)[*n] = strdup(s))) rc = nn_err(NN_ENOMEM, "out of memory listing %s", dir);
        else (*n)++;
    }
    closedir(d);
    if (rc) {
        names_free(*names, *n);
        *names = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) qsort(*names, (size_t)*n, sizeof **names, cmp_str);
    return 0;
}

int io_ckpt_prune(const char *dir, int keep, int *removed)
{
    int gone = 0;
    if (removed) *removed = 0;
    if (keep < 1) return nn_err(NN_ERANGE, "checkpoint.keep %d: keep at least 1", keep);
    char latest[1100] = "", path[1400];
    if (io_ckpt_latest(latest, sizeof latest, dir)) latest[0] = '\0';
    const char *lname = latest[0] ? strrchr(latest, '/') + 1 : "";
    char **names;
    int n, rc = list_ckpts(dir, &names, &n, &gone);
    for (int i = 0; !rc && i < n - keep; i++) {
        if (!strcmp(names[i], lname)) continue;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (unlink(path) != 0)
            rc = nn_err(NN_EIO, "cannot remove the old checkpoint %s: %s", path, strerror(errno));
        else
            gone++;
    }
    names_free(names, n);
    if (removed) *removed = gone;
    return rc;
}

int io_ckpt_find_resume(io_ckpt_found *out, const char *dir)
{
    memset(out, 0, sizeof *out);
    char latest[1100] = "";
    int lrc = io_ckpt_latest(latest, sizeof latest, dir);
    char lmsg[600];
    snprintf(lmsg, sizeof lmsg, "%s", lrc ? nn_errmsg() : "");
    char **names;
    int n, rc = list_ckpts(dir, &names, &n, NULL);
    if (rc) return rc;
    char first_err[700] = "";
    for (int i = n - 1; i >= 0 && !out->path[0]; i--) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        io_ckpt_reader *r = NULL;
        if (io_ckpt_open(&r, p)) {
            if (!out->skipped++) snprintf(first_err, sizeof first_err, "%s", nn_errmsg());
            continue;
        }
        io_ckpt_close(r);
        if (strlen(p) >= sizeof out->path) {
            rc = nn_err(NN_ERANGE, "%s: the checkpoint path is too long", dir);
            break;
        }
        memcpy(out->path, p, strlen(p) + 1);
    }
    names_free(names, n);
    if (rc) return rc;
    out->latest_ok = !lrc && out->path[0] && !strcmp(latest, out->path);
    if (!out->path[0])
        return nn_err(NN_ENOTFOUND, "%s: no checkpoint to resume from (%s%s)", dir,
                      n ? "no ckpt-*.h5 file opens; the newest: " : "no ckpt-*.h5 files",
                      n ? first_err : "");
    const char *name = strrchr(out->path, '/') + 1;
    int w = 0;
    if (lrc == NN_ENOTFOUND)
        w = snprintf(out->why, sizeof out->why, "%s/latest is missing", dir);
    else if (lrc)
        w = snprintf(out->why, sizeof out->why, "%s", lmsg);
    else if (!out->latest_ok)
        w = snprintf(out->why, sizeof out->why, "%s/latest names %s, but %s is newer", dir,
                     strrchr(latest, '/') + 1, name);
    if (out->skipped && w >= 0 && (size_t)w < sizeof out->why)
        snprintf(out->why + w, sizeof out->why - (size_t)w, "%s%d newer file(s) do not open: %s",
                 w ? "; " : "", out->skipped, first_err);
    return 0;
}
