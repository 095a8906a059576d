/* Models: body children cut into layer groups plus a head, with one contiguous parameter
 * slab and one gradient slab per group, freezing, and forward/backward that stops below the
 * lowest trainable parameter. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

void nn_model_spec_default(nn_model_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->in_c = 3;
    spec->in_h = spec->in_w = 224;
    spec->classes = 1000;
    spec->cut = -1;
    spec->nsplit = -1;
    spec->head = NN_HEAD_DEFAULT;
    spec->head_ps[0] = spec->head_ps[1] = -1.0f;
    spec->engine = NN_ENGINE_DEFAULT;
}

/* Group of body child i. */
static int child_group(const nn_model *m, int i)
{
    for (int g = 0; g < m->ngroups; g++)
        if (!m->groups[g].is_head && i >= m->groups[g].first && i <= m->groups[g].last) return g;
    return m->ngroups - 1;
}

typedef struct {
    nn_group *g;
    int gi;
    size_t off;
    int count_only;
    int bn;         /* binding pass: 0 binds the other parameters, 1 the BatchNorm ones */
} bind_ctx;

static int bind_param(void *ud, const char *name, nn_param *p)
{
    bind_ctx *c = ud;
    if (c->count_only) {
        c->g->numel += p->numel;
        c->g->nparams++;
        return 0;
    }
    if (p->is_bn != c->bn) return 0;
    p->data = c->g->param_slab + c->off;
    p->grad = c->g->grad_slab + c->off;
    p->group = c->gi;
    c->g->params[c->g->nparams++] = p;
    c->off += p->numel;
    return 0;
}

/* Lays out every group's slab: counts, allocates, then points each parameter into it, in
 * model order but with the BatchNorm parameters last, from bn_offset on: a frozen group whose
 * BatchNorm trains (train_bn) then has all its gradients in one contiguous tail. */
static int model_bind(nn_model *m)
{
    for (int gi = 0; gi < m->ngroups; gi++) {
        nn_group *g = &m->groups[gi];
        bind_ctx c = {g, gi, 0, 1, 0};
        for (int pass = 0; pass < 3; pass++) {
            c.count_only = pass == 0;
            c.bn = pass == 2;
            if (pass == 2) g->bn_offset = c.off;
            if (pass == 0) c.off = 0;
            if (pass == 1) {
                c.off = 0;
                g->param_slab = m->eng->ops->alloc(m->eng, g->numel * sizeof(float));
                g->grad_slab = m->eng->ops->alloc(m->eng, g->numel * sizeof(float));
                g->params = calloc(g->nparams ? (size_t)g->nparams : 1, sizeof(nn_param *));
                if (!g->param_slab || !g->grad_slab || !g->params)
                    return nn_err(NN_ENOMEM, "cannot allocate the slabs of group %d (%zu parameters)",
                                  gi, g->numel);
                g->nparams = 0;
            }
            if (g->is_head) {
                nn_layer_visit_params(m->head, "head", bind_param, &c);
            } else {
                for (int i = g->first; i <= g->last; i++)
                    nn_layer_visit_params(m->body->kids[i], "", bind_param, &c);
            }
        }
    }
    return 0;
}

/* Recomputes trainable flags, BatchNorm modes and the backward plan from the groups. */
static void set_bn_eval(nn_layer *l)
{
    if (nn_layer_is_batchnorm(l)) l->training = 0;
    for (int i = 0; i < l->nkids; i++) set_bn_eval(l->kids[i]);
}

static void model_refresh(nn_model *m)
{
    for (int gi = 0; gi < m->ngroups; gi++) {
        nn_group *g = &m->groups[gi];
        for (int k = 0; k < g->nparams; k++) {
            nn_param *p = g->params[k];
            p->trainable = !g->frozen || (m->train_bn && p->is_bn);
        }
    }
    nn_layer_set_training(m->head, m->training);
    for (int i = 0; i < m->body->nkids; i++) {
        nn_layer *k = m->body->kids[i];
        nn_layer_set_training(k, m->training);
        if (m->groups[child_group(m, i)].frozen && !m->train_bn && m->bn_freeze) set_bn_eval(k);
    }
    m->body->training = m->training;
    nn_layer_plan_backward(m->body, 0);
    nn_layer_plan_backward(m->head, m->body->any_trainable);
}

static int build_groups(nn_model *m, const nn_model_spec *s, int nsplit, const int *split)
{
    const int nbody = m->body->nkids;
    if (nsplit < 0 || nsplit > NN_MAX_GROUPS - 2)
        return nn_err(NN_ERANGE, "%d split points given; at most %d", nsplit, NN_MAX_GROUPS - 2);
    for (int i = 0; i < nsplit; i++) {
        if (split[i] <= 0)
            return nn_err(NN_ERANGE, "split %d would leave layer group 0 empty (splits must be > 0)",
                          split[i]);
        if (split[i] >= nbody && nbody == 1)
            return nn_err(NN_ERANGE, "split %d is out of range: the body has 1 child after cut "
                          "%d, which cannot be split (give no split points)", split[i], m->cut);
        if (split[i] >= nbody)
            return nn_err(NN_ERANGE,
                          "split %d is out of range: the body has %d children after cut %d, so "
                          "splits must lie in 1..%d",
                          split[i], nbody, m->cut, nbody - 1);
        if (i > 0 && split[i] <= split[i - 1])
            return nn_err(NN_ERANGE,
                          "split points must be strictly increasing: %d follows %d (an empty "
                          "layer group)",
                          split[i], split[i - 1]);
    }
    int first = 0;
    for (int i = 0; i <= nsplit; i++) {
        nn_group *g = &m->groups[m->ngroups++];
        g->first = first;
        g->last = (i < nsplit ? split[i] : nbody) - 1;
        first = g->last + 1;
    }
    nn_group *h = &m->groups[m->ngroups++];
    h->first = h->last = -1;
    h->is_head = 1;
    return model_bind(m);
}

typedef struct {
    nn_rng *rng;
} init_ctx;

static int init_param(void *ud, const char *name, nn_param *p)
{
    nn__param_init(p, ((init_ctx *)ud)->rng);
    return 0;
}

int nn_model_layout(nn_model_layout_info *out, const nn_model_spec *s)
{
    memset(out, 0, sizeof *out);
    nn_layer *kids[96];
    int nkids = 0, dhead = 0;
    int rc = nn__zoo_children(kids, &nkids, &out->default_cut, &out->nsplit, out->split, &dhead,
                              s);
    if (rc) return rc;
    for (int i = 0; i < nkids; i++) nn_layer_free(kids[i]);
    out->nchildren = nkids;
    return 0;
}

int nn_model_init(nn_model **out, const nn_model_spec *s, nn_rng *rng)
{
    *out = NULL;
    if (s->in_c <= 0 || s->in_h <= 0 || s->in_w <= 0)
        return nn_err(NN_ERANGE, "input shape %dx%dx%d must be positive", s->in_c, s->in_h,
                      s->in_w);
    if (s->classes <= 0) return nn_err(NN_ERANGE, "classes %d must be positive", s->classes);
    nn_layer *kids[96];
    int nkids = 0, dcut = 0, dnsplit = 0, dsplit[NN_MAX_GROUPS], dhead = 0;
    int rc = nn__zoo_children(kids, &nkids, &dcut, &dnsplit, dsplit, &dhead, s);
    if (rc) return rc;
    nn_model *m = calloc(1, sizeof *m);
    if (!m || (rc = nn_engine_new(&m->eng, s->engine))) {
        for (int i = 0; i < nkids; i++) nn_layer_free(kids[i]);
        free(m);
        return m ? rc : nn_err(NN_ENOMEM, "cannot allocate a model");
    }
    snprintf(m->arch, sizeof m->arch, "%s", s->arch);
    m->in_shape[0] = s->in_c;
    m->in_shape[1] = s->in_h;
    m->in_shape[2] = s->in_w;
    m->classes = s->classes;
    m->training = 1;
    m->bn_freeze = 1; /* nn's default; the trainer sets groups.bn_freeze */
    int cut = s->cut < 0 ? dcut : s->cut;
    if (cut > nkids) {
        for (int i = 0; i < nkids; i++) nn_layer_free(kids[i]);
        nn_engine_free(m->eng);
        free(m);
        return nn_err(NN_ERANGE,
                      "cut %d is out of range for %s: it has %d children (cut must be 0..%d; 0 "
                      "keeps them all)",
                      cut, s->arch, nkids, nkids);
    }
    if (cut == 0) cut = nkids;
    m->cut = cut;
    for (int i = cut; i < nkids; i++) nn_layer_free(kids[i]);
    /* As in fastai, the body is a Sequential of the children before the cut, indexed from 0
     * (torchvision's conv1, layer1... become 0, 4...). */
    rc = nn_sequential_new(&m->body, kids, cut);
    if (rc) goto fail;
    snprintf(m->body->name, sizeof m->body->name, "body");
    rc = nn_layer_infer(m->body, m->in_shape);
    if (rc) {
        rc = nn_err_wrap(rc, "%s on input %dx%dx%d: body", s->arch, s->in_c, s->in_h, s->in_w);
        goto fail;
    }
    nn_layer *hk[96];
    int nhk = 0;
    int head = s->head == NN_HEAD_DEFAULT ? dhead : s->head;
    rc = nn__zoo_head(hk, &nhk, head, m->body->out_shape, s);
    if (!rc) rc = nn_sequential_new(&m->head, hk, nhk);
    if (rc) goto fail;
    snprintf(m->head->name, sizeof m->head->name, "head");
    rc = nn_layer_infer(m->head, m->body->out_shape);
    if (rc) {
        rc = nn_err_wrap(rc, "%s head", s->arch);
        goto fail;
    }
    int nsplit = s->nsplit < 0 ? dnsplit : s->nsplit;
    const int *split = s->nsplit < 0 ? dsplit : s->split;
    if (s->nsplit < 0 && s->cut >= 0) {
        /* A user cut with the default split: drop default splits that no longer fit. */
        while (nsplit > 0 && split[nsplit - 1] >= cut) nsplit--;
    }
    rc = build_groups(m, s, nsplit, split);
    if (rc) goto fail;
    nn_layer_set_engine(m->body, m->eng);
    nn_layer_set_engine(m->head, m->eng);
    if (!s->skip_init) {
        init_ctx ic = {rng};
        nn_layer_visit_params(m->body, "", init_param, &ic);
        nn_layer_visit_params(m->head, "", init_param, &ic);
    }
    model_refresh(m);
    *out = m;
    return 0;
fail:
    nn_model_free(m);
    return rc;
}

void nn_model_free(nn_model *m)
{
    if (!m) return;
    nn_layer_free(m->body);
    nn_layer_free(m->head);
    for (int g = 0; g < m->ngroups; g++) {
        if (m->eng) {
            m->eng->ops->release(m->eng, m->groups[g].param_slab);
            m->eng->ops->release(m->eng, m->groups[g].grad_slab);
        }
        free(m->groups[g].params);
    }
    nn_tensor_free(&m->dlogits);
    nn_engine_free(m->eng); /* after the layers, whose plans it frees */
    free(m);
}

size_t nn_model_numel(const nn_model *m)
{
    size_t n = 0;
    for (int g = 0; g < m->ngroups; g++) n += m->groups[g].numel;
    return n;
}

int nn_model_body_children(const nn_model *m)
{
    return m->body->nkids;
}

int nn_model_freeze_to(nn_model *m, int n, int *warning)
{
    if (warning) *warning = 0;
    if (n < -m->ngroups || n > m->ngroups)
        return nn_err(NN_ERANGE, "freeze_to %d is out of range for %d layer groups (use %d..%d)", n,
                      m->ngroups, -m->ngroups, m->ngroups);
    if (m->ngroups == 1) {
        /* fastai silently does nothing here; say so. */
        if (warning) *warning = 1;
        return 0;
    }
    int upto = n < 0 ? m->ngroups + n : n;
    for (int g = 0; g < m->ngroups; g++) m->groups[g].frozen = g < upto;
    model_refresh(m);
    return 0;
}

int nn_model_set_frozen(nn_model *m, int group, int frozen)
{
    if (group < 0 || group >= m->ngroups)
        return nn_err(NN_ERANGE, "layer group %d does not exist (the model has %d)", group,
                      m->ngroups);
    m->groups[group].frozen = frozen != 0;
    model_refresh(m);
    return 0;
}

void nn_model_set_train_bn(nn_model *m, int train_bn)
{
    m->train_bn = train_bn != 0;
    model_refresh(m);
}

void nn_model_set_bn_freeze(nn_model *m, int bn_freeze)
{
    m->bn_freeze = bn_freeze != 0;
    model_refresh(m);
}

void nn_model_set_training(nn_model *m, int training)
{
    m->training = training != 0;
    model_refresh(m);
}

int nn_model_forward(const nn_tensor **logits, nn_model *m, const nn_tensor *x, nn_ctx *ctx)
{
    int rc = nn_layer_forward(m->body, x, ctx);
    if (!rc) rc = nn_layer_forward(m->head, &m->body->y, ctx);
    if (rc) return rc;
    *logits = &m->head->y;
    return 0;
}

void nn_model_set_backward_hook(nn_model *m, nn_backward_hook fn, void *ud)
{
    m->hook = fn;
    m->hook_ud = ud;
}

/* Sets (or, with flag 0, clears by zeroing the memory of) grad_zero on group g's trainable
 * parameters: a fresh backward's start, and its guarantee when the group is done. */
static void group_fresh(nn_model *m, int g, int flag)
{
    for (int k = 0; k < m->groups[g].nparams; k++) {
        nn_param *p = m->groups[g].params[k];
        if (!p->trainable) continue;
        if (flag) {
            p->grad_zero = 1;
        } else if (p->grad_zero) { /* never reached by this backward */
            memset(p->grad, 0, p->numel * sizeof(float));
            p->grad_zero = 0;
        }
    }
}

static int call_hook(nn_model *m, int group, int done)
{
    if (done) group_fresh(m, group, 0);
    return m->hook ? m->hook(m->hook_ud, group, done) : 0;
}

/* Backward through the head, then the body's children from the top down (the body's own
 * Sequential backward, unrolled so that the hook sees each group complete). */
int nn_model_backward(nn_model *m, const nn_tensor *dlogits)
{
    const int head = m->ngroups - 1;
    int rc = 0, g = head - 1; /* the highest body group not yet reported done */
    if (m->head->any_trainable || m->head->need_dx) rc = nn_layer_backward(m->head, dlogits);
    if (!rc) rc = call_hook(m, head, 1);
    if (!rc && m->head->need_dx) {
        const nn_tensor *dy = nn_layer_grad_input(m->head);
        int i;
        for (i = m->body->nkids - 1; i >= 0 && !rc; i--) {
            nn_layer *k = m->body->kids[i];
            if (!k->any_trainable && !k->need_dx) break; /* nothing below needs a gradient */
            rc = nn_layer_backward(k, dy);
            if (rc) break;
            const int done = i == m->groups[g].first;
            rc = call_hook(m, g, done);
            if (done) g--;
            if (!k->need_dx) break;
            dy = nn_layer_grad_input(k);
        }
        /* The input gradient, for callers that planned the body with need_dx. */
        if (!rc && i < 0 && m->body->need_dx) nn__tensor_view(&m->body->dx, dy, dy->n, dy->c, dy->h, dy->w);
    }
    for (; g >= 0 && !rc; g--) rc = call_hook(m, g, 1); /* groups backward never reached */
    return rc;
}

int nn_model_backward_fresh(nn_model *m, const nn_tensor *dlogits)
{
    for (int g = 0; g < m->ngroups; g++) group_fresh(m, g, 1);
    int rc = nn_model_backward(m, dlogits);
    for (int g = 0; g < m->ngroups; g++) group_fresh(m, g, 0); /* after a failure too */
    return rc;
}

void nn_model_zero_grad(nn_model *m)
{
    for (int gi = 0; gi < m->ngroups; gi++) {
        nn_group *g = &m->groups[gi];
        if (!g->frozen) {
            memset(g->grad_slab, 0, g->numel * sizeof(float));
            continue;
        }
        for (int k = 0; k < g->nparams; k++)
            if (g->params[k]->trainable) memset(g->params[k]->grad, 0, g->params[k]->numel * sizeof(float));
    }
}

int nn_model_visit_params(nn_model *m, nn_param_visit_fn fn, void *ud)
{
    int rc = nn_layer_visit_params(m->body, "body", fn, ud);
    return rc ? rc : nn_layer_visit_params(m->head, "head", fn, ud);
}

int nn_model_visit_buffers(nn_model *m, nn_buffer_visit_fn fn, void *ud)
{
    int rc = nn_layer_visit_buffers(m->body, "body", fn, ud);
    return rc ? rc : nn_layer_visit_buffers(m->head, "head", fn, ud);
}
