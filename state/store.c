/*
 * Stores and their write cache.
 *
 * The cache holds, per physical key, the newest value the task wrote (PUT
 * or DEL, "dirty") or read from RocksDB (CLEAN, or ABSENT for a negative
 * lookup). A chained hash table answers point lookups in O(1). The
 * time-ordered kinds also keep a skip list over the same entries, because
 * their operators read ranges on the hot path (windows of a key, sessions
 * to merge): range reads merge it with a RocksDB iterator. Key-value stores
 * are read by point lookups, so they skip the skip list (a random-key
 * insert there costs more than the rest of an update, measured with
 * bench/state) and sort their dirty entries once per commit instead; their
 * rare range reads sort a snapshot of the cache. Either way the commit
 * writes dirty entries in key order, which RocksDB inserts fastest. An
 * entry is one allocation holding its key and, while it fits, its value,
 * so a lookup finds both side by side.
 *
 * Nothing reaches RocksDB between commits: that keeps the store's content
 * equal to a committed state at all times, which restore relies on. When
 * the dirty part outgrows the task's cache budget (shared by its stores)
 * the task asks for an early commit instead of spilling. After a commit
 * every entry is clean; over half the budget, the caches evict the entries
 * unused the longest (CLOCK) down to half (reads refill them).
 */
#include "store_int.h"

#include "tstate.h"

#include <stdlib.h>

/* ---------------------------------------------------------------- cache */

static uint64_t hkey(const void *k, size_t n) { return eddy__hash64(k, n); }

static int rand_level(eddy_store_t *st) {
    int lvl = 1;
    /* xorshift; p = 1/4 per level */
    while (lvl < SKIP_MAX) {
        st->rng ^= st->rng << 13;
        st->rng ^= st->rng >> 7;
        st->rng ^= st->rng << 17;
        if ((st->rng & 3) != 0)
            break;
        lvl++;
    }
    return lvl;
}

static int kcmp(const char *a, size_t al, const char *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c)
        return c;
    return al < bl ? -1 : al > bl ? 1 : 0;
}

static cent_t **fwd_of(eddy_store_t *st, cent_t *e) { return e ? e->fwd : st->head_fwd; }

static cent_t *cache_find(eddy_store_t *st, const void *key, size_t klen) {
    cent_t *l = st->last;
    if (l && l->klen == klen && !memcmp(cent_key(l), key, klen))
        return l;
    if (!st->nbuckets)
        return NULL;
    cent_t *e = st->buckets[hkey(key, klen) & (st->nbuckets - 1)];
    for (; e; e = e->hnext)
        if (e->klen == klen && !memcmp(cent_key(e), key, klen)) {
            e->ref = 1;
            return st->last = e;
        }
    return NULL;
}

static void rehash(eddy_store_t *st) {
    size_t n = st->nbuckets ? st->nbuckets * 2 : 1024;
    cent_t **nb = eddy_calloc(n, sizeof(*nb));
    for (size_t i = 0; i < st->nbuckets; i++) {
        cent_t *e = st->buckets[i];
        while (e) {
            cent_t *next = e->hnext;
            size_t h = hkey(cent_key(e), e->klen) & (n - 1);
            e->hnext = nb[h];
            nb[h] = e;
            e = next;
        }
    }
    eddy_free(st->buckets);
    st->buckets = nb;
    st->nbuckets = n;
}

/* Find the skip-list predecessors of key at every level. */
static void skip_preds(eddy_store_t *st, const char *key, size_t klen, cent_t **preds) {
    cent_t *x = NULL; /* NULL = head */
    for (int l = st->level - 1; l >= 0; l--) {
        cent_t *n;
        while ((n = fwd_of(st, x)[l]) && kcmp(cent_key(n), n->klen, key, klen) < 0)
            x = n;
        preds[l] = x;
    }
}

/* Values up to this size live in the entry's own allocation, after the
 * key: one allocation per entry, and a lookup finds key and value side by
 * side. A value that outgrows the room moves to a buffer of its own. */
#define CENT_INLINE_MAX 256
/* Room kept for an entry made without a value (a miss): the value its
 * key is usually about to get. */
#define CENT_INLINE_MIN 32

static bool cent_inline(cent_t *e) { return e->icap8 && e->val == cent_key(e) + e->klen; }

/* What an entry costs in the cache budget. */
static size_t cent_size(cent_t *e) {
    return sizeof(*e) + sizeof(cent_t *) * e->level + e->klen + (size_t)e->icap8 * 8 +
           (cent_inline(e) ? 0 : e->vcap);
}

static void cent_free(cent_t *e) {
    if (!cent_inline(e))
        eddy_free(e->val);
    eddy_free(e);
}

/* vhint: the length of the value about to be set; 0 for a miss (room
 * for a value to come), CENT_NO_VALUE for a delete (no room). */
#define CENT_NO_VALUE ((size_t)-1)
static cent_t *cache_insert(eddy_store_t *st, const void *key, size_t klen, size_t vhint) {
    if (st->nentries >= st->nbuckets)
        rehash(st);
    int lvl = st->ordered ? rand_level(st) : 0;
    size_t icap = vhint ? vhint : CENT_INLINE_MIN;
    icap = icap > CENT_INLINE_MAX ? 0 : (icap + 7) & ~(size_t)7;
    cent_t *e = eddy_malloc(sizeof(*e) + sizeof(cent_t *) * (size_t)lvl + klen + icap);
    memset(e, 0, sizeof(*e));
    e->level = (uint8_t)lvl;
    e->klen = (uint32_t)klen;
    e->icap8 = (uint8_t)(icap / 8);
    e->ref = 1;
    memcpy(cent_key(e), key, klen);
    if (icap) {
        e->val = cent_key(e) + klen;
        e->vcap = (uint32_t)icap;
    }
    size_t h = hkey(key, klen) & (st->nbuckets - 1);
    e->hnext = st->buckets[h];
    st->buckets[h] = e;
    if (lvl) {
        cent_t *preds[SKIP_MAX];
        if (lvl > st->level) {
            for (int l = st->level; l < lvl; l++)
                st->head_fwd[l] = NULL;
            st->level = lvl;
        }
        skip_preds(st, key, klen, preds);
        for (int l = 0; l < lvl; l++) {
            cent_t **pf = fwd_of(st, preds[l]);
            e->fwd[l] = pf[l];
            pf[l] = e;
        }
    }
    st->nentries++;
    st->bytes += cent_size(e);
    st->last = e;
    return e;
}

static void cent_set(eddy_store_t *st, cent_t *e, uint8_t state, const void *v, size_t vl) {
    bool was_dirty = e->state == CENT_PUT || e->state == CENT_DEL;
    if (vl > e->vcap) {
        size_t cap = (vl + 7) & ~(size_t)7;
        st->bytes -= cent_size(e);
        if (cent_inline(e) || !e->val)
            e->val = eddy_malloc(cap); /* the inline room stays unused */
        else
            e->val = eddy_realloc(e->val, cap);
        e->vcap = (uint32_t)cap;
        st->bytes += cent_size(e);
    }
    if (vl)
        memcpy(e->val, v, vl);
    e->vlen = (uint32_t)vl;
    e->state = state;
    bool dirty = state == CENT_PUT || state == CENT_DEL;
    if (dirty && !was_dirty && !st->ordered) {
        if (st->ndvec == st->dvcap) {
            st->dvcap = st->dvcap ? st->dvcap * 2 : 1024;
            st->dvec = eddy_realloc(st->dvec, sizeof(*st->dvec) * st->dvcap);
        }
        st->dvec[st->ndvec++] = e;
    }
    if (dirty && !was_dirty)
        st->dirty++;
    else if (!dirty && was_dirty)
        st->dirty--;
}

static void cache_clear(eddy_store_t *st) {
    st->last = NULL;
    for (size_t b = 0; b < st->nbuckets; b++) {
        cent_t *e = st->buckets[b];
        while (e) {
            cent_t *next = e->hnext;
            cent_free(e);
            e = next;
        }
    }
    for (int l = 0; l < SKIP_MAX; l++)
        st->head_fwd[l] = NULL;
    st->level = 1;
    if (st->buckets)
        memset(st->buckets, 0, sizeof(*st->buckets) * st->nbuckets);
    st->nentries = 0;
    st->bytes = 0;
    st->dirty = 0;
}

/* Unlink one entry (delete-range of the cache; ordered stores only). */
static void cache_remove(eddy_store_t *st, cent_t *e) {
    eddy_assert(st->ordered);
    if (st->last == e)
        st->last = NULL;
    cent_t *preds[SKIP_MAX];
    skip_preds(st, cent_key(e), e->klen, preds);
    for (int l = 0; l < e->level; l++) {
        cent_t **pf = fwd_of(st, preds[l]);
        if (pf[l] == e)
            pf[l] = e->fwd[l];
    }
    size_t h = hkey(cent_key(e), e->klen) & (st->nbuckets - 1);
    cent_t **pp = &st->buckets[h];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    if (e->state == CENT_PUT || e->state == CENT_DEL)
        st->dirty--;
    st->nentries--;
    st->bytes -= cent_size(e);
    cent_free(e);
}

void eddy__store_init(eddy_store_t *st, const eddy_store_def_t *def, eddy_tstate_t *ts,
                      eddy_rocks_t *db, int cf, uint16_t id, size_t limit_bytes) {
    memset(st, 0, sizeof(*st));
    st->def = def;
    st->pend_newest_ms = INT64_MIN;
    atomic_init(&st->pub_newest_ms, INT64_MIN);
    st->ts = ts;
    st->db = db;
    st->cf = cf;
    st->id = id;
    st->level = 1;
    st->rng = 0x9E3779B97F4A7C15ULL ^ id;
    st->limit_bytes = limit_bytes;
    st->ordered = def->range_reads;
}

void eddy__store_free(eddy_store_t *st) {
    cache_clear(st);
    eddy_free(st->buckets);
    eddy_free(st->dvec);
    for (int i = 0; i < st->nranges; i++) {
        eddy_free(st->ranges[i].from);
        eddy_free(st->ranges[i].to);
    }
    eddy_free(st->ranges);
    eddy_buf_free(&st->getbuf);
}


const eddy_store_def_t *eddy__store_def(const eddy_store_t *st) { return st->def; }

/* --------------------------------------------------------------- kv ops */

static bool in_pending_range(const eddy_store_t *st, const char *k, size_t kl) {
    for (int i = 0; i < st->nranges; i++)
        if (kcmp(k, kl, st->ranges[i].from, st->ranges[i].flen) >= 0 &&
            kcmp(k, kl, st->ranges[i].to, st->ranges[i].tlen) < 0)
            return true;
    return false;
}

eddy_err_t eddy__store_get(eddy_store_t *st, const void *key, size_t klen, const char **val,
                           size_t *vlen, bool *found) {
    cent_t *e = cache_find(st, key, klen);
    if (e) {
        st->hits++;
        *found = e->state == CENT_PUT || e->state == CENT_CLEAN;
        *val = e->val;
        *vlen = e->vlen;
        return EDDY_OK;
    }
    st->misses++;
    bool f = false;
    char err[256];
    if (!in_pending_range(st, key, klen)) {
        eddy_err_t rc = eddy__rocks_get(st->db, st->cf, key, klen, &st->getbuf, &f, err,
                                        sizeof(err));
        if (rc)
            return rc;
    }
    e = cache_insert(st, key, klen, f ? st->getbuf.len : 0);
    cent_set(st, e, f ? CENT_CLEAN : CENT_ABSENT, st->getbuf.p, f ? st->getbuf.len : 0);
    *found = f;
    *val = e->val;
    *vlen = e->vlen;
    return EDDY_OK;
}

eddy_err_t eddy__store_put(eddy_store_t *st, const void *key, size_t klen, const void *val,
                           size_t vlen) {
    cent_t *e = cache_find(st, key, klen);
    if (!e)
        e = cache_insert(st, key, klen, vlen);
    cent_set(st, e, CENT_PUT, val, vlen);
    return EDDY_OK;
}

eddy_err_t eddy__store_del(eddy_store_t *st, const void *key, size_t klen) {
    cent_t *e = cache_find(st, key, klen);
    if (!e)
        e = cache_insert(st, key, klen, CENT_NO_VALUE);
    cent_set(st, e, CENT_DEL, NULL, 0);
    return EDDY_OK;
}

/* ------------------------------------------------------- physical keys */

static void be64(char *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
#else
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
#endif
}
static uint64_t rd64(const char *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
#else
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (uint8_t)p[i];
    return v;
#endif
}
/* Signed times order correctly as unsigned with the sign bit flipped. */
static uint64_t tenc(int64_t t) { return (uint64_t)t ^ 0x8000000000000000ULL; }
static int64_t tdec(uint64_t u) { return (int64_t)(u ^ 0x8000000000000000ULL); }

static int64_t seg_of(int64_t ts, int64_t seg_ms) {
    if (seg_ms <= 0)
        return 0;
    return ts >= 0 ? ts / seg_ms : -((-ts + seg_ms - 1) / seg_ms);
}

size_t eddy__tkey_build(eddy_store_kind_t kind, int64_t segment_ms, const void *key, size_t klen,
                        int64_t ts, int64_t ts2, char *buf, size_t cap) {
    size_t need = 8 + klen + (kind == EDDY_STORE_WINDOW ? 8 : 16);
    if (need > cap)
        return 0;
    be64(buf, tenc(seg_of(ts, segment_ms)));
    memcpy(buf + 8, key, klen);
    be64(buf + 8 + klen, tenc(ts));
    if (kind != EDDY_STORE_WINDOW)
        be64(buf + 16 + klen, tenc(ts2));
    return need;
}

bool eddy__tkey_parse(eddy_store_kind_t kind, const char *pk, size_t pklen, const char **key,
                      size_t *klen, int64_t *ts, int64_t *ts2) {
    size_t tail = kind == EDDY_STORE_WINDOW ? 8 : 16;
    if (pklen < 8 + tail)
        return false;
    *key = pk + 8;
    *klen = pklen - 8 - tail;
    *ts = tdec(rd64(pk + 8 + *klen));
    *ts2 = kind == EDDY_STORE_WINDOW ? 0 : tdec(rd64(pk + 16 + *klen));
    return true;
}

size_t eddy__store_tkey(const eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                        int64_t ts2, char *buf, size_t cap) {
    return eddy__tkey_build(st->def->kind, st->def->segment_ms, key, klen, ts, ts2, buf, cap);
}

#define TK_MAX 4200

eddy_err_t eddy__store_tput(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                            int64_t ts2, const void *val, size_t vlen) {
    char pk[TK_MAX];
    size_t n = eddy__store_tkey(st, key, klen, ts, ts2, pk, sizeof(pk));
    if (!n)
        return EDDY_ERR_INVAL;
    return eddy__store_put(st, pk, n, val, vlen);
}

eddy_err_t eddy__store_tdel(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                            int64_t ts2) {
    char pk[TK_MAX];
    size_t n = eddy__store_tkey(st, key, klen, ts, ts2, pk, sizeof(pk));
    if (!n)
        return EDDY_ERR_INVAL;
    return eddy__store_del(st, pk, n);
}

eddy_err_t eddy__store_append(eddy_store_t *st, const void *key, size_t klen, int64_t ts,
                              const void *val, size_t vlen) {
    return eddy__store_tput(st, key, klen, ts, st->next_seq++, val, vlen);
}

/* ------------------------------------------------------ merged iterator */

static int cent_cmp(const void *a, const void *b) {
    cent_t *x = *(cent_t *const *)a, *y = *(cent_t *const *)b;
    return kcmp(cent_key(x), x->klen, cent_key(y), y->klen);
}

/* Cache entries of an unordered store, sorted; only dirty ones when
 * dirty_only. Caller frees. */
static cent_t **sorted_entries(eddy_store_t *st, bool dirty_only, const char *lo, size_t lolen,
                               size_t *n) {
    cent_t **v = eddy_malloc(sizeof(*v) * (st->nentries + 1));
    size_t k = 0;
    for (size_t b = 0; b < st->nbuckets; b++)
        for (cent_t *e = st->buckets[b]; e; e = e->hnext) {
            if (dirty_only && e->state != CENT_PUT && e->state != CENT_DEL)
                continue;
            if (lo && kcmp(cent_key(e), e->klen, lo, lolen) < 0)
                continue;
            v[k++] = e;
        }
    qsort(v, k, sizeof(*v), cent_cmp);
    *n = k;
    return v;
}

struct eddy_store_iter_s {
    eddy_store_t *st;
    eddy_rocks_iter_t *ri;
    cent_t *ce;          /* next cache entry (>= lo, < hi) */
    cent_t **snap;       /* unordered stores: sorted cache entries */
    size_t nsnap, isnap;
    char *hi;
    size_t hilen;
    eddy_err_t err;
    /* the RocksDB entry last returned is passed at the next call only:
     * moving the iterator can overwrite the key it returned */
    bool rocks_next;
};

static void iter_advance_cache(eddy_store_iter_t *it) {
    if (it->snap)
        it->ce = ++it->isnap < it->nsnap ? it->snap[it->isnap] : NULL;
    else
        it->ce = it->ce->fwd[0];
}

eddy_store_iter_t *eddy__store_iter(eddy_store_t *st, const void *lo, size_t lolen,
                                    const void *hi, size_t hilen) {
    eddy_store_iter_t *it = eddy_calloc(1, sizeof(*it));
    it->st = st;
    it->ri = eddy__rocks_iter_new(st->db, st->cf, lo, lolen, hi, hilen);
    eddy__rocks_iter_seek(it->ri, lo, lolen);
    if (hi) {
        it->hi = eddy_strndup(hi, hilen);
        it->hilen = hilen;
    }
    if (st->ordered) {
        cent_t *preds[SKIP_MAX];
        skip_preds(st, lo, lolen, preds);
        it->ce = fwd_of(st, preds[0])[0];
    } else {
        it->snap = sorted_entries(st, false, lo, lolen, &it->nsnap);
        it->ce = it->nsnap ? it->snap[0] : NULL;
    }
    return it;
}

static bool cache_in_range(eddy_store_iter_t *it, cent_t *e) {
    return e && (!it->hi || kcmp(cent_key(e), e->klen, it->hi, it->hilen) < 0);
}

bool eddy__store_iter_next(eddy_store_iter_t *it, const char **k, size_t *kl, const char **v,
                           size_t *vl) {
    eddy_store_t *st = it->st;
    if (it->rocks_next) {
        eddy__rocks_iter_next(it->ri);
        it->rocks_next = false;
    }
    for (;;) {
        bool rv = eddy__rocks_iter_valid(it->ri);
        bool cv = cache_in_range(it, it->ce);
        if (!rv && !cv)
            return false;
        const char *rk = NULL;
        size_t rkl = 0;
        if (rv)
            rk = eddy__rocks_iter_key(it->ri, &rkl);
        int c = !rv ? 1 : !cv ? -1 : kcmp(rk, rkl, cent_key(it->ce), it->ce->klen);
        if (c < 0) {
            /* only in RocksDB */
            if (in_pending_range(st, rk, rkl)) {
                eddy__rocks_iter_next(it->ri);
                continue;
            }
            *k = rk;
            *kl = rkl;
            *v = eddy__rocks_iter_value(it->ri, vl);
            it->rocks_next = true;
            return true;
        }
        cent_t *e = it->ce;
        iter_advance_cache(it);
        if (c == 0)
            eddy__rocks_iter_next(it->ri); /* the cache has the newer value */
        if (e->state == CENT_PUT || e->state == CENT_CLEAN) {
            *k = cent_key(e);
            *kl = e->klen;
            *v = e->val;
            *vl = e->vlen;
            return true;
        }
    }
}

eddy_err_t eddy__store_iter_destroy(eddy_store_iter_t *it) {
    if (!it)
        return EDDY_OK;
    char err[256];
    eddy_err_t rc = eddy__rocks_iter_status(it->ri, err, sizeof(err));
    eddy__rocks_iter_destroy(it->ri);
    eddy_free(it->snap);
    eddy_free(it->hi);
    eddy_free(it);
    return rc;
}

/* Visit a key's entries with ts in [from, to] across the segments that can
 * hold them. */
static eddy_err_t visit_range(eddy_store_t *st, const void *key, size_t klen, int64_t seg_from,
                              int64_t seg_to, int64_t from, int64_t to, bool session,
                              eddy_store_visit_t cb, void *opaque) {
    const eddy_store_def_t *d = st->def;
    char lo[TK_MAX], hi[TK_MAX];
    for (int64_t s = seg_from; s <= seg_to; s++) {
        /* lo = [s][key][from], hi = [s][key][+inf] */
        size_t ll = eddy__tkey_build(d->kind, 0, key, klen, from, INT64_MIN, lo, sizeof(lo));
        size_t hl = eddy__tkey_build(d->kind, 0, key, klen, INT64_MAX, INT64_MAX, hi, sizeof(hi));
        if (!ll || !hl)
            return EDDY_ERR_INVAL;
        be64(lo, tenc(s));
        be64(hi, tenc(s));
        eddy_store_iter_t *it = eddy__store_iter(st, lo, ll, hi, hl);
        const char *k, *v;
        size_t kl, vl;
        eddy_err_t rc = EDDY_OK;
        while (!rc && eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
            const char *lk;
            size_t lkl;
            int64_t ts, ts2;
            if (!eddy__tkey_parse(d->kind, k, kl, &lk, &lkl, &ts, &ts2) || lkl != klen ||
                memcmp(lk, key, klen))
                continue;
            if (session) {
                /* ts = end, ts2 = start: overlap when end >= from and start <= to */
                if (ts < from || ts2 > to)
                    continue;
            } else if (ts < from || ts > to) {
                continue;
            }
            rc = cb(opaque, ts, ts2, v, vl);
        }
        eddy_err_t rc2 = eddy__store_iter_destroy(it);
        if (rc || rc2)
            return rc ? rc : rc2;
    }
    return EDDY_OK;
}

eddy_err_t eddy__store_fetch(eddy_store_t *st, const void *key, size_t klen, int64_t from,
                             int64_t to, eddy_store_visit_t cb, void *opaque) {
    int64_t sm = st->def->segment_ms;
    return visit_range(st, key, klen, seg_of(from, sm), seg_of(to, sm), from, to, false, cb,
                       opaque);
}

eddy_err_t eddy__store_find_sessions(eddy_store_t *st, const void *key, size_t klen, int64_t from,
                                     int64_t to, eddy_store_visit_t cb, void *opaque) {
    /* Sessions are filed under the segment of their end; an overlapping
     * session ends at or after `from`, in a segment from seg(from) on, and
     * starts before `to`; its end can be later than `to` by at most the
     * retention (sessions longer than that are expired). */
    int64_t sm = st->def->segment_ms;
    int64_t last = to;
    if (st->def->retention_ms > 0 && to < INT64_MAX - st->def->retention_ms)
        last = to + st->def->retention_ms;
    else
        last = INT64_MAX / 2;
    int64_t s0 = seg_of(from, sm), s1 = seg_of(last, sm);
    if (s1 - s0 > 4096) /* unbounded sessions: scan the live segments */
        s1 = s0 + 4096;
    return visit_range(st, key, klen, s0, s1, from, to, true, cb, opaque);
}

eddy_err_t eddy__store_expire(eddy_store_t *st, int64_t now_ms) {
    const eddy_store_def_t *d = st->def;
    if (d->kind == EDDY_STORE_KV || d->retention_ms <= 0 || d->segment_ms <= 0)
        return EDDY_OK;
    if (now_ms < INT64_MIN / 2 + d->retention_ms)
        return EDDY_OK;
    /* a segment [s*seg, (s+1)*seg) expires when its end <= now - retention */
    int64_t below = seg_of(now_ms - d->retention_ms, d->segment_ms);
    if (below <= st->expired_below_seg)
        return EDDY_OK;
    st->expired_below_seg = below;
    char from[8], to[8];
    be64(from, 0);
    be64(to, tenc(below));
    /* drop cache entries of the range */
    if (st->ordered) {
        cent_t *e = st->head_fwd[0];
        while (e && kcmp(cent_key(e), e->klen, to, 8) < 0) {
            cent_t *next = e->fwd[0];
            cache_remove(st, e);
            e = next;
        }
    } else {
        /* mark, drop them from the dirty vector, then free */
        st->last = NULL;
        for (size_t b = 0; b < st->nbuckets; b++)
            for (cent_t *e = st->buckets[b]; e; e = e->hnext)
                e->level = kcmp(cent_key(e), e->klen, to, 8) < 0 ? 0xff : 0;
        size_t k = 0;
        for (size_t i = 0; i < st->ndvec; i++)
            if (st->dvec[i]->level != 0xff)
                st->dvec[k++] = st->dvec[i];
        st->ndvec = k;
        for (size_t b = 0; b < st->nbuckets; b++) {
            cent_t **pp = &st->buckets[b];
            while (*pp) {
                cent_t *e = *pp;
                if (e->level != 0xff) {
                    pp = &e->hnext;
                    continue;
                }
                *pp = e->hnext;
                if (e->state == CENT_PUT || e->state == CENT_DEL)
                    st->dirty--;
                st->nentries--;
                e->level = 0; /* the mark, not a skip-list level (unordered) */
                st->bytes -= cent_size(e);
                cent_free(e);
            }
        }
    }
    st->ranges = eddy_realloc(st->ranges, sizeof(*st->ranges) * (size_t)(st->nranges + 1));
    st->ranges[st->nranges].from = eddy_strndup(from, 8);
    st->ranges[st->nranges].flen = 8;
    st->ranges[st->nranges].to = eddy_strndup(to, 8);
    st->ranges[st->nranges].tlen = 8;
    st->nranges++;
    return EDDY_OK;
}

/* ---------------------------------------------------------------- commit */

/* A compacted topic has no delete-range: the remote log gets a delete for
 * every key the range holds in RocksDB (the committed state; entries of
 * the range still in the cache never reached a changelog). */
static eddy_err_t range_deletes(eddy_store_t *st, const drange_t *r, eddy_changelog_t *rcl,
                                char *errstr, size_t errstr_size) {
    eddy_rocks_iter_t *it = eddy__rocks_iter_new(st->db, st->cf, r->from, r->flen, r->to, r->tlen);
    eddy_err_t rc = EDDY_OK;
    for (eddy__rocks_iter_seek_first(it); !rc && eddy__rocks_iter_valid(it);
         eddy__rocks_iter_next(it)) {
        size_t kl;
        const char *k = eddy__rocks_iter_key(it, &kl);
        if ((rc = rcl->ops->append(rcl, st->id, EDDY_CL_DEL, k, kl, NULL, 0)))
            eddy__seterr(errstr, errstr_size, "store %s: changelog append failed: %s",
                         st->def->name, rcl->errstr);
    }
    if (!rc)
        rc = eddy__rocks_iter_status(it, errstr, errstr_size);
    eddy__rocks_iter_destroy(it);
    return rc;
}

eddy_err_t eddy__store_flush(eddy_store_t *st, eddy_rocks_batch_t *b, eddy_changelog_t *cl,
                             eddy_changelog_t *rcl, char *errstr, size_t errstr_size) {
    eddy_err_t rc;
    for (int i = 0; i < st->nranges; i++) {
        drange_t *r = &st->ranges[i];
        if (rcl && (rc = range_deletes(st, r, rcl, errstr, errstr_size)))
            return rc;
        eddy__rocks_batch_del_range(b, st->db, st->cf, r->from, r->flen, r->to, r->tlen);
        if ((rc = cl->ops->append(cl, st->id, EDDY_CL_DEL_RANGE, r->from, r->flen, r->to,
                                  r->tlen))) {
            eddy__seterr(errstr, errstr_size, "store %s: changelog append failed",
                         st->def->name);
            return rc;
        }
        eddy_free(r->from);
        eddy_free(r->to);
    }
    st->nranges = 0;
    if (!st->dirty)
        return EDDY_OK;
    size_t nd = 0, i = 0;
    cent_t **dirty = NULL;
    if (!st->ordered) {
        /* only the entries that changed since the last commit, in key order */
        dirty = st->dvec;
        nd = st->ndvec;
        qsort(dirty, nd, sizeof(*dirty), cent_cmp);
    }
    for (cent_t *e = st->ordered ? st->head_fwd[0] : (nd ? dirty[0] : NULL); e;
         e = st->ordered ? e->fwd[0] : (++i < nd ? dirty[i] : NULL)) {
        eddy_changelog_t *failed = cl;
        if (e->state == CENT_PUT) {
            eddy__rocks_batch_put(b, st->db, st->cf, cent_key(e), e->klen, e->val, e->vlen);
            rc = cl->ops->append(cl, st->id, EDDY_CL_PUT, cent_key(e), e->klen, e->val, e->vlen);
            if (!rc && rcl &&
                (rc = rcl->ops->append(rcl, st->id, EDDY_CL_PUT, cent_key(e), e->klen, e->val,
                                       e->vlen)))
                failed = rcl;
            e->state = CENT_CLEAN;
        } else if (e->state == CENT_DEL) {
            eddy__rocks_batch_del(b, st->db, st->cf, cent_key(e), e->klen);
            rc = cl->ops->append(cl, st->id, EDDY_CL_DEL, cent_key(e), e->klen, NULL, 0);
            if (!rc && rcl &&
                (rc = rcl->ops->append(rcl, st->id, EDDY_CL_DEL, cent_key(e), e->klen, NULL, 0)))
                failed = rcl;
            e->state = CENT_ABSENT;
        } else {
            continue;
        }
        if (rc) {
            eddy__seterr(errstr, errstr_size, "store %s: changelog append failed: %s",
                         st->def->name, failed->errstr);
            return rc;
        }
    }
    st->ndvec = 0;
    st->dirty = 0;
    return EDDY_OK;
}

void eddy__store_trim(eddy_store_t *st, size_t target) {
    if (st->bytes <= target || st->dirty)
        return;
    if (!target) {
        cache_clear(st);
        return;
    }
    st->last = NULL;
    /* at most two turns: the first may only clear marks */
    for (size_t n = 0; n < 2 * st->nbuckets && st->bytes > target; n++) {
        size_t b = st->hand;
        st->hand = (b + 1) & (st->nbuckets - 1);
        cent_t **pp = &st->buckets[b];
        while (*pp && st->bytes > target) {
            cent_t *e = *pp;
            if (e->ref) {
                e->ref = 0;
                pp = &e->hnext;
            } else if (st->ordered) {
                cache_remove(st, e); /* unlinks it from *pp too */
            } else {
                *pp = e->hnext;
                st->nentries--;
                st->bytes -= cent_size(e);
                cent_free(e);
            }
        }
    }
}

void eddy__store_metrics(eddy_store_t *st, eddy_store_metrics_t *m) {
    memset(m, 0, sizeof(*m));
    m->cache_hits = st->hits;
    m->cache_misses = st->misses;
    m->cache_entries = st->nentries;
    m->cache_bytes = st->bytes;
    m->dirty_entries = st->dirty;
    m->estimate_keys = eddy__rocks_estimate_keys(st->db, st->cf);
    m->size_bytes = eddy__rocks_size_bytes(st->db, st->cf);
    m->restored_records = st->restored;
}
