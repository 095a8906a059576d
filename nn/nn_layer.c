/* What every layer shares: allocation, freeing, shape checks, forward/backward dispatch,
 * backward planning, parameter and buffer visits, and standalone binding. */
#include "nn/nn_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- shared layer plumbing ------------------------------------------------------------ */

nn_layer *nn__layer_alloc(size_t size, const nn_layer_ops *ops, int nparams, int nbufs)
{
    nn_layer *l = calloc(1, size);
    if (!l) return NULL;
    l->ops = ops;
    if (nparams) {
        l->params = calloc((size_t)nparams, sizeof(nn_param));
        if (!l->params) {
            free(l);
            return NULL;
        }
        l->nparams = nparams;
    }
    if (nbufs) {
        l->bufs = calloc((size_t)nbufs, sizeof(nn_buffer));
        if (!l->bufs) {
            free(l->params);
            free(l);
            return NULL;
        }
        l->nbufs = nbufs;
    }
    l->training = 1;
    l->need_dx = 1;
    return l;
}

void nn__param_decl(nn_layer *l, int i, const char *name, int ndim, const int *shape,
                    int init_kind, float init_a)
{
    nn_param *p = &l->params[i];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int d = 0; d < ndim; d++) {
        p->shape[d] = shape[d];
        p->numel *= (size_t)shape[d];
    }
    p->init_kind = init_kind;
    p->init_a = init_a;
    p->is_bias = strcmp(name, "bias") == 0;
    p->trainable = 1;
}

int nn__buffer_decl(nn_layer *l, int i, const char *name, size_t numel, float value)
{
    nn_buffer *b = &l->bufs[i];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->numel = numel;
    b->data = malloc(numel * sizeof(float));
    if (!b->data) return nn_err(NN_ENOMEM, "cannot allocate buffer %s (%zu floats)", name, numel);
    for (size_t k = 0; k < numel; k++) b->data[k] = value;
    return 0;
}

int nn__layer_set_kids(nn_layer *l, nn_layer **kids, int n)
{
    l->kids = calloc((size_t)(n > 0 ? n : 1), sizeof(nn_layer *));
    if (!l->kids) {
        for (int i = 0; i < n; i++) nn_layer_free(kids[i]);
        return nn_err(NN_ENOMEM, "cannot allocate %d children", n);
    }
    for (int i = 0; i < n; i++) l->kids[i] = kids[i];
    l->nkids = n;
    return 0;
}

int nn__layer_resize_y(nn_layer *l, int n)
{
    return nn_tensor_resize(&l->y, n, l->out_shape[0], l->out_shape[1], l->out_shape[2]);
}

int nn__layer_resize_dx(nn_layer *l, int n)
{
    return nn_tensor_resize(&l->dx, n, l->in_shape[0], l->in_shape[1], l->in_shape[2]);
}

/* Frees the layer's engine plan, if it has one. */
static void layer_drop_plan(nn_layer *l)
{
    if (l->plan) l->eng->ops->plan_free(l->eng, l->plan);
    l->plan = NULL;
}

void nn_layer_free(nn_layer *l)
{
    if (!l) return;
    for (int i = 0; i < l->nkids; i++) nn_layer_free(l->kids[i]);
    free(l->kids);
    layer_drop_plan(l);
    if (l->ops->free) l->ops->free(l);
    for (int i = 0; i < l->nbufs; i++) free(l->bufs[i].data);
    free(l->bufs);
    free(l->params);
    nn_tensor_free(&l->y);
    nn_tensor_free(&l->dx);
    nn_tensor_free(&l->xc);
    nn_tensor_free(&l->dxc);
    free(l);
}

void nn_layer_set_engine(nn_layer *l, nn_engine *e)
{
    if (l->eng != e) layer_drop_plan(l);
    l->eng = e;
    for (int i = 0; i < l->nkids; i++) nn_layer_set_engine(l->kids[i], e);
}

size_t nn_layer_numel(const nn_layer *l)
{
    size_t n = 0;
    for (int i = 0; i < l->nparams; i++) n += l->params[i].numel;
    for (int i = 0; i < l->nkids; i++) n += nn_layer_numel(l->kids[i]);
    return n;
}

int nn_layer_infer(nn_layer *l, const int in[3])
{
    for (int d = 0; d < 3; d++) {
        if (in[d] <= 0)
            return nn_err(NN_ESHAPE, "%s got an empty input (%d, %d, %d)", l->ops->type, in[0],
                          in[1], in[2]);
        l->in_shape[d] = in[d];
    }
    /* Per-sample sizes are int elsewhere; refuse what would overflow them. */
    if ((long long)in[0] * in[1] * in[2] > INT_MAX)
        return nn_err(NN_ERANGE, "%s: input (%d, %d, %d) has more than %d values per sample",
                      l->ops->type, in[0], in[1], in[2], INT_MAX);
    return l->ops->infer(l, in);
}

void nn_layer_set_training(nn_layer *l, int training)
{
    l->training = training;
    for (int i = 0; i < l->nkids; i++) nn_layer_set_training(l->kids[i], training);
}

int nn_layer_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    if (x->c != l->in_shape[0] || x->h != l->in_shape[1] || x->w != l->in_shape[2])
        return nn_err(NN_ESHAPE, "%s expects input (N, %d, %d, %d), got (%d, %d, %d, %d)",
                      l->ops->type, l->in_shape[0], l->in_shape[1], l->in_shape[2], x->n, x->c,
                      x->h, x->w);
    if (x->n <= 0) return nn_err(NN_ESHAPE, "%s got a batch of %d samples", l->ops->type, x->n);
    if (!l->eng) return nn_err(NN_ESTATE, "%s is not bound to an engine", l->ops->type);
    l->x_blk = x->blk > 1 ? x->blk : 1;
    if (l->x_blk > 1 && !l->ops->blocked_ok) {
        /* A layer that takes plain NCHW only, after one that gave the engine's layout. */
        int rc = nn_tensor_convert(&l->xc, x, 1);
        if (rc) return rc;
        x = &l->xc;
    }
    l->x = x;
    return l->ops->forward(l, x, ctx);
}

const nn_tensor *nn_layer_grad_input(const nn_layer *l)
{
    return l->x_blk > 1 && !l->ops->blocked_ok ? &l->dxc : &l->dx;
}

int nn_layer_backward(nn_layer *l, const nn_tensor *dy)
{
    if (!l->x) return nn_err(NN_ESTATE, "%s: backward without forward", l->ops->type);
    if (dy->n != l->x->n || dy->c != l->out_shape[0] || dy->h != l->out_shape[1] ||
        dy->w != l->out_shape[2])
        return nn_err(NN_ESHAPE, "%s backward expects dy (%d, %d, %d, %d), got (%d, %d, %d, %d)",
                      l->ops->type, l->x->n, l->out_shape[0], l->out_shape[1], l->out_shape[2],
                      dy->n, dy->c, dy->h, dy->w);
    const int yblk = l->y.blk > 1 ? l->y.blk : 1;
    if ((dy->blk > 1 ? dy->blk : 1) != yblk)
        return nn_err(NN_ESHAPE, "%s backward got dy in layout %d, its output has layout %d",
                      l->ops->type, dy->blk > 1 ? dy->blk : 1, yblk);
    for (int i = 0; i < l->nparams; i++) { /* a fresh backward: clear what the layer adds to */
        nn_param *p = &l->params[i];
        if (!p->grad_zero || l->ops->fresh_grads) continue;
        memset(p->grad, 0, p->numel * sizeof(float));
        p->grad_zero = 0;
    }
    int rc = l->ops->backward(l, dy);
    if (!rc && l->need_dx && l->x_blk > 1 && !l->ops->blocked_ok)
        rc = nn_tensor_convert(&l->dxc, &l->dx, l->x_blk); /* back to the input's layout */
    return rc;
}

int nn__subtree_trainable(const nn_layer *l)
{
    for (int i = 0; i < l->nparams; i++)
        if (l->params[i].trainable) return 1;
    for (int i = 0; i < l->nkids; i++)
        if (nn__subtree_trainable(l->kids[i])) return 1;
    return 0;
}

void nn_layer_plan_backward(nn_layer *l, int need_dx)
{
    l->need_dx = need_dx;
    l->any_trainable = nn__subtree_trainable(l);
    if (l->ops->plan) l->ops->plan(l);
}

/* ---- parameter and buffer visits ------------------------------------------------------ */

static void nn__join(char *out, size_t len, const char *prefix, const char *name)
{
    if (prefix[0])
        snprintf(out, len, "%s.%s", prefix, name);
    else
        snprintf(out, len, "%s", name);
}

int nn_layer_visit_params(nn_layer *l, const char *prefix, nn_param_visit_fn fn, void *ud)
{
    char name[256];
    for (int i = 0; i < l->nparams; i++) {
        nn__join(name, sizeof name, prefix, l->params[i].name);
        int rc = fn(ud, name, &l->params[i]);
        if (rc) return rc;
    }
    for (int i = 0; i < l->nkids; i++) {
        nn__join(name, sizeof name, prefix, l->kids[i]->name);
        int rc = nn_layer_visit_params(l->kids[i], name, fn, ud);
        if (rc) return rc;
    }
    return 0;
}

int nn_layer_visit_buffers(nn_layer *l, const char *prefix, nn_buffer_visit_fn fn, void *ud)
{
    char name[256];
    for (int i = 0; i < l->nbufs; i++) {
        nn__join(name, sizeof name, prefix, l->bufs[i].name);
        int rc = fn(ud, name, &l->bufs[i]);
        if (rc) return rc;
    }
    for (int i = 0; i < l->nkids; i++) {
        nn__join(name, sizeof name, prefix, l->kids[i]->name);
        int rc = nn_layer_visit_buffers(l->kids[i], name, fn, ud);
        if (rc) return rc;
    }
    return 0;
}

/* ---- standalone binding (tests, benchmarks) ------------------------------------------- */

typedef struct {
    float *data, *grad;
    size_t off;
    nn_rng *rng;
} nn__bind_ctx;

/* Fills a parameter from its declared init. */
void nn__param_init(nn_param *p, nn_rng *rng)
{
    switch (p->init_kind) {
    case NN_INIT_UNIFORM:
        nn_rng_fill_uniform(rng, p->data, p->numel, -p->init_a, p->init_a);
        break;
    case NN_INIT_NORMAL:
        nn_rng_fill_normal(rng, p->data, p->numel, p->init_a);
        break;
    default:
        for (size_t i = 0; i < p->numel; i++) p->data[i] = p->init_a;
    }
}

static int nn__bind_one(void *ud, const char *name, nn_param *p)
{
    nn__bind_ctx *c = ud;
    p->data = c->data + c->off;
    p->grad = c->grad + c->off;
    p->trainable = 1;
    c->off += p->numel;
    nn__param_init(p, c->rng);
    return 0;
}

int nn_layer_bind_standalone(nn_layer *l, const int in[3], nn_rng *rng, nn_engine *e,
                             float **param_slab, float **grad_slab)
{
    *param_slab = *grad_slab = NULL;
    nn_layer_set_engine(l, e);
    int rc = nn_layer_infer(l, in);
    if (rc) return rc;
    size_t n = nn_layer_numel(l);
    float *data = calloc(n ? n : 1, sizeof(float));
    float *grad = calloc(n ? n : 1, sizeof(float));
    if (!data || !grad) {
        free(data);
        free(grad);
        return nn_err(NN_ENOMEM, "cannot allocate slabs of %zu parameters", n);
    }
    nn__bind_ctx c = {data, grad, 0, rng};
    nn_layer_visit_params(l, "", nn__bind_one, &c);
    nn_layer_plan_backward(l, 1);
    *param_slab = data;
    *grad_slab = grad;
    return 0;
}

