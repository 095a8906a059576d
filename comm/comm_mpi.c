/* The MPI backend of comm. An MPI error on any rank ends the whole job (the error handler
 * below prints the rank, its host and MPI's message, then MPI_Abort): a rank that returned
 * the error instead would leave its peers waiting in their next collective for ever. Counts
 * larger than INT_MAX are sent in pieces (MPI counts are int). */
#include "comm/comm.h"
#include "comm/comm_internal.h"

#include "nn/nn.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct comm {
    MPI_Comm world;
    int rank, size;
    int started_mpi; /* comm_init called MPI_Init_thread, so comm_free finalizes */
    int thread_level; /* what MPI provides: MPI_THREAD_SINGLE .. MPI_THREAD_MULTIPLE */
    comm__watch *watch; /* the collective timeout (comm_watch.c) */
};

int comm__mpi_check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", rc);
    return nn_err(NN_EMPI, "%s failed: %s", what, msg);
}

/* MPI's error handler on the world communicator: report, then end every rank. */
static void on_mpi_error(MPI_Comm *world, int *code, ...)
{
    char msg[MPI_MAX_ERROR_STRING], host[256] = "?";
    int len = 0, rank = -1;
    if (MPI_Error_string(*code, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "code %d", *code);
    MPI_Comm_rank(*world, &rank);
    gethostname(host, sizeof host - 1);
    fprintf(stderr, "strata: rank %d (%s): MPI error: %s; ending the job on every rank\n", rank,
            host, msg);
    fflush(stderr);
    MPI_Abort(*world, 1);
    _exit(1); /* MPI_Abort does not return */
}

int comm_init(comm **out, int *argc, char ***argv)
{
    *out = NULL;
    comm *c = calloc(1, sizeof *c);
    if (!c) return nn_err(NN_ENOMEM, "cannot allocate a communicator");
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
#ifdef OPEN_MPI
        /* Open MPI's nonblocking all-reduce (libnbc) defaults to a binomial algorithm that
         * ran at 37-63% of the blocking MPI_Allreduce here; its ring algorithm (3) runs at
         * 73-105% (docs/performance.md). A value the user set wins. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "3", 0);
#endif
        /* SERIALIZED, not MULTIPLE: the reducer's communication thread (COMM_REDUCE_THREAD)
         * calls MPI only while the main thread does not. */
        int provided = MPI_THREAD_SINGLE;
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) {
            free(c);
            return nn_err(NN_EMPI, "MPI_Init_thread failed (code %d): is Open MPI installed and, "
                                   "as root, OMPI_ALLOW_RUN_AS_ROOT set?",
                          rc);
        }
        c->started_mpi = 1;
    }
    c->world = MPI_COMM_WORLD;
    int rc = comm__mpi_check(MPI_Query_thread(&c->thread_level), "MPI_Query_thread");
    MPI_Errhandler eh;
    if (!rc) rc = comm__mpi_check(MPI_Comm_create_errhandler(on_mpi_error, &eh), "MPI_Comm_create_errhandler");
    if (!rc) {
        rc = comm__mpi_check(MPI_Comm_set_errhandler(c->world, eh), "MPI_Comm_set_errhandler");
        MPI_Errhandler_free(&eh); /* the communicator keeps its reference */
    }
    if (!rc) rc = comm__mpi_check(MPI_Comm_rank(c->world, &c->rank), "MPI_Comm_rank");
    if (!rc) rc = comm__mpi_check(MPI_Comm_size(c->world, &c->size), "MPI_Comm_size");
    if (!rc) rc = comm__watch_init(&c->watch, c->world, c->rank, c->size);
    if (rc) {
        comm_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void comm_free(comm *c)
{
    if (!c) return;
    comm__watch_free(c->watch);
    if (c->started_mpi) {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
    }
    free(c);
}

MPI_Comm comm__mpi(comm *c)
{
    return c->world;
}

int comm__thread_level(const comm *c)
{
    return c->thread_level;
}

comm__watch *comm__watch_of(comm *c)
{
    return c->watch;
}

void comm_set_timeout(comm *c, double seconds)
{
    comm__watch_set_timeout(c->watch, seconds);
}

double comm_timeout(const comm *c)
{
    return comm__watch_timeout(c->watch);
}

void comm_set_step(comm *c, long step)
{
    comm__watch_set_step(c->watch, step);
}

/* Whether collectives wait against the timeout: nonblocking calls completed by comm__wait.
 * Without it they are MPI's blocking calls, exactly as before the timeout existed. */
static int timed(const comm *c)
{
    return c->size > 1 && comm__watch_timeout(c->watch) > 0.0;
}

int comm_rank(const comm *c)
{
    return c->rank;
}

int comm_size(const comm *c)
{
    return c->size;
}

/* Runs an in-place all-reduce in pieces of at most INT_MAX elements; label names it in a
 * timeout's message. */
static int allreduce(comm *c, void *x, size_t count, MPI_Datatype type, size_t elem, MPI_Op op,
                     const char *what, const char *label)
{
    char *p = x;
    while (count > 0) {
        int n = count > (size_t)INT_MAX ? INT_MAX : (int)count, rc;
        if (timed(c)) {
            MPI_Request req;
            rc = comm__mpi_check(MPI_Iallreduce(MPI_IN_PLACE, p, n, type, op, c->world, &req), what);
            if (!rc) rc = comm__wait(c, 1, &req, label, n);
        } else {
            rc = comm__mpi_check(MPI_Allreduce(MPI_IN_PLACE, p, n, type, op, c->world), what);
        }
        if (rc) return rc;
        p += (size_t)n * elem;
        count -= (size_t)n;
    }
    return 0;
}

int comm_allreduce_f32(comm *c, float *x, size_t count, int average)
{
    if (c->size == 1 || count == 0) return 0;
    int rc = allreduce(c, x, count, MPI_FLOAT, sizeof(float), MPI_SUM, "MPI_Allreduce(float)",
                       "an all-reduce of %d floats");
    if (rc || !average) return rc;
    const float inv = 1.0f / (float)c->size;
    for (size_t i = 0; i < count; i++) x[i] *= inv;
    return 0;
}

int comm_allreduce_f64(comm *c, double *x, size_t count)
{
    if (c->size == 1 || count == 0) return 0;
    return allreduce(c, x, count, MPI_DOUBLE, sizeof(double), MPI_SUM, "MPI_Allreduce(double)",
                     "an all-reduce of %d doubles");
}

int comm_allreduce_i64(comm *c, int64_t *x, size_t count)
{
    if (c->size == 1 || count == 0) return 0;
    return allreduce(c, x, count, MPI_INT64_T, sizeof(int64_t), MPI_SUM, "MPI_Allreduce(int64)",
                     "an all-reduce of %d integers");
}

int comm_allreduce_max_i32(comm *c, int32_t *x, size_t count)
{
    if (c->size == 1 || count == 0) return 0;
    return allreduce(c, x, count, MPI_INT32_T, sizeof(int32_t), MPI_MAX, "MPI_Allreduce(max)",
                     "an all-reduce (max) of %d integers");
}

/* A broadcast from root in pieces of at most INT_MAX elements of elem bytes. */
static int bcast(comm *c, void *x, size_t count, MPI_Datatype type, size_t elem, int root,
                 const char *what)
{
    if (c->size == 1 || count == 0) return 0;
    char *p = x;
    while (count > 0) {
        int n = count > (size_t)INT_MAX ? INT_MAX : (int)count, rc;
        if (timed(c)) {
            MPI_Request req;
            rc = comm__mpi_check(MPI_Ibcast(p, n, type, root, c->world, &req), what);
            if (!rc) rc = comm__wait(c, 1, &req, "a broadcast from rank %d", root);
        } else {
            rc = comm__mpi_check(MPI_Bcast(p, n, type, root, c->world), what);
        }
        if (rc) return rc;
        p += (size_t)n * elem;
        count -= (size_t)n;
    }
    return 0;
}

int comm_bcast_bytes(comm *c, void *x, size_t count, int root)
{
    return bcast(c, x, count, MPI_BYTE, 1, root, "MPI_Bcast");
}

int comm_bcast_f32(comm *c, float *x, size_t count, int root)
{
    return bcast(c, x, count, MPI_FLOAT, sizeof(float), root, "MPI_Bcast(float)");
}

int comm_barrier(comm *c)
{
    if (c->size == 1) return 0;
    if (!timed(c)) return comm__mpi_check(MPI_Barrier(c->world), "MPI_Barrier");
    MPI_Request req;
    int rc = comm__mpi_check(MPI_Ibarrier(c->world, &req), "MPI_Ibarrier");
    return rc ? rc : comm__wait(c, 1, &req, "a barrier", 0);
}

void comm_abort(comm *c, int code, const char *msg)
{
    fprintf(stderr, "strata: rank %d: %s\n", c ? c->rank : 0, msg);
    fflush(stderr);
    MPI_Abort(c ? c->world : MPI_COMM_WORLD, code ? code : 1);
    exit(code ? code : 1); /* MPI_Abort does not return; this keeps the promise if it does */
}

int comm_agree(comm *c, int status, int *who)
{
    return comm_agree_max(c, status, who, NULL);
}

/* What the first failing rank sends the others once a failure is agreed on: its code and
 * its message, so that every rank's own output says why (on a cluster each host's log may
 * be all that a user sees of it). */
typedef struct {
    int32_t code;
    char msg[COMM_AGREE_MSG];
} agree_failure;

int comm_agree_max(comm *c, int status, int *who, int32_t *value)
{
    if (who) *who = -1;
    if (c->size == 1) {
        if (status && who) *who = 0;
        return status;
    }
    /* Pack (failed, -rank) so that the max picks the lowest failing rank. */
    int32_t v[3] = {status != 0, status != 0 ? -c->rank : INT32_MIN, value ? *value : INT32_MIN};
    int rc = allreduce(c, v, value ? 3 : 2, MPI_INT32_T, sizeof(int32_t), MPI_MAX,
                       "MPI_Allreduce(max)", "the ranks' agreement");
    if (rc) return rc;
    if (value) *value = v[2];
    if (!v[0]) return 0;
    const int first = -v[1];
    agree_failure f;
    memset(&f, 0, sizeof f);
    if (c->rank == first) {
        f.code = status;
        snprintf(f.msg, sizeof f.msg, "%s", nn_errmsg());
    }
    rc = bcast(c, &f, sizeof f, MPI_BYTE, 1, first, "MPI_Bcast(the failure)");
    if (rc) return rc;
    f.msg[sizeof f.msg - 1] = '\0';
    if (who) *who = first;
    if (c->rank != first && status == 0)
        nn_err(f.code, "stopped because rank %d failed on %s: %s", first,
               comm__watch_host(c->watch, first), f.msg);
    return f.code;
}

int comm_agree_after(comm *c, int status, int *who, int root)
{
    if (c->rank != root) comm__watch_set_factor(c->watch, COMM_ALONE_FACTOR);
    int rc = comm_agree_max(c, status, who, NULL);
    comm__watch_set_factor(c->watch, 1.0);
    return rc;
}
