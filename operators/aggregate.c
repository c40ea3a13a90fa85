/*
 * Keyed aggregation into a table (Kafka Streams' groupBy().aggregate()):
 *
 *   - aggregate:
 *       by: bidder                  # expression or list; routes by key first
 *       store: bids_by_bidder       # queryable store name (default: pipeline name)
 *       fields: {bids: count(), total: sum(price), top: max(price), mean: avg(price)}
 *
 * The compiler puts a key_by on `by` in front of this operator, so every
 * record of a key reaches the same task. Per record the operator reads the
 * key's accumulators from its key-value store (write cache first), updates
 * them, writes them back and emits the updated row (by fields + results).
 * The stored value holds the by values and the accumulators, so the store
 * answers queries on its own.
 *
 * Aggregators are a table of small vtables shared with window steps
 * (operators/aggfn.c); each keeps two values in the stored row. A record
 * an aggregate refuses (its state would pass its size limit, a user
 * aggregate's add failed) is dead-lettered and changes nothing.
 */
#include "cfg.h"
#include "expr.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include "aggfn.h"

typedef struct {
    eddy_aggspec_t a;
    int store;
    eddy_schema_t *out;
} agg_conf_t;

static void agg_free(void *conf) {
    agg_conf_t *c = conf;
    if (!c)
        return;
    eddy__aggspec_free(&c->a);
    eddy_free(c);
}

/* Stored value: nby values, then 2 per aggregate. */
static int nstored(const agg_conf_t *c) { return c->a.nby + 2 * c->a.nagg; }

static void results(const agg_conf_t *c, const eddy_value_t *stored, eddy_value_t *out,
                    eddy_arena_t *a) {
    for (int i = 0; i < c->a.nby; i++)
        out[i] = stored[i];
    eddy__aggspec_results(&c->a, &stored[c->a.nby], &out[c->a.nby], a);
}

static eddy_err_t decode_for_query(const eddy_store_def_t *def, const char *v, size_t vlen,
                                   eddy_arena_t *a, eddy_value_t *out) {
    const agg_conf_t *c = def->owner;
    eddy_value_t tmp[256];
    if (nstored(c) > 256)
        return EDDY_ERR_INVAL;
    eddy_err_t e = eddy__row_decode(v, vlen, nstored(c), tmp);
    if (e)
        return e;
    results(c, tmp, out, a);
    return EDDY_OK;
}

static const char *const agg_keys[] = {"by", "store", "fields", NULL};

static eddy_err_t agg_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    const eddy_cnode_t *m = cc->arg;
    eddy_err_t err;
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, errstr_size,
                               "unexpected key '%s' in an aggregate step", cc->step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : cc->step, errstr, errstr_size,
                               "aggregate: expected {by: ..., fields: {name: count(), ...}}");
    if ((err = eddy__cfg_check_keys(m, "aggregate", agg_keys, errstr, errstr_size)))
        return err;
    const eddy_cnode_t *by = eddy__cnode_get(m, "by");
    const eddy_cnode_t *fields = eddy__cnode_get(m, "fields");
    if (!by)
        return eddy__cnode_err(m, errstr, errstr_size,
                               "aggregate: missing required key 'by' (the grouping key)");
    if (!fields || fields->kind != EDDY_CNODE_MAP || fields->n == 0)
        return eddy__cnode_err(fields ? fields : m, errstr, errstr_size,
                               "aggregate: 'fields' must map output names to aggregates, e.g. "
                               "{bids: count()}");
    agg_conf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    /* The input to this node is the key_by's output (same schema). */
    eddy_schema_t *out = eddy__schema_new_empty();
    eddy_schema_t *keys = eddy__schema_new_empty();
    if ((err = eddy__aggspec_by(&c->a, by, cc->in, out, keys, errstr, errstr_size)) ||
        (err = eddy__aggspec_fields(&c->a, fields, cc, out, "aggregate", errstr,
                                    errstr_size)))
        goto fail;
    const char *store = NULL;
    if ((err = eddy__cfg_str(m, "store", false, &store, errstr, errstr_size)))
        goto fail;
    eddy_store_def_t *def = eddy_calloc(1, sizeof(*def));
    def->name = store ? eddy_strdup(store)
                      : eddy_asprintf("%s", cc->pipeline ? cc->pipeline : "aggregate");
    if (eddy__plan_find_store(cc->plan, def->name)) {
        err = eddy__cnode_err(store ? eddy__cnode_get(m, "store") : m, errstr, errstr_size,
                              "a store named '%s' already exists; name this one with 'store:'",
                              def->name);
        eddy_free(def->name);
        eddy_free(def);
        goto fail;
    }
    def->kind = EDDY_STORE_KV;
    def->key_schema = keys;
    def->value_schema = eddy__schema_ref(out);
    def->queryable = true;
    def->decode_value = decode_for_query;
    def->owner = c;
    c->store = eddy__plan_add_store((eddy_plan_t *)cc->plan, def);
    c->out = out;
    cc->out = out;
    cc->label = eddy_asprintf("aggregate into store %s", def->name);
    return EDDY_OK;
fail:
    eddy__schema_unref(out);
    eddy__schema_unref(keys);
    return err;
}

typedef struct {
    struct eddy_store_s *st;
    eddy_buf_t enc;
    eddy_value_t *vals;  /* nstored */
    eddy_aggctx_t *ax;   /* aggregates' scratch */
} agg_state_t;

static eddy_err_t agg_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const agg_conf_t *c = op->node->conf;
    agg_state_t *s = eddy_calloc(1, sizeof(*s));
    s->st = eddy__task_store(op->task, c->store);
    s->vals = eddy_calloc((size_t)nstored(c), sizeof(eddy_value_t));
    s->ax = eddy__aggspec_ctx_new(&c->a);
    op->state = s;
    if (!s->st)
        return eddy__cnode_err(op->node->where, errstr, errstr_size,
                               "aggregate: its store is not open");
    return EDDY_OK;
}

static void agg_destroy(eddy_op_t *op) {
    agg_state_t *s = op->state;
    if (!s)
        return;
    eddy_buf_free(&s->enc);
    eddy_free(s->vals);
    eddy__aggspec_ctx_free(&((const agg_conf_t *)op->node->conf)->a, s->ax);
    eddy_free(s);
}

static eddy_err_t agg_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const agg_conf_t *c = op->node->conf;
    agg_state_t *s = op->state;
    eddy_arena_t *a = out->arena;
    const int ns = nstored(c);
    const int no = c->a.nby + c->a.nagg;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        const char *v;
        size_t vl;
        bool found;
        eddy_err_t e = eddy__store_get(s->st, r->key, r->key_len, &v, &vl, &found);
        if (e)
            return e;
        if (found) {
            if ((e = eddy__row_decode(v, vl, ns, s->vals)))
                return e;
        } else {
            for (int k = 0; k < c->a.nby; k++)
                eddy__expr_eval(c->a.by[k], r->vals, a, &s->vals[k]);
            for (int k = c->a.nby; k < ns; k++)
                s->vals[k].type = EDDY_TYPE_NULL, s->vals[k].u.i = 0;
        }
        char why[200];
        if (eddy__aggspec_add(&c->a, s->ax, &s->vals[c->a.nby], r->vals, a, r->ts_ms, why,
                              sizeof(why))) {
            /* refused: nothing stored, nothing emitted, and said so */
            eddy__task_dead_letter(op->task, why, op->node->name, r->partition, r->offset,
                                   NULL, 0);
            continue;
        }
        /* Output first: it copies strings into the arena before the put
         * may move the cache buffer the decoded values point into. */
        eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)no);
        results(c, s->vals, o, a);
        for (int k = 0; k < no; k++)
            if ((o[k].type == EDDY_TYPE_STRING || o[k].type == EDDY_TYPE_BYTES) && o[k].len)
                o[k].u.s = eddy_arena_strndup(a, o[k].u.s, o[k].len);
        s->enc.len = 0;
        eddy__row_encode(&s->enc, ns, s->vals);
        if ((e = eddy__store_put(s->st, r->key, r->key_len, s->enc.p, s->enc.len)))
            return e;
        eddy_rec_t *orec = eddy_batch_push(out);
        *orec = *r;
        orec->vals = o;
    }
    return EDDY_OK;
}

static bool agg_input_fields(const eddy_node_t *n, bool *used) {
    eddy__aggspec_input_fields(&((const agg_conf_t *)n->conf)->a, used);
    return true;
}

const eddy_op_ops_t eddy__op_aggregate = {
    .abi = EDDY_OP_ABI,
    .name = "aggregate",
    .compile = agg_compile,
    .free_conf = agg_free,
    .init = agg_init,
    .process = agg_process,
    .destroy = agg_destroy,
    .exchange_option = "by",
    .input_fields = agg_input_fields,
};
