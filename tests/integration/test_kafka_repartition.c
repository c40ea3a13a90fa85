/*
 * key_by through repartition topics (settings.repartition: kafka), on the
 * embedded cluster (or the broker named by EDDY_TEST_KAFKA):
 *  - one instance gives the same aggregate as the in-process exchange;
 *  - watermark-driven windows behind a repartition topic close while the
 *    input is still open, with one input partition idle;
 *  - transient fetch errors on the repartition topic are retried in place
 *    (exact state, no recovery); a permanent one stops the engine naming
 *    the topic and partition; transient ones that go on with no record
 *    for repartition.error.timeout.ms end in recoveries, then a stop;
 *  - two engines of one group share the tasks, and their state together
 *    equals a single instance's;
 *  - an `eddy run` killed with SIGKILL mid-stream and restarted ends with
 *    every key counted once (at least once and exactly once).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "connectors/kafka.h"
#include "connectors/kafka_changelog.h"
#include "connectors/kafka_repartition.h"
#include "kafka_harness.h"

/* engine/engine.c (internal) */
eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);

#define NKEYS 97

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* n JSON clicks {user: k<i % NKEYS>, n: i, ts} to the first `use` of the
 * topic's partitions; event time advances step_ms per record. */
static void produce_keyed(const char *topic, int first, int n, int use, int64_t t0,
                          int64_t step_ms) {
    rd_kafka_t *rk = producer();
    for (int i = first; i < first + n; i++) {
        char buf[256];
        int len = snprintf(buf, sizeof(buf), "{\"user\": \"k%d\", \"n\": %d, \"ts\": %lld}",
                           i % NKEYS, i, (long long)(t0 + (int64_t)i * step_ms));
        produce_one(rk, topic, i % use, buf, (size_t)len);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

/* A per-user aggregate (clicks, sum of n) behind a key_by. */
static char *agg_topology_at(const char *app, const char *dir, const char *state,
                             const char *bootstrap, const char *topic, const char *mode,
                             bool bounded, const char *extra) {
    char *y = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&y, &n);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s/state-%s',\n"
            "           repartition: %s%s}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "sources:\n"
            "  - name: clicks\n"
            "    type: kafka\n"
            "    topic: %s\n"
            "    bounded: %s\n"
            "    format: json\n"
            "    timestamp: ts\n"
            "    schema: {user: string, n: int, ts: int}\n"
            "pipelines:\n"
            "  - name: counts\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - aggregate: {by: user, fields: {clicks: count(), total: sum(n)},\n"
            "                    store: per_user}\n"
            "    to: none\n"
            "sinks:\n"
            "  - {name: none, type: blackhole}\n",
            app, dir, state, mode, extra ? extra : "", bootstrap, topic,
            bounded ? "true" : "false");
    fclose(f);
    return y;
}

static char *agg_topology(const char *app, const char *dir, const char *topic, const char *mode,
                          bool bounded, const char *extra) {
    return agg_topology_at(app, dir, app, g_kafka_conf, topic, mode, bounded, extra);
}

/* Per-key state: clicks and total of each of the NKEYS users. */
typedef struct {
    int64_t clicks[NKEYS], total[NKEYS];
    int rows;
} kstate_t;

static eddy_err_t kstate_cb(const eddy_record_t *rec, void *opaque) {
    kstate_t *k = opaque;
    int u = eddy_schema_field_index(rec->schema, "user");
    int c = eddy_schema_field_index(rec->schema, "clicks");
    int t = eddy_schema_field_index(rec->schema, "total");
    assert_true(u >= 0 && c >= 0 && t >= 0);
    int key = atoi(rec->values[u].u.s + 1);
    assert_true(key >= 0 && key < NKEYS);
    k->clicks[key] += rec->values[c].u.i;
    k->total[key] += rec->values[t].u.i;
    k->rows++;
    return EDDY_OK;
}

/* Adds what engine e holds to k (an engine sees its open tasks). */
static void kstate_add(eddy_engine_t *e, kstate_t *k) {
    char cursor[256] = "", next[256];
    do {
        assert_int_equal(eddy_engine_query_scan(e, "per_user", cursor, 500, kstate_cb, k, next,
                                                sizeof(next)),
                         EDDY_OK);
        snprintf(cursor, sizeof(cursor), "%s", next);
    } while (*cursor);
}

/* What n records from 0 make: clicks and totals per key. */
static void kstate_expect(kstate_t *k, int n) {
    memset(k, 0, sizeof(*k));
    for (int i = 0; i < n; i++) {
        k->clicks[i % NKEYS]++;
        k->total[i % NKEYS] += i;
    }
    k->rows = n < NKEYS ? n : NKEYS;
}

static void kstate_assert_equal(const kstate_t *want, const kstate_t *got) {
    for (int i = 0; i < NKEYS; i++)
        if (want->clicks[i] != got->clicks[i] || want->total[i] != got->total[i])
            fail_msg("key k%d: want clicks %lld total %lld, got clicks %lld total %lld", i,
                     (long long)want->clicks[i], (long long)want->total[i],
                     (long long)got->clicks[i], (long long)got->total[i]);
    assert_int_equal(want->rows, got->rows);
}

/* Engine e holds the state of n records from 0 and has read n; its stats. */
static eddy_stats_t assert_state_of(eddy_engine_t *e, int n) {
    kstate_t want, got;
    kstate_expect(&want, n);
    memset(&got, 0, sizeof(got));
    kstate_add(e, &got);
    kstate_assert_equal(&want, &got);
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, n);
    return s;
}

/* Records in every partition of the topic of exchange 0 (high watermarks). */
static int64_t repartition_records(eddy_engine_t *e) {
    eddy_plan_t *p = eddy__engine_plan(e);
    assert_non_null(p->krp);
    const char *topic = eddy__krp_topic(p->krp, 0);
    rd_kafka_t *rk = producer();
    int64_t total = 0;
    for (int i = 0; i < p->ntasks; i++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000), 0);
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    return total;
}

static char *scratch(void) {
    char *dir = strdup("/tmp/eddy-krp-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static char g_app[64];

/* A fresh application name per run (topics are named after it). */
static const char *app_name(const char *what) {
    snprintf(g_app, sizeof(g_app), "krp-%s-%d-%ld", what, (int)getpid(), (long)time(NULL));
    return g_app;
}

/* (1) One instance: repartition kafka gives the in-process result. */
static void test_same_as_in_process(void **st) {
    (void)st;
    char *dir = scratch();
    const int n = 20000;
    create_topic("krp-clicks1", 4);
    produce_keyed("krp-clicks1", 0, n, 4, 1700000000000LL, 1);
    const char *modes[] = {"local", "kafka"};
    for (int m = 0; m < 2; m++) {
        char *y = agg_topology(app_name(modes[m]), dir, "krp-clicks1", modes[m], true, NULL);
        eddy_engine_t *e = make(y);
        run_to_end(e, 120);
        assert_state_of(e, n);
        if (m == 1) {
            /* records for the three other tasks (3/4 of them, give or take
             * the hash) crossed the topic in bundles, many to a message,
             * with watermark markers */
            int64_t r = repartition_records(e);
            assert_true(r > 0 && r < n / 8);
        } else {
            assert_null(eddy__engine_plan(e)->krp);
        }
        destroy(e);
        free(y);
    }
    remove_dir(dir);
    free(dir);
}

/* Records in every partition of topic (high watermarks: the embedded
 * cluster writes no transaction markers). */
static int64_t topic_records(const char *topic, int parts) {
    rd_kafka_t *rk = producer();
    int64_t total = 0;
    for (int i = 0; i < parts; i++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, i, &lo, &hi, 10000), 0);
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    return total;
}

/* (1b) exactly_once: the two Kafka sinks and the repartition records of a
 * stream thread share one transactional producer, so a round commits one
 * transaction per thread that wrote something (not one per sink and one
 * for the repartition topic), each carrying the round's input offsets
 * once (no stores: the tasks resume from the group's offsets); a sink
 * with librdkafka properties of its own keeps a producer (and a
 * transaction) of its own. at_least_once begins no transaction. */
static void txn_round(const char *guarantee, const char *own, int64_t *rounds, uint64_t *begins,
                      uint64_t *commits, uint64_t *offsets) {
    char *dir = scratch();
    const int n = 4000;
    const char *app = app_name(own ? "txnown" : "txn");
    char in[96], out[96], raw[96];
    snprintf(in, sizeof(in), "%s-in", app);
    snprintf(out, sizeof(out), "%s-counts", app);
    snprintf(raw, sizeof(raw), "%s-raw", app);
    create_topic(in, 4);
    produce_keyed(in, 0, n, 4, 1700000000000LL, 1);
    char *y = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&y, &len);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s/state',\n"
            "           repartition: kafka, processing.guarantee: %s}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "sources:\n"
            "  - {name: clicks, type: kafka, topic: %s, bounded: true, format: json,\n"
            "     timestamp: ts, schema: {user: string, n: int, ts: int}}\n"
            "pipelines:\n"
            "  - {name: bykey, from: clicks, to: counts, steps: [{key_by: user}]}\n"
            "  - {name: copy, from: clicks, to: raw, steps: [{filter: 'n >= 0'}]}\n"
            "sinks:\n"
            "  - {name: counts, type: kafka, topic: %s, partitions: 2}\n"
            "  - {name: raw, type: kafka, topic: %s, partitions: 2%s}\n",
            app, dir, guarantee, g_kafka_conf, in, out, raw, own ? own : "");
    fclose(f);
    uint64_t b0, c0, o0;
    eddy__ktxn_counts(&b0, &c0, &o0);
    eddy_engine_t *e = make(y);
    run_to_end(e, 120);
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, n);
    *rounds = (int64_t)s.commits;
    destroy(e);
    eddy__ktxn_counts(begins, commits, offsets);
    *begins -= b0;
    *commits -= c0;
    *offsets -= o0;
    /* every input record written once by each sink */
    assert_int_equal(topic_records(raw, 2), n);
    assert_int_equal(topic_records(out, 2), n);
    free(y);
    remove_dir(dir);
    free(dir);
}

static void test_one_transaction_per_thread_and_round(void **st) {
    (void)st;
    int64_t rounds;
    uint64_t begins, commits, offsets;
    txn_round("exactly_once", NULL, &rounds, &begins, &commits, &offsets);
    print_message("exactly_once, shared: %lld rounds, %llu transactions, %llu offset sets\n",
                  (long long)rounds, (unsigned long long)commits, (unsigned long long)offsets);
    /* 2 threads: at most 2 transactions a round (3 producers a thread
     * made up to 6), every one begun was committed, offsets sent once */
    assert_true(commits >= 1);
    assert_true((int64_t)commits <= 2 * rounds);
    assert_int_equal(begins, commits);
    /* one set per transaction at most (one consumer group); a thread's
     * first transaction may hold only watermark markers, sent before its
     * tasks read any input (no offsets yet) */
    assert_true(offsets >= 1 && offsets <= commits);
    uint64_t shared_commits = commits;
    txn_round("exactly_once", ", kafka: {linger.ms: 7}", &rounds, &begins, &commits, &offsets);
    print_message("exactly_once, own producer for one sink: %lld rounds, %llu transactions\n",
                  (long long)rounds, (unsigned long long)commits);
    assert_true((int64_t)commits <= 4 * rounds);
    assert_true(commits > shared_commits);
    assert_int_equal(begins, commits);
    /* two producers a thread: the transactions carry the last acknowledged
     * offsets (docs/kafka.md), none before the first acknowledged round */
    assert_true(offsets <= commits);
    txn_round("at_least_once", NULL, &rounds, &begins, &commits, &offsets);
    assert_int_equal(begins, 0);
    assert_int_equal(commits, 0);
    assert_int_equal(offsets, 0);
}

/* A window topology for (4). */
static char *window_topology(const char *app, const char *dir, const char *topic,
                             const char *out, const char *mode) {
    char *y = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&y, &n);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s/state-%s',\n"
            "           repartition: %s}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "sources:\n"
            "  - name: clicks\n"
            "    type: kafka\n"
            "    topic: %s\n"
            "    format: json\n"
            "    timestamp: ts\n"
            "    watermark: {max_out_of_orderness: 0ms, idle_timeout: 3s}\n"
            "    schema: {user: string, n: int, ts: int}\n"
            "pipelines:\n"
            "  - name: win\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - window: {type: tumbling, size: 1s}\n"
            "        aggregate: {by: user, fields: {clicks: count()}}\n"
            "    to: out\n"
            "sinks:\n"
            "  - {name: out, type: file, path: '%s'}\n",
            app, dir, app, mode, g_kafka_conf, topic, out);
    fclose(f);
    return y;
}

/* Sum of "clicks" over the lines of a file of window results. */
static int64_t window_clicks(const char *path, int *lines) {
    FILE *f = fopen(path, "r");
    *lines = 0;
    if (!f)
        return 0;
    char line[1024];
    int64_t sum = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *c = strstr(line, "\"clicks\":");
        if (c) {
            sum += atoll(c + 9);
            (*lines)++;
        }
    }
    fclose(f);
    return sum;
}

/* (4) Windows behind a repartition topic close on watermarks that cross
 * it, while the input is open: 10 s of event time over 3 of 4 partitions
 * (the fourth is idle, and idleness crosses the topic too); every window
 * but the last closes. */
static void test_windows_close(void **st) {
    (void)st;
    char *dir = scratch();
    char out[300];
    snprintf(out, sizeof(out), "%s/windows.jsonl", dir);
    create_topic("krp-clicks4", 4);
    /* 10,000 records, 1 ms apart: windows [0,1s) .. [9s,10s) */
    const int n = 10000;
    int64_t t0 = 1700000000000LL; /* a multiple of 1 s */
    produce_keyed("krp-clicks4", 0, n, 3, t0, 1);
    char *y = window_topology(app_name("win"), dir, "krp-clicks4", out, "kafka");
    eddy_engine_t *e = make(y);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    /* the last window [9s, 10s) holds 1000 records and stays open */
    int lines = 0;
    int64_t sum = 0;
    for (int i = 0; i < 600 && sum < n - 1000; i++) {
        sleep_ms(100);
        sum = window_clicks(out, &lines);
    }
    assert_int_equal(eddy_engine_poll(e, 0), EDDY_ERR_TIMEOUT); /* still running */
    eddy_engine_stop(e);
    assert_int_equal(eddy_engine_poll(e, 30000), EDDY_OK);
    destroy(e);
    sum = window_clicks(out, &lines);
    assert_int_equal(sum, n - 1000);
    assert_int_equal(lines, 9 * NKEYS);
    free(y);
    remove_dir(dir);
    free(dir);
}

static int active_tasks(eddy_engine_t *e) {
    int n = 0;
    for (int t = 0; t < 4; t++)
        n += eddy__engine_task_active(e, t);
    return n;
}

/* (1b) Errors of the repartition consumer. Fetch errors are pushed on
 * broker 3 of the embedded cluster, made the leader of every partition of
 * the repartition topic and of nothing else the run reads (the input's
 * leaders are brokers 1 and 2, the sink is a blackhole). */
#define API_FETCH 1

static bool need_mock(const char *test) {
    if (!strcmp(g_kafka_conf, "embedded"))
        return true;
    print_message("skipped: %s needs the embedded cluster's controls\n", test);
    return false;
}

/* The per-user aggregate over topic, its repartition topic led by broker 3
 * (extra: more settings). */
static eddy_engine_t *fetch_fault_engine(const char *what, const char *dir, const char *topic,
                                         const char *extra) {
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    for (int p = 0; p < 4; p++)
        rd_kafka_mock_partition_set_leader(mc, topic, p, 1 + p % 2);
    char *y = agg_topology(app_name(what), dir, topic, "kafka", true, extra);
    eddy_engine_t *e = make(y);
    free(y);
    const char *rt = eddy__krp_topic(eddy__engine_plan(e)->krp, 0);
    create_topic(rt, 4);
    for (int p = 0; p < 4; p++)
        rd_kafka_mock_partition_set_leader(mc, rt, p, 3);
    return e;
}

/* Starts e and, once it has read input, queues n errors err for the next
 * Fetch requests to broker 3. */
static void start_then_fetch_errors(eddy_engine_t *e, int n, rd_kafka_resp_err_t err) {
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_stats_t s = {0};
    while (eddy_engine_poll(e, 1) == EDDY_ERR_TIMEOUT && s.events_in == 0)
        eddy_engine_stats(e, &s);
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    for (int i = 0; i < n; i++)
        rd_kafka_mock_broker_push_request_error_rtts(mc, 3, API_FETCH, 1, err, 0);
}

static size_t fetch_errors_left(void) {
    size_t left = 0;
    rd_kafka_mock_broker_error_stack_cnt(eddy__kafka_embedded_cluster(), 3, API_FETCH, &left);
    return left;
}

/* Transient fetch errors on the repartition topic (librdkafka hands them
 * to the application and fetches again from the same offset) are retried
 * in place: the run completes with the uninterrupted state, no record
 * lost or applied twice, and without a recovery. */
static void test_transient_fetch_errors_retried(void **st) {
    (void)st;
    if (!need_mock(__func__))
        skip();
    char *dir = scratch();
    const int n = 6000;
    create_topic("krp-fetcherr", 4);
    produce_keyed("krp-fetcherr", 0, n, 4, 1700000000000LL, 1);
    eddy_engine_t *e = fetch_fault_engine("fetcherr", dir, "krp-fetcherr", NULL);
    start_then_fetch_errors(e, 8, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    eddy_err_t r = eddy_engine_poll(e, 120000);
    if (r != EDDY_OK)
        fail_msg("engine: %s (%s)", eddy_err2str(r), eddy_engine_last_error(e));
    assert_int_equal(fetch_errors_left(), 0); /* every error reached a consumer */
    assert_int_equal(assert_state_of(e, n).recoveries, 0);
    destroy(e);
    remove_dir(dir);
    free(dir);
}

/* A permanent one (authorization refused) would come back: the engine
 * stops with EDDY_ERR_IO, naming the topic and the partition. */
static void test_permanent_fetch_error_stops(void **st) {
    (void)st;
    if (!need_mock(__func__))
        skip();
    char *dir = scratch();
    create_topic("krp-fetchauth", 4);
    produce_keyed("krp-fetchauth", 0, 2000, 4, 1700000000000LL, 1);
    eddy_engine_t *e = fetch_fault_engine("fetchauth", dir, "krp-fetchauth", NULL);
    start_then_fetch_errors(e, 1, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(eddy_engine_poll(e, 120000), EDDY_ERR_IO);
    const char *why = eddy_engine_last_error(e);
    char want[300];
    snprintf(want, sizeof(want), "repartition topic '%s' partition ",
             eddy__krp_topic(eddy__engine_plan(e)->krp, 0));
    if (!strstr(why, want) || !strstr(why, "uthorization"))
        fail_msg("the stop does not name the topic, partition and reason: %s", why);
    assert_int_equal(fetch_errors_left(), 0);
    destroy(e);
    remove_dir(dir);
    free(dir);
}

/* Fetches from broker 3 until its queued Fetch errors are used up (a
 * consumer that retries at once), so that later tests fetch normally. */
static void drain_fetch_errors(const char *topic) {
    static const char *const props[] = {"fetch.error.backoff.ms", "1", "fetch.wait.max.ms", "1",
                                        NULL};
    rd_kafka_t *rk = partition_consumer(topic, RD_KAFKA_OFFSET_END, "krp-drain", props);
    for (int i = 0; i < 6000 && fetch_errors_left() > 0; i++) { /* 1 min */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 10);
        if (m)
            rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    assert_int_equal(fetch_errors_left(), 0);
}

/* A transient error that does not heal (every Fetch from the repartition
 * topic's broker refused, as for an unknown partition or TLS refused for
 * good): after repartition.error.timeout.ms of errors with no record the
 * round fails as transient, the engine recovers in process and meets the
 * errors again, and its recovery streak ends in a stop naming the topic,
 * the partition and the error. It used to retry in place for ever (no
 * recovery, the engine never ending). */
static void test_persistent_fetch_errors_stop(void **st) {
    (void)st;
    if (!need_mock(__func__))
        skip();
    char *dir = scratch();
    create_topic("krp-fetchstuck", 4);
    produce_keyed("krp-fetchstuck", 0, 2000, 4, 1700000000000LL, 1);
    eddy_engine_t *e = fetch_fault_engine("fetchstuck", dir, "krp-fetchstuck",
                                          ", repartition.error.timeout.ms: 5s");
    char rt[200];
    snprintf(rt, sizeof(rt), "%s", eddy__krp_topic(eddy__engine_plan(e)->krp, 0));
    /* about 4 a second are used: more than the run takes */
    start_then_fetch_errors(e, 800, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    /* the first recovery within seconds */
    eddy_stats_t s = {0};
    for (int i = 0; i < 300 && !s.recoveries; i++) { /* 30 s */
        sleep_ms(100);
        eddy_engine_stats(e, &s);
    }
    if (!s.recoveries)
        fail_msg("no recovery 30 s after the repartition topic's fetches began to fail (engine: "
                 "%s)",
                 eddy_engine_poll(e, 0) == EDDY_ERR_TIMEOUT ? "running"
                                                            : eddy_engine_last_error(e));
    /* then a stop once the streak is over (backoffs 1+2+...+32 s) */
    eddy_err_t r = eddy_engine_poll(e, 180000);
    if (r != EDDY_ERR_TRANSIENT)
        fail_msg("engine: %s (%s)", eddy_err2str(r), eddy_engine_last_error(e));
    const char *why = eddy_engine_last_error(e);
    char want[300];
    snprintf(want, sizeof(want), "repartition topic '%s' partition ", rt);
    if (!strstr(why, want) || !strstr(why, "repartition.error.timeout.ms") ||
        !strstr(why, "imed out"))
        fail_msg("the stop does not name the topic, partition and error: %s", why);
    eddy_engine_stats(e, &s);
    assert_int_equal(s.recoveries, 6); /* the streak's limit */
    destroy(e);
    drain_fetch_errors(rt);
    remove_dir(dir);
    free(dir);
}

/* (2) Two engines of one group share the four tasks; records of one key
 * meet on one task whichever engine read them, so the state both hold
 * together is the single instance's, key for key. */
static void test_two_instances(void **st) {
    (void)st;
    char *dir = scratch();
    const int n = 30000;
    create_topic("krp-clicks2", 4);
    produce_keyed("krp-clicks2", 0, n / 2, 4, 1700000000000LL, 1);
    const char *app = app_name("two");
    char *ya = agg_topology_at(app, dir, "a", g_kafka_conf, "krp-clicks2", "kafka", false,
                               ", state.changelog: kafka");
    char *yb = agg_topology_at(app, dir, "b", g_kafka_conf, "krp-clicks2", "kafka", false,
                               ", state.changelog: kafka");
    eddy_engine_t *a = make(ya), *b = make(yb);
    assert_int_equal(eddy_engine_start(a), EDDY_OK);
    assert_int_equal(eddy_engine_start(b), EDDY_OK);
    kstate_t want, got;
    kstate_expect(&want, n);
    bool shared = false;
    for (int i = 0; i < 1200; i++) { /* 2 min */
        sleep_ms(100);
        int na = active_tasks(a), nb = active_tasks(b);
        if (!shared && na + nb == 4 && na > 0 && nb > 0) {
            shared = true; /* the second half while both run */
            produce_keyed("krp-clicks2", n / 2, n - n / 2, 4, 1700000000000LL, 1);
        }
        if (!shared)
            continue;
        memset(&got, 0, sizeof(got));
        kstate_add(a, &got);
        kstate_add(b, &got);
        int64_t c = 0;
        for (int k = 0; k < NKEYS; k++)
            c += got.clicks[k];
        if (c >= n && active_tasks(a) + active_tasks(b) == 4)
            break;
    }
    assert_true(shared);
    assert_int_equal(eddy_engine_poll(a, 0), EDDY_ERR_TIMEOUT);
    assert_int_equal(eddy_engine_poll(b, 0), EDDY_ERR_TIMEOUT);
    assert_int_equal(active_tasks(a) + active_tasks(b), 4);
    assert_true(active_tasks(a) > 0 && active_tasks(b) > 0);
    kstate_assert_equal(&want, &got);
    eddy_engine_stop(a);
    eddy_engine_stop(b);
    assert_int_equal(eddy_engine_poll(a, 30000), EDDY_OK);
    assert_int_equal(eddy_engine_poll(b, 30000), EDDY_OK);
    destroy(a);
    destroy(b);
    free(ya);
    free(yb);
    remove_dir(dir);
    free(dir);
}

/* (2b) The engine's own changelog producer (state.changelog: kafka; under
 * at_least_once it carries the commits) fails with a fatal idempotence
 * error (OUT_OF_ORDER_SEQUENCE_NUMBER pushed on its broker's Produce)
 * while standby copies (standby.replicas: 1, two engines: each keeps
 * copies of the other's tasks) hold changelog handles open. The engines
 * recover in process with a new producer and end with the whole input's
 * state, key for key; with the failed producer kept (the copies' handles
 * counted against its renewal) every recovery failed again until the
 * streak stopped the engine. Broker 3 leads the changelog topic and
 * nothing else (input and repartition topic on brokers 1 and 2). */
#define API_PRODUCE 0

static int standby_copies(const char *dir, const char *inst, const char *app) {
    int n = 0;
    for (int t = 0; t < 4; t++) {
        char path[800];
        snprintf(path, sizeof(path), "%s/state-%s/%s/standby-%d/db", dir, inst, app, t);
        n += access(path, F_OK) == 0;
    }
    return n;
}

static void test_changelog_producer_renewed_with_standby_copies(void **st) {
    (void)st;
    if (!need_mock(__func__))
        skip();
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    char *dir = scratch();
    const int n = 6000;
    create_topic("krp-sbrenew", 4);
    for (int p = 0; p < 4; p++)
        rd_kafka_mock_partition_set_leader(mc, "krp-sbrenew", p, 1 + p % 2);
    produce_keyed("krp-sbrenew", 0, n / 2, 4, 1700000000000LL, 1);
    const char *app = app_name("sbrenew");
    const char *extra = ", state.changelog: kafka, standby.replicas: 1";
    /* the leaders set before the engines' clients learn them */
    char rt[200];
    snprintf(rt, sizeof(rt), "%s-counts-1-key_by-repartition", app);
    char *ct = eddy__kafka_changelog_topic(app, "per_user");
    create_topic(rt, 4);
    create_topic(ct, 4);
    for (int p = 0; p < 4; p++) {
        rd_kafka_mock_partition_set_leader(mc, rt, p, 1 + p % 2);
        rd_kafka_mock_partition_set_leader(mc, ct, p, 3);
    }
    char *y[2];
    eddy_engine_t *e[2];
    for (int i = 0; i < 2; i++) {
        y[i] = agg_topology_at(app, dir, i ? "b" : "a", g_kafka_conf, "krp-sbrenew", "kafka", false,
                               extra);
        e[i] = make(y[i]);
    }
    assert_string_equal(eddy__krp_topic(eddy__engine_plan(e[0])->krp, 0), rt);
    for (int i = 0; i < 2; i++)
        assert_int_equal(eddy_engine_start(e[i]), EDDY_OK);
    /* both run tasks, and each holds copies of the other's */
    bool ready = false;
    for (int w = 0; w < 600 && !ready; w++) { /* 1 min */
        sleep_ms(100);
        int na = active_tasks(e[0]), nb = active_tasks(e[1]);
        ready = na + nb == 4 && na > 0 && nb > 0 && standby_copies(dir, "a", app) > 0 &&
                standby_copies(dir, "b", app) > 0;
    }
    if (!ready) {
        fail_msg("tasks %d + %d, standby copies %d + %d (%s; %s)", active_tasks(e[0]),
                 active_tasks(e[1]), standby_copies(dir, "a", app), standby_copies(dir, "b", app),
                 eddy_engine_last_error(e[0]), eddy_engine_last_error(e[1]));
    }
    for (int i = 0; i < 3; i++)
        rd_kafka_mock_broker_push_request_error_rtts(
            mc, 3, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, 0);
    produce_keyed("krp-sbrenew", n / 2, n - n / 2, 4, 1700000000000LL, 1);
    kstate_t want, got;
    kstate_expect(&want, n);
    uint64_t recoveries = 0;
    int64_t c = 0;
    size_t left = 1;
    bool done = false;
    for (int w = 0; w < 1200 && !done; w++) { /* 2 min */
        sleep_ms(100);
        for (int i = 0; i < 2; i++)
            if (eddy_engine_poll(e[i], 0) != EDDY_ERR_TIMEOUT)
                fail_msg("engine %c stopped: %s", 'a' + i, eddy_engine_last_error(e[i]));
        memset(&got, 0, sizeof(got));
        c = 0;
        for (int i = 0; i < 2; i++)
            kstate_add(e[i], &got);
        for (int k = 0; k < NKEYS; k++)
            c += got.clicks[k];
        rd_kafka_mock_broker_error_stack_cnt(mc, 3, API_PRODUCE, &left);
        recoveries = 0;
        for (int i = 0; i < 2; i++) {
            eddy_stats_t s;
            eddy_engine_stats(e[i], &s);
            recoveries += s.recoveries;
        }
        done = c >= n && !left && recoveries && active_tasks(e[0]) + active_tasks(e[1]) == 4;
    }
    if (!done)
        fail_msg("after 2 min: %lld of %d clicks counted, %zu Produce errors left, %llu "
                 "recoveries, tasks %d + %d",
                 (long long)c, n, left, (unsigned long long)recoveries, active_tasks(e[0]),
                 active_tasks(e[1]));
    print_message("changelog producer failure with standby copies: %llu recoveries\n",
                  (unsigned long long)recoveries);
    kstate_assert_equal(&want, &got);
    for (int i = 0; i < 2; i++) {
        eddy_engine_stop(e[i]);
        assert_int_equal(eddy_engine_poll(e[i], 30000), EDDY_OK);
        destroy(e[i]);
        free(y[i]);
    }
    eddy_free(ct);
    remove_dir(dir);
    free(dir);
}

static const char *g_eddy;

/* Sum of the offsets group `group` committed on the topic's partitions. */
static int64_t group_committed(const char *group, const char *topic, int parts) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    int64_t sum = 0;
    if (!rd_kafka_committed(rk, l, 10000))
        for (int p = 0; p < parts; p++)
            if (l->elems[p].offset > 0)
                sum += l->elems[p].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return sum;
}

static pid_t spawn_run(const char *yaml) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char log[600];
        snprintf(log, sizeof(log), "%s.log", yaml);
        if (!freopen("/dev/null", "w", stdout) || !freopen(log, "a", stderr))
            _exit(127);
        execl(g_eddy, g_eddy, "run", yaml, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* (3) `eddy run` killed with SIGKILL while records cross the repartition
 * topic, three times, then run to the end: every key counted exactly once
 * (the senders' replays are dropped by sequence, the state is restored
 * with its offsets). */
static void crash_restart(const char *guarantee) {
    const char *bin = getenv("EDDY_BIN_DIR");
    static char path[600];
    snprintf(path, sizeof(path), "%s/eddy", bin ? bin : ".");
    g_eddy = path;
    char *dir = scratch();
    char topic[80];
    snprintf(topic, sizeof(topic), "krp-crash-%s", guarantee);
    create_topic(topic, 3); /* not the embedded cluster's default of 4 */
    const char *app = app_name(guarantee);
    char extra[100];
    snprintf(extra, sizeof(extra), ", processing.guarantee: %s", guarantee);
    char *y = agg_topology_at(app, dir, "s", g_bootstrap, topic, "kafka", false, extra);
    char *yb = agg_topology_at(app, dir, "s", g_bootstrap, topic, "kafka", true, extra);
    char yaml[400];
    snprintf(yaml, sizeof(yaml), "%s/run.yaml", dir);
    FILE *f = fopen(yaml, "w");
    assert_non_null(f);
    fputs(y, f);
    fclose(f);
    srand((unsigned)getpid());
    const int chunk = 20000;
    int produced = 0;
    for (int round = 0; round < 3; round++) {
        pid_t pid = spawn_run(yaml);
        /* wait until it processes: the group's committed offsets grow
         * (asking about the repartition topic before the run made it
         * would make the embedded cluster create it with 4 partitions) */
        produce_keyed(topic, produced, 2000, 3, 1700000000000LL, 1);
        produced += 2000;
        int64_t c0 = group_committed(app, topic, 3), c = c0;
        /* (a killed member holds the group for session.timeout.ms) */
        for (int i = 0; i < 1200 && c <= c0; i++) {
            sleep_ms(50);
            c = group_committed(app, topic, 3);
        }
        if (c <= c0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("round %d: the run committed nothing", round);
        }
        /* more input, and a kill at a random moment while it is read */
        produce_keyed(topic, produced, chunk, 3, 1700000000000LL, 1);
        produced += chunk;
        sleep_ms(rand() % 400);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
    }
    /* the same topology, bounded, to the end */
    eddy_engine_t *e = make(yb);
    run_to_end(e, 300);
    kstate_t want, got;
    kstate_expect(&want, produced);
    memset(&got, 0, sizeof(got));
    kstate_add(e, &got);
    kstate_assert_equal(&want, &got);
    destroy(e);
    free(y);
    free(yb);
    remove_dir(dir);
    free(dir);
}

static void test_sigkill_at_least_once(void **st) {
    (void)st;
    crash_restart("at_least_once");
}

static void test_sigkill_exactly_once(void **st) {
    (void)st;
    crash_restart("exactly_once");
}

/* Throughput of the key_by aggregate, in-process exchange vs repartition
 * topic, on the cluster the test holds (embedded: its CPU is counted
 * too). Runs when EDDY_BENCH_REPARTITION=N (events) is set; prints one
 * line per mode. */
static void test_throughput(void **st) {
    (void)st;
    const char *env = getenv("EDDY_BENCH_REPARTITION");
    if (!env || atoi(env) <= 0) {
        fprintf(stderr, "throughput: skipped (set EDDY_BENCH_REPARTITION=events)\n");
        return;
    }
    int n = atoi(env);
    char *dir = scratch();
    create_topic("krp-bench", 4);
    produce_keyed("krp-bench", 0, n, 4, 1700000000000LL, 1);
    const char *modes[] = {"local", "kafka"};
    for (int m = 0; m < 2; m++) {
        char *y = agg_topology(app_name(modes[m]), dir, "krp-bench", modes[m], true,
                               ", batch.size: 4096");
        eddy_engine_t *e = make(y);
        struct timespec t0, t1, c0, c1;
        assert_int_equal(eddy_engine_start(e), EDDY_OK);
        /* from the first record read (the group join takes seconds) */
        eddy_stats_t s0 = {0};
        while (eddy_engine_poll(e, 1) == EDDY_ERR_TIMEOUT && s0.events_in == 0)
            eddy_engine_stats(e, &s0);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        assert_int_equal(eddy_engine_poll(e, 600000), EDDY_OK);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
        kstate_t want, got;
        kstate_expect(&want, n);
        memset(&got, 0, sizeof(got));
        kstate_add(e, &got);
        kstate_assert_equal(&want, &got);
        double ev = (double)(n - (int64_t)s0.events_in);
        fprintf(stderr,
                "throughput: repartition %-5s %.0f events in %.2f s, %.0f events/s, "
                "%.0f events/CPU-s\n",
                modes[m], ev, wall, ev / wall, ev / cpu);
        destroy(e);
        free(y);
    }
    remove_dir(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_in_process),
        cmocka_unit_test(test_one_transaction_per_thread_and_round),
        cmocka_unit_test(test_windows_close),
        cmocka_unit_test(test_transient_fetch_errors_retried),
        cmocka_unit_test(test_permanent_fetch_error_stops),
        cmocka_unit_test(test_persistent_fetch_errors_stop),
        cmocka_unit_test(test_two_instances),
        cmocka_unit_test(test_changelog_producer_renewed_with_standby_copies),
        cmocka_unit_test(test_sigkill_at_least_once),
        cmocka_unit_test(test_sigkill_exactly_once),
        cmocka_unit_test(test_throughput),
    };
    const char *only = getenv("EDDY_KRP_ONLY"); /* one test, e.g. test_two_instances */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, setup, teardown);
}
