/* util/: the monotonic clock, mkdir -p, the growing string and whole-file reads, and
 * nn_err_wrap (the "prefix the previous error" idiom they and every module use). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn/nn.h"
#include "testutil.h"
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata-test-util");
}

static void clock_is_monotonic(void **state)
{
    (void)state;
    const double t0 = util_now_s();
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    const double dt = util_now_s() - t0;
    /* A 20 ms sleep is at least 20 ms on the monotonic clock. No upper bound: a loaded
     * machine may sleep far longer. */
    assert_true(dt >= 0.019);
}

static int is_dir(const char *p)
{
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static void mkdirs_makes_parents(void **state)
{
    (void)state;
    char deep[1024];
    tu_tmp_path(deep, sizeof deep, "a/b/c");
    assert_int_equal(util_mkdirs(deep), 0);
    assert_true(is_dir(deep));
    assert_int_equal(util_mkdirs(deep), 0); /* already there: fine */
    char slash[1100];
    snprintf(slash, sizeof slash, "%s/", deep);
    assert_int_equal(util_mkdirs(slash), 0);
}

static void mkdirs_refuses_a_file_in_the_way(void **state)
{
    (void)state;
    char file[1024], below[1100];
    tu_tmp_path(file, sizeof file, "plain-file");
    tu_write_file(file, "x", 1, 0);
    assert_int_equal(util_mkdirs(file), NN_EIO);
    tu_expect_msg(file, "not a directory");
    snprintf(below, sizeof below, "%s/sub", file);
    assert_int_equal(util_mkdirs(below), NN_EIO);
    tu_expect_msg("cannot create directory", below);

    char longp[1500];
    memset(longp, 'x', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(util_mkdirs(longp), NN_EINVAL);
    tu_expect_msg("too long", "1499 bytes");
}

static void str_grows_and_formats(void **state)
{
    (void)state;
    util_str b = {0};
    util_str_cat(&b, "");
    assert_non_null(b.s);
    assert_string_equal(b.s, "");
    for (int i = 0; i < 5000; i++) util_str_printf(&b, "%d,", i % 10);
    util_str_add(&b, "tail-and-more", 4);
    assert_int_equal(b.failed, 0);
    assert_int_equal(b.len, 10000 + 4);
    assert_int_equal(strlen(b.s), b.len);
    assert_memory_equal(b.s, "0,1,2,", 6);
    assert_string_equal(b.s + 10000, "tail");
    assert_int_equal(b.s[9998], '9');
    util_str_free(&b);
    assert_null(b.s);
    assert_int_equal(b.len, 0);
}

static void read_file_whole_and_refusals(void **state)
{
    (void)state;
    char path[1024];
    tu_tmp_path(path, sizeof path, "data.bin");
    /* 200,000 bytes with a NUL inside: longer than one read, and the length is not strlen. */
    enum { N = 200000 };
    static char bytes[N];
    for (int i = 0; i < N; i++) bytes[i] = (char)('a' + i % 26);
    bytes[1000] = '\0';
    tu_write_file(path, bytes, N, 0);
    char *s = (char *)1;
    size_t len = 0;
    assert_int_equal(util_read_file(&s, &len, path, 0), 0);
    assert_int_equal(len, N);
    assert_memory_equal(s, bytes, N);
    assert_int_equal(s[N], '\0');
    free(s);

    assert_int_equal(util_read_file(&s, &len, path, N - 1), NN_ERANGE);
    assert_null(s);
    tu_expect_msg(path, "larger than 199999 bytes");

    char empty[1024];
    tu_tmp_path(empty, sizeof empty, "empty");
    tu_write_file(empty, "", 0, 0);
    assert_int_equal(util_read_file(&s, NULL, empty, 0), 0);
    assert_string_equal(s, "");
    free(s);

    char missing[1024];
    tu_tmp_path(missing, sizeof missing, "missing");
    assert_int_equal(util_read_file(&s, &len, missing, 0), NN_ENOTFOUND);
    assert_null(s);
    tu_expect_msg("cannot open", missing);

    /* A directory opens but cannot be read (EISDIR): a read error, not an empty file. */
    assert_int_equal(util_read_file(&s, &len, tu_tmpdir(), 0), NN_EIO);
    assert_null(s);
    tu_expect_msg("cannot read", tu_tmpdir());

    /* The _ex form says which step failed and the system's errno, and nothing on success. */
    util_io_fail why = {"x", -1};
    assert_int_equal(util_read_file_ex(&s, &len, missing, 0, &why), NN_ENOTFOUND);
    assert_string_equal(why.verb, "cannot open");
    assert_int_equal(why.errnum, ENOENT);
    assert_int_equal(util_read_file_ex(&s, &len, tu_tmpdir(), 0, &why), NN_EIO);
    assert_string_equal(why.verb, "cannot read");
    assert_int_equal(why.errnum, EISDIR);
    assert_int_equal(util_read_file_ex(&s, &len, path, N - 1, &why), NN_ERANGE);
    assert_null(why.verb);
    assert_int_equal(util_read_file_ex(&s, &len, path, 0, &why), 0);
    assert_null(why.verb);
    assert_int_equal(why.errnum, 0);
    free(s);
}

static void first_nonfinite_finds_the_first(void **state)
{
    (void)state;
    enum { N = 5000 };
    static float x[N];
    for (int i = 0; i < N; i++) x[i] = (float)(i % 13) - 6.0f;
    x[17] = 3.4e38f; /* large but finite */
    assert_int_equal(util_first_nonfinite(x, N), -1);
    assert_int_equal(util_first_nonfinite(x, 0), -1);
    x[4321] = NAN;
    assert_int_equal(util_first_nonfinite(x, N), 4321);
    x[2048] = -INFINITY; /* the first in its own block of 1024 */
    assert_int_equal(util_first_nonfinite(x, N), 2048);
    assert_int_equal(util_first_nonfinite(x, 2048), -1);
    x[0] = INFINITY;
    assert_int_equal(util_first_nonfinite(x, 1), 0);
    x[0] = 1e-45f; /* subnormal: finite */
    assert_int_equal(util_first_nonfinite(x, 2), -1);
}

static void err_wrap_prefixes(void **state)
{
    (void)state;
    assert_int_equal(nn_err(NN_ESHAPE, "inner %d", 7), NN_ESHAPE);
    assert_int_equal(nn_err_wrap(NN_EIO, "outer %s", "x"), NN_EIO);
    assert_string_equal(nn_errmsg(), "outer x: inner 7");
    nn_err_wrap(NN_EIO, "top");
    assert_string_equal(nn_errmsg(), "top: outer x: inner 7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clock_is_monotonic),
        cmocka_unit_test(mkdirs_makes_parents),
        cmocka_unit_test(mkdirs_refuses_a_file_in_the_way),
        cmocka_unit_test(str_grows_and_formats),
        cmocka_unit_test(read_file_whole_and_refusals),
        cmocka_unit_test(first_nonfinite_finds_the_first),
        cmocka_unit_test(err_wrap_prefixes),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
