/*
 * Read-only store queries (public eddy_engine_query_*). They read each
 * task's RocksDB column family directly: committed state, consistent per
 * key, safe while the stream threads write (RocksDB reads are thread-safe
 * and iterators see a snapshot). A store's keys are spread over tasks by
 * hash, so a scan merges the tasks' iterators by key; a get goes to the
 * task the key hashes to, as key_by routed it.
 */
#include <stdlib.h>

#include "plan.h"
#include "state/rocks.h"
#include "state/row.h"
#include "state/store.h"
#include "state/tstate.h"

eddy_tstate_t *eddy__engine_tstate(eddy_engine_t *eng, int task);
int eddy__engine_ntasks(eddy_engine_t *eng);
eddy_state_env_t *eddy__engine_state_env(eddy_engine_t *eng);
eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);
/* Tasks open and close while the engine runs (Kafka group assignment):
 * queries hold the read side so no store closes under them. */
void eddy__engine_tasks_rdlock(eddy_engine_t *eng);
void eddy__engine_tasks_unlock(eddy_engine_t *eng);

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

/* Encode key values against the first n fields of the key schema into
 * kb; INT is accepted for TIMESTAMP and DOUBLE fields. *len gets the
 * length; with string_prefix the last value (a string) is encoded
 * without its terminator. */
static eddy_err_t encode_key(const eddy_schema_t *ks, const eddy_value_t *key, int n,
                             bool string_prefix, char *kb, size_t cap, size_t *len) {
    size_t kl = 0;
    if (n < 0 || n > ks->nfields)
        return EDDY_ERR_TYPE;
    for (int i = 0; i < n; i++) {
        eddy_value_t v = key[i];
        eddy_type_t ft = ks->fields[i].type;
        if (v.type == EDDY_TYPE_INT && ft == EDDY_TYPE_TIMESTAMP)
            v.type = EDDY_TYPE_TIMESTAMP;
        else if (v.type == EDDY_TYPE_INT && ft == EDDY_TYPE_DOUBLE) {
            v.u.d = (double)key[i].u.i;
            v.type = EDDY_TYPE_DOUBLE;
        }
        if (v.type != EDDY_TYPE_NULL && v.type != (uint8_t)ft)
            return EDDY_ERR_TYPE;
        size_t m = eddy__key_encode(&v, kb + kl, cap - kl);
        if (m > cap - kl)
            return EDDY_ERR_INVAL;
        if (string_prefix && i == n - 1) {
            if (v.type != EDDY_TYPE_STRING && v.type != EDDY_TYPE_BYTES)
                return EDDY_ERR_TYPE;
            m -= 2; /* drop the 0x00 0x00 terminator */
        }
        kl += m;
    }
    *len = kl;
    return EDDY_OK;
}

/* The smallest byte string greater than every string starting with p. */
static size_t prefix_successor(char *p, size_t n) {
    while (n > 0 && (unsigned char)p[n - 1] == 0xff)
        n--;
    if (n > 0)
        p[n - 1] = (char)((unsigned char)p[n - 1] + 1);
    return n; /* 0: no upper bound */
}

static int task_of(eddy_engine_t *eng, const char *kb, size_t kl) {
    return eddy__key_task(kb, kl, eddy__engine_ntasks(eng));
}

/* The task a key of store lives on (scale-out routing), or -1; a
 * window, session or log store without key fields (one global key, routed
 * on a constant) has no one task: -1. */
int eddy__engine_query_task(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                            int nkey) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (si < 0 || !key || nkey < 1 || nkey != p->stores[si]->key_schema->nfields)
        return -1;
    char kb[4096];
    size_t kl = 0;
    if (encode_key(p->stores[si]->key_schema, key, nkey, false, kb, sizeof(kb), &kl))
        return -1;
    return task_of(eng, kb, kl);
}

/* absent_if_closed: a key of a task not open here is absent (the public
 * call); else EDDY_ERR_STATE says the task is not open (scale-out) */
static eddy_err_t query_get(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                            int nkey, bool absent_if_closed, eddy_sink_cb_t cb, void *opaque) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (si < 0)
        return EDDY_ERR_NOENT;
    const eddy_store_def_t *def = p->stores[si];
    if (def->kind != EDDY_STORE_KV)
        return EDDY_ERR_UNSUPPORTED;
    if (!key || nkey != def->key_schema->nfields)
        return EDDY_ERR_TYPE;
    char kb[4096];
    size_t kl = 0;
    eddy_err_t e = encode_key(def->key_schema, key, nkey, false, kb, sizeof(kb), &kl);
    if (e)
        return e;
    int task = task_of(eng, kb, kl);
    eddy_tstate_t *ts = eddy__engine_tstate(eng, task);
    if (!ts) /* a task being restored here: not absent, not yet */
        return absent_if_closed && !eddy__engine_task_opening(eng, task) ? EDDY_ERR_NOENT
                                                                         : EDDY_ERR_STATE;
    eddy_buf_t v = {0};
    bool found = false;
    char err[256];
    e = eddy__rocks_get(eddy__tstate_db(ts), eddy__tstate_cf(ts, si), kb, kl, &v, &found, err,
                        sizeof(err));
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

/* cursor (hex of the last key returned) -> the smallest key after it */
static eddy_err_t cursor_decode(const char *cursor, char *out, size_t cap, size_t *len) {
    size_t n = strlen(cursor), sl = 0;
    if (n % 2 || n / 2 + 1 > cap)
        return EDDY_ERR_INVAL;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval(cursor[i]), lo = hexval(cursor[i + 1]);
        if (hi < 0 || lo < 0)
            return EDDY_ERR_INVAL;
        out[sl++] = (char)(hi * 16 + lo);
    }
    out[sl++] = 0;
    *len = sl;
    return EDDY_OK;
}

static eddy_err_t cursor_encode(const char *k, size_t kl, char *out, size_t cap) {
    if (!out || cap <= kl * 2)
        return EDDY_ERR_INVAL;
    for (size_t i = 0; i < kl; i++)
        snprintf(out + 2 * i, 3, "%02x", (unsigned char)k[i]);
    return EDDY_OK;
}

static int keycmp(const char *a, size_t al, const char *b, size_t bl) {
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al < bl ? -1 : al > bl);
}

/* Common start of a paged query: the store's index (or an error), the
 * cursor copied to cbuf (next_cursor may alias it), next_cursor cleared. */
static int query_begin(eddy_plan_t *p, const char *store, const char **cursor, char *cbuf,
                       size_t cbuf_size, char *next_cursor, size_t next_cursor_size) {
    if (*cursor && strlen(*cursor) >= cbuf_size)
        return EDDY_ERR_INVAL;
    *cursor = *cursor ? strcpy(cbuf, *cursor) : NULL;
    if (next_cursor && next_cursor_size)
        next_cursor[0] = 0;
    int si = find_store(p, store);
    return si < 0 ? EDDY_ERR_NOENT : si;
}

/* on_key (or NULL) gets each entry's store key just before cb gets it */
static eddy_err_t query_range(eddy_engine_t *eng, const char *store,
                              const eddy_key_range_t *range, const char *cursor, int limit,
                              eddy_sink_cb_t cb, void (*on_key)(const char *k, size_t kl, void *opaque), void *opaque,
                              char *next_cursor, size_t next_cursor_size) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    char cbuf[8300];
    int si = query_begin(p, store, &cursor, cbuf, sizeof(cbuf), next_cursor, next_cursor_size);
    if (si < 0)
        return si;
    if (limit <= 0)
        return EDDY_ERR_INVAL;
    const eddy_store_def_t *def = p->stores[si];
    bool ranged = range && (range->nprefix > 0 || range->nfrom > 0 || range->nto > 0);
    if (ranged && def->kind != EDDY_STORE_KV)
        return EDDY_ERR_UNSUPPORTED;
    /* [lo, hi) from the prefix, from, to and the cursor */
    char lo[4100], hi[4100], tmp[4100];
    size_t lol = 0, hil = 0, tl;
    bool have_hi = false;
    eddy_err_t e;
    if (ranged && range->nprefix > 0) {
        if ((e = encode_key(def->key_schema, range->prefix, range->nprefix, range->string_prefix,
                            lo, sizeof(lo), &lol)))
            return e;
        memcpy(hi, lo, lol);
        hil = prefix_successor(hi, lol);
        have_hi = hil > 0;
    }
    if (ranged && range->nfrom > 0) {
        if ((e = encode_key(def->key_schema, range->from, range->nfrom, false, tmp, sizeof(tmp),
                            &tl)))
            return e;
        if (keycmp(tmp, tl, lo, lol) > 0) {
            memcpy(lo, tmp, tl);
            lol = tl;
        }
    }
    if (ranged && range->nto > 0) {
        if ((e = encode_key(def->key_schema, range->to, range->nto, false, tmp, sizeof(tmp),
                            &tl)))
            return e;
        if (!have_hi || keycmp(tmp, tl, hi, hil) < 0) {
            memcpy(hi, tmp, tl);
            hil = tl;
            have_hi = true;
        }
    }
    if (cursor && *cursor) {
        if ((e = cursor_decode(cursor, tmp, sizeof(tmp), &tl)))
            return e;
        if (keycmp(tmp, tl, lo, lol) > 0) {
            memcpy(lo, tmp, tl);
            lol = tl;
        }
    }
    if (have_hi && keycmp(lo, lol, hi, hil) >= 0)
        return EDDY_OK; /* empty range */
    int nt = eddy__engine_ntasks(eng);
    eddy_rocks_iter_t **its = eddy_calloc((size_t)nt, sizeof(*its));
    for (int t = 0; t < nt; t++) {
        eddy_tstate_t *ts = eddy__engine_tstate(eng, t);
        if (!ts)
            continue;
        its[t] = eddy__rocks_iter_new(eddy__tstate_db(ts), eddy__tstate_cf(ts, si), NULL, 0,
                                      have_hi ? hi : NULL, have_hi ? hil : 0);
        eddy__rocks_iter_seek(its[t], lo, lol);
    }
    e = EDDY_OK;
    int count = 0;
    char last[4100];
    size_t lastlen = 0;
    while (!e) {
        int best = -1;
        const char *bk = NULL;
        size_t bkl = 0;
        /* merge the tasks' iterators by key */
        for (int t = 0; t < nt; t++) {
            if (!its[t] || !eddy__rocks_iter_valid(its[t]))
                continue;
            size_t kl;
            const char *k = eddy__rocks_iter_key(its[t], &kl);
            if (best < 0 || keycmp(k, kl, bk, bkl) < 0) {
                best = t;
                bk = k;
                bkl = kl;
            }
        }
        if (best < 0)
            break;
        if (count == limit) {
            e = cursor_encode(last, lastlen, next_cursor, next_cursor_size);
            break;
        }
        size_t vl;
        const char *v = eddy__rocks_iter_value(its[best], &vl);
        lastlen = bkl < sizeof(last) ? bkl : sizeof(last);
        memcpy(last, bk, lastlen);
        if (on_key)
            on_key(bk, bkl, opaque);
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

eddy_err_t eddy_engine_query_scan(eddy_engine_t *eng, const char *store, const char *cursor,
                                  int limit, eddy_sink_cb_t cb, void *opaque, char *next_cursor,
                                  size_t next_cursor_size) {
    return eddy_engine_query_range(eng, store, NULL, cursor, limit, cb, opaque, next_cursor,
                                   next_cursor_size);
}

typedef struct {
    int field;
    int64_t from_ms;
    bool pass;
} end_filter_t;

/* Session overlap: the session [start, end) reaches past from_ms. */
static eddy_err_t end_filter(const eddy_record_t *rec, void *opaque) {
    end_filter_t *f = opaque;
    f->pass = f->field >= 0 && rec->values[f->field].u.i > f->from_ms;
    return EDDY_OK;
}

/*
 * Windows of one key, on one task: physical keys are
 * [segment][key][ts][ts2], so within a segment the key's entries are
 * contiguous and ordered by time. Walk the segments that exist (one seek
 * each): from the segment of from_ms, seeking [segment][key][from_ms].
 */
static eddy_err_t windows_on_task(eddy_engine_t *eng, int t, int si, const char *kb, size_t kl,
                                  int64_t from_ms, int64_t to_ms, const char *after,
                                  size_t afterlen, int limit, int *count, char *last,
                                  size_t *lastlen, bool *more, eddy_sink_cb_t cb, void *opaque) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    const eddy_store_def_t *def = p->stores[si];
    bool session = def->kind == EDDY_STORE_SESSION;
    /* sessions filed by start: every start <= to_ms, then end > from_ms */
    bool by_start = def->sessions;
    int end_field = by_start ? eddy_schema_field_index(def->value_schema, "window_end") : -1;
    int64_t seek_from = by_start ? INT64_MIN / 4 : from_ms; /* no overflow in segments */
    eddy_tstate_t *ts = eddy__engine_tstate(eng, t);
    if (!ts)
        return EDDY_OK;
    char seek[4200], tobuf[4200];
    size_t sl = eddy__tkey_build(def->kind, def->segment_ms, kb, kl, seek_from, INT64_MIN, seek,
                                 sizeof(seek));
    size_t tol = eddy__tkey_build(def->kind, def->segment_ms, kb, kl, to_ms, INT64_MIN, tobuf,
                                  sizeof(tobuf));
    if (!sl || !tol)
        return EDDY_ERR_INVAL;
    eddy_rocks_iter_t *it = eddy__rocks_iter_new(eddy__tstate_db(ts), eddy__tstate_cf(ts, si),
                                                 NULL, 0, NULL, 0);
    if (after && keycmp(after, afterlen, seek, sl) > 0)
        eddy__rocks_iter_seek(it, after, afterlen);
    else
        eddy__rocks_iter_seek(it, seek, sl);
    eddy_err_t e = EDDY_OK;
    while (!e && eddy__rocks_iter_valid(it)) {
        size_t pkl;
        const char *pk = eddy__rocks_iter_key(it, &pkl);
        /* windows start in segments after to_ms's: done */
        if (!session && memcmp(pk, tobuf, 8) > 0)
            break;
        const char *lk;
        size_t lkl;
        int64_t t1, t2;
        bool ours = eddy__tkey_parse(def->kind, pk, pkl, &lk, &lkl, &t1, &t2) && lkl == kl &&
                    !memcmp(lk, kb, kl);
        if (!ours) {
            char at[8];
            memcpy(at, seek, 8);
            memcpy(seek, pk, 8);
            if (memcmp(pk, at, 8) > 0 && keycmp(seek, sl, pk, pkl) > 0) {
                /* landed in a later segment before our key: look there */
            } else {
                /* past our key in this segment: on to the next segment */
                size_t n = prefix_successor(seek, 8);
                if (n == 0)
                    break;
                memset(seek + n, 0, 8 - n);
            }
            eddy__rocks_iter_seek(it, seek, sl);
            continue;
        }
        /* window: ts = start; session: ts = end, ts2 = start */
        bool in = session ? (t1 >= from_ms && t2 <= to_ms) : (t1 >= seek_from && t1 <= to_ms);
        if (!session && t1 > to_ms)
            break;
        size_t vl;
        const char *v = eddy__rocks_iter_value(it, &vl);
        if (in && by_start) {
            end_filter_t ef = {.field = end_field, .from_ms = from_ms};
            in = deliver(def, v, vl, end_filter, &ef) == EDDY_OK && ef.pass;
        }
        if (in) {
            if (*count == limit) {
                *more = true;
                break;
            }
            *lastlen = pkl < 4200 ? pkl : 4200;
            memcpy(last, pk, *lastlen);
            e = deliver(def, v, vl, cb, opaque);
            (*count)++;
        }
        eddy__rocks_iter_next(it);
    }
    eddy__rocks_iter_destroy(it);
    return e;
}

/* need_open: EDDY_ERR_STATE when the key's task is not open here (scale-out
 * routing), else such a key has no windows */
static eddy_err_t query_windows(eddy_engine_t *eng, const char *store,
                                const eddy_value_t *key, int nkey, int64_t from_ms,
                                int64_t to_ms, const char *cursor, int limit, bool need_open,
                                eddy_sink_cb_t cb, void *opaque, char *next_cursor,
                                size_t next_cursor_size) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    char cbuf[8300];
    int si = query_begin(p, store, &cursor, cbuf, sizeof(cbuf), next_cursor, next_cursor_size);
    if (si < 0)
        return si;
    const eddy_store_def_t *def = p->stores[si];
    /* log stores (CEP matches): the entries of the key whose time is in range */
    if (def->kind != EDDY_STORE_WINDOW && def->kind != EDDY_STORE_SESSION &&
        def->kind != EDDY_STORE_LOG)
        return EDDY_ERR_UNSUPPORTED;
    if (limit <= 0 || from_ms > to_ms)
        return EDDY_ERR_INVAL;
    /* segment arithmetic stays far from overflow; no window lies beyond */
    const int64_t tmax = INT64_MAX / 4;
    from_ms = from_ms < -tmax ? -tmax : from_ms > tmax ? tmax : from_ms;
    to_ms = to_ms < -tmax ? -tmax : to_ms > tmax ? tmax : to_ms;
    if (nkey != def->key_schema->nfields || (nkey && !key))
        return EDDY_ERR_TYPE;
    char kb[4096];
    size_t kl = 0;
    eddy_err_t e = encode_key(def->key_schema, key, nkey, false, kb, sizeof(kb), &kl);
    if (e)
        return e;
    /* cursor: "<task>:<hex of the last physical key>" */
    char after[4200];
    size_t afterlen = 0;
    int t0 = 0;
    if (cursor && *cursor) {
        char *colon = strchr(cursor, ':');
        if (!colon)
            return EDDY_ERR_INVAL;
        t0 = atoi(cursor);
        if (t0 < 0 || t0 >= eddy__engine_ntasks(eng) ||
            (e = cursor_decode(colon + 1, after, sizeof(after), &afterlen)))
            return EDDY_ERR_INVAL;
    }
    /* a key lives on the task it hashes to; without key fields (one global
     * window) the engine routed on a constant, so look at every task */
    int nt = eddy__engine_ntasks(eng);
    int tfirst = nkey ? task_of(eng, kb, kl) : t0, tlast = nkey ? tfirst : nt - 1;
    if (need_open && nkey && !eddy__engine_tstate(eng, tfirst))
        return EDDY_ERR_STATE;
    int count = 0;
    char last[4200];
    size_t lastlen = 0;
    bool more = false;
    for (int t = tfirst; !e && !more && t <= tlast; t++) {
        bool resume = cursor && *cursor && t == t0;
        e = windows_on_task(eng, t, si, kb, kl, from_ms, to_ms, resume ? after : NULL,
                            resume ? afterlen : 0, limit, &count, last, &lastlen, &more, cb,
                            opaque);
        if (more && !e) {
            if (!next_cursor || next_cursor_size < 16 + 2 * lastlen)
                return EDDY_ERR_INVAL;
            int n = snprintf(next_cursor, next_cursor_size, "%d:", t);
            e = cursor_encode(last, lastlen, next_cursor + n, next_cursor_size - (size_t)n);
        }
    }
    return e;
}

static const char *kind_name(eddy_store_kind_t k) {
    switch (k) {
    case EDDY_STORE_KV:
        return "kv";
    case EDDY_STORE_WINDOW:
        return "window";
    case EDDY_STORE_SESSION:
        return "session";
    case EDDY_STORE_LOG:
        return "log";
    }
    return "?";
}

eddy_err_t eddy_engine_store_info(eddy_engine_t *eng, const char *store,
                                  eddy_store_info_t *info) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (si < 0)
        return EDDY_ERR_NOENT;
    const eddy_store_def_t *def = p->stores[si];
    memset(info, 0, sizeof(*info));
    info->name = def->name;
    info->kind = def->sessions ? "session" : kind_name(def->kind);
    info->node = def->node >= 0 && def->node < p->nnodes ? p->nodes[def->node].name : "";
    info->key_schema = def->key_schema;
    info->value_schema = def->value_schema;
    info->retention_ms = def->retention_ms;
    return EDDY_OK;
}

static int store_stats(eddy_engine_t *eng, eddy_store_stats_t *out, int max) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int nt = eddy__engine_ntasks(eng);
    for (int i = 0; i < p->nstores && i < max; i++) {
        eddy_store_stats_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        o->name = p->stores[i]->name;
        o->newest_event_ms = INT64_MIN;
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
            int64_t nw = eddy__tstate_store_newest(ts, i);
            if (nw > o->newest_event_ms)
                o->newest_event_ms = nw;
            if (secs > o->restore_seconds)
                o->restore_seconds = secs;
        }
    }
    return p->nstores;
}

/* ------------------------------------------------------------ public */

eddy_err_t eddy_engine_query_get(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                                 int nkey, eddy_sink_cb_t cb, void *opaque) {
    eddy__engine_tasks_rdlock(eng);
    eddy_err_t e = query_get(eng, store, key, nkey, true, cb, opaque);
    eddy__engine_tasks_unlock(eng);
    return e;
}

eddy_err_t eddy__engine_query_get_standby(eddy_engine_t *eng, const char *store,
                                          const eddy_value_t *key, int nkey, eddy_sink_cb_t cb,
                                          void *opaque, int64_t *lag, int64_t *age_ms) {
    eddy_plan_t *p = eddy__engine_plan(eng);
    int si = find_store(p, store);
    if (si < 0 || p->stores[si]->kind != EDDY_STORE_KV || !key ||
        nkey != p->stores[si]->key_schema->nfields)
        return EDDY_ERR_INVAL;
    const eddy_store_def_t *def = p->stores[si];
    char kb[4096];
    size_t kl = 0;
    eddy_err_t e = encode_key(def->key_schema, key, nkey, false, kb, sizeof(kb), &kl);
    if (e)
        return e;
    eddy_buf_t v = {0};
    bool found = false;
    e = eddy__state_standby_get(eddy__engine_state_env(eng), task_of(eng, kb, kl), def->name, kb,
                                kl, &v, &found, lag, age_ms);
    if (e == EDDY_ERR_NOENT)
        e = EDDY_ERR_STATE; /* no copy here */
    else if (!e && !found)
        e = EDDY_ERR_NOENT;
    if (!e)
        e = deliver(def, v.p, v.len, cb, opaque);
    eddy_buf_free(&v);
    return e;
}

int eddy__engine_restore_progress(eddy_engine_t *eng, int task, eddy_restore_progress_t *out,
                                  int max) {
    return eddy__state_restore_progress(eddy__engine_state_env(eng), task, out, max);
}

eddy_err_t eddy__engine_query_get_open(eddy_engine_t *eng, const char *store,
                                       const eddy_value_t *key, int nkey, eddy_sink_cb_t cb,
                                       void *opaque) {
    eddy__engine_tasks_rdlock(eng);
    eddy_err_t e = query_get(eng, store, key, nkey, false, cb, opaque);
    eddy__engine_tasks_unlock(eng);
    return e;
}

eddy_err_t eddy__engine_query_range_keyed(eddy_engine_t *eng, const char *store,
                                          const eddy_key_range_t *range, const char *cursor,
                                          int limit, eddy_sink_cb_t cb,
                                          void (*on_key)(const char *k, size_t kl, void *opaque),
                                          void *opaque, char *next_cursor,
                                          size_t next_cursor_size) {
    eddy__engine_tasks_rdlock(eng);
    eddy_err_t e = query_range(eng, store, range, cursor, limit, cb, on_key, opaque, next_cursor,
                               next_cursor_size);
    eddy__engine_tasks_unlock(eng);
    return e;
}

eddy_err_t eddy_engine_query_range(eddy_engine_t *eng, const char *store,
                                   const eddy_key_range_t *range, const char *cursor, int limit,
                                   eddy_sink_cb_t cb, void *opaque, char *next_cursor,
                                   size_t next_cursor_size) {
    return eddy__engine_query_range_keyed(eng, store, range, cursor, limit, cb, NULL, opaque,
                                          next_cursor, next_cursor_size);
}

eddy_err_t eddy__engine_query_windows_open(eddy_engine_t *eng, const char *store,
                                           const eddy_value_t *key, int nkey, int64_t from_ms,
                                           int64_t to_ms, const char *cursor, int limit,
                                           bool need_open, eddy_sink_cb_t cb, void *opaque,
                                           char *next_cursor, size_t next_cursor_size) {
    eddy__engine_tasks_rdlock(eng);
    eddy_err_t e = query_windows(eng, store, key, nkey, from_ms, to_ms, cursor, limit, need_open,
                                 cb, opaque, next_cursor, next_cursor_size);
    eddy__engine_tasks_unlock(eng);
    return e;
}

eddy_err_t eddy_engine_query_windows(eddy_engine_t *eng, const char *store,
                                     const eddy_value_t *key, int nkey, int64_t from_ms,
                                     int64_t to_ms, const char *cursor, int limit,
                                     eddy_sink_cb_t cb, void *opaque, char *next_cursor,
                                     size_t next_cursor_size) {
    return eddy__engine_query_windows_open(eng, store, key, nkey, from_ms, to_ms, cursor, limit,
                                           false, cb, opaque, next_cursor, next_cursor_size);
}

int eddy_engine_store_stats(eddy_engine_t *eng, eddy_store_stats_t *out, int max) {
    eddy__engine_tasks_rdlock(eng);
    int n = store_stats(eng, out, max);
    eddy__engine_tasks_unlock(eng);
    return n;
}
