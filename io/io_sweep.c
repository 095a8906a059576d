/* Sweep files: read with libyaml's document API, each grid value turned back into YAML flow
 * text for a `--set key=value` override, runs numbered with the first key varying slowest. */
#include "io/io.h"

#include "nn/nn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* A growing string. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2 + 32;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Node n as YAML flow text: scalars as written (quoted when they were, or when a plain one
 * nested in a flow collection holds a character that would end it), lists as [a, b], maps
 * as {k: v}. */
static void flow_text(buf *b, yaml_document_t *d, yaml_node_t *n, int nested)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        const int quote = n->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                          n->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
                          (nested && strpbrk(v, ",[]{}:#") != NULL) || v[0] == '\0';
        if (!quote) {
            buf_str(b, v);
            return;
        }
        buf_str(b, "\"");
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') buf_add(b, "\\", 1);
            buf_add(b, p, 1);
        }
        buf_str(b, "\"");
    } else if (n->type == YAML_SEQUENCE_NODE) {
        buf_str(b, "[");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
            if (it != n->data.sequence.items.start) buf_str(b, ", ");
            flow_text(b, d, yaml_document_get_node(d, *it), 1);
        }
        buf_str(b, "]");
    } else if (n->type == YAML_MAPPING_NODE) {
        buf_str(b, "{");
        for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
            if (pr != n->data.mapping.pairs.start) buf_str(b, ", ");
            flow_text(b, d, yaml_document_get_node(d, pr->key), 1);
            buf_str(b, ": ");
            flow_text(b, d, yaml_document_get_node(d, pr->value), 1);
        }
        buf_str(b, "}");
    }
}

static int fail_at(const io_sweep *s, const yaml_node_t *n, const char *key, const char *what)
{
    return nn_err(NN_EINVAL, "%s:%lu: %s: %s", s->path, n ? (unsigned long)n->start_mark.line + 1 : 0ul,
                  key, what);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* "key=" + the node's flow text, malloc'd; *text gets the value part. */
static char *override(const char *key, yaml_document_t *d, yaml_node_t *v, char **text)
{
    buf b = {0};
    flow_text(&b, d, v, 0);
    if (b.oom || !b.s) {
        free(b.s);
        return NULL;
    }
    size_t kl = strlen(key), vl = strlen(b.s);
    char *o = malloc(kl + vl + 2);
    if (o) {
        memcpy(o, key, kl);
        o[kl] = '=';
        memcpy(o + kl + 1, b.s, vl + 1);
    }
    if (text)
        *text = b.s;
    else
        free(b.s);
    return o;
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

static int load_doc(io_sweep *s, yaml_document_t *d)
{
    yaml_node_t *root = yaml_document_get_root_node(d);
    if (!root || (root->type == YAML_SCALAR_NODE && !((const char *)root->data.scalar.value)[0]))
        return nn_err(NN_EINVAL, "%s: the sweep file is empty (it needs a grid: of config keys and values)", s->path);
    if (root->type != YAML_MAPPING_NODE)
        return fail_at(s, root, "(top level)", "expected a map with grid: and optionally config:, dir:, set:");
    yaml_node_t *grid = NULL, *set = NULL;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(d, pr->key), *v = yaml_document_get_node(d, pr->value);
        const char *name = scalar(k);
        if (!name) return fail_at(s, k, "(top level)", "keys must be plain words");
        if (!strcmp(name, "grid")) {
            grid = v;
        } else if (!strcmp(name, "set")) {
            set = v;
        } else if (!strcmp(name, "config") || !strcmp(name, "dir")) {
            const char *t = scalar(v);
            if (!t || !t[0]) return fail_at(s, v, name, "expected a path");
            if (!strcmp(name, "dir")) {
                if (strlen(t) >= sizeof s->dir) return fail_at(s, v, name, "the path is too long");
                snprintf(s->dir, sizeof s->dir, "%s", t);
            } else {
                /* Relative to the sweep file's directory. */
                const char *slash = strrchr(s->path, '/');
                if (t[0] == '/' || !slash)
                    snprintf(s->config, sizeof s->config, "%s", t);
                else
                    snprintf(s->config, sizeof s->config, "%.*s/%s", (int)(slash - s->path), s->path, t);
            }
        } else {
            char msg[200];
            snprintf(msg, sizeof msg, "unknown key '%s' (a sweep file has grid, set, config and dir)", name);
            return fail_at(s, k, name, msg);
        }
    }
    if (!grid) return nn_err(NN_EINVAL, "%s: no grid: (a map of config keys to lists of values)", s->path);
    if (grid->type != YAML_MAPPING_NODE || grid->data.mapping.pairs.top == grid->data.mapping.pairs.start)
        return fail_at(s, grid, "grid", "expected a non-empty map of config keys to lists of values");
    if (set && set->type != YAML_MAPPING_NODE && !(set->type == YAML_SCALAR_NODE && !scalar(set)[0]))
        return fail_at(s, set, "set", "expected a map of config keys to values");
    if (set && set->type == YAML_MAPPING_NODE) {
        const long n = set->data.mapping.pairs.top - set->data.mapping.pairs.start;
        s->set = calloc((size_t)n + 1, sizeof(char *));
        if (!s->set) return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        for (yaml_node_pair_t *pr = set->data.mapping.pairs.start; pr < set->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(d, pr->key);
            const char *name = scalar(k);
            if (!name || !key_ok(name)) return fail_at(s, k, "set", "keys must be config key paths such as train.epochs");
            if (!(s->set[s->nset++] = override(name, d, yaml_document_get_node(d, pr->value), NULL)))
                return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        }
    }
    s->nruns = 1;
    for (yaml_node_pair_t *pr = grid->data.mapping.pairs.start; pr < grid->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = yaml_document_get_node(d, pr->key), *v = yaml_document_get_node(d, pr->value);
        const char *name = scalar(k);
        char kp[200];
        snprintf(kp, sizeof kp, "grid.%s", name ? name : "?");
        if (!name || !key_ok(name) || strlen(name) >= sizeof s->keys[0])
            return fail_at(s, k, "grid", "keys must be config key paths such as groups.lr.0");
        if (s->nkeys == IO_SWEEP_MAX_KEYS) return fail_at(s, k, kp, "too many grid keys (at most 16)");
        for (int j = 0; j < s->nkeys; j++)
            if (!strcmp(s->keys[j], name)) return fail_at(s, k, kp, "the key is given twice");
        if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start)
            return fail_at(s, v, kp, "expected a non-empty list of values, e.g. [1e-3, 1e-2]");
        const int kk = s->nkeys++;
        snprintf(s->keys[kk], sizeof s->keys[kk], "%s", name);
        const long n = v->data.sequence.items.top - v->data.sequence.items.start;
        s->values[kk] = calloc((size_t)n, sizeof(char *));
        s->texts[kk] = calloc((size_t)n, sizeof(char *));
        if (!s->values[kk] || !s->texts[kk]) return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
            const int j = s->nvalues[kk]++;
            if (!(s->values[kk][j] = override(name, d, yaml_document_get_node(d, *it), &s->texts[kk][j])))
                return nn_err(NN_ENOMEM, "%s: out of memory", s->path);
        }
        s->nruns *= s->nvalues[kk];
        if (s->nruns > IO_SWEEP_MAX_RUNS)
            return fail_at(s, v, kp, "the grid has more than 100000 runs");
    }
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
    if (strlen(path) >= sizeof s->path) return nn_err(NN_EINVAL, "%.60s...: the sweep path is too long", path);
    snprintf(s->path, sizeof s->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) return nn_err(NN_EIO, "cannot read the sweep file %s: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_document_t d;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        return nn_err(NN_ENOMEM, "%s: cannot start the YAML parser", path);
    }
    yaml_parser_set_input_file(&p, f);
    int rc = 0;
    if (!yaml_parser_load(&p, &d)) {
        rc = nn_err(NN_EFORMAT, "%s:%lu: YAML syntax: %s", path, (unsigned long)p.problem_mark.line + 1,
                    p.problem ? p.problem : "malformed");
    } else {
        rc = load_doc(s, &d);
        yaml_document_delete(&d);
    }
    yaml_parser_delete(&p);
    fclose(f);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", nn_errmsg());
        io_sweep_free(s);
        nn_err(rc, "%s", msg);
    }
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
        return nn_err(NN_ERANGE, "sweep %s has %ld runs (indices 0 to %ld): index %ld is out of range",
                      s->path, s->nruns, s->nruns - 1, i);
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
