/*
 * The test tools of tests/tools as the Kafka source's tests will use them:
 * sr-server started as its own process (--port-file) and reached by eddy's
 * schema-registry client over TCP; avro-produce run against librdkafka's
 * mock cluster (started here, in-process), its messages consumed back with
 * librdkafka and decoded with Avro C. Everything on 127.0.0.1; every child
 * is stopped in the teardown, also when an assertion fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <avro.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "connectors/avro.h"
#include "connectors/nexmark_gen.h"
#include "connectors/schema_registry.h"
#include "eddy_int.h"
#include "tests/tools/tool_proc.h"

#define RUN_TIMEOUT_MS 60000

typedef struct {
    char dir[64];
    char sr_bin[1024], produce_bin[1024], schemas[1024];
    rd_kafka_t *mrk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    const char *bootstrap;
} group_t;

static group_t g;

typedef struct {
    pid_t sr; /* 0: not running */
    int sr_port;
    char sr_url[64];
} fx_t;

/* ------------------------------------------------------------ fixtures */

static void in_dir(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g.dir, name);
}

static int group_setup(void **state) {
    (void)state;
    snprintf(g.dir, sizeof(g.dir), "/tmp/eddy_tools_XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    tool_path(g.sr_bin, sizeof(g.sr_bin), "SR_SERVER", "sr-server");
    tool_path(g.produce_bin, sizeof(g.produce_bin), "AVRO_PRODUCE", "avro-produce");
    const char *src = getenv("EDDY_SOURCE_DIR");
    snprintf(g.schemas, sizeof(g.schemas), "%s/schemas", src ? src : ".");
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    g.mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!g.mrk)
        return -1;
    g.mc = rd_kafka_mock_cluster_new(g.mrk, 1);
    if (!g.mc)
        return -1;
    g.bootstrap = rd_kafka_mock_cluster_bootstraps(g.mc);
    return strncmp(g.bootstrap, "127.0.0.1:", 10) ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (g.mc)
        rd_kafka_mock_cluster_destroy(g.mc);
    if (g.mrk)
        rd_kafka_destroy(g.mrk);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    *state = fx;
    return fx ? 0 : -1;
}

/* Stops sr-server; fails when it did not exit 0 (under the sanitizers a
 * leak makes it exit non-zero). */
static int teardown(void **state) {
    fx_t *fx = *state;
    int code = fx->sr ? tool_stop(fx->sr, 10000) : 0;
    if (code) {
        char err_path[128];
        in_dir(err_path, sizeof(err_path), "sr.err");
        char *err = tool_slurp(err_path);
        fprintf(stderr, "sr-server exited with %d; its stderr:\n%s\n", code, err);
        free(err);
    }
    free(fx);
    return code ? -1 : 0;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Start sr-server with extra arguments (NULL-terminated); its stdout goes to
 * sr.out in the test directory. */
static void start_sr(fx_t *fx, const char *const *extra) {
    char port_file[128], out[128], err[128];
    in_dir(port_file, sizeof(port_file), "sr.port");
    in_dir(out, sizeof(out), "sr.out");
    in_dir(err, sizeof(err), "sr.err");
    unlink(port_file);
    const char *argv[16] = {g.sr_bin, "--port-file", port_file};
    int n = 3;
    for (; extra && *extra && n < 15; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    fx->sr = tool_spawn((char *const *)argv, out, err);
    assert_true(fx->sr > 0);
    fx->sr_port = tool_wait_port(port_file, fx->sr, 10000);
    if (fx->sr_port <= 0) {
        char *e = tool_slurp(err);
        fail_msg("sr-server did not start: %s", e);
    }
    snprintf(fx->sr_url, sizeof(fx->sr_url), "http://127.0.0.1:%d", fx->sr_port);
}

static eddy_sr_t *sr_client(const fx_t *fx, const char *retries) {
    char err[256];
    eddy_sr_conf_t *c = eddy__sr_conf_new();
    assert_int_equal(eddy__sr_conf_set(c, "url", fx->sr_url, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retries", retries, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retry.backoff.ms", "20", err, sizeof(err)), EDDY_OK);
    eddy_sr_t *sr = eddy__sr_new(c, err, sizeof(err));
    if (!sr)
        fail_msg("%s", err);
    return sr;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    char **body = ud;
    size_t have = strlen(*body), add = size * n;
    *body = realloc(*body, have + add + 1);
    memcpy(*body + have, p, add);
    (*body)[have + add] = 0;
    return add;
}

/* A plain GET as curl would make it; returns the body (malloc'd). */
static char *http_get(const fx_t *fx, const char *path, long *status) {
    char url[256];
    char *body = calloc(1, 1);
    snprintf(url, sizeof(url), "%s%s", fx->sr_url, path);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    *status = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    return body;
}

static void assert_get(const fx_t *fx, const char *path, long want_status, const char *want_body) {
    long status;
    char *body = http_get(fx, path, &status);
    if (status != want_status || (want_body && strcmp(body, want_body)))
        fail_msg("GET %s: got %ld %s, want %ld %s", path, status, body, want_status,
                 want_body ? want_body : "");
    free(body);
}

static char *schema_file_text(const char *name) {
    char path[1100];
    snprintf(path, sizeof(path), "%s/%s", g.schemas, name);
    char *text = tool_slurp(path);
    assert_true(text[0] == '{');
    return text;
}

/* ----------------------------------------------------------- sr-server */

static void sr_server_serves_preloaded_and_registered_schemas_to_eddys_client(void **state) {
    fx_t *fx = *state;
    char v1[1100], v2[1100];
    snprintf(v1, sizeof(v1), "%s/bid.avsc:bids-value", g.schemas);
    snprintf(v2, sizeof(v2), "%s/bid_v2.avsc", g.schemas);
    const char *args[] = {"--preload", v1, NULL};
    start_sr(fx, args);
    char out_path[128], want[2400];
    in_dir(out_path, sizeof(out_path), "sr.out");
    char *out = tool_slurp(out_path);
    snprintf(want, sizeof(want), "1 bids-value %s/bid.avsc\n", g.schemas);
    assert_string_equal(out, want);
    free(out);

    eddy_sr_t *sr = sr_client(fx, "0");
    char err[512];
    const eddy_avro_schema_t *sch;
    assert_int_equal(eddy__sr_get_schema(sr, 1, &sch, err, sizeof(err)), EDDY_OK);
    assert_non_null(strstr(eddy__avro_schema_json(sch), "\"name\":\"Bid\""));

    /* a new schema gets a new id and version; the same text again (under
     * any subject) gets its first id back */
    char *bid = schema_file_text("bid.avsc"), *bid2 = schema_file_text("bid_v2.avsc");
    int32_t id;
    assert_int_equal(eddy__sr_register(sr, "bids-value", bid2, &id, err, sizeof(err)), EDDY_OK);
    assert_int_equal(id, 2);
    assert_int_equal(eddy__sr_register(sr, "bids-value", bid, &id, err, sizeof(err)), EDDY_OK);
    assert_int_equal(id, 1);
    assert_int_equal(eddy__sr_register(sr, "other-value", bid, &id, err, sizeof(err)), EDDY_OK);
    assert_int_equal(id, 1);
    free(bid);
    free(bid2);

    /* an unknown id is final (no retry) and named as Confluent does */
    assert_int_equal(eddy__sr_get_schema(sr, 999, &sch, err, sizeof(err)), EDDY_ERR_NOENT);
    assert_non_null(strstr(err, "40403 Schema not found"));
    assert_int_equal(eddy__sr_register(sr, "bad", "{\"type\":\"record\"}", &id, err, sizeof(err)),
                     EDDY_ERR_IO);
    assert_non_null(strstr(err, "42201"));
    eddy__sr_destroy(sr);

    assert_get(fx, "/subjects", 200, "[\"bids-value\",\"other-value\"]");
    assert_get(fx, "/subjects/bids-value/versions", 200, "[1,2]");
    long status;
    char *body = http_get(fx, "/subjects/bids-value/versions/latest", &status);
    json_t *j = json_loads(body, 0, NULL);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 2);
    assert_string_equal(json_string_value(json_object_get(j, "subject")), "bids-value");
    json_decref(j);
    free(body);
    body = http_get(fx, "/subjects/bids-value/versions/1", &status);
    j = json_loads(body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
    json_decref(j);
    free(body);
    assert_get(fx, "/subjects/bids-value/versions/3", 404,
               "{\"error_code\":40402,\"message\":\"Version 3 not found.\"}");
    assert_get(fx, "/subjects/nope/versions/latest", 404,
               "{\"error_code\":40401,\"message\":\"Subject 'nope' not found.\"}");
    assert_get(fx, "/schemas/ids/3", 404,
               "{\"error_code\":40403,\"message\":\"Schema not found\"}");

    /* SIGTERM ends it cleanly */
    int code = tool_stop(fx->sr, 10000);
    fx->sr = 0;
    assert_int_equal(code, 0);
}

/* Poll GET path until it answers want_status (SIGUSR1 is asynchronous). */
static void wait_for_status(const fx_t *fx, const char *path, long want_status) {
    long status = 0;
    for (int waited = 0; waited < 10000; waited += 20) {
        free(http_get(fx, path, &status));
        if (status == want_status)
            return;
        tool_sleep_ms(20);
    }
    fail_msg("GET %s kept answering %ld, want %ld", path, status, want_status);
}

static void sr_server_fail_first_and_sigusr1_down_mode_answer_503(void **state) {
    fx_t *fx = *state;
    char bid[1100], err[512];
    snprintf(bid, sizeof(bid), "%s/bid.avsc", g.schemas);
    const char *args[] = {"--preload", bid, "--fail-first", "2", NULL};
    start_sr(fx, args);
    const eddy_avro_schema_t *sch;

    /* two 503s, then the answer: the client's third attempt succeeds */
    eddy_sr_t *sr = sr_client(fx, "3");
    if (eddy__sr_get_schema(sr, 1, &sch, err, sizeof(err)))
        fail_msg("%s", err);
    assert_int_equal(eddy__sr_requests(sr), 3);
    eddy__sr_destroy(sr);

    /* down: everything is 503 and the client gives up after its retries */
    kill(fx->sr, SIGUSR1);
    wait_for_status(fx, "/subjects", 503);
    sr = sr_client(fx, "1");
    assert_int_equal(eddy__sr_get_schema(sr, 1, &sch, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, "failed after 2 attempts: HTTP 503"));

    /* up again: the same client gets the schema */
    kill(fx->sr, SIGUSR1);
    wait_for_status(fx, "/subjects", 200);
    if (eddy__sr_get_schema(sr, 1, &sch, err, sizeof(err)))
        fail_msg("%s", err);
    eddy__sr_destroy(sr);
}

/* -------------------------------------------------------- avro-produce */

/* Run avro-produce with args (NULL-terminated); *out and *err get its
 * stdout and stderr (malloc'd). Returns its exit code. */
static int run_produce(const char *const *args, char **out, char **err) {
    char out_path[128], err_path[128];
    in_dir(out_path, sizeof(out_path), "produce.out");
    in_dir(err_path, sizeof(err_path), "produce.err");
    const char *argv[48] = {g.produce_bin, "--bootstrap", g.bootstrap};
    int n = 3;
    for (; *args && n < 47; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    int code = tool_run((char *const *)argv, out_path, err_path, RUN_TIMEOUT_MS);
    *out = tool_slurp(out_path);
    *err = tool_slurp(err_path);
    return code;
}

typedef struct {
    int32_t partition;
    int64_t offset, ts_ms;
    char *key;
    unsigned char *val;
    size_t len;
} msg_t;

static int msg_cmp(const void *x, const void *y) {
    const msg_t *a = x, *b = y;
    if (a->partition != b->partition)
        return a->partition < b->partition ? -1 : 1;
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Read n messages from partitions 0..partitions-1 of topic, from the
 * beginning; sorted by partition, then offset. */
static msg_t *consume(const char *topic, int partitions, int n) {
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", g.bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", "test-tools", errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    msg_t *msgs = calloc((size_t)n + 1, sizeof(msg_t));
    int got = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (t = t0; got < n && t.tv_sec - t0.tv_sec < 30; clock_gettime(CLOCK_MONOTONIC, &t)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            msg_t *x = &msgs[got++];
            x->partition = m->partition;
            x->offset = m->offset;
            x->ts_ms = rd_kafka_message_timestamp(m, NULL);
            x->key = m->key ? strndup(m->key, m->key_len) : NULL;
            x->val = malloc(m->len + 1);
            memcpy(x->val, m->payload, m->len);
            x->len = m->len;
        }
        rd_kafka_message_destroy(m);
        if (got == n) /* one more poll: nothing beyond n may be there */
            for (int i = 0; i < 3 && got == n; i++)
                if ((m = rd_kafka_consumer_poll(rk, 100))) {
                    got += !m->err;
                    rd_kafka_message_destroy(m);
                }
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (got != n)
        fail_msg("topic %s: consumed %d messages, want %d", topic, got, n);
    qsort(msgs, (size_t)n, sizeof(msg_t), msg_cmp);
    return msgs;
}

static void msgs_free(msg_t *msgs, int n) {
    for (int i = 0; i < n; i++) {
        free(msgs[i].key);
        free(msgs[i].val);
    }
    free(msgs);
}

static int32_t wire_id(const msg_t *m) {
    return (int32_t)((uint32_t)m->val[1] << 24 | (uint32_t)m->val[2] << 16 |
                     (uint32_t)m->val[3] << 8 | m->val[4]);
}

/* Avro C's reader, independent of eddy's decoder. */
typedef struct {
    avro_schema_t s;
    avro_value_iface_t *iface;
    avro_value_t v;
} dec_t;

static void dec_init(dec_t *d, const char *json) {
    assert_int_equal(avro_schema_from_json_length(json, strlen(json), &d->s), 0);
    d->iface = avro_generic_class_from_schema(d->s);
    assert_int_equal(avro_generic_value_new(d->iface, &d->v), 0);
}

static void dec_free(dec_t *d) {
    avro_value_decref(&d->v);
    avro_value_iface_decref(d->iface);
    avro_schema_decref(d->s);
}

/* Decode the body of a wire-format message; 0, or -1 when it does not
 * decode to exactly its length. */
static int dec_msg(dec_t *d, const msg_t *m) {
    if (m->len < 5)
        return -1;
    avro_value_reset(&d->v);
    avro_reader_t r = avro_reader_memory((const char *)m->val + 5, (int64_t)(m->len - 5));
    char extra;
    int rc = avro_value_read(r, &d->v);
    bool all_read = rc == 0 && avro_read(r, &extra, 1) != 0; /* no byte left over */
    avro_reader_free(r);
    return all_read ? 0 : -1;
}

static avro_value_t field(avro_value_t *rec, const char *name) {
    avro_value_t f;
    if (avro_value_get_by_name(rec, name, &f, NULL))
        fail_msg("no field %s", name);
    return f;
}

static int64_t get_long(avro_value_t *rec, const char *name) {
    avro_value_t f = field(rec, name);
    int64_t x;
    assert_int_equal(avro_value_get_long(&f, &x), 0);
    return x;
}

/* A string field, NUL-terminated (borrowed from the value). */
static const char *get_str(avro_value_t *rec, const char *name) {
    avro_value_t f = field(rec, name);
    const char *s;
    size_t size;
    assert_int_equal(avro_value_get_string(&f, &s, &size), 0);
    return s;
}

static bool str_is(const char *s, const eddy_nx_str_t *x) {
    return strlen(s) == x->len && !memcmp(s, x->p, x->len);
}

/* The first n bids of eddy's Nexmark generator with this seed. */
static eddy_nx_event_t *gen_bids(uint64_t seed, int n, eddy_nx_gen_t **gen) {
    eddy_nx_conf_t c;
    eddy__nx_conf_default(&c);
    c.seed = seed;
    *gen = eddy__nx_gen_new(&c);
    assert_non_null(*gen);
    eddy_nx_event_t *ev = calloc((size_t)n, sizeof(*ev));
    char scratch[EDDY_NX_SCRATCH_BYTES];
    for (uint64_t e = 0, k = 0; (int)k < n; e++)
        if (eddy__nx_kind(*gen, e) == EDDY_NX_BID)
            eddy__nx_event(*gen, e, &ev[k++], scratch); /* bid strings are in the pools */
    return ev;
}

/* Whether decoded bid rec (v1 schema) is bid ev. */
static bool bid_equals(avro_value_t *rec, const eddy_nx_event_t *ev) {
    return get_long(rec, "auction") == ev->bid.auction &&
           get_long(rec, "bidder") == ev->bid.bidder && get_long(rec, "price") == ev->bid.price &&
           get_long(rec, "dateTime") == ev->ts_ms &&
           str_is(get_str(rec, "channel"), &ev->bid.channel) &&
           str_is(get_str(rec, "url"), &ev->bid.url) &&
           str_is(get_str(rec, "extra"), &ev->bid.extra);
}

static void avro_produce_writes_nexmark_bids_keyed_by_auction_with_event_time(void **state) {
    (void)state;
    enum { N = 300, PARTS = 3 };
    assert_int_equal(rd_kafka_mock_topic_create(g.mc, "bids", PARTS, 1), 0);
    char schema[1100];
    snprintf(schema, sizeof(schema), "%s/bid.avsc", g.schemas);
    const char *args[] = {
        "--topic",           "bids",     "--schema", schema, "--schema-id", "7",
        "--nexmark-bids",    "300",      "--seed",   "5",    "--key",       "auction",
        "--timestamp-field", "dateTime", NULL};
    char *out, *err;
    if (run_produce(args, &out, &err))
        fail_msg("avro-produce failed: %s", err);
    assert_string_equal(out, "produced 300\n");
    free(out);
    free(err);

    msg_t *msgs = consume("bids", PARTS, N);
    int start[PARTS + 1] = {0}, head[PARTS];
    for (int i = 0; i < N; i++)
        start[msgs[i].partition + 1]++;
    for (int p = 0; p < PARTS; p++) {
        start[p + 1] += start[p];
        head[p] = start[p];
        assert_true(start[p + 1] - start[p] > 0); /* keys spread over every partition */
    }
    eddy_nx_gen_t *gen;
    eddy_nx_event_t *ev = gen_bids(5, N, &gen);
    char *schema_text = schema_file_text("bid.avsc");
    dec_t d;
    dec_init(&d, schema_text);
    int64_t auction_of[N];
    int32_t partition_of[N];
    int nkeys = 0;
    /* every partition holds its bids in generator order, each auction in
     * one partition, keyed and timestamped by the bid */
    for (int i = 0; i < N; i++) {
        int p = 0;
        for (; p < PARTS; p++) {
            const msg_t *m = &msgs[head[p]];
            if (head[p] < start[p + 1] && !dec_msg(&d, m) && bid_equals(&d.v, &ev[i]))
                break;
        }
        if (p == PARTS)
            fail_msg("bid %d (auction %" PRId64 ") is not next in any partition", i,
                     ev[i].bid.auction);
        const msg_t *m = &msgs[head[p]++];
        char key[32];
        snprintf(key, sizeof(key), "%" PRId64, ev[i].bid.auction);
        assert_int_equal(m->val[0], 0);
        assert_int_equal(wire_id(m), 7);
        assert_non_null(m->key);
        assert_string_equal(m->key, key);
        assert_int_equal(m->ts_ms, ev[i].ts_ms);
        int k = 0;
        while (k < nkeys && auction_of[k] != ev[i].bid.auction)
            k++;
        if (k == nkeys) {
            auction_of[nkeys] = ev[i].bid.auction;
            partition_of[nkeys++] = m->partition;
        }
        assert_int_equal(partition_of[k], m->partition);
    }
    dec_free(&d);
    free(schema_text);
    free(ev);
    eddy__nx_gen_destroy(gen);
    msgs_free(msgs, N);
}

static const char ALL_TYPES[] =
    "{\"type\":\"record\",\"name\":\"All\",\"namespace\":\"t\",\"fields\":["
    "{\"name\":\"n\",\"type\":\"null\"},"
    "{\"name\":\"b\",\"type\":\"boolean\"},"
    "{\"name\":\"i\",\"type\":\"int\"},"
    "{\"name\":\"l\",\"type\":\"long\"},"
    "{\"name\":\"f\",\"type\":\"float\"},"
    "{\"name\":\"d\",\"type\":\"double\"},"
    "{\"name\":\"s\",\"type\":\"string\"},"
    "{\"name\":\"by\",\"type\":\"bytes\"},"
    "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"Color\",\"symbols\":[\"RED\",\"GREEN\"]"
    "}},"
    "{\"name\":\"a\",\"type\":{\"type\":\"array\",\"items\":\"long\"}},"
    "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"u\",\"type\":[\"null\",\"string\"]},"
    "{\"name\":\"r\",\"type\":{\"type\":\"record\",\"name\":\"Inner\",\"fields\":["
    "{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"tag\",\"type\":\"string\",\"default\":\"none\"}]"
    "}},"
    "{\"name\":\"fx\",\"type\":{\"type\":\"fixed\",\"name\":\"F2\",\"size\":2}},"
    "{\"name\":\"def\",\"type\":\"long\",\"default\":42},"
    "{\"name\":\"opt\",\"type\":[\"null\",\"long\"]}]}";

/* Branch index of union field `name`; *br is the branch value. */
static int branch_of(avro_value_t *rec, const char *name, avro_value_t *br) {
    avro_value_t u = field(rec, name);
    int b;
    assert_int_equal(avro_value_get_discriminant(&u, &b), 0);
    assert_int_equal(avro_value_get_current_branch(&u, br), 0);
    return b;
}

static void avro_produce_maps_json_lines_onto_every_avro_type_via_the_registry(void **state) {
    fx_t *fx = *state;
    start_sr(fx, NULL);
    char schema[128], json[128];
    in_dir(schema, sizeof(schema), "all.avsc");
    in_dir(json, sizeof(json), "all.json");
    write_file(schema, ALL_TYPES);
    write_file(
        json,
        "{\"n\":null,\"b\":true,\"i\":-5,\"l\":1700000000000,\"f\":1.5,\"d\":-2.25,"
        "\"s\":\"h\\u00e9llo\",\"by\":\"\\u0000\\u00ff\",\"e\":\"GREEN\",\"a\":[1,2,3],"
        "\"m\":{\"k\":\"v\"},\"u\":\"hi\",\"r\":{\"x\":7},\"fx\":\"ab\",\"opt\":{\"long\":5},"
        "\"not_in_schema\":1}\n"
        "\n"
        "{\"n\":null,\"b\":false,\"i\":2147483647,\"l\":1000,\"f\":0,\"d\":1e300,\"s\":\"x\","
        "\"by\":\"\",\"e\":\"RED\",\"a\":[],\"m\":{},\"u\":null,\"r\":{\"x\":0,\"tag\":\"t\"},"
        "\"fx\":\"\\u00ff\\u0000\",\"def\":7}\n");
    assert_int_equal(rd_kafka_mock_topic_create(g.mc, "all", 1, 1), 0);
    const char *args[] = {"--topic",  "all",       "--schema",          schema,   "--registry",
                          fx->sr_url, "--subject", "all-value",         "--json", json,
                          "--key",    "s",         "--timestamp-field", "l",      NULL};
    char *out, *err;
    if (run_produce(args, &out, &err))
        fail_msg("avro-produce failed: %s", err);
    assert_string_equal(out, "schema-id 1\nproduced 2\n");
    free(out);
    free(err);
    assert_get(fx, "/subjects", 200, "[\"all-value\"]");

    msg_t *msgs = consume("all", 1, 2);
    dec_t d;
    dec_init(&d, ALL_TYPES);
    avro_value_t v, br;
    const void *bytes;
    size_t size;
    int b;
    float f;
    double x;
    int32_t i32;

    assert_int_equal(wire_id(&msgs[0]), 1);
    assert_string_equal(msgs[0].key, "h\xc3\xa9llo");
    assert_int_equal(msgs[0].ts_ms, INT64_C(1700000000000));
    assert_int_equal(dec_msg(&d, &msgs[0]), 0);
    v = field(&d.v, "n");
    assert_int_equal(avro_value_get_type(&v), AVRO_NULL);
    v = field(&d.v, "b");
    avro_value_get_boolean(&v, &b);
    assert_int_equal(b, 1);
    v = field(&d.v, "i");
    avro_value_get_int(&v, &i32);
    assert_int_equal(i32, -5);
    assert_int_equal(get_long(&d.v, "l"), INT64_C(1700000000000));
    v = field(&d.v, "f");
    avro_value_get_float(&v, &f);
    assert_true(f == 1.5f);
    v = field(&d.v, "d");
    avro_value_get_double(&v, &x);
    assert_true(x == -2.25);
    assert_string_equal(get_str(&d.v, "s"), "h\xc3\xa9llo");
    v = field(&d.v, "by");
    avro_value_get_bytes(&v, &bytes, &size);
    assert_int_equal(size, 2);
    assert_memory_equal(bytes, "\x00\xff", 2);
    v = field(&d.v, "e");
    avro_value_get_enum(&v, &b);
    assert_int_equal(b, 1);
    v = field(&d.v, "a");
    avro_value_get_size(&v, &size);
    assert_int_equal(size, 3);
    avro_value_get_by_index(&v, 2, &br, NULL);
    int64_t l;
    avro_value_get_long(&br, &l);
    assert_int_equal(l, 3);
    v = field(&d.v, "m");
    avro_value_get_size(&v, &size);
    assert_int_equal(size, 1);
    assert_int_equal(avro_value_get_by_name(&v, "k", &br, NULL), 0);
    const char *s;
    avro_value_get_string(&br, &s, &size);
    assert_string_equal(s, "v");
    assert_int_equal(branch_of(&d.v, "u", &br), 1);
    avro_value_get_string(&br, &s, &size);
    assert_string_equal(s, "hi");
    v = field(&d.v, "r");
    assert_string_equal(get_str(&v, "tag"), "none"); /* the schema's default */
    avro_value_t rx = field(&v, "x");
    avro_value_get_int(&rx, &i32);
    assert_int_equal(i32, 7);
    v = field(&d.v, "fx");
    avro_value_get_fixed(&v, &bytes, &size);
    assert_int_equal(size, 2);
    assert_memory_equal(bytes, "ab", 2);
    assert_int_equal(get_long(&d.v, "def"), 42);
    assert_int_equal(branch_of(&d.v, "opt", &br), 1); /* {"long": 5}: Avro's JSON encoding */
    avro_value_get_long(&br, &l);
    assert_int_equal(l, 5);

    assert_string_equal(msgs[1].key, "x");
    assert_int_equal(msgs[1].ts_ms, 1000);
    assert_int_equal(dec_msg(&d, &msgs[1]), 0);
    v = field(&d.v, "i");
    avro_value_get_int(&v, &i32);
    assert_int_equal(i32, INT32_MAX);
    v = field(&d.v, "d");
    avro_value_get_double(&v, &x);
    assert_true(x == 1e300);
    v = field(&d.v, "a");
    avro_value_get_size(&v, &size);
    assert_int_equal(size, 0);
    assert_int_equal(branch_of(&d.v, "u", &br), 0);
    v = field(&d.v, "r");
    assert_string_equal(get_str(&v, "tag"), "t");
    v = field(&d.v, "fx");
    avro_value_get_fixed(&v, &bytes, &size);
    assert_memory_equal(bytes, "\xff\x00", 2);
    assert_int_equal(get_long(&d.v, "def"), 7);
    assert_int_equal(branch_of(&d.v, "opt", &br), 0); /* missing and nullable: null */
    dec_free(&d);
    msgs_free(msgs, 2);
}

static void avro_produce_names_the_line_and_field_of_a_record_it_cannot_map(void **state) {
    (void)state;
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"{\"b\":true,\"i\":\"x\"}", "bad.json:2: i: expected int, got a string"},
        {"{\"n\":null}", "bad.json:2: b: missing, and the schema gives no default"},
        {"{\"b\":true,\"i\":3000000000}",
         "bad.json:2: i: 3000000000 is out of the range of an int"},
        {"{\"b\":true,\"i\":1,\"l\":1,\"f\":1,\"d\":1,\"s\":\"\",\"by\":\"\",\"e\":\"BLUE\"}",
         "bad.json:2: e: 'BLUE' is not a symbol of enum Color"},
        {"[1]", "bad.json:2: expected one JSON object per line"},
    };
    char schema[128], json[128];
    in_dir(schema, sizeof(schema), "all.avsc");
    in_dir(json, sizeof(json), "bad.json");
    write_file(schema, ALL_TYPES);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char text[512];
        snprintf(text, sizeof(text), "\n%s\n", cases[c].line);
        write_file(json, text);
        const char *args[] = {"--topic", "bad", "--schema",        schema, "--schema-id", "1",
                              "--json",  json,  "--partitions-by", "0",    NULL};
        char *out, *err;
        assert_int_equal(run_produce(args, &out, &err), 1);
        if (!strstr(err, cases[c].want))
            fail_msg("case %zu: stderr %s lacks %s", c, err, cases[c].want);
        assert_null(strstr(out, "produced"));
        free(out);
        free(err);
    }
}

static void avro_produce_poisons_every_kth_message_and_logs_where(void **state) {
    (void)state;
    enum { N = 20 };
    assert_int_equal(rd_kafka_mock_topic_create(g.mc, "poison", 1, 1), 0);
    char schema[1100], log[128];
    snprintf(schema, sizeof(schema), "%s/bid.avsc", g.schemas);
    in_dir(log, sizeof(log), "poison.log");
    const char *args[] = {"--topic",        "poison", "--schema", schema, "--schema-id", "3",
                          "--nexmark-bids", "20",     "--seed",   "1",    "--poison",    "4",
                          "--poison-log",   log,      NULL};
    char *out, *err;
    if (run_produce(args, &out, &err))
        fail_msg("avro-produce failed: %s", err);
    assert_string_equal(out, "produced 20\n");
    free(out);
    free(err);
    char *text = tool_slurp(log);
    assert_string_equal(text, "poisoned 3 0 3 bad-magic\n"
                              "poisoned 7 0 7 unknown-id\n"
                              "poisoned 11 0 11 truncated\n"
                              "poisoned 15 0 15 bad-magic\n"
                              "poisoned 19 0 19 unknown-id\n");
    free(text);

    msg_t *msgs = consume("poison", 1, N);
    eddy_nx_gen_t *gen;
    eddy_nx_event_t *ev = gen_bids(1, N, &gen);
    char *schema_text = schema_file_text("bid.avsc");
    dec_t d;
    dec_init(&d, schema_text);
    /* Poisoned messages go through eddy's own wire split and decoder, as the
     * Kafka source will (Avro C's reader leaks a string cut short). */
    char why[256];
    eddy_avro_schema_t *bid =
        eddy__avro_schema_parse(schema_text, strlen(schema_text), why, sizeof(why));
    assert_non_null(bid);
    eddy_avro_plan_t *plan = eddy__avro_plan_new(bid, bid, why, sizeof(why));
    assert_non_null(plan);
    eddy_arena_t arena;
    eddy_arena_init(&arena, 4096);
    eddy_value_t vals[7];
    for (int i = 0; i < N; i++) {
        const msg_t *m = &msgs[i];
        int32_t id = -1;
        const void *body;
        size_t body_len;
        eddy_err_t split =
            eddy__avro_wire_split(m->val, m->len, &id, &body, &body_len, why, sizeof(why));
        assert_int_equal(m->offset, i);
        if (i == 3 || i == 15) { /* bad magic */
            assert_int_equal(split, EDDY_ERR_DECODE);
            assert_non_null(strstr(why, "bad magic byte 0x7f"));
        } else if (i == 7 || i == 19) { /* an id no registry here knows, body intact */
            assert_int_equal(split, EDDY_OK);
            assert_int_equal(id, 999999);
            assert_int_equal(dec_msg(&d, m), 0);
        } else if (i == 11) { /* header right, body cut short */
            assert_int_equal(split, EDDY_OK);
            assert_int_equal(id, 3);
            assert_int_equal(
                eddy__avro_decode(plan, body, body_len, &arena, vals, 0, why, sizeof(why)),
                EDDY_ERR_DECODE);
        } else {
            assert_int_equal(split, EDDY_OK);
            assert_int_equal(id, 3);
            assert_true(!dec_msg(&d, m) && bid_equals(&d.v, &ev[i]));
        }
    }
    eddy_arena_free(&arena);
    eddy__avro_plan_destroy(plan);
    eddy__avro_schema_destroy(bid);
    dec_free(&d);
    free(schema_text);
    free(ev);
    eddy__nx_gen_destroy(gen);
    msgs_free(msgs, N);
}

static void bid_v2_reads_bid_v1_data_and_avro_produce_writes_it_with_defaults(void **state) {
    (void)state;
    char *v1 = schema_file_text("bid.avsc"), *v2 = schema_file_text("bid_v2.avsc");
    char err[512];
    eddy_avro_schema_t *w = eddy__avro_schema_parse(v1, strlen(v1), err, sizeof(err));
    eddy_avro_schema_t *r = eddy__avro_schema_parse(v2, strlen(v2), err, sizeof(err));
    assert_non_null(w);
    assert_non_null(r);
    /* BACKWARD: a v2 reader takes v1 data; a v1 reader cannot take v2 data */
    eddy_avro_plan_t *plan = eddy__avro_plan_new(w, r, err, sizeof(err));
    if (!plan)
        fail_msg("%s", err);
    eddy__avro_plan_destroy(plan);
    assert_null(eddy__avro_plan_new(r, w, err, sizeof(err)));
    eddy__avro_schema_destroy(w);
    eddy__avro_schema_destroy(r);

    /* generated bids written with v2: price as double, currency from its
     * default, extra dropped */
    enum { N = 5 };
    assert_int_equal(rd_kafka_mock_topic_create(g.mc, "bids2", 1, 1), 0);
    char schema[1100];
    snprintf(schema, sizeof(schema), "%s/bid_v2.avsc", g.schemas);
    const char *args[] = {"--topic", "bids2",          "--schema", schema, "--schema-id",
                          "2",       "--nexmark-bids", "5",        NULL};
    char *out, *e;
    if (run_produce(args, &out, &e))
        fail_msg("avro-produce failed: %s", e);
    free(out);
    free(e);
    msg_t *msgs = consume("bids2", 1, N);
    eddy_nx_gen_t *gen;
    eddy_nx_event_t *ev = gen_bids(0, N, &gen);
    dec_t d;
    dec_init(&d, v2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(dec_msg(&d, &msgs[i]), 0);
        avro_value_t price = field(&d.v, "price");
        double x;
        assert_int_equal(avro_value_get_double(&price, &x), 0);
        assert_true(x == (double)ev[i].bid.price);
        assert_string_equal(get_str(&d.v, "currency"), "USD");
        assert_int_equal(get_long(&d.v, "auction"), ev[i].bid.auction);
    }
    dec_free(&d);
    free(ev);
    eddy__nx_gen_destroy(gen);
    msgs_free(msgs, N);
    free(v1);
    free(v2);
}

/* A port nothing listens on: bound, then closed. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void avro_produce_exits_1_naming_the_failure_when_delivery_fails(void **state) {
    (void)state;
    char schema[1100], bootstrap[64], out_path[128], err_path[128];
    snprintf(schema, sizeof(schema), "%s/bid.avsc", g.schemas);
    snprintf(bootstrap, sizeof(bootstrap), "127.0.0.1:%d", closed_port());
    in_dir(out_path, sizeof(out_path), "produce.out");
    in_dir(err_path, sizeof(err_path), "produce.err");
    const char *argv[] = {g.produce_bin,
                          "--bootstrap",
                          bootstrap,
                          "--topic",
                          "t",
                          "--schema",
                          schema,
                          "--schema-id",
                          "1",
                          "--nexmark-bids",
                          "3",
                          "--partitions-by",
                          "0",
                          "-X",
                          "message.timeout.ms=1000",
                          NULL};
    assert_int_equal(tool_run((char *const *)argv, out_path, err_path, RUN_TIMEOUT_MS), 1);
    char *out = tool_slurp(out_path), *err = tool_slurp(err_path);
    if (!strstr(err, "avro-produce: delivery failed for 3 messages (first: partition 0: "))
        fail_msg("stderr: %s", err);
    assert_null(strstr(out, "produced"));
    free(out);
    free(err);

    /* a usage error is exit code 2 */
    const char *bad[] = {g.produce_bin, "--topic", "t", NULL};
    assert_int_equal(tool_run((char *const *)bad, out_path, err_path, RUN_TIMEOUT_MS), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            sr_server_serves_preloaded_and_registered_schemas_to_eddys_client, setup, teardown),
        cmocka_unit_test_setup_teardown(sr_server_fail_first_and_sigusr1_down_mode_answer_503,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            avro_produce_writes_nexmark_bids_keyed_by_auction_with_event_time, setup, teardown),
        cmocka_unit_test_setup_teardown(
            avro_produce_maps_json_lines_onto_every_avro_type_via_the_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(
            avro_produce_names_the_line_and_field_of_a_record_it_cannot_map, setup, teardown),
        cmocka_unit_test_setup_teardown(avro_produce_poisons_every_kth_message_and_logs_where,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            bid_v2_reads_bid_v1_data_and_avro_produce_writes_it_with_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(avro_produce_exits_1_naming_the_failure_when_delivery_fails,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
