/* Replicas kept identical across ranks: rank 0's weights given to every rank, BatchNorm
 * statistics averaged, and checks that every rank holds the same model and config (at start)
 * and the same frozen groups (at each phase), by hash first, then in detail, naming the first
 * line and YAML section that differ. */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <stdlib.h>
#include <string.h>

static int bn_bcast(void *ud, const char *name, nn_buffer *b)
{
    return comm_bcast_f32(ud, b->data, b->numel, 0);
}

static int bn_average(void *ud, const char *name, nn_buffer *b)
{
    return comm_allreduce_f32(ud, b->data, b->numel, 1);
}

/* Replicas start identical even if a rank's RNG or BLAS differed. */
int trainer__sync_replicas(nn_model *m, comm *c)
{
    for (int g = 0; g < m->ngroups; g++) {
        int rc = comm_bcast_f32(c, m->groups[g].param_slab, m->groups[g].numel, 0);
        if (rc) return rc;
    }
    return nn_model_visit_buffers(m, bn_bcast, c);
}

/* The BatchNorm running statistics averaged over all ranks. */
int trainer__bn_average(nn_model *m, comm *c)
{
    return nn_model_visit_buffers(m, bn_average, c);
}

static int describe_param(void *ud, const char *name, nn_param *p)
{
    util_str_printf(ud, "param %s (%d, %d, %d, %d) group %d%s\n", name, p->shape[0], p->shape[1],
                    p->shape[2], p->shape[3], p->group, p->trainable ? " trainable" : "");
    return 0;
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

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

/* The error of a rank whose text (mine) differs from rank 0's (theirs): the first line that
 * differs, on both, and its YAML section. */
static int differs_at(const char *what, const char *mine, const char *theirs)
{
    const char *a = mine, *b = theirs;
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) break;
        a += la + (ea != NULL);
        b += lb + (eb != NULL);
    }
    int la = (int)(strchr(a, '\n') ? strchr(a, '\n') - a : (long)strlen(a));
    int lb = (int)(strchr(b, '\n') ? strchr(b, '\n') - b : (long)strlen(b));
    char where[256];
    yaml_sections(where, sizeof where, mine, a);
    return nn_err(NN_ESTATE, "replica check (%s): this rank differs from rank 0%s%s: '%.*s' here, '%.*s' on rank 0",
                  what, where[0] ? " in " : "", where, la > 200 ? 200 : la, a, lb > 200 ? 200 : lb, b);
}

/* Every rank compares `mine` with rank 0's by hash, then, if any differs, in detail: a rank
 * that differs names the first line that is not rank 0's. Returns the agreed status. */
static int compare_with_rank0(comm *c, const char *what, const char *mine, size_t len)
{
    uint64_t h = fnv1a(mine, len), h0 = h;
    int rc = comm_bcast_bytes(c, &h0, sizeof h0, 0);
    if (rc) return rc;
    int32_t differs[1] = {h != h0};
    rc = comm_allreduce_max_i32(c, differs, 1);
    if (rc || !differs[0]) return rc;
    uint64_t n0 = len;
    rc = comm_bcast_bytes(c, &n0, sizeof n0, 0);
    char *theirs = rc ? NULL : malloc(n0 + 1);
    if (!rc && !theirs) rc = nn_err(NN_ENOMEM, "replica check: out of memory");
    if (!rc && comm_rank(c) == 0) memcpy(theirs, mine, n0);
    if (!rc) rc = comm_bcast_bytes(c, theirs, n0, 0);
    if (rc) {
        free(theirs);
        return rc;
    }
    theirs[n0] = '\0';
    int status = h != h0 ? differs_at(what, mine, theirs)
                         : nn_err(NN_ESTATE, "replica check (%s): another rank differs from rank 0 (its message says how)", what);
    free(theirs);
    /* Every rank fails; comm_agree keeps each rank's own message. */
    int32_t st[1] = {status};
    comm_allreduce_max_i32(c, st, 1);
    return status;
}

/* The same model and effective config on every rank, agreed on. */
int trainer__check_replicas(const trainer__run *r)
{
    const nn_model *m = r->model.m;
    util_str t = {0};
    util_str_printf(&t, "model %s input %dx%dx%d classes %d cut %d groups %d\n", m->arch,
                    m->in_shape[0], m->in_shape[1], m->in_shape[2], m->classes, m->cut,
                    m->ngroups);
    for (int g = 0; g < m->ngroups; g++)
        util_str_printf(&t, "group %d: children %d-%d, %zu parameters, frozen %d\n", g,
                        m->groups[g].first, m->groups[g].last, m->groups[g].numel,
                        m->groups[g].frozen);
    nn_model_visit_params(r->model.m, describe_param, &t);
    char *cfg = NULL;
    if (io_config_to_string(&cfg, r->cfg) == 0) util_str_cat(&t, cfg);
    free(cfg);
    int rc = t.failed ? nn_err(NN_ENOMEM, "replica check: out of memory") : 0;
    rc = comm_agree(r->comm.c, rc, NULL);
    if (!rc) rc = compare_with_rank0(r->comm.c, "model and config at start", t.s, t.len);
    util_str_free(&t);
    return rc;
}

/* The same step and frozen groups on every rank at a phase's start. */
int trainer__check_phase(const trainer__run *r, int phase)
{
    const nn_model *m = r->model.m;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "phase %d at step %ld, frozen groups:", phase,
                     r->model.global_step);
    for (int g = 0; g < m->ngroups && n < (int)sizeof buf - 8; g++)
        if (m->groups[g].frozen) n += snprintf(buf + n, sizeof buf - n, " %d", g);
    char what[32];
    snprintf(what, sizeof what, "start of phase %d", phase + 1);
    return compare_with_rank0(r->comm.c, what, buf, (size_t)n);
}
