/* Losses: cross-entropy from logits and mean squared error, both averaged. */
#include "nn/nn_internal.h"

#include <math.h>

int nn_cross_entropy(float *loss, nn_tensor *dlogits, int *correct, const nn_tensor *logits,
                     const int32_t *labels)
{
    const int N = logits->n, K = logits->c * logits->h * logits->w;
    if (N <= 0 || K <= 0) return nn_err(NN_ESHAPE, "cross-entropy got an empty batch");
    for (int n = 0; n < N; n++)
        if (labels[n] < 0 || labels[n] >= K)
            return nn_err(NN_ERANGE, "cross-entropy: label %d of sample %d is outside [0, %d)",
                          labels[n], n, K);
    if (dlogits) {
        int rc = nn_tensor_resize(dlogits, N, K, 1, 1);
        if (rc) return rc;
    }
    double total = 0.0;
    int hits = 0;
    for (int n = 0; n < N; n++) {
        const float *z = logits->data + (size_t)n * K;
        float zmax = z[0];
        int arg = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > zmax) {
                zmax = z[k];
                arg = k;
            }
        hits += arg == labels[n];
        double sum = 0.0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - zmax);
        double lse = zmax + log(sum);
        total += lse - z[labels[n]];
        if (dlogits) {
            float *d = dlogits->data + (size_t)n * K;
            for (int k = 0; k < K; k++)
                d[k] = (float)((exp((double)z[k] - lse) - (k == labels[n])) / N);
        }
    }
    *loss = (float)(total / N);
    if (correct) *correct = hits;
    return 0;
}

int nn_mse(float *loss, nn_tensor *dpred, const nn_tensor *pred, const float *target)
{
    size_t n = nn_tensor_numel(pred);
    if (n == 0) return nn_err(NN_ESHAPE, "mse got an empty tensor");
    if (dpred) {
        int rc = nn_tensor_resize(dpred, pred->n, pred->c, pred->h, pred->w);
        if (rc) return rc;
    }
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred->data[i] - target[i];
        total += d * d;
        if (dpred) dpred->data[i] = (float)(2.0 * d / (double)n);
    }
    *loss = (float)(total / (double)n);
    return 0;
}
