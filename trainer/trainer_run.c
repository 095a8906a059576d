/* The training loop of `strata train`, `strata eval` and `strata lr-find`, on one process or
 * under mpirun.
 *
 * Every rank builds the same model from the same seed, then takes rank 0's weights. Each
 * step, a rank runs forward and backward on its shard of the global batch; the gradients of
 * every group that has something trainable are averaged across ranks (a plain blocking
 * all-reduce per group, head first), then the optimizer updates the group with its own
 * learning rate, momentum and weight decay from the phase's schedule. Errors are agreed on
 * by all ranks, so a failure on one rank ends the job everywhere instead of leaving the
 * others waiting in a collective. Rank 0 alone prints and writes the run directory.
 */
#include "trainer/trainer.h"

#include "comm/comm.h"
#include "io/io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct {
    const io_config *cfg;
    comm *c;
    FILE *out;        /* rank 0's console; NULL on other ranks */
    FILE *metrics;    /* run.dir/metrics.jsonl on rank 0 */
    int tty;          /* rank 0's console is a terminal: draw a progress bar */
    io_dataset train, valid;
    int has_valid;
    float *mean, *std, *pad; /* per channel, owned */
    nn_model *m;
    trainer_opt opt;
    nn_rng rng;       /* dropout; seeded from train.seed and the rank */
    nn_tensor x, dlogits;
    int32_t *labels;
    int *shard, *batch_idx;
    long global_step;
    int epoch;        /* epochs done, over all phases */
    comm_reducer *red;
    int active[NN_MAX_GROUPS]; /* groups whose gradients are reduced this step */
    int nonfinite_ok;          /* lr-find: a non-finite loss ends the sweep, not the run */
    io_ckpt_scratch ckpt_mem;  /* rank 0: memory kept between checkpoint saves */
    const volatile int *stop_signal; /* may be NULL: set by a signal handler */
    int32_t stop_agreed;       /* the largest stop_signal over all ranks at the last step */
} run;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return nn_err(NN_EINVAL, "run.dir is too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char keep = *p;
            *p = '\0';
            if (mkdir(buf, 0777) && errno != EEXIST)
                return nn_err(NN_EIO, "cannot create directory %s: %s", buf, strerror(errno));
            *p = keep;
            if (!keep) break;
        }
    }
    return 0;
}

int trainer_model_spec(nn_model_spec *spec, const io_config *cfg, int c, int h, int w,
                       int classes)
{
    nn_model_spec_default(spec);
    spec->arch = cfg->model.arch;
    spec->in_c = cfg->model.input[0] ? cfg->model.input[0] : c;
    spec->in_h = cfg->model.input[1] ? cfg->model.input[1] : h;
    spec->in_w = cfg->model.input[2] ? cfg->model.input[2] : w;
    if (spec->in_c != c || spec->in_h != h || spec->in_w != w)
        return nn_err(NN_ESHAPE, "model.input %dx%dx%d does not match the data's %dx%dx%d (%s)",
                      spec->in_c, spec->in_h, spec->in_w, c, h, w, cfg->data.train);
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

/* Loads train and valid data on every rank, builds the model and the optimizer. */
static int run_setup(run *r, int need_train)
{
    const io_config *cfg = r->cfg;
    io_synthetic_opts syn = {cfg->data.synthetic.samples, cfg->data.synthetic.classes,
                             cfg->data.synthetic.input[0], cfg->data.synthetic.input[1],
                             cfg->data.synthetic.input[2], cfg->data.synthetic.seed};
    int rc = io_data_open(&r->train, cfg->data.train, cfg->data.dir, 1, &syn);
    if (!rc && cfg->data.valid[0]) {
        rc = io_data_open(&r->valid, cfg->data.valid, cfg->data.dir, 0, &syn);
        r->has_valid = rc == 0;
    }
    if (rc) return rc;
    const io_dataset *shape = &r->train;
    if (r->has_valid && (r->valid.c != shape->c || r->valid.h != shape->h || r->valid.w != shape->w))
        return nn_err(NN_ESHAPE, "data.valid (%s) holds %dx%dx%d samples but data.train (%s) holds %dx%dx%d",
                      cfg->data.valid, r->valid.c, r->valid.h, r->valid.w, cfg->data.train, shape->c,
                      shape->h, shape->w);
    const int pmax = shape->h < shape->w ? shape->h : shape->w;
    if (cfg->data.augment.crop_padding > pmax)
        return nn_err(NN_ERANGE, "data.augment.crop_padding %d is larger than the %dx%d images",
                      cfg->data.augment.crop_padding, shape->h, shape->w);
    r->mean = calloc((size_t)shape->c, sizeof(float));
    r->std = calloc((size_t)shape->c, sizeof(float));
    r->pad = calloc((size_t)shape->c, sizeof(float));
    if (!r->mean || !r->std || !r->pad)
        return nn_err(NN_ENOMEM, "cannot allocate normalisation for %d channels", shape->c);
    if (cfg->data.nnorm) {
        if (cfg->data.nnorm != shape->c)
            return nn_err(NN_EINVAL, "data.mean and data.std have %d values but %s has %d channels",
                          cfg->data.nnorm, cfg->data.train, shape->c);
        for (int i = 0; i < shape->c; i++) {
            r->mean[i] = (float)cfg->data.mean[i];
            r->std[i] = (float)cfg->data.std[i];
        }
    } else {
        io_data_default_norm(shape, cfg->data.train, r->mean, r->std);
    }
    for (int i = 0; i < shape->c; i++)
        r->pad[i] = shape->images ? -r->mean[i] / r->std[i] : 0.0f;

    nn_model_spec spec;
    rc = trainer_model_spec(&spec, cfg, shape->c, shape->h, shape->w, shape->classes);
    if (rc) return rc;
    rc = io_check_labels(&r->train, spec.classes, cfg->data.train);
    if (!rc && r->has_valid) rc = io_check_labels(&r->valid, spec.classes, cfg->data.valid);
    if (rc) return rc;

    nn_rng init;
    nn_rng_seed(&init, cfg->train.seed);
    rc = nn_model_init(&r->m, &spec, &init);
    if (rc) return rc;
    nn_model_set_train_bn(r->m, cfg->groups.train_bn);
    nn_model_set_bn_freeze(r->m, cfg->groups.bn_freeze);
    nn_rng_seed(&r->rng, cfg->train.seed ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(comm_rank(r->c) + 1)));

    int type;
    rc = trainer_opt_parse_type(&type, cfg->optimizer.type);
    if (!rc)
        rc = trainer_opt_init(&r->opt, r->m, type, cfg->optimizer.nesterov, cfg->optimizer.beta2,
                              cfg->optimizer.eps, cfg->optimizer.decay_bn_bias);
    if (rc) return rc;
    r->opt.true_wd = cfg->optimizer.true_wd;
    float *slabs[NN_MAX_GROUPS];
    size_t counts[NN_MAX_GROUPS], tails[NN_MAX_GROUPS];
    for (int g = 0; g < r->m->ngroups; g++) {
        slabs[g] = r->m->groups[g].grad_slab;
        counts[g] = r->m->groups[g].numel;
        tails[g] = r->m->groups[g].bn_offset; /* a frozen group's BatchNorm (train_bn) */
    }
    size_t bucket = (size_t)(cfg->comm.bucket_mb * 1048576.0 / sizeof(float));
    comm_reduce_mode mode = COMM_REDUCE_AFTER;
    if (cfg->comm.overlap) {
        rc = comm_reduce_mode_parse(&mode, cfg->comm.progress);
        if (rc) return rc;
    }
    rc = comm_reducer_init(&r->red, r->c, r->m->ngroups, slabs, counts, tails, bucket ? bucket : 1,
                           mode);
    if (rc) return rc;
    const int world = comm_size(r->c), B = cfg->data.batch_size;
    if (need_train) {
        if (r->train.n < world)
            return nn_err(NN_ERANGE, "%s has %d samples, fewer than the %d ranks", cfg->data.train,
                          r->train.n, world);
        rc = io_check_batch(r->train.n / world / cfg->train.accumulate, B, world);
        if (rc) return rc;
    }
    r->labels = malloc(sizeof(int32_t) * B);
    r->batch_idx = malloc(sizeof(int) * B);
    r->shard = malloc(sizeof(int) * (r->train.n > r->valid.n ? r->train.n : r->valid.n) + 1);
    if (!r->labels || !r->batch_idx || !r->shard)
        return nn_err(NN_ENOMEM, "cannot allocate batch buffers");
    return 0;
}

/* Rank 0's weights and BatchNorm buffers on every rank (replicas start identical even if a
 * rank's RNG or BLAS differed). */
static int bn_bcast(void *ud, const char *name, nn_buffer *b)
{
    return comm_bcast_f32(ud, b->data, b->numel, 0);
}

static int bn_average(void *ud, const char *name, nn_buffer *b)
{
    return comm_allreduce_f32(ud, b->data, b->numel, 1);
}

static int run_sync_replicas(run *r)
{
    for (int g = 0; g < r->m->ngroups; g++) {
        int rc = comm_bcast_f32(r->c, r->m->groups[g].param_slab, r->m->groups[g].numel, 0);
        if (rc) return rc;
    }
    return nn_model_visit_buffers(r->m, bn_bcast, r->c);
}

static void run_free(run *r)
{
    io_ckpt_scratch_free(&r->ckpt_mem);
    free(r->mean);
    free(r->std);
    free(r->pad);
    comm_reducer_free(r->red);
    trainer_opt_free(&r->opt);
    nn_model_free(r->m);
    io_dataset_free(&r->train);
    io_dataset_free(&r->valid);
    nn_tensor_free(&r->x);
    nn_tensor_free(&r->dlogits);
    free(r->labels);
    free(r->batch_idx);
    free(r->shard);
    if (r->metrics) fclose(r->metrics);
}

/* Fills r->x and r->labels with samples idx[0..count) of ds, normalised, augmented when
 * training. */
static int load_batch(run *r, const io_dataset *ds, const int *idx, int count, int augment)
{
    int rc = nn_tensor_resize(&r->x, count, ds->c, ds->h, ds->w);
    if (rc) return rc;
    io_dataset_to_float(r->x.data, ds, idx, count, r->mean, r->std);
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int i = 0; i < count; i++) {
        r->labels[i] = ds->labels[idx[i]];
        if (augment && (r->cfg->data.augment.crop_padding > 0 || r->cfg->data.augment.flip))
            io_augment(r->x.data + i * per, ds->c, ds->h, ds->w, r->cfg->data.augment.crop_padding,
                       r->cfg->data.augment.flip, r->pad, r->cfg->train.seed, r->epoch, idx[i]);
    }
    return 0;
}

/* ---- replica checks ---------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = 1;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

static int describe_param(void *ud, const char *name, nn_param *p)
{
    text_add(ud, "param %s (%d, %d, %d, %d) group %d%s\n", name, p->shape[0], p->shape[1],
             p->shape[2], p->shape[3], p->group, p->trainable ? " trainable" : "");
    return 0;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The enclosing YAML sections of the line at `at` in doc (lines indented less, walking
 * back), e.g. "train" for "  seed: 6", "data.synthetic" for "    seed: 7". */
static void yaml_sections(char *out, size_t len, const char *doc, const char *at)
{
    out[0] = '\0';
    int indent = 0;
    while (at[indent] == ' ') indent++;
    const char *names[8];
    int nlen[8], n = 0;
    for (const char *p = at; p > doc && indent > 0 && n < 8;) {
        const char *ls = p - 1; /* the end of the previous line */
        while (ls > doc && ls[-1] != '\n') ls--;
        int ind = 0;
        while (ls[ind] == ' ') ind++;
        const char *colon = memchr(ls + ind, ':', (size_t)(p - 1 - ls - ind));
        if (ind < indent && ls[ind] != '#' && ls[ind] != '-' && colon) {
            names[n] = ls + ind;
            nlen[n++] = (int)(colon - ls - ind);
            indent = ind;
        }
        p = ls;
    }
    size_t o = 0;
    for (int i = n - 1; i >= 0 && o < len; i--)
        o += (size_t)snprintf(out + o, len - o, "%s%.*s", i == n - 1 ? "" : ".", nlen[i], names[i]);
}

/* Every rank compares `mine` with rank 0's by hash, then, if any differs, in detail: a rank
 * that differs names the first line that is not rank 0's. Returns the agreed status. */
static int compare_with_rank0(comm *c, const char *what, const char *mine, size_t len)
{
    uint64_t h = fnv1a(mine, len), h0 = h;
    int rc = comm_bcast_bytes(c, &h0, sizeof h0, 0);
    if (rc) return rc;
    int32_t differs[1] = {h != h0};
    rc = comm_allreduce_max_i32(c, differs, 1);
    if (rc || !differs[0]) return rc;
    uint64_t n0 = len;
    rc = comm_bcast_bytes(c, &n0, sizeof n0, 0);
    char *theirs = rc ? NULL : malloc(n0 + 1);
    if (!rc && !theirs) rc = nn_err(NN_ENOMEM, "replica check: out of memory");
    if (!rc && comm_rank(c) == 0) memcpy(theirs, mine, n0);
    if (!rc) rc = comm_bcast_bytes(c, theirs, n0, 0);
    if (rc) {
        free(theirs);
        return rc;
    }
    theirs[n0] = '\0';
    int status = 0;
    if (h != h0) {
        const char *a = mine, *b = theirs;
        while (*a && *b) {
            const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
            size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
            if (la != lb || memcmp(a, b, la)) break;
            a += la + (ea != NULL);
            b += lb + (eb != NULL);
        }
        int la = (int)(strchr(a, '\n') ? strchr(a, '\n') - a : (long)strlen(a));
        int lb = (int)(strchr(b, '\n') ? strchr(b, '\n') - b : (long)strlen(b));
        char where[256];
        yaml_sections(where, sizeof where, mine, a);
        status = nn_err(NN_ESTATE, "replica check (%s): this rank differs from rank 0%s%s: '%.*s' here, '%.*s' on rank 0",
                        what, where[0] ? " in " : "", where, la > 200 ? 200 : la, a,
                        lb > 200 ? 200 : lb, b);
    } else {
        status = nn_err(NN_ESTATE, "replica check (%s): another rank differs from rank 0 (its message says how)", what);
    }
    free(theirs);
    /* Every rank fails; comm_agree keeps each rank's own message. */
    int32_t st[1] = {status};
    comm_allreduce_max_i32(c, st, 1);
    return status;
}

/* At start: the model (parameter names, shapes, groups, trainable flags) and the effective
 * config (every key, which must agree across ranks) must be the same on every rank. */
static int check_replicas(run *r)
{
    text t = {0};
    text_add(&t, "model %s input %dx%dx%d classes %d cut %d groups %d\n", r->m->arch,
             r->m->in_shape[0], r->m->in_shape[1], r->m->in_shape[2], r->m->classes, r->m->cut,
             r->m->ngroups);
    for (int g = 0; g < r->m->ngroups; g++)
        text_add(&t, "group %d: children %d-%d, %zu parameters, frozen %d\n", g,
                 r->m->groups[g].first, r->m->groups[g].last, r->m->groups[g].numel,
                 r->m->groups[g].frozen);
    nn_model_visit_params(r->m, describe_param, &t);
    char *cfg = NULL;
    if (io_config_to_string(&cfg, r->cfg) == 0) text_add(&t, "%s", cfg);
    free(cfg);
    int rc = t.failed ? nn_err(NN_ENOMEM, "replica check: out of memory") : 0;
    rc = comm_agree(r->c, rc, NULL);
    if (!rc) rc = compare_with_rank0(r->c, "model and config at start", t.buf, t.len);
    free(t.buf);
    return rc;
}

/* At a phase change: the same step and the same frozen groups on every rank. */
static int check_phase(run *r, int phase)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "phase %d at step %ld, frozen groups:", phase, r->global_step);
    for (int g = 0; g < r->m->ngroups && n < (int)sizeof buf - 8; g++)
        if (r->m->groups[g].frozen) n += snprintf(buf + n, sizeof buf - n, " %d", g);
    char what[32];
    snprintf(what, sizeof what, "start of phase %d", phase + 1);
    return compare_with_rank0(r->c, what, buf, (size_t)n);
}

/* nn's backward hook: a finished group starts its reduction; every call drives the ones in
 * flight. */
static int on_backward(void *ud, int group, int done)
{
    run *r = ud;
    int rc = done ? comm_reducer_group_done(r->red, group) : 0;
    return rc ? rc : comm_reducer_progress(r->red);
}

/* Groups with something trainable send their gradients; frozen ones are silent (unless
 * train_bn keeps their BatchNorm training). */
/* What each group sends this step: all of its gradients, nothing when frozen, or, when it is
 * frozen but its BatchNorm trains (train_bn), only the tail of its slab that holds the
 * BatchNorm parameters. */
static void set_active(run *r)
{
    for (int g = 0; g < r->m->ngroups; g++) {
        const nn_group *gr = &r->m->groups[g];
        int any = 0;
        for (int k = 0; k < gr->nparams && !any; k++) any = gr->params[k]->trainable;
        r->active[g] = !any          ? COMM_GROUP_SILENT
                       : gr->frozen ? COMM_GROUP_TAIL
                                    : COMM_GROUP_ALL;
    }
}

/* Clips the (already averaged, so identical on every rank) gradients of trainable
 * parameters to a global L2 norm of at most max_norm; *norm gets the norm before. */
static void clip_grads(run *r, double max_norm, double *norm)
{
    double s = 0.0;
    for (int g = 0; g < r->m->ngroups; g++)
        for (int k = 0; k < r->m->groups[g].nparams; k++) {
            const nn_param *p = r->m->groups[g].params[k];
            if (!p->trainable) continue;
            for (size_t i = 0; i < p->numel; i++) s += (double)p->grad[i] * p->grad[i];
        }
    *norm = sqrt(s);
    if (max_norm <= 0.0 || *norm <= max_norm) return;
    const float f = (float)(max_norm / (*norm + 1e-6));
    for (int g = 0; g < r->m->ngroups; g++)
        for (int k = 0; k < r->m->groups[g].nparams; k++) {
            nn_param *p = r->m->groups[g].params[k];
            if (!p->trainable) continue;
            for (size_t i = 0; i < p->numel; i++) p->grad[i] *= f;
        }
}

/* One optimizer step's gradients: accumulate micro-batches idx[a*B .. (a+1)*B) for a < A,
 * reducing once, during the last micro-batch's backward. Every rank issues the same
 * collectives in the same order even when its own step failed (it then sends whatever its
 * slabs hold), so the failure is agreed on afterwards instead of leaving ranks waiting in
 * mismatched collectives. *loss and *hits are summed over the micro-batches (local). */
static int step_grads(run *r, const io_dataset *ds, const int *idx, int B, int A, float *loss,
                      int *hits)
{
    int rc = 0;
    *loss = 0.0f;
    *hits = 0;
    set_active(r);
    comm_reducer_begin(r->red, r->active);
    for (int a = 0; a < A && !rc; a++) {
        float l = 0.0f;
        int h = 0;
        const nn_tensor *logits;
        nn_ctx ctx = {&r->rng};
        rc = load_batch(r, ds, idx + (size_t)a * B, B, 1);
        if (!rc) rc = nn_model_forward(&logits, r->m, &r->x, &ctx);
        if (!rc) rc = nn_cross_entropy(&l, &r->dlogits, &h, logits, r->labels);
        if (!rc && !isfinite(l) && !r->nonfinite_ok)
            rc = nn_err(NN_ERANGE, "the loss is %f at step %ld: training diverged (lower the learning rate)",
                        (double)l, r->global_step + 1);
        if (rc) break;
        *loss += l;
        *hits += h;
        /* Scaling the loss gradient by 1/(ranks x micro-batches) makes the reduced sum the
         * average, without a pass over the gradient slabs afterwards. */
        const float inv = 1.0f / (float)(comm_size(r->c) * A);
        const size_t nd = nn_tensor_numel(&r->dlogits);
        for (size_t i = 0; i < nd; i++) r->dlogits.data[i] *= inv;
        nn_model_set_backward_hook(r->m, a == A - 1 ? on_backward : NULL, r);
        /* The first micro-batch writes the gradients (no zeroing pass), the others add. */
        rc = a == 0 ? nn_model_backward_fresh(r->m, &r->dlogits)
                    : nn_model_backward(r->m, &r->dlogits);
        nn_model_set_backward_hook(r->m, NULL, NULL);
    }
    /* A failed rank still takes part in every reduction of the step. */
    for (int g = r->m->ngroups - 1; g >= 0 && rc; g--) comm_reducer_group_done(r->red, g);
    int rc2 = comm_reducer_finish(r->red, 1.0f); /* already averaged: see the loss scaling */
    if (!rc) rc = rc2;
    /* The step's agreement on errors also agrees on a stop signal seen on any rank. */
    r->stop_agreed = r->stop_signal ? *r->stop_signal : 0;
    rc = comm_agree_max(r->c, rc, NULL, &r->stop_agreed);
    if (!rc && r->cfg->train.clip_norm > 0.0) {
        double norm;
        clip_grads(r, r->cfg->train.clip_norm, &norm);
    }
    return rc;
}

/* Validation loss and accuracy over the whole valid set, each rank taking every world-th
 * sample, after averaging BatchNorm statistics so that all replicas agree. */
static int run_validate(run *r, double *loss, double *acc)
{
    const io_dataset *ds = &r->valid;
    const int world = comm_size(r->c), rank = comm_rank(r->c), B = r->cfg->data.batch_size;
    int rc = nn_model_visit_buffers(r->m, bn_average, r->c);
    if (rc) return rc;
    nn_model_set_training(r->m, 0);
    double sums[3] = {0, 0, 0}; /* loss * n, hits, n */
    int count = 0;
    for (int i = rank; i < ds->n; i += world) r->shard[count++] = i;
    for (int s = 0; s < count && !rc; s += B) {
        int cnt = count - s < B ? count - s : B;
        rc = load_batch(r, ds, r->shard + s, cnt, 0);
        const nn_tensor *logits;
        nn_ctx ctx = {&r->rng};
        float l = 0.0f;
        int hits = 0;
        if (!rc) rc = nn_model_forward(&logits, r->m, &r->x, &ctx);
        if (!rc) rc = nn_cross_entropy(&l, NULL, &hits, logits, r->labels);
        sums[0] += (double)l * cnt;
        sums[1] += hits;
        sums[2] += cnt;
    }
    nn_model_set_training(r->m, 1);
    int who;
    rc = comm_agree(r->c, rc, &who);
    if (rc) return rc;
    rc = comm_allreduce_f64(r->c, sums, 3);
    if (rc) return rc;
    *loss = sums[0] / sums[2];
    *acc = sums[1] / sums[2];
    return 0;
}

/* The phases to run: the config's, or one built from the top-level keys. */
static int phases_of(const io_config *cfg, io_phase *ph)
{
    if (cfg->train.nphases > 0) {
        memcpy(ph, cfg->train.phases, sizeof(io_phase) * cfg->train.nphases);
        return cfg->train.nphases;
    }
    memset(ph, 0, sizeof *ph);
    snprintf(ph->name, sizeof ph->name, "train");
    ph->epochs = cfg->train.epochs;
    return 1;
}

/* Expands a per-group hyperparameter; errors name where it was written: "FILE:LINE: key",
 * "--set key" or the key alone for defaults. */
static int expand_hp(float *out, int ngroups, const io_hparam *hp, const io_config *cfg,
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

static int sched_from(trainer_sched *s, const io_schedule *cs, long steps_per_epoch)
{
    memset(s, 0, sizeof *s);
    int rc = trainer_sched_parse_type(&s->type, cs->type);
    if (rc) return rc;
    s->pct_start = cs->pct_start;
    s->div = cs->div;
    s->div_final = cs->div_final;
    memcpy(s->moms, cs->moms, sizeof s->moms);
    s->step_gamma = cs->step_gamma;
    s->step_epochs = cs->step_epochs;
    s->cos_final_div = cs->final_div;
    s->steps_per_epoch = steps_per_epoch;
    return 0;
}

static void print_lrs(FILE *f, const float *lr, int n, const char *sep)
{
    for (int g = 0; g < n; g++) fprintf(f, "%s%.3g", g ? sep : "", (double)lr[g]);
}

/* A redrawn bar only on a terminal. Under mpirun, Open MPI hands rank 0 a pseudo-terminal
 * whatever the job's real output is (a log file, tee, a batch system), so there plain lines
 * are printed unless STRATA_PROGRESS=bar asks for the bar; STRATA_PROGRESS=lines forces
 * lines everywhere. */
static int progress_bar_wanted(FILE *out)
{
    if (!out) return 0;
    const char *p = getenv("STRATA_PROGRESS");
    if (p && !strcmp(p, "bar")) return 1;
    if (p && !strcmp(p, "lines")) return 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK")) return 0;
    return isatty(fileno(out));
}

static void progress(run *r, int phase, int nphases, int epoch, int epochs, int b, int nb,
                     double loss, double sps, const float *lr)
{
    if (!r->out) return;
    if (r->tty) {
        const int width = 24, done = (int)((double)width * b / nb);
        fprintf(r->out, "\rphase %d/%d epoch %d/%d [", phase + 1, nphases, epoch + 1, epochs);
        for (int i = 0; i < width; i++) fputc(i < done ? '#' : '.', r->out);
        fprintf(r->out, "] %d/%d loss %.4f %.0f samples/s lr ", b, nb, loss, sps);
        print_lrs(r->out, lr, r->m->ngroups, ",");
        fprintf(r->out, "   ");
    } else {
        fprintf(r->out, "phase %d/%d epoch %d/%d batch %d/%d loss %.4f samples/s %.0f lr ", phase + 1,
                nphases, epoch + 1, epochs, b, nb, loss, sps);
        print_lrs(r->out, lr, r->m->ngroups, ",");
        fputc('\n', r->out);
    }
    fflush(r->out);
}

/* A number in metrics.jsonl: JSON has no NaN or infinity, so those are null. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* Per-group values (lr, momentum) in metrics.jsonl, at full float precision. */
static void metrics_list(FILE *f, const float *v, int n)
{
    fputc('[', f);
    for (int g = 0; g < n; g++) fprintf(f, "%s%.9g", g ? ", " : "", (double)v[g]);
    fputc(']', f);
}

/* The whole text of a file, malloc'd, or NULL when it cannot be read. */
static char *read_text_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, n;
    char chunk[65536];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    return buf ? buf : strdup("");
}

/* A fresh training run must not overwrite another: run.dir/config.yaml, if there, must be
 * this run's effective config, and this run must not have checkpoints there already. */
static int check_run_dir(const io_config *cfg)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    char *old = read_text_file(path), *mine = NULL;
    if (!old) return 0;
    int rc = io_config_to_string(&mine, cfg);
    if (!rc && strcmp(old, mine)) {
        const char *a = old, *b = mine;
        while (*a && *a == *b) a++, b++;
        while (a > old && a[-1] != '\n') a--, b--;
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        rc = nn_err(NN_ESTATE, "run.dir %s already holds a different run: its config.yaml has '%.*s' where this run has '%.*s'; use another run.dir (or remove %s)",
                    cfg->run.dir, la > 120 ? 120 : la, a, lb > 120 ? 120 : lb, b, cfg->run.dir);
    } else if (!rc) {
        char latest[1200], dir[1100];
        snprintf(dir, sizeof dir, "%s/checkpoints", cfg->run.dir);
        if (io_ckpt_latest(latest, sizeof latest, dir) == 0)
            rc = nn_err(NN_ESTATE, "run.dir %s already holds this run's checkpoints (%s): continue with --resume auto, or remove %s to start over",
                        cfg->run.dir, latest, cfg->run.dir);
    }
    free(old);
    free(mine);
    return rc;
}

/* run.dir/status (rank 0): one line saying how the run stands, for people and sweep
 * reports. Best effort: a failure to write it is not the run's failure. */
static void write_status(const run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_status(const run *r, const char *fmt, ...)
{
    if (comm_rank(r->c) != 0) return;
    char path[1100];
    snprintf(path, sizeof path, "%s/status", r->cfg->run.dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* Sets up the run directory on rank 0: the effective config and metrics.jsonl (after
 * check_run_dir when fresh is set). */
static int run_open_dir(run *r, int fresh)
{
    int rc = 0;
    if (comm_rank(r->c) == 0) {
        rc = fresh ? check_run_dir(r->cfg) : 0;
        if (!rc) rc = make_dirs(r->cfg->run.dir);
        char path[1100];
        if (!rc) {
            snprintf(path, sizeof path, "%s/config.yaml", r->cfg->run.dir);
            FILE *f = fopen(path, "w");
            if (!f)
                rc = nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
            else {
                rc = io_config_write(r->cfg, f);
                if (fclose(f) && !rc) rc = nn_err(NN_EIO, "cannot write %s", path);
            }
        }
        if (!rc) {
            snprintf(path, sizeof path, "%s/metrics.jsonl", r->cfg->run.dir);
            r->metrics = fopen(path, "w");
            if (!r->metrics) rc = nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
        }
    }
    return comm_agree(r->c, rc, NULL);
}

/* ---- checkpoints --------------------------------------------------------------------- */

/* Where training stands: what a checkpoint records and a resumed run starts from. */
typedef struct {
    int phase, epoch_in_phase, epoch, finished;
    long step_in_epoch, phase_step, global_step, steps_per_epoch;
    int global_batch, world, nrng, has;
} position;

/* Saves a checkpoint of the run at position at into run.dir/checkpoints, on every rank:
 * BatchNorm statistics are averaged and every rank's RNG state gathered first; rank 0
 * writes the file, points `latest` at it and removes all but the newest checkpoint.keep.
 * lr, wd, mom: the phase's per-group maximum lr, weight decay and base momentum. */
static int ckpt_save(run *r, const position *at, const float *lr, const float *wd,
                     const float *mom)
{
    const int world = comm_size(r->c), rank = comm_rank(r->c);
    int rc = nn_model_visit_buffers(r->m, bn_average, r->c);
    int64_t *rng = rc ? NULL : calloc((size_t)world * 4, sizeof(int64_t));
    if (!rc && !rng) rc = nn_err(NN_ENOMEM, "checkpoint: out of memory");
    if (!rc) {
        memcpy(rng + (size_t)rank * 4, r->rng.s, sizeof r->rng.s);
        rc = comm_allreduce_i64(r->c, rng, (size_t)world * 4);
    }
    rc = comm_agree(r->c, rc, NULL);
    if (rc || rank != 0) {
        free(rng);
        return comm_agree(r->c, rc, NULL);
    }
    const io_config *cfg = r->cfg;
    io_ckpt ck;
    char *config = NULL, *metrics = NULL, dir[1100], path[1200], file[64];
    rc = trainer_ckpt_fill(&ck, r->m, &r->opt);
    if (!rc) rc = io_config_to_string(&config, cfg);
    if (rc) goto out;
    if (r->metrics) {
        fflush(r->metrics);
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->run.dir);
        metrics = read_text_file(path);
    }
    ck.world_size = world;
    ck.config = config;
    ck.metrics = metrics;
    snprintf(ck.head, sizeof ck.head, "%s", cfg->model.head[0] ? cfg->model.head : "default");
    ck.small_stem = cfg->model.small_stem;
    for (int g = 0; g < r->m->ngroups; g++) {
        ck.groups[g].lr = lr[g];
        ck.groups[g].wd = wd[g];
        ck.groups[g].momentum = mom[g];
    }
    ck.train = (io_ckpt_train){1,
                               at->phase,
                               at->epoch,
                               at->epoch_in_phase,
                               at->step_in_epoch,
                               at->phase_step,
                               at->global_step,
                               at->steps_per_epoch,
                               at->global_batch,
                               cfg->train.seed,
                               at->finished,
                               world,
                               (uint64_t(*)[4])rng};
    snprintf(dir, sizeof dir, "%s/checkpoints", cfg->run.dir);
    snprintf(file, sizeof file, "ckpt-%09ld.h5", at->global_step);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    rc = make_dirs(dir);
    if (!rc) rc = io_ckpt_save_reuse(path, &ck, &r->ckpt_mem);
    if (!rc) rc = io_ckpt_set_latest(dir, file);
    if (!rc) rc = io_ckpt_prune(dir, cfg->checkpoint.keep, NULL);
    if (!rc && r->out) fprintf(r->out, "strata: checkpoint %s (step %ld)\n", path, at->global_step);
out:
    trainer_ckpt_release(&ck);
    free(config);
    free(metrics);
    free(rng);
    return comm_agree(r->c, rc, NULL);
}

/* Rank 0, resuming: checks that the checkpoint fits the run (architecture, group partition
 * unless regroup, optimizer type) and loads weights, buffers, optimizer state and counters. */
static int ckpt_resume_load(run *r, io_ckpt_reader *rd, int regroup)
{
    const io_ckpt *info = io_ckpt_info(rd);
    const char *path = io_ckpt_path(rd);
    if (strcmp(info->arch, r->m->arch))
        return nn_err(NN_ESTATE, "%s: the checkpoint holds a %s, the config asks for a %s", path,
                      info->arch, r->m->arch);
    const int G = r->m->ngroups;
    int same = info->ngroups == G;
    for (int g = 0; g < G && same; g++)
        same = info->groups[g].first == r->m->groups[g].first && info->groups[g].last == r->m->groups[g].last;
    if (!same && !regroup) {
        char a[512], b[512];
        int o = 0, o2 = 0;
        for (int g = 0; g < info->ngroups && o < 400; g++)
            o += snprintf(a + o, sizeof a - o, "%s%d-%d", g ? ", " : "", info->groups[g].first, info->groups[g].last);
        for (int g = 0; g < G && o2 < 400; g++)
            o2 += snprintf(b + o2, sizeof b - o2, "%s%d-%d", g ? ", " : "", r->m->groups[g].first, r->m->groups[g].last);
        return nn_err(NN_ESTATE, "%s: the group partition differs from the config: %d groups with body children %s in the checkpoint, %d groups with %s in the config (head -1--1); pass --regroup to load it into the config's groups",
                      path, info->ngroups, a, G, b);
    }
    const char *want = trainer_opt_name(r->opt.type);
    if (strcmp(info->opt_type, want))
        return nn_err(NN_ESTATE, "%s: optimizer %s in the checkpoint, optimizer.type %s in the config",
                      path, info->opt_type[0] ? info->opt_type : "none", want);
    trainer_ckpt_counts cnt;
    int rc = trainer_ckpt_load(r->m, &r->opt, rd, 0, &cnt);
    if (rc) return rc;
    for (int g = 0; g < G; g++) {
        if (!regroup || same) {
            r->opt.step[g] = info->opt_step[g];
            r->opt.step_bn[g] = info->opt_step_bn[g];
            continue;
        }
        /* A new group takes the largest step count of the old groups its parameters came
         * from (AdamW's bias correction then stays small for all of them). */
        long st = 0, stbn = 0;
        const nn_group *ng = &r->m->groups[g];
        for (int k = 0; k < info->ngroups; k++) {
            const io_ckpt_group *og = &info->groups[k];
            const int overlap = ng->is_head ? og->first < 0
                                            : og->first >= 0 && og->first <= ng->last && og->last >= ng->first;
            if (!overlap) continue;
            if (info->opt_step[k] > st) st = info->opt_step[k];
            if (info->opt_step_bn[k] > stbn) stbn = info->opt_step_bn[k];
        }
        r->opt.step[g] = st;
        r->opt.step_bn[g] = stbn;
    }
    if (r->out)
        fprintf(r->out, "strata: resumed from %s: %d tensors (%zu values) with their %s state%s\n", path,
                cnt.loaded, cnt.loaded_values, info->opt_type, !same ? ", regrouped by parameter name" : "");
    return 0;
}

/* Rank 0: model.init_from, a pretrained body under a new head. */
static int ckpt_init_from(run *r, const char *path)
{
    io_ckpt_reader *rd = NULL;
    int rc = io_ckpt_open(&rd, path);
    trainer_ckpt_counts n = {0, 0, 0, 0};
    if (!rc) rc = trainer_ckpt_load(r->m, NULL, rd, 1, &n);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        rc = nn_err(rc, "model.init_from: %s", msg);
    } else if (r->out) {
        fprintf(r->out, "strata: model.init_from %s (%s): loaded the body, %d tensors (%zu values) by name; new: the head, %d tensors (%zu values)\n",
                path, io_ckpt_info(rd)->arch, n.loaded, n.loaded_values, n.fresh, n.fresh_values);
    }
    io_ckpt_close(rd);
    return rc;
}

/* Every rank: the optimizer state and step counters of rank 0. */
static int bcast_opt(run *r)
{
    const int ns = trainer_opt_nstates(&r->opt);
    int rc = 0;
    for (int g = 0; g < r->m->ngroups && !rc; g++) {
        for (int s = 0; s < ns && !rc; s++)
            rc = comm_bcast_f32(r->c, s == 0 ? r->opt.state1[g] : r->opt.state2[g], r->m->groups[g].numel, 0);
    }
    if (!rc) rc = comm_bcast_bytes(r->c, r->opt.step, sizeof r->opt.step, 0);
    if (!rc) rc = comm_bcast_bytes(r->c, r->opt.step_bn, sizeof r->opt.step_bn, 0);
    return rc;
}

/* Phase p's freezing and per-group maximum lr, weight decay and base momentum; errors name
 * the config key. */
static int phase_setup(run *r, const io_phase *ph, int p, float *lr_max, float *wd,
                       float *mom_base, int *warn)
{
    const io_config *cfg = r->cfg;
    const int G = r->m->ngroups;
    int rc = nn_model_freeze_to(r->m, ph->has_freeze_to ? ph->freeze_to : cfg->groups.freeze_to, warn);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        if (ph->has_freeze_to)
            rc = nn_err(rc, "train.phases.%d.freeze_to: %s", p, msg);
        else
            rc = nn_err(rc, "groups.freeze_to: %s", msg);
    }
    const io_hparam *hl = ph->lr.kind ? &ph->lr : &cfg->groups.lr;
    char lrkey[64];
    if (ph->lr.kind)
        snprintf(lrkey, sizeof lrkey, "train.phases.%d.lr", p);
    else
        snprintf(lrkey, sizeof lrkey, "groups.lr");
    if (!rc) rc = expand_hp(lr_max, G, hl, cfg, lrkey);
    if (!rc) rc = expand_hp(wd, G, &cfg->groups.wd, cfg, "groups.wd");
    if (!rc) rc = expand_hp(mom_base, G, &cfg->groups.momentum, cfg, "groups.momentum");
    return rc;
}

/* The first frozen groups' count after freeze_to(n) on G groups (nn_model_freeze_to's rule). */
static int frozen_upto(int n, int G)
{
    return G == 1 ? 0 : n < 0 ? G + n : n;
}

/* Whether phase p starts with a freeze_to in fastai's sense, which clears the optimizer
 * state: the phase gives its own freeze_to, or its frozen groups differ from phase p-1's. */
static int phase_freezes(const io_config *cfg, const io_phase *ph, int p, int G)
{
    if (ph[p].has_freeze_to) return 1;
    if (p == 0) return 0;
    const int a = ph[p - 1].has_freeze_to ? ph[p - 1].freeze_to : cfg->groups.freeze_to;
    return frozen_upto(a, G) != frozen_upto(cfg->groups.freeze_to, G);
}

/* Rank 0 resolves --resume (a path, or "auto": run.dir/checkpoints/latest if there is one)
 * and reads where the run stands; every rank gets the position. *rd stays open on rank 0
 * for the tensors. A world size that cannot keep the checkpoint's global batch is refused. */
static int resume_open(run *r, const char *resume, io_ckpt_reader **rd, position *pos)
{
    const io_config *cfg = r->cfg;
    int rc = 0;
    memset(pos, 0, sizeof *pos);
    if (comm_rank(r->c) == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s", resume);
        if (!strcmp(resume, "auto")) {
            char dir[1100];
            snprintf(dir, sizeof dir, "%s/checkpoints", cfg->run.dir);
            rc = io_ckpt_latest(path, sizeof path, dir);
            if (rc == NN_ENOTFOUND) {
                if (r->out)
                    fprintf(r->out, "strata: --resume auto: no checkpoint in %s yet; starting from the beginning\n", dir);
                path[0] = '\0';
                rc = 0;
            }
        }
        if (!rc && path[0]) rc = io_ckpt_open(rd, path);
        if (!rc && *rd) {
            const io_ckpt *info = io_ckpt_info(*rd);
            const io_ckpt_train *t = &info->train;
            if (!t->has)
                rc = nn_err(NN_ESTATE, "%s holds weights only (no training state): start from it with model.init_from instead of --resume", path);
            else
                *pos = (position){t->phase, t->epoch_in_phase, t->epoch, t->finished, t->step_in_epoch,
                                  t->phase_step, t->global_step, t->steps_per_epoch, t->global_batch,
                                  info->world_size, t->nrng, 1};
        }
    }
    rc = comm_agree(r->c, rc, NULL);
    if (!rc) rc = comm_bcast_bytes(r->c, pos, sizeof *pos, 0);
    return rc;
}

int trainer_train(const io_config *cfg, comm *c, FILE *out)
{
    const trainer_train_opts none = {NULL, 0, 0, NULL, NULL};
    return trainer_train_ex(cfg, c, out, &none, NULL);
}

int trainer_train_ex(const io_config *cfg_in, comm *c, FILE *out, const trainer_train_opts *o,
                     trainer_train_result *res)
{
    trainer_train_result result = {0, 0, 0};
    int opened = 0; /* run.dir is set up: status is written from here on */
    run r = {0};
    io_config cfgv = *cfg_in; /* a resume at another world size adjusts data.batch_size */
    const io_config *cfg = &cfgv;
    r.cfg = cfg;
    r.c = c;
    const int rank = comm_rank(c), world = comm_size(c);
    r.out = rank == 0 ? out : NULL;
    r.tty = progress_bar_wanted(r.out);
    r.stop_signal = o->stop_signal;
    io_ckpt_reader *rd = NULL;
    position start = {0};
    int rc = 0;
    if (o->resume) {
        rc = resume_open(&r, o->resume, &rd, &start);
        if (rc) goto done;
        if (start.has && start.finished) {
            result.finished = 1;
            result.global_step = start.global_step;
            if (r.out)
                fprintf(r.out, "strata: %s: the run already finished (global step %ld); nothing to resume\n",
                        rd ? io_ckpt_path(rd) : o->resume, start.global_step);
            goto done;
        }
        /* The same global batch on any number of ranks: it sets the data order and the
         * step count. */
        const int A = cfg->train.accumulate, per = world * A;
        if (start.has && start.global_batch != cfg->data.batch_size * per) {
            if (start.global_batch % per) {
                rc = nn_err(NN_ERANGE, "cannot resume a run of global batch %d (%d rank(s) in the checkpoint) on %d rank(s) with train.accumulate %d: %d is not a multiple of %d",
                            start.global_batch, start.world, world, A, start.global_batch, per);
                goto done;
            }
            if (r.out)
                fprintf(r.out, "strata: resuming a run of %d rank(s) on %d: data.batch_size %d -> %d per rank, keeping the global batch %d\n",
                        start.world, world, cfg->data.batch_size, start.global_batch / per, start.global_batch);
            cfgv.data.batch_size = start.global_batch / per;
        }
    }
    rc = comm_agree(c, run_setup(&r, 1), NULL);
    if (!rc) rc = check_replicas(&r);
    if (rc) goto done;
    if (start.has) {
        if (rank == 0) rc = ckpt_resume_load(&r, rd, o->regroup);
        rc = comm_agree(c, rc, NULL);
        if (!rc) rc = bcast_opt(&r);
        /* Each rank's dropout RNG, when the world size is the same (otherwise every rank
         * keeps the stream seeded for it). */
        uint64_t *rng = rc ? NULL : calloc((size_t)start.nrng * 4, sizeof(uint64_t));
        if (!rc && !rng) rc = nn_err(NN_ENOMEM, "resume: out of memory");
        if (!rc && rank == 0) memcpy(rng, io_ckpt_info(rd)->train.rng, sizeof(uint64_t) * 4 * start.nrng);
        if (!rc) rc = comm_bcast_bytes(c, rng, sizeof(uint64_t) * 4 * start.nrng, 0);
        if (!rc && start.nrng == world) memcpy(r.rng.s, rng + (size_t)rank * 4, sizeof r.rng.s);
        free(rng);
        r.epoch = start.epoch;
        r.global_step = start.global_step;
    } else if (cfg->model.init_from[0]) {
        if (rank == 0) rc = ckpt_init_from(&r, cfg->model.init_from);
        rc = comm_agree(c, rc, NULL);
    }
    /* Every phase's settings are checked before anything is written to run.dir. */
    io_phase phases[IO_MAX_PHASES];
    const int nphases = phases_of(cfg, phases);
    for (int p = 0; p < nphases && !rc; p++) {
        float a[NN_MAX_GROUPS], b[NN_MAX_GROUPS], d[NN_MAX_GROUPS];
        int w;
        rc = phase_setup(&r, &phases[p], p, a, b, d, &w);
    }
    if (!rc) rc = nn_model_freeze_to(r.m, 0, NULL);
    rc = comm_agree(c, rc, NULL);
    if (!rc) rc = run_sync_replicas(&r);
    if (!rc) rc = run_open_dir(&r, !start.has);
    if (!rc) write_status(&r, "running");
    opened = !rc;
    if (!rc && rank == 0 && o->sweep_json) {
        char path[1100];
        snprintf(path, sizeof path, "%s/sweep.json", cfg->run.dir);
        FILE *f = fopen(path, "w");
        if (!f || fputs(o->sweep_json, f) < 0 || fclose(f))
            rc = nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    rc = comm_agree(c, rc, NULL);
    if (!rc && start.has && r.metrics && io_ckpt_info(rd)->metrics) {
        /* metrics.jsonl continues the checkpoint's history (lines written after it by the
         * run that stopped are dropped). */
        fputs(io_ckpt_info(rd)->metrics, r.metrics);
        fflush(r.metrics);
    }
    io_ckpt_close(rd);
    rd = NULL;
    if (rc) goto done;
    const int B = cfg->data.batch_size, A = cfg->train.accumulate;
    int per_rank = 0;
    if (r.out) {
        fprintf(r.out, "strata: %s, %d layer groups, %zu parameters; %d rank(s) x batch %d = global batch %d\n",
                r.m->arch, r.m->ngroups, nn_model_numel(r.m), world, B, B * world);
        fprintf(r.out, "strata: engine %s\n", nn_engine_describe(r.m->eng));
        fprintf(r.out, "strata: train %s (%d samples), valid %s (%d samples); run dir %s\n",
                cfg->data.train, r.train.n, r.has_valid ? cfg->data.valid : "none",
                r.has_valid ? r.valid.n : 0, cfg->run.dir);
        if (start.has)
            fprintf(r.out, "strata: resuming at phase %d, epoch %d of the phase, step %ld of the epoch (global step %ld)\n",
                    start.phase + 1, start.epoch_in_phase + 1, start.step_in_epoch + 1, start.global_step + 1);
    }
    const int G = r.m->ngroups;
    float lr_max[NN_MAX_GROUPS] = {0}, lr[NN_MAX_GROUPS] = {0}, wd[NN_MAX_GROUPS] = {0},
          mom_base[NN_MAX_GROUPS] = {0}, mom[NN_MAX_GROUPS] = {0};
    position at = {0};
    at.global_batch = B * A * world;
    int stopped = 0;
    for (int p = start.has ? start.phase : 0; p < nphases && !rc && !stopped; p++) {
        const io_phase *ph = &phases[p];
        const int resuming = start.has && p == start.phase;
        int warn = 0;
        rc = phase_setup(&r, ph, p, lr_max, wd, mom_base, &warn);
        if (!rc) rc = check_phase(&r, p);
        long per_epoch = 0;
        trainer_sched sched;
        if (!rc) {
            per_rank = r.train.n / world;
            per_epoch = per_rank / (B * A);
            if (cfg->train.max_steps > 0 && cfg->train.max_steps < per_epoch)
                per_epoch = cfg->train.max_steps;
            rc = sched_from(&sched, ph->has_schedule ? &ph->schedule : &cfg->schedule, per_epoch);
        }
        if (!rc && resuming && start.steps_per_epoch != per_epoch && start.step_in_epoch + start.epoch_in_phase > 0)
            rc = nn_err(NN_ESTATE, "cannot resume: the checkpoint's epochs have %ld steps, this run's %ld (did data.train, data.batch_size, train.accumulate or train.max_steps change?)",
                        start.steps_per_epoch, per_epoch);
        if (rc) break;
        if (r.out) {
            if (warn)
                fprintf(r.out, "strata: warning: freeze_to has no effect: the model has one layer group\n");
            fprintf(r.out, "strata: phase %d/%d '%s': %d epoch(s), frozen groups:", p + 1, nphases,
                    ph->name, ph->epochs);
            int any = 0;
            for (int g = 0; g < G; g++)
                if (r.m->groups[g].frozen) fprintf(r.out, " %d", g), any = 1;
            fprintf(r.out, "%s; max lr per group ", any ? "" : " none");
            print_lrs(r.out, lr_max, G, ", ");
            fprintf(r.out, "; schedule %s\n", (ph->has_schedule ? &ph->schedule : &cfg->schedule)->type);
        }
        const long total = per_epoch * ph->epochs;
        const int e0 = resuming ? start.epoch_in_phase : 0;
        long t = resuming ? start.phase_step : 0;
        /* fastai's Learner.freeze_to calls opt.clear_state(); a phase resumed in its middle
         * has already done so (its checkpoint holds the state since). */
        if (cfg->optimizer.clear_state && t == 0 && phase_freezes(cfg, phases, p, G)) {
            trainer_opt_clear_state(&r.opt, r.m);
            if (r.out && p > 0) fprintf(r.out, "strata: optimizer state cleared (freeze_to, as fastai's)\n");
        }
        at.phase = p;
        at.steps_per_epoch = per_epoch;
        for (int e = e0; e < ph->epochs && !rc && !stopped; e++, r.epoch++) {
            int count = 0;
            rc = io_shard(r.shard, &count, r.train.n, rank, world, cfg->train.seed, r.epoch);
            if (rc) break;
            const long b0 = resuming && e == e0 ? start.step_in_epoch : 0;
            double t0 = now_s(), tl = t0, win_loss = 0.0;
            long win_n = 0, win_hits = 0;
            for (long b = b0; b < per_epoch && !rc; b++) {
                float loss;
                int hits;
                rc = step_grads(&r, &r.train, r.shard + b * B * A, B, A, &loss, &hits);
                if (rc) break;
                loss /= (float)A;
                for (int g = 0; g < G; g++) {
                    lr[g] = (float)trainer_sched_lr(&sched, lr_max[g], t, total);
                    mom[g] = (float)trainer_sched_mom(&sched, mom_base[g], t, total);
                }
                trainer_opt_step(&r.opt, r.m, lr, mom, wd);
                t++;
                r.global_step++;
                win_loss += (double)loss * B * A;
                win_hits += hits;
                win_n += (long)B * A;
                const int log = cfg->train.log_every > 0 &&
                                ((b + 1) % cfg->train.log_every == 0 || b + 1 == per_epoch);
                if (log || (r.tty && now_s() - tl > 0.2)) {
                    double sums[3] = {win_loss, (double)win_hits, (double)win_n};
                    if (log) rc = comm_allreduce_f64(c, sums, 3);
                    double now = now_s(), sps = (double)(b + 1 - b0) * B * A * world / (now - t0);
                    tl = now;
                    if (!rc) progress(&r, p, nphases, e, ph->epochs, (int)b + 1, (int)per_epoch,
                                      sums[0] / sums[2], sps, lr);
                    if (log && r.metrics) {
                        fprintf(r.metrics, "{\"step\": %ld, \"epoch\": %d, \"phase\": %d, \"train_loss\": ",
                                r.global_step, r.epoch, p);
                        json_num(r.metrics, sums[0] / sums[2]);
                        fprintf(r.metrics, ", \"train_acc\": ");
                        json_num(r.metrics, sums[1] / sums[2]);
                        fprintf(r.metrics, ", \"lr\": ");
                        metrics_list(r.metrics, lr, G);
                        fprintf(r.metrics, ", \"mom\": ");
                        metrics_list(r.metrics, mom, G);
                        fprintf(r.metrics, ", \"frozen\": [");
                        for (int g = 0, k = 0; g < G; g++)
                            if (r.m->groups[g].frozen) fprintf(r.metrics, "%s%d", k++ ? ", " : "", g);
                        fprintf(r.metrics, "], \"samples_per_s\": %.1f, \"comm\": [", sps);
                        for (int g = 0; g < G; g++) {
                            const comm_group_stats *st = comm_reducer_stats(r.red, g);
                            fprintf(r.metrics, "%s{\"group\": %d, \"bytes\": %llu, \"collectives\": %llu, \"seconds\": %.6f}",
                                    g ? ", " : "", g, (unsigned long long)st->bytes,
                                    (unsigned long long)st->collectives, st->seconds);
                        }
                        fprintf(r.metrics, "], \"comm_exposed_seconds\": %.6f, \"comm_progress_seconds\": %.6f}\n",
                                comm_reducer_exposed_seconds(r.red),
                                comm_reducer_progress_seconds(r.red));
                        fflush(r.metrics);
                    }
                    if (log) win_loss = 0.0, win_hits = 0, win_n = 0;
                }
                if (rc) break;
                /* (The very last step is saved by the final checkpoint.) */
                const int last = b + 1 == per_epoch && e + 1 == ph->epochs && p + 1 == nphases;
                const int by_steps = cfg->checkpoint.every_steps > 0 && !last &&
                                     r.global_step % cfg->checkpoint.every_steps == 0;
                stopped = o->stop_after > 0 && r.global_step >= o->stop_after;
                /* A signal on any rank stops every rank after this same step (agreed on
                 * in step_grads). */
                if (r.stop_agreed > 0) stopped = 1, result.signal = r.stop_agreed;
                if (by_steps || stopped) {
                    at.epoch_in_phase = e;
                    at.epoch = r.epoch;
                    at.step_in_epoch = b + 1;
                    at.phase_step = t;
                    at.global_step = r.global_step;
                    at.finished = 0;
                    rc = ckpt_save(&r, &at, lr_max, wd, mom_base);
                }
                if (stopped) break;
            }
            if (rc || stopped) break;
            if (r.tty && r.out) fputc('\n', r.out);
            if (r.has_valid) {
                double vl, va;
                rc = run_validate(&r, &vl, &va);
                if (rc) break;
                if (r.out)
                    fprintf(r.out, "phase %d/%d epoch %d/%d valid loss %.4f valid accuracy %.4f (%.1f s)\n",
                            p + 1, nphases, e + 1, ph->epochs, vl, va, now_s() - t0);
                if (r.metrics) {
                    fprintf(r.metrics, "{\"step\": %ld, \"epoch\": %d, \"phase\": %d, \"valid_loss\": ",
                            r.global_step, r.epoch, p);
                    json_num(r.metrics, vl);
                    fprintf(r.metrics, ", \"valid_acc\": ");
                    json_num(r.metrics, va);
                    fprintf(r.metrics, "}\n");
                    fflush(r.metrics);
                }
            }
            /* At an epoch's end (after its validation): the next epoch starts from here. */
            if (cfg->checkpoint.every_epochs > 0 && (r.epoch + 1) % cfg->checkpoint.every_epochs == 0 &&
                e + 1 < ph->epochs) {
                at.epoch_in_phase = e + 1;
                at.epoch = r.epoch + 1;
                at.step_in_epoch = 0;
                at.phase_step = t;
                at.global_step = r.global_step;
                at.finished = 0;
                rc = ckpt_save(&r, &at, lr_max, wd, mom_base);
            }
        }
        if (!rc && !stopped && p + 1 < nphases && cfg->checkpoint.every_epochs > 0) {
            /* A phase's end: the next phase starts from its beginning. */
            at = (position){p + 1, 0, r.epoch, 0, 0, 0, r.global_step, 0, at.global_batch, 0, 0, 0};
            rc = ckpt_save(&r, &at, lr_max, wd, mom_base);
        }
    }
    if (!rc && r.out) {
        fprintf(r.out, "strata: gradient reduction per layer group (%d rank(s), %s, buckets of at most %g MiB):\n",
                world,
                !cfg->comm.overlap                         ? "after backward"
                : !strcmp(cfg->comm.progress, "thread")    ? "overlapped with backward by a communication thread"
                                                           : "overlapped with backward",
                cfg->comm.bucket_mb);
        fprintf(r.out, "  group        bytes  collectives   seconds\n");
        for (int g = G - 1; g >= 0; g--) {
            const comm_group_stats *st = comm_reducer_stats(r.red, g);
            fprintf(r.out, "  %5d %12llu %12llu %9.3f%s\n", g, (unsigned long long)st->bytes,
                    (unsigned long long)st->collectives, st->seconds, g == G - 1 ? "  (head)" : "");
        }
        fprintf(r.out, "  exposed (waiting after backward): %.3f s; spent in MPI during backward: %.3f s\n",
                comm_reducer_exposed_seconds(r.red), comm_reducer_progress_seconds(r.red));
    }
    if (!rc && stopped && result.signal) {
        if (r.out)
            fprintf(r.out, "strata: stopped on signal %d after global step %ld, checkpoint saved; continue with --resume auto\n",
                    result.signal, r.global_step);
        write_status(&r, "preempted");
    } else if (!rc && stopped) {
        if (r.out)
            fprintf(r.out, "strata: stopped after global step %ld as asked (--stop-after); continue with --resume auto\n",
                    r.global_step);
        write_status(&r, "stopped");
    } else if (!rc) {
        /* The final checkpoint (marked finished), then weights.h5: every replica holds the
         * same weights, and the BN statistics were averaged by the save. */
        at = (position){nphases, 0, r.epoch, 1, 0, 0, r.global_step, 0, at.global_batch, 0, 0, 0};
        rc = ckpt_save(&r, &at, lr_max, wd, mom_base);
        if (!rc && rank == 0) {
            char path[1100];
            snprintf(path, sizeof path, "%s/weights.h5", cfg->run.dir);
            rc = trainer_weights_save(r.m, cfg, path);
            if (!rc && r.out) fprintf(r.out, "strata: weights written to %s\n", path);
        }
        rc = comm_agree(c, rc, NULL);
        if (!rc) write_status(&r, "finished");
        result.finished = rc == 0;
    }
    result.global_step = r.global_step;
    if (rc && opened) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        for (char *q = msg; *q; q++)
            if (*q == '\n') *q = ' ';
        write_status(&r, "failed: %s", msg);
        nn_err(rc, "%s", msg);
    }
done:
    if (res) *res = result;
    io_ckpt_close(rd);
    run_free(&r);
    return rc;
}

int trainer_eval(const io_config *cfg, comm *c, const char *weights, FILE *out, double *loss,
                 double *acc)
{
    run r = {0};
    r.cfg = cfg;
    r.c = c;
    r.out = comm_rank(c) == 0 ? out : NULL;
    char path[1100];
    if (!weights) {
        snprintf(path, sizeof path, "%s/weights.h5", cfg->run.dir);
        weights = path;
    }
    int rc = run_setup(&r, 0);
    if (!rc && !r.has_valid) rc = nn_err(NN_EINVAL, "data.valid is empty: nothing to evaluate on");
    if (!rc) rc = trainer_weights_load(r.m, weights);
    rc = comm_agree(c, rc, NULL);
    if (!rc) rc = run_validate(&r, loss, acc);
    if (!rc && r.out)
        fprintf(r.out, "strata: %s on %s (%d samples): loss %.4f accuracy %.4f\n", weights,
                cfg->data.valid, r.valid.n, *loss, *acc);
    run_free(&r);
    return rc;
}

/* A copy of every parameter and BatchNorm buffer, in model order, to put back after a
 * sweep. All replicas hold the same state, so each rank keeps its own copy. */
typedef struct {
    float *data;
    size_t off;
    int restore;
} snapshot;

static int snapshot_buffer(void *ud, const char *name, nn_buffer *b)
{
    snapshot *s = ud;
    if (s->restore)
        memcpy(b->data, s->data + s->off, sizeof(float) * b->numel);
    else
        memcpy(s->data + s->off, b->data, sizeof(float) * b->numel);
    s->off += b->numel;
    return 0;
}

static int count_buffer(void *ud, const char *name, nn_buffer *b)
{
    *(size_t *)ud += b->numel;
    return 0;
}

static size_t count_buffer_floats(nn_model *m)
{
    size_t n = 0;
    nn_model_visit_buffers(m, count_buffer, &n);
    return n;
}

/* Saves (restore 0) or puts back (restore 1) the parameter slabs and BN buffers. */
static void snapshot_model(snapshot *s, nn_model *m, int restore)
{
    s->off = 0;
    s->restore = restore;
    for (int g = 0; g < m->ngroups; g++) {
        float *slab = m->groups[g].param_slab;
        size_t n = m->groups[g].numel;
        if (restore)
            memcpy(slab, s->data + s->off, sizeof(float) * n);
        else
            memcpy(s->data + s->off, slab, sizeof(float) * n);
        s->off += n;
    }
    nn_model_visit_buffers(m, snapshot_buffer, s);
}

/* Runs the plot script: CSV PNG NAME=LR:AT_LR:AT_LOSS for each suggestion available. */
static int lr_find_plot(run *r, const char *script, const char *csv, const char *png,
                        const trainer_lr_suggestion *sug)
{
    char args[TRAINER_NSUGGEST][96];
    char *argv[5 + TRAINER_NSUGGEST] = {"/usr/bin/python3", (char *)script, (char *)csv,
                                        (char *)png};
    int argc = 4;
    for (int i = 0; sug && i < TRAINER_NSUGGEST; i++)
        if (sug[i].ok) {
            snprintf(args[i], sizeof args[i], "%s=%.9g:%.9g:%.9g", sug[i].name, sug[i].lr,
                     sug[i].at_lr, sug[i].at_loss);
            argv[argc++] = args[i];
        }
    argv[argc] = NULL;
    pid_t pid;
    int st = 0, e = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (e) return nn_err(NN_EIO, "the plot was not written: cannot run %s: %s", argv[0], strerror(e));
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return nn_err(NN_EIO, "the plot was not written: %s %s failed (exit %d); is python3-matplotlib installed?",
                      argv[0], script, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    if (r->out) fprintf(r->out, "strata: wrote %s\n", png);
    return 0;
}

/* Rank 0, after a sweep of n points: lr_find.csv, the suggestions (sug NULL: too few points
 * for fastai's window) on the console, and lr_find.png. */
static int lr_find_report(run *r, const trainer_lr_find_opts *o, const double *lrs,
                          const double *losses, const double *smooth, int n,
                          const trainer_lr_suggestion *sug)
{
    char csv[1100], png[1100];
    snprintf(csv, sizeof csv, "%s/lr_find.csv", r->cfg->run.dir);
    snprintf(png, sizeof png, "%s/lr_find.png", r->cfg->run.dir);
    FILE *f = fopen(csv, "w");
    if (!f) return nn_err(NN_EIO, "cannot write %s: %s", csv, strerror(errno));
    fprintf(f, "lr,loss,smoothed_loss\n");
    for (int i = 0; i < n; i++) fprintf(f, "%.9g,%.9g,%.9g\n", lrs[i], losses[i], smooth[i]);
    if (fclose(f)) return nn_err(NN_EIO, "cannot write %s", csv);
    if (r->out) {
        fprintf(r->out, "strata: lr-find ran %d of %d steps (lr %.2e to %.2e)\n", n, o->num_it,
                lrs[0], lrs[n - 1]);
        if (sug) {
            fprintf(r->out, "strata: suggested lr %.2e (valley, fastai's default); also", sug[0].lr);
            for (int i = 1; i < TRAINER_NSUGGEST; i++)
                if (sug[i].ok) fprintf(r->out, "%s %s %.2e", i > 1 ? "," : "", sug[i].name, sug[i].lr);
                else fprintf(r->out, "%s %s n/a (too few points)", i > 1 ? "," : "", sug[i].name);
            fprintf(r->out, "\n");
        } else {
            fprintf(r->out, "strata: no suggestion: %s\n", nn_errmsg());
        }
        fprintf(r->out, "strata: wrote %s\n", csv);
    }
    return o->plot_script ? lr_find_plot(r, o->plot_script, csv, png, sug) : 0;
}

/* fastai's learning-rate finder: lr_k = start * (end/start)^(k/num_it) for every group,
 * smoothed loss (exponential average, beta 0.98, debiased), stop when it exceeds 4x the
 * best; the weights, BN statistics and optimizer state are restored afterwards. */
int trainer_lr_find(const io_config *cfg, comm *c, FILE *out, const trainer_lr_find_opts *o,
                    double *suggestion)
{
    run r = {0};
    r.cfg = cfg;
    r.c = c;
    const int rank = comm_rank(c), world = comm_size(c), B = cfg->data.batch_size;
    r.out = rank == 0 ? out : NULL;
    r.nonfinite_ok = 1;
    snapshot saved = {0};
    double *lrs = NULL, *losses = NULL, *smooth = NULL;
    int rc = comm_agree(c, run_setup(&r, 1), NULL);
    if (!rc) rc = run_sync_replicas(&r);
    if (!rc) rc = run_open_dir(&r, 0);
    if (rc) goto done;
    const int G = r.m->ngroups;
    rc = nn_model_freeze_to(r.m, cfg->groups.freeze_to, NULL);
    const size_t total = nn_model_numel(r.m) + count_buffer_floats(r.m);
    saved.data = malloc(sizeof(float) * (total ? total : 1));
    lrs = calloc(o->num_it, sizeof(double));
    losses = calloc(o->num_it, sizeof(double));
    smooth = calloc(o->num_it, sizeof(double));
    if (!saved.data || !lrs || !losses || !smooth) rc = nn_err(NN_ENOMEM, "lr-find: out of memory");
    if (rc) goto done;
    snapshot_model(&saved, r.m, 0);
    /* The validation loss before and after proves the model was restored exactly. */
    double before_loss = 0.0, before_acc = 0.0, after_loss = 0.0, after_acc = 0.0;
    if (r.has_valid) rc = run_validate(&r, &before_loss, &before_acc);
    if (rc) goto done;
    float lr[NN_MAX_GROUPS], wd[NN_MAX_GROUPS], mom[NN_MAX_GROUPS];
    rc = expand_hp(wd, G, &cfg->groups.wd, cfg, "groups.wd");
    if (!rc) rc = expand_hp(mom, G, &cfg->groups.momentum, cfg, "groups.momentum");
    if (rc) goto done;
    int n = 0, count = 0, per_epoch = 0;
    double avg = 0.0, best = INFINITY;
    for (int k = 0; k < o->num_it && !rc; k++) {
        if (per_epoch == 0 || k % per_epoch == 0) { /* a new epoch's shard */
            rc = io_shard(r.shard, &count, r.train.n, rank, world, cfg->train.seed, r.epoch++);
            per_epoch = count / B;
        }
        if (rc) break;
        const double l = trainer_lr_find_lr(o->start, o->end, k, o->num_it);
        for (int g = 0; g < G; g++) lr[g] = (float)l;
        float loss;
        int hits;
        rc = step_grads(&r, &r.train, r.shard + (size_t)(k % per_epoch) * B, B, 1, &loss, &hits);
        double gl[1] = {loss};
        if (!rc) rc = comm_allreduce_f64(c, gl, 1);
        if (rc) break;
        double mean_loss = gl[0] / world;
        if (!isfinite(mean_loss)) break; /* diverged: the sweep is over */
        trainer_opt_step(&r.opt, r.m, lr, mom, wd);
        avg = 0.98 * avg + 0.02 * mean_loss;
        double sm = avg / (1.0 - pow(0.98, k + 1));
        lrs[n] = l;
        losses[n] = mean_loss;
        smooth[n] = sm;
        n++;
        if (sm < best) best = sm;
        if (sm > 4.0 * best || !isfinite(sm)) break;
    }
    if (rc) goto done;
    /* Put back the weights and BatchNorm statistics (the optimizer state is dropped with
     * the run). */
    snapshot_model(&saved, r.m, 1);
    if (r.has_valid) {
        rc = run_validate(&r, &after_loss, &after_acc);
        if (!rc && (after_loss != before_loss || after_acc != before_acc))
            rc = nn_err(NN_ESTATE, "lr-find did not restore the model: validation loss %.9g before, %.9g after",
                        before_loss, after_loss);
        if (rc) goto done;
        if (r.out)
            fprintf(r.out, "strata: weights restored (validation loss %.6f before and after)\n",
                    after_loss);
    }
    if (n == 0) {
        rc = nn_err(NN_ERANGE, "lr-find: the loss was not finite at the first learning rate %g; lower --start",
                    o->start);
        goto done;
    }
    /* fastai's four suggestions on its window of the smoothed loss; valley is "the" one. */
    trainer_lr_suggestion sug[TRAINER_NSUGGEST];
    int have = trainer_lr_suggest(sug, lrs, smooth, n, o->num_it) == 0;
    *suggestion = have ? sug[TRAINER_SUGGEST_VALLEY].lr : NAN;
    if (rank == 0) rc = lr_find_report(&r, o, lrs, losses, smooth, n, have ? sug : NULL);
    rc = comm_agree(c, rc, NULL);
done:
    free(saved.data);
    free(lrs);
    free(losses);
    free(smooth);
    run_free(&r);
    return rc;
}
