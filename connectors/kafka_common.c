/*
 * Kafka plumbing shared by the Kafka connectors: librdkafka properties from
 * the topology, the embedded mock cluster, topic metadata.
 */
#include "connectors/kafka.h"
#include "cfg.h"

#include <jansson.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* ------------------------------------------------------------ properties */

void eddy__kprops_set(eddy_kprops_t *p, const char *key, const char *val) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->keys[i], key)) {
            eddy_free(p->vals[i]);
            p->vals[i] = eddy_strdup(val);
            return;
        }
    p->keys = eddy_realloc(p->keys, sizeof(char *) * (size_t)(p->n + 1));
    p->vals = eddy_realloc(p->vals, sizeof(char *) * (size_t)(p->n + 1));
    p->keys[p->n] = eddy_strdup(key);
    p->vals[p->n] = eddy_strdup(val);
    p->n++;
}

const char *eddy__kprops_get(const eddy_kprops_t *p, const char *key) {
    for (int i = 0; p && i < p->n; i++)
        if (!strcmp(p->keys[i], key))
            return p->vals[i];
    return NULL;
}

bool eddy__kprops_same(const eddy_kprops_t *a, const eddy_kprops_t *b) {
    if (a->n != b->n)
        return false;
    for (int i = 0; i < a->n; i++) {
        const char *v = eddy__kprops_get(b, a->keys[i]);
        if (!v || strcmp(v, a->vals[i]))
            return false;
    }
    return true;
}

void eddy__kprops_copy(eddy_kprops_t *dst, const eddy_kprops_t *src) {
    for (int i = 0; src && i < src->n; i++)
        eddy__kprops_set(dst, src->keys[i], src->vals[i]);
}

void eddy__kprops_free(eddy_kprops_t *p) {
    for (int i = 0; i < p->n; i++) {
        eddy_free(p->keys[i]);
        eddy_free(p->vals[i]);
    }
    eddy_free(p->keys);
    eddy_free(p->vals);
    memset(p, 0, sizeof(*p));
}

bool eddy__kprops_embedded(const eddy_kprops_t *p) {
    const char *bs = eddy__kprops_get(p, "bootstrap.servers");
    return !bs || !*bs || !strcmp(bs, "embedded");
}

eddy_err_t eddy__kprops_from_cnode(eddy_kprops_t *p, const eddy_cnode_t *map, char *errstr,
                                   size_t errstr_size) {
    if (!map)
        return EDDY_OK;
    if (map->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(map, errstr, errstr_size,
                               "kafka: expected a mapping of librdkafka properties, e.g. "
                               "{bootstrap.servers: localhost:9092}");
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    eddy_err_t err = EDDY_OK;
    for (int i = 0; i < map->n; i++) {
        const eddy_cnode_t *v = map->items[i];
        const char *key = map->keys[i];
        if (v->kind != EDDY_CNODE_SCALAR) {
            err = eddy__cnode_err(v, errstr, errstr_size,
                                  "kafka: property '%s' must be a scalar value", key);
            break;
        }
        char why[256];
        rd_kafka_conf_res_t r = RD_KAFKA_CONF_OK;
        /* "embedded" is ours; librdkafka accepts any bootstrap string */
        if (!(strcmp(key, "bootstrap.servers") == 0 && strcmp(v->scalar, "embedded") == 0))
            r = rd_kafka_conf_set(probe, key, v->scalar, why, sizeof(why));
        if (r != RD_KAFKA_CONF_OK) {
            err = eddy__cnode_err(r == RD_KAFKA_CONF_UNKNOWN ? map->key_nodes[i] : v, errstr,
                                  errstr_size, "kafka: property '%s': %s", key, why);
            break;
        }
        eddy__kprops_set(p, key, v->scalar);
    }
    rd_kafka_conf_destroy(probe);
    return err;
}

/* ------------------------------------------------------ embedded cluster */

static pthread_mutex_t emb_lock = PTHREAD_MUTEX_INITIALIZER;
static int emb_refs;
static rd_kafka_t *emb_rk;
static rd_kafka_mock_cluster_t *emb_mc;

#define EMBEDDED_BROKERS 3

eddy_err_t eddy__kafka_embedded_acquire(char *bootstrap, size_t size, char *errstr,
                                        size_t errstr_size) {
    pthread_mutex_lock(&emb_lock);
    if (!emb_mc) {
        char why[256];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "client.id", "eddy-embedded-kafka", NULL, 0);
        rd_kafka_conf_set_log_cb(conf, eddy__kafka_log_cb);
        emb_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
        if (!emb_rk) {
            rd_kafka_conf_destroy(conf);
            pthread_mutex_unlock(&emb_lock);
            eddy__seterr(errstr, errstr_size, "embedded kafka: %s", why);
            return EDDY_ERR_IO;
        }
        emb_mc = rd_kafka_mock_cluster_new(emb_rk, EMBEDDED_BROKERS);
        if (emb_mc)
            fprintf(stderr, "eddy: embedded kafka (librdkafka mock cluster, %d brokers) at %s\n",
                    EMBEDDED_BROKERS, rd_kafka_mock_cluster_bootstraps(emb_mc));
        if (!emb_mc) {
            rd_kafka_destroy(emb_rk);
            emb_rk = NULL;
            pthread_mutex_unlock(&emb_lock);
            eddy__seterr(errstr, errstr_size,
                         "embedded kafka: cannot start the mock cluster (no free port on "
                         "127.0.0.1?)");
            return EDDY_ERR_IO;
        }
    }
    emb_refs++;
    if (bootstrap)
        snprintf(bootstrap, size, "%s", rd_kafka_mock_cluster_bootstraps(emb_mc));
    pthread_mutex_unlock(&emb_lock);
    return EDDY_OK;
}

void eddy__kafka_embedded_release(void) {
    pthread_mutex_lock(&emb_lock);
    if (emb_refs > 0 && --emb_refs == 0) {
        rd_kafka_mock_cluster_destroy(emb_mc);
        rd_kafka_destroy(emb_rk);
        emb_mc = NULL;
        emb_rk = NULL;
    }
    pthread_mutex_unlock(&emb_lock);
}

bool eddy__kafka_embedded_hold(void) {
    pthread_mutex_lock(&emb_lock);
    bool held = emb_mc != NULL;
    if (held)
        emb_refs++;
    pthread_mutex_unlock(&emb_lock);
    return held;
}

struct rd_kafka_mock_cluster_s *eddy__kafka_embedded_cluster(void) {
    pthread_mutex_lock(&emb_lock);
    rd_kafka_mock_cluster_t *mc = emb_mc;
    pthread_mutex_unlock(&emb_lock);
    return mc;
}

eddy_err_t eddy__kafka_embedded_topic(const char *topic, int partitions, char *errstr,
                                      size_t errstr_size) {
    pthread_mutex_lock(&emb_lock);
    rd_kafka_resp_err_t e = emb_mc ? rd_kafka_mock_topic_create(emb_mc, topic, partitions,
                                                                EMBEDDED_BROKERS < 3 ? 1 : 3)
                                   : RD_KAFKA_RESP_ERR__STATE;
    pthread_mutex_unlock(&emb_lock);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        eddy__seterr(errstr, errstr_size, "embedded kafka: cannot create topic '%s': %s", topic,
                     rd_kafka_err2str(e));
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

/* ------------------------------------------------------------ clients */

void eddy__kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (level > 4) /* LOG_WARNING */
        return;
    /* a consumer property in a shared kafka: map reaching a producer (or
     * the reverse) is expected; misspelt properties fail at compile */
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "will be ignored by this"))
        return;
    /* group offsets are advisory (positions live in the state) and the
     * next commit sends them again */
    if (!strcmp(fac, "COMMITFAIL") && strstr(buf, "rebalance in progress"))
        return;
    fprintf(stderr, "eddy: kafka %s: %s: %s\n", rk ? rd_kafka_name(rk) : "-", fac, buf);
}

rd_kafka_conf_t *eddy__kafka_conf_new(const eddy_kprops_t *p, bool *embedded_ref, char *errstr,
                                      size_t errstr_size) {
    *embedded_ref = false;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    for (int i = 0; p && i < p->n; i++) {
        if (!strcmp(p->keys[i], "bootstrap.servers"))
            continue;
        if (rd_kafka_conf_set(conf, p->keys[i], p->vals[i], why, sizeof(why))) {
            eddy__seterr(errstr, errstr_size, "kafka: property '%s': %s", p->keys[i], why);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    char bs[512];
    if (eddy__kprops_embedded(p)) {
        if (eddy__kafka_embedded_acquire(bs, sizeof(bs), errstr, errstr_size)) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
        *embedded_ref = true;
    } else {
        snprintf(bs, sizeof(bs), "%s", eddy__kprops_get(p, "bootstrap.servers"));
    }
    rd_kafka_conf_set(conf, "bootstrap.servers", bs, NULL, 0);
    rd_kafka_conf_set_log_cb(conf, eddy__kafka_log_cb);
    return conf;
}

eddy_err_t eddy__kafka_partitions(const eddy_kprops_t *p, const char *topic,
                                  int create_partitions, int timeout_ms, int *out, char *errstr,
                                  size_t errstr_size) {
    bool emb = false;
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(p, &emb, errstr, errstr_size);
    if (!conf)
        return EDDY_ERR_CONFIG;
    /* metadata requests must not create topics on a real broker */
    rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", NULL, 0);
    char why[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        if (emb)
            eddy__kafka_embedded_release();
        eddy__seterr(errstr, errstr_size, "kafka: %s", why);
        return EDDY_ERR_CONFIG;
    }
    eddy_err_t err = EDDY_OK;
    if (emb && create_partitions > 0 &&
        (err = eddy__kafka_embedded_topic(topic, create_partitions, errstr, errstr_size)))
        goto done;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int64_t deadline = eddy__now_ns() + (int64_t)timeout_ms * 1000000LL;
    rd_kafka_resp_err_t e;
    for (;;) {
        int left = (int)((deadline - eddy__now_ns()) / 1000000LL);
        e = rd_kafka_metadata(rk, 0, rkt, &md, left > 100 ? left : 100);
        if (!e && md->topic_cnt == 1 &&
            md->topics[0].err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE &&
            eddy__now_ns() < deadline) {
            /* just created: leaders not elected yet */
            rd_kafka_metadata_destroy(md);
            md = NULL;
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        break;
    }
    if (e) {
        eddy__seterr(errstr, errstr_size, "kafka %s: metadata for topic '%s': %s",
                     eddy__kprops_embedded(p) ? "embedded"
                                              : eddy__kprops_get(p, "bootstrap.servers"),
                     topic, rd_kafka_err2str(e));
        err = EDDY_ERR_IO;
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        rd_kafka_resp_err_t te = md->topic_cnt == 1 ? md->topics[0].err
                                                    : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        eddy__seterr(errstr, errstr_size, "kafka: topic '%s': %s", topic, rd_kafka_err2str(te));
        err = te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? EDDY_ERR_NOENT : EDDY_ERR_IO;
    } else {
        *out = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
done:
    rd_kafka_destroy(rk);
    if (emb)
        eddy__kafka_embedded_release();
    return err;
}

eddy_err_t eddy__kafka_create_topic(const eddy_kprops_t *p, const char *topic, int partitions,
                                    const char *configs, int timeout_ms, char *errstr,
                                    size_t errstr_size) {
    bool emb = false;
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(p, &emb, errstr, errstr_size);
    if (!conf)
        return EDDY_ERR_CONFIG;
    if (emb) {
        /* the mock cluster answers CreateTopics with a timeout */
        rd_kafka_conf_destroy(conf);
        eddy_err_t e = eddy__kafka_embedded_topic(topic, partitions, errstr, errstr_size);
        eddy__kafka_embedded_release();
        return e;
    }
    char why[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, errstr_size, "kafka: %s", why);
        return EDDY_ERR_CONFIG;
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, sizeof(why));
    eddy_err_t err = EDDY_OK;
    if (!nt) {
        eddy__seterr(errstr, errstr_size, "kafka: topic '%s': %s", topic, why);
        rd_kafka_destroy(rk);
        return EDDY_ERR_INVAL;
    }
    if (configs) {
        char *dup = eddy_strdup(configs), *save = NULL;
        for (char *kv = strtok_r(dup, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = 0;
                rd_kafka_NewTopic_set_config(nt, kv, eq + 1);
            }
        }
        eddy_free(dup);
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opt, timeout_ms, NULL, 0);
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 2000);
    if (!ev) {
        eddy__seterr(errstr, errstr_size, "kafka: creating topic '%s': no answer in %d ms",
                     topic, timeout_ms);
        err = EDDY_ERR_IO;
    } else if (rd_kafka_event_error(ev)) {
        eddy__seterr(errstr, errstr_size, "kafka: creating topic '%s': %s", topic,
                     rd_kafka_event_error_string(ev));
        err = EDDY_ERR_IO;
    } else {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[i]);
            if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                eddy__seterr(errstr, errstr_size, "kafka: creating topic '%s': %s", topic,
                             rd_kafka_topic_result_error_string(tr[i]));
                err = EDDY_ERR_IO;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return err;
}

eddy_err_t eddy__kafka_subscribe(rd_kafka_t *rk, const char *topic, char *errstr,
                                 size_t errstr_size) {
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (!e)
        return EDDY_OK;
    eddy__seterr(errstr, errstr_size, "kafka: subscribe to '%s': %s", topic, rd_kafka_err2str(e));
    return EDDY_ERR_IO;
}

eddy_err_t eddy__kafka_ensure_topic(const eddy_kprops_t *p, const char *topic, int partitions,
                                    bool more_ok, const char *configs, const char *kind,
                                    int timeout_ms, char *errstr, size_t errstr_size) {
    int np = 0;
    /* the embedded cluster makes a topic it is asked about with its own
     * partition count: create first there (an existing one is kept) */
    eddy_err_t e = eddy__kprops_embedded(p) ? EDDY_ERR_NOENT
                                            : eddy__kafka_partitions(p, topic, 0, timeout_ms, &np,
                                                                     errstr, errstr_size);
    if (e == EDDY_ERR_NOENT) {
        if ((e = eddy__kafka_create_topic(p, topic, partitions, configs, timeout_ms, errstr,
                                          errstr_size)))
            return e;
        /* metadata catches up with a new topic shortly */
        int64_t deadline = eddy__now_ns() + (int64_t)timeout_ms * 1000000LL;
        do {
            e = eddy__kafka_partitions(p, topic, 0, timeout_ms, &np, errstr, errstr_size);
            if (e == EDDY_ERR_NOENT) {
                struct timespec ts = {0, 100 * 1000000L};
                nanosleep(&ts, NULL);
            }
        } while (e == EDDY_ERR_NOENT && eddy__now_ns() < deadline);
    }
    if (e)
        return e;
    if (np != partitions && !(more_ok && np > partitions)) {
        eddy__seterr(errstr, errstr_size,
                     "kafka: %s topic '%s' has %d partitions, but the input has %d "
                     "(one per task): delete it or give the application another name",
                     kind, topic, np, partitions);
        return EDDY_ERR_CONFIG;
    }
    return EDDY_OK;
}

bool eddy__kafka_err_transient(rd_kafka_t *rk, rd_kafka_resp_err_t err) {
    if (err == RD_KAFKA_RESP_ERR__FATAL && rk) {
        char why[256];
        err = rd_kafka_fatal_error(rk, why, sizeof(why));
    }
    switch (err) {
    /* another producer with this transactional.id took over: going on
     * would fence it in turn */
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    /* a consumer with this instance's group.instance.id took over (static
     * membership): rejoining would fence it in turn */
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
    /* refused for good: the same record or request would be again */
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_REQUIRED_ACKS:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION:
    case RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
        return false;
    default:
        return true;
    }
}

void eddy__kfail(eddy_kfail_t *f, bool transient, const char *fmt, ...) {
    if (!transient)
        f->permanent = true;
    if (!f->failed++ || f->why_purged) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->why, sizeof(f->why), fmt, ap);
        va_end(ap);
    }
    f->why_purged = false;
}

void eddy__kfail_delivery(eddy_kfail_t *f, rd_kafka_t *rk, const rd_kafka_message_t *m,
                          bool closing, const char *kind) {
    bool purged =
        m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    if (closing && purged)
        return;
    /* records purged by an aborted transaction: the abort's cause (a
     * refused commit) names the failure, not they */
    if (purged && f->failed) {
        f->failed++;
        return;
    }
    eddy__kfail(f, eddy__kafka_err_transient(rk, m->err),
                "delivery to %s '%s' partition %d failed: %s", kind, rd_kafka_topic_name(m->rkt),
                (int)m->partition, rd_kafka_err2str(m->err));
    f->why_purged = purged;
}

void eddy__kfail_text(const eddy_kfail_t *f, char *buf, size_t size) {
    if (f->failed > 1)
        snprintf(buf, size, "%s (and %llu more failures)", f->why,
                 (unsigned long long)(f->failed - 1));
    else
        snprintf(buf, size, "%s", f->why);
}

eddy_err_t eddy__kfail_err(const eddy_kfail_t *f) {
    return f->permanent ? EDDY_ERR_IO : EDDY_ERR_TRANSIENT;
}

static _Atomic uint64_t txn_begins, txn_commits, txn_offsets;

void eddy__ktxn_count_begin(void) { atomic_fetch_add(&txn_begins, 1); }
void eddy__ktxn_count_offsets(void) { atomic_fetch_add(&txn_offsets, 1); }
void eddy__ktxn_counts(uint64_t *begins, uint64_t *commits, uint64_t *offsets_sent) {
    *begins = atomic_load(&txn_begins);
    *commits = atomic_load(&txn_commits);
    *offsets_sent = atomic_load(&txn_offsets);
}

bool eddy__kafka_txn_commit(rd_kafka_t *rk, const eddy_ktxo_t *offsets, bool *in_txn,
                            bool *transient, char *why, size_t why_size) {
    const char *what = "send_offsets_to_transaction";
    rd_kafka_error_t *e = eddy__ktxo_send(offsets, rk);
    for (int attempt = 0; !e; attempt++) {
        what = "commit_transaction";
        e = rd_kafka_commit_transaction(rk, 60000);
        if (!e) {
            atomic_fetch_add(&txn_commits, 1);
            *in_txn = false;
            return true;
        }
        if (rd_kafka_error_is_retriable(e) && attempt < 10) {
            rd_kafka_error_destroy(e);
            e = NULL;
        }
    }
    snprintf(why, why_size, "%s: %s", what, rd_kafka_error_string(e));
    /* an abortable error is transient unless its cause would come back
     * (a fenced group member, authorization): the refusal of a consumer
     * generation that a rebalance made stale is, and the engine rejoins */
    *transient = eddy__kafka_err_transient(rk, rd_kafka_error_code(e));
    if (rd_kafka_error_txn_requires_abort(e)) {
        /* the round's output is discarded; its input is replayed */
        rd_kafka_error_t *a = rd_kafka_abort_transaction(rk, 60000);
        if (!a)
            *in_txn = false;
        else
            rd_kafka_error_destroy(a);
    }
    rd_kafka_error_destroy(e);
    return false;
}

/* ------------------------------------------------- read progress */

void eddy__kprogress_start(eddy_kprogress_t *p, int64_t pos, int64_t now_ns) {
    p->from = p->delivered = pos;
    p->fetched = -1;
    p->since_ns = now_ns;
}

bool eddy__kprogress_stalled(eddy_kprogress_t *p, int64_t delivered, int64_t fetched,
                             int64_t now_ns, int64_t limit_ns) {
    bool moved = delivered > p->delivered;
    if (moved)
        p->delivered = delivered;
    if (fetched >= p->from && fetched != p->fetched) {
        moved |= p->fetched >= 0;
        p->fetched = fetched;
    }
    if (moved) {
        p->since_ns = now_ns;
        return false;
    }
    return now_ns - p->since_ns > limit_ns;
}

int64_t eddy__kstats_fetch_pos(const char *json, size_t len, const char *topic, int partition) {
    json_t *root = json_loadb(json, len, 0, NULL);
    char part[16];
    snprintf(part, sizeof(part), "%d", partition);
    json_t *v = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(root, "topics"), topic), "partitions"),
            part),
        "next_offset");
    int64_t pos = json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
    json_decref(root);
    return pos;
}
