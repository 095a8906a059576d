/*
 * nn: tensors, layers with forward and backward, models, the model zoo, losses,
 * initialisation, and layer groups with their contiguous parameter and gradient slabs.
 *
 * nn knows nothing of MPI or HDF5. Every function that can fail returns 0 or a negative
 * NN_E* code and leaves a message for nn_errmsg(). Nothing here calls exit().
 */
#ifndef STRATA_NN_H
#define STRATA_NN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---------------------------------------------------------------------------------------
 * Errors. One table gives every code its name and text (libuv style). The message of the
 * last failure on this thread is kept in a thread-local buffer, like errno: it is the one
 * piece of mutable state that is not passed in, because every caller needs it and it never
 * changes results.
 */
#define NN_ERRNO_MAP(X)                                                  \
    X(EINVAL, -1, "invalid argument")                                    \
    X(ENOMEM, -2, "out of memory")                                       \
    X(ESHAPE, -3, "shape mismatch")                                      \
    X(EIO, -4, "input/output error")                                     \
    X(EFORMAT, -5, "bad file format")                                    \
    X(ERANGE, -6, "value out of range")                                  \
    X(ENOTFOUND, -7, "not found")                                        \
    X(EMPI, -8, "MPI error")                                             \
    X(EHDF5, -9, "HDF5 error")                                           \
    X(ESTATE, -10, "invalid state")

enum {
    NN_OK = 0,
#define NN__ERR_ENUM(name, code, text) NN_##name = code,
    NN_ERRNO_MAP(NN__ERR_ENUM)
#undef NN__ERR_ENUM
};

/* Records a formatted message for the current thread and returns `code`, so that a failure
 * reads `return nn_err(NN_EINVAL, "cut %d is out of range", cut);`. */
int nn_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts a prefix before the message of the last nn_err() on this thread and returns code:
 * after a failed load, `return nn_err_wrap(rc, "model.init_from %s", path);` leaves
 * "model.init_from PATH: <the loader's message>". */
int nn_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message of the last nn_err() on this thread ("" if none). Never NULL. */
const char *nn_errmsg(void);
/* The fixed text of a code ("shape mismatch"); "unknown error" for an unknown code. */
const char *nn_strerror(int code);
/* The symbolic name of a code ("NN_ESHAPE"). */
const char *nn_errname(int code);

/* Always-on assert for invariants that are bugs when broken (not for bad input). */
#define NN_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) nn__assert_fail(#cond, __FILE__, __LINE__);                         \
    } while (0)
void nn__assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* ---------------------------------------------------------------------------------------
 * RNG: xoshiro256** seeded through splitmix64. State is explicit and small so it can be
 * saved in a checkpoint and passed to whatever needs randomness.
 */
typedef struct nn_rng {
    uint64_t s[4];
} nn_rng;

void nn_rng_seed(nn_rng *rng, uint64_t seed);
uint64_t nn_rng_next(nn_rng *rng);
/* Uniform in [0, 1). */
double nn_rng_uniform(nn_rng *rng);
/* Standard normal (Box-Muller, no cached second value so state alone defines the stream). */
double nn_rng_normal(nn_rng *rng);
/* Fills x[0..n) with U(lo, hi). */
void nn_rng_fill_uniform(nn_rng *rng, float *x, size_t n, float lo, float hi);
/* Fills x[0..n) with N(0, std^2). */
void nn_rng_fill_normal(nn_rng *rng, float *x, size_t n, float std);

/* ---------------------------------------------------------------------------------------
 * Tensors: float32, logically (N, C, H, W). A 2-D tensor (N, F) is stored as (N, F, 1, 1).
 * A tensor either owns its data (cap > 0) or is a view (cap == 0).
 *
 * Layout: blk <= 1 is plain NCHW. blk = 8 or 16 is the channel-blocked layout an engine may
 * keep activations in between layers (oneDNN's nChw8c / nChw16c): channels are padded up to
 * a multiple of blk with zeros and element (n, c, h, w) sits at
 * (((n * C/blk + c/blk) * H + h) * W + w) * blk + c % blk. Only nn/ produces blocked tensors;
 * the model's input and logits are always NCHW, and nn_tensor_to_nchw converts any other.
 */
typedef struct nn_tensor {
    float *data;
    int n, c, h, w;
    size_t cap; /* elements allocated when owned, 0 for a view */
    int blk;    /* channel block: 0 or 1 plain NCHW, else 8 or 16 */
} nn_tensor;

/* Logical elements, n * c * h * w. */
static inline size_t nn_tensor_numel(const nn_tensor *t)
{
    return (size_t)t->n * t->c * t->h * t->w;
}
/* Stored elements: numel for NCHW, with the channels padded up to blk otherwise. */
static inline size_t nn_tensor_storage(const nn_tensor *t)
{
    if (t->blk <= 1) return nn_tensor_numel(t);
    size_t cp = ((size_t)t->c + t->blk - 1) / t->blk * t->blk;
    return (size_t)t->n * cp * t->h * t->w;
}
/* Makes t hold a plain NCHW (n, c, h, w), reallocating only when it grows (64-byte aligned).
 * Data is left uninitialised. Returns NN_ENOMEM, or NN_ERANGE for a non-positive dimension. */
int nn_tensor_resize(nn_tensor *t, int n, int c, int h, int w);
/* The same in layout blk (0/1, 8 or 16); a blocked tensor's padding channels are zeroed. */
int nn_tensor_resize_blk(nn_tensor *t, int n, int c, int h, int w, int blk);
/* Frees owned data and zeroes the struct; safe on a zeroed or view tensor. */
void nn_tensor_free(nn_tensor *t);
/* dst (owned, resized) = src in layout blk (0/1 plain NCHW, 8, 16); a copy when src already
 * has it. */
int nn_tensor_convert(nn_tensor *dst, const nn_tensor *src, int blk);
/* nn_tensor_convert to plain NCHW. */
int nn_tensor_to_nchw(nn_tensor *dst, const nn_tensor *src);

/* ---------------------------------------------------------------------------------------
 * Engines: where and how the arithmetic of the layers runs (docs/nn.md, "Engines"). A model
 * owns one, chosen by nn_model_spec.engine; its layers call the engine's kernels and keep
 * their activations in its layout.
 *   reference  im2col + OpenBLAS sgemm and plain loops, NCHW: simple, the oracle every
 *              other engine is tested against.
 *   cpu        oneDNN (the library PyTorch itself uses on CPUs): direct and Winograd
 *              convolutions, BatchNorm with ReLU fused, pooling, with activations kept in
 *              oneDNN's channel-blocked layout from layer to layer; the default.
 */
typedef struct nn_engine nn_engine;

enum {
    NN_ENGINE_REFERENCE = 1,
    NN_ENGINE_CPU = 2,
    NN_ENGINE_DEFAULT = NN_ENGINE_CPU,
};

/* "reference" or "cpu" -> *kind. Returns NN_EINVAL naming the value and the choices. */
int nn_engine_parse(int *kind, const char *name);
/* "reference", "cpu"; "unknown" for anything else. Never NULL. */
const char *nn_engine_kind_name(int kind);
/* Makes an engine of the given kind. Free with nn_engine_free. */
int nn_engine_new(nn_engine **out, int kind);
void nn_engine_free(nn_engine *e);
/* The engine's kind (NN_ENGINE_*). */
int nn_engine_kind(const nn_engine *e);
/* One line on what the engine runs on ("cpu: oneDNN 2.6.3, avx512_core, nChw16c"). */
const char *nn_engine_describe(const nn_engine *e);
/* Bytes of the engine's workspace, shared by all layers of its model (its largest need). */
size_t nn_engine_workspace_bytes(const nn_engine *e);
/* The channel block of the layout the engine keeps activations in (1: plain NCHW). */
int nn_engine_layout(const nn_engine *e);

/* ---------------------------------------------------------------------------------------
 * BLAS. One BLAS thread per process by default; STRATA_BLAS_THREADS overrides.
 */
/* Sets the thread count of OpenBLAS and of oneDNN (OpenMP): n > 0 is used as given, n == 0
 * reads STRATA_BLAS_THREADS (default 1). Returns the count in force. */
int nn_blas_threads(int n);

/* ---------------------------------------------------------------------------------------
 * Layers. A layer is a small ops table plus its own struct that embeds nn_layer first.
 * Containers (Sequential, residual blocks) hold children; parameters live in group slabs
 * once the model is built (nn_param.data/grad are views).
 */
typedef struct nn_layer nn_layer;

typedef struct nn_param {
    char name[16];   /* "weight", "bias" */
    int shape[4];    /* PyTorch's shape, unused dims 0 */
    int ndim;
    size_t numel;
    float *data;     /* view into the group's parameter slab */
    float *grad;     /* view into the group's gradient slab */
    int group;       /* index of the owning layer group */
    int is_bn;       /* BatchNorm affine parameter */
    int is_bias;     /* a bias (no weight decay by default) */
    int trainable;   /* set by nn_model_apply_groups: gradient computed and stored */
    int grad_zero;   /* inside nn_model_backward_fresh only: the gradient is zero but its
                        memory not cleared yet; the first backward through it writes it */
    int init_kind;   /* how nn_model_init fills it (NN_INIT_*) */
    float init_a;    /* parameter of the init (bound or std) */
} nn_param;

enum {
    NN_INIT_UNIFORM = 0, /* U(-a, a) */
    NN_INIT_NORMAL,      /* N(0, a^2) */
    NN_INIT_CONST,       /* a */
};

typedef struct nn_buffer {
    char name[24];   /* "running_mean", "running_var" */
    size_t numel;
    float *data;     /* owned by the layer */
} nn_buffer;

/* What forward needs besides the input: the RNG for dropout. */
typedef struct nn_ctx {
    nn_rng *rng;
} nn_ctx;

typedef struct nn_layer_ops {
    const char *type; /* PyTorch class name: "Conv2d" */
    /* Checks the per-sample input shape in[3] = (C, H, W) and sets l->out_shape. */
    int (*infer)(nn_layer *l, const int in[3]);
    /* y = f(x); the result is l->y, owned by the layer. x must stay alive until backward. */
    int (*forward)(nn_layer *l, const nn_tensor *x, nn_ctx *ctx);
    /* From dy (shape of l->y): accumulates gradients of trainable parameters and, when
     * l->need_dx, writes l->dx (shape of the input). */
    int (*backward)(nn_layer *l, const nn_tensor *dy);
    /* PyTorch's extra_repr: the text between the parentheses ("3, 64, kernel_size=..."). */
    int (*describe)(const nn_layer *l, char *buf, size_t len);
    /* Frees what the layer's own struct owns (not children, params or tensors y/dx).
     * May be NULL. */
    void (*free)(nn_layer *l);
    /* Containers: sets need_dx on the children (see nn_layer_plan_backward). NULL for
     * leaves. */
    void (*plan)(nn_layer *l);
    /* 1 when forward takes a channel-blocked input (and backward gives dx in the same
     * layout); for 0, nn_layer_forward hands the layer a plain NCHW copy of a blocked input
     * and nn_layer_backward converts its dx back. */
    int blocked_ok;
    /* 1 when backward writes rather than adds the gradient of a parameter whose grad_zero
     * is set (and clears the flag); for 0, nn_layer_backward clears such gradients first. */
    int fresh_grads;
} nn_layer_ops;

struct nn_layer {
    const nn_layer_ops *ops;
    char name[16];           /* name within the parent: "0", "conv1" */
    nn_layer **kids;         /* children (containers only), owned */
    int nkids;
    nn_param *params;        /* owned array; data/grad are slab views */
    int nparams;
    nn_buffer *bufs;         /* owned array, e.g. BatchNorm running statistics */
    int nbufs;
    int in_shape[3];         /* (C, H, W) of one sample, set by infer */
    int out_shape[3];
    nn_tensor y;             /* output of the last forward, owned */
    nn_tensor dx;            /* gradient w.r.t. the input, owned, valid when need_dx */
    const nn_tensor *x;      /* input of the last forward, not owned (the NCHW copy xc
                                when the layer does not take the blocked input given) */
    nn_tensor xc, dxc;       /* layout conversions at a blocked/plain boundary, owned */
    int x_blk;               /* layout of the input as given to the last forward */
    nn_engine *eng;          /* the engine whose kernels run the layer, not owned */
    struct nn_kplan *plan;   /* that engine's plan for this layer (primitives, argmax), owned
                                by the layer, made and freed by the engine */
    int training;            /* training mode (BatchNorm batch statistics, dropout on) */
    int need_dx;             /* backward must produce dx */
    int any_trainable;       /* this layer or a descendant has a trainable parameter */
    int x_overwritable;      /* set by the container before each forward: the input is the
                                previous sibling's own output, read by nobody again, so the
                                layer may overwrite it (ReLU does, as PyTorch's inplace=True).
                                No backward reads its own output except ReLU's mask, a
                                BatchNorm's fused ReLU mask and the residual blocks' final
                                ReLU, and a further ReLU leaves all of them unchanged. */
};

/* Frees a layer, its children, parameters, buffers and tensors. NULL is a no-op. */
void nn_layer_free(nn_layer *l);
/* Total parameter elements of a layer and its descendants. */
size_t nn_layer_numel(const nn_layer *l);
/* Runs infer through a layer (containers infer their children). */
int nn_layer_infer(nn_layer *l, const int in[3]);
/* Sets training mode on a layer and all descendants. */
void nn_layer_set_training(nn_layer *l, int training);

/* Constructors. Each returns 0 and sets *out, or a negative code for a bad size. The new
 * layer holds parameter shapes but no memory until the model binds it to group slabs. */
int nn_linear_new(nn_layer **out, int in_features, int out_features, int bias);
int nn_conv2d_new(nn_layer **out, int in_ch, int out_ch, int kernel, int stride, int padding,
                  int bias);
int nn_batchnorm_new(nn_layer **out, int features, int dims /* 1 or 2 */);
int nn_relu_new(nn_layer **out);
int nn_maxpool2d_new(nn_layer **out, int kernel, int stride, int padding);
int nn_avgpool2d_new(nn_layer **out, int kernel, int stride, int padding);
int nn_adaptive_avgpool2d_new(nn_layer **out, int out_h, int out_w);
int nn_adaptive_maxpool2d_new(nn_layer **out, int out_h, int out_w);
int nn_adaptive_concatpool2d_new(nn_layer **out, int size);
int nn_flatten_new(nn_layer **out);
int nn_identity_new(nn_layer **out);
int nn_dropout_new(nn_layer **out, float p);
/* Sequential takes ownership of kids[0..n) (also on failure) and names them "0", "1"... */
int nn_sequential_new(nn_layer **out, nn_layer **kids, int n);
/* Appends a child (ownership passes, also on failure). */
int nn_sequential_append(nn_layer *seq, nn_layer *kid);
/* torchvision's BasicBlock / Bottleneck; a downsample (1x1 conv + BN) is added when the
 * stride is not 1 or the channel count changes. */
int nn_basicblock_new(nn_layer **out, int in_ch, int planes, int stride);
int nn_bottleneck_new(nn_layer **out, int in_ch, int planes, int stride);

/* Forward and backward through one layer, checking shapes against infer's result. The
 * layer's engine decides the layout of y; backward's dy has the layout of y, and the
 * gradient it gives (nn_layer_grad_input) has the layout of the forward's x. */
int nn_layer_forward(nn_layer *l, const nn_tensor *x, nn_ctx *ctx);
int nn_layer_backward(nn_layer *l, const nn_tensor *dy);
/* The gradient with respect to the input of the last forward, in that input's layout: l->dx,
 * or its conversion when the layer itself runs on plain NCHW. Valid when need_dx. */
const nn_tensor *nn_layer_grad_input(const nn_layer *l);

/* Sets need_dx / any_trainable through a subtree from the params' trainable flags:
 * a child needs dx when its parent does or when a child before it has trainable params. */
void nn_layer_plan_backward(nn_layer *l, int need_dx);

/* Binds every parameter of a standalone layer to freshly allocated slabs (one for data,
 * one for grads, zeroed), marks all trainable, fills them with their init from rng, infers
 * shapes from in = (C, H, W), runs the layer on engine e (which must outlive it) and plans
 * backward with need_dx = 1. For tests and benchmarks of single layers; models do this per
 * group. The caller frees both slabs with free() after nn_layer_free. */
int nn_layer_bind_standalone(nn_layer *l, const int in[3], nn_rng *rng, nn_engine *e,
                             float **param_slab, float **grad_slab);
/* Makes a layer and its descendants run on engine e (not owned; it must outlive them). */
void nn_layer_set_engine(nn_layer *l, nn_engine *e);

/* ---------------------------------------------------------------------------------------
 * Losses. Both return the mean loss in *loss and write dlogits/dpred scaled for that mean.
 */
/* logits (N, K), labels[N] in [0, K): cross-entropy of softmax, averaged over N. dlogits
 * may be NULL. Returns NN_ERANGE for a label out of range. correct (may be NULL) gets the
 * number of argmax hits. */
int nn_cross_entropy(float *loss, nn_tensor *dlogits, int *correct, const nn_tensor *logits,
                     const int32_t *labels);
/* pred and target have the same numel; mean over all elements. dpred may be NULL. */
int nn_mse(float *loss, nn_tensor *dpred, const nn_tensor *pred, const float *target);

/* ---------------------------------------------------------------------------------------
 * Models and layer groups. A model is body children plus a head; the body is cut into
 * groups at child indices; the head is always the last group. Each group owns one
 * contiguous parameter slab and one gradient slab.
 */
enum nn_head_kind {
    NN_HEAD_DEFAULT = 0, /* the architecture's default */
    NN_HEAD_FASTAI,      /* AdaptiveConcatPool2d, Flatten, BN1d, Dropout, Linear, ReLU, ... */
    NN_HEAD_LINEAR,      /* [AdaptiveAvgPool2d(1),] Flatten, Linear(nf, classes) */
    NN_HEAD_ORIGINAL,    /* the architecture's own classifier (torchvision's) */
};

#define NN_MAX_GROUPS 32
#define NN_MAX_WIDTHS 16

typedef struct nn_model_spec {
    const char *arch;     /* "resnet34", "vgg16_bn", "mlp", "cnn", ... */
    int in_c, in_h, in_w; /* input sample shape */
    int classes;
    int cut;              /* -1: the architecture's default */
    int nsplit;           /* -1: default split; else split[0..nsplit) increasing */
    int split[NN_MAX_GROUPS];
    int head;             /* enum nn_head_kind */
    int nwidths;          /* mlp hidden widths (0: default 1024, 1024) */
    int widths[NN_MAX_WIDTHS];
    int small_stem;       /* resnet: 3x3 stride-1 conv1 and no maxpool, for 28-32 px */
    float head_ps[2];     /* fastai head dropouts, default 0.25 and 0.5 (negative: default) */
    int skip_init;        /* leave parameters zero (printing, counting): no RNG draws */
    int engine;           /* NN_ENGINE_*; 0 reads NN_ENGINE_DEFAULT */
} nn_model_spec;

/* Fills a spec with defaults: arch NULL, 3x224x224, 1000 classes, the default engine,
 * defaults everywhere. */
void nn_model_spec_default(nn_model_spec *spec);

typedef struct nn_group {
    int first, last;      /* body children [first, last]; the head group has first = last = -1 */
    int is_head;
    int frozen;
    size_t numel;         /* parameter elements in the group */
    size_t bn_offset;     /* the BatchNorm parameters are the slab's tail [bn_offset, numel)
                             (numel when it has none); the others come first, in model order */
    float *param_slab;    /* numel floats, owned */
    float *grad_slab;     /* numel floats, owned */
    nn_param **params;    /* the group's parameters in slab order */
    int nparams;
} nn_group;

/* Called during nn_model_backward after the head and after every body child, from the top
 * down: `group` is the group just worked on and `done` is 1 when its gradients are final
 * (its lowest child has run, or backward stopped above it). Every group gets exactly one
 * call with done = 1, the head first. A reducer starts a group's all-reduce on done and
 * drives the ones in flight on every call. A non-zero return stops backward and is
 * returned by it. */
typedef int (*nn_backward_hook)(void *ud, int group, int done);

typedef struct nn_model {
    char arch[32];
    int in_shape[3];
    int classes;
    int cut;
    nn_layer *body;       /* Sequential of the body children, named "body" */
    nn_layer *head;       /* Sequential, named "head" */
    nn_group groups[NN_MAX_GROUPS];
    int ngroups;
    int train_bn;         /* BatchNorm in frozen groups trains (batch stats, affine grads) */
    int bn_freeze;        /* BatchNorm of frozen groups without train_bn in eval mode */
    int training;
    nn_tensor dlogits;
    nn_backward_hook hook; /* may be NULL */
    void *hook_ud;
    nn_engine *eng;       /* runs every layer, owned */
} nn_model;

/* Builds a model from a spec: architecture, cut, head, groups, slabs, initialisation from
 * rng. On failure *out is NULL and the message names the offending value. Free with
 * nn_model_free. */
int nn_model_init(nn_model **out, const nn_model_spec *spec, nn_rng *rng);
void nn_model_free(nn_model *m);

/* An architecture's children before any cut and its defaults, for messages about a cut or a
 * split that does not fit (nn_model_layout). */
typedef struct nn_model_layout_info {
    int nchildren;             /* body children before the cut */
    int default_cut;           /* 0: every child */
    int nsplit;                /* the default split points */
    int split[NN_MAX_GROUPS];
} nn_model_layout_info;

/* Fills *out for spec's architecture (and the spec's input, widths, ...: what decides the
 * children), building the children and freeing them. Errors as nn_model_init's for an unknown
 * architecture or children it cannot build. */
int nn_model_layout(nn_model_layout_info *out, const nn_model_spec *spec);

/* Total parameter elements. */
size_t nn_model_numel(const nn_model *m);
/* Number of body children before the cut (the children groups refer to). */
int nn_model_body_children(const nn_model *m);

/* fastai's freeze_to: groups [0, n) frozen, the rest trainable; negative n counts from the
 * end. Returns NN_ERANGE for |n| beyond the group count. *warning (may be NULL) is set to 1
 * when the call has no effect because the model has one group. */
int nn_model_freeze_to(nn_model *m, int n, int *warning);
/* Sets one group's frozen flag. */
int nn_model_set_frozen(nn_model *m, int group, int frozen);
/* train_bn: BatchNorm parameters in frozen groups keep training (fastai v1/v2's default). */
void nn_model_set_train_bn(nn_model *m, int train_bn);
/* bn_freeze: BatchNorm of frozen groups whose parameters do not train (train_bn 0) is fixed
 * in eval mode, running statistics untouched (fastai's BnFreeze, fastai 0.7's default; nn's
 * default after nn_model_init). With bn_freeze 0 it follows the model's training mode, using
 * batch statistics and updating its running ones, as fastai v2 does; no gradient either way. */
void nn_model_set_bn_freeze(nn_model *m, int bn_freeze);
/* Training or eval mode of every layer, but see bn_freeze. */
void nn_model_set_training(nn_model *m, int training);

/* Forward of a batch x (N, C, H, W); returns the logits tensor (owned by the model). */
int nn_model_forward(const nn_tensor **logits, nn_model *m, const nn_tensor *x, nn_ctx *ctx);
/* Backward from dlogits: accumulates into the grad slabs of trainable groups only and
 * stops below the lowest trainable parameter. */
int nn_model_backward(nn_model *m, const nn_tensor *dlogits);
/* nn_model_zero_grad and nn_model_backward in one: the gradients of trainable parameters are
 * written, not added to (a GEMM with beta 0 instead of a pass that zeroes the slabs first).
 * Every trainable gradient is valid when a group is reported done to the hook. */
int nn_model_backward_fresh(nn_model *m, const nn_tensor *dlogits);
/* Installs (or, with fn NULL, removes) the backward hook. */
void nn_model_set_backward_hook(nn_model *m, nn_backward_hook fn, void *ud);
/* Zeroes the gradients of trainable parameters (frozen groups' slabs are not touched). */
void nn_model_zero_grad(nn_model *m);

/* Visits every parameter with its full PyTorch name ("body.4.0.conv1.weight"). Stops and
 * returns the callback's value when it is non-zero. */
typedef int (*nn_param_visit_fn)(void *ud, const char *name, nn_param *p);
int nn_model_visit_params(nn_model *m, nn_param_visit_fn fn, void *ud);
typedef int (*nn_buffer_visit_fn)(void *ud, const char *name, nn_buffer *b);
int nn_model_visit_buffers(nn_model *m, nn_buffer_visit_fn fn, void *ud);
/* The same for a standalone layer; prefix may be "" */
int nn_layer_visit_params(nn_layer *l, const char *prefix, nn_param_visit_fn fn, void *ud);
int nn_layer_visit_buffers(nn_layer *l, const char *prefix, nn_buffer_visit_fn fn, void *ud);

/* Prints the model as PyTorch prints a module, with group boundaries and per-group
 * parameter counts marked between the children. */
int nn_model_print(const nn_model *m, FILE *f);
/* Prints one layer subtree in PyTorch's format at the given indent. */
int nn_layer_print(const nn_layer *l, FILE *f, int indent);

/* The architectures the zoo knows, NULL-terminated, and their default cut and split. */
extern const char *const nn_zoo_names[];

#endif /* STRATA_NN_H */
