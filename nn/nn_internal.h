/* Internal helpers shared by the nn implementation files; not part of the public API. */
#ifndef STRATA_NN_INTERNAL_H
#define STRATA_NN_INTERNAL_H

#include "nn/nn.h"
#include "nn/nn_engine.h"

/* Allocates a zeroed layer struct of `size` bytes (which embeds nn_layer first) with room
 * for nparams parameters and nbufs buffers. Returns NULL when out of memory. */
nn_layer *nn__layer_alloc(size_t size, const nn_layer_ops *ops, int nparams, int nbufs);
/* Declares parameter i: its name, PyTorch shape (ndim <= 4) and PyTorch's default init. */
void nn__param_decl(nn_layer *l, int i, const char *name, int ndim, const int *shape,
                    int init_kind, float init_a);
/* Allocates buffer i with numel floats filled with `value`. */
int nn__buffer_decl(nn_layer *l, int i, const char *name, size_t numel, float value);
/* Fills a parameter (bound to memory) from its declared init. */
void nn__param_init(nn_param *p, nn_rng *rng);
/* 1 for ReLU layers. */
int nn__is_relu(const nn_layer *l);
/* Makes a ReLU pass its input through (forward a view of x, backward a view of dy): its
 * container has fused it into the BatchNorm before it. */
void nn__relu_set_fused(nn_layer *l, int fused);
/* 1 for BatchNorm1d/2d layers. */
int nn_layer_is_batchnorm(const nn_layer *l);
/* Fuses (or unfuses) a ReLU into a BatchNorm's output (a no-op for other layers). */
void nn__bn_fuse_relu(nn_layer *l, int on);
/* Attaches children (ownership passes) to a container. */
int nn__layer_set_kids(nn_layer *l, nn_layer **kids, int n);
/* 1 when the subtree has a trainable parameter. */
int nn__subtree_trainable(const nn_layer *l);
/* Makes `view` alias `src`'s data with the given shape (no ownership). */
static inline void nn__tensor_view(nn_tensor *view, const nn_tensor *src, int n, int c, int h,
                                   int w)
{
    view->data = src->data;
    view->n = n;
    view->c = c;
    view->h = h;
    view->w = w;
    view->cap = 0;
    view->blk = src->blk;
}
/* Resizes a layer's output y to (n, out_shape). */
int nn__layer_resize_y(nn_layer *l, int n);
/* Resizes a layer's input gradient dx to (n, in_shape). */
int nn__layer_resize_dx(nn_layer *l, int n);

/* Zoo (nn_zoo.c): the architecture's children (room for 96) and its defaults. */
int nn__zoo_children(nn_layer **kids, int *nkids, int *default_cut, int *nsplit, int *split,
                     int *default_head, const nn_model_spec *s);
/* Zoo: a head of the given kind for a body whose output is body_out (C, H, W). */
int nn__zoo_head(nn_layer **kids, int *nkids, int kind, const int body_out[3],
                 const nn_model_spec *s);

#endif
