/* comm/'s private helpers, shared by comm_mpi.c, comm_reducer.c and comm_watch.c; not part of
 * comm.h. */
#ifndef STRATA_COMM_INTERNAL_H
#define STRATA_COMM_INTERNAL_H

#include "comm/comm.h"

#include <mpi.h>

/* 0 for MPI_SUCCESS; otherwise NN_EMPI with the message "WHAT failed: <MPI's own text>". */
int comm__mpi_check(int rc, const char *what);

/* The MPI communicator behind c and the thread level MPI provides (MPI_THREAD_*). */
MPI_Comm comm__mpi(comm *c);
int comm__thread_level(const comm *c);

/* ---- the collective timeout (comm_watch.c) --------------------------------------------- */

typedef struct comm__watch comm__watch;

/* The watchdog of a world of size ranks: on more than one rank (collective) a duplicate of
 * world for its own messages and every rank's host name (one fixed-size all-gather). */
int comm__watch_init(comm__watch **out, MPI_Comm world, int rank, int size);
void comm__watch_free(comm__watch *w);
comm__watch *comm__watch_of(comm *c);
/* The timeout in seconds (0: off) and the step the message names. Local calls. */
void comm__watch_set_timeout(comm__watch *w, double seconds);
double comm__watch_timeout(const comm__watch *w);
void comm__watch_set_step(comm__watch *w, long step);
/* Rank r's host name, gathered at start ("?" if unknown). */
const char *comm__watch_host(const comm__watch *w, int r);
/* The next waits of this rank allow factor times the timeout (1: the plain timeout). */
void comm__watch_set_factor(comm__watch *w, double factor);

/* Completes reqs[0..n) like MPI_Waitall. With a timeout set it polls them (MPI_Testall),
 * answers other ranks' watchdog messages and, past the deadline (or once another rank's
 * deadline has passed), names the ranks that no longer answer and ends the job: it does not
 * return then. what (a printf format with one int, arg) says which collective, for that
 * message. MPI errors come back as comm__mpi_check's. */
int comm__wait(comm *c, int n, MPI_Request *reqs, const char *what, int arg);

#endif
