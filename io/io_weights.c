/* Named float32 tensors in an HDF5 file, saved through a temporary file and a rename. */
#include "io/io.h"

#include "nn/nn.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The innermost message of HDF5's error stack, for strata errors. */
static herr_t last_msg(unsigned n, const H5E_error2_t *e, void *ud)
{
    if (n == 0) snprintf(ud, 256, "%s", e->desc ? e->desc : "unknown HDF5 error");
    return 0;
}

static int h5_fail(const char *what, const char *path)
{
    char msg[256] = "unknown HDF5 error";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, last_msg, msg);
    return nn_err(NN_EHDF5, "%s: %s: %s", path, what, msg);
}

/* HDF5 prints its error stack by default; strata reports errors itself. */
typedef struct {
    H5E_auto2_t fn;
    void *data;
} quiet_state;

static void quiet_on(quiet_state *q)
{
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_off(const quiet_state *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return nn_err(NN_EIO, "%s: cannot open to sync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc ? nn_err(NN_EIO, "%s: fsync failed: %s", path, strerror(e)) : 0;
}

int io_weights_save(const char *path, const io_tensor_ref *t, int n)
{
    char tmp[4096], dir[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return nn_err(NN_EINVAL, "path too long: %s", path);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    quiet_state q;
    quiet_on(&q);
    int rc = 0;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        rc = h5_fail("cannot create the file", tmp);
        goto out;
    }
    for (int i = 0; i < n && !rc; i++) {
        hsize_t dims[1] = {t[i].numel};
        hid_t sp = H5Screate_simple(1, dims, NULL);
        hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
        hsize_t chunk[1] = {t[i].numel < 65536 ? (t[i].numel ? t[i].numel : 1) : 65536};
        if (sp < 0 || pl < 0 || H5Pset_chunk(pl, 1, chunk) < 0 || H5Pset_fletcher32(pl) < 0) {
            rc = h5_fail("cannot set up a dataset", t[i].name);
        } else {
            hid_t ds = H5Dcreate2(f, t[i].name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
            if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t[i].data) < 0)
                rc = h5_fail("cannot write dataset", t[i].name);
            if (ds >= 0) H5Dclose(ds);
        }
        if (pl >= 0) H5Pclose(pl);
        if (sp >= 0) H5Sclose(sp);
    }
    if (H5Fclose(f) < 0 && !rc) rc = h5_fail("cannot close the file", tmp);
    if (!rc) rc = fsync_path(tmp, 0);
    if (!rc && rename(tmp, path))
        rc = nn_err(NN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (!rc) rc = fsync_path(dir, 1);
    if (rc) unlink(tmp);
out:
    quiet_off(&q);
    return rc;
}

int io_weights_load(const char *path, const io_tensor_ref *t, int n)
{
    quiet_state q;
    quiet_on(&q);
    int rc = 0;
    if (access(path, R_OK)) {
        rc = nn_err(NN_EIO, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = h5_fail("not a readable HDF5 file", path);
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
        if (ds < 0 || sp < 0 || np < 0)
            rc = h5_fail("cannot open dataset", t[i].name);
        else if ((size_t)np != t[i].numel)
            rc = nn_err(NN_ESHAPE, "%s: dataset '%s' has %lld values, the model needs %zu", path,
                        t[i].name, (long long)np, t[i].numel);
        else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t[i].data) < 0)
            rc = h5_fail("cannot read dataset (checksum or I/O error)", t[i].name);
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
    }
    H5Fclose(f);
out:
    quiet_off(&q);
    return rc;
}
