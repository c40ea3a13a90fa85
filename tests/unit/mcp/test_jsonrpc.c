/*
 * The MCP JSON-RPC layer as a client sees it: every message goes through
 * eddy__mcp_handle() as raw bytes on a session of a server over a small
 * engine (see mcp_fixture.h), and the tests assert the exact error codes,
 * ids and shapes that come back.
 */
#include "mcp_fixture.h"

#define INIT_PARAMS                                                                              \
    "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"c\","      \
    "\"version\":\"1\"}"

/* ------------------------------------------------------------ framing */

static void bad_json_is_a_parse_error_with_a_null_id(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, NULL);
    eddy_mcp_result_t r;
    const char *bad[] = {"{\"jsonrpc\":\"2.0\",", "", "   ", "{'a':1}", "[1,2", "nul",
                         "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} trailing"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = rpc_n(s, bad[i], strlen(bad[i]), &r);
        assert_true(r.parse_error);
        assert_false(r.had_request);
        expect_error(j, RPC_PARSE_ERROR, "null");
    }
    eddy__mcp_session_close(s);
}

static void a_message_that_is_not_an_object_is_an_invalid_request(void **state) {
    fx_t *f = *state;
    const char *notobj[] = {"42", "\"ping\"", "true", "null", "1.5"};
    for (int k = 0; k < 2; k++) {
        eddy_mcp_session_t *s = fx_session(f, k ? "2025-11-25" : NULL);
        for (size_t i = 0; i < sizeof(notobj) / sizeof(notobj[0]); i++)
            expect_error(rpc(s, notobj[i]), RPC_INVALID_REQUEST, "null");
        eddy__mcp_session_close(s);
    }
    /* arrays are batches, which 2025-06-18 and later do not have */
    const char *versions[] = {"2025-06-18", "2025-11-25"};
    for (int i = 0; i < 2; i++) {
        eddy_mcp_session_t *s = fx_session(f, versions[i]);
        expect_error(rpc(s, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"),
                     RPC_INVALID_REQUEST, "null");
        expect_error(rpc(s, "[]"), RPC_INVALID_REQUEST, "null");
        eddy__mcp_session_close(s);
    }
}

static void jsonrpc_must_be_the_string_2_0(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    expect_error(rpc(s, "{\"id\":1,\"method\":\"ping\"}"), RPC_INVALID_REQUEST, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"1.0\",\"id\":2,\"method\":\"ping\"}"),
                 RPC_INVALID_REQUEST, "2");
    expect_error(rpc(s, "{\"jsonrpc\":2.0,\"id\":\"x\",\"method\":\"ping\"}"),
                 RPC_INVALID_REQUEST, "\"x\"");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0 \",\"id\":3,\"method\":\"ping\"}"),
                 RPC_INVALID_REQUEST, "3");
    /* without jsonrpc a notification-shaped message is still refused */
    expect_error(rpc(s, "{\"method\":\"notifications/initialized\"}"), RPC_INVALID_REQUEST,
                 "null");
    eddy__mcp_session_close(s);
}

static void an_id_of_the_wrong_type_is_refused_with_a_null_id(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *ids[] = {"null", "1.5", "{}", "{\"a\":1}", "true", "false", "[1]", "1e3"};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        expect_error(rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"ping\"}", ids[i]),
                     RPC_INVALID_REQUEST, "null");
    eddy__mcp_session_close(s);
}

static void method_must_be_a_string(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":5}"), RPC_INVALID_REQUEST, "4");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":null}"), RPC_INVALID_REQUEST,
                 "5");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":[\"ping\"]}"),
                 RPC_INVALID_REQUEST, "6");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":7}"), RPC_INVALID_REQUEST, "7");
    eddy__mcp_session_close(s);
}

static void an_unknown_method_echoes_the_id_exactly(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *ids[] = {"7",  "0", "-12", "9007199254740993", "9223372036854775807",
                         "\"abc\"", "\"\"", "\"\\u00e9\\n\\\"q\\\"\"", "\"9\""};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        json_t *r = rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"no/such\"}", ids[i]);
        json_t *want = json_loads(ids[i], JSON_DECODE_ANY, NULL);
        assert_true(json_equal(json_object_get(r, "id"), want));
        char *wt = json_dumps(want, JSON_ENCODE_ANY | JSON_COMPACT);
        expect_error(r, RPC_METHOD_NOT_FOUND, wt);
        free(wt);
        json_decref(want);
    }
    /* the message names the method */
    json_t *r = rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/lst\"}");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
                                                             "message")),
                           "tools/lst"));
    json_decref(r);
    eddy__mcp_session_close(s);
}

static void params_that_are_not_an_object_are_invalid_params(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *ps[] = {"[]", "[1,2]", "\"x\"", "3", "true"};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
        expect_error(
            rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\",\"params\":%s}", ps[i]),
            RPC_INVALID_PARAMS, "9");
    /* null params (absent in effect) are refused the same way */
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\",\"params\":null}"),
                 RPC_INVALID_PARAMS, "9");
    eddy__mcp_session_close(s);
}

/* ------------------------------------------------------------ life cycle */

static void requests_before_initialize_are_refused_but_ping_works(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, NULL);
    const char *methods[] = {"tools/list", "tools/call", "resources/list", "resources/read",
                             "prompts/list", "logging/setLevel", "no/such"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        expect_error(rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\"}", methods[i]),
                     RPC_INVALID_REQUEST, "1");
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}"),
                                "\"p\"");
    assert_int_equal(json_object_size(res), 0);
    json_decref(res);
    assert_false(eddy__mcp_session_initialized(s));
    assert_string_equal(eddy__mcp_session_version(s), "");
    eddy__mcp_session_close(s);
}

static void initialize_needs_version_capabilities_and_client_info(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, NULL);
    const char *params[] = {
        "{}",
        "{\"capabilities\":{},\"clientInfo\":{\"name\":\"c\",\"version\":\"1\"}}",
        "{\"protocolVersion\":20251125,\"capabilities\":{},\"clientInfo\":{\"name\":\"c\"}}",
        "{\"protocolVersion\":\"2025-11-25\",\"clientInfo\":{\"name\":\"c\",\"version\":\"1\"}}",
        "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":[],\"clientInfo\":{\"name\":\"c\"}}",
        "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}",
        "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":\"c\"}",
        "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"version\":\"1\"}}",
    };
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
        expect_error(
            rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":%s}",
                 params[i]),
            RPC_INVALID_PARAMS, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}"),
                 RPC_INVALID_PARAMS, "1");
    assert_false(eddy__mcp_session_initialized(s));
    eddy__mcp_session_close(s);
}

static char *negotiate(fx_t *f, const char *want) {
    eddy_mcp_session_t *s = fx_session(f, NULL);
    eddy_mcp_result_t r;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
             "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"c\","
             "\"version\":\"1\"}}}",
             want);
    json_t *res = expect_result(rpc_n(s, msg, strlen(msg), &r), "1");
    assert_true(r.initialize);
    assert_true(r.had_request);
    char *v = strdup(json_string_value(json_object_get(res, "protocolVersion")));
    assert_string_equal(eddy__mcp_session_version(s), v);
    /* what an initialize result always carries */
    json_t *caps = json_object_get(res, "capabilities");
    assert_true(json_is_true(json_object_get(json_object_get(caps, "resources"), "subscribe")));
    assert_non_null(json_object_get(caps, "tools"));
    assert_non_null(json_object_get(caps, "logging"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "serverInfo"),
                                                          "name")),
                        "eddy-mcp");
    assert_non_null(json_string_value(json_object_get(res, "instructions")));
    json_decref(res);
    eddy__mcp_session_close(s);
    return v;
}

static void the_protocol_version_is_echoed_or_the_latest_offered(void **state) {
    const char *known[] = {"2025-11-25", "2025-06-18", "2025-03-26"};
    for (int i = 0; i < 3; i++) {
        char *v = negotiate(*state, known[i]);
        assert_string_equal(v, known[i]);
        free(v);
    }
    const char *unknown[] = {"1999-01-01", "2024-11-05", "", "2025-11-25x"};
    for (int i = 0; i < 4; i++) {
        char *v = negotiate(*state, unknown[i]);
        assert_string_equal(v, EDDY_MCP_LATEST);
        free(v);
    }
}

static void a_second_initialize_is_refused_and_keeps_the_version(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-06-18");
    eddy_mcp_result_t r;
    const char *m = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\",\"params\":{"
                    INIT_PARAMS "}}";
    expect_error(rpc_n(s, m, strlen(m), &r), RPC_INVALID_REQUEST, "2");
    assert_false(r.initialize);
    assert_string_equal(eddy__mcp_session_version(s), "2025-06-18");
    eddy__mcp_session_close(s);
}

/* ------------------------------------------------------------ batches */

static void batches_are_processed_under_2025_03_26(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-03-26");
    eddy_mcp_result_t r;
    const char *b = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
                    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                    "{\"jsonrpc\":\"2.0\",\"id\":\"two\",\"method\":\"no/such\"},"
                    "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}},"
                    "7,"
                    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"}]";
    json_t *out = rpc_n(s, b, strlen(b), &r);
    assert_true(r.had_request);
    assert_true(json_is_array(out));
    /* responses for the requests and the invalid element, none for the
     * notification or the client's response, in order */
    assert_int_equal(json_array_size(out), 4);
    json_t *a0 = json_array_get(out, 0);
    assert_int_equal(json_integer_value(json_object_get(a0, "id")), 1);
    assert_true(json_is_object(json_object_get(a0, "result")));
    json_t *a1 = json_array_get(out, 1);
    assert_string_equal(json_string_value(json_object_get(a1, "id")), "two");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a1, "error"), "code")),
                     RPC_METHOD_NOT_FOUND);
    json_t *a2 = json_array_get(out, 2);
    assert_true(json_is_null(json_object_get(a2, "id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a2, "error"), "code")),
                     RPC_INVALID_REQUEST);
    json_t *a3 = json_array_get(out, 3);
    assert_int_equal(json_integer_value(json_object_get(a3, "id")), 4);
    assert_true(json_is_array(json_object_get(json_object_get(a3, "result"), "tools")));
    json_decref(out);

    /* only notifications: nothing at all comes back */
    const char *n = "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{"
                    "\"requestId\":99}}]";
    assert_null(rpc_n(s, n, strlen(n), &r));
    assert_false(r.had_request);
    /* an empty batch is an invalid request */
    expect_error(rpc(s, "[]"), RPC_INVALID_REQUEST, "null");
    /* a batch inside a batch is one invalid element */
    out = rpc(s, "[[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]]");
    assert_int_equal(json_array_size(out), 1);
    json_t *e0 = json_incref(json_array_get(out, 0));
    json_decref(out);
    expect_error(e0, RPC_INVALID_REQUEST, "null");
    eddy__mcp_session_close(s);
}

static void notifications_and_client_responses_get_no_answer(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    eddy_mcp_result_t r;
    const char *quiet[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/roots/list_changed\",\"params\":{}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{"
        "\"progressToken\":1,\"progress\":0.5}}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"no/such/notification\"}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":[1]}",
        "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\"}", /* a request without id */
        "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"roots\":[]}}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"s1\",\"error\":{\"code\":-1,\"message\":\"no\"}}",
    };
    for (size_t i = 0; i < sizeof(quiet) / sizeof(quiet[0]); i++) {
        assert_null(rpc_n(s, quiet[i], strlen(quiet[i]), &r));
        assert_false(r.had_request);
        assert_false(r.parse_error);
    }
    eddy__mcp_session_close(s);
}

/* ------------------------------------------------------------ methods */

static void tools_call_needs_a_known_tool_name_and_object_arguments(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *r = rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                       "\"name\":\"no_such_tool\",\"arguments\":{}}}");
    /* the message lists the tools that exist */
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(r, "error"),
                                                             "message")),
                           "get_value"));
    expect_error(r, RPC_INVALID_PARAMS, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{}}"),
                 RPC_INVALID_PARAMS, "2");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\"}"),
                 RPC_INVALID_PARAMS, "3");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{"
                        "\"name\":7}}"),
                 RPC_INVALID_PARAMS, "4");
    const char *args[] = {"[]", "\"x\"", "1", "true"};
    for (int i = 0; i < 4; i++)
        expect_error(rpcf(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{"
                          "\"name\":\"get_metrics\",\"arguments\":%s}}",
                          args[i]),
                     RPC_INVALID_PARAMS, "5");
    /* absent or null arguments are no arguments */
    json_decref(tool_ok(s, "get_metrics", "null"));
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
                                     "\"params\":{\"name\":\"describe_topology\"}}"),
                              "6"));
    eddy__mcp_session_close(s);
}

static void tool_argument_mistakes_are_tool_errors_not_protocol_errors(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    struct {
        const char *tool, *args, *says;
    } cases[] = {
        {"get_value", "{}", "totals (kv)"},
        {"get_value", "{\"store\":\"nope\",\"key\":\"u1\"}", "no store named 'nope'"},
        {"get_value", "{\"store\":\"per10\",\"key\":\"u1\"}", "use get_windows"},
        {"get_value", "{\"store\":\"totals\"}", "user (string)"},
        {"get_value", "{\"store\":7,\"key\":\"u1\"}", "'store' is required"},
        {"scan_store", "{\"store\":\"totals\",\"limit\":0}", "'limit' must be"},
        {"scan_store", "{\"store\":\"totals\",\"limit\":\"5\"}", "'limit' must be"},
        {"scan_store", "{\"store\":\"totals\",\"cursor\":5}", "'cursor' must be"},
        {"scan_store", "{\"store\":\"totals\",\"cursor\":\"zz\"}", "invalid cursor"},
        {"scan_store", "{\"store\":\"per10\",\"prefix\":\"u1\"}", "use get_windows"},
        {"scan_store", "{\"store\":\"pairs\",\"prefix\":[\"u1\"],\"string_prefix\":true,"
                       "\"from\":{\"n\":1}}",
         "user (string), n (int)"},
        {"scan_store", "{\"store\":\"pairs\",\"prefix\":[\"u1\",1],\"string_prefix\":true}",
         "string_prefix needs a string"},
        {"get_windows", "{\"store\":\"totals\",\"key\":\"u1\"}", "use get_value"},
        {"get_windows", "{\"store\":\"per10\",\"key\":\"u1\",\"from\":\"yesterday\"}",
         "ISO-8601"},
        {"get_windows", "{\"store\":\"per10\",\"key\":\"u1\",\"to\":true}", "ISO-8601"},
        {"get_windows", "{\"store\":\"per10\",\"key\":\"u1\",\"from\":10,\"to\":5}",
         "'from' is after 'to'"},
        {"get_windows", "{\"store\":\"per10\",\"key\":\"u1\",\"cursor\":\"nocolon\"}",
         "invalid cursor"},
        {"get_windows", "{\"store\":\"per10\"}", "user (string)"},
        {"top_keys", "{\"store\":\"totals\"}", "c (int)"},
        {"top_keys", "{\"store\":\"totals\",\"field\":\"user\"}", "numeric"},
        {"top_keys", "{\"store\":\"totals\",\"field\":\"c\",\"n\":0}", "'n' must be"},
        {"top_keys", "{\"store\":\"totals\",\"field\":\"c\",\"n\":101}", "'n' must be"},
        {"top_keys", "{\"store\":\"totals\",\"field\":\"c\",\"max_scan\":-1}", "'max_scan'"},
        {"top_keys", "{\"store\":\"totals\",\"field\":\"c\",\"from\":0}", "kv store"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = tool_err(s, cases[i].tool, cases[i].args);
        if (!strstr(t, cases[i].says))
            fail_msg("%s %s: '%s' does not say '%s'", cases[i].tool, cases[i].args, t,
                     cases[i].says);
        free(t);
    }
    eddy__mcp_session_close(s);
}

/* Arguments that make each tool do real work; a tool missing here fails
 * the test, so a new tool gets its check. */
static const struct {
    const char *tool, *args;
} every_tool[] = {
    {"describe_topology", "{}"},
    {"get_value", "{\"store\":\"totals\",\"key\":\"u3\"}"},
    {"scan_store", "{\"store\":\"pairs\",\"prefix\":\"u4\",\"limit\":3}"},
    {"get_windows", "{\"store\":\"per10\",\"key\":\"u2\"}"},
    {"get_matches", "{\"store\":\"seqs\",\"key\":\"u2\"}"},
    {"top_keys", "{\"store\":\"totals\",\"field\":\"s\",\"n\":3}"},
    {"get_metrics", "{}"},
};

static const char *args_for(const char *tool) {
    for (size_t i = 0; i < sizeof(every_tool) / sizeof(every_tool[0]); i++)
        if (!strcmp(every_tool[i].tool, tool))
            return every_tool[i].args;
    return NULL;
}

static void every_tool_answers_with_structured_content_equal_to_its_text(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"),
                                "1");
    json_t *tools = json_object_get(res, "tools");
    assert_int_equal(json_array_size(tools), sizeof(every_tool) / sizeof(every_tool[0]));
    assert_null(json_object_get(res, "nextCursor"));
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *args = args_for(name);
        if (!args)
            fail_msg("tool %s has no case in every_tool[]", name);
        assert_true(json_is_object(json_object_get(t, "inputSchema")));
        json_t *os = json_object_get(t, "outputSchema");
        assert_true(json_is_object(os));
        assert_true(json_is_true(json_object_get(json_object_get(t, "annotations"),
                                                 "readOnlyHint")));
        json_t *sc = tool_ok(s, name, args); /* asserts structured == text */
        /* and the answer has what the output schema requires */
        json_t *req = json_object_get(os, "required");
        for (size_t k = 0; k < json_array_size(req); k++)
            if (!json_object_get(sc, json_string_value(json_array_get(req, k))))
                fail_msg("%s: answer lacks required '%s'", name,
                         json_string_value(json_array_get(req, k)));
        json_decref(sc);
    }
    json_decref(res);
    eddy__mcp_session_close(s);
}

static void under_2025_03_26_tools_have_no_output_schema_nor_structured_content(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-03-26");
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}"),
                                "1");
    json_t *tools = json_object_get(res, "tools");
    assert_true(json_array_size(tools) > 0);
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i);
        assert_null(json_object_get(t, "outputSchema"));
        assert_null(json_object_get(t, "title"));
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *r = tool_call(s, name, args_for(name));
        assert_null(json_object_get(r, "structuredContent"));
        assert_true(json_is_false(json_object_get(r, "isError")));
        json_decref(r);
    }
    json_decref(res);
    /* serverInfo.title is 2025-06-18+ too */
    eddy__mcp_session_close(s);
}

static void list_cursors_that_were_never_given_are_invalid_params(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *methods[] = {"tools/list", "resources/list", "resources/templates/list",
                             "prompts/list"};
    const char *bad[] = {"\"abc\"", "\"\"", "\"999\"", "\"-1\"", "\"1x\"", "5", "null",
                         "\"18446744073709551616\""};
    for (int m = 0; m < 4; m++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            expect_error(rpcf(s,
                              "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"%s\",\"params\":{"
                              "\"cursor\":%s}}",
                              methods[m], bad[i]),
                         RPC_INVALID_PARAMS, "1");
        /* "0" is the first page */
        json_t *res = expect_result(
            rpcf(s,
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"%s\",\"params\":{\"cursor\":\"0\"}}",
                 methods[m]),
            "2");
        assert_null(json_object_get(res, "nextCursor"));
        json_decref(res);
    }
    eddy__mcp_session_close(s);
}

static void reading_an_unknown_resource_is_resource_not_found(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *uris[] = {"eddy://nothing", "file:///etc/passwd", "eddy://store/nope",
                          "eddy://store/nope/u1", "eddy://store/%zz", "", "eddy://store/"};
    for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
        json_t *r = rpcf(s,
                         "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/read\",\"params\":"
                         "{\"uri\":\"%s\"}}",
                         uris[i]);
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_object_get(r, "error"), "data"), "uri")),
                            uris[i]);
        expect_error(r, RPC_RESOURCE_NOT_FOUND, "3");
    }
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":"
                        "{}}"),
                 RPC_INVALID_PARAMS, "4");
    /* a key that does not fit the store's key fields */
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":"
                        "{\"uri\":\"eddy://store/pairs/u1\"}}"),
                 RPC_INVALID_PARAMS, "5");
    /* the ones that exist */
    const char *ok[] = {"eddy://topology", "eddy://metrics", "eddy://store/totals",
                        "eddy://store/totals/u3", "eddy://store/pairs/u2/1",
                        "eddy://store/per10/u2"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        json_t *res = expect_result(rpcf(s,
                                         "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":"
                                         "\"resources/read\",\"params\":{\"uri\":\"%s\"}}",
                                         ok[i]),
                                    "6");
        json_t *c0 = json_array_get(json_object_get(res, "contents"), 0);
        assert_string_equal(json_string_value(json_object_get(c0, "uri")), ok[i]);
        assert_string_equal(json_string_value(json_object_get(c0, "mimeType")),
                            "application/json");
        json_t *body = json_loads(json_string_value(json_object_get(c0, "text")), 0, NULL);
        assert_true(json_is_object(body));
        json_decref(body);
        json_decref(res);
    }
    eddy__mcp_session_close(s);
}

static void set_level_accepts_the_syslog_levels_only(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *bad[] = {"\"verbose\"", "\"DEBUG\"", "\"\"", "3", "null"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_error(rpcf(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logging/setLevel\","
                          "\"params\":{\"level\":%s}}",
                          bad[i]),
                     RPC_INVALID_PARAMS, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"logging/setLevel\"}"),
                 RPC_INVALID_PARAMS, "1");
    const char *good[] = {"debug", "info", "notice", "warning", "error", "critical", "alert",
                          "emergency"};
    for (int i = 0; i < 8; i++) {
        json_t *res = expect_result(rpcf(s,
                                         "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":"
                                         "\"logging/setLevel\",\"params\":{\"level\":\"%s\"}}",
                                         good[i]),
                                    "2");
        assert_int_equal(json_object_size(res), 0);
        json_decref(res);
    }
    eddy__mcp_session_close(s);
}

static void prompts_list_and_get(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/list\"}"),
                                "1");
    assert_int_equal(json_array_size(json_object_get(res, "prompts")), 3);
    json_decref(res);
    res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\","
                               "\"params\":{\"name\":\"investigate_key\",\"arguments\":{"
                               "\"key\":\"u3\",\"store\":\"totals\"}}}"),
                        "2");
    const char *text = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(res, "messages"), 0), "content"), "text"));
    assert_non_null(strstr(text, "key 'u3' in store totals"));
    json_decref(res);
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{"
                        "\"name\":\"investigate_key\"}}"),
                 RPC_INVALID_PARAMS, "3");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{"
                        "\"name\":\"investigate_key\",\"arguments\":{\"key\":5}}}"),
                 RPC_INVALID_PARAMS, "3");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\",\"params\":{"
                        "\"name\":\"nope\"}}"),
                 RPC_INVALID_PARAMS, "4");
    eddy__mcp_session_close(s);
}

/* ------------------------------------------------------------ cancellation */

static void a_cancelled_request_gets_no_response(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    eddy_mcp_result_t r;
    /* the cancellation overtakes the request (stdio handles notifications
     * on the reader thread, requests on the worker) */
    assert_null(rpc(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                       "{\"requestId\":77,\"reason\":\"user\"}}"));
    assert_null(rpc(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                       "{\"requestId\":\"req-a\"}}"));
    const char *m77 = "{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"tools/call\",\"params\":{"
                      "\"name\":\"get_metrics\"}}";
    assert_null(rpc_n(s, m77, strlen(m77), &r));
    assert_true(r.had_request);
    assert_null(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":\"req-a\",\"method\":\"ping\"}"));
    /* a different id, and an id equal in value but not type, are answered */
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":78,\"method\":\"ping\"}"), "78"));
    assert_null(rpc(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                       "{\"requestId\":\"79\"}}"));
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":79,\"method\":\"ping\"}"), "79"));
    eddy__mcp_session_close(s);
}

/* ------------------------------------------------------------ hostile input */

static void a_message_over_the_size_limit_is_refused_without_parsing(void **state) {
    fx_t *f = *state;
    eddy_mcp_opts_t o;
    eddy__mcp_opts_default(&o);
    o.max_request_bytes = 1024;
    eddy_mcp_t *small = eddy__mcp_new(f->eng, &o);
    eddy_mcp_session_t *s = eddy__mcp_session_new(small, NULL, NULL);
    /* not JSON at all, but too big first: -32600, not -32700 */
    char *big = malloc(4096);
    memset(big, '{', 4096);
    eddy_mcp_result_t r;
    json_t *j = rpc_n(s, big, 4096, &r);
    assert_false(r.parse_error);
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"),
                                                             "message")),
                           "1024"));
    expect_error(j, RPC_INVALID_REQUEST, "null");
    /* exactly the limit is parsed */
    memset(big, ' ', 1024);
    memcpy(big, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", 40);
    json_decref(expect_result(rpc_n(s, big, 1024, NULL), "1"));
    expect_error(rpc_n(s, big, 1025, NULL), RPC_INVALID_REQUEST, "null");
    free(big);
    eddy__mcp_session_close(s);
    eddy__mcp_destroy(small);
}

static void deeply_nested_json_is_an_error_not_a_crash(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-03-26");
    size_t n = 100000;
    char *p = malloc(2 * n + 64);
    /* 100000 '[' */
    memset(p, '[', n);
    expect_error(rpc_n(s, p, n, NULL), RPC_PARSE_ERROR, "null");
    /* balanced, as a batch of 2025-03-26 */
    memset(p + n, ']', n);
    expect_error(rpc_n(s, p, 2 * n, NULL), RPC_PARSE_ERROR, "null");
    /* nested objects inside params */
    size_t k = (size_t)sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":");
    for (int i = 0; i < 5000; i++)
        k += (size_t)sprintf(p + k, "{\"a\":");
    expect_error(rpc_n(s, p, k, NULL), RPC_PARSE_ERROR, "null");
    /* under the parser's depth limit the request is handled */
    k = (size_t)sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                           "\"name\":\"get_value\",\"arguments\":{\"store\":\"totals\",\"key\":");
    for (int i = 0; i < 1000; i++)
        p[k++] = '[';
    for (int i = 0; i < 1000; i++)
        p[k++] = ']';
    k += (size_t)sprintf(p + k, "}}}");
    json_t *res = expect_result(rpc_n(s, p, k, NULL), "1");
    assert_true(json_is_true(json_object_get(res, "isError")));
    json_decref(res);
    free(p);
    eddy__mcp_session_close(s);
}

static void invalid_utf8_is_a_parse_error(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *bad[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffing\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\",\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xed\xa0\x80\"}",     /* surrogate */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xf4\x90\x80\x80\"}", /* > U+10FFFF */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\\ud800\"}",          /* lone escape */
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}",         /* NUL */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        eddy_mcp_result_t r;
        json_t *j = rpc_n(s, bad[i], strlen(bad[i]), &r);
        assert_true(r.parse_error);
        expect_error(j, RPC_PARSE_ERROR, "null");
    }
    /* a NUL byte in the middle of the message */
    const char nul[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\0junk";
    expect_error(rpc_n(s, nul, sizeof(nul) - 1, NULL), RPC_PARSE_ERROR, "null");
    eddy__mcp_session_close(s);
}

static void very_long_method_names_and_ids_get_a_valid_answer(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    size_t n = 200000;
    char *msg = malloc(n + 128);
    /* ASCII */
    size_t k = (size_t)sprintf(msg, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"");
    memset(msg + k, 'm', n);
    k += n;
    k += (size_t)sprintf(msg + k, "\"}");
    expect_error(rpc_n(s, msg, k, NULL), RPC_METHOD_NOT_FOUND, "1");
    /* multi-byte characters: the message is cut to a bounded length, and
     * must not be cut inside a character (the answer would not be JSON) */
    for (int off = 0; off < 3; off++) {
        k = (size_t)sprintf(msg, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"");
        memset(msg + k, 'a', (size_t)off);
        k += (size_t)off;
        for (int i = 0; i < 2000; i++) {
            memcpy(msg + k, "\xe2\x82\xac", 3); /* the euro sign */
            k += 3;
        }
        k += (size_t)sprintf(msg + k, "\"}");
        json_t *r = rpc_n(s, msg, k, NULL);
        expect_error(r, RPC_METHOD_NOT_FOUND, "2");
    }
    /* a long string id comes back whole */
    k = (size_t)sprintf(msg, "{\"jsonrpc\":\"2.0\",\"method\":\"no/such\",\"id\":\"");
    memset(msg + k, 'i', 100000);
    k += 100000;
    k += (size_t)sprintf(msg + k, "\"}");
    json_t *r = rpc_n(s, msg, k, NULL);
    assert_int_equal(json_string_length(json_object_get(r, "id")), 100000);
    json_decref(r);
    free(msg);
    eddy__mcp_session_close(s);
}

static void long_multibyte_arguments_in_errors_still_give_json(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    /* each of these echoes a client string into a bounded message */
    char name[6100];
    size_t k = 0;
    for (int i = 0; i < 2000; i++) {
        memcpy(name + k, "\xe2\x82\xac", 3);
        k += 3;
    }
    name[k] = 0;
    for (int off = 0; off < 3; off++) {
        char pad[4] = "aaa";
        pad[off] = 0;
        /* unknown tool: a protocol error */
        expect_error(rpcf(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{"
                          "\"name\":\"%s%s\"}}",
                          pad, name),
                     RPC_INVALID_PARAMS, "1");
        /* unknown store: a tool error */
        char args[6400];
        snprintf(args, sizeof(args), "{\"store\":\"%s%s\",\"key\":\"u1\"}", pad, name);
        free(tool_err(s, "get_value", args));
        free(tool_err(s, "scan_store", args));
        free(tool_err(s, "get_windows", args));
        free(tool_err(s, "top_keys", args));
        /* unknown resource */
        expect_error(rpcf(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/read\",\"params\":"
                          "{\"uri\":\"eddy://%s%s\"}}",
                          pad, name),
                     RPC_RESOURCE_NOT_FOUND, "2");
        expect_error(rpcf(s,
                          "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/subscribe\","
                          "\"params\":{\"uri\":\"eddy://store/%s%s\"}}",
                          pad, name),
                     RPC_RESOURCE_NOT_FOUND, "2");
        /* a prompt argument */
        json_t *res = expect_result(rpcf(s,
                                         "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\","
                                         "\"params\":{\"name\":\"investigate_key\",\"arguments\":"
                                         "{\"key\":\"%s%s\"}}}",
                                         pad, name),
                                    "3");
        json_decref(res);
    }
    eddy__mcp_session_close(s);
}

static void duplicate_keys_take_the_last_value(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    /* jansson keeps the last of duplicate keys; answer accordingly */
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"x\","
                                     "\"method\":\"ping\"}"),
                              "2"));
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"jsonrpc\":\"1.0\"}"),
                 RPC_INVALID_REQUEST, "1");
    json_t *sc = tool_ok(s, "get_value",
                         "{\"store\":\"nope\",\"store\":\"totals\",\"key\":\"u0\",\"key\":\"u2\"}");
    assert_true(json_is_true(json_object_get(sc, "found")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(sc, "key"), "user")),
                        "u2");
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void client_chosen_names_cannot_forge_or_crowd_out_metrics(void **state) {
    fx_t g = *(fx_t *)*state, *f = &g;
    f->m = eddy__mcp_new(f->eng, NULL); /* counts of its own */
    eddy_mcp_session_t *s = fx_session(f, "2025-11-25");
    /* a method name that would close the label and start a new line */
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\\\"} 1\\nforged_total 1\\n#\"}"),
                 RPC_METHOD_NOT_FOUND, "1");
    expect_error(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{"
                        "\"name\":\"y\\\"} 1\\nforged_tool 1\"}}"),
                 RPC_INVALID_PARAMS, "2");
    /* many made-up methods, then real ones: the real ones are still counted */
    for (int i = 0; i < 100; i++)
        expect_error(rpcf(s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"junk/%d\"}", i),
                     RPC_METHOD_NOT_FOUND, "3");
    json_decref(expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/list\"}"),
                              "4"));
    json_decref(tool_ok(s, "get_value", "{\"store\":\"totals\",\"key\":\"u1\"}"));
    char *prom = eddy__mcp_prometheus(f->m);
    assert_non_null(prom);
    for (char *line = prom; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, "forged", 6))
            fail_msg("a client forged a metric line: %.80s", line);
        /* every sample line is NAME{labels} VALUE or NAME VALUE */
        assert_true(*line == '#' || !strncmp(line, "eddy_", 5));
    }
    assert_non_null(strstr(prom, "eddy_mcp_calls_total{method=\"prompts/list\"} 1\n"));
    assert_non_null(strstr(prom, "eddy_mcp_calls_total{method=\"tools/call:get_value\"}"));
    assert_null(strstr(prom, "junk/"));
    free(prom);
    eddy__mcp_session_close(s);
    eddy__mcp_destroy(f->m);
}

static void the_handle_json_entry_point_answers_like_the_bytes_one(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *msg = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 5, "method", "ping");
    eddy_mcp_result_t r;
    eddy__mcp_handle_json(s, msg, &r);
    json_decref(msg);
    assert_true(r.had_request);
    assert_string_equal(r.response, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
    free(r.response);
    eddy__mcp_session_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_json_is_a_parse_error_with_a_null_id),
        cmocka_unit_test(a_message_that_is_not_an_object_is_an_invalid_request),
        cmocka_unit_test(jsonrpc_must_be_the_string_2_0),
        cmocka_unit_test(an_id_of_the_wrong_type_is_refused_with_a_null_id),
        cmocka_unit_test(method_must_be_a_string),
        cmocka_unit_test(an_unknown_method_echoes_the_id_exactly),
        cmocka_unit_test(params_that_are_not_an_object_are_invalid_params),
        cmocka_unit_test(requests_before_initialize_are_refused_but_ping_works),
        cmocka_unit_test(initialize_needs_version_capabilities_and_client_info),
        cmocka_unit_test(the_protocol_version_is_echoed_or_the_latest_offered),
        cmocka_unit_test(a_second_initialize_is_refused_and_keeps_the_version),
        cmocka_unit_test(batches_are_processed_under_2025_03_26),
        cmocka_unit_test(notifications_and_client_responses_get_no_answer),
        cmocka_unit_test(tools_call_needs_a_known_tool_name_and_object_arguments),
        cmocka_unit_test(tool_argument_mistakes_are_tool_errors_not_protocol_errors),
        cmocka_unit_test(every_tool_answers_with_structured_content_equal_to_its_text),
        cmocka_unit_test(under_2025_03_26_tools_have_no_output_schema_nor_structured_content),
        cmocka_unit_test(list_cursors_that_were_never_given_are_invalid_params),
        cmocka_unit_test(reading_an_unknown_resource_is_resource_not_found),
        cmocka_unit_test(set_level_accepts_the_syslog_levels_only),
        cmocka_unit_test(prompts_list_and_get),
        cmocka_unit_test(a_cancelled_request_gets_no_response),
        cmocka_unit_test(a_message_over_the_size_limit_is_refused_without_parsing),
        cmocka_unit_test(deeply_nested_json_is_an_error_not_a_crash),
        cmocka_unit_test(invalid_utf8_is_a_parse_error),
        cmocka_unit_test(very_long_method_names_and_ids_get_a_valid_answer),
        cmocka_unit_test(long_multibyte_arguments_in_errors_still_give_json),
        cmocka_unit_test(duplicate_keys_take_the_last_value),
        cmocka_unit_test(client_chosen_names_cannot_forge_or_crowd_out_metrics),
        cmocka_unit_test(the_handle_json_entry_point_answers_like_the_bytes_one),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
