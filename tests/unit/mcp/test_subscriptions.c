/*
 * Resource subscriptions end to end: a running engine on a host source the
 * test keeps open (commit every 20 ms), a session with a notify callback
 * subscribed to some keys' resources; records pushed afterwards must bring
 * exactly one notifications/resources/updated for a changed subscribed key
 * within a bounded time, and none for a key that is unsubscribed, not
 * subscribed, or unchanged.
 */
#include <pthread.h>
#include <time.h>

#include "mcp_fixture.h"

typedef struct {
    pthread_mutex_t lock;
    int n;
    char *msgs[256];
} inbox_t;

static void on_notify(void *opaque, const char *json, size_t len) {
    inbox_t *in = opaque;
    pthread_mutex_lock(&in->lock);
    if (in->n < 256)
        in->msgs[in->n++] = strndup(json, len);
    pthread_mutex_unlock(&in->lock);
}

/* notifications/resources/updated for uri so far */
static int updates_for(inbox_t *in, const char *uri) {
    int k = 0;
    pthread_mutex_lock(&in->lock);
    for (int i = 0; i < in->n; i++) {
        json_t *j = json_loads(in->msgs[i], 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "jsonrpc")), "2.0");
        assert_null(json_object_get(j, "id")); /* a notification */
        if (!strcmp(json_string_value(json_object_get(j, "method")),
                    "notifications/resources/updated") &&
            !strcmp(json_string_value(json_object_get(json_object_get(j, "params"), "uri")), uri))
            k++;
        json_decref(j);
    }
    pthread_mutex_unlock(&in->lock);
    return k;
}

static int64_t mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t commits(eddy_engine_t *eng) {
    eddy_stats_t st;
    eddy_engine_stats(eng, &st);
    return st.commits;
}

/* Wait until `want` records were read and two more commits passed (so
 * they are in committed state and the watcher has seen that commit). */
static void wait_committed(eddy_engine_t *eng, uint64_t want) {
    int64_t end = mono_ms() + 20000;
    eddy_stats_t st;
    do {
        eddy_engine_stats(eng, &st);
        if (st.events_in >= want)
            break;
        usleep(5000);
    } while (mono_ms() < end);
    assert_true(st.events_in >= want);
    uint64_t c0 = commits(eng);
    while (commits(eng) < c0 + 3 && mono_ms() < end)
        usleep(5000);
    assert_true(commits(eng) >= c0 + 3);
    usleep(100000); /* the watcher polls every 20 ms */
}

static void subscribe(eddy_mcp_session_t *s, const char *method, const char *uri) {
    json_t *res = expect_result(rpcf(s,
                                     "{\"jsonrpc\":\"2.0\",\"id\":\"sub\",\"method\":\"%s\","
                                     "\"params\":{\"uri\":\"%s\"}}",
                                     method, uri),
                                "\"sub\"");
    assert_int_equal(json_object_size(res), 0);
    json_decref(res);
}

static void a_changed_subscribed_key_is_notified_once_and_others_not_at_all(void **state) {
    (void)state;
    fx_t *f = fx_engine("20ms");
    assert_int_equal(eddy_engine_start(f->eng), EDDY_OK);
    fx_push(f->eng, "u1", 1, T0);
    fx_push(f->eng, "u2", 1, T0);
    fx_push(f->eng, "u3", 1, T0);
    wait_committed(f->eng, 3);

    f->m = eddy__mcp_new(f->eng, NULL);
    inbox_t in = {.n = 0};
    pthread_mutex_init(&in.lock, NULL);
    eddy_mcp_session_t *s = eddy__mcp_session_new(f->m, on_notify, &in);
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
                                     "\"params\":{\"protocolVersion\":\"2025-11-25\","
                                     "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\"}}}"),
                              "0"));
    /* subscribing to what does not exist fails and adds nothing */
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\","
                        "\"params\":{\"uri\":\"eddy://store/nope/u1\"}}"),
                 RPC_RESOURCE_NOT_FOUND, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/subscribe\","
                        "\"params\":{}}"),
                 RPC_INVALID_PARAMS, "2");
    subscribe(s, "resources/subscribe", "eddy://store/totals/u1");
    subscribe(s, "resources/subscribe", "eddy://store/totals/u1"); /* twice: still one */
    subscribe(s, "resources/subscribe", "eddy://store/totals/u2");
    subscribe(s, "resources/subscribe", "eddy://store/totals/u3");
    subscribe(s, "resources/unsubscribe", "eddy://store/totals/u2");
    subscribe(s, "resources/unsubscribe", "eddy://store/totals/never"); /* a no-op */
    /* commits that change nothing notify nothing */
    uint64_t c0 = commits(f->eng);
    int64_t end = mono_ms() + 10000;
    while (commits(f->eng) < c0 + 3 && mono_ms() < end)
        usleep(5000);
    usleep(100000);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u1"), 0);

    /* u1 (subscribed), u2 (unsubscribed) and u4 (never subscribed) change */
    fx_push(f->eng, "u1", 5, T0 + 1);
    fx_push(f->eng, "u2", 5, T0 + 1);
    fx_push(f->eng, "u4", 5, T0 + 1);
    int64_t t0 = mono_ms();
    while (updates_for(&in, "eddy://store/totals/u1") == 0 && mono_ms() - t0 < 10000)
        usleep(5000);
    int64_t waited = mono_ms() - t0;
    assert_int_equal(updates_for(&in, "eddy://store/totals/u1"), 1);
    assert_true(waited < 10000);
    /* a few more commits: still exactly one, and none for the others */
    wait_committed(f->eng, 6);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u1"), 1);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u2"), 0);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u3"), 0);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u4"), 0);
    /* and the resource now reads the new value */
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":"
                                       "\"resources/read\",\"params\":{\"uri\":"
                                       "\"eddy://store/totals/u1\"}}"),
                                "3");
    json_t *body = json_loads(json_string_value(json_object_get(
                                  json_array_get(json_object_get(res, "contents"), 0), "text")),
                              0, NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(body, "value"), "s")), 6);
    json_decref(body);
    json_decref(res);

    /* a closed session hears nothing more */
    eddy__mcp_session_close(s);
    int before = updates_for(&in, "eddy://store/totals/u1");
    fx_push(f->eng, "u1", 1, T0 + 2);
    wait_committed(f->eng, 7);
    assert_int_equal(updates_for(&in, "eddy://store/totals/u1"), before);

    assert_int_equal(eddy_engine_end_input(f->eng, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_poll(f->eng, 20000), EDDY_OK);
    fx_free(f);
    for (int i = 0; i < in.n; i++)
        free(in.msgs[i]);
    pthread_mutex_destroy(&in.lock);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_changed_subscribed_key_is_notified_once_and_others_not_at_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
