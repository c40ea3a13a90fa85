/*
 * Internal declarations shared by every folder: allocation, the per-batch
 * arena, schemas, the configuration-node tree, records and batches, and the
 * operator vtable. Internal non-static names are eddy__*.
 */
#ifndef EDDY_INT_H
#define EDDY_INT_H

#include "eddy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EDDY_HIDDEN __attribute__((visibility("hidden")))

#define eddy_likely(x) __builtin_expect(!!(x), 1)
#define eddy_unlikely(x) __builtin_expect(!!(x), 0)

/** Invariant check: active in every build; a broken invariant is a bug in
 *  eddy, never a reaction to bad input. */
#define eddy_assert(cond)                                                                \
    do {                                                                                 \
        if (eddy_unlikely(!(cond)))                                                      \
            eddy__assert_fail(#cond, __FILE__, __LINE__);                                \
    } while (0)
void eddy__assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

/* ---------------------------------------------------------------- memory */

void *eddy_realloc(void *ptr, size_t size);
void *eddy_calloc(size_t n, size_t size);
char *eddy_strdup(const char *s);
char *eddy_strndup(const char *s, size_t n);
/** printf into a newly allocated string. */
char *eddy_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** snprintf into errstr (NULL-safe). */
void eddy__seterr(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * Bump allocator for per-batch memory: strings and rows made while a batch
 * moves through the graph. Reset (not freed) after the batch, so steady
 * state allocates nothing. Chunks grow; a reset keeps the first chunk.
 */
typedef struct eddy_arena_chunk_s {
    struct eddy_arena_chunk_s *next;
    size_t size, used;
    char data[];
} eddy_arena_chunk_t;

typedef struct eddy_arena_s {
    eddy_arena_chunk_t *head; /* current chunk */
    size_t chunk_size;
    size_t total_bytes;       /* all chunks, for metrics */
} eddy_arena_t;

void eddy_arena_init(eddy_arena_t *a, size_t chunk_size);
void *eddy__arena_alloc_slow(eddy_arena_t *a, size_t n);
void eddy_arena_reset(eddy_arena_t *a);
void eddy_arena_free(eddy_arena_t *a);

/** Allocate n bytes, 8-byte aligned. Never NULL (aborts only when the
 *  process is out of memory, as RocksDB and librdkafka do). */
static inline void *eddy_arena_alloc(eddy_arena_t *a, size_t n) {
    n = (n + 7) & ~(size_t)7;
    eddy_arena_chunk_t *c = a->head;
    if (eddy_likely(c && c->used + n <= c->size)) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    return eddy__arena_alloc_slow(a, n);
}

static inline char *eddy_arena_strndup(eddy_arena_t *a, const char *s, size_t n) {
    char *p = eddy_arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/** Growable byte buffer. */
typedef struct eddy_buf_s {
    char *p;
    size_t len, cap;
} eddy_buf_t;

void eddy_buf_reserve(eddy_buf_t *b, size_t extra);
static inline void eddy_buf_put(eddy_buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap)
        eddy_buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static inline void eddy_buf_putc(eddy_buf_t *b, char c) {
    if (b->len + 1 > b->cap)
        eddy_buf_reserve(b, 1);
    b->p[b->len++] = c;
}
void eddy_buf_printf(eddy_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void eddy_buf_free(eddy_buf_t *b);

/* ---------------------------------------------------------------- schema */

typedef struct eddy_field_s {
    char *name;
    eddy_type_t type;
    bool pii;      /* sensitive: masked in query answers */
    bool nullable; /* may be null/missing in decoded input */
} eddy_field_t;

struct eddy_schema_s {
    int nfields;
    eddy_field_t *fields;
    int refcnt;
};

eddy_schema_t *eddy__schema_new_empty(void);
/** Append a field; returns its index, or -1 if the name exists. */
int eddy__schema_add(eddy_schema_t *s, const char *name, eddy_type_t type);
eddy_schema_t *eddy__schema_ref(const eddy_schema_t *s);
void eddy__schema_unref(eddy_schema_t *s);
/** Parse "int", "long", "string", ... ; returns -1 if unknown. */
int eddy__type_parse(const char *name);

/* -------------------------------------------------- configuration nodes */

typedef enum {
    EDDY_CNODE_SCALAR = 1,
    EDDY_CNODE_MAP = 2,
    EDDY_CNODE_SEQ = 3
} eddy_cnode_kind_t;

/**
 * One node of a topology tree. Positions are 1-based; line 0 means the
 * node was built through the C API. Map entries keep file order.
 */
struct eddy_cnode_s {
    eddy_cnode_kind_t kind;
    const char *file;     /* interned per tree; never freed separately */
    int line, col;
    char *scalar;         /* SCALAR: NUL-terminated text */
    bool quoted;          /* SCALAR: was quoted in YAML */
    /* MAP: keys[i] -> items[i]; SEQ: items[i] */
    int n, cap;
    char **keys;
    eddy_cnode_t **items;
    eddy_cnode_t **key_nodes;  /* MAP: the key scalars, for positions */
    void *opaque;          /* API: callback sink function etc. */
    void *opaque2;
};

eddy_cnode_t *eddy__cnode_new(eddy_cnode_kind_t kind, const char *file, int line, int col);
void eddy__cnode_free(eddy_cnode_t *n);
/** map lookup; NULL if absent or n is not a map. */
eddy_cnode_t *eddy__cnode_get(const eddy_cnode_t *n, const char *key);
/** Add to a map without checking for duplicates (loader checks). */
void eddy__cnode_map_add(eddy_cnode_t *map, eddy_cnode_t *key, eddy_cnode_t *val);
void eddy__cnode_seq_add(eddy_cnode_t *seq, eddy_cnode_t *val);
/** "file:line:col" prefix of a node for messages ("<api>" when built in C). */
int eddy__cnode_where(const eddy_cnode_t *n, char *buf, size_t size);
/** Write "FILE:LINE:COL: message" into errstr; returns EDDY_ERR_CONFIG. */
eddy_err_t eddy__cnode_err(const eddy_cnode_t *n, char *errstr, size_t errstr_size,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/** Same, with a column offset inside a scalar (expression errors). */
eddy_err_t eddy__cnode_err_at(const eddy_cnode_t *n, int col_offset, char *errstr,
                              size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ------------------------------------------------------- records, batches */

/** A record inside the engine. Values live in the batch arena or in
 *  memory owned by whoever produced the batch; treat as read-only. */
typedef struct eddy_rec_s {
    eddy_value_t *vals;
    const char *key;
    uint32_t key_len;
    int32_t partition;
    int64_t ts_ms;
    int64_t offset;
} eddy_rec_t;

/** A batch of records of one schema. Operators never modify their input
 *  batch: they write an output batch. */
typedef struct eddy_batch_s {
    const eddy_schema_t *schema;
    eddy_rec_t *recs;
    uint32_t n, cap;
    eddy_arena_t *arena;    /* where values of emitted records go */
} eddy_batch_t;

void eddy_batch_init(eddy_batch_t *b, const eddy_schema_t *schema, uint32_t cap,
                     eddy_arena_t *arena);
void eddy_batch_free(eddy_batch_t *b);
void eddy__batch_grow(eddy_batch_t *b);
/** Append a slot (uninitialised) and return it. */
static inline eddy_rec_t *eddy_batch_push(eddy_batch_t *b) {
    if (eddy_unlikely(b->n == b->cap))
        eddy__batch_grow(b);
    return &b->recs[b->n++];
}

/* ---------------------------------------------------------------- misc */

/** Monotonic clock in ns / wall clock in ms. */
int64_t eddy__now_ns(void);
/** Bytes malloc has handed out and not taken back, whole process
 *  (engine/memory.c); malloc_trim(0) gives free pages back. */
int64_t eddy__mem_heap_bytes(void);
/** The same, and the CPU time the look took this thread (*cost_ns). */
int64_t eddy__mem_heap_bytes_cost(int64_t *cost_ns);
/** CPU time of the whole process, ns. */
int64_t eddy__process_cpu_ns(void);
/** malloc_trim(0): free pages of every arena back to the system; returns
 *  the CPU time it took this thread, ns (a no-op under ASan). */
int64_t eddy__mem_trim(void);
/** A random non-zero 64-bit id (/dev/urandom, else time and pid). */
uint64_t eddy__random_id(void);
int64_t eddy__wall_ms(void);

/** Parse a duration: "250ms", "10s", "5m", "1h", "2d" or a bare number of
 *  ms. Returns 0 and sets *ms, or -1. */
/** @returns 0, -1 when s is not a duration, -2 when it is longer than
 *  EDDY_TIME_LIMIT_MS. */
int eddy__parse_duration_ms(const char *s, int64_t *ms);
/** Event times and configured durations stay within +-2^61 ms (about 73
 *  million years around 1970), so that a time plus or minus a few
 *  durations (window ends, grace, retention, join bounds) never overflows
 *  int64. A source record outside is dead-lettered; a longer duration in a
 *  config is an error. */
#define EDDY_TIME_LIMIT_MS (INT64_C(1) << 61)
/** Parse a size: "64MiB", "1GB", "512k", bare bytes. Returns 0 or -1. */
int eddy__parse_bytes(const char *s, int64_t *bytes);

/** 64-bit hash (for key routing); stable across runs and machines. */
uint64_t eddy__hash64(const void *data, size_t len);

#endif /* EDDY_INT_H */
