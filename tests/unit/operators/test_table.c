/*
 * The table step: a changelog stream (rows with __op c/u/r/d, as format
 * debezium makes them) pushed through a host source is materialised into
 * a kv store; the store is read back through the public query API, also
 * after a restart, and the step's output (upserts, and deletes carrying
 * the row they removed) is checked line by line.
 */
#include "window_harness.h"

#include "tests/store_rows.h"

#define CDC_SCHEMA "{__op: \"string?\", id: \"int?\", name: \"string?\"}"
#define TABLE_STEP "      - table: {key: id, store: customers}\n"

#define NONAME NULL

static eddy_value_t str_or_null(const char *s) {
    eddy_value_t v = {.type = s ? EDDY_TYPE_STRING : EDDY_TYPE_NULL, .len = s ? strlen(s) : 0};
    v.u.s = s;
    return v;
}

/* Push one change of (__op, id, name[, email]) (the engine takes as many
 * values as the schema has); id < 0 is a null id, a NULL string a null. */
static void change_email(run_t *r, const char *op, int64_t id, const char *name,
                         const char *email, int64_t ts) {
    eddy_value_t v[4] = {str_or_null(op), {.type = id < 0 ? EDDY_TYPE_NULL : EDDY_TYPE_INT},
                         str_or_null(name), str_or_null(email)};
    v[1].u.i = id;
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", 0, v, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
}

static void change(run_t *r, const char *op, int64_t id, const char *name, int64_t ts) {
    change_email(r, op, id, name, NULL, ts);
}

static eddy_err_t copy_json(const eddy_record_t *rec, void *opaque) {
    eddy_record_to_json(rec, opaque, 256);
    return EDDY_OK;
}

/* The stored row of key id as JSON, or "" when the key is absent. */
static const char *get(run_t *r, int64_t id, char *buf) {
    eddy_value_t k = {.type = EDDY_TYPE_INT};
    k.u.i = id;
    buf[0] = 0;
    eddy_err_t e = eddy_engine_query_get(r->eng, "customers", &k, 1, copy_json, buf);
    if (e != EDDY_OK && e != EDDY_ERR_NOENT)
        fail_msg("query_get: %s", eddy_err2str(e));
    return buf;
}

static void upserts_replace_rows_and_deletes_remove_keys(void **state) {
    (void)state;
    run_t r;
    char buf[256];
    conf_t c = {.schema = CDC_SCHEMA, .steps = TABLE_STEP, .partitions = 3};
    run_open(&r, &c);
    change(&r, "r", 1, "Ann", 10);
    change(&r, "c", 2, "Bo", 11);
    change(&r, "c", 3, "Cy", 12);
    change(&r, "u", 1, "Anna", 13);
    change(&r, "d", 2, NONAME, 14); /* a delete that carries only the key */
    run_finish(&r);
    static const char *const want[] = {
        "{\"__op\":\"r\",\"id\":1,\"name\":\"Ann\"} @10",
        "{\"__op\":\"c\",\"id\":2,\"name\":\"Bo\"} @11",
        "{\"__op\":\"c\",\"id\":3,\"name\":\"Cy\"} @12",
        "{\"__op\":\"u\",\"id\":1,\"name\":\"Anna\"} @13",
        "{\"__op\":\"d\",\"id\":2,\"name\":\"Bo\"} @14", /* the row it removed */
    };
    expect_lines(&r.out, want, true, "table output");
    assert_string_equal(get(&r, 1, buf), "{\"id\":1,\"name\":\"Anna\"}");
    assert_string_equal(get(&r, 2, buf), "");
    assert_string_equal(get(&r, 3, buf), "{\"id\":3,\"name\":\"Cy\"}");
    assert_int_equal(store_rows(r.eng, "customers"), 2);
    eddy_store_info_t info;
    assert_int_equal(eddy_engine_store_info(r.eng, "customers", &info), EDDY_OK);
    assert_string_equal(info.kind, "kv");
    assert_int_equal(eddy_schema_nfields(info.key_schema), 1);
    assert_int_equal(eddy_schema_nfields(info.value_schema), 2); /* __op is not stored */
    run_close(&r);
}

static void deleting_an_absent_key_changes_and_emits_nothing(void **state) {
    (void)state;
    run_t r;
    char buf[256];
    conf_t c = {.schema = CDC_SCHEMA, .steps = TABLE_STEP};
    run_open(&r, &c);
    change(&r, "c", 1, "Ann", 1);
    change(&r, "d", 9, NONAME, 2);
    change(&r, "d", 1, "Ann", 3);
    change(&r, "d", 1, "Ann", 4); /* again: already gone */
    run_finish(&r);
    static const char *const want[] = {"{\"__op\":\"c\",\"id\":1,\"name\":\"Ann\"}",
                                       "{\"__op\":\"d\",\"id\":1,\"name\":\"Ann\"}"};
    expect_lines(&r.out, want, false, "table output");
    assert_string_equal(get(&r, 1, buf), "");
    assert_int_equal(store_rows(r.eng, "customers"), 0);
    run_close(&r);
}

static void a_null_key_is_dead_lettered_not_stored(void **state) {
    (void)state;
    run_t r;
    conf_t c = {.schema = CDC_SCHEMA, .steps = TABLE_STEP};
    run_open(&r, &c);
    change(&r, "c", -1, "Nobody", 1);
    change(&r, "c", 4, "Di", 2);
    run_finish(&r);
    assert_int_equal(r.st.dead_lettered, 1);
    assert_int_equal(sink_count(&r.out), 1);
    assert_int_equal(store_rows(r.eng, "customers"), 1);
    run_close(&r);
}

static void the_table_survives_a_restart(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_table_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char buf[256];
    conf_t c = {.schema = CDC_SCHEMA, .steps = TABLE_STEP, .dir = dir, .partitions = 2};
    run_t r;
    run_open(&r, &c);
    for (int i = 1; i <= 50; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        change(&r, "c", i, name, i);
    }
    change(&r, "d", 7, NONAME, 60);
    run_finish(&r);
    run_close(&r);

    /* restored before the engine starts, and updated after */
    run_open(&r, &c);
    assert_int_equal(store_rows(r.eng, "customers"), 49);
    assert_string_equal(get(&r, 8, buf), "{\"id\":8,\"name\":\"n8\"}");
    assert_string_equal(get(&r, 7, buf), "");
    change(&r, "u", 8, "eight", 70);
    change(&r, "d", 9, NONAME, 71);
    run_finish(&r);
    /* the delete emits the row restored from the store */
    static const char *const want[] = {"{\"__op\":\"u\",\"id\":8,\"name\":\"eight\"}",
                                       "{\"__op\":\"d\",\"id\":9,\"name\":\"n9\"}"};
    expect_lines(&r.out, want, false, "output after the restart");
    assert_string_equal(get(&r, 8, buf), "{\"id\":8,\"name\":\"eight\"}");
    assert_string_equal(get(&r, 9, buf), "");
    assert_int_equal(store_rows(r.eng, "customers"), 48);
    run_close(&r);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void a_column_appended_to_the_schema_reads_as_null_in_stored_rows(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_table_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char buf[256];
    conf_t c = {.schema = CDC_SCHEMA, .steps = TABLE_STEP, .dir = dir};
    run_t r;
    run_open(&r, &c);
    change(&r, "c", 1, "Ann", 1);
    change(&r, "c", 2, "Bo", 2);
    run_finish(&r);
    run_close(&r);

    /* ALTER TABLE customers ADD COLUMN email */
    c.schema = "{__op: \"string?\", id: \"int?\", name: \"string?\", email: \"string?\"}";
    run_open(&r, &c);
    assert_string_equal(get(&r, 1, buf), "{\"id\":1,\"name\":\"Ann\",\"email\":null}");
    change_email(&r, "u", 1, "Ann", "ann@x", 3);
    change_email(&r, "d", 2, NULL, NULL, 4);
    run_finish(&r);
    static const char *const want[] = {
        "{\"__op\":\"u\",\"id\":1,\"name\":\"Ann\",\"email\":\"ann@x\"}",
        "{\"__op\":\"d\",\"id\":2,\"name\":\"Bo\",\"email\":null}"};
    expect_lines(&r.out, want, false, "output after the schema change");
    assert_string_equal(get(&r, 1, buf), "{\"id\":1,\"name\":\"Ann\",\"email\":\"ann@x\"}");
    run_close(&r);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void without_op_every_row_is_an_upsert_on_a_compound_key(void **state) {
    (void)state;
    run_t r;
    conf_t c = {.steps = "      - table: {key: [k, id], store: latest}\n", .partitions = 2};
    run_open(&r, &c); /* the harness's {k, v, id}: no __op */
    push(&r, "a", 1, 1, 1);
    push(&r, "a", 2, 2, 2);
    push(&r, "a", 3, 1, 3);
    push(&r, "b", NUL, 1, 4);
    run_finish(&r);
    assert_int_equal(sink_count(&r.out), 4);
    eddy_value_t k[2] = {{.type = EDDY_TYPE_STRING, .len = 1}, {.type = EDDY_TYPE_INT}};
    k[0].u.s = "a";
    k[1].u.i = 1;
    char buf[256];
    assert_int_equal(eddy_engine_query_get(r.eng, "latest", k, 2, copy_json, buf), EDDY_OK);
    assert_string_equal(buf, "{\"k\":\"a\",\"v\":3,\"id\":1}");
    k[0].u.s = "b";
    assert_int_equal(eddy_engine_query_get(r.eng, "latest", k, 2, copy_json, buf), EDDY_OK);
    assert_string_equal(buf, "{\"k\":\"b\",\"v\":null,\"id\":1}");
    run_close(&r);
}

/* A topology with the given steps over the CDC schema, as "w.yaml". */
static void expect_table_error(const char *schema, const char *steps, const char *needle) {
    char y[1024];
    snprintf(y, sizeof(y),
             "application: t\n"
             "sources: [{name: in, type: host, schema: %s}]\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps:\n"
             "%s"
             "    to: out\n"
             "sinks: [{name: out, type: blackhole}]\n",
             schema, steps);
    expect_config_error(y, needle, steps);
}

static void config_errors_name_the_place(void **state) {
    (void)state;
    expect_table_error(CDC_SCHEMA, "      - table: {key: id, stor: x}\n",
                       "w.yaml:7:26: unknown key 'stor' in table (did you mean 'store'?");
    expect_table_error(CDC_SCHEMA, "      - table: {store: x}\n",
                       "w.yaml:7:16: table: missing required key 'key'");
    /* the implicit key_by compiles the key first */
    expect_table_error(CDC_SCHEMA, "      - table: {key: idd}\n",
                       "w.yaml:7:22: key_by: unknown field 'idd' (did you mean 'id'?)");
    expect_table_error(CDC_SCHEMA, "      - table: {key: [id, 'id + 1']}\n",
                       "w.yaml:7:27: table: key 'id + 1' is not a column of the input");
    expect_table_error(CDC_SCHEMA, "      - table: {key: __op}\n",
                       "table: key '__op' is not a column of the input (the key is made of "
                       "columns; the input has: id, name)");
    expect_table_error("{__op: int, id: int}", "      - table: {key: id}\n",
                       "w.yaml:7:16: table: input column '__op' is int; it must be a string");
    expect_table_error(CDC_SCHEMA,
                       "      - table: {key: id, store: s}\n"
                       "      - table: {key: id, store: s}\n",
                       "w.yaml:8:33: a store named 's' already exists");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(upserts_replace_rows_and_deletes_remove_keys),
        cmocka_unit_test(deleting_an_absent_key_changes_and_emits_nothing),
        cmocka_unit_test(a_null_key_is_dead_lettered_not_stored),
        cmocka_unit_test(the_table_survives_a_restart),
        cmocka_unit_test(a_column_appended_to_the_schema_reads_as_null_in_stored_rows),
        cmocka_unit_test(without_op_every_row_is_an_upsert_on_a_compound_key),
        cmocka_unit_test(config_errors_name_the_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
