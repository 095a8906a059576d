/* The group reducer: per-group buckets, nonblocking all-reduces started as each group's
 * backward ends, progressed between layers, completed before the optimizer step.
 *
 * Why nonblocking MPI rather than a communication thread: Open MPI makes progress on a
 * nonblocking collective only inside MPI calls, so the reducer calls MPI_Testall after each
 * child's backward (through nn's backward hook). A thread would need MPI_THREAD_MULTIPLE
 * and, with one rank per core, would compete with backward for the same core.
 * bench/bench_comm.c measures the exposed communication with and without overlap. */
#include "comm/comm.h"

#include "nn/nn.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

MPI_Comm comm__mpi(comm *c); /* comm_mpi.c */

typedef struct {
    float *data;
    int count;
    int group;
} bucket;

struct comm_reducer {
    comm *c;
    int ngroups, overlap;
    float **slabs;
    size_t *counts;
    bucket *buckets;
    int nbuckets;
    int *first_bucket, *nb; /* per group: its buckets [first, first + nb) */
    MPI_Request *req;       /* per bucket */
    int *active, *started, *completed;
    int *order, norder;     /* groups in the order they were reported done */
    double *t_start;
    comm_group_stats *stats;
    double exposed;  /* seconds blocked in finish */
    double progress; /* seconds inside progress and group_done (MPI work during backward) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return nn_err(NN_EMPI, "%s failed: %s", what, msg);
}

int comm_reducer_init(comm_reducer **out, comm *c, int ngroups, float *const *slabs,
                      const size_t *counts, size_t bucket_elems, int overlap)
{
    *out = NULL;
    if (ngroups <= 0 || bucket_elems == 0)
        return nn_err(NN_EINVAL, "reducer: %d groups, bucket of %zu elements", ngroups, bucket_elems);
    if (bucket_elems > INT_MAX) bucket_elems = INT_MAX;
    comm_reducer *r = calloc(1, sizeof *r);
    if (!r) return nn_err(NN_ENOMEM, "cannot allocate a reducer");
    r->c = c;
    r->ngroups = ngroups;
    r->overlap = overlap != 0;
    int nb = 0;
    for (int g = 0; g < ngroups; g++) nb += (int)((counts[g] + bucket_elems - 1) / bucket_elems);
    r->slabs = calloc(ngroups, sizeof(float *));
    r->counts = calloc(ngroups, sizeof(size_t));
    r->buckets = calloc(nb ? nb : 1, sizeof(bucket));
    r->req = calloc(nb ? nb : 1, sizeof(MPI_Request));
    r->first_bucket = calloc(ngroups, sizeof(int));
    r->nb = calloc(ngroups, sizeof(int));
    r->active = calloc(ngroups, sizeof(int));
    r->started = calloc(ngroups, sizeof(int));
    r->completed = calloc(ngroups, sizeof(int));
    r->order = calloc(ngroups, sizeof(int));
    r->t_start = calloc(ngroups, sizeof(double));
    r->stats = calloc(ngroups, sizeof(comm_group_stats));
    if (!r->slabs || !r->counts || !r->buckets || !r->req || !r->first_bucket || !r->nb ||
        !r->active || !r->started || !r->completed || !r->order || !r->t_start || !r->stats) {
        comm_reducer_free(r);
        return nn_err(NN_ENOMEM, "cannot allocate a reducer for %d groups", ngroups);
    }
    for (int g = 0, k = 0; g < ngroups; g++) {
        r->slabs[g] = slabs[g];
        r->counts[g] = counts[g];
        r->first_bucket[g] = k;
        for (size_t off = 0; off < counts[g]; off += bucket_elems, k++) {
            size_t n = counts[g] - off < bucket_elems ? counts[g] - off : bucket_elems;
            r->buckets[k] = (bucket){slabs[g] + off, (int)n, g};
            r->req[k] = MPI_REQUEST_NULL;
        }
        r->nb[g] = k - r->first_bucket[g];
    }
    r->nbuckets = nb;
    *out = r;
    return 0;
}

void comm_reducer_free(comm_reducer *r)
{
    if (!r) return;
    for (int k = 0; k < r->nbuckets; k++)
        if (r->req && r->req[k] != MPI_REQUEST_NULL) MPI_Wait(&r->req[k], MPI_STATUS_IGNORE);
    free(r->slabs);
    free(r->counts);
    free(r->buckets);
    free(r->req);
    free(r->first_bucket);
    free(r->nb);
    free(r->active);
    free(r->started);
    free(r->completed);
    free(r->order);
    free(r->t_start);
    free(r->stats);
    free(r);
}

void comm_reducer_begin(comm_reducer *r, const int *active)
{
    for (int g = 0; g < r->ngroups; g++) {
        r->active[g] = active[g] != 0;
        r->started[g] = r->completed[g] = 0;
    }
    r->norder = 0;
}

/* Starts group g's buckets: nonblocking with overlap, else blocking right away. */
static int start_group(comm_reducer *r, int g)
{
    MPI_Comm w = comm__mpi(r->c);
    r->started[g] = 1;
    r->t_start[g] = now_s();
    for (int k = r->first_bucket[g]; k < r->first_bucket[g] + r->nb[g]; k++) {
        bucket *b = &r->buckets[k];
        int rc = r->overlap
                     ? MPI_Iallreduce(MPI_IN_PLACE, b->data, b->count, MPI_FLOAT, MPI_SUM, w, &r->req[k])
                     : MPI_Allreduce(MPI_IN_PLACE, b->data, b->count, MPI_FLOAT, MPI_SUM, w);
        if (rc != MPI_SUCCESS) return mpi_fail(rc, r->overlap ? "MPI_Iallreduce" : "MPI_Allreduce");
        r->stats[g].bytes += (uint64_t)b->count * sizeof(float);
        r->stats[g].collectives++;
    }
    if (!r->overlap) {
        r->completed[g] = 1;
        r->stats[g].seconds += now_s() - r->t_start[g];
    }
    return 0;
}

int comm_reducer_group_done(comm_reducer *r, int g)
{
    if (g < 0 || g >= r->ngroups) return nn_err(NN_ERANGE, "reducer: group %d of %d", g, r->ngroups);
    if (!r->active[g] || r->started[g] || comm_size(r->c) == 1) return 0;
    for (int i = 0; i < r->norder; i++)
        if (r->order[i] == g) return 0;
    r->order[r->norder++] = g;
    if (!r->overlap) return 0;
    const double t0 = now_s();
    int rc = start_group(r, g);
    r->progress += now_s() - t0;
    return rc;
}

/* Checks group g's buckets; marks it completed when all are. */
static int test_group(comm_reducer *r, int g)
{
    int flag = 0;
    int rc = MPI_Testall(r->nb[g], r->req + r->first_bucket[g], &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Testall");
    if (flag) {
        r->completed[g] = 1;
        r->stats[g].seconds += now_s() - r->t_start[g];
    }
    return 0;
}

int comm_reducer_progress(comm_reducer *r)
{
    if (!r->overlap) return 0;
    const double t0 = now_s();
    int rc = 0;
    for (int i = 0; i < r->norder && !rc; i++) {
        int g = r->order[i];
        if (r->started[g] && !r->completed[g]) rc = test_group(r, g);
    }
    r->progress += now_s() - t0;
    return rc;
}

int comm_reducer_finish(comm_reducer *r, float scale)
{
    const double t0 = now_s();
    if (comm_size(r->c) > 1) {
        /* Groups that were never reported done (a caller without the hook) go last, head
         * first, so every rank issues the same collectives in the same order. */
        for (int g = r->ngroups - 1; g >= 0; g--)
            if (r->active[g] && !r->started[g]) {
                int seen = 0;
                for (int i = 0; i < r->norder; i++) seen |= r->order[i] == g;
                if (!seen) r->order[r->norder++] = g;
            }
        for (int i = 0; i < r->norder; i++) {
            int g = r->order[i], rc = 0;
            if (!r->started[g]) rc = start_group(r, g);
            if (!rc && !r->completed[g]) {
                rc = MPI_Waitall(r->nb[g], r->req + r->first_bucket[g], MPI_STATUSES_IGNORE);
                if (rc != MPI_SUCCESS) return mpi_fail(rc, "MPI_Waitall");
                r->completed[g] = 1;
                r->stats[g].seconds += now_s() - r->t_start[g];
            }
            if (rc) return rc;
        }
    }
    for (int g = 0; g < r->ngroups; g++) {
        if (!r->active[g] || scale == 1.0f) continue;
        float *x = r->slabs[g];
        for (size_t i = 0; i < r->counts[g]; i++) x[i] *= scale;
    }
    r->exposed += now_s() - t0;
    return 0;
}

const comm_group_stats *comm_reducer_stats(const comm_reducer *r, int g)
{
    return &r->stats[g];
}

double comm_reducer_exposed_seconds(const comm_reducer *r)
{
    return r->exposed;
}

double comm_reducer_progress_seconds(const comm_reducer *r)
{
    return r->progress;
}
