/*
 * IDX dataset reading: the real Fashion-MNIST from Debian's dataset-fashion-mnist, small
 * IDX files written here (gzipped and raw) that round-trip, and every kind of bad input,
 * each of which must give the right code and a message naming the file and the value.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"
#include "nn/nn.h"
#include "testutil.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---------------------------------------------------------------------------------------
 * Helpers.
 */

/* Writes bytes to tu_tmpdir()/name, gzipped when gz; the full path goes to path. */
static void write_file(char *path, size_t plen, const char *name, const void *bytes, size_t len,
                       int gz)
{
    tu_tmp_path(path, plen, name);
    tu_write_file(path, bytes, len, gz);
}

/* An IDX file in memory: magic, dims, then payload bytes (payload_len of them, which
 * may differ from what the dims declare, to make truncated files). Returns the length. */
static size_t make_idx(unsigned char *buf, uint32_t magic, int ndims, const uint32_t *dims,
                       const uint8_t *payload, size_t payload_len)
{
    tu_put_be32(buf, magic);
    for (int i = 0; i < ndims; i++) tu_put_be32(buf + 4 + 4 * i, dims[i]);
    size_t off = 4 + 4 * (size_t)ndims;
    if (payload_len) memcpy(buf + off, payload, payload_len);
    return off + payload_len;
}

/* A small valid dataset: 3 images of 2 x 3 and labels {4, 0, 2}. */
enum { SN = 3, SH = 2, SW = 3 };
static const uint8_t small_px[SN * SH * SW] = {0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255,
                                               17, 0, 128, 64, 32, 200};
static const uint8_t small_lb[SN] = {4, 0, 2};

/* Writes the small dataset's image and label files (gzipped or raw) with the given
 * magics, counts and payload lengths; paths go to ip and lp. */
static void write_small(char *ip, char *lp, size_t plen, const char *tag, int gz,
                        uint32_t imagic, uint32_t in, size_t ipay, uint32_t lmagic, uint32_t ln,
                        size_t lpay)
{
    unsigned char buf[256];
    char name[64];
    const uint32_t idims[3] = {in, SH, SW};
    const uint32_t ldims[1] = {ln};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", tag, gz ? ".gz" : "");
    write_file(ip, plen, name, buf, make_idx(buf, imagic, 3, idims, small_px, ipay), gz);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", tag, gz ? ".gz" : "");
    write_file(lp, plen, name, buf, make_idx(buf, lmagic, 1, ldims, small_lb, lpay), gz);
}

#define GOOD_IMAGES 0x00000803u, SN, sizeof small_px
#define GOOD_LABELS 0x00000801u, SN, sizeof small_lb

static int group_setup(void **state)
{
    (void)state;
    /* Every file this test makes lies directly in the temporary directory. */
    return tu_tmpdir_make("strata_test_io");
}

/* ---------------------------------------------------------------------------------------
 * The real Fashion-MNIST. The expected values were read from the files with zcat and od
 * and with Python's gzip module, not with this code.
 */

static void require_fashion_mnist(void)
{
    static const char *const files[] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", FMNIST_DIR, files[i]);
        if (access(p, R_OK) != 0)
            fail_msg("%s: %s. Install Debian's dataset-fashion-mnist package "
                     "(apt-get install dataset-fashion-mnist): this test needs the real data",
                     p, strerror(errno));
    }
}

static long pixel_sum(const io_dataset *ds, int sample)
{
    const size_t per = (size_t)ds->c * ds->h * ds->w;
    long s = 0;
    for (size_t k = 0; k < per; k++) s += ds->images[(size_t)sample * per + k];
    return s;
}

static void check_class_counts(const io_dataset *ds, int each)
{
    int counts[10] = {0};
    for (int i = 0; i < ds->n; i++) {
        assert_in_range(ds->labels[i], 0, 9);
        counts[ds->labels[i]]++;
    }
    for (int k = 0; k < 10; k++) assert_int_equal(counts[k], each);
}

/* What one split of the real Fashion-MNIST must hold. */
typedef struct {
    int n;              /* samples, each 1 x 28 x 28; every class (of 10) appears n / 10 times */
    int32_t head[8];    /* the first 8 labels */
    int32_t tail[5];    /* the last 5 labels */
    uint8_t px[10];     /* pixels 300..309 of the first image */
    long sum;           /* the first image's pixel sum */
} fmnist_split;

static const fmnist_split fmnist_train = {
    .n = 60000,
    .head = {9, 0, 0, 3, 0, 2, 7, 2},
    .tail = {5, 1, 3, 0, 5},
    .px = {0xd2, 0xd3, 0xd5, 0xdf, 0xdc, 0xf3, 0xca, 0, 0, 0},
    .sum = 76247,
};
static const fmnist_split fmnist_test = {
    .n = 10000,
    .head = {9, 2, 1, 1, 6, 1, 4, 6},
    .tail = {9, 1, 8, 1, 5},
    .px = {0x9d, 0xa6, 0x87, 0x9a, 0xa8, 0x8c, 0, 0, 0, 0},
    .sum = 33456,
};

/* Loads a split with io_fashion_mnist_load(ds, dir, train), failing the test on an error,
 * and checks it against want. The caller frees *ds. */
static void load_fashion_mnist(io_dataset *ds, const char *dir, int train,
                               const fmnist_split *want)
{
    int rc = io_fashion_mnist_load(ds, dir, train);
    if (rc) fail_msg("io_fashion_mnist_load(%s): %s", train ? "train" : "test", nn_errmsg());
    assert_int_equal(ds->n, want->n);
    assert_int_equal(ds->c, 1);
    assert_int_equal(ds->h, 28);
    assert_int_equal(ds->w, 28);
    assert_int_equal(ds->classes, 10);

    for (int i = 0; i < 8; i++) assert_int_equal(ds->labels[i], want->head[i]);
    for (int i = 0; i < 5; i++) assert_int_equal(ds->labels[ds->n - 5 + i], want->tail[i]);
    check_class_counts(ds, want->n / 10);

    assert_memory_equal(ds->images + 300, want->px, sizeof want->px);
    assert_int_equal(pixel_sum(ds, 0), want->sum);
}

static void test_fashion_mnist_train(void **state)
{
    (void)state;
    require_fashion_mnist();
    io_dataset ds;
    load_fashion_mnist(&ds, NULL, 1, &fmnist_train);

    /* The documented normalisation constants come from this split: mean 0.286041,
     * std 0.353024 of x/255 over every pixel. */
    double s = 0, s2 = 0;
    const size_t total = (size_t)ds.n * ds.h * ds.w;
    for (size_t k = 0; k < total; k++) {
        double x = ds.images[k] / 255.0;
        s += x;
        s2 += x * x;
    }
    double mean = s / (double)total, sd = sqrt(s2 / (double)total - mean * mean);
    assert_true(fabs(mean - 0.2860406) < 1e-6);
    assert_true(fabs(sd - 0.3530242) < 1e-6);
    assert_true(fabs(mean - IO_FASHION_MNIST_MEAN) < 5e-5);
    assert_true(fabs(sd - IO_FASHION_MNIST_STD) < 5e-5);

    io_dataset_free(&ds);
    tu_expect_zeroed(&ds);
    io_dataset_free(&ds); /* twice is safe */
}

static void test_fashion_mnist_test(void **state)
{
    (void)state;
    require_fashion_mnist();
    io_dataset ds;
    load_fashion_mnist(&ds, FMNIST_DIR, 0, &fmnist_test);
    io_dataset_free(&ds);
}

/* ---------------------------------------------------------------------------------------
 * Small files: round trip.
 */

static void check_small(const io_dataset *ds)
{
    assert_int_equal(ds->n, SN);
    assert_int_equal(ds->c, 1);
    assert_int_equal(ds->h, SH);
    assert_int_equal(ds->w, SW);
    assert_int_equal(ds->classes, 5);
    assert_memory_equal(ds->images, small_px, sizeof small_px);
    for (int i = 0; i < SN; i++) assert_int_equal(ds->labels[i], small_lb[i]);
}

static void test_round_trip(void **state)
{
    (void)state;
    char ip[512], lp[512];
    for (int gz = 0; gz <= 1; gz++) {
        write_small(ip, lp, sizeof ip, "rt", gz, GOOD_IMAGES, GOOD_LABELS);
        io_dataset ds;
        int rc = io_idx_load(&ds, ip, lp);
        if (rc) fail_msg("io_idx_load(%s): %s", gz ? "gz" : "raw", nn_errmsg());
        check_small(&ds);
        io_dataset_free(&ds);
    }
    /* A gzipped image file with a raw label file. */
    char ip2[512], lp2[512];
    write_small(ip, lp, sizeof ip, "mixgz", 1, GOOD_IMAGES, GOOD_LABELS);
    write_small(ip2, lp2, sizeof ip2, "mixraw", 0, GOOD_IMAGES, GOOD_LABELS);
    io_dataset ds;
    assert_int_equal(io_idx_load(&ds, ip, lp2), 0);
    check_small(&ds);
    io_dataset_free(&ds);
}

/* Fashion-MNIST's file names in a directory of our own; uncompressed files are found when
 * the .gz ones are missing. */
static void test_fashion_mnist_dir(void **state)
{
    (void)state;
    char ip[512], lp[512];
    write_small(ip, lp, sizeof ip, "t10k", 0, GOOD_IMAGES, GOOD_LABELS);
    io_dataset ds;
    int rc = io_fashion_mnist_load(&ds, tu_tmpdir(), 0);
    if (rc) fail_msg("io_fashion_mnist_load(%s): %s", tu_tmpdir(), nn_errmsg());
    check_small(&ds);
    io_dataset_free(&ds);

    /* The train split is not there: NN_EIO, the path, and how to get the data. */
    memset(&ds, 0x5a, sizeof ds);
    assert_int_equal(io_fashion_mnist_load(&ds, tu_tmpdir(), 1), NN_EIO);
    tu_expect_zeroed(&ds);
    tu_expect_msg(tu_tmpdir(), "train-images-idx3-ubyte.gz", strerror(ENOENT),
                  "dataset-fashion-mnist");
}

/* ---------------------------------------------------------------------------------------
 * Bad input. Each case runs on gzipped and raw files. The struct is filled with junk first
 * to check that a failure zeroes it.
 */

static int load_junk(io_dataset *ds, const char *ip, const char *lp)
{
    memset(ds, 0x5a, sizeof *ds);
    int rc = io_idx_load(ds, ip, lp);
    tu_expect_zeroed(ds);
    return rc;
}

static void test_missing_file(void **state)
{
    (void)state;
    char ip[512], lp[512], nope[512];
    io_dataset ds;
    write_small(ip, lp, sizeof ip, "miss", 1, GOOD_IMAGES, GOOD_LABELS);
    tu_tmp_path(nope, sizeof nope, "no-such-file.gz");

    assert_int_equal(load_junk(&ds, nope, lp), NN_EIO);
    tu_expect_msg(nope, strerror(ENOENT));
    assert_int_equal(load_junk(&ds, ip, nope), NN_EIO);
    tu_expect_msg(nope, strerror(ENOENT));
    /* A directory opens but cannot be read. */
    assert_int_equal(load_junk(&ds, tu_tmpdir(), lp), NN_EIO);
    tu_expect_msg(tu_tmpdir(), strerror(EISDIR));
    /* NULL arguments. */
    assert_int_equal(load_junk(&ds, NULL, lp), NN_EINVAL);
    assert_int_equal(io_idx_load(NULL, ip, lp), NN_EINVAL);
}

static void test_bad_magic(void **state)
{
    (void)state;
    char ip[512], lp[512];
    io_dataset ds;
    for (int gz = 0; gz <= 1; gz++) {
        write_small(ip, lp, sizeof ip, "magic1", gz, 0x12345678u, SN, sizeof small_px,
                    GOOD_LABELS);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "0x12345678", "0x00000803");

        write_small(ip, lp, sizeof ip, "magic2", gz, GOOD_IMAGES, 0x00000803u, SN,
                    sizeof small_lb);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(lp, "0x00000803", "0x00000801", "swapped");

        /* Image and label paths swapped. */
        write_small(ip, lp, sizeof ip, "magic3", gz, GOOD_IMAGES, GOOD_LABELS);
        assert_int_equal(load_junk(&ds, lp, ip), NN_EFORMAT);
        tu_expect_msg(lp, "0x00000801", "0x00000803", "swapped");

        /* Signed-byte images (type 0x09). */
        write_small(ip, lp, sizeof ip, "magic4", gz, 0x00000903u, SN, sizeof small_px,
                    GOOD_LABELS);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "0x00000903", "not unsigned bytes");
    }
    /* Not an IDX file at all, and an empty file. */
    static const char text[] = "hello, world\n";
    write_file(ip, sizeof ip, "text.txt", text, sizeof text - 1, 0);
    assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
    tu_expect_msg(ip, "0x68656c6c", "0x00000803");
    write_file(ip, sizeof ip, "empty", "", 0, 0);
    assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
    tu_expect_msg(ip, "expected 16 header bytes, got 0");
}

static void test_bad_dims(void **state)
{
    (void)state;
    char ip[512], lp[512];
    io_dataset ds;
    unsigned char buf[64];
    for (int gz = 0; gz <= 1; gz++) {
        write_small(ip, lp, sizeof ip, "dims", gz, GOOD_IMAGES, GOOD_LABELS);

        const uint32_t zero_h[3] = {SN, 0, SW};
        write_file(ip, sizeof ip, gz ? "zero.gz" : "zero", buf,
                   make_idx(buf, 0x00000803u, 3, zero_h, small_px, sizeof small_px), gz);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "dimension 1 of 3 is 0");

        const uint32_t zero_n[1] = {0};
        write_small(ip, lp, sizeof ip, "dims2", gz, GOOD_IMAGES, GOOD_LABELS);
        write_file(lp, sizeof lp, gz ? "zerolab.gz" : "zerolab", buf,
                   make_idx(buf, 0x00000801u, 1, zero_n, NULL, 0), gz);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(lp, "dimension 0 of 1 is 0");

        /* 70000 x 70000 x 70000 elements: refused before any allocation. */
        const uint32_t huge[3] = {70000, 70000, 70000};
        write_file(ip, sizeof ip, gz ? "huge.gz" : "huge", buf,
                   make_idx(buf, 0x00000803u, 3, huge, small_px, sizeof small_px), gz);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "dimension 1 is 70000", "268435456");

        /* 4294967295 labels. */
        const uint32_t many[1] = {0xffffffffu};
        write_small(ip, lp, sizeof ip, "dims3", gz, GOOD_IMAGES, GOOD_LABELS);
        write_file(lp, sizeof lp, gz ? "many.gz" : "many", buf,
                   make_idx(buf, 0x00000801u, 1, many, small_lb, sizeof small_lb), gz);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(lp, "4294967295");
    }
}

static void test_truncated(void **state)
{
    (void)state;
    char ip[512], lp[512];
    io_dataset ds;
    for (int gz = 0; gz <= 1; gz++) {
        /* Images: 18 pixels declared, 10 present. */
        write_small(ip, lp, sizeof ip, "trunc1", gz, 0x00000803u, SN, 10, GOOD_LABELS);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "truncated", "expected 18 bytes", "got 10");

        /* Labels: 3 declared, 1 present. */
        write_small(ip, lp, sizeof ip, "trunc2", gz, GOOD_IMAGES, 0x00000801u, SN, 1);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(lp, "truncated", "expected 3 bytes", "got 1");

        /* A header cut after the magic and one dimension. */
        unsigned char buf[64];
        const uint32_t d[3] = {SN, SH, SW};
        write_file(ip, sizeof ip, gz ? "trunc3.gz" : "trunc3", buf,
                   make_idx(buf, 0x00000803u, 3, d, NULL, 0) - 8, gz);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, "expected 16 header bytes, got 8");
    }
}

/* Damaged gzip streams: cut short, and with a wrong CRC in the trailer. */
static void test_corrupt_gzip(void **state)
{
    (void)state;
    char ip[512], lp[512], cut[512];
    io_dataset ds;
    write_small(ip, lp, sizeof ip, "gzbad", 1, GOOD_IMAGES, GOOD_LABELS);

    unsigned char gzbytes[512];
    FILE *f = fopen(ip, "rb");
    assert_non_null(f);
    size_t len = fread(gzbytes, 1, sizeof gzbytes, f);
    fclose(f);
    assert_true(len > 20 && len < sizeof gzbytes);

    /* The stream cut in the middle of its compressed data: fewer bytes than declared. */
    write_file(cut, sizeof cut, "cut.gz", gzbytes, len - 12, 0);
    assert_int_equal(load_junk(&ds, cut, lp), NN_EFORMAT);
    tu_expect_msg(cut, "truncated");

    /* The CRC-32 in the trailer (the last 8 bytes are CRC-32 and length) is wrong. */
    gzbytes[len - 8] ^= 0xff;
    write_file(cut, sizeof cut, "crc.gz", gzbytes, len, 0);
    assert_int_equal(load_junk(&ds, cut, lp), NN_EFORMAT);
    tu_expect_msg(cut, "corrupt");
}

/* A larger, incompressible gzip file (1000 images of 28 x 28): it round-trips, and a wrong
 * CRC in its trailer is found even though the last pixel arrives before zlib reaches the
 * trailer. */
static void test_large_gzip(void **state)
{
    (void)state;
    enum { LN = 1000, LP = 28 * 28 };
    const size_t ilen = 16 + (size_t)LN * LP, llen = 8 + LN;
    unsigned char *ibuf = malloc(ilen), *lbuf = malloc(llen);
    assert_non_null(ibuf);
    assert_non_null(lbuf);
    uint32_t x = 12345;
    for (size_t k = 16; k < ilen; k++) {
        x = x * 1664525u + 1013904223u;
        ibuf[k] = (unsigned char)(x >> 24);
    }
    for (int i = 0; i < LN; i++) lbuf[8 + i] = (unsigned char)(i % 7);
    const uint32_t idims[3] = {LN, 28, 28}, ldims[1] = {LN};
    make_idx(ibuf, 0x00000803u, 3, idims, NULL, 0);
    make_idx(lbuf, 0x00000801u, 1, ldims, NULL, 0);

    char ip[512], lp[512], bad[512];
    write_file(ip, sizeof ip, "large-images.gz", ibuf, ilen, 1);
    write_file(lp, sizeof lp, "large-labels.gz", lbuf, llen, 1);
    io_dataset ds;
    int rc = io_idx_load(&ds, ip, lp);
    if (rc) fail_msg("io_idx_load(large): %s", nn_errmsg());
    assert_int_equal(ds.n, LN);
    assert_int_equal(ds.h, 28);
    assert_int_equal(ds.w, 28);
    assert_int_equal(ds.classes, 7);
    assert_memory_equal(ds.images, ibuf + 16, (size_t)LN * LP);
    for (int i = 0; i < LN; i++) assert_int_equal(ds.labels[i], i % 7);
    io_dataset_free(&ds);

    /* Flip a bit of the CRC-32 (the 8 bytes before the end are CRC-32, then length). */
    FILE *f = fopen(ip, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long glen = ftell(f);
    assert_true(glen > (long)(ilen / 2));
    unsigned char *gz = malloc((size_t)glen);
    assert_non_null(gz);
    rewind(f);
    assert_int_equal(fread(gz, 1, (size_t)glen, f), (size_t)glen);
    fclose(f);
    gz[glen - 8] ^= 0x01;
    write_file(bad, sizeof bad, "large-crc.gz", gz, (size_t)glen, 0);
    assert_int_equal(load_junk(&ds, bad, lp), NN_EFORMAT);
    tu_expect_msg(bad, "corrupt", "incorrect data check");
    free(gz);
    free(ibuf);
    free(lbuf);
}

static void test_count_mismatch(void **state)
{
    (void)state;
    char ip[512], lp[512];
    io_dataset ds;
    for (int gz = 0; gz <= 1; gz++) {
        write_small(ip, lp, sizeof ip, "count", gz, GOOD_IMAGES, 0x00000801u, 2, 2);
        assert_int_equal(load_junk(&ds, ip, lp), NN_EFORMAT);
        tu_expect_msg(ip, lp, "3 images", "2 labels");
    }
}

/* ---------------------------------------------------------------------------------------
 * Conversion to float.
 */

static void test_to_float(void **state)
{
    (void)state;
    char ip[512], lp[512];
    io_dataset ds;
    write_small(ip, lp, sizeof ip, "float", 0, GOOD_IMAGES, GOOD_LABELS);
    assert_int_equal(io_idx_load(&ds, ip, lp), 0);

    const int per = SH * SW;
    float out[3 * SH * SW];
    const float mean = 0.5f, sd = 0.25f;

    /* A batch in another order with a repeat: (x/255 - 0.5)/0.25, so 0 -> -2, 255 -> 2. */
    const int idx[3] = {1, 0, 1};
    io_dataset_to_float(out, &ds, idx, 3, &mean, &sd);
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < per; k++) {
            double want = ((double)small_px[idx[i] * per + k] / 255.0 - 0.5) / 0.25;
            assert_true(fabs(out[i * per + k] - want) < 1e-6);
        }
    assert_true(out[0 * per + 5] == 2.0f);  /* sample 1, pixel 255 */
    assert_true(out[1 * per + 0] == -2.0f); /* sample 0, pixel 0 */

    /* indices NULL: samples 0, 1. */
    float out2[2 * SH * SW];
    io_dataset_to_float(out2, &ds, NULL, 2, &mean, &sd);
    for (int k = 0; k < 2 * per; k++) {
        double want = ((double)small_px[k] / 255.0 - 0.5) / 0.25;
        assert_true(fabs(out2[k] - want) < 1e-6);
    }

    /* Fashion-MNIST's constants: a zero pixel maps to -mean/std. */
    io_dataset_to_float(out2, &ds, NULL, 1, (float[]){IO_FASHION_MNIST_MEAN},
                        (float[]){IO_FASHION_MNIST_STD});
    assert_true(fabs(out2[0] - (-0.2860 / 0.3530)) < 1e-6);
    io_dataset_free(&ds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_mnist_train),
        cmocka_unit_test(test_fashion_mnist_test),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_fashion_mnist_dir),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_bad_dims),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt_gzip),
        cmocka_unit_test(test_large_gzip),
        cmocka_unit_test(test_count_mismatch),
        cmocka_unit_test(test_to_float),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
