/*
 * libFuzzer target: the JSON record decoder (connectors/json.c) behind the
 * file source and JSON Kafka sources, and the encoder behind the sinks.
 *
 * Every input is one line, decoded against two schemas: FLAT (every type,
 * nullable and not) and NESTED (dotted names read from nested objects, a
 * field that is also a parent). Checks besides the sanitizers:
 *   - a decode either succeeds or fails with EDDY_ERR_DECODE and a reason;
 *   - a decoded row has its columns' types (null only where nullable);
 *   - round trip: the row encoded again (eddy__json_encode_row) is valid
 *     JSON and decodes to the same values (the sinks' output can be read
 *     back by the file source);
 *   - a dead-letter line of the input is valid JSON.
 *
 * Build and run: see fuzz_mcp_jsonrpc.c (target fuzz_json, dict
 * fuzz/json.dict, corpus fuzz/corpus/json).
 */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/json.h"

typedef struct {
    const char *name;
    eddy_type_t type;
    bool nullable;
} fdef_t;

static const fdef_t FLAT[] = {
    {"b", EDDY_TYPE_BOOL, false},      {"i", EDDY_TYPE_INT, false},
    {"d", EDDY_TYPE_DOUBLE, false},    {"s", EDDY_TYPE_STRING, false},
    {"y", EDDY_TYPE_BYTES, true},      {"t", EDDY_TYPE_TIMESTAMP, false},
    {"ni", EDDY_TYPE_INT, true},       {"ns", EDDY_TYPE_STRING, true},
    {"nt", EDDY_TYPE_TIMESTAMP, true}, {"nd", EDDY_TYPE_DOUBLE, true},
};
static const fdef_t NESTED[] = {
    {"a.b", EDDY_TYPE_INT, true},      {"a.c.d", EDDY_TYPE_STRING, true},
    {"a", EDDY_TYPE_STRING, true},     {"x.y", EDDY_TYPE_TIMESTAMP, true},
    {"x.z", EDDY_TYPE_BOOL, true},     {"id", EDDY_TYPE_INT, false},
};

static eddy_schema_t *schemas[2];
static eddy_json_dec_t *decs[2];

static eddy_schema_t *mk(const fdef_t *d, int n) {
    eddy_schema_t *s = eddy__schema_new_empty();
    for (int i = 0; i < n; i++) {
        if (eddy__schema_add(s, d[i].name, d[i].type) != i)
            abort();
        s->fields[i].nullable = d[i].nullable;
    }
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    schemas[0] = mk(FLAT, (int)(sizeof(FLAT) / sizeof(FLAT[0])));
    schemas[1] = mk(NESTED, (int)(sizeof(NESTED) / sizeof(NESTED[0])));
    for (int i = 0; i < 2; i++)
        decs[i] = eddy__json_dec_new(schemas[i]);
    return 0;
}

static void bad(const char *what, const char *detail, size_t dlen) {
    fprintf(stderr, "fuzz_json: %s: %.*s\n", what, (int)(dlen > 2000 ? 2000 : dlen), detail);
    abort();
}

static bool same(const eddy_value_t *a, const eddy_value_t *b) {
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case EDDY_TYPE_NULL:
        return true;
    case EDDY_TYPE_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0 || (isnan(a->u.d) && isnan(b->u.d));
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        return a->len == b->len && (!a->len || !memcmp(a->u.s, b->u.s, a->len));
    default:
        return a->u.i == b->u.i;
    }
}

static void one(int k, const uint8_t *data, size_t size) {
    const eddy_schema_t *s = schemas[k];
    eddy_value_t v[16], w[16];
    eddy_arena_t arena;
    eddy_arena_init(&arena, 4096);
    char reason[256] = "";
    eddy_err_t e = eddy__json_decode(decs[k], (const char *)data, size, &arena, v, reason,
                                     sizeof(reason));
    if (e != EDDY_OK) {
        if (e != EDDY_ERR_DECODE || !reason[0])
            bad("a failed decode without EDDY_ERR_DECODE and a reason", reason, strlen(reason));
        eddy_arena_free(&arena);
        return;
    }
    for (int i = 0; i < s->nfields; i++)
        if (v[i].type == EDDY_TYPE_NULL ? !s->fields[i].nullable
                                        : v[i].type != s->fields[i].type)
            bad("a decoded value does not fit its column", s->fields[i].name,
                strlen(s->fields[i].name));
    eddy_buf_t out = {0};
    eddy__json_encode_row(&out, s, v);
    json_error_t je;
    json_t *j = json_loadb(out.p, out.len, JSON_ALLOW_NUL, &je);
    if (!json_is_object(j))
        bad("the encoded row is not a JSON object", out.p, out.len);
    json_decref(j);
    reason[0] = 0;
    if (eddy__json_decode(decs[k], out.p, out.len, &arena, w, reason, sizeof(reason)) != EDDY_OK)
        bad("the encoded row does not decode again", reason, strlen(reason));
    for (int i = 0; i < s->nfields; i++)
        if (!same(&v[i], &w[i]))
            bad("a value changed in an encode/decode round trip", out.p, out.len);
    eddy_buf_free(&out);
    eddy_arena_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int k = 0; k < 2; k++)
        one(k, data, size);
    eddy_buf_t dl = {0};
    eddy__json_dead_letter(&dl, "fuzz", "src", 0, 1, (const char *)data, size, 64);
    json_t *j = json_loadb(dl.p, dl.len, JSON_ALLOW_NUL, NULL);
    if (!json_is_object(j))
        bad("a dead-letter line is not a JSON object", dl.p, dl.len);
    json_decref(j);
    eddy_buf_free(&dl);
    return 0;
}
