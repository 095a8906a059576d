/* Error codes, their texts, and the per-thread message of the last failure. */
#include "nn/nn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char nn__errbuf[1024];

int nn_err(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nn__errbuf, sizeof nn__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

int nn_err_wrap(int code, const char *fmt, ...)
{
    char prev[sizeof nn__errbuf];
    memcpy(prev, nn__errbuf, sizeof prev);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(nn__errbuf, sizeof nn__errbuf, fmt, ap);
    va_end(ap);
    const size_t used = n < 0 ? sizeof nn__errbuf : (size_t)n;
    if (used + 3 <= sizeof nn__errbuf) { /* ": " and the old message, cut to what fits */
        const size_t m = strnlen(prev, sizeof nn__errbuf - used - 3);
        memcpy(nn__errbuf + used, ": ", 2);
        memcpy(nn__errbuf + used + 2, prev, m);
        nn__errbuf[used + 2 + m] = '\0';
    }
    return code;
}

const char *nn_errmsg(void)
{
    return nn__errbuf;
}

const char *nn_strerror(int code)
{
    switch (code) {
    case NN_OK:
        return "success";
#define NN__ERR_TEXT(name, value, text) \
    case NN_##name:                     \
        return text;
        NN_ERRNO_MAP(NN__ERR_TEXT)
#undef NN__ERR_TEXT
    }
    return "unknown error";
}

const char *nn_errname(int code)
{
    switch (code) {
    case NN_OK:
        return "NN_OK";
#define NN__ERR_NAME(name, value, text) \
    case NN_##name:                     \
        return "NN_" #name;
        NN_ERRNO_MAP(NN__ERR_NAME)
#undef NN__ERR_NAME
    }
    return "NN_UNKNOWN";
}

void nn__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "strata: internal error: assertion '%s' failed at %s:%d\n", cond, file, line);
    abort();
}
