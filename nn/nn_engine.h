/* The engine seam, internal to nn/: what an engine provides and how layers call it.
 * docs/nn.md ("Engines") describes it for the engineer who adds one.
 *
 * A layer keeps its shapes, parameters and place in a group; for the arithmetic it fills a
 * small descriptor and calls its engine's kernel. A kernel may keep a per-layer plan (a
 * oneDNN primitive, a cuDNN algorithm choice, a max-pool's argmax) in *plan: made on the
 * first call, rebuilt when the descriptor changes, freed by plan_free. Kernels resize their
 * output tensors themselves (nn__tensor_ensure), choosing the layout; every output follows
 * one rule: y in the engine's layout (or plain NCHW), dx in the layout of x. Gradients of
 * parameters (dw, db, dgamma, dbeta) are *added to*; a NULL one is not computed (a frozen
 * parameter: no work). Scratch memory comes from the engine's one workspace, shared by every
 * layer of the model, valid until the next kernel call.
 */
#ifndef STRATA_NN_ENGINE_H
#define STRATA_NN_ENGINE_H

#include "nn/nn.h"

typedef struct nn_kplan nn_kplan; /* an engine's per-layer plan, opaque to layers */

/* Conv2d: x (N, Cin, H, W) -> y (N, Cout, OH, OW), square kernel k, stride, zero padding. */
typedef struct nn_conv_desc {
    int n, cin, h, w;
    int cout, oh, ow;
    int k, stride, pad;
    int bias;
} nn_conv_desc;

/* BatchNorm over x (N, C, H, W) (BatchNorm1d: H = W = 1). training: normalise with the
 * batch's statistics and return them in mean/var (biased variance); else normalise with
 * mean/var as given (the running statistics). relu: y = max(0, BN(x)), and backward takes
 * dy with respect to that output. */
typedef struct nn_bn_desc {
    int n, c, h, w;
    int training;
    int relu;
    float eps;
} nn_bn_desc;

/* Linear: x (N, in) -> y (N, out) = x W^T + b, plain layouts. */
typedef struct nn_linear_desc {
    int n, in, out;
    int bias;
    int overwrite; /* backward writes dw and db instead of adding to them */
} nn_linear_desc;

enum { NN_POOL_MAX = 1, NN_POOL_AVG = 2 /* count_include_pad, PyTorch's default */ };

/* MaxPool2d / AvgPool2d with fixed square windows. */
typedef struct nn_pool_desc {
    int kind;
    int n, c, h, w, oh, ow;
    int k, stride, pad;
} nn_pool_desc;

typedef struct nn_engine_ops {
    const char *name;
    int kind; /* NN_ENGINE_* */
    void (*destroy)(nn_engine *e);
    void (*plan_free)(nn_engine *e, nn_kplan *plan);
    /* The engine's memory for parameter, gradient and optimizer slabs: bytes zeroed, 64-byte
     * aligned; NULL when out of memory. Host memory on both CPU engines. */
    void *(*alloc)(nn_engine *e, size_t bytes);
    void (*release)(nn_engine *e, void *p);

    /* y = conv(x, w) + b; w is (Cout, Cin, k, k) as PyTorch stores it, b (Cout) or NULL. */
    int (*conv_forward)(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *y,
                        const nn_tensor *x, const float *w, const float *b);
    /* dx = conv^T(dy, w) when dx is non-NULL; dw += dW(x, dy) and db += sum(dy) when
     * non-NULL. x and w are what the last forward saw. */
    int (*conv_backward)(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *dx,
                         float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                         const float *w);
    /* y = gamma * (x - mean) / sqrt(var + eps) + beta [then ReLU]. */
    int (*bn_forward)(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *y,
                      const nn_tensor *x, const float *gamma, const float *beta, float *mean,
                      float *var);
    /* From dy (with respect to y): dx when non-NULL, dgamma/dbeta += when non-NULL. mean and
     * var are the forward's; y is its output (a fused ReLU's mask). */
    int (*bn_backward)(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *dx,
                       float *dgamma, float *dbeta, const nn_tensor *dy, const nn_tensor *x,
                       const nn_tensor *y, const float *gamma, const float *beta,
                       const float *mean,
                       const float *var);
    int (*pool_forward)(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *y,
                        const nn_tensor *x);
    /* y = x W^T + b; w is (out, in), b (out) or NULL. */
    int (*linear_forward)(nn_engine *e, const nn_linear_desc *d, nn_tensor *y,
                          const nn_tensor *x, const float *w, const float *b);
    /* dx = dy W when dx is non-NULL; dw += dy^T x, db += sum(dy) when non-NULL. */
    int (*linear_backward)(nn_engine *e, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                           float *db, const nn_tensor *dy, const nn_tensor *x, const float *w);
    /* dx = pool^T(dy), using what the last forward on this plan kept (argmax). */
    int (*pool_backward)(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *dx,
                         const nn_tensor *dy, const nn_tensor *x);
} nn_engine_ops;

struct nn_engine {
    const nn_engine_ops *ops;
    int blk;            /* the channel block it keeps activations in (1: NCHW) */
    char desc[160];     /* nn_engine_describe */
    float *ws;          /* the shared workspace */
    size_t ws_cap;      /* its size in floats */
    void *impl;         /* the engine's own state (oneDNN's engine and stream) */
};

/* The reference engine's kernels, which other engines call for what they do not run
 * themselves (nn_conv.c, nn_norm.c, nn_pool.c). */
int nn__ref_conv_forward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *y,
                         const nn_tensor *x, const float *w, const float *b);
int nn__ref_conv_backward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *dx,
                          float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                          const float *w);
int nn__ref_bn_forward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *y,
                       const nn_tensor *x, const float *gamma, const float *beta, float *mean,
                       float *var);
int nn__ref_bn_backward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *dx,
                        float *dgamma, float *dbeta, const nn_tensor *dy, const nn_tensor *x,
                        const nn_tensor *y, const float *gamma, const float *beta,
                       const float *mean,
                        const float *var);
int nn__ref_pool_forward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *y,
                         const nn_tensor *x);
int nn__ref_pool_backward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *dx,
                          const nn_tensor *dy, const nn_tensor *x);
/* Row-major C (M, N) = alpha op(A) op(B) + beta C, op = transpose when ta / tb is 'T': the
 * GEMM a Linear layer runs on. */
typedef void (*nn_gemm_fn)(char ta, char tb, int M, int N, int K, float alpha, const float *A,
                           int lda, const float *B, int ldb, float beta, float *C, int ldc);
/* Linear's kernels on a given GEMM (the reference engine passes OpenBLAS's, the cpu engine
 * oneDNN's). */
int nn__linear_forward_gemm(nn_gemm_fn gemm, const nn_linear_desc *d, nn_tensor *y,
                            const nn_tensor *x, const float *w, const float *b);
int nn__linear_backward_gemm(nn_gemm_fn gemm, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                             float *db, const nn_tensor *dy, const nn_tensor *x, const float *w);
int nn__ref_linear_forward(nn_engine *e, const nn_linear_desc *d, nn_tensor *y,
                           const nn_tensor *x, const float *w, const float *b);
int nn__ref_linear_backward(nn_engine *e, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                            float *db, const nn_tensor *dy, const nn_tensor *x, const float *w);
/* Frees a plan made by the reference kernels (a plain allocation, or NULL). */
void nn__ref_plan_free(nn_engine *e, nn_kplan *plan);

/* Host memory for the CPU engines' alloc and release: zeroed, 64-byte aligned. */
void *nn__host_alloc(nn_engine *e, size_t bytes);
void nn__host_release(nn_engine *e, void *p);

/* Winograd F(4x4, 3x3) of strata's own on nChw8c tensors (nn_wino.c), for the cpu engine
 * where oneDNN has none (AVX2). supported: the CPU has AVX2 and FMA. eligible: d is a 3x3,
 * stride-1 convolution with padding 0..2. The kernels follow conv_forward's and
 * conv_backward's contracts with x, dy, y and dx blocked by 8; gemm runs the 36 products. */
int nn__wino_supported(void);
int nn__wino_eligible(const nn_conv_desc *d);
int nn__wino_forward(nn_engine *e, nn_gemm_fn gemm, const nn_conv_desc *d, nn_tensor *y,
                     const nn_tensor *x, const float *w, const float *b);
int nn__wino_backward(nn_engine *e, nn_gemm_fn gemm, const nn_conv_desc *d, nn_tensor *dx,
                      float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                      const float *w);

/* The cpu engine (nn_dnnl.c): sets up e (ops, blk, impl, desc). */
int nn__dnnl_engine_init(nn_engine *e);

/* The workspace: at least `floats` floats, 64-byte aligned, shared by every layer of the
 * engine's model and valid until the next call. NULL (with the message set) when out of
 * memory. */
float *nn__workspace(nn_engine *e, size_t floats);

/* Makes t hold (n, c, h, w) in layout blk, reusing its memory when it is big enough; a view
 * is replaced by an owned tensor. */
int nn__tensor_ensure(nn_tensor *t, int n, int c, int h, int w, int blk);

#endif /* STRATA_NN_ENGINE_H */
