/* The start-up agreement: what must be the same on every rank, checked so that a difference
 * ends the job on every rank with a message naming it, never a hang. The CLI agrees on the
 * subcommand, the strata build and the options that change what collectives run as its first
 * collective, then on the effective config; training, eval and lr-find agree on the config, the
 * model and the data once those are loaded.
 *
 * Every rank runs the same collectives whatever its values: a broadcast of rank 0's hash and
 * an all-reduce of a flag; only on a mismatch (agreed) rank 0's and the lowest differing
 * rank's fixed-size records, and for a multi-line text (the config, the model) rank 0's text
 * and the differing line. */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef STRATA_GIT_ID
#define STRATA_GIT_ID "unknown"
#endif

const char *trainer_build_id(void)
{
    return STRATA_VERSION " (git " STRATA_GIT_ID ")";
}

/* ---- hashing ----------------------------------------------------------------------- */

#define HASH_SEED 1469598103934665603ULL

/* A 64-bit hash of p[0..n) continuing from h: FNV-1a's step on 8-byte words, with a shift
 * that carries the high bits down (about 5 GB/s; a fingerprint, not a cryptographic hash). */
static uint64_t hash64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (; n >= 8; n -= 8, s += 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 1099511628211ULL;
        h ^= h >> 29;
    }
    for (; n; n--, s++) h = (h ^ *s) * 1099511628211ULL;
    return h;
}

/* ---- the records ------------------------------------------------------------------- */

#define AGREE_NAME 64
#define AGREE_VALUE 168

typedef struct {
    char name[AGREE_NAME];
    char value[AGREE_VALUE]; /* as shown: the value, cut with "..." */
    uint64_t hash;           /* of the whole value, or of the detail text */
    int32_t has_detail, pad;
} agree_item_rec;

/* One rank's record: every byte set (memset), so that it hashes the same on every rank. */
typedef struct {
    char host[64];
    int32_t n, pad;
    agree_item_rec item[TRAINER_AGREE_MAX];
} agree_rec;

static void rec_fill(agree_rec *r, const trainer_agree_item *items, int n)
{
    memset(r, 0, sizeof *r);
    if (gethostname(r->host, sizeof r->host - 1)) snprintf(r->host, sizeof r->host, "?");
    r->n = n;
    for (int i = 0; i < n; i++) {
        agree_item_rec *it = &r->item[i];
        const char *v = items[i].value ? items[i].value : "none";
        snprintf(it->name, sizeof it->name, "%s", items[i].name);
        if (strlen(v) < sizeof it->value)
            memcpy(it->value, v, strlen(v));
        else
            snprintf(it->value, sizeof it->value, "%.*s...", (int)sizeof it->value - 4, v);
        it->has_detail = items[i].detail != NULL;
        it->hash = it->has_detail ? hash64(HASH_SEED, items[i].detail, items[i].detail_len)
                                  : hash64(HASH_SEED, v, strlen(v));
    }
}

/* The hash of what is compared: everything but the host. */
static uint64_t rec_hash(const agree_rec *r)
{
    return hash64(HASH_SEED, &r->n, sizeof *r - offsetof(agree_rec, n));
}

/* The first item that differs between a and b (absent on one side counts), or -1. */
static int rec_first_difference(const agree_rec *a, const agree_rec *b)
{
    const int n = a->n > b->n ? a->n : b->n;
    for (int i = 0; i < n; i++) {
        if (i >= a->n || i >= b->n) return i;
        const agree_item_rec *x = &a->item[i], *y = &b->item[i];
        if (strcmp(x->name, y->name) || x->hash != y->hash || x->has_detail != y->has_detail)
            return i;
    }
    return -1;
}

/* ---- a multi-line text's first differing line ------------------------------------- */

/* The enclosing YAML sections of the line at `at` in doc (lines indented less, walking
 * back), e.g. "train" for "  seed: 6", "data.synthetic" for "    seed: 7". */
static void yaml_sections(char *out, size_t len, const char *doc, const char *at)
{
    out[0] = '\0';
    int indent = 0;
    while (at[indent] == ' ') indent++;
    const char *names[8];
    int nlen[8], n = 0;
    for (const char *p = at; p > doc && indent > 0 && n < 8;) {
        const char *ls = p - 1; /* the end of the previous line */
        while (ls > doc && ls[-1] != '\n') ls--;
        int ind = 0;
        while (ls[ind] == ' ') ind++;
        const char *colon = memchr(ls + ind, ':', (size_t)(p - 1 - ls - ind));
        if (ind < indent && ls[ind] != '#' && ls[ind] != '-' && colon) {
            names[n] = ls + ind;
            nlen[n++] = (int)(colon - ls - ind);
            indent = ind;
        }
        p = ls;
    }
    size_t o = 0;
    for (int i = n - 1; i >= 0 && o < len; i--)
        o += (size_t)snprintf(out + o, len - o, "%s%.*s", i == n - 1 ? "" : ".", nlen[i], names[i]);
}

/* What rank 0's and rank k's texts show where they first differ. */
typedef struct {
    char where[128]; /* the YAML section, or "" */
    char line0[AGREE_VALUE], linek[AGREE_VALUE];
} agree_line;

/* The length of the line at s as shown: without a YAML comment (a '#' after a blank, outside
 * double quotes) and the blanks before it. */
static int line_len(const char *s)
{
    int n = 0, quoted = 0;
    for (; s[n] && s[n] != '\n'; n++) {
        if (s[n] == '"' && (n == 0 || s[n - 1] != '\\')) quoted = !quoted;
        if (s[n] == '#' && !quoted && n > 0 && s[n - 1] == ' ') break;
    }
    while (n > 0 && s[n - 1] == ' ') n--;
    return n > AGREE_VALUE - 4 ? AGREE_VALUE - 4 : n;
}

/* Rank k: the first line of mine that is not rank 0's (theirs). */
static void first_line_difference(agree_line *d, const char *mine, const char *theirs)
{
    const char *a = mine, *b = theirs;
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) break;
        a += la + (ea != NULL);
        b += lb + (eb != NULL);
    }
    memset(d, 0, sizeof *d);
    yaml_sections(d->where, sizeof d->where, mine, a);
    snprintf(d->linek, sizeof d->linek, "%.*s", line_len(a), *a ? a : "(the end)");
    snprintf(d->line0, sizeof d->line0, "%.*s", line_len(b), *b ? b : "(the end)");
}

/* Every rank: rank 0 sends its text, rank k finds the first line that differs and sends
 * what both show there. */
static int detail_round(comm *c, int k, const trainer_agree_item *mine, agree_line *d)
{
    const int rank = comm_rank(c);
    uint64_t n0 = rank == 0 ? mine->detail_len : 0;
    int rc = comm_bcast_bytes(c, &n0, sizeof n0, 0);
    char *theirs = rc ? NULL : malloc(n0 + 1);
    int32_t failed[1] = {theirs == NULL};
    if (!rc) rc = comm_allreduce_max_i32(c, failed, 1);
    if (!rc && failed[0]) rc = nn_err(NN_ENOMEM, "ranks disagree (out of memory saying how)");
    if (rc) {
        free(theirs);
        return rc;
    }
    if (rank == 0) memcpy(theirs, mine->detail, n0);
    rc = comm_bcast_bytes(c, theirs, n0, 0);
    theirs[n0] = '\0';
    if (!rc && rank == k) {
        char *text = malloc(mine->detail_len + 1);
        if (text) {
            memcpy(text, mine->detail, mine->detail_len);
            text[mine->detail_len] = '\0';
            first_line_difference(d, text, theirs);
        } else
            snprintf(d->linek, sizeof d->linek, "(out of memory)");
        free(text);
    }
    free(theirs);
    if (!rc) rc = comm_bcast_bytes(c, d, sizeof *d, k);
    return rc;
}

/* ---- the agreement ----------------------------------------------------------------- */

/* The message every rank returns: item i differs between rank 0 (r0) and rank k (rk). */
static int disagree(comm *c, const agree_rec *r0, const agree_rec *rk, int k, int i,
                    long others, const agree_line *d)
{
    const agree_item_rec *a = i < r0->n ? &r0->item[i] : NULL, *b = i < rk->n ? &rk->item[i] : NULL;
    const char *name = a ? a->name : b->name;
    char v0[AGREE_NAME + AGREE_VALUE + 8], vk[sizeof v0], more[64] = "";
    const int same_name = a && b && !strcmp(a->name, b->name);
    snprintf(v0, sizeof v0, "%s%s%s", a && !same_name ? a->name : "", a && !same_name ? ": " : "",
             !a ? "(nothing)" : d ? d->line0 : a->value);
    snprintf(vk, sizeof vk, "%s%s%s", b && !same_name ? b->name : "", b && !same_name ? ": " : "",
             !b ? "(nothing)" : d ? d->linek : b->value);
    if (others > 0) snprintf(more, sizeof more, " (and %ld more rank(s) differ from rank 0)", others);
    const int rank = comm_rank(c);
    if (rank != 0 && rank != k)
        return nn_err(NN_ESTATE, "ranks disagree on %s (rank 0's and rank %d's messages say how)",
                      same_name ? name : "the command line", k);
    return nn_err(NN_ESTATE, "ranks disagree on %s%s%s: rank 0 (%s) has '%s', rank %d (%s) has '%s'%s",
                  same_name ? name : "the command line", d && d->where[0] ? " in " : "",
                  d ? d->where : "", r0->host, v0, k, rk->host, vk, more);
}

/* On a mismatch: rank 0's and rank k's records on every rank, then the message. */
static int mismatch(comm *c, const agree_rec *mine, const trainer_agree_item *items, int k,
                    long others)
{
    const int rank = comm_rank(c);
    agree_rec r[2]; /* rank 0's and rank k's (8 KiB) */
    memset(r, 0, sizeof r);
    if (rank == 0) r[0] = *mine;
    if (rank == k) r[1] = *mine;
    int rc = comm_bcast_bytes(c, &r[0], sizeof *r, 0);
    if (!rc) rc = comm_bcast_bytes(c, &r[1], sizeof *r, k);
    const int i = rc ? -1 : rec_first_difference(&r[0], &r[1]);
    agree_line d;
    const int detail = i >= 0 && i < r[0].n && i < r[1].n && r[0].item[i].has_detail &&
                       r[1].item[i].has_detail && !strcmp(r[0].item[i].name, r[1].item[i].name);
    if (!rc && detail) rc = detail_round(c, k, &items[i], &d);
    if (!rc)
        rc = i < 0 ? nn_err(NN_ESTATE, "ranks disagree (rank %d's record differs from rank 0's, no item does)", k)
                   : disagree(c, &r[0], &r[1], k, i, others, detail ? &d : NULL);
    return rc;
}

int trainer_agree(comm *c, const trainer_agree_item *items, int n)
{
    if (n < 0 || n > TRAINER_AGREE_MAX)
        return nn_err(NN_EINVAL, "start-up agreement: %d items (at most %d)", n, TRAINER_AGREE_MAX);
    if (comm_size(c) == 1) return 0;
    agree_rec mine;
    rec_fill(&mine, items, n);
    uint64_t h = rec_hash(&mine), h0 = h;
    int rc = comm_bcast_bytes(c, &h0, sizeof h0, 0);
    /* (differs, -rank): the max is whether any rank differs, and the lowest that does. */
    int32_t v[2] = {h != h0, h != h0 ? -comm_rank(c) : INT32_MIN};
    int64_t count[1] = {h != h0};
    if (!rc) rc = comm_allreduce_max_i32(c, v, 2);
    if (!rc && v[0]) rc = comm_allreduce_i64(c, count, 1);
    if (!rc && v[0]) rc = mismatch(c, &mine, items, -v[1], (long)count[0] - 1);
    return rc;
}

/* ---- what a run agrees on once loaded --------------------------------------------- */

/* Labels and images hashed whole up to this many image bytes; beyond, every label and this
 * many samples, evenly spaced from the first to the last. */
#define AGREE_DATA_ALL (64u << 20)
#define AGREE_DATA_SAMPLES 4096

/* "N samples of CxHxW uint8, K classes, hash H of every byte" for ds. */
static void data_fingerprint(char *out, size_t len, const io_dataset *ds)
{
    const size_t per = (size_t)ds->c * ds->h * ds->w * (ds->images ? 1 : sizeof(float));
    const unsigned char *img = ds->images ? ds->images : (const unsigned char *)ds->images_f32;
    const size_t n = ds->n > 0 ? (size_t)ds->n : 0;
    uint64_t h = hash64(HASH_SEED, ds->labels, sizeof(int32_t) * n);
    if (ds->norm_mean) h = hash64(h, ds->norm_mean, sizeof(float) * (size_t)ds->c);
    if (ds->norm_std) h = hash64(h, ds->norm_std, sizeof(float) * (size_t)ds->c);
    char how[64];
    if (per * n <= AGREE_DATA_ALL || n <= AGREE_DATA_SAMPLES) {
        h = hash64(h, img, per * n);
        snprintf(how, sizeof how, "every byte");
    } else {
        for (size_t k = 0; k < AGREE_DATA_SAMPLES; k++)
            h = hash64(h, img + per * (k * (n - 1) / (AGREE_DATA_SAMPLES - 1)), per);
        snprintf(how, sizeof how, "the labels and %d samples' bytes", AGREE_DATA_SAMPLES);
    }
    snprintf(out, len, "%d samples of %dx%dx%d %s, %d classes%s, hash %016llx of %s", ds->n,
             ds->c, ds->h, ds->w, ds->images ? "uint8" : "float32", ds->classes,
             ds->norm_mean ? ", mean/std" : "", (unsigned long long)h, how);
}

static int hash_buffer(void *ud, const char *name, nn_buffer *b)
{
    uint64_t *h = ud;
    *h = hash64(*h, b->data, sizeof(float) * b->numel);
    return 0;
}

static int describe_param(void *ud, const char *name, nn_param *p)
{
    util_str_printf(ud, "param %s (%d, %d, %d, %d) group %d%s\n", name, p->shape[0], p->shape[1],
                    p->shape[2], p->shape[3], p->group, p->trainable ? " trainable" : "");
    return 0;
}

/* The model's description: architecture, input, group table, every parameter. */
static void model_describe(util_str *t, nn_model *m)
{
    util_str_printf(t, "model %s input %dx%dx%d classes %d cut %d groups %d\n", m->arch,
                    m->in_shape[0], m->in_shape[1], m->in_shape[2], m->classes, m->cut,
                    m->ngroups);
    for (int g = 0; g < m->ngroups; g++)
        util_str_printf(t, "group %d: children %d-%d, %zu parameters, frozen %d\n", g,
                        m->groups[g].first, m->groups[g].last, m->groups[g].numel,
                        m->groups[g].frozen);
    nn_model_visit_params(m, describe_param, t);
}

/* The effective config, the model, the data and (weights not NULL) the weights read from
 * it, agreed on. */
int trainer__check_replicas(comm *c, const io_config *cfg, nn_model *m, const trainer__data *d,
                            const char *weights)
{
    if (comm_size(c) == 1) return 0;
    util_str model = {0};
    model_describe(&model, m);
    char *text = NULL;
    int rc = io_config_to_string(&text, cfg);
    if (!rc && model.failed) rc = nn_err(NN_ENOMEM, "start-up agreement: out of memory");
    rc = comm_agree(c, rc, NULL);
    trainer_agree_item it[5] = {{"the effective config", NULL, text, text ? strlen(text) : 0},
                                {"the model", NULL, model.s, model.len}};
    char names[3][AGREE_NAME], values[3][AGREE_VALUE];
    int n = 2;
    const char *spec[2] = {cfg->data.train, cfg->data.valid};
    const io_dataset *ds[2] = {&d->train, &d->valid};
    for (int s = 0; s < 1 + d->has_valid; s++, n++) {
        const size_t sl = strlen(spec[s]);
        snprintf(names[s], sizeof names[s], "%s (%s%s)", s ? "data.valid" : "data.train",
                 sl > 40 ? "..." : "", spec[s] + (sl > 40 ? sl - 37 : 0));
        data_fingerprint(values[s], sizeof values[s], ds[s]);
        it[n] = (trainer_agree_item){names[s], values[s], NULL, 0};
    }
    if (weights) {
        uint64_t h = HASH_SEED;
        for (int g = 0; g < m->ngroups; g++)
            h = hash64(h, m->groups[g].param_slab, sizeof(float) * m->groups[g].numel);
        nn_model_visit_buffers(m, hash_buffer, &h);
        const size_t wl = strlen(weights);
        snprintf(names[2], sizeof names[2], "the weights (%s%s)", wl > 40 ? "..." : "",
                 weights + (wl > 40 ? wl - 37 : 0));
        snprintf(values[2], sizeof values[2], "hash %016llx", (unsigned long long)h);
        it[n++] = (trainer_agree_item){names[2], values[2], NULL, 0};
    }
    if (!rc) rc = trainer_agree(c, it, n);
    free(text);
    util_str_free(&model);
    return rc;
}
