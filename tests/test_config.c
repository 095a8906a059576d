/*
 * The YAML config (io/io_config.h, docs/config.md): defaults, a full round trip through
 * io_config_write, every kind of error with its exact FILE:LINE and key path, --set
 * overrides, the per-group hyperparameter syntax, phases and the fine_tune preset (checked
 * against fastai's recipe as written in DESIGN.md, not against the code), and the example
 * configs in tests/configs.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "io/io.h"
#include "trainer/trainer.h"
#include "nn/nn.h"
#include "testutil.h"

#define CONFIGS_DIR STRATA_FIXTURES "/../configs"

/* The path of the last file written by write_cfg. */
static char last_path[512];

/* ---------------------------------------------------------------------------------------
 * Helpers.
 */

/* Writes text to a new file made with mkstemp in tu_tmpdir(); its path goes to last_path. */
static void write_cfg(const char *text)
{
    snprintf(last_path, sizeof last_path, "%s/cfg.XXXXXX", tu_tmpdir());
    int fd = mkstemp(last_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    size_t len = strlen(text);
    if (len) assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Loads text (through a temporary file) with the given overrides, as the CLI does
 * (trainer_config_load: io_config_load, then the fine_tune preset expanded). */
static int load_sets(io_config *cfg, const char *text, const char *const *sets, int nsets)
{
    write_cfg(text);
    return trainer_config_load(cfg, last_path, sets, nsets);
}

static int load(io_config *cfg, const char *text)
{
    return load_sets(cfg, text, NULL, 0);
}

/* Loads text with one override. */
static int load_set(io_config *cfg, const char *text, const char *set)
{
    const char *sets[1] = {set};
    return load_sets(cfg, text, sets, 1);
}

/* Fails unless the last message is exactly "LAST_PATH:" followed by the formatted rest, or,
 * when the format starts with "--set", exactly the formatted text. */
static void expect_exact_(const char *file, int line, const char *fmt, ...)
{
    char rest[1024], want[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    if (strncmp(rest, "--set ", 6) == 0)
        snprintf(want, sizeof want, "%s", rest);
    else
        snprintf(want, sizeof want, "%s:%s", last_path, rest);
    if (strcmp(nn_errmsg(), want) != 0)
        fail_msg("%s:%d: message\n  \"%s\"\nwanted\n  \"%s\"", file, line, nn_errmsg(), want);
}
#define expect_exact(...) expect_exact_(__FILE__, __LINE__, __VA_ARGS__)

/* Fails unless the last message starts with "LAST_PATH:LINE: KEYPATH: ". */
static void expect_at_(const char *file, int line, int cfg_line, const char *keypath)
{
    char want[800];
    snprintf(want, sizeof want, "%s:%d: %s: ", last_path, cfg_line, keypath);
    if (strncmp(nn_errmsg(), want, strlen(want)) != 0)
        fail_msg("%s:%d: message \"%s\" does not start with \"%s\"", file, line, nn_errmsg(),
                 want);
}
#define expect_at(l, k) expect_at_(__FILE__, __LINE__, (l), (k))

/* Clears what may differ between two loads of the same values: the path and the lines. */
static void normalize(io_config *c)
{
    memset(c->path, 0, sizeof c->path);
    memset(c->origins, 0, sizeof c->origins);
    c->groups.lr.line = c->groups.wd.line = c->groups.momentum.line = 0;
    for (int i = 0; i < IO_MAX_PHASES; i++) c->train.phases[i].lr.line = 0;
}

/* Fails unless a and b hold the same values (path and lines aside). */
static void expect_same(const io_config *a, const io_config *b)
{
    io_config x = *a, y = *b;
    normalize(&x);
    normalize(&y);
    assert_memory_equal(&x, &y, sizeof x);
}

/* Writes cfg with io_config_write to a temporary file and loads it back into *out. */
static void write_and_reload(const io_config *cfg, io_config *out)
{
    char path[512];
    snprintf(path, sizeof path, "%s/written.XXXXXX", tu_tmpdir());
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(io_config_write(cfg, f), 0);
    assert_int_equal(fclose(f), 0);
    int rc = trainer_config_load(out, path, NULL, 0);
    if (rc != 0) fail_msg("reloading the written config: %s", nn_errmsg());
}

/* Relative comparison for computed learning rates. */
static void expect_close(double got, double want)
{
    if (!(fabs(got - want) <= 1e-12 * fabs(want)))
        fail_msg("got %.17g, wanted %.17g", got, want);
}

static const char *const MINIMAL = "model:\n  arch: cnn\n";

/* ---------------------------------------------------------------------------------------
 * Defaults.
 */
static void test_defaults(void **state)
{
    (void)state;
    io_config c;
    assert_int_equal(io_config_default(&c, "resnet34"), 0);
    assert_string_equal(c.path, "");
    assert_string_equal(c.model.arch, "resnet34");
    assert_int_equal(c.model.cut, -1);
    assert_int_equal(c.model.nsplit, -1);
    assert_string_equal(c.model.head, "");
    assert_int_equal(c.model.classes, 0);
    assert_int_equal(c.model.input[0] | c.model.input[1] | c.model.input[2], 0);
    assert_int_equal(c.model.nwidths, 0);
    assert_int_equal(c.model.small_stem, 0);

    assert_int_equal(c.groups.lr.kind, IO_HP_SCALAR);
    assert_true(c.groups.lr.v[0] == 1e-3 && c.groups.lr.n == 1);
    assert_int_equal(c.groups.wd.kind, IO_HP_SCALAR);
    assert_true(c.groups.wd.v[0] == 0.01);
    assert_int_equal(c.groups.momentum.kind, IO_HP_SCALAR);
    assert_true(c.groups.momentum.v[0] == 0.9);
    assert_int_equal(c.groups.freeze_to, 0);
    assert_int_equal(c.groups.train_bn, 1); /* fastai v2's Learner default */
    assert_int_equal(c.groups.bn_freeze, 0);
    assert_int_equal(c.optimizer.true_wd, 1);
    assert_int_equal(c.optimizer.clear_state, 1);

    assert_string_equal(c.optimizer.type, "sgd");
    assert_int_equal(c.optimizer.nesterov, 0);
    assert_true(c.optimizer.beta2 == 0.99);
    assert_true(c.optimizer.eps == 1e-8);
    assert_int_equal(c.optimizer.decay_bn_bias, 0);

    /* fastai v2's fit_one_cycle defaults. */
    assert_string_equal(c.schedule.type, "one_cycle");
    assert_true(c.schedule.pct_start == 0.25);
    assert_true(c.schedule.div == 25.0);
    assert_true(c.schedule.div_final == 1e5);
    assert_true(c.schedule.moms[0] == 0.95 && c.schedule.moms[1] == 0.85 &&
                c.schedule.moms[2] == 0.95);
    assert_true(c.schedule.step_gamma == 0.1);
    assert_int_equal(c.schedule.step_epochs, 1);
    assert_true(c.schedule.final_div == 1e5);

    assert_string_equal(c.data.train, "fashion-mnist");
    assert_string_equal(c.data.valid, "fashion-mnist");
    assert_string_equal(c.data.dir, "/usr/share/datasets/fashion-mnist");
    assert_int_equal(c.data.batch_size, 64);
    assert_int_equal(c.data.augment.crop_padding, 0);
    assert_int_equal(c.data.augment.flip, 0);
    assert_int_equal(c.data.nnorm, 0);
    assert_int_equal(c.data.synthetic.samples, 512);
    assert_int_equal(c.data.synthetic.classes, 4);
    assert_int_equal(c.data.synthetic.input[0], 1);
    assert_int_equal(c.data.synthetic.input[1], 8);
    assert_int_equal(c.data.synthetic.input[2], 8);
    assert_true(c.data.synthetic.seed == 0);

    assert_int_equal(c.train.epochs, 1);
    assert_true(c.train.seed == 0);
    assert_int_equal(c.train.nphases, 0);
    assert_string_equal(c.train.preset, "");
    assert_int_equal(c.train.fine_tune.epochs, 1);
    assert_true(c.train.fine_tune.base_lr == 2e-3);
    assert_int_equal(c.train.fine_tune.freeze_epochs, 1);
    assert_true(c.train.fine_tune.lr_mult == 100.0);
    assert_int_equal(c.train.log_every, 50);
    assert_int_equal(c.train.max_steps, 0);
    assert_string_equal(c.run.dir, "runs/resnet34");

    assert_int_equal(io_config_default(&c, NULL), 0);
    assert_string_equal(c.model.arch, "");
    assert_string_equal(c.run.dir, "runs");

    assert_int_equal(io_config_default(&c, "an_architecture_name_of_forty_characters"),
                     NN_ERANGE);
    assert_string_equal(c.model.arch, "");
    tu_expect_msg("model.arch", "too long");
}

/* A file that names only the architecture gives exactly the defaults. */
static void test_minimal_file(void **state)
{
    (void)state;
    io_config c, d;
    assert_int_equal(load(&c, MINIMAL), 0);
    assert_string_equal(c.path, last_path);
    io_config_default(&d, "cnn");
    expect_same(&c, &d);

    /* Nulls and empty sections mean "not given". */
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  cut: ~\n  split:\n  head: null\n"
                              "groups:\ndata: {}\ntrain:\n"),
                     0);
    expect_same(&c, &d);

    /* The default validation set follows data.train: a built-in set's own test split, and
     * none for an HDF5 file. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata: {train: /data/x.h5}\n"), 0);
    assert_string_equal(c.data.valid, "");
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata: {train: synthetic}\n"), 0);
    assert_string_equal(c.data.valid, "synthetic");
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata: {train: x.h5, valid: y.h5}\n"), 0);
    assert_string_equal(c.data.valid, "y.h5");
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata: {valid: \"\"}\n"), 0);
    assert_string_equal(c.data.valid, "");
}

/* ---------------------------------------------------------------------------------------
 * A full file: every key given, none at its default; written and read back.
 */
static const char *const FULL =
    "# every key\n"
    "model:\n"
    "  arch: resnet34\n"
    "  cut: 8\n"
    "  split: [3, 6]\n"
    "  head: fastai\n"
    "  classes: 10\n"
    "  input: 3x32x32\n"
    "  widths: [128, 64]\n"
    "  small_stem: yes\n"
    "groups:\n"
    "  lr: slice(1e-5, 1e-3)\n"
    "  wd: [0.0, 0.01, 0.1, 0.2]\n"
    "  momentum: 'slice(0.9)'\n"
    "  freeze_to: -1\n"
    "  train_bn: true\n"
    "optimizer:\n"
    "  type: adamw\n"
    "  nesterov: true\n"
    "  beta2: 0.999\n"
    "  eps: 1e-6\n"
    "  decay_bn_bias: true\n"
    "schedule:\n"
    "  type: step\n"
    "  pct_start: 0.3\n"
    "  div: 10\n"
    "  div_final: 1e4\n"
    "  moms: [0.9, 0.8, 0.9]\n"
    "  step_gamma: 0.5\n"
    "  step_epochs: 2\n"
    "  final_div: 1000\n"
    "data:\n"
    "  train: \"/data/train set.h5\"\n"
    "  valid: '/data/valid \"quoted\".h5'\n"
    "  dir: /opt/fmnist\n"
    "  batch_size: 96\n"
    "  augment:\n"
    "    crop_padding: 4\n"
    "    flip: on\n"
    "  mean: [0.485, 0.456, 0.406]\n"
    "  std: [0.229, 0.224, 0.225]\n"
    "  synthetic:\n"
    "    samples: 100\n"
    "    classes: 3\n"
    "    input: [3, 4, 5]\n"
    "    seed: 18446744073709551615\n"
    "train:\n"
    "  epochs: 7\n"
    "  seed: 12345678901234\n"
    "  fine_tune:\n"
    "    epochs: 2\n"
    "    base_lr: 0.003\n"
    "    freeze_epochs: 3\n"
    "    lr_mult: 50\n"
    "  log_every: 10\n"
    "  max_steps: 5\n"
    "  phases:\n"
    "    - name: head only\n"
    "      epochs: 1\n"
    "      freeze_to: -1\n"
    "      lr: 0.01\n"
    "    - epochs: 2\n"
    "      lr: [1e-4, 1e-3, 1e-2]\n"
    "      schedule:\n"
    "        type: cosine\n"
    "        final_div: 50\n"
    "    - epochs: 3\n"
    "      freeze_to: 0\n"
    "run:\n"
    "  dir: /tmp/runs/full\n";

static void test_full_file(void **state)
{
    (void)state;
    io_config c;
    int rc = load(&c, FULL);
    if (rc != 0) fail_msg("%s", nn_errmsg());

    assert_string_equal(c.model.arch, "resnet34");
    assert_int_equal(c.model.cut, 8);
    assert_int_equal(c.model.nsplit, 2);
    assert_int_equal(c.model.split[0], 3);
    assert_int_equal(c.model.split[1], 6);
    assert_string_equal(c.model.head, "fastai");
    assert_int_equal(c.model.classes, 10);
    assert_int_equal(c.model.input[0], 3);
    assert_int_equal(c.model.input[1], 32);
    assert_int_equal(c.model.input[2], 32);
    assert_int_equal(c.model.nwidths, 2);
    assert_int_equal(c.model.widths[1], 64);
    assert_int_equal(c.model.small_stem, 1);

    assert_int_equal(c.groups.lr.kind, IO_HP_SLICE2);
    assert_true(c.groups.lr.v[0] == 1e-5 && c.groups.lr.v[1] == 1e-3 && c.groups.lr.n == 2);
    assert_int_equal(c.groups.lr.line, 12);
    assert_int_equal(c.groups.wd.kind, IO_HP_LIST);
    assert_int_equal(c.groups.wd.n, 4);
    assert_true(c.groups.wd.v[0] == 0.0 && c.groups.wd.v[3] == 0.2);
    assert_int_equal(c.groups.momentum.kind, IO_HP_SLICE1);
    assert_true(c.groups.momentum.v[0] == 0.9);
    assert_int_equal(c.groups.freeze_to, -1);
    assert_int_equal(c.groups.train_bn, 1);

    assert_string_equal(c.optimizer.type, "adamw");
    assert_int_equal(c.optimizer.nesterov, 1);
    assert_true(c.optimizer.beta2 == 0.999);
    assert_true(c.optimizer.eps == 1e-6);
    assert_int_equal(c.optimizer.decay_bn_bias, 1);

    assert_string_equal(c.schedule.type, "step");
    assert_true(c.schedule.pct_start == 0.3 && c.schedule.div == 10 &&
                c.schedule.div_final == 1e4);
    assert_true(c.schedule.moms[1] == 0.8 && c.schedule.step_gamma == 0.5);
    assert_int_equal(c.schedule.step_epochs, 2);
    assert_true(c.schedule.final_div == 1000);

    assert_string_equal(c.data.train, "/data/train set.h5");
    assert_string_equal(c.data.valid, "/data/valid \"quoted\".h5");
    assert_string_equal(c.data.dir, "/opt/fmnist");
    assert_int_equal(c.data.batch_size, 96);
    assert_int_equal(c.data.augment.crop_padding, 4);
    assert_int_equal(c.data.augment.flip, 1);
    assert_int_equal(c.data.nnorm, 3);
    assert_true(c.data.mean[2] == 0.406 && c.data.std[0] == 0.229);
    assert_int_equal(c.data.synthetic.samples, 100);
    assert_int_equal(c.data.synthetic.classes, 3);
    assert_int_equal(c.data.synthetic.input[2], 5);
    assert_true(c.data.synthetic.seed == 18446744073709551615ull);

    assert_int_equal(c.train.epochs, 7);
    assert_true(c.train.seed == 12345678901234ull);
    assert_string_equal(c.train.preset, "");
    assert_int_equal(c.train.fine_tune.epochs, 2);
    assert_int_equal(c.train.log_every, 10);
    assert_int_equal(c.train.max_steps, 5);
    assert_int_equal(c.train.nphases, 3);
    assert_string_equal(c.train.phases[0].name, "head only");
    assert_int_equal(c.train.phases[0].lr.kind, IO_HP_SCALAR);
    assert_string_equal(c.train.phases[1].name, "phase1");
    assert_int_equal(c.train.phases[1].lr.kind, IO_HP_LIST);
    assert_int_equal(c.train.phases[1].has_schedule, 1);
    /* A phase's schedule starts from the top-level one. */
    assert_string_equal(c.train.phases[1].schedule.type, "cosine");
    assert_true(c.train.phases[1].schedule.final_div == 50);
    assert_true(c.train.phases[1].schedule.step_gamma == 0.5);
    assert_int_equal(c.train.phases[2].lr.kind, IO_HP_UNSET);
    assert_int_equal(c.train.phases[2].has_schedule, 0);
    assert_string_equal(c.run.dir, "/tmp/runs/full");

    /* Written and read back: the same struct. */
    io_config back;
    write_and_reload(&c, &back);
    expect_same(&c, &back);

    /* io_config_to_string gives the text io_config_write writes. */
    char *s = NULL;
    assert_int_equal(io_config_to_string(&s, &c), 0);
    assert_non_null(s);
    assert_non_null(strstr(s, "arch: \"resnet34\""));
    assert_non_null(strstr(s, "lr: \"slice(1e-05, 0.001)\""));
    assert_non_null(strstr(s, "wd: [0, 0.01, 0.1, 0.2]"));
    assert_non_null(strstr(s, "valid: \"/data/valid \\\"quoted\\\".h5\""));
    char *t = NULL;
    size_t tlen = 0;
    FILE *mem = open_memstream(&t, &tlen);
    assert_non_null(mem);
    assert_int_equal(io_config_write(&c, mem), 0);
    assert_int_equal(fclose(mem), 0);
    assert_string_equal(s, t);
    free(s);
    free(t);
}

/* The defaults, written and read back, are the defaults; so are the example configs. */
static void test_round_trips(void **state)
{
    (void)state;
    io_config c, back;
    assert_int_equal(load(&c, MINIMAL), 0);
    write_and_reload(&c, &back);
    expect_same(&c, &back);

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain: {preset: fine_tune, epochs: 4}\n"), 0);
    write_and_reload(&c, &back);
    expect_same(&c, &back);

    const char *names[] = {"fmnist_cnn.yaml", "synthetic.yaml"};
    for (int i = 0; i < 2; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", CONFIGS_DIR, names[i]);
        if (io_config_load(&c, path, NULL, 0) != 0) fail_msg("%s", nn_errmsg());
        write_and_reload(&c, &back);
        expect_same(&c, &back);
    }
}

/* ---------------------------------------------------------------------------------------
 * Errors: each kind, with the exact place and key path.
 */
static void test_error_unknown_key(void **state)
{
    (void)state;
    io_config c;
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  spilt: 3\n"), NN_EINVAL);
    expect_exact("3: model.spilt: unknown key; did you mean 'split'? (got '3')");

    assert_int_equal(load(&c, "modle:\n  arch: cnn\n"), NN_EINVAL);
    expect_exact("1: modle: unknown key; did you mean 'model'? (got a map)");

    /* Nothing close: the keys that are known there. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  learning_rate: 0.1\n"), NN_EINVAL);
    expect_exact("3: groups.learning_rate: unknown key; known keys here: lr, wd, momentum, "
                 "freeze_to, train_bn, bn_freeze (got '0.1')");

    /* Deep inside: a phase's schedule. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - epochs: 1\n"
                              "      schedule:\n        pct_strat: 0.5\n"),
                     NN_EINVAL);
    expect_exact("6: train.phases.0.schedule.pct_strat: unknown key; did you mean 'pct_start'? "
                 "(got '0.5')");

    /* An unknown value of a closed set is suggested the same way. */
    assert_int_equal(load(&c, "model: {arch: cnn}\noptimizer:\n  type: adam\n"), NN_EINVAL);
    expect_exact("3: optimizer.type: must be one of sgd, adamw; did you mean 'adamw'? "
                 "(got 'adam')");
    assert_int_equal(load(&c, "model: {arch: cnn, head: mlp}\n"), NN_EINVAL);
    expect_at(1, "model.head");
    tu_expect_msg("default, fastai, linear, original", "(got 'mlp')");
    assert_int_equal(load(&c, "model: {arch: cnn}\nschedule: {type: cosin}\n"), NN_EINVAL);
    tu_expect_msg("did you mean 'cosine'?");
}

static void test_error_wrong_type(void **state)
{
    (void)state;
    io_config c;
    assert_int_equal(load(&c, "model:\n  arch: cnn\ndata:\n  batch_size: lots\n"), NN_EINVAL);
    expect_exact("4: data.batch_size: expected an integer (got 'lots')");

    assert_int_equal(load(&c, "model:\n  arch: cnn\ndata:\n  batch_size: 1.5\n"), NN_EINVAL);
    expect_exact("4: data.batch_size: expected an integer (got '1.5')");

    assert_int_equal(load(&c, "model: cnn\n"), NN_EINVAL);
    expect_exact("1: model: expected a map of keys (got 'cnn')");

    assert_int_equal(load(&c, "model:\n  arch: [cnn]\n"), NN_EINVAL);
    expect_exact("2: model.arch: expected a string (got a list)");

    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  train_bn: maybe\n"), NN_EINVAL);
    expect_exact("3: groups.train_bn: expected true or false (got 'maybe')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  bn_freeze: true\n"), NN_EINVAL);
    expect_exact("3: groups.bn_freeze: fixes the BatchNorm of frozen groups, but groups.train_bn "
                 "is true (the default), which trains it; set groups.train_bn: false as well "
                 "(got 'true')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups: {train_bn: false, bn_freeze: true}\n"), 0);
    assert_int_equal(c.groups.bn_freeze, 1);
    assert_int_equal(load(&c, "model: {arch: cnn}\noptimizer:\n  type: adamw\n  true_wd: false\n"),
                     NN_EINVAL);
    expect_exact("4: optimizer.true_wd: false selects torch.optim.SGD's coupled L2 decay for sgd; "
                 "adamw always decouples its weight decay (optimizer.type is adamw) (got 'false')");
    assert_int_equal(load(&c, "model: {arch: cnn}\noptimizer: {true_wd: false, clear_state: false}\n"), 0);
    assert_true(c.optimizer.true_wd == 0 && c.optimizer.clear_state == 0);

    assert_int_equal(load(&c, "model: {arch: cnn}\nschedule:\n  div: fast\n"), NN_EINVAL);
    expect_exact("3: schedule.div: expected a number (got 'fast')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  epochs:\n"), NN_EINVAL);
    expect_exact("3: train.epochs: expected an integer (got '')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  seed: -1\n"), NN_EINVAL);
    expect_exact("3: train.seed: expected a non-negative integer (got '-1')");

    assert_int_equal(load(&c, "model: {arch: cnn, input: [1, 28]}\n"), NN_EINVAL);
    expect_at(1, "model.input");

    assert_int_equal(load(&c, "- model\n- groups\n"), NN_EINVAL);
    /* Every section of the key table, in its order (the list once missed comm and checkpoint). */
    expect_exact("1: (top level): expected a map of sections (model, groups, optimizer, "
                 "schedule, data, train, comm, checkpoint, run) (got a list)");

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases: 3\n"), NN_EINVAL);
    expect_at(3, "train.phases");
}

static void test_error_range(void **state)
{
    (void)state;
    io_config c;
    assert_int_equal(load(&c, "model:\n  arch: cnn\ndata:\n  batch_size: 0\n"), NN_ERANGE);
    expect_exact("4: data.batch_size: must be >= 1 (got '0')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ndata:\n  augment: {crop_padding: -2}\n"),
                     NN_ERANGE);
    expect_exact("3: data.augment.crop_padding: must be >= 0 (got '-2')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  epochs: 0\n"), NN_ERANGE);
    expect_exact("3: train.epochs: must be >= 1 (got '0')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  epochs: 99999999999\n"), NN_ERANGE);
    expect_at(3, "train.epochs");

    assert_int_equal(load(&c, "model: {arch: cnn}\noptimizer: {beta2: 1.0}\n"), NN_ERANGE);
    expect_exact("2: optimizer.beta2: must be in [0, 1) (got '1.0')");

    assert_int_equal(load(&c, "model: {arch: cnn}\nschedule: {moms: [0.95, 1.5, 0.95]}\n"),
                     NN_ERANGE);
    expect_exact("2: schedule.moms.1: must be in [0, 1) (got '1.5')");

    /* Communication and step keys. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ncomm:\n  bucket_mb: 0\n"), NN_ERANGE);
    expect_at(3, "comm.bucket_mb");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  accumulate: 0\n"), NN_ERANGE);
    expect_exact("3: train.accumulate: must be between 1 and 65536 (got '0')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  clip_norm: -1\n"), NN_ERANGE);
    expect_at(3, "train.clip_norm");
    assert_int_equal(load(&c, "model: {arch: cnn}\ncomm:\n  overlap: maybe\n"), NN_EINVAL);
    expect_at(3, "comm.overlap");
    assert_int_equal(load(&c, "model: {arch: cnn}\ncomm:\n  overlap: true\n  progress: threads\n"),
                     NN_EINVAL);
    expect_exact("4: comm.progress: must be one of nonblocking, thread; did you mean 'thread'? "
                 "(got 'threads')");

    /* Split points: strictly increasing and positive. */
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  split:\n    - 4\n    - 4\n"), NN_ERANGE);
    expect_exact("5: model.split.1: split points must be strictly increasing, and 4 follows 4 "
                 "(got '4')");
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  split: [0, 4]\n"), NN_ERANGE);
    expect_exact("3: model.split.0: must be >= 1 (got '0')");

    assert_int_equal(load(&c, "model: {arch: cnn, input: [1, 0, 28]}\n"), NN_ERANGE);
    expect_at(1, "model.input");

    assert_int_equal(load(&c, "model:\n  arch: a_name_that_is_much_too_long_for_an_arch\n"),
                     NN_ERANGE);
    expect_exact("2: model.arch: too long: at most 31 characters (got "
                 "'a_name_that_is_much_too_long_for_an_arch')");

    /* Normalisation: std > 0, and as many stds as means. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata:\n  mean: 0.5\n  std: 0\n"), NN_ERANGE);
    expect_exact("4: data.std: must be > 0 (got '0')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata:\n  mean: [0.5, 0.5]\n  std: 0.2\n"),
                     NN_EINVAL);
    expect_exact("4: data.std: has 1 value but data.mean has 2 (got '0.2')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ndata:\n  mean: 0.5\n"), NN_EINVAL);
    expect_exact("3: data.mean: data.mean and data.std go together: give both or neither "
                 "(got '0.5')");

    assert_int_equal(load(&c, "model: {arch: cnn}\ndata:\n  train: \"\"\n"), NN_EINVAL);
    expect_exact("3: data.train: must not be empty (got '')");
    assert_int_equal(load(&c, "model: {arch: cnn}\nschedule: {pct_start: 1.01}\n"), NN_ERANGE);
    expect_exact("2: schedule.pct_start: must be in [0, 1] (got '1.01')");
}

static void test_error_syntax(void **state)
{
    (void)state;
    io_config c;
    /* An unclosed flow list: the error is found on the next line. */
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  split: [1, 2\ngroups:\n  lr: 1\n"),
                     NN_EFORMAT);
    expect_at(4, "model.split");
    tu_expect_msg("YAML syntax error: did not find expected ',' or ']'",
               "(while parsing a flow sequence at line 3)", "(got 'groups:')");

    assert_int_equal(load(&c, "model:\n  arch: cnn: 3\n"), NN_EFORMAT);
    expect_exact("2: model: YAML syntax error: mapping values are not allowed in this "
                 "context (got '  arch: cnn: 3')");

    /* A tab where indentation is expected. */
    assert_int_equal(load(&c, "model:\n\tarch: cnn\n"), NN_EFORMAT);
    tu_expect_msg(":2:", "YAML syntax error", "found character that cannot start any token");

    /* Bad input at the very end of the file. */
    assert_int_equal(load(&c, "model: {arch: cnn\n"), NN_EFORMAT);
    tu_expect_msg("YAML syntax error", "(got the end of the file)");

    /* Duplicate keys, aliases and a second document are refused. */
    assert_int_equal(load(&c, "model:\n  arch: cnn\n  cut: 3\n  arch: mlp\n"), NN_EFORMAT);
    expect_exact("4: model.arch: duplicate key, first given at line 2 (got 'arch' twice)");
    assert_int_equal(load(&c, "model:\n  arch: &a cnn\nrun:\n  dir: *a\n"), NN_EFORMAT);
    expect_exact("4: run.dir: YAML aliases are not supported; write the value out (got '*a')");
    assert_int_equal(load(&c, "model: {arch: cnn}\n---\nmodel: {arch: mlp}\n"), NN_EFORMAT);
    expect_exact("2: a config is one YAML document, and a second one starts here (got '---')");

    /* Explicit tags would be ignored (every value is read by its text): refused, on a value,
     * a list and a map. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  lr: !!str 0.05\n"), NN_EFORMAT);
    expect_exact("3: groups.lr: YAML tags are not read, so this one would be ignored: write the "
                 "value plainly (got the tag 'tag:yaml.org,2002:str')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  lr: !!seq [1, 2]\n"), NN_EFORMAT);
    tu_expect_msg("groups.lr: YAML tags are not read", "tag:yaml.org,2002:seq");
    assert_int_equal(load(&c, "model: !custom {arch: cnn}\n"), NN_EFORMAT);
    tu_expect_msg(":1:", "YAML tags are not read", "'!custom'");

    /* A key that is a list, and nesting beyond any config's needs. */
    assert_int_equal(load(&c, "model:\n  ? [a]\n  : 1\n"), NN_EFORMAT);
    expect_exact("2: model: a key must be a single value, not a map or a list");
    char deep[256];
    int off = snprintf(deep, sizeof deep, "model: ");
    for (int i = 0; i < 40; i++) off += snprintf(deep + off, sizeof deep - (size_t)off, "[");
    for (int i = 0; i < 40; i++) off += snprintf(deep + off, sizeof deep - (size_t)off, "]");
    snprintf(deep + off, sizeof deep - (size_t)off, "\n");
    assert_int_equal(load(&c, deep), NN_EFORMAT);
    tu_expect_msg(":1: model.0.0.0", "nested more than 32 deep");
}

static void test_error_missing(void **state)
{
    (void)state;
    io_config c;
    assert_int_equal(load(&c, "groups:\n  lr: 0.1\n"), NN_EINVAL);
    expect_exact("1: model.arch: required key is missing");

    assert_int_equal(load(&c, "groups:\n  lr: 0.1\nmodel:\n  cut: 3\n"), NN_EINVAL);
    expect_exact("3: model.arch: required key is missing");

    /* An empty file and a file of comments have no model.arch either. */
    assert_int_equal(load(&c, ""), NN_EINVAL);
    expect_exact("1: model.arch: required key is missing");
    assert_int_equal(load(&c, "# nothing\n\n"), NN_EINVAL);
    expect_exact("1: model.arch: required key is missing");

    assert_int_equal(load(&c, "model:\n  arch: \"\"\n"), NN_EINVAL);
    expect_exact("2: model.arch: must not be empty (got '')");

    /* A phase without epochs. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - epochs: 1\n"
                              "    - name: two\n      lr: 0.1\n"),
                     NN_EINVAL);
    expect_exact("5: train.phases.1.epochs: required key is missing");

    /* A failed load leaves the defaults. */
    io_config d;
    io_config_default(&d, NULL);
    assert_memory_equal(&c, &d, sizeof c);
}

static void test_error_file(void **state)
{
    (void)state;
    io_config c;
    char path[512];
    snprintf(path, sizeof path, "%s/no-such-config.yaml", tu_tmpdir());
    assert_int_equal(io_config_load(&c, path, NULL, 0), NN_EIO);
    char want[700];
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(nn_errmsg(), want);

    /* A directory opens but cannot be read. */
    assert_int_equal(io_config_load(&c, tu_tmpdir(), NULL, 0), NN_EIO);
    tu_expect_msg(tu_tmpdir(), strerror(EISDIR));

    /* A file without read permission (root reads it anyway, so only check the code then). */
    write_cfg(MINIMAL);
    assert_int_equal(chmod(last_path, 0), 0);
    int rc = io_config_load(&c, last_path, NULL, 0);
    if (geteuid() != 0) {
        assert_int_equal(rc, NN_EIO);
        tu_expect_msg(last_path, "cannot open", strerror(EACCES));
    }
    assert_int_equal(io_config_load(&c, NULL, NULL, 0), NN_EINVAL);
}

/* ---------------------------------------------------------------------------------------
 * --set overrides.
 */
static void test_set(void **state)
{
    (void)state;
    io_config c;
    const char *file = "model:\n  arch: cnn\ntrain:\n  epochs: 1\n  phases:\n    - epochs: 1\n"
                       "    - epochs: 2\n";

    /* A scalar replaces the file's value. */
    assert_int_equal(load_set(&c, file, "train.epochs=3"), 0);
    assert_int_equal(c.train.epochs, 3);

    /* The comm section and the step keys, with their defaults first. */
    assert_int_equal(load_set(&c, file, "train.epochs=1"), 0);
    assert_int_equal(c.comm.overlap, 1);
    assert_true(c.comm.bucket_mb == 4.0);
    assert_int_equal(c.train.accumulate, 1);
    assert_true(c.train.clip_norm == 0.0);
    assert_int_equal(load_set(&c, file, "comm={overlap: false, bucket_mb: 0.5}"), 0);
    assert_int_equal(c.comm.overlap, 0);
    assert_true(c.comm.bucket_mb == 0.5);
    assert_string_equal(c.comm.progress, "nonblocking");
    assert_int_equal(load_set(&c, file, "comm.progress=thread"), 0);
    assert_string_equal(c.comm.progress, "thread");
    assert_int_equal(c.comm.overlap, 1);
    {
        io_config back; /* io_config_write keeps it */
        write_and_reload(&c, &back);
        assert_string_equal(back.comm.progress, "thread");
    }
    assert_int_equal(load_set(&c, file, "train.accumulate=4"), 0);
    assert_int_equal(c.train.accumulate, 4);
    assert_int_equal(load_set(&c, file, "train.clip_norm=1.5"), 0);
    assert_true(c.train.clip_norm == 1.5);

    /* A flow list, and the line of an override is -1. */
    assert_int_equal(load_set(&c, file, "groups.lr=[1e-4,1e-3,1e-2]"), 0);
    assert_int_equal(c.groups.lr.kind, IO_HP_LIST);
    assert_int_equal(c.groups.lr.n, 3);
    assert_true(c.groups.lr.v[0] == 1e-4 && c.groups.lr.v[1] == 1e-3 && c.groups.lr.v[2] == 1e-2);
    assert_int_equal(c.groups.lr.line, -1);

    /* A slice, written bare (YAML reads it as one plain string). */
    assert_int_equal(load_set(&c, file, "groups.lr=slice(1e-5,1e-3)"), 0);
    assert_int_equal(c.groups.lr.kind, IO_HP_SLICE2);
    assert_true(c.groups.lr.v[0] == 1e-5 && c.groups.lr.v[1] == 1e-3);

    /* Missing maps on the way are created. */
    const char *sets[] = {"data.augment.flip=true", "data.synthetic.input=[3, 4, 5]",
                          "optimizer.type=adamw", "optimizer.type=sgd"};
    assert_int_equal(load_sets(&c, file, sets, 4), 0);
    assert_int_equal(c.data.augment.flip, 1);
    assert_int_equal(c.data.synthetic.input[0], 3);
    assert_int_equal(c.data.synthetic.input[2], 5);
    assert_string_equal(c.optimizer.type, "sgd"); /* The last override wins. */

    /* A whole map as the value; an empty section of the file becomes a map. */
    assert_int_equal(load_set(&c, "model:\n  arch: cnn\ndata:\n", "data={batch_size: 8}"), 0);
    assert_int_equal(c.data.batch_size, 8);
    assert_int_equal(load_set(&c, "model:\n  arch: cnn\ndata:\n", "data.batch_size=9"), 0);
    assert_int_equal(c.data.batch_size, 9);

    /* Numbers index lists, from 0. */
    assert_int_equal(load_set(&c, file, "train.phases.1.epochs=5"), 0);
    assert_int_equal(c.train.phases[0].epochs, 1);
    assert_int_equal(c.train.phases[1].epochs, 5);

    /* An empty value is a YAML null: no validation set. */
    assert_int_equal(load_set(&c, file, "data.valid="), 0);
    assert_string_equal(c.data.valid, "");

    /* The override supplies a required key. */
    assert_int_equal(load_set(&c, "groups: {lr: 0.1}\n", "model.arch=mlp"), 0);
    assert_string_equal(c.model.arch, "mlp");
    assert_string_equal(c.run.dir, "runs/mlp");
}

static void test_set_errors(void **state)
{
    (void)state;
    io_config c;
    const char *file = "model:\n  arch: cnn\ntrain:\n  phases:\n    - epochs: 1\n";

    /* An unknown key is located by the override itself. */
    assert_int_equal(load_set(&c, file, "model.acrh=cnn"), NN_EINVAL);
    expect_exact("--set model.acrh=cnn: model.acrh: unknown key; did you mean 'arch'? "
                 "(got 'cnn')");
    assert_int_equal(load_set(&c, file, "data.agument.flip=true"), NN_EINVAL);
    expect_exact("--set data.agument.flip=true: data.agument: unknown key; did you mean "
                 "'augment'? (got a map)");

    /* Checks apply to overridden values as to the file's. */
    assert_int_equal(load_set(&c, file, "data.batch_size=0"), NN_ERANGE);
    expect_exact("--set data.batch_size=0: data.batch_size: must be >= 1 (got '0')");
    assert_int_equal(load_set(&c, file, "groups.lr=[0.1,-1]"), NN_ERANGE);
    expect_exact("--set groups.lr=[0.1,-1]: groups.lr.1: a learning rate must be > 0 "
                 "(got '-1')");

    /* Malformed overrides. */
    assert_int_equal(load_set(&c, file, "train.epochs"), NN_EINVAL);
    expect_exact("--set train.epochs: expected key.path=value (got 'train.epochs')");
    assert_int_equal(load_set(&c, file, "=3"), NN_EINVAL);
    tu_expect_msg("expected key.path=value");
    assert_int_equal(load_set(&c, file, "train..epochs=3"), NN_EINVAL);
    expect_exact("--set train..epochs=3: train..epochs: a key path is keys joined by single "
                 "dots (got 'train..epochs')");
    assert_int_equal(load_set(&c, file, "groups.lr=[1,2"), NN_EFORMAT);
    tu_expect_msg("--set groups.lr=[1,2: groups.lr", "YAML syntax error", "(got '[1,2')");

    /* Through a single value, or past the end of a list. */
    assert_int_equal(load_set(&c, file, "model.arch.x=1"), NN_EINVAL);
    tu_expect_msg("--set model.arch.x=1: model.arch.x: model.arch is a single value",
               ":2", "(got 'cnn')");
    assert_int_equal(load_set(&c, file, "train.phases.3.epochs=1"), NN_EINVAL);
    expect_exact("--set train.phases.3.epochs=1: train.phases.3: no such item: the list "
                 "train.phases has 1 item, indexed from 0 (got '1')");

    /* An override that leaves an explicit phase beside the preset. */
    assert_int_equal(load_set(&c, file, "train.preset=fine_tune"), NN_EINVAL);
    expect_at(4, "train.phases");
    tu_expect_msg("either the preset or phases");

    const char *sets[] = {"train.epochs=2", NULL};
    assert_int_equal(io_config_load(&c, last_path, sets, 2), NN_EINVAL);
}

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters.
 */
typedef struct hp_case {
    const char *set; /* the --set */
    int rc;
    int kind;
    int n;
    double v[3];
    const char *msg; /* for errors: the exact message */
} hp_case;

static void test_hparams(void **state)
{
    (void)state;
    static const hp_case cases[] = {
        {"groups.lr=0.01", 0, IO_HP_SCALAR, 1, {0.01}, NULL},
        {"groups.lr=3", 0, IO_HP_SCALAR, 1, {3}, NULL},
        {"groups.lr=1E-3", 0, IO_HP_SCALAR, 1, {1e-3}, NULL},
        {"groups.lr=[0.1, 0.2, 0.3]", 0, IO_HP_LIST, 3, {0.1, 0.2, 0.3}, NULL},
        {"groups.lr=[5e-3]", 0, IO_HP_LIST, 1, {5e-3}, NULL},
        {"groups.lr=slice(1e-5, 1e-3)", 0, IO_HP_SLICE2, 2, {1e-5, 1e-3}, NULL},
        {"groups.lr=slice(1e-3)", 0, IO_HP_SLICE1, 1, {1e-3}, NULL},
        {"groups.lr=slice( 2E-3 ,4.5e-2 )", 0, IO_HP_SLICE2, 2, {2e-3, 4.5e-2}, NULL},
        {"groups.lr=' slice ( .5 ) '", 0, IO_HP_SLICE1, 1, {0.5}, NULL},
        {"groups.wd=0", 0, IO_HP_SCALAR, 1, {0}, NULL},
        {"groups.wd=slice(0.1)", 0, IO_HP_SLICE1, 1, {0.1}, NULL},
        {"groups.momentum=[0, 0.5, 0.99]", 0, IO_HP_LIST, 3, {0, 0.5, 0.99}, NULL},

        {"groups.lr=slice(1e-3", NN_EINVAL, 0, 0, {0},
         "--set groups.lr=slice(1e-3: groups.lr: bad slice: expected 'slice(b)' or "
         "'slice(a, b)' with numbers a and b (got 'slice(1e-3')"},
        {"groups.lr=slice()", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=slice(1,2,3)", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=slice(a, b)", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=slice(1e-3) x", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=slice(nan)", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=fast", NN_EINVAL, 0, 0, {0},
         "--set groups.lr=fast: groups.lr: expected a number, a list of numbers (one per "
         "layer group), 'slice(b)' or 'slice(a, b)' (got 'fast')"},
        {"groups.lr=true", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=1e999", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=.inf", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr={a: 1}", NN_EINVAL, 0, 0, {0},
         "--set groups.lr={a: 1}: groups.lr: expected a number, a list of numbers (one per "
         "layer group), 'slice(b)' or 'slice(a, b)' (got a map)"},
        {"groups.lr=[0.1, x]", NN_EINVAL, 0, 0, {0},
         "--set groups.lr=[0.1, x]: groups.lr.1: expected a number (got 'x')"},
        {"groups.lr=[0.1, [0.2]]", NN_EINVAL, 0, 0, {0}, NULL},
        {"groups.lr=[]", NN_EINVAL, 0, 0, {0},
         "--set groups.lr=[]: groups.lr: an empty list: give one value per layer group "
         "(got a list)"},
        {"groups.lr=0", NN_ERANGE, 0, 0, {0},
         "--set groups.lr=0: groups.lr: a learning rate must be > 0 (got '0')"},
        {"groups.lr=slice(-1e-3)", NN_ERANGE, 0, 0, {0}, NULL},
        /* fastai reads slice(0, b) as slice(b); the form is kept as written. */
        {"groups.lr=slice(0, 1e-3)", 0, IO_HP_SLICE2, 2, {0, 1e-3}, NULL},
        {"groups.lr=slice(-1e-3, 1e-3)", NN_ERANGE, 0, 0, {0}, NULL},
        {"groups.wd=-0.1", NN_ERANGE, 0, 0, {0},
         "--set groups.wd=-0.1: groups.wd: a weight decay must be >= 0 (got '-0.1')"},
        {"groups.wd=slice(0, 0.1)", 0, IO_HP_SLICE2, 2, {0, 0.1}, NULL},
        {"groups.wd=slice(0, 0)", NN_ERANGE, 0, 0, {0},
         "--set groups.wd=slice(0, 0): groups.wd: slice(a, b) is a geometric series: a and "
         "b must be > 0 (or a = 0, which fastai reads as slice(b)) (got 'slice(0, 0)')"},
        {"groups.momentum=1", NN_ERANGE, 0, 0, {0},
         "--set groups.momentum=1: groups.momentum: a momentum must be in [0, 1) (got '1')"},
        {"groups.momentum=[0.9, -0.1]", NN_ERANGE, 0, 0, {0}, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const hp_case *t = &cases[i];
        io_config c;
        int rc = load_set(&c, MINIMAL, t->set);
        if (rc != t->rc)
            fail_msg("--set %s: rc %d, wanted %d (%s)", t->set, rc, t->rc, nn_errmsg());
        if (rc < 0) {
            char want[200];
            snprintf(want, sizeof want, "--set %s: ", t->set);
            if (strncmp(nn_errmsg(), want, strlen(want)) != 0)
                fail_msg("--set %s: message \"%s\"", t->set, nn_errmsg());
            if (t->msg != NULL && strcmp(nn_errmsg(), t->msg) != 0)
                fail_msg("message\n  \"%s\"\nwanted\n  \"%s\"", nn_errmsg(), t->msg);
            continue;
        }
        const io_hparam *hp = strncmp(t->set, "groups.lr", 9) == 0   ? &c.groups.lr
                              : strncmp(t->set, "groups.wd", 9) == 0 ? &c.groups.wd
                                                                     : &c.groups.momentum;
        if (hp->kind != t->kind || hp->n != t->n)
            fail_msg("--set %s: kind %d n %d, wanted %d %d", t->set, hp->kind, hp->n, t->kind,
                     t->n);
        for (int k = 0; k < t->n; k++)
            if (hp->v[k] != t->v[k]) fail_msg("--set %s: v[%d] = %g", t->set, k, hp->v[k]);
        for (int k = t->n; k < IO_MAX_GROUPS; k++) assert_true(hp->v[k] == 0.0);
    }

    /* A list longer than the most groups a model can have, in a file: line and key. */
    char text[1024];
    int off = snprintf(text, sizeof text, "model: {arch: cnn}\ngroups:\n  lr: [");
    for (int i = 0; i <= IO_MAX_GROUPS; i++)
        off += snprintf(text + off, sizeof text - (size_t)off, "%s0.1", i ? ", " : "");
    snprintf(text + off, sizeof text - (size_t)off, "]\n");
    io_config c;
    assert_int_equal(load(&c, text), NN_ERANGE);
    expect_exact("3: groups.lr: has 33 values; a model has at most 32 layer groups (got a list)");

    /* A negative value in a block list: the item's own line and index. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  lr:\n    - 0.1\n    - -0.2\n"),
                     NN_ERANGE);
    expect_exact("5: groups.lr.1: a learning rate must be > 0 (got '-0.2')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups:\n  momentum: 'slice(1.5)'\n"),
                     NN_ERANGE);
    expect_exact("3: groups.momentum: a momentum must be in [0, 1) (got 'slice(1.5)')");

    /* Values float32 cannot hold: rounding to 0 (or subnormal) and overflow, in every form. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups: {lr: 1e-300}\n"), NN_ERANGE);
    expect_exact("2: groups.lr: a learning rate of 1e-300 rounds to 0 or is subnormal in "
                 "float32, the precision strata trains in: give a magnitude in [1.2e-38, "
                 "3.4e+38] (got '1e-300')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups: {lr: 'slice(1e-3, 1e300)'}\n"),
                     NN_ERANGE);
    tu_expect_msg("groups.lr: a learning rate of 1e+300 overflows to infinity in float32");
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups: {wd: [0.01, 1e-40]}\n"), NN_ERANGE);
    tu_expect_msg("groups.wd.1: a weight decay of 1e-40 rounds to 0");
    /* The edges of float32's normal range, and 0 where the range allows it, are accepted. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ngroups: {lr: [1.2e-38, 3.4e38], wd: 0}\n"),
                     0);
}

static void test_hparam_format(void **state)
{
    (void)state;
    char buf[128];
    io_hparam hp;
    memset(&hp, 0, sizeof hp);
    assert_int_equal(io_hparam_format(buf, sizeof buf, &hp), 0);
    assert_string_equal(buf, "unset");

    hp.kind = IO_HP_SCALAR;
    hp.n = 1;
    hp.v[0] = 0.001;
    assert_int_equal(io_hparam_format(buf, sizeof buf, &hp), 0);
    assert_string_equal(buf, "0.001");

    hp.kind = IO_HP_LIST;
    hp.n = 2;
    hp.v[0] = 0.1;
    hp.v[1] = 0.2;
    assert_int_equal(io_hparam_format(buf, sizeof buf, &hp), 0);
    assert_string_equal(buf, "[0.1, 0.2]");

    hp.kind = IO_HP_SLICE2;
    hp.v[0] = 1e-5;
    hp.v[1] = 1e-3;
    assert_int_equal(io_hparam_format(buf, sizeof buf, &hp), 0);
    assert_string_equal(buf, "slice(1e-05, 0.001)");

    hp.kind = IO_HP_SLICE1;
    hp.n = 1;
    hp.v[0] = 2e-3 / 3; /* Needs all 17 digits to read back exactly. */
    assert_int_equal(io_hparam_format(buf, sizeof buf, &hp), 0);
    double back = 0;
    assert_int_equal(sscanf(buf, "slice(%lf)", &back), 1);
    assert_true(back == 2e-3 / 3);

    assert_int_equal(io_hparam_format(buf, 8, &hp), NN_ERANGE);
    assert_int_equal(strlen(buf), 7);
}

/* ---------------------------------------------------------------------------------------
 * Phases and the fine_tune preset.
 */
static void test_phases(void **state)
{
    (void)state;
    io_config c;
    const char *text = "model: {arch: cnn}\n"
                       "groups: {lr: 0.01, freeze_to: 1}\n"
                       "schedule: {type: cosine, final_div: 100}\n"
                       "train:\n"
                       "  phases:\n"
                       "    - epochs: 2\n"
                       "    - name: second\n"
                       "      epochs: 3\n"
                       "      freeze_to: -1\n"
                       "      lr: slice(1e-3)\n"
                       "      schedule:\n"
                       "        pct_start: 0.5\n";
    if (load(&c, text) != 0) fail_msg("%s", nn_errmsg());
    assert_int_equal(c.train.nphases, 2);
    const io_phase *p = &c.train.phases[0];
    assert_string_equal(p->name, "phase0");
    assert_int_equal(p->epochs, 2);
    assert_int_equal(p->has_freeze_to, 0);
    assert_int_equal(p->lr.kind, IO_HP_UNSET);
    assert_int_equal(p->has_schedule, 0);
    p = &c.train.phases[1];
    assert_string_equal(p->name, "second");
    assert_int_equal(p->epochs, 3);
    assert_int_equal(p->has_freeze_to, 1);
    assert_int_equal(p->freeze_to, -1);
    assert_int_equal(p->lr.kind, IO_HP_SLICE1);
    assert_int_equal(p->lr.line, 10);
    assert_true(p->lr.v[0] == 1e-3);
    assert_int_equal(p->has_schedule, 1);
    assert_string_equal(p->schedule.type, "cosine"); /* From the top level. */
    assert_true(p->schedule.final_div == 100);
    assert_true(p->schedule.pct_start == 0.5);
    assert_true(p->schedule.div == 25);

    /* Each phase's values are checked with its path. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - epochs: 0\n"),
                     NN_ERANGE);
    expect_exact("4: train.phases.0.epochs: must be >= 1 (got '0')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - 3\n"), NN_EINVAL);
    expect_at(4, "train.phases.0");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - {epochs: 1, "
                              "lr: -1}\n"),
                     NN_ERANGE);
    expect_exact("4: train.phases.0.lr: a learning rate must be > 0 (got '-1')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  phases:\n    - {epochs: 1, "
                              "schedule: {type: linear}}\n"),
                     NN_EINVAL);
    expect_at(4, "train.phases.0.schedule.type");

    /* At most IO_MAX_PHASES phases. */
    char many[2048];
    int off = snprintf(many, sizeof many, "model: {arch: cnn}\ntrain:\n  phases:\n");
    for (int i = 0; i <= IO_MAX_PHASES; i++)
        off += snprintf(many + off, sizeof many - (size_t)off, "    - epochs: 1\n");
    assert_int_equal(load(&c, many), NN_ERANGE);
    expect_exact("3: train.phases: has 17 phases; at most 16 (got a list)");
}

/* fastai's Learner.fine_tune(epochs, base_lr=2e-3, freeze_epochs=1, lr_mult=100):
 *   freeze(); fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)
 *   base_lr /= 2; unfreeze(); fit_one_cycle(epochs, slice(base_lr/lr_mult, base_lr),
 *                                           pct_start=0.3, div=5)
 * fit_one_cycle's own defaults: div 25, div_final 1e5, moms (0.95, 0.85, 0.95). */
static void expect_fine_tune(const io_config *c, int epochs, double base_lr, int freeze_epochs,
                             double lr_mult)
{
    int k = 0;
    assert_int_equal(c->train.nphases, freeze_epochs > 0 ? 2 : 1);
    if (freeze_epochs > 0) {
        const io_phase *p = &c->train.phases[k++];
        assert_int_equal(p->epochs, freeze_epochs);
        assert_true(p->has_freeze_to && p->freeze_to == -1); /* freeze() */
        assert_int_equal(p->lr.kind, IO_HP_SLICE1);
        expect_close(p->lr.v[0], base_lr);
        assert_true(p->has_schedule);
        assert_string_equal(p->schedule.type, "one_cycle");
        assert_true(p->schedule.pct_start == 0.99);
        assert_true(p->schedule.div == 25.0);
        assert_true(p->schedule.div_final == 1e5);
        assert_true(p->schedule.moms[0] == 0.95 && p->schedule.moms[1] == 0.85);
    }
    const double halved = base_lr / 2;
    const io_phase *p = &c->train.phases[k];
    assert_int_equal(p->epochs, epochs);
    assert_true(p->has_freeze_to && p->freeze_to == 0); /* unfreeze() */
    assert_int_equal(p->lr.kind, IO_HP_SLICE2);
    expect_close(p->lr.v[0], halved / lr_mult);
    expect_close(p->lr.v[1], halved);
    assert_true(p->has_schedule);
    assert_string_equal(p->schedule.type, "one_cycle");
    assert_true(p->schedule.pct_start == 0.3);
    assert_true(p->schedule.div == 5.0);
    assert_true(p->schedule.div_final == 1e5);
}

static void test_fine_tune(void **state)
{
    (void)state;
    io_config c;
    /* fastai's defaults; the unfrozen phase's epochs default to train.epochs. */
    if (load(&c, "model: {arch: resnet34}\ntrain:\n  preset: fine_tune\n  epochs: 3\n") != 0)
        fail_msg("%s", nn_errmsg());
    assert_string_equal(c.train.preset, "fine_tune");
    expect_fine_tune(&c, 3, 2e-3, 1, 100);
    /* The numbers themselves: slice(1e-5, 1e-3) after the frozen phase at slice(2e-3). */
    expect_close(c.train.phases[1].lr.v[0], 1e-5);
    expect_close(c.train.phases[1].lr.v[1], 1e-3);
    assert_string_equal(c.train.phases[0].name, "frozen");
    assert_string_equal(c.train.phases[1].name, "unfrozen");

    /* Every setting given. */
    if (load(&c, "model: {arch: resnet34}\ntrain:\n  preset: fine_tune\n  fine_tune:\n"
                 "    epochs: 4\n    base_lr: 1e-2\n    freeze_epochs: 2\n    lr_mult: 10\n") != 0)
        fail_msg("%s", nn_errmsg());
    expect_fine_tune(&c, 4, 1e-2, 2, 10);
    expect_close(c.train.phases[1].lr.v[0], 5e-4);

    /* No frozen phase. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  preset: fine_tune\n  fine_tune: "
                              "{freeze_epochs: 0, epochs: 2}\n"),
                     0);
    expect_fine_tune(&c, 2, 2e-3, 0, 100);

    /* The preset from the command line, with an overridden setting. */
    const char *sets[] = {"train.preset=fine_tune", "train.fine_tune.base_lr=4e-3",
                          "train.epochs=5"};
    assert_int_equal(load_sets(&c, MINIMAL, sets, 3), 0);
    expect_fine_tune(&c, 5, 4e-3, 1, 100);

    /* preset: none is no preset. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain: {preset: none}\n"), 0);
    assert_string_equal(c.train.preset, "");
    assert_int_equal(c.train.nphases, 0);

    /* The preset and explicit phases exclude each other. */
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  preset: fine_tune\n  phases:\n"
                              "    - epochs: 1\n"),
                     NN_EINVAL);
    expect_exact("4: train.phases: train.preset 'fine_tune' fills the phases; give either the "
                 "preset or phases, not both (got a list)");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  preset: finetune\n"), NN_EINVAL);
    expect_exact("3: train.preset: must be one of none, fine_tune; did you mean 'fine_tune'? "
                 "(got 'finetune')");
    assert_int_equal(load(&c, "model: {arch: cnn}\ntrain:\n  fine_tune: {lr_mult: 0}\n"),
                     NN_ERANGE);
    expect_exact("3: train.fine_tune.lr_mult: must be > 0 (got '0')");
}

/* ---------------------------------------------------------------------------------------
 * The example configs.
 */
static void test_example_configs(void **state)
{
    (void)state;
    io_config c;
    if (io_config_load(&c, CONFIGS_DIR "/fmnist_cnn.yaml", NULL, 0) != 0)
        fail_msg("%s", nn_errmsg());
    assert_string_equal(c.model.arch, "cnn");
    assert_string_equal(c.data.train, "fashion-mnist");
    assert_int_equal(c.train.nphases, 2);
    assert_int_equal(c.train.phases[0].freeze_to, -1);
    assert_int_equal(c.train.phases[0].epochs, 1);
    assert_int_equal(c.train.phases[1].freeze_to, 0);
    assert_int_equal(c.train.phases[1].lr.kind, IO_HP_SLICE2);

    if (io_config_load(&c, CONFIGS_DIR "/synthetic.yaml", NULL, 0) != 0)
        fail_msg("%s", nn_errmsg());
    assert_string_equal(c.data.train, "synthetic");
    assert_int_equal(c.train.nphases, 0);
}

/* ---------------------------------------------------------------------------------------
 * Large files: loading costs O(n) key comparisons (io_config_key_compares), not O(n^2); no
 * clock is read.
 */
#define MANY_KEYS 100000
/* At most this many key comparisons per key: a hash lookup's few probes, and the checks of a
 * key against its table's (at most 32) known keys. A scan of the keys before each would be
 * MANY_KEYS / 2 per key. */
#define COMPARES_PER_KEY 8

/* A file text: "model: {arch: mlp}", then under `section` (block style) or on one line (flow
 * style) the keys k0..k{n-1}, then `tail` (may be ""); malloc'd. */
static char *many_keys_text(const char *section, int n, int flow, const char *tail)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fprintf(f, "model: {arch: mlp}\n%s:%s", section, flow ? " {" : "\n");
    for (int i = 0; i < n; i++) {
        if (flow)
            fprintf(f, "%sk%d: %d", i ? ", " : "", i, i);
        else
            fprintf(f, "  k%d: %d\n", i, i);
    }
    fprintf(f, "%s%s", flow ? "}\n" : "", tail);
    assert_int_equal(fclose(f), 0);
    return text;
}

/* Loads text, expecting code, within the comparison budget for n keys. */
static void load_linear(const char *text, int n, int code)
{
    io_config c;
    unsigned long before = io_config_key_compares();
    assert_int_equal(load(&c, text), code);
    unsigned long used = io_config_key_compares() - before;
    if (used > (unsigned long)COMPARES_PER_KEY * (unsigned long)n)
        fail_msg("%d keys took %lu key comparisons (at most %d per key): %s", n, used,
                 COMPARES_PER_KEY, nn_errmsg());
}

static void test_many_keys(void **state)
{
    (void)state;
    const int n = MANY_KEYS;
    /* A duplicate after 100,000 keys: found, with both lines. Lines: 1 model, 2 big, then k_i
     * at line 3 + i. */
    char *text = many_keys_text("big", n, 0, "  k50000: again\n");
    load_linear(text, n, NN_EFORMAT);
    expect_exact("%d: big.k50000: duplicate key, first given at line %d (got 'k50000' twice)",
                 3 + n, 3 + 50000);
    free(text);
    /* The same on one line, in flow style. */
    text = many_keys_text("big", n, 1, "");
    text[strlen(text) - 2] = '\0'; /* drop "}\n" */
    char *dup = malloc(strlen(text) + 32);
    assert_non_null(dup);
    sprintf(dup, "%s, k99999: 1}\n", text);
    load_linear(dup, n, NN_EFORMAT);
    expect_exact("2: big.k99999: duplicate key, first given at line 2 (got 'k99999' twice)");
    free(dup);
    free(text);
    /* No duplicate: the tree is built and the first unknown key of a known section named. */
    text = many_keys_text("data", n, 0, "");
    load_linear(text, n, NN_EINVAL);
    expect_at(3, "data.k0");
    free(text);
}

/* 100,000 overrides of distinct keys: each finds its way in O(1) comparisons. */
static void test_many_sets(void **state)
{
    (void)state;
    const int n = MANY_KEYS;
    char **sets = malloc((size_t)n * sizeof *sets);
    assert_non_null(sets);
    for (int i = 0; i < n; i++) {
        sets[i] = malloc(32);
        assert_non_null(sets[i]);
        snprintf(sets[i], 32, "data.k%d=%d", i, i);
    }
    io_config c;
    unsigned long before = io_config_key_compares();
    assert_int_equal(load_sets(&c, "model: {arch: mlp}\n", (const char *const *)sets, n),
                     NN_EINVAL);
    unsigned long used = io_config_key_compares() - before;
    expect_exact("--set data.k0=0: data.k0: unknown key; known keys here: train, valid, dir, "
                 "batch_size, augment, mean, std, synthetic (got '0')");
    if (used > (unsigned long)COMPARES_PER_KEY * (unsigned long)n)
        fail_msg("%d overrides took %lu key comparisons", n, used);
    for (int i = 0; i < n; i++) free(sets[i]);
    free(sets);
}

/* io_config_origin: where a key was given, as a config message starts. */
static void test_origins(void **state)
{
    (void)state;
    io_config c;
    char buf[700];
    const char *sets[] = {"model.input=3x8x8", "model={arch: cnn, classes: 3}"};
    assert_int_equal(load_sets(&c, "model:\n  arch: mlp\n  classes: 4\ndata:\n  batch_size: 8\n",
                               sets, 1), 0);
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "model.classes"), 1);
    char want[800];
    snprintf(want, sizeof want, "%s:3: model.classes", last_path);
    assert_string_equal(buf, want);
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "data.batch_size"), 1);
    snprintf(want, sizeof want, "%s:5: data.batch_size", last_path);
    assert_string_equal(buf, want);
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "model.input"), 1);
    assert_string_equal(buf, "--set model.input=3x8x8: model.input");
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "train.accumulate"), 0);
    snprintf(want, sizeof want, "%s: train.accumulate", last_path);
    assert_string_equal(buf, want);
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "train.phases.0.lr"), NN_EINVAL);
    /* An override of a whole section: its keys come from it. */
    assert_int_equal(load_sets(&c, "model:\n  arch: mlp\n  classes: 4\n", sets + 1, 1), 0);
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "model.classes"), 1);
    assert_string_equal(buf, "--set model={arch: cnn, classes: 3}: model.classes");
    io_config_default(&c, "mlp");
    assert_int_equal(io_config_origin(buf, sizeof buf, &c, "model.arch"), 0);
    assert_string_equal(buf, "model.arch");
}

static int group_setup(void **state)
{
    (void)state;
    return tu_tmpdir_make("strata_test_config");
}

/* checkpoint.* and model.init_from: defaults, values, ranges, and the round trip through the
 * written config. */
static void test_checkpoint_keys(void **state)
{
    (void)state;
    io_config c, back;
    assert_int_equal(load(&c, "model: {arch: cnn}\n"), 0);
    assert_int_equal(c.checkpoint.every_steps, 0);
    assert_int_equal(c.checkpoint.every_epochs, 1);
    assert_int_equal(c.checkpoint.keep, 3);
    assert_string_equal(c.model.init_from, "");

    const char *file = "model:\n  arch: resnet34\n  init_from: runs/a/checkpoints/ckpt-000000100.h5\n"
                       "checkpoint:\n  every_steps: 250\n  every_epochs: 0\n  keep: 5\n";
    assert_int_equal(load(&c, file), 0);
    assert_int_equal(c.checkpoint.every_steps, 250);
    assert_int_equal(c.checkpoint.every_epochs, 0);
    assert_int_equal(c.checkpoint.keep, 5);
    assert_string_equal(c.model.init_from, "runs/a/checkpoints/ckpt-000000100.h5");
    char *text = NULL;
    assert_int_equal(io_config_to_string(&text, &c), 0);
    assert_int_equal(load(&back, text), 0);
    free(text);
    assert_int_equal(back.checkpoint.every_steps, 250);
    assert_int_equal(back.checkpoint.keep, 5);
    assert_string_equal(back.model.init_from, c.model.init_from);

    assert_int_equal(load_set(&c, "model: {arch: cnn}\n", "checkpoint.keep=1"), 0);
    assert_int_equal(c.checkpoint.keep, 1);

    assert_int_equal(load(&c, "model: {arch: cnn}\ncheckpoint:\n  keep: 0\n"), NN_ERANGE);
    expect_at(3, "checkpoint.keep");
    assert_int_equal(load(&c, "model: {arch: cnn}\ncheckpoint:\n  every_steps: -5\n"), NN_ERANGE);
    expect_at(3, "checkpoint.every_steps");
    assert_int_equal(load(&c, "model: {arch: cnn}\ncheckpoint:\n  every_epoch: 2\n"), NN_EINVAL);
    expect_at(3, "checkpoint.every_epoch");
    assert_int_equal(load(&c, "model: {arch: cnn, init_from: [a, b]}\n"), NN_EINVAL);
    expect_at(1, "model.init_from");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_minimal_file),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_wrong_type),
        cmocka_unit_test(test_error_range),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_error_missing),
        cmocka_unit_test(test_error_file),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_errors),
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_hparam_format),
        cmocka_unit_test(test_phases),
        cmocka_unit_test(test_fine_tune),
        cmocka_unit_test(test_example_configs),
        cmocka_unit_test(test_checkpoint_keys),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_many_sets),
        cmocka_unit_test(test_origins),
    };
    return cmocka_run_group_tests(tests, group_setup, tu_group_teardown);
}
