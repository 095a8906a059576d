/* comm/'s private helpers, shared by comm_mpi.c and comm_reducer.c; not part of comm.h. */
#ifndef STRATA_COMM_INTERNAL_H
#define STRATA_COMM_INTERNAL_H

/* 0 for MPI_SUCCESS; otherwise NN_EMPI with the message "WHAT failed: <MPI's own text>". */
int comm__mpi_check(int rc, const char *what);

#endif
