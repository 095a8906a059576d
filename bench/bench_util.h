/* What the benchmark programs share: an allocation that ends the program with a message
 * when memory runs out (benchmarks, unlike the library, may exit), and the comparison qsort
 * needs for medians. Header-only: each bench is one program. */
#ifndef STRATA_BENCH_UTIL_H
#define STRATA_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>

/* calloc(n, size), or exit(1) naming prog and the size. Never NULL; n = 0 gives one element. */
static inline void *bench_xcalloc(const char *prog, size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "%s: out of memory (%zu x %zu bytes)\n", prog, n, size);
        exit(1);
    }
    return p;
}

/* qsort comparison of doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
