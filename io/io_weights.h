/* Flat weights files, the weights.h5 of strata before 2026-12-03: one 1-D float32 dataset
 * per tensor name at the root. Only read now (trainer_weights_load's fallback); weights.h5
 * is a checkpoint of kind "weights" (io_ckpt.h). Included by io/io.h; include that instead. */
#ifndef STRATA_IO_WEIGHTS_H
#define STRATA_IO_WEIGHTS_H

#include <stddef.h>

typedef struct io_tensor_ref {
    const char *name; /* dataset name, e.g. "body.0.weight" */
    float *data;      /* numel floats, written to on load */
    size_t numel;
} io_tensor_ref;

/* Reads every tensor t[0..n) by name from the root of the HDF5 file at path. Datasets in the
 * file that nobody asked for are ignored. Errors name the file and the dataset: NN_EIO (not
 * readable), NN_EHDF5 (not HDF5, or a dataset that cannot be read), NN_ENOTFOUND (a tensor's
 * dataset is missing), NN_ESHAPE (a dataset whose size differs from the tensor's). */
int io_weights_load(const char *path, const io_tensor_ref *t, int n);

#endif
