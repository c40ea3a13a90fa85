/*
 * Schema registry client against a tiny registry over real HTTP
 * (libmicrohttpd on 127.0.0.1, port 0) implementing the Confluent REST
 * subset: GET /schemas/ids/{id} and POST /subjects/{subject}/versions.
 * The server counts requests, records the Authorization header, can answer
 * 503 a number of times, and can be stopped and restarted on its port.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "connectors/schema_registry.h"
#include "tests/unit/connectors/avro_enc.h"
#include "tests/unit/connectors/sr_server.h"

static const char BID_V1[] = "{\"type\":\"record\",\"name\":\"Bid\",\"fields\":["
                             "{\"name\":\"auction\",\"type\":\"long\"},"
                             "{\"name\":\"price\",\"type\":\"long\"}]}";
static const char BID_R[] = "{\"type\":\"record\",\"name\":\"Bid\",\"fields\":["
                            "{\"name\":\"auction\",\"type\":\"long\"},"
                            "{\"name\":\"price\",\"type\":\"double\"},"
                            "{\"name\":\"channel\",\"type\":\"string\",\"default\":\"web\"}]}";
static const char BID_BAD[] = "{\"type\":\"record\",\"name\":\"Bid\",\"fields\":["
                              "{\"name\":\"price\",\"type\":\"string\"}]}";

static int setup(void **state) {
    srv_t *s = srv_new(3);
    s->schemas[1] = strdup(BID_V1);
    s->schemas[2] = strdup(BID_BAD);
    if (srv_start(s, 0))
        return -1;
    *state = s;
    return 0;
}

static int teardown(void **state) {
    srv_free(*state);
    return 0;
}

static eddy_sr_t *client(const srv_t *s, const char *const *kv) {
    char err[256], url[64];
    eddy_sr_conf_t *c = eddy__sr_conf_new();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", (unsigned)s->port);
    assert_int_equal(eddy__sr_conf_set(c, "url", url, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retry.backoff.ms", "20ms", err, sizeof(err)), EDDY_OK);
    for (; kv && kv[0]; kv += 2)
        if (eddy__sr_conf_set(c, kv[0], kv[1], err, sizeof(err)))
            fail_msg("%s", err);
    eddy_sr_t *sr = eddy__sr_new(c, err, sizeof(err));
    if (!sr)
        fail_msg("%s", err);
    return sr;
}

static int reqs(srv_t *s) { return __atomic_load_n(&s->requests, __ATOMIC_SEQ_CST); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------- tests */

static void schema_is_fetched_once_then_served_from_cache(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    char err[512];
    const eddy_avro_schema_t *a, *b;
    assert_int_equal(eddy__sr_get_schema(sr, 1, &a, err, sizeof(err)), EDDY_OK);
    assert_string_equal(eddy__avro_schema_json(a), BID_V1);
    assert_int_equal(reqs(s), 1);
    assert_int_equal(eddy__sr_get_schema(sr, 1, &b, err, sizeof(err)), EDDY_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(reqs(s), 1); /* no second HTTP call */
    assert_int_equal(eddy__sr_requests(sr), 1);

    /* a plan per (id, reader), cached too; it decodes Avro C's bytes */
    eddy_avro_schema_t *reader = eddy__avro_schema_parse(BID_R, strlen(BID_R), err, sizeof(err));
    const eddy_avro_plan_t *p1, *p2;
    assert_int_equal(eddy__sr_plan(sr, 1, reader, &p1, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__sr_plan(sr, 1, reader, &p2, err, sizeof(err)), EDDY_OK);
    assert_ptr_equal(p1, p2);
    assert_int_equal(reqs(s), 1);
    enc_t e;
    enc_init(&e, BID_V1);
    enc_long(&e, "auction", 9);
    enc_long(&e, "price", 250);
    char msg[64] = {0, 0, 0, 0, 1};
    size_t n = 5 + enc_write(&e, msg + 5, sizeof(msg) - 5);
    enc_free(&e);
    int32_t id;
    const void *body;
    size_t blen;
    assert_int_equal(eddy__avro_wire_split(msg, n, &id, &body, &blen, err, sizeof(err)), EDDY_OK);
    assert_int_equal(id, 1);
    const eddy_avro_plan_t *p;
    assert_int_equal(eddy__sr_plan(sr, id, reader, &p, err, sizeof(err)), EDDY_OK);
    eddy_arena_t arena;
    eddy_arena_init(&arena, 1024);
    eddy_value_t vals[3];
    assert_int_equal(eddy__avro_decode(p, body, blen, &arena, vals, 0, err, sizeof(err)), EDDY_OK);
    assert_int_equal(vals[0].u.i, 9);
    assert_true(vals[1].type == EDDY_TYPE_DOUBLE && vals[1].u.d == 250.0);
    assert_true(vals[2].len == 3 && !memcmp(vals[2].u.s, "web", 3));
    eddy_arena_free(&arena);
    eddy__avro_schema_destroy(reader);
    eddy__sr_destroy(sr);
}

static void unknown_id_is_an_error_naming_the_id(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    char err[512];
    const eddy_avro_schema_t *a;
    assert_int_equal(eddy__sr_get_schema(sr, 999, &a, err, sizeof(err)), EDDY_ERR_NOENT);
    assert_non_null(strstr(err, "schema id 999: not found"));
    assert_non_null(strstr(err, "40403 Schema not found"));
    assert_non_null(strstr(err, "http://127.0.0.1:"));
    assert_int_equal(reqs(s), 1); /* a 404 is final: no retries */
    eddy__sr_destroy(sr);
}

static void incompatible_writer_schema_names_the_id_and_field(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    char err[512];
    eddy_avro_schema_t *reader = eddy__avro_schema_parse(BID_R, strlen(BID_R), err, sizeof(err));
    const eddy_avro_plan_t *p;
    assert_int_equal(eddy__sr_plan(sr, 2, reader, &p, err, sizeof(err)), EDDY_ERR_TYPE);
    assert_non_null(strstr(err, "schema id 2"));
    assert_non_null(strstr(err, "Bid.price: writer type string cannot be read as double"));
    eddy__avro_schema_destroy(reader);
    eddy__sr_destroy(sr);
}

typedef struct {
    srv_t *s;
    uint16_t port;
    int delay_ms;
} restart_t;

static void *restart_later(void *arg) {
    restart_t *r = arg;
    usleep((useconds_t)r->delay_ms * 1000);
    if (srv_start(r->s, r->port))
        fprintf(stderr, "restart on port %u failed\n", (unsigned)r->port);
    return NULL;
}

static void registry_down_then_up_is_retried(void **state) {
    srv_t *s = *state;
    uint16_t port = s->port;
    const char *kv[] = {"retries", "20", "retry.backoff.max.ms", "100", NULL};
    eddy_sr_t *sr = client(s, kv);
    srv_stop(s); /* connection refused from now on */
    restart_t r = {.s = s, .port = port, .delay_ms = 400};
    pthread_t t;
    pthread_create(&t, NULL, restart_later, &r);
    char err[512];
    const eddy_avro_schema_t *a;
    eddy_err_t rc = eddy__sr_get_schema(sr, 1, &a, err, sizeof(err));
    pthread_join(t, NULL);
    if (rc)
        fail_msg("%s", err);
    assert_string_equal(eddy__avro_schema_json(a), BID_V1);
    assert_true(eddy__sr_requests(sr) > 1); /* refused at least once */
    assert_int_equal(reqs(s), 1);           /* answered once */
    eddy__sr_destroy(sr);
}

static void server_errors_are_retried_with_backoff(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    __atomic_store_n(&s->fail_next, 2, __ATOMIC_SEQ_CST);
    char err[512];
    const eddy_avro_schema_t *a;
    double t0 = now_s();
    assert_int_equal(eddy__sr_get_schema(sr, 1, &a, err, sizeof(err)), EDDY_OK);
    assert_int_equal(reqs(s), 3);
    assert_true(now_s() - t0 >= 0.055); /* 20 ms + 40 ms of backoff */
    eddy__sr_destroy(sr);
}

static void basic_auth_header_is_sent(void **state) {
    srv_t *s = *state;
    const char *kv[] = {"basic.auth.user.info", "user:secret", NULL};
    eddy_sr_t *sr = client(s, kv);
    char err[512];
    const eddy_avro_schema_t *a;
    assert_int_equal(eddy__sr_get_schema(sr, 1, &a, err, sizeof(err)), EDDY_OK);
    pthread_mutex_lock(&s->lock);
    assert_string_equal(s->auth, "Basic dXNlcjpzZWNyZXQ="); /* base64("user:secret") */
    pthread_mutex_unlock(&s->lock);
    eddy__sr_destroy(sr);
    /* and none without the option */
    sr = client(s, NULL);
    assert_int_equal(eddy__sr_get_schema(sr, 1, &a, err, sizeof(err)), EDDY_OK);
    pthread_mutex_lock(&s->lock);
    assert_string_equal(s->auth, "");
    pthread_mutex_unlock(&s->lock);
    eddy__sr_destroy(sr);
}

static void registry_down_for_good_fails_in_bounded_time(void **state) {
    srv_t *s = *state;
    const char *kv[] = {"retries", "3", NULL};
    eddy_sr_t *sr = client(s, kv);
    srv_stop(s);
    char err[512];
    const eddy_avro_schema_t *a;
    double t0 = now_s();
    assert_int_equal(eddy__sr_get_schema(sr, 5, &a, err, sizeof(err)), EDDY_ERR_IO);
    double took = now_s() - t0;
    assert_true(took >= 0.13 && took < 3.0); /* 20 + 40 + 80 ms of backoff */
    char url[160];
    snprintf(url, sizeof(url), "schema registry http://127.0.0.1:%u: schema id 5 failed after "
                               "4 attempts: ",
             (unsigned)s->port);
    if (!strstr(err, url))
        fail_msg("unexpected: %s", err);
    assert_int_equal(eddy__sr_requests(sr), 4);
    eddy__sr_destroy(sr);
}

static void registered_schema_gets_an_id_that_resolves(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    char err[512];
    int32_t id = -1;
    assert_int_equal(eddy__sr_register(sr, "bids-value", BID_R, &id, err, sizeof(err)), EDDY_OK);
    assert_int_equal(id, 3);
    pthread_mutex_lock(&s->lock);
    assert_string_equal(s->subjects[3], "bids-value");
    assert_string_equal(s->schemas[3], BID_R);
    pthread_mutex_unlock(&s->lock);
    const eddy_avro_schema_t *a;
    assert_int_equal(eddy__sr_get_schema(sr, id, &a, err, sizeof(err)), EDDY_OK);
    assert_string_equal(eddy__avro_schema_json(a), BID_R);
    /* a rejected schema names the subject and the registry's reason */
    assert_int_equal(eddy__sr_register(sr, "odd", "", &id, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, "registering subject 'odd': refused (HTTP 422: 42201 Invalid "
                                "schema)"));
    eddy__sr_destroy(sr);
}

typedef struct {
    eddy_sr_t *sr;
    const eddy_avro_schema_t *got;
    eddy_err_t rc;
} getter_t;

static void *get_one(void *arg) {
    getter_t *g = arg;
    char err[256];
    g->rc = eddy__sr_get_schema(g->sr, 1, &g->got, err, sizeof(err));
    return NULL;
}

static void concurrent_lookups_share_one_cached_schema(void **state) {
    srv_t *s = *state;
    eddy_sr_t *sr = client(s, NULL);
    pthread_t t[8];
    getter_t g[8];
    for (int i = 0; i < 8; i++) {
        g[i] = (getter_t){.sr = sr};
        pthread_create(&t[i], NULL, get_one, &g[i]);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(g[i].rc, EDDY_OK);
        assert_ptr_equal(g[i].got, g[0].got);
    }
    assert_true(reqs(s) >= 1 && reqs(s) <= 8);
    eddy__sr_destroy(sr);
}

static void bad_options_are_named(void **state) {
    (void)state;
    char err[256];
    eddy_sr_conf_t *c = eddy__sr_conf_new();
    assert_int_equal(eddy__sr_conf_set(c, "colour", "x", err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_string_equal(err, "unknown schema registry option 'colour'");
    assert_int_equal(eddy__sr_conf_set(c, "enable.ssl.certificate.verification", "maybe", err,
                                       sizeof(err)),
                     EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "true or false"));
    assert_int_equal(eddy__sr_conf_set(c, "retries", "-1", err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_null(eddy__sr_new(c, err, sizeof(err)));
    assert_string_equal(err, "schema registry: 'url' is required");
    assert_int_equal(eddy__sr_conf_set(c, "url", "ftp://x", err, sizeof(err)), EDDY_OK);
    assert_null(eddy__sr_new(c, err, sizeof(err)));
    assert_non_null(strstr(err, "must start with http:// or https://"));
    /* TLS options are accepted and applied: an https URL to a plain-HTTP
     * port fails the handshake, and says so */
    assert_int_equal(eddy__sr_conf_set(c, "url", "https://127.0.0.1:1", err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "enable.ssl.certificate.verification", "false", err,
                                       sizeof(err)),
                     EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "ssl.ca.location", "/nonexistent/ca.pem", err,
                                       sizeof(err)),
                     EDDY_OK);
    assert_int_equal(eddy__sr_conf_set(c, "retries", "0", err, sizeof(err)), EDDY_OK);
    eddy_sr_t *sr = eddy__sr_new(c, err, sizeof(err));
    assert_non_null(sr);
    const eddy_avro_schema_t *a;
    assert_int_equal(eddy__sr_get_schema(sr, 1, &a, err, sizeof(err)), EDDY_ERR_IO);
    assert_non_null(strstr(err, "after 1 attempt: "));
    eddy__sr_destroy(sr);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(schema_is_fetched_once_then_served_from_cache, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unknown_id_is_an_error_naming_the_id, setup, teardown),
        cmocka_unit_test_setup_teardown(incompatible_writer_schema_names_the_id_and_field, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(registry_down_then_up_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(server_errors_are_retried_with_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(basic_auth_header_is_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_down_for_good_fails_in_bounded_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(registered_schema_gets_an_id_that_resolves, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_lookups_share_one_cached_schema, setup,
                                        teardown),
        cmocka_unit_test(bad_options_are_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
