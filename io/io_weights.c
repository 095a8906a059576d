/* Flat weights files (strata before 2026-12-03): named float32 tensors read by name. */
#include "io/io.h"
#include "io/io_internal.h"

#include "nn/nn.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
