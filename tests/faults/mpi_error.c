/* An MPI error on one rank only, then a collective the failing rank never reaches: rank 0
 * broadcasts 4096 bytes, rank 1 posts room for 16 (MPI_ERR_TRUNCATE there), then rank 0
 * waits in a barrier. Returned as an error, rank 1 would print it and leave, and rank 0 would
 * wait for ever; comm's error handler must end the job. Exit 0 would mean the error went
 * unnoticed; tests/faults/mpi_error.sh judges the run. */
#include "comm/comm.h"
#include "nn/nn.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    comm *c = NULL;
    if (comm_init(&c, &argc, &argv)) {
        fprintf(stderr, "mpi_error: %s\n", nn_errmsg());
        return 2;
    }
    static char buf[4096];
    const int rank = comm_rank(c);
    int rc = comm_bcast_bytes(c, buf, rank == 0 ? sizeof buf : 16, 0);
    if (rc) {
        fprintf(stderr, "mpi_error: rank %d: the error came back (%s), leaving\n", rank, nn_errmsg());
        comm_free(c);
        return 3;
    }
    if (rank == 0) comm_barrier(c);
    comm_free(c);
    return 0;
}
