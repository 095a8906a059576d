/* The strata command line. The only place in strata that decides to exit.
 *
 *   strata model NAME [--input CxHxW] [--classes K] [--cut N] [--split A,B,..] [--head KIND]
 *                     [--widths W1,W2,..] [--small-stem] [--freeze-to N]
 *   strata train CONFIG [--set key.path=value]...        (under mpirun or alone)
 *   strata eval CONFIG [--weights PATH] [--set ...]
 *   strata lr-find CONFIG [--start LR] [--end LR] [--num-it N] [--set ...]
 *   strata data convert --images IDX --labels IDX --out FILE.h5
 *   strata inspect CKPT [--verify]
 *   strata sweep plan SWEEP | strata sweep report DIR
 *   strata train CONFIG --sweep SWEEP [--sweep-index I]
 *
 * Exit status: 0 success, 1 failure (bad config, model, data; on every rank), 2 bad command
 * line, 75 stopped on SIGTERM/SIGUSR1 after saving a checkpoint (train: resume with
 * --resume auto).
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "nn/nn.h"
#include "trainer/trainer.h"

#include "comm/comm.h"
#include "io/io.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2
/* Stopped on SIGTERM or SIGUSR1 after saving a checkpoint: run again with --resume auto
 * (sysexits' EX_TEMPFAIL: a temporary failure, try again). */
#define EXIT_PREEMPTED 75

/* The one piece of process state the CLI keeps: the number of the signal that asked
 * training to stop (0: none), set by the stop thread and read by the training loop after
 * each step through trainer_train_opts.stop_signal. */
static volatile sig_atomic_t stop_signal;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "stop_signal is read as an int");

/* SIGTERM and SIGUSR1 are blocked in every thread (before MPI_Init, so MPI's own threads
 * inherit the mask) and taken by one thread of their own with sigwait(). A handler runs on
 * whichever thread the kernel picks; under Open MPI 4.1 with 2 ranks that corrupted the heap
 * in about one preempted run in six (train_preempt), and no system call of training, MPI's
 * included, sees EINTR now. */
static sigset_t stop_set;

/* Rank 0's run.dir/status once the trainer has opened this run's directory ("" before), for
 * the stop thread: it says "interrupted" there when a signal ends the process at once. */
static char stop_status_path[1100];
static int stop_status_ready;
static pthread_mutex_t stop_status_lock = PTHREAD_MUTEX_INITIALIZER;

/* SIGTERM, SIGINT (Ctrl-C) and SIGUSR1 ask for a checkpoint and a stop; SIGUSR2 (what
 * launch/strata-mpirun sends on a second Ctrl-C, mpirun forwarding it) stops at once. */
static void stop_signals_block(void)
{
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGUSR1);
    sigaddset(&stop_set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
}

/* trainer_train_opts.run_opened: from now on the stop thread may write run_dir/status; NULL:
 * no more (the run writes its final status, which a signal must not overwrite). */
static void stop_status_arm(const char *run_dir)
{
    pthread_mutex_lock(&stop_status_lock);
    if (run_dir) snprintf(stop_status_path, sizeof stop_status_path, "%s/status", run_dir);
    stop_status_ready = run_dir != NULL;
    pthread_mutex_unlock(&stop_status_lock);
}

/* The stop thread's word in run.dir/status (rank 0, while the run's directory is open). */
static void stop_status(const char *fmt, int sig)
{
    char line[256];
    snprintf(line, sizeof line, fmt, sig, strsignal(sig));
    pthread_mutex_lock(&stop_status_lock);
    if (stop_status_ready) (void)trainer_status_write(stop_status_path, line); /* best effort */
    pthread_mutex_unlock(&stop_status_lock);
}

/* Commands other than train: the signals' default action again (terminate). */
static void stop_signals_default(void)
{
    pthread_sigmask(SIG_UNBLOCK, &stop_set, NULL);
}

/* The stop thread: the first signal asks training to stop after the step that all ranks
 * agree on, with a checkpoint (status "stopping" until the trainer says "preempted"); a
 * second SIGTERM or SIGINT, or any SIGUSR2, ends the process now, as the signal's default
 * action does (exit status 128 + the signal), with status "interrupted". */
static void *stop_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&stop_set, &sig)) continue;
        if (sig == SIGUSR2 || (stop_signal && sig != SIGUSR1)) {
            stop_status("interrupted: signal %d (%s) ended the run at once, without a checkpoint of the current step; continue from the newest with --resume auto",
                        sig);
            signal(sig, SIG_DFL);
            sigset_t now;
            sigemptyset(&now);
            sigaddset(&now, sig);
            pthread_sigmask(SIG_UNBLOCK, &now, NULL);
            raise(sig); /* this thread, the signal unblocked: the process ends */
        }
        if (!stop_signal)
            stop_status("stopping: signal %d (%s): saving a checkpoint after the current step (the same signal again stops at once)",
                        sig);
        stop_signal = sig;
    }
    return NULL;
}

/* Starts the stop thread; -1 with nn_errmsg() set when it cannot be. */
static int stop_thread_start(void)
{
    pthread_t t;
    int e = pthread_create(&t, NULL, stop_thread, NULL);
    if (e) return nn_err(NN_ESTATE, "cannot start the signal thread: %s", strerror(e));
    pthread_detach(t);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: strata COMMAND [options]\n"
            "\n"
            "commands:\n"
            "  model NAME           print an architecture as PyTorch prints it, with its layer groups\n"
            "  train CONFIG         train as the YAML config says (alone or under mpirun -np N)\n"
            "  eval CONFIG          evaluate run.dir/weights.h5 (or --weights PATH) on data.valid\n"
            "  lr-find CONFIG       fastai's learning-rate finder; writes lr_find.csv and .png\n"
            "  data convert         --images IDX --labels IDX --out FILE.h5: IDX to strata's HDF5\n"
            "  sweep plan SWEEP     the runs of a sweep file (index and overrides) and their count\n"
            "  sweep report DIR     every run of a sweep: report.csv, a table best first, heatmap.png, curves.png\n"
            "  inspect CKPT         a checkpoint's groups, hyperparameters, parameters and train state;\n"
            "                       --verify reads every dataset and checks its checksum\n"
            "  version              print the version\n"
            "\n"
            "train, eval and lr-find options:\n"
            "  --set key.path=value override a config key (repeatable), e.g. --set groups.lr='slice(1e-4,1e-2)'\n"
            "  --no-overlap         reduce gradients after backward (same as --set comm.overlap=false)\n"
            "  --resume PATH|auto   train: continue from a checkpoint (auto: the newest in run.dir/checkpoints,\n"
            "                       or from the beginning when there is none)\n"
            "  --regroup            train: resume into the config's layer groups when the checkpoint's differ\n"
            "  --stop-after N       train: save a checkpoint and stop after global step N\n"
            "  --sweep SWEEP        train: run one run of a sweep file, in its directory DIR/run-III\n"
            "  --sweep-index I      train: which run (0-based; default $SLURM_ARRAY_TASK_ID)\n"
            "  --threads N          OpenBLAS threads per process (default 1, or STRATA_BLAS_THREADS)\n"
            "  --weights PATH       eval: the weights file (default run.dir/weights.h5)\n"
            "  --start LR --end LR --num-it N   lr-find: the sweep (default 1e-7, 10, 100)\n"
            "\n"
            "model options:\n"
            "  --input CxHxW      input sample shape (default 3x224x224)\n"
            "  --classes K        number of classes (default 1000)\n"
            "  --cut N            drop body children from index N on (0 keeps all)\n"
            "  --split A,B,...    increasing body child indices where layer groups start\n"
            "  --head KIND        fastai | linear | original (default: the architecture's)\n"
            "  --widths W1,W2,..  mlp hidden widths (default 1024,1024)\n"
            "  --small-stem       resnet: 3x3 stride-1 stem without max pool (28-32 px images)\n"
            "  --freeze-to N      freeze layer groups [0, N) (negative counts from the end)\n"
            "  --params           list every parameter: name, layer group, shape (instead of the model)\n"
            "\n"
            "Config keys: docs/config.md. Exit status: 0 ok, 1 failure, 2 bad command line,\n"
            "75 train stopped on SIGTERM or SIGUSR1 after saving a checkpoint (resume with --resume auto).\n");
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

/* --params: one line per tensor, "param NAME GROUP D0xD1.." and "buffer NAME NUMEL". */
static int print_param(void *ud, const char *name, nn_param *p)
{
    printf("param %s %d ", name, p->group);
    for (int d = 0; d < p->ndim; d++) printf("%s%d", d ? "x" : "", p->shape[d]);
    printf("\n");
    return 0;
}

static int print_buffer(void *ud, const char *name, nn_buffer *b)
{
    printf("buffer %s %zu\n", name, b->numel);
    return 0;
}

static int cmd_model(int argc, char **argv)
{
    nn_model_spec spec;
    nn_model_spec_default(&spec);
    spec.skip_init = 1; /* printing needs the structure, not random weights */
    int freeze_to = 0, list_params = 0;
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
        if (!strcmp(a, "--params")) {
            list_params = 1;
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
    if (!rc) rc = list_params ? nn_model_visit_params(m, print_param, NULL) : nn_model_print(m, stdout);
    if (!rc && list_params) rc = nn_model_visit_buffers(m, print_buffer, NULL);
    nn_model_free(m);
    if (rc) {
        fprintf(stderr, "strata model: %s\n", nn_errmsg());
        return 1;
    }
    return 0;
}

/* The options shared by train, eval and lr-find: CONFIG, --set (repeatable), --threads, and
 * the command's own (--weights; --start, --end, --num-it). */
typedef struct {
    const char *config;
    const char *sets[256];
    int nsets;
    int threads;
    const char *weights;
    trainer_lr_find_opts lrf;
    trainer_train_opts train;
    const char *sweep;
    long sweep_index; /* -1: from SLURM_ARRAY_TASK_ID */
} run_args;

static int parse_run_args(run_args *a, const char *cmd, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->lrf = (trainer_lr_find_opts){1e-7, 10.0, 100, NULL};
    a->sweep_index = -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(s, "--regroup") && !strcmp(cmd, "train")) {
            a->train.regroup = 1;
            continue;
        }
        if (!strcmp(s, "--no-overlap")) { /* shorthand for --set comm.overlap=false */
            if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0])) return -1;
            a->sets[a->nsets++] = "comm.overlap=false";
            continue;
        }
        if (s[0] != '-') {
            if (a->config) {
                fprintf(stderr, "strata %s: unexpected argument '%s' (config is '%s')\n", cmd, s,
                        a->config);
                return -1;
            }
            a->config = s;
            continue;
        }
        char key[64];
        const char *val = option_value(argc, argv, &i, key, sizeof key);
        if (!val) return -1;
        float f;
        if (!strcmp(key, "--set")) {
            if (a->nsets == (int)(sizeof a->sets / sizeof a->sets[0])) {
                fprintf(stderr, "strata %s: too many --set options\n", cmd);
                return -1;
            }
            a->sets[a->nsets++] = val;
        } else if (!strcmp(key, "--threads")) {
            if (parse_int(&a->threads, key, val, 1, 1024)) return -1;
        } else if (!strcmp(key, "--resume") && !strcmp(cmd, "train")) {
            if (!*val) {
                fprintf(stderr, "strata train: --resume: expected a checkpoint path or 'auto'\n");
                return -1;
            }
            a->train.resume = val;
        } else if (!strcmp(key, "--sweep") && !strcmp(cmd, "train")) {
            a->sweep = val;
        } else if (!strcmp(key, "--sweep-index") && !strcmp(cmd, "train")) {
            int n;
            if (parse_int(&n, key, val, 0, INT_MAX)) return -1;
            a->sweep_index = n;
        } else if (!strcmp(key, "--stop-after") && !strcmp(cmd, "train")) {
            int n;
            if (parse_int(&n, key, val, 1, INT_MAX)) return -1;
            a->train.stop_after = n;
        } else if (!strcmp(key, "--weights") && !strcmp(cmd, "eval")) {
            a->weights = val;
        } else if (!strcmp(key, "--start") && !strcmp(cmd, "lr-find")) {
            if (parse_float(&f, key, val) || !(f > 0)) return -1;
            a->lrf.start = f;
        } else if (!strcmp(key, "--end") && !strcmp(cmd, "lr-find")) {
            if (parse_float(&f, key, val) || !(f > 0)) return -1;
            a->lrf.end = f;
        } else if (!strcmp(key, "--num-it") && !strcmp(cmd, "lr-find")) {
            if (parse_int(&a->lrf.num_it, key, val, 2, 100000)) return -1;
        } else {
            fprintf(stderr, "strata %s: unknown option '%s'\n", cmd, key);
            return -1;
        }
    }
    if (!a->config && !a->sweep) {
        fprintf(stderr, "strata %s: missing CONFIG (a YAML file; see docs/config.md)\n", cmd);
        return -1;
    }
    if (a->sweep_index >= 0 && !a->sweep) {
        fprintf(stderr, "strata %s: --sweep-index needs --sweep SWEEP\n", cmd);
        return -1;
    }
    if (a->train.regroup && !a->train.resume) {
        fprintf(stderr, "strata %s: --regroup needs --resume\n", cmd);
        return -1;
    }
    if (a->lrf.start >= a->lrf.end) {
        fprintf(stderr, "strata %s: --start %g must be below --end %g\n", cmd, a->lrf.start,
                a->lrf.end);
        return -1;
    }
    return 0;
}

/* The directory of this executable's source tree's launch/ scripts: next to the binary's
 * build directory (build/strata -> launch/), or STRATA_LAUNCH_DIR. */
static void launch_script(char *out, size_t len, const char *argv0, const char *name)
{
    const char *env = getenv("STRATA_LAUNCH_DIR");
    if (env) {
        snprintf(out, len, "%s/%s", env, name);
        return;
    }
    snprintf(out, len, "%s/launch/%s", STRATA_SOURCE_DIR, name);
    (void)argv0;
}


/* JSON string escaping for sweep.json (keys and YAML values are plain text). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* train --sweep: loads the sweep, picks the run (--sweep-index or SLURM_ARRAY_TASK_ID),
 * and fills *sets (malloc'd, as many as the sweep's set: holds; the caller frees it) with the
 * sweep's overrides, the command line's, then run.dir; *json gets the text of
 * run.dir/sweep.json (malloc'd). */
static int sweep_setup(io_sweep *sw, const run_args *a, const char ***setsp, int *nsets,
                       char *dirset, size_t dlen, char **json)
{
    long i = a->sweep_index;
    if (i < 0) {
        const char *env = getenv("SLURM_ARRAY_TASK_ID");
        char *end;
        if (!env || !*env)
            return nn_err(NN_EINVAL, "--sweep %s needs --sweep-index I or SLURM_ARRAY_TASK_ID (a job array task)", a->sweep);
        errno = 0;
        i = strtol(env, &end, 10);
        if (errno || *end || i < 0)
            return nn_err(NN_EINVAL, "SLURM_ARRAY_TASK_ID '%s' is not a run index", env);
    }
    int rc = io_sweep_load(sw, a->sweep);
    int n = 0, idx[IO_SWEEP_MAX_KEYS];
    const char **sets = NULL;
    if (!rc && !(sets = *setsp = malloc(((size_t)sw->nset + sw->nkeys + a->nsets + 1) *
                                        sizeof *sets)))
        rc = nn_err(NN_ENOMEM, "out of memory");
    if (!rc) rc = io_sweep_run(sw, i, sets, &n, idx);
    if (rc) return rc;
    for (int k = 0; k < a->nsets; k++) sets[n++] = a->sets[k];
    char dir[600];
    io_sweep_run_dir(dir, sizeof dir, sw, i);
    snprintf(dirset, dlen, "run.dir=\"%s\"", dir);
    sets[n++] = dirset;
    *nsets = n;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return nn_err(NN_ENOMEM, "out of memory");
    fprintf(f, "{\"index\": %ld, \"runs\": %ld, \"sweep\": ", i, sw->nruns);
    json_str(f, sw->path);
    fprintf(f, ", \"overrides\": {");
    for (int k = 0; k < sw->nkeys; k++) {
        fprintf(f, "%s", k ? ", " : "");
        json_str(f, sw->keys[k]);
        fprintf(f, ": ");
        json_str(f, sw->texts[k][idx[k]]);
    }
    fprintf(f, "}}\n");
    if (fclose(f)) return nn_err(NN_ENOMEM, "out of memory");
    *json = text;
    return 0;
}

/* strata sweep plan SWEEP | strata sweep report DIR */
static int cmd_sweep(int argc, char **argv, char *argv0)
{
    if (argc != 3 || (strcmp(argv[1], "plan") && strcmp(argv[1], "report"))) {
        fprintf(stderr, "strata sweep: expected 'plan SWEEP' or 'report DIR'\n");
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "report")) {
        char script[1024];
        launch_script(script, sizeof script, argv0, "sweep_report.py");
        char *const args[] = {"/usr/bin/python3", script, argv[2], NULL};
        execv(args[0], args);
        fprintf(stderr, "strata sweep report: cannot run %s %s: %s (is python3 installed?)\n", args[0], script,
                strerror(errno));
        return 1;
    }
    io_sweep sw;
    int rc = io_sweep_load(&sw, argv[2]);
    if (rc) {
        fprintf(stderr, "strata sweep plan: %s\n", nn_errmsg());
        return 1;
    }
    const char **sets = malloc(((size_t)sw.nset + sw.nkeys + 1) * sizeof *sets);
    if (!sets) {
        fprintf(stderr, "strata sweep plan: out of memory\n");
        io_sweep_free(&sw);
        return 1;
    }
    /* Every run's overrides are checked against the base config (when the sweep names one)
     * before anything is printed. */
    for (long i = 0; i < sw.nruns && !rc && sw.config[0]; i++) {
        int n;
        io_config cfg;
        rc = io_sweep_run(&sw, i, sets, &n, NULL);
        if (!rc) rc = trainer_config_load(&cfg, sw.config, sets, n);
        if (rc) rc = nn_err_wrap(rc, "run %ld", i);
    }
    if (rc) {
        fprintf(stderr, "strata sweep plan: %s\n", nn_errmsg());
        io_sweep_free(&sw);
        free(sets);
        return 1;
    }
    printf("# sweep %s: %ld run(s) in %s/run-NNN", sw.path, sw.nruns, sw.dir);
    if (sw.config[0]) printf(", base config %s (every run's overrides checked against it)", sw.config);
    printf("\n");
    for (int k = 0; k < sw.nset; k++) printf("# every run: --set %s\n", sw.set[k]);
    for (long i = 0; i < sw.nruns; i++) {
        int n;
        io_sweep_run(&sw, i, sets, &n, NULL);
        printf("%ld", i);
        for (int k = sw.nset; k < n; k++) printf("  %s", sets[k]);
        printf("\n");
    }
    printf("# %ld run(s)\n", sw.nruns);
    io_sweep_free(&sw);
    free(sets);
    return rc ? 1 : 0;
}

/* ---- the start-up agreement (trainer_agree) ----------------------------------------- */

/* The first collective of train, eval and lr-find: every rank runs the same subcommand of
 * the same build with the same options that change what runs (and so which collectives):
 * --resume, --regroup, --stop-after, --sweep, --sweep-index, eval's --weights, lr-find's
 * --start, --end and --num-it. --threads and CONFIG's path may differ (the config's content is
 * agreed on next); --set and --no-overlap are in the config. */
static int run_agree(comm *c, const char *cmd, const run_args *a)
{
    char stop[32], idx[64], lrf[3][32];
    snprintf(stop, sizeof stop, "%ld", a->train.stop_after);
    if (a->sweep_index >= 0)
        snprintf(idx, sizeof idx, "%ld", a->sweep_index);
    else
        snprintf(idx, sizeof idx, "$SLURM_ARRAY_TASK_ID (%.40s)",
                 getenv("SLURM_ARRAY_TASK_ID") ? getenv("SLURM_ARRAY_TASK_ID") : "unset");
    snprintf(lrf[0], sizeof lrf[0], "%g", a->lrf.start);
    snprintf(lrf[1], sizeof lrf[1], "%g", a->lrf.end);
    snprintf(lrf[2], sizeof lrf[2], "%d", a->lrf.num_it);
    trainer_agree_item it[TRAINER_AGREE_MAX] = {{.name = "the subcommand", .value = cmd},
                                          {.name = "the strata build", .value = trainer_build_id()}};
    int n = 2;
    if (!strcmp(cmd, "train")) {
        it[n++] = (trainer_agree_item){.name = "--resume", .value = a->train.resume};
        it[n++] = (trainer_agree_item){.name = "--regroup", .value = a->train.regroup ? "yes" : "no"};
        it[n++] = (trainer_agree_item){.name = "--stop-after", .value = a->train.stop_after ? stop : NULL};
        it[n++] = (trainer_agree_item){.name = "--sweep", .value = a->sweep};
        if (a->sweep) it[n++] = (trainer_agree_item){.name = "--sweep-index", .value = idx};
    } else if (!strcmp(cmd, "eval")) {
        it[n++] = (trainer_agree_item){.name = "--weights", .value = a->weights ? a->weights : "run.dir/weights.h5"};
    } else {
        it[n++] = (trainer_agree_item){.name = "--start", .value = lrf[0]};
        it[n++] = (trainer_agree_item){.name = "--end", .value = lrf[1]};
        it[n++] = (trainer_agree_item){.name = "--num-it", .value = lrf[2]};
    }
    return trainer_agree(c, it, n);
}

/* Next, once loaded: the effective config (its first differing line is named). */
static int config_agree(comm *c, const io_config *cfg)
{
    char *text = NULL;
    int rc = comm_agree(c, io_config_to_string(&text, cfg), NULL);
    const trainer_agree_item it = {"the effective config", NULL, text, text ? strlen(text) : 0};
    if (!rc) rc = trainer_agree(c, &it, 1);
    free(text);
    return rc;
}

/* The world size the launcher gave this process: Open MPI's mpirun, a PMI launcher (MPICH's,
 * srun --mpi=pmi2) or srun --mpi=pmix; 1 without one. A command that uses no MPI must still
 * join the job's start-up agreement when there are other ranks, or they wait for it in
 * MPI_Init for ever. */
static long launched_world_size(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v || !*v) v = getenv("PMI_SIZE");
    if ((!v || !*v) && getenv("PMIX_RANK")) v = getenv("SLURM_STEP_NUM_TASKS");
    return v && *v ? strtol(v, NULL, 10) : 1;
}

/* A command without MPI run as one rank of several: joins the agreement on the subcommand
 * (the other ranks run this command too, or every rank fails) and leaves MPI. */
static int join_agreement(const char *cmd)
{
    comm *c = NULL;
    int rc = comm_init(&c, NULL, NULL);
    const trainer_agree_item it = {.name = "the subcommand", .value = cmd};
    if (!rc) rc = trainer_agree(c, &it, 1);
    if (rc) fprintf(stderr, "strata %s: rank %d: %s\n", cmd, c ? comm_rank(c) : -1, nn_errmsg());
    comm_free(c);
    return rc;
}

static int cmd_run(const char *cmd, int argc, char **argv, char *argv0)
{
    run_args a;
    if (parse_run_args(&a, cmd, argc, argv)) return EXIT_USAGE;
    comm *c = NULL;
    stop_signals_block();
    if (!strcmp(cmd, "train") ? stop_thread_start() : (stop_signals_default(), 0)) {
        fprintf(stderr, "strata %s: %s\n", cmd, nn_errmsg());
        return 1;
    }
    if (comm_init(&c, NULL, NULL)) {
        fprintf(stderr, "strata %s: %s\n", cmd, nn_errmsg());
        return 1;
    }
    nn_blas_threads(a.threads);
    const int rank = comm_rank(c);
    /* The first collective, before any rank acts on its own options. A rank of another
     * subcommand runs no collective after it: neither may this one, when it fails. */
    int rc = run_agree(c, cmd, &a), agreed = rc == 0;
    io_config cfg;
    /* A sweep run: the sweep's overrides first, then the command line's, then its run.dir. */
    io_sweep sw;
    memset(&sw, 0, sizeof sw);
    const char **sets = a.sets, **all = NULL;
    int nsets = a.nsets, preempted = 0;
    char dirset[700], *json = NULL;
    if (!rc && a.sweep) {
        rc = sweep_setup(&sw, &a, &all, &nsets, dirset, sizeof dirset, &json);
        sets = all;
        /* The config is the sweep's (what `sweep plan` checked) unless CONFIG names the same
         * file. */
        if (!rc && !a.config && !sw.config[0])
            rc = nn_err(NN_EINVAL, "--sweep %s: the sweep file names no config: give CONFIG or add config: to it", a.sweep);
        if (!rc && !a.config) a.config = sw.config;
        if (!rc && sw.config[0]) {
            char *x = realpath(a.config, NULL), *y = realpath(sw.config, NULL);
            if (x && y && strcmp(x, y))
                rc = nn_err(NN_EINVAL, "CONFIG %s is not the sweep's config %s (%s): train a sweep with its own config, or drop CONFIG",
                            a.config, sw.config, a.sweep);
            free(x);
            free(y);
        }
    }
    if (!rc) rc = trainer_config_load(&cfg, a.config, sets, nsets);
    if (agreed) rc = comm_agree(c, rc, NULL);
    if (!rc) rc = config_agree(c, &cfg);
    if (!rc && rank == 0 && !strcmp(cmd, "train")) {
        printf("# effective config (%s%s)\n", a.config, a.nsets ? " with --set overrides" : "");
        io_config_write(&cfg, stdout);
        fflush(stdout);
    }
    if (!rc) {
        if (!strcmp(cmd, "train")) {
            trainer_train_result res;
            a.train.stop_signal = (const volatile int *)&stop_signal;
            a.train.run_opened = stop_status_arm;
            a.train.sweep_json = json;
            rc = trainer_train_ex(&cfg, c, stdout, &a.train, &res);
            if (!rc && res.signal) preempted = 1;
        } else if (!strcmp(cmd, "eval")) {
            double loss, acc;
            rc = trainer_eval(&cfg, c, a.weights, stdout, &loss, &acc);
        } else {
            char script[1024];
            launch_script(script, sizeof script, argv0, "plot_lr_find.py");
            a.lrf.plot_script = script;
            double s;
            rc = trainer_lr_find(&cfg, c, stdout, &a.lrf, &s);
        }
    }
    if (rc) fprintf(stderr, "strata %s: rank %d: %s\n", cmd, rank, nn_errmsg());
    io_sweep_free(&sw);
    free(all);
    free(json);
    comm_free(c);
    return rc ? 1 : preempted ? EXIT_PREEMPTED : 0;
}

static int cmd_data(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "convert")) {
        fprintf(stderr, "strata data: expected 'convert' (strata data convert --images IDX --labels IDX --out FILE.h5)\n");
        return EXIT_USAGE;
    }
    const char *images = NULL, *labels = NULL, *out = NULL;
    for (int i = 2; i < argc; i++) {
        char key[64];
        const char *val = option_value(argc, argv, &i, key, sizeof key);
        if (!val) return EXIT_USAGE;
        if (!strcmp(key, "--images"))
            images = val;
        else if (!strcmp(key, "--labels"))
            labels = val;
        else if (!strcmp(key, "--out"))
            out = val;
        else {
            fprintf(stderr, "strata data convert: unknown option '%s'\n", key);
            return EXIT_USAGE;
        }
    }
    if (!images || !labels || !out) {
        fprintf(stderr, "strata data convert: --images, --labels and --out are all required\n");
        return EXIT_USAGE;
    }
    if (io_data_convert(out, images, labels)) {
        fprintf(stderr, "strata data convert: %s\n", nn_errmsg());
        return 1;
    }
    printf("strata: wrote %s\n", out);
    return 0;
}


static void print_count(FILE *f, size_t n)
{
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%zu", n);
    for (int i = 0; i < len; i++) {
        fputc(buf[i], f);
        if ((len - i - 1) % 3 == 0 && i < len - 1) fputc(',', f);
    }
}

/* strata inspect CKPT [--verify]: what a checkpoint holds, as a table. */
static int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    int verify = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--verify"))
            verify = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "strata inspect: unknown option '%s' (strata inspect CKPT [--verify])\n", argv[i]);
            return EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "strata inspect: unexpected argument '%s' (checkpoint is '%s')\n", argv[i], path);
            return EXIT_USAGE;
        } else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "strata inspect: missing CKPT (a checkpoint file, e.g. runs/NAME/checkpoints/ckpt-000000100.h5)\n");
        return EXIT_USAGE;
    }
    io_ckpt_reader *rd = NULL;
    if (io_ckpt_open(&rd, path)) {
        fprintf(stderr, "strata inspect: %s\n", nn_errmsg());
        return 1;
    }
    const io_ckpt *ck = io_ckpt_info(rd);
    size_t total = 0;
    for (int g = 0; g < ck->ngroups; g++) total += ck->groups[g].numel;
    printf("checkpoint %s\n", path);
    printf("  format %s version %d, strata %s, HDF5 %s, created %s, world size %d, kind %s\n",
           IO_CKPT_FORMAT, IO_CKPT_VERSION, ck->strata_version, ck->hdf5_version, ck->created,
           ck->world_size, ck->kind);
    printf("  model %s, input %dx%dx%d, %d classes, cut %d, %d layer groups, ", ck->arch,
           ck->input[0], ck->input[1], ck->input[2], ck->classes, ck->cut, ck->ngroups);
    print_count(stdout, total);
    printf(" parameters, %d BatchNorm buffers\n", ck->nbuffers);
    printf("  group  name    children  frozen  lr          wd          momentum  tensors  parameters\n");
    for (int g = 0; g < ck->ngroups; g++) {
        const io_ckpt_group *gr = &ck->groups[g];
        char ch[32];
        if (gr->first < 0)
            snprintf(ch, sizeof ch, "head");
        else
            snprintf(ch, sizeof ch, "%d-%d", gr->first, gr->last);
        printf("  %5d  %-6s  %-8s  %-6s  %-10.4g  %-10.4g  %-8.4g  %7d  ", g, gr->name, ch,
               gr->frozen ? "yes" : "no", gr->lr, gr->wd, gr->momentum, gr->nparams);
        print_count(stdout, gr->numel);
        printf("\n");
    }
    if (ck->opt_type[0]) {
        printf("  optimizer %s%s, state per parameter:", ck->opt_type,
               ck->nesterov ? " (nesterov)" : "");
        for (int s = 0; s < ck->nstates; s++) printf(" %s", ck->state_names[s]);
        printf("; steps per group:");
        for (int g = 0; g < ck->ngroups; g++) printf(" %ld", ck->opt_step[g]);
        printf("\n");
    } else {
        printf("  optimizer: none (weights only)\n");
    }
    if (ck->train.has) {
        const io_ckpt_train *t = &ck->train;
        printf("  train state: %s; phase %d, epoch %d (%d done in the phase), step %ld of %ld in the epoch, global step %ld, global batch %d, seed %llu, %d RNG state(s)\n",
               t->finished ? "finished" : "in progress", t->phase, t->epoch, t->epoch_in_phase,
               t->step_in_epoch, t->steps_per_epoch, t->global_step, t->global_batch,
               (unsigned long long)t->seed, t->nrng);
    } else {
        printf("  train state: none (weights only: use it with model.init_from)\n");
    }
    int lines = 0;
    for (const char *m = ck->metrics; m && *m; m++) lines += *m == '\n';
    printf("  metrics history: %d line(s); config: %zu bytes\n", lines, ck->config ? strlen(ck->config) : 0);
    int rc = 0;
    if (verify) {
        int n = 0;
        size_t bytes = 0;
        rc = io_ckpt_verify(rd, &n, &bytes);
        if (rc)
            fprintf(stderr, "strata inspect: verify: %s\n", nn_errmsg());
        else {
            printf("  verify: read %d datasets (", n);
            print_count(stdout, bytes);
            printf(" bytes); every fletcher32 checksum matched\n");
        }
    }
    io_ckpt_close(rd);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    /* A write beyond `ulimit -f` must fail with EFBIG and an error message, not kill the
     * process in the middle of a save. */
    signal(SIGXFSZ, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    const int run = !strcmp(cmd, "train") || !strcmp(cmd, "eval") || !strcmp(cmd, "lr-find");
    if (!run && launched_world_size() > 1 && join_agreement(cmd)) return 1;
    if (!strcmp(cmd, "model")) {
        nn_blas_threads(0);
        return cmd_model(argc - 1, argv + 1);
    }
    if (run) return cmd_run(cmd, argc - 1, argv + 1, argv[0]);
    if (!strcmp(cmd, "data")) return cmd_data(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) return cmd_sweep(argc - 1, argv + 1, argv[0]);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("strata %s\n", trainer_build_id());
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
