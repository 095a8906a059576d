/* Printing models the way PyTorch prints modules, with layer-group boundaries marked. */
#include "nn/nn_internal.h"

#include <string.h>

static void put_indent(FILE *f, int n)
{
    for (int i = 0; i < n; i++) fputc(' ', f);
}

/* 21797672 -> "21,797,672" */
static const char *with_commas(char *buf, size_t len, size_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%zu", v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

int nn_layer_print(const nn_layer *l, FILE *f, int indent)
{
    char extra[256];
    l->ops->describe(l, extra, sizeof extra);
    if (l->nkids == 0) {
        fprintf(f, "%s(%s)", l->ops->type, extra);
        return 0;
    }
    fprintf(f, "%s(%s\n", l->ops->type, extra);
    for (int i = 0; i < l->nkids; i++) {
        put_indent(f, indent + 2);
        fprintf(f, "(%s): ", l->kids[i]->name);
        nn_layer_print(l->kids[i], f, indent + 2);
        fputc('\n', f);
    }
    put_indent(f, indent);
    fputc(')', f);
    return 0;
}

static void group_banner(const nn_model *m, int gi, FILE *f, int indent)
{
    const nn_group *g = &m->groups[gi];
    char num[32];
    put_indent(f, indent);
    if (g->is_head)
        fprintf(f, "# ---- layer group %d: head, %s parameters%s ----\n", gi,
                with_commas(num, sizeof num, g->numel), g->frozen ? ", frozen" : "");
    else
        fprintf(f, "# ---- layer group %d: body children %d-%d, %s parameters%s ----\n", gi,
                g->first, g->last, with_commas(num, sizeof num, g->numel),
                g->frozen ? ", frozen" : "");
}

int nn_model_print(const nn_model *m, FILE *f)
{
    char num[32];
    fprintf(f, "# %s: input %dx%dx%d, %d classes, cut %d, %d layer groups, %s parameters\n",
            m->arch, m->in_shape[0], m->in_shape[1], m->in_shape[2], m->classes, m->cut,
            m->ngroups, with_commas(num, sizeof num, nn_model_numel(m)));
    fprintf(f, "Sequential(\n");
    put_indent(f, 2);
    fprintf(f, "(body): Sequential(\n");
    for (int i = 0; i < m->body->nkids; i++) {
        for (int gi = 0; gi < m->ngroups; gi++)
            if (!m->groups[gi].is_head && m->groups[gi].first == i) group_banner(m, gi, f, 4);
        put_indent(f, 4);
        fprintf(f, "(%s): ", m->body->kids[i]->name);
        nn_layer_print(m->body->kids[i], f, 4);
        fputc('\n', f);
    }
    put_indent(f, 2);
    fprintf(f, ")\n");
    group_banner(m, m->ngroups - 1, f, 2);
    put_indent(f, 2);
    fprintf(f, "(head): ");
    nn_layer_print(m->head, f, 2);
    fprintf(f, "\n)\n");
    return ferror(f) ? nn_err(NN_EIO, "cannot write the model description") : 0;
}
