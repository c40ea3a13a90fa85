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

static const char *const table_keys[] = {"key", "store", NULL};

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

    eddy_buf_t label = {0};
    eddy_buf_printf(&label, "table into store %s, key ", c->store_name);
    for (int i = 0; i < c->nkey; i++)
        eddy_buf_printf(&label, "%s%s", i ? ", " : "", in->fields[c->key_idx[i]].name);
    cc->label = label.p;
    return EDDY_OK;
}

typedef struct {
    eddy_store_t *st;
    eddy_buf_t enc;
    eddy_value_t *row; /* nstored */
} table_state_t;

static eddy_err_t table_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const table_conf_t *c = op->node->conf;
    table_state_t *s = eddy_calloc(1, sizeof(*s));
    s->st = eddy__task_store(op->task, c->store);
    s->row = eddy_calloc((size_t)c->nstored + 1, sizeof(eddy_value_t));
    op->state = s;
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
