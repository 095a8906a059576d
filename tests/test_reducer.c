/* The group reducer on however many ranks mpiexec starts (1 when run alone: an MPI
 * singleton). Groups of odd sizes (1, 7, 1000 and 4099 floats) with buckets of 1000
 * elements, so that bucket boundaries fall inside groups; every rank fills the slabs with its
 * own data, and after begin / group_done (head first) / progress / finish (scale 1/world)
 * every active slab must equal the average computed here serially from the same formula.
 * The values are multiples of 1/4 small enough that every partial sum is exact in float, so
 * the sum does not depend on MPI's reduction order and the comparison is exact. Inactive
 * (frozen) groups keep their data bit for bit and their counters stay at 0; a group sending
 * only its tail reduces just that part. Every case runs
 * in the three modes: reduce after backward, nonblocking overlap, and the communication
 * thread. Registered in CTest alone and under mpiexec at 1, 2, 3 and 4 ranks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm.h"
#include "util/util.h"
#include "io/io.h"
#include "nn/nn.h"
#include "testutil.h"

enum { NG = 4, BUCKET = 1000 };
static const size_t COUNTS[NG] = {1, 7, 1000, 4099}; /* group 3 is the head */

static comm *C;

/* Rank r's value of element i of group g at step s: a multiple of 1/4 in [-40, 40). */
static float value(int r, int g, size_t i, int s)
{
    long v = ((long)(r + 1) * (long)(i % 97) + 31L * g + 7L * s + 13L * r * r) % 320;
    return (float)(v - 160) * 0.25f;
}

/* The serial average over every rank, in the same float operations as the reducer: an
 * exact sum, then one multiplication by scale. */
static float expected(int g, size_t i, int s, int world, float scale)
{
    float sum = 0.0f;
    for (int r = 0; r < world; r++) sum += value(r, g, i, s);
    return sum * scale;
}

typedef struct {
    float *slab[NG];
    comm_reducer *red;
    comm_reduce_mode mode;
    double t0; /* util_now_s() at fixture_init: the counters' seconds fit since */
} fixture;

static void fixture_init(fixture *f, comm_reduce_mode mode)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->t0 = util_now_s();
    for (int g = 0; g < NG; g++) {
        f->slab[g] = malloc(sizeof(float) * COUNTS[g]);
        assert_non_null(f->slab[g]);
    }
    assert_int_equal(comm_reducer_init(&f->red, C, NG, f->slab, COUNTS, NULL, BUCKET, mode), 0);
}

static void fixture_free(fixture *f)
{
    comm_reducer_free(f->red);
    for (int g = 0; g < NG; g++) free(f->slab[g]);
}

static void fill(fixture *f, int s)
{
    const int r = comm_rank(C);
    for (int g = 0; g < NG; g++)
        for (size_t i = 0; i < COUNTS[g]; i++) f->slab[g][i] = value(r, g, i, s);
}

/* Every element of every group: the average for active groups, this rank's own data,
 * untouched, for inactive ones. */
static void check_slabs(const fixture *f, const int *active, int s, float scale)
{
    const int r = comm_rank(C), world = comm_size(C);
    int bad[1] = {0};
    for (int g = 0; g < NG && !bad[0]; g++)
        for (size_t i = 0; i < COUNTS[g]; i++) {
            const float want = active[g] ? expected(g, i, s, world, scale) : value(r, g, i, s);
            if (f->slab[g][i] != want) {
                print_error("rank %d of %d, mode %d, step %d: group %d (%s) element %zu is "
                            "%.9g, expected %.9g\n",
                            r, world, (int)f->mode, s, g, active[g] ? "active" : "inactive", i,
                            (double)f->slab[g][i], (double)want);
                bad[0] = 1;
                break;
            }
        }
    /* Every rank fails together, so none is left waiting in the next test's collectives. */
    tu_agree(C, bad[0], "the reduced slabs differ from the serial average");
}

/* Counters after `steps` steps in which the groups in active[] were reduced: count * 4
 * bytes and one collective per bucket each step; nothing for inactive groups, and nothing
 * at all on one rank (a singleton sends nothing). A sending group's seconds are positive and,
 * like the exposed seconds, no more than the wall time since fixture_init. Every rank judges
 * its own counters, then all agree, so that a failure on one rank does not leave the others
 * waiting in the next collective. */
static void check_stats(const fixture *f, const int *active, int steps)
{
    const int world = comm_size(C);
    const double wall = util_now_s() - f->t0;
    int bad[1] = {0};
    for (int g = 0; g < NG; g++) {
        const comm_group_stats *st = comm_reducer_stats(f->red, g);
        const int sends = active[g] && world > 1;
        const uint64_t bytes = sends ? (uint64_t)steps * COUNTS[g] * sizeof(float) : 0;
        const uint64_t coll = sends ? (uint64_t)steps * ((COUNTS[g] + BUCKET - 1) / BUCKET) : 0;
        if (st->bytes != bytes || st->collectives != coll) {
            print_error("rank %d, world %d, mode %d: group %d (%s) counters: %llu bytes, %llu "
                        "collectives; expected %llu bytes, %llu collectives\n",
                        comm_rank(C), world, (int)f->mode, g, active[g] ? "active" : "inactive",
                        (unsigned long long)st->bytes, (unsigned long long)st->collectives,
                        (unsigned long long)bytes, (unsigned long long)coll);
            bad[0] = 1;
        }
        if (sends ? !(st->seconds > 0.0 && st->seconds <= wall) : st->seconds != 0.0) {
            print_error("rank %d, mode %d: group %d (%s) seconds %g; expected %s %g s\n",
                        comm_rank(C), (int)f->mode, g, sends ? "sending" : "silent", st->seconds,
                        sends ? "in (0, wall time]" : "0, not even", sends ? wall : 0.0);
            bad[0] = 1;
        }
    }
    const double exposed = comm_reducer_exposed_seconds(f->red);
    if (!(exposed >= 0.0 && exposed <= wall)) {
        print_error("rank %d, mode %d: exposed seconds %g outside [0, %g]\n", comm_rank(C),
                    (int)f->mode, exposed, wall);
        bad[0] = 1;
    }
    tu_agree(C, bad[0], "the reducer's counters are wrong on some rank");
}

/* One step as the trainer drives it: head first, progress between groups, a repeated
 * group_done (harmless), group_done on an inactive group (ignored), finish with 1/world. */
static void step_all_reported(fixture *f, const int *active, int s)
{
    const float scale = 1.0f / (float)comm_size(C);
    fill(f, s);
    comm_reducer_begin(f->red, active);
    for (int g = NG - 1; g >= 0; g--) {
        assert_int_equal(comm_reducer_progress(f->red), 0);
        assert_int_equal(comm_reducer_group_done(f->red, g), 0);
        assert_int_equal(comm_reducer_progress(f->red), 0);
        assert_int_equal(comm_reducer_group_done(f->red, g), 0); /* twice: harmless */
    }
    assert_int_equal(comm_reducer_group_done(f->red, NG - 1), 0); /* again, after the others */
    assert_int_equal(comm_reducer_progress(f->red), 0);
    assert_int_equal(comm_reducer_finish(f->red, scale), 0);
    check_slabs(f, active, s, scale);
}

static void run_all_reported(comm_reduce_mode mode)
{
    fixture f;
    fixture_init(&f, mode);
    const int all[NG] = {1, 1, 1, 1};
    for (int s = 0; s < 3; s++) step_all_reported(&f, all, s);
    check_stats(&f, all, 3);
    fixture_free(&f);
}

static void test_average_overlap(void **state)
{
    run_all_reported(COMM_REDUCE_NONBLOCKING);
}

static void test_average_no_overlap(void **state)
{
    run_all_reported(COMM_REDUCE_AFTER);
}

static void test_average_thread(void **state)
{
    run_all_reported(COMM_REDUCE_THREAD);
}

/* Groups 0 and 1 frozen (the body below the head's neighbour): their data is untouched
 * and their counters stay at 0 bytes and 0 collectives, step after step. */
static void run_frozen(comm_reduce_mode mode)
{
    fixture f;
    fixture_init(&f, mode);
    const int active[NG] = {0, 0, 1, 1};
    for (int s = 0; s < 2; s++) step_all_reported(&f, active, s);
    check_stats(&f, active, 2);
    /* Everything frozen: nothing is sent, nothing changes, not even by the scale. */
    const int none[NG] = {0, 0, 0, 0};
    step_all_reported(&f, none, 5);
    check_stats(&f, active, 2);
    fixture_free(&f);
}

static void test_frozen_overlap(void **state)
{
    run_frozen(COMM_REDUCE_NONBLOCKING);
}

static void test_frozen_no_overlap(void **state)
{
    run_frozen(COMM_REDUCE_AFTER);
}

static void test_frozen_thread(void **state)
{
    run_frozen(COMM_REDUCE_THREAD);
}

/* A caller that reports only the head and group 2: finish still reduces groups 1 and 0. */
static void run_unreported(comm_reduce_mode mode)
{
    fixture f;
    fixture_init(&f, mode);
    const int active[NG] = {1, 1, 1, 1};
    const float scale = 1.0f / (float)comm_size(C);
    fill(&f, 4);
    comm_reducer_begin(f.red, active);
    assert_int_equal(comm_reducer_group_done(f.red, 3), 0);
    assert_int_equal(comm_reducer_progress(f.red), 0);
    assert_int_equal(comm_reducer_group_done(f.red, 2), 0);
    assert_int_equal(comm_reducer_finish(f.red, scale), 0);
    check_slabs(&f, active, 4, scale);
    check_stats(&f, active, 1);
    /* A step in which no group is reported at all. */
    fill(&f, 6);
    comm_reducer_begin(f.red, active);
    assert_int_equal(comm_reducer_finish(f.red, scale), 0);
    check_slabs(&f, active, 6, scale);
    check_stats(&f, active, 2);
    fixture_free(&f);
}

static void test_unreported_overlap(void **state)
{
    run_unreported(COMM_REDUCE_NONBLOCKING);
}

static void test_unreported_no_overlap(void **state)
{
    run_unreported(COMM_REDUCE_AFTER);
}

static void test_unreported_thread(void **state)
{
    run_unreported(COMM_REDUCE_THREAD);
}

/* Scale 1 leaves the plain sum (the trainer divides by world * accumulate elsewhere only
 * through scale); a group index out of range is an error, not a crash. */
static void run_sum_and_bad_group(comm_reduce_mode mode)
{
    fixture f;
    fixture_init(&f, mode);
    const int active[NG] = {1, 0, 1, 1};
    fill(&f, 9);
    comm_reducer_begin(f.red, active);
    assert_int_equal(comm_reducer_group_done(f.red, NG), NN_ERANGE);
    assert_int_equal(comm_reducer_group_done(f.red, -1), NN_ERANGE);
    for (int g = NG - 1; g >= 0; g--) assert_int_equal(comm_reducer_group_done(f.red, g), 0);
    assert_int_equal(comm_reducer_finish(f.red, 1.0f), 0);
    check_slabs(&f, active, 9, 1.0f);
    fixture_free(&f);
}

static void test_sum_and_bad_group(void **state)
{
    run_sum_and_bad_group(COMM_REDUCE_NONBLOCKING);
}

static void test_sum_and_bad_group_thread(void **state)
{
    run_sum_and_bad_group(COMM_REDUCE_THREAD);
}

/* Thread mode: a reducer freed in the middle of a step (every group queued, no finish)
 * still reduces what was queued before its thread ends, so the slabs hold the plain sums
 * and no rank is left waiting; a new reducer works after it. Unknown progress names are
 * refused. */
static void test_thread_free_mid_step(void **state)
{
    comm_reducer *red;
    float *slab[NG];
    for (int g = 0; g < NG; g++) assert_non_null(slab[g] = malloc(sizeof(float) * COUNTS[g]));
    fixture f = {.mode = COMM_REDUCE_THREAD};
    assert_int_equal(comm_reducer_init(&red, C, NG, slab, COUNTS, NULL, BUCKET, COMM_REDUCE_THREAD), 0);
    memcpy(f.slab, slab, sizeof slab);
    const int all[NG] = {1, 1, 1, 1};
    fill(&f, 2);
    comm_reducer_begin(red, all);
    for (int g = NG - 1; g >= 0; g--) assert_int_equal(comm_reducer_group_done(red, g), 0);
    comm_reducer_free(red);
    check_slabs(&f, all, 2, 1.0f);
    for (int g = 0; g < NG; g++) free(slab[g]);
    run_all_reported(COMM_REDUCE_THREAD);

    comm_reduce_mode m = COMM_REDUCE_AFTER;
    assert_int_equal(comm_reduce_mode_parse(&m, "thread"), 0);
    assert_int_equal(m, COMM_REDUCE_THREAD);
    assert_int_equal(comm_reduce_mode_parse(&m, "nonblocking"), 0);
    assert_int_equal(m, COMM_REDUCE_NONBLOCKING);
    assert_int_equal(comm_reduce_mode_parse(&m, "threads"), NN_EINVAL);
    assert_non_null(strstr(nn_errmsg(), "'threads'"));
}

/* Tails: group g's buckets never cross tails[g], and a group sending only its tail reduces
 * [tails[g], count) and leaves [0, tails[g]) as this rank's own data; an empty tail sends
 * nothing; a group sending everything is not affected by its tail. Counters count only what
 * was sent, with the tail's own buckets. */
static void run_tails(comm_reduce_mode mode)
{
    static const size_t TAILS[NG] = {1, 3, 600, 2500}; /* group 0: an empty tail */
    const int active[NG] = {COMM_GROUP_TAIL, COMM_GROUP_TAIL, COMM_GROUP_TAIL, COMM_GROUP_ALL};
    fixture f = {.mode = mode};
    for (int g = 0; g < NG; g++) assert_non_null(f.slab[g] = malloc(sizeof(float) * COUNTS[g]));
    assert_int_equal(comm_reducer_init(&f.red, C, NG, f.slab, COUNTS, TAILS, BUCKET, mode), 0);
    const int r = comm_rank(C), world = comm_size(C);
    const float scale = 1.0f / (float)world;
    for (int s = 0; s < 2; s++) {
        fill(&f, s);
        comm_reducer_begin(f.red, active);
        for (int g = NG - 1; g >= 0; g--) assert_int_equal(comm_reducer_group_done(f.red, g), 0);
        assert_int_equal(comm_reducer_finish(f.red, scale), 0);
        int bad[1] = {0};
        for (int g = 0; g < NG && !bad[0]; g++)
            for (size_t i = 0; i < COUNTS[g] && !bad[0]; i++) {
                const int reduced = active[g] == COMM_GROUP_ALL || i >= TAILS[g];
                const float want = reduced ? expected(g, i, s, world, scale) : value(r, g, i, s);
                if (f.slab[g][i] != want) {
                    print_error("rank %d of %d, mode %d: group %d element %zu (%s) is %.9g, "
                                "expected %.9g\n",
                                r, world, (int)mode, g, i, reduced ? "reduced" : "kept",
                                (double)f.slab[g][i], (double)want);
                    bad[0] = 1;
                }
            }
        tu_agree(C, bad[0], "a tail reduction differs from the serial average");
    }
    for (int g = 0; g < NG; g++) {
        const comm_group_stats *st = comm_reducer_stats(f.red, g);
        const size_t sent = world == 1 ? 0 : active[g] == COMM_GROUP_ALL ? COUNTS[g] : COUNTS[g] - TAILS[g];
        /* Buckets: the part before the tail and the tail are cut separately. */
        const uint64_t buckets = active[g] == COMM_GROUP_ALL
                                     ? (TAILS[g] + BUCKET - 1) / BUCKET +
                                           (COUNTS[g] - TAILS[g] + BUCKET - 1) / BUCKET
                                     : (COUNTS[g] - TAILS[g] + BUCKET - 1) / BUCKET;
        if (st->bytes != 2 * sent * sizeof(float) || st->collectives != (sent ? 2 * buckets : 0))
            fail_msg("world %d, mode %d: group %d counters: %llu bytes, %llu collectives; expected "
                     "%llu bytes, %llu collectives",
                     world, (int)mode, g, (unsigned long long)st->bytes,
                     (unsigned long long)st->collectives,
                     (unsigned long long)(2 * sent * sizeof(float)),
                     (unsigned long long)(sent ? 2 * buckets : 0));
    }
    comm_reducer_free(f.red);
    for (int g = 0; g < NG; g++) free(f.slab[g]);
    /* A tail past the end of its slab is refused. */
    static const size_t BAD[NG] = {2, 0, 0, 0};
    comm_reducer *red = NULL;
    assert_int_equal(comm_reducer_init(&red, C, NG, f.slab, COUNTS, BAD, BUCKET, mode), NN_EINVAL);
    assert_null(red);
    assert_non_null(strstr(nn_errmsg(), "group 0's tail starts at 2"));
}

static void test_tails_overlap(void **state)
{
    run_tails(COMM_REDUCE_NONBLOCKING);
}

static void test_tails_no_overlap(void **state)
{
    run_tails(COMM_REDUCE_AFTER);
}

static void test_tails_thread(void **state)
{
    run_tails(COMM_REDUCE_THREAD);
}

static int cmp_int(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* What makes the reducer's average the same gradient on any number of ranks: the trainer's
 * rank r takes its step-b samples shard_r[b*B*A .. (b+1)*B*A) from io_shard, and for a
 * fixed global batch (B = global / world) the union over ranks of those slices is the same
 * set of samples as one rank's step b, for every world size, accumulation and epoch. */
static void test_shard_union(void **state)
{
    enum { N = 1000, GLOBAL = 24 };
    static int one[N], shard[N], got[2 * GLOBAL], want[2 * GLOBAL];
    for (int epoch = 0; epoch < 2; epoch++)
        for (int A = 1; A <= 2; A++) {
            int n1 = 0;
            assert_int_equal(io_shard(one, &n1, N, 0, 1, 42, epoch), 0);
            for (int world = 2; world <= 4; world++) {
                const int B = GLOBAL / world, per = B * A;
                int steps = -1;
                for (int b = 0;; b++) {
                    int k = 0, last = 0;
                    for (int r = 0; r < world; r++) {
                        int count = 0;
                        assert_int_equal(io_shard(shard, &count, N, r, world, 42, epoch), 0);
                        if ((b + 1) * per > count) last = 1;
                        for (int j = 0; j < per && !last; j++) got[k++] = shard[b * per + j];
                    }
                    if (last) {
                        steps = b;
                        break;
                    }
                    memcpy(want, one + (size_t)b * GLOBAL * A, sizeof(int) * GLOBAL * A);
                    qsort(got, GLOBAL * A, sizeof(int), cmp_int);
                    qsort(want, GLOBAL * A, sizeof(int), cmp_int);
                    for (int j = 0; j < GLOBAL * A; j++)
                        if (got[j] != want[j] || (j && got[j] == got[j - 1]))
                            fail_msg("epoch %d, accumulate %d, world %d, step %d: the ranks' "
                                     "samples are not one rank's step (sorted position %d: %d, "
                                     "expected %d)",
                                     epoch, A, world, b, j, got[j], want[j]);
                }
                assert_int_equal(steps, N / world / per);
            }
        }
}

/* With --timeout S (CTest's *_timeout runs) every test runs under the collective timeout:
 * blocking all-reduces become nonblocking ones completed by comm's polling wait. */
int main(int argc, char **argv)
{
    if (comm_init(&C, &argc, &argv)) {
        fprintf(stderr, "comm_init: %s\n", nn_errmsg());
        return 1;
    }
    if (argc == 3 && !strcmp(argv[1], "--timeout")) comm_set_timeout(C, atof(argv[2]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_average_overlap),
        cmocka_unit_test(test_average_no_overlap),
        cmocka_unit_test(test_frozen_overlap),
        cmocka_unit_test(test_frozen_no_overlap),
        cmocka_unit_test(test_unreported_overlap),
        cmocka_unit_test(test_unreported_no_overlap),
        cmocka_unit_test(test_average_thread),
        cmocka_unit_test(test_frozen_thread),
        cmocka_unit_test(test_unreported_thread),
        cmocka_unit_test(test_sum_and_bad_group),
        cmocka_unit_test(test_sum_and_bad_group_thread),
        cmocka_unit_test(test_thread_free_mid_step),
        cmocka_unit_test(test_tails_overlap),
        cmocka_unit_test(test_tails_no_overlap),
        cmocka_unit_test(test_tails_thread),
        cmocka_unit_test(test_shard_union),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    /* Every rank must finish the group before MPI is finalized. */
    int32_t worst[1] = {rc};
    comm_allreduce_max_i32(C, worst, 1);
    comm_free(C);
    return worst[0] ? 1 : 0;
}
