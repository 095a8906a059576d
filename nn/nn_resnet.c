/* torchvision's residual blocks. BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the identity
 * or a downsample (conv1x1 + BN), then ReLU. Bottleneck (v1.5, stride on the 3x3):
 * conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, expansion 4. The children are named as in
 * torchvision so parameter names match its state_dict; the (relu) child is shown once but,
 * as in torchvision, applied after every BN of the main path: fused into those BNs but the
 * last, whose sum with the shortcut the block puts through the final ReLU itself. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    nn_layer base;
    int nconv;             /* 2 (BasicBlock) or 3 (Bottleneck) */
    nn_layer *conv[3], *bn[3];
    nn_layer *relu;        /* the printed child; unused in compute */
    nn_layer *down;        /* Sequential(conv1x1, BN) or NULL */
    nn_tensor act;         /* the block's output: ReLU(bn[last] + shortcut) */
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

/* The block's forward. Every BN of the main path but the last has the ReLU after it fused in;
 * the last one's output is added to the shortcut and the sum goes through the final ReLU
 * into act, the block's output. All elementwise, so in the engine's layout. */
static int block_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx)
{
    nn_block *B = (nn_block *)l;
    const nn_tensor *h = x;
    int rc;
    for (int i = 0; i < B->nconv; i++) {
        rc = nn_layer_forward(B->conv[i], h, ctx);
        if (!rc) rc = nn_layer_forward(B->bn[i], &B->conv[i]->y, ctx);
        if (rc) return rc;
        h = &B->bn[i]->y;
    }
    const nn_tensor *id = x;
    if (B->down) {
        rc = nn_layer_forward(B->down, x, ctx);
        if (rc) return rc;
        id = &B->down->y;
    }
    if (id->blk != h->blk)
        return nn_err(NN_ESTATE, "%s: the shortcut's layout (%d) differs from the main path's (%d)",
                      l->ops->type, id->blk, h->blk);
    rc = nn__tensor_ensure(&B->act, h->n, h->c, h->h, h->w, h->blk);
    if (rc) return rc;
    const size_t n = nn_tensor_storage(h);
    const float *b = h->data, *s = id->data;
    float *a = B->act.data;
    for (size_t k = 0; k < n; k++) {
        float v = b[k] + s[k];
        a[k] = v > 0.0f ? v : 0.0f;
    }
    nn__tensor_view(&l->y, &B->act, h->n, h->c, h->h, h->w);
    return 0;
}

static int block_backward(nn_layer *l, const nn_tensor *dy)
{
    nn_block *B = (nn_block *)l;
    const int last = B->nconv - 1;
    /* Through the final ReLU: g = dy * (out > 0); g feeds both bn[last] and the shortcut. */
    int rc = nn__tensor_ensure(&B->g, dy->n, dy->c, dy->h, dy->w, dy->blk);
    if (rc) return rc;
    size_t n = nn_tensor_storage(dy);
    const float *out = B->act.data;
    for (size_t k = 0; k < n; k++) B->g.data[k] = out[k] > 0.0f ? dy->data[k] : 0.0f;
    const nn_tensor *g = &B->g;
    for (int i = last; i >= 0; i--) {
        if (!B->bn[i]->any_trainable && !B->bn[i]->need_dx) break;
        rc = nn_layer_backward(B->bn[i], g);
        if (rc) return rc;
        if (!B->bn[i]->need_dx) break;
        if (!B->conv[i]->any_trainable && !B->conv[i]->need_dx) break;
        rc = nn_layer_backward(B->conv[i], nn_layer_grad_input(B->bn[i]));
        if (rc) return rc;
        if (i == 0 || !B->conv[i]->need_dx) break;
        g = nn_layer_grad_input(B->conv[i]); /* bn[i-1]'s fused ReLU masks it */
    }
    if (B->down && (B->down->any_trainable || B->down->need_dx)) {
        rc = nn_layer_backward(B->down, &B->g);
        if (rc) return rc;
    }
    if (!l->need_dx) return 0;
    const nn_tensor *main = nn_layer_grad_input(B->conv[0]);
    const nn_tensor *side = B->down ? nn_layer_grad_input(B->down) : &B->g;
    rc = nn__tensor_ensure(&l->dx, main->n, main->c, main->h, main->w, main->blk);
    if (rc) return rc;
    size_t m = nn_tensor_storage(&l->dx);
    for (size_t k = 0; k < m; k++) l->dx.data[k] = main->data[k] + side->data[k];
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
    nn_tensor_free(&B->act);
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
    .blocked_ok = 1,
};

static const nn_layer_ops bottleneck_ops = {
    .type = "Bottleneck",
    .infer = block_infer,
    .forward = block_forward,
    .backward = block_backward,
    .describe = block_describe,
    .free = block_free,
    .plan = block_plan,
    .blocked_ok = 1,
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
    for (int i = 0; i < nconv - 1; i++) nn__bn_fuse_relu(bn[i], 1);
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
