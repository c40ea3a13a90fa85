/*
 * Kafka source against the embedded cluster (librdkafka's mock cluster,
 * reached over TCP on 127.0.0.1): JSON records through a stateful
 * topology, poison records dead-lettered with topic/partition/offset,
 * restart resuming from the offsets stored with the state (no record
 * counted twice), and a rebalance between two members of one group
 * opening and closing tasks.
 */
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

#include "kafka_harness.h"

typedef struct {
    int64_t sum;
    int keys;
} agg_t;

static eddy_err_t sum_cb(const eddy_record_t *rec, void *opaque) {
    agg_t *a = opaque;
    a->keys++;
    int i = eddy_schema_field_index(rec->schema, "clicks");
    assert_true(i >= 0);
    a->sum += rec->values[i].u.i;
    return EDDY_OK;
}

static agg_t store_total(eddy_engine_t *e) {
    agg_t a = {0};
    char next[256];
    assert_int_equal(eddy_engine_query_scan(e, "per_user", NULL, 1000, sum_cb, &a, next,
                                            sizeof(next)),
                     EDDY_OK);
    return a;
}

static char *topology(const char *app, const char *dir, const char *topic, const char *out) {
    char *y = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&y, &n);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s', dead_letter: dlq}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "sources:\n"
            "  - name: clicks\n"
            "    type: kafka\n"
            "    topic: %s\n"
            "    partitions: 3\n"
            "    bounded: true\n"
            "    format: json\n"
            "    timestamp: ts\n"
            "    schema: {user: string, n: int, ts: int}\n"
            "pipelines:\n"
            "  - name: copy\n"
            "    from: clicks\n"
            "    steps: [{filter: 'n >= 0'}]\n"
            "    to: out\n"
            "  - name: counts\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - aggregate: {by: user, fields: {clicks: count()}, store: per_user}\n"
            "    to: none\n"
            "sinks:\n"
            "  - {name: out, type: file, path: '%s', append: true}\n"
            "  - {name: dlq, type: file, path: '%s.dlq', append: true}\n"
            "  - {name: none, type: blackhole}\n",
            app, dir, g_kafka_conf, topic, out, out);
    fclose(f);
    return y;
}

static void test_json_dead_letters_and_restart(void **st) {
    (void)st;
    char dir[] = "/tmp/eddy-kafka-src-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char out[300];
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    create_topic("clicks1", 3);
    char *y = topology("ksrc1", dir, "clicks1", out);
    eddy_engine_t *e = make(y); /* creates the topic (3 partitions) */
    produce_clicks("clicks1", 0, 3000, 100, 3);
    run_to_end(e, 60);
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, 3000);
    assert_int_equal(s.dead_lettered, 30);
    agg_t a = store_total(e);
    assert_int_equal(a.sum, 2970);
    assert_int_equal(a.keys, 17);
    destroy(e);
    assert_int_equal(count_lines(out, NULL), 2970);
    char dlq[320];
    snprintf(dlq, sizeof(dlq), "%s.dlq", out);
    assert_int_equal(count_lines(dlq, "topic clicks1 partition"), 30);

    /* more input; the restarted engine resumes from its stored offsets */
    produce_clicks("clicks1", 3000, 1500, 0, 3);
    e = make(y);
    run_to_end(e, 60);
    a = store_total(e);
    assert_int_equal(a.sum, 4470);
    destroy(e);
    assert_int_equal(count_lines(out, NULL), 4470);
    free(y);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int active_tasks(eddy_engine_t *e) {
    int n = 0;
    for (int t = 0; t < 3; t++)
        n += eddy__engine_task_active(e, t);
    return n;
}

static bool wait_for(eddy_engine_t *a, int na, eddy_engine_t *b, int nb, int timeout_s) {
    for (int i = 0; i < timeout_s * 20; i++) {
        if (active_tasks(a) == na && (!b || active_tasks(b) == nb))
            return true;
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

static void rebalance_two_members(const char *strategy, const char *topic) {
    char dir[] = "/tmp/eddy-kafka-reb-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char da[300], db[300], oa[300], ob[300];
    snprintf(da, sizeof(da), "%s/a", dir);
    snprintf(db, sizeof(db), "%s/b", dir);
    snprintf(oa, sizeof(oa), "%s/a.jsonl", dir);
    snprintf(ob, sizeof(ob), "%s/b.jsonl", dir);
    /* stateless (no key_by): members split the partitions */
    const char *fmt = "application: reb-%s\n"
                      "settings: {threads: 1, commit.interval.ms: 100, state.dir: '%s'}\n"
                      "kafka: {bootstrap.servers: '%s', session.timeout.ms: 6000,\n"
                      "        partition.assignment.strategy: %s}\n"
                      "sources:\n"
                      "  - {name: clicks, type: kafka, topic: %s, partitions: 3,\n"
                      "     format: json, schema: {user: string, n: int, ts: int}}\n"
                      "pipelines:\n"
                      "  - {name: copy, from: clicks, steps: [{filter: 'n >= 0'}], to: out}\n"
                      "sinks: [{name: out, type: file, path: '%s', append: true}]\n";
    char ya[2048], yb[2048];
    snprintf(ya, sizeof(ya), fmt, topic, da, g_kafka_conf, strategy, topic, oa);
    snprintf(yb, sizeof(yb), fmt, topic, db, g_kafka_conf, strategy, topic, ob);
    create_topic(topic, 3);
    eddy_engine_t *a = make(ya);
    assert_int_equal(eddy_engine_start(a), EDDY_OK);
    assert_true(wait_for(a, 3, NULL, 0, 30));
    produce_clicks(topic, 0, 600, 0, 3);
    eddy_engine_t *b = make(yb);
    assert_int_equal(eddy_engine_start(b), EDDY_OK);
    /* the group splits 3 partitions 2 + 1 (or 1 + 2) */
    bool split = false;
    for (int i = 0; i < 600 && !split; i++) {
        int x = active_tasks(a), z = active_tasks(b);
        split = x + z == 3 && x >= 1 && z >= 1;
        if (!split) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(split);
    produce_clicks(topic, 600, 600, 0, 3);
    /* every record reaches one of the members' outputs */
    int total = 0;
    for (int i = 0; i < 400 && total < 1200; i++) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        total = count_lines(oa, NULL) + count_lines(ob, NULL);
    }
    /* at-least-once across a rebalance: nothing lost */
    assert_true(total >= 1200);
    /* consumer lag per open partition: every partition caught up */
    bool caught_up = false;
    for (int i = 0; i < 100 && !caught_up; i++) {
        eddy_source_lag_t la[8], lb[8];
        int na = eddy_engine_source_lag(a, la, 8), nb = eddy_engine_source_lag(b, lb, 8);
        caught_up = na + nb == 3;
        for (int k = 0; k < na; k++)
            caught_up = caught_up && la[k].lag == 0 && la[k].position > 0 &&
                        !strcmp(la[k].topic, topic);
        for (int k = 0; k < nb; k++)
            caught_up = caught_up && lb[k].lag == 0 && lb[k].position > 0;
        if (!caught_up) {
            struct timespec ts = {0, 100000000};
            nanosleep(&ts, NULL);
        }
    }
    assert_true(caught_up);
    /* b leaves: a takes every partition back */
    eddy_engine_stop(b);
    assert_int_equal(eddy_engine_poll(b, 30000), EDDY_OK);
    destroy(b);
    assert_true(wait_for(a, 3, NULL, 0, 30));
    eddy_engine_stop(a);
    assert_int_equal(eddy_engine_poll(a, 30000), EDDY_OK);
    destroy(a);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* eager (range): everything revoked, then reassigned */
static void test_rebalance_two_members(void **st) {
    (void)st;
    rebalance_two_members("range", "clicks2");
}

/* incremental: only the partitions that move are revoked and assigned */
static void test_rebalance_cooperative(void **st) {
    (void)st;
    rebalance_two_members("cooperative-sticky", "clicks3");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_dead_letters_and_restart),
        cmocka_unit_test(test_rebalance_two_members),
        cmocka_unit_test(test_rebalance_cooperative),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
