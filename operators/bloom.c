/* Blocked Bloom filters: see bloom.h. */
#include "bloom.h"

#include "eddy_int.h"

#include <math.h>
#include <string.h>

#define BB EDDY_BLOOM_BLOCK_BITS

/* Expected rate: keys per block ~ Poisson(n / nblocks); in a block with
 * j keys of k independent positions each a bit is set with probability
 * 1 - (1 - 1/B)^(jk), and a query's k positions are all set with about
 * that to the k. */
double eddy__bloom_fp(uint64_t nblocks, int k, uint64_t n) {
    if (!nblocks)
        return 1.0;
    double lambda = (double)n / (double)nblocks, fp = 0;
    uint64_t hi = (uint64_t)(lambda + 12 * sqrt(lambda) + 40);
    for (uint64_t j = 0; j <= hi; j++) {
        double lp = -lambda + (j ? (double)j * log(lambda) : 0) - lgamma((double)j + 1);
        double fill = 1 - pow(1 - 1.0 / BB, (double)j * k);
        fp += exp(lp) * pow(fill, k);
    }
    return fp;
}

static int best_k(uint64_t nblocks, uint64_t n, double *fp) {
    int best = 1;
    *fp = 2;
    for (int k = 1; k <= 32; k++) {
        double f = eddy__bloom_fp(nblocks, k, n);
        if (f < *fp) {
            *fp = f;
            best = k;
        }
    }
    return best;
}

bool eddy__bloom_size(uint64_t n, double fp, uint64_t max_bytes, eddy_bloom_size_t *out) {
    if (n < 1)
        n = 1;
    /* start at the classic size, which is always too small for blocks */
    double bits = (double)n * -log(fp) / (M_LN2 * M_LN2);
    uint64_t nb = (uint64_t)(bits / BB) + 1;
    for (;;) {
        if (nb * (BB / 8) > max_bytes || nb > UINT64_MAX / 2)
            return false;
        double f;
        int k = best_k(nb, n, &f);
        if (f * 1.1 <= fp) {
            *out = (eddy_bloom_size_t){.nblocks = nb, .k = k, .fp = f};
            return true;
        }
        nb += nb / 50 + 1;
    }
}

void eddy__bloom_init(eddy_bloom_t *f, const eddy_bloom_size_t *sz) {
    f->sz = *sz;
    f->n = 0;
    /* a block is one cache line: align them */
    f->mem = eddy_calloc(sz->nblocks + 1, BB / 8);
    f->bits = (uint64_t *)(((uintptr_t)f->mem + 63) & ~(uintptr_t)63);
}

void eddy__bloom_free(eddy_bloom_t *f) {
    eddy_free(f->mem);
    f->mem = NULL;
    f->bits = NULL;
}

static const uint64_t *block_of(const eddy_bloom_t *f, uint64_t h) {
    return f->bits + (uint64_t)(((unsigned __int128)h * f->sz.nblocks) >> 64) * (BB / 64);
}

/* In-block positions from the other half of a second mix of h. */
static uint64_t inner(uint64_t h) {
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ULL;
    h ^= h >> 27;
    h *= 0x81dadef4bc2dd44dULL;
    return h ^ (h >> 33);
}

/* The k positions of a key in its block: 9 bits each from a stream of
 * mixes of h (independent of the high bits that chose the block). */
static void positions(uint64_t h, int k, unsigned *pos) {
    uint64_t g = inner(h);
    for (int i = 0, u = 0; i < k; i++, u++) {
        if (u == 7) {
            g = inner(g + 0x9E3779B97F4A7C15ULL);
            u = 0;
        }
        pos[i] = (unsigned)(g >> (9 * u)) & (BB - 1);
    }
}

void eddy__bloom_add(eddy_bloom_t *f, uint64_t h) {
    uint64_t *b = (uint64_t *)block_of(f, h);
    unsigned pos[32];
    positions(h, f->sz.k, pos);
    for (int i = 0; i < f->sz.k; i++)
        b[pos[i] >> 6] |= 1ULL << (pos[i] & 63);
    f->n++;
}

bool eddy__bloom_has(const eddy_bloom_t *f, uint64_t h) {
    const uint64_t *b = block_of(f, h);
    unsigned pos[32];
    positions(h, f->sz.k, pos);
    for (int i = 0; i < f->sz.k; i++)
        if (!(b[pos[i] >> 6] & (1ULL << (pos[i] & 63))))
            return false;
    return true;
}

void eddy__bloom_prefetch(const eddy_bloom_t *f, uint64_t h) {
    __builtin_prefetch(block_of(f, h));
}
