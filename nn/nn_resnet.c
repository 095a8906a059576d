/* torchvision's residual blocks. BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the identity
 * or a downsample (conv1x1 + BN), then ReLU. Bottleneck (v1.5, stride on the 3x3):
 * conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, expansion 4. The children are named as in
 * torchvision so parameter names match its state_dict; the (relu) child is shown once but,
 * as in torchvision, applied after every BN of the main path, so the block keeps its own
 * ReLU outputs rather than reuse one layer's buffers. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    nn_layer base;
    int nconv;             /* 2 (BasicBlock) or 3 (Bottleneck) */
    nn_layer *conv[3], *bn[3];
    nn_layer *relu;        /* the printed child; unused in compute */
    nn_layer *down;        /* Sequential(conv1x1, BN) or NULL */
    nn_tensor act[3];      /* ReLU outputs after bn[i] (act[nconv-1] is the block output) */
    nn_tensor g;           /* gradient staging */
} nn_block;

static int block_infer(nn_layer *l, const int in[3])
{
    nn_block *B = (nn_block *)l;
    int shape[3] = {in[0], in[1], in[2]};
    for (int i = 0; i < B->nconv; i++) {
        int rc = nn_layer_infer(B->conv[i], shape);
        if (!rc) rc = nn_layer_infer(B->bn[i], B->conv[i]->out_shape);
        if (rc) return rc;
        memcpy(shape, B->bn[i]->out_shape, sizeof shape);
    }
    int rc = nn_layer_infer(B->relu, shape);
    if (rc) return rc;
    if (B->down) {
        rc = nn_layer_infer(B->down, in);
        if (rc) return rc;
        if (memcmp(B->down->out_shape, shape, sizeof shape))
            return nn_err(NN_ESHAPE, "%s: downsample gives (%d, %d, %d) but the main path (%d, %d, %d)",
                          l->ops->type, B->down->out_shape[0], B->down->out_shape[1],
                          B->down->out_shape[2], shape[0], shape[1], shape[2]);
    } else if (memcmp(in, shape, sizeof shape)) {
        return nn_err(NN_ESHAPE, "%s without downsample maps (%d, %d, %d) to (%d, %d, %d)",
                      l->ops->type, in[0], in[1], in[2], shape[0], shape[1], shape[2]);
    }
    memcpy(l->out_shape, shape, sizeof shape);
    return 0;
}

static int block_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_block *B = (nn_block *)l;
    const nn_tensor *h = x;
    int rc;
    for (int i = 0; i < B->nconv; i++) {
        rc = nn_layer_forward(B->conv[i], h, ctx);
        if (!rc) rc = nn_layer_forward(B->bn[i], &B->conv[i]->y, ctx);
        if (rc) return rc;
        const nn_tensor *b = &B->bn[i]->y;
        rc = nn_tensor_resize(&B->act[i], b->n, b->c, b->h, b->w);
        if (rc) return rc;
        size_t n = nn_tensor_numel(b);
        float *a = B->act[i].data;
        if (i < B->nconv - 1) {
            for (size_t k = 0; k < n; k++) a[k] = b->data[k] > 0.0f ? b->data[k] : 0.0f;
            h = &B->act[i];
        } else {
            const float *id = x->data;
            if (B->down) {
                rc = nn_layer_forward(B->down, x, ctx);
                if (rc) return rc;
                id = B->down->y.data;
            }
            for (size_t k = 0; k < n; k++) {
                float v = b->data[k] + id[k];
                a[k] = v > 0.0f ? v : 0.0f;
            }
        }
    }
    const nn_tensor *o = &B->act[B->nconv - 1];
    nn__tensor_view(&l->y, o, o->n, o->c, o->h, o->w);
    return 0;
}

static int block_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_block *B = (nn_block *)l;
    const int last = B->nconv - 1;
    /* Through the final ReLU: g = dy * (out > 0); g feeds both bn[last] and the shortcut. */
    int rc = nn_tensor_resize(&B->g, dy->n, dy->c, dy->h, dy->w);
    if (rc) return rc;
    size_t n = nn_tensor_numel(dy);
    const float *out = B->act[last].data;
    for (size_t k = 0; k < n; k++) B->g.data[k] = out[k] > 0.0f ? dy->data[k] : 0.0f;
    const nn_tensor *g = &B->g;
    for (int i = last; i >= 0; i--) {
        if (!B->bn[i]->any_trainable && !B->bn[i]->need_dx) break;
        rc = nn_layer_backward(B->bn[i], g);
        if (rc) return rc;
        if (!B->bn[i]->need_dx) break;
        if (!B->conv[i]->any_trainable && !B->conv[i]->need_dx) break;
        rc = nn_layer_backward(B->conv[i], &B->bn[i]->dx);
        if (rc) return rc;
        if (i == 0 || !B->conv[i]->need_dx) break;
        /* Through the ReLU after bn[i-1], in place on conv[i]'s dx. */
        nn_tensor *d = &B->conv[i]->dx;
        const float *a = B->act[i - 1].data;
        size_t m = nn_tensor_numel(d);
        for (size_t k = 0; k < m; k++)
            if (!(a[k] > 0.0f)) d->data[k] = 0.0f;
        g = d;
    }
    if (B->down && (B->down->any_trainable || B->down->need_dx)) {
        rc = nn_layer_backward(B->down, &B->g);
        if (rc) return rc;
    }
    if (!l->need_dx) return 0;
    rc = nn__layer_resize_dx(l, dy->n);
    if (rc) return rc;
    const float *main = B->conv[0]->dx.data;
    const float *side = B->down ? B->down->dx.data : B->g.data;
    size_t m = nn_tensor_numel(&l->dx);
    for (size_t k = 0; k < m; k++) l->dx.data[k] = main[k] + side[k];
    return 0;
}

static void block_plan(nn_layer *l)
{
    nn_block *B = (nn_block *)l;
    int below = 0;
    for (int i = 0; i < B->nconv; i++) {
        nn_layer_plan_backward(B->conv[i], l->need_dx || below);
        below |= nn__subtree_trainable(B->conv[i]);
        nn_layer_plan_backward(B->bn[i], l->need_dx || below);
        below |= nn__subtree_trainable(B->bn[i]);
    }
    nn_layer_plan_backward(B->relu, 0);
    if (B->down) nn_layer_plan_backward(B->down, l->need_dx);
}

static int block_describe(const nn_layer *l, char *buf, size_t len)
{
    if (len) buf[0] = '\0';
    return 0;
}

static void block_free(nn_layer *l)
{
    nn_block *B = (nn_block *)l;
    for (int i = 0; i < 3; i++) nn_tensor_free(&B->act[i]);
    nn_tensor_free(&B->g);
}

static const nn_layer_ops basic_ops = {
    .type = "BasicBlock",
    .infer = block_infer,
    .forward = block_forward,
    .backward = block_backward,
    .describe = block_describe,
    .free = block_free,
    .plan = block_plan,
};

static const nn_layer_ops bottleneck_ops = {
    .type = "Bottleneck",
    .infer = block_infer,
    .forward = block_forward,
    .backward = block_backward,
    .describe = block_describe,
    .free = block_free,
    .plan = block_plan,
};

static int block_new(nn_layer **out, const nn_layer_ops *ops, int in_ch, int planes, int stride)
{
    *out = NULL;
    const int bottleneck = ops == &bottleneck_ops;
    const int out_ch = bottleneck ? planes * 4 : planes;
    if (in_ch <= 0 || planes <= 0 || stride <= 0)
        return nn_err(NN_ERANGE, "%s(inplanes=%d, planes=%d, stride=%d): sizes must be positive",
                      ops->type, in_ch, planes, stride);
    /* Children in torchvision's order: conv1 bn1 [conv2 bn2 conv3 bn3 | conv2 bn2] relu
     * [downsample]. Bottleneck prints relu after bn3, BasicBlock after bn1. */
    nn_layer *k[8] = {0};
    int nk = 0, rc = 0;
    const int nconv = bottleneck ? 3 : 2;
    int chans[4], ks[3], ss[3], pads[3];
    if (bottleneck) {
        int c[4] = {in_ch, planes, planes, out_ch}, kk[3] = {1, 3, 1}, st[3] = {1, stride, 1},
            pd[3] = {0, 1, 0};
        memcpy(chans, c, sizeof c);
        memcpy(ks, kk, sizeof kk);
        memcpy(ss, st, sizeof st);
        memcpy(pads, pd, sizeof pd);
    } else {
        int c[3] = {in_ch, planes, planes}, kk[2] = {3, 3}, st[2] = {stride, 1}, pd[2] = {1, 1};
        memcpy(chans, c, sizeof c);
        memcpy(ks, kk, sizeof kk);
        memcpy(ss, st, sizeof st);
        memcpy(pads, pd, sizeof pd);
    }
    nn_layer *conv[3] = {0}, *bn[3] = {0}, *relu = NULL, *down = NULL;
    for (int i = 0; i < nconv && !rc; i++) {
        rc = nn_conv2d_new(&conv[i], chans[i], chans[i + 1], ks[i], ss[i], pads[i], 0);
        if (!rc) rc = nn_batchnorm_new(&bn[i], chans[i + 1], 2);
    }
    if (!rc) rc = nn_relu_new(&relu);
    if (!rc && (stride != 1 || in_ch != out_ch)) {
        nn_layer *dk[2] = {0};
        rc = nn_conv2d_new(&dk[0], in_ch, out_ch, 1, stride, 0, 0);
        if (!rc) rc = nn_batchnorm_new(&dk[1], out_ch, 2);
        if (!rc)
            rc = nn_sequential_new(&down, dk, 2);
        else {
            nn_layer_free(dk[0]);
            nn_layer_free(dk[1]);
        }
    }
    static const char *const cname[3] = {"conv1", "conv2", "conv3"};
    static const char *const bname[3] = {"bn1", "bn2", "bn3"};
    for (int i = 0; i < nconv; i++) {
        if (conv[i]) snprintf(conv[i]->name, sizeof conv[i]->name, "%s", cname[i]);
        if (bn[i]) snprintf(bn[i]->name, sizeof bn[i]->name, "%s", bname[i]);
        k[nk++] = conv[i];
        k[nk++] = bn[i];
        if (!bottleneck && i == 0) k[nk++] = relu;
    }
    if (bottleneck) k[nk++] = relu;
    if (relu) snprintf(relu->name, sizeof relu->name, "relu");
    if (down) {
        snprintf(down->name, sizeof down->name, "downsample");
        k[nk++] = down;
    }
    nn_layer *l = rc ? NULL : nn__layer_alloc(sizeof(nn_block), ops, 0, 0);
    if (!l) {
        for (int i = 0; i < nk; i++) nn_layer_free(k[i]);
        return rc ? rc : nn_err(NN_ENOMEM, "cannot allocate %s", ops->type);
    }
    rc = nn__layer_set_kids(l, k, nk);
    if (rc) {
        free(l);
        return rc;
    }
    nn_block *B = (nn_block *)l;
    B->nconv = nconv;
    for (int i = 0; i < nconv; i++) {
        B->conv[i] = conv[i];
        B->bn[i] = bn[i];
    }
    B->relu = relu;
    B->down = down;
    *out = l;
    return 0;
}

int nn_basicblock_new(nn_layer **out, int in_ch, int planes, int stride)
{
    return block_new(out, &basic_ops, in_ch, planes, stride);
}

int nn_bottleneck_new(nn_layer **out, int in_ch, int planes, int stride)
{
    return block_new(out, &bottleneck_ops, in_ch, planes, stride);
}
