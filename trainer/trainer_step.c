/* Optimizer steps: a batch loaded, one step's gradients (forward and backward over the
 * micro-batches, each group's gradients averaged across ranks as its backward finishes, head
 * first, clipped), and an epoch of steps with its progress, metrics lines and step
 * checkpoints. */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <math.h>
#include <string.h>

/* Samples idx[0..count) of ds into d->x and d->labels. */
int trainer__load_batch(const io_config *cfg, trainer__data *d, const io_dataset *ds,
                        const int *idx, int count, int augment)
{
    int rc = nn_tensor_resize(&d->x, count, ds->c, ds->h, ds->w);
    if (rc) return rc;
    io_dataset_to_float(d->x.data, ds, idx, count, d->mean, d->std);
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    for (int i = 0; i < count; i++) {
        d->labels[i] = ds->labels[idx[i]];
        if (augment && (cfg->data.augment.crop_padding > 0 || cfg->data.augment.flip))
            io_augment(d->x.data + i * per, ds->c, ds->h, ds->w, cfg->data.augment.crop_padding,
                       cfg->data.augment.flip, d->pad, cfg->train.seed, d->epoch, idx[i]);
    }
    return 0;
}

/* nn's backward hook: a finished group starts its reduction; every call drives the ones in
 * flight. */
static int on_backward(void *ud, int group, int done)
{
    comm_reducer *red = ud;
    int rc = done ? comm_reducer_group_done(red, group) : 0;
    return rc ? rc : comm_reducer_progress(red);
}

/* What each group sends this step: all of its gradients, nothing when frozen, or, when it is
 * frozen but its BatchNorm trains (train_bn), only the tail of its slab that holds the
 * BatchNorm parameters. */
static void set_active(int *active, const nn_model *m)
{
    for (int g = 0; g < m->ngroups; g++) {
        const nn_group *gr = &m->groups[g];
        int any = 0;
        for (int k = 0; k < gr->nparams && !any; k++) any = gr->params[k]->trainable;
        active[g] = !any          ? COMM_GROUP_SILENT
                    : gr->frozen ? COMM_GROUP_TAIL
                                 : COMM_GROUP_ALL;
    }
}

/* Clips the (already averaged, so identical on every rank) gradients of trainable
 * parameters to a global L2 norm of at most max_norm; *norm gets the norm before. */
static void clip_grads(nn_model *m, double max_norm, double *norm)
{
    double s = 0.0;
    for (int g = 0; g < m->ngroups; g++)
        for (int k = 0; k < m->groups[g].nparams; k++) {
            const nn_param *p = m->groups[g].params[k];
            if (!p->trainable) continue;
            for (size_t i = 0; i < p->numel; i++) s += (double)p->grad[i] * p->grad[i];
        }
    *norm = sqrt(s);
    if (max_norm <= 0.0 || *norm <= max_norm) return;
    const float f = (float)(max_norm / (*norm + 1e-6));
    for (int g = 0; g < m->ngroups; g++)
        for (int k = 0; k < m->groups[g].nparams; k++) {
            nn_param *p = m->groups[g].params[k];
            if (!p->trainable) continue;
            for (size_t i = 0; i < p->numel; i++) p->grad[i] *= f;
        }
}

/* Micro-batch a of A: forward, loss, backward (the last one's backward drives the reducer).
 * *loss and *hits get its loss and correct predictions. */
static int micro_batch(const io_config *cfg, trainer__data *d, trainer__model *mo,
                       trainer__comm *cm, const int *idx, int a, int A, float *loss, int *hits)
{
    const nn_tensor *logits;
    nn_ctx ctx = {&mo->rng};
    int rc = trainer__load_batch(cfg, d, &d->train, idx, cfg->data.batch_size, 1);
    if (!rc) rc = nn_model_forward(&logits, mo->m, &d->x, &ctx);
    if (!rc) rc = nn_cross_entropy(loss, &mo->dlogits, hits, logits, d->labels);
    if (!rc && !isfinite(*loss) && !mo->nonfinite_ok)
        rc = nn_err(NN_ERANGE, "the loss is %f at step %ld: training diverged (lower the learning rate)",
                    (double)*loss, mo->global_step + 1);
    if (rc) return rc;
    /* Scaling the loss gradient by 1/(ranks x micro-batches) makes the reduced sum the
     * average, without a pass over the gradient slabs afterwards. */
    const float inv = 1.0f / (float)(comm_size(cm->c) * A);
    const size_t nd = nn_tensor_numel(&mo->dlogits);
    for (size_t i = 0; i < nd; i++) mo->dlogits.data[i] *= inv;
    nn_model_set_backward_hook(mo->m, a == A - 1 ? on_backward : NULL, cm->red);
    /* The first micro-batch writes the gradients (no zeroing pass), the others add. */
    rc = a == 0 ? nn_model_backward_fresh(mo->m, &mo->dlogits)
                : nn_model_backward(mo->m, &mo->dlogits);
    nn_model_set_backward_hook(mo->m, NULL, NULL);
    return rc;
}

/* The reduction happens once, during the last micro-batch's backward. Every rank issues the
 * same collectives in the same order even when its own step failed (it then sends whatever
 * its slabs hold); the caller agrees on the result (trainer__step_agree) instead of leaving
 * ranks waiting in mismatched collectives. */
int trainer__step_grads(const io_config *cfg, trainer__data *d, trainer__model *mo,
                        trainer__comm *cm, const int *idx, int A, float *loss, int *hits)
{
    const int B = cfg->data.batch_size;
    int rc = 0;
    *loss = 0.0f;
    *hits = 0;
    set_active(cm->active, mo->m);
    comm_reducer_begin(cm->red, cm->active);
    for (int a = 0; a < A && !rc; a++) {
        float l = 0.0f;
        int h = 0;
        rc = micro_batch(cfg, d, mo, cm, idx + (size_t)a * B, a, A, &l, &h);
        if (rc) break;
        *loss += l;
        *hits += h;
    }
    /* A failed rank still takes part in every reduction of the step. */
    for (int g = mo->m->ngroups - 1; g >= 0 && rc; g--) comm_reducer_group_done(cm->red, g);
    int rc2 = comm_reducer_finish(cm->red, 1.0f); /* already averaged: see the loss scaling */
    if (!rc) rc = rc2;
    if (!rc && cfg->train.clip_norm > 0.0) {
        double norm;
        clip_grads(mo->m, cfg->train.clip_norm, &norm);
    }
    return rc;
}

int trainer__step_agree(trainer__comm *cm, int rc)
{
    cm->stop_agreed = cm->stop_signal ? *cm->stop_signal : 0;
    return comm_agree_max(cm->c, rc, NULL, &cm->stop_agreed);
}

/* The loss and accuracy of the steps since the last metrics line, and the epoch's clock. */
typedef struct {
    double t0, tl;     /* when the epoch's first step began; when progress was last shown */
    double loss;       /* loss x samples */
    long hits, n;      /* correct predictions, samples */
} window;

/* A BatchNorm statistic that is not finite (this rank's own: they are averaged only at
 * checkpoints) is NN_ERANGE naming it; ud is the rank. */
static int buffer_finite(void *ud, const char *name, nn_buffer *b)
{
    const long i = util_first_nonfinite(b->data, b->numel);
    if (i < 0) return 0;
    return nn_err(NN_ERANGE, "rank %d: buffer '%s' holds a non-finite value (%g at index %ld of %zu): training diverged (lower the learning rate)",
                  *(const int *)ud, name, (double)b->data[i], i, b->numel);
}

/* One optimizer step of the phase on the training samples at idx, the schedule's lr and
 * momentum for every group. The step's one agreement comes after the update, so that a
 * non-finite weight, optimizer state or BatchNorm statistic stops every rank at the step that
 * made it, before any checkpoint; a rank whose gradients failed updates from them too, but
 * the run then ends. */
static int train_step(trainer__run *r, const int *idx, window *w)
{
    const int B = r->cfg->data.batch_size, A = r->cfg->train.accumulate;
    trainer__phase *ph = &r->phase;
    float loss;
    int hits;
    comm_set_step(r->comm.c, r->model.global_step + 1); /* named by a collective timeout */
    int rc = trainer__step_grads(r->cfg, &r->data, &r->model, &r->comm, idx, A, &loss, &hits);
    loss /= (float)A;
    for (int g = 0; g < r->model.m->ngroups && !rc; g++) {
        ph->lr[g] = (float)trainer_sched_lr(&ph->sched, ph->lr_max[g], ph->t, ph->total);
        ph->mom[g] = (float)trainer_sched_mom(&ph->sched, ph->mom_base[g], ph->t, ph->total);
    }
    const int rank = comm_rank(r->comm.c);
    if (!rc && ((rc = trainer_opt_step(&r->model.opt, r->model.m, ph->lr, ph->mom, ph->wd)) ||
                (rc = nn_model_visit_buffers(r->model.m, buffer_finite, (void *)&rank))))
        rc = nn_err_wrap(rc, "step %ld (phase %d, epoch %d)", r->model.global_step + 1,
                         ph->p + 1, r->data.epoch + 1);
    rc = trainer__step_agree(&r->comm, rc);
    if (rc) return rc;
    ph->t++;
    r->model.global_step++;
    w->loss += (double)loss * B * A;
    w->hits += hits;
    w->n += (long)B * A;
    return 0;
}

/* After step b (of the epoch, started at b0): every train.log_every steps and at the epoch's
 * end a progress line and a metrics line over all ranks (agreed on: a failed metrics write
 * ends the run everywhere); on a terminal, a redrawn bar in between. */
static int log_step(trainer__run *r, int e, long b, long b0, window *w)
{
    const io_config *cfg = r->cfg;
    const long per_epoch = r->phase.per_epoch;
    const int B = cfg->data.batch_size, A = cfg->train.accumulate, world = comm_size(r->comm.c);
    const int log = cfg->train.log_every > 0 &&
                    ((b + 1) % cfg->train.log_every == 0 || b + 1 == per_epoch);
    if (!log && !(r->log.tty && util_now_s() - w->tl > 0.2)) return 0;
    int rc = 0;
    double sums[3] = {w->loss, (double)w->hits, (double)w->n};
    if (log) rc = comm_allreduce_f64(r->comm.c, sums, 3);
    double now = util_now_s(), sps = (double)(b + 1 - b0) * B * A * world / (now - w->t0);
    w->tl = now;
    if (!rc) trainer__progress(r, e, (int)b + 1, (int)per_epoch, sums[0] / sums[2], sps);
    if (!log) return rc;
    if (!rc) rc = trainer__metrics_train(&r->log, r, sums, sps);
    w->loss = 0.0, w->hits = 0, w->n = 0;
    return comm_agree(r->comm.c, rc, NULL);
}

/* After step b of epoch e: a checkpoint every checkpoint.every_steps (the very last step is
 * saved by the final checkpoint), and a stop with a checkpoint after --stop-after's step or
 * when a signal on any rank asked for one (agreed on in step_grads). */
static int step_checkpoint(trainer__run *r, int e, long b)
{
    const io_config *cfg = r->cfg;
    const trainer__phase *ph = &r->phase;
    trainer__ckpt *k = &r->ckpt;
    const long gs = r->model.global_step;
    const int last = b + 1 == ph->per_epoch && e + 1 == ph->list[ph->p].epochs &&
                     ph->p + 1 == ph->n;
    const int by_steps = cfg->checkpoint.every_steps > 0 && !last &&
                         gs % cfg->checkpoint.every_steps == 0;
    k->stopped = k->stop_after > 0 && gs >= k->stop_after;
    if (r->comm.stop_agreed > 0) k->stopped = 1, k->signal = r->comm.stop_agreed;
    if (!by_steps && !k->stopped) return 0;
    k->at.t.epoch_in_phase = e;
    k->at.t.epoch = r->data.epoch;
    k->at.t.step_in_epoch = b + 1;
    k->at.t.phase_step = ph->t;
    k->at.t.global_step = gs;
    k->at.t.finished = 0;
    return trainer__ckpt_save(r);
}

/* Epoch e of r->phase from its step b0; r->ckpt.stopped set after a stop. */
int trainer__train_epoch(trainer__run *r, int e, long b0)
{
    const io_config *cfg = r->cfg;
    const int B = cfg->data.batch_size, A = cfg->train.accumulate;
    int count = 0;
    int rc = io_shard(r->data.shard, &count, r->data.train.n, comm_rank(r->comm.c),
                      comm_size(r->comm.c), cfg->train.seed, r->data.epoch);
    if (rc) return rc;
    window w = {0};
    w.t0 = w.tl = r->log.epoch_t0 = util_now_s();
    for (long b = b0; b < r->phase.per_epoch && !rc; b++) {
        rc = train_step(r, r->data.shard + b * B * A, &w);
        if (!rc) rc = log_step(r, e, b, b0, &w);
        if (rc) break;
        rc = step_checkpoint(r, e, b);
        if (r->ckpt.stopped) break;
    }
    return rc;
}
