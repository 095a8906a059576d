/* Replicas kept identical across ranks: rank 0's weights given to every rank, BatchNorm
 * statistics averaged, and the check that every rank holds the same frozen groups at each
 * phase (the start-up agreement, trainer_agree.c, checks the model, config and data). */
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

/* The same step and frozen groups on every rank at a phase's start. */
int trainer__check_phase(const trainer__run *r, int phase)
{
    const nn_model *m = r->model.m;
    char buf[256];
    int n = snprintf(buf, sizeof buf, "phase %d at step %ld, frozen groups:", phase,
                     r->model.global_step);
    for (int g = 0; g < m->ngroups && n < (int)sizeof buf - 8; g++)
        if (m->groups[g].frozen) n += snprintf(buf + n, sizeof buf - n, " %d", g);
    char what[64];
    snprintf(what, sizeof what, "the step and frozen groups at the start of phase %d", phase + 1);
    const trainer_agree_item it = {what, buf, NULL, 0};
    return trainer_agree(r->comm.c, &it, 1);
}
