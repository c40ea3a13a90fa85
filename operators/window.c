/*
 * Window steps: tumbling, hopping, sliding and session windows over keyed
 * streams, with `aggregate` (count/sum/min/max/avg/first/last) or `top`
 * (the top-n rows of each tumbling window) output. Semantics in
 * docs/windows.md.
 *
 * One core serves the kinds. Tumbling and hopping windows are kept as
 * panes of width `advance` (tumbling: pane = window): a record updates the
 * one pane it falls in; a hopping window's result merges its size/advance
 * panes when it is emitted. Sliding windows are stored one entry per
 * window, like tumbling ones (start aligned to record times instead of the
 * epoch), and fire, emit updates and answer queries through the same
 * paths; a record updates every open window that holds it and creates the
 * windows its event time gives rise to (see "sliding" below). Sessions
 * live in a session store and are merged on insert. The state (panes,
 * windows, sessions) is in a state store, so it is
 * committed, restored and queryable like any other; the in-memory part is
 * only an index of what to fire when the watermark passes (panes by start,
 * sessions by end), rebuilt from the store on restart. Because the
 * operator's watermark is committed with its state (engine), "every window
 * with end + grace <= W has fired" holds after a restart too, so nothing is
 * emitted twice.
 *
 * Stored value (aggregate): by values, window start, window end, 2 values
 * per aggregate, fired flag. (top): start, end, threshold, k, k rows.
 */
#include "aggfn.h"
#include "cfg.h"
#include "expr.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include <stdlib.h>

typedef enum { W_TUMBLING = 0, W_HOPPING = 1, W_SESSION = 2, W_SLIDING = 3 } wkind_t;

/* open sessions one key may have at once (disjoint, awaiting close) */
#define MAX_OPEN 4096

typedef struct open_s {
    int n;
    int64_t start[MAX_OPEN], end[MAX_OPEN];
} open_t;
static const char *const kind_names[] = {"tumbling", "hopping", "session", "sliding", NULL};
static const char *const emit_names[] = {"final", "update", NULL};

typedef struct {
    wkind_t kind;
    /* sliding: diff = the configured size (largest time difference inside
     * a window), size = diff + 1 (the span of [start, end) with end
     * exclusive), so that the tumbling paths (fire, update, queries) serve
     * sliding windows as they are */
    int64_t size, advance, gap, grace, retention, pane, diff;
    bool update;
    bool top;
    eddy_aggspec_t a; /* by + aggregate */
    /* top */
    int top_n, order_field, in_nfields;
    bool desc, ties;
    int store;
    int rstore;  /* hopping: results store (queryable), or -1 */
    int ostore;  /* session: per key, its open sessions (start, end), or -1 */
    int pstore;  /* sliding: per key and event time, its records' aggregate, or -1 */
    eddy_schema_t *out;
} wconf_t;

static int nval(const wconf_t *c) { return c->a.nby + 2 + 2 * c->a.nagg + 1; }

/* ------------------------------------------------------------ helpers */

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}
static int64_t align(int64_t t, int64_t w) { return floor_div(t, w) * w; }

static bool closed(const wconf_t *c, int64_t end, int64_t wm) {
    /* end + grace <= wm, without overflow */
    return wm != INT64_MIN && end <= wm - c->grace;
}

static void wfree(void *conf) {
    wconf_t *c = conf;
    if (!c)
        return;
    eddy__aggspec_free(&c->a);
    eddy_free(c);
}

/* Results of stored values v (nval) into out: by, start, end, results. */
static void results(const wconf_t *c, const eddy_value_t *v, eddy_value_t *out,
                    eddy_arena_t *a) {
    for (int i = 0; i < c->a.nby + 2; i++)
        out[i] = v[i];
    eddy__aggspec_results(&c->a, &v[c->a.nby + 2], &out[c->a.nby + 2], a);
}

static eddy_err_t decode_for_query(const eddy_store_def_t *def, const char *v, size_t vlen,
                                   eddy_arena_t *a, eddy_value_t *out) {
    const wconf_t *c = def->owner;
    eddy_value_t tmp[256];
    if (nval(c) > 256)
        return EDDY_ERR_INVAL;
    eddy_err_t e = eddy__row_decode(v, vlen, nval(c), tmp);
    if (!e)
        results(c, tmp, out, a);
    return e;
}

/* ------------------------------------------------------------ compile */

static const char *const window_keys[] = {"type", "size", "advance", "gap", "grace", "emit",
                                          "retention", "store", NULL};
static const char *const step_keys[] = {"window", "aggregate", "top", NULL};
static const char *const agg_keys[] = {"by", "fields", NULL};
static const char *const top_keys[] = {"by", "n", "order_by", "descending", "with_ties", NULL};

static const eddy_cnode_t *window_exchange_key(const eddy_cnode_t *step, bool *wanted) {
    *wanted = true;
    const eddy_cnode_t *sub = eddy__cnode_get(step, "aggregate");
    if (!sub)
        sub = eddy__cnode_get(step, "top");
    return sub ? eddy__cnode_get(sub, "by") : NULL;
}

static eddy_err_t wcompile(eddy_compile_ctx_t *cc, char *errstr, size_t en) {
    const eddy_cnode_t *step = cc->step, *w = cc->arg;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(step, "window step", step_keys, errstr, en)))
        return err;
    if (!w || w->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(w ? w : step, errstr, en,
                               "window: expected a mapping like {type: tumbling, size: 10s}");
    if ((err = eddy__cfg_check_keys(w, "window", window_keys, errstr, en)))
        return err;
    wconf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    c->rstore = -1;
    c->ostore = -1;
    c->pstore = -1;
    int kind = 0, emit = 0;
    if ((err = eddy__cfg_enum(w, "type", true, kind_names, &kind, errstr, en)) ||
        (err = eddy__cfg_enum(w, "emit", false, emit_names, &emit, errstr, en)) ||
        (err = eddy__cfg_duration(w, "grace", false, &c->grace, errstr, en)) ||
        (err = eddy__cfg_duration(w, "retention", false, &c->retention, errstr, en)))
        return err;
    c->kind = (wkind_t)kind;
    c->update = emit == 1;
    if (c->kind == W_SESSION) {
        if ((err = eddy__cfg_duration(w, "gap", true, &c->gap, errstr, en)))
            return err;
        if (c->gap <= 0)
            return eddy__cnode_err(eddy__cnode_get(w, "gap"), errstr, en,
                                   "window gap must be > 0");
        if (eddy__cnode_get(w, "size") || eddy__cnode_get(w, "advance"))
            return eddy__cnode_err(w, errstr, en,
                                   "a session window has a gap, not a size or advance");
    } else {
        if ((err = eddy__cfg_duration(w, "size", true, &c->size, errstr, en)))
            return err;
        if (c->size <= 0)
            return eddy__cnode_err(eddy__cnode_get(w, "size"), errstr, en,
                                   "window size %lldms: must be > 0", (long long)c->size);
        if (eddy__cnode_get(w, "gap"))
            return eddy__cnode_err(eddy__cnode_get(w, "gap"), errstr, en,
                                   "only session windows have a gap");
        if (c->kind == W_SLIDING) {
            c->diff = c->size;
            if (c->size == INT64_MAX)
                return eddy__cnode_err(eddy__cnode_get(w, "size"), errstr, en,
                                       "sliding window size too large");
            c->size = c->diff + 1;
        }
        if ((err = eddy__cfg_window_advance(w, c->kind == W_HOPPING, c->size, &c->advance,
                                            errstr, en)))
            return err;
        c->pane = c->advance;
    }
    const eddy_cnode_t *agg = eddy__cnode_get(step, "aggregate");
    const eddy_cnode_t *top = eddy__cnode_get(step, "top");
    if (!agg == !top)
        return eddy__cnode_err(step, errstr, en,
                               "a window step needs 'aggregate: {...}' or 'top: {...}' beside "
                               "'window:' (one of them)");
    eddy_schema_t *out = eddy__schema_new_empty();
    eddy_schema_t *keys = eddy__schema_new_empty();
    cc->out = out;
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    const char *store = NULL;
    if ((err = eddy__cfg_str(w, "store", false, &store, errstr, en)))
        goto fail;
    def->name = eddy_strdup(store ? store : cc->pipeline ? cc->pipeline : "window");
    if (agg) {
        if (agg->kind != EDDY_CNODE_MAP) {
            err = eddy__cnode_err(agg, errstr, en, "aggregate: expected {by: ..., fields: {...}}");
            goto fail;
        }
        if ((err = eddy__cfg_check_keys(agg, "aggregate", agg_keys, errstr, en)) ||
            (err = eddy__aggspec_by(&c->a, eddy__cnode_get(agg, "by"), cc->in, out, keys, errstr,
                                    en)))
            goto fail;
        eddy__schema_add(out, "window_start", EDDY_TYPE_TIMESTAMP);
        eddy__schema_add(out, "window_end", EDDY_TYPE_TIMESTAMP);
        const eddy_cnode_t *fields = eddy__cnode_get(agg, "fields");
        if (!fields || fields->kind != EDDY_CNODE_MAP || !fields->n) {
            err = eddy__cnode_err(fields ? fields : agg, errstr, en,
                                  "aggregate: 'fields' must map output names to aggregates, "
                                  "e.g. {bids: count()}");
            goto fail;
        }
        if ((err = eddy__aggspec_fields(&c->a, fields, cc, out, "window aggregate", errstr,
                                        en)))
            goto fail;
        /* sliding windows merge several accumulators through one scratch
         * context at once, which variable-size accumulators do not allow */
        for (int k = 0; c->kind == W_SLIDING && k < c->a.nagg; k++) {
            const char *fn = c->a.fn[k]->name;
            if (c->a.param[k].udef || !strcmp(fn, "count_distinct") || !strcmp(fn, "top") ||
                !strcmp(fn, "bottom")) {
                err = eddy__cnode_err(fields, errstr, en,
                                      "%s() is not supported on sliding windows yet (count, "
                                      "sum, min, max, avg, first and last are)",
                                      c->a.param[k].udef ? c->a.param[k].udef->name : fn);
                goto fail;
            }
        }
    } else {
        if (c->kind != W_TUMBLING) {
            err = eddy__cnode_err(top, errstr, en, "top is supported on tumbling windows only");
            goto fail;
        }
        if (top->kind != EDDY_CNODE_MAP) {
            err = eddy__cnode_err(top, errstr, en,
                                  "top: expected {n: 1, order_by: price, descending: true}");
            goto fail;
        }
        if (c->update) {
            err = eddy__cnode_err(eddy__cnode_get(w, "emit"), errstr, en,
                                  "top windows emit once, when the window closes (emit: final)");
            goto fail;
        }
        c->top = true;
        int64_t n = 1;
        const char *ob = NULL;
        c->desc = true;
        c->ties = false;
        if ((err = eddy__cfg_check_keys(top, "top", top_keys, errstr, en)) ||
            (err = eddy__aggspec_by(&c->a, eddy__cnode_get(top, "by"), cc->in, NULL, keys, errstr,
                                    en)) ||
            (err = eddy__cfg_int(top, "n", false, 1, 10000, &n, errstr, en)) ||
            (err = eddy__cfg_str(top, "order_by", true, &ob, errstr, en)) ||
            (err = eddy__cfg_bool(top, "descending", false, &c->desc, errstr, en)) ||
            (err = eddy__cfg_bool(top, "with_ties", false, &c->ties, errstr, en)))
            goto fail;
        c->top_n = (int)n;
        c->order_field = eddy_schema_field_index(cc->in, ob);
        if (c->order_field < 0) {
            err = eddy__cnode_err(eddy__cnode_get(top, "order_by"), errstr, en,
                                  "top: no field '%s' in the input", ob);
            goto fail;
        }
        c->in_nfields = cc->in->nfields;
        for (int i = 0; i < cc->in->nfields; i++)
            eddy__schema_add(out, cc->in->fields[i].name, cc->in->fields[i].type);
        if (eddy__schema_add(out, "window_start", EDDY_TYPE_TIMESTAMP) < 0 ||
            eddy__schema_add(out, "window_end", EDDY_TYPE_TIMESTAMP) < 0) {
            err = eddy__cnode_err(top, errstr, en,
                                  "top: the input already has window_start/window_end fields");
            goto fail;
        }
    }
    if (eddy__plan_find_store(cc->plan, def->name)) {
        err = eddy__cnode_err(store ? eddy__cnode_get(w, "store") : step, errstr, en,
                              "a store named '%s' already exists; name this one with 'store:'",
                              def->name);
        goto fail;
    }
    int64_t span = c->kind == W_SESSION ? c->gap : c->size;
    /* Sessions are kept by (key, start) and found through the key's list
     * of open sessions: every access is a point lookup. */
    def->kind = EDDY_STORE_WINDOW;
    /* closed windows stay until end + grace + retention (sessions: deleted
     * one by one, since their length is unbounded) */
    def->retention_ms = c->kind == W_SESSION ? 0 : span + c->grace + c->retention;
    def->segment_ms = c->kind == W_SESSION ? 86400000LL
                                          : (span + c->grace + c->retention) / 2 + 1;
    /* sliding windows look up the windows and records of a key around each
     * record: ordered range reads on the hot path */
    def->range_reads = c->kind == W_SLIDING;
    def->sessions = c->kind == W_SESSION;
    def->key_schema = keys;
    def->value_schema = eddy__schema_ref(out);
    def->queryable = !c->top && c->kind != W_HOPPING;
    def->decode_value = decode_for_query;
    def->owner = c;
    c->store = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    if (c->kind == W_SESSION) {
        eddy_store_def_t *o = eddy_calloc(1, sizeof(*o));
        o->name = eddy_asprintf("%s.open", def->name);
        o->kind = EDDY_STORE_KV;
        c->ostore = eddy__plan_add_store((eddy_plan_t *)cc->plan, o);
    }
    if (c->kind == W_SLIDING) {
        /* the records of a key, aggregated per event time: what a window
         * created after its records arrived is computed from; kept until
         * the last window that can hold them, [t, t+size], has closed */
        eddy_store_def_t *p = eddy_calloc(1, sizeof(*p));
        p->name = eddy_asprintf("%s.points", def->name);
        p->kind = EDDY_STORE_WINDOW;
        p->retention_ms = c->size + c->grace;
        p->segment_ms = def->segment_ms;
        p->range_reads = true;
        c->pstore = eddy__plan_add_store((eddy_plan_t *)cc->plan, p);
    }
    if (c->kind == W_HOPPING && store) {
        /* a second store for emitted window results (queryable); only when
         * the step names a store, since it costs a write per window and key */
        eddy_store_def_t *r = eddy_calloc(1, sizeof(*r));
        r->name = eddy_asprintf("%s", def->name);
        eddy_free(def->name);
        def->name = eddy_asprintf("%s.panes", r->name);
        r->kind = EDDY_STORE_WINDOW;
        r->retention_ms = def->retention_ms;
        r->segment_ms = def->segment_ms;
        r->key_schema = eddy__schema_ref(keys);
        r->value_schema = eddy__schema_ref(out);
        r->queryable = true;
        r->decode_value = decode_for_query;
        r->owner = c;
        c->rstore = eddy__plan_add_store((eddy_plan_t *)cc->plan, r);
    }
    if (c->kind == W_HOPPING)
        /* panes are internal: one is no longer needed once the last window
         * over it closed (its start + size + grace); emitted results keep
         * their own retention in the results store. The segment width
         * (part of the stored keys) stays as it was. */
        def->retention_ms = c->size + c->grace;
    c->out = out;
    cc->label = eddy_asprintf("window %s %s into store %s", kind_names[c->kind],
                              c->top ? "top" : "aggregate",
                              c->rstore >= 0 ? cc->plan->stores[c->rstore]->name : def->name);
    return EDDY_OK;
fail:
    eddy_free(def->name);
    eddy_free(def);
    eddy__schema_unref(keys);
    return err;
}

/* ------------------------------------------------------- runtime state */

typedef struct {
    int64_t start;           /* pane start; session: end */
    int64_t start2;          /* session: start */
    char *key;
    uint32_t klen;
} wkey_t;

/* A key with state in a pane. v, vlen: memo of the pane's stored value
 * during one fire_pane_windows() call (see pane_t.memo); vlen
 * PKEY_UNKNOWN = not looked up yet, v NULL = no value. */
typedef struct {
    char *key;
    const char *v;
    uint32_t klen, vlen;
} pkey_t;
#define PKEY_UNKNOWN UINT32_MAX

typedef struct {
    int64_t start;
    pkey_t *keys;
    size_t n, cap;
    size_t nsorted;     /* hopping: keys[0, nsorted) are in key order */
    uint64_t memo;      /* the fire whose lookups keys[].v hold */
    eddy_arena_t kmem;  /* the key bytes, freed with the pane */
} pane_t;

typedef struct {
    struct eddy_store_s *st, *rst, *ost, *pst;
    /* sessions fired with retention: (due, start, key) min-heap */
    wkey_t *xheap;
    size_t nxheap, xhcap;
    /* panes (tumbling, hopping) sorted by start */
    pane_t *panes;
    size_t npanes, pcap;
    /* sessions: min-heap by end */
    wkey_t *heap;
    size_t nheap, hcap;
    /* update mode: changed windows */
    wkey_t *dirty;
    size_t ndirty, dcap;
    eddy_buf_t enc;
    eddy_value_t *vals, *tmp, *outv;
    int64_t max_ts;
    int64_t fired_upto; /* hopping: smallest window start not yet closed */
    uint64_t fires;     /* fire_pane_windows() calls: memo epochs of panes */
    struct open_s *open; /* session: scratch for a key's open sessions */
    int *open_hit;
    eddy_aggctx_t *ax;   /* aggregates' scratch */
    /* sliding: starts of a key's windows around a record; per-record arena */
    int64_t *sv;
    size_t nsv, svcap;
    eddy_arena_t scratch;
} wstate_t;

static char *dupkey(const char *k, uint32_t n) {
    char *p = eddy_malloc(n ? n : 1);
    memcpy(p, k, n);
    return p;
}

static pane_t *pane_get(wstate_t *s, int64_t start, bool create) {
    size_t lo = 0, hi = s->npanes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->panes[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->npanes && s->panes[lo].start == start)
        return &s->panes[lo];
    if (!create)
        return NULL;
    if (s->npanes == s->pcap) {
        s->pcap = s->pcap ? s->pcap * 2 : 16;
        s->panes = eddy_realloc(s->panes, sizeof(*s->panes) * s->pcap);
    }
    memmove(&s->panes[lo + 1], &s->panes[lo], sizeof(*s->panes) * (s->npanes - lo));
    s->npanes++;
    memset(&s->panes[lo], 0, sizeof(s->panes[lo]));
    s->panes[lo].start = start;
    eddy_arena_init(&s->panes[lo].kmem, 16 * 1024);
    return &s->panes[lo];
}

static void pane_add_key(pane_t *p, const char *k, uint32_t kl) {
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->keys = eddy_realloc(p->keys, sizeof(*p->keys) * p->cap);
    }
    p->keys[p->n] = (pkey_t){.key = eddy_arena_strndup(&p->kmem, k, kl), .klen = kl};
    p->n++;
}

static void pane_drop_first(wstate_t *s) {
    pane_t *p = &s->panes[0];
    eddy_arena_free(&p->kmem);
    eddy_free(p->keys);
    memmove(&s->panes[0], &s->panes[1], sizeof(*s->panes) * (s->npanes - 1));
    s->npanes--;
}

/* Min-heaps of (due, start, key) keyed on .start (the due time). */
static void hpush(wkey_t **hp, size_t *n, size_t *cap, int64_t due, int64_t start,
                  const char *k, uint32_t kl) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *hp = eddy_realloc(*hp, sizeof(**hp) * *cap);
    }
    wkey_t *h = *hp;
    size_t i = (*n)++;
    wkey_t e = {.start = due, .start2 = start, .key = dupkey(k, kl), .klen = kl};
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].start <= e.start)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = e;
}

static wkey_t hpop(wkey_t *h, size_t *n) {
    wkey_t top = h[0];
    wkey_t last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t mv = last.start;
        if (l < *n && h[l].start < mv) {
            m = l;
            mv = h[l].start;
        }
        if (r < *n && h[r].start < mv)
            m = r;
        if (m == i)
            break;
        h[i] = h[m];
        i = m;
    }
    if (*n)
        h[i] = last;
    return top;
}

static void heap_push(wstate_t *s, int64_t end, int64_t start, const char *k, uint32_t kl) {
    hpush(&s->heap, &s->nheap, &s->hcap, end, start, k, kl);
}

static void mark_dirty(wstate_t *s, int64_t start, int64_t start2, const char *k, uint32_t kl) {
    if (s->ndirty == s->dcap) {
        s->dcap = s->dcap ? s->dcap * 2 : 64;
        s->dirty = eddy_realloc(s->dirty, sizeof(*s->dirty) * s->dcap);
    }
    s->dirty[s->ndirty++] = (wkey_t){.start = start, .start2 = start2, .key = dupkey(k, kl),
                                     .klen = kl};
}

/* Rebuild the fire index from the store (restart). */
static eddy_err_t rebuild(eddy_op_t *op) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_store_iter_t *it = eddy__store_iter(s->st, "", 0, NULL, 0);
    const char *k, *v;
    size_t kl, vl;
    eddy_store_kind_t kind = c->kind == W_SESSION ? EDDY_STORE_SESSION : EDDY_STORE_WINDOW;
    while (eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        const char *lk;
        size_t lkl;
        int64_t ts, ts2;
        if (!eddy__tkey_parse(kind, k, kl, &lk, &lkl, &ts, &ts2))
            continue;
        if (c->top) {
            eddy_value_t hdr[1];
            size_t used;
            if (eddy__row_decode_prefix(v, vl, 1, hdr, &used) || hdr[0].u.i) /* fired */
                continue;
        } else {
            if (eddy__row_decode(v, vl, nval(c), s->vals))
                continue;
            if (s->vals[nval(c) - 1].u.i) { /* fired: only its expiry is pending */
                if (c->kind == W_SESSION)
                    hpush(&s->xheap, &s->nxheap, &s->xhcap,
                          s->vals[c->a.nby + 1].u.i + c->grace + c->retention, ts, lk,
                          (uint32_t)lkl);
                continue;
            }
        }
        if (c->kind == W_SESSION)
            heap_push(s, s->vals[c->a.nby + 1].u.i, ts, lk, (uint32_t)lkl);
        else
            pane_add_key(pane_get(s, ts, true), lk, (uint32_t)lkl);
    }
    return eddy__store_iter_destroy(it);
}

static eddy_err_t winit(eddy_op_t *op, char *errstr, size_t en) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = eddy_calloc(1, sizeof(*s));
    op->state = s;
    s->st = eddy__task_store(op->task, c->store);
    s->rst = c->rstore >= 0 ? eddy__task_store(op->task, c->rstore) : NULL;
    s->ost = c->ostore >= 0 ? eddy__task_store(op->task, c->ostore) : NULL;
    s->pst = c->pstore >= 0 ? eddy__task_store(op->task, c->pstore) : NULL;
    eddy_arena_init(&s->scratch, 16384);
    if (s->ost) {
        s->open = eddy_malloc(sizeof(*s->open));
        s->open_hit = eddy_malloc(sizeof(int) * MAX_OPEN);
    }
    int nv = nval(c) > 8 ? nval(c) : 8;
    s->vals = eddy_calloc((size_t)nv, sizeof(eddy_value_t));
    s->tmp = eddy_calloc((size_t)nv, sizeof(eddy_value_t));
    s->outv = eddy_calloc((size_t)nv + (size_t)c->in_nfields + 2, sizeof(eddy_value_t));
    s->max_ts = INT64_MIN;
    s->ax = eddy__aggspec_ctx_new(&c->a);
    /* Every window closed at the (restored) watermark has fired. */
    int64_t wm = op->wm_ms;
    if (wm == INT64_MIN)
        s->fired_upto = INT64_MIN;
    else if (wm == INT64_MAX)
        s->fired_upto = INT64_MAX;
    else
        s->fired_upto = align(wm - c->grace - c->size, c->pane > 0 ? c->pane : 1) +
                        (c->pane > 0 ? c->pane : 1);
    if (!s->st || (c->pstore >= 0 && !s->pst))
        return eddy__cnode_err(op->node->where, errstr, en, "window: its store is not open");
    return rebuild(op);
}

static void free_keys(wkey_t *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        eddy_free(v[i].key);
}

static void wdestroy(eddy_op_t *op) {
    wstate_t *s = op->state;
    if (!s)
        return;
    while (s->npanes)
        pane_drop_first(s);
    eddy_free(s->panes);
    free_keys(s->heap, s->nheap);
    eddy_free(s->heap);
    free_keys(s->xheap, s->nxheap);
    eddy_free(s->xheap);
    eddy_free(s->open);
    eddy_free(s->open_hit);
    free_keys(s->dirty, s->ndirty);
    eddy_free(s->dirty);
    eddy_buf_free(&s->enc);
    eddy_free(s->vals);
    eddy_free(s->tmp);
    eddy_free(s->outv);
    eddy__aggspec_ctx_free(&((const wconf_t *)op->node->conf)->a, s->ax);
    eddy_free(s->sv);
    eddy_arena_free(&s->scratch);
    eddy_free(s);
}

/* --------------------------------------------------------- aggregation */

static void init_vals(const wconf_t *c, eddy_value_t *v, const eddy_value_t *row,
                      eddy_arena_t *a, int64_t start, int64_t end) {
    for (int k = 0; k < c->a.nby; k++)
        eddy__expr_eval(c->a.by[k], row, a, &v[k]);
    v[c->a.nby] = (eddy_value_t){.u.i = start, .type = EDDY_TYPE_TIMESTAMP};
    v[c->a.nby + 1] = (eddy_value_t){.u.i = end, .type = EDDY_TYPE_TIMESTAMP};
    for (int k = c->a.nby + 2; k < nval(c); k++)
        v[k] = (eddy_value_t){.type = EDDY_TYPE_NULL};
    v[nval(c) - 1] = (eddy_value_t){.u.i = 0, .type = EDDY_TYPE_BOOL};
}

/* Add record r to v; false when an aggregate refused it: the record is
 * then dead-lettered, and v must not be stored. */
static bool add_record(eddy_op_t *op, eddy_value_t *v, const eddy_rec_t *r, eddy_arena_t *a) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    char why[200];
    if (!eddy__aggspec_add(&c->a, s->ax, &v[c->a.nby + 2], r->vals, a, r->ts_ms, why,
                           sizeof(why)))
        return true;
    eddy__task_dead_letter(op->task, why, op->node->name, r->partition, r->offset, NULL, 0);
    return false;
}

static void merge_vals(const wconf_t *c, wstate_t *s, eddy_value_t *into,
                       const eddy_value_t *from) {
    eddy__aggspec_merge(&c->a, s->ax, &into[c->a.nby + 2], &from[c->a.nby + 2]);
}

/* A burst of results (many windows closing at once) goes downstream a
 * batch at a time. */
static void maybe_flush(eddy_op_t *op, eddy_batch_t *out) {
    if (out->n >= 1024)
        eddy__op_emit_flush(op, out);
}

/* Emit an aggregate output row from stored values v. */
static void emit_agg(const wconf_t *c, eddy_batch_t *out, const eddy_value_t *v,
                     const char *key, uint32_t klen) {
    eddy_arena_t *a = out->arena;
    int no = c->a.nby + 2 + c->a.nagg;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)no);
    results(c, v, o, a);
    for (int k = 0; k < no; k++)
        if ((o[k].type == EDDY_TYPE_STRING || o[k].type == EDDY_TYPE_BYTES) && o[k].len)
            o[k].u.s = eddy_arena_strndup(a, o[k].u.s, o[k].len);
    eddy_rec_t *r = eddy_batch_push(out);
    memset(r, 0, sizeof(*r));
    r->vals = o;
    r->ts_ms = v[c->a.nby + 1].u.i - 1;
    r->key = eddy_arena_strndup(a, key, klen);
    r->key_len = klen;
}

static eddy_err_t put_vals(wstate_t *s, const wconf_t *c, struct eddy_store_s *st,
                           const char *key, size_t klen, int64_t ts, int64_t ts2,
                           const eddy_value_t *v) {
    s->enc.len = 0;
    eddy__row_encode(&s->enc, nval(c), v);
    return eddy__store_tput(st, key, klen, ts, ts2, s->enc.p, s->enc.len);
}

/* -------------------------------------------------------------- top-n */

/* Stored: fired, start, end, k, then k rows of in_nfields. */
/* Rank of two order values: < 0 when x ranks before y. */
static int cmp_rank(const wconf_t *c, const eddy_value_t *x, const eddy_value_t *y) {
    if (x->type == EDDY_TYPE_NULL || y->type == EDDY_TYPE_NULL)
        return (x->type == EDDY_TYPE_NULL) - (y->type == EDDY_TYPE_NULL) ? 
               ((x->type == EDDY_TYPE_NULL) ? -1 : 1) : 0;
    double dx = x->type == EDDY_TYPE_DOUBLE ? x->u.d : (double)x->u.i;
    double dy = y->type == EDDY_TYPE_DOUBLE ? y->u.d : (double)y->u.i;
    int r = dx < dy ? -1 : dx > dy;
    if (x->type == EDDY_TYPE_STRING && y->type == EDDY_TYPE_STRING) {
        size_t n = x->len < y->len ? x->len : y->len;
        r = memcmp(x->u.s, y->u.s, n);
        if (!r)
            r = x->len < y->len ? -1 : x->len > y->len;
    }
    return c->desc ? -r : r; /* < 0: a ranks before b */
}

static int cmp_order(const wconf_t *c, const eddy_value_t *a, const eddy_value_t *b) {
    return cmp_rank(c, &a[c->order_field], &b[c->order_field]);
}

static eddy_err_t top_add(eddy_op_t *op, const eddy_rec_t *rec, int64_t start, int64_t end,
                          eddy_arena_t *a) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e;
    char pk[4300];
    size_t pkl = eddy__store_tkey(s->st, rec->key, rec->key_len, start, 0, pk, sizeof(pk));
    if (!pkl)
        return EDDY_ERR_INVAL;
    if ((e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found)))
        return e;
    int nf = c->in_nfields;
    int kcur = 0;
    eddy_value_t hdr[4];
    size_t used = 0;
    if (found) {
        if ((e = eddy__row_decode_prefix(v, vl, 4, hdr, &used)))
            return e;
        kcur = (int)hdr[3].u.i;
    }
    /* quick reject, reading only the order value of the last kept row:
     * full and worse than it */
    if (kcur >= c->top_n && kcur > 0) {
        size_t skip, one;
        eddy_value_t last;
        if ((e = eddy__row_skip(v + used, vl - used, nf * (kcur - 1) + c->order_field, &skip)) ||
            (e = eddy__row_decode_prefix(v + used + skip, vl - used - skip, 1, &last, &one)))
            return e;
        int r = cmp_rank(c, &rec->vals[c->order_field], &last);
        if (r > 0 || (r == 0 && !c->ties))
            return EDDY_OK;
    }
    /* rows: existing + new, then sort and cut */
    eddy_value_t *rows = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)nf * (size_t)(kcur + 1));
    if (kcur && (e = eddy__row_decode(v + used, vl - used, nf * kcur, rows)))
        return e;
    /* copy strings out of the cache buffer before it is rewritten */
    for (int i = 0; i < nf * kcur; i++)
        if ((rows[i].type == EDDY_TYPE_STRING || rows[i].type == EDDY_TYPE_BYTES) && rows[i].len)
            rows[i].u.s = eddy_arena_strndup(a, rows[i].u.s, rows[i].len);
    /* insert by rank (stable: equal rows keep arrival order) */
    int pos = kcur;
    while (pos > 0 && cmp_order(c, rec->vals, &rows[(size_t)(pos - 1) * (size_t)nf]) < 0)
        pos--;
    memmove(&rows[(size_t)(pos + 1) * (size_t)nf], &rows[(size_t)pos * (size_t)nf],
            sizeof(eddy_value_t) * (size_t)nf * (size_t)(kcur - pos));
    memcpy(&rows[(size_t)pos * (size_t)nf], rec->vals, sizeof(eddy_value_t) * (size_t)nf);
    int k = kcur + 1;
    /* keep n, plus ties of the n-th */
    if (k > c->top_n) {
        int keep = c->top_n;
        if (c->ties)
            while (keep < k && cmp_order(c, &rows[(size_t)keep * (size_t)nf],
                                         &rows[(size_t)(c->top_n - 1) * (size_t)nf]) == 0)
                keep++;
        k = keep;
    }
    s->enc.len = 0;
    eddy_value_t h[4] = {{.u.i = 0, .type = EDDY_TYPE_BOOL},
                         {.u.i = start, .type = EDDY_TYPE_TIMESTAMP},
                         {.u.i = end, .type = EDDY_TYPE_TIMESTAMP},
                         {.u.i = k, .type = EDDY_TYPE_INT}};
    eddy__row_encode(&s->enc, 4, h);
    eddy__row_encode(&s->enc, nf * k, rows);
    if ((e = eddy__store_put(s->st, pk, pkl, s->enc.p, s->enc.len)))
        return e;
    if (!found)
        pane_add_key(pane_get(s, start, true), rec->key, rec->key_len);
    return EDDY_OK;
}

static eddy_err_t top_fire(eddy_op_t *op, const char *key, uint32_t klen, int64_t start,
                           eddy_batch_t *out) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    char pk[4300];
    size_t pkl = eddy__store_tkey(s->st, key, klen, start, 0, pk, sizeof(pk));
    const char *v;
    size_t vl, used;
    bool found;
    eddy_err_t e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found);
    if (e || !found)
        return e;
    eddy_value_t hdr[4];
    if ((e = eddy__row_decode_prefix(v, vl, 4, hdr, &used)))
        return e;
    int nf = c->in_nfields, k = (int)hdr[3].u.i;
    eddy_arena_t *a = out->arena;
    eddy_value_t *rows = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)nf * (size_t)k + 1);
    if (k && (e = eddy__row_decode(v + used, vl - used, nf * k, rows)))
        return e;
    for (int i = 0; i < k; i++) {
        eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)(nf + 2));
        for (int f = 0; f < nf; f++) {
            o[f] = rows[(size_t)i * (size_t)nf + (size_t)f];
            if ((o[f].type == EDDY_TYPE_STRING || o[f].type == EDDY_TYPE_BYTES) && o[f].len)
                o[f].u.s = eddy_arena_strndup(a, o[f].u.s, o[f].len);
        }
        o[nf] = hdr[1];
        o[nf + 1] = hdr[2];
        eddy_rec_t *r = eddy_batch_push(out);
        memset(r, 0, sizeof(*r));
        r->vals = o;
        r->ts_ms = hdr[2].u.i - 1;
    }
    /* mark fired: keep for retention, never fire again */
    char *copy = eddy_arena_strndup(a, v, vl);
    copy[0] = EDDY_TYPE_BOOL; /* first value: the fired flag */
    copy[1] = 1;
    return eddy__store_put(s->st, pk, pkl, copy, vl);
}

/* ------------------------------------------------------------ process */

static eddy_err_t pane_update(eddy_op_t *op, const eddy_rec_t *r, int64_t ps, eddy_arena_t *a) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    char pk[4300];
    size_t pkl = eddy__store_tkey(s->st, r->key, r->key_len, ps, 0, pk, sizeof(pk));
    if (!pkl)
        return EDDY_ERR_INVAL;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found);
    if (e)
        return e;
    /* A stored pane keeps its by values, start and end: only the
     * accumulators and the fired flag after them are decoded and
     * rewritten; the bytes before them are copied as they are. */
    int fixed = c->a.nby + 2;
    size_t pre = 0;
    if (found) {
        if ((e = eddy__row_skip(v, vl, fixed, &pre)) ||
            (e = eddy__row_decode(v + pre, vl - pre, nval(c) - fixed, &s->vals[fixed])))
            return e;
    } else {
        init_vals(c, s->vals, r->vals, a, ps, ps + c->pane);
    }
    if (!add_record(op, s->vals, r, a))
        return EDDY_OK;
    s->enc.len = 0;
    if (found) {
        eddy_buf_put(&s->enc, v, pre); /* v is untouched until the put below */
        eddy__row_encode(&s->enc, nval(c) - fixed, &s->vals[fixed]);
    } else {
        eddy__row_encode(&s->enc, nval(c), s->vals);
    }
    if ((e = eddy__store_put(s->st, pk, pkl, s->enc.p, s->enc.len)))
        return e;
    if (!found)
        pane_add_key(pane_get(s, ps, true), r->key, r->key_len);
    if (c->update)
        mark_dirty(s, ps, 0, r->key, r->key_len);
    return EDDY_OK;
}

/* The key's open sessions: a list of (start, end) kept in the .open store. */



static eddy_err_t open_get(wstate_t *s, const char *k, uint32_t kl, open_t *o) {
    const char *v;
    size_t vl;
    bool found;
    o->n = 0;
    eddy_err_t e = eddy__store_get(s->ost, k, kl, &v, &vl, &found);
    if (e || !found)
        return e;
    if (vl % 16 || vl / 16 > MAX_OPEN)
        return EDDY_ERR_DECODE;
    o->n = (int)(vl / 16);
    for (int i = 0; i < o->n; i++) {
        memcpy(&o->start[i], v + 16 * (size_t)i, 8);
        memcpy(&o->end[i], v + 16 * (size_t)i + 8, 8);
    }
    return EDDY_OK;
}

static eddy_err_t open_put(wstate_t *s, const char *k, uint32_t kl, const open_t *o) {
    if (!o->n)
        return eddy__store_del(s->ost, k, kl);
    s->enc.len = 0;
    for (int i = 0; i < o->n; i++) {
        eddy_buf_put(&s->enc, &o->start[i], 8);
        eddy_buf_put(&s->enc, &o->end[i], 8);
    }
    return eddy__store_put(s->ost, k, kl, s->enc.p, s->enc.len);
}

/* Get session (k, start) into vals; strings copied into a. */
static eddy_err_t session_get(const wconf_t *c, wstate_t *s, const char *k, uint32_t kl,
                              int64_t start, eddy_value_t *vals, eddy_arena_t *a, bool *found) {
    char pk[4300];
    size_t pkl = eddy__store_tkey(s->st, k, kl, start, 0, pk, sizeof(pk));
    const char *v;
    size_t vl;
    eddy_err_t e = eddy__store_get(s->st, pk, pkl, &v, &vl, found);
    if (e || !*found)
        return e;
    if ((e = eddy__row_decode(v, vl, nval(c), vals)))
        return e;
    for (int i = 0; i < nval(c); i++)
        if ((vals[i].type == EDDY_TYPE_STRING || vals[i].type == EDDY_TYPE_BYTES) && vals[i].len)
            vals[i].u.s = eddy_arena_strndup(a, vals[i].u.s, vals[i].len);
    return EDDY_OK;
}

static eddy_err_t session_update(eddy_op_t *op, const eddy_rec_t *r, eddy_arena_t *a,
                                 bool *late) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    int64_t t = r->ts_ms;
    open_t *o = s->open;
    eddy_err_t e = open_get(s, r->key, r->key_len, o);
    if (e)
        return e;
    /* [t, t+gap) intersects [start, end) when start <= t+gap and end >= t */
    int64_t ms = t, me = t + c->gap;
    int *hit = s->open_hit, nh = 0;
    for (int i = 0; i < o->n; i++) {
        if (o->start[i] <= t + c->gap && o->end[i] >= t) {
            hit[nh++] = i;
            if (o->start[i] < ms)
                ms = o->start[i];
            if (o->end[i] > me)
                me = o->end[i];
        }
    }
    *late = closed(c, me, op->wm_ms);
    if (*late)
        return EDDY_OK;
    bool have = false, found;
    for (int h = 0; h < nh; h++) {
        int i = hit[h];
        if ((e = session_get(c, s, r->key, r->key_len, o->start[i], have ? s->tmp : s->vals, a,
                             &found)))
            return e;
        if (!found)
            continue;
        if (have)
            merge_vals(c, s, s->vals, s->tmp);
        have = true;
    }
    if (!have)
        init_vals(c, s->vals, r->vals, a, ms, me);
    s->vals[c->a.nby] = (eddy_value_t){.u.i = ms, .type = EDDY_TYPE_TIMESTAMP};
    s->vals[c->a.nby + 1] = (eddy_value_t){.u.i = me, .type = EDDY_TYPE_TIMESTAMP};
    /* a refused record changes nothing: not even which sessions merge */
    if (!add_record(op, s->vals, r, a))
        return EDDY_OK;
    for (int h = 0; h < nh; h++)
        if (o->start[hit[h]] != ms &&
            (e = eddy__store_tdel(s->st, r->key, r->key_len, o->start[hit[h]], 0)))
            return e;
    if ((e = put_vals(s, c, s->st, r->key, r->key_len, ms, 0, s->vals)))
        return e;
    /* the list: drop the merged ones, keep (ms, me) */
    bool existed = false;
    int k = 0;
    for (int i = 0; i < o->n; i++) {
        bool merged = false;
        for (int h = 0; h < nh; h++)
            merged |= hit[h] == i;
        if (merged && o->start[i] == ms)
            existed = true;
        if (!merged) {
            o->start[k] = o->start[i];
            o->end[k] = o->end[i];
            k++;
        }
    }
    if (k >= MAX_OPEN)
        return EDDY_ERR_INVAL;
    o->start[k] = ms;
    o->end[k] = me;
    o->n = k + 1;
    if ((e = open_put(s, r->key, r->key_len, o)))
        return e;
    /* one fire entry per session start; a grown end is re-checked when the
     * entry comes due */
    if (!existed)
        heap_push(s, me, ms, r->key, r->key_len);
    if (c->update)
        mark_dirty(s, ms, 0, r->key, r->key_len);
    return EDDY_OK;
}


/* ------------------------------------------------------------ sliding */

/*
 * Sliding windows, as Kafka Streams' SlidingWindows (docs/windows.md).
 * With d the configured size, a key's windows are [s, s+d], both ends
 * inclusive (output window_end = s+d+1): for each event time t of the
 * key's records, the window ending at t, [t-d, t] ("left"), and, when a
 * record lies in it, the window starting just after t, [t+1, t+1+d]
 * ("right"). The set of windows is a function of the set of event times,
 * so only a record with an event time new to its key can create windows:
 * its left window, its right window, and the right window of the key's
 * previous event time p (t is the first record after p when that window
 * did not exist yet). A window is created only while it is open.
 *
 * Kafka Streams derives a new window's aggregate from neighbouring
 * windows, which needs every window to exist; here a window can be
 * missing (it closed before the record that creates it arrived), so the
 * key's accepted records are kept aggregated per event time in the points
 * store, and a new window merges the points in its range: every accepted
 * record there, in whatever order it came. Existing open windows that hold
 * the record are updated in place, so the final result does not depend on
 * arrival order as long as no window closed in between.
 */

static eddy_err_t collect_start(void *opaque, int64_t ts, int64_t ts2, const char *v, size_t vl) {
    (void)ts2;
    (void)v;
    (void)vl;
    wstate_t *s = opaque;
    if (s->nsv == s->svcap) {
        s->svcap = s->svcap ? s->svcap * 2 : 64;
        s->sv = eddy_realloc(s->sv, sizeof(*s->sv) * s->svcap);
    }
    s->sv[s->nsv++] = ts;
    return EDDY_OK;
}

/* Did the window starting at ws exist before this record (s->sv, sorted)? */
static bool had_window(const wstate_t *s, int64_t ws) {
    size_t lo = 0, hi = s->nsv;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->sv[mid] < ws)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nsv && s->sv[lo] == ws;
}

/* A scan of a key's points around a new event time t: the merged content
 * of the windows t can create. */
typedef struct {
    const wconf_t *c;
    wstate_t *s;
    eddy_arena_t *a;
    int64_t t;
    int64_t p;          /* previous event time of the key, INT64_MIN if none near */
    eddy_value_t *pt;   /* the point being read */
    eddy_value_t *left, *right, *prev; /* [t-d, t], [t+1, t+1+d], [p+1, p+1+d] */
    bool hl, hr, hp;
} pscan_t;

static void acc_merge(const wconf_t *c, wstate_t *s, eddy_value_t *acc, bool *have,
                      const eddy_value_t *pt) {
    if (!*have)
        memcpy(acc, pt, sizeof(eddy_value_t) * (size_t)nval(c));
    else
        merge_vals(c, s, acc, pt);
    *have = true;
}

/* Points come in event-time order. */
static eddy_err_t scan_point(void *opaque, int64_t ts, int64_t ts2, const char *v, size_t vl) {
    (void)ts2;
    pscan_t *sc = opaque;
    const wconf_t *c = sc->c;
    eddy_err_t e = eddy__row_decode(v, vl, nval(c), sc->pt);
    if (e)
        return e;
    for (int i = 0; i < nval(c); i++)
        if ((sc->pt[i].type == EDDY_TYPE_STRING || sc->pt[i].type == EDDY_TYPE_BYTES) &&
            sc->pt[i].len)
            sc->pt[i].u.s = eddy_arena_strndup(sc->a, sc->pt[i].u.s, sc->pt[i].len);
    if (ts < sc->t)
        sc->p = ts;
    if (ts >= sc->t - c->diff && ts <= sc->t)
        acc_merge(c, sc->s, sc->left, &sc->hl, sc->pt);
    if (ts > sc->t)
        acc_merge(c, sc->s, sc->right, &sc->hr, sc->pt);
    /* (p, t) holds no point: p's right window is t's point and what
     * follows it up to p+1+d */
    if (ts >= sc->t && sc->p != INT64_MIN && ts <= sc->p + 1 + c->diff)
        acc_merge(c, sc->s, sc->prev, &sc->hp, sc->pt);
    return EDDY_OK;
}

static eddy_err_t sliding_create(eddy_op_t *op, const eddy_rec_t *r, int64_t ws,
                                 eddy_value_t *acc) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    acc[c->a.nby] = (eddy_value_t){.u.i = ws, .type = EDDY_TYPE_TIMESTAMP};
    acc[c->a.nby + 1] = (eddy_value_t){.u.i = ws + c->size, .type = EDDY_TYPE_TIMESTAMP};
    acc[nval(c) - 1] = (eddy_value_t){.u.i = 0, .type = EDDY_TYPE_BOOL};
    eddy_err_t e = put_vals(s, c, s->st, r->key, r->key_len, ws, 0, acc);
    if (e)
        return e;
    pane_add_key(pane_get(s, ws, true), r->key, r->key_len);
    if (c->update)
        mark_dirty(s, ws, 0, r->key, r->key_len);
    return EDDY_OK;
}

/* Add r to the stored entry (key, ts) of st; init it as [ts, ts+span)
 * when absent (*found tells which). */
static eddy_err_t sliding_add(eddy_op_t *op, struct eddy_store_s *st, const eddy_rec_t *r,
                              int64_t ts, int64_t span, bool *found) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    char pk[4300];
    size_t pkl = eddy__store_tkey(st, r->key, r->key_len, ts, 0, pk, sizeof(pk));
    if (!pkl)
        return EDDY_ERR_INVAL;
    const char *v;
    size_t vl;
    eddy_err_t e = eddy__store_get(st, pk, pkl, &v, &vl, found);
    if (e)
        return e;
    if (*found) {
        if ((e = eddy__row_decode(v, vl, nval(c), s->vals)))
            return e;
    } else {
        init_vals(c, s->vals, r->vals, &s->scratch, ts, ts + span);
    }
    if (!add_record(op, s->vals, r, &s->scratch))
        return EDDY_ERR_DECODE; /* refused (dead-lettered): not stored */
    s->enc.len = 0;
    eddy__row_encode(&s->enc, nval(c), s->vals);
    return eddy__store_put(st, pk, pkl, s->enc.p, s->enc.len);
}

static eddy_err_t sliding_update(eddy_op_t *op, const eddy_rec_t *r) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_arena_reset(&s->scratch);
    int64_t t = r->ts_ms, d = c->diff, wm = op->wm_ms;
    /* the key's windows that can hold t, and t's right window */
    s->nsv = 0;
    eddy_err_t e = eddy__store_fetch(s->st, r->key, r->key_len, t - d, t + 1, collect_start, s);
    if (e)
        return e;
    bool seen;
    if ((e = sliding_add(op, s->pst, r, t, 1, &seen)))
        return e == EDDY_ERR_DECODE ? EDDY_OK : e; /* refused: the record is dead-lettered */
    if (!seen) {
        int nv = nval(c);
        pscan_t sc = {.c = c, .s = s, .a = &s->scratch, .t = t, .p = INT64_MIN};
        eddy_value_t *buf = eddy_arena_alloc(&s->scratch, sizeof(eddy_value_t) * 4 * (size_t)nv);
        sc.pt = buf;
        sc.left = buf + nv;
        sc.right = buf + 2 * nv;
        sc.prev = buf + 3 * nv;
        if ((e = eddy__store_fetch(s->pst, r->key, r->key_len, t - d - 1, t + d + 1, scan_point,
                                   &sc)))
            return e;
        if (!sc.hl) /* t's own point was just written */
            return EDDY_ERR_INVAL;
        if (!had_window(s, t - d) && !closed(c, t - d + c->size, wm) &&
            (e = sliding_create(op, r, t - d, sc.left)))
            return e;
        /* p = t-d-1: p's right window is t's left window (made above) */
        if (sc.p != INT64_MIN && sc.p + 1 > t - d && sc.hp && !had_window(s, sc.p + 1) &&
            !closed(c, sc.p + 1 + c->size, wm) && (e = sliding_create(op, r, sc.p + 1, sc.prev)))
            return e;
        if (sc.hr && !had_window(s, t + 1) && !closed(c, t + 1 + c->size, wm) &&
            (e = sliding_create(op, r, t + 1, sc.right)))
            return e;
    }
    /* every window that existed and holds t, while open */
    for (size_t i = 0; i < s->nsv; i++) {
        int64_t ws = s->sv[i];
        if (ws > t || closed(c, ws + c->size, wm))
            continue;
        bool found;
        /* a window an aggregate refuses the record for keeps its value (the
         * record was dead-lettered; its point is kept for new windows) */
        if ((e = sliding_add(op, s->st, r, ws, c->size, &found)) == EDDY_ERR_DECODE)
            continue;
        if (e)
            return e;
        if (!found)
            return EDDY_ERR_INVAL; /* listed a moment ago */
        if (c->update)
            mark_dirty(s, ws, 0, r->key, r->key_len);
    }
    return EDDY_OK;
}

static eddy_err_t wprocess(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_arena_t *a = out->arena;
    int64_t wm = op->wm_ms;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        int64_t t = r->ts_ms;
        if (t > s->max_ts)
            s->max_ts = t;
        eddy_err_t e;
        if (c->kind == W_SESSION) {
            bool late = false;
            if ((e = session_update(op, r, a, &late)))
                return e;
            if (late)
                eddy__task_late(op->task, op->node, in->schema, r);
            continue;
        }
        if (c->kind == W_SLIDING) {
            /* [t, t+size], the newest window that can hold it, is closed */
            if (closed(c, t + c->size, wm))
                eddy__task_late(op->task, op->node, in->schema, r);
            else if ((e = sliding_update(op, r)))
                return e;
            continue;
        }
        int64_t ps = align(t, c->pane);
        /* the newest window holding this pane starts at ps */
        if (closed(c, ps + c->size, wm)) {
            eddy__task_late(op->task, op->node, in->schema, r);
            continue;
        }
        if (c->top)
            e = top_add(op, r, ps, ps + c->size, a);
        else
            e = pane_update(op, r, ps, a);
        if (e)
            return e;
    }
    return EDDY_OK;
}

/* ---------------------------------------------------------- firing */

/* Merge the panes of window [ws, ws+size) for one key into s->vals.
 * Returns false when the key has no pane there. */
static eddy_err_t window_result(eddy_op_t *op, const char *key, uint32_t klen, int64_t ws,
                                eddy_arena_t *a, bool *have) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    *have = false;
    for (int64_t p = ws; p < ws + c->size; p += c->pane) {
        char pk[4300];
        size_t pkl = eddy__store_tkey(s->st, key, klen, p, 0, pk, sizeof(pk));
        const char *v;
        size_t vl;
        bool found;
        eddy_err_t e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found);
        if (e)
            return e;
        if (!found)
            continue;
        if ((e = eddy__row_decode(v, vl, nval(c), s->tmp)))
            return e;
        for (int i = 0; i < nval(c); i++)
            if ((s->tmp[i].type == EDDY_TYPE_STRING || s->tmp[i].type == EDDY_TYPE_BYTES) &&
                s->tmp[i].len)
                s->tmp[i].u.s = eddy_arena_strndup(a, s->tmp[i].u.s, s->tmp[i].len);
        if (!*have) {
            memcpy(s->vals, s->tmp, sizeof(eddy_value_t) * (size_t)nval(c));
            *have = true;
        } else {
            merge_vals(c, s, s->vals, s->tmp);
        }
    }
    if (*have) {
        s->vals[c->a.nby] = (eddy_value_t){.u.i = ws, .type = EDDY_TYPE_TIMESTAMP};
        s->vals[c->a.nby + 1] = (eddy_value_t){.u.i = ws + c->size, .type = EDDY_TYPE_TIMESTAMP};
        s->vals[nval(c) - 1] = (eddy_value_t){.u.i = 0, .type = EDDY_TYPE_BOOL};
    }
    return EDDY_OK;
}

static int cmp_wkey(const void *x, const void *y);
static int cmp_wkey_start(const void *x, const void *y) {
    const wkey_t *a = x, *b = y;
    int r = cmp_wkey(a, b);
    if (r)
        return r;
    if (a->start != b->start)
        return a->start < b->start ? -1 : 1;
    return a->start2 < b->start2 ? -1 : a->start2 > b->start2;
}

static int cmp_keys(const char *a, uint32_t al, const char *b, uint32_t bl) {
    int r = memcmp(a, b, al < bl ? al : bl);
    return r ? r : (al < bl ? -1 : al > bl);
}

static int cmp_wkey(const void *x, const void *y) {
    const wkey_t *a = x, *b = y;
    return cmp_keys(a->key, a->klen, b->key, b->klen);
}

static int cmp_pkey(const void *x, const void *y) {
    const pkey_t *a = x, *b = y;
    return cmp_keys(a->key, a->klen, b->key, b->klen);
}

/* Sort a pane's keys (hopping windows merge panes by key when they fire).
 * Keys added since the last sort are sorted on their own and merged in,
 * so a pane that several windows fire over is sorted about once. */
static void pane_sort(pane_t *p) {
    if (p->nsorted == p->n)
        return;
    pkey_t *tail = &p->keys[p->nsorted];
    size_t nt = p->n - p->nsorted;
    qsort(tail, nt, sizeof(*tail), cmp_pkey);
    if (p->nsorted) {
        pkey_t *t = eddy_malloc(sizeof(*t) * nt);
        memcpy(t, tail, sizeof(*t) * nt);
        /* merge from the back: keys[0, nsorted) and t into keys[0, n) */
        size_t i = p->nsorted, j = nt, o = p->n;
        while (j > 0) {
            if (i > 0 && cmp_pkey(&p->keys[i - 1], &t[j - 1]) > 0)
                p->keys[--o] = p->keys[--i];
            else
                p->keys[--o] = t[--j];
        }
        eddy_free(t);
    }
    p->nsorted = p->n;
}

/* The stored value of key k of pane p, looked up once per
 * fire_pane_windows() call however many windows read it: the store keeps
 * a value where it is until that key is written, or the store commits or
 * expires, none of which happens while windows fire. *v NULL: none. */
static eddy_err_t pane_value(wstate_t *s, pane_t *p, pkey_t *k, const char **v, size_t *vl) {
    if (p->memo != s->fires) {
        for (size_t i = 0; i < p->n; i++)
            p->keys[i].vlen = PKEY_UNKNOWN;
        p->memo = s->fires;
    }
    if (k->vlen == PKEY_UNKNOWN) {
        char pk[4300];
        size_t pkl = eddy__store_tkey(s->st, k->key, k->klen, p->start, 0, pk, sizeof(pk));
        bool found;
        eddy_err_t e = eddy__store_get(s->st, pk, pkl, v, vl, &found);
        if (e)
            return e;
        k->v = found ? *v : NULL;
        k->vlen = found ? (uint32_t)*vl : 0;
    }
    *v = k->v;
    *vl = k->vlen;
    return EDDY_OK;
}

/* Cursor of the k-way merge of fire_hopping(): the next key of one pane. */
typedef struct {
    pane_t *p;
    size_t i;
} pcur_t;

/* Heap order: key, then pane start, so a key's panes come oldest first. */
static bool pcur_less(const pcur_t *a, const pcur_t *b) {
    int r = cmp_pkey(&a->p->keys[a->i], &b->p->keys[b->i]);
    return r < 0 || (r == 0 && a->p->start < b->p->start);
}

static void pcur_sift(pcur_t *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && pcur_less(&h[l], &h[m]))
            m = l;
        if (r < n && pcur_less(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        pcur_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* Emit window [ws, ws+size): for each key with panes in it (from the
 * index, so only panes that exist are read), merge them. Keys go out in
 * key order: a merge of the panes' sorted key lists. Each pane's values
 * are looked up once however many windows fire over it now. */
static eddy_err_t fire_hopping(eddy_op_t *op, int64_t ws, eddy_batch_t *out, bool final) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    size_t k = 0;
    for (size_t i = 0; i < s->npanes; i++)
        if (s->panes[i].start >= ws && s->panes[i].start < ws + c->size && s->panes[i].n)
            k++;
    if (!k)
        return EDDY_OK;
    pcur_t *h = eddy_malloc(sizeof(*h) * k);
    size_t nh = 0;
    for (size_t i = 0; i < s->npanes; i++) {
        pane_t *p = &s->panes[i];
        if (p->start >= ws && p->start < ws + c->size && p->n) {
            pane_sort(p);
            h[nh++] = (pcur_t){.p = p, .i = 0};
        }
    }
    for (size_t i = nh / 2; i-- > 0;)
        pcur_sift(h, nh, i);
    eddy_err_t e = EDDY_OK;
    eddy_arena_t *a = out->arena;
    while (nh && !e) {
        const pkey_t *key = &h[0].p->keys[h[0].i]; /* stays valid: panes are not changed here */
        bool have = false;
        while (nh && !cmp_pkey(&h[0].p->keys[h[0].i], key)) {
            pane_t *p = h[0].p;
            pkey_t *pk = &p->keys[h[0].i];
            if (++h[0].i == p->n)
                h[0] = h[--nh];
            pcur_sift(h, nh, 0);
            const char *v;
            size_t vl;
            if ((e = pane_value(s, p, pk, &v, &vl)))
                break;
            if (!v)
                continue;
            eddy_value_t *d = have ? s->tmp : s->vals;
            if ((e = eddy__row_decode(v, vl, nval(c), d)))
                break;
            for (int f = 0; f < nval(c); f++)
                if ((d[f].type == EDDY_TYPE_STRING || d[f].type == EDDY_TYPE_BYTES) && d[f].len)
                    d[f].u.s = eddy_arena_strndup(a, d[f].u.s, d[f].len);
            if (have)
                merge_vals(c, s, s->vals, s->tmp);
            have = true;
        }
        if (!e && have) {
            s->vals[c->a.nby] = (eddy_value_t){.u.i = ws, .type = EDDY_TYPE_TIMESTAMP};
            s->vals[c->a.nby + 1] = (eddy_value_t){.u.i = ws + c->size,
                                                 .type = EDDY_TYPE_TIMESTAMP};
            s->vals[nval(c) - 1] = (eddy_value_t){.u.i = final, .type = EDDY_TYPE_BOOL};
            emit_agg(c, out, s->vals, key->key, key->klen);
            if (s->rst)
                e = put_vals(s, c, s->rst, key->key, key->klen, ws, 0, s->vals);
            maybe_flush(op, out);
        }
    }
    eddy_free(h);
    return e;
}

static eddy_err_t fire_pane_windows(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_err_t e;
    s->fires++; /* pane value memos of an earlier call are stale */
    while (s->npanes) {
        pane_t *p = &s->panes[0];
        if (c->kind != W_HOPPING) { /* tumbling, sliding: one entry per window */
            if (!closed(c, p->start + c->size, wm))
                break;
            for (size_t i = 0; i < p->n; i++) {
                if (c->top) {
                    if ((e = top_fire(op, p->keys[i].key, p->keys[i].klen, p->start, out)))
                        return e;
                    maybe_flush(op, out);
                    continue;
                }
                bool have;
                if ((e = window_result(op, p->keys[i].key, p->keys[i].klen, p->start, out->arena,
                                       &have)))
                    return e;
                if (!have)
                    continue;
                s->vals[nval(c) - 1].u.i = 1; /* fired: kept for queries until retention */
                if (!c->update)
                    emit_agg(c, out, s->vals, p->keys[i].key, p->keys[i].klen);
                if ((e = put_vals(s, c, s->st, p->keys[i].key, p->keys[i].klen, p->start, 0,
                                  s->vals)))
                    return e;
                maybe_flush(op, out);
            }
            pane_drop_first(s);
            continue;
        }
        /* hopping: close, oldest first, the windows holding the oldest
         * pane; once its newest window (starting at the pane) is closed
         * the pane is no longer needed */
        int64_t ws = p->start - c->size + c->pane;
        if (s->fired_upto > ws)
            ws = s->fired_upto;
        for (; ws <= p->start && closed(c, ws + c->size, wm); ws += c->pane) {
            if (!c->update && (e = fire_hopping(op, ws, out, true)))
                return e;
            s->fired_upto = ws + c->pane;
        }
        if (s->fired_upto <= p->start)
            break;
        /* no longer needed: its entries go with their segment (retention),
         * as one delete-range, instead of one delete each */
        pane_drop_first(s);
    }
    if (c->kind == W_HOPPING && wm != INT64_MIN) {
        /* Every window closed at wm that holds a pane has fired above; the
         * closed ones without panes count as fired too, so a pane that
         * arrives later never reopens them. */
        int64_t first_open = wm == INT64_MAX ? INT64_MAX
                                             : align(wm - c->grace - c->size, c->pane) + c->pane;
        if (first_open > s->fired_upto)
            s->fired_upto = first_open;
    }
    return EDDY_OK;
}

static eddy_err_t fire_sessions(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_err_t e = EDDY_OK;
    open_t *o = s->open;
    while (s->nheap && closed(c, s->heap[0].start, wm) && !e) {
        wkey_t k = hpop(s->heap, &s->nheap);
        if ((e = open_get(s, k.key, k.klen, o)))
            break;
        int i = 0;
        while (i < o->n && o->start[i] != k.start2)
            i++;
        if (i == o->n) { /* merged into another session, or fired */
            eddy_free(k.key);
            continue;
        }
        if (o->end[i] != k.start) { /* it grew: its turn comes at its new end */
            heap_push(s, o->end[i], o->start[i], k.key, k.klen);
            eddy_free(k.key);
            continue;
        }
        bool found;
        e = session_get(c, s, k.key, k.klen, k.start2, s->vals, out->arena, &found);
        if (!e && found) {
            s->vals[nval(c) - 1].u.i = 1;
            if (!c->update)
                emit_agg(c, out, s->vals, k.key, k.klen);
            maybe_flush(op, out);
            if (c->retention > 0) {
                e = put_vals(s, c, s->st, k.key, k.klen, k.start2, 0, s->vals);
                hpush(&s->xheap, &s->nxheap, &s->xhcap, o->end[i] + c->grace + c->retention,
                      k.start2, k.key, k.klen);
            } else {
                e = eddy__store_tdel(s->st, k.key, k.klen, k.start2, 0);
            }
        }
        o->start[i] = o->start[o->n - 1];
        o->end[i] = o->end[o->n - 1];
        o->n--;
        if (!e)
            e = open_put(s, k.key, k.klen, o);
        eddy_free(k.key);
    }
    /* closed sessions past their retention */
    int64_t now = wm < s->max_ts ? wm : s->max_ts;
    while (!e && s->nxheap && now != INT64_MIN && s->xheap[0].start <= now) {
        wkey_t k = hpop(s->xheap, &s->nxheap);
        e = eddy__store_tdel(s->st, k.key, k.klen, k.start2, 0);
        eddy_free(k.key);
    }
    return e;
}

/* Update mode: emit every window changed since the last flush, once; with
 * closing_wm set, only those that close at that watermark (they must go
 * out before their state is released), keeping the rest for the commit. */
static eddy_err_t flush_dirty(eddy_op_t *op, eddy_batch_t *out, int64_t closing_wm);

static eddy_err_t wflush_emit(eddy_op_t *op, eddy_batch_t *out) {
    return flush_dirty(op, out, INT64_MIN);
}

/* The window a dirty entry or (key, ws) pair stands for closes at wm. */
static bool dirty_closing(const wconf_t *c, wstate_t *s, const wkey_t *w, int64_t wm) {
    if (c->kind == W_SESSION) {
        open_t *o = s->open;
        if (open_get(s, w->key, w->klen, o))
            return true;
        for (int i = 0; i < o->n; i++)
            if (o->start[i] == w->start)
                return closed(c, o->end[i], wm);
        return true; /* gone: emit what is left (flush skips it) */
    }
    return closed(c, w->start + c->size, wm);
}

static eddy_err_t flush_dirty(eddy_op_t *op, eddy_batch_t *out, int64_t closing_wm) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    if (!c->update || !s->ndirty)
        return EDDY_OK;
    /* (key, window start) pairs, deduplicated */
    size_t cap = s->ndirty * (c->kind == W_HOPPING ? (size_t)(c->size / c->pane) : 1);
    wkey_t *w = eddy_malloc(sizeof(*w) * (cap ? cap : 1));
    size_t n = 0;
    /* entries fully emitted now: their keys are freed after the emission */
    wkey_t *done = eddy_malloc(sizeof(*done) * s->ndirty);
    size_t ndone = 0, keep = 0;
    for (size_t i = 0; i < s->ndirty; i++) {
        wkey_t d0 = s->dirty[i];
        wkey_t *d = &d0;
        bool all = true; /* every window of d is emitted now */
        if (c->kind == W_HOPPING) {
            for (int64_t ws = d->start - c->size + c->pane; ws <= d->start; ws += c->pane) {
                if (ws < s->fired_upto)
                    continue;
                wkey_t pw = {.start = ws, .key = d->key, .klen = d->klen};
                if (closing_wm != INT64_MIN && !dirty_closing(c, s, &pw, closing_wm)) {
                    all = false;
                    continue;
                }
                w[n++] = pw;
            }
        } else if (closing_wm == INT64_MIN || dirty_closing(c, s, d, closing_wm)) {
            w[n++] = *d;
        } else {
            all = false;
        }
        if (!all)
            s->dirty[keep++] = d0; /* still dirty: the list keeps owning its key */
        else
            done[ndone++] = d0;
    }
    qsort(w, n, sizeof(*w), cmp_wkey_start);
    eddy_err_t e = EDDY_OK;
    for (size_t i = 0; i < n && !e; i++) {
        if (i && !cmp_wkey_start(&w[i], &w[i - 1]))
            continue;
        bool have = false;
        if (c->kind == W_SESSION) {
            bool found;
            e = session_get(c, s, w[i].key, w[i].klen, w[i].start, s->vals, out->arena, &found);
            have = !e && found && !s->vals[nval(c) - 1].u.i; /* merged away or fired: skip */
        } else {
            e = window_result(op, w[i].key, w[i].klen, w[i].start, out->arena, &have);
        }
        if (e || !have)
            continue;
        emit_agg(c, out, s->vals, w[i].key, w[i].klen);
        if (s->rst)
            e = put_vals(s, c, s->rst, w[i].key, w[i].klen, w[i].start, 0, s->vals);
        maybe_flush(op, out);
    }
    eddy_free(w);
    free_keys(done, ndone);
    eddy_free(done);
    s->ndirty = keep;
    return e;
}

static eddy_err_t won_watermark(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const wconf_t *c = op->node->conf;
    wstate_t *s = op->state;
    eddy_err_t e;
    /* update mode: what changed goes out before its window closes */
    bool closing = (c->kind == W_SESSION && s->nheap && closed(c, s->heap[0].start, wm)) ||
                   (c->kind != W_SESSION && s->npanes &&
                    closed(c, s->panes[0].start + c->pane, wm));
    if (c->update && closing && (e = flush_dirty(op, out, wm)))
        return e;
    e = c->kind == W_SESSION ? fire_sessions(op, wm, out) : fire_pane_windows(op, wm, out);
    if (e)
        return e;
    /* retention runs on event time seen, so a bounded input's final +inf
     * watermark does not wipe results that should stay queryable */
    int64_t now = wm < s->max_ts ? wm : s->max_ts;
    if (now != INT64_MIN) {
        if ((e = eddy__store_expire(s->st, now)))
            return e;
        if (s->rst && (e = eddy__store_expire(s->rst, now)))
            return e;
        if (s->pst && (e = eddy__store_expire(s->pst, now)))
            return e;
    }
    return EDDY_OK;
}

/* Results depend on the by fields and aggregate arguments only; top
 * windows keep whole rows. */
static bool winput_fields(const eddy_node_t *n, bool *used) {
    const wconf_t *c = n->conf;
    if (c->top)
        return false;
    eddy__aggspec_input_fields(&c->a, used);
    return true;
}

/* The late rules of wprocess()/session_update(): a record is late when the
 * newest window that could hold it is closed; for a session that window
 * ends at t + gap or later (merging only extends it). */
static bool wmay_be_late(const eddy_node_t *n, int64_t t, int64_t wm) {
    const wconf_t *c = n->conf;
    if (c->kind == W_SESSION)
        return closed(c, t + c->gap, wm);
    if (c->kind == W_SLIDING)
        return closed(c, t + c->size, wm);
    return closed(c, align(t, c->pane) + c->size, wm);
}

const eddy_op_ops_t eddy__op_window = {
    .abi = EDDY_OP_ABI,
    .name = "window",
    .compile = wcompile,
    .free_conf = wfree,
    .init = winit,
    .process = wprocess,
    .on_watermark = won_watermark,
    .destroy = wdestroy,
    .flush_emit = wflush_emit,
    .exchange_key = window_exchange_key,
    .input_fields = winput_fields,
    .may_be_late = wmay_be_late,
};
