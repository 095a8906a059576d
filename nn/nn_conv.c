/* Conv2d through im2col and OpenBLAS sgemm.
 *
 * Samples are processed in chunks of nb so that one GEMM sees at least about NN_CONV_COLS
 * output columns: late layers of a ResNet have 7x7 outputs, which alone would make GEMMs too
 * thin to run near the sgemm rate. Within a chunk the column matrix is (K, nb * P) with
 * K = Cin * k * k and P = Hout * Wout; a 1x1, stride-1, unpadded conv of one sample skips
 * im2col entirely.
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NN_CONV_COLS 1024

typedef struct {
    nn_layer base;
    int cin, cout, k, stride, pad, bias;
    int oh, ow;
    float *col, *tmp; /* (K, nb*P) columns and (Cout, nb*P) output/gradient staging */
    size_t colcap, tmpcap;
} nn_conv;

static int conv_infer(nn_layer *l, const int in[3])
{
    nn_conv *C = (nn_conv *)l;
    if (in[0] != C->cin)
        return nn_err(NN_ESHAPE, "Conv2d(%d, %d) got an input with %d channels", C->cin, C->cout,
                      in[0]);
    int oh = (in[1] + 2 * C->pad - C->k) / C->stride + 1;
    int ow = (in[2] + 2 * C->pad - C->k) / C->stride + 1;
    if (in[1] + 2 * C->pad < C->k || in[2] + 2 * C->pad < C->k || oh <= 0 || ow <= 0)
        return nn_err(NN_ESHAPE,
                      "Conv2d(%d, %d, kernel_size=%d, padding=%d): input %dx%d is smaller than the "
                      "kernel",
                      C->cin, C->cout, C->k, C->pad, in[1], in[2]);
    C->oh = oh;
    C->ow = ow;
    l->out_shape[0] = C->cout;
    l->out_shape[1] = oh;
    l->out_shape[2] = ow;
    return 0;
}

/* col (K, ld) at column offset: rows are (c, ki, kj), columns (oh, ow) of one sample.
 * x is one sample (Cin, H, W). */
static void im2col(float *col, int ld, const float *x, int cin, int H, int W, int k, int s, int p,
                   int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                /* Output columns whose input column is inside [0, W). */
                int lo = p - kj > 0 ? (p - kj + s - 1) / s : 0;
                int hi = (W - 1 + p - kj) / s; /* inclusive */
                if (hi > OW - 1) hi = OW - 1;
                for (int oy = 0; oy < OH; oy++) {
                    float *r = row + (size_t)oy * OW;
                    int iy = oy * s - p + ki;
                    if (iy < 0 || iy >= H || lo > hi) {
                        memset(r, 0, sizeof(float) * OW);
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * W;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    if (s == 1) {
                        memcpy(r + lo, xr + lo - p + kj, sizeof(float) * (hi - lo + 1));
                    } else {
                        for (int ox = lo; ox <= hi; ox++) r[ox] = xr[ox * s - p + kj];
                    }
                    for (int ox = hi + 1; ox < OW; ox++) r[ox] = 0.0f;
                }
            }
        }
    }
}

/* dx (Cin, H, W) += col2im(dcol): the adjoint of im2col. */
static void col2im(float *dx, const float *col, int ld, int cin, int H, int W, int k, int s, int p,
                   int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        float *dc = dx + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                int lo = p - kj > 0 ? (p - kj + s - 1) / s : 0;
                int hi = (W - 1 + p - kj) / s;
                if (hi > OW - 1) hi = OW - 1;
                if (lo > hi) continue;
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * s - p + ki;
                    if (iy < 0 || iy >= H) continue;
                    const float *r = row + (size_t)oy * OW;
                    float *dr = dc + (size_t)iy * W;
                    if (s == 1) {
                        float *d = dr + lo - p + kj;
                        for (int ox = lo; ox <= hi; ox++) d[ox - lo] += r[ox];
                    } else {
                        for (int ox = lo; ox <= hi; ox++) dr[ox * s - p + kj] += r[ox];
                    }
                }
            }
        }
    }
}

static int conv_reserve(nn_conv *C, size_t colneed, size_t tmpneed)
{
    if (colneed > C->colcap) {
        float *p = realloc(C->col, colneed * sizeof(float));
        if (!p) return nn_err(NN_ENOMEM, "Conv2d: cannot allocate %zu column floats", colneed);
        C->col = p;
        C->colcap = colneed;
    }
    if (tmpneed > C->tmpcap) {
        float *p = realloc(C->tmp, tmpneed * sizeof(float));
        if (!p) return nn_err(NN_ENOMEM, "Conv2d: cannot allocate %zu staging floats", tmpneed);
        C->tmp = p;
        C->tmpcap = tmpneed;
    }
    return 0;
}

static int conv_chunk(const nn_conv *C, int N)
{
    int P = C->oh * C->ow;
    int nb = (NN_CONV_COLS + P - 1) / P;
    return nb < 1 ? 1 : (nb > N ? N : nb);
}

static int conv_is_pointwise(const nn_conv *C)
{
    return C->k == 1 && C->stride == 1 && C->pad == 0;
}

/* The column matrix (K, cnt*P) of samples [n0, n0+cnt): x itself for a pointwise conv of one
 * sample, else im2col into C->col. */
static const float *conv_columns(nn_conv *C, const nn_tensor *x, int n0, int cnt)
{
    const int P = C->oh * C->ow, K = C->cin * C->k * C->k, ld = cnt * P;
    if (conv_is_pointwise(C) && cnt == 1) return x->data + (size_t)n0 * K * P;
    for (int s = 0; s < cnt; s++)
        im2col(C->col + (size_t)s * P, ld, x->data + (size_t)(n0 + s) * C->cin * x->h * x->w,
               C->cin, x->h, x->w, C->k, C->stride, C->pad, C->oh, C->ow);
    return C->col;
}

/* y (N, Cout, OH, OW) = W (Cout, K) im2col(x) (K, N*P) + b */
static int conv_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_conv *C = (nn_conv *)l;
    int rc = nn__layer_resize_y(l, x->n);
    if (rc) return rc;
    const int N = x->n, P = C->oh * C->ow, K = C->cin * C->k * C->k;
    const int nb = conv_chunk(C, N);
    const int direct = nb == 1; /* GEMM straight into y */
    rc = conv_reserve(C, conv_is_pointwise(C) && direct ? 0 : (size_t)K * nb * P,
                      direct ? 0 : (size_t)C->cout * nb * P);
    if (rc) return rc;
    const float *Wt = l->params[0].data;
    const float *b = C->bias ? l->params[1].data : NULL;
    for (int n0 = 0; n0 < N; n0 += nb) {
        int cnt = N - n0 < nb ? N - n0 : nb;
        int ld = cnt * P;
        const float *col = conv_columns(C, x, n0, cnt);
        float *out = direct ? l->y.data + (size_t)n0 * C->cout * P : C->tmp;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, C->cout, ld, K, 1.0f, Wt, K, col,
                    ld, 0.0f, out, ld);
        for (int s = 0; s < cnt; s++) {
            float *yn = l->y.data + (size_t)(n0 + s) * C->cout * P;
            for (int o = 0; o < C->cout; o++) {
                float *yo = yn + (size_t)o * P;
                if (!direct) memcpy(yo, out + (size_t)o * ld + (size_t)s * P, sizeof(float) * P);
                if (b) {
                    float bo = b[o];
                    for (int i = 0; i < P; i++) yo[i] += bo;
                }
            }
        }
    }
    return 0;
}

static int conv_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_conv *C = (nn_conv *)l;
    const nn_tensor *x = l->x;
    const int N = x->n, H = x->h, W = x->w, P = C->oh * C->ow, K = C->cin * C->k * C->k;
    const int nb = conv_chunk(C, N);
    const int direct = nb == 1;
    nn_param *Wp = &l->params[0];
    nn_param *bp = C->bias ? &l->params[1] : NULL;
    int rc;
    if (l->need_dx) {
        rc = nn__layer_resize_dx(l, N);
        if (rc) return rc;
        memset(l->dx.data, 0, sizeof(float) * nn_tensor_numel(&l->dx));
    }
    rc = conv_reserve(C, (size_t)K * nb * P, direct ? 0 : (size_t)C->cout * nb * P);
    if (rc) return rc;
    if (bp && bp->trainable) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < C->cout; o++) {
                const float *g = dy->data + ((size_t)n * C->cout + o) * P;
                float acc = 0.0f;
                for (int i = 0; i < P; i++) acc += g[i];
                bp->grad[o] += acc;
            }
    }
    for (int n0 = 0; n0 < N; n0 += nb) {
        int cnt = N - n0 < nb ? N - n0 : nb;
        int ld = cnt * P;
        /* Gather dy of the chunk into (Cout, cnt*P). */
        const float *g;
        if (direct) {
            g = dy->data + (size_t)n0 * C->cout * P;
        } else {
            for (int s = 0; s < cnt; s++)
                for (int o = 0; o < C->cout; o++)
                    memcpy(C->tmp + (size_t)o * ld + (size_t)s * P,
                           dy->data + ((size_t)(n0 + s) * C->cout + o) * P, sizeof(float) * P);
            g = C->tmp;
        }
        if (Wp->trainable) { /* dW (Cout, K) += g (Cout, ld) col^T (ld, K) */
            const float *col = conv_columns(C, x, n0, cnt);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C->cout, K, ld, 1.0f, g, ld, col,
                        ld, 1.0f, Wp->grad, K);
        }
        if (l->need_dx) { /* dcol (K, ld) = W^T (K, Cout) g (Cout, ld) */
            if (conv_is_pointwise(C) && cnt == 1) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, C->cout, 1.0f,
                            Wp->data, K, g, ld, 0.0f, l->dx.data + (size_t)n0 * K * P, ld);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, C->cout, 1.0f, Wp->data, K,
                        g, ld, 0.0f, C->col, ld);
            for (int s = 0; s < cnt; s++)
                col2im(l->dx.data + (size_t)(n0 + s) * C->cin * H * W, C->col + (size_t)s * P, ld,
                       C->cin, H, W, C->k, C->stride, C->pad, C->oh, C->ow);
        }
    }
    return 0;
}

static int conv_describe(const nn_layer *l, char *buf, size_t len)
{
    const nn_conv *C = (const nn_conv *)l;
    int n = snprintf(buf, len, "%d, %d, kernel_size=(%d, %d), stride=(%d, %d)", C->cin, C->cout,
                     C->k, C->k, C->stride, C->stride);
    if (C->pad && n >= 0 && (size_t)n < len)
        n += snprintf(buf + n, len - n, ", padding=(%d, %d)", C->pad, C->pad);
    if (!C->bias && n >= 0 && (size_t)n < len) n += snprintf(buf + n, len - n, ", bias=False");
    return n;
}

static void conv_free(nn_layer *l)
{
    nn_conv *C = (nn_conv *)l;
    free(C->col);
    free(C->tmp);
}

static const nn_layer_ops conv_ops = {
    .type = "Conv2d",
    .infer = conv_infer,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
    .free = conv_free,
};

int nn_conv2d_new(nn_layer **out, int in_ch, int out_ch, int kernel, int stride, int padding,
                  int bias)
{
    *out = NULL;
    if (in_ch <= 0 || out_ch <= 0 || kernel <= 0 || stride <= 0 || padding < 0)
        return nn_err(NN_ERANGE,
                      "Conv2d(%d, %d, kernel_size=%d, stride=%d, padding=%d): channels, kernel and "
                      "stride must be positive and padding non-negative",
                      in_ch, out_ch, kernel, stride, padding);
    nn_layer *l = nn__layer_alloc(sizeof(nn_conv), &conv_ops, bias ? 2 : 1, 0);
    if (!l) return nn_err(NN_ENOMEM, "cannot allocate Conv2d");
    nn_conv *C = (nn_conv *)l;
    C->cin = in_ch;
    C->cout = out_ch;
    C->k = kernel;
    C->stride = stride;
    C->pad = padding;
    C->bias = bias != 0;
    float bound = 1.0f / sqrtf((float)(in_ch * kernel * kernel)); /* PyTorch's default */
    int wshape[4] = {out_ch, in_ch, kernel, kernel};
    nn__param_decl(l, 0, "weight", 4, wshape, NN_INIT_UNIFORM, bound);
    if (bias) nn__param_decl(l, 1, "bias", 1, &out_ch, NN_INIT_UNIFORM, bound);
    *out = l;
    return 0;
}
