/*
 * JSON codec: encoder output byte for byte, decoder values and the reasons
 * a user reads in the dead letters, and encode -> decode round trips.
 * jansson is the independent referee for "is this valid JSON" and timegm()
 * for ISO-8601 arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connectors/json.h"

/* ---------------------------------------------------------------- helpers */

typedef struct fdef {
    const char *name;
    eddy_type_t type;
    bool nullable;
} fdef_t;

static eddy_schema_t *mk_schema(const fdef_t *defs, int n) {
    eddy_schema_t *s = eddy__schema_new_empty();
    for (int i = 0; i < n; i++) {
        int idx = eddy__schema_add(s, defs[i].name, defs[i].type);
        assert_int_equal(idx, i);
        s->fields[i].nullable = defs[i].nullable;
    }
    return s;
}

static eddy_value_t v_null(void) {
    return (eddy_value_t){.type = EDDY_TYPE_NULL};
}
static eddy_value_t v_bool(bool b) {
    return (eddy_value_t){.u.i = b, .type = EDDY_TYPE_BOOL};
}
static eddy_value_t v_int(int64_t i) {
    return (eddy_value_t){.u.i = i, .type = EDDY_TYPE_INT};
}
static eddy_value_t v_ts(int64_t i) {
    return (eddy_value_t){.u.i = i, .type = EDDY_TYPE_TIMESTAMP};
}
static eddy_value_t v_dbl(double d) {
    return (eddy_value_t){.u.d = d, .type = EDDY_TYPE_DOUBLE};
}
static eddy_value_t v_strn(const char *s, size_t n) {
    return (eddy_value_t){.u.s = s, .len = (uint32_t)n, .type = EDDY_TYPE_STRING};
}
static eddy_value_t v_str(const char *s) {
    return v_strn(s, strlen(s));
}
static eddy_value_t v_bytes(const void *p, size_t n) {
    return (eddy_value_t){.u.s = p, .len = (uint32_t)n, .type = EDDY_TYPE_BYTES};
}

/* Encode s as a JSON string; returns a NUL-terminated heap copy. */
static char *enc_str(const char *s, size_t len) {
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_encode_str(&b, s, len);
    char *r = eddy_strndup(b.p, b.len);
    eddy_buf_free(&b);
    return r;
}

static char *enc_row(const eddy_schema_t *s, const eddy_value_t *vals) {
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_encode_row(&b, s, vals);
    char *r = eddy_strndup(b.p, b.len);
    eddy_buf_free(&b);
    return r;
}

static char *enc_double(double d) {
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_encode_double(&b, d);
    char *r = eddy_strndup(b.p, b.len);
    eddy_buf_free(&b);
    return r;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64*: deterministic across runs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Decode with a fresh decoder; returns the error, reason in reason[]. */
typedef struct dec_fix {
    eddy_schema_t *schema;
    eddy_json_dec_t *dec;
    eddy_arena_t arena;
    eddy_value_t vals[16];
    char reason[256];
} dec_fix_t;

static void fix_init(dec_fix_t *fx, const fdef_t *defs, int n) {
    memset(fx, 0, sizeof(*fx));
    fx->schema = mk_schema(defs, n);
    fx->dec = eddy__json_dec_new(fx->schema);
    eddy_arena_init(&fx->arena, 4096);
}
static void fix_free(dec_fix_t *fx) {
    eddy__json_dec_destroy(fx->dec);
    eddy__schema_unref(fx->schema);
    eddy_arena_free(&fx->arena);
}
static eddy_err_t fix_dec(dec_fix_t *fx, const char *line) {
    fx->reason[0] = 0;
    return eddy__json_decode(fx->dec, line, strlen(line), &fx->arena, fx->vals, fx->reason,
                             sizeof(fx->reason));
}
/* Decode a line that must fail and return the reason. */
static const char *fix_fail(dec_fix_t *fx, const char *line) {
    eddy_err_t err = fix_dec(fx, line);
    if (err != EDDY_ERR_DECODE)
        fail_msg("expected EDDY_ERR_DECODE for %s, got %d", line, err);
    assert_true(fx->reason[0] != 0);
    return fx->reason;
}
static void fix_ok(dec_fix_t *fx, const char *line) {
    eddy_err_t err = fix_dec(fx, line);
    if (err != EDDY_OK)
        fail_msg("decoding %s failed: %s", line, fx->reason);
}

static void assert_str_value(const eddy_value_t *v, const char *s, size_t len) {
    assert_int_equal(v->type, EDDY_TYPE_STRING);
    assert_int_equal(v->len, len);
    assert_memory_equal(v->u.s, s, len);
}

/* ---------------------------------------------------------------- encoder */

static void encode_row_writes_every_type_compactly_in_schema_order(void **state) {
    static const fdef_t defs[] = {
        {"n", EDDY_TYPE_INT, true},     {"b", EDDY_TYPE_BOOL, false},
        {"f", EDDY_TYPE_BOOL, false},   {"i", EDDY_TYPE_INT, false},
        {"d", EDDY_TYPE_DOUBLE, false}, {"s", EDDY_TYPE_STRING, false},
        {"y", EDDY_TYPE_BYTES, false},  {"t", EDDY_TYPE_TIMESTAMP, false},
    };
    eddy_schema_t *s = mk_schema(defs, 8);
    eddy_value_t vals[8] = {v_null(),
                            v_bool(true),
                            v_bool(false),
                            v_int(-42),
                            v_dbl(1.5),
                            v_str("hi"),
                            v_bytes("\x00\xff\x10", 3),
                            v_ts(1700000000123)};
    char *out = enc_row(s, vals);
    assert_string_equal(out, "{\"n\":null,\"b\":true,\"f\":false,\"i\":-42,\"d\":1.5,"
                             "\"s\":\"hi\",\"y\":\"AP8Q\",\"t\":1700000000123}");
    eddy_free(out);
    eddy__schema_unref(s);
}

static void encode_row_escapes_field_names_and_writes_empty_schema_as_braces(void **state) {
    static const fdef_t defs[] = {{"we\"ird\n", EDDY_TYPE_INT, false}};
    eddy_schema_t *s = mk_schema(defs, 1);
    eddy_value_t v = v_int(1);
    char *out = enc_row(s, &v);
    assert_string_equal(out, "{\"we\\\"ird\\n\":1}");
    eddy_free(out);
    eddy__schema_unref(s);

    eddy_schema_t *empty = eddy__schema_new_empty();
    out = enc_row(empty, NULL);
    assert_string_equal(out, "{}");
    eddy_free(out);
    eddy__schema_unref(empty);
}

static void encode_bytes_is_padded_base64_for_every_tail_length(void **state) {
    static const fdef_t defs[] = {{"y", EDDY_TYPE_BYTES, false}};
    eddy_schema_t *s = mk_schema(defs, 1);
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } cases[] = {
        {"", 0, "{\"y\":\"\"}"},
        {"f", 1, "{\"y\":\"Zg==\"}"},
        {"fo", 2, "{\"y\":\"Zm8=\"}"},
        {"foo", 3, "{\"y\":\"Zm9v\"}"},
        {"foob", 4, "{\"y\":\"Zm9vYg==\"}"},
        {"\xfb\xff", 2, "{\"y\":\"+/8=\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        eddy_value_t v = v_bytes(cases[i].in, cases[i].n);
        char *out = enc_row(s, &v);
        assert_string_equal(out, cases[i].out);
        eddy_free(out);
    }
    eddy__schema_unref(s);
}

static void encode_str_escapes_quotes_backslash_and_control_chars(void **state) {
    const char in[] = "a\"b\\c\n\t\r\b\f\x01\x1f\x7f/";
    char *out = enc_str(in, sizeof(in) - 1);
    assert_string_equal(out, "\"a\\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f/\"");
    eddy_free(out);

    char *nul = enc_str("x\0y", 3);
    assert_string_equal(nul, "\"x\\u0000y\"");
    eddy_free(nul);

    char *empty = enc_str(NULL, 0);
    assert_string_equal(empty, "\"\"");
    eddy_free(empty);
}

static void encode_str_passes_valid_utf8_through_unchanged(void **state) {
    /* 2-, 3- and 4-byte sequences, U+10FFFF, and U+2028 (valid JSON). */
    const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xf4\x8f\xbf\xbf\xe2\x80\xa8z";
    char *out = enc_str(in, sizeof(in) - 1);
    char want[64];
    snprintf(want, sizeof(want), "\"%s\"", in);
    assert_string_equal(out, want);
    eddy_free(out);
}

static void encode_str_replaces_each_maximal_invalid_utf8_subpart_with_fffd(void **state) {
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"\xff", "\"\\ufffd\""},
        {"a\xc3", "\"a\\ufffd\""},                                /* truncated at end */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                       /* overlong '/' */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},            /* UTF-8 surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"\xe2\x82x", "\"\\ufffdx\""},                            /* one subpart of 2 bytes */
        {"\xf0\x9f\x98!", "\"\\ufffd!\""},                        /* one subpart of 3 bytes */
        {"\x80\xc3\xa9", "\"\\ufffd\xc3\xa9\""},                  /* lone continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = enc_str(cases[i].in, strlen(cases[i].in));
        assert_string_equal(out, cases[i].out);
        eddy_free(out);
    }
}

static void encode_str_of_random_bytes_is_always_valid_json(void **state) {
    unsigned char raw[64];
    for (int iter = 0; iter < 5000; iter++) {
        size_t n = rnd() % sizeof(raw);
        for (size_t i = 0; i < n; i++)
            raw[i] = (unsigned char)rnd();
        eddy_buf_t b = {NULL, 0, 0};
        eddy__json_encode_str(&b, (const char *)raw, n);
        json_error_t jerr;
        json_t *j = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (!j)
            fail_msg("invalid JSON %.*s: %s", (int)b.len, b.p, jerr.text);
        assert_true(json_is_string(j));
        json_decref(j);
        eddy_buf_free(&b);
    }
}

static void encode_str_matches_token_by_token_expectation_at_every_alignment(void **state) {
    /* Random text from pieces whose encoding is known, so the 8-byte fast
     * path is checked against the expected bytes at every offset. */
    static const struct {
        const char *in;
        const char *out;
    } pieces[] = {
        {"abcdefghijklmnopqrstu", "abcdefghijklmnopqrstu"},
        {"x", "x"},
        {"Hello, World 12345 ", "Hello, World 12345 "},
        {"\"", "\\\""},
        {"\\", "\\\\"},
        {"\n", "\\n"},
        {"\x01", "\\u0001"},
        {"\x1f", "\\u001f"},
        {"\x7f", "\x7f"},
        {"\xc3\xa9", "\xc3\xa9"},
        {"\xe2\x82\xac", "\xe2\x82\xac"},
        {"\xf0\x9d\x84\x9e", "\xf0\x9d\x84\x9e"},
        {"\xff", "\\ufffd"},
        {"\xe2\x82z", "\\ufffdz"},
    };
    const size_t npieces = sizeof(pieces) / sizeof(pieces[0]);
    eddy_buf_t in = {NULL, 0, 0}, want = {NULL, 0, 0}, got = {NULL, 0, 0};
    for (int iter = 0; iter < 3000; iter++) {
        in.len = 0;
        want.len = 0;
        eddy_buf_putc(&want, '"');
        int n = (int)(rnd() % 40);
        for (int k = 0; k < n; k++) {
            size_t i = (size_t)(rnd() % npieces);
            eddy_buf_put(&in, pieces[i].in, strlen(pieces[i].in));
            eddy_buf_put(&want, pieces[i].out, strlen(pieces[i].out));
        }
        eddy_buf_putc(&want, '"');
        got.len = (size_t)(rnd() % 5); /* appends after existing content */
        eddy_buf_reserve(&got, 0);
        size_t pre = got.len;
        eddy__json_encode_str(&got, in.p ? in.p : "", in.len);
        assert_int_equal(got.len - pre, want.len);
        assert_memory_equal(got.p + pre, want.p, want.len);
        if (iter % 100 == 0)
            eddy_buf_free(&got); /* exercise growth from empty */
    }
    eddy_buf_free(&in);
    eddy_buf_free(&want);
    eddy_buf_free(&got);
}

static void encode_double_text_reads_back_to_the_same_bits(void **state) {
    double fixed[] = {0.1,
                      1.0 / 3,
                      1e300,
                      5e-324,
                      1.7976931348623157e308,
                      -0.0,
                      0.1 + 0.2,
                      123456789.123,
                      2.2250738585072014e-308,
                      9007199254740993.0,
                      1e21,
                      -1e-7,
                      100.0};
    int checked = 0;
    for (int iter = 0; iter < 20000 + (int)(sizeof(fixed) / sizeof(fixed[0])); iter++) {
        double d;
        if (iter < (int)(sizeof(fixed) / sizeof(fixed[0]))) {
            d = fixed[iter];
        } else {
            uint64_t bits = rnd();
            memcpy(&d, &bits, sizeof(d));
            if (!isfinite(d))
                continue;
        }
        char *txt = enc_double(d);
        char *end;
        double back = strtod(txt, &end);
        assert_int_equal(*end, 0);
        if (memcmp(&back, &d, sizeof(d)) != 0)
            fail_msg("%.17g encoded as %s reads back as %.17g", d, txt, back);
        /* A JSON parser sees a real, not an integer, with the same value. */
        json_t *j = json_loads(txt, JSON_DECODE_ANY, NULL);
        assert_non_null(j);
        assert_true(json_is_real(j));
        assert_true(json_real_value(j) == d);
        json_decref(j);
        eddy_free(txt);
        checked++;
    }
    assert_true(checked > 20000 * 9 / 10);
}

static void encode_double_uses_the_shortest_text(void **state) {
    static const struct {
        double d;
        const char *txt;
    } cases[] = {
        {0.1, "0.1"},      {1.0, "1.0"},    {-0.0, "-0.0"},
        {1e300, "1e+300"}, {2.5, "2.5"},    {0.1 + 0.2, "0.30000000000000004"},
        {100.0, "100.0"},  {1e-7, "1e-07"}, {123456789.123, "123456789.123"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *txt = enc_double(cases[i].d);
        assert_string_equal(txt, cases[i].txt);
        eddy_free(txt);
    }
}

static void encode_nan_and_infinities_as_null(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_DOUBLE, false},
                                  {"b", EDDY_TYPE_DOUBLE, false},
                                  {"c", EDDY_TYPE_DOUBLE, false}};
    eddy_schema_t *s = mk_schema(defs, 3);
    eddy_value_t vals[3] = {v_dbl(NAN), v_dbl(INFINITY), v_dbl(-INFINITY)};
    char *out = enc_row(s, vals);
    assert_string_equal(out, "{\"a\":null,\"b\":null,\"c\":null}");
    eddy_free(out);
    eddy__schema_unref(s);
}

static void encode_int_matches_printf_including_int64_min_and_max(void **state) {
    int64_t fixed[] = {INT64_MIN,
                       INT64_MAX,
                       INT64_MIN + 1,
                       0,
                       -1,
                       1,
                       9,
                       10,
                       11,
                       99,
                       100,
                       101,
                       999,
                       1000,
                       -9,
                       -10,
                       -99,
                       -100,
                       4294967296ll,
                       999999999999999999ll,
                       1000000000000000000ll};
    for (int iter = 0; iter < 20000; iter++) {
        int64_t v;
        if (iter < (int)(sizeof(fixed) / sizeof(fixed[0])))
            v = fixed[iter];
        else /* random magnitudes, not just huge numbers */
            v = (int64_t)(rnd() >> (rnd() % 64)) * ((rnd() & 1) ? -1 : 1);
        eddy_buf_t b = {NULL, 0, 0};
        eddy__json_encode_int(&b, v);
        char want[32];
        int n = snprintf(want, sizeof(want), "%lld", (long long)v);
        assert_int_equal(b.len, n);
        assert_memory_equal(b.p, want, (size_t)n);
        eddy_buf_free(&b);
    }
}

static void record_to_json_returns_full_length_and_truncates_like_snprintf(void **state) {
    static const fdef_t defs[] = {{"s", EDDY_TYPE_STRING, false}, {"i", EDDY_TYPE_INT, false}};
    eddy_schema_t *s = mk_schema(defs, 2);
    eddy_value_t vals[2] = {v_str("a\xc3\xa9z"), v_int(7)};
    eddy_record_t rec = {.schema = s, .values = vals};
    const char *full = "{\"s\":\"a\xc3\xa9z\",\"i\":7}";
    size_t full_len = strlen(full);

    assert_int_equal(eddy_record_to_json(&rec, NULL, 0), full_len);
    for (size_t size = 1; size <= full_len + 2; size++) {
        char buf[64];
        memset(buf, 'X', sizeof(buf));
        assert_int_equal(eddy_record_to_json(&rec, buf, size), full_len);
        size_t got = strlen(buf);
        assert_true(got < size);
        assert_memory_equal(buf, full, got);
        if (size > full_len)
            assert_string_equal(buf, full);
        else if (size - 1 == 8) /* cut would fall inside "é": back off */
            assert_int_equal(got, 7);
        else
            assert_int_equal(got, size - 1);
        assert_int_equal(buf[size], 'X'); /* nothing written past buf_size */
    }
    eddy__schema_unref(s);
}

/* ---------------------------------------------------------------- decoder */

static void decode_reads_every_type(void **state) {
    static const fdef_t defs[] = {
        {"b", EDDY_TYPE_BOOL, false},    {"i", EDDY_TYPE_INT, false},
        {"d", EDDY_TYPE_DOUBLE, false},  {"s", EDDY_TYPE_STRING, false},
        {"y", EDDY_TYPE_BYTES, false},   {"t", EDDY_TYPE_TIMESTAMP, false},
        {"d2", EDDY_TYPE_DOUBLE, false},
    };
    dec_fix_t fx;
    fix_init(&fx, defs, 7);
    fix_ok(&fx, "{\"b\":true,\"i\":-42,\"d\":2.5,\"s\":\"h\\u00e9\",\"y\":\"AP8Q\","
                "\"t\":1700000000123,\"d2\":7}\n");
    assert_int_equal(fx.vals[0].type, EDDY_TYPE_BOOL);
    assert_int_equal(fx.vals[0].u.i, 1);
    assert_int_equal(fx.vals[1].type, EDDY_TYPE_INT);
    assert_int_equal(fx.vals[1].u.i, -42);
    assert_int_equal(fx.vals[2].type, EDDY_TYPE_DOUBLE);
    assert_true(fx.vals[2].u.d == 2.5);
    assert_str_value(&fx.vals[3], "h\xc3\xa9", 3);
    assert_int_equal(fx.vals[4].type, EDDY_TYPE_BYTES);
    assert_int_equal(fx.vals[4].len, 3);
    assert_memory_equal(fx.vals[4].u.s, "\x00\xff\x10", 3);
    assert_int_equal(fx.vals[5].type, EDDY_TYPE_TIMESTAMP);
    assert_int_equal(fx.vals[5].u.i, 1700000000123);
    assert_int_equal(fx.vals[6].type, EDDY_TYPE_DOUBLE); /* integer into a double */
    assert_true(fx.vals[6].u.d == 7.0);
    fix_ok(&fx, "{\"b\":false,\"i\":0,\"d\":-1e-3,\"s\":\"\",\"y\":\"\",\"t\":0,\"d2\":0}");
    assert_int_equal(fx.vals[0].u.i, 0);
    assert_true(fx.vals[2].u.d == -1e-3);
    assert_int_equal(fx.vals[3].len, 0);
    assert_int_equal(fx.vals[4].len, 0);
    fix_free(&fx);
}

static void decode_copies_strings_into_the_arena(void **state) {
    static const fdef_t defs[] = {{"s", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    char line[] = "{\"s\":\"hello\"}";
    fix_ok(&fx, line);
    memset(line, '#', sizeof(line) - 1); /* the input buffer is reused */
    assert_str_value(&fx.vals[0], "hello", 5);
    assert_int_equal(fx.vals[0].u.s[5], 0); /* NUL-terminated copy */
    bool inside = false;
    for (eddy_arena_chunk_t *c = fx.arena.head; c; c = c->next)
        inside |= fx.vals[0].u.s >= c->data && fx.vals[0].u.s < c->data + c->used;
    assert_true(inside);
    fix_free(&fx);
}

static void decode_flattens_nested_objects_into_dotted_fields(void **state) {
    static const fdef_t defs[] = {
        {"id", EDDY_TYPE_INT, false},
        {"user.name", EDDY_TYPE_STRING, false},
        {"user.geo.lat", EDDY_TYPE_DOUBLE, false},
        {"user.geo.lon", EDDY_TYPE_DOUBLE, false},
        {"user.geo.alt", EDDY_TYPE_DOUBLE, true},
    };
    dec_fix_t fx;
    fix_init(&fx, defs, 5);
    fix_ok(&fx, "{\"user\":{\"geo\":{\"lon\":-2,\"lat\":1.5,\"x\":[]},\"name\":\"ann\"},"
                "\"id\":1}");
    assert_int_equal(fx.vals[0].u.i, 1);
    assert_str_value(&fx.vals[1], "ann", 3);
    assert_true(fx.vals[2].u.d == 1.5);
    assert_true(fx.vals[3].u.d == -2.0);
    assert_int_equal(fx.vals[4].type, EDDY_TYPE_NULL);

    /* A missing nested leaf is named by its full dotted name. */
    assert_string_equal(fix_fail(&fx, "{\"id\":1,\"user\":{\"name\":\"a\",\"geo\":{\"lat\":1}}}"),
                        "missing field 'user.geo.lon'");
    /* A whole missing parent too. */
    assert_string_equal(fix_fail(&fx, "{\"id\":1}"), "missing field 'user.name'");
    /* A parent that is not an object is a type error on the parent. */
    assert_string_equal(fix_fail(&fx, "{\"id\":1,\"user\":5}"),
                        "field 'user': expected an object (holding 'user.name'), got number 5");
    fix_free(&fx);
}

static void decode_reads_a_literal_dotted_key_when_the_nested_path_is_absent(void **state) {
    static const fdef_t defs[] = {{"user.name", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    fix_ok(&fx, "{\"user.name\":\"bob\"}");
    assert_str_value(&fx.vals[0], "bob", 3);
    fix_ok(&fx, "{\"user.name\":\"bob\",\"user\":{\"name\":\"ann\"}}"); /* nesting wins */
    assert_str_value(&fx.vals[0], "ann", 3);
    fix_free(&fx);
}

static void decode_a_field_that_is_also_a_parent_keeps_the_object_as_text(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_STRING, false}, {"a.b", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    fix_ok(&fx, "{\"a\":{\"b\":3}}");
    assert_str_value(&fx.vals[0], "{\"b\":3}", 7);
    assert_int_equal(fx.vals[1].u.i, 3);
    fix_free(&fx);
}

static void decode_missing_field_reason_names_the_field(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_INT, false}, {"price", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    assert_string_equal(fix_fail(&fx, "{\"a\":1}"), "missing field 'price'");
    assert_string_equal(fix_fail(&fx, "{\"a\":1,\"price\":null}"),
                        "missing field 'price' (null, and the field is not nullable)");
    assert_int_equal(fix_dec(&fx, "{}"), EDDY_ERR_DECODE);
    assert_string_equal(fx.reason, "missing field 'a'");
    fix_free(&fx);
}

static void decode_type_mismatch_reason_says_expected_and_got(void **state) {
    static const fdef_t defs[] = {
        {"price", EDDY_TYPE_INT, true}, {"ts", EDDY_TYPE_TIMESTAMP, true},
        {"flag", EDDY_TYPE_BOOL, true}, {"d", EDDY_TYPE_DOUBLE, true},
        {"s", EDDY_TYPE_STRING, true},  {"y", EDDY_TYPE_BYTES, true},
    };
    dec_fix_t fx;
    fix_init(&fx, defs, 6);
    assert_string_equal(fix_fail(&fx, "{\"price\":\"abc\"}"),
                        "field 'price': expected int, got string \"abc\"");
    assert_string_equal(fix_fail(&fx, "{\"ts\":true}"),
                        "field 'ts': expected timestamp (ms since epoch or ISO-8601), got true");
    assert_string_equal(fix_fail(&fx, "{\"flag\":1}"),
                        "field 'flag': expected boolean (true or false), got number 1");
    assert_string_equal(fix_fail(&fx, "{\"flag\":\"true\"}"),
                        "field 'flag': expected boolean (true or false), got string \"true\"");
    assert_string_equal(fix_fail(&fx, "{\"d\":\"1.5\"}"),
                        "field 'd': expected double, got string \"1.5\"");
    assert_string_equal(fix_fail(&fx, "{\"s\":12}"), "field 's': expected string, got number 12");
    assert_string_equal(fix_fail(&fx, "{\"s\":false}"), "field 's': expected string, got false");
    assert_string_equal(fix_fail(&fx, "{\"y\":[1]}"),
                        "field 'y': expected bytes (a base64 string), got an array");
    assert_string_equal(fix_fail(&fx, "{\"price\":{\"x\":1}}"),
                        "field 'price': expected int, got an object");
    /* Long strings are cut in the message, not in the middle of a character. */
    assert_string_equal(
        fix_fail(&fx, "{\"price\":\"0123456789012345678901234567890123456789XYZ\"}"),
        "field 'price': expected int, got string "
        "\"0123456789012345678901234567890123456789...\"");
    fix_free(&fx);
}

static void decode_nullable_field_absent_or_null_is_null(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_INT, true}, {"s", EDDY_TYPE_STRING, true}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    fix_ok(&fx, "{}");
    assert_int_equal(fx.vals[0].type, EDDY_TYPE_NULL);
    assert_int_equal(fx.vals[1].type, EDDY_TYPE_NULL);
    fix_ok(&fx, "{\"a\":null,\"s\":null}");
    assert_int_equal(fx.vals[0].type, EDDY_TYPE_NULL);
    assert_int_equal(fx.vals[1].type, EDDY_TYPE_NULL);
    fix_ok(&fx, "{\"a\":5,\"s\":\"x\"}");
    assert_int_equal(fx.vals[0].type, EDDY_TYPE_INT);
    assert_int_equal(fx.vals[0].u.i, 5);
    assert_str_value(&fx.vals[1], "x", 1);
    fix_free(&fx);
}

static void decode_ignores_unknown_fields(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_INT, false}, {"b", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    fix_ok(&fx, "{\"zzz\":{\"deep\":[1,{\"q\":null}]},\"a\":1,\"other\":\"x\",\"b\":\"y\"}");
    assert_int_equal(fx.vals[0].u.i, 1);
    assert_str_value(&fx.vals[1], "y", 1);
    fix_free(&fx);
}

static void decode_invalid_json_reason_has_the_column(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_INT, true}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    const char *r = fix_fail(&fx, "{\"a\": 1,, }");
    assert_true(strncmp(r, "invalid JSON at column 9: ", 26) == 0);
    r = fix_fail(&fx, "{\"a\":tru}");
    assert_true(strncmp(r, "invalid JSON at column 8: ", 26) == 0);
    r = fix_fail(&fx, "{\"a\":1} x");
    assert_true(strncmp(r, "invalid JSON at column 9: ", 26) == 0);
    r = fix_fail(&fx, "{\"a\"");
    assert_true(strncmp(r, "invalid JSON at column 4: ", 26) == 0);
    fix_free(&fx);
}

static void decode_integer_beyond_int64_says_64_bits(void **state) {
    static const fdef_t defs[] = {{"i", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    const char *r = fix_fail(&fx, "{\"i\":9223372036854775808}");
    assert_non_null(strstr(r, "invalid JSON at column"));
    assert_non_null(strstr(r, "64 bits"));
    fix_free(&fx);
}

static void decode_int_accepts_integral_reals_and_rejects_fractions_and_overflow(void **state) {
    static const fdef_t defs[] = {{"i", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    fix_ok(&fx, "{\"i\":3.0}");
    assert_int_equal(fx.vals[0].u.i, 3);
    fix_ok(&fx, "{\"i\":-1e3}");
    assert_int_equal(fx.vals[0].u.i, -1000);
    fix_ok(&fx, "{\"i\":-9223372036854775808}");
    assert_true(fx.vals[0].u.i == INT64_MIN);
    fix_ok(&fx, "{\"i\":9223372036854775807}");
    assert_true(fx.vals[0].u.i == INT64_MAX);
    fix_ok(&fx, "{\"i\":-9.223372036854775808e18}"); /* exactly -2^63 */
    assert_true(fx.vals[0].u.i == INT64_MIN);
    assert_string_equal(fix_fail(&fx, "{\"i\":2.5}"), "field 'i': expected int, got number 2.5");
    assert_string_equal(fix_fail(&fx, "{\"i\":9.223372036854775808e18}"),
                        "field 'i': number 9.223372036854776e+18 is out of range for int "
                        "(64-bit)");
    assert_string_equal(fix_fail(&fx, "{\"i\":1e300}"),
                        "field 'i': number 1e+300 is out of range for int (64-bit)");
    fix_free(&fx);
}

static void decode_invalid_utf8_is_reported_as_invalid_utf8_with_column(void **state) {
    static const fdef_t defs[] = {{"s", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    const char *r = fix_fail(&fx, "{\"s\":\"ab\xff\"}");
    assert_true(strncmp(r, "invalid UTF-8 at column 9 (byte 0xff)", 37) == 0);
    /* Columns count characters, as jansson does: "é" is one column. */
    r = fix_fail(&fx, "{\"s\":\"\xc3\xa9\xed\xa0\x80\"}");
    assert_true(strncmp(r, "invalid UTF-8 at column 8 (byte 0xed)", 37) == 0);
    /* An escaped lone surrogate is invalid too (jansson's check). */
    r = fix_fail(&fx, "{\"s\":\"\\ud800\"}");
    assert_true(strncmp(r, "invalid JSON at column", 22) == 0);
    fix_free(&fx);
}

static void decode_rejects_deep_nesting_cleanly(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_STRING, true}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    /* 1 object + 63 arrays = 64 levels: accepted, kept as JSON text. */
    char line[256];
    size_t n = 0;
    n += (size_t)snprintf(line, sizeof(line), "{\"a\":");
    for (int i = 0; i < 63; i++)
        line[n++] = '[';
    for (int i = 0; i < 63; i++)
        line[n++] = ']';
    line[n++] = '}';
    line[n] = 0;
    fix_ok(&fx, line);
    assert_int_equal(fx.vals[0].len, 126);

    /* 65 levels: rejected at the 65th opener (column 5 + 64). */
    n = 5;
    for (int i = 0; i < 64; i++)
        line[n++] = '[';
    for (int i = 0; i < 64; i++)
        line[n++] = ']';
    line[n++] = '}';
    line[n] = 0;
    assert_string_equal(fix_fail(&fx, line), "nesting deeper than 64 levels at column 69");

    /* A million levels: no stack overflow, same clean reason. */
    size_t big = 1000000;
    char *deep = eddy_malloc(big + 1);
    memset(deep, '[', big);
    deep[big] = 0;
    assert_string_equal(fix_fail(&fx, deep), "nesting deeper than 64 levels at column 65");
    eddy_free(deep);

    /* Brackets inside strings are text, not nesting. */
    char str[300];
    n = (size_t)snprintf(str, sizeof(str), "{\"a\":\"\\\"");
    for (int i = 0; i < 200; i++)
        str[n++] = '[';
    str[n++] = '"';
    str[n++] = '}';
    str[n] = 0;
    fix_ok(&fx, str);
    assert_int_equal(fx.vals[0].len, 201);
    fix_free(&fx);
}

static void decode_rejects_raw_nul_but_keeps_escaped_nul(void **state) {
    static const fdef_t defs[] = {{"s", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    const char raw[] = "{\"s\":\"a\0b\"}";
    eddy_err_t err = eddy__json_decode(fx.dec, raw, sizeof(raw) - 1, &fx.arena, fx.vals, fx.reason,
                                       sizeof(fx.reason));
    assert_int_equal(err, EDDY_ERR_DECODE);
    assert_true(strncmp(fx.reason, "NUL byte at column 8", 20) == 0);
    fix_ok(&fx, "{\"s\":\"a\\u0000b\"}");
    assert_str_value(&fx.vals[0], "a\0b", 3);
    fix_free(&fx);
}

static void decode_rejects_duplicate_keys(void **state) {
    static const fdef_t defs[] = {{"price", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    const char *r = fix_fail(&fx, "{\"price\":1,\"price\":1000}");
    assert_non_null(strstr(r, "duplicate object key"));
    assert_true(strncmp(r, "invalid JSON at column", 22) == 0);
    fix_free(&fx);
}

static void decode_top_level_non_object_is_rejected_with_its_kind(void **state) {
    static const fdef_t defs[] = {{"a", EDDY_TYPE_INT, true}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    assert_string_equal(fix_fail(&fx, "[1,2]"), "top-level value is an array, expected an object");
    assert_string_equal(fix_fail(&fx, "\"x\""), "top-level value is a string, expected an object");
    assert_string_equal(fix_fail(&fx, "42"), "top-level value is a number, expected an object");
    assert_string_equal(fix_fail(&fx, "null"), "top-level value is null, expected an object");
    assert_string_equal(fix_fail(&fx, ""), "empty line; expected a JSON object");
    assert_string_equal(fix_fail(&fx, "  \r\n"), "empty line; expected a JSON object");
    fix_free(&fx);
}

static void decode_string_field_keeps_arrays_and_objects_as_json_text(void **state) {
    static const fdef_t defs[] = {{"tags", EDDY_TYPE_STRING, false}, {"n", EDDY_TYPE_INT, true}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    fix_ok(&fx, "{\"tags\": [1, \"a\", {\"b\": null}]}");
    assert_str_value(&fx.vals[0], "[1,\"a\",{\"b\":null}]", 18);
    fix_ok(&fx, "{\"tags\":{\"x\":1,\"y\":[true]}}");
    assert_str_value(&fx.vals[0], "{\"x\":1,\"y\":[true]}", 18);
    assert_string_equal(fix_fail(&fx, "{\"tags\":\"t\",\"n\":[1]}"),
                        "field 'n': expected int, got an array");
    fix_free(&fx);
}

static void decode_bytes_from_base64_with_or_without_padding(void **state) {
    static const fdef_t defs[] = {{"y", EDDY_TYPE_BYTES, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    fix_ok(&fx, "{\"y\":\"Zm9vYg==\"}");
    assert_int_equal(fx.vals[0].len, 4);
    assert_memory_equal(fx.vals[0].u.s, "foob", 4);
    fix_ok(&fx, "{\"y\":\"Zm9vYg\"}");
    assert_int_equal(fx.vals[0].len, 4);
    assert_memory_equal(fx.vals[0].u.s, "foob", 4);
    fix_ok(&fx, "{\"y\":\"+/8=\"}");
    assert_int_equal(fx.vals[0].len, 2);
    assert_memory_equal(fx.vals[0].u.s, "\xfb\xff", 2);
    assert_string_equal(fix_fail(&fx, "{\"y\":\"AP*Q\"}"),
                        "field 'y': invalid base64: character '*' at offset 2");
    assert_string_equal(fix_fail(&fx, "{\"y\":\"A\"}"),
                        "field 'y': invalid base64: length 1 is not a valid encoded length");
    assert_string_equal(fix_fail(&fx, "{\"y\":\"Zg=\"}"),
                        "field 'y': invalid base64: length 3 is not a valid encoded length");
    fix_free(&fx);
}

static int64_t utc_ms(int y, int mo, int d, int h, int mi, int s) {
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000;
}

static void decode_timestamps_from_ms_or_iso8601_with_fraction_and_offset(void **state) {
    static const fdef_t defs[] = {{"ts", EDDY_TYPE_TIMESTAMP, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    int64_t ten = utc_ms(2026, 11, 21, 10, 0, 0);
    const struct {
        const char *line;
        int64_t want;
    } cases[] = {
        {"{\"ts\":\"1970-01-01T00:00:00Z\"}", 0},
        {"{\"ts\":\"2026-11-21T10:00:00Z\"}", ten},
        {"{\"ts\":\"2026-11-21T10:00:00.123Z\"}", ten + 123},
        {"{\"ts\":\"2026-11-21T10:00:00.5Z\"}", ten + 500},
        {"{\"ts\":\"2026-11-21T10:00:00.123999Z\"}", ten + 123},
        {"{\"ts\":\"2026-11-21T12:30:00+02:30\"}", ten},
        {"{\"ts\":\"2026-11-21T05:00:00-05:00\"}", ten},
        {"{\"ts\":\"2026-11-21T11:00:00.250+0100\"}", ten + 250},
        {"{\"ts\":\"2026-11-21T15:00:00+05\"}", ten},
        {"{\"ts\":\"2026-11-21 10:00:00\"}", ten}, /* no offset: UTC */
        {"{\"ts\":\"2026-11-21t10:00z\"}", ten},
        {"{\"ts\":\"2026-11-21\"}", utc_ms(2026, 11, 21, 0, 0, 0)},
        {"{\"ts\":\"2024-02-29T23:59:59Z\"}", utc_ms(2024, 2, 29, 23, 59, 59)},
        {"{\"ts\":\"1969-12-31T23:59:59.999Z\"}", -1},
        {"{\"ts\":\"2026-01-01T00:30:00+01:00\"}", utc_ms(2025, 12, 31, 23, 30, 0)},
        {"{\"ts\":1700000000000}", 1700000000000},
        {"{\"ts\":1.7e12}", 1700000000000},
        {"{\"ts\":-5}", -5},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fix_ok(&fx, cases[i].line);
        assert_int_equal(fx.vals[0].type, EDDY_TYPE_TIMESTAMP);
        if (fx.vals[0].u.i != cases[i].want)
            fail_msg("%s: got %lld, want %lld", cases[i].line, (long long)fx.vals[0].u.i,
                     (long long)cases[i].want);
    }
    fix_free(&fx);
}

static void decode_bad_iso8601_reason_says_what_is_wrong(void **state) {
    static const fdef_t defs[] = {{"ts", EDDY_TYPE_TIMESTAMP, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    static const struct {
        const char *line;
        const char *why;
    } cases[] = {
        {"{\"ts\":\"2026-13-01T00:00:00Z\"}", "month out of range"},
        {"{\"ts\":\"2023-02-29T00:00:00Z\"}", "day out of range for the month"},
        {"{\"ts\":\"2026-11-21T24:00:00Z\"}", "time of day out of range"},
        {"{\"ts\":\"2026-11-21T10:00:00Zjunk\"}", "unexpected text after the timestamp"},
        {"{\"ts\":\"2026-11-21T10:00:00+25:00\"}", "offset out of range"},
        {"{\"ts\":\"2026-11-21T10:00:00.Z\"}", "expected digits after the decimal point"},
        {"{\"ts\":\"yesterday\"}", "expected a date YYYY-MM-DD"},
        {"{\"ts\":\"2026-11-21X10:00\"}", "expected 'T' between date and time"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static const char prefix[] =
            "field 'ts': expected timestamp (ms since epoch or ISO-8601), got string \"";
        const char *r = fix_fail(&fx, cases[i].line);
        assert_true(strncmp(r, prefix, sizeof(prefix) - 1) == 0);
        const char *colon = strrchr(r, ':');
        assert_non_null(colon);
        assert_string_equal(colon + 2, cases[i].why);
    }
    assert_string_equal(fix_fail(&fx, "{\"ts\":1.5}"),
                        "field 'ts': expected timestamp (ms since epoch or ISO-8601), got "
                        "number 1.5");
    fix_free(&fx);
}

static void decoded_reasons_never_overflow_a_small_buffer(void **state) {
    static const fdef_t defs[] = {{"price", EDDY_TYPE_INT, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 1);
    char small[12];
    memset(small, 'X', sizeof(small));
    const char *line = "{\"price\":\"abc\"}";
    assert_int_equal(eddy__json_decode(fx.dec, line, strlen(line), &fx.arena, fx.vals, small, 8),
                     EDDY_ERR_DECODE);
    assert_string_equal(small, "field '");
    assert_int_equal(small[8], 'X');
    /* and a NULL reason buffer is allowed */
    assert_int_equal(eddy__json_decode(fx.dec, line, strlen(line), &fx.arena, fx.vals, NULL, 0),
                     EDDY_ERR_DECODE);
    fix_free(&fx);
}

static void decode_survives_random_corruption_of_valid_lines(void **state) {
    static const fdef_t defs[] = {
        {"a", EDDY_TYPE_INT, true},      {"s", EDDY_TYPE_STRING, true},
        {"n.x", EDDY_TYPE_DOUBLE, true}, {"t", EDDY_TYPE_TIMESTAMP, true},
        {"y", EDDY_TYPE_BYTES, true},
    };
    dec_fix_t fx;
    fix_init(&fx, defs, 5);
    const char *base = "{\"a\":12,\"s\":\"h\\u00e9llo\",\"n\":{\"x\":1.5},"
                       "\"t\":\"2026-11-21T10:00:00.5+01:00\",\"y\":\"Zm9v\"}";
    size_t len = strlen(base);
    char line[128];
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(line, base, len);
        int flips = 1 + (int)(rnd() % 4);
        for (int k = 0; k < flips; k++)
            line[rnd() % len] = (char)rnd();
        size_t n = len - (rnd() % 4 == 0 ? rnd() % len : 0);
        eddy_err_t err =
            eddy__json_decode(fx.dec, line, n, &fx.arena, fx.vals, fx.reason, sizeof(fx.reason));
        if (err == EDDY_OK) {
            ok++;
        } else {
            assert_int_equal(err, EDDY_ERR_DECODE);
            assert_true(strlen(fx.reason) > 10);
            bad++;
        }
        eddy_arena_reset(&fx.arena);
    }
    assert_true(bad > 0);
    fix_free(&fx);
}

/* ------------------------------------------------------------ round trip */

static void round_trip_encode_then_decode_gives_the_same_values(void **state) {
    static const fdef_t defs[] = {
        {"b", EDDY_TYPE_BOOL, true},     {"i", EDDY_TYPE_INT, true},
        {"d", EDDY_TYPE_DOUBLE, true},   {"s", EDDY_TYPE_STRING, true},
        {"y", EDDY_TYPE_BYTES, true},    {"t", EDDY_TYPE_TIMESTAMP, true},
        {"m.k", EDDY_TYPE_STRING, true},
    };
    dec_fix_t fx;
    fix_init(&fx, defs, 7);
    unsigned char all_bytes[256];
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (unsigned char)i;
    const char nasty[] = "q\"uo\\te\n\t\x01\0nul \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e </script>";
    for (int iter = 0; iter < 2000; iter++) {
        eddy_value_t in[7];
        double d;
        uint64_t bits = rnd();
        memcpy(&d, &bits, sizeof(d));
        if (!isfinite(d))
            d = -0.0;
        in[0] = v_bool(iter & 1);
        in[1] = v_int(iter == 0 ? INT64_MIN : iter == 1 ? INT64_MAX : (int64_t)rnd());
        in[2] = v_dbl(d);
        in[3] = v_strn(nasty, iter % 3 ? sizeof(nasty) - 1 : 0);
        in[4] = v_bytes(all_bytes + iter % 7, 256 - (size_t)(iter % 7) * 3);
        in[5] = v_ts((int64_t)(rnd() >> 20) - (1ll << 43));
        in[6] = v_str("dotted names stay flat on output");
        for (int k = 0; k < 7; k++) /* some NULLs of every type */
            if ((iter + k) % 11 == 0)
                in[k] = v_null();
        char *line = enc_row(fx.schema, in);
        fix_ok(&fx, line);
        for (int k = 0; k < 7; k++) {
            const eddy_value_t *a = &in[k], *b = &fx.vals[k];
            assert_int_equal(b->type, a->type);
            switch ((eddy_type_t)a->type) {
            case EDDY_TYPE_DOUBLE:
                assert_memory_equal(&a->u.d, &b->u.d, sizeof(double));
                break;
            case EDDY_TYPE_STRING:
            case EDDY_TYPE_BYTES:
                assert_int_equal(a->len, b->len);
                assert_memory_equal(a->u.s, b->u.s, a->len);
                break;
            case EDDY_TYPE_NULL:
                break;
            default:
                assert_true(a->u.i == b->u.i);
                break;
            }
        }
        eddy_free(line);
        eddy_arena_reset(&fx.arena);
    }
    fix_free(&fx);
}

/* ------------------------------------------------------------ dead letter */

/* A subtree of a larger document decodes as a line would; with
 * EDDY_JSON_ALL_NULLABLE missing and null fields are nulls whatever the
 * schema says, but a wrong type is still refused. */
static void decode_object_reads_a_subtree_and_may_take_every_field_as_nullable(void **state) {
    (void)state;
    static const fdef_t defs[] = {{"id", EDDY_TYPE_INT, false}, {"name", EDDY_TYPE_STRING, false}};
    dec_fix_t fx;
    fix_init(&fx, defs, 2);
    json_t *root = NULL;
    const char *doc = "{\"row\": {\"id\": 4}, \"bad\": {\"id\": \"x\"}}";
    assert_int_equal(eddy__json_parse(doc, strlen(doc), &root, fx.reason, sizeof(fx.reason)),
                     EDDY_OK);
    const json_t *row = json_object_get(root, "row");
    assert_int_equal(eddy__json_decode_object(fx.dec, row, 0, &fx.arena, fx.vals, fx.reason,
                                              sizeof(fx.reason)),
                     EDDY_ERR_DECODE);
    assert_string_equal(fx.reason, "missing field 'name'");
    assert_int_equal(eddy__json_decode_object(fx.dec, row, EDDY_JSON_ALL_NULLABLE, &fx.arena,
                                              fx.vals, fx.reason, sizeof(fx.reason)),
                     EDDY_OK);
    assert_int_equal(fx.vals[0].u.i, 4);
    assert_int_equal(fx.vals[1].type, EDDY_TYPE_NULL);
    assert_int_equal(eddy__json_decode_object(fx.dec, json_object_get(root, "bad"),
                                              EDDY_JSON_ALL_NULLABLE, &fx.arena, fx.vals,
                                              fx.reason, sizeof(fx.reason)),
                     EDDY_ERR_DECODE);
    assert_string_equal(fx.reason, "field 'id': expected int, got string \"x\"");
    json_decref(root);
    assert_int_equal(eddy__json_parse("[1]", 3, &root, fx.reason, sizeof(fx.reason)),
                     EDDY_ERR_DECODE);
    assert_string_equal(fx.reason, "top-level value is an array, expected an object");
    fix_free(&fx);
}

static void dead_letter_line_is_valid_json_with_every_field(void **state) {
    const char raw[] = "{\"price\": \"abc\"\n\x01\xff}";
    const char *reason = "field 'price': expected int, got string \"abc\"";
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_dead_letter(&b, reason, "file:/tmp/bids.jsonl", 3, 12345678901ll, raw,
                           sizeof(raw) - 1, 1024);
    json_error_t jerr;
    json_t *j = json_loadb(b.p, b.len, 0, &jerr);
    if (!j)
        fail_msg("dead letter is not JSON: %s (%.*s)", jerr.text, (int)b.len, b.p);
    assert_string_equal(json_string_value(json_object_get(j, "reason")), reason);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "file:/tmp/bids.jsonl");
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 3);
    assert_true(json_integer_value(json_object_get(j, "offset")) == 12345678901ll);
    assert_string_equal(json_string_value(json_object_get(j, "raw")),
                        "{\"price\": \"abc\"\n\x01\xef\xbf\xbd}"); /* 0xff -> U+FFFD */
    assert_true(json_is_false(json_object_get(j, "raw_truncated")));
    assert_int_equal(json_object_size(j), 6);
    assert_null(memchr(b.p, '\n', b.len)); /* one line */
    json_decref(j);
    eddy_buf_free(&b);
}

static void dead_letter_truncates_raw_without_splitting_a_character(void **state) {
    const char raw[] = "abc\xc3\xa9xyz";
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_dead_letter(&b, NULL, NULL, -1, -1, raw, sizeof(raw) - 1, 4);
    json_t *j = json_loadb(b.p, b.len, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "reason")));
    assert_true(json_is_null(json_object_get(j, "source")));
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), -1);
    assert_string_equal(json_string_value(json_object_get(j, "raw")), "abc");
    assert_true(json_is_true(json_object_get(j, "raw_truncated")));
    json_decref(j);

    b.len = 0;
    eddy__json_dead_letter(&b, "r", "s", 0, 0, raw, sizeof(raw) - 1, 5);
    j = json_loadb(b.p, b.len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "raw")), "abc\xc3\xa9");
    json_decref(j);
    eddy_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_row_writes_every_type_compactly_in_schema_order),
        cmocka_unit_test(encode_row_escapes_field_names_and_writes_empty_schema_as_braces),
        cmocka_unit_test(encode_bytes_is_padded_base64_for_every_tail_length),
        cmocka_unit_test(encode_str_escapes_quotes_backslash_and_control_chars),
        cmocka_unit_test(encode_str_passes_valid_utf8_through_unchanged),
        cmocka_unit_test(encode_str_replaces_each_maximal_invalid_utf8_subpart_with_fffd),
        cmocka_unit_test(encode_str_of_random_bytes_is_always_valid_json),
        cmocka_unit_test(encode_str_matches_token_by_token_expectation_at_every_alignment),
        cmocka_unit_test(encode_double_text_reads_back_to_the_same_bits),
        cmocka_unit_test(encode_double_uses_the_shortest_text),
        cmocka_unit_test(encode_nan_and_infinities_as_null),
        cmocka_unit_test(encode_int_matches_printf_including_int64_min_and_max),
        cmocka_unit_test(record_to_json_returns_full_length_and_truncates_like_snprintf),
        cmocka_unit_test(decode_reads_every_type),
        cmocka_unit_test(decode_copies_strings_into_the_arena),
        cmocka_unit_test(decode_flattens_nested_objects_into_dotted_fields),
        cmocka_unit_test(decode_reads_a_literal_dotted_key_when_the_nested_path_is_absent),
        cmocka_unit_test(decode_a_field_that_is_also_a_parent_keeps_the_object_as_text),
        cmocka_unit_test(decode_missing_field_reason_names_the_field),
        cmocka_unit_test(decode_type_mismatch_reason_says_expected_and_got),
        cmocka_unit_test(decode_nullable_field_absent_or_null_is_null),
        cmocka_unit_test(decode_ignores_unknown_fields),
        cmocka_unit_test(decode_invalid_json_reason_has_the_column),
        cmocka_unit_test(decode_integer_beyond_int64_says_64_bits),
        cmocka_unit_test(decode_int_accepts_integral_reals_and_rejects_fractions_and_overflow),
        cmocka_unit_test(decode_invalid_utf8_is_reported_as_invalid_utf8_with_column),
        cmocka_unit_test(decode_rejects_deep_nesting_cleanly),
        cmocka_unit_test(decode_rejects_raw_nul_but_keeps_escaped_nul),
        cmocka_unit_test(decode_rejects_duplicate_keys),
        cmocka_unit_test(decode_top_level_non_object_is_rejected_with_its_kind),
        cmocka_unit_test(decode_string_field_keeps_arrays_and_objects_as_json_text),
        cmocka_unit_test(decode_bytes_from_base64_with_or_without_padding),
        cmocka_unit_test(decode_timestamps_from_ms_or_iso8601_with_fraction_and_offset),
        cmocka_unit_test(decode_bad_iso8601_reason_says_what_is_wrong),
        cmocka_unit_test(decoded_reasons_never_overflow_a_small_buffer),
        cmocka_unit_test(decode_survives_random_corruption_of_valid_lines),
        cmocka_unit_test(round_trip_encode_then_decode_gives_the_same_values),
        cmocka_unit_test(decode_object_reads_a_subtree_and_may_take_every_field_as_nullable),
        cmocka_unit_test(dead_letter_line_is_valid_json_with_every_field),
        cmocka_unit_test(dead_letter_truncates_raw_without_splitting_a_character),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
