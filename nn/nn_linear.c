/* Linear: y = x W^T + b: the layer, which hands its GEMMs to its engine, and the kernels
 * (reference engine: OpenBLAS sgemm; cpu engine: oneDNN sgemm). */
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

/* ---- the kernels, on the GEMM the engine gives -------------------------------------------- */

/* y (N, out) = x (N, in) W^T (in, out) + b */
int nn__linear_forward_gemm(nn_gemm_fn gemm, const nn_linear_desc *d, nn_tensor *y,
                            const nn_tensor *x, const float *w, const float *b)
{
    int rc = nn__tensor_ensure(y, d->n, d->out, 1, 1, 1);
    if (rc) return rc;
    if (b)
        for (int n = 0; n < d->n; n++) memcpy(y->data + (size_t)n * d->out, b, sizeof(float) * d->out);
    gemm('N', 'T', d->n, d->out, d->in, 1.0f, x->data, d->in, w, d->in, b ? 1.0f : 0.0f, y->data,
         d->out);
    return 0;
}

int nn__linear_backward_gemm(nn_gemm_fn gemm, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                             float *db, const nn_tensor *dy, const nn_tensor *x, const float *w)
{
    const int N = d->n;
    if (dw) /* dW (out, in) (+)= dy^T (out, N) x (N, in) */
        gemm('T', 'N', d->out, d->in, N, 1.0f, dy->data, d->out, x->data, d->in,
             d->overwrite ? 0.0f : 1.0f, dw, d->in);
    if (db && d->overwrite) memset(db, 0, sizeof(float) * d->out);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *g = dy->data + (size_t)n * d->out;
            for (int o = 0; o < d->out; o++) db[o] += g[o];
        }
    if (dx) { /* dx (N, in) = dy (N, out) W (out, in) */
        int rc = nn__tensor_ensure(dx, N, d->in, 1, 1, 1);
        if (rc) return rc;
        gemm('N', 'N', N, d->in, d->out, 1.0f, dy->data, d->out, w, d->in, 0.0f, dx->data, d->in);
    }
    return 0;
}

static void blas_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans,
                tb == 'T' ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

int nn__ref_linear_forward(nn_engine *e, const nn_linear_desc *d, nn_tensor *y,
                           const nn_tensor *x, const float *w, const float *b)
{
    return nn__linear_forward_gemm(blas_gemm, d, y, x, w, b);
}

int nn__ref_linear_backward(nn_engine *e, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                            float *db, const nn_tensor *dy, const nn_tensor *x, const float *w)
{
    return nn__linear_backward_gemm(blas_gemm, d, dx, dw, db, dy, x, w);
}

/* ---- the layer ------------------------------------------------------------------------ */

static int linear_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_linear *L = (nn_linear *)l;
    nn_linear_desc d = {x->n, L->in, L->out, L->bias, 0};
    return l->eng->ops->linear_forward(l->eng, &d, &l->y, x, l->params[0].data,
                                       L->bias ? l->params[1].data : NULL);
}

static int linear_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_linear *L = (nn_linear *)l;
    nn_param *W = &l->params[0], *bp = L->bias ? &l->params[1] : NULL;
    /* A fresh backward writes both gradients; should only one be flagged, clear it here. */
    const int fresh = W->grad_zero && (!bp || bp->grad_zero);
    for (int i = 0; i < l->nparams && !fresh; i++)
        if (l->params[i].grad_zero) memset(l->params[i].grad, 0, l->params[i].numel * sizeof(float));
    W->grad_zero = 0;
    if (bp) bp->grad_zero = 0;
    nn_linear_desc d = {dy->n, L->in, L->out, L->bias, fresh};
    return l->eng->ops->linear_backward(l->eng, &d, l->need_dx ? &l->dx : NULL,
                                        W->trainable ? W->grad : NULL,
                                        bp && bp->trainable ? bp->grad : NULL, dy, l->x, W->data);
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
    .fresh_grads = 1,
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
