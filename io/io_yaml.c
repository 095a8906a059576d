/* The YAML layer of io's readers (io_yaml.h): libyaml's events into a tree of maps, lists and
 * scalars that remember their file and line, --set overrides applied to it, and the messages
 * that name a node. */
#include "io/io_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "nn/nn.h"
#include "util/util.h"

/* ---------------------------------------------------------------------------------------
 * The tree.
 */
io__node *io__node_new(int kind, int line, const char *origin, int from_set)
{
    io__node *n = calloc(1, sizeof *n);
    if (n == NULL) return NULL;
    n->kind = kind;
    n->line = line;
    n->origin = origin;
    n->from_set = from_set;
    return n;
}

/* Frees a node and everything below it. NULL is a no-op. */
void io__node_free(io__node *n)
{
    if (n == NULL) return;
    for (int i = 0; i < n->n; i++) {
        io__node_free(n->kids[i]);
        if (n->keys) free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->key_lines);
    free(n->index);
    free(n->text);
    free(n);
}

/* ---------------------------------------------------------------------------------------
 * Hash indexes of names (a map's keys, a text's anchors), so that a lookup or a duplicate
 * check costs O(1) on average rather than a scan of every name before it. The names stay in
 * their owner's array; a slot holds the name's index there + 1 (0: empty). Open addressing
 * with linear probing, at most half full.
 */
static unsigned long yaml_compares; /* io__yaml_compares */

unsigned long io__yaml_compares(void)
{
    return yaml_compares;
}

/* Compares a name with another, counted for io__yaml_compares. */
static int name_eq(const char *a, const char *b)
{
    yaml_compares++;
    return strcmp(a, b) == 0;
}

/* FNV-1a. */
static unsigned name_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The name of index i in the owner's array. */
typedef const char *(*name_at_fn)(const void *arr, int i);

/* The slot of name in index (cap slots): the one that holds it, or the empty one where it
 * would go. */
static int *index_slot(int *index, int cap, const char *name, name_at_fn at, const void *arr)
{
    unsigned mask = (unsigned)cap - 1;
    for (unsigned h = name_hash(name) & mask;; h = (h + 1) & mask) {
        int *slot = &index[h];
        if (*slot == 0 || name_eq(at(arr, *slot - 1), name)) return slot;
    }
}

/* Adds name i (the last of n) to the index, first building or growing it to at least twice n
 * slots from names 0..n-1. A name already there now points to i (a later anchor wins). */
static int index_add(int **index, int *cap, int i, int n, name_at_fn at, const void *arr)
{
    if (2 * n > *cap) {
        int ncap = *cap ? 2 * *cap : 4 * IO__YAML_INDEX;
        while (ncap < 2 * n) ncap *= 2;
        int *x = calloc((size_t)ncap, sizeof *x);
        if (x == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        free(*index);
        *index = x;
        *cap = ncap;
        for (int j = 0; j < n; j++) *index_slot(x, ncap, at(arr, j), at, arr) = j + 1;
        return 0;
    }
    *index_slot(*index, *cap, at(arr, i), at, arr) = i + 1;
    return 0;
}

static const char *map_key_at(const void *arr, int i)
{
    return ((const io__node *)arr)->keys[i];
}

/* Appends kid (and, for a map, its key, whose ownership passes too) to parent. */
static int node_append(io__node *parent, char *key, int key_line, io__node *kid)
{
    if (parent->n == parent->cap) {
        int cap = parent->cap ? 2 * parent->cap : 8;
        io__node **kids = realloc(parent->kids, (size_t)cap * sizeof *kids);
        if (kids == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        parent->kids = kids;
        if (parent->kind == IO__MAP) {
            char **keys = realloc(parent->keys, (size_t)cap * sizeof *keys);
            if (keys == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
            parent->keys = keys;
            int *lines = realloc(parent->key_lines, (size_t)cap * sizeof *lines);
            if (lines == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
            parent->key_lines = lines;
        }
        parent->cap = cap;
    }
    if (parent->kind == IO__MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
        int n = parent->n + 1;
        if (n >= IO__YAML_INDEX &&
            index_add(&parent->index, &parent->icap, n - 1, n, map_key_at, parent) < 0)
            return NN_ENOMEM; /* parent unchanged: the key is not appended */
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

/* The index of key in map m, or -1. */
int io__map_index(const io__node *m, const char *key)
{
    if (m == NULL || m->kind != IO__MAP) return -1;
    if (m->index != NULL) {
        int slot = *index_slot(m->index, m->icap, key, map_key_at, m);
        return slot - 1;
    }
    for (int i = 0; i < m->n; i++)
        if (name_eq(m->keys[i], key)) return i;
    return -1;
}

/* The value of key in map m, or NULL when m is NULL or lacks the key. */
const io__node *io__map_get(const io__node *m, const char *key)
{
    int i = io__map_index(m, key);
    return i < 0 ? NULL : m->kids[i];
}

/* A YAML null: an unquoted empty value, ~ or null. */
int io__is_null(const io__node *n)
{
    if (n == NULL) return 1;
    if (n->kind != IO__SCALAR || !n->plain) return 0;
    const char *t = n->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* ---------------------------------------------------------------------------------------
 * Messages.
 */

/* "FILE:LINE" for a node of the file, the override's text for a node of an override. */
void io__node_where(char *buf, size_t len, const io__node *n)
{
    if (n->from_set)
        snprintf(buf, len, "%s", n->origin);
    else
        snprintf(buf, len, "%s:%d", n->origin, n->line);
}

/* What a message says it got: 'text' for a scalar (cut at 60 characters), else a map or a
 * list. */
void io__node_got(char *buf, size_t len, const io__node *n)
{
    if (n->kind == IO__MAP) {
        snprintf(buf, len, "a map");
    } else if (n->kind == IO__SEQ) {
        snprintf(buf, len, "a list");
    } else if (strlen(n->text) > 60) {
        snprintf(buf, len, "'%.57s...'", n->text);
    } else {
        snprintf(buf, len, "'%s'", n->text);
    }
}

/* Records `WHERE: PATH: MESSAGE (got VALUE)` for node n and returns code. */
int io__node_fail(int code, const io__node *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int io__node_fail(int code, const io__node *n, const char *path, const char *fmt, ...)
{
    char where[600], got[80], what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    io__node_where(where, sizeof where, n);
    io__node_got(got, sizeof got, n);
    return nn_err(code, "%s: %s: %s (got %s)", where, path, what, got);
}

/* Joins a key path and a key ("model" + "arch"); an empty base gives the key alone. */
void io__path_join(char *out, size_t len, const char *base, const char *key)
{
    int k = base[0] == '\0' ? snprintf(out, len, "%s", key)
                             : snprintf(out, len, "%s.%s", base, key);
    if (k < 0 || (size_t)k >= len) out[len - 1] = '\0'; /* A path this long is cut. */
}

/* Joins a key path and a list index ("train.phases" + 1 = "train.phases.1"). */
void io__path_index(char *out, size_t len, const char *base, int i)
{
    char key[16];
    snprintf(key, sizeof key, "%d", i);
    io__path_join(out, len, base, key);
}

/* ---------------------------------------------------------------------------------------
 * From YAML text to the tree (libyaml's event API).
 */
typedef struct ybuild_frame {
    io__node *node;
    char *key;           /* maps: the key waiting for its value, owned */
    int key_line;
    char path[IO__YAML_PATH]; /* the node's key path */
} ybuild_frame;

/* An anchor (&name): the node it names. A scalar's is a copy owned here (a key's node does
 * not outlive its text); a map's or a list's is the node in the tree. */
typedef struct yanchor {
    char *name;
    io__node *node;
    int owned;
} yanchor;

/* The most nodes that aliases may copy in one text (aliases of aliases grow geometrically). */
#define YAML_MAX_COPIED 100000

typedef struct ybuilder {
    const char *origin;  /* the file's path or the override's text */
    int from_set;
    const char *base;    /* key path of the root ("" for a file, the key for an override) */
    int no_paths;        /* messages name no key path (io__yaml_src.base NULL) */
    const char *text;    /* the YAML text, for quoting the line of a syntax error */
    size_t len;
    ybuild_frame st[IO__YAML_DEPTH];
    int depth;
    io__node *root;
    int aliases;         /* aliases are resolved (io__yaml_src.aliases), else refused */
    yanchor *anchors;    /* the anchors so far, in order (a later one of a name wins) */
    int nanchors, capanchors;
    int *aindex, aicap;  /* a hash index of the anchors' names, to the latest of each */
    long copied;         /* nodes copied for aliases so far */
} ybuilder;

/* The key path at the builder's current position: where the next value goes, or for a
 * message (in_list_item 0) the enclosing list rather than an item that does not exist yet. */
static void builder_path(char *out, size_t len, const ybuilder *b, int in_list_item)
{
    if (b->depth == 0) {
        snprintf(out, len, "%s", b->base);
        return;
    }
    const ybuild_frame *f = &b->st[b->depth - 1];
    if (f->node->kind == IO__MAP && f->key != NULL)
        io__path_join(out, len, f->path, f->key);
    else if (f->node->kind == IO__SEQ && in_list_item)
        io__path_index(out, len, f->path, f->node->n);
    else
        snprintf(out, len, "%s", f->path);
}

/* Where the builder is, for a message: "FILE:LINE" or the override's text, then the key
 * path when there is one. */
static void builder_where(char *out, size_t len, const ybuilder *b, int line)
{
    char path[IO__YAML_PATH];
    builder_path(path, sizeof path, b, 0);
    if (b->no_paths) path[0] = '\0';
    if (b->from_set)
        snprintf(out, len, "%s: %s", b->origin, path[0] ? path : "(value)");
    else if (path[0])
        snprintf(out, len, "%s:%d: %s", b->origin, line, path);
    else
        snprintf(out, len, "%s:%d", b->origin, line);
}

/* Copies line (1-based) of the builder's text into buf, without its newline. Returns 0 when
 * the text has no such line or the line is blank. */
static int builder_line_text(char *buf, size_t len, const ybuilder *b, int line)
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
static int builder_syntax_error(const ybuilder *b, const yaml_parser_t *p)
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
static int builder_add(ybuilder *b, io__node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    ybuild_frame *f = &b->st[b->depth - 1];
    if (f->node->kind == IO__SEQ) {
        int rc = node_append(f->node, NULL, 0, n);
        if (rc < 0) io__node_free(n);
        return rc;
    }
    if (f->key == NULL) {
        char where[800];
        builder_where(where, sizeof where, b, n->line);
        if (n->kind != IO__SCALAR) {
            io__node_free(n);
            return nn_err(NN_EFORMAT, "%s: a key must be a single value, not a map or a list",
                          where);
        }
        int first = io__map_index(f->node, n->text);
        if (first >= 0) {
            char kpath[IO__YAML_PATH];
            io__path_join(kpath, sizeof kpath, f->path, n->text);
            int rc;
            if (b->from_set)
                rc = nn_err(NN_EFORMAT, "%s: %s: duplicate key (got '%s' twice)", b->origin,
                            kpath, n->text);
            else
                rc = nn_err(NN_EFORMAT, "%s:%d: %s: duplicate key, first given at line %d (got "
                            "'%s' twice)", b->origin, n->line, kpath,
                            f->node->key_lines[first], n->text);
            io__node_free(n);
            return rc;
        }
        f->key = n->text;
        f->key_line = n->line;
        n->text = NULL;
        io__node_free(n);
        return 0;
    }
    /* An empty value, and a block map or list (which starts on the next line), belong to
     * their key's line: that is where a message about the whole value should point. */
    if (n->kind != IO__SCALAR || (n->plain && n->text[0] == '\0')) n->line = f->key_line;
    int rc = node_append(f->node, f->key, f->key_line, n);
    if (rc < 0) {
        io__node_free(n);
        return rc;
    }
    f->key = NULL;
    return 0;
}

/* Opens a map or list: attaches it and makes it the current container. */
static int builder_push(ybuilder *b, io__node *n)
{
    char path[IO__YAML_PATH];
    builder_path(path, sizeof path, b, 1);
    if (b->depth == IO__YAML_DEPTH) {
        char where[800];
        builder_where(where, sizeof where, b, n->line);
        io__node_free(n);
        return nn_err(NN_EFORMAT, "%s: maps and lists nested more than %d deep", where,
                      IO__YAML_DEPTH);
    }
    int rc = builder_add(b, n);
    if (rc < 0) return rc;
    ybuild_frame *f = &b->st[b->depth++];
    f->node = n;
    f->key = NULL;
    f->key_line = 0;
    snprintf(f->path, sizeof f->path, "%s", path);
    return 0;
}

/* Frees what a failed build holds (the pending keys; the nodes hang from the root). */
static void builder_free(ybuilder *b)
{
    for (int i = 0; i < b->depth; i++) free(b->st[i].key);
    b->depth = 0;
    io__node_free(b->root);
    b->root = NULL;
}

/* Frees the anchors (what the tree does not own). */
static void builder_free_anchors(ybuilder *b)
{
    for (int i = 0; i < b->nanchors; i++) {
        free(b->anchors[i].name);
        if (b->anchors[i].owned) io__node_free(b->anchors[i].node);
    }
    free(b->anchors);
    free(b->aindex);
    b->anchors = NULL;
    b->aindex = NULL;
    b->nanchors = b->capanchors = b->aicap = 0;
}

/* A deep copy of n (NULL when out of memory), counted in *copied. */
static io__node *node_copy(const io__node *n, long *copied)
{
    io__node *c = io__node_new(n->kind, n->line, n->origin, n->from_set);
    if (c == NULL) return NULL;
    (*copied)++;
    c->plain = n->plain;
    c->quoted = n->quoted;
    if (n->text != NULL && (c->text = strdup(n->text)) == NULL) {
        io__node_free(c);
        return NULL;
    }
    for (int i = 0; i < n->n; i++) {
        io__node *kid = node_copy(n->kids[i], copied);
        char *key = n->keys ? strdup(n->keys[i]) : NULL;
        if (kid == NULL || (n->keys && key == NULL) ||
            node_append(c, key, n->keys ? n->key_lines[i] : 0, kid) < 0) {
            io__node_free(kid);
            free(key);
            io__node_free(c);
            return NULL;
        }
    }
    return c;
}

static const char *anchor_name_at(const void *arr, int i)
{
    return ((const yanchor *)arr)[i].name;
}

/* Records the anchor (if any) of node n, just attached; a scalar's is recorded as a copy. */
static int builder_anchor(ybuilder *b, const unsigned char *anchor, io__node *n)
{
    if (anchor == NULL || !b->aliases) return 0;
    if (b->nanchors == b->capanchors) {
        int cap = b->capanchors ? 2 * b->capanchors : 8;
        yanchor *a = realloc(b->anchors, (size_t)cap * sizeof *a);
        if (a == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        b->anchors = a;
        b->capanchors = cap;
    }
    yanchor *a = &b->anchors[b->nanchors];
    a->owned = n->kind == IO__SCALAR;
    a->node = a->owned ? node_copy(n, &b->copied) : n;
    a->name = strdup((const char *)anchor);
    if (a->node == NULL || a->name == NULL ||
        index_add(&b->aindex, &b->aicap, b->nanchors, b->nanchors + 1, anchor_name_at,
                  b->anchors) < 0) {
        if (a->owned) io__node_free(a->node);
        free(a->name);
        return nn_err(NN_ENOMEM, "config: out of memory");
    }
    b->nanchors++;
    return 0;
}

/* An alias (*name): a copy of the node its anchor names, attached where the alias is. */
static int builder_alias(ybuilder *b, const char *name, int line)
{
    char where[800];
    builder_where(where, sizeof where, b, line);
    if (!b->aliases)
        return nn_err(NN_EFORMAT, "%s: YAML aliases are not supported; write the value out "
                      "(got '*%s')", where, name);
    int at = b->aicap ? *index_slot(b->aindex, b->aicap, name, anchor_name_at, b->anchors) : 0;
    const yanchor *a = at > 0 ? &b->anchors[at - 1] : NULL;
    if (a == NULL)
        return nn_err(NN_EFORMAT, "%s: the alias names no anchor before it (got '*%s')", where,
                      name);
    for (int i = 0; i < b->depth; i++)
        if (b->st[i].node == a->node)
            return nn_err(NN_EFORMAT, "%s: an alias inside the value it names (got '*%s')",
                          where, name);
    io__node *c = node_copy(a->node, &b->copied);
    if (c == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
    if (b->copied > YAML_MAX_COPIED) {
        io__node_free(c);
        return nn_err(NN_EFORMAT, "%s: aliases expand to more than %d values", where,
                      YAML_MAX_COPIED);
    }
    c->line = line;
    return builder_add(b, c);
}

/* An explicit YAML tag (!!str, !!binary, !custom) on a value: refused, since the readers
 * take every value by its text and a tag would be silently ignored. */
static int builder_tag(ybuilder *b, const yaml_event_t *ev, int line)
{
    const yaml_char_t *tag = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.tag
                             : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                             : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.tag
                                                                     : NULL;
    if (tag == NULL) return 0;
    char where[800];
    builder_where(where, sizeof where, b, line);
    return nn_err(NN_EFORMAT, "%s: YAML tags are not read, so this one would be ignored: write "
                  "the value plainly (got the tag '%.100s')", where, (const char *)tag);
}

/* Takes one libyaml event into the tree; *done is set at the end of the stream. */
static int builder_event(ybuilder *b, const yaml_event_t *ev, int *docs, int *done)
{
    int line = (int)ev->start_mark.line + 1;
    io__node *n = NULL;
    char where[800];
    int rc = builder_tag(b, ev, line);
    if (rc < 0) return rc;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return 0;
    case YAML_DOCUMENT_START_EVENT:
        if ((*docs)++ == 0) return 0;
        builder_where(where, sizeof where, b, line);
        return nn_err(NN_EFORMAT, "%s: a config is one YAML document, and a second one starts "
                      "here (got '---')", where);
    case YAML_ALIAS_EVENT:
        return builder_alias(b, (const char *)ev->data.alias.anchor, line);
    case YAML_SCALAR_EVENT:
        if (memchr(ev->data.scalar.value, '\0', ev->data.scalar.length) != NULL) {
            builder_where(where, sizeof where, b, line);
            return nn_err(NN_EFORMAT, "%s: a value holds a NUL character", where);
        }
        n = io__node_new(IO__SCALAR, line, b->origin, b->from_set);
        if (n == NULL || (n->text = strdup((const char *)ev->data.scalar.value)) == NULL) {
            io__node_free(n);
            return nn_err(NN_ENOMEM, "config: out of memory");
        }
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                    ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        if (ev->data.scalar.anchor != NULL && b->aliases) {
            rc = builder_anchor(b, ev->data.scalar.anchor, n);
            if (rc < 0) {
                io__node_free(n);
                return rc;
            }
        }
        return builder_add(b, n);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int map = ev->type == YAML_MAPPING_START_EVENT;
        n = io__node_new(map ? IO__MAP : IO__SEQ, line, b->origin, b->from_set);
        if (n == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        rc = builder_push(b, n);
        if (rc == 0)
            rc = builder_anchor(b, map ? ev->data.mapping_start.anchor
                                       : ev->data.sequence_start.anchor, n);
        return rc;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        NN_ASSERT(b->depth > 0 && b->st[b->depth - 1].key == NULL);
        b->depth--;
        return 0;
    default:
        return 0;
    }
}

int io__yaml_parse(io__node **out, const char *text, size_t len, const io__yaml_src *src)
{
    *out = NULL;
    ybuilder *b = calloc(1, sizeof *b);
    if (b == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
    b->origin = src->origin;
    b->from_set = src->from_set;
    b->base = src->base ? src->base : "";
    b->no_paths = src->base == NULL;
    b->aliases = src->aliases;
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
        rc = builder_event(b, &ev, &docs, &done);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    builder_free_anchors(b);
    if (rc < 0) {
        builder_free(b);
        free(b);
        return rc;
    }
    *out = b->root;
    free(b);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Overrides: --set key.path=value.
 */

/* The parsed left side of an override: the key path and its segments, each non-empty. */
typedef struct yset_key {
    char key[IO__YAML_PATH];
    char split[IO__YAML_PATH]; /* key with its dots made NULs; seg point into it */
    char *seg[IO__YAML_DEPTH];
    int nseg;
} yset_key;

/* Splits "key.path=value" into k and *value. */
static int set_key_parse(yset_key *k, const char *set, const char *origin, const char **value)
{
    const char *eq = strchr(set, '=');
    if (eq == NULL || eq == set)
        return nn_err(NN_EINVAL, "%s: expected key.path=value (got '%s')", origin, set);
    size_t klen = (size_t)(eq - set);
    if (klen >= sizeof k->key)
        return nn_err(NN_EINVAL, "%s: the key path is too long (got '%.40s...')", origin, set);
    memcpy(k->key, set, klen);
    k->key[klen] = '\0';
    memcpy(k->split, k->key, klen + 1);
    k->nseg = 0;
    for (char *s = k->split;;) {
        char *dot = strchr(s, '.');
        if (dot) *dot = '\0';
        if (*s == '\0' || k->nseg == IO__YAML_DEPTH)
            return nn_err(NN_EINVAL, "%s: %s: a key path is keys joined by single dots (got "
                          "'%s')", origin, k->key, k->key);
        k->seg[k->nseg++] = s;
        if (dot == NULL) break;
        s = dot + 1;
    }
    *value = eq + 1;
    return 0;
}

/* The override's value as a tree (an empty value is a YAML null). */
static int set_value_parse(io__node **v, const char *value, const char *origin, const char *key)
{
    io__yaml_src src = {.origin = origin, .from_set = 1, .base = key, .aliases = 0};
    int rc = io__yaml_parse(v, value, strlen(value), &src);
    if (rc < 0 || *v != NULL) return rc;
    *v = io__node_new(IO__SCALAR, 0, origin, 1);
    if (*v == NULL || ((*v)->text = strdup("")) == NULL) {
        io__node_free(*v);
        *v = NULL;
        return nn_err(NN_ENOMEM, "config: out of memory");
    }
    (*v)->plain = 1;
    return 0;
}

/* Puts v (owned) at the end of k's path below root, making the maps on the way. */
static int set_walk(io__node *root, const yset_key *k, io__node *v, const char *origin)
{
    io__node *cur = root;
    char path[IO__YAML_PATH] = "";
    int rc;
    for (int i = 0; i < k->nseg; i++) {
        int last = i == k->nseg - 1;
        char next[IO__YAML_PATH];
        io__path_join(next, sizeof next, path, k->seg[i]);
        io__node **slot = NULL;
        if (cur->kind == IO__MAP) {
            int at = io__map_index(cur, k->seg[i]);
            if (at < 0) {
                io__node *kid = last ? v : io__node_new(IO__MAP, 0, origin, 1);
                char *kcopy = strdup(k->seg[i]);
                if (kid == NULL || kcopy == NULL || node_append(cur, kcopy, 0, kid) < 0) {
                    free(kcopy);
                    if (kid != v) io__node_free(kid);
                    io__node_free(v);
                    return nn_err(NN_ENOMEM, "config: out of memory");
                }
                if (last) return 0;
                cur = kid;
                snprintf(path, sizeof path, "%s", next);
                continue;
            }
            slot = &cur->kids[at];
        } else if (cur->kind == IO__SEQ) {
            char *end;
            errno = 0;
            long idx = strtol(k->seg[i], &end, 10);
            if (*end != '\0' || errno != 0 || idx < 0 || idx >= cur->n) {
                rc = io__node_fail(NN_EINVAL, v, next, "no such item: the list %s has %d item%s, "
                                   "indexed from 0", path, cur->n, cur->n == 1 ? "" : "s");
                io__node_free(v);
                return rc;
            }
            slot = &cur->kids[idx];
        }
        NN_ASSERT(slot != NULL);
        if (last) {
            io__node_free(*slot);
            *slot = v;
            return 0;
        }
        if (io__is_null(*slot)) { /* `data:` left empty in the file: make it a map. */
            io__node *m = io__node_new(IO__MAP, 0, origin, 1);
            if (m == NULL) {
                io__node_free(v);
                return nn_err(NN_ENOMEM, "config: out of memory");
            }
            io__node_free(*slot);
            *slot = m;
        }
        if ((*slot)->kind == IO__SCALAR) {
            char where[600], got[80];
            io__node_where(where, sizeof where, *slot);
            io__node_got(got, sizeof got, *slot);
            io__node_free(v);
            return nn_err(NN_EINVAL, "%s: %s: %s is a single value (set at %s), not a map "
                          "that could hold '%s' (got %s)", origin, k->key, next, where,
                          k->seg[i + 1], got);
        }
        cur = *slot;
        snprintf(path, sizeof path, "%s", next);
    }
    NN_ASSERT(0);
    return 0;
}

int io__yaml_set(io__node *root, const char *set, const char *origin)
{
    yset_key k;
    const char *value = NULL;
    io__node *v = NULL;
    int rc = set_key_parse(&k, set, origin, &value);
    if (rc == 0) rc = set_value_parse(&v, value, origin, k.key);
    if (rc < 0) return rc;
    return set_walk(root, &k, v, origin);
}

/* ---------------------------------------------------------------------------------------
 * Files.
 */
int io__read_file(char **out, size_t *len, const char *path, size_t max, const char **verb,
                  char *why, size_t wlen)
{
    util_io_fail f;
    int rc = util_read_file_ex(out, len, path, max, &f);
    *verb = f.verb;
    if (wlen) snprintf(why, wlen, "%s", f.verb ? strerror(f.errnum) : "");
    return rc;
}
