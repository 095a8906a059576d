/*
 * comm: the communicator between replicas. An opaque handle with an MPI backend (a NCCL
 * backend can sit behind the same interface later), typed collectives that take element
 * counts, and MPI errors that end the whole job with MPI's own message.
 *
 * comm knows nothing of layers: the reducer sees a layer group only as its gradient slab
 * (a float pointer and an element count).
 */
#ifndef STRATA_COMM_H
#define STRATA_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct comm comm;

/* Starts MPI if it is not running (a process launched without mpirun is a singleton of
 * world size 1) and wraps MPI_COMM_WORLD. An MPI error in any call on it, on any rank, ends
 * the whole job after printing the rank, host and MPI's message (MPI_Abort): a rank that
 * returned the error would leave its peers in a collective for ever. Free with comm_free,
 * which finalizes MPI if comm_init started it. */
int comm_init(comm **out, int *argc, char ***argv);
void comm_free(comm *c);

int comm_rank(const comm *c);
int comm_size(const comm *c);

/* In-place sum of x[0..count) over all ranks, then divided by the world size when
 * average is set. */
int comm_allreduce_f32(comm *c, float *x, size_t count, int average);
/* In-place sum of double / int64 values over all ranks. */
int comm_allreduce_f64(comm *c, double *x, size_t count);
int comm_allreduce_i64(comm *c, int64_t *x, size_t count);
/* In-place max of int values over all ranks (agreement on an error flag, for example). */
int comm_allreduce_max_i32(comm *c, int32_t *x, size_t count);
/* Broadcasts x[0..count) from root. */
int comm_bcast_f32(comm *c, float *x, size_t count, int root);
int comm_bcast_bytes(comm *c, void *x, size_t count, int root);
int comm_barrier(comm *c);

/* Ends every rank of the job with status code after printing msg (rank-prefixed) on
 * stderr: the one way out when ranks no longer agree, so that no rank waits forever. Does
 * not return. */
void comm_abort(comm *c, int code, const char *msg) __attribute__((noreturn));

/* Agreement on failure: every rank passes its own status (0 or a negative code); all
 * ranks get 0 if every rank succeeded, else the first failing rank's code, and *who (may
 * be NULL) its rank. The message of a failing rank is printed by that rank; the others
 * are left "stopped because rank R failed on HOST: <its message>" (cut to COMM_AGREE_MSG
 * bytes) for nn_errmsg. */
#define COMM_AGREE_MSG 1024
int comm_agree(comm *c, int status, int *who);
/* comm_agree that also leaves in *value (may be NULL) the largest of every rank's *value, in
 * the same collective: a per-step agreement and a flag (a stop signal) for one message. */
int comm_agree_max(comm *c, int status, int *who, int32_t *value);

/* ---------------------------------------------------------------------------------------
 * The collective timeout (docs/comm.md). With seconds > 0, every wait of this rank inside a
 * collective of c (the ones above and the reducer's, in either of its threads) has a
 * deadline, from the moment the rank starts waiting: past it the rank asks every other rank
 * whether it is alive, prints one line naming the ranks (and hosts) that did not answer and
 * the step, and ends the job with MPI_Abort (exit status 1). 0 (the default) turns it off:
 * the collectives are then MPI's blocking calls, exactly as without a timeout. Local calls;
 * set the same value on every rank. Seconds the deadline allows: comm_timeout.
 */
void comm_set_timeout(comm *c, double seconds);
double comm_timeout(const comm *c);
/* The training step a timeout's message names (a plain store, cheap every step). */
void comm_set_step(comm *c, long step);
/* How many times comm.timeout_s comm_agree_after allows the ranks that wait for another. */
#define COMM_ALONE_FACTOR 10.0
/* comm_agree after rank root did slow work alone (rank 0 writing a checkpoint): the other
 * ranks, which wait for root meanwhile, allow COMM_ALONE_FACTOR times the timeout; root,
 * which arrives last, the plain timeout. */
int comm_agree_after(comm *c, int status, int *who, int root);

/* ---------------------------------------------------------------------------------------
 * The group reducer. It averages each layer group's gradient slab across ranks, as one
 * buffer or a few buckets that never cross a group, head first and down the body. How the
 * reductions run is the reducer's mode (below). Each step a group sends all of its slab,
 * nothing (a frozen group), or only its tail: the part from its tail offset on, which has
 * buckets of its own (a frozen group whose BatchNorm parameters, at the end of its slab,
 * still train).
 */
typedef struct comm_reducer comm_reducer;

/* When and by whom a group's all-reduces run. The values of AFTER and NONBLOCKING are the
 * old `overlap` flag (0 and 1). */
typedef enum comm_reduce_mode {
    /* No overlap: every bucket is a blocking MPI_Allreduce inside comm_reducer_finish. */
    COMM_REDUCE_AFTER = 0,
    /* Overlap by nonblocking MPI: a group's MPI_Iallreduces start in group_done and are
     * driven by MPI_Testall in comm_reducer_progress (between layers' backward). */
    COMM_REDUCE_NONBLOCKING = 1,
    /* Overlap by a communication thread the reducer owns: group_done queues the group, the
     * thread runs blocking MPI_Allreduces on its buckets in the order reported, and
     * progress does nothing. Needs MPI_THREAD_SERIALIZED (comm_init asks for it), and the
     * calling thread must make no MPI call between begin and finish. */
    COMM_REDUCE_THREAD = 2,
} comm_reduce_mode;

typedef struct comm_group_stats {
    uint64_t bytes;       /* payload bytes all-reduced for this group */
    uint64_t collectives; /* all-reduce calls (buckets) */
    double seconds;       /* from the first bucket's start to the last one's completion */
} comm_group_stats;

/* What a group sends in a step (comm_reducer_begin's active[g]). */
enum {
    COMM_GROUP_SILENT = 0, /* nothing: a frozen group */
    COMM_GROUP_ALL = 1,    /* its whole slab */
    COMM_GROUP_TAIL = 2,   /* slabs[g][tails[g]..counts[g]) only */
};

/* Splits each group's slab slabs[g][0..counts[g]) into buckets of at most bucket_elems
 * floats, none crossing tails[g] (tails may be NULL: no tails; tails[g] == counts[g]: an
 * empty one). The slabs must stay valid for the reducer's lifetime. COMM_REDUCE_THREAD starts
 * the communication thread here (on more than one rank) and fails with NN_EMPI if MPI
 * provides less than MPI_THREAD_SERIALIZED. Free with comm_reducer_free (joins the thread). */
int comm_reducer_init(comm_reducer **out, comm *c, int ngroups, float *const *slabs,
                      const size_t *counts, const size_t *tails, size_t bucket_elems,
                      comm_reduce_mode mode);
void comm_reducer_free(comm_reducer *r);
/* Parses "nonblocking" or "thread" (the config's comm.progress) into *mode; NN_EINVAL
 * otherwise. */
int comm_reduce_mode_parse(comm_reduce_mode *mode, const char *name);
/* Sets what each group sends this step (COMM_GROUP_*; any other non-zero value reads as
 * COMM_GROUP_ALL) and resets the step. */
void comm_reducer_begin(comm_reducer *r, const int *active);
/* Group g's gradients are final: with overlap its all-reduces start (or, in thread mode,
 * are queued) now. Idempotent. */
int comm_reducer_group_done(comm_reducer *r, int g);
/* Drives the nonblocking all-reduces in flight (call between layers' backward); does
 * nothing in the other modes. */
int comm_reducer_progress(comm_reducer *r);
/* Completes every reduction of the step (starting those not yet started, in the order the
 * groups were reported done; in thread mode, waiting until the thread has drained its
 * queue) and multiplies what was reduced by scale (1/world averages). An MPI error of the
 * thread is returned here, with MPI's message. */
int comm_reducer_finish(comm_reducer *r, float scale);
/* Counters since init for group g, and the seconds spent blocked in comm_reducer_finish
 * (the communication backward did not hide). Read them outside begin..finish. */
const comm_group_stats *comm_reducer_stats(const comm_reducer *r, int g);
double comm_reducer_exposed_seconds(const comm_reducer *r);
/* Seconds the calling thread spent starting and driving reductions during backward
 * (group_done and progress): the MPI copies and sums that nonblocking overlap does not hide
 * on a core that also trains. In thread mode only the queueing (the thread's MPI time is in
 * the per-group seconds). */
double comm_reducer_progress_seconds(const comm_reducer *r);

#endif
