/* io_sweep on its own: a sweep file's grid numbered with the first key slowest, values kept
 * as YAML flow text, the base config found beside the file, the default run directory, and
 * every refusal naming the file, the line and the key. tests/sweep.sh runs sweeps end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "io/io.h"
#include "nn/nn.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata-test-sweep");
}

/* Writes text to TMPDIR/name and its path into path. */
static void put(char *path, size_t len, const char *name, const char *text)
{
    tu_tmp_path(path, len, name);
    tu_write_file(path, text, strlen(text), 0);
}

static void grid_numbering_and_texts(void **state)
{
    (void)state;
    char path[1024];
    put(path, sizeof path, "lr.yaml",
        "config: base.yaml\n"
        "set:\n"
        "  train.epochs: 2\n"
        "grid:\n"
        "  groups.lr: [[0.01, 0.02], 0.5]\n"
        "  groups.momentum.1: [0.8, 0.9, 0.95]\n");
    io_sweep s;
    assert_int_equal(io_sweep_load(&s, path), 0);
    char want[1200];
    snprintf(want, sizeof want, "%s/base.yaml", tu_tmpdir());
    assert_string_equal(s.config, want);
    assert_string_equal(s.dir, "runs/sweep-lr");
    assert_int_equal(s.nruns, 6);
    assert_int_equal(s.nkeys, 2);
    assert_string_equal(s.keys[0], "groups.lr");
    assert_string_equal(s.texts[0][0], "[0.01, 0.02]");
    assert_string_equal(s.texts[1][2], "0.95");

    const char *sets[IO_SWEEP_MAX_KEYS + 4];
    int n = 0, idx[IO_SWEEP_MAX_KEYS];
    /* Run 4 = key 0's value 1, key 1's value 1 (4 = 1 * 3 + 1): the first key slowest. */
    assert_int_equal(io_sweep_run(&s, 4, sets, &n, idx), 0);
    assert_int_equal(n, 3);
    assert_string_equal(sets[0], "train.epochs=2");
    assert_string_equal(sets[1], "groups.lr=0.5");
    assert_string_equal(sets[2], "groups.momentum.1=0.9");
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 1);
    assert_int_equal(io_sweep_run(&s, 2, sets, &n, NULL), 0);
    assert_string_equal(sets[1], "groups.lr=[0.01, 0.02]");
    assert_string_equal(sets[2], "groups.momentum.1=0.95");

    assert_int_equal(io_sweep_run(&s, 6, sets, &n, NULL), NN_ERANGE);
    tu_expect_msg(path, "has 6 runs (indices 0 to 5): index 6 is out of range");
    assert_int_equal(io_sweep_run(&s, -1, sets, &n, NULL), NN_ERANGE);

    char dir[600];
    io_sweep_run_dir(dir, sizeof dir, &s, 4);
    assert_string_equal(dir, "runs/sweep-lr/run-004");
    io_sweep_run_dir(dir, sizeof dir, &s, 1234);
    assert_string_equal(dir, "runs/sweep-lr/run-1234");
    io_sweep_free(&s);
    assert_int_equal(s.nruns, 0);
    io_sweep_free(&s); /* twice is harmless */
}

static void dir_and_absolute_config(void **state)
{
    (void)state;
    char path[1024];
    put(path, sizeof path, "plain.yml", "dir: out/here\nconfig: /abs/base.yaml\ngrid:\n  train.seed: [1]\n");
    io_sweep s;
    assert_int_equal(io_sweep_load(&s, path), 0);
    assert_string_equal(s.dir, "out/here");
    assert_string_equal(s.config, "/abs/base.yaml");
    assert_int_equal(s.nruns, 1);
    assert_int_equal(s.nset, 0);
    io_sweep_free(&s);
}

/* Loads text as a sweep file and expects a refusal whose message holds every string given. */
#define REFUSED(name, text, ...)                                                            \
    do {                                                                                    \
        char p__[1024];                                                                     \
        put(p__, sizeof p__, name, text);                                                   \
        io_sweep s__;                                                                       \
        assert_int_not_equal(io_sweep_load(&s__, p__), 0);                                  \
        assert_int_equal(s__.nruns, 0);                                                     \
        assert_null(s__.set);                                                               \
        tu_expect_msg(p__, __VA_ARGS__);                                                    \
    } while (0)

static void refusals(void **state)
{
    (void)state;
    REFUSED("empty.yaml", "", "the sweep file is empty");
    REFUSED("list.yaml", "- 1\n- 2\n", "expected a map with grid:");
    REFUSED("nogrid.yaml", "set:\n  train.epochs: 1\n", "no grid:");
    REFUSED("typo.yaml", "grids:\n  train.seed: [1]\n", ":1: grids: unknown key 'grids'");
    REFUSED("emptygrid.yaml", "grid: {}\n", "grid: expected a non-empty map");
    REFUSED("emptylist.yaml", "grid:\n  groups.lr.0: []\n",
            ":2: grid.groups.lr.0: expected a non-empty list");
    REFUSED("twice.yaml", "grid:\n  train.seed: [1]\n  train.seed: [2]\n",
            ":3: grid.train.seed: duplicate key, first given at line 2");
    REFUSED("badkey.yaml", "grid:\n  groups..lr: [1]\n", "keys must be config key paths");
    REFUSED("badset.yaml", "set: 3\ngrid:\n  train.seed: [1]\n", "set: expected a map");
    REFUSED("syntax.yaml", "grid:\n  a: [1\n", "YAML syntax");
    /* 11^5 = 161,051 runs: over the limit, said at the key that crossed it. */
    REFUSED("huge.yaml",
            "grid:\n"
            "  a.a: [0,1,2,3,4,5,6,7,8,9,10]\n  a.b: [0,1,2,3,4,5,6,7,8,9,10]\n"
            "  a.c: [0,1,2,3,4,5,6,7,8,9,10]\n  a.d: [0,1,2,3,4,5,6,7,8,9,10]\n"
            "  a.e: [0,1,2,3,4,5,6,7,8,9,10]\n",
            ":6: grid.a.e: the grid has more than 100000 runs");

    char path[1024];
    tu_tmp_path(path, sizeof path, "absent.yaml");
    io_sweep s;
    assert_int_equal(io_sweep_load(&s, path), NN_EIO);
    tu_expect_msg("cannot read the sweep file", path);
}

/* The cases below came with the shared YAML layer: exact texts, quoting, aliases. */
static char last_path[512];

/* Writes text to TMPDIR/name (its path in last_path) and loads it. */
static int load(io_sweep *s, const char *name, const char *text)
{
    tu_tmp_path(last_path, sizeof last_path, name);
    tu_write_file(last_path, text, strlen(text), 0);
    return io_sweep_load(s, last_path);
}

/* Fails unless the last message is "PATH:" followed by rest. */
static void expect_at(const char *rest)
{
    char want[1024];
    snprintf(want, sizeof want, "%s:%s", last_path, rest);
    assert_string_equal(nn_errmsg(), want);
}

static void flow_texts_and_quoting(void **state)
{
    (void)state;
    io_sweep s;
    int rc = load(&s, "v.yaml", "config: base.yaml\nset:\n  train.epochs: 2\n"
                                "grid:\n  groups.lr: [\"slice(1e-3, 1e-1)\", [0.02, 0.05]]\n"
                                "  model.head: ['', \"a,b\", {x: [1, 'y z']}, plain]\n");
    if (rc) fail_msg("%s", nn_errmsg());
    assert_int_equal(s.nset, 1);
    assert_string_equal(s.set[0], "train.epochs=2");
    assert_int_equal(s.nkeys, 2);
    assert_int_equal(s.nruns, 8);
    assert_string_equal(s.values[0][0], "groups.lr=\"slice(1e-3, 1e-1)\"");
    assert_string_equal(s.values[0][1], "groups.lr=[0.02, 0.05]");
    assert_string_equal(s.texts[1][0], "\"\"");
    assert_string_equal(s.texts[1][1], "\"a,b\"");
    assert_string_equal(s.texts[1][2], "{x: [1, \"y z\"]}");
    assert_string_equal(s.texts[1][3], "plain");
    /* config: is relative to the sweep file; dir: defaults to runs/sweep-<name>. */
    char want[600];
    snprintf(want, sizeof want, "%s/base.yaml", tu_tmpdir());
    assert_string_equal(s.config, want);
    assert_string_equal(s.dir, "runs/sweep-v");
    const char *sets[8];
    int n, idx[2];
    assert_int_equal(io_sweep_run(&s, 7, sets, &n, idx), 0);
    assert_int_equal(n, 3);
    assert_string_equal(sets[2], "model.head=plain");
    assert_int_equal(idx[0], 1);
    io_sweep_free(&s);
}

static void aliases_and_their_limits(void **state)
{
    (void)state;
    io_sweep s;
    int rc = load(&s, "a.yaml", "grid:\n  groups.lr.0: &lrs [1e-3, 1e-2]\n"
                                "  groups.lr.1: *lrs\n  model.widths: [&w [8, 8], *w]\n");
    if (rc) fail_msg("%s", nn_errmsg());
    assert_int_equal(s.nruns, 8);
    assert_string_equal(s.values[1][1], "groups.lr.1=1e-2");
    assert_string_equal(s.texts[2][1], "[8, 8]");
    io_sweep_free(&s);

    assert_int_equal(load(&s, "a2.yaml", "grid:\n  a: [*nope]\n"), NN_EFORMAT);
    expect_at("2: the alias names no anchor before it (got '*nope')");
    assert_int_equal(load(&s, "a3.yaml", "grid: &g\n  a: [*g]\n"), NN_EFORMAT);
    expect_at("2: an alias inside the value it names (got '*g')");
    /* Aliases of aliases grow geometrically: bounded. */
    char text[4096] = "a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
    for (int i = 1; i < 8; i++) {
        char line[256];
        snprintf(line, sizeof line, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
                 "*a%d, *a%d]\n", i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                 i - 1, i - 1);
        strcat(text, line);
    }
    assert_int_equal(load(&s, "a4.yaml", text), NN_EFORMAT);
    tu_expect_msg("aliases expand to more than");
}

static void exact_error_texts(void **state)
{
    (void)state;
    io_sweep s;
    assert_int_equal(load(&s, "empty.yaml", ""), NN_EINVAL);
    tu_expect_msg("the sweep file is empty");
    assert_int_equal(load(&s, "broken.yaml", "grid: [1\n"), NN_EFORMAT);
    expect_at("2: YAML syntax error: did not find expected ',' or ']' (while parsing a flow "
              "sequence at line 1) (got the end of the file)");
    assert_int_equal(load(&s, "dup.yaml", "grid:\n  a: [1]\n  a: [2]\n"), NN_EFORMAT);
    expect_at("3: grid.a: duplicate key, first given at line 2 (got 'a' twice)");
    assert_int_equal(load(&s, "typo.yaml", "grids:\n  a: [1]\n"), NN_EINVAL);
    expect_at("1: grids: unknown key 'grids' (a sweep file has grid, set, config and dir)");
    assert_int_equal(load(&s, "el.yaml", "grid:\n  groups.lr.0: []\n"), NN_EINVAL);
    expect_at("2: grid.groups.lr.0: expected a non-empty list of values, e.g. [1e-3, 1e-2]");
    assert_int_equal(load(&s, "key.yaml", "set: {'a b': 1}\ngrid: {a: [1]}\n"), NN_EINVAL);
    expect_at("1: set: keys must be config key paths such as train.epochs");
    assert_int_equal(load(&s, "top.yaml", "- 1\n"), NN_EINVAL);
    expect_at("1: (top level): expected a map with grid: and optionally config:, dir:, set:");
    /* s is zeroed after every failure. */
    static const io_sweep zero;
    assert_memory_equal(&s, &zero, sizeof s);

    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-sweep.yaml", tu_tmpdir());
    assert_int_equal(io_sweep_load(&s, missing), NN_EIO);
    char want[700];
    snprintf(want, sizeof want, "cannot read the sweep file %s: No such file or directory",
             missing);
    assert_string_equal(nn_errmsg(), want);
    assert_int_equal(io_sweep_load(&s, tu_tmpdir()), NN_EIO); /* A directory. */
    tu_expect_msg("cannot read the sweep file", "Is a directory");
}

/* 40,000 anchors, each named by an alias after them, and a set: of 80,000 overrides: read in
 * O(n) name comparisons (io_config_key_compares), not a scan of every anchor per alias; no
 * clock is read. */
static void many_anchors_and_overrides(void **state)
{
    (void)state;
    const int n = 40000; /* 2n nodes copied: within the aliases' limit of 100000 */
    char *text = NULL, path[1024];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fprintf(f, "grid:\n  train.epochs: [1, 2]\nset:\n");
    for (int i = 0; i < n; i++) fprintf(f, "  a%d: &x%d %d\n", i, i, i);
    for (int i = 0; i < n; i++) fprintf(f, "  b%d: *x%d\n", i, n - 1 - i);
    assert_int_equal(fclose(f), 0);
    put(path, sizeof path, "many.yaml", text);
    free(text);
    io_sweep s;
    unsigned long before = io_config_key_compares();
    assert_int_equal(io_sweep_load(&s, path), 0);
    unsigned long used = io_config_key_compares() - before;
    if (used > 8ul * 2 * (unsigned long)n)
        fail_msg("%d keys and %d aliases took %lu name comparisons", 2 * n, n, used);
    assert_int_equal(s.nset, 2 * n);
    assert_string_equal(s.set[2 * n - 1], "b39999=0");
    assert_string_equal(s.set[n], "b0=39999");
    io_sweep_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grid_numbering_and_texts),
        cmocka_unit_test(dir_and_absolute_config),
        cmocka_unit_test(refusals),
        cmocka_unit_test(flow_texts_and_quoting),
        cmocka_unit_test(aliases_and_their_limits),
        cmocka_unit_test(exact_error_texts),
        cmocka_unit_test(many_anchors_and_overrides),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
