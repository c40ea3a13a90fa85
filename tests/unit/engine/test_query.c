/*
 * Read-only store queries as a host program (and the MCP front end) sees
 * them: range and prefix scans with cursors, the windows of a key over a
 * time range (window and session stores), store descriptions, freshness.
 * Each test runs a bounded topology on a host source to the end, then
 * queries the committed state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int n;
    char lines[256][256];
} collect_t;

static eddy_err_t collect(const eddy_record_t *rec, void *opaque) {
    collect_t *c = opaque;
    if (c->n < 256)
        eddy_record_to_json(rec, c->lines[c->n++], sizeof(c->lines[0]));
    return EDDY_OK;
}

typedef struct {
    char dir[64];
    eddy_topology_t *topo;
    eddy_engine_t *eng;
} fx_t;

static const char *YAML =
    "application: q\n"
    "settings: {threads: 2, state.dir: '%s'}\n"
    "sources: [{name: in, type: host, partitions: 2, schema: {user: string, n: int},\n"
    "           watermark: {max_out_of_orderness: 0ms}}]\n"
    "sinks: [{name: void, type: blackhole}]\n"
    "pipelines:\n"
    "  - name: totals\n"
    "    from: in\n"
    "    steps: [{aggregate: {by: [user, n], fields: {c: count()}, store: totals}}]\n"
    "    to: void\n"
    "  - name: per10\n"
    "    from: in\n"
    "    steps:\n"
    "      - window: {type: tumbling, size: 10ms, retention: 1h, store: per10}\n"
    "        aggregate: {by: user, fields: {c: count(), s: sum(n)}}\n"
    "    to: void\n"
    "  - name: sess\n"
    "    from: in\n"
    "    steps:\n"
    "      - window: {type: session, gap: 5ms, retention: 1h, store: sess}\n"
    "        aggregate: {by: user, fields: {c: count()}}\n"
    "    to: void\n";

/* users u0..u9 with n = 0..2 each at times 0, 3, 20, 23, ... */
static int setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy_query_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char y[4096], err[1024];
    snprintf(y, sizeof(y), YAML, f->dir);
    f->topo = eddy_topology_load_string(y, strlen(y), "q.yaml", err, sizeof(err));
    if (!f->topo)
        fail_msg("%s", err);
    f->eng = eddy_engine_new(f->topo, NULL, err, sizeof(err));
    if (!f->eng)
        fail_msg("%s", err);
    char names[10][8];
    for (int u = 0; u < 10; u++) {
        snprintf(names[u], sizeof(names[u]), "u%d", u);
        for (int n = 0; n < 3; n++) {
            eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = 2}, {.type = EDDY_TYPE_INT}};
            v[0].u.s = names[u];
            v[1].u.i = n;
            /* n=0 at t=0, n=1 at t=3 (same session), n=2 at t=20 (a new one) */
            int64_t ts = n == 0 ? 0 : n == 1 ? 3 : 20;
            assert_int_equal(eddy_engine_push(f->eng, "in", u % 2, v, ts), EDDY_OK);
        }
    }
    eddy_engine_end_input(f->eng, "in", -1);
    eddy_engine_start(f->eng);
    assert_int_equal(eddy_engine_poll(f->eng, 20000), EDDY_OK);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    eddy_engine_destroy(f->eng);
    eddy_topology_destroy(f->topo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static eddy_value_t str(const char *s) {
    eddy_value_t v = {.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(s)};
    v.u.s = s;
    return v;
}

static eddy_value_t num(int64_t i) {
    eddy_value_t v = {.type = EDDY_TYPE_INT};
    v.u.i = i;
    return v;
}

static void a_full_scan_pages_through_every_key_in_key_order(void **state) {
    fx_t *f = *state;
    collect_t c = {0};
    char cur[512] = "", next[512];
    int pages = 0;
    do {
        assert_int_equal(eddy_engine_query_scan(f->eng, "totals", cur, 7, collect, &c, next,
                                                sizeof(next)),
                         EDDY_OK);
        strcpy(cur, next);
        pages++;
    } while (cur[0]);
    assert_int_equal(c.n, 30);
    assert_int_equal(pages, 5); /* 7+7+7+7+2 */
    assert_string_equal(c.lines[0], "{\"user\":\"u0\",\"n\":0,\"c\":1}");
    assert_string_equal(c.lines[29], "{\"user\":\"u9\",\"n\":2,\"c\":1}");
    for (int i = 1; i < 30; i++)
        assert_true(strcmp(c.lines[i - 1], c.lines[i]) < 0);
}

static void a_prefix_scan_returns_only_keys_with_that_prefix(void **state) {
    fx_t *f = *state;
    collect_t c = {0};
    eddy_value_t p[1] = {str("u3")};
    eddy_key_range_t r = {.prefix = p, .nprefix = 1};
    char next[512];
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &r, NULL, 100, collect, &c, next,
                                             sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 3);
    assert_string_equal(next, "");
    assert_string_equal(c.lines[2], "{\"user\":\"u3\",\"n\":2,\"c\":1}");
    /* a string prefix of the first field: "u" matches all, "u1" one user */
    memset(&c, 0, sizeof(c));
    p[0] = str("u");
    r.string_prefix = true;
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &r, NULL, 100, collect, &c, next,
                                             sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 30);
    /* two fields of prefix */
    memset(&c, 0, sizeof(c));
    eddy_value_t p2[2] = {str("u7"), num(1)};
    eddy_key_range_t r2 = {.prefix = p2, .nprefix = 2};
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &r2, NULL, 100, collect, &c, next,
                                             sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0], "{\"user\":\"u7\",\"n\":1,\"c\":1}");
}

static void a_range_scan_is_inclusive_below_and_exclusive_above(void **state) {
    fx_t *f = *state;
    collect_t c = {0};
    eddy_value_t lo[2] = {str("u2"), num(1)}, hi[1] = {str("u4")};
    eddy_key_range_t r = {.from = lo, .nfrom = 2, .to = hi, .nto = 1};
    char next[512];
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &r, NULL, 3, collect, &c, next,
                                             sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 3);
    assert_string_not_equal(next, "");
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &r, next, 3, collect, &c, next,
                                             sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 5); /* u2/1 u2/2 u3/0 u3/1 u3/2 */
    assert_string_equal(next, "");
    assert_string_equal(c.lines[0], "{\"user\":\"u2\",\"n\":1,\"c\":1}");
    assert_string_equal(c.lines[4], "{\"user\":\"u3\",\"n\":2,\"c\":1}");
    /* wrong type for a key field */
    eddy_value_t bad[1] = {num(5)};
    eddy_key_range_t rb = {.prefix = bad, .nprefix = 1};
    assert_int_equal(eddy_engine_query_range(f->eng, "totals", &rb, NULL, 3, collect, &c, next,
                                             sizeof(next)),
                     EDDY_ERR_TYPE);
    /* ranges are for kv stores */
    assert_int_equal(eddy_engine_query_range(f->eng, "per10", &r, NULL, 3, collect, &c, next,
                                             sizeof(next)),
                     EDDY_ERR_UNSUPPORTED);
}

static void the_windows_of_a_key_come_back_in_time_order(void **state) {
    fx_t *f = *state;
    collect_t c = {0};
    eddy_value_t k[1] = {str("u5")};
    char next[512];
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", k, 1, 0, 1000, NULL, 10, collect,
                                               &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0], "{\"user\":\"u5\",\"window_start\":0,\"window_end\":10,"
                                    "\"c\":2,\"s\":1}");
    assert_string_equal(c.lines[1], "{\"user\":\"u5\",\"window_start\":20,\"window_end\":30,"
                                    "\"c\":1,\"s\":2}");
    /* a narrower range: windows starting in [10, 20] */
    memset(&c, 0, sizeof(c));
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", k, 1, 10, 20, NULL, 10, collect,
                                               &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 1);
    /* paging one at a time */
    memset(&c, 0, sizeof(c));
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", k, 1, 0, 1000, NULL, 1, collect,
                                               &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 1);
    assert_string_not_equal(next, "");
    char cur[512];
    strcpy(cur, next);
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", k, 1, 0, 1000, cur, 1, collect,
                                               &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(next, "");
    /* the widest range: no overflow, the same two windows */
    memset(&c, 0, sizeof(c));
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", k, 1, INT64_MIN, INT64_MAX, NULL,
                                               10, collect, &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 2);
    /* an unknown key has no windows; a kv store has none either */
    memset(&c, 0, sizeof(c));
    eddy_value_t none[1] = {str("nobody")};
    assert_int_equal(eddy_engine_query_windows(f->eng, "per10", none, 1, 0, 1000, NULL, 10,
                                               collect, &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 0);
    assert_int_equal(eddy_engine_query_windows(f->eng, "totals", k, 1, 0, 1000, NULL, 10, collect,
                                               &c, next, sizeof(next)),
                     EDDY_ERR_UNSUPPORTED);
}

static void sessions_overlapping_a_range_come_back(void **state) {
    fx_t *f = *state;
    collect_t c = {0};
    eddy_value_t k[1] = {str("u8")};
    char next[512];
    assert_int_equal(eddy_engine_query_windows(f->eng, "sess", k, 1, 0, 1000, NULL, 10, collect,
                                               &c, next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.lines[0],
                        "{\"user\":\"u8\",\"window_start\":0,\"window_end\":8,\"c\":2}");
    assert_string_equal(c.lines[1],
                        "{\"user\":\"u8\",\"window_start\":20,\"window_end\":25,\"c\":1}");
    /* [6, 7] overlaps the first session only */
    memset(&c, 0, sizeof(c));
    assert_int_equal(eddy_engine_query_windows(f->eng, "sess", k, 1, 6, 7, NULL, 10, collect, &c,
                                               next, sizeof(next)),
                     EDDY_OK);
    assert_int_equal(c.n, 1);
}

static void stores_describe_themselves(void **state) {
    fx_t *f = *state;
    eddy_store_info_t si;
    assert_int_equal(eddy_engine_store_info(f->eng, "per10", &si), EDDY_OK);
    assert_string_equal(si.kind, "window");
    assert_int_equal(eddy_schema_nfields(si.key_schema), 1);
    assert_string_equal(eddy_schema_field_name(si.key_schema, 0), "user");
    assert_int_equal(eddy_schema_field_index(si.value_schema, "window_start"), 1);
    assert_non_null(strstr(si.node, "window"));
    assert_int_equal(eddy_engine_store_info(f->eng, "sess", &si), EDDY_OK);
    assert_string_equal(si.kind, "session");
    assert_int_equal(eddy_engine_store_info(f->eng, "totals", &si), EDDY_OK);
    assert_string_equal(si.kind, "kv");
    assert_int_equal(eddy_engine_store_info(f->eng, "nope", &si), EDDY_ERR_NOENT);
    char *j = eddy_engine_describe_json(f->eng);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"application\":\"q\""));
    assert_non_null(strstr(j, "\"name\":\"sess\",\"kind\":\"session\""));
    assert_non_null(strstr(j, "\"type\":\"host\""));
    eddy_free(j);
    /* freshness: the newest event (t=20) was processed before the final commit */
    eddy_store_stats_t st[8];
    int n = eddy_engine_store_stats(f->eng, st, 8);
    assert_true(n >= 3);
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, "totals"))
            assert_int_equal(st[i].newest_event_ms, 20);
    int64_t wm[4];
    assert_int_equal(eddy_engine_task_watermarks(f->eng, wm, 4), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_full_scan_pages_through_every_key_in_key_order),
        cmocka_unit_test(a_prefix_scan_returns_only_keys_with_that_prefix),
        cmocka_unit_test(a_range_scan_is_inclusive_below_and_exclusive_above),
        cmocka_unit_test(the_windows_of_a_key_come_back_in_time_order),
        cmocka_unit_test(sessions_overlapping_a_range_come_back),
        cmocka_unit_test(stores_describe_themselves),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
