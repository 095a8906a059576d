/* Winograd F(4x4, 3x3) convolutions of strata's own on the nChw8c layout (AVX2 and FMA), for
 * the cpu engine on machines where oneDNN 2.6 has no Winograd (it has one for AVX-512 only).
 * 3x3 kernels, stride 1, padding 0..2.
 *
 * The output is cut into 4x4 tiles. A tile's 6x6 input patch d and a 3x3 filter g go to the
 * Winograd domain, V = B^T d B and U = G g G^T, where the tile's output is
 * Y = A^T (sum over input channels of U . V) A: for each of the 36 points one GEMM over the
 * channels, 2.25 multiplications per output where a direct convolution does 9. Tiles go in
 * chunks sized to stay in cache: the chunk's patches are transformed (8 channels per vector,
 * as the layout holds them), the 36 GEMMs run on the sgemm the engine passes in, and the
 * results are transformed back.
 *
 * Backward data is this forward with each filter rotated 180 degrees, its in and out
 * channels swapped and padding 2 - pad. Backward weights follows from Y's linearity in U:
 * with dM = A dY A^T per tile, dg = G^T (sum over tiles of V . dM) G, i.e. 36 GEMMs V^T dM
 * accumulated over the chunks, then one transform per filter.
 *
 * The interpolation points are 0, 1, -1, 2, -2 and infinity; in float32 the results agree
 * with a direct convolution to about 1e-6 relative (tests/test_engine.c holds them to 1e-4
 * against the reference engine). */
#pragma GCC target("avx2,fma")

#include "nn/nn_internal.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

enum { WB = 8, NP = 36 };

/* Bytes a chunk's Winograd-domain data may take (both operands of the GEMMs). On the
 * bench's 3x3 layers (2 MB L2), 0.25-2 MB and 1-16 MB gave step times within the noise of
 * each other (2026-12-04); these are in the middle. The weight gradient's chunks are larger
 * because its GEMMs reduce over the tiles. */
#define WINO_CHUNK_BYTES_FWD (1u << 20)
#define WINO_CHUNK_BYTES_BWDW (4u << 20)

int nn__wino_supported(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int nn__wino_eligible(const nn_conv_desc *d)
{
    return d->k == 3 && d->stride == 1 && d->pad >= 0 && d->pad <= 2 && d->oh == d->h + 2 * d->pad - 2 &&
           d->ow == d->w + 2 * d->pad - 2;
}

/* One convolution as the tiles see it: input (n, ci, h, w), output (n, co, oh, ow). */
typedef struct {
    int n, ci, h, w, co, oh, ow, pad;
    int cib, cob;      /* channel blocks of 8 */
    int th, tw;        /* tiles per image, down and across */
    long tiles;
} wg_shape;

static wg_shape wg_make(int n, int ci, int h, int w, int co, int oh, int ow, int pad)
{
    wg_shape s = {n, ci, h, w, co, oh, ow, pad, (ci + WB - 1) / WB, (co + WB - 1) / WB,
                  (oh + 3) / 4, (ow + 3) / 4, 0};
    s.tiles = (long)n * s.th * s.tw;
    return s;
}

/* Tiles per chunk: as many as fit `bytes` of points for both channel widths, at least 8. */
static int wg_chunk(const wg_shape *s, size_t bytes)
{
    size_t per = (size_t)NP * WB * (s->cib + s->cob) * sizeof(float);
    long tc = (long)(bytes / per);
    if (tc < 8) tc = 8;
    return (int)(tc < s->tiles ? tc : s->tiles);
}

/* ---- the 1-D transforms, on vectors of 8 channels ----------------------------------------- */

#define V8 __m256
#define SET1 _mm256_set1_ps
#define ADD _mm256_add_ps
#define SUB _mm256_sub_ps
#define FMA _mm256_fmadd_ps   /* a * b + c */
#define FNMA _mm256_fnmadd_ps /* -(a * b) + c */

/* r = B^T a: the input transform of 6 values. */
static inline void wg_bt(const V8 a[6], V8 r[6])
{
    const V8 c4 = SET1(4.f), c5 = SET1(5.f), c2 = SET1(2.f);
    r[0] = FMA(c4, a[0], FNMA(c5, a[2], a[4]));
    r[1] = FNMA(c4, ADD(a[1], a[2]), ADD(a[3], a[4]));
    r[2] = FMA(c4, SUB(a[1], a[2]), SUB(a[4], a[3]));
    r[3] = FNMA(c2, SUB(a[1], a[3]), SUB(a[4], a[2]));
    r[4] = FMA(c2, SUB(a[1], a[3]), SUB(a[4], a[2]));
    r[5] = FMA(c4, a[1], FNMA(c5, a[3], a[5]));
}

/* r = A^T m: the output transform, 6 values to 4. */
static inline void wg_at(const V8 m[6], V8 r[4])
{
    const V8 s12 = ADD(m[1], m[2]), d12 = SUB(m[1], m[2]);
    const V8 s34 = ADD(m[3], m[4]), d34 = SUB(m[3], m[4]);
    r[0] = ADD(ADD(m[0], s12), s34);
    r[1] = FMA(SET1(2.f), d34, d12);
    r[2] = FMA(SET1(4.f), s34, s12);
    r[3] = ADD(FMA(SET1(8.f), d34, d12), m[5]);
}

/* r = A y: an output gradient's transform, 4 values to 6 (backward weights). */
static inline void wg_a(const V8 y[4], V8 r[6])
{
    const V8 e02 = ADD(y[0], y[2]), o13 = ADD(y[1], y[3]);
    const V8 e = FMA(SET1(4.f), y[2], y[0]), o = FMA(SET1(8.f), y[3], _mm256_mul_ps(SET1(2.f), y[1]));
    r[0] = y[0];
    r[1] = ADD(e02, o13);
    r[2] = SUB(e02, o13);
    r[3] = ADD(e, o);
    r[4] = SUB(e, o);
    r[5] = y[3];
}

/* r = G g: a filter's transform, 3 values to 6. */
static inline void wg_g(const V8 g[3], V8 r[6])
{
    const V8 s = ADD(g[0], g[2]), q = FMA(SET1(4.f), g[2], g[0]);
    r[0] = _mm256_mul_ps(SET1(0.25f), g[0]);
    r[1] = _mm256_mul_ps(SET1(-1.f / 6), ADD(s, g[1]));
    r[2] = _mm256_mul_ps(SET1(-1.f / 6), SUB(s, g[1]));
    r[3] = _mm256_mul_ps(SET1(1.f / 24), FMA(SET1(2.f), g[1], q));
    r[4] = _mm256_mul_ps(SET1(1.f / 24), FNMA(SET1(2.f), g[1], q));
    r[5] = g[2];
}

/* r = G^T u: a filter gradient's transform, 6 values to 3. */
static inline void wg_gt(const V8 u[6], V8 r[3])
{
    const V8 s12 = ADD(u[1], u[2]), d21 = SUB(u[2], u[1]);
    const V8 s34 = ADD(u[3], u[4]), d34 = SUB(u[3], u[4]);
    const V8 sixth = SET1(1.f / 6);
    r[0] = FMA(SET1(0.25f), u[0], FMA(SET1(1.f / 24), s34, _mm256_mul_ps(SET1(-1.f / 6), s12)));
    r[1] = FMA(sixth, d21, _mm256_mul_ps(SET1(1.f / 12), d34));
    r[2] = FMA(sixth, SUB(s34, s12), u[5]);
}

/* ---- tiles to and from the Winograd domain ----------------------------------------------- */

/* The vector of 8 channels of block cb at (y, x) of image i, or zeros outside the image. */
static inline V8 wg_at_px(const float *t, int cbs, int h, int w, int i, int cb, int y, int x)
{
    if (y < 0 || y >= h || x < 0 || x >= w) return _mm256_setzero_ps();
    return _mm256_loadu_ps(t + ((((size_t)i * cbs + cb) * h + y) * w + x) * WB);
}

static inline void wg_tile_pos(const wg_shape *s, long t, int *img, int *y, int *x)
{
    const long per = (long)s->th * s->tw;
    *img = (int)(t / per);
    const int r = (int)(t % per);
    *y = r / s->tw * 4;
    *x = r % s->tw * 4;
}

/* V[p][t][c] for the chunk's tiles t0 .. t0 + tc: B^T d B of each tile's input patch. */
static void wg_input(const wg_shape *s, const float *x, long t0, int tc, float *V)
{
    const size_t ld = (size_t)s->cib * WB, pstride = (size_t)tc * ld;
    for (int t = 0; t < tc; t++) {
        int img, oy, ox;
        wg_tile_pos(s, t0 + t, &img, &oy, &ox);
        const int y0 = oy - s->pad, x0 = ox - s->pad;
        for (int cb = 0; cb < s->cib; cb++) {
            V8 d[6][6], col[6], r[6];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) d[i][j] = wg_at_px(x, s->cib, s->h, s->w, img, cb, y0 + i, x0 + j);
            for (int j = 0; j < 6; j++) { /* columns: B^T d */
                for (int i = 0; i < 6; i++) col[i] = d[i][j];
                wg_bt(col, r);
                for (int i = 0; i < 6; i++) d[i][j] = r[i];
            }
            float *out = V + (size_t)t * ld + (size_t)cb * WB;
            for (int i = 0; i < 6; i++) { /* rows: (B^T d) B */
                wg_bt(d[i], r);
                for (int j = 0; j < 6; j++) _mm256_storeu_ps(out + (size_t)(i * 6 + j) * pstride, r[j]);
            }
        }
    }
}

/* y for the chunk's tiles from M[p][t][c]: A^T M A, plus the bias, only the pixels inside the
 * output. */
static void wg_output(const wg_shape *s, const float *M, long t0, int tc, const float *bias,
                      float *y)
{
    const size_t ld = (size_t)s->cob * WB, pstride = (size_t)tc * ld;
    for (int t = 0; t < tc; t++) {
        int img, oy, ox;
        wg_tile_pos(s, t0 + t, &img, &oy, &ox);
        const int nh = s->oh - oy < 4 ? s->oh - oy : 4, nw = s->ow - ox < 4 ? s->ow - ox : 4;
        for (int cb = 0; cb < s->cob; cb++) {
            const float *in = M + (size_t)t * ld + (size_t)cb * WB;
            V8 m[6][6], q[4][6], r[4];
            for (int p = 0; p < NP; p++) m[p / 6][p % 6] = _mm256_loadu_ps(in + (size_t)p * pstride);
            for (int i = 0; i < 6; i++) { /* rows: m A */
                wg_at(m[i], r);
                for (int j = 0; j < 4; j++) q[j][i] = r[j];
            }
            const V8 b = bias ? _mm256_loadu_ps(bias + (size_t)cb * WB) : _mm256_setzero_ps();
            for (int j = 0; j < nw; j++) { /* columns: A^T (m A) */
                wg_at(q[j], r);
                for (int i = 0; i < nh; i++)
                    _mm256_storeu_ps(y + ((((size_t)img * s->cob + cb) * s->oh + oy + i) * s->ow + ox + j) * WB,
                                     ADD(r[i], b));
            }
        }
    }
}

/* Z[p][t][c] for the chunk's tiles: A dY A^T of each tile's output gradient (zeros outside). */
static void wg_grad(const wg_shape *s, const float *dy, long t0, int tc, float *Z)
{
    const size_t ld = (size_t)s->cob * WB, pstride = (size_t)tc * ld;
    for (int t = 0; t < tc; t++) {
        int img, oy, ox;
        wg_tile_pos(s, t0 + t, &img, &oy, &ox);
        for (int cb = 0; cb < s->cob; cb++) {
            V8 g[4][4], q[6][4], col[4], r[6];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) g[i][j] = wg_at_px(dy, s->cob, s->oh, s->ow, img, cb, oy + i, ox + j);
            for (int j = 0; j < 4; j++) { /* columns: A dY */
                for (int i = 0; i < 4; i++) col[i] = g[i][j];
                wg_a(col, r);
                for (int i = 0; i < 6; i++) q[i][j] = r[i];
            }
            float *out = Z + (size_t)t * ld + (size_t)cb * WB;
            for (int i = 0; i < 6; i++) { /* rows: (A dY) A^T */
                wg_a(q[i], r);
                for (int j = 0; j < 6; j++) _mm256_storeu_ps(out + (size_t)(i * 6 + j) * pstride, r[j]);
            }
        }
    }
}

/* ---- filters ------------------------------------------------------------------------------ */

/* U[p][i][o] = (G g G^T)[p] for every filter g from input channel i < ni to output channel
 * o < no (zero for the padding channels up to whole blocks of 8). w is (cout, cin, 3, 3); for
 * the forward g(o, i) = w[o][i]; flipped (backward data: ni = cout, no = cin) g(o, i) is
 * w[i][o] rotated by 180 degrees. */
static void wg_filters(float *U, const float *w, int cin, int ni, int no, int flip)
{
    const int nob = (no + WB - 1) / WB;
    const size_t ld = (size_t)nob * WB, pstride = (size_t)ni * ld;
    for (int i = 0; i < ni; i++)
        for (int ob = 0; ob < nob; ob++) {
            float gk[9][WB] = {{0}};
            for (int l = 0; l < WB && ob * WB + l < no; l++) {
                const int o = ob * WB + l;
                const float *f = flip ? w + ((size_t)i * cin + o) * 9 : w + ((size_t)o * cin + i) * 9;
                for (int k = 0; k < 9; k++) gk[k][l] = flip ? f[8 - k] : f[k];
            }
            V8 g[3][3], q[6][3], col[3], r[6];
            for (int k = 0; k < 9; k++) g[k / 3][k % 3] = _mm256_loadu_ps(gk[k]);
            for (int j = 0; j < 3; j++) { /* columns: G g */
                for (int a = 0; a < 3; a++) col[a] = g[a][j];
                wg_g(col, r);
                for (int a = 0; a < 6; a++) q[a][j] = r[a];
            }
            float *out = U + (size_t)i * ld + (size_t)ob * WB;
            for (int a = 0; a < 6; a++) { /* rows: (G g) G^T */
                wg_g(q[a], r);
                for (int b = 0; b < 6; b++) _mm256_storeu_ps(out + (size_t)(a * 6 + b) * pstride, r[b]);
            }
        }
}

/* dw[o][i] += G^T dU[.][i][o] G for every filter (dU as wg_filters lays out U). */
static void wg_filter_grads(float *dw, const float *dU, int cin, int cout)
{
    const int cob = (cout + WB - 1) / WB;
    const size_t ld = (size_t)cob * WB, pstride = (size_t)cin * ld;
    for (int i = 0; i < cin; i++)
        for (int ob = 0; ob < cob; ob++) {
            const float *in = dU + (size_t)i * ld + (size_t)ob * WB;
            V8 u[6][6], q[3][6], r[3];
            for (int p = 0; p < NP; p++) u[p / 6][p % 6] = _mm256_loadu_ps(in + (size_t)p * pstride);
            for (int a = 0; a < 6; a++) { /* rows: u G */
                wg_gt(u[a], r);
                for (int k = 0; k < 3; k++) q[k][a] = r[k];
            }
            float gk[9][WB];
            for (int k = 0; k < 3; k++) { /* columns: G^T (u G) */
                wg_gt(q[k], r);
                for (int a = 0; a < 3; a++) _mm256_storeu_ps(gk[a * 3 + k], r[a]);
            }
            for (int l = 0; l < WB && ob * WB + l < cout; l++) {
                float *f = dw + ((size_t)(ob * WB + l) * cin + i) * 9;
                for (int k = 0; k < 9; k++) f[k] += gk[k][l];
            }
        }
}

/* ---- the kernels ----------------------------------------------------------------------------- */

/* y = conv(x) for shape s with the filters w (flip: backward data, see wg_filters), tile
 * chunk by chunk; one workspace holds U, a chunk's V and M, and the padded bias. */
static int wg_convolve(nn_engine *e, nn_gemm_fn gemm, const wg_shape *s, const float *w,
                       int cin, int flip, const float *bias, const float *x, float *y)
{
    const int TC = wg_chunk(s, WINO_CHUNK_BYTES_FWD);
    const size_t ldi = (size_t)s->cib * WB, ldo = (size_t)s->cob * WB;
    const size_t nu = (size_t)NP * s->ci * ldo, nv = (size_t)NP * TC * ldi;
    float *U = nn__workspace(e, nu + nv + (size_t)NP * TC * ldo + ldo);
    if (!U) return NN_ENOMEM;
    float *V = U + nu, *M = V + nv, *b = M + (size_t)NP * TC * ldo;
    wg_filters(U, w, cin, s->ci, s->co, flip);
    memset(b, 0, ldo * sizeof(float));
    if (bias) memcpy(b, bias, (size_t)s->co * sizeof(float));
    for (long t0 = 0; t0 < s->tiles; t0 += TC) {
        const int tc = (int)(s->tiles - t0 < TC ? s->tiles - t0 : TC);
        wg_input(s, x, t0, tc, V);
        for (int p = 0; p < NP; p++)
            gemm('N', 'N', tc, (int)ldo, s->ci, 1.f, V + (size_t)p * tc * ldi, (int)ldi,
                 U + (size_t)p * s->ci * ldo, (int)ldo, 0.f, M + (size_t)p * tc * ldo, (int)ldo);
        wg_output(s, M, t0, tc, bias ? b : NULL, y);
    }
    return 0;
}

int nn__wino_forward(nn_engine *e, nn_gemm_fn gemm, const nn_conv_desc *d, nn_tensor *y,
                     const nn_tensor *x, const float *w, const float *b)
{
    const wg_shape s = wg_make(d->n, d->cin, d->h, d->w, d->cout, d->oh, d->ow, d->pad);
    int rc = nn__tensor_ensure(y, d->n, d->cout, d->oh, d->ow, WB);
    return rc ? rc : wg_convolve(e, gemm, &s, w, d->cin, 0, b, x->data, y->data);
}

/* dw += dW(x, dy), db += sum(dy). */
static int wg_backward_weights(nn_engine *e, nn_gemm_fn gemm, const nn_conv_desc *d, float *dw,
                               float *db, const nn_tensor *dy, const nn_tensor *x)
{
    const wg_shape s = wg_make(d->n, d->cin, d->h, d->w, d->cout, d->oh, d->ow, d->pad);
    if (db) {
        for (int i = 0; i < d->n; i++)
            for (int cb = 0; cb < s.cob; cb++) {
                V8 acc = _mm256_setzero_ps();
                const float *p = dy->data + ((size_t)i * s.cob + cb) * d->oh * d->ow * WB;
                for (int q = 0; q < d->oh * d->ow; q++) acc = ADD(acc, _mm256_loadu_ps(p + (size_t)q * WB));
                float v[WB];
                _mm256_storeu_ps(v, acc);
                for (int l = 0; l < WB && cb * WB + l < d->cout; l++) db[cb * WB + l] += v[l];
            }
    }
    if (!dw) return 0;
    const int TC = wg_chunk(&s, WINO_CHUNK_BYTES_BWDW);
    const size_t ldi = (size_t)s.cib * WB, ldo = (size_t)s.cob * WB;
    const size_t nu = (size_t)NP * d->cin * ldo, nv = (size_t)NP * TC * ldi;
    float *dU = nn__workspace(e, nu + nv + (size_t)NP * TC * ldo);
    if (!dU) return NN_ENOMEM;
    float *V = dU + nu, *Z = V + nv;
    for (long t0 = 0; t0 < s.tiles; t0 += TC) {
        const int tc = (int)(s.tiles - t0 < TC ? s.tiles - t0 : TC);
        wg_input(&s, x->data, t0, tc, V);
        wg_grad(&s, dy->data, t0, tc, Z);
        for (int p = 0; p < NP; p++)
            gemm('T', 'N', d->cin, (int)ldo, tc, 1.f, V + (size_t)p * tc * ldi, (int)ldi,
                 Z + (size_t)p * tc * ldo, (int)ldo, t0 ? 1.f : 0.f, dU + (size_t)p * d->cin * ldo,
                 (int)ldo);
    }
    wg_filter_grads(dw, dU, d->cin, d->cout);
    return 0;
}

int nn__wino_backward(nn_engine *e, nn_gemm_fn gemm, const nn_conv_desc *d, nn_tensor *dx,
                      float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                      const float *w)
{
    int rc = wg_backward_weights(e, gemm, d, dw, db, dy, x);
    if (rc || !dx) return rc;
    /* dx = the forward of dy with the filters rotated and transposed, padding 2 - pad. */
    const wg_shape s = wg_make(d->n, d->cout, d->oh, d->ow, d->cin, d->h, d->w, 2 - d->pad);
    rc = nn__tensor_ensure(dx, d->n, d->cin, d->h, d->w, WB);
    return rc ? rc : wg_convolve(e, gemm, &s, w, d->cin, 1, NULL, dy->data, dx->data);
}
