/*
 * libFuzzer target: Avro schema parsing, schema resolution and decoding
 * (connectors/avro.c), as a Kafka source meets them: a writer schema from
 * the registry (untrusted JSON) resolved against the topology's reader
 * schema, then record bytes decoded with the plan.
 *
 * Input: WRITER_SCHEMA_JSON '\0' RECORD_BYTES (no '\0': all schema, empty
 * record). For each input:
 *   1. the writer schema is parsed; when it parses,
 *   2. it is resolved against each fixed reader (READERS: promotions,
 *      defaults of every type, aliases, enum defaults, nested records,
 *      unions, containers, logical types) and against itself, and the
 *      record is decoded with every plan that resolves, with and without
 *      EDDY_AVRO_COPY;
 *   3. the record is also split as a Confluent wire-format message.
 * Checks besides the sanitizers: a decode either succeeds or gives a
 * non-empty reason; every decoded value has its column's type (or null
 * where the column is nullable); string lengths stay within the input
 * (or the arena); no call reads outside the record (ASan).
 *
 * Build and run: see fuzz_mcp_jsonrpc.c (target fuzz_avro, dict
 * fuzz/avro.dict, corpus fuzz/corpus/avro).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/avro.h"

static const char *const READERS[] = {
    /* evolution: aliases, defaults of every type, enum default */
    "{\"type\":\"record\",\"name\":\"Bid\",\"aliases\":[\"R\",\"Order\"],\"fields\":["
    "{\"name\":\"auction\",\"type\":\"long\",\"default\":0},"
    "{\"name\":\"price\",\"type\":\"double\",\"default\":0},"
    "{\"name\":\"name\",\"type\":\"string\",\"aliases\":[\"bidder_name\",\"s\"],\"default\":\"\"},"
    "{\"name\":\"note\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"Status\","
    "   \"symbols\":[\"OPEN\",\"CLOSED\",\"UNKNOWN\"],\"default\":\"UNKNOWN\"},\"default\":\"OPEN\"},"
    "{\"name\":\"added_int\",\"type\":\"int\",\"default\":7},"
    "{\"name\":\"added_str\",\"type\":\"string\",\"default\":\"dflt\"},"
    "{\"name\":\"added_bool\",\"type\":\"boolean\",\"default\":true},"
    "{\"name\":\"added_float\",\"type\":\"float\",\"default\":0.5},"
    "{\"name\":\"added_bytes\",\"type\":\"bytes\",\"default\":\"a\\u00ff\"},"
    "{\"name\":\"added_null\",\"type\":\"null\",\"default\":null},"
    "{\"name\":\"at\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"},"
    "   \"default\":0}]}",
    /* nesting: records (flattened), optional record, containers as JSON,
     * fixed, logical types, a multi-branch union */
    "{\"type\":\"record\",\"name\":\"Order\",\"aliases\":[\"R\",\"Bid\"],\"fields\":["
    "{\"name\":\"id\",\"type\":\"long\",\"default\":-1},"
    "{\"name\":\"ship\",\"type\":{\"type\":\"record\",\"name\":\"Addr\",\"fields\":["
    "   {\"name\":\"city\",\"type\":\"string\"},"
    "   {\"name\":\"geo\",\"type\":{\"type\":\"record\",\"name\":\"Geo\",\"fields\":["
    "      {\"name\":\"lat\",\"type\":\"double\"},{\"name\":\"lon\",\"type\":\"double\"}]}}]},"
    "   \"default\":{\"city\":\"x\",\"geo\":{\"lat\":0,\"lon\":0}}},"
    "{\"name\":\"bill\",\"type\":[\"null\",\"Addr\"],\"default\":null},"
    "{\"name\":\"day\",\"type\":{\"type\":\"int\",\"logicalType\":\"date\"},\"default\":0},"
    "{\"name\":\"at_us\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-micros\"},"
    "   \"default\":0},"
    "{\"name\":\"digest\",\"type\":{\"type\":\"fixed\",\"name\":\"MD\",\"size\":4},"
    "   \"default\":\"abcd\"},"
    "{\"name\":\"blob\",\"type\":\"bytes\",\"default\":\"\"},"
    "{\"name\":\"tags\",\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[]},"
    "{\"name\":\"attrs\",\"type\":{\"type\":\"map\",\"values\":[\"null\",\"long\",\"Geo\"]},"
    "   \"default\":{}},"
    "{\"name\":\"any\",\"type\":[\"null\",\"long\",\"string\"],\"default\":null}]}",
};
#define NREADERS (sizeof(READERS) / sizeof(READERS[0]))

static eddy_avro_schema_t *readers[NREADERS];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char err[512];
    for (size_t i = 0; i < NREADERS; i++)
        if (!(readers[i] = eddy__avro_schema_parse(READERS[i], strlen(READERS[i]), err,
                                                   sizeof(err)))) {
            fprintf(stderr, "fuzz_avro: reader %zu: %s\n", i, err);
            abort();
        }
    return 0;
}

static void bad(const char *what, const char *field) {
    fprintf(stderr, "fuzz_avro: %s (column %s)\n", what, field);
    abort();
}

/* A decoded row must look like the schema says. */
static void check_row(const eddy_schema_t *s, const eddy_value_t *v, const uint8_t *rec,
                      size_t len) {
    for (int i = 0; i < s->nfields; i++) {
        const eddy_field_t *f = &s->fields[i];
        if (v[i].type == EDDY_TYPE_NULL) {
            if (!f->nullable)
                bad("null in a column that is not nullable", f->name);
            continue;
        }
        if (v[i].type != f->type)
            bad("value of another type than its column", f->name);
        if (v[i].type == EDDY_TYPE_STRING || v[i].type == EDDY_TYPE_BYTES) {
            const uint8_t *p = (const uint8_t *)v[i].u.s;
            if (v[i].len && !p)
                bad("string without data", f->name);
            /* in the record, or somewhere else (arena, plan) entirely */
            if (p >= rec && p < rec + len && p + v[i].len > rec + len)
                bad("string runs past the end of the record", f->name);
            /* touch every byte: ASan reports a string outside its memory */
            volatile uint8_t sum = 0;
            for (uint32_t k = 0; k < v[i].len; k++)
                sum ^= p[k];
            (void)sum;
        }
    }
}

static void decode_with(const eddy_avro_plan_t *plan, const uint8_t *rec, size_t len) {
    const eddy_schema_t *s = eddy__avro_plan_schema(plan);
    eddy_value_t *vals = calloc((size_t)s->nfields + 1, sizeof(*vals));
    eddy_arena_t arena;
    eddy_arena_init(&arena, 4096);
    /* an exact-size copy, so a read past the end is an ASan report */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, rec, len);
    for (unsigned flags = 0; flags <= EDDY_AVRO_COPY; flags += EDDY_AVRO_COPY) {
        char reason[512] = "";
        eddy_err_t e = eddy__avro_decode(plan, copy, len, &arena, vals, flags, reason,
                                         sizeof(reason));
        if (e == EDDY_OK)
            check_row(s, vals, copy, len);
        else if (e != EDDY_ERR_DECODE || !reason[0])
            bad("a failed decode without EDDY_ERR_DECODE and a reason", "-");
        eddy_arena_reset(&arena);
    }
    free(copy);
    eddy_arena_free(&arena);
    free(vals);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t slen = nul ? (size_t)(nul - data) : size;
    const uint8_t *rec = nul ? nul + 1 : data + size;
    size_t rlen = size - slen - (nul ? 1 : 0);

    int32_t id;
    const void *body;
    size_t body_len;
    char reason[256];
    if (eddy__avro_wire_split(rec, rlen, &id, &body, &body_len, reason, sizeof(reason)) ==
        EDDY_OK) {
        if ((const uint8_t *)body != rec + 5 || body_len != rlen - 5)
            bad("wire split body is not the bytes after the header", "-");
    } else if (!reason[0]) {
        bad("wire split failed without a reason", "-");
    }

    char err[512] = "";
    eddy_avro_schema_t *w = eddy__avro_schema_parse((const char *)data, slen, err, sizeof(err));
    if (!w) {
        if (!err[0])
            bad("schema refused without a reason", "-");
        return 0;
    }
    eddy_schema_t *es = eddy__avro_engine_schema(w, err, sizeof(err));
    if (es)
        eddy__schema_unref(es);
    for (size_t i = 0; i <= NREADERS; i++) {
        const eddy_avro_schema_t *r = i < NREADERS ? readers[i] : w;
        err[0] = 0;
        eddy_avro_plan_t *p = eddy__avro_plan_new(w, r, err, sizeof(err));
        if (!p) {
            if (!err[0])
                bad("plan refused without a reason", "-");
            continue;
        }
        decode_with(p, rec, rlen);
        eddy__avro_plan_destroy(p);
    }
    eddy__avro_schema_destroy(w);
    return 0;
}
