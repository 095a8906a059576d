/* Sweep files: read into io's YAML tree (io_yaml.h), as configs are; each grid value turned
 * back into YAML flow text for a `--set key=value` override; runs numbered with the first key
 * varying slowest. */
#include "io/io.h"

#include "io/io_yaml.h"
#include "nn/nn.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Node n as YAML flow text: scalars as written (quoted when they were, or when a plain one
 * nested in a flow collection holds a character that would end it), lists as [a, b], maps
 * as {k: v}. */
static void flow_text(util_str *b, const io__node *n, int nested)
{
    if (n->kind == IO__SCALAR) {
        const char *v = n->text;
        const int quote = n->quoted || (nested && strpbrk(v, ",[]{}:#") != NULL) || v[0] == '\0';
        if (!quote) {
            util_str_cat(b, v);
            return;
        }
        util_str_cat(b, "\"");
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') util_str_add(b, "\\", 1);
            util_str_add(b, p, 1);
        }
        util_str_cat(b, "\"");
        return;
    }
    util_str_cat(b, n->kind == IO__SEQ ? "[" : "{");
    for (int i = 0; i < n->n; i++) {
        if (i) util_str_cat(b, ", ");
        if (n->kind == IO__MAP) {
            io__node key = {.kind = IO__SCALAR, .text = n->keys[i]};
            flow_text(b, &key, 1);
            util_str_cat(b, ": ");
        }
        flow_text(b, n->kids[i], 1);
    }
    util_str_cat(b, n->kind == IO__SEQ ? "]" : "}");
}

static int fail_at(const io_sweep *s, int line, const char *key, const char *what)
{
    return nn_err(NN_EINVAL, "%s:%d: %s: %s", s->path, line, key, what);
}

/* "key=" + the node's flow text, malloc'd; *text (may be NULL) gets the value part. */
static char *override(const char *key, const io__node *v, char **text)
{
    util_str b = {0};
    flow_text(&b, v, 0);
    if (b.failed || !b.s) {
        util_str_free(&b);
        return NULL;
    }
    util_str o = {0};
    util_str_printf(&o, "%s=%s", key, b.s);
    if (o.failed) util_str_free(&o);
    if (text)
        *text = b.s;
    else
        util_str_free(&b);
    return o.s;
}

/* A config key path: letters, digits, '_' and '.', not empty, no empty part. */
static int key_ok(const char *k)
{
    if (!k[0] || k[0] == '.' || k[strlen(k) - 1] == '.' || strstr(k, "..")) return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* config: (relative to the sweep file's directory) or dir:. */
static int load_path(io_sweep *s, const char *name, const io__node *v)
{
    const char *t = v->kind == IO__SCALAR ? v->text : NULL;
    if (!t || !t[0]) return fail_at(s, v->line, name, "expected a path");
    if (!strcmp(name, "dir")) {
        if (strlen(t) >= sizeof s->dir) return fail_at(s, v->line, name, "the path is too long");
        snprintf(s->dir, sizeof s->dir, "%s", t);
        return 0;
    }
    const char *slash = strrchr(s->path, '/');
    if (t[0] == '/' || !slash)
        snprintf(s->config, sizeof s->config, "%s", t);
    else
        snprintf(s->config, sizeof s->config, "%.*s/%s", (int)(slash - s->path), s->path, t);
    return 0;
}

/* set: the overrides of every run. */
static int load_set(io_sweep *s, const io__node *set)
{
    if (set->kind != IO__MAP && !(set->kind == IO__SCALAR && !set->text[0]))
        return fail_at(s, set->line, "set", "expected a map of config keys to values");
    if (set->kind != IO__MAP) return 0;
    s->set = calloc((size_t)set->n + 1, sizeof(char *));
    if (!s->set) return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
    for (int i = 0; i < set->n; i++) {
        if (!key_ok(set->keys[i]))
            return fail_at(s, set->key_lines[i], "set",
                           "keys must be config key paths such as train.epochs");
        if (!(s->set[s->nset++] = override(set->keys[i], set->kids[i], NULL)))
            return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
    }
    return 0;
}

/* grid (a non-empty map): every key with its values; the runs are their product. */
static int load_grid(io_sweep *s, const io__node *grid)
{
    s->nruns = 1;
    for (int i = 0; i < grid->n; i++) {
        const char *name = grid->keys[i];
        const io__node *v = grid->kids[i];
        const int line = grid->key_lines[i];
        char kp[200];
        snprintf(kp, sizeof kp, "grid.%s", name);
        if (!key_ok(name) || strlen(name) >= sizeof s->keys[0])
            return fail_at(s, line, "grid", "keys must be config key paths such as groups.lr.0");
        if (s->nkeys == IO_SWEEP_MAX_KEYS)
            return fail_at(s, line, kp, "too many grid keys (at most 16)");
        if (v->kind != IO__SEQ || v->n == 0)
            return fail_at(s, v->line, kp,
                           "expected a non-empty list of values, e.g. [1e-3, 1e-2]");
        const int kk = s->nkeys++;
        snprintf(s->keys[kk], sizeof s->keys[kk], "%s", name);
        s->values[kk] = calloc((size_t)v->n, sizeof(char *));
        s->texts[kk] = calloc((size_t)v->n, sizeof(char *));
        if (!s->values[kk] || !s->texts[kk]) return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        for (int j = 0; j < v->n; j++) {
            s->nvalues[kk]++;
            if (!(s->values[kk][j] = override(name, v->kids[j], &s->texts[kk][j])))
                return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        }
        s->nruns *= s->nvalues[kk];
        if (s->nruns > IO_SWEEP_MAX_RUNS)
            return fail_at(s, v->line, kp, "the grid has more than 100000 runs");
    }
    return 0;
}

static int load_tree(io_sweep *s, const io__node *root)
{
    if (!root || (root->kind == IO__SCALAR && !root->text[0]))
        return nn_err(NN_EINVAL, "%s: the sweep file is empty (it needs a grid: of config keys "
                      "and values)", s->path);
    if (root->kind != IO__MAP)
        return fail_at(s, root->line, "(top level)",
                       "expected a map with grid: and optionally config:, dir:, set:");
    const io__node *grid = NULL, *set = NULL;
    for (int i = 0; i < root->n; i++) {
        const char *name = root->keys[i];
        int rc = 0;
        if (!strcmp(name, "grid")) {
            grid = root->kids[i];
        } else if (!strcmp(name, "set")) {
            set = root->kids[i];
        } else if (!strcmp(name, "config") || !strcmp(name, "dir")) {
            rc = load_path(s, name, root->kids[i]);
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown key '%s' (a sweep file has grid, set, config and "
                     "dir)", name);
            rc = fail_at(s, root->key_lines[i], name, msg);
        }
        if (rc) return rc;
    }
    if (!grid)
        return nn_err(NN_EINVAL, "%s: no grid: (a map of config keys to lists of values)",
                      s->path);
    if (grid->kind != IO__MAP || grid->n == 0)
        return fail_at(s, grid->line, "grid",
                       "expected a non-empty map of config keys to lists of values");
    int rc = set ? load_set(s, set) : 0;
    if (!rc) rc = load_grid(s, grid);
    if (rc) return rc;
    if (!s->dir[0]) {
        const char *base = strrchr(s->path, '/') ? strrchr(s->path, '/') + 1 : s->path;
        size_t bl = strlen(base);
        if (bl > 5 && !strcmp(base + bl - 5, ".yaml")) bl -= 5;
        else if (bl > 4 && !strcmp(base + bl - 4, ".yml")) bl -= 4;
        snprintf(s->dir, sizeof s->dir, "runs/sweep-%.*s", (int)bl, base);
    }
    return 0;
}

int io_sweep_load(io_sweep *s, const char *path)
{
    memset(s, 0, sizeof *s);
    if (!path) return nn_err(NN_EINVAL, "io_sweep_load: NULL path");
    if (strlen(path) >= sizeof s->path)
        return nn_err(NN_EINVAL, "%.60s...: the sweep path is too long", path);
    snprintf(s->path, sizeof s->path, "%s", path);
    char *text = NULL, why[256];
    size_t len = 0;
    const char *verb;
    int rc = io__read_file(&text, &len, path, 0, &verb, why, sizeof why);
    if (rc) {
        if (verb) return nn_err(NN_EIO, "cannot read the sweep file %s: %s", path, why);
        return rc;
    }
    io__node *root = NULL;
    /* A file of settings: aliases are welcome (a list of values given once, used twice). */
    io__yaml_src src = {.origin = s->path, .from_set = 0, .base = NULL, .aliases = 1};
    rc = io__yaml_parse(&root, text, len, &src);
    free(text);
    if (!rc) rc = load_tree(s, root);
    io__node_free(root);
    if (rc) io_sweep_free(s);
    return rc;
}

void io_sweep_free(io_sweep *s)
{
    if (!s) return;
    for (int i = 0; i < s->nset; i++) free(s->set[i]);
    free(s->set);
    for (int k = 0; k < s->nkeys; k++) {
        for (int j = 0; j < s->nvalues[k]; j++) {
            free(s->values[k][j]);
            free(s->texts[k][j]);
        }
        free(s->values[k]);
        free(s->texts[k]);
    }
    memset(s, 0, sizeof *s);
}

int io_sweep_run(const io_sweep *s, long i, const char **sets, int *n, int *value_index)
{
    if (i < 0 || i >= s->nruns)
        return nn_err(NN_ERANGE, "sweep %s has %ld runs (indices 0 to %ld): index %ld is out of "
                      "range", s->path, s->nruns, s->nruns - 1, i);
    *n = 0;
    for (int k = 0; k < s->nset; k++) sets[(*n)++] = s->set[k];
    long rest = i;
    int idx[IO_SWEEP_MAX_KEYS];
    for (int k = s->nkeys - 1; k >= 0; k--) { /* the last key varies fastest */
        idx[k] = (int)(rest % s->nvalues[k]);
        rest /= s->nvalues[k];
    }
    for (int k = 0; k < s->nkeys; k++) {
        sets[(*n)++] = s->values[k][idx[k]];
        if (value_index) value_index[k] = idx[k];
    }
    return 0;
}

void io_sweep_run_dir(char *out, size_t len, const io_sweep *s, long i)
{
    snprintf(out, len, "%s/run-%03ld", s->dir, i);
}
