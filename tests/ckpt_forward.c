/* ckpt_forward CKPT IN.h5 OUT.h5: the logits of the model a checkpoint describes.
 *
 * Builds the model of CKPT's /model (arch, input, classes, cut, head, small_stem, and the
 * group table's split points), loads every parameter and buffer by name through the
 * io_ckpt reader, runs nn_model_forward in eval mode on the float32 dataset `x` (N, C, H, W)
 * of IN.h5 and writes `logits` (N, K) float32 to OUT.h5. A tool for
 * tests/convert_roundtrip.sh (strata's forward against torchvision's), not a unit test.
 * Exit status 0, or 1 with the message on stderr. */
#include "io/io.h"
#include "nn/nn.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int head_kind(const char *head, int *out)
{
    static const struct {
        const char *name;
        int kind;
    } heads[] = {{"default", NN_HEAD_DEFAULT}, {"fastai", NN_HEAD_FASTAI},
                 {"linear", NN_HEAD_LINEAR},   {"original", NN_HEAD_ORIGINAL}};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0]; i++)
        if (!strcmp(head, heads[i].name)) return (*out = heads[i].kind), 0;
    return nn_err(NN_EFORMAT, "/model head '%s' is not default, fastai, linear or original", head);
}

/* Builds the model the checkpoint describes, with its group partition; *out is freed with
 * nn_model_free. Parameters are left zero (everything is loaded afterwards). */
static int build_model(nn_model **out, const io_ckpt *info)
{
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.arch = info->arch;
    spec.in_c = info->input[0];
    spec.in_h = info->input[1];
    spec.in_w = info->input[2];
    spec.classes = info->classes;
    spec.cut = info->cut;
    spec.small_stem = info->small_stem;
    spec.skip_init = 1;
    int rc = head_kind(info->head, &spec.head);
    if (rc) return rc;
    /* Body groups 1.. start at their first child; the head is the last group. */
    spec.nsplit = info->ngroups - 2;
    for (int g = 1; g < info->ngroups - 1; g++) spec.split[g - 1] = info->groups[g].first;
    nn_rng rng;
    nn_rng_seed(&rng, 0);
    return nn_model_init(out, &spec, &rng);
}

typedef struct {
    io_ckpt_reader *r;
    int nloaded;
    char *used_p, *used_b; /* per tensor of the file: loaded into the model */
} load_job;

static int load_param(void *ud, const char *name, nn_param *p)
{
    load_job *job = ud;
    const io_ckpt *info = io_ckpt_info(job->r);
    const int k = io_ckpt_find_param(job->r, name);
    if (k < 0) return nn_err(NN_ENOTFOUND, "parameter '%s' is missing from the checkpoint", name);
    const io_ckpt_param *cp = &info->params[k];
    int same = cp->ndim == p->ndim;
    for (int d = 0; d < p->ndim && same; d++) same = cp->shape[d] == p->shape[d];
    if (!same) {
        char a[64] = "", b[64] = "";
        for (int d = 0, o = 0; d < cp->ndim; d++) o += snprintf(a + o, sizeof a - o, "%s%d", d ? "x" : "", cp->shape[d]);
        for (int d = 0, o = 0; d < p->ndim; d++) o += snprintf(b + o, sizeof b - o, "%s%d", d ? "x" : "", p->shape[d]);
        return nn_err(NN_ESHAPE, "parameter '%s' has shape %s in the checkpoint, the model needs %s",
                      name, a, b);
    }
    job->nloaded++;
    job->used_p[k] = 1;
    return io_ckpt_read_param(job->r, k, -1, p->data);
}

static int load_buffer(void *ud, const char *name, nn_buffer *b)
{
    load_job *job = ud;
    const io_ckpt *info = io_ckpt_info(job->r);
    const int k = io_ckpt_find_buffer(job->r, name);
    if (k < 0) return nn_err(NN_ENOTFOUND, "buffer '%s' is missing from the checkpoint", name);
    if (info->buffers[k].numel != b->numel)
        return nn_err(NN_ESHAPE, "buffer '%s' holds %zu values in the checkpoint, the model needs %zu",
                      name, info->buffers[k].numel, b->numel);
    job->nloaded++;
    job->used_b[k] = 1;
    return io_ckpt_read_buffer(job->r, k, b->data);
}

/* Reads the float32 dataset x (N, C, H, W) of path into x, checking C, H, W against in. */
static int read_input(nn_tensor *x, const char *path, const int in[3])
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return nn_err(NN_EIO, "%s: cannot open (not an HDF5 file?)", path);
    hid_t d = H5Lexists(f, "x", H5P_DEFAULT) > 0 ? H5Dopen2(f, "x", H5P_DEFAULT) : -1;
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hsize_t dims[4] = {0, 0, 0, 0};
    int nd = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
    if (nd == 4) H5Sget_simple_extent_dims(sp, dims, NULL);
    int rc = 0;
    if (nd != 4)
        rc = nn_err(NN_EFORMAT, "%s: no 4-D dataset x (N, C, H, W)", path);
    else if ((int)dims[1] != in[0] || (int)dims[2] != in[1] || (int)dims[3] != in[2])
        rc = nn_err(NN_ESHAPE, "%s: x holds %dx%dx%d samples, the model takes %dx%dx%d", path,
                    (int)dims[1], (int)dims[2], (int)dims[3], in[0], in[1], in[2]);
    if (!rc) rc = nn_tensor_resize(x, (int)dims[0], (int)dims[1], (int)dims[2], (int)dims[3]);
    if (!rc && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x->data) < 0)
        rc = nn_err(NN_EHDF5, "%s: cannot read x", path);
    if (sp >= 0) H5Sclose(sp);
    if (d >= 0) H5Dclose(d);
    H5Fclose(f);
    return rc;
}

/* Writes logits (N, K) as float32 dataset `logits` of a new file path. */
static int write_logits(const char *path, const nn_tensor *y)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return nn_err(NN_EIO, "%s: cannot create", path);
    hsize_t dims[2] = {(hsize_t)y->n, (hsize_t)y->c * y->h * y->w};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(f, "logits", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, y->data) < 0)
                 ? nn_err(NN_EHDF5, "%s: cannot write logits", path)
                 : 0;
    if (d >= 0) H5Dclose(d);
    if (sp >= 0) H5Sclose(sp);
    if (H5Fclose(f) < 0 && !rc) rc = nn_err(NN_EHDF5, "%s: cannot close", path);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: ckpt_forward CKPT IN.h5 OUT.h5\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    io_ckpt_reader *r = NULL;
    nn_model *m = NULL;
    nn_tensor x = {0};
    const nn_tensor *logits = NULL;
    int rc = io_ckpt_open(&r, argv[1]);
    const io_ckpt *info = rc ? NULL : io_ckpt_info(r);
    if (!rc) rc = build_model(&m, info);
    load_job job = {r, 0, NULL, NULL};
    if (!rc) {
        job.used_p = calloc((size_t)info->nparams + 1, 1);
        job.used_b = calloc((size_t)info->nbuffers + 1, 1);
        if (!job.used_p || !job.used_b) rc = nn_err(NN_ENOMEM, "out of memory");
    }
    if (!rc) rc = nn_model_visit_params(m, load_param, &job);
    if (!rc) rc = nn_model_visit_buffers(m, load_buffer, &job);
    /* Every tensor of the file was used. */
    for (int k = 0; !rc && k < info->nparams; k++)
        if (!job.used_p[k])
            rc = nn_err(NN_ESTATE, "the checkpoint holds parameter '%s', which the model does not have",
                        info->params[k].name);
    for (int k = 0; !rc && k < info->nbuffers; k++)
        if (!job.used_b[k])
            rc = nn_err(NN_ESTATE, "the checkpoint holds buffer '%s', which the model does not have",
                        info->buffers[k].name);
    if (!rc) rc = read_input(&x, argv[2], m->in_shape);
    if (!rc) {
        nn_model_set_training(m, 0);
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        nn_ctx ctx = {&rng};
        rc = nn_model_forward(&logits, m, &x, &ctx);
    }
    if (!rc) rc = write_logits(argv[3], logits);
    if (rc)
        fprintf(stderr, "ckpt_forward: %s: %s\n", argv[1], nn_errmsg());
    else
        printf("ckpt_forward: %s: %s, %d tensors loaded, logits %dx%d -> %s\n", argv[1], info->arch,
               job.nloaded, logits->n, logits->c, argv[3]);
    free(job.used_p);
    free(job.used_b);
    nn_tensor_free(&x);
    nn_model_free(m);
    io_ckpt_close(r);
    return rc ? 1 : 0;
}
