/*
 * The row codec of store values: every type survives a round trip at its
 * extremes, wherever the value sits in the input (the decoder reads
 * varints without bounds checks when at least 10 bytes remain and with
 * them near the end), and truncated or malformed input is refused, never
 * read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "state/row.h"

#include <stdlib.h>
#include <string.h>

static eddy_value_t ival(eddy_type_t t, int64_t i) {
    eddy_value_t v;
    memset(&v, 0, sizeof(v));
    v.type = (uint8_t)t;
    v.u.i = i;
    return v;
}

static eddy_value_t sval(eddy_type_t t, const char *s, uint32_t len) {
    eddy_value_t v;
    memset(&v, 0, sizeof(v));
    v.type = (uint8_t)t;
    v.u.s = s;
    v.len = len;
    return v;
}

/* Same type and value (doubles bit for bit, strings byte for byte). */
static void assert_same(const eddy_value_t *a, const eddy_value_t *b) {
    assert_int_equal(a->type, b->type);
    if (a->type == EDDY_TYPE_STRING || a->type == EDDY_TYPE_BYTES) {
        assert_int_equal(a->len, b->len);
        assert_true(a->len == 0 || memcmp(a->u.s, b->u.s, a->len) == 0);
    } else if (a->type != EDDY_TYPE_NULL) {
        assert_memory_equal(&a->u, &b->u, sizeof(a->u));
    }
}

static void every_type_round_trips_at_its_extremes(void **state) {
    (void)state;
    static const char big[300] = "x";
    const int64_t ints[] = {0,  1,  -1, 63, 64, -64, -65, 127, 128, 8191, 8192, INT32_MAX,
                            INT32_MIN, (int64_t)1 << 62, INT64_MAX, INT64_MIN, 1437004800000LL};
    eddy_value_t v[64];
    int n = 0;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        v[n++] = ival(EDDY_TYPE_INT, ints[i]);
        v[n++] = ival(EDDY_TYPE_TIMESTAMP, ints[i]);
    }
    v[n++] = ival(EDDY_TYPE_NULL, 0);
    v[n++] = ival(EDDY_TYPE_BOOL, 1);
    v[n++] = ival(EDDY_TYPE_BOOL, 0);
    eddy_value_t d = ival(EDDY_TYPE_DOUBLE, 0);
    d.u.d = -0.0;
    v[n++] = d;
    d.u.d = 1e308;
    v[n++] = d;
    v[n++] = sval(EDDY_TYPE_STRING, "", 0);
    v[n++] = sval(EDDY_TYPE_STRING, "a\0b", 3);
    v[n++] = sval(EDDY_TYPE_BYTES, big, sizeof(big)); /* 2-byte length varint */
    eddy_buf_t b = {0};
    eddy__row_encode(&b, n, v);
    eddy_value_t out[64];
    assert_int_equal(eddy__row_decode(b.p, b.len, n, out), EDDY_OK);
    for (int i = 0; i < n; i++)
        assert_same(&v[i], &out[i]);
    /* a prefix decodes alone, and says how far it read */
    size_t used = 0;
    assert_int_equal(eddy__row_decode_prefix(b.p, b.len, 3, out, &used), EDDY_OK);
    assert_true(used > 0 && used < b.len);
    assert_int_equal(eddy__row_decode(b.p + used, b.len - used, n - 3, out), EDDY_OK);
    assert_same(&v[3], &out[0]);
    eddy_buf_free(&b);
}

static void integers_of_every_length_round_trip(void **state) {
    (void)state;
    /* every varint length, 1 to 10 bytes, at both edges of each length;
     * then the same row cut so that each value ends near the end */
    eddy_value_t v[4 * 64 + 4];
    int n = 0;
    for (int k = 0; k < 63; k++) {
        int64_t x = (int64_t)1 << k;
        v[n++] = ival(EDDY_TYPE_INT, x);
        v[n++] = ival(EDDY_TYPE_INT, x - 1);
        v[n++] = ival(EDDY_TYPE_INT, -x);
        v[n++] = ival(EDDY_TYPE_TIMESTAMP, -x - 1);
    }
    v[n++] = ival(EDDY_TYPE_INT, INT64_MAX);
    v[n++] = ival(EDDY_TYPE_INT, INT64_MIN);
    eddy_buf_t b = {0};
    eddy__row_encode(&b, n, v);
    eddy_value_t out[4 * 64 + 4];
    assert_int_equal(eddy__row_decode(b.p, b.len, n, out), EDDY_OK);
    for (int i = 0; i < n; i++)
        assert_same(&v[i], &out[i]);
    for (int i = 0; i < n; i++) {
        eddy_buf_t one = {0};
        eddy__row_encode(&one, 1, &v[i]);
        char *exact = malloc(one.len);
        memcpy(exact, one.p, one.len);
        assert_int_equal(eddy__row_decode(exact, one.len, 1, out), EDDY_OK);
        assert_same(&v[i], &out[0]);
        free(exact);
        eddy_buf_free(&one);
    }
    eddy_buf_free(&b);
}

static void values_near_the_end_of_the_input_decode_like_the_others(void **state) {
    (void)state;
    /* the last value of a row ends 0..20 bytes before the end of what is
     * read: the checked and unchecked varint paths must agree */
    for (int lead = 0; lead < 20; lead++) {
        eddy_value_t v[24];
        int n = 0;
        for (int i = 0; i < lead; i++)
            v[n++] = ival(EDDY_TYPE_BOOL, i & 1);
        v[n++] = ival(EDDY_TYPE_INT, INT64_MIN);
        v[n++] = ival(EDDY_TYPE_TIMESTAMP, 1437004800123LL);
        eddy_buf_t b = {0};
        eddy__row_encode(&b, n, v);
        /* exactly sized copy: ASan catches any read past the end */
        char *exact = malloc(b.len);
        memcpy(exact, b.p, b.len);
        eddy_value_t out[24];
        assert_int_equal(eddy__row_decode(exact, b.len, n, out), EDDY_OK);
        assert_int_equal(out[n - 2].u.i, INT64_MIN);
        assert_int_equal(out[n - 1].u.i, 1437004800123LL);
        /* every truncation is refused */
        for (size_t cut = 0; cut < b.len; cut++)
            assert_int_equal(eddy__row_decode(exact, cut, n, out), EDDY_ERR_DECODE);
        free(exact);
        eddy_buf_free(&b);
    }
}

static void skipping_values_lands_where_decoding_them_would(void **state) {
    (void)state;
    static const char text[200] = "some text";
    eddy_value_t v[8];
    v[0] = ival(EDDY_TYPE_INT, INT64_MIN);
    v[1] = ival(EDDY_TYPE_TIMESTAMP, 1437004800000LL);
    v[2] = ival(EDDY_TYPE_NULL, 0);
    v[3] = ival(EDDY_TYPE_BOOL, 1);
    v[4] = ival(EDDY_TYPE_DOUBLE, 0);
    v[4].u.d = 2.5;
    v[5] = sval(EDDY_TYPE_STRING, text, sizeof(text));
    v[6] = sval(EDDY_TYPE_BYTES, "", 0);
    v[7] = ival(EDDY_TYPE_INT, 3);
    eddy_buf_t b = {0};
    eddy__row_encode(&b, 8, v);
    char *exact = malloc(b.len);
    memcpy(exact, b.p, b.len);
    eddy_value_t out[8];
    for (int m = 0; m <= 8; m++) {
        size_t skipped = 0, decoded = 0;
        assert_int_equal(eddy__row_skip(exact, b.len, m, &skipped), EDDY_OK);
        assert_int_equal(eddy__row_decode_prefix(exact, b.len, m, out, &decoded), EDDY_OK);
        assert_int_equal(skipped, decoded);
        if (m < 8) {
            assert_int_equal(eddy__row_decode(exact + skipped, b.len - skipped, 8 - m, out),
                             EDDY_OK);
            assert_same(&v[m], &out[0]);
        }
        /* a cut anywhere inside the skipped values is refused */
        for (size_t cut = 0; cut < skipped; cut++) {
            size_t u;
            eddy_err_t e = eddy__row_skip(exact, cut, m, &u);
            assert_int_equal(e, EDDY_ERR_DECODE);
        }
    }
    free(exact);
    eddy_buf_free(&b);
}

static void malformed_input_is_refused(void **state) {
    (void)state;
    eddy_value_t out[2];
    /* unknown type byte */
    const char bad_type[] = {(char)0x7e, 0};
    assert_int_equal(eddy__row_decode(bad_type, sizeof(bad_type), 1, out), EDDY_ERR_DECODE);
    /* a varint that never ends (11 continuation bytes), with and without
     * room for the unchecked path */
    char endless[16];
    endless[0] = (char)EDDY_TYPE_INT;
    memset(endless + 1, 0xff, sizeof(endless) - 1);
    assert_int_equal(eddy__row_decode(endless, sizeof(endless), 1, out), EDDY_ERR_DECODE);
    assert_int_equal(eddy__row_decode(endless, 6, 1, out), EDDY_ERR_DECODE);
    size_t used;
    assert_int_equal(eddy__row_skip(endless, sizeof(endless), 1, &used), EDDY_ERR_DECODE);
    assert_int_equal(eddy__row_skip(bad_type, sizeof(bad_type), 1, &used), EDDY_ERR_DECODE);
    /* a string longer than what is left */
    const char longstr[] = {(char)EDDY_TYPE_STRING, 5, 'a', 'b'};
    assert_int_equal(eddy__row_decode(longstr, sizeof(longstr), 1, out), EDDY_ERR_DECODE);
    assert_int_equal(eddy__row_skip(longstr, sizeof(longstr), 1, &used), EDDY_ERR_DECODE);
    /* trailing bytes after the fields */
    const char trailing[] = {(char)EDDY_TYPE_NULL, 0};
    assert_int_equal(eddy__row_decode(trailing, sizeof(trailing), 1, out), EDDY_ERR_DECODE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips_at_its_extremes),
        cmocka_unit_test(integers_of_every_length_round_trip),
        cmocka_unit_test(values_near_the_end_of_the_input_decode_like_the_others),
        cmocka_unit_test(skipping_values_lands_where_decoding_them_would),
        cmocka_unit_test(malformed_input_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
