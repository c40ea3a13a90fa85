/*
 * Debezium change events -> changelog rows: JSON envelopes with and
 * without the {"schema", "payload"} wrapper, every op, tombstones,
 * deletes that carry only the key, and the reasons malformed events are
 * refused with; Avro envelopes written by Avro C's own writer, decoded
 * by the Avro plan and mapped from their flat after.* / before.* columns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "connectors/avro.h"
#include "connectors/debezium.h"
#include "tests/unit/connectors/dbz_avro.h"

/* ---------------------------------------------------------------- JSON */

typedef struct {
    eddy_dbz_t *d;
    eddy_arena_t arena;
    eddy_value_t vals[4]; /* __op, id, name, email */
    int64_t ts;
    char reason[640];
} fx_t;

static int fx_setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    static const char *const names[] = {"id", "name", "email"};
    static const eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING, EDDY_TYPE_STRING};
    eddy_schema_t *cols = eddy_schema_new(3, names, types);
    cols->fields[2].nullable = true; /* email: "string?" */
    char err[256];
    fx->d = eddy__dbz_new(cols, err, sizeof(err));
    eddy_schema_destroy(cols);
    if (!fx->d)
        fail_msg("%s", err);
    eddy_arena_init(&fx->arena, 4096);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state) {
    fx_t *fx = *state;
    eddy__dbz_destroy(fx->d);
    eddy_arena_free(&fx->arena);
    free(fx);
    return 0;
}

static eddy_dbz_res_t dec(fx_t *fx, const char *json) {
    fx->reason[0] = 0;
    return eddy__dbz_decode_json(fx->d, json, json ? strlen(json) : 0, &fx->arena, fx->vals,
                                 &fx->ts, fx->reason, sizeof(fx->reason));
}

static void expect_str(const eddy_value_t *v, const char *s) {
    assert_int_equal(v->type, EDDY_TYPE_STRING);
    assert_int_equal(v->len, strlen(s));
    assert_memory_equal(v->u.s, s, v->len);
}

static void expect_row(fx_t *fx, const char *op, int64_t id, const char *name,
                       const char *email) {
    expect_str(&fx->vals[0], op);
    assert_int_equal(fx->vals[1].type, EDDY_TYPE_INT);
    assert_int_equal(fx->vals[1].u.i, id);
    if (name)
        expect_str(&fx->vals[2], name);
    else
        assert_int_equal(fx->vals[2].type, EDDY_TYPE_NULL);
    if (email)
        expect_str(&fx->vals[3], email);
    else
        assert_int_equal(fx->vals[3].type, EDDY_TYPE_NULL);
}

/* The reason must hold needle. */
static void expect_invalid(fx_t *fx, const char *json, const char *needle) {
    eddy_dbz_res_t r = dec(fx, json);
    if (r != EDDY_DBZ_INVALID || !strstr(fx->reason, needle))
        fail_msg("%s: expected a reason with '%s', got %d: '%s'", json, needle, (int)r,
                 fx->reason);
}

static void stream_schema_is_op_then_the_columns_all_nullable(void **state) {
    fx_t *fx = *state;
    eddy_schema_t *s = eddy__dbz_schema(fx->d);
    assert_int_equal(s->nfields, 4);
    assert_string_equal(s->fields[0].name, "__op");
    assert_int_equal(s->fields[0].type, EDDY_TYPE_STRING);
    assert_false(s->fields[0].nullable);
    assert_string_equal(s->fields[1].name, "id");
    assert_string_equal(s->fields[3].name, "email");
    for (int i = 1; i < 4; i++)
        assert_true(s->fields[i].nullable);
    eddy__schema_unref(s);
}

static void create_without_wrapper_takes_after_and_ts_ms(void **state) {
    fx_t *fx = *state;
    assert_int_equal(dec(fx, "{\"before\": null, \"after\": {\"id\": 1, \"name\": \"Ann\", "
                             "\"email\": \"ann@x\"}, \"source\": {\"db\": \"shop\", \"ts_ms\": "
                             "1699999999000}, \"op\": \"c\", \"ts_ms\": 1700000000123}"),
                     EDDY_DBZ_ROW);
    expect_row(fx, "c", 1, "Ann", "ann@x");
    assert_int_equal(fx->ts, 1700000000123LL);
}

static void update_inside_schema_wrapper_takes_after(void **state) {
    fx_t *fx = *state;
    assert_int_equal(dec(fx, "{\"schema\": {\"type\": \"struct\", \"name\": \"Envelope\"}, "
                             "\"payload\": {\"before\": {\"id\": 1, \"name\": \"Ann\", \"email\": "
                             "null}, \"after\": {\"id\": 1, \"name\": \"Anna\", \"email\": null}, "
                             "\"op\": \"u\", \"ts_ms\": 5}}"),
                     EDDY_DBZ_ROW);
    expect_row(fx, "u", 1, "Anna", NULL);
    assert_int_equal(fx->ts, 5);
}

static void snapshot_read_is_a_row_and_ts_falls_back_to_source(void **state) {
    fx_t *fx = *state;
    assert_int_equal(dec(fx, "{\"after\": {\"id\": 7, \"name\": \"Bo\"}, \"op\": \"r\", "
                             "\"source\": {\"ts_ms\": 42}}"),
                     EDDY_DBZ_ROW);
    expect_row(fx, "r", 7, "Bo", NULL);
    assert_int_equal(fx->ts, 42);
    assert_int_equal(dec(fx, "{\"after\": {\"id\": 7, \"name\": \"Bo\"}, \"op\": \"r\"}"),
                     EDDY_DBZ_ROW);
    assert_int_equal(fx->ts, INT64_MIN); /* none: the source uses the Kafka timestamp */
}

static void delete_takes_the_row_from_before(void **state) {
    fx_t *fx = *state;
    assert_int_equal(dec(fx, "{\"before\": {\"id\": 3, \"name\": \"Cy\", \"email\": \"c@x\"}, "
                             "\"after\": null, \"op\": \"d\", \"ts_ms\": 9}"),
                     EDDY_DBZ_ROW);
    expect_row(fx, "d", 3, "Cy", "c@x");
}

static void delete_with_only_the_key_leaves_other_columns_null(void **state) {
    fx_t *fx = *state;
    /* Postgres' default replica identity: before holds the primary key */
    assert_int_equal(dec(fx, "{\"payload\": {\"before\": {\"id\": 3, \"name\": null}, \"after\": "
                             "null, \"op\": \"d\"}, \"schema\": {}}"),
                     EDDY_DBZ_ROW);
    expect_row(fx, "d", 3, NULL, NULL);
}

static void tombstones_are_told_apart_from_rows(void **state) {
    fx_t *fx = *state;
    assert_int_equal(dec(fx, NULL), EDDY_DBZ_TOMBSTONE);
    assert_int_equal(dec(fx, "{\"schema\": null, \"payload\": null}"), EDDY_DBZ_TOMBSTONE);
}

static void missing_after_or_before_is_refused(void **state) {
    fx_t *fx = *state;
    expect_invalid(fx, "{\"before\": null, \"op\": \"c\"}", "op 'c' without 'after' (the new row)");
    expect_invalid(fx, "{\"after\": null, \"op\": \"u\"}", "op 'u' without 'after'");
    expect_invalid(fx, "{\"before\": null, \"after\": null, \"op\": \"d\"}",
                   "op 'd' without 'before' (the deleted row, at least its key");
    expect_invalid(fx, "{\"after\": [1, 2], \"op\": \"c\"}",
                   "after: expected an object (the row), got an array");
}

static void wrong_types_name_the_side_and_the_field(void **state) {
    fx_t *fx = *state;
    expect_invalid(fx, "{\"after\": {\"id\": \"x\", \"name\": \"A\"}, \"op\": \"c\"}",
                   "after: field 'id': expected int, got string \"x\"");
    expect_invalid(fx, "{\"after\": {\"id\": 1}, \"op\": \"c\"}", "after: missing field 'name'");
    expect_invalid(fx, "{\"before\": {\"id\": 1.5}, \"op\": \"d\"}",
                   "before: field 'id': expected int, got number 1.5");
    expect_invalid(fx, "{\"after\": {\"id\": 1, \"name\": \"A\"}, \"op\": \"c\", \"ts_ms\": "
                       "\"soon\"}",
                   "ts_ms: expected an integer (ms since the epoch), got a string");
}

static void ops_that_are_not_row_changes_are_refused(void **state) {
    fx_t *fx = *state;
    expect_invalid(fx, "{\"op\": 7, \"after\": {}}", "op: expected a string (c, u, r or d), got a number");
    expect_invalid(fx, "{\"op\": \"x\", \"after\": {}}", "unknown op 'x' (expected c, u, r or d)");
    expect_invalid(fx, "{\"op\": \"t\"}", "op 't' (truncate) is not supported");
    expect_invalid(fx, "{\"op\": \"m\"}", "op 'm' (a logical decoding message) is not a row change");
}

static void input_that_is_not_an_event_is_refused(void **state) {
    fx_t *fx = *state;
    expect_invalid(fx, "{\"id\": 1, \"name\": \"A\"}", "no 'op': not a Debezium change event");
    expect_invalid(fx, "{\"schema\": {}, \"payload\": 5}",
                   "payload is a number without 'op': not a Debezium change event");
    expect_invalid(fx, "{\"op\": \"c\", ", "invalid JSON at column");
    expect_invalid(fx, "[1]", "top-level value is an array, expected an object");
    expect_invalid(fx, "{\"op\": \"c\", \"op\": \"d\", \"after\": {}}", "duplicate");
}

/* A decoder over these columns (flat: the flat row of an Avro envelope)
 * must be refused with a reason holding needle. */
static void expect_refused(bool flat, int n, const char *const *names, const eddy_type_t *types,
                           const char *needle) {
    eddy_schema_t *cols = eddy_schema_new(n, names, types);
    char err[256] = "";
    eddy_dbz_t *d = flat ? eddy__dbz_new_flat(cols, err, sizeof(err))
                         : eddy__dbz_new(cols, err, sizeof(err));
    eddy_schema_destroy(cols);
    if (d || !strstr(err, needle))
        fail_msg("expected a refusal naming '%s', got '%s'", needle, err);
}

static void a_column_named_op_is_refused(void **state) {
    (void)state;
    static const char *const names[] = {"id", "__op"};
    static const eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING};
    expect_refused(false, 2, names, types, "column '__op' is reserved");
}

/* ---------------------------------------------------------------- Avro */

typedef struct {
    eddy_avro_schema_t *sch;
    eddy_avro_plan_t *plan;
    eddy_dbz_t *d;
    eddy_arena_t arena;
    eddy_value_t *flat;
    eddy_value_t vals[3];
    int64_t ts;
    char reason[512];
} afx_t;

static void afx_open(afx_t *fx) {
    memset(fx, 0, sizeof(*fx));
    char err[512];
    fx->sch = eddy__avro_schema_parse(DBZ_ENVELOPE, strlen(DBZ_ENVELOPE), err, sizeof(err));
    if (!fx->sch)
        fail_msg("%s", err);
    fx->plan = eddy__avro_plan_new(fx->sch, fx->sch, err, sizeof(err));
    if (!fx->plan)
        fail_msg("%s", err);
    fx->d = eddy__dbz_new_flat(eddy__avro_plan_schema(fx->plan), err, sizeof(err));
    if (!fx->d)
        fail_msg("%s", err);
    fx->flat = calloc((size_t)eddy__dbz_nflat(fx->d), sizeof(eddy_value_t));
    eddy_arena_init(&fx->arena, 4096);
}

static void afx_close(afx_t *fx) {
    eddy__dbz_destroy(fx->d);
    eddy__avro_plan_destroy(fx->plan);
    eddy__avro_schema_destroy(fx->sch);
    eddy_arena_free(&fx->arena);
    free(fx->flat);
}

/* Encode one event and decode it through the plan and the mapping. */
static eddy_dbz_res_t avro_event(afx_t *fx, const char *op, int before_id, int after_id,
                                 const char *name, int64_t ts_ms) {
    char buf[512];
    size_t len = dbz_avro_event(op, before_id, after_id, name, ts_ms, 77, buf, sizeof(buf));
    fx->reason[0] = 0;
    if (eddy__avro_decode(fx->plan, buf, len, &fx->arena, fx->flat, EDDY_AVRO_COPY, fx->reason,
                          sizeof(fx->reason)))
        fail_msg("avro decode: %s", fx->reason);
    return eddy__dbz_decode_flat(fx->d, fx->flat, fx->vals, &fx->ts, fx->reason,
                                 sizeof(fx->reason));
}

static void avro_envelope_maps_after_and_before_columns(void **state) {
    (void)state;
    afx_t fx;
    afx_open(&fx);
    eddy_schema_t *s = eddy__dbz_schema(fx.d);
    assert_int_equal(s->nfields, 3);
    assert_string_equal(s->fields[0].name, "__op");
    assert_string_equal(s->fields[1].name, "id");
    assert_string_equal(s->fields[2].name, "name");
    eddy__schema_unref(s);

    assert_int_equal(avro_event(&fx, "c", -1, 5, "Eve", 1000), EDDY_DBZ_ROW);
    expect_str(&fx.vals[0], "c");
    assert_int_equal(fx.vals[1].u.i, 5);
    expect_str(&fx.vals[2], "Eve");
    assert_int_equal(fx.ts, 1000);

    assert_int_equal(avro_event(&fx, "d", 5, -1, "Eve", -1), EDDY_DBZ_ROW);
    expect_str(&fx.vals[0], "d");
    assert_int_equal(fx.vals[1].u.i, 5);
    assert_int_equal(fx.ts, 77); /* no ts_ms: source.ts_ms */

    assert_int_equal(avro_event(&fx, "u", 5, -1, "Eve", 1), EDDY_DBZ_INVALID);
    assert_non_null(strstr(fx.reason, "op 'u' without 'after'"));
    assert_int_equal(avro_event(&fx, "t", -1, -1, "Eve", 1), EDDY_DBZ_INVALID);
    assert_non_null(strstr(fx.reason, "truncate"));
    afx_close(&fx);
}

static void avro_schema_that_is_not_an_envelope_is_refused(void **state) {
    (void)state;
    static const char *const names[] = {"id", "name"};
    static const eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING};
    expect_refused(true, 2, names, types, "no string field 'op'");
    static const char *const n2[] = {"op", "before.id", "after.id"};
    static const eddy_type_t t2[] = {EDDY_TYPE_STRING, EDDY_TYPE_STRING, EDDY_TYPE_INT};
    expect_refused(true, 3, n2, t2, "before.id is string but after.id is int");
    static const char *const n3[] = {"op", "before.id"};
    static const eddy_type_t t3[] = {EDDY_TYPE_STRING, EDDY_TYPE_INT};
    expect_refused(true, 2, n3, t3, "no fields under 'after'");
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        T(stream_schema_is_op_then_the_columns_all_nullable),
        T(create_without_wrapper_takes_after_and_ts_ms),
        T(update_inside_schema_wrapper_takes_after),
        T(snapshot_read_is_a_row_and_ts_falls_back_to_source),
        T(delete_takes_the_row_from_before),
        T(delete_with_only_the_key_leaves_other_columns_null),
        T(tombstones_are_told_apart_from_rows),
        T(missing_after_or_before_is_refused),
        T(wrong_types_name_the_side_and_the_field),
        T(ops_that_are_not_row_changes_are_refused),
        T(input_that_is_not_an_event_is_refused),
        cmocka_unit_test(a_column_named_op_is_refused),
        cmocka_unit_test(avro_envelope_maps_after_and_before_columns),
        cmocka_unit_test(avro_schema_that_is_not_an_envelope_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
