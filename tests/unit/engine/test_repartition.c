/*
 * Repartition records (engine/repartition.c): what a receiver gets back is
 * what the sender wrote (event time, key, partition, offset, the fields it
 * keeps), and the sequence check drops a sender's replay, accepts a sender
 * whose state started over, and reports records that never arrived.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "repartition.h"

static eddy_schema_t *schema3(void) {
    static const char *const names[] = {"auction", "price", "extra"};
    static const eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_DOUBLE, EDDY_TYPE_STRING};
    return eddy_schema_new(3, names, types);
}

static void test_data_round_trip(void **st) {
    (void)st;
    eddy_schema_t *s = schema3();
    eddy_value_t v[3] = {{.u.i = -42, .type = EDDY_TYPE_INT},
                         {.u.d = 12.5, .type = EDDY_TYPE_DOUBLE},
                         {.u.s = "long extra", .len = 10, .type = EDDY_TYPE_STRING}};
    eddy_rec_t r = {.vals = v, .key = "k\0y", .key_len = 3, .partition = 7, .ts_ms = -5,
                    .offset = 1234567890123LL};
    bool keep[3] = {true, false, false};
    for (int pruned = 0; pruned < 2; pruned++) {
        eddy_buf_t b = {0};
        eddy__xr_encode_data(&b, 3, 0xdeadbeef, 99, &r, s, pruned ? keep : NULL);
        eddy_xr_msg_t m;
        assert_int_equal(eddy__xr_decode(b.p, b.len, &m), EDDY_OK);
        assert_false(m.is_wm);
        assert_int_equal(m.sender, 3);
        assert_int_equal(m.gen, 0xdeadbeef);
        assert_int_equal(m.seq, 99);
        assert_int_equal(m.ts_ms, -5);
        assert_int_equal(m.partition, 7);
        assert_int_equal(m.offset, 1234567890123LL);
        assert_int_equal(m.key_len, 3);
        assert_memory_equal(m.key, "k\0y", 3);
        assert_int_equal(m.whole, !pruned);
        eddy_value_t got[3];
        assert_int_equal(eddy__xr_decode_row(&m, s, keep, got), EDDY_OK);
        assert_int_equal(got[0].u.i, -42);
        if (pruned) {
            assert_int_equal(got[1].type, EDDY_TYPE_NULL);
            assert_int_equal(got[2].type, EDDY_TYPE_NULL);
        } else {
            assert_true(got[1].u.d == 12.5);
            assert_int_equal(got[2].len, 10);
            assert_memory_equal(got[2].u.s, "long extra", 10);
        }
        /* every truncation is refused, never read past the end */
        for (size_t n = 0; n < b.len; n++) {
            char *cut = eddy_malloc(n + 1);
            memcpy(cut, b.p, n);
            if (eddy__xr_decode(cut, n, &m) == EDDY_OK)
                assert_int_not_equal(eddy__xr_decode_row(&m, s, keep, got), EDDY_OK);
            eddy_free(cut);
        }
        eddy_buf_free(&b);
    }
    eddy__schema_unref(s);
}

static void test_watermark_round_trip(void **st) {
    (void)st;
    eddy_buf_t b = {0};
    eddy__xr_encode_wm(&b, 12, 5, INT64_MAX, EDDY_XR_IDLE | EDDY_XR_ENDED, 777);
    eddy_xr_msg_t m;
    assert_int_equal(eddy__xr_decode(b.p, b.len, &m), EDDY_OK);
    assert_true(m.is_wm);
    assert_int_equal(m.sender, 12);
    assert_int_equal(m.ts_ms, INT64_MAX);
    assert_int_equal(m.flags, EDDY_XR_IDLE | EDDY_XR_ENDED);
    assert_int_equal(m.seq, 777);
    assert_int_equal(eddy__xr_decode("X", 1, &m), EDDY_ERR_DECODE);
    assert_int_equal(eddy__xr_decode(NULL, 0, &m), EDDY_ERR_DECODE);
    eddy_buf_free(&b);
}

static void test_sequence_dedup(void **st) {
    (void)st;
    eddy_xr_seen_t s = {0};
    /* first contact mid-stream: taken where it is */
    assert_int_equal(eddy__xr_admit(&s, 7, 41), EDDY_XR_APPLY);
    assert_int_equal(eddy__xr_admit(&s, 7, 42), EDDY_XR_APPLY);
    assert_int_equal(eddy__xr_admit(&s, 7, 43), EDDY_XR_APPLY);
    /* the sender crashed after 43 reached us and replays from 40 */
    assert_int_equal(eddy__xr_admit(&s, 7, 41), EDDY_XR_DUP);
    assert_int_equal(eddy__xr_admit(&s, 7, 42), EDDY_XR_DUP);
    assert_int_equal(eddy__xr_admit(&s, 7, 43), EDDY_XR_DUP);
    assert_int_equal(s.applied, 43);
    assert_int_equal(eddy__xr_admit(&s, 7, 44), EDDY_XR_APPLY);
    /* a hole: 45 never came */
    assert_int_equal(eddy__xr_admit(&s, 7, 46), EDDY_XR_GAP);
    assert_int_equal(s.applied, 44);
    /* the sender's state started over (a new id): counted from its 1 */
    assert_int_equal(eddy__xr_admit(&s, 9, 1), EDDY_XR_APPLY);
    assert_int_equal(eddy__xr_admit(&s, 9, 1), EDDY_XR_DUP);
    assert_int_equal(eddy__xr_admit(&s, 9, 2), EDDY_XR_APPLY);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_round_trip),
        cmocka_unit_test(test_watermark_round_trip),
        cmocka_unit_test(test_sequence_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
