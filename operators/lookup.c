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
#include "plan.h"
#include "state/store.h"

#include "aggfn.h"

typedef struct {
    int store;
    bool left;
    int nadd;
    int *add_idx;     /* table value columns added, in output order */
    int nin;          /* input fields (the output starts with them) */
    int nvals;        /* the table's value columns */
    const eddy_store_def_t *def;
} lookup_conf_t;

static void lookup_free(void *conf) {
    lookup_conf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->add_idx);
    eddy_free(c);
}

static const char *const lookup_keys[] = {"table", "on", "type", "fields", NULL};
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
            "key; convert the values in 'on' (e.g. on: [cast(x, int)]) or key the table by "
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
    cc->label = eddy_asprintf("lookup (%s) in table %s", c->left ? "left" : "inner",
                              c->def->name);
    return EDDY_OK;
}

typedef struct {
    eddy_store_t *st;
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
    return EDDY_OK;
}

static void lookup_destroy(eddy_op_t *op) {
    lookup_state_t *s = op->state;
    if (!s)
        return;
    eddy_free(s->row);
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

static eddy_err_t lookup_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const lookup_conf_t *c = op->node->conf;
    lookup_state_t *s = op->state;
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
    .destroy = lookup_destroy,
    .exchange_option = "on",
};
