/*
 * Avro decoding for eddy (internal API; connectors/ is the only user of
 * Avro C).
 *
 * Schemas are parsed by Avro C (avro_schema_from_json_length), which checks
 * them and resolves named-type references; the attributes Avro C 1.11.1
 * drops (field defaults, aliases, enum defaults, logicalType) are read from
 * the same JSON with jansson. A writer schema and a reader schema are then
 * resolved, by the rules of the Avro specification, into a decode plan: a
 * small program that reads Avro binary and writes the engine's typed row
 * (one eddy_value_t per column of a flat schema derived from the reader
 * schema). See docs/avro.md for the type mapping and the rules supported.
 */
#ifndef EDDY_CONNECTORS_AVRO_H
#define EDDY_CONNECTORS_AVRO_H

#include "eddy_int.h"

#include <stdint.h>

/** A parsed Avro schema (writer or reader). Immutable after parsing. */
typedef struct eddy_avro_schema_s eddy_avro_schema_t;

/**
 * @brief Parse an Avro schema from its JSON text.
 * @returns the schema, or NULL with the reason in errstr (Avro C's message
 *          for a malformed schema; ours for an unsupported one, e.g. a
 *          recursive record).
 * @remark Thread: any. The result may be shared by any number of threads.
 */
eddy_avro_schema_t *eddy__avro_schema_parse(const char *json, size_t len, char *errstr,
                                            size_t errstr_size);
void eddy__avro_schema_destroy(eddy_avro_schema_t *sch);

/** @brief The JSON text the schema was parsed from (borrowed, NUL-terminated,
 *         valid while the schema lives). */
const char *eddy__avro_schema_json(const eddy_avro_schema_t *sch);
/** @brief A 64-bit hash of the JSON text (for plan caches). */
uint64_t eddy__avro_schema_hash(const eddy_avro_schema_t *sch);

/**
 * @brief The flat engine schema a reader schema decodes into: one column
 *        per leaf, nested records flattened into "parent.child", ["null",T]
 *        as a nullable T, arrays, maps and unions of several non-null types
 *        as a STRING of JSON text.
 * @returns a new reference (eddy__schema_unref() it), or NULL with the
 *          reason in errstr (e.g. two columns with the same name).
 */
eddy_schema_t *eddy__avro_engine_schema(const eddy_avro_schema_t *reader, char *errstr,
                                        size_t errstr_size);

/** A writer -> reader decode plan. Immutable: any number of threads may
 *  decode with one plan at once. */
typedef struct eddy_avro_plan_s eddy_avro_plan_t;

/**
 * @brief Resolve a writer schema against a reader schema.
 * @param writer,reader borrowed: the plan copies what it needs, both may be
 *        destroyed afterwards.
 * @returns the plan, or NULL when the schemas are incompatible, with the
 *          field path and the reason in errstr, e.g.
 *          "Bid.price: writer type string cannot be read as long" or
 *          "Bid.channel: reader field has no default and the writer has no
 *          field 'channel'".
 */
eddy_avro_plan_t *eddy__avro_plan_new(const eddy_avro_schema_t *writer,
                                      const eddy_avro_schema_t *reader, char *errstr,
                                      size_t errstr_size);
void eddy__avro_plan_destroy(eddy_avro_plan_t *plan);

/** @brief The engine schema rows decode into (borrowed, valid while the plan
 *         lives; equal to eddy__avro_engine_schema(reader)). */
const eddy_schema_t *eddy__avro_plan_schema(const eddy_avro_plan_t *plan);

/** Copy strings and bytes into the arena instead of pointing into the
 *  input buffer. */
#define EDDY_AVRO_COPY 0x1

/**
 * @brief Decode one Avro binary record into vals[schema->nfields].
 * @param buf the record: exactly one datum of the writer schema; trailing
 *        bytes are an error (they mean the writer schema is not the one
 *        the bytes were written with).
 * @param arena JSON text of array/map columns (and, with EDDY_AVRO_COPY,
 *        every string) goes here.
 * @param flags 0 or EDDY_AVRO_COPY.
 * @returns EDDY_OK, or EDDY_ERR_DECODE with the field path, what was wrong
 *          and the byte offset in reason, e.g.
 *          "Bid.url: string length 300 runs past the end of the input (12
 *          bytes left) at byte 31". The decoder never reads outside
 *          [buf, buf+len). On error the contents of vals are unspecified.
 * @remark Lifetimes: without EDDY_AVRO_COPY, STRING/BYTES values point into
 *         buf (keep it alive as long as the row); enum symbols and default
 *         strings point into the plan; JSON text into the arena.
 * @remark Thread: any. Allocates only for array/map/multi-union columns
 *         (a scratch buffer per call).
 */
eddy_err_t eddy__avro_decode(const eddy_avro_plan_t *plan, const void *buf, size_t len,
                             eddy_arena_t *arena, eddy_value_t *vals, unsigned flags, char *reason,
                             size_t reason_size);

/**
 * @brief Split a Confluent wire-format message: magic byte 0, 4-byte
 *        big-endian schema id, Avro binary body.
 * @returns EDDY_OK with *schema_id and the body (pointing into msg), or
 *          EDDY_ERR_DECODE: "message of 3 bytes is shorter than the 5-byte
 *          Confluent header", "bad magic byte 0x7b (expected 0x00: not
 *          Confluent wire format)".
 */
eddy_err_t eddy__avro_wire_split(const void *msg, size_t len, int32_t *schema_id,
                                 const void **body, size_t *body_len, char *reason,
                                 size_t reason_size);

#endif /* EDDY_CONNECTORS_AVRO_H */
