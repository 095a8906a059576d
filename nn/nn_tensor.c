/* Owned float32 buffers that grow on demand, in plain NCHW or channel-blocked layout, and the
 * conversions between the two. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

static int layout_ok(int blk)
{
    return blk == 0 || blk == 1 || blk == 8 || blk == 16;
}

int nn_tensor_resize_blk(nn_tensor *t, int n, int c, int h, int w, int blk)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return nn_err(NN_ERANGE, "tensor shape (%d, %d, %d, %d) has a non-positive size", n, c,
                      h, w);
    if (!layout_ok(blk)) return nn_err(NN_EINVAL, "tensor layout block %d (use 1, 8 or 16)", blk);
    if (t->cap == 0 && t->data != NULL)
        return nn_err(NN_ESTATE, "cannot resize a tensor view");
    nn_tensor want = {NULL, n, c, h, w, 0, blk > 1 ? blk : 1};
    size_t need = nn_tensor_storage(&want);
    if (need > t->cap) {
        /* 64-byte alignment: what oneDNN's kernels and AVX-512 loads want. */
        size_t bytes = (need * sizeof(float) + 63) / 64 * 64;
        float *d = aligned_alloc(64, bytes);
        if (!d) return nn_err(NN_ENOMEM, "cannot allocate a (%d, %d, %d, %d) tensor", n, c, h, w);
        free(t->data);
        t->data = d;
        t->cap = need;
    }
    t->n = n;
    t->c = c;
    t->h = h;
    t->w = w;
    t->blk = want.blk;
    if (t->blk > 1 && c % t->blk) {
        /* The padding channels of the last block stay zero: kernels read whole blocks. */
        const size_t hw = (size_t)h * w, nb = ((size_t)c + blk - 1) / blk;
        const int used = c % blk;
        for (int s = 0; s < n; s++) {
            float *last = t->data + ((size_t)s * nb + nb - 1) * hw * blk;
            for (size_t i = 0; i < hw; i++)
                memset(last + i * blk + used, 0, sizeof(float) * (blk - used));
        }
    }
    return 0;
}

int nn_tensor_resize(nn_tensor *t, int n, int c, int h, int w)
{
    return nn_tensor_resize_blk(t, n, c, h, w, 1);
}

void nn_tensor_free(nn_tensor *t)
{
    if (t->cap) free(t->data);
    memset(t, 0, sizeof *t);
}

int nn__tensor_ensure(nn_tensor *t, int n, int c, int h, int w, int blk)
{
    if (t->cap == 0) memset(t, 0, sizeof *t); /* drop a view */
    return nn_tensor_resize_blk(t, n, c, h, w, blk);
}

/* One sample's (C, HW) plane set between plain and blocked layouts. */
static void to_blocked(float *restrict dst, const float *restrict src, int C, size_t hw, int blk)
{
    const int nb = (C + blk - 1) / blk;
    for (int b = 0; b < nb; b++) {
        float *db = dst + (size_t)b * hw * blk;
        const int c0 = b * blk, cn = C - c0 < blk ? C - c0 : blk;
        for (int j = 0; j < cn; j++) {
            const float *sc = src + (size_t)(c0 + j) * hw;
            for (size_t i = 0; i < hw; i++) db[i * blk + j] = sc[i];
        }
    }
}

static void to_plain(float *restrict dst, const float *restrict src, int C, size_t hw, int blk)
{
    const int nb = (C + blk - 1) / blk;
    for (int b = 0; b < nb; b++) {
        const float *sb = src + (size_t)b * hw * blk;
        const int c0 = b * blk, cn = C - c0 < blk ? C - c0 : blk;
        for (int j = 0; j < cn; j++) {
            float *dc = dst + (size_t)(c0 + j) * hw;
            for (size_t i = 0; i < hw; i++) dc[i] = sb[i * blk + j];
        }
    }
}

int nn_tensor_convert(nn_tensor *dst, const nn_tensor *src, int blk)
{
    const int sb = src->blk > 1 ? src->blk : 1, db = blk > 1 ? blk : 1;
    if (sb > 1 && db > 1 && sb != db)
        return nn_err(NN_EINVAL, "cannot convert between blocked layouts %d and %d", sb, db);
    int rc = nn__tensor_ensure(dst, src->n, src->c, src->h, src->w, db);
    if (rc) return rc;
    const size_t hw = (size_t)src->h * src->w, per = nn_tensor_storage(src) / src->n;
    if (sb == db) {
        memcpy(dst->data, src->data, sizeof(float) * nn_tensor_storage(src));
        return 0;
    }
    const size_t dper = nn_tensor_storage(dst) / dst->n;
    for (int s = 0; s < src->n; s++) {
        const float *in = src->data + (size_t)s * per;
        float *out = dst->data + (size_t)s * dper;
        if (db > 1)
            to_blocked(out, in, src->c, hw, db);
        else
            to_plain(out, in, src->c, hw, sb);
    }
    return 0;
}

int nn_tensor_to_nchw(nn_tensor *dst, const nn_tensor *src)
{
    return nn_tensor_convert(dst, src, 1);
}
