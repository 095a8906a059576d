/* Weights files: named float32 tensors in one HDF5 file, written atomically. The full
 * checkpoint (group table, optimizer and train state) builds on this later. Included by
 * io/io.h; include that instead. */
#ifndef STRATA_IO_WEIGHTS_H
#define STRATA_IO_WEIGHTS_H

#include <stddef.h>

typedef struct io_tensor_ref {
    const char *name; /* dataset name, e.g. "body.0.weight" */
    float *data;      /* numel floats: read from on save, written to on load */
    size_t numel;
} io_tensor_ref;

/* Writes every tensor as a 1-D float32 dataset with a fletcher32 checksum into a temporary
 * file beside path, fsyncs it and renames it over path, so a crash never leaves a partial
 * file at path. */
int io_weights_save(const char *path, const io_tensor_ref *t, int n);
/* Reads every tensor by name. A missing dataset or a size that differs is an error naming
 * it; datasets in the file that nobody asked for are ignored. */
int io_weights_load(const char *path, const io_tensor_ref *t, int n);

#endif
