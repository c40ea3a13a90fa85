/*
 * Broker faults on the librdkafka mock cluster, shared by the fault suite
 * (faults_harness.h) and the soak (bench/soak.c): request keys, a silent
 * broker, queued request errors, coordinators moved, and healing all of it;
 * and the click records both produce and check.
 * Header-only (static inline functions).
 */
#ifndef EDDY_TESTS_MOCK_FAULTS_H
#define EDDY_TESTS_MOCK_FAULTS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* librdkafka's request keys (rdkafka_protocol.h is not installed) */
enum {
    API_PRODUCE = 0,
    API_FETCH = 1,
    API_OFFSET_COMMIT = 8,
    API_FIND_COORDINATOR = 10,
    API_HEARTBEAT = 12,
    API_INIT_PRODUCER_ID = 22,
    API_ADD_PARTITIONS_TO_TXN = 24,
    API_ADD_OFFSETS_TO_TXN = 25,
    API_END_TXN = 26,
    API_TXN_OFFSET_COMMIT = 28,
};

/* A broker "down": its answers held back 3 s (silent, not refusing
 * connections). rd_kafka_mock_broker_set_up() of librdkafka 2.0.2 rebinds
 * the old port and asserts when that fails, which it does while closed
 * connections' TIME_WAIT holds the port (docs/reliability.md). */
static inline void mock_broker_silent(rd_kafka_mock_cluster_t *mc, int broker, bool silent) {
    rd_kafka_mock_broker_set_rtt(mc, broker, silent ? 3000 : 0);
}

/* count errors err queued for the next requests of api (any client) */
static inline void mock_push_errors(rd_kafka_mock_cluster_t *mc, int api, int count,
                                    rd_kafka_resp_err_t err) {
    rd_kafka_resp_err_t errs[64];
    if (count > 64)
        count = 64;
    for (int i = 0; i < count; i++)
        errs[i] = err;
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)count, errs);
}

/* Every broker (1..3) answering at once and no request error left queued. */
static inline void mock_heal_all(rd_kafka_mock_cluster_t *mc) {
    for (int b = 1; b <= 3; b++)
        rd_kafka_mock_broker_set_rtt(mc, b, 0);
    static const int apis[] = {API_PRODUCE,
                               API_FETCH,
                               API_OFFSET_COMMIT,
                               API_FIND_COORDINATOR,
                               API_HEARTBEAT,
                               API_INIT_PRODUCER_ID,
                               API_ADD_PARTITIONS_TO_TXN,
                               API_ADD_OFFSETS_TO_TXN,
                               API_END_TXN,
                               API_TXN_OFFSET_COMMIT};
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        rd_kafka_mock_clear_request_errors(mc, (int16_t)apis[i]);
}

/* The group coordinator of application app (its source group and
 * `<app>-repartition`) and the transaction coordinator of each of its
 * transactional ids (`<app>-<sink>[-<instance>]-<thread>`, sinks[] and
 * "txn" for the shared producers,
 * threads 0..threads-1; instance NULL: none) moved to broker. */
static inline void mock_move_coordinators(rd_kafka_mock_cluster_t *mc, const char *app,
                                          const char *instance, const char *const *sinks,
                                          int nsinks, int threads, int broker) {
    char key[512];
    rd_kafka_mock_coordinator_set(mc, "group", app, broker);
    snprintf(key, sizeof(key), "%s-repartition", app);
    rd_kafka_mock_coordinator_set(mc, "group", key, broker);
    for (int s = 0; s < nsinks; s++)
        for (int t = 0; t < threads; t++) {
            if (instance)
                snprintf(key, sizeof(key), "%s-%s-%s-%d", app, sinks[s], instance, t);
            else
                snprintf(key, sizeof(key), "%s-%s-%d", app, sinks[s], t);
            rd_kafka_mock_coordinator_set(mc, "transaction", key, broker);
        }
}

/* ---- the click records both write and check: record n is
 * {"user": "u<n % USERS>", "n": n, ..., "ts": T0 + n} on partition n % PARTS
 * (so n names its source offset n / PARTS), and the window results are
 * per (user, WINDOW_MS tumbling window). */
#define PARTS 3
#define USERS 17
#define T0 1700000000000LL
#define WINDOW_MS 2000

/* the index of (user, window start) from the first window on */
static inline int win_index(long user, long start) {
    return (int)(((start - (T0 / WINDOW_MS) * WINDOW_MS) / WINDOW_MS) * USERS + user);
}

/* the number of the "user": "u<number>" field of a JSON text (-1 if none) */
static inline long json_user(const char *p, size_t len) {
    const char *u = memmem(p, len, "\"user\":", 7);
    if (!u)
        return -1;
    u += 7;
    while (u < p + len && (*u == ' ' || *u == '"'))
        u++;
    return u < p + len && *u == 'u' ? strtol(u + 1, NULL, 10) : -1;
}

/* The integer after "field": in a JSON text of len bytes (-1 if none). */
static inline long json_int(const char *p, size_t len, const char *field) {
    char key[64];
    snprintf(key, sizeof(key), "\"%s\":", field);
    const char *end = p + len;
    size_t klen = strlen(key);
    for (const char *q = p; q + klen < end; q++)
        if (!memcmp(q, key, klen))
            return strtol(q + klen, NULL, 10);
    return -1;
}

#endif /* EDDY_TESTS_MOCK_FAULTS_H */
