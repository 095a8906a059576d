/* Owned NCHW float32 buffers that grow on demand. */
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>

int nn_tensor_resize(nn_tensor *t, int n, int c, int h, int w)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return nn_err(NN_ERANGE, "tensor shape (%d, %d, %d, %d) has a non-positive size", n, c,
                      h, w);
    size_t numel = (size_t)n * c * h * w;
    if (t->cap == 0 && t->data != NULL)
        return nn_err(NN_ESTATE, "cannot resize a tensor view");
    if (numel > t->cap) {
        float *d = malloc(numel * sizeof(float));
        if (!d) return nn_err(NN_ENOMEM, "cannot allocate a (%d, %d, %d, %d) tensor", n, c, h, w);
        free(t->data);
        t->data = d;
        t->cap = numel;
    }
    t->n = n;
    t->c = c;
    t->h = h;
    t->w = w;
    return 0;
}

void nn_tensor_free(nn_tensor *t)
{
    if (t->cap) free(t->data);
    memset(t, 0, sizeof *t);
}
