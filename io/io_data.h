/*
 * io_data: datasets beyond IDX, and what turns a dataset into per-rank, per-epoch batches.
 *
 *  - HDF5 datasets: /images (N, C, H, W) uint8 or float32, /labels (N) integer, optional
 *    root attributes `classes`, `mean` and `std`; a loader, an atomic writer, and an
 *    IDX -> HDF5 converter.
 *  - A synthetic, learnable dataset for tests.
 *  - io_data_open: one call that opens "fashion-mnist", "synthetic" or an .h5 path, and the
 *    default normalisation for each.
 *  - Augmentation (random crop with padding, horizontal flip) seeded per sample from
 *    (seed, epoch, sample index), so it does not depend on the number of ranks or on how
 *    samples are batched.
 *  - Sharding like PyTorch's DistributedSampler with drop_last, and the checks that go with
 *    it (batch size against a rank's share, labels against the model's class count).
 *
 * io/io.h includes this header; it may also be included on its own. Every function that
 * can fail returns 0 or a negative NN_E* code (nn/nn.h) and leaves a message for
 * nn_errmsg() that names the file (or the caller's `what`) and the offending value.
 * See docs/data.md.
 */
#ifndef STRATA_IO_DATA_H
#define STRATA_IO_DATA_H

#include <stdint.h>

#include "io/io.h"

/* ---------------------------------------------------------------------------------------
 * HDF5 datasets.
 */

/* Loads an HDF5 dataset file into *ds. The file holds
 *   /images  (N, C, H, W): uint8 (kept as bytes in ds->images) or any float type (converted
 *            to float32 in ds->images_f32; float32 is the documented type);
 *   /labels  (N): any integer type, read as int32; every label must lie in [0, 2^31);
 * and optionally, as root attributes, `classes` (integer: ds->classes, which must exceed
 * every label; without it ds->classes = 1 + max label) and `mean` and `std` (floats, C
 * values or one value for every channel, std > 0; both or neither: ds->norm_mean/norm_std).
 * Float images must be finite. *ds is written, not freed: pass a zeroed or freed struct.
 * On success the caller owns the arrays and releases them with io_dataset_free. On failure
 * *ds is zeroed, nothing is leaked, and the code is NN_EIO (the file cannot be opened),
 * NN_EFORMAT (not an HDF5 file; a missing dataset; a wrong rank, a zero dimension, an
 * unsupported type; image and label counts that differ; a negative or too large label; a
 * bad attribute; a non-finite float), NN_EHDF5 (the HDF5 library failed, e.g. a truncated
 * or damaged file: the message carries HDF5's own), NN_ENOMEM or NN_EINVAL (NULL). */
int io_h5_load(io_dataset *ds, const char *path);

/* Writes *ds to path in the format io_h5_load reads: /images as uint8 or float32 (whichever
 * ds holds), /labels as int32, both chunked and compressed (shuffle + deflate, with a
 * fletcher32 checksum); root attributes `format` ("strata-dataset"), `version` (1),
 * `classes`, and `mean`/`std` when ds->norm_mean is set. The file is written to a
 * temporary file in the same directory, flushed, and renamed over path, so a partial file
 * never replaces a good one. Returns 0, NN_EINVAL (a NULL or inconsistent dataset: not
 * exactly one image array, no labels, a non-positive dimension), NN_EIO (the temporary
 * file cannot be made, synced or renamed) or NN_EHDF5 (with HDF5's message); on failure
 * the temporary file is removed and path is untouched. */
int io_h5_save(const io_dataset *ds, const char *path);

/* Converts an IDX image file and its label file (each gzipped or not, as io_idx_load reads
 * them) into an HDF5 dataset at out_path (uint8 images, C = 1). Errors are those of
 * io_idx_load and io_h5_save. */
int io_data_convert(const char *out_path, const char *images_path, const char *labels_path);

/* ---------------------------------------------------------------------------------------
 * Synthetic data.
 */

/* The noise added to a class prototype, as a standard deviation (prototype values lie in
 * [-2, 2]). */
#define IO_SYNTHETIC_NOISE 0.5f

/* What io_data_open needs for the "synthetic" spec. */
typedef struct io_synthetic_opts {
    int samples;   /* samples in the split */
    int classes;   /* number of classes */
    int c, h, w;   /* per-sample shape */
    uint64_t seed; /* prototypes; the train split's samples; the valid split uses seed + 1 */
} io_synthetic_opts;

/* Makes a learnable float32 dataset in *ds (ds->images_f32, ds->classes = classes). Each
 * class has a fixed random prototype (per channel, the sum of two plane waves of random
 * frequency, direction and phase, so both dense and convolutional models can tell the
 * classes apart); each sample is its class's prototype plus N(0, IO_SYNTHETIC_NOISE^2)
 * noise per pixel. Labels are balanced (sample i gets i % classes, then the samples are
 * shuffled). Everything follows from seed alone. *ds is written, not freed. Returns 0,
 * NN_EINVAL (NULL, n, c, h, w or classes below 1, more than 1 << 28 elements) or
 * NN_ENOMEM; on failure *ds is zeroed. */
int io_synthetic_make(io_dataset *ds, int n, int c, int h, int w, int classes, uint64_t seed);

/* As io_synthetic_make, with the prototypes drawn from proto_seed and the labels' order
 * and the noise from sample_seed: two splits with the same proto_seed and different
 * sample_seeds are independent draws of the same task (io_synthetic_make(..., s) is
 * io_synthetic_make_split(..., s, s)). */
int io_synthetic_make_split(io_dataset *ds, int n, int c, int h, int w, int classes,
                            uint64_t proto_seed, uint64_t sample_seed);

/* ---------------------------------------------------------------------------------------
 * Opening a dataset by name.
 */

#define IO_DATA_FASHION_MNIST "fashion-mnist"
#define IO_DATA_SYNTHETIC "synthetic"

/* Opens the dataset that spec names into *ds:
 *   "fashion-mnist": Fashion-MNIST from fmnist_dir (NULL: Debian's directory), the train
 *                    split when split_train, else the test split;
 *   "synthetic":     io_synthetic_make_split with syn's shape, classes and samples, the
 *                    prototypes from syn->seed and the samples from syn->seed (train) or
 *                    syn->seed + 1 (the valid split);
 *   anything else:   the path of an HDF5 dataset file (io_h5_load; split_train is ignored:
 *                    each split is its own file).
 * Same ownership and errors as the loader it calls; NN_EINVAL for a NULL ds or spec, or
 * "synthetic" with a NULL syn. */
int io_data_open(io_dataset *ds, const char *spec, const char *fmnist_dir, int split_train,
                 const io_synthetic_opts *syn);

/* Writes the default normalisation of ds (opened from spec) to mean[0..c) and std[0..c):
 * "fashion-mnist": IO_FASHION_MNIST_MEAN / IO_FASHION_MNIST_STD; otherwise the file's
 * `mean`/`std` attributes when it had them (ds->norm_mean); otherwise float data is taken
 * as already normalised (mean 0, std 1) and byte data is mapped from [0, 255] to [-1, 1]
 * (mean 0.5, std 0.5 on x/255). spec may be NULL. */
void io_data_default_norm(const io_dataset *ds, const char *spec, float *mean, float *std);

/* ---------------------------------------------------------------------------------------
 * Augmentation.
 */

/* The normalised value of a 0 pixel per channel, pad[k] = -mean[k]/std[k] (the same for
 * byte and float data): the padding value of a random crop, as torchvision pads the image
 * with 0 before ToTensor and Normalize. pad, mean, std: c values each. */
void io_augment_pad_values(float *pad, int c, const float *mean, const float *std);

/* Augments one normalised sample x (c, h, w) in place: a random crop with padding
 * (torchvision's RandomCrop((h, w), padding=crop_padding): pad every side with
 * crop_padding pixels of value pad_value_per_channel[k] (NULL: 0), then take an h x w
 * window at a uniformly random offset in [0, 2 * crop_padding] on each axis), then, when
 * flip, a horizontal flip with probability 0.5. The randomness comes from one RNG seeded
 * from (seed, epoch, sample_index) only, so a sample gets the same augmentation whichever
 * rank or batch it lands in, and another one each epoch. The RNG draws do not depend on
 * crop_padding or flip, so turning one off does not change the other's choice.
 * crop_padding 0 and flip 0 leave x unchanged. A NULL x, a non-positive dimension or a
 * negative crop_padding is a caller's bug and aborts through NN_ASSERT. */
void io_augment(float *x, int c, int h, int w, int crop_padding, int flip,
                const float pad_value_per_channel[], uint64_t seed, int epoch,
                int sample_index);

/* ---------------------------------------------------------------------------------------
 * Sharding and checks.
 */

/* This rank's samples for one epoch, as PyTorch's DistributedSampler(shuffle=True,
 * drop_last=True) chooses them: one permutation of [0, n) from (seed, epoch) (Fisher-Yates
 * with nn_rng), cut to (n / world) * world samples so every rank gets an equal share, and
 * rank r takes perm[r], perm[r + world], perm[r + 2 * world], ...
 * out: room for n / world indices; *count receives n / world. The same (n, world, seed,
 * epoch) gives the same permutation on every rank and every call. Returns 0, NN_EINVAL
 * (NULL out or count, world < 1, rank outside [0, world), n < world: the message names n
 * and world) or NN_ENOMEM. */
int io_shard(int *out, int *count, int n, int rank, int world, uint64_t seed, int epoch);

/* Checks that a per-rank batch fits in a rank's share of the data (per_rank_samples, as
 * io_shard's count). Returns 0, or NN_EINVAL with "batch size B is larger than a rank's
 * share of S samples (S*W samples over W ranks)", or for a batch size, share or world
 * below 1. */
int io_check_batch(int per_rank_samples, int batch_size, int world);

/* Checks that every label of ds lies in [0, classes). what names the data in the message
 * ("the training data (train.h5)"; NULL: "the dataset"). Returns 0, NN_ERANGE naming the
 * first bad sample's index, its label and the class count, or NN_EINVAL (NULL ds, classes
 * below 1). */
int io_check_labels(const io_dataset *ds, int classes, const char *what);

#endif /* STRATA_IO_DATA_H */
