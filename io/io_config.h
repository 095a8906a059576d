/*
 * io_config: the run configuration. A YAML file (read with libyaml) plus `--set key.path=value`
 * overrides becomes one plain struct, io_config, with every default filled in and every value
 * checked. docs/config.md documents each key.
 *
 * Loading goes in three steps: the file is parsed into a small tree of maps, lists and
 * scalars that remembers each value's line (io_yaml.c); the overrides are applied to that
 * tree; the tree is converted into the struct, key by key, with validation. Every error
 * message reads `FILE:LINE: key.path: what is wrong (got 'VALUE')`; a value that came from an
 * override is located by the override itself (`--set key.path=value: key.path: ...`).
 *
 * Every key is one row of the key table in io_config.c (its path, type, field, default, range
 * and the comment of the effective config), which drives reading, defaults, the known keys
 * and the writing of the effective config. Adding a key: its field here, its row there, its
 * line in docs/config.md (the test test_config_doc checks the doc against the table).
 *
 * io decides nothing about training: per-group hyperparameters are kept as written (a scalar,
 * a list, slice(b) or slice(a, b)) and expanded to the model's groups by trainer/, and
 * train.preset is read but expanded into phases by trainer/ (trainer_config_load).
 *
 * The struct owns no heap memory: it can be copied, compared and zeroed freely.
 */
#ifndef STRATA_IO_CONFIG_H
#define STRATA_IO_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define IO_MAX_GROUPS 32 /* must equal NN_MAX_GROUPS (checked in io_config.c) */
#define IO_MAX_PHASES 16
#define IO_MAX_WIDTHS 16 /* must equal NN_MAX_WIDTHS (checked in io_config.c) */

/* How a per-group hyperparameter was written. */
enum {
    IO_HP_UNSET = 0, /* not given (a phase's lr: use groups.lr) */
    IO_HP_SCALAR,    /* one value for every group: v[0] */
    IO_HP_LIST,      /* one value per group: v[0..n) */
    IO_HP_SLICE1,    /* slice(b): v[0] = b; b/10 for every group but the last, b for the last */
    IO_HP_SLICE2,    /* slice(a, b): v[0] = a, v[1] = b; geometric from a to b */
};

/* A per-group hyperparameter (learning rate, weight decay, momentum) as written. */
typedef struct io_hparam {
    int kind;                /* IO_HP_* */
    double v[IO_MAX_GROUPS]; /* see the kinds above; unused entries are 0 */
    int n;                   /* values used in v: 1 (scalar, slice(b)), 2 (slice(a, b)), list */
    int line;                /* where it was written: > 0 a line of the file, -1 a --set, 0 a
                                default or a preset (for messages such as a wrong count) */
} io_hparam;

/* A learning-rate schedule; each field is used by the types noted. */
typedef struct io_schedule {
    char type[16];    /* one_cycle (default), cosine, step, constant */
    double pct_start; /* one_cycle: fraction of the steps spent warming up, in [0, 1] (0.25) */
    double div;       /* one_cycle: the start lr is max/div (25) */
    double div_final; /* one_cycle: the final lr is max/div_final (1e5) */
    double moms[3];   /* one_cycle: momentum start, middle, end (0.95, 0.85, 0.95) */
    double step_gamma; /* step: factor applied every step_epochs epochs (0.1) */
    int step_epochs;   /* step: epochs between factors (1) */
    double final_div;  /* cosine: the lr anneals from max to max/final_div (1e5) */
} io_schedule;

/* One phase of training: a number of epochs with its own freezing, lr and schedule. */
typedef struct io_phase {
    char name[32];        /* default "phase<i>", i counted from 0 */
    int epochs;           /* required, >= 1 */
    int freeze_to;        /* fastai's freeze_to(n), used when has_freeze_to */
    int has_freeze_to;    /* 0: groups.freeze_to */
    io_hparam lr;         /* IO_HP_UNSET: groups.lr */
    io_schedule schedule; /* used when has_schedule */
    int has_schedule;     /* 0: the top-level schedule */
} io_phase;

/* Where a key of the config was given, for messages about it after loading
 * (io_config_origin). */
typedef struct io_origin {
    int line;     /* > 0: its line in the file; -1: an override; 0: not given (its default) */
    char set[96]; /* line -1: the override's text, "--set key=value" (cut at 95 characters) */
} io_origin;

/* Room for one io_origin per row of io_config.c's key table (checked there). */
#define IO_CONFIG_ORIGINS 64

/* The whole effective configuration. Strings are NUL-terminated and zero-padded. */
typedef struct io_config {
    char path[512]; /* the file it was loaded from ("" for io_config_default) */
    struct {
        char arch[32];              /* required: resnet34, vgg16_bn, cnn, mlp, ... */
        int cut;                    /* -1: the architecture's default */
        int split[IO_MAX_GROUPS];   /* split points, strictly increasing, >= 1 */
        int nsplit;                 /* -1: the architecture's default */
        char head[16];              /* "" (the architecture's default), fastai, linear,
                                       original */
        int classes;                /* 0: from the data */
        int input[3];               /* C, H, W; all 0: from the data */
        int widths[IO_MAX_WIDTHS];  /* mlp hidden widths */
        int nwidths;                /* 0: the architecture's default */
        int small_stem;             /* resnet: 3x3 stride-1 conv1, no maxpool */
        char engine[16];            /* where the arithmetic runs: cpu (default: oneDNN) or
                                       reference (im2col + OpenBLAS) */
        char init_from[512];        /* "" or a checkpoint whose body is loaded by parameter
                                       name under this model's new head */
    } model;
    struct {
        io_hparam lr, wd, momentum; /* defaults: scalars 1e-3, 0.01, 0.9 */
        int freeze_to;              /* fastai's freeze_to(n) before training (0) */
        int train_bn;               /* BatchNorm parameters in frozen groups train, fastai
                                       v2's Learner default (true) */
        int bn_freeze;              /* BatchNorm of frozen groups in eval mode, its running
                                       statistics fixed: fastai's BnFreeze callback, fastai
                                       0.7's default; needs train_bn false (false) */
    } groups;
    struct {
        char type[16];     /* sgd (default), adamw */
        int nesterov;      /* sgd: Nesterov momentum (false) */
        double beta2;      /* adamw: 0.99 (fastai's); beta1 is groups.momentum */
        double eps;        /* adamw: 1e-8 (PyTorch's; fastai uses 1e-5) */
        int decay_bn_bias; /* weight decay on BatchNorm parameters and biases too (false) */
        int true_wd;       /* sgd: decoupled weight decay p *= 1 - lr wd, fastai's SGD (true);
                              false: coupled L2 as torch.optim.SGD. adamw: must be true */
        int clear_state;   /* clear the optimizer state at every phase that gives its own
                              freeze_to, as fastai's Learner.freeze_to does (true) */
    } optimizer;
    io_schedule schedule;
    struct {
        char train[512];   /* "fashion-mnist" (default), "synthetic", or an HDF5 path */
        char valid[512];   /* "fashion-mnist" (its test split), "synthetic" (its valid split),
                              an HDF5 path, or "" for none; default: data.train when that is a
                              built-in set, else "" */
        char dir[512];     /* Fashion-MNIST's directory (/usr/share/datasets/fashion-mnist) */
        int batch_size;    /* per rank (64) */
        struct {
            int crop_padding; /* random crop after zero padding by this many pixels (0: off) */
            int flip;         /* random horizontal flip (false) */
        } augment;
        double mean[4], std[4]; /* per-channel normalisation, on pixels scaled to [0, 1] */
        int nnorm;              /* values in mean and std; 0: the dataset's defaults */
        struct {
            int samples;            /* 512 */
            int classes;            /* 4 */
            int input[3];           /* 1 x 8 x 8 */
            unsigned long long seed; /* 0 */
        } synthetic;
    } data;
    struct {
        int epochs;              /* used when there are no phases (1) */
        unsigned long long seed; /* 0 */
        io_phase phases[IO_MAX_PHASES];
        int nphases;             /* 0: one run of train.epochs with groups.* and schedule */
        char preset[16];         /* "" or fine_tune (which fills phases) */
        struct {
            int epochs;          /* the unfrozen phase's epochs (default train.epochs) */
            double base_lr;      /* 2e-3 */
            int freeze_epochs;   /* the frozen phase's epochs (1; 0 skips that phase) */
            double lr_mult;      /* 100 */
        } fine_tune;
        int log_every;           /* steps between plain progress lines (50) */
        int max_steps;           /* steps per epoch, 0 = all (smoke runs) */
        int accumulate;          /* micro-batches per optimizer step, one reduction (1) */
        double clip_norm;        /* clip gradients to this global norm; 0 = off (0) */
    } train;
    struct {
        int overlap;             /* reduce a group while the groups below run backward (true) */
        double bucket_mb;        /* largest all-reduce in MiB; buckets never cross a group (4) */
        char progress[16];       /* who drives overlapped reductions: nonblocking (default:
                                    MPI_Iallreduce + MPI_Testall between layers) or thread */
        double timeout_s;        /* a wait inside a collective longer than this ends the job
                                    naming the ranks that stopped answering; 0: off (300) */
    } comm;
    struct {
        int every_steps;  /* save every N optimizer steps; 0: not by steps (0) */
        int every_epochs; /* save at the end of every N epochs; 0: not by epochs (1) */
        int keep;         /* checkpoints kept in run.dir/checkpoints, the newest (3) */
    } checkpoint;
    struct {
        char dir[512]; /* default runs/<model.arch> */
    } run;
    io_origin origins[IO_CONFIG_ORIGINS]; /* where each row of the key table was given, in
                                             table order (io_config_origin reads them); a
                                             write and reload changes them, not the values */
} io_config;

/* Fills *cfg with every default; model.arch becomes arch (NULL: "") and run.dir
 * "runs/<arch>" (or "runs"). Returns 0, or NN_ERANGE when arch is longer than 31 characters
 * (cfg then holds the defaults with an empty arch). */
int io_config_default(io_config *cfg, const char *arch);
/* The schedule section's defaults, from the key table (fastai v2's: one_cycle, pct_start
 * 0.25, div 25, div_final 1e5, moms 0.95/0.85/0.95, step gamma 0.1 every epoch, cosine to
 * 1e5). */
void io_schedule_default(io_schedule *s);

/* Loads the YAML file at path, applies the overrides sets[0..nsets) (each "key.path=value",
 * the value read as YAML, applied in order), checks every value and fills *cfg, defaults
 * included. train.preset is kept as read: trainer_config_load expands it. On failure *cfg holds the
 * defaults and the code is NN_EIO (the file cannot be read), NN_EFORMAT (YAML syntax,
 * duplicate keys, aliases), NN_EINVAL (unknown keys, wrong types, missing keys, a malformed
 * --set) or NN_ERANGE (a value out of range); nn_errmsg() gives FILE:LINE and the key path. */
int io_config_load(io_config *cfg, const char *path, const char *const *sets, int nsets);

/* Where key (a path of a row of the key table: "model.input", "train.accumulate") was given,
 * as every config message starts: "FILE:LINE: key" for a key of the file, "--set key=value:
 * key" for one an override gave (the override's own text), "FILE: key" for a key not given
 * (its default applies; "key" alone for a config not loaded from a file). A text longer than
 * len is cut. Returns 1 when the key was given, 0 when not, NN_EINVAL for a key that is not
 * a row of the table (a phase's keys are not). */
int io_config_origin(char *buf, size_t len, const io_config *cfg, const char *key);

/* Writes the complete effective config (every key, defaults included, comments where a
 * value has a special meaning) as YAML that io_config_load reads back to an equal struct
 * (apart from path and the hparams' line fields). Returns 0 or NN_EIO. */
int io_config_write(const io_config *cfg, FILE *f);

/* The same text as io_config_write in a malloc'd, NUL-terminated string (for printing and
 * for hashing across ranks); the caller frees *out. Returns 0, NN_ENOMEM or NN_EIO; *out is
 * NULL on failure. */
int io_config_to_string(char **out, const io_config *cfg);

/* The number of keys a config may hold, one per row of io_config.c's key table (a section's
 * keys, not the section: "schedule.div"; train.phases and then its items' keys as
 * "train.phases.*.epochs"). */
int io_config_key_count(void);
/* Writes the path of key i (0 <= i < io_config_key_count()), in the table's order, to buf.
 * Returns 0, NN_EINVAL for no buffer, or NN_ERANGE for an i out of range or a buffer too
 * small (which then holds a truncated path). */
int io_config_key_path(char *buf, size_t len, int i);

/* A test hook: the key comparisons (strcmp of a map key or a YAML anchor name) made so far in
 * this process by the readers of configs and sweep files. Loading a file or overrides of n
 * keys costs O(n) of them, however the keys are laid out (tests/test_config.c checks). */
unsigned long io_config_key_compares(void);

/* Formats a hyperparameter for logs and for YAML: "0.001", "[0.1, 0.2]", "slice(0.001)",
 * "slice(1e-05, 0.001)", "unset". Numbers use the shortest form that reads back exactly.
 * Returns 0, or NN_ERANGE when buf is too small (buf then holds a truncated string). */
int io_hparam_format(char *buf, size_t len, const io_hparam *hp);

#endif /* STRATA_IO_CONFIG_H */
