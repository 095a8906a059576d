/* The communicator on however many ranks mpiexec starts (1 when run alone: an MPI
 * singleton): typed all-reduces, broadcast, and agreement on a failure. Registered in
 * CTest at 1, 2 and 3 ranks. A check that fails on one rank is only recorded (CHECK) until
 * the test's end, where every rank agrees (agreed()): a rank that stopped in the middle would
 * leave the others waiting in the next collective. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "nn/nn.h"
#include "testutil.h"

static comm *C;

/* The checks that failed on this rank in the running test. */
static int failed;

/* Records a failed condition with its line and this rank, without leaving the test. */
#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            print_error("rank %d: %s:%d: %s\n", comm_rank(C), __FILE__, __LINE__, #cond);    \
            failed++;                                                                        \
        }                                                                                    \
    } while (0)

/* The end of a test: every rank learns whether any rank's check failed, and all fail. */
static void agreed(void)
{
    const int f = failed;
    failed = 0;
    tu_agree(C, f, "a check failed on some rank");
}

static void test_allreduce(void **state)
{
    const int r = comm_rank(C), n = comm_size(C);
    float x[5] = {1.0f, (float)r, 2.0f * r, -1.0f, 0.5f};
    CHECK(comm_allreduce_f32(C, x, 5, 0) == 0);
    CHECK(x[0] == (float)n);
    CHECK(x[1] == n * (n - 1) / 2.0f);
    CHECK(x[2] == (float)(n * (n - 1)));
    float y[3] = {(float)r, 1.0f, 3.0f};
    CHECK(comm_allreduce_f32(C, y, 3, 1) == 0);
    CHECK(fabsf(y[0] - (n - 1) / 2.0f) <= 1e-6f);
    CHECK(fabsf(y[1] - 1.0f) <= 1e-6f);
    double d[2] = {0.25, (double)r};
    CHECK(comm_allreduce_f64(C, d, 2) == 0);
    CHECK(d[0] == 0.25 * n);
    int64_t k[1] = {(int64_t)1 << 40};
    CHECK(comm_allreduce_i64(C, k, 1) == 0);
    CHECK(k[0] == ((int64_t)n << 40));
    int32_t m[1] = {r};
    CHECK(comm_allreduce_max_i32(C, m, 1) == 0);
    CHECK(m[0] == n - 1);
    agreed();
}

static void test_bcast(void **state)
{
    float w[4] = {0};
    if (comm_rank(C) == 0) {
        float v[4] = {3.0f, 1.0f, 4.0f, 1.5f};
        memcpy(w, v, sizeof v);
    }
    CHECK(comm_bcast_f32(C, w, 4, 0) == 0);
    CHECK(w[2] == 4.0f);
    char s[8] = "";
    if (comm_rank(C) == 0) strcpy(s, "strata");
    CHECK(comm_bcast_bytes(C, s, sizeof s, 0) == 0);
    CHECK(!strcmp(s, "strata"));
    agreed();
}

/* The last rank fails: every rank learns its code and rank; success when nobody fails. */
static void test_agree(void **state)
{
    const int r = comm_rank(C), n = comm_size(C);
    int who = 7;
    CHECK(comm_agree(C, 0, &who) == 0);
    CHECK(who == -1);
    int status = r == n - 1 ? NN_ERANGE : 0;
    CHECK(comm_agree(C, status, &who) == NN_ERANGE);
    CHECK(who == n - 1);
    /* comm_agree_max: the same agreement, plus the largest value in one collective (a stop
     * signal seen on one rank only reaches every rank). */
    int32_t v = r == n - 1 ? 10 : 0;
    CHECK(comm_agree_max(C, 0, &who, &v) == 0);
    CHECK(v == 10);
    v = r;
    CHECK(comm_agree_max(C, status, &who, &v) == NN_ERANGE);
    CHECK(who == n - 1);
    CHECK(v == n - 1);
    CHECK(comm_barrier(C) == 0);
    agreed();
}

/* comm_agree_after agrees as comm_agree does; the timeout reads back as set (0: off). */
static void test_agree_after(void **state)
{
    const int r = comm_rank(C), n = comm_size(C);
    int who = 7;
    CHECK(comm_agree_after(C, 0, &who, 0) == 0);
    CHECK(who == -1);
    CHECK(comm_agree_after(C, r == n - 1 ? NN_EIO : 0, &who, n - 1) == NN_EIO);
    CHECK(who == n - 1);
    const double t = comm_timeout(C);
    comm_set_timeout(C, -1.0);
    CHECK(comm_timeout(C) == 0.0);
    comm_set_timeout(C, 12.5);
    CHECK(comm_timeout(C) == 12.5);
    comm_set_timeout(C, t);
    agreed();
}

/* With --timeout S (CTest's *_timeout runs) every test runs under the collective timeout:
 * the collectives are then nonblocking calls completed by comm's polling wait. */
int main(int argc, char **argv)
{
    if (comm_init(&C, &argc, &argv)) {
        fprintf(stderr, "comm_init: %s\n", nn_errmsg());
        return 1;
    }
    if (argc == 3 && !strcmp(argv[1], "--timeout")) comm_set_timeout(C, atof(argv[2]));
    comm_set_step(C, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce),
        cmocka_unit_test(test_bcast),
        cmocka_unit_test(test_agree),
        cmocka_unit_test(test_agree_after),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* Every rank must finish the group before MPI is finalized. */
    int32_t worst[1] = {rc};
    comm_allreduce_max_i32(C, worst, 1);
    comm_free(C);
    return worst[0] ? 1 : 0;
}
