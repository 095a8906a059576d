#!/usr/bin/env bash
# An MPI error on one rank ends the whole job promptly with MPI's message, never a hang of the
# ranks that did not fail (tests/faults/mpi_error.c makes the error). The run gets 60 s; a
# hang is a test failure, not a CI timeout.
# Usage: mpi_error.sh MPIEXEC MPI_ERROR_BINARY
set -uo pipefail
mpiexec=$1 prog=$2
log=$(mktemp "${TMPDIR:-/tmp}/strata-mpi-error.XXXXXX")
trap 'rm -f "$log"' EXIT
start=$(date +%s)
timeout -k 5 60 "$mpiexec" -n 2 --oversubscribe "$prog" > "$log" 2>&1
st=$?
took=$(($(date +%s) - start))
if ((st == 124 || st == 137)); then
    echo "FAIL: the job hung (killed after 60 s)"; cat "$log"; exit 1
fi
if ((st != 0)) && grep -q "strata: rank 1 (.*): MPI error: .*ending the job on every rank" "$log"; then
    echo "ok: the MPI error on rank 1 ended the job in ${took}s (exit $st): $(grep -m1 'MPI error' "$log")"
    exit 0
fi
echo "FAIL: exit $st, expected non-zero and rank 1's MPI error:"; cat "$log"; exit 1
