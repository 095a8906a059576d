/* Every layer's backward against central finite differences.
 *
 * For a layer f and a fixed random r, the scalar L = sum(f(x) * r) (accumulated in double)
 * has dL/dy = r. Backward from r gives dL/dx and dL/dparams; each is compared with
 * (L(v + h) - L(v - h)) / 2h at up to FD_SAMPLES elements per tensor, using the relative
 * error ||fd - analytic|| / max(||fd||, ||analytic||). Inputs are drawn away from the kinks
 * of ReLU and max pooling so the differences are meaningful in float32.
 *
 * Every test runs twice, once per engine (reference, cpu). On the cpu engine a layer that
 * takes the engine's channel-blocked layout gets its input in that layout (as inside a
 * network), and its output and input gradient are converted back to NCHW for the checks.
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

#include "nn/nn.h"

#define FD_SAMPLES 48
#define FD_H 1e-2
#define FD_TOL 1e-2

/* The engine of the group of tests running now (set by the group setup). */
static nn_engine *g_eng;

typedef struct {
    nn_layer *l;
    float *pslab, *gslab;
    nn_tensor x, r;      /* NCHW */
    nn_tensor xe, re, yn, dxn; /* x and r in the layer's layouts; y and dx back in NCHW */
    uint64_t drop_seed; /* reseeded before every forward so Dropout's mask is fixed */
    double h;           /* finite-difference step */
    int trim;           /* composites: ignore this many worst-matching samples (kinks) */
} fd_case;

/* Distinct values spaced well apart (no ties for max pooling, none near ReLU's kink). */
static void fill_spread(float *x, size_t n, nn_rng *rng)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)(0.05 * (double)(i + 1));
        x[i] = (i % 2) ? v : -v;
    }
    for (size_t i = n; i > 1; i--) { /* shuffle */
        size_t j = (size_t)(nn_rng_next(rng) % i);
        float t = x[i - 1];
        x[i - 1] = x[j];
        x[j] = t;
    }
    double scale = 2.0 / (0.05 * (double)n + 1e-9); /* keep |x| <= ~2 */
    if (scale < 1.0)
        for (size_t i = 0; i < n; i++) x[i] = (float)(x[i] * scale);
}

static double loss_of(fd_case *c)
{
    nn_rng rng;
    nn_rng_seed(&rng, c->drop_seed);
    nn_ctx ctx = {&rng};
    const int blk = c->l->ops->blocked_ok ? nn_engine_layout(g_eng) : 1;
    assert_int_equal(nn_tensor_convert(&c->xe, &c->x, blk), 0);
    int rc = nn_layer_forward(c->l, &c->xe, &ctx);
    if (rc) print_error("forward: %s\n", nn_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(nn_tensor_to_nchw(&c->yn, &c->l->y), 0);
    const nn_tensor *y = &c->yn;
    double s = 0.0;
    for (size_t i = 0; i < nn_tensor_numel(y); i++) s += (double)y->data[i] * c->r.data[i];
    return s;
}

/* Compares an analytic gradient with central differences of v at sampled positions. */
static double fd_check(fd_case *c, float *v, const float *analytic, size_t n, const char *what)
{
    size_t step = n > FD_SAMPLES ? n / FD_SAMPLES : 1;
    double d2[FD_SAMPLES + 2], a2[FD_SAMPLES + 2], f2[FD_SAMPLES + 2];
    int m = 0;
    for (size_t i = 0; i < n && m < FD_SAMPLES + 2; i += step, m++) {
        float keep = v[i];
        v[i] = keep + (float)c->h;
        double lp = loss_of(c);
        v[i] = keep - (float)c->h;
        double lm = loss_of(c);
        v[i] = keep;
        double fd = (lp - lm) / (2.0 * c->h);
        d2[m] = (fd - analytic[i]) * (fd - analytic[i]);
        a2[m] = (double)analytic[i] * analytic[i];
        f2[m] = fd * fd;
    }
    /* A sample whose perturbation crosses a ReLU kink inside a composite is not a
     * derivative; drop the c->trim samples that disagree most (never more than 1 in 10). */
    int trim = c->trim < m / 10 ? c->trim : m / 10;
    for (int t = 0; t < trim; t++) {
        int worst = 0;
        for (int k = 1; k < m; k++)
            if (d2[k] > d2[worst]) worst = k;
        d2[worst] = a2[worst] = f2[worst] = 0.0;
    }
    double num = 0.0, na = 0.0, nf = 0.0;
    for (int k = 0; k < m; k++) {
        num += d2[k];
        na += a2[k];
        nf += f2[k];
    }
    double den = sqrt(na > nf ? na : nf);
    double err = den > 1e-12 ? sqrt(num) / den : sqrt(num);
    if (err > FD_TOL)
        print_error("%s %s: relative error %.3e > %.1e\n", c->l->ops->type, what, err, FD_TOL);
    return err;
}

/* Builds the case for layer l on input (n, c, h, w), runs backward from r and checks dx and
 * every parameter gradient. training selects train/eval mode. Takes ownership of l. */
static void check_layer_h(nn_layer *l, int n, int ch, int h, int w, int training, double step)
{
    fd_case c = {0};
    c.l = l;
    c.h = step;
    c.trim = step < FD_H ? 2 : 0;
    c.drop_seed = 99;
    nn_rng rng;
    nn_rng_seed(&rng, 1234);
    int in[3] = {ch, h, w};
    int rc = nn_layer_bind_standalone(l, in, &rng, g_eng, &c.pslab, &c.gslab);
    if (rc) print_error("bind: %s\n", nn_errmsg());
    assert_int_equal(rc, 0);
    nn_layer_set_training(l, training);
    /* Perturb parameters away from their init so BatchNorm's affine terms matter. */
    size_t np = nn_layer_numel(l);
    for (size_t i = 0; i < np; i++) c.pslab[i] += (float)(0.2 * nn_rng_normal(&rng));
    assert_int_equal(nn_tensor_resize(&c.x, n, ch, h, w), 0);
    fill_spread(c.x.data, nn_tensor_numel(&c.x), &rng);
    const int *os = l->out_shape;
    assert_int_equal(nn_tensor_resize(&c.r, n, os[0], os[1], os[2]), 0);
    nn_rng_fill_normal(&rng, c.r.data, nn_tensor_numel(&c.r), 1.0f);

    /* Analytic gradients: forward again (BatchNorm running stats moved, irrelevant to y in
     * training mode), then backward. */
    loss_of(&c);
    memset(c.gslab, 0, np * sizeof(float));
    assert_int_equal(nn_tensor_convert(&c.re, &c.r, l->y.blk), 0);
    rc = nn_layer_backward(l, &c.re);
    if (rc) print_error("backward: %s\n", nn_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(nn_tensor_to_nchw(&c.dxn, nn_layer_grad_input(l)), 0);
    size_t nx = nn_tensor_numel(&c.x);
    float *dx = malloc(nx * sizeof(float));
    float *g = malloc((np ? np : 1) * sizeof(float));
    assert_non_null(dx);
    assert_non_null(g);
    memcpy(dx, c.dxn.data, nx * sizeof(float));
    memcpy(g, c.gslab, np * sizeof(float));

    assert_true(fd_check(&c, c.x.data, dx, nx, "dx") <= FD_TOL);
    if (np) assert_true(fd_check(&c, c.pslab, g, np, "dparams") <= FD_TOL);

    free(dx);
    free(g);
    nn_tensor_free(&c.x);
    nn_tensor_free(&c.r);
    nn_tensor_free(&c.xe);
    nn_tensor_free(&c.re);
    nn_tensor_free(&c.yn);
    nn_tensor_free(&c.dxn);
    nn_layer_free(l);
    free(c.pslab);
    free(c.gslab);
}

static void check_layer(nn_layer *l, int n, int ch, int h, int w, int training)
{
    check_layer_h(l, n, ch, h, w, training, FD_H);
}

static nn_layer *must(int rc, nn_layer *l)
{
    if (rc) print_error("constructor: %s\n", nn_errmsg());
    assert_int_equal(rc, 0);
    return l;
}

#define NEW(call)                                                                              \
    ({                                                                                         \
        nn_layer *l_ = NULL;                                                                   \
        int rc_ = call;                                                                        \
        must(rc_, l_);                                                                         \
    })

static void test_linear(void **state)
{
    check_layer(NEW(nn_linear_new(&l_, 7, 5, 1)), 3, 7, 1, 1, 1);
    check_layer(NEW(nn_linear_new(&l_, 1, 1, 0)), 1, 1, 1, 1, 1);
    check_layer(NEW(nn_linear_new(&l_, 33, 17, 1)), 5, 33, 1, 1, 1);
}

static void test_conv(void **state)
{
    check_layer(NEW(nn_conv2d_new(&l_, 3, 4, 3, 1, 1, 1)), 2, 3, 7, 6, 1);  /* same padding */
    check_layer(NEW(nn_conv2d_new(&l_, 3, 5, 3, 2, 1, 1)), 2, 3, 9, 7, 1);  /* stride 2, odd */
    check_layer(NEW(nn_conv2d_new(&l_, 4, 3, 1, 1, 0, 0)), 2, 4, 5, 5, 1);  /* pointwise */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 3, 5, 2, 2, 0)), 1, 2, 11, 8, 1); /* 5x5, no bias */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 2, 3, 1, 0, 1)), 3, 2, 5, 5, 1);  /* valid, chunked */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 2, 1, 2, 0, 1)), 2, 2, 7, 7, 1);  /* 1x1 stride 2 */
    /* A kernel wider than the padded input's last column with stride 3: the general path's
     * column range must not run past the row (it did, reading and writing out of bounds). */
    check_layer(NEW(nn_conv2d_new(&l_, 1, 2, 5, 3, 2, 1)), 2, 1, 4, 1, 1);
    check_layer(NEW(nn_conv2d_new(&l_, 2, 2, 5, 2, 2, 0)), 2, 2, 5, 2, 1);
}

/* The stride-1 paths of im2col/col2im on non-square odd sizes, each with enough samples for
 * several chunks (a chunk is ceil(768 / P) samples; the last one partial), so the transposed
 * weight gradient is summed over chunks; and layers whose sample alone fills a GEMM (P >= 768,
 * one sample per GEMM straight into y). */
static void test_conv_stride1(void **state)
{
    /* Padding 0 (clipped rows): 9x7 -> 7x5, P = 35, chunks of 22: 22 + 22 + 6. */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 3, 3, 1, 0, 1)), 50, 2, 9, 7, 1);
    /* Padding 1, same size (whole-plane shifts): 7x5, P = 35. */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 3, 3, 1, 1, 0)), 50, 2, 7, 5, 1);
    /* 5x5, padding 2, same size: 7x9, P = 63, chunks of 13: 13 + 13 + 13 + 1. */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 3, 5, 1, 2, 1)), 40, 2, 7, 9, 1);
    /* 5x5, padding 1 (neither valid nor same): 9x7 -> 7x5. */
    check_layer(NEW(nn_conv2d_new(&l_, 2, 2, 5, 1, 1, 1)), 50, 2, 9, 7, 1);
    /* Padding wider than the input: 3x1 with a 5x5 kernel and padding 3 -> 5x3. */
    check_layer(NEW(nn_conv2d_new(&l_, 1, 2, 5, 1, 3, 1)), 3, 1, 3, 1, 1);
    /* One sample per GEMM: 29x27 with padding 1 (P = 783) and a pointwise 28x28 (P = 784). */
    check_layer(NEW(nn_conv2d_new(&l_, 1, 2, 3, 1, 1, 1)), 3, 1, 29, 27, 1);
    check_layer(NEW(nn_conv2d_new(&l_, 3, 2, 1, 1, 0, 1)), 2, 3, 28, 28, 1);
}

/* Many samples with small outputs: several im2col chunks, the last one partial. */
static void test_conv_chunks(void **state)
{
    check_layer(NEW(nn_conv2d_new(&l_, 1, 2, 3, 1, 1, 1)), 70, 1, 4, 4, 1);
    check_layer(NEW(nn_conv2d_new(&l_, 2, 2, 1, 1, 0, 1)), 70, 2, 3, 3, 1);
}

static void test_batchnorm(void **state)
{
    check_layer(NEW(nn_batchnorm_new(&l_, 3, 2)), 4, 3, 5, 3, 1); /* training: batch stats */
    check_layer(NEW(nn_batchnorm_new(&l_, 3, 2)), 2, 3, 4, 4, 0); /* eval: running stats */
    check_layer(NEW(nn_batchnorm_new(&l_, 5, 1)), 6, 5, 1, 1, 1);
    check_layer(NEW(nn_batchnorm_new(&l_, 5, 1)), 6, 5, 1, 1, 0);
    /* L = 1 in BatchNorm2d, and L = 37 * 29 = 1073: two full blocks of 512 of the vectorised
     * row sums, a partial block and a scalar tail of 1. */
    check_layer(NEW(nn_batchnorm_new(&l_, 3, 2)), 5, 3, 1, 1, 1);
    check_layer(NEW(nn_batchnorm_new(&l_, 2, 2)), 3, 2, 37, 29, 1);
    check_layer(NEW(nn_batchnorm_new(&l_, 2, 2)), 3, 2, 37, 29, 0);
}

static void test_activations(void **state)
{
    check_layer(NEW(nn_relu_new(&l_)), 2, 3, 4, 5, 1);
    check_layer(NEW(nn_flatten_new(&l_)), 2, 3, 4, 5, 1);
    check_layer(NEW(nn_identity_new(&l_)), 2, 3, 2, 2, 1);
    check_layer(NEW(nn_dropout_new(&l_, 0.3f)), 3, 4, 3, 3, 1);
    check_layer(NEW(nn_dropout_new(&l_, 0.3f)), 3, 4, 3, 3, 0);
}

static void test_pools(void **state)
{
    check_layer(NEW(nn_maxpool2d_new(&l_, 2, 2, 0)), 2, 3, 8, 7, 1);
    check_layer(NEW(nn_maxpool2d_new(&l_, 2, 2, 0)), 2, 3, 7, 9, 1); /* last row, column dropped */
    check_layer(NEW(nn_maxpool2d_new(&l_, 3, 2, 1)), 2, 2, 9, 8, 1);
    check_layer(NEW(nn_avgpool2d_new(&l_, 3, 2, 1)), 2, 2, 9, 8, 1);
    check_layer(NEW(nn_avgpool2d_new(&l_, 2, 2, 0)), 2, 3, 7, 6, 1);
    check_layer(NEW(nn_adaptive_avgpool2d_new(&l_, 3, 2)), 2, 3, 7, 5, 1);
    check_layer(NEW(nn_adaptive_avgpool2d_new(&l_, 1, 1)), 2, 3, 4, 4, 1);
    check_layer(NEW(nn_adaptive_maxpool2d_new(&l_, 2, 3)), 2, 2, 5, 7, 1);
    check_layer(NEW(nn_adaptive_concatpool2d_new(&l_, 1)), 2, 4, 5, 5, 1);
    check_layer(NEW(nn_adaptive_concatpool2d_new(&l_, 2)), 2, 2, 5, 3, 1);
}

/* Composites put a ReLU right after a BatchNorm, whose outputs cluster around the kink;
 * a low-variance channel also makes the loss strongly curved (at a step of 1e-3 the
 * differences are measurably biased, at 4e-4 they converge). So they use a smaller step and
 * ignore the two samples (of about 48) that disagree most. The same blocks are also checked
 * element by element against PyTorch in test_nn_fixtures. */
#define FD_H_COMPOSITE 4e-4

static void test_blocks(void **state)
{
    for (int training = 0; training <= 1; training++) {
        check_layer_h(NEW(nn_basicblock_new(&l_, 4, 6, 2)), 3, 4, 7, 7, training, FD_H_COMPOSITE);
        check_layer_h(NEW(nn_basicblock_new(&l_, 4, 4, 1)), 2, 4, 5, 5, training, FD_H_COMPOSITE);
        check_layer_h(NEW(nn_bottleneck_new(&l_, 8, 2, 2)), 2, 8, 5, 5, training, FD_H_COMPOSITE);
        check_layer_h(NEW(nn_bottleneck_new(&l_, 8, 2, 1)), 2, 8, 4, 4, training, FD_H_COMPOSITE);
    }
}

static void test_sequential(void **state)
{
    nn_layer *k[7];
    assert_int_equal(nn_conv2d_new(&k[0], 2, 3, 3, 1, 1, 0), 0);
    assert_int_equal(nn_batchnorm_new(&k[1], 3, 2), 0);
    assert_int_equal(nn_relu_new(&k[2]), 0);
    assert_int_equal(nn_maxpool2d_new(&k[3], 2, 2, 0), 0);
    assert_int_equal(nn_flatten_new(&k[4]), 0);
    assert_int_equal(nn_linear_new(&k[5], 3 * 3 * 2, 4, 1), 0);
    assert_int_equal(nn_dropout_new(&k[6], 0.2f), 0);
    check_layer_h(NEW(nn_sequential_new(&l_, k, 7)), 3, 2, 6, 5, 1, FD_H_COMPOSITE);
}

/* Losses: the same central differences on the logits. */
static void test_losses(void **state)
{
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    nn_tensor z = {0}, dz = {0};
    assert_int_equal(nn_tensor_resize(&z, 4, 6, 1, 1), 0);
    nn_rng_fill_normal(&rng, z.data, 24, 2.0f);
    int32_t labels[4] = {0, 5, 2, 2};
    float loss, lp, lm;
    int correct;
    assert_int_equal(nn_cross_entropy(&loss, &dz, &correct, &z, labels), 0);
    double num = 0, den = 0;
    for (int i = 0; i < 24; i++) {
        float keep = z.data[i];
        z.data[i] = keep + 1e-2f;
        nn_cross_entropy(&lp, NULL, NULL, &z, labels);
        z.data[i] = keep - 1e-2f;
        nn_cross_entropy(&lm, NULL, NULL, &z, labels);
        z.data[i] = keep;
        double fd = ((double)lp - lm) / 2e-2;
        num += (fd - dz.data[i]) * (fd - dz.data[i]);
        den += fd * fd;
    }
    assert_true(sqrt(num / den) < FD_TOL);
    float target[24];
    nn_rng_fill_normal(&rng, target, 24, 1.0f);
    assert_int_equal(nn_mse(&loss, &dz, &z, target), 0);
    num = den = 0;
    for (int i = 0; i < 24; i++) {
        float keep = z.data[i];
        z.data[i] = keep + 1e-2f;
        nn_mse(&lp, NULL, &z, target);
        z.data[i] = keep - 1e-2f;
        nn_mse(&lm, NULL, &z, target);
        z.data[i] = keep;
        double fd = ((double)lp - lm) / 2e-2;
        num += (fd - dz.data[i]) * (fd - dz.data[i]);
        den += fd * fd;
    }
    assert_true(sqrt(num / den) < FD_TOL);
    /* A label out of range is an error naming it, not a read out of bounds. */
    labels[1] = 6;
    assert_int_equal(nn_cross_entropy(&loss, &dz, NULL, &z, labels), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "label 6"));
    nn_tensor_free(&z);
    nn_tensor_free(&dz);
}

/* Bad sizes and shape mismatches are errors that name the value. */
static void test_bad_sizes(void **state)
{
    nn_layer *l = NULL;
    assert_int_equal(nn_linear_new(&l, 0, 5, 1), NN_ERANGE);
    assert_null(l);
    assert_non_null(strstr(nn_errmsg(), "in_features=0"));
    assert_int_equal(nn_conv2d_new(&l, 3, -2, 3, 1, 1, 1), NN_ERANGE);
    assert_non_null(strstr(nn_errmsg(), "-2"));
    assert_int_equal(nn_conv2d_new(&l, 3, 4, 3, 0, 1, 1), NN_ERANGE);
    assert_int_equal(nn_maxpool2d_new(&l, 2, 2, 3), NN_ERANGE);
    assert_int_equal(nn_dropout_new(&l, 1.5f), NN_ERANGE);
    assert_int_equal(nn_batchnorm_new(&l, 0, 2), NN_ERANGE);

    /* Linear(10 -> 5) then Linear(6 -> 3): the second layer's input does not match. */
    nn_layer *k[2];
    assert_int_equal(nn_linear_new(&k[0], 10, 5, 1), 0);
    assert_int_equal(nn_linear_new(&k[1], 6, 3, 1), 0);
    assert_int_equal(nn_sequential_new(&l, k, 2), 0);
    int in[3] = {10, 1, 1};
    assert_int_equal(nn_layer_infer(l, in), NN_ESHAPE);
    assert_non_null(strstr(nn_errmsg(), "in_features=6"));
    assert_non_null(strstr(nn_errmsg(), "(5, 1, 1)"));
    nn_layer_free(l);

    /* A conv whose kernel is larger than its padded input. */
    assert_int_equal(nn_conv2d_new(&l, 1, 1, 5, 1, 0, 1), 0);
    int small[3] = {1, 3, 3};
    assert_int_equal(nn_layer_infer(l, small), NN_ESHAPE);
    assert_non_null(strstr(nn_errmsg(), "3x3"));
    /* Forward with the wrong channel count is refused, not read out of bounds. */
    int ok[3] = {1, 6, 6};
    assert_int_equal(nn_layer_infer(l, ok), 0);
    nn_tensor x = {0};
    assert_int_equal(nn_tensor_resize(&x, 1, 2, 6, 6), 0);
    nn_ctx ctx = {NULL};
    assert_int_equal(nn_layer_forward(l, &x, &ctx), NN_ESHAPE);
    nn_tensor_free(&x);
    nn_layer_free(l);

    /* Training-mode BatchNorm with one value per channel is refused (as in PyTorch). */
    float *ps, *gs;
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    assert_int_equal(nn_batchnorm_new(&l, 3, 1), 0);
    int bin[3] = {3, 1, 1};
    assert_int_equal(nn_layer_bind_standalone(l, bin, &rng, g_eng, &ps, &gs), 0);
    assert_int_equal(nn_tensor_resize(&x, 1, 3, 1, 1), 0);
    assert_int_equal(nn_layer_forward(l, &x, &ctx), NN_ESHAPE);
    assert_non_null(strstr(nn_errmsg(), "more than 1 value"));
    nn_tensor_free(&x);
    nn_layer_free(l);
    free(ps);
    free(gs);
}

/* BatchNorm running statistics: momentum 0.1 and the unbiased variance. */
static void test_bn_running_stats(void **state)
{
    nn_layer *l;
    float *ps, *gs;
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    assert_int_equal(nn_batchnorm_new(&l, 1, 1), 0);
    int in[3] = {1, 1, 1};
    assert_int_equal(nn_layer_bind_standalone(l, in, &rng, g_eng, &ps, &gs), 0);
    nn_tensor x = {0};
    assert_int_equal(nn_tensor_resize(&x, 4, 1, 1, 1), 0);
    float v[4] = {1, 2, 3, 6}; /* mean 3, biased var 3.5, unbiased 14/3 */
    memcpy(x.data, v, sizeof v);
    nn_ctx ctx = {NULL};
    assert_int_equal(nn_layer_forward(l, &x, &ctx), 0);
    assert_float_equal(l->bufs[0].data[0], 0.9f * 0.0f + 0.1f * 3.0f, 1e-6);
    assert_float_equal(l->bufs[1].data[0], 0.9f * 1.0f + 0.1f * (14.0f / 3.0f), 1e-6);
    /* y = (x - 3) / sqrt(3.5 + 1e-5) with weight 1, bias 0 */
    assert_float_equal(l->y.data[3], 3.0f / sqrtf(3.5f + 1e-5f), 1e-5);
    nn_layer_set_training(l, 0);
    assert_int_equal(nn_layer_forward(l, &x, &ctx), 0);
    float rm = l->bufs[0].data[0], rv = l->bufs[1].data[0];
    assert_float_equal(l->y.data[0], (1.0f - rm) / sqrtf(rv + 1e-5f), 1e-5);
    nn_tensor_free(&x);
    nn_layer_free(l);
    free(ps);
    free(gs);
}

static int setup_reference(void **state)
{
    return nn_engine_new(&g_eng, NN_ENGINE_REFERENCE);
}

static int setup_cpu(void **state)
{
    return nn_engine_new(&g_eng, NN_ENGINE_CPU);
}

static int teardown_engine(void **state)
{
    nn_engine_free(g_eng);
    g_eng = NULL;
    return 0;
}

int main(void)
{
    nn_blas_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),      cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_chunks), cmocka_unit_test(test_conv_stride1),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_pools),
        cmocka_unit_test(test_blocks),      cmocka_unit_test(test_sequential),
        cmocka_unit_test(test_losses),      cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_bn_running_stats),
    };
    int failed = cmocka_run_group_tests_name("reference engine", tests, setup_reference,
                                             teardown_engine);
    failed += cmocka_run_group_tests_name("cpu engine", tests, setup_cpu, teardown_engine);
    return failed;
}
