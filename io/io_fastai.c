/*
 * fastai's recipes that the config fills in: the one-cycle schedule defaults and the fine_tune
 * preset. They are training decisions, kept apart from the reading and writing of the config
 * (io_config.c) so that they can move to trainer/ as they are: io_config_default calls
 * io_schedule_default for the schedule section, and io_config_load calls io__config_presets
 * once, after every key is read.
 */
#include "io/io_config.h"
#include "io/io_internal.h"

#include <stdio.h>
#include <string.h>

/* Copies s into a fixed buffer, zeroing the rest (so structs compare with memcmp). */
static void str_set(char *buf, size_t size, const char *s)
{
    memset(buf, 0, size);
    snprintf(buf, size, "%s", s);
}

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

void io__config_presets(io_config *cfg)
{
    if (strcmp(cfg->train.preset, "fine_tune") == 0) expand_fine_tune(cfg);
}
