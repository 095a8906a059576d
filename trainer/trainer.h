/*
 * trainer: optimizers, the training loop, and the strata CLI.
 *
 * For now: SGD with momentum and decoupled-from-BN weight decay, with its momentum buffers
 * in per-group slabs like the gradients, and a single-process training loop on
 * Fashion-MNIST used by the quickstart. Per-group hyperparameters, schedules, configs and
 * multi-rank training come with the training issue.
 */
#ifndef STRATA_TRAINER_H
#define STRATA_TRAINER_H

#include "nn/nn.h"

/* SGD with momentum (PyTorch's form: v = mu v + g + wd p; p -= lr v). Weight decay is not
 * applied to BatchNorm parameters and biases. One momentum slab per layer group. */
typedef struct trainer_sgd {
    float lr, momentum, wd;
    float *vel[NN_MAX_GROUPS]; /* per group, numel floats, owned */
    int ngroups;
} trainer_sgd;

/* Allocates momentum slabs for every group of m (zeroed). Free with trainer_sgd_free. */
int trainer_sgd_init(trainer_sgd *opt, const nn_model *m, float lr, float momentum, float wd);
void trainer_sgd_free(trainer_sgd *opt);
/* Updates the trainable parameters of every unfrozen group from their gradients. */
void trainer_sgd_step(trainer_sgd *opt, nn_model *m);

typedef struct trainer_fit_opts {
    nn_model_spec spec;   /* arch and shape; in_* and classes are set from the data */
    const char *data_dir; /* NULL: /usr/share/datasets/fashion-mnist */
    int epochs;
    int batch_size;
    float lr, momentum, wd;
    uint64_t seed;
    int freeze_to;        /* 0: train everything */
    int max_batches;      /* > 0: stop each epoch after this many batches (smoke runs) */
    int log_every;        /* batches between progress lines */
} trainer_fit_opts;

void trainer_fit_opts_default(trainer_fit_opts *o);
/* Trains on Fashion-MNIST's train split and evaluates on its test split after each epoch,
 * printing progress to out. *test_acc (may be NULL) gets the final test accuracy. */
int trainer_fit(const trainer_fit_opts *o, FILE *out, double *test_acc);

#endif
