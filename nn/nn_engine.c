/* Engines: choosing one by name, its lifetime, its shared workspace, and the reference
 * engine's table (its kernels live beside their layers: nn_conv.c, nn_norm.c, nn_pool.c). */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    int kind;
    const char *name;
} engine_names[] = {
    {NN_ENGINE_REFERENCE, "reference"},
    {NN_ENGINE_CPU, "cpu"},
};

int nn_engine_parse(int *kind, const char *name)
{
    for (size_t i = 0; i < sizeof engine_names / sizeof engine_names[0]; i++)
        if (name && !strcmp(name, engine_names[i].name)) {
            *kind = engine_names[i].kind;
            return 0;
        }
    return nn_err(NN_EINVAL, "engine '%s' is not known (use reference or cpu)",
                  name ? name : "(null)");
}

const char *nn_engine_kind_name(int kind)
{
    for (size_t i = 0; i < sizeof engine_names / sizeof engine_names[0]; i++)
        if (engine_names[i].kind == kind) return engine_names[i].name;
    return "unknown";
}

static void ref_destroy(nn_engine *e)
{
    (void)e;
}

void *nn__host_alloc(nn_engine *e, size_t bytes)
{
    (void)e;
    bytes = (bytes ? bytes + 63 : 64) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void nn__host_release(nn_engine *e, void *p)
{
    (void)e;
    free(p);
}

static const nn_engine_ops ref_ops = {
    .name = "reference",
    .kind = NN_ENGINE_REFERENCE,
    .destroy = ref_destroy,
    .plan_free = nn__ref_plan_free,
    .alloc = nn__host_alloc,
    .release = nn__host_release,
    .conv_forward = nn__ref_conv_forward,
    .conv_backward = nn__ref_conv_backward,
    .bn_forward = nn__ref_bn_forward,
    .bn_backward = nn__ref_bn_backward,
    .pool_forward = nn__ref_pool_forward,
    .pool_backward = nn__ref_pool_backward,
    .linear_forward = nn__ref_linear_forward,
    .linear_backward = nn__ref_linear_backward,
};

int nn_engine_new(nn_engine **out, int kind)
{
    *out = NULL;
    if (kind == 0) kind = NN_ENGINE_DEFAULT;
    if (kind != NN_ENGINE_REFERENCE && kind != NN_ENGINE_CPU)
        return nn_err(NN_EINVAL, "engine kind %d is not known (use reference or cpu)", kind);
    nn_engine *e = calloc(1, sizeof *e);
    if (!e) return nn_err(NN_ENOMEM, "cannot allocate an engine");
    e->ops = &ref_ops;
    e->blk = 1;
    snprintf(e->desc, sizeof e->desc, "reference: im2col + OpenBLAS sgemm, NCHW");
    if (kind == NN_ENGINE_CPU) {
        int rc = nn__dnnl_engine_init(e);
        if (rc) {
            free(e);
            return rc;
        }
    }
    *out = e;
    return 0;
}

void nn_engine_free(nn_engine *e)
{
    if (!e) return;
    e->ops->destroy(e);
    free(e->ws);
    free(e);
}

int nn_engine_kind(const nn_engine *e)
{
    return e->ops->kind;
}

const char *nn_engine_describe(const nn_engine *e)
{
    return e->desc;
}

int nn_engine_layout(const nn_engine *e)
{
    return e->blk;
}

size_t nn_engine_workspace_bytes(const nn_engine *e)
{
    return e->ws_cap * sizeof(float);
}

float *nn__workspace(nn_engine *e, size_t floats)
{
    if (floats < 16) floats = 16; /* never NULL, even for an empty need */
    if (floats <= e->ws_cap) return e->ws;
    /* Grows to the largest need seen; the old contents need not survive. */
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes);
    if (!p) {
        nn_err(NN_ENOMEM, "cannot allocate a workspace of %zu MB", bytes >> 20);
        return NULL;
    }
    free(e->ws);
    e->ws = p;
    e->ws_cap = bytes / sizeof(float);
    return p;
}

void nn__ref_plan_free(nn_engine *e, nn_kplan *plan)
{
    (void)e;
    free(plan);
}
