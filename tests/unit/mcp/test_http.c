/*
 * The Streamable HTTP transport's error paths that quote what the client
 * sent, over a real socket: a header value that is not UTF-8 (or is cut
 * inside a character by the quoting) must still get its JSON-RPC error,
 * not take the server down.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "mcp/mcp_transport.h"
#include "mcp_fixture.h"

/* One request on a new connection; the whole answer (malloc'd). */
static char *http(int port, const char *req) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t len = strlen(req);
    assert_int_equal(write(fd, req, len), (ssize_t)len);
    shutdown(fd, SHUT_WR);
    size_t cap = 65536, n = 0;
    char *out = malloc(cap);
    ssize_t r;
    while ((r = read(fd, out + n, cap - n - 1)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fd);
    return out;
}

static char *post_with_version(int port, const char *version) {
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
    char req[2048];
    snprintf(req, sizeof(req),
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
             "MCP-Protocol-Version: %s\r\nMcp-Session-Id: none\r\nContent-Length: %zu\r\n\r\n%s",
             version, strlen(body), body);
    return http(port, req);
}

static void a_bad_protocol_version_header_is_quoted_safely(void **state) {
    fx_t *f = *state;
    eddy_mcp_http_opts_t o;
    eddy__mcp_http_opts_default(&o);
    char err[256];
    eddy_mcp_http_t *h = eddy__mcp_http_start(f->m, "127.0.0.1:0", &o, err, sizeof(err));
    if (!h)
        fail_msg("%s", err);
    int port = eddy__mcp_http_port(h);
    /* not UTF-8 at all; 20 euro signs cut at 40 bytes by the quoting */
    const char *versions[] = {"\xff\xfe", "1999-01-01", "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
                                                       "\xe2\x82\xac\xe2\x82\xac"};
    for (int i = 0; i < 3; i++) {
        char *resp = post_with_version(port, versions[i]);
        if (strncmp(resp, "HTTP/1.1 400", 12))
            fail_msg("version %d: %.200s", i, resp);
        char *body = strstr(resp, "\r\n\r\n");
        assert_non_null(body);
        json_t *j = json_loads(body + 4, 0, NULL);
        if (!j)
            fail_msg("version %d: body is not JSON: %.200s", i, body + 4);
        expect_error(j, RPC_INVALID_REQUEST, "null");
        free(resp);
    }
    /* and the server still serves */
    char *resp = http(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(strncmp(resp, "HTTP/1.1 200", 12), 0);
    free(resp);
    eddy__mcp_http_stop(h);
}

/* POST body to /mcp with an optional session id; the whole answer. */
static char *post(int port, const char *sid, const char *body) {
    char req[4096];
    snprintf(req, sizeof(req),
             "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
             "%s%s%sContent-Length: %zu\r\n\r\n%s",
             sid ? "Mcp-Session-Id: " : "", sid ? sid : "", sid ? "\r\n" : "", strlen(body),
             body);
    return http(port, req);
}

static void an_idle_session_without_a_stream_ends_after_the_idle_timeout(void **state) {
    fx_t *f = *state;
    eddy_mcp_http_opts_t o;
    eddy__mcp_http_opts_default(&o);
    o.session_idle_s = 1;
    char err[256];
    eddy_mcp_http_t *h = eddy__mcp_http_start(f->m, "127.0.0.1:0", &o, err, sizeof(err));
    if (!h)
        fail_msg("%s", err);
    int port = eddy__mcp_http_port(h);
    char *resp = post(port, NULL,
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                      "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
                      "\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}");
    const char *p = strstr(resp, "Mcp-Session-Id: ");
    if (!p)
        p = strstr(resp, "mcp-session-id: ");
    assert_non_null(p);
    char sid[64] = "";
    sscanf(p + 16, "%63[0-9a-f]", sid);
    free(resp);
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}";
    resp = post(port, sid, ping); /* in use: alive */
    assert_int_equal(strncmp(resp, "HTTP/1.1 200", 12), 0);
    free(resp);
    sleep(3); /* idle past 1 s; the next request (any) reaps it */
    resp = http(port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    free(resp);
    resp = post(port, sid, ping);
    if (strncmp(resp, "HTTP/1.1 404", 12))
        fail_msg("the idle session still answers: %.200s", resp);
    free(resp);
    eddy__mcp_http_stop(h);
}

static void error_strings_with_invalid_utf8_are_still_built(void **state) {
    (void)state;
    /* what every transport sends when it has only a message to quote */
    char *e = eddy__rpc_error_str(NULL, RPC_INVALID_REQUEST, "bad '%s'", "\xff\xc3");
    assert_non_null(e);
    json_t *j = json_loads(e, 0, NULL);
    assert_non_null(j);
    expect_error(j, RPC_INVALID_REQUEST, "null");
    free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_bad_protocol_version_header_is_quoted_safely),
        cmocka_unit_test(error_strings_with_invalid_utf8_are_still_built),
        cmocka_unit_test(an_idle_session_without_a_stream_ends_after_the_idle_timeout),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
