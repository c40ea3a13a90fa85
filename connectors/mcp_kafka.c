/*
 * Request/reply over Kafka: the Kafka half of the MCP Kafka transport
 * (mcp/kafka_transport.c is the MCP half).
 *
 * Threads. One consumer thread polls the request topic in the bridge's
 * consumer group (which also runs the rebalance callback), offers each
 * message to the early hook, and queues it on one of the handler threads:
 * the one the mcp-session-id header hashes to (else the key, else round
 * robin), so one session's requests are handled in topic order while
 * other sessions go on in parallel; a slow query of one agent does not
 * hold up the others. A handler thread calls the handler and produces its
 * reply. A full queue makes the consumer thread wait (librdkafka then
 * stops fetching once its own buffer is full): backpressure, no drop.
 *
 * Positions. On assignment the partitions are sought explicitly: the
 * group's committed offset, else the end of the partition (or the start,
 * with auto.offset.reset=earliest), looked up before the bridge reports
 * itself ready. librdkafka would otherwise look the end up later, and a
 * request produced in between would be skipped. Offsets are committed
 * automatically (every auto.commit.interval.ms): a request is answered at
 * most once unless the server stops between handling it and the next
 * commit, in which case the next server answers it again; an agent must
 * be ready for a missing or a repeated reply (it has the correlation id).
 *
 * Replies go to the topic in the request's mcp-reply-to header, or the
 * default reply topic. A header that is not a legal topic name, or names
 * a topic outside the reply prefix, is never used (nor is the default
 * then): the reply is dropped and counted. Replying to any topic a
 * request names would let whoever can write the request topic make the
 * server write anywhere it may.
 */
#include "connectors/mcp_kafka.h"

#include "connectors/kafka.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#define MAX_SESSION_ID 128
#define MAX_TOPIC 249 /* Kafka's limit */
#define MAX_KNOWN_TOPICS 1024

struct eddy_mcp_kafka_props_s {
    eddy_kprops_t kp;
    char *application;
};

typedef struct {
    eddy_mcp_kafka_t *b;
    pthread_t thr;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;    /* queue not empty / not full, or stop */
    rd_kafka_message_t **q; /* ring of queue_max */
    int head, n;
} worker_t;

struct eddy_mcp_kafka_s {
    char *request_topic, *default_reply, *prefix, *group, *application;
    char bootstrap[512];
    size_t max_message_bytes; /* the producer's message.max.bytes */
    int queue_max;
    bool earliest; /* auto.offset.reset for partitions without a committed offset */
    rd_kafka_t *consumer, *producer;
    int emb_refs; /* embedded cluster references held */
    eddy_mcp_kafka_handle_cb handle;
    eddy_mcp_kafka_early_cb early;
    void *opaque;
    pthread_t thr;
    bool thr_started;
    atomic_bool stop;
    bool stopped;         /* eddy__mcp_kafka_stop done (caller's thread) */
    pthread_mutex_t lock; /* assigned, assign_err */
    pthread_cond_t ready;
    bool assigned;
    char assign_err[256];
    worker_t *w;
    int nw;
    atomic_uint rr;
    pthread_mutex_t topics_lock;
    rd_kafka_topic_t **topics; /* reply topics whose metadata the producer has */
    int ntopics;
    /* counters */
    atomic_ullong received, replies, sent, no_reply_topic, bad_reply_to, produce_errors;
    atomic_llong last_log_ns; /* warnings at most once a second */
};

/* ------------------------------------------------------------ properties */

/* Properties of the topology's kafka: map meant for the sources only:
 * group.id is the sources' group (ours is another one), and
 * auto.offset.reset=earliest there would make a new MCP group answer every
 * request the topic ever held. --kafka-set may still set them. */
static bool sources_only(const char *key) {
    return !strcmp(key, "group.id") || !strcmp(key, "group.instance.id") ||
           !strcmp(key, "auto.offset.reset");
}

eddy_mcp_kafka_props_t *eddy__mcp_kafka_props_new(eddy_topology_t *topo,
                                                  const char *const *overrides, char *errstr,
                                                  size_t errstr_size) {
    eddy_mcp_kafka_props_t *p = eddy_calloc(1, sizeof(*p));
    const eddy_cnode_t *root = topo ? eddy_topology_root(topo) : NULL;
    const eddy_cnode_t *app = eddy__cnode_get(root, "application");
    p->application = eddy_strdup(app && app->kind == EDDY_CNODE_SCALAR ? app->scalar : "eddy");
    eddy_kprops_t shared = {0};
    if (eddy__kprops_from_cnode(&shared, eddy__cnode_get(root, "kafka"), errstr, errstr_size)) {
        eddy__kprops_free(&shared);
        eddy__mcp_kafka_props_free(p);
        return NULL;
    }
    for (int i = 0; i < shared.n; i++)
        if (!sources_only(shared.keys[i]))
            eddy__kprops_set(&p->kp, shared.keys[i], shared.vals[i]);
    eddy__kprops_free(&shared);
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    for (int i = 0; overrides && overrides[i]; i++) {
        const char *kv = overrides[i], *eq = strchr(kv, '=');
        char key[256], why[256];
        if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
            eddy__seterr(errstr, errstr_size, "kafka property '%s': expected KEY=VALUE", kv);
            goto fail;
        }
        memcpy(key, kv, (size_t)(eq - kv));
        key[eq - kv] = 0;
        if (!(strcmp(key, "bootstrap.servers") == 0 && strcmp(eq + 1, "embedded") == 0) &&
            rd_kafka_conf_set(probe, key, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            eddy__seterr(errstr, errstr_size, "kafka property '%s': %s", key, why);
            goto fail;
        }
        eddy__kprops_set(&p->kp, key, eq + 1);
    }
    rd_kafka_conf_destroy(probe);
    return p;
fail:
    rd_kafka_conf_destroy(probe);
    eddy__mcp_kafka_props_free(p);
    return NULL;
}

void eddy__mcp_kafka_props_free(eddy_mcp_kafka_props_t *p) {
    if (!p)
        return;
    eddy__kprops_free(&p->kp);
    eddy_free(p->application);
    eddy_free(p);
}

/* -------------------------------------------------------------- logging */

static void warnf(eddy_mcp_kafka_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warnf(eddy_mcp_kafka_t *b, const char *fmt, ...) {
    int64_t now = eddy__now_ns(), last = atomic_load(&b->last_log_ns);
    if (now - last < 1000000000LL || !atomic_compare_exchange_strong(&b->last_log_ns, &last, now))
        return;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "eddy: mcp kafka: %s\n", msg);
}

/* ------------------------------------------------------------- messages */

bool eddy__mcp_kafka_reply_topic_ok(const eddy_mcp_kafka_t *b, const char *t) {
    size_t n = strlen(t);
    if (n == 0 || n > MAX_TOPIC || !strcmp(t, ".") || !strcmp(t, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return !b->prefix || !strncmp(t, b->prefix, strlen(b->prefix));
}

/* A request with its headers read (borrowing from rkm). */
typedef struct {
    eddy_mcp_kafka_msg_t pub;
    char reply_to[MAX_TOPIC + 1];
    char session[MAX_SESSION_ID + 1];
    const void *corr;
    size_t corr_len;
    bool has_corr;
    bool reply_to_bad;
    char reply_to_shown[64]; /* the refused header, for the log */
} view_t;

/* The last header named name, in any case (rd_kafka_header_get_last is
 * case-sensitive, and headers typed by hand with kcat -H come in every
 * case), or false. */
static bool header(rd_kafka_headers_t *hdrs, const char *name, const void **val, size_t *len) {
    const char *hn;
    const void *v;
    size_t l;
    bool found = false;
    for (size_t i = 0; hdrs && !rd_kafka_header_get_all(hdrs, i, &hn, &v, &l); i++)
        if (!strcasecmp(hn, name)) {
            *val = v;
            *len = l;
            found = true;
        }
    return found;
}

static void view_read(eddy_mcp_kafka_t *b, rd_kafka_message_t *rkm, view_t *v) {
    memset(v, 0, sizeof(*v));
    eddy_mcp_kafka_msg_t *m = &v->pub;
    m->value = rkm->payload;
    m->len = rkm->len;
    m->tombstone = rkm->payload == NULL;
    m->key = rkm->key;
    m->key_len = rkm->key_len;
    m->topic = rd_kafka_topic_name(rkm->rkt);
    m->partition = rkm->partition;
    m->offset = rkm->offset;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(rkm, &hdrs))
        hdrs = NULL;
    const void *val;
    size_t len;
    if (header(hdrs, EDDY_MCP_KAFKA_REPLY_TO, &val, &len)) {
        if (len <= MAX_TOPIC && val && !memchr(val, 0, len)) {
            memcpy(v->reply_to, val, len);
            v->reply_to[len] = 0;
        }
        if (v->reply_to[0] && eddy__mcp_kafka_reply_topic_ok(b, v->reply_to)) {
            m->reply_topic = v->reply_to;
        } else {
            v->reply_to_bad = true;
            snprintf(v->reply_to_shown, sizeof(v->reply_to_shown), "%.*s",
                     (int)(len < 48 ? len : 48), val ? (const char *)val : "");
        }
    } else {
        m->reply_topic = b->default_reply;
    }
    if (header(hdrs, EDDY_MCP_KAFKA_SESSION_ID, &val, &len)) {
        bool ok = len >= 1 && len <= MAX_SESSION_ID && val;
        for (size_t i = 0; ok && i < len; i++) {
            unsigned char c = ((const unsigned char *)val)[i];
            ok = c >= 0x21 && c <= 0x7e;
        }
        if (ok) {
            memcpy(v->session, val, len);
            v->session[len] = 0;
            m->session_id = v->session;
        } else {
            m->header_error = "the " EDDY_MCP_KAFKA_SESSION_ID
                              " header must be 1 to 128 printable ASCII characters";
        }
    }
    if (header(hdrs, EDDY_MCP_KAFKA_CORRELATION_ID, &val, &len)) {
        v->has_corr = true;
        v->corr = val;
        v->corr_len = len;
    }
}

enum { KIND_REPLY = 1, KIND_SEND = 2 };

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *rkm, void *opaque) {
    (void)rk;
    eddy_mcp_kafka_t *b = opaque;
    if (rkm->err) {
        atomic_fetch_add(&b->produce_errors, 1);
        warnf(b, "a message to topic '%s' was not delivered: %s", rd_kafka_topic_name(rkm->rkt),
              rd_kafka_err2str(rkm->err));
    } else if ((uintptr_t)rkm->_private == KIND_REPLY) {
        atomic_fetch_add(&b->replies, 1);
    } else {
        atomic_fetch_add(&b->sent, 1);
    }
}

/* The first message to a topic librdkafka has not seen waits for its next
 * metadata scan (up to a second); a reply to a new topic would take that
 * long. Asking for the topic's metadata at once takes one round trip.
 * Once per topic (the first MAX_KNOWN_TOPICS), on the producing thread. */
static void know_topic(eddy_mcp_kafka_t *b, const char *topic) {
    bool known = false;
    pthread_mutex_lock(&b->topics_lock);
    for (int i = 0; i < b->ntopics && !known; i++)
        known = !strcmp(rd_kafka_topic_name(b->topics[i]), topic);
    known = known || b->ntopics == MAX_KNOWN_TOPICS;
    pthread_mutex_unlock(&b->topics_lock);
    if (known)
        return;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(b->producer, topic, NULL);
    if (!rkt)
        return;
    const struct rd_kafka_metadata *md = NULL;
    if (!rd_kafka_metadata(b->producer, 0, rkt, &md, 5000))
        rd_kafka_metadata_destroy(md);
    pthread_mutex_lock(&b->topics_lock);
    if (!b->topics)
        b->topics = eddy_calloc(MAX_KNOWN_TOPICS, sizeof(*b->topics));
    if (b->ntopics < MAX_KNOWN_TOPICS) {
        b->topics[b->ntopics++] = rkt; /* a duplicate from a race is harmless */
        rkt = NULL;
    }
    pthread_mutex_unlock(&b->topics_lock);
    if (rkt)
        rd_kafka_topic_destroy(rkt);
}

/* Produce without blocking; headers are taken by librdkafka on success. */
static eddy_err_t produce(eddy_mcp_kafka_t *b, int kind, const char *topic, const void *key,
                          size_t key_len, const char *value, size_t len, rd_kafka_headers_t *hdrs) {
    know_topic(b, topic);
    rd_kafka_resp_err_t e = rd_kafka_producev(
        b->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? key_len : 0),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)kind), RD_KAFKA_V_END);
    if (e) {
        rd_kafka_headers_destroy(hdrs);
        atomic_fetch_add(&b->produce_errors, 1);
        warnf(b, "cannot produce to topic '%s': %s", topic, rd_kafka_err2str(e));
        return e == RD_KAFKA_RESP_ERR__QUEUE_FULL ? EDDY_ERR_FULL : EDDY_ERR_IO;
    }
    return EDDY_OK;
}

static rd_kafka_headers_t *reply_headers(const char *session_id) {
    rd_kafka_headers_t *h = rd_kafka_headers_new(3);
    rd_kafka_header_add(h, "content-type", -1, "application/json", -1);
    if (session_id && *session_id)
        rd_kafka_header_add(h, EDDY_MCP_KAFKA_SESSION_ID, -1, session_id, -1);
    return h;
}

eddy_err_t eddy__mcp_kafka_send(eddy_mcp_kafka_t *b, const char *topic, const void *key,
                                size_t key_len, const char *session_id, const char *value,
                                size_t len) {
    if (!topic || !eddy__mcp_kafka_reply_topic_ok(b, topic))
        return EDDY_ERR_INVAL;
    return produce(b, KIND_SEND, topic, key, key_len, value, len, reply_headers(session_id));
}

/* Handler thread: one request, start to end. */
static void serve(eddy_mcp_kafka_t *b, rd_kafka_message_t *rkm) {
    view_t v;
    view_read(b, rkm, &v);
    eddy_mcp_kafka_reply_t rep;
    memset(&rep, 0, sizeof(rep));
    b->handle(b->opaque, &v.pub, &rep);
    if (!rep.value)
        return;
    if (!v.pub.reply_topic) {
        atomic_fetch_add(v.reply_to_bad ? &b->bad_reply_to : &b->no_reply_topic, 1);
        if (v.reply_to_bad)
            warnf(b,
                  "request at %s[%d]@%lld: " EDDY_MCP_KAFKA_REPLY_TO
                  " '%s' is not a topic replies may go to%s%s%s: reply dropped",
                  v.pub.topic, (int)v.pub.partition, (long long)v.pub.offset, v.reply_to_shown,
                  b->prefix ? " (prefix " : "", b->prefix ? b->prefix : "", b->prefix ? ")" : "");
        else
            warnf(b,
                  "request at %s[%d]@%lld has no " EDDY_MCP_KAFKA_REPLY_TO
                  " header and there is no default reply topic: reply dropped",
                  v.pub.topic, (int)v.pub.partition, (long long)v.pub.offset);
        free(rep.value);
        return;
    }
    rd_kafka_headers_t *h = reply_headers(rep.session_id[0] ? rep.session_id : v.pub.session_id);
    if (v.has_corr)
        rd_kafka_header_add(h, EDDY_MCP_KAFKA_CORRELATION_ID, -1, v.corr, (ssize_t)v.corr_len);
    produce(b, KIND_REPLY, v.pub.reply_topic, v.pub.key, v.pub.key_len, rep.value,
            strlen(rep.value), h);
    free(rep.value);
}

/* --------------------------------------------------------------- queues */

static void *worker_main(void *arg) {
    worker_t *w = arg;
    eddy_mcp_kafka_t *b = w->b;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->n && !atomic_load(&b->stop))
            pthread_cond_wait(&w->cond, &w->lock);
        if (atomic_load(&b->stop)) {
            pthread_mutex_unlock(&w->lock);
            return NULL;
        }
        rd_kafka_message_t *rkm = w->q[w->head];
        w->head = (w->head + 1) % b->queue_max;
        w->n--;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        serve(b, rkm);
        rd_kafka_message_destroy(rkm);
    }
}

static uint64_t fnv64(const void *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= ((const unsigned char *)p)[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Queue rkm on its thread (takes it); waits while that queue is full. */
static void dispatch(eddy_mcp_kafka_t *b, rd_kafka_message_t *rkm, const view_t *v) {
    uint64_t h;
    if (v->pub.session_id)
        h = fnv64(v->pub.session_id, strlen(v->pub.session_id));
    else if (v->pub.key && v->pub.key_len)
        h = fnv64(v->pub.key, v->pub.key_len);
    else
        h = atomic_fetch_add(&b->rr, 1);
    worker_t *w = &b->w[h % (uint64_t)b->nw];
    pthread_mutex_lock(&w->lock);
    while (w->n == b->queue_max && !atomic_load(&b->stop)) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        t.tv_nsec += 100000000;
        if (t.tv_nsec >= 1000000000) {
            t.tv_sec++;
            t.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w->cond, &w->lock, &t);
    }
    if (atomic_load(&b->stop)) {
        pthread_mutex_unlock(&w->lock);
        rd_kafka_message_destroy(rkm);
        return;
    }
    w->q[(w->head + w->n) % b->queue_max] = rkm;
    w->n++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* ------------------------------------------------------------- consumer */

/* Seek each newly assigned partition to the group's committed offset, else
 * its end (or start): decided here, before the bridge says it is ready. */
static void resolve_offsets(eddy_mcp_kafka_t *b, rd_kafka_t *rk,
                            rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, parts, 10000);
    if (e)
        warnf(b, "committed offsets of group '%s': %s", b->group, rd_kafka_err2str(e));
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        if (!e && tp->offset >= 0)
            continue;
        if (b->earliest) {
            tp->offset = RD_KAFKA_OFFSET_BEGINNING;
            continue;
        }
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition, &lo, &hi, 10000))
            tp->offset = RD_KAFKA_OFFSET_END;
        else
            tp->offset = hi;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    eddy_mcp_kafka_t *b = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        resolve_offsets(b, rk, parts);
        rd_kafka_error_t *ae = NULL;
        rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (coop)
            ae = rd_kafka_incremental_assign(rk, parts);
        else
            re = rd_kafka_assign(rk, parts);
        pthread_mutex_lock(&b->lock);
        if (ae || re)
            snprintf(b->assign_err, sizeof(b->assign_err), "assign: %s",
                     ae ? rd_kafka_error_string(ae) : rd_kafka_err2str(re));
        else
            b->assigned = true;
        pthread_cond_broadcast(&b->ready);
        pthread_mutex_unlock(&b->lock);
        if (ae)
            rd_kafka_error_destroy(ae);
    } else if (coop) {
        rd_kafka_error_t *ae = rd_kafka_incremental_unassign(rk, parts);
        if (ae)
            rd_kafka_error_destroy(ae);
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void *consumer_main(void *arg) {
    eddy_mcp_kafka_t *b = arg;
    while (!atomic_load(&b->stop)) {
        rd_kafka_poll(b->producer, 0); /* delivery reports */
        rd_kafka_message_t *rkm = rd_kafka_consumer_poll(b->consumer, 50);
        if (!rkm)
            continue;
        if (rkm->err) {
            if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                warnf(b, "consumer of '%s': %s", b->request_topic, rd_kafka_message_errstr(rkm));
            rd_kafka_message_destroy(rkm);
            continue;
        }
        atomic_fetch_add(&b->received, 1);
        view_t v;
        view_read(b, rkm, &v);
        if (b->early && b->early(b->opaque, &v.pub)) {
            rd_kafka_message_destroy(rkm);
            continue;
        }
        dispatch(b, rkm, &v);
    }
    return NULL;
}

/* ---------------------------------------------------------- life cycle */

static void bridge_free(eddy_mcp_kafka_t *b) {
    if (b->consumer)
        rd_kafka_destroy(b->consumer);
    for (int i = 0; i < b->ntopics; i++)
        rd_kafka_topic_destroy(b->topics[i]);
    eddy_free(b->topics);
    if (b->producer) {
        rd_kafka_flush(b->producer, 5000);
        rd_kafka_destroy(b->producer);
    }
    for (int i = 0; i < b->emb_refs; i++)
        eddy__kafka_embedded_release();
    for (int i = 0; i < b->nw; i++) {
        pthread_mutex_destroy(&b->w[i].lock);
        pthread_cond_destroy(&b->w[i].cond);
        eddy_free(b->w[i].q);
    }
    eddy_free(b->w);
    pthread_mutex_destroy(&b->lock);
    pthread_mutex_destroy(&b->topics_lock);
    pthread_cond_destroy(&b->ready);
    eddy_free(b->request_topic);
    eddy_free(b->default_reply);
    eddy_free(b->prefix);
    eddy_free(b->group);
    eddy_free(b->application);
    eddy_free(b);
}

/* A client with our defaults under the user's properties. */
static rd_kafka_t *client(eddy_mcp_kafka_t *b, const eddy_kprops_t *kp, rd_kafka_type_t type,
                          const char *const (*defaults)[2], size_t ndefaults, char *errstr,
                          size_t errstr_size) {
    bool emb = false;
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(kp, &emb, errstr, errstr_size);
    if (!conf)
        return NULL;
    b->emb_refs += emb;
    for (size_t i = 0; i < ndefaults; i++)
        if (!eddy__kprops_get(kp, defaults[i][0]))
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], NULL, 0);
    if (emb && type == RD_KAFKA_CONSUMER && !eddy__kprops_get(kp, "fetch.wait.max.ms"))
        /* the mock broker holds every fetch this long even when data
         * arrives (a real broker answers at once): it is the latency */
        rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", NULL, 0);
    char cid[300];
    snprintf(cid, sizeof(cid), "eddy-%s-mcp", b->application);
    if (!eddy__kprops_get(kp, "client.id"))
        rd_kafka_conf_set(conf, "client.id", cid, NULL, 0);
    size_t bl = sizeof(b->bootstrap);
    rd_kafka_conf_get(conf, "bootstrap.servers", b->bootstrap, &bl);
    rd_kafka_conf_set_opaque(conf, b);
    if (type == RD_KAFKA_CONSUMER) {
        rd_kafka_conf_set(conf, "group.id", b->group, NULL, 0);
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    } else {
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        char mb[32];
        size_t mbl = sizeof(mb);
        if (rd_kafka_conf_get(conf, "message.max.bytes", mb, &mbl) == RD_KAFKA_CONF_OK)
            b->max_message_bytes = (size_t)strtoull(mb, NULL, 10);
    }
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, errstr_size, "kafka %s: %s",
                     type == RD_KAFKA_CONSUMER ? "consumer" : "producer", why);
    }
    return rk;
}

eddy_mcp_kafka_t *eddy__mcp_kafka_start(const eddy_mcp_kafka_opts_t *o,
                                        const eddy_mcp_kafka_props_t *props,
                                        eddy_mcp_kafka_handle_cb handle,
                                        eddy_mcp_kafka_early_cb early, void *opaque,
                                        eddy_mcp_kafka_t *_Atomic *bound, int ready_timeout_ms,
                                        char *errstr, size_t errstr_size) {
    if (!o->request_topic || !*o->request_topic) {
        eddy__seterr(errstr, errstr_size, "kafka: no request topic");
        return NULL;
    }
    eddy_mcp_kafka_t *b = eddy_calloc(1, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
    pthread_mutex_init(&b->topics_lock, NULL);
    pthread_cond_init(&b->ready, NULL);
    b->handle = handle;
    b->early = early;
    b->opaque = opaque;
    if (bound)
        atomic_store(bound, b);
    b->request_topic = eddy_strdup(o->request_topic);
    b->default_reply = o->default_reply_topic ? eddy_strdup(o->default_reply_topic) : NULL;
    b->prefix = o->reply_prefix && *o->reply_prefix ? eddy_strdup(o->reply_prefix) : NULL;
    b->application = eddy_strdup(o->application ? o->application
                                 : props        ? props->application
                                                : "eddy");
    const char *gid = o->group_id ? o->group_id : eddy__kprops_get(&props->kp, "group.id");
    b->group = gid ? eddy_strdup(gid) : eddy_asprintf("%s-mcp", b->application);
    b->queue_max = o->queue_max > 0 ? o->queue_max : 1000;
    const char *reset = eddy__kprops_get(&props->kp, "auto.offset.reset");
    b->earliest = reset && (!strcmp(reset, "earliest") || !strcmp(reset, "smallest") ||
                            !strcmp(reset, "beginning"));
    if (b->default_reply && !eddy__mcp_kafka_reply_topic_ok(b, b->default_reply)) {
        eddy__seterr(errstr, errstr_size,
                     "kafka: default reply topic '%s' is not a legal topic name%s%s",
                     b->default_reply, b->prefix ? " inside the reply prefix " : "",
                     b->prefix ? b->prefix : "");
        bridge_free(b);
        return NULL;
    }
    static const char *const cdefaults[][2] = {{"enable.partition.eof", "false"},
                                               {"session.timeout.ms", "10000"},
                                               {"heartbeat.interval.ms", "1000"}};
    static const char *const pdefaults[][2] = {{"linger.ms", "0"}, {"message.timeout.ms", "30000"}};
    if (!(b->producer =
              client(b, &props->kp, RD_KAFKA_PRODUCER, pdefaults, 2, errstr, errstr_size)) ||
        !(b->consumer =
              client(b, &props->kp, RD_KAFKA_CONSUMER, cdefaults, 3, errstr, errstr_size))) {
        bridge_free(b);
        return NULL;
    }
    /* the request topic must exist (created on the embedded cluster, which
     * the clients above hold) */
    int nparts = 0;
    if (eddy__kafka_partitions(&props->kp, b->request_topic, 1, 10000, &nparts, errstr,
                               errstr_size)) {
        bridge_free(b);
        return NULL;
    }
    if (b->emb_refs && b->default_reply &&
        eddy__kafka_embedded_topic(b->default_reply, 1, errstr, errstr_size)) {
        bridge_free(b);
        return NULL;
    }
    b->nw = o->threads > 0 ? o->threads : 4;
    b->w = eddy_calloc((size_t)b->nw, sizeof(worker_t));
    for (int i = 0; i < b->nw; i++) {
        worker_t *w = &b->w[i];
        w->b = b;
        w->q = eddy_calloc((size_t)b->queue_max, sizeof(*w->q));
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
    }
    if (eddy__kafka_subscribe(b->consumer, b->request_topic, errstr, errstr_size)) {
        bridge_free(b);
        return NULL;
    }
    for (int i = 0; i < b->nw; i++)
        b->w[i].started = !pthread_create(&b->w[i].thr, NULL, worker_main, &b->w[i]);
    b->thr_started = !pthread_create(&b->thr, NULL, consumer_main, b);
    bool threads_ok = b->thr_started;
    for (int i = 0; i < b->nw; i++)
        threads_ok = threads_ok && b->w[i].started;
    if (!threads_ok) {
        eddy__seterr(errstr, errstr_size, "kafka: cannot start the bridge's threads");
        eddy__mcp_kafka_destroy(b);
        return NULL;
    }
    /* ready when the group has assigned this member its partitions */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ready_timeout_ms / 1000;
    until.tv_nsec += (long)(ready_timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->lock);
    int rc = 0;
    while (!b->assigned && !b->assign_err[0] && rc == 0)
        rc = pthread_cond_timedwait(&b->ready, &b->lock, &until);
    bool ok = b->assigned;
    char why[256];
    snprintf(why, sizeof(why), "%s", b->assign_err);
    pthread_mutex_unlock(&b->lock);
    if (!ok) {
        if (why[0])
            eddy__seterr(errstr, errstr_size, "kafka: consumer group '%s' on '%s': %s", b->group,
                         b->request_topic, why);
        else
            eddy__seterr(errstr, errstr_size,
                         "kafka: consumer group '%s' was not assigned the partitions of '%s' "
                         "within %d ms (cluster %s)",
                         b->group, b->request_topic, ready_timeout_ms, b->bootstrap);
        eddy__mcp_kafka_destroy(b);
        return NULL;
    }
    return b;
}

const char *eddy__mcp_kafka_bootstrap(const eddy_mcp_kafka_t *b) {
    return b->bootstrap;
}
const char *eddy__mcp_kafka_group(const eddy_mcp_kafka_t *b) {
    return b->group;
}

size_t eddy__mcp_kafka_max_value_bytes(const eddy_mcp_kafka_t *b, size_t key_len) {
    /* batch and record framing, the key, and the headers we add (an echoed
     * correlation id longer than a few hundred bytes may still not fit:
     * the cluster then refuses the reply, and that is counted) */
    size_t overhead = 512 + key_len;
    return b->max_message_bytes > overhead ? b->max_message_bytes - overhead : 0;
}

void eddy__mcp_kafka_stats(eddy_mcp_kafka_t *b, eddy_mcp_kafka_stats_t *out) {
    out->received = atomic_load(&b->received);
    out->replies = atomic_load(&b->replies);
    out->sent = atomic_load(&b->sent);
    out->no_reply_topic = atomic_load(&b->no_reply_topic);
    out->bad_reply_to = atomic_load(&b->bad_reply_to);
    out->produce_errors = atomic_load(&b->produce_errors);
}

void eddy__mcp_kafka_stop(eddy_mcp_kafka_t *b) {
    if (!b || b->stopped)
        return;
    b->stopped = true;
    atomic_store(&b->stop, true);
    if (b->thr_started)
        pthread_join(b->thr, NULL);
    for (int i = 0; i < b->nw; i++) {
        worker_t *w = &b->w[i];
        pthread_mutex_lock(&w->lock);
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->started)
            pthread_join(w->thr, NULL);
        /* librdkafka's close waits until every message is destroyed */
        for (; w->n; w->n--, w->head = (w->head + 1) % b->queue_max)
            rd_kafka_message_destroy(w->q[w->head]);
    }
    if (b->consumer)
        rd_kafka_consumer_close(b->consumer);
}

void eddy__mcp_kafka_destroy(eddy_mcp_kafka_t *b) {
    if (!b)
        return;
    eddy__mcp_kafka_stop(b);
    bridge_free(b);
}
