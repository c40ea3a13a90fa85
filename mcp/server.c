/*
 * MCP protocol layer: JSON-RPC 2.0 framing and validation, the session
 * life cycle (initialize and version negotiation), list pagination,
 * logging/setLevel, cancellation, resource subscriptions, and the watcher
 * thread that turns commits into notifications/resources/updated.
 *
 * Subscriptions are checked, not pushed by the stream threads: after each
 * commit (the only moment queryable state changes), the watcher re-reads
 * every subscribed resource and notifies the sessions whose content hash
 * changed, at most once per notify interval per resource (changes in
 * between coalesce). The stream threads never wait for a client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp.h"
#include "mcp_int.h"

static const char *const versions[] = {"2025-11-25", "2025-06-18", "2025-03-26", NULL};
static const char *const levels[] = {"debug",    "info",  "notice", "warning", "error",
                                     "critical", "alert", "emergency", NULL};
/* what dispatch() serves; other names are counted as "(unknown)" so a
 * client cannot fill the call table or /metrics with names of its own */
static const char *const methods[] = {"initialize", "ping", "tools/list", "tools/call",
                                      "resources/list", "resources/templates/list",
                                      "resources/read", "resources/subscribe",
                                      "resources/unsubscribe", "prompts/list", "prompts/get",
                                      "logging/setLevel", NULL};
#define LIST_PAGE 50
#define MAX_SUBS 256
#define MAX_CANCELLED 64
#define NCALL_BUCKETS 24 /* latency histogram: 2^k microseconds */

typedef struct {
    char *uri;
    uint64_t hash;     /* content last notified (or first read) */
    bool have_hash;
    int64_t last_notify_ms;
} sub_t;

struct eddy_mcp_session_s {
    eddy_mcp_t *m;
    char id[40];
    char version[16];
    _Atomic bool initialized;
    atomic_int log_level; /* index into levels */
    eddy_mcp_notify_cb notify;
    void *opaque;
    pthread_mutex_t lock; /* subs, cancelled, notify */
    sub_t subs[MAX_SUBS];
    int nsubs;
    json_t *cancelled[MAX_CANCELLED];
    int ncancelled;
    bool closed;
    int refs; /* under m->lock */
    eddy_mcp_session_t *next;
};

typedef struct {
    const char *method;
    uint64_t calls, errors;
    uint64_t buckets[NCALL_BUCKETS];
    double sum_s;
} callstat_t;

struct eddy_mcp_s {
    eddy_engine_t *eng;
    eddy_mcp_opts_t opts;
    pthread_mutex_t lock; /* sessions, call stats */
    eddy_mcp_session_t *sessions;
    pthread_t watcher;
    _Atomic bool stop;
    bool watcher_started;
    /* rates, by the watcher */
    _Atomic double eps;
    /* served calls */
    callstat_t calls[32];
    int ncalls;
    /* scale-out (mcp/route.c): who runs which task, and whether to forward */
    _Atomic(struct eddy_instances_s *) cluster; /* set while transports serve */
    atomic_bool forward;
};

void eddy__mcp_set_cluster(eddy_mcp_t *m, struct eddy_instances_s *cluster, bool forward) {
    atomic_store(&m->forward, forward);
    atomic_store(&m->cluster, cluster);
}
struct eddy_instances_s *eddy__mcp_cluster(eddy_mcp_t *m) { return atomic_load(&m->cluster); }
bool eddy__mcp_forwarding(eddy_mcp_t *m) { return atomic_load(&m->forward); }

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void eddy__mcp_opts_default(eddy_mcp_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->max_request_bytes = 1 << 20;
    o->default_limit = 20;
    o->max_limit = 500;
    o->notify_min_interval_ms = 0;
}

eddy_engine_t *eddy__mcp_engine(eddy_mcp_t *m) { return m->eng; }
const eddy_mcp_opts_t *eddy__mcp_opts(eddy_mcp_t *m) { return &m->opts; }
double eddy__mcp_events_per_second(eddy_mcp_t *m) { return atomic_load(&m->eps); }

/* ------------------------------------------------------------ JSON-RPC */

json_t *eddy__rpc_error(json_t *id, int code, const char *message, json_t *data) {
    /* Messages echo client strings into bounded buffers, which may cut a
     * character in two; jansson refuses invalid UTF-8 (json_pack would fail
     * and the client would get no answer at all), so repair it. */
    json_t *err = json_pack("{s:i, s:o}", "code", code, "message",
                            eddy__mcp_utf8(message, strlen(message)));
    if (data)
        json_object_set_new(err, "data", data);
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                     err);
}

char *eddy__rpc_error_str(json_t *id, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *e = eddy__rpc_error(id, code, msg, NULL);
    char *s = json_dumps(e, JSON_COMPACT);
    json_decref(e);
    return s;
}

static json_t *rpc_result(json_t *id, json_t *result) {
    return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

static json_t *errorf(json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *errorf(json_t *id, int code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return eddy__rpc_error(id, code, msg, NULL);
}

/* ------------------------------------------------------------ sessions */

static void random_id(char *out, size_t n) {
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");
    size_t got = f ? fread(b, 1, sizeof(b), f) : 0;
    if (f)
        fclose(f);
    if (got != sizeof(b)) {
        uint64_t x = (uint64_t)mono_ns() ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(b); i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

eddy_mcp_session_t *eddy__mcp_session_new(eddy_mcp_t *m, eddy_mcp_notify_cb notify,
                                          void *opaque) {
    eddy_mcp_session_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->m = m;
    random_id(s->id, sizeof(s->id));
    s->notify = notify;
    s->opaque = opaque;
    atomic_init(&s->log_level, 3); /* warning */
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_lock(&m->lock);
    s->refs = 1;
    s->next = m->sessions;
    m->sessions = s;
    pthread_mutex_unlock(&m->lock);
    return s;
}

static void session_free(eddy_mcp_session_t *s) {
    for (int i = 0; i < s->nsubs; i++)
        free(s->subs[i].uri);
    for (int i = 0; i < s->ncancelled; i++)
        json_decref(s->cancelled[i]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void eddy__mcp_session_release(eddy_mcp_session_t *s) {
    eddy_mcp_t *m = s->m;
    pthread_mutex_lock(&m->lock);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&m->lock);
    if (last)
        session_free(s);
}

void eddy__mcp_session_close(eddy_mcp_session_t *s) {
    eddy_mcp_t *m = s->m;
    pthread_mutex_lock(&m->lock);
    for (eddy_mcp_session_t **pp = &m->sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_lock(&s->lock);
    s->closed = true; /* no notify after this */
    pthread_mutex_unlock(&s->lock);
    eddy__mcp_session_release(s);
}

eddy_mcp_session_t *eddy__mcp_session_find(eddy_mcp_t *m, const char *id) {
    eddy_mcp_session_t *r = NULL;
    pthread_mutex_lock(&m->lock);
    for (eddy_mcp_session_t *s = m->sessions; id && s; s = s->next)
        if (!strcmp(s->id, id)) {
            s->refs++;
            r = s;
            break;
        }
    pthread_mutex_unlock(&m->lock);
    return r;
}

const char *eddy__mcp_session_id(const eddy_mcp_session_t *s) { return s->id; }
const char *eddy__mcp_session_version(const eddy_mcp_session_t *s) { return s->version; }
bool eddy__mcp_session_initialized(const eddy_mcp_session_t *s) {
    return atomic_load(&s->initialized);
}

static void session_send(eddy_mcp_session_t *s, json_t *msg) {
    char *txt = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (!txt)
        return;
    pthread_mutex_lock(&s->lock);
    if (!s->closed && s->notify)
        s->notify(s->opaque, txt, strlen(txt));
    pthread_mutex_unlock(&s->lock);
    free(txt);
}

static void session_log(eddy_mcp_session_t *s, int level, const char *logger, json_t *data) {
    if (!atomic_load(&s->initialized) || level < atomic_load(&s->log_level)) {
        json_decref(data);
        return;
    }
    session_send(s, json_pack("{s:s, s:s, s:{s:s, s:s, s:o}}", "jsonrpc", "2.0", "method",
                              "notifications/message", "params", "level", levels[level],
                              "logger", logger, "data", data));
}

/* Cancellation: ids the client gave up on; their responses are dropped. */
static void mark_cancelled(eddy_mcp_session_t *s, json_t *id) {
    if (!id || !(json_is_string(id) || json_is_integer(id)))
        return;
    pthread_mutex_lock(&s->lock);
    if (s->ncancelled == MAX_CANCELLED) {
        json_decref(s->cancelled[0]);
        memmove(s->cancelled, s->cancelled + 1, sizeof(s->cancelled[0]) * (MAX_CANCELLED - 1));
        s->ncancelled--;
    }
    s->cancelled[s->ncancelled++] = json_incref(id);
    pthread_mutex_unlock(&s->lock);
}

static bool take_cancelled(eddy_mcp_session_t *s, json_t *id) {
    bool r = false;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->ncancelled; i++)
        if (json_equal(s->cancelled[i], id)) {
            json_decref(s->cancelled[i]);
            s->cancelled[i] = s->cancelled[--s->ncancelled];
            r = true;
            break;
        }
    pthread_mutex_unlock(&s->lock);
    return r;
}

/* ---------------------------------------------------------- call stats */

void eddy__mcp_count_call(eddy_mcp_t *m, const char *method, int64_t ns, bool error) {
    pthread_mutex_lock(&m->lock);
    callstat_t *c = NULL;
    for (int i = 0; i < m->ncalls; i++)
        if (!strcmp(m->calls[i].method, method))
            c = &m->calls[i];
    if (!c && m->ncalls < (int)(sizeof(m->calls) / sizeof(m->calls[0]))) {
        c = &m->calls[m->ncalls++];
        c->method = strdup(method);
    }
    if (c) {
        c->calls++;
        c->errors += error;
        c->sum_s += (double)ns / 1e9;
        int64_t us = ns / 1000;
        int b = 0;
        while (b < NCALL_BUCKETS - 1 && us >= (1LL << b))
            b++;
        c->buckets[b]++;
    }
    pthread_mutex_unlock(&m->lock);
}

/* A label value: backslash, double quote and newline escaped, as the text
 * exposition format requires (names come from topologies and clients). */
static const char *prom_label(const char *v, char *out, size_t n) {
    size_t k = 0;
    for (; *v && k + 3 < n; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[k++] = '\\';
            out[k++] = *v == '\n' ? 'n' : *v;
        } else {
            out[k++] = *v;
        }
    }
    out[k] = 0;
    return out;
}

static void prom_line(FILE *b, const char *name, const char *help, const char *type,
                      double v) {
    fprintf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

char *eddy__mcp_prometheus(eddy_mcp_t *m) {
    char *out = NULL;
    size_t outlen = 0;
    FILE *b = open_memstream(&out, &outlen);
    if (!b)
        return NULL;
    eddy_stats_t st;
    eddy_engine_stats(m->eng, &st);
    prom_line(b, "eddy_events_in_total", "Records read from sources.", "counter",
              (double)st.events_in);
    prom_line(b, "eddy_events_out_total", "Records delivered to sinks.", "counter",
              (double)st.events_out);
    prom_line(b, "eddy_events_per_second", "Input rate over the last second.", "gauge",
              eddy__mcp_events_per_second(m));
    prom_line(b, "eddy_dead_lettered_total", "Undecodable or failing records.", "counter",
              (double)st.dead_lettered);
    prom_line(b, "eddy_late_total", "Records later than the watermark allows.", "counter",
              (double)st.late);
    prom_line(b, "eddy_commits_total", "Commit rounds completed.", "counter",
              (double)st.commits);
    if (st.watermark_ms != INT64_MIN)
        prom_line(b, "eddy_watermark_ms", "Minimum task watermark (event time, ms).", "gauge",
                  (double)st.watermark_ms);
    prom_line(b, "eddy_state_memory_bytes", "RocksDB cache and memtables.", "gauge",
              (double)st.state_memory_bytes);
    eddy_memory_stats_t ms;
    eddy_engine_memory_stats(m->eng, &ms);
    prom_line(b, "eddy_heap_bytes", "Bytes malloc has handed out, whole process.", "gauge",
              (double)ms.heap_bytes);
    if (ms.budget_bytes)
        prom_line(b, "eddy_memory_budget_bytes", "memory.max.bytes.", "gauge",
                  (double)ms.budget_bytes);
    prom_line(b, "eddy_exchange_bytes", "key_by messages queued between tasks.", "gauge",
              (double)ms.exchange_bytes);
    prom_line(b, "eddy_memory_throttled", "1 while input is slowed for memory.", "gauge",
              (double)ms.throttled);
    prom_line(b, "eddy_memory_throttled_seconds_total", "Time input was slowed for memory.",
              "counter", (double)ms.throttled_ms / 1000.0);
    fprintf(b, "%s", "# HELP eddy_latency_seconds End-to-end latency quantiles (source read "
                      "to sink write).\n# TYPE eddy_latency_seconds summary\n");
    static const double q[] = {50, 90, 99, 99.9};
    for (int i = 0; i < 4; i++) {
        int64_t ns = eddy_engine_latency_ns(m->eng, q[i]);
        if (ns >= 0) {
            fprintf(b, "eddy_latency_seconds{quantile=\"%g\"} %.9f\n",
                         q[i] / 100, (double)ns / 1e9);
                    }
    }
    char lb[600];
    eddy_store_stats_t ss[64];
    int ns = eddy_engine_store_stats(m->eng, ss, 64);
    fprintf(b, "%s", "# HELP eddy_store_keys Estimated live keys per store.\n"
                      "# TYPE eddy_store_keys gauge\n");
    for (int i = 0; i < ns && i < 64; i++) {
        fprintf(b, "eddy_store_keys{store=\"%s\"} %llu\n", prom_label(ss[i].name, lb, sizeof(lb)),
                     (unsigned long long)ss[i].estimate_keys);
            }
    fprintf(b, "%s", "# HELP eddy_store_size_bytes SST files and memtables per store.\n"
                      "# TYPE eddy_store_size_bytes gauge\n");
    for (int i = 0; i < ns && i < 64; i++) {
        fprintf(b, "eddy_store_size_bytes{store=\"%s\"} %llu\n", prom_label(ss[i].name, lb, sizeof(lb)),
                     (unsigned long long)ss[i].size_bytes);
            }
    eddy_source_lag_t lags[256];
    int nl = eddy_engine_source_lag(m->eng, lags, 256);
    if (nl > 0)
        fprintf(b, "%s", "# HELP eddy_consumer_lag_records Partition end offset minus the "
                          "next offset to process.\n# TYPE eddy_consumer_lag_records gauge\n");
    for (int i = 0; i < nl && i < 256; i++) {
        if (lags[i].lag < 0)
            continue;
        char tb[600];
        fprintf(b, "eddy_consumer_lag_records{topic=\"%s\",partition=\"%d\"} %lld\n",
                prom_label(lags[i].topic, tb, sizeof(tb)), (int)lags[i].partition,
                (long long)lags[i].lag);
    }
    fprintf(b, "%s", "# HELP eddy_store_freshness_seconds Wall clock minus the newest event "
                      "time behind the store's committed state.\n"
                      "# TYPE eddy_store_freshness_seconds gauge\n");
    int64_t now = now_ms();
    for (int i = 0; i < ns && i < 64; i++) {
        if (ss[i].newest_event_ms == INT64_MIN)
            continue;
        fprintf(b, "eddy_store_freshness_seconds{store=\"%s\"} %.3f\n",
                     prom_label(ss[i].name, lb, sizeof(lb)), (double)(now - ss[i].newest_event_ms) / 1000.0);
            }
    fprintf(b, "%s", "# HELP eddy_mcp_calls_total MCP requests served, by method.\n"
                      "# TYPE eddy_mcp_calls_total counter\n");
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->ncalls; i++) {
        fprintf(b, "eddy_mcp_calls_total{method=\"%s\"} %llu\n",
                     m->calls[i].method, (unsigned long long)m->calls[i].calls);
                fprintf(b, "eddy_mcp_call_errors_total{method=\"%s\"} %llu\n",
                     m->calls[i].method, (unsigned long long)m->calls[i].errors);
            }
    fprintf(b, "%s", "# HELP eddy_mcp_call_seconds MCP request latency, by method.\n"
                      "# TYPE eddy_mcp_call_seconds histogram\n");
    for (int i = 0; i < m->ncalls; i++) {
        uint64_t cum = 0;
        for (int k = 0; k < NCALL_BUCKETS; k++) {
            cum += m->calls[i].buckets[k];
            if (k == NCALL_BUCKETS - 1)
                fprintf(b, "eddy_mcp_call_seconds_bucket{method=\"%s\",le=\"+Inf\"} %llu\n",
                             m->calls[i].method, (unsigned long long)cum);
            else
                fprintf(b, "eddy_mcp_call_seconds_bucket{method=\"%s\",le=\"%g\"} %llu\n",
                             m->calls[i].method, (double)(1LL << k) / 1e6,
                             (unsigned long long)cum);
                    }
        fprintf(b, "eddy_mcp_call_seconds_sum{method=\"%s\"} %.9f\n"
                     "eddy_mcp_call_seconds_count{method=\"%s\"} %llu\n",
                     m->calls[i].method, m->calls[i].sum_s, m->calls[i].method,
                     (unsigned long long)m->calls[i].calls);
            }
    pthread_mutex_unlock(&m->lock);
    fclose(b);
    return out;
}

/* ------------------------------------------------------------- watcher */

static uint64_t fnv64(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Content hash of a resource now; false when it cannot be read. */
static bool resource_hash(eddy_mcp_t *m, const char *uri, uint64_t *h) {
    int code;
    char msg[256];
    json_t *r = eddy__mcp_resource_read(m, uri, &code, msg, sizeof(msg));
    if (!r)
        return false;
    char *txt = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(r);
    if (!txt)
        return false;
    *h = fnv64(txt, strlen(txt));
    free(txt);
    return true;
}

/* Every open session, with a reference each (so they can be used without
 * the server lock): a malloc'd array of *n (NULL when none or out of
 * memory). The caller releases each and frees the array. All of them: a
 * fixed cap would silently starve the oldest sessions (new ones go first
 * in the list) of their notifications once more sessions are open. */
static eddy_mcp_session_t **sessions_ref(eddy_mcp_t *m, int *n) {
    pthread_mutex_lock(&m->lock);
    int cnt = 0;
    for (eddy_mcp_session_t *s = m->sessions; s; s = s->next)
        cnt++;
    eddy_mcp_session_t **out = cnt ? malloc(sizeof(*out) * (size_t)cnt) : NULL;
    *n = 0;
    for (eddy_mcp_session_t *s = m->sessions; out && s; s = s->next) {
        s->refs++;
        out[(*n)++] = s;
    }
    pthread_mutex_unlock(&m->lock);
    return out;
}

static void check_subscriptions(eddy_mcp_t *m, int64_t interval_ms) {
    int n;
    eddy_mcp_session_t **ss = sessions_ref(m, &n);
    int64_t now = now_ms();
    for (int i = 0; i < n; i++) {
        eddy_mcp_session_t *s = ss[i];
        pthread_mutex_lock(&s->lock);
        int nsubs = s->nsubs;
        char *uris[MAX_SUBS];
        for (int k = 0; k < nsubs; k++)
            uris[k] = strdup(s->subs[k].uri);
        pthread_mutex_unlock(&s->lock);
        for (int k = 0; k < nsubs; k++) {
            uint64_t h;
            bool ok = uris[k] && resource_hash(m, uris[k], &h);
            bool fire = false;
            pthread_mutex_lock(&s->lock);
            for (int j = 0; ok && j < s->nsubs; j++) {
                sub_t *sb = &s->subs[j];
                if (strcmp(sb->uri, uris[k]))
                    continue;
                if (!sb->have_hash) {
                    sb->hash = h;
                    sb->have_hash = true;
                } else if (sb->hash != h && now - sb->last_notify_ms >= interval_ms) {
                    /* changed since the last notification: tell once; later
                     * changes within the interval wait for the next check */
                    sb->hash = h;
                    sb->last_notify_ms = now;
                    fire = true;
                }
                break;
            }
            pthread_mutex_unlock(&s->lock);
            if (fire)
                session_send(s, json_pack("{s:s, s:s, s:{s:s}}", "jsonrpc", "2.0", "method",
                                          "notifications/resources/updated", "params", "uri",
                                          uris[k]));
            free(uris[k]);
        }
        eddy__mcp_session_release(s);
    }
    free(ss);
}

static void log_all(eddy_mcp_t *m, int level, const char *logger, json_t *data) {
    int n;
    eddy_mcp_session_t **ss = sessions_ref(m, &n);
    for (int i = 0; i < n; i++) {
        session_log(ss[i], level, logger, json_incref(data));
        eddy__mcp_session_release(ss[i]);
    }
    free(ss);
    json_decref(data);
}

static void *watcher_main(void *arg) {
    eddy_mcp_t *m = arg;
    eddy_stats_t st;
    eddy_engine_stats(m->eng, &st);
    uint64_t commits = st.commits, dead = st.dead_lettered, late = st.late, in = st.events_in;
    int64_t rate_t = mono_ns(), log_t = rate_t;
    bool reported_stop = false;
    int64_t interval = m->opts.notify_min_interval_ms;
    while (!atomic_load(&m->stop)) {
        usleep(20000);
        eddy_engine_stats(m->eng, &st);
        int64_t t = mono_ns();
        if (t - rate_t >= 1000000000LL) {
            atomic_store(&m->eps, (double)(st.events_in - in) * 1e9 / (double)(t - rate_t));
            in = st.events_in;
            rate_t = t;
        }
        if (st.commits != commits) {
            commits = st.commits;
            check_subscriptions(m, interval);
        }
        if (t - log_t >= 1000000000LL) {
            log_t = t;
            if (st.dead_lettered != dead) {
                log_all(m, 3, "eddy.dead_letter",
                        json_pack("{s:s, s:I, s:I}", "message",
                                  "records went to the dead-letter output", "new",
                                  (json_int_t)(st.dead_lettered - dead), "total",
                                  (json_int_t)st.dead_lettered));
                dead = st.dead_lettered;
            }
            if (st.late != late) {
                log_all(m, 1, "eddy.late",
                        json_pack("{s:s, s:I, s:I}", "message",
                                  "late records went to the late-records output", "new",
                                  (json_int_t)(st.late - late), "total", (json_int_t)st.late));
                late = st.late;
            }
        }
        if (!st.running && !reported_stop && eddy_engine_last_error(m->eng)[0]) {
            reported_stop = true;
            log_all(m, 4, "eddy.engine",
                    json_pack("{s:s, s:s}", "message", "the engine stopped with an error",
                              "error", eddy_engine_last_error(m->eng)));
        }
    }
    return NULL;
}

eddy_mcp_t *eddy__mcp_new(eddy_engine_t *eng, const eddy_mcp_opts_t *opts) {
    eddy_mcp_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->eng = eng;
    if (opts)
        m->opts = *opts;
    else
        eddy__mcp_opts_default(&m->opts);
    if (m->opts.default_limit <= 0)
        m->opts.default_limit = 20;
    if (m->opts.max_limit < m->opts.default_limit)
        m->opts.max_limit = m->opts.default_limit;
    pthread_mutex_init(&m->lock, NULL);
    if (pthread_create(&m->watcher, NULL, watcher_main, m) == 0)
        m->watcher_started = true;
    return m;
}

void eddy__mcp_destroy(eddy_mcp_t *m) {
    if (!m)
        return;
    atomic_store(&m->stop, true);
    if (m->watcher_started)
        pthread_join(m->watcher, NULL);
    while (m->sessions)
        eddy__mcp_session_close(m->sessions);
    for (int i = 0; i < m->ncalls; i++)
        free((char *)m->calls[i].method);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ------------------------------------------------------------- methods */

/* Page a list: items [off, off + LIST_PAGE); cursor = decimal offset. */
static json_t *paged(json_t *id, json_t *params, const char *key, json_t *all) {
    size_t off = 0;
    json_t *c = params ? json_object_get(params, "cursor") : NULL;
    if (c) {
        const char *cs = json_string_value(c);
        char *end = NULL;
        unsigned long long v = cs ? strtoull(cs, &end, 10) : 0;
        if (!cs || !*cs || *end || v > json_array_size(all)) {
            json_decref(all);
            return errorf(id, RPC_INVALID_PARAMS, "invalid cursor");
        }
        off = (size_t)v;
    }
    json_t *page = json_array();
    size_t n = json_array_size(all);
    for (size_t i = off; i < n && i < off + LIST_PAGE; i++)
        json_array_append(page, json_array_get(all, i));
    json_t *res = json_pack("{s:o}", key, page);
    if (off + LIST_PAGE < n) {
        char nc[32];
        snprintf(nc, sizeof(nc), "%zu", off + LIST_PAGE);
        json_object_set_new(res, "nextCursor", json_string(nc));
    }
    json_decref(all);
    return rpc_result(id, res);
}

static json_t *do_initialize(eddy_mcp_session_t *s, json_t *id, json_t *params,
                             bool *initialized) {
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    if (!want)
        return errorf(id, RPC_INVALID_PARAMS,
                      "initialize: params.protocolVersion (a string) is required");
    if (!json_is_object(json_object_get(params, "capabilities")))
        return errorf(id, RPC_INVALID_PARAMS,
                      "initialize: params.capabilities (an object) is required");
    json_t *ci = json_object_get(params, "clientInfo");
    if (!json_is_object(ci) || !json_is_string(json_object_get(ci, "name")))
        return errorf(id, RPC_INVALID_PARAMS,
                      "initialize: params.clientInfo {name, version} is required");
    if (atomic_load(&s->initialized))
        return errorf(id, RPC_INVALID_REQUEST, "the session is already initialized");
    const char *v = versions[0];
    for (int i = 0; versions[i]; i++)
        if (!strcmp(want, versions[i]))
            v = versions[i];
    snprintf(s->version, sizeof(s->version), "%s", v);
    json_t *caps = json_pack("{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}}", "tools", "listChanged", 0,
                             "resources", "subscribe", 1, "listChanged", 0, "prompts",
                             "listChanged", 0, "logging");
    json_t *info = json_pack("{s:s, s:s}", "name", "eddy-mcp", "version", eddy_version());
    if (strcmp(v, "2025-03-26"))
        json_object_set_new(info, "title", json_string("eddy stream state"));
    json_t *res = json_pack("{s:s, s:o, s:o}", "protocolVersion", v, "capabilities", caps,
                            "serverInfo", info);
    const char *instr = s->m->opts.instructions
                            ? s->m->opts.instructions
                            : "This server answers questions from the live state of a running "
                              "eddy stream-processing topology. Start with describe_topology "
                              "to learn the stores (kind, key and value fields); then use "
                              "get_value for one key of a kv store, scan_store for ranges "
                              "and prefixes, get_windows for the windows of a key over time, "
                              "top_keys for the largest values of a field, and get_metrics "
                              "for throughput, latency, watermarks and freshness. Answers "
                              "reflect committed state, at most one commit interval old.";
    json_object_set_new(res, "instructions", json_string(instr));
    atomic_store(&s->initialized, true);
    *initialized = true;
    return rpc_result(id, res);
}

/* The error for a tool, resource or prompt that answered NULL. */
static json_t *failed(json_t *id, int code, const char *msg, json_t *data) {
    if (!code)
        return eddy__rpc_error(id, RPC_INTERNAL_ERROR, "internal error: no answer was built", data);
    return eddy__rpc_error(id, code, msg, data);
}

static json_t *do_subscribe(eddy_mcp_session_t *s, json_t *id, json_t *params, bool sub) {
    const char *uri = json_string_value(json_object_get(params, "uri"));
    if (!uri)
        return errorf(id, RPC_INVALID_PARAMS, "params.uri (a string) is required");
    if (sub) {
        int code;
        char msg[512];
        json_t *r = eddy__mcp_resource_read(s->m, uri, &code, msg, sizeof(msg));
        if (!r)
            return failed(id, code, msg, json_pack("{s:s}", "uri", uri));
        json_decref(r);
    }
    pthread_mutex_lock(&s->lock);
    int at = -1;
    for (int i = 0; i < s->nsubs; i++)
        if (!strcmp(s->subs[i].uri, uri))
            at = i;
    json_t *err = NULL;
    if (sub && at < 0) {
        if (s->nsubs == MAX_SUBS) {
            err = errorf(id, RPC_INVALID_PARAMS, "too many subscriptions (at most %d)", MAX_SUBS);
        } else {
            sub_t *sb = &s->subs[s->nsubs++];
            memset(sb, 0, sizeof(*sb));
            sb->uri = strdup(uri);
        }
    } else if (!sub && at >= 0) {
        free(s->subs[at].uri);
        s->subs[at] = s->subs[--s->nsubs];
    }
    pthread_mutex_unlock(&s->lock);
    if (err)
        return err;
    /* take the baseline now, so the first change after this is notified */
    if (sub) {
        uint64_t h;
        if (resource_hash(s->m, uri, &h)) {
            pthread_mutex_lock(&s->lock);
            for (int i = 0; i < s->nsubs; i++)
                if (!strcmp(s->subs[i].uri, uri) && !s->subs[i].have_hash) {
                    s->subs[i].hash = h;
                    s->subs[i].have_hash = true;
                }
            pthread_mutex_unlock(&s->lock);
        }
    }
    return rpc_result(id, json_object());
}

static json_t *dispatch(eddy_mcp_session_t *s, const char *method, json_t *id, json_t *params,
                        bool *initialized) {
    eddy_mcp_t *m = s->m;
    int code = 0;
    char msg[1024] = "";
    if (!strcmp(method, "initialize"))
        return do_initialize(s, id, params, initialized);
    if (!strcmp(method, "ping"))
        return rpc_result(id, json_object());
    if (!atomic_load(&s->initialized))
        return errorf(id, RPC_INVALID_REQUEST,
                      "'%s' before initialize: send initialize first", method);
    if (!strcmp(method, "tools/list"))
        return paged(id, params, "tools", eddy__mcp_tools_list(m, s->version));
    if (!strcmp(method, "tools/call")) {
        json_t *name = json_object_get(params, "name");
        json_t *args = json_object_get(params, "arguments");
        if (!json_is_string(name))
            return errorf(id, RPC_INVALID_PARAMS, "tools/call: params.name (a string) is required");
        if (args && !json_is_object(args) && !json_is_null(args))
            return errorf(id, RPC_INVALID_PARAMS, "tools/call: params.arguments must be an object");
        json_t *r = eddy__mcp_tool_call(m, s->version, json_string_value(name),
                                        json_is_object(args) ? args : NULL, &code, msg,
                                        sizeof(msg));
        return r ? rpc_result(id, r) : failed(id, code, msg, NULL);
    }
    if (!strcmp(method, "resources/list"))
        return paged(id, params, "resources", eddy__mcp_resources_list(m));
    if (!strcmp(method, "resources/templates/list"))
        return paged(id, params, "resourceTemplates", eddy__mcp_resource_templates(m));
    if (!strcmp(method, "resources/read")) {
        const char *uri = json_string_value(json_object_get(params, "uri"));
        if (!uri)
            return errorf(id, RPC_INVALID_PARAMS, "resources/read: params.uri (a string) is required");
        json_t *r = eddy__mcp_resource_read(m, uri, &code, msg, sizeof(msg));
        return r ? rpc_result(id, r) : failed(id, code, msg, json_pack("{s:s}", "uri", uri));
    }
    if (!strcmp(method, "resources/subscribe"))
        return do_subscribe(s, id, params, true);
    if (!strcmp(method, "resources/unsubscribe"))
        return do_subscribe(s, id, params, false);
    if (!strcmp(method, "prompts/list"))
        return paged(id, params, "prompts", eddy__mcp_prompts_list(m));
    if (!strcmp(method, "prompts/get")) {
        const char *name = json_string_value(json_object_get(params, "name"));
        json_t *args = json_object_get(params, "arguments");
        if (!name)
            return errorf(id, RPC_INVALID_PARAMS, "prompts/get: params.name (a string) is required");
        if (args && !json_is_object(args))
            return errorf(id, RPC_INVALID_PARAMS, "prompts/get: params.arguments must be an object");
        json_t *r = eddy__mcp_prompt_get(m, name, args, &code, msg, sizeof(msg));
        return r ? rpc_result(id, r) : failed(id, code, msg, NULL);
    }
    if (!strcmp(method, "logging/setLevel")) {
        const char *lv = json_string_value(json_object_get(params, "level"));
        for (int i = 0; lv && levels[i]; i++)
            if (!strcmp(lv, levels[i])) {
                atomic_store(&s->log_level, i);
                return rpc_result(id, json_object());
            }
        return errorf(id, RPC_INVALID_PARAMS,
                      "logging/setLevel: level must be one of debug, info, notice, warning, "
                      "error, critical, alert, emergency");
    }
    return errorf(id, RPC_METHOD_NOT_FOUND, "method not found: %s", method);
}

static void notification(eddy_mcp_session_t *s, const char *method, json_t *params) {
    if (!strcmp(method, "notifications/cancelled") && params)
        mark_cancelled(s, json_object_get(params, "requestId"));
    /* notifications/initialized, roots/list_changed, progress: nothing to do */
}

/* One message (not a batch): the response, or NULL. */
static json_t *handle_one(eddy_mcp_session_t *s, json_t *msg, bool *had_request,
                          bool *initialized) {
    if (!json_is_object(msg))
        return errorf(NULL, RPC_INVALID_REQUEST, "a JSON-RPC message must be an object");
    json_t *id = json_object_get(msg, "id");
    bool id_ok = id && (json_is_string(id) || json_is_integer(id));
    const char *ver = json_string_value(json_object_get(msg, "jsonrpc"));
    if (!ver || strcmp(ver, "2.0"))
        return errorf(id_ok ? id : NULL, RPC_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"");
    json_t *mth = json_object_get(msg, "method");
    if (!mth) {
        /* a response to a server request: we send none, so ignore it */
        if (id && (json_object_get(msg, "result") || json_object_get(msg, "error")))
            return NULL;
        return errorf(id_ok ? id : NULL, RPC_INVALID_REQUEST, "no \"method\" in the request");
    }
    if (!json_is_string(mth))
        return errorf(id_ok ? id : NULL, RPC_INVALID_REQUEST, "\"method\" must be a string");
    if (id && !id_ok)
        return errorf(NULL, RPC_INVALID_REQUEST,
                      "\"id\" must be a string or an integer (null is not allowed)");
    const char *method = json_string_value(mth);
    json_t *params = json_object_get(msg, "params");
    if (!id) {
        if (!params || json_is_object(params))
            notification(s, method, params);
        return NULL;
    }
    *had_request = true;
    if (params && !json_is_object(params))
        return errorf(id, RPC_INVALID_PARAMS, "\"params\" must be an object");
    int64_t t0 = mono_ns();
    json_t *resp = dispatch(s, method, id, params, initialized);
    bool is_err = json_object_get(resp, "error") != NULL ||
                  json_is_true(json_object_get(json_object_get(resp, "result"), "isError"));
    char key[96];
    const char *counted = "(unknown)";
    for (int i = 0; methods[i]; i++)
        if (!strcmp(method, methods[i]))
            counted = methods[i];
    /* a tool by name only when the call reached one (a result came back) */
    if (!strcmp(counted, "tools/call") && json_object_get(resp, "result")) {
        snprintf(key, sizeof(key), "tools/call:%.60s",
                 json_string_value(json_object_get(params, "name")));
        counted = key;
    }
    eddy__mcp_count_call(s->m, counted, mono_ns() - t0, is_err);
    if (take_cancelled(s, id)) {
        json_decref(resp);
        return NULL;
    }
    return resp;
}

void eddy__mcp_handle_json(eddy_mcp_session_t *s, json_t *msg, eddy_mcp_result_t *res) {
    memset(res, 0, sizeof(*res));
    json_t *out = NULL;
    if (json_is_array(msg)) {
        if (strcmp(s->version, "2025-03-26")) {
            out = errorf(NULL, RPC_INVALID_REQUEST,
                         "JSON-RPC batches are not supported in protocol version %s",
                         s->version[0] ? s->version : EDDY_MCP_LATEST);
        } else if (json_array_size(msg) == 0) {
            out = errorf(NULL, RPC_INVALID_REQUEST, "empty batch");
        } else {
            out = json_array();
            for (size_t i = 0; i < json_array_size(msg); i++) {
                json_t *r = handle_one(s, json_array_get(msg, i), &res->had_request,
                                       &res->initialize);
                if (r)
                    json_array_append_new(out, r);
            }
            if (json_array_size(out) == 0) {
                json_decref(out);
                out = NULL;
            }
        }
    } else {
        out = handle_one(s, msg, &res->had_request, &res->initialize);
    }
    if (out) {
        res->response = json_dumps(out, JSON_COMPACT);
        json_decref(out);
    }
}

void eddy__mcp_handle(eddy_mcp_session_t *s, const char *msg, size_t len,
                      eddy_mcp_result_t *res) {
    memset(res, 0, sizeof(*res));
    if (len > s->m->opts.max_request_bytes) {
        res->response = eddy__rpc_error_str(NULL, RPC_INVALID_REQUEST,
                                            "message of %zu bytes is over the limit of %zu",
                                            len, s->m->opts.max_request_bytes);
        return;
    }
    json_error_t je;
    /* DECODE_ANY: `42` is JSON, so it is an invalid request, not a parse error */
    json_t *j = json_loadb(msg, len, JSON_DECODE_ANY, &je);
    if (!j) {
        res->parse_error = true;
        res->response = eddy__rpc_error_str(NULL, RPC_PARSE_ERROR, "parse error at line %d col %d: %s",
                                            je.line, je.column, je.text);
        return;
    }
    eddy__mcp_handle_json(s, j, res);
    json_decref(j);
}
