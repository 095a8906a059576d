/*
 * trainer: per-group hyperparameters, schedules and optimizers, the training loop on one
 * process or under mpirun, evaluation, the learning-rate finder, and the strata CLI.
 */
#ifndef STRATA_TRAINER_H
#define STRATA_TRAINER_H

#include "nn/nn.h"
#include "trainer/trainer_optim.h"

#include "comm/comm.h"
#include "io/io.h"

/* The config as training sees it: io_config_load (same arguments, errors and codes), then
 * fastai's presets (trainer_config_presets). */
int trainer_config_load(io_config *cfg, const char *path, const char *const *sets, int nsets);
/* What train.preset implies once every key is read (trainer_fastai.c): fine_tune fills
 * train.phases with fastai's Learner.fine_tune recipe (a frozen one-cycle phase at
 * slice(base_lr), pct_start 0.99, then base_lr/2, unfrozen, slice(base_lr/2/lr_mult,
 * base_lr/2), pct_start 0.3, div 5); no preset changes nothing. */
void trainer_config_presets(io_config *cfg);

/* Trains as cfg says on every rank of c: phases, freezing, per-group hyperparameters and
 * schedules, gradients averaged across ranks group by group. Rank 0 prints progress to out
 * (a bar on a terminal, plain lines otherwise) and writes run.dir: config.yaml,
 * metrics.jsonl and weights.h5. An error on any rank is returned on every rank. */
int trainer_train(const io_config *cfg, comm *c, FILE *out);

/* How a training run starts and stops, beyond its config. */
typedef struct trainer_train_opts {
    const char *resume; /* NULL: from the beginning; a checkpoint path; "auto": the newest in
                           run.dir/checkpoints if there is one, else from the beginning */
    int regroup;        /* resume into the config's group partition even if the
                           checkpoint's differs (optimizer state remapped by parameter name) */
    long stop_after;    /* > 0: save a checkpoint and return after this global step */
    const volatile int *stop_signal; /* may be NULL: a flag set to a signal's number (by the
                           CLI's stop thread, strata_main.c); checked (and agreed on by all ranks)
                           after every step: non-zero saves a checkpoint and returns (preemption) */
    const char *sweep_json; /* may be NULL: written by rank 0 to run.dir/sweep.json once the
                           run directory is set up (a sweep run's index and overrides) */
    void (*run_opened)(const char *run_dir); /* may be NULL: called on rank 0 with run.dir once
                           it is this run's (checked, status "running"), and with NULL before the
                           run writes its final status: between the two the CLI's stop thread
                           may write status */
} trainer_train_opts;

/* Replaces the file at path (a run's status) with line and a newline, atomically; NN_EIO
 * naming the path and the reason. The CLI's stop thread writes "interrupted" with it. */
int trainer_status_write(const char *path, const char *line);

/* How a training run ended (when it returned 0). */
typedef struct trainer_train_result {
    int finished;  /* the last phase ended */
    int signal;    /* stopped on this signal after saving a checkpoint (0: not) */
    long global_step;
} trainer_train_result;
/* trainer_train with options; res (may be NULL) says how it ended. Checkpoints
 * (docs/checkpoint-format.md) go to run.dir/checkpoints as checkpoint.* says, and always at
 * the end of every phase and of training; a resumed run continues exactly where the
 * checkpoint was taken. Rank 0 keeps run.dir/status: running, finished, preempted or
 * "failed: MESSAGE". A fresh run refuses a run.dir that holds a different run's config, or
 * this run's checkpoints (continue those with resume "auto"). */
int trainer_train_ex(const io_config *cfg, comm *c, FILE *out, const trainer_train_opts *o,
                     trainer_train_result *res);
/* The model spec the config describes, for data of c x h x w samples and `classes` classes
 * (model.input and model.classes, when set, must agree with the data: NN_ESHAPE names both).
 * spec->arch points into cfg. */
int trainer_model_spec(nn_model_spec *spec, const io_config *cfg, int c, int h, int w,
                       int classes);
/* Loads weights (NULL: run.dir/weights.h5) and evaluates on data.valid across all ranks. */
int trainer_eval(const io_config *cfg, comm *c, const char *weights, FILE *out, double *loss,
                 double *acc);

typedef struct trainer_lr_find_opts {
    double start, end;       /* fastai: 1e-7 and 10 */
    int num_it;              /* fastai: 100 */
    const char *plot_script; /* python script that draws the PNG; NULL: CSV only */
} trainer_lr_find_opts;
/* fastai's learning-rate finder over all groups (lr_k = start (end/start)^(k/num_it));
 * restores the weights afterwards, writes run.dir/lr_find.csv (and lr_find.png, with
 * fastai's four suggestions marked), prints the suggestions and sets *suggestion to
 * valley's, fastai's default (NaN when the sweep stopped too early for fastai's window). */
int trainer_lr_find(const io_config *cfg, comm *c, FILE *out, const trainer_lr_find_opts *o,
                    double *suggestion);

/* ---- the start-up agreement (trainer_agree.c) ------------------------------------- */

/* The most items one agreement compares. */
#define TRAINER_AGREE_MAX 16

/* A value that must be the same on every rank. */
typedef struct trainer_agree_item {
    const char *name;   /* what it is, as a message names it: "--resume", "the model" */
    const char *value;  /* this rank's (NULL: "none"); compared whole, shown up to 160 chars */
    const char *detail; /* NULL, or a text of lines compared instead of value: a mismatch
                           shows its first differing line and YAML section */
    size_t detail_len;
} trainer_agree_item;

/* Every rank checks that it passes the same items[0..n) as every other rank (names, values,
 * in order; a rank with other names, another subcommand say, differs at the first). The same
 * collectives run whatever the values, so a difference cannot hang: every rank returns
 * NN_ESTATE, and rank 0 and the lowest differing rank K say "ranks disagree on NAME: rank 0
 * (HOST) has 'V', rank K (HOST) has 'W'". A collective of every rank of c; 0 at once on one. */
int trainer_agree(comm *c, const trainer_agree_item *items, int n);
/* "VERSION (git ID)": the strata build, ID as of cmake's configure ("unknown" outside git). */
const char *trainer_build_id(void);

/* ---- checkpoints and weights files (trainer_ckpt.c) ------------------------------- */

/* Fills *ck with m's description (arch, input, classes, cut, group table without
 * hyperparameters), its parameters in group and slab order and its BatchNorm buffers, all
 * pointing into the model, and, when opt is not NULL, the optimizer's settings, step counts
 * and state tensors. The caller sets world_size, config, metrics, head, the groups' lr, wd
 * and momentum and the train state, then io_ckpt_save()s it; trainer_ckpt_release frees the
 * two arrays fill allocated. A non-finite value in any of those tensors is NN_ERANGE naming
 * it, and nothing is filled: a diverged model is never written. */
int trainer_ckpt_fill(io_ckpt *ck, nn_model *m, const trainer_opt *opt);
void trainer_ckpt_release(io_ckpt *ck);

typedef struct trainer_ckpt_counts {
    int loaded, fresh;                  /* parameter tensors loaded, left as they were */
    size_t loaded_values, fresh_values; /* their elements */
} trainer_ckpt_counts;
/* Loads values into m by parameter name from an open checkpoint: every parameter and
 * BatchNorm buffer (only those of the body when only_body: a new head), each present with
 * its shape, or an error naming it; with opt (not NULL) also the optimizer state tensors,
 * and then a parameter in the file that m lacks is an error too. A tensor holding an infinity
 * or a NaN is NN_ERANGE naming the file, the tensor and the first such value. */
int trainer_ckpt_load(nn_model *m, trainer_opt *opt, io_ckpt_reader *rd, int only_body,
                      trainer_ckpt_counts *n);

/* weights.h5: a checkpoint of kind "weights" (docs/checkpoint-format.md): m's description,
 * group table, every parameter in its PyTorch shape and every BatchNorm buffer, no optimizer
 * or train state; with cfg (may be NULL) also the effective config, model.head and
 * small_stem. Written atomically by io_ckpt_save. Load reads a checkpoint of either kind, or
 * a flat weights file of strata before 2026-12-03 (one 1-D dataset per tensor name). */
int trainer_weights_save(nn_model *m, const io_config *cfg, const char *path);
int trainer_weights_load(nn_model *m, const char *path);

#endif
