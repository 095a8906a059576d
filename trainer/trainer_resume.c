/* Checkpoints of a training run: where a resumed run starts (--resume), what it takes from
 * the checkpoint (weights, optimizer state, RNG states, counters) or from model.init_from,
 * and saving one (docs/checkpoint-format.md). */
#include "trainer/trainer_internal.h"

#include "util/util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Rank 0: --resume's checkpoint path into path ("" for "auto" without a checkpoint yet).
 * auto takes the newest checkpoint that opens whatever checkpoints/latest says, and never
 * starts from the beginning over checkpoints that are there but do not open. */
static int resume_path(const trainer__run *r, const char *resume, char *path, size_t len)
{
    snprintf(path, len, "%s", resume);
    if (strcmp(resume, "auto")) return 0;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/checkpoints", r->cfg->run.dir);
    struct stat st;
    io_ckpt_found found;
    int rc = stat(dir, &st) ? NN_ENOTFOUND : io_ckpt_find_resume(&found, dir);
    if (rc == NN_ENOTFOUND && (stat(dir, &st) || !found.skipped)) {
        if (r->log.out)
            fprintf(r->log.out, "strata: --resume auto: no checkpoint in %s yet; starting from the beginning\n", dir);
        path[0] = '\0';
        return 0;
    }
    if (rc == NN_ENOTFOUND) {
        char why[1024];
        snprintf(why, sizeof why, "%s", nn_errmsg());
        return nn_err(rc, "--resume auto: %s; the files are kept: resume one by path, or start "
                      "over in another run.dir", why);
    }
    if (rc) return rc;
    if (strlen(found.path) >= len) return nn_err(NN_ERANGE, "%s: the path is too long", found.path);
    memcpy(path, found.path, strlen(found.path) + 1);
    if (found.why[0] && r->log.out)
        fprintf(r->log.out, "strata: --resume auto: %s; resuming from %s\n", found.why, path);
    return 0;
}

/* The checkpoint's training position t against this run's phases: an unfinished position
 * must lie inside them (phase, epoch and steps in range, none negative), or NN_ESTATE names
 * the file, the value and the range; a silent skip of training would look like success. */
static int check_position(const trainer__run *r, const io_ckpt_train *t, const char *path)
{
    const char *hint = "did train.phases, train.epochs or train.max_steps change?";
    if (t->finished) return 0;
    if (t->seed != r->cfg->train.seed)
        return nn_err(NN_ESTATE, "%s: the checkpoint's train.seed is %llu, the config's %llu: the seed sets the data order and augmentation that a resumed run continues; resume with --set train.seed=%llu, or start a new run",
                      path, (unsigned long long)t->seed, (unsigned long long)r->cfg->train.seed,
                      (unsigned long long)t->seed);
    if (t->phase < 0 || t->phase >= r->phase.n)
        return nn_err(NN_ESTATE, "%s: its training position is phase %d (0-based), but this run has %d phase(s), 0 to %d (%s)",
                      path, t->phase, r->phase.n, r->phase.n - 1, hint);
    const io_phase *ph = &r->phase.list[t->phase];
    if (t->epoch_in_phase < 0 || t->epoch_in_phase >= ph->epochs)
        return nn_err(NN_ESTATE, "%s: its training position is epoch %d (0-based) of phase %d '%s', which has %d epoch(s) (%s)",
                      path, t->epoch_in_phase, t->phase, ph->name, ph->epochs, hint);
    const long spe = t->steps_per_epoch;
    if (spe < 0 || t->step_in_epoch < 0 || t->step_in_epoch > spe ||
        t->phase_step < 0 || t->phase_step > spe * ph->epochs)
        return nn_err(NN_ESTATE, "%s: its training position is step %ld of an epoch of %ld steps, step %ld of phase %d (at most %ld): the train state is inconsistent",
                      path, t->step_in_epoch, spe, t->phase_step, t->phase, spe * ph->epochs);
    if (t->global_step < t->phase_step || t->epoch < t->epoch_in_phase)
        return nn_err(NN_ESTATE, "%s: its training position is inconsistent: global step %ld before the phase's step %ld, or epoch %d before the phase's epoch %d",
                      path, t->global_step, t->phase_step, t->epoch, t->epoch_in_phase);
    return 0;
}

/* Rank 0, resuming: the temporary files that writes killed midway left in run.dir and
 * run.dir/checkpoints (a checkpoint, latest, config.yaml, status), removed whatever the run
 * has left to do (even nothing). */
static int clean_temps(const trainer__run *r)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s%s", r->cfg->run.dir, k ? "/checkpoints" : "");
        struct stat st;
        if (stat(dir, &st) != 0) continue; /* nothing there yet */
        int removed = 0;
        rc = io_clean_temps(dir, &removed);
        if (!rc && removed && r->log.out)
            fprintf(r->log.out, "strata: removed %d temporary file(s) of an interrupted write from %s\n",
                    removed, dir);
    }
    return rc;
}

/* A world size that cannot keep the checkpoint's global batch is refused later
 * (trainer__resume_batch). */
int trainer__resume_open(trainer__run *r, const char *resume, io_ckpt_reader **rd)
{
    trainer__position *pos = &r->ckpt.start;
    int rc = 0;
    memset(pos, 0, sizeof *pos);
    if (comm_rank(r->comm.c) == 0) {
        char path[1100];
        rc = clean_temps(r);
        if (!rc) rc = resume_path(r, resume, path, sizeof path);
        if (!rc && path[0]) rc = io_ckpt_open(rd, path);
        if (!rc && *rd) {
            const io_ckpt *info = io_ckpt_info(*rd);
            if (!info->train.has)
                rc = nn_err(NN_ESTATE, "%s holds weights only (no training state): start from it with model.init_from instead of --resume", path);
            else {
                pos->t = info->train;
                pos->t.rng = NULL; /* rank 0's reader's; the states are sent in restore */
                pos->world = info->world_size;
                rc = check_position(r, &pos->t, path);
            }
        }
    }
    rc = comm_agree(r->comm.c, rc, NULL);
    if (!rc) rc = comm_bcast_bytes(r->comm.c, pos, sizeof *pos, 0);
    return rc;
}

/* The same global batch on any number of ranks: it sets the data order and the step count. */
int trainer__resume_batch(trainer__run *r, io_config *cfg)
{
    const trainer__position *start = &r->ckpt.start;
    const int world = comm_size(r->comm.c), A = cfg->train.accumulate, per = world * A;
    if (!start->t.has || start->t.global_batch == cfg->data.batch_size * per) return 0;
    if (start->t.global_batch % per)
        return nn_err(NN_ERANGE, "cannot resume a run of global batch %d (%d rank(s) in the checkpoint) on %d rank(s) with train.accumulate %d: %d is not a multiple of %d",
                      start->t.global_batch, start->world, world, A, start->t.global_batch, per);
    if (r->log.out)
        fprintf(r->log.out, "strata: resuming a run of %d rank(s) on %d: data.batch_size %d -> %d per rank, keeping the global batch %d\n",
                start->world, world, cfg->data.batch_size, start->t.global_batch / per,
                start->t.global_batch);
    cfg->data.batch_size = start->t.global_batch / per;
    return 0;
}

/* The checkpoint's group table against the model's: 1 if the partitions are the same, 0 if
 * not and regroup allows it, else an error listing both. */
static int same_groups(const io_ckpt *info, const nn_model *m, const char *path, int regroup)
{
    const int G = m->ngroups;
    int same = info->ngroups == G;
    for (int g = 0; g < G && same; g++)
        same = info->groups[g].first == m->groups[g].first &&
               info->groups[g].last == m->groups[g].last;
    if (same || regroup) return same;
    char a[512], b[512];
    int o = 0, o2 = 0;
    for (int g = 0; g < info->ngroups && o < 400; g++)
        o += snprintf(a + o, sizeof a - o, "%s%d-%d", g ? ", " : "", info->groups[g].first, info->groups[g].last);
    for (int g = 0; g < G && o2 < 400; g++)
        o2 += snprintf(b + o2, sizeof b - o2, "%s%d-%d", g ? ", " : "", m->groups[g].first, m->groups[g].last);
    return nn_err(NN_ESTATE, "%s: the group partition differs from the config: %d groups with body children %s in the checkpoint, %d groups with %s in the config (head -1--1); pass --regroup to load it into the config's groups",
                  path, info->ngroups, a, G, b);
}

/* The optimizer's per-group step counts from the checkpoint. Regrouped, a new group takes the
 * largest step count of the old groups its parameters came from (AdamW's bias correction then
 * stays small for all of them). */
static void opt_steps(trainer_opt *opt, const nn_model *m, const io_ckpt *info, int same)
{
    for (int g = 0; g < m->ngroups; g++) {
        if (same) {
            opt->step[g] = info->opt_step[g];
            opt->step_bn[g] = info->opt_step_bn[g];
            continue;
        }
        long st = 0, stbn = 0;
        const nn_group *ng = &m->groups[g];
        for (int k = 0; k < info->ngroups; k++) {
            const io_ckpt_group *og = &info->groups[k];
            const int overlap = ng->is_head ? og->first < 0
                                            : og->first >= 0 && og->first <= ng->last &&
                                                  og->last >= ng->first;
            if (!overlap) continue;
            if (info->opt_step[k] > st) st = info->opt_step[k];
            if (info->opt_step_bn[k] > stbn) stbn = info->opt_step_bn[k];
        }
        opt->step[g] = st;
        opt->step_bn[g] = stbn;
    }
}

/* The checkpoint's per-group optimizer step counts: each within 0..its global step (a group
 * steps at most once per optimizer step), or NN_ESTATE naming the group and the value. */
static int check_opt_steps(const io_ckpt *info, const char *path)
{
    const long gs = info->train.global_step;
    for (int k = 0; k < info->ngroups; k++) {
        const long v[2] = {info->opt_step[k], info->opt_step_bn[k]};
        for (int b = 0; b < 2; b++)
            if (v[b] < 0 || v[b] > gs)
                return nn_err(NN_ESTATE, "%s: /optimizer/%s of group %d is %ld, outside 0..%ld (the checkpoint's global step): the optimizer state is inconsistent",
                              path, b ? "step_bn" : "step", k, v[b], gs);
    }
    return 0;
}

/* Rank 0, resuming: checks that the checkpoint fits the run (architecture, group partition
 * unless regroup, optimizer type) and loads weights, buffers, optimizer state and counters. */
static int ckpt_resume_load(trainer__run *r, io_ckpt_reader *rd, int regroup)
{
    const io_ckpt *info = io_ckpt_info(rd);
    const char *path = io_ckpt_path(rd);
    nn_model *m = r->model.m;
    trainer_opt *opt = &r->model.opt;
    if (strcmp(info->arch, m->arch))
        return nn_err(NN_ESTATE, "%s: the checkpoint holds a %s, the config asks for a %s", path,
                      info->arch, m->arch);
    const int same = same_groups(info, m, path, regroup);
    if (same < 0) return same;
    const char *want = trainer_opt_name(opt->type);
    if (strcmp(info->opt_type, want))
        return nn_err(NN_ESTATE, "%s: optimizer %s in the checkpoint, optimizer.type %s in the config",
                      path, info->opt_type[0] ? info->opt_type : "none", want);
    trainer_ckpt_counts cnt;
    int rc = check_opt_steps(info, path);
    if (!rc) rc = trainer_ckpt_load(m, opt, rd, 0, &cnt);
    if (rc) return rc;
    opt_steps(opt, m, info, !regroup || same);
    if (r->log.out)
        fprintf(r->log.out, "strata: resumed from %s: %d tensors (%zu values) with their %s state%s\n", path,
                cnt.loaded, cnt.loaded_values, info->opt_type, !same ? ", regrouped by parameter name" : "");
    return 0;
}

/* Rank 0: model.init_from, a pretrained body under a new head. */
static int ckpt_init_from(trainer__run *r, const char *path)
{
    io_ckpt_reader *rd = NULL;
    int rc = io_ckpt_open(&rd, path);
    trainer_ckpt_counts n = {0, 0, 0, 0};
    if (!rc) rc = trainer_ckpt_load(r->model.m, NULL, rd, 1, &n);
    if (rc)
        rc = nn_err_wrap(rc, "model.init_from");
    else if (r->log.out)
        fprintf(r->log.out, "strata: model.init_from %s (%s): loaded the body, %d tensors (%zu values) by name; new: the head, %d tensors (%zu values)\n",
                path, io_ckpt_info(rd)->arch, n.loaded, n.loaded_values, n.fresh, n.fresh_values);
    io_ckpt_close(rd);
    return rc;
}

/* Every rank: the optimizer state and step counters of rank 0. */
static int bcast_opt(trainer__model *mo, comm *c)
{
    const int ns = trainer_opt_nstates(&mo->opt);
    int rc = 0;
    for (int g = 0; g < mo->m->ngroups && !rc; g++) {
        for (int s = 0; s < ns && !rc; s++)
            rc = comm_bcast_f32(c, s == 0 ? mo->opt.state1[g] : mo->opt.state2[g],
                                mo->m->groups[g].numel, 0);
    }
    if (!rc) rc = comm_bcast_bytes(c, mo->opt.step, sizeof mo->opt.step, 0);
    if (!rc) rc = comm_bcast_bytes(c, mo->opt.step_bn, sizeof mo->opt.step_bn, 0);
    return rc;
}

/* Each rank's dropout RNG, when the world size is the same (otherwise every rank keeps the
 * stream seeded for it). */
static int bcast_rng(trainer__model *mo, comm *c, io_ckpt_reader *rd, int nrng)
{
    const int rank = comm_rank(c);
    uint64_t *rng = calloc((size_t)nrng * 4, sizeof(uint64_t));
    int rc = rng ? 0 : nn_err(NN_ENOMEM, "resume: out of memory");
    if (!rc && rank == 0) memcpy(rng, io_ckpt_info(rd)->train.rng, sizeof(uint64_t) * 4 * nrng);
    if (!rc) rc = comm_bcast_bytes(c, rng, sizeof(uint64_t) * 4 * nrng, 0);
    if (!rc && nrng == comm_size(c)) memcpy(mo->rng.s, rng + (size_t)rank * 4, sizeof mo->rng.s);
    free(rng);
    return rc;
}

/* Resumed checkpoint's state (or model.init_from's body) into the set-up run. */
int trainer__restore(trainer__run *r, io_ckpt_reader *rd, int regroup)
{
    comm *c = r->comm.c;
    const int rank = comm_rank(c);
    const trainer__position *start = &r->ckpt.start;
    int rc = 0;
    if (start->t.has) {
        if (rank == 0) rc = ckpt_resume_load(r, rd, regroup);
        rc = comm_agree(c, rc, NULL);
        if (!rc) rc = bcast_opt(&r->model, c);
        if (!rc) rc = bcast_rng(&r->model, c, rd, start->t.nrng);
        r->data.epoch = start->t.epoch;
        r->model.global_step = start->t.global_step;
    } else if (r->cfg->model.init_from[0]) {
        if (rank == 0) rc = ckpt_init_from(r, r->cfg->model.init_from);
        rc = comm_agree(c, rc, NULL);
    }
    return rc;
}

/* Rank 0: the checkpoint file of ck (rng: every rank's RNG state) at r->ckpt.at. */
static int ckpt_write(trainer__run *r, io_ckpt *ck, int64_t *rng)
{
    const io_config *cfg = r->cfg;
    const trainer__position *at = &r->ckpt.at;
    const int world = comm_size(r->comm.c);
    char *config = NULL, *metrics = NULL, dir[1100], path[1200], file[64];
    int rc = io_config_to_string(&config, cfg);
    if (!rc && r->log.metrics) {
        if (fflush(r->log.metrics))
            rc = nn_err(NN_EIO, "cannot write %s: %s", r->log.metrics_path, strerror(errno));
        if (!rc) rc = util_read_file(&metrics, NULL, r->log.metrics_path, 0);
        if (rc == NN_ENOTFOUND) rc = 0; /* removed under the run: the history is left out */
    }
    if (rc) goto out;
    ck->world_size = world;
    ck->config = config;
    ck->metrics = metrics;
    snprintf(ck->head, sizeof ck->head, "%s", cfg->model.head[0] ? cfg->model.head : "default");
    ck->small_stem = cfg->model.small_stem;
    for (int g = 0; g < r->model.m->ngroups; g++) {
        ck->groups[g].lr = r->phase.lr_max[g];
        ck->groups[g].wd = r->phase.wd[g];
        ck->groups[g].momentum = r->phase.mom_base[g];
    }
    ck->train = at->t;
    ck->train.has = 1;
    ck->train.seed = cfg->train.seed;
    ck->train.nrng = world;
    ck->train.rng = (uint64_t(*)[4])rng;
    snprintf(dir, sizeof dir, "%s/checkpoints", cfg->run.dir);
    snprintf(file, sizeof file, "ckpt-%09ld.h5", at->t.global_step);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    rc = util_mkdirs(dir);
    if (!rc) rc = io_ckpt_save_reuse(path, ck, &r->ckpt.mem);
    if (!rc) rc = io_ckpt_set_latest(dir, file);
    if (!rc) rc = io_ckpt_prune(dir, cfg->checkpoint.keep, NULL);
    if (!rc && r->log.out)
        fprintf(r->log.out, "strata: checkpoint %s (step %ld)\n", path, at->t.global_step);
out:
    free(config);
    free(metrics);
    return rc;
}

/* BatchNorm statistics are averaged and every rank's RNG state gathered first. The other
 * ranks wait for rank 0's write in comm_agree_after: COMM_ALONE_FACTOR times the collective
 * timeout for them. */
int trainer__ckpt_save(trainer__run *r)
{
    comm *c = r->comm.c;
    const int world = comm_size(c), rank = comm_rank(c);
    int rc = trainer__bn_average(r->model.m, c);
    int64_t *rng = rc ? NULL : calloc((size_t)world * 4, sizeof(int64_t));
    if (!rc && !rng) rc = nn_err(NN_ENOMEM, "checkpoint: out of memory");
    if (!rc) {
        memcpy(rng + (size_t)rank * 4, r->model.rng.s, sizeof r->model.rng.s);
        rc = comm_allreduce_i64(c, rng, (size_t)world * 4);
    }
    rc = comm_agree(c, rc, NULL);
    if (rc || rank != 0) {
        free(rng);
        return comm_agree_after(c, rc, NULL, 0);
    }
    io_ckpt ck;
    rc = trainer_ckpt_fill(&ck, r->model.m, &r->model.opt);
    if (rc == NN_ERANGE) rc = nn_err_wrap(rc, "checkpoint at step %ld", r->model.global_step);
    if (!rc) rc = ckpt_write(r, &ck, rng);
    trainer_ckpt_release(&ck);
    free(rng);
    return comm_agree_after(c, rc, NULL, 0);
}
