/*
 * In-memory index of an interval join side's buffered records
 * (operators/join.c).
 *
 * The records themselves are in the side's store (committed, changelogged,
 * restored); the index says which ones a key has and when, so that a
 * lookup is a hash probe plus point reads of the store's entries instead
 * of a store range scan (which opened a RocksDB iterator per record and
 * segment). Per join key: the records' (event time, sequence number, end)
 * sorted by event time, where `end` is the last time a partner of the
 * record can have (after it, no record can match it). The index is
 * rebuilt from the store when the task opens.
 *
 * Records whose end is behind the watermark are dropped by sweeps whose
 * cost is amortised over the records added since the previous one.
 */
#ifndef EDDY_JOIN_INDEX_H
#define EDDY_JOIN_INDEX_H

#include "eddy_int.h"

typedef struct {
    int64_t ts, seq, end;
} jix_ent_t;

typedef struct jix_key_s {
    struct jix_key_s *next; /* hash chain */
    uint64_t h;
    jix_ent_t *e; /* sorted by (ts, seq) */
    uint32_t n, cap;
    uint32_t klen;
    char key[];
} jix_key_t;

typedef struct {
    jix_key_t **b;
    size_t nb, nkeys;
    size_t nents;
    size_t added; /* since the last sweep */
    size_t kept;  /* alive after the last sweep */
} jix_t;

/** The key's records, or NULL. */
jix_key_t *eddy__jix_find(const jix_t *ix, const char *key, uint32_t klen);
/** Add a record (any time order). */
void eddy__jix_add(jix_t *ix, const char *key, uint32_t klen, int64_t ts, int64_t seq, int64_t end);
/** First position in k whose ts is >= ts. */
uint32_t eddy__jix_lower(const jix_key_t *k, int64_t ts);
/** Drop the records with end < below when enough were added since the last
 *  sweep to pay for visiting every record (or always, when force). */
void eddy__jix_sweep(jix_t *ix, int64_t below, bool force);
void eddy__jix_free(jix_t *ix);

#endif /* EDDY_JOIN_INDEX_H */
