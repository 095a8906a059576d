/*
 * IDX datasets (the MNIST family's format), gzipped or not.
 *
 * An IDX file is a 4-byte magic number (two zero bytes, a type byte, a dimension count),
 * one big-endian uint32 per dimension, then the elements in row-major order. strata reads
 * the unsigned-byte type (0x08) only: images are 0x00000803 (n, h, w) and labels
 * 0x00000801 (n). Files are read through zlib's gz* interface, which passes uncompressed
 * files through unchanged, so both forms load the same way. The whole file is read, so a
 * gzip trailer (CRC-32 and length) is always checked; bytes after the declared
 * elements are otherwise ignored.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "nn/nn.h"

#define IO__IDX_MAGIC_IMAGES 0x00000803u
#define IO__IDX_MAGIC_LABELS 0x00000801u
#define IO__FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

static uint32_t io__be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* zlib's message for the last error on gz, without the "<fd:N>: " it puts in front for a
 * file opened with gzdopen (the callers name the path themselves). *zerr gets the code. */
static const char *io__gz_errtext(gzFile gz, int *zerr)
{
    const char *msg = gzerror(gz, zerr);
    if (msg == NULL) return "";
    if (strncmp(msg, "<fd:", 4) == 0) {
        const char *colon = strstr(msg, ": ");
        if (colon) msg = colon + 2;
    }
    return msg;
}

/* Reads up to len bytes into buf; *got receives how many arrived before the end of the
 * data. Returns 0 (a short read is not an error here: the caller says what was expected),
 * or NN_EIO / NN_EFORMAT when zlib reports a read error or corrupt compressed data. */
static int io__gz_read(gzFile gz, const char *path, const char *what, void *buf, size_t len,
                       size_t *got)
{
    unsigned char *p = buf;
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        if (want > (size_t)1 << 30) want = (size_t)1 << 30;
        int r = gzread(gz, p + *got, (unsigned)want);
        if (r < 0) {
            int zerr = Z_OK;
            const char *msg = io__gz_errtext(gz, &zerr);
            if (zerr == Z_ERRNO)
                return nn_err(NN_EIO, "%s: cannot read the %s: %s", path, what, msg);
            return nn_err(NN_EFORMAT,
                          "%s: corrupt compressed data (found while reading the %s, "
                          "%zu bytes in): %s",
                          path, what, *got, msg);
        }
        if (r == 0) break;
        *got += (size_t)r;
    }
    return 0;
}

/* The text zlib left for a read that stopped early ("unexpected end of file" for a cut
 * gzip stream), as " (zlib: ...)" to append to a message, or "" when there is none. */
static const char *io__gz_note(gzFile gz, char *buf, size_t len)
{
    int zerr = Z_OK;
    const char *msg = io__gz_errtext(gz, &zerr);
    if (zerr == Z_OK || msg[0] == '\0') return "";
    snprintf(buf, len, " (zlib: %s)", msg);
    return buf;
}

/* What a magic number other than the expected one suggests the file is, as a note to append
 * to the message (" (that is an image file: ...)"), or "" when it suggests nothing. */
static const char *io__idx_magic_hint(uint32_t found)
{
    const unsigned type = (found >> 8) & 0xffu;
    if (found == IO__IDX_MAGIC_IMAGES || found == IO__IDX_MAGIC_LABELS)
        return found == IO__IDX_MAGIC_IMAGES
                   ? " (that is an image file: are the image and label paths swapped?)"
                   : " (that is a label file: are the image and label paths swapped?)";
    if ((found >> 16) == 0 && type == 0x08u)
        return " (an unsigned-byte IDX file with another number of dimensions)";
    if ((found >> 16) == 0 && (type == 0x09u || (type >= 0x0bu && type <= 0x0eu)))
        return " (an IDX file whose elements are not unsigned bytes)";
    return "";
}

/* Reads and checks the header: the magic, then the ndims dimensions (low byte of magic)
 * into dims, none 0 and their product, *elems, at most IO_IDX_MAX_ELEMS. 0, or NN_EFORMAT /
 * NN_EIO naming path. */
static int io__idx_header(gzFile gz, const char *path, uint32_t magic, const char *what,
                          uint32_t *dims, uint64_t *elems)
{
    const int ndims = (int)(magic & 0xffu);
    char note[160];
    unsigned char header[4 + 4 * 3];
    const size_t header_len = 4 + 4 * (size_t)ndims;
    size_t got = 0;
    int rc = io__gz_read(gz, path, "header", header, header_len, &got);
    if (rc) return rc;
    if (got < 4)
        return nn_err(NN_EFORMAT,
                      "%s: truncated file: expected %zu header bytes, got %zu%s (not an IDX file?)",
                      path, header_len, got, io__gz_note(gz, note, sizeof note));
    const uint32_t found = io__be32(header);
    if (found != magic)
        return nn_err(NN_EFORMAT, "%s: bad magic 0x%08x, expected 0x%08x (IDX%d unsigned-byte %s)%s",
                      path, (unsigned)found, (unsigned)magic, ndims, what,
                      io__idx_magic_hint(found));
    if (got < header_len)
        return nn_err(NN_EFORMAT, "%s: truncated file: expected %zu header bytes, got %zu%s", path,
                      header_len, got, io__gz_note(gz, note, sizeof note));
    *elems = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = io__be32(header + 4 + 4 * i);
        if (dims[i] == 0)
            return nn_err(NN_EFORMAT,
                          "%s: dimension %d of %d is 0 (every dimension must be at least 1)", path,
                          i, ndims);
        *elems *= dims[i]; /* at most 3 factors below 2^32 after the checks: cannot overflow */
        if (*elems > IO_IDX_MAX_ELEMS)
            return nn_err(NN_EFORMAT,
                          "%s: dimension %d is %u, which makes more than %u elements "
                          "(the limit is 1 << 28)",
                          path, i, (unsigned)dims[i], (unsigned)IO_IDX_MAX_ELEMS);
    }
    return 0;
}

/* Reads on to the end of gz, after the elems elements, so that zlib checks the gzip trailer
 * (CRC-32 and length): the last element can arrive before the trailer is looked at. Trailing
 * bytes of an uncompressed file are skipped the same way. 0, or NN_EIO / NN_EFORMAT. */
static int io__idx_drain(gzFile gz, const char *path, const char *what, uint64_t elems)
{
    unsigned char rest[4096];
    int r;
    while ((r = gzread(gz, rest, sizeof rest)) > 0) {
    }
    if (r >= 0) return 0;
    int zerr = Z_OK;
    const char *msg = io__gz_errtext(gz, &zerr);
    return nn_err(zerr == Z_ERRNO ? NN_EIO : NN_EFORMAT,
                  "%s: corrupt file after the %s (%llu bytes read): %s", path, what,
                  (unsigned long long)elems, msg);
}

/* Reads the elems elements that follow the header into a new buffer *data (the caller's to
 * free, even on failure), then the rest of the file through io__idx_drain. 0, or an error
 * naming path (a short file: NN_EFORMAT with the expected size). */
static int io__idx_elements(gzFile gz, const char *path, const char *what, int ndims,
                            const uint32_t *dims, uint64_t elems, uint8_t **data)
{
    char note[160];
    size_t got = 0;
    *data = malloc((size_t)elems);
    if (*data == NULL)
        return nn_err(NN_ENOMEM, "%s: cannot allocate %llu bytes for the %s", path,
                      (unsigned long long)elems, what);
    int rc = io__gz_read(gz, path, what, *data, (size_t)elems, &got);
    if (rc == 0 && got < (size_t)elems) {
        char shape[64] = "";
        if (ndims == 3)
            snprintf(shape, sizeof shape, " (%u x %u x %u)", (unsigned)dims[0], (unsigned)dims[1],
                     (unsigned)dims[2]);
        rc = nn_err(NN_EFORMAT, "%s: truncated file: expected %llu bytes of %s%s, got %zu%s",
                    path, (unsigned long long)elems, what, shape, got,
                    io__gz_note(gz, note, sizeof note));
    }
    if (rc == 0) rc = io__idx_drain(gz, path, what, elems);
    return rc;
}

/* Opens one IDX unsigned-byte file, checks its magic and dimensions, and reads its
 * elements into a new buffer (*data, owned by the caller). dims receives the ndims
 * dimensions (ndims is the low byte of magic). On failure *data is NULL. */
static int io__idx_read(const char *path, uint32_t magic, const char *what, uint32_t *dims,
                        uint8_t **data)
{
    const int ndims = (int)(magic & 0xffu);
    *data = NULL;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nn_err(NN_EIO, "cannot open %s: %s", path, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (gz == NULL) {
        close(fd);
        return nn_err(NN_ENOMEM, "%s: cannot set up zlib to read it", path);
    }
    gzbuffer(gz, 1u << 17);

    uint64_t elems = 0;
    int rc = io__idx_header(gz, path, magic, what, dims, &elems);
    if (rc == 0) rc = io__idx_elements(gz, path, what, ndims, dims, elems, data);
    gzclose_r(gz);
    if (rc) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

int io_idx_load(io_dataset *ds, const char *images_path, const char *labels_path)
{
    if (ds == NULL) return nn_err(NN_EINVAL, "io_idx_load: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (images_path == NULL || labels_path == NULL)
        return nn_err(NN_EINVAL, "io_idx_load: the %s path is NULL",
                      images_path == NULL ? "image" : "label");

    uint32_t idims[3], ldims[1];
    uint8_t *images = NULL, *raw_labels = NULL;
    int32_t *labels = NULL;
    int rc = io__idx_read(images_path, IO__IDX_MAGIC_IMAGES, "images", idims, &images);
    if (rc) return rc;
    rc = io__idx_read(labels_path, IO__IDX_MAGIC_LABELS, "labels", ldims, &raw_labels);
    if (rc) goto fail;
    if (idims[0] != ldims[0]) {
        rc = nn_err(NN_EFORMAT, "%s has %u images but %s has %u labels (the counts must match)",
                    images_path, (unsigned)idims[0], labels_path, (unsigned)ldims[0]);
        goto fail;
    }

    const size_t n = idims[0];
    labels = malloc(n * sizeof *labels);
    if (labels == NULL) {
        rc = nn_err(NN_ENOMEM, "%s: cannot allocate %zu labels", labels_path, n);
        goto fail;
    }
    int max_label = 0;
    for (size_t i = 0; i < n; i++) {
        labels[i] = raw_labels[i];
        if (raw_labels[i] > max_label) max_label = raw_labels[i];
    }
    free(raw_labels);

    /* Every count is at most 1 << 28 (checked while reading), so each fits an int. */
    ds->n = (int)n;
    ds->c = 1;
    ds->h = (int)idims[1];
    ds->w = (int)idims[2];
    ds->images = images;
    ds->labels = labels;
    ds->classes = max_label + 1;
    return 0;

fail:
    free(images);
    free(raw_labels);
    free(labels);
    memset(ds, 0, sizeof *ds);
    return rc;
}

/* Writes dir/name into buf, falling back to the name without ".gz" when the gzipped file
 * does not exist but the plain one does. */
static int io__dataset_path(char *buf, size_t len, const char *dir, const char *name)
{
    int k = snprintf(buf, len, "%s/%s.gz", dir, name);
    if (k < 0 || (size_t)k >= len)
        return nn_err(NN_EINVAL, "dataset directory path is too long (%zu bytes): %s", strlen(dir),
                      dir);
    if (access(buf, F_OK) != 0 && errno == ENOENT) {
        char plain[PATH_MAX];
        snprintf(plain, sizeof plain, "%s/%s", dir, name);
        if (access(plain, F_OK) == 0) memcpy(buf, plain, strlen(plain) + 1);
    }
    return 0;
}

int io_fashion_mnist_load(io_dataset *ds, const char *dir, int train)
{
    if (ds == NULL) return nn_err(NN_EINVAL, "io_fashion_mnist_load: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (dir == NULL) dir = IO__FASHION_MNIST_DIR;
    const char *split = train ? "train" : "t10k";
    char name[64], images[PATH_MAX], labels[PATH_MAX];

    snprintf(name, sizeof name, "%s-images-idx3-ubyte", split);
    int rc = io__dataset_path(images, sizeof images, dir, name);
    if (rc) return rc;
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte", split);
    rc = io__dataset_path(labels, sizeof labels, dir, name);
    if (rc) return rc;

    rc = io_idx_load(ds, images, labels);
    if (rc == NN_EIO) {
        char msg[PATH_MAX + 256];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        rc = nn_err(NN_EIO, "%s (Fashion-MNIST: install Debian's dataset-fashion-mnist package, "
                            "or give the directory that holds the IDX files)", msg);
    }
    return rc;
}

void io_dataset_free(io_dataset *ds)
{
    if (ds == NULL) return;
    free(ds->images);
    free(ds->images_f32);
    free(ds->labels);
    free(ds->norm_mean);
    free(ds->norm_std);
    memset(ds, 0, sizeof *ds);
}

void io_dataset_to_float(float *out, const io_dataset *ds, const int *indices, int count,
                         const float *mean, const float *std)
{
    NN_ASSERT(out != NULL || count == 0);
    NN_ASSERT(ds != NULL && count >= 0 && mean != NULL && std != NULL);
    NN_ASSERT((ds->images != NULL) != (ds->images_f32 != NULL) || count == 0);
    for (int k = 0; k < ds->c; k++) NN_ASSERT(std[k] > 0.0f);

    const size_t plane = (size_t)ds->h * ds->w;
    const size_t per = (size_t)ds->c * plane;
    /* Channel by channel: for byte data one table of the 256 values per channel, computed
     * as ToTensor then Normalize would; for float data the same affine map without /255. */
    for (int k = 0; k < ds->c; k++) {
        float lut[256];
        if (ds->images != NULL)
            for (int v = 0; v < 256; v++) lut[v] = ((float)v / 255.0f - mean[k]) / std[k];
        for (int i = 0; i < count; i++) {
            const int s = indices ? indices[i] : i;
            NN_ASSERT(s >= 0 && s < ds->n);
            float *dst = out + (size_t)i * per + (size_t)k * plane;
            if (ds->images != NULL) {
                const uint8_t *src = ds->images + (size_t)s * per + (size_t)k * plane;
                for (size_t p = 0; p < plane; p++) dst[p] = lut[src[p]];
            } else {
                const float *src = ds->images_f32 + (size_t)s * per + (size_t)k * plane;
                const float m = mean[k], sd = std[k];
                for (size_t p = 0; p < plane; p++) dst[p] = (src[p] - m) / sd;
            }
        }
    }
}
