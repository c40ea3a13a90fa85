/*
 * Kafka source: a librdkafka high-level consumer in the consumer group
 * named by the application. The group protocol assigns partitions; each
 * assigned partition opens the task of the same number (its state restored,
 * its position sought), each revoked one closes its task after a final
 * commit (engine/engine.c: eddy__engine_assign).
 *
 * One group thread per source polls the consumer (which also runs the
 * rebalance callback) and takes the messages in batches from a queue of
 * its own that the assigned partitions' fetch queues are forwarded to,
 * routing each batch to the partitions' queues;
 * the task's stream thread takes batches from that queue and decodes them
 * into rows (Avro via the schema registry, JSON, raw bytes, or Debezium
 * change events: connectors/debezium.h, tombstones skipped). A queue
 * past queue.max.messages pauses its partition (backpressure); it resumes
 * when the task has drained it to half.
 *
 * Positions: the offset after the last record a task processed is part of
 * the task's committed state (same RocksDB batch), and a reopened task
 * resumes from it, so state is exactly-once whatever the broker does. The
 * group's committed offsets follow each acknowledged commit; they are used
 * only for a partition whose task has no state of its own.
 *
 * Bad input: an undecodable record (bad magic byte, unknown schema id,
 * truncated body, JSON that does not match) goes to the dead-letter output
 * with topic, partition and offset; processing continues. When the schema
 * registry cannot be reached (after the client's own retries) the task
 * stops taking records (they stay queued and the partition pauses) and
 * retries after a cool-down that doubles up to 30 s: a circuit breaker,
 * never a drop.
 */
#include "cfg.h"
#include "connectors/avro.h"
#include "connectors/debezium.h"
#include "connectors/json.h"
#include "connectors/kafka.h"
#include "connectors/kafka_generation.h"
#include "connectors/schema_registry.h"
#include "plan.h"

#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>

enum { FMT_AVRO, FMT_JSON, FMT_RAW, FMT_DEBEZIUM };
static const char *const fmt_names[] = {"avro", "json", "raw", "debezium", NULL};
static const char *const envelope_names[] = {"json", "avro", NULL};
static const char *const start_names[] = {"earliest", "latest", NULL};

typedef struct krt_s krt_t;

typedef struct {
    char *topic;
    int fmt;
    eddy_kprops_t props;
    bool emb_ref;               /* holds the embedded cluster for the plan's life */
    bool bounded;
    int start;                  /* 0 earliest, 1 latest */
    int64_t queue_max;
    eddy_schema_t *schema;      /* the stream's (owned by the plan) */
    int ts_field;               /* -1: the Kafka message timestamp */
    eddy_avro_schema_t *reader;
    eddy_sr_t *sr;
    eddy_json_dec_t *jdec;
    eddy_dbz_t *dbz;            /* format debezium */
    int envelope;               /* format debezium: 0 json, 1 avro */
    char *group_id;
    krt_t *rt;                  /* while the engine runs */
} ksrc_conf_t;

typedef struct kpart_s {
    krt_t *rt;
    int partition;
    pthread_mutex_t lock;       /* the queue */
    rd_kafka_message_t **q;     /* ring */
    int qhead, qn, qcap;
    bool paused;                /* group thread only */
    atomic_int paused_pub;      /* paused, or the circuit breaker open */
    atomic_int want_resume;
    /* the task's side (its stream thread; the group thread reads `start`
     * once the task is open; `end` and `empty` are set at open from what
     * the group thread read before asking for the task) */
    int64_t start;              /* from the committed state; -1: none */
    int64_t next;               /* offset after the last record processed; -1 unknown */
    int64_t end;                /* bounded: stop here; -1 not known yet */
    bool empty;                 /* bounded: the partition was empty at assignment */
    int64_t group_committed;    /* last offset committed to the group */
    atomic_llong hwm;           /* high watermark, for lag */
    atomic_llong pub_next;      /* `next`, for lag readers */
    rd_kafka_message_t **held;  /* the last batch: rows point into them */
    int nheld, capheld;
    int32_t memo_id;            /* last schema id and its plan */
    const eddy_avro_plan_t *memo_plan;
    int64_t cb_until_ns;        /* circuit breaker open until */
    int64_t cb_backoff_ms;
    uint64_t cb_opened;
} kpart_t;

struct krt_s {
    ksrc_conf_t *c;
    const eddy_srcdef_t *def;
    eddy_engine_t *eng;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_queue_t *mq;       /* our partitions' messages (forwarded to it) */
    pthread_t thr;
    bool thr_started;
    atomic_int stop;
    bool emb_ref;
    kpart_t **parts;            /* [partitions]; set while tasks open/close */
    int nparts;
    /* bounded: each partition's end offset (-1 unknown) and whether it was
     * empty, read by the group thread at assignment before it asks for the
     * tasks, read by ks_open (ThreadSanitizer: writing them into an open
     * task raced with its polls) */
    int64_t *bend;
    bool *bempty;
    rd_kafka_message_t **pending; /* group thread: taken, not yet routed */
    int npending;
};

/* ------------------------------------------------------------- compile */

static const char *const ks_keys[] = {"name",      "type",    "watermark", "topic",
                                      "format",    "schema",  "avro_schema", "timestamp",
                                      "partitions", "bounded", "start",     "kafka",
                                      "queue.max.messages", "envelope", NULL};

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    eddy_buf_t b = {0};
    char tmp[8192];
    size_t n;
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
        eddy_buf_put(&b, tmp, n);
    fclose(f);
    eddy_buf_putc(&b, 0);
    *len = b.len - 1;
    return b.p;
}

/* avro_schema: inline JSON, or a path (relative paths are tried against
 * the topology file's folder first, then the working directory). */
static eddy_err_t load_reader(ksrc_conf_t *c, const eddy_cnode_t *n, char *errstr,
                              size_t errstr_size) {
    const char *v = n->scalar;
    while (*v == ' ' || *v == '\n')
        v++;
    char *text = NULL;
    size_t len = 0;
    if (*v == '{' || *v == '"') {
        text = eddy_strdup(v);
        len = strlen(text);
    } else {
        if (v[0] != '/' && n->file && n->line > 0) {
            char *dup = eddy_strdup(n->file);
            char *path = eddy_asprintf("%s/%s", dirname(dup), v);
            text = read_file(path, &len);
            eddy_free(path);
            eddy_free(dup);
        }
        if (!text)
            text = read_file(v, &len);
        if (!text)
            return eddy__cnode_err(n, errstr, errstr_size, "avro_schema: cannot read '%s': %s", v,
                                   strerror(errno));
    }
    char why[512];
    c->reader = eddy__avro_schema_parse(text, len, why, sizeof(why));
    eddy_free(text);
    if (!c->reader)
        return eddy__cnode_err(n, errstr, errstr_size, "avro_schema: %s", why);
    return EDDY_OK;
}

static eddy_err_t sr_from_root(ksrc_conf_t *c, const eddy_srcdef_t *def, const eddy_cnode_t *m,
                               char *errstr, size_t errstr_size) {
    const eddy_cnode_t *srn = eddy__cnode_get(def->root, "schema_registry");
    if (!srn)
        return eddy__cnode_err(eddy__cnode_get(m, "format"), errstr, errstr_size,
                               "source '%s': format avro needs a top-level schema_registry: "
                               "{url: http://...} (or {url: embedded}: a registry in this "
                               "process)",
                               def->name);
    if (srn->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(srn, errstr, errstr_size,
                               "schema_registry: expected a mapping like {url: http://host:8081}");
    eddy_sr_conf_t *sc = eddy__sr_conf_new();
    for (int i = 0; i < srn->n; i++) {
        const eddy_cnode_t *v = srn->items[i];
        char why[512];
        if (v->kind != EDDY_CNODE_SCALAR ||
            eddy__sr_conf_set(sc, srn->keys[i], v->scalar, why, sizeof(why))) {
            eddy__sr_conf_destroy(sc);
            if (v->kind != EDDY_CNODE_SCALAR)
                return eddy__cnode_err(v, errstr, errstr_size,
                                       "schema_registry: '%s' must be a scalar", srn->keys[i]);
            return eddy__cnode_err(srn->key_nodes[i], errstr, errstr_size, "schema_registry: %s",
                                   why);
        }
    }
    char why[512];
    c->sr = eddy__sr_new(sc, why, sizeof(why));
    if (!c->sr) {
        eddy__sr_conf_destroy(sc);
        return eddy__cnode_err(srn, errstr, errstr_size, "schema_registry: %s", why);
    }
    return EDDY_OK;
}

/* The flat columns of avro_schema: (the reader schema), and the registry
 * that resolves writer schemas; `what` names the format in messages. */
static eddy_err_t avro_columns(ksrc_conf_t *c, const eddy_srcdef_t *def, const eddy_cnode_t *m,
                               const char *what, eddy_schema_t **out, char *errstr,
                               size_t errstr_size) {
    const eddy_cnode_t *sn = eddy__cnode_get(m, "schema");
    const eddy_cnode_t *an = eddy__cnode_get(m, "avro_schema");
    eddy_err_t err;
    if (sn)
        return eddy__cnode_err(sn, errstr, errstr_size,
                               "schema: %s takes its columns from avro_schema (the reader "
                               "schema), not from schema",
                               what);
    if (!an || an->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(an ? an : m, errstr, errstr_size,
                               "source '%s': %s needs avro_schema: a .avsc file or the schema's "
                               "JSON (the reader schema)",
                               def->name, what);
    if ((err = load_reader(c, an, errstr, errstr_size)) ||
        (err = sr_from_root(c, def, m, errstr, errstr_size)))
        return err;
    char why[512];
    *out = eddy__avro_engine_schema(c->reader, why, sizeof(why));
    if (!*out)
        return eddy__cnode_err(an, errstr, errstr_size, "avro_schema: %s", why);
    return EDDY_OK;
}

/* format debezium: the stream is __op + the table's columns, declared in
 * schema: (envelope json) or the after: record of avro_schema: (avro). */
static eddy_err_t dbz_compile(ksrc_conf_t *c, const eddy_srcdef_t *def, const eddy_cnode_t *m,
                              eddy_schema_t **out, char *errstr, size_t errstr_size) {
    const eddy_cnode_t *sn = eddy__cnode_get(m, "schema");
    const eddy_cnode_t *an = eddy__cnode_get(m, "avro_schema");
    eddy_err_t err;
    char why[512];
    if ((err = eddy__cfg_enum(m, "envelope", false, envelope_names, &c->envelope, errstr,
                              errstr_size)))
        return err;
    if (c->envelope == 0) {
        if (an)
            return eddy__cnode_err(an, errstr, errstr_size,
                                   "avro_schema: only with envelope: avro (this source reads "
                                   "Debezium JSON)");
        if (!sn)
            return eddy__cnode_err(m, errstr, errstr_size,
                                   "source '%s': format debezium needs schema: the table's "
                                   "columns, {id: int, name: string, ...}",
                                   def->name);
        eddy_schema_t *cols = eddy__schema_from_cnode(sn, errstr, errstr_size);
        if (!cols)
            return EDDY_ERR_CONFIG;
        c->dbz = eddy__dbz_new(cols, why, sizeof(why));
        eddy__schema_unref(cols);
        if (!c->dbz)
            return eddy__cnode_err(sn, errstr, errstr_size, "schema: %s", why);
    } else {
        /* the columns are the fields of the Envelope's after record */
        eddy_schema_t *flat;
        if ((err = avro_columns(c, def, m, "format debezium with envelope: avro", &flat, errstr,
                                errstr_size)))
            return err;
        c->dbz = eddy__dbz_new_flat(flat, why, sizeof(why));
        eddy__schema_unref(flat);
        if (!c->dbz)
            return eddy__cnode_err(an, errstr, errstr_size, "avro_schema: %s", why);
    }
    *out = eddy__dbz_schema(c->dbz);
    return EDDY_OK;
}

static eddy_err_t ks_compile(eddy_srcdef_t *def, const eddy_cnode_t *m, char *errstr,
                             size_t errstr_size) {
    ksrc_conf_t *c = eddy_calloc(1, sizeof(*c));
    def->conf = c;
    c->ts_field = -1;
    c->queue_max = 100000;
    eddy_err_t err;
    const char *topic = NULL, *ts = NULL;
    int64_t parts = 0;
    if ((err = eddy__cfg_check_keys(m, "kafka source", ks_keys, errstr, errstr_size)) ||
        (err = eddy__cfg_str(m, "topic", true, &topic, errstr, errstr_size)) ||
        (err = eddy__cfg_enum(m, "format", false, fmt_names, &c->fmt, errstr, errstr_size)) ||
        (err = eddy__cfg_str(m, "timestamp", false, &ts, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "partitions", false, 1, 100000, &parts, errstr, errstr_size)) ||
        (err = eddy__cfg_bool(m, "bounded", false, &c->bounded, errstr, errstr_size)) ||
        (err = eddy__cfg_enum(m, "start", false, start_names, &c->start, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "queue.max.messages", false, 1000, 100000000, &c->queue_max,
                             errstr, errstr_size)))
        return err;
    c->topic = eddy_strdup(topic);
    if ((err = eddy__kprops_from_cnode(&c->props, eddy__cnode_get(def->root, "kafka"), errstr,
                                       errstr_size)) ||
        (err = eddy__kprops_from_cnode(&c->props, eddy__cnode_get(m, "kafka"), errstr,
                                       errstr_size)))
        return err;
    const char *gid = eddy__kprops_get(&c->props, "group.id");
    c->group_id = eddy_strdup(gid ? gid : def->application);

    /* the stream's schema */
    eddy_schema_t *s = NULL;
    const eddy_cnode_t *sn = eddy__cnode_get(m, "schema");
    const eddy_cnode_t *an = eddy__cnode_get(m, "avro_schema");
    if (c->fmt != FMT_DEBEZIUM && eddy__cnode_get(m, "envelope"))
        return eddy__cnode_err(eddy__cnode_get(m, "envelope"), errstr, errstr_size,
                               "envelope: only for format debezium");
    if (c->fmt == FMT_DEBEZIUM) {
        if ((err = dbz_compile(c, def, m, &s, errstr, errstr_size)))
            return err;
    } else if (c->fmt == FMT_AVRO) {
        if ((err = avro_columns(c, def, m, "format avro", &s, errstr, errstr_size)))
            return err;
    } else if (c->fmt == FMT_JSON) {
        if (an)
            return eddy__cnode_err(an, errstr, errstr_size,
                                   "avro_schema: only for format avro (this source is json)");
        if (!sn)
            return eddy__cnode_err(m, errstr, errstr_size,
                                   "source '%s': format json needs schema: {field: type, ...}",
                                   def->name);
        s = eddy__schema_from_cnode(sn, errstr, errstr_size);
        if (!s)
            return EDDY_ERR_CONFIG;
        c->jdec = eddy__json_dec_new(s);
    } else {
        if (sn || an)
            return eddy__cnode_err(sn ? sn : an, errstr, errstr_size,
                                   "format raw has the fixed columns key and value (bytes)");
        static const char *const names[] = {"key", "value"};
        static const eddy_type_t types[] = {EDDY_TYPE_BYTES, EDDY_TYPE_BYTES};
        s = eddy_schema_new(2, names, types);
        s->fields[0].nullable = s->fields[1].nullable = true;
    }
    if (ts && strcmp(ts, "kafka") != 0) {
        c->ts_field = eddy__schema_timestamp_field(s, eddy__cnode_get(m, "timestamp"), ts,
                                                   " (or 'kafka' for the message timestamp)",
                                                   errstr, errstr_size);
        if (c->ts_field < 0) {
            eddy__schema_unref(s);
            return EDDY_ERR_CONFIG;
        }
    }
    c->schema = s;
    eddy__srcdef_add_stream(def, NULL, s);

    /* partitions: the topic's, from the cluster */
    bool emb = eddy__kprops_embedded(&c->props);
    if (emb) {
        if ((err = eddy__kafka_embedded_acquire(NULL, 0, errstr, errstr_size)))
            return err;
        c->emb_ref = true;
    }
    int np = 0;
    char why[512];
    err = eddy__kafka_partitions(&c->props, c->topic, emb ? (parts > 0 ? (int)parts : 4) : 0,
                                 10000, &np, why, sizeof(why));
    if (err == EDDY_ERR_IO && !emb && parts > 0) {
        np = (int)parts; /* offline check: trust the config; start() verifies */
        err = EDDY_OK;
    }
    if (err)
        return eddy__cnode_err(eddy__cnode_get(m, "topic"), errstr, errstr_size, "source '%s': %s",
                               def->name, why);
    if (parts > 0 && np != parts)
        return eddy__cnode_err(eddy__cnode_get(m, "partitions"), errstr, errstr_size,
                               "partitions: %lld, but topic '%s' has %d",
                               (long long)parts, c->topic, np);
    def->partitions = np;
    return EDDY_OK;
}

static void ks_free_conf(void *conf) {
    ksrc_conf_t *c = conf;
    if (!c)
        return;
    eddy_free(c->topic);
    eddy_free(c->group_id);
    eddy__kprops_free(&c->props);
    if (c->reader)
        eddy__avro_schema_destroy(c->reader);
    eddy__sr_destroy(c->sr);
    if (c->jdec)
        eddy__json_dec_destroy(c->jdec);
    eddy__dbz_destroy(c->dbz);
    if (c->emb_ref)
        eddy__kafka_embedded_release();
    eddy_free(c);
}

/* ------------------------------------------------------------ queues */

static void q_grow(kpart_t *kp) {
    int ncap = kp->qcap ? kp->qcap * 2 : 1024;
    rd_kafka_message_t **nq = eddy_malloc(sizeof(*nq) * (size_t)ncap);
    for (int i = 0; i < kp->qn; i++)
        nq[i] = kp->q[(kp->qhead + i) % kp->qcap];
    eddy_free(kp->q);
    kp->q = nq;
    kp->qcap = ncap;
    kp->qhead = 0;
}

static void q_push(kpart_t *kp, rd_kafka_message_t *m) {
    if (kp->qn == kp->qcap)
        q_grow(kp);
    kp->q[(kp->qhead + kp->qn) % kp->qcap] = m;
    kp->qn++;
}

/* Put messages back at the front, in order (circuit breaker). */
static void q_unshift(kpart_t *kp, rd_kafka_message_t **ms, int n) {
    for (int i = n - 1; i >= 0; i--) {
        if (kp->qn == kp->qcap)
            q_grow(kp);
        kp->qhead = (kp->qhead + kp->qcap - 1) % kp->qcap;
        kp->q[kp->qhead] = ms[i];
        kp->qn++;
    }
}

static void q_purge(kpart_t *kp) {
    pthread_mutex_lock(&kp->lock);
    for (int i = 0; i < kp->qn; i++)
        rd_kafka_message_destroy(kp->q[(kp->qhead + i) % kp->qcap]);
    kp->qn = kp->qhead = 0;
    pthread_mutex_unlock(&kp->lock);
    for (int i = 0; i < kp->nheld; i++)
        rd_kafka_message_destroy(kp->held[i]);
    kp->nheld = 0;
}

/* --------------------------------------------------------- group thread */

static rd_kafka_topic_partition_list_t *our_parts(krt_t *rt,
                                                  const rd_kafka_topic_partition_list_t *in,
                                                  int **ids, int *n) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(in->cnt);
    *ids = eddy_malloc(sizeof(int) * (size_t)(in->cnt + 1));
    *n = 0;
    for (int i = 0; i < in->cnt; i++) {
        if (strcmp(in->elems[i].topic, rt->c->topic) != 0 || in->elems[i].partition < 0 ||
            in->elems[i].partition >= rt->nparts)
            continue;
        rd_kafka_topic_partition_list_add(l, in->elems[i].topic, in->elems[i].partition);
        (*ids)[(*n)++] = in->elems[i].partition;
    }
    return l;
}

static void route_pending(krt_t *rt);

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    krt_t *rt = opaque;
    route_pending(rt); /* to the tasks of the assignment being changed */
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    int *ids = NULL, n = 0;
    rd_kafka_topic_partition_list_t *mine = our_parts(rt, parts, &ids, &n);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* bounded: where each partition ends, for ks_open of its task */
        for (int i = 0; i < parts->cnt && rt->c->bounded; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            if (tp->partition < 0 || tp->partition >= rt->nparts ||
                strcmp(tp->topic, rt->c->topic))
                continue;
            int64_t lo = 0, hi = 0;
            rd_kafka_resp_err_t we = rd_kafka_query_watermark_offsets(
                rk, rt->c->topic, tp->partition, &lo, &hi, 10000);
            if (we)
                fprintf(stderr,
                        "eddy: source %s: topic %s partition %d: cannot read the end "
                        "offset for bounded: %s (reading on, unbounded)\n",
                        rt->def->name, rt->c->topic, tp->partition, rd_kafka_err2str(we));
            rt->bend[tp->partition] = we ? -1 : hi;
            rt->bempty[tp->partition] = !we && lo == hi;
        }
        /* the generation this assignment belongs to: the instances view
         * orders claims on a task by it (docs/scaleout.md) */
        eddy__engine_set_group_generation(rt->eng,
                                          eddy__kafka_group_generation(rk, rt->c->group_id));
        /* open the tasks first: their restored state says where to start */
        eddy_err_t e = eddy__engine_assign(rt->eng, ids, n, NULL, 0);
        for (int i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_t *tp = &parts->elems[i];
            kpart_t *kp = tp->partition >= 0 && tp->partition < rt->nparts &&
                                  !strcmp(tp->topic, rt->c->topic)
                              ? rt->parts[tp->partition]
                              : NULL;
            /* committed state wins over the group's offsets */
            tp->offset = kp && kp->start >= 0 ? kp->start : RD_KAFKA_OFFSET_INVALID;
        }
        (void)e; /* not running: assign anyway, consume_close revokes */
        /* the messages of our partitions go to rt->mq, not the consumer
         * queue (set before the fetch starts: librdkafka keeps a
         * forward the application made) */
        for (int i = 0; i < n; i++) {
            rd_kafka_queue_t *pq = rd_kafka_queue_get_partition(rk, rt->c->topic, ids[i]);
            if (pq) {
                rd_kafka_queue_forward(pq, rt->mq);
                rd_kafka_queue_destroy(pq);
            }
        }
        rd_kafka_error_t *ae = NULL;
        rd_kafka_resp_err_t re = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (coop)
            ae = rd_kafka_incremental_assign(rk, parts);
        else
            re = rd_kafka_assign(rk, parts);
        if (ae) {
            fprintf(stderr, "eddy: source %s: assign: %s\n", rt->def->name,
                    rd_kafka_error_string(ae));
            rd_kafka_error_destroy(ae);
        } else if (re) {
            fprintf(stderr, "eddy: source %s: assign: %s\n", rt->def->name, rd_kafka_err2str(re));
        }
    } else {
        /* revoked (or lost): final commit, then close the tasks */
        eddy__engine_assign(rt->eng, NULL, 0, ids, n);
        if (coop) {
            rd_kafka_error_t *ae = rd_kafka_incremental_unassign(rk, parts);
            if (ae)
                rd_kafka_error_destroy(ae);
        } else {
            rd_kafka_assign(rk, NULL);
        }
    }
    rd_kafka_topic_partition_list_destroy(mine);
    eddy_free(ids);
}

static void set_paused(krt_t *rt, kpart_t *kp, bool pause) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rt->c->topic, kp->partition);
    if (pause)
        rd_kafka_pause_partitions(rt->rk, l);
    else
        rd_kafka_resume_partitions(rt->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    kp->paused = pause;
    atomic_store(&kp->paused_pub, pause);
}

#define ROUTE_MAX 4096

/* Route the messages taken from the consumer to their partitions' queues
 * (a run of one partition under one lock). Also called at the start of a
 * rebalance callback: what was taken before it belongs to the assignment
 * being changed, and must reach the old tasks' queues (purged when they
 * close, fetched again from the committed position) rather than the new
 * tasks' (where the new fetch would repeat them). */
static void route_pending(krt_t *rt) {
    rd_kafka_message_t **msgs = rt->pending;
    int n = rt->npending, i = 0;
    rt->npending = 0;
    while (i < n) {
        rd_kafka_message_t *m = msgs[i];
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                fprintf(stderr, "eddy: source %s: consumer: %s\n", rt->def->name,
                        rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            i++;
            continue;
        }
        int p = m->partition;
        kpart_t *kp = p >= 0 && p < rt->nparts ? rt->parts[p] : NULL;
        int j = i + 1;
        while (j < n && !msgs[j]->err && msgs[j]->partition == p)
            j++;
        if (!kp) {
            for (int k = i; k < j; k++)
                rd_kafka_message_destroy(msgs[k]);
            i = j;
            continue;
        }
        pthread_mutex_lock(&kp->lock);
        for (int k = i; k < j; k++)
            q_push(kp, msgs[k]);
        bool full = kp->qn >= rt->c->queue_max;
        pthread_mutex_unlock(&kp->lock);
        if (full && !kp->paused)
            set_paused(rt, kp, true);
        i = j;
    }
}

static void *group_main(void *arg) {
    krt_t *rt = arg;
    int64_t last_wm_ns = 0;
    int empty = 0; /* rounds in a row without a message */
    while (!atomic_load(&rt->stop)) {
        /* A batch from rt->mq, where only our partitions' fetches arrive:
         * no rebalance callback runs inside it (they run in
         * consumer_poll below, on this thread), so the batch is routed
         * before any callback and reaches the queues of the assignment it
         * was fetched for. Messages left in rt->mq from a revoked
         * assignment are outdated and dropped by librdkafka. Idle, it waits
         * 1 ms (10 ms after 100 empty rounds): the latency a batch adds. */
        ssize_t n = rd_kafka_consume_batch_queue(rt->mq, empty ? (empty < 100 ? 1 : 10) : 0,
                                                 rt->pending, ROUTE_MAX);
        rt->npending = n > 0 ? (int)n : 0;
        empty = n > 0 ? 0 : empty + 1;
        route_pending(rt);
        /* rebalance callbacks and errors (route_pending() hands a callback
         * what was taken before it), and any message that came the
         * consumer queue's way */
        while (rt->npending < ROUTE_MAX) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rt->rk, 0);
            if (!m)
                break;
            rt->pending[rt->npending++] = m;
            empty = 0;
            if (m->err)
                break;
        }
        route_pending(rt);
        int64_t now = eddy__now_ns();
        bool refresh = now - last_wm_ns > 1000000000LL;
        if (refresh)
            last_wm_ns = now;
        for (int p = 0; p < rt->nparts; p++) {
            kpart_t *kp = rt->parts[p];
            if (!kp)
                continue;
            if (kp->paused && atomic_exchange(&kp->want_resume, 0))
                set_paused(rt, kp, false);
            if (refresh) {
                int64_t lo, hi;
                if (!rd_kafka_get_watermark_offsets(rt->rk, rt->c->topic, p, &lo, &hi) && hi >= 0)
                    atomic_store(&kp->hwm, hi);
            }
        }
    }
    return NULL;
}

static void rt_free(krt_t *rt) {
    if (rt->mq)
        rd_kafka_queue_destroy(rt->mq); /* purges what is left in it */
    if (rt->q)
        rd_kafka_queue_destroy(rt->q);
    if (rt->rk)
        rd_kafka_destroy(rt->rk);
    if (rt->emb_ref)
        eddy__kafka_embedded_release();
    eddy_free(rt->parts);
    eddy_free(rt->bend);
    eddy_free(rt->bempty);
    eddy_free(rt->pending);
    eddy_free(rt);
}

static eddy_err_t ks_start(const eddy_srcdef_t *def, eddy_engine_t *eng, char *errstr,
                           size_t errstr_size) {
    ksrc_conf_t *c = def->conf;
    krt_t *rt = eddy_calloc(1, sizeof(*rt));
    rt->c = c;
    rt->def = def;
    rt->eng = eng;
    rt->nparts = def->partitions;
    rt->parts = eddy_calloc((size_t)rt->nparts + 1, sizeof(kpart_t *));
    rt->bend = eddy_calloc((size_t)rt->nparts + 1, sizeof(int64_t));
    rt->bempty = eddy_calloc((size_t)rt->nparts + 1, sizeof(bool));
    for (int p = 0; p <= rt->nparts; p++)
        rt->bend[p] = -1;
    rt->pending = eddy_malloc(sizeof(*rt->pending) * ROUTE_MAX);
    rd_kafka_conf_t *conf = eddy__kafka_conf_new(&c->props, &rt->emb_ref, errstr, errstr_size);
    if (!conf) {
        rt_free(rt);
        return EDDY_ERR_CONFIG;
    }
    /* defaults the user's kafka: map did not set */
    static const char *const defaults[][2] = {
        {"enable.auto.commit", "false"},      {"enable.auto.offset.store", "false"},
        {"fetch.wait.max.ms", "10"},          {"queued.min.messages", "1000000"},
        {"enable.partition.eof", "false"},    {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "1000"}};
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (!eddy__kprops_get(&c->props, defaults[i][0]))
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], NULL, 0);
    /* memory.max.bytes: this source's share bounds librdkafka's prefetch
     * (64 MiB a partition by default); at least 1 MiB a partition */
    if (def->queue_bytes && !eddy__kprops_get(&c->props, "queued.max.messages.kbytes")) {
        char kb[32];
        int64_t k = def->queue_bytes / 1024;
        snprintf(kb, sizeof(kb), "%lld", (long long)(k < 1024 ? 1024 : k > 2097151 ? 2097151 : k));
        rd_kafka_conf_set(conf, "queued.max.messages.kbytes", kb, NULL, 0);
    }
    if (!eddy__kprops_get(&c->props, "auto.offset.reset"))
        rd_kafka_conf_set(conf, "auto.offset.reset", c->start ? "latest" : "earliest", NULL, 0);
    rd_kafka_conf_set(conf, "group.id", c->group_id, NULL, 0);
    if (!eddy__kprops_get(&c->props, "client.id")) {
        char cid[256];
        snprintf(cid, sizeof(cid), "eddy-%s-%s", def->application, def->name);
        rd_kafka_conf_set(conf, "client.id", cid, NULL, 0);
    }
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, rt);
    char why[512];
    rt->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rt->rk) {
        rd_kafka_conf_destroy(conf);
        rt_free(rt);
        eddy__seterr(errstr, errstr_size, "kafka consumer: %s", why);
        return EDDY_ERR_CONFIG;
    }
    eddy_err_t err = eddy__kafka_subscribe(rt->rk, c->topic, errstr, errstr_size);
    if (err) {
        rt_free(rt);
        return err;
    }
    rt->q = rd_kafka_queue_get_consumer(rt->rk);
    rt->mq = rd_kafka_queue_new(rt->rk);
    c->rt = rt;
    if (pthread_create(&rt->thr, NULL, group_main, rt)) {
        c->rt = NULL;
        rt_free(rt);
        eddy__seterr(errstr, errstr_size, "cannot start the consumer thread");
        return EDDY_ERR_STATE;
    }
    rt->thr_started = true;
    return EDDY_OK;
}

static void ks_stop(const eddy_srcdef_t *def) {
    ksrc_conf_t *c = def->conf;
    krt_t *rt = c->rt;
    if (!rt)
        return;
    atomic_store(&rt->stop, 1);
    if (rt->thr_started)
        pthread_join(rt->thr, NULL);
    route_pending(rt);
    /* librdkafka waits for every message to be destroyed before it ends */
    for (int p = 0; p < rt->nparts; p++)
        if (rt->parts[p])
            q_purge(rt->parts[p]);
    rd_kafka_consumer_close(rt->rk);
    for (int p = 0; p < rt->nparts; p++)
        if (rt->parts[p]) {
            q_purge(rt->parts[p]);
            rt->parts[p]->rt = NULL;
        }
    c->rt = NULL;
    rt_free(rt);
}

/* ------------------------------------------------------------- tasks */

static eddy_err_t ks_open(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                          size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    ksrc_conf_t *c = def->conf;
    /* without a running consumer (eddy__engine_open_all) the partition is
     * passive: state is restored, nothing is read */
    kpart_t *kp = eddy_calloc(1, sizeof(*kp));
    kp->rt = c->rt;
    kp->partition = partition;
    kp->start = kp->next = kp->end = kp->group_committed = -1;
    atomic_store(&kp->hwm, -1);
    atomic_store(&kp->pub_next, -1);
    pthread_mutex_init(&kp->lock, NULL);
    kp->memo_id = -1;
    if (c->rt) {
        c->rt->parts[partition] = kp;
        if (c->bounded) {
            kp->end = c->rt->bend[partition];
            kp->empty = c->rt->bempty[partition];
        }
    }
    *statep = kp;
    return EDDY_OK;
}

static void ks_close(void *state) {
    kpart_t *kp = state;
    q_purge(kp);
    if (kp->rt)
        kp->rt->parts[kp->partition] = NULL;
    pthread_mutex_destroy(&kp->lock);
    eddy_free(kp->q);
    eddy_free(kp->held);
    eddy_free(kp);
}

static void ks_position(void *state, eddy_buf_t *out) {
    kpart_t *kp = state;
    if (kp->next >= 0)
        eddy_buf_put(out, &kp->next, sizeof(kp->next));
}

static eddy_err_t ks_seek(void *state, const char *pos, size_t len, char *errstr,
                          size_t errstr_size) {
    kpart_t *kp = state;
    if (len == 0)
        return EDDY_OK; /* committed before it read anything */
    if (len != sizeof(int64_t)) {
        eddy__seterr(errstr, errstr_size, "kafka position of %zu bytes (expected 8)", len);
        return EDDY_ERR_DECODE;
    }
    memcpy(&kp->start, pos, sizeof(int64_t));
    kp->next = kp->start;
    return EDDY_OK;
}

static void ks_committed(void *state) {
    kpart_t *kp = state;
    krt_t *rt = kp->rt;
    if (!rt || kp->next < 0 || kp->next == kp->group_committed)
        return;
    kp->group_committed = kp->next;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rt->c->topic, kp->partition)->offset = kp->next;
    rd_kafka_commit(rt->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
}

/* ------------------------------------------- transactional offsets */

/* One consumer group's share of a round's offsets (connectors/kafka.h). */
typedef struct {
    rd_kafka_t *consumer;
    rd_kafka_consumer_group_metadata_t *md;
    rd_kafka_topic_partition_list_t *offsets;
} ktxo_group_t;

struct eddy_ktxo_s {
    ktxo_group_t *g;
    int ng, capg;
};

eddy_ktxo_t *eddy__ktxo_new(void) { return eddy_calloc(1, sizeof(eddy_ktxo_t)); }

void eddy__ktxo_reset(eddy_ktxo_t *x) {
    for (int i = 0; i < x->ng; i++) {
        rd_kafka_consumer_group_metadata_destroy(x->g[i].md);
        rd_kafka_topic_partition_list_destroy(x->g[i].offsets);
    }
    x->ng = 0;
}

void eddy__ktxo_free(eddy_ktxo_t *x) {
    if (!x)
        return;
    eddy__ktxo_reset(x);
    eddy_free(x->g);
    eddy_free(x);
}

void eddy__ktxo_add(eddy_ktxo_t *x, const eddy_srcdef_t *def, void *state, bool stateful,
                    bool acked) {
    kpart_t *kp = state;
    if (def->ops != &eddy__src_kafka || !kp || !kp->rt)
        return;
    int64_t next = acked ? kp->group_committed : kp->next;
    if (next < 0 || (stateful && kp->start < 0 && kp->group_committed < 0))
        return;
    krt_t *rt = kp->rt;
    int i = 0;
    while (i < x->ng && x->g[i].consumer != rt->rk)
        i++;
    if (i == x->ng) {
        /* the generation as of this round: a rebalance that takes the
         * partitions away before the commit makes the broker refuse it */
        rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(rt->rk);
        if (!md)
            return;
        if (x->ng == x->capg) {
            x->capg = x->capg ? 2 * x->capg : 2;
            x->g = eddy_realloc(x->g, sizeof(*x->g) * (size_t)x->capg);
        }
        x->g[i] = (ktxo_group_t){rt->rk, md, rd_kafka_topic_partition_list_new(4)};
        x->ng++;
    }
    rd_kafka_topic_partition_list_add(x->g[i].offsets, rt->c->topic, kp->partition)->offset =
        next;
}

rd_kafka_error_t *eddy__ktxo_send(const eddy_ktxo_t *x, rd_kafka_t *rk) {
    for (int i = 0; x && i < x->ng; i++)
        for (int attempt = 0;; attempt++) {
            rd_kafka_error_t *e =
                rd_kafka_send_offsets_to_transaction(rk, x->g[i].offsets, x->g[i].md, 30000);
            if (!e) {
                eddy__ktxn_count_offsets();
                break;
            }
            if (!rd_kafka_error_is_retriable(e) || attempt >= 10)
                return e;
            rd_kafka_error_destroy(e);
        }
    return NULL;
}

/* ------------------------------------------------------------- decode */

/* DEC_SKIP: consumed and counted, neither a row nor a dead letter (a
 * Debezium tombstone). */
typedef enum { DEC_OK, DEC_DEAD, DEC_RETRY, DEC_SKIP } dec_res_t;

static dec_res_t dbz_res(eddy_dbz_res_t r) {
    return r == EDDY_DBZ_ROW ? DEC_OK : r == EDDY_DBZ_TOMBSTONE ? DEC_SKIP : DEC_DEAD;
}

/* *ts: the event time the format carries (Debezium's ts_ms), else
 * INT64_MIN. */
static dec_res_t decode(kpart_t *kp, const rd_kafka_message_t *m, eddy_arena_t *a,
                        eddy_value_t *v, int64_t *ts, char *reason, size_t rsize) {
    ksrc_conf_t *c = kp->rt->c;
    *ts = INT64_MIN;
    /* Debezium: JSON events, and the tombstones of either envelope */
    if (c->fmt == FMT_DEBEZIUM && (!m->payload || c->envelope == 0))
        return dbz_res(eddy__dbz_decode_json(c->dbz, m->payload, m->len, a, v, ts, reason,
                                             rsize));
    if (c->fmt == FMT_RAW) {
        v[0] = m->key ? (eddy_value_t){.u.s = m->key, .len = (uint32_t)m->key_len,
                                       .type = EDDY_TYPE_BYTES}
                      : (eddy_value_t){.type = EDDY_TYPE_NULL};
        v[1] = m->payload ? (eddy_value_t){.u.s = m->payload, .len = (uint32_t)m->len,
                                           .type = EDDY_TYPE_BYTES}
                          : (eddy_value_t){.type = EDDY_TYPE_NULL};
        return DEC_OK;
    }
    if (!m->payload) {
        snprintf(reason, rsize, "null value (tombstone)");
        return DEC_DEAD;
    }
    if (c->fmt == FMT_JSON)
        return eddy__json_decode(c->jdec, m->payload, m->len, a, v, reason, rsize) ? DEC_DEAD
                                                                                   : DEC_OK;
    int32_t id;
    const void *body;
    size_t blen;
    if (eddy__avro_wire_split(m->payload, m->len, &id, &body, &blen, reason, rsize))
        return DEC_DEAD;
    if (id != kp->memo_id) {
        char why[512];
        const eddy_avro_plan_t *plan = NULL;
        eddy_err_t e = eddy__sr_plan(c->sr, id, c->reader, &plan, why, sizeof(why));
        if (e == EDDY_ERR_IO) {
            snprintf(reason, rsize, "%s", why);
            return DEC_RETRY;
        }
        if (e) { /* named by the subject of the topic name strategy */
            snprintf(reason, rsize, "subject %s-value: %s", c->topic, why);
            return DEC_DEAD;
        }
        kp->memo_id = id;
        kp->memo_plan = plan;
    }
    if (c->fmt == FMT_DEBEZIUM) {
        eddy_value_t *flat =
            eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)eddy__dbz_nflat(c->dbz));
        if (eddy__avro_decode(kp->memo_plan, body, blen, a, flat, 0, reason, rsize))
            return DEC_DEAD;
        return dbz_res(eddy__dbz_decode_flat(c->dbz, flat, v, ts, reason, rsize));
    }
    return eddy__avro_decode(kp->memo_plan, body, blen, a, v, 0, reason, rsize) ? DEC_DEAD
                                                                               : DEC_OK;
}

static eddy_err_t ks_poll(void *state, eddy_src_out_t *out, int max, bool *idle) {
    kpart_t *kp = state;
    krt_t *rt = kp->rt;
    for (int i = 0; i < kp->nheld; i++)
        rd_kafka_message_destroy(kp->held[i]);
    kp->nheld = 0;
    if (!rt) {
        *idle = true;
        return EDDY_OK;
    }
    ksrc_conf_t *c = rt->c;
    if (kp->empty) { /* empty at assignment and nothing restored: nothing to wait for */
        kp->empty = false;
        if (kp->next < 0 && kp->start < 0 && kp->end >= 0)
            kp->next = kp->end;
    }
    if (c->bounded && kp->end >= 0 && kp->next >= kp->end)
        return EDDY_ERR_EOF;
    int64_t now = eddy__now_ns();
    if (kp->cb_until_ns && now < kp->cb_until_ns) {
        *idle = true;
        return EDDY_OK;
    }
    if (kp->capheld < max) {
        kp->capheld = max;
        kp->held = eddy_realloc(kp->held, sizeof(*kp->held) * (size_t)max);
    }
    pthread_mutex_lock(&kp->lock);
    int n = kp->qn < max ? kp->qn : max;
    for (int i = 0; i < n; i++)
        kp->held[i] = kp->q[(kp->qhead + i) % kp->qcap];
    if (n) {
        kp->qhead = (kp->qhead + n) % kp->qcap;
        kp->qn -= n;
    }
    bool low = kp->qn < c->queue_max / 2;
    pthread_mutex_unlock(&kp->lock);
    kp->nheld = n;
    if (low && kp->paused)
        atomic_store(&kp->want_resume, 1);
    if (!n) {
        /* a task restored at its partition's end reads nothing: its lag
         * is still known (0), not "unknown" until a record comes */
        atomic_store_explicit(&kp->pub_next, kp->next, memory_order_relaxed);
        *idle = true;
        return EDDY_OK;
    }
    eddy_task_t *task = out->task;
    eddy_batch_t *b = out->batches[0];
    int nf = c->schema->nfields;
    char reason[640];
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = kp->held[i];
        if (c->bounded && kp->end >= 0 && m->offset >= kp->end) {
            /* past the end of a bounded read: not ours to process */
            pthread_mutex_lock(&kp->lock);
            q_unshift(kp, &kp->held[i], n - i);
            pthread_mutex_unlock(&kp->lock);
            kp->nheld = i;
            break;
        }
        eddy_value_t *v = b ? eddy_arena_alloc(b->arena, sizeof(eddy_value_t) * (size_t)nf) : NULL;
        int64_t fmt_ts = INT64_MIN;
        dec_res_t r = b ? decode(kp, m, b->arena, v, &fmt_ts, reason, sizeof(reason)) : DEC_OK;
        if (r == DEC_RETRY) {
            /* circuit breaker: keep this and the rest, try again later */
            pthread_mutex_lock(&kp->lock);
            q_unshift(kp, &kp->held[i], n - i);
            pthread_mutex_unlock(&kp->lock);
            kp->nheld = i;
            kp->cb_backoff_ms = kp->cb_backoff_ms ? kp->cb_backoff_ms * 2 : 1000;
            if (kp->cb_backoff_ms > 30000)
                kp->cb_backoff_ms = 30000;
            kp->cb_until_ns = now + kp->cb_backoff_ms * 1000000LL;
            kp->cb_opened++;
            atomic_store(&kp->paused_pub, 1);
            fprintf(stderr,
                    "eddy: source %s: topic %s partition %d offset %lld: %s; input paused for "
                    "%lld ms (circuit breaker)\n",
                    rt->def->name, c->topic, kp->partition, (long long)m->offset, reason,
                    (long long)kp->cb_backoff_ms);
            break;
        }
        if (kp->cb_until_ns)
            atomic_store(&kp->paused_pub, kp->paused);
        kp->cb_backoff_ms = 0;
        kp->cb_until_ns = 0;
        kp->next = m->offset + 1;
        eddy__task_count_in(task, 1);
        if (!b || r == DEC_SKIP)
            continue;
        if (r == DEC_DEAD) {
            char full[800];
            snprintf(full, sizeof(full), "topic %s partition %d offset %lld: %s", c->topic,
                     kp->partition, (long long)m->offset, reason);
            eddy__task_dead_letter(task, full, c->topic, kp->partition, m->offset, m->payload,
                                   m->len);
            continue;
        }
        int64_t ts;
        if (c->ts_field >= 0) {
            if (v[c->ts_field].type == EDDY_TYPE_NULL) {
                char full[800];
                snprintf(full, sizeof(full),
                         "topic %s partition %d offset %lld: event time field '%s' is null",
                         c->topic, kp->partition, (long long)m->offset,
                         c->schema->fields[c->ts_field].name);
                eddy__task_dead_letter(task, full, c->topic, kp->partition, m->offset,
                                       m->payload, m->len);
                continue;
            }
            ts = v[c->ts_field].u.i;
        } else if (fmt_ts != INT64_MIN) {
            ts = fmt_ts;
        } else {
            rd_kafka_timestamp_type_t tt;
            ts = rd_kafka_message_timestamp(m, &tt);
            if (ts < 0)
                ts = eddy__wall_ms();
        }
        eddy_rec_t *rec = eddy_batch_push(b);
        memset(rec, 0, sizeof(*rec));
        rec->vals = v;
        rec->ts_ms = ts;
        rec->partition = kp->partition;
        rec->offset = m->offset;
    }
    atomic_store_explicit(&kp->pub_next, kp->next, memory_order_relaxed);
    if (c->bounded && kp->end >= 0 && kp->next >= kp->end)
        return EDDY_ERR_EOF;
    return EDDY_OK;
}

static bool ks_lag(void *state, eddy_source_lag_t *out) {
    kpart_t *kp = state;
    if (!kp->rt)
        return false;
    out->topic = kp->rt->c->topic;
    out->partition = kp->partition;
    out->position = atomic_load_explicit(&kp->pub_next, memory_order_relaxed);
    out->end_offset = atomic_load(&kp->hwm);
    out->lag = out->position >= 0 && out->end_offset >= 0 ? out->end_offset - out->position : -1;
    if (out->lag < -1)
        out->lag = 0;
    out->paused = atomic_load(&kp->paused_pub);
    return true;
}

const eddy_src_ops_t eddy__src_kafka = {
    .abi = EDDY_OP_ABI,
    .name = "kafka",
    .compile = ks_compile,
    .free_conf = ks_free_conf,
    .open = ks_open,
    .poll = ks_poll,
    .close = ks_close,
    .position = ks_position,
    .seek = ks_seek,
    .committed = ks_committed,
    .lag = ks_lag,
    .start = ks_start,
    .stop = ks_stop,
};
