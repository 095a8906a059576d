/* BatchNorm1d and BatchNorm2d: the layer, which hands its arithmetic to its engine, and the
 * reference engine's kernels, one implementation over (N, C, L) with L = H * W. A ReLU that
 * follows the layer in its container may be fused in (nn__bn_fuse_relu). Training mode
 * normalises with the batch's biased variance and moves the running statistics by
 * momentum 0.1 (running_var takes the unbiased variance, as PyTorch does); eval mode uses
 * the running statistics.
 *
 * The per-channel sums run over N rows of L contiguous floats. Each row is summed in blocks
 * of at most BN_BLOCK floats by BN_LANES independent float accumulators, which the compiler
 * turns into vector adds (a single double accumulator is one serial chain of scalar adds,
 * bound by the add latency rather than by memory bandwidth; 16 lanes measured slower than 8);
 * each block's partial sums are then added into a double. A float partial thus sums at most
 * BN_BLOCK / BN_LANES = 64 values whatever L is, so its rounding error stays below about 64
 * float epsilons (4e-6) of the magnitudes it sums, and the double total carries the rest. */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    nn_layer base;
    int features, dims;
    float eps, momentum;
    long long num_batches_tracked;
    float *mean, *var;    /* (C) statistics used by the last forward (var biased) */
    int used_batch_stats; /* whether the last forward normalised with batch statistics */
    int relu;             /* a ReLU that follows is fused in (nn__bn_fuse_relu) */
} nn_bn;

static int bn_infer(nn_layer *l, const int in[3])
{
    nn_bn *B = (nn_bn *)l;
    if (in[0] != B->features || (B->dims == 1 && in[1] != 1))
        return nn_err(NN_ESHAPE, "BatchNorm%dd(%d) got input of shape (%d, %d, %d)", B->dims,
                      B->features, in[0], in[1], in[2]);
    memcpy(l->out_shape, in, sizeof l->out_shape);
    return 0;
}

#define BN_LANES 8
#define BN_BLOCK 512 /* a multiple of BN_LANES */

/* sum(x[0..L)) */
static double row_sum(const float *restrict x, size_t L)
{
    double s = 0.0;
    size_t i = 0;
    while (i + BN_LANES <= L) {
        const size_t end = L - i > BN_BLOCK ? i + BN_BLOCK : L;
        float a[BN_LANES] = {0};
        for (; i + BN_LANES <= end; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) a[j] += x[i + j];
        for (int j = 0; j < BN_LANES; j++) s += a[j];
    }
    for (; i < L; i++) s += x[i];
    return s;
}

/* sum((x[0..L) - m)^2), the deviations taken in float around the float mean m. */
static double row_sqdev(const float *restrict x, size_t L, float m)
{
    double s = 0.0;
    size_t i = 0;
    while (i + BN_LANES <= L) {
        const size_t end = L - i > BN_BLOCK ? i + BN_BLOCK : L;
        float a[BN_LANES] = {0};
        for (; i + BN_LANES <= end; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) {
                float d = x[i + j] - m;
                a[j] += d * d;
            }
        for (int j = 0; j < BN_LANES; j++) s += a[j];
    }
    for (; i < L; i++) {
        double d = (double)x[i] - m;
        s += d * d;
    }
    return s;
}

/* *sg += sum(g[0..L)) and *sgx += sum(g[0..L) * (x[0..L) - m)). */
static void row_dy(const float *restrict x, const float *restrict g, size_t L, float m,
                   double *sg, double *sgx)
{
    double s = 0.0, t = 0.0;
    size_t i = 0;
    while (i + BN_LANES <= L) {
        const size_t end = L - i > BN_BLOCK ? i + BN_BLOCK : L;
        float a[BN_LANES] = {0}, b[BN_LANES] = {0};
        for (; i + BN_LANES <= end; i += BN_LANES)
            for (int j = 0; j < BN_LANES; j++) {
                a[j] += g[i + j];
                b[j] += g[i + j] * (x[i + j] - m);
            }
        for (int j = 0; j < BN_LANES; j++) {
            s += a[j];
            t += b[j];
        }
    }
    for (; i < L; i++) {
        s += g[i];
        t += (double)g[i] * ((double)x[i] - m);
    }
    *sg += s;
    *sgx += t;
}

/* The batch statistics of x (N, C, L): mean[c] and the biased var[c]. */
static void bn_stats(const nn_bn_desc *d, const float *x, float *mean, float *var)
{
    const int N = d->n, C = d->c;
    const size_t L = (size_t)d->h * d->w, M = (size_t)N * L;
    for (int c = 0; c < C; c++) {
        double s = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++) s += row_sum(x + ((size_t)n * C + c) * L, L);
        const double mu = s / (double)M;
        /* A second pass around the mean, not E[x^2] - E[x]^2, which cancels badly when
         * |mean| >> std. The deviations are taken from mf, the mean rounded to float;
         * since sum(x - mean) = 0, sum((x - mf)^2) = sum((x - mean)^2) + M (mean - mf)^2
         * exactly, so subtracting (mean - mf)^2 removes the rounding's bias. */
        const float mf = (float)mu;
        for (int n = 0; n < N; n++) s2 += row_sqdev(x + ((size_t)n * C + c) * L, L, mf);
        double v = s2 / (double)M - (mu - mf) * (mu - mf);
        mean[c] = mf;
        var[c] = (float)(v < 0.0 ? 0.0 : v);
    }
}

static inline float bn_invstd(float var, float eps)
{
    return (float)(1.0 / sqrt((double)var + eps));
}

int nn__ref_bn_forward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *y,
                       const nn_tensor *x, const float *gamma, const float *beta, float *mean,
                       float *var)
{
    if (x->blk > 1) return nn_err(NN_ESTATE, "reference BatchNorm got a channel-blocked input");
    const int N = d->n, C = d->c;
    const size_t L = (size_t)d->h * d->w;
    int rc = nn__tensor_ensure(y, N, C, d->h, d->w, 1);
    if (rc) return rc;
    if (d->training) bn_stats(d, x->data, mean, var);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            const float *xc = x->data + ((size_t)n * C + c) * L;
            float *yc = y->data + ((size_t)n * C + c) * L;
            float scale = gamma[c] * bn_invstd(var[c], d->eps);
            float shift = beta[c] - mean[c] * scale;
            for (size_t i = 0; i < L; i++) yc[i] = xc[i] * scale + shift;
            if (d->relu)
                for (size_t i = 0; i < L; i++) yc[i] = yc[i] > 0.0f ? yc[i] : 0.0f;
        }
    return 0;
}

int nn__ref_bn_backward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *dx,
                        float *dgamma, float *dbeta, const nn_tensor *dy, const nn_tensor *x,
                        const nn_tensor *y, const float *gamma, const float *beta,
                       const float *mean,
                        const float *var)
{
    if (x->blk > 1) return nn_err(NN_ESTATE, "reference BatchNorm got a channel-blocked input");
    const int N = d->n, C = d->c;
    const size_t L = (size_t)d->h * d->w;
    const double M = (double)N * (double)L;
    const float *gd = dy->data;
    if (d->relu) { /* the fused ReLU's backward: dy where the output is positive, else 0 */
        const size_t n = nn_tensor_numel(dy);
        float *m = nn__workspace(e, n);
        if (!m) return NN_ENOMEM;
        for (size_t i = 0; i < n; i++) m[i] = y->data[i] > 0.0f ? gd[i] : 0.0f;
        gd = m;
    }
    if (dx) {
        int rc = nn__tensor_ensure(dx, N, C, d->h, d->w, 1);
        if (rc) return rc;
    }
    for (int c = 0; c < C; c++) {
        double sdy = 0.0, sdyx = 0.0; /* sum(dy), sum(dy * xhat) */
        const float mu = mean[c], invstd = bn_invstd(var[c], d->eps);
        for (int n = 0; n < N; n++) {
            const size_t off = ((size_t)n * C + c) * L;
            row_dy(x->data + off, gd + off, L, mu, &sdy, &sdyx);
        }
        sdyx *= invstd; /* sum(dy * (x - mean)) * invstd */
        if (dgamma) dgamma[c] += (float)sdyx;
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        const float g = gamma[c] * invstd;
        if (d->training) {
            /* dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
            const float mdy = (float)(sdy / M), mdyx = (float)(sdyx / M);
            for (int n = 0; n < N; n++) {
                const float *xc = x->data + ((size_t)n * C + c) * L;
                const float *gc = gd + ((size_t)n * C + c) * L;
                float *dc = dx->data + ((size_t)n * C + c) * L;
                for (size_t i = 0; i < L; i++)
                    dc[i] = g * (gc[i] - mdy - (xc[i] - mu) * invstd * mdyx);
            }
        } else {
            for (int n = 0; n < N; n++) {
                const float *gc = gd + ((size_t)n * C + c) * L;
                float *dc = dx->data + ((size_t)n * C + c) * L;
                for (size_t i = 0; i < L; i++) dc[i] = g * gc[i];
            }
        }
    }
    return 0;
}

/* ---- the layer ------------------------------------------------------------------------ */

static void bn_desc(const nn_bn *B, const nn_tensor *x, int training, nn_bn_desc *d)
{
    *d = (nn_bn_desc){.n = x->n,
                      .c = B->features,
                      .h = x->h,
                      .w = x->w,
                      .training = training,
                      .relu = B->relu,
                      .eps = B->eps};
}

static int bn_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_bn *B = (nn_bn *)l;
    const int C = B->features;
    const size_t M = (size_t)x->n * x->h * x->w;
    float *rm = l->bufs[0].data, *rv = l->bufs[1].data;
    if (l->training && M < 2)
        return nn_err(NN_ESHAPE,
                      "BatchNorm%dd(%d) in training mode needs more than 1 value per channel, "
                      "got input (%d, %d, %d, %d)",
                      B->dims, C, x->n, x->c, x->h, x->w);
    B->used_batch_stats = l->training;
    if (!l->training) {
        memcpy(B->mean, rm, sizeof(float) * C);
        memcpy(B->var, rv, sizeof(float) * C);
    }
    nn_bn_desc d;
    bn_desc(B, x, l->training, &d);
    int rc = l->eng->ops->bn_forward(l->eng, &l->plan, &d, &l->y, x, l->params[0].data,
                                     l->params[1].data, B->mean, B->var);
    if (rc || !l->training) return rc;
    for (int c = 0; c < C; c++) { /* running_var takes the unbiased variance, as PyTorch's */
        rm[c] = (float)((1.0 - B->momentum) * rm[c] + B->momentum * (double)B->mean[c]);
        rv[c] = (float)((1.0 - B->momentum) * rv[c] +
                        B->momentum * (double)B->var[c] * (double)M / (double)(M - 1));
    }
    B->num_batches_tracked++;
    return 0;
}

static int bn_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_bn *B = (nn_bn *)l;
    nn_param *gp = &l->params[0], *bp = &l->params[1];
    nn_bn_desc d;
    bn_desc(B, l->x, B->used_batch_stats, &d);
    return l->eng->ops->bn_backward(l->eng, &l->plan, &d, l->need_dx ? &l->dx : NULL,
                                    gp->trainable ? gp->grad : NULL,
                                    bp->trainable ? bp->grad : NULL, dy, l->x, &l->y, gp->data,
                                    bp->data, B->mean, B->var);
}

static int bn_describe(const nn_layer *l, char *buf, size_t len)
{
    const nn_bn *B = (const nn_bn *)l;
    return snprintf(buf, len, "%d, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True",
                    B->features);
}

static void bn_free(nn_layer *l)
{
    nn_bn *B = (nn_bn *)l;
    free(B->mean);
    free(B->var);
}

static const nn_layer_ops bn1d_ops = {
    .type = "BatchNorm1d",
    .infer = bn_infer,
    .forward = bn_forward,
    .backward = bn_backward,
    .describe = bn_describe,
    .free = bn_free,
};

static const nn_layer_ops bn2d_ops = {
    .blocked_ok = 1,
    .type = "BatchNorm2d",
    .infer = bn_infer,
    .forward = bn_forward,
    .backward = bn_backward,
    .describe = bn_describe,
    .free = bn_free,
};

int nn_batchnorm_new(nn_layer **out, int features, int dims)
{
    *out = NULL;
    if (features <= 0 || (dims != 1 && dims != 2))
        return nn_err(NN_ERANGE, "BatchNorm%dd(%d): features must be positive and dims 1 or 2",
                      dims, features);
    nn_layer *l = nn__layer_alloc(sizeof(nn_bn), dims == 1 ? &bn1d_ops : &bn2d_ops, 2, 2);
    if (!l) return nn_err(NN_ENOMEM, "cannot allocate BatchNorm");
    nn_bn *B = (nn_bn *)l;
    B->features = features;
    B->dims = dims;
    B->eps = 1e-5f;
    B->momentum = 0.1f;
    B->mean = calloc((size_t)features, sizeof(float));
    B->var = calloc((size_t)features, sizeof(float));
    if (!B->mean || !B->var || nn__buffer_decl(l, 0, "running_mean", features, 0.0f) ||
        nn__buffer_decl(l, 1, "running_var", features, 1.0f)) {
        nn_layer_free(l);
        return nn_err(NN_ENOMEM, "cannot allocate BatchNorm%dd(%d)", dims, features);
    }
    nn__param_decl(l, 0, "weight", 1, &features, NN_INIT_CONST, 1.0f);
    nn__param_decl(l, 1, "bias", 1, &features, NN_INIT_CONST, 0.0f);
    l->params[0].is_bn = l->params[1].is_bn = 1;
    *out = l;
    return 0;
}

int nn_layer_is_batchnorm(const nn_layer *l)
{
    return l->ops == &bn1d_ops || l->ops == &bn2d_ops;
}

void nn__bn_fuse_relu(nn_layer *l, int on)
{
    if (nn_layer_is_batchnorm(l)) ((nn_bn *)l)->relu = on != 0;
}
