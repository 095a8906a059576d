/* An HDF5 file driver (VFD) of strata's own that reads and writes a file descriptor its
 * caller opened, so that a checkpoint streams to disk as HDF5 makes it (no image of the file
 * in memory) and a failed write (a full disk, ulimit -f, EIO) is strata's error, recorded
 * with the system's message, not a state HDF5 has to recover from.
 *
 * Why not HDF5's sec2 driver: a write that fails there fails the HDF5 call that made it,
 * which in HDF5 1.10.8 can be a close (H5Dclose flushes the dataset): the failed close keeps
 * the object's ID, the file stays open behind it (H5F_CLOSE_WEAK), and H5_term_library
 * crashes at exit closing it (a segfault in H5F__close_cb). So no call of this driver fails
 * once the file is open: the first failed write or truncation is recorded in the state (the
 * system's errno, what was written where), it and every write after it are skipped, and the
 * caller checks io__h5fd_state.failed after each HDF5 call to stop the save. HDF5 never sees
 * an error, every close completes, and the file, lost either way, is removed by
 * io_write_atomic. (Metadata HDF5 evicted after the failure and read again would read what
 * the file holds; a save stops at the first check, so that is not reached in practice.) */
#define _GNU_SOURCE /* sync_file_range */
#include "io/io_internal.h"

#include "nn/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One open of the file by HDF5 (it may open it more than once, a tentative open first). */
typedef struct {
    H5FD_t pub; /* first: what HDF5 sees */
    io__h5fd_state *st;
    haddr_t eoa, eof;
} io__h5fd_file;

/* Bytes written at the end of the file before they are handed to writeback: the disk works
 * while HDF5 makes the rest, and the final fsync has little left to wait for. */
#define IO__H5FD_KICK ((uint64_t)16 << 20)

/* Records the first failure (err: errno, 0 for a write that made no progress) and returns
 * 0: HDF5 carries on, the caller sees st->failed. */
static herr_t io__h5fd_failed(io__h5fd_state *st, int err, const char *what, size_t size,
                              haddr_t addr)
{
    if (!st->failed) {
        st->failed = 1;
        st->err = err;
        snprintf(st->what, sizeof st->what, "%s %zu bytes at offset %llu", what, size,
                 (unsigned long long)addr);
    }
    return 0;
}

static void *io__h5fd_fapl_copy(const void *fapl)
{
    void *p = malloc(sizeof(io__h5fd_state *));
    if (p) memcpy(p, fapl, sizeof(io__h5fd_state *));
    return p;
}

static herr_t io__h5fd_fapl_free(void *fapl)
{
    free(fapl);
    return 0;
}

static H5FD_t *io__h5fd_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr)
{
    (void)name, (void)maxaddr; /* the descriptor is the file; HDF5 checks maxaddr */
    io__h5fd_state *const *pst = H5Pget_driver_info(fapl);
    if (!pst || !*pst) return NULL;
    io__h5fd_state *st = *pst;
    struct stat sb;
    if ((flags & H5F_ACC_TRUNC) && ftruncate(st->fd, 0) != 0) return NULL;
    if (fstat(st->fd, &sb) != 0) return NULL;
    io__h5fd_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->st = st;
    f->eof = (haddr_t)sb.st_size;
    return &f->pub;
}

/* Always succeeds: the descriptor is the caller's, to close and check. */
static herr_t io__h5fd_close(H5FD_t *file)
{
    free(file);
    return 0;
}

static herr_t io__h5fd_query(const H5FD_t *file, unsigned long *flags)
{
    (void)file;
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA;
    return 0;
}

static haddr_t io__h5fd_get_eoa(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const io__h5fd_file *)file)->eoa;
}

static herr_t io__h5fd_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr)
{
    (void)type;
    ((io__h5fd_file *)file)->eoa = addr;
    return 0;
}

static haddr_t io__h5fd_get_eof(const H5FD_t *file, H5FD_mem_t type)
{
    (void)type;
    return ((const io__h5fd_file *)file)->eof;
}

static herr_t io__h5fd_get_handle(H5FD_t *file, hid_t fapl, void **handle)
{
    (void)fapl;
    *handle = &((io__h5fd_file *)file)->st->fd;
    return 0;
}

/* Reads what the file holds; bytes past its end read as zeros (as HDF5 expects). */
static herr_t io__h5fd_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                            void *buf)
{
    (void)type, (void)dxpl;
    io__h5fd_file *f = (io__h5fd_file *)file;
    char *p = buf;
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(f->st->fd, p + done, size - done, (off_t)(addr + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_VFL,
                     H5E_READERROR, "reading %zu bytes at offset %llu: %s", size,
                     (unsigned long long)addr, strerror(errno));
            return -1;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    memset(p + done, 0, size - done);
    return 0;
}

static herr_t io__h5fd_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr,
                             size_t size, const void *buf)
{
    (void)type, (void)dxpl;
    io__h5fd_file *f = (io__h5fd_file *)file;
    io__h5fd_state *st = f->st;
    if (st->failed) return 0; /* the file is lost already: skipped */
    const char *p = buf;
    size_t done = 0;
    while (done < size) {
        ssize_t n = pwrite(st->fd, p + done, size - done, (off_t)(addr + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return io__h5fd_failed(st, n < 0 ? errno : 0, "writing", size, addr);
        done += (size_t)n;
    }
    const uint64_t end = addr + size;
    if (end > f->eof) f->eof = end;
    if (end > st->kicked + IO__H5FD_KICK) {
        sync_file_range(st->fd, (off_t)st->kicked, (off_t)(end - st->kicked), SYNC_FILE_RANGE_WRITE);
        st->kicked = end;
    }
    return 0;
}

/* Makes the file's length its end of allocation, as sec2 does (HDF5 checks it on open). */
static herr_t io__h5fd_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing)
{
    (void)dxpl, (void)closing;
    io__h5fd_file *f = (io__h5fd_file *)file;
    if (f->eoa == f->eof) return 0;
    if (f->st->failed) return 0;
    if (ftruncate(f->st->fd, (off_t)f->eoa) != 0)
        return io__h5fd_failed(f->st, errno, "setting the length to", 0, f->eoa);
    f->eof = f->eoa;
    return 0;
}

static const H5FD_class_t io__h5fd_class = {
    .name = "strata_fd",
    .maxaddr = (haddr_t)INT64_MAX,
    .fc_degree = H5F_CLOSE_WEAK,
    .fapl_size = sizeof(io__h5fd_state *),
    .fapl_copy = io__h5fd_fapl_copy,
    .fapl_free = io__h5fd_fapl_free,
    .open = io__h5fd_open,
    .close = io__h5fd_close,
    .query = io__h5fd_query,
    .get_eoa = io__h5fd_get_eoa,
    .set_eoa = io__h5fd_set_eoa,
    .get_eof = io__h5fd_get_eof,
    .get_handle = io__h5fd_get_handle,
    .read = io__h5fd_read,
    .write = io__h5fd_write,
    .truncate = io__h5fd_truncate,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

hid_t io__h5fd_fapl(io__h5fd_state *st)
{
    static hid_t id = -1; /* registered once per HDF5 session (a library restart drops it) */
    if (id < 0 || H5Iis_valid(id) <= 0) id = H5FDregister(&io__h5fd_class);
    hid_t fapl = id < 0 ? -1 : H5Pcreate(H5P_FILE_ACCESS);
    if (fapl >= 0 && (H5Pset_driver(fapl, id, &st) < 0 ||
                      H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0)) {
        H5Pclose(fapl);
        fapl = -1;
    }
    return fapl;
}

int io__h5fd_begin(io__h5fd_state *st, const char *tmp, const char *path)
{
    memset(st, 0, sizeof *st);
    st->fd = open(tmp, O_RDWR | O_CLOEXEC);
    if (st->fd < 0)
        return nn_err(NN_EIO, "%s: cannot open the temporary file %s: %s", path, tmp, strerror(errno));
    return 0;
}

int io__h5fd_end(io__h5fd_state *st, int rc, const char *tmp, const char *path, const char *where)
{
    if (close(st->fd) != 0 && !st->failed) {
        st->failed = 1;
        st->err = errno;
        snprintf(st->what, sizeof st->what, "closing it");
    }
    st->fd = -1;
    if (!st->failed) return rc;
    return nn_err(NN_EIO, "%s: cannot write the temporary file %s (%s%s%s): %s", path, tmp,
                  st->what, where && where[0] ? ", in " : "", where ? where : "",
                  st->err ? strerror(st->err) : "no progress");
}
