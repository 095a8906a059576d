/* What the io module's HDF5 files share: silencing HDF5's own error printing, turning its
 * error stack into a strata message, and writing a file atomically (a temporary file beside
 * the target, fsync, rename, fsync of the directory). */
#include "io/io.h"
#include "io/io_internal.h"

#include "nn/nn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

void io__h5_quiet_begin(io__h5_quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) < 0) {
        q->func = NULL;
        q->data = NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void io__h5_quiet_end(const io__h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
}

/* What the error-stack walk collects: the API function that failed (the top of the stack)
 * and the innermost description with its minor message (usually the real cause). */
typedef struct io__h5_walk {
    char func[64];
    char desc[320];
    char minor[96];
} io__h5_walk;

static herr_t io__h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    io__h5_walk *w = data;
    if (n == 0 && e->func_name) snprintf(w->func, sizeof w->func, "%s", e->func_name);
    if (e->desc && e->desc[0]) {
        snprintf(w->desc, sizeof w->desc, "%s", e->desc);
        w->minor[0] = '\0';
        H5Eget_msg(e->min_num, NULL, w->minor, sizeof w->minor);
    }
    return 0;
}

/* Writes HDF5's message for the current error stack to buf, as
 * "H5Fopen: truncated file: eof = 3000, ... (File has been truncated)", on one line. */
const char *io__h5_msg(char *buf, size_t len)
{
    io__h5_walk w = {{0}, {0}, {0}};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, io__h5_walk_cb, &w);
    if (w.desc[0] == '\0') {
        snprintf(buf, len, "HDF5 left no error message");
        return buf;
    }
    for (char *p = w.desc; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    if (w.minor[0] && strcmp(w.minor, w.desc) != 0)
        snprintf(buf, len, "%s%s%s (%s)", w.func, w.func[0] ? ": " : "", w.desc, w.minor);
    else
        snprintf(buf, len, "%s%s%s", w.func, w.func[0] ? ": " : "", w.desc);
    return buf;
}

int io__h5_fail(const char *path, const char *doing)
{
    char msg[512];
    return nn_err(NN_EHDF5, "%s: %s: %s", path, doing, io__h5_msg(msg, sizeof msg));
}

/* fsync on a path opened read-only (a file, or a directory). */
hid_t io__h5_dset_create(hid_t f, const char *path, hid_t ftype, int ndim, const hsize_t *dims,
                         hid_t dcpl)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = (lcpl < 0 || sp < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0)
                  ? -1
                  : H5Dcreate2(f, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    if (sp >= 0) H5Sclose(sp);
    if (lcpl >= 0) H5Pclose(lcpl);
    return d;
}

int io__h5_dset_write(hid_t f, const char *path, hid_t ftype, hid_t mtype, int ndim,
                      const hsize_t *dims, hid_t dcpl, const void *data)
{
    hid_t d = io__h5_dset_create(f, path, ftype, ndim, dims, dcpl);
    int rc = (d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) ? -1 : 0;
    if (d >= 0) H5Dclose(d);
    return rc;
}

int io__fsync_path(const char *p, const char *what, const char *path)
{
    const int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nn_err(NN_EIO, "%s: cannot open %s %s to sync it: %s", path, what, p,
                              strerror(errno));
    int rc = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        rc = nn_err(NN_EIO, "%s: cannot sync %s %s: %s", path, what, p, strerror(errno));
    close(fd);
    return rc;
}

int io_write_atomic(const char *path, io_writer write, void *ud)
{
    /* A new, unique name next to path: path.tmp.<pid>.<n>, created exclusively so two
     * writers never share one (and with the umask's permissions, unlike mkstemp's 0600). */
    static unsigned counter;
    const size_t len = strlen(path) + 64;
    char *tmp = malloc(len);
    if (tmp == NULL) return nn_err(NN_ENOMEM, "%s: cannot allocate a temporary name", path);
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        snprintf(tmp, len, "%s.tmp.%ld.%u", path, (long)getpid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED)); /* any thread may write */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        const int rc = nn_err(NN_EIO, "%s: cannot create a temporary file %s: %s", path, tmp,
                              strerror(errno));
        free(tmp);
        return rc;
    }
    close(fd);

    int rc = write(tmp, path, ud);
    if (!rc) rc = io__fsync_path(tmp, "the temporary file", path);
    if (!rc && rename(tmp, path) != 0)
        rc = nn_err(NN_EIO, "%s: cannot rename the temporary file %s onto it: %s", path, tmp,
                    strerror(errno));
    if (rc) {
        unlink(tmp);
    } else {
        /* Make the rename itself durable: sync the directory that holds path. */
        char *dir = strdup(path);
        if (dir == NULL) {
            rc = nn_err(NN_ENOMEM, "%s: cannot allocate its directory name", path);
        } else {
            char *slash = strrchr(dir, '/');
            if (slash == NULL) rc = io__fsync_path(".", "the directory", path);
            else {
                if (slash == dir) slash[1] = '\0';
                else slash[0] = '\0';
                rc = io__fsync_path(dir, "the directory", path);
            }
            free(dir);
        }
    }
    free(tmp);
    return rc;
}

int io__stale_temp(const char *name)
{
    /* NAME.tmp.<pid>.<n>: the last ".tmp." followed by digits, a dot and digits to the end. */
    const char *t = NULL;
    for (const char *q = strstr(name, ".tmp."); q; q = strstr(q + 1, ".tmp.")) t = q;
    if (!t || t == name) return 0;
    char *end;
    const long pid = strtol(t + 5, &end, 10);
    if (end == t + 5 || *end != '.' || !end[1]) return 0;
    for (const char *d = end + 1; *d; d++)
        if (*d < '0' || *d > '9') return 0;
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int io_clean_temps(const char *dir, int *removed)
{
    if (removed) *removed = 0;
    DIR *d = opendir(dir);
    if (!d) return nn_err(NN_EIO, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!io__stale_temp(e->d_name)) continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) == 0 && removed) (*removed)++;
    }
    closedir(d);
    return 0;
}
