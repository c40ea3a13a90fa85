/*
 * MCP Streamable HTTP transport (protocol 2025-06-18 / 2025-11-25), on
 * libmicrohttpd with a thread per connection (keep-alive connections of
 * a client each get a thread, so a blocking SSE stream never stalls
 * another client).
 *
 *   POST   /mcp  one JSON-RPC message; requests are answered with JSON, or
 *                with an SSE stream when the client accepts only
 *                text/event-stream (or --sse prefers it); notifications and
 *                responses get 202. initialize creates the session and
 *                returns its Mcp-Session-Id; later requests must carry it
 *                (400 without, 404 when unknown or ended).
 *   GET    /mcp  the session's SSE stream for server messages
 *                (notifications/resources/updated, notifications/message),
 *                with event ids; Last-Event-ID replays what was missed
 *                (the last 256 events of the session).
 *   DELETE /mcp  ends the session.
 *   GET /metrics Prometheus text; GET /health JSON (503 when the engine
 *                stopped with an error).
 *
 * Checks, in order: Origin (403 unless loopback or allowed: DNS
 * rebinding), size (413 over max_request_bytes), Content-Type (415),
 * MCP-Protocol-Version (400 when unsupported), session, then the
 * JSON-RPC layer.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "mcp.h"
#include "mcp_transport.h"

#define RING 256

typedef struct hsess {
    eddy_mcp_session_t *core;
    char id[64];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *ring[RING]; /* "id: N\ndata: ...\n\n" */
    uint64_t ring_id[RING];
    uint64_t next_id;  /* id of the next event */
    bool closed;
    int refs; /* under srv->lock */
    int64_t last_used_s; /* under srv->lock: monotonic seconds of the last request */
    int streams;         /* under srv->lock: open GET streams */
    struct hsess *next;
} hsess_t;

struct eddy_mcp_http_s {
    eddy_mcp_t *m;
    struct MHD_Daemon *d;
    eddy_mcp_http_opts_t o;
    char **origins;
    int norigins;
    pthread_mutex_t lock;
    hsess_t *sessions;
    atomic_bool stopping;
    int port;
    int64_t last_reap_s; /* under lock */
};

static int64_t mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec;
}

/* ------------------------------------------------------------ sessions */

static void on_notify(void *opaque, const char *json, size_t len) {
    hsess_t *h = opaque;
    pthread_mutex_lock(&h->lock);
    uint64_t id = h->next_id++;
    size_t n = len + 64;
    char *ev = malloc(n);
    snprintf(ev, n, "id: %llu\ndata: %.*s\n\n", (unsigned long long)id, (int)len, json);
    int slot = (int)(id % RING);
    free(h->ring[slot]);
    h->ring[slot] = ev;
    h->ring_id[slot] = id;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static hsess_t *hsess_new(eddy_mcp_http_t *srv) {
    hsess_t *h = calloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->next_id = 1;
    h->core = eddy__mcp_session_new(srv->m, on_notify, h);
    snprintf(h->id, sizeof(h->id), "%s", eddy__mcp_session_id(h->core));
    /* h's own reference to the core, dropped with h's memory: a POST still
     * running on it when a DELETE or the idle reaper closes the session
     * (which drops the core's list reference) keeps using live memory */
    eddy__mcp_session_find(srv->m, h->id);
    pthread_mutex_lock(&srv->lock);
    h->refs = 1;
    h->last_used_s = mono_s();
    h->next = srv->sessions;
    srv->sessions = h;
    pthread_mutex_unlock(&srv->lock);
    return h;
}

static void hsess_release(eddy_mcp_http_t *srv, hsess_t *h) {
    pthread_mutex_lock(&srv->lock);
    bool last = --h->refs == 0;
    pthread_mutex_unlock(&srv->lock);
    if (!last)
        return;
    eddy__mcp_session_release(h->core);
    for (int i = 0; i < RING; i++)
        free(h->ring[i]);
    pthread_mutex_destroy(&h->lock);
    pthread_cond_destroy(&h->cond);
    free(h);
}

static hsess_t *hsess_find(eddy_mcp_http_t *srv, const char *id) {
    hsess_t *r = NULL;
    pthread_mutex_lock(&srv->lock);
    for (hsess_t *h = srv->sessions; id && h; h = h->next)
        if (!strcmp(h->id, id)) {
            h->refs++;
            h->last_used_s = mono_s();
            r = h;
            break;
        }
    pthread_mutex_unlock(&srv->lock);
    return r;
}

/* Unlink and end; the memory goes with the last reference. */
static void hsess_close(eddy_mcp_http_t *srv, hsess_t *h) {
    bool found = false;
    pthread_mutex_lock(&srv->lock);
    for (hsess_t **pp = &srv->sessions; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            found = true;
            break;
        }
    pthread_mutex_unlock(&srv->lock);
    if (!found)
        return;
    eddy__mcp_session_close(h->core); /* no on_notify after this */
    pthread_mutex_lock(&h->lock);
    h->closed = true;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    hsess_release(srv, h);
}

/* End sessions idle longer than session_idle_s with no stream open (a
 * client that vanished without DELETE). At most once a second. */
static void reap_idle(eddy_mcp_http_t *srv) {
    if (srv->o.session_idle_s <= 0)
        return;
    int64_t now = mono_s();
    hsess_t *victim[64];
    int n = 0;
    pthread_mutex_lock(&srv->lock);
    if (now != srv->last_reap_s) {
        srv->last_reap_s = now;
        for (hsess_t *h = srv->sessions; h && n < 64; h = h->next)
            if (!h->streams && now - h->last_used_s > srv->o.session_idle_s) {
                h->refs++;
                victim[n++] = h;
            }
    }
    pthread_mutex_unlock(&srv->lock);
    for (int i = 0; i < n; i++) {
        hsess_close(srv, victim[i]);
        hsess_release(srv, victim[i]);
    }
}

/* ------------------------------------------------------------ requests */

typedef struct {
    char *body;
    size_t len, cap;
    bool too_large;
} req_t;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *body, const char *session_id) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", ctype);
    if (session_id)
        MHD_add_response_header(r, "Mcp-Session-Id", session_id);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_rpc_error(struct MHD_Connection *c, unsigned status, int code,
                                      const char *msg) {
    char *e = eddy__rpc_error_str(NULL, code, "%s", msg);
    enum MHD_Result r = send_text(c, status, "application/json", e, NULL);
    free(e);
    return r;
}

static bool origin_ok(eddy_mcp_http_t *srv, const char *origin) {
    if (!origin)
        return true; /* not a browser */
    for (int i = 0; i < srv->norigins; i++)
        if (!strcmp(srv->origins[i], "*") || !strcasecmp(srv->origins[i], origin))
            return true;
    /* loopback origins on any port */
    static const char *const local[] = {"http://localhost", "https://localhost",
                                        "http://127.0.0.1", "https://127.0.0.1", "http://[::1]",
                                        "https://[::1]", NULL};
    for (int i = 0; local[i]; i++) {
        size_t n = strlen(local[i]);
        if (!strncasecmp(origin, local[i], n) && (origin[n] == 0 || origin[n] == ':'))
            return true;
    }
    return false;
}

static bool accepts(const char *accept, const char *type) {
    return accept && (strstr(accept, type) || strstr(accept, "*/*"));
}

static bool version_ok(const char *v) {
    return !v || !strcmp(v, "2025-11-25") || !strcmp(v, "2025-06-18") ||
           !strcmp(v, "2025-03-26");
}

/* SSE body of a one-response stream */
static enum MHD_Result send_sse_once(struct MHD_Connection *c, const char *json,
                                     const char *session_id) {
    size_t n = strlen(json) + 32;
    char *ev = malloc(n);
    snprintf(ev, n, "event: message\ndata: %s\n\n", json);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(ev), ev,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    if (session_id)
        MHD_add_response_header(r, "Mcp-Session-Id", session_id);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result do_post(eddy_mcp_http_t *srv, struct MHD_Connection *c, req_t *rq) {
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16))
        return send_rpc_error(c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, RPC_INVALID_REQUEST,
                              "Content-Type must be application/json");
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    bool json_ok = !accept || accepts(accept, "application/json");
    bool sse_ok = accepts(accept, "text/event-stream");
    if (!json_ok && !sse_ok)
        return send_rpc_error(c, MHD_HTTP_NOT_ACCEPTABLE, RPC_INVALID_REQUEST,
                              "Accept must include application/json and text/event-stream");
    bool use_sse = sse_ok && (!json_ok || srv->o.prefer_sse);
    json_error_t je;
    json_t *msg = json_loadb(rq->body ? rq->body : "", rq->len, JSON_DECODE_ANY, &je);
    if (!msg) {
        char m[256];
        snprintf(m, sizeof(m), "parse error at column %d: %s", je.column, je.text);
        return send_rpc_error(c, MHD_HTTP_BAD_REQUEST, RPC_PARSE_ERROR, m);
    }
    const char *pv = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version");
    const char *method = json_string_value(json_object_get(msg, "method"));
    bool is_init = method && !strcmp(method, "initialize") && json_object_get(msg, "id");
    hsess_t *h = NULL;
    if (is_init) {
        h = hsess_new(srv);
        h->refs++;
    } else {
        if (!version_ok(pv)) {
            json_decref(msg);
            char m[200];
            snprintf(m, sizeof(m),
                     "unsupported MCP-Protocol-Version '%.40s' (supported: 2025-11-25, "
                     "2025-06-18, 2025-03-26)",
                     pv);
            return send_rpc_error(c, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST, m);
        }
        const char *sid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Session-Id");
        if (!sid) {
            json_decref(msg);
            return send_rpc_error(c, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                                  "Bad Request: Mcp-Session-Id header is required (send "
                                  "initialize first)");
        }
        if (!(h = hsess_find(srv, sid))) {
            json_decref(msg);
            return send_rpc_error(c, MHD_HTTP_NOT_FOUND, RPC_INVALID_REQUEST,
                                  "Session not found: it ended or never existed; initialize a "
                                  "new one");
        }
    }
    eddy_mcp_result_t res;
    eddy__mcp_handle_json(h->core, msg, &res);
    json_decref(msg);
    enum MHD_Result ret;
    if (is_init && !res.initialize) {
        hsess_close(srv, h); /* a failed initialize leaves no session */
        ret = send_text(c, MHD_HTTP_OK, "application/json", res.response ? res.response : "{}",
                        NULL);
    } else if (!res.had_request || !res.response) {
        ret = send_text(c, MHD_HTTP_ACCEPTED, "application/json", "", NULL);
    } else if (use_sse) {
        ret = send_sse_once(c, res.response, is_init ? h->id : NULL);
    } else {
        ret = send_text(c, MHD_HTTP_OK, "application/json", res.response,
                        is_init ? h->id : NULL);
    }
    free(res.response);
    hsess_release(srv, h);
    return ret;
}

/* The session a GET/DELETE names (a reference), or NULL with the 400/404
 * answer queued in *ret. */
static hsess_t *session_of(eddy_mcp_http_t *srv, struct MHD_Connection *c,
                           enum MHD_Result *ret) {
    const char *sid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Session-Id");
    hsess_t *h = sid ? hsess_find(srv, sid) : NULL;
    if (!sid)
        *ret = send_rpc_error(c, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                              "Bad Request: Mcp-Session-Id header is required");
    else if (!h)
        *ret = send_rpc_error(c, MHD_HTTP_NOT_FOUND, RPC_INVALID_REQUEST, "Session not found");
    return h;
}

/* GET /mcp: the session's stream of server messages. */
typedef struct {
    eddy_mcp_http_t *srv;
    hsess_t *h;
    uint64_t next; /* next event id to send */
    char *pending;
    size_t plen, poff;
} stream_t;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_t *s = cls;
    if (s->pending && s->poff < s->plen) {
        size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
        memcpy(buf, s->pending + s->poff, n);
        s->poff += n;
        return (ssize_t)n;
    }
    free(s->pending);
    s->pending = NULL;
    hsess_t *h = s->h;
    pthread_mutex_lock(&h->lock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 15;
    while (!h->closed && !atomic_load(&s->srv->stopping) && s->next >= h->next_id) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        if (t.tv_sec >= until.tv_sec)
            break;
        t.tv_nsec += 200000000;
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&h->cond, &h->lock, &t);
    }
    if (h->closed || atomic_load(&s->srv->stopping)) {
        pthread_mutex_unlock(&h->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (s->next < h->next_id) {
        if (h->next_id - s->next > RING)
            s->next = h->next_id - RING; /* lost the oldest: resume at the ring */
        int slot = (int)(s->next % RING);
        s->pending = strdup(h->ring[slot]);
        s->next++;
    } else {
        s->pending = strdup(": keep-alive\n\n");
    }
    pthread_mutex_unlock(&h->lock);
    s->plen = strlen(s->pending);
    s->poff = 0;
    size_t n = s->plen < max ? s->plen : max;
    memcpy(buf, s->pending, n);
    s->poff = n;
    return (ssize_t)n;
}

static void stream_free(void *cls) {
    stream_t *s = cls;
    pthread_mutex_lock(&s->srv->lock);
    s->h->streams--;
    s->h->last_used_s = mono_s();
    pthread_mutex_unlock(&s->srv->lock);
    free(s->pending);
    hsess_release(s->srv, s->h);
    free(s);
}

static enum MHD_Result do_get(eddy_mcp_http_t *srv, struct MHD_Connection *c) {
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    if (!accepts(accept, "text/event-stream"))
        return send_rpc_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, RPC_INVALID_REQUEST,
                              "GET /mcp opens an SSE stream: Accept must include "
                              "text/event-stream");
    const char *pv = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version");
    if (!version_ok(pv))
        return send_rpc_error(c, MHD_HTTP_BAD_REQUEST, RPC_INVALID_REQUEST,
                              "unsupported MCP-Protocol-Version");
    enum MHD_Result ret;
    hsess_t *h = session_of(srv, c, &ret);
    if (!h)
        return ret;
    stream_t *s = calloc(1, sizeof(*s));
    s->srv = srv;
    s->h = h;
    pthread_mutex_lock(&srv->lock);
    h->streams++;
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_lock(&h->lock);
    s->next = h->next_id;
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    if (last) {
        unsigned long long l = strtoull(last, NULL, 10);
        if (l + 1 < h->next_id)
            s->next = l + 1; /* replay what was missed (what the ring still holds) */
    }
    pthread_mutex_unlock(&h->lock);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result do_delete(eddy_mcp_http_t *srv, struct MHD_Connection *c) {
    enum MHD_Result ret;
    hsess_t *h = session_of(srv, c, &ret);
    if (!h)
        return ret;
    hsess_close(srv, h);
    hsess_release(srv, h);
    return send_text(c, MHD_HTTP_OK, "application/json", "", NULL);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls) {
    (void)version;
    eddy_mcp_http_t *srv = cls;
    bool post = !strcmp(method, "POST");
    if (!*con_cls) {
        req_t *rq = calloc(1, sizeof(*rq));
        *con_cls = rq;
        if (post) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
            if (cl && strtoull(cl, NULL, 10) > srv->o.max_request_bytes)
                rq->too_large = true;
        }
        return MHD_YES;
    }
    req_t *rq = *con_cls;
    if (*upload_size) {
        /* every method's body must be consumed before a response is
         * queued (MHD drops the connection otherwise); only POST keeps it */
        if (post && !rq->too_large) {
            if (rq->len + *upload_size > srv->o.max_request_bytes) {
                rq->too_large = true;
            } else {
                if (rq->len + *upload_size > rq->cap) {
                    rq->cap = (rq->len + *upload_size) * 2;
                    rq->body = realloc(rq->body, rq->cap);
                }
                memcpy(rq->body + rq->len, upload, *upload_size);
                rq->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    reap_idle(srv);
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin_ok(srv, origin))
        return send_rpc_error(c, MHD_HTTP_FORBIDDEN, RPC_INVALID_REQUEST,
                              "Forbidden: Origin not allowed (see --allow-origin)");
    if (!strcmp(url, "/metrics") && !strcmp(method, "GET")) {
        char *t = eddy__mcp_prometheus(srv->m);
        enum MHD_Result r = send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4",
                                      t ? t : "", NULL);
        free(t);
        return r;
    }
    if ((!strcmp(url, "/health") || !strcmp(url, "/healthz")) && !strcmp(method, "GET")) {
        eddy_engine_t *eng = eddy__mcp_engine(srv->m);
        const char *err = eddy_engine_last_error(eng);
        eddy_stats_t st;
        eddy_engine_stats(eng, &st);
        json_t *j = json_pack("{s:s, s:b, s:s}", "status", err[0] ? "failed" : "ok", "running",
                              st.running, "error", err);
        char *t = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        enum MHD_Result r = send_text(c, err[0] ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_OK,
                                      "application/json", t, NULL);
        free(t);
        return r;
    }
    if (strcmp(url, srv->o.path))
        return send_rpc_error(c, MHD_HTTP_NOT_FOUND, RPC_INVALID_REQUEST,
                              "Not found: the MCP endpoint is /mcp");
    if (post) {
        if (rq->too_large) {
            char m[128];
            snprintf(m, sizeof(m), "Payload Too Large: the limit is %zu bytes",
                     srv->o.max_request_bytes);
            return send_rpc_error(c, MHD_HTTP_CONTENT_TOO_LARGE, RPC_INVALID_REQUEST, m);
        }
        return do_post(srv, c, rq);
    }
    if (!strcmp(method, "GET"))
        return do_get(srv, c);
    if (!strcmp(method, "DELETE"))
        return do_delete(srv, c);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Allow", "GET, POST, DELETE");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    req_t *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
        *con_cls = NULL;
    }
}

void eddy__mcp_http_opts_default(eddy_mcp_http_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->max_request_bytes = 1 << 20;
    o->path = "/mcp";
    o->session_idle_s = 1800;
}

eddy_mcp_http_t *eddy__mcp_http_start(eddy_mcp_t *m, const char *addr,
                                      const eddy_mcp_http_opts_t *opts, char *errstr,
                                      size_t errstr_size) {
    /* HOST:PORT or PORT (127.0.0.1) */
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(addr, ':');
    const char *ps = addr;
    if (colon) {
        size_t hl = (size_t)(colon - addr);
        if (hl >= sizeof(host)) {
            snprintf(errstr, errstr_size, "--http %s: host too long", addr);
            return NULL;
        }
        memcpy(host, addr, hl);
        host[hl] = 0;
        ps = colon + 1;
    }
    char *end;
    long port = strtol(ps, &end, 10);
    if (!*ps || *end || port < 0 || port > 65535) {
        snprintf(errstr, errstr_size, "--http %s: expected HOST:PORT, e.g. 127.0.0.1:8080",
                 addr);
        return NULL;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(errstr, errstr_size, "--http %s: '%s' is not an IPv4 address", addr, host);
        return NULL;
    }
    eddy_mcp_http_t *srv = calloc(1, sizeof(*srv));
    srv->m = m;
    if (opts)
        srv->o = *opts;
    else
        eddy__mcp_http_opts_default(&srv->o);
    if (!srv->o.path)
        srv->o.path = "/mcp";
    if (!srv->o.max_request_bytes)
        srv->o.max_request_bytes = eddy__mcp_opts(m)->max_request_bytes;
    for (int i = 0; i < srv->o.norigins; i++) {
        srv->origins = realloc(srv->origins, sizeof(char *) * (size_t)(srv->norigins + 1));
        srv->origins[srv->norigins++] = strdup(srv->o.origins[i]);
    }
    pthread_mutex_init(&srv->lock, NULL);
    srv->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, handler, srv, MHD_OPTION_SOCK_ADDR, &sa,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)256, MHD_OPTION_END);
    if (!srv->d) {
        snprintf(errstr, errstr_size, "--http %s: cannot listen (address in use?)", addr);
        eddy__mcp_http_stop(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->d, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : (int)port;
    return srv;
}

int eddy__mcp_http_port(const eddy_mcp_http_t *h) { return h->port; }

void eddy__mcp_http_stop(eddy_mcp_http_t *srv) {
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    /* wake the SSE streams so their threads end */
    pthread_mutex_lock(&srv->lock);
    for (hsess_t *h = srv->sessions; h; h = h->next) {
        pthread_mutex_lock(&h->lock);
        pthread_cond_broadcast(&h->cond);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&srv->lock);
    if (srv->d)
        MHD_stop_daemon(srv->d);
    while (srv->sessions)
        hsess_close(srv, srv->sessions);
    for (int i = 0; i < srv->norigins; i++)
        free(srv->origins[i]);
    free(srv->origins);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
