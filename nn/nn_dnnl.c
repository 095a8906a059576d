/* The cpu engine: Conv2d, BatchNorm (with its ReLU fused) and pooling on oneDNN, with the
 * activations kept in oneDNN's channel-blocked layout (nChw16c where the CPU has AVX-512,
 * nChw8c otherwise) from one layer to the next, so that no layer pays a reorder of its
 * activations. oneDNN picks its kernels for the CPU it runs on (AVX2, AVX-512) at run time.
 *
 * Each layer's plan holds the oneDNN primitives made for its shape (rebuilt when the batch
 * size, the mode or the input's layout changes; oneDNN's own primitive cache makes a rebuild
 * of a shape seen before cheap) and what must survive from forward to backward (a fused
 * ReLU's mask, a max pool's argmax). Weights stay in the group slabs in PyTorch's layout and
 * are reordered into the primitive's format in the shared workspace on each call, as are
 * weight gradients on their way back (added to the slab). Scratchpads come from the same
 * workspace (oneDNN's user scratchpad mode).
 *
 * The 3x3 stride-1 convolutions with at least 16 channels each way and outputs of at least
 * 8x8 use oneDNN's Winograd F(4x4, 3x3) where it has one (AVX-512; measured 1.3-1.8x faster
 * than its direct kernels on those shapes, agreeing with them to about 2e-6 relative); the
 * rest, and every convolution on machines without it, its direct kernels. Plain NCHW
 * inputs to BatchNorm and pooling (only where no convolution came before) go to the
 * reference kernels. */
#include "nn/nn_internal.h"

#include <float.h>
#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    int own_wino; /* strata's Winograd (nn_wino.c) runs the 3x3 convolutions oneDNN has none
                     for: on AVX2 */
} dn_impl;

static int dn_check(dnnl_status_t s, const char *what)
{
    return s == dnnl_success ? 0 : nn_err(NN_EINVAL, "oneDNN: %s: %s", what, dnnl_status2str(s));
}

/* One argument of an execution: its oneDNN name, layout and memory. */
typedef struct {
    int arg;
    const dnnl_memory_desc_t *md;
    void *ptr;
} dn_arg;

/* Runs primitive p on the engine's stream with the given arguments and waits for it. */
static int dn_exec(nn_engine *e, dnnl_primitive_t p, const dn_arg *a, int n, const char *what)
{
    dn_impl *I = e->impl;
    dnnl_exec_arg_t ea[16];
    int rc = 0, made = 0;
    for (; made < n && !rc; made++) {
        ea[made].arg = a[made].arg;
        rc = dn_check(dnnl_memory_create(&ea[made].memory, a[made].md, I->eng, a[made].ptr), what);
        if (rc) break;
    }
    if (!rc) rc = dn_check(dnnl_primitive_execute(p, I->st, n, ea), what);
    if (!rc) rc = dn_check(dnnl_stream_wait(I->st), what);
    for (int k = 0; k < made; k++) dnnl_memory_destroy(ea[k].memory);
    return rc;
}

/* The activation layout of a tensor with channel block blk. */
static int dn_act_md(dnnl_memory_desc_t *md, int n, int c, int h, int w, int blk)
{
    dnnl_dims_t d = {n, c, h, w};
    dnnl_format_tag_t tag = blk == 16 ? dnnl_nChw16c : blk == 8 ? dnnl_nChw8c : dnnl_nchw;
    return dn_check(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, tag), "activation layout");
}

static int dn_vec_md(dnnl_memory_desc_t *md, int c)
{
    dnnl_dims_t d = {c};
    return dn_check(dnnl_memory_desc_init_by_tag(md, 1, d, dnnl_f32, dnnl_x), "vector layout");
}

/* Makes a primitive from an op descriptor, with a user scratchpad, and notes its size. */
static int dn_make(nn_engine *e, dnnl_primitive_desc_t *pd, dnnl_primitive_t *prim,
                   size_t *scratch, const void *op, const_dnnl_primitive_desc_t hint,
                   const char *what)
{
    dn_impl *I = e->impl;
    dnnl_primitive_attr_t attr;
    int rc = dn_check(dnnl_primitive_attr_create(&attr), what);
    if (rc) return rc;
    rc = dn_check(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), what);
    if (!rc) rc = dn_check(dnnl_primitive_desc_create(pd, op, attr, I->eng, hint), what);
    dnnl_primitive_attr_destroy(attr);
    if (rc) return rc;
    rc = dn_check(dnnl_primitive_create(prim, *pd), what);
    if (rc) {
        dnnl_primitive_desc_destroy(*pd);
        *pd = NULL;
        return rc;
    }
    *scratch = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(*pd, dnnl_query_scratchpad_md, 0));
    return 0;
}

/* A reorder between two layouts of the same tensor. */
static int dn_reorder_make(nn_engine *e, dnnl_primitive_t *r, const dnnl_memory_desc_t *from,
                           const dnnl_memory_desc_t *to)
{
    dn_impl *I = e->impl;
    dnnl_primitive_desc_t pd;
    int rc = dn_check(dnnl_reorder_primitive_desc_create(&pd, from, I->eng, to, I->eng, NULL),
                      "reorder");
    if (rc) return rc;
    rc = dn_check(dnnl_primitive_create(r, pd), "reorder");
    dnnl_primitive_desc_destroy(pd);
    return rc;
}

static size_t floats_of(size_t bytes)
{
    return (bytes + 63) / 64 * 16; /* whole 64-byte lines, so every part stays aligned */
}

static void dn_destroy_pd(dnnl_primitive_desc_t *pd, dnnl_primitive_t *p)
{
    if (*p) dnnl_primitive_destroy(*p);
    if (*pd) dnnl_primitive_desc_destroy(*pd);
    *p = NULL;
    *pd = NULL;
}

/* ---- plans ----------------------------------------------------------------------------- */

enum { PLAN_CONV = 1, PLAN_BN, PLAN_POOL };

/* One convolution primitive with the layout it wants its weights (or weight gradient) in. */
typedef struct {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_primitive_t wreorder; /* slab layout <-> the primitive's weights layout, or NULL */
    dnnl_memory_desc_t wmd;
    size_t wbytes, sbytes;     /* weights buffer (0 when it reads the slab) and scratchpad */
    int use_ref;               /* oneDNN has only its slow reference code for this one: the
                                  reference engine's kernel runs it instead */
} dn_prim;

typedef struct {
    int kind;
    nn_conv_desc d;
    int xblk;
    dnnl_alg_kind_t alg;
    dnnl_memory_desc_t src, dst, wuser, bias;
    dnnl_convolution_desc_t op[3]; /* forward, backward data, backward weights */
    dn_prim fwd, bwd_d, bwd_w;     /* each made on first use */
    nn_tensor xn, dyn, tmp;        /* plain copies for the reference fallback */
} dn_conv;

typedef struct {
    int kind;
    nn_bn_desc d;
    int xblk;
    unsigned flags;
    dnnl_memory_desc_t data, vec;
    dnnl_primitive_desc_t fpd, bpd;
    dnnl_primitive_t fwd, bwd;
    size_t fs, bs;              /* scratchpads */
    void *mask;                 /* the fused ReLU's mask from forward, for backward */
    size_t maskbytes;
} dn_bn;

typedef struct {
    int kind;
    nn_pool_desc d;
    int xblk;
    dnnl_memory_desc_t src, dst;
    dnnl_primitive_desc_t fpd, bpd;
    dnnl_primitive_t fwd, bwd;
    size_t fs, bs;
    void *argmax;               /* a max pool's workspace from forward */
    size_t argbytes;
    nn_kplan *ref;              /* the reference kernels' plan, for plain inputs */
} dn_pool;

static void dn_prim_clear(dn_prim *p)
{
    dn_destroy_pd(&p->pd, &p->prim);
    if (p->wreorder) dnnl_primitive_destroy(p->wreorder);
    memset(p, 0, sizeof *p);
}

static void dn_plan_clear(nn_kplan *plan)
{
    int kind = *(int *)plan;
    if (kind == PLAN_CONV) {
        dn_conv *P = (dn_conv *)plan;
        dn_prim_clear(&P->fwd);
        dn_prim_clear(&P->bwd_d);
        dn_prim_clear(&P->bwd_w);
        nn_tensor_free(&P->xn);
        nn_tensor_free(&P->dyn);
        nn_tensor_free(&P->tmp);
    } else if (kind == PLAN_BN) {
        dn_bn *P = (dn_bn *)plan;
        dn_destroy_pd(&P->fpd, &P->fwd);
        dn_destroy_pd(&P->bpd, &P->bwd);
        free(P->mask);
        P->mask = NULL;
    } else {
        dn_pool *P = (dn_pool *)plan;
        dn_destroy_pd(&P->fpd, &P->fwd);
        dn_destroy_pd(&P->bpd, &P->bwd);
        free(P->argmax);
        P->argmax = NULL;
        nn__ref_plan_free(NULL, P->ref);
        P->ref = NULL;
    }
}

static void dn_plan_free(nn_engine *e, nn_kplan *plan)
{
    if (!plan) return;
    dn_plan_clear(plan);
    free(plan);
}

/* A fresh zeroed plan of the given kind and size in *plan: the old one, cleared, or a new
 * allocation. */
static void *dn_plan_fresh(nn_kplan **plan, int kind, size_t bytes)
{
    void *p = *plan;
    if (p) {
        dn_plan_clear(*plan);
        if (*(int *)p != kind) { /* plans of other kinds have other sizes */
            free(p);
            p = NULL;
        }
    }
    if (!p && !(p = malloc(bytes))) {
        nn_err(NN_ENOMEM, "cannot allocate a oneDNN plan");
        return NULL;
    }
    memset(p, 0, bytes);
    *(int *)p = kind;
    *plan = p;
    return p;
}

/* ---- Conv2d ---------------------------------------------------------------------------- */

static int conv_winograd(const nn_engine *e, const nn_conv_desc *d)
{
    return d->k == 3 && d->stride == 1 && d->cin >= 16 && d->cout >= 16 && d->oh >= 8 &&
           d->ow >= 8;
}

/* Initialises op `which` (0 forward, 1 backward data, 2 backward weights) of a conv plan for
 * algorithm alg. */
static int conv_op_init(dn_conv *P, int which, dnnl_alg_kind_t alg)
{
    const nn_conv_desc *d = &P->d;
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k};
    dnnl_dims_t strides = {d->stride, d->stride}, pad = {d->pad, d->pad};
    dnnl_memory_desc_t wany;
    int rc = dn_check(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any),
                      "weights");
    if (rc) return rc;
    const dnnl_memory_desc_t *bias = d->bias ? &P->bias : NULL;
    if (which == 0)
        return dn_check(dnnl_convolution_forward_desc_init(&P->op[0], dnnl_forward_training, alg,
                                                           &P->src, &wany, bias, &P->dst, strides,
                                                           pad, pad),
                        "convolution forward");
    if (which == 1)
        return dn_check(dnnl_convolution_backward_data_desc_init(&P->op[1], alg, &P->src, &wany,
                                                                 &P->dst, strides, pad, pad),
                        "convolution backward data");
    return dn_check(dnnl_convolution_backward_weights_desc_init(&P->op[2], alg, &P->src, &wany,
                                                                bias, &P->dst, strides, pad, pad),
                    "convolution backward weights");
}

static void dn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);

/* Whether strata's own Winograd runs this convolution on these layouts: 3x3 stride 1 with at
 * least 16 channels each way and outputs of at least 4x4 (on resnet18's 512-channel 4x4
 * stage it takes 0.67 of oneDNN's direct kernels' time, at 32x32 0.4; fewer channels and
 * smaller outputs stay with oneDNN, not measured). */
static int conv_own_wino(const nn_engine *e, const nn_conv_desc *d, int xblk, int yblk)
{
    return ((const dn_impl *)e->impl)->own_wino && xblk == 8 && yblk == 8 && d->cin >= 16 &&
           d->cout >= 16 && d->oh >= 4 && d->ow >= 4 && nn__wino_eligible(d);
}

/* The plan for (d, xblk): the one in *plan if it was made for them, else a new one with its
 * algorithm chosen and its three ops described (primitives come on first use). */
static int conv_plan(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, int xblk, dn_conv **out)
{
    dn_conv *P = *plan ? (dn_conv *)*plan : NULL;
    if (P && P->kind == PLAN_CONV && !memcmp(&P->d, d, sizeof *d) && P->xblk == xblk) {
        *out = P;
        return 0;
    }
    P = dn_plan_fresh(plan, PLAN_CONV, sizeof *P);
    if (!P) return NN_ENOMEM;
    P->d = *d;
    P->xblk = xblk;
    dnnl_dims_t wd = {d->cout, d->cin, d->k, d->k};
    int rc = dn_act_md(&P->src, d->n, d->cin, d->h, d->w, xblk);
    if (!rc) rc = dn_act_md(&P->dst, d->n, d->cout, d->oh, d->ow, e->blk);
    if (!rc) rc = dn_check(dnnl_memory_desc_init_by_tag(&P->wuser, 4, wd, dnnl_f32, dnnl_oihw), "weights");
    if (!rc) rc = dn_vec_md(&P->bias, d->cout);
    if (rc) return rc;
    /* Winograd where oneDNN has it for this CPU (its forward can be made), else direct. */
    P->alg = dnnl_convolution_direct;
    if (conv_winograd(e, d) && !conv_op_init(P, 0, dnnl_convolution_winograd)) {
        dnnl_primitive_desc_t pd;
        if (dnnl_primitive_desc_create(&pd, &P->op[0], NULL, ((dn_impl *)e->impl)->eng, NULL) ==
            dnnl_success) {
            dnnl_primitive_desc_destroy(pd);
            P->alg = dnnl_convolution_winograd;
        }
    }
    for (int i = 0; i < 3 && !rc; i++) rc = conv_op_init(P, i, P->alg);
    *out = P;
    return rc;
}

/* Makes primitive `which` (0 forward, 1 backward data, 2 backward weights) of a conv plan,
 * with the reorder of its weights (or weight gradient) from (or to) the slab's layout. */
static int conv_make(nn_engine *e, dn_conv *P, int which)
{
    static const char *const what[3] = {"convolution forward", "convolution backward data",
                                        "convolution backward weights"};
    dn_prim *p = which == 0 ? &P->fwd : which == 1 ? &P->bwd_d : &P->bwd_w;
    if (p->prim || p->use_ref) return 0;
    const_dnnl_primitive_desc_t hint = NULL;
    if (which) {
        int rc = conv_make(e, P, 0);
        if (rc) return rc;
        hint = P->fwd.pd;
    }
    int rc = dn_make(e, &p->pd, &p->prim, &p->sbytes, &P->op[which], hint, what[which]);
    if (rc && P->alg == dnnl_convolution_winograd && which) {
        /* A Winograd forward without its backward: this one direct. */
        rc = conv_op_init(P, which, dnnl_convolution_direct);
        if (!rc) rc = dn_make(e, &p->pd, &p->prim, &p->sbytes, &P->op[which], hint, what[which]);
    }
    if (rc) return rc;
    const char *impl = "";
    dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &impl);
    if (!strncmp(impl, "ref", 3)) {
        /* oneDNN's reference code is far slower than im2col (the first layer's weight
         * gradient from a plain input on AVX2: 800 ms where im2col takes 1 ms). */
        dn_destroy_pd(&p->pd, &p->prim);
        p->use_ref = 1;
        return 0;
    }
    p->wmd = *dnnl_primitive_desc_query_md(p->pd, which == 2 ? dnnl_query_diff_weights_md
                                                              : dnnl_query_weights_md, 0);
    if (dnnl_memory_desc_equal(&p->wmd, &P->wuser)) return 0;
    p->wbytes = dnnl_memory_desc_get_size(&p->wmd);
    return which == 2 ? dn_reorder_make(e, &p->wreorder, &p->wmd, &P->wuser)
                      : dn_reorder_make(e, &p->wreorder, &P->wuser, &p->wmd);
}

/* The weights as primitive p wants them: the slab itself, or reordered into buf. */
static int conv_weights(nn_engine *e, const dn_conv *P, const dn_prim *p, const float *w,
                        float *buf, const float **out)
{
    *out = w;
    if (!p->wreorder) return 0;
    dn_arg a[2] = {{DNNL_ARG_FROM, &P->wuser, (void *)w}, {DNNL_ARG_TO, &p->wmd, buf}};
    *out = buf;
    return dn_exec(e, p->wreorder, a, 2, "weights reorder");
}

/* t itself when plain, else its plain copy in *copy (*rc set on failure). */
static const nn_tensor *conv_plain(nn_tensor *copy, const nn_tensor *t, int *rc)
{
    *rc = 0;
    if (t->blk <= 1) return t;
    *rc = nn_tensor_to_nchw(copy, t);
    return copy;
}

static int dn_conv_forward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *y,
                           const nn_tensor *x, const float *w, const float *b)
{
    if (conv_own_wino(e, d, x->blk, e->blk)) return nn__wino_forward(e, dn_gemm, d, y, x, w, b);
    dn_conv *P;
    int rc = conv_plan(e, plan, d, x->blk > 1 ? x->blk : 1, &P);
    if (!rc) rc = conv_make(e, P, 0);
    if (rc) return rc;
    if (P->fwd.use_ref) {
        const nn_tensor *xn = conv_plain(&P->xn, x, &rc);
        if (!rc) rc = nn__ref_conv_forward(e, NULL, d, &P->tmp, xn, w, b);
        return rc ? rc : nn_tensor_convert(y, &P->tmp, e->blk);
    }
    rc = nn__tensor_ensure(y, d->n, d->cout, d->oh, d->ow, e->blk);
    if (rc) return rc;
    const size_t nw = floats_of(P->fwd.wbytes);
    float *ws = nn__workspace(e, nw + floats_of(P->fwd.sbytes));
    if (!ws) return NN_ENOMEM;
    const float *wp;
    rc = conv_weights(e, P, &P->fwd, w, ws, &wp);
    if (rc) return rc;
    dn_arg a[5] = {{DNNL_ARG_SRC, &P->src, x->data},
                   {DNNL_ARG_WEIGHTS, &P->fwd.wmd, (void *)wp},
                   {DNNL_ARG_DST, &P->dst, y->data},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->fwd.pd, dnnl_query_scratchpad_md, 0), ws + nw},
                   {DNNL_ARG_BIAS, &P->bias, (void *)b}};
    return dn_exec(e, P->fwd.prim, a, b ? 5 : 4, "convolution forward");
}

static int conv_backward_data(nn_engine *e, dn_conv *P, nn_tensor *dx, const nn_tensor *dy,
                              const float *w)
{
    const nn_conv_desc *d = &P->d;
    int rc = conv_make(e, P, 1);
    if (rc) return rc;
    if (P->bwd_d.use_ref) {
        const nn_tensor *dyn = conv_plain(&P->dyn, dy, &rc);
        if (!rc) rc = nn__ref_conv_backward(e, NULL, d, &P->tmp, NULL, NULL, dyn, NULL, w);
        return rc ? rc : nn_tensor_convert(dx, &P->tmp, P->xblk);
    }
    rc = nn__tensor_ensure(dx, d->n, d->cin, d->h, d->w, P->xblk);
    if (rc) return rc;
    const size_t nw = floats_of(P->bwd_d.wbytes);
    float *ws = nn__workspace(e, nw + floats_of(P->bwd_d.sbytes));
    if (!ws) return NN_ENOMEM;
    const float *wp;
    rc = conv_weights(e, P, &P->bwd_d, w, ws, &wp);
    if (rc) return rc;
    dn_arg a[4] = {{DNNL_ARG_DIFF_DST, &P->dst, dy->data},
                   {DNNL_ARG_WEIGHTS, &P->bwd_d.wmd, (void *)wp},
                   {DNNL_ARG_DIFF_SRC, &P->src, dx->data},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->bwd_d.pd, dnnl_query_scratchpad_md, 0), ws + nw}};
    return dn_exec(e, P->bwd_d.prim, a, 4, "convolution backward data");
}

/* dw += dW, db += dB: the gradient in the primitive's layout, then reordered into the slab's
 * layout in the workspace and added. */
static int conv_backward_weights(nn_engine *e, dn_conv *P, float *dw, float *db,
                                 const nn_tensor *dy, const nn_tensor *x)
{
    const nn_conv_desc *d = &P->d;
    int rc = conv_make(e, P, 2);
    if (rc) return rc;
    if (P->bwd_w.use_ref) {
        const nn_tensor *xn = conv_plain(&P->xn, x, &rc);
        const nn_tensor *dyn = rc ? NULL : conv_plain(&P->dyn, dy, &rc);
        return rc ? rc : nn__ref_conv_backward(e, NULL, d, NULL, dw, db, dyn, xn, NULL);
    }
    const size_t nwt = (size_t)d->cout * d->cin * d->k * d->k;
    const size_t nblk = floats_of(P->bwd_w.wbytes), nplain = floats_of(nwt * sizeof(float));
    const size_t nb = floats_of((size_t)d->cout * sizeof(float));
    float *ws = nn__workspace(e, nblk + nplain + nb + floats_of(P->bwd_w.sbytes));
    if (!ws) return NN_ENOMEM;
    float *gblk = ws, *gplain = ws + nblk, *gb = gplain + nplain, *scratch = gb + nb;
    float *gout = P->bwd_w.wreorder ? gblk : gplain;
    dn_arg a[5] = {{DNNL_ARG_SRC, &P->src, x->data},
                   {DNNL_ARG_DIFF_DST, &P->dst, dy->data},
                   {DNNL_ARG_DIFF_WEIGHTS, &P->bwd_w.wmd, gout},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->bwd_w.pd, dnnl_query_scratchpad_md, 0), scratch},
                   {DNNL_ARG_DIFF_BIAS, &P->bias, gb}};
    rc = dn_exec(e, P->bwd_w.prim, a, d->bias ? 5 : 4, "convolution backward weights");
    if (!rc && P->bwd_w.wreorder) {
        dn_arg r[2] = {{DNNL_ARG_FROM, &P->bwd_w.wmd, gblk}, {DNNL_ARG_TO, &P->wuser, gplain}};
        rc = dn_exec(e, P->bwd_w.wreorder, r, 2, "weight gradient reorder");
    }
    if (rc) return rc;
    if (dw)
        for (size_t i = 0; i < nwt; i++) dw[i] += gplain[i];
    if (db)
        for (int o = 0; o < d->cout; o++) db[o] += gb[o];
    return 0;
}

static int dn_conv_backward(nn_engine *e, nn_kplan **plan, const nn_conv_desc *d, nn_tensor *dx,
                            float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                            const float *w)
{
    if (conv_own_wino(e, d, x->blk, dy->blk))
        return nn__wino_backward(e, dn_gemm, d, dx, dw, db, dy, x, w);
    dn_conv *P;
    int rc = conv_plan(e, plan, d, x->blk > 1 ? x->blk : 1, &P);
    if (!rc && (dw || db)) rc = conv_backward_weights(e, P, dw, db, dy, x);
    if (!rc && dx) rc = conv_backward_data(e, P, dx, dy, w);
    return rc;
}

/* ---- BatchNorm ------------------------------------------------------------------------- */

static int bn_plan(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, int xblk, dn_bn **out)
{
    dn_bn *P = *plan ? (dn_bn *)*plan : NULL;
    if (P && P->kind == PLAN_BN && !memcmp(&P->d, d, sizeof *d) && P->xblk == xblk) {
        *out = P;
        return 0;
    }
    P = dn_plan_fresh(plan, PLAN_BN, sizeof *P);
    if (!P) return NN_ENOMEM;
    P->d = *d;
    P->xblk = xblk;
    P->flags = dnnl_use_scale | dnnl_use_shift;
    if (d->relu) P->flags |= dnnl_fuse_norm_relu;
    if (!d->training) P->flags |= dnnl_use_global_stats;
    int rc = dn_act_md(&P->data, d->n, d->c, d->h, d->w, xblk);
    if (!rc) rc = dn_vec_md(&P->vec, d->c);
    if (rc) return rc;
    /* Training-mode propagation also in eval mode: it keeps the fused ReLU's mask, which a
     * backward through a frozen BatchNorm needs. */
    dnnl_batch_normalization_desc_t op;
    rc = dn_check(dnnl_batch_normalization_forward_desc_init(&op, dnnl_forward_training, &P->data,
                                                            d->eps, P->flags),
                  "batch normalization forward");
    if (!rc) rc = dn_make(e, &P->fpd, &P->fwd, &P->fs, &op, NULL, "batch normalization forward");
    if (rc) return rc;
    P->maskbytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0));
    if (P->maskbytes && !(P->mask = aligned_alloc(64, (P->maskbytes + 63) / 64 * 64)))
        return nn_err(NN_ENOMEM, "BatchNorm: cannot allocate a ReLU mask of %zu bytes", P->maskbytes);
    *out = P;
    return 0;
}

static int dn_bn_forward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *y,
                         const nn_tensor *x, const float *gamma, const float *beta, float *mean,
                         float *var)
{
    if (x->blk <= 1) return nn__ref_bn_forward(e, plan, d, y, x, gamma, beta, mean, var);
    dn_bn *P;
    int rc = bn_plan(e, plan, d, x->blk, &P);
    if (!rc) rc = nn__tensor_ensure(y, d->n, d->c, d->h, d->w, x->blk);
    if (rc) return rc;
    float *ws = nn__workspace(e, floats_of(P->fs));
    if (!ws) return NN_ENOMEM;
    dn_arg a[8] = {{DNNL_ARG_SRC, &P->data, x->data},
                   {DNNL_ARG_DST, &P->data, y->data},
                   {DNNL_ARG_SCALE, &P->vec, (void *)gamma},
                   {DNNL_ARG_SHIFT, &P->vec, (void *)beta},
                   {DNNL_ARG_MEAN, &P->vec, mean},
                   {DNNL_ARG_VARIANCE, &P->vec, var},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_scratchpad_md, 0), ws},
                   {DNNL_ARG_WORKSPACE, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0), P->mask}};
    return dn_exec(e, P->fwd, a, P->mask ? 8 : 7, "batch normalization forward");
}

/* The backward always computes the scale and shift gradients: oneDNN 2.6 has no
 * data-only backward with a scale (a frozen BatchNorm's are computed and dropped). */
static int bn_make_backward(nn_engine *e, dn_bn *P)
{
    if (P->bwd) return 0;
    dnnl_batch_normalization_desc_t op;
    int rc = dn_check(dnnl_batch_normalization_backward_desc_init(&op, dnnl_backward, &P->data,
                                                                 &P->data, P->d.eps, P->flags),
                      "batch normalization backward");
    if (!rc) rc = dn_make(e, &P->bpd, &P->bwd, &P->bs, &op, P->fpd, "batch normalization backward");
    return rc;
}

static int dn_bn_backward(nn_engine *e, nn_kplan **plan, const nn_bn_desc *d, nn_tensor *dx,
                          float *dgamma, float *dbeta, const nn_tensor *dy, const nn_tensor *x,
                          const nn_tensor *y, const float *gamma, const float *beta,
                       const float *mean,
                          const float *var)
{
    if (x->blk <= 1)
        return nn__ref_bn_backward(e, plan, d, dx, dgamma, dbeta, dy, x, y, gamma, beta, mean,
                                   var);
    dn_bn *P;
    int rc = bn_plan(e, plan, d, x->blk, &P);
    if (!rc) rc = bn_make_backward(e, P);
    if (!rc && dx) rc = nn__tensor_ensure(dx, d->n, d->c, d->h, d->w, x->blk);
    if (rc) return rc;
    /* Workspace: the two parameter gradients, the scratchpad, and dx when none is wanted
     * (oneDNN always writes it). */
    const size_t nv = floats_of((size_t)d->c * sizeof(float)), ns = floats_of(P->bs);
    const size_t nx = dx ? 0 : nn_tensor_storage(x);
    float *ws = nn__workspace(e, 2 * nv + ns + nx);
    if (!ws) return NN_ENOMEM;
    float *dg = ws, *db = ws + nv, *scratch = ws + 2 * nv, *dxs = dx ? dx->data : scratch + ns;
    dn_arg a[12] = {{DNNL_ARG_SRC, &P->data, x->data},
                    {DNNL_ARG_DIFF_DST, &P->data, dy->data},
                    {DNNL_ARG_SCALE, &P->vec, (void *)gamma},
                    {DNNL_ARG_MEAN, &P->vec, (void *)mean},
                    {DNNL_ARG_VARIANCE, &P->vec, (void *)var},
                    {DNNL_ARG_DIFF_SRC, &P->data, dxs},
                    {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->bpd, dnnl_query_scratchpad_md, 0), scratch},
                    {DNNL_ARG_DIFF_SCALE, &P->vec, dg},
                    {DNNL_ARG_DIFF_SHIFT, &P->vec, db},
                    {DNNL_ARG_WORKSPACE, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0), P->mask}};
    /* oneDNN 2.6 checks that the shift is given, though the backward does not read it. */
    a[P->mask ? 10 : 9] = (dn_arg){DNNL_ARG_SHIFT, &P->vec, (void *)beta};
    rc = dn_exec(e, P->bwd, a, P->mask ? 11 : 10, "batch normalization backward");
    if (rc) return rc;
    if (dgamma)
        for (int c = 0; c < d->c; c++) dgamma[c] += dg[c];
    if (dbeta)
        for (int c = 0; c < d->c; c++) dbeta[c] += db[c];
    return 0;
}

/* ---- pooling --------------------------------------------------------------------------- */

/* MaxPool2d(2, 2) on a blocked layout, the cnn's pooling, by hand: oneDNN 2.6's own took
 * 2.5 ms (AVX-512) and 9.9 ms (AVX2) for the cnn's 64x32x28x28, several times its memory
 * traffic. Windows never overlap, so each output vector is the lane-wise maximum of four
 * input vectors; arg keeps which of the four (0-3) won, the first maximum in row-major order
 * as in the reference kernel (a running best from -FLT_MAX, replaced only by a strictly
 * greater value), selected with masks so that the loop vectorises. */
static inline __attribute__((always_inline)) void max2_forward(float *restrict y,
                                                               uint8_t *restrict arg,
                                                               const float *restrict x,
                                                               size_t planes, int H, int W,
                                                               int OH, int OW, const int B)
{
    for (size_t pl = 0; pl < planes; pl++) {
        const float *xp = x + pl * H * W * B;
        float *yp = y + pl * OH * OW * B;
        uint8_t *ap = arg + pl * OH * OW * B;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *p0 = xp + ((size_t)(2 * oy) * W + 2 * ox) * B, *p1 = p0 + B;
                const float *p2 = p0 + (size_t)W * B, *p3 = p2 + B;
                float *yo = yp + ((size_t)oy * OW + ox) * B;
                uint8_t *ao = ap + ((size_t)oy * OW + ox) * B;
                for (int j = 0; j < B; j++) {
                    float m = p0[j] > -FLT_MAX ? p0[j] : -FLT_MAX;
                    int k = 0, t;
                    t = -(p1[j] > m);
                    m = p1[j] > m ? p1[j] : m;
                    k = (k & ~t) | (1 & t);
                    t = -(p2[j] > m);
                    m = p2[j] > m ? p2[j] : m;
                    k = (k & ~t) | (2 & t);
                    t = -(p3[j] > m);
                    m = p3[j] > m ? p3[j] : m;
                    k = (k & ~t) | (3 & t);
                    yo[j] = m;
                    ao[j] = (uint8_t)k;
                }
            }
    }
}

/* dx = dy at each window's maximum, 0 elsewhere (and on a dropped odd last row or column). */
static inline __attribute__((always_inline)) void max2_backward(float *restrict dx,
                                                                const uint8_t *restrict arg,
                                                                const float *restrict dy,
                                                                size_t planes, int H, int W,
                                                                int OH, int OW, const int B)
{
    for (size_t pl = 0; pl < planes; pl++) {
        float *dp = dx + pl * H * W * B;
        const float *gp = dy + pl * OH * OW * B;
        const uint8_t *ap = arg + pl * OH * OW * B;
        if (H > 2 * OH) memset(dp + (size_t)(H - 1) * W * B, 0, sizeof(float) * W * B);
        for (int oy = 0; oy < OH; oy++) {
            if (W > 2 * OW) {
                memset(dp + ((size_t)(2 * oy) * W + W - 1) * B, 0, sizeof(float) * B);
                memset(dp + ((size_t)(2 * oy + 1) * W + W - 1) * B, 0, sizeof(float) * B);
            }
            for (int ox = 0; ox < OW; ox++) {
                float *d0 = dp + ((size_t)(2 * oy) * W + 2 * ox) * B, *d1 = d0 + B;
                float *d2 = d0 + (size_t)W * B, *d3 = d2 + B;
                const float *g = gp + ((size_t)oy * OW + ox) * B;
                const uint8_t *a = ap + ((size_t)oy * OW + ox) * B;
                for (int j = 0; j < B; j++) {
                    d0[j] = a[j] == 0 ? g[j] : 0.0f;
                    d1[j] = a[j] == 1 ? g[j] : 0.0f;
                    d2[j] = a[j] == 2 ? g[j] : 0.0f;
                    d3[j] = a[j] == 3 ? g[j] : 0.0f;
                }
            }
        }
    }
}

static int pool_is_max2(const nn_pool_desc *d)
{
    return d->kind == NN_POOL_MAX && d->k == 2 && d->stride == 2 && d->pad == 0;
}

static int pool_plan(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, int xblk, dn_pool **out)
{
    dn_pool *P = *plan ? (dn_pool *)*plan : NULL;
    if (P && P->kind == PLAN_POOL && !memcmp(&P->d, d, sizeof *d) && P->xblk == xblk) {
        *out = P;
        return 0;
    }
    P = dn_plan_fresh(plan, PLAN_POOL, sizeof *P);
    if (!P) return NN_ENOMEM;
    P->d = *d;
    P->xblk = xblk;
    *out = P;
    if (xblk <= 1) return 0; /* the reference kernels run it */
    if (pool_is_max2(d)) {   /* by hand, above */
        nn_tensor y = {NULL, d->n, d->c, d->oh, d->ow, 0, xblk};
        P->argbytes = nn_tensor_storage(&y);
        P->argmax = malloc(P->argbytes);
        return P->argmax ? 0 : nn_err(NN_ENOMEM, "MaxPool2d: cannot allocate %zu indices", P->argbytes);
    }
    int rc = dn_act_md(&P->src, d->n, d->c, d->h, d->w, xblk);
    if (!rc) rc = dn_act_md(&P->dst, d->n, d->c, d->oh, d->ow, xblk);
    if (rc) return rc;
    dnnl_alg_kind_t alg = d->kind == NN_POOL_MAX ? dnnl_pooling_max : dnnl_pooling_avg_include_padding;
    dnnl_dims_t strides = {d->stride, d->stride}, kernel = {d->k, d->k}, dil = {0, 0},
                pad = {d->pad, d->pad};
    dnnl_pooling_v2_desc_t op[2];
    rc = dn_check(dnnl_pooling_v2_forward_desc_init(&op[0], dnnl_forward_training, alg, &P->src,
                                                    &P->dst, strides, kernel, dil, pad, pad),
                  "pooling forward");
    if (!rc) rc = dn_make(e, &P->fpd, &P->fwd, &P->fs, &op[0], NULL, "pooling forward");
    if (!rc) rc = dn_check(dnnl_pooling_v2_backward_desc_init(&op[1], alg, &P->src, &P->dst,
                                                              strides, kernel, dil, pad, pad),
                           "pooling backward");
    if (!rc) rc = dn_make(e, &P->bpd, &P->bwd, &P->bs, &op[1], P->fpd, "pooling backward");
    if (rc) return rc;
    P->argbytes = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0));
    if (P->argbytes && !(P->argmax = aligned_alloc(64, (P->argbytes + 63) / 64 * 64)))
        return nn_err(NN_ENOMEM, "MaxPool2d: cannot allocate %zu bytes of indices", P->argbytes);
    return 0;
}

static int dn_pool_forward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *y,
                           const nn_tensor *x)
{
    const int xblk = x->blk > 1 ? x->blk : 1;
    dn_pool *P;
    int rc = pool_plan(e, plan, d, xblk, &P);
    if (rc) return rc;
    if (xblk == 1) return nn__ref_pool_forward(e, &P->ref, d, y, x);
    rc = nn__tensor_ensure(y, d->n, d->c, d->oh, d->ow, xblk);
    if (rc) return rc;
    if (pool_is_max2(d)) {
        const size_t planes = (size_t)d->n * ((d->c + xblk - 1) / xblk);
        if (xblk == 16)
            max2_forward(y->data, P->argmax, x->data, planes, d->h, d->w, d->oh, d->ow, 16);
        else
            max2_forward(y->data, P->argmax, x->data, planes, d->h, d->w, d->oh, d->ow, 8);
        return 0;
    }
    float *ws = nn__workspace(e, floats_of(P->fs));
    if (!ws) return NN_ENOMEM;
    dn_arg a[4] = {{DNNL_ARG_SRC, &P->src, x->data},
                   {DNNL_ARG_DST, &P->dst, y->data},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_scratchpad_md, 0), ws},
                   {DNNL_ARG_WORKSPACE, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0), P->argmax}};
    return dn_exec(e, P->fwd, a, P->argmax ? 4 : 3, "pooling forward");
}

static int dn_pool_backward(nn_engine *e, nn_kplan **plan, const nn_pool_desc *d, nn_tensor *dx,
                            const nn_tensor *dy, const nn_tensor *x)
{
    const int xblk = x->blk > 1 ? x->blk : 1;
    dn_pool *P;
    int rc = pool_plan(e, plan, d, xblk, &P);
    if (rc) return rc;
    if (xblk == 1) return nn__ref_pool_backward(e, &P->ref, d, dx, dy, x);
    rc = nn__tensor_ensure(dx, d->n, d->c, d->h, d->w, xblk);
    if (rc) return rc;
    if (pool_is_max2(d)) {
        const size_t planes = (size_t)d->n * ((d->c + xblk - 1) / xblk);
        if (xblk == 16)
            max2_backward(dx->data, P->argmax, dy->data, planes, d->h, d->w, d->oh, d->ow, 16);
        else
            max2_backward(dx->data, P->argmax, dy->data, planes, d->h, d->w, d->oh, d->ow, 8);
        return 0;
    }
    float *ws = nn__workspace(e, floats_of(P->bs));
    if (!ws) return NN_ENOMEM;
    dn_arg a[4] = {{DNNL_ARG_DIFF_DST, &P->dst, dy->data},
                   {DNNL_ARG_DIFF_SRC, &P->src, dx->data},
                   {DNNL_ARG_SCRATCHPAD, dnnl_primitive_desc_query_md(P->bpd, dnnl_query_scratchpad_md, 0), ws},
                   {DNNL_ARG_WORKSPACE, dnnl_primitive_desc_query_md(P->fpd, dnnl_query_workspace_md, 0), P->argmax}};
    return dn_exec(e, P->bwd, a, P->argmax ? 4 : 3, "pooling backward");
}

/* ---- Linear: oneDNN's sgemm, 5-15% faster than OpenBLAS's on the mlp's shapes ------------ */

static void dn_gemm(char ta, char tb, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc)
{
    dnnl_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static int dn_linear_forward(nn_engine *e, const nn_linear_desc *d, nn_tensor *y,
                             const nn_tensor *x, const float *w, const float *b)
{
    return nn__linear_forward_gemm(dn_gemm, d, y, x, w, b);
}

static int dn_linear_backward(nn_engine *e, const nn_linear_desc *d, nn_tensor *dx, float *dw,
                              float *db, const nn_tensor *dy, const nn_tensor *x, const float *w)
{
    return nn__linear_backward_gemm(dn_gemm, d, dx, dw, db, dy, x, w);
}

/* ---- the engine ------------------------------------------------------------------------ */

static void dn_engine_destroy(nn_engine *e)
{
    dn_impl *I = e->impl;
    if (!I) return;
    if (I->st) dnnl_stream_destroy(I->st);
    if (I->eng) dnnl_engine_destroy(I->eng);
    free(I);
    e->impl = NULL;
}

static const nn_engine_ops dnnl_ops = {
    .name = "cpu",
    .kind = NN_ENGINE_CPU,
    .destroy = dn_engine_destroy,
    .plan_free = dn_plan_free,
    .alloc = nn__host_alloc,
    .release = nn__host_release,
    .conv_forward = dn_conv_forward,
    .conv_backward = dn_conv_backward,
    .bn_forward = dn_bn_forward,
    .bn_backward = dn_bn_backward,
    .pool_forward = dn_pool_forward,
    .pool_backward = dn_pool_backward,
    .linear_forward = dn_linear_forward,
    .linear_backward = dn_linear_backward,
};

int nn__dnnl_engine_init(nn_engine *e)
{
    dn_impl *I = calloc(1, sizeof *I);
    if (!I) return nn_err(NN_ENOMEM, "cannot allocate the cpu engine");
    int rc = dn_check(dnnl_engine_create(&I->eng, dnnl_cpu, 0), "engine");
    if (!rc) rc = dn_check(dnnl_stream_create(&I->st, I->eng, dnnl_stream_default_flags), "stream");
    e->impl = I;
    if (rc) {
        dn_engine_destroy(e);
        return rc;
    }
    e->ops = &dnnl_ops;
    /* The ISA oneDNN dispatches to (the CPU's, or less under DNNL_MAX_CPU_ISA): its AVX-512
     * kernels want 16-channel blocks, its AVX2 ones 8. */
    const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    const int avx512 = (isa & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
    e->blk = avx512 ? 16 : 8;
    I->own_wino = !avx512 && nn__wino_supported();
    const dnnl_version_t *v = dnnl_version();
    snprintf(e->desc, sizeof e->desc, "cpu: oneDNN %d.%d.%d, %s, activations nChw%dc%s", v->major,
             v->minor, v->patch, avx512 ? "AVX-512" : "AVX2", e->blk,
             avx512 ? ", Winograd 3x3" : I->own_wino ? ", Winograd 3x3 (strata's)" : "");
    return 0;
}
