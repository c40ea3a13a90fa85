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

/* A bundle holds many records for one destination: each comes back with
 * its own seq (first, first + 1, ...), event time, key, partition, offset
 * and kept fields; a cut bundle is refused, never read past its end. */
static void test_bundle_round_trip(void **st) {
    (void)st;
    eddy_schema_t *s = schema3();
    bool keep[3] = {true, false, true};
    eddy_buf_t area = {0}, scratch = {0}, b = {0};
    const int n = 50;
    for (int i = 0; i < n; i++) {
        char extra[32];
        int len = snprintf(extra, sizeof(extra), "x%d", i * 1000);
        eddy_value_t v[3] = {{.u.i = i - 7, .type = EDDY_TYPE_INT},
                             {.u.d = i * 0.5, .type = EDDY_TYPE_DOUBLE},
                             {.u.s = extra, .len = (uint32_t)len, .type = EDDY_TYPE_STRING}};
        eddy_rec_t r = {.vals = v, .key = extra, .key_len = (uint32_t)len, .partition = i % 3,
                        .ts_ms = 1700000000000LL + i, .offset = 100 + i};
        /* every 7th record whole (it could go to a late output) */
        eddy__xr_encode_bundle_rec(&area, &scratch, &r, s, i % 7 ? keep : NULL);
    }
    eddy__xr_encode_bundle(&b, 2, 0xabc, 1000, (uint64_t)n, area.p, area.len);
    eddy_xr_msg_t m, rec;
    assert_int_equal(eddy__xr_decode(b.p, b.len, &m), EDDY_OK);
    assert_true(m.is_bundle);
    assert_false(m.is_wm);
    assert_int_equal(m.sender, 2);
    assert_int_equal(m.gen, 0xabc);
    for (int i = 0; i < n; i++) {
        assert_int_equal(eddy__xr_next(&m, &rec), EDDY_OK);
        assert_int_equal(rec.sender, 2);
        assert_int_equal(rec.gen, 0xabc);
        assert_int_equal(rec.seq, 1000 + i);
        assert_int_equal(rec.ts_ms, 1700000000000LL + i);
        assert_int_equal(rec.partition, i % 3);
        assert_int_equal(rec.offset, 100 + i);
        char extra[32];
        int len = snprintf(extra, sizeof(extra), "x%d", i * 1000);
        assert_int_equal(rec.key_len, len);
        assert_memory_equal(rec.key, extra, (size_t)len);
        assert_int_equal(rec.whole, i % 7 == 0);
        eddy_value_t got[3];
        assert_int_equal(eddy__xr_decode_row(&rec, s, keep, got), EDDY_OK);
        assert_int_equal(got[0].u.i, i - 7);
        if (i % 7)
            assert_int_equal(got[1].type, EDDY_TYPE_NULL);
        else
            assert_true(got[1].u.d == i * 0.5);
        assert_int_equal(got[2].len, len);
        assert_memory_equal(got[2].u.s, extra, (size_t)len);
    }
    assert_int_equal(eddy__xr_next(&m, &rec), EDDY_ERR_EOF);
    /* a cut bundle: the header, or some record, is refused */
    for (size_t cut = 0; cut < b.len; cut += 3) {
        char *p = eddy_malloc(cut + 1);
        memcpy(p, b.p, cut);
        eddy_err_t e = eddy__xr_decode(p, cut, &m);
        int got = 0;
        while (!e && !(e = eddy__xr_next(&m, &rec)))
            got++;
        assert_int_equal(e, EDDY_ERR_DECODE);
        assert_true(got < n);
        eddy_free(p);
    }
    eddy_buf_free(&area);
    eddy_buf_free(&scratch);
    eddy_buf_free(&b);
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
        cmocka_unit_test(test_bundle_round_trip),
        cmocka_unit_test(test_watermark_round_trip),
        cmocka_unit_test(test_sequence_dedup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
