/* Internal helpers shared by the io implementation files; not public. The YAML layer has its own private header, io_yaml.h. */
#ifndef STRATA_IO_INTERNAL_H
#define STRATA_IO_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "io/io_config.h"

/* HDF5 prints its error stack by default; strata reports errors itself. Begin saves the
 * current handler and silences it; end puts it back. */
typedef struct io__h5_quiet {
    H5E_auto2_t func;
    void *data;
} io__h5_quiet;
void io__h5_quiet_begin(io__h5_quiet *q);
void io__h5_quiet_end(const io__h5_quiet *q);

/* HDF5's message for the current error stack, on one line, in buf
 * ("H5Fopen: truncated file: ... (File has been truncated)"). Returns buf. */
const char *io__h5_msg(char *buf, size_t len);
/* Returns NN_EHDF5 with "PATH: DOING: <HDF5's message>". */
int io__h5_fail(const char *path, const char *doing);
/* Creates the dataset at path (missing groups on the way created) of ndim dims stored as
 * ftype, with the dataset creation properties dcpl (H5P_DEFAULT for none). Returns its id, or
 * a negative id with the reason on HDF5's error stack (io__h5_fail reports it). */
hid_t io__h5_dset_create(hid_t f, const char *path, hid_t ftype, int ndim, const hsize_t *dims,
                         hid_t dcpl);
/* io__h5_dset_create, then writes all of data (of mtype) and closes it: 0, or -1 as above. */
int io__h5_dset_write(hid_t f, const char *path, hid_t ftype, hid_t mtype, int ndim,
                      const hsize_t *dims, hid_t dcpl, const void *data);
/* Whether name (in some directory) is a temporary file of io_write_atomic whose process is
 * gone (NAME.tmp.<pid>.<n>, pid not this process and not alive). */
int io__stale_temp(const char *name);
/* fsync of p (a file or a directory, opened read-only); messages name path and what. */
int io__fsync_path(const char *p, const char *what, const char *path);

/* strata's HDF5 file driver (io_h5fd.c): HDF5 reads and writes the descriptor fd, which the
 * caller opens (io__h5fd_begin) and closes (io__h5fd_end). No driver call fails once the
 * file is open: the first failed write or truncation is recorded here (failed, err, what)
 * and every write after it is skipped, so every HDF5 close completes; check failed after
 * each HDF5 call and stop. */
typedef struct io__h5fd_state {
    int fd;
    int failed, err; /* err: the errno of the first failure (0: a write without progress) */
    char what[96];   /* its description: "writing 4194308 bytes at offset 4190208" */
    uint64_t kicked; /* the file's bytes below this offset were handed to writeback */
} io__h5fd_state;
/* Opens tmp (an existing file; path is the final name, for messages) for reading and
 * writing into *st: 0, or NN_EIO naming both. */
int io__h5fd_begin(io__h5fd_state *st, const char *tmp, const char *path);
/* A file access property list (close it with H5Pclose) whose driver reads and writes st's
 * descriptor, and whose H5Fclose closes every object still open in the file
 * (H5F_CLOSE_STRONG); st must outlive every file opened with it. Negative on HDF5's
 * failure. */
hid_t io__h5fd_fapl(io__h5fd_state *st);
/* Closes st's descriptor. Returns rc when nothing failed in the driver or at close(), else
 * NN_EIO "PATH: cannot write the temporary file TMP (what[, in WHERE]): <strerror>": the
 * system's cause, which is the real one whatever HDF5 made of it. where may be NULL. */
int io__h5fd_end(io__h5fd_state *st, int rc, const char *tmp, const char *path, const char *where);



#endif
