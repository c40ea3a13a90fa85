/*
 * MCP over Kafka: the MCP half of the Kafka transport. The Kafka half
 * (connectors/mcp_kafka.c) consumes the request topic and produces
 * replies; this file turns each request into a call of the MCP server on
 * the right session, as stdio.c and http.c do for theirs.
 *
 * Sessions. A session is named by the mcp-session-id header. initialize
 * opens one: under the id the request carries (an agent that names its
 * own session can send initialize and its first requests without waiting,
 * and key them all by that id), or under a new random id when it carries
 * none; the reply's mcp-session-id header says which. An initialize for
 * an id already open replaces that session (an agent restarting with its
 * id). Every other message must name an open session; a request that does
 * not gets a JSON-RPC error reply (-32600) saying so, a notification is
 * counted and dropped (JSON-RPC never answers a notification). A message
 * with a null value (a tombstone) and an mcp-session-id ends that
 * session, as HTTP's DELETE does; sessions without a message for
 * session_idle_s end too.
 *
 * Server-to-client messages (notifications/resources/updated,
 * notifications/message) go to the topic of the session's latest
 * request's reply, with that request's key, from the server's watcher
 * thread.
 *
 * Bad input (not JSON, over max_request_bytes, a null value without a
 * session, a malformed session header) is answered with a JSON-RPC error
 * when the reply topic is known, counted, and never stops the transport.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp.h"
#include "mcp_transport.h"

typedef struct ksess {
    eddy_mcp_kafka_transport_t *t;
    eddy_mcp_session_t *core; /* holds a reference of its own (released at free) */
    char id[160];
    pthread_mutex_t lock; /* topic, key */
    char topic[256];      /* where server messages go ("": nowhere yet) */
    void *key;
    size_t key_len;
    int refs;            /* under t->lock; the list holds one while linked */
    int64_t last_used_s; /* under t->lock */
    bool linked;         /* under t->lock */
    struct ksess *next;
} ksess_t;

struct eddy_mcp_kafka_transport_s {
    eddy_mcp_t *m;
    eddy_mcp_kafka_t *_Atomic b; /* set by the bridge before its threads start */
    int max_sessions;
    int64_t idle_s;
    pthread_mutex_t lock; /* sessions, nsessions, last_reap_s */
    ksess_t *sessions;
    int nsessions;
    int64_t last_reap_s;
    atomic_ullong bad_input, no_session, unknown_session, opened, ended, expired,
        notifications_dropped;
};

static int64_t mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* ------------------------------------------------------------ sessions */

static void ksess_unref(ksess_t *ks) {
    eddy_mcp_kafka_transport_t *t = ks->t;
    pthread_mutex_lock(&t->lock);
    bool last = --ks->refs == 0;
    pthread_mutex_unlock(&t->lock);
    if (!last)
        return;
    eddy__mcp_session_release(ks->core);
    pthread_mutex_destroy(&ks->lock);
    eddy_free(ks->key);
    eddy_free(ks);
}

/* The open session with this id, with a reference taken, or NULL. */
static ksess_t *ksess_find(eddy_mcp_kafka_transport_t *t, const char *id) {
    ksess_t *r = NULL;
    pthread_mutex_lock(&t->lock);
    for (ksess_t *ks = t->sessions; ks && !r; ks = ks->next)
        if (!strcmp(ks->id, id)) {
            ks->refs++;
            ks->last_used_s = mono_s();
            r = ks;
        }
    pthread_mutex_unlock(&t->lock);
    return r;
}

/* Unlink and close; the memory goes with the last reference. */
static bool ksess_end(ksess_t *ks) {
    eddy_mcp_kafka_transport_t *t = ks->t;
    pthread_mutex_lock(&t->lock);
    bool was = ks->linked;
    if (was) {
        for (ksess_t **pp = &t->sessions; *pp; pp = &(*pp)->next)
            if (*pp == ks) {
                *pp = ks->next;
                break;
            }
        ks->linked = false;
        t->nsessions--;
    }
    pthread_mutex_unlock(&t->lock);
    if (!was)
        return false;
    eddy__mcp_session_close(ks->core); /* no on_notify after this */
    ksess_unref(ks);                   /* the list's */
    return true;
}

/* Server-initiated message: to the session's latest reply topic. */
static void on_notify(void *opaque, const char *json, size_t len) {
    ksess_t *ks = opaque;
    pthread_mutex_lock(&ks->lock);
    if (!ks->topic[0] ||
        eddy__mcp_kafka_send(ks->t->b, ks->topic, ks->key, ks->key_len, ks->id, json, len))
        atomic_fetch_add(&ks->t->notifications_dropped, 1);
    pthread_mutex_unlock(&ks->lock);
}

/* A new session under id (NULL: the core's random id), linked, with a
 * reference for the caller; NULL when max_sessions are open. */
static ksess_t *ksess_open(eddy_mcp_kafka_transport_t *t, const char *id) {
    ksess_t *ks = eddy_malloc(sizeof(*ks));
    memset(ks, 0, sizeof(*ks));
    ks->t = t;
    pthread_mutex_init(&ks->lock, NULL);
    ks->core = eddy__mcp_session_new(t->m, on_notify, ks);
    if (!ks->core) {
        pthread_mutex_destroy(&ks->lock);
        eddy_free(ks);
        return NULL;
    }
    /* our own reference: a closed core must outlive the handler calls
     * still running on it (the list's goes with eddy__mcp_session_close) */
    eddy__mcp_session_find(t->m, eddy__mcp_session_id(ks->core));
    snprintf(ks->id, sizeof(ks->id), "%s", id ? id : eddy__mcp_session_id(ks->core));
    pthread_mutex_lock(&t->lock);
    bool room = t->nsessions < t->max_sessions;
    if (room) {
        ks->refs = 2; /* the list's and the caller's */
        ks->linked = true;
        ks->last_used_s = mono_s();
        ks->next = t->sessions;
        t->sessions = ks;
        t->nsessions++;
    }
    pthread_mutex_unlock(&t->lock);
    if (!room) {
        eddy__mcp_session_close(ks->core);
        eddy__mcp_session_release(ks->core);
        pthread_mutex_destroy(&ks->lock);
        eddy_free(ks);
        return NULL;
    }
    return ks;
}

/* Server messages follow the latest request's reply topic and key. */
static void ksess_route(ksess_t *ks, const eddy_mcp_kafka_msg_t *msg) {
    if (!msg->reply_topic)
        return;
    pthread_mutex_lock(&ks->lock);
    snprintf(ks->topic, sizeof(ks->topic), "%s", msg->reply_topic);
    eddy_free(ks->key);
    ks->key = NULL;
    ks->key_len = 0;
    if (msg->key && msg->key_len) {
        ks->key = eddy_malloc(msg->key_len);
        memcpy(ks->key, msg->key, msg->key_len);
        ks->key_len = msg->key_len;
    }
    pthread_mutex_unlock(&ks->lock);
}

/* End sessions idle longer than idle_s; at most once a second. */
static void reap_idle(eddy_mcp_kafka_transport_t *t) {
    if (t->idle_s <= 0)
        return;
    int64_t now = mono_s();
    ksess_t *victims[64];
    int n = 0;
    pthread_mutex_lock(&t->lock);
    if (now != t->last_reap_s) {
        t->last_reap_s = now;
        for (ksess_t *ks = t->sessions; ks && n < 64; ks = ks->next)
            if (now - ks->last_used_s > t->idle_s) {
                ks->refs++;
                victims[n++] = ks;
            }
    }
    pthread_mutex_unlock(&t->lock);
    for (int i = 0; i < n; i++) {
        if (ksess_end(victims[i]))
            atomic_fetch_add(&t->expired, 1);
        ksess_unref(victims[i]);
    }
}

/* ------------------------------------------------------------ requests */

/* The id of a request (a string or an integer), else NULL: error replies
 * carry it, so the agent can match them as well as by correlation id. */
static json_t *request_id(json_t *doc) {
    json_t *id = json_object_get(doc, "id");
    return json_is_string(id) || json_is_integer(id) ? id : NULL;
}

static void do_initialize(eddy_mcp_kafka_transport_t *t, const eddy_mcp_kafka_msg_t *msg,
                          json_t *doc, eddy_mcp_kafka_reply_t *rep) {
    if (msg->session_id) {
        ksess_t *old = ksess_find(t, msg->session_id);
        if (old) {
            if (ksess_end(old))
                atomic_fetch_add(&t->ended, 1);
            ksess_unref(old);
        }
    }
    ksess_t *ks = ksess_open(t, msg->session_id);
    if (!ks) {
        rep->value = eddy__rpc_error_str(request_id(doc), RPC_INVALID_REQUEST,
                                         "too many open sessions (%d): end one (a null-value "
                                         "message with its " EDDY_MCP_KAFKA_SESSION_ID
                                         " header) or wait until idle ones expire",
                                         t->max_sessions);
        return;
    }
    ksess_route(ks, msg);
    eddy_mcp_result_t res;
    eddy__mcp_handle_json(ks->core, doc, &res);
    if (res.initialize) {
        atomic_fetch_add(&t->opened, 1);
        snprintf(rep->session_id, sizeof(rep->session_id), "%s", ks->id);
    } else {
        ksess_end(ks); /* a failed initialize leaves no session */
    }
    rep->value = res.response;
    ksess_unref(ks);
}

/* A response too large for one Kafka message would be lost on the way
 * (the producer refuses it); the agent gets an error it can act on. */
static void bound_reply(eddy_mcp_kafka_transport_t *t, const eddy_mcp_kafka_msg_t *msg, json_t *doc,
                        eddy_mcp_kafka_reply_t *rep) {
    size_t max = eddy__mcp_kafka_max_value_bytes(t->b, msg->key_len);
    size_t n = rep->value ? strlen(rep->value) : 0;
    if (n <= max)
        return;
    free(rep->value);
    rep->value = eddy__rpc_error_str(request_id(doc), RPC_INTERNAL_ERROR,
                                     "the response of %zu bytes is over the %zu bytes a Kafka "
                                     "message may hold here (message.max.bytes): ask for less, "
                                     "e.g. a smaller limit",
                                     n, max);
}

/* Handler thread: one message from the request topic. */
static void on_request(void *opaque, const eddy_mcp_kafka_msg_t *msg, eddy_mcp_kafka_reply_t *rep) {
    eddy_mcp_kafka_transport_t *t = opaque;
    reap_idle(t);
    if (msg->tombstone) {
        ksess_t *ks = msg->session_id ? ksess_find(t, msg->session_id) : NULL;
        if (ks) {
            if (ksess_end(ks))
                atomic_fetch_add(&t->ended, 1);
            ksess_unref(ks);
        } else if (msg->session_id) {
            atomic_fetch_add(&t->unknown_session, 1);
        } else {
            atomic_fetch_add(&t->bad_input, 1);
            rep->value = eddy__rpc_error_str(NULL, RPC_INVALID_REQUEST,
                                             "empty message: a null value ends the session "
                                             "named by its " EDDY_MCP_KAFKA_SESSION_ID
                                             " header, and this one has none");
        }
        return;
    }
    size_t max = eddy__mcp_opts(t->m)->max_request_bytes;
    if (msg->len > max) {
        atomic_fetch_add(&t->bad_input, 1);
        rep->value =
            eddy__rpc_error_str(NULL, RPC_INVALID_REQUEST,
                                "message of %zu bytes is over the limit of %zu", msg->len, max);
        return;
    }
    json_error_t je;
    json_t *doc = json_loadb(msg->value, msg->len, JSON_DECODE_ANY, &je);
    if (!doc) {
        atomic_fetch_add(&t->bad_input, 1);
        rep->value = eddy__rpc_error_str(NULL, RPC_PARSE_ERROR, "parse error at line %d col %d: %s",
                                         je.line, je.column, je.text);
        return;
    }
    json_t *id = request_id(doc);
    bool notification = json_is_object(doc) && !json_object_get(doc, "id");
    const char *method = json_string_value(json_object_get(doc, "method"));
    if (msg->header_error) {
        atomic_fetch_add(&t->bad_input, 1);
        if (!notification)
            rep->value = eddy__rpc_error_str(id, RPC_INVALID_REQUEST, "%s", msg->header_error);
    } else if (method && !strcmp(method, "initialize") && json_object_get(doc, "id")) {
        do_initialize(t, msg, doc, rep);
    } else if (!msg->session_id) {
        atomic_fetch_add(&t->no_session, 1);
        if (!notification)
            rep->value = eddy__rpc_error_str(id, RPC_INVALID_REQUEST,
                                             "the " EDDY_MCP_KAFKA_SESSION_ID
                                             " header is required: send initialize first "
                                             "(its reply carries the session id)");
    } else {
        ksess_t *ks = ksess_find(t, msg->session_id);
        if (!ks) {
            atomic_fetch_add(&t->unknown_session, 1);
            if (!notification)
                rep->value = eddy__rpc_error_str(
                    id, RPC_INVALID_REQUEST,
                    "unknown session '%s': it ended, expired or never existed; send "
                    "initialize to open one",
                    msg->session_id);
        } else {
            ksess_route(ks, msg);
            eddy_mcp_result_t res;
            eddy__mcp_handle_json(ks->core, doc, &res);
            rep->value = res.response;
            ksess_unref(ks);
        }
    }
    bound_reply(t, msg, doc, rep);
    json_decref(doc);
}

static bool contains(const char *p, size_t n, const char *needle) {
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (p[i] == needle[0] && !memcmp(p + i, needle, k))
            return true;
    return false;
}

/* Consumer thread: a cancellation is handled at once, so it overtakes the
 * queued request it cancels (as on stdio). */
static bool on_early(void *opaque, const eddy_mcp_kafka_msg_t *msg) {
    eddy_mcp_kafka_transport_t *t = opaque;
    static const char cancel[] = "notifications/cancelled";
    if (msg->tombstone || !msg->session_id || msg->header_error ||
        msg->len > eddy__mcp_opts(t->m)->max_request_bytes ||
        !contains(msg->value, msg->len, cancel))
        return false;
    json_t *doc = json_loadb(msg->value, msg->len, 0, NULL);
    const char *method = json_string_value(json_object_get(doc, "method"));
    bool mine =
        json_is_object(doc) && !json_object_get(doc, "id") && method && !strcmp(method, cancel);
    if (mine) {
        ksess_t *ks = ksess_find(t, msg->session_id);
        if (ks) {
            eddy_mcp_result_t res;
            eddy__mcp_handle_json(ks->core, doc, &res);
            free(res.response); /* none for a notification */
            ksess_unref(ks);
        } else {
            atomic_fetch_add(&t->unknown_session, 1);
        }
    }
    json_decref(doc);
    return mine;
}

/* ---------------------------------------------------------- life cycle */

void eddy__mcp_kafka_transport_opts_default(eddy_mcp_kafka_transport_opts_t *o) {
    memset(o, 0, sizeof(*o));
    o->kafka.threads = 4;
    o->max_sessions = 1024;
    o->session_idle_s = 1800;
    o->ready_timeout_ms = 30000;
}

eddy_mcp_kafka_transport_t *
eddy__mcp_kafka_transport_start(eddy_mcp_t *m, const eddy_mcp_kafka_transport_opts_t *o,
                                char *errstr, size_t errstr_size) {
    eddy_mcp_kafka_props_t *props =
        eddy__mcp_kafka_props_new(o->topo, o->props, errstr, errstr_size);
    if (!props)
        return NULL;
    eddy_mcp_kafka_transport_t *t = eddy_malloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->m = m;
    t->max_sessions = o->max_sessions > 0 ? o->max_sessions : 1024;
    t->idle_s = o->session_idle_s;
    pthread_mutex_init(&t->lock, NULL);
    /* the bridge is stored in t->b before its threads start: a request
     * may be handled (bound_reply reads t->b) before this call returns */
    eddy_mcp_kafka_t *b = eddy__mcp_kafka_start(&o->kafka, props, on_request, on_early, t, &t->b,
                                 o->ready_timeout_ms > 0 ? o->ready_timeout_ms : 30000, errstr,
                                 errstr_size);
    eddy__mcp_kafka_props_free(props);
    if (!b) {
        pthread_mutex_destroy(&t->lock);
        eddy_free(t);
        return NULL;
    }
    return t;
}

const char *eddy__mcp_kafka_transport_bootstrap(const eddy_mcp_kafka_transport_t *t) {
    return eddy__mcp_kafka_bootstrap(t->b);
}

const char *eddy__mcp_kafka_transport_group(const eddy_mcp_kafka_transport_t *t) {
    return eddy__mcp_kafka_group(t->b);
}

void eddy__mcp_kafka_transport_stats(eddy_mcp_kafka_transport_t *t,
                                     eddy_mcp_kafka_transport_stats_t *out) {
    memset(out, 0, sizeof(*out));
    eddy__mcp_kafka_stats(t->b, &out->kafka);
    out->bad_input = atomic_load(&t->bad_input);
    out->no_session = atomic_load(&t->no_session);
    out->unknown_session = atomic_load(&t->unknown_session);
    out->sessions_opened = atomic_load(&t->opened);
    out->sessions_ended = atomic_load(&t->ended);
    out->sessions_expired = atomic_load(&t->expired);
    out->notifications_dropped = atomic_load(&t->notifications_dropped);
}

void eddy__mcp_kafka_transport_stop(eddy_mcp_kafka_transport_t *t) {
    if (!t)
        return;
    eddy__mcp_kafka_stop(t->b); /* no handler runs after this */
    for (;;) {
        pthread_mutex_lock(&t->lock);
        ksess_t *ks = t->sessions;
        pthread_mutex_unlock(&t->lock);
        if (!ks)
            break;
        ksess_end(ks);
    }
    eddy__mcp_kafka_destroy(t->b); /* delivers what the sessions sent */
    pthread_mutex_destroy(&t->lock);
    eddy_free(t);
}
