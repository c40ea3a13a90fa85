/*
 * Shared by the MCP suites: an engine over a host source with a kv
 * aggregate store (one key field and two key fields) and a tumbling window
 * store, run to the end so the committed state is known, and helpers that
 * talk JSON-RPC to a session of a server over it exactly as a transport
 * would (eddy__mcp_handle on the raw bytes).
 *
 * Data: users u0..u9; user i has i+1 records n = 0..i at T0 + 10*n ms.
 *   totals (by user):        u_i -> c = i+1, s = i*(i+1)/2
 *   pairs  (by [user, n]):   55 entries, c = 1
 *   per10  (10ms tumbling):  u_i -> windows starting T0 + 10*j, j = 0..i
 *   seqs   (cep, a log):     u1..u9 -> one match (n = 0 then n = 1) ending at T0 + 10
 *
 * Header-only (static functions) so each suite stays one executable.
 */
#ifndef EDDY_TEST_MCP_FIXTURE_H
#define EDDY_TEST_MCP_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy.h"
#include "mcp/mcp.h"

#define FX_FN static __attribute__((unused))
#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */

typedef struct {
    char dir[64];
    eddy_topology_t *topo;
    eddy_engine_t *eng;
    eddy_mcp_t *m;
} fx_t;

FX_FN const char *FX_YAML =
    "application: mcptest\n"
    "settings: {threads: 1, state.dir: '%s', commit.interval.ms: %s}\n"
    "sources: [{name: in, type: host, partitions: 1, schema: {user: string, n: int},\n"
    "           watermark: {max_out_of_orderness: 0ms}}]\n"
    "sinks: [{name: void, type: blackhole}]\n"
    "pipelines:\n"
    "  - name: totals\n"
    "    from: in\n"
    "    steps: [{aggregate: {by: user, fields: {c: count(), s: sum(n)}, store: totals}}]\n"
    "    to: void\n"
    "  - name: pairs\n"
    "    from: in\n"
    "    steps: [{aggregate: {by: [user, n], fields: {c: count()}, store: pairs}}]\n"
    "    to: void\n"
    "  - name: per10\n"
    "    from: in\n"
    "    steps:\n"
    "      - window: {type: tumbling, size: 10ms, retention: 1h, store: per10}\n"
    "        aggregate: {by: user, fields: {c: count(), s: sum(n)}}\n"
    "    to: void\n"
    "  - name: seqs\n"
    "    from: in\n"
    "    steps:\n"
    "      - cep: {by: user, store: seqs, pattern: [{name: a, where: \"n = 0\"},\n"
    "              {name: b, next: \"n = 1\"}], fields: {b: last(b.n)}}\n"
    "    to: void\n";

FX_FN void fx_push(eddy_engine_t *eng, const char *user, int64_t n, int64_t ts) {
    eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(user)},
                         {.type = EDDY_TYPE_INT}};
    v[0].u.s = user;
    v[1].u.i = n;
    assert_int_equal(eddy_engine_push(eng, "in", 0, v, ts), EDDY_OK);
}

/* An engine (not started) on a fresh state dir. */
FX_FN fx_t *fx_engine(const char *commit_interval) {
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy_mcp_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char y[4096], err[1024];
    snprintf(y, sizeof(y), FX_YAML, f->dir, commit_interval);
    f->topo = eddy_topology_load_string(y, strlen(y), "mcp.yaml", err, sizeof(err));
    if (!f->topo)
        fail_msg("%s", err);
    f->eng = eddy_engine_new(f->topo, NULL, err, sizeof(err));
    if (!f->eng)
        fail_msg("%s", err);
    return f;
}

/* The bounded fixture: every record pushed, input ended, run to the end. */
FX_FN fx_t *fx_bounded(void) {
    fx_t *f = fx_engine("1000ms");
    char user[8];
    for (int j = 0; j < 10; j++)
        for (int i = j; i < 10; i++) {
            snprintf(user, sizeof(user), "u%d", i);
            fx_push(f->eng, user, j, T0 + 10 * j);
        }
    assert_int_equal(eddy_engine_end_input(f->eng, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_start(f->eng), EDDY_OK);
    assert_int_equal(eddy_engine_poll(f->eng, 60000), EDDY_OK);
    f->m = eddy__mcp_new(f->eng, NULL);
    assert_non_null(f->m);
    return f;
}

FX_FN void fx_free(fx_t *f) {
    eddy__mcp_destroy(f->m); /* before the engine it reads */
    eddy_engine_destroy(f->eng);
    eddy_topology_destroy(f->topo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

FX_FN int fx_setup(void **state) {
    *state = fx_bounded();
    return 0;
}

FX_FN int fx_teardown(void **state) {
    fx_free(*state);
    return 0;
}

/* ------------------------------------------------------------ talking */

/* Send raw bytes; the parsed response (new reference) or NULL when the
 * server sends nothing. res (may be NULL) gets the flags. */
FX_FN json_t *rpc_n(eddy_mcp_session_t *s, const char *msg, size_t len, eddy_mcp_result_t *res) {
    eddy_mcp_result_t r;
    eddy__mcp_handle(s, msg, len, &r);
    json_t *j = NULL;
    if (r.response) {
        json_error_t je;
        j = json_loads(r.response, 0, &je);
        if (!j)
            fail_msg("response is not JSON (%s): %s", je.text, r.response);
        free(r.response);
        r.response = NULL;
    }
    if (res)
        *res = r;
    return j;
}

FX_FN json_t *rpc(eddy_mcp_session_t *s, const char *msg) {
    return rpc_n(s, msg, strlen(msg), NULL);
}

/* printf-style message */
FX_FN json_t *rpcf(eddy_mcp_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
FX_FN json_t *rpcf(eddy_mcp_session_t *s, const char *fmt, ...) {
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return rpc(s, buf);
}

FX_FN char *id_text(json_t *r) {
    json_t *id = json_object_get(r, "id");
    if (!id)
        return strdup("<absent>");
    return json_dumps(id, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* r is a JSON-RPC error with this code and id (JSON text, "null" for
 * null); consumes r. */
FX_FN void expect_error(json_t *r, int code, const char *id) {
    assert_non_null(r);
    assert_true(json_is_object(r));
    assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    assert_null(json_object_get(r, "result"));
    json_t *e = json_object_get(r, "error");
    if (!json_is_object(e)) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("not an error response: %s", t);
    }
    if (json_integer_value(json_object_get(e, "code")) != code) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("want code %d, got %s", code, t);
    }
    const char *msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(msg);
    assert_true(msg[0] != 0);
    char *got = id_text(r);
    assert_string_equal(got, id);
    free(got);
    json_decref(r);
}

/* r is a result response with this id; returns the result (new ref),
 * consumes r. */
FX_FN json_t *expect_result(json_t *r, const char *id) {
    assert_non_null(r);
    if (json_object_get(r, "error")) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("unexpected error: %s", t);
    }
    assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    char *got = id_text(r);
    assert_string_equal(got, id);
    free(got);
    json_t *res = json_object_get(r, "result");
    assert_true(json_is_object(res));
    json_incref(res);
    json_decref(r);
    return res;
}

/* A session; initialized with that protocol version unless NULL. */
FX_FN eddy_mcp_session_t *fx_session(fx_t *f, const char *version) {
    eddy_mcp_session_t *s = eddy__mcp_session_new(f->m, NULL, NULL);
    assert_non_null(s);
    if (version) {
        json_t *res = expect_result(
            rpcf(s,
                 "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                 "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":"
                 "\"test\",\"version\":\"1\"}}}",
                 version),
            "0");
        assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), version);
        json_decref(res);
        assert_null(rpc(s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
    }
    return s;
}

/* tools/call name with args (JSON text); the CallToolResult (new ref). */
FX_FN json_t *tool_call(eddy_mcp_session_t *s, const char *name, const char *args) {
    return expect_result(rpcf(s,
                              "{\"jsonrpc\":\"2.0\",\"id\":\"t\",\"method\":\"tools/call\","
                              "\"params\":{\"name\":\"%s\",\"arguments\":%s}}",
                              name, args),
                         "\"t\"");
}

/* A successful tool call: isError false, one text content whose JSON is
 * the structuredContent (when the version has it). Returns that JSON. */
FX_FN json_t *tool_ok(eddy_mcp_session_t *s, const char *name, const char *args) {
    json_t *r = tool_call(s, name, args);
    if (!json_is_false(json_object_get(r, "isError"))) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("%s %s: %s", name, args, t);
    }
    json_t *content = json_object_get(r, "content");
    assert_int_equal(json_array_size(content), 1);
    json_t *c0 = json_array_get(content, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "text");
    json_t *text = json_loads(json_string_value(json_object_get(c0, "text")), 0, NULL);
    assert_non_null(text);
    json_t *sc = json_object_get(r, "structuredContent");
    if (strcmp(eddy__mcp_session_version(s), "2025-03-26")) {
        assert_non_null(sc);
        assert_true(json_equal(sc, text));
    } else {
        assert_null(sc);
    }
    json_decref(r);
    return text;
}

/* A tool mistake: isError true, and the text names what would work.
 * Returns the text (malloc'd). */
FX_FN char *tool_err(eddy_mcp_session_t *s, const char *name, const char *args) {
    json_t *r = tool_call(s, name, args);
    if (!json_is_true(json_object_get(r, "isError"))) {
        char *t = json_dumps(r, JSON_COMPACT);
        fail_msg("expected isError for %s %s: %s", name, args, t);
    }
    assert_null(json_object_get(r, "structuredContent"));
    const char *t = json_string_value(
        json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
    assert_non_null(t);
    char *out = strdup(t);
    json_decref(r);
    return out;
}

#endif
