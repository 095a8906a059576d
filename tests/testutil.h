/*
 * testutil: small helpers shared by the cmocka tests (not HDF5-related; see fixture_h5.h
 * for the reference-fixture loader): a per-run temporary directory, writing files into it,
 * big-endian words for hand-made IDX files, and checks on the last error message and on a
 * zeroed dataset.
 *
 * The checking and writing helpers fail the running cmocka test (through cmocka's assert
 * macros or fail_msg) instead of returning an error, so they may only be called from a
 * test or a setup function run by cmocka. Include <cmocka.h> (and what it needs) before
 * using tu_expect_msg.
 */
#ifndef STRATA_TESTUTIL_H
#define STRATA_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"
#include "io/io.h"

/* ---------------------------------------------------------------------------------------
 * The temporary directory: one per test program, made by its cmocka group setup.
 */

/* Makes a new directory $TMPDIR/NAME.XXXXXX (/tmp when TMPDIR is unset or empty) with
 * mkdtemp and remembers it as tu_tmpdir(). Returns 0, or -1 after printing the reason to
 * stderr. Meant to be called from a cmocka group setup, once per program. */
int tu_tmpdir_make(const char *name);

/* The directory made by tu_tmpdir_make ("" before it is called). Never NULL. */
const char *tu_tmpdir(void);

/* A cmocka group teardown: removes tu_tmpdir() and everything in it (rm -rf). Returns 0,
 * or -1 when the removal failed. state is ignored. */
int tu_group_teardown(void **state);

/* Writes "TMPDIR/name" (TMPDIR being tu_tmpdir()) into buf of len bytes; fails the test
 * if it does not fit. */
void tu_tmp_path(char *buf, size_t len, const char *name);

/* ---------------------------------------------------------------------------------------
 * Writing files.
 */

/* Creates (or truncates) the file at path and writes the len bytes at bytes into it,
 * gzip-compressed when gz is non-zero, raw otherwise; len may be 0 (an empty file, or an
 * empty gzip stream). Fails the test if any step fails. */
void tu_write_file(const char *path, const void *bytes, size_t len, int gz);

/* Stores v at p[0..3] big-endian (most significant byte first), as IDX headers are. */
void tu_put_be32(unsigned char *p, uint32_t v);

/* ---------------------------------------------------------------------------------------
 * Checks.
 */

/* Fails the test unless the last error message (nn_errmsg()) contains every given string,
 * naming the caller's file and line; takes one or more strings. */
#define tu_expect_msg(...) tu_expect_msg_(__FILE__, __LINE__, __VA_ARGS__, (const char *)NULL)
/* What tu_expect_msg calls: the strings after line end with a NULL. */
void tu_expect_msg_(const char *file, int line, ...);

/* Fails the test unless every field of ds is zero or NULL (what io_dataset_free and a
 * failed load must leave). */
void tu_expect_zeroed(const io_dataset *ds);

/* ---------------------------------------------------------------------------------------
 * Several ranks.
 */

/* Every rank of c learns whether any rank's checks failed (failed != 0 there), and then
 * all fail the running test with the message what (a rank that failed alone would leave
 * the others waiting in their next collective). Call it at the same point on every rank. */
void tu_agree(comm *c, int failed, const char *what);

#endif /* STRATA_TESTUTIL_H */
