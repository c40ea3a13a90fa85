/* Private to state/: the store struct, shared by store.c and tstate.c. */
#ifndef EDDY_STORE_INT_H
#define EDDY_STORE_INT_H

#include <stdatomic.h>

#include "changelog.h"
#include "rocks.h"
#include "store.h"

enum { CENT_CLEAN = 0, CENT_ABSENT = 1, CENT_PUT = 2, CENT_DEL = 3 };

#define SKIP_MAX 20

typedef struct cent_s {
    struct cent_s *hnext;
    char *val;            /* the inline room after the key, or its own buffer */
    uint32_t klen, vlen, vcap;
    uint8_t state;
    uint8_t level;
    uint8_t icap8;        /* inline room for the value after the key, in 8 bytes */
    uint8_t ref;          /* used since the trim's last pass (CLOCK) */
    struct cent_s *fwd[]; /* level pointers, then the key bytes, then the room */
} cent_t;

static inline char *cent_key(cent_t *e) { return (char *)(e->fwd + e->level); }

typedef struct {
    char *from, *to;
    size_t flen, tlen;
} drange_t;

struct eddy_store_s {
    const eddy_store_def_t *def;
    eddy_tstate_t *ts;
    eddy_rocks_t *db;
    int cf;
    uint16_t id;
    /* write cache */
    cent_t **buckets;
    size_t nbuckets, nentries;
    cent_t head; /* skip list head; its fwd follows */
    cent_t *head_fwd[SKIP_MAX];
    int level;
    uint64_t rng;
    size_t hand;       /* trim: the bucket its CLOCK pass resumes at */
    bool ordered;      /* skip list kept (time-ordered kinds); kv sorts at commit */
    cent_t *last;      /* entry of the last get/put: read-modify-write hits it */
    cent_t **dvec;     /* kv: the dirty entries, sorted at commit */
    size_t ndvec, dvcap;
    size_t bytes, dirty, limit_bytes;
    drange_t *ranges;  /* pending delete-ranges (retention) */
    int nranges;
    int64_t next_seq;  /* log store */
    int64_t expired_below_seg;
    eddy_buf_t getbuf; /* RocksDB read buffer */
    uint64_t hits, misses, restored;
    /* published at each commit for readers on other threads */
    _Atomic uint64_t pub_hits, pub_misses;
    /* freshness: the newest event time behind the last commit that changed
     * the store (pending until RocksDB has it, then published) */
    int64_t pend_newest_ms;
    _Atomic int64_t pub_newest_ms;
};

/** Write the dirty state of the store into batch + changelog (and the
 *  remote changelog rcl when not NULL, where a delete-range becomes a
 *  delete per key it covers), mark clean. */
eddy_err_t eddy__store_flush(eddy_store_t *st, eddy_rocks_batch_t *b, eddy_changelog_t *cl,
                             eddy_changelog_t *rcl, char *errstr, size_t errstr_size);
/** After a commit (no dirty entry): evict entries until the cache holds at
 *  most target bytes, those unused the longest first (CLOCK: an entry used
 *  since the last pass over it is spared once). */
void eddy__store_trim(eddy_store_t *st, size_t target);
void eddy__store_init(eddy_store_t *st, const eddy_store_def_t *def, eddy_tstate_t *ts,
                      eddy_rocks_t *db, int cf, uint16_t id, size_t limit_bytes);
void eddy__store_free(eddy_store_t *st);

#endif
