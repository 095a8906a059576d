/* util: the few system chores every module needs, written once: a finiteness scan, a
 * monotonic clock, mkdir -p, a growing string, and reading a whole file. Errors are nn_err() codes with a message that
 * names the path (nn/nn.h); nothing here exits. util/ uses only libc and nn/'s error table. */
#ifndef STRATA_UTIL_H
#define STRATA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* 1 when x is an infinity or a NaN (every exponent bit set), else 0: integer arithmetic, so
 * an OR of it over a loop vectorizes (a float reduction would not, without -ffast-math). */
static inline unsigned util_nonfinite(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

/* The index of the first infinity or NaN in x[0..n), or -1 when every value is finite. */
long util_first_nonfinite(const float *x, size_t n);

/* Seconds on CLOCK_MONOTONIC: for intervals only, never wall time. */
double util_now_s(void);

/* mkdir -p: creates path and every missing parent (mode 0777 before the umask). 0, or NN_EIO
 * naming the directory and errno's text, or NN_EINVAL for a path over 1023 bytes. */
int util_mkdirs(const char *path);

/* A growing, always NUL-terminated string. Zero-initialise it ({0}); s stays NULL until the
 * first add. An allocation failure sets failed and drops that and every later add: check
 * failed once at the end. The caller frees s (util_str_free). */
typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} util_str;

void util_str_add(util_str *b, const char *s, size_t n);
void util_str_cat(util_str *b, const char *s);
void util_str_printf(util_str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void util_str_free(util_str *b);

/* The whole of a file, NUL-terminated, malloc'd into *out (the caller frees it); *len (may be
 * NULL) gets its length without the NUL. A file longer than max bytes is refused (max 0: no
 * limit). NN_ENOTFOUND when it does not exist, NN_EIO for any other open or read failure, NN_ERANGE
 * beyond max, NN_ENOMEM; each names the path. *out is NULL on failure. */
int util_read_file(char **out, size_t *len, const char *path, size_t max);
/* Why an open or read failed, for callers that word their own messages. */
typedef struct util_io_fail {
    const char *verb; /* "cannot open" or "cannot read"; NULL for any other failure */
    int errnum;       /* the system's errno for it (strerror gives the reason) */
} util_io_fail;
/* util_read_file that also fills *why (may be NULL). */
int util_read_file_ex(char **out, size_t *len, const char *path, size_t max, util_io_fail *why);

#endif
