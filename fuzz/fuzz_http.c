/*
 * libFuzzer target: the MCP Streamable HTTP transport (mcp/http.c) as a
 * client reaches it: raw bytes on a TCP connection to the server, so
 * libmicrohttpd's request parsing (request line, headers, chunked and
 * Content-Length bodies, pipelining) and our handler (Origin, size limit
 * and 413, Content-Type, Accept, MCP-Protocol-Version, sessions, SSE,
 * /metrics, /health, the JSON-RPC layer) all see the input.
 *
 * The server (max_request_bytes 4096, so 413 is reachable) runs over the
 * engine of fuzz/mcp_engine.h. For each input a session is initialized
 * over HTTP first and every "@SID@" in the input is replaced by its
 * Mcp-Session-Id, so requests get past the session check; the input is
 * then sent on one connection, the write side shut, and the answer read
 * until the server closes or is silent for IDLE_MS (an SSE stream stays
 * open; the control requests wait up to CONTROL_MS). Afterwards the session is deleted and GET /health must answer
 * 200 on a new connection: a server that crashed, deadlocked or stopped
 * accepting fails the input.
 * Checks besides the sanitizers: any answer starts with "HTTP/1.".
 *
 * Build and run: see fuzz_mcp_jsonrpc.c (target fuzz_http, dict
 * fuzz/http.dict, corpus fuzz/corpus/http).
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "fuzz/mcp_engine.h"
#include "mcp/mcp_transport.h"

#define IDLE_MS 50        /* the fuzz input's answer */
#define CONTROL_MS 10000  /* initialize, delete, health: the server closes these */
#define MAX_ANSWER (1 << 20)

static eddy_mcp_http_t *http;
static int port;
static long last_ms; /* how long the last exchange took */

static void stop_http(void) { eddy__mcp_http_stop(http); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    /* libFuzzer parses its flags after this: add -detect_leaks=0. Its leak
     * check after each input sees the glibc thread-exit bookkeeping
     * (__cxa_thread_atexit_impl) of connection threads still ending as a
     * leak; LeakSanitizer's check at exit still runs (ASAN_OPTIONS). */
    static char *args[64];
    static char no_leaks[] = "-detect_leaks=0";
    int n = *argc < 62 ? *argc : 62;
    for (int i = 0; i < n; i++)
        args[i] = (*argv)[i];
    args[n++] = no_leaks;
    args[n] = NULL;
    *argc = n;
    *argv = args;
    fuzz_mcp_engine_start();
    eddy_mcp_http_opts_t o;
    eddy__mcp_http_opts_default(&o);
    o.max_request_bytes = 4096;
    char err[256];
    if (!(http = eddy__mcp_http_start(srv, "127.0.0.1:0", &o, err, sizeof(err)))) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    port = eddy__mcp_http_port(http);
    atexit(stop_http); /* runs before cleanup (registered earlier) */
    return 0;
}

/* Send req on a new connection, shut the write side, read the answer into
 * ans (NUL-terminated, at most cap-1 bytes kept) until the server closes
 * or is silent for idle_ms. Returns its length. */
static size_t exchange(const char *req, size_t len, char *ans, size_t cap, int idle_ms) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* libFuzzer's timer signal interrupts calls (EINTR): carry on */
    int rc;
    while (fd >= 0 && (rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa))) != 0 &&
           (errno == EINTR || errno == EALREADY))
        usleep(1000);
    if (fd < 0 || (rc != 0 && errno != EISCONN)) {
        perror("fuzz_http: connect");
        abort();
    }
    size_t off = 0, got = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may answer (413) and close before reading all */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, idle_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        char tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t keep = got + (size_t)r < cap - 1 ? (size_t)r : cap - 1 - got;
        memcpy(ans + got, tmp, keep);
        got += keep;
    }
    ans[got] = 0;
    close(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    last_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    return got;
}

static char answer[MAX_ANSWER];

/* Threads and descriptors of the process, and the last exchange's time,
 * for a server that stopped answering. */
static void diagnose(void) {
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "grep Threads /proc/%d/status; ls /proc/%d/fd | wc -l",
             (int)getpid(), (int)getpid());
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_http: (no thread count)\n");
    fprintf(stderr, "fuzz_http: the last exchange took %ld ms\n", last_ms);
}

/* A control exchange: a connection that ends without an answer is tried
 * again (3 times, 100 ms apart; before EINTR was handled above, libFuzzer's
 * timer signal cut answers short this way); a server that crashed, hung or
 * stopped accepting still fails. */
static size_t control(const char *req, size_t len) {
    size_t got = 0;
    for (int i = 0; i < 3 && !got; i++) {
        if (i) {
            fprintf(stderr, "fuzz_http: closed without an answer; trying again\n");
            usleep(100000);
        }
        got = exchange(req, len, answer, sizeof(answer), CONTROL_MS);
    }
    return got;
}

static void new_session(char *sid, size_t cap) {
    static const char body[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
        "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{"
        "\"name\":\"fuzz\"}}}";
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof(body) - 1, body);
    control(req, (size_t)n);
    const char *h = strcasestr(answer, "\r\nMcp-Session-Id: ");
    size_t len = h ? strcspn(h + 18, "\r\n") : 0;
    if (!h || len == 0 || len >= cap) {
        diagnose();
        fprintf(stderr, "fuzz_http: initialize gave no session: %.500s\n", answer);
        abort();
    }
    memcpy(sid, h + 18, len);
    sid[len] = 0;
}

static void end_session_and_check_health(const char *sid) {
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "DELETE /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nMcp-Session-Id: %s\r\n"
                     "Connection: close\r\n\r\n",
                     sid);
    control(req, (size_t)n);
    static const char health[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 "Connection: close\r\n\r\n";
    control(health, sizeof(health) - 1);
    if (strncmp(answer, "HTTP/1.1 200", 12)) {
        diagnose();
        fprintf(stderr, "fuzz_http: the server no longer answers /health: %.500s\n", answer);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024)
        return 0;
    char sid[128];
    new_session(sid, sizeof(sid));
    /* the input with @SID@ replaced by the session id */
    size_t sl = strlen(sid), cap = size + 1, n = 0;
    for (size_t i = 0; i + 5 <= size; i++)
        if (!memcmp(data + i, "@SID@", 5))
            cap += sl;
    char *req = malloc(cap);
    for (size_t i = 0; i < size;) {
        if (i + 5 <= size && !memcmp(data + i, "@SID@", 5)) {
            memcpy(req + n, sid, sl);
            n += sl;
            i += 5;
        } else {
            req[n++] = (char)data[i++];
        }
    }
    size_t got = exchange(req, n, answer, sizeof(answer), IDLE_MS);
    free(req);
    if (got && strncmp(answer, "HTTP/1.", got < 7 ? got : 7)) {
        fprintf(stderr, "fuzz_http: an answer that is not HTTP: %.500s\n", answer);
        abort();
    }
    end_session_and_check_health(sid);
    return 0;
}
