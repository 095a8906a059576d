/*
 * The YAML run configuration (docs/config.md).
 *
 * The file is read with libyaml's event API into a small tree of maps, lists and scalars in
 * which every node remembers where it came from (the file and a line, or a --set override).
 * The overrides are applied to the tree, and the tree is then converted into io_config key by
 * key: each map's keys are checked against the keys it may hold, each value against its type
 * and range. The first problem found stops the load with a message of the form
 * `FILE:LINE: key.path: what is wrong (got 'VALUE')`.
 */
#include "io/io_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "nn/nn.h"

_Static_assert(IO_MAX_GROUPS == NN_MAX_GROUPS, "IO_MAX_GROUPS must equal NN_MAX_GROUPS");
_Static_assert(IO_MAX_WIDTHS == NN_MAX_WIDTHS, "IO_MAX_WIDTHS must equal NN_MAX_WIDTHS");

/* The largest config file read (a config is a few kilobytes; this only stops accidents). */
#define CFG_MAX_FILE (16u << 20)
/* The deepest nesting of maps and lists accepted. */
#define CFG_MAX_DEPTH 32
/* Key paths longer than this are cut in messages. */
#define CFG_PATH 256

/* ---------------------------------------------------------------------------------------
 * The generic tree.
 */
enum { NODE_SCALAR, NODE_SEQ, NODE_MAP };

typedef struct cfg_node cfg_node;
struct cfg_node {
    int kind;           /* NODE_* */
    int line;           /* 1-based line in the file (0 for an override) */
    const char *origin; /* the file's path, or the override's "--set key=value"; not owned */
    int from_set;       /* the node came from an override */
    char *text;         /* scalars: the value, owned */
    int plain;          /* scalars: written without quotes (so it may be a YAML null) */
    int n, cap;         /* children */
    char **keys;        /* maps: the key of each child, owned */
    int *key_lines;     /* maps: the line of each key */
    cfg_node **kids;    /* map values or list items, owned */
};

static cfg_node *node_new(int kind, int line, const char *origin, int from_set)
{
    cfg_node *n = calloc(1, sizeof *n);
    if (n == NULL) return NULL;
    n->kind = kind;
    n->line = line;
    n->origin = origin;
    n->from_set = from_set;
    return n;
}

/* Frees a node and everything below it. NULL is a no-op. */
static void node_free(cfg_node *n)
{
    if (n == NULL) return;
    for (int i = 0; i < n->n; i++) {
        node_free(n->kids[i]);
        if (n->keys) free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->key_lines);
    free(n->text);
    free(n);
}

/* Appends kid (and, for a map, its key, whose ownership passes too) to parent. */
static int node_append(cfg_node *parent, char *key, int key_line, cfg_node *kid)
{
    if (parent->n == parent->cap) {
        int cap = parent->cap ? 2 * parent->cap : 8;
        cfg_node **kids = realloc(parent->kids, (size_t)cap * sizeof *kids);
        if (kids == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        parent->kids = kids;
        if (parent->kind == NODE_MAP) {
            char **keys = realloc(parent->keys, (size_t)cap * sizeof *keys);
            if (keys == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
            parent->keys = keys;
            int *lines = realloc(parent->key_lines, (size_t)cap * sizeof *lines);
            if (lines == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    if (parent->kind == NODE_MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

/* The index of key in map m, or -1. */
static int map_index(const cfg_node *m, const char *key)
{
    if (m == NULL || m->kind != NODE_MAP) return -1;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0) return i;
    return -1;
}

/* The value of key in map m, or NULL when m is NULL or lacks the key. */
static const cfg_node *map_get(const cfg_node *m, const char *key)
{
    int i = map_index(m, key);
    return i < 0 ? NULL : m->kids[i];
}

/* A YAML null: an unquoted empty value, ~ or null. */
static int node_is_null(const cfg_node *n)
{
    if (n == NULL) return 1;
    if (n->kind != NODE_SCALAR || !n->plain) return 0;
    const char *t = n->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* ---------------------------------------------------------------------------------------
 * Messages.
 */

/* "FILE:LINE" for a node of the file, the override's text for a node of an override. */
static void node_where(char *buf, size_t len, const cfg_node *n)
{
    if (n->from_set)
        snprintf(buf, len, "%s", n->origin);
    else
        snprintf(buf, len, "%s:%d", n->origin, n->line);
}

/* What a message says it got: 'text' for a scalar (cut at 60 characters), else a map or a
 * list. */
static void node_got(char *buf, size_t len, const cfg_node *n)
{
    if (n->kind == NODE_MAP) {
        snprintf(buf, len, "a map");
    } else if (n->kind == NODE_SEQ) {
        snprintf(buf, len, "a list");
    } else if (strlen(n->text) > 60) {
        snprintf(buf, len, "'%.57s...'", n->text);
    } else {
        snprintf(buf, len, "'%s'", n->text);
    }
}

/* Records `WHERE: PATH: MESSAGE (got VALUE)` for node n and returns code. */
static int node_fail(int code, const cfg_node *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int node_fail(int code, const cfg_node *n, const char *path, const char *fmt, ...)
{
    char where[600], got[80], what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    node_where(where, sizeof where, n);
    node_got(got, sizeof got, n);
    return nn_err(code, "%s: %s: %s (got %s)", where, path, what, got);
}

/* Joins a key path and a key ("model" + "arch"); an empty base gives the key alone. */
static void path_join(char *out, size_t len, const char *base, const char *key)
{
    int k = base[0] == '\0' ? snprintf(out, len, "%s", key)
                             : snprintf(out, len, "%s.%s", base, key);
    if (k < 0 || (size_t)k >= len) out[len - 1] = '\0'; /* A path this long is cut. */
}

/* Joins a key path and a list index ("train.phases" + 1 = "train.phases.1"). */
static void path_index(char *out, size_t len, const char *base, int i)
{
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    path_join(out, len, base, key);
}

/* Levenshtein distance, capped: strings longer than 63 characters count as far apart. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

/* The closest of the NULL-terminated words to w within edit distance 2 (and nearer than the
 * word's own length, so "x" suggests nothing), or NULL. */
static const char *closest_word(const char *w, const char *const *words)
{
    const char *best = NULL;
    int bestd = 3;
    for (int i = 0; words[i] != NULL; i++) {
        int d = edit_distance(w, words[i]);
        if (d < bestd && d < (int)strlen(words[i])) {
            best = words[i];
            bestd = d;
        }
    }
    return best;
}

/* Writes "a, b, c" from the NULL-terminated words. */
static void words_join(char *buf, size_t len, const char *const *words)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; words[i] != NULL && off < len; i++) {
        int k = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", words[i]);
        if (k < 0) break;
        off += (size_t)k;
    }
}

/* Fails on the first key of map m that is not among known (NULL-terminated), suggesting the
 * closest known key. path is the map's own key path. */
static int map_check_keys(const cfg_node *m, const char *path, const char *const *known)
{
    if (m == NULL) return 0;
    for (int i = 0; i < m->n; i++) {
        int ok = 0;
        for (int k = 0; known[k] != NULL; k++) ok |= strcmp(m->keys[i], known[k]) == 0;
        if (ok) continue;
        char kpath[CFG_PATH], where[600], got[80], hint[300];
        path_join(kpath, sizeof kpath, path, m->keys[i]);
        const cfg_node *v = m->kids[i];
        if (v->from_set)
            node_where(where, sizeof where, v);
        else
            snprintf(where, sizeof where, "%s:%d", m->origin, m->key_lines[i]);
        node_got(got, sizeof got, v);
        const char *near = closest_word(m->keys[i], known);
        if (near != NULL) {
            snprintf(hint, sizeof hint, "did you mean '%s'?", near);
        } else {
            char list[250];
            words_join(list, sizeof list, known);
            snprintf(hint, sizeof hint, "known keys here: %s", list);
        }
        return nn_err(NN_EINVAL, "%s: %s: unknown key; %s (got %s)", where, kpath, hint, got);
    }
    return 0;
}

/* Fails for a required key that is absent from map m (NULL: the section is absent too, and
 * parent, the map that lacks it, gives the place). */
static int fail_missing(const cfg_node *m, const cfg_node *parent, const char *kpath)
{
    char where[600];
    node_where(where, sizeof where, m ? m : parent);
    return nn_err(NN_EINVAL, "%s: %s: required key is missing", where, kpath);
}

/* ---------------------------------------------------------------------------------------
 * From YAML text to the tree (libyaml's event API).
 */
typedef struct cfg_frame {
    cfg_node *node;
    char *key;           /* maps: the key waiting for its value, owned */
    int key_line;
    char path[CFG_PATH]; /* the node's key path */
} cfg_frame;

typedef struct cfg_builder {
    const char *origin;  /* the file's path or the override's text */
    int from_set;
    const char *base;    /* key path of the root ("" for a file, the key for an override) */
    const char *text;    /* the YAML text, for quoting the line of a syntax error */
    size_t len;
    cfg_frame st[CFG_MAX_DEPTH];
    int depth;
    cfg_node *root;
} cfg_builder;

/* The key path at the builder's current position: where the next value goes, or for a
 * message (in_list_item 0) the enclosing list rather than an item that does not exist yet. */
static void builder_path(char *out, size_t len, const cfg_builder *b, int in_list_item)
{
    if (b->depth == 0) {
        snprintf(out, len, "%s", b->base);
        return;
    }
    const cfg_frame *f = &b->st[b->depth - 1];
    if (f->node->kind == NODE_MAP && f->key != NULL)
        path_join(out, len, f->path, f->key);
    else if (f->node->kind == NODE_SEQ && in_list_item)
        path_index(out, len, f->path, f->node->n);
    else
        snprintf(out, len, "%s", f->path);
}

/* Where the builder is, for a message: "FILE:LINE" or the override's text, then the key
 * path when there is one. */
static void builder_where(char *out, size_t len, const cfg_builder *b, int line)
{
    char path[CFG_PATH];
    builder_path(path, sizeof path, b, 0);
    if (b->from_set)
        snprintf(out, len, "%s: %s", b->origin, path[0] ? path : "(value)");
    else if (path[0])
        snprintf(out, len, "%s:%d: %s", b->origin, line, path);
    else
        snprintf(out, len, "%s:%d", b->origin, line);
}

/* Copies line (1-based) of the builder's text into buf, without its newline. Returns 0 when
 * the text has no such line or the line is blank. */
static int builder_line_text(char *buf, size_t len, const cfg_builder *b, int line)
{
    const char *p = b->text, *end = b->text + b->len;
    for (int l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) return 0;
        p = nl + 1;
    }
    if (p >= end) return 0;
    const char *q = p;
    while (q < end && *q != '\n' && *q != '\r') q++;
    size_t n = (size_t)(q - p);
    int blank = 1;
    for (size_t i = 0; i < n; i++) blank &= isspace((unsigned char)p[i]) != 0;
    if (blank) return 0;
    if (n > 60) {
        snprintf(buf, len, "%.57s...", p);
    } else {
        snprintf(buf, len, "%.*s", (int)n, p);
    }
    return 1;
}

/* Records libyaml's problem as `WHERE: [PATH: ]YAML syntax error: PROBLEM (CONTEXT) (got
 * 'LINE')`. */
static int builder_syntax_error(const cfg_builder *b, const yaml_parser_t *p)
{
    int line;
    if (p->error == YAML_READER_ERROR) {
        line = 1;
        for (size_t i = 0; i < p->problem_offset && i < b->len; i++) line += b->text[i] == '\n';
    } else {
        line = (int)p->problem_mark.line + 1;
    }
    char where[800], ctx[200] = "", got[120];
    builder_where(where, sizeof where, b, line);
    if (p->context != NULL)
        snprintf(ctx, sizeof ctx, " (%s at line %d)", p->context, (int)p->context_mark.line + 1);
    if (b->from_set) {
        snprintf(got, sizeof got, "'%.60s'", b->text);
    } else {
        char lt[80];
        if (builder_line_text(lt, sizeof lt, b, line))
            snprintf(got, sizeof got, "'%s'", lt);
        else
            snprintf(got, sizeof got, "the end of the file");
    }
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR) return nn_err(NN_ENOMEM, "%s: out of memory", where);
    return nn_err(NN_EFORMAT, "%s: YAML syntax error: %s%s (got %s)", where, problem, ctx, got);
}

/* Attaches a finished node at the builder's position (the root, a list item, a map key or a
 * map value). Takes ownership of n in every case. */
static int builder_add(cfg_builder *b, cfg_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    cfg_frame *f = &b->st[b->depth - 1];
    if (f->node->kind == NODE_SEQ) {
        int rc = node_append(f->node, NULL, 0, n);
        if (rc < 0) node_free(n);
        return rc;
    }
    if (f->key == NULL) {
        char where[800];
        builder_where(where, sizeof where, b, n->line);
        if (n->kind != NODE_SCALAR) {
            node_free(n);
            return nn_err(NN_EFORMAT, "%s: a key must be a single value, not a map or a list",
                          where);
        }
        int first = map_index(f->node, n->text);
        if (first >= 0) {
            char kpath[CFG_PATH];
            path_join(kpath, sizeof kpath, f->path, n->text);
            int rc;
            if (b->from_set)
                rc = nn_err(NN_EFORMAT, "%s: %s: duplicate key (got '%s' twice)", b->origin,
                            kpath, n->text);
            else
                rc = nn_err(NN_EFORMAT, "%s:%d: %s: duplicate key, first given at line %d (got "
                            "'%s' twice)", b->origin, n->line, kpath,
                            f->node->key_lines[first], n->text);
            node_free(n);
            return rc;
        }
        f->key = n->text;
        f->key_line = n->line;
        n->text = NULL;
        node_free(n);
        return 0;
    }
    /* An empty value, and a block map or list (which starts on the next line), belong to
     * their key's line: that is where a message about the whole value should point. */
    if (n->kind != NODE_SCALAR || (n->plain && n->text[0] == '\0')) n->line = f->key_line;
    int rc = node_append(f->node, f->key, f->key_line, n);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    f->key = NULL;
    return 0;
}

/* Opens a map or list: attaches it and makes it the current container. */
static int builder_push(cfg_builder *b, cfg_node *n)
{
    char path[CFG_PATH];
    builder_path(path, sizeof path, b, 1);
    if (b->depth == CFG_MAX_DEPTH) {
        char where[800];
        builder_where(where, sizeof where, b, n->line);
        node_free(n);
        return nn_err(NN_EFORMAT, "%s: maps and lists nested more than %d deep", where,
                      CFG_MAX_DEPTH);
    }
    int rc = builder_add(b, n);
    if (rc < 0) return rc;
    cfg_frame *f = &b->st[b->depth++];
    f->node = n;
    f->key = NULL;
    f->key_line = 0;
    snprintf(f->path, sizeof f->path, "%s", path);
    return 0;
}

/* Frees what a failed build holds (the pending keys; the nodes hang from the root). */
static void builder_free(cfg_builder *b)
{
    for (int i = 0; i < b->depth; i++) free(b->st[i].key);
    b->depth = 0;
    node_free(b->root);
    b->root = NULL;
}

/* Parses YAML text into a tree; *out is NULL for a text with no document. */
static int tree_parse(cfg_node **out, const char *text, size_t len, const char *origin,
                      int from_set, const char *base)
{
    *out = NULL;
    cfg_builder *b = calloc(1, sizeof *b);
    if (b == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
    b->origin = origin;
    b->from_set = from_set;
    b->base = base;
    b->text = text;
    b->len = len;

    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        free(b);
        return nn_err(NN_ENOMEM, "config: out of memory (libyaml)");
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int rc = 0, docs = 0, done = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = builder_syntax_error(b, &p);
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        cfg_node *n = NULL;
        char where[800];
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (docs++ > 0) {
                builder_where(where, sizeof where, b, line);
                rc = nn_err(NN_EFORMAT, "%s: a config is one YAML document, and a second one "
                            "starts here (got '---')", where);
            }
            break;
        case YAML_ALIAS_EVENT:
            builder_where(where, sizeof where, b, line);
            rc = nn_err(NN_EFORMAT, "%s: YAML aliases are not supported; write the value out "
                        "(got '*%s')", where, (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
            if (memchr(ev.data.scalar.value, '\0', ev.data.scalar.length) != NULL) {
                builder_where(where, sizeof where, b, line);
                rc = nn_err(NN_EFORMAT, "%s: a value holds a NUL character", where);
                break;
            }
            n = node_new(NODE_SCALAR, line, origin, from_set);
            if (n == NULL || (n->text = strdup((const char *)ev.data.scalar.value)) == NULL) {
                node_free(n);
                rc = nn_err(NN_ENOMEM, "config: out of memory");
                break;
            }
            n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            rc = builder_add(b, n);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            n = node_new(ev.type == YAML_MAPPING_START_EVENT ? NODE_MAP : NODE_SEQ, line, origin,
                         from_set);
            rc = n ? builder_push(b, n) : nn_err(NN_ENOMEM, "config: out of memory");
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            NN_ASSERT(b->depth > 0 && b->st[b->depth - 1].key == NULL);
            b->depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc < 0) {
        builder_free(b);
        free(b);
        return rc;
    }
    *out = b->root;
    free(b);
    return 0;
}

/* Reads the whole file at path into a malloc'd, NUL-terminated buffer. */
static int file_read(char **out, size_t *len, const char *path)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return nn_err(NN_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return nn_err(NN_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap >= CFG_MAX_FILE) {
                free(buf);
                fclose(f);
                return nn_err(NN_EIO, "%s: larger than %u bytes; is this a config file?", path,
                              CFG_MAX_FILE);
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return nn_err(NN_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return nn_err(NN_EIO, "%s: cannot read: %s", path, strerror(e ? e : EIO));
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Overrides: --set key.path=value.
 */

/* Applies one override, whose text (for messages) is origin ("--set key.path=value"), to
 * the map root. A missing map on the way is created; a number on the way indexes a list. */
static int tree_apply_set(cfg_node *root, const char *set, const char *origin)
{
    const char *eq = strchr(set, '=');
    if (eq == NULL || eq == set)
        return nn_err(NN_EINVAL, "%s: expected key.path=value (got '%s')", origin, set);
    char key[CFG_PATH];
    size_t klen = (size_t)(eq - set);
    if (klen >= sizeof key)
        return nn_err(NN_EINVAL, "%s: the key path is too long (got '%.40s...')", origin, set);
    memcpy(key, set, klen);
    key[klen] = '\0';

    /* The key's segments, each non-empty. */
    char *seg[CFG_MAX_DEPTH];
    int nseg = 0;
    char split[CFG_PATH];
    memcpy(split, key, klen + 1);
    for (char *s = split;;) {
        char *dot = strchr(s, '.');
        if (dot) *dot = '\0';
        if (*s == '\0' || nseg == CFG_MAX_DEPTH)
            return nn_err(NN_EINVAL, "%s: %s: a key path is keys joined by single dots (got "
                          "'%s')", origin, key, key);
        seg[nseg++] = s;
        if (dot == NULL) break;
        s = dot + 1;
    }

    const char *value = eq + 1;
    cfg_node *v = NULL;
    int rc = tree_parse(&v, value, strlen(value), origin, 1, key);
    if (rc < 0) return rc;
    if (v == NULL) { /* An empty value is a YAML null. */
        v = node_new(NODE_SCALAR, 0, origin, 1);
        if (v == NULL || (v->text = strdup("")) == NULL) {
            node_free(v);
            return nn_err(NN_ENOMEM, "config: out of memory");
        }
        v->plain = 1;
    }

    cfg_node *cur = root;
    char path[CFG_PATH] = "";
    for (int i = 0; i < nseg; i++) {
        int last = i == nseg - 1;
        char next[CFG_PATH];
        path_join(next, sizeof next, path, seg[i]);
        cfg_node **slot = NULL;
        if (cur->kind == NODE_MAP) {
            int k = map_index(cur, seg[i]);
            if (k < 0) {
                cfg_node *kid = last ? v : node_new(NODE_MAP, 0, origin, 1);
                char *kcopy = strdup(seg[i]);
                if (kid == NULL || kcopy == NULL || node_append(cur, kcopy, 0, kid) < 0) {
                    free(kcopy);
                    if (kid != v) node_free(kid);
                    node_free(v);
                    return nn_err(NN_ENOMEM, "config: out of memory");
                }
                if (last) return 0;
                cur = kid;
                snprintf(path, sizeof path, "%s", next);
                continue;
            }
            slot = &cur->kids[k];
        } else if (cur->kind == NODE_SEQ) {
            char *end;
            errno = 0;
            long idx = strtol(seg[i], &end, 10);
            if (*end != '\0' || errno != 0 || idx < 0 || idx >= cur->n) {
                rc = node_fail(NN_EINVAL, v, next, "no such item: the list %s has %d item%s, "
                               "indexed from 0", path, cur->n, cur->n == 1 ? "" : "s");
                node_free(v);
                return rc;
            }
            slot = &cur->kids[idx];
        }
        NN_ASSERT(slot != NULL);
        if (last) {
            node_free(*slot);
            *slot = v;
            return 0;
        }
        if (node_is_null(*slot)) { /* `data:` left empty in the file: make it a map. */
            cfg_node *m = node_new(NODE_MAP, 0, origin, 1);
            if (m == NULL) {
                node_free(v);
                return nn_err(NN_ENOMEM, "config: out of memory");
            }
            node_free(*slot);
            *slot = m;
        }
        if ((*slot)->kind == NODE_SCALAR) {
            char where[600], got[80];
            node_where(where, sizeof where, *slot);
            node_got(got, sizeof got, *slot);
            node_free(v);
            return nn_err(NN_EINVAL, "%s: %s: %s is a single value (set at %s), not a map "
                          "that could hold '%s' (got %s)", origin, key, next, where, seg[i + 1],
                          got);
        }
        cur = *slot;
        snprintf(path, sizeof path, "%s", next);
    }
    NN_ASSERT(0);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Typed values.
 */

/* Copies s into a fixed buffer, zeroing the rest (so structs compare with memcmp). */
static void str_set(char *buf, size_t size, const char *s)
{
    memset(buf, 0, size);
    snprintf(buf, size, "%s", s);
}

/* A number in any C float syntax, finite, the whole text. */
static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Fails unless n is a non-null scalar (what says what was expected). */
static int want_scalar(const cfg_node *n, const char *path, const char *what)
{
    if (n->kind != NODE_SCALAR || node_is_null(n))
        return node_fail(NN_EINVAL, n, path, "expected %s", what);
    return 0;
}

/* Fails unless n is a map (a null counts as an empty map: returns 1 then, and *m = NULL). */
static int want_map(const cfg_node *n, const char *path, const cfg_node **m)
{
    *m = NULL;
    if (n == NULL || node_is_null(n)) return 1;
    if (n->kind != NODE_MAP) return node_fail(NN_EINVAL, n, path, "expected a map of keys");
    *m = n;
    return 0;
}

/* Reads an integer in [lo, hi]. */
static int read_int(const cfg_node *n, const char *path, int lo, int hi, int *out)
{
    int rc = want_scalar(n, path, "an integer");
    if (rc < 0) return rc;
    char *end;
    errno = 0;
    long long v = strtoll(n->text, &end, 10);
    if (end == n->text || *end != '\0') return node_fail(NN_EINVAL, n, path, "expected an integer");
    if (errno == ERANGE || v < lo || v > hi) {
        if (hi == INT_MAX) return node_fail(NN_ERANGE, n, path, "must be >= %d", lo);
        if (lo == INT_MIN) return node_fail(NN_ERANGE, n, path, "must be <= %d", hi);
        return node_fail(NN_ERANGE, n, path, "must be between %d and %d", lo, hi);
    }
    *out = (int)v;
    return 0;
}

/* Reads a non-negative integer of 64 bits (seeds). */
static int read_u64(const cfg_node *n, const char *path, unsigned long long *out)
{
    int rc = want_scalar(n, path, "a non-negative integer");
    if (rc < 0) return rc;
    const char *s = n->text;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || !isdigit((unsigned char)s[0]))
        return node_fail(NN_EINVAL, n, path, "expected a non-negative integer");
    if (errno == ERANGE) return node_fail(NN_ERANGE, n, path, "must be < 2^64");
    *out = v;
    return 0;
}

/* A range of doubles: lo (inclusive unless lo_open) to hi (exclusive when hi_open, none when
 * infinite). */
typedef struct drange {
    double lo, hi;
    int lo_open, hi_open;
} drange;

#define R_ANY ((drange){-INFINITY, INFINITY, 0, 0})
#define R_POS ((drange){0.0, INFINITY, 1, 0})
#define R_NONNEG ((drange){0.0, INFINITY, 0, 0})
#define R_UNIT_HALF_OPEN ((drange){0.0, 1.0, 0, 1})
#define R_UNIT ((drange){0.0, 1.0, 0, 0})

/* The range as words: "> 0", ">= 0", "in [0, 1)". */
static void drange_text(char *buf, size_t len, drange r)
{
    if (isinf(r.hi))
        snprintf(buf, len, "%s %g", r.lo_open ? ">" : ">=", r.lo);
    else
        snprintf(buf, len, "in %s%g, %g%s", r.lo_open ? "(" : "[", r.lo, r.hi,
                 r.hi_open ? ")" : "]");
}

static int drange_has(drange r, double v)
{
    if (r.lo_open ? !(v > r.lo) : !(v >= r.lo)) return 0;
    if (!isinf(r.hi) && (r.hi_open ? !(v < r.hi) : !(v <= r.hi))) return 0;
    return 1;
}

/* Reads a finite number within r. */
static int read_double(const cfg_node *n, const char *path, drange r, double *out)
{
    int rc = want_scalar(n, path, "a number");
    if (rc < 0) return rc;
    double v;
    if (parse_double(n->text, &v) < 0) return node_fail(NN_EINVAL, n, path, "expected a number");
    if (!drange_has(r, v)) {
        char rt[64];
        drange_text(rt, sizeof rt, r);
        return node_fail(NN_ERANGE, n, path, "must be %s", rt);
    }
    *out = v;
    return 0;
}

/* Reads true/false (also yes/no, on/off, in lower, title or upper case). */
static int read_bool(const cfg_node *n, const char *path, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On",
                                      "ON", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off",
                                     "OFF", NULL};
    int rc = want_scalar(n, path, "true or false");
    if (rc < 0) return rc;
    for (int i = 0; yes[i]; i++)
        if (strcmp(n->text, yes[i]) == 0) return *out = 1, 0;
    for (int i = 0; no[i]; i++)
        if (strcmp(n->text, no[i]) == 0) return *out = 0, 0;
    return node_fail(NN_EINVAL, n, path, "expected true or false");
}

/* Reads a string that fits in size bytes; an empty one (or a null) only when allow_empty. */
static int read_str(const cfg_node *n, const char *path, char *buf, size_t size, int allow_empty)
{
    if (allow_empty && node_is_null(n)) {
        str_set(buf, size, "");
        return 0;
    }
    int rc = want_scalar(n, path, "a string");
    if (rc < 0) return rc;
    if (!allow_empty && n->text[0] == '\0') return node_fail(NN_EINVAL, n, path, "must not be empty");
    if (strlen(n->text) >= size)
        return node_fail(NN_ERANGE, n, path, "too long: at most %zu characters", size - 1);
    str_set(buf, size, n->text);
    return 0;
}

/* Reads one of the NULL-terminated words, suggesting the closest on a miss. */
static int read_enum(const cfg_node *n, const char *path, const char *const *words, char *buf,
                     size_t size)
{
    int rc = want_scalar(n, path, "a word");
    if (rc < 0) return rc;
    for (int i = 0; words[i] != NULL; i++)
        if (strcmp(n->text, words[i]) == 0) {
            str_set(buf, size, words[i]);
            return 0;
        }
    char list[200];
    words_join(list, sizeof list, words);
    const char *near = closest_word(n->text, words);
    if (near) return node_fail(NN_EINVAL, n, path, "must be one of %s; did you mean '%s'?", list,
                               near);
    return node_fail(NN_EINVAL, n, path, "must be one of %s", list);
}

/* Reads a list of at most max integers, each >= lo; *count gets the length. */
static int read_int_list(const cfg_node *n, const char *path, int lo, int *out, int max,
                         int *count)
{
    if (n->kind != NODE_SEQ) return node_fail(NN_EINVAL, n, path, "expected a list of integers");
    if (n->n > max)
        return node_fail(NN_ERANGE, n, path, "has %d values; at most %d", n->n, max);
    for (int i = 0; i < n->n; i++) {
        char ipath[CFG_PATH];
        path_index(ipath, sizeof ipath, path, i);
        int rc = read_int(n->kids[i], ipath, lo, INT_MAX, &out[i]);
        if (rc < 0) return rc;
    }
    for (int i = n->n; i < max; i++) out[i] = 0;
    *count = n->n;
    return 0;
}

/* Reads a list of exactly count numbers, each within r. */
static int read_double_list(const cfg_node *n, const char *path, drange r, double *out, int count)
{
    if (n->kind != NODE_SEQ || n->n != count)
        return node_fail(NN_EINVAL, n, path, "expected a list of %d numbers", count);
    for (int i = 0; i < count; i++) {
        char ipath[CFG_PATH];
        path_index(ipath, sizeof ipath, path, i);
        int rc = read_double(n->kids[i], ipath, r, &out[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Reads a shape C x H x W: a list [C, H, W] or a string "CxHxW". Either all three are 0
 * (only when allow_zero: "from the data") or all are >= 1. A null gives zeros when allowed. */
static int read_shape(const cfg_node *n, const char *path, int allow_zero, int out[3])
{
    int v[3] = {0, 0, 0};
    if (allow_zero && node_is_null(n)) {
        memcpy(out, v, sizeof v);
        return 0;
    }
    if (n->kind == NODE_SEQ) {
        if (n->n != 3) return node_fail(NN_EINVAL, n, path, "expected [C, H, W] (3 integers)");
        for (int i = 0; i < 3; i++) {
            char ipath[CFG_PATH];
            path_index(ipath, sizeof ipath, path, i);
            int rc = read_int(n->kids[i], ipath, 0, INT_MAX, &v[i]);
            if (rc < 0) return rc;
        }
    } else if (n->kind == NODE_SCALAR && !node_is_null(n)) {
        char tail;
        if (sscanf(n->text, "%dx%dx%d%c", &v[0], &v[1], &v[2], &tail) != 3)
            return node_fail(NN_EINVAL, n, path, "expected [C, H, W] or 'CxHxW'");
    } else {
        return node_fail(NN_EINVAL, n, path, "expected [C, H, W] or 'CxHxW'");
    }
    int zero = v[0] == 0 && v[1] == 0 && v[2] == 0;
    int pos = v[0] >= 1 && v[1] >= 1 && v[2] >= 1;
    if (!(pos || (zero && allow_zero)))
        return node_fail(NN_ERANGE, n, path, allow_zero ? "each dimension must be >= 1 (or all "
                         "0: from the data)" : "each dimension must be >= 1");
    memcpy(out, v, sizeof v);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters.
 */
enum { HP_LR, HP_WD, HP_MOM };

static drange hp_range(int which)
{
    return which == HP_LR ? R_POS : which == HP_WD ? R_NONNEG : R_UNIT_HALF_OPEN;
}

static const char *hp_noun(int which)
{
    return which == HP_LR ? "learning rate" : which == HP_WD ? "weight decay" : "momentum";
}

/* Parses "slice(b)" or "slice(a, b)" (spaces allowed anywhere between the tokens). Returns
 * the count of numbers (1 or 2), or -1. */
static int parse_slice(const char *s, double v[2])
{
    while (isspace((unsigned char)*s)) s++;
    if (strncmp(s, "slice", 5) != 0) return -1;
    s += 5;
    while (isspace((unsigned char)*s)) s++;
    if (*s++ != '(') return -1;
    int count = 0;
    for (;;) {
        char *end;
        v[count] = strtod(s, &end);
        if (end == s || !isfinite(v[count])) return -1;
        count++;
        s = end;
        while (isspace((unsigned char)*s)) s++;
        if (*s == ')') break;
        if (*s != ',' || count == 2) return -1;
        s++;
    }
    s++;
    while (isspace((unsigned char)*s)) s++;
    return *s == '\0' ? count : -1;
}

/* Checks one value of a hyperparameter against its range; n and path locate it. */
static int hp_check(const cfg_node *n, const char *path, int which, double v)
{
    if (drange_has(hp_range(which), v)) return 0;
    char rt[64];
    drange_text(rt, sizeof rt, hp_range(which));
    return node_fail(NN_ERANGE, n, path, "a %s must be %s", hp_noun(which), rt);
}

/* Reads a hyperparameter: a number, a list of numbers, "slice(b)" or "slice(a, b)". A null
 * leaves it unset when allow_unset. */
static int read_hparam(const cfg_node *n, const char *path, int which, int allow_unset,
                       io_hparam *hp)
{
    io_hparam h;
    memset(&h, 0, sizeof h);
    h.line = n->from_set ? -1 : n->line;
    if (allow_unset && node_is_null(n)) {
        h.line = 0;
        *hp = h;
        return 0;
    }
    const char *what = "expected a number, a list of numbers (one per layer group), 'slice(b)' "
                       "or 'slice(a, b)'";
    int rc;
    if (n->kind == NODE_SEQ) {
        if (n->n == 0)
            return node_fail(NN_EINVAL, n, path, "an empty list: give one value per layer group");
        if (n->n > IO_MAX_GROUPS)
            return node_fail(NN_ERANGE, n, path, "has %d values; a model has at most %d layer "
                             "groups", n->n, IO_MAX_GROUPS);
        for (int i = 0; i < n->n; i++) {
            char ipath[CFG_PATH];
            path_index(ipath, sizeof ipath, path, i);
            const cfg_node *it = n->kids[i];
            if (it->kind != NODE_SCALAR || parse_double(it->text, &h.v[i]) < 0)
                return node_fail(NN_EINVAL, it, ipath, "expected a number");
            if ((rc = hp_check(it, ipath, which, h.v[i])) < 0) return rc;
        }
        h.kind = IO_HP_LIST;
        h.n = n->n;
    } else if (n->kind == NODE_SCALAR && !node_is_null(n)) {
        const char *s = n->text;
        while (isspace((unsigned char)*s)) s++;
        if (strncmp(s, "slice", 5) == 0) {
            int count = parse_slice(s, h.v);
            if (count < 0)
                return node_fail(NN_EINVAL, n, path, "bad slice: expected 'slice(b)' or "
                                 "'slice(a, b)' with numbers a and b");
            for (int i = 0; i < count; i++)
                if (!(count == 2 && i == 0 && h.v[0] == 0.0)) /* slice(0, b): see below */
                    if ((rc = hp_check(n, path, which, h.v[i])) < 0) return rc;
            /* fastai reads slice(0, b) as slice(b); otherwise the series is geometric. */
            if (count == 2 && !(h.v[0] >= 0 && h.v[1] > 0))
                return node_fail(NN_ERANGE, n, path, "slice(a, b) is a geometric series: a and "
                                 "b must be > 0 (or a = 0, which fastai reads as slice(b))");
            h.kind = count == 1 ? IO_HP_SLICE1 : IO_HP_SLICE2;
            h.n = count;
        } else {
            if (parse_double(n->text, &h.v[0]) < 0) return node_fail(NN_EINVAL, n, path, "%s", what);
            if ((rc = hp_check(n, path, which, h.v[0])) < 0) return rc;
            h.kind = IO_HP_SCALAR;
            h.n = 1;
        }
    } else {
        return node_fail(NN_EINVAL, n, path, "%s", what);
    }
    *hp = h;
    return 0;
}

/* Shortest %g form of v that reads back to exactly v. */
static void fmt_double(char *buf, size_t len, double v)
{
    if (v == floor(v) && fabs(v) < 1e7) { /* 100 rather than 1e+02. */
        snprintf(buf, len, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

int io_hparam_format(char *buf, size_t len, const io_hparam *hp)
{
    if (buf == NULL || len == 0 || hp == NULL) return nn_err(NN_EINVAL, "io_hparam_format: NULL");
    size_t off = 0;
    int k = 0;
    char a[32], b[32];
    buf[0] = '\0';
    switch (hp->kind) {
    case IO_HP_SCALAR:
        fmt_double(a, sizeof a, hp->v[0]);
        k = snprintf(buf, len, "%s", a);
        break;
    case IO_HP_SLICE1:
        fmt_double(a, sizeof a, hp->v[0]);
        k = snprintf(buf, len, "slice(%s)", a);
        break;
    case IO_HP_SLICE2:
        fmt_double(a, sizeof a, hp->v[0]);
        fmt_double(b, sizeof b, hp->v[1]);
        k = snprintf(buf, len, "slice(%s, %s)", a, b);
        break;
    case IO_HP_LIST:
        for (int i = 0; i < hp->n && i < IO_MAX_GROUPS; i++) {
            fmt_double(a, sizeof a, hp->v[i]);
            k = snprintf(buf + off, len - off, "%s%s", i ? ", " : "[", a);
            if (k < 0 || (size_t)k >= len - off) break;
            off += (size_t)k;
        }
        if (off < len) k = snprintf(buf + off, len - off, "]");
        break;
    default:
        k = snprintf(buf, len, "unset");
        break;
    }
    if (k < 0 || off + (size_t)k >= len)
        return nn_err(NN_ERANGE, "io_hparam_format: a buffer of %zu bytes is too small", len);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Defaults.
 */
void io_schedule_default(io_schedule *s)
{
    memset(s, 0, sizeof *s);
    str_set(s->type, sizeof s->type, "one_cycle");
    s->pct_start = 0.25;
    s->div = 25.0;
    s->div_final = 1e5;
    s->moms[0] = 0.95;
    s->moms[1] = 0.85;
    s->moms[2] = 0.95;
    s->step_gamma = 0.1;
    s->step_epochs = 1;
    s->final_div = 1e5;
}

static void hparam_scalar(io_hparam *hp, double v)
{
    memset(hp, 0, sizeof *hp);
    hp->kind = IO_HP_SCALAR;
    hp->v[0] = v;
    hp->n = 1;
}

int io_config_default(io_config *cfg, const char *arch)
{
    NN_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof *cfg);
    int rc = 0;
    if (arch != NULL && strlen(arch) >= sizeof cfg->model.arch) {
        rc = nn_err(NN_ERANGE, "model.arch: too long: at most %zu characters (got '%.40s')",
                    sizeof cfg->model.arch - 1, arch);
        arch = NULL;
    }
    str_set(cfg->model.arch, sizeof cfg->model.arch, arch ? arch : "");
    cfg->model.cut = -1;
    cfg->model.nsplit = -1;

    hparam_scalar(&cfg->groups.lr, 1e-3);
    hparam_scalar(&cfg->groups.wd, 0.01);
    hparam_scalar(&cfg->groups.momentum, 0.9);

    str_set(cfg->optimizer.type, sizeof cfg->optimizer.type, "sgd");
    cfg->optimizer.beta2 = 0.99;
    cfg->optimizer.eps = 1e-8;
    cfg->optimizer.true_wd = 1;
    cfg->optimizer.clear_state = 1;
    cfg->groups.train_bn = 1;

    io_schedule_default(&cfg->schedule);

    str_set(cfg->data.train, sizeof cfg->data.train, "fashion-mnist");
    str_set(cfg->data.valid, sizeof cfg->data.valid, "fashion-mnist");
    str_set(cfg->data.dir, sizeof cfg->data.dir, "/usr/share/datasets/fashion-mnist");
    cfg->data.batch_size = 64;
    cfg->data.synthetic.samples = 512;
    cfg->data.synthetic.classes = 4;
    cfg->data.synthetic.input[0] = 1;
    cfg->data.synthetic.input[1] = 8;
    cfg->data.synthetic.input[2] = 8;

    cfg->train.epochs = 1;
    cfg->train.fine_tune.epochs = 1;
    cfg->train.fine_tune.base_lr = 2e-3;
    cfg->train.fine_tune.freeze_epochs = 1;
    cfg->train.fine_tune.lr_mult = 100.0;
    cfg->train.log_every = 50;
    cfg->train.accumulate = 1;
    cfg->train.clip_norm = 0.0;
    str_set(cfg->model.engine, sizeof cfg->model.engine, "cpu");
    cfg->comm.overlap = 1;
    cfg->comm.bucket_mb = 4.0;
    str_set(cfg->comm.progress, sizeof cfg->comm.progress, "nonblocking");
    cfg->checkpoint.every_steps = 0;
    cfg->checkpoint.every_epochs = 1;
    cfg->checkpoint.keep = 3;

    if (cfg->model.arch[0])
        snprintf(cfg->run.dir, sizeof cfg->run.dir, "runs/%s", cfg->model.arch);
    else
        str_set(cfg->run.dir, sizeof cfg->run.dir, "runs");
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * From the tree to io_config, one section at a time.
 */
static const char *const root_keys[] = {"model", "groups", "optimizer", "schedule", "data",
                                        "train", "comm", "checkpoint", "run", NULL};
static const char *const model_keys[] = {"arch", "cut", "split", "head", "classes", "input",
                                         "widths", "small_stem", "init_from", "engine", NULL};
static const char *const groups_keys[] = {"lr", "wd", "momentum", "freeze_to", "train_bn",
                                          "bn_freeze", NULL};
static const char *const optimizer_keys[] = {"type", "nesterov", "beta2", "eps", "decay_bn_bias",
                                             "true_wd", "clear_state", NULL};
static const char *const schedule_keys[] = {"type", "pct_start", "div", "div_final", "moms",
                                            "step_gamma", "step_epochs", "final_div", NULL};
static const char *const data_keys[] = {"train", "valid", "dir", "batch_size", "augment", "mean",
                                        "std", "synthetic", NULL};
static const char *const augment_keys[] = {"crop_padding", "flip", NULL};
static const char *const synthetic_keys[] = {"samples", "classes", "input", "seed", NULL};
static const char *const train_keys[] = {"epochs", "seed", "phases", "preset", "fine_tune",
                                         "log_every", "max_steps", "accumulate", "clip_norm",
                                         NULL};
static const char *const phase_keys[] = {"name", "epochs", "freeze_to", "lr", "schedule", NULL};
static const char *const fine_tune_keys[] = {"epochs", "base_lr", "freeze_epochs", "lr_mult",
                                             NULL};
static const char *const run_keys[] = {"dir", NULL};
static const char *const checkpoint_keys[] = {"every_steps", "every_epochs", "keep", NULL};
static const char *const comm_keys[] = {"overlap", "bucket_mb", "progress", NULL};

static const char *const head_words[] = {"default", "fastai", "linear", "original", NULL};
static const char *const optimizer_words[] = {"sgd", "adamw", NULL};
static const char *const schedule_words[] = {"one_cycle", "cosine", "step", "constant", NULL};
static const char *const preset_words[] = {"none", "fine_tune", NULL};
static const char *const progress_words[] = {"nonblocking", "thread", NULL};
static const char *const engine_words[] = {"cpu", "reference", NULL};

/* Shorthands for the conversion code: the value of key K in map M, and its path. */
#define GET(M, K) map_get((M), (K))
#define KEYPATH(buf, base, K) path_join((buf), sizeof(buf), (base), (K))

/* Opens the sub-map key of m (absent or null: *out = NULL). */
static int section(const cfg_node *m, const char *base, const char *key, const char *const *known,
                   const cfg_node **out, char *path, size_t plen)
{
    path_join(path, plen, base, key);
    *out = NULL;
    const cfg_node *v = map_get(m, key);
    int rc = want_map(v, path, out);
    if (rc < 0) return rc;
    return map_check_keys(*out, path, known);
}

static int conv_model(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "model", model_keys, &m, path, sizeof path);
    if (rc < 0) return rc;

    KEYPATH(kp, path, "arch");
    if ((v = GET(m, "arch")) == NULL) return fail_missing(m, root, kp);
    if ((rc = read_str(v, kp, cfg->model.arch, sizeof cfg->model.arch, 0)) < 0) return rc;

    KEYPATH(kp, path, "cut");
    if ((v = GET(m, "cut")) != NULL && !node_is_null(v))
        if ((rc = read_int(v, kp, -1, INT_MAX, &cfg->model.cut)) < 0) return rc;

    KEYPATH(kp, path, "split");
    if ((v = GET(m, "split")) != NULL && !node_is_null(v)) {
        if (v->kind == NODE_SCALAR) { /* One split point may be written without brackets. */
            if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->model.split[0])) < 0) return rc;
            cfg->model.nsplit = 1;
        } else {
            rc = read_int_list(v, kp, 1, cfg->model.split, IO_MAX_GROUPS - 2, &cfg->model.nsplit);
            if (rc < 0) return rc;
            for (int i = 1; i < cfg->model.nsplit; i++)
                if (cfg->model.split[i] <= cfg->model.split[i - 1]) {
                    char ip[CFG_PATH];
                    path_index(ip, sizeof ip, kp, i);
                    return node_fail(NN_ERANGE, v->kids[i], ip, "split points must be strictly "
                                     "increasing, and %d follows %d", cfg->model.split[i],
                                     cfg->model.split[i - 1]);
                }
        }
    }

    KEYPATH(kp, path, "head");
    if ((v = GET(m, "head")) != NULL && !node_is_null(v)) {
        if (v->kind == NODE_SCALAR && v->text[0] == '\0') {
            str_set(cfg->model.head, sizeof cfg->model.head, "");
        } else {
            if ((rc = read_enum(v, kp, head_words, cfg->model.head, sizeof cfg->model.head)) < 0)
                return rc;
            if (strcmp(cfg->model.head, "default") == 0)
                str_set(cfg->model.head, sizeof cfg->model.head, "");
        }
    }

    KEYPATH(kp, path, "classes");
    if ((v = GET(m, "classes")) != NULL && !node_is_null(v))
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->model.classes)) < 0) return rc;
    KEYPATH(kp, path, "input");
    if ((v = GET(m, "input")) != NULL)
        if ((rc = read_shape(v, kp, 1, cfg->model.input)) < 0) return rc;
    KEYPATH(kp, path, "widths");
    if ((v = GET(m, "widths")) != NULL && !node_is_null(v))
        if ((rc = read_int_list(v, kp, 1, cfg->model.widths, IO_MAX_WIDTHS,
                                &cfg->model.nwidths)) < 0)
            return rc;
    KEYPATH(kp, path, "small_stem");
    if ((v = GET(m, "small_stem")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->model.small_stem)) < 0) return rc;
    KEYPATH(kp, path, "init_from");
    if ((v = GET(m, "init_from")) != NULL)
        if ((rc = read_str(v, kp, cfg->model.init_from, sizeof cfg->model.init_from, 1)) < 0)
            return rc;
    KEYPATH(kp, path, "engine");
    if ((v = GET(m, "engine")) != NULL)
        if ((rc = read_enum(v, kp, engine_words, cfg->model.engine, sizeof cfg->model.engine)) < 0)
            return rc;
    return 0;
}

static int conv_groups(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "groups", groups_keys, &m, path, sizeof path);
    if (rc < 0) return rc;
    static const char *const names[] = {"lr", "wd", "momentum"};
    io_hparam *hps[] = {&cfg->groups.lr, &cfg->groups.wd, &cfg->groups.momentum};
    for (int i = 0; i < 3; i++) {
        KEYPATH(kp, path, names[i]);
        if ((v = GET(m, names[i])) != NULL)
            if ((rc = read_hparam(v, kp, HP_LR + i, 0, hps[i])) < 0) return rc;
    }
    KEYPATH(kp, path, "freeze_to");
    if ((v = GET(m, "freeze_to")) != NULL)
        if ((rc = read_int(v, kp, -IO_MAX_GROUPS, IO_MAX_GROUPS, &cfg->groups.freeze_to)) < 0)
            return rc;
    KEYPATH(kp, path, "train_bn");
    if ((v = GET(m, "train_bn")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->groups.train_bn)) < 0) return rc;
    KEYPATH(kp, path, "bn_freeze");
    if ((v = GET(m, "bn_freeze")) != NULL) {
        if ((rc = read_bool(v, kp, &cfg->groups.bn_freeze)) < 0) return rc;
        /* fastai's BnFreeze fixes only BatchNorm whose parameters are frozen. */
        if (cfg->groups.bn_freeze && cfg->groups.train_bn)
            return node_fail(NN_EINVAL, v, kp, "fixes the BatchNorm of frozen groups, but "
                             "groups.train_bn is true (the default), which trains it; set "
                             "groups.train_bn: false as well");
    }
    return 0;
}

static int conv_optimizer(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "optimizer", optimizer_keys, &m, path, sizeof path);
    if (rc < 0) return rc;
    KEYPATH(kp, path, "type");
    if ((v = GET(m, "type")) != NULL)
        if ((rc = read_enum(v, kp, optimizer_words, cfg->optimizer.type,
                            sizeof cfg->optimizer.type)) < 0)
            return rc;
    KEYPATH(kp, path, "nesterov");
    if ((v = GET(m, "nesterov")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->optimizer.nesterov)) < 0) return rc;
    KEYPATH(kp, path, "beta2");
    if ((v = GET(m, "beta2")) != NULL)
        if ((rc = read_double(v, kp, R_UNIT_HALF_OPEN, &cfg->optimizer.beta2)) < 0) return rc;
    KEYPATH(kp, path, "eps");
    if ((v = GET(m, "eps")) != NULL)
        if ((rc = read_double(v, kp, R_NONNEG, &cfg->optimizer.eps)) < 0) return rc;
    KEYPATH(kp, path, "decay_bn_bias");
    if ((v = GET(m, "decay_bn_bias")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->optimizer.decay_bn_bias)) < 0) return rc;
    KEYPATH(kp, path, "true_wd");
    if ((v = GET(m, "true_wd")) != NULL) {
        if ((rc = read_bool(v, kp, &cfg->optimizer.true_wd)) < 0) return rc;
        if (!cfg->optimizer.true_wd && strcmp(cfg->optimizer.type, "adamw") == 0)
            return node_fail(NN_EINVAL, v, kp, "false selects torch.optim.SGD's coupled L2 "
                             "decay for sgd; adamw always decouples its weight decay (optimizer."
                             "type is adamw)");
    }
    KEYPATH(kp, path, "clear_state");
    if ((v = GET(m, "clear_state")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->optimizer.clear_state)) < 0) return rc;
    return 0;
}

/* Reads the keys present in schedule map m (may be NULL) over the values already in *s. */
static int read_schedule(const cfg_node *m, const char *path, io_schedule *s)
{
    const cfg_node *v;
    char kp[CFG_PATH];
    int rc = map_check_keys(m, path, schedule_keys);
    if (rc < 0) return rc;
    KEYPATH(kp, path, "type");
    if ((v = GET(m, "type")) != NULL)
        if ((rc = read_enum(v, kp, schedule_words, s->type, sizeof s->type)) < 0) return rc;
    KEYPATH(kp, path, "pct_start");
    if ((v = GET(m, "pct_start")) != NULL)
        if ((rc = read_double(v, kp, R_UNIT, &s->pct_start)) < 0) return rc;
    static const char *const pos[] = {"div", "div_final", "step_gamma", "final_div"};
    double *dst[] = {&s->div, &s->div_final, &s->step_gamma, &s->final_div};
    for (int i = 0; i < 4; i++) {
        KEYPATH(kp, path, pos[i]);
        if ((v = GET(m, pos[i])) != NULL)
            if ((rc = read_double(v, kp, R_POS, dst[i])) < 0) return rc;
    }
    KEYPATH(kp, path, "moms");
    if ((v = GET(m, "moms")) != NULL)
        if ((rc = read_double_list(v, kp, R_UNIT_HALF_OPEN, s->moms, 3)) < 0) return rc;
    KEYPATH(kp, path, "step_epochs");
    if ((v = GET(m, "step_epochs")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &s->step_epochs)) < 0) return rc;
    return 0;
}

static int conv_schedule(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m;
    char path[CFG_PATH];
    path_join(path, sizeof path, "", "schedule");
    int rc = want_map(map_get(root, "schedule"), path, &m);
    if (rc < 0) return rc;
    return read_schedule(m, path, &cfg->schedule);
}

/* Reads data.mean or data.std: a number or a list of 1 to 4 numbers. */
static int read_norm(const cfg_node *n, const char *path, drange r, double out[4], int *count)
{
    memset(out, 0, 4 * sizeof *out);
    if (n->kind == NODE_SEQ) {
        if (n->n < 1 || n->n > 4)
            return node_fail(NN_EINVAL, n, path, "expected a number or a list of 1 to 4 numbers "
                             "(one per channel)");
        *count = n->n;
        for (int i = 0; i < n->n; i++) {
            char ip[CFG_PATH];
            path_index(ip, sizeof ip, path, i);
            int rc = read_double(n->kids[i], ip, r, &out[i]);
            if (rc < 0) return rc;
        }
        return 0;
    }
    *count = 1;
    return read_double(n, path, r, &out[0]);
}

static int conv_data(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v, *sub;
    char path[CFG_PATH], kp[CFG_PATH], sp[CFG_PATH];
    int rc = section(root, "", "data", data_keys, &m, path, sizeof path);
    if (rc < 0) return rc;

    KEYPATH(kp, path, "train");
    if ((v = GET(m, "train")) != NULL)
        if ((rc = read_str(v, kp, cfg->data.train, sizeof cfg->data.train, 0)) < 0) return rc;
    int builtin = strcmp(cfg->data.train, "fashion-mnist") == 0 ||
                  strcmp(cfg->data.train, "synthetic") == 0;
    /* By default a built-in set is validated on its own test split (the same name opened
     * as the valid split), and an HDF5 train set on nothing. */
    KEYPATH(kp, path, "valid");
    if ((v = GET(m, "valid")) != NULL) {
        if ((rc = read_str(v, kp, cfg->data.valid, sizeof cfg->data.valid, 1)) < 0) return rc;
    } else {
        str_set(cfg->data.valid, sizeof cfg->data.valid, builtin ? cfg->data.train : "");
    }
    KEYPATH(kp, path, "dir");
    if ((v = GET(m, "dir")) != NULL)
        if ((rc = read_str(v, kp, cfg->data.dir, sizeof cfg->data.dir, 0)) < 0) return rc;
    KEYPATH(kp, path, "batch_size");
    if ((v = GET(m, "batch_size")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->data.batch_size)) < 0) return rc;

    if ((rc = section(m, path, "augment", augment_keys, &sub, sp, sizeof sp)) < 0) return rc;
    KEYPATH(kp, sp, "crop_padding");
    if ((v = GET(sub, "crop_padding")) != NULL)
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->data.augment.crop_padding)) < 0) return rc;
    KEYPATH(kp, sp, "flip");
    if ((v = GET(sub, "flip")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->data.augment.flip)) < 0) return rc;

    const cfg_node *mv = GET(m, "mean"), *sv = GET(m, "std");
    if (node_is_null(mv) != node_is_null(sv)) {
        const cfg_node *given = node_is_null(mv) ? sv : mv;
        KEYPATH(kp, path, node_is_null(mv) ? "std" : "mean");
        return node_fail(NN_EINVAL, given, kp, "data.mean and data.std go together: give both "
                         "or neither");
    }
    if (!node_is_null(mv)) {
        int nm, ns;
        KEYPATH(kp, path, "mean");
        if ((rc = read_norm(mv, kp, R_ANY, cfg->data.mean, &nm)) < 0) return rc;
        KEYPATH(kp, path, "std");
        if ((rc = read_norm(sv, kp, R_POS, cfg->data.std, &ns)) < 0) return rc;
        if (nm != ns)
            return node_fail(NN_EINVAL, sv, kp, "has %d value%s but data.mean has %d", ns,
                             ns == 1 ? "" : "s", nm);
        cfg->data.nnorm = nm;
    }

    if ((rc = section(m, path, "synthetic", synthetic_keys, &sub, sp, sizeof sp)) < 0) return rc;
    KEYPATH(kp, sp, "samples");
    if ((v = GET(sub, "samples")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->data.synthetic.samples)) < 0) return rc;
    KEYPATH(kp, sp, "classes");
    if ((v = GET(sub, "classes")) != NULL)
        if ((rc = read_int(v, kp, 2, INT_MAX, &cfg->data.synthetic.classes)) < 0) return rc;
    KEYPATH(kp, sp, "input");
    if ((v = GET(sub, "input")) != NULL)
        if ((rc = read_shape(v, kp, 0, cfg->data.synthetic.input)) < 0) return rc;
    KEYPATH(kp, sp, "seed");
    if ((v = GET(sub, "seed")) != NULL)
        if ((rc = read_u64(v, kp, &cfg->data.synthetic.seed)) < 0) return rc;
    return 0;
}

/* Reads phase i (map n) over the top-level defaults. */
static int read_phase(const io_config *cfg, const cfg_node *n, const char *path, int i,
                      io_phase *ph)
{
    memset(ph, 0, sizeof *ph);
    snprintf(ph->name, sizeof ph->name, "phase%d", i);
    if (n->kind != NODE_MAP)
        return node_fail(NN_EINVAL, n, path, "expected a map with epochs and optionally name, "
                         "freeze_to, lr and schedule");
    int rc = map_check_keys(n, path, phase_keys);
    if (rc < 0) return rc;
    const cfg_node *v;
    char kp[CFG_PATH];
    KEYPATH(kp, path, "name");
    if ((v = GET(n, "name")) != NULL)
        if ((rc = read_str(v, kp, ph->name, sizeof ph->name, 0)) < 0) return rc;
    KEYPATH(kp, path, "epochs");
    if ((v = GET(n, "epochs")) == NULL) return fail_missing(n, n, kp);
    if ((rc = read_int(v, kp, 1, INT_MAX, &ph->epochs)) < 0) return rc;
    KEYPATH(kp, path, "freeze_to");
    if ((v = GET(n, "freeze_to")) != NULL && !node_is_null(v)) {
        rc = read_int(v, kp, -IO_MAX_GROUPS, IO_MAX_GROUPS, &ph->freeze_to);
        if (rc < 0) return rc;
        ph->has_freeze_to = 1;
    }
    KEYPATH(kp, path, "lr");
    if ((v = GET(n, "lr")) != NULL)
        if ((rc = read_hparam(v, kp, HP_LR, 1, &ph->lr)) < 0) return rc;
    KEYPATH(kp, path, "schedule");
    if ((v = GET(n, "schedule")) != NULL && !node_is_null(v)) {
        if (v->kind != NODE_MAP) return node_fail(NN_EINVAL, v, kp, "expected a map of keys");
        ph->schedule = cfg->schedule;
        if ((rc = read_schedule(v, kp, &ph->schedule)) < 0) return rc;
        ph->has_schedule = 1;
    }
    return 0;
}

/* Fills train.phases from the fine_tune preset (fastai's Learner.fine_tune): freeze(), then
 * one-cycle for freeze_epochs at slice(base_lr) with pct_start 0.99; then base_lr /= 2,
 * unfreeze(), one-cycle for epochs at slice(base_lr/lr_mult, base_lr) with pct_start 0.3 and
 * div 5. The other one-cycle settings come from the top-level schedule. */
static void expand_fine_tune(io_config *cfg)
{
    const double base = cfg->train.fine_tune.base_lr;
    const double half = base / 2;
    int n = 0;
    memset(cfg->train.phases, 0, sizeof cfg->train.phases);
    if (cfg->train.fine_tune.freeze_epochs > 0) {
        io_phase *p = &cfg->train.phases[n++];
        str_set(p->name, sizeof p->name, "frozen");
        p->epochs = cfg->train.fine_tune.freeze_epochs;
        p->freeze_to = -1;
        p->has_freeze_to = 1;
        p->lr.kind = IO_HP_SLICE1;
        p->lr.v[0] = base;
        p->lr.n = 1;
        p->schedule = cfg->schedule;
        str_set(p->schedule.type, sizeof p->schedule.type, "one_cycle");
        p->schedule.pct_start = 0.99;
        p->has_schedule = 1;
    }
    io_phase *p = &cfg->train.phases[n++];
    str_set(p->name, sizeof p->name, "unfrozen");
    p->epochs = cfg->train.fine_tune.epochs;
    p->freeze_to = 0;
    p->has_freeze_to = 1;
    p->lr.kind = IO_HP_SLICE2;
    p->lr.v[0] = half / cfg->train.fine_tune.lr_mult;
    p->lr.v[1] = half;
    p->lr.n = 2;
    p->schedule = cfg->schedule;
    str_set(p->schedule.type, sizeof p->schedule.type, "one_cycle");
    p->schedule.pct_start = 0.3;
    p->schedule.div = 5.0;
    p->has_schedule = 1;
    cfg->train.nphases = n;
}

static int conv_train(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v, *sub;
    char path[CFG_PATH], kp[CFG_PATH], sp[CFG_PATH];
    int rc = section(root, "", "train", train_keys, &m, path, sizeof path);
    if (rc < 0) return rc;

    KEYPATH(kp, path, "epochs");
    if ((v = GET(m, "epochs")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->train.epochs)) < 0) return rc;
    KEYPATH(kp, path, "seed");
    if ((v = GET(m, "seed")) != NULL)
        if ((rc = read_u64(v, kp, &cfg->train.seed)) < 0) return rc;
    KEYPATH(kp, path, "log_every");
    if ((v = GET(m, "log_every")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->train.log_every)) < 0) return rc;
    KEYPATH(kp, path, "max_steps");
    if ((v = GET(m, "max_steps")) != NULL)
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->train.max_steps)) < 0) return rc;
    KEYPATH(kp, path, "accumulate");
    if ((v = GET(m, "accumulate")) != NULL)
        if ((rc = read_int(v, kp, 1, 1 << 16, &cfg->train.accumulate)) < 0) return rc;
    KEYPATH(kp, path, "clip_norm");
    if ((v = GET(m, "clip_norm")) != NULL)
        if ((rc = read_double(v, kp, R_NONNEG, &cfg->train.clip_norm)) < 0) return rc;

    KEYPATH(kp, path, "preset");
    const cfg_node *preset = GET(m, "preset");
    if (preset != NULL && !node_is_null(preset) &&
        !(preset->kind == NODE_SCALAR && preset->text[0] == '\0')) {
        rc = read_enum(preset, kp, preset_words, cfg->train.preset, sizeof cfg->train.preset);
        if (rc < 0) return rc;
        if (strcmp(cfg->train.preset, "none") == 0)
            str_set(cfg->train.preset, sizeof cfg->train.preset, "");
    }

    cfg->train.fine_tune.epochs = cfg->train.epochs;
    if ((rc = section(m, path, "fine_tune", fine_tune_keys, &sub, sp, sizeof sp)) < 0) return rc;
    KEYPATH(kp, sp, "epochs");
    if ((v = GET(sub, "epochs")) != NULL)
        if ((rc = read_int(v, kp, 1, INT_MAX, &cfg->train.fine_tune.epochs)) < 0) return rc;
    KEYPATH(kp, sp, "base_lr");
    if ((v = GET(sub, "base_lr")) != NULL)
        if ((rc = read_double(v, kp, R_POS, &cfg->train.fine_tune.base_lr)) < 0) return rc;
    KEYPATH(kp, sp, "freeze_epochs");
    if ((v = GET(sub, "freeze_epochs")) != NULL)
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->train.fine_tune.freeze_epochs)) < 0) return rc;
    KEYPATH(kp, sp, "lr_mult");
    if ((v = GET(sub, "lr_mult")) != NULL)
        if ((rc = read_double(v, kp, R_POS, &cfg->train.fine_tune.lr_mult)) < 0) return rc;

    KEYPATH(kp, path, "phases");
    const cfg_node *ph = GET(m, "phases");
    if (ph != NULL && !node_is_null(ph)) {
        if (ph->kind != NODE_SEQ)
            return node_fail(NN_EINVAL, ph, kp, "expected a list of phases (maps with epochs and "
                             "optionally name, freeze_to, lr and schedule)");
        if (ph->n > 0 && cfg->train.preset[0] != '\0')
            return node_fail(NN_EINVAL, ph, kp, "train.preset '%s' fills the phases; give "
                             "either the preset or phases, not both", cfg->train.preset);
        if (ph->n > IO_MAX_PHASES)
            return node_fail(NN_ERANGE, ph, kp, "has %d phases; at most %d", ph->n, IO_MAX_PHASES);
        for (int i = 0; i < ph->n; i++) {
            char ip[CFG_PATH];
            path_index(ip, sizeof ip, kp, i);
            if ((rc = read_phase(cfg, ph->kids[i], ip, i, &cfg->train.phases[i])) < 0) return rc;
        }
        cfg->train.nphases = ph->n;
    }
    if (strcmp(cfg->train.preset, "fine_tune") == 0) expand_fine_tune(cfg);
    return 0;
}

static int conv_comm(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "comm", comm_keys, &m, path, sizeof path);
    if (rc < 0) return rc;
    KEYPATH(kp, path, "overlap");
    if ((v = GET(m, "overlap")) != NULL)
        if ((rc = read_bool(v, kp, &cfg->comm.overlap)) < 0) return rc;
    KEYPATH(kp, path, "bucket_mb");
    if ((v = GET(m, "bucket_mb")) != NULL)
        if ((rc = read_double(v, kp, R_POS, &cfg->comm.bucket_mb)) < 0) return rc;
    KEYPATH(kp, path, "progress");
    if ((v = GET(m, "progress")) != NULL)
        if ((rc = read_enum(v, kp, progress_words, cfg->comm.progress, sizeof cfg->comm.progress)) < 0)
            return rc;
    return 0;
}

static int conv_checkpoint(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "checkpoint", checkpoint_keys, &m, path, sizeof path);
    if (rc < 0) return rc;
    KEYPATH(kp, path, "every_steps");
    if ((v = GET(m, "every_steps")) != NULL)
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->checkpoint.every_steps)) < 0) return rc;
    KEYPATH(kp, path, "every_epochs");
    if ((v = GET(m, "every_epochs")) != NULL)
        if ((rc = read_int(v, kp, 0, INT_MAX, &cfg->checkpoint.every_epochs)) < 0) return rc;
    KEYPATH(kp, path, "keep");
    if ((v = GET(m, "keep")) != NULL)
        if ((rc = read_int(v, kp, 1, 1000000, &cfg->checkpoint.keep)) < 0) return rc;
    return 0;
}

static int conv_run(io_config *cfg, const cfg_node *root)
{
    const cfg_node *m, *v;
    char path[CFG_PATH], kp[CFG_PATH];
    int rc = section(root, "", "run", run_keys, &m, path, sizeof path);
    if (rc < 0) return rc;
    KEYPATH(kp, path, "dir");
    if ((v = GET(m, "dir")) != NULL)
        return read_str(v, kp, cfg->run.dir, sizeof cfg->run.dir, 0);
    char dir[sizeof cfg->run.dir];
    snprintf(dir, sizeof dir, "runs/%s", cfg->model.arch);
    str_set(cfg->run.dir, sizeof cfg->run.dir, dir);
    return 0;
}

/* Converts the whole tree (a map) into *cfg, which holds the defaults. */
static int tree_convert(io_config *cfg, const cfg_node *root)
{
    int rc = map_check_keys(root, "", root_keys);
    if (rc == 0) rc = conv_model(cfg, root);
    if (rc == 0) rc = conv_groups(cfg, root);
    if (rc == 0) rc = conv_optimizer(cfg, root);
    if (rc == 0) rc = conv_schedule(cfg, root);
    if (rc == 0) rc = conv_data(cfg, root);
    if (rc == 0) rc = conv_train(cfg, root);
    if (rc == 0) rc = conv_comm(cfg, root);
    if (rc == 0) rc = conv_checkpoint(cfg, root);
    if (rc == 0) rc = conv_run(cfg, root);
    return rc;
}

int io_config_load(io_config *cfg, const char *path, const char *const *sets, int nsets)
{
    if (cfg == NULL || path == NULL || nsets < 0 || (nsets > 0 && sets == NULL))
        return nn_err(NN_EINVAL, "io_config_load: NULL argument");
    io_config_default(cfg, NULL);
    if (strlen(path) >= sizeof cfg->path)
        return nn_err(NN_EINVAL, "%.60s...: the config path is too long", path);

    char *text = NULL;
    size_t len = 0;
    int rc = file_read(&text, &len, path);
    if (rc < 0) return rc;
    cfg_node *root = NULL;
    rc = tree_parse(&root, text, len, path, 0, "");
    free(text);
    if (rc < 0) return rc;
    if (root == NULL || node_is_null(root)) { /* An empty file: every default. */
        node_free(root);
        root = node_new(NODE_MAP, 1, path, 0);
        if (root == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
    }
    if (root->kind != NODE_MAP) {
        rc = node_fail(NN_EINVAL, root, "(top level)", "expected a map of sections (%s)",
                       "model, groups, optimizer, schedule, data, train, run");
        node_free(root);
        return rc;
    }

    /* Each override's text outlives the tree, whose nodes point to it for messages. */
    char **origins = calloc((size_t)nsets + 1, sizeof *origins);
    if (origins == NULL) {
        node_free(root);
        return nn_err(NN_ENOMEM, "config: out of memory");
    }
    for (int i = 0; i < nsets && rc == 0; i++) {
        if (sets[i] == NULL) {
            rc = nn_err(NN_EINVAL, "io_config_load: sets[%d] is NULL", i);
            break;
        }
        size_t olen = strlen(sets[i]) + 8;
        if ((origins[i] = malloc(olen)) == NULL) {
            rc = nn_err(NN_ENOMEM, "config: out of memory");
            break;
        }
        snprintf(origins[i], olen, "--set %s", sets[i]);
        rc = tree_apply_set(root, sets[i], origins[i]);
    }
    if (rc == 0) {
        str_set(cfg->path, sizeof cfg->path, path);
        rc = tree_convert(cfg, root);
    }
    node_free(root);
    for (int i = 0; i < nsets; i++) free(origins[i]);
    free(origins);
    if (rc < 0) io_config_default(cfg, NULL);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Writing YAML.
 */

/* Writes s as a double-quoted YAML string. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Starts a line: indentation and "key: ". */
static void put_key(FILE *f, int indent, const char *key)
{
    fprintf(f, "%*s%s:", indent, "", key);
}

/* A line "key: value  # comment" with the value already formatted. */
static void put_kv(FILE *f, int indent, const char *key, const char *value, const char *comment)
{
    char line[1200];
    snprintf(line, sizeof line, "%*s%s: %s", indent, "", key, value);
    if (comment != NULL)
        fprintf(f, "%-36s # %s\n", line, comment);
    else
        fprintf(f, "%s\n", line);
}

static void put_int(FILE *f, int indent, const char *key, long long v, const char *comment)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    put_kv(f, indent, key, b, comment);
}

static void put_u64(FILE *f, int indent, const char *key, unsigned long long v)
{
    char b[32];
    snprintf(b, sizeof b, "%llu", v);
    put_kv(f, indent, key, b, NULL);
}

static void put_double(FILE *f, int indent, const char *key, double v, const char *comment)
{
    char b[32];
    fmt_double(b, sizeof b, v);
    put_kv(f, indent, key, b, comment);
}

static void put_bool(FILE *f, int indent, const char *key, int v, const char *comment)
{
    put_kv(f, indent, key, v ? "true" : "false", comment);
}

static void put_str(FILE *f, int indent, const char *key, const char *s, const char *comment)
{
    put_key(f, indent, key);
    fputc(' ', f);
    put_quoted(f, s);
    if (comment) fprintf(f, "  # %s", comment);
    fputc('\n', f);
}

/* A flow list of integers: "[1, 2, 3]". */
static void fmt_int_list(char *buf, size_t len, const int *v, int n)
{
    size_t off = 0;
    off += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? ", " : "", v[i]);
    if (off < len) snprintf(buf + off, len - off, "]");
}

/* A flow list of numbers. */
static void fmt_double_list(char *buf, size_t len, const double *v, int n)
{
    size_t off = 0;
    off += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++) {
        char d[32];
        fmt_double(d, sizeof d, v[i]);
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", d);
    }
    if (off < len) snprintf(buf + off, len - off, "]");
}

static void put_hparam(FILE *f, int indent, const char *key, const io_hparam *hp,
                       const char *comment)
{
    char b[1024], q[1040];
    io_hparam_format(b, sizeof b, hp);
    if (hp->kind == IO_HP_SLICE1 || hp->kind == IO_HP_SLICE2) {
        snprintf(q, sizeof q, "\"%s\"", b);
        put_kv(f, indent, key, q, comment);
    } else {
        put_kv(f, indent, key, b, comment);
    }
}

static void put_schedule(FILE *f, int indent, const io_schedule *s)
{
    char b[128];
    put_kv(f, indent, "type", s->type, "one_cycle, cosine, step or constant");
    put_double(f, indent, "pct_start", s->pct_start, "one_cycle");
    put_double(f, indent, "div", s->div, "one_cycle: starts at lr/div");
    put_double(f, indent, "div_final", s->div_final, "one_cycle: ends at lr/div_final");
    fmt_double_list(b, sizeof b, s->moms, 3);
    put_kv(f, indent, "moms", b, "one_cycle: momentum start, middle, end");
    put_double(f, indent, "step_gamma", s->step_gamma, "step: factor");
    put_int(f, indent, "step_epochs", s->step_epochs, "step: every this many epochs");
    put_double(f, indent, "final_div", s->final_div, "cosine: ends at lr/final_div");
}

/* Writes the phases as a block list under "  phases:". */
static void put_phases(FILE *f, const io_config *cfg)
{
    for (int i = 0; i < cfg->train.nphases; i++) {
        const io_phase *p = &cfg->train.phases[i];
        fprintf(f, "    - name: ");
        put_quoted(f, p->name);
        fputc('\n', f);
        put_int(f, 6, "epochs", p->epochs, NULL);
        if (p->has_freeze_to)
            put_int(f, 6, "freeze_to", p->freeze_to, NULL);
        else
            fprintf(f, "      # freeze_to: unset, groups.freeze_to applies\n");
        if (p->lr.kind != IO_HP_UNSET)
            put_hparam(f, 6, "lr", &p->lr, NULL);
        else
            fprintf(f, "      # lr: unset, groups.lr applies\n");
        if (p->has_schedule) {
            fprintf(f, "      schedule:\n");
            put_schedule(f, 8, &p->schedule);
        } else {
            fprintf(f, "      # schedule: unset, the top-level schedule applies\n");
        }
    }
}

/* Writes the phases as comment lines ("# " before each line), for phases that a preset
 * fills: written out as keys they would clash with the preset on reading. */
static void put_phases_commented(FILE *f, const io_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL) {
        fprintf(f, "#   (out of memory)\n");
        return;
    }
    put_phases(mem, cfg);
    fclose(mem);
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(f, "# %.*s\n", n, line);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
}

int io_config_write(const io_config *cfg, FILE *f)
{
    if (cfg == NULL || f == NULL) return nn_err(NN_EINVAL, "io_config_write: NULL argument");
    char b[1024];
    fprintf(f, "# strata: the effective configuration, every key (docs/config.md).\n");

    fprintf(f, "model:\n");
    put_str(f, 2, "arch", cfg->model.arch, NULL);
    put_int(f, 2, "cut", cfg->model.cut, "-1: the architecture's default");
    if (cfg->model.nsplit < 0) {
        put_kv(f, 2, "split", "null", "null: the architecture's default");
    } else {
        fmt_int_list(b, sizeof b, cfg->model.split, cfg->model.nsplit);
        put_kv(f, 2, "split", b, NULL);
    }
    put_kv(f, 2, "head", cfg->model.head[0] ? cfg->model.head : "default",
           "default, fastai, linear or original");
    put_int(f, 2, "classes", cfg->model.classes, "0: from the data");
    fmt_int_list(b, sizeof b, cfg->model.input, 3);
    put_kv(f, 2, "input", b, "C, H, W; [0, 0, 0]: from the data");
    if (cfg->model.nwidths > 0) {
        fmt_int_list(b, sizeof b, cfg->model.widths, cfg->model.nwidths);
        put_kv(f, 2, "widths", b, "mlp hidden widths");
    } else {
        put_kv(f, 2, "widths", "null", "mlp hidden widths; null: the default");
    }
    put_bool(f, 2, "small_stem", cfg->model.small_stem, NULL);
    put_str(f, 2, "init_from", cfg->model.init_from, "\"\": no pretrained body");
    put_kv(f, 2, "engine", cfg->model.engine, "cpu (oneDNN) or reference (im2col + OpenBLAS)");

    fprintf(f, "groups:\n");
    put_hparam(f, 2, "lr", &cfg->groups.lr, NULL);
    put_hparam(f, 2, "wd", &cfg->groups.wd, NULL);
    put_hparam(f, 2, "momentum", &cfg->groups.momentum, NULL);
    put_int(f, 2, "freeze_to", cfg->groups.freeze_to, NULL);
    put_bool(f, 2, "train_bn", cfg->groups.train_bn, "BatchNorm parameters of frozen groups train");
    put_bool(f, 2, "bn_freeze", cfg->groups.bn_freeze, "BatchNorm of frozen groups in eval mode");

    fprintf(f, "optimizer:\n");
    put_kv(f, 2, "type", cfg->optimizer.type, "sgd or adamw");
    put_bool(f, 2, "nesterov", cfg->optimizer.nesterov, "sgd");
    put_double(f, 2, "beta2", cfg->optimizer.beta2, "adamw");
    put_double(f, 2, "eps", cfg->optimizer.eps, "adamw");
    put_bool(f, 2, "decay_bn_bias", cfg->optimizer.decay_bn_bias, NULL);
    put_bool(f, 2, "true_wd", cfg->optimizer.true_wd, "sgd: decoupled decay; false: L2");
    put_bool(f, 2, "clear_state", cfg->optimizer.clear_state, "at a phase's freeze_to");

    fprintf(f, "schedule:\n");
    put_schedule(f, 2, &cfg->schedule);

    fprintf(f, "data:\n");
    put_str(f, 2, "train", cfg->data.train, NULL);
    put_str(f, 2, "valid", cfg->data.valid, NULL);
    put_str(f, 2, "dir", cfg->data.dir, NULL);
    put_int(f, 2, "batch_size", cfg->data.batch_size, "per rank");
    fprintf(f, "  augment:\n");
    put_int(f, 4, "crop_padding", cfg->data.augment.crop_padding, NULL);
    put_bool(f, 4, "flip", cfg->data.augment.flip, NULL);
    if (cfg->data.nnorm > 0) {
        fmt_double_list(b, sizeof b, cfg->data.mean, cfg->data.nnorm);
        put_kv(f, 2, "mean", b, NULL);
        fmt_double_list(b, sizeof b, cfg->data.std, cfg->data.nnorm);
        put_kv(f, 2, "std", b, NULL);
    } else {
        put_kv(f, 2, "mean", "null", "null: the dataset's default");
        put_kv(f, 2, "std", "null", "null: the dataset's default");
    }
    fprintf(f, "  synthetic:\n");
    put_int(f, 4, "samples", cfg->data.synthetic.samples, NULL);
    put_int(f, 4, "classes", cfg->data.synthetic.classes, NULL);
    fmt_int_list(b, sizeof b, cfg->data.synthetic.input, 3);
    put_kv(f, 4, "input", b, NULL);
    put_u64(f, 4, "seed", cfg->data.synthetic.seed);

    fprintf(f, "train:\n");
    put_int(f, 2, "epochs", cfg->train.epochs, NULL);
    put_u64(f, 2, "seed", cfg->train.seed);
    put_int(f, 2, "log_every", cfg->train.log_every, NULL);
    put_int(f, 2, "max_steps", cfg->train.max_steps, "0: every step of an epoch");
    put_int(f, 2, "accumulate", cfg->train.accumulate, "micro-batches per optimizer step");
    put_double(f, 2, "clip_norm", cfg->train.clip_norm, "0: no clipping");
    put_kv(f, 2, "preset", cfg->train.preset[0] ? cfg->train.preset : "none",
           "none or fine_tune");
    fprintf(f, "  fine_tune:\n");
    put_int(f, 4, "epochs", cfg->train.fine_tune.epochs, NULL);
    put_double(f, 4, "base_lr", cfg->train.fine_tune.base_lr, NULL);
    put_int(f, 4, "freeze_epochs", cfg->train.fine_tune.freeze_epochs, NULL);
    put_double(f, 4, "lr_mult", cfg->train.fine_tune.lr_mult, NULL);
    if (cfg->train.nphases == 0) {
        put_kv(f, 2, "phases", "[]", "none: train.epochs with groups.* and schedule");
    } else if (cfg->train.preset[0]) {
        put_kv(f, 2, "phases", "[]", "filled by the preset, as follows:");
        fprintf(f, "#   phases:\n");
        put_phases_commented(f, cfg);
    } else {
        fprintf(f, "  phases:\n");
        put_phases(f, cfg);
    }

    fprintf(f, "comm:\n");
    put_bool(f, 2, "overlap", cfg->comm.overlap, "reduce while lower groups run backward");
    put_double(f, 2, "bucket_mb", cfg->comm.bucket_mb, "largest all-reduce, MiB");
    put_kv(f, 2, "progress", cfg->comm.progress, "nonblocking or thread: who drives the overlap");

    fprintf(f, "checkpoint:\n");
    put_int(f, 2, "every_steps", cfg->checkpoint.every_steps, "0: not by steps");
    put_int(f, 2, "every_epochs", cfg->checkpoint.every_epochs, "0: not at epoch ends");
    put_int(f, 2, "keep", cfg->checkpoint.keep, "newest checkpoints kept");

    fprintf(f, "run:\n");
    put_str(f, 2, "dir", cfg->run.dir, NULL);

    if (ferror(f) || fflush(f) != 0)
        return nn_err(NN_EIO, "cannot write the config: %s", strerror(errno));
    return 0;
}

int io_config_to_string(char **out, const io_config *cfg)
{
    if (out == NULL || cfg == NULL) return nn_err(NN_EINVAL, "io_config_to_string: NULL");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) return nn_err(NN_ENOMEM, "io_config_to_string: out of memory");
    int rc = io_config_write(cfg, f);
    if (fclose(f) != 0 && rc == 0) rc = nn_err(NN_ENOMEM, "io_config_to_string: out of memory");
    if (rc < 0) {
        free(text);
        return rc;
    }
    *out = text;
    return 0;
}
