/*
 * Small shared services: the swappable allocator, the batch arena, growable
 * buffers, schemas, error strings, clocks, hashing and unit parsing.
 */
#include "eddy_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static void *(*g_malloc)(size_t) = malloc;
static void *(*g_realloc)(void *, size_t) = realloc;
static void (*g_free)(void *) = free;

void eddy_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void (*free_fn)(void *)) {
    g_malloc = malloc_fn ? malloc_fn : malloc;
    g_realloc = realloc_fn ? realloc_fn : realloc;
    g_free = free_fn ? free_fn : free;
}

void eddy__assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "eddy: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}

static void oom(size_t n) {
    /* As librdkafka and RocksDB do: out of memory is not recoverable. */
    fprintf(stderr, "eddy: out of memory allocating %zu bytes\n", n);
    abort();
}

void *eddy_malloc(size_t size) {
    void *p = g_malloc(size ? size : 1);
    if (!p)
        oom(size);
    return p;
}
void *eddy_realloc(void *ptr, size_t size) {
    void *p = g_realloc(ptr, size ? size : 1);
    if (!p)
        oom(size);
    return p;
}
void *eddy_calloc(size_t n, size_t size) {
    void *p = eddy_malloc(n * size);
    memset(p, 0, n * size);
    return p;
}
void eddy_free(void *ptr) {
    if (ptr)
        g_free(ptr);
}
char *eddy_strdup(const char *s) { return eddy_strndup(s, strlen(s)); }
char *eddy_strndup(const char *s, size_t n) {
    char *p = eddy_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
char *eddy_asprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = eddy_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
void eddy__seterr(char *errstr, size_t errstr_size, const char *fmt, ...) {
    if (!errstr || !errstr_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}

const char *eddy_version(void) { return EDDY_VERSION_STR; }

const char *eddy_err2str(eddy_err_t err) {
    switch (err) {
    case EDDY_OK: return "success";
    case EDDY_ERR_INVAL: return "invalid argument";
    case EDDY_ERR_NOMEM: return "out of memory";
    case EDDY_ERR_IO: return "I/O error";
    case EDDY_ERR_CONFIG: return "configuration error";
    case EDDY_ERR_NOENT: return "not found";
    case EDDY_ERR_STATE: return "invalid state";
    case EDDY_ERR_DECODE: return "undecodable record";
    case EDDY_ERR_TYPE: return "type mismatch";
    case EDDY_ERR_EOF: return "end of input";
    case EDDY_ERR_TIMEOUT: return "timed out";
    case EDDY_ERR_UNSUPPORTED: return "not supported";
    case EDDY_ERR_FULL: return "queue full";
    case EDDY_ERR_TRANSIENT: return "transient Kafka failure";
    }
    return "unknown error";
}

const char *eddy_type2str(eddy_type_t type) {
    switch (type) {
    case EDDY_TYPE_NULL: return "null";
    case EDDY_TYPE_BOOL: return "boolean";
    case EDDY_TYPE_INT: return "int";
    case EDDY_TYPE_DOUBLE: return "double";
    case EDDY_TYPE_STRING: return "string";
    case EDDY_TYPE_BYTES: return "bytes";
    case EDDY_TYPE_TIMESTAMP: return "timestamp";
    }
    return "?";
}

int eddy__type_parse(const char *name) {
    static const struct { const char *n; eddy_type_t t; } tab[] = {
        {"null", EDDY_TYPE_NULL},     {"boolean", EDDY_TYPE_BOOL},
        {"bool", EDDY_TYPE_BOOL},     {"int", EDDY_TYPE_INT},
        {"long", EDDY_TYPE_INT},      {"float", EDDY_TYPE_DOUBLE},
        {"double", EDDY_TYPE_DOUBLE}, {"string", EDDY_TYPE_STRING},
        {"bytes", EDDY_TYPE_BYTES},   {"timestamp", EDDY_TYPE_TIMESTAMP},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (!strcmp(tab[i].n, name))
            return (int)tab[i].t;
    return -1;
}

/* ----------------------------------------------------------------- arena */

void eddy_arena_init(eddy_arena_t *a, size_t chunk_size) {
    a->head = NULL;
    a->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    a->total_bytes = 0;
}

void *eddy__arena_alloc_slow(eddy_arena_t *a, size_t n) {
    size_t sz = a->chunk_size;
    if (n > sz / 2)
        sz = n + a->chunk_size; /* big item: its own chunk */
    eddy_arena_chunk_t *c = eddy_malloc(sizeof(*c) + sz);
    c->size = sz;
    c->used = n;
    c->next = a->head;
    a->head = c;
    a->total_bytes += sz;
    return c->data;
}

void eddy_arena_reset(eddy_arena_t *a) {
    /* Keep one chunk (the first ever allocated is last in the list if it
     * was normal-sized; keep the current head when it is chunk-sized). */
    eddy_arena_chunk_t *keep = NULL, *c = a->head;
    while (c) {
        eddy_arena_chunk_t *next = c->next;
        if (!keep && c->size == a->chunk_size) {
            keep = c;
        } else {
            eddy_free(c);
        }
        c = next;
    }
    a->head = keep;
    a->total_bytes = keep ? keep->size : 0;
    if (keep) {
        keep->next = NULL;
        keep->used = 0;
    }
}

void eddy_arena_free(eddy_arena_t *a) {
    eddy_arena_chunk_t *c = a->head;
    while (c) {
        eddy_arena_chunk_t *next = c->next;
        eddy_free(c);
        c = next;
    }
    a->head = NULL;
    a->total_bytes = 0;
}

/* ------------------------------------------------------------------- buf */

void eddy_buf_reserve(eddy_buf_t *b, size_t extra) {
    size_t need = b->len + extra;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    b->p = eddy_realloc(b->p, cap);
    b->cap = cap;
}
void eddy_buf_printf(eddy_buf_t *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    eddy_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
void eddy_buf_free(eddy_buf_t *b) {
    eddy_free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- schema */

eddy_schema_t *eddy__schema_new_empty(void) {
    eddy_schema_t *s = eddy_calloc(1, sizeof(*s));
    s->refcnt = 1;
    return s;
}
int eddy__schema_add(eddy_schema_t *s, const char *name, eddy_type_t type) {
    if (eddy_schema_field_index(s, name) >= 0)
        return -1;
    s->fields = eddy_realloc(s->fields, sizeof(*s->fields) * (size_t)(s->nfields + 1));
    s->fields[s->nfields].name = eddy_strdup(name);
    s->fields[s->nfields].type = type;
    s->fields[s->nfields].pii = false;
    s->fields[s->nfields].nullable = false;
    return s->nfields++;
}
eddy_schema_t *eddy__schema_ref(const eddy_schema_t *cs) {
    eddy_schema_t *s = (eddy_schema_t *)cs;
    __atomic_add_fetch(&s->refcnt, 1, __ATOMIC_RELAXED);
    return s;
}
void eddy__schema_unref(eddy_schema_t *s) {
    if (!s || __atomic_sub_fetch(&s->refcnt, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    for (int i = 0; i < s->nfields; i++)
        eddy_free(s->fields[i].name);
    eddy_free(s->fields);
    eddy_free(s);
}
eddy_schema_t *eddy_schema_new(int nfields, const char *const *names, const eddy_type_t *types) {
    eddy_schema_t *s = eddy__schema_new_empty();
    for (int i = 0; i < nfields; i++) {
        if (eddy__schema_add(s, names[i], types[i]) < 0) {
            eddy__schema_unref(s);
            return NULL;
        }
    }
    return s;
}
void eddy_schema_destroy(eddy_schema_t *schema) { eddy__schema_unref(schema); }
int eddy_schema_nfields(const eddy_schema_t *s) { return s->nfields; }
const char *eddy_schema_field_name(const eddy_schema_t *s, int i) {
    return (i >= 0 && i < s->nfields) ? s->fields[i].name : NULL;
}
eddy_type_t eddy_schema_field_type(const eddy_schema_t *s, int i) {
    return (i >= 0 && i < s->nfields) ? s->fields[i].type : EDDY_TYPE_NULL;
}
int eddy_schema_field_index(const eddy_schema_t *s, const char *name) {
    for (int i = 0; i < s->nfields; i++)
        if (!strcmp(s->fields[i].name, name))
            return i;
    return -1;
}

/* ----------------------------------------------------------------- batch */

void eddy_batch_init(eddy_batch_t *b, const eddy_schema_t *schema, uint32_t cap,
                     eddy_arena_t *arena) {
    b->schema = schema;
    b->n = 0;
    b->cap = cap ? cap : 16;
    b->recs = eddy_malloc(sizeof(*b->recs) * b->cap);
    b->arena = arena;
}
void eddy_batch_free(eddy_batch_t *b) {
    eddy_free(b->recs);
    b->recs = NULL;
    b->n = b->cap = 0;
}
void eddy__batch_grow(eddy_batch_t *b) {
    b->cap = b->cap ? b->cap * 2 : 16;
    b->recs = eddy_realloc(b->recs, sizeof(*b->recs) * b->cap);
}

/* ----------------------------------------------------------------- clocks */

uint64_t eddy__random_id(void) {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
            v = 0;
        close(fd);
    }
    if (!v)
        v = (uint64_t)eddy__now_ns() ^ ((uint64_t)getpid() << 32);
    return v;
}

int64_t eddy__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
int64_t eddy__wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ hash */

/* 8 bytes at a time, multiply-xorshift mixed (in the spirit of wyhash /
 * murmur3's finaliser): stable across runs and machines, since key routing
 * (and so where state lives) depends on it. */
static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

uint64_t eddy__hash64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (len * 0xC2B2AE3D27D4EB4FULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x9E3779B97F4A7C15ULL;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < len; i++)
        w |= (uint64_t)p[i] << (8 * i);
    h ^= mix64(w ^ 0x2545F4914F6CDD1DULL);
    return mix64(h);
}

/* ----------------------------------------------------------------- units */

static int parse_num_unit(const char *s, double *num, const char **unit) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    while (*end == ' ')
        end++;
    *num = v;
    *unit = end;
    return 0;
}

int eddy__parse_duration_ms(const char *s, int64_t *ms) {
    double v;
    const char *u;
    if (parse_num_unit(s, &v, &u))
        return -1;
    double mul;
    if (!*u || !strcmp(u, "ms"))
        mul = 1;
    else if (!strcmp(u, "s"))
        mul = 1000;
    else if (!strcmp(u, "m") || !strcmp(u, "min"))
        mul = 60000;
    else if (!strcmp(u, "h"))
        mul = 3600000;
    else if (!strcmp(u, "d"))
        mul = 86400000;
    else
        return -1;
    double r = v * mul;
    if (r > (double)EDDY_TIME_LIMIT_MS)
        return -2;
    *ms = (int64_t)(r + 0.5);
    return 0;
}

int eddy__parse_bytes(const char *s, int64_t *bytes) {
    double v;
    const char *u;
    if (parse_num_unit(s, &v, &u))
        return -1;
    double mul;
    char lu[8] = {0};
    size_t n = strlen(u);
    if (n >= sizeof(lu))
        return -1;
    for (size_t i = 0; i < n; i++)
        lu[i] = (char)tolower((unsigned char)u[i]);
    if (!*lu || !strcmp(lu, "b"))
        mul = 1;
    else if (!strcmp(lu, "k") || !strcmp(lu, "kb") || !strcmp(lu, "kib"))
        mul = 1024.0;
    else if (!strcmp(lu, "m") || !strcmp(lu, "mb") || !strcmp(lu, "mib"))
        mul = 1024.0 * 1024;
    else if (!strcmp(lu, "g") || !strcmp(lu, "gb") || !strcmp(lu, "gib"))
        mul = 1024.0 * 1024 * 1024;
    else
        return -1;
    double r = v * mul;
    if (r > 9.2e18)
        return -1;
    *bytes = (int64_t)r;
    return 0;
}
