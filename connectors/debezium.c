/*
 * Debezium change events -> changelog rows. See debezium.h for the format.
 *
 * JSON events are parsed once with jansson (connectors/json.c: the same
 * prescan, duplicate-key and depth rules as every JSON input) and the row
 * is decoded from the `after` or `before` subtree with the JSON row
 * decoder, so type checks and reasons are those of format json, prefixed
 * with the side they came from ("after: field 'id': ...").
 *
 * Avro events are decoded by the Avro plan into the flat row of the
 * Envelope schema first (connectors/avro.c flattens after: ["null",
 * Value] into nullable "after.<column>" columns); here the columns of the
 * side the op names are picked from it, by indexes resolved once.
 *
 * Both envelopes share the rules below: which ops exist, which side holds
 * the row, and where the event time comes from.
 */
#include "connectors/debezium.h"

#include "connectors/json.h"

#include <jansson.h>

struct eddy_dbz_s {
    eddy_schema_t *stream;   /* __op + columns */
    int ncols;
    eddy_json_dec_t *jdec;   /* JSON: the columns */
    /* Avro: indexes into the flat row, -1 when absent */
    int nflat;
    int op_col, ts_col, src_ts_col;
    int *after_col, *before_col; /* [ncols] */
};

/* ------------------------------------------------------------- shared */

typedef enum { SIDE_AFTER, SIDE_BEFORE } side_t;

/* The op of an event: its static name for the __op column and the side
 * its row is read from; false with the reason for ops that are not row
 * changes we can apply. */
static bool op_side(const char *op, size_t len, const char **name, side_t *side, char *reason,
                    size_t reason_size) {
    static const char *const names[] = {"c", "u", "r", "d"};
    if (len == 1)
        for (int i = 0; i < 4; i++)
            if (op[0] == names[i][0]) {
                *name = names[i];
                *side = op[0] == 'd' ? SIDE_BEFORE : SIDE_AFTER;
                return true;
            }
    if (len == 1 && op[0] == 't')
        eddy__seterr(reason, reason_size,
                     "op 't' (truncate) is not supported: a table is emptied only by deletes "
                     "of its keys");
    else if (len == 1 && op[0] == 'm')
        eddy__seterr(reason, reason_size,
                     "op 'm' (a logical decoding message) is not a row change");
    else
        eddy__seterr(reason, reason_size, "unknown op '%.*s' (expected c, u, r or d)",
                     (int)(len > 20 ? 20 : len), op);
    return false;
}

static void missing_side(const char *op, side_t side, char *reason, size_t reason_size) {
    if (side == SIDE_BEFORE)
        eddy__seterr(reason, reason_size,
                     "op 'd' without 'before' (the deleted row, at least its key; Postgres "
                     "needs REPLICA IDENTITY DEFAULT or FULL)");
    else
        eddy__seterr(reason, reason_size, "op '%s' without 'after' (the new row)", op);
}

static eddy_dbz_t *dbz_alloc(int ncols) {
    eddy_dbz_t *d = eddy_calloc(1, sizeof(*d));
    d->ncols = ncols;
    d->stream = eddy__schema_new_empty();
    eddy__schema_add(d->stream, EDDY_DBZ_OP_COLUMN, EDDY_TYPE_STRING);
    d->op_col = d->ts_col = d->src_ts_col = -1;
    return d;
}

/* Append a column to the stream; false when it is named __op. */
static bool add_column(eddy_dbz_t *d, const eddy_field_t *f, char *errstr, size_t errstr_size) {
    int i = eddy__schema_add(d->stream, f->name, f->type);
    if (i < 0) {
        eddy__seterr(errstr, errstr_size,
                     "column '%s' is reserved: it holds the change's op (c, u, r or d)",
                     f->name);
        return false;
    }
    /* a delete may carry only the key */
    d->stream->fields[i].nullable = true;
    d->stream->fields[i].pii = f->pii;
    return true;
}

void eddy__dbz_destroy(eddy_dbz_t *d) {
    if (!d)
        return;
    eddy__schema_unref(d->stream);
    if (d->jdec)
        eddy__json_dec_destroy(d->jdec);
    eddy_free(d->after_col);
    eddy_free(d->before_col);
    eddy_free(d);
}

eddy_schema_t *eddy__dbz_schema(const eddy_dbz_t *d) { return eddy__schema_ref(d->stream); }

int eddy__dbz_nflat(const eddy_dbz_t *d) { return d->nflat; }

/* ------------------------------------------------------------------ JSON */

eddy_dbz_t *eddy__dbz_new(const eddy_schema_t *columns, char *errstr, size_t errstr_size) {
    eddy_dbz_t *d = dbz_alloc(columns->nfields);
    for (int i = 0; i < columns->nfields; i++)
        if (!add_column(d, &columns->fields[i], errstr, errstr_size)) {
            eddy__dbz_destroy(d);
            return NULL;
        }
    d->jdec = eddy__json_dec_new(columns);
    return d;
}

/* ts_ms of the event, else source.ts_ms; false with a reason when one is
 * there but not an integer. */
static bool json_ts(const json_t *env, int64_t *ts_ms, char *reason, size_t reason_size) {
    const json_t *src = json_object_get(env, "source");
    const json_t *cand[2] = {json_object_get(env, "ts_ms"),
                             json_is_object(src) ? json_object_get(src, "ts_ms") : NULL};
    static const char *const what[2] = {"ts_ms", "source.ts_ms"};
    *ts_ms = INT64_MIN;
    for (int i = 0; i < 2; i++) {
        if (!cand[i] || json_is_null(cand[i]))
            continue;
        if (!json_is_integer(cand[i])) {
            eddy__seterr(reason, reason_size,
                         "%s: expected an integer (ms since the epoch), got %s", what[i],
                         eddy__json_kind(cand[i]));
            return false;
        }
        *ts_ms = (int64_t)json_integer_value(cand[i]);
        return true;
    }
    return true;
}

/* The change event itself: the top level, or the payload of the schema
 * wrapper. NULL with *tombstone for a null payload, NULL with a reason
 * for anything else that is not an event. */
static const json_t *json_envelope(const json_t *root, bool *tombstone, char *reason,
                                   size_t reason_size) {
    *tombstone = false;
    if (json_object_get(root, "op"))
        return root;
    const json_t *payload = json_object_get(root, "payload");
    if (!payload || !json_object_get(root, "schema")) {
        eddy__seterr(reason, reason_size,
                     "no 'op': not a Debezium change event (expected {\"op\": \"c\"|\"u\"|\"r\"|"
                     "\"d\", \"before\": ..., \"after\": ...}, optionally as the payload of "
                     "{\"schema\": ..., \"payload\": ...})");
        return NULL;
    }
    if (json_is_null(payload)) {
        *tombstone = true;
        return NULL;
    }
    if (!json_is_object(payload) || !json_object_get(payload, "op")) {
        eddy__seterr(reason, reason_size,
                     "payload is %s without 'op': not a Debezium change event",
                     eddy__json_kind(payload));
        return NULL;
    }
    return payload;
}

eddy_dbz_res_t eddy__dbz_decode_json(const eddy_dbz_t *d, const char *msg, size_t len,
                                     eddy_arena_t *arena, eddy_value_t *vals, int64_t *ts_ms,
                                     char *reason, size_t reason_size) {
    if (!msg)
        return EDDY_DBZ_TOMBSTONE;
    json_t *root = NULL;
    if (eddy__json_parse(msg, len, &root, reason, reason_size))
        return EDDY_DBZ_INVALID;
    eddy_dbz_res_t res = EDDY_DBZ_INVALID;
    bool tombstone;
    const json_t *env = json_envelope(root, &tombstone, reason, reason_size);
    if (!env) {
        res = tombstone ? EDDY_DBZ_TOMBSTONE : EDDY_DBZ_INVALID;
        goto out;
    }
    const json_t *op = json_object_get(env, "op");
    if (!json_is_string(op)) {
        eddy__seterr(reason, reason_size, "op: expected a string (c, u, r or d), got %s",
                     eddy__json_kind(op));
        goto out;
    }
    const char *opname;
    side_t side;
    if (!op_side(json_string_value(op), json_string_length(op), &opname, &side, reason,
                 reason_size))
        goto out;
    const char *key = side == SIDE_AFTER ? "after" : "before";
    const json_t *row = json_object_get(env, key);
    if (!row || json_is_null(row)) {
        missing_side(opname, side, reason, reason_size);
        goto out;
    }
    if (!json_is_object(row)) {
        eddy__seterr(reason, reason_size, "%s: expected an object (the row), got %s", key,
                     eddy__json_kind(row));
        goto out;
    }
    char why[512];
    if (eddy__json_decode_object(d->jdec, row,
                                 side == SIDE_BEFORE ? EDDY_JSON_ALL_NULLABLE : 0, arena,
                                 vals + 1, why, sizeof(why))) {
        eddy__seterr(reason, reason_size, "%s: %s", key, why);
        goto out;
    }
    if (!json_ts(env, ts_ms, reason, reason_size))
        goto out;
    vals[0] = (eddy_value_t){.u.s = opname, .len = 1, .type = EDDY_TYPE_STRING};
    res = EDDY_DBZ_ROW;
out:
    json_decref(root);
    return res;
}

/* ------------------------------------------------------------------ Avro */

static int flat_index(const eddy_schema_t *flat, const char *prefix, const char *name) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s%s", prefix, name);
    return eddy_schema_field_index(flat, buf);
}

static bool is_time(const eddy_schema_t *flat, int i) {
    return i >= 0 &&
           (flat->fields[i].type == EDDY_TYPE_INT || flat->fields[i].type == EDDY_TYPE_TIMESTAMP);
}

eddy_dbz_t *eddy__dbz_new_flat(const eddy_schema_t *flat, char *errstr, size_t errstr_size) {
    int op = eddy_schema_field_index(flat, "op");
    if (op < 0 || flat->fields[op].type != EDDY_TYPE_STRING) {
        eddy__seterr(errstr, errstr_size,
                     "the reader schema has no string field 'op': not a Debezium Envelope");
        return NULL;
    }
    static const char after[] = "after.", before[] = "before.";
    int ncols = 0;
    for (int i = 0; i < flat->nfields; i++)
        ncols += !strncmp(flat->fields[i].name, after, sizeof(after) - 1);
    if (ncols == 0) {
        eddy__seterr(errstr, errstr_size,
                     "the reader schema has no fields under 'after' (expected after: [\"null\", "
                     "{\"type\": \"record\", ...}]): not a Debezium Envelope");
        return NULL;
    }
    eddy_dbz_t *d = dbz_alloc(ncols);
    d->nflat = flat->nfields;
    d->op_col = op;
    d->after_col = eddy_calloc((size_t)ncols, sizeof(int));
    d->before_col = eddy_calloc((size_t)ncols, sizeof(int));
    int c = 0;
    for (int i = 0; i < flat->nfields; i++) {
        const eddy_field_t *f = &flat->fields[i];
        if (strncmp(f->name, after, sizeof(after) - 1) != 0)
            continue;
        eddy_field_t col = *f;
        col.name = f->name + sizeof(after) - 1;
        if (!add_column(d, &col, errstr, errstr_size))
            goto fail;
        int b = flat_index(flat, before, col.name);
        if (b >= 0 && flat->fields[b].type != f->type) {
            eddy__seterr(errstr, errstr_size, "before.%s is %s but after.%s is %s", col.name,
                         eddy_type2str(flat->fields[b].type), col.name, eddy_type2str(f->type));
            goto fail;
        }
        d->after_col[c] = i;
        d->before_col[c] = b;
        c++;
    }
    d->ts_col = eddy_schema_field_index(flat, "ts_ms");
    d->src_ts_col = eddy_schema_field_index(flat, "source.ts_ms");
    if (!is_time(flat, d->ts_col))
        d->ts_col = -1;
    if (!is_time(flat, d->src_ts_col))
        d->src_ts_col = -1;
    return d;
fail:
    eddy__dbz_destroy(d);
    return NULL;
}

eddy_dbz_res_t eddy__dbz_decode_flat(const eddy_dbz_t *d, const eddy_value_t *flat,
                                     eddy_value_t *vals, int64_t *ts_ms, char *reason,
                                     size_t reason_size) {
    const eddy_value_t *op = &flat[d->op_col];
    if (op->type != EDDY_TYPE_STRING) {
        eddy__seterr(reason, reason_size, "op is null (expected c, u, r or d)");
        return EDDY_DBZ_INVALID;
    }
    const char *opname;
    side_t side;
    if (!op_side(op->u.s, op->len, &opname, &side, reason, reason_size))
        return EDDY_DBZ_INVALID;
    const int *cols = side == SIDE_AFTER ? d->after_col : d->before_col;
    bool any = false;
    for (int i = 0; i < d->ncols; i++) {
        if (cols[i] >= 0 && flat[cols[i]].type != EDDY_TYPE_NULL) {
            vals[1 + i] = flat[cols[i]];
            any = true;
        } else {
            vals[1 + i] = (eddy_value_t){.type = EDDY_TYPE_NULL};
        }
    }
    if (!any) {
        missing_side(opname, side, reason, reason_size);
        return EDDY_DBZ_INVALID;
    }
    *ts_ms = INT64_MIN;
    if (d->ts_col >= 0 && flat[d->ts_col].type != EDDY_TYPE_NULL)
        *ts_ms = flat[d->ts_col].u.i;
    else if (d->src_ts_col >= 0 && flat[d->src_ts_col].type != EDDY_TYPE_NULL)
        *ts_ms = flat[d->src_ts_col].u.i;
    vals[0] = (eddy_value_t){.u.s = opname, .len = 1, .type = EDDY_TYPE_STRING};
    return EDDY_DBZ_ROW;
}
