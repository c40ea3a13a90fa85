/*
 * Test helper: encode records with Avro C's own writer (avro_generic_value
 * + avro_value_write into a memory writer), so the decoder under test is
 * checked against an encoder that is not eddy's. Fields are addressed by a
 * dotted path of record field names.
 */
#ifndef EDDY_TESTS_AVRO_ENC_H
#define EDDY_TESTS_AVRO_ENC_H

#include <avro.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;
} enc_t;

static inline void enc_fail(const char *what) {
    fprintf(stderr, "avro encode helper: %s: %s\n", what, avro_strerror());
    abort();
}

static inline void enc_init(enc_t *e, const char *json) {
    if (avro_schema_from_json_length(json, strlen(json), &e->schema))
        enc_fail("schema");
    e->iface = avro_generic_class_from_schema(e->schema);
    if (!e->iface || avro_generic_value_new(e->iface, &e->rec))
        enc_fail("generic value");
}

static inline void enc_free(enc_t *e) {
    avro_value_decref(&e->rec);
    avro_value_iface_decref(e->iface);
    avro_schema_decref(e->schema);
}

/* The value at a dotted path of field names. */
static inline avro_value_t enc_at(enc_t *e, const char *path) {
    avro_value_t cur = e->rec, next;
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
        if (avro_value_get_by_name(&cur, tok, &next, NULL))
            enc_fail(path);
        cur = next;
    }
    return cur;
}

/* Select union branch b of the value at path and return the branch. */
static inline avro_value_t enc_branch(enc_t *e, const char *path, int b) {
    avro_value_t u = enc_at(e, path), br;
    if (avro_value_set_branch(&u, b, &br))
        enc_fail(path);
    return br;
}

static inline void enc_long(enc_t *e, const char *path, int64_t x) {
    avro_value_t v = enc_at(e, path);
    if (avro_value_set_long(&v, x))
        enc_fail(path);
}
static inline void enc_int(enc_t *e, const char *path, int32_t x) {
    avro_value_t v = enc_at(e, path);
    if (avro_value_set_int(&v, x))
        enc_fail(path);
}
static inline void enc_str(enc_t *e, const char *path, const char *s) {
    avro_value_t v = enc_at(e, path);
    if (avro_value_set_string(&v, s))
        enc_fail(path);
}

/* Write the record; returns its length. */
static inline size_t enc_write(enc_t *e, char *buf, size_t cap) {
    avro_writer_t w = avro_writer_memory(buf, (int64_t)cap);
    if (avro_value_write(w, &e->rec))
        enc_fail("write");
    size_t n = (size_t)avro_writer_tell(w);
    avro_writer_free(w);
    return n;
}

#endif
