/*
 * Avro encoding of engine rows (internal API; connectors/ is the only user
 * of Avro): the record schema derived from a row schema, and rows written
 * straight into Avro binary by that schema, for the Kafka sink.
 *
 * The derived schema (docs/kafka.md has the table):
 *   bool -> boolean, int -> long, double -> double, string -> string,
 *   bytes -> bytes, timestamp -> long with logicalType timestamp-millis,
 *   a column of the null type -> null; a nullable column is
 *   ["null", T] with "default": null. Field names that are not Avro names
 *   ([A-Za-z_][A-Za-z0-9_]*) have every other character replaced by '_'
 *   (and a leading '_' before a digit); two columns that end up with the
 *   same name are an error.
 *
 * The encoder never allocates per record beyond growing the caller's
 * buffer: it reserves the row's upper bound once, then writes varints and
 * bytes through a pointer.
 */
#ifndef EDDY_CONNECTORS_AVRO_WRITE_H
#define EDDY_CONNECTORS_AVRO_WRITE_H

#include "eddy_int.h"

/**
 * @brief The Avro record schema (compact JSON text) for rows of schema.
 * @param name record name; made an Avro name the same way as field names.
 * @param ns namespace (a valid dotted Avro name) or NULL.
 * @returns a new string (eddy_free()), or NULL with the reason in errstr:
 *          "columns 'a.b' and 'a_b' both become the Avro field name 'a_b'".
 */
char *eddy__avro_schema_for_row(const eddy_schema_t *schema, const char *name, const char *ns,
                                char *errstr, size_t errstr_size);

/**
 * @brief Whether bytes written by schema `ours` can be read as schema
 *        `theirs` without resolution: the two parse (Avro C) and are equal
 *        (same names, types and field order).
 * @returns EDDY_OK; EDDY_ERR_TYPE when they differ; EDDY_ERR_DECODE with
 *          Avro C's reason when one does not parse.
 */
eddy_err_t eddy__avro_schema_same(const char *ours, const char *theirs, char *errstr,
                                  size_t errstr_size);

/**
 * @brief Append the Confluent wire-format header: magic byte 0 and the
 *        4-byte big-endian schema id.
 */
void eddy__avro_wire_header(eddy_buf_t *out, int32_t schema_id);

/**
 * @brief Append one row as Avro binary by the schema of
 *        eddy__avro_schema_for_row(schema).
 * @param vals schema->nfields values.
 * @returns EDDY_OK; EDDY_ERR_TYPE when a value cannot be written by the
 *          schema (null in a column that is not nullable, or a value of
 *          another type than its column), with *bad_field set to its index
 *          and out->len left as it was.
 * @remark Thread: any (no shared state).
 */
eddy_err_t eddy__avro_encode_row(eddy_buf_t *out, const eddy_schema_t *schema,
                                 const eddy_value_t *vals, int *bad_field);

#endif /* EDDY_CONNECTORS_AVRO_WRITE_H */
