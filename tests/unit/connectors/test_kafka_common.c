/*
 * The progress of a Kafka read (connectors/kafka_common.c), as the Kafka
 * changelog's reads measure it: by the consumer's fetch position, not by
 * records delivered. A read_committed consumer that fetches through a
 * large aborted transaction delivers nothing for as long as that takes
 * (the tail search for a commit marker did, and failed after 15 s); only
 * a read whose position stops moving is stalled.
 *
 *  - the decision: a read that delivers nothing for longer than the limit
 *    while its fetch position moves is not stalled; one whose position
 *    stops is, once the limit has passed since it last moved;
 *  - the fetch position comes from librdkafka's statistics: against the
 *    embedded cluster, a consumer that fetched records the application
 *    never took reports a fetch position past them.
 *
 * What the embedded cluster cannot show (it does not hide aborted
 * records) is a real read behind an aborted transaction: that path runs
 * only against a real broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "connectors/kafka.h"

#define SEC 1000000000LL
#define LIMIT (15 * SEC) /* the changelog reads' limit */

/* Records stop at offset 100; the consumer then fetches through 40 s of
 * records it never delivers (1,000 offsets a second): never stalled. Then
 * the position stops: stalled only once 15 s have passed since it moved. */
static void read_that_fetches_without_records_is_not_stalled(void **st) {
    (void)st;
    eddy_kprogress_t p;
    int64_t t0 = 5 * SEC;
    eddy__kprogress_start(&p, 0, t0);
    int64_t delivered = 100, fetched = 100;
    int64_t t = t0;
    for (int s = 1; s <= 40; s++) {
        t = t0 + s * SEC;
        fetched += 1000;
        assert_false(eddy__kprogress_stalled(&p, delivered, fetched, t, LIMIT));
    }
    assert_int_equal(p.fetched, 40100);
    /* stopped at t: not stalled at the limit, stalled past it */
    assert_false(eddy__kprogress_stalled(&p, delivered, fetched, t + LIMIT, LIMIT));
    assert_true(eddy__kprogress_stalled(&p, delivered, fetched, t + LIMIT + 1, LIMIT));
}

/* No record and no fetch (a broker that stopped answering): stalled past
 * the limit, as before; a record delivered late restarts the clock. */
static void read_without_records_or_fetching_stalls(void **st) {
    (void)st;
    eddy_kprogress_t p;
    eddy__kprogress_start(&p, 500, 0);
    assert_false(eddy__kprogress_stalled(&p, 500, -1, 10 * SEC, LIMIT));
    assert_false(eddy__kprogress_stalled(&p, 501, -1, 14 * SEC, LIMIT)); /* a record */
    assert_false(eddy__kprogress_stalled(&p, 501, 501, 29 * SEC, LIMIT));
    assert_true(eddy__kprogress_stalled(&p, 501, 501, 29 * SEC + 1, LIMIT));
    /* an older position (statistics from before the read) is no progress */
    eddy__kprogress_start(&p, 500, 0);
    assert_true(eddy__kprogress_stalled(&p, 500, 20, LIMIT + 1, LIMIT));
}

/* The fetch position at the end of the log at once (the consumer fetched
 * ahead) while the records already fetched are delivered slowly, one
 * every 10 s (a restore whose writes stall): each record is progress, so
 * a minute of it never stalls; once they stop, 15 s later it does. */
static void records_delivered_behind_the_fetch_position_are_progress(void **st) {
    (void)st;
    eddy_kprogress_t p;
    eddy__kprogress_start(&p, 0, 0);
    int64_t t = 0;
    for (int s = 1; s <= 6; s++) {
        t = s * 10 * SEC;
        assert_false(eddy__kprogress_stalled(&p, s, 100000, t, LIMIT));
    }
    assert_false(eddy__kprogress_stalled(&p, 6, 100000, t + LIMIT, LIMIT));
    assert_true(eddy__kprogress_stalled(&p, 6, 100000, t + LIMIT + 1, LIMIT));
}

static void fetch_position_of_a_document(void **st) {
    (void)st;
    const char *json = "{\"name\": \"c\", \"topics\": {\"t\": {\"topic\": \"t\", \"partitions\": "
                       "{\"0\": {\"partition\": 0, \"next_offset\": 7, \"app_offset\": 3}, "
                       "\"1\": {\"partition\": 1, \"next_offset\": 99}}}}}";
    assert_int_equal(eddy__kstats_fetch_pos(json, strlen(json), "t", 0), 7);
    assert_int_equal(eddy__kstats_fetch_pos(json, strlen(json), "t", 1), 99);
    assert_int_equal(eddy__kstats_fetch_pos(json, strlen(json), "t", 2), -1);
    assert_int_equal(eddy__kstats_fetch_pos(json, strlen(json), "u", 0), -1);
    assert_int_equal(eddy__kstats_fetch_pos("{not json", 9, "t", 0), -1);
}

/* ------------------------------------------ librdkafka's statistics */

typedef struct {
    const char *topic;
    int64_t pos; /* the last statistics' fetch position */
} stats_t;

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    stats_t *s = opaque;
    s->pos = eddy__kstats_fetch_pos(json, len, s->topic, 0);
    return 0;
}

/* A consumer fetches 1,000 records the application never takes (as a
 * read_committed consumer skips aborted ones): its statistics say its
 * fetch position is past them, at the partition's end. */
static void statistics_give_the_fetch_position_past_records_not_delivered(void **st) {
    (void)st;
    char bootstrap[512], err[512];
    assert_int_equal(eddy__kafka_embedded_acquire(bootstrap, sizeof(bootstrap), err, sizeof(err)),
                     EDDY_OK);
    const char *topic = "kcommon-fetchpos";
    assert_int_equal(eddy__kafka_embedded_topic(topic, 1, err, sizeof(err)), EDDY_OK);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(prod);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_VALUE("record", 6),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    assert_int_equal(rd_kafka_flush(prod, 30000), 0);
    rd_kafka_destroy(prod);

    stats_t s = {.topic = topic, .pos = -1};
    conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "statistics.interval.ms", "100", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "10", NULL, 0);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    rd_kafka_conf_set_opaque(conf, &s);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    assert_int_equal(rd_kafka_consume_start(rkt, 0, 0), 0);
    /* the application takes nothing: only the statistics are served */
    for (int i = 0; i < 100 && s.pos < 1000; i++) /* 10 s */
        rd_kafka_poll(rk, 100);
    rd_kafka_consume_stop(rkt, 0);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    eddy__kafka_embedded_release();
    assert_int_equal(s.pos, 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(read_that_fetches_without_records_is_not_stalled),
        cmocka_unit_test(read_without_records_or_fetching_stalls),
        cmocka_unit_test(records_delivered_behind_the_fetch_position_are_progress),
        cmocka_unit_test(fetch_position_of_a_document),
        cmocka_unit_test(statistics_give_the_fetch_position_past_records_not_delivered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
