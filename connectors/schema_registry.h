/*
 * Confluent Schema Registry client (internal API; connectors/ is the only
 * user of libcurl).
 *
 *   GET  /schemas/ids/{id}             writer schemas, parsed and cached by id
 *   POST /subjects/{subject}/versions  register a schema (for sinks)
 *
 * Options are set by string key on a conf object (see eddy__sr_conf_set()
 * for the table). Failed requests that may succeed later (no connection,
 * timeout, HTTP 5xx or 429) are retried with exponential backoff, a bounded
 * number of times; the final error names the registry URL and the schema
 * id or subject. Decode plans are cached per (writer id, reader schema).
 */
#ifndef EDDY_CONNECTORS_SCHEMA_REGISTRY_H
#define EDDY_CONNECTORS_SCHEMA_REGISTRY_H

#include "connectors/avro.h"

typedef struct eddy_sr_conf_s eddy_sr_conf_t;
typedef struct eddy_sr_s eddy_sr_t;

eddy_sr_conf_t *eddy__sr_conf_new(void);
void eddy__sr_conf_destroy(eddy_sr_conf_t *conf);

/**
 * @brief Set an option.
 *   url                    registry base URL, http:// or https:// (required);
 *                          "embedded": the process's embedded registry
 *                          (connectors/sr_embedded.h), started on first
 *                          use and held until eddy__sr_destroy()
 *   basic.auth.user.info   "user:password" for HTTP basic auth
 *   ssl.ca.location        CA bundle file to verify the registry with
 *   ssl.certificate.location, ssl.key.location, ssl.key.password
 *                          client certificate (mutual TLS)
 *   enable.ssl.certificate.verification
 *                          true (default) | false: false skips peer and
 *                          host name checks (tests only)
 *   request.timeout.ms     whole request, default 10000
 *   connect.timeout.ms     TCP/TLS connect, default 5000
 *   retries                retries after the first attempt, default 5
 *   retry.backoff.ms       first backoff, doubled per retry, default 100
 *   retry.backoff.max.ms   backoff cap, default 5000
 * @returns EDDY_OK, or EDDY_ERR_CONFIG naming the key and what it expects.
 */
eddy_err_t eddy__sr_conf_set(eddy_sr_conf_t *conf, const char *key, const char *value,
                             char *errstr, size_t errstr_size);

/**
 * @brief Create a client.
 * @param conf on success the client owns it; on failure the caller does.
 * @returns the client, or NULL with the reason (e.g. no url) in errstr.
 */
eddy_sr_t *eddy__sr_new(eddy_sr_conf_t *conf, char *errstr, size_t errstr_size);
void eddy__sr_destroy(eddy_sr_t *sr);

/** @brief The registry base URL (borrowed); for "embedded", the embedded
 *         registry's http://127.0.0.1:PORT. */
const char *eddy__sr_url(const eddy_sr_t *sr);

/**
 * @brief The writer schema with this id: from the cache, else fetched
 *        (with retries) and parsed.
 * @param out borrowed; valid until eddy__sr_destroy().
 * @returns EDDY_OK; EDDY_ERR_NOENT for an id the registry does not know
 *          ("schema registry http://...: schema id 42 not found (40403 ...)");
 *          EDDY_ERR_IO when the registry stays unreachable after the
 *          retries; EDDY_ERR_DECODE for a schema that does not parse.
 * @remark Thread: any; the cache is locked. Concurrent misses of one id may
 *         fetch it twice (the first insert wins). Blocks for at most
 *         about (retries + 1) * request.timeout.ms + the backoffs.
 */
eddy_err_t eddy__sr_get_schema(eddy_sr_t *sr, int32_t id, const eddy_avro_schema_t **out,
                               char *errstr, size_t errstr_size);

/**
 * @brief The plan decoding writer schema `id` into `reader`: cached per
 *        (id, reader JSON text), built on a miss.
 * @param plan borrowed; valid until eddy__sr_destroy().
 * @returns as eddy__sr_get_schema(), or EDDY_ERR_TYPE when the writer
 *          schema cannot be read with the reader schema ("schema id 7:
 *          Bid.price: writer type string cannot be read as long").
 * @remark Thread: any. Meant for a miss in a source's own per-task memo,
 *         not for every record.
 */
eddy_err_t eddy__sr_plan(eddy_sr_t *sr, int32_t id, const eddy_avro_schema_t *reader,
                         const eddy_avro_plan_t **plan, char *errstr, size_t errstr_size);

/**
 * @brief Register a schema under a subject (idempotent on the registry).
 * @returns EDDY_OK with *id; errors as eddy__sr_get_schema(), with the
 *          subject named.
 */
eddy_err_t eddy__sr_register(eddy_sr_t *sr, const char *subject, const char *schema_json,
                             int32_t *id, char *errstr, size_t errstr_size);

/** @brief HTTP requests made so far (each retry counts), for tests and
 *         metrics. */
int64_t eddy__sr_requests(const eddy_sr_t *sr);

#endif /* EDDY_CONNECTORS_SCHEMA_REGISTRY_H */
