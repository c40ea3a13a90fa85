/*
 * MCP get_matches: the matches a cep step stored, by key and time, as an
 * agent asks for them; describe_topology names the tool; the wrong tool
 * for a store says which one to use.
 */
#include "mcp_fixture.h"

static const char *CEP_YAML =
    "application: mcpcep\n"
    "settings: {threads: 1, state.dir: '%s'}\n"
    "sources: [{name: in, type: host, partitions: 1, schema: {user: string, t: string},\n"
    "           watermark: {max_out_of_orderness: 0ms}}]\n"
    "sinks: [{name: void, type: blackhole}]\n"
    "pipelines:\n"
    "  - name: seq\n"
    "    from: in\n"
    "    steps:\n"
    "      - cep:\n"
    "          by: user\n"
    "          store: seqs\n"
    "          pattern:\n"
    "            - {name: a, where: \"t = 'a'\"}\n"
    "            - {name: b, followed_by: \"t = 'b'\"}\n"
    "          fields: {n: count(b)}\n"
    "    to: void\n";

static void push2(eddy_engine_t *eng, const char *user, const char *t, int64_t ts) {
    eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(user)},
                         {.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(t)}};
    v[0].u.s = user;
    v[1].u.s = t;
    assert_int_equal(eddy_engine_push(eng, "in", 0, v, ts), EDDY_OK);
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy_mcp_cep_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char y[4096], err[1024];
    snprintf(y, sizeof(y), CEP_YAML, f->dir);
    f->topo = eddy_topology_load_string(y, strlen(y), "cep.yaml", err, sizeof(err));
    if (!f->topo)
        fail_msg("%s", err);
    f->eng = eddy_engine_new(f->topo, NULL, err, sizeof(err));
    if (!f->eng)
        fail_msg("%s", err);
    /* u1: a b at T0+10, a b at T0+30; u2: a b at T0+20 */
    push2(f->eng, "u1", "a", T0);
    push2(f->eng, "u1", "b", T0 + 10);
    push2(f->eng, "u2", "a", T0 + 15);
    push2(f->eng, "u2", "b", T0 + 20);
    push2(f->eng, "u1", "a", T0 + 25);
    push2(f->eng, "u1", "b", T0 + 30);
    assert_int_equal(eddy_engine_end_input(f->eng, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_start(f->eng), EDDY_OK);
    assert_int_equal(eddy_engine_poll(f->eng, 60000), EDDY_OK);
    f->m = eddy__mcp_new(f->eng, NULL);
    assert_non_null(f->m);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx_free(*state);
    return 0;
}

static void get_matches_returns_a_keys_matches_in_time_order(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *sc = tool_ok(s, "get_matches", "{\"store\":\"seqs\",\"key\":\"u1\"}");
    json_t *m = json_object_get(sc, "matches");
    assert_int_equal(json_array_size(m), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 0), "match_start")), T0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 0), "match_end")),
                     T0 + 10);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 1), "match_end")),
                     T0 + 30);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(m, 1), "n")), 1);
    json_decref(sc);
    /* by match end time */
    char args[256];
    snprintf(args, sizeof(args), "{\"store\":\"seqs\",\"key\":{\"user\":\"u1\"},\"from\":%lld}",
             (long long)(T0 + 11));
    sc = tool_ok(s, "get_matches", args);
    assert_int_equal(json_array_size(json_object_get(sc, "matches")), 1);
    json_decref(sc);
    sc = tool_ok(s, "get_matches", "{\"store\":\"seqs\",\"key\":\"u2\"}");
    assert_int_equal(json_array_size(json_object_get(sc, "matches")), 1);
    json_decref(sc);
    /* the partial matches per key are a kv store: nothing is left */
    sc = tool_ok(s, "scan_store", "{\"store\":\"seqs.partial\"}");
    assert_int_equal(json_array_size(json_object_get(sc, "items")), 0);
    json_decref(sc);
    /* the wrong tool says which one to use */
    char *e = tool_err(s, "get_windows", "{\"store\":\"seqs\",\"key\":\"u1\"}");
    assert_non_null(strstr(e, "get_matches"));
    free(e);
    /* describe_topology names the tool for the store */
    sc = tool_ok(s, "describe_topology", "{}");
    char *d = json_dumps(sc, JSON_COMPACT);
    assert_non_null(strstr(d, "get_matches"));
    free(d);
    json_decref(sc);
    eddy__mcp_session_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_matches_returns_a_keys_matches_in_time_order),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
