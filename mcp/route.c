/*
 * Routed queries (docs/scaleout.md): a get_value, get_windows or
 * get_matches for a key whose task runs on another instance of the
 * application is forwarded to that instance's MCP endpoint over HTTP
 * (libcurl), or answered with the owner's endpoint when forwarding is off
 * (scan_store and top_keys ask every instance: mcp/fanout.c). Who owns which task comes from the
 * <application>-instances topic (connectors/instances.c).
 */
#include <curl/curl.h>
#include <pthread.h>
#include <string.h>

#include "connectors/instances.h"
#include "mcp_int.h"
#include "state/tstate.h"

typedef struct {
    char *p;
    size_t n;
    char sid[128];
} rbuf_t;

static size_t body_cb(char *d, size_t sz, size_t nm, void *op) {
    rbuf_t *b = op;
    size_t k = sz * nm;
    if (b->n + k > (64u << 20))
        return 0; /* an answer is bounded: refuse a runaway one */
    char *np = realloc(b->p, b->n + k + 1);
    if (!np)
        return 0;
    b->p = np;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = 0;
    return k;
}

static size_t head_cb(char *d, size_t sz, size_t nm, void *op) {
    rbuf_t *b = op;
    size_t k = sz * nm;
    if (k > 15 && !strncasecmp(d, "mcp-session-id:", 15)) {
        const char *v = d + 15;
        while (*v == ' ')
            v++;
        size_t l = 0;
        while (v + l < d + k && v[l] != '\r' && v[l] != '\n' && l < sizeof(b->sid) - 1)
            l++;
        memcpy(b->sid, v, l);
        b->sid[l] = 0;
    }
    return k;
}

/* libcurl's global set-up, once, before the fan-out's threads use it
 * (curl_easy_init would do it unsynchronised) */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_setup(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

json_t *eddy__mcp_http_post(const char *url, const char *sid, const char *body, long timeout_ms,
                            char *sid_out, char *err, size_t errsz) {
    pthread_once(&curl_once, curl_setup);
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(err, errsz, "no HTTP client");
        return NULL;
    }
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Accept: application/json, text/event-stream");
    h = curl_slist_append(h, "MCP-Protocol-Version: 2025-11-25");
    char sh[200];
    if (sid && *sid) {
        snprintf(sh, sizeof(sh), "Mcp-Session-Id: %s", sid);
        h = curl_slist_append(h, sh);
    }
    rbuf_t b = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, head_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &b);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode r = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    json_t *j = NULL;
    if (r != CURLE_OK)
        snprintf(err, errsz, "%s", curl_easy_strerror(r));
    else if (code != 200)
        snprintf(err, errsz, "HTTP status %ld", code);
    else if (!(j = b.p ? json_loads(b.p, 0, NULL) : NULL))
        snprintf(err, errsz, "the answer is not JSON");
    if (sid_out)
        snprintf(sid_out, 128, "%s", b.sid);
    free(b.p);
    return j;
}

json_t *eddy__mcp_call_owner(const char *url, const char *tool, json_t *args, char *err,
                          size_t errsz) {
    char sid[128] = "";
    json_t *init = eddy__mcp_http_post(url, NULL,
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                        "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"clientInfo\":"
                        "{\"name\":\"eddy-route\",\"version\":\"1\"}}}",
                        10000, sid, err, errsz);
    if (!init)
        return NULL;
    json_decref(init);
    json_t *a = json_deep_copy(args);
    json_object_set_new(a, "forwarded", json_true()); /* the owner never forwards again */
    json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0", "id", 2, "method",
                            "tools/call", "params", "name", tool, "arguments", a);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *r = eddy__mcp_http_post(url, sid, body, 10000, NULL, err, errsz);
    free(body);
    json_t *res = r ? json_incref(json_object_get(r, "result")) : NULL;
    if (r && !res)
        snprintf(err, errsz, "the owner answered with an error: %.300s",
                 json_string_value(json_object_get(json_object_get(r, "error"), "message"))
                     ?: "?");
    json_decref(r);
    if (sid[0]) { /* end the session */
        CURL *c = curl_easy_init();
        if (c) {
            struct curl_slist *h = NULL;
            char sh[200];
            snprintf(sh, sizeof(sh), "Mcp-Session-Id: %s", sid);
            h = curl_slist_append(h, sh);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
            curl_easy_perform(c);
            curl_slist_free_all(h);
            curl_easy_cleanup(c);
        }
    }
    return res;
}

/* A "restoring" answer: how far the restore of task has come (per
 * changelog topic partition: the next offset to apply and the end offset
 * it heads for) and a note saying so. */
static void restore_progress(eddy_mcp_t *m, int task, json_t *out) {
    eddy_restore_progress_t p[16];
    int n = eddy__engine_restore_progress(eddy__mcp_engine(m), task, p, 16);
    json_t *cl = json_array();
    json_int_t togo = 0;
    bool known = n > 0;
    for (int i = 0; i < n; i++) {
        json_array_append_new(cl, json_pack("{s:s, s:i, s:I, s:I}", "topic", p[i].topic,
                                            "partition", p[i].partition, "offset",
                                            (json_int_t)p[i].offset, "end_offset",
                                            (json_int_t)p[i].end_offset));
        if (p[i].offset < 0 || p[i].end_offset < 0)
            known = false;
        else if (p[i].end_offset > p[i].offset)
            togo += p[i].end_offset - p[i].offset;
    }
    json_object_set_new(out, "restore",
                        json_pack("{s:o, s:o}", "changelog", cl, "records_to_go",
                                  known ? json_integer(togo) : json_null()));
    char where[600] = "it has not started reading the changelog yet";
    if (n > 0 && known)
        snprintf(where, sizeof(where),
                 "changelog topic %s partition %d is at offset %lld of %lld%s (%lld records to "
                 "go in all)",
                 p[0].topic, p[0].partition, (long long)p[0].offset, (long long)p[0].end_offset,
                 n > 1 ? ", more topics in restore.changelog" : "", (long long)togo);
    else if (n > 0)
        snprintf(where, sizeof(where),
                 "it is finding the last commit in changelog topic %s partition %d (up to "
                 "offset %lld)",
                 p[0].topic, p[0].partition, (long long)p[0].end_offset);
    json_object_set_new(out, "note",
                        json_sprintf("task %d (this key's) was just assigned to this instance "
                                     "and its state is being restored from the changelog: %s; "
                                     "its keys answer once that is done: retry in a few seconds",
                                     task, where));
}

json_t *eddy__mcp_route(eddy_mcp_t *m, const char *tool, json_t *args, int task,
                        json_t *not_here, char *err, size_t errsz) {
    eddy_instances_t *in = eddy__mcp_cluster(m);
    char id[40], ep[256];
    if (eddy__engine_task_opening(eddy__mcp_engine(m), task)) {
        json_object_set_new(not_here, "task", json_integer(task));
        json_object_set_new(not_here, "status", json_string("restoring"));
        restore_progress(m, task, not_here);
        return json_pack("{s:o}", "structuredContent", not_here);
    }
    if (!in || !eddy__instances_owner(in, task, id, sizeof(id), ep, sizeof(ep))) {
        /* nobody says it runs the task: the group is moving it */
        json_object_set_new(not_here, "task", json_integer(task));
        json_object_set_new(not_here, "status", json_string("unassigned"));
        json_object_set_new(not_here, "note",
                            json_sprintf("task %d (this key's) is not open on this instance "
                                         "and no instance says it runs it: the consumer group "
                                         "is moving it; retry in a few seconds",
                                         task));
        return json_pack("{s:o}", "structuredContent", not_here);
    }
    bool forward = eddy__mcp_forwarding(m) && ep[0] &&
                   !json_is_true(json_object_get(args, "forwarded"));
    if (!forward) {
        json_object_set_new(not_here, "task", json_integer(task));
        json_object_set_new(not_here, "status", json_string("elsewhere"));
        json_object_set_new(not_here, "owner",
                            json_pack("{s:s, s:s}", "instance", id, "endpoint", ep));
        json_object_set_new(not_here, "note",
                            json_sprintf("this key lives on task %d, run by instance %s: ask "
                                         "its MCP endpoint %s",
                                         task, id, ep[0] ? ep : "(none advertised)"));
        return json_pack("{s:o}", "structuredContent", not_here);
    }
    json_decref(not_here);
    char why[512];
    json_t *res = eddy__mcp_call_owner(ep, tool, args, why, sizeof(why));
    if (!res) {
        snprintf(err, errsz,
                 "this key lives on task %d, run by instance %s at %s, which did not answer "
                 "(%s): if it stopped, the consumer group moves the task after its session "
                 "timeout; retry in a few seconds",
                 task, id, ep, why);
        return NULL;
    }
    json_t *sc = json_object_get(res, "structuredContent");
    if (json_is_object(sc))
        json_object_set_new(sc, "answered_by",
                            json_pack("{s:s, s:s}", "instance", id, "endpoint", ep));
    return res;
}
