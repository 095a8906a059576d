/* The training loop of `strata train`, on one process or under mpirun, top to bottom: setup,
 * restore (--resume or model.init_from), then for each phase and each of its epochs
 * train_epoch, validate and maybe_checkpoint, then finish (the final checkpoint and
 * weights.h5).
 *
 * Every rank builds the same model from the same seed, then takes rank 0's weights. Each
 * step, a rank runs forward and backward on its shard of the global batch; the gradients of
 * every group that has something trainable are averaged across ranks by the group reducer
 * (trainer_step.c, comm/comm.h: in buckets of at most comm.bucket_mb, each group's as its
 * backward ends, head first, after backward or, with comm.overlap, overlapped with the rest
 * of it), then the optimizer updates the group with its own learning rate, momentum and
 * weight decay from the phase's schedule. Errors are agreed on by all ranks, so a failure on
 * one rank ends the job everywhere instead of leaving the others waiting in a collective.
 * Rank 0 alone prints and writes the run directory.
 */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

/* trainer_train_ex without options (trainer.h). */
int trainer_train(const io_config *cfg, comm *c, FILE *out)
{
    const trainer_train_opts none = {.resume = NULL};
    return trainer_train_ex(cfg, c, out, &none, NULL);
}

/* ---- phases ------------------------------------------------------------------------- */

/* The phases to run: the config's, or one built from the top-level keys. */
static int phases_of(const io_config *cfg, io_phase *ph)
{
    if (cfg->train.nphases > 0) {
        memcpy(ph, cfg->train.phases, sizeof(io_phase) * cfg->train.nphases);
        return cfg->train.nphases;
    }
    memset(ph, 0, sizeof *ph);
    snprintf(ph->name, sizeof ph->name, "train");
    ph->epochs = cfg->train.epochs;
    return 1;
}

/* The first frozen groups' count after freeze_to(n) on G groups (nn_model_freeze_to's rule). */
static int frozen_upto(int n, int G)
{
    return G == 1 ? 0 : n < 0 ? G + n : n;
}

/* Whether phase p starts with a freeze_to in fastai's sense, which clears the optimizer
 * state: the phase gives its own freeze_to, or its frozen groups differ from phase p-1's. */
static int phase_freezes(const io_config *cfg, const io_phase *ph, int p, int G)
{
    if (ph[p].has_freeze_to) return 1;
    if (p == 0) return 0;
    const int a = ph[p - 1].has_freeze_to ? ph[p - 1].freeze_to : cfg->groups.freeze_to;
    return frozen_upto(a, G) != frozen_upto(cfg->groups.freeze_to, G);
}

/* Phase p's freezing and per-group maximum lr, weight decay and base momentum; errors name
 * the config key. */
static int phase_setup(trainer__run *r, const io_phase *ph, int p, float *lr_max, float *wd,
                       float *mom_base, int *warn)
{
    const io_config *cfg = r->cfg;
    const int G = r->model.m->ngroups;
    const int n = ph->has_freeze_to ? ph->freeze_to : cfg->groups.freeze_to;
    int rc = nn_model_freeze_to(r->model.m, n, warn);
    if (rc)
        rc = ph->has_freeze_to ? nn_err_wrap(rc, "train.phases.%d.freeze_to", p)
                               : nn_err_wrap(rc, "groups.freeze_to");
    const io_hparam *hl = ph->lr.kind ? &ph->lr : &cfg->groups.lr;
    char lrkey[64];
    if (ph->lr.kind)
        snprintf(lrkey, sizeof lrkey, "train.phases.%d.lr", p);
    else
        snprintf(lrkey, sizeof lrkey, "groups.lr");
    if (!rc) rc = trainer__expand_hp(lr_max, G, hl, cfg, lrkey);
    if (!rc) rc = trainer__expand_hp(wd, G, &cfg->groups.wd, cfg, "groups.wd");
    if (!rc) rc = trainer__expand_hp(mom_base, G, &cfg->groups.momentum, cfg, "groups.momentum");
    return rc;
}

/* Every phase's settings, checked before anything is written to run.dir; the model is left
 * unfrozen. */
static int check_phases(trainer__run *r)
{
    int rc = 0;
    for (int p = 0; p < r->phase.n && !rc; p++) {
        float a[NN_MAX_GROUPS], b[NN_MAX_GROUPS], d[NN_MAX_GROUPS];
        int w;
        rc = phase_setup(r, &r->phase.list[p], p, a, b, d, &w);
    }
    if (!rc) rc = nn_model_freeze_to(r->model.m, 0, NULL);
    return rc;
}

/* Phase p begins: its freezing and hyperparameters, checked the same on every rank, its
 * steps per epoch and schedule, where a resumed phase's schedule stands, and fastai's
 * clearing of the optimizer state at a freeze_to. */
static int phase_begin(trainer__run *r, int p)
{
    const io_config *cfg = r->cfg;
    trainer__phase *ph = &r->phase;
    const io_phase *cur = &ph->list[p];
    const trainer__position *start = &r->ckpt.start;
    const int resuming = start->t.has && p == start->t.phase;
    const int world = comm_size(r->comm.c), B = cfg->data.batch_size, A = cfg->train.accumulate;
    int warn = 0;
    long per_epoch = 0;
    ph->p = p;
    int rc = phase_setup(r, cur, p, ph->lr_max, ph->wd, ph->mom_base, &warn);
    if (!rc) rc = trainer__check_phase(r, p);
    if (!rc) {
        per_epoch = r->data.train.n / world / (B * A);
        if (cfg->train.max_steps > 0 && cfg->train.max_steps < per_epoch)
            per_epoch = cfg->train.max_steps;
        rc = trainer_sched_from(&ph->sched, cur->has_schedule ? &cur->schedule : &cfg->schedule,
                                per_epoch);
    }
    if (!rc && resuming && start->t.steps_per_epoch != per_epoch &&
        start->t.step_in_epoch + start->t.epoch_in_phase > 0)
        rc = nn_err(NN_ESTATE, "cannot resume: the checkpoint's epochs have %ld steps, this run's %ld (did data.train, data.batch_size, train.accumulate or train.max_steps change?)",
                    start->t.steps_per_epoch, per_epoch);
    if (rc) return rc;
    trainer__print_phase(r, warn);
    ph->per_epoch = per_epoch;
    ph->total = per_epoch * cur->epochs;
    ph->t = resuming ? start->t.phase_step : 0;
    /* fastai's Learner.freeze_to calls opt.clear_state(); a phase resumed in its middle
     * has already done so (its checkpoint holds the state since). */
    if (cfg->optimizer.clear_state && ph->t == 0 &&
        phase_freezes(cfg, ph->list, p, r->model.m->ngroups)) {
        trainer_opt_clear_state(&r->model.opt, r->model.m);
        if (r->log.out && p > 0)
            fprintf(r->log.out, "strata: optimizer state cleared (freeze_to, as fastai's)\n");
    }
    r->ckpt.at.t.phase = p;
    r->ckpt.at.t.steps_per_epoch = per_epoch;
    return 0;
}

/* ---- an epoch's end ----------------------------------------------------------------- */

/* After epoch e's steps: the validation loss and accuracy on the console and in
 * metrics.jsonl (a failed write is agreed on: the run ends on every rank). */
static int validate(trainer__run *r, int e)
{
    const trainer__phase *ph = &r->phase;
    if (r->log.tty && r->log.out) fputc('\n', r->log.out);
    if (!r->data.has_valid) return 0;
    double vl, va;
    int rc = trainer__validate(r->cfg, r->comm.c, &r->data, &r->model, &vl, &va);
    if (rc) return rc;
    if (r->log.out)
        fprintf(r->log.out, "phase %d/%d epoch %d/%d valid loss %.4f valid accuracy %.4f (%.1f s)\n",
                ph->p + 1, ph->n, e + 1, ph->list[ph->p].epochs, vl, va,
                util_now_s() - r->log.epoch_t0);
    return comm_agree(r->comm.c, trainer__metrics_valid(&r->log, r, vl, va), NULL);
}

/* At epoch e's end (after its validation), every checkpoint.every_epochs epochs unless the
 * phase ends here: the next epoch starts from this checkpoint. */
static int maybe_checkpoint(trainer__run *r, int e)
{
    const io_config *cfg = r->cfg;
    io_ckpt_train *at = &r->ckpt.at.t;
    if (cfg->checkpoint.every_epochs <= 0 || (r->data.epoch + 1) % cfg->checkpoint.every_epochs ||
        e + 1 >= r->phase.list[r->phase.p].epochs)
        return 0;
    at->epoch_in_phase = e + 1;
    at->epoch = r->data.epoch + 1;
    at->step_in_epoch = 0;
    at->phase_step = r->phase.t;
    at->global_step = r->model.global_step;
    at->finished = 0;
    return trainer__ckpt_save(r);
}

/* At phase p's end, when checkpoints are taken by epoch and another phase follows: the next
 * phase starts from its beginning. */
static int phase_end(trainer__run *r, int p)
{
    if (p + 1 >= r->phase.n || r->cfg->checkpoint.every_epochs <= 0) return 0;
    const int global_batch = r->ckpt.at.t.global_batch;
    r->ckpt.at.t = (io_ckpt_train){.phase = p + 1,
                                   .epoch = r->data.epoch,
                                   .global_step = r->model.global_step,
                                   .global_batch = global_batch};
    return trainer__ckpt_save(r);
}

/* Phase p's epochs, from where a resumed run stood. */
static int train_phase(trainer__run *r, int p)
{
    const trainer__position *start = &r->ckpt.start;
    const int resuming = start->t.has && p == start->t.phase;
    const int e0 = resuming ? start->t.epoch_in_phase : 0;
    int rc = phase_begin(r, p);
    for (int e = e0; e < r->phase.list[p].epochs && !rc && !r->ckpt.stopped; e++, r->data.epoch++) {
        rc = trainer__train_epoch(r, e, resuming && e == e0 ? start->t.step_in_epoch : 0);
        if (rc || r->ckpt.stopped) break;
        rc = validate(r, e);
        if (rc) break;
        rc = maybe_checkpoint(r, e);
    }
    if (!rc && !r->ckpt.stopped) rc = phase_end(r, p);
    return rc;
}

/* ---- start and finish --------------------------------------------------------------- */

static void run_init(trainer__run *r, const io_config *cfg, comm *c, FILE *out,
                     const trainer_train_opts *o)
{
    r->cfg = cfg;
    r->comm.c = c;
    r->comm.stop_signal = o->stop_signal;
    r->log.out = comm_rank(c) == 0 ? out : NULL;
    r->log.tty = trainer__progress_bar_wanted(r->log.out);
    r->log.run_opened = o->run_opened;
    r->ckpt.stop_after = o->stop_after;
    r->phase.n = phases_of(cfg, r->phase.list);
}

static void run_free(trainer__run *r)
{
    io_ckpt_scratch_free(&r->ckpt.mem);
    trainer__comm_free(&r->comm);
    trainer__model_free(&r->model);
    trainer__data_free(&r->data);
    if (r->log.metrics) fclose(r->log.metrics);
}

/* Resuming a run whose last phase ended: nothing to do. */
static void already_finished(const trainer__run *r, io_ckpt_reader *rd, const char *resume,
                             trainer_train_result *res)
{
    res->finished = 1;
    res->global_step = r->ckpt.start.t.global_step;
    if (r->log.out)
        fprintf(r->log.out, "strata: %s: the run already finished (global step %ld); nothing to resume\n",
                rd ? io_ckpt_path(rd) : resume, r->ckpt.start.t.global_step);
}

/* Replicas synced, run.dir set up (status "running", sweep.json) and, resuming, metrics.jsonl
 * started with the checkpoint's history (lines written after it by the run that stopped are
 * dropped). */
static int open_run(trainer__run *r, io_ckpt_reader *rd, const char *sweep_json)
{
    const io_config *cfg = r->cfg;
    comm *c = r->comm.c;
    int rc = trainer__sync_replicas(r->model.m, c);
    if (!rc) rc = trainer__rundir_open(&r->log, cfg, c, !r->ckpt.start.t.has);
    if (!rc) rc = trainer__write_status(cfg, c, "running");
    r->log.opened = !rc;
    if (!rc && comm_rank(c) == 0 && r->log.run_opened) r->log.run_opened(cfg->run.dir);
    if (!rc && comm_rank(c) == 0 && sweep_json) rc = trainer__write_sweep_json(cfg, sweep_json);
    rc = comm_agree(c, rc, NULL);
    if (rc) return rc;
    if (r->log.metrics && rd) rc = trainer__metrics_history(&r->log, io_ckpt_info(rd)->metrics);
    return comm_agree(c, rc, NULL);
}

/* After the loop: the reduction's report, then either a stop's message and status, or the
 * final checkpoint (marked finished) and weights.h5: every replica holds the same weights,
 * and the BN statistics were averaged by the save. */
static int finish(trainer__run *r, trainer_train_result *res)
{
    const io_config *cfg = r->cfg;
    comm *c = r->comm.c;
    FILE *out = r->log.out;
    trainer__print_reduction(r);
    if (r->ckpt.stopped && r->ckpt.signal) {
        if (out)
            fprintf(out, "strata: stopped on signal %d after global step %ld, checkpoint saved; continue with --resume auto\n",
                    r->ckpt.signal, r->model.global_step);
        return comm_agree(c, trainer__write_status(cfg, c, "preempted"), NULL);
    }
    if (r->ckpt.stopped) {
        if (out)
            fprintf(out, "strata: stopped after global step %ld as asked (--stop-after); continue with --resume auto\n",
                    r->model.global_step);
        return comm_agree(c, trainer__write_status(cfg, c, "stopped"), NULL);
    }
    const int global_batch = r->ckpt.at.t.global_batch;
    r->ckpt.at.t = (io_ckpt_train){.phase = r->phase.n,
                                   .epoch = r->data.epoch,
                                   .finished = 1,
                                   .global_step = r->model.global_step,
                                   .global_batch = global_batch};
    int rc = trainer__ckpt_save(r);
    if (!rc && comm_rank(c) == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/weights.h5", cfg->run.dir);
        rc = trainer_weights_save(r->model.m, cfg, path);
        if (!rc && out) fprintf(out, "strata: weights written to %s\n", path);
    }
    if (!rc) rc = trainer__metrics_close(&r->log);
    if (!rc) rc = trainer__write_status(cfg, c, "finished");
    rc = comm_agree_after(c, rc, NULL, 0); /* the others waited for weights.h5 */
    res->finished = rc == 0;
    return rc;
}

/* Rank 0: from here on only the run writes its status (trainer_train_opts.run_opened). */
static void status_handover(const trainer__run *r)
{
    if (r->log.opened && r->log.run_opened && comm_rank(r->comm.c) == 0) r->log.run_opened(NULL);
}

/* A failed run's status (on one line) and message. */
static void record_failure(const trainer__run *r, int rc)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", nn_errmsg());
    for (char *q = msg; *q; q++)
        if (*q == '\n') *q = ' ';
    (void)trainer__write_status(r->cfg, r->comm.c, "failed: %s", msg); /* the error wins */
    nn_err(rc, "%s", msg);
}

/* `strata train` (trainer.h): setup, restore, the phases' epochs, finish. */
int trainer_train_ex(const io_config *cfg_in, comm *c, FILE *out, const trainer_train_opts *o,
                     trainer_train_result *res)
{
    trainer_train_result result = {0, 0, 0};
    io_config cfg = *cfg_in;   /* a resume at another world size adjusts data.batch_size */
    trainer__run r = {0};
    io_ckpt_reader *rd = NULL; /* rank 0, resuming: the checkpoint, open until restored */
    const double timeout0 = comm_timeout(c); /* the caller's, restored at the end */
    run_init(&r, &cfg, c, out, o);
    int rc = 0;
    if (o->resume) { /* where the checkpoint stands, and the global batch it keeps */
        rc = trainer__resume_open(&r, o->resume, &rd);
        if (!rc && r.ckpt.start.t.has && r.ckpt.start.t.finished) {
            already_finished(&r, rd, o->resume, &result);
            goto done;
        }
        if (!rc) rc = trainer__resume_batch(&r, &cfg);
        if (rc) goto done;
    }
    /* Setup: data, model, optimizer and reducer, the same on every rank. */
    rc = comm_agree(c, trainer__setup(&cfg, &r.data, &r.model, &r.comm), NULL);
    if (!rc) rc = trainer__check_replicas(c, &cfg, r.model.m, &r.data, NULL);
    if (rc) goto done;
    /* Restore: the checkpoint's state or model.init_from's body; then run.dir. */
    rc = trainer__restore(&r, rd, o->regroup);
    if (!rc) rc = check_phases(&r);
    rc = comm_agree(c, rc, NULL);
    if (!rc) rc = open_run(&r, rd, o->sweep_json);
    io_ckpt_close(rd);
    rd = NULL;
    if (rc) goto done;
    trainer__print_start(&r);
    /* The collective timeout covers the loop and finish (docs/comm.md). */
    comm_set_timeout(c, cfg.comm.timeout_s);
    comm_set_step(c, r.model.global_step);
    r.ckpt.at.t.global_batch = cfg.data.batch_size * cfg.train.accumulate * comm_size(c);
    /* For each phase, for each epoch: train_epoch, validate, maybe_checkpoint. */
    for (int p = r.ckpt.start.t.has ? r.ckpt.start.t.phase : 0;
         p < r.phase.n && !rc && !r.ckpt.stopped; p++)
        rc = train_phase(&r, p);
    status_handover(&r);
    if (!rc) rc = finish(&r, &result);
    result.global_step = r.model.global_step;
done:
    comm_set_timeout(c, timeout0);
    status_handover(&r);
    if (rc && r.log.opened) record_failure(&r, rc);
    result.signal = r.ckpt.signal;
    if (res) *res = result;
    io_ckpt_close(rd);
    run_free(&r);
    return rc;
}
