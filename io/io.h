/*
 * io: reading and writing. Datasets (IDX here; HDF5, synthetic data, augmentation and
 * sharding in io_data.h), checkpoints (io_ckpt.h), old flat weights files (io_weights.h), the
 * run configuration (io_config.h) and sweep files (io_sweep.h). io reads and writes; it
 * decides nothing about training (fastai's presets are expanded by trainer/).
 *
 * Every function that can fail returns 0 or a negative NN_E* code (nn/nn.h) and leaves a
 * message for nn_errmsg() that names the file and the offending value.
 */
#ifndef STRATA_IO_H
#define STRATA_IO_H

#include <stdint.h>

/* ---------------------------------------------------------------------------------------
 * Datasets. A dataset is held in memory as it is stored, one sample after another: raw
 * bytes (IDX, uint8 HDF5) or float32 (float HDF5, synthetic data), and is converted to
 * normalised float batches on demand (io_dataset_to_float). See docs/data.md.
 */
typedef struct io_dataset {
    int n, c, h, w;       /* samples and per-sample shape (IDX images: c = 1) */
    uint8_t *images;      /* n*c*h*w bytes, owned, or NULL when the data is float32 */
    float *images_f32;    /* n*c*h*w floats, owned, or NULL when the data is bytes;
                           * exactly one of images and images_f32 is non-NULL */
    int32_t *labels;      /* n labels, owned */
    int classes;          /* 1 + max label, or the file's own class count (HDF5) */
    float *norm_mean;     /* c values, owned: the file's normalisation statistics, or NULL */
    float *norm_std;      /* c values, owned, non-NULL exactly when norm_mean is */
} io_dataset;

/* The most elements (samples x pixels, or labels) an IDX file may declare: 1 << 28. */
#define IO_IDX_MAX_ELEMS (1u << 28)

/* Loads an IDX3 unsigned-byte image file (magic 0x00000803: n, h, w) and its IDX1
 * unsigned-byte label file (magic 0x00000801: n), each gzipped or not, into *ds (c = 1,
 * classes = 1 + max label). *ds is written, not freed: pass a zeroed or freed struct.
 * On success the caller owns the arrays and releases them with io_dataset_free. On failure
 * *ds is zeroed, nothing is leaked, and the code is NN_EIO (cannot open or read a file),
 * NN_EFORMAT (bad magic, a zero or absurd dimension, a truncated or corrupt file, image and
 * label counts that differ), NN_ENOMEM or NN_EINVAL (a NULL argument). */
int io_idx_load(io_dataset *ds, const char *images_path, const char *labels_path);

/* Loads Fashion-MNIST's train (train != 0: 60000 samples) or test split (10000 samples)
 * from dir (NULL: /usr/share/datasets/fashion-mnist, Debian's dataset-fashion-mnist), named
 * {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz; where a .gz file is missing its
 * uncompressed twin is used. Same ownership and errors as io_idx_load; a missing file's
 * message says how to install the data. */
int io_fashion_mnist_load(io_dataset *ds, const char *dir, int train);

/* Frees what *ds owns and zeroes it. Safe on a zeroed or already freed dataset and on NULL. */
void io_dataset_free(io_dataset *ds);

/* Converts count samples to float NCHW, normalised per channel k: byte data as
 * (x/255 - mean[k])/std[k] (the arithmetic of torchvision's ToTensor then Normalize, in
 * float), float data as (x - mean[k])/std[k] (no /255).
 * out: (count, c, h, w), written in full. indices: count sample indices, each in [0, ds->n)
 * (a batch in any order, repeats allowed); NULL means samples 0..count-1. mean, std: ds->c
 * values each (for Fashion-MNIST: (float[]){IO_FASHION_MNIST_MEAN}).
 * An index out of range, a NULL mean or std, or a std[k] <= 0 is a caller's bug and aborts
 * through NN_ASSERT. */
void io_dataset_to_float(float *out, const io_dataset *ds, const int *indices, int count,
                         const float *mean, const float *std);

/* Fashion-MNIST's pixel statistics on [0, 1], measured over the whole training split (see
 * docs/data.md): use them with io_dataset_to_float. */
#define IO_FASHION_MNIST_MEAN 0.2860f
#define IO_FASHION_MNIST_STD 0.3530f

/* Writes the file at tmp; path is the final name, for messages. */
typedef int (*io_writer)(const char *tmp, const char *path, void *ud);
/* Creates a unique temporary file beside path (path.tmp.<pid>.<n>), lets write fill it,
 * fsyncs it, renames it over path and fsyncs the directory, so a crash never leaves a
 * partial file at path. The temporary file is removed on failure (io_h5util.c). */
int io_write_atomic(const char *path, io_writer write, void *ud);
/* Removes from dir the temporary files io_write_atomic left when its process died (killed
 * while writing a checkpoint, latest, config.yaml, status); a live process's are kept.
 * *removed (may be NULL) counts them; NN_EIO when dir cannot be listed. */
int io_clean_temps(const char *dir, int *removed);

#include "io/io_data.h"

#include "io/io_config.h"

#include "io/io_weights.h"

#include "io/io_ckpt.h"

#include "io/io_sweep.h"
#endif /* STRATA_IO_H */
