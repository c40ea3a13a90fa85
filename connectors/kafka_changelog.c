/*
 * The Kafka changelog: the changelog vtable of state/changelog.h over one
 * compacted topic per store, `<application>-<store>-changelog`, partition =
 * task id (docs/state.md, "Kafka changelog", has the whole design).
 *
 * Records: key = the store's RocksDB key, value = the value bytes, a delete
 * is a tombstone. Each commit ends with one commit marker in the task's
 * primary topic (its first store's), key EDDY_KCL_MARKER_KEY, value:
 *
 *   u32 magic "EKCM"  u16 version (1)  u16 nstores
 *   u64 commit_id     u64 writer id
 *   nstores x { u16 name_len, name, u64 end offset of that store's topic }
 *   u32 plen, positions                                (little-endian)
 *
 * Compaction keeps the last record of every key, so the last marker always
 * survives and names, for every store, where the data of the last complete
 * commit ends. Commit: produce the updates, wait for every delivery report,
 * then produce the marker and wait again. The second wait is not
 * optional: after a permanently failed record an idempotent producer goes
 * on delivering later ones, so a marker produced with the updates could
 * land after a hole. A failed delivery fails the commit and the handle.
 *
 * Restore (replay): find the last marker (reading backwards from the high
 * watermark), read every store topic partition from 0 to the end offset the
 * marker names, positions from the marker. A partition whose log start is
 * not 0 lost records and is refused.
 *
 * Records after the last marker are dropped by a restore, but a later
 * marker would adopt them, and compaction may already have let them replace
 * good values. resync() runs before a reopened task's first commit and
 * rewrites every key written since the point up to which the topics are
 * known to match the restored state (the "mark", stored with the state) to
 * its restored value, then writes a marker; a state with no mark seeds the
 * topics from every entry it holds. When the last marker since the mark is
 * another writer's (the task ran on another instance meanwhile), it writes
 * nothing and reports the state stale: the caller rebuilds from the topics.
 *
 * One idempotent producer per engine serves every task: the delivery
 * report callback finds its handle through the message opaque (a slot per
 * store, one for markers) and works with atomics and the handle's lock
 * only, as it runs on whichever thread polls. Reads go through one
 * consumer per engine (the legacy per-partition API: no group involved),
 * one restore or resync at a time.
 *
 * Thread: a handle is used by its task's thread; handles of different
 * tasks run concurrently over the shared producer.
 */
#include "connectors/kafka_changelog.h"

#include "connectors/kafka.h"
#include "state/checkpoint.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define MARKER_MAGIC 0x4d434b45u /* "EKCM" */
#define MARK_MAGIC 0x534b4345u   /* "EKCS": the mark blob */
#define FMT_VERSION 1
#define IO_TIMEOUT_MS 15000      /* metadata, admin, a read that stops making progress */
#define STATS_MS 1000            /* the reader's statistics: its fetch position this often */
#define READ_BATCH 1000
#define PEND_HDR_BYTES 11        /* op, store, klen, vlen */

typedef struct kcl_remote_s {
    eddy_cl_remote_t base;
    eddy_kprops_t props;
    char *application;
    int nstores;
    char **stores;
    char **topics;
    int partitions;
    rd_kafka_t *rk;          /* the shared producer (setup) */
    rd_kafka_topic_t **rkts; /* [nstores] */
    bool emb_ref;
    /* handles that write (writer_join: a task's, not a standby copy's,
     * which only reads), and whether a delivery failed: the producer is
     * replaced when a handle starts writing with no other writing (the
     * tasks reopened by an in-process recovery), so that a fatal
     * idempotence error (a sequence desynchronisation) does not outlive
     * it, whatever standby copies stay open */
    pthread_mutex_t open_lock;
    int nwriters;
    atomic_bool renew;
    /* exactly_once: commits go into the transaction of the task's stream
     * thread (task % nthreads) instead (connectors/kafka_txn.c) */
    struct eddy_ktxn_s *txn;
    int nthreads;
    /* restores and resyncs read through one consumer, one at a time (tasks
     * open one after the other anyway) */
    pthread_mutex_t read_lock;
    rd_kafka_t *reader;
    bool reader_emb;
    /* read_range(): the partition it reads and its fetch position as the
     * reader's statistics last said (reader_stats(), which runs on
     * librdkafka's background thread: under watch_lock) */
    pthread_mutex_t watch_lock;
    char watch_topic[256];
    int watch_part; /* -1: no read */
    int64_t watch_pos;
} kcl_remote_t;

typedef struct kcl_s kcl_t;

/* Delivery reports find their handle and store through this. */
typedef struct kslot_s {
    kcl_t *k;
    _Atomic int64_t end; /* offset after the last record delivered here */
} kslot_t;

struct kcl_s {
    eddy_changelog_t cl; /* first: the vtable base */
    kcl_remote_t *r;
    int task;
    uint64_t writer;
    kslot_t *slots;   /* [nstores + 1]; the last one takes the markers */
    int64_t *synced;  /* [nstores]: topics match the state below this; -1 unknown */
    atomic_long outstanding;
    pthread_mutex_t mu; /* err */
    bool err_set;
    bool permanent; /* a failure a new producer would meet again */
    char err[512];
    bool failed;        /* a delivery failed: no more commits */
    eddy_buf_t pending; /* updates of the commit being built */
    eddy_buf_t markbuf;
    uint64_t replayed;  /* records applied by the last replay */
    bool writes;        /* counted in r->nwriters (writer_join) */
    /* the producer records go through: the remote's, or during a commit
     * under exactly_once the stream thread's transactional one, with
     * topic handles of its own (trk: the producer they belong to) */
    rd_kafka_t *prk;
    rd_kafka_topic_t **prkts;
    rd_kafka_t *trk;
    rd_kafka_topic_t **trkts;
    /* progress(): per store, the next offset to apply and the one the
     * replay heads for (-1 unknown) */
    _Atomic int64_t *at, *until;
};

static const eddy_changelog_ops_t kcl_ops;

char *eddy__kafka_changelog_topic(const char *application, const char *store) {
    return eddy_asprintf("%s-%s-changelog", application, store);
}

/* ----------------------------------------------------------- producing */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)opaque;
    eddy__kcl_delivery(rk, m);
}

/* connectors/kafka.h: also called by the transactional producers */
void eddy__kcl_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m) {
    kslot_t *s = m->_private;
    if (!s)
        return;
    kcl_t *k = s->k;
    if (m->err) {
        atomic_store(&k->r->renew, true);
        pthread_mutex_lock(&k->mu);
        if (!eddy__kafka_err_transient(rk, m->err))
            k->permanent = true;
        if (!k->err_set) {
            snprintf(k->err, sizeof(k->err),
                     "changelog topic '%s' partition %d: delivery failed: %s",
                     rd_kafka_topic_name(m->rkt), (int)m->partition, rd_kafka_err2str(m->err));
            k->err_set = true;
        }
        pthread_mutex_unlock(&k->mu);
    } else {
        int64_t e = m->offset + 1, cur = atomic_load(&s->end);
        while (e > cur && !atomic_compare_exchange_weak(&s->end, &cur, e))
            ;
    }
    /* last: once it reaches 0 the handle may be freed */
    atomic_fetch_sub(&k->outstanding, 1);
}

/* Produce one record (val NULL: tombstone) into store `store`'s topic, or
 * a marker into the primary topic (slot == nstores). */
static eddy_err_t produce(kcl_t *k, int slot, const void *key, size_t klen, const void *val,
                          size_t vlen, char *errstr, size_t errstr_size) {
    kcl_remote_t *r = k->r;
    int topic = slot < r->nstores ? slot : 0;
    atomic_fetch_add(&k->outstanding, 1);
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->prk, RD_KAFKA_V_RKT(k->prkts[topic]), RD_KAFKA_V_PARTITION(k->task),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&k->slots[slot]),
            RD_KAFKA_V_END);
        if (!e)
            return EDDY_OK;
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(k->prk, 10);
            continue;
        }
        atomic_fetch_sub(&k->outstanding, 1);
        eddy__seterr(errstr, errstr_size, "changelog topic '%s' partition %d: produce: %s",
                     r->topics[topic], k->task, rd_kafka_err2str(e));
        k->failed = true;
        atomic_store(&r->renew, true);
        return eddy__kafka_err_transient(k->prk, e) ? EDDY_ERR_TRANSIENT : EDDY_ERR_IO;
    }
}

/* Wait until every record this handle produced has its delivery report;
 * any failure fails the handle. */
static eddy_err_t wait_deliveries(kcl_t *k, char *errstr, size_t errstr_size) {
    /* rd_kafka_flush() also sends at once what linger.ms would hold back;
     * other tasks' records may still be in flight, so loop on our own */
    while (atomic_load(&k->outstanding) > 0)
        rd_kafka_flush(k->prk, 5);
    char why[256];
    rd_kafka_resp_err_t fe = rd_kafka_fatal_error(k->prk, why, sizeof(why));
    pthread_mutex_lock(&k->mu);
    if (fe) {
        if (!k->err_set)
            snprintf(k->err, sizeof(k->err), "changelog producer: fatal error: %s", why);
        k->err_set = true;
        if (!eddy__kafka_err_transient(k->prk, RD_KAFKA_RESP_ERR__FATAL))
            k->permanent = true;
    }
    bool bad = k->err_set, permanent = k->permanent;
    if (bad)
        eddy__seterr(errstr, errstr_size, "task %d: %s", k->task, k->err);
    pthread_mutex_unlock(&k->mu);
    if (bad) {
        /* transient (a timed-out delivery, a broker gone, a sequence
         * desynchronisation): the round is not acknowledged and the
         * engine recovers in process (docs/reliability.md); the tasks
         * reopen with a new producer (writer_join) */
        k->failed = true;
        atomic_store(&k->r->renew, true);
        return permanent ? EDDY_ERR_IO : EDDY_ERR_TRANSIENT;
    }
    return EDDY_OK;
}

/* ------------------------------------------------------ marker and mark */

static void put16(eddy_buf_t *b, uint16_t v) {
    unsigned char t[2];
    eddy__put_le16(t, v);
    eddy_buf_put(b, t, 2);
}
static void put32(eddy_buf_t *b, uint32_t v) {
    unsigned char t[4];
    eddy__put_le32(t, v);
    eddy_buf_put(b, t, 4);
}
static void put64(eddy_buf_t *b, uint64_t v) {
    unsigned char t[8];
    eddy__put_le64(t, v);
    eddy_buf_put(b, t, 8);
}

/* Bounds-checked reading of a blob. */
typedef struct {
    const unsigned char *p;
    size_t n, o;
    bool bad;
} rd_t;

static const unsigned char *take(rd_t *d, size_t len) {
    if (d->bad || len > d->n - d->o) {
        d->bad = true;
        return NULL;
    }
    const unsigned char *p = d->p + d->o;
    d->o += len;
    return p;
}
static uint16_t get16(rd_t *d) {
    const unsigned char *p = take(d, 2);
    return p ? eddy__get_le16(p) : 0;
}
static uint32_t get32(rd_t *d) {
    const unsigned char *p = take(d, 4);
    return p ? eddy__get_le32(p) : 0;
}
static uint64_t get64(rd_t *d) {
    const unsigned char *p = take(d, 8);
    return p ? eddy__get_le64(p) : 0;
}

/* Per-store offsets keyed by store name: shared by the marker and the mark. */
static void put_offsets(eddy_buf_t *b, const kcl_remote_t *r, const int64_t *off) {
    put16(b, (uint16_t)r->nstores);
    for (int i = 0; i < r->nstores; i++) {
        size_t l = strlen(r->stores[i]);
        put16(b, (uint16_t)l);
        eddy_buf_put(b, r->stores[i], l);
        put64(b, (uint64_t)off[i]);
    }
}

/* Fill off[i] for the stores named in the blob; others keep their value. */
static void get_offsets(rd_t *d, const kcl_remote_t *r, int64_t *off) {
    uint16_t n = get16(d);
    for (uint16_t j = 0; j < n && !d->bad; j++) {
        uint16_t l = get16(d);
        const unsigned char *name = take(d, l);
        int64_t v = (int64_t)get64(d);
        if (d->bad || v < 0) {
            d->bad = true;
            break;
        }
        for (int i = 0; i < r->nstores; i++)
            if (strlen(r->stores[i]) == l && !memcmp(r->stores[i], name, l))
                off[i] = v;
    }
}

typedef struct {
    uint64_t commit_id, writer;
    int64_t *ends; /* [nstores], 0 for stores the marker does not name */
    const char *positions;
    uint32_t plen;
} marker_t;

static void encode_marker(eddy_buf_t *b, const kcl_remote_t *r, uint64_t commit_id,
                          uint64_t writer, const int64_t *ends, const void *pos, size_t plen) {
    b->len = 0;
    put32(b, MARKER_MAGIC);
    put16(b, FMT_VERSION);
    put16(b, 0);
    put64(b, commit_id);
    put64(b, writer);
    put_offsets(b, r, ends);
    put32(b, (uint32_t)plen);
    if (plen)
        eddy_buf_put(b, pos, plen);
}

static bool decode_marker(const kcl_remote_t *r, const void *v, size_t n, marker_t *m) {
    rd_t d = {.p = v, .n = n};
    if (get32(&d) != MARKER_MAGIC || get16(&d) != FMT_VERSION)
        return false;
    get16(&d);
    m->commit_id = get64(&d);
    m->writer = get64(&d);
    for (int i = 0; i < r->nstores; i++)
        m->ends[i] = 0;
    get_offsets(&d, r, m->ends);
    m->plen = get32(&d);
    m->positions = (const char *)take(&d, m->plen);
    return !d.bad && d.o == n;
}

static bool is_marker_key(const void *key, size_t klen) {
    return klen == EDDY_KCL_MARKER_KEY_LEN && !memcmp(key, EDDY_KCL_MARKER_KEY, klen);
}

/* ------------------------------------------------------------- reading */

typedef eddy_err_t (*rec_cb_t)(void *opaque, int64_t offset, const char *key, size_t klen,
                               const char *val, size_t vlen, bool tombstone, char *errstr,
                               size_t errstr_size);

/* The reader's statistics (every STATS_MS, on librdkafka's background
 * thread): the fetch position of the partition read_range() reads. */
static int reader_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    (void)rk;
    kcl_remote_t *r = opaque;
    char topic[sizeof(r->watch_topic)];
    pthread_mutex_lock(&r->watch_lock);
    int part = r->watch_part;
    memcpy(topic, r->watch_topic, sizeof(topic));
    pthread_mutex_unlock(&r->watch_lock);
    if (part < 0)
        return 0;
    int64_t pos = eddy__kstats_fetch_pos(json, len, topic, part);
    pthread_mutex_lock(&r->watch_lock);
    /* the latest, not the largest: a document of an earlier read of the
     * partition can show a position this read never reaches */
    if (r->watch_part == part && !strcmp(r->watch_topic, topic) && pos >= 0)
        r->watch_pos = pos;
    pthread_mutex_unlock(&r->watch_lock);
    return 0; /* librdkafka frees json */
}

/* Starts (topic: the partition read) or ends (NULL) watching a read. */
static void reader_watch(kcl_remote_t *r, const char *topic, int part) {
    pthread_mutex_lock(&r->watch_lock);
    snprintf(r->watch_topic, sizeof(r->watch_topic), "%s", topic ? topic : "");
    r->watch_part = topic ? part : -1;
    r->watch_pos = -1;
    pthread_mutex_unlock(&r->watch_lock);
}

static int64_t reader_fetch_pos(kcl_remote_t *r) {
    pthread_mutex_lock(&r->watch_lock);
    int64_t pos = r->watch_pos;
    pthread_mutex_unlock(&r->watch_lock);
    return pos;
}

static rd_kafka_t *reader_new(kcl_remote_t *r, bool *emb, char *errstr, size_t errstr_size) {
    *emb = false;
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(&r->props, emb, errstr, errstr_size);
    if (!conf)
        return NULL;
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "50", NULL, 0);
    /* librdkafka's default, set whatever the kafka: map says: restores,
     * resyncs and standby replicas never read records of an aborted
     * transaction on a real broker (docs/kafka.md) */
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", NULL, 0);
    char cid[256], why[256];
    snprintf(cid, sizeof(cid), "eddy-%s-changelog-reader", r->application);
    rd_kafka_conf_set(conf, "client.id", cid, NULL, 0);
    /* read_range() measures progress by the fetch position, which only
     * the statistics tell */
    snprintf(why, sizeof(why), "%d", STATS_MS);
    rd_kafka_conf_set(conf, "statistics.interval.ms", why, NULL, 0);
    rd_kafka_conf_set_stats_cb(conf, reader_stats);
    rd_kafka_conf_set_opaque(conf, r);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        if (*emb)
            eddy__kafka_embedded_release();
        eddy__seterr(errstr, errstr_size, "kafka changelog reader: %s", why);
        return NULL;
    }
    /* nothing polls the reader between reads: its main queue (statistics,
     * errors) goes to librdkafka's background thread, which serves it */
    rd_kafka_queue_t *main_q = rd_kafka_queue_get_main(rk);
    rd_kafka_queue_t *bg_q = rd_kafka_queue_get_background(rk);
    if (bg_q)
        rd_kafka_queue_forward(main_q, bg_q);
    rd_kafka_queue_destroy(main_q);
    if (bg_q)
        rd_kafka_queue_destroy(bg_q);
    return rk;
}

static void reader_destroy(rd_kafka_t *rk, bool emb) {
    if (!rk)
        return;
    rd_kafka_destroy(rk);
    if (emb)
        eddy__kafka_embedded_release();
}

static eddy_err_t watermarks(rd_kafka_t *rk, const char *topic, int part, int64_t *lo,
                             int64_t *hi, char *errstr, size_t errstr_size) {
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, topic, part, lo, hi, IO_TIMEOUT_MS);
    if (e) {
        eddy__seterr(errstr, errstr_size, "changelog topic '%s' partition %d: offsets: %s", topic,
                     part, rd_kafka_err2str(e));
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

/* Call cb for every record of topic/part with offset in [from, to). */
static eddy_err_t read_range(rd_kafka_t *rk, const char *topic, int part, int64_t from,
                             int64_t to, rec_cb_t cb, void *opaque, char *errstr,
                             size_t errstr_size) {
    if (from >= to)
        return EDDY_OK;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_consume_start(rkt, part, from) == -1) {
        eddy__seterr(errstr, errstr_size, "changelog topic '%s' partition %d: read: %s", topic,
                     part, rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_topic_destroy(rkt);
        return EDDY_ERR_IO;
    }
    kcl_remote_t *r = rd_kafka_opaque(rk);
    reader_watch(r, topic, part);
    rd_kafka_message_t **msgs = eddy_malloc(sizeof(*msgs) * READ_BATCH);
    eddy_err_t err = EDDY_OK;
    int64_t next = from;
    /* progress is the fetch position moving, not records delivered: past
     * the last record of a window the consumer may fetch through a large
     * aborted transaction (read_committed) without a record for long */
    eddy_kprogress_t pr;
    eddy__kprogress_start(&pr, from, eddy__now_ns());
    while (next < to && !err) {
        /* a batch call waits out its timeout until it has as many records
         * as asked for: never ask for more than remain (with compaction's
         * gaps fewer come, and the end-of-partition event ends the wait) */
        size_t want = to - next < READ_BATCH ? (size_t)(to - next) : READ_BATCH;
        ssize_t n = rd_kafka_consume_batch(rkt, part, 100, msgs, want);
        if (n < 0) {
            eddy__seterr(errstr, errstr_size, "changelog topic '%s' partition %d: read: %s",
                         topic, part, rd_kafka_err2str(rd_kafka_last_error()));
            err = EDDY_ERR_IO;
            break;
        }
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (err || next >= to) {
                /* drained below */
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->offset < to) {
                    eddy__seterr(errstr, errstr_size,
                                 "changelog topic '%s' partition %d ends at offset %lld, "
                                 "before offset %lld",
                                 topic, part, (long long)m->offset, (long long)to);
                    err = EDDY_ERR_IO;
                }
                next = to;
            } else if (m->err) {
                eddy__seterr(errstr, errstr_size,
                             "changelog topic '%s' partition %d: read at offset %lld: %s", topic,
                             part, (long long)next, rd_kafka_message_errstr(m));
                err = EDDY_ERR_IO;
            } else if (m->offset >= to) {
                next = to;
            } else {
                err = cb(opaque, m->offset, m->key, m->key_len, m->payload, m->len,
                         m->payload == NULL, errstr, errstr_size);
                next = m->offset + 1;
            }
            rd_kafka_message_destroy(m);
        }
        if (!err && next < to &&
            eddy__kprogress_stalled(&pr, next, reader_fetch_pos(r), eddy__now_ns(),
                                    IO_TIMEOUT_MS * 1000000LL)) {
            char fpos[32] = "unknown";
            if (pr.fetched >= 0)
                snprintf(fpos, sizeof(fpos), "%lld", (long long)pr.fetched);
            eddy__seterr(errstr, errstr_size,
                         "changelog topic '%s' partition %d: no record after offset %lld, and "
                         "the fetch position stayed at %s, for %d ms (reading up to %lld)",
                         topic, part, (long long)next, fpos, IO_TIMEOUT_MS, (long long)to);
            err = EDDY_ERR_IO;
        }
    }
    reader_watch(r, NULL, -1);
    eddy_free(msgs);
    rd_kafka_consume_stop(rkt, part);
    rd_kafka_topic_destroy(rkt);
    return err;
}

/* ----------------------------------------------------------- vtable */

static eddy_err_t kcl_append(eddy_changelog_t *cl, uint16_t store, eddy_cl_op_t op,
                             const void *key, size_t klen, const void *val, size_t vlen) {
    kcl_t *k = (kcl_t *)cl;
    const char *bad = NULL;
    if (k->failed)
        bad = "an earlier delivery failed: close, reopen and resync";
    else if (store >= k->r->nstores)
        bad = "no such store";
    else if (op == EDDY_CL_DEL_RANGE)
        bad = "a delete-range has no compacted-topic form: append a delete per key";
    else if (op != EDDY_CL_PUT && op != EDDY_CL_DEL)
        bad = "unknown op";
    else if (op == EDDY_CL_DEL && vlen)
        bad = "a delete carries no value";
    else if ((!key && klen) || (!val && vlen))
        bad = "NULL data with a non-zero length";
    else if (is_marker_key(key, klen))
        bad = "the key is the commit marker's";
    else if (klen > EDDY_CL_MAX_RECORD_BYTES || vlen > EDDY_CL_MAX_RECORD_BYTES - klen)
        bad = "key + value over 64 MiB";
    if (bad) {
        eddy__seterr(cl->errstr, sizeof(cl->errstr), "kafka changelog task %d: update of store %u: %s",
                     k->task, (unsigned)store, bad);
        return k->failed ? EDDY_ERR_STATE : EDDY_ERR_INVAL;
    }
    eddy_buf_t *b = &k->pending;
    eddy_buf_reserve(b, PEND_HDR_BYTES + klen + vlen);
    unsigned char *h = (unsigned char *)b->p + b->len;
    h[0] = (unsigned char)op;
    eddy__put_le16(h + 1, store);
    eddy__put_le32(h + 3, (uint32_t)klen);
    eddy__put_le32(h + 7, (uint32_t)vlen);
    b->len += PEND_HDR_BYTES;
    if (klen)
        eddy_buf_put(b, key, klen);
    if (vlen)
        eddy_buf_put(b, val, vlen);
    return EDDY_OK;
}

/* The marker: after every record of the commit was delivered. ends[i] is
 * where store i's data ends; synced follows. */
static eddy_err_t write_marker(kcl_t *k, uint64_t commit_id, const void *positions, size_t plen,
                               char *errstr, size_t errstr_size) {
    kcl_remote_t *r = k->r;
    int64_t *ends = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    for (int i = 0; i < r->nstores; i++) {
        int64_t d = atomic_load(&k->slots[i].end);
        ends[i] = d > k->synced[i] ? d : k->synced[i];
        if (ends[i] < 0)
            ends[i] = 0;
    }
    eddy_buf_t v = {0};
    encode_marker(&v, r, commit_id, k->writer, ends, positions, plen);
    eddy_err_t e = produce(k, r->nstores, EDDY_KCL_MARKER_KEY, EDDY_KCL_MARKER_KEY_LEN, v.p,
                           v.len, errstr, errstr_size);
    eddy_buf_free(&v);
    if (!e)
        e = wait_deliveries(k, errstr, errstr_size);
    if (!e) {
        for (int i = 1; i < r->nstores; i++)
            k->synced[i] = ends[i];
        k->synced[0] = atomic_load(&k->slots[r->nstores].end);
    }
    eddy_free(ends);
    return e;
}

/* exactly_once: the commit's records and marker go into the open
 * transaction of the task's stream thread, which the engine commits after
 * the prepare with the thread's outputs, repartition records and input
 * offsets. The two waits stay: the marker names the end offsets of the
 * commit's records, which only their delivery reports give; a hole
 * before the marker is no danger any more (a failed record aborts the
 * whole transaction, and a read_committed reader sees all of it or
 * nothing). */
static eddy_err_t txn_producer(kcl_t *k, char *errstr, size_t errstr_size) {
    kcl_remote_t *r = k->r;
    if (!r->txn)
        return EDDY_OK;
    char why[512];
    eddy_err_t oe = EDDY_OK;
    eddy_kprod_t *p =
        eddy__ktxn_producer(r->txn, k->task % r->nthreads, r->nthreads, &oe, why, sizeof(why));
    if (!p) {
        eddy__seterr(errstr, errstr_size, "kafka changelog task %d: %s", k->task, why);
        return oe == EDDY_ERR_TRANSIENT ? EDDY_ERR_TRANSIENT : EDDY_ERR_IO;
    }
    eddy_err_t e = eddy__kprod_begin(p);
    if (e) {
        eddy__seterr(errstr, errstr_size, "kafka changelog task %d: %s", k->task, p->f.why);
        return e;
    }
    if (k->trk != p->rk) {
        for (int i = 0; k->trkts && i < r->nstores; i++)
            rd_kafka_topic_destroy(k->trkts[i]);
        if (!k->trkts)
            k->trkts = eddy_calloc((size_t)r->nstores, sizeof(*k->trkts));
        for (int i = 0; i < r->nstores; i++)
            k->trkts[i] = rd_kafka_topic_new(p->rk, r->topics[i], NULL);
        k->trk = p->rk;
    }
    k->prk = p->rk;
    k->prkts = k->trkts;
    return EDDY_OK;
}

static eddy_err_t kcl_commit(eddy_changelog_t *cl, uint64_t commit_id, const void *positions,
                             size_t plen, uint64_t *end_offset, char *errstr,
                             size_t errstr_size) {
    kcl_t *k = (kcl_t *)cl;
    if (k->failed) {
        eddy__seterr(errstr, errstr_size,
                     "kafka changelog task %d: an earlier delivery failed: close, reopen and "
                     "resync",
                     k->task);
        return EDDY_ERR_STATE;
    }
    if (commit_id == 0 || plen > EDDY_CL_MAX_RECORD_BYTES || (!positions && plen)) {
        eddy__seterr(errstr, errstr_size, "kafka changelog task %d: bad commit id or positions",
                     k->task);
        return EDDY_ERR_INVAL;
    }
    eddy_err_t e = txn_producer(k, errstr, errstr_size);
    const unsigned char *p = (const unsigned char *)k->pending.p;
    size_t n = k->pending.len, o = 0;
    while (o < n && !e) {
        uint16_t store = eddy__get_le16(p + o + 1);
        uint32_t kl = eddy__get_le32(p + o + 3), vl = eddy__get_le32(p + o + 7);
        const unsigned char *key = p + o + PEND_HDR_BYTES;
        bool del = p[o] == EDDY_CL_DEL;
        e = produce(k, store, key, kl, del ? NULL : key + kl, vl, errstr, errstr_size);
        o += PEND_HDR_BYTES + (size_t)kl + vl;
    }
    if (n && !e)
        e = wait_deliveries(k, errstr, errstr_size);
    if (!e)
        e = write_marker(k, commit_id, positions, plen, errstr, errstr_size);
    if (e) {
        /* wait_deliveries may not have run: nothing may outlive the call
         * half-counted */
        while (atomic_load(&k->outstanding) > 0)
            rd_kafka_flush(k->prk, 5);
        k->prk = k->r->rk;
        k->prkts = k->r->rkts;
        return e;
    }
    /* resyncs and seeds go through the remote's producer */
    k->prk = k->r->rk;
    k->prkts = k->r->rkts;
    k->pending.len = 0;
    if (k->pending.cap > ((size_t)16 << 20))
        eddy_buf_free(&k->pending);
    if (end_offset)
        *end_offset = (uint64_t)k->synced[0];
    return EDDY_OK;
}

/* ---- restore */

typedef struct {
    kcl_t *k;
    int store;
    bool primary;
    eddy_cl_update_cb_t on_update;
    void *opaque;
    uint64_t n;
} apply_ctx_t;

static eddy_err_t apply_rec(void *opaque, int64_t offset, const char *key, size_t klen,
                            const char *val, size_t vlen, bool tombstone, char *errstr,
                            size_t errstr_size) {
    apply_ctx_t *a = opaque;
    atomic_store_explicit(&a->k->at[a->store], offset + 1, memory_order_relaxed);
    if (a->primary && is_marker_key(key, klen))
        return EDDY_OK;
    a->n++;
    if (!a->on_update)
        return EDDY_OK;
    eddy_err_t e = a->on_update(a->opaque, (uint16_t)a->store, tombstone ? EDDY_CL_DEL : EDDY_CL_PUT,
                                key, klen, tombstone ? NULL : val, tombstone ? 0 : vlen);
    if (e)
        eddy__seterr(errstr, errstr_size,
                     "changelog topic '%s' partition %d: applying offset %lld failed: %s",
                     a->k->r->topics[a->store], a->k->task, (long long)offset, eddy_err2str(e));
    return e;
}

typedef struct {
    kcl_remote_t *r;
    bool found;
    int64_t offset;
    eddy_buf_t value;
    uint64_t after; /* records read after the last marker found */
} last_marker_t;

static eddy_err_t find_marker_rec(void *opaque, int64_t offset, const char *key, size_t klen,
                                  const char *val, size_t vlen, bool tombstone, char *errstr,
                                  size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    last_marker_t *lm = opaque;
    if (!tombstone && is_marker_key(key, klen)) {
        lm->found = true;
        lm->offset = offset;
        lm->value.len = 0;
        lm->after = 0;
        eddy_buf_put(&lm->value, val, vlen);
    } else {
        lm->after++;
    }
    return EDDY_OK;
}

static eddy_err_t count_rec(void *opaque, int64_t offset, const char *key, size_t klen,
                            const char *val, size_t vlen, bool tombstone, char *errstr,
                            size_t errstr_size) {
    (void)offset;
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (void)tombstone;
    (void)errstr;
    (void)errstr_size;
    (*(uint64_t *)opaque)++;
    return EDDY_OK;
}

/* The commit marker the topics end with: the last record a reader sees
 * of the primary topic, with no record after it, and in every other store
 * topic no record after the end the marker names. After a committed
 * transaction the last offsets of every partition it wrote are control
 * records (no reader receives them), and the records of an aborted
 * transaction are invisible to read_committed readers: "the last offset
 * is the marker" only holds on a cluster without transaction markers (the
 * embedded one). So the primary is read backwards in growing windows
 * while they hold nothing visible (a large aborted transaction after the
 * marker): a miss would make a restart roll back a round whose
 * transaction committed (docs/kafka.md "Rolling forward"). *found false:
 * there is none (records follow the last marker, or the topic holds
 * none). m->ends must hold nstores. */
static eddy_err_t tail_marker(rd_kafka_t *rk, kcl_t *k, const int64_t *lo, const int64_t *hi,
                              marker_t *m, bool *found, char *errstr, size_t errstr_size) {
    kcl_remote_t *r = k->r;
    *found = false;
    if (hi[0] <= lo[0])
        return EDDY_OK;
    last_marker_t lm = {.r = r};
    eddy_err_t e = EDDY_OK;
    for (int64_t end = hi[0], w = 64; !e && !lm.found && !lm.after && end > lo[0]; w *= 8) {
        int64_t from = end - w > lo[0] ? end - w : lo[0];
        e = read_range(rk, r->topics[0], k->task, from, end, find_marker_rec, &lm, errstr,
                       errstr_size);
        end = from;
        if (w > INT64_MAX / 8)
            w = INT64_MAX / 8;
    }
    bool ok = !e && lm.found && lm.after == 0 &&
              decode_marker(r, lm.value.p, lm.value.len, m) && m->ends[0] <= lm.offset;
    for (int i = 1; ok && i < r->nstores; i++) {
        uint64_t n = 0;
        ok = m->ends[i] <= hi[i] && m->ends[i] >= lo[i];
        if (ok)
            e = read_range(rk, r->topics[i], k->task, m->ends[i], hi[i], count_rec, &n, errstr,
                           errstr_size);
        ok = ok && !e && n == 0;
    }
    eddy_buf_free(&lm.value);
    *found = ok;
    return e;
}

/* The last marker of the primary topic in [lo, hi): read backwards in
 * growing windows (it is normally among the last few records). */
static eddy_err_t find_last_marker(rd_kafka_t *rk, kcl_t *k, int64_t lo, int64_t hi,
                                   last_marker_t *lm, char *errstr, size_t errstr_size) {
    int64_t w = 256;
    for (;;) {
        int64_t start = hi - w > lo ? hi - w : lo;
        eddy_err_t e = read_range(rk, k->r->topics[0], k->task, start, hi, find_marker_rec, lm,
                                  errstr, errstr_size);
        if (e || lm->found || start == lo)
            return e;
        hi = start;
        w = w < INT64_MAX / 8 ? w * 8 : w;
    }
}

/* Apply the commits in the topics after `from` (per store; from[0] just
 * after the last marker applied, all 0 for a full rebuild) up to the last
 * commit marker: every store topic from from[i] to the end the marker
 * names. Records after the last marker (an unacknowledged tail) are never
 * applied. Compaction keeps the last record of every key, so the records
 * read from from[i] on still hold every key written since. With no marker
 * after from[0], nothing is applied and the handle stays at `from`. */
static eddy_err_t replay_from(kcl_t *k, const int64_t *from, eddy_cl_update_cb_t on_update,
                              eddy_cl_commit_cb_t on_commit, void *opaque,
                              uint64_t *last_commit_id, uint64_t *end_offset, char *errstr,
                              size_t errstr_size) {
    kcl_remote_t *r = k->r;
    if (k->pending.len) {
        eddy__seterr(errstr, errstr_size,
                     "kafka changelog: uncommitted updates are buffered: replay before appending");
        return EDDY_ERR_STATE;
    }
    pthread_mutex_lock(&r->read_lock);
    rd_kafka_t *rk = r->reader;
    int64_t *lo = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *hi = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *ends = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    last_marker_t lm = {.r = r};
    marker_t m = {.ends = ends};
    eddy_err_t e = EDDY_OK;
    for (int i = 0; i < r->nstores && !e; i++) {
        e = watermarks(r->rk, r->topics[i], k->task, &lo[i], &hi[i], errstr, errstr_size);
        if (!e && lo[i] > from[i]) {
            eddy__seterr(errstr, errstr_size,
                         "changelog topic '%s' partition %d starts at offset %lld, after offset "
                         "%lld: records before it were deleted (retention, or the embedded "
                         "cluster's size limit), so the state cannot be rebuilt from it",
                         r->topics[i], k->task, (long long)lo[i], (long long)from[i]);
            e = EDDY_ERR_STATE;
        } else if (!e && from[i] > hi[i]) {
            eddy__seterr(errstr, errstr_size,
                         "changelog topic '%s' partition %d ends at offset %lld, before offset "
                         "%lld already applied (topic recreated?)",
                         r->topics[i], k->task, (long long)hi[i], (long long)from[i]);
            e = EDDY_ERR_STATE;
        }
    }
    for (int i = 0; i < r->nstores && !e; i++) {
        atomic_store(&k->at[i], from[i]);
        atomic_store(&k->until[i], hi[i]);
    }
    if (!e)
        e = find_last_marker(rk, k, from[0], hi[0], &lm, errstr, errstr_size);
    if (!e && lm.found && !decode_marker(r, lm.value.p, lm.value.len, &m)) {
        eddy__seterr(errstr, errstr_size,
                     "changelog topic '%s' partition %d: commit marker at offset %lld is not "
                     "understood (another format version?)",
                     r->topics[0], k->task, (long long)lm.offset);
        e = EDDY_ERR_DECODE;
    }
    for (int i = 0; i < r->nstores && !e && lm.found; i++) {
        int64_t lim = i == 0 ? lm.offset : hi[i];
        if (ends[i] > lim || ends[i] < from[i]) {
            eddy__seterr(errstr, errstr_size,
                         "changelog topic '%s' partition %d ends at offset %lld, but its last "
                         "commit marker says the data goes to %lld (from %lld; topic "
                         "recreated?)",
                         r->topics[i], k->task, (long long)lim, (long long)ends[i],
                         (long long)from[i]);
            e = EDDY_ERR_STATE;
        }
    }
    for (int i = 0; i < r->nstores && !e && lm.found; i++) /* what the marker names */
        atomic_store(&k->until[i], ends[i]);
    uint64_t total = 0;
    for (int i = 0; i < r->nstores && !e && lm.found; i++) {
        apply_ctx_t a = {.k = k, .store = i, .primary = i == 0, .on_update = on_update,
                         .opaque = opaque};
        e = read_range(rk, r->topics[i], k->task, from[i], ends[i], apply_rec, &a, errstr,
                       errstr_size);
        total += a.n;
    }
    if (!e && lm.found && on_commit)
        e = on_commit(opaque, m.commit_id, m.positions, m.plen);
    if (!e) {
        for (int i = 0; i < r->nstores; i++)
            k->synced[i] = lm.found ? ends[i] : from[i];
        k->synced[0] = lm.found ? lm.offset + 1 : from[0];
        for (int i = 0; i < r->nstores; i++) { /* done: what is left is the tail */
            atomic_store(&k->at[i], k->synced[i]);
            atomic_store(&k->until[i], hi[i]);
        }
        k->replayed = total;
        if (last_commit_id)
            *last_commit_id = lm.found ? m.commit_id : 0;
        if (end_offset)
            *end_offset = (uint64_t)k->synced[0];
    }
    eddy_buf_free(&lm.value);
    eddy_free(lo);
    eddy_free(hi);
    eddy_free(ends);
    pthread_mutex_unlock(&r->read_lock);
    return e;
}

static eddy_err_t kcl_replay(eddy_changelog_t *cl, uint64_t from_offset, uint64_t upto,
                             eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit,
                             void *opaque, uint64_t *last_commit_id, uint64_t *end_offset,
                             char *errstr, size_t errstr_size) {
    (void)upto; /* compaction leaves only the end: a restore goes to the last marker */
    kcl_t *k = (kcl_t *)cl;
    if (from_offset != 0) {
        eddy__seterr(errstr, errstr_size,
                     "kafka changelog: replay starts at 0 (a compacted topic has no other "
                     "consistent start)");
        return EDDY_ERR_INVAL;
    }
    int64_t *from = eddy_calloc((size_t)k->r->nstores, sizeof(int64_t));
    eddy_err_t e = replay_from(k, from, on_update, on_commit, opaque, last_commit_id,
                               end_offset, errstr, errstr_size);
    eddy_free(from);
    return e;
}

/* ---- resync */

typedef struct {
    kcl_t *k;
    int store;
    const eddy_cl_state_t *state;
    eddy_buf_t val;
    uint64_t n;
} rewrite_ctx_t;

/* A record written after the matching point: write the key's value now. */
static eddy_err_t rewrite_rec(void *opaque, int64_t offset, const char *key, size_t klen,
                              const char *val, size_t vlen, bool tombstone, char *errstr,
                              size_t errstr_size) {
    (void)offset;
    (void)val;
    (void)vlen;
    (void)tombstone;
    rewrite_ctx_t *w = opaque;
    if (w->store == 0 && is_marker_key(key, klen))
        return EDDY_OK;
    bool found = false;
    eddy_err_t e = w->state->get(w->state->opaque, (uint16_t)w->store, key, klen, &w->val, &found,
                                 errstr, errstr_size);
    if (e)
        return e;
    w->n++;
    return produce(w->k, w->store, key, klen, found ? (w->val.p ? w->val.p : "") : NULL,
                   found ? w->val.len : 0, errstr, errstr_size);
}

typedef struct {
    kcl_t *k;
    char *errstr;
    size_t errstr_size;
    uint64_t n;
} seed_ctx_t;

static eddy_err_t seed_rec(void *opaque, uint16_t store, eddy_cl_op_t op, const char *key,
                           size_t klen, const char *val, size_t vlen) {
    (void)op;
    seed_ctx_t *s = opaque;
    s->n++;
    return produce(s->k, store, key, klen, val ? val : "", vlen, s->errstr, s->errstr_size);
}

static void parse_mark(kcl_t *k, const void *mark, size_t mlen, int64_t *out) {
    for (int i = 0; i < k->r->nstores; i++)
        out[i] = -1;
    if (!mark || !mlen)
        return;
    rd_t d = {.p = mark, .n = mlen};
    if (get32(&d) != MARK_MAGIC || get16(&d) != FMT_VERSION) {
        return;
    }
    get_offsets(&d, k->r, out);
    if (d.bad)
        for (int i = 0; i < k->r->nstores; i++)
            out[i] = -1;
}

/* Do the topics end with our marker of commit_id (tail_marker)? Then
 * they match the state already, and what follows is ours from their
 * ends on. */
static eddy_err_t ends_with_our_marker(rd_kafka_t *rk, kcl_t *k, uint64_t commit_id,
                                       const int64_t *lo, const int64_t *hi, bool *match,
                                       char *errstr, size_t errstr_size) {
    kcl_remote_t *r = k->r;
    int64_t *ends = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    marker_t m = {.ends = ends};
    bool found = false;
    eddy_err_t e = tail_marker(rk, k, lo, hi, &m, &found, errstr, errstr_size);
    *match = !e && found && m.writer == k->writer && m.commit_id == commit_id;
    if (*match)
        memcpy(k->synced, hi, sizeof(int64_t) * (size_t)r->nstores);
    eddy_free(ends);
    return e;
}

static eddy_err_t kcl_tail(eddy_changelog_t *cl, bool *found, uint64_t *commit_id, bool *ours,
                           char *errstr, size_t errstr_size) {
    kcl_t *k = (kcl_t *)cl;
    kcl_remote_t *r = k->r;
    int64_t *lo = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *hi = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *ends = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    marker_t m = {.ends = ends};
    *found = false;
    pthread_mutex_lock(&r->read_lock);
    eddy_err_t e = EDDY_OK;
    for (int i = 0; i < r->nstores && !e; i++)
        e = watermarks(r->rk, r->topics[i], k->task, &lo[i], &hi[i], errstr, errstr_size);
    if (!e)
        e = tail_marker(r->reader, k, lo, hi, &m, found, errstr, errstr_size);
    pthread_mutex_unlock(&r->read_lock);
    if (*found) {
        *commit_id = m.commit_id;
        *ours = m.writer == k->writer;
    }
    eddy_free(lo);
    eddy_free(hi);
    eddy_free(ends);
    return e;
}

static eddy_err_t kcl_resync(eddy_changelog_t *cl, const void *mark, size_t mlen,
                             uint64_t commit_id, const void *positions, size_t plen,
                             const eddy_cl_state_t *state, bool *stale, char *errstr,
                             size_t errstr_size) {
    kcl_t *k = (kcl_t *)cl;
    kcl_remote_t *r = k->r;
    *stale = false;
    if (k->failed || k->pending.len) {
        eddy__seterr(errstr, errstr_size,
                     "kafka changelog task %d: resync needs a fresh handle with nothing "
                     "buffered",
                     k->task);
        return EDDY_ERR_STATE;
    }
    int64_t *s = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *lo = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    int64_t *hi = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    parse_mark(k, mark, mlen, s);
    pthread_mutex_lock(&r->read_lock);
    rd_kafka_t *rk = r->reader;
    eddy_err_t e = EDDY_OK;
    bool known = true, equal = true;
    for (int i = 0; i < r->nstores && !e; i++) {
        e = watermarks(r->rk, r->topics[i], k->task, &lo[i], &hi[i], errstr, errstr_size);
        if (s[i] < 0 || s[i] > hi[i])
            known = false;
        if (s[i] != hi[i])
            equal = false;
    }
    bool match = false;
    if (!e && known && equal) {
        memcpy(k->synced, s, sizeof(int64_t) * (size_t)r->nstores);
        match = true;
    } else if (!e && known && hi[0] > 0) {
        e = ends_with_our_marker(rk, k, commit_id, lo, hi, &match, errstr, errstr_size);
    }
    if (!e && !match) {
        /* whose is the last commit since the mark? Another writer's means
         * the task ran elsewhere since: this state is behind the topics */
        int64_t from = s[0] >= 0 && s[0] <= hi[0] ? s[0] : 0;
        last_marker_t lm = {.r = r};
        int64_t *ends = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
        marker_t m = {.ends = ends};
        e = find_last_marker(rk, k, from, hi[0], &lm, errstr, errstr_size);
        if (!e && lm.found && decode_marker(r, lm.value.p, lm.value.len, &m) &&
            m.writer != k->writer) {
            *stale = true;
            fprintf(stderr,
                    "eddy: state: task %d: changelog topic '%s' holds a newer commit (offset "
                    "%lld) by another instance: the local state is behind it\n",
                    k->task, r->topics[0], (long long)lm.offset);
        }
        eddy_free(ends);
        eddy_buf_free(&lm.value);
        if (*stale)
            match = true; /* write nothing */
    }
    uint64_t seeded = 0, rewritten = 0;
    for (int i = 0; i < r->nstores && !e && !match; i++) {
        bool have = s[i] >= 0 && s[i] <= hi[i];
        int64_t from = have ? s[i] : 0;
        if (!have) {
            seed_ctx_t sc = {.k = k, .errstr = errstr, .errstr_size = errstr_size};
            e = state->scan(state->opaque, (uint16_t)i, seed_rec, &sc, errstr, errstr_size);
            seeded += sc.n;
        }
        if (e)
            break;
        if (from < lo[i]) {
            /* records between were deleted: their keys cannot be rewritten */
            eddy__seterr(errstr, errstr_size,
                         "changelog topic '%s' partition %d starts at offset %lld, after the "
                         "last offset known to match the state (%lld): records were deleted",
                         r->topics[i], k->task, (long long)lo[i], (long long)from);
            e = EDDY_ERR_STATE;
            break;
        }
        rewrite_ctx_t w = {.k = k, .store = i, .state = state};
        e = read_range(rk, r->topics[i], k->task, from, hi[i], rewrite_rec, &w, errstr,
                       errstr_size);
        eddy_buf_free(&w.val);
        rewritten += w.n;
        /* what follows in this topic is ours from here on */
        k->synced[i] = hi[i];
    }
    if (!e && !match) {
        e = wait_deliveries(k, errstr, errstr_size);
        if (!e)
            e = write_marker(k, commit_id, positions, plen, errstr, errstr_size);
        if (!e)
            fprintf(stderr,
                    "eddy: state: task %d: kafka changelog brought in line with the restored "
                    "state (%llu entries seeded, %llu keys written after the last acknowledged "
                    "commit rewritten)\n",
                    k->task, (unsigned long long)seeded, (unsigned long long)rewritten);
    }
    while (atomic_load(&k->outstanding) > 0)
        rd_kafka_flush(r->rk, 5);
    pthread_mutex_unlock(&r->read_lock);
    eddy_free(s);
    eddy_free(lo);
    eddy_free(hi);
    return e;
}

/* Standby replicas: continue from a mark (what mark() returned after the
 * last catch-up or replay; NULL: from the start). */
static eddy_err_t kcl_catch_up(eddy_changelog_t *cl, const void *mark, size_t mlen,
                               eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit,
                               void *opaque, uint64_t *applied, char *errstr,
                               size_t errstr_size) {
    kcl_t *k = (kcl_t *)cl;
    int64_t *from = eddy_calloc((size_t)k->r->nstores, sizeof(int64_t));
    parse_mark(k, mark, mlen, from);
    for (int i = 0; i < k->r->nstores; i++)
        if (from[i] < 0)
            from[i] = 0;
    k->replayed = 0;
    eddy_err_t e = replay_from(k, from, on_update, on_commit, opaque, NULL, NULL, errstr,
                               errstr_size);
    if (applied)
        *applied = k->replayed;
    eddy_free(from);
    return e;
}

static bool kcl_progress(eddy_changelog_t *cl, int store, const char **topic, int *partition,
                         int64_t *offset, int64_t *end) {
    kcl_t *k = (kcl_t *)cl;
    if (store < 0 || store >= k->r->nstores)
        return false;
    *topic = k->r->topics[store];
    *partition = k->task;
    *offset = atomic_load(&k->at[store]);
    *end = atomic_load(&k->until[store]);
    return true;
}

static const void *kcl_mark(eddy_changelog_t *cl, size_t *len) {
    kcl_t *k = (kcl_t *)cl;
    eddy_buf_t *b = &k->markbuf;
    b->len = 0;
    put32(b, MARK_MAGIC);
    put16(b, FMT_VERSION);
    put_offsets(b, k->r, k->synced);
    *len = b->len;
    return b->p;
}

static eddy_err_t kcl_truncate_before(eddy_changelog_t *cl, uint64_t offset, char *errstr,
                                      size_t errstr_size) {
    (void)cl;
    (void)offset;
    (void)errstr;
    (void)errstr_size;
    return EDDY_OK; /* the broker's compaction keeps the topic bounded */
}

static uint64_t kcl_end_offset(eddy_changelog_t *cl) {
    kcl_t *k = (kcl_t *)cl;
    return k->synced[0] > 0 ? (uint64_t)k->synced[0] : 0;
}

static uint64_t kcl_start_offset(eddy_changelog_t *cl) {
    (void)cl;
    return 0;
}

static void kcl_close(eddy_changelog_t *cl) {
    kcl_t *k = (kcl_t *)cl;
    /* delivery reports still point at the handle */
    while (atomic_load(&k->outstanding) > 0) {
        rd_kafka_flush(k->r->rk, 5);
        if (k->trk)
            rd_kafka_flush(k->trk, 5);
    }
    for (int i = 0; k->trkts && i < k->r->nstores; i++)
        rd_kafka_topic_destroy(k->trkts[i]);
    eddy_free(k->trkts);
    pthread_mutex_destroy(&k->mu);
    if (k->writes) {
        pthread_mutex_lock(&k->r->open_lock);
        k->r->nwriters--;
        pthread_mutex_unlock(&k->r->open_lock);
    }
    eddy_buf_free(&k->pending);
    eddy_buf_free(&k->markbuf);
    eddy_free(k->slots);
    eddy_free(k->synced);
    eddy_free((void *)k->at);
    eddy_free((void *)k->until);
    eddy_free(k);
}

/* ---- writers and the producer's renewal */

static void producer_close(kcl_remote_t *r);
static eddy_err_t producer_open(kcl_remote_t *r, char *errstr, size_t errstr_size);
static void producer_topics(kcl_remote_t *r);
static eddy_err_t producer_renew(kcl_remote_t *r, char *errstr, size_t errstr_size);

/* Before a handle's first write (a commit, a resync or seed): it counts
 * as a writer until it closes, and writes through the remote's producer
 * of the moment. If a delivery failed since and no other handle writes
 * (the tasks closed by an in-process recovery reopen), that producer is
 * replaced first: a new idempotence epoch. Handles that only read (the
 * standby copies' catch-ups) never hold the producer, so they stay open
 * through it; their reads use r->rk for watermarks under read_lock, which
 * the swap takes too. */
static eddy_err_t writer_join(kcl_t *k, char *errstr, size_t errstr_size) {
    if (k->writes)
        return EDDY_OK;
    kcl_remote_t *r = k->r;
    eddy_err_t e = EDDY_OK;
    pthread_mutex_lock(&r->open_lock);
    if (r->rk && !r->nwriters && atomic_load(&r->renew)) {
        pthread_mutex_lock(&r->read_lock);
        e = producer_renew(r, errstr, errstr_size);
        pthread_mutex_unlock(&r->read_lock);
    }
    if (!e && !r->rk) {
        eddy__seterr(errstr, errstr_size, "kafka changelog task %d: no producer", k->task);
        e = EDDY_ERR_STATE;
    }
    if (!e) {
        r->nwriters++;
        k->writes = true;
        k->prk = r->rk;
        k->prkts = r->rkts;
    }
    pthread_mutex_unlock(&r->open_lock);
    return e;
}

static eddy_err_t kcl_commit_w(eddy_changelog_t *cl, uint64_t commit_id, const void *positions,
                               size_t plen, uint64_t *end_offset, char *errstr,
                               size_t errstr_size) {
    eddy_err_t e = writer_join((kcl_t *)cl, errstr, errstr_size);
    return e ? e : kcl_commit(cl, commit_id, positions, plen, end_offset, errstr, errstr_size);
}

static eddy_err_t kcl_resync_w(eddy_changelog_t *cl, const void *mark, size_t mlen,
                               uint64_t commit_id, const void *positions, size_t plen,
                               const eddy_cl_state_t *state, bool *stale, char *errstr,
                               size_t errstr_size) {
    eddy_err_t e = writer_join((kcl_t *)cl, errstr, errstr_size);
    return e ? e
             : kcl_resync(cl, mark, mlen, commit_id, positions, plen, state, stale, errstr,
                          errstr_size);
}

static const eddy_changelog_ops_t kcl_ops = {
    .name = "kafka",
    .append = kcl_append,
    .commit = kcl_commit_w,
    .replay = kcl_replay,
    .truncate_before = kcl_truncate_before,
    .end_offset = kcl_end_offset,
    .start_offset = kcl_start_offset,
    .close = kcl_close,
    .resync = kcl_resync_w,
    .mark = kcl_mark,
    .catch_up = kcl_catch_up,
    .progress = kcl_progress,
    .tail = kcl_tail,
};

/* ------------------------------------------------------------ remote */

static eddy_changelog_t *remote_open(eddy_cl_remote_t *base, int task, uint64_t writer_id,
                                     char *errstr, size_t errstr_size) {
    kcl_remote_t *r = (kcl_remote_t *)base;
    pthread_mutex_lock(&r->open_lock);
    bool up = r->rk != NULL;
    pthread_mutex_unlock(&r->open_lock);
    if (!up || task < 0 || task >= r->partitions) {
        eddy__seterr(errstr, errstr_size, "kafka changelog: task %d: %s", task,
                     up ? "no such partition" : "not set up");
        return NULL;
    }
    kcl_t *k = eddy_calloc(1, sizeof(*k));
    k->cl.ops = &kcl_ops;
    k->r = r;
    /* k->prk: none until the handle writes (writer_join) */
    k->task = task;
    k->writer = writer_id;
    pthread_mutex_init(&k->mu, NULL);
    k->slots = eddy_calloc((size_t)r->nstores + 1, sizeof(*k->slots));
    k->synced = eddy_calloc((size_t)r->nstores, sizeof(int64_t));
    for (int i = 0; i <= r->nstores; i++) {
        k->slots[i].k = k;
        atomic_store(&k->slots[i].end, -1);
    }
    k->at = eddy_calloc((size_t)r->nstores, sizeof(*k->at));
    k->until = eddy_calloc((size_t)r->nstores, sizeof(*k->until));
    for (int i = 0; i < r->nstores; i++) {
        k->synced[i] = -1;
        atomic_store(&k->at[i], -1);
        atomic_store(&k->until[i], -1);
    }
    return &k->cl;
}

/* The topic exists (created if missing: compacted on a real broker) with
 * one partition per task. */
static eddy_err_t ensure_topic(kcl_remote_t *r, const char *topic, char *errstr,
                               size_t errstr_size) {
    return eddy__kafka_ensure_topic(&r->props, topic, r->partitions, false, "cleanup.policy=compact",
                                    "changelog", IO_TIMEOUT_MS, errstr, errstr_size);
}

static void producer_close(kcl_remote_t *r) {
    if (!r->rk)
        return;
    rd_kafka_flush(r->rk, IO_TIMEOUT_MS);
    for (int i = 0; r->rkts && i < r->nstores; i++)
        if (r->rkts[i])
            rd_kafka_topic_destroy(r->rkts[i]);
    eddy_free(r->rkts);
    r->rkts = NULL;
    rd_kafka_destroy(r->rk);
    r->rk = NULL;
    if (r->emb_ref)
        eddy__kafka_embedded_release();
    r->emb_ref = false;
}

/* The topic handles come once the topics exist: a handle asks for
 * metadata, and the embedded cluster creates a topic it is asked about
 * with its default partition count. */
static void producer_topics(kcl_remote_t *r) {
    r->rkts = eddy_calloc((size_t)r->nstores, sizeof(*r->rkts));
    for (int i = 0; i < r->nstores; i++)
        r->rkts[i] = rd_kafka_topic_new(r->rk, r->topics[i], NULL);
}

static eddy_err_t producer_open(kcl_remote_t *r, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(&r->props, &r->emb_ref, errstr, errstr_size);
    if (!conf)
        return EDDY_ERR_CONFIG;
    /* the restore relies on both: ordered, gap-free delivery per partition */
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    if (!eddy__kprops_get(&r->props, "linger.ms"))
        rd_kafka_conf_set(conf, "linger.ms", "2", NULL, 0);
    if (!eddy__kprops_get(&r->props, "client.id")) {
        char cid[256];
        snprintf(cid, sizeof(cid), "eddy-%s-changelog", r->application);
        rd_kafka_conf_set(conf, "client.id", cid, NULL, 0);
    }
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    char why[512];
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!r->rk) {
        rd_kafka_conf_destroy(conf);
        eddy__seterr(errstr, errstr_size, "kafka changelog producer: %s", why);
        return EDDY_ERR_CONFIG;
    }
    atomic_store(&r->renew, false);
    return EDDY_OK;
}

/* A new producer (a new idempotence epoch) in place of r's, under
 * read_lock: the old one goes only once the new one is open, so that the
 * standby copies' readers, which ask r->rk for watermarks, never find it
 * NULL; a failure keeps the old one (and renew set: the next writer tries
 * again). */
typedef struct {
    rd_kafka_t *rk;
    rd_kafka_topic_t **rkts;
    bool emb_ref;
} kprod_t;

/* r's producer, taken out of r (left without one) */
static kprod_t prod_take(kcl_remote_t *r) {
    kprod_t p = {r->rk, r->rkts, r->emb_ref};
    r->rk = NULL;
    r->rkts = NULL;
    r->emb_ref = false;
    return p;
}

static void prod_put(kcl_remote_t *r, kprod_t p) {
    r->rk = p.rk;
    r->rkts = p.rkts;
    r->emb_ref = p.emb_ref;
}

static eddy_err_t producer_renew(kcl_remote_t *r, char *errstr, size_t errstr_size) {
    kprod_t old = prod_take(r);
    eddy_err_t e = producer_open(r, errstr, errstr_size);
    if (!e)
        producer_topics(r);
    kprod_t nw = prod_take(r);
    prod_put(r, old);
    if (e) {
        if (nw.emb_ref) /* taken by the failed open */
            eddy__kafka_embedded_release();
        return e;
    }
    producer_close(r); /* the old one */
    prod_put(r, nw);
    return EDDY_OK;
}

static eddy_err_t remote_setup(eddy_cl_remote_t *base, char *errstr, size_t errstr_size) {
    kcl_remote_t *r = (kcl_remote_t *)base;
    if (r->rk)
        return EDDY_OK;
    eddy_err_t e = producer_open(r, errstr, errstr_size);
    if (e)
        return e;
    r->reader = reader_new(r, &r->reader_emb, errstr, errstr_size);
    if (!r->reader)
        return EDDY_ERR_CONFIG;
    for (int i = 0; i < r->nstores; i++)
        if ((e = ensure_topic(r, r->topics[i], errstr, errstr_size)))
            return e;
    producer_topics(r);
    return EDDY_OK;
}

static void remote_destroy(eddy_cl_remote_t *base) {
    kcl_remote_t *r = (kcl_remote_t *)base;
    producer_close(r);
    reader_destroy(r->reader, r->reader_emb);
    pthread_mutex_destroy(&r->watch_lock);
    pthread_mutex_destroy(&r->read_lock);
    pthread_mutex_destroy(&r->open_lock);
    for (int i = 0; i < r->nstores; i++) {
        eddy_free(r->stores[i]);
        eddy_free(r->topics[i]);
    }
    eddy_free(r->stores);
    eddy_free(r->topics);
    eddy_free(r->application);
    eddy__kprops_free(&r->props);
    eddy_free(r);
}

void eddy__kafka_changelog_share(eddy_cl_remote_t *base, struct eddy_ktxn_s *txn,
                                 int nthreads) {
    kcl_remote_t *r = (kcl_remote_t *)base;
    r->txn = nthreads > 0 ? txn : NULL;
    r->nthreads = nthreads;
    if (r->txn)
        eddy__ktxn_all_reports(r->txn);
}

eddy_cl_remote_t *eddy__kafka_changelog_new(const eddy_cnode_t *kafka, const char *application,
                                            const char *const *stores, int nstores,
                                            int partitions, char *errstr, size_t errstr_size) {
    if (nstores < 1 || nstores > UINT16_MAX || partitions < 1) {
        eddy__seterr(errstr, errstr_size, "kafka changelog: %d stores, %d partitions", nstores,
                     partitions);
        return NULL;
    }
    kcl_remote_t *r = eddy_calloc(1, sizeof(*r));
    r->base.name = "kafka";
    r->base.setup = remote_setup;
    r->base.open = remote_open;
    r->base.destroy = remote_destroy;
    r->base.tasks = partitions;
    r->base.nstores = nstores;
    pthread_mutex_init(&r->read_lock, NULL);
    pthread_mutex_init(&r->open_lock, NULL);
    pthread_mutex_init(&r->watch_lock, NULL);
    r->watch_part = -1;
    r->application = eddy_strdup(application);
    r->partitions = partitions;
    r->nstores = nstores;
    r->stores = eddy_calloc((size_t)nstores, sizeof(char *));
    r->topics = eddy_calloc((size_t)nstores, sizeof(char *));
    for (int i = 0; i < nstores; i++) {
        r->stores[i] = eddy_strdup(stores[i]);
        r->topics[i] = eddy__kafka_changelog_topic(application, stores[i]);
    }
    r->base.stores = (const char *const *)r->stores;
    if (eddy__kprops_from_cnode(&r->props, kafka, errstr, errstr_size)) {
        remote_destroy(&r->base);
        return NULL;
    }
    return &r->base;
}
