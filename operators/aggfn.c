/*
 * Aggregate functions shared by aggregate and window steps. Each keeps its
 * accumulator in two values (count: n; sum: s, n; min/max: v, n; avg: s, n),
 * which encode compactly with state/row.c and merge (hopping-window panes,
 * session merges) without revisiting records.
 */
#include "aggfn.h"


static eddy_type_t t_int(eddy_type_t a) { (void)a; return EDDY_TYPE_INT; }
static eddy_type_t t_same(eddy_type_t a) { return a; }
static eddy_type_t t_double(eddy_type_t a) { (void)a; return EDDY_TYPE_DOUBLE; }
static eddy_type_t t_sum(eddy_type_t a) {
    return a == EDDY_TYPE_DOUBLE ? EDDY_TYPE_DOUBLE : EDDY_TYPE_INT;
}

static void inc_n(eddy_value_t *n) {
    n->type = EDDY_TYPE_INT;
    n->u.i++;
}

static void count_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    (void)ts;
    if (!v || v->type != EDDY_TYPE_NULL)
        inc_n(&acc[0]);
}
static void count_res(const eddy_value_t acc[2], eddy_value_t *out) {
    out->type = EDDY_TYPE_INT;
    out->u.i = acc[0].type == EDDY_TYPE_NULL ? 0 : acc[0].u.i;
}

static double num(const eddy_value_t *v) {
    return v->type == EDDY_TYPE_DOUBLE ? v->u.d : (double)v->u.i;
}

static void sum_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[0].type == EDDY_TYPE_NULL) {
        acc[0].type = v->type == EDDY_TYPE_DOUBLE ? EDDY_TYPE_DOUBLE : EDDY_TYPE_INT;
        acc[0].u.i = 0;
        if (acc[0].type == EDDY_TYPE_DOUBLE)
            acc[0].u.d = 0;
    }
    if (acc[0].type == EDDY_TYPE_DOUBLE)
        acc[0].u.d += num(v);
    else
        acc[0].u.i = (int64_t)((uint64_t)acc[0].u.i + (uint64_t)v->u.i); /* wraps like Flink's */
    inc_n(&acc[1]);
}
static void first_res(const eddy_value_t acc[2], eddy_value_t *out) { *out = acc[0]; }

static int cmpv(const eddy_value_t *a, const eddy_value_t *b) {
    switch ((eddy_type_t)a->type) {
    case EDDY_TYPE_DOUBLE:
        return a->u.d < b->u.d ? -1 : a->u.d > b->u.d;
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES: {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->u.s, b->u.s, n);
        return c ? c : (a->len < b->len ? -1 : a->len > b->len);
    }
    default:
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    }
}
static void min_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[0].type == EDDY_TYPE_NULL || cmpv(v, &acc[0]) < 0)
        acc[0] = *v;
    inc_n(&acc[1]);
}
static void max_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[0].type == EDDY_TYPE_NULL || cmpv(v, &acc[0]) > 0)
        acc[0] = *v;
    inc_n(&acc[1]);
}
static void avg_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    (void)ts;
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[0].type == EDDY_TYPE_NULL) {
        acc[0].type = EDDY_TYPE_DOUBLE;
        acc[0].u.d = 0;
    }
    acc[0].u.d += num(v);
    inc_n(&acc[1]);
}
static void avg_res(const eddy_value_t acc[2], eddy_value_t *out) {
    if (acc[1].type == EDDY_TYPE_NULL || acc[1].u.i == 0) {
        out->type = EDDY_TYPE_NULL;
        return;
    }
    out->type = EDDY_TYPE_DOUBLE;
    out->u.d = acc[0].u.d / (double)acc[1].u.i;
}

/* merge b into a */
static void count_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else
        a[0].u.i += b[0].u.i;
}
static void add_n(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[1].type == EDDY_TYPE_NULL)
        return;
    if (a[1].type == EDDY_TYPE_NULL)
        a[1] = b[1];
    else
        a[1].u.i += b[1].u.i;
}
static void sum_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else if (a[0].type == EDDY_TYPE_DOUBLE)
        a[0].u.d += num(&b[0]);
    else
        a[0].u.i = (int64_t)((uint64_t)a[0].u.i + (uint64_t)b[0].u.i);
    add_n(a, b);
}
static void min_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[0].type != EDDY_TYPE_NULL && (a[0].type == EDDY_TYPE_NULL || cmpv(&b[0], &a[0]) < 0))
        a[0] = b[0];
    add_n(a, b);
}
static void max_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[0].type != EDDY_TYPE_NULL && (a[0].type == EDDY_TYPE_NULL || cmpv(&b[0], &a[0]) > 0))
        a[0] = b[0];
    add_n(a, b);
}
static void avg_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[0].type == EDDY_TYPE_NULL)
        return;
    if (a[0].type == EDDY_TYPE_NULL)
        a[0] = b[0];
    else
        a[0].u.d += b[0].u.d;
    add_n(a, b);
}

/* first/last by event time: (value, ts of that value); ties keep the
 * earlier-seen value for first and the later-seen for last. */
static void first_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[1].type == EDDY_TYPE_NULL || ts < acc[1].u.i) {
        acc[0] = *v;
        acc[1] = (eddy_value_t){.u.i = ts, .type = EDDY_TYPE_TIMESTAMP};
    }
}
static void last_add(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts) {
    if (v->type == EDDY_TYPE_NULL)
        return;
    if (acc[1].type == EDDY_TYPE_NULL || ts >= acc[1].u.i) {
        acc[0] = *v;
        acc[1] = (eddy_value_t){.u.i = ts, .type = EDDY_TYPE_TIMESTAMP};
    }
}
static void first_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[1].type != EDDY_TYPE_NULL && (a[1].type == EDDY_TYPE_NULL || b[1].u.i < a[1].u.i)) {
        a[0] = b[0];
        a[1] = b[1];
    }
}
static void last_merge(eddy_value_t a[2], const eddy_value_t b[2]) {
    if (b[1].type != EDDY_TYPE_NULL && (a[1].type == EDDY_TYPE_NULL || b[1].u.i >= a[1].u.i)) {
        a[0] = b[0];
        a[1] = b[1];
    }
}

const eddy_aggfn_t eddy__aggfns[] = {
    {"count", false, false, t_int, count_add, count_merge, count_res},
    {"sum", true, true, t_sum, sum_add, sum_merge, first_res},
    {"min", true, false, t_same, min_add, min_merge, first_res},
    {"max", true, false, t_same, max_add, max_merge, first_res},
    {"avg", true, true, t_double, avg_add, avg_merge, avg_res},
    {"first", true, false, t_same, first_add, first_merge, first_res},
    {"last", true, false, t_same, last_add, last_merge, first_res},
};
const int eddy__naggfns = (int)(sizeof(eddy__aggfns) / sizeof(eddy__aggfns[0]));
const char *const eddy__aggfn_names[] = {"count", "sum", "min",  "max",
                                         "avg",   "first", "last", NULL};


/* ----------------------------------------------------- aggregation spec */

eddy_err_t eddy__aggspec_by(eddy_aggspec_t *a, const eddy_cnode_t *by, const eddy_schema_t *in,
                            eddy_schema_t *out, eddy_schema_t *keys, char *errstr,
                            size_t errstr_size) {
    if (!by)
        return EDDY_OK;
    const eddy_cnode_t *const *bys = &by;
    int nby = 1;
    if (by->kind == EDDY_CNODE_SEQ) {
        bys = (const eddy_cnode_t *const *)by->items;
        nby = by->n;
    }
    a->by = eddy_calloc((size_t)nby + 1, sizeof(*a->by));
    for (int i = 0; i < nby; i++) {
        char msg[400];
        int col = 0;
        if (bys[i]->kind != EDDY_CNODE_SCALAR)
            return eddy__cnode_err(bys[i], errstr, errstr_size, "by: expected an expression");
        a->by[i] = eddy__expr_compile(bys[i]->scalar, in, msg, sizeof(msg), &col);
        if (!a->by[i])
            return eddy__cnode_err_at(bys[i], col + (bys[i]->quoted ? 1 : 0), errstr,
                                      errstr_size, "by: %s", msg);
        a->nby++;
        int ref = eddy__expr_field_ref(a->by[i]);
        char kname[64];
        if (ref >= 0)
            snprintf(kname, sizeof(kname), "%s", in->fields[ref].name);
        else
            snprintf(kname, sizeof(kname), nby == 1 ? "key" : "key%d", i + 1);
        if (out)
            eddy__schema_add(out, kname, eddy__expr_type(a->by[i]));
        eddy__schema_add(keys, kname, eddy__expr_type(a->by[i]));
    }
    return EDDY_OK;
}

eddy_err_t eddy__aggspec_fields(eddy_aggspec_t *a, const eddy_cnode_t *fields,
                                const eddy_schema_t *in, eddy_schema_t *out, const char *what,
                                char *errstr, size_t errstr_size) {
    a->fn = eddy_calloc((size_t)fields->n + 1, sizeof(*a->fn));
    a->arg = eddy_calloc((size_t)fields->n + 1, sizeof(*a->arg));
    for (int i = 0; i < fields->n; i++) {
        eddy_err_t err = eddy__aggfn_parse(fields->items[i], in, &a->fn[i], &a->arg[i], errstr,
                                           errstr_size);
        if (err)
            return err;
        a->nagg++;
        eddy_type_t at = a->arg[i] ? eddy__expr_type(a->arg[i]) : EDDY_TYPE_INT;
        if (eddy__schema_add(out, fields->keys[i], a->fn[i]->result_type(at)) < 0)
            return eddy__cnode_err(fields->key_nodes[i], errstr, errstr_size,
                                   "%s: field '%s' clashes with a key or window field", what,
                                   fields->keys[i]);
        out->fields[out->nfields - 1].nullable = true;
    }
    return EDDY_OK;
}

void eddy__aggspec_free(eddy_aggspec_t *a) {
    for (int i = 0; i < a->nby; i++)
        eddy__expr_destroy(a->by[i]);
    for (int i = 0; i < a->nagg; i++)
        eddy__expr_destroy(a->arg[i]);
    eddy_free(a->by);
    eddy_free(a->fn);
    eddy_free(a->arg);
}
