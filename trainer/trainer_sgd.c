/* SGD with momentum; state lives in one slab per layer group, like the gradients. */
#include "trainer/trainer.h"

#include <stdlib.h>
#include <string.h>

int trainer_sgd_init(trainer_sgd *opt, const nn_model *m, float lr, float momentum, float wd)
{
    memset(opt, 0, sizeof *opt);
    if (!(lr > 0.0f) || momentum < 0.0f || momentum >= 1.0f || wd < 0.0f)
        return nn_err(NN_ERANGE, "SGD: lr %g must be > 0, momentum %g in [0, 1), wd %g >= 0",
                      (double)lr, (double)momentum, (double)wd);
    opt->lr = lr;
    opt->momentum = momentum;
    opt->wd = wd;
    opt->ngroups = m->ngroups;
    for (int g = 0; g < m->ngroups; g++) {
        opt->vel[g] = calloc(m->groups[g].numel ? m->groups[g].numel : 1, sizeof(float));
        if (!opt->vel[g]) {
            trainer_sgd_free(opt);
            return nn_err(NN_ENOMEM, "SGD: cannot allocate momentum for group %d", g);
        }
    }
    return 0;
}

void trainer_sgd_free(trainer_sgd *opt)
{
    for (int g = 0; g < NN_MAX_GROUPS; g++) free(opt->vel[g]);
    memset(opt, 0, sizeof *opt);
}

void trainer_sgd_step(trainer_sgd *opt, nn_model *m)
{
    for (int gi = 0; gi < m->ngroups; gi++) {
        nn_group *g = &m->groups[gi];
        for (int k = 0; k < g->nparams; k++) {
            nn_param *p = g->params[k];
            if (!p->trainable) continue;
            float *v = opt->vel[gi] + (p->data - g->param_slab);
            const float wd = (p->is_bn || p->is_bias) ? 0.0f : opt->wd;
            const float mu = opt->momentum, lr = opt->lr;
            for (size_t i = 0; i < p->numel; i++) {
                float d = p->grad[i] + wd * p->data[i];
                v[i] = mu * v[i] + d;
                p->data[i] -= lr * v[i];
            }
        }
    }
}
