/* A single-process training loop on Fashion-MNIST: shuffled mini-batches, cross-entropy,
 * SGD with momentum under a cosine-annealed learning rate, test accuracy after each epoch.
 * The quickstart's main job; multi-rank training and configs build on it later. */
#include "trainer/trainer.h"

#include "io/io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void trainer_fit_opts_default(trainer_fit_opts *o)
{
    memset(o, 0, sizeof *o);
    nn_model_spec_default(&o->spec);
    o->spec.arch = "cnn";
    o->epochs = 1;
    o->batch_size = 64;
    o->lr = 0.05f;
    o->momentum = 0.9f;
    o->wd = 5e-4f;
    o->seed = 1;
    o->log_every = 100;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Accuracy and mean loss of m over a whole dataset, in eval mode. */
static int evaluate(double *acc, double *loss, nn_model *m, const io_dataset *ds, int batch,
                    nn_tensor *x, int32_t *labels, int *idx)
{
    nn_model_set_training(m, 0);
    long hits = 0;
    double total = 0.0;
    nn_ctx ctx = {NULL};
    for (int s = 0; s < ds->n; s += batch) {
        int cnt = ds->n - s < batch ? ds->n - s : batch;
        for (int i = 0; i < cnt; i++) idx[i] = s + i;
        int rc = nn_tensor_resize(x, cnt, ds->c, ds->h, ds->w);
        if (rc) return rc;
        io_dataset_to_float(x->data, ds, idx, cnt, IO_FASHION_MNIST_MEAN, IO_FASHION_MNIST_STD);
        for (int i = 0; i < cnt; i++) labels[i] = ds->labels[s + i];
        const nn_tensor *logits;
        rc = nn_model_forward(&logits, m, x, &ctx);
        float l;
        int correct;
        if (!rc) rc = nn_cross_entropy(&l, NULL, &correct, logits, labels);
        if (rc) return rc;
        hits += correct;
        total += (double)l * cnt;
    }
    nn_model_set_training(m, 1);
    *acc = (double)hits / ds->n;
    *loss = total / ds->n;
    return 0;
}

int trainer_fit(const trainer_fit_opts *o, FILE *out, double *test_acc)
{
    io_dataset train = {0}, test = {0};
    nn_model *m = NULL;
    trainer_sgd opt = {0};
    nn_tensor x = {0}, dlogits = {0};
    int32_t *labels = NULL;
    int *perm = NULL, *idx = NULL;
    int rc;
    if (o->epochs <= 0) return nn_err(NN_ERANGE, "epochs %d must be positive", o->epochs);
    if (o->batch_size <= 0)
        return nn_err(NN_ERANGE, "batch size %d must be positive", o->batch_size);
    rc = io_fashion_mnist_load(&train, o->data_dir, 1);
    if (!rc) rc = io_fashion_mnist_load(&test, o->data_dir, 0);
    if (rc) goto done;
    if (o->batch_size > train.n) {
        rc = nn_err(NN_ERANGE, "batch size %d is larger than the %d training samples",
                    o->batch_size, train.n);
        goto done;
    }
    nn_model_spec spec = o->spec;
    spec.in_c = train.c;
    spec.in_h = train.h;
    spec.in_w = train.w;
    spec.classes = train.classes;
    nn_rng rng;
    nn_rng_seed(&rng, o->seed);
    rc = nn_model_init(&m, &spec, &rng);
    if (rc) goto done;
    if (o->freeze_to) {
        int warn = 0;
        rc = nn_model_freeze_to(m, o->freeze_to, &warn);
        if (rc) goto done;
        if (warn) fprintf(out, "warning: freeze_to %d has no effect: the model has one layer group\n",
                          o->freeze_to);
    }
    rc = trainer_sgd_init(&opt, m, o->lr, o->momentum, o->wd);
    if (rc) goto done;
    labels = malloc(sizeof(int32_t) * o->batch_size);
    perm = malloc(sizeof(int) * train.n);
    idx = malloc(sizeof(int) * o->batch_size);
    if (!labels || !perm || !idx) {
        rc = nn_err(NN_ENOMEM, "cannot allocate batch buffers");
        goto done;
    }
    fprintf(out, "strata: %s on Fashion-MNIST (%d train, %d test), %zu parameters in %d layer groups\n",
            m->arch, train.n, test.n, nn_model_numel(m), m->ngroups);
    fprintf(out, "strata: %d epoch(s), batch %d, SGD lr %g momentum %g wd %g, cosine schedule, seed %llu\n",
            o->epochs, o->batch_size, (double)o->lr, (double)o->momentum, (double)o->wd,
            (unsigned long long)o->seed);
    const int per_epoch = o->max_batches > 0 && o->max_batches < train.n / o->batch_size
                              ? o->max_batches
                              : train.n / o->batch_size;
    const long total_steps = (long)per_epoch * o->epochs;
    long step = 0;
    nn_ctx ctx = {&rng};
    double acc = 0.0;
    for (int epoch = 0; epoch < o->epochs; epoch++) {
        for (int i = 0; i < train.n; i++) perm[i] = i;
        for (int i = train.n - 1; i > 0; i--) { /* Fisher-Yates from the explicit RNG */
            int j = (int)(nn_rng_next(&rng) % (uint64_t)(i + 1));
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double t0 = now_s(), seen_loss = 0.0;
        long seen = 0, hits = 0;
        for (int b = 0; b < per_epoch; b++, step++) {
            const int B = o->batch_size;
            memcpy(idx, perm + (size_t)b * B, sizeof(int) * B);
            rc = nn_tensor_resize(&x, B, train.c, train.h, train.w);
            if (rc) goto done;
            io_dataset_to_float(x.data, &train, idx, B, IO_FASHION_MNIST_MEAN, IO_FASHION_MNIST_STD);
            for (int i = 0; i < B; i++) labels[i] = train.labels[idx[i]];
            const nn_tensor *logits;
            float loss;
            int correct;
            rc = nn_model_forward(&logits, m, &x, &ctx);
            if (!rc) rc = nn_cross_entropy(&loss, &dlogits, &correct, logits, labels);
            if (rc) goto done;
            nn_model_zero_grad(m);
            rc = nn_model_backward(m, &dlogits);
            if (rc) goto done;
            opt.lr = (float)(o->lr * 0.5 * (1.0 + cos(3.14159265358979 * step / total_steps)));
            trainer_sgd_step(&opt, m);
            seen += B;
            hits += correct;
            seen_loss += (double)loss * B;
            if (o->log_every > 0 && ((b + 1) % o->log_every == 0 || b + 1 == per_epoch)) {
                double dt = now_s() - t0;
                fprintf(out, "epoch %d/%d  batch %5d/%d  loss %.4f  acc %.4f  lr %.4g  %.0f samples/s\n",
                        epoch + 1, o->epochs, b + 1, per_epoch, seen_loss / seen,
                        (double)hits / seen, (double)opt.lr, seen / (dt > 0 ? dt : 1e-9));
                fflush(out);
            }
        }
        double tloss;
        rc = evaluate(&acc, &tloss, m, &test, o->batch_size, &x, labels, idx);
        if (rc) goto done;
        fprintf(out, "epoch %d/%d  train loss %.4f  test loss %.4f  test accuracy %.4f  (%.1f s)\n",
                epoch + 1, o->epochs, seen_loss / (seen ? seen : 1), tloss, acc, now_s() - t0);
        fflush(out);
    }
    if (test_acc) *test_acc = acc;
done:
    trainer_sgd_free(&opt);
    nn_model_free(m);
    io_dataset_free(&train);
    io_dataset_free(&test);
    nn_tensor_free(&x);
    nn_tensor_free(&dlogits);
    free(labels);
    free(perm);
    free(idx);
    return rc;
}
