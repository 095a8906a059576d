/* The collective timeout's cases, one per run (tests/faults/comm_timeout.sh judges them):
 * comm.timeout_s = T (argv[2]), step 7, and rank 1 late by S seconds (argv[3]), outside MPI,
 * before it joins the collective (a hung rank; S past the test's limit: one that never joins).
 *
 *   agree          comm_agree; on 3 ranks rank 2 also late, by 1 s (late but alive: it must
 *                  answer, not be named)
 *   nonblocking    the reducer's gradient all-reduce, comm.progress nonblocking
 *   after          the same without overlap (blocking all-reduces in finish)
 *   thread         the same from the communication thread
 *   alone          comm_agree_after(root 1): rank 0 waits for rank 1's work alone and allows
 *                  COMM_ALONE_FACTOR x T
 *   mismatch       each rank broadcasts 1 MiB as the root (ranks that disagree on the root):
 *                  no broadcast can complete, and every rank answers
 *
 * Exit 0 when the collective completed on this rank. */
#include "comm/comm.h"
#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Two groups of 1000 floats, all of them reduced once, in mode. */
static int reduce(comm *c, comm_reduce_mode mode)
{
    static float a[1000], b[1000];
    float *slabs[2] = {a, b};
    const size_t counts[2] = {1000, 1000};
    const int active[2] = {COMM_GROUP_ALL, COMM_GROUP_ALL};
    comm_reducer *r;
    int rc = comm_reducer_init(&r, c, 2, slabs, counts, NULL, 256, mode);
    if (rc) return rc;
    comm_reducer_begin(r, active);
    for (int g = 1; g >= 0 && !rc; g--) rc = comm_reducer_group_done(r, g);
    if (!rc) rc = comm_reducer_finish(r, 1.0f);
    comm_reducer_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: comm_timeout CASE TIMEOUT_S LATE_S\n");
        return 2;
    }
    comm *c = NULL;
    if (comm_init(&c, &argc, &argv)) {
        fprintf(stderr, "comm_timeout: %s\n", nn_errmsg());
        return 2;
    }
    const char *what = argv[1];
    const int rank = comm_rank(c);
    comm_set_timeout(c, atof(argv[2]));
    comm_set_step(c, 7);
    if (rank == 1) sleep_s(atof(argv[3]));
    if (rank == 2) sleep_s(1.0);
    int rc;
    if (!strcmp(what, "agree"))
        rc = comm_agree(c, 0, NULL);
    else if (!strcmp(what, "nonblocking"))
        rc = reduce(c, COMM_REDUCE_NONBLOCKING);
    else if (!strcmp(what, "after"))
        rc = reduce(c, COMM_REDUCE_AFTER);
    else if (!strcmp(what, "thread"))
        rc = reduce(c, COMM_REDUCE_THREAD);
    else if (!strcmp(what, "alone"))
        rc = comm_agree_after(c, 0, NULL, 1);
    else if (!strcmp(what, "mismatch")) {
        static char buf[1 << 20]; /* past the eager limit: a send waits for its receive */
        rc = comm_bcast_bytes(c, buf, sizeof buf, rank);
    }
    else
        rc = nn_err(NN_EINVAL, "unknown case '%s'", what);
    if (rc) fprintf(stderr, "comm_timeout: rank %d: %s\n", rank, nn_errmsg());
    else printf("comm_timeout: rank %d: completed\n", rank);
    comm_set_timeout(c, 0.0);
    comm_free(c);
    return rc ? 3 : 0;
}
