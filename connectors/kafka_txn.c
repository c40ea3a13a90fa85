/*
 * One transactional producer per stream thread, shared by the thread's
 * Kafka sinks and its repartition records (exactly_once; see
 * kafka_txn.h and docs/kafka.md, "Delivery guarantees"). Its users begin
 * the transaction when they first produce after a commit; the engine
 * commits it once per thread and round, with the round's input offsets,
 * after the sinks with producers of their own committed theirs.
 *
 * The Kafka changelog (state.changelog: kafka) writes each commit's
 * records and marker into the same transaction (kafka_changelog.c), in the
 * prepare, which then comes before the commit (engine/engine.c).
 *
 * Threads: producer t is used by stream thread t only (its delivery
 * reports too: they are served by that thread's polls); opening and
 * closing take the lock (tasks open on the engine's or the recovery
 * thread).
 */
#include "connectors/kafka_txn.h"
#include "connectors/kafka.h"
#include "plan.h"

#include <pthread.h>
#include <stdlib.h>

struct eddy_ktxn_s {
    eddy_kprops_t props; /* the sink's producer defaults, then kafka: */
    const eddy_plan_t *plan;
    pthread_mutex_t lock;
    eddy_kprod_t *thr; /* [nthr] */
    int nthr;
    bool reports; /* every delivery reported (the Kafka changelog counts them) */
};

/* Throughput defaults; any of them can be overridden by a kafka: map. */
static const char *const producer_defaults[][2] = {
    {"enable.idempotence", "true"},
    {"linger.ms", "5"},
    {"batch.num.messages", "10000"},
    {"compression.codec", "none"},
    /* murmur2 like the Java client: keyed records land where Kafka
     * Streams and other JVM producers would put them */
    {"partitioner", "murmur2_random"},
    {"delivery.report.only.error", "true"},
};

void eddy__kprops_producer_defaults(eddy_kprops_t *p) {
    for (size_t i = 0; i < sizeof(producer_defaults) / sizeof(producer_defaults[0]); i++)
        eddy__kprops_set(p, producer_defaults[i][0], producer_defaults[i][1]);
}

eddy_ktxn_t *eddy__ktxn_new(const eddy_cnode_t *kafka, const eddy_plan_t *plan, char *errstr,
                            size_t errstr_size) {
    eddy_ktxn_t *k = eddy_calloc(1, sizeof(*k));
    pthread_mutex_init(&k->lock, NULL);
    k->plan = plan;
    eddy__kprops_producer_defaults(&k->props);
    if (eddy__kprops_from_cnode(&k->props, kafka, errstr, errstr_size)) {
        eddy__ktxn_destroy(k);
        return NULL;
    }
    return k;
}

void eddy__ktxn_all_reports(eddy_ktxn_t *k) { k->reports = true; }

const eddy_kprops_t *eddy__ktxn_props(const eddy_ktxn_t *k) { return &k->props; }

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    eddy_kprod_t *p = opaque;
    if (m->_private) /* the Kafka changelog's (the sinks' have no opaque) */
        eddy__kcl_delivery(rk, m);
    if (m->err)
        eddy__kfail_delivery(&p->f, rk, m, p->closing, "topic");
}

void eddy__kprod_discard(rd_kafka_t *rk, bool in_txn) {
    if (in_txn) {
        rd_kafka_error_t *e = rd_kafka_abort_transaction(rk, 10000);
        if (e)
            rd_kafka_error_destroy(e);
    }
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, 1000);
}

void eddy__kprod_queue_limit(rd_kafka_conf_t *conf, const eddy_kprops_t *p,
                             const eddy_plan_t *plan) {
    int64_t mem = plan->settings.memory_bytes;
    if (!mem || eddy__kprops_get(p, "queue.buffering.max.kbytes"))
        return;
    char kb[32];
    int th = plan->settings.threads > 0 ? plan->settings.threads : 1;
    int64_t kib = mem / 16 / 1024 / th;
    snprintf(kb, sizeof(kb), "%lld", (long long)(kib < 1024 ? 1024 : kib));
    rd_kafka_conf_set(conf, "queue.buffering.max.kbytes", kb, NULL, 0);
}

static void prod_close(eddy_kprod_t *p) {
    if (!p->rk)
        return;
    p->closing = true;
    eddy__kprod_discard(p->rk, p->in_txn);
    rd_kafka_destroy(p->rk);
    if (p->embedded_ref)
        eddy__kafka_embedded_release();
    int thread = p->thread;
    memset(p, 0, sizeof(*p));
    p->thread = thread;
}

rd_kafka_t *eddy__kprod_open(const eddy_kprops_t *props, const eddy_plan_t *plan,
                             const char *id, bool transactional, bool all_reports,
                             void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                             void *opaque, bool *embedded_ref, eddy_err_t *err, char *why,
                             size_t why_size) {
    *err = EDDY_ERR_CONFIG;
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(props, embedded_ref, why, why_size);
    if (!conf)
        return NULL;
    if (!eddy__kprops_get(props, "client.id"))
        rd_kafka_conf_set(conf, "client.id", id, NULL, 0);
    if (transactional)
        rd_kafka_conf_set(conf, "transactional.id", id, NULL, 0);
    if (all_reports)
        rd_kafka_conf_set(conf, "delivery.report.only.error", "false", NULL, 0);
    /* memory.max.bytes: the producer then blocks the stream thread
     * (backpressure), it does not grow */
    eddy__kprod_queue_limit(conf, props, plan);
    rd_kafka_conf_set_dr_msg_cb(conf, dr);
    rd_kafka_conf_set_opaque(conf, opaque);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, why_size);
    rd_kafka_error_t *e = NULL;
    if (!rk) {
        rd_kafka_conf_destroy(conf);
    } else if (transactional && (e = rd_kafka_init_transactions(rk, 30000))) {
        eddy__seterr(why, why_size, "transactional producer '%s': init_transactions: %s", id,
                     rd_kafka_error_string(e));
        /* a coordinator still loading after the failure that caused a
         * recovery is worth another recovery, not a stop */
        *err = eddy__kafka_err_transient(rk, rd_kafka_error_code(e)) ? EDDY_ERR_TRANSIENT
                                                                     : EDDY_ERR_IO;
        rd_kafka_error_destroy(e);
        rd_kafka_destroy(rk);
        rk = NULL;
    } else {
        *err = EDDY_OK;
        return rk;
    }
    if (*embedded_ref)
        eddy__kafka_embedded_release();
    *embedded_ref = false;
    return NULL;
}

/* one per instance and thread: instances of one application must not
 * fence each other, a restarted instance fences its predecessor */
static void txn_id(const eddy_ktxn_t *k, int thread, char *id, size_t size) {
    snprintf(id, size, "%s-txn-%s-%d", k->plan->application, k->plan->instance_id, thread);
}

static void open_err(eddy_err_t err, const char *id, const char *why, char *errstr, size_t n) {
    if (err == EDDY_ERR_CONFIG)
        eddy__seterr(errstr, n, "transactional producer '%s': %s", id, why);
    else if (err)
        eddy__seterr(errstr, n, "%s", why);
}

static eddy_err_t prod_open(eddy_ktxn_t *k, eddy_kprod_t *p, char *errstr, size_t n) {
    char why[512];
    txn_id(k, p->thread, p->id, sizeof(p->id));
    eddy_err_t err;
    p->rk = eddy__kprod_open(&k->props, k->plan, p->id, true, k->reports, dr_cb, p,
                             &p->embedded_ref, &err, why, sizeof(why));
    open_err(err, p->id, why, errstr, n);
    return err;
}

eddy_err_t eddy__ktxn_fence(eddy_ktxn_t *k, int thread, char *errstr, size_t errstr_size) {
    char id[200], why[512];
    txn_id(k, thread, id, sizeof(id));
    bool embedded_ref = false;
    eddy_err_t err;
    /* init_transactions is the fence: it returns once the id's last
     * transaction completed (committed or aborted) */
    rd_kafka_t *rk = eddy__kprod_open(&k->props, k->plan, id, true, false, NULL, NULL,
                                      &embedded_ref, &err, why, sizeof(why));
    open_err(err, id, why, errstr, errstr_size);
    if (rk)
        rd_kafka_destroy(rk);
    if (embedded_ref)
        eddy__kafka_embedded_release();
    return err;
}

int64_t eddy__ktxn_timeout_ms(const eddy_ktxn_t *k) {
    const char *v = eddy__kprops_get(&k->props, "transaction.timeout.ms");
    long long ms = v ? strtoll(v, NULL, 10) : 0;
    return ms > 0 ? ms : 60000; /* librdkafka's default */
}

eddy_kprod_t *eddy__ktxn_producer(eddy_ktxn_t *k, int thread, int nthreads, eddy_err_t *errp,
                                  char *errstr, size_t errstr_size) {
    pthread_mutex_lock(&k->lock);
    if (!k->thr) {
        k->nthr = nthreads;
        k->thr = eddy_calloc((size_t)nthreads, sizeof(*k->thr));
        for (int t = 0; t < nthreads; t++)
            k->thr[t].thread = t;
    }
    eddy_assert(thread >= 0 && thread < k->nthr);
    eddy_kprod_t *p = &k->thr[thread];
    eddy_err_t err = p->rk ? EDDY_OK : prod_open(k, p, errstr, errstr_size);
    pthread_mutex_unlock(&k->lock);
    if (errp)
        *errp = err;
    return err ? NULL : p;
}

eddy_err_t eddy__kprod_begin(eddy_kprod_t *p) {
    if (p->f.failed)
        return eddy__kfail_err(&p->f);
    if (p->in_txn)
        return EDDY_OK;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(p->rk);
    if (e) {
        eddy__kfail(&p->f, eddy__kafka_err_transient(p->rk, rd_kafka_error_code(e)),
                    "begin_transaction: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return eddy__kfail_err(&p->f);
    }
    eddy__ktxn_count_begin();
    p->in_txn = true;
    return EDDY_OK;
}

eddy_err_t eddy__ktxn_commit(eddy_ktxn_t *k, int thread, const eddy_ktxo_t *offsets,
                             char *errstr, size_t errstr_size) {
    if (!k)
        return EDDY_OK;
    /* thr[] is made by the first producer's open, perhaps on another
     * thread right now: looked at under the lock (it never moves after) */
    pthread_mutex_lock(&k->lock);
    eddy_kprod_t *p = thread < k->nthr ? &k->thr[thread] : NULL;
    bool open = p && p->rk;
    pthread_mutex_unlock(&k->lock);
    if (!open)
        return EDDY_OK;
    if (!p->f.failed && p->in_txn) {
        char why[512];
        bool transient = false;
        if (!eddy__kafka_txn_commit(p->rk, offsets, &p->in_txn, &transient, why, sizeof(why)))
            eddy__kfail(&p->f, transient, "%s", why);
    }
    if (!p->f.failed)
        return EDDY_OK;
    char text[600];
    eddy__kfail_text(&p->f, text, sizeof(text));
    eddy__seterr(errstr, errstr_size, "transactional producer '%s' (thread %d): %s", p->id,
                 thread, text);
    return eddy__kfail_err(&p->f);
}

void eddy__ktxn_stop(eddy_ktxn_t *k) {
    if (!k)
        return;
    pthread_mutex_lock(&k->lock);
    for (int t = 0; t < k->nthr; t++)
        prod_close(&k->thr[t]);
    pthread_mutex_unlock(&k->lock);
}

void eddy__ktxn_destroy(eddy_ktxn_t *k) {
    if (!k)
        return;
    eddy__ktxn_stop(k);
    eddy_free(k->thr);
    eddy__kprops_free(&k->props);
    pthread_mutex_destroy(&k->lock);
    eddy_free(k);
}
