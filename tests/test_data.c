/*
 * Datasets beyond IDX (io/io_data.h): HDF5 files that round-trip and every kind of bad
 * HDF5 input (written here with the HDF5 C API), IDX -> HDF5 conversion (on small files and
 * on the real Fashion-MNIST test split), float conversion, synthetic data, opening by name,
 * augmentation, sharding, and the batch-size and label checks.
 */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture_h5.h"
#include "io/io.h"
#include "nn/nn.h"
#include "testutil.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---------------------------------------------------------------------------------------
 * Helpers.
 */

/* The number of entries in tu_tmpdir() whose name contains ".tmp." (left-over temporary
 * files). */
static int count_tmp_files(void)
{
    DIR *d = opendir(tu_tmpdir());
    assert_non_null(d);
    int k = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strstr(e->d_name, ".tmp.") != NULL) k++;
    closedir(d);
    return k;
}

/* A small byte dataset: n samples of (c, h, w), pixel values and labels from a formula. */
static void make_u8(io_dataset *ds, int n, int c, int h, int w, int classes)
{
    memset(ds, 0, sizeof *ds);
    const size_t per = (size_t)c * h * w;
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->classes = classes;
    ds->images = malloc((size_t)n * per);
    ds->labels = malloc((size_t)n * sizeof *ds->labels);
    assert_non_null(ds->images);
    assert_non_null(ds->labels);
    for (size_t i = 0; i < (size_t)n * per; i++) ds->images[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < n; i++) ds->labels[i] = (i * 3) % classes;
}

/* ---------------------------------------------------------------------------------------
 * Writing HDF5 files by hand, for the bad-input cases.
 */

static hid_t h5_new(const char *name, char *path, size_t plen)
{
    tu_tmp_path(path, plen, name);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* A dataset of the given native type and shape, holding data. */
static void h5_put(hid_t f, const char *name, hid_t type, int rank, const hsize_t *dims,
                   const void *data)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    assert_true(space >= 0);
    hid_t d = H5Dcreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    assert_true(H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(d);
    H5Sclose(space);
}

/* A root attribute of n values (n == 0: a scalar). */
static void h5_attr(hid_t f, const char *name, hid_t type, size_t n, const void *data)
{
    hsize_t dim = n;
    hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dim, NULL);
    hid_t a = H5Acreate2(f, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, type, data) >= 0);
    H5Aclose(a);
    H5Sclose(space);
}

/* Writes a well-formed file: 4 uint8 images (4, 1, 2, 3) and int64 labels, unless told to
 * leave one out; the caller may add more before closing. */
static const uint8_t good_px[4 * 6] = {0,  1,  2,  3,  4,  5,  10, 11, 12, 13, 14, 15,
                                       20, 21, 22, 23, 24, 25, 30, 31, 32, 33, 34, 255};
static const int64_t good_lb[4] = {0, 2, 1, 2};
static const hsize_t good_idims[4] = {4, 1, 2, 3};
static const hsize_t good_ldims[1] = {4};

static hid_t h5_good(const char *name, char *path, size_t plen, int images, int labels)
{
    hid_t f = h5_new(name, path, plen);
    if (images) h5_put(f, "images", H5T_NATIVE_UINT8, 4, good_idims, good_px);
    if (labels) h5_put(f, "labels", H5T_NATIVE_INT64, 1, good_ldims, good_lb);
    return f;
}

/* Loads a file that must fail with code; the dataset must come back zeroed. */
static void expect_load_fails(const char *path, int code)
{
    io_dataset ds;
    memset(&ds, 0xab, sizeof ds); /* garbage in: the loader must zero it */
    int rc = io_h5_load(&ds, path);
    if (rc != code)
        fail_msg("io_h5_load(%s) gave %d (%s), expected %d; message: %s", path, rc,
                 nn_errname(rc), code, nn_errmsg());
    tu_expect_zeroed(&ds);
    tu_expect_msg(path);
}

/* ---------------------------------------------------------------------------------------
 * HDF5 round trips.
 */

static void expect_same(const io_dataset *a, const io_dataset *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->c, b->c);
    assert_int_equal(a->h, b->h);
    assert_int_equal(a->w, b->w);
    assert_int_equal(a->classes, b->classes);
    const size_t elems = (size_t)a->n * a->c * a->h * a->w;
    assert_true((a->images == NULL) == (b->images == NULL));
    assert_true((a->images_f32 == NULL) == (b->images_f32 == NULL));
    if (a->images) assert_memory_equal(a->images, b->images, elems);
    if (a->images_f32) assert_memory_equal(a->images_f32, b->images_f32, elems * sizeof(float));
    assert_memory_equal(a->labels, b->labels, (size_t)a->n * sizeof(int32_t));
}

static void test_h5_round_trip_u8(void **state)
{
    (void)state;
    io_dataset ds, back;
    make_u8(&ds, 5, 2, 3, 4, 7); /* classes 7 > 1 + max label: the attribute must survive */
    ds.norm_mean = malloc(2 * sizeof(float));
    ds.norm_std = malloc(2 * sizeof(float));
    ds.norm_mean[0] = 0.25f;
    ds.norm_mean[1] = 0.75f;
    ds.norm_std[0] = 0.5f;
    ds.norm_std[1] = 0.125f;
    char path[512];
    tu_tmp_path(path, sizeof path, "rt-u8.h5");
    int rc = io_h5_save(&ds, path);
    if (rc) fail_msg("io_h5_save: %s", nn_errmsg());
    assert_int_equal(count_tmp_files(), 0);

    rc = io_h5_load(&back, path);
    if (rc) fail_msg("io_h5_load: %s", nn_errmsg());
    expect_same(&ds, &back);
    assert_non_null(back.images);
    assert_non_null(back.norm_mean);
    assert_non_null(back.norm_std);
    assert_memory_equal(back.norm_mean, ds.norm_mean, 2 * sizeof(float));
    assert_memory_equal(back.norm_std, ds.norm_std, 2 * sizeof(float));

    /* The file as another reader sees it: the format attributes, and compressed chunks. */
    fx_file *fx;
    assert_int_equal(fx_open(&fx, path), 0);
    char fmt[64];
    assert_int_equal(fx_read_attr_str(fx, "format", fmt, sizeof fmt), 0);
    assert_string_equal(fmt, "strata-dataset");
    int64_t v[1];
    assert_int_equal(fx_read_attr_i64(fx, "classes", v, 1, NULL), 0);
    assert_int_equal(v[0], 7);
    int32_t *labels;
    size_t nl;
    assert_int_equal(fx_read_i32(fx, "labels", &labels, &nl), 0);
    assert_int_equal(nl, 5);
    assert_memory_equal(labels, ds.labels, 5 * sizeof(int32_t));
    free(labels);
    fx_close(fx);

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/images", H5P_DEFAULT);
    hid_t dcpl = H5Dget_create_plist(d);
    assert_int_equal(H5Pget_layout(dcpl), H5D_CHUNKED);
    int found = 0;
    for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
        unsigned flags, conf;
        size_t nelm = 0;
        char name[64];
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelm, NULL, sizeof name,
                                         name, &conf);
        if (id == H5Z_FILTER_SHUFFLE) found |= 1;
        if (id == H5Z_FILTER_DEFLATE) found |= 2;
        if (id == H5Z_FILTER_FLETCHER32) found |= 4;
    }
    assert_int_equal(found, 7);
    H5Pclose(dcpl);
    H5Dclose(d);
    H5Fclose(f);

    io_dataset_free(&back);
    io_dataset_free(&ds);
}

static void test_h5_round_trip_f32(void **state)
{
    (void)state;
    io_dataset ds, back;
    memset(&ds, 0, sizeof ds);
    ds.n = 300;
    ds.c = 3;
    ds.h = 5;
    ds.w = 7;
    ds.classes = 4;
    const size_t elems = (size_t)ds.n * ds.c * ds.h * ds.w;
    ds.images_f32 = malloc(elems * sizeof(float));
    ds.labels = malloc((size_t)ds.n * sizeof(int32_t));
    nn_rng rng;
    nn_rng_seed(&rng, 5);
    nn_rng_fill_normal(&rng, ds.images_f32, elems, 3.0f);
    ds.images_f32[0] = -0.0f;
    ds.images_f32[1] = 1e-30f;
    for (int i = 0; i < ds.n; i++) ds.labels[i] = i % 4;
    char path[512];
    tu_tmp_path(path, sizeof path, "rt-f32.h5");
    int rc = io_h5_save(&ds, path);
    if (rc) fail_msg("io_h5_save: %s", nn_errmsg());
    rc = io_h5_load(&back, path);
    if (rc) fail_msg("io_h5_load: %s", nn_errmsg());
    expect_same(&ds, &back); /* bit for bit */
    assert_null(back.images);
    assert_null(back.norm_mean);

    /* Saving again over the file replaces it through a rename (a new inode), leaving no
     * temporary file behind. */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    back.labels[0] = 3;
    assert_int_equal(io_h5_save(&back, path), 0);
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_ino != after.st_ino);
    assert_int_equal(count_tmp_files(), 0);
    io_dataset again;
    assert_int_equal(io_h5_load(&again, path), 0);
    assert_int_equal(again.labels[0], 3);

    io_dataset_free(&again);
    io_dataset_free(&back);
    io_dataset_free(&ds);
}

/* Files written the way h5py writes them by default: int64 labels, float64 images,
 * contiguous, no attributes. */
static void test_h5_foreign_types(void **state)
{
    (void)state;
    char path[512];
    hid_t f = h5_new("foreign.h5", path, sizeof path);
    const double px[2 * 1 * 1 * 2] = {0.5, -1.25, 3.0, 1e3};
    const hsize_t idims[4] = {2, 1, 1, 2}, ldims[1] = {2};
    const uint16_t lb[2] = {4, 1};
    h5_put(f, "images", H5T_NATIVE_DOUBLE, 4, idims, px);
    h5_put(f, "labels", H5T_NATIVE_UINT16, 1, ldims, lb);
    const float mean = 0.5f, sd = 2.0f;
    h5_attr(f, "mean", H5T_NATIVE_FLOAT, 1, &mean);
    h5_attr(f, "std", H5T_NATIVE_FLOAT, 0, &sd);
    H5Fclose(f);
    io_dataset ds;
    int rc = io_h5_load(&ds, path);
    if (rc) fail_msg("io_h5_load: %s", nn_errmsg());
    assert_non_null(ds.images_f32);
    assert_null(ds.images);
    for (int i = 0; i < 4; i++) assert_true(ds.images_f32[i] == (float)px[i]);
    assert_int_equal(ds.labels[0], 4);
    assert_int_equal(ds.labels[1], 1);
    assert_int_equal(ds.classes, 5);
    assert_true(ds.norm_mean[0] == 0.5f && ds.norm_std[0] == 2.0f);

    float mu[1], sg[1];
    io_data_default_norm(&ds, path, mu, sg);
    assert_true(mu[0] == 0.5f && sg[0] == 2.0f);
    float out[4];
    io_dataset_to_float(out, &ds, NULL, 2, mu, sg);
    for (int i = 0; i < 4; i++) assert_true(fabsf(out[i] - ((float)px[i] - 0.5f) / 2.0f) < 1e-6f);
    io_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------
 * HDF5 bad input: each case its own file, each with its own code and message.
 */

static void test_h5_missing_file(void **state)
{
    (void)state;
    char path[512];
    tu_tmp_path(path, sizeof path, "nope.h5");
    expect_load_fails(path, NN_EIO);
    tu_expect_msg("No such file");
}

static void test_h5_not_hdf5(void **state)
{
    (void)state;
    char path[512];
    tu_tmp_path(path, sizeof path, "text.h5");
    const char text[] = "images,labels\n1,2\n";
    tu_write_file(path, text, sizeof text - 1, 0);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("not an HDF5 file");

    /* An empty file, and a gzip file (an IDX file given by mistake). */
    tu_tmp_path(path, sizeof path, "empty.h5");
    tu_write_file(path, "", 0, 0);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("not an HDF5 file");
    tu_tmp_path(path, sizeof path, "idx.gz");
    tu_write_file(path, "\0\0\x08\x03", 4, 1);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("not an HDF5 file");
}

/* A good file cut short, and one with damaged chunk data: HDF5 fails, and its own
 * message comes through. */
static void test_h5_truncated_and_damaged(void **state)
{
    (void)state;
    io_dataset ds;
    make_u8(&ds, 2000, 1, 16, 16, 10);
    nn_rng rng;
    nn_rng_seed(&rng, 9);
    for (size_t i = 0; i < (size_t)2000 * 256; i++) ds.images[i] = (uint8_t)nn_rng_next(&rng);
    char path[512];
    tu_tmp_path(path, sizeof path, "full.h5");
    assert_int_equal(io_h5_save(&ds, path), 0);
    io_dataset_free(&ds);

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(len > 100000);
    unsigned char *bytes = malloc((size_t)len);
    assert_int_equal(fread(bytes, 1, (size_t)len, f), (size_t)len);
    fclose(f);

    char cut[512];
    tu_tmp_path(cut, sizeof cut, "cut.h5");
    tu_write_file(cut, bytes, (size_t)len / 2, 0);
    expect_load_fails(cut, NN_EHDF5);
    tu_expect_msg("cannot open the HDF5 file", "truncated");

    /* Random bytes over the middle of the file land in compressed chunk data (the images
     * take nearly all of it): the checksum or the inflate step fails on read. */
    char bad[512];
    tu_tmp_path(bad, sizeof bad, "damaged.h5");
    for (long i = len / 3; i < len / 3 + 4096; i++) bytes[i] ^= 0x5a;
    tu_write_file(bad, bytes, (size_t)len, 0);
    expect_load_fails(bad, NN_EHDF5);
    tu_expect_msg("cannot read /images");
    free(bytes);
}

static void test_h5_missing_datasets(void **state)
{
    (void)state;
    char path[512];
    H5Fclose(h5_good("no-images.h5", path, sizeof path, 0, 1));
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("no /images dataset");

    H5Fclose(h5_good("no-labels.h5", path, sizeof path, 1, 0));
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("no /labels dataset");

    /* /images a group, not a dataset. */
    hid_t f = h5_good("group.h5", path, sizeof path, 0, 1);
    hid_t g = H5Gcreate2(f, "images", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(g >= 0);
    H5Gclose(g);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images is not a dataset");
}

static void test_h5_wrong_rank(void **state)
{
    (void)state;
    char path[512];
    /* Images without the channel axis: (N, H, W). */
    hid_t f = h5_good("rank3.h5", path, sizeof path, 0, 1);
    const hsize_t d3[3] = {4, 2, 3};
    h5_put(f, "images", H5T_NATIVE_UINT8, 3, d3, good_px);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images has rank 3", "(4, 2, 3)", "expected rank 4");

    /* Labels as a column (N, 1). */
    f = h5_good("labels2d.h5", path, sizeof path, 1, 0);
    const hsize_t d2[2] = {4, 1};
    h5_put(f, "labels", H5T_NATIVE_INT64, 2, d2, good_lb);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/labels has rank 2", "(4, 1)", "expected rank 1");

    /* A zero dimension. */
    f = h5_new("zero.h5", path, sizeof path);
    const hsize_t dz[4] = {4, 0, 2, 3};
    h5_put(f, "images", H5T_NATIVE_UINT8, 4, dz, good_px);
    h5_put(f, "labels", H5T_NATIVE_INT64, 1, good_ldims, good_lb);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images dimension 1 of 4 is 0");
}

static void test_h5_count_mismatch(void **state)
{
    (void)state;
    char path[512];
    hid_t f = h5_good("count.h5", path, sizeof path, 1, 0);
    const hsize_t three[1] = {3};
    h5_put(f, "labels", H5T_NATIVE_INT64, 1, three, good_lb);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images holds 4 samples but /labels holds 3 labels");
}

static void test_h5_unsupported_dtype(void **state)
{
    (void)state;
    char path[512];
    const int16_t px16[24] = {0};
    hid_t f = h5_good("int16.h5", path, sizeof path, 0, 1);
    h5_put(f, "images", H5T_NATIVE_INT16, 4, good_idims, px16);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images has type int16", "expected uint8 or float32");

    f = h5_good("int8.h5", path, sizeof path, 0, 1);
    h5_put(f, "images", H5T_NATIVE_INT8, 4, good_idims, px16);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/images has type int8");

    const float flb[4] = {0, 1, 2, 1};
    f = h5_good("float-labels.h5", path, sizeof path, 1, 0);
    h5_put(f, "labels", H5T_NATIVE_FLOAT, 1, good_ldims, flb);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/labels has type float32", "expected an integer type");

    /* An attribute of the wrong kind. */
    f = h5_good("classes-float.h5", path, sizeof path, 1, 1);
    const float ten = 10.0f;
    h5_attr(f, "classes", H5T_NATIVE_FLOAT, 0, &ten);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("attribute classes has type float32");
}

static void test_h5_bad_labels(void **state)
{
    (void)state;
    char path[512];
    const int64_t neg[4] = {0, 1, -3, 2};
    hid_t f = h5_good("negative.h5", path, sizeof path, 1, 0);
    h5_put(f, "labels", H5T_NATIVE_INT64, 1, good_ldims, neg);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/labels[2] is -3", "0 or more");

    const int64_t huge[4] = {0, 1, 2, (int64_t)1 << 40};
    f = h5_good("huge.h5", path, sizeof path, 1, 0);
    h5_put(f, "labels", H5T_NATIVE_INT64, 1, good_ldims, huge);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/labels[3] is 1099511627776");

    /* 2^31 - 1 fits an int32, but classes = label + 1 would not (UBSan: signed overflow). */
    const int64_t edge[4] = {0, 1, 2, INT32_MAX};
    f = h5_good("edge.h5", path, sizeof path, 1, 0);
    h5_put(f, "labels", H5T_NATIVE_INT64, 1, good_ldims, edge);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("/labels[3] is 2147483647", "below 2147483647");

    /* A classes attribute that does not cover the labels (label 2 with classes 2). */
    f = h5_good("few-classes.h5", path, sizeof path, 1, 1);
    const int32_t two = 2;
    h5_attr(f, "classes", H5T_NATIVE_INT32, 0, &two);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("sample 1 has label 2", "classes attribute is 2");
}

static void test_h5_bad_attributes_and_values(void **state)
{
    (void)state;
    char path[512];
    const float m2[2] = {0.1f, 0.2f}, s1 = 0.5f, s0 = 0.0f;
    hid_t f = h5_good("mean-only.h5", path, sizeof path, 1, 1);
    h5_attr(f, "mean", H5T_NATIVE_FLOAT, 1, m2);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("has a mean attribute but no std");

    f = h5_good("mean-count.h5", path, sizeof path, 1, 1); /* one channel, two means */
    h5_attr(f, "mean", H5T_NATIVE_FLOAT, 2, m2);
    h5_attr(f, "std", H5T_NATIVE_FLOAT, 1, &s1);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("attribute mean has 2 values", "one per channel (1)");

    f = h5_good("std-zero.h5", path, sizeof path, 1, 1);
    h5_attr(f, "mean", H5T_NATIVE_FLOAT, 1, m2);
    h5_attr(f, "std", H5T_NATIVE_FLOAT, 1, &s0);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("channel 0 has mean 0.1 and std 0");

    /* A NaN among float images. */
    float px[24];
    for (int i = 0; i < 24; i++) px[i] = (float)i;
    px[13] = NAN;
    f = h5_good("nan.h5", path, sizeof path, 0, 1);
    h5_put(f, "images", H5T_NATIVE_FLOAT, 4, good_idims, px);
    H5Fclose(f);
    expect_load_fails(path, NN_EFORMAT);
    tu_expect_msg("non-finite value", "sample 2, element 1");
}

/* HDF5's automatic error printing is off during a call and restored afterwards: a handler
 * installed by the caller is back in place and was never called. */
static int auto_calls;
static herr_t count_auto(hid_t stack, void *data)
{
    (void)stack;
    (void)data;
    auto_calls++;
    return 0;
}

static void test_h5_error_printing(void **state)
{
    (void)state;
    H5E_auto2_t old_func;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_func, &old_data);
    int token = 0;
    H5Eset_auto2(H5E_DEFAULT, count_auto, &token);
    auto_calls = 0;

    /* A failure inside HDF5 (a truncated file) and one found by strata (no /labels). */
    char path[512];
    io_dataset ds;
    make_u8(&ds, 100, 1, 8, 8, 10);
    tu_tmp_path(path, sizeof path, "quiet.h5");
    assert_int_equal(io_h5_save(&ds, path), 0);
    io_dataset_free(&ds);
    assert_int_equal(truncate(path, 1000), 0);
    assert_int_equal(io_h5_load(&ds, path), NN_EHDF5);
    H5Fclose(h5_good("no-labels2.h5", path, sizeof path, 1, 0));
    assert_int_equal(io_h5_load(&ds, path), NN_EFORMAT);
    assert_int_equal(auto_calls, 0);

    H5E_auto2_t now_func;
    void *now_data;
    H5Eget_auto2(H5E_DEFAULT, &now_func, &now_data);
    assert_true(now_func == count_auto);
    assert_ptr_equal(now_data, &token);
    H5Eset_auto2(H5E_DEFAULT, old_func, old_data);
}

static void test_h5_save_bad_input(void **state)
{
    (void)state;
    char path[512];
    tu_tmp_path(path, sizeof path, "never.h5");
    io_dataset ds;
    make_u8(&ds, 3, 1, 2, 2, 3);
    ds.images_f32 = calloc(12, sizeof(float));
    assert_int_equal(io_h5_save(&ds, path), NN_EINVAL);
    tu_expect_msg(path, "exactly one", "both");
    free(ds.images_f32);
    ds.images_f32 = NULL;
    ds.h = 0;
    assert_int_equal(io_h5_save(&ds, path), NN_EINVAL);
    tu_expect_msg("(3, 1, 0, 2)");
    ds.h = 2;
    assert_int_equal(io_h5_save(NULL, path), NN_EINVAL);
    /* A directory that does not exist: no temporary file can be made. */
    char nodir[512];
    tu_tmp_path(nodir, sizeof nodir, "no/such/dir.h5");
    assert_int_equal(io_h5_save(&ds, nodir), NN_EIO);
    tu_expect_msg(nodir, "temporary file");
    assert_int_equal(access(path, F_OK), -1);
    io_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------
 * IDX -> HDF5.
 */

static void test_convert_small(void **state)
{
    (void)state;
    /* 3 images of 2 x 2, labels 4, 0, 9. */
    unsigned char img[16 + 12], lab[8 + 3];
    tu_put_be32(img, 0x00000803u);
    tu_put_be32(img + 4, 3);
    tu_put_be32(img + 8, 2);
    tu_put_be32(img + 12, 2);
    for (int i = 0; i < 12; i++) img[16 + i] = (unsigned char)(i * 20);
    tu_put_be32(lab, 0x00000801u);
    tu_put_be32(lab + 4, 3);
    lab[8] = 4;
    lab[9] = 0;
    lab[10] = 9;
    for (int gz = 0; gz <= 1; gz++) {
        char ip[512], lp[512], out[512];
        tu_tmp_path(ip, sizeof ip, gz ? "c-images.gz" : "c-images");
        tu_tmp_path(lp, sizeof lp, gz ? "c-labels.gz" : "c-labels");
        tu_tmp_path(out, sizeof out, "c.h5");
        tu_write_file(ip, img, sizeof img, gz);
        tu_write_file(lp, lab, sizeof lab, gz);
        int rc = io_data_convert(out, ip, lp);
        if (rc) fail_msg("io_data_convert: %s", nn_errmsg());
        io_dataset ds;
        assert_int_equal(io_h5_load(&ds, out), 0);
        assert_int_equal(ds.n, 3);
        assert_int_equal(ds.c, 1);
        assert_int_equal(ds.h, 2);
        assert_int_equal(ds.w, 2);
        assert_int_equal(ds.classes, 10);
        assert_non_null(ds.images);
        assert_memory_equal(ds.images, img + 16, 12);
        assert_int_equal(ds.labels[0], 4);
        assert_int_equal(ds.labels[1], 0);
        assert_int_equal(ds.labels[2], 9);
        io_dataset_free(&ds);
    }
    /* The IDX reader's errors come through, and no output is made. */
    char ip[512], lp[512], out[512];
    tu_tmp_path(ip, sizeof ip, "c-images");
    tu_tmp_path(lp, sizeof lp, "c-missing-labels");
    tu_tmp_path(out, sizeof out, "c-never.h5");
    assert_int_equal(io_data_convert(out, ip, lp), NN_EIO);
    tu_expect_msg(lp);
    assert_int_equal(access(out, F_OK), -1);
}

static void test_convert_fashion_mnist(void **state)
{
    (void)state;
    char ip[512], lp[512], out[512];
    snprintf(ip, sizeof ip, "%s/t10k-images-idx3-ubyte.gz", FMNIST_DIR);
    snprintf(lp, sizeof lp, "%s/t10k-labels-idx1-ubyte.gz", FMNIST_DIR);
    if (access(ip, R_OK) != 0 || access(lp, R_OK) != 0)
        fail_msg("%s: %s. Install Debian's dataset-fashion-mnist package: this test needs "
                 "the real data",
                 ip, strerror(errno));
    tu_tmp_path(out, sizeof out, "t10k.h5");
    int rc = io_data_convert(out, ip, lp);
    if (rc) fail_msg("io_data_convert: %s", nn_errmsg());

    io_dataset idx, h5;
    assert_int_equal(io_idx_load(&idx, ip, lp), 0);
    assert_int_equal(io_h5_load(&h5, out), 0);
    expect_same(&idx, &h5);
    /* The first test image is an ankle boot (label 9), as in the IDX test. */
    assert_int_equal(h5.labels[0], 9);
    assert_int_equal(h5.classes, 10);

    /* The file is compressed: smaller than the raw 7.84 MB of pixels. */
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_true(st.st_size < 10000 * 784);

    /* It opens by path, with the byte default normalisation. */
    io_dataset opened;
    assert_int_equal(io_data_open(&opened, out, NULL, 0, NULL), 0);
    assert_int_equal(opened.n, 10000);
    float m[1], s[1];
    io_data_default_norm(&opened, out, m, s);
    assert_true(m[0] == 0.5f && s[0] == 0.5f);
    io_data_default_norm(&opened, "fashion-mnist", m, s);
    assert_true(m[0] == IO_FASHION_MNIST_MEAN && s[0] == IO_FASHION_MNIST_STD);

    io_dataset_free(&opened);
    io_dataset_free(&idx);
    io_dataset_free(&h5);
}

/* ---------------------------------------------------------------------------------------
 * Float conversion with per-channel statistics.
 */

static void test_to_float_channels(void **state)
{
    (void)state;
    io_dataset ds;
    make_u8(&ds, 3, 2, 2, 2, 2); /* two channels of 4 pixels */
    const float mean[2] = {0.5f, 0.25f}, sd[2] = {0.25f, 2.0f};
    float out[2 * 8];
    const int idx[2] = {2, 0};
    io_dataset_to_float(out, &ds, idx, 2, mean, sd);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            for (int p = 0; p < 4; p++) {
                const uint8_t v = ds.images[idx[i] * 8 + k * 4 + p];
                const float want = ((float)v / 255.0f - mean[k]) / sd[k];
                assert_true(out[i * 8 + k * 4 + p] == want);
            }

    /* The same layout as float data: no /255. */
    ds.images_f32 = malloc(3 * 8 * sizeof(float));
    for (int i = 0; i < 24; i++) ds.images_f32[i] = (float)ds.images[i];
    free(ds.images);
    ds.images = NULL;
    io_dataset_to_float(out, &ds, idx, 2, mean, sd);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++)
            for (int p = 0; p < 4; p++) {
                const float v = ds.images_f32[idx[i] * 8 + k * 4 + p];
                assert_true(out[i * 8 + k * 4 + p] == (v - mean[k]) / sd[k]);
            }
    io_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------
 * Synthetic data.
 */

static void test_synthetic(void **state)
{
    (void)state;
    io_dataset a, b, c;
    assert_int_equal(io_synthetic_make(&a, 1003, 2, 6, 5, 10, 42), 0);
    assert_int_equal(io_synthetic_make(&b, 1003, 2, 6, 5, 10, 42), 0);
    assert_int_equal(io_synthetic_make(&c, 1003, 2, 6, 5, 10, 43), 0);
    const size_t elems = (size_t)1003 * 2 * 6 * 5;
    assert_null(a.images);
    assert_non_null(a.images_f32);
    assert_int_equal(a.classes, 10);
    expect_same(&a, &b); /* deterministic */
    assert_true(memcmp(a.images_f32, c.images_f32, elems * sizeof(float)) != 0);

    /* Balanced: 100 or 101 of each class; shuffled, not 0, 1, 2, ... in order. */
    int counts[10] = {0}, in_order = 0;
    for (int i = 0; i < a.n; i++) {
        assert_in_range(a.labels[i], 0, 9);
        counts[a.labels[i]]++;
        in_order += a.labels[i] == i % 10;
    }
    for (int k = 0; k < 10; k++) assert_in_range(counts[k], 100, 101);
    assert_true(in_order < 300);
    for (size_t i = 0; i < elems; i++) assert_true(isfinite(a.images_f32[i]));

    /* Learnable, and the same task in the other split: class means from the train split
     * classify the valid split (seed + 1: same prototypes, new noise) almost perfectly. */
    io_synthetic_opts opts = {.samples = 500, .classes = 10, .c = 2, .h = 6, .w = 5, .seed = 42};
    io_dataset valid;
    assert_int_equal(io_data_open(&valid, "synthetic", NULL, 0, &opts), 0);
    assert_int_equal(valid.n, 500);
    const size_t per = 60;
    double *means = calloc(10 * per, sizeof(double));
    for (int i = 0; i < a.n; i++)
        for (size_t e = 0; e < per; e++)
            means[a.labels[i] * per + e] += a.images_f32[i * per + e] / counts[a.labels[i]];
    int hits = 0;
    for (int i = 0; i < valid.n; i++) {
        int best = -1;
        double best_d = INFINITY;
        for (int k = 0; k < 10; k++) {
            double d = 0;
            for (size_t e = 0; e < per; e++) {
                const double t = valid.images_f32[i * per + e] - means[k * per + e];
                d += t * t;
            }
            if (d < best_d) best_d = d, best = k;
        }
        hits += best == valid.labels[i];
    }
    assert_true(hits >= 480);
    /* ... and the valid split is not a copy of the train split's start. */
    assert_true(memcmp(valid.images_f32, a.images_f32, per * sizeof(float)) != 0);
    float m[2], s[2];
    io_data_default_norm(&valid, "synthetic", m, s);
    assert_true(m[0] == 0.0f && s[0] == 1.0f && m[1] == 0.0f && s[1] == 1.0f);

    /* The train split is io_synthetic_make(seed). */
    io_dataset train;
    opts.samples = 1003;
    assert_int_equal(io_data_open(&train, "synthetic", NULL, 1, &opts), 0);
    expect_same(&train, &a);
    io_dataset_free(&train);

    assert_int_equal(io_synthetic_make(&train, 0, 1, 2, 2, 2, 1), NN_EINVAL);
    tu_expect_msg("samples 0");
    tu_expect_zeroed(&train);
    assert_int_equal(io_data_open(&train, "synthetic", NULL, 1, NULL), NN_EINVAL);

    free(means);
    io_dataset_free(&valid);
    io_dataset_free(&a);
    io_dataset_free(&b);
    io_dataset_free(&c);
}

static void test_data_open(void **state)
{
    (void)state;
    io_dataset ds;
    int rc = io_data_open(&ds, "fashion-mnist", NULL, 0, NULL);
    if (rc) fail_msg("io_data_open(fashion-mnist): %s", nn_errmsg());
    assert_int_equal(ds.n, 10000);
    io_dataset_free(&ds);

    char path[512];
    tu_tmp_path(path, sizeof path, "no-such-data.h5");
    assert_int_equal(io_data_open(&ds, path, NULL, 1, NULL), NN_EIO);
    tu_expect_msg(path, "No such file", "\"fashion-mnist\", \"synthetic\" or the path");
    tu_expect_zeroed(&ds);
    assert_int_equal(io_data_open(&ds, NULL, NULL, 1, NULL), NN_EINVAL);
    assert_int_equal(io_data_open(&ds, "fashion-mnist", tu_tmpdir(), 1, NULL), NN_EIO);
    tu_expect_msg("dataset-fashion-mnist");
}

/* ---------------------------------------------------------------------------------------
 * Augmentation.
 */

enum { AC = 2, AH = 5, AW = 6, AP = 2 };
static const float apad[AC] = {-1.5f, -7.0f};

/* A sample whose every value is distinct and far from the pad values. */
static void aug_sample(float *x)
{
    for (int i = 0; i < AC * AH * AW; i++) x[i] = 100.0f + (float)i;
}

/* Finds the window (top, left) of the padded image that out is, with the pad values
 * around the original, as torchvision builds it; fails unless exactly one matches. */
static void find_window(const float *in, const float *out, int p, int *top, int *left)
{
    const int ph = AH + 2 * p, pw = AW + 2 * p;
    float *padded = malloc((size_t)AC * ph * pw * sizeof(float));
    for (int k = 0; k < AC; k++)
        for (int y = 0; y < ph; y++)
            for (int x = 0; x < pw; x++) {
                const int sy = y - p, sx = x - p;
                padded[(k * ph + y) * pw + x] = sy >= 0 && sy < AH && sx >= 0 && sx < AW
                                                    ? in[(k * AH + sy) * AW + sx]
                                                    : apad[k];
            }
    int found = 0;
    for (int t = 0; t <= 2 * p; t++)
        for (int l = 0; l <= 2 * p; l++) {
            int same = 1;
            for (int k = 0; k < AC && same; k++)
                for (int y = 0; y < AH && same; y++)
                    for (int x = 0; x < AW && same; x++)
                        same = out[(k * AH + y) * AW + x] == padded[(k * ph + y + t) * pw + x + l];
            if (same) {
                found++;
                *top = t;
                *left = l;
            }
        }
    free(padded);
    if (found != 1) fail_msg("the augmented sample matches %d windows of the padded image", found);
}

static void test_augment_identity_and_determinism(void **state)
{
    (void)state;
    float in[AC * AH * AW], a[AC * AH * AW], b[AC * AH * AW];
    aug_sample(in);
    for (int idx = 0; idx < 50; idx++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, 0, 0, apad, 7, 3, idx);
        assert_memory_equal(a, in, sizeof a);
    }
    /* The same (seed, epoch, index) gives the same result; some other index does not. */
    int differ = 0;
    for (int idx = 0; idx < 20; idx++) {
        memcpy(a, in, sizeof a);
        memcpy(b, in, sizeof b);
        io_augment(a, AC, AH, AW, AP, 1, apad, 7, 3, idx);
        io_augment(b, AC, AH, AW, AP, 1, apad, 7, 3, idx);
        assert_memory_equal(a, b, sizeof a);
        memcpy(b, in, sizeof b);
        io_augment(b, AC, AH, AW, AP, 1, apad, 7, 3, idx + 1000);
        differ += memcmp(a, b, sizeof a) != 0;
        memcpy(b, in, sizeof b);
        io_augment(b, AC, AH, AW, AP, 1, apad, 8, 3, idx); /* another seed */
        differ += memcmp(a, b, sizeof a) != 0;
    }
    assert_true(differ >= 30);
}

static void test_augment_flip(void **state)
{
    (void)state;
    float in[AC * AH * AW], a[AC * AH * AW];
    aug_sample(in);
    int flipped = 0;
    for (int idx = 0; idx < 200; idx++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, 0, 1, apad, 11, 0, idx);
        if (memcmp(a, in, sizeof a) != 0) {
            /* A mirror image, row by row. */
            for (int r = 0; r < AC * AH; r++)
                for (int x = 0; x < AW; x++) assert_true(a[r * AW + x] == in[r * AW + AW - 1 - x]);
            flipped++;
        }
        /* The same flip again restores the sample. */
        io_augment(a, AC, AH, AW, 0, 1, apad, 11, 0, idx);
        assert_memory_equal(a, in, sizeof a);
    }
    assert_in_range(flipped, 70, 130); /* probability 0.5 */

    /* An odd width keeps its middle column; a width of 1 is unchanged. */
    float odd[3] = {1, 2, 3}, one[2] = {4, 5};
    for (int idx = 0; idx < 8; idx++) {
        io_augment(odd, 1, 1, 3, 0, 1, NULL, 1, 0, idx);
        assert_true(odd[1] == 2.0f);
        io_augment(one, 1, 2, 1, 0, 1, NULL, 1, 0, idx);
        assert_true(one[0] == 4.0f && one[1] == 5.0f);
    }
}

static void test_augment_crop(void **state)
{
    (void)state;
    float in[AC * AH * AW], a[AC * AH * AW];
    aug_sample(in);
    int seen[2 * AP + 1][2 * AP + 1];
    memset(seen, 0, sizeof seen);
    for (int idx = 0; idx < 500; idx++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, AP, 0, apad, 5, 0, idx);
        int t = -1, l = -1;
        find_window(in, a, AP, &t, &l); /* padding holds the pad value, the rest is shifted */
        seen[t][l]++;
    }
    /* Every window is used, about equally (500 / 25 = 20 each). */
    for (int t = 0; t <= 2 * AP; t++)
        for (int l = 0; l <= 2 * AP; l++) assert_in_range(seen[t][l], 5, 40);

    /* Different epochs give a sample different crops. */
    int first_t = -1, first_l = -1, changes = 0;
    for (int epoch = 0; epoch < 20; epoch++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, AP, 0, apad, 5, epoch, 17);
        int t = -1, l = -1;
        find_window(in, a, AP, &t, &l);
        if (epoch == 0) first_t = t, first_l = l;
        else changes += t != first_t || l != first_l;
    }
    assert_true(changes >= 10);

    /* A crop then a flip: the flipped result is a mirrored window. */
    for (int idx = 0; idx < 40; idx++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, AP, 1, apad, 5, 0, idx);
        float m[AC * AH * AW], crop_only[AC * AH * AW];
        memcpy(crop_only, in, sizeof crop_only);
        io_augment(crop_only, AC, AH, AW, AP, 0, apad, 5, 0, idx); /* same window */
        for (int r = 0; r < AC * AH; r++)
            for (int x = 0; x < AW; x++) m[r * AW + x] = crop_only[r * AW + AW - 1 - x];
        assert_true(memcmp(a, crop_only, sizeof a) == 0 || memcmp(a, m, sizeof a) == 0);
    }

    /* Padding wider than the image: some windows are all padding. */
    int all_pad = 0;
    for (int idx = 0; idx < 100; idx++) {
        memcpy(a, in, sizeof a);
        io_augment(a, AC, AH, AW, 8, 0, apad, 5, 0, idx);
        int pads = 0;
        for (int k = 0; k < AC; k++)
            for (int i = 0; i < AH * AW; i++) pads += a[k * AH * AW + i] == apad[k];
        all_pad += pads == AC * AH * AW;
    }
    assert_true(all_pad > 0);

    /* The pad values for normalised data: -mean/std. */
    float pad[2];
    const float mean[2] = {IO_FASHION_MNIST_MEAN, 0.5f}, sd[2] = {IO_FASHION_MNIST_STD, 0.25f};
    io_augment_pad_values(pad, 2, mean, sd);
    assert_true(pad[0] == -IO_FASHION_MNIST_MEAN / IO_FASHION_MNIST_STD);
    assert_true(pad[1] == -2.0f);
}

/* ---------------------------------------------------------------------------------------
 * Sharding.
 */

static void test_shard(void **state)
{
    (void)state;
    const int ns[] = {10, 11, 60000, 7};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        const int n = ns[t];
        int *whole = malloc((size_t)n * sizeof(int)), *mine = malloc((size_t)n * sizeof(int));
        int *again = malloc((size_t)n * sizeof(int));
        char *seen = malloc((size_t)n);
        int count = -1;
        /* world 1: a full permutation, not the identity, and another one next epoch. */
        assert_int_equal(io_shard(whole, &count, n, 0, 1, 123, 0), 0);
        assert_int_equal(count, n);
        memset(seen, 0, (size_t)n);
        int fixed = 0;
        for (int i = 0; i < n; i++) {
            assert_in_range(whole[i], 0, n - 1);
            assert_int_equal(seen[whole[i]], 0);
            seen[whole[i]] = 1;
            fixed += whole[i] == i;
        }
        assert_true(fixed < n);

        for (int world = 1; world <= 4; world++) {
            int epoch_differs = 0;
            for (int epoch = 0; epoch < 4; epoch++) {
                assert_int_equal(io_shard(whole, &count, n, 0, 1, 123, epoch), 0);
                memset(seen, 0, (size_t)n);
                int total = 0;
                for (int rank = 0; rank < world; rank++) {
                    int c1 = -1, c2 = -1;
                    assert_int_equal(io_shard(mine, &c1, n, rank, world, 123, epoch), 0);
                    assert_int_equal(c1, n / world); /* equal shares */
                    /* The same on every call. */
                    assert_int_equal(io_shard(again, &c2, n, rank, world, 123, epoch), 0);
                    assert_int_equal(c2, c1);
                    assert_memory_equal(mine, again, (size_t)c1 * sizeof(int));
                    for (int i = 0; i < c1; i++) {
                        assert_in_range(mine[i], 0, n - 1);
                        assert_int_equal(seen[mine[i]], 0); /* disjoint */
                        seen[mine[i]] = 1;
                        /* DistributedSampler's layout: perm[rank + i * world]. */
                        assert_int_equal(mine[i], whole[rank + (size_t)i * world]);
                    }
                    total += c1;
                    /* Another epoch, another order. */
                    if (epoch > 0) {
                        assert_int_equal(io_shard(again, &c2, n, rank, world, 123, 0), 0);
                        epoch_differs += memcmp(mine, again, (size_t)c1 * sizeof(int)) != 0;
                    }
                }
                /* Complete but for the dropped tail of at most world - 1 samples. */
                assert_int_equal(total, (n / world) * world);
                assert_true(n - total <= world - 1);
                int covered = 0;
                for (int i = 0; i < n; i++) covered += seen[i];
                assert_int_equal(covered, total);
            }
            assert_true(epoch_differs > 0);
        }
        /* Another seed, another order. */
        assert_int_equal(io_shard(mine, &count, n, 0, 1, 124, 0), 0);
        assert_int_equal(io_shard(again, &count, n, 0, 1, 123, 0), 0);
        assert_true(memcmp(mine, again, (size_t)n * sizeof(int)) != 0);
        free(whole);
        free(mine);
        free(again);
        free(seen);
    }
}

static void test_shard_errors(void **state)
{
    (void)state;
    int out[16], count = 99;
    assert_int_equal(io_shard(out, &count, 10, 0, 0, 1, 0), NN_EINVAL);
    tu_expect_msg("world size 0");
    assert_int_equal(count, 0);
    assert_int_equal(io_shard(out, &count, 10, -1, 2, 1, 0), NN_EINVAL);
    tu_expect_msg("rank -1", "[0, 2)");
    assert_int_equal(io_shard(out, &count, 10, 2, 2, 1, 0), NN_EINVAL);
    tu_expect_msg("rank 2");
    assert_int_equal(io_shard(out, &count, 3, 0, 4, 1, 0), NN_EINVAL);
    tu_expect_msg("3 samples over 4 ranks", "n = 3", "world = 4");
    assert_int_equal(io_shard(out, &count, 0, 0, 1, 1, 0), NN_EINVAL);
    assert_int_equal(io_shard(NULL, &count, 10, 0, 1, 1, 0), NN_EINVAL);
    assert_int_equal(io_shard(out, NULL, 10, 0, 1, 1, 0), NN_EINVAL);
}

static void test_check_batch(void **state)
{
    (void)state;
    assert_int_equal(io_check_batch(50, 50, 2), 0);
    assert_int_equal(io_check_batch(50, 1, 2), 0);
    assert_int_equal(io_check_batch(50, 64, 2), NN_EINVAL);
    assert_string_equal(nn_errmsg(), "batch size 64 is larger than a rank's share of 50 samples "
                                     "(100 samples over 2 ranks)");
    assert_int_equal(io_check_batch(50, 0, 2), NN_EINVAL);
    tu_expect_msg("batch size 0");
    assert_int_equal(io_check_batch(50, 8, 0), NN_EINVAL);
    tu_expect_msg("world size 0");
    assert_int_equal(io_check_batch(0, 8, 2), NN_EINVAL);

    /* With io_shard's count: Fashion-MNIST's test split over 3 ranks. */
    int *out = malloc(10000 * sizeof(int)), count;
    assert_int_equal(io_shard(out, &count, 10000, 1, 3, 1, 0), 0);
    assert_int_equal(io_check_batch(count, 3333, 3), 0);
    assert_int_equal(io_check_batch(count, 3334, 3), NN_EINVAL);
    tu_expect_msg("share of 3333 samples (9999 samples over 3 ranks)");
    free(out);
}

static void test_check_labels(void **state)
{
    (void)state;
    io_dataset ds;
    make_u8(&ds, 6, 1, 1, 1, 5);
    assert_int_equal(io_check_labels(&ds, 5, "train"), 0);
    assert_int_equal(io_check_labels(&ds, 100, NULL), 0);
    ds.labels[3] = 7;
    assert_int_equal(io_check_labels(&ds, 5, "the training data (x.h5)"), NN_ERANGE);
    tu_expect_msg("the training data (x.h5)", "sample 3 has label 7", "5 classes");
    ds.labels[3] = -1;
    assert_int_equal(io_check_labels(&ds, 5, NULL), NN_ERANGE);
    tu_expect_msg("the dataset", "sample 3 has label -1");
    assert_int_equal(io_check_labels(&ds, 0, "x"), NN_EINVAL);
    assert_int_equal(io_check_labels(NULL, 10, "x"), NN_EINVAL);
    io_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------
 * Set-up.
 */

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata_test_data");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_h5_round_trip_u8),
        cmocka_unit_test(test_h5_round_trip_f32),
        cmocka_unit_test(test_h5_foreign_types),
        cmocka_unit_test(test_h5_missing_file),
        cmocka_unit_test(test_h5_not_hdf5),
        cmocka_unit_test(test_h5_truncated_and_damaged),
        cmocka_unit_test(test_h5_missing_datasets),
        cmocka_unit_test(test_h5_wrong_rank),
        cmocka_unit_test(test_h5_count_mismatch),
        cmocka_unit_test(test_h5_unsupported_dtype),
        cmocka_unit_test(test_h5_bad_labels),
        cmocka_unit_test(test_h5_bad_attributes_and_values),
        cmocka_unit_test(test_h5_error_printing),
        cmocka_unit_test(test_h5_save_bad_input),
        cmocka_unit_test(test_convert_small),
        cmocka_unit_test(test_convert_fashion_mnist),
        cmocka_unit_test(test_to_float_channels),
        cmocka_unit_test(test_synthetic),
        cmocka_unit_test(test_data_open),
        cmocka_unit_test(test_augment_identity_and_determinism),
        cmocka_unit_test(test_augment_flip),
        cmocka_unit_test(test_augment_crop),
        cmocka_unit_test(test_shard),
        cmocka_unit_test(test_shard_errors),
        cmocka_unit_test(test_check_batch),
        cmocka_unit_test(test_check_labels),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
