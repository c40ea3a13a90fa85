/*
 * Change data capture end to end against the embedded Kafka cluster:
 * Debezium change events are produced to a topic the way a Debezium
 * connector writes them (keyed by the primary key, so all changes of a
 * row share a partition), read by a `format: debezium` source and
 * materialised by a `table` step; the table is then checked through the
 * query API, and the output's event times are the events' ts_ms.
 *
 *  - JSON: with and without the schema wrapper, snapshot reads, updates,
 *    deletes followed by their tombstones, one malformed event;
 *  - Avro (envelope: avro): Confluent wire format, the writer schema
 *    served by a tiny schema registry over HTTP (libmicrohttpd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_harness.h"
#include "tests/store_rows.h"
#include "tests/unit/connectors/dbz_avro.h"

#define TOPIC "shop.public.customers"
#define PARTITIONS 3

typedef struct {
    pthread_mutex_t lock;
    int n;
    int64_t min_ts, max_ts;
    int deletes; /* output rows with __op = d */
} seen_t;

static eddy_err_t seen_cb(const eddy_record_t *rec, void *opaque) {
    seen_t *s = opaque;
    pthread_mutex_lock(&s->lock);
    if (s->n++ == 0 || rec->ts_ms < s->min_ts)
        s->min_ts = rec->ts_ms;
    if (rec->ts_ms > s->max_ts)
        s->max_ts = rec->ts_ms;
    s->deletes += rec->values[0].len == 1 && rec->values[0].u.s[0] == 'd';
    pthread_mutex_unlock(&s->lock);
    return EDDY_OK;
}

/* One change event of customer id (value NULL: the tombstone). */
static void produce_bytes(rd_kafka_t *rk, const char *topic, int id, const void *value,
                          size_t len) {
    char key[64];
    int klen = snprintf(key, sizeof(key), "{\"id\":%d}", id);
    rd_kafka_resp_err_t e;
    do {
        e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(id % PARTITIONS),
                              RD_KAFKA_V_KEY(key, (size_t)klen),
                              RD_KAFKA_V_VALUE((void *)value, value ? len : 0),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    assert_int_equal(e, 0);
}

static void produce_change(rd_kafka_t *rk, int id, const char *json) {
    produce_bytes(rk, TOPIC, id, json, json ? strlen(json) : 0);
}

static void send_row(rd_kafka_t *rk, const char *op, int id, const char *name, int64_t balance,
                     int64_t ts_ms, bool wrapped) {
    char row[128], ev[1024];
    snprintf(row, sizeof(row), "{\"id\": %d, \"name\": \"%s\", \"balance\": %lld}", id, name,
             (long long)balance);
    bool del = op[0] == 'd';
    snprintf(ev, sizeof(ev),
             "%s{\"before\": %s, \"after\": %s, \"source\": {\"connector\": \"postgresql\", "
             "\"db\": \"shop\", \"table\": \"customers\", \"ts_ms\": %lld}, \"op\": \"%s\", "
             "\"ts_ms\": %lld, \"transaction\": null}%s",
             wrapped ? "{\"schema\": {\"type\": \"struct\", \"optional\": false, \"name\": "
                       "\"shop.public.customers.Envelope\"}, \"payload\": "
                     : "",
             del ? row : "null", del ? "null" : row, (long long)ts_ms - 5, op, (long long)ts_ms,
             wrapped ? "}" : "");
    produce_change(rk, id, ev);
}

typedef struct {
    int64_t id, balance;
    char name[64];
    bool found;
} cust_t;

static eddy_err_t cust_cb(const eddy_record_t *rec, void *opaque) {
    cust_t *c = opaque;
    c->found = true;
    c->id = rec->values[eddy_schema_field_index(rec->schema, "id")].u.i;
    int b = eddy_schema_field_index(rec->schema, "balance");
    c->balance = b >= 0 ? rec->values[b].u.i : -1;
    const eddy_value_t *n = &rec->values[eddy_schema_field_index(rec->schema, "name")];
    snprintf(c->name, sizeof(c->name), "%.*s", (int)n->len, n->u.s);
    return EDDY_OK;
}

static cust_t customer(eddy_engine_t *e, int id) {
    cust_t c = {0};
    eddy_value_t k = {.type = EDDY_TYPE_INT};
    k.u.i = id;
    eddy_err_t r = eddy_engine_query_get(e, "customers", &k, 1, cust_cb, &c);
    assert_true(r == EDDY_OK || r == EDDY_ERR_NOENT);
    return c;
}

/* A bounded run of a debezium source (top: extra top-level lines; src:
 * the source's format lines) into a table step keyed by id. */
typedef struct {
    char dir[64];
    eddy_topology_t *t;
    eddy_engine_t *e;
    seen_t seen;
    eddy_stats_t stats;
} cdc_run_t;

static void cdc_run(cdc_run_t *r, const char *topic, const char *top, const char *src) {
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->seen.lock, NULL);
    snprintf(r->dir, sizeof(r->dir), "/tmp/eddy-kafka-cdc-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    char *y = NULL, err[1024];
    size_t ylen = 0;
    FILE *f = open_memstream(&y, &ylen);
    fprintf(f,
            "application: cdc-%s\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s', dead_letter: dlq}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "%s"
            "sources:\n"
            "  - name: customers_cdc\n"
            "    type: kafka\n"
            "    topic: %s\n"
            "    format: debezium\n"
            "    bounded: true\n"
            "%s"
            "pipelines:\n"
            "  - name: customers\n"
            "    from: customers_cdc\n"
            "    steps: [{table: {key: id, store: customers}}]\n"
            "    to: out\n"
            "sinks:\n"
            "  - {name: dlq, type: file, path: '%s/dlq.jsonl'}\n",
            topic, r->dir, g_kafka_conf, top, topic, src, r->dir);
    fclose(f);
    r->t = eddy_topology_load_string(y, ylen, "cdc.yaml", err, sizeof(err));
    if (!r->t)
        fail_msg("%s\n%s", err, y);
    free(y);
    eddy_topology_add_callback_sink(r->t, "out", seen_cb, &r->seen);
    r->e = eddy_engine_new(r->t, NULL, err, sizeof(err));
    if (!r->e)
        fail_msg("%s", err);
    assert_int_equal(eddy_engine_start(r->e), EDDY_OK);
    eddy_err_t rc = eddy_engine_poll(r->e, 120000);
    if (rc != EDDY_OK)
        fail_msg("engine: %s (%s)", eddy_err2str(rc), eddy_engine_last_error(r->e));
    eddy_engine_stats(r->e, &r->stats);
}

static void cdc_close(cdc_run_t *r) {
    eddy_engine_destroy(r->e);
    eddy_topology_destroy(r->t);
    pthread_mutex_destroy(&r->seen.lock);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    assert_int_equal(system(cmd), 0);
}

static void json_events_materialise_a_table(void **st) {
    (void)st;
    create_topic(TOPIC, PARTITIONS);

    /* 30 customers: snapshot (r) of 1..20, created (c) 21..30, every third
     * one updated, ids 5, 10, 15, 25 deleted (each delete followed by its
     * tombstone), and one event that is not a change event */
    rd_kafka_t *rk = producer();
    int64_t t0 = 1700000000000LL;
    for (int id = 1; id <= 30; id++)
        send_row(rk, id <= 20 ? "r" : "c", id, "first", id * 10, t0 + id, id % 2 == 0);
    for (int id = 3; id <= 30; id += 3)
        send_row(rk, "u", id, "updated", id * 100, t0 + 100 + id, id % 2 == 1);
    static const int deleted[] = {5, 10, 15, 25};
    for (int i = 0; i < 4; i++) {
        int id = deleted[i];
        send_row(rk, "d", id, id % 3 ? "first" : "updated", 0, t0 + 200 + id, i % 2 == 0);
        produce_change(rk, id, NULL);
    }
    produce_change(rk, 1, "{\"id\": 1, \"name\": \"not an event\"}");
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);

    cdc_run_t r;
    cdc_run(&r, TOPIC, "", "    schema: {id: int, name: string, balance: int}\n");
    assert_int_equal(r.stats.events_in, 30 + 10 + 4 + 4 + 1); /* tombstones: read, skipped */
    assert_int_equal(r.stats.dead_lettered, 1);               /* only the non-event */
    assert_int_equal(r.seen.n, 30 + 10 + 4);
    assert_int_equal(r.seen.deletes, 4);
    assert_int_equal(r.seen.min_ts, t0 + 1); /* event time = the envelope's ts_ms */
    assert_int_equal(r.seen.max_ts, t0 + 225);
    char dlq[300];
    snprintf(dlq, sizeof(dlq), "%s/dlq.jsonl", r.dir);
    assert_int_equal(count_lines(dlq, "topic " TOPIC " partition 1 offset"), 1);

    assert_int_equal(store_rows(r.e, "customers"), 26);
    for (int id = 1; id <= 30; id++) {
        cust_t c = customer(r.e, id);
        bool gone = id == 5 || id == 10 || id == 15 || id == 25;
        assert_int_equal(c.found, !gone);
        if (gone)
            continue;
        assert_int_equal(c.id, id);
        assert_int_equal(c.balance, id % 3 ? id * 10 : id * 100);
        assert_string_equal(c.name, id % 3 ? "first" : "updated");
    }
    cdc_close(&r);
}

/* ------------------------------------------------------ Avro envelope */

#define SCHEMA_ID 7

/* GET /schemas/ids/7 -> the Envelope; anything else 404. */
static enum MHD_Result registry(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **con_cls) {
    (void)cls;
    (void)version;
    (void)upload;
    static int started;
    if (!*con_cls) { /* first call of a request: headers only */
        *con_cls = &started;
        return MHD_YES;
    }
    *upload_size = 0;
    int id = -1;
    bool found = !strcmp(method, "GET") && sscanf(url, "/schemas/ids/%d", &id) == 1 &&
                 id == SCHEMA_ID;
    json_t *j = found ? json_pack("{s:s}", "schema", DBZ_ENVELOPE)
                      : json_pack("{s:i,s:s}", "error_code", 40403, "message", "not found");
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/vnd.schemaregistry.v1+json");
    enum MHD_Result ret = MHD_queue_response(conn, found ? 200 : 404, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* One Avro event in the Confluent wire format (magic 0, schema id). */
static void send_avro(rd_kafka_t *rk, const char *topic, const char *op, int before_id,
                      int after_id, const char *name, int64_t ts_ms) {
    char buf[512] = {0, 0, 0, 0, SCHEMA_ID};
    size_t len = dbz_avro_event(op, before_id, after_id, name, ts_ms, 1, buf + 5,
                                sizeof(buf) - 5);
    produce_bytes(rk, topic, after_id >= 0 ? after_id : before_id, buf, len + 5);
}

static void avro_events_materialise_a_table(void **st) {
    (void)st;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, registry, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a, MHD_OPTION_END);
    assert_non_null(d);
    int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;

    const char *topic = "shop.avro.customers";
    create_topic(topic, PARTITIONS);
    rd_kafka_t *rk = producer();
    send_avro(rk, topic, "r", -1, 1, "Ann", 1001);
    send_avro(rk, topic, "c", -1, 2, "Bo", 1002);
    send_avro(rk, topic, "c", -1, 3, "Cy", 1003);
    send_avro(rk, topic, "u", 2, 2, "Bob", 1004);
    send_avro(rk, topic, "d", 3, -1, "Cy", 1005);
    produce_bytes(rk, topic, 3, NULL, 0); /* its tombstone */
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);

    char top[128], src[sizeof(DBZ_ENVELOPE) + 64];
    snprintf(top, sizeof(top), "schema_registry: {url: 'http://127.0.0.1:%d'}\n", port);
    snprintf(src, sizeof(src), "    envelope: avro\n    avro_schema: '%s'\n", DBZ_ENVELOPE);
    cdc_run_t r;
    cdc_run(&r, topic, top, src);
    assert_int_equal(r.stats.events_in, 6);
    assert_int_equal(r.stats.dead_lettered, 0);
    assert_int_equal(r.seen.n, 5);
    assert_int_equal(r.seen.deletes, 1);
    assert_int_equal(r.seen.min_ts, 1001);
    assert_int_equal(r.seen.max_ts, 1005);
    assert_int_equal(store_rows(r.e, "customers"), 2);
    assert_string_equal(customer(r.e, 1).name, "Ann");
    assert_string_equal(customer(r.e, 2).name, "Bob");
    assert_false(customer(r.e, 3).found);
    cdc_close(&r);
    MHD_stop_daemon(d);
}

/* A source with these lines must be refused naming needle (and the file). */
static void expect_source_error(const char *lines, const char *needle) {
    char y[1024], err[1024] = "";
    snprintf(y, sizeof(y),
             "application: cdc-bad\n"
             "kafka: {bootstrap.servers: '%s'}\n"
             "sources:\n"
             "  - name: cdc\n"
             "    type: kafka\n"
             "    topic: " TOPIC "\n"
             "%s"
             "pipelines: [{name: p, from: cdc, steps: [{table: {key: id}}], to: out}]\n"
             "sinks: [{name: out, type: blackhole}]\n",
             g_kafka_conf, lines);
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "bad.yaml", err, sizeof(err));
    eddy_err_t rc = t ? eddy_topology_check(t, err, sizeof(err)) : EDDY_ERR_CONFIG;
    if (t)
        eddy_topology_destroy(t);
    if (rc != EDDY_ERR_CONFIG || !strstr(err, needle))
        fail_msg("expected a config error naming '%s', got %s: %s", needle, eddy_err2str(rc),
                 err);
}

static void config_errors_name_the_place(void **st) {
    (void)st;
    expect_source_error("    format: json\n    envelope: avro\n    schema: {id: int}\n",
                        "bad.yaml:8:15: envelope: only for format debezium");
    expect_source_error("    format: debezium\n",
                        "bad.yaml:4:5: source 'cdc': format debezium needs schema: the table's "
                        "columns");
    expect_source_error("    format: debezium\n    schema: {id: int, __op: string}\n",
                        "bad.yaml:8:13: schema: column '__op' is reserved");
    expect_source_error("    format: debezium\n    envelope: xml\n    schema: {id: int}\n",
                        "bad.yaml:8:15:");
    expect_source_error("    format: debezium\n    envelope: avro\n    schema: {id: int}\n",
                        "bad.yaml:9:13: schema: format debezium with envelope: avro takes its "
                        "columns from avro_schema");
    expect_source_error("    format: debezium\n    schema: {id: int}\n    avro_schema: x.avsc\n",
                        "bad.yaml:9:18: avro_schema: only with envelope: avro");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_events_materialise_a_table),
        cmocka_unit_test(avro_events_materialise_a_table),
        cmocka_unit_test(config_errors_name_the_place),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
