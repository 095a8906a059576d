/* run.dir, rank 0's: created and checked (a fresh run must not overwrite another), its
 * config.yaml and metrics.jsonl, status and sweep.json. Checkpoints are trainer_resume.c's. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Whether two spellings of a directory name the same one (both exist; realpath). */
static int same_dir(const char *a, const char *b)
{
    char *x = realpath(a, NULL), *y = realpath(b, NULL);
    const int same = x && y && !strcmp(x, y);
    free(x);
    free(y);
    return same;
}

/* This run's effective config as text, with run.dir spelled as the old config.yaml at path
 * spells it when both spellings are the same directory after realpath (relative or
 * absolute, through a link): only the rest must match. */
static int config_text_like(char **out, const io_config *cfg, const char *path)
{
    io_config *old = malloc(sizeof *old), *mine = malloc(sizeof *mine);
    int rc = old && mine ? 0 : nn_err(NN_ENOMEM, "out of memory");
    if (!rc) *mine = *cfg;
    if (!rc && io_config_load(old, path, NULL, 0) == 0 && same_dir(old->run.dir, cfg->run.dir))
        memcpy(mine->run.dir, old->run.dir, sizeof mine->run.dir);
    if (!rc) rc = io_config_to_string(out, mine);
    free(old);
    free(mine);
    return rc;
}

/* A fresh training run must not overwrite another: run.dir/config.yaml, if there, must be
 * this run's effective config (run.dir compared after realpath), and this run must not have
 * checkpoints there already. */
static int check_run_dir(const io_config *cfg)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    char *old = NULL, *mine = NULL;
    int rc = util_read_file(&old, NULL, path, 0);
    if (rc == NN_ENOTFOUND) return 0;
    if (!rc) rc = config_text_like(&mine, cfg, path);
    if (!rc && strcmp(old, mine)) {
        const char *a = old, *b = mine;
        while (*a && *a == *b) a++, b++;
        while (a > old && a[-1] != '\n') a--, b--;
        int la = (int)strcspn(a, "\n"), lb = (int)strcspn(b, "\n");
        rc = nn_err(NN_ESTATE, "run.dir %s already holds a different run: its config.yaml has '%.*s' where this run has '%.*s'; use another run.dir (or remove %s)",
                    cfg->run.dir, la > 120 ? 120 : la, a, lb > 120 ? 120 : lb, b, cfg->run.dir);
    } else if (!rc) {
        char latest[1200], dir[1100];
        snprintf(dir, sizeof dir, "%s/checkpoints", cfg->run.dir);
        if (io_ckpt_latest(latest, sizeof latest, dir) == 0)
            rc = nn_err(NN_ESTATE, "run.dir %s already holds this run's checkpoints (%s): continue with --resume auto, or remove %s to start over",
                        cfg->run.dir, latest, cfg->run.dir);
    }
    free(old);
    free(mine);
    return rc;
}

/* io_write_atomic's writer of the effective config (ud). */
static int config_write(const char *tmp, const char *path, void *ud)
{
    FILE *f = fopen(tmp, "w");
    if (!f) return nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
    int rc = io_config_write(ud, f);
    const int bad = ferror(f);
    errno = 0;
    if ((fclose(f) || bad) && !rc)
        rc = nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
    return rc;
}

/* run.dir/config.yaml: the effective config, replaced atomically, so that a process killed
 * while writing it never leaves a torn file that a later start takes for another run's. */
static int write_config(const io_config *cfg)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    return io_write_atomic(path, config_write, (void *)cfg);
}

/* The directory is created first: check_run_dir then reads what it holds (an unreadable
 * config.yaml is an error, a missing one is a fresh directory). */
int trainer__rundir_open(trainer__log *lg, const io_config *cfg, comm *c, int fresh)
{
    int rc = 0;
    if (comm_rank(c) == 0) {
        rc = util_mkdirs(cfg->run.dir);
        if (!rc && fresh) rc = check_run_dir(cfg);
        if (!rc) rc = write_config(cfg);
        if (!rc) {
            snprintf(lg->metrics_path, sizeof lg->metrics_path, "%s/metrics.jsonl", cfg->run.dir);
            lg->metrics = fopen(lg->metrics_path, "w");
            if (!lg->metrics)
                rc = nn_err(NN_EIO, "cannot write %s: %s", lg->metrics_path, strerror(errno));
        }
    }
    return comm_agree(c, rc, NULL);
}

/* io_write_atomic's writer of a status line. */
static int status_write(const char *tmp, const char *path, void *ud)
{
    FILE *f = fopen(tmp, "w");
    if (!f) return nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
    int bad = fprintf(f, "%s\n", (const char *)ud) < 0, e = errno;
    if (fclose(f) && !bad) bad = 1, e = errno;
    return bad ? nn_err(NN_EIO, "cannot write %s: %s", path, strerror(e ? e : EIO)) : 0;
}

int trainer_status_write(const char *path, const char *line)
{
    return io_write_atomic(path, status_write, (void *)line);
}

/* For people, sweep reports and schedulers' scripts. */
int trainer__write_status(const io_config *cfg, comm *c, const char *fmt, ...)
{
    if (comm_rank(c) != 0) return 0;
    char path[1100], line[1200];
    snprintf(path, sizeof path, "%s/status", cfg->run.dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return trainer_status_write(path, line);
}

/* Rank 0: run.dir/sweep.json holds json. */
int trainer__write_sweep_json(const io_config *cfg, const char *json)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/sweep.json", cfg->run.dir);
    FILE *f = fopen(path, "w");
    if (!f) return nn_err(NN_EIO, "cannot write %s: %s", path, strerror(errno));
    int bad = fputs(json, f) < 0, e = errno;
    if (fclose(f) && !bad) bad = 1, e = errno;
    return bad ? nn_err(NN_EIO, "cannot write %s: %s", path, strerror(e)) : 0;
}
