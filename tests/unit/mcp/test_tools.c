/*
 * The MCP tools on real committed state (see mcp_fixture.h for the data):
 * the answers a model gets for keys given every way it may give them,
 * scans that page, windows in time order, rankings, and time arguments
 * as milliseconds or ISO-8601.
 */
#include "mcp_fixture.h"

static json_t *items_of(json_t *sc, const char *what) {
    json_t *a = json_object_get(sc, what);
    assert_true(json_is_array(a));
    assert_int_equal(json_integer_value(json_object_get(sc, "count")), json_array_size(a));
    return a;
}

static const char *str_at(json_t *a, size_t i, const char *field) {
    return json_string_value(json_object_get(json_array_get(a, i), field));
}

static json_int_t int_at(json_t *a, size_t i, const char *field) {
    json_t *v = json_object_get(json_array_get(a, i), field);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void get_value_finds_a_key_given_as_object_array_or_bare_value(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *keys[] = {"{\"user\":\"u3\"}", "[\"u3\"]", "\"u3\""};
    for (int i = 0; i < 3; i++) {
        char args[256];
        snprintf(args, sizeof(args), "{\"store\":\"totals\",\"key\":%s}", keys[i]);
        json_t *sc = tool_ok(s, "get_value", args);
        assert_true(json_is_true(json_object_get(sc, "found")));
        json_t *want = json_loads("{\"user\":\"u3\",\"c\":4,\"s\":6}", 0, NULL);
        assert_true(json_equal(json_object_get(sc, "value"), want));
        json_decref(want);
        assert_string_equal(json_string_value(json_object_get(json_object_get(sc, "key"), "user")),
                            "u3");
        assert_string_equal(json_string_value(json_object_get(sc, "store")), "totals");
        json_decref(sc);
    }
    /* two key fields: object or array, string given for the int field */
    const char *pairs[] = {"{\"user\":\"u7\",\"n\":5}", "[\"u7\",5]", "[\"u7\",\"5\"]"};
    for (int i = 0; i < 3; i++) {
        char args[256];
        snprintf(args, sizeof(args), "{\"store\":\"pairs\",\"key\":%s}", pairs[i]);
        json_t *sc = tool_ok(s, "get_value", args);
        assert_true(json_is_true(json_object_get(sc, "found")));
        json_t *v = json_object_get(sc, "value");
        assert_int_equal(json_integer_value(json_object_get(v, "n")), 5);
        assert_int_equal(json_integer_value(json_object_get(v, "c")), 1);
        json_decref(sc);
    }
    eddy__mcp_session_close(s);
}

static void get_value_says_found_false_for_a_missing_key(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *sc = tool_ok(s, "get_value", "{\"store\":\"totals\",\"key\":\"nobody\"}");
    assert_true(json_is_false(json_object_get(sc, "found")));
    assert_true(json_is_null(json_object_get(sc, "value")));
    json_decref(sc);
    /* u2 has n = 0..2 only */
    sc = tool_ok(s, "get_value", "{\"store\":\"pairs\",\"key\":[\"u2\",3]}");
    assert_true(json_is_false(json_object_get(sc, "found")));
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void a_key_of_the_wrong_shape_or_type_lists_the_key_fields(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    const char *bad[] = {
        "{\"store\":\"pairs\",\"key\":\"u2\"}",                   /* bare value, two fields */
        "{\"store\":\"pairs\",\"key\":[\"u2\"]}",                 /* too few */
        "{\"store\":\"pairs\",\"key\":[\"u2\",1,2]}",             /* too many */
        "{\"store\":\"pairs\",\"key\":{\"user\":\"u2\",\"m\":1}}", /* wrong name */
        "{\"store\":\"pairs\",\"key\":{\"user\":\"u2\",\"n\":\"one\"}}", /* wrong type */
        "{\"store\":\"pairs\",\"key\":[\"u2\",1.5]}",             /* not an int */
        "{\"store\":\"pairs\",\"key\":[true,1]}",                 /* not a string */
        "{\"store\":\"totals\",\"key\":{\"user\":[\"u2\"]}}",
        "{\"store\":\"totals\",\"key\":{}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *t = tool_err(s, "get_value", bad[i]);
        const char *want = strstr(bad[i], "pairs") ? "user (string), n (int)" : "user (string)";
        if (!strstr(t, want))
            fail_msg("%s: '%s' does not list the key fields '%s'", bad[i], t, want);
        free(t);
    }
    eddy__mcp_session_close(s);
}

static void scan_store_pages_through_every_entry_with_its_cursor(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    char cursor[9100] = "null";
    int pages = 0, total = 0;
    char prev[64] = "";
    for (;;) {
        char args[9300];
        snprintf(args, sizeof(args), "{\"store\":\"totals\",\"limit\":3,\"cursor\":%s}", cursor);
        json_t *sc = tool_ok(s, "scan_store", args);
        json_t *items = items_of(sc, "items");
        pages++;
        for (size_t i = 0; i < json_array_size(items); i++) {
            const char *u = str_at(items, i, "user");
            assert_true(strcmp(prev, u) < 0); /* key order, no repeats */
            snprintf(prev, sizeof(prev), "%s", u);
            total++;
        }
        json_t *next = json_object_get(sc, "next_cursor");
        if (json_is_null(next)) {
            json_decref(sc);
            break;
        }
        assert_int_equal(json_array_size(items), 3);
        snprintf(cursor, sizeof(cursor), "\"%s\"", json_string_value(next));
        json_decref(sc);
        assert_true(pages < 10);
    }
    assert_int_equal(total, 10);
    assert_int_equal(pages, 4); /* 3+3+3+1 */
    assert_string_equal(prev, "u9");
    /* the window store scans whole too */
    json_t *sc = tool_ok(s, "scan_store", "{\"store\":\"per10\",\"limit\":500}");
    assert_int_equal(json_array_size(items_of(sc, "items")), 55);
    json_decref(sc);
    /* limit is capped at the server's maximum, default 20 */
    sc = tool_ok(s, "scan_store", "{\"store\":\"pairs\"}");
    assert_int_equal(json_array_size(items_of(sc, "items")), 20);
    assert_true(json_is_string(json_object_get(sc, "next_cursor")));
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void scan_store_restricts_to_a_prefix_or_a_key_range(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    /* leading key field as object, array and bare value */
    const char *prefixes[] = {"{\"user\":\"u4\"}", "[\"u4\"]", "\"u4\""};
    for (int i = 0; i < 3; i++) {
        char args[256];
        snprintf(args, sizeof(args), "{\"store\":\"pairs\",\"prefix\":%s}", prefixes[i]);
        json_t *sc = tool_ok(s, "scan_store", args);
        json_t *items = items_of(sc, "items");
        assert_int_equal(json_array_size(items), 5);
        for (size_t k = 0; k < 5; k++) {
            assert_string_equal(str_at(items, k, "user"), "u4");
            assert_int_equal(int_at(items, k, "n"), (json_int_t)k);
        }
        assert_true(json_is_null(json_object_get(sc, "next_cursor")));
        json_decref(sc);
    }
    /* a string prefix of the last value */
    json_t *sc = tool_ok(s, "scan_store",
                         "{\"store\":\"totals\",\"prefix\":\"u\",\"string_prefix\":true}");
    assert_int_equal(json_array_size(items_of(sc, "items")), 10);
    json_decref(sc);
    sc = tool_ok(s, "scan_store", "{\"store\":\"totals\",\"prefix\":\"u\"}");
    assert_int_equal(json_array_size(items_of(sc, "items")), 0); /* exact "u": none */
    json_decref(sc);
    /* [from, to): u2/1 u2/2 u3/0..3 */
    sc = tool_ok(s, "scan_store", "{\"store\":\"pairs\",\"from\":[\"u2\",1],\"to\":{\"user\":\"u4\"}}");
    json_t *items = items_of(sc, "items");
    assert_int_equal(json_array_size(items), 6);
    assert_string_equal(str_at(items, 0, "user"), "u2");
    assert_int_equal(int_at(items, 0, "n"), 1);
    assert_string_equal(str_at(items, 5, "user"), "u3");
    assert_int_equal(int_at(items, 5, "n"), 3);
    json_decref(sc);
    /* a range paged with its cursor stays in the range */
    sc = tool_ok(s, "scan_store",
                 "{\"store\":\"pairs\",\"from\":[\"u2\",1],\"to\":[\"u4\"],\"limit\":4}");
    assert_int_equal(json_array_size(items_of(sc, "items")), 4);
    char args[9300];
    snprintf(args, sizeof(args),
             "{\"store\":\"pairs\",\"from\":[\"u2\",1],\"to\":[\"u4\"],\"limit\":4,"
             "\"cursor\":\"%s\"}",
             json_string_value(json_object_get(sc, "next_cursor")));
    json_decref(sc);
    sc = tool_ok(s, "scan_store", args);
    items = items_of(sc, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(str_at(items, 1, "user"), "u3");
    assert_true(json_is_null(json_object_get(sc, "next_cursor")));
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void get_windows_returns_the_windows_of_a_key_in_time_order(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *sc = tool_ok(s, "get_windows", "{\"store\":\"per10\",\"key\":{\"user\":\"u3\"}}");
    json_t *w = items_of(sc, "windows");
    assert_int_equal(json_array_size(w), 4);
    for (size_t j = 0; j < 4; j++) {
        assert_int_equal(int_at(w, j, "window_start"), T0 + 10 * (json_int_t)j);
        assert_int_equal(int_at(w, j, "window_end"), T0 + 10 * (json_int_t)j + 10);
        assert_int_equal(int_at(w, j, "c"), 1);
        assert_int_equal(int_at(w, j, "s"), (json_int_t)j);
    }
    assert_string_equal(json_string_value(json_object_get(sc, "kind")), "window");
    json_decref(sc);
    /* one at a time with the cursor */
    char cursor[9100] = "null";
    for (int j = 0; j < 4; j++) {
        char args[9300];
        snprintf(args, sizeof(args),
                 "{\"store\":\"per10\",\"key\":\"u3\",\"limit\":1,\"cursor\":%s}", cursor);
        sc = tool_ok(s, "get_windows", args);
        w = items_of(sc, "windows");
        assert_int_equal(json_array_size(w), 1);
        assert_int_equal(int_at(w, 0, "window_start"), T0 + 10 * j);
        json_t *next = json_object_get(sc, "next_cursor");
        if (j < 3)
            snprintf(cursor, sizeof(cursor), "\"%s\"", json_string_value(next));
        else
            assert_true(json_is_null(next));
        json_decref(sc);
    }
    /* a key with no windows */
    sc = tool_ok(s, "get_windows", "{\"store\":\"per10\",\"key\":\"nobody\"}");
    assert_int_equal(json_array_size(items_of(sc, "windows")), 0);
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void times_are_accepted_as_milliseconds_or_iso_8601(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    /* windows of u9 starting in [T0+10, T0+30]: 3 of them, every spelling */
    const char *ranges[][2] = {
        {"1700000000010", "1700000000030"},
        {"\"1700000000010\"", "\"1700000000030\""},
        {"\"2023-11-14T22:13:20.010Z\"", "\"2023-11-14T22:13:20.030Z\""},
        {"\"2023-11-14T23:13:20.010+01:00\"", "\"2023-11-14T21:13:20.030-01:00\""},
        {"\"2023-11-14T23:13:20.010+0100\"", "1700000000030"},
        {"\"2023-11-14 22:13:20.01z\"", "1700000000030.0"},
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        char args[512];
        snprintf(args, sizeof(args), "{\"store\":\"per10\",\"key\":\"u9\",\"from\":%s,\"to\":%s}",
                 ranges[i][0], ranges[i][1]);
        json_t *sc = tool_ok(s, "get_windows", args);
        json_t *w = items_of(sc, "windows");
        if (json_array_size(w) != 3)
            fail_msg("%s: %zu windows", args, json_array_size(w));
        assert_int_equal(int_at(w, 0, "window_start"), T0 + 10);
        assert_int_equal(int_at(w, 2, "window_start"), T0 + 30);
        json_decref(sc);
    }
    /* a bare date is midnight UTC: everything is after 2023-11-14 */
    json_t *sc = tool_ok(s, "get_windows",
                         "{\"store\":\"per10\",\"key\":\"u9\",\"from\":\"2023-11-14\","
                         "\"to\":\"2023-11-15\"}");
    assert_int_equal(json_array_size(items_of(sc, "windows")), 10);
    json_decref(sc);
    /* top_keys on windows takes the same times */
    sc = tool_ok(s, "top_keys",
                 "{\"store\":\"per10\",\"field\":\"s\",\"n\":100,"
                 "\"from\":\"2023-11-14T22:13:20.090Z\",\"to\":1700000000090}");
    assert_int_equal(json_array_size(json_object_get(sc, "items")), 1);
    json_decref(sc);
    /* nonsense and out-of-range times are tool errors */
    const char *bad[] = {"\"2023-13-01\"", "\"2023-11-14T25:00Z\"", "\"2023-11-14T22:13:20Q\"",
                         "\"2023-11-14T\"", "{}", "\"2023-11-14T22:13:20.1e999Z\"",
                         "\"2023-11-14T22:13:20.5e20Z\"", "-9223372036854775808",
                         "9223372036854775807", "\"-9223372036854775807\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char args[512];
        snprintf(args, sizeof(args), "{\"store\":\"per10\",\"key\":\"u9\",\"from\":%s}", bad[i]);
        char *t = tool_err(s, "get_windows", args);
        free(t);
    }
    eddy__mcp_session_close(s);
}

static void top_keys_ranks_the_largest_values_first(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *sc = tool_ok(s, "top_keys", "{\"store\":\"totals\",\"field\":\"c\",\"n\":3}");
    json_t *items = json_object_get(sc, "items");
    assert_int_equal(json_array_size(items), 3);
    assert_string_equal(str_at(items, 0, "user"), "u9");
    assert_string_equal(str_at(items, 1, "user"), "u8");
    assert_string_equal(str_at(items, 2, "user"), "u7");
    assert_int_equal(int_at(items, 0, "c"), 10);
    assert_int_equal(json_integer_value(json_object_get(sc, "scanned")), 10);
    assert_true(json_is_true(json_object_get(sc, "complete")));
    json_decref(sc);
    /* all of them: sorted descending */
    sc = tool_ok(s, "top_keys", "{\"store\":\"totals\",\"field\":\"s\",\"n\":100}");
    items = json_object_get(sc, "items");
    assert_int_equal(json_array_size(items), 10);
    for (size_t i = 1; i < 10; i++)
        assert_true(int_at(items, i - 1, "s") >= int_at(items, i, "s"));
    assert_int_equal(int_at(items, 0, "s"), 45);
    json_decref(sc);
    /* a bounded scan says it is incomplete */
    sc = tool_ok(s, "top_keys", "{\"store\":\"pairs\",\"field\":\"n\",\"max_scan\":5}");
    assert_int_equal(json_integer_value(json_object_get(sc, "scanned")), 5);
    assert_true(json_is_false(json_object_get(sc, "complete")));
    json_decref(sc);
    /* windows starting at T0+90 only: u9's last window, s = 9 */
    sc = tool_ok(s, "top_keys",
                 "{\"store\":\"per10\",\"field\":\"s\",\"from\":1700000000090,"
                 "\"to\":\"2023-11-14T22:13:20.090Z\"}");
    items = json_object_get(sc, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(str_at(items, 0, "user"), "u9");
    assert_int_equal(int_at(items, 0, "s"), 9);
    json_decref(sc);
    eddy__mcp_session_close(s);
}

static void a_key_resource_reads_what_get_value_answers(void **state) {
    eddy_mcp_session_t *s = fx_session(*state, "2025-11-25");
    json_t *res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
                                       "\"resources/read\",\"params\":{\"uri\":"
                                       "\"eddy://store/totals/u5\"}}"),
                                "1");
    json_t *body = json_loads(json_string_value(json_object_get(
                                  json_array_get(json_object_get(res, "contents"), 0), "text")),
                              0, NULL);
    json_decref(res);
    json_t *sc = tool_ok(s, "get_value", "{\"store\":\"totals\",\"key\":\"u5\"}");
    assert_true(json_equal(json_object_get(body, "value"), json_object_get(sc, "value")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(body, "value"), "c")), 6);
    json_decref(sc);
    json_decref(body);
    /* percent-encoded segments */
    res = expect_result(rpc(s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/read\","
                               "\"params\":{\"uri\":\"eddy://store/pairs/%75%32/1\"}}"),
                        "2");
    body = json_loads(json_string_value(json_object_get(
                          json_array_get(json_object_get(res, "contents"), 0), "text")),
                      0, NULL);
    assert_true(json_is_true(json_object_get(body, "found")));
    json_decref(body);
    json_decref(res);
    eddy__mcp_session_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_value_finds_a_key_given_as_object_array_or_bare_value),
        cmocka_unit_test(get_value_says_found_false_for_a_missing_key),
        cmocka_unit_test(a_key_of_the_wrong_shape_or_type_lists_the_key_fields),
        cmocka_unit_test(scan_store_pages_through_every_entry_with_its_cursor),
        cmocka_unit_test(scan_store_restricts_to_a_prefix_or_a_key_range),
        cmocka_unit_test(get_windows_returns_the_windows_of_a_key_in_time_order),
        cmocka_unit_test(times_are_accepted_as_milliseconds_or_iso_8601),
        cmocka_unit_test(top_keys_ranks_the_largest_values_first),
        cmocka_unit_test(a_key_resource_reads_what_get_value_answers),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
