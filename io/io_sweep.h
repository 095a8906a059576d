/* Sweeps: a YAML file of grids over config keys (per-group learning rates, freeze_to, any
 * key), expanded into numbered runs, each a list of `--set key=value` overrides. The format is
 * docs/cluster.md's; `strata sweep plan` prints the runs, `strata train --sweep` runs one.
 * io reads the file and numbers the runs; it decides nothing about training. Included by
 * io/io.h; include that instead.
 *
 *   config: base.yaml          # optional: the base config, relative to this file (for plan)
 *   dir: runs/sweep-lr         # where run i goes: DIR/run-<i, 3 digits>; default
 *                              # runs/sweep-<file name without .yaml>
 *   set:                       # optional: overrides for every run
 *     train.epochs: 3
 *   grid:                      # every combination; the first key varies slowest
 *     groups.lr.0: [1e-4, 1e-3]
 *     groups.lr.2: [1e-3, 1e-2]
 */
#ifndef STRATA_IO_SWEEP_H
#define STRATA_IO_SWEEP_H

#define IO_SWEEP_MAX_KEYS 16
#define IO_SWEEP_MAX_RUNS 100000

typedef struct io_sweep {
    char path[512];
    char config[1024];   /* "" or the base config's path (resolved against path's directory) */
    char dir[512];
    int nset;
    char **set;          /* nset "key=value" overrides for every run, owned */
    int nkeys;
    char keys[IO_SWEEP_MAX_KEYS][128];
    int nvalues[IO_SWEEP_MAX_KEYS];
    char **values[IO_SWEEP_MAX_KEYS]; /* values[k][j]: "key=value" for key k's j-th value, owned */
    char **texts[IO_SWEEP_MAX_KEYS];  /* the value alone, as YAML flow text, owned */
    long nruns;          /* the product of nvalues */
} io_sweep;

/* Reads and checks a sweep file: a map with `grid` (a non-empty map of config key paths to
 * non-empty lists of values) and optionally `config`, `dir` and `set`. The file is read into
 * io's YAML tree, as a config is (io_yaml.h), with YAML aliases allowed (each a copy of what its
 * anchor names). Errors read `FILE:LINE: key: what is wrong` (an empty or malformed file, a
 * duplicate key, an unknown top-level key, an empty grid or list, too many runs); NN_EIO: the
 * file cannot be read. On failure *s is zeroed. Free with io_sweep_free. */
int io_sweep_load(io_sweep *s, const char *path);
void io_sweep_free(io_sweep *s);

/* Run i's overrides: the `set` ones, then one per grid key, as "key=value" strings owned by
 * s, into sets[0..*n) (room for nset + nkeys). *value_index (may be NULL) gets each key's
 * value index. NN_ERANGE names the sweep and the valid range for an i out of range. */
int io_sweep_run(const io_sweep *s, long i, const char **sets, int *n, int *value_index);
/* run i's directory: DIR/run-<i, 3 digits or more>. */
void io_sweep_run_dir(char *out, size_t len, const io_sweep *s, long i);

#endif
