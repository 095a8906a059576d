/* The strata command line. The only place in strata that decides to exit.
 *
 *   strata model NAME [--input CxHxW] [--classes K] [--cut N] [--split A,B,..] [--head KIND]
 *                     [--widths W1,W2,..] [--small-stem] [--freeze-to N]
 *   strata train [--arch NAME] [--epochs N] [--batch-size B] [--lr LR] [--momentum M]
 *                [--wd WD] [--seed S] [--freeze-to N] [--max-batches N] [--data DIR] ...
 *
 * Exit status: 0 success, 1 failure (bad model, bad data), 2 bad command line.
 */
#include "nn/nn.h"
#include "trainer/trainer.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  model NAME   print an architecture as PyTorch prints it, with its layer groups\n"
            "  train        train on Fashion-MNIST on one process (the quickstart's job)\n"
            "  version      print the version\n"
            "\n"
            "model options (also accepted by train):\n"
            "  --input CxHxW      input sample shape (model: default 3x224x224)\n"
            "  --classes K        number of classes (model: default 1000)\n"
            "  --cut N            drop body children from index N on (0 keeps all)\n"
            "  --split A,B,...    increasing body child indices where layer groups start\n"
            "  --head KIND        fastai | linear | original (default: the architecture's)\n"
            "  --widths W1,W2,..  mlp hidden widths (default 1024,1024)\n"
            "  --small-stem       resnet: 3x3 stride-1 stem without max pool (28-32 px images)\n"
            "  --freeze-to N      freeze layer groups [0, N) (negative counts from the end)\n"
            "\n"
            "train options:\n"
            "  --arch NAME        architecture (default cnn); see 'strata model --list'\n"
            "  --epochs N  --batch-size B  --lr LR  --momentum M  --wd WD  --seed S\n"
            "  --max-batches N    stop each epoch after N batches (smoke runs)\n"
            "  --log-every N      batches between progress lines (default 100)\n"
            "  --data DIR         Fashion-MNIST directory (default /usr/share/datasets/fashion-mnist)\n"
            "  --threads N        OpenBLAS threads per process (default 1, or STRATA_BLAS_THREADS)\n");
}

/* Parses a whole decimal integer within [lo, hi] or reports the option and value. */
static int parse_int(int *out, const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "strata: %s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_float(float *out, const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) {
        fprintf(stderr, "strata: %s: '%s' is not a number\n", opt, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

/* "6,12" -> {6, 12}; an empty string is an empty list. */
static int parse_list(int *vals, int *n, int max, const char *opt, const char *s)
{
    *n = 0;
    if (!*s) return 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*n >= max) {
            fprintf(stderr, "strata: %s: more than %d values in '%s'\n", opt, max, s);
            return -1;
        }
        if (parse_int(&vals[*n], opt, tok, INT_MIN, INT_MAX)) return -1;
        (*n)++;
    }
    return 0;
}

static int parse_shape(nn_model_spec *spec, const char *s)
{
    int c, h, w;
    char tail;
    if (sscanf(s, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c <= 0 || h <= 0 || w <= 0) {
        fprintf(stderr, "strata: --input: '%s' is not CxHxW with positive sizes (e.g. 3x224x224)\n",
                s);
        return -1;
    }
    spec->in_c = c;
    spec->in_h = h;
    spec->in_w = w;
    return 0;
}

static int parse_head(int *head, const char *s)
{
    if (!strcmp(s, "fastai"))
        *head = NN_HEAD_FASTAI;
    else if (!strcmp(s, "linear"))
        *head = NN_HEAD_LINEAR;
    else if (!strcmp(s, "original"))
        *head = NN_HEAD_ORIGINAL;
    else {
        fprintf(stderr, "strata: --head: unknown head '%s' (fastai, linear, original)\n", s);
        return -1;
    }
    return 0;
}

/* Options common to model and train. Returns 1 if consumed (with its value), 0 if not
 * a model option, -1 on error. */
static int model_option(nn_model_spec *spec, int *freeze_to, const char *opt, const char *val)
{
    if (!strcmp(opt, "--input")) return parse_shape(spec, val) ? -1 : 1;
    if (!strcmp(opt, "--classes")) return parse_int(&spec->classes, opt, val, 1, 1 << 24) ? -1 : 1;
    if (!strcmp(opt, "--cut")) return parse_int(&spec->cut, opt, val, 0, INT_MAX) ? -1 : 1;
    if (!strcmp(opt, "--split"))
        return parse_list(spec->split, &spec->nsplit, NN_MAX_GROUPS - 2, opt, val) ? -1 : 1;
    if (!strcmp(opt, "--head")) return parse_head(&spec->head, val) ? -1 : 1;
    if (!strcmp(opt, "--widths"))
        return parse_list(spec->widths, &spec->nwidths, NN_MAX_WIDTHS, opt, val) ? -1 : 1;
    if (!strcmp(opt, "--freeze-to"))
        return parse_int(freeze_to, opt, val, -NN_MAX_GROUPS, NN_MAX_GROUPS) ? -1 : 1;
    return 0;
}

/* Splits "--key=value" or "--key value"; returns the value or NULL (message printed). */
static const char *option_value(int argc, char **argv, int *i, char *key, size_t keylen)
{
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    if (eq) {
        snprintf(key, keylen, "%.*s", (int)(eq - a), a);
        return eq + 1;
    }
    snprintf(key, keylen, "%s", a);
    if (*i + 1 >= argc) {
        fprintf(stderr, "strata: option %s needs a value\n", a);
        return NULL;
    }
    return argv[++*i];
}

static int cmd_model(int argc, char **argv)
{
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.skip_init = 1; /* printing needs the structure, not random weights */
    int freeze_to = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--list")) {
            for (int k = 0; nn_zoo_names[k]; k++) printf("%s\n", nn_zoo_names[k]);
            return 0;
        }
        if (!strcmp(a, "--small-stem")) {
            spec.small_stem = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (spec.arch) {
                fprintf(stderr, "strata model: unexpected argument '%s' (model is '%s')\n", a,
                        spec.arch);
                return EXIT_USAGE;
            }
            spec.arch = a;
            continue;
        }
        char key[64];
        const char *val = option_value(argc, argv, &i, key, sizeof key);
        if (!val) return EXIT_USAGE;
        int r = model_option(&spec, &freeze_to, key, val);
        if (r < 0) return EXIT_USAGE;
        if (r == 0) {
            fprintf(stderr, "strata model: unknown option '%s'\n", key);
            return EXIT_USAGE;
        }
    }
    if (!spec.arch) {
        fprintf(stderr, "strata model: missing model NAME (see 'strata model --list')\n");
        return EXIT_USAGE;
    }
    nn_rng rng;
    nn_rng_seed(&rng, 0);
    nn_model *m = NULL;
    int rc = nn_model_init(&m, &spec, &rng);
    if (!rc && freeze_to) {
        int warn = 0;
        rc = nn_model_freeze_to(m, freeze_to, &warn);
        if (!rc && warn)
            fprintf(stderr, "strata: warning: --freeze-to %d has no effect: %s has one layer group\n",
                    freeze_to, spec.arch);
    }
    if (!rc) rc = nn_model_print(m, stdout);
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "strata model: %s\n", nn_errmsg());
        return 1;
    }
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    trainer_fit_opts o;
    trainer_fit_opts_default(&o);
    int threads = 0;
    long long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--small-stem")) {
            o.spec.small_stem = 1;
            continue;
        }
        if (a[0] != '-') {
            fprintf(stderr, "strata train: unexpected argument '%s'\n", a);
            return EXIT_USAGE;
        }
        char key[64];
        const char *val = option_value(argc, argv, &i, key, sizeof key);
        if (!val) return EXIT_USAGE;
        int r = model_option(&o.spec, &o.freeze_to, key, val), bad = 0;
        if (r < 0) return EXIT_USAGE;
        if (r == 1) continue;
        if (!strcmp(key, "--arch"))
            o.spec.arch = val;
        else if (!strcmp(key, "--epochs"))
            bad = parse_int(&o.epochs, key, val, 1, 100000);
        else if (!strcmp(key, "--batch-size"))
            bad = parse_int(&o.batch_size, key, val, 1, 1 << 20);
        else if (!strcmp(key, "--lr"))
            bad = parse_float(&o.lr, key, val);
        else if (!strcmp(key, "--momentum"))
            bad = parse_float(&o.momentum, key, val);
        else if (!strcmp(key, "--wd"))
            bad = parse_float(&o.wd, key, val);
        else if (!strcmp(key, "--max-batches"))
            bad = parse_int(&o.max_batches, key, val, 0, INT_MAX);
        else if (!strcmp(key, "--log-every"))
            bad = parse_int(&o.log_every, key, val, 0, INT_MAX);
        else if (!strcmp(key, "--threads"))
            bad = parse_int(&threads, key, val, 1, 1024);
        else if (!strcmp(key, "--data"))
            o.data_dir = val;
        else if (!strcmp(key, "--seed")) {
            int s32;
            bad = parse_int(&s32, key, val, 0, INT_MAX);
            seed = s32;
        } else {
            fprintf(stderr, "strata train: unknown option '%s'\n", key);
            return EXIT_USAGE;
        }
        if (bad) return EXIT_USAGE;
    }
    o.seed = (uint64_t)seed;
    nn_blas_threads(threads);
    int rc = trainer_fit(&o, stdout, NULL);
    if (rc) {
        fprintf(stderr, "strata train: %s\n", nn_errmsg());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "model")) {
        nn_blas_threads(0);
        return cmd_model(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("strata %s\n", STRATA_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "strata: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
