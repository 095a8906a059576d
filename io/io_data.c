/*
 * HDF5 datasets, synthetic data, opening a dataset by name, augmentation and sharding.
 * See io_data.h for each function's contract and docs/data.md for the formats.
 *
 * HDF5 errors: every public function here that calls HDF5 turns the library's automatic
 * error printing off for the duration of the call (and restores whatever was set before),
 * and turns a failure into a strata error whose message names the file, what was being
 * done, and the text HDF5 left on its error stack.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "io/io_data.h"
#include "io/io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"

/* ---------------------------------------------------------------------------------------
 * Seeding. Each use of randomness here gets its own stream, keyed by a tag and the values
 * that must determine it, hashed through splitmix64's finaliser.
 */

#define IO__TAG_SHARD 0x5348415244000000ull    /* "SHARD" */
#define IO__TAG_AUGMENT 0x4155474d00000000ull  /* "AUGM" */
#define IO__TAG_PROTO 0x50524f544f000000ull    /* "PROTO" */
#define IO__TAG_SAMPLES 0x53414d504c000000ull  /* "SAMPL" */

static uint64_t io__mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One seed from a tag and three values; changing any of them changes the stream. */
static uint64_t io__key(uint64_t tag, uint64_t a, uint64_t b, uint64_t c)
{
    return io__mix64(io__mix64(io__mix64(io__mix64(tag) ^ a) ^ b) ^ c);
}

/* A uniform integer in [0, bound), bound >= 1, without modulo bias. Draws at least once,
 * even for bound 1, so the stream's position does not depend on bound. */
static uint64_t io__below(nn_rng *rng, uint64_t bound)
{
    const uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound */
    uint64_t r;
    do r = nn_rng_next(rng);
    while (r < threshold);
    return r % bound;
}

/* Fisher-Yates: perm becomes a uniform permutation of [0, n). */
static void io__permute(int *perm, int n, nn_rng *rng)
{
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)io__below(rng, (uint64_t)i + 1);
        const int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---------------------------------------------------------------------------------------
 * HDF5 helpers.
 */

/* HDF5's automatic error printing, saved on entry and restored on exit. */


/* nn_err(NN_EHDF5, "<path>: <doing>: <HDF5's message>"). */

/* A short name for an HDF5 type as numpy would spell it ("uint8", "float64", "string"). */
static const char *io__h5_type_name(hid_t type, char *buf, size_t len)
{
    const size_t bits = H5Tget_size(type) * 8;
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        snprintf(buf, len, "%s%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int", bits);
        break;
    case H5T_FLOAT: snprintf(buf, len, "float%zu", bits); break;
    case H5T_STRING: snprintf(buf, len, "string"); break;
    case H5T_ENUM: snprintf(buf, len, "enum (a bool?)"); break;
    case H5T_COMPOUND: snprintf(buf, len, "compound"); break;
    case H5T_ARRAY: snprintf(buf, len, "array"); break;
    default: snprintf(buf, len, "an HDF5 type of class %d", (int)H5Tget_class(type)); break;
    }
    return buf;
}

static void io__h5_close_id(hid_t *id, herr_t (*close)(hid_t))
{
    if (*id >= 0) close(*id);
    *id = -1;
}

/* Opens /name as a dataset and reads its shape. Returns 0, or NN_EFORMAT when it is
 * missing or not a dataset, or when its rank is not want_rank (the message shows
 * the expected layout), or NN_EHDF5. */
static int io__h5_open_ds(hid_t file, const char *path, const char *name, int want_rank,
                          const char *layout, hid_t *ds, hsize_t *dims)
{
    *ds = -1;
    char link[64];
    snprintf(link, sizeof link, "/%s", name);
    htri_t exists = H5Lexists(file, link, H5P_DEFAULT);
    if (exists < 0) return io__h5_fail(path, "cannot look for a dataset");
    if (exists == 0)
        return nn_err(NN_EFORMAT,
                      "%s: no /%s dataset (a strata dataset file holds /images (N, C, H, W) "
                      "and /labels (N))",
                      path, name);
    hid_t obj = H5Oopen(file, link, H5P_DEFAULT);
    if (obj < 0) return io__h5_fail(path, "cannot open a dataset");
    const H5I_type_t kind = H5Iget_type(obj);
    H5Oclose(obj);
    if (kind != H5I_DATASET)
        return nn_err(NN_EFORMAT, "%s: /%s is not a dataset (a group?); expected %s", path, name,
                      layout);

    *ds = H5Dopen2(file, link, H5P_DEFAULT);
    if (*ds < 0) return io__h5_fail(path, "cannot open a dataset");
    hid_t space = H5Dget_space(*ds);
    if (space < 0) return io__h5_fail(path, "cannot read a dataset's shape");
    const int rank = H5Sget_simple_extent_ndims(space);
    int rc = 0;
    if (rank < 0) {
        rc = io__h5_fail(path, "cannot read a dataset's rank");
    } else if (rank != want_rank) {
        hsize_t d[H5S_MAX_RANK];
        char shape[160] = "";
        size_t at = 0;
        if (H5Sget_simple_extent_dims(space, d, NULL) == rank)
            for (int i = 0; i < rank && at < sizeof shape; i++)
                at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%llu", i ? ", " : "",
                                       (unsigned long long)d[i]);
        rc = nn_err(NN_EFORMAT, "%s: /%s has rank %d (shape (%s)), expected rank %d: %s", path,
                    name, rank, shape, want_rank, layout);
    } else if (H5Sget_simple_extent_dims(space, dims, NULL) != rank) {
        rc = io__h5_fail(path, "cannot read a dataset's shape");
    }
    H5Sclose(space);
    if (rc) io__h5_close_id(ds, H5Dclose);
    return rc;
}

/* Reads a root attribute as values of mem_type (int64 or double) into vals, after checking
 * its class (want_class) and its element count (1 to max; expected says what is wanted, for
 * the message). *found is 0 when the attribute does not exist (nothing is read, 0 is
 * returned). *count receives the number of elements. */
static int io__h5_read_attr(hid_t file, const char *path, const char *name,
                            H5T_class_t want_class, hid_t mem_type, void *vals, size_t max,
                            const char *expected, size_t *count, int *found)
{
    *found = 0;
    *count = 0;
    htri_t exists = H5Aexists(file, name);
    if (exists < 0) return io__h5_fail(path, "cannot look for an attribute");
    if (exists == 0) return 0;
    *found = 1;

    int rc = 0;
    hid_t attr = H5Aopen(file, name, H5P_DEFAULT), type = -1, space = -1;
    if (attr < 0) return io__h5_fail(path, "cannot open an attribute");
    type = H5Aget_type(attr);
    space = H5Aget_space(attr);
    if (type < 0 || space < 0) {
        rc = io__h5_fail(path, "cannot read an attribute's type or shape");
        goto done;
    }
    if (H5Tget_class(type) != want_class) {
        char tn[48];
        rc = nn_err(NN_EFORMAT, "%s: attribute %s has type %s, expected %s", path, name,
                    io__h5_type_name(type, tn, sizeof tn),
                    want_class == H5T_INTEGER ? "an integer" : "float values");
        goto done;
    }
    const hssize_t n = H5Sget_simple_extent_npoints(space);
    if (n < 0) {
        rc = io__h5_fail(path, "cannot read an attribute's size");
        goto done;
    }
    if (n < 1 || (size_t)n > max) {
        rc = nn_err(NN_EFORMAT, "%s: attribute %s has %lld values, expected %s", path, name,
                    (long long)n, expected);
        goto done;
    }
    if (H5Aread(attr, mem_type, vals) < 0) {
        rc = io__h5_fail(path, "cannot read an attribute");
        goto done;
    }
    *count = (size_t)n;
done:
    io__h5_close_id(&space, H5Sclose);
    io__h5_close_id(&type, H5Tclose);
    io__h5_close_id(&attr, H5Aclose);
    return rc;
}

/* Reads the optional `mean` and `std` attributes into ds->norm_mean/norm_std (c values;
 * a single value is used for every channel). */
static int io__h5_read_norm(hid_t file, const char *path, io_dataset *ds)
{
    const size_t c = (size_t)ds->c;
    double *vals[2] = {malloc(c * sizeof(double)), malloc(c * sizeof(double))};
    size_t count[2] = {0, 0};
    int found[2] = {0, 0}, rc = 0;
    const char *names[2] = {"mean", "std"};
    if (vals[0] == NULL || vals[1] == NULL) {
        rc = nn_err(NN_ENOMEM, "%s: cannot allocate %zu channel statistics", path, c);
        goto done;
    }
    char expected[96];
    snprintf(expected, sizeof expected, "one per channel (%zu) or one for all", c);
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = io__h5_read_attr(file, path, names[i], H5T_FLOAT, H5T_NATIVE_DOUBLE, vals[i], c,
                              expected, &count[i], &found[i]);
    if (rc) goto done;
    if (found[0] != found[1]) {
        rc = nn_err(NN_EFORMAT,
                    "%s: the file has a %s attribute but no %s (give both or neither)", path,
                    found[0] ? "mean" : "std", found[0] ? "std" : "mean");
        goto done;
    }
    if (!found[0]) goto done;
    for (int i = 0; i < 2; i++) {
        if (count[i] != 1 && count[i] != c) {
            rc = nn_err(NN_EFORMAT,
                        "%s: attribute %s has %zu values but the images have %zu channels "
                        "(give one value per channel, or one for all)",
                        path, names[i], count[i], c);
            goto done;
        }
    }
    ds->norm_mean = malloc(c * sizeof(float));
    ds->norm_std = malloc(c * sizeof(float));
    if (ds->norm_mean == NULL || ds->norm_std == NULL) {
        rc = nn_err(NN_ENOMEM, "%s: cannot allocate %zu channel statistics", path, c);
        goto done;
    }
    for (size_t k = 0; k < c; k++) {
        const double m = vals[0][count[0] == 1 ? 0 : k], s = vals[1][count[1] == 1 ? 0 : k];
        if (!isfinite(m) || !isfinite(s) || !(s > 0.0)) {
            rc = nn_err(NN_EFORMAT,
                        "%s: channel %zu has mean %g and std %g (both must be finite and the "
                        "std above 0)",
                        path, k, m, s);
            goto done;
        }
        ds->norm_mean[k] = (float)m;
        ds->norm_std[k] = (float)s;
    }
done:
    free(vals[0]);
    free(vals[1]);
    return rc;
}

/* Reads /labels (n values, any integer type) into ds->labels, checking each label. */
static int io__h5_read_labels(hid_t lds, const char *path, io_dataset *ds, int32_t *max_label)
{
    const size_t n = (size_t)ds->n;
    int64_t *wide = malloc(n * sizeof *wide);
    ds->labels = malloc(n * sizeof *ds->labels);
    int rc = 0;
    if (wide == NULL || ds->labels == NULL) {
        rc = nn_err(NN_ENOMEM, "%s: cannot allocate %zu labels", path, n);
        goto done;
    }
    /* HDF5 converts any integer type to int64; values beyond its range saturate, which the
     * range check below then reports. */
    if (H5Dread(lds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, wide) < 0) {
        rc = io__h5_fail(path, "cannot read /labels");
        goto done;
    }
    int32_t mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (wide[i] < 0) {
            rc = nn_err(NN_EFORMAT, "%s: /labels[%zu] is %lld (labels must be 0 or more)", path,
                        i, (long long)wide[i]);
            goto done;
        }
        if (wide[i] >= INT32_MAX) { /* classes = max label + 1 must fit an int */
            rc = nn_err(NN_EFORMAT, "%s: /labels[%zu] is %lld (labels must be below %d)", path, i,
                        (long long)wide[i], INT32_MAX);
            goto done;
        }
        ds->labels[i] = (int32_t)wide[i];
        if (ds->labels[i] > mx) mx = ds->labels[i];
    }
    *max_label = mx;
done:
    free(wide);
    return rc;
}

/* Checks that path opens and is an HDF5 file, and opens it read-only into *file. 0, or an
 * error naming path (*file is then not open). */
static int io__h5_open_file(const char *path, hid_t *file)
{
    {
        const int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return nn_err(NN_EIO, "cannot open %s: %s", path, strerror(errno));
        close(fd);
    }
#if H5_VERSION_GE(1, 12, 0)
    const htri_t is_h5 = H5Fis_accessible(path, H5P_DEFAULT);
#else
    const htri_t is_h5 = H5Fis_hdf5(path);
#endif
    if (is_h5 == 0)
        return nn_err(NN_EFORMAT, "%s: not an HDF5 file (no HDF5 signature found)", path);
    if (is_h5 < 0) return io__h5_fail(path, "cannot check whether it is an HDF5 file");
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return io__h5_fail(path, "cannot open the HDF5 file");
    return 0;
}

/* Opens /images into *ids and its type into *itype (both the caller's to close, even on
 * failure) and checks its shape (idims, no dimension 0, sizes that fit an int) and its type
 * (*is_u8: uint8, else a float type). 0, or an error naming path. */
static int io__h5_check_images(hid_t file, const char *path, hid_t *ids, hid_t *itype,
                               hsize_t *idims, int *is_u8)
{
    const char *image_layout = "/images (N, C, H, W), uint8 or float32";
    int rc = io__h5_open_ds(file, path, "images", 4, image_layout, ids, idims);
    if (rc) return rc;
    for (int i = 0; i < 4; i++) {
        if (idims[i] == 0)
            return nn_err(NN_EFORMAT,
                          "%s: /images dimension %d of 4 is 0 (every dimension must be at least 1)",
                          path, i);
    }
    if (idims[0] > INT_MAX || idims[1] > INT_MAX || idims[2] > INT_MAX || idims[3] > INT_MAX ||
        idims[1] * idims[2] * idims[3] > INT_MAX) {
        return nn_err(NN_EFORMAT,
                      "%s: /images has shape (%llu, %llu, %llu, %llu): too large (at most %d "
                      "samples of at most %d elements each)",
                      path, (unsigned long long)idims[0], (unsigned long long)idims[1],
                      (unsigned long long)idims[2], (unsigned long long)idims[3], INT_MAX, INT_MAX);
    }
    *itype = H5Dget_type(*ids);
    if (*itype < 0) return io__h5_fail(path, "cannot read the type of /images");
    const H5T_class_t icls = H5Tget_class(*itype);
    *is_u8 = icls == H5T_INTEGER && H5Tget_size(*itype) == 1 &&
             H5Tget_sign(*itype) == H5T_SGN_NONE;
    if (!*is_u8 && icls != H5T_FLOAT) {
        char tn[48];
        return nn_err(NN_EFORMAT,
                      "%s: /images has type %s, which strata does not read (expected uint8 or "
                      "float32)",
                      path, io__h5_type_name(*itype, tn, sizeof tn));
    }
    return 0;
}

/* Opens /labels into *lds (the caller's to close, even on failure) and checks, before any
 * image is read, that it holds n values of an integer type. 0, or an error naming path. */
static int io__h5_check_labels(hid_t file, const char *path, hsize_t n, hid_t *lds)
{
    const char *label_layout = "/labels (N), integer";
    hsize_t ldims[1];
    int rc = io__h5_open_ds(file, path, "labels", 1, label_layout, lds, ldims);
    if (rc) return rc;
    if (ldims[0] != n) {
        return nn_err(NN_EFORMAT,
                      "%s: /images holds %llu samples but /labels holds %llu labels (the counts "
                      "must match)",
                      path, (unsigned long long)n, (unsigned long long)ldims[0]);
    }
    hid_t ltype = H5Dget_type(*lds);
    if (ltype < 0) return io__h5_fail(path, "cannot read the type of /labels");
    if (H5Tget_class(ltype) != H5T_INTEGER) {
        char tn[48];
        rc = nn_err(NN_EFORMAT, "%s: /labels has type %s, expected an integer type", path,
                    io__h5_type_name(ltype, tn, sizeof tn));
    }
    H5Tclose(ltype);
    return rc;
}

/* Sets ds's shape from idims and reads /images (ids) into ds->images (uint8, is_u8) or
 * ds->images_f32 (every value finite), malloc'd and owned by ds. 0, or an error naming
 * path. */
static int io__h5_read_images(hid_t ids, const char *path, io_dataset *ds, const hsize_t *idims,
                              int is_u8)
{
    ds->n = (int)idims[0];
    ds->c = (int)idims[1];
    ds->h = (int)idims[2];
    ds->w = (int)idims[3];
    const size_t elems = (size_t)idims[0] * idims[1] * idims[2] * idims[3];
    if (is_u8) {
        ds->images = malloc(elems);
        if (ds->images == NULL)
            return nn_err(NN_ENOMEM, "%s: cannot allocate %zu bytes for /images", path, elems);
        if (H5Dread(ids, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->images) < 0)
            return io__h5_fail(path, "cannot read /images");
        return 0;
    }
    ds->images_f32 = malloc(elems * sizeof(float));
    if (ds->images_f32 == NULL)
        return nn_err(NN_ENOMEM, "%s: cannot allocate %zu floats for /images", path, elems);
    if (H5Dread(ids, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds->images_f32) < 0)
        return io__h5_fail(path, "cannot read /images");
    const size_t per = elems / idims[0];
    for (size_t i = 0; i < elems; i++) {
        if (!isfinite(ds->images_f32[i])) {
            return nn_err(NN_EFORMAT,
                          "%s: /images holds a non-finite value (%g) in sample %zu, element "
                          "%zu",
                          path, (double)ds->images_f32[i], i / per, i % per);
        }
    }
    return 0;
}

/* Sets ds->classes: the root attribute classes when the file has one (at least 1, above
 * every label), else max_label + 1. 0, or an error naming path. */
static int io__h5_read_classes(hid_t file, const char *path, io_dataset *ds, int32_t max_label)
{
    int64_t classes = 0;
    size_t count = 0;
    int found = 0;
    int rc = io__h5_read_attr(file, path, "classes", H5T_INTEGER, H5T_NATIVE_INT64, &classes, 1,
                              "a single value", &count, &found);
    if (rc) return rc;
    if (!found) {
        ds->classes = max_label + 1;
        return 0;
    }
    if (classes < 1 || classes > INT_MAX)
        return nn_err(NN_EFORMAT, "%s: attribute classes is %lld (expected 1 or more)", path,
                      (long long)classes);
    if (max_label >= classes) {
        for (int i = 0; i < ds->n; i++) {
            if (ds->labels[i] == max_label) {
                return nn_err(NN_EFORMAT,
                              "%s: sample %d has label %d, but the file's classes attribute "
                              "is %lld (labels must lie in [0, classes))",
                              path, i, (int)max_label, (long long)classes);
            }
        }
    }
    ds->classes = (int)classes;
    return 0;
}

/* The body of io_h5_load, between the quiet begin and end: the file, /images and /labels
 * checked before anything is read, the images, the labels, then the optional attributes
 * (classes, the normalisation statistics). Everything it opens is closed on every path. */
static int io__h5_load(io_dataset *ds, const char *path)
{
    hid_t file = -1, ids = -1, lds = -1, itype = -1;
    int rc = io__h5_open_file(path, &file);
    if (rc) return rc;
    hsize_t idims[4];
    int is_u8 = 0;
    int32_t max_label = 0;
    rc = io__h5_check_images(file, path, &ids, &itype, idims, &is_u8);
    if (!rc) rc = io__h5_check_labels(file, path, idims[0], &lds);
    if (!rc) rc = io__h5_read_images(ids, path, ds, idims, is_u8);
    if (!rc) rc = io__h5_read_labels(lds, path, ds, &max_label);
    if (!rc) rc = io__h5_read_classes(file, path, ds, max_label);
    if (!rc) rc = io__h5_read_norm(file, path, ds);

    io__h5_close_id(&itype, H5Tclose);
    io__h5_close_id(&lds, H5Dclose);
    io__h5_close_id(&ids, H5Dclose);
    if (file >= 0 && H5Fclose(file) < 0 && rc == 0)
        rc = io__h5_fail(path, "cannot close the file");
    return rc;
}

int io_h5_load(io_dataset *ds, const char *path)
{
    if (ds == NULL) return nn_err(NN_EINVAL, "io_h5_load: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (path == NULL) return nn_err(NN_EINVAL, "io_h5_load: the path is NULL");
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    const int rc = io__h5_load(ds, path);
    io__h5_quiet_end(&q);
    if (rc) io_dataset_free(ds);
    return rc;
}

/* Chunk dimensions of about target bytes for an array of dims (rank dimensions) of
 * elem-byte elements: whole trailing dimensions, and as many of the leading one as fit. */
static void io__chunk_dims(hsize_t *chunk, const hsize_t *dims, int rank, size_t elem,
                           size_t target)
{
    for (int d = 0; d < rank; d++) chunk[d] = dims[d];
    for (int d = 0; d < rank; d++) {
        size_t rest = elem;
        for (int e = d + 1; e < rank; e++) rest *= (size_t)dims[e];
        if (rest <= target) {
            hsize_t k = (hsize_t)(target / rest);
            chunk[d] = k < 1 ? 1 : (k > dims[d] ? dims[d] : k);
            return;
        }
        chunk[d] = 1;
    }
}

/* Creates /name with the given shape and memory type (stored as file_type), chunked and
 * compressed (shuffle, deflate, fletcher32), and writes data. */
static int io__h5_write_ds(hid_t file, const char *path, const char *name, int rank,
                           const hsize_t *dims, hid_t file_type, hid_t mem_type, size_t elem,
                           const void *data)
{
    int rc = 0;
    hsize_t chunk[4];
    io__chunk_dims(chunk, dims, rank, elem, (size_t)1 << 20);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    char doing[96];
    snprintf(doing, sizeof doing, "cannot write /%s", name);
    if (dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, 4) < 0 || H5Pset_fletcher32(dcpl) < 0 ||
        io__h5_dset_write(file, name, file_type, mem_type, rank, dims, dcpl, data) < 0)
        rc = io__h5_fail(path, doing);
    io__h5_close_id(&dcpl, H5Pclose);
    return rc;
}

/* Writes a root attribute of n values (n == 0: a scalar) of mem_type, stored as file_type. */
static int io__h5_write_attr(hid_t file, const char *path, const char *name, hid_t file_type,
                             hid_t mem_type, size_t n, const void *vals)
{
    hsize_t dim = n;
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t attr = space < 0 ? -1 : H5Acreate2(file, name, file_type, space, H5P_DEFAULT,
                                             H5P_DEFAULT);
    int rc = 0;
    if (attr < 0 || H5Awrite(attr, mem_type, vals) < 0) {
        char doing[96];
        snprintf(doing, sizeof doing, "cannot write attribute %s", name);
        rc = io__h5_fail(path, doing);
    }
    io__h5_close_id(&attr, H5Aclose);
    io__h5_close_id(&space, H5Sclose);
    return rc;
}

/* Writes the whole dataset into a new HDF5 file at tmp (path is for messages). */
static int io__h5_write_file(const io_dataset *ds, const char *tmp, const char *path)
{
    hid_t file = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) return io__h5_fail(path, "cannot create the temporary file");
    const hsize_t idims[4] = {(hsize_t)ds->n, (hsize_t)ds->c, (hsize_t)ds->h, (hsize_t)ds->w};
    const hsize_t ldims[1] = {(hsize_t)ds->n};
    int rc;
    if (ds->images != NULL)
        rc = io__h5_write_ds(file, path, "images", 4, idims, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1,
                             ds->images);
    else
        rc = io__h5_write_ds(file, path, "images", 4, idims, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                             sizeof(float), ds->images_f32);
    if (!rc)
        rc = io__h5_write_ds(file, path, "labels", 1, ldims, H5T_STD_I32LE, H5T_NATIVE_INT32,
                             sizeof(int32_t), ds->labels);

    const int32_t classes = ds->classes, version = 1;
    if (!rc)
        rc = io__h5_write_attr(file, path, "classes", H5T_STD_I32LE, H5T_NATIVE_INT32, 0,
                               &classes);
    if (!rc)
        rc = io__h5_write_attr(file, path, "version", H5T_STD_I32LE, H5T_NATIVE_INT32, 0,
                               &version);
    if (!rc) {
        static const char format[] = "strata-dataset";
        hid_t str = H5Tcopy(H5T_C_S1);
        if (str < 0 || H5Tset_size(str, sizeof format - 1) < 0 ||
            H5Tset_strpad(str, H5T_STR_NULLPAD) < 0)
            rc = io__h5_fail(path, "cannot make a string type");
        else
            rc = io__h5_write_attr(file, path, "format", str, str, 0, format);
        if (str >= 0) H5Tclose(str);
    }
    if (!rc && ds->norm_mean != NULL && ds->norm_std != NULL) {
        rc = io__h5_write_attr(file, path, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                               (size_t)ds->c, ds->norm_mean);
        if (!rc)
            rc = io__h5_write_attr(file, path, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                                   (size_t)ds->c, ds->norm_std);
    }
    if (H5Fclose(file) < 0 && rc == 0) rc = io__h5_fail(path, "cannot close the temporary file");
    return rc;
}


/* Writes a dataset file at tmp (the temporary name chosen by io_write_atomic). */
static int io__h5_write_tmp(const char *tmp, const char *path, void *ud)
{
    return io__h5_write_file(ud, tmp, path);
}

int io_h5_save(const io_dataset *ds, const char *path)
{
    if (ds == NULL || path == NULL)
        return nn_err(NN_EINVAL, "io_h5_save: the %s is NULL", ds == NULL ? "dataset" : "path");
    if ((ds->images == NULL) == (ds->images_f32 == NULL))
        return nn_err(NN_EINVAL, "%s: the dataset must hold exactly one of images (uint8) and "
                                 "images_f32 (float32); it holds %s",
                      path, ds->images ? "both" : "neither");
    if (ds->labels == NULL) return nn_err(NN_EINVAL, "%s: the dataset has no labels", path);
    if (ds->n < 1 || ds->c < 1 || ds->h < 1 || ds->w < 1)
        return nn_err(NN_EINVAL,
                      "%s: the dataset's shape (%d, %d, %d, %d) has a dimension below 1", path,
                      ds->n, ds->c, ds->h, ds->w);
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    const int rc = io_write_atomic(path, io__h5_write_tmp, (void *)ds);
    io__h5_quiet_end(&q);
    return rc;
}

int io_data_convert(const char *out_path, const char *images_path, const char *labels_path)
{
    if (out_path == NULL) return nn_err(NN_EINVAL, "io_data_convert: the output path is NULL");
    io_dataset ds;
    int rc = io_idx_load(&ds, images_path, labels_path);
    if (rc) return rc;
    rc = io_h5_save(&ds, out_path);
    io_dataset_free(&ds);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Synthetic data.
 */

int io_synthetic_make_split(io_dataset *ds, int n, int c, int h, int w, int classes,
                            uint64_t proto_seed, uint64_t sample_seed)
{
    if (ds == NULL) return nn_err(NN_EINVAL, "io_synthetic_make: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (n < 1 || c < 1 || h < 1 || w < 1 || classes < 1)
        return nn_err(NN_EINVAL,
                      "synthetic data: samples %d, shape (%d, %d, %d) and classes %d must all "
                      "be at least 1",
                      n, c, h, w, classes);
    const size_t per = (size_t)c * h * w;
    if ((double)n * (double)per > (double)IO_IDX_MAX_ELEMS ||
        (double)classes * (double)per > (double)IO_IDX_MAX_ELEMS)
        return nn_err(NN_EINVAL,
                      "synthetic data: %d samples of (%d, %d, %d) make more than %u elements",
                      n, c, h, w, (unsigned)IO_IDX_MAX_ELEMS);

    float *proto = malloc((size_t)classes * per * sizeof *proto);
    int *order = malloc((size_t)n * sizeof *order);
    ds->images_f32 = malloc((size_t)n * per * sizeof(float));
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    if (proto == NULL || order == NULL || ds->images_f32 == NULL || ds->labels == NULL) {
        free(proto);
        free(order);
        io_dataset_free(ds);
        return nn_err(NN_ENOMEM, "synthetic data: cannot allocate %d samples of (%d, %d, %d)", n,
                      c, h, w);
    }

    /* Prototypes: per class and channel, two plane waves cos(2 pi (fy y/h + fx x/w) + phi)
     * with a random direction, 0.5 to 3 cycles across the image, and a random phase. */
    nn_rng rng;
    nn_rng_seed(&rng, io__key(IO__TAG_PROTO, proto_seed, 0, 0));
    const double two_pi = 6.283185307179586476925;
    for (int k = 0; k < classes; k++) {
        for (int ch = 0; ch < c; ch++) {
            float *p = proto + ((size_t)k * c + ch) * h * w;
            for (size_t i = 0; i < (size_t)h * w; i++) p[i] = 0.0f;
            for (int wave = 0; wave < 2; wave++) {
                const double angle = two_pi * nn_rng_uniform(&rng);
                const double cycles = 0.5 + 2.5 * nn_rng_uniform(&rng);
                const double phase = two_pi * nn_rng_uniform(&rng);
                const double fy = cycles * sin(angle), fx = cycles * cos(angle);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        p[(size_t)y * w + x] += (float)cos(
                            two_pi * (fy * y / h + fx * x / w) + phase);
            }
        }
    }

    /* Labels i % classes, shuffled; then each sample is its prototype plus noise. */
    nn_rng_seed(&rng, io__key(IO__TAG_SAMPLES, sample_seed, 0, 0));
    io__permute(order, n, &rng);
    for (int i = 0; i < n; i++) ds->labels[i] = order[i] % classes;
    float *img = ds->images_f32;
    nn_rng_fill_normal(&rng, img, (size_t)n * per, IO_SYNTHETIC_NOISE);
    for (int i = 0; i < n; i++) {
        const float *p = proto + (size_t)ds->labels[i] * per;
        float *x = img + (size_t)i * per;
        for (size_t e = 0; e < per; e++) x[e] += p[e];
    }
    free(proto);
    free(order);
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->classes = classes;
    return 0;
}

int io_synthetic_make(io_dataset *ds, int n, int c, int h, int w, int classes, uint64_t seed)
{
    return io_synthetic_make_split(ds, n, c, h, w, classes, seed, seed);
}

/* ---------------------------------------------------------------------------------------
 * Opening a dataset by name.
 */

int io_data_open(io_dataset *ds, const char *spec, const char *fmnist_dir, int split_train,
                 const io_synthetic_opts *syn)
{
    if (ds == NULL) return nn_err(NN_EINVAL, "io_data_open: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (spec == NULL || spec[0] == '\0')
        return nn_err(NN_EINVAL, "io_data_open: no dataset given (expected \"%s\", \"%s\" or "
                                 "the path of an HDF5 file)",
                      IO_DATA_FASHION_MNIST, IO_DATA_SYNTHETIC);
    if (strcmp(spec, IO_DATA_FASHION_MNIST) == 0)
        return io_fashion_mnist_load(ds, fmnist_dir, split_train);
    if (strcmp(spec, IO_DATA_SYNTHETIC) == 0) {
        if (syn == NULL)
            return nn_err(NN_EINVAL, "io_data_open: \"%s\" needs its options (syn is NULL)",
                          IO_DATA_SYNTHETIC);
        return io_synthetic_make_split(ds, syn->samples, syn->c, syn->h, syn->w, syn->classes,
                                       syn->seed, split_train ? syn->seed : syn->seed + 1);
    }
    const int rc = io_h5_load(ds, spec);
    if (rc == NN_EIO) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        return nn_err(rc, "%s (a dataset is \"%s\", \"%s\" or the path of an HDF5 file)", msg,
                      IO_DATA_FASHION_MNIST, IO_DATA_SYNTHETIC);
    }
    return rc;
}

void io_data_default_norm(const io_dataset *ds, const char *spec, float *mean, float *std)
{
    NN_ASSERT(ds != NULL && mean != NULL && std != NULL);
    const int fmnist = spec != NULL && strcmp(spec, IO_DATA_FASHION_MNIST) == 0;
    for (int k = 0; k < ds->c; k++) {
        if (fmnist) {
            mean[k] = IO_FASHION_MNIST_MEAN;
            std[k] = IO_FASHION_MNIST_STD;
        } else if (ds->norm_mean != NULL && ds->norm_std != NULL) {
            mean[k] = ds->norm_mean[k];
            std[k] = ds->norm_std[k];
        } else if (ds->images_f32 != NULL) {
            mean[k] = 0.0f;
            std[k] = 1.0f;
        } else {
            mean[k] = 0.5f;
            std[k] = 0.5f;
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Augmentation.
 */

void io_augment_pad_values(float *pad, int c, const float *mean, const float *std)
{
    NN_ASSERT(pad != NULL && mean != NULL && std != NULL && c >= 0);
    for (int k = 0; k < c; k++) pad[k] = -mean[k] / std[k];
}

static void io__fill(float *p, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) p[i] = v;
}

/* In place, out(y, x) = in(y + dy, x + dx), or v where (y + dy, x + dx) lies outside the
 * plane. Rows are visited so that a source row is always read before it is overwritten:
 * upwards when the source lies below (dy > 0), downwards when it lies above. Within a row,
 * memmove copes with the overlap when the source is the row itself. */
static void io__shift_plane(float *p, int h, int w, int dy, int dx, float v)
{
    if (dy >= h || -dy >= h || dx >= w || -dx >= w) {
        io__fill(p, (size_t)h * w, v);
        return;
    }
    const int adx = dx < 0 ? -dx : dx;
    for (int step = 0; step < h; step++) {
        const int y = dy > 0 ? step : h - 1 - step;
        const int sy = y + dy;
        float *row = p + (size_t)y * w;
        if (sy < 0 || sy >= h) {
            io__fill(row, (size_t)w, v);
            continue;
        }
        const float *src = p + (size_t)sy * w;
        if (dx >= 0) {
            memmove(row, src + dx, (size_t)(w - dx) * sizeof *row);
            io__fill(row + (w - dx), (size_t)adx, v);
        } else {
            memmove(row + adx, src, (size_t)(w - adx) * sizeof *row);
            io__fill(row, (size_t)adx, v);
        }
    }
}

void io_augment(float *x, int c, int h, int w, int crop_padding, int flip,
                const float pad_value_per_channel[], uint64_t seed, int epoch,
                int sample_index)
{
    NN_ASSERT(x != NULL && c > 0 && h > 0 && w > 0 && crop_padding >= 0);
    nn_rng rng;
    nn_rng_seed(&rng, io__key(IO__TAG_AUGMENT, seed, (uint64_t)(int64_t)epoch,
                              (uint64_t)(int64_t)sample_index));
    /* Always three draws in the same order: the window's top and left corner in the
     * padded image, then the flip. */
    const uint64_t span = 2 * (uint64_t)crop_padding + 1;
    const int top = (int)io__below(&rng, span), left = (int)io__below(&rng, span);
    const int mirror = (int)(nn_rng_next(&rng) >> 63);

    const size_t plane = (size_t)h * w;
    const int dy = top - crop_padding, dx = left - crop_padding;
    if (crop_padding > 0 && (dy != 0 || dx != 0))
        for (int k = 0; k < c; k++)
            io__shift_plane(x + (size_t)k * plane, h, w, dy, dx,
                            pad_value_per_channel ? pad_value_per_channel[k] : 0.0f);
    if (flip && mirror) {
        for (size_t r = 0; r < (size_t)c * h; r++) {
            float *row = x + r * w;
            for (int a = 0, b = w - 1; a < b; a++, b--) {
                const float t = row[a];
                row[a] = row[b];
                row[b] = t;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Sharding and checks.
 */

int io_shard(int *out, int *count, int n, int rank, int world, uint64_t seed, int epoch)
{
    if (out == NULL || count == NULL)
        return nn_err(NN_EINVAL, "io_shard: the %s pointer is NULL", out == NULL ? "out" : "count");
    *count = 0;
    if (world < 1) return nn_err(NN_EINVAL, "io_shard: world size %d (must be at least 1)", world);
    if (rank < 0 || rank >= world)
        return nn_err(NN_EINVAL, "io_shard: rank %d is outside [0, %d) (world size %d)", rank,
                      world, world);
    if (n < world)
        return nn_err(NN_EINVAL,
                      "cannot shard %d samples over %d ranks: every rank needs at least one "
                      "sample (n = %d < world = %d)",
                      n, world, n, world);
    int *perm = malloc((size_t)n * sizeof *perm);
    if (perm == NULL) return nn_err(NN_ENOMEM, "io_shard: cannot allocate %d indices", n);
    nn_rng rng;
    nn_rng_seed(&rng, io__key(IO__TAG_SHARD, seed, (uint64_t)(int64_t)epoch, 0));
    io__permute(perm, n, &rng);
    const int share = n / world;
    for (int i = 0; i < share; i++) out[i] = perm[(size_t)i * world + rank];
    free(perm);
    *count = share;
    return 0;
}

int io_check_batch(int per_rank_samples, int batch_size, int world)
{
    if (world < 1) return nn_err(NN_EINVAL, "world size %d (must be at least 1)", world);
    if (batch_size < 1) return nn_err(NN_EINVAL, "batch size %d (must be at least 1)", batch_size);
    if (per_rank_samples < 1)
        return nn_err(NN_EINVAL, "a rank's share of the data is %d samples (must be at least 1)",
                      per_rank_samples);
    if (batch_size > per_rank_samples)
        return nn_err(NN_EINVAL,
                      "batch size %d is larger than a rank's share of %d samples (%lld samples "
                      "over %d ranks)",
                      batch_size, per_rank_samples, (long long)per_rank_samples * world, world);
    return 0;
}

int io_check_labels(const io_dataset *ds, int classes, const char *what)
{
    if (what == NULL) what = "the dataset";
    if (ds == NULL) return nn_err(NN_EINVAL, "io_check_labels: %s is NULL", what);
    if (classes < 1)
        return nn_err(NN_EINVAL, "%s: the model has %d classes (must be at least 1)", what,
                      classes);
    if (ds->labels == NULL && ds->n > 0)
        return nn_err(NN_EINVAL, "%s: %d samples but no labels", what, ds->n);
    for (int i = 0; i < ds->n; i++) {
        if (ds->labels[i] < 0 || ds->labels[i] >= classes)
            return nn_err(NN_ERANGE,
                          "%s: sample %d has label %d, outside [0, %d) for a model with %d "
                          "classes",
                          what, i, (int)ds->labels[i], classes, classes);
    }
    return 0;
}
