/* The communicator on however many ranks mpiexec starts (1 when run alone: an MPI
 * singleton): typed all-reduces, broadcast, and agreement on a failure. Registered in
 * CTest at 1, 2 and 3 ranks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "comm/comm.h"
#include "nn/nn.h"

static comm *C;

static void test_allreduce(void **state)
{
    const int r = comm_rank(C), n = comm_size(C);
    float x[5] = {1.0f, (float)r, 2.0f * r, -1.0f, 0.5f};
    assert_int_equal(comm_allreduce_f32(C, x, 5, 0), 0);
    assert_float_equal(x[0], (float)n, 0);
    assert_float_equal(x[1], n * (n - 1) / 2.0f, 0);
    assert_float_equal(x[2], (float)(n * (n - 1)), 0);
    float y[3] = {(float)r, 1.0f, 3.0f};
    assert_int_equal(comm_allreduce_f32(C, y, 3, 1), 0);
    assert_float_equal(y[0], (n - 1) / 2.0f, 1e-6);
    assert_float_equal(y[1], 1.0f, 1e-6);
    double d[2] = {0.25, (double)r};
    assert_int_equal(comm_allreduce_f64(C, d, 2), 0);
    assert_float_equal(d[0], 0.25 * n, 0);
    int64_t k[1] = {(int64_t)1 << 40};
    assert_int_equal(comm_allreduce_i64(C, k, 1), 0);
    assert_true(k[0] == ((int64_t)n << 40));
    int32_t m[1] = {r};
    assert_int_equal(comm_allreduce_max_i32(C, m, 1), 0);
    assert_int_equal(m[0], n - 1);
}

static void test_bcast(void **state)
{
    float w[4] = {0};
    if (comm_rank(C) == 0) {
        float v[4] = {3.0f, 1.0f, 4.0f, 1.5f};
        memcpy(w, v, sizeof v);
    }
    assert_int_equal(comm_bcast_f32(C, w, 4, 0), 0);
    assert_float_equal(w[2], 4.0f, 0);
    char s[8] = "";
    if (comm_rank(C) == 0) strcpy(s, "strata");
    assert_int_equal(comm_bcast_bytes(C, s, sizeof s, 0), 0);
    assert_string_equal(s, "strata");
}

/* The last rank fails: every rank learns its code and rank; success when nobody fails. */
static void test_agree(void **state)
{
    const int r = comm_rank(C), n = comm_size(C);
    int who = 7;
    assert_int_equal(comm_agree(C, 0, &who), 0);
    assert_int_equal(who, -1);
    int status = r == n - 1 ? NN_ERANGE : 0;
    assert_int_equal(comm_agree(C, status, &who), NN_ERANGE);
    assert_int_equal(who, n - 1);
    /* comm_agree_max: the same agreement, plus the largest value in one collective (a stop
     * signal seen on one rank only reaches every rank). */
    int32_t v = r == n - 1 ? 10 : 0;
    assert_int_equal(comm_agree_max(C, 0, &who, &v), 0);
    assert_int_equal(v, 10);
    v = r;
    assert_int_equal(comm_agree_max(C, status, &who, &v), NN_ERANGE);
    assert_int_equal(who, n - 1);
    assert_int_equal(v, n - 1);
    assert_int_equal(comm_barrier(C), 0);
}

int main(int argc, char **argv)
{
    if (comm_init(&C, &argc, &argv)) {
        fprintf(stderr, "comm_init: %s\n", nn_errmsg());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce),
        cmocka_unit_test(test_bcast),
        cmocka_unit_test(test_agree),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* Every rank must finish the group before MPI is finalized. */
    int32_t worst[1] = {rc};
    comm_allreduce_max_i32(C, worst, 1);
    comm_free(C);
    return worst[0] ? 1 : 0;
}
