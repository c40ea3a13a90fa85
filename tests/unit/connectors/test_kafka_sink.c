/*
 * Kafka sink through the public API against the embedded cluster
 * (librdkafka's mock cluster over real TCP on 127.0.0.1): each test runs a
 * topology to its end, then reads the topic back with a plain librdkafka
 * consumer and checks what a user would see: every record exactly once,
 * JSON content, keys (murmur2-partitioned like the Java client), headers,
 * Avro read back with Avro C's reader, dead letters with their original
 * bytes, transactional output, failures that stop the engine with the
 * reason, and config errors with their file:line:col.
 *
 * The suite holds one reference to the embedded cluster for its whole run,
 * so topics survive the engines that wrote them; every test uses its own
 * topic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <avro.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/avro_write.h"
#include "connectors/kafka.h"
#include "eddy.h"
#include "tests/unit/connectors/sr_server.h"

#include <librdkafka/rdkafka_mock.h>

static char bootstrap[512];

/* Kafka protocol API keys (librdkafka keeps its names internal) */
enum { API_PRODUCE = 0, API_END_TXN = 26 };

/* ------------------------------------------------------------ helpers */

/* A topology from YAML text made by printf (file name "t.yaml"). */
static eddy_topology_t *topology(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static eddy_topology_t *topology(const char *fmt, ...) {
    char yaml[4096], err[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && n < (int)sizeof(yaml));
    eddy_topology_t *t = eddy_topology_load_string(yaml, (size_t)n, "t.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s in:\n%s", err, yaml);
    return t;
}

static eddy_engine_t *engine(eddy_topology_t *t) {
    char err[2048];
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("engine_new failed: %s", err);
    return e;
}

/* Run an engine to its end; returns what poll returned. */
static eddy_err_t run_to_end(eddy_engine_t *e) {
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    return eddy_engine_poll(e, 20000);
}

/* JSON lines of the records a callback sink saw. */
typedef struct {
    pthread_mutex_t lock;
    int n, cap;
    char **lines;
} seen_t;

static eddy_err_t seen_cb(const eddy_record_t *rec, void *opaque) {
    seen_t *s = opaque;
    size_t need = eddy_record_to_json(rec, NULL, 0) + 1;
    char *line = malloc(need);
    eddy_record_to_json(rec, line, need);
    pthread_mutex_lock(&s->lock);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->lines = realloc(s->lines, sizeof(char *) * (size_t)s->cap);
    }
    s->lines[s->n++] = line;
    pthread_mutex_unlock(&s->lock);
    return EDDY_OK;
}

static void seen_free(seen_t *s) {
    for (int i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
}

/* One consumed message, owned. */
typedef struct {
    char *key, *val;
    size_t klen, vlen;
    int32_t partition;
    int64_t offset, ts_ms;
    rd_kafka_headers_t *hdrs;
} kmsg_t;

typedef struct {
    kmsg_t *m;
    int n;
    int partitions;
} topic_t;

static char *dup_bytes(const void *p, size_t n) {
    if (!p)
        return NULL;
    char *d = malloc(n + 1);
    memcpy(d, p, n);
    d[n] = 0;
    return d;
}

static rd_kafka_t *consumer(const char *isolation) {
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {{"bootstrap.servers", bootstrap},
                           {"group.id", "eddy-test-reader"},
                           {"enable.partition.eof", "true"},
                           {"enable.auto.commit", "false"},
                           {"isolation.level", isolation}};
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], err, sizeof(err)))
            fail_msg("%s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk)
        fail_msg("%s", err);
    return rk;
}

/* Everything in topic, from the beginning of every partition to its end. */
static topic_t read_topic(const char *topic, const char *isolation) {
    topic_t out = {0};
    rd_kafka_t *rk = consumer(isolation);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topic_cnt, 1);
    assert_int_equal(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    out.partitions = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(out.partitions);
    for (int p = 0; p < out.partitions; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
    int eof = 0, cap = 0;
    for (int polls = 0; eof < out.partitions && polls < 200;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            polls++;
            continue;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            eof++;
        } else if (m->err) {
            fail_msg("consume %s: %s", topic, rd_kafka_message_errstr(m));
        } else {
            if (out.n == cap) {
                cap = cap ? 2 * cap : 256;
                out.m = realloc(out.m, sizeof(kmsg_t) * (size_t)cap);
            }
            kmsg_t *k = &out.m[out.n++];
            memset(k, 0, sizeof(*k));
            k->key = dup_bytes(m->key, m->key_len);
            k->klen = m->key_len;
            k->val = dup_bytes(m->payload, m->len);
            k->vlen = m->len;
            k->partition = m->partition;
            k->offset = m->offset;
            k->ts_ms = rd_kafka_message_timestamp(m, NULL);
            rd_kafka_message_detach_headers(m, &k->hdrs);
        }
        rd_kafka_message_destroy(m);
    }
    assert_int_equal(eof, out.partitions);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return out;
}

static void topic_free(topic_t *t) {
    for (int i = 0; i < t->n; i++) {
        free(t->m[i].key);
        free(t->m[i].val);
        if (t->m[i].hdrs)
            rd_kafka_headers_destroy(t->m[i].hdrs);
    }
    free(t->m);
}

/* A header's value as a string ("" when absent, "(null)" when null). */
static const char *header(const kmsg_t *k, const char *name, char *buf, size_t size) {
    const void *v;
    size_t n;
    buf[0] = 0;
    if (!k->hdrs || rd_kafka_header_get_last(k->hdrs, name, &v, &n))
        return buf;
    if (!v)
        snprintf(buf, size, "(null)");
    else
        snprintf(buf, size, "%.*s", (int)n, (const char *)v);
    return buf;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every line seen by the callback sink is in the topic exactly once. */
static void assert_same_records(const topic_t *t, seen_t *s) {
    assert_true(s->n > 0);
    assert_int_equal(t->n, s->n);
    char **got = malloc(sizeof(char *) * (size_t)t->n);
    for (int i = 0; i < t->n; i++)
        got[i] = t->m[i].val;
    qsort(got, (size_t)t->n, sizeof(char *), cmp_str);
    qsort(s->lines, (size_t)s->n, sizeof(char *), cmp_str);
    for (int i = 0; i < t->n; i++)
        if (strcmp(got[i], s->lines[i]))
            fail_msg("record %d differs:\n  topic: %s\n  seen:  %s", i, got[i], s->lines[i]);
    free(got);
}

/* Capture what the engine writes to stderr while it runs. */
typedef struct {
    int saved;
    char path[64];
} capture_t;

static void capture_start(capture_t *c) {
    snprintf(c->path, sizeof(c->path), "/tmp/eddy_ksink_err_XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Returns the captured text (free it). */
static char *capture_end(capture_t *c) {
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "rb");
    char *text = calloc(1, 65537);
    size_t n = fread(text, 1, 65536, f);
    text[n] = 0;
    fclose(f);
    unlink(c->path);
    fprintf(stderr, "%s", text); /* still shown in the test log */
    return text;
}

/* ------------------------------------------------------------- tests */

static const char *nexmark_yaml = "application: ks\n"
                                  "kafka: {bootstrap.servers: embedded}\n"
                                  "settings: {threads: 2, commit.interval.ms: 100ms%s}\n"
                                  "sources:\n"
                                  "  - {name: nx, type: nexmark, events: %d, partitions: 3}\n"
                                  "pipelines:\n"
                                  "  - name: bids\n"
                                  "    from: bid\n"
                                  "    steps:\n"
                                  "      - filter: auction %% 2 = 0\n"
                                  "    to: [out, seen]\n"
                                  "sinks:\n"
                                  "  - name: out\n"
                                  "    type: kafka\n"
                                  "    topic: %s\n"
                                  "    key: auction\n"
                                  "    headers: {channel: channel, price: price}\n"
                                  "    partitions: 4\n"
                                  "%s";

static eddy_topology_t *nexmark_topology(const char *settings, int events, const char *topic,
                                         const char *extra, seen_t *seen) {
    eddy_topology_t *t = topology(nexmark_yaml, settings, events, topic, extra);
    eddy_topology_add_callback_sink(t, "seen", seen_cb, seen);
    return t;
}

static void json_records_arrive_once_with_keys_headers_and_event_time(void **state) {
    (void)state;
    seen_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_t *t = nexmark_topology("", 3000, "ks-json", "", &seen);
    eddy_engine_t *e = engine(t);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    /* both sinks count what they wrote */
    assert_int_equal(st.events_out, 2 * (uint64_t)seen.n);

    topic_t tp = read_topic("ks-json", "read_uncommitted");
    assert_int_equal(tp.partitions, 4);
    assert_same_records(&tp, &seen);
    rd_kafka_t *rk = consumer("read_uncommitted");
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "ks-json", NULL);
    int per_partition[4] = {0};
    for (int i = 0; i < tp.n; i++) {
        const kmsg_t *k = &tp.m[i];
        json_error_t je;
        json_t *j = json_loads(k->val, 0, &je);
        assert_non_null(j);
        char want[64], buf[256];
        snprintf(want, sizeof(want), "%lld",
                 (long long)json_integer_value(json_object_get(j, "auction")));
        assert_non_null(k->key);
        assert_string_equal(k->key, want);
        /* partitioned by murmur2 of the key, as Java producers do */
        assert_int_equal(k->partition,
                         rd_kafka_msg_partitioner_murmur2(rkt, k->key, k->klen, 4, NULL, NULL));
        per_partition[k->partition]++;
        assert_string_equal(header(k, "channel", buf, sizeof(buf)),
                            json_string_value(json_object_get(j, "channel")));
        snprintf(want, sizeof(want), "%lld",
                 (long long)json_integer_value(json_object_get(j, "price")));
        assert_string_equal(header(k, "price", buf, sizeof(buf)), want);
        /* the message timestamp is the record's event time */
        assert_int_equal(k->ts_ms, json_integer_value(json_object_get(j, "dateTime")));
        json_decref(j);
    }
    for (int p = 0; p < 4; p++)
        assert_true(per_partition[p] > 0);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    topic_free(&tp);
    seen_free(&seen);
}

static void exactly_once_run_commits_transactions_read_committed(void **state) {
    (void)state;
    seen_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_t *t =
        nexmark_topology(", processing.guarantee: exactly_once", 3000, "ks-eos", "", &seen);
    char *desc = eddy_topology_describe(t, "mermaid", NULL, 0);
    assert_non_null(strstr(desc, "kafka topic ks-eos (json, transactional)"));
    eddy_free(desc);
    eddy_engine_t *e = engine(t);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_true(st.commits >= 1);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    topic_t tp = read_topic("ks-eos", "read_committed");
    assert_same_records(&tp, &seen);
    topic_free(&tp);
    seen_free(&seen);
}

/* v[0..n) sorted, its distinct strings first (pointers moved, not
 * freed: free through another array); returns their count. */
static int distinct(char **v, int n) {
    qsort(v, (size_t)n, sizeof(char *), cmp_str);
    int d = 0;
    for (int i = 0; i < n; i++)
        if (!d || strcmp(v[d - 1], v[i]))
            v[d++] = v[i];
    return d;
}

/* A transaction that fails in a way a new producer clears (the broker's
 * OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence desynchronization") does not
 * stop the engine: it restarts in process from the last commit (here the
 * generator's start: no state, so every record is produced again), and
 * the run ends with every record in the topic. */
static void transient_transaction_failure_recovers_in_process(void **state) {
    (void)state;
    seen_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_t *t =
        nexmark_topology(", processing.guarantee: exactly_once", 3000, "ks-recover", "", &seen);
    eddy_engine_t *e = engine(t);
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    rd_kafka_resp_err_t errs[3] = {RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                   RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                   RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER};
    rd_kafka_mock_push_request_errors_array(mc, API_PRODUCE, 3, errs);
    capture_t cap;
    capture_start(&cap);
    eddy_err_t rc = run_to_end(e);
    char *text = capture_end(&cap);
    rd_kafka_mock_clear_request_errors(mc, API_PRODUCE);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    assert_int_equal(rc, EDDY_OK);
    assert_true(st.recoveries >= 1);
    if (!strstr(text, "restarting from the last acknowledged commit"))
        fail_msg("the recovery was not said on stderr");
    free(text);
    /* every record the pipeline made is in the topic (some twice: the
     * mock cluster does not hide aborted transactions) */
    topic_t tp = read_topic("ks-recover", "read_uncommitted");
    char **got = malloc(sizeof(char *) * (size_t)(tp.n + 1));
    for (int i = 0; i < tp.n; i++)
        got[i] = tp.m[i].val;
    char **want = malloc(sizeof(char *) * (size_t)(seen.n + 1));
    memcpy(want, seen.lines, sizeof(char *) * (size_t)seen.n);
    int ng = distinct(got, tp.n), ns = distinct(want, seen.n);
    assert_true(ns > 100);
    assert_int_equal(ng, ns);
    for (int i = 0; i < ns; i++)
        assert_string_equal(got[i], want[i]);
    free(got);
    free(want);
    topic_free(&tp);
    seen_free(&seen);
}

static const char *host_yaml = "application: ks\n"
                               "kafka: {bootstrap.servers: embedded}\n"
                               "settings: {threads: 1%s}\n"
                               "sources:\n"
                               "  - {name: in, type: host, schema: {id: int, name: string}}\n"
                               "pipelines:\n"
                               "  - {name: p, from: in, to: out}\n"
                               "sinks:\n"
                               "  - {name: out, type: kafka, topic: %s, key: id%s}\n";

/* Push n records {id: i, name: "n<i>"} and end the input. */
static eddy_engine_t *host_engine(eddy_topology_t *t, int n) {
    eddy_engine_t *e = engine(t);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d", i);
        eddy_value_t v[2] = {
            {.type = EDDY_TYPE_INT, .u.i = i},
            {.type = EDDY_TYPE_STRING, .u.s = name, .len = (uint32_t)strlen(name)}};
        assert_int_equal(eddy_engine_push(e, "in", 0, v, 1000 + i), EDDY_OK);
    }
    assert_int_equal(eddy_engine_end_input(e, "in", -1), EDDY_OK);
    return e;
}

/* host_yaml with sink options `sink_extra`, n records, run to the end. */
static void run_host(const char *topic, const char *sink_extra, int n) {
    eddy_topology_t *t = topology(host_yaml, "", topic, sink_extra);
    eddy_engine_t *e = host_engine(t, n);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

/* Run 10 records into `topic` while the cluster answers the next `count`
 * requests of Kafka API `api` with `err`: the engine must stop with
 * EDDY_ERR_IO, its error must name `who`, and its error or stderr must
 * say want_a and want_b. */
static void expect_stop(const char *settings, const char *topic, int16_t api, int count,
                        rd_kafka_resp_err_t err, const char *who, const char *want_a,
                        const char *want_b) {
    eddy_topology_t *t = topology(host_yaml, settings, topic, "");
    eddy_engine_t *e = host_engine(t, 10);
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    rd_kafka_resp_err_t errs[8];
    for (int i = 0; i < count && i < 8; i++)
        errs[i] = err;
    rd_kafka_mock_push_request_errors_array(mc, api, (size_t)count, errs);
    capture_t cap;
    capture_start(&cap);
    eddy_err_t rc = run_to_end(e);
    char *text = capture_end(&cap);
    rd_kafka_mock_clear_request_errors(mc, api);
    assert_int_equal(rc, EDDY_ERR_IO);
    const char *last = eddy_engine_last_error(e);
    if (!strstr(last, who))
        fail_msg("expected \"%s\" in the engine's error: %s", who, last);
    if ((!strstr(text, want_a) || !strstr(text, want_b)) &&
        (!strstr(last, want_a) || !strstr(last, want_b)))
        fail_msg("expected \"%s\" and \"%s\" on stderr or in: %s", want_a, want_b, last);
    free(text);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void fenced_transactional_producer_stops_the_engine(void **state) {
    (void)state;
    /* the first commit is refused: a newer instance with the same
     * transactional.id took over. The sink writes through the stream
     * thread's shared transactional producer (docs/kafka.md) */
    expect_stop(", processing.guarantee: exactly_once", "ks-fenced", API_END_TXN, 1,
                RD_KAFKA_RESP_ERR_PRODUCER_FENCED, "transactional producer 'ks-txn-",
                "(thread 0): commit_transaction: ", "fenced");
}

static void failed_delivery_stops_the_engine_naming_topic_and_partition(void **state) {
    (void)state;
    expect_stop("", "ks-denied", API_PRODUCE, 5, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                "sink:out", "delivery to topic 'ks-denied' partition 0 failed: ", "Topic authorization failed");
}

static void full_producer_queue_slows_down_instead_of_dropping(void **state) {
    (void)state;
    /* room for 20 records: the sink must wait for deliveries, often */
    run_host("ks-full", ", kafka: {queue.buffering.max.messages: 20, linger.ms: 1}", 5000);
    topic_t tp = read_topic("ks-full", "read_uncommitted");
    assert_int_equal(tp.n, 5000);
    /* one partition: in push order, each id once */
    for (int i = 0; i < tp.n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "{\"id\":%d,\"name\":\"n%d\"}", i, i);
        assert_string_equal(tp.m[i].val, want);
        assert_int_equal(tp.m[i].ts_ms, 1000 + i);
    }
    topic_free(&tp);
}

static void dead_letters_keep_original_bytes_with_reason_in_headers(void **state) {
    (void)state;
    /* an orders file with three lines that do not decode */
    const char *lines[] = {
        "{\"user\":\"ann\",\"amount\":12}", "{\"user\":\"bob\",\"amount\":", "{\"user\":\"cy\"}",
        "{\"user\":\"dee\",\"amount\":\"lots\"}", "{\"user\":\"eve\",\"amount\":30}"};
    char path[] = "/tmp/eddy_ksink_dl_XXXXXX";
    FILE *f = fdopen(mkstemp(path), "w");
    assert_non_null(f);
    for (int i = 0; i < 5; i++)
        fprintf(f, "%s\n", lines[i]);
    fclose(f);
    eddy_topology_t *t = topology(
        "application: ks\n"
        "kafka: {bootstrap.servers: embedded}\n"
        "settings: {threads: 1, dead_letter: dlq}\n"
        "sources:\n"
        "  - {name: in, type: file, path: '%s', schema: {user: string, amount: int}}\n"
        "pipelines:\n"
        "  - {name: p, from: in, to: seen}\n"
        "sinks:\n"
        "  - name: dlq\n"
        "    type: kafka\n"
        "    topic: ks-dlq\n"
        "    format: raw\n"
        "    value: raw\n"
        "    key: source\n"
        "    headers: {reason: reason, source: source, partition: partition, offset: offset}\n",
        path);
    seen_t seen = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "seen", seen_cb, &seen);
    eddy_engine_t *e = engine(t);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    assert_int_equal(seen.n, 2);

    topic_t tp = read_topic("ks-dlq", "read_uncommitted");
    assert_int_equal(tp.n, 3);
    for (int i = 0; i < 3; i++) {
        const kmsg_t *k = &tp.m[i];
        char buf[512], line[8];
        assert_string_equal(k->val, lines[i + 1]); /* the bytes as read */
        snprintf(line, sizeof(line), "%d", i + 2);
        assert_string_equal(k->key, path);
        assert_string_equal(header(k, "source", buf, sizeof(buf)), path);
        assert_string_equal(header(k, "offset", buf, sizeof(buf)), line);
        assert_string_equal(header(k, "partition", buf, sizeof(buf)), "0");
        assert_true(strlen(header(k, "reason", buf, sizeof(buf))) > 0);
    }
    char buf[512];
    assert_non_null(strstr(header(&tp.m[1], "reason", buf, sizeof(buf)), "missing field 'amount'"));
    topic_free(&tp);
    seen_free(&seen);
    unlink(path);
}

/* ---------------------------------------------------------------- avro */

/* Read one Avro datum of schema_json from buf with Avro C. */
static void avro_c_read(const char *schema_json, const char *buf, size_t len,
                        avro_value_iface_t **iface, avro_schema_t *sch, avro_value_t *val) {
    if (avro_schema_from_json_length(schema_json, strlen(schema_json), sch))
        fail_msg("schema: %s", avro_strerror());
    *iface = avro_generic_class_from_schema(*sch);
    assert_int_equal(avro_generic_value_new(*iface, val), 0);
    avro_reader_t r = avro_reader_memory(buf, (int64_t)len);
    if (avro_value_read(r, val))
        fail_msg("avro read: %s", avro_strerror());
    avro_reader_free(r);
    /* the datum is exactly the message body */
    size_t size = 0;
    assert_int_equal(avro_value_sizeof(val, &size), 0);
    assert_int_equal(size, len);
}

static void avro_c_free(avro_value_iface_t *iface, avro_schema_t sch, avro_value_t *val) {
    avro_value_decref(val);
    avro_value_iface_decref(iface);
    avro_schema_decref(sch);
}

/* The value of a field, through a ["null", T] union when there is one;
 * returns false for null. */
static bool avro_field(avro_value_t *rec, const char *name, avro_value_t *out) {
    avro_value_t f;
    assert_int_equal(avro_value_get_by_name(rec, name, &f, NULL), 0);
    if (avro_value_get_type(&f) == AVRO_UNION) {
        int disc;
        assert_int_equal(avro_value_get_discriminant(&f, &disc), 0);
        assert_int_equal(avro_value_get_current_branch(&f, out), 0);
        return disc == 1;
    }
    *out = f;
    return true;
}

static void avro_rows_read_back_with_avro_c_by_the_registered_schema(void **state) {
    (void)state;
    srv_t *srv = srv_new(5);
    assert_int_equal(srv_start(srv, 0), 0);
    eddy_topology_t *t = topology(
        "application: ks\n"
        "kafka: {bootstrap.servers: embedded}\n"
        "schema_registry: {url: 'http://127.0.0.1:%u', retry.backoff.ms: 10ms}\n"
        "settings: {threads: 1}\n"
        "sources:\n"
        "  - name: in\n"
        "    type: host\n"
        "    schema: {id: int, name: \"string?\", score: double, ok: bool, at: timestamp,\n"
        "             blob: \"bytes?\", \"odd name\": int}\n"
        "pipelines:\n"
        "  - {name: p, from: in, to: out}\n"
        "sinks:\n"
        "  - {name: out, type: kafka, topic: ks-avro, format: avro, key: id}\n",
        (unsigned)srv->port);
    eddy_engine_t *e = engine(t);
    /* registered when the engine was built, under <topic>-value */
    pthread_mutex_lock(&srv->lock);
    assert_int_equal(srv->next_id, 6);
    assert_string_equal(srv->subjects[5], "ks-avro-value");
    char *schema_json = strdup(srv->schemas[5]);
    pthread_mutex_unlock(&srv->lock);
    assert_non_null(strstr(schema_json, "{\"name\":\"name\",\"type\":[\"null\",\"string\"],"
                                        "\"default\":null}"));
    assert_non_null(strstr(schema_json, "\"logicalType\":\"timestamp-millis\""));
    assert_non_null(strstr(schema_json, "{\"name\":\"odd_name\",\"type\":\"long\"}"));
    for (int i = 0; i < 3; i++) {
        eddy_value_t v[7] = {
            {.type = EDDY_TYPE_INT, .u.i = i - 1},
            {.type = EDDY_TYPE_STRING, .u.s = "héllo", .len = 6},
            {.type = EDDY_TYPE_DOUBLE, .u.d = 0.5 * i - 1e10},
            {.type = EDDY_TYPE_BOOL, .u.i = i % 2},
            {.type = EDDY_TYPE_TIMESTAMP, .u.i = 1700000000000LL + i},
            {.type = EDDY_TYPE_BYTES, .u.s = "\0\1\2", .len = 3},
            {.type = EDDY_TYPE_INT, .u.i = -300000LL * i},
        };
        if (i == 1) {
            v[1] = (eddy_value_t){.type = EDDY_TYPE_NULL};
            v[5] = (eddy_value_t){.type = EDDY_TYPE_NULL};
        }
        assert_int_equal(eddy_engine_push(e, "in", 0, v, 5000 + i), EDDY_OK);
    }
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);

    topic_t tp = read_topic("ks-avro", "read_uncommitted");
    assert_int_equal(tp.n, 3);
    for (int i = 0; i < 3; i++) {
        const kmsg_t *k = &tp.m[i];
        assert_true(k->vlen > 5);
        const unsigned char *h = (const unsigned char *)k->val;
        assert_int_equal(h[0], 0);                                             /* magic */
        assert_int_equal((h[1] << 24) | (h[2] << 16) | (h[3] << 8) | h[4], 5); /* id */
        char want[16];
        snprintf(want, sizeof(want), "%d", i - 1);
        assert_string_equal(k->key, want); /* keys are text in every format */
        avro_value_iface_t *iface;
        avro_schema_t sch;
        avro_value_t rec, f;
        avro_c_read(schema_json, k->val + 5, k->vlen - 5, &iface, &sch, &rec);
        int64_t l;
        double d;
        int b;
        const char *s;
        const void *bytes;
        size_t n;
        assert_true(avro_field(&rec, "id", &f));
        avro_value_get_long(&f, &l);
        assert_int_equal(l, i - 1);
        if (i == 1) {
            assert_false(avro_field(&rec, "name", &f));
            assert_false(avro_field(&rec, "blob", &f));
        } else {
            assert_true(avro_field(&rec, "name", &f));
            avro_value_get_string(&f, &s, &n);
            assert_string_equal(s, "héllo");
            assert_true(avro_field(&rec, "blob", &f));
            avro_value_get_bytes(&f, &bytes, &n);
            assert_int_equal(n, 3);
            assert_memory_equal(bytes, "\0\1\2", 3);
        }
        assert_true(avro_field(&rec, "score", &f));
        avro_value_get_double(&f, &d);
        assert_true(d == 0.5 * i - 1e10);
        assert_true(avro_field(&rec, "ok", &f));
        avro_value_get_boolean(&f, &b);
        assert_int_equal(b, i % 2);
        assert_true(avro_field(&rec, "at", &f));
        avro_value_get_long(&f, &l);
        assert_int_equal(l, 1700000000000LL + i);
        assert_true(avro_field(&rec, "odd_name", &f));
        avro_value_get_long(&f, &l);
        assert_int_equal(l, -300000LL * i);
        avro_c_free(iface, sch, &rec);
    }
    topic_free(&tp);
    free(schema_json);
    srv_free(srv);
}

static void avro_with_a_given_schema_id_needs_no_registry(void **state) {
    (void)state;
    run_host("ks-avro-id", ", format: avro, avro: {schema_id: 77}", 4);
    const char *names[] = {"id", "name"};
    eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING};
    eddy_schema_t *rs = eddy_schema_new(2, names, types);
    char err[256];
    char *json = eddy__avro_schema_for_row(rs, "out", "eddy", err, sizeof(err));
    assert_non_null(json);
    topic_t tp = read_topic("ks-avro-id", "read_uncommitted");
    assert_int_equal(tp.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_memory_equal(tp.m[i].val, "\0\0\0\0\x4d", 5); /* 77 */
        avro_value_iface_t *iface;
        avro_schema_t sch;
        avro_value_t rec, f;
        avro_c_read(json, tp.m[i].val + 5, tp.m[i].vlen - 5, &iface, &sch, &rec);
        const char *s;
        size_t n;
        assert_true(avro_field(&rec, "name", &f));
        avro_value_get_string(&f, &s, &n);
        char want[16];
        snprintf(want, sizeof(want), "n%d", i);
        assert_string_equal(s, want);
        avro_c_free(iface, sch, &rec);
    }
    topic_free(&tp);
    eddy_free(json);
    eddy_schema_destroy(rs);
}

/* A host operator whose output column `note` is not nullable, yet it
 * emits null for odd ids. */
static const eddy_schema_t *notes_schema(const eddy_schema_t *in, const eddy_cnode_t *args,
                                         void *opaque, char *errstr, size_t n) {
    (void)in, (void)args, (void)opaque, (void)errstr, (void)n;
    const char *names[] = {"id", "note"};
    eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING};
    return eddy_schema_new(2, names, types);
}

static eddy_err_t notes_process(void *st, eddy_operator_ctx_t *ctx, const eddy_record_t *rec) {
    (void)st;
    eddy_value_t v[2] = {rec->values[0], {.type = EDDY_TYPE_STRING, .u.s = "ok", .len = 2}};
    if (v[0].u.i % 2)
        v[1] = (eddy_value_t){.type = EDDY_TYPE_NULL};
    return eddy_operator_emit(ctx, v, rec->ts_ms);
}

static void avro_rows_the_schema_cannot_hold_are_dead_lettered(void **state) {
    (void)state;
    eddy_topology_t *t = topology("application: ks\n"
                                  "kafka: {bootstrap.servers: embedded}\n"
                                  "settings: {threads: 1, dead_letter: dl}\n"
                                  "sources:\n"
                                  "  - {name: in, type: host, schema: {id: int, name: string}}\n"
                                  "pipelines:\n"
                                  "  - {name: p, from: in, steps: [{notes: {}}], to: out}\n"
                                  "sinks:\n"
                                  "  - {name: out, type: kafka, topic: ks-avro-dl, format: avro,\n"
                                  "     avro: {schema_id: 9}}\n");
    eddy_operator_def_t def = {.abi = EDDY_OPERATOR_ABI,
                               .name = "notes",
                               .output_schema = notes_schema,
                               .process = notes_process};
    char err[512];
    assert_int_equal(eddy_topology_register_operator(t, &def, err, sizeof(err)), EDDY_OK);
    seen_t dl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "dl", seen_cb, &dl);
    eddy_engine_t *e = host_engine(t, 10);
    assert_int_equal(run_to_end(e), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.dead_lettered, 5);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    topic_t tp = read_topic("ks-avro-dl", "read_uncommitted");
    assert_int_equal(tp.n, 5);
    assert_int_equal(dl.n, 5);
    for (int i = 0; i < dl.n; i++) {
        assert_non_null(strstr(dl.lines[i], "kafka sink 'out': column 'note' (string) holds null, "
                                            "which the Avro schema cannot hold"));
        assert_non_null(strstr(dl.lines[i], "\"source\":\"sink:out\""));
    }
    topic_free(&tp);
    seen_free(&dl);
}

/* -------------------------------------------------------- config errors */

static const char *cfg_yaml = "application: ks\n"
                              "kafka: {bootstrap.servers: %s}\n"
                              "settings: {threads: 1}\n"
                              "sources:\n"
                              "  - {name: in, type: host, schema: {id: int, name: string}}\n"
                              "pipelines:\n"
                              "  - {name: p, from: in, to: out}\n"
                              "sinks:\n"
                              "  - name: out\n"
                              "    type: kafka\n"
                              "    topic: ks-cfg\n"
                              "    %s\n";

/* The error of checking (or, with at_engine, of building an engine for) a
 * topology whose sink has the line `sink_line` (line 12, column 5). */
static void expect_error(const char *bootstrap_value, const char *sink_line, bool at_engine,
                         const char *want) {
    char err[2048] = "";
    eddy_topology_t *t = topology(cfg_yaml, bootstrap_value, sink_line);
    if (at_engine) {
        assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_OK);
        eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
        assert_null(e);
    } else {
        assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
    }
    if (!strstr(err, want))
        fail_msg("expected \"%s\" in \"%s\"", want, err);
    eddy_topology_destroy(t);
}

static void config_errors_name_file_line_and_column(void **state) {
    (void)state;
    expect_error("embedded", "topc: x", false,
                 "t.yaml:12:5: unknown key 'topc' in kafka sink (did you mean 'topic'?");
    expect_error("embedded", "format: jsn", false,
                 "t.yaml:12:13: key 'format': expected one of json, avro, raw; got 'jsn'");
    expect_error("embedded", "value: name", false,
                 "t.yaml:12:12: value: only for format: raw (json and avro write the whole row)");
    expect_error("embedded", "format: raw", false,
                 "t.yaml:12:13: format raw needs 'value: <expression>'");
    expect_error("embedded", "format: avro", false,
                 "t.yaml:12:13: format avro registers the row schema: add a top-level "
                 "schema_registry:");
    expect_error("embedded", "avro: {schema_id: 3}", false,
                 "t.yaml:12:11: avro: only for "
                 "format: avro");
    expect_error("embedded", "kafka: {linger.msx: 5}", false,
                 "t.yaml:12:13: kafka: property 'linger.msx': No such configuration property");
    expect_error("embedded", "kafka: {transactional.id: mine}", false,
                 "t.yaml:12:13: kafka: transactional.id is set by eddy");
    expect_error("'127.0.0.1:1'", "partitions: 3", false,
                 "t.yaml:12:17: partitions: only for bootstrap.servers: embedded");
    expect_error("embedded", "headers: [a, b]", false, "t.yaml:12:14: headers: expected a mapping");
    /* expressions are checked against the rows that reach the sink when
     * the engine is built */
    expect_error("embedded", "key: upper(nam)", true,
                 "t.yaml:12:16: key: unknown field 'nam' (did you mean 'name'?)");
    expect_error("embedded", "headers: {who: 'name ||| 1'}", true,
                 "t.yaml:12:28: headers: who: unexpected character '|'");
}

/* ----------------------------------------------------------------- main */

static int suite_setup(void **state) {
    (void)state;
    char err[512];
    return eddy__kafka_embedded_acquire(bootstrap, sizeof(bootstrap), err, sizeof(err)) ? -1 : 0;
}

static int suite_teardown(void **state) {
    (void)state;
    eddy__kafka_embedded_release();
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_records_arrive_once_with_keys_headers_and_event_time),
        cmocka_unit_test(exactly_once_run_commits_transactions_read_committed),
        cmocka_unit_test(fenced_transactional_producer_stops_the_engine),
        cmocka_unit_test(transient_transaction_failure_recovers_in_process),
        cmocka_unit_test(failed_delivery_stops_the_engine_naming_topic_and_partition),
        cmocka_unit_test(full_producer_queue_slows_down_instead_of_dropping),
        cmocka_unit_test(dead_letters_keep_original_bytes_with_reason_in_headers),
        cmocka_unit_test(avro_rows_read_back_with_avro_c_by_the_registered_schema),
        cmocka_unit_test(avro_with_a_given_schema_id_needs_no_registry),
        cmocka_unit_test(avro_rows_the_schema_cannot_hold_are_dead_lettered),
        cmocka_unit_test(config_errors_name_file_line_and_column),
    };
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
