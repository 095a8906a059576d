/* Checkpoints and weights files from the trainer's side: an io_ckpt filled from a model and
 * its optimizer, tensors loaded back by parameter name, weights.h5 written and read. io/
 * writes and reads the files; this decides what goes in them and checks what comes out. */
#include "trainer/trainer.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* The model's parameters and buffers with their full names, parameters in group and slab
 * order (the order of a checkpoint's group table). */
typedef struct {
    char (*pname)[128];
    nn_param **p;
    int np, capp;
    char (*bname)[128];
    nn_buffer **b;
    int nb, capb;
} named;

static int named_param(void *ud, const char *name, nn_param *p)
{
    named *l = ud;
    if (l->np == l->capp) {
        int cap = l->capp ? l->capp * 2 : 64;
        char(*nn)[128] = realloc(l->pname, sizeof *nn * (size_t)cap);
        if (nn) l->pname = nn;
        nn_param **np = realloc(l->p, sizeof *np * (size_t)cap);
        if (np) l->p = np;
        if (!nn || !np) return nn_err(NN_ENOMEM, "cannot list the parameters");
        l->capp = cap;
    }
    snprintf(l->pname[l->np], 128, "%s", name);
    l->p[l->np++] = p;
    return 0;
}

static int named_buffer(void *ud, const char *name, nn_buffer *b)
{
    named *l = ud;
    if (l->nb == l->capb) {
        int cap = l->capb ? l->capb * 2 : 64;
        char(*nn)[128] = realloc(l->bname, sizeof *nn * (size_t)cap);
        if (nn) l->bname = nn;
        nn_buffer **nb = realloc(l->b, sizeof *nb * (size_t)cap);
        if (nb) l->b = nb;
        if (!nn || !nb) return nn_err(NN_ENOMEM, "cannot list the buffers");
        l->capb = cap;
    }
    snprintf(l->bname[l->nb], 128, "%s", name);
    l->b[l->nb++] = b;
    return 0;
}

static void named_free(named *l)
{
    free(l->pname);
    free(l->p);
    free(l->bname);
    free(l->b);
}

static int named_list(named *l, nn_model *m)
{
    memset(l, 0, sizeof *l);
    int rc = nn_model_visit_params(m, named_param, l);
    if (!rc) rc = nn_model_visit_buffers(m, named_buffer, l);
    if (rc) return rc;
    /* Group then slab order (within a group the BatchNorm parameters come last, nn.h). */
    for (int i = 1; i < l->np; i++)
        for (int j = i; j > 0 && (l->p[j - 1]->group > l->p[j]->group ||
                                  (l->p[j - 1]->group == l->p[j]->group &&
                                   l->p[j - 1]->data > l->p[j]->data));
             j--) {
            nn_param *tp = l->p[j];
            l->p[j] = l->p[j - 1];
            l->p[j - 1] = tp;
            char tn[128];
            memcpy(tn, l->pname[j], 128);
            memcpy(l->pname[j], l->pname[j - 1], 128);
            memcpy(l->pname[j - 1], tn, 128);
        }
    return 0;
}

/* The optimizer state tensor s of parameter p: laid out like its group's parameter slab. */
static float *opt_state_of(const nn_model *m, const trainer_opt *o, const nn_param *p, int s)
{
    float *base = s == 0 ? o->state1[p->group] : o->state2[p->group];
    return base ? base + (p->data - m->groups[p->group].param_slab) : NULL;
}

/* NN_ERANGE when x[0..n) holds an infinity or a NaN, naming it as where says ("PATH:
 * parameter 'body.0.weight'") and the first such value; else 0. */
static int check_finite(const float *x, size_t n, const char *where, const char *what,
                        const char *name)
{
    const long i = x ? util_first_nonfinite(x, n) : -1;
    if (i < 0) return 0;
    return nn_err(NN_ERANGE, "%s%s%s '%s' holds a non-finite value (%g at index %ld of %zu)",
                  where, where[0] ? ": " : "", what, name, (double)x[i], i, n);
}

/* Every tensor of the list (and the optimizer's state) finite, or NN_ERANGE naming the
 * first that is not. */
static int check_all_finite(const named *l, const nn_model *m, const trainer_opt *opt,
                            const char *where)
{
    static const char *const state_what[2] = {"optimizer state 1 of parameter",
                                              "optimizer state 2 of parameter"};
    int rc = 0;
    for (int i = 0; i < l->np && !rc; i++) {
        rc = check_finite(l->p[i]->data, l->p[i]->numel, where, "parameter", l->pname[i]);
        for (int s = 0; opt && !rc && s < trainer_opt_nstates(opt); s++)
            rc = check_finite(opt_state_of(m, opt, l->p[i], s), l->p[i]->numel, where,
                              state_what[s], l->pname[i]);
    }
    for (int i = 0; i < l->nb && !rc; i++)
        rc = check_finite(l->b[i]->data, l->b[i]->numel, where, "buffer", l->bname[i]);
    return rc;
}

static void group_name(char *out, size_t len, const nn_model *m, int g)
{
    if (m->groups[g].is_head)
        snprintf(out, len, "head");
    else
        snprintf(out, len, "body%d", g);
}

int trainer_ckpt_load(nn_model *m, trainer_opt *opt, io_ckpt_reader *rd, int only_body,
                      trainer_ckpt_counts *n)
{
    int *nloaded = &n->loaded, *nnew = &n->fresh;
    size_t *vloaded = &n->loaded_values, *vnew = &n->fresh_values;
    const io_ckpt *info = io_ckpt_info(rd);
    const char *path = io_ckpt_path(rd);
    named l;
    int rc = named_list(&l, m);
    *nloaded = *nnew = 0;
    *vloaded = *vnew = 0;
    for (int i = 0; i < l.np && !rc; i++) {
        nn_param *p = l.p[i];
        if (only_body && strncmp(l.pname[i], "body.", 5)) {
            (*nnew)++;
            *vnew += p->numel;
            continue;
        }
        const int k = io_ckpt_find_param(rd, l.pname[i]);
        if (k < 0) {
            rc = nn_err(NN_ENOTFOUND, "%s: no parameter '%s' (the model needs it)", path, l.pname[i]);
            break;
        }
        const io_ckpt_param *cp = &info->params[k];
        int same = cp->ndim == p->ndim;
        for (int d = 0; d < p->ndim && same; d++) same = cp->shape[d] == p->shape[d];
        if (!same) {
            char a[64], b[64];
            int o = 0, o2 = 0;
            for (int d = 0; d < cp->ndim; d++) o += snprintf(a + o, sizeof a - o, "%s%d", d ? ", " : "", cp->shape[d]);
            for (int d = 0; d < p->ndim; d++) o2 += snprintf(b + o2, sizeof b - o2, "%s%d", d ? ", " : "", p->shape[d]);
            rc = nn_err(NN_ESHAPE, "%s: parameter '%s' has shape (%s) in the checkpoint, the model needs (%s)",
                        path, l.pname[i], a, b);
            break;
        }
        rc = io_ckpt_read_param(rd, k, -1, p->data);
        if (!rc) rc = check_finite(p->data, p->numel, path, "parameter", l.pname[i]);
        for (int s = 0; opt && !rc && s < info->nstates; s++) {
            rc = io_ckpt_read_param(rd, k, s, opt_state_of(m, opt, p, s));
            if (!rc)
                rc = check_finite(opt_state_of(m, opt, p, s), p->numel, path,
                                  "optimizer state of parameter", l.pname[i]);
        }
        if (rc) break;
        (*nloaded)++;
        *vloaded += p->numel;
    }
    if (!rc && opt)
        for (int k = 0; k < info->nparams && !rc; k++) {
            int found = 0;
            for (int i = 0; i < l.np && !found; i++) found = !strcmp(l.pname[i], info->params[k].name);
            if (!found)
                rc = nn_err(NN_ESTATE, "%s: holds parameter '%s', which this model (%s) does not have",
                            path, info->params[k].name, m->arch);
        }
    for (int i = 0; i < l.nb && !rc; i++) {
        if (only_body && strncmp(l.bname[i], "body.", 5)) continue;
        const int k = io_ckpt_find_buffer(rd, l.bname[i]);
        if (k < 0)
            rc = nn_err(NN_ENOTFOUND, "%s: no buffer '%s' (the model needs it)", path, l.bname[i]);
        else if (info->buffers[k].numel != l.b[i]->numel)
            rc = nn_err(NN_ESHAPE, "%s: buffer '%s' holds %zu values, the model needs %zu", path,
                        l.bname[i], info->buffers[k].numel, l.b[i]->numel);
        else
            rc = io_ckpt_read_buffer(rd, k, l.b[i]->data);
        if (!rc) rc = check_finite(l.b[i]->data, l.b[i]->numel, path, "buffer", l.bname[i]);
    }
    named_free(&l);
    return rc;
}


int trainer_ckpt_fill(io_ckpt *ck, nn_model *m, const trainer_opt *opt)
{
    memset(ck, 0, sizeof *ck);
    named l;
    int rc = named_list(&l, m);
    if (!rc) rc = check_all_finite(&l, m, opt, "");
    if (rc == NN_ERANGE)
        rc = nn_err_wrap(rc, "nothing saved: training diverged (lower the learning rate)");
    ck->params = rc ? NULL : calloc((size_t)(l.np ? l.np : 1), sizeof *ck->params);
    ck->buffers = rc ? NULL : calloc((size_t)(l.nb ? l.nb : 1), sizeof *ck->buffers);
    if (!rc && (!ck->params || !ck->buffers)) rc = nn_err(NN_ENOMEM, "checkpoint: out of memory");
    if (rc) {
        named_free(&l);
        trainer_ckpt_release(ck);
        return rc;
    }
    ck->world_size = 1;
    snprintf(ck->arch, sizeof ck->arch, "%s", m->arch);
    memcpy(ck->input, m->in_shape, sizeof ck->input);
    ck->classes = m->classes;
    ck->cut = m->cut;
    snprintf(ck->head, sizeof ck->head, "default");
    ck->ngroups = m->ngroups;
    for (int g = 0; g < m->ngroups; g++) {
        const nn_group *gr = &m->groups[g];
        io_ckpt_group *cg = &ck->groups[g];
        group_name(cg->name, sizeof cg->name, m, g);
        cg->first = gr->first;
        cg->last = gr->last;
        cg->frozen = gr->frozen;
        cg->numel = gr->numel;
        cg->nparams = gr->nparams;
    }
    if (opt) {
        ck->nstates = trainer_opt_nstates(opt);
        snprintf(ck->opt_type, sizeof ck->opt_type, "%s", trainer_opt_name(opt->type));
        if (opt->type == TRAINER_OPT_SGD) {
            snprintf(ck->state_names[0], sizeof ck->state_names[0], "momentum_buffer");
        } else {
            snprintf(ck->state_names[0], sizeof ck->state_names[0], "exp_avg");
            snprintf(ck->state_names[1], sizeof ck->state_names[1], "exp_avg_sq");
        }
        ck->nesterov = opt->nesterov;
        ck->decay_bn_bias = opt->decay_bn_bias;
        ck->beta2 = opt->beta2;
        ck->eps = opt->eps;
        for (int g = 0; g < m->ngroups; g++) {
            ck->opt_step[g] = opt->step[g];
            ck->opt_step_bn[g] = opt->step_bn[g];
        }
    }
    for (int i = 0; i < l.np; i++) {
        io_ckpt_param *p = &ck->params[i];
        const nn_param *q = l.p[i];
        snprintf(p->name, sizeof p->name, "%s", l.pname[i]);
        p->group = q->group;
        p->ndim = q->ndim;
        memcpy(p->shape, q->shape, sizeof p->shape);
        p->numel = q->numel;
        p->data = q->data;
        for (int s = 0; s < ck->nstates; s++) p->state[s] = opt_state_of(m, opt, q, s);
    }
    ck->nparams = l.np;
    for (int i = 0; i < l.nb; i++) {
        snprintf(ck->buffers[i].name, sizeof ck->buffers[i].name, "%s", l.bname[i]);
        ck->buffers[i].numel = l.b[i]->numel;
        ck->buffers[i].data = l.b[i]->data;
    }
    ck->nbuffers = l.nb;
    named_free(&l);
    return 0;
}

void trainer_ckpt_release(io_ckpt *ck)
{
    free(ck->params);
    free(ck->buffers);
    ck->params = NULL;
    ck->buffers = NULL;
    ck->nparams = ck->nbuffers = 0;
}

int trainer_weights_save(nn_model *m, const io_config *cfg, const char *path)
{
    io_ckpt ck;
    char *config = NULL;
    int rc = trainer_ckpt_fill(&ck, m, NULL); /* no optimizer, no train state: kind weights */
    if (rc) return rc;
    if (cfg) {
        rc = io_config_to_string(&config, cfg);
        snprintf(ck.head, sizeof ck.head, "%s", cfg->model.head[0] ? cfg->model.head : "default");
        ck.small_stem = cfg->model.small_stem;
        ck.config = config;
    }
    if (!rc) rc = io_ckpt_save(path, &ck);
    trainer_ckpt_release(&ck);
    free(config);
    return rc;
}

/* A weights file written before weights.h5 was a checkpoint: one flat dataset per tensor at
 * the root, by name (io_weights_load). */
static int weights_load_flat(nn_model *m, const char *path)
{
    named l;
    int rc = named_list(&l, m);
    io_tensor_ref *t = rc ? NULL : calloc((size_t)(l.np + l.nb + 1), sizeof *t);
    if (!rc && !t) rc = nn_err(NN_ENOMEM, "cannot list tensors");
    int n = 0;
    for (int i = 0; !rc && i < l.np; i++) t[n++] = (io_tensor_ref){l.pname[i], l.p[i]->data, l.p[i]->numel};
    for (int i = 0; !rc && i < l.nb; i++) t[n++] = (io_tensor_ref){l.bname[i], l.b[i]->data, l.b[i]->numel};
    if (!rc) rc = io_weights_load(path, t, n);
    if (!rc) rc = check_all_finite(&l, m, NULL, path);
    free(t);
    named_free(&l);
    return rc;
}

int trainer_weights_load(nn_model *m, const char *path)
{
    /* A checkpoint of either kind (format attribute strata-checkpoint) or an old flat file. */
    io_ckpt_reader *rd = NULL;
    int rc = io_ckpt_open(&rd, path);
    if (!rc) {
        trainer_ckpt_counts n;
        rc = trainer_ckpt_load(m, NULL, rd, 0, &n);
        io_ckpt_close(rd);
        return rc;
    }
    if (rc != NN_EFORMAT || !strstr(nn_errmsg(), "not a strata checkpoint")) return rc;
    return weights_load_flat(m, path);
}
