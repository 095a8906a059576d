/*
 * test_nn_fixtures: nn's forward and backward against PyTorch, case by case.
 *
 * Each fixture in tests/fixtures (written by tests/make_fixtures.py, float64 references
 * from float32 inputs) holds a module's input, initial parameters and BatchNorm buffers,
 * its output, the gradient that backward starts from (dy, or the mean cross-entropy of the
 * output against labels), and the resulting input gradient, parameter gradients and
 * updated buffers. Here the same module is built through nn.h, given the fixture's
 * parameters and buffers by PyTorch name, run forward and backward, and every tensor is
 * compared by relative L2 error (at most 1e-4; a reference that is zero in exact arithmetic
 * is compared absolutely, see ZERO_REF_NORM). A name present on one side only fails.
 * The zoo models (mlp, cnn) are built by nn_model_init and also checked against the
 * input gradient; cnn_frozen freezes group 0 and checks that its gradient slab is not
 * written at all.
 *
 * Each fixture is its own cmocka test, so a failure names the case; within a case every
 * tensor is compared before failing, so one run shows everything that is off.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture_h5.h"
#include "nn/nn.h"

#define TOL 1e-4
/* A reference below this L2 norm is zero in exact arithmetic, not just small: the
 * gradient of a conv bias that a train-mode BatchNorm follows (BN removes the batch mean,
 * so the bias cancels) is ~1e-15 in float64 and ~1e-6 in float32. Relative error means
 * nothing there; such a tensor must instead be zero up to float32 rounding of O(1) terms,
 * max |a_i| <= ZERO_ABS_TOL. (Inputs and dy are N(0, 1), so O(1) is the scale.) */
#define ZERO_REF_NORM 1e-9
#define ZERO_ABS_TOL 1e-4
#define MAX_NAMES 256

/* ---------------------------------------------------------------------------------------
 * One case: the open fixture, the failure count and the names seen on the C side.
 */
typedef struct fxcase {
    const char *file;       /* "cnn.h5" */
    fx_file *fx;
    int failures;
    int compared;           /* tensors compared */
    int zero_refs;          /* of which references that are zero in exact arithmetic */
    double worst;           /* largest relative error of a passing or failing compare */
    char worst_name[96];
    char *seen[MAX_NAMES];  /* names visited on the C side (params or buffers) */
    int nseen;
    int frozen_group;       /* cnn_frozen: the group whose params have no grads (else -1) */
} fxcase;

/* Records a failure with a formatted message; the test fails when the case ends. */
static void fc_fail(fxcase *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fc_fail(fxcase *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%s] FAIL: ", c->file);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    c->failures++;
}

/* Asserts an nn call succeeded, printing nn's message when not (this ends the test). */
#define NN_OK_OR_FAIL(c, call)                                                          \
    do {                                                                                \
        int rc__ = (call);                                                              \
        if (rc__ != 0) {                                                                \
            fprintf(stderr, "[%s] %s failed: %s (%s)\n", (c)->file, #call,              \
                    nn_errmsg(), nn_errname(rc__));                                     \
            fail();                                                                     \
        }                                                                               \
    } while (0)

static void fc_open(fxcase *c, const char *file)
{
    char path[512];
    memset(c, 0, sizeof *c);
    c->file = file;
    c->frozen_group = -1;
    snprintf(path, sizeof path, "%s/%s", STRATA_FIXTURES, file);
    assert_int_equal(fx_open(&c->fx, path), 0);
}

static void fc_forget_seen(fxcase *c)
{
    for (int i = 0; i < c->nseen; i++) free(c->seen[i]);
    c->nseen = 0;
}

/* Prints the case's summary and fails the test when anything failed. */
static void fc_close(fxcase *c)
{
    fc_forget_seen(c);
    fx_close(c->fx);
    printf("[%s] %d tensors compared (%d exact-zero references), worst relative error %.3g "
           "(%s), %d failure(s)\n",
           c->file, c->compared, c->zero_refs, c->worst, c->worst_name, c->failures);
    assert_int_equal(c->failures, 0);
}

/* Compares n floats of `got` with the fixture dataset `name` (which must hold exactly n
 * elements). */
static void fc_compare(fxcase *c, const char *name, const float *got, size_t n)
{
    float *ref = NULL;
    int dims[4], nd;
    if (fx_read_f32(c->fx, name, &ref, dims, &nd) != 0) {
        fc_fail(c, "%s: missing in the fixture", name);
        return;
    }
    size_t numel = 1;
    for (int i = 0; i < nd; i++) numel *= (size_t)dims[i];
    if (numel != n) {
        fc_fail(c, "%s: %zu elements on the C side, %zu in the fixture", name, n, numel);
        free(ref);
        return;
    }
    c->compared++;

    /* The element that differs most, to tell a scale error from a layout error. */
    size_t at = 0;
    double maxdiff = -1.0, maxabs = 0.0, refnorm = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (d > maxdiff || (isnan(d) && !isnan(maxdiff))) {
            maxdiff = d;
            at = i;
        }
        double a = fabs((double)got[i]);
        if (!(a <= maxabs)) maxabs = a; /* NaN sticks */
        refnorm += (double)ref[i] * (double)ref[i];
    }
    refnorm = sqrt(refnorm);

    if (refnorm < ZERO_REF_NORM) {
        c->zero_refs++;
        if (!(maxabs <= ZERO_ABS_TOL))
            fc_fail(c, "%s: reference is zero (norm %.3g) but max |got| = %.3g > %g (at [%zu]: "
                    "got %.7g)",
                    name, refnorm, maxabs, ZERO_ABS_TOL, at, (double)got[at]);
        free(ref);
        return;
    }
    double e = fx_rel_err(got, ref, n);
    if (isnan(e) || e > c->worst || c->worst_name[0] == '\0') {
        c->worst = isnan(e) ? INFINITY : e;
        snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
    }
    if (!(e <= TOL))
        fc_fail(c, "%s: relative error %.3g > %g (worst at [%zu]: got %.7g, want %.7g)", name, e,
                TOL, at, (double)got[at], (double)ref[at]);
    free(ref);
}

/* The engine kind every case of the group running now uses (set by the group setup). */
static int g_engine;

/* Compares a tensor (in any layout) with a 4-D fixture dataset, shape first. */
static void fc_compare_tensor(fxcase *c, const char *name, const nn_tensor *tin)
{
    nn_tensor plain = {0};
    assert_int_equal(nn_tensor_to_nchw(&plain, tin), 0);
    const nn_tensor *t = &plain;
    int dims[4], nd;
    float *ref = NULL;
    if (fx_read_f32(c->fx, name, &ref, dims, &nd) != 0) {
        fc_fail(c, "%s: missing in the fixture", name);
        return;
    }
    free(ref);
    if (nd != 4 || dims[0] != t->n || dims[1] != t->c || dims[2] != t->h || dims[3] != t->w) {
        fc_fail(c, "%s: shape (%d, %d, %d, %d) on the C side, fixture (%d, %d, %d, %d)", name,
                t->n, t->c, t->h, t->w, dims[0], dims[1], dims[2], dims[3]);
        nn_tensor_free(&plain);
        return;
    }
    fc_compare(c, name, t->data, nn_tensor_numel(t));
    nn_tensor_free(&plain);
}

/* Reads a 4-D fixture dataset into an owned tensor. */
static void fc_read_tensor(fxcase *c, const char *name, nn_tensor *t)
{
    int dims[4], nd;
    float *data = NULL;
    memset(t, 0, sizeof *t);
    assert_int_equal(fx_read_f32(c->fx, name, &data, dims, &nd), 0);
    assert_int_equal(nd, 4);
    assert_int_equal(nn_tensor_resize(t, dims[0], dims[1], dims[2], dims[3]), 0);
    memcpy(t->data, data, nn_tensor_numel(t) * sizeof(float));
    free(data);
}

/* 1 when the fixture's `mode` attribute says train, 0 for eval. */
static int fc_training(fxcase *c)
{
    char mode[16];
    assert_int_equal(fx_read_attr_str(c->fx, "mode", mode, sizeof mode), 0);
    if (strcmp(mode, "train") != 0 && strcmp(mode, "eval") != 0) fail_msg("bad mode %s", mode);
    return strcmp(mode, "train") == 0;
}

static void fc_note_seen(fxcase *c, const char *name)
{
    if (c->nseen == MAX_NAMES)
        fc_fail(c, "more than %d names: raise MAX_NAMES", MAX_NAMES);
    else
        c->seen[c->nseen++] = strdup(name);
}

/* Every name the fixture lists under `group` must have been seen on the C side. */
static void fc_check_all_seen(fxcase *c, const char *group)
{
    char **names;
    int n;
    /* A case without parameters or buffers has no such group: an empty list. */
    if (fx_names(c->fx, group, &names, &n) != 0) {
        fc_fail(c, "cannot list /%s", group);
        return;
    }
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < c->nseen && !found; j++) found = strcmp(names[i], c->seen[j]) == 0;
        if (!found) fc_fail(c, "/%s/%s is in the fixture but not on the C side", group, names[i]);
    }
    fx_names_free(names, n);
}

/* ---------------------------------------------------------------------------------------
 * Visitors: load parameters and buffers, compare gradients and buffers.
 */

/* Copies /params/<name> into p->data after checking PyTorch's shape. */
static int load_param(void *ud, const char *name, nn_param *p)
{
    fxcase *c = ud;
    char path[320];
    snprintf(path, sizeof path, "/params/%s", name);
    fc_note_seen(c, name);
    float *data = NULL;
    int dims[4], nd;
    if (!fx_has(c->fx, path) || fx_read_f32(c->fx, path, &data, dims, &nd) != 0) {
        fc_fail(c, "parameter %s (C side) is not in the fixture", name);
        return 0;
    }
    int same = nd == p->ndim;
    for (int i = 0; same && i < nd; i++) same = dims[i] == p->shape[i];
    if (!same) {
        fc_fail(c, "parameter %s: C shape (%d, %d, %d, %d)/%d, fixture (%d, %d, %d, %d)/%d", name,
                p->shape[0], p->shape[1], p->shape[2], p->shape[3], p->ndim, dims[0],
                nd > 1 ? dims[1] : 0, nd > 2 ? dims[2] : 0, nd > 3 ? dims[3] : 0, nd);
    } else {
        memcpy(p->data, data, p->numel * sizeof(float));
    }
    free(data);
    return 0;
}

/* Copies /buffers/<name> into b->data. */
static int load_buffer(void *ud, const char *name, nn_buffer *b)
{
    fxcase *c = ud;
    char path[320];
    snprintf(path, sizeof path, "/buffers/%s", name);
    fc_note_seen(c, name);
    float *data = NULL;
    int dims[4], nd;
    if (!fx_has(c->fx, path) || fx_read_f32(c->fx, path, &data, dims, &nd) != 0) {
        fc_fail(c, "buffer %s (C side) is not in the fixture", name);
        return 0;
    }
    if (nd != 1 || (size_t)dims[0] != b->numel)
        fc_fail(c, "buffer %s: %zu elements on the C side, %d in the fixture", name, b->numel,
                dims[0]);
    else
        memcpy(b->data, data, b->numel * sizeof(float));
    free(data);
    return 0;
}

/* Compares p->grad with /grads/<name>. In a frozen case, the frozen group's params must
 * have no fixture gradient (they are checked bit for bit elsewhere). */
static int check_grad(void *ud, const char *name, nn_param *p)
{
    fxcase *c = ud;
    char path[320];
    snprintf(path, sizeof path, "/grads/%s", name);
    if (c->frozen_group >= 0 && p->group == c->frozen_group) {
        if (fx_has(c->fx, path)) fc_fail(c, "%s is frozen here but has a fixture gradient", name);
        if (p->trainable) fc_fail(c, "%s is in the frozen group but trainable", name);
        return 0;
    }
    fc_note_seen(c, name);
    if (!p->trainable) fc_fail(c, "%s should be trainable", name);
    if (!fx_has(c->fx, path)) {
        fc_fail(c, "gradient %s (C side) is not in the fixture", name);
        return 0;
    }
    fc_compare(c, path, p->grad, p->numel);
    return 0;
}

/* Compares b->data with /buffers_after/<name>. */
static int check_buffer(void *ud, const char *name, nn_buffer *b)
{
    fxcase *c = ud;
    char path[320];
    snprintf(path, sizeof path, "/buffers_after/%s", name);
    fc_note_seen(c, name);
    fc_compare(c, path, b->data, b->numel);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Single layers and blocks: bind standalone, load, forward, backward from dy, compare.
 */
static void run_layer_case(const char *file, nn_layer *l)
{
    fxcase c;
    fc_open(&c, file);
    nn_tensor x, dy;
    fc_read_tensor(&c, "input", &x);
    fc_read_tensor(&c, "dy", &dy);

    nn_rng rng;
    nn_rng_seed(&rng, 1);
    float *pslab = NULL, *gslab = NULL;
    const int in[3] = {x.c, x.h, x.w};
    nn_engine *eng = NULL;
    NN_OK_OR_FAIL(&c, nn_engine_new(&eng, g_engine));
    NN_OK_OR_FAIL(&c, nn_layer_bind_standalone(l, in, &rng, eng, &pslab, &gslab));
    size_t np = nn_layer_numel(l);

    /* Parameters and buffers by name, both directions. */
    nn_layer_visit_params(l, "", load_param, &c);
    fc_check_all_seen(&c, "params");
    fc_forget_seen(&c);
    nn_layer_visit_buffers(l, "", load_buffer, &c);
    fc_check_all_seen(&c, "buffers");
    fc_forget_seen(&c);

    nn_layer_set_training(l, fc_training(&c));
    nn_ctx ctx = {&rng};
    /* Inside a network a layer gets its input in the engine's layout when it takes it. */
    nn_tensor xe = {0}, dye = {0};
    NN_OK_OR_FAIL(&c, nn_tensor_convert(&xe, &x, l->ops->blocked_ok ? nn_engine_layout(eng) : 1));
    NN_OK_OR_FAIL(&c, nn_layer_forward(l, &xe, &ctx));
    fc_compare_tensor(&c, "output", &l->y);

    /* Gradients accumulate: start from zero. */
    memset(gslab, 0, (np ? np : 1) * sizeof(float));
    nn_layer_plan_backward(l, 1);
    NN_OK_OR_FAIL(&c, nn_tensor_convert(&dye, &dy, l->y.blk));
    NN_OK_OR_FAIL(&c, nn_layer_backward(l, &dye));
    fc_compare_tensor(&c, "grad_input", nn_layer_grad_input(l));
    nn_layer_visit_params(l, "", check_grad, &c);
    fc_check_all_seen(&c, "grads");
    fc_forget_seen(&c);
    nn_layer_visit_buffers(l, "", check_buffer, &c);
    fc_check_all_seen(&c, "buffers_after");

    nn_layer_free(l);
    nn_engine_free(eng);
    free(pslab);
    free(gslab);
    nn_tensor_free(&x);
    nn_tensor_free(&dy);
    nn_tensor_free(&xe);
    nn_tensor_free(&dye);
    fc_close(&c);
}

/* Builds a Sequential from a NULL-checked list of constructors' results. */
static nn_layer *seq_of(nn_layer **kids, int n)
{
    nn_layer *s = NULL;
    for (int i = 0; i < n; i++) assert_non_null(kids[i]);
    assert_int_equal(nn_sequential_new(&s, kids, n), 0);
    return s;
}

/* made(nn_xxx_new(&l, ...), &l): checks a constructor's result and returns the layer. The
 * layer is read through the pointer inside, after the constructor has run. */
static nn_layer *made(int rc, nn_layer **l)
{
    if (rc != 0) fail_msg("constructor failed: %s (%s)", nn_errmsg(), nn_errname(rc));
    return *l;
}

static void test_vgg_block(void **state)
{
    (void)state;
    nn_layer *k[7];
    made(nn_conv2d_new(&k[0], 3, 16, 3, 1, 1, 1), &k[0]);
    made(nn_batchnorm_new(&k[1], 16, 2), &k[1]);
    made(nn_relu_new(&k[2]), &k[2]);
    made(nn_conv2d_new(&k[3], 16, 16, 3, 1, 1, 1), &k[3]);
    made(nn_batchnorm_new(&k[4], 16, 2), &k[4]);
    made(nn_relu_new(&k[5]), &k[5]);
    made(nn_maxpool2d_new(&k[6], 2, 2, 0), &k[6]);
    run_layer_case("vgg_block.h5", seq_of(k, 7));
}

static void test_basicblock(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("basicblock.h5", made(nn_basicblock_new(&l, 16, 32, 2), &l));
}

static void test_basicblock_id(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("basicblock_id.h5", made(nn_basicblock_new(&l, 16, 16, 1), &l));
}

static void test_bottleneck(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("bottleneck.h5", made(nn_bottleneck_new(&l, 32, 8, 2), &l));
}

static void test_adaptive_avgpool(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("adaptive_avgpool.h5", made(nn_adaptive_avgpool2d_new(&l, 3, 2), &l));
}

static void test_adaptive_concatpool(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("adaptive_concatpool.h5", made(nn_adaptive_concatpool2d_new(&l, 1), &l));
}

static void test_maxpool_pad(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("maxpool_pad.h5", made(nn_maxpool2d_new(&l, 3, 2, 1), &l));
}

static void test_avgpool(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("avgpool.h5", made(nn_avgpool2d_new(&l, 3, 2, 1), &l));
}

static void test_bn1d(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("bn1d.h5", made(nn_batchnorm_new(&l, 5, 1), &l));
}

static void test_linear(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("linear.h5", made(nn_linear_new(&l, 7, 5, 1), &l));
}

static void test_conv_s2(void **state)
{
    (void)state;
    nn_layer *l;
    run_layer_case("conv_s2.h5", made(nn_conv2d_new(&l, 3, 4, 3, 2, 1, 1), &l));
}

/* ---------------------------------------------------------------------------------------
 * Losses.
 */
static void compare_loss(fxcase *c, float loss)
{
    fc_compare(c, "loss", &loss, 1); /* a scalar dataset: one element */
}

static void test_cross_entropy(void **state)
{
    (void)state;
    fxcase c;
    fc_open(&c, "cross_entropy.h5");
    nn_tensor logits, dlogits = {0};
    fc_read_tensor(&c, "input", &logits);
    int32_t *labels;
    size_t n;
    assert_int_equal(fx_read_i32(c.fx, "labels", &labels, &n), 0);
    assert_int_equal((int)n, logits.n);
    float loss;
    int correct = -1;
    NN_OK_OR_FAIL(&c, nn_cross_entropy(&loss, &dlogits, &correct, &logits, labels));
    compare_loss(&c, loss);
    fc_compare_tensor(&c, "grad_input", &dlogits);

    /* The argmax count, recomputed here. */
    int want = 0;
    for (int i = 0; i < logits.n; i++) {
        const float *row = logits.data + (size_t)i * logits.c;
        int best = 0;
        for (int k = 1; k < logits.c; k++)
            if (row[k] > row[best]) best = k;
        want += best == labels[i];
    }
    if (correct != want) fc_fail(&c, "correct = %d, want %d", correct, want);

    free(labels);
    nn_tensor_free(&logits);
    nn_tensor_free(&dlogits);
    fc_close(&c);
}

static void test_mse(void **state)
{
    (void)state;
    fxcase c;
    fc_open(&c, "mse.h5");
    nn_tensor pred, target, dpred = {0};
    fc_read_tensor(&c, "input", &pred);
    fc_read_tensor(&c, "target", &target);
    float loss;
    NN_OK_OR_FAIL(&c, nn_mse(&loss, &dpred, &pred, target.data));
    compare_loss(&c, loss);
    fc_compare_tensor(&c, "grad_input", &dpred);
    nn_tensor_free(&pred);
    nn_tensor_free(&target);
    nn_tensor_free(&dpred);
    fc_close(&c);
}

/* ---------------------------------------------------------------------------------------
 * Zoo models: mlp and cnn, trained on mean cross-entropy, and cnn with group 0 frozen.
 */
static nn_model *zoo_model(fxcase *c, const char *arch)
{
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.arch = arch;
    spec.in_c = 1;
    spec.in_h = 28;
    spec.in_w = 28;
    spec.classes = 10;
    spec.head = NN_HEAD_LINEAR;
    spec.engine = g_engine;
    if (strcmp(arch, "mlp") == 0) {
        spec.nwidths = 2;
        spec.widths[0] = 64;
        spec.widths[1] = 32;
    }
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_model *m = NULL;
    NN_OK_OR_FAIL(c, nn_model_init(&m, &spec, &rng));
    return m;
}

/* The bit pattern written over a frozen group's gradient slab: a quiet NaN with a payload
 * no arithmetic produces, so any write (even of NaN) is seen. */
#define SENTINEL_BITS 0x7fc0beefu

static void run_model_case(const char *file, const char *arch, int freeze_to)
{
    fxcase c;
    fc_open(&c, file);
    nn_model *m = zoo_model(&c, arch);

    nn_model_visit_params(m, load_param, &c);
    fc_check_all_seen(&c, "params");
    fc_forget_seen(&c);
    nn_model_visit_buffers(m, load_buffer, &c);
    fc_check_all_seen(&c, "buffers");
    fc_forget_seen(&c);

    nn_group *g0 = &m->groups[0];
    if (freeze_to > 0) {
        /* fastai 0.7's freeze_to(1): group 0 is body children 0..6, BN in eval mode. */
        char ev[16];
        assert_int_equal(fx_read_attr_str(c.fx, "eval_children", ev, sizeof ev), 0);
        assert_string_equal(ev, "0-6");
        assert_true(m->ngroups >= 2);
        assert_int_equal(g0->first, 0);
        assert_int_equal(g0->last, 6);
        int warning = -1;
        NN_OK_OR_FAIL(&c, nn_model_freeze_to(m, freeze_to, &warning));
        assert_int_equal(warning, 0);
        assert_true(g0->frozen);
        c.frozen_group = 0;
    }
    nn_model_set_training(m, fc_training(&c));
    /* A model's backward stops at the body's input; with nothing frozen, ask the body for
     * its input gradient too (after set_training, which plans need_dx = 0), so grad_input
     * checks the whole chain. A frozen model computes no input gradient. */
    if (freeze_to == 0) nn_layer_plan_backward(m->body, 1);

    nn_tensor x;
    fc_read_tensor(&c, "input", &x);
    int32_t *labels;
    size_t n;
    assert_int_equal(fx_read_i32(c.fx, "labels", &labels, &n), 0);
    assert_int_equal((int)n, x.n);

    nn_model_zero_grad(m);
    if (freeze_to > 0) {
        uint32_t bits = SENTINEL_BITS;
        for (size_t i = 0; i < g0->numel; i++) memcpy(&g0->grad_slab[i], &bits, sizeof bits);
    }

    nn_rng rng;
    nn_rng_seed(&rng, 3);
    nn_ctx ctx = {&rng};
    const nn_tensor *logits = NULL;
    NN_OK_OR_FAIL(&c, nn_model_forward(&logits, m, &x, &ctx));
    fc_compare_tensor(&c, "output", logits);

    nn_tensor dlogits = {0};
    float loss;
    NN_OK_OR_FAIL(&c, nn_cross_entropy(&loss, &dlogits, NULL, logits, labels));
    compare_loss(&c, loss);
    NN_OK_OR_FAIL(&c, nn_model_backward(m, &dlogits));
    if (freeze_to == 0) fc_compare_tensor(&c, "grad_input", &m->body->dx);

    nn_model_visit_params(m, check_grad, &c);
    fc_check_all_seen(&c, "grads");
    fc_forget_seen(&c);
    nn_model_visit_buffers(m, check_buffer, &c);
    fc_check_all_seen(&c, "buffers_after");

    if (freeze_to > 0) {
        size_t touched = 0, first = 0;
        for (size_t i = 0; i < g0->numel; i++) {
            uint32_t bits;
            memcpy(&bits, &g0->grad_slab[i], sizeof bits);
            if (bits != SENTINEL_BITS && touched++ == 0) first = i;
        }
        if (touched)
            fc_fail(&c, "frozen group 0's grad slab was written: %zu of %zu floats, first [%zu]",
                    touched, g0->numel, first);
    }

    free(labels);
    nn_tensor_free(&x);
    nn_tensor_free(&dlogits);
    nn_model_free(m);
    fc_close(&c);
}

static void test_mlp(void **state)
{
    (void)state;
    run_model_case("mlp.h5", "mlp", 0);
}

static void test_cnn(void **state)
{
    (void)state;
    run_model_case("cnn.h5", "cnn", 0);
}

static void test_cnn_frozen(void **state)
{
    (void)state;
    run_model_case("cnn_frozen.h5", "cnn", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp),
        cmocka_unit_test(test_cnn),
        cmocka_unit_test(test_cnn_frozen),
        cmocka_unit_test(test_vgg_block),
        cmocka_unit_test(test_basicblock),
        cmocka_unit_test(test_basicblock_id),
        cmocka_unit_test(test_bottleneck),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_adaptive_avgpool),
        cmocka_unit_test(test_adaptive_concatpool),
        cmocka_unit_test(test_maxpool_pad),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_bn1d),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_conv_s2),
    };
    g_engine = NN_ENGINE_REFERENCE;
    int failed = cmocka_run_group_tests_name("nn fixtures, reference engine", tests, NULL, NULL);
    g_engine = NN_ENGINE_CPU;
    failed += cmocka_run_group_tests_name("nn fixtures, cpu engine", tests, NULL, NULL);
    return failed;
}
