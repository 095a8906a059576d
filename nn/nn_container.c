/* The Sequential container: children run in order, each on the previous one's output. */
#include "nn/nn_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- Sequential ----------------------------------------------------------------------- */

static int seq_infer(nn_layer *l, const int in[3])
{
    int shape[3] = {in[0], in[1], in[2]};
    for (int i = 0; i < l->nkids; i++) {
        int rc = nn_layer_infer(l->kids[i], shape);
        if (rc) {
            return nn_err_wrap(rc, "child (%s)", l->kids[i]->name);
        }
        memcpy(shape, l->kids[i]->out_shape, sizeof shape);
    }
    memcpy(l->out_shape, shape, sizeof shape);
    return 0;
}

static int seq_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    const nn_tensor *h = x;
    for (int i = 0; i < l->nkids; i++) {
        /* In place only over a buffer the previous sibling owns: never over the caller's
         * input or a view of it. */
        l->kids[i]->x_overwritable = i > 0 && h == &l->kids[i - 1]->y && h->cap > 0;
        int rc = nn_layer_forward(l->kids[i], h, ctx);
        if (rc) return rc;
        h = &l->kids[i]->y;
    }
    nn__tensor_view(&l->y, h, h->n, h->c, h->h, h->w);
    return 0;
}

static int seq_backward(nn_layer *l, const nn_tensor *dy)
{
    const nn_tensor *g = dy;
    int i;
    for (i = l->nkids - 1; i >= 0; i--) {
        nn_layer *k = l->kids[i];
        if (!k->any_trainable && !k->need_dx) break; /* nothing below needs a gradient */
        int rc = nn_layer_backward(k, g);
        if (rc) return rc;
        if (!k->need_dx) break;
        g = nn_layer_grad_input(k);
    }
    if (l->need_dx) {
        if (l->nkids == 0)
            nn__tensor_view(&l->dx, dy, dy->n, dy->c, dy->h, dy->w);
        else
            nn__tensor_view(&l->dx, g, g->n, g->c, g->h, g->w);
    }
    return 0;
}

static void seq_plan(nn_layer *l)
{
    int below = 0; /* a child before i has a trainable parameter */
    int trainable_before[l->nkids > 0 ? l->nkids : 1];
    for (int i = 0; i < l->nkids; i++) {
        trainable_before[i] = below;
        below |= nn__subtree_trainable(l->kids[i]);
    }
    for (int i = 0; i < l->nkids; i++)
        nn_layer_plan_backward(l->kids[i], l->need_dx || trainable_before[i]);
}

static int seq_describe(const nn_layer *l, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    return 0;
}

static const nn_layer_ops seq_ops = {
    .type = "Sequential",
    .infer = seq_infer,
    .forward = seq_forward,
    .backward = seq_backward,
    .describe = seq_describe,
    .plan = seq_plan,
    .blocked_ok = 1,
};

/* A BatchNorm followed by a ReLU computes both (the ReLU passes through): one pass over the
 * activation instead of two, on every engine, with the same arithmetic. */
static void seq_fuse(nn_layer *l, int i)
{
    if (i < 0 || i + 1 >= l->nkids) return;
    int fuse = nn_layer_is_batchnorm(l->kids[i]) && nn__is_relu(l->kids[i + 1]);
    nn__bn_fuse_relu(l->kids[i], fuse);
    if (nn__is_relu(l->kids[i + 1])) nn__relu_set_fused(l->kids[i + 1], fuse);
}

int nn_sequential_new(nn_layer **out, nn_layer **kids, int n)
{
    *out = NULL;
    nn_layer *l = nn__layer_alloc(sizeof(nn_layer), &seq_ops, 0, 0);
    if (!l) {
        for (int i = 0; i < n; i++) nn_layer_free(kids[i]);
        return nn_err(NN_ENOMEM, "cannot allocate Sequential");
    }
    int rc = nn__layer_set_kids(l, kids, n);
    if (rc) {
        free(l);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        snprintf(kids[i]->name, sizeof kids[i]->name, "%d", i);
        seq_fuse(l, i);
    }
    *out = l;
    return 0;
}

int nn_sequential_append(nn_layer *seq, nn_layer *kid)
{
    if (seq->ops != &seq_ops) {
        nn_layer_free(kid);
        return nn_err(NN_EINVAL, "cannot append to a %s", seq->ops->type);
    }
    nn_layer **k = realloc(seq->kids, (size_t)(seq->nkids + 1) * sizeof *k);
    if (!k) {
        nn_layer_free(kid);
        return nn_err(NN_ENOMEM, "cannot grow Sequential");
    }
    seq->kids = k;
    snprintf(kid->name, sizeof kid->name, "%d", seq->nkids);
    seq->kids[seq->nkids++] = kid;
    seq_fuse(seq, seq->nkids - 2);
    return 0;
}
