/* The group reducer: per-group buckets, reduced as each group's backward ends, completed
 * before the optimizer step. Three modes (comm_reduce_mode):
 *
 * - after (no overlap): one blocking MPI_Allreduce per bucket inside finish;
 * - nonblocking (the default): MPI_Iallreduce started in group_done, driven by MPI_Testall
 *   after each child's backward (nn's backward hook), since Open MPI makes progress on a
 *   nonblocking collective only inside MPI calls;
 * - thread: a pthread owned by the reducer (started in init, joined in free) takes each
 *   group from a queue (mutex + condition variable) as it is reported done and runs
 *   blocking MPI_Allreduces on its buckets; finish waits until the queue is drained. Only
 *   one thread calls MPI at a time, so MPI_THREAD_SERIALIZED is enough.
 *
 * Why nonblocking is the default (comm.progress), measured with bench/bench_comm.c
 * (docs/comm.md, docs/performance.md): the thread was not clearly better. With one rank per
 * core the thread's copies, sums and busy polling run on the core that computes backward,
 * as MPI_Testall's work does, plus thread switches: the mlp's 2-rank step was 3-5 ms
 * longer with the thread, and the cnn's gain was within the noise of a shared machine. */
#include "comm/comm.h"
#include "comm/comm_internal.h"

#include "nn/nn.h"
#include "util/util.h"

#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    float *data;
    int count;
    int group;
} bucket;

struct comm_reducer {
    comm *c;
    int ngroups;
    comm_reduce_mode mode;
    float **slabs;
    size_t *counts;
    bucket *buckets;
    int nbuckets;
    int *first_bucket, *nb; /* per group: its buckets [first, first + nb) */
    size_t *tail;           /* per group: the offset where its tail starts (counts[g]: none) */
    int *tail_bucket;       /* per group: the tail's first bucket */
    int *kb, *ke;           /* per group, this step: the buckets [kb, ke) it sends */
    MPI_Request *req;       /* per bucket */
    int *active, *started, *completed;
    int *order, norder;     /* groups in the order they were reported done */
    double *t_start;
    comm_group_stats *stats;
    double exposed;  /* seconds blocked in finish */
    double progress; /* seconds inside progress and group_done (MPI work during backward) */

    /* Thread mode. order[0..norder) is the queue and order[0..next) what the thread has
     * taken; every field below, and norder, order, started, completed and stats while the
     * thread runs, are guarded by mu. */
    int has_thread;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work; /* the main thread queued a group, or quit is set */
    pthread_cond_t idle; /* the thread emptied the queue */
    int next;            /* groups of order[] the thread has taken */
    int busy;            /* the thread is reducing a group */
    int quit;            /* free asks the thread to end */
    int err;             /* the thread's first error code of the step, 0 if none */
    char errmsg[512];    /* and its message (nn_err's buffer is per thread) */
};

/* Whether reductions wait against the collective timeout (comm_set_timeout): then blocking
 * all-reduces become MPI_Iallreduce completed by comm__wait. */
static int timed(const comm_reducer *r)
{
    return comm_size(r->c) > 1 && comm_timeout(r->c) > 0.0;
}

/* One bucket's all-reduce, blocking: MPI_Allreduce, or with the timeout MPI_Iallreduce and
 * comm__wait (label names the collective in a timeout's message, with the group). */
static int reduce_blocking(comm_reducer *r, const bucket *b, const char *what, const char *label)
{
    MPI_Comm w = comm__mpi(r->c);
    if (!timed(r))
        return comm__mpi_check(MPI_Allreduce(MPI_IN_PLACE, b->data, b->count, MPI_FLOAT, MPI_SUM, w),
                               what);
    MPI_Request req;
    int rc = comm__mpi_check(MPI_Iallreduce(MPI_IN_PLACE, b->data, b->count, MPI_FLOAT, MPI_SUM, w, &req),
                             what);
    return rc ? rc : comm__wait(r->c, 1, &req, label, b->group);
}

/* The communication thread: takes each queued group in order and reduces its buckets with
 * blocking all-reduces. After an error it empties the queue without sending (finish
 * reports the error). On quit it first drains the queue, so that a reducer freed in the
 * middle of a step still issues on every rank the collectives every rank queued (as
 * nonblocking mode waits for its requests in free). */
static void *reduce_thread(void *arg)
{
    comm_reducer *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->quit && r->next == r->norder) pthread_cond_wait(&r->work, &r->mu);
        if (r->next == r->norder) break; /* quit, and nothing left */
        const int g = r->order[r->next++], skip = r->err != 0;
        r->busy = 1;
        pthread_mutex_unlock(&r->mu);

        int rc = 0, sent = 0;
        const double t0 = util_now_s();
        for (int k = r->kb[g]; k < r->ke[g] && !skip && !rc; k++) {
            rc = reduce_blocking(r, &r->buckets[k], "MPI_Allreduce (communication thread)",
                                 "the gradient all-reduce of group %d (communication thread)");
            sent += !rc;
        }
        const double t1 = util_now_s();

        pthread_mutex_lock(&r->mu);
        for (int k = r->kb[g]; k < r->kb[g] + sent; k++) {
            r->stats[g].bytes += (uint64_t)r->buckets[k].count * sizeof(float);
            r->stats[g].collectives++;
        }
        if (!skip) {
            r->t_start[g] = t0;
            r->stats[g].seconds += t1 - t0;
        }
        r->completed[g] = !skip && !rc;
        if (rc && !r->err) {
            r->err = rc;
            snprintf(r->errmsg, sizeof r->errmsg, "%s", nn_errmsg());
        }
        r->busy = 0;
        if (r->next == r->norder) pthread_cond_broadcast(&r->idle);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Thread mode: blocks (r->mu held) until the thread has taken and finished every queued
 * group. */
static void wait_idle(comm_reducer *r)
{
    while (r->next < r->norder || r->busy) pthread_cond_wait(&r->idle, &r->mu);
}

int comm_reduce_mode_parse(comm_reduce_mode *mode, const char *name)
{
    if (!strcmp(name, "nonblocking")) *mode = COMM_REDUCE_NONBLOCKING;
    else if (!strcmp(name, "thread")) *mode = COMM_REDUCE_THREAD;
    else return nn_err(NN_EINVAL, "comm progress '%s': expected nonblocking or thread", name);
    return 0;
}

/* Group g's buckets from k on: [0, tail) and [tail, count) each cut into pieces of at most
 * bucket_elems. Returns the next free bucket index; with r->buckets NULL it only counts. */
static int cut_buckets(comm_reducer *r, int g, float *slab, size_t count, size_t tail,
                       size_t bucket_elems, int k)
{
    const size_t parts[3] = {0, tail, count};
    for (int p = 0; p < 2; p++) {
        if (p == 1 && r->buckets) r->tail_bucket[g] = k;
        for (size_t off = parts[p]; off < parts[p + 1]; off += bucket_elems, k++) {
            size_t n = parts[p + 1] - off < bucket_elems ? parts[p + 1] - off : bucket_elems;
            if (r->buckets) {
                r->buckets[k] = (bucket){slab + off, (int)n, g};
                r->req[k] = MPI_REQUEST_NULL;
            }
        }
    }
    return k;
}

int comm_reducer_init(comm_reducer **out, comm *c, int ngroups, float *const *slabs,
                      const size_t *counts, const size_t *tails, size_t bucket_elems,
                      comm_reduce_mode mode)
{
    *out = NULL;
    if (ngroups <= 0 || bucket_elems == 0)
        return nn_err(NN_EINVAL, "reducer: %d groups, bucket of %zu elements", ngroups, bucket_elems);
    if (mode != COMM_REDUCE_AFTER && mode != COMM_REDUCE_NONBLOCKING && mode != COMM_REDUCE_THREAD)
        return nn_err(NN_EINVAL, "reducer: unknown mode %d", (int)mode);
    if (mode == COMM_REDUCE_THREAD && comm__thread_level(c) < MPI_THREAD_SERIALIZED)
        return nn_err(NN_EMPI, "reducer: a communication thread (comm.progress: thread) needs "
                               "MPI_THREAD_SERIALIZED, but MPI provides only %s; use "
                               "comm.progress: nonblocking",
                      comm__thread_level(c) == MPI_THREAD_SINGLE ? "MPI_THREAD_SINGLE"
                                                                 : "MPI_THREAD_FUNNELED");
    if (bucket_elems > INT_MAX) bucket_elems = INT_MAX;
    comm_reducer *r = calloc(1, sizeof *r);
    if (!r) return nn_err(NN_ENOMEM, "cannot allocate a reducer");
    r->c = c;
    r->ngroups = ngroups;
    r->mode = mode;
    for (int g = 0; g < ngroups && tails; g++)
        if (tails[g] > counts[g]) {
            free(r);
            return nn_err(NN_EINVAL, "reducer: group %d's tail starts at %zu, past its %zu elements",
                          g, tails[g], counts[g]);
        }
    int nb = 0;
    for (int g = 0; g < ngroups; g++)
        nb = cut_buckets(r, g, NULL, counts[g], tails ? tails[g] : counts[g], bucket_elems, nb);
    r->slabs = calloc(ngroups, sizeof(float *));
    r->tail = calloc(ngroups, sizeof(size_t));
    r->tail_bucket = calloc(ngroups, sizeof(int));
    r->kb = calloc(ngroups, sizeof(int));
    r->ke = calloc(ngroups, sizeof(int));
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
        !r->active || !r->started || !r->completed || !r->order || !r->t_start || !r->stats ||
        !r->tail || !r->tail_bucket || !r->kb || !r->ke) {
        comm_reducer_free(r);
        return nn_err(NN_ENOMEM, "cannot allocate a reducer for %d groups", ngroups);
    }
    for (int g = 0, k = 0; g < ngroups; g++) {
        r->slabs[g] = slabs[g];
        r->counts[g] = counts[g];
        r->tail[g] = tails ? tails[g] : counts[g];
        r->first_bucket[g] = k;
        k = cut_buckets(r, g, slabs[g], counts[g], r->tail[g], bucket_elems, k);
        r->nb[g] = k - r->first_bucket[g];
    }
    r->nbuckets = nb;
    /* A singleton sends nothing, so it needs no thread. */
    if (mode == COMM_REDUCE_THREAD && comm_size(c) > 1) {
        int e = pthread_mutex_init(&r->mu, NULL);
        if (!e) {
            e = pthread_cond_init(&r->work, NULL);
            if (!e) {
                e = pthread_cond_init(&r->idle, NULL);
                if (!e) {
                    e = pthread_create(&r->thread, NULL, reduce_thread, r);
                    if (e) pthread_cond_destroy(&r->idle);
                }
                if (e) pthread_cond_destroy(&r->work);
            }
            if (e) pthread_mutex_destroy(&r->mu);
        }
        if (e) {
            comm_reducer_free(r);
            return nn_err(NN_ENOMEM, "reducer: cannot start the communication thread: %s", strerror(e));
        }
        r->has_thread = 1;
    }
    *out = r;
    return 0;
}

void comm_reducer_free(comm_reducer *r)
{
    if (!r) return;
    if (r->has_thread) {
        pthread_mutex_lock(&r->mu);
        r->quit = 1;
        pthread_cond_signal(&r->work);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->idle);
        pthread_cond_destroy(&r->work);
        pthread_mutex_destroy(&r->mu);
    }
    for (int k = 0; k < r->nbuckets; k++)
        if (r->req && r->req[k] != MPI_REQUEST_NULL)
            (void)comm__wait(r->c, 1, &r->req[k], "the gradient all-reduce of group %d",
                             r->buckets[k].group);
    free(r->slabs);
    free(r->tail);
    free(r->tail_bucket);
    free(r->kb);
    free(r->ke);
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
    if (r->has_thread) {
        pthread_mutex_lock(&r->mu);
        wait_idle(r); /* nothing is queued after finish; this only guards a missing finish */
    }
    for (int g = 0; g < r->ngroups; g++) {
        const int tail = active[g] == COMM_GROUP_TAIL;
        r->active[g] = active[g] != COMM_GROUP_SILENT;
        r->kb[g] = tail ? r->tail_bucket[g] : r->first_bucket[g];
        r->ke[g] = r->first_bucket[g] + r->nb[g];
        if (r->kb[g] == r->ke[g]) r->active[g] = 0; /* nothing to send */
        r->started[g] = r->completed[g] = 0;
    }
    r->norder = 0;
    if (r->has_thread) {
        r->next = 0;
        pthread_mutex_unlock(&r->mu);
    }
}

/* Starts group g's buckets: nonblocking MPI_Iallreduce, or blocking MPI_Allreduce right
 * away in the mode without overlap. Not used in thread mode. */
static int start_group(comm_reducer *r, int g)
{
    MPI_Comm w = comm__mpi(r->c);
    const int nonblocking = r->mode == COMM_REDUCE_NONBLOCKING;
    r->started[g] = 1;
    r->t_start[g] = util_now_s();
    for (int k = r->kb[g]; k < r->ke[g]; k++) {
        bucket *b = &r->buckets[k];
        int rc = nonblocking
                     ? comm__mpi_check(MPI_Iallreduce(MPI_IN_PLACE, b->data, b->count, MPI_FLOAT,
                                                      MPI_SUM, w, &r->req[k]),
                                       "MPI_Iallreduce")
                     : reduce_blocking(r, b, "MPI_Allreduce", "the gradient all-reduce of group %d");
        if (rc) return rc;
        r->stats[g].bytes += (uint64_t)b->count * sizeof(float);
        r->stats[g].collectives++;
    }
    if (!nonblocking) {
        r->completed[g] = 1;
        r->stats[g].seconds += util_now_s() - r->t_start[g];
    }
    return 0;
}

/* Thread mode: appends g to the queue unless it is there already (r->mu held). */
static void enqueue(comm_reducer *r, int g)
{
    for (int i = 0; i < r->norder; i++)
        if (r->order[i] == g) return;
    r->order[r->norder++] = g;
    r->started[g] = 1;
    pthread_cond_signal(&r->work);
}

int comm_reducer_group_done(comm_reducer *r, int g)
{
    if (g < 0 || g >= r->ngroups) return nn_err(NN_ERANGE, "reducer: group %d of %d", g, r->ngroups);
    if (!r->active[g] || comm_size(r->c) == 1) return 0;
    if (r->has_thread) {
        const double t0 = util_now_s();
        pthread_mutex_lock(&r->mu);
        enqueue(r, g);
        pthread_mutex_unlock(&r->mu);
        r->progress += util_now_s() - t0;
        return 0;
    }
    if (r->started[g]) return 0;
    for (int i = 0; i < r->norder; i++)
        if (r->order[i] == g) return 0;
    r->order[r->norder++] = g;
    if (r->mode != COMM_REDUCE_NONBLOCKING) return 0;
    const double t0 = util_now_s();
    int rc = start_group(r, g);
    r->progress += util_now_s() - t0;
    return rc;
}

/* Checks group g's buckets; marks it completed when all are. */
static int test_group(comm_reducer *r, int g)
{
    int flag = 0;
    int rc = MPI_Testall(r->ke[g] - r->kb[g], r->req + r->kb[g], &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return comm__mpi_check(rc, "MPI_Testall");
    if (flag) {
        r->completed[g] = 1;
        r->stats[g].seconds += util_now_s() - r->t_start[g];
    }
    return 0;
}

int comm_reducer_progress(comm_reducer *r)
{
    if (r->mode != COMM_REDUCE_NONBLOCKING) return 0;
    const double t0 = util_now_s();
    int rc = 0;
    for (int i = 0; i < r->norder && !rc; i++) {
        int g = r->order[i];
        if (r->started[g] && !r->completed[g]) rc = test_group(r, g);
    }
    r->progress += util_now_s() - t0;
    return rc;
}

/* Thread mode's finish: queues the groups never reported (head first, as below) and waits
 * until the thread has reduced everything; returns the thread's error, if any. */
static int finish_thread(comm_reducer *r)
{
    pthread_mutex_lock(&r->mu);
    for (int g = r->ngroups - 1; g >= 0; g--)
        if (r->active[g]) enqueue(r, g);
    wait_idle(r);
    const int err = r->err;
    char msg[sizeof r->errmsg];
    snprintf(msg, sizeof msg, "%s", r->errmsg);
    r->err = 0;
    pthread_mutex_unlock(&r->mu);
    return err ? nn_err(err, "%s", msg) : 0;
}

int comm_reducer_finish(comm_reducer *r, float scale)
{
    const double t0 = util_now_s();
    if (r->has_thread) {
        int rc = finish_thread(r);
        if (rc) return rc;
    } else if (comm_size(r->c) > 1) {
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
                rc = comm__wait(r->c, r->ke[g] - r->kb[g], r->req + r->kb[g],
                                "the gradient all-reduce of group %d", g);
                if (rc) return rc;
                r->completed[g] = 1;
                r->stats[g].seconds += util_now_s() - r->t_start[g];
            }
            if (rc) return rc;
        }
    }
    for (int g = 0; g < r->ngroups; g++) {
        if (!r->active[g] || scale == 1.0f) continue;
        const bucket *first = &r->buckets[r->kb[g]];
        float *x = first->data, *end = r->slabs[g] + r->counts[g];
        for (; x < end; x++) *x *= scale;
    }
    r->exposed += util_now_s() - t0;
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
