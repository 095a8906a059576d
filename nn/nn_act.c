/* Shape-preserving layers without parameters: ReLU, Dropout, Flatten, Identity. */
#include "nn/nn_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static int same_infer(nn_layer *l, const int in[3])
{
    memcpy(l->out_shape, in, sizeof l->out_shape);
    return 0;
}

/* ---- ReLU: in place (as PyTorch's ReLU(inplace=True)) when its container says the input
 * is a buffer nobody reads again (x_overwritable), else out of place; a pass-through when the container fused
 * it into the BatchNorm before it. Elementwise, so any layout (padding channels stay 0). -- */

typedef struct {
    nn_layer base;
    int fused;      /* the BatchNorm before it applies it */
} nn_relu;

static int relu_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    size_t n = nn_tensor_storage(x);
    if (((nn_relu *)l)->fused) {
        if (l->y.cap) nn_tensor_free(&l->y);
        nn__tensor_view(&l->y, x, x->n, x->c, x->h, x->w);
        return 0;
    }
    if (l->x_overwritable) {
        if (l->y.cap) nn_tensor_free(&l->y);
        float *d = x->data;
        for (size_t i = 0; i < n; i++) d[i] = d[i] > 0.0f ? d[i] : 0.0f;
        nn__tensor_view(&l->y, x, x->n, x->c, x->h, x->w);
        return 0;
    }
    int rc = nn__tensor_ensure(&l->y, x->n, x->c, x->h, x->w, x->blk);
    if (rc) return rc;
    const float *xs = x->data;
    float *y = l->y.data;
    for (size_t i = 0; i < n; i++) y[i] = xs[i] > 0.0f ? xs[i] : 0.0f;
    return 0;
}

static int relu_backward(nn_layer *l, const nn_tensor *dy)
{
    if (!l->need_dx) return 0;
    if (((nn_relu *)l)->fused) {
        if (l->dx.cap) nn_tensor_free(&l->dx);
        nn__tensor_view(&l->dx, dy, dy->n, dy->c, dy->h, dy->w);
        return 0;
    }
    int rc = nn__tensor_ensure(&l->dx, dy->n, dy->c, dy->h, dy->w, dy->blk);
    if (rc) return rc;
    size_t n = nn_tensor_storage(dy);
    const float *y = l->y.data, *g = dy->data;
    float *dx = l->dx.data;
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? g[i] : 0.0f;
    return 0;
}

static int relu_describe(const nn_layer *l, char *buf, size_t len)
{
    return snprintf(buf, len, "inplace");
}

static const nn_layer_ops relu_ops = {
    .type = "ReLU",
    .infer = same_infer,
    .forward = relu_forward,
    .backward = relu_backward,
    .describe = relu_describe,
    .blocked_ok = 1,
};

int nn_relu_new(nn_layer **out)
{
    *out = nn__layer_alloc(sizeof(nn_relu), &relu_ops, 0, 0);
    return *out ? 0 : nn_err(NN_ENOMEM, "cannot allocate ReLU");
}

int nn__is_relu(const nn_layer *l)
{
    return l->ops == &relu_ops;
}

void nn__relu_set_fused(nn_layer *l, int fused)
{
    if (l->ops == &relu_ops) ((nn_relu *)l)->fused = fused != 0;
}

/* ---- Dropout: inverted dropout, the mask drawn from the RNG passed in ------------------ */

typedef struct {
    nn_layer base;
    float p;
    unsigned char *mask;
    size_t maskcap;
    int active; /* whether the last forward dropped anything */
} nn_dropout;

static int dropout_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_dropout *D = (nn_dropout *)l;
    size_t n = nn_tensor_numel(x);
    D->active = l->training && D->p > 0.0f;
    if (!D->active) {
        if (l->y.cap) nn_tensor_free(&l->y);
        nn__tensor_view(&l->y, x, x->n, x->c, x->h, x->w);
        return 0;
    }
    if (!ctx || !ctx->rng) return nn_err(NN_EINVAL, "Dropout in training mode needs an RNG");
    if (l->y.cap == 0) memset(&l->y, 0, sizeof l->y); /* drop a view from an eval pass */
    int rc = nn__layer_resize_y(l, x->n);
    if (rc) return rc;
    if (n > D->maskcap) {
        unsigned char *m = realloc(D->mask, n);
        if (!m) return nn_err(NN_ENOMEM, "Dropout: cannot allocate a mask of %zu", n);
        D->mask = m;
        D->maskcap = n;
    }
    const float scale = D->p >= 1.0f ? 0.0f : 1.0f / (1.0f - D->p);
    for (size_t i = 0; i < n; i++) {
        D->mask[i] = nn_rng_uniform(ctx->rng) >= D->p;
        l->y.data[i] = D->mask[i] ? x->data[i] * scale : 0.0f;
    }
    return 0;
}

static int dropout_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_dropout *D = (nn_dropout *)l;
    if (!l->need_dx) return 0;
    if (!D->active) {
        if (l->dx.cap) nn_tensor_free(&l->dx);
        nn__tensor_view(&l->dx, dy, dy->n, dy->c, dy->h, dy->w);
        return 0;
    }
    if (l->dx.cap == 0) memset(&l->dx, 0, sizeof l->dx);
    int rc = nn__layer_resize_dx(l, dy->n);
    if (rc) return rc;
    size_t n = nn_tensor_numel(dy);
    const float scale = D->p >= 1.0f ? 0.0f : 1.0f / (1.0f - D->p);
    for (size_t i = 0; i < n; i++) l->dx.data[i] = D->mask[i] ? dy->data[i] * scale : 0.0f;
    return 0;
}

static int dropout_describe(const nn_layer *l, char *buf, size_t len)
{
    return snprintf(buf, len, "p=%g", (double)((const nn_dropout *)l)->p);
}

static void dropout_free(nn_layer *l)
{
    free(((nn_dropout *)l)->mask);
}

static const nn_layer_ops dropout_ops = {
    .type = "Dropout",
    .infer = same_infer,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .describe = dropout_describe,
    .free = dropout_free,
};

int nn_dropout_new(nn_layer **out, float p)
{
    *out = NULL;
    if (!(p >= 0.0f && p < 1.0f))
        return nn_err(NN_ERANGE, "Dropout(p=%g): p must be in [0, 1)", (double)p);
    nn_layer *l = nn__layer_alloc(sizeof(nn_dropout), &dropout_ops, 0, 0);
    if (!l) return nn_err(NN_ENOMEM, "cannot allocate Dropout");
    ((nn_dropout *)l)->p = p;
    *out = l;
    return 0;
}

/* ---- Flatten and Identity: views, no copies ------------------------------------------- */

static int flatten_infer(nn_layer *l, const int in[3])
{
    const long long n = (long long)in[0] * in[1] * in[2];
    if (n > INT_MAX)
        return nn_err(NN_ERANGE, "Flatten: input (%d, %d, %d) has %lld features, more than %d",
                      in[0], in[1], in[2], n, INT_MAX);
    l->out_shape[0] = (int)n;
    l->out_shape[1] = l->out_shape[2] = 1;
    return 0;
}

static int view_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn__tensor_view(&l->y, x, x->n, l->out_shape[0], l->out_shape[1], l->out_shape[2]);
    return 0;
}

static int view_backward(nn_layer *l, const nn_tensor *dy)
{
    if (l->need_dx)
        nn__tensor_view(&l->dx, dy, dy->n, l->in_shape[0], l->in_shape[1], l->in_shape[2]);
    return 0;
}

static int empty_describe(const nn_layer *l, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    return 0;
}

static const nn_layer_ops flatten_ops = {
    .type = "Flatten",
    .infer = flatten_infer,
    .forward = view_forward,
    .backward = view_backward,
    .describe = empty_describe,
};

static const nn_layer_ops identity_ops = {
    .type = "Identity",
    .infer = same_infer,
    .forward = view_forward,
    .backward = view_backward,
    .describe = empty_describe,
    .blocked_ok = 1,
};

int nn_flatten_new(nn_layer **out)
{
    *out = nn__layer_alloc(sizeof(nn_layer), &flatten_ops, 0, 0);
    return *out ? 0 : nn_err(NN_ENOMEM, "cannot allocate Flatten");
}

int nn_identity_new(nn_layer **out)
{
    *out = nn__layer_alloc(sizeof(nn_layer), &identity_ops, 0, 0);
    return *out ? 0 : nn_err(NN_ENOMEM, "cannot allocate Identity");
}
