/*
 * Dedup: keep the first (or the last) record per key within a horizon of
 * event time.
 *
 *   - dedup:
 *       key: [auction, bidder]   # expression or list; routes by key first
 *       within: 10s              # the horizon H (event time)
 *       keep: first              # or last
 *       store: bids_seen         # state store name (default: <pipeline>_dedup)
 *
 * Definition. Per key, some records are *kept*; a record is a duplicate
 * when its key has a kept record less than H away in event time (either
 * side: |t - k| < H), else it is kept. Kept records of a key are thus at
 * least H apart. With keep: first the kept records are the output, as
 * they arrive. With keep: last a kept record k opens the horizon of its
 * group: the duplicates it claims (the kept record at or before t within
 * H, else the one after t within H: at most one of each exists) join its
 * group, and when the watermark reaches k + H the group's last record (the
 * largest event time; on a tie the later arrival) is emitted, with its own
 * event time. Records whose event time is below the watermark are late:
 * sent to the late output and counted, they change nothing. Without
 * disorder (or with disorder below H) "the last kept record" is simply
 * the record that opened the current horizon.
 *
 * State. A window store (state/store.h) with segments of width H: the
 * kept record k of a key lives at [segment][key][B], B = k rounded down to
 * a multiple of H, so one bucket holds at most one kept record and a
 * record t needs the buckets of t, t - H and (only when a kept record can
 * be later than t) t + H: point reads of the write cache, no scans. An
 * entry is useless once the watermark passes B + 2H (no record that is
 * not late can be within H of it); the store's retention (H, segments of
 * H) drops whole segments after that, so a key that stopped sending
 * leaves nothing behind. The store is committed, changelogged and restored
 * with the task (docs/state.md): after a restart the kept records are
 * still there and no duplicate gets through. The operator tracks the
 * largest bucket holding a kept record (found again after a restart by
 * bisecting the segments), so the t + H bucket is read only when it can
 * hold something: never on an input in order.
 *
 * Values: keep first stores k (8 bytes); keep last stores k, the last
 * record's time, partition and offset (8 bytes each) and the record
 * (state/row.c).
 */
#include "cfg.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include "aggfn.h"

typedef struct {
    int64_t h;        /* horizon, ms */
    bool keep_last;
    int store;
    char *store_name;
    char *label_key;
} dedup_conf_t;

static void dedup_free(void *conf) {
    dedup_conf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->store_name);
    eddy_free(c->label_key);
    eddy_free(c);
}

/* Stored value -> (kept_ms[, last_ms, the last record's fields]). */
static eddy_err_t decode_for_query(const eddy_store_def_t *def, const char *v, size_t vlen,
                                   eddy_arena_t *a, eddy_value_t *out) {
    (void)a;
    const dedup_conf_t *c = def->owner;
    if (vlen < 8 || (c->keep_last && vlen < 32))
        return EDDY_ERR_DECODE;
    int64_t hdr[2];
    memcpy(hdr, v, c->keep_last ? 16 : 8);
    out[0] = (eddy_value_t){.u.i = hdr[0], .type = EDDY_TYPE_INT};
    if (!c->keep_last)
        return EDDY_OK;
    out[1] = (eddy_value_t){.u.i = hdr[1], .type = EDDY_TYPE_INT};
    return eddy__row_decode(v + 32, vlen - 32, def->value_schema->nfields - 2, out + 2);
}

static const char *const dedup_keys[] = {"key", "within", "keep", "store", NULL};
static const char *const keep_choices[] = {"first", "last", NULL};

static eddy_err_t dedup_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    const eddy_cnode_t *m = cc->arg;
    eddy_err_t err;
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, errstr_size,
                               "unexpected key '%s' in a dedup step", cc->step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : cc->step, errstr, errstr_size,
                               "dedup: expected {key: [field, ...], within: 10s, keep: first}");
    if ((err = eddy__cfg_check_keys(m, "dedup", dedup_keys, errstr, errstr_size)))
        return err;
    const eddy_cnode_t *key = eddy__cnode_get(m, "key");
    if (!key)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "dedup: missing required key 'key' (what makes two records "
                               "duplicates, e.g. key: [auction, bidder])");
    dedup_conf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    if ((err = eddy__cfg_duration(m, "within", true, &c->h, errstr, errstr_size)))
        return err;
    if (c->h <= 0)
        return eddy__cnode_err(eddy__cnode_get(m, "within"), errstr, errstr_size,
                               "dedup: within must be a positive duration, e.g. 10s");
    int keep = 0;
    if (eddy__cnode_get(m, "keep") &&
        (err = eddy__cfg_enum(m, "keep", true, keep_choices, &keep, errstr, errstr_size)))
        return err;
    c->keep_last = keep == 1;
    const char *store = NULL;
    if ((err = eddy__cfg_str(m, "store", false, &store, errstr, errstr_size)))
        return err;
    c->store_name = store ? eddy_strdup(store)
                          : eddy_asprintf("%s_dedup", cc->pipeline ? cc->pipeline : "dedup");
    if (eddy__plan_find_store(cc->plan, c->store_name))
        return eddy__cnode_err(store ? eddy__cnode_get(m, "store") : m, errstr, errstr_size,
                               "a store named '%s' already exists; name this one with 'store:'",
                               c->store_name);
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    def->name = eddy_strdup(c->store_name);
    def->kind = EDDY_STORE_WINDOW;
    def->segment_ms = c->h;
    def->retention_ms = c->h;
    def->range_reads = c->keep_last; /* the watermark walks due groups in order */
    /* queryable, to see what it holds: key fields -> kept record */
    eddy_aggspec_t ks = {0};
    def->key_schema = eddy__schema_new_empty();
    err = eddy__aggspec_by(&ks, key, cc->in, NULL, def->key_schema, errstr, errstr_size);
    eddy__aggspec_free(&ks);
    def->value_schema = eddy__schema_new_empty();
    eddy__schema_add(def->value_schema, "kept_ms", EDDY_TYPE_INT);
    if (c->keep_last) {
        eddy__schema_add(def->value_schema, "last_ms", EDDY_TYPE_INT);
        for (int i = 0; i < cc->in->nfields; i++) {
            int j = eddy__schema_add(def->value_schema, cc->in->fields[i].name,
                                     cc->in->fields[i].type);
            def->value_schema->fields[j].nullable = cc->in->fields[i].nullable;
        }
    }
    def->queryable = true;
    def->decode_value = decode_for_query;
    def->owner = c;
    c->store = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    if (err)
        return err;

    eddy_buf_t kb = {0};
    const eddy_cnode_t *const *items = &key;
    int n = 1;
    if (key->kind == EDDY_CNODE_SEQ) {
        items = (const eddy_cnode_t *const *)key->items;
        n = key->n;
    }
    for (int i = 0; i < n; i++)
        eddy_buf_printf(&kb, "%s%s", i ? ", " : "",
                        items[i]->kind == EDDY_CNODE_SCALAR ? items[i]->scalar : "?");
    eddy_buf_putc(&kb, 0);
    c->label_key = kb.p;
    cc->label = eddy_asprintf("dedup keep %s within %lldms by %s, store %s",
                              c->keep_last ? "last" : "first", (long long)c->h, c->label_key,
                              c->store_name);
    return EDDY_OK;
}

/* ------------------------------------------------------------ instance */

/*
 * Bucket index: per bucket made since the task opened, the set of 64-bit
 * hashes of the keys written to it (open addressing). A key not in the
 * set has no entry there, so a new key costs no store read (a read that
 * misses the cache goes to RocksDB). Buckets the store held when the task
 * opened (restored state) have no index: they are always read. An index
 * goes with its bucket's segment.
 */
typedef struct bidx_s {
    int64_t b;
    uint64_t *slot; /* 0: empty */
    size_t cap, n;  /* cap: a power of two */
} bidx_t;

static uint64_t key_hash(const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h ? h : 1;
}

static bool bidx_has(const bidx_t *x, uint64_t h) {
    for (size_t i = h & (x->cap - 1);; i = (i + 1) & (x->cap - 1)) {
        if (x->slot[i] == h)
            return true;
        if (!x->slot[i])
            return false;
    }
}

static void bidx_put(bidx_t *x, uint64_t h);

static void bidx_grow(bidx_t *x) {
    uint64_t *old = x->slot;
    size_t oc = x->cap;
    x->cap = oc ? 2 * oc : 1024;
    x->slot = eddy_calloc(x->cap, sizeof(uint64_t));
    x->n = 0;
    for (size_t i = 0; i < oc; i++)
        if (old[i])
            bidx_put(x, old[i]);
    eddy_free(old);
}

static void bidx_put(bidx_t *x, uint64_t h) {
    if (2 * (x->n + 1) > x->cap)
        bidx_grow(x);
    size_t i = h & (x->cap - 1);
    while (x->slot[i] && x->slot[i] != h)
        i = (i + 1) & (x->cap - 1);
    if (!x->slot[i]) {
        x->slot[i] = h;
        x->n++;
    }
}

typedef struct {
    eddy_store_t *st;
    int64_t max_ts;        /* largest event time seen (expiry runs on min(wm, this)) */
    int64_t top_bucket;    /* largest bucket holding a kept record */
    int64_t scan_seg;      /* keep last: segments below hold nothing due */
    int64_t open_lo, open_hi; /* buckets the store held at open (lo > hi: none) */
    bidx_t *idx;           /* indexes of buckets made since open */
    int nidx;
    eddy_buf_t enc;
} dedup_state_t;

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Whether the store holds an entry in segment seg or a later one. */
static eddy_err_t any_from(dedup_state_t *s, const dedup_conf_t *c, int64_t seg, bool *any) {
    char lo[16];
    eddy__store_tkey(s->st, "", 0, seg * c->h, 0, lo, sizeof(lo));
    eddy_store_iter_t *it = eddy__store_iter(s->st, lo, 8, NULL, 0);
    const char *k, *v;
    size_t kl, vl;
    *any = eddy__store_iter_next(it, &k, &kl, &v, &vl);
    return eddy__store_iter_destroy(it);
}

/* Whether the store holds an entry in a segment before seg. */
static eddy_err_t any_before(dedup_state_t *s, const dedup_conf_t *c, int64_t seg, bool *any) {
    char hi[16];
    eddy__store_tkey(s->st, "", 0, seg * c->h, 0, hi, sizeof(hi));
    eddy_store_iter_t *it = eddy__store_iter(s->st, "", 0, hi, 8);
    const char *k, *v;
    size_t kl, vl;
    *any = eddy__store_iter_next(it, &k, &kl, &v, &vl);
    return eddy__store_iter_destroy(it);
}

/* The smallest bucket holding a record (the store holds one). */
static eddy_err_t bottom_bucket(dedup_state_t *s, const dedup_conf_t *c, int64_t *bottom) {
    int64_t lo = -(INT64_MAX / 4) / c->h, hi = s->top_bucket;
    eddy_err_t e = EDDY_OK;
    while (lo < hi) { /* an entry in hi or before; none before lo */
        int64_t mid = lo + (hi - lo) / 2;
        bool any;
        if ((e = any_before(s, c, mid + 1, &any)))
            return e;
        if (any)
            hi = mid;
        else
            lo = mid + 1;
    }
    *bottom = lo;
    return e;
}

/* The largest bucket holding a kept record (segments are one bucket
 * wide), by bisection over segments: a restored store may hold records
 * later than the ones that come next. INT64_MIN: none. */
static eddy_err_t top_bucket(dedup_state_t *s, const dedup_conf_t *c, int64_t *top) {
    /* event times within +-2^61 ms (73 million years): no overflow below */
    int64_t lo = -(INT64_MAX / 4) / c->h, hi = (INT64_MAX / 4) / c->h;
    bool any;
    eddy_err_t e = any_from(s, c, lo, &any);
    *top = INT64_MIN;
    if (e || !any)
        return e;
    while (lo < hi) { /* an entry in lo or later; none after hi */
        int64_t mid = lo + (hi - lo) / 2 + 1;
        if ((e = any_from(s, c, mid, &any)))
            return e;
        if (any)
            lo = mid;
        else
            hi = mid - 1;
    }
    *top = lo;
    return EDDY_OK;
}

/* The index of bucket b; NULL when b was in the store at open (unknown). */
static bidx_t *bucket_index(dedup_state_t *s, int64_t b) {
    for (int i = 0; i < s->nidx; i++)
        if (s->idx[i].b == b)
            return &s->idx[i];
    if (b >= s->open_lo && b <= s->open_hi)
        return NULL;
    s->idx = eddy_realloc(s->idx, sizeof(*s->idx) * (size_t)(s->nidx + 1));
    bidx_t *x = &s->idx[s->nidx++];
    memset(x, 0, sizeof(*x));
    x->b = b;
    bidx_grow(x);
    return x;
}

/* Whether bucket b can hold key hash h (false: it does not). */
static bool maybe_in(const dedup_state_t *s, int64_t b, uint64_t h) {
    for (int i = 0; i < s->nidx; i++)
        if (s->idx[i].b == b)
            return bidx_has(&s->idx[i], h);
    return b >= s->open_lo && b <= s->open_hi;
}

/* Drop the indexes of buckets below b (their segments expired). */
static void drop_indexes(dedup_state_t *s, int64_t below) {
    int k = 0;
    for (int i = 0; i < s->nidx; i++) {
        if (s->idx[i].b < below)
            eddy_free(s->idx[i].slot);
        else
            s->idx[k++] = s->idx[i];
    }
    s->nidx = k;
}

static eddy_err_t dedup_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = eddy_calloc(1, sizeof(*s));
    op->state = s;
    s->max_ts = INT64_MIN;
    s->top_bucket = INT64_MIN;
    s->scan_seg = INT64_MIN;
    s->st = eddy__task_store(op->task, c->store);
    if (!s->st)
        return eddy__cnode_err(op->node->where, errstr, errstr_size,
                               "dedup: its store is not open");
    eddy_err_t e = top_bucket(s, c, &s->top_bucket);
    if (e)
        return e;
    s->open_lo = 1;
    s->open_hi = 0;
    if (s->top_bucket != INT64_MIN) {
        s->open_hi = s->top_bucket;
        if ((e = bottom_bucket(s, c, &s->open_lo)))
            return e;
    }
    return EDDY_OK;
}

static void dedup_destroy(eddy_op_t *op) {
    dedup_state_t *s = op->state;
    if (!s)
        return;
    drop_indexes(s, INT64_MAX);
    eddy_free(s->idx);
    eddy_buf_free(&s->enc);
    eddy_free(s);
}

/* The kept record of key in bucket b: its time, and (keep last) where its
 * value is. */
typedef struct {
    bool found;
    int64_t k;
    int64_t b;
} kept_t;

static eddy_err_t kept_in(dedup_state_t *s, const dedup_conf_t *c, const eddy_rec_t *r, int64_t b,
                          uint64_t h, kept_t *out) {
    char pk[4200];
    out->found = false;
    out->b = b;
    if (!maybe_in(s, b, h))
        return EDDY_OK;
    size_t pkl = eddy__store_tkey(s->st, r->key, r->key_len, b * c->h, 0, pk, sizeof(pk));
    if (!pkl)
        return EDDY_ERR_INVAL;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found);
    if (e || !found || vl < 8)
        return e;
    out->found = true;
    memcpy(&out->k, v, 8);
    return EDDY_OK;
}

/* The kept record that claims a record at t (see the header), if any. */
static eddy_err_t claim(dedup_state_t *s, const dedup_conf_t *c, const eddy_rec_t *r, uint64_t h,
                        kept_t *out) {
    int64_t t = r->ts_ms, b = floor_div(t, c->h);
    kept_t here, before;
    eddy_err_t e = kept_in(s, c, r, b, h, &here);
    if (e)
        return e;
    if (here.found && here.k <= t) {
        *out = here;
        return EDDY_OK;
    }
    if ((e = kept_in(s, c, r, b - 1, h, &before)))
        return e;
    if (before.found && before.k > t - c->h) {
        *out = before;
        return EDDY_OK;
    }
    if (here.found) { /* later than t in its bucket: within H */
        *out = here;
        return EDDY_OK;
    }
    out->found = false;
    if (b + 1 <= s->top_bucket) {
        kept_t after;
        if ((e = kept_in(s, c, r, b + 1, h, &after)))
            return e;
        if (after.found && after.k < t + c->h)
            *out = after;
    }
    return EDDY_OK;
}

/* Keep last: the value of a group, with the record r as its last. */
static void group_value(dedup_state_t *s, const eddy_batch_t *in, const eddy_rec_t *r, int64_t k) {
    s->enc.len = 0;
    int64_t hdr[4] = {k, r->ts_ms, r->partition, r->offset};
    eddy_buf_put(&s->enc, hdr, sizeof(hdr));
    eddy__row_encode(&s->enc, in->schema->nfields, r->vals);
}

static eddy_err_t dedup_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = op->state;
    int64_t wm = op->wm_ms;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        int64_t t = r->ts_ms;
        if (wm != EDDY_WM_MIN && t < wm) {
            eddy__task_late(op->task, op->node, in->schema, r);
            continue;
        }
        if (t > s->max_ts)
            s->max_ts = t;
        eddy_err_t e;
        kept_t kp;
        uint64_t h = key_hash(r->key, r->key_len);
        if ((e = claim(s, c, r, h, &kp)))
            return e;
        if (kp.found) {
            if (!c->keep_last)
                continue;
            /* a later (or as late, arriving later) record becomes the last */
            const char *v;
            size_t vl;
            bool found;
            char pk[4200];
            size_t pkl =
                eddy__store_tkey(s->st, r->key, r->key_len, kp.b * c->h, 0, pk, sizeof(pk));
            if ((e = eddy__store_get(s->st, pk, pkl, &v, &vl, &found)))
                return e;
            int64_t last;
            memcpy(&last, v + 8, 8);
            if (t < last)
                continue;
            group_value(s, in, r, kp.k);
            if ((e = eddy__store_put(s->st, pk, pkl, s->enc.p, s->enc.len)))
                return e;
            continue;
        }
        int64_t b = floor_div(t, c->h);
        if (c->keep_last) {
            group_value(s, in, r, t);
            e = eddy__store_tput(s->st, r->key, r->key_len, b * c->h, 0, s->enc.p, s->enc.len);
        } else {
            e = eddy__store_tput(s->st, r->key, r->key_len, b * c->h, 0, &t, 8);
        }
        if (e)
            return e;
        bidx_t *x = bucket_index(s, b);
        if (x)
            bidx_put(x, h);
        if (b > s->top_bucket)
            s->top_bucket = b;
        if (!c->keep_last)
            *eddy_batch_push(out) = *r;
    }
    return EDDY_OK;
}

/* ------------------------------------------------------------ keep last */

typedef struct {
    char *pk;
    size_t pkl;
} due_t;

/* Emit every group whose horizon the watermark passed (k + H <= wm), in
 * bucket order, and delete it. Groups are in buckets B <= wm - H. */
static eddy_err_t emit_due(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = op->state;
    const eddy_schema_t *sch = op->node->out;
    if (wm == EDDY_WM_MIN || wm < INT64_MIN + c->h)
        return EDDY_OK;
    int64_t last_b = wm == EDDY_WM_MAX ? INT64_MAX / c->h - 1 : floor_div(wm - c->h, c->h);
    int64_t last_seg = last_b; /* segments are one bucket wide */
    if (last_seg < s->scan_seg)
        return EDDY_OK;
    /* [lo, hi): the segment prefixes (the first 8 bytes of a physical key) */
    char lo[16], hi[16];
    eddy__store_tkey(s->st, "", 0, s->scan_seg == INT64_MIN ? INT64_MIN / 2 : s->scan_seg * c->h,
                     0, lo, sizeof(lo));
    eddy__store_tkey(s->st, "", 0, (last_seg + 1) * c->h, 0, hi, sizeof(hi));
    const size_t ll = 8, hl = 8;
    eddy_arena_t *a = out->arena;
    due_t *due = NULL;
    size_t ndue = 0, cap = 0;
    eddy_store_iter_t *it = eddy__store_iter(s->st, lo, ll, hi, hl);
    const char *k, *v;
    size_t kl, vl;
    bool all_done = true;
    eddy_err_t e = EDDY_OK;
    while (!e && eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        const char *lk;
        size_t lkl;
        int64_t ts, ts2;
        if (!eddy__tkey_parse(EDDY_STORE_WINDOW, k, kl, &lk, &lkl, &ts, &ts2) || vl < 32 ||
            lkl == 0)
            continue;
        int64_t hdr[4];
        memcpy(hdr, v, sizeof(hdr));
        if (hdr[0] > wm - c->h) { /* its horizon is still open */
            all_done = false;
            continue;
        }
        eddy_value_t *vals = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)sch->nfields);
        if ((e = eddy__row_decode(v + 32, vl - 32, sch->nfields, vals)))
            break;
        for (int f = 0; f < sch->nfields; f++)
            if ((vals[f].type == EDDY_TYPE_STRING || vals[f].type == EDDY_TYPE_BYTES) &&
                vals[f].len)
                vals[f].u.s = eddy_arena_strndup(a, vals[f].u.s, vals[f].len);
        eddy_rec_t *o = eddy_batch_push(out);
        memset(o, 0, sizeof(*o));
        o->vals = vals;
        o->key = eddy_arena_strndup(a, lk, lkl);
        o->key_len = (uint32_t)lkl;
        o->ts_ms = hdr[1];
        o->partition = (int32_t)hdr[2];
        o->offset = hdr[3];
        if (ndue == cap) {
            cap = cap ? 2 * cap : 64;
            due = eddy_realloc(due, cap * sizeof(*due));
        }
        due[ndue].pk = eddy_strndup(k, kl);
        due[ndue].pkl = kl;
        ndue++;
    }
    eddy_err_t e2 = eddy__store_iter_destroy(it);
    if (!e)
        e = e2;
    for (size_t i = 0; i < ndue; i++) {
        if (!e)
            e = eddy__store_del(s->st, due[i].pk, due[i].pkl);
        eddy_free(due[i].pk);
    }
    eddy_free(due);
    /* groups in segments up to last_seg - 1 all closed (k < B + H <= wm) */
    if (!e && all_done)
        s->scan_seg = last_seg + 1;
    else if (!e && last_seg > s->scan_seg)
        s->scan_seg = last_seg;
    return e;
}

static eddy_err_t dedup_on_watermark(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = op->state;
    eddy_err_t e;
    if (c->keep_last && (e = emit_due(op, wm, out)))
        return e;
    /* expiry runs on event time seen, so a bounded input's final +inf
     * watermark keeps the state a restart with more input needs */
    int64_t now = wm < s->max_ts ? wm : s->max_ts;
    if (now == INT64_MIN || now < INT64_MIN / 2)
        return EDDY_OK;
    /* the segments eddy__store_expire() drops: below floor((now - H) / H) */
    drop_indexes(s, floor_div(now - c->h, c->h));
    return eddy__store_expire(s->st, now);
}

static bool dedup_may_be_late(const eddy_node_t *n, int64_t t, int64_t wm) {
    (void)n;
    return wm != EDDY_WM_MIN && t < wm;
}

const eddy_op_ops_t eddy__op_dedup = {
    .abi = EDDY_OP_ABI,
    .name = "dedup",
    .compile = dedup_compile,
    .free_conf = dedup_free,
    .init = dedup_init,
    .process = dedup_process,
    .on_watermark = dedup_on_watermark,
    .destroy = dedup_destroy,
    .exchange_option = "key",
    .may_be_late = dedup_may_be_late,
};
