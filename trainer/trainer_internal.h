/* trainer's private interface, for the trainer/ sources only: the state of a training run in
 * named parts (data, model and optimizer, communication, console and metrics, checkpointing,
 * the phases), and the pieces that the loop, eval and lr-find share. Eval and lr-find hold only
 * the parts they use and pass them; the loop holds a whole trainer__run.
 *
 *   trainer_setup.c     the parts set up from the config, and freed
 *   trainer_step.c      batches, one optimizer step's gradients, an epoch of steps
 *   trainer_eval.c      validation and `strata eval`
 *   trainer_replicas.c  replicas kept and checked identical across ranks
 *   trainer_agree.c     the start-up agreement: options, build, config, model, data
 *   trainer_resume.c    checkpoints saved, resumed from, model.init_from
 *   trainer_rundir.c    run.dir: its config.yaml, metrics.jsonl, status and sweep.json
 *   trainer_metrics.c   the console (progress, banners) and metrics.jsonl
 *   trainer_lr_find.c   `strata lr-find`
 *   trainer_run.c       the training loop itself, top to bottom
 */
#ifndef STRATA_TRAINER_INTERNAL_H
#define STRATA_TRAINER_INTERNAL_H

#include "trainer/trainer.h"

#include <stdint.h>
#include <stdio.h>

/* A checkpoint's group table holds the model's groups one for one. */
_Static_assert(IO_CKPT_MAX_GROUPS == NN_MAX_GROUPS, "IO_CKPT_MAX_GROUPS must equal NN_MAX_GROUPS");

/* ---- the parts of a run -------------------------------------------------------------- */

/* Data: both datasets, their normalisation and the batch being computed. */
typedef struct trainer__data {
    io_dataset train;   /* data.train, all of it, on every rank */
    io_dataset valid;   /* data.valid, when has_valid */
    int has_valid;      /* data.valid is set and was loaded */
    float *mean, *std;  /* per channel, owned: the normalisation */
    float *pad;         /* per channel, owned: the normalised value of a crop's padding */
    int *shard;         /* this rank's sample indices: the epoch's, or validation's */
    nn_tensor x;        /* the batch, normalised (and augmented when training) */
    int32_t *labels;    /* its labels */
    int epoch;          /* epochs done over all phases: the data order's and augmentation's */
} trainer__data;

/* Model and optimizer. */
typedef struct trainer__model {
    nn_model *m;
    trainer_opt opt;    /* unset in eval */
    nn_rng rng;         /* dropout; seeded from train.seed and the rank */
    nn_tensor dlogits;  /* the loss gradient of the micro-batch being computed */
    long global_step;   /* optimizer steps done over all phases */
    int nonfinite_ok;   /* lr-find: a non-finite loss ends the sweep, not the run */
} trainer__model;

/* Communication. */
typedef struct trainer__comm {
    comm *c;
    comm_reducer *red;               /* the gradients' per-group reducer; unset in eval */
    int active[NN_MAX_GROUPS];       /* what each group sends this step (COMM_GROUP_*) */
    const volatile int *stop_signal; /* may be NULL: set by strata_main.c's stop thread to
                                        the number of a signal that asks training to stop */
    int32_t stop_agreed;             /* the largest *stop_signal over all ranks at the last
                                        step's agreement */
} trainer__comm;

/* The console and run.dir's files other than checkpoints: all rank 0's. */
typedef struct trainer__log {
    FILE *out;               /* rank 0's console; NULL on other ranks */
    int tty;                 /* out gets a redrawn progress bar, not lines */
    FILE *metrics;           /* run.dir/metrics.jsonl on rank 0; NULL elsewhere */
    char metrics_path[1100]; /* its name, for errors */
    int opened;              /* run.dir is set up: run.dir/status is kept from here on */
    void (*run_opened)(const char *run_dir); /* trainer_train_opts.run_opened */
    double epoch_t0;         /* when the epoch's first step began (util_now_s) */
} trainer__log;

/* Where training stands: what a checkpoint records and a resumed run starts from. */
typedef struct trainer__position {
    io_ckpt_train t; /* the checkpoint's train state; t.seed and t.rng are set only when
                        saving (the seed is the config's, the RNG states travel apart) */
    int world;       /* the world size of the checkpoint resumed from */
} trainer__position;

/* Checkpointing and stopping. */
typedef struct trainer__ckpt {
    io_ckpt_scratch mem;     /* rank 0: memory kept between saves */
    trainer__position start; /* where the run starts: a resumed checkpoint's position
                                (start.t.has 0: from the beginning) */
    trainer__position at;    /* where the loop stands: what the next save records */
    long stop_after;         /* > 0: save and stop after this global step (--stop-after) */
    int stopped;             /* the last step was the last: saved, the loop ends */
    int signal;              /* the agreed signal that stopped the run (0: none) */
} trainer__ckpt;

/* The phases and the one being trained. */
typedef struct trainer__phase {
    io_phase list[IO_MAX_PHASES]; /* the config's phases, or one from the top-level keys */
    int n;                        /* how many */
    int p;                        /* the phase being trained (0-based) */
    float lr_max[NN_MAX_GROUPS];  /* its per-group maximum learning rate, */
    float wd[NN_MAX_GROUPS];      /* weight decay */
    float mom_base[NN_MAX_GROUPS];/* and base momentum */
    float lr[NN_MAX_GROUPS];      /* the last step's learning rate from the schedule */
    float mom[NN_MAX_GROUPS];     /* and momentum */
    trainer_sched sched;          /* its schedule */
    long per_epoch;               /* optimizer steps per epoch */
    long total;                   /* per_epoch times its epochs */
    long t;                       /* steps done in the phase: the schedule's position */
} trainer__phase;

/* A training run. */
typedef struct trainer__run {
    const io_config *cfg; /* the effective config (a resume at another world size has
                             adjusted data.batch_size) */
    trainer__data data;
    trainer__model model;
    trainer__comm comm;
    trainer__log log;
    trainer__ckpt ckpt;
    trainer__phase phase;
} trainer__run;

/* ---- trainer_setup.c --------------------------------------------------------------- */

/* Loads data.train and data.valid, checks they agree with each other and with the
 * augmentation, and sets the normalisation. */
int trainer__data_open(trainer__data *d, const io_config *cfg);
/* Builds the model the config describes for d's data (labels checked against its classes)
 * and seeds rank's dropout RNG. */
int trainer__model_init(trainer__model *mo, const io_config *cfg, const trainer__data *d,
                        int rank);
/* The batch buffers; with need_train, checks that every rank gets a whole batch per step. */
int trainer__batches_init(trainer__data *d, const io_config *cfg, int world, int need_train);
/* Everything training needs: data, model, optimizer, reducer and batches, in that order
 * (cm->c set by the caller). The caller agrees on the result. */
int trainer__setup(const io_config *cfg, trainer__data *d, trainer__model *mo, trainer__comm *cm);
void trainer__data_free(trainer__data *d);
void trainer__model_free(trainer__model *mo);
void trainer__comm_free(trainer__comm *cm);
/* Expands a per-group hyperparameter; errors name where it was written: "FILE:LINE: key",
 * "--set key" or the key alone for defaults. */
int trainer__expand_hp(float *out, int ngroups, const io_hparam *hp, const io_config *cfg,
                       const char *key);

/* ---- trainer_step.c ---------------------------------------------------------------- */

/* Fills d->x and d->labels with samples idx[0..count) of ds, normalised, augmented when
 * augment is set. */
int trainer__load_batch(const io_config *cfg, trainer__data *d, const io_dataset *ds,
                        const int *idx, int count, int augment);
/* One optimizer step's gradients, averaged over ranks and A micro-batches of data.batch_size
 * training samples idx[a*B .. (a+1)*B), clipped as train.clip_norm says. *loss and *hits are
 * this rank's, summed over the micro-batches. Every rank takes part in every collective even
 * when its own step failed; the result is this rank's: agree on it with trainer__step_agree
 * before the next collective. */
int trainer__step_grads(const io_config *cfg, trainer__data *d, trainer__model *mo,
                        trainer__comm *cm, const int *idx, int A, float *loss, int *hits);
/* The step's agreement: rc from every rank (the first error wins, its message kept), and
 * cm->stop_agreed set to the largest stop signal any rank has seen. */
int trainer__step_agree(trainer__comm *cm, int rc);
/* Epoch e of the phase being trained, from step b0 of it: steps, progress, metrics lines and
 * the checkpoints that checkpoint.every_steps, --stop-after or a signal ask for. Returns with
 * r->ckpt.stopped set after a stop. */
int trainer__train_epoch(trainer__run *r, int e, long b0);

/* ---- trainer_eval.c ---------------------------------------------------------------- */

/* Validation loss and accuracy over all of d->valid, each rank taking every world-th sample,
 * after averaging BatchNorm statistics so that all replicas agree. Agreed on. */
int trainer__validate(const io_config *cfg, comm *c, trainer__data *d, trainer__model *mo,
                      double *loss, double *acc);

/* ---- trainer_replicas.c ------------------------------------------------------------ */

/* Rank 0's weights and BatchNorm buffers on every rank. */
int trainer__sync_replicas(nn_model *m, comm *c);
/* Averages the BatchNorm running statistics over all ranks. */
int trainer__bn_average(nn_model *m, comm *c);
/* At the start of phase: the same step and the same frozen groups on every rank. */
int trainer__check_phase(const trainer__run *r, int phase);

/* ---- trainer_agree.c ---------------------------------------------------------------- */

/* Once loaded, every rank holds the same effective config, model (names, shapes, groups,
 * trainable flags), data (data.train and, when loaded, data.valid: sample count, shape,
 * classes and a hash of the labels and of every byte up to 64 MiB, else of 4096 evenly spaced
 * samples) and, weights not NULL (eval, where each rank reads the file), weights. A
 * difference names the item, both ranks and hosts and both values (for the config and model,
 * the first differing line). Agreed on; nothing is hashed on one rank. */
int trainer__check_replicas(comm *c, const io_config *cfg, nn_model *m, const trainer__data *d,
                            const char *weights);

/* ---- trainer_resume.c -------------------------------------------------------------- */

/* Resolves --resume (a path, or "auto": the newest checkpoint of run.dir/checkpoints that opens,
 * whatever latest says) on rank 0 and sets r->ckpt.start on every rank; *rd stays open on
 * rank 0 for the tensors. */
int trainer__resume_open(trainer__run *r, const char *resume, io_ckpt_reader **rd);
/* Keeps the checkpoint's global batch on this world size, adjusting cfg->data.batch_size
 * (cfg is r->cfg), or refuses a world size that cannot. */
int trainer__resume_batch(trainer__run *r, io_config *cfg);
/* The set-up run takes the resumed checkpoint's weights, optimizer state, RNG states and
 * counters (rd open on rank 0; regroup: into the config's groups if the checkpoint's differ),
 * or model.init_from's body when not resuming. */
int trainer__restore(trainer__run *r, io_ckpt_reader *rd, int regroup);
/* Saves a checkpoint at r->ckpt.at into run.dir/checkpoints, on every rank, with the phase's
 * hyperparameters; rank 0 writes it, points `latest` at it and prunes to checkpoint.keep. */
int trainer__ckpt_save(trainer__run *r);

/* ---- trainer_rundir.c -------------------------------------------------------------- */

/* Sets up run.dir on rank 0: creates it, (when fresh) refuses one that holds another run or
 * this run's checkpoints, writes config.yaml and opens metrics.jsonl into lg. Agreed on. */
int trainer__rundir_open(trainer__log *lg, const io_config *cfg, comm *c, int fresh);
/* run.dir/status (rank 0): one line saying how the run stands, replaced atomically (a crash
 * leaves the old line or the new one). NN_EIO naming the file and the reason on rank 0 when
 * it cannot be written (0 on the other ranks): callers agree on it. */
int trainer__write_status(const io_config *cfg, comm *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Rank 0: closes metrics.jsonl (NULL afterwards); NN_EIO naming it when the close fails. */
int trainer__metrics_close(trainer__log *lg);
/* run.dir/sweep.json (rank 0): a sweep run's index and overrides. */
int trainer__write_sweep_json(const io_config *cfg, const char *json);

/* ---- trainer_metrics.c ------------------------------------------------------------- */

/* Whether rank 0's console (NULL elsewhere) gets a redrawn progress bar. */
int trainer__progress_bar_wanted(FILE *out);
/* The progress of epoch e at step b of nb (line or bar): mean loss, samples/s, lr. */
void trainer__progress(const trainer__run *r, int e, int b, int nb, double loss, double sps);
/* A training line of metrics.jsonl: sums are (loss x samples, hits, samples) over all ranks
 * since the last line. Errors (a full disk) name the file. */
int trainer__metrics_train(trainer__log *lg, const trainer__run *r, const double *sums,
                           double sps);
/* A validation line of metrics.jsonl. */
int trainer__metrics_valid(trainer__log *lg, const trainer__run *r, double loss, double acc);
/* Resuming: metrics.jsonl starts with the checkpoint's history (NULL: none). */
int trainer__metrics_history(trainer__log *lg, const char *history);
/* The console: the run's banner, a phase's (warn: freeze_to had no effect), the gradient
 * reduction's report at the end. */
void trainer__print_start(const trainer__run *r);
void trainer__print_phase(const trainer__run *r, int warn);
void trainer__print_reduction(const trainer__run *r);
/* Per-group learning rates, "%.3g" each, separated by sep. */
void trainer__print_lrs(FILE *f, const float *lr, int n, const char *sep);

#endif
