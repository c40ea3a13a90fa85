/*
 * Test helper: a Debezium Envelope Avro schema (the shape the Avro
 * converter registers for a Postgres table customers(id int primary key,
 * name text), trimmed) and an encoder of its change events, written with
 * Avro C's own writer (avro_enc.h). Shared by the Debezium unit test and
 * the Kafka CDC integration test.
 */
#ifndef EDDY_TESTS_DBZ_AVRO_H
#define EDDY_TESTS_DBZ_AVRO_H

#include "tests/unit/connectors/avro_enc.h"

static const char DBZ_ENVELOPE[] =
    "{\"type\": \"record\", \"name\": \"Envelope\", \"namespace\": \"shop.public.customers\","
    " \"fields\": ["
    "  {\"name\": \"before\", \"type\": [\"null\", {\"type\": \"record\", \"name\": \"Value\","
    "     \"fields\": [{\"name\": \"id\", \"type\": \"int\"},"
    "                  {\"name\": \"name\", \"type\": [\"null\", \"string\"], \"default\": null}]}],"
    "   \"default\": null},"
    "  {\"name\": \"after\", \"type\": [\"null\", \"Value\"], \"default\": null},"
    "  {\"name\": \"source\", \"type\": {\"type\": \"record\", \"name\": \"Source\","
    "     \"namespace\": \"io.debezium.connector.postgresql\","
    "     \"fields\": [{\"name\": \"connector\", \"type\": \"string\"},"
    "                  {\"name\": \"db\", \"type\": \"string\"},"
    "                  {\"name\": \"ts_ms\", \"type\": \"long\"}]}},"
    "  {\"name\": \"op\", \"type\": \"string\"},"
    "  {\"name\": \"ts_ms\", \"type\": [\"null\", \"long\"], \"default\": null}]}";

/* Set side ("before"/"after") to the row (id, name), or to null (id < 0). */
static inline void dbz_enc_side(enc_t *e, const char *side, int id, const char *name) {
    avro_value_t br = enc_branch(e, side, id < 0 ? 0 : 1), f, fb;
    if (id < 0) {
        avro_value_set_null(&br);
        return;
    }
    avro_value_get_by_name(&br, "id", &f, NULL);
    avro_value_set_int(&f, id);
    avro_value_get_by_name(&br, "name", &f, NULL);
    avro_value_set_branch(&f, 1, &fb);
    avro_value_set_string(&fb, name);
}

/* One event as Avro binary (no wire-format header) into buf; returns its
 * length. before_id/after_id < 0: that side is null; ts_ms < 0: no ts_ms
 * (source.ts_ms is always src_ts_ms). */
static inline size_t dbz_avro_event(const char *op, int before_id, int after_id,
                                    const char *name, int64_t ts_ms, int64_t src_ts_ms,
                                    char *buf, size_t cap) {
    enc_t e;
    enc_init(&e, DBZ_ENVELOPE);
    dbz_enc_side(&e, "before", before_id, name);
    dbz_enc_side(&e, "after", after_id, name);
    enc_str(&e, "source.connector", "postgresql");
    enc_str(&e, "source.db", "shop");
    enc_long(&e, "source.ts_ms", src_ts_ms);
    enc_str(&e, "op", op);
    avro_value_t ts = enc_branch(&e, "ts_ms", ts_ms < 0 ? 0 : 1);
    if (ts_ms < 0)
        avro_value_set_null(&ts);
    else
        avro_value_set_long(&ts, ts_ms);
    size_t len = enc_write(&e, buf, cap);
    enc_free(&e);
    return len;
}

#endif /* EDDY_TESTS_DBZ_AVRO_H */
