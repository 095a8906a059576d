/*
 * testutil: helpers shared by the cmocka tests. See testutil.h for the contract of each
 * function.
 */
#include "testutil.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "nn/nn.h"

/* The directory made by tu_tmpdir_make. */
static char tu__tmpdir[256];

int tu_tmpdir_make(const char *name)
{
    const char *base = getenv("TMPDIR");
    snprintf(tu__tmpdir, sizeof tu__tmpdir, "%s/%s.XXXXXX", base && *base ? base : "/tmp",
             name);
    if (mkdtemp(tu__tmpdir) == NULL) {
        fprintf(stderr, "mkdtemp(%s): %s\n", tu__tmpdir, strerror(errno));
        return -1;
    }
    return 0;
}

const char *tu_tmpdir(void)
{
    return tu__tmpdir;
}

int tu_group_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu__tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

void tu_tmp_path(char *buf, size_t len, const char *name)
{
    int k = snprintf(buf, len, "%s/%s", tu__tmpdir, name);
    assert_true(k > 0 && (size_t)k < len);
}

void tu_write_file(const char *path, const void *bytes, size_t len, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        assert_non_null(f);
        if (len) assert_int_equal(gzwrite(f, bytes, (unsigned)len), (int)len);
        assert_int_equal(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (len) assert_int_equal(fwrite(bytes, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
}

void tu_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

void tu_expect_msg_(const char *file, int line, ...)
{
    const char *msg = nn_errmsg();
    va_list ap;
    va_start(ap, line);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (strstr(msg, s) == NULL) {
            va_end(ap);
            fail_msg("%s:%d: message \"%s\" lacks \"%s\"", file, line, msg, s);
        }
    }
    va_end(ap);
}

void tu_expect_zeroed(const io_dataset *ds)
{
    assert_int_equal(ds->n, 0);
    assert_int_equal(ds->c, 0);
    assert_int_equal(ds->h, 0);
    assert_int_equal(ds->w, 0);
    assert_null(ds->images);
    assert_null(ds->labels);
    assert_null(ds->images_f32);
    assert_null(ds->norm_mean);
    assert_null(ds->norm_std);
    assert_int_equal(ds->classes, 0);
}

void tu_agree(comm *c, int failed, const char *what)
{
    int32_t any[1] = {failed != 0};
    assert_int_equal(comm_allreduce_max_i32(c, any, 1), 0);
    if (any[0]) fail_msg("%s (see above)", what);
}
