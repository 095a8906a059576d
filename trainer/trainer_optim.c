/*
 * Per-group hyperparameters, schedules and optimizers (see trainer_optim.h and
 * docs/training.md). The file reads top to bottom: the fastai expansion rules, the
 * schedules, then SGD and AdamW with their per-group state slabs.
 */
#include "trainer/trainer_optim.h"

#include "io/io.h"
#include "util/util.h"

#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* M_PI is not part of C11, so the constant is spelled out here. */
#define TRAINER__PI 3.14159265358979323846

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters.
 */

int trainer_hparam_expand(float *out, int ngroups, int kind, const double *v, int n,
                          const char *key)
{
    if (!key) key = "value";
    if (!out || !v) return nn_err(NN_EINVAL, "%s: no values given", key);
    if (ngroups < 1 || ngroups > NN_MAX_GROUPS)
        return nn_err(NN_ERANGE, "%s: %d layer groups, expected 1 to %d", key, ngroups,
                      NN_MAX_GROUPS);
    int want;
    switch (kind) {
    case IO_HP_SCALAR: want = 1; break;
    case IO_HP_LIST: want = ngroups; break;
    case IO_HP_SLICE1: want = 1; break;
    case IO_HP_SLICE2: want = 2; break;
    default:
        return nn_err(NN_EINVAL, "%s: unknown kind %d (1 scalar, 2 list, 3 slice(b), "
                                 "4 slice(a, b))", key, kind);
    }
    if (kind == IO_HP_LIST && n == 1) want = 1; /* fastai broadcasts a 1-element list */
    if (n != want) {
        if (kind == IO_HP_LIST)
            return nn_err(NN_ERANGE, "%s: expected %d values (one per layer group), got %d", key,
                          ngroups, n);
        if (kind == IO_HP_SLICE2)
            return nn_err(NN_ERANGE, "%s: slice(a, b) takes 2 values, got %d", key, n);
        return nn_err(NN_ERANGE, "%s: %s takes 1 value, got %d", key,
                      kind == IO_HP_SCALAR ? "a scalar" : "slice(b)", n);
    }
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return nn_err(NN_ERANGE, "%s: value %g (position %d) is not finite", key, v[i], i);

    if (kind == IO_HP_SCALAR) {
        for (int i = 0; i < ngroups; i++) out[i] = (float)v[0];
    } else if (kind == IO_HP_LIST) {
        for (int i = 0; i < ngroups; i++) out[i] = (float)v[n == 1 ? 0 : i];
    } else if (kind == IO_HP_SLICE1 || (kind == IO_HP_SLICE2 && v[0] == 0.0)) {
        /* slice(0, b) is slice(b) in fastai, whose set_hyper tests `if v.start`. */
        const double b = v[n - 1];
        /* fastai: slice(b) gives b/10 to every group but the last, which gets b. */
        for (int i = 0; i < ngroups - 1; i++) out[i] = (float)(b / 10.0);
        out[ngroups - 1] = (float)b;
    } else {
        const double a = v[0], b = v[1];
        if (a != b && !(a * b > 0.0))
            return nn_err(NN_ERANGE,
                          "%s: slice(%g, %g) needs two non-zero values of the same sign "
                          "(its steps are geometric)", key, a, b);
        if (ngroups == 1 || a == b) {
            for (int i = 0; i < ngroups; i++) out[i] = (float)b;
        } else {
            /* Geometric steps, as fastai's even_mults: a * (b/a)^(i/(n-1)). The ends are
             * set exactly so that rounding in pow never moves them. */
            for (int i = 0; i < ngroups; i++)
                out[i] = (float)(a * pow(b / a, (double)i / (ngroups - 1)));
            out[0] = (float)a;
            out[ngroups - 1] = (float)b;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Schedules.
 */

/* fastai's SchedCos: from s at x = 0 to e at x = 1 along half a cosine. */
static double cos_anneal(double s, double e, double x)
{
    return s + (1.0 + cos(TRAINER__PI * (1.0 - x))) * (e - s) / 2.0;
}

/* The position p = step/total in [0, 1]; total <= 0 reads as the start. */
static double sched_pos(long step, long total)
{
    if (total <= 0 || step <= 0) return 0.0;
    if (step >= total) return 1.0;
    return (double)step / (double)total;
}

/* fastai's combined_cos(pct, start, middle, end): the one-cycle shape for lr and momentum. */
static double one_cycle_shape(double pct, double start, double middle, double end, double p)
{
    if (p < pct) return cos_anneal(start, middle, p / pct);
    const double x = pct < 1.0 ? (p - pct) / (1.0 - pct) : 1.0;
    return cos_anneal(middle, end, x);
}

void trainer_sched_default(trainer_sched *s, int type)
{
    memset(s, 0, sizeof *s);
    s->type = type;
    s->steps_per_epoch = 1;
    io_schedule_default(&s->c); /* the defaults live with the config that shows them */
}

int trainer_sched_from(trainer_sched *s, const io_schedule *cs, long steps_per_epoch)
{
    memset(s, 0, sizeof *s);
    int rc = trainer_sched_parse_type(&s->type, cs->type);
    if (rc) return rc;
    s->c = *cs;
    s->steps_per_epoch = steps_per_epoch;
    return 0;
}

int trainer_sched_check(const trainer_sched *s)
{
    switch (s->type) {
    case TRAINER_SCHED_ONE_CYCLE:
        if (!(s->c.pct_start >= 0.0 && s->c.pct_start <= 1.0))
            return nn_err(NN_ERANGE, "one_cycle: pct_start %g must be in [0, 1]", s->c.pct_start);
        if (!(s->c.div > 0.0 && isfinite(s->c.div)))
            return nn_err(NN_ERANGE, "one_cycle: div %g must be > 0", s->c.div);
        if (!(s->c.div_final > 0.0 && isfinite(s->c.div_final)))
            return nn_err(NN_ERANGE, "one_cycle: div_final %g must be > 0", s->c.div_final);
        for (int i = 0; i < 3; i++)
            if (!(s->c.moms[i] >= 0.0 && s->c.moms[i] < 1.0))
                return nn_err(NN_ERANGE, "one_cycle: moms[%d] %g must be in [0, 1)", i,
                              s->c.moms[i]);
        return 0;
    case TRAINER_SCHED_COSINE:
        if (!(s->c.final_div > 0.0 && isfinite(s->c.final_div)))
            return nn_err(NN_ERANGE, "cosine: final_div %g must be > 0", s->c.final_div);
        return 0;
    case TRAINER_SCHED_STEP:
        if (!(s->c.step_gamma > 0.0 && isfinite(s->c.step_gamma)))
            return nn_err(NN_ERANGE, "step: gamma %g must be > 0", s->c.step_gamma);
        if (s->steps_per_epoch < 1)
            return nn_err(NN_ERANGE, "step: steps_per_epoch %ld must be >= 1",
                          s->steps_per_epoch);
        if (s->c.step_epochs < 1)
            return nn_err(NN_ERANGE, "step: step_epochs %d must be >= 1", s->c.step_epochs);
        return 0;
    case TRAINER_SCHED_CONSTANT:
        return 0;
    default:
        return nn_err(NN_EINVAL, "unknown schedule type %d", s->type);
    }
}

static const char *const sched_names[] = {NULL, "one_cycle", "cosine", "step", "constant"};

int trainer_sched_parse_type(int *type, const char *name)
{
    for (int t = TRAINER_SCHED_ONE_CYCLE; t <= TRAINER_SCHED_CONSTANT; t++)
        if (name && !strcmp(name, sched_names[t])) {
            *type = t;
            return 0;
        }
    return nn_err(NN_EINVAL, "unknown schedule '%s' (one_cycle, cosine, step, constant)",
                  name ? name : "(null)");
}

const char *trainer_sched_name(int type)
{
    return type >= TRAINER_SCHED_ONE_CYCLE && type <= TRAINER_SCHED_CONSTANT ? sched_names[type]
                                                                             : "unknown";
}

double trainer_sched_lr(const trainer_sched *s, double max_lr, long step, long total)
{
    const double p = sched_pos(step, total);
    switch (s->type) {
    case TRAINER_SCHED_ONE_CYCLE:
        return one_cycle_shape(s->c.pct_start, max_lr / s->c.div, max_lr, max_lr / s->c.div_final, p);
    case TRAINER_SCHED_COSINE:
        return cos_anneal(max_lr, max_lr / s->c.final_div, p);
    case TRAINER_SCHED_STEP: {
        const long spe = s->steps_per_epoch > 0 ? s->steps_per_epoch : 1;
        const long every = s->c.step_epochs > 0 ? s->c.step_epochs : 1;
        const long epoch = (step > 0 ? step : 0) / spe;
        return max_lr * pow(s->c.step_gamma, (double)(epoch / every));
    }
    default:
        return max_lr;
    }
}

double trainer_sched_mom(const trainer_sched *s, double base_mom, long step, long total)
{
    if (s->type != TRAINER_SCHED_ONE_CYCLE) return base_mom;
    return one_cycle_shape(s->c.pct_start, s->c.moms[0], s->c.moms[1], s->c.moms[2],
                           sched_pos(step, total));
}

void trainer_sched_fill(float *lr, float *mom, const trainer_sched *s, const float *max_lr,
                        const float *base_mom, int ngroups, long step, long total)
{
    for (int g = 0; g < ngroups; g++) {
        lr[g] = (float)trainer_sched_lr(s, max_lr[g], step, total);
        mom[g] = (float)trainer_sched_mom(s, base_mom[g], step, total);
    }
}

/* ---------------------------------------------------------------------------------------
 * Optimizers: set-up and names.
 */

int trainer_opt_init(trainer_opt *o, const nn_model *m, int type, int nesterov, double beta2,
                     double eps, int decay_bn_bias)
{
    memset(o, 0, sizeof *o);
    if (type != TRAINER_OPT_SGD && type != TRAINER_OPT_ADAMW)
        return nn_err(NN_EINVAL, "unknown optimizer type %d (1 sgd, 2 adamw)", type);
    if (!m || m->ngroups < 1 || m->ngroups > NN_MAX_GROUPS)
        return nn_err(NN_EINVAL, "optimizer: the model has %d layer groups, expected 1 to %d",
                      m ? m->ngroups : 0, NN_MAX_GROUPS);
    if (type == TRAINER_OPT_ADAMW) {
        if (!(beta2 >= 0.0 && beta2 < 1.0))
            return nn_err(NN_ERANGE, "adamw: beta2 %g must be in [0, 1)", beta2);
        if (!(eps >= 0.0 && isfinite(eps)))
            return nn_err(NN_ERANGE, "adamw: eps %g must be >= 0", eps);
    }
    o->type = type;
    o->nesterov = nesterov != 0;
    o->beta2 = beta2;
    o->eps = eps;
    o->decay_bn_bias = decay_bn_bias != 0;
    o->ngroups = m->ngroups;
    const int nstates = trainer_opt_nstates(o);
    for (int g = 0; g < m->ngroups; g++) {
        /* An empty group (pooling only) still gets a valid pointer. */
        const size_t n = m->groups[g].numel ? m->groups[g].numel : 1;
        o->state1[g] = calloc(n, sizeof(float));
        if (nstates > 1) o->state2[g] = calloc(n, sizeof(float));
        if (!o->state1[g] || (nstates > 1 && !o->state2[g])) {
            trainer_opt_free(o);
            return nn_err(NN_ENOMEM, "%s: cannot allocate %d x %zu floats of state for group %d",
                          trainer_opt_name(type), nstates, n, g);
        }
    }
    return 0;
}

static const char *const opt_names[] = {NULL, "sgd", "adamw"};

int trainer_opt_parse_type(int *type, const char *name)
{
    for (int t = TRAINER_OPT_SGD; t <= TRAINER_OPT_ADAMW; t++)
        if (name && !strcmp(name, opt_names[t])) {
            *type = t;
            return 0;
        }
    return nn_err(NN_EINVAL, "unknown optimizer '%s' (sgd, adamw)", name ? name : "(null)");
}

const char *trainer_opt_name(int type)
{
    return type >= TRAINER_OPT_SGD && type <= TRAINER_OPT_ADAMW ? opt_names[type] : "unknown";
}

int trainer_opt_nstates(const trainer_opt *o)
{
    return o->type == TRAINER_OPT_ADAMW ? 2 : 1;
}

void trainer_opt_clear_state(trainer_opt *o, const nn_model *m)
{
    NN_ASSERT(o->ngroups == m->ngroups);
    const int nstates = trainer_opt_nstates(o);
    for (int g = 0; g < o->ngroups; g++) {
        const size_t n = m->groups[g].numel ? m->groups[g].numel : 1;
        memset(o->state1[g], 0, n * sizeof(float));
        if (nstates > 1) memset(o->state2[g], 0, n * sizeof(float));
        o->step[g] = 0;
        o->step_bn[g] = 0;
    }
}

void trainer_opt_free(trainer_opt *o)
{
    for (int g = 0; g < NN_MAX_GROUPS; g++) {
        free(o->state1[g]);
        free(o->state2[g]);
    }
    memset(o, 0, sizeof *o);
}

/* ---------------------------------------------------------------------------------------
 * Optimizers: the updates. Each kernel updates one parameter tensor of n elements; the
 * scalars are computed once per tensor, so the loops hold nothing but arithmetic.
 */

/* Each kernel below ORs util_nonfinite over what it writes and returns the result: a
 * non-finite weight or state is found in the pass that makes it, at no extra pass over
 * memory. */

/* fastai's SGD (decouple_wd) for one tensor: p *= keep; buf = mom buf + g; p -= lr (nesterov
 * ? g + mom buf : buf). The buffer is updated at mom = 0 too (fastai's average_grad). */
static unsigned sgd_true_wd_update(float *restrict p, const float *restrict g,
                                   float *restrict buf, size_t n, float lr, float mom, float keep,
                                   int nesterov)
{
    unsigned bad = 0;
    if (keep != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= keep;
    for (size_t i = 0; i < n; i++) {
        const float b = mom * buf[i] + g[i];
        const float q = p[i] - lr * (nesterov ? g[i] + mom * b : b);
        buf[i] = b;
        p[i] = q;
        bad |= util_nonfinite(q) | util_nonfinite(b);
    }
    return bad;
}

/* torch.optim.SGD for one tensor: g' = g + wd p; buf = mom buf + g'; p -= lr (nesterov ?
 * g' + mom buf : buf). With mom = 0 the buffer is not touched and p -= lr g'. */
static unsigned sgd_update(float *restrict p, const float *restrict g, float *restrict buf,
                           size_t n, float lr, float mom, float wd, int nesterov)
{
    unsigned bad = 0;
    if (mom == 0.0f) {
        for (size_t i = 0; i < n; i++) {
            const float q = p[i] - lr * (g[i] + wd * p[i]);
            p[i] = q;
            bad |= util_nonfinite(q);
        }
    } else if (nesterov) {
        for (size_t i = 0; i < n; i++) {
            const float d = g[i] + wd * p[i];
            const float b = mom * buf[i] + d;
            const float q = p[i] - lr * (d + mom * b);
            buf[i] = b;
            p[i] = q;
            bad |= util_nonfinite(q) | util_nonfinite(b);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            const float b = mom * buf[i] + (g[i] + wd * p[i]);
            const float q = p[i] - lr * b;
            buf[i] = b;
            p[i] = q;
            bad |= util_nonfinite(q) | util_nonfinite(b);
        }
    }
    return bad;
}

/* torch.optim.AdamW for one tensor, after the decoupled decay p *= keep:
 * m = b1 m + c1 g; v = b2 v + c2 g^2; p -= step_size m / (sqrt(v)/bc2_sqrt + eps), with
 * c1 = 1 - b1, c2 = 1 - b2 (rounded from double, not computed in float), step_size =
 * lr / (1 - b1^t) and bc2_sqrt = sqrt(1 - b2^t), as PyTorch computes it. */
static unsigned adamw_update(float *restrict p, const float *restrict g, float *restrict m,
                             float *restrict v, size_t n, float keep, float b1, float c1,
                             float b2, float c2, float step_size, float inv_bc2_sqrt, float eps)
{
    unsigned bad = 0;
    if (keep != 1.0f)
        for (size_t i = 0; i < n; i++) p[i] *= keep;
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        const float q = p[i] - step_size * mi / (sqrtf(vi) * inv_bc2_sqrt + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = q;
        bad |= util_nonfinite(q) | util_nonfinite(mi) | util_nonfinite(vi);
    }
    return bad;
}

/* Whether weight decay applies to a parameter. */
static int decays(const trainer_opt *o, const nn_param *p)
{
    return o->decay_bn_bias || !(p->is_bn || p->is_bias);
}

/* One trainable parameter's update (k of group gi); 1 when it wrote a non-finite value. */
static unsigned param_update(trainer_opt *o, const nn_group *g, int gi, nn_param *p,
                             const float *lr, const float *mom, const float *wd)
{
    const size_t off = (size_t)(p->data - g->param_slab);
    const float wdp = decays(o, p) ? wd[gi] : 0.0f;
    if (o->type == TRAINER_OPT_SGD && o->true_wd) {
        const double keep = 1.0 - (double)lr[gi] * wdp;
        return sgd_true_wd_update(p->data, p->grad, o->state1[gi] + off, p->numel, lr[gi],
                                  mom[gi], (float)keep, o->nesterov);
    }
    if (o->type == TRAINER_OPT_SGD)
        return sgd_update(p->data, p->grad, o->state1[gi] + off, p->numel, lr[gi], mom[gi], wdp,
                          o->nesterov);
    const long t = p->is_bn ? o->step_bn[gi] : o->step[gi];
    const double b1 = mom[gi], b2 = o->beta2;
    const double bc1 = 1.0 - pow(b1, (double)t);
    const double bc2 = 1.0 - pow(b2, (double)t);
    const double keep = 1.0 - (double)lr[gi] * wdp;
    return adamw_update(p->data, p->grad, o->state1[gi] + off, o->state2[gi] + off, p->numel,
                        (float)keep, (float)b1, (float)(1.0 - b1), (float)b2, (float)(1.0 - b2),
                        (float)(lr[gi] / bc1), (float)(1.0 / sqrt(bc2)), (float)o->eps);
}

int trainer_opt_step(trainer_opt *o, nn_model *m, const float *lr, const float *mom,
                     const float *wd)
{
    NN_ASSERT(o->ngroups == m->ngroups);
    int bad_group = -1, bad_param = -1;
    for (int gi = 0; gi < m->ngroups; gi++) {
        nn_group *g = &m->groups[gi];
        /* Which step counters advance: the group's own when any non-BatchNorm parameter
         * trains (the group is unfrozen), the BatchNorm one when any BN parameter trains. */
        int any = 0, any_bn = 0;
        for (int k = 0; k < g->nparams; k++) {
            if (!g->params[k]->trainable) continue;
            if (g->params[k]->is_bn) any_bn = 1;
            else any = 1;
        }
        if (!any && !any_bn) continue;
        o->step[gi] += any;
        o->step_bn[gi] += any_bn;
        for (int k = 0; k < g->nparams; k++) {
            if (!g->params[k]->trainable) continue;
            if (param_update(o, g, gi, g->params[k], lr, mom, wd) && bad_group < 0)
                bad_group = gi, bad_param = k;
        }
    }
    if (bad_group < 0) return 0;
    const nn_param *p = m->groups[bad_group].params[bad_param];
    return nn_err(NN_ERANGE, "group %d: a weight or its optimizer state is not finite after the update (parameter %d of the group, a %s of %zu values; lr %g): training diverged (lower the learning rate)",
                  bad_group, bad_param, p->name, p->numel, (double)lr[bad_group]);
}

/* ---------------------------------------------------------------------------------------
 * The learning-rate finder: fastai's sweep and its four suggestion functions.
 */

double trainer_lr_find_lr(double start, double end, int k, int num_it)
{
    return start * pow(end / start, (double)k / (double)num_it);
}

/* The loss at lr on the curve, interpolated linearly in log10(lr) (numpy's interp: the end
 * values outside the range); lrs increase. */
static double interp_log(double lr, const double *lrs, const double *loss, int n)
{
    const double x = log10(lr);
    if (x <= log10(lrs[0])) return loss[0];
    for (int i = 1; i < n; i++) {
        const double x0 = log10(lrs[i - 1]), x1 = log10(lrs[i]);
        if (x <= x1) return x1 > x0 ? loss[i - 1] + (x - x0) * (loss[i] - loss[i - 1]) / (x1 - x0)
                                    : loss[i];
    }
    return loss[n - 1];
}

/* fastai's valley: the end of the longest strictly descending run (a longest decreasing
 * subsequence, its loops kept as fastai writes them), then a point at half its length. */
static int suggest_valley(const double *loss, int n, int *lds)
{
    int max_start = 0, max_end = 0;
    for (int i = 0; i < n; i++) lds[i] = 1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            if (loss[i] < loss[j] && lds[i] < lds[j] + 1) lds[i] = lds[j] + 1;
            if (lds[max_end] < lds[i]) {
                max_end = i;
                max_start = max_end - lds[max_end];
            }
        }
    const double sections = (max_end - max_start) / 3.0;
    return max_start + (int)sections + (int)(sections / 2.0);
}

/* fastai's slide (lr_diff 15, thresh 0.005): walks a window of lr_diff points down from the
 * end while the loss gradients (numpy's gradient, in float32 as fastai computes them) at its
 * two ends differ by more than thresh. Returns the index, or -1 with fewer than 16 points. */
static int suggest_slide(const double *loss, int n, float *grad)
{
    const int lr_diff = 15;
    const double thresh = 0.005;
    if (n < lr_diff + 1) return -1;
    for (int i = 0; i < n; i++) {
        if (i == 0) grad[i] = (float)loss[1] - (float)loss[0];
        else if (i == n - 1) grad[i] = (float)loss[n - 1] - (float)loss[n - 2];
        else grad[i] = ((float)loss[i + 1] - (float)loss[i - 1]) / 2.0f;
    }
    int r = n - 1, l = r - lr_diff, at = l;
    while (l >= 0 && fabs((double)(grad[r] - grad[l])) > thresh) {
        at = l;
        r--;
        l--;
    }
    return at;
}

int trainer_lr_suggest(trainer_lr_suggestion out[TRAINER_NSUGGEST], const double *lrs,
                       const double *losses, int n, int num_it)
{
    static const char *const names[TRAINER_NSUGGEST] = {"valley", "slide", "minimum", "steep"};
    for (int s = 0; s < TRAINER_NSUGGEST; s++)
        out[s] = (trainer_lr_suggestion){names[s], NAN, NAN, NAN, 0};
    int lo = num_it / 10, hi = n - 5; /* fastai's window [num_it//10 : -5] */
    for (int i = lo; i < hi; i++)
        if (isnan(losses[i])) hi = i; /* and up to the first NaN */
    const int w = hi - lo;
    if (w < 2)
        return nn_err(NN_ERANGE, "lr-find: %d points recorded; fastai's suggestions look at "
                      "points %d to %d (num_it/10 up to the last 5), so they need at least %d",
                      n, lo, n - 6, lo + 7);
    const double *lr = lrs + lo, *l = losses + lo;
    int *lds = malloc(sizeof(int) * (size_t)w);
    float *grad = malloc(sizeof(float) * (size_t)w);
    if (!lds || !grad) {
        free(lds);
        free(grad);
        return nn_err(NN_ENOMEM, "lr-find: out of memory");
    }
    int iv = suggest_valley(l, w, lds), isl = suggest_slide(l, w, grad), imin = 0, isteep = 0;
    double steepest = INFINITY;
    for (int i = 0; i < w; i++) {
        if (l[i] < l[imin]) imin = i;
        if (i + 1 < w) {
            const double d = (l[i + 1] - l[i]) / (log(lr[i + 1]) - log(lr[i])); /* forward */
            if (d < steepest) steepest = d, isteep = i;
        }
    }
    out[TRAINER_SUGGEST_VALLEY] = (trainer_lr_suggestion){names[0], lr[iv], lr[iv], l[iv], 1};
    if (isl >= 0)
        out[TRAINER_SUGGEST_SLIDE] = (trainer_lr_suggestion){names[1], lr[isl], lr[isl],
                                                             interp_log(lr[isl], lr, l, w), 1};
    out[TRAINER_SUGGEST_MINIMUM] =
        (trainer_lr_suggestion){names[2], lr[imin] / 10.0, lr[imin], l[imin], 1};
    out[TRAINER_SUGGEST_STEEP] =
        (trainer_lr_suggestion){names[3], lr[isteep], lr[isteep], l[isteep], 1};
    free(lds);
    free(grad);
    return 0;
}
