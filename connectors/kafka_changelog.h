/*
 * The Kafka changelog (state.changelog: kafka): one compacted topic per
 * store, `<application>-<store>-changelog`, partition = task. Internal API;
 * the design is in docs/state.md ("Kafka changelog") and at the top of
 * connectors/kafka_changelog.c.
 */
#ifndef EDDY_CONNECTORS_KAFKA_CHANGELOG_H
#define EDDY_CONNECTORS_KAFKA_CHANGELOG_H

#include "eddy_int.h"
#include "state/changelog.h"

/**
 * @brief The remote changelog service of one engine.
 * @param kafka the topology's top-level `kafka:` map (librdkafka properties,
 *        each checked here: a misspelt one is an error at its file:line:col).
 * @param stores names of the stores, in the order tasks open them.
 * @param partitions the task count (every topic gets that many partitions).
 * @returns NULL with the reason. Makes no connection: setup() does.
 * @remark The caller owns the result (eddy__cl_remote_destroy()).
 */
eddy_cl_remote_t *eddy__kafka_changelog_new(const eddy_cnode_t *kafka, const char *application,
                                            const char *const *stores, int nstores,
                                            int partitions, char *errstr, size_t errstr_size);

/**
 * @brief exactly_once: every commit's records and marker go into the open
 *        transaction of the task's stream thread (task % nthreads), whose
 *        shared producer (connectors/kafka_txn.h) the engine commits after
 *        the prepare; resyncs and seeds keep the remote's own idempotent
 *        producer. Call before any task opens.
 */
struct eddy_ktxn_s;
void eddy__kafka_changelog_share(eddy_cl_remote_t *r, struct eddy_ktxn_s *txn, int nthreads);

/** @brief `<application>-<store>-changelog`; the caller frees it. */
char *eddy__kafka_changelog_topic(const char *application, const char *store);

/** The key of commit markers (13 bytes: 0xff 0xff "eddy.commit"): no
 *  store key can equal it (docs/state.md). */
#define EDDY_KCL_MARKER_KEY "\xff\xff" \
                            "eddy.commit"
#define EDDY_KCL_MARKER_KEY_LEN 13

#endif /* EDDY_CONNECTORS_KAFKA_CHANGELOG_H */
