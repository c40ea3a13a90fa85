/*
 * Read-only store queries (public eddy_engine_query_*). They read each
 * task's RocksDB column family directly: committed state, consistent per
 * key, safe while the stream threads write (RocksDB reads are thread-safe
 * and iterators see a snapshot). A store's keys are spread over tasks by
 * hash, so a scan merges the tasks' iterators by key; a get goes to the
 * task the key hashes to, as key_by routed it.
 */
#include "plan.h"
#include "state/rocks.h"
#include "state/row.h"
#include "state/store.h"
#include "state/tstate.h"

eddy_tstate_t *eddy__engine_tstate(eddy_engine_t *eng, int task);
int eddy__engine_ntasks(eddy_engine_t *eng);
eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);

static int find_store(eddy_plan_t *p, const char *name) {
    for (int i = 0; name && i < p->nstores; i++)
        if (!strcmp(p->stores[i]->name, name) && p->stores[i]->queryable)
            return i;
    return -1;
}

int eddy_engine_stores(eddy_engine_t *eng, const char **names, int max) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int n = 0;
    for (int i = 0; i < p->nstores; i++) {
        if (!p->stores[i]->queryable)
            continue;
        if (n < max)
            names[n] = p->stores[i]->name;
        n++;
    }
    return n;
}

static eddy_err_t deliver(const eddy_store_def_t *def, const char *v, size_t vl,
                          eddy_sink_cb_t cb, void *opaque) {
    int nf = def->value_schema->nfields;
    eddy_value_t stackv[64];
    eddy_value_t *vals = nf <= 64 ? stackv : eddy_calloc((size_t)nf, sizeof(*vals));
    eddy_arena_t a;
    eddy_arena_init(&a, 4096);
    eddy_err_t e = def->decode_value ? def->decode_value(def, v, vl, &a, vals)
                                     : eddy__row_decode(v, vl, nf, vals);
    if (!e) {
        eddy_record_t rec = {.schema = def->value_schema, .values = vals};
        e = cb(&rec, opaque);
    }
    eddy_arena_free(&a);
    if (vals != stackv)
        eddy_free(vals);
    return e;
}

eddy_err_t eddy_engine_query_get(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                                 int nkey, eddy_sink_cb_t cb, void *opaque) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (si < 0)
        return EDDY_ERR_NOENT;
    const eddy_store_def_t *def = p->stores[si];
    if (!key || nkey != def->key_schema->nfields)
        return EDDY_ERR_TYPE;
    char kb[4096];
    size_t kl = 0;
    for (int i = 0; i < nkey; i++) {
        if (key[i].type != EDDY_TYPE_NULL && key[i].type != (uint8_t)def->key_schema->fields[i].type)
            return EDDY_ERR_TYPE;
        kl += eddy__key_encode(&key[i], kb + kl, sizeof(kb) - kl);
        if (kl >= sizeof(kb))
            return EDDY_ERR_INVAL;
    }
    int nt = eddy__engine_ntasks(eng);
    int task = (int)(eddy__hash64(kb, kl) % (uint64_t)nt);
    eddy_tstate_t *ts = eddy__engine_tstate(eng, task);
    if (!ts)
        return EDDY_ERR_NOENT;
    eddy_buf_t v = {0};
    bool found = false;
    char err[256];
    eddy_err_t e = eddy__rocks_get(eddy__tstate_db(ts), eddy__tstate_cf(ts, si), kb, kl, &v,
                                   &found, err, sizeof(err));
    if (!e && !found)
        e = EDDY_ERR_NOENT;
    if (!e)
        e = deliver(def, v.p, v.len, cb, opaque);
    eddy_buf_free(&v);
    return e;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

eddy_err_t eddy_engine_query_scan(eddy_engine_t *eng, const char *store, const char *cursor,
                                  int limit, eddy_sink_cb_t cb, void *opaque, char *next_cursor,
                                  size_t next_cursor_size) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (next_cursor && next_cursor_size)
        next_cursor[0] = 0;
    if (si < 0)
        return EDDY_ERR_NOENT;
    if (limit <= 0)
        return EDDY_ERR_INVAL;
    const eddy_store_def_t *def = p->stores[si];
    /* cursor: hex of the last key returned; resume strictly after it */
    char start[4097];
    size_t sl = 0;
    if (cursor && *cursor) {
        size_t n = strlen(cursor);
        if (n % 2 || n / 2 >= sizeof(start) - 1)
            return EDDY_ERR_INVAL;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(cursor[i]), lo = hexval(cursor[i + 1]);
            if (hi < 0 || lo < 0)
                return EDDY_ERR_INVAL;
            start[sl++] = (char)(hi * 16 + lo);
        }
        start[sl++] = 0; /* smallest key after it */
    }
    int nt = eddy__engine_ntasks(eng);
    eddy_rocks_iter_t **its = eddy_calloc((size_t)nt, sizeof(*its));
    for (int t = 0; t < nt; t++) {
        eddy_tstate_t *ts = eddy__engine_tstate(eng, t);
        if (!ts)
            continue;
        its[t] = eddy__rocks_iter_new(eddy__tstate_db(ts), eddy__tstate_cf(ts, si), NULL, 0,
                                      NULL, 0);
        eddy__rocks_iter_seek(its[t], start, sl);
    }
    eddy_err_t e = EDDY_OK;
    int count = 0;
    char last[4096];
    size_t lastlen = 0;
    while (!e) {
        int best = -1;
        const char *bk = NULL;
        size_t bkl = 0;
        for (int t = 0; t < nt; t++) {
            if (!its[t] || !eddy__rocks_iter_valid(its[t]))
                continue;
            size_t kl;
            const char *k = eddy__rocks_iter_key(its[t], &kl);
            size_t m = kl < bkl ? kl : bkl;
            int c = best < 0 ? -1 : memcmp(k, bk, m);
            if (best < 0 || c < 0 || (c == 0 && kl < bkl)) {
                best = t;
                bk = k;
                bkl = kl;
            }
        }
        if (best < 0)
            break;
        if (count == limit) {
            /* more remain: the cursor is the last key delivered */
            if (next_cursor && next_cursor_size > lastlen * 2) {
                for (size_t i = 0; i < lastlen; i++)
                    snprintf(next_cursor + 2 * i, 3, "%02x", (unsigned char)last[i]);
            } else {
                e = EDDY_ERR_INVAL;
            }
            break;
        }
        size_t vl;
        const char *v = eddy__rocks_iter_value(its[best], &vl);
        lastlen = bkl < sizeof(last) ? bkl : sizeof(last);
        memcpy(last, bk, lastlen);
        e = deliver(def, v, vl, cb, opaque);
        count++;
        eddy__rocks_iter_next(its[best]);
    }
    for (int t = 0; t < nt; t++)
        if (its[t])
            eddy__rocks_iter_destroy(its[t]);
    eddy_free(its);
    return e;
}

int eddy_engine_store_stats(eddy_engine_t *eng, eddy_store_stats_t *out, int max) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int nt = eddy__engine_ntasks(eng);
    for (int i = 0; i < p->nstores && i < max; i++) {
        eddy_store_stats_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        o->name = p->stores[i]->name;
        for (int t = 0; t < nt; t++) {
            eddy_tstate_t *ts = eddy__engine_tstate(eng, t);
            if (!ts)
                continue;
            o->estimate_keys += eddy__rocks_estimate_keys(eddy__tstate_db(ts), eddy__tstate_cf(ts, i));
            o->size_bytes += eddy__rocks_size_bytes(eddy__tstate_db(ts), eddy__tstate_cf(ts, i));
            uint64_t h, m, r, rec;
            double secs;
            eddy__tstate_store_stats(ts, i, &h, &m, &r);
            o->cache_hits += h;
            o->cache_misses += m;
            o->restored_records += r;
            eddy__tstate_restore_stats(ts, &rec, &secs);
            if (secs > o->restore_seconds)
                o->restore_seconds = secs;
        }
    }
    return p->nstores;
}
