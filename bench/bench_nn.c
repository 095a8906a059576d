/*
 * strata_bench: training-step throughput of single layers and whole models on one core.
 * The models: the mlp (784-1024-1024-10, batch 128), the cnn (batch 64) and resnet18 with a
 * small-input stem and torchvision's head (3x32x32, batch 32). --json FILE writes every
 * result as one JSON line (bench/run reads it).
 *
 * A step is what training does per batch: forward, loss (cross-entropy for models; a fixed
 * upstream gradient dy for single layers), zero_grad, backward, and an SGD update with
 * momentum 0.9 (trainer_opt_step for models, the same update inline for single layers).
 * Every number is compared against references measured in the same run:
 *
 *   - the machine's single-core sgemm rate (cblas_sgemm 1024x1024x1024, best of several),
 *     measured before and after the cases; the higher of the two is the reference;
 *   - for layers, the rate of cblas_sgemm on exactly the GEMM shapes the layer issues (so the
 *     gap between the two is im2col/col2im, copies and bookkeeping, not BLAS);
 *   - PyTorch's samples/s for the same case, read from the JSON line bench/torch_ref.py
 *     prints (--torch FILE; bench/run.sh does this when python3 can import torch).
 *
 * FLOPs count only the GEMMs of Conv2d and Linear: 2*M*N*K each, forward one GEMM, backward
 * two (dW and dx) or one when the layer needs no dx (the first layer of a model).
 *
 * The machine may be shared and noisy: each case is warmed up, then timed over --reps
 * repetitions of at least --min-time seconds each; the table shows the best repetition and
 * the median is printed next to it.
 *
 * --breakdown also times every child of each model separately (forward and backward), and
 * the GEMMs of each Conv2d/Linear on their own, to show where a model step's time goes.
 */
#include "nn/nn.h"
#include "trainer/trainer.h"
#include "util/util.h"

#include "bench/bench_util.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A copy of NN_CONV_COLS in nn/nn_conv.c, which this program cannot include (it is internal
 * to nn/): Conv2d runs one GEMM per chunk of ceil(NN_CONV_COLS / P) samples. Used only to time
 * sgemm on the shapes the layer issues, so keep the two equal. */
#define BENCH_CONV_COLS 768

#define MAX_REPS 64

typedef struct {
    int reps;
    double min_time;
    const char *only;      /* comma-separated ids or groups ("layers", "models"), NULL: all */
    const char *torch;     /* JSON file from torch_ref.py, NULL: none */
    const char *json;      /* write every result here as one JSON line, NULL: none */
    int breakdown;
    int engine;            /* NN_ENGINE_* the cases run on */
} bench_opts;

static void die(const char *what, int rc)
{
    fprintf(stderr, "strata_bench: %s: %s (%s)\n", what, nn_errmsg(), nn_errname(rc));
    exit(1);
}

/* ---- timing ---------------------------------------------------------------------------- */

typedef struct {
    double best, median; /* seconds per step */
    long steps;          /* steps per repetition */
} timing;

typedef void (*step_fn)(void *ud);

/* Warms up (at least 3 steps and 0.2 s), then times o->reps repetitions of enough steps to
 * last o->min_time each. */
static timing time_steps(step_fn fn, void *ud, const bench_opts *o)
{
    double t0 = util_now_s(), t;
    long n = 0;
    do {
        fn(ud);
        n++;
        t = util_now_s() - t0;
    } while (n < 3 || t < 0.2);
    timing r = {0};
    r.steps = (long)ceil(o->min_time / (t / (double)n));
    if (r.steps < 1) r.steps = 1;
    double per[MAX_REPS];
    for (int k = 0; k < o->reps; k++) {
        t0 = util_now_s();
        for (long i = 0; i < r.steps; i++) fn(ud);
        per[k] = (util_now_s() - t0) / (double)r.steps;
    }
    qsort(per, (size_t)o->reps, sizeof per[0], bench_cmp_double);
    r.best = per[0];
    r.median = o->reps % 2 ? per[o->reps / 2] : 0.5 * (per[o->reps / 2 - 1] + per[o->reps / 2]);
    return r;
}

/* ---- GEMM lists: the cblas_sgemm calls a layer issues, timed on their own ------------------ */

typedef struct {
    int ta, tb;     /* transposes (0/1) */
    int m, n, k;    /* C (m, n) = op(A) (m, k) op(B) (k, n) */
    int count;      /* how many times per step */
    float beta;
} gemm_shape;

#define MAX_GEMMS 8

typedef struct {
    gemm_shape g[MAX_GEMMS];
    int ng;
    float *a, *b, *c;
} gemm_list;

static void gemm_add(gemm_list *L, int ta, int tb, int m, int n, int k, int count, float beta)
{
    if (count <= 0) return;
    L->g[L->ng++] = (gemm_shape){ta, tb, m, n, k, count, beta};
}

static double gemm_list_flops(const gemm_list *L)
{
    double f = 0.0;
    for (int i = 0; i < L->ng; i++)
        f += 2.0 * L->g[i].m * (double)L->g[i].n * L->g[i].k * L->g[i].count;
    return f;
}

static void gemm_list_alloc(gemm_list *L, nn_rng *rng)
{
    size_t na = 0, nb = 0, nc = 0;
    for (int i = 0; i < L->ng; i++) {
        const gemm_shape *g = &L->g[i];
        size_t a = (size_t)g->m * g->k, b = (size_t)g->k * g->n, c = (size_t)g->m * g->n;
        if (a > na) na = a;
        if (b > nb) nb = b;
        if (c > nc) nc = c;
    }
    L->a = bench_xcalloc("strata_bench", na, sizeof(float));
    L->b = bench_xcalloc("strata_bench", nb, sizeof(float));
    L->c = bench_xcalloc("strata_bench", nc, sizeof(float));
    nn_rng_fill_normal(rng, L->a, na, 1.0f);
    nn_rng_fill_normal(rng, L->b, nb, 1.0f);
}

static void gemm_list_free(gemm_list *L)
{
    free(L->a);
    free(L->b);
    free(L->c);
    L->a = L->b = L->c = NULL;
}

static void gemm_list_step(void *ud)
{
    gemm_list *L = ud;
    for (int i = 0; i < L->ng; i++) {
        const gemm_shape *g = &L->g[i];
        /* Row-major leading dimensions of op(A) (m, k) and op(B) (k, n) as stored. */
        int lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
        for (int r = 0; r < g->count; r++)
            cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
                        g->tb ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, 1.0f, L->a, lda, L->b,
                        ldb, g->beta, L->c, g->n);
    }
}

/* The GEMMs of one training step of Linear(in, out) at batch N (nn_linear.c's calls). */
static void gemms_linear(gemm_list *L, int N, int in, int out, int need_dx)
{
    gemm_add(L, 0, 1, N, out, in, 1, 1.0f);      /* y = x W^T + b */
    gemm_add(L, 1, 0, out, in, N, 1, 1.0f);      /* dW += dy^T x */
    if (need_dx) gemm_add(L, 0, 0, N, in, out, 1, 0.0f); /* dx = dy W */
}

/* The GEMMs of one training step of a 3x3-style Conv2d at batch N, chunked as nn_conv.c does:
 * per chunk of nb samples, y (Cout, nb*P) = W (Cout, K) col (K, nb*P), the weight gradient
 * computed transposed, dW^T (K, Cout) = col (K, nb*P) g^T, and dcol = W^T g; the last chunk
 * may be smaller. Adding dW^T into the gradient is not a GEMM and is not timed here. */
static void gemms_conv(gemm_list *L, int N, int cout, int K, int P, int need_dx)
{
    int nb = (BENCH_CONV_COLS + P - 1) / P;
    if (nb < 1) nb = 1;
    if (nb > N) nb = N;
    int full = N / nb, rest = N % nb;
    int sizes[2] = {nb, rest}, counts[2] = {full, rest ? 1 : 0};
    for (int s = 0; s < 2; s++) {
        int ld = sizes[s] * P;
        gemm_add(L, 0, 0, cout, ld, K, counts[s], 0.0f); /* y = W col */
        gemm_add(L, 0, 1, K, cout, ld, counts[s], 1.0f); /* dW^T (+)= col g^T */
        if (need_dx) gemm_add(L, 1, 0, K, ld, cout, counts[s], 0.0f); /* dcol = W^T g */
    }
}

/* ---- the sgemm reference ----------------------------------------------------------------- */

/* Best rate, in GFLOP/s, of cblas_sgemm (n, n, n) over reps calls after a warm-up. */
static double sgemm_square_rate(int n, int reps, nn_rng *rng)
{
    gemm_list L = {0};
    gemm_add(&L, 0, 0, n, n, n, 1, 0.0f);
    gemm_list_alloc(&L, rng);
    gemm_list_step(&L);
    gemm_list_step(&L);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = util_now_s();
        gemm_list_step(&L);
        double t = util_now_s() - t0;
        if (t < best) best = t;
    }
    gemm_list_free(&L);
    return 2.0 * n * (double)n * n / best / 1e9;
}

/* ---- PyTorch reference: the JSON line of torch_ref.py -------------------------------------- */

typedef struct {
    char *text; /* whole file, NULL when absent */
    char version[32];
    int threads;
} torch_ref;

static void torch_load(torch_ref *t, const char *path)
{
    memset(t, 0, sizeof *t);
    if (!path) return;
    char *s;
    if (util_read_file(&s, NULL, path, 0)) {
        fprintf(stderr, "strata_bench: %s; PyTorch column left empty\n", nn_errmsg());
        return;
    }
    /* The JSON line is the one that starts with '{' (torch_ref.py prints nothing else on
     * stdout, but be lenient about what run.sh captured). */
    char *line = s[0] == '{' ? s : strstr(s, "\n{");
    if (!line || !strstr(line, "\"results\"")) {
        fprintf(stderr, "strata_bench: %s holds no torch_ref.py JSON; PyTorch column left empty\n",
                path);
        free(s);
        return;
    }
    t->text = s;
    const char *v = strstr(line, "\"torch\":\"");
    if (v) sscanf(v + 9, "%31[^\"]", t->version);
    const char *th = strstr(line, "\"threads\":");
    if (th) t->threads = atoi(th + 10);
}

/* PyTorch's samples/s for case id at this batch, or 0 when not measured. */
static double torch_samples(const torch_ref *t, const char *id, int batch)
{
    if (!t->text) return 0.0;
    char key[96];
    snprintf(key, sizeof key, "\"%s\":{", id);
    const char *p = strstr(t->text, key);
    if (!p) return 0.0;
    const char *end = strchr(p, '}');
    const char *b = strstr(p, "\"batch\":"), *s = strstr(p, "\"samples_per_s\":");
    if (!end || !b || !s || b > end || s > end) return 0.0;
    if (atoi(b + 8) != batch) {
        fprintf(stderr, "strata_bench: PyTorch measured %s at batch %d, not %d; ignored\n", id,
                atoi(b + 8), batch);
        return 0.0;
    }
    return strtod(s + 16, NULL);
}

/* ---- results table ------------------------------------------------------------------------ */

typedef struct {
    char name[40];
    const char *id;
    int batch;
    int is_model;
    timing t;
    double flops;        /* GEMM FLOPs per step */
    double shape_gflops; /* sgemm rate on the layer's own GEMM shapes, 0 for models */
    double shape_share;  /* time those GEMMs take / step time */
    double torch_sps;    /* 0: not measured */
    float target;        /* models: strata/PyTorch the issue asks for */
} result;

#define MAX_RESULTS 16
static result results[MAX_RESULTS];
static int nresults;

static int selected(const bench_opts *o, const char *id, const char *group)
{
    if (!o->only) return 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", o->only);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
        if (!strcmp(tok, id) || !strcmp(tok, group)) return 1;
    return 0;
}

/* ---- single layers ------------------------------------------------------------------------ */

typedef struct {
    const char *id, *name;
    int conv;           /* 1: Conv2d(cin, cout, 3, padding=1, bias=False); 0: Linear(cin, cout) */
    int cin, cout, hw;  /* hw: input height = width (convs) */
    int batch;
    int need_dx;
} layer_case;

static const layer_case layer_cases[] = {
    {"linear_784_1024", "Linear(784,1024)", 0, 784, 1024, 1, 128, 1},
    {"linear_1024_1024", "Linear(1024,1024)", 0, 1024, 1024, 1, 128, 1},
    {"conv_1_32_28", "Conv2d(1,32)@28x28 no dx", 1, 1, 32, 28, 64, 0},
    {"conv_32_32_28", "Conv2d(32,32)@28x28", 1, 32, 32, 28, 64, 1},
    {"conv_32_64_14", "Conv2d(32,64)@14x14", 1, 32, 64, 14, 64, 1},
    {"conv_64_64_14", "Conv2d(64,64)@14x14", 1, 64, 64, 14, 64, 1},
    {"conv_64_128_7", "Conv2d(64,128)@7x7", 1, 64, 128, 7, 64, 1},
    /* resnet18 with the small stem on 32x32 inputs, batch 32: the stride-1 3x3 convolution
     * of each stage (3 of every stage's 4 convolutions; all 4 in layer1) */
    {"conv_64_64_32", "Conv2d(64,64)@32x32", 1, 64, 64, 32, 32, 1},
    {"conv_128_128_16", "Conv2d(128,128)@16x16", 1, 128, 128, 16, 32, 1},
    {"conv_256_256_8", "Conv2d(256,256)@8x8", 1, 256, 256, 8, 32, 1},
    {"conv_512_512_4", "Conv2d(512,512)@4x4", 1, 512, 512, 4, 32, 1},
};

typedef struct {
    nn_layer *l;
    nn_engine *eng;
    float *param, *grad, *vel;
    size_t numel;
    nn_tensor x, dy;
    float lr, mu;
} layer_bench;

static void layer_step(void *ud)
{
    layer_bench *b = ud;
    memset(b->grad, 0, b->numel * sizeof(float));
    int rc = nn_layer_forward(b->l, &b->x, NULL);
    if (!rc) rc = nn_layer_backward(b->l, &b->dy);
    if (rc) die("layer step", rc);
    /* SGD with momentum, as trainer_opt_step does it (no weight decay). */
    for (size_t i = 0; i < b->numel; i++) {
        b->vel[i] = b->mu * b->vel[i] + b->grad[i];
        b->param[i] -= b->lr * b->vel[i];
    }
}

static void bench_layer(const layer_case *c, const bench_opts *o, const torch_ref *tr,
                        nn_rng *rng)
{
    layer_bench b = {.lr = 0.01f, .mu = 0.9f};
    int in[3] = {c->cin, c->conv ? c->hw : 1, c->conv ? c->hw : 1};
    int rc = c->conv ? nn_conv2d_new(&b.l, c->cin, c->cout, 3, 1, 1, 0)
                     : nn_linear_new(&b.l, c->cin, c->cout, 1);
    if (!rc) rc = nn_engine_new(&b.eng, o->engine);
    if (!rc) rc = nn_layer_bind_standalone(b.l, in, rng, b.eng, &b.param, &b.grad);
    if (rc) die(c->name, rc);
    if (!c->need_dx) nn_layer_plan_backward(b.l, 0);
    b.numel = nn_layer_numel(b.l);
    b.vel = bench_xcalloc("strata_bench", b.numel, sizeof(float));
    rc = nn_tensor_resize(&b.x, c->batch, in[0], in[1], in[2]);
    if (!rc)
        rc = nn_tensor_resize(&b.dy, c->batch, b.l->out_shape[0], b.l->out_shape[1],
                              b.l->out_shape[2]);
    if (rc) die(c->name, rc);
    nn_rng_fill_normal(rng, b.x.data, nn_tensor_numel(&b.x), 1.0f);
    nn_rng_fill_normal(rng, b.dy.data, nn_tensor_numel(&b.dy), 1.0f);
    /* Inside a network the layer's input and upstream gradient come in the engine's layout
     * (from the layers around it); give them that layout here, once, outside the timing. */
    if (nn_engine_layout(b.eng) > 1 && c->conv) {
        nn_tensor t = {0};
        rc = nn_tensor_convert(&t, &b.x, nn_engine_layout(b.eng));
        nn_tensor_free(&b.x);
        b.x = t;
        memset(&t, 0, sizeof t);
        if (!rc) rc = nn_tensor_convert(&t, &b.dy, nn_engine_layout(b.eng));
        nn_tensor_free(&b.dy);
        b.dy = t;
        if (rc) die(c->name, rc);
    }

    gemm_list G = {0};
    if (c->conv)
        gemms_conv(&G, c->batch, c->cout, c->cin * 9, b.l->out_shape[1] * b.l->out_shape[2],
                   c->need_dx);
    else
        gemms_linear(&G, c->batch, c->cin, c->cout, c->need_dx);

    result *r = &results[nresults++];
    snprintf(r->name, sizeof r->name, "%s", c->name);
    r->id = c->id;
    r->batch = c->batch;
    r->t = time_steps(layer_step, &b, o);
    r->flops = gemm_list_flops(&G);
    gemm_list_alloc(&G, rng);
    timing tg = time_steps(gemm_list_step, &G, o);
    r->shape_gflops = r->flops / tg.best / 1e9;
    r->shape_share = tg.best / r->t.best;
    r->torch_sps = torch_samples(tr, c->id, c->batch);
    fprintf(stderr, "strata_bench: %-26s %9.3f ms/step (median %.3f, %ld steps x %d)\n", r->name,
            r->t.best * 1e3, r->t.median * 1e3, r->t.steps, o->reps);
    gemm_list_free(&G);
    nn_layer_free(b.l);
    nn_engine_free(b.eng);
    free(b.param);
    free(b.grad);
    free(b.vel);
    nn_tensor_free(&b.x);
    nn_tensor_free(&b.dy);
}

/* ---- whole models ------------------------------------------------------------------------- */

typedef struct {
    nn_model *m;
    trainer_opt opt;
    float lr[NN_MAX_GROUPS], mom[NN_MAX_GROUPS], wd[NN_MAX_GROUPS];
    nn_tensor x, dlogits;
    int32_t *labels;
    nn_rng rng;
    nn_ctx ctx;
} model_bench;

static void model_step(void *ud)
{
    model_bench *b = ud;
    const nn_tensor *logits;
    float loss;
    int rc = nn_model_forward(&logits, b->m, &b->x, &b->ctx);
    if (!rc) rc = nn_cross_entropy(&loss, &b->dlogits, NULL, logits, b->labels);
    if (!rc) rc = nn_model_backward_fresh(b->m, &b->dlogits); /* as the trainer's step */
    if (rc) die("model step", rc);
    trainer_opt_step(&b->opt, b->m, b->lr, b->mom, b->wd);
}

/* GEMM FLOPs of one training step through a layer subtree, from the backward plan. */
static double layer_flops(const nn_layer *l, int N)
{
    double f = 0.0;
    for (int i = 0; i < l->nkids; i++) f += layer_flops(l->kids[i], N);
    const char *type = l->ops->type;
    double mnk = 0.0;
    if (!strcmp(type, "Linear")) {
        mnk = (double)N * l->params[0].shape[0] * l->params[0].shape[1];
    } else if (!strcmp(type, "Conv2d")) {
        const int *s = l->params[0].shape;
        mnk = (double)N * s[0] * s[1] * s[2] * s[3] * l->out_shape[1] * l->out_shape[2];
    } else {
        return f;
    }
    int gemms = 1 + (l->params[0].trainable ? 1 : 0) + (l->need_dx ? 1 : 0);
    return f + 2.0 * mnk * gemms;
}

/* The whole-model cases: the three models at their per-rank batches. The resnet18 is
 * torchvision's with a small-input stem (conv1 3x3 stride 1, no max pool) and its own head
 * (average pool, fc), on 3x32x32 inputs: bench/torch_ref.py builds the same model. */
typedef struct {
    const char *id;
    int in_c, in_hw, batch, head, small_stem;
    float target; /* strata/PyTorch samples/s the issue asks for */
} model_case;

static const model_case model_cases[] = {
    {"mlp", 1, 28, 128, NN_HEAD_LINEAR, 0, 1.0f},
    {"cnn", 1, 28, 64, NN_HEAD_LINEAR, 0, 1.5f},
    {"resnet18", 3, 32, 32, NN_HEAD_ORIGINAL, 1, 1.5f},
};

static void model_setup(model_bench *b, const model_case *mc, int engine)
{
    memset(b, 0, sizeof *b);
    const char *arch = mc->id;
    const int batch = mc->batch;
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.arch = arch;
    spec.in_c = mc->in_c;
    spec.in_h = spec.in_w = mc->in_hw;
    spec.classes = 10;
    spec.head = mc->head;
    spec.small_stem = mc->small_stem;
    spec.engine = engine;
    if (!strcmp(arch, "mlp")) {
        spec.nwidths = 2;
        spec.widths[0] = spec.widths[1] = 1024;
    }
    nn_rng_seed(&b->rng, 42);
    b->ctx.rng = &b->rng;
    int rc = nn_model_init(&b->m, &spec, &b->rng);
    if (!rc) rc = trainer_opt_init(&b->opt, b->m, TRAINER_OPT_SGD, 0, 0.0, 0.0, 0);
    for (int g = 0; g < NN_MAX_GROUPS; g++) {
        b->lr[g] = 0.01f;
        b->mom[g] = 0.9f;
        b->wd[g] = 0.0f;
    }
    if (!rc) rc = nn_tensor_resize(&b->x, batch, mc->in_c, mc->in_hw, mc->in_hw);
    if (rc) die(arch, rc);
    nn_rng_fill_normal(&b->rng, b->x.data, nn_tensor_numel(&b->x), 1.0f);
    b->labels = bench_xcalloc("strata_bench", (size_t)batch, sizeof(int32_t));
    for (int i = 0; i < batch; i++) b->labels[i] = (int32_t)(nn_rng_next(&b->rng) % 10);
}

static void model_teardown(model_bench *b)
{
    trainer_opt_free(&b->opt);
    nn_model_free(b->m);
    nn_tensor_free(&b->x);
    nn_tensor_free(&b->dlogits);
    free(b->labels);
}

/* --breakdown: the same step with every child of body and head timed on its own, walking the
 * Sequentials as nn_container.c does (backward stops at the first child that needs no dx). */
#define MAX_KIDS 64

typedef struct {
    nn_layer *kid[MAX_KIDS];
    const char *where[MAX_KIDS];
    int idx[MAX_KIDS];
    int n;
    double fwd[MAX_KIDS], bwd[MAX_KIDS];
    double loss, zero, sgd;
} breakdown;

static void breakdown_step(model_bench *b, breakdown *d)
{
    double t;
    const nn_tensor *h = &b->x;
    for (int i = 0; i < d->n; i++) {
        t = util_now_s();
        int rc = nn_layer_forward(d->kid[i], h, &b->ctx);
        d->fwd[i] += util_now_s() - t;
        if (rc) die("breakdown forward", rc);
        h = &d->kid[i]->y;
    }
    float loss;
    t = util_now_s();
    int rc = nn_cross_entropy(&loss, &b->dlogits, NULL, h, b->labels);
    d->loss += util_now_s() - t;
    if (rc) die("breakdown loss", rc);
    t = util_now_s();
    nn_model_zero_grad(b->m);
    d->zero += util_now_s() - t;
    const nn_tensor *g = &b->dlogits;
    for (int i = d->n - 1; i >= 0; i--) {
        nn_layer *k = d->kid[i];
        if (!k->any_trainable && !k->need_dx) break;
        t = util_now_s();
        rc = nn_layer_backward(k, g);
        d->bwd[i] += util_now_s() - t;
        if (rc) die("breakdown backward", rc);
        if (!k->need_dx) break;
        g = nn_layer_grad_input(k);
    }
    t = util_now_s();
    trainer_opt_step(&b->opt, b->m, b->lr, b->mom, b->wd);
    d->sgd += util_now_s() - t;
}

static double layer_gemm_seconds(const nn_layer *l, int N, const bench_opts *o, nn_rng *rng)
{
    gemm_list G = {0};
    if (!strcmp(l->ops->type, "Linear"))
        gemms_linear(&G, N, l->params[0].shape[1], l->params[0].shape[0], l->need_dx);
    else if (!strcmp(l->ops->type, "Conv2d"))
        gemms_conv(&G, N, l->params[0].shape[0],
                   l->params[0].shape[1] * l->params[0].shape[2] * l->params[0].shape[3],
                   l->out_shape[1] * l->out_shape[2], l->need_dx);
    else
        return 0.0;
    gemm_list_alloc(&G, rng);
    bench_opts q = *o;
    q.min_time = 0.1;
    timing t = time_steps(gemm_list_step, &G, &q);
    gemm_list_free(&G);
    return t.best;
}

static void print_breakdown(model_bench *b, const char *arch, int batch, const bench_opts *o,
                            nn_rng *rng)
{
    breakdown d = {0}, best = {0}, zero = {0};
    for (int part = 0; part < 2; part++) {
        nn_layer *seq = part ? b->m->head : b->m->body;
        for (int i = 0; i < seq->nkids && d.n < MAX_KIDS; i++) {
            d.kid[d.n] = seq->kids[i];
            d.where[d.n] = part ? "head" : "body";
            d.idx[d.n++] = i;
        }
    }
    for (int w = 0; w < 3; w++) breakdown_step(b, &d);
    /* Repetitions of 10 steps each; keep the repetition with the smallest total. */
    double best_total = 1e30;
    const int steps = 10;
    for (int r = 0; r < o->reps; r++) {
        breakdown cur = d;
        memcpy(cur.fwd, zero.fwd, sizeof cur.fwd);
        memcpy(cur.bwd, zero.bwd, sizeof cur.bwd);
        cur.loss = cur.zero = cur.sgd = 0.0;
        for (int s = 0; s < steps; s++) breakdown_step(b, &cur);
        double total = cur.loss + cur.zero + cur.sgd;
        for (int i = 0; i < cur.n; i++) total += cur.fwd[i] + cur.bwd[i];
        if (total < best_total) {
            best_total = total;
            best = cur;
        }
    }
    double tot = best_total / steps * 1e3;
    printf("\nBreakdown of one %s step (batch %d), best of %d x %d steps: %.3f ms\n", arch, batch,
           o->reps, steps, tot);
    printf("| child | layer | forward ms | backward ms | total ms | %% of step | GEMMs alone ms |"
           " not GEMM ms |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < best.n; i++) {
        double f = best.fwd[i] / steps * 1e3, bw = best.bwd[i] / steps * 1e3;
        double gm = layer_gemm_seconds(best.kid[i], batch, o, rng) * 1e3;
        char gcol[32] = "", ncol[32] = "";
        if (gm > 0.0) {
            snprintf(gcol, sizeof gcol, "%.3f", gm);
            snprintf(ncol, sizeof ncol, "%.3f", f + bw - gm);
        }
        printf("| %s.%d | %s | %.3f | %.3f | %.3f | %.1f | %s | %s |\n", best.where[i], best.idx[i],
               best.kid[i]->ops->type, f, bw, f + bw, 100.0 * (f + bw) / tot, gcol, ncol);
    }
    printf("| | cross-entropy | %.3f | | %.3f | %.1f | | |\n", best.loss / steps * 1e3,
           best.loss / steps * 1e3, 100.0 * best.loss / steps * 1e3 / tot);
    printf("| | zero_grad | | %.3f | %.3f | %.1f | | |\n", best.zero / steps * 1e3,
           best.zero / steps * 1e3, 100.0 * best.zero / steps * 1e3 / tot);
    printf("| | SGD step | | %.3f | %.3f | %.1f | | |\n", best.sgd / steps * 1e3,
           best.sgd / steps * 1e3, 100.0 * best.sgd / steps * 1e3 / tot);
}

static void bench_model(const model_case *mc, const bench_opts *o, const torch_ref *tr,
                        nn_rng *rng)
{
    const char *arch = mc->id;
    const int batch = mc->batch;
    model_bench b;
    model_setup(&b, mc, o->engine);
    result *r = &results[nresults++];
    snprintf(r->name, sizeof r->name, "%s (whole step)", arch);
    r->id = arch;
    r->batch = batch;
    r->is_model = 1;
    r->target = mc->target;
    r->t = time_steps(model_step, &b, o);
    r->flops = layer_flops(b.m->body, batch) + layer_flops(b.m->head, batch);
    r->torch_sps = torch_samples(tr, arch, batch);
    fprintf(stderr, "strata_bench: %-26s %9.3f ms/step (median %.3f, %ld steps x %d)\n", r->name,
            r->t.best * 1e3, r->t.median * 1e3, r->t.steps, o->reps);
    if (o->breakdown) print_breakdown(&b, arch, batch, o, rng);
    model_teardown(&b);
}

/* ---- main --------------------------------------------------------------------------------- */

static void print_machine(void)
{
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                const char *c = strchr(line, ':');
                if (c) {
                    snprintf(model, sizeof model, "%s", c + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    printf("CPU: %s (%d online; strata uses 1 BLAS thread)\n", model, openblas_get_num_procs());
    printf("OpenBLAS: %s, core %s\n", openblas_get_config(), openblas_get_corename());
#if defined(__OPTIMIZE__) && defined(NDEBUG)
    printf("build: optimised (Release)\n");
#else
    printf("build: NOT optimised (not a Release build): these numbers mean little\n");
#endif
}

/* Every result as one JSON line: {"bench": "nn", "sgemm_gflops": ..., "results": {id: {...}}}.
 * samples_per_s is from the best repetition; torch_samples_per_s is 0 when not measured. */
static int write_json(const char *path, const bench_opts *o, const torch_ref *tr, double sgemm0,
                      double sgemm1)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "{\"bench\":\"nn\",\"reps\":%d,\"min_time\":%g,\"blas\":\"%s\",\"blas_core\":\"%s\","
               "\"sgemm_gflops_before\":%.4g,\"sgemm_gflops_after\":%.4g,\"torch\":\"%s\",\"results\":{",
            o->reps, o->min_time, openblas_get_config(), openblas_get_corename(), sgemm0, sgemm1,
            tr->text ? tr->version : "");
    for (int i = 0; i < nresults; i++) {
        const result *r = &results[i];
        const double sps = r->batch / r->t.best;
        fprintf(f, "%s\"%s\":{\"name\":\"%s\",\"batch\":%d,\"model\":%s,\"ms_per_step\":%.6g,"
                   "\"ms_per_step_median\":%.6g,\"samples_per_s\":%.6g,\"gemm_gflops\":%.4g,"
                   "\"torch_samples_per_s\":%.6g,\"vs_torch\":%.4g",
                i ? "," : "", r->id, r->name, r->batch, r->is_model ? "true" : "false",
                r->t.best * 1e3, r->t.median * 1e3, sps, r->flops / r->t.best / 1e9, r->torch_sps,
                r->torch_sps > 0.0 ? sps / r->torch_sps : 0.0);
        if (r->is_model) fprintf(f, ",\"target_vs_torch\":%.3g", r->target);
        fprintf(f, "}");
    }
    fprintf(f, "}}\n");
    return fclose(f);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata_bench [--reps N] [--min-time S] [--only LIST] [--torch FILE] "
            "[--json FILE] [--breakdown] [--engine reference|cpu]\n"
            "  --reps N       timed repetitions per case, best is reported (default 5)\n"
            "  --min-time S   seconds per repetition at least (default 0.5)\n"
            "  --only LIST    comma-separated case ids or groups (layers, models)\n"
            "  --torch FILE   the JSON line of bench/torch_ref.py, for the PyTorch columns\n"
            "  --json FILE    also write every result (and the sgemm reference) as one JSON line\n"
            "  --breakdown    also time each child of the models and its GEMMs alone\n"
            "  --engine NAME  the engine every case runs on (default cpu)\n");
}

int main(int argc, char **argv)
{
    bench_opts o = {.reps = 5, .min_time = 0.5, .engine = NN_ENGINE_DEFAULT};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reps") && v) {
            o.reps = atoi(v);
            i++;
        } else if (!strcmp(a, "--min-time") && v) {
            o.min_time = atof(v);
            i++;
        } else if (!strcmp(a, "--only") && v) {
            o.only = v;
            i++;
        } else if (!strcmp(a, "--torch") && v) {
            o.torch = v;
            i++;
        } else if (!strcmp(a, "--json") && v) {
            o.json = v;
            i++;
        } else if (!strcmp(a, "--engine") && v) {
            if (nn_engine_parse(&o.engine, v)) {
                fprintf(stderr, "strata_bench: %s\n", nn_errmsg());
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--breakdown")) {
            o.breakdown = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "strata_bench: unknown or incomplete option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (o.reps < 1 || o.reps > MAX_REPS || !(o.min_time > 0.0)) {
        fprintf(stderr, "strata_bench: --reps must be 1..%d and --min-time positive\n", MAX_REPS);
        return 2;
    }
    nn_blas_threads(1);
    nn_rng rng;
    nn_rng_seed(&rng, 1);
    torch_ref tr;
    torch_load(&tr, o.torch);

    print_machine();
    {
        nn_engine *e = NULL;
        if (nn_engine_new(&e, o.engine)) die("engine", NN_EINVAL);
        printf("engine: %s\n", nn_engine_describe(e));
        nn_engine_free(e);
    }
    double sgemm0 = sgemm_square_rate(1024, 10, &rng);
    printf("sgemm 1024x1024x1024, 1 thread, best of 10: %.1f GFLOP/s (before the cases)\n",
           sgemm0);
    fflush(stdout);

    for (size_t i = 0; i < sizeof layer_cases / sizeof layer_cases[0]; i++)
        if (selected(&o, layer_cases[i].id, "layers")) bench_layer(&layer_cases[i], &o, &tr, &rng);
    for (size_t i = 0; i < sizeof model_cases / sizeof model_cases[0]; i++)
        if (selected(&o, model_cases[i].id, "models")) bench_model(&model_cases[i], &o, &tr, &rng);

    double sgemm1 = sgemm_square_rate(1024, 10, &rng);
    double sgemm = sgemm0 > sgemm1 ? sgemm0 : sgemm1;
    printf("sgemm 1024x1024x1024, 1 thread, best of 10: %.1f GFLOP/s (after the cases); "
           "reference: %.1f GFLOP/s\n",
           sgemm1, sgemm);
    if (tr.text)
        printf("PyTorch %s, %d thread(s), from %s\n", tr.version, tr.threads, o.torch);
    else
        printf("PyTorch: not measured%s\n",
               o.torch ? " (no usable JSON)" : " (pass --torch FILE; bench/run.sh does this)");

    printf("\nOne training step = forward + loss + backward + SGD(momentum 0.9); best of %d "
           "repetitions.\n",
           o.reps);
    printf("GFLOP/s counts Conv2d/Linear GEMM FLOPs only; %% sgemm is against %.1f GFLOP/s; "
           "\"same-shape sgemm\" runs cblas_sgemm alone on the layer's GEMM shapes, and "
           "\"GEMM share\" is the time those take over the step time.\n\n",
           sgemm);
    printf("| case | batch | ms/step | (median) | samples/s | GFLOP/s | %% sgemm | same-shape sgemm "
           "GFLOP/s | GEMM share | PyTorch samples/s | strata/PyTorch |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < nresults; i++) {
        const result *r = &results[i];
        double sps = r->batch / r->t.best, gf = r->flops / r->t.best / 1e9;
        char shape[32] = "", share[32] = "", tsps[32] = "-", ratio[32] = "-";
        if (!r->is_model) {
            snprintf(shape, sizeof shape, "%.1f", r->shape_gflops);
            snprintf(share, sizeof share, "%.0f%%", 100.0 * r->shape_share);
        }
        if (r->torch_sps > 0.0) {
            snprintf(tsps, sizeof tsps, "%.0f", r->torch_sps);
            snprintf(ratio, sizeof ratio, "%.2fx", sps / r->torch_sps);
        }
        printf("| %s | %d | %.3f | %.3f | %.0f | %.1f | %.0f%% | %s | %s | %s | %s |\n", r->name,
               r->batch, r->t.best * 1e3, r->t.median * 1e3, sps, gf, 100.0 * gf / sgemm, shape,
               share, tsps, ratio);
    }

    printf("\nTargets:\n");
    for (int i = 0; i < nresults; i++) {
        const result *r = &results[i];
        double sps = r->batch / r->t.best, pct = 100.0 * r->flops / r->t.best / 1e9 / sgemm;
        if (!r->is_model) {
            printf("  %-26s %5.1f%% of sgemm (target >= 70%%): %s\n", r->name, pct,
                   pct >= 70.0 ? "met" : "NOT met");
            continue;
        }
        double want = r->target;
        if (r->torch_sps > 0.0)
            printf("  %-26s %5.2fx PyTorch (target >= %.1fx): %s\n", r->name, sps / r->torch_sps,
                   want, sps / r->torch_sps >= want ? "met" : "NOT met");
        else
            printf("  %-26s PyTorch not measured (target >= %.1fx): not checked\n", r->name, want);
    }
    int rc = 0;
    if (o.json && write_json(o.json, &o, &tr, sgemm0, sgemm1)) {
        fprintf(stderr, "strata_bench: cannot write %s: %s\n", o.json, strerror(errno));
        rc = 1;
    }
    free(tr.text);
    return rc;
}
