/*
 * An in-process Confluent Schema Registry: the REST subset that Kafka
 * sources and sinks use, in memory, served by libmicrohttpd over real HTTP
 * on 127.0.0.1 (internal API; see connectors/sr_embedded.c for the routes).
 *
 * Two users:
 *  - `schema_registry: {url: embedded}` in a topology:
 *    eddy__sr_embedded_acquire() starts one registry per process on an
 *    ephemeral port (its URL printed on stderr), shared by every source and
 *    sink and stopped with the last reference, as the embedded Kafka
 *    cluster is (connectors/kafka.h). connectors/schema_registry.c resolves
 *    the URL "embedded" to it.
 *  - tests/tools/sr_server.c: the sr-server test program, a main over one
 *    registry of its own, with fault injection (fail-first, down mode).
 */
#ifndef EDDY_CONNECTORS_SR_EMBEDDED_H
#define EDDY_CONNECTORS_SR_EMBEDDED_H

#include "eddy_int.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct eddy_sr_embedded_s eddy_sr_embedded_t;

/**
 * @brief An empty registry, not listening yet.
 * @param log_name prefix of the lines written to stderr ("sr-server");
 *        copied.
 */
eddy_sr_embedded_t *eddy__sr_embedded_new(const char *log_name);

/**
 * @brief Stop listening (waiting for requests in flight) and free.
 */
void eddy__sr_embedded_destroy(eddy_sr_embedded_t *reg);

/**
 * @brief Register a schema under a subject, as POST
 *        /subjects/{subject}/versions does: an equal schema (compact JSON
 *        with sorted keys) keeps its first id under any subject, and a
 *        subject gets a new version only for a schema it does not have.
 * @param version out (may be NULL): the schema's version under subject.
 * @returns EDDY_OK with *id; EDDY_ERR_INVAL when the text is not JSON or
 *          not an Avro schema (Avro C's reason in errstr).
 * @remark Thread: any (the registry is locked), before or while listening.
 */
eddy_err_t eddy__sr_embedded_register(eddy_sr_embedded_t *reg, const char *subject,
                                      const char *schema_json, int32_t *id, int *version,
                                      char *errstr, size_t errstr_size);

/**
 * @brief Listen on host_port ("127.0.0.1:0": port 0 is any free port) with
 *        one libmicrohttpd polling thread.
 * @returns EDDY_OK; EDDY_ERR_CONFIG when host_port is not IPV4:PORT;
 *          EDDY_ERR_IO when the address cannot be bound.
 */
eddy_err_t eddy__sr_embedded_listen(eddy_sr_embedded_t *reg, const char *host_port, char *errstr,
                                    size_t errstr_size);

/** @brief The bound port (0 before eddy__sr_embedded_listen()). */
int eddy__sr_embedded_port(const eddy_sr_embedded_t *reg);

/** @brief Fault injection: answer 503 to the next n requests. Thread: any. */
void eddy__sr_embedded_fail_first(eddy_sr_embedded_t *reg, int n);

/** @brief Fault injection: while down, every request is answered 503.
 *         Thread: any (async-signal-safe: one atomic store). */
void eddy__sr_embedded_set_down(eddy_sr_embedded_t *reg, bool down);
bool eddy__sr_embedded_down(const eddy_sr_embedded_t *reg);

/** @brief One line per request on stderr ("NAME: GET /x -> 200"). */
void eddy__sr_embedded_set_verbose(eddy_sr_embedded_t *reg, bool verbose);

/** @brief Requests answered so far (fault-injected ones included). */
int64_t eddy__sr_embedded_requests(const eddy_sr_embedded_t *reg);

/**
 * @brief Start (or share) the process's embedded registry.
 * @param url out: "http://127.0.0.1:PORT" (up to url_size bytes).
 * @returns EDDY_OK or EDDY_ERR_IO (no free port). Thread-safe; reference
 *          counted: each EDDY_OK is matched by eddy__sr_embedded_release().
 */
eddy_err_t eddy__sr_embedded_acquire(char *url, size_t url_size, char *errstr, size_t errstr_size);
void eddy__sr_embedded_release(void);

#endif /* EDDY_CONNECTORS_SR_EMBEDDED_H */
