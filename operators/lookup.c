/*
 * Lookup: a stream-table join (Kafka Streams' KStream-KTable join). Each
 * stream record looks up the current row of a table, the store of a
 * `table` step (operators/table.c), on the same task:
 *
 *   - lookup:
 *       table: persons        # the store of a table step
 *       on: seller            # stream expression(s), one per table key column
 *       type: inner           # inner (default): no row, no output; left: nulls
 *       fields: [name, city]  # table columns to add (default: all but the key);
 *                             # or {out_name: column, ...}
 *
 * Co-partitioning: `on` makes the compiler put a key_by in front (as
 * aggregate's `by:`), and the table step routes by its `key` the same way
 * (same key encoding, same hash, same task count), so a stream record
 * meets the table rows of its key on its own task, and the record's key
 * bytes are the store's key. That holds only when `on` has as many
 * expressions as the table has key columns, of the same types: anything
 * else is a config error naming both and saying how to fix it.
 *
 * Semantics: the row the table holds when the record is processed (the
 * table is updated by its own pipeline on the same task, in the order the
 * task receives the changes); a table update never re-emits earlier
 * stream records. Output: the stream record's fields, then the added
 * table columns (nullable with type: left).
 */
#include "cfg.h"
#include "expr.h"
#include "plan.h"
#include "state/store.h"

#include "state/row.h"

#include "aggfn.h"
#include "table.h"

typedef struct {
    int store;
    bool left;
    int nadd;
    int *add_idx;     /* table value columns added, in output order */
    int nin;          /* input fields (the output starts with them) */
    int nvals;        /* the table's value columns */
    const eddy_store_def_t *def;
    /* temporal: the table is versioned; records wait in a buffer store
     * until the watermarks of both inputs pass their event time */
    bool temporal;
    int64_t retention;
    int table_node;
    int buffer;       /* the buffer store */
    eddy_expr_t *as_of; /* temporal: the time to look up at (NULL: event time) */
} lookup_conf_t;

static void lookup_free(void *conf) {
    lookup_conf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->add_idx);
    if (c->as_of)
        eddy__expr_destroy(c->as_of);
    eddy_free(c);
}

static const char *const lookup_keys[] = {"table", "on", "type", "fields", "as_of", NULL};
static const char *const type_choices[] = {"inner", "left", NULL};

/* The names of the table stores (for did-you-mean); caller frees. */
static const char **table_names(const eddy_plan_t *p) {
    const char **names = eddy_calloc((size_t)p->nstores + 1, sizeof(char *));
    int k = 0;
    for (int i = 0; i < p->nstores; i++)
        if (p->stores[i]->kind == EDDY_STORE_KV && p->stores[i]->node >= 0 &&
            p->stores[i]->node < p->nnodes &&
            !strcmp(p->nodes[p->stores[i]->node].ops->name, "table"))
            names[k++] = p->stores[i]->name;
    return names;
}

static eddy_err_t find_table(eddy_compile_ctx_t *cc, const eddy_cnode_t *tn,
                             const eddy_store_def_t **out, char *errstr, size_t errstr_size) {
    const eddy_plan_t *p = cc->plan;
    const char **names = table_names(p);
    const eddy_store_def_t *def = NULL;
    for (int i = 0; names[i] && !def; i++)
        if (!strcmp(names[i], tn->scalar))
            def = eddy__plan_find_store(p, names[i]);
    eddy_err_t err = EDDY_OK;
    if (!def) {
        eddy_buf_t b = {0};
        for (int i = 0; names[i]; i++)
            eddy_buf_printf(&b, "%s%s", i ? ", " : "", names[i]);
        const char *sg = eddy__cfg_suggest(tn->scalar, names);
        err = eddy__cnode_err(tn, errstr, errstr_size,
                              "lookup: no table '%s'%s%s%s (the store of a `table` step in a "
                              "pipeline listed before this one; tables: %s)",
                              tn->scalar, sg ? " (did you mean '" : "", sg ? sg : "",
                              sg ? "'?)" : "", b.p ? b.p : "none");
        eddy_buf_free(&b);
    }
    eddy_free(names);
    *out = def;
    return err;
}

/* `on` must match the table's key: same count, same types, in order. */
static eddy_err_t check_keys(eddy_compile_ctx_t *cc, const eddy_cnode_t *on,
                             const eddy_store_def_t *def, const char *pipeline_of_table,
                             char *errstr, size_t errstr_size) {
    eddy_aggspec_t ks = {0};
    eddy_schema_t *ons = eddy__schema_new_empty();
    eddy_err_t err = eddy__aggspec_by(&ks, on, cc->in, NULL, ons, errstr, errstr_size);
    eddy__aggspec_free(&ks);
    const eddy_schema_t *tk = def->key_schema;
    bool same = !err && ons->nfields == tk->nfields;
    for (int i = 0; same && i < tk->nfields; i++)
        same = ons->fields[i].type == tk->fields[i].type;
    if (!err && !same) {
        eddy_buf_t a = {0}, b = {0};
        for (int i = 0; i < ons->nfields; i++)
            eddy_buf_printf(&a, "%s%s", i ? ", " : "", eddy_type2str(ons->fields[i].type));
        for (int i = 0; i < tk->nfields; i++)
            eddy_buf_printf(&b, "%s%s %s", i ? ", " : "", tk->fields[i].name,
                            eddy_type2str(tk->fields[i].type));
        err = eddy__cnode_err(
            on, errstr, errstr_size,
            "lookup: the stream (pipeline %s, on: %s) and table '%s' (pipeline %s, key: %s) "
            "are not co-partitioned: 'on' must give one value per key column of the table, "
            "of the same type and in the same order, so that both are routed by the same "
            "key; convert the values in 'on' (e.g. on: [cast(x as int)]) or key the table by "
            "matching columns",
            cc->pipeline ? cc->pipeline : "?", a.p ? a.p : "", def->name, pipeline_of_table,
            b.p ? b.p : "");
        eddy_buf_free(&a);
        eddy_buf_free(&b);
    }
    eddy__schema_unref(ons);
    return err;
}

static int field_of(const eddy_schema_t *s, const char *name) {
    return eddy_schema_field_index(s, name);
}

static eddy_err_t add_field(eddy_compile_ctx_t *cc, lookup_conf_t *c, eddy_schema_t *out,
                            const eddy_cnode_t *at, const char *name, const char *column,
                            char *errstr, size_t errstr_size) {
    const eddy_schema_t *vs = c->def->value_schema;
    int idx = field_of(vs, column);
    if (idx < 0) {
        const char **cols = eddy_calloc((size_t)vs->nfields + 1, sizeof(char *));
        eddy_buf_t b = {0};
        for (int i = 0; i < vs->nfields; i++) {
            cols[i] = vs->fields[i].name;
            eddy_buf_printf(&b, "%s%s", i ? ", " : "", cols[i]);
        }
        const char *sg = eddy__cfg_suggest(column, cols);
        eddy_err_t err = eddy__cnode_err(at, errstr, errstr_size,
                                         "lookup: table '%s' has no column '%s'%s%s%s "
                                         "(columns: %s)",
                                         c->def->name, column, sg ? " (did you mean '" : "",
                                         sg ? sg : "", sg ? "'?)" : "", b.p);
        eddy_buf_free(&b);
        eddy_free(cols);
        return err;
    }
    if (field_of(out, name) >= 0)
        return eddy__cnode_err(at, errstr, errstr_size,
                               "lookup: the output already has a field '%s' (from the stream); "
                               "rename the table column, e.g. fields: {%s_%s: %s}",
                               name, c->def->name, name, column);
    (void)cc;
    int j = eddy__schema_add(out, name, vs->fields[idx].type);
    out->fields[j].nullable = c->left || vs->fields[idx].nullable;
    c->add_idx[c->nadd++] = idx;
    return EDDY_OK;
}

/* Temporal: the records waiting for the watermarks, a log store
 * [segment][key][event time][seq] -> [partition][offset][the record]. */
#define BUFFER_SEGMENT_MS 1000

static eddy_err_t buffer_store(eddy_compile_ctx_t *cc, lookup_conf_t *c, char *errstr,
                               size_t errstr_size) {
    char *name = eddy_asprintf("%s_lookup_%s", cc->pipeline ? cc->pipeline : "p", c->def->name);
    if (eddy__plan_find_store(cc->plan, name)) {
        eddy_err_t err = eddy__cnode_err(cc->arg, errstr, errstr_size,
                                         "a store named '%s' already exists (a lookup's "
                                         "buffer); one temporal lookup of a table per pipeline",
                                         name);
        eddy_free(name);
        return err;
    }
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    def->name = name;
    def->kind = EDDY_STORE_LOG;
    def->segment_ms = BUFFER_SEGMENT_MS;
    def->key_schema = eddy__schema_new_empty();
    def->value_schema = eddy__schema_new_empty();
    def->range_reads = true;
    def->owner = c;
    c->buffer = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    cc->wm_with1 = c->table_node + 1;
    return EDDY_OK;
}

static eddy_err_t lookup_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    const eddy_cnode_t *m = cc->arg;
    eddy_err_t err;
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, errstr_size,
                               "unexpected key '%s' in a lookup step", cc->step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : cc->step, errstr, errstr_size,
                               "lookup: expected {table: name, on: [expression, ...], type: "
                               "inner|left, fields: [column, ...]}");
    if ((err = eddy__cfg_check_keys(m, "lookup", lookup_keys, errstr, errstr_size)))
        return err;
    const eddy_cnode_t *tn = eddy__cnode_get(m, "table");
    const eddy_cnode_t *on = eddy__cnode_get(m, "on");
    if (!tn || tn->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(tn ? tn : m, errstr, errstr_size,
                               "lookup: 'table' must name the store of a table step");
    if (!on)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "lookup: missing required key 'on' (the stream's values of the "
                               "table's key columns)");
    lookup_conf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    int type = 0;
    if (eddy__cnode_get(m, "type") &&
        (err = eddy__cfg_enum(m, "type", true, type_choices, &type, errstr, errstr_size)))
        return err;
    c->left = type == 1;
    if ((err = find_table(cc, tn, &c->def, errstr, errstr_size)))
        return err;
    const eddy_node_t *tnode = &cc->plan->nodes[c->def->node];
    const char *tpipe = tnode->name;
    char tp[256];
    snprintf(tp, sizeof(tp), "%s", tpipe);
    char *slash = strchr(tp, '/');
    if (slash)
        *slash = 0;
    if ((err = check_keys(cc, on, c->def, tp, errstr, errstr_size)))
        return err;
    for (int i = 0; i < cc->plan->nstores; i++)
        if (cc->plan->stores[i] == c->def)
            c->store = i;
    c->table_node = c->def->node;
    eddy__table_of_store(c->def, &c->temporal, &c->retention);
    if (c->temporal && (err = buffer_store(cc, c, errstr, errstr_size)))
        return err;
    const eddy_cnode_t *asof = eddy__cnode_get(m, "as_of");
    if (asof) {
        if (!c->temporal)
            return eddy__cnode_err(asof, errstr, errstr_size,
                                   "lookup: as_of needs a versioned table (give table %s a "
                                   "history.retention)",
                                   c->def->name);
        char msg[400];
        int col = 0;
        if (asof->kind != EDDY_CNODE_SCALAR ||
            !(c->as_of = eddy__expr_compile(asof->scalar, cc->in, msg, sizeof(msg), &col)))
            return eddy__cnode_err_at(asof, col + (asof->quoted ? 1 : 0), errstr, errstr_size,
                                      "lookup: as_of: %s",
                                      asof->kind == EDDY_CNODE_SCALAR ? msg
                                                                      : "expected an expression");
        eddy_type_t t = eddy__expr_type(c->as_of);
        if (t != EDDY_TYPE_INT && t != EDDY_TYPE_TIMESTAMP)
            return eddy__cnode_err(asof, errstr, errstr_size,
                                   "lookup: as_of must be a time in ms (int or timestamp), not %s",
                                   eddy_type2str(t));
    }
    const eddy_schema_t *in = cc->in;
    const eddy_schema_t *vs = c->def->value_schema;
    c->nin = in->nfields;
    c->nvals = vs->nfields;
    c->add_idx = eddy_calloc((size_t)vs->nfields + 1, sizeof(int));
    eddy_schema_t *out = eddy__schema_new_empty();
    for (int i = 0; i < in->nfields; i++) {
        int j = eddy__schema_add(out, in->fields[i].name, in->fields[i].type);
        out->fields[j].nullable = in->fields[i].nullable;
        out->fields[j].pii = in->fields[i].pii;
    }
    const eddy_cnode_t *fields = eddy__cnode_get(m, "fields");
    if (!fields) {
        /* every column but the key's */
        for (int i = 0; i < vs->nfields && !err; i++)
            if (field_of(c->def->key_schema, vs->fields[i].name) < 0)
                err = add_field(cc, c, out, m, vs->fields[i].name, vs->fields[i].name, errstr,
                                errstr_size);
    } else if (fields->kind == EDDY_CNODE_SEQ) {
        for (int i = 0; i < fields->n && !err; i++) {
            const eddy_cnode_t *f = fields->items[i];
            if (f->kind != EDDY_CNODE_SCALAR || c->nadd >= vs->nfields)
                err = eddy__cnode_err(f, errstr, errstr_size,
                                      "lookup: fields: expected column names");
            else
                err = add_field(cc, c, out, f, f->scalar, f->scalar, errstr, errstr_size);
        }
    } else if (fields->kind == EDDY_CNODE_MAP) {
        for (int i = 0; i < fields->n && !err; i++) {
            const eddy_cnode_t *f = fields->items[i];
            if (f->kind != EDDY_CNODE_SCALAR || c->nadd >= vs->nfields)
                err = eddy__cnode_err(f, errstr, errstr_size,
                                      "lookup: fields: expected {output_name: column}");
            else
                err = add_field(cc, c, out, f, fields->keys[i], f->scalar, errstr, errstr_size);
        }
    } else {
        err = eddy__cnode_err(fields, errstr, errstr_size,
                              "lookup: fields: expected a list of columns or a map "
                              "{output_name: column}");
    }
    if (err) {
        eddy__schema_unref(out);
        return err;
    }
    cc->out = out;
    cc->label = eddy_asprintf("lookup (%s%s) in table %s", c->left ? "left" : "inner",
                              c->temporal ? ", temporal" : "", c->def->name);
    return EDDY_OK;
}

typedef struct {
    eddy_store_t *st;
    eddy_store_t *buf;    /* temporal */
    eddy_op_t *table;     /* temporal: the table's instance on this task */
    int64_t scan_seg;     /* temporal: buffer segments below are empty */
    eddy_buf_t enc;
    eddy_value_t *row; /* nvals */
} lookup_state_t;

static eddy_err_t lookup_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = eddy_calloc(1, sizeof(*s));
    op->state = s;
    s->row = eddy_calloc((size_t)c->nvals + 1, sizeof(eddy_value_t));
    s->st = eddy__task_store(op->task, c->store);
    if (!s->st)
        return eddy__cnode_err(op->node->where, errstr, errstr_size,
                               "lookup: the store of table %s is not open", c->def->name);
    s->scan_seg = INT64_MIN;
    if (c->temporal) {
        s->table = eddy__task_op(op->task, c->table_node);
        if (!(s->buf = eddy__task_store(op->task, c->buffer)))
            return eddy__cnode_err(op->node->where, errstr, errstr_size,
                                   "lookup: its buffer store is not open");
    }
    return EDDY_OK;
}

static void lookup_destroy(eddy_op_t *op) {
    lookup_state_t *s = op->state;
    if (!s)
        return;
    eddy_free(s->row);
    eddy_buf_free(&s->enc);
    eddy_free(s);
}

/* Append the joined record: r's fields, then the table's (NULL: nulls). */
static void emit(const lookup_conf_t *c, const eddy_rec_t *r, const eddy_value_t *row,
                 eddy_batch_t *out) {
    eddy_arena_t *a = out->arena;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)(c->nin + c->nadd));
    memcpy(o, r->vals, sizeof(eddy_value_t) * (size_t)c->nin);
    for (int k = 0; k < c->nadd; k++) {
        eddy_value_t x = row ? row[c->add_idx[k]] : (eddy_value_t){.type = EDDY_TYPE_NULL};
        /* the row points into the store's cache: copy */
        if ((x.type == EDDY_TYPE_STRING || x.type == EDDY_TYPE_BYTES) && x.len)
            x.u.s = eddy_arena_strndup(a, x.u.s, x.len);
        o[c->nin + k] = x;
    }
    eddy_rec_t *orec = eddy_batch_push(out);
    *orec = *r;
    orec->vals = o;
}

/* ------------------------------------------------------------ temporal */

/* Join r with the table row valid at time t. */
static eddy_err_t join_at(eddy_op_t *op, const eddy_rec_t *r, int64_t t, eddy_batch_t *out) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = op->state;
    bool found;
    eddy_err_t e =
        eddy__table_row_at(s->table, r->key, r->key_len, t, out->arena, s->row, &found);
    if (e)
        return e;
    if (found || c->left)
        emit(c, r, found ? s->row : NULL, out);
    return EDDY_OK;
}

/* A record is joined once both watermarks passed its time (no change at
 * or before it can come any more); older than the history's retention,
 * it is late: the version it needs may be gone. */
static eddy_err_t temporal_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = op->state;
    int64_t wm = op->wm_ms;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        eddy_err_t e;
        int64_t t = r->ts_ms;
        if (c->as_of) {
            eddy_value_t v;
            eddy__expr_eval(c->as_of, r->vals, out->arena, &v);
            if (v.type == EDDY_TYPE_NULL) {
                eddy__task_dead_letter(op->task, "lookup: as_of is null", op->node->name,
                                       r->partition, r->offset, NULL, 0);
                continue;
            }
            t = v.u.i;
        }
        if (t < eddy__table_history_from(s->table)) {
            eddy__task_late(op->task, op->node, in->schema, r);
            continue;
        }
        if (wm != EDDY_WM_MIN && t < wm) {
            if ((e = join_at(op, r, t, out)))
                return e;
            continue;
        }
        s->enc.len = 0;
        int64_t hdr[3] = {r->partition, r->offset, r->ts_ms};
        eddy_buf_put(&s->enc, hdr, sizeof(hdr));
        eddy__row_encode(&s->enc, in->schema->nfields, r->vals);
        if ((e = eddy__store_append(s->buf, r->key, r->key_len, t, s->enc.p, s->enc.len)))
            return e;
    }
    return EDDY_OK;
}

typedef struct {
    char *pk;
    size_t pkl;
} pk_t;

/* Join and emit the buffered records the watermark passed, in buffer
 * order (segment, key, time), and delete them. */
static eddy_err_t lookup_on_watermark(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = op->state;
    if (!c->temporal || wm == EDDY_WM_MIN)
        return EDDY_OK;
    const eddy_schema_t *sch = op->node->in;
    char lo[32], hi[32];
    int64_t from = s->scan_seg == INT64_MIN ? INT64_MIN / 2 : s->scan_seg * BUFFER_SEGMENT_MS;
    int64_t last = wm == EDDY_WM_MAX ? INT64_MAX / 2 : wm;
    eddy__store_tkey(s->buf, "", 0, from, 0, lo, sizeof(lo));
    eddy__store_tkey(s->buf, "", 0, last + BUFFER_SEGMENT_MS, 0, hi, sizeof(hi));
    eddy_store_iter_t *it = eddy__store_iter(s->buf, lo, 8, hi, 8);
    const char *k, *v;
    size_t kl, vl;
    pk_t *done = NULL;
    size_t ndone = 0, cap = 0;
    eddy_arena_t *a = out->arena;
    eddy_err_t e = EDDY_OK;
    while (!e && eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
        const char *lk;
        size_t lkl;
        int64_t ts, seq;
        if (!eddy__tkey_parse(EDDY_STORE_LOG, k, kl, &lk, &lkl, &ts, &seq) || vl < 24)
            continue;
        if (ts >= wm)
            continue;
        int64_t hdr[3];
        memcpy(hdr, v, sizeof(hdr));
        eddy_rec_t r = {0};
        r.vals = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)sch->nfields);
        if ((e = eddy__row_decode(v + 24, vl - 24, sch->nfields, r.vals)))
            break;
        for (int f = 0; f < sch->nfields; f++)
            if ((r.vals[f].type == EDDY_TYPE_STRING || r.vals[f].type == EDDY_TYPE_BYTES) &&
                r.vals[f].len)
                r.vals[f].u.s = eddy_arena_strndup(a, r.vals[f].u.s, r.vals[f].len);
        r.key = eddy_arena_strndup(a, lk, lkl);
        r.key_len = (uint32_t)lkl;
        r.ts_ms = hdr[2];
        r.partition = (int32_t)hdr[0];
        r.offset = hdr[1];
        if ((e = join_at(op, &r, ts, out)))
            break;
        if (ndone == cap) {
            cap = cap ? 2 * cap : 64;
            done = eddy_realloc(done, cap * sizeof(*done));
        }
        done[ndone].pk = eddy_strndup(k, kl);
        done[ndone++].pkl = kl;
    }
    eddy_err_t e2 = eddy__store_iter_destroy(it);
    if (!e)
        e = e2;
    for (size_t i = 0; i < ndone; i++) {
        if (!e)
            e = eddy__store_del(s->buf, done[i].pk, done[i].pkl);
        eddy_free(done[i].pk);
    }
    eddy_free(done);
    /* segments wholly before the watermark's are empty now */
    if (!e && wm != EDDY_WM_MAX) {
        int64_t wseg = wm / BUFFER_SEGMENT_MS - (wm < 0 ? 1 : 0);
        if (wseg > s->scan_seg)
            s->scan_seg = wseg;
    }
    return e;
}

/* Temporal: a record older than the table's history can go late; when
 * depends on the table's watermark, which this bound does not cover. */
static bool lookup_may_be_late(const eddy_node_t *n, int64_t t, int64_t wm) {
    (void)t;
    (void)wm;
    return ((const lookup_conf_t *)n->conf)->temporal;
}

static eddy_err_t lookup_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = op->state;
    if (c->temporal)
        return temporal_process(op, in, out);
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        const char *v;
        size_t vl;
        bool found;
        eddy_err_t e = eddy__store_get(s->st, r->key, r->key_len, &v, &vl, &found);
        if (e)
            return e;
        if (found && (e = c->def->decode_value(c->def, v, vl, out->arena, s->row)))
            return e;
        if (found || c->left)
            emit(c, r, found ? s->row : NULL, out);
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_lookup_join = {
    .abi = EDDY_OP_ABI,
    .name = "lookup",
    .compile = lookup_compile,
    .free_conf = lookup_free,
    .init = lookup_init,
    .process = lookup_process,
    .on_watermark = lookup_on_watermark,
    .destroy = lookup_destroy,
    .exchange_option = "on",
    .may_be_late = lookup_may_be_late,
};
