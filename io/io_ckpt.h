/* Checkpoints: one HDF5 file holding a model's weights together with its layer-group table,
 * the optimizer's state, the training position and every RNG state, the effective config and
 * the metrics so far. The layout is docs/checkpoint-format.md; readable with h5py and
 * h5dump. io writes and reads what it is given and decides nothing about training: the
 * trainer fills an io_ckpt from its model and optimizer and checks what it reads back.
 * Included by io/io.h; include that instead. */
#ifndef STRATA_IO_CKPT_H
#define STRATA_IO_CKPT_H

#include <stddef.h>
#include <stdint.h>

#define IO_CKPT_FORMAT "strata-checkpoint"
#define IO_CKPT_VERSION 1
#define IO_CKPT_MAX_GROUPS 32 /* NN_MAX_GROUPS (asserted in trainer/trainer_internal.h) */
#define IO_CKPT_MAX_STATES 2  /* optimizer state tensors per parameter (AdamW: 2) */

/* A parameter: its PyTorch name ("body.4.0.conv1.weight"), its group and shape, and where
 * its values and optimizer state live. On save every pointer is read; on load (info of an
 * open reader) the pointers are NULL. */
typedef struct io_ckpt_param {
    char name[128];
    int group;
    int ndim;
    int shape[4];
    size_t numel;
    float *data;
    float *state[IO_CKPT_MAX_STATES];
} io_ckpt_param;

/* A named float buffer that is not trained (BatchNorm running statistics). */
typedef struct io_ckpt_buffer {
    char name[128];
    size_t numel;
    float *data;
} io_ckpt_buffer;

/* One row of the group table. */
typedef struct io_ckpt_group {
    char name[16];         /* "body0", "body1", ..., "head" */
    int first, last;       /* body children [first, last]; -1, -1 for the head */
    int frozen;
    double lr, wd, momentum; /* the group's maximum lr, weight decay and momentum */
    size_t numel;          /* parameter elements */
    int nparams;
} io_ckpt_group;

/* Where training stands; has == 0 for a weights-only checkpoint (a converted model). */
typedef struct io_ckpt_train {
    int has;
    int phase;              /* the phase running (0-based) */
    int epoch;              /* epochs completed over all phases (the data order's epoch) */
    int epoch_in_phase;     /* epochs completed within the phase */
    long step_in_epoch;     /* optimizer steps done in the current epoch */
    long phase_step;        /* the schedule's position: steps done in the phase */
    long global_step;       /* optimizer steps done in all */
    long steps_per_epoch;
    int global_batch;       /* samples per optimizer step over all ranks and micro-batches */
    uint64_t seed;          /* train.seed: data order and augmentation */
    int finished;           /* 1 once the last phase ended */
    int nrng;               /* RNG states, one per rank of world_size */
    uint64_t (*rng)[4];     /* xoshiro256** states (dropout), rank order; owned by the
                               reader on load */
} io_ckpt_train;

typedef struct io_ckpt {
    /* Filled on load only (written from the running library on save). */
    char strata_version[32], hdf5_version[32], created[32], kind[16];
    int world_size;
    const char *config;     /* the effective config (YAML); owned by the reader on load */
    const char *metrics;    /* metrics.jsonl so far, or NULL; owned by the reader on load */
    /* model */
    char arch[32];
    int input[3];
    int classes, cut;
    char head[16];          /* "default", "fastai", "linear" or "original" */
    int small_stem;         /* resnet: the 3x3 stride-1 stem without max pool */
    int ngroups;
    io_ckpt_group groups[IO_CKPT_MAX_GROUPS];
    io_ckpt_param *params;  /* in group then slab order */
    int nparams;
    io_ckpt_buffer *buffers;
    int nbuffers;
    /* optimizer; opt_type "" for none (weights only) */
    char opt_type[16];
    int nesterov, decay_bn_bias;
    double beta2, eps;
    int nstates;            /* state tensors per parameter */
    char state_names[IO_CKPT_MAX_STATES][24]; /* "momentum_buffer"; "exp_avg", "exp_avg_sq" */
    long opt_step[IO_CKPT_MAX_GROUPS], opt_step_bn[IO_CKPT_MAX_GROUPS];
    io_ckpt_train train;
} io_ckpt;

/* Writes ck to path atomically (a temporary file in the same directory, fsync, rename, fsync
 * of the directory), every dataset with a fletcher32 checksum: a crash at any moment leaves
 * either the old file or the new one at path. The file streams to disk as it is made (no
 * image of it in memory). A failed write (a full disk, ulimit -f, EIO) is NN_EIO naming path,
 * the temporary file, what was being written and the system's cause; path is untouched. */
int io_ckpt_save(const char *path, const io_ckpt *ck);

/* Memory a process keeps from one save to the next: the buffer a tensor and its checksum
 * are written from (as large as the largest tensor), so that saves after the first touch no
 * fresh memory. The file itself is never held in memory: a save streams it to disk.
 * Zero-initialise; io_ckpt_scratch_free releases it. */
typedef struct io_ckpt_scratch {
    unsigned char *chunk;
    size_t chunk_cap;
} io_ckpt_scratch;
void io_ckpt_scratch_free(io_ckpt_scratch *s);
/* io_ckpt_save keeping its memory in keep (NULL: io_ckpt_save). */
int io_ckpt_save_reuse(const char *path, const io_ckpt *ck, io_ckpt_scratch *keep);

/* An open checkpoint. io_ckpt_open checks the format name and version and reads the tables
 * (root attributes, config, groups, parameter names and shapes, optimizer settings, train
 * state, metrics) into an io_ckpt whose data pointers are NULL; tensors are read on demand.
 * Errors name the file and what is wrong: not readable, not HDF5, not a strata checkpoint,
 * an unknown version, a missing or malformed table. Free with io_ckpt_close. */
typedef struct io_ckpt_reader io_ckpt_reader;
int io_ckpt_open(io_ckpt_reader **out, const char *path);
void io_ckpt_close(io_ckpt_reader *r);
/* The tables read by io_ckpt_open, owned by r. */
const io_ckpt *io_ckpt_info(const io_ckpt_reader *r);
const char *io_ckpt_path(const io_ckpt_reader *r);
/* The index of the parameter (or buffer) called name in the info, or -1. */
int io_ckpt_find_param(const io_ckpt_reader *r, const char *name);
int io_ckpt_find_buffer(const io_ckpt_reader *r, const char *name);
/* Reads parameter i's values (state < 0) or its optimizer state tensor `state` into
 * out[0..numel), numel being the info's; fletcher32 is checked. A dataset that is not
 * float32 is refused (NN_EFORMAT naming it and its type), never converted. */
int io_ckpt_read_param(io_ckpt_reader *r, int i, int state, float *out);
int io_ckpt_read_buffer(io_ckpt_reader *r, int i, float *out);
/* Reads every dataset of the file and checks its checksum; *ndatasets and *nbytes (may be
 * NULL) count what was read. The first failure is returned, naming the dataset; a dataset
 * stored without a checksum (a file rewritten by another tool) fails too (NN_EFORMAT, naming
 * the first five), since nothing vouches for its bytes. */
int io_ckpt_verify(io_ckpt_reader *r, int *ndatasets, size_t *nbytes);

/* Checkpoint files of a run directory: DIR/ckpt-<global step, 9 digits>.h5 and DIR/latest,
 * a one-line text file naming the newest complete checkpoint, itself replaced atomically. */
/* Writes DIR/latest naming file (a name within dir). */
int io_ckpt_set_latest(const char *dir, const char *file);
/* The path of the checkpoint DIR/latest names in out; NN_ENOTFOUND when there is none. */
int io_ckpt_latest(char *out, size_t len, const char *dir);
/* Where `--resume auto` continues: the newest ckpt-*.h5 of a directory that opens as a strata
 * checkpoint, whatever DIR/latest says. latest can be missing (deleted, or a crash between a
 * save's rename and latest's update) or name an older file; then why says so, and a newer
 * file that does not open is skipped and named in why, never taken for no checkpoint. */
typedef struct io_ckpt_found {
    char path[1100];  /* DIR/ckpt-<step>.h5 */
    int latest_ok;    /* 1: DIR/latest names that file */
    int skipped;      /* newer ckpt-*.h5 files that do not open */
    char why[1400];   /* "" when latest_ok and nothing was skipped; else what was not used */
} io_ckpt_found;
/* Fills *out; NN_ENOTFOUND when dir holds no checkpoint that opens (naming the newest one's
 * error when there are files), NN_EIO when dir cannot be listed. */
int io_ckpt_find_resume(io_ckpt_found *out, const char *dir);
/* Removes all but the newest keep ckpt-*.h5 files of dir (never the one latest names) and
 * temporary files left by saves that died. *removed (may be NULL) counts the files. */
int io_ckpt_prune(const char *dir, int keep, int *removed);

#endif
