/* Validation over data.valid across all ranks (training's epochs, lr-find and `strata eval`),
 * and `strata eval` itself: data and model only, no optimizer, reducer or run.dir. */
#include "trainer/trainer_internal.h"

/* Validation loss and accuracy over all of data.valid, agreed on. */
int trainer__validate(const io_config *cfg, comm *c, trainer__data *d, trainer__model *mo,
                      double *loss, double *acc)
{
    const io_dataset *ds = &d->valid;
    const int world = comm_size(c), rank = comm_rank(c), B = cfg->data.batch_size;
    int rc = trainer__bn_average(mo->m, c);
    if (rc) return rc;
    nn_model_set_training(mo->m, 0);
    double sums[3] = {0, 0, 0}; /* loss * n, hits, n */
    int count = 0;
    for (int i = rank; i < ds->n; i += world) d->shard[count++] = i;
    for (int s = 0; s < count && !rc; s += B) {
        int cnt = count - s < B ? count - s : B;
        rc = trainer__load_batch(cfg, d, ds, d->shard + s, cnt, 0);
        const nn_tensor *logits;
        nn_ctx ctx = {&mo->rng};
        float l = 0.0f;
        int hits = 0;
        if (!rc) rc = nn_model_forward(&logits, mo->m, &d->x, &ctx);
        if (!rc) rc = nn_cross_entropy(&l, NULL, &hits, logits, d->labels);
        sums[0] += (double)l * cnt;
        sums[1] += hits;
        sums[2] += cnt;
    }
    nn_model_set_training(mo->m, 1);
    rc = comm_agree(c, rc, NULL);
    if (rc) return rc;
    rc = comm_allreduce_f64(c, sums, 3);
    if (rc) return rc;
    *loss = sums[0] / sums[2];
    *acc = sums[1] / sums[2];
    return 0;
}

/* `strata eval`: the weights' loss and accuracy on data.valid (trainer.h). */
int trainer_eval(const io_config *cfg, comm *c, const char *weights, FILE *out, double *loss,
                 double *acc)
{
    trainer__data d = {0};
    trainer__model mo = {0};
    out = comm_rank(c) == 0 ? out : NULL;
    char path[1100];
    if (!weights) {
        snprintf(path, sizeof path, "%s/weights.h5", cfg->run.dir);
        weights = path;
    }
    int rc = trainer__data_open(&d, cfg);
    if (!rc) rc = trainer__model_init(&mo, cfg, &d, comm_rank(c));
    if (!rc) rc = trainer__batches_init(&d, cfg, comm_size(c), 0);
    if (!rc && !d.has_valid) rc = nn_err(NN_EINVAL, "data.valid is empty: nothing to evaluate on");
    if (!rc) rc = trainer_weights_load(mo.m, weights);
    rc = comm_agree(c, rc, NULL);
    if (!rc) rc = trainer__check_replicas(c, cfg, mo.m, &d, weights);
    if (!rc) rc = trainer__validate(cfg, c, &d, &mo, loss, acc);
    if (!rc && out)
        fprintf(out, "strata: %s on %s (%d samples): loss %.4f accuracy %.4f\n", weights,
                cfg->data.valid, d.valid.n, *loss, *acc);
    trainer__model_free(&mo);
    trainer__data_free(&d);
    return rc;
}
