/*
 * trainer_optim: fastai's per-group hyperparameters, learning-rate and momentum schedules,
 * and the optimizers (SGD with momentum or Nesterov momentum, AdamW) whose state lives in
 * per-group slabs laid out like the groups' parameter slabs.
 *
 * The rules and formulas follow fastai v2 and torch.optim; docs/training.md states them
 * with examples. Every function that can fail returns 0 or a negative NN_E* code and leaves
 * a message naming the offending value for nn_errmsg(). The inputs are plain numbers, so the
 * config module (or a test) fills them however it likes.
 */
#ifndef STRATA_TRAINER_OPTIM_H
#define STRATA_TRAINER_OPTIM_H

#include "io/io_config.h"
#include "nn/nn.h"

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters (learning rate, weight decay, momentum), fastai's rules. The
 * kinds are the config's, IO_HP_* (io/io_config.h): one definition of how a value was written.
 */

/* Expands n values v of the given kind into one value per layer group, out[0..ngroups).
 * key names the setting in messages ("groups.lr"; NULL reads "value"). A scalar and
 * slice(b) take one value, slice(a, b) two, a list exactly ngroups or one value, which is
 * broadcast to every group as fastai does ("KEY: expected N values (one per layer group),
 * got M"). slice(0, b) is slice(b), as in fastai; otherwise slice(a, b) needs a == b or two
 * non-zero values of the same sign, since its steps are geometric. Returns NN_ERANGE for a wrong count, a
 * non-finite value or a bad slice, NN_EINVAL for an unknown kind or NULL arrays; out is
 * left untouched on failure. */
int trainer_hparam_expand(float *out, int ngroups, int kind, const double *v, int n,
                          const char *key);

/* ---------------------------------------------------------------------------------------
 * Schedules (fastai v2). Time is the global step t of N steps in a phase, p = t/N.
 *   one_cycle: lr = cos_anneal(max/div, max, p/pct) while p < pct, else
 *              cos_anneal(max, max/div_final, (p-pct)/(1-pct)); momentum moms[0] -> moms[1]
 *              -> moms[2] on the same shape; cos_anneal(s, e, x) = s + (1+cos(pi(1-x)))(e-s)/2
 *   cosine:    lr = cos_anneal(max, max/cos_final_div, p)
 *   step:      lr = max * step_gamma^floor(epoch/step_epochs), epoch = t / steps_per_epoch
 *   constant:  lr = max
 * Momentum follows moms under one_cycle only; every other schedule keeps each group's own.
 */
enum {
    TRAINER_SCHED_ONE_CYCLE = 1,
    TRAINER_SCHED_COSINE = 2,
    TRAINER_SCHED_STEP = 3,
    TRAINER_SCHED_CONSTANT = 4,
};

/* A schedule as the loop runs it: the config's settings (io_schedule, the one definition of
 * them; its type text is not used here) with the type parsed and the epoch length known. */
typedef struct trainer_sched {
    int type;              /* TRAINER_SCHED_* */
    long steps_per_epoch;  /* step: optimizer steps in one epoch */
    io_schedule c;         /* pct_start, div, div_final, moms, step_gamma, step_epochs,
                              final_div: see io_config.h */
} trainer_sched;

/* Fills s with the config's defaults (io_schedule_default: pct_start 0.25, div 25,
 * div_final 1e5, moms {0.95, 0.85, 0.95}, step_gamma 0.1, step_epochs 1, final_div 1e5) and
 * steps_per_epoch 1. The type is stored as given; trainer_sched_check judges it. */
void trainer_sched_default(trainer_sched *s, int type);
/* s from the config's schedule cs: its type parsed (NN_EINVAL naming an unknown one), its
 * settings copied, steps_per_epoch as given. */
int trainer_sched_from(trainer_sched *s, const io_schedule *cs, long steps_per_epoch);
/* Checks every setting the type uses (pct_start in [0, 1], divisors > 0, moms in [0, 1),
 * step_gamma > 0, steps_per_epoch >= 1, step_epochs >= 1). Returns 0 or NN_ERANGE with a
 * message naming the setting and its value. */
int trainer_sched_check(const trainer_sched *s);
/* "one_cycle", "cosine", "step", "constant" -> *type. Returns NN_EINVAL naming the value
 * and the choices for anything else (*type untouched). */
int trainer_sched_parse_type(int *type, const char *name);
/* The schedule's name ("one_cycle"), or "unknown". Never NULL. */
const char *trainer_sched_name(int type);
/* The learning rate at step `step` of `total` for a group whose maximum is max_lr. p is
 * clamped to [0, 1]; total <= 0 reads as p = 0. */
double trainer_sched_lr(const trainer_sched *s, double max_lr, long step, long total);
/* The momentum (SGD momentum or AdamW beta1) at step `step` of `total`: moms' cycle under
 * one_cycle, else base_mom. */
double trainer_sched_mom(const trainer_sched *s, double base_mom, long step, long total);
/* Both for every group at once: lr[g] from max_lr[g], mom[g] from base_mom[g]. */
void trainer_sched_fill(float *lr, float *mom, const trainer_sched *s, const float *max_lr,
                        const float *base_mom, int ngroups, long step, long total);

/* ---------------------------------------------------------------------------------------
 * Optimizers. State is one allocation per group per kind of state, laid out like the
 * group's parameter slab: parameter p of group g has its state at offset
 * (p->data - m->groups[g].param_slab) in state1[g] and state2[g].
 *
 *   sgd, true_wd (fastai's SGD, decouple_wd=True): p *= 1 - lr wd; buf = mom buf + g (also
 *                           at mom = 0); d = g + mom buf with nesterov, else buf; p -= lr d.
 *   sgd, !true_wd (torch.optim.SGD): g' = g + wd p (coupled L2); buf = mom buf + g'; d = g' +
 *                           mom buf with nesterov, else buf; p -= lr d. With mom = 0 the
 *                           buffer is left as it is and d = g'. buf starts at zero, so the
 *                           first step gives buf = g' as PyTorch's does.
 *   adamw (torch.optim.AdamW, betas (mom, beta2)): p *= 1 - lr wd (decoupled);
 *                           m = mom m + (1-mom) g; v = beta2 v + (1-beta2) g^2;
 *                           p -= lr (m / (1-mom^t)) / (sqrt(v / (1-beta2^t)) + eps)
 * Weight decay skips BatchNorm parameters and biases unless decay_bn_bias. Only trainable
 * parameters are stepped: a frozen group is skipped entirely (its state and counters stay
 * as they are), except for its BatchNorm parameters when the model trains BN in frozen
 * groups (nn_model_set_train_bn), as fastai v1/v2 do.
 */
enum {
    TRAINER_OPT_SGD = 1,
    TRAINER_OPT_ADAMW = 2,
};

typedef struct trainer_opt {
    int type;                 /* TRAINER_OPT_SGD or TRAINER_OPT_ADAMW */
    int nesterov;             /* sgd */
    double beta2, eps;        /* adamw */
    int decay_bn_bias;        /* apply weight decay to BatchNorm parameters and biases too */
    int true_wd;              /* sgd: fastai's decoupled decay; 0 (what init sets): torch's L2.
                                 Set it after trainer_opt_init; adamw ignores it */
    float *state1[NN_MAX_GROUPS], *state2[NN_MAX_GROUPS]; /* sgd: momentum buffer (state2
                                 NULL); adamw: exp_avg, exp_avg_sq; owned */
    long step[NN_MAX_GROUPS]; /* per group: steps taken while trainable (adamw bias
                                 correction of every parameter but BatchNorm's) */
    long step_bn[NN_MAX_GROUPS]; /* per group: steps its BatchNorm parameters took; more
                                 than step[g] when they trained in a frozen group */
    int ngroups;
} trainer_opt;

/* Allocates zeroed state slabs for every group of m (even frozen ones, so unfreezing needs
 * no allocation) and stores the settings. beta2 must be in [0, 1) and eps >= 0 for adamw
 * (both are ignored by sgd). Returns NN_EINVAL for an unknown type, NN_ERANGE for a bad
 * setting, NN_ENOMEM; on failure *o is zeroed. Free with trainer_opt_free. */
int trainer_opt_init(trainer_opt *o, const nn_model *m, int type, int nesterov, double beta2,
                     double eps, int decay_bn_bias);
/* "sgd", "adamw" -> *type. Returns NN_EINVAL naming the value and the choices otherwise. */
int trainer_opt_parse_type(int *type, const char *name);
/* The optimizer's name ("sgd", "adamw"), or "unknown". Never NULL. */
const char *trainer_opt_name(int type);
/* Kinds of state the optimizer keeps per group (sgd 1, adamw 2): state1 and, for 2, state2. */
int trainer_opt_nstates(const trainer_opt *o);
/* One step over every trainable parameter of m, which must be the model o was initialised
 * for, with per-group lr[g], momentum mom[g] (sgd momentum / adamw beta1; it may change
 * every step, as under one_cycle) and weight decay wd[g]. Reads the gradient slabs, writes
 * the parameter and state slabs. Returns 0, or NN_ERANGE naming the first group and
 * parameter whose new weights or state hold an infinity or a NaN (a non-finite gradient
 * makes one): every parameter is still updated, so replicas stay identical. */
int trainer_opt_step(trainer_opt *o, nn_model *m, const float *lr, const float *mom,
                     const float *wd);
/* fastai's opt.clear_state(): zeroes every group's state slabs and step counters, so the
 * next step is every parameter's first (Learner.freeze_to does this on every freeze). */
void trainer_opt_clear_state(trainer_opt *o, const nn_model *m);
/* Frees the state slabs and zeroes *o. Safe on a zeroed or already freed optimizer. */
void trainer_opt_free(trainer_opt *o);

/* ---------------------------------------------------------------------------------------
 * The learning-rate finder (fastai's LRFinder and suggestion functions).
 */

/* The learning rate of sweep step k (0 .. num_it-1): start * (end/start)^(k/num_it), so the
 * last is below end, as in fastai (8.3 for 1e-7, 10, 100). */
double trainer_lr_find_lr(double start, double end, int k, int num_it);

enum {
    TRAINER_SUGGEST_VALLEY = 0, /* fastai's default: the longest descending run */
    TRAINER_SUGGEST_SLIDE = 1,  /* the interval slide rule (needs 16 points in the window) */
    TRAINER_SUGGEST_MINIMUM = 2, /* the minimum's lr / 10 */
    TRAINER_SUGGEST_STEEP = 3,  /* the steepest forward difference of loss over log(lr) */
    TRAINER_NSUGGEST = 4,
};

typedef struct trainer_lr_suggestion {
    const char *name;       /* "valley", "slide", "minimum", "steep"; static */
    double lr;              /* the suggested learning rate; NaN when !ok */
    double at_lr, at_loss;  /* the point fastai marks on the plot */
    int ok;                 /* 0: too few points for this function (slide) */
} trainer_lr_suggestion;

/* fastai's four suggestions, in the order above, for the recorded sweep lrs[0..n)
 * (increasing) and smoothed losses[0..n) of a sweep of num_it steps. Like fastai they look
 * only at points [num_it/10, n-5), cut at the first NaN. Returns 0, NN_ERANGE when that
 * window holds fewer than 2 points (the message says how many are needed), or NN_ENOMEM. */
int trainer_lr_suggest(trainer_lr_suggestion out[TRAINER_NSUGGEST], const double *lrs,
                       const double *losses, int n, int num_it);

#endif /* STRATA_TRAINER_OPTIM_H */
