/*
 * The Kafka transport of repartition topics (settings.repartition: kafka):
 * per exchange a topic `<application>-<exchange>-repartition` with one
 * partition per task; per stream thread one producer (under exactly_once
 * the thread's shared transactional one, connectors/kafka_txn.h) and one
 * consumer that is assigned, partition by partition,
 * the repartition partitions of the tasks the thread runs (no group
 * subscription: task N reads partition N because it owns input partition
 * N, whatever the assignor did). The record format and the engine side are
 * in engine/repartition.h and engine/engine.c; docs/kafka.md has the
 * design.
 */
#ifndef EDDY_CONNECTORS_KAFKA_REPARTITION_H
#define EDDY_CONNECTORS_KAFKA_REPARTITION_H

#include "eddy_int.h"

typedef struct eddy_krp_s eddy_krp_t;

/**
 * @brief The service of one engine, made while compiling: no connection.
 * @param kafka the topology's top-level `kafka:` map (NULL: the embedded
 *        cluster); each property is checked (error at its file:line:col).
 * @param names the exchanges' stable names (topic = application-name-
 *        repartition, with characters Kafka does not allow replaced by '-').
 * @param partitions the task count.
 */
eddy_krp_t *eddy__krp_new(const eddy_cnode_t *kafka, const char *application,
                          const char *const *names, int nx, int partitions, char *errstr,
                          size_t errstr_size);
/** exactly_once: the records go through the stream threads' shared
 *  transactional producers (connectors/kafka_txn.h), whose transactions
 *  the engine commits; NULL (at_least_once): an idempotent producer per
 *  thread of its own. */
struct eddy_ktxn_s;
void eddy__krp_share(eddy_krp_t *k, struct eddy_ktxn_s *txn);
/** repartition.error.timeout.ms: a partition whose consumer errors go on
 *  with no record of it for ms fails eddy__krp_poll() with
 *  EDDY_ERR_TRANSIENT (0: retried in place for ever). */
void eddy__krp_error_timeout(eddy_krp_t *k, int64_t ms);
/** Close the threads' clients (an open transaction aborted, what is
 *  queued dropped): eddy__krp_start() may follow, as after a recovery. */
void eddy__krp_stop(eddy_krp_t *k);
void eddy__krp_destroy(eddy_krp_t *k);
/** The topic of exchange x. */
const char *eddy__krp_topic(const eddy_krp_t *k, int x);

/** @brief Create the topics (when missing) and the clients of nthreads
 *         stream threads. Idempotent. */
eddy_err_t eddy__krp_start(eddy_krp_t *k, int nthreads, const char *instance, char *errstr,
                           size_t errstr_size);

/** Thread `thread` sends one message to partition `partition` of exchange
 *  x's topic (copied). Waits while the producer queue is full. */
eddy_err_t eddy__krp_send(eddy_krp_t *k, int thread, int x, int partition, const void *val,
                          size_t len);
/** Commit round: every message the thread sent is delivered (at least
 *  once). With a shared producer (eddy__krp_share, exactly once) only its
 *  failure is reported: the engine commits the transaction with the
 *  round's input offsets. Fails with the broker's reason. */
eddy_err_t eddy__krp_flush(eddy_krp_t *k, int thread, char *errstr, size_t errstr_size);

/** Assign (add) or unassign partition `partition` of every exchange topic
 *  to the thread's consumer; offsets[x] to start at (-1: the offset
 *  committed for the application, else the earliest). */
eddy_err_t eddy__krp_assign(eddy_krp_t *k, int thread, int partition, const int64_t *offsets,
                            bool add, char *errstr, size_t errstr_size);
/** Commit the offsets reached (after an acknowledged round): used when a
 *  task starts without state of its own. */
void eddy__krp_commit(eddy_krp_t *k, int thread, int partition, const int64_t *offsets);

typedef struct eddy_krp_msg_s {
    int x;              /* exchange */
    int partition;
    int64_t offset;
    const char *val;
    size_t len;
} eddy_krp_msg_t;

/** Up to max messages of the thread's consumer, without waiting; they stay
 *  valid until the thread's next poll. Returns the count, or -1 with the
 *  error in errstr and *err: EDDY_ERR_IO for a permanent consumer error,
 *  EDDY_ERR_TRANSIENT for a partition whose transient errors went on with
 *  no record for the error timeout (eddy__krp_error_timeout). */
int eddy__krp_poll(eddy_krp_t *k, int thread, eddy_krp_msg_t *out, int max, eddy_err_t *err,
                   char *errstr, size_t errstr_size);

#endif /* EDDY_CONNECTORS_KAFKA_REPARTITION_H */
