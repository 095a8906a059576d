/* `strata lr-find`: fastai's learning-rate finder. A sweep of optimizer steps at growing
 * learning rates on a copy of the model's state, which is put back afterwards; lr_find.csv,
 * the suggestions and the plot (launch/plot_lr_find.py) in run.dir. Uses a run's data, model,
 * communication and console parts, no checkpoints or phases. */
#include "trainer/trainer_internal.h"

#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

/* What lr-find holds of a run. */
typedef struct {
    const io_config *cfg;
    trainer__data data;
    trainer__model model;
    trainer__comm comm;
    trainer__log log;
} lrf_run;

/* The points of a sweep: learning rate, mean loss over ranks, smoothed loss. */
typedef struct {
    double *lrs, *losses, *smooth;
    int n;
} sweep;

/* A copy of every parameter and BatchNorm buffer, in model order, to put back after a
 * sweep. All replicas hold the same state, so each rank keeps its own copy. */
typedef struct {
    float *data;
    size_t off;
    int restore;
} snapshot;

static int snapshot_buffer(void *ud, const char *name, nn_buffer *b)
{
    snapshot *s = ud;
    if (s->restore)
        memcpy(b->data, s->data + s->off, sizeof(float) * b->numel);
    else
        memcpy(s->data + s->off, b->data, sizeof(float) * b->numel);
    s->off += b->numel;
    return 0;
}

static int count_buffer(void *ud, const char *name, nn_buffer *b)
{
    *(size_t *)ud += b->numel;
    return 0;
}

static size_t count_buffer_floats(nn_model *m)
{
    size_t n = 0;
    nn_model_visit_buffers(m, count_buffer, &n);
    return n;
}

/* Saves (restore 0) or puts back (restore 1) the parameter slabs and BN buffers. */
static void snapshot_model(snapshot *s, nn_model *m, int restore)
{
    s->off = 0;
    s->restore = restore;
    for (int g = 0; g < m->ngroups; g++) {
        float *slab = m->groups[g].param_slab;
        size_t n = m->groups[g].numel;
        if (restore)
            memcpy(slab, s->data + s->off, sizeof(float) * n);
        else
            memcpy(s->data + s->off, slab, sizeof(float) * n);
        s->off += n;
    }
    nn_model_visit_buffers(m, snapshot_buffer, s);
}

/* Runs the plot script: CSV PNG NAME=LR:AT_LR:AT_LOSS for each suggestion available. */
static int lr_find_plot(FILE *out, const char *script, const char *csv, const char *png,
                        const trainer_lr_suggestion *sug)
{
    char args[TRAINER_NSUGGEST][96];
    char *argv[5 + TRAINER_NSUGGEST] = {"/usr/bin/python3", (char *)script, (char *)csv,
                                        (char *)png};
    int argc = 4;
    for (int i = 0; sug && i < TRAINER_NSUGGEST; i++)
        if (sug[i].ok) {
            snprintf(args[i], sizeof args[i], "%s=%.9g:%.9g:%.9g", sug[i].name, sug[i].lr,
                     sug[i].at_lr, sug[i].at_loss);
            argv[argc++] = args[i];
        }
    argv[argc] = NULL;
    pid_t pid;
    int st = 0, e = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (e) return nn_err(NN_EIO, "the plot was not written: cannot run %s: %s", argv[0], strerror(e));
    if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return nn_err(NN_EIO, "the plot was not written: %s %s failed (exit %d); is python3-matplotlib installed?",
                      argv[0], script, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    if (out) fprintf(out, "strata: wrote %s\n", png);
    return 0;
}

/* The suggestions on the console (sug NULL: too few points for fastai's window). */
static void print_suggestions(FILE *out, const trainer_lr_find_opts *o, const sweep *sw,
                              const trainer_lr_suggestion *sug)
{
    fprintf(out, "strata: lr-find ran %d of %d steps (lr %.2e to %.2e)\n", sw->n, o->num_it,
            sw->lrs[0], sw->lrs[sw->n - 1]);
    if (sug) {
        fprintf(out, "strata: suggested lr %.2e (valley, fastai's default); also", sug[0].lr);
        for (int i = 1; i < TRAINER_NSUGGEST; i++)
            if (sug[i].ok) fprintf(out, "%s %s %.2e", i > 1 ? "," : "", sug[i].name, sug[i].lr);
            else fprintf(out, "%s %s n/a (too few points)", i > 1 ? "," : "", sug[i].name);
        fprintf(out, "\n");
    } else {
        fprintf(out, "strata: no suggestion: %s\n", nn_errmsg());
    }
}

/* Rank 0, after a sweep: lr_find.csv, the suggestions on the console, and lr_find.png. */
static int lr_find_report(const lrf_run *r, const trainer_lr_find_opts *o, const sweep *sw,
                          const trainer_lr_suggestion *sug)
{
    char csv[1100], png[1100];
    snprintf(csv, sizeof csv, "%s/lr_find.csv", r->cfg->run.dir);
    snprintf(png, sizeof png, "%s/lr_find.png", r->cfg->run.dir);
    FILE *f = fopen(csv, "w");
    if (!f) return nn_err(NN_EIO, "cannot write %s: %s", csv, strerror(errno));
    fprintf(f, "lr,loss,smoothed_loss\n");
    for (int i = 0; i < sw->n; i++)
        fprintf(f, "%.9g,%.9g,%.9g\n", sw->lrs[i], sw->losses[i], sw->smooth[i]);
    const int bad = ferror(f);
    errno = 0;
    if (fclose(f) || bad)
        return nn_err(NN_EIO, "cannot write %s: %s", csv, strerror(errno ? errno : EIO));
    if (r->log.out) {
        print_suggestions(r->log.out, o, sw, sug);
        fprintf(r->log.out, "strata: wrote %s\n", csv);
    }
    return o->plot_script ? lr_find_plot(r->log.out, o->plot_script, csv, png, sug) : 0;
}

/* The sweep: lr_k = start * (end/start)^(k/num_it) for every group, smoothed loss
 * (exponential average, beta 0.98, debiased), stopping when it exceeds 4x the best or the
 * loss is no longer finite. */
static int lr_sweep(lrf_run *r, const trainer_lr_find_opts *o, const float *wd,
                    const float *mom, sweep *sw)
{
    const io_config *cfg = r->cfg;
    comm *c = r->comm.c;
    const int rank = comm_rank(c), world = comm_size(c), B = cfg->data.batch_size;
    const int G = r->model.m->ngroups;
    float lr[NN_MAX_GROUPS];
    int rc = 0, count = 0, per_epoch = 0;
    double avg = 0.0, best = INFINITY;
    const double timeout0 = comm_timeout(c); /* the caller's, restored after the sweep */
    comm_set_timeout(c, cfg->comm.timeout_s); /* the sweep's steps, as training's */
    for (int k = 0; k < o->num_it && !rc; k++) {
        comm_set_step(c, k + 1);
        if (per_epoch == 0 || k % per_epoch == 0) { /* a new epoch's shard */
            rc = io_shard(r->data.shard, &count, r->data.train.n, rank, world, cfg->train.seed,
                          r->data.epoch++);
            per_epoch = count / B;
        }
        if (rc) break;
        const double l = trainer_lr_find_lr(o->start, o->end, k, o->num_it);
        for (int g = 0; g < G; g++) lr[g] = (float)l;
        float loss;
        int hits;
        rc = trainer__step_grads(cfg, &r->data, &r->model, &r->comm,
                                 r->data.shard + (size_t)(k % per_epoch) * B, 1, &loss, &hits);
        rc = trainer__step_agree(&r->comm, rc);
        double gl[1] = {loss};
        if (!rc) rc = comm_allreduce_f64(c, gl, 1);
        if (rc) break;
        double mean_loss = gl[0] / world;
        if (!isfinite(mean_loss)) break; /* diverged: the sweep is over */
        /* A non-finite weight here shows as a non-finite loss at the next step: the end of
         * the sweep, not an error. */
        (void)trainer_opt_step(&r->model.opt, r->model.m, lr, mom, wd);
        avg = 0.98 * avg + 0.02 * mean_loss;
        double sm = avg / (1.0 - pow(0.98, k + 1));
        sw->lrs[sw->n] = l;
        sw->losses[sw->n] = mean_loss;
        sw->smooth[sw->n] = sm;
        sw->n++;
        if (sm < best) best = sm;
        if (sm > 4.0 * best || !isfinite(sm)) break;
    }
    comm_set_timeout(c, timeout0);
    return rc;
}

/* Set up as training is (replicas synced, run.dir with config.yaml and metrics.jsonl), then
 * the groups frozen as groups.freeze_to says. */
static int lrf_setup(lrf_run *r)
{
    int rc = comm_agree(r->comm.c, trainer__setup(r->cfg, &r->data, &r->model, &r->comm), NULL);
    if (!rc) rc = trainer__check_replicas(r->comm.c, r->cfg, r->model.m, &r->data, NULL);
    if (!rc) rc = trainer__sync_replicas(r->model.m, r->comm.c);
    if (!rc) rc = trainer__rundir_open(&r->log, r->cfg, r->comm.c, 0);
    if (!rc) rc = nn_model_freeze_to(r->model.m, r->cfg->groups.freeze_to, NULL);
    return rc;
}

/* Puts back the weights and BatchNorm statistics (the optimizer state is dropped with the
 * run); the validation loss before and after proves the model was restored exactly. */
static int lrf_restore(lrf_run *r, snapshot *saved, double before_loss, double before_acc)
{
    snapshot_model(saved, r->model.m, 1);
    if (!r->data.has_valid) return 0;
    double after_loss = 0.0, after_acc = 0.0;
    int rc = trainer__validate(r->cfg, r->comm.c, &r->data, &r->model, &after_loss, &after_acc);
    if (!rc && (after_loss != before_loss || after_acc != before_acc))
        rc = nn_err(NN_ESTATE, "lr-find did not restore the model: validation loss %.9g before, %.9g after",
                    before_loss, after_loss);
    if (!rc && r->log.out)
        fprintf(r->log.out, "strata: weights restored (validation loss %.6f before and after)\n",
                after_loss);
    return rc;
}

/* fastai's learning-rate finder over every group (trainer.h): the model set up as for
 * training, a sweep, its state put back, the report and plot in run.dir. */
int trainer_lr_find(const io_config *cfg, comm *c, FILE *out, const trainer_lr_find_opts *o,
                    double *suggestion)
{
    lrf_run r = {0};
    r.cfg = cfg;
    r.comm.c = c;
    r.log.out = comm_rank(c) == 0 ? out : NULL;
    r.model.nonfinite_ok = 1;
    snapshot saved = {0};
    sweep sw = {0};
    int rc = lrf_setup(&r);
    if (rc) goto done;
    const int G = r.model.m->ngroups;
    const size_t total = nn_model_numel(r.model.m) + count_buffer_floats(r.model.m);
    saved.data = malloc(sizeof(float) * (total ? total : 1));
    sw.lrs = calloc(o->num_it, sizeof(double));
    sw.losses = calloc(o->num_it, sizeof(double));
    sw.smooth = calloc(o->num_it, sizeof(double));
    if (!saved.data || !sw.lrs || !sw.losses || !sw.smooth)
        rc = nn_err(NN_ENOMEM, "lr-find: out of memory");
    if (rc) goto done;
    snapshot_model(&saved, r.model.m, 0);
    double before_loss = 0.0, before_acc = 0.0;
    if (r.data.has_valid)
        rc = trainer__validate(cfg, c, &r.data, &r.model, &before_loss, &before_acc);
    float wd[NN_MAX_GROUPS], mom[NN_MAX_GROUPS];
    if (!rc) rc = trainer__expand_hp(wd, G, &cfg->groups.wd, cfg, "groups.wd");
    if (!rc) rc = trainer__expand_hp(mom, G, &cfg->groups.momentum, cfg, "groups.momentum");
    if (!rc) rc = lr_sweep(&r, o, wd, mom, &sw);
    if (!rc) rc = lrf_restore(&r, &saved, before_loss, before_acc);
    if (!rc && sw.n == 0)
        rc = nn_err(NN_ERANGE, "lr-find: the loss was not finite at the first learning rate %g; lower --start",
                    o->start);
    if (rc) goto done;
    /* fastai's four suggestions on its window of the smoothed loss; valley is "the" one. */
    trainer_lr_suggestion sug[TRAINER_NSUGGEST];
    int have = trainer_lr_suggest(sug, sw.lrs, sw.smooth, sw.n, o->num_it) == 0;
    *suggestion = have ? sug[TRAINER_SUGGEST_VALLEY].lr : NAN;
    if (comm_rank(c) == 0) {
        rc = trainer__metrics_close(&r.log);
        if (!rc) rc = lr_find_report(&r, o, &sw, have ? sug : NULL);
    }
    rc = comm_agree(c, rc, NULL);
done:
    free(saved.data);
    free(sw.lrs);
    free(sw.losses);
    free(sw.smooth);
    trainer__comm_free(&r.comm);
    trainer__model_free(&r.model);
    trainer__data_free(&r.data);
    if (r.log.metrics) fclose(r.log.metrics);
    return rc;
}
