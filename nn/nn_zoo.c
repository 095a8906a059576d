/* The model zoo: each architecture as torchvision lays out its children, so that fastai's
 * cut and split indices mean the same thing, plus its default cut, split and head.
 *
 *   arch        children (before cut)                          cut   split   head
 *   resnet*     conv1 bn1 relu maxpool layer1-4 avgpool fc     8     6       fastai
 *   vgg*[_bn]   the flat `features` list (vgg16_bn: 44)        0*    22**    fastai
 *   mlp         Flatten, (Linear, ReLU) per width, Linear      n-1   last hidden Linear   linear
 *   cnn         5 x (conv3x3, BN, ReLU), 2 maxpools, pool,     17    7       linear
 *               Flatten, Linear
 *
 *   *  cut 0 keeps every child (fastai's convention).
 *   ** 22 for every vgg with more than 22 feature children (fastai uses 22 for vgg16_bn);
 *      the middle child for the short ones (vgg11 and vgg13 without BN).
 */
#include "nn/nn_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const nn_zoo_names[] = {"mlp",      "cnn",      "resnet18", "resnet34", "resnet50",
                                    "vgg11",    "vgg11_bn", "vgg13",    "vgg13_bn", "vgg16",
                                    "vgg16_bn", "vgg19",    "vgg19_bn", NULL};

/* A growing list of children under construction; frees everything on failure. */
typedef struct {
    nn_layer *k[96];
    int n;
    int rc;
} kidlist;

static void add(kidlist *kl, int rc, nn_layer *l)
{
    if (kl->rc) {
        nn_layer_free(l);
        return;
    }
    if (rc) {
        kl->rc = rc;
        return;
    }
    if (kl->n >= (int)(sizeof kl->k / sizeof kl->k[0])) {
        nn_layer_free(l);
        kl->rc = nn_err(NN_ERANGE, "too many children");
        return;
    }
    kl->k[kl->n++] = l;
}

#define ADD(kl, call)                                                                          \
    do {                                                                                       \
        nn_layer *nl__ = NULL;                                                                 \
        int rc__ = (kl)->rc ? 0 : call;                                                        \
        add((kl), rc__, nl__);                                                                 \
    } while (0)

static void kidlist_free(kidlist *kl)
{
    for (int i = 0; i < kl->n; i++) nn_layer_free(kl->k[i]);
    kl->n = 0;
}

/* torchvision's init for resnet and vgg: conv weights kaiming_normal_(fan_out, relu), conv
 * biases 0, linear N(0, 0.01) with bias 0 (vgg only: resnet keeps PyTorch's Linear
 * default). BatchNorm keeps weight 1 and bias 0. */
static void torchvision_init(nn_layer *l, int linear_too)
{
    if (!strcmp(l->ops->type, "Conv2d")) {
        const nn_param *w = &l->params[0];
        float fan_out = (float)w->shape[0] * w->shape[2] * w->shape[3];
        l->params[0].init_kind = NN_INIT_NORMAL;
        l->params[0].init_a = sqrtf(2.0f / fan_out);
        if (l->nparams > 1) {
            l->params[1].init_kind = NN_INIT_CONST;
            l->params[1].init_a = 0.0f;
        }
    } else if (linear_too && !strcmp(l->ops->type, "Linear")) {
        l->params[0].init_kind = NN_INIT_NORMAL;
        l->params[0].init_a = 0.01f;
        if (l->nparams > 1) {
            l->params[1].init_kind = NN_INIT_CONST;
            l->params[1].init_a = 0.0f;
        }
    }
    for (int i = 0; i < l->nkids; i++) torchvision_init(l->kids[i], linear_too);
}

/* ---- the architectures ---------------------------------------------------------------- */

typedef struct {
    int default_cut;
    int nsplit;
    int split[4];
    int default_head;
    int torchvision;  /* 1: resnet (conv init), 2: vgg (conv and linear init) */
    int vgg_bn;
} arch_info;

static int build_mlp(kidlist *kl, arch_info *ai, const nn_model_spec *s)
{
    int widths[NN_MAX_WIDTHS] = {1024, 1024};
    int nw = s->nwidths > 0 ? s->nwidths : 2;
    if (s->nwidths > NN_MAX_WIDTHS)
        return nn_err(NN_ERANGE, "mlp: %d widths given, at most %d", s->nwidths, NN_MAX_WIDTHS);
    if (s->nwidths > 0) memcpy(widths, s->widths, sizeof(int) * nw);
    for (int i = 0; i < nw; i++)
        if (widths[i] <= 0)
            return nn_err(NN_ERANGE, "mlp: width %d (position %d) must be positive", widths[i], i);
    const long long features = (long long)s->in_c * s->in_h * s->in_w;
    if (features > INT_MAX)
        return nn_err(NN_ERANGE, "mlp: input %dx%dx%d has %lld features, more than %d", s->in_c,
                      s->in_h, s->in_w, features, INT_MAX);
    int prev = (int)features;
    ADD(kl, nn_flatten_new(&nl__));
    for (int i = 0; i < nw; i++) {
        ADD(kl, nn_linear_new(&nl__, prev, widths[i], 1));
        ADD(kl, nn_relu_new(&nl__));
        prev = widths[i];
    }
    ADD(kl, nn_linear_new(&nl__, prev, s->classes, 1));
    ai->default_cut = kl->n - 1;
    ai->nsplit = nw >= 2 ? 1 : 0;
    ai->split[0] = 1 + 2 * (nw - 1);
    ai->default_head = NN_HEAD_LINEAR;
    return kl->rc;
}

static void conv_bn_relu(kidlist *kl, int cin, int cout)
{
    ADD(kl, nn_conv2d_new(&nl__, cin, cout, 3, 1, 1, 0));
    ADD(kl, nn_batchnorm_new(&nl__, cout, 2));
    ADD(kl, nn_relu_new(&nl__));
}

static int build_cnn(kidlist *kl, arch_info *ai, const nn_model_spec *s)
{
    conv_bn_relu(kl, s->in_c, 32);          /* 0-2 */
    conv_bn_relu(kl, 32, 32);               /* 3-5 */
    ADD(kl, nn_maxpool2d_new(&nl__, 2, 2, 0)); /* 6 */
    conv_bn_relu(kl, 32, 64);               /* 7-9 */
    conv_bn_relu(kl, 64, 64);               /* 10-12 */
    ADD(kl, nn_maxpool2d_new(&nl__, 2, 2, 0)); /* 13 */
    conv_bn_relu(kl, 64, 128);              /* 14-16 */
    ADD(kl, nn_adaptive_avgpool2d_new(&nl__, 1, 1)); /* 17 */
    ADD(kl, nn_flatten_new(&nl__));         /* 18 */
    ADD(kl, nn_linear_new(&nl__, 128, s->classes, 1)); /* 19 */
    ai->default_cut = 17;
    ai->nsplit = 1;
    ai->split[0] = 7;
    ai->default_head = NN_HEAD_LINEAR;
    return kl->rc;
}

static int build_resnet(kidlist *kl, arch_info *ai, const nn_model_spec *s, int depth)
{
    static const int blocks18[4] = {2, 2, 2, 2}, blocks34[4] = {3, 4, 6, 3};
    const int *blocks = depth == 18 ? blocks18 : blocks34; /* 50 uses 34's counts */
    const int bottleneck = depth == 50, expansion = bottleneck ? 4 : 1;
    if (s->small_stem) {
        ADD(kl, nn_conv2d_new(&nl__, s->in_c, 64, 3, 1, 1, 0));
    } else {
        ADD(kl, nn_conv2d_new(&nl__, s->in_c, 64, 7, 2, 3, 0));
    }
    ADD(kl, nn_batchnorm_new(&nl__, 64, 2));
    ADD(kl, nn_relu_new(&nl__));
    if (s->small_stem) {
        ADD(kl, nn_identity_new(&nl__));
    } else {
        ADD(kl, nn_maxpool2d_new(&nl__, 3, 2, 1));
    }
    int inplanes = 64;
    for (int stage = 0; stage < 4 && !kl->rc; stage++) {
        int planes = 64 << stage;
        nn_layer *seq = NULL;
        int rc = nn_sequential_new(&seq, NULL, 0);
        for (int b = 0; b < blocks[stage] && !rc; b++) {
            nn_layer *blk = NULL;
            int stride = (b == 0 && stage > 0) ? 2 : 1;
            rc = bottleneck ? nn_bottleneck_new(&blk, inplanes, planes, stride)
                            : nn_basicblock_new(&blk, inplanes, planes, stride);
            if (!rc) rc = nn_sequential_append(seq, blk);
            inplanes = planes * expansion;
        }
        if (rc) {
            nn_layer_free(seq);
            seq = NULL;
        }
        add(kl, rc, seq);
    }
    ADD(kl, nn_adaptive_avgpool2d_new(&nl__, 1, 1));
    ADD(kl, nn_linear_new(&nl__, 512 * expansion, s->classes, 1));
    if (kl->rc) return kl->rc;
    ai->default_cut = 8;
    ai->nsplit = 1;
    ai->split[0] = 6;
    ai->default_head = NN_HEAD_FASTAI;
    ai->torchvision = 1;
    return 0;
}

static int build_vgg(kidlist *kl, arch_info *ai, const nn_model_spec *s, int depth, int bn)
{
    /* torchvision's configurations; 0 is a max pool. */
    static const int A[] = {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
    static const int B[] = {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0, -1};
    static const int D[] = {64,  64,  0,   128, 128, 0,   256, 256, 256,
                            0,   512, 512, 512, 0,   512, 512, 512, 0,   -1};
    static const int E[] = {64,  64,  0,   128, 128, 0,   256, 256, 256, 256, 0,
                            512, 512, 512, 512, 0,   512, 512, 512, 512, 0,   -1};
    const int *cfg = depth == 11 ? A : depth == 13 ? B : depth == 16 ? D : E;
    int cin = s->in_c;
    for (int i = 0; cfg[i] >= 0; i++) {
        if (cfg[i] == 0) {
            ADD(kl, nn_maxpool2d_new(&nl__, 2, 2, 0));
            continue;
        }
        ADD(kl, nn_conv2d_new(&nl__, cin, cfg[i], 3, 1, 1, 1));
        if (bn) ADD(kl, nn_batchnorm_new(&nl__, cfg[i], 2));
        ADD(kl, nn_relu_new(&nl__));
        cin = cfg[i];
    }
    ai->default_cut = 0;
    ai->nsplit = 1;
    ai->split[0] = kl->n > 22 ? 22 : kl->n / 2;
    ai->default_head = NN_HEAD_FASTAI;
    ai->torchvision = 2;
    ai->vgg_bn = bn;
    return kl->rc;
}

/* ---- heads ---------------------------------------------------------------------------- */

static int head_fastai(kidlist *kl, int nf, const nn_model_spec *s)
{
    float p0 = s->head_ps[0] >= 0.0f ? s->head_ps[0] : 0.25f;
    float p1 = s->head_ps[1] >= 0.0f ? s->head_ps[1] : 0.5f;
    ADD(kl, nn_adaptive_concatpool2d_new(&nl__, 1));
    ADD(kl, nn_flatten_new(&nl__));
    ADD(kl, nn_batchnorm_new(&nl__, 2 * nf, 1));
    ADD(kl, nn_dropout_new(&nl__, p0));
    ADD(kl, nn_linear_new(&nl__, 2 * nf, 512, 1));
    ADD(kl, nn_relu_new(&nl__));
    ADD(kl, nn_batchnorm_new(&nl__, 512, 1));
    ADD(kl, nn_dropout_new(&nl__, p1));
    ADD(kl, nn_linear_new(&nl__, 512, s->classes, 1));
    if (kl->rc) return kl->rc;
    /* fastai initialises the head's linear layers with kaiming_normal_ and zero biases. */
    for (int i = 0; i < kl->n; i++)
        if (!strcmp(kl->k[i]->ops->type, "Linear")) {
            nn_layer *l = kl->k[i];
            l->params[0].init_kind = NN_INIT_NORMAL;
            l->params[0].init_a = sqrtf(2.0f / (float)l->params[0].shape[1]);
            l->params[1].init_kind = NN_INIT_CONST;
            l->params[1].init_a = 0.0f;
        }
    return 0;
}

static int head_linear(kidlist *kl, const int body_out[3], const nn_model_spec *s)
{
    if (body_out[1] * body_out[2] != 1) ADD(kl, nn_adaptive_avgpool2d_new(&nl__, 1, 1));
    ADD(kl, nn_flatten_new(&nl__));
    ADD(kl, nn_linear_new(&nl__, body_out[0], s->classes, 1));
    return kl->rc;
}

static int head_original(kidlist *kl, const char *arch, const int body_out[3],
                         const nn_model_spec *s)
{
    if (!strncmp(arch, "vgg", 3)) {
        ADD(kl, nn_adaptive_avgpool2d_new(&nl__, 7, 7));
        ADD(kl, nn_flatten_new(&nl__));
        ADD(kl, nn_linear_new(&nl__, body_out[0] * 49, 4096, 1));
        ADD(kl, nn_relu_new(&nl__));
        ADD(kl, nn_dropout_new(&nl__, 0.5f));
        ADD(kl, nn_linear_new(&nl__, 4096, 4096, 1));
        ADD(kl, nn_relu_new(&nl__));
        ADD(kl, nn_dropout_new(&nl__, 0.5f));
        ADD(kl, nn_linear_new(&nl__, 4096, s->classes, 1));
        if (!kl->rc)
            for (int i = 0; i < kl->n; i++) torchvision_init(kl->k[i], 1);
        return kl->rc;
    }
    if (!strncmp(arch, "resnet", 6) || !strcmp(arch, "cnn")) {
        ADD(kl, nn_adaptive_avgpool2d_new(&nl__, 1, 1));
        ADD(kl, nn_flatten_new(&nl__));
        ADD(kl, nn_linear_new(&nl__, body_out[0], s->classes, 1));
        return kl->rc;
    }
    /* mlp: its final Linear */
    return head_linear(kl, body_out, s);
}

/* ---- entry points used by nn_model.c -------------------------------------------------- */

/* Builds the architecture's children into kids (up to 96), sets *nkids and the defaults. */
int nn__zoo_children(nn_layer **kids, int *nkids, int *default_cut, int *nsplit, int *split,
                     int *default_head, const nn_model_spec *s)
{
    kidlist kl = {.n = 0, .rc = 0};
    arch_info ai = {0};
    const char *a = s->arch;
    int rc;
    if (!a) return nn_err(NN_EINVAL, "no architecture given");
    if (!strcmp(a, "mlp"))
        rc = build_mlp(&kl, &ai, s);
    else if (!strcmp(a, "cnn"))
        rc = build_cnn(&kl, &ai, s);
    else if (!strcmp(a, "resnet18"))
        rc = build_resnet(&kl, &ai, s, 18);
    else if (!strcmp(a, "resnet34"))
        rc = build_resnet(&kl, &ai, s, 34);
    else if (!strcmp(a, "resnet50"))
        rc = build_resnet(&kl, &ai, s, 50);
    else if (!strncmp(a, "vgg", 3)) {
        int depth = atoi(a + 3);
        const char *suffix = a + 3 + (depth >= 10 ? 2 : 1);
        int bn = !strcmp(suffix, "_bn");
        if ((depth != 11 && depth != 13 && depth != 16 && depth != 19) || (*suffix && !bn))
            goto unknown;
        rc = build_vgg(&kl, &ai, s, depth, bn);
    } else
        goto unknown;
    if (rc) {
        kidlist_free(&kl);
        return rc;
    }
    if (ai.torchvision)
        for (int i = 0; i < kl.n; i++) torchvision_init(kl.k[i], ai.torchvision == 2);
    memcpy(kids, kl.k, sizeof(nn_layer *) * kl.n);
    *nkids = kl.n;
    *default_cut = ai.default_cut;
    *nsplit = ai.nsplit;
    memcpy(split, ai.split, sizeof(int) * ai.nsplit);
    *default_head = ai.default_head;
    return 0;
unknown: {
    char known[512] = "";
    for (int i = 0; nn_zoo_names[i]; i++) {
        strncat(known, nn_zoo_names[i], sizeof known - strlen(known) - 1);
        if (nn_zoo_names[i + 1]) strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    return nn_err(NN_ENOTFOUND, "unknown model '%s' (known: %s)", a, known);
}
}

/* Builds the head of the given kind for a body whose output is body_out (C, H, W) into
 * kids (room for 96). */
int nn__zoo_head(nn_layer **kids, int *nkids, int kind, const int body_out[3],
                 const nn_model_spec *s)
{
    kidlist kl = {.n = 0, .rc = 0};
    int rc;
    switch (kind) {
    case NN_HEAD_FASTAI:
        rc = head_fastai(&kl, body_out[0], s);
        break;
    case NN_HEAD_LINEAR:
        rc = head_linear(&kl, body_out, s);
        break;
    case NN_HEAD_ORIGINAL:
        rc = head_original(&kl, s->arch, body_out, s);
        break;
    default:
        rc = nn_err(NN_EINVAL, "unknown head kind %d", kind);
    }
    if (rc) {
        kidlist_free(&kl);
        return rc;
    }
    memcpy(kids, kl.k, sizeof(nn_layer *) * kl.n);
    *nkids = kl.n;
    return 0;
}
