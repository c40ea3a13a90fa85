/*
 * libFuzzer target: the MCP JSON-RPC layer (mcp/server.c and the tools,
 * resources and prompts behind it), fed exactly as the transports feed it.
 *
 * A tiny engine is built once (LLVMFuzzerInitialize): a host source, a kv
 * aggregate store with a one-field key, one with a two-field key, and a
 * tumbling window store, with a few keys committed, so tool calls and
 * resource reads do real lookups, scans and cursor decoding. Every input
 * then runs on fresh sessions (so a crash reproduces from its input alone):
 *
 *   1. the whole input as one message on a session initialized at
 *      2025-11-25 (no batches), and
 *   2. on one initialized at 2025-03-26 (batches, no structuredContent);
 *   3. the input as a stdio line stream (newline-delimited messages in
 *      order) on an uninitialized session, so sequences happen:
 *      initialize then calls, cancel then request, subscribe/unsubscribe.
 *
 * Besides the sanitizers, each answer is checked the way a client would:
 * it must be JSON with "jsonrpc":"2.0", and a single request (an object
 * with an id and a method) must get an answer unless a cancellation was
 * sent. A violated check aborts, which libFuzzer reports as a crash.
 *
 * Build: cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DEDDY_FUZZ=ON
 *        -DEDDY_SANITIZE=address,undefined -DEDDY_BUILD_TESTS=OFF
 *        && cmake --build build-fuzz --target fuzz_mcp_jsonrpc
 * Run:   ./build-fuzz/fuzz_mcp_jsonrpc -dict=fuzz/mcp_jsonrpc.dict
 *        -max_total_time=60 fuzz/corpus/mcp_jsonrpc
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz/mcp_engine.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_mcp_engine_start();
    return 0;
}

/* What a client would check of any answer. */
static void check_answer(const char *resp) {
    json_error_t je;
    json_t *j = json_loads(resp, JSON_DECODE_ANY, &je);
    if (!j) {
        fprintf(stderr, "fuzz: the answer is not JSON (%s): %s\n", je.text, resp);
        abort();
    }
    json_t *one = json_is_array(j) ? json_array_get(j, 0) : j;
    if (!json_is_object(one) ||
        strcmp(json_string_value(json_object_get(one, "jsonrpc")) ?: "", "2.0") ||
        (!json_object_get(one, "result") && !json_object_get(one, "error"))) {
        fprintf(stderr, "fuzz: not a JSON-RPC response: %s\n", resp);
        abort();
    }
    json_decref(j);
}

/* A single request (object, id of a valid type, string method) needs an
 * answer unless the input cancels something. */
static bool needs_answer(const uint8_t *data, size_t size) {
    if (size > 64 * 1024 || memmem(data, size, "cancelled", 9))
        return false;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *id = json_object_get(j, "id");
    bool r = json_is_object(j) && (json_is_string(id) || json_is_integer(id)) &&
             json_is_string(json_object_get(j, "method"));
    json_decref(j);
    return r;
}

static void handle(eddy_mcp_session_t *s, const char *msg, size_t len, bool must_answer) {
    eddy_mcp_result_t r;
    eddy__mcp_handle(s, msg, len, &r);
    if (r.response) {
        check_answer(r.response);
        free(r.response);
    } else if (must_answer) {
        fprintf(stderr, "fuzz: a request got no answer: %.*s\n", (int)(len < 2000 ? len : 2000),
                msg);
        abort();
    }
}

static eddy_mcp_session_t *session_at(const char *version) {
    eddy_mcp_session_t *s = eddy__mcp_session_new(srv, NULL, NULL);
    char init[256];
    int n = snprintf(init, sizeof(init),
                     "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
                     "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{"
                     "\"name\":\"fuzz\"}}}",
                     version);
    handle(s, init, (size_t)n, true);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *msg = (const char *)data;
    bool must = needs_answer(data, size);
    eddy_mcp_session_t *s = session_at("2025-11-25");
    handle(s, msg, size, must);
    eddy__mcp_session_close(s);
    s = session_at("2025-03-26");
    handle(s, msg, size, must);
    eddy__mcp_session_close(s);
    /* stdio: one message per line, in order, on one session */
    s = eddy__mcp_session_new(srv, NULL, NULL);
    for (size_t at = 0; at < size;) {
        const char *nl = memchr(msg + at, '\n', size - at);
        size_t len = nl ? (size_t)(nl - (msg + at)) : size - at;
        if (len)
            handle(s, msg + at, len, false);
        at += len + 1;
    }
    eddy__mcp_session_close(s);
    return 0;
}
