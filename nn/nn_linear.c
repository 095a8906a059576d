/* Linear: y = x W^T + b, through OpenBLAS sgemm. */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct {
    nn_layer base;
    int in, out, bias;
} nn_linear;

static int linear_infer(nn_layer *l, const int in[3])
{
    nn_linear *L = (nn_linear *)l;
    if (in[1] != 1 || in[2] != 1 || in[0] != L->in)
        return nn_err(NN_ESHAPE,
                      "Linear(in_features=%d) got input of shape (%d, %d, %d); it needs (%d, 1, 1)"
                      " (add a Flatten before it or change in_features)",
                      L->in, in[0], in[1], in[2], L->in);
    l->out_shape[0] = L->out;
    l->out_shape[1] = l->out_shape[2] = 1;
    return 0;
}

/* y (N, out) = x (N, in) W^T (in, out) + b */
static int linear_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_linear *L = (nn_linear *)l;
    int rc = nn__layer_resize_y(l, x->n);
    if (rc) return rc;
    const int N = x->n;
    float *y = l->y.data;
    const float *W = l->params[0].data;
    if (L->bias) {
        const float *b = l->params[1].data;
        for (int n = 0; n < N; n++) memcpy(y + (size_t)n * L->out, b, sizeof(float) * L->out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, L->out, L->in, 1.0f, x->data, L->in,
                W, L->in, L->bias ? 1.0f : 0.0f, y, L->out);
    return 0;
}

static int linear_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_linear *L = (nn_linear *)l;
    const int N = dy->n;
    const float *x = l->x->data;
    nn_param *W = &l->params[0];
    if (W->trainable) /* dW (out, in) += dy^T (out, N) x (N, in) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L->out, L->in, N, 1.0f, dy->data,
                    L->out, x, L->in, 1.0f, W->grad, L->in);
    if (L->bias && l->params[1].trainable) {
        float *db = l->params[1].grad;
        for (int n = 0; n < N; n++) {
            const float *g = dy->data + (size_t)n * L->out;
            for (int o = 0; o < L->out; o++) db[o] += g[o];
        }
    }
    if (l->need_dx) { /* dx (N, in) = dy (N, out) W (out, in) */
        int rc = nn__layer_resize_dx(l, N);
        if (rc) return rc;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, L->in, L->out, 1.0f, dy->data,
                    L->out, W->data, L->in, 0.0f, l->dx.data, L->in);
    }
    return 0;
}

static int linear_describe(const nn_layer *l, char *buf, size_t len)
{
    const nn_linear *L = (const nn_linear *)l;
    return snprintf(buf, len, "in_features=%d, out_features=%d, bias=%s", L->in, L->out,
                    L->bias ? "True" : "False");
}

static const nn_layer_ops linear_ops = {
    .type = "Linear",
    .infer = linear_infer,
    .forward = linear_forward,
    .backward = linear_backward,
    .describe = linear_describe,
};

int nn_linear_new(nn_layer **out, int in_features, int out_features, int bias)
{
    *out = NULL;
    if (in_features <= 0 || out_features <= 0)
        return nn_err(NN_ERANGE, "Linear(in_features=%d, out_features=%d): sizes must be positive",
                      in_features, out_features);
    nn_layer *l = nn__layer_alloc(sizeof(nn_linear), &linear_ops, bias ? 2 : 1, 0);
    if (!l) return nn_err(NN_ENOMEM, "cannot allocate Linear");
    nn_linear *L = (nn_linear *)l;
    L->in = in_features;
    L->out = out_features;
    L->bias = bias != 0;
    /* PyTorch: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the
     * bias uses the same bound. */
    float bound = 1.0f / sqrtf((float)in_features);
    int wshape[2] = {out_features, in_features};
    nn__param_decl(l, 0, "weight", 2, wshape, NN_INIT_UNIFORM, bound);
    if (bias) nn__param_decl(l, 1, "bias", 1, &out_features, NN_INIT_UNIFORM, bound);
    *out = l;
    return 0;
}
