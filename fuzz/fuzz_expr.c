/*
 * libFuzzer target: the expression language (engine/expr.c) of filter,
 * map, extend, key_by, join and CEP conditions: the parser, type checker
 * and constant folder at compile, and the evaluator.
 *
 * Every input is one expression, compiled against a schema with a field
 * of every type (and names that need backquotes); when it compiles it is
 * evaluated against rows of edge values (INT64_MIN/MAX, 0, -1, NaN, -0.0,
 * +-Inf, empty and non-UTF-8 strings, NULLs, timestamps at both ends).
 * Checks besides the sanitizers:
 *   - a refused expression has a message and a column within the text;
 *   - a result is NULL or exactly the static type eddy__expr_type() says;
 *   - a string result's bytes are readable (ASan);
 *   - eddy__expr_eval_bool agrees with eddy__expr_eval for booleans;
 *   - eddy__expr_fields lists indexes of the schema, ascending.
 *
 * Build and run: see fuzz_mcp_jsonrpc.c (target fuzz_expr, dict
 * fuzz/expr.dict, corpus fuzz/corpus/expr).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"

static const struct {
    const char *name;
    eddy_type_t type;
} FIELDS[] = {
    {"i", EDDY_TYPE_INT},        {"d", EDDY_TYPE_DOUBLE},   {"s", EDDY_TYPE_STRING},
    {"b", EDDY_TYPE_BOOL},       {"y", EDDY_TYPE_BYTES},    {"t", EDDY_TYPE_TIMESTAMP},
    {"price", EDDY_TYPE_INT},    {"a.b", EDDY_TYPE_STRING}, {"odd name", EDDY_TYPE_DOUBLE},
};
#define NF ((int)(sizeof(FIELDS) / sizeof(FIELDS[0])))
#define NROWS 4

static eddy_schema_t *schema;
static eddy_value_t rows[NROWS][NF];

static eddy_value_t vi(eddy_type_t t, int64_t i) { return (eddy_value_t){.u.i = i, .type = t}; }
static eddy_value_t vd(double d) { return (eddy_value_t){.u.d = d, .type = EDDY_TYPE_DOUBLE}; }
static eddy_value_t vs(eddy_type_t t, const char *s, uint32_t n) {
    return (eddy_value_t){.u.s = s, .len = n, .type = t};
}
static const eddy_value_t VNULL = {.type = EDDY_TYPE_NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    schema = eddy__schema_new_empty();
    for (int i = 0; i < NF; i++)
        if (eddy__schema_add(schema, FIELDS[i].name, FIELDS[i].type) != i)
            abort();
    eddy_value_t r0[NF] = {vi(EDDY_TYPE_INT, 7),
                           vd(12.5),
                           vs(EDDY_TYPE_STRING, "Hello, World", 12),
                           vi(EDDY_TYPE_BOOL, 1),
                           vs(EDDY_TYPE_BYTES, "\x00\xff" "ab", 4),
                           vi(EDDY_TYPE_TIMESTAMP, 1700000000123LL),
                           vi(EDDY_TYPE_INT, 100),
                           vs(EDDY_TYPE_STRING, "42", 2),
                           vd(-0.0)};
    eddy_value_t r1[NF] = {vi(EDDY_TYPE_INT, INT64_MIN),
                           vd(NAN),
                           vs(EDDY_TYPE_STRING, "", 0),
                           vi(EDDY_TYPE_BOOL, 0),
                           vs(EDDY_TYPE_BYTES, "", 0),
                           vi(EDDY_TYPE_TIMESTAMP, INT64_MIN),
                           vi(EDDY_TYPE_INT, -1),
                           vs(EDDY_TYPE_STRING, "\xc3\x28\xff", 3),
                           vd(INFINITY)};
    eddy_value_t r2[NF] = {vi(EDDY_TYPE_INT, INT64_MAX),
                           vd(-INFINITY),
                           vs(EDDY_TYPE_STRING, "2024-02-29T23:59:59.999Z", 24),
                           VNULL,
                           VNULL,
                           vi(EDDY_TYPE_TIMESTAMP, INT64_MAX),
                           vi(EDDY_TYPE_INT, 0),
                           vs(EDDY_TYPE_STRING, "-9223372036854775808", 20),
                           vd(1e308)};
    for (int i = 0; i < NF; i++) {
        rows[0][i] = r0[i];
        rows[1][i] = r1[i];
        rows[2][i] = r2[i];
        rows[3][i] = VNULL;
    }
    return 0;
}

static void bad(const char *what, const char *src, size_t n) {
    fprintf(stderr, "fuzz_expr: %s: %.*s\n", what, (int)(n > 2000 ? 2000 : n), src);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > EDDY_EXPR_MAX_LEN + 16)
        return 0;
    /* the compiler takes a NUL-terminated string */
    char *src = malloc(size + 1);
    memcpy(src, data, size);
    src[size] = 0;
    size_t slen = strlen(src);
    char err[512] = "";
    int col = -1;
    eddy_expr_t *e = eddy__expr_compile(src, schema, err, sizeof(err), &col);
    if (!e) {
        if (!err[0] || col < 0 || (size_t)col > slen)
            bad("refused without a message or with a column outside the text", src, slen);
        free(src);
        return 0;
    }
    eddy_type_t t = eddy__expr_type(e);
    int idx[NF + 1];
    int n = eddy__expr_fields(e, idx, NF + 1);
    if (n < 0 || n > NF)
        bad("field count out of range", src, slen);
    for (int i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= NF || (i && idx[i] <= idx[i - 1]))
            bad("field indexes not ascending within the schema", src, slen);
    int ref = eddy__expr_field_ref(e);
    if (ref >= NF || (ref >= 0 && (n != 1 || idx[0] != ref)))
        bad("a field reference that is not its only field", src, slen);
    eddy_arena_t arena;
    eddy_arena_init(&arena, 1024);
    for (int r = 0; r < NROWS; r++) {
        eddy_value_t out;
        eddy__expr_eval(e, rows[r], &arena, &out);
        if (out.type != EDDY_TYPE_NULL && out.type != t)
            bad("a result of another type than the static type", src, slen);
        if (out.type == EDDY_TYPE_STRING || out.type == EDDY_TYPE_BYTES) {
            volatile uint8_t x = 0;
            for (uint32_t k = 0; k < out.len; k++)
                x ^= (uint8_t)out.u.s[k];
            (void)x;
        }
        bool b = eddy__expr_eval_bool(e, rows[r], &arena);
        if (b != (out.type == EDDY_TYPE_BOOL && out.u.i))
            bad("eval_bool disagrees with eval", src, slen);
        eddy_arena_reset(&arena);
    }
    eddy_arena_free(&arena);
    eddy__expr_destroy(e);
    free(src);
    return 0;
}
