/*
 * Blocked Bloom filters for the approximate dedup (operators/dedup.c).
 *
 * A key's k bits all lie in one 512-bit block (one cache line), chosen by
 * its hash; within the block the k positions are distinct (double hashing
 * with an odd step). So a lookup costs one memory read, which the caller
 * can prefetch. Blocks fill unevenly, so a blocked filter needs more bits
 * than a classic one for the same false-positive rate; eddy__bloom_size()
 * sizes it from the expected rate of this layout (keys per block are
 * Poisson), not from the classic formula.
 */
#ifndef EDDY_BLOOM_H
#define EDDY_BLOOM_H

#include <stdbool.h>
#include <stdint.h>

#define EDDY_BLOOM_BLOCK_BITS 512

typedef struct {
    uint64_t nblocks; /* 512-bit blocks */
    int k;            /* bits per key */
    double fp;        /* expected false-positive rate at the planned keys */
} eddy_bloom_size_t;

typedef struct {
    eddy_bloom_size_t sz;
    uint64_t *bits; /* nblocks * 8 words, 64-byte aligned, in mem */
    void *mem;
    uint64_t n;     /* keys added */
} eddy_bloom_t;

/** @brief The expected false-positive rate of a filter of nblocks blocks
 *         and k bits per key holding n keys. */
double eddy__bloom_fp(uint64_t nblocks, int k, uint64_t n);
/** @brief The smallest filter (and its best k) whose expected rate at n
 *         keys is at most fp (with a 10% margin); false when that needs
 *         more than max_bytes. */
bool eddy__bloom_size(uint64_t n, double fp, uint64_t max_bytes, eddy_bloom_size_t *out);
/** @brief Bytes of a filter of that size. */
static inline uint64_t eddy__bloom_bytes(const eddy_bloom_size_t *sz) {
    return sz->nblocks * (EDDY_BLOOM_BLOCK_BITS / 8);
}

void eddy__bloom_init(eddy_bloom_t *f, const eddy_bloom_size_t *sz);
void eddy__bloom_free(eddy_bloom_t *f);
/** @brief h: a 64-bit hash of the key (well mixed). */
void eddy__bloom_add(eddy_bloom_t *f, uint64_t h);
bool eddy__bloom_has(const eddy_bloom_t *f, uint64_t h);
/** @brief Start loading the block of h (eddy__bloom_has() soon after). */
void eddy__bloom_prefetch(const eddy_bloom_t *f, uint64_t h);

#endif /* EDDY_BLOOM_H */
