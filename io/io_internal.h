/* Internal helpers shared by the io implementation files; not public. The YAML layer has its own private header, io_yaml.h. */
#ifndef STRATA_IO_INTERNAL_H
#define STRATA_IO_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>

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



#endif
