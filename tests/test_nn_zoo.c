/* The model zoo and layer groups: child counts and parameter counts against torchvision
 * (tests/fixtures/torchvision_counts.h5, written by make_fixtures.py from Debian's
 * python3-torchvision), default cuts and splits, slab layout, freezing, and bad specs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "tests/fixture_h5.h"

static nn_model *build_spec(const char *arch, int c, int h, int w, int classes, int head,
                            int skip_init)
{
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.skip_init = skip_init;
    s.arch = arch;
    s.in_c = c;
    s.in_h = h;
    s.in_w = w;
    s.classes = classes;
    s.head = head;
    nn_rng rng;
    nn_rng_seed(&rng, 7);
    nn_model *m = NULL;
    int rc = nn_model_init(&m, &s, &rng);
    if (rc) print_error("%s: %s\n", arch, nn_errmsg());
    assert_int_equal(rc, 0);
    return m;
}

static nn_model *build(const char *arch, int c, int h, int w, int classes, int head)
{
    return build_spec(arch, c, h, w, classes, head, 0);
}

/* Structure only (parameters left zero): counting 140M parameters needs no random draws. */
static nn_model *build_shape(const char *arch, int c, int h, int w, int classes, int head)
{
    return build_spec(arch, c, h, w, classes, head, 1);
}

/* torchvision's models with their own classifier: same parameter count, and (cut 0 keeps
 * every child) the same number of top-level children (vgg: of `features`). */
static void test_torchvision_counts(void **state)
{
    fx_file *f;
    assert_int_equal(fx_open(&f, STRATA_FIXTURES "/torchvision_counts.h5"), 0);
    static const char *const archs[] = {"resnet18", "resnet34", "resnet50", "vgg11",
                                        "vgg11_bn", "vgg13",    "vgg13_bn", "vgg16",
                                        "vgg16_bn", "vgg19",    "vgg19_bn"};
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++) {
        int64_t ref[2];
        size_t n;
        assert_int_equal(fx_read_attr_i64(f, archs[i], ref, 2, &n), 0);
        assert_int_equal(n, 2);
        nn_model *m = build_shape(archs[i], 3, 224, 224, 1000, NN_HEAD_ORIGINAL);
        if ((int64_t)nn_model_numel(m) != ref[0])
            print_error("%s: %zu parameters, torchvision has %lld\n", archs[i], nn_model_numel(m),
                        (long long)ref[0]);
        assert_int_equal((int64_t)nn_model_numel(m), ref[0]);
        nn_model_free(m);

        nn_model_spec s;
        nn_model_spec_default(&s);
        s.arch = archs[i];
        s.cut = 0;
        s.nsplit = 0;
        s.skip_init = 1;
        nn_rng rng;
        nn_rng_seed(&rng, 1);
        assert_int_equal(nn_model_init(&m, &s, &rng), 0);
        assert_int_equal(nn_model_body_children(m), ref[1]);
        nn_model_free(m);
    }
    fx_close(f);
    /* The figures the issue names, independently of the fixture. */
    nn_model *m = build_shape("resnet34", 3, 224, 224, 1000, NN_HEAD_ORIGINAL);
    assert_int_equal(nn_model_numel(m), 21797672);
    nn_model_free(m);
    m = build_shape("resnet50", 3, 224, 224, 1000, NN_HEAD_ORIGINAL);
    assert_int_equal(nn_model_numel(m), 25557032);
    nn_model_free(m);
    m = build_shape("vgg16_bn", 3, 224, 224, 1000, NN_HEAD_ORIGINAL);
    assert_int_equal(nn_model_numel(m), 138365992);
    nn_model_free(m);
}

/* Every parameter is a view into its group's slab, in order, without gaps or overlap, the
 * BatchNorm parameters (and only they) in the tail from bn_offset on, and the groups' counts
 * add up to the model's. */
static void check_slabs(nn_model *m)
{
    size_t total = 0;
    for (int g = 0; g < m->ngroups; g++) {
        nn_group *gr = &m->groups[g];
        size_t off = 0;
        for (int k = 0; k < gr->nparams; k++) {
            nn_param *p = gr->params[k];
            assert_ptr_equal(p->data, gr->param_slab + off);
            assert_ptr_equal(p->grad, gr->grad_slab + off);
            assert_int_equal(p->group, g);
            if (p->is_bn != (off >= gr->bn_offset))
                fail_msg("group %d: parameter %d (%s, BatchNorm %d) at %zu, BatchNorm tail at %zu",
                         g, k, p->name, p->is_bn, off, gr->bn_offset);
            off += p->numel;
        }
        assert_int_equal(off, gr->numel);
        total += gr->numel;
    }
    assert_int_equal(total, nn_model_numel(m));
}

static void expect_groups(nn_model *m, int ngroups, const int *firsts, const int *lasts)
{
    assert_int_equal(m->ngroups, ngroups);
    for (int g = 0; g < ngroups - 1; g++) {
        assert_int_equal(m->groups[g].first, firsts[g]);
        assert_int_equal(m->groups[g].last, lasts[g]);
        assert_false(m->groups[g].is_head);
    }
    assert_true(m->groups[ngroups - 1].is_head);
    check_slabs(m);
}

/* fastai's defaults: resnet34 cut 8 split 6; vgg16_bn cut 0 (all 44 features) split 22. */
static void test_default_groups(void **state)
{
    nn_model *m = build("resnet34", 3, 224, 224, 37, NN_HEAD_DEFAULT);
    assert_int_equal(nn_model_body_children(m), 8);
    expect_groups(m, 3, (int[]){0, 6}, (int[]){5, 7});
    assert_string_equal(m->head->kids[0]->ops->type, "AdaptiveConcatPool2d");
    assert_int_equal(m->head->nkids, 9);
    nn_model_free(m);

    m = build("vgg16_bn", 3, 224, 224, 37, NN_HEAD_DEFAULT);
    assert_int_equal(nn_model_body_children(m), 44);
    expect_groups(m, 3, (int[]){0, 22}, (int[]){21, 43});
    assert_string_equal(m->body->kids[43]->ops->type, "MaxPool2d");
    nn_model_free(m);

    m = build("resnet50", 3, 64, 64, 10, NN_HEAD_LINEAR);
    expect_groups(m, 3, (int[]){0, 6}, (int[]){5, 7});
    nn_model_free(m);

    m = build("cnn", 1, 28, 28, 10, NN_HEAD_DEFAULT);
    assert_int_equal(nn_model_body_children(m), 17);
    expect_groups(m, 3, (int[]){0, 7}, (int[]){6, 16});
    nn_model_free(m);

    m = build("mlp", 1, 28, 28, 10, NN_HEAD_DEFAULT);
    assert_int_equal(nn_model_numel(m), 784 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * 10 + 10);
    expect_groups(m, 3, (int[]){0, 3}, (int[]){2, 4});
    nn_model_free(m);

    /* The small-input resnet stem keeps the child indices (maxpool becomes Identity). */
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.arch = "resnet18";
    s.in_h = s.in_w = 32;
    s.small_stem = 1;
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    assert_int_equal(nn_model_init(&m, &s, &rng), 0);
    assert_string_equal(m->body->kids[3]->ops->type, "Identity");
    assert_int_equal(m->body->kids[7]->out_shape[1], 4); /* 32 / 8 */
    nn_model_free(m);
}

static void test_custom_split_and_cut(void **state)
{
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.arch = "resnet34";
    s.nsplit = 2;
    s.split[0] = 4;
    s.split[1] = 6;
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    nn_model *m;
    assert_int_equal(nn_model_init(&m, &s, &rng), 0);
    expect_groups(m, 4, (int[]){0, 4, 6}, (int[]){3, 5, 7});
    nn_model_free(m);

    /* A user cut with the default split drops split points beyond the cut. */
    nn_model_spec_default(&s);
    s.arch = "resnet34";
    s.cut = 5;
    assert_int_equal(nn_model_init(&m, &s, &rng), 0);
    expect_groups(m, 2, (int[]){0}, (int[]){4});
    nn_model_free(m);

    /* No split: one body group and the head. */
    nn_model_spec_default(&s);
    s.arch = "vgg11";
    s.nsplit = 0;
    assert_int_equal(nn_model_init(&m, &s, &rng), 0);
    expect_groups(m, 2, (int[]){0}, (int[]){20});
    nn_model_free(m);
}

/* Each bad spec fails with the right code and names the offending value. */
static void expect_bad(nn_model_spec *s, int code, const char *needle)
{
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    nn_model *m = (nn_model *)0x1;
    int rc = nn_model_init(&m, s, &rng);
    if (rc != code || !strstr(nn_errmsg(), needle))
        print_error("expected %s with '%s', got %s: %s\n", nn_errname(code), needle,
                    nn_errname(rc), nn_errmsg());
    assert_int_equal(rc, code);
    assert_non_null(strstr(nn_errmsg(), needle));
    assert_null(m);
}

static void test_bad_specs(void **state)
{
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.arch = "resnet35";
    expect_bad(&s, NN_ENOTFOUND, "resnet35");
    s.arch = "vgg16_xx";
    expect_bad(&s, NN_ENOTFOUND, "vgg16_xx");

    nn_model_spec_default(&s);
    s.arch = "resnet34";
    s.cut = 11;
    expect_bad(&s, NN_ERANGE, "cut 11");

    nn_model_spec_default(&s);
    s.arch = "resnet34";
    s.nsplit = 2;
    s.split[0] = 6;
    s.split[1] = 4;
    expect_bad(&s, NN_ERANGE, "4 follows 6");
    s.split[1] = 6; /* equal: an empty group */
    expect_bad(&s, NN_ERANGE, "6 follows 6");
    s.nsplit = 1;
    s.split[0] = 0;
    expect_bad(&s, NN_ERANGE, "split 0");
    s.split[0] = 8; /* the body has 8 children: splits must be 1..7 */
    expect_bad(&s, NN_ERANGE, "split 8");
    s.split[0] = -3;
    expect_bad(&s, NN_ERANGE, "split -3");

    nn_model_spec_default(&s);
    s.arch = "mlp";
    s.nwidths = 2;
    s.widths[0] = 64;
    s.widths[1] = 0;
    expect_bad(&s, NN_ERANGE, "width 0");

    nn_model_spec_default(&s);
    s.arch = "cnn";
    s.classes = 0;
    expect_bad(&s, NN_ERANGE, "classes 0");
    s.classes = 10;
    s.in_h = -28;
    expect_bad(&s, NN_ERANGE, "-28");

    /* vgg16 on 8x8 images: the fourth max pool gets a 1x1 input. */
    nn_model_spec_default(&s);
    s.arch = "vgg16";
    s.in_h = s.in_w = 8;
    expect_bad(&s, NN_ESHAPE, "MaxPool2d");
}

/* Gradients of a cnn batch, with a chosen freezing, for comparisons. */
typedef struct {
    nn_model *m;
    nn_tensor x;
    int32_t labels[6];
} run;

static void run_init(run *r, uint64_t seed)
{
    r->m = build("cnn", 1, 12, 12, 5, NN_HEAD_DEFAULT);
    memset(&r->x, 0, sizeof r->x);
    assert_int_equal(nn_tensor_resize(&r->x, 6, 1, 12, 12), 0);
    nn_rng rng;
    nn_rng_seed(&rng, seed);
    nn_rng_fill_normal(&rng, r->x.data, nn_tensor_numel(&r->x), 1.0f);
    for (int i = 0; i < 6; i++) r->labels[i] = i % 5;
}

static void run_step(run *r)
{
    const nn_tensor *logits;
    nn_tensor d = {0};
    float loss;
    nn_ctx ctx = {NULL};
    assert_int_equal(nn_model_forward(&logits, r->m, &r->x, &ctx), 0);
    assert_int_equal(nn_cross_entropy(&loss, &d, NULL, logits, r->labels), 0);
    nn_model_zero_grad(r->m);
    assert_int_equal(nn_model_backward(r->m, &d), 0);
    nn_tensor_free(&d);
}

static void run_free(run *r)
{
    nn_model_free(r->m);
    nn_tensor_free(&r->x);
}

static const uint32_t SENTINEL = 0x7fc0dead; /* a NaN bit pattern */

static void fill_sentinel(nn_group *g)
{
    for (size_t i = 0; i < g->numel; i++) memcpy(&g->grad_slab[i], &SENTINEL, 4);
}

static int untouched(const nn_group *g)
{
    for (size_t i = 0; i < g->numel; i++)
        if (memcmp(&g->grad_slab[i], &SENTINEL, 4)) return 0;
    return 1;
}

/* Freezing a middle group with train_bn (so the forward pass is unchanged): the frozen
 * group's non-BN gradients are never written, the groups below it (reached through it)
 * and above it get exactly the unfrozen gradients. */
static void test_freeze_middle_group(void **state)
{
    run full, part;
    run_init(&full, 3);
    run_init(&part, 3);
    run_step(&full);
    /* Three groups: 0 = children 0-6, 1 = children 7-16, 2 = head. */
    nn_model_set_train_bn(part.m, 1);
    assert_int_equal(nn_model_set_frozen(part.m, 1, 1), 0);
    fill_sentinel(&part.m->groups[1]);
    run_step(&part);
    nn_group *g1 = &part.m->groups[1];
    for (int k = 0; k < g1->nparams; k++) {
        nn_param *p = g1->params[k];
        for (size_t i = 0; i < p->numel; i++) {
            if (p->is_bn)
                assert_float_equal(p->grad[i], full.m->groups[1].params[k]->grad[i], 1e-6);
            else
                assert_memory_equal(&p->grad[i], &SENTINEL, 4);
        }
    }
    for (int g = 0; g < 3; g += 2)
        for (size_t i = 0; i < full.m->groups[g].numel; i++)
            assert_float_equal(part.m->groups[g].grad_slab[i], full.m->groups[g].grad_slab[i],
                               1e-6);
    run_free(&full);
    run_free(&part);
}

/* freeze_to(-1) (fastai's freeze): only the head trains; the body runs no backward at all
 * and its BatchNorm statistics stay fixed. */
static void test_freeze_body(void **state)
{
    run r;
    run_init(&r, 4);
    assert_int_equal(nn_model_freeze_to(r.m, -1, NULL), 0);
    assert_true(r.m->groups[0].frozen && r.m->groups[1].frozen && !r.m->groups[2].frozen);
    fill_sentinel(&r.m->groups[0]);
    fill_sentinel(&r.m->groups[1]);
    nn_layer *bn = r.m->body->kids[1];
    float mean0 = bn->bufs[0].data[0], var0 = bn->bufs[1].data[0];
    run_step(&r);
    assert_true(untouched(&r.m->groups[0]));
    assert_true(untouched(&r.m->groups[1]));
    assert_float_equal(bn->bufs[0].data[0], mean0, 0);
    assert_float_equal(bn->bufs[1].data[0], var0, 0);
    assert_false(bn->training);
    /* Backward stopped at the head: nothing below it asked for an input gradient. */
    assert_false(r.m->head->need_dx);
    for (int i = 0; i < r.m->body->nkids; i++) assert_false(r.m->body->kids[i]->need_dx);
    double hg = 0.0;
    for (size_t i = 0; i < r.m->groups[2].numel; i++) hg += fabs(r.m->groups[2].grad_slab[i]);
    assert_true(hg > 0.0);

    /* With train_bn the frozen BatchNorms update their statistics again. */
    nn_model_set_train_bn(r.m, 1);
    run_step(&r);
    assert_true(bn->training);
    assert_true(bn->bufs[0].data[0] != mean0);

    /* unfreeze (freeze_to 0) then freeze_to(2), and out-of-range values. */
    assert_int_equal(nn_model_freeze_to(r.m, 0, NULL), 0);
    for (int g = 0; g < 3; g++) assert_false(r.m->groups[g].frozen);
    assert_int_equal(nn_model_freeze_to(r.m, 2, NULL), 0);
    assert_true(r.m->groups[1].frozen && !r.m->groups[2].frozen);
    assert_int_equal(nn_model_freeze_to(r.m, 4, NULL), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "freeze_to 4"));
    assert_int_equal(nn_model_freeze_to(r.m, -4, NULL), NN_ERANGE);
    assert_int_equal(nn_model_set_frozen(r.m, 3, 1), NN_ERANGE);
    run_free(&r);
}

/* nn_model_backward_fresh is zero_grad + backward in one: from slabs full of NaN it gives
 * the same gradients, bit for bit, on both engines, for the cnn (conv, BN, Linear) and the
 * mlp (Linear only, its GEMMs written with beta 0); a second backward adds to them; with a
 * frozen body (train_bn) only the trainable gradients are written, the rest stay as they
 * were. */
static void check_fresh(const char *arch, int engine, int freeze)
{
    nn_model *m[2];
    nn_tensor x = {0}, d = {0};
    int32_t labels[4] = {0, 1, 2, 3};
    for (int k = 0; k < 2; k++) {
        nn_model_spec s;
        nn_model_spec_default(&s);
        s.arch = arch;
        s.in_c = 1;
        s.in_h = s.in_w = 12;
        s.classes = 5;
        s.engine = engine;
        if (!strcmp(arch, "mlp")) {
            s.nwidths = 2;
            s.widths[0] = 48;
            s.widths[1] = 24;
        }
        nn_rng rng;
        nn_rng_seed(&rng, 3);
        assert_int_equal(nn_model_init(&m[k], &s, &rng), 0);
        nn_model_set_train_bn(m[k], 1);
        assert_int_equal(nn_model_freeze_to(m[k], freeze, NULL), 0);
        for (int g = 0; g < m[k]->ngroups; g++) fill_sentinel(&m[k]->groups[g]);
    }
    assert_int_equal(nn_tensor_resize(&x, 4, 1, 12, 12), 0);
    nn_rng rng;
    nn_rng_seed(&rng, 9);
    nn_rng_fill_normal(&rng, x.data, nn_tensor_numel(&x), 1.0f);
    nn_ctx ctx = {NULL};
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 2; k++) {
            const nn_tensor *logits;
            float loss;
            assert_int_equal(nn_model_forward(&logits, m[k], &x, &ctx), 0);
            assert_int_equal(nn_cross_entropy(&loss, &d, NULL, logits, labels), 0);
            if (k == 0 && pass == 0) nn_model_zero_grad(m[k]);
            int rc = k == 1 && pass == 0 ? nn_model_backward_fresh(m[k], &d)
                                         : nn_model_backward(m[k], &d);
            assert_int_equal(rc, 0);
        }
    for (int g = 0; g < m[0]->ngroups; g++)
        for (int i = 0; i < m[0]->groups[g].nparams; i++) {
            const nn_param *a = m[0]->groups[g].params[i], *b = m[1]->groups[g].params[i];
            if (memcmp(a->grad, b->grad, a->numel * sizeof(float)))
                fail_msg("%s, engine %d, freeze_to %d: group %d parameter %d (%s%s): fresh "
                         "backward differs from zero_grad + backward",
                         arch, engine, freeze, g, i, a->name, a->trainable ? "" : ", frozen");
            assert_false(b->grad_zero);
        }
    nn_tensor_free(&x);
    nn_tensor_free(&d);
    nn_model_free(m[0]);
    nn_model_free(m[1]);
}

static void test_backward_fresh(void **state)
{
    for (int engine = NN_ENGINE_REFERENCE; engine <= NN_ENGINE_CPU; engine++) {
        check_fresh("cnn", engine, 0);
        check_fresh("cnn", engine, -1);
        check_fresh("mlp", engine, 0);
    }
}

/* Initialisation: reproducible from the seed, PyTorch's bounds for Linear and Conv2d
 * (U(-1/sqrt(fan_in), 1/sqrt(fan_in))), BatchNorm weight 1 and bias 0. */
static void test_init(void **state)
{
    nn_model *a = build("cnn", 1, 28, 28, 10, NN_HEAD_LINEAR);
    nn_model *b = build("cnn", 1, 28, 28, 10, NN_HEAD_LINEAR);
    for (int g = 0; g < a->ngroups; g++)
        assert_memory_equal(a->groups[g].param_slab, b->groups[g].param_slab,
                            a->groups[g].numel * sizeof(float));
    nn_layer *conv = a->body->kids[3]; /* Conv2d(32, 32, 3): fan_in 288 */
    const nn_param *w = &conv->params[0];
    float bound = 1.0f / sqrtf(288.0f);
    double s2 = 0.0;
    for (size_t i = 0; i < w->numel; i++) {
        assert_true(fabsf(w->data[i]) <= bound);
        s2 += (double)w->data[i] * w->data[i];
    }
    double std = sqrt(s2 / w->numel), expect = bound / sqrt(3.0);
    assert_true(fabs(std - expect) < 0.05 * expect);
    nn_layer *bn = a->body->kids[4];
    assert_float_equal(bn->params[0].data[5], 1.0f, 0);
    assert_float_equal(bn->params[1].data[5], 0.0f, 0);
    nn_model_free(a);
    nn_model_free(b);
}

int main(void)
{
    nn_blas_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torchvision_counts), cmocka_unit_test(test_default_groups),
        cmocka_unit_test(test_custom_split_and_cut), cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_freeze_middle_group), cmocka_unit_test(test_freeze_body),
        cmocka_unit_test(test_init),        cmocka_unit_test(test_backward_fresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
