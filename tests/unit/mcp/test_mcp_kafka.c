/*
 * MCP over Kafka end to end: the embedded cluster (librdkafka's mock
 * cluster on 127.0.0.1), a running engine with the MCP fixture's stores,
 * the Kafka transport on topic mcp-requests, and the test as the agent: a
 * plain librdkafka producer writing requests with mcp-reply-to,
 * mcp-session-id and mcp-correlation-id headers, and one plain consumer
 * per reply topic reading what comes back.
 */
#include <pthread.h>
#include <time.h>

#include "mcp_fixture.h"

#include "connectors/kafka.h"
#include "mcp/mcp_transport.h"

#define REQUESTS "mcp-requests"
#define MAX_REQUEST 4096

typedef struct {
    fx_t *f;
    eddy_mcp_kafka_transport_t *t;
    rd_kafka_t *agent;                      /* producer of requests */
    rd_kafka_t *a, *b, *c, *d1, *d2, *dflt; /* one consumer per reply topic */
} kx_t;

static char g_bootstrap[512];

static int64_t mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}
#define mono_ms() (mono_us() / 1000)

/* ------------------------------------------------------------ the agent */

static rd_kafka_conf_t *agent_conf(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    return conf;
}

static rd_kafka_t *agent_producer(void) {
    rd_kafka_conf_t *conf = agent_conf();
    rd_kafka_conf_set(conf, "linger.ms", "0", NULL, 0);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    return rk;
}

/* A consumer of partition 0 of topic (created here, one partition), from
 * its start. */
static rd_kafka_t *reply_consumer(const char *topic) {
    char err[256];
    assert_int_equal(eddy__kafka_embedded_topic(topic, 1, err, sizeof(err)), EDDY_OK);
    rd_kafka_conf_t *conf = agent_conf();
    rd_kafka_conf_set(conf, "group.id", "agent", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static void consumer_free(rd_kafka_t *rk) {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* Produce one request to topic (value NULL: a tombstone); NULL headers
 * are left out. Not flushed: an agent waits for the reply, not for the
 * acknowledgement (a flush costs ~10 ms on the mock cluster, ten times
 * the round trip). */
static void send_to(rd_kafka_t *p, const char *topic, const char *value, size_t len,
                    const char *session, const char *reply_to, const char *corr, const char *key) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    if (session)
        rd_kafka_header_add(h, "mcp-session-id", -1, session, -1);
    if (reply_to)
        rd_kafka_header_add(h, "MCP-Reply-To", -1, reply_to, -1); /* any case */
    if (corr)
        rd_kafka_header_add(h, "mcp-correlation-id", -1, corr, -1);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
        RD_KAFKA_V_VALUE((void *)value, value ? len : 0), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    assert_int_equal(e, 0);
    rd_kafka_poll(p, 0);
}

static void send_req(rd_kafka_t *p, const char *value, size_t len, const char *session,
                     const char *reply_to, const char *corr, const char *key) {
    send_to(p, REQUESTS, value, len, session, reply_to, corr, key);
}

static void send_json(rd_kafka_t *p, const char *json, const char *session, const char *reply_to,
                      const char *corr, const char *key) {
    send_req(p, json, strlen(json), session, reply_to, corr, key);
}

typedef struct {
    json_t *body;
    char session[200], corr[200], key[200];
    bool has_session, has_corr;
} reply_t;

static void hdr_copy(rd_kafka_headers_t *h, const char *name, char *out, size_t n, bool *has) {
    const void *v;
    size_t l;
    *has = h && !rd_kafka_header_get_last(h, name, &v, &l);
    if (*has)
        snprintf(out, n, "%.*s", (int)l, (const char *)v);
}

/* The next message on c, or false after timeout_ms. */
static bool next_reply(rd_kafka_t *c, int timeout_ms, reply_t *r) {
    memset(r, 0, sizeof(*r));
    int64_t end = mono_ms() + timeout_ms;
    while (mono_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 20);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        json_error_t je;
        r->body = json_loadb(m->payload, m->len, 0, &je);
        if (!r->body)
            fail_msg("reply is not JSON (%s): %.*s", je.text, (int)m->len, (char *)m->payload);
        snprintf(r->key, sizeof(r->key), "%.*s", (int)m->key_len, (const char *)m->key);
        rd_kafka_headers_t *h = NULL;
        if (rd_kafka_message_headers(m, &h))
            h = NULL;
        hdr_copy(h, "mcp-session-id", r->session, sizeof(r->session), &r->has_session);
        hdr_copy(h, "mcp-correlation-id", r->corr, sizeof(r->corr), &r->has_corr);
        rd_kafka_message_destroy(m);
        return true;
    }
    return false;
}

/* The next reply on c carries corr (NULL: none), session and key; its
 * body (new reference). */
static json_t *expect_reply(rd_kafka_t *c, const char *corr, const char *session, const char *key) {
    reply_t r;
    if (!next_reply(c, 10000, &r))
        fail_msg("no reply with correlation id %s within 10 s", corr ? corr : "(none)");
    if (corr) {
        assert_true(r.has_corr);
        assert_string_equal(r.corr, corr);
    } else {
        assert_false(r.has_corr);
    }
    if (session) {
        assert_true(r.has_session);
        assert_string_equal(r.session, session);
    }
    assert_string_equal(r.key, key ? key : "");
    return r.body;
}

static void expect_nothing(rd_kafka_t *c, int ms) {
    reply_t r;
    if (next_reply(c, ms, &r)) {
        char *t = json_dumps(r.body, JSON_COMPACT);
        fail_msg("unexpected message: %s", t);
    }
}

/* A request and its reply: the JSON-RPC response (new reference). */
static json_t *call(kx_t *x, rd_kafka_t *c, const char *topic, const char *session,
                    const char *corr, const char *json) {
    send_json(x->agent, json, session, topic, corr, session);
    return expect_reply(c, corr, session, session);
}

static const char *INIT =
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
    "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"agent\",\"version\":\"1\"}}}";
static const char *INITIALIZED = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

static void open_session(kx_t *x, rd_kafka_t *c, const char *topic, const char *session) {
    json_t *res = expect_result(call(x, c, topic, session, "init", INIT), "1");
    assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), "2025-11-25");
    json_decref(res);
    send_json(x->agent, INITIALIZED, session, topic, NULL, session);
}

/* get_value of totals for user: structuredContent.value.c */
static json_int_t count_of(kx_t *x, rd_kafka_t *c, const char *topic, const char *session,
                           const char *corr, const char *user) {
    char req[512];
    snprintf(req, sizeof(req),
             "{\"jsonrpc\":\"2.0\",\"id\":\"%s\",\"method\":\"tools/call\",\"params\":{\"name\":"
             "\"get_value\",\"arguments\":{\"store\":\"totals\",\"key\":\"%s\"}}}",
             corr, user);
    char idtext[128];
    snprintf(idtext, sizeof(idtext), "\"%s\"", corr);
    json_t *res = expect_result(call(x, c, topic, session, corr, req), idtext);
    assert_true(json_is_false(json_object_get(res, "isError")));
    json_t *sc = json_object_get(res, "structuredContent");
    assert_true(json_is_true(json_object_get(sc, "found")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(sc, "value"), "user")),
                        user);
    json_int_t n = json_integer_value(json_object_get(json_object_get(sc, "value"), "c"));
    json_decref(res);
    return n;
}

static eddy_mcp_kafka_transport_stats_t stats(kx_t *x) {
    eddy_mcp_kafka_transport_stats_t st;
    eddy__mcp_kafka_transport_stats(x->t, &st);
    return st;
}

/* ------------------------------------------------------------ fixture */

static void wait_committed(eddy_engine_t *eng, uint64_t events) {
    int64_t end = mono_ms() + 10000;
    eddy_stats_t st;
    do {
        eddy_engine_stats(eng, &st);
        usleep(5000);
    } while (st.events_in < events && mono_ms() < end);
    assert_true(st.events_in >= events);
    uint64_t c0 = st.commits;
    do {
        eddy_engine_stats(eng, &st);
        usleep(5000);
    } while (st.commits < c0 + 2 && mono_ms() < end);
    assert_true(st.commits >= c0 + 2);
}

static int setup(void **state) {
    char err[1024];
    assert_int_equal(
        eddy__kafka_embedded_acquire(g_bootstrap, sizeof(g_bootstrap), err, sizeof(err)), EDDY_OK);
    kx_t *x = calloc(1, sizeof(*x));
    /* a live engine (the input stays open, commits every 50 ms) with the
     * fixture's data: user u_i has i+1 records */
    x->f = fx_engine("50ms");
    char user[8];
    for (int j = 0; j < 10; j++)
        for (int i = j; i < 10; i++) {
            snprintf(user, sizeof(user), "u%d", i);
            fx_push(x->f->eng, user, j, T0 + 10 * j);
        }
    assert_int_equal(eddy_engine_start(x->f->eng), EDDY_OK);
    wait_committed(x->f->eng, 55);
    eddy_mcp_opts_t mo;
    eddy__mcp_opts_default(&mo);
    mo.max_request_bytes = MAX_REQUEST;
    x->f->m = eddy__mcp_new(x->f->eng, &mo);

    x->a = reply_consumer("mcp-replies-a");
    x->b = reply_consumer("mcp-replies-b");
    x->c = reply_consumer("mcp-replies-c");
    x->d1 = reply_consumer("mcp-replies-d1");
    x->d2 = reply_consumer("mcp-replies-d2");
    x->dflt = reply_consumer("mcp-default");
    x->agent = agent_producer();

    eddy_mcp_kafka_transport_opts_t ko;
    eddy__mcp_kafka_transport_opts_default(&ko);
    ko.kafka.request_topic = REQUESTS;
    ko.kafka.default_reply_topic = "mcp-default";
    ko.kafka.reply_prefix = "mcp-";
    ko.kafka.threads = 3;
    ko.topo = x->f->topo; /* no kafka: map: the embedded cluster */
    int64_t t0 = mono_ms();
    x->t = eddy__mcp_kafka_transport_start(x->f->m, &ko, err, sizeof(err));
    if (!x->t)
        fail_msg("%s", err);
    print_message("transport ready in %lld ms (group %s)\n", (long long)(mono_ms() - t0),
                  eddy__mcp_kafka_transport_group(x->t));
    assert_string_equal(eddy__mcp_kafka_transport_group(x->t), "mcptest-mcp");
    *state = x;
    return 0;
}

static int teardown(void **state) {
    kx_t *x = *state;
    eddy__mcp_kafka_transport_stop(x->t);
    rd_kafka_destroy(x->agent);
    rd_kafka_t *cs[] = {x->a, x->b, x->c, x->d1, x->d2, x->dflt};
    for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++)
        consumer_free(cs[i]);
    assert_int_equal(eddy_engine_end_input(x->f->eng, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_poll(x->f->eng, 20000), EDDY_OK);
    fx_free(x->f);
    free(x);
    eddy__kafka_embedded_release();
    return 0;
}

/* -------------------------------------------------------------- tests */

static void a_session_answers_tools_on_its_reply_topic_with_correlation_ids(void **state) {
    kx_t *x = *state;
    open_session(x, x->a, "mcp-replies-a", "agent-a");
    /* the notification above had no reply: the next message is this one's */
    json_t *res = expect_result(call(x, x->a, "mcp-replies-a", "agent-a", "list-1",
                                     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}"),
                                "2");
    json_t *tools = json_object_get(res, "tools");
    bool get_value = false, scan_store = false;
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const char *n = json_string_value(json_object_get(json_array_get(tools, i), "name"));
        get_value |= !strcmp(n, "get_value");
        scan_store |= !strcmp(n, "scan_store");
    }
    assert_true(get_value && scan_store);
    json_decref(res);

    assert_int_equal(count_of(x, x->a, "mcp-replies-a", "agent-a", "gv-1", "u3"), 4);

    res = expect_result(call(x, x->a, "mcp-replies-a", "agent-a", "scan-1",
                             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                             "\"params\":{\"name\":\"scan_store\",\"arguments\":{\"store\":"
                             "\"totals\",\"limit\":3}}}"),
                        "3");
    json_t *sc = json_object_get(res, "structuredContent");
    json_t *items = json_object_get(sc, "items");
    assert_int_equal(json_array_size(items), 3);
    const char *want[] = {"u0", "u1", "u2"};
    for (int i = 0; i < 3; i++)
        assert_string_equal(
            json_string_value(json_object_get(json_array_get(items, (size_t)i), "user")), want[i]);
    assert_true(json_is_string(json_object_get(sc, "next_cursor")));
    json_decref(res);

    /* round trips on the embedded cluster: produce, handle, reply, fetch */
    enum { N = 50 };
    int64_t us[N];
    for (int i = 0; i < N; i++) {
        char corr[32];
        snprintf(corr, sizeof(corr), "lat-%d", i);
        int64_t t0 = mono_us();
        assert_int_equal(count_of(x, x->a, "mcp-replies-a", "agent-a", corr, "u9"), 10);
        us[i] = mono_us() - t0;
    }
    for (int i = 1; i < N; i++)
        for (int k = i; k > 0 && us[k] < us[k - 1]; k--) {
            int64_t tmp = us[k];
            us[k] = us[k - 1];
            us[k - 1] = tmp;
        }
    print_message("get_value round trip over Kafka (produce, handle, reply, fetch): median "
                  "%.2f ms, max %.2f ms (%d calls)\n",
                  (double)us[N / 2] / 1000.0, (double)us[N - 1] / 1000.0, N);
    expect_nothing(x->a, 200);
}

static void initialize_without_a_session_id_gets_a_new_one_in_the_reply(void **state) {
    kx_t *x = *state;
    send_json(x->agent, INIT, NULL, "mcp-replies-a", "init-anon", "k-anon");
    reply_t r;
    assert_true(next_reply(x->a, 10000, &r));
    assert_string_equal(r.corr, "init-anon");
    assert_string_equal(r.key, "k-anon");
    assert_true(r.has_session);
    assert_int_equal(strlen(r.session), 32);
    json_decref(expect_result(r.body, "1"));
    char sid[sizeof(r.session)];
    snprintf(sid, sizeof(sid), "%s", r.session);
    json_decref(expect_result(call(x, x->a, "mcp-replies-a", sid, "ping-anon",
                                   "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}"),
                              "9"));
}

static void bad_input_gets_error_replies_and_the_transport_goes_on(void **state) {
    kx_t *x = *state;
    uint64_t bad0 = stats(x).bad_input;
    /* not JSON */
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":", "agent-a", "mcp-replies-a", "bad-1",
              "agent-a");
    expect_error(expect_reply(x->a, "bad-1", "agent-a", "agent-a"), RPC_PARSE_ERROR, "null");
    /* over the size limit */
    char *big = malloc(MAX_REQUEST + 100);
    int n = snprintf(big, MAX_REQUEST + 100,
                     "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\","
                     "\"params\":{\"pad\":\"");
    memset(big + n, 'x', MAX_REQUEST);
    strcpy(big + MAX_REQUEST, "\"}}");
    send_json(x->agent, big, "agent-a", "mcp-replies-a", "bad-2", "agent-a");
    free(big);
    json_t *e = expect_reply(x->a, "bad-2", "agent-a", "agent-a");
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(e, "error"), "message")),
               "over the limit"));
    expect_error(e, RPC_INVALID_REQUEST, "null");
    /* a null value without a session to end */
    send_req(x->agent, NULL, 0, NULL, "mcp-replies-a", "bad-3", "agent-a");
    expect_error(expect_reply(x->a, "bad-3", NULL, "agent-a"), RPC_INVALID_REQUEST, "null");
    /* a session id that is not printable ASCII: the error keeps the id */
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}", "two words",
              "mcp-replies-a", "bad-4", "agent-a");
    expect_error(expect_reply(x->a, "bad-4", NULL, "agent-a"), RPC_INVALID_REQUEST, "6");
    /* JSON that is not a JSON-RPC request: the server's own error */
    json_t *r = call(x, x->a, "mcp-replies-a", "agent-a", "bad-5", "[]");
    expect_error(r, RPC_INVALID_REQUEST, "null");
    assert_int_equal(stats(x).bad_input, bad0 + 4);
    /* and the session still works */
    assert_int_equal(count_of(x, x->a, "mcp-replies-a", "agent-a", "after-bad", "u1"), 2);
}

static void a_request_for_an_unknown_or_missing_session_gets_an_error(void **state) {
    kx_t *x = *state;
    eddy_mcp_kafka_transport_stats_t s0 = stats(x);
    json_t *r = call(x, x->a, "mcp-replies-a", "nobody", "unk-1",
                     "{\"jsonrpc\":\"2.0\",\"id\":\"u\",\"method\":\"tools/list\"}");
    const char *msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    assert_non_null(strstr(msg, "unknown session 'nobody'"));
    expect_error(r, RPC_INVALID_REQUEST, "\"u\"");
    /* no mcp-session-id at all */
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\"}", NULL,
              "mcp-replies-a", "unk-2", "k");
    r = expect_reply(x->a, "unk-2", NULL, "k");
    msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    assert_non_null(strstr(msg, "mcp-session-id header is required"));
    expect_error(r, RPC_INVALID_REQUEST, "7");
    /* a notification for an unknown session: counted, never answered */
    send_json(x->agent, INITIALIZED, "nobody", "mcp-replies-a", "unk-3", "k");
    expect_nothing(x->a, 300);
    eddy_mcp_kafka_transport_stats_t s1 = stats(x);
    assert_int_equal(s1.unknown_session, s0.unknown_session + 2);
    assert_int_equal(s1.no_session, s0.no_session + 1);
}

static void two_sessions_reply_to_their_own_topics(void **state) {
    kx_t *x = *state;
    open_session(x, x->b, "mcp-replies-b", "agent-b");
    open_session(x, x->c, "mcp-replies-c", "agent-c");
    /* interleaved, all sent before any reply is read */
    for (int i = 0; i < 5; i++) {
        char req[512], corr[32];
        snprintf(corr, sizeof(corr), "b-%d", i);
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"get_value\",\"arguments\":{\"store\":\"totals\",\"key\":\"u%d\"}}}",
                 100 + i, i);
        send_json(x->agent, req, "agent-b", "mcp-replies-b", corr, "agent-b");
        snprintf(corr, sizeof(corr), "c-%d", i);
        snprintf(req, sizeof(req),
                 "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":"
                 "\"get_value\",\"arguments\":{\"store\":\"totals\",\"key\":\"u%d\"}}}",
                 200 + i, 5 + i);
        send_json(x->agent, req, "agent-c", "mcp-replies-c", corr, "agent-c");
    }
    /* each topic has its own session's answers, in order */
    for (int i = 0; i < 5; i++) {
        char corr[32], id[16];
        snprintf(corr, sizeof(corr), "b-%d", i);
        snprintf(id, sizeof(id), "%d", 100 + i);
        json_t *res = expect_result(expect_reply(x->b, corr, "agent-b", "agent-b"), id);
        json_t *v = json_object_get(json_object_get(res, "structuredContent"), "value");
        assert_int_equal(json_integer_value(json_object_get(v, "c")), i + 1);
        json_decref(res);
        snprintf(corr, sizeof(corr), "c-%d", i);
        snprintf(id, sizeof(id), "%d", 200 + i);
        res = expect_result(expect_reply(x->c, corr, "agent-c", "agent-c"), id);
        v = json_object_get(json_object_get(res, "structuredContent"), "value");
        assert_int_equal(json_integer_value(json_object_get(v, "c")), 6 + i);
        json_decref(res);
    }
    expect_nothing(x->b, 100);
    expect_nothing(x->c, 100);
    /* a null value ends agent-c; agent-b goes on */
    send_req(x->agent, NULL, 0, "agent-c", "mcp-replies-c", NULL, "agent-c");
    json_t *r = call(x, x->c, "mcp-replies-c", "agent-c", "c-after",
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    expect_error(r, RPC_INVALID_REQUEST, "1");
    json_decref(expect_result(call(x, x->b, "mcp-replies-b", "agent-b", "b-after",
                                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}"),
                              "2"));
}

static void updates_go_to_the_latest_reply_topic_of_the_subscribed_session(void **state) {
    kx_t *x = *state;
    open_session(x, x->d1, "mcp-replies-d1", "agent-d");
    /* the subscription is asked with replies to d2: d2 is now the session's */
    json_decref(
        expect_result(call(x, x->d2, "mcp-replies-d2", "agent-d", "sub-1",
                           "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"resources/subscribe\","
                           "\"params\":{\"uri\":\"eddy://store/totals/u1\"}}"),
                      "\"s\""));
    fx_push(x->f->eng, "u1", 100, T0 + 500);
    reply_t r;
    assert_true(next_reply(x->d2, 10000, &r));
    assert_false(r.has_corr);
    assert_true(r.has_session);
    assert_string_equal(r.session, "agent-d");
    assert_string_equal(r.key, "agent-d");
    assert_null(json_object_get(r.body, "id"));
    assert_string_equal(json_string_value(json_object_get(r.body, "method")),
                        "notifications/resources/updated");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.body, "params"), "uri")),
        "eddy://store/totals/u1");
    json_decref(r.body);
    expect_nothing(x->d1, 200);
    assert_int_equal(count_of(x, x->d2, "mcp-replies-d2", "agent-d", "gv-d", "u1"), 3);
}

static void replies_without_reply_to_use_the_default_topic_and_others_are_refused(void **state) {
    kx_t *x = *state;
    open_session(x, x->a, "mcp-replies-a", "agent-e");
    /* no mcp-reply-to: the default reply topic */
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", "agent-e", NULL,
              "dflt-1", "agent-e");
    json_decref(expect_result(expect_reply(x->dflt, "dflt-1", "agent-e", "agent-e"), "1"));
    /* outside the reply prefix, or not a topic name: dropped and counted */
    uint64_t refused0 = stats(x).kafka.bad_reply_to;
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}", "agent-e",
              "elsewhere", "dflt-2", "agent-e");
    send_json(x->agent, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}", "agent-e",
              "mcp-no/such", "dflt-3", "agent-e");
    /* a later request's reply arrives, so those two were handled first */
    json_decref(expect_result(call(x, x->a, "mcp-replies-a", "agent-e", "dflt-4",
                                   "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}"),
                              "4"));
    assert_int_equal(stats(x).kafka.bad_reply_to, refused0 + 2);
    expect_nothing(x->dflt, 100);
}

/* Options of another transport on the test's engine. */
static eddy_mcp_kafka_transport_opts_t other_opts(kx_t *x, const char *topic,
                                                  const char *const *props) {
    eddy_mcp_kafka_transport_opts_t ko;
    eddy__mcp_kafka_transport_opts_default(&ko);
    ko.kafka.request_topic = topic;
    ko.topo = x->f->topo;
    ko.props = props;
    return ko;
}

static void
without_a_default_topic_replies_are_dropped_and_oversized_ones_become_errors(void **state) {
    kx_t *x = *state;
    /* a second transport (its own group and request topic), no default
     * reply topic, and room for small replies only */
    const char *props[] = {"group.id=second", "message.max.bytes=1000", NULL};
    eddy_mcp_kafka_transport_opts_t ko = other_opts(x, "mcp-requests-2", props);
    char err[512];
    eddy_mcp_kafka_transport_t *t2 =
        eddy__mcp_kafka_transport_start(x->f->m, &ko, err, sizeof(err));
    if (!t2)
        fail_msg("%s", err);
    assert_string_equal(eddy__mcp_kafka_transport_group(t2), "second");
    send_to(x->agent, "mcp-requests-2", INIT, strlen(INIT), NULL, NULL, "nowhere", NULL);
    eddy_mcp_kafka_transport_stats_t st;
    int64_t end = mono_ms() + 10000;
    do {
        usleep(10000);
        eddy__mcp_kafka_transport_stats(t2, &st);
    } while (st.kafka.no_reply_topic == 0 && mono_ms() < end);
    assert_int_equal(st.kafka.received, 1);
    assert_int_equal(st.kafka.no_reply_topic, 1);
    assert_int_equal(st.kafka.replies, 0);

    /* a response over message.max.bytes becomes an error that fits */
    send_to(x->agent, "mcp-requests-2", INIT, strlen(INIT), "small", "mcp-replies-b", "big-1",
            NULL);
    json_t *r = expect_reply(x->b, "big-1", "small", NULL);
    const char *msg = json_string_value(json_object_get(json_object_get(r, "error"), "message"));
    assert_non_null(msg);
    assert_non_null(strstr(msg, "message.max.bytes"));
    expect_error(r, RPC_INTERNAL_ERROR, "1");
    /* the session opened all the same, and small answers pass */
    static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
    send_to(x->agent, "mcp-requests-2", ping, strlen(ping), "small", "mcp-replies-b", "small-1",
            NULL);
    json_decref(expect_result(expect_reply(x->b, "small-1", "small", NULL), "2"));
    eddy__mcp_kafka_transport_stop(t2);
}

static void unknown_properties_and_topics_fail_at_start(void **state) {
    kx_t *x = *state;
    const char *props[] = {"bootstrap.server=localhost:1", NULL};
    eddy_mcp_kafka_transport_opts_t ko = other_opts(x, "mcp-requests-3", props);
    char err[512];
    assert_null(eddy__mcp_kafka_transport_start(x->f->m, &ko, err, sizeof(err)));
    assert_non_null(strstr(err, "bootstrap.server"));
    ko.props = NULL;
    ko.kafka.default_reply_topic = "no/such";
    assert_null(eddy__mcp_kafka_transport_start(x->f->m, &ko, err, sizeof(err)));
    assert_non_null(strstr(err, "no/such"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_session_answers_tools_on_its_reply_topic_with_correlation_ids),
        cmocka_unit_test(initialize_without_a_session_id_gets_a_new_one_in_the_reply),
        cmocka_unit_test(bad_input_gets_error_replies_and_the_transport_goes_on),
        cmocka_unit_test(a_request_for_an_unknown_or_missing_session_gets_an_error),
        cmocka_unit_test(two_sessions_reply_to_their_own_topics),
        cmocka_unit_test(updates_go_to_the_latest_reply_topic_of_the_subscribed_session),
        cmocka_unit_test(replies_without_reply_to_use_the_default_topic_and_others_are_refused),
        cmocka_unit_test(
            without_a_default_topic_replies_are_dropped_and_oversized_ones_become_errors),
        cmocka_unit_test(unknown_properties_and_topics_fail_at_start),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
