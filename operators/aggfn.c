/*
 * Aggregate functions shared by aggregate and window steps. Each keeps its
 * accumulator in two values of the stored row, which encode with
 * state/row.c and merge (hopping-window panes, session merges) without
 * revisiting records:
 *
 *   count: n                 sum, avg: s, n        min, max: v, n
 *   first, last: v, ts of v  count_distinct: set   top, bottom: list
 *   user aggregates: the host's accumulator bytes
 *
 * The fixed-size ones live in the values themselves. count_distinct and
 * top/bottom keep a sorted list of encoded values in one BYTES value:
 *
 *   u32 n | u32 end[n] | element 0 | element 1 | ...      (little endian)
 *
 * element i spans data[end[i-1], end[i]) and is a type byte followed by
 * the value in an order-preserving form (numbers: 8 bytes big endian, sign
 * bit flipped; doubles with -0 folded into 0; strings: their bytes), so
 * that memcmp order is value order and equal values have equal bytes. A
 * count_distinct set is that list without duplicates (exact: every
 * distinct value is kept, nothing is hashed); merging is a sorted union.
 * top(x, n) keeps the n largest values with duplicates; merging keeps the
 * n largest of both. Adding costs a binary search and a rewrite of the
 * list into the aggregate's scratch buffer (the stored row is rewritten
 * anyway); the state a record can grow is capped at
 * EDDY_AGG_MAX_STATE_BYTES, and a record that would pass it is refused
 * (dead-lettered by the caller), never dropped silently.
 */
#include "aggfn.h"
#include "cfg.h"
#include "plan.h"
#include "topology.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static eddy_type_t t_int(eddy_type_t a) { (void)a; return EDDY_TYPE_INT; }
static eddy_type_t t_same(eddy_type_t a) { return a; }
static eddy_type_t t_double(eddy_type_t a) { (void)a; return EDDY_TYPE_DOUBLE; }
static eddy_type_t t_sum(eddy_type_t a) {
    return a == EDDY_TYPE_DOUBLE ? EDDY_TYPE_DOUBLE : EDDY_TYPE_INT;
}

static void inc_n(eddy_value_t *n) {
    n->type = EDDY_TYPE_INT;
    n->u.i++;
}

static eddy_err_t count_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                            int64_t ts) {
    (void)x;
    (void)ts;
    if (!v || v->type != EDDY_TYPE_NULL)
        inc_n(&acc[0]);
    return EDDY_OK;
}
static void count_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                      eddy_arena_t *a) {
    (void)p;
    (void)a;
    out->type = EDDY_TYPE_INT;
    out->u.i = acc[0].type == EDDY_TYPE_NULL ? 0 : acc[0].u.i;
}

static double num(const eddy_value_t *v) {
    return v->type == EDDY_TYPE_DOUBLE ? v->u.d : (double)v->u.i;
}

static eddy_err_t sum_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                          int64_t ts) {
    (void)x;
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[0].type == EDDY_TYPE_NULL) {
        acc[0].type = v->type == EDDY_TYPE_DOUBLE ? EDDY_TYPE_DOUBLE : EDDY_TYPE_INT;
        acc[0].u.i = 0;
        if (acc[0].type == EDDY_TYPE_DOUBLE)
            acc[0].u.d = 0;
    }
    if (acc[0].type == EDDY_TYPE_DOUBLE)
        acc[0].u.d += num(v);
    else
        acc[0].u.i = (int64_t)((uint64_t)acc[0].u.i + (uint64_t)v->u.i); /* wraps like Flink's */
    inc_n(&acc[1]);
    return EDDY_OK;
}
static void first_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                      eddy_arena_t *a) {
    (void)p;
    (void)a;
    *out = acc[0];
}

static int cmpv(const eddy_value_t *a, const eddy_value_t *b) {
    switch ((eddy_type_t)a->type) {
    case EDDY_TYPE_DOUBLE:
        return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES: {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->u.s, b->u.s, n);
        return c ? c : (a->len < b->len ? -1 : a->len > b->len);
    }
    default:
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    }
}
static eddy_err_t min_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                          int64_t ts) {
    (void)x;
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[0].type == EDDY_TYPE_NULL || cmpv(v, &acc[0]) < 0)
        acc[0] = *v;
    inc_n(&acc[1]);
    return EDDY_OK;
}
static eddy_err_t max_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                          int64_t ts) {
    (void)x;
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[0].type == EDDY_TYPE_NULL || cmpv(v, &acc[0]) > 0)
        acc[0] = *v;
    inc_n(&acc[1]);
    return EDDY_OK;
}
static eddy_err_t avg_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                          int64_t ts) {
    (void)x;
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[0].type == EDDY_TYPE_NULL) {
        acc[0].type = EDDY_TYPE_DOUBLE;
        acc[0].u.d = 0;
    }
    acc[0].u.d += num(v);
    inc_n(&acc[1]);
    return EDDY_OK;
}
static void avg_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                    eddy_arena_t *a) {
    (void)p;
    (void)a;

    if (acc[1].type == EDDY_TYPE_NULL || acc[1].u.i == 0) {
        out->type = EDDY_TYPE_NULL;
        return;
    }
    out->type = EDDY_TYPE_DOUBLE;
    out->u.d = acc[0].u.d / (double)acc[1].u.i;
}

/* merge b into a */
static void count_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else
        a[0].u.i += b[0].u.i;
}
static void add_n(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[1].type == EDDY_TYPE_NULL)
        return;
    if (a[1].type == EDDY_TYPE_NULL)
        a[1] = b[1];
    else
        a[1].u.i += b[1].u.i;
}
static void sum_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else if (a[0].type == EDDY_TYPE_DOUBLE)
        a[0].u.d += num(&b[0]);
    else
        a[0].u.i = (int64_t)((uint64_t)a[0].u.i + (uint64_t)b[0].u.i);
    add_n(a, b);
}
static void min_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[0].type != EDDY_TYPE_NULL && (a[0].type == EDDY_TYPE_NULL || cmpv(&b[0], &a[0]) < 0))
        a[0] = b[0];
    add_n(a, b);
}
static void max_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[0].type != EDDY_TYPE_NULL && (a[0].type == EDDY_TYPE_NULL || cmpv(&b[0], &a[0]) > 0))
        a[0] = b[0];
    add_n(a, b);
}
static void avg_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else
        a[0].u.d += b[0].u.d;
    add_n(a, b);
}

/* first/last by event time: (value, ts of that value); ties keep the
 * earlier-seen value for first and the later-seen for last. */
static eddy_err_t first_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                            int64_t ts) {
    (void)x;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[1].type == EDDY_TYPE_NULL || ts < acc[1].u.i) {
        acc[0] = *v;
        acc[1] = (eddy_value_t){.u.i = ts, .type = EDDY_TYPE_TIMESTAMP};
    }
    return EDDY_OK;
}
static eddy_err_t last_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                           int64_t ts) {
    (void)x;
    if (v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    if (acc[1].type == EDDY_TYPE_NULL || ts >= acc[1].u.i) {
        acc[0] = *v;
        acc[1] = (eddy_value_t){.u.i = ts, .type = EDDY_TYPE_TIMESTAMP};
    }
    return EDDY_OK;
}
static void first_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[1].type != EDDY_TYPE_NULL && (a[1].type == EDDY_TYPE_NULL || b[1].u.i < a[1].u.i)) {
        a[0] = b[0];
        a[1] = b[1];
    }
}
static void last_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    (void)x;
    if (b[1].type != EDDY_TYPE_NULL && (a[1].type == EDDY_TYPE_NULL || b[1].u.i >= a[1].u.i)) {
        a[0] = b[0];
        a[1] = b[1];
    }
}

/* ------------------------------------------------ sorted value lists */

/* A list value (layout at the top of the file) seen in place. */
typedef struct {
    uint32_t n;
    const char *ends; /* n little-endian u32 */
    const char *data;
    uint32_t dlen;
} list_t;

static uint32_t get32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void put32(char *p, uint32_t v) { memcpy(p, &v, 4); }

/* false when acc is not a well-formed list (state written by something
 * else): callers treat it as corrupt state, not as empty. */
static bool list_view(const eddy_value_t *acc, list_t *l) {
    memset(l, 0, sizeof(*l));
    if (acc->type == EDDY_TYPE_NULL)
        return true;
    if (acc->type != EDDY_TYPE_BYTES || acc->len < 4)
        return false;
    l->n = get32(acc->u.s);
    if (l->n > (acc->len - 4) / 4)
        return false;
    l->ends = acc->u.s + 4;
    l->data = l->ends + 4 * (size_t)l->n;
    l->dlen = (uint32_t)(acc->len - 4 - 4 * l->n);
    uint32_t prev = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        uint32_t e = get32(l->ends + 4 * (size_t)i);
        if (e < prev || e > l->dlen)
            return false;
        prev = e;
    }
    return prev == l->dlen;
}

static uint32_t elem_start(const list_t *l, uint32_t i) {
    return i ? get32(l->ends + 4 * (size_t)(i - 1)) : 0;
}
static const char *elem(const list_t *l, uint32_t i, uint32_t *len) {
    uint32_t s = elem_start(l, i);
    *len = get32(l->ends + 4 * (size_t)i) - s;
    return l->data + s;
}

static int ecmp(const char *a, uint32_t al, const char *b, uint32_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al < bl ? -1 : al > bl);
}

/* First index whose element is > e (upper) or >= e (!upper). */
static uint32_t list_bound(const list_t *l, const char *e, uint32_t el, bool upper) {
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, ml;
        const char *m = elem(l, mid, &ml);
        int c = ecmp(m, ml, e, el);
        if (c < 0 || (upper && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Writes a list of n elements into b (header first, then data). */
typedef struct {
    eddy_buf_t *b;
    uint32_t n, i, dlen;
} lwriter_t;

static void lw_begin(lwriter_t *w, eddy_buf_t *b, uint32_t n, size_t data_max) {
    w->b = b;
    w->n = n;
    w->i = 0;
    w->dlen = 0;
    b->len = 0;
    eddy_buf_reserve(b, 4 + 4 * (size_t)n + data_max);
    put32(b->p, n);
    b->len = 4 + 4 * (size_t)n;
}
static void lw_put(lwriter_t *w, const char *e, uint32_t el) {
    eddy_assert(w->i < w->n);
    memcpy(w->b->p + w->b->len, e, el);
    w->b->len += el;
    w->dlen += el;
    put32(w->b->p + 4 + 4 * (size_t)w->i++, w->dlen);
}

/* The order-preserving element of v (not NULL) into e; returns its length,
 * or 0 for strings and bytes, whose payload is v's own bytes after the
 * type byte e[0]. */
static uint32_t encode_elem(const eddy_value_t *v, char e[9]) {
    e[0] = (char)v->type;
    uint64_t u;
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_BOOL:
        e[1] = (char)(v->u.i ? 1 : 0);
        return 2;
    case EDDY_TYPE_DOUBLE: {
        double d = v->u.d == 0 ? 0.0 : v->u.d; /* -0 == 0 */
        if (isnan(d))
            d = NAN;
        memcpy(&u, &d, 8);
        u = (u >> 63) ? ~u : u ^ (1ull << 63);
        break;
    }
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        return 0;
    default: /* INT, TIMESTAMP */
        u = (uint64_t)v->u.i ^ (1ull << 63);
        break;
    }
    for (int i = 0; i < 8; i++)
        e[1 + i] = (char)(u >> (56 - 8 * i));
    return 9;
}

/* The element of v, in x's element buffer when it needs one. */
static const char *elem_of(eddy_aggctx_t *x, const eddy_value_t *v, uint32_t *el) {
    char small[9];
    uint32_t n = encode_elem(v, small);
    eddy_buf_t *b = &x->buf[2];
    b->len = 0;
    if (n) {
        eddy_buf_put(b, small, n);
    } else {
        eddy_buf_putc(b, small[0]);
        if (v->len) /* an empty string may have no pointer */
            eddy_buf_put(b, v->u.s, v->len);
    }
    *el = (uint32_t)b->len;
    return b->p;
}

static void decode_elem(const char *e, uint32_t el, eddy_value_t *v) {
    memset(v, 0, sizeof(*v));
    v->type = (uint8_t)e[0];
    uint64_t u = 0;
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_BOOL:
        v->u.i = el > 1 && e[1];
        return;
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        v->u.s = e + 1;
        v->len = el - 1;
        return;
    default:
        if (el < 9) {
            v->type = EDDY_TYPE_NULL;
            return;
        }
        for (int i = 0; i < 8; i++)
            u = (u << 8) | (uint8_t)e[1 + i];
        if (v->type == EDDY_TYPE_DOUBLE) {
            u = (u >> 63) ? u ^ (1ull << 63) : ~u;
            memcpy(&v->u.d, &u, 8);
        } else {
            v->u.i = (int64_t)(u ^ (1ull << 63));
        }
    }
}

static void set_bytes(eddy_value_t *acc, const eddy_buf_t *b) {
    acc->type = EDDY_TYPE_BYTES;
    acc->u.s = b->p;
    acc->len = (uint32_t)b->len;
}

static eddy_err_t corrupt(eddy_aggctx_t *x, const char *fn) {
    snprintf(x->why, sizeof(x->why), "%s: stored accumulator is not a %s state", fn, fn);
    return EDDY_ERR_DECODE;
}

/* Insert element e at pos into l, keeping elements [lo, hi) of the n+1
 * (top/bottom drop one end), into the context's next buffer. */
static eddy_err_t list_insert(eddy_aggctx_t *x, eddy_value_t *acc, const list_t *l, uint32_t pos,
                              const char *e, uint32_t el, uint32_t lo, uint32_t hi,
                              const char *fn) {
    size_t need = 4 + 4 * (size_t)(hi - lo) + l->dlen + el;
    if (need > EDDY_AGG_MAX_STATE_BYTES && need > acc->len) {
        snprintf(x->why, sizeof(x->why),
                 "%s: state of the group would grow to %zu bytes, over the limit of %u bytes "
                 "(EDDY_AGG_MAX_STATE_BYTES); record not aggregated",
                 fn, need, (unsigned)EDDY_AGG_MAX_STATE_BYTES);
        return EDDY_ERR_FULL;
    }
    /* e may live in buf[2]; the list in buf[cur] or in the store */
    eddy_buf_t *b = &x->buf[!x->cur];
    lwriter_t w;
    lw_begin(&w, b, hi - lo, (size_t)l->dlen + el);
    for (uint32_t i = lo; i < hi; i++) {
        uint32_t ml;
        const char *m;
        if (i == pos)
            m = e, ml = el;
        else
            m = elem(l, i < pos ? i : i - 1, &ml);
        lw_put(&w, m, ml);
    }
    x->cur = !x->cur;
    set_bytes(acc, b);
    return EDDY_OK;
}

/* Walk the sorted union of a and b (dedup: equal elements once), writing
 * positions [lo, hi) of it to w when w is set; returns its length. */
static uint32_t list_union(const list_t *a, const list_t *b, bool dedup, uint32_t lo,
                           uint32_t hi, lwriter_t *w) {
    uint32_t i = 0, j = 0, k = 0;
    while (i < a->n || j < b->n) {
        uint32_t al = 0, bl = 0;
        const char *ae = i < a->n ? elem(a, i, &al) : NULL;
        const char *be = j < b->n ? elem(b, j, &bl) : NULL;
        const char *m;
        uint32_t ml;
        int c = !ae ? 1 : !be ? -1 : ecmp(ae, al, be, bl);
        if (c <= 0) {
            m = ae, ml = al, i++;
            if (c == 0 && dedup)
                j++;
        } else {
            m = be, ml = bl, j++;
        }
        if (w && k >= lo && k < hi)
            lw_put(w, m, ml);
        k++;
    }
    return k;
}

/* acc = the union of acc and other keeping at most keep elements, the
 * largest (top) or the smallest. */
static void list_merge(eddy_aggctx_t *x, eddy_value_t *acc, const eddy_value_t *other, bool dedup,
                       uint32_t keep, bool top) {
    list_t a, b;
    if (!list_view(acc, &a))
        return; /* corrupt: stays so, and its result is NULL */
    if (!list_view(other, &b)) {
        *acc = *other; /* the same for a corrupt other */
        return;
    }
    if (!b.n)
        return;
    if (!a.n) {
        *acc = *other;
        return;
    }
    uint32_t n = list_union(&a, &b, dedup, 0, 0, NULL);
    uint32_t k = n < keep ? n : keep, lo = top ? n - k : 0;
    eddy_buf_t *out = &x->buf[!x->cur];
    lwriter_t w;
    lw_begin(&w, out, k, (size_t)a.dlen + b.dlen);
    list_union(&a, &b, dedup, lo, lo + k, &w);
    x->cur = !x->cur;
    set_bytes(acc, out);
}

/* count_distinct(x): acc[0] the set. */
static eddy_err_t cd_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                         int64_t ts) {
    (void)ts;
    if (!v || v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    list_t l;
    if (!list_view(&acc[0], &l))
        return corrupt(x, "count_distinct");
    uint32_t el;
    const char *e = elem_of(x, v, &el);
    uint32_t pos = list_bound(&l, e, el, false);
    if (pos < l.n) {
        uint32_t ml;
        const char *m = elem(&l, pos, &ml);
        if (!ecmp(m, ml, e, el))
            return EDDY_OK; /* seen */
    }
    return list_insert(x, &acc[0], &l, pos, e, el, 0, l.n + 1, "count_distinct");
}
static void cd_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    list_merge(x, &a[0], &b[0], true, UINT32_MAX, false);
}
static void cd_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                   eddy_arena_t *a) {
    (void)p;
    (void)a;
    list_t l;
    if (!list_view(&acc[0], &l)) {
        out->type = EDDY_TYPE_NULL; /* corrupt state: no answer rather than a wrong one */
        return;
    }
    out->type = EDDY_TYPE_INT;
    out->u.i = l.n;
}

/* top(x, n) / bottom(x, n): acc[0] the n largest / smallest values,
 * ascending, duplicates kept. */
static eddy_err_t topb_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                           bool top, const char *fn) {
    if (!v || v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    list_t l;
    if (!list_view(&acc[0], &l))
        return corrupt(x, fn);
    uint32_t keep = (uint32_t)x->p->n;
    uint32_t el;
    const char *e = elem_of(x, v, &el);
    if (l.n >= keep) {
        uint32_t ml;
        const char *m = elem(&l, top ? 0 : l.n - 1, &ml);
        int c = ecmp(e, el, m, ml);
        if (top ? c <= 0 : c >= 0)
            return EDDY_OK; /* would be dropped again (ties: an equal value stays) */
    }
    uint32_t pos = list_bound(&l, e, el, top);
    uint32_t n1 = l.n + 1;
    uint32_t lo = top && n1 > keep ? n1 - keep : 0, hi = !top && n1 > keep ? keep : n1;
    return list_insert(x, &acc[0], &l, pos, e, el, lo, hi, fn);
}
static eddy_err_t top_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                          int64_t ts) {
    (void)ts;
    return topb_add(x, acc, v, true, "top");
}
static eddy_err_t bottom_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                             int64_t ts) {
    (void)ts;
    return topb_add(x, acc, v, false, "bottom");
}
static void top_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    list_merge(x, &a[0], &b[0], false, (uint32_t)x->p->n, true);
}
static void bottom_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    list_merge(x, &a[0], &b[0], false, (uint32_t)x->p->n, false);
}

/* JSON text of one value (top/bottom results). */
static void json_value(eddy_buf_t *b, const eddy_value_t *v) {
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_BOOL:
        eddy_buf_printf(b, "%s", v->u.i ? "true" : "false");
        break;
    case EDDY_TYPE_DOUBLE: {
        if (!isfinite(v->u.d)) {
            eddy_buf_printf(b, "null"); /* JSON has no NaN or infinities */
            break;
        }
        char tmp[48];
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof(tmp), "%.*g", prec, v->u.d);
            if (strtod(tmp, NULL) == v->u.d)
                break;
        }
        for (char *c = tmp; *c; c++)
            if (*c == ',')
                *c = '.'; /* whatever the locale */
        eddy_buf_printf(b, "%s", tmp);
        break;
    }
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        eddy_buf_putc(b, '"');
        for (uint32_t i = 0; i < v->len; i++) {
            unsigned char c = (unsigned char)v->u.s[i];
            if (c == '"' || c == '\\')
                eddy_buf_printf(b, "\\%c", c);
            else if (c < 0x20)
                eddy_buf_printf(b, "\\u%04x", c);
            else
                eddy_buf_putc(b, (char)c);
        }
        eddy_buf_putc(b, '"');
        break;
    case EDDY_TYPE_NULL:
        eddy_buf_printf(b, "null");
        break;
    default: /* INT, TIMESTAMP (ms) */
        eddy_buf_printf(b, "%lld", (long long)v->u.i);
        break;
    }
}

static void topb_res(const eddy_value_t acc[2], eddy_value_t *out, eddy_arena_t *a, bool top) {
    list_t l;
    if (!list_view(&acc[0], &l) || !l.n) {
        out->type = EDDY_TYPE_NULL; /* no input (or corrupt state) */
        return;
    }
    eddy_buf_t b = {0};
    eddy_buf_putc(&b, '[');
    for (uint32_t k = 0; k < l.n; k++) {
        uint32_t el;
        const char *e = elem(&l, top ? l.n - 1 - k : k, &el);
        eddy_value_t v;
        decode_elem(e, el, &v);
        if (k)
            eddy_buf_putc(&b, ',');
        json_value(&b, &v);
    }
    eddy_buf_putc(&b, ']');
    out->type = EDDY_TYPE_STRING;
    out->u.s = eddy_arena_strndup(a, b.p, b.len);
    out->len = (uint32_t)b.len;
    eddy_buf_free(&b);
}
static void top_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                    eddy_arena_t *a) {
    (void)p;
    topb_res(acc, out, a, true);
}
static void bottom_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                       eddy_arena_t *a) {
    (void)p;
    topb_res(acc, out, a, false);
}
static eddy_type_t t_string(eddy_type_t a) {
    (void)a;
    return EDDY_TYPE_STRING;
}

/* ---------------------------------------------------- user aggregates */

/* acc[0]: the host's acc_size bytes (NULL until the first value). The
 * callbacks get copies aligned for any type: the stored bytes are not. */
static bool user_ok(const eddy_aggregate_def_t *d, const eddy_value_t *acc) {
    return acc->type == EDDY_TYPE_BYTES && acc->len == d->acc_size;
}

static eddy_err_t user_add(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                           int64_t ts) {
    const eddy_aggregate_def_t *d = x->p->udef;
    if (!v || v->type == EDDY_TYPE_NULL)
        return EDDY_OK;
    eddy_buf_t *b = &x->buf[!x->cur];
    b->len = 0;
    eddy_buf_reserve(b, d->acc_size);
    if (acc[0].type == EDDY_TYPE_NULL) {
        memset(b->p, 0, d->acc_size);
        d->init(b->p, d->opaque);
    } else if (!user_ok(d, &acc[0])) {
        snprintf(x->why, sizeof(x->why),
                 "%s: stored accumulator has %u bytes, the definition says %zu", d->name,
                 (unsigned)acc[0].len, d->acc_size);
        return EDDY_ERR_DECODE;
    } else {
        memcpy(b->p, acc[0].u.s, d->acc_size);
    }
    eddy_err_t e = d->add(b->p, v, ts, d->opaque);
    if (e) {
        snprintf(x->why, sizeof(x->why), "%s: add refused the value: %s", d->name,
                 eddy_err2str(e));
        return e;
    }
    b->len = d->acc_size;
    x->cur = !x->cur;
    set_bytes(&acc[0], b);
    return EDDY_OK;
}

static void user_merge(eddy_aggctx_t *x, eddy_value_t a[2], const eddy_value_t b[2]) {
    const eddy_aggregate_def_t *d = x->p->udef;
    if (b[0].type == EDDY_TYPE_NULL || (a[0].type != EDDY_TYPE_NULL && !user_ok(d, &a[0])))
        return; /* nothing to add; or a is of another layout: result says NULL */
    if (a[0].type == EDDY_TYPE_NULL || !user_ok(d, &b[0])) {
        a[0] = b[0];
        return;
    }
    eddy_buf_t *into = &x->buf[!x->cur], *other = &x->buf[2];
    into->len = other->len = 0;
    eddy_buf_put(into, a[0].u.s, d->acc_size);
    eddy_buf_put(other, b[0].u.s, d->acc_size);
    d->merge(into->p, other->p, d->opaque);
    x->cur = !x->cur;
    set_bytes(&a[0], into);
}

static void user_res(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                     eddy_arena_t *a) {
    const eddy_aggregate_def_t *d = p->udef;
    memset(out, 0, sizeof(*out));
    if (!user_ok(d, &acc[0]))
        return; /* no input, or state of another layout */
    char *raw = eddy_arena_alloc(a, d->acc_size + 16);
    char *al = (char *)(((uintptr_t)raw + 15) & ~(uintptr_t)15);
    memcpy(al, acc[0].u.s, d->acc_size);
    d->result(al, out, d->opaque);
    if (out->type != d->result_type) {
        memset(out, 0, sizeof(*out));
        return;
    }
    if (out->type == EDDY_TYPE_STRING || out->type == EDDY_TYPE_BYTES)
        out->u.s = out->len ? eddy_arena_strndup(a, out->u.s, out->len) : "";
}

static eddy_type_t t_user(eddy_type_t a) {
    (void)a;
    return EDDY_TYPE_NULL; /* the definition's result_type; see eddy__aggspec_fields */
}

/* Not listed in eddy__aggfns: reached through a registered name. */
static const eddy_aggfn_t user_fn = {"user", true, false, t_user, user_add, user_merge,
                                     user_res};

const eddy_aggfn_t eddy__aggfns[] = {
    {"count", false, false, t_int, count_add, count_merge, count_res},
    {"sum", true, true, t_sum, sum_add, sum_merge, first_res},
    {"min", true, false, t_same, min_add, min_merge, first_res},
    {"max", true, false, t_same, max_add, max_merge, first_res},
    {"avg", true, true, t_double, avg_add, avg_merge, avg_res},
    {"first", true, false, t_same, first_add, first_merge, first_res},
    {"last", true, false, t_same, last_add, last_merge, first_res},
    {"count_distinct", true, false, t_int, cd_add, cd_merge, cd_res},
    {"top", true, false, t_string, top_add, top_merge, top_res},
    {"bottom", true, false, t_string, bottom_add, bottom_merge, bottom_res},
};
const int eddy__naggfns = (int)(sizeof(eddy__aggfns) / sizeof(eddy__aggfns[0]));
const char *const eddy__aggfn_names[] = {"count", "sum",  "min",           "max", "avg",
                                         "first", "last", "count_distinct", "top", "bottom",
                                         NULL};

const eddy_aggfn_t *eddy__aggfn_builtin(const char *name) {
    for (int i = 0; i < eddy__naggfns; i++)
        if (!strcmp(eddy__aggfns[i].name, name))
            return &eddy__aggfns[i];
    return NULL;
}


/* ----------------------------------------------------- aggregation spec */

eddy_err_t eddy__aggspec_by(eddy_aggspec_t *a, const eddy_cnode_t *by, const eddy_schema_t *in,
                            eddy_schema_t *out, eddy_schema_t *keys, char *errstr,
                            size_t errstr_size) {
    if (!by)
        return EDDY_OK;
    const eddy_cnode_t *const *bys = &by;
    int nby = 1;
    if (by->kind == EDDY_CNODE_SEQ) {
        bys = (const eddy_cnode_t *const *)by->items;
        nby = by->n;
    }
    a->by = eddy_calloc((size_t)nby + 1, sizeof(*a->by));
    for (int i = 0; i < nby; i++) {
        char msg[400];
        int col = 0;
        if (bys[i]->kind != EDDY_CNODE_SCALAR)
            return eddy__cnode_err(bys[i], errstr, errstr_size, "by: expected an expression");
        a->by[i] = eddy__expr_compile(bys[i]->scalar, in, msg, sizeof(msg), &col);
        if (!a->by[i])
            return eddy__cnode_err_at(bys[i], col + (bys[i]->quoted ? 1 : 0), errstr,
                                      errstr_size, "by: %s", msg);
        a->nby++;
        int ref = eddy__expr_field_ref(a->by[i]);
        char kname[64];
        if (ref >= 0)
            snprintf(kname, sizeof(kname), "%s", in->fields[ref].name);
        else
            snprintf(kname, sizeof(kname), nby == 1 ? "key" : "key%d", i + 1);
        if (out)
            eddy__schema_add(out, kname, eddy__expr_type(a->by[i]));
        eddy__schema_add(keys, kname, eddy__expr_type(a->by[i]));
    }
    return EDDY_OK;
}

/* Parse "fn(arg)" at node n (shared by aggregate and window steps). */
eddy_err_t eddy__aggfn_parse(const eddy_cnode_t *n, const eddy_schema_t *in,
                             const struct eddy_topology_s *topo, const eddy_aggfn_t **fn,
                             eddy_expr_t **arg, eddy_aggparam_t *param, char *errstr,
                             size_t errstr_size) {
    const char *usage = "expected an aggregate like count(), sum(price), top(price, 3)";
    if (n->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(n, errstr, errstr_size, "%s", usage);
    const char *s = n->scalar;
    const char *lp = strchr(s, '(');
    size_t len = strlen(s);
    while (len && s[len - 1] == ' ')
        len--;
    if (!lp || len == 0 || s[len - 1] != ')')
        return eddy__cnode_err(n, errstr, errstr_size, "%s; got '%s'%s", usage, s,
                               lp && !strchr(lp, ')')
                                   ? " (in a {flow: mapping} a comma ends the value: quote "
                                     "it, e.g. \"top(price, 3)\")"
                                   : "");
    char name[32];
    size_t nl = (size_t)(lp - s);
    while (nl && s[nl - 1] == ' ')
        nl--;
    if (nl >= sizeof(name))
        nl = sizeof(name) - 1;
    memcpy(name, s, nl);
    name[nl] = 0;
    memset(param, 0, sizeof(*param));
    *fn = eddy__aggfn_builtin(name);
    if (!*fn && (param->udef = eddy__topology_find_agg(topo, name)))
        *fn = &user_fn;
    if (!*fn) {
        /* did you mean: built-ins and registered names */
        int nu = topo ? topo->naggs : 0;
        const char **names = eddy_calloc((size_t)(eddy__naggfns + nu + 1), sizeof(*names));
        eddy_buf_t known = {0};
        for (int i = 0; i < eddy__naggfns; i++)
            names[i] = eddy__aggfn_names[i];
        for (int i = 0; i < nu; i++)
            names[eddy__naggfns + i] = topo->aggs[i]->name;
        for (int i = 0; names[i]; i++)
            eddy_buf_printf(&known, "%s%s", i ? ", " : "", names[i]);
        const char *sg = eddy__cfg_suggest(name, names);
        eddy_err_t err = eddy__cnode_err(n, errstr, errstr_size,
                                         "unknown aggregate '%s'%s%s%s (expected %.*s)", name,
                                         sg ? " (did you mean '" : "", sg ? sg : "",
                                         sg ? "'?)" : "", (int)known.len, known.p);
        eddy_buf_free(&known);
        eddy_free(names);
        return err;
    }
    size_t inner_off = (size_t)(lp - s) + 1;
    size_t inner_len = len - 1 - inner_off;
    bool counted = *fn == eddy__aggfn_builtin("top") || *fn == eddy__aggfn_builtin("bottom");
    if (counted) {
        /* top(expr, n): n is after the last comma outside parentheses and quotes */
        size_t comma = 0;
        int depth = 0;
        char q = 0;
        for (size_t i = inner_off; i < inner_off + inner_len; i++) {
            char c = s[i];
            if (q)
                q = c == q ? 0 : q;
            else if (c == '\'' || c == '"')
                q = c;
            else if (c == '(')
                depth++;
            else if (c == ')')
                depth--;
            else if (c == ',' && depth == 0)
                comma = i;
        }
        char *end = NULL;
        long long cnt = comma ? strtoll(s + comma + 1, &end, 10) : 0;
        while (end && *end == ' ')
            end++;
        if (!comma || end == s + comma + 1 || end != s + len - 1 || cnt < 1 ||
            cnt > EDDY_AGG_MAX_TOP_N)
            return eddy__cnode_err(n, errstr, errstr_size,
                                   "%s() takes a value and how many to keep (1..%d), e.g. "
                                   "%s(price, 3)",
                                   name, EDDY_AGG_MAX_TOP_N, name);
        param->n = cnt;
        inner_len = comma - inner_off;
    }
    char *inner = eddy_strndup(s + inner_off, inner_len);
    bool empty = true;
    for (char *p = inner; *p; p++)
        if (*p != ' ')
            empty = false;
    *arg = NULL;
    eddy_err_t rc = EDDY_OK;
    if (empty) {
        if ((*fn)->needs_arg)
            rc = eddy__cnode_err(n, errstr, errstr_size, "%s() needs an argument, e.g. %s(price)",
                                 name, name);
    } else {
        char msg[400];
        int col = 0;
        *arg = eddy__expr_compile(inner, in, msg, sizeof(msg), &col);
        eddy_type_t t = *arg ? eddy__expr_type(*arg) : EDDY_TYPE_NULL;
        if (!*arg)
            rc = eddy__cnode_err_at(n, (int)inner_off + col + (n->quoted ? 1 : 0), errstr,
                                    errstr_size, "%s: %s", name, msg);
        else if ((*fn)->needs_arg && (*fn)->numeric && t != EDDY_TYPE_INT &&
                 t != EDDY_TYPE_DOUBLE && t != EDDY_TYPE_NULL)
            rc = eddy__cnode_err(n, errstr, errstr_size, "%s() needs a number, got %s", name,
                                 eddy_type2str(t));
        else if (counted && t == EDDY_TYPE_BYTES)
            rc = eddy__cnode_err(n, errstr, errstr_size,
                                 "%s() of bytes: not supported (its result is a JSON array)",
                                 name);
    }
    eddy_free(inner);
    if (rc && *arg) { /* refused after compiling: the caller keeps only accepted ones */
        eddy__expr_destroy(*arg);
        *arg = NULL;
    }
    return rc;
}

eddy_err_t eddy__aggspec_fields(eddy_aggspec_t *a, const eddy_cnode_t *fields,
                                const struct eddy_compile_ctx_s *cc, eddy_schema_t *out,
                                const char *what, char *errstr, size_t errstr_size) {
    a->fn = eddy_calloc((size_t)fields->n + 1, sizeof(*a->fn));
    a->arg = eddy_calloc((size_t)fields->n + 1, sizeof(*a->arg));
    a->param = eddy_calloc((size_t)fields->n + 1, sizeof(*a->param));
    for (int i = 0; i < fields->n; i++) {
        eddy_err_t err = eddy__aggfn_parse(fields->items[i], cc->in, cc->topo, &a->fn[i],
                                           &a->arg[i], &a->param[i], errstr, errstr_size);
        if (err)
            return err;
        a->nagg++;
        eddy_type_t at = a->arg[i] ? eddy__expr_type(a->arg[i]) : EDDY_TYPE_INT;
        eddy_type_t rt = a->param[i].udef ? a->param[i].udef->result_type
                                          : a->fn[i]->result_type(at);
        if (eddy__schema_add(out, fields->keys[i], rt) < 0)
            return eddy__cnode_err(fields->key_nodes[i], errstr, errstr_size,
                                   "%s: field '%s' clashes with a key or window field", what,
                                   fields->keys[i]);
        out->fields[out->nfields - 1].nullable = true;
    }
    return EDDY_OK;
}

void eddy__aggspec_free(eddy_aggspec_t *a) {
    for (int i = 0; i < a->nby; i++)
        eddy__expr_destroy(a->by[i]);
    for (int i = 0; i < a->nagg; i++)
        eddy__expr_destroy(a->arg[i]);
    eddy_free(a->by);
    eddy_free(a->fn);
    eddy_free(a->arg);
    eddy_free(a->param);
}

static void mark_fields(const eddy_expr_t *e, bool *used) {
    int f[64];
    int n = eddy__expr_fields(e, f, 64);
    if (n > 64) {
        int *all = eddy_malloc(sizeof(int) * (size_t)n);
        eddy__expr_fields(e, all, n);
        for (int i = 0; i < n; i++)
            used[all[i]] = true;
        eddy_free(all);
        return;
    }
    for (int i = 0; i < n; i++)
        used[f[i]] = true;
}

void eddy__aggspec_input_fields(const eddy_aggspec_t *a, bool *used) {
    for (int i = 0; i < a->nby; i++)
        mark_fields(a->by[i], used);
    for (int i = 0; i < a->nagg; i++)
        if (a->arg[i])
            mark_fields(a->arg[i], used);
}

/* ------------------------------------------------ per-task evaluation */

eddy_aggctx_t *eddy__aggspec_ctx_new(const eddy_aggspec_t *a) {
    eddy_aggctx_t *x = eddy_calloc((size_t)a->nagg + 1, sizeof(*x));
    for (int k = 0; k < a->nagg; k++)
        x[k].p = &a->param[k];
    return x;
}

void eddy__aggspec_ctx_free(const eddy_aggspec_t *a, eddy_aggctx_t *x) {
    if (!x)
        return;
    for (int k = 0; k < a->nagg; k++)
        for (int b = 0; b < 3; b++)
            eddy_buf_free(&x[k].buf[b]);
    eddy_free(x);
}

eddy_err_t eddy__aggspec_add(const eddy_aggspec_t *a, eddy_aggctx_t *x, eddy_value_t *acc,
                             const eddy_value_t *row, eddy_arena_t *ar, int64_t ts, char *why,
                             size_t why_size) {
    for (int k = 0; k < a->nagg; k++) {
        eddy_value_t arg, *ap = NULL;
        if (a->arg[k]) {
            eddy__expr_eval(a->arg[k], row, ar, &arg);
            ap = &arg;
        }
        eddy_err_t e = a->fn[k]->add(&x[k], &acc[2 * k], ap, ts);
        if (e) {
            snprintf(why, why_size, "%s", x[k].why);
            return e;
        }
    }
    return EDDY_OK;
}

void eddy__aggspec_merge(const eddy_aggspec_t *a, eddy_aggctx_t *x, eddy_value_t *into,
                         const eddy_value_t *from) {
    for (int k = 0; k < a->nagg; k++)
        a->fn[k]->merge(&x[k], &into[2 * k], &from[2 * k]);
}

void eddy__aggspec_results(const eddy_aggspec_t *a, const eddy_value_t *acc, eddy_value_t *out,
                           eddy_arena_t *ar) {
    for (int k = 0; k < a->nagg; k++)
        a->fn[k]->result(&a->param[k], &acc[2 * k], &out[k], ar);
}
