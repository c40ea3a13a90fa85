/*
 * Stateless operators: filter, map (projection to new fields), extend (input
 * fields plus new or replaced ones) and key_by (re-keying exchange).
 *
 * Expressions are compiled once against the step's input schema; per
 * record the work is the evaluation itself. map/extend copy plain field
 * references directly (the common projection case) instead of calling the
 * evaluator.
 */
#include "cfg.h"
#include "expr.h"
#include "plan.h"

/* Compile an expression held by a scalar node; errors point into it. */
static eddy_expr_t *compile_expr_node(const eddy_cnode_t *n, const eddy_schema_t *in,
                                      const char *what, char *errstr, size_t errstr_size) {
    if (!n || n->kind != EDDY_CNODE_SCALAR) {
        eddy__cnode_err(n, errstr, errstr_size, "%s: expected an expression", what);
        return NULL;
    }
    char msg[400];
    int col = 0;
    eddy_expr_t *e = eddy__expr_compile(n->scalar, in, msg, sizeof(msg), &col);
    if (!e) {
        eddy__cnode_err_at(n, col + (n->quoted ? 1 : 0), errstr, errstr_size, "%s: %s", what,
                           msg);
        return NULL;
    }
    return e;
}

static eddy_err_t only_key(const eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    if (cc->step->n > 1)
        return eddy__cnode_err(cc->step->key_nodes[1], errstr, errstr_size,
                               "unexpected key '%s' in a %s step", cc->step->keys[1],
                               cc->step->keys[0]);
    return EDDY_OK;
}

static char *label_of(const char *op, const eddy_cnode_t *arg) {
    if (arg && arg->kind == EDDY_CNODE_SCALAR)
        return eddy_asprintf("%s %s", op, arg->scalar);
    return eddy_strdup(op);
}

/* ---------------------------------------------------------------- filter */

static eddy_err_t filter_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    eddy_err_t err = only_key(cc, errstr, errstr_size);
    if (err)
        return err;
    eddy_expr_t *e = compile_expr_node(cc->arg, cc->in, "filter", errstr, errstr_size);
    if (!e)
        return EDDY_ERR_CONFIG;
    eddy_type_t t = eddy__expr_type(e);
    if (t != EDDY_TYPE_BOOL && t != EDDY_TYPE_NULL) {
        eddy__expr_destroy(e);
        return eddy__cnode_err(cc->arg, errstr, errstr_size,
                               "filter: the condition must be boolean, but this expression is %s",
                               eddy_type2str(t));
    }
    cc->conf = e;
    cc->label = label_of("filter", cc->arg);
    return EDDY_OK;
}

static void expr_free(void *conf) { eddy__expr_destroy(conf); }

static eddy_err_t filter_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const eddy_expr_t *e = op->node->conf;
    eddy_arena_t *a = out->arena;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        if (eddy__expr_eval_bool(e, r->vals, a))
            *eddy_batch_push(out) = *r;
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_filter = {
    .abi = EDDY_OP_ABI,
    .name = "filter",
    .compile = filter_compile,
    .free_conf = expr_free,
    .process = filter_process,
};

/* ------------------------------------------------------------ map/extend */

typedef struct proj_s {
    int nout;
    int *src;            /* >= 0: copy input field; -1: evaluate expr */
    eddy_expr_t **expr;
} proj_t;

static void proj_free(void *conf) {
    proj_t *p = conf;
    if (!p)
        return;
    for (int i = 0; i < p->nout; i++)
        eddy__expr_destroy(p->expr[i]);
    eddy_free(p->src);
    eddy_free(p->expr);
    eddy_free(p);
}

static void proj_add(proj_t *p, int src, eddy_expr_t *e) {
    p->src = eddy_realloc(p->src, sizeof(int) * (size_t)(p->nout + 1));
    p->expr = eddy_realloc(p->expr, sizeof(*p->expr) * (size_t)(p->nout + 1));
    p->src[p->nout] = src;
    p->expr[p->nout] = e;
    p->nout++;
}

/* map: {out: expr, ...} or [field, ...]; extend: {out: expr, ...} over the
 * input fields (an existing name is replaced in place). */
static eddy_err_t proj_compile(eddy_compile_ctx_t *cc, bool extend, char *errstr,
                               size_t errstr_size) {
    const char *what = extend ? "extend" : "map";
    eddy_err_t err = only_key(cc, errstr, errstr_size);
    if (err)
        return err;
    const eddy_cnode_t *arg = cc->arg;
    bool is_list = arg && arg->kind == EDDY_CNODE_SEQ && !extend;
    if (!arg || (arg->kind != EDDY_CNODE_MAP && !is_list) || arg->n == 0)
        return eddy__cnode_err(arg ? arg : cc->step, errstr, errstr_size,
                               extend ? "extend: expected a mapping of new field -> expression"
                                      : "map: expected a mapping of output field -> expression, "
                                        "or a list of field names");
    proj_t *p = eddy_calloc(1, sizeof(*p));
    eddy_schema_t *out = eddy__schema_new_empty();
    if (extend) {
        for (int i = 0; i < cc->in->nfields; i++) {
            eddy__schema_add(out, cc->in->fields[i].name, cc->in->fields[i].type);
            out->fields[i].pii = cc->in->fields[i].pii;
            out->fields[i].nullable = cc->in->fields[i].nullable;
            proj_add(p, i, NULL);
        }
    }
    for (int i = 0; i < arg->n; i++) {
        const eddy_cnode_t *val = arg->items[i];
        const char *name = is_list ? (val->kind == EDDY_CNODE_SCALAR ? val->scalar : "")
                                   : arg->keys[i];
        eddy_expr_t *e = compile_expr_node(val, cc->in, what, errstr, errstr_size);
        if (!e) {
            proj_free(p);
            eddy__schema_unref(out);
            return EDDY_ERR_CONFIG;
        }
        eddy_type_t t = eddy__expr_type(e);
        int ref = eddy__expr_field_ref(e);
        int idx = eddy_schema_field_index(out, name);
        if (idx >= 0 && !extend) {
            eddy__expr_destroy(e);
            proj_free(p);
            eddy__schema_unref(out);
            return eddy__cnode_err(is_list ? val : arg->key_nodes[i], errstr, errstr_size,
                                   "map: output field '%s' appears twice", name);
        }
        if (idx < 0) {
            idx = eddy__schema_add(out, name, t);
            proj_add(p, -1, NULL);
        } else {
            out->fields[idx].type = t;
        }
        /* A plain reference keeps the source field's flags and is copied. */
        if (ref >= 0) {
            out->fields[idx].pii = cc->in->fields[ref].pii;
            out->fields[idx].nullable = cc->in->fields[ref].nullable;
            p->src[idx] = ref;
            eddy__expr_destroy(e);
            e = NULL;
        } else {
            out->fields[idx].nullable = true;
            p->src[idx] = -1;
        }
        eddy__expr_destroy(p->expr[idx]);
        p->expr[idx] = e;
    }
    cc->conf = p;
    cc->out = out;
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "%s ", what);
    for (int i = 0; i < arg->n; i++)
        eddy_buf_printf(&b, "%s%s", i ? ", " : "",
                        is_list ? arg->items[i]->scalar : arg->keys[i]);
    cc->label = b.p;
    return EDDY_OK;
}

static eddy_err_t map_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    return proj_compile(cc, false, errstr, errstr_size);
}
static eddy_err_t extend_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    return proj_compile(cc, true, errstr, errstr_size);
}

static eddy_err_t proj_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const proj_t *p = op->node->conf;
    eddy_arena_t *a = out->arena;
    const int nout = p->nout;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        eddy_value_t *v = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)nout);
        for (int f = 0; f < nout; f++) {
            int s = p->src[f];
            if (s >= 0)
                v[f] = r->vals[s];
            else
                eddy__expr_eval(p->expr[f], r->vals, a, &v[f]);
        }
        eddy_rec_t *o = eddy_batch_push(out);
        *o = *r;
        o->vals = v;
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_map = {
    .abi = EDDY_OP_ABI,
    .name = "map",
    .compile = map_compile,
    .free_conf = proj_free,
    .process = proj_process,
};

const eddy_op_ops_t eddy__op_extend = {
    .abi = EDDY_OP_ABI,
    .name = "extend",
    .compile = extend_compile,
    .free_conf = proj_free,
    .process = proj_process,
};

/* ---------------------------------------------------------------- key_by */

typedef struct keyby_s {
    int n;
    eddy_expr_t **expr;
} keyby_t;

static void keyby_free(void *conf) {
    keyby_t *k = conf;
    if (!k)
        return;
    for (int i = 0; i < k->n; i++)
        eddy__expr_destroy(k->expr[i]);
    eddy_free(k->expr);
    eddy_free(k);
}

static eddy_err_t keyby_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    eddy_err_t err = only_key(cc, errstr, errstr_size);
    if (err)
        return err;
    const eddy_cnode_t *arg = cc->arg;
    const eddy_cnode_t *const *items = &cc->arg;
    int n = 1;
    if (arg && arg->kind == EDDY_CNODE_SEQ) {
        items = (const eddy_cnode_t *const *)arg->items;
        n = arg->n;
        if (n == 0)
            return eddy__cnode_err(arg, errstr, errstr_size,
                                   "key_by: expected an expression or a list of expressions");
    }
    keyby_t *k = eddy_calloc(1, sizeof(*k));
    k->expr = eddy_calloc((size_t)n, sizeof(*k->expr));
    for (int i = 0; i < n; i++) {
        k->expr[i] = compile_expr_node(items[i], cc->in, "key_by", errstr, errstr_size);
        if (!k->expr[i]) {
            keyby_free(k);
            return EDDY_ERR_CONFIG;
        }
        k->n++;
    }
    cc->conf = k;
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "key_by ");
    for (int i = 0; i < n; i++)
        eddy_buf_printf(&b, "%s%s", i ? ", " : "", items[i]->scalar);
    cc->label = b.p;
    return EDDY_OK;
}

#define KEY_MAX 4096

static eddy_err_t keyby_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    (void)out;
    const keyby_t *k = op->node->conf;
    eddy_task_t *task = op->task;
    eddy_arena_t *a = eddy__task_arena(task);
    int ntasks = eddy__task_count(task);
    char buf[KEY_MAX];
    for (uint32_t i = 0; i < in->n; i++) {
        eddy_rec_t r = in->recs[i];
        size_t len = 0;
        for (int j = 0; j < k->n; j++) {
            eddy_value_t v;
            eddy__expr_eval(k->expr[j], r.vals, a, &v);
            len += eddy__key_encode(&v, buf + len, sizeof(buf) - len);
            if (len >= sizeof(buf))
                len = sizeof(buf); /* truncated keys still route stably */
        }
        r.key = buf;
        r.key_len = (uint32_t)len;
        int dest = eddy__key_task(buf, len, ntasks);
        eddy__task_exchange(task, op->node, dest, in->schema, &r);
    }
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_key_by = {
    .abi = EDDY_OP_ABI,
    .name = "key_by",
    .compile = keyby_compile,
    .free_conf = keyby_free,
    .process = keyby_process,
    .is_exchange = true,
};
