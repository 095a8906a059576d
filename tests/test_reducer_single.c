/* The reducer's thread mode refuses to start when MPI provides less than
 * MPI_THREAD_SERIALIZED: here the program starts MPI itself at MPI_THREAD_SINGLE before
 * comm_init (which then only wraps it), so a communication thread would be unsafe. The
 * other modes still work. Runs alone (an MPI singleton). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mpi.h>
#include <string.h>

#include "comm/comm.h"
#include "nn/nn.h"

static comm *C;

static void test_thread_refused(void **state)
{
    float a[3] = {1, 2, 3}, b[5] = {0};
    float *slabs[2] = {a, b};
    const size_t counts[2] = {3, 5};
    comm_reducer *r = (comm_reducer *)&r; /* must become NULL */
    assert_int_equal(comm_reducer_init(&r, C, 2, slabs, counts, NULL, 4, COMM_REDUCE_THREAD), NN_EMPI);
    assert_null(r);
    assert_non_null(strstr(nn_errmsg(), "MPI_THREAD_SERIALIZED"));
    assert_non_null(strstr(nn_errmsg(), "MPI_THREAD_SINGLE"));
    for (int mode = COMM_REDUCE_AFTER; mode <= COMM_REDUCE_NONBLOCKING; mode++) {
        assert_int_equal(comm_reducer_init(&r, C, 2, slabs, counts, NULL, 4, (comm_reduce_mode)mode), 0);
        comm_reducer_free(r);
    }
}

int main(int argc, char **argv)
{
    int provided = -1;
    if (MPI_Init_thread(&argc, &argv, MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return 1;
    if (provided >= MPI_THREAD_SERIALIZED) {
        /* This MPI gives more than asked: the refusal cannot be provoked here. */
        printf("MPI provides thread level %d when asked for MPI_THREAD_SINGLE: skipped\n", provided);
        MPI_Finalize();
        return 77;
    }
    if (comm_init(&C, &argc, &argv)) {
        fprintf(stderr, "comm_init: %s\n", nn_errmsg());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    comm_free(C);
    MPI_Finalize();
    return rc ? 1 : 0;
}
