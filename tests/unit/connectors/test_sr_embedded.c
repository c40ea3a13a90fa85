/*
 * The embedded schema registry (connectors/sr_embedded.c): what a user of
 * `schema_registry: {url: embedded}` relies on. One registry per process,
 * shared by every client and stopped with the last one; Confluent's ids and
 * error codes as eddy's own client reads them; and Avro topologies (Kafka
 * sink format avro -> Kafka source format avro) that run with neither a
 * broker nor a registry installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/kafka.h"
#include "connectors/schema_registry.h"
#include "connectors/sr_embedded.h"
#include "eddy.h"

static const char bid_schema[] =
    "{\"type\":\"record\",\"name\":\"Bid\",\"fields\":["
    "{\"name\":\"auction\",\"type\":\"long\"},{\"name\":\"price\",\"type\":\"long\"}]}";
/* the same schema with other whitespace and key order */
static const char bid_schema_again[] =
    "{ \"name\": \"Bid\", \"type\": \"record\", \"fields\": [\n"
    "  {\"type\": \"long\", \"name\": \"auction\"}, {\"name\": \"price\", \"type\": \"long\"}] }";
static const char click_schema[] =
    "{\"type\":\"record\",\"name\":\"Click\",\"fields\":[{\"name\":\"u\",\"type\":\"string\"}]}";

static eddy_sr_t *client(const char *url) {
    char err[512];
    eddy_sr_conf_t *c = eddy__sr_conf_new();
    assert_int_equal(eddy__sr_conf_set(c, "url", url, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retries", "0", err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "connect.timeout.ms", "2s", err, sizeof(err)), EDDY_OK);
    eddy_sr_t *sr = eddy__sr_new(c, err, sizeof(err));
    if (!sr)
        fail_msg("%s", err);
    return sr;
}

static void embedded_url_is_one_registry_shared_by_every_client_until_the_last_goes(void **st) {
    (void)st;
    char err[512];
    eddy_sr_t *a = client("embedded"), *b = client("embedded");
    /* resolved to a real HTTP address, the same for both */
    assert_true(!strncmp(eddy__sr_url(a), "http://127.0.0.1:", 17));
    assert_string_equal(eddy__sr_url(a), eddy__sr_url(b));
    char url[128];
    snprintf(url, sizeof(url), "%s", eddy__sr_url(a));

    /* what one registers, the other reads by id */
    int32_t id = 0;
    assert_int_equal(eddy__sr_register(a, "bids-value", bid_schema, &id, err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(id, 1);
    const eddy_avro_schema_t *sch;
    if (eddy__sr_get_schema(b, 1, &sch, err, sizeof(err)))
        fail_msg("%s", err);
    assert_non_null(strstr(eddy__avro_schema_json(sch), "\"name\":\"Bid\""));

    /* still there while one client holds it */
    eddy__sr_destroy(a);
    eddy_sr_t *by_url = client(url);
    assert_int_equal(eddy__sr_get_schema(by_url, 1, &sch, err, sizeof(err)), EDDY_OK);
    eddy__sr_destroy(by_url);

    /* gone with the last one: nothing listens on its port any more */
    eddy__sr_destroy(b);
    by_url = client(url);
    assert_int_equal(eddy__sr_get_schema(by_url, 1, &sch, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, url));
    eddy__sr_destroy(by_url);

    /* the next use starts a new, empty one */
    eddy_sr_t *c = client("embedded");
    assert_int_equal(eddy__sr_get_schema(c, 1, &sch, err, sizeof(err)), EDDY_ERR_NOENT);
    eddy__sr_destroy(c);
}

static void embedded_registry_gives_confluent_ids_and_errors(void **st) {
    (void)st;
    char err[512];
    eddy_sr_t *sr = client("embedded");
    int32_t id1, id2, id3, id4;
    assert_int_equal(eddy__sr_register(sr, "bids-value", bid_schema, &id1, err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(eddy__sr_register(sr, "clicks-value", click_schema, &id2, err, sizeof(err)),
                     EDDY_OK);
    /* an equal schema keeps its id under any subject, whatever its layout */
    assert_int_equal(eddy__sr_register(sr, "other-value", bid_schema_again, &id3, err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(eddy__sr_register(sr, "bids-value", bid_schema, &id4, err, sizeof(err)),
                     EDDY_OK);
    assert_int_not_equal(id1, id2);
    assert_int_equal(id3, id1);
    assert_int_equal(id4, id1);

    /* a schema Avro C refuses is 422 42201, final */
    int64_t before = eddy__sr_requests(sr);
    assert_int_equal(
        eddy__sr_register(sr, "bad-value", "{\"type\":\"record\"}", &id1, err, sizeof(err)),
        EDDY_ERR_IO);
    assert_non_null(strstr(err, "42201"));
    assert_int_equal(eddy__sr_requests(sr), before + 1);
    /* an unknown id is 404 40403 */
    const eddy_avro_schema_t *sch;
    assert_int_equal(eddy__sr_get_schema(sr, 99, &sch, err, sizeof(err)), EDDY_ERR_NOENT);
    assert_non_null(strstr(err, "40403 Schema not found"));
    eddy__sr_destroy(sr);
}

/* Registered from C (as sr-server --preload does) and served over HTTP;
 * fault injection answers 503, which the client retries. */
static void registry_object_serves_what_was_registered_and_injects_faults(void **st) {
    (void)st;
    char err[512], url[64];
    eddy_sr_embedded_t *reg = eddy__sr_embedded_new("test");
    int32_t id;
    int version;
    assert_int_equal(eddy__sr_embedded_register(reg, "clicks-value", click_schema, &id, &version,
                                                err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(id, 1);
    assert_int_equal(version, 1);
    assert_int_equal(eddy__sr_embedded_register(reg, "x", "{not json", &id, NULL, err, sizeof(err)),
                     EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "not JSON"));
    assert_int_equal(eddy__sr_embedded_listen(reg, "127.0.0.1:x", err, sizeof(err)),
                     EDDY_ERR_CONFIG);
    assert_int_equal(eddy__sr_embedded_listen(reg, "127.0.0.1:0", err, sizeof(err)), EDDY_OK);
    assert_true(eddy__sr_embedded_port(reg) > 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", eddy__sr_embedded_port(reg));

    eddy__sr_embedded_fail_first(reg, 1);
    eddy_sr_conf_t *c = eddy__sr_conf_new();
    assert_int_equal(eddy__sr_conf_set(c, "url", url, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retries", "1", err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retry.backoff.ms", "10", err, sizeof(err)), EDDY_OK);
    eddy_sr_t *sr = eddy__sr_new(c, err, sizeof(err));
    assert_non_null(sr);
    const eddy_avro_schema_t *sch;
    if (eddy__sr_get_schema(sr, 1, &sch, err, sizeof(err)))
        fail_msg("%s", err);
    assert_int_equal(eddy__sr_requests(sr), 2); /* one 503, then the schema */
    assert_int_equal(eddy__sr_embedded_requests(reg), 2);

    eddy__sr_embedded_set_down(reg, true);
    assert_true(eddy__sr_embedded_down(reg));
    assert_int_equal(eddy__sr_get_schema(sr, 2, &sch, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, "HTTP 503"));
    eddy__sr_embedded_set_down(reg, false);
    assert_int_equal(eddy__sr_get_schema(sr, 2, &sch, err, sizeof(err)), EDDY_ERR_NOENT);
    eddy__sr_destroy(sr);
    eddy__sr_embedded_destroy(reg);
}

/* ------------------------------------------------ topologies, end to end */

typedef struct {
    pthread_mutex_t lock;
    int n;
    long long price_sum;
    int price_col;
} count_t;

static eddy_err_t count_cb(const eddy_record_t *rec, void *opaque) {
    count_t *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (c->price_col < 0)
        c->price_col = eddy_schema_field_index(rec->schema, "price");
    c->n++;
    c->price_sum += rec->values[c->price_col].u.i;
    pthread_mutex_unlock(&c->lock);
    return EDDY_OK;
}

/* An engine from YAML, with the callback sink `sink` counting into c;
 * *topo is the topology to destroy after the engine. */
static eddy_engine_t *make(const char *yaml, const char *sink, count_t *c, eddy_topology_t **topo) {
    char err[2048];
    *topo = eddy_topology_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (!*topo)
        fail_msg("%s in:\n%s", err, yaml);
    if (sink)
        eddy_topology_add_callback_sink(*topo, sink, count_cb, c);
    eddy_engine_t *e = eddy_engine_new(*topo, NULL, err, sizeof(err));
    if (!e)
        fail_msg("engine: %s", err);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    return e;
}

static void finish(eddy_engine_t *e, eddy_topology_t *t, bool bounded) {
    eddy_err_t r = bounded ? eddy_engine_poll(e, 60000) : EDDY_OK;
    if (r)
        fail_msg("%s: %s", eddy_err2str(r), eddy_engine_last_error(e));
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_int_equal(s.dead_lettered, 0);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

/* The reader schema of the bids an eddy sink named `bids` writes: the
 * derived record is named after the sink. */
#define BID_READER                                                                                 \
    "'{\"type\":\"record\",\"name\":\"bids\",\"fields\":[{\"name\":\"auction\",\"type\":"          \
    "\"long\"},{\"name\":\"price\",\"type\":\"long\"},{\"name\":\"dateTime\",\"type\":"            \
    "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}'"

/* 20,000 Nexmark events with seed 3: their bids and price sum, by running
 * the generator into a callback sink. */
static void expected_bids(count_t *want) {
    eddy_topology_t *t;
    eddy_engine_t *e = make("application: sre-want\n"
                            "sources: [{name: gen, type: nexmark, events: 20000, seed: 3}]\n"
                            "pipelines:\n"
                            "  - {name: p, from: bid, to: want}\n"
                            "sinks: []\n",
                            "want", want, &t);
    finish(e, t, true);
    assert_true(want->n > 15000);
}

/* A broker and a registry outlive the applications: an Avro sink writes,
 * then an Avro source reads back, every bid, both with url: embedded. */
static void avro_sink_then_source_need_no_registry_installed(void **st) {
    (void)st;
    char err[512];
    count_t want = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1};
    count_t got = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1};
    expected_bids(&want);
    /* held by the test as a broker and a registry would be */
    assert_int_equal(eddy__kafka_embedded_acquire(NULL, 0, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_embedded_acquire(NULL, 0, err, sizeof(err)), EDDY_OK);

    eddy_topology_t *t;
    eddy_engine_t *e = make("application: sre-write\n"
                            "kafka: {bootstrap.servers: embedded}\n"
                            "schema_registry: {url: embedded}\n"
                            "sources: [{name: gen, type: nexmark, events: 20000, seed: 3}]\n"
                            "pipelines:\n"
                            "  - name: p\n"
                            "    from: bid\n"
                            "    steps: [{map: [auction, price, dateTime]}]\n"
                            "    to: bids\n"
                            "sinks:\n"
                            "  - {name: bids, type: kafka, topic: sre-bids, format: avro,\n"
                            "     partitions: 3, key: auction}\n",
                            NULL, NULL, &t);
    finish(e, t, true);

    e = make("application: sre-read\n"
             "kafka: {bootstrap.servers: embedded}\n"
             "schema_registry: {url: embedded}\n"
             "sources:\n"
             "  - {name: in, type: kafka, topic: sre-bids, format: avro, bounded: true,\n"
             "     timestamp: dateTime, avro_schema: " BID_READER "}\n"
             "pipelines:\n"
             "  - {name: p, from: in, to: got}\n"
             "sinks: []\n",
             "got", &got, &t);
    finish(e, t, true);
    assert_int_equal(got.n, want.n);
    assert_true(got.price_sum == want.price_sum);

    eddy__sr_embedded_release();
    eddy__kafka_embedded_release();
}

/* The README demo's shape in one process: the sink and the source of one
 * topology share the embedded cluster and registry. */
static void one_topology_writes_avro_and_reads_it_back_in_process(void **st) {
    (void)st;
    count_t want = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1};
    count_t got = {PTHREAD_MUTEX_INITIALIZER, 0, 0, -1};
    expected_bids(&want);
    eddy_topology_t *t;
    eddy_engine_t *e = make("application: sre-loop\n"
                            "schema_registry: {url: embedded}\n"
                            "settings: {threads: 1, commit.interval.ms: 100}\n"
                            "sources:\n"
                            "  - {name: gen, type: nexmark, events: 20000, seed: 3}\n"
                            "  - {name: in, type: kafka, topic: sre-loop, format: avro,\n"
                            "     partitions: 2, timestamp: dateTime,\n"
                            "     avro_schema: " BID_READER "}\n"
                            "pipelines:\n"
                            "  - name: w\n"
                            "    from: bid\n"
                            "    steps: [{map: [auction, price, dateTime]}]\n"
                            "    to: bids\n"
                            "  - {name: r, from: in, to: got}\n"
                            "sinks:\n"
                            "  - {name: bids, type: kafka, topic: sre-loop, format: avro,\n"
                            "     key: auction}\n",
                            "got", &got, &t);
    for (int waited = 0; waited < 60000; waited += 100) {
        eddy_err_t r = eddy_engine_poll(e, 100); /* the Kafka source never ends */
        if (r != EDDY_ERR_TIMEOUT)
            fail_msg("engine stopped: %s: %s", eddy_err2str(r), eddy_engine_last_error(e));
        pthread_mutex_lock(&got.lock);
        int n = got.n;
        pthread_mutex_unlock(&got.lock);
        if (n >= want.n)
            break;
    }
    finish(e, t, false);
    assert_int_equal(got.n, want.n);
    assert_true(got.price_sum == want.price_sum);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedded_url_is_one_registry_shared_by_every_client_until_the_last_goes),
        cmocka_unit_test(embedded_registry_gives_confluent_ids_and_errors),
        cmocka_unit_test(registry_object_serves_what_was_registered_and_injects_faults),
        cmocka_unit_test(avro_sink_then_source_need_no_registry_installed),
        cmocka_unit_test(one_topology_writes_avro_and_reads_it_back_in_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
