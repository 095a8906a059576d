/* The collective timeout (comm_set_timeout, comm.timeout_s): waits that poll against a
 * deadline, and the small messages that find out which ranks stopped answering.
 *
 * With a timeout set, every wait of comm (comm_mpi.c's collectives, the reducer's all-reduces,
 * in either thread) goes through comm__wait, which polls its requests with MPI_Testall
 * (Open MPI's MPI_Wait busy-polls the same progress engine, so polling costs nothing) and
 * reads the monotonic clock every WATCH_POLLS polls. The deadline runs only while this rank
 * waits inside a collective, from the moment it started waiting.
 *
 * Past the deadline, the rank probes every other rank with a message on a communicator of
 * its own (world dup'ed, so it never matches a collective's traffic; errors there are
 * returned and ignored) and listens for WATCH_GRACE_S seconds. A rank that waits in any comm
 * wait answers a probe at once (it tests its posted receive with the clock) and, since the
 * job is ending, probes the others itself; a rank that is stopped (SIGSTOP), hung outside
 * MPI or unreachable does not answer. Each rank that timed out or was probed prints one line
 * naming the ranks it did not hear from, lingers WATCH_LINGER_S seconds still answering (so
 * that the others can print theirs), and ends the job with MPI_Abort (exit status 1).
 *
 * Nothing here works over MPI alone: the messages are ordinary point-to-point sends, so the
 * design holds across hosts (TCP) as on one.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, gethostname */
#include "comm/comm_internal.h"

#include "nn/nn.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WATCH_TAG 0x5377     /* on the watchdog's own communicator */
#define WATCH_HOST 64        /* bytes of a host name, with its NUL */
#define WATCH_WHAT 112       /* bytes of a collective's description */
#define WATCH_POLLS 64       /* polls between two reads of the clock */
#define WATCH_GRACE_S 2.0    /* listening for answers after the deadline */
#define WATCH_LINGER_S 1.0   /* answering after the message, before MPI_Abort */
#define WATCH_NAMED 8        /* ranks named in the message; then "and N more" */

enum { MSG_PROBE = 1, MSG_REPLY = 2 };

/* What a rank says about itself: it waits at step in what. */
typedef struct {
    int32_t kind, rank;
    int64_t step;
    char what[WATCH_WHAT];
} watch_msg;

struct comm__watch {
    MPI_Comm comm; /* world dup'ed (MPI_COMM_NULL on one rank) */
    MPI_Comm world;
    int rank, size;
    double timeout, factor;
    long step;                  /* read by the reducer's thread: atomic loads and stores */
    char (*host)[WATCH_HOST];   /* every rank's */
    watch_msg in;               /* the posted receive */
    MPI_Request in_req;         /* MPI_REQUEST_NULL: none posted */
    watch_msg *reply;           /* per peer, the answer in flight */
    MPI_Request *reply_req;
    watch_msg *heard;           /* per rank, the last message it sent here (kind 0: none) */
    int alerted, alerted_by;    /* a probe arrived (from alerted_by): another rank's deadline
                                   passed */
};

int comm__watch_init(comm__watch **out, MPI_Comm world, int rank, int size)
{
    *out = NULL;
    comm__watch *w = calloc(1, sizeof *w);
    if (!w) return nn_err(NN_ENOMEM, "cannot allocate the watchdog");
    w->comm = MPI_COMM_NULL;
    w->world = world;
    w->rank = rank;
    w->size = size;
    w->factor = 1.0;
    w->in_req = MPI_REQUEST_NULL;
    w->host = calloc((size_t)size, sizeof *w->host);
    w->reply = calloc((size_t)size, sizeof *w->reply);
    w->reply_req = calloc((size_t)size, sizeof *w->reply_req);
    w->heard = calloc((size_t)size, sizeof *w->heard);
    if (!w->host || !w->reply || !w->reply_req || !w->heard) {
        comm__watch_free(w);
        return nn_err(NN_ENOMEM, "cannot allocate the watchdog for %d ranks", size);
    }
    for (int r = 0; r < size; r++) w->reply_req[r] = MPI_REQUEST_NULL;
    char me[WATCH_HOST] = "?";
    gethostname(me, sizeof me - 1);
    me[WATCH_HOST - 1] = '\0';
    memcpy(w->host[rank], me, sizeof me);
    int rc = 0;
    if (size > 1) {
        rc = comm__mpi_check(MPI_Comm_dup(world, &w->comm), "MPI_Comm_dup");
        if (!rc) rc = comm__mpi_check(MPI_Comm_set_errhandler(w->comm, MPI_ERRORS_RETURN),
                                      "MPI_Comm_set_errhandler");
        if (!rc) rc = comm__mpi_check(MPI_Allgather(me, WATCH_HOST, MPI_CHAR, w->host, WATCH_HOST,
                                                    MPI_CHAR, world), "MPI_Allgather(host names)");
    }
    if (rc) {
        comm__watch_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

const char *comm__watch_host(const comm__watch *w, int r)
{
    return w && r >= 0 && r < w->size && w->host[r][0] ? w->host[r] : "?";
}

void comm__watch_free(comm__watch *w)
{
    if (!w) return;
    int finalized = 1;
    MPI_Finalized(&finalized);
    if (!finalized) {
        if (w->in_req != MPI_REQUEST_NULL) {
            MPI_Cancel(&w->in_req);
            MPI_Wait(&w->in_req, MPI_STATUS_IGNORE);
        }
        for (int r = 0; w->reply_req && r < w->size; r++)
            if (w->reply_req[r] != MPI_REQUEST_NULL) MPI_Request_free(&w->reply_req[r]);
        if (w->comm != MPI_COMM_NULL) MPI_Comm_free(&w->comm);
    }
    free(w->host);
    free(w->reply);
    free(w->reply_req);
    free(w->heard);
    free(w);
}

/* Posts the receive for the next watchdog message (any rank). */
static void post_receive(comm__watch *w)
{
    if (MPI_Irecv(&w->in, sizeof w->in, MPI_BYTE, MPI_ANY_SOURCE, WATCH_TAG, w->comm,
                  &w->in_req) != MPI_SUCCESS)
        w->in_req = MPI_REQUEST_NULL;
}

void comm__watch_set_timeout(comm__watch *w, double seconds)
{
    w->timeout = seconds > 0.0 ? seconds : 0.0;
    if (w->timeout > 0.0 && w->comm != MPI_COMM_NULL && w->in_req == MPI_REQUEST_NULL)
        post_receive(w);
}

double comm__watch_timeout(const comm__watch *w)
{
    return w->timeout;
}

void comm__watch_set_step(comm__watch *w, long step)
{
    __atomic_store_n(&w->step, step, __ATOMIC_RELAXED);
}

void comm__watch_set_factor(comm__watch *w, double factor)
{
    w->factor = factor >= 1.0 ? factor : 1.0;
}

/* Sends this rank's state (kind, its step, what) to rank to; a send still in flight to that
 * rank from before is left alone (it already carries the news). */
static void send_state(comm__watch *w, int to, int kind, const char *what)
{
    int done = 1;
    if (w->reply_req[to] != MPI_REQUEST_NULL &&
        (MPI_Test(&w->reply_req[to], &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || !done))
        return;
    watch_msg *m = &w->reply[to];
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->rank = w->rank;
    m->step = __atomic_load_n(&w->step, __ATOMIC_RELAXED);
    snprintf(m->what, sizeof m->what, "%s", what);
    if (MPI_Isend(m, sizeof *m, MPI_BYTE, to, WATCH_TAG, w->comm, &w->reply_req[to]) != MPI_SUCCESS)
        w->reply_req[to] = MPI_REQUEST_NULL;
}

/* What a wait waits for: a printf format with one int. */
typedef struct {
    const char *fmt;
    int arg;
} wait_what;

static void what_text(char *out, size_t len, wait_what ww)
{
    snprintf(out, len, ww.fmt, ww.arg);
}

/* Takes every watchdog message that has arrived: records it and answers a probe (which sets
 * w->alerted: another rank's deadline passed). */
static void take_messages(comm__watch *w, wait_what ww)
{
    for (;;) {
        int flag = 0;
        if (w->in_req == MPI_REQUEST_NULL ||
            MPI_Test(&w->in_req, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || !flag)
            return;
        watch_msg m = w->in;
        m.what[WATCH_WHAT - 1] = '\0';
        post_receive(w);
        if (m.rank < 0 || m.rank >= w->size || m.rank == w->rank) continue;
        w->heard[m.rank] = m;
        if (m.kind == MSG_PROBE) {
            if (!w->alerted) w->alerted_by = m.rank;
            w->alerted = 1;
            char what[WATCH_WHAT];
            what_text(what, sizeof what, ww);
            send_state(w, m.rank, MSG_REPLY, what);
        }
    }
}

/* Answers and listens until the clock passes until. */
static void listen_until(comm__watch *w, wait_what ww, double until)
{
    while (util_now_s() < until) {
        take_messages(w, ww);
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* 1 ms */
    }
}

/* Appends the ranks the message names to out: the silent ones, or, when every rank answered,
 * where the others wait. */
static void name_ranks(const comm__watch *w, char *out, size_t len)
{
    size_t o = strlen(out);
    int silent = 0, named = 0;
    for (int r = 0; r < w->size; r++) silent += r != w->rank && w->heard[r].kind == 0;
    if (silent) {
        o += snprintf(out + o, len - o, "no answer from rank%s", silent > 1 ? "s" : "");
        for (int r = 0; r < w->size && o < len; r++) {
            if (r == w->rank || w->heard[r].kind != 0) continue;
            if (named++ == WATCH_NAMED) {
                o += snprintf(out + o, len - o, " and %d more", silent - WATCH_NAMED);
                break;
            }
            o += snprintf(out + o, len - o, "%s %d (%s)", named > 1 ? "," : "", r, w->host[r]);
        }
        if (o < len) snprintf(out + o, len - o, " (stopped, hung or unreachable)");
        return;
    }
    o += snprintf(out + o, len - o, "every rank answered, so they wait in different collectives:");
    for (int r = 0; r < w->size && o < len; r++) {
        if (r == w->rank) continue;
        if (named++ == WATCH_NAMED) {
            snprintf(out + o, len - o, " ...");
            break;
        }
        o += snprintf(out + o, len - o, "%s rank %d (%s) at step %lld in %s", named > 1 ? "," : "", r,
                      w->host[r], (long long)w->heard[r].step, w->heard[r].what);
    }
}

/* The deadline passed (or another rank's did): probe every rank, listen, print who did not
 * answer, linger, end the job. waited: seconds this rank waited. */
static void __attribute__((noreturn)) timed_out(comm__watch *w, wait_what ww, double waited)
{
    char what[WATCH_WHAT];
    what_text(what, sizeof what, ww);
    for (int r = 0; r < w->size; r++)
        if (r != w->rank) send_state(w, r, MSG_PROBE, what);
    listen_until(w, ww, util_now_s() + WATCH_GRACE_S);
    char msg[2048];
    const long step = __atomic_load_n(&w->step, __ATOMIC_RELAXED);
    const double limit = w->timeout * w->factor;
    int o = snprintf(msg, sizeof msg, "strata: rank %d (%s): step %ld: %s ", w->rank,
                     w->host[w->rank], step, what);
    if (waited < limit) /* another rank's deadline passed first */
        o += snprintf(msg + o, sizeof msg - o, "had waited %.1f s when rank %d (%s), past its comm.timeout_s = %g s, asked",
                      waited, w->alerted_by, w->host[w->alerted_by], w->timeout);
    else if (w->factor > 1.0)
        o += snprintf(msg + o, sizeof msg - o, "did not complete within %g s (%g x comm.timeout_s = %g s: it follows work one rank does alone)",
                      limit, w->factor, w->timeout);
    else
        o += snprintf(msg + o, sizeof msg - o, "did not complete within comm.timeout_s = %g s", w->timeout);
    snprintf(msg + o, sizeof msg - o, "; ");
    name_ranks(w, msg, sizeof msg - 32);
    snprintf(msg + strlen(msg), sizeof msg - strlen(msg), "; ending the job\n");
    fputs(msg, stderr);
    fflush(stderr);
    listen_until(w, ww, util_now_s() + WATCH_LINGER_S);
    MPI_Abort(w->world, 1);
    _exit(1); /* MPI_Abort does not return */
}

/* Polls reqs against the deadline: see comm__wait. */
static int poll_wait(comm__watch *w, int n, MPI_Request *reqs, wait_what ww)
{
    const double t0 = util_now_s(), deadline = t0 + w->timeout * w->factor;
    for (unsigned i = 1;; i++) {
        int flag = 0;
        int rc = MPI_Testall(n, reqs, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return comm__mpi_check(rc, "MPI_Testall");
        if (flag) return 0;
        if (i % WATCH_POLLS) continue;
        take_messages(w, ww);
        const double now = util_now_s();
        if (w->alerted || now > deadline) timed_out(w, ww, now - t0);
    }
}

int comm__wait(comm *c, int n, MPI_Request *reqs, const char *what, int arg)
{
    comm__watch *w = comm__watch_of(c);
    if (!w || w->timeout <= 0.0 || w->comm == MPI_COMM_NULL) {
        int rc = MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
        return rc == MPI_SUCCESS ? 0 : comm__mpi_check(rc, "MPI_Waitall");
    }
    return poll_wait(w, n, reqs, (wait_what){what, arg});
}
