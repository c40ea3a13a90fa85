/*
 * Avro encoding of engine rows: the derived schema parses with Avro C and
 * says what the table in docs/kafka.md says, and Avro C's own reader gets
 * back every value the encoder wrote, extremes included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <avro.h>
#include <math.h>

#include "connectors/avro_write.h"

static eddy_schema_t *schema(int n, const char *const *names, const eddy_type_t *types,
                             const bool *nullable) {
    eddy_schema_t *s = eddy_schema_new(n, names, types);
    for (int i = 0; nullable && i < n; i++)
        s->fields[i].nullable = nullable[i];
    return s;
}

static void derived_schema_maps_types_nullability_and_names(void **state) {
    (void)state;
    const char *names[] = {"b", "i", "d", "s", "by", "ts", "n", "a.b", "9lives", ""};
    eddy_type_t types[] = {EDDY_TYPE_BOOL,  EDDY_TYPE_INT,       EDDY_TYPE_DOUBLE, EDDY_TYPE_STRING,
                           EDDY_TYPE_BYTES, EDDY_TYPE_TIMESTAMP, EDDY_TYPE_NULL,   EDDY_TYPE_INT,
                           EDDY_TYPE_INT,   EDDY_TYPE_INT};
    bool nullable[] = {false, false, false, true, false, true, true, false, false, false};
    eddy_schema_t *s = schema(10, names, types, nullable);
    char err[256];
    char *json = eddy__avro_schema_for_row(s, "q5-out", "eddy", err, sizeof(err));
    assert_non_null(json);
    assert_string_equal(
        json, "{\"type\":\"record\",\"name\":\"q5_out\",\"namespace\":\"eddy\",\"fields\":["
              "{\"name\":\"b\",\"type\":\"boolean\"},"
              "{\"name\":\"i\",\"type\":\"long\"},"
              "{\"name\":\"d\",\"type\":\"double\"},"
              "{\"name\":\"s\",\"type\":[\"null\",\"string\"],\"default\":null},"
              "{\"name\":\"by\",\"type\":\"bytes\"},"
              "{\"name\":\"ts\",\"type\":[\"null\",{\"type\":\"long\",\"logicalType\":"
              "\"timestamp-millis\"}],\"default\":null},"
              "{\"name\":\"n\",\"type\":\"null\"},"
              "{\"name\":\"a_b\",\"type\":\"long\"},"
              "{\"name\":\"_9lives\",\"type\":\"long\"},"
              "{\"name\":\"_\",\"type\":\"long\"}]}");
    avro_schema_t as;
    if (avro_schema_from_json_length(json, strlen(json), &as))
        fail_msg("Avro C refuses the derived schema: %s", avro_strerror());
    avro_schema_decref(as);
    /* equal to itself, not to a schema with a field renamed */
    assert_int_equal(eddy__avro_schema_same(json, json, err, sizeof(err)), EDDY_OK);
    char *other = eddy_strdup(json);
    memcpy(strstr(other, "\"a_b\""), "\"a_c\"", 5);
    assert_int_equal(eddy__avro_schema_same(json, other, err, sizeof(err)), EDDY_ERR_TYPE);
    eddy_free(other);
    eddy_free(json);
    eddy__schema_unref(s);
}

static void names_that_collide_after_cleaning_are_refused(void **state) {
    (void)state;
    const char *names[] = {"a.b", "a_b"};
    eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_INT};
    eddy_schema_t *s = schema(2, names, types, NULL);
    char err[256];
    assert_null(eddy__avro_schema_for_row(s, "r", NULL, err, sizeof(err)));
    assert_string_equal(err, "columns 'a.b' and 'a_b' both become the Avro field name 'a_b' "
                             "(rename one with a map step)");
    eddy__schema_unref(s);
}

static void avro_c_reads_back_every_value_written(void **state) {
    (void)state;
    const char *names[] = {"b", "i", "d", "s", "by", "ts", "ns"};
    eddy_type_t types[] = {EDDY_TYPE_BOOL,  EDDY_TYPE_INT,       EDDY_TYPE_DOUBLE, EDDY_TYPE_STRING,
                           EDDY_TYPE_BYTES, EDDY_TYPE_TIMESTAMP, EDDY_TYPE_STRING};
    bool nullable[] = {false, false, false, false, false, false, true};
    eddy_schema_t *s = schema(7, names, types, nullable);
    char err[256];
    char *json = eddy__avro_schema_for_row(s, "r", NULL, err, sizeof(err));
    avro_schema_t as;
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &as), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(as);
    const int64_t ints[] = {0, -1, 1, 63, -64, 64, INT64_MAX, INT64_MIN};
    const double dbls[] = {0.0, -0.0, 1.5, -1e300, INFINITY, 5e-324, NAN, 1};
    const char *strs[] = {"", "a", "héllo", "\xff\xfe", "x", "yy", "zzz", ""};
    eddy_buf_t b = {0};
    for (int k = 0; k < 8; k++) {
        eddy_value_t v[7] = {
            {.type = EDDY_TYPE_BOOL, .u.i = k & 1},
            {.type = EDDY_TYPE_INT, .u.i = ints[k]},
            {.type = EDDY_TYPE_DOUBLE, .u.d = dbls[k]},
            {.type = EDDY_TYPE_STRING, .u.s = strs[k], .len = (uint32_t)strlen(strs[k])},
            {.type = EDDY_TYPE_BYTES, .u.s = "\0\1", .len = (uint32_t)(k % 3)},
            {.type = EDDY_TYPE_TIMESTAMP, .u.i = -ints[k] / 2},
            {.type = k % 2 ? EDDY_TYPE_NULL : EDDY_TYPE_STRING, .u.s = "n", .len = 1},
        };
        b.len = 0;
        int bad = -1;
        assert_int_equal(eddy__avro_encode_row(&b, s, v, &bad), EDDY_OK);
        avro_value_t rec, f, br;
        assert_int_equal(avro_generic_value_new(iface, &rec), 0);
        avro_reader_t r = avro_reader_memory(b.p, (int64_t)b.len);
        assert_int_equal(avro_value_read(r, &rec), 0);
        avro_reader_free(r);
        size_t size = 0;
        avro_value_sizeof(&rec, &size);
        assert_int_equal(size, b.len); /* nothing left over */
        int bv;
        int64_t l;
        double d;
        const char *str;
        const void *bytes;
        size_t n;
        avro_value_get_by_index(&rec, 0, &f, NULL);
        avro_value_get_boolean(&f, &bv);
        assert_int_equal(bv, k & 1);
        avro_value_get_by_index(&rec, 1, &f, NULL);
        avro_value_get_long(&f, &l);
        assert_int_equal(l, ints[k]);
        avro_value_get_by_index(&rec, 2, &f, NULL);
        avro_value_get_double(&f, &d);
        assert_memory_equal(&d, &dbls[k], 8); /* bit for bit, -0.0 and NaN too */
        avro_value_get_by_index(&rec, 3, &f, NULL);
        avro_value_get_string(&f, &str, &n);
        assert_int_equal(n, strlen(strs[k]) + 1); /* Avro C counts the NUL */
        assert_memory_equal(str, strs[k], n - 1);
        avro_value_get_by_index(&rec, 4, &f, NULL);
        avro_value_get_bytes(&f, &bytes, &n);
        assert_int_equal(n, (size_t)(k % 3));
        avro_value_get_by_index(&rec, 5, &f, NULL);
        avro_value_get_long(&f, &l);
        assert_int_equal(l, -ints[k] / 2);
        avro_value_get_by_index(&rec, 6, &f, NULL);
        int disc;
        avro_value_get_discriminant(&f, &disc);
        assert_int_equal(disc, k % 2 ? 0 : 1);
        avro_value_get_current_branch(&f, &br);
        if (!(k % 2)) {
            avro_value_get_string(&br, &str, &n);
            assert_string_equal(str, "n");
        }
        avro_value_decref(&rec);
    }
    eddy_buf_free(&b);
    avro_value_iface_decref(iface);
    avro_schema_decref(as);
    eddy_free(json);
    eddy__schema_unref(s);
}

static void values_the_schema_cannot_hold_are_refused_without_output(void **state) {
    (void)state;
    const char *names[] = {"i", "s"};
    eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING};
    eddy_schema_t *s = schema(2, names, types, NULL);
    eddy_buf_t b = {0};
    eddy_buf_put(&b, "hdr", 3);
    eddy_value_t null_in_strict[2] = {{.type = EDDY_TYPE_INT, .u.i = 1}, {.type = EDDY_TYPE_NULL}};
    int bad = -1;
    assert_int_equal(eddy__avro_encode_row(&b, s, null_in_strict, &bad), EDDY_ERR_TYPE);
    assert_int_equal(bad, 1);
    assert_int_equal(b.len, 3);
    eddy_value_t wrong_type[2] = {{.type = EDDY_TYPE_DOUBLE, .u.d = 1},
                                  {.type = EDDY_TYPE_STRING, .u.s = "x", .len = 1}};
    assert_int_equal(eddy__avro_encode_row(&b, s, wrong_type, &bad), EDDY_ERR_TYPE);
    assert_int_equal(bad, 0);
    assert_int_equal(b.len, 3);
    eddy__avro_wire_header(&b, 0x01020304);
    assert_memory_equal(b.p + 3, "\0\1\2\3\4", 5);
    eddy_buf_free(&b);
    eddy__schema_unref(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(derived_schema_maps_types_nullability_and_names),
        cmocka_unit_test(names_that_collide_after_cleaning_are_refused),
        cmocka_unit_test(avro_c_reads_back_every_value_written),
        cmocka_unit_test(values_the_schema_cannot_hold_are_refused_without_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
