/*
 * Table: materialise a changelog stream into a queryable key-value store
 * (Kafka Streams' toTable(), or a KTable read from a CDC topic):
 *
 *   - table:
 *       key: [id]          # column or list of columns; routes by key first
 *       store: customers   # queryable store name (default: pipeline name)
 *
 * The input is a changelog: a row per change, with an optional string
 * column "__op" (what format: debezium produces: c, u, r or d). A row
 * whose __op is "d" deletes its key; any other row (and every row of an
 * input without __op, so any stream can become a table) replaces the
 * whole stored row of its key, as an upsert. The stored row is the input
 * row without __op, so the store answers queries (eddy_engine_query_get,
 * MCP get_value/scan_store) with the table's columns.
 *
 * Like aggregate's `by:`, `key:` makes the compiler put a key_by exchange
 * in front, so all changes of one key meet on one task, in the order the
 * source delivered them (one Debezium topic partition holds all changes
 * of a key, in order). State lives in the task's kv store (state/):
 * committed, changelogged and restored with the rest of the task.
 *
 * Output, same schema as the input: every upsert as it came in; for a
 * delete, the row the table held (every column, not only the key) with
 * __op = "d". A delete of a key the table does not hold changes nothing
 * and emits nothing. A row with a null key column cannot be stored: it is
 * dead-lettered.
 */
#include "cfg.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include "table.h"

/* The op column of a changelog stream; format debezium makes it
 * (connectors/debezium.h: EDDY_DBZ_OP_COLUMN). */
#define OP_COLUMN "__op"

typedef struct {
    int nkey;
    int *key_idx;     /* input columns of the key, in key order */
    int op_idx;       /* input column __op, or -1 */
    int nstored;
    int *stored_idx;  /* input columns stored: all but __op */
    int store;
    char *store_name;
    int64_t retention; /* history.retention: > 0 makes the table versioned */
    int hist;          /* the history store (versioned) */
} table_conf_t;

static void table_free(void *conf) {
    table_conf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->key_idx);
    eddy_free(c->stored_idx);
    eddy_free(c->store_name);
    eddy_free(c);
}

static void columns_list(const eddy_schema_t *in, eddy_buf_t *b) {
    for (int i = 0; i < in->nfields; i++)
        if (strcmp(in->fields[i].name, OP_COLUMN) != 0)
            eddy_buf_printf(b, "%s%s", b->len ? ", " : "", in->fields[i].name);
    eddy_buf_putc(b, 0);
}

/* Resolve key: (a column or a list of columns) to input indexes. */
static eddy_err_t table_key(table_conf_t *c, const eddy_cnode_t *key, const eddy_schema_t *in,
                            char *errstr, size_t errstr_size) {
    const eddy_cnode_t *const *items = &key;
    int n = 1;
    if (key->kind == EDDY_CNODE_SEQ) {
        items = (const eddy_cnode_t *const *)key->items;
        n = key->n;
    }
    if (n == 0 || key->kind == EDDY_CNODE_MAP)
        return eddy__cnode_err(key, errstr, errstr_size,
                               "table: key: expected a column or a list of columns, e.g. [id]");
    c->key_idx = eddy_calloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++) {
        const eddy_cnode_t *k = items[i];
        int idx = k->kind == EDDY_CNODE_SCALAR ? eddy_schema_field_index(in, k->scalar) : -1;
        if (idx < 0 || idx == c->op_idx) {
            eddy_buf_t cols = {0};
            columns_list(in, &cols);
            eddy_err_t err = eddy__cnode_err(
                k, errstr, errstr_size,
                "table: key '%s' is not a column of the input (the key is made of columns; "
                "the input has: %s)",
                k->kind == EDDY_CNODE_SCALAR ? k->scalar : "?", cols.p);
            eddy_buf_free(&cols);
            return err;
        }
        for (int j = 0; j < c->nkey; j++)
            if (c->key_idx[j] == idx)
                return eddy__cnode_err(k, errstr, errstr_size,
                                       "table: key column '%s' is listed twice", k->scalar);
        c->key_idx[c->nkey++] = idx;
    }
    return EDDY_OK;
}

/* A stored row. Rows written before columns were appended to the input
 * schema hold fewer values: the missing trailing ones read as null (so
 * ALTER TABLE ... ADD COLUMN needs no new store); values past n (columns
 * dropped from the end) are ignored. */
static eddy_err_t decode_stored(const char *v, size_t vl, int n, eddy_value_t *out) {
    size_t off = 0, used;
    int i = 0;
    for (; i < n && off < vl; i++, off += used) {
        eddy_err_t e = eddy__row_decode_prefix(v + off, vl - off, 1, &out[i], &used);
        if (e)
            return e;
    }
    for (; i < n; i++)
        out[i] = (eddy_value_t){.type = EDDY_TYPE_NULL};
    return EDDY_OK;
}

static eddy_err_t decode_for_query(const eddy_store_def_t *def, const char *v, size_t vlen,
                                   eddy_arena_t *a, eddy_value_t *out) {
    (void)a;
    return decode_stored(v, vlen, def->value_schema->nfields, out);
}

static const char *const table_keys[] = {"key", "store", "history.retention", NULL};

/*
 * History of a versioned table: a kv store of every change, keyed by
 * [key][event time] (8 bytes, big-endian, sign flipped: byte order is time
 * order), value [op: 'u' or 'd'][the row]. The row valid at t is the one
 * of the latest change at or before t (one ordered read). A change older
 * than the retention (behind the table's watermark) is dropped when its
 * key next changes, except the latest of those, which still says what was
 * valid at the retention's edge.
 */
static eddy_err_t history_store(eddy_compile_ctx_t *cc, table_conf_t *c, char *errstr,
                                size_t errstr_size) {
    char *name = eddy_asprintf("%s_history", c->store_name);
    if (eddy__plan_find_store(cc->plan, name)) {
        eddy_err_t err = eddy__cnode_err(cc->arg, errstr, errstr_size,
                                         "a store named '%s' already exists (the history of "
                                         "table %s); name the table differently",
                                         name, c->store_name);
        eddy_free(name);
        return err;
    }
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    def->name = name;
    def->kind = EDDY_STORE_KV;
    def->key_schema = eddy__schema_new_empty();
    def->value_schema = eddy__schema_new_empty();
    def->range_reads = true;
    def->owner = c;
    c->hist = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    return EDDY_OK;
}

static eddy_err_t table_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    const eddy_cnode_t *m = cc->arg;
    const eddy_schema_t *in = cc->in;
    eddy_err_t err;
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, errstr_size,
                               "unexpected key '%s' in a table step", cc->step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : cc->step, errstr, errstr_size,
                               "table: expected {key: [column, ...], store: name}");
    if ((err = eddy__cfg_check_keys(m, "table", table_keys, errstr, errstr_size)))
        return err;
    const eddy_cnode_t *key = eddy__cnode_get(m, "key");
    if (!key)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "table: missing required key 'key' (the table's key columns)");
    table_conf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    c->op_idx = eddy_schema_field_index(in, OP_COLUMN);
    if (c->op_idx >= 0 && in->fields[c->op_idx].type != EDDY_TYPE_STRING)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "table: input column '%s' is %s; it must be a string (c, u, r or "
                               "d: \"d\" deletes the key)",
                               OP_COLUMN, eddy_type2str(in->fields[c->op_idx].type));
    if ((err = table_key(c, key, in, errstr, errstr_size)))
        return err;
    const char *store = NULL;
    if ((err = eddy__cfg_str(m, "store", false, &store, errstr, errstr_size)))
        return err;
    c->store_name = store ? eddy_strdup(store)
                          : eddy_asprintf("%s", cc->pipeline ? cc->pipeline : "table");
    if (eddy__plan_find_store(cc->plan, c->store_name))
        return eddy__cnode_err(store ? eddy__cnode_get(m, "store") : m, errstr, errstr_size,
                               "a store named '%s' already exists; name this one with 'store:'",
                               c->store_name);

    eddy_schema_t *keys = eddy__schema_new_empty();
    eddy_schema_t *vals = eddy__schema_new_empty();
    for (int i = 0; i < c->nkey; i++)
        eddy__schema_add(keys, in->fields[c->key_idx[i]].name, in->fields[c->key_idx[i]].type);
    c->stored_idx = eddy_calloc((size_t)in->nfields, sizeof(int));
    for (int i = 0; i < in->nfields; i++) {
        if (i == c->op_idx)
            continue;
        int j = eddy__schema_add(vals, in->fields[i].name, in->fields[i].type);
        vals->fields[j].nullable = in->fields[i].nullable;
        vals->fields[j].pii = in->fields[i].pii;
        c->stored_idx[c->nstored++] = i;
    }
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    def->name = eddy_strdup(c->store_name);
    def->kind = EDDY_STORE_KV;
    def->key_schema = keys;
    def->value_schema = vals; /* stored rows are rows of it (row.c) */
    def->queryable = true;
    def->decode_value = decode_for_query;
    def->owner = c;
    c->store = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    if ((err = eddy__cfg_duration(m, "history.retention", false, &c->retention, errstr,
                                  errstr_size)))
        return err;
    if (eddy__cnode_get(m, "history.retention") && c->retention <= 0)
        return eddy__cnode_err(eddy__cnode_get(m, "history.retention"), errstr, errstr_size,
                               "table: history.retention must be a positive duration, e.g. 1h");
    if (c->retention > 0 && (err = history_store(cc, c, errstr, errstr_size)))
        return err;

    eddy_buf_t label = {0};
    eddy_buf_printf(&label, "table into store %s, key ", c->store_name);
    for (int i = 0; i < c->nkey; i++)
        eddy_buf_printf(&label, "%s%s", i ? ", " : "", in->fields[c->key_idx[i]].name);
    cc->label = label.p;
    return EDDY_OK;
}

typedef struct {
    eddy_store_t *st;
    eddy_store_t *hst; /* history (versioned) */
    eddy_buf_t enc;
    eddy_value_t *row; /* nstored + 1 */
    int64_t pruned_below; /* history: changes before this may be gone */
} table_state_t;

static eddy_err_t table_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = eddy_calloc(1, sizeof(*s));
    s->st = eddy__task_store(op->task, c->store);
    s->row = eddy_calloc((size_t)c->nstored + 1, sizeof(eddy_value_t));
    s->pruned_below = INT64_MIN;
    op->state = s;
    if (c->retention > 0 && !(s->hst = eddy__task_store(op->task, c->hist)))
        return eddy__cnode_err(op->node->where, errstr, errstr_size,
                               "table: its history store is not open");
    if (!s->st)
        return eddy__cnode_err(op->node->where, errstr, errstr_size,
                               "table: its store is not open");
    return EDDY_OK;
}

static void table_destroy(eddy_op_t *op) {
    table_state_t *s = op->state;
    if (!s)
        return;
    eddy_buf_free(&s->enc);
    eddy_free(s->row);
    eddy_free(s);
}

static bool is_delete(const table_conf_t *c, const eddy_value_t *v) {
    if (c->op_idx < 0)
        return false;
    const eddy_value_t *op = &v[c->op_idx];
    return op->type == EDDY_TYPE_STRING && op->len == 1 && op->u.s[0] == 'd';
}

/* Delete the key; emit the row it held, with __op = "d". */
static eddy_err_t table_delete(eddy_op_t *op, const eddy_rec_t *r, eddy_batch_t *out) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = op->state;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e = eddy__store_get(s->st, r->key, r->key_len, &v, &vl, &found);
    if (e || !found)
        return e;
    if ((e = decode_stored(v, vl, c->nstored, s->row)))
        return e;
    /* the values point into the cache: copy them before the delete */
    eddy_arena_t *a = out->arena;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)out->schema->nfields);
    for (int k = 0; k < c->nstored; k++) {
        eddy_value_t x = s->row[k];
        if ((x.type == EDDY_TYPE_STRING || x.type == EDDY_TYPE_BYTES) && x.len)
            x.u.s = eddy_arena_strndup(a, x.u.s, x.len);
        o[c->stored_idx[k]] = x;
    }
    o[c->op_idx] = (eddy_value_t){.u.s = "d", .len = 1, .type = EDDY_TYPE_STRING};
    if ((e = eddy__store_del(s->st, r->key, r->key_len)))
        return e;
    eddy_rec_t *orec = eddy_batch_push(out);
    *orec = *r;
    orec->vals = o;
    return EDDY_OK;
}

/* ------------------------------------------------------------ history */

static uint64_t tflip(int64_t t) { return (uint64_t)t ^ 0x8000000000000000ULL; }

/* [key][t] into buf (cap >= klen + 8); returns its length. */
static size_t hkey_build(const char *key, size_t klen, int64_t t, char *buf) {
    memcpy(buf, key, klen);
    uint64_t u = tflip(t);
    for (int i = 7; i >= 0; i--, u >>= 8)
        buf[klen + (size_t)i] = (char)(u & 0xff);
    return klen + 8;
}

static int64_t hkey_time(const char *k, size_t kl) {
    uint64_t u = 0;
    for (size_t i = kl - 8; i < kl; i++)
        u = (u << 8) | (uint8_t)k[i];
    return (int64_t)(u ^ 0x8000000000000000ULL);
}

#define HKEY_MAX 4200

/* Drop the key's changes before the retention edge but the latest. */
static eddy_err_t history_prune(eddy_op_t *op, const char *key, size_t klen) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = op->state;
    int64_t wm = op->wm_ms;
    if (wm == EDDY_WM_MIN || wm == EDDY_WM_MAX || wm < INT64_MIN / 2 + c->retention)
        return EDDY_OK;
    char lo[HKEY_MAX], hi[HKEY_MAX];
    size_t ll = hkey_build(key, klen, INT64_MIN, lo);
    size_t hl = hkey_build(key, klen, wm - c->retention, hi);
    if (wm - c->retention > s->pruned_below)
        s->pruned_below = wm - c->retention;
    eddy_store_iter_t *it = eddy__store_iter(s->hst, lo, ll, hi, hl);
    const char *k, *v;
    size_t kl, vl;
    char *prev = NULL;
    eddy_err_t e = EDDY_OK;
    while (eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl != klen + 8)
            continue;
        if (prev) { /* not the latest: goes */
            e = eddy__store_del(s->hst, prev, klen + 8);
            eddy_free(prev);
            if (e)
                break;
        }
        prev = eddy_strndup(k, kl);
    }
    eddy_free(prev);
    eddy_err_t e2 = eddy__store_iter_destroy(it);
    return e ? e : e2;
}

static eddy_err_t history_add(eddy_op_t *op, const eddy_rec_t *r) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = op->state;
    char hk[HKEY_MAX];
    if (r->key_len + 8 > HKEY_MAX)
        return EDDY_ERR_INVAL;
    size_t hl = hkey_build(r->key, r->key_len, r->ts_ms, hk);
    s->enc.len = 0;
    eddy_buf_putc(&s->enc, is_delete(c, r->vals) ? 'd' : 'u');
    for (int k = 0; k < c->nstored; k++)
        s->row[k] = r->vals[c->stored_idx[k]];
    eddy__row_encode(&s->enc, c->nstored, s->row);
    eddy_err_t e = eddy__store_put(s->hst, hk, hl, s->enc.p, s->enc.len);
    return e ? e : history_prune(op, r->key, r->key_len);
}

bool eddy__table_of_store(const eddy_store_def_t *def, bool *versioned, int64_t *retention_ms) {
    if (def->decode_value != decode_for_query)
        return false;
    const table_conf_t *c = def->owner;
    *versioned = c->retention > 0;
    *retention_ms = c->retention;
    return true;
}

int64_t eddy__table_history_from(eddy_op_t *table_op) {
    const table_state_t *s = table_op->state;
    if (!s)
        return INT64_MAX;
    /* after a restart: what the restored watermark allowed to prune */
    const table_conf_t *c = table_op->node->conf;
    int64_t wm = table_op->wm_ms;
    int64_t from = s->pruned_below;
    if (wm != EDDY_WM_MIN && wm != EDDY_WM_MAX && wm - c->retention > from)
        from = wm - c->retention;
    return from;
}

/* Note: the history iterator sees the task's own writes (the cache) too. */
eddy_err_t eddy__table_row_at(eddy_op_t *table_op, const char *key, size_t klen, int64_t t,
                              eddy_arena_t *arena, eddy_value_t *row, bool *found) {
    const table_conf_t *c = table_op->node->conf;
    table_state_t *s = table_op->state;
    *found = false;
    if (!s || !s->hst || klen + 8 > HKEY_MAX || t == INT64_MAX)
        return EDDY_ERR_STATE;
    char lo[HKEY_MAX], hi[HKEY_MAX];
    size_t ll = hkey_build(key, klen, INT64_MIN, lo);
    size_t hl = hkey_build(key, klen, t + 1, hi);
    eddy_store_iter_t *it = eddy__store_iter(s->hst, lo, ll, hi, hl);
    const char *k, *v, *last = NULL;
    size_t kl, vl, lastl = 0;
    eddy_err_t e = EDDY_OK;
    while (eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        if (kl != klen + 8 || hkey_time(k, kl) > t)
            continue;
        /* the value moves with the iterator: keep a copy of the latest */
        last = eddy_arena_strndup(arena, v, vl);
        lastl = vl;
    }
    e = eddy__store_iter_destroy(it);
    if (e || !last || lastl < 1 || last[0] == 'd')
        return e;
    if ((e = decode_stored(last + 1, lastl - 1, c->nstored, row)))
        return e;
    *found = true;
    return EDDY_OK;
}

static eddy_err_t table_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = op->state;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        int null_key = -1;
        for (int k = 0; k < c->nkey && null_key < 0; k++)
            if (r->vals[c->key_idx[k]].type == EDDY_TYPE_NULL)
                null_key = c->key_idx[k];
        if (null_key >= 0) {
            char why[300];
            snprintf(why, sizeof(why), "table %s: key column '%s' is null", c->store_name,
                     in->schema->fields[null_key].name);
            eddy__task_dead_letter(op->task, why, op->node->name, r->partition, r->offset,
                                   NULL, 0);
            continue;
        }
        eddy_err_t e;
        if (s->hst && (e = history_add(op, r)))
            return e;
        if (is_delete(c, r->vals)) {
            if ((e = table_delete(op, r, out)))
                return e;
            continue;
        }
        for (int k = 0; k < c->nstored; k++)
            s->row[k] = r->vals[c->stored_idx[k]];
        s->enc.len = 0;
        eddy__row_encode(&s->enc, c->nstored, s->row);
        if ((e = eddy__store_put(s->st, r->key, r->key_len, s->enc.p, s->enc.len)))
            return e;
        eddy_rec_t *orec = eddy_batch_push(out);
        *orec = *r;
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_table = {
    .abi = EDDY_OP_ABI,
    .name = "table",
    .compile = table_compile,
    .free_conf = table_free,
    .init = table_init,
    .process = table_process,
    .destroy = table_destroy,
    .exchange_option = "key",
};
