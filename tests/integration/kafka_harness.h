/*
 * Shared by the Kafka integration tests: the broker (the embedded mock
 * cluster, held by the test so it outlives engines and child processes, or
 * the real broker named by EDDY_TEST_KAFKA=host:port), a producer, JSON
 * click records, line counting, and engines made in-process from YAML.
 */
#ifndef EDDY_TESTS_KAFKA_HARNESS_H
#define EDDY_TESTS_KAFKA_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectors/kafka.h"
#include "eddy.h"
#include "plan.h"

#include <librdkafka/rdkafka_mock.h>

static char g_bootstrap[512];

/* the bootstrap.servers value topologies use: "embedded" or the broker */
static const char *g_kafka_conf;

static int setup(void **st) {
    (void)st;
    const char *real = getenv("EDDY_TEST_KAFKA");
    if (real && *real) {
        snprintf(g_bootstrap, sizeof(g_bootstrap), "%s", real);
        g_kafka_conf = g_bootstrap;
        fprintf(stderr, "kafka tests: against the broker at %s (EDDY_TEST_KAFKA)\n", real);
        return 0;
    }
    char err[512];
    /* the test holds the cluster across engines, as a broker outlives apps */
    assert_int_equal(eddy__kafka_embedded_acquire(g_bootstrap, sizeof(g_bootstrap), err,
                                                  sizeof(err)),
                     EDDY_OK);
    g_kafka_conf = "embedded";
    return 0;
}

static int teardown(void **st) {
    (void)st;
    if (!strcmp(g_kafka_conf, "embedded"))
        eddy__kafka_embedded_release();
    return 0;
}

/* Create a topic (embedded: the mock's own call; a real broker: the
 * Admin API). */
static inline void create_topic(const char *topic, int partitions) {
    char err[512];
    if (!strcmp(g_kafka_conf, "embedded")) {
        assert_int_equal(eddy__kafka_embedded_topic(topic, partitions, err, sizeof(err)), EDDY_OK);
        return;
    }
    eddy_kprops_t p = {0};
    eddy__kprops_set(&p, "bootstrap.servers", g_bootstrap);
    if (eddy__kafka_create_topic(&p, topic, partitions, NULL, 30000, err, sizeof(err)))
        fail_msg("%s", err);
    eddy__kprops_free(&p);
}

static inline rd_kafka_t *producer(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "linger.ms", "5", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    return rk;
}

/* A consumer of group `group` assigned partition 0 of topic from offset;
 * props: more properties, NULL-ended key, value pairs (or NULL). */
static inline rd_kafka_t *partition_consumer(const char *topic, int64_t offset, const char *group,
                                             const char *const *props) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    for (int i = 0; props && props[i]; i += 2)
        if (rd_kafka_conf_set(conf, props[i], props[i + 1], err, sizeof(err)))
            fail_msg("%s: %s", props[i], err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = offset;
    assert_int_equal(rd_kafka_assign(rk, tp), 0);
    rd_kafka_topic_partition_list_destroy(tp);
    return rk;
}

/* One record to a partition, waiting while the producer queue is full. */
static inline void produce_one(rd_kafka_t *rk, const char *topic, int partition, const char *buf,
                               size_t len) {
    rd_kafka_resp_err_t e;
    do {
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                              RD_KAFKA_V_VALUE((void *)buf, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    assert_int_equal(e, 0);
}

/* n JSON clicks {user, n, ts} to topic; every poison-th is not JSON. */
static inline void produce_clicks(const char *topic, int first, int n, int poison,
                                  int partitions) {
    rd_kafka_t *rk = producer();
    for (int i = first; i < first + n; i++) {
        char buf[256];
        int len;
        if (poison && i % poison == poison - 1)
            len = snprintf(buf, sizeof(buf), "{not json %d", i);
        else
            len = snprintf(buf, sizeof(buf), "{\"user\": \"u%d\", \"n\": %d, \"ts\": %lld}",
                           i % 17, i, 1700000000000LL + i);
        produce_one(rk, topic, i % partitions, buf, (size_t)len);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

/* Every message of partitions 0 .. nparts-1 of topic from the start
 * (read_committed on a real broker; the embedded cluster does not isolate
 * aborted transactions), one callback each; tombstones are skipped. */
static inline void read_partitions(const char *topic, int nparts,
                                   void (*cb)(const char *, size_t, void *), void *opaque) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "eddy-test-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, tp), 0);
    rd_kafka_topic_partition_list_destroy(tp);
    time_t until = time(NULL) + 60;
    for (int eof = 0; eof < nparts;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (!m) {
            if (time(NULL) > until)
                fail_msg("reading %s: no end of partition within 60 s", topic);
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            eof++;
        else if (m->err)
            fail_msg("reading %s: %s", topic, rd_kafka_message_errstr(m));
        else if (m->payload)
            cb(m->payload, m->len, opaque);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* rm -rf dir (a test's scratch directory); says so when it cannot. */
static inline void remove_dir(const char *dir) {
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static inline int count_lines(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (!needle || strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* Engines made here and their topologies (the host owns a topology); the
 * helpers are inline so that a test without in-process engines need not
 * use them. */
static struct {
    eddy_engine_t *e;
    eddy_topology_t *t;
} g_made[8];

static inline void destroy(eddy_engine_t *e) {
    eddy_engine_destroy(e);
    for (int i = 0; i < 8; i++)
        if (g_made[i].e == e) {
            eddy_topology_destroy(g_made[i].t);
            g_made[i].e = NULL;
        }
}

/* NULL with the reason in err when the topology or the engine fails. */
static inline eddy_engine_t *try_make(const char *yaml, char *err, size_t errsize) {
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "test.yaml", err, errsize);
    if (!t)
        return NULL;
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, errsize);
    if (!e) {
        eddy_topology_destroy(t);
        return NULL;
    }
    for (int i = 0; i < 8; i++)
        if (!g_made[i].e) {
            g_made[i].e = e;
            g_made[i].t = t;
            break;
        }
    return e;
}

static inline eddy_engine_t *make(const char *yaml) {
    char err[1024];
    eddy_engine_t *e = try_make(yaml, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    return e;
}

static inline void run_to_end(eddy_engine_t *e, int timeout_s) {
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_err_t r = eddy_engine_poll(e, timeout_s * 1000);
    if (r != EDDY_OK)
        fail_msg("engine: %s (%s)", eddy_err2str(r), eddy_engine_last_error(e));
}

#endif /* EDDY_TESTS_KAFKA_HARNESS_H */
