/*
 * The stream threads' shared transactional producers (exactly_once): one
 * librdkafka producer per stream thread, transactional.id
 * `<application>-txn-<instance>-<thread>`, that carries the thread's Kafka
 * sink records (sinks whose librdkafka properties equal the shared ones)
 * and its repartition records, so that one transaction per thread and
 * commit round holds all of them and the round's input offsets
 * (docs/kafka.md, "Delivery guarantees"). Internal API; the engine sees
 * only this header, connectors/kafka.h has the producer itself.
 */
#ifndef EDDY_CONNECTORS_KAFKA_TXN_H
#define EDDY_CONNECTORS_KAFKA_TXN_H

#include "eddy_int.h"

typedef struct eddy_ktxn_s eddy_ktxn_t;
struct eddy_ktxo_s; /* connectors/kafka.h */
struct eddy_plan_s;

/**
 * @brief The service of one engine, made while compiling (no connection:
 *        each thread's producer is opened by its first user).
 * @param kafka the topology's top-level `kafka:` map (NULL: the embedded
 *        cluster), over the sink's producer defaults.
 * @returns NULL with the reason (a property librdkafka refuses).
 */
eddy_ktxn_t *eddy__ktxn_new(const eddy_cnode_t *kafka, const struct eddy_plan_s *plan,
                            char *errstr, size_t errstr_size);
/** Close every thread's producer (an open transaction aborted, what is
 *  queued purged): its users have let go of it (tasks closed, the
 *  repartition clients stopped); a later user opens a new one (a new
 *  epoch), as after an in-process recovery. */
void eddy__ktxn_stop(eddy_ktxn_t *k);
void eddy__ktxn_destroy(eddy_ktxn_t *k);

/**
 * @brief Commit round, deliver phase: commit thread `thread`'s open
 *        transaction (if it has one: the thread wrote something since the
 *        last round) with the round's input offsets (NULL or empty: none).
 * @returns EDDY_OK; EDDY_ERR_TRANSIENT (a new producer and a replay may
 *          clear it: the engine recovers in process) or EDDY_ERR_IO, with
 *          the first failure of the producer in errstr ("delivery to topic
 *          'out' partition 2 failed: ...", "commit_transaction: ...").
 */
eddy_err_t eddy__ktxn_commit(eddy_ktxn_t *k, int thread, const struct eddy_ktxo_s *offsets,
                             char *errstr, size_t errstr_size);

/**
 * @brief Fence transactional id `thread` of this instance without keeping
 *        a producer: init_transactions on it (it returns once the id's
 *        last transaction, perhaps a dead process's, has completed), then
 *        close. For the ids of threads a former run of the state
 *        directory had and this one has not.
 * @returns EDDY_OK; EDDY_ERR_TRANSIENT (worth another try), EDDY_ERR_IO
 *          or EDDY_ERR_CONFIG, errstr naming the transactional id.
 */
eddy_err_t eddy__ktxn_fence(eddy_ktxn_t *k, int thread, char *errstr, size_t errstr_size);
/** The shared producers' transaction.timeout.ms (librdkafka's default
 *  60000 when the `kafka:` map does not set it). */
int64_t eddy__ktxn_timeout_ms(const eddy_ktxn_t *k);

#endif /* EDDY_CONNECTORS_KAFKA_TXN_H */
