/*
 * fixture_h5: a tiny read-only HDF5 loader for the reference fixtures that
 * tests/make_fixtures.py writes (the .h5 files in tests/fixtures), for the C tests only.
 *
 * Every function returns 0 on success or a negative value on failure, after printing a
 * message to stderr that names the file and the dataset or attribute. HDF5's own error
 * stack printing is turned off by fx_open, so a missing name costs one clear line.
 */
#ifndef STRATA_FIXTURE_H5_H
#define STRATA_FIXTURE_H5_H

#include <stddef.h>
#include <stdint.h>

typedef struct fx_file fx_file;

/* Opens an HDF5 file read-only. On success *out owns the handle; free with fx_close. */
int fx_open(fx_file **out, const char *path);
/* Closes the file and frees the handle. NULL is a no-op. */
void fx_close(fx_file *f);

/* 1 when a dataset of that name ("/params/body.1.weight" or "input") exists, else 0. */
int fx_has(fx_file *f, const char *name);

/* Reads a float dataset (any float type on disk, converted to float32) into a malloc'd
 * array that the caller frees. dims (up to 4 dimensions, unused ones 0) and ndim may be
 * NULL. A scalar dataset has ndim 0 and one element. */
int fx_read_f32(fx_file *f, const char *name, float **data, int dims[4], int *ndim);
/* Reads an integer dataset as int32 into a malloc'd array; *n (may be NULL) gets the
 * element count. */
int fx_read_i32(fx_file *f, const char *name, int32_t **data, size_t *n);
/* Reads a string attribute of the root group (fixed or variable length) into buf,
 * NUL-terminated; fails if it does not fit in len bytes. */
int fx_read_attr_str(fx_file *f, const char *name, char *buf, size_t len);
/* Reads an integer attribute of the root group with at most n elements into vals (as
 * int64); *count (may be NULL) gets the number of elements it holds. */
int fx_read_attr_i64(fx_file *f, const char *name, int64_t *vals, size_t n, size_t *count);

/* Lists the names of the links in a group ("params"), in name order, as a malloc'd array
 * of *n malloc'd strings; free with fx_names_free. A missing group gives an empty list
 * (*names NULL, *n 0). */
int fx_names(fx_file *f, const char *group, char ***names, int *n);
void fx_names_free(char **names, int n);

/* Relative error ||a - b||_2 / max(||b||_2, 1e-12), computed in double. b is the
 * reference. A NaN anywhere in a gives NaN, which fails any `<=` comparison. */
double fx_rel_err(const float *a, const float *b, size_t n);

#endif /* STRATA_FIXTURE_H5_H */
