/*
 * Debezium change events -> changelog rows (internal API).
 *
 * A Debezium connector writes one event per changed database row:
 *
 *   {"before": {...} | null, "after": {...} | null, "source": {...},
 *    "op": "c" | "u" | "r" | "d", "ts_ms": 1700000000000}
 *
 * in JSON (optionally wrapped as {"schema": ..., "payload": <event>} when
 * the JsonConverter has schemas.enable=true) or in Avro (the Envelope
 * record; see eddy__dbz_new_flat()). After a delete it writes a tombstone:
 * the same Kafka key with a null value, for log compaction.
 *
 * The decoder turns an event into one row of the changelog stream:
 * "__op" (a string: "c", "u", "r" or "d") followed by the table's columns,
 * taken from `after` for c/u/r and from `before` for d. A delete's
 * `before` may hold only the key columns (Postgres' default replica
 * identity): the other columns then decode as null, so every column of
 * the stream is nullable. A table step (operators/table.c) materialises
 * such a stream.
 */
#ifndef EDDY_CONNECTORS_DEBEZIUM_H
#define EDDY_CONNECTORS_DEBEZIUM_H

#include "eddy_int.h"

/** Name of the op column, the first of every Debezium stream. */
#define EDDY_DBZ_OP_COLUMN "__op"

/** What one Kafka value was. */
typedef enum {
    EDDY_DBZ_ROW = 0,       /**< a change: vals and *ts_ms are set */
    EDDY_DBZ_TOMBSTONE = 1, /**< a null value (compaction marker after a delete): skip it */
    EDDY_DBZ_INVALID = 2    /**< not a change event we can use: reason says why */
} eddy_dbz_res_t;

/** A decoder for one source. Immutable after _new: any number of threads
 *  may decode with it at once. */
typedef struct eddy_dbz_s eddy_dbz_t;

/**
 * @brief Decoder of JSON events into the declared columns.
 * @param columns the table's columns (borrowed; copied). Names with a dot
 *        read nested objects, as eddy__json_dec_new() does.
 * @returns the decoder, or NULL with the reason in errstr (a column named
 *          "__op").
 */
eddy_dbz_t *eddy__dbz_new(const eddy_schema_t *columns, char *errstr, size_t errstr_size);

/**
 * @brief Decoder of Avro events already decoded into the flat row of the
 *        Envelope reader schema (connectors/avro.h: "before.id",
 *        "after.id", "op", "ts_ms", "source.ts_ms", ...). The table's
 *        columns are the fields of `after` ("after.id" -> "id").
 * @param flat the engine schema of the reader schema (borrowed).
 * @returns the decoder, or NULL with the reason in errstr (no string field
 *          "op", no after.* fields, before.X of another type than after.X).
 */
eddy_dbz_t *eddy__dbz_new_flat(const eddy_schema_t *flat, char *errstr, size_t errstr_size);

void eddy__dbz_destroy(eddy_dbz_t *d);

/** @brief The stream's schema: "__op" (string) then the columns, all
 *         nullable. A new reference: eddy__schema_unref() it. */
eddy_schema_t *eddy__dbz_schema(const eddy_dbz_t *d);

/** @brief Columns of the flat Avro row (eddy__dbz_new_flat()); 0 for JSON. */
int eddy__dbz_nflat(const eddy_dbz_t *d);

/**
 * @brief Decode one JSON event (a Kafka value).
 * @param msg the value; NULL for a tombstone.
 * @param vals eddy__dbz_schema() nfields values. Strings are copied into
 *        arena; "__op" points to a static string.
 * @param ts_ms the event's ts_ms (when the connector processed the change),
 *        else source.ts_ms (when the database made it), else INT64_MIN.
 * @returns EDDY_DBZ_ROW, EDDY_DBZ_TOMBSTONE (also for a null payload in
 *          the schema wrapper) or EDDY_DBZ_INVALID with the reason, e.g.
 *          "op 'c' without 'after' (the new row)",
 *          "after: field 'id': expected int, got string \"x\"".
 */
eddy_dbz_res_t eddy__dbz_decode_json(const eddy_dbz_t *d, const char *msg, size_t len,
                                     eddy_arena_t *arena, eddy_value_t *vals, int64_t *ts_ms,
                                     char *reason, size_t reason_size);

/**
 * @brief Map one flat Avro row (eddy__dbz_nflat() values) to the stream's
 *        row, as eddy__dbz_decode_json() does. Values are shared, not
 *        copied: they live as long as the flat row's.
 * @remark The flat row cannot tell a null `after` from one whose columns
 *         are all null: an event whose chosen side has only nulls is
 *         taken as missing it (a row's key is never entirely null).
 */
eddy_dbz_res_t eddy__dbz_decode_flat(const eddy_dbz_t *d, const eddy_value_t *flat,
                                     eddy_value_t *vals, int64_t *ts_ms, char *reason,
                                     size_t reason_size);

#endif /* EDDY_CONNECTORS_DEBEZIUM_H */
