/*
 * JSON record codec: the encoder behind the stdout/file sinks and
 * eddy_record_to_json(), the JSON-lines decoder behind the file source,
 * and the dead-letter line format.
 *
 * Output format (encoder): one compact object per row, fields in schema
 * order, no spaces, no newline:  {"auction":7,"price":12.5,"channel":"web"}
 *   null -> null, bool -> true/false, int -> integer, double -> shortest of
 *   %.15g/%.16g/%.17g that reads back to the same bits (a ".0" is added when
 *   the text would look like an integer, so -0.0 and the double type
 *   survive a round trip; NaN and +-Inf -> null), string -> escaped string,
 *   bytes -> base64 (RFC 4648, padded), timestamp -> integer ms.
 *   The output is always valid UTF-8 JSON: invalid UTF-8 in a string is
 *   replaced by \ufffd.
 */
#ifndef EDDY_CONNECTORS_JSON_H
#define EDDY_CONNECTORS_JSON_H

#include "eddy_int.h"

/* ---------------------------------------------------------------- encoder */

/**
 * @brief Append one JSON object for the row (no newline):
 *        {"field":value,...} in schema order.
 * @param vals schema->nfields values; a value of type EDDY_TYPE_NULL is
 *        written as null whatever the column's type.
 * @remark Thread: any (no shared state). Allocates only when out grows.
 */
void eddy__json_encode_row(eddy_buf_t *out, const eddy_schema_t *schema, const eddy_value_t *vals);

/**
 * @brief Append a JSON string literal (with the quotes). '"' and '\\' are
 *        escaped, control characters as \b \f \n \r \t or \u00XX, valid
 *        UTF-8 is copied through, and every maximal invalid UTF-8
 *        subsequence (Unicode "substitution of maximal subparts") becomes
 *        \ufffd, so the output is always valid JSON.
 */
void eddy__json_encode_str(eddy_buf_t *out, const char *s, size_t len);

/**
 * @brief Append a double as JSON: shortest round-tripping text, null for
 *        NaN and +-Inf. Independent of the process locale.
 */
void eddy__json_encode_double(eddy_buf_t *out, double d);

/** @brief Append a signed 64-bit integer in decimal (no printf). */
void eddy__json_encode_int(eddy_buf_t *out, int64_t v);

/* ---------------------------------------------------------------- decoder */

/** Deepest nesting of arrays/objects a decoded line may have; deeper
 *  lines are rejected before jansson (recursive) parses them. */
#define EDDY_JSON_MAX_DEPTH 64

typedef struct eddy_json_dec_s eddy_json_dec_t;

/**
 * @brief Build a decoder for a schema, once per source. Field names are
 *        resolved here: a name "a.b" reads key "b" of the object under key
 *        "a" (and, when that path is absent, a literal top-level key "a.b").
 * @param schema borrowed: only copied from, may be freed afterwards.
 * @returns a decoder; never NULL (allocation failure aborts as everywhere
 *          in eddy).
 * @remark The decoder is immutable after _new: any number of threads may
 *         decode with it at once.
 */
eddy_json_dec_t *eddy__json_dec_new(const eddy_schema_t *schema);
void eddy__json_dec_destroy(eddy_json_dec_t *d);

/**
 * @brief Decode one JSON-lines line into vals[schema->nfields].
 * @param line the line; need not be NUL-terminated; a trailing "\n" or
 *        "\r\n" is accepted as whitespace.
 * @param arena strings and bytes are copied here (NUL-terminated), so the
 *        values stay valid until the arena is reset.
 * @returns EDDY_OK, or EDDY_ERR_DECODE with an actionable reason, e.g.
 *          "invalid JSON at column 17: string or '}' expected near ','",
 *          "missing field 'price'",
 *          "field 'price': expected int, got string \"abc\"".
 *          On error the contents of vals are unspecified.
 * @remark Rules: unknown keys are ignored; duplicate keys are rejected
 *         (JSON_REJECT_DUPLICATES) rather than letting one silently win;
 *         raw NUL bytes are rejected ("\u0000" inside strings is kept);
 *         nesting deeper than EDDY_JSON_MAX_DEPTH is rejected before
 *         parsing. jansson allocates a DOM per line (freed before return);
 *         acceptable for the file source, not for a hot Kafka path.
 * @remark Thread: any; see eddy__json_dec_new().
 */
eddy_err_t eddy__json_decode(eddy_json_dec_t *d, const char *line, size_t len, eddy_arena_t *arena,
                             eddy_value_t *vals, char *reason, size_t reason_size);

/* A decoded JSON value (jansson's json_t), for the subtree decoders. */
struct json_t;

/**
 * @brief Parse one JSON object with the rules of eddy__json_decode()
 *        (prescan, duplicate keys, depth) and the same reasons.
 * @param root on EDDY_OK the parsed object; the caller json_decref()s it.
 * @returns EDDY_OK, or EDDY_ERR_DECODE with the reason (also when the
 *          text is valid JSON but not an object).
 */
eddy_err_t eddy__json_parse(const char *line, size_t len, struct json_t **root, char *reason,
                            size_t reason_size);

/** Every field may be null or missing (decoded as null), whatever the
 *  schema says: for a row that carries only some of its columns, such as
 *  the key of a deleted row in a change event. */
#define EDDY_JSON_ALL_NULLABLE 0x1u

/**
 * @brief Decode an already parsed JSON object (e.g. a subtree of a larger
 *        document) into vals[schema->nfields], by the rules and with the
 *        reasons of eddy__json_decode().
 * @param obj borrowed; must be a JSON object.
 * @param flags 0 or EDDY_JSON_ALL_NULLABLE.
 * @remark Thread: any; see eddy__json_dec_new().
 */
eddy_err_t eddy__json_decode_object(const eddy_json_dec_t *d, const struct json_t *obj,
                                    unsigned flags, eddy_arena_t *arena, eddy_value_t *vals,
                                    char *reason, size_t reason_size);

/** @brief What a JSON value is, for messages: "an object", "a string",
 *         "a number", "null", ... (static strings). */
const char *eddy__json_kind(const struct json_t *v);

/**
 * @brief Parse an ISO-8601 / RFC 3339 timestamp:
 *        YYYY-MM-DD[(T|t| )HH:MM[:SS[.fraction]][Z|z|(+|-)HH[[:]MM]]].
 *        No offset means UTC; fractions beyond milliseconds are truncated.
 * @returns 0 and *ms, or -1 with a short reason in *why (static string).
 */
int eddy__json_parse_iso8601(const char *s, size_t len, int64_t *ms, const char **why);

/* ------------------------------------------------------------ dead letter */

/**
 * @brief Append a dead-letter line (no newline):
 *        {"reason":...,"source":...,"partition":p,"offset":o,
 *         "raw":"...","raw_truncated":false}
 *        raw is escaped like any string (invalid UTF-8 -> \ufffd) and cut
 *        to at most max_raw input bytes, backing off so that a UTF-8
 *        character is never split; raw_truncated says whether it was cut.
 *        A NULL reason or source is written as null.
 */
void eddy__json_dead_letter(eddy_buf_t *out, const char *reason, const char *source,
                            int32_t partition, int64_t offset, const char *raw, size_t raw_len,
                            size_t max_raw);

#endif /* EDDY_CONNECTORS_JSON_H */
