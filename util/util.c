/* The monotonic clock, mkdir -p, the growing string and whole-file reads (util.h). */
#include "util/util.h"

#include "nn/nn.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

long util_first_nonfinite(const float *x, size_t n)
{
    /* Blocks of 1024 scanned branch-free (an integer OR vectorizes), then the block that
     * holds one searched value by value. */
    for (size_t b = 0; b < n; b += 1024) {
        const size_t e = n - b < 1024 ? n : b + 1024;
        unsigned bad = 0;
        for (size_t i = b; i < e; i++) bad |= util_nonfinite(x[i]);
        if (!bad) continue;
        for (size_t i = b; i < e; i++)
            if (!isfinite(x[i])) return (long)i;
    }
    return -1;
}

double util_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int util_mkdirs(const char *path)
{
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return nn_err(NN_EINVAL, "directory name is too long (%zu bytes): %.80s...", strlen(path),
                      path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char keep = *p;
        *p = '\0';
        if (mkdir(buf, 0777) && errno != EEXIST)
            return nn_err(NN_EIO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = keep;
        if (!keep) break;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISDIR(st.st_mode))
        return nn_err(NN_EIO, "%s exists and is not a directory", path);
    return 0;
}

/* Room for n more bytes and the NUL; 0, or -1 after setting failed. */
static int str_reserve(util_str *b, size_t n)
{
    if (b->failed) return -1;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = (b->len + n + 1) * 2 + 64;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

void util_str_add(util_str *b, const char *s, size_t n)
{
    if (str_reserve(b, n)) return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void util_str_cat(util_str *b, const char *s)
{
    util_str_add(b, s, strlen(s));
}

void util_str_printf(util_str *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (str_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void util_str_free(util_str *b)
{
    free(b->s);
    *b = (util_str){0};
}

int util_read_file(char **out, size_t *len, const char *path, size_t max)
{
    return util_read_file_ex(out, len, path, max, NULL);
}

/* Records an open or read failure in why (may be NULL) and returns its error. */
static int io_fail(util_io_fail *why, const char *verb, int e, const char *path)
{
    if (why) {
        why->verb = verb;
        why->errnum = e;
    }
    return nn_err(e == ENOENT ? NN_ENOTFOUND : NN_EIO, "%s %s: %s", verb, path, strerror(e));
}

int util_read_file_ex(char **out, size_t *len, const char *path, size_t max, util_io_fail *why)
{
    *out = NULL;
    if (why) *why = (util_io_fail){NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) return io_fail(why, "cannot open", errno, path);
    util_str b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (max && b.len + n > max) {
            fclose(f);
            util_str_free(&b);
            return nn_err(NN_ERANGE, "%s is larger than %zu bytes", path, max);
        }
        util_str_add(&b, chunk, n);
    }
    int bad = ferror(f), e = errno;
    fclose(f);
    if (bad) {
        util_str_free(&b);
        return io_fail(why, "cannot read", e ? e : EIO, path);
    }
    if (!b.s) util_str_add(&b, "", 0);
    if (b.failed) {
        util_str_free(&b);
        return nn_err(NN_ENOMEM, "out of memory reading %s", path);
    }
    *out = b.s;
    if (len) *len = b.len;
    return 0;
}
