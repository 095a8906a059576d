/* A run's parts set up from the config on every rank, in the order errors are reported: the
 * data and its normalisation, the model, the optimizer, the gradients' reducer, the batch
 * buffers; and freed. Also the model spec the config describes and the expansion of
 * per-group hyperparameters. */
#include "trainer/trainer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- config keys in messages: "FILE:LINE: key" or "--set key=value: key" -------------- */

/* Where key of cfg was given and the key, as a config message starts (io_config_origin). */
static const char *key_where(char *buf, size_t len, const io_config *cfg, const char *key)
{
    if (io_config_origin(buf, len, cfg, key) < 0) snprintf(buf, len, "%s", key);
    return buf;
}

/* Where key was given without the key ("FILE:LINE", "--set key=value"), or NULL when it was
 * not given. */
static const char *key_at(char *buf, size_t len, const io_config *cfg, const char *key)
{
    if (io_config_origin(buf, len, cfg, key) != 1) return NULL;
    size_t n = strlen(buf), k = strlen(key);
    if (n >= k + 2 && !strcmp(buf + n - k, key)) buf[n - k - 2] = '\0';
    return buf;
}

/* The model spec for c x h x w samples of `classes` classes (trainer.h). */
int trainer_model_spec(nn_model_spec *spec, const io_config *cfg, int c, int h, int w,
                       int classes)
{
    nn_model_spec_default(spec);
    spec->arch = cfg->model.arch;
    spec->in_c = cfg->model.input[0] ? cfg->model.input[0] : c;
    spec->in_h = cfg->model.input[1] ? cfg->model.input[1] : h;
    spec->in_w = cfg->model.input[2] ? cfg->model.input[2] : w;
    if (spec->in_c != c || spec->in_h != h || spec->in_w != w) {
        char where[800];
        return nn_err(NN_ESHAPE, "%s: %dx%dx%d does not match the %dx%dx%d samples of data.train "
                      "(%s); give [%d, %d, %d], or null to take the data's shape",
                      key_where(where, sizeof where, cfg, "model.input"), spec->in_c, spec->in_h,
                      spec->in_w, c, h, w, cfg->data.train, c, h, w);
    }
    spec->classes = cfg->model.classes ? cfg->model.classes : classes;
    spec->cut = cfg->model.cut;
    spec->nsplit = cfg->model.nsplit;
    memcpy(spec->split, cfg->model.split, sizeof spec->split);
    spec->head = !strcmp(cfg->model.head, "fastai")     ? NN_HEAD_FASTAI
                 : !strcmp(cfg->model.head, "linear")   ? NN_HEAD_LINEAR
                 : !strcmp(cfg->model.head, "original") ? NN_HEAD_ORIGINAL
                                                        : NN_HEAD_DEFAULT;
    spec->nwidths = cfg->model.nwidths;
    memcpy(spec->widths, cfg->model.widths, sizeof(int) * (size_t)cfg->model.nwidths);
    spec->small_stem = cfg->model.small_stem;
    return nn_engine_parse(&spec->engine, cfg->model.engine);
}

/* data.mean and data.std, or the dataset's defaults, and the padding's normalised value. */
static int data_norm(trainer__data *d, const io_config *cfg)
{
    const io_dataset *shape = &d->train;
    d->mean = calloc((size_t)shape->c, sizeof(float));
    d->std = calloc((size_t)shape->c, sizeof(float));
    d->pad = calloc((size_t)shape->c, sizeof(float));
    if (!d->mean || !d->std || !d->pad)
        return nn_err(NN_ENOMEM, "cannot allocate normalisation for %d channels", shape->c);
    if (cfg->data.nnorm) {
        if (cfg->data.nnorm != shape->c)
            return nn_err(NN_EINVAL, "data.mean and data.std have %d values but %s has %d channels",
                          cfg->data.nnorm, cfg->data.train, shape->c);
        for (int i = 0; i < shape->c; i++) {
            d->mean[i] = (float)cfg->data.mean[i];
            d->std[i] = (float)cfg->data.std[i];
        }
    } else {
        io_data_default_norm(shape, cfg->data.train, d->mean, d->std);
    }
    for (int i = 0; i < shape->c; i++)
        d->pad[i] = shape->images ? -d->mean[i] / d->std[i] : 0.0f;
    return 0;
}

/* Both datasets, checked against each other, and their normalisation. */
int trainer__data_open(trainer__data *d, const io_config *cfg)
{
    io_synthetic_opts syn = {cfg->data.synthetic.samples, cfg->data.synthetic.classes,
                             cfg->data.synthetic.input[0], cfg->data.synthetic.input[1],
                             cfg->data.synthetic.input[2], cfg->data.synthetic.seed};
    int rc = io_data_open(&d->train, cfg->data.train, cfg->data.dir, 1, &syn);
    if (!rc && cfg->data.valid[0]) {
        rc = io_data_open(&d->valid, cfg->data.valid, cfg->data.dir, 0, &syn);
        d->has_valid = rc == 0;
    }
    if (rc) return rc;
    const io_dataset *shape = &d->train;
    const io_dataset *v = &d->valid;
    if (d->has_valid && (v->c != shape->c || v->h != shape->h || v->w != shape->w))
        return nn_err(NN_ESHAPE, "data.valid (%s) holds %dx%dx%d samples but data.train (%s) holds %dx%dx%d",
                      cfg->data.valid, v->c, v->h, v->w, cfg->data.train, shape->c, shape->h,
                      shape->w);
    const int pmax = shape->h < shape->w ? shape->h : shape->w;
    if (cfg->data.augment.crop_padding > pmax)
        return nn_err(NN_ERANGE, "data.augment.crop_padding %d is larger than the %dx%d images",
                      cfg->data.augment.crop_padding, shape->h, shape->w);
    return data_norm(d, cfg);
}

/* model.classes below what the labels of data.train or data.valid (ds, named by key) need:
 * rc and its message (io_check_labels') again, naming the key. */
static int classes_fail(int rc, const io_config *cfg, const io_dataset *ds, const char *key,
                        const char *name)
{
    char where[800], why[600];
    snprintf(why, sizeof why, "%s", nn_errmsg());
    return nn_err(rc, "%s: %d classes are too few for the labels of %s (%s, %d classes): %s; "
                  "give at least %d, or 0 to take the data's", key_where(where, sizeof where, cfg,
                  "model.classes"), cfg->model.classes, key, name, ds->classes, why, ds->classes);
}

/* The layer groups that split points split[0..nsplit) make of nbody children, "0..0, 1..0",
 * into buf; *empty gets the first empty one ("1..0"). */
static void groups_text(char *buf, size_t len, char *empty, size_t elen, const int *split,
                        int nsplit, int nbody)
{
    size_t off = 0;
    buf[0] = empty[0] = '\0';
    for (int i = 0, first = 0; i <= nsplit && off < len; i++) {
        int last = (i < nsplit ? split[i] : nbody) - 1;
        int k = snprintf(buf + off, len - off, "%s%d..%d", i ? ", " : "", first, last);
        if (k < 0) break;
        if (last < first && !empty[0]) snprintf(empty, elen, "%d..%d", first, last);
        off += (size_t)k;
        first = last + 1;
    }
}

/* The split points as written: "1" or "[1, 5]". */
static void split_text(char *buf, size_t len, const int *split, int nsplit)
{
    size_t off = (size_t)snprintf(buf, len, nsplit == 1 ? "" : "[");
    for (int i = 0; i < nsplit && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? ", " : "", split[i]);
    if (nsplit != 1 && off < len) snprintf(buf + off, len - off, "]");
}

/* model.split with model.cut leaves an empty layer group: the message names both keys,
 * their values, the groups and the choices. */
static int split_fail(const io_config *cfg, const nn_model_layout_info *lay, int cut, int nbody)
{
    char where[800], cat[800], cutv[900], sp[200], groups[600], empty[40], fix[400];
    const char *arch = cfg->model.arch;
    const char *cut_at = key_at(cat, sizeof cat, cfg, "model.cut");
    if (cut_at)
        snprintf(cutv, sizeof cutv, "model.cut %d (%s)", cfg->model.cut, cut_at);
    else
        snprintf(cutv, sizeof cutv, "%s's default model.cut %d", arch, lay->default_cut);
    split_text(sp, sizeof sp, cfg->model.split, cfg->model.nsplit);
    groups_text(groups, sizeof groups, empty, sizeof empty, cfg->model.split, cfg->model.nsplit,
                nbody);
    int more = cut != 0 && cut < lay->nchildren;
    char larger[200] = "";
    if (more && cut + 1 < lay->nchildren)
        snprintf(larger, sizeof larger, ", or a larger model.cut (%d..%d; 0 keeps every child)",
                 cut + 1, lay->nchildren);
    else if (more)
        snprintf(larger, sizeof larger, ", or a larger model.cut (%d or 0, every child)",
                 lay->nchildren);
    if (nbody == 1)
        snprintf(fix, sizeof fix, "a body of 1 child cannot be split; give model.split: null or "
                 "[] (one group)%s", larger);
    else
        snprintf(fix, sizeof fix, "split points must lie in 1..%d; give split points in 1..%d, or "
                 "model.split: null for %s's default%s", nbody - 1, nbody - 1, arch, larger);
    return nn_err(NN_ERANGE, "%s: %s with %s gives the layer groups %s (body children), and %s "
                  "is empty: the body of %s has %d child%s (0..%d) after that cut, of %d; %s",
                  key_where(where, sizeof where, cfg, "model.split"), sp, cutv, groups, empty,
                  arch, nbody, nbody == 1 ? "" : "ren", nbody - 1, lay->nchildren, fix);
}

/* nn_model_init failed with rc: a cut or split that does not fit the architecture is told in
 * the config's words (model.cut, model.split, where they were given); any other failure is
 * wrapped with where model.arch was given. */
static int model_fail(int rc, const io_config *cfg, const nn_model_spec *spec)
{
    char where[800], why[1200];
    snprintf(why, sizeof why, "%s", nn_errmsg());
    nn_model_layout_info lay;
    if (nn_model_layout(&lay, spec) == 0) {
        int cut = cfg->model.cut < 0 ? lay.default_cut : cfg->model.cut;
        if (cut > lay.nchildren)
            return nn_err(NN_ERANGE, "%s: %d is out of range for %s, which has %d children: give "
                          "0..%d (0 keeps every child), or null for %s's default (%d)",
                          key_where(where, sizeof where, cfg, "model.cut"), cut,
                          cfg->model.arch, lay.nchildren, lay.nchildren, cfg->model.arch,
                          lay.default_cut);
        int nbody = cut == 0 ? lay.nchildren : cut;
        for (int i = 0; i < cfg->model.nsplit; i++)
            if (cfg->model.split[i] >= nbody) return split_fail(cfg, &lay, cut, nbody);
    }
    return nn_err(rc, "%s: %s", key_where(where, sizeof where, cfg, "model.arch"), why);
}

/* The model of the config for d's data; rank's dropout RNG. */
int trainer__model_init(trainer__model *mo, const io_config *cfg, const trainer__data *d,
                        int rank)
{
    const io_dataset *shape = &d->train;
    nn_model_spec spec;
    int rc = trainer_model_spec(&spec, cfg, shape->c, shape->h, shape->w, shape->classes);
    if (rc) return rc;
    rc = io_check_labels(&d->train, spec.classes, cfg->data.train);
    if (rc == NN_ERANGE && cfg->model.classes)
        return classes_fail(rc, cfg, &d->train, "data.train", cfg->data.train);
    if (!rc && d->has_valid) rc = io_check_labels(&d->valid, spec.classes, cfg->data.valid);
    if (rc == NN_ERANGE && cfg->model.classes)
        return classes_fail(rc, cfg, &d->valid, "data.valid", cfg->data.valid);
    if (rc) return rc;
    nn_rng init;
    nn_rng_seed(&init, cfg->train.seed);
    rc = nn_model_init(&mo->m, &spec, &init);
    if (rc) return model_fail(rc, cfg, &spec);
    nn_model_set_train_bn(mo->m, cfg->groups.train_bn);
    nn_model_set_bn_freeze(mo->m, cfg->groups.bn_freeze);
    nn_rng_seed(&mo->rng, cfg->train.seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(rank + 1)));
    return 0;
}

/* optimizer.*: the type and its settings. */
static int optim_init(trainer__model *mo, const io_config *cfg)
{
    int type;
    int rc = trainer_opt_parse_type(&type, cfg->optimizer.type);
    if (!rc)
        rc = trainer_opt_init(&mo->opt, mo->m, type, cfg->optimizer.nesterov, cfg->optimizer.beta2,
                              cfg->optimizer.eps, cfg->optimizer.decay_bn_bias);
    if (rc) return rc;
    mo->opt.true_wd = cfg->optimizer.true_wd;
    return 0;
}

/* comm.*: the reducer over the groups' gradient slabs. */
static int reducer_init(trainer__comm *cm, const io_config *cfg, const nn_model *m)
{
    float *slabs[NN_MAX_GROUPS];
    size_t counts[NN_MAX_GROUPS], tails[NN_MAX_GROUPS];
    for (int g = 0; g < m->ngroups; g++) {
        slabs[g] = m->groups[g].grad_slab;
        counts[g] = m->groups[g].numel;
        tails[g] = m->groups[g].bn_offset; /* a frozen group's BatchNorm (train_bn) */
    }
    size_t bucket = (size_t)(cfg->comm.bucket_mb * 1048576.0 / sizeof(float));
    comm_reduce_mode mode = COMM_REDUCE_AFTER;
    if (cfg->comm.overlap) {
        int rc = comm_reduce_mode_parse(&mode, cfg->comm.progress);
        if (rc) return rc;
    }
    return comm_reducer_init(&cm->red, cm->c, m->ngroups, slabs, counts, tails,
                             bucket ? bucket : 1, mode);
}

/* An optimizer step's samples, train.accumulate x data.batch_size on each of world ranks,
 * within an epoch of data.train's n samples (n / world a rank); else the message names the
 * keys, their values and what to lower. */
static int step_check(const io_config *cfg, int n, int world)
{
    const long long A = cfg->train.accumulate, B = cfg->data.batch_size, share = n / world;
    if (A * B <= share) return 0;
    const char *key = A > 1 ? "train.accumulate" : "data.batch_size";
    char where[800], acc[64] = "", fix[300];
    if (A > 1) snprintf(acc, sizeof acc, "train.accumulate %lld x ", A);
    if (A > 1 && share / B >= 1 && share / A >= 1)
        snprintf(fix, sizeof fix, "lower train.accumulate to at most %lld, or data.batch_size to "
                 "at most %lld", share / B, share / A);
    else if (A > 1 && share / B >= 1)
        snprintf(fix, sizeof fix, "lower train.accumulate to at most %lld", share / B);
    else if (A > 1)
        snprintf(fix, sizeof fix, "lower data.batch_size to at most %lld with train.accumulate 1",
                 share);
    else
        snprintf(fix, sizeof fix, "lower data.batch_size to at most %lld", share);
    return nn_err(NN_EINVAL, "%s: %sdata.batch_size %lld x %d rank%s = %lld samples per optimizer "
                  "step, more than data.train's %d samples (%s), %lld per rank per epoch: an "
                  "epoch would hold no optimizer step; %s%s", key_where(where, sizeof where, cfg,
                  key), acc, B, world, world == 1 ? "" : "s", A * B * world, n, cfg->data.train,
                  share, fix, world > 1 ? ", or run on fewer ranks" : "");
}

/* The batch buffers; with need_train, a whole batch per rank and step. */
int trainer__batches_init(trainer__data *d, const io_config *cfg, int world, int need_train)
{
    const int B = cfg->data.batch_size;
    if (need_train) {
        if (d->train.n < world)
            return nn_err(NN_ERANGE, "%s has %d samples, fewer than the %d ranks", cfg->data.train,
                          d->train.n, world);
        int rc = step_check(cfg, d->train.n, world);
        if (!rc) rc = io_check_batch(d->train.n / world / cfg->train.accumulate, B, world);
        if (rc) return rc;
    }
    d->labels = malloc(sizeof(int32_t) * B);
    d->shard = malloc(sizeof(int) * (d->train.n > d->valid.n ? d->train.n : d->valid.n) + 1);
    if (!d->labels || !d->shard) return nn_err(NN_ENOMEM, "cannot allocate batch buffers");
    return 0;
}

/* Training's and lr-find's parts, first error returned (not agreed on). */
int trainer__setup(const io_config *cfg, trainer__data *d, trainer__model *mo, trainer__comm *cm)
{
    int rc = trainer__data_open(d, cfg);
    if (!rc) rc = trainer__model_init(mo, cfg, d, comm_rank(cm->c));
    if (!rc) rc = optim_init(mo, cfg);
    if (!rc) rc = reducer_init(cm, cfg, mo->m);
    if (!rc) rc = trainer__batches_init(d, cfg, comm_size(cm->c), 1);
    return rc;
}

/* Frees what trainer__data_open and trainer__batches_init allocated. */
void trainer__data_free(trainer__data *d)
{
    free(d->mean);
    free(d->std);
    free(d->pad);
    io_dataset_free(&d->train);
    io_dataset_free(&d->valid);
    nn_tensor_free(&d->x);
    free(d->labels);
    free(d->shard);
}

/* Frees the model, the optimizer state and the loss gradient. */
void trainer__model_free(trainer__model *mo)
{
    trainer_opt_free(&mo->opt);
    nn_model_free(mo->m);
    nn_tensor_free(&mo->dlogits);
}

/* Frees the reducer (the communicator is the caller's). */
void trainer__comm_free(trainer__comm *cm)
{
    comm_reducer_free(cm->red);
    cm->red = NULL;
}

/* One value per group of a hyperparameter; errors name where it was set. */
int trainer__expand_hp(float *out, int ngroups, const io_hparam *hp, const io_config *cfg,
                       const char *key)
{
    char where[700];
    if (hp->line > 0)
        snprintf(where, sizeof where, "%s:%d: %s", cfg->path, hp->line, key);
    else if (hp->line < 0)
        snprintf(where, sizeof where, "--set %s", key);
    else
        snprintf(where, sizeof where, "%s", key);
    return trainer_hparam_expand(out, ngroups, hp->kind, hp->v, hp->n, where);
}
