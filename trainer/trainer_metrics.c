/* What rank 0 reports as training goes: the console (banners, progress as a bar or lines, the
 * gradient reduction's report) and run.dir/metrics.jsonl (one JSON object a line; a failed
 * write is an error naming the file, never lost). */
#include "trainer/trainer_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Per-group learning rates, %.3g, separated by sep. */
void trainer__print_lrs(FILE *f, const float *lr, int n, const char *sep)
{
    for (int g = 0; g < n; g++) fprintf(f, "%s%.3g", g ? sep : "", (double)lr[g]);
}

/* A redrawn bar only on a terminal. Under mpirun, Open MPI hands rank 0 a pseudo-terminal
 * whatever the job's real output is (a log file, tee, a batch system), so there plain lines
 * are printed unless STRATA_PROGRESS=bar asks for the bar; STRATA_PROGRESS=lines forces
 * lines everywhere. */
int trainer__progress_bar_wanted(FILE *out)
{
    if (!out) return 0;
    const char *p = getenv("STRATA_PROGRESS");
    if (p && !strcmp(p, "bar")) return 1;
    if (p && !strcmp(p, "lines")) return 0;
    if (getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK")) return 0;
    return isatty(fileno(out));
}

/* A progress line (or the redrawn bar) for step b of nb of epoch e. */
void trainer__progress(const trainer__run *r, int e, int b, int nb, double loss, double sps)
{
    FILE *out = r->log.out;
    if (!out) return;
    const trainer__phase *ph = &r->phase;
    const int epochs = ph->list[ph->p].epochs, G = r->model.m->ngroups;
    if (r->log.tty) {
        const int width = 24, done = (int)((double)width * b / nb);
        fprintf(out, "\rphase %d/%d epoch %d/%d [", ph->p + 1, ph->n, e + 1, epochs);
        for (int i = 0; i < width; i++) fputc(i < done ? '#' : '.', out);
        fprintf(out, "] %d/%d loss %.4f %.0f samples/s lr ", b, nb, loss, sps);
        trainer__print_lrs(out, ph->lr, G, ",");
        fprintf(out, "   ");
    } else {
        fprintf(out, "phase %d/%d epoch %d/%d batch %d/%d loss %.4f samples/s %.0f lr ", ph->p + 1,
                ph->n, e + 1, epochs, b, nb, loss, sps);
        trainer__print_lrs(out, ph->lr, G, ",");
        fputc('\n', out);
    }
    fflush(out);
}

/* A number in metrics.jsonl: JSON has no NaN or infinity, so those are null. */
static void json_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* Per-group values (lr, momentum) in metrics.jsonl, at full float precision. */
static void metrics_list(FILE *f, const float *v, int n)
{
    fputc('[', f);
    for (int g = 0; g < n; g++) fprintf(f, "%s%.9g", g ? ", " : "", (double)v[g]);
    fputc(']', f);
}

/* Ends what was written since errno was cleared: flushed, or an error naming the file. */
static int metrics_flush(trainer__log *lg)
{
    if (fflush(lg->metrics) == 0 && !ferror(lg->metrics)) return 0;
    return nn_err(NN_EIO, "cannot write %s: %s", lg->metrics_path, strerror(errno ? errno : EIO));
}

/* The reducer's counters of every group, as a JSON list. */
static void metrics_comm(FILE *f, const comm_reducer *red, int G)
{
    fputc('[', f);
    for (int g = 0; g < G; g++) {
        const comm_group_stats *st = comm_reducer_stats(red, g);
        fprintf(f, "%s{\"group\": %d, \"bytes\": %llu, \"collectives\": %llu, \"seconds\": %.6f}",
                g ? ", " : "", g, (unsigned long long)st->bytes,
                (unsigned long long)st->collectives, st->seconds);
    }
    fputc(']', f);
}

/* A training line of metrics.jsonl; a failed write names the file. */
int trainer__metrics_train(trainer__log *lg, const trainer__run *r, const double *sums,
                           double sps)
{
    FILE *f = lg->metrics;
    if (!f) return 0;
    const nn_model *m = r->model.m;
    const int G = m->ngroups;
    errno = 0;
    fprintf(f, "{\"step\": %ld, \"epoch\": %d, \"phase\": %d, \"train_loss\": ",
            r->model.global_step, r->data.epoch, r->phase.p);
    json_num(f, sums[0] / sums[2]);
    fprintf(f, ", \"train_acc\": ");
    json_num(f, sums[1] / sums[2]);
    fprintf(f, ", \"lr\": ");
    metrics_list(f, r->phase.lr, G);
    fprintf(f, ", \"mom\": ");
    metrics_list(f, r->phase.mom, G);
    fprintf(f, ", \"frozen\": [");
    for (int g = 0, k = 0; g < G; g++)
        if (m->groups[g].frozen) fprintf(f, "%s%d", k++ ? ", " : "", g);
    fprintf(f, "], \"samples_per_s\": %.1f, \"comm\": ", sps);
    metrics_comm(f, r->comm.red, G);
    fprintf(f, ", \"comm_exposed_seconds\": %.6f, \"comm_progress_seconds\": %.6f}\n",
            comm_reducer_exposed_seconds(r->comm.red), comm_reducer_progress_seconds(r->comm.red));
    return metrics_flush(lg);
}

/* A validation line of metrics.jsonl; a failed write names the file. */
int trainer__metrics_valid(trainer__log *lg, const trainer__run *r, double loss, double acc)
{
    FILE *f = lg->metrics;
    if (!f) return 0;
    errno = 0;
    fprintf(f, "{\"step\": %ld, \"epoch\": %d, \"phase\": %d, \"valid_loss\": ",
            r->model.global_step, r->data.epoch, r->phase.p);
    json_num(f, loss);
    fprintf(f, ", \"valid_acc\": ");
    json_num(f, acc);
    fprintf(f, "}\n");
    return metrics_flush(lg);
}

int trainer__metrics_close(trainer__log *lg)
{
    if (!lg->metrics) return 0;
    const int bad = ferror(lg->metrics);
    errno = 0;
    const int closed = fclose(lg->metrics) == 0;
    lg->metrics = NULL;
    if (closed && !bad) return 0;
    return nn_err(NN_EIO, "cannot write %s: %s", lg->metrics_path, strerror(errno ? errno : EIO));
}

/* Resuming: the checkpoint's metrics history first in metrics.jsonl. */
int trainer__metrics_history(trainer__log *lg, const char *history)
{
    if (!lg->metrics || !history) return 0;
    errno = 0;
    fputs(history, lg->metrics);
    return metrics_flush(lg);
}

/* The run's banner: model, engine, data, run.dir, where a resume starts. */
void trainer__print_start(const trainer__run *r)
{
    FILE *out = r->log.out;
    if (!out) return;
    const io_config *cfg = r->cfg;
    const nn_model *m = r->model.m;
    const trainer__data *d = &r->data;
    const trainer__position *start = &r->ckpt.start;
    const int world = comm_size(r->comm.c), B = cfg->data.batch_size;
    fprintf(out, "strata: %s, %d layer groups, %zu parameters; %d rank(s) x batch %d = global batch %d\n",
            m->arch, m->ngroups, nn_model_numel(m), world, B, B * world);
    fprintf(out, "strata: engine %s\n", nn_engine_describe(m->eng));
    fprintf(out, "strata: train %s (%d samples), valid %s (%d samples); run dir %s\n",
            cfg->data.train, d->train.n, d->has_valid ? cfg->data.valid : "none",
            d->has_valid ? d->valid.n : 0, cfg->run.dir);
    if (start->t.has)
        fprintf(out, "strata: resuming at phase %d, epoch %d of the phase, step %ld of the epoch (global step %ld)\n",
                start->t.phase + 1, start->t.epoch_in_phase + 1, start->t.step_in_epoch + 1,
                start->t.global_step + 1);
}

/* A phase's banner: epochs, frozen groups, maximum lrs, schedule. */
void trainer__print_phase(const trainer__run *r, int warn)
{
    FILE *out = r->log.out;
    if (!out) return;
    const trainer__phase *ph = &r->phase;
    const io_phase *cur = &ph->list[ph->p];
    const nn_model *m = r->model.m;
    if (warn) fprintf(out, "strata: warning: freeze_to has no effect: the model has one layer group\n");
    fprintf(out, "strata: phase %d/%d '%s': %d epoch(s), frozen groups:", ph->p + 1, ph->n,
            cur->name, cur->epochs);
    int any = 0;
    for (int g = 0; g < m->ngroups; g++)
        if (m->groups[g].frozen) fprintf(out, " %d", g), any = 1;
    fprintf(out, "%s; max lr per group ", any ? "" : " none");
    trainer__print_lrs(out, ph->lr_max, m->ngroups, ", ");
    fprintf(out, "; schedule %s\n", (cur->has_schedule ? &cur->schedule : &r->cfg->schedule)->type);
}

/* The gradient reduction's per-group report at the end of training. */
void trainer__print_reduction(const trainer__run *r)
{
    FILE *out = r->log.out;
    if (!out) return;
    const io_config *cfg = r->cfg;
    const int G = r->model.m->ngroups;
    fprintf(out, "strata: gradient reduction per layer group (%d rank(s), %s, buckets of at most %g MiB):\n",
            comm_size(r->comm.c),
            !cfg->comm.overlap                         ? "after backward"
            : !strcmp(cfg->comm.progress, "thread")    ? "overlapped with backward by a communication thread"
                                                       : "overlapped with backward",
            cfg->comm.bucket_mb);
    fprintf(out, "  group        bytes  collectives   seconds\n");
    for (int g = G - 1; g >= 0; g--) {
        const comm_group_stats *st = comm_reducer_stats(r->comm.red, g);
        fprintf(out, "  %5d %12llu %12llu %9.3f%s\n", g, (unsigned long long)st->bytes,
                (unsigned long long)st->collectives, st->seconds, g == G - 1 ? "  (head)" : "");
    }
    fprintf(out, "  exposed (waiting after backward): %.3f s; spent in MPI during backward: %.3f s\n",
            comm_reducer_exposed_seconds(r->comm.red), comm_reducer_progress_seconds(r->comm.red));
}
