/*
 * Keyed aggregate and window aggregates: first/last follow event time, not
 * arrival order; results of every key come out of the store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int n;
    char lines[64][256];
} collect_t;

static eddy_err_t collect(const eddy_record_t *rec, void *opaque) {
    collect_t *c = opaque;
    if (c->n < 64)
        eddy_record_to_json(rec, c->lines[c->n++], sizeof(c->lines[0]));
    return EDDY_OK;
}

static void run(const char *yaml, collect_t *out, const int64_t *vals, const int64_t *ts, int n) {
    char err[1024], dir[] = "/tmp/eddy_agg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char y[2048];
    snprintf(y, sizeof(y), yaml, dir);
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "a.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s", err);
    eddy_topology_add_callback_sink(t, "out", collect, out);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    for (int i = 0; i < n; i++) {
        eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = 1}, {.type = EDDY_TYPE_INT}};
        v[0].u.s = "a";
        v[1].u.i = vals[i];
        assert_int_equal(eddy_engine_push(e, "in", 0, v, ts[i]), EDDY_OK);
    }
    eddy_engine_end_input(e, "in", -1);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 20000), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static const int64_t V[] = {1, 2, 3, 4};
static const int64_t TS[] = {20, 10, 30, 25}; /* arrival order is not time order */

static void first_and_last_follow_event_time_in_a_keyed_aggregate(void **state) {
    (void)state;
    collect_t c = {0};
    run("application: a\n"
        "settings: {threads: 1, state.dir: '%s'}\n"
        "sources: [{name: in, type: host, schema: {k: string, v: int},\n"
        "           watermark: {max_out_of_orderness: 100ms}}]\n"
        "pipelines:\n"
        "  - name: p\n"
        "    from: in\n"
        "    steps: [{aggregate: {by: k, fields: {f: first(v), l: last(v), n: count()}}}]\n"
        "    to: out\n",
        &c, V, TS, 4);
    assert_int_equal(c.n, 4); /* one update per record */
    assert_string_equal(c.lines[3], "{\"k\":\"a\",\"f\":2,\"l\":3,\"n\":4}");
}

static void first_and_last_follow_event_time_in_a_window(void **state) {
    (void)state;
    collect_t c = {0};
    run("application: a\n"
        "settings: {threads: 1, state.dir: '%s'}\n"
        "sources: [{name: in, type: host, schema: {k: string, v: int},\n"
        "           watermark: {max_out_of_orderness: 100ms}}]\n"
        "pipelines:\n"
        "  - name: p\n"
        "    from: in\n"
        "    steps:\n"
        "      - window: {type: tumbling, size: 100ms}\n"
        "        aggregate: {by: k, fields: {f: first(v), l: last(v), s: sum(v)}}\n"
        "    to: out\n",
        &c, V, TS, 4);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0],
                        "{\"k\":\"a\",\"window_start\":0,\"window_end\":100,\"f\":2,\"l\":3,\"s\":10}");
}

static void unknown_aggregate_names_the_known_ones(void **state) {
    (void)state;
    const char *y = "application: a\n"
                    "sources: [{name: in, type: host, schema: {k: string, v: int}}]\n"
                    "pipelines:\n"
                    "  - {name: p, from: in, steps: [{aggregate: {by: k, fields: {x: frist(v)}}}],"
                    " to: out}\n"
                    "sinks: [{name: out, type: blackhole}]\n";
    char err[1024];
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "a.yaml", err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "did you mean 'first'"));
    eddy_topology_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_and_last_follow_event_time_in_a_keyed_aggregate),
        cmocka_unit_test(first_and_last_follow_event_time_in_a_window),
        cmocka_unit_test(unknown_aggregate_names_the_known_ones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
