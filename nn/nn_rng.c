/* xoshiro256** (Blackman and Vigna's public-domain design), seeded through splitmix64. */
#include "nn/nn.h"

#include <math.h>

static uint64_t nn__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = nn__splitmix64(&x);
}

static inline uint64_t nn__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t nn_rng_next(nn_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = nn__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = nn__rotl(s[3], 45);
    return result;
}

double nn_rng_uniform(nn_rng *rng)
{
    return (double)(nn_rng_next(rng) >> 11) * 0x1.0p-53;
}

double nn_rng_normal(nn_rng *rng)
{
    double u1 = 1.0 - nn_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = nn_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

void nn_rng_fill_uniform(nn_rng *rng, float *x, size_t n, float lo, float hi)
{
    double span = (double)hi - (double)lo;
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + span * nn_rng_uniform(rng));
}

void nn_rng_fill_normal(nn_rng *rng, float *x, size_t n, float std)
{
    /* Box-Muller gives two independent normals per pair of uniforms; use both. */
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double u1 = 1.0 - nn_rng_uniform(rng), u2 = nn_rng_uniform(rng);
        double r = std * sqrt(-2.0 * log(u1)), t = 6.283185307179586476925 * u2;
        x[i] = (float)(r * cos(t));
        x[i + 1] = (float)(r * sin(t));
    }
    if (i < n) x[i] = (float)(std * nn_rng_normal(rng));
}
