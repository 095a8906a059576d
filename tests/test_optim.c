/*
 * test_optim: per-group hyperparameters, schedules, and the SGD and AdamW optimizers.
 *
 * - fastai's expansion rules (scalar, list, slice(b), slice(a, b)) and their errors;
 * - one_cycle, cosine, step and constant schedules at chosen steps, against values written
 *   out here from fastai v2's formulas (never computed by the code under test);
 * - fastai's SGD (true weight decay) and Adam against fastai 2.8.12's own steps, and its
 *   lr_find sweep and four suggestions (tests/fixtures/fastai_*.h5, written by
 *   tests/make_fastai_fixtures.py); clear_state; BatchNorm modes of frozen groups;
 * - SGD, SGD with Nesterov momentum and AdamW against PyTorch: tests/fixtures/optim_*.h5
 *   (written by tests/make_optim_fixtures.py) hold a start, five steps of fixed gradients with
 *   per-step, per-group lr / momentum / weight decay, and torch.optim's parameters after each
 *   step; every parameter must match at every step within a relative error of 1e-5, and its
 *   displacement from the start within 1e-2;
 * - frozen groups keep their parameters and state, BatchNorm trained in a frozen group keeps
 *   its own AdamW step count, and weight decay skips BatchNorm parameters and biases unless
 *   decay_bn_bias.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"
#include "tests/fixture_h5.h"
#include "io/io_config.h"
#include "trainer/trainer.h"
#include "trainer/trainer_optim.h"
#include "tests/testutil.h"

#define PI 3.14159265358979323846
#define FIXTURE_TOL 1e-5 /* relative L2 error of each parameter after each step */
/* Relative L2 error of each parameter's displacement from the start. Float32 storage of the
 * parameters bounds how well small displacements can agree (a bias moved by 1e-5 from 0.3
 * carries rounding of 3e-8 per step), while an update with a wrong or missing term is off
 * by far more than 1%. */
#define DELTA_TOL 1e-2

/* ---------------------------------------------------------------------------------------
 * Helpers.
 */

/* Asserts |a - b| <= rtol * max(|b|, tiny), printing both values when it fails. */
static void check_close(double a, double b, double rtol, const char *what)
{
    double scale = fabs(b) > 1e-300 ? fabs(b) : 1e-300;
    if (!(fabs(a - b) <= rtol * scale)) {
        print_error("%s: got %.17g, expected %.17g (rel err %.3g > %.3g)\n", what, a, b,
                    fabs(a - b) / scale, rtol);
        fail();
    }
}

/* Asserts |a - b| <= atol: schedule values near zero are differences of O(max lr) terms, so
 * their error is measured against the maximum, not against themselves. */
static void check_near(double a, double b, double atol, const char *what)
{
    if (!(fabs(a - b) <= atol)) {
        print_error("%s: got %.17g, expected %.17g (abs err %.3g > %.3g)\n", what, a, b,
                    fabs(a - b), atol);
        fail();
    }
}

/* Asserts an nn call succeeded, printing nn's message when not. */
#define NN_CHECK(call)                                                                    \
    do {                                                                                  \
        int rc__ = (call);                                                                \
        if (rc__ != 0) {                                                                  \
            print_error("%s failed: %s (%s)\n", #call, nn_errmsg(), nn_errname(rc__));    \
            fail();                                                                       \
        }                                                                                 \
    } while (0)

static nn_model *build_model(const char *arch, int c, int h, int w, int classes,
                             const int *widths, int nwidths)
{
    nn_model_spec s;
    nn_model_spec_default(&s);
    s.arch = arch;
    s.in_c = c;
    s.in_h = h;
    s.in_w = w;
    s.classes = classes;
    s.head = NN_HEAD_LINEAR;
    s.nwidths = nwidths;
    for (int i = 0; i < nwidths; i++) s.widths[i] = widths[i];
    nn_rng rng;
    nn_rng_seed(&rng, 11);
    nn_model *m = NULL;
    NN_CHECK(nn_model_init(&m, &s, &rng));
    return m;
}

/* strata's mlp(widths {8}) on 1x2x2 inputs, 3 classes: the fixtures' model, 2 groups. */
static nn_model *build_mlp8(void)
{
    const int widths[1] = {8};
    nn_model *m = build_model("mlp", 1, 2, 2, 3, widths, 1);
    assert_int_equal(m->ngroups, 2);
    return m;
}

/* Fills every gradient slab (frozen groups' too) with a deterministic pattern. */
static void fill_grads(nn_model *m, float scale)
{
    for (int g = 0; g < m->ngroups; g++)
        for (size_t i = 0; i < m->groups[g].numel; i++)
            m->groups[g].grad_slab[i] = scale * (float)(((long)(i * 37 + g * 11) % 17) - 8) / 8.0f;
}

/* A copy of a group's parameter slab (malloc'd). */
static float *copy_slab(const float *src, size_t n)
{
    float *d = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(d);
    memcpy(d, src, n * sizeof(float));
    return d;
}

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters.
 */

static void test_hparam_scalar_and_list(void **state)
{
    float out[3];
    const double s[1] = {0.01};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_SCALAR, s, 1, "groups.lr"));
    for (int i = 0; i < 3; i++) assert_true(out[i] == 0.01f);

    const double l[3] = {1e-4, 2e-4, 3e-3};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_LIST, l, 3, "groups.lr"));
    assert_true(out[0] == 1e-4f && out[1] == 2e-4f && out[2] == 3e-3f);
}

static void test_hparam_slices(void **state)
{
    float out[5];
    /* slice(1e-5, 1e-3) over 3 groups: geometric, {1e-5, 1e-4, 1e-3}. */
    const double ab[2] = {1e-5, 1e-3};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_SLICE2, ab, 2, "groups.lr"));
    check_close(out[0], 1e-5, 1e-6, "slice(1e-5, 1e-3)[0]");
    check_close(out[1], 1e-4, 1e-6, "slice(1e-5, 1e-3)[1]");
    check_close(out[2], 1e-3, 1e-6, "slice(1e-5, 1e-3)[2]");

    /* Over 5 groups: out_i = a * (b/a)^(i/4), written out from the formula. */
    NN_CHECK(trainer_hparam_expand(out, 5, IO_HP_SLICE2, ab, 2, "groups.lr"));
    const double five[5] = {1e-5, 1e-5 * pow(100.0, 0.25), 1e-4, 1e-5 * pow(100.0, 0.75), 1e-3};
    for (int i = 0; i < 5; i++) check_close(out[i], five[i], 1e-6, "slice(1e-5, 1e-3) over 5");

    /* slice(b): b/10 for every group but the last. */
    const double b[1] = {3e-3};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_SLICE1, b, 1, "groups.lr"));
    check_close(out[0], 3e-4, 1e-6, "slice(3e-3)[0]");
    check_close(out[1], 3e-4, 1e-6, "slice(3e-3)[1]");
    assert_true(out[2] == 3e-3f);

    /* slice(a, a) is the same value everywhere, also a = 0 (weight decay off). */
    const double zz[2] = {0.0, 0.0};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_SLICE2, zz, 2, "groups.wd"));
    assert_true(out[0] == 0.0f && out[1] == 0.0f && out[2] == 0.0f);
}

/* One group: slice(a, b) gives b, slice(b) gives b, a list needs one value. */
/* fastai's set_hyper: a one-element list is broadcast, slice(0, b) is slice(b). */
static void test_hparam_fastai_forms(void **state)
{
    float out[3];
    const double one[1] = {0.01}, zero_b[2] = {0.0, 1e-3};
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_LIST, one, 1, "groups.lr"));
    assert_true(out[0] == 0.01f && out[1] == 0.01f && out[2] == 0.01f);
    NN_CHECK(trainer_hparam_expand(out, 3, IO_HP_SLICE2, zero_b, 2, "groups.lr"));
    assert_true(out[0] == (float)1e-4 && out[1] == (float)1e-4 && out[2] == 1e-3f);
}

static void test_hparam_one_group(void **state)
{
    float out[1];
    const double ab[2] = {1e-5, 1e-3};
    NN_CHECK(trainer_hparam_expand(out, 1, IO_HP_SLICE2, ab, 2, "groups.lr"));
    assert_true(out[0] == 1e-3f);
    const double b[1] = {2e-3};
    NN_CHECK(trainer_hparam_expand(out, 1, IO_HP_SLICE1, b, 1, "groups.lr"));
    assert_true(out[0] == 2e-3f);
    NN_CHECK(trainer_hparam_expand(out, 1, IO_HP_LIST, b, 1, "groups.lr"));
    assert_true(out[0] == 2e-3f);
}

/* Expects failure with the given code and a message containing `needle`; out untouched. */
static void expect_hp_error(int code, const char *needle, int ngroups, int kind, const double *v,
                            int n, const char *key)
{
    float out[4] = {-7.0f, -7.0f, -7.0f, -7.0f};
    int rc = trainer_hparam_expand(out, ngroups, kind, v, n, key);
    if (rc != code || !strstr(nn_errmsg(), needle)) {
        print_error("expected %s with '%s', got %d: '%s'\n", nn_errname(code), needle, rc,
                    nn_errmsg());
        fail();
    }
    for (int i = 0; i < 4; i++) assert_true(out[i] == -7.0f);
}

static void test_hparam_errors(void **state)
{
    const double v[3] = {1e-3, 1e-2, 1e-1};
    expect_hp_error(NN_ERANGE, "groups.lr: expected 3 values (one per layer group), got 2", 3,
                    IO_HP_LIST, v, 2, "groups.lr");
    expect_hp_error(NN_ERANGE, "groups.wd: expected 2 values (one per layer group), got 3", 2,
                    IO_HP_LIST, v, 3, "groups.wd");
    expect_hp_error(NN_ERANGE, "groups.momentum: a scalar takes 1 value, got 2", 3,
                    IO_HP_SCALAR, v, 2, "groups.momentum");
    expect_hp_error(NN_ERANGE, "slice(a, b) takes 2 values, got 3", 3, IO_HP_SLICE2, v, 3,
                    "groups.lr");
    expect_hp_error(NN_ERANGE, "slice(b) takes 1 value, got 2", 3, IO_HP_SLICE1, v, 2,
                    "groups.lr");
    const double mixed[2] = {-1e-3, 1e-3}, zero_b[2] = {1e-3, 0.0};
    expect_hp_error(NN_ERANGE, "slice(0.001, 0)", 3, IO_HP_SLICE2, zero_b, 2, "groups.lr");
    expect_hp_error(NN_ERANGE, "slice(-0.001, 0.001)", 3, IO_HP_SLICE2, mixed, 2,
                    "groups.lr");
    const double inf[1] = {INFINITY};
    expect_hp_error(NN_ERANGE, "not finite", 3, IO_HP_SCALAR, inf, 1, "groups.lr");
    expect_hp_error(NN_EINVAL, "unknown kind 5", 3, 5, v, 1, "groups.lr");
    expect_hp_error(NN_ERANGE, "0 layer groups", 0, IO_HP_SCALAR, v, 1, "groups.lr");
    expect_hp_error(NN_ERANGE, "value: expected 3 values", 3, IO_HP_LIST, v, 2, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Schedules.
 */

/* one_cycle over N = 200 steps, pct_start 0.25, div 25, div_final 1e5, max lr 0.01. The
 * expected values are cos_anneal(s, e, x) = s + (1 + cos(pi (1 - x))) (e - s) / 2 written
 * out by hand: warm-up from 0.01/25 = 4e-4 to 0.01 over p in [0, 0.25), then down to
 * 0.01/1e5 = 1e-7; momentum 0.95 -> 0.85 -> 0.95 on the same shape. */
static void test_sched_one_cycle(void **state)
{
    trainer_sched s;
    trainer_sched_default(&s, TRAINER_SCHED_ONE_CYCLE);
    NN_CHECK(trainer_sched_check(&s));
    const long N = 200;
    const double mx = 0.01;
    struct {
        long t;
        double lr, mom;
    } cases[] = {
        /* t = 0: the start, max/div and moms[0]. */
        {0, 4e-4, 0.95},
        /* t = 10: p = 0.05, x = 0.2 in the warm-up. */
        {10, 4e-4 + (1.0 + cos(PI * 0.8)) * (0.01 - 4e-4) / 2.0,
         0.95 + (1.0 + cos(PI * 0.8)) * (0.85 - 0.95) / 2.0},
        /* t = 25: x = 0.5, halfway up: cos(pi/2) = 0. */
        {25, 4e-4 + 0.5 * 0.0096, 0.9},
        /* t = 50: p = pct, the peak. */
        {50, 0.01, 0.85},
        /* t = 100: p = 0.5, x = 1/3 of the way down: cos(2 pi / 3) = -1/2. */
        {100, 0.01 + 0.25 * (1e-7 - 0.01), 0.875},
        /* t = N - 1: p = 0.995, x = 0.745 / 0.75. */
        {199, 0.01 + (1.0 + cos(PI * (1.0 - 0.745 / 0.75))) * (1e-7 - 0.01) / 2.0,
         0.85 + (1.0 + cos(PI * (1.0 - 0.745 / 0.75))) * (0.95 - 0.85) / 2.0},
        /* t = N: the end, max/div_final and moms[2]. */
        {200, 1e-7, 0.95},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "one_cycle lr at t=%ld", cases[i].t);
        check_near(trainer_sched_lr(&s, mx, cases[i].t, N), cases[i].lr, 1e-14, what);
        snprintf(what, sizeof what, "one_cycle mom at t=%ld", cases[i].t);
        check_near(trainer_sched_mom(&s, 0.5, cases[i].t, N), cases[i].mom, 1e-14, what);
    }

    /* fastai's fine_tune uses pct_start 0.99 and div 5: at t = 99 of N = 100, p = 0.99 is no
     * longer below pct, so it is the peak; at t = 50, x = 0.5 / 0.99 of the warm-up. */
    s.c.pct_start = 0.99;
    s.c.div = 5.0;
    check_close(trainer_sched_lr(&s, 2e-3, 0, 100), 2e-3 / 5.0, 1e-12, "fine_tune start");
    check_close(trainer_sched_lr(&s, 2e-3, 99, 100), 2e-3, 1e-12, "fine_tune at p = pct");
    check_close(trainer_sched_lr(&s, 2e-3, 50, 100),
                4e-4 + (1.0 + cos(PI * (1.0 - 0.5 / 0.99))) * (2e-3 - 4e-4) / 2.0, 1e-12,
                "fine_tune middle");

    /* Per group: each group's own max lr, the same momentum. */
    const float maxes[3] = {1e-4f, 1e-3f, 1e-2f}, base[3] = {0.9f, 0.9f, 0.9f};
    float lr[3], mom[3];
    trainer_sched_default(&s, TRAINER_SCHED_ONE_CYCLE);
    trainer_sched_fill(lr, mom, &s, maxes, base, 3, 50, 200);
    for (int g = 0; g < 3; g++) {
        assert_true(lr[g] == maxes[g]);
        check_close(mom[g], 0.85, 1e-7, "one_cycle fill momentum");
    }
}

static void test_sched_others(void **state)
{
    trainer_sched s;
    /* cosine from 0.1 to 0.1/10 over 100 steps. */
    trainer_sched_default(&s, TRAINER_SCHED_COSINE);
    s.c.final_div = 10.0;
    NN_CHECK(trainer_sched_check(&s));
    check_close(trainer_sched_lr(&s, 0.1, 0, 100), 0.1, 1e-12, "cosine t=0");
    check_close(trainer_sched_lr(&s, 0.1, 25, 100),
                0.1 + (1.0 + cos(PI * 0.75)) * (0.01 - 0.1) / 2.0, 1e-12, "cosine t=25");
    check_close(trainer_sched_lr(&s, 0.1, 50, 100), 0.055, 1e-12, "cosine t=50");
    check_close(trainer_sched_lr(&s, 0.1, 100, 100), 0.01, 1e-12, "cosine t=100");
    check_close(trainer_sched_mom(&s, 0.9, 50, 100), 0.9, 0, "cosine momentum");

    /* step: 10 steps per epoch, x0.1 every 2 epochs. */
    trainer_sched_default(&s, TRAINER_SCHED_STEP);
    s.steps_per_epoch = 10;
    s.c.step_epochs = 2;
    s.c.step_gamma = 0.1;
    NN_CHECK(trainer_sched_check(&s));
    check_close(trainer_sched_lr(&s, 0.1, 0, 100), 0.1, 1e-12, "step t=0");
    check_close(trainer_sched_lr(&s, 0.1, 19, 100), 0.1, 1e-12, "step t=19 (epoch 1)");
    check_close(trainer_sched_lr(&s, 0.1, 20, 100), 0.01, 1e-12, "step t=20 (epoch 2)");
    check_close(trainer_sched_lr(&s, 0.1, 45, 100), 0.001, 1e-12, "step t=45 (epoch 4)");
    check_close(trainer_sched_mom(&s, 0.9, 45, 100), 0.9, 0, "step momentum");

    trainer_sched_default(&s, TRAINER_SCHED_CONSTANT);
    NN_CHECK(trainer_sched_check(&s));
    for (long t = 0; t <= 100; t += 25) {
        assert_true(trainer_sched_lr(&s, 0.1, t, 100) == 0.1);
        assert_true(trainer_sched_mom(&s, 0.9, t, 100) == 0.9);
    }
}

static void test_sched_names_and_checks(void **state)
{
    int t = -1;
    NN_CHECK(trainer_sched_parse_type(&t, "one_cycle"));
    assert_int_equal(t, TRAINER_SCHED_ONE_CYCLE);
    NN_CHECK(trainer_sched_parse_type(&t, "cosine"));
    assert_int_equal(t, TRAINER_SCHED_COSINE);
    NN_CHECK(trainer_sched_parse_type(&t, "step"));
    assert_int_equal(t, TRAINER_SCHED_STEP);
    NN_CHECK(trainer_sched_parse_type(&t, "constant"));
    assert_int_equal(t, TRAINER_SCHED_CONSTANT);
    assert_int_equal(trainer_sched_parse_type(&t, "onecycle"), NN_EINVAL);
    assert_non_null(strstr(nn_errmsg(), "'onecycle'"));
    assert_int_equal(t, TRAINER_SCHED_CONSTANT);
    assert_string_equal(trainer_sched_name(TRAINER_SCHED_COSINE), "cosine");
    assert_string_equal(trainer_sched_name(99), "unknown");

    trainer_sched s;
    trainer_sched_default(&s, TRAINER_SCHED_ONE_CYCLE);
    s.c.pct_start = 1.5;
    assert_int_equal(trainer_sched_check(&s), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "pct_start 1.5"));
    trainer_sched_default(&s, TRAINER_SCHED_ONE_CYCLE);
    s.c.moms[1] = 1.0;
    assert_int_equal(trainer_sched_check(&s), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "moms[1] 1"));
    trainer_sched_default(&s, TRAINER_SCHED_STEP);
    s.c.step_epochs = 0;
    assert_int_equal(trainer_sched_check(&s), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "step_epochs 0"));
    trainer_sched_default(&s, 0);
    assert_int_equal(trainer_sched_check(&s), NN_EINVAL);
}

/* ---------------------------------------------------------------------------------------
 * Optimizers against PyTorch.
 */

typedef struct fxrun {
    fx_file *fx;
    const char *file;
    int step;          /* the step whose tensors are read or compared */
    int visited;
    int failures;
    double worst, worst_delta;
} fxrun;

/* Reads `path` into a malloc'd array that must hold exactly p->numel floats. */
static float *read_exact(fxrun *r, const char *path, const nn_param *p)
{
    float *d = NULL;
    int dims[4], nd;
    if (fx_read_f32(r->fx, path, &d, dims, &nd) != 0) {
        print_error("[%s] cannot read %s\n", r->file, path);
        r->failures++;
        return NULL;
    }
    size_t n = 1;
    for (int i = 0; i < nd; i++) n *= (size_t)dims[i];
    if (n != p->numel) {
        print_error("[%s] %s has %zu elements, strata's parameter %zu\n", r->file, path, n,
                    p->numel);
        r->failures++;
        free(d);
        return NULL;
    }
    return d;
}

static int load_param(void *ud, const char *name, nn_param *p)
{
    fxrun *r = ud;
    char path[128];
    snprintf(path, sizeof path, "/params/%s", name);
    float *d = read_exact(r, path, p);
    if (d) memcpy(p->data, d, p->numel * sizeof(float));
    free(d);
    r->visited++;
    return 0;
}

static int load_grad(void *ud, const char *name, nn_param *p)
{
    fxrun *r = ud;
    char path[128];
    snprintf(path, sizeof path, "/step%d/grads/%s", r->step, name);
    float *d = read_exact(r, path, p);
    if (d) memcpy(p->grad, d, p->numel * sizeof(float));
    free(d);
    return 0;
}

/* Compares a parameter with PyTorch's after the step, and its displacement from the start
 * with PyTorch's displacement (which a rounding-sized error in every update would show). */
static int check_param(void *ud, const char *name, nn_param *p)
{
    fxrun *r = ud;
    char path[128];
    snprintf(path, sizeof path, "/step%d/params/%s", r->step, name);
    float *ref = read_exact(r, path, p);
    snprintf(path, sizeof path, "/params/%s", name);
    float *start = read_exact(r, path, p);
    if (ref && start) {
        double err = fx_rel_err(p->data, ref, p->numel);
        float *da = malloc(p->numel * sizeof(float)), *db = malloc(p->numel * sizeof(float));
        assert_true(da && db);
        for (size_t i = 0; i < p->numel; i++) {
            da[i] = (float)((double)p->data[i] - start[i]);
            db[i] = (float)((double)ref[i] - start[i]);
        }
        double derr = fx_rel_err(da, db, p->numel);
        free(da);
        free(db);
        if (!(err <= FIXTURE_TOL) || !(derr <= DELTA_TOL)) {
            print_error("[%s] step %d %s: rel err %.3g (tol %.0e), displacement rel err %.3g "
                        "(tol %.0e)\n", r->file, r->step, name, err, FIXTURE_TOL, derr,
                        DELTA_TOL);
            r->failures++;
        }
        if (err > r->worst) r->worst = err;
        if (derr > r->worst_delta) r->worst_delta = derr;
    }
    free(ref);
    free(start);
    return 0;
}

/* Runs one fixture: the same start, the same gradients and hyperparameters, every step
 * compared. */
static void run_fixture_ex(const char *file, int type, int true_wd, int expect_mismatch)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", STRATA_FIXTURES, file);
    fxrun r = {.file = file};
    assert_int_equal(fx_open(&r.fx, path), 0);

    char opt_name[16];
    int64_t steps, groups, nesterov, decay_bn_bias;
    assert_int_equal(fx_read_attr_str(r.fx, "optimizer", opt_name, sizeof opt_name), 0);
    assert_int_equal(fx_read_attr_i64(r.fx, "steps", &steps, 1, NULL), 0);
    assert_int_equal(fx_read_attr_i64(r.fx, "groups", &groups, 1, NULL), 0);
    assert_int_equal(fx_read_attr_i64(r.fx, "nesterov", &nesterov, 1, NULL), 0);
    assert_int_equal(fx_read_attr_i64(r.fx, "decay_bn_bias", &decay_bn_bias, 1, NULL), 0);
    int parsed = 0;
    NN_CHECK(trainer_opt_parse_type(&parsed, opt_name));
    assert_int_equal(parsed, type);
    float *beta2, *eps, *lr, *mom, *wd;
    int dims[4], nd;
    assert_int_equal(fx_read_f32(r.fx, "/beta2", &beta2, NULL, NULL), 0);
    assert_int_equal(fx_read_f32(r.fx, "/eps", &eps, NULL, NULL), 0);
    assert_int_equal(fx_read_f32(r.fx, "/hparams/lr", &lr, dims, &nd), 0);
    assert_true(nd == 2 && dims[0] == steps && dims[1] == groups);
    assert_int_equal(fx_read_f32(r.fx, "/hparams/mom", &mom, NULL, NULL), 0);
    assert_int_equal(fx_read_f32(r.fx, "/hparams/wd", &wd, NULL, NULL), 0);

    nn_model *m = build_mlp8();
    assert_int_equal(m->ngroups, (int)groups);
    NN_CHECK(nn_model_visit_params(m, load_param, &r));
    char **names;
    int nnames;
    assert_int_equal(fx_names(r.fx, "params", &names, &nnames), 0);
    assert_int_equal(r.visited, nnames); /* the same parameters on both sides */
    fx_names_free(names, nnames);

    trainer_opt o;
    NN_CHECK(trainer_opt_init(&o, m, type, (int)nesterov, beta2[0], eps[0], (int)decay_bn_bias));
    if (true_wd && !expect_mismatch) { /* fastai's fixtures say so, and which fastai wrote them */
        int64_t tw = 0;
        char version[32];
        assert_int_equal(fx_read_attr_i64(r.fx, "true_wd", &tw, 1, NULL), 0);
        assert_int_equal(fx_read_attr_str(r.fx, "fastai_version", version, sizeof version), 0);
        assert_int_equal(tw, 1);
        print_message("[%s] fastai %s\n", file, version);
    }
    o.true_wd = true_wd; /* 0: torch.optim's coupled L2, what the PyTorch fixtures model */
    for (int k = 0; k < steps; k++) {
        r.step = k;
        NN_CHECK(nn_model_visit_params(m, load_grad, &r));
        trainer_opt_step(&o, m, lr + k * groups, mom + k * groups, wd + k * groups);
        NN_CHECK(nn_model_visit_params(m, check_param, &r));
    }
    for (int g = 0; g < m->ngroups; g++) assert_int_equal(o.step[g], steps);
    print_message("[%s] %d steps, worst rel err %.2e, worst displacement rel err %.2e\n", file,
                  (int)steps, r.worst, r.worst_delta);

    trainer_opt_free(&o);
    nn_model_free(m);
    free(beta2);
    free(eps);
    free(lr);
    free(mom);
    free(wd);
    fx_close(r.fx);
    if (expect_mismatch) {
        print_message("[%s] the mismatches above are expected: true_wd %d is the other decay\n",
                      file, true_wd);
        assert_true(r.failures > 0);
    } else {
        assert_int_equal(r.failures, 0);
    }
}

/* One fixture, every parameter at every step within tolerance. */
static void run_fixture(const char *file, int type, int true_wd)
{
    run_fixture_ex(file, type, true_wd, 0);
}

static void test_sgd_vs_torch(void **state)
{
    run_fixture("optim_sgd.h5", TRAINER_OPT_SGD, 0);
}

static void test_sgd_nesterov_vs_torch(void **state)
{
    run_fixture("optim_sgd_nesterov.h5", TRAINER_OPT_SGD, 0);
}

static void test_adamw_vs_torch(void **state)
{
    run_fixture("optim_adamw.h5", TRAINER_OPT_ADAMW, 0);
}

/* fastai's own SGD (true weight decay; its momentum buffer also moves at momentum 0, which
 * step 2 of group 0 has) and Adam (decoupled decay), tests/make_fastai_fixtures.py. */
static void test_sgd_true_wd_vs_fastai(void **state)
{
    run_fixture("fastai_optim_sgd.h5", TRAINER_OPT_SGD, 1);
}

static void test_adamw_vs_fastai(void **state)
{
    run_fixture("fastai_optim_adam.h5", TRAINER_OPT_ADAMW, 1);
}

/* Each fixture tells the two decays apart: fastai's SGD under torch's L2 and torch's SGD
 * under fastai's true weight decay both miss (run_fixture with expect_mismatch). */
static void test_true_wd_differs_from_torch(void **state)
{
    run_fixture_ex("optim_sgd.h5", TRAINER_OPT_SGD, 1, 1);
    run_fixture_ex("fastai_optim_sgd.h5", TRAINER_OPT_SGD, 0, 1);
}

/* ---------------------------------------------------------------------------------------
 * Schedules against fastai's fit_one_cycle and fine_tune (tests/fixtures/fastai_sched.h5):
 * every group's lr and momentum at every step, 8 steps an epoch, 3 groups.
 */

/* Checks steps [t0, t0 + n) of a recording against one phase: max lr per group from hp and
 * a one-cycle schedule s over total steps. */
static void check_phase_sched(const float *lr, const float *mom, int t0, int n,
                              const io_hparam *hp, const io_schedule *cs, const char *what)
{
    float max_lr[3], base[3] = {0.9f, 0.9f, 0.9f};
    NN_CHECK(trainer_hparam_expand(max_lr, 3, hp->kind, hp->v, hp->n, what));
    trainer_sched s;
    trainer_sched_default(&s, TRAINER_SCHED_ONE_CYCLE);
    s.c.pct_start = cs->pct_start;
    s.c.div = cs->div;
    s.c.div_final = cs->div_final;
    memcpy(s.c.moms, cs->moms, sizeof s.c.moms);
    for (int t = 0; t < n; t++) {
        float l[3], m[3];
        trainer_sched_fill(l, m, &s, max_lr, base, 3, t, n);
        for (int g = 0; g < 3; g++) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s step %d group %d lr", what, t0 + t, g);
            check_close(l[g], lr[(t0 + t) * 3 + g], 1e-6, msg);
            snprintf(msg, sizeof msg, "%s step %d group %d mom", what, t0 + t, g);
            check_close(m[g], mom[(t0 + t) * 3 + g], 1e-6, msg);
        }
    }
}

static void test_sched_vs_fastai(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fastai_sched.h5", STRATA_FIXTURES);
    fx_file *fx;
    assert_int_equal(fx_open(&fx, path), 0);
    float *lr, *mom;
    int dims[4], nd;
    /* fit_one_cycle(2, slice(1e-4, 1e-2)): one phase of 16 steps, fastai's defaults. */
    assert_int_equal(fx_read_f32(fx, "/fit_one_cycle/lr", &lr, dims, &nd), 0);
    assert_true(dims[0] == 16 && dims[1] == 3);
    assert_int_equal(fx_read_f32(fx, "/fit_one_cycle/mom", &mom, NULL, NULL), 0);
    io_config c;
    NN_CHECK(io_config_default(&c, "cnn"));
    io_hparam sl = {IO_HP_SLICE2, {1e-4, 1e-2}, 2, 0};
    check_phase_sched(lr, mom, 0, 16, &sl, &c.schedule, "fit_one_cycle");
    free(lr);
    free(mom);
    /* fine_tune(2): the preset as the config expands it, 8 frozen steps then 16. */
    char cfgpath[1024];
    tu_tmp_path(cfgpath, sizeof cfgpath, "fine_tune.yaml");
    const char *yaml = "model: {arch: cnn}\ntrain: {preset: fine_tune, epochs: 2}\n";
    tu_write_file(cfgpath, yaml, strlen(yaml), 0);
    NN_CHECK(trainer_config_load(&c, cfgpath, NULL, 0));
    assert_int_equal(c.train.nphases, 2);
    assert_int_equal(fx_read_f32(fx, "/fine_tune/lr", &lr, dims, &nd), 0);
    assert_true(dims[0] == 24 && dims[1] == 3);
    assert_int_equal(fx_read_f32(fx, "/fine_tune/mom", &mom, NULL, NULL), 0);
    const io_phase *p0 = &c.train.phases[0], *p1 = &c.train.phases[1];
    check_phase_sched(lr, mom, 0, 8 * p0->epochs, &p0->lr, &p0->schedule, "fine_tune frozen");
    check_phase_sched(lr, mom, 8, 8 * p1->epochs, &p1->lr, &p1->schedule, "fine_tune unfrozen");
    print_message("[fastai_sched.h5] fit_one_cycle 16 steps, fine_tune 8 + 16 steps: every "
                  "group's lr and momentum within 1e-6\n");
    free(lr);
    free(mom);
    fx_close(fx);
}

/* ---------------------------------------------------------------------------------------
 * The learning-rate finder against fastai's LRFinder and suggestion functions
 * (tests/fixtures/fastai_lr_find.h5).
 */

static void check_curve(fx_file *fx, const char *name)
{
    char path[64], names[64], want[64] = "";
    float *losses_f, *sug_f, *pts_f, *lrs_f;
    int dims[4], nd;
    int64_t num_it;
    snprintf(path, sizeof path, "/%s/lrs", name);
    assert_int_equal(fx_read_f32(fx, path, &lrs_f, dims, &nd), 0);
    const int n = dims[0];
    snprintf(path, sizeof path, "/%s/losses", name);
    assert_int_equal(fx_read_f32(fx, path, &losses_f, NULL, NULL), 0);
    snprintf(path, sizeof path, "/%s/suggestions", name);
    assert_int_equal(fx_read_f32(fx, path, &sug_f, NULL, NULL), 0);
    snprintf(path, sizeof path, "/%s/points", name);
    assert_int_equal(fx_read_f32(fx, path, &pts_f, NULL, NULL), 0);
    /* The attributes live on the curve's group; the loader reads the root's only, so the
     * sweep length comes from the name (all curves but "short" are of num_it 100). */
    num_it = !strcmp(name, "short") ? 40 : 100;
    double *lrs = malloc(sizeof(double) * n), *losses = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        /* The fixture's lrs are fastai's, float64; re-derive them exactly from the sweep. */
        lrs[i] = trainer_lr_find_lr(1e-7, 10.0, i, (int)num_it);
        check_close(lrs[i], lrs_f[i], 1e-6, "curve lr");
        losses[i] = losses_f[i];
    }
    trainer_lr_suggestion s[TRAINER_NSUGGEST];
    NN_CHECK(trainer_lr_suggest(s, lrs, losses, n, (int)num_it));
    for (int k = 0; k < TRAINER_NSUGGEST; k++) {
        char what[96];
        snprintf(what, sizeof what, "%s: %s", name, s[k].name);
        strcat(want, k ? "," : "");
        strcat(want, s[k].name);
        assert_true(s[k].ok);
        check_close(s[k].lr, sug_f[k], 2e-6, what); /* fastai rounds lrs to float32 */
        check_close(s[k].at_lr, pts_f[2 * k], 2e-6, what);
        check_close(s[k].at_loss, pts_f[2 * k + 1], 1e-5, what);
        print_message("[fastai_lr_find.h5] %s: %s %.6g (fastai %.6g)\n", name, s[k].name,
                      s[k].lr, (double)sug_f[k]);
    }
    (void)names;
    free(lrs);
    free(losses);
    free(lrs_f);
    free(losses_f);
    free(sug_f);
    free(pts_f);
}

static void test_lr_find_vs_fastai(void **state)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fastai_lr_find.h5", STRATA_FIXTURES);
    fx_file *fx;
    assert_int_equal(fx_open(&fx, path), 0);
    float *sweep;
    int dims[4], nd;
    assert_int_equal(fx_read_f32(fx, "/sweep_lrs", &sweep, dims, &nd), 0);
    assert_int_equal(dims[0], 100);
    for (int k = 0; k < 100; k++)
        check_close(trainer_lr_find_lr(1e-7, 10.0, k, 100), sweep[k], 1e-6, "sweep lr");
    assert_true(fabs(trainer_lr_find_lr(1e-7, 10.0, 99, 100) - 8.3176377) < 1e-6); /* not 10 */
    const char *curves[] = {"full", "stopped", "noisy", "short"};
    for (int i = 0; i < 4; i++) check_curve(fx, curves[i]);
    /* Too few points for fastai's window: an error naming the counts, not a guess. */
    trainer_lr_suggestion s[TRAINER_NSUGGEST];
    const double l3[3] = {1e-3, 1e-2, 1e-1}, v3[3] = {1.0, 0.9, 2.0};
    assert_int_equal(trainer_lr_suggest(s, l3, v3, 3, 100), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "3 points recorded"));
    free(sweep);
    fx_close(fx);
}

/* ---------------------------------------------------------------------------------------
 * Optimizers: a non-finite result is reported, naming the group.
 */

/* For each optimizer (sgd, sgd with true_wd, nesterov, adamw): finite gradients step with 0;
 * an infinite gradient in group 1 gives NN_ERANGE naming group 1, the first bad parameter,
 * and every group still stepped (replicas stay identical). */
static void test_opt_step_nonfinite(void **state)
{
    (void)state;
    const struct { int type, nesterov, true_wd; float bad; } cases[] = {
        {TRAINER_OPT_SGD, 0, 0, INFINITY}, {TRAINER_OPT_SGD, 0, 1, NAN},
        {TRAINER_OPT_SGD, 1, 0, -INFINITY}, {TRAINER_OPT_ADAMW, 0, 0, INFINITY},
    };
    const float lr[3] = {0.01f, 0.01f, 0.01f}, mom[3] = {0.9f, 0.9f, 0.9f},
                wd[3] = {0.0f, 0.01f, 0.0f};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int widths[2] = {16, 8};
        nn_model *m = build_model("mlp", 1, 4, 4, 3, widths, 2);
        trainer_opt o;
        NN_CHECK(trainer_opt_init(&o, m, cases[c].type, cases[c].nesterov, 0.99, 1e-8, 0));
        o.true_wd = cases[c].true_wd;
        fill_grads(m, 1.0f);
        assert_int_equal(trainer_opt_step(&o, m, lr, mom, wd), 0);
        fill_grads(m, 1.0f);
        m->groups[1].grad_slab[m->groups[1].numel - 1] = cases[c].bad;
        float *p0 = copy_slab(m->groups[2].param_slab, m->groups[2].numel);
        assert_int_equal(trainer_opt_step(&o, m, lr, mom, wd), NN_ERANGE);
        tu_expect_msg("group 1:", "not finite after the update", "training diverged");
        assert_true(memcmp(m->groups[2].param_slab, p0, m->groups[2].numel * sizeof(float)));
        assert_int_equal(o.step[2], 2);
        free(p0);
        trainer_opt_free(&o);
        nn_model_free(m);
    }
}

/* ---------------------------------------------------------------------------------------
 * Optimizers: freezing and weight decay rules.
 */

/* A frozen group's parameters, state slabs and step counter stay exactly as they were,
 * even with garbage in its gradient slab; the other groups move. */
static void check_frozen(int type)
{
    const int widths[2] = {16, 8};
    nn_model *m = build_model("mlp", 1, 4, 4, 3, widths, 2);
    assert_int_equal(m->ngroups, 3);
    NN_CHECK(nn_model_freeze_to(m, 1, NULL));
    trainer_opt o;
    NN_CHECK(trainer_opt_init(&o, m, type, 0, 0.99, 1e-5, 0));
    const nn_group *g0 = &m->groups[0];
    /* Give the frozen group non-zero state, so "unchanged" is not just "still zero". */
    for (size_t i = 0; i < g0->numel; i++) {
        o.state1[0][i] = 0.25f;
        if (o.state2[0]) o.state2[0][i] = 0.5f;
    }
    float *p0 = copy_slab(g0->param_slab, g0->numel);
    float *s10 = copy_slab(o.state1[0], g0->numel);
    float *s20 = o.state2[0] ? copy_slab(o.state2[0], g0->numel) : NULL;
    float *p2 = copy_slab(m->groups[2].param_slab, m->groups[2].numel);
    const float lr[3] = {0.01f, 0.01f, 0.01f}, mom[3] = {0.9f, 0.9f, 0.9f},
                wd[3] = {0.1f, 0.1f, 0.1f};
    for (int k = 0; k < 2; k++) {
        fill_grads(m, 1.0f);
        trainer_opt_step(&o, m, lr, mom, wd);
    }
    assert_memory_equal(g0->param_slab, p0, g0->numel * sizeof(float));
    assert_memory_equal(o.state1[0], s10, g0->numel * sizeof(float));
    if (s20) assert_memory_equal(o.state2[0], s20, g0->numel * sizeof(float));
    assert_int_equal(o.step[0], 0);
    assert_int_equal(o.step_bn[0], 0);
    assert_int_equal(o.step[1], 2);
    assert_int_equal(o.step[2], 2);
    assert_true(memcmp(m->groups[2].param_slab, p2, m->groups[2].numel * sizeof(float)) != 0);
    free(p0);
    free(s10);
    free(s20);
    free(p2);
    trainer_opt_free(&o);
    trainer_opt_free(&o); /* a second free is harmless */
    nn_model_free(m);
}

static void test_frozen_group_sgd(void **state)
{
    check_frozen(TRAINER_OPT_SGD);
}

static void test_frozen_group_adamw(void **state)
{
    check_frozen(TRAINER_OPT_ADAMW);
}

/* With train_bn, BatchNorm in a frozen group trains (fastai v1/v2) and keeps its own AdamW
 * step count: after unfreezing, the group's other parameters take their first step with
 * bias correction for t = 1, as PyTorch's per-parameter step counts would have it. */
/* fastai's opt.clear_state() at a freeze change: after 3 frozen AdamW steps (the body's
 * BatchNorm training, train_bn) and a clear, every count is 0 and every state zero, so the
 * first unfrozen step equals a fresh optimizer's step from the same weights: the step
 * counts are then [1, 1, 1] as in fastai, not [1, 1, 4] (issue 18). */
static void test_clear_state_at_unfreeze(void **state)
{
    nn_model *m = build_model("cnn", 1, 4, 4, 3, NULL, 0);
    nn_model_set_train_bn(m, 1);
    NN_CHECK(nn_model_freeze_to(m, -1, NULL));
    trainer_opt o, fresh;
    NN_CHECK(trainer_opt_init(&o, m, TRAINER_OPT_ADAMW, 0, 0.99, 1e-5, 0));
    const float lr[3] = {0.01f, 0.01f, 0.01f}, mom[3] = {0.9f, 0.9f, 0.9f},
                wd[3] = {0.01f, 0.01f, 0.01f};
    for (int k = 0; k < 3; k++) {
        fill_grads(m, 1.0f + k);
        trainer_opt_step(&o, m, lr, mom, wd);
    }
    assert_int_equal(o.step[2], 3);
    NN_CHECK(nn_model_freeze_to(m, 0, NULL));
    trainer_opt_clear_state(&o, m);
    for (int g = 0; g < m->ngroups; g++) {
        assert_int_equal(o.step[g], 0);
        assert_int_equal(o.step_bn[g], 0);
        for (size_t i = 0; i < m->groups[g].numel; i++)
            assert_true(o.state1[g][i] == 0.0f && o.state2[g][i] == 0.0f);
    }
    /* A copy of the model's slabs, stepped by a fresh optimizer, must agree bitwise. */
    float *before[3];
    for (int g = 0; g < 3; g++) before[g] = copy_slab(m->groups[g].param_slab, m->groups[g].numel);
    fill_grads(m, 0.5f);
    trainer_opt_step(&o, m, lr, mom, wd);
    float *cleared[3];
    for (int g = 0; g < 3; g++) {
        assert_int_equal(o.step[g], 1);
        cleared[g] = copy_slab(m->groups[g].param_slab, m->groups[g].numel);
        memcpy(m->groups[g].param_slab, before[g], m->groups[g].numel * sizeof(float));
    }
    NN_CHECK(trainer_opt_init(&fresh, m, TRAINER_OPT_ADAMW, 0, 0.99, 1e-5, 0));
    trainer_opt_step(&fresh, m, lr, mom, wd);
    for (int g = 0; g < 3; g++) {
        assert_memory_equal(m->groups[g].param_slab, cleared[g], m->groups[g].numel * sizeof(float));
        free(before[g]);
        free(cleared[g]);
    }
    trainer_opt_free(&fresh);
    trainer_opt_free(&o);
    nn_model_free(m);
}

/* fastai v2 keeps the layers of frozen groups in training mode when train_bn is false (only
 * the parameters are frozen); bn_freeze (fastai's BnFreeze) leaves nn's eval mode. */
static void test_bn_mode_of_frozen_groups(void **state)
{
    nn_model *m = build_model("cnn", 1, 4, 4, 3, NULL, 0);
    nn_model_set_train_bn(m, 0);
    NN_CHECK(nn_model_freeze_to(m, -1, NULL));
    nn_layer *bn0 = m->body->kids[1], *bn1 = m->body->kids[m->groups[1].first + 1];
    assert_true(bn0->params[0].is_bn && bn1->params[0].is_bn);
    assert_int_equal(bn0->training, 0); /* nn's default: bn_freeze */
    nn_model_set_bn_freeze(m, 0);
    assert_int_equal(bn0->training, 1);
    assert_int_equal(bn1->training, 1);
    assert_int_equal(bn0->params[0].trainable, 0); /* no gradient, no bytes */
    assert_int_equal(bn0->params[1].trainable, 0);
    NN_CHECK(nn_model_freeze_to(m, -1, NULL)); /* the mode survives a freeze change */
    assert_int_equal(bn0->training, 1);
    nn_model_set_training(m, 0); /* evaluation: everything in eval */
    assert_int_equal(bn0->training, 0);
    nn_model_set_training(m, 1);
    assert_int_equal(bn0->training, 1);
    nn_model_set_bn_freeze(m, 1);
    assert_int_equal(bn0->training, 0);
    assert_int_equal(bn1->training, 0);
    nn_model_free(m);
}

static void test_train_bn_adamw_steps(void **state)
{
    nn_model *m = build_model("cnn", 1, 4, 4, 3, NULL, 0);
    assert_int_equal(m->ngroups, 3);
    nn_model_set_train_bn(m, 1);
    NN_CHECK(nn_model_freeze_to(m, 1, NULL));
    nn_layer *conv = m->body->kids[0], *bn = m->body->kids[1];
    assert_int_equal(bn->params[0].is_bn, 1);
    assert_int_equal(bn->params[0].trainable, 1);
    assert_int_equal(conv->params[0].trainable, 0);

    trainer_opt o;
    const double eps = 1e-8;
    NN_CHECK(trainer_opt_init(&o, m, TRAINER_OPT_ADAMW, 0, 0.99, eps, 0));
    const float lr[3] = {0.01f, 0.01f, 0.01f}, mom[3] = {0.9f, 0.9f, 0.9f},
                wd[3] = {0.0f, 0.0f, 0.0f};
    float *conv0 = copy_slab(conv->params[0].data, conv->params[0].numel);
    const float bn0 = bn->params[0].data[0];
    fill_grads(m, 1.0f);
    trainer_opt_step(&o, m, lr, mom, wd);
    assert_memory_equal(conv->params[0].data, conv0, conv->params[0].numel * sizeof(float));
    assert_true(bn->params[0].data[0] != bn0);
    assert_int_equal(o.step[0], 0);
    assert_int_equal(o.step_bn[0], 1);
    assert_int_equal(o.step[1], 1);
    assert_int_equal(o.step_bn[1], 1);
    assert_int_equal(o.step[2], 1);
    assert_int_equal(o.step_bn[2], 0); /* the linear head has no BatchNorm */

    /* Unfreeze: the conv's first AdamW step. With m = 0.1 g and v = 0.01 g^2 the corrected
     * moments are g and g^2, so the step is lr * g / (|g| + eps). */
    NN_CHECK(nn_model_freeze_to(m, 0, NULL));
    fill_grads(m, 1.0f);
    trainer_opt_step(&o, m, lr, mom, wd);
    assert_int_equal(o.step[0], 1);
    assert_int_equal(o.step_bn[0], 2);
    const nn_param *w = &conv->params[0];
    for (size_t i = 0; i < w->numel; i++) {
        double g = w->grad[i];
        double expect = conv0[i] - 0.01 * g / (fabs(g) + eps);
        check_close(w->data[i], expect, 1e-5, "first AdamW step after unfreezing");
    }
    free(conv0);
    trainer_opt_free(&o);
    nn_model_free(m);
}

/* Zero gradients isolate weight decay. SGD's first step: buf = wd p, p -= lr wd p; AdamW:
 * p *= 1 - lr wd and the moments stay zero. BatchNorm parameters and biases are decayed
 * only with decay_bn_bias. */
static void check_decay(int type, int decay_bn_bias)
{
    nn_model *m = build_model("cnn", 1, 4, 4, 3, NULL, 0);
    int nbn = 0, nbias = 0, nweights = 0;
    for (int g = 0; g < m->ngroups; g++) {
        for (size_t i = 0; i < m->groups[g].numel; i++) m->groups[g].param_slab[i] = 0.5f;
        for (int k = 0; k < m->groups[g].nparams; k++) {
            const nn_param *p = m->groups[g].params[k];
            nbn += p->is_bn;
            nbias += p->is_bias && !p->is_bn;
            nweights += !p->is_bn && !p->is_bias;
        }
    }
    assert_true(nbn > 0 && nbias > 0 && nweights > 0);
    nn_model_zero_grad(m);
    trainer_opt o;
    NN_CHECK(trainer_opt_init(&o, m, type, 0, 0.99, 1e-8, decay_bn_bias));
    const float lr[3] = {0.1f, 0.1f, 0.1f}, mom[3] = {0.9f, 0.9f, 0.9f},
                wd[3] = {0.01f, 0.01f, 0.01f};
    trainer_opt_step(&o, m, lr, mom, wd);
    const double decayed = 0.5 * (1.0 - 0.1 * 0.01); /* the same for both optimizers */
    for (int g = 0; g < m->ngroups; g++)
        for (int k = 0; k < m->groups[g].nparams; k++) {
            const nn_param *p = m->groups[g].params[k];
            const int decays = decay_bn_bias || !(p->is_bn || p->is_bias);
            for (size_t i = 0; i < p->numel; i++) {
                if (decays)
                    check_close(p->data[i], decayed, 1e-6, "decayed parameter");
                else
                    assert_true(p->data[i] == 0.5f);
            }
        }
    trainer_opt_free(&o);
    nn_model_free(m);
}

static void test_decay_rules(void **state)
{
    check_decay(TRAINER_OPT_SGD, 0);
    check_decay(TRAINER_OPT_SGD, 1);
    check_decay(TRAINER_OPT_ADAMW, 0);
    check_decay(TRAINER_OPT_ADAMW, 1);
}

static void test_opt_init_errors(void **state)
{
    nn_model *m = build_mlp8();
    trainer_opt o;
    assert_int_equal(trainer_opt_init(&o, m, 7, 0, 0.99, 1e-5, 0), NN_EINVAL);
    assert_non_null(strstr(nn_errmsg(), "type 7"));
    assert_null(o.state1[0]);
    assert_int_equal(trainer_opt_init(&o, m, TRAINER_OPT_ADAMW, 0, 1.0, 1e-5, 0), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "beta2 1"));
    assert_int_equal(trainer_opt_init(&o, m, TRAINER_OPT_ADAMW, 0, 0.99, -1.0, 0), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "eps -1"));
    NN_CHECK(trainer_opt_init(&o, m, TRAINER_OPT_SGD, 1, 0.0, 0.0, 0));
    assert_int_equal(trainer_opt_nstates(&o), 1);
    assert_non_null(o.state1[1]);
    assert_null(o.state2[1]);
    trainer_opt_free(&o);

    int t = 0;
    NN_CHECK(trainer_opt_parse_type(&t, "adamw"));
    assert_int_equal(t, TRAINER_OPT_ADAMW);
    NN_CHECK(trainer_opt_parse_type(&t, "sgd"));
    assert_int_equal(t, TRAINER_OPT_SGD);
    assert_int_equal(trainer_opt_parse_type(&t, "adam"), NN_EINVAL);
    assert_non_null(strstr(nn_errmsg(), "'adam'"));
    assert_string_equal(trainer_opt_name(TRAINER_OPT_ADAMW), "adamw");
    nn_model_free(m);
}

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata-test-optim");
}

int main(void)
{
    nn_blas_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparam_scalar_and_list),
        cmocka_unit_test(test_hparam_slices),
        cmocka_unit_test(test_hparam_one_group),
        cmocka_unit_test(test_hparam_fastai_forms),
        cmocka_unit_test(test_hparam_errors),
        cmocka_unit_test(test_sched_one_cycle),
        cmocka_unit_test(test_sched_others),
        cmocka_unit_test(test_sched_names_and_checks),
        cmocka_unit_test(test_sgd_vs_torch),
        cmocka_unit_test(test_sgd_nesterov_vs_torch),
        cmocka_unit_test(test_adamw_vs_torch),
        cmocka_unit_test(test_sgd_true_wd_vs_fastai),
        cmocka_unit_test(test_adamw_vs_fastai),
        cmocka_unit_test(test_true_wd_differs_from_torch),
        cmocka_unit_test(test_lr_find_vs_fastai),
        cmocka_unit_test(test_sched_vs_fastai),
        cmocka_unit_test(test_opt_step_nonfinite),
        cmocka_unit_test(test_frozen_group_sgd),
        cmocka_unit_test(test_frozen_group_adamw),
        cmocka_unit_test(test_train_bn_adamw_steps),
        cmocka_unit_test(test_clear_state_at_unfreeze),
        cmocka_unit_test(test_bn_mode_of_frozen_groups),
        cmocka_unit_test(test_decay_rules),
        cmocka_unit_test(test_opt_init_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
