/* Thread control of OpenBLAS and of oneDNN (whose runtime is OpenMP): one thread per process
 * unless asked otherwise, since each MPI rank already occupies a core. */
#include "nn/nn.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

int nn_blas_threads(int n)
{
    if (n <= 0) {
        const char *env = getenv("STRATA_BLAS_THREADS");
        n = env ? atoi(env) : 1;
        if (n <= 0) n = 1;
    }
    openblas_set_num_threads(n);
    omp_set_num_threads(n);
    return n;
}
