/*
 * fixture_h5: reading the PyTorch reference fixtures with the HDF5 C API.
 * See fixture_h5.h for the contract of each function.
 */
#include "fixture_h5.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx_file {
    hid_t id;
    char path[512];
};

/* Prints one line naming the file and the object, then returns -1. */
static int fx__fail(const fx_file *f, const char *name, const char *what)
{
    fprintf(stderr, "fixture %s: %s: %s\n", f ? f->path : "?", name, what);
    return -1;
}

int fx_open(fx_file **out, const char *path)
{
    *out = NULL;
    /* Missing datasets are reported by us, by name; HDF5's stack dump would bury that. */
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    fx_file *f = calloc(1, sizeof *f);
    if (!f) {
        fprintf(stderr, "fixture %s: out of memory\n", path);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s", path);
    f->id = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f->id < 0) {
        fprintf(stderr, "fixture %s: cannot open (run tests/make_fixtures.py?)\n", path);
        free(f);
        return -1;
    }
    *out = f;
    return 0;
}

void fx_close(fx_file *f)
{
    if (!f) return;
    H5Fclose(f->id);
    free(f);
}

int fx_has(fx_file *f, const char *name)
{
    /* H5Lexists fails (negative) when an intermediate group is missing, so walk the path
     * one component at a time: "/params/body.1.weight" checks "/params" first. Dots are
     * ordinary characters in HDF5 names. */
    char part[512];
    size_t len = strlen(name);
    if (len >= sizeof part) return 0;
    for (size_t i = 1; i <= len; i++) {
        if (i == len || name[i] == '/') {
            memcpy(part, name, i);
            part[i] = '\0';
            if (strcmp(part, "/") == 0) continue;
            if (H5Lexists(f->id, part, H5P_DEFAULT) <= 0) return 0;
        }
    }
    /* The link exists; is it a dataset (and not a group)? H5Oopen + H5Iget_type reads
     * the same in HDF5 1.10 and 1.12, unlike H5Oget_info. */
    hid_t obj = H5Oopen(f->id, name, H5P_DEFAULT);
    if (obj < 0) return 0;
    int is_ds = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    return is_ds;
}

/* Opens a dataset and reads its shape; *numel gets the element count (1 for a scalar). */
static int fx__open_ds(fx_file *f, const char *name, hid_t *ds, int dims[4], int *ndim,
                       size_t *numel)
{
    if (!fx_has(f, name)) return fx__fail(f, name, "no such dataset");
    *ds = H5Dopen2(f->id, name, H5P_DEFAULT);
    if (*ds < 0) return fx__fail(f, name, "cannot open dataset");
    hid_t space = H5Dget_space(*ds);
    int nd = H5Sget_simple_extent_ndims(space);
    hsize_t hd[H5S_MAX_RANK];
    if (nd < 0 || nd > 4 || H5Sget_simple_extent_dims(space, hd, NULL) < 0) {
        H5Sclose(space);
        H5Dclose(*ds);
        return fx__fail(f, name, "rank above 4 or unreadable shape");
    }
    H5Sclose(space);
    size_t count = 1;
    for (int i = 0; i < 4; i++) {
        int d = i < nd ? (int)hd[i] : 0;
        if (i < nd) count *= hd[i];
        if (dims) dims[i] = d;
    }
    if (ndim) *ndim = nd;
    *numel = count;
    return 0;
}

/* Reads a whole dataset converted to mem_type into a fresh buffer of elem-sized items. */
static int fx__read(fx_file *f, const char *name, hid_t mem_type, size_t elem, void **data,
                    int dims[4], int *ndim, size_t *numel)
{
    hid_t ds;
    *data = NULL;
    if (fx__open_ds(f, name, &ds, dims, ndim, numel) < 0) return -1;
    /* malloc(0) may return NULL: always ask for at least one element. */
    void *buf = malloc((*numel ? *numel : 1) * elem);
    if (!buf) {
        H5Dclose(ds);
        return fx__fail(f, name, "out of memory");
    }
    herr_t rc = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    if (rc < 0) {
        free(buf);
        return fx__fail(f, name, "read failed (wrong type?)");
    }
    *data = buf;
    return 0;
}

int fx_read_f32(fx_file *f, const char *name, float **data, int dims[4], int *ndim)
{
    size_t n;
    return fx__read(f, name, H5T_NATIVE_FLOAT, sizeof(float), (void **)data, dims, ndim, &n);
}

int fx_read_i32(fx_file *f, const char *name, int32_t **data, size_t *n)
{
    size_t count;
    int rc = fx__read(f, name, H5T_NATIVE_INT32, sizeof(int32_t), (void **)data, NULL, NULL,
                      &count);
    if (rc == 0 && n) *n = count;
    return rc;
}

/* Opens a root attribute; the caller closes it. */
static hid_t fx__open_attr(fx_file *f, const char *name)
{
    if (H5Aexists(f->id, name) <= 0) {
        fx__fail(f, name, "no such root attribute");
        return -1;
    }
    hid_t a = H5Aopen(f->id, name, H5P_DEFAULT);
    if (a < 0) fx__fail(f, name, "cannot open attribute");
    return a;
}

int fx_read_attr_str(fx_file *f, const char *name, char *buf, size_t len)
{
    if (len == 0) return fx__fail(f, name, "empty buffer");
    buf[0] = '\0';
    hid_t a = fx__open_attr(f, name);
    if (a < 0) return -1;
    int rc = -1;
    hid_t ftype = H5Aget_type(a);
    hid_t space = H5Aget_space(a);
    if (H5Tget_class(ftype) != H5T_STRING || H5Sget_simple_extent_npoints(space) != 1) {
        fx__fail(f, name, "not a single string");
        goto done;
    }
    if (H5Tis_variable_str(ftype) > 0) {
        /* h5py writes Python str attributes as variable-length UTF-8. */
        hid_t mtype = H5Tcopy(H5T_C_S1);
        H5Tset_size(mtype, H5T_VARIABLE);
        H5Tset_cset(mtype, H5Tget_cset(ftype));
        char *s = NULL;
        if (H5Aread(a, mtype, &s) < 0 || !s) {
            fx__fail(f, name, "read failed");
        } else if (strlen(s) >= len) {
            fx__fail(f, name, "string longer than the buffer");
        } else {
            memcpy(buf, s, strlen(s) + 1);
            rc = 0;
        }
        if (s) H5free_memory(s);
        H5Tclose(mtype);
    } else {
        /* Fixed length: read into a buffer one byte longer so it can be terminated. */
        size_t size = H5Tget_size(ftype);
        char *tmp = calloc(size + 1, 1);
        hid_t mtype = H5Tcopy(ftype);
        if (!tmp) {
            fx__fail(f, name, "out of memory");
        } else if (H5Aread(a, mtype, tmp) < 0) {
            fx__fail(f, name, "read failed");
        } else if (strlen(tmp) >= len) {
            fx__fail(f, name, "string longer than the buffer");
        } else {
            memcpy(buf, tmp, strlen(tmp) + 1);
            rc = 0;
        }
        free(tmp);
        H5Tclose(mtype);
    }
done:
    H5Sclose(space);
    H5Tclose(ftype);
    H5Aclose(a);
    return rc;
}

int fx_read_attr_i64(fx_file *f, const char *name, int64_t *vals, size_t n, size_t *count)
{
    hid_t a = fx__open_attr(f, name);
    if (a < 0) return -1;
    int rc = -1;
    hid_t ftype = H5Aget_type(a);
    hid_t space = H5Aget_space(a);
    hssize_t np = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(ftype) != H5T_INTEGER) {
        fx__fail(f, name, "not an integer attribute");
    } else if (np < 1 || (size_t)np > n) {
        fx__fail(f, name, "more elements than the caller's array");
    } else if (H5Aread(a, H5T_NATIVE_INT64, vals) < 0) {
        fx__fail(f, name, "read failed");
    } else {
        if (count) *count = (size_t)np;
        rc = 0;
    }
    H5Sclose(space);
    H5Tclose(ftype);
    H5Aclose(a);
    return rc;
}

/* H5Literate callback: appends one name to the list in ud. */
typedef struct {
    char **names;
    int n, cap;
} fx__list;

static herr_t fx__name_cb(hid_t g, const char *name, const H5L_info_t *info, void *ud)
{
    (void)g;
    (void)info;
    fx__list *l = ud;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **grown = realloc(l->names, (size_t)cap * sizeof *grown);
        if (!grown) return -1;
        l->names = grown;
        l->cap = cap;
    }
    l->names[l->n] = strdup(name);
    if (!l->names[l->n]) return -1;
    l->n++;
    return 0;
}

int fx_names(fx_file *f, const char *group, char ***names, int *n)
{
    *names = NULL;
    *n = 0;
    if (H5Lexists(f->id, group, H5P_DEFAULT) <= 0) return 0; /* no group: no names */
    hid_t g = H5Gopen2(f->id, group, H5P_DEFAULT);
    if (g < 0) return fx__fail(f, group, "not a group");
    fx__list l = {NULL, 0, 0};
    hsize_t idx = 0;
    herr_t rc = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, fx__name_cb, &l);
    H5Gclose(g);
    if (rc < 0) {
        fx_names_free(l.names, l.n);
        return fx__fail(f, group, "cannot list the group (out of memory?)");
    }
    *names = l.names;
    *n = l.n;
    return 0;
}

void fx_names_free(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

double fx_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-12);
}
