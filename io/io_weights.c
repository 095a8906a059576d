/* Named float32 tensors in an HDF5 file, saved through a temporary file and a rename. */
#include "io/io.h"
#include "io/io_internal.h"

#include "nn/nn.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Writes every tensor into the temporary file at tmp (see io__write_atomic). */
typedef struct {
    const io_tensor_ref *t;
    int n;
} weights_job;

static int write_tensors(const char *tmp, const char *path, void *ud)
{
    const weights_job *job = ud;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return io__h5_fail(tmp, "cannot create the file");
    int rc = 0;
    for (int i = 0; i < job->n && !rc; i++) {
        const io_tensor_ref *t = &job->t[i];
        hsize_t dims[1] = {t->numel};
        hsize_t chunk[1] = {t->numel < 65536 ? (t->numel ? t->numel : 1) : 65536};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
        if (sp < 0 || pl < 0 || H5Pset_chunk(pl, 1, chunk) < 0 || H5Pset_fletcher32(pl) < 0) {
            rc = io__h5_fail(path, "cannot set up a dataset");
        } else {
            hid_t ds = H5Dcreate2(f, t->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
            if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
                char doing[256];
                snprintf(doing, sizeof doing, "cannot write dataset '%s'", t->name);
                rc = io__h5_fail(path, doing);
            }
            if (ds >= 0) H5Dclose(ds);
        }
        if (pl >= 0) H5Pclose(pl);
        if (sp >= 0) H5Sclose(sp);
    }
    if (H5Fclose(f) < 0 && !rc) rc = io__h5_fail(tmp, "cannot close the file");
    return rc;
}

int io_weights_save(const char *path, const io_tensor_ref *t, int n)
{
    weights_job job = {t, n};
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    int rc = io__write_atomic(path, write_tensors, &job);
    io__h5_quiet_end(&q);
    return rc;
}

int io_weights_load(const char *path, const io_tensor_ref *t, int n)
{
    io__h5_quiet q;
    io__h5_quiet_begin(&q);
    int rc = 0;
    if (access(path, R_OK)) {
        rc = nn_err(NN_EIO, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = io__h5_fail(path, "not a readable HDF5 file");
        goto out;
    }
    for (int i = 0; i < n && !rc; i++) {
        if (H5Lexists(f, t[i].name, H5P_DEFAULT) <= 0) {
            rc = nn_err(NN_ENOTFOUND, "%s: no dataset '%s'", path, t[i].name);
            break;
        }
        hid_t ds = H5Dopen2(f, t[i].name, H5P_DEFAULT);
        hid_t sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        char doing[256];
        snprintf(doing, sizeof doing, "dataset '%s'", t[i].name);
        if (ds < 0 || sp < 0 || np < 0)
            rc = io__h5_fail(path, doing);
        else if ((size_t)np != t[i].numel)
            rc = nn_err(NN_ESHAPE, "%s: dataset '%s' has %lld values, the model needs %zu", path,
                        t[i].name, (long long)np, t[i].numel);
        else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t[i].data) < 0)
            rc = io__h5_fail(path, doing); /* a checksum or I/O error */
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
    }
    H5Fclose(f);
out:
    io__h5_quiet_end(&q);
    return rc;
}
