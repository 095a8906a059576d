/* Conv2d: the layer, which hands its arithmetic to its engine, and the reference engine's
 * kernels, im2col and OpenBLAS sgemm.
 *
 * Samples are processed in chunks of nb so that one GEMM sees at least about NN_CONV_COLS
 * output columns: late layers of a ResNet have 7x7 outputs, which alone would make GEMMs too
 * thin to run near the sgemm rate. Within a chunk the column matrix is (K, nb * P) with
 * K = Cin * k * k and P = Hout * Wout; a 1x1, stride-1, unpadded conv of one sample skips
 * im2col entirely.
 *
 * im2col and col2im have three paths that give bit-identical results: a general strided
 * gather, a stride-1 path that copies each output row as one clipped run, and, when a
 * stride-1 conv keeps the input size (padding (k-1)/2), a path that copies each column-matrix
 * row as one shifted run of the whole plane.
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The smallest number of output columns one GEMM should see; a chunk holds
 * ceil(NN_CONV_COLS / P) samples. 768 is just below one 28x28 sample (784 columns), so those
 * layers run one sample per GEMM, writing straight into y and reading straight from dy with no
 * staging copies; at 14x14 and 7x7 it gives chunks of 4 and 16 samples (784 columns). Measured
 * on the cnn step at batch 64 (docs/performance.md): 1024, which stages two 28x28 samples per
 * GEMM, was about 10 ms (8%) slower per step and 4-6 ms slower in the 28x28 layer; 196, 392 and
 * 512 were within the run-to-run noise of 768, which keeps the widest GEMMs of those.
 * bench/bench_nn.c mirrors this value as BENCH_CONV_COLS to time the same GEMM shapes: keep
 * the two equal. */
#define NN_CONV_COLS 768

typedef struct {
    nn_layer base;
    int cin, cout, k, stride, pad, bias;
    int oh, ow;
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

/* The output columns [*lo, *hi) of kernel column kj whose input column ox * s - p + kj lies
 * inside [0, W); empty (*lo == *hi) when there is none. */
static inline void col_range(int W, int kj, int s, int p, int OW, int *lo, int *hi)
{
    int first = p - kj > 0 ? (p - kj + s - 1) / s : 0;
    /* Last valid column is floor((W - 1 + p - kj) / s); C division truncates toward zero, so
     * a negative numerator (a kernel column right of the whole padded input) is handled
     * apart. */
    int num = W - 1 + p - kj;
    int end = num < 0 ? 0 : num / s + 1;
    if (end > OW) end = OW;
    if (first > end) first = end;
    *lo = first;
    *hi = end;
}

/* col (K, ld) at column offset: rows are (c, ki, kj), columns (oh, ow) of one sample.
 * x is one sample (Cin, H, W). The general path, for any stride. */
static void im2col(float *col, int ld, const float *x, int cin, int H, int W, int k, int s, int p,
                   int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                int lo, hi;
                col_range(W, kj, s, p, OW, &lo, &hi);
                for (int oy = 0; oy < OH; oy++) {
                    float *r = row + (size_t)oy * OW;
                    int iy = oy * s - p + ki;
                    if (iy < 0 || iy >= H) {
                        memset(r, 0, sizeof(float) * OW);
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * W;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    for (int ox = lo; ox < hi; ox++) r[ox] = xr[ox * s - p + kj];
                    for (int ox = hi; ox < OW; ox++) r[ox] = 0.0f;
                }
            }
        }
    }
}

/* dx (Cin, H, W) += col2im(dcol): the adjoint of im2col, for any stride. */
static void col2im(float *dx, const float *col, int ld, int cin, int H, int W, int k, int s, int p,
                   int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        float *dc = dx + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                int lo, hi;
                col_range(W, kj, s, p, OW, &lo, &hi);
                for (int oy = 0; oy < OH; oy++) {
                    int iy = oy * s - p + ki;
                    if (iy < 0 || iy >= H) continue;
                    const float *r = row + (size_t)oy * OW;
                    float *dr = dc + (size_t)iy * W;
                    for (int ox = lo; ox < hi; ox++) dr[ox * s - p + kj] += r[ox];
                }
            }
        }
    }
}

/* Stride 1: output column ox of kernel column kj reads input column ox + kj - p, so each
 * output row is one contiguous run of an input row with zeros on either side. The runs are
 * plain loops rather than one memcpy per output row, whose call costs as much as the copy
 * for rows of 7 to 28 floats. */
static void im2col_s1(float *col, int ld, const float *x, int cin, int H, int W, int k, int p,
                      int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                const int d = kj - p;
                int lo, hi;
                col_range(W, kj, 1, p, OW, &lo, &hi);
                for (int oy = 0; oy < OH; oy++) {
                    float *restrict r = row + (size_t)oy * OW;
                    int iy = oy - p + ki;
                    if (iy < 0 || iy >= H) {
                        for (int ox = 0; ox < OW; ox++) r[ox] = 0.0f;
                        continue;
                    }
                    const float *restrict xr = xc + (size_t)iy * W;
                    for (int ox = 0; ox < lo; ox++) r[ox] = 0.0f;
                    for (int ox = lo; ox < hi; ox++) r[ox] = xr[ox + d];
                    for (int ox = hi; ox < OW; ox++) r[ox] = 0.0f;
                }
            }
        }
    }
}

/* The adjoint of im2col_s1. For each ki the loops visit every input row once and add its k
 * kernel-column (kj) contributions back to back while the row is in cache. Every dx element
 * still receives its contributions in (ki, kj) order, as in col2im, so the sums are
 * bit-identical. */
static void col2im_s1(float *dx, const float *col, int ld, int cin, int H, int W, int k, int p,
                      int OH, int OW)
{
    for (int c = 0; c < cin; c++) {
        float *dc = dx + (size_t)c * H * W;
        for (int ki = 0; ki < k; ki++) {
            for (int oy = 0; oy < OH; oy++) {
                int iy = oy - p + ki;
                if (iy < 0 || iy >= H) continue;
                for (int kj = 0; kj < k; kj++) {
                    const float *restrict r =
                        col + (size_t)((c * k + ki) * k + kj) * ld + (size_t)oy * OW;
                    float *restrict dr = dc + (size_t)iy * W;
                    const int d = kj - p;
                    int lo, hi;
                    col_range(W, kj, 1, p, OW, &lo, &hi);
                    for (int ox = lo; ox < hi; ox++) dr[ox + d] += r[ox];
                }
            }
        }
    }
}

/* The flat run [*lo, *hi) of output positions i of a P = H * W plane whose input position
 * i + shift lies inside the plane. */
static inline void plane_range(int P, int shift, int *lo, int *hi)
{
    int first = shift < 0 ? -shift : 0, end = shift > 0 ? P - shift : P;
    if (first > P) first = P;
    if (end < first) end = first;
    *lo = first;
    *hi = end;
}

/* Zeroes, in every row of an H x W plane, the columns whose input column ox + d falls outside
 * [0, W): these are the positions that a flat shift by dy * W + d wraps into the neighbouring
 * row. */
static inline void zero_wrapped(float *row, int H, int W, int d)
{
    int x0 = d < 0 ? 0 : W - d, x1 = d < 0 ? -d : W;
    if (x0 < 0) x0 = 0;
    if (x1 > W) x1 = W;
    for (int oy = 0; oy < H; oy++)
        for (int ox = x0; ox < x1; ox++) row[(size_t)oy * W + ox] = 0.0f;
}

/* Stride 1 with output size equal to input size (padding (k-1)/2, every 3x3 conv of the cnn):
 * row (c, ki, kj) of the column matrix is the input plane shifted by (ki - p) * W + (kj - p)
 * in flat order, so it is one memcpy plus zeros at both ends, after which the |kj - p| columns
 * per row that the flat shift wrapped from the neighbouring row are zeroed. */
static void im2col_same(float *col, int ld, const float *x, int cin, int H, int W, int k, int p)
{
    const int P = H * W;
    for (int c = 0; c < cin; c++) {
        const float *xc = x + (size_t)c * P;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *row = col + (size_t)((c * k + ki) * k + kj) * ld;
                const int shift = (ki - p) * W + (kj - p);
                int lo, hi;
                plane_range(P, shift, &lo, &hi);
                memset(row, 0, sizeof(float) * lo);
                memcpy(row + lo, xc + lo + shift, sizeof(float) * (hi - lo));
                memset(row + hi, 0, sizeof(float) * (P - hi));
                if (kj != p) zero_wrapped(row, H, W, kj - p);
            }
        }
    }
}

/* The adjoint of im2col_same: zeroes the wrapped columns of each dcol row, then adds the row
 * to dx as one shifted contiguous run. This overwrites those entries of col, which the caller
 * passes as scratch (the dcol of the current chunk, not read again). Each dx element receives
 * its contributions in (ki, kj) order, as in col2im, plus exact zeros from the wrapped
 * positions; dx starts at +0, never becomes -0 by addition, and x + 0 == x, so the result is
 * bit-identical to col2im's. */
static void col2im_same(float *dx, float *col, int ld, int cin, int H, int W, int k, int p)
{
    const int P = H * W;
    for (int c = 0; c < cin; c++) {
        float *dc = dx + (size_t)c * P;
        for (int ki = 0; ki < k; ki++) {
            for (int kj = 0; kj < k; kj++) {
                float *restrict row = col + (size_t)((c * k + ki) * k + kj) * ld;
                const int shift = (ki - p) * W + (kj - p);
                int lo, hi;
                plane_range(P, shift, &lo, &hi);
                if (kj != p) zero_wrapped(row, H, W, kj - p);
                for (int i = lo; i < hi; i++) dc[i + shift] += row[i];
            }
        }
    }
}

/* ---- the reference kernels: im2col + sgemm ------------------------------------------- */

static int conv_is_pointwise(const nn_conv_desc *d)
{
    return d->k == 1 && d->stride == 1 && d->pad == 0;
}

/* im2col of one sample (Cin, H, W) into column offset col, by the fastest exact path. */
static void conv_im2col(const nn_conv_desc *d, float *col, int ld, const float *x)
{
    if (d->stride != 1)
        im2col(col, ld, x, d->cin, d->h, d->w, d->k, d->stride, d->pad, d->oh, d->ow);
    else if (d->oh == d->h && d->ow == d->w)
        im2col_same(col, ld, x, d->cin, d->h, d->w, d->k, d->pad);
    else
        im2col_s1(col, ld, x, d->cin, d->h, d->w, d->k, d->pad, d->oh, d->ow);
}

/* dx of one sample += col2im(col), by the path matching conv_im2col. col is scratch: the
 * same-size path overwrites part of it. */
static void conv_col2im(const nn_conv_desc *d, float *dx, float *col, int ld)
{
    if (d->stride != 1)
        col2im(dx, col, ld, d->cin, d->h, d->w, d->k, d->stride, d->pad, d->oh, d->ow);
    else if (d->oh == d->h && d->ow == d->w)
        col2im_same(dx, col, ld, d->cin, d->h, d->w, d->k, d->pad);
    else
        col2im_s1(dx, col, ld, d->cin, d->h, d->w, d->k, d->pad, d->oh, d->ow);
}

static int conv_chunk(const nn_conv_desc *d)
{
    int P = d->oh * d->ow;
    int nb = (NN_CONV_COLS + P - 1) / P;
    return nb < 1 ? 1 : (nb > d->n ? d->n : nb);
}

/* The scratch of one call, carved from the engine's workspace: the column matrix col
 * (K, nb*P), the staging tmp (Cout, nb*P) and the transposed weight gradient dwt (K, Cout),
 * each only when the call needs it. */
typedef struct {
    float *col, *tmp, *dwt;
} conv_scratch;

static int conv_scratch_get(nn_engine *e, conv_scratch *s, size_t ncol, size_t ntmp, size_t ndwt)
{
    const size_t pad = 16; /* keep every part 64-byte aligned */
    ncol = (ncol + pad - 1) / pad * pad;
    ntmp = (ntmp + pad - 1) / pad * pad;
    float *ws = nn__workspace(e, ncol + ntmp + ndwt);
    if (!ws) return NN_ENOMEM;
    s->col = ws;
    s->tmp = ws + ncol;
    s->dwt = ws + ncol + ntmp;
    return 0;
}

/* The column matrix (K, cnt*P) of samples [n0, n0+cnt): x itself for a pointwise conv of one
 * sample, else im2col into col. */
static const float *conv_columns(const nn_conv_desc *d, float *col, const float *x, int n0,
                                 int cnt)
{
    const int P = d->oh * d->ow, ld = cnt * P;
    const size_t xs = (size_t)d->cin * d->h * d->w;
    if (conv_is_pointwise(d) && cnt == 1) return x + (size_t)n0 * xs;
    for (int s = 0; s < cnt; s++) conv_im2col(d, col + (size_t)s * P, ld, x + (size_t)(n0 + s) * xs);
    return col;
}

/* y (N, Cout, OH, OW) = W (Cout, K) im2col(x) (K, N*P) + b */
int nn__ref_conv_forward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *y,
                         const nn_tensor *x, const float *w, const float *b)
{
    if (x->blk > 1) return nn_err(NN_ESTATE, "reference Conv2d got a channel-blocked input");
    int rc = nn__tensor_ensure(y, d->n, d->cout, d->oh, d->ow, 1);
    if (rc) return rc;
    const int N = d->n, P = d->oh * d->ow, K = d->cin * d->k * d->k;
    const int nb = conv_chunk(d);
    const int direct = nb == 1; /* GEMM straight into y */
    conv_scratch s;
    rc = conv_scratch_get(e, &s, conv_is_pointwise(d) && direct ? 0 : (size_t)K * nb * P,
                          direct ? 0 : (size_t)d->cout * nb * P, 0);
    if (rc) return rc;
    for (int n0 = 0; n0 < N; n0 += nb) {
        int cnt = N - n0 < nb ? N - n0 : nb;
        int ld = cnt * P;
        const float *col = conv_columns(d, s.col, x->data, n0, cnt);
        float *out = direct ? y->data + (size_t)n0 * d->cout * P : s.tmp;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d->cout, ld, K, 1.0f, w, K, col,
                    ld, 0.0f, out, ld);
        for (int j = 0; j < cnt; j++) {
            float *yn = y->data + (size_t)(n0 + j) * d->cout * P;
            for (int o = 0; o < d->cout; o++) {
                float *yo = yn + (size_t)o * P;
                if (!direct) memcpy(yo, out + (size_t)o * ld + (size_t)j * P, sizeof(float) * P);
                if (b) {
                    float bo = b[o];
                    for (int i = 0; i < P; i++) yo[i] += bo;
                }
            }
        }
    }
    return 0;
}

/* db (Cout) += the sum of dy over samples and positions. */
static void conv_bias_grad(const nn_conv_desc *d, float *db, const float *dy)
{
    const int P = d->oh * d->ow;
    for (int n = 0; n < d->n; n++)
        for (int o = 0; o < d->cout; o++) {
            const float *g = dy + ((size_t)n * d->cout + o) * P;
            float acc = 0.0f;
            for (int i = 0; i < P; i++) acc += g[i];
            db[o] += acc;
        }
}

int nn__ref_conv_backward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *dx,
                          float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                          const float *w)
{
    const int N = d->n, P = d->oh * d->ow, K = d->cin * d->k * d->k;
    const size_t xs = (size_t)d->cin * d->h * d->w;
    const int nb = conv_chunk(d);
    const int direct = nb == 1;
    int rc;
    if (dy->blk > 1 || (x && x->blk > 1))
        return nn_err(NN_ESTATE, "reference Conv2d got a channel-blocked tensor");
    if (dx) {
        rc = nn__tensor_ensure(dx, N, d->cin, d->h, d->w, 1);
        if (rc) return rc;
        memset(dx->data, 0, sizeof(float) * nn_tensor_numel(dx));
    }
    conv_scratch s;
    rc = conv_scratch_get(e, &s, (size_t)K * nb * P, direct ? 0 : (size_t)d->cout * nb * P,
                          dw ? (size_t)K * d->cout : 0);
    if (rc) return rc;
    if (db) conv_bias_grad(d, db, dy->data);
    for (int n0 = 0; n0 < N; n0 += nb) {
        int cnt = N - n0 < nb ? N - n0 : nb;
        int ld = cnt * P;
        /* Gather dy of the chunk into (Cout, cnt*P). */
        const float *g;
        if (direct) {
            g = dy->data + (size_t)n0 * d->cout * P;
        } else {
            for (int j = 0; j < cnt; j++)
                for (int o = 0; o < d->cout; o++)
                    memcpy(s.tmp + (size_t)o * ld + (size_t)j * P,
                           dy->data + ((size_t)(n0 + j) * d->cout + o) * P, sizeof(float) * P);
            g = s.tmp;
        }
        if (dw) {
            /* dW^T (K, Cout) (+)= col (K, ld) g^T (ld, Cout), summed over the chunks in dwt
             * and added transposed into the gradient after the loop. The direct product
             * dW (Cout, K) = g col^T has as few rows as the layer has output channels (32 in
             * the cnn's first layers), a shape OpenBLAS runs markedly slower than this one. */
            const float *col = conv_columns(d, s.col, x->data, n0, cnt);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, K, d->cout, ld, 1.0f, col, ld, g,
                        ld, n0 == 0 ? 0.0f : 1.0f, s.dwt, d->cout);
        }
        if (dx) { /* dcol (K, ld) = W^T (K, Cout) g (Cout, ld) */
            if (conv_is_pointwise(d) && cnt == 1) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, d->cout, 1.0f, w, K, g,
                            ld, 0.0f, dx->data + (size_t)n0 * K * P, ld);
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ld, d->cout, 1.0f, w, K, g, ld,
                        0.0f, s.col, ld);
            for (int j = 0; j < cnt; j++)
                conv_col2im(d, dx->data + (size_t)(n0 + j) * xs, s.col + (size_t)j * P, ld);
        }
    }
    if (dw && N > 0) { /* Gradients accumulate: grad (Cout, K) += dW^T transposed. */
        for (int o = 0; o < d->cout; o++) {
            float *go = dw + (size_t)o * K;
            for (int kk = 0; kk < K; kk++) go[kk] += s.dwt[(size_t)kk * d->cout + o];
        }
    }
    return 0;
}

/* ---- the layer ------------------------------------------------------------------------ */

static void conv_desc(const nn_conv *C, int n, nn_conv_desc *d)
{
    *d = (nn_conv_desc){.n = n,
                        .cin = C->cin,
                        .h = C->base.in_shape[1],
                        .w = C->base.in_shape[2],
                        .cout = C->cout,
                        .oh = C->oh,
                        .ow = C->ow,
                        .k = C->k,
                        .stride = C->stride,
                        .pad = C->pad,
                        .bias = C->bias};
}

static int conv_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_conv *C = (nn_conv *)l;
    nn_conv_desc d;
    conv_desc(C, x->n, &d);
    return l->eng->ops->conv_forward(l->eng, &l->plan, &d, &l->y, x, l->params[0].data,
                                     C->bias ? l->params[1].data : NULL);
}

static int conv_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_conv *C = (nn_conv *)l;
    nn_param *Wp = &l->params[0], *bp = C->bias ? &l->params[1] : NULL;
    nn_conv_desc d;
    conv_desc(C, l->x->n, &d);
    return l->eng->ops->conv_backward(l->eng, &l->plan, &d, l->need_dx ? &l->dx : NULL,
                                      Wp->trainable ? Wp->grad : NULL,
                                      bp && bp->trainable ? bp->grad : NULL, dy, l->x, Wp->data);
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

static const nn_layer_ops conv_ops = {
    .type = "Conv2d",
    .infer = conv_infer,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
    .blocked_ok = 1,
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
