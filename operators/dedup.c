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
 * State. Kept record k of a key belongs to bucket B = k rounded down to a
 * multiple of H, so a bucket holds at most one kept record per key and a
 * record t needs the buckets of t, t - H and (only when a kept record can
 * be later than t) t + H. Each bucket has an exact in-memory map of its
 * keys to their kept times (below), and the durable state is a window
 * store (state/store.h) with segments of width H, committed, changelogged
 * and restored with the task (docs/state.md): after a restart the kept
 * records are still there and no duplicate gets through. An entry is
 * useless once the watermark passes B + 2H (no record that is not late
 * can be within H of it); the store's retention (H, segments of H) drops
 * whole segments after that, and the maps of their buckets go with them,
 * so a key that stopped sending leaves nothing behind. The operator
 * tracks the largest bucket holding a kept record, so the t + H bucket is
 * read only when it can hold something: never on an input in order.
 *
 * keep: first never reads the store while it runs: the maps know every
 * live key (rebuilt from the store when the task opens), and the store
 * gets the keys each process() call kept as one entry per bucket (a
 * batch, below), so a kept key costs the store a few bytes instead of an
 * entry of its own. keep: last stores one entry per group at
 * [segment][key][B]: k, the last record's time, partition and offset
 * (8 bytes each) and the record (state/row.c); its maps cover the
 * buckets made since the task opened (a key not in one has no group
 * there), older buckets are read from the store.
 */
#include "cfg.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include "aggfn.h"
#include "bloom.h"

typedef struct {
    int64_t h;        /* horizon, ms */
    bool keep_last;
    /* approximate: time-sliced Bloom filters (see "approximate" below) */
    bool approx;
    double fpr;       /* the stated false-positive bound */
    int64_t nkeys;    /* expected_keys: kept keys per horizon at most */
    int64_t slices;   /* slices per horizon */
    int64_t w;        /* slice width, ms (approx) */
    int nchecked;     /* filters a record can check, at most */
    eddy_bloom_size_t bsz;
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

static const char *const dedup_keys[] = {"key", "within", "keep", "store", "approximate", NULL};
static const char *const approx_keys[] = {"false_positive_rate", "expected_keys", "slices", NULL};

/* Filters above this size are a config error (the bound is kept by size). */
#define APPROX_MAX_FILTER_BYTES (16ULL << 30)

static eddy_err_t approx_compile(const eddy_cnode_t *m, dedup_conf_t *c, char *errstr,
                                 size_t errstr_size) {
    const eddy_cnode_t *a = eddy__cnode_get(m, "approximate");
    eddy_err_t err;
    if (a->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(a, errstr, errstr_size,
                               "dedup: approximate: expected {false_positive_rate: 0.001, "
                               "expected_keys: 10000000}");
    if ((err = eddy__cfg_check_keys(a, "approximate", approx_keys, errstr, errstr_size)))
        return err;
    if (c->keep_last)
        return eddy__cnode_err(a, errstr, errstr_size,
                               "dedup: approximate needs keep: first (keep: last stores each "
                               "group's record)");
    if ((err = eddy__cfg_double(a, "false_positive_rate", true, 1e-9, 0.5, &c->fpr, errstr,
                                errstr_size)) ||
        (err = eddy__cfg_int(a, "expected_keys", true, 1, INT64_C(1) << 40, &c->nkeys, errstr,
                             errstr_size)))
        return err;
    c->slices = 4;
    if (eddy__cnode_get(a, "slices") &&
        (err = eddy__cfg_int(a, "slices", false, 1, 64, &c->slices, errstr, errstr_size)))
        return err;
    c->w = c->h / c->slices;
    if (c->w < 1)
        return eddy__cnode_err(eddy__cnode_get(a, "slices") ? eddy__cnode_get(a, "slices") : a,
                               errstr, errstr_size,
                               "dedup: approximate: %lld slices of a %lldms horizon are under "
                               "1ms each",
                               (long long)c->slices, (long long)c->h);
    /* a record checks the slices from that of t - H to that of t + H */
    c->nchecked = (int)((2 * c->h + c->w - 1) / c->w + 1);
    if (!eddy__bloom_size((uint64_t)c->nkeys, c->fpr / c->nchecked, APPROX_MAX_FILTER_BYTES,
                          &c->bsz))
        return eddy__cnode_err(a, errstr, errstr_size,
                               "dedup: approximate: a filter for %lld keys at %g would pass "
                               "16GiB; raise false_positive_rate or lower expected_keys",
                               (long long)c->nkeys, c->fpr / c->nchecked);
    c->approx = true;
    return EDDY_OK;
}
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
    if (eddy__cnode_get(m, "approximate") &&
        (err = approx_compile(m, c, errstr, errstr_size)))
        return err;
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
    def->segment_ms = c->approx ? c->w : c->h;
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
    /* keep first stores batches of keys (not one entry per key) */
    def->queryable = c->keep_last;
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
    if (c->approx) {
        /* what it holds in memory: the filters of the slices from that of
         * wm - H to the newest, slices + 2 when the input is in order */
        double mib = (double)eddy__bloom_bytes(&c->bsz) / (1 << 20);
        cc->label = eddy_asprintf(
            "dedup keep first within %lldms by %s, approximate: at most %g false positives a "
            "record up to %lld kept keys a slice; %lld slices of %lldms, a Bloom filter of %.1f MiB "
            "(k=%d) each, %.1f MiB with %lld slices live; store %s",
            (long long)c->h, c->label_key, c->fpr, (long long)c->nkeys, (long long)c->slices,
            (long long)c->w, mib, c->bsz.k, mib * (double)(c->slices + 2),
            (long long)c->slices + 2, c->store_name);
        return EDDY_OK;
    }
    cc->label = eddy_asprintf("dedup keep %s within %lldms by %s, store %s",
                              c->keep_last ? "last" : "first", (long long)c->h, c->label_key,
                              c->store_name);
    return EDDY_OK;
}

/* ------------------------------------------------------------ instance */

/*
 * Bucket maps: per bucket, an exact in-memory map of its keys to their
 * kept record's time. Slots are 64-bit: a 32-bit fingerprint of the key
 * (the hash's high half, which also picks the slot, so growing the map
 * reads no key) and the place + 1 of the key's entry in the bucket's
 * arena ([u32 len][i64 k][key bytes], 4-aligned; places count 4 bytes,
 * so an arena holds up to 16 GiB). A fingerprint match is confirmed by
 * comparing the key, so the map is exact. The key is compared where its
 * kept time is, so a lookup costs two memory reads (slot, arena), both
 * prefetched a chunk of records ahead.
 */
typedef struct kmap_s {
    int64_t b;
    uint64_t *slot; /* 0: empty; else fingerprint << 32 | (place + 1) */
    size_t cap, n;  /* cap: a power of two */
    eddy_buf_t arena;
    bool full;      /* the arena is at its limit: takes no more keys */
} kmap_t;

#define KENT_HDR 12 /* u32 len, i64 k */

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
    return h;
}

static char *kent(const kmap_t *x, uint64_t slot) {
    return x->arena.p + ((size_t)(uint32_t)slot - 1) * 4;
}

static size_t kpos(const kmap_t *x, uint64_t fp) {
    return (size_t)(fp * 0x9E3779B97F4A7C15ULL >> 20) & (x->cap - 1);
}

/* The slot of key: where it is, or the empty slot where it would go. */
static uint64_t *kmap_find(const kmap_t *x, uint64_t h, const char *key, uint32_t klen) {
    uint64_t fp = h >> 32;
    for (size_t i = kpos(x, fp);; i = (i + 1) & (x->cap - 1)) {
        uint64_t sl = x->slot[i];
        if (!sl)
            return &x->slot[i];
        if (sl >> 32 == fp) {
            const char *e = kent(x, sl);
            uint32_t l;
            memcpy(&l, e, 4);
            if (l == klen && !memcmp(e + KENT_HDR, key, klen))
                return &x->slot[i];
        }
    }
}

static void kmap_grow(kmap_t *x) {
    uint64_t *old = x->slot;
    size_t oc = x->cap;
    x->cap = oc ? 2 * oc : 1024;
    x->slot = eddy_calloc(x->cap, sizeof(uint64_t));
    for (size_t i = 0; i < oc; i++) {
        if (!old[i])
            continue;
        size_t j = kpos(x, old[i] >> 32);
        while (x->slot[j])
            j = (j + 1) & (x->cap - 1);
        x->slot[j] = old[i];
    }
    eddy_free(old);
}

/* Record key's kept time k; false when the map is full. */
static bool kmap_put(kmap_t *x, uint64_t h, const char *key, uint32_t klen, int64_t k) {
    size_t place = (x->arena.len + 3) / 4;
    if (x->full || place + (KENT_HDR + klen) / 4 + 2 >= UINT32_MAX) {
        x->full = true;
        return false;
    }
    if (4 * (x->n + 1) > 3 * x->cap)
        kmap_grow(x);
    uint64_t *sl = kmap_find(x, h, key, klen);
    if (*sl) { /* keep last: a group emitted and made again */
        memcpy(kent(x, *sl) + 4, &k, 8);
        return true;
    }
    static const char pad[4];
    if (place * 4 > x->arena.len)
        eddy_buf_put(&x->arena, pad, place * 4 - x->arena.len);
    *sl = (h >> 32) << 32 | (uint64_t)(place + 1);
    eddy_buf_put(&x->arena, &klen, 4);
    eddy_buf_put(&x->arena, &k, 8);
    eddy_buf_put(&x->arena, key, klen);
    x->n++;
    return true;
}

static void kmap_free(kmap_t *x) {
    eddy_free(x->slot);
    eddy_buf_free(&x->arena);
}

typedef struct {
    eddy_store_t *st;
    int64_t max_ts;        /* largest event time seen (expiry runs on min(wm, this)) */
    int64_t top_bucket;    /* largest bucket holding a kept record */
    int64_t scan_seg;      /* keep last: segments below hold nothing due */
    int64_t open_lo, open_hi; /* buckets the store held at open (lo > hi: none) */
    kmap_t **maps;         /* keep first: every live bucket's; keep last: those made
                              since open */
    int nmaps;
    eddy_buf_t enc;
    uint64_t hs[16];       /* process: the hashes of a chunk of records */
    uint64_t seq;          /* keep first: the number of the next batch entry */
    struct pend_s {        /* keep first: keys kept by this process() call */
        int64_t b;
        eddy_buf_t buf;
    } *pend;
    int npend, pcap;
    struct slice_s {       /* approximate: the filter of each live slice */
        int64_t j;
        eddy_bloom_t f;
    } *sl;
    int nsl;
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

/* The map of bucket b; NULL when there is none (yet). */
static kmap_t *map_of(const dedup_state_t *s, int64_t b) {
    for (int i = 0; i < s->nmaps; i++)
        if (s->maps[i]->b == b)
            return s->maps[i];
    return NULL;
}

/* The map of bucket b, made for a bucket new since the task opened; NULL
 * when b was in the store at open (its keys are looked up there). */
static kmap_t *map_for(dedup_state_t *s, int64_t b) {
    kmap_t *x = map_of(s, b);
    if (x || (b >= s->open_lo && b <= s->open_hi))
        return x;
    s->maps = eddy_realloc(s->maps, sizeof(*s->maps) * (size_t)(s->nmaps + 1));
    x = s->maps[s->nmaps++] = eddy_calloc(1, sizeof(*x));
    x->b = b;
    kmap_grow(x);
    return x;
}

/* Drop the maps of buckets below b (their segments expired). */
static void drop_maps(dedup_state_t *s, int64_t below) {
    int k = 0;
    for (int i = 0; i < s->nmaps; i++) {
        if (s->maps[i]->b < below) {
            kmap_free(s->maps[i]);
            eddy_free(s->maps[i]);
        } else {
            s->maps[k++] = s->maps[i];
        }
    }
    s->nmaps = k;
}

/* ------------------------------------------------- keep first: batches */

/*
 * Keep first stores the keys kept by one process() call in one store
 * entry per bucket (a batch): logical key [0xff][u64 sequence, big
 * endian], value a list of [varint key length][key][varint k - bucket
 * start] (approximate: of 8-byte key hashes, per slice). The maps (the
 * filters) are the index; the store is read once, when the task opens,
 * to rebuild them. A batch costs the store (its write cache, the commit's
 * sort, the changelog, RocksDB) about what one kept key did, for some
 * hundreds of keys. Sequence numbers go on from the largest found at
 * open, so a batch never overwrites another.
 */
#define BATCH_TAG 0xff

/* A varint at *p (advanced past it), false when there is none. */
static bool get_uvarint(const char **p, const char *end, uint64_t *v) {
    size_t n = eddy__varint_get(*p, (size_t)(end - *p), v);
    *p += n;
    return n > 0;
}

static void be64_put(char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (char)(v & 0xff);
}

static uint64_t be64_get(const char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

/* A key kept in bucket b at k, into b's map. */
static eddy_err_t remember(dedup_state_t *s, int64_t b, uint64_t h, const char *key,
                           uint32_t klen, int64_t k) {
    kmap_t *x = map_for(s, b);
    if (!kmap_put(x, h, key, klen, k))
        return EDDY_ERR_NOMEM; /* 16 GiB of keys in one bucket of one task */
    if (b > s->top_bucket)
        s->top_bucket = b;
    return EDDY_OK;
}

static eddy_bloom_t *slice_for(dedup_state_t *s, const dedup_conf_t *c, int64_t j);

/* Rebuild the maps (approximate: the filters) from the store. */
static eddy_err_t load_maps(dedup_state_t *s, const dedup_conf_t *c, char *errstr,
                            size_t errstr_size) {
    eddy_store_iter_t *it = eddy__store_iter(s->st, "", 0, NULL, 0);
    const char *k, *v;
    size_t kl, vl;
    eddy_err_t e = EDDY_OK;
    while (!e && eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        const char *lk;
        size_t lkl;
        int64_t ts, ts2;
        if (!eddy__tkey_parse(EDDY_STORE_WINDOW, k, kl, &lk, &lkl, &ts, &ts2))
            continue;
        int64_t b = floor_div(ts, c->approx ? c->w : c->h);
        if (lkl != 9 || (uint8_t)lk[0] != BATCH_TAG || (c->approx && vl % 8)) {
            e = EDDY_ERR_DECODE;
            break;
        }
        uint64_t seq = be64_get(lk + 1);
        if (seq >= s->seq)
            s->seq = seq + 1;
        if (c->approx) {
            eddy_bloom_t *f = slice_for(s, c, b);
            for (size_t i = 0; i < vl; i += 8) {
                uint64_t h;
                memcpy(&h, v + i, 8);
                eddy__bloom_add(f, h);
            }
            if (b > s->top_bucket)
                s->top_bucket = b;
            continue;
        }
        const char *p = v, *end = v + vl;
        while (!e && p < end) {
            uint64_t n, d;
            if (!get_uvarint(&p, end, &n) || n > (uint64_t)(end - p)) {
                e = EDDY_ERR_DECODE;
                break;
            }
            const char *key = p;
            p += n;
            if (!get_uvarint(&p, end, &d) || d >= (uint64_t)c->h) {
                e = EDDY_ERR_DECODE;
                break;
            }
            e = remember(s, b, key_hash(key, n), key, (uint32_t)n, b * c->h + (int64_t)d);
        }
    }
    eddy_err_t e2 = eddy__store_iter_destroy(it);
    if (!e)
        e = e2;
    if (e == EDDY_ERR_DECODE)
        eddy__seterr(errstr, errstr_size, "dedup: store %s holds an entry it cannot read",
                     c->store_name);
    else if (e)
        eddy__seterr(errstr, errstr_size, "dedup: reading store %s: %s", c->store_name,
                     eddy_err2str(e));
    return e;
}

/* This call's batch of bucket (or slice) b. */
static struct pend_s *pend_of(dedup_state_t *s, int64_t b) {
    for (int i = 0; i < s->npend; i++)
        if (s->pend[i].b == b)
            return &s->pend[i];
    if (s->npend == s->pcap) {
        s->pcap = s->pcap ? 2 * s->pcap : 4;
        s->pend = eddy_realloc(s->pend, sizeof(*s->pend) * (size_t)s->pcap);
        memset(s->pend + s->npend, 0, sizeof(*s->pend) * (size_t)(s->pcap - s->npend));
    }
    struct pend_s *pd = &s->pend[s->npend++];
    pd->b = b;
    pd->buf.len = 0;
    return pd;
}

/* Keep first: key kept in bucket b at k, for this call's batch of b. */
static void pend_add(dedup_state_t *s, const dedup_conf_t *c, int64_t b, const char *key,
                     uint32_t klen, int64_t k) {
    struct pend_s *pd = pend_of(s, b);
    eddy__varint_put(&pd->buf, klen);
    eddy_buf_put(&pd->buf, key, klen);
    eddy__varint_put(&pd->buf, (uint64_t)(k - b * c->h));
}

/* Write this call's batches to the store. */
static eddy_err_t pend_write(dedup_state_t *s, const dedup_conf_t *c) {
    eddy_err_t e = EDDY_OK;
    for (int i = 0; i < s->npend && !e; i++) {
        char lk[9];
        lk[0] = (char)BATCH_TAG;
        be64_put(lk + 1, s->seq++);
        e = eddy__store_tput(s->st, lk, sizeof(lk), s->pend[i].b * (c->approx ? c->w : c->h), 0,
                             s->pend[i].buf.p, s->pend[i].buf.len);
    }
    s->npend = 0;
    return e;
}

/* ----------------------------------------------------------- approximate */

/*
 * approximate: {false_positive_rate: p, expected_keys: N, slices: n}.
 * The horizon is cut into n slices of W = H / n; each slice that holds a
 * kept record has a blocked Bloom filter (operators/bloom.h) of the
 * 64-bit hashes of the keys kept in it. A record at t is a duplicate when
 * its key is in the filter of any slice from that of t - H to that of
 * t + H (the later ones only with disorder): a kept record within H is
 * always in one of them, so a duplicate is never let through. Two things
 * drop a record the exact step would keep: a kept record of its key
 * between H and H + W away (in a slice at the edge), and a false
 * positive. Each filter is sized for N keys at p divided by the number
 * of filters a record can check, so while no slice holds more than N
 * kept keys, the chance that a record with no kept record within H + W is
 * dropped is at most p (a union bound over the filters it checks).
 * Memory: one filter per live slice (from that of wm - H to the newest:
 * n + 2 with input in order), each of a size fixed by p and N. The store
 * holds the 8-byte hashes each process() call kept, one entry per slice
 * (segments of W, dropped with the slice); the filters are rebuilt from
 * them when the task opens.
 */
static eddy_bloom_t *slice_of(const dedup_state_t *s, int64_t j) {
    for (int i = 0; i < s->nsl; i++)
        if (s->sl[i].j == j)
            return &s->sl[i].f;
    return NULL;
}

static eddy_bloom_t *slice_for(dedup_state_t *s, const dedup_conf_t *c, int64_t j) {
    eddy_bloom_t *f = slice_of(s, j);
    if (f)
        return f;
    s->sl = eddy_realloc(s->sl, sizeof(*s->sl) * (size_t)(s->nsl + 1));
    s->sl[s->nsl].j = j;
    eddy__bloom_init(&s->sl[s->nsl].f, &c->bsz);
    return &s->sl[s->nsl++].f;
}

static void drop_slices(dedup_state_t *s, int64_t below) {
    int k = 0;
    for (int i = 0; i < s->nsl; i++) {
        if (s->sl[i].j < below)
            eddy__bloom_free(&s->sl[i].f);
        else
            s->sl[k++] = s->sl[i];
    }
    s->nsl = k;
}

/* The Bloom hash of a key: key_hash mixed once more (splitmix64). */
static uint64_t bloom_hash(const eddy_rec_t *r) {
    uint64_t h = key_hash(r->key, r->key_len);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

/* The slices a record at t checks: [*j0, *j1]. */
static void slice_range(const dedup_state_t *s, const dedup_conf_t *c, int64_t t, int64_t *j0,
                        int64_t *j1) {
    *j0 = floor_div(t - c->h, c->w);
    *j1 = floor_div(t + c->h, c->w);
    if (*j1 > s->top_bucket)
        *j1 = s->top_bucket;
}

static void approx_prefetch(dedup_state_t *s, const dedup_conf_t *c, const eddy_batch_t *in,
                            uint32_t from, uint32_t n) {
    if (n > in->n - from)
        n = in->n - from;
    for (uint32_t i = 0; i < n; i++) {
        const eddy_rec_t *r = &in->recs[from + i];
        uint64_t h = s->hs[i] = bloom_hash(r);
        int64_t j0, j1;
        slice_range(s, c, r->ts_ms, &j0, &j1);
        for (int k = 0; k < s->nsl; k++)
            if (s->sl[k].j >= j0 && s->sl[k].j <= j1)
                eddy__bloom_prefetch(&s->sl[k].f, h);
    }
}

/* A record that is not late: noted, true; a late one goes to the late
 * output, false. */
static bool admit(eddy_op_t *op, const eddy_batch_t *in, const eddy_rec_t *r) {
    dedup_state_t *s = op->state;
    if (op->wm_ms != EDDY_WM_MIN && r->ts_ms < op->wm_ms) {
        eddy__task_late(op->task, op->node, in->schema, r);
        return false;
    }
    if (r->ts_ms > s->max_ts)
        s->max_ts = r->ts_ms;
    return true;
}

static eddy_err_t approx_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = op->state;
    enum { CHUNK = sizeof(s->hs) / sizeof(s->hs[0]) };
    for (uint32_t i = 0; i < in->n; i++) {
        if (i % CHUNK == 0)
            approx_prefetch(s, c, in, i, CHUNK);
        const eddy_rec_t *r = &in->recs[i];
        int64_t t = r->ts_ms;
        if (!admit(op, in, r))
            continue;
        uint64_t h = s->hs[i % CHUNK];
        int64_t j0, j1;
        slice_range(s, c, t, &j0, &j1);
        bool dup = false;
        for (int k = 0; k < s->nsl && !dup; k++)
            dup = s->sl[k].j >= j0 && s->sl[k].j <= j1 && eddy__bloom_has(&s->sl[k].f, h);
        if (dup)
            continue;
        int64_t j = floor_div(t, c->w);
        eddy__bloom_add(slice_for(s, c, j), h);
        if (j > s->top_bucket)
            s->top_bucket = j;
        struct pend_s *pd = pend_of(s, j);
        eddy_buf_put(&pd->buf, &h, 8);
        *eddy_batch_push(out) = *r;
    }
    return pend_write(s, c);
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
    s->open_lo = 1;
    s->open_hi = 0;
    if (!c->keep_last)
        return load_maps(s, c, errstr, errstr_size);
    eddy_err_t e = top_bucket(s, c, &s->top_bucket);
    if (e)
        return e;
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
    drop_maps(s, INT64_MAX);
    eddy_free(s->maps);
    drop_slices(s, INT64_MAX);
    eddy_free(s->sl);
    for (int i = 0; i < s->pcap; i++)
        eddy_buf_free(&s->pend[i].buf);
    eddy_free(s->pend);
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
    const kmap_t *x = map_of(s, b);
    if (x) {
        const uint64_t *sl = kmap_find(x, h, r->key, r->key_len);
        if (*sl) {
            out->found = true;
            memcpy(&out->k, kent(x, *sl) + 4, 8);
            return EDDY_OK;
        }
        if (!x->full || !c->keep_last)
            return EDDY_OK;
    } else if (!c->keep_last || b < s->open_lo || b > s->open_hi) {
        return EDDY_OK; /* a bucket nothing was kept in */
    }
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

/* Hash a chunk of records and prefetch what their lookups will read: the
 * slot of each key in its bucket's map, then the key's entry when the
 * slot's fingerprint matches. The lookups that follow find them in the
 * cache instead of waiting for memory one after another. */
static void prefetch_chunk(dedup_state_t *s, const dedup_conf_t *c, const eddy_batch_t *in,
                           uint32_t from, uint32_t n) {
    if (n > in->n - from)
        n = in->n - from;
    const kmap_t *xs[sizeof(s->hs) / sizeof(s->hs[0])];
    const kmap_t *last = NULL;
    for (uint32_t j = 0; j < n; j++) {
        const eddy_rec_t *r = &in->recs[from + j];
        uint64_t h = s->hs[j] = key_hash(r->key, r->key_len);
        int64_t b = floor_div(r->ts_ms, c->h);
        if (!last || last->b != b)
            last = map_of(s, b);
        xs[j] = last;
        if (last)
            __builtin_prefetch(&last->slot[kpos(last, h >> 32)]);
    }
    for (uint32_t j = 0; j < n; j++) {
        const kmap_t *x = xs[j];
        if (!x)
            continue;
        uint64_t sl = x->slot[kpos(x, s->hs[j] >> 32)];
        if (sl && sl >> 32 == s->hs[j] >> 32)
            __builtin_prefetch(kent(x, sl));
    }
}

static eddy_err_t dedup_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const dedup_conf_t *c = op->node->conf;
    dedup_state_t *s = op->state;
    if (c->approx)
        return approx_process(op, in, out);
    enum { CHUNK = sizeof(s->hs) / sizeof(s->hs[0]) };
    for (uint32_t i = 0; i < in->n; i++) {
        if (i % CHUNK == 0)
            prefetch_chunk(s, c, in, i, CHUNK);
        const eddy_rec_t *r = &in->recs[i];
        int64_t t = r->ts_ms;
        if (!admit(op, in, r))
            continue;
        eddy_err_t e;
        kept_t kp;
        uint64_t h = s->hs[i % CHUNK];
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
        if (!c->keep_last) {
            if ((e = remember(s, b, h, r->key, r->key_len, t)))
                return e;
            pend_add(s, c, b, r->key, r->key_len, t);
            *eddy_batch_push(out) = *r;
            continue;
        }
        group_value(s, in, r, t);
        e = eddy__store_tput(s->st, r->key, r->key_len, b * c->h, 0, s->enc.p, s->enc.len);
        if (e)
            return e;
        kmap_t *x = map_for(s, b);
        if (x)
            kmap_put(x, h, r->key, r->key_len, t); /* full: the store has it */
        if (b > s->top_bucket)
            s->top_bucket = b;
    }
    return pend_write(s, c);
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
    if (c->approx)
        drop_slices(s, floor_div(now - c->h, c->w));
    else
        drop_maps(s, floor_div(now - c->h, c->h));
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
