/*
 * fastai's recipes that are training's decisions, not the config's: the fine_tune preset
 * expanded into phases. io reads the config as written (its table holds every default, the
 * schedule's included); trainer_config_load is io_config_load followed by this step, and is
 * what the CLI, the benches and the tests call.
 */
#include "trainer/trainer.h"

#include <stdio.h>
#include <string.h>

/* Copies s into a fixed buffer, zeroing the rest (so structs compare with memcmp). */
static void str_set(char *buf, size_t size, const char *s)
{
    memset(buf, 0, size);
    snprintf(buf, size, "%s", s);
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

void trainer_config_presets(io_config *cfg)
{
    if (strcmp(cfg->train.preset, "fine_tune") == 0) expand_fine_tune(cfg);
}

int trainer_config_load(io_config *cfg, const char *path, const char *const *sets, int nsets)
{
    int rc = io_config_load(cfg, path, sets, nsets);
    if (rc == 0) trainer_config_presets(cfg);
    return rc;
}
