/*
 * Repartition topics over Kafka (see kafka_repartition.h and docs/kafka.md,
 * "Repartition topics").
 *
 * Why a consumer of its own, assigned by hand, rather than the source's
 * group consumer subscribed to both topics: task N must read partition N
 * of the repartition topic exactly when it owns input partition N. With a
 * second subscription that holds only if the assignor gives a member equal
 * partition numbers of both topics (range does for equal counts;
 * cooperative-sticky and roundrobin do not). Assigning partition N when
 * task N opens makes it true for every assignor, and the group stays what
 * it is (only input topics). The offsets are the task's (stored with its
 * state); the consumer's own group (`<application>-repartition`, never
 * joined) keeps committed offsets for a task that has no state.
 *
 * Threads: everything of thread t (its producer, its consumer) is used by
 * stream thread t only, except assign/unassign, which thread 0 may call
 * inside a commit round while the others wait (librdkafka is thread-safe).
 */
#include "connectors/kafka_repartition.h"
#include "connectors/kafka.h"

#define IO_TIMEOUT_MS 30000

/* A partition's stall clock: since when consumer errors came (one naming
 * the partition, or one naming none while it was assigned) with no
 * record of it since (0: not running), and the last such error. */
typedef struct {
    int64_t since_ns;
    char why[256];
} kstall_t;

typedef struct {
    struct eddy_krp_s *k;
    int id;
    rd_kafka_t *prod;
    rd_kafka_topic_t **rkts;   /* [nx] */
    bool prod_emb, cons_emb;
    rd_kafka_t *cons;
    rd_kafka_topic_t **crkts;  /* [nx] the consumer's handles, kept from start */
    rd_kafka_queue_t *q;
    rd_kafka_message_t **held; /* the last poll's messages */
    int nheld;
    rd_kafka_topic_t *last_rkt; /* topic -> exchange memo */
    int last_x;
    bool pending, closing;
    uint64_t sent;
    eddy_kfail_t f;
    eddy_kprod_t *sh;   /* exactly_once: the thread's shared producer */
    eddy_kfail_t *fail; /* &f, or the shared producer's */
    /* transient consumer errors (retried in place: consumer_error()) */
    uint64_t xerrs;
    rd_kafka_resp_err_t xerr_last;
    int64_t xerr_ns;
    /* per partition of the topics (slot x * partitions + p): assigned to
     * this consumer, and the stall clock (stall_check()) */
    bool *assigned;
    kstall_t *stall;
    int nstalled; /* clocks running */
    int64_t stall_checked_ns;
    int64_t polled_ns; /* the last poll, while clocks ran */
} krthr_t;

struct eddy_krp_s {
    char *application;
    char instance[24]; /* the instance id: client ids differ per instance */
    char **topics;
    int nx;
    int partitions;
    struct eddy_ktxn_s *txn; /* exactly_once: shared producers */
    int64_t stall_ms;        /* repartition.error.timeout.ms (0: retry for ever) */
    eddy_kprops_t props;
    krthr_t *thr;
    int nthr;
    bool started;
};

static void topic_char(char *c) {
    bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-';
    if (!ok)
        *c = '-';
}

eddy_krp_t *eddy__krp_new(const eddy_cnode_t *kafka, const char *application,
                          const char *const *names, int nx, int partitions, char *errstr,
                          size_t errstr_size) {
    eddy_krp_t *k = eddy_calloc(1, sizeof(*k));
    k->application = eddy_strdup(application);
    k->nx = nx;
    k->partitions = partitions;
    k->topics = eddy_calloc((size_t)nx + 1, sizeof(char *));
    for (int x = 0; x < nx; x++) {
        k->topics[x] = eddy_asprintf("%s-%s-repartition", application, names[x]);
        for (char *c = k->topics[x]; *c; c++)
            topic_char(c);
    }
    if (eddy__kprops_from_cnode(&k->props, kafka, errstr, errstr_size)) {
        eddy__krp_destroy(k);
        return NULL;
    }
    return k;
}

void eddy__krp_share(eddy_krp_t *k, struct eddy_ktxn_s *txn) { k->txn = txn; }

void eddy__krp_error_timeout(eddy_krp_t *k, int64_t ms) {
    k->stall_ms = ms > 0 ? ms : 0;
}

const char *eddy__krp_topic(const eddy_krp_t *k, int x) { return k->topics[x]; }

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    krthr_t *t = opaque;
    if (!m->err)
        return;
    eddy__kfail_delivery(&t->f, rk, m, t->closing, "repartition topic");
}

static void thr_close(krthr_t *t) {
    for (int i = 0; i < t->nheld; i++)
        rd_kafka_message_destroy(t->held[i]);
    t->nheld = 0;
    eddy_free(t->held);
    t->held = NULL;
    if (t->q)
        rd_kafka_queue_destroy(t->q);
    for (int x = 0; t->crkts && x < t->k->nx; x++)
        if (t->crkts[x])
            rd_kafka_topic_destroy(t->crkts[x]);
    eddy_free(t->crkts);
    if (t->cons) {
        rd_kafka_consumer_close(t->cons);
        rd_kafka_destroy(t->cons);
    }
    if (t->cons_emb)
        eddy__kafka_embedded_release();
    if (t->sh) {
        /* the shared producer stays: the engine commits or aborts */
        for (int x = 0; t->rkts && x < t->k->nx; x++)
            if (t->rkts[x])
                rd_kafka_topic_destroy(t->rkts[x]);
    } else if (t->prod) {
        t->closing = true;
        eddy__kprod_discard(t->prod, false);
        for (int x = 0; t->rkts && x < t->k->nx; x++)
            if (t->rkts[x])
                rd_kafka_topic_destroy(t->rkts[x]);
        rd_kafka_destroy(t->prod);
    }
    eddy_free(t->rkts);
    if (t->prod_emb)
        eddy__kafka_embedded_release();
    eddy_free(t->assigned);
    eddy_free(t->stall);
    memset(t, 0, sizeof(*t));
}

void eddy__krp_stop(eddy_krp_t *k) {
    if (!k)
        return;
    for (int i = 0; i < k->nthr; i++)
        thr_close(&k->thr[i]);
    eddy_free(k->thr);
    k->thr = NULL;
    k->nthr = 0;
    k->started = false;
}

void eddy__krp_destroy(eddy_krp_t *k) {
    if (!k)
        return;
    eddy__krp_stop(k);
    for (int x = 0; x < k->nx; x++)
        eddy_free(k->topics[x]);
    eddy_free(k->topics);
    eddy_free(k->application);
    eddy__kprops_free(&k->props);
    eddy_free(k);
}

/* Defaults under the user's kafka: map. */
static void conf_default(const eddy_krp_t *k, rd_kafka_conf_t *conf, const char *key,
                         const char *val) {
    if (!eddy__kprops_get(&k->props, key))
        rd_kafka_conf_set(conf, key, val, NULL, 0);
}

static eddy_err_t thr_open(eddy_krp_t *k, krthr_t *t, char *errstr, size_t errstr_size) {
    char why[512], id[600];
    t->k = k;
    t->last_x = -1;
    t->fail = &t->f;
    size_t slots = (size_t)k->nx * (size_t)k->partitions;
    t->assigned = eddy_calloc(slots + 1, sizeof(bool));
    t->stall = eddy_calloc(slots + 1, sizeof(kstall_t));
    snprintf(id, sizeof(id), "%s-repartition-%s-%d", k->application, k->instance, t->id);
    rd_kafka_conf_t *conf;
    if (k->txn) {
        eddy_err_t oe = EDDY_OK;
        t->sh = eddy__ktxn_producer(k->txn, t->id, k->nthr, &oe, why, sizeof(why));
        if (!t->sh) {
            eddy__seterr(errstr, errstr_size, "repartition: %s", why);
            return oe == EDDY_ERR_TRANSIENT ? EDDY_ERR_TRANSIENT : EDDY_ERR_IO;
        }
        t->prod = t->sh->rk;
        t->fail = &t->sh->f;
        goto topics;
    }
    conf = eddy__kafka_conf_new(&k->props, &t->prod_emb, errstr, errstr_size);
    if (!conf)
        return EDDY_ERR_CONFIG;
    conf_default(k, conf, "client.id", id);
    conf_default(k, conf, "linger.ms", "5");
    conf_default(k, conf, "batch.num.messages", "10000");
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, t);
    conf_default(k, conf, "delivery.report.only.error", "true");
    t->prod = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!t->prod) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, errstr_size, "repartition producer: %s", why);
        return EDDY_ERR_CONFIG;
    }
topics:
    t->rkts = eddy_calloc((size_t)k->nx + 1, sizeof(*t->rkts));
    for (int x = 0; x < k->nx; x++)
        t->rkts[x] = rd_kafka_topic_new(t->prod, k->topics[x], NULL);

    conf = eddy__kafka_conf_new(&k->props, &t->cons_emb, errstr, errstr_size);
    if (!conf)
        return EDDY_ERR_CONFIG;
    char gid[600];
    snprintf(gid, sizeof(gid), "%s-repartition", k->application);
    rd_kafka_conf_set(conf, "group.id", gid, NULL, 0);
    conf_default(k, conf, "client.id", id);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.partition.eof", "false", NULL, 0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", NULL, 0);
    /* the embedded cluster holds an empty fetch for the whole wait, and
     * stalls a consumer whose queue passes queued.min.messages */
    conf_default(k, conf, "fetch.wait.max.ms", "5");
    conf_default(k, conf, "queued.min.messages", "1000000");
    t->cons = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!t->cons) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, errstr_size, "repartition consumer: %s", why);
        return EDDY_ERR_CONFIG;
    }
    rd_kafka_poll_set_consumer(t->cons);
    t->q = rd_kafka_queue_get_consumer(t->cons);
    /* Learn the topics' leaders now: a partition assigned while its
     * leader is unknown waits for the consumer's next metadata refresh
     * before its first fetch (about a second on the embedded cluster, for
     * every task that opens) */
    t->crkts = eddy_calloc((size_t)k->nx + 1, sizeof(*t->crkts));
    for (int x = 0; x < k->nx; x++) {
        t->crkts[x] = rd_kafka_topic_new(t->cons, k->topics[x], NULL);
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(t->cons, 0, t->crkts[x], &md, IO_TIMEOUT_MS);
        if (md)
            rd_kafka_metadata_destroy(md);
        if (e) {
            eddy__seterr(errstr, errstr_size, "repartition consumer: metadata for topic '%s': %s",
                         k->topics[x], rd_kafka_err2str(e));
            return EDDY_ERR_IO;
        }
    }
    return EDDY_OK;
}

eddy_err_t eddy__krp_start(eddy_krp_t *k, int nthreads, const char *instance, char *errstr,
                           size_t errstr_size) {
    if (k->started)
        return EDDY_OK;
    snprintf(k->instance, sizeof(k->instance), "%s", instance ? instance : "");
    for (int x = 0; x < k->nx; x++) {
        /* more partitions will do (only 0 .. tasks-1 are used): a cluster
         * that creates topics when asked about them (the embedded one,
         * also reached over TCP by another process; brokers with
         * auto.create.topics.enable) may have made it with its default */
        eddy_err_t e = eddy__kafka_ensure_topic(&k->props, k->topics[x], k->partitions, true,
                                                NULL, "repartition", IO_TIMEOUT_MS, errstr,
                                                errstr_size);
        if (e)
            return e;
    }
    k->thr = eddy_calloc((size_t)nthreads, sizeof(krthr_t));
    k->nthr = nthreads;
    for (int i = 0; i < nthreads; i++) {
        k->thr[i].id = i;
        eddy_err_t e = thr_open(k, &k->thr[i], errstr, errstr_size);
        if (e)
            return e;
    }
    k->started = true;
    return EDDY_OK;
}

static eddy_err_t thr_report(krthr_t *t, char *errstr, size_t errstr_size) {
    eddy__kfail_text(t->fail, errstr, errstr_size);
    return eddy__kfail_err(t->fail);
}

eddy_err_t eddy__krp_send(eddy_krp_t *k, int thread, int x, int partition, const void *val,
                          size_t len) {
    krthr_t *t = &k->thr[thread];
    if (t->fail->failed)
        return eddy__kfail_err(t->fail);
    if (t->sh) {
        eddy_err_t err = eddy__kprod_begin(t->sh);
        if (err)
            return err;
    }
    while (rd_kafka_produce(t->rkts[x], partition, RD_KAFKA_MSG_F_COPY, (void *)val, len, NULL,
                            0, NULL) == -1) {
        rd_kafka_resp_err_t e = rd_kafka_last_error();
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            eddy__kfail(t->fail, eddy__kafka_err_transient(t->prod, e),
                    "repartition topic '%s' partition %d: cannot produce: %s", k->topics[x],
                    partition, rd_kafka_err2str(e));
            return eddy__kfail_err(t->fail);
        }
        rd_kafka_poll(t->prod, 10); /* backpressure: wait for room */
    }
    t->pending = true;
    if ((++t->sent & 1023) == 0)
        rd_kafka_poll(t->prod, 0);
    return t->fail->failed ? eddy__kfail_err(t->fail) : EDDY_OK;
}

eddy_err_t eddy__krp_flush(eddy_krp_t *k, int thread, char *errstr, size_t errstr_size) {
    if (!k->started)
        return EDDY_OK;
    krthr_t *t = &k->thr[thread];
    if (t->fail->failed)
        return thr_report(t, errstr, errstr_size);
    if (t->sh)
        return EDDY_OK; /* the engine commits the shared transaction */
    if (t->pending) {
        while (rd_kafka_flush(t->prod, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT && !t->f.failed)
            ;
    }
    t->pending = false;
    return t->f.failed ? thr_report(t, errstr, errstr_size) : EDDY_OK;
}

eddy_err_t eddy__krp_assign(eddy_krp_t *k, int thread, int partition, const int64_t *offsets,
                            bool add, char *errstr, size_t errstr_size) {
    if (!k->started || !k->thr[thread].cons)
        return EDDY_OK;
    krthr_t *t = &k->thr[thread];
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->nx);
    for (int x = 0; x < k->nx; x++)
        rd_kafka_topic_partition_list_add(l, k->topics[x], partition)->offset =
            add && offsets && offsets[x] >= 0 ? offsets[x] : RD_KAFKA_OFFSET_STORED;
    rd_kafka_error_t *e =
        add ? rd_kafka_incremental_assign(t->cons, l) : rd_kafka_incremental_unassign(t->cons, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (!e) {
        for (int x = 0; x < k->nx; x++) {
            int slot = x * k->partitions + partition;
            t->assigned[slot] = add;
            if (t->stall[slot].since_ns) { /* a new assignment starts afresh */
                t->stall[slot].since_ns = 0;
                t->nstalled--;
            }
        }
        return EDDY_OK;
    }
    eddy__seterr(errstr, errstr_size, "repartition: %s partition %d: %s",
                 add ? "assign" : "unassign", partition, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    return EDDY_ERR_IO;
}

void eddy__krp_commit(eddy_krp_t *k, int thread, int partition, const int64_t *offsets) {
    if (!k->started || !k->thr[thread].cons)
        return;
    krthr_t *t = &k->thr[thread];
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(k->nx);
    for (int x = 0; x < k->nx; x++)
        if (offsets[x] >= 0)
            rd_kafka_topic_partition_list_add(l, k->topics[x], partition)->offset = offsets[x];
    if (l->cnt)
        rd_kafka_commit(t->cons, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

static int topic_x(krthr_t *t, rd_kafka_topic_t *rkt) {
    if (rkt == t->last_rkt)
        return t->last_x;
    const char *name = rd_kafka_topic_name(rkt);
    for (int x = 0; x < t->k->nx; x++)
        if (!strcmp(name, t->k->topics[x])) {
            t->last_rkt = rkt;
            t->last_x = x;
            return x;
        }
    return -1;
}

/* "topic 'T' partition P: consumer" of m, or "consumer" for an error of
 * no partition (a broker gone) */
static const char *err_where(const rd_kafka_message_t *m, char *buf, size_t size) {
    if (!m->rkt)
        return "consumer";
    snprintf(buf, size, "topic '%s' partition %d: consumer", rd_kafka_topic_name(m->rkt),
             (int)m->partition);
    return buf;
}

/* Starts the stall clock of slot (unless running) with the error why. */
static void stall_start(krthr_t *t, int slot, int64_t now, const char *why) {
    kstall_t *c = &t->stall[slot];
    if (!c->since_ns) {
        c->since_ns = now;
        t->nstalled++;
    }
    snprintf(c->why, sizeof(c->why), "%s", why);
}

/* A consumer error: true when it stops the engine. librdkafka retries a
 * transient one (a broker gone, a timed-out or refused fetch, a leader
 * moving) from the partition's fetch position, which only the messages it
 * hands out advance: retrying in place neither skips nor repeats a record,
 * so the exchange's seq check sees the sequence it would have without the
 * error (and stops the engine if the broker lost records). A permanent
 * one (the topic gone, authorization refused) would come back: it stops
 * the engine, naming topic and partition. Transient ones are logged (an
 * error like the thread's last one only once its last log is 1 s old)
 * and start the stall clock of the partition they name, or of every
 * partition assigned when they name none (stall_check()). */
static bool consumer_error(krthr_t *t, const rd_kafka_message_t *m, int64_t now) {
    if (!eddy__kafka_err_transient(t->cons, m->err))
        return true;
    t->xerrs++;
    if (t->k->stall_ms && t->k->partitions > 1) {
        const char *why = rd_kafka_message_errstr(m);
        int x = m->rkt ? topic_x(t, m->rkt) : -1;
        if (x >= 0 && m->partition >= 0 && m->partition < t->k->partitions) {
            int slot = x * t->k->partitions + m->partition;
            if (t->assigned[slot])
                stall_start(t, slot, now, why);
        } else if (!m->rkt) {
            for (int slot = 0; slot < t->k->nx * t->k->partitions; slot++)
                if (t->assigned[slot])
                    stall_start(t, slot, now, why);
        }
    }
    if (m->err == t->xerr_last && now - t->xerr_ns < 1000000000LL)
        return false;
    char where[400];
    fprintf(stderr, "eddy: repartition %s (thread %d): %s; retrying (%llu transient error(s))\n",
            err_where(m, where, sizeof(where)), t->id, rd_kafka_message_errstr(m),
            (unsigned long long)t->xerrs);
    t->xerr_last = m->err;
    t->xerr_ns = now;
    return false;
}

/* A partition whose errors go on with no record for
 * repartition.error.timeout.ms is stuck, as are its receivers'
 * watermarks: the error is not healing (an unknown partition after the
 * topic was recreated smaller, TLS refused for good, a broker that never
 * comes back), and retrying in place would hang the engine with a log
 * line a second. A healthy partition of a running engine gets a record
 * at least every second (every other task's watermark heartbeat, under
 * exactly_once once its transaction commits), so a record clears the
 * clock, and a short blip never reaches the limit. True with the stuck
 * partition in errstr: the round fails as transient, and the engine's
 * recovery (a new consumer) runs, its streak ending in a stop with this
 * message. */
static bool stall_check(krthr_t *t, int64_t now, char *errstr, size_t errstr_size) {
    const eddy_krp_t *k = t->k;
    if (!t->nstalled || now - t->stall_checked_ns < 100000000LL)
        return false;
    t->stall_checked_ns = now;
    int64_t limit_ns = k->stall_ms * 1000000LL;
    for (int slot = 0; slot < k->nx * k->partitions; slot++) {
        const kstall_t *c = &t->stall[slot];
        if (!c->since_ns || now - c->since_ns < limit_ns)
            continue;
        eddy__seterr(errstr, errstr_size,
                     "repartition topic '%s' partition %d: consumer errors and no record for "
                     "%lld ms (repartition.error.timeout.ms), the last: %s",
                     k->topics[slot / k->partitions], slot % k->partitions,
                     (long long)((now - c->since_ns) / 1000000LL), c->why);
        return true;
    }
    return false;
}

int eddy__krp_poll(eddy_krp_t *k, int thread, eddy_krp_msg_t *out, int max, eddy_err_t *err,
                   char *errstr, size_t errstr_size) {
    *err = EDDY_OK;
    if (!k->started)
        return 0;
    krthr_t *t = &k->thr[thread];
    for (int i = 0; i < t->nheld; i++)
        rd_kafka_message_destroy(t->held[i]);
    t->nheld = 0;
    if (!t->held)
        t->held = eddy_malloc(sizeof(*t->held) * (size_t)max);
    ssize_t n = rd_kafka_consume_batch_queue(t->q, 0, t->held, (size_t)max);
    int got = 0;
    int64_t now = n > 0 || t->nstalled ? eddy__now_ns() : 0;
    if (t->nstalled && t->polled_ns && now - t->polled_ns > 1000000000LL) {
        /* the thread did not poll for a while (a long commit round, a
         * restore): the clocks count a second of it, not what it spent
         * elsewhere (all of it, and rounds longer than a second would
         * stop them) */
        int64_t gap = now - t->polled_ns - 1000000000LL;
        for (int slot = 0; slot < k->nx * k->partitions; slot++)
            if (t->stall[slot].since_ns)
                t->stall[slot].since_ns += gap;
    }
    t->polled_ns = now;
    if (n > 0)
        t->nheld = (int)n;
    for (ssize_t i = 0; i < n; i++) {
        rd_kafka_message_t *m = t->held[i];
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || !consumer_error(t, m, now))
                continue;
            char where[400];
            eddy__seterr(errstr, errstr_size, "repartition %s: %s",
                         err_where(m, where, sizeof(where)), rd_kafka_message_errstr(m));
            *err = EDDY_ERR_IO;
            return -1;
        }
        int x = topic_x(t, m->rkt);
        if (x < 0)
            continue;
        if (t->nstalled && m->partition >= 0 && m->partition < k->partitions) {
            kstall_t *c = &t->stall[x * k->partitions + m->partition];
            if (c->since_ns) {
                c->since_ns = 0;
                t->nstalled--;
            }
        }
        out[got++] = (eddy_krp_msg_t){.x = x, .partition = m->partition, .offset = m->offset,
                                      .val = m->payload, .len = m->len};
    }
    /* a full batch: more is queued, the partition's record may be in it */
    if (n < max && stall_check(t, now, errstr, errstr_size)) {
        *err = EDDY_ERR_TRANSIENT;
        return -1;
    }
    return got;
}
