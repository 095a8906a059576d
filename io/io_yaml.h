/*
 * io_yaml: the YAML layer of io's readers (the run config, io_config.c, and sweep files,
 * io_sweep.c); private to io/.
 *
 * YAML text is read with libyaml's event API into a small tree of maps, lists and scalars in
 * which every node remembers where it came from: a file and a line, or a `--set key=value`
 * override. The tree keeps what the readers need and nothing more: scalars are text (typed
 * by whoever reads them), map keys are single values and unique, and a second document and
 * nesting deeper than IO__YAML_DEPTH are refused with a message; YAML aliases are refused
 * too, or copied where a reader asks for them (io__yaml_src.aliases).
 *
 * Messages read `WHERE: KEY.PATH: what is wrong (got 'VALUE')`, WHERE being "FILE:LINE" or
 * the override's own text; every function that fails returns a negative NN_E* code and leaves
 * such a message for nn_errmsg() (nn/nn.h).
 */
#ifndef STRATA_IO_YAML_H
#define STRATA_IO_YAML_H

#include <stddef.h>

/* The deepest nesting of maps and lists accepted. */
#define IO__YAML_DEPTH 32
/* Key paths longer than this are cut in messages. */
#define IO__YAML_PATH 256

enum { IO__SCALAR, IO__SEQ, IO__MAP };

typedef struct io__node io__node;
struct io__node {
    int kind;           /* IO__SCALAR, IO__SEQ, IO__MAP */
    int line;           /* 1-based line in the file (0 for an override); a map or list value,
                           and an empty value, have their key's line */
    const char *origin; /* the file's path, or the override's "--set key=value"; not owned */
    int from_set;       /* the node came from an override */
    char *text;         /* scalars: the value, owned */
    int plain;          /* scalars: written without quotes (so it may be a YAML null) */
    int quoted;         /* scalars: written in single or double quotes */
    int n, cap;         /* children */
    char **keys;        /* maps: the key of each child, owned */
    int *key_lines;     /* maps: the line of each key */
    io__node **kids;    /* map values or list items, owned */
    int *index;         /* maps of IO__YAML_INDEX keys or more: a hash index of the keys
                           (io_yaml.c), so that finding a key takes O(1), owned; else NULL */
    int icap;           /* slots in index (a power of two, at least twice n), or 0 */
};

/* Maps with this many keys or more are indexed by a hash (io__node.index); smaller ones are
 * searched in order. */
#define IO__YAML_INDEX 8

/* Where a text comes from, for its nodes and its messages. */
typedef struct io__yaml_src {
    const char *origin; /* the file's path, or the override's "--set key=value"; the nodes
                           point to it, so it must outlive the tree */
    int from_set;       /* the text is an override's value */
    const char *base;   /* the key path of the root ("" for a file, the key of an override);
                           NULL: a file whose messages name a line but no key path */
    int aliases;        /* YAML aliases (*name) become copies of what their anchors (&name)
                           name; 0: an alias is an error */
} io__yaml_src;

/* Parses YAML text (len bytes, NUL bytes refused) into a tree; *out is NULL for a text with no
 * document. The caller frees *out with io__node_free. NN_EFORMAT: YAML syntax, a duplicate
 * key, a key that is a map or a list, an alias (refused, or naming no anchor, or inside what it
 * names), a second document, nesting too deep; NN_ENOMEM. */
int io__yaml_parse(io__node **out, const char *text, size_t len, const io__yaml_src *src);

/* Applies one override "key.path=value" (the value read as YAML) to the map root; origin is
 * its text for messages ("--set key.path=value") and must outlive the tree. A missing map on
 * the way is created, a null on the way becomes a map, and a number on the way indexes a
 * list. NN_EINVAL: a malformed override, an index out of range, a path through a scalar. */
int io__yaml_set(io__node *root, const char *set, const char *origin);

/* A new node with no children, or NULL when out of memory. */
io__node *io__node_new(int kind, int line, const char *origin, int from_set);
/* Frees a node and everything below it. NULL is a no-op. */
void io__node_free(io__node *n);

/* The index of key in map m, or -1 (also when m is NULL or not a map). O(1) on average: a
 * tree of n keys is built and read in O(n) key comparisons (io__yaml_compares). */
int io__map_index(const io__node *m, const char *key);
/* The value of key in map m, or NULL when m is NULL or lacks the key. */
const io__node *io__map_get(const io__node *m, const char *key);
/* A test hook: the key comparisons (strcmp of a map key or an anchor name) made by this
 * layer so far in the process. Building and reading a tree of n keys costs O(n) of them. */
unsigned long io__yaml_compares(void);

/* A YAML null: an unquoted empty value, ~ or null (any case YAML allows); also NULL itself. */
int io__is_null(const io__node *n);

/* "FILE:LINE" for a node of a file, the override's text for a node of an override. */
void io__node_where(char *buf, size_t len, const io__node *n);
/* What a message says it got: 'text' for a scalar (cut at 60 characters), else "a map" or
 * "a list". */
void io__node_got(char *buf, size_t len, const io__node *n);
/* Records `WHERE: PATH: MESSAGE (got VALUE)` for node n and returns code. */
int io__node_fail(int code, const io__node *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Joins a key path and a key ("model" + "arch"); an empty base gives the key alone. A path
 * longer than len is cut. */
void io__path_join(char *out, size_t len, const char *base, const char *key);
/* Joins a key path and a list index ("train.phases" + 1 = "train.phases.1"). */
void io__path_index(char *out, size_t len, const char *base, int i);

/* util_read_file with its failures taken apart, for readers that word their own messages:
 * for an open or read failure (NN_ENOTFOUND, NN_EIO) *verb becomes "cannot open" or "cannot
 * read" and why the system's reason ("No such file or directory"); for any other failure
 * (NN_ERANGE beyond max, NN_ENOMEM) *verb is NULL and nn_errmsg() is util_read_file's. */
int io__read_file(char **out, size_t *len, const char *path, size_t max, const char **verb,
                  char *why, size_t wlen);

#endif /* STRATA_IO_YAML_H */
