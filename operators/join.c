/*
 * Join steps: two inputs, one output (docs/joins.md).
 *
 *   - join:
 *       with: auctions            # the right input: a source stream or an `as:` name
 *       type: interval            # interval | window | table
 *       on: {left: id, right: seller}   # or `on: [id]` (same names on both sides)
 *       how: inner                # inner | left | full
 *       between: [-5s, 10s]       # interval: right.ts - left.ts in [lower, upper]
 *       window: {type: tumbling, size: 10s}   # window: tumbling | hopping (advance)
 *       grace: 0s                 # interval, window: allowed lateness
 *       prefix: {left: a_, right: b_}         # output field names
 *       store: name               # base name of the two stores
 *
 * The compiler puts a key_by on `on.left` in front of the left input and
 * one on `on.right` in front of the right input (both hash the encoded key
 * the same way), so records with equal keys meet on one task whatever the
 * partitioning of the inputs: co-partitioning is made, not required. Keys
 * that could never be equal (different number of key expressions,
 * different types) are a config error naming both inputs.
 *
 * The node has two inputs (engine: process_side(), up[0] is the left); its
 * watermark is the minimum over both. Each side has its own window-kind
 * store (state/), committed and restored with the task:
 *   interval  log [segment][key][event time][seq] -> one record
 *   window    [segment][key][window start] -> the side's records in that window
 *   table     kv [key] -> the side's current row (no __op)
 * An entry is a flag byte (bit 0: the record has matched), a varint
 * length, the record's row (state/row.c); a window value is the list of
 * the key's entries in the window, an interval value one entry.
 *
 * Interval join, W the watermark, g the grace: left l matches right r when
 * the keys are equal (and not null) and l.ts + lower <= r.ts <= l.ts +
 * upper, both bounds included. A record with ts < W - g is late (late
 * output, counted). Only records with ts >= W - g can still come, so a
 * left record can meet no new partner once l.ts + upper < W - g, a right
 * one once r.ts - lower < W - g: then an unmatched record of an outer side
 * is emitted with nulls for the other side (once: its entry is deleted),
 * and the store's retention drops it. Output event time: the larger of the
 * two records' times (an unmatched record: its own).
 *
 * Window join (Flink's window join): both records in the same window
 * (tumbling or hopping, aligned to the epoch) and key; pairs are emitted
 * when the window closes (end + g <= W), with window_start/window_end and
 * event time window_end - 1; outer sides' unmatched records likewise. A
 * record whose newest window has closed is late.
 *
 * Table join: both inputs are changelogs (an optional string column __op:
 * "d" deletes the key, anything else upserts the row, as the table step
 * reads them). The result is a table keyed by the join key, emitted as a
 * changelog with an __op column: "u" upserts the join row of the key, "d"
 * deletes it (the row the result held). No time bounds, no late records.
 */
#include "cfg.h"
#include "expr.h"
#include "plan.h"
#include "state/row.h"
#include "state/store.h"

#include "join_index.h"

#include <stdlib.h>

typedef enum { J_INTERVAL = 0, J_WINDOW = 1, J_TABLE = 2 } jtype_t;
static const char *const type_names[] = {"interval", "window", "table", NULL};
static const char *const how_names[] = {"inner", "left", "full", NULL};
static const char *const unique_names[] = {"none", "left", "right", "both", NULL};
static const char *const wtype_names[] = {"tumbling", "hopping", NULL};

#define OP_COLUMN "__op"
#define PK_MAX 4300

typedef struct {
    jtype_t type;
    bool outer[2];        /* side kept (with nulls) when unmatched */
    bool unique[2];       /* interval: a side's keys never repeat while a record can match */
    int64_t lower, upper; /* interval */
    int64_t size, advance;
    int64_t grace;
    int ncol[2];          /* fields of each side carried and stored */
    int *col[2];          /* their input indexes */
    int op_idx[2];        /* table: __op column, or -1 */
    int nout;
    int store[2];
    eddy_expr_t *until; /* interval: upper bound of right.ts from the left record (absolute) */
    eddy_expr_t *time;  /* interval: the output rows' event time, or NULL */
} jconf_t;

static void jfree(void *conf) {
    jconf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->col[0]);
    eddy_free(c->col[1]);
    if (c->until)
        eddy__expr_destroy(c->until);
    if (c->time)
        eddy__expr_destroy(c->time);
    eddy_free(c);
}

static int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* W - g: records with a time below it are late; INT64_MIN before any. */
static int64_t late_below(const jconf_t *c, int64_t wm) {
    return wm == INT64_MIN ? INT64_MIN : sat_add(wm, -c->grace);
}

/* Interval join: the last time a partner of a record of side at ts can
 * have (after W - g passes it, nothing can match the record any more). */
static int64_t rec_end(const jconf_t *c, int side, int64_t ts) {
    return side ? sat_add(ts, -c->lower) : sat_add(ts, c->upper);
}

/* The time an interval record is filed under in its store: its own, or
 * for the left side of a join with `until`, its end (so that the store's
 * retention, counted from that time, keeps it as long as it can match). */
static int64_t pk_time(const jconf_t *c, int side, int64_t ts, int64_t end) {
    return !side && c->until ? end : ts;
}

/* A window [start, end) is closed when end + grace <= wm. */
static bool wclosed(const jconf_t *c, int64_t end, int64_t wm) {
    return wm != INT64_MIN && end <= sat_add(wm, -c->grace);
}

/* Whether an encoded key (engine/key.c) holds a null component: SQL joins
 * never match null keys. */
static bool key_has_null(const char *k, uint32_t n) {
    uint32_t i = 0;
    while (i < n) {
        uint8_t tag = (uint8_t)k[i++];
        switch (tag) {
        case EDDY_TYPE_NULL:
            return true;
        case EDDY_TYPE_BOOL:
            i += 1;
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            while (i + 1 < n && !(k[i] == 0 && k[i + 1] == 0))
                i += k[i] == 0 ? 2 : 1;
            i += 2;
            break;
        default:
            i += 8;
        }
    }
    return false;
}

/* ------------------------------------------------------------ compile */

static const char *const join_keys[] = {"with",  "type",   "on",    "how",  "between", "window",
                                        "grace", "prefix", "store", "time",   "unique", NULL};
static const char *const on_keys[] = {"left", "right", NULL};
static const char *const prefix_keys[] = {"left", "right", NULL};
static const char *const jwindow_keys[] = {"type", "size", "advance", NULL};

static const eddy_cnode_t *join_with(const eddy_cnode_t *step) {
    return eddy__cnode_get(step->items[0], "with");
}

/* on: {left: k, right: k} or on: k / [k1, k2] for both sides. */
static const eddy_cnode_t *on_side(const eddy_cnode_t *step, int side) {
    const eddy_cnode_t *on = eddy__cnode_get(step->items[0], "on");
    if (!on)
        return NULL;
    if (on->kind == EDDY_CNODE_MAP)
        return eddy__cnode_get(on, side ? "right" : "left");
    return on;
}

static const eddy_cnode_t *left_key(const eddy_cnode_t *step, bool *wanted) {
    *wanted = true;
    return on_side(step, 0);
}

static const eddy_cnode_t *right_key(const eddy_cnode_t *step, bool *wanted) {
    *wanted = true;
    return on_side(step, 1);
}

/* A negative or positive duration ("-5s", "10s"). */
static eddy_err_t signed_duration(const eddy_cnode_t *n, int64_t *out, char *errstr, size_t en) {
    if (!n || n->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(n, errstr, en, "between: expected a duration like -5s or 10s");
    const char *s = n->scalar;
    bool neg = *s == '-';
    int64_t ms;
    int rc = eddy__parse_duration_ms(neg ? s + 1 : s, &ms);
    if (rc == -2)
        return eddy__cnode_err(n, errstr, en,
                               "between: '%s' is longer than 2^61 ms (about 73 million years)", s);
    if (rc != 0)
        return eddy__cnode_err(n, errstr, en,
                               "between: '%s' is not a duration (e.g. -5s, 0, 10s, 250ms)", s);
    *out = neg ? -ms : ms;
    return EDDY_OK;
}

/* The key expressions of a side, as nodes. */
static int key_items(const eddy_cnode_t *k, const eddy_cnode_t *const **items) {
    if (k->kind == EDDY_CNODE_SEQ) {
        *items = (const eddy_cnode_t *const *)k->items;
        return k->n;
    }
    *items = NULL;
    return 1;
}

/* An expression giving a time in ms (int or timestamp) over schema sc. */
static eddy_err_t time_expr(const eddy_cnode_t *n, const eddy_schema_t *sc, const char *what,
                            const char *over, eddy_expr_t **out, char *errstr, size_t en) {
    char msg[400];
    int col = 0;
    if (n->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(n, errstr, en, "join: %s: expected a duration or an expression",
                               what);
    eddy_expr_t *e = eddy__expr_compile(n->scalar, sc, msg, sizeof(msg), &col);
    if (!e)
        return eddy__cnode_err_at(n, col + (n->quoted ? 1 : 0), errstr, en,
                                  "join: %s: '%s' is neither a duration (e.g. 10s) nor an "
                                  "expression over the %s's fields: %s",
                                  what, n->scalar, over, msg);
    eddy_type_t t = eddy__expr_type(e);
    if (t != EDDY_TYPE_INT && t != EDDY_TYPE_TIMESTAMP) {
        eddy__expr_destroy(e);
        return eddy__cnode_err(n, errstr, en,
                               "join: %s: '%s' must be a time in ms (int or timestamp), not %s",
                               what, n->scalar, eddy_type2str(t));
    }
    *out = e;
    return EDDY_OK;
}

/* Both sides' keys must be able to be equal: as many expressions, of the
 * same types (the key_by encodings must agree byte for byte). */
static eddy_err_t check_keys(eddy_compile_ctx_t *cc, char *errstr, size_t en) {
    const eddy_cnode_t *on = eddy__cnode_get(cc->arg, "on");
    const eddy_cnode_t *k[2] = {on_side(cc->step, 0), on_side(cc->step, 1)};
    const char *nm[2] = {cc->in_name, cc->in2_name};
    const eddy_schema_t *sc[2] = {cc->in, cc->in2};
    if (!on)
        return eddy__cnode_err(cc->arg, errstr, en,
                               "join: 'on' is required: the key of each input, e.g. on: {left: "
                               "id, right: seller}, or on: [id] when both name it alike");
    if (on->kind == EDDY_CNODE_MAP && eddy__cfg_check_keys(on, "on", on_keys, errstr, en))
        return EDDY_ERR_CONFIG;
    for (int s = 0; s < 2; s++)
        if (!k[s])
            return eddy__cnode_err(on, errstr, en,
                                   "join: on: the %s input's key is missing (on: {left: ..., "
                                   "right: ...})",
                                   s ? "right" : "left");
    const eddy_cnode_t *const *it[2];
    int n[2] = {key_items(k[0], &it[0]), key_items(k[1], &it[1])};
    if (n[0] != n[1])
        return eddy__cnode_err(on, errstr, en,
                               "join: inputs '%s' (%d key expression%s) and '%s' (%d) cannot be "
                               "co-partitioned: key both sides by the same number of "
                               "expressions of the same types (on: {left: [...], right: [...]}, "
                               "or a key_by/map step before the join)",
                               nm[0], n[0], n[0] == 1 ? "" : "s", nm[1], n[1]);
    for (int i = 0; i < n[0]; i++) {
        eddy_type_t t[2];
        const eddy_cnode_t *node[2];
        for (int s = 0; s < 2; s++) {
            node[s] = it[s] ? it[s][i] : k[s];
            if (node[s]->kind != EDDY_CNODE_SCALAR)
                return eddy__cnode_err(node[s], errstr, en, "join: on: expected an expression");
            char msg[400];
            int col = 0;
            eddy_expr_t *e = eddy__expr_compile(node[s]->scalar, sc[s], msg, sizeof(msg), &col);
            if (!e)
                return eddy__cnode_err_at(node[s], col + (node[s]->quoted ? 1 : 0), errstr, en,
                                          "join: on (%s input '%s'): %s", s ? "right" : "left",
                                          nm[s], msg);
            t[s] = eddy__expr_type(e);
            eddy__expr_destroy(e);
        }
        if (t[0] != t[1] && t[0] != EDDY_TYPE_NULL && t[1] != EDDY_TYPE_NULL)
            return eddy__cnode_err(node[1], errstr, en,
                                   "join: inputs '%s' and '%s' cannot be co-partitioned: key "
                                   "'%s' is %s on the left but '%s' is %s on the right; make "
                                   "the types agree (e.g. on: {right: 'cast(%s as %s)'}, or a "
                                   "key_by/map step before the join)",
                                   nm[0], nm[1], node[0]->scalar, eddy_type2str(t[0]),
                                   node[1]->scalar, eddy_type2str(t[1]), node[1]->scalar,
                                   eddy_type2str(t[0]));
    }
    return EDDY_OK;
}

static eddy_err_t jcompile(eddy_compile_ctx_t *cc, char *errstr, size_t en) {
    const eddy_cnode_t *step = cc->step, *m = cc->arg;
    eddy_err_t err;
    if (step->n > 1)
        return eddy__cnode_err(step->key_nodes[1], errstr, en, "unexpected key '%s' in a join step",
                               step->keys[1]);
    if (!m || m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m ? m : step, errstr, en,
                               "join: expected a mapping like {with: persons, type: interval, "
                               "on: {left: seller, right: id}, between: [0s, 10s]}");
    if ((err = eddy__cfg_check_keys(m, "join", join_keys, errstr, en)))
        return err;
    if (!cc->in2)
        return eddy__cnode_err(m, errstr, en,
                               "join: 'with' is required: the right input's stream name");
    jconf_t *c = eddy_calloc(1, sizeof(*c));
    cc->conf = c;
    c->store[0] = c->store[1] = -1;
    int type = 0, how = 0;
    if ((err = eddy__cfg_enum(m, "type", true, type_names, &type, errstr, en)) ||
        (err = eddy__cfg_enum(m, "how", false, how_names, &how, errstr, en)) ||
        (err = eddy__cfg_duration(m, "grace", false, &c->grace, errstr, en)))
        return err;
    c->type = (jtype_t)type;
    c->outer[0] = how >= 1;
    c->outer[1] = how == 2;
    int uniq = 0;
    if ((err = eddy__cfg_enum(m, "unique", false, unique_names, &uniq, errstr, en)))
        return err;
    c->unique[0] = uniq & 1;
    c->unique[1] = (uniq & 2) != 0;
    if (uniq && c->type != J_INTERVAL)
        return eddy__cnode_err(eddy__cnode_get(m, "unique"), errstr, en,
                               "join: only interval joins have 'unique'");
    if ((err = check_keys(cc, errstr, en)))
        return err;
    const eddy_cnode_t *between = eddy__cnode_get(m, "between");
    const eddy_cnode_t *win = eddy__cnode_get(m, "window");
    if (c->type == J_INTERVAL) {
        if (!between || between->kind != EDDY_CNODE_SEQ || between->n != 2)
            return eddy__cnode_err(between ? between : m, errstr, en,
                                   "join: an interval join needs between: [lower, upper] "
                                   "(right.ts - left.ts, bounds included), e.g. [-5s, 10s]");
        const eddy_cnode_t *ub = between->items[1];
        int64_t ms;
        if ((err = signed_duration(between->items[0], &c->lower, errstr, en)))
            return err;
        if (ub->kind == EDDY_CNODE_SCALAR && ub->scalar[0] != '-' &&
            eddy__parse_duration_ms(ub->scalar, &ms) == -1) {
            /* a time of the left record: right.ts <= that time */
            if ((err = time_expr(ub, cc->in, "between: upper bound", "left input", &c->until,
                                 errstr, en)))
                return err;
            c->upper = INT64_MAX;
        } else if ((err = signed_duration(ub, &c->upper, errstr, en))) {
            return err;
        }
        if (c->lower > c->upper)
            return eddy__cnode_err(between, errstr, en,
                                   "join: between: lower %lldms is above upper %lldms",
                                   (long long)c->lower, (long long)c->upper);
    } else if (between) {
        return eddy__cnode_err(between, errstr, en, "join: only interval joins have 'between'");
    }
    if (c->type != J_INTERVAL && eddy__cnode_get(m, "time"))
        return eddy__cnode_err(eddy__cnode_get(m, "time"), errstr, en,
                               "join: only interval joins have 'time'");
    if (c->type == J_WINDOW) {
        if (!win || win->kind != EDDY_CNODE_MAP)
            return eddy__cnode_err(win ? win : m, errstr, en,
                                   "join: a window join needs window: {type: tumbling, size: "
                                   "10s} (or hopping with advance)");
        int wt = 0;
        if ((err = eddy__cfg_check_keys(win, "window", jwindow_keys, errstr, en)) ||
            (err = eddy__cfg_enum(win, "type", true, wtype_names, &wt, errstr, en)) ||
            (err = eddy__cfg_duration(win, "size", true, &c->size, errstr, en)))
            return err;
        if (c->size <= 0)
            return eddy__cnode_err(eddy__cnode_get(win, "size"), errstr, en,
                                   "window size must be > 0");
        if ((err = eddy__cfg_window_advance(win, wt == 1, c->size, &c->advance, errstr, en)))
            return err;
    } else if (win) {
        return eddy__cnode_err(win, errstr, en, "join: only window joins have 'window'");
    }
    if (c->type == J_TABLE && eddy__cnode_get(m, "grace"))
        return eddy__cnode_err(eddy__cnode_get(m, "grace"), errstr, en,
                               "join: a table join has no time bounds, so no grace");
    /* output: the sides' fields (table: without __op), prefixed */
    const char *pre[2] = {"", ""};
    const eddy_cnode_t *prefix = eddy__cnode_get(m, "prefix");
    if (prefix && (prefix->kind != EDDY_CNODE_MAP ||
                   (err = eddy__cfg_check_keys(prefix, "prefix", prefix_keys, errstr, en)) ||
                   (err = eddy__cfg_str(prefix, "left", false, &pre[0], errstr, en)) ||
                   (err = eddy__cfg_str(prefix, "right", false, &pre[1], errstr, en))))
        return prefix->kind != EDDY_CNODE_MAP
                   ? eddy__cnode_err(prefix, errstr, en,
                                     "prefix: expected {left: a_, right: b_}")
                   : err;
    eddy_schema_t *out = eddy__schema_new_empty();
    cc->out = out;
    const eddy_schema_t *sc[2] = {cc->in, cc->in2};
    const char *nm[2] = {cc->in_name, cc->in2_name};
    for (int s = 0; s < 2; s++) {
        c->op_idx[s] = c->type == J_TABLE ? eddy_schema_field_index(sc[s], OP_COLUMN) : -1;
        c->col[s] = eddy_calloc((size_t)sc[s]->nfields + 1, sizeof(int));
        for (int i = 0; i < sc[s]->nfields; i++) {
            if (i == c->op_idx[s])
                continue;
            c->col[s][c->ncol[s]++] = i;
            char *fname = eddy_asprintf("%s%s", pre[s], sc[s]->fields[i].name);
            int idx = eddy__schema_add(out, fname, sc[s]->fields[i].type);
            if (idx < 0) {
                err = eddy__cnode_err(prefix ? prefix : m, errstr, en,
                                      "join: field '%s' of the %s input '%s' is already an "
                                      "output field from '%s'; give the inputs prefixes, e.g. "
                                      "prefix: {left: a_, right: b_}",
                                      fname, s ? "right" : "left", nm[s], nm[0]);
                eddy_free(fname);
                return err;
            }
            out->fields[idx].nullable = sc[s]->fields[i].nullable || c->outer[1 - s];
            out->fields[idx].pii = sc[s]->fields[i].pii;
            eddy_free(fname);
        }
    }
    const char *extra[2] = {c->type == J_WINDOW ? "window_start" : OP_COLUMN, "window_end"};
    int nextra = c->type == J_WINDOW ? 2 : c->type == J_TABLE ? 1 : 0;
    for (int i = 0; i < nextra; i++)
        if (eddy__schema_add(out, extra[i],
                             c->type == J_TABLE ? EDDY_TYPE_STRING : EDDY_TYPE_TIMESTAMP) < 0)
            return eddy__cnode_err(m, errstr, en,
                                   "join: the inputs already have a field '%s'; rename it with "
                                   "prefix:",
                                   extra[i]);
    c->nout = out->nfields;
    const eddy_cnode_t *tn = eddy__cnode_get(m, "time");
    if (tn && (err = time_expr(tn, out, "time", "output", &c->time, errstr, en)))
        return err;
    /* the stores */
    const char *store = NULL;
    if ((err = eddy__cfg_str(m, "store", false, &store, errstr, en)))
        return err;
    const char *base = store ? store : cc->pipeline ? cc->pipeline : "join";
    for (int s = 0; s < 2; s++) {
        char *name = eddy_asprintf("%s.%s", base, s ? "right" : "left");
        if (eddy__plan_find_store(cc->plan, name)) {
            err = eddy__cnode_err(store ? eddy__cnode_get(m, "store") : step, errstr, en,
                                  "a store named '%s' already exists; name this join's stores "
                                  "with 'store:'",
                                  name);
            eddy_free(name);
            return err;
        }
        eddy_store_def_t *d = eddy_calloc(1, sizeof(*d));
        d->name = name;
        if (c->type == J_TABLE) {
            d->kind = EDDY_STORE_KV;
        } else {
            int64_t keep;
            if (c->type == J_INTERVAL && !s && c->until) /* filed at their end: see below */
                keep = c->grace + 1;
            else if (c->type == J_INTERVAL) /* see the header: how long a record can still match */
                keep = c->grace + (s ? -c->lower : c->upper) + 1;
            else
                keep = c->size + c->grace + 1;
            /* interval: one entry per record, [segment][key][ts][seq] */
            d->kind = c->type == J_INTERVAL ? EDDY_STORE_LOG : EDDY_STORE_WINDOW;
            d->retention_ms = keep > 1 ? keep : 1;
            d->segment_ms = d->retention_ms / 2 + 1;
            /* interval: read by point lookups through the index, so no
             * skip list; segments of at least a second, so that expiring
             * one (which visits the store's cache) is rare */
            if (c->type == J_INTERVAL && d->segment_ms < 1000)
                d->segment_ms = 1000;
        }
        c->store[s] = eddy__plan_add_store((eddy_plan_t *)cc->plan, d);
    }
    if (c->type == J_INTERVAL && c->until)
        cc->label = eddy_asprintf("%s interval join with %s, left.ts + %lld ms <= right.ts <= %s",
                                  how_names[how], cc->in2_name, (long long)c->lower,
                                  eddy__expr_source(c->until));
    else if (c->type == J_INTERVAL)
        cc->label = eddy_asprintf("%s interval join with %s, right.ts - left.ts in [%lld, %lld] ms",
                                  how_names[how], cc->in2_name, (long long)c->lower,
                                  (long long)c->upper);
    else if (c->type == J_WINDOW)
        cc->label = eddy_asprintf("%s window join with %s, windows of %lld ms every %lld ms",
                                  how_names[how], cc->in2_name, (long long)c->size,
                                  (long long)c->advance);
    else
        cc->label = eddy_asprintf("%s table join with %s", how_names[how], cc->in2_name);
    return EDDY_OK;
}

/* ------------------------------------------------------- runtime state */

typedef struct {
    int64_t due; /* interval: emit unmatched once due < W - g */
    int64_t ts, seq; /* of the store entry (ts: the time it is filed under) */
    char *key;
    uint32_t klen;
} jkey_t;

typedef struct {
    char *key;
    uint32_t klen;
} wk_t;

typedef struct {
    int64_t start;
    wk_t *keys;
    size_t n, cap;
    eddy_arena_t kmem;
} jwin_t;

/* A match found in the other side's store whose entries got a matched
 * flag: written back after the store visit. */
typedef struct {
    int64_t ts, seq;
    size_t off, len; /* in upd */
} jupd_t;

typedef struct {
    struct eddy_store_s *st[2];
    jix_t ix[2]; /* interval: each side's buffered records by key */
    jkey_t *heap[2];
    size_t nheap[2], hcap[2];
    jwin_t *wins; /* window join: windows with records, by start */
    size_t nwins, wcap;
    eddy_buf_t enc, upd, cur;
    jupd_t *ups;
    size_t nups, upcap;
    eddy_value_t *row[2]; /* decode scratch per side */
    eddy_value_t *tmp;    /* the current record's carried fields */
    int64_t max_ts;
    int64_t seq; /* interval: the next record's sequence number in its store */
    /* the visit in progress */
    eddy_op_t *op;
    eddy_batch_t *out;
    const eddy_rec_t *rec;
    const eddy_value_t *rvals;
    int side;
    bool matched;
    bool other_live; /* the other side is unique and has a live record of the key */
    eddy_err_t verr;
} jstate_t;

static void heap_push(jstate_t *s, int side, int64_t due, int64_t ts, int64_t seq, const char *k,
                      uint32_t kl) {
    if (s->nheap[side] == s->hcap[side]) {
        s->hcap[side] = s->hcap[side] ? 2 * s->hcap[side] : 64;
        s->heap[side] = eddy_realloc(s->heap[side], s->hcap[side] * sizeof(jkey_t));
    }
    jkey_t *h = s->heap[side];
    size_t i = s->nheap[side]++;
    char *key = eddy_malloc(kl ? kl : 1);
    memcpy(key, k, kl);
    h[i] = (jkey_t){due, ts, seq, key, kl};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].due <= h[i].due)
            break;
        jkey_t t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static jkey_t heap_pop(jstate_t *s, int side) {
    jkey_t *h = s->heap[side];
    jkey_t top = h[0];
    size_t n = --s->nheap[side];
    h[0] = h[n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due < h[m].due)
            m = l;
        if (r < n && h[r].due < h[m].due)
            m = r;
        if (m == i)
            break;
        jkey_t t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

static jwin_t *win_get(jstate_t *s, int64_t start) {
    size_t lo = 0, hi = s->nwins;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->wins[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->nwins && s->wins[lo].start == start)
        return &s->wins[lo];
    if (s->nwins == s->wcap) {
        s->wcap = s->wcap ? 2 * s->wcap : 16;
        s->wins = eddy_realloc(s->wins, s->wcap * sizeof(jwin_t));
    }
    memmove(&s->wins[lo + 1], &s->wins[lo], (s->nwins - lo) * sizeof(jwin_t));
    s->nwins++;
    jwin_t *w = &s->wins[lo];
    memset(w, 0, sizeof(*w));
    w->start = start;
    eddy_arena_init(&w->kmem, 16384);
    return w;
}

static void win_add_key(jwin_t *w, const char *k, uint32_t kl) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->keys = eddy_realloc(w->keys, w->cap * sizeof(wk_t));
    }
    w->keys[w->n++] = (wk_t){eddy_arena_strndup(&w->kmem, k, kl), kl};
}

static void win_drop_first(jstate_t *s) {
    eddy_free(s->wins[0].keys);
    eddy_arena_free(&s->wins[0].kmem);
    memmove(&s->wins[0], &s->wins[1], (s->nwins - 1) * sizeof(jwin_t));
    s->nwins--;
}

/* Walk the entries of a stored list: *flag, the row bytes. */
/* Flag bits of a stored entry. An interval record filed under its end
 * (a left record of a join with `until`) carries its event time. */
#define F_MATCHED 1
#define F_HAS_TS 2

static bool entry_next(const char **p, const char *end, uint8_t *flag, const char **row,
                       size_t *rlen) {
    if (*p >= end)
        return false;
    *flag = (uint8_t)**p;
    const char *q = *p + 1 + ((*flag & F_HAS_TS) ? 8 : 0);
    if (q > end)
        return false;
    uint64_t len;
    size_t used = eddy__varint_get(q, (size_t)(end - q), &len);
    if (!used || len > (uint64_t)(end - q - (ptrdiff_t)used))
        return false;
    *row = q + used;
    *rlen = (size_t)len;
    *p = *row + len;
    return true;
}

/* The event time an entry carries, else dflt. */
static int64_t entry_ts(const char *v, size_t vl, int64_t dflt) {
    if (vl < 9 || !((uint8_t)v[0] & F_HAS_TS))
        return dflt;
    uint64_t u = 0;
    for (int i = 1; i <= 8; i++)
        u = (u << 8) | (uint8_t)v[i];
    return (int64_t)u;
}

static void entry_put(eddy_buf_t *b, uint8_t flag, const int64_t *ts, int n,
                      const eddy_value_t *vals, eddy_buf_t *scratch) {
    scratch->len = 0;
    eddy__row_encode(scratch, n, vals);
    eddy_buf_putc(b, (char)(flag | (ts ? F_HAS_TS : 0)));
    if (ts) {
        uint64_t u = (uint64_t)*ts;
        for (int i = 7; i >= 0; i--)
            eddy_buf_putc(b, (char)(u >> (8 * i)));
    }
    eddy__varint_put(b, scratch->len);
    eddy_buf_put(b, scratch->p, scratch->len);
}

/* The carried fields of a record (input order -> stored order). */
static const eddy_value_t *carried(const jconf_t *c, jstate_t *s, int side,
                                   const eddy_value_t *vals) {
    if (c->op_idx[side] < 0)
        return vals; /* every field, in order */
    for (int i = 0; i < c->ncol[side]; i++)
        s->tmp[i] = vals[c->col[side][i]];
    return s->tmp;
}

static void copy_vals(eddy_arena_t *a, eddy_value_t *dst, const eddy_value_t *src, int n,
                      bool copy_strings) {
    for (int i = 0; i < n; i++) {
        dst[i] = src[i];
        if (copy_strings && (src[i].type == EDDY_TYPE_STRING || src[i].type == EDDY_TYPE_BYTES) &&
            src[i].len)
            dst[i].u.s = eddy_arena_strndup(a, src[i].u.s, src[i].len);
    }
}

/* Emit one output row: v[side] the side's carried values (NULL: nulls);
 * own[side]: values of the record being processed (alive with the batch),
 * else decoded from a store (copied into the arena). */
static eddy_rec_t *emit(const jconf_t *c, eddy_batch_t *out, const eddy_value_t *lv, bool lown,
                        const eddy_value_t *rv, bool rown, int64_t ts) {
    eddy_arena_t *a = out->arena;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)c->nout);
    memset(o, 0, sizeof(eddy_value_t) * (size_t)c->nout);
    if (lv)
        copy_vals(a, o, lv, c->ncol[0], !lown);
    if (rv)
        copy_vals(a, o + c->ncol[0], rv, c->ncol[1], !rown);
    eddy_rec_t *r = eddy_batch_push(out);
    memset(r, 0, sizeof(*r));
    r->vals = o;
    r->ts_ms = ts;
    if (c->time) {
        eddy_value_t tv;
        eddy__expr_eval(c->time, o, a, &tv);
        if (tv.type != EDDY_TYPE_NULL)
            r->ts_ms = tv.u.i;
    }
    return r;
}

static void maybe_flush(eddy_op_t *op, eddy_batch_t *out) {
    if (out->n >= 1024)
        eddy__op_emit_flush(op, out);
}

/* Rebuild the in-memory indexes from the stores (restart). */
static eddy_err_t rebuild(eddy_op_t *op) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    if (c->type == J_TABLE)
        return EDDY_OK;
    for (int side = 0; side < 2; side++) {
        eddy_store_iter_t *it = eddy__store_iter(s->st[side], "", 0, NULL, 0);
        const char *k, *v;
        size_t kl, vl;
        eddy_store_kind_t kind = c->type == J_INTERVAL ? EDDY_STORE_LOG : EDDY_STORE_WINDOW;
        while (eddy__store_iter_next(it, &k, &kl, &v, &vl)) {
            const char *lk;
            size_t lkl;
            int64_t ts, ts2;
            if (!eddy__tkey_parse(kind, k, kl, &lk, &lkl, &ts, &ts2))
                continue;
            if (c->type == J_INTERVAL) {
                if (ts2 >= s->seq)
                    s->seq = ts2 + 1;
                /* filed under its end when it carries its time */
                int64_t rts = entry_ts(v, vl, ts);
                int64_t end = !side && c->until ? ts : rec_end(c, side, rts);
                eddy__jix_add(&s->ix[side], lk, (uint32_t)lkl, rts, ts2, end);
                if (c->outer[side] && !(vl && (v[0] & F_MATCHED)))
                    heap_push(s, side, end, ts, ts2, lk, (uint32_t)lkl);
            } else
                win_add_key(win_get(s, ts), lk, (uint32_t)lkl);
        }
        eddy_err_t e = eddy__store_iter_destroy(it);
        if (e)
            return e;
    }
    return EDDY_OK;
}

static eddy_err_t jinit(eddy_op_t *op, char *errstr, size_t en) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = eddy_calloc(1, sizeof(*s));
    op->state = s;
    s->max_ts = INT64_MIN;
    for (int side = 0; side < 2; side++) {
        s->st[side] = eddy__task_store(op->task, c->store[side]);
        s->row[side] = eddy_calloc((size_t)c->ncol[side] + 1, sizeof(eddy_value_t));
        if (!s->st[side])
            return eddy__cnode_err(op->node->where, errstr, en, "join: its store is not open");
    }
    int nt = c->ncol[0] > c->ncol[1] ? c->ncol[0] : c->ncol[1];
    s->tmp = eddy_calloc((size_t)nt + 1, sizeof(eddy_value_t));
    return rebuild(op);
}

static void jdestroy(eddy_op_t *op) {
    jstate_t *s = op->state;
    if (!s)
        return;
    for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < s->nheap[side]; i++)
            eddy_free(s->heap[side][i].key);
        eddy_free(s->heap[side]);
        eddy_free(s->row[side]);
        eddy__jix_free(&s->ix[side]);
    }
    while (s->nwins)
        win_drop_first(s);
    eddy_free(s->wins);
    eddy_free(s->ups);
    eddy_free(s->tmp);
    eddy_buf_free(&s->enc);
    eddy_buf_free(&s->upd);
    eddy_buf_free(&s->cur);
    eddy_free(s);
}

/* Append the record to its side's list at (key, ts); *created: the list
 * is new. */
static eddy_err_t append(jstate_t *s, const jconf_t *c, int side, const eddy_rec_t *r,
                         const eddy_value_t *vals, int64_t ts, uint8_t flag, bool *created) {
    char pk[PK_MAX];
    size_t pkl = eddy__store_tkey(s->st[side], r->key, r->key_len, ts, 0, pk, sizeof(pk));
    if (!pkl)
        return EDDY_ERR_INVAL;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e = eddy__store_get(s->st[side], pk, pkl, &v, &vl, &found);
    if (e)
        return e;
    s->cur.len = 0;
    if (found)
        eddy_buf_put(&s->cur, v, vl);
    entry_put(&s->cur, flag, NULL, c->ncol[side], vals, &s->enc);
    *created = !found;
    return eddy__store_put(s->st[side], pk, pkl, s->cur.p, s->cur.len);
}

/* ------------------------------------------------------ interval join */

/* A record of the other side (entry x of the index, value v of its
 * store): join the current record with it; a record of an outer side gets
 * its matched flag. */
static eddy_err_t visit_other(jstate_t *s, const jix_ent_t *x, const char *v, size_t vl) {
    const jconf_t *c = s->op->node->conf;
    int side = s->side, o = 1 - side;
    const char *p = v, *end = v + vl;
    uint8_t flag;
    const char *row;
    size_t rl;
    int64_t ots = s->rec->ts_ms > x->ts ? s->rec->ts_ms : x->ts;
    if (!entry_next(&p, end, &flag, &row, &rl))
        return EDDY_ERR_DECODE;
    eddy_err_t e = eddy__row_decode(row, rl, c->ncol[o], s->row[o]);
    if (e)
        return e;
    if (side == 0)
        emit(c, s->out, s->rvals, true, s->row[1], false, ots);
    else
        emit(c, s->out, s->row[0], false, s->rvals, true, ots);
    s->matched = true;
    if (c->outer[o] && !(flag & F_MATCHED)) {
        /* written back with the flag set after the visit */
        if (s->nups == s->upcap) {
            s->upcap = s->upcap ? 2 * s->upcap : 16;
            s->ups = eddy_realloc(s->ups, s->upcap * sizeof(jupd_t));
        }
        size_t off = s->upd.len;
        eddy_buf_put(&s->upd, v, vl);
        s->upd.p[off] |= F_MATCHED;
        s->ups[s->nups++] = (jupd_t){pk_time(c, o, x->ts, x->end), x->seq, off, vl};
    }
    return EDDY_OK;
}

/* Whether one of a key's records can still match (its end is not below
 * W - g). */
static bool live(const jix_key_t *k, int64_t below) {
    for (uint32_t i = 0; k && i < k->n; i++)
        if (k->e[i].end >= below)
            return true;
    return false;
}

/* The other side's records of the current record's key with a time in
 * [from, to]: found in the index, read from the store by point lookups. */
static eddy_err_t visit_partners(jstate_t *s, int o, const eddy_rec_t *r, int64_t from,
                                 int64_t to) {
    const jconf_t *c = s->op->node->conf;
    jix_key_t *k = eddy__jix_find(&s->ix[o], r->key, r->key_len);
    if (!k)
        return EDDY_OK;
    s->other_live = c->unique[o] && live(k, late_below(c, s->op->wm_ms));
    for (uint32_t i = eddy__jix_lower(k, from); i < k->n && k->e[i].ts <= to; i++) {
        jix_ent_t x = k->e[i];
        if (!o && x.end < r->ts_ms)
            continue; /* a left record's interval ended before r (until) */
        char pk[PK_MAX];
        size_t pkl = eddy__store_tkey(s->st[o], r->key, r->key_len, pk_time(c, o, x.ts, x.end),
                                      x.seq, pk, sizeof(pk));
        const char *v;
        size_t vl;
        bool found;
        eddy_err_t e = pkl ? eddy__store_get(s->st[o], pk, pkl, &v, &vl, &found) : EDDY_ERR_INVAL;
        if (e)
            return e;
        /* not found: an outer row emitted (and deleted) or expired */
        if (found && (e = visit_other(s, &x, v, vl)))
            return e;
    }
    return EDDY_OK;
}

static eddy_err_t interval_record(eddy_op_t *op, int side, const eddy_rec_t *r,
                                  const eddy_schema_t *schema, eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    int64_t t = r->ts_ms;
    if (t < late_below(c, op->wm_ms)) {
        eddy__task_late(op->task, op->node, schema, r);
        return EDDY_OK;
    }
    const eddy_value_t *vals = carried(c, s, side, r->vals);
    if (key_has_null(r->key, r->key_len)) {
        /* can never match: an outer side's row goes out now */
        if (c->outer[side])
            emit(c, out, side ? NULL : vals, true, side ? vals : NULL, true, t);
        return EDDY_OK;
    }
    int o = 1 - side;
    if (c->unique[side] &&
        live(eddy__jix_find(&s->ix[side], r->key, r->key_len), late_below(c, op->wm_ms))) {
        eddy__task_dead_letter(op->task,
                               side ? "join: a second record of a key of the unique right input "
                                      "while the first can still match (unique: right)"
                                    : "join: a second record of a key of the unique left input "
                                      "while the first can still match (unique: left)",
                               op->node->name, r->partition, r->offset, NULL, 0);
        return EDDY_OK;
    }
    /* the last time a partner can have */
    int64_t due = rec_end(c, side, t);
    if (!side && c->until) {
        eddy_value_t u;
        eddy__expr_eval(c->until, r->vals, out->arena, &u);
        due = u.type == EDDY_TYPE_NULL ? INT64_MIN : u.u.i;
        if (due < sat_add(t, c->lower)) {
            /* an empty interval (or none): it can never match */
            if (c->outer[side])
                emit(c, out, vals, true, NULL, true, t);
            return EDDY_OK;
        }
    }
    int64_t from = side ? sat_add(t, -c->upper) : sat_add(t, c->lower);
    int64_t to = side ? sat_add(t, -c->lower) : due;
    s->op = op;
    s->out = out;
    s->rec = r;
    s->rvals = vals;
    s->side = side;
    s->matched = false;
    s->other_live = false;
    s->nups = 0;
    s->upd.len = 0;
    eddy_err_t e = visit_partners(s, o, r, from, to);
    if (e)
        return e;
    for (size_t i = 0; i < s->nups; i++)
        if ((e = eddy__store_tput(s->st[o], r->key, r->key_len, s->ups[i].ts, s->ups[i].seq,
                                  s->upd.p + s->ups[i].off, s->ups[i].len)))
            return e;
    /* keep it for the other side's later records, unless none can come
     * (the interval is behind the watermark, or the other side is unique
     * and its record of the key is there) */
    if (due < late_below(c, op->wm_ms) || s->other_live) {
        if (c->outer[side] && !s->matched)
            emit(c, out, side ? NULL : vals, true, side ? vals : NULL, true, t);
        return EDDY_OK;
    }
    int64_t seq = s->seq++, pkt = pk_time(c, side, t, due);
    s->cur.len = 0;
    entry_put(&s->cur, s->matched ? F_MATCHED : 0, pkt != t ? &t : NULL, c->ncol[side], vals,
              &s->enc);
    if ((e = eddy__store_tput(s->st[side], r->key, r->key_len, pkt, seq, s->cur.p, s->cur.len)))
        return e;
    eddy__jix_add(&s->ix[side], r->key, r->key_len, t, seq, due);
    if (c->outer[side] && !s->matched)
        heap_push(s, side, due, pkt, seq, r->key, r->key_len);
    return EDDY_OK;
}

/* Unmatched entries of outer sides whose partners can no longer come. */
static eddy_err_t interval_expire(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    int64_t below = late_below(c, wm);
    for (int side = 0; side < 2; side++) {
        while (s->nheap[side] && s->heap[side][0].due < below) {
            jkey_t k = heap_pop(s, side);
            char pk[PK_MAX];
            size_t pkl = eddy__store_tkey(s->st[side], k.key, k.klen, k.ts, k.seq, pk, sizeof(pk));
            const char *v;
            size_t vl;
            bool found = false;
            eddy_err_t e = pkl ? eddy__store_get(s->st[side], pk, pkl, &v, &vl, &found)
                               : EDDY_ERR_INVAL;
            if (!e && found) {
                const char *p = v, *end = v + vl, *row;
                uint8_t flag;
                size_t rl;
                int64_t rts = entry_ts(v, vl, k.ts);
                while (!e && entry_next(&p, end, &flag, &row, &rl)) {
                    if (flag & F_MATCHED)
                        continue;
                    if (!(e = eddy__row_decode(row, rl, c->ncol[side], s->row[side])))
                        emit(c, out, side ? NULL : s->row[0], false, side ? s->row[1] : NULL,
                             false, rts);
                }
                if (!e)
                    e = eddy__store_del(s->st[side], pk, pkl);
            }
            eddy_free(k.key);
            if (e)
                return e;
            maybe_flush(op, out);
        }
    }
    return EDDY_OK;
}

/* -------------------------------------------------------- window join */

static eddy_err_t window_record(eddy_op_t *op, int side, const eddy_rec_t *r,
                                const eddy_schema_t *schema) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    int64_t t = r->ts_ms;
    int64_t last = floor_div(t, c->advance) * c->advance;
    if (wclosed(c, sat_add(last, c->size), op->wm_ms)) {
        eddy__task_late(op->task, op->node, schema, r);
        return EDDY_OK;
    }
    const eddy_value_t *vals = carried(c, s, side, r->vals);
    for (int64_t ws = last; ws > t - c->size; ws -= c->advance) {
        if (wclosed(c, ws + c->size, op->wm_ms))
            break; /* older windows are closed too */
        bool created;
        eddy_err_t e = append(s, c, side, r, vals, ws, 0, &created);
        if (e)
            return e;
        if (created)
            win_add_key(win_get(s, ws), r->key, r->key_len);
    }
    return EDDY_OK;
}

static int cmp_wk(const void *a, const void *b) {
    const wk_t *x = a, *y = b;
    uint32_t n = x->klen < y->klen ? x->klen : y->klen;
    int d = memcmp(x->key, y->key, n);
    return d ? d : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The list of a side at (key, ws), copied (NULL, 0 when none). */
static eddy_err_t window_list(jstate_t *s, int side, const wk_t *k, int64_t ws, eddy_buf_t *b,
                              char *pk, size_t *pkl) {
    b->len = 0;
    *pkl = eddy__store_tkey(s->st[side], k->key, k->klen, ws, 0, pk, PK_MAX);
    if (!*pkl)
        return EDDY_ERR_INVAL;
    const char *v;
    size_t vl;
    bool found;
    eddy_err_t e = eddy__store_get(s->st[side], pk, *pkl, &v, &vl, &found);
    if (!e && found) {
        eddy_buf_put(b, v, vl);
        e = eddy__store_del(s->st[side], pk, *pkl);
    }
    return e;
}

static eddy_err_t emit_unmatched_list(const jconf_t *c, jstate_t *s, int side,
                                      const eddy_buf_t *b, eddy_batch_t *out, int64_t ts,
                                      eddy_value_t **wbounds) {
    const char *p = b->p, *end = b->p + b->len, *row;
    uint8_t flag;
    size_t rl;
    while (entry_next(&p, end, &flag, &row, &rl)) {
        eddy_err_t e = eddy__row_decode(row, rl, c->ncol[side], s->row[side]);
        if (e)
            return e;
        eddy_rec_t *o = emit(c, out, side ? NULL : s->row[0], false, side ? s->row[1] : NULL,
                             false, ts);
        memcpy(&o->vals[c->nout - 2], *wbounds, 2 * sizeof(eddy_value_t));
    }
    return EDDY_OK;
}

static eddy_err_t fire_windows(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    eddy_buf_t lb = {0};
    eddy_err_t e = EDDY_OK;
    while (!e && s->nwins && wclosed(c, s->wins[0].start + c->size, wm)) {
        jwin_t *w = &s->wins[0];
        int64_t ws = w->start, we = ws + c->size;
        eddy_value_t bounds[2] = {{.type = EDDY_TYPE_TIMESTAMP}, {.type = EDDY_TYPE_TIMESTAMP}};
        bounds[0].u.i = ws;
        bounds[1].u.i = we;
        eddy_value_t *bp = bounds;
        qsort(w->keys, w->n, sizeof(wk_t), cmp_wk);
        for (size_t i = 0; !e && i < w->n; i++) {
            if (i && !cmp_wk(&w->keys[i], &w->keys[i - 1]))
                continue;
            char pk[PK_MAX];
            size_t pkl;
            if ((e = window_list(s, 0, &w->keys[i], ws, &lb, pk, &pkl)) ||
                (e = window_list(s, 1, &w->keys[i], ws, &s->upd, pk, &pkl)))
                break;
            bool null_key = key_has_null(w->keys[i].key, w->keys[i].klen);
            if (lb.len && s->upd.len && !null_key) {
                const char *lp = lb.p, *lend = lb.p + lb.len, *lrow;
                uint8_t f;
                size_t llen;
                while (!e && entry_next(&lp, lend, &f, &lrow, &llen)) {
                    if ((e = eddy__row_decode(lrow, llen, c->ncol[0], s->row[0])))
                        break;
                    const char *rp = s->upd.p, *rend = s->upd.p + s->upd.len, *rrow;
                    size_t rlen;
                    while (!e && entry_next(&rp, rend, &f, &rrow, &rlen)) {
                        if ((e = eddy__row_decode(rrow, rlen, c->ncol[1], s->row[1])))
                            break;
                        eddy_rec_t *o = emit(c, out, s->row[0], false, s->row[1], false, we - 1);
                        memcpy(&o->vals[c->nout - 2], bounds, sizeof(bounds));
                    }
                }
            } else {
                if (!e && c->outer[0] && lb.len)
                    e = emit_unmatched_list(c, s, 0, &lb, out, we - 1, &bp);
                if (!e && c->outer[1] && s->upd.len)
                    e = emit_unmatched_list(c, s, 1, &s->upd, out, we - 1, &bp);
            }
            if (out->n >= 1024) {
                eddy__op_emit_flush(op, out);
                w = &s->wins[0]; /* flushing never adds windows, but be safe */
            }
        }
        win_drop_first(s);
    }
    eddy_buf_free(&lb);
    return e;
}

/* --------------------------------------------------------- table join */

static eddy_err_t table_record(eddy_op_t *op, int side, const eddy_rec_t *r, eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    if (key_has_null(r->key, r->key_len)) {
        eddy__task_dead_letter(op->task, "join: a table row with a null key cannot be stored",
                               op->node->name, r->partition, r->offset, NULL, 0);
        return EDDY_OK;
    }
    int o = 1 - side;
    const eddy_value_t *opv = c->op_idx[side] >= 0 ? &r->vals[c->op_idx[side]] : NULL;
    bool del = opv && opv->type == EDDY_TYPE_STRING && opv->len == 1 && opv->u.s[0] == 'd';
    const eddy_value_t *vals = carried(c, s, side, r->vals);
    const char *v;
    size_t vl;
    bool had, other;
    eddy_err_t e;
    /* the other side's row, decoded (its strings copied by emit) */
    if ((e = eddy__store_get(s->st[o], r->key, r->key_len, &v, &vl, &other)))
        return e;
    if (other && (e = eddy__row_decode(v, vl, c->ncol[o], s->row[o])))
        return e;
    const eddy_value_t *ov = other ? s->row[o] : NULL;
    if ((e = eddy__store_get(s->st[side], r->key, r->key_len, &v, &vl, &had)))
        return e;
    const char *op_u = "u", *op_d = "d";
    const char *opc = NULL;
    const eddy_value_t *mine = NULL;
    bool mine_own = true;
    if (del) {
        if (!had)
            return EDDY_OK;
        s->cur.len = 0;
        eddy_buf_put(&s->cur, v, vl);
        if ((e = eddy__row_decode(s->cur.p, s->cur.len, c->ncol[side], s->row[side])) ||
            (e = eddy__store_del(s->st[side], r->key, r->key_len)))
            return e;
        if (other && c->outer[o]) {
            opc = op_u; /* the other side's row stays, now unmatched */
        } else if (other || c->outer[side]) {
            opc = op_d;
            mine = s->row[side];
            mine_own = false;
        }
    } else {
        s->enc.len = 0;
        eddy__row_encode(&s->enc, c->ncol[side], vals);
        if ((e = eddy__store_put(s->st[side], r->key, r->key_len, s->enc.p, s->enc.len)))
            return e;
        if (other || c->outer[side]) {
            opc = op_u;
            mine = vals;
        }
    }
    if (!opc)
        return EDDY_OK;
    eddy_rec_t *rec = side ? emit(c, out, ov, false, mine, mine_own, r->ts_ms)
                           : emit(c, out, mine, mine_own, ov, false, r->ts_ms);
    eddy_value_t *ov_ = &rec->vals[c->nout - 1];
    ov_->type = EDDY_TYPE_STRING;
    ov_->u.s = opc;
    ov_->len = 1;
    rec->partition = r->partition;
    rec->offset = r->offset;
    return EDDY_OK;
}

/* ------------------------------------------------------------ driving */

static eddy_err_t jprocess_side(eddy_op_t *op, int side, const eddy_batch_t *in,
                                eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        if (r->ts_ms > s->max_ts)
            s->max_ts = r->ts_ms;
        eddy_err_t e;
        if (c->type == J_INTERVAL)
            e = interval_record(op, side, r, in->schema, out);
        else if (c->type == J_WINDOW)
            e = window_record(op, side, r, in->schema);
        else
            e = table_record(op, side, r, out);
        if (e)
            return e;
    }
    return EDDY_OK;
}

static eddy_err_t jprocess(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    return jprocess_side(op, 0, in, out);
}

static eddy_err_t jon_watermark(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const jconf_t *c = op->node->conf;
    jstate_t *s = op->state;
    if (c->type == J_TABLE)
        return EDDY_OK;
    eddy_err_t e = c->type == J_INTERVAL ? interval_expire(op, wm, out) : fire_windows(op, wm, out);
    if (e)
        return e;
    if (c->type == J_INTERVAL)
        for (int side = 0; side < 2; side++)
            eddy__jix_sweep(&s->ix[side], late_below(c, wm), false);
    /* retention runs on event time seen (a final +inf watermark is no
     * reason to drop what queries may still read) */
    int64_t now = wm < s->max_ts ? wm : s->max_ts;
    for (int side = 0; side < 2 && now != INT64_MIN; side++)
        if ((e = eddy__store_expire(s->st[side], now)))
            return e;
    return EDDY_OK;
}

const eddy_op_ops_t eddy__op_join = {
    .abi = EDDY_OP_ABI,
    .name = "join",
    .compile = jcompile,
    .free_conf = jfree,
    .init = jinit,
    .process = jprocess,
    .on_watermark = jon_watermark,
    .destroy = jdestroy,
    .exchange_key = left_key,
    .side_input = join_with,
    .side_exchange_key = right_key,
    .process_side = jprocess_side,
};
