/* Pooling: MaxPool2d, AvgPool2d (count_include_pad, PyTorch's default), AdaptiveAvgPool2d,
 * AdaptiveMaxPool2d, and fastai's AdaptiveConcatPool2d (max and average side by side).
 * MaxPool2d and AvgPool2d hand their arithmetic to the engine (the reference engine's kernels
 * are here); the adaptive pools, which sit in heads on small plain tensors, run the same
 * loops themselves. */
#include "nn/nn_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

enum { POOL_MAX, POOL_AVG, POOL_AMAX, POOL_AAVG };

typedef struct {
    nn_layer base;
    int kind;
    int k, s, p;    /* fixed windows */
    int oh, ow;     /* adaptive: requested output size; fixed: computed */
    int scalar_repr; /* adaptive: print output_size=1 rather than (1, 1), as fastai builds it */
    int *argmax;    /* adaptive max: flat input index per output element */
    size_t argcap;
} nn_pool;

static int pool_infer(nn_layer *l, const int in[3])
{
    nn_pool *P = (nn_pool *)l;
    if (P->kind == POOL_MAX || P->kind == POOL_AVG) {
        if (in[1] + 2 * P->p < P->k || in[2] + 2 * P->p < P->k)
            return nn_err(NN_ESHAPE, "%s(kernel_size=%d, padding=%d): input %dx%d is too small",
                          l->ops->type, P->k, P->p, in[1], in[2]);
        P->oh = (in[1] + 2 * P->p - P->k) / P->s + 1;
        P->ow = (in[2] + 2 * P->p - P->k) / P->s + 1;
    }
    l->out_shape[0] = in[0];
    l->out_shape[1] = P->oh;
    l->out_shape[2] = P->ow;
    return 0;
}

/* The windows of one pooling: fixed (k, s, p) or adaptive (k == 0) onto an oh x ow output. */
typedef struct {
    int is_max;
    int k, s, p;
    int oh, ow;
} pool_win;

/* Adaptive windows, as PyTorch computes them: [floor(i*H/O), ceil((i+1)*H/O)). */
static inline int ad_start(int i, int in, int out)
{
    return (int)(((long)i * in) / out);
}
static inline int ad_end(int i, int in, int out)
{
    return (int)(((long)(i + 1) * in + out - 1) / out);
}

/* The input window [y0, y1) x [x0, x1) of output (oy, ox) and the divisor for averages:
 * fixed windows clipped to the input (padding counts in the divisor, PyTorch's
 * count_include_pad), or adaptive windows. */
static inline float pool_window(const pool_win *P, int oy, int ox, int H, int W, int *y0, int *y1,
                                int *x0, int *x1)
{
    if (P->k > 0) {
        *y0 = oy * P->s - P->p;
        *x0 = ox * P->s - P->p;
        *y1 = *y0 + P->k;
        *x1 = *x0 + P->k;
        if (*y0 < 0) *y0 = 0;
        if (*x0 < 0) *x0 = 0;
        if (*y1 > H) *y1 = H;
        if (*x1 > W) *x1 = W;
        return (float)(P->k * P->k);
    }
    *y0 = ad_start(oy, H, P->oh);
    *y1 = ad_end(oy, H, P->oh);
    *x0 = ad_start(ox, W, P->ow);
    *x1 = ad_end(ox, W, P->ow);
    return (float)((*y1 - *y0) * (*x1 - *x0));
}

/* MaxPool2d(kernel 2, stride 2, no padding), the pooling of the cnn: windows never overlap
 * and never leave the input (an odd last row or column is dropped), so each output reads four
 * fixed neighbours with no window arithmetic. The comparisons are the generic loop's, in its
 * order: a running best that starts at -FLT_MAX and is replaced only by a strictly greater
 * value, so the first maximum in row-major window order wins, NaNs never do, and an all -inf
 * or all-NaN window gives -FLT_MAX at its first element, exactly as there.
 *
 * The window offset k is selected with an all-ones/all-zeros mask t rather than `t ? K : k`:
 * gcc turns the latter into data-dependent branches, which mispredict on real activations
 * (measured slower than the generic loop), whereas the masks let it vectorise the loop with
 * compares and blends (about 3x faster than the generic loop). */
static void maxpool_2x2(const float *x, float *y, int *arg, size_t planes, int H, int W, int OH,
                        int OW)
{
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *restrict yp = y + pl * OH * OW;
        int *restrict ap = arg + pl * OH * OW;
        for (int oy = 0; oy < OH; oy++) {
            const float *restrict r0 = xp + (size_t)(2 * oy) * W, *restrict r1 = r0 + W;
            const int base = 2 * oy * W;
            for (int ox = 0; ox < OW; ox++) {
                const float v0 = r0[2 * ox], v1 = r0[2 * ox + 1];
                const float v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
                float m = v0 > -FLT_MAX ? v0 : -FLT_MAX;
                int k = 0, t;
                t = -(v1 > m);
                m = v1 > m ? v1 : m;
                k = (k & ~t) | (1 & t);
                t = -(v2 > m);
                m = v2 > m ? v2 : m;
                k = (k & ~t) | (W & t);
                t = -(v3 > m);
                m = v3 > m ? v3 : m;
                k = (k & ~t) | ((W + 1) & t);
                yp[oy * OW + ox] = m;
                ap[oy * OW + ox] = base + 2 * ox + k;
            }
        }
    }
}

/* y (planes, OH, OW) = pool(x (planes, H, W)); arg gets each max's flat input index. */
static void pool_planes_forward(const pool_win *P, float *y, int *arg, const float *x,
                                size_t planes, int H, int W)
{
    const int OH = P->oh, OW = P->ow;
    if (P->is_max && P->k == 2 && P->s == 2 && P->p == 0) {
        maxpool_2x2(x, y, arg, planes, H, W, OH, OW);
        return;
    }
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W;
        float *yp = y + pl * OH * OW;
        int *ap = P->is_max ? arg + pl * OH * OW : NULL;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0, y1, x0, x1;
                float div = pool_window(P, oy, ox, H, W, &y0, &y1, &x0, &x1);
                if (P->is_max) {
                    float best = -FLT_MAX;
                    int bi = y0 * W + x0;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            float v = xp[iy * W + ix];
                            if (v > best) {
                                best = v;
                                bi = iy * W + ix;
                            }
                        }
                    yp[oy * OW + ox] = best;
                    ap[oy * OW + ox] = bi;
                } else {
                    float acc = 0.0f;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) acc += xp[iy * W + ix];
                    yp[oy * OW + ox] = acc / div;
                }
            }
    }
}

/* dx (planes, H, W) = pool^T(dy (planes, OH, OW)), with the forward's argmax for max. */
static void pool_planes_backward(const pool_win *P, float *dx, const float *dy, const int *arg,
                                 size_t planes, int H, int W)
{
    const int OH = P->oh, OW = P->ow;
    memset(dx, 0, sizeof(float) * planes * H * W);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *gp = dy + pl * OH * OW;
        float *dp = dx + pl * H * W;
        if (P->is_max) {
            const int *ap = arg + pl * OH * OW;
            for (int i = 0; i < OH * OW; i++) dp[ap[i]] += gp[i];
            continue;
        }
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0, y1, x0, x1;
                float div = pool_window(P, oy, ox, H, W, &y0, &y1, &x0, &x1);
                float g = gp[oy * OW + ox] / div;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++) dp[iy * W + ix] += g;
            }
    }
}

/* ---- the reference engine's kernels (fixed windows) ----------------------------------- */

/* The reference plan of a max pool (behind the opaque nn_kplan): the argmax of the last
 * forward. */
typedef struct {
    size_t cap;
    int idx[];
} ref_pool_plan;

static pool_win desc_win(const nn_pool_desc *d)
{
    return (pool_win){d->kind == NN_POOL_MAX, d->k, d->stride, d->pad, d->oh, d->ow};
}

int nn__ref_pool_forward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *y,
                         const nn_tensor *x)
{
    if (x->blk > 1) return nn_err(NN_ESTATE, "reference pooling got a channel-blocked input");
    int rc = nn__tensor_ensure(y, d->n, d->c, d->oh, d->ow, 1);
    if (rc) return rc;
    const pool_win win = desc_win(d);
    const size_t need = nn_tensor_numel(y);
    ref_pool_plan *p = (ref_pool_plan *)*plan;
    if (win.is_max && (!p || p->cap < need)) {
        p = realloc(p, sizeof *p + need * sizeof(int));
        if (!p) return nn_err(NN_ENOMEM, "MaxPool2d: cannot allocate %zu indices", need);
        p->cap = need;
        *plan = (nn_kplan *)p;
    }
    pool_planes_forward(&win, y->data, win.is_max ? p->idx : NULL, x->data,
                        (size_t)d->n * d->c, d->h, d->w);
    return 0;
}

int nn__ref_pool_backward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *dx,
                          const nn_tensor *dy, const nn_tensor *x)
{
    int rc = nn__tensor_ensure(dx, d->n, d->c, d->h, d->w, 1);
    if (rc) return rc;
    const pool_win win = desc_win(d);
    const ref_pool_plan *p = (const ref_pool_plan *)*plan;
    if (win.is_max && !p) return nn_err(NN_ESTATE, "MaxPool2d: backward without forward");
    pool_planes_backward(&win, dx->data, dy->data, win.is_max ? p->idx : NULL,
                         (size_t)d->n * d->c, d->h, d->w);
    return 0;
}

/* ---- the layers ----------------------------------------------------------------------- */

static int pool_fixed(const nn_pool *P)
{
    return P->kind == POOL_MAX || P->kind == POOL_AVG;
}

static void pool_desc(const nn_pool *P, int n, nn_pool_desc *d)
{
    const nn_layer *l = &P->base;
    *d = (nn_pool_desc){.kind = P->kind == POOL_MAX ? NN_POOL_MAX : NN_POOL_AVG,
                        .n = n,
                        .c = l->in_shape[0],
                        .h = l->in_shape[1],
                        .w = l->in_shape[2],
                        .oh = P->oh,
                        .ow = P->ow,
                        .k = P->k,
                        .stride = P->s,
                        .pad = P->p};
}

static int pool_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_pool *P = (nn_pool *)l;
    if (pool_fixed(P)) {
        nn_pool_desc d;
        pool_desc(P, x->n, &d);
        return l->eng->ops->pool_forward(l->eng, &l->plan, &d, &l->y, x);
    }
    int rc = nn__layer_resize_y(l, x->n);
    if (rc) return rc;
    const pool_win win = {P->kind == POOL_AMAX, 0, 0, 0, P->oh, P->ow};
    if (win.is_max) {
        size_t need = nn_tensor_numel(&l->y);
        if (need > P->argcap) {
            int *a = realloc(P->argmax, need * sizeof(int));
            if (!a) return nn_err(NN_ENOMEM, "%s: cannot allocate indices", l->ops->type);
            P->argmax = a;
            P->argcap = need;
        }
    }
    pool_planes_forward(&win, l->y.data, P->argmax, x->data, (size_t)x->n * x->c, x->h, x->w);
    return 0;
}

static int pool_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_pool *P = (nn_pool *)l;
    if (!l->need_dx) return 0;
    if (pool_fixed(P)) {
        nn_pool_desc d;
        pool_desc(P, dy->n, &d);
        return l->eng->ops->pool_backward(l->eng, &l->plan, &d, &l->dx, dy, l->x);
    }
    int rc = nn__layer_resize_dx(l, dy->n);
    if (rc) return rc;
    const pool_win win = {P->kind == POOL_AMAX, 0, 0, 0, P->oh, P->ow};
    pool_planes_backward(&win, l->dx.data, dy->data, P->argmax, (size_t)dy->n * dy->c,
                         l->in_shape[1], l->in_shape[2]);
    return 0;
}

static int pool_describe(const nn_layer *l, char *buf, size_t len)
{
    const nn_pool *P = (const nn_pool *)l;
    switch (P->kind) {
    case POOL_MAX:
        return snprintf(buf, len, "kernel_size=%d, stride=%d, padding=%d, dilation=1, ceil_mode=False",
                        P->k, P->s, P->p);
    case POOL_AVG:
        return snprintf(buf, len, "kernel_size=%d, stride=%d, padding=%d", P->k, P->s, P->p);
    default:
        if (P->scalar_repr) return snprintf(buf, len, "output_size=%d", P->oh);
        return snprintf(buf, len, "output_size=(%d, %d)", P->oh, P->ow);
    }
}

static void pool_free(nn_layer *l)
{
    nn_pool *P = (nn_pool *)l;
    free(P->argmax);
}

/* Fixed-window pools run on the engine in its layout; adaptive ones take plain NCHW. */
#define POOL_OPS(var, name, blocked)                                                           \
    static const nn_layer_ops var = {                                                          \
        .type = name,                                                                          \
        .infer = pool_infer,                                                                   \
        .forward = pool_forward,                                                               \
        .backward = pool_backward,                                                             \
        .describe = pool_describe,                                                             \
        .free = pool_free,                                                                     \
        .blocked_ok = blocked,                                                                 \
    }
POOL_OPS(maxpool_ops, "MaxPool2d", 1);
POOL_OPS(avgpool_ops, "AvgPool2d", 1);
POOL_OPS(amaxpool_ops, "AdaptiveMaxPool2d", 0);
POOL_OPS(aavgpool_ops, "AdaptiveAvgPool2d", 0);

static int pool_new(nn_layer **out, const nn_layer_ops *ops, int kind, int k, int s, int p, int oh,
                    int ow)
{
    *out = NULL;
    if (kind == POOL_MAX || kind == POOL_AVG) {
        if (k <= 0 || s <= 0 || p < 0 || 2 * p > k)
            return nn_err(NN_ERANGE,
                          "%s(kernel_size=%d, stride=%d, padding=%d): kernel and stride must be "
                          "positive and padding at most half the kernel",
                          ops->type, k, s, p);
    } else if (oh <= 0 || ow <= 0) {
        return nn_err(NN_ERANGE, "%s(output_size=(%d, %d)): sizes must be positive", ops->type, oh,
                      ow);
    }
    nn_layer *l = nn__layer_alloc(sizeof(nn_pool), ops, 0, 0);
    if (!l) return nn_err(NN_ENOMEM, "cannot allocate %s", ops->type);
    nn_pool *P = (nn_pool *)l;
    P->kind = kind;
    P->k = k;
    P->s = s;
    P->p = p;
    P->oh = oh;
    P->ow = ow;
    *out = l;
    return 0;
}

int nn_maxpool2d_new(nn_layer **out, int kernel, int stride, int padding)
{
    return pool_new(out, &maxpool_ops, POOL_MAX, kernel, stride, padding, 0, 0);
}

int nn_avgpool2d_new(nn_layer **out, int kernel, int stride, int padding)
{
    return pool_new(out, &avgpool_ops, POOL_AVG, kernel, stride, padding, 0, 0);
}

int nn_adaptive_avgpool2d_new(nn_layer **out, int out_h, int out_w)
{
    return pool_new(out, &aavgpool_ops, POOL_AAVG, 0, 0, 0, out_h, out_w);
}

int nn_adaptive_maxpool2d_new(nn_layer **out, int out_h, int out_w)
{
    return pool_new(out, &amaxpool_ops, POOL_AMAX, 0, 0, 0, out_h, out_w);
}

/* ---- AdaptiveConcatPool2d: cat([max, avg], channels), children (ap) and (mp) ----------- */

static int concat_infer(nn_layer *l, const int in[3])
{
    for (int i = 0; i < 2; i++) {
        int rc = nn_layer_infer(l->kids[i], in);
        if (rc) return rc;
    }
    l->out_shape[0] = 2 * in[0];
    l->out_shape[1] = l->kids[0]->out_shape[1];
    l->out_shape[2] = l->kids[0]->out_shape[2];
    return 0;
}

static int concat_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_layer *ap = l->kids[0], *mp = l->kids[1];
    int rc = nn_layer_forward(ap, x, ctx);
    if (!rc) rc = nn_layer_forward(mp, x, ctx);
    if (!rc) rc = nn__layer_resize_y(l, x->n);
    if (rc) return rc;
    const size_t per = (size_t)ap->out_shape[0] * ap->out_shape[1] * ap->out_shape[2];
    for (int n = 0; n < x->n; n++) {
        memcpy(l->y.data + (2 * n) * per, mp->y.data + n * per, per * sizeof(float));
        memcpy(l->y.data + (2 * n + 1) * per, ap->y.data + n * per, per * sizeof(float));
    }
    return 0;
}

static int concat_backward(nn_layer *l, const nn_tensor *dy)
{
    if (!l->need_dx) return 0;
    nn_layer *ap = l->kids[0], *mp = l->kids[1];
    const int N = dy->n;
    const size_t per = (size_t)ap->out_shape[0] * ap->out_shape[1] * ap->out_shape[2];
    /* Split dy into the max half and the average half; y is free to reuse as staging. */
    nn_tensor gm = {0}, ga = {0};
    int rc = nn_tensor_resize(&gm, N, ap->out_shape[0], ap->out_shape[1], ap->out_shape[2]);
    if (!rc) rc = nn_tensor_resize(&ga, N, ap->out_shape[0], ap->out_shape[1], ap->out_shape[2]);
    if (!rc) {
        for (int n = 0; n < N; n++) {
            memcpy(gm.data + n * per, dy->data + (2 * n) * per, per * sizeof(float));
            memcpy(ga.data + n * per, dy->data + (2 * n + 1) * per, per * sizeof(float));
        }
        rc = nn_layer_backward(mp, &gm);
    }
    if (!rc) rc = nn_layer_backward(ap, &ga);
    if (!rc) rc = nn__layer_resize_dx(l, N);
    if (!rc) {
        size_t n = nn_tensor_numel(&l->dx);
        for (size_t i = 0; i < n; i++) l->dx.data[i] = mp->dx.data[i] + ap->dx.data[i];
    }
    nn_tensor_free(&gm);
    nn_tensor_free(&ga);
    return rc;
}

static void concat_plan(nn_layer *l)
{
    nn_layer_plan_backward(l->kids[0], l->need_dx);
    nn_layer_plan_backward(l->kids[1], l->need_dx);
}

static int concat_describe(const nn_layer *l, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    return 0;
}

static const nn_layer_ops concat_ops = {
    .type = "AdaptiveConcatPool2d",
    .infer = concat_infer,
    .forward = concat_forward,
    .backward = concat_backward,
    .describe = concat_describe,
    .plan = concat_plan,
};

int nn_adaptive_concatpool2d_new(nn_layer **out, int size)
{
    *out = NULL;
    nn_layer *kids[2] = {NULL, NULL};
    int rc = nn_adaptive_avgpool2d_new(&kids[0], size, size);
    if (!rc) rc = nn_adaptive_maxpool2d_new(&kids[1], size, size);
    if (rc) {
        nn_layer_free(kids[0]);
        return rc;
    }
    nn_layer *l = nn__layer_alloc(sizeof(nn_layer), &concat_ops, 0, 0);
    if (!l) {
        nn_layer_free(kids[0]);
        nn_layer_free(kids[1]);
        return nn_err(NN_ENOMEM, "cannot allocate AdaptiveConcatPool2d");
    }
    rc = nn__layer_set_kids(l, kids, 2);
    if (rc) {
        free(l);
        return rc;
    }
    ((nn_pool *)kids[0])->scalar_repr = ((nn_pool *)kids[1])->scalar_repr = 1;
    snprintf(kids[0]->name, sizeof kids[0]->name, "ap");
    snprintf(kids[1]->name, sizeof kids[1]->name, "mp");
    *out = l;
    return 0;
}
