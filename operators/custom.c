/*
 * Host-defined operators (eddy_operator_def_t) adapted to the internal
 * operator vtable. The host sees one record at a time and emits through
 * eddy_operator_emit(); values it emits are copied into the batch arena, so
 * the host may pass stack or temporary memory.
 */
#include "plan.h"

struct eddy_operator_ctx_s {
    eddy_op_t *op;
    eddy_batch_t *out;
    const eddy_rec_t *cur; /* input record being processed, or NULL */
};

typedef struct {
    const eddy_operator_def_t *def;
} custom_conf_t;

static eddy_err_t custom_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    const eddy_operator_def_t *def = cc->user_def;
    custom_conf_t *c = eddy_calloc(1, sizeof(*c));
    c->def = def;
    cc->conf = c;
    if (def->output_schema) {
        char msg[400] = "";
        const eddy_schema_t *out = def->output_schema(cc->in, cc->arg, def->opaque, msg,
                                                      sizeof(msg));
        if (!out && msg[0])
            return eddy__cnode_err(cc->step, errstr, errstr_size, "%s: %s", def->name, msg);
        if (out)
            cc->out = (eddy_schema_t *)out; /* ownership passes to eddy */
    }
    cc->label = eddy_asprintf("custom %s", def->name);
    return EDDY_OK;
}

static void custom_free(void *conf) { eddy_free(conf); }

static eddy_err_t custom_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    const custom_conf_t *c = op->node->conf;
    if (!c->def->init)
        return EDDY_OK;
    char msg[400] = "";
    eddy_err_t err = c->def->init(&op->state, op->node->in, op->node->where
                                  ? ((const eddy_cnode_t *)op->node->where)->items[0] : NULL,
                                  c->def->opaque, msg, sizeof(msg));
    if (err)
        eddy__cnode_err(op->node->where, errstr, errstr_size, "%s: init failed: %s",
                        c->def->name, msg[0] ? msg : eddy_err2str(err));
    return err;
}

static eddy_err_t custom_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const custom_conf_t *c = op->node->conf;
    struct eddy_operator_ctx_s ctx = {.op = op, .out = out};
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        ctx.cur = r;
        eddy_record_t view = {.schema = in->schema, .values = r->vals, .key = r->key,
                              .key_len = r->key_len, .ts_ms = r->ts_ms,
                              .partition = r->partition, .offset = r->offset};
        eddy_err_t err = c->def->process(op->state, &ctx, &view);
        if (err)
            return err;
    }
    return EDDY_OK;
}

static eddy_err_t custom_on_watermark(eddy_op_t *op, int64_t wm_ms, eddy_batch_t *out) {
    const custom_conf_t *c = op->node->conf;
    if (!c->def->on_watermark)
        return EDDY_OK;
    struct eddy_operator_ctx_s ctx = {.op = op, .out = out};
    return c->def->on_watermark(op->state, &ctx, wm_ms);
}

static void custom_destroy(eddy_op_t *op) {
    const custom_conf_t *c = op->node->conf;
    if (c->def->destroy)
        c->def->destroy(op->state);
}

eddy_err_t eddy_operator_emit(eddy_operator_ctx_t *ctx, const eddy_value_t *values,
                              int64_t ts_ms) {
    if (!ctx || !values)
        return EDDY_ERR_INVAL;
    const eddy_schema_t *s = ctx->op->node->out;
    eddy_arena_t *a = ctx->out->arena;
    eddy_value_t *v = eddy_arena_alloc(a, sizeof(*v) * (size_t)s->nfields);
    for (int i = 0; i < s->nfields; i++) {
        v[i] = values[i];
        if (v[i].type != EDDY_TYPE_NULL && v[i].type != (uint8_t)s->fields[i].type)
            return EDDY_ERR_TYPE;
        if ((v[i].type == EDDY_TYPE_STRING || v[i].type == EDDY_TYPE_BYTES) && v[i].len)
            v[i].u.s = eddy_arena_strndup(a, values[i].u.s, values[i].len);
    }
    eddy_rec_t *r = eddy_batch_push(ctx->out);
    memset(r, 0, sizeof(*r));
    r->vals = v;
    r->ts_ms = ts_ms;
    if (ctx->cur) {
        r->partition = ctx->cur->partition;
        r->offset = ctx->cur->offset;
        r->key = ctx->cur->key;
        r->key_len = ctx->cur->key_len;
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_custom = {
    .abi = EDDY_OP_ABI,
    .name = "custom",
    .compile = custom_compile,
    .free_conf = custom_free,
    .init = custom_init,
    .process = custom_process,
    .on_watermark = custom_on_watermark,
    .destroy = custom_destroy,
};
