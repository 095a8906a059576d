/*
 * The YAML run configuration (docs/config.md).
 *
 * The file is read into a tree (io_yaml.c) in which every node remembers where it came from
 * (the file and a line, or a --set override). The overrides are applied to the tree, and the
 * tree is then converted into io_config as the key table below says: each map's keys are
 * checked against the keys it may hold, each value against its type and range. The first
 * problem found stops the load with a message of the form
 * `FILE:LINE: key.path: what is wrong (got 'VALUE')`. The same table gives the defaults and
 * writes the effective config. The fine_tune preset is read here and expanded into phases by
 * trainer/ (trainer_config_load).
 */
#include "io/io_config.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/io_internal.h"
#include "io/io_yaml.h"
#include "nn/nn.h"

_Static_assert(IO_MAX_GROUPS == NN_MAX_GROUPS, "IO_MAX_GROUPS must equal NN_MAX_GROUPS");
_Static_assert(IO_MAX_WIDTHS == NN_MAX_WIDTHS, "IO_MAX_WIDTHS must equal NN_MAX_WIDTHS");

/* The largest config file read (a config is a few kilobytes; this only stops accidents). */
#define CFG_MAX_FILE (16u << 20)
/* Key paths longer than this are cut in messages. */
#define CFG_PATH IO__YAML_PATH

/* ---------------------------------------------------------------------------------------
 * Unknown and missing keys.
 */

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
static int map_check_keys(const io__node *m, const char *path, const char *const *known)
{
    if (m == NULL) return 0;
    for (int i = 0; i < m->n; i++) {
        int ok = 0;
        for (int k = 0; known[k] != NULL; k++) ok |= strcmp(m->keys[i], known[k]) == 0;
        if (ok) continue;
        char kpath[CFG_PATH], where[600], got[80], hint[300];
        io__path_join(kpath, sizeof kpath, path, m->keys[i]);
        const io__node *v = m->kids[i];
        if (v->from_set)
            io__node_where(where, sizeof where, v);
        else
            snprintf(where, sizeof where, "%s:%d", m->origin, m->key_lines[i]);
        io__node_got(got, sizeof got, v);
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

/* Fails for a required key that is absent; at is the map that lacks it, or when that map is
 * absent too, the nearest map that exists. */
static int fail_missing(const io__node *at, const char *kpath)
{
    char where[600];
    io__node_where(where, sizeof where, at);
    return nn_err(NN_EINVAL, "%s: %s: required key is missing", where, kpath);
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
static int want_scalar(const io__node *n, const char *path, const char *what)
{
    if (n->kind != IO__SCALAR || io__is_null(n))
        return io__node_fail(NN_EINVAL, n, path, "expected %s", what);
    return 0;
}

/* Fails unless n is a map (a null counts as an empty map: returns 1 then, and *m = NULL). */
static int want_map(const io__node *n, const char *path, const io__node **m)
{
    *m = NULL;
    if (n == NULL || io__is_null(n)) return 1;
    if (n->kind != IO__MAP) return io__node_fail(NN_EINVAL, n, path, "expected a map of keys");
    *m = n;
    return 0;
}

/* Reads an integer in [lo, hi]. */
static int read_int(const io__node *n, const char *path, int lo, int hi, int *out)
{
    int rc = want_scalar(n, path, "an integer");
    if (rc < 0) return rc;
    char *end;
    errno = 0;
    long long v = strtoll(n->text, &end, 10);
    if (end == n->text || *end != '\0')
        return io__node_fail(NN_EINVAL, n, path, "expected an integer");
    if (errno == ERANGE || v < lo || v > hi) {
        if (hi == INT_MAX) return io__node_fail(NN_ERANGE, n, path, "must be >= %d", lo);
        if (lo == INT_MIN) return io__node_fail(NN_ERANGE, n, path, "must be <= %d", hi);
        return io__node_fail(NN_ERANGE, n, path, "must be between %d and %d", lo, hi);
    }
    *out = (int)v;
    return 0;
}

/* Reads a non-negative integer of 64 bits (seeds). */
static int read_u64(const io__node *n, const char *path, unsigned long long *out)
{
    int rc = want_scalar(n, path, "a non-negative integer");
    if (rc < 0) return rc;
    const char *s = n->text;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || !isdigit((unsigned char)s[0]))
        return io__node_fail(NN_EINVAL, n, path, "expected a non-negative integer");
    if (errno == ERANGE) return io__node_fail(NN_ERANGE, n, path, "must be < 2^64");
    *out = v;
    return 0;
}

/* A range of doubles: lo (inclusive unless lo_open) to hi (exclusive when hi_open, none when
 * infinite). */
typedef struct drange {
    double lo, hi;
    int lo_open, hi_open;
} drange;

/* Initializers, for the key table. */
#define R_ANY {-INFINITY, INFINITY, 0, 0}
#define R_POS {0.0, INFINITY, 1, 0}
#define R_NONNEG {0.0, INFINITY, 0, 0}
#define R_UNIT_HALF_OPEN {0.0, 1.0, 0, 1}
#define R_UNIT {0.0, 1.0, 0, 0}

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
static int read_double(const io__node *n, const char *path, drange r, double *out)
{
    int rc = want_scalar(n, path, "a number");
    if (rc < 0) return rc;
    double v;
    if (parse_double(n->text, &v) < 0)
        return io__node_fail(NN_EINVAL, n, path, "expected a number");
    if (!drange_has(r, v)) {
        char rt[64];
        drange_text(rt, sizeof rt, r);
        return io__node_fail(NN_ERANGE, n, path, "must be %s", rt);
    }
    *out = v;
    return 0;
}

/* Reads true/false (also yes/no, on/off, in lower, title or upper case). */
static int read_bool(const io__node *n, const char *path, int *out)
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
    return io__node_fail(NN_EINVAL, n, path, "expected true or false");
}

/* Reads a string that fits in size bytes; an empty one (or a null) only when allow_empty. */
static int read_str(const io__node *n, const char *path, char *buf, size_t size, int allow_empty)
{
    if (allow_empty && io__is_null(n)) {
        str_set(buf, size, "");
        return 0;
    }
    int rc = want_scalar(n, path, "a string");
    if (rc < 0) return rc;
    if (!allow_empty && n->text[0] == '\0')
        return io__node_fail(NN_EINVAL, n, path, "must not be empty");
    if (strlen(n->text) >= size)
        return io__node_fail(NN_ERANGE, n, path, "too long: at most %zu characters", size - 1);
    str_set(buf, size, n->text);
    return 0;
}

/* Reads one of the NULL-terminated words, suggesting the closest on a miss. */
static int read_enum(const io__node *n, const char *path, const char *const *words, char *buf,
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
    if (near)
        return io__node_fail(NN_EINVAL, n, path, "must be one of %s; did you mean '%s'?", list,
                             near);
    return io__node_fail(NN_EINVAL, n, path, "must be one of %s", list);
}

/* Reads a list of at most max integers, each >= lo; *count gets the length. */
static int read_int_list(const io__node *n, const char *path, int lo, int *out, int max,
                         int *count)
{
    if (n->kind != IO__SEQ) return io__node_fail(NN_EINVAL, n, path, "expected a list of integers");
    if (n->n > max)
        return io__node_fail(NN_ERANGE, n, path, "has %d values; at most %d", n->n, max);
    for (int i = 0; i < n->n; i++) {
        char ipath[CFG_PATH];
        io__path_index(ipath, sizeof ipath, path, i);
        int rc = read_int(n->kids[i], ipath, lo, INT_MAX, &out[i]);
        if (rc < 0) return rc;
    }
    for (int i = n->n; i < max; i++) out[i] = 0;
    *count = n->n;
    return 0;
}

/* Reads a list of exactly count numbers, each within r. */
static int read_double_list(const io__node *n, const char *path, drange r, double *out, int count)
{
    if (n->kind != IO__SEQ || n->n != count)
        return io__node_fail(NN_EINVAL, n, path, "expected a list of %d numbers", count);
    for (int i = 0; i < count; i++) {
        char ipath[CFG_PATH];
        io__path_index(ipath, sizeof ipath, path, i);
        int rc = read_double(n->kids[i], ipath, r, &out[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

/* Reads a shape C x H x W: a list [C, H, W] or a string "CxHxW". Either all three are 0
 * (only when allow_zero: "from the data") or all are >= 1. A null gives zeros when allowed. */
static int read_shape(const io__node *n, const char *path, int allow_zero, int out[3])
{
    int v[3] = {0, 0, 0};
    if (allow_zero && io__is_null(n)) {
        memcpy(out, v, sizeof v);
        return 0;
    }
    if (n->kind == IO__SEQ) {
        if (n->n != 3) return io__node_fail(NN_EINVAL, n, path, "expected [C, H, W] (3 integers)");
        for (int i = 0; i < 3; i++) {
            char ipath[CFG_PATH];
            io__path_index(ipath, sizeof ipath, path, i);
            int rc = read_int(n->kids[i], ipath, 0, INT_MAX, &v[i]);
            if (rc < 0) return rc;
        }
    } else if (n->kind == IO__SCALAR && !io__is_null(n)) {
        char tail;
        if (sscanf(n->text, "%dx%dx%d%c", &v[0], &v[1], &v[2], &tail) != 3)
            return io__node_fail(NN_EINVAL, n, path, "expected [C, H, W] or 'CxHxW'");
    } else {
        return io__node_fail(NN_EINVAL, n, path, "expected [C, H, W] or 'CxHxW'");
    }
    int zero = v[0] == 0 && v[1] == 0 && v[2] == 0;
    int pos = v[0] >= 1 && v[1] >= 1 && v[2] >= 1;
    if (!(pos || (zero && allow_zero)))
        return io__node_fail(NN_ERANGE, n, path, allow_zero ? "each dimension must be >= 1 (or all "
                         "0: from the data)" : "each dimension must be >= 1");
    memcpy(out, v, sizeof v);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Per-group hyperparameters.
 */
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

/* Checks one value of a hyperparameter (a noun: "learning rate") against its range r; n and
 * path locate it. */
static int hp_check(const io__node *n, const char *path, drange r, const char *noun, double v)
{
    if (!drange_has(r, v)) {
        char rt[64];
        drange_text(rt, sizeof rt, r);
        return io__node_fail(NN_ERANGE, n, path, "a %s must be %s", noun, rt);
    }
    /* Training runs in float32: a value that would round to 0 (or be subnormal) or overflow
     * to infinity is not the value asked for. */
    if (v != 0.0 && (fabs(v) < FLT_MIN || fabs(v) > FLT_MAX))
        return io__node_fail(NN_ERANGE, n, path, "a %s of %g %s in float32, the precision strata trains in: give a magnitude in [%.2g, %.2g]",
                             noun, v, fabs(v) < FLT_MIN ? "rounds to 0 or is subnormal" : "overflows to infinity",
                             (double)FLT_MIN, (double)FLT_MAX);
    return 0;
}

/* Reads a hyperparameter: a number, a list of numbers, "slice(b)" or "slice(a, b)". A null
 * leaves it unset when allow_unset. */
static int read_hparam(const io__node *n, const char *path, drange r, const char *noun,
                       int allow_unset, io_hparam *hp)
{
    io_hparam h;
    memset(&h, 0, sizeof h);
    h.line = n->from_set ? -1 : n->line;
    if (allow_unset && io__is_null(n)) {
        h.line = 0;
        *hp = h;
        return 0;
    }
    const char *what = "expected a number, a list of numbers (one per layer group), 'slice(b)' "
                       "or 'slice(a, b)'";
    int rc;
    if (n->kind == IO__SEQ) {
        if (n->n == 0)
            return io__node_fail(NN_EINVAL, n, path, "an empty list: give one value per layer "
                                 "group");
        if (n->n > IO_MAX_GROUPS)
            return io__node_fail(NN_ERANGE, n, path, "has %d values; a model has at most %d layer "
                             "groups", n->n, IO_MAX_GROUPS);
        for (int i = 0; i < n->n; i++) {
            char ipath[CFG_PATH];
            io__path_index(ipath, sizeof ipath, path, i);
            const io__node *it = n->kids[i];
            if (it->kind != IO__SCALAR || parse_double(it->text, &h.v[i]) < 0)
                return io__node_fail(NN_EINVAL, it, ipath, "expected a number");
            if ((rc = hp_check(it, ipath, r, noun, h.v[i])) < 0) return rc;
        }
        h.kind = IO_HP_LIST;
        h.n = n->n;
    } else if (n->kind == IO__SCALAR && !io__is_null(n)) {
        const char *s = n->text;
        while (isspace((unsigned char)*s)) s++;
        if (strncmp(s, "slice", 5) == 0) {
            int count = parse_slice(s, h.v);
            if (count < 0)
                return io__node_fail(NN_EINVAL, n, path, "bad slice: expected 'slice(b)' or "
                                 "'slice(a, b)' with numbers a and b");
            for (int i = 0; i < count; i++)
                if (!(count == 2 && i == 0 && h.v[0] == 0.0)) /* slice(0, b): see below */
                    if ((rc = hp_check(n, path, r, noun, h.v[i])) < 0) return rc;
            /* fastai reads slice(0, b) as slice(b); otherwise the series is geometric. */
            if (count == 2 && !(h.v[0] >= 0 && h.v[1] > 0))
                return io__node_fail(NN_ERANGE, n, path, "slice(a, b) is a geometric series: a and "
                                 "b must be > 0 (or a = 0, which fastai reads as slice(b))");
            h.kind = count == 1 ? IO_HP_SLICE1 : IO_HP_SLICE2;
            h.n = count;
        } else {
            if (parse_double(n->text, &h.v[0]) < 0)
                return io__node_fail(NN_EINVAL, n, path, "%s", what);
            if ((rc = hp_check(n, path, r, noun, h.v[0])) < 0) return rc;
            h.kind = IO_HP_SCALAR;
            h.n = 1;
        }
    } else {
        return io__node_fail(NN_EINVAL, n, path, "%s", what);
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
 * YAML output: the lines of the effective config.
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

static void put_u64(FILE *f, int indent, const char *key, unsigned long long v,
                    const char *comment)
{
    char b[32];
    snprintf(b, sizeof b, "%llu", v);
    put_kv(f, indent, key, b, comment);
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

/* ---------------------------------------------------------------------------------------
 * The key table.
 *
 * Every key of the config is one row of a table: its path, its type, its field (offsetof and
 * sizeof), its default, its range and the comment printed beside it in the effective config.
 * A table describes one kind of map: config_keys the whole file (paths such as
 * "data.augment.flip" open the sections on the way), sched_keys a schedule (the top-level one
 * and a phase's), phase_keys an item of train.phases. The rows drive reading (in table
 * order), defaults, the known keys of each map and their suggestions, the effective config
 * (in table order) and io_config_key_path. A key read irregularly names its own reader or
 * writer, which may call the typed ones.
 */
enum {
    T_INT,     /* int within [lo, hi] */
    T_U64,     /* unsigned long long (seeds) */
    T_DOUBLE,  /* double within range */
    T_BOOL,    /* int, 0 or 1: true/false, yes/no, on/off */
    T_STR,     /* char[size]; F_EMPTY: "" (and a null, read as "") allowed */
    T_ENUM,    /* char[size]: one of words; the word none (if any) is stored as "", and a null
                  or "" reads as it */
    T_SHAPE,   /* int[3]: C, H, W as [C, H, W] or "CxHxW"; F_NULLOK: [0, 0, 0] allowed */
    T_HPARAM,  /* io_hparam with values within range (noun names them in messages); F_NULLOK:
                  unset by default */
    T_INTS,    /* int[max], each >= lo, the count at cnt; the default count (def.i) is written
                  as null */
    T_DOUBLES, /* double[]: n values exactly, or with cnt up to max values (as T_INTS) */
    T_TABLE,   /* a map of sub's keys, filling the struct at off; its default is sub's
                  defaults */
    T_LIST,    /* a list of maps of sub's keys, at most max (its own reader and writer) */
};

/* Row flags. */
enum {
    F_REQUIRED = 1, /* absent is an error */
    F_NULLOK = 2,   /* a null means "not given": the default stays */
    F_EMPTY = 4,    /* T_STR: may be empty */
};

typedef struct cfg_key cfg_key;

/* What a reader gets: where the key is and what it is written as. */
typedef struct key_in {
    io_config *cfg;        /* the config being filled, for keys that depend on others */
    char *base;            /* the struct the key's table fills (io_config, io_phase, ...) */
    const io__node *map;   /* the map that holds the key, or NULL when it is absent */
    const char *mpath;     /* that map's key path */
    const io__node *at;    /* where a missing key is reported: map, or the nearest map above
                              it that exists */
    const io__node *v;     /* the key's value, or NULL when absent */
    const char *kp;        /* the key's path */
} key_in;

typedef int (*key_reader)(const cfg_key *k, const key_in *in);
typedef void (*key_writer)(FILE *f, int indent, const char *key, const cfg_key *k,
                           const io_config *cfg, const char *base);

struct cfg_key {
    const char *path;          /* relative to the table's map; NULL ends a table */
    int type;                  /* T_* */
    size_t off, size;          /* the field in the table's struct */
    int flags;                 /* F_* */
    long long lo, hi;          /* T_INT: the range; T_INTS: lo for each value */
    drange range;              /* T_DOUBLE, T_DOUBLES, T_HPARAM: the range of each value */
    const char *noun;          /* T_HPARAM: what a value is, for messages */
    int n, max;                /* T_DOUBLES: n values; T_INTS, T_DOUBLES, T_LIST: at most max */
    size_t cnt;                /* T_INTS, T_DOUBLES: offset of the int count (0: n values) */
    size_t has;                /* offset of an int set to 1 when the key is given (0: none) */
    const char *const *words;  /* T_ENUM: the words, NULL-terminated */
    const char *none;          /* T_ENUM: the word stored as "" */
    union {
        long long i;           /* T_INT, T_BOOL, T_U64; T_INTS, T_DOUBLES: the count */
        double d;              /* T_DOUBLE, T_HPARAM (a scalar) */
        const char *s;         /* T_STR, T_ENUM (NULL: "") */
        int v[3];              /* T_SHAPE */
        double dv[3];          /* T_DOUBLES of n <= 3 values (no cnt) */
    } def;
    const cfg_key *sub;        /* T_TABLE, T_LIST: the keys of the map */
    const char *note;          /* the comment beside the value in the effective config */
    const char *null_note;     /* T_INTS, T_DOUBLES: the comment beside a null */
    const char *unset;         /* with has (or an F_NULLOK hparam): what applies when the key is
                                  not given, written as a comment line in its place */
    key_reader read;           /* NULL: by type */
    key_writer write;          /* NULL: by type */
};

/* The field of a table's row: its offset and size in struct S. */
#define AT(S, field) offsetof(S, field), sizeof(((S *)0)->field)

static const char *const head_words[] = {"default", "fastai", "linear", "original", NULL};
static const char *const optimizer_words[] = {"sgd", "adamw", NULL};
static const char *const schedule_words[] = {"one_cycle", "cosine", "step", "constant", NULL};
static const char *const preset_words[] = {"none", "fine_tune", NULL};
static const char *const progress_words[] = {"nonblocking", "thread", NULL};
static const char *const engine_words[] = {"cpu", "reference", NULL};

static int key_read_value(const cfg_key *k, const key_in *in);
static int table_read(io_config *cfg, const cfg_key *t, const io__node *m, const char *path,
                      const io__node *at, char *base);
static void table_write(FILE *f, const cfg_key *t, const char *base, int indent, int item,
                        const io_config *cfg);

/* ---------------------------------------------------------------------------------------
 * Keys read or written irregularly.
 */

/* model.split: one split point, or a strictly increasing list of them. */
static int split_read(const cfg_key *k, const key_in *in)
{
    const io__node *v = in->v;
    if (io__is_null(v)) return 0;
    int *split = (int *)(in->base + k->off), *n = (int *)(in->base + k->cnt);
    if (v->kind == IO__SCALAR) { /* One split point may be written without brackets. */
        int rc = read_int(v, in->kp, (int)k->lo, INT_MAX, &split[0]);
        if (rc == 0) *n = 1;
        return rc;
    }
    int rc = read_int_list(v, in->kp, (int)k->lo, split, k->max, n);
    if (rc < 0) return rc;
    for (int i = 1; i < *n; i++)
        if (split[i] <= split[i - 1]) {
            char ip[CFG_PATH];
            io__path_index(ip, sizeof ip, in->kp, i);
            return io__node_fail(NN_ERANGE, v->kids[i], ip, "split points must be strictly "
                                 "increasing, and %d follows %d", split[i], split[i - 1]);
        }
    return 0;
}

/* groups.bn_freeze: fastai's BnFreeze fixes only BatchNorm whose parameters are frozen. */
static int bn_freeze_read(const cfg_key *k, const key_in *in)
{
    int rc = key_read_value(k, in);
    if (rc < 0 || in->v == NULL) return rc;
    if (in->cfg->groups.bn_freeze && in->cfg->groups.train_bn)
        return io__node_fail(NN_EINVAL, in->v, in->kp, "fixes the BatchNorm of frozen groups, "
                             "but groups.train_bn is true (the default), which trains it; set "
                             "groups.train_bn: false as well");
    return 0;
}

/* optimizer.true_wd: false only for sgd. */
static int true_wd_read(const cfg_key *k, const key_in *in)
{
    int rc = key_read_value(k, in);
    if (rc < 0 || in->v == NULL) return rc;
    if (!in->cfg->optimizer.true_wd && strcmp(in->cfg->optimizer.type, "adamw") == 0)
        return io__node_fail(NN_EINVAL, in->v, in->kp, "false selects torch.optim.SGD's "
                             "coupled L2 decay for sgd; adamw always decouples its weight "
                             "decay (optimizer.type is adamw)");
    return 0;
}

/* data.valid: by default a built-in set is validated on its own test split (the same name
 * opened as the valid split), and an HDF5 train set on nothing. */
static int valid_read(const cfg_key *k, const key_in *in)
{
    if (in->v != NULL) return key_read_value(k, in);
    const char *train = in->cfg->data.train;
    int builtin = strcmp(train, "fashion-mnist") == 0 || strcmp(train, "synthetic") == 0;
    str_set(in->base + k->off, k->size, builtin ? train : "");
    return 0;
}

/* Reads data.mean or data.std: a number or a list of 1 to max numbers. */
static int read_norm(const io__node *n, const char *path, drange r, int max, double *out,
                     int *count)
{
    memset(out, 0, (size_t)max * sizeof *out);
    if (n->kind == IO__SEQ) {
        if (n->n < 1 || n->n > max)
            return io__node_fail(NN_EINVAL, n, path, "expected a number or a list of 1 to %d "
                                 "numbers (one per channel)", max);
        *count = n->n;
        for (int i = 0; i < n->n; i++) {
            char ip[CFG_PATH];
            io__path_index(ip, sizeof ip, path, i);
            int rc = read_double(n->kids[i], ip, r, &out[i]);
            if (rc < 0) return rc;
        }
        return 0;
    }
    *count = 1;
    return read_double(n, path, r, &out[0]);
}

/* data.mean, and with it data.std (the next row): both or neither, as many values each. */
static int norm_read(const cfg_key *k, const key_in *in)
{
    const cfg_key *ks = k + 1;
    const char *sname = strrchr(ks->path, '.') + 1;
    NN_ASSERT(ks->cnt == k->cnt && strcmp(sname, "std") == 0);
    const io__node *mv = in->v, *sv = io__map_get(in->map, sname);
    char sp[CFG_PATH];
    io__path_join(sp, sizeof sp, in->mpath, sname);
    if (io__is_null(mv) != io__is_null(sv)) {
        const io__node *given = io__is_null(mv) ? sv : mv;
        return io__node_fail(NN_EINVAL, given, io__is_null(mv) ? sp : in->kp, "data.mean and "
                             "data.std go together: give both or neither");
    }
    if (io__is_null(mv)) return 0;
    int nm, ns;
    double *mean = (double *)(in->base + k->off), *std = (double *)(in->base + ks->off);
    int rc = read_norm(mv, in->kp, k->range, k->max, mean, &nm);
    if (rc == 0) rc = read_norm(sv, sp, ks->range, ks->max, std, &ns);
    if (rc < 0) return rc;
    if (nm != ns)
        return io__node_fail(NN_EINVAL, sv, sp, "has %d value%s but data.mean has %d", ns,
                             ns == 1 ? "" : "s", nm);
    *(int *)(in->base + k->cnt) = nm;
    return 0;
}

/* data.std: read with data.mean. */
static int read_with_previous(const cfg_key *k, const key_in *in)
{
    return 0;
}

/* train.fine_tune.epochs: train.epochs by default. */
static int fine_tune_epochs_read(const cfg_key *k, const key_in *in)
{
    if (in->v != NULL) return key_read_value(k, in);
    *(int *)(in->base + k->off) = in->cfg->train.epochs;
    return 0;
}

/* A phase's schedule: the keys given, over the top-level schedule. */
static int phase_schedule_read(const cfg_key *k, const key_in *in)
{
    if (io__is_null(in->v)) return 0;
    ((io_phase *)in->base)->schedule = in->cfg->schedule;
    return key_read_value(k, in);
}

/* train.phases: a list of phases, each over its defaults (a name "phase<i>"). */
static int phases_read(const cfg_key *k, const key_in *in)
{
    const io__node *v = in->v;
    io_config *cfg = in->cfg;
    if (io__is_null(v)) return 0;
    if (v->kind != IO__SEQ)
        return io__node_fail(NN_EINVAL, v, in->kp, "expected a list of phases (maps with epochs "
                             "and optionally name, freeze_to, lr and schedule)");
    if (v->n > 0 && cfg->train.preset[0] != '\0')
        return io__node_fail(NN_EINVAL, v, in->kp, "train.preset '%s' fills the phases; give "
                             "either the preset or phases, not both", cfg->train.preset);
    if (v->n > k->max)
        return io__node_fail(NN_ERANGE, v, in->kp, "has %d phases; at most %d", v->n, k->max);
    io_phase *phases = (io_phase *)(in->base + k->off);
    for (int i = 0; i < v->n; i++) {
        char ip[CFG_PATH];
        io__path_index(ip, sizeof ip, in->kp, i);
        io_phase *ph = &phases[i];
        memset(ph, 0, sizeof *ph);
        snprintf(ph->name, sizeof ph->name, "phase%d", i);
        const io__node *n = v->kids[i];
        if (n->kind != IO__MAP)
            return io__node_fail(NN_EINVAL, n, ip, "expected a map with epochs and optionally "
                                 "name, freeze_to, lr and schedule");
        int rc = table_read(cfg, k->sub, n, ip, n, (char *)ph);
        if (rc < 0) return rc;
    }
    *(int *)(in->base + k->cnt) = v->n;
    return 0;
}

/* Writes the phases as a block list, each item's keys at indent. */
static void put_phases(FILE *f, int indent, const cfg_key *k, const io_config *cfg)
{
    for (int i = 0; i < cfg->train.nphases; i++)
        table_write(f, k->sub, (const char *)&cfg->train.phases[i], indent, 1, cfg);
}

/* train.phases: a block list, or [] with a comment (and, for phases that a preset fills, the
 * list as comment lines: written out as keys they would clash with the preset on reading). */
static void phases_write(FILE *f, int indent, const char *key, const cfg_key *k,
                         const io_config *cfg, const char *base)
{
    if (cfg->train.nphases == 0) {
        put_kv(f, indent, key, "[]", "none: train.epochs with groups.* and schedule");
        return;
    }
    if (cfg->train.preset[0] == '\0') {
        fprintf(f, "%*s%s:\n", indent, "", key);
        put_phases(f, indent + 4, k, cfg);
        return;
    }
    put_kv(f, indent, key, "[]", "filled by the preset, as follows:");
    fprintf(f, "#   %s:\n", key);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (mem == NULL) {
        fprintf(f, "#   (out of memory)\n");
        return;
    }
    put_phases(mem, indent + 4, k, cfg);
    fclose(mem);
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        int n = nl ? (int)(nl - line) : (int)strlen(line);
        fprintf(f, "# %.*s\n", n, line);
        line = nl ? nl + 1 : NULL;
    }
    free(text);
}

/* run.dir: runs/<model.arch> by default. */
static int run_dir_read(const cfg_key *k, const key_in *in)
{
    if (in->v != NULL) return key_read_value(k, in);
    char dir[sizeof in->cfg->run.dir];
    snprintf(dir, sizeof dir, "runs/%s", in->cfg->model.arch);
    str_set(in->base + k->off, k->size, dir);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The tables. A new ordinary key is one row here, its field in io_config.h and its line in
 * docs/config.md (tests/test_config_doc.c checks that the doc names exactly these keys).
 */

/* A schedule, with fastai v2's defaults (fit_one_cycle, SchedCos, SchedExp's step). */
static const cfg_key sched_keys[] = {
    {"type", T_ENUM, AT(io_schedule, type), .words = schedule_words, .def.s = "one_cycle",
     .note = "one_cycle, cosine, step or constant"},
    {"pct_start", T_DOUBLE, AT(io_schedule, pct_start), .range = R_UNIT, .def.d = 0.25,
     .note = "one_cycle"},
    {"div", T_DOUBLE, AT(io_schedule, div), .range = R_POS, .def.d = 25.0,
     .note = "one_cycle: starts at lr/div"},
    {"div_final", T_DOUBLE, AT(io_schedule, div_final), .range = R_POS, .def.d = 1e5,
     .note = "one_cycle: ends at lr/div_final"},
    {"moms", T_DOUBLES, AT(io_schedule, moms), .range = R_UNIT_HALF_OPEN, .n = 3,
     .def.dv = {0.95, 0.85, 0.95}, .note = "one_cycle: momentum start, middle, end"},
    {"step_gamma", T_DOUBLE, AT(io_schedule, step_gamma), .range = R_POS, .def.d = 0.1,
     .note = "step: factor"},
    {"step_epochs", T_INT, AT(io_schedule, step_epochs), .lo = 1, .hi = INT_MAX, .def.i = 1,
     .note = "step: every this many epochs"},
    {"final_div", T_DOUBLE, AT(io_schedule, final_div), .range = R_POS, .def.d = 1e5,
     .note = "cosine: ends at lr/final_div"},
    {NULL},
};

/* An item of train.phases; phases_read gives each its defaults (zeros, name "phase<i>"). */
static const cfg_key phase_keys[] = {
    {"name", T_STR, AT(io_phase, name), .def.s = NULL}, /* phases_read: "phase<i>" */
    {"epochs", T_INT, AT(io_phase, epochs), F_REQUIRED, .lo = 1, .hi = INT_MAX},
    {"freeze_to", T_INT, AT(io_phase, freeze_to), F_NULLOK, .lo = -IO_MAX_GROUPS,
     .hi = IO_MAX_GROUPS, .has = offsetof(io_phase, has_freeze_to),
     .unset = "groups.freeze_to applies"},
    {"lr", T_HPARAM, AT(io_phase, lr), F_NULLOK, .range = R_POS, .noun = "learning rate",
     .unset = "groups.lr applies"},
    {"schedule", T_TABLE, AT(io_phase, schedule), F_NULLOK, .sub = sched_keys,
     .has = offsetof(io_phase, has_schedule), .unset = "the top-level schedule applies",
     .read = phase_schedule_read},
    {NULL},
};

static const cfg_key config_keys[] = {
    {"model.arch", T_STR, AT(io_config, model.arch), .flags = F_REQUIRED},
    {"model.cut", T_INT, AT(io_config, model.cut), F_NULLOK, .lo = -1, .hi = INT_MAX,
     .def.i = -1, .note = "-1: the architecture's default"},
    {"model.split", T_INTS, AT(io_config, model.split), F_NULLOK, .lo = 1,
     .max = IO_MAX_GROUPS - 2, .cnt = offsetof(io_config, model.nsplit), .def.i = -1,
     .null_note = "null: the architecture's default", .read = split_read},
    {"model.head", T_ENUM, AT(io_config, model.head), .words = head_words, .none = "default",
     .note = "default, fastai, linear or original"},
    {"model.classes", T_INT, AT(io_config, model.classes), F_NULLOK, .lo = 0, .hi = INT_MAX,
     .note = "0: from the data"},
    {"model.input", T_SHAPE, AT(io_config, model.input), F_NULLOK,
     .note = "C, H, W; [0, 0, 0]: from the data"},
    {"model.widths", T_INTS, AT(io_config, model.widths), F_NULLOK, .lo = 1,
     .max = IO_MAX_WIDTHS, .cnt = offsetof(io_config, model.nwidths), .note = "mlp hidden widths",
     .null_note = "mlp hidden widths; null: the default"},
    {"model.small_stem", T_BOOL, AT(io_config, model.small_stem), .def.i = 0},
    {"model.init_from", T_STR, AT(io_config, model.init_from), F_EMPTY,
     .note = "\"\": no pretrained body"},
    {"model.engine", T_ENUM, AT(io_config, model.engine), .words = engine_words, .def.s = "cpu",
     .note = "cpu (oneDNN) or reference (im2col + OpenBLAS)"},

    {"groups.lr", T_HPARAM, AT(io_config, groups.lr), .range = R_POS, .noun = "learning rate",
     .def.d = 1e-3},
    {"groups.wd", T_HPARAM, AT(io_config, groups.wd), .range = R_NONNEG, .noun = "weight decay",
     .def.d = 0.01},
    {"groups.momentum", T_HPARAM, AT(io_config, groups.momentum), .range = R_UNIT_HALF_OPEN,
     .noun = "momentum", .def.d = 0.9},
    {"groups.freeze_to", T_INT, AT(io_config, groups.freeze_to), .lo = -IO_MAX_GROUPS,
     .hi = IO_MAX_GROUPS},
    {"groups.train_bn", T_BOOL, AT(io_config, groups.train_bn), .def.i = 1,
     .note = "BatchNorm parameters of frozen groups train"},
    {"groups.bn_freeze", T_BOOL, AT(io_config, groups.bn_freeze),
     .note = "BatchNorm of frozen groups in eval mode", .read = bn_freeze_read},

    {"optimizer.type", T_ENUM, AT(io_config, optimizer.type), .words = optimizer_words,
     .def.s = "sgd", .note = "sgd or adamw"},
    {"optimizer.nesterov", T_BOOL, AT(io_config, optimizer.nesterov), .note = "sgd"},
    {"optimizer.beta2", T_DOUBLE, AT(io_config, optimizer.beta2), .range = R_UNIT_HALF_OPEN,
     .def.d = 0.99, .note = "adamw"},
    {"optimizer.eps", T_DOUBLE, AT(io_config, optimizer.eps), .range = R_NONNEG, .def.d = 1e-8,
     .note = "adamw"},
    {"optimizer.decay_bn_bias", T_BOOL, AT(io_config, optimizer.decay_bn_bias), .def.i = 0},
    {"optimizer.true_wd", T_BOOL, AT(io_config, optimizer.true_wd), .def.i = 1,
     .note = "sgd: decoupled decay; false: L2", .read = true_wd_read},
    {"optimizer.clear_state", T_BOOL, AT(io_config, optimizer.clear_state), .def.i = 1,
     .note = "at a phase's freeze_to"},

    {"schedule", T_TABLE, AT(io_config, schedule), .sub = sched_keys},

    {"data.train", T_STR, AT(io_config, data.train), .def.s = "fashion-mnist"},
    {"data.valid", T_STR, AT(io_config, data.valid), F_EMPTY, .def.s = "fashion-mnist",
     .read = valid_read},
    {"data.dir", T_STR, AT(io_config, data.dir), .def.s = "/usr/share/datasets/fashion-mnist"},
    {"data.batch_size", T_INT, AT(io_config, data.batch_size), .lo = 1, .hi = INT_MAX,
     .def.i = 64, .note = "per rank"},
    {"data.augment.crop_padding", T_INT, AT(io_config, data.augment.crop_padding), .lo = 0,
     .hi = INT_MAX},
    {"data.augment.flip", T_BOOL, AT(io_config, data.augment.flip), .def.i = 0},
    {"data.mean", T_DOUBLES, AT(io_config, data.mean), .range = R_ANY, .max = 4,
     .cnt = offsetof(io_config, data.nnorm), .null_note = "null: the dataset's default",
     .read = norm_read},
    {"data.std", T_DOUBLES, AT(io_config, data.std), .range = R_POS, .max = 4,
     .cnt = offsetof(io_config, data.nnorm), .null_note = "null: the dataset's default",
     .read = read_with_previous},
    {"data.synthetic.samples", T_INT, AT(io_config, data.synthetic.samples), .lo = 1,
     .hi = INT_MAX, .def.i = 512},
    {"data.synthetic.classes", T_INT, AT(io_config, data.synthetic.classes), .lo = 2,
     .hi = INT_MAX, .def.i = 4},
    {"data.synthetic.input", T_SHAPE, AT(io_config, data.synthetic.input),
     .def.v = {1, 8, 8}},
    {"data.synthetic.seed", T_U64, AT(io_config, data.synthetic.seed), .def.i = 0},

    {"train.epochs", T_INT, AT(io_config, train.epochs), .lo = 1, .hi = INT_MAX, .def.i = 1},
    {"train.seed", T_U64, AT(io_config, train.seed), .def.i = 0},
    {"train.log_every", T_INT, AT(io_config, train.log_every), .lo = 1, .hi = INT_MAX,
     .def.i = 50},
    {"train.max_steps", T_INT, AT(io_config, train.max_steps), .lo = 0, .hi = INT_MAX,
     .note = "0: every step of an epoch"},
    {"train.accumulate", T_INT, AT(io_config, train.accumulate), .lo = 1, .hi = 1 << 16,
     .def.i = 1, .note = "micro-batches per optimizer step"},
    {"train.clip_norm", T_DOUBLE, AT(io_config, train.clip_norm), .range = R_NONNEG,
     .note = "0: no clipping"},
    {"train.preset", T_ENUM, AT(io_config, train.preset), .words = preset_words, .none = "none",
     .note = "none or fine_tune"},
    {"train.fine_tune.epochs", T_INT, AT(io_config, train.fine_tune.epochs), .lo = 1,
     .hi = INT_MAX, .def.i = 1, .read = fine_tune_epochs_read},
    {"train.fine_tune.base_lr", T_DOUBLE, AT(io_config, train.fine_tune.base_lr),
     .range = R_POS, .def.d = 2e-3},
    {"train.fine_tune.freeze_epochs", T_INT, AT(io_config, train.fine_tune.freeze_epochs),
     .lo = 0, .hi = INT_MAX, .def.i = 1},
    {"train.fine_tune.lr_mult", T_DOUBLE, AT(io_config, train.fine_tune.lr_mult),
     .range = R_POS, .def.d = 100.0},
    {"train.phases", T_LIST, AT(io_config, train.phases), F_NULLOK, .max = IO_MAX_PHASES,
     .cnt = offsetof(io_config, train.nphases), .sub = phase_keys, .read = phases_read,
     .write = phases_write},

    {"comm.overlap", T_BOOL, AT(io_config, comm.overlap), .def.i = 1,
     .note = "reduce while lower groups run backward"},
    {"comm.bucket_mb", T_DOUBLE, AT(io_config, comm.bucket_mb), .range = R_POS, .def.d = 4.0,
     .note = "largest all-reduce, MiB"},
    {"comm.progress", T_ENUM, AT(io_config, comm.progress), .words = progress_words,
     .def.s = "nonblocking", .note = "nonblocking or thread: who drives the overlap"},
    {"comm.timeout_s", T_DOUBLE, AT(io_config, comm.timeout_s), .range = R_NONNEG,
     .def.d = 300.0, .note = "a wait in a collective longer than this ends the job; 0: off"},

    {"checkpoint.every_steps", T_INT, AT(io_config, checkpoint.every_steps), .lo = 0,
     .hi = INT_MAX, .note = "0: not by steps"},
    {"checkpoint.every_epochs", T_INT, AT(io_config, checkpoint.every_epochs), .lo = 0,
     .hi = INT_MAX, .def.i = 1, .note = "0: not at epoch ends"},
    {"checkpoint.keep", T_INT, AT(io_config, checkpoint.keep), .lo = 1, .hi = 1000000,
     .def.i = 3, .note = "newest checkpoints kept"},

    /* Its default, runs/<model.arch>, is io_config_default's. */
    {"run.dir", T_STR, AT(io_config, run.dir), .read = run_dir_read},
    {NULL},
};

/* ---------------------------------------------------------------------------------------
 * What the tables drive: reading.
 */

/* The words that may follow prefix (pfx, plen characters, "" or ending in '.') in t's paths,
 * in table order, NULL-terminated in words (room for max of them, and the NULL). */
typedef char cfg_word[64];
static void table_words(const cfg_key *t, const char *pfx, size_t plen, cfg_word *buf,
                        const char **words, int max)
{
    int n = 0;
    for (const cfg_key *k = t; k->path != NULL; k++) {
        if (strncmp(k->path, pfx, plen) != 0 || k->path[plen] == '\0') continue;
        const char *s = k->path + plen, *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        NN_ASSERT(len < sizeof buf[0]);
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strlen(words[i]) == len && strncmp(words[i], s, len) == 0;
        if (seen) continue;
        NN_ASSERT(n < max);
        memcpy(buf[n], s, len);
        buf[n][len] = '\0';
        words[n] = buf[n];
        n++;
    }
    words[n] = NULL;
}

/* Fails on a key of map m (key path path) that t does not have after prefix pfx. */
static int table_check_keys(const cfg_key *t, const char *pfx, size_t plen, const io__node *m,
                            const char *path)
{
    if (m == NULL) return 0;
    cfg_word buf[32];
    const char *words[33];
    table_words(t, pfx, plen, buf, words, 32);
    return map_check_keys(m, path, words);
}

/* A typed value from in->v (by k's type), or the default kept when it is absent. */
static int key_read_value(const cfg_key *k, const key_in *in)
{
    const io__node *v = in->v;
    if (v == NULL) return (k->flags & F_REQUIRED) ? fail_missing(in->at, in->kp) : 0;
    if ((k->flags & F_NULLOK) && io__is_null(v)) return 0;
    char *p = in->base + k->off;
    const char *kp = in->kp;
    const io__node *m;
    int rc = 0;
    switch (k->type) {
    case T_INT: rc = read_int(v, kp, (int)k->lo, (int)k->hi, (int *)p); break;
    case T_U64: rc = read_u64(v, kp, (unsigned long long *)p); break;
    case T_DOUBLE: rc = read_double(v, kp, k->range, (double *)p); break;
    case T_BOOL: rc = read_bool(v, kp, (int *)p); break;
    case T_STR: rc = read_str(v, kp, p, k->size, (k->flags & F_EMPTY) != 0); break;
    case T_ENUM:
        if (k->none != NULL && (io__is_null(v) || (v->kind == IO__SCALAR && !v->text[0]))) {
            str_set(p, k->size, "");
            break;
        }
        rc = read_enum(v, kp, k->words, p, k->size);
        if (rc == 0 && k->none != NULL && strcmp(p, k->none) == 0) str_set(p, k->size, "");
        break;
    case T_SHAPE: rc = read_shape(v, kp, (k->flags & F_NULLOK) != 0, (int *)p); break;
    case T_HPARAM:
        rc = read_hparam(v, kp, k->range, k->noun, (k->flags & F_NULLOK) != 0, (io_hparam *)p);
        break;
    case T_INTS:
        rc = read_int_list(v, kp, (int)k->lo, (int *)p, k->max, (int *)(in->base + k->cnt));
        break;
    case T_DOUBLES:
        NN_ASSERT(k->cnt == 0); /* A counted list of numbers has its own reader (data.mean). */
        rc = read_double_list(v, kp, k->range, (double *)p, k->n);
        break;
    case T_TABLE:
        rc = want_map(v, kp, &m);
        if (rc >= 0) rc = table_read(in->cfg, k->sub, m, kp, m ? m : in->at, p);
        break;
    default:
        NN_ASSERT(0); /* T_LIST: its own reader. */
    }
    if (rc == 0 && k->has) *(int *)(in->base + k->has) = 1;
    return rc < 0 ? rc : 0;
}

/* The maps open while reading a table: the section of a row "data.augment.flip" is
 * data.augment, opened after data. */
typedef struct open_map {
    const io__node *m;     /* NULL: absent */
    char path[CFG_PATH];   /* its key path */
    const char *pfx;       /* the row path whose first plen characters name it */
    size_t plen;           /* 0 for the table's own map, else up to and with the '.' */
} open_map;

/* Opens the sections of row path (its first plen characters) below the ones open. */
static int open_sections(const cfg_key *t, open_map *st, int *depth, const char *path,
                         size_t plen)
{
    while (*depth > 0 && !(st[*depth].plen <= plen &&
                           strncmp(st[*depth].pfx, path, st[*depth].plen) == 0))
        (*depth)--;
    while (st[*depth].plen < plen) {
        const open_map *up = &st[*depth];
        const char *s = path + up->plen, *dot = strchr(s, '.');
        NN_ASSERT(dot != NULL && *depth + 1 < IO__YAML_DEPTH);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(dot - s), s);
        open_map *o = &st[*depth + 1];
        io__path_join(o->path, sizeof o->path, up->path, name);
        o->pfx = path;
        o->plen = (size_t)(dot - path) + 1;
        int rc = want_map(io__map_get(up->m, name), o->path, &o->m);
        if (rc < 0) return rc;
        rc = table_check_keys(t, path, o->plen, o->m, o->path);
        if (rc < 0) return rc;
        (*depth)++;
    }
    return 0;
}

/* Records in cfg->origins where row k of config_keys was given: v, its value in map m under
 * leaf (v NULL: not given). */
static void origin_record(io_config *cfg, const cfg_key *k, const io__node *m, const char *leaf,
                          const io__node *v)
{
    io_origin *o = &cfg->origins[k - config_keys];
    memset(o, 0, sizeof *o);
    if (v == NULL) return;
    if (v->from_set) {
        o->line = -1;
        snprintf(o->set, sizeof o->set, "%s", v->origin);
    } else {
        o->line = m->key_lines[io__map_index(m, leaf)];
    }
}

/* Reads every key of table t from map m (NULL: absent; path its key path) into base, in
 * table order. at: where m's missing keys are reported when m itself is absent. */
static int table_read(io_config *cfg, const cfg_key *t, const io__node *m, const char *path,
                      const io__node *at, char *base)
{
    int rc = table_check_keys(t, "", 0, m, path);
    if (rc < 0) return rc;
    open_map st[IO__YAML_DEPTH];
    int depth = 0;
    st[0].m = m;
    st[0].pfx = "";
    st[0].plen = 0;
    snprintf(st[0].path, sizeof st[0].path, "%s", path);
    for (const cfg_key *k = t; k->path != NULL; k++) {
        const char *dot = strrchr(k->path, '.'), *leaf = dot ? dot + 1 : k->path;
        if ((rc = open_sections(t, st, &depth, k->path, (size_t)(leaf - k->path))) < 0)
            return rc;
        const io__node *near = at;
        for (int d = depth; d >= 0; d--)
            if (st[d].m != NULL) {
                near = st[d].m;
                break;
            }
        char kp[CFG_PATH];
        io__path_join(kp, sizeof kp, st[depth].path, leaf);
        key_in in = {cfg, base, st[depth].m, st[depth].path, near,
                     io__map_get(st[depth].m, leaf), kp};
        rc = k->read ? k->read(k, &in) : key_read_value(k, &in);
        if (rc < 0) return rc;
        if (t == config_keys) origin_record(cfg, k, st[depth].m, leaf, in.v);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Defaults.
 */

static void hparam_scalar(io_hparam *hp, double v)
{
    memset(hp, 0, sizeof *hp);
    hp->kind = IO_HP_SCALAR;
    hp->v[0] = v;
    hp->n = 1;
}

/* Writes the defaults of table t's keys into base (zeroed by the caller). */
static void table_default(const cfg_key *t, char *base)
{
    for (const cfg_key *k = t; k->path != NULL; k++) {
        char *p = base + k->off;
        switch (k->type) {
        case T_INT:
        case T_BOOL: *(int *)p = (int)k->def.i; break;
        case T_U64: *(unsigned long long *)p = (unsigned long long)k->def.i; break;
        case T_DOUBLE: *(double *)p = k->def.d; break;
        case T_STR:
        case T_ENUM: str_set(p, k->size, k->def.s ? k->def.s : ""); break;
        case T_SHAPE: memcpy(p, k->def.v, sizeof k->def.v); break;
        case T_HPARAM:
            if (!(k->flags & F_NULLOK)) hparam_scalar((io_hparam *)p, k->def.d);
            break;
        case T_INTS:
            if (k->cnt) *(int *)(base + k->cnt) = (int)k->def.i;
            break;
        case T_DOUBLES:
            if (k->cnt)
                *(int *)(base + k->cnt) = (int)k->def.i;
            else
                memcpy(p, k->def.dv, (size_t)k->n * sizeof(double));
            break;
        case T_TABLE: table_default(k->sub, p); break;
        default: break; /* T_LIST: empty */
        }
    }
}

void io_schedule_default(io_schedule *s)
{
    NN_ASSERT(s != NULL);
    memset(s, 0, sizeof *s);
    table_default(sched_keys, (char *)s);
}

int io_config_default(io_config *cfg, const char *arch)
{
    NN_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof *cfg);
    table_default(config_keys, (char *)cfg);
    int rc = 0;
    if (arch != NULL && strlen(arch) >= sizeof cfg->model.arch) {
        rc = nn_err(NN_ERANGE, "model.arch: too long: at most %zu characters (got '%.40s')",
                    sizeof cfg->model.arch - 1, arch);
        arch = NULL;
    }
    str_set(cfg->model.arch, sizeof cfg->model.arch, arch ? arch : "");
    if (cfg->model.arch[0])
        snprintf(cfg->run.dir, sizeof cfg->run.dir, "runs/%s", cfg->model.arch);
    else
        str_set(cfg->run.dir, sizeof cfg->run.dir, "runs");
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Loading.
 */

/* The config file's text; messages name the path first, as every config message does. */
static int config_read_file(char **text, size_t *len, const char *path)
{
    const char *verb;
    char why[256];
    int rc = io__read_file(text, len, path, CFG_MAX_FILE, &verb, why, sizeof why);
    if (rc == 0) return 0;
    if (verb != NULL) return nn_err(NN_EIO, "%s: %s: %s", path, verb, why);
    if (rc == NN_ERANGE)
        return nn_err(NN_EIO, "%s: larger than %u bytes; is this a config file?", path,
                      CFG_MAX_FILE);
    if (rc == NN_ENOMEM) return nn_err(NN_ENOMEM, "%s: out of memory", path);
    return rc;
}

/* The table's top-level sections in table order ("model, groups, ..."). */
static void section_names(char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (const cfg_key *k = config_keys; k->path != NULL && used < len; k++) {
        size_t n = strcspn(k->path, ".");
        const cfg_key *prev = config_keys;
        while (prev < k && !(strncmp(prev->path, k->path, n) == 0 && strcspn(prev->path, ".") == n))
            prev++;
        if (prev < k) continue; /* named already */
        used += (size_t)snprintf(buf + used, len - used, "%s%.*s", used ? ", " : "", (int)n,
                                 k->path);
    }
}

/* The file's tree (an empty file is an empty map). */
static int config_tree(io__node **root, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = config_read_file(&text, &len, path);
    if (rc < 0) return rc;
    io__yaml_src src = {.origin = path, .from_set = 0, .base = "", .aliases = 0};
    rc = io__yaml_parse(root, text, len, &src);
    free(text);
    if (rc < 0) return rc;
    if (*root == NULL || io__is_null(*root)) { /* An empty file: every default. */
        io__node_free(*root);
        *root = io__node_new(IO__MAP, 1, path, 0);
        if (*root == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
    }
    if ((*root)->kind != IO__MAP) {
        char names[256];
        section_names(names, sizeof names);
        rc = io__node_fail(NN_EINVAL, *root, "(top level)", "expected a map of sections (%s)",
                           names);
        io__node_free(*root);
        *root = NULL;
    }
    return rc;
}

/* Applies the overrides to root; origins[i] gets "--set SETS[i]", which the tree's nodes
 * point to (the caller frees them). */
static int config_apply_sets(io__node *root, const char *const *sets, int nsets, char **origins)
{
    for (int i = 0; i < nsets; i++) {
        if (sets[i] == NULL) return nn_err(NN_EINVAL, "io_config_load: sets[%d] is NULL", i);
        size_t olen = strlen(sets[i]) + 8;
        if ((origins[i] = malloc(olen)) == NULL) return nn_err(NN_ENOMEM, "config: out of memory");
        snprintf(origins[i], olen, "--set %s", sets[i]);
        int rc = io__yaml_set(root, sets[i], origins[i]);
        if (rc < 0) return rc;
    }
    return 0;
}

int io_config_load(io_config *cfg, const char *path, const char *const *sets, int nsets)
{
    if (cfg == NULL || path == NULL || nsets < 0 || (nsets > 0 && sets == NULL))
        return nn_err(NN_EINVAL, "io_config_load: NULL argument");
    io_config_default(cfg, NULL);
    if (strlen(path) >= sizeof cfg->path)
        return nn_err(NN_EINVAL, "%.60s...: the config path is too long", path);

    io__node *root = NULL;
    int rc = config_tree(&root, path);
    if (rc < 0) return rc;
    /* Each override's text outlives the tree, whose nodes point to it for messages. */
    char **origins = calloc((size_t)nsets + 1, sizeof *origins);
    if (origins == NULL) {
        io__node_free(root);
        return nn_err(NN_ENOMEM, "config: out of memory");
    }
    rc = config_apply_sets(root, sets, nsets, origins);
    if (rc == 0) {
        str_set(cfg->path, sizeof cfg->path, path);
        rc = table_read(cfg, config_keys, root, "", root, (char *)cfg);
    }
    io__node_free(root);
    for (int i = 0; i < nsets; i++) free(origins[i]);
    free(origins);
    if (rc < 0) io_config_default(cfg, NULL);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Writing.
 */

/* Whether the key was given (a key without has always counts as given). */
static int key_given(const cfg_key *k, const char *base)
{
    if (k->has) return *(const int *)(base + k->has) != 0;
    if (k->type == T_HPARAM) return ((const io_hparam *)(base + k->off))->kind != IO_HP_UNSET;
    return 1;
}

/* Writes one key (named key, at indent) of the struct base by k's type. */
static void key_write(FILE *f, int indent, const char *key, const cfg_key *k,
                      const io_config *cfg, const char *base)
{
    const char *p = base + k->off;
    char b[1024];
    if (k->unset != NULL && !key_given(k, base)) {
        fprintf(f, "%*s# %s: unset, %s\n", indent, "", key, k->unset);
        return;
    }
    int count = k->cnt ? *(const int *)(base + k->cnt) : k->n;
    switch (k->type) {
    case T_INT: put_int(f, indent, key, *(const int *)p, k->note); break;
    case T_U64: put_u64(f, indent, key, *(const unsigned long long *)p, k->note); break;
    case T_DOUBLE: put_double(f, indent, key, *(const double *)p, k->note); break;
    case T_BOOL: put_bool(f, indent, key, *(const int *)p, k->note); break;
    case T_STR: put_str(f, indent, key, p, k->note); break;
    case T_ENUM: put_kv(f, indent, key, p[0] || k->none == NULL ? p : k->none, k->note); break;
    case T_SHAPE:
        fmt_int_list(b, sizeof b, (const int *)p, 3);
        put_kv(f, indent, key, b, k->note);
        break;
    case T_HPARAM: put_hparam(f, indent, key, (const io_hparam *)p, k->note); break;
    case T_INTS:
    case T_DOUBLES:
        if (k->cnt && count == k->def.i) {
            put_kv(f, indent, key, "null", k->null_note);
            break;
        }
        if (k->type == T_INTS)
            fmt_int_list(b, sizeof b, (const int *)p, count);
        else
            fmt_double_list(b, sizeof b, (const double *)p, count);
        put_kv(f, indent, key, b, k->note);
        break;
    case T_TABLE:
        fprintf(f, "%*s%s:\n", indent, "", key);
        table_write(f, k->sub, p, indent + 2, 0, cfg);
        break;
    default: NN_ASSERT(0); /* T_LIST: its own writer. */
    }
}

/* How many '.' there are in the first n characters of s. */
static int dots(const char *s, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; i++) d += s[i] == '.';
    return d;
}

/* Writes every key of table t from base at indent, in table order, with a line "name:" for
 * each section as it opens. item: base is a list item (its first key follows "- "). */
static void table_write(FILE *f, const cfg_key *t, const char *base, int indent, int item,
                        const io_config *cfg)
{
    const char *prev = "";
    size_t prev_plen = 0;
    for (const cfg_key *k = t; k->path != NULL; k++) {
        const char *dot = strrchr(k->path, '.'), *leaf = dot ? dot + 1 : k->path;
        size_t plen = (size_t)(leaf - k->path);
        /* The sections already open: the longest common run of whole segments. */
        size_t common = 0;
        for (size_t i = 0; i < plen && i < prev_plen && k->path[i] == prev[i]; i++)
            if (k->path[i] == '.') common = i + 1;
        for (size_t i = common; i < plen; i++) {
            if (i != common && k->path[i - 1] != '.') continue;
            const char *end = strchr(k->path + i, '.');
            fprintf(f, "%*s%.*s:\n", indent + 2 * dots(k->path, i), "", (int)(end - k->path - i),
                    k->path + i);
        }
        prev = k->path;
        prev_plen = plen;
        char key[80];
        int ind = indent + 2 * dots(k->path, plen);
        if (item && k == t) {
            snprintf(key, sizeof key, "- %s", leaf);
            ind -= 2;
        } else {
            snprintf(key, sizeof key, "%s", leaf);
        }
        if (k->write)
            k->write(f, ind, key, k, cfg, base);
        else
            key_write(f, ind, key, k, cfg, base);
    }
}

int io_config_write(const io_config *cfg, FILE *f)
{
    if (cfg == NULL || f == NULL) return nn_err(NN_EINVAL, "io_config_write: NULL argument");
    fprintf(f, "# strata: the effective configuration, every key (docs/config.md).\n");
    table_write(f, config_keys, (const char *)cfg, 0, 0, cfg);
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

_Static_assert(sizeof config_keys / sizeof config_keys[0] - 1 <= IO_CONFIG_ORIGINS,
               "IO_CONFIG_ORIGINS must hold a row of config_keys each");

int io_config_origin(char *buf, size_t len, const io_config *cfg, const char *key)
{
    if (buf == NULL || len == 0 || cfg == NULL || key == NULL)
        return nn_err(NN_EINVAL, "io_config_origin: NULL argument");
    buf[0] = '\0';
    const cfg_key *k = config_keys;
    while (k->path != NULL && strcmp(k->path, key) != 0) k++;
    if (k->path == NULL) return nn_err(NN_EINVAL, "io_config_origin: no key %s", key);
    const io_origin *o = &cfg->origins[k - config_keys];
    if (o->line > 0)
        snprintf(buf, len, "%s:%d: %s", cfg->path, o->line, key);
    else if (o->line < 0)
        snprintf(buf, len, "%s: %s", o->set, key);
    else if (cfg->path[0])
        snprintf(buf, len, "%s: %s", cfg->path, key);
    else
        snprintf(buf, len, "%s", key);
    return o->line != 0;
}

unsigned long io_config_key_compares(void)
{
    return io__yaml_compares();
}

/* ---------------------------------------------------------------------------------------
 * The list of keys.
 */

/* Walks t's keys under prefix, counting them in *count; key number want goes to buf.
 * A table's keys are listed in its place; a list's item keys follow the list as
 * "LIST.*.key", and a table within an item is one key there. */
static void keys_walk(const cfg_key *t, const char *prefix, int in_item, int want, char *buf,
                      size_t len, int *count, int *fits)
{
    for (const cfg_key *k = t; k->path != NULL; k++) {
        char path[CFG_PATH];
        io__path_join(path, sizeof path, prefix, k->path);
        if (k->type == T_TABLE && !in_item) {
            keys_walk(k->sub, path, 0, want, buf, len, count, fits);
            continue;
        }
        if (*count == want) *fits = snprintf(buf, len, "%s", path) < (int)len;
        (*count)++;
        if (k->type == T_LIST) {
            char item[CFG_PATH];
            io__path_join(item, sizeof item, path, "*");
            keys_walk(k->sub, item, 1, want, buf, len, count, fits);
        }
    }
}

int io_config_key_count(void)
{
    int count = 0, fits = 0;
    keys_walk(config_keys, "", 0, -1, NULL, 0, &count, &fits);
    return count;
}

int io_config_key_path(char *buf, size_t len, int i)
{
    if (buf == NULL || len == 0) return nn_err(NN_EINVAL, "io_config_key_path: no buffer");
    buf[0] = '\0';
    int count = 0, fits = -1;
    keys_walk(config_keys, "", 0, i, buf, len, &count, &fits);
    if (i < 0 || i >= count)
        return nn_err(NN_ERANGE, "io_config_key_path: key %d of %d", i, count);
    if (!fits)
        return nn_err(NN_ERANGE, "io_config_key_path: a buffer of %zu bytes is too small", len);
    return 0;
}
