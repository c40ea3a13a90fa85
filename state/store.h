/*
 * Operator state stores (internal interface of state/).
 *
 * A store is a named piece of one task's state, kept in a RocksDB column
 * family of the task's database, fronted by a write cache and logged to the
 * task's changelog. Four kinds share the machinery; they differ only in how
 * the RocksDB key is laid out so that byte order is query order:
 *
 *   kv       [key]                                point get/put, prefix scan
 *   window   [segment][key][window start]         key + time range, retention
 *   session  [segment][key][end][start]           sessions of a key overlapping a time
 *   log      [segment][key][ts][seq]              append-only (CEP matches, audit)
 *
 * `key` is the order-preserving encoding of engine/key.c; integers are
 * 8-byte big-endian. Time-ordered kinds are split into segments of
 * `segment_ms` (a prefix), so retention drops whole segments with one
 * delete-range instead of visiting keys (as Kafka Streams' segmented
 * stores do).
 *
 * The write cache absorbs repeated updates of hot keys between commits:
 * reads see the task's own writes; at commit, dirty entries become one
 * RocksDB WriteBatch and one changelog group (state/tstate.c). Values are
 * opaque bytes to the store (operators encode rows with state/row.c).
 *
 * Thread: a store is used by its task's stream thread only. Queries from
 * other threads read RocksDB (committed state) through eddy_store_*.
 */
#ifndef EDDY_STORE_H
#define EDDY_STORE_H

#include "eddy_int.h"

typedef enum {
    EDDY_STORE_KV = 1,
    EDDY_STORE_WINDOW = 2,
    EDDY_STORE_SESSION = 3,
    EDDY_STORE_LOG = 4
} eddy_store_kind_t;

typedef struct eddy_store_s eddy_store_t;
typedef struct eddy_tstate_s eddy_tstate_t;

/** Static description of a store, made at compile time by its operator. */
typedef struct eddy_store_def_s {
    char *name;
    eddy_store_kind_t kind;
    int64_t retention_ms;   /* window/session/log: keep this long after end; 0 = forever */
    int64_t segment_ms;     /* time-ordered kinds: segment width */
    eddy_schema_t *key_schema;    /* for queries: key fields */
    eddy_schema_t *value_schema;  /* for queries: value fields (decoded by row.c) */
    bool queryable;
    bool range_reads;  /* the operator reads ranges on its hot path (sessions) */
    /* Value bytes -> row of value_schema, for queries; NULL = row.c format. */
    eddy_err_t (*decode_value)(const struct eddy_store_def_s *def, const char *v, size_t vlen,
                               eddy_arena_t *a, eddy_value_t *out);
    const void *owner;  /* operator-specific */
    int node;           /* plan node id of the owning operator (set by the compiler) */
    /* window kind holding session windows by (key, start), values with
     * window_end: queries select sessions by overlap */
    bool sessions;
} eddy_store_def_t;

/* ------------------------------------------------------------------ kv */

/** Point get. *val points into the cache entry of key: it stays where it
 *  is until that key is written or deleted, or the store commits or
 *  expires (lookups and writes of other keys never move it). */
eddy_err_t eddy__store_get(eddy_store_t *st, const void *key, size_t klen, const char **val,
                           size_t *vlen, bool *found);
eddy_err_t eddy__store_put(eddy_store_t *st, const void *key, size_t klen, const void *val,
                           size_t vlen);
eddy_err_t eddy__store_del(eddy_store_t *st, const void *key, size_t klen);

/* --------------------------------------------------- time-ordered kinds */

/** Build the physical key of a window/session/log entry into buf; returns
 *  its length. ts2 is the session start (session) or seq (log). */
size_t eddy__store_tkey(const eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                        int64_t ts2, char *buf, size_t cap);
/** Physical-key helpers shared with the query side. */
size_t eddy__tkey_build(eddy_store_kind_t kind, int64_t segment_ms, const void *key, size_t klen,
                        int64_t ts, int64_t ts2, char *buf, size_t cap);
/** Split a physical key back: logical key (pointer into pk), ts, ts2. */
bool eddy__tkey_parse(eddy_store_kind_t kind, const char *pk, size_t pklen, const char **key,
                      size_t *klen, int64_t *ts, int64_t *ts2);

/** Ordered iteration over physical keys [lo, hi) merging the cache (own
 *  writes) and RocksDB. Entries deleted in the cache are skipped. The key
 *  and value returned stay valid until the next call on the iterator (and
 *  no write to the store happens in between). */
typedef struct eddy_store_iter_s eddy_store_iter_t;
eddy_store_iter_t *eddy__store_iter(eddy_store_t *st, const void *lo, size_t lolen,
                                    const void *hi, size_t hilen);
bool eddy__store_iter_next(eddy_store_iter_t *it, const char **k, size_t *kl, const char **v,
                           size_t *vl);
eddy_err_t eddy__store_iter_destroy(eddy_store_iter_t *it);

/** Window store: all windows of key with start in [from, to]; cb per entry. */
typedef eddy_err_t (*eddy_store_visit_t)(void *opaque, int64_t ts, int64_t ts2, const char *v,
                                         size_t vlen);
eddy_err_t eddy__store_fetch(eddy_store_t *st, const void *key, size_t klen, int64_t from,
                             int64_t to, eddy_store_visit_t cb, void *opaque);
/** Session store: sessions of key with end >= from and start <= to. */
eddy_err_t eddy__store_find_sessions(eddy_store_t *st, const void *key, size_t klen, int64_t from,
                                     int64_t to, eddy_store_visit_t cb, void *opaque);
/** Time-ordered put/remove (window: ts = start; session: ts = end, ts2 =
 *  start; log: ts, ts2 = seq). */
eddy_err_t eddy__store_tput(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                            int64_t ts2, const void *val, size_t vlen);
eddy_err_t eddy__store_tdel(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                            int64_t ts2);
/** Append to a log store: seq is assigned (monotonic per task). */
eddy_err_t eddy__store_append(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                              const void *val, size_t vlen);
/** Retention: drop every segment that ends before now_ms - retention. */
eddy_err_t eddy__store_expire(eddy_store_t *st, int64_t now_ms);

/* -------------------------------------------------------------- metrics */

typedef struct eddy_store_metrics_s {
    uint64_t cache_hits, cache_misses;
    uint64_t cache_entries, cache_bytes, dirty_entries;
    uint64_t estimate_keys, size_bytes;
    uint64_t restored_records;
} eddy_store_metrics_t;
void eddy__store_metrics(eddy_store_t *st, eddy_store_metrics_t *m);
const eddy_store_def_t *eddy__store_def(const eddy_store_t *st);

#endif /* EDDY_STORE_H */
