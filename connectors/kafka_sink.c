/*
 * Kafka sink: rows to a topic as JSON, Confluent-framed Avro or raw bytes,
 * with an optional key and headers computed by expressions.
 *
 * Producers. One librdkafka producer per stream thread and sink, shared by
 * the thread's tasks; under exactly_once a sink whose properties are the
 * shared ones (no kafka: map of its own that changes them) writes through
 * the stream thread's shared transactional producer instead
 * (connectors/kafka_txn.c), whose one transaction per round the engine
 * commits, and the text below is about a producer of the sink's own. Tasks of a thread run one at a time, so the hot path
 * takes no lock of ours, and a thread's delivery reports are served by its
 * own polls. With processing.guarantee exactly_once the producer is
 * transactional (transactional.id = <application>-<sink>-<instance>-<thread>,
 * so a restarted instance fences its predecessor's zombie and other
 * instances of the application do not fence each other): the transaction is
 * begun lazily before the first record after a commit and committed in
 * the sink's commit(). The engine calls commit() in every commit round
 * after state is durably prepared and before the round is acknowledged, so
 * at-least-once commit() flushes the producer and waits for every delivery
 * report. Several tasks of one thread each call commit() in a round: the
 * first does the work, the others find nothing pending.
 *
 * Nothing is dropped: a full producer queue is met by polling (which
 * serves delivery reports and frees room) and producing again, and a
 * failed delivery (after librdkafka's own retries) fails the next commit,
 * which stops the engine before the round's input positions are
 * acknowledged. The reason (topic, partition, broker error) goes to stderr
 * and the engine stops with EDDY_ERR_IO.
 *
 * Schemas. A sink is declared before the pipelines that feed it, and rows
 * of several schemas can reach it (several pipelines, dead letters, late
 * records), so expressions and the Avro schema are bound per input schema:
 * when a task is set up, for every stream the plan connects to the sink
 * (errors then fail eddy_engine_new() at the expression's file:line:col),
 * and on the first batch of any other schema. Bindings are shared by all
 * tasks (under the sink's lock, taken only on a task's cache miss).
 */
#include "cfg.h"
#include "connectors/avro_write.h"
#include "connectors/json.h"
#include "connectors/kafka.h"
#include "connectors/schema_registry.h"
#include "expr.h"
#include "plan.h"
#include "topology.h"

#include <pthread.h>
#include <stdlib.h>

enum { FMT_JSON, FMT_AVRO, FMT_RAW };
static const char *const format_names[] = {"json", "avro", "raw", NULL};

/* Expressions and Avro schema id for rows of one input schema. */
typedef struct {
    eddy_schema_t *schema; /* referenced */
    eddy_expr_t *key;      /* NULL: no key */
    eddy_expr_t *value;    /* format raw */
    eddy_expr_t **hdr;     /* [nhdr] */
    int32_t avro_id;
} kbind_t;

struct ksink_s;

/* The producer of one stream thread. */
typedef struct {
    const struct ksink_s *c;
    int thread;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    bool embedded_ref;
    int refs;        /* tasks of the thread that use it */
    bool in_txn;     /* exactly_once: a transaction is open */
    bool pending;    /* produced since the last commit */
    bool closing;    /* purged on destroy: purge reports are no failures */
    eddy_kfail_t f;  /* failed deliveries (sticky until closed: the engine stops) */
    eddy_kprod_t *sh;     /* exactly_once: the thread's shared producer, or NULL */
    eddy_kfail_t *fail;   /* &f, or the shared producer's */
} kthr_t;

typedef struct ksink_s {
    char *name;
    char *topic;
    int format;
    const eddy_cnode_t *where, *topic_node, *key_node, *value_node, *format_node;
    int nhdr;
    char **hdr_names;
    const eddy_cnode_t **hdr_nodes;
    int partitions;      /* embedded: create the topic with this many */
    eddy_kprops_t props; /* defaults, then top-level kafka:, then the sink's */
    bool exactly_once;
    bool shared;      /* exactly_once with the shared producers' properties */
    char *txn_prefix; /* <application>-<sink name> */
    char *avro_name;  /* record name of the derived schema */
    char *subject;
    int64_t schema_id; /* -1: register */
    eddy_sr_t *sr;     /* NULL without schema_registry: */
    const eddy_plan_t *plan;
    pthread_mutex_t lock; /* guards what follows */
    kbind_t **binds;
    int nbinds;
    kthr_t *thr; /* [nthr] */
    int nthr;
    bool topic_ready;
} ksink_t;

/* Per-task state. */
#define KCACHE 4
typedef struct {
    kthr_t *t;
    const eddy_schema_t *cache_schema[KCACHE];
    kbind_t *cache_bind[KCACHE];
    int cache_next;
    eddy_buf_t buf;  /* value bytes, then key bytes */
    eddy_buf_t hbuf; /* one header value */
} kop_t;

/* ------------------------------------------------------------ config */

static const char *const sink_keys[] = {"name",    "type",       "topic", "format", "key", "value",
                                        "headers", "partitions", "kafka", "avro",   NULL};
static const char *const avro_keys[] = {"subject", "schema_id", NULL};

static void kbind_free(kbind_t *b, int nhdr) {
    if (!b)
        return;
    eddy__schema_unref(b->schema);
    eddy__expr_destroy(b->key);
    eddy__expr_destroy(b->value);
    for (int i = 0; b->hdr && i < nhdr; i++)
        eddy__expr_destroy(b->hdr[i]);
    eddy_free(b->hdr);
    eddy_free(b);
}

static void ksink_free(void *conf) {
    ksink_t *c = conf;
    if (!c)
        return;
    for (int i = 0; i < c->nbinds; i++)
        kbind_free(c->binds[i], c->nhdr);
    eddy_free(c->binds);
    eddy_free(c->thr); /* producers go with the last task (kop_destroy) */
    for (int i = 0; i < c->nhdr; i++)
        eddy_free(c->hdr_names[i]);
    eddy_free(c->hdr_names);
    eddy_free(c->hdr_nodes);
    eddy__kprops_free(&c->props);
    eddy__sr_destroy(c->sr);
    eddy_free(c->name);
    eddy_free(c->topic);
    eddy_free(c->txn_prefix);
    eddy_free(c->avro_name);
    eddy_free(c->subject);
    pthread_mutex_destroy(&c->lock);
    eddy_free(c);
}

/* transactional.id belongs to eddy: one per stream thread. */
static eddy_err_t refuse_txn_id(const eddy_cnode_t *map, char *errstr, size_t n) {
    for (int i = 0; map && map->kind == EDDY_CNODE_MAP && i < map->n; i++)
        if (!strcmp(map->keys[i], "transactional.id"))
            return eddy__cnode_err(map->key_nodes[i], errstr, n,
                                   "kafka: transactional.id is set by eddy, one per stream "
                                   "thread (<application>-<sink>-<instance>-<thread>), when "
                                   "processing.guarantee is exactly_once");
    return EDDY_OK;
}

static eddy_err_t parse_headers(ksink_t *c, const eddy_cnode_t *h, char *errstr, size_t n) {
    if (!h)
        return EDDY_OK;
    if (h->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(h, errstr, n,
                               "headers: expected a mapping of header name to expression, e.g. "
                               "{reason: reason, source: source}");
    c->hdr_names = eddy_calloc((size_t)h->n + 1, sizeof(char *));
    c->hdr_nodes = eddy_calloc((size_t)h->n + 1, sizeof(eddy_cnode_t *));
    for (int i = 0; i < h->n; i++) {
        if (h->items[i]->kind != EDDY_CNODE_SCALAR || eddy__cfg_is_null(h->items[i]))
            return eddy__cnode_err(h->items[i], errstr, n, "headers: '%s': expected an expression",
                                   h->keys[i]);
        c->hdr_names[i] = eddy_strdup(h->keys[i]);
        c->hdr_nodes[i] = h->items[i];
        c->nhdr++;
    }
    return EDDY_OK;
}

static eddy_err_t expr_node(const eddy_cnode_t *m, const char *key, const eddy_cnode_t **out,
                            char *errstr, size_t n) {
    const eddy_cnode_t *v = eddy__cnode_get(m, key);
    if (!v || eddy__cfg_is_null(v))
        return EDDY_OK;
    if (v->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(v, errstr, n, "%s: expected an expression, e.g. %s: auction", key,
                               key);
    *out = v;
    return EDDY_OK;
}

static eddy_err_t parse_registry(ksink_t *c, const eddy_cnode_t *root, char *errstr, size_t n) {
    const eddy_cnode_t *m = eddy__cnode_get(root, "schema_registry");
    if (!m) {
        if (c->schema_id >= 0)
            return EDDY_OK;
        return eddy__cnode_err(c->format_node, errstr, n,
                               "format avro registers the row schema: add a top-level "
                               "schema_registry: {url: http://...} (or {url: embedded}: a registry "
                               "in this process), or give the id to use with avro: "
                               "{schema_id: N}");
    }
    if (m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m, errstr, n,
                               "schema_registry: expected a mapping like "
                               "{url: http://localhost:8081}");
    char why[512];
    eddy_sr_conf_t *sc = eddy__sr_conf_new();
    for (int i = 0; i < m->n; i++) {
        const eddy_cnode_t *v = m->items[i];
        if (v->kind != EDDY_CNODE_SCALAR ||
            eddy__sr_conf_set(sc, m->keys[i], v->scalar, why, sizeof(why))) {
            eddy__sr_conf_destroy(sc);
            if (v->kind != EDDY_CNODE_SCALAR)
                return eddy__cnode_err(v, errstr, n, "schema_registry: '%s' must be a scalar",
                                       m->keys[i]);
            return eddy__cnode_err(m->key_nodes[i], errstr, n, "%s", why);
        }
    }
    c->sr = eddy__sr_new(sc, why, sizeof(why));
    if (!c->sr) {
        eddy__sr_conf_destroy(sc);
        return eddy__cnode_err(m, errstr, n, "%s", why);
    }
    return EDDY_OK;
}

static eddy_err_t parse_avro(ksink_t *c, const eddy_cnode_t *m, const eddy_cnode_t *root,
                             char *errstr, size_t n) {
    const eddy_cnode_t *a = eddy__cnode_get(m, "avro");
    eddy_err_t err;
    c->schema_id = -1;
    if (a && c->format != FMT_AVRO)
        return eddy__cnode_err(a, errstr, n, "avro: only for format: avro");
    if (a) {
        if (a->kind != EDDY_CNODE_MAP)
            return eddy__cnode_err(a, errstr, n,
                                   "avro: expected a mapping like {subject: out-value} or "
                                   "{schema_id: 12}");
        const char *subject = NULL;
        if ((err = eddy__cfg_check_keys(a, "avro", avro_keys, errstr, n)) ||
            (err = eddy__cfg_str(a, "subject", false, &subject, errstr, n)) ||
            (err = eddy__cfg_int(a, "schema_id", false, 0, INT32_MAX, &c->schema_id, errstr, n)))
            return err;
        if (subject)
            c->subject = eddy_strdup(subject);
    }
    if (c->format != FMT_AVRO)
        return EDDY_OK;
    if (!c->subject)
        c->subject = eddy_asprintf("%s-value", c->topic); /* TopicNameStrategy */
    return parse_registry(c, root, errstr, n);
}

static eddy_err_t ksink_parse(ksink_t *c, eddy_compile_ctx_t *cc, char *errstr, size_t n) {
    const eddy_cnode_t *m = cc->step;
    const eddy_cnode_t *root = cc->topo ? cc->topo->root : NULL;
    const char *name = NULL, *topic = NULL;
    int64_t parts = 0;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(m, "kafka sink", sink_keys, errstr, n)) ||
        (err = eddy__cfg_str(m, "name", true, &name, errstr, n)) ||
        (err = eddy__cfg_str(m, "topic", true, &topic, errstr, n)) ||
        (err = eddy__cfg_enum(m, "format", false, format_names, &c->format, errstr, n)) ||
        (err = eddy__cfg_int(m, "partitions", false, 1, 100000, &parts, errstr, n)) ||
        (err = expr_node(m, "key", &c->key_node, errstr, n)) ||
        (err = expr_node(m, "value", &c->value_node, errstr, n)) ||
        (err = parse_headers(c, eddy__cnode_get(m, "headers"), errstr, n)))
        return err;
    c->name = eddy_strdup(name);
    c->topic = eddy_strdup(topic);
    c->where = m;
    c->topic_node = eddy__cnode_get(m, "topic");
    c->format_node = eddy__cnode_get(m, "format") ? eddy__cnode_get(m, "format") : m;
    c->partitions = (int)parts;
    if (c->value_node && c->format != FMT_RAW)
        return eddy__cnode_err(c->value_node, errstr, n,
                               "value: only for format: raw (json and avro write the whole row)");
    if (!c->value_node && c->format == FMT_RAW)
        return eddy__cnode_err(c->format_node, errstr, n,
                               "format raw needs 'value: <expression>' giving the message bytes");
    eddy__kprops_producer_defaults(&c->props);
    const eddy_cnode_t *top = eddy__cnode_get(root, "kafka"), *own = eddy__cnode_get(m, "kafka");
    if ((err = eddy__kprops_from_cnode(&c->props, top, errstr, n)) ||
        (err = eddy__kprops_from_cnode(&c->props, own, errstr, n)) ||
        (err = refuse_txn_id(top, errstr, n)) || (err = refuse_txn_id(own, errstr, n)))
        return err;
    if (parts && !eddy__kprops_embedded(&c->props))
        return eddy__cnode_err(eddy__cnode_get(m, "partitions"), errstr, n,
                               "partitions: only for bootstrap.servers: embedded (on a real "
                               "cluster create the topic with the partitions it needs)");
    c->exactly_once = cc->plan->settings.exactly_once;
    if (c->exactly_once) {
        /* a sink's own kafka: map that changes the properties (another
         * cluster, other producer settings) keeps a producer of its own */
        eddy_kprops_t shared = {0};
        eddy__kprops_producer_defaults(&shared);
        err = eddy__kprops_from_cnode(&shared, top, errstr, n);
        c->shared = !err && eddy__kprops_same(&shared, &c->props);
        eddy__kprops_free(&shared);
        if (err)
            return err;
    }
    c->txn_prefix = eddy_asprintf("%s-%s", cc->plan->application, name);
    c->avro_name = eddy_strdup(name);
    c->plan = cc->plan;
    return parse_avro(c, m, root, errstr, n);
}

static eddy_err_t ksink_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size) {
    ksink_t *c = eddy_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    eddy_err_t err = ksink_parse(c, cc, errstr, errstr_size);
    if (err) {
        ksink_free(c);
        return err;
    }
    cc->conf = c;
    cc->label = eddy_asprintf("kafka topic %s (%s%s)", c->topic, format_names[c->format],
                              c->exactly_once ? ", transactional" : "");
    return EDDY_OK;
}

/* ------------------------------------------------------------ binding */

static eddy_err_t bind_expr(const eddy_cnode_t *node, const char *what, const eddy_schema_t *s,
                            eddy_expr_t **out, char *errstr, size_t n) {
    if (!node)
        return EDDY_OK;
    char why[400];
    int col = 0;
    *out = eddy__expr_compile(node->scalar, s, why, sizeof(why), &col);
    if (*out)
        return EDDY_OK;
    eddy_buf_t fields = {0};
    for (int i = 0; i < s->nfields; i++)
        eddy_buf_printf(&fields, "%s%s", i ? ", " : "", s->fields[i].name);
    eddy_err_t err = eddy__cnode_err_at(node, col + (node->quoted ? 1 : 0), errstr, n,
                                        "%s: %s (rows reaching this sink have: %s)", what, why,
                                        fields.p ? fields.p : "no fields");
    eddy_buf_free(&fields);
    return err;
}

static eddy_err_t bind_avro(ksink_t *c, kbind_t *b, char *errstr, size_t n) {
    char why[1024];
    char *json = eddy__avro_schema_for_row(b->schema, c->avro_name, "eddy", why, sizeof(why));
    if (!json)
        return eddy__cnode_err(c->format_node, errstr, n, "kafka sink '%s': avro: %s", c->name,
                               why);
    eddy_err_t err = EDDY_OK;
    if (c->schema_id >= 0) {
        b->avro_id = (int32_t)c->schema_id;
        const eddy_avro_schema_t *reg;
        /* with a registry, the given id must describe what is written */
        if (c->sr &&
            ((err = eddy__sr_get_schema(c->sr, b->avro_id, &reg, why, sizeof(why))) ||
             (err = eddy__avro_schema_same(json, eddy__avro_schema_json(reg), why, sizeof(why)))))
            err = eddy__cnode_err(eddy__cnode_get(eddy__cnode_get(c->where, "avro"), "schema_id"),
                                  errstr, n, "kafka sink '%s': avro schema_id %d: %s", c->name,
                                  b->avro_id, why);
    } else if ((err = eddy__sr_register(c->sr, c->subject, json, &b->avro_id, why, sizeof(why)))) {
        err = eddy__cnode_err(c->format_node, errstr, n, "kafka sink '%s': %s", c->name, why);
    }
    eddy_free(json);
    return err;
}

static bool same_shape(const eddy_schema_t *a, const eddy_schema_t *b) {
    if (a->nfields != b->nfields)
        return false;
    for (int i = 0; i < a->nfields; i++)
        if (a->fields[i].type != b->fields[i].type ||
            a->fields[i].nullable != b->fields[i].nullable ||
            strcmp(a->fields[i].name, b->fields[i].name))
            return false;
    return true;
}

/* The binding for rows of schema s: found, or made. Caller holds c->lock. */
static kbind_t *bind_locked(ksink_t *c, const eddy_schema_t *s, char *errstr, size_t n) {
    for (int i = 0; i < c->nbinds; i++)
        if (c->binds[i]->schema == s)
            return c->binds[i];
    for (int i = 0; i < c->nbinds; i++)
        if (same_shape(c->binds[i]->schema, s))
            return c->binds[i];
    kbind_t *b = eddy_calloc(1, sizeof(*b));
    b->schema = eddy__schema_ref(s);
    b->hdr = eddy_calloc((size_t)c->nhdr + 1, sizeof(eddy_expr_t *));
    eddy_err_t err;
    if ((err = bind_expr(c->key_node, "key", s, &b->key, errstr, n)) ||
        (err = bind_expr(c->value_node, "value", s, &b->value, errstr, n)))
        goto fail;
    for (int i = 0; i < c->nhdr; i++) {
        char what[300];
        snprintf(what, sizeof(what), "headers: %s", c->hdr_names[i]);
        if ((err = bind_expr(c->hdr_nodes[i], what, s, &b->hdr[i], errstr, n)))
            goto fail;
    }
    if (c->format == FMT_AVRO && (err = bind_avro(c, b, errstr, n)))
        goto fail;
    c->binds = eddy_realloc(c->binds, sizeof(*c->binds) * (size_t)(c->nbinds + 1));
    c->binds[c->nbinds++] = b;
    return b;
fail:
    kbind_free(b, c->nhdr);
    return NULL;
}

/* The schema the engine gives dead letters (engine/engine.c). */
static eddy_schema_t *dead_letter_schema(void) {
    static const char *const names[] = {"reason", "source", "partition", "offset", "raw"};
    static const eddy_type_t types[] = {EDDY_TYPE_STRING, EDDY_TYPE_STRING, EDDY_TYPE_INT,
                                        EDDY_TYPE_INT, EDDY_TYPE_BYTES};
    return eddy_schema_new(5, names, types);
}

/* Bind every schema the plan sends to node `id`, so that errors show when
 * the engine is built. Caller holds c->lock. */
static eddy_err_t bind_known_inputs(ksink_t *c, int id, char *errstr, size_t n) {
    const eddy_plan_t *p = c->plan;
    const eddy_node_t *node = &p->nodes[id];
    for (int u = 0; u < node->nup; u++) {
        int up = node->up[u];
        if (up >= 0) {
            if (!bind_locked(c, p->nodes[up].out, errstr, n))
                return EDDY_ERR_CONFIG;
            continue;
        }
        const eddy_srcdef_t *src = &p->sources[-1 - up];
        for (int j = 0; j < src->nstreams; j++)
            for (int k = 0; k < src->streams[j].nconsumers; k++)
                if (src->streams[j].consumers[k] == id &&
                    !bind_locked(c, src->streams[j].schema, errstr, n))
                    return EDDY_ERR_CONFIG;
    }
    if (p->dead_letter_node == id) {
        eddy_schema_t *dl = dead_letter_schema();
        kbind_t *b = bind_locked(c, dl, errstr, n);
        eddy__schema_unref(dl);
        if (!b)
            return EDDY_ERR_CONFIG;
    }
    return EDDY_OK;
}

/* Per-task lookup: a small cache in front of the locked list. */
static kbind_t *bind_for(kop_t *st, ksink_t *c, const eddy_schema_t *s) {
    for (int i = 0; i < KCACHE; i++)
        if (st->cache_schema[i] == s)
            return st->cache_bind[i];
    char errstr[1024];
    pthread_mutex_lock(&c->lock);
    kbind_t *b = bind_locked(c, s, errstr, sizeof(errstr));
    pthread_mutex_unlock(&c->lock);
    if (!b) {
        fprintf(stderr, "eddy: %s\n", errstr);
        return NULL;
    }
    st->cache_schema[st->cache_next] = s;
    st->cache_bind[st->cache_next] = b;
    st->cache_next = (st->cache_next + 1) % KCACHE;
    return b;
}

/* ---------------------------------------------------------- producers */

/* Delivery reports (errors only, delivery.report.only.error): served on
 * the thread that polls, which is the producer's stream thread. */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    kthr_t *t = opaque;
    if (!m->err)
        return;
    eddy__kfail_delivery(&t->f, rk, m, t->closing, "topic");
}

/* Report a failure once per thread and producer; EDDY_ERR_TRANSIENT when
 * a new producer and a replay may clear it (the engine recovers), else
 * EDDY_ERR_IO. */
static eddy_err_t kthr_report(kthr_t *t) {
    if (t->fail->why[0]) {
        char text[600];
        eddy__kfail_text(t->fail, text, sizeof(text));
        fprintf(stderr, "eddy: sink %s (thread %d): %s\n", t->c->name, t->thread, text);
    }
    t->fail->why[0] = 0; /* said once; the engine is stopping */
    return eddy__kfail_err(t->fail);
}

static void kthr_close(kthr_t *t) {
    if (t->sh) {
        /* the shared producer outlives the sink's tasks: the engine
         * commits or aborts its transaction (connectors/kafka_txn.c) */
        if (t->rkt)
            rd_kafka_topic_destroy(t->rkt);
        t->rkt = NULL;
        t->rk = NULL;
        t->sh = NULL;
        return;
    }
    if (!t->rk)
        return;
    t->closing = true;
    eddy__kprod_discard(t->rk, t->in_txn);
    if (t->rkt)
        rd_kafka_topic_destroy(t->rkt);
    rd_kafka_destroy(t->rk);
    if (t->embedded_ref)
        eddy__kafka_embedded_release();
    t->rk = NULL;
    t->rkt = NULL;
    t->embedded_ref = false;
    /* opened again (tasks reopened after an engine recovery): a new
     * producer, with nothing failed or pending */
    t->in_txn = t->pending = t->closing = false;
    memset(&t->f, 0, sizeof(t->f));
}

static eddy_err_t kthr_open(ksink_t *c, kthr_t *t, char *errstr, size_t n) {
    char why[512], id[600];
    t->c = c;
    t->fail = &t->f;
    if (c->shared) {
        t->sh = eddy__ktxn_producer(c->plan->ktxn, t->thread, c->nthr, NULL, why, sizeof(why));
        if (!t->sh)
            return eddy__cnode_err(c->where, errstr, n, "kafka sink '%s': %s", c->name, why);
        t->rk = t->sh->rk;
        t->fail = &t->sh->f;
        return EDDY_OK;
    }
    /* one per instance and thread: instances of one application must not
     * fence each other, a restarted instance fences its predecessor */
    snprintf(id, sizeof(id), "%s-%s-%d", c->txn_prefix, c->plan->instance_id, t->thread);
    eddy_err_t err;
    t->rk = eddy__kprod_open(&c->props, c->plan, id, c->exactly_once, false, dr_cb, t,
                             &t->embedded_ref, &err, why, sizeof(why));
    if (!t->rk)
        return eddy__cnode_err(c->where, errstr, n, "kafka sink '%s': %s", c->name, why);
    return EDDY_OK;
}

/* On the embedded cluster create the topic; elsewhere check that it
 * exists, so a typo fails at start rather than after message.timeout.ms. */
static eddy_err_t topic_ready(ksink_t *c, char *errstr, size_t n) {
    char why[512];
    int parts = 0;
    bool emb = eddy__kprops_embedded(&c->props);
    eddy_err_t err =
        eddy__kafka_partitions(&c->props, c->topic, emb ? (c->partitions ? c->partitions : 1) : 0,
                               10000, &parts, why, sizeof(why));
    if (err == EDDY_ERR_NOENT)
        return eddy__cnode_err(c->topic_node, errstr, n,
                               "kafka sink '%s': topic '%s' does not exist", c->name, c->topic);
    if (err)
        return eddy__cnode_err(c->topic_node, errstr, n, "kafka sink '%s': %s", c->name, why);
    return EDDY_OK;
}

/* ------------------------------------------------------------ the op */

static eddy_err_t kop_init(eddy_op_t *op, char *errstr, size_t errstr_size) {
    ksink_t *c = op->node->conf;
    int th = eddy__task_thread(op->task);
    eddy_err_t err = EDDY_OK;
    pthread_mutex_lock(&c->lock);
    if (!c->thr) {
        c->nthr = eddy__task_threads(op->task);
        c->thr = eddy_calloc((size_t)c->nthr, sizeof(kthr_t));
    }
    eddy_assert(th >= 0 && th < c->nthr);
    kthr_t *t = &c->thr[th];
    t->thread = th;
    if (!t->rk)
        err = kthr_open(c, t, errstr, errstr_size);
    if (!err && !c->topic_ready) {
        /* the producer holds the embedded cluster while this runs */
        err = topic_ready(c, errstr, errstr_size);
        if (!err)
            err = bind_known_inputs(c, op->node->id, errstr, errstr_size);
        c->topic_ready = !err;
    }
    /* only now: a topic handle asks for metadata, which would make the
     * embedded cluster create the topic with its default partitions */
    if (!err && !t->rkt)
        t->rkt = rd_kafka_topic_new(t->rk, c->topic, NULL);
    if (err) {
        if (!t->refs)
            kthr_close(t);
    } else {
        t->refs++;
    }
    pthread_mutex_unlock(&c->lock);
    if (err)
        return err;
    kop_t *st = eddy_calloc(1, sizeof(*st));
    st->t = t;
    op->state = st;
    return EDDY_OK;
}

/* Bytes of a scalar for keys, headers and raw values: strings and bytes as
 * they are, numbers, booleans and timestamps (ms) as decimal text. false
 * for NULL. */
static bool value_bytes(eddy_buf_t *b, const eddy_value_t *v) {
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_NULL:
        return false;
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        eddy_buf_put(b, v->u.s, v->len);
        return true;
    case EDDY_TYPE_BOOL:
        eddy_buf_put(b, v->u.i ? "true" : "false", v->u.i ? 4 : 5);
        return true;
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        eddy__json_encode_int(b, v->u.i);
        return true;
    case EDDY_TYPE_DOUBLE:
        eddy__json_encode_double(b, v->u.d);
        return true;
    }
    return false;
}

static eddy_err_t produce(kthr_t *t, rd_kafka_vu_t *vu, size_t nvu, rd_kafka_headers_t *hdrs,
                          size_t len) {
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_produceva(t->rk, vu, nvu);
        if (!e)
            return EDDY_OK;
        rd_kafka_resp_err_t code = rd_kafka_error_code(e);
        if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL && !t->fail->failed) {
            /* backpressure: serve delivery reports until there is room */
            rd_kafka_error_destroy(e);
            rd_kafka_poll(t->rk, 10);
            continue;
        }
        if (!t->fail->failed || code != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            eddy__kfail(t->fail, eddy__kafka_err_transient(t->rk, code),
                      "cannot produce a record of %zu bytes to topic '%s': %s", len, t->c->topic,
                      rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* still ours after a failure */
        return kthr_report(t);
    }
}

/* A row the Avro schema cannot hold goes to the dead letters (unless this
 * sink is the dead-letter output: then it stops the engine). */
static eddy_err_t avro_reject(eddy_op_t *op, ksink_t *c, const eddy_schema_t *s,
                              const eddy_rec_t *r, int bad) {
    kop_t *st = op->state;
    char reason[512];
    const eddy_field_t *f = &s->fields[bad];
    snprintf(reason, sizeof(reason),
             "kafka sink '%s': column '%s' (%s%s) holds %s, which the Avro schema cannot hold",
             c->name, f->name, eddy_type2str(f->type), f->nullable ? ", nullable" : "",
             r->vals[bad].type == EDDY_TYPE_NULL ? "null" : eddy_type2str(r->vals[bad].type));
    if (c->plan->dead_letter_node == op->node->id) {
        fprintf(stderr, "eddy: %s\n", reason);
        return EDDY_ERR_TYPE;
    }
    st->hbuf.len = 0;
    eddy__json_encode_row(&st->hbuf, s, r->vals);
    eddy__task_dead_letter(op->task, reason, op->node->name, r->partition, r->offset, st->hbuf.p,
                           st->hbuf.len);
    return EDDY_OK;
}

static eddy_err_t kop_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    (void)out;
    ksink_t *c = op->node->conf;
    kop_t *st = op->state;
    kthr_t *t = st->t;
    if (t->fail->failed)
        return kthr_report(t);
    kbind_t *b = bind_for(st, c, in->schema);
    if (!b)
        return EDDY_ERR_CONFIG;
    if (t->sh) {
        if (eddy__kprod_begin(t->sh))
            return kthr_report(t);
    } else if (c->exactly_once && !t->in_txn) {
        rd_kafka_error_t *e = rd_kafka_begin_transaction(t->rk);
        if (e) {
            eddy__kfail(&t->f, eddy__kafka_err_transient(t->rk, rd_kafka_error_code(e)),
                      "begin_transaction: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return kthr_report(t);
        }
        eddy__ktxn_count_begin();
        t->in_txn = true;
    }
    eddy_arena_t *arena = eddy__task_arena(op->task);
    uint64_t produced = 0;
    for (uint32_t i = 0; i < in->n; i++) {
        const eddy_rec_t *r = &in->recs[i];
        eddy_value_t v;
        bool has_value = true;
        st->buf.len = 0;
        if (c->format == FMT_JSON) {
            eddy__json_encode_row(&st->buf, in->schema, r->vals);
        } else if (c->format == FMT_AVRO) {
            int bad = -1;
            eddy__avro_wire_header(&st->buf, b->avro_id);
            if (eddy__avro_encode_row(&st->buf, in->schema, r->vals, &bad)) {
                eddy_err_t err = avro_reject(op, c, in->schema, r, bad);
                if (err)
                    return err;
                continue;
            }
        } else {
            eddy__expr_eval(b->value, r->vals, arena, &v);
            has_value = value_bytes(&st->buf, &v); /* NULL: a tombstone */
        }
        size_t vlen = st->buf.len;
        bool has_key = false;
        if (b->key) {
            eddy__expr_eval(b->key, r->vals, arena, &v);
            has_key = value_bytes(&st->buf, &v);
        }
        rd_kafka_headers_t *hdrs = NULL;
        if (c->nhdr) {
            hdrs = rd_kafka_headers_new((size_t)c->nhdr);
            for (int h = 0; h < c->nhdr; h++) {
                eddy__expr_eval(b->hdr[h], r->vals, arena, &v);
                st->hbuf.len = 0;
                bool set = value_bytes(&st->hbuf, &v);
                rd_kafka_header_add(hdrs, c->hdr_names[h], -1, set ? st->hbuf.p : NULL,
                                    set ? (ssize_t)st->hbuf.len : 0);
            }
        }
        rd_kafka_vu_t vu[6];
        size_t nvu = 0;
        vu[nvu].vtype = RD_KAFKA_VTYPE_RKT;
        vu[nvu++].u.rkt = t->rkt;
        vu[nvu].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
        vu[nvu++].u.i = RD_KAFKA_MSG_F_COPY;
        vu[nvu].vtype = RD_KAFKA_VTYPE_VALUE;
        vu[nvu].u.mem.ptr = has_value ? st->buf.p : NULL;
        vu[nvu++].u.mem.size = has_value ? vlen : 0;
        if (has_key) {
            vu[nvu].vtype = RD_KAFKA_VTYPE_KEY;
            vu[nvu].u.mem.ptr = st->buf.p + vlen;
            vu[nvu++].u.mem.size = st->buf.len - vlen;
        }
        if (r->ts_ms > 0) {
            vu[nvu].vtype = RD_KAFKA_VTYPE_TIMESTAMP;
            vu[nvu++].u.i64 = r->ts_ms;
        }
        if (hdrs) {
            vu[nvu].vtype = RD_KAFKA_VTYPE_HEADERS;
            vu[nvu++].u.headers = hdrs;
        }
        eddy_err_t err = produce(t, vu, nvu, hdrs, st->buf.len);
        if (err)
            return err;
        produced++;
    }
    t->pending = true;
    rd_kafka_poll(t->rk, 0);
    eddy__task_count_out(op->task, produced);
    eddy__task_latency(op->task, eddy__now_ns() - eddy__task_ingest_ns(op->task));
    return t->fail->failed ? kthr_report(t) : EDDY_OK;
}

/* exactly_once: commit the thread's transaction, with the round's input
 * offsets of the thread's Kafka sources (connectors/kafka.h). */
static eddy_err_t txn_commit(kthr_t *t, const eddy_ktxo_t *offsets) {
    char why[512];
    bool transient = false;
    if (!eddy__kafka_txn_commit(t->rk, offsets, &t->in_txn, &transient, why, sizeof(why)))
        eddy__kfail(&t->f, transient, "%s", why);
    return t->f.failed ? kthr_report(t) : EDDY_OK;
}

static eddy_err_t kop_commit(eddy_op_t *op) {
    kop_t *st = op->state;
    kthr_t *t = st->t;
    if (t->fail->failed)
        return kthr_report(t);
    if (t->sh)
        return EDDY_OK; /* the engine commits the thread's transaction */
    if (!t->pending && !t->in_txn)
        return EDDY_OK; /* another task of this thread committed the round */
    t->pending = false;
    if (t->in_txn)
        return txn_commit(t, eddy__task_txn_offsets(op->task));
    /* message.timeout.ms bounds this: every record gets a report */
    while (rd_kafka_flush(t->rk, 1000) == RD_KAFKA_RESP_ERR__TIMED_OUT && !t->f.failed)
        ;
    return t->f.failed ? kthr_report(t) : EDDY_OK;
}

static void kop_destroy(eddy_op_t *op) {
    ksink_t *c = op->node->conf;
    kop_t *st = op->state;
    if (!st)
        return;
    pthread_mutex_lock(&c->lock);
    if (--st->t->refs == 0)
        kthr_close(st->t);
    pthread_mutex_unlock(&c->lock);
    eddy_buf_free(&st->buf);
    eddy_buf_free(&st->hbuf);
    eddy_free(st);
    op->state = NULL;
}

extern const eddy_op_ops_t eddy__sink_kafka;

/* connectors/kafka.h */
bool eddy__ktxo_acked(const eddy_plan_t *plan, bool stateful) {
    /* the repartition records and the sinks with the shared properties go
     * through one producer per thread (connectors/kafka_txn.c) */
    bool shared = plan->krp != NULL;
    int producers = 0;
    for (int i = 0; i < plan->nnodes; i++)
        if (plan->nodes[i].ops == &eddy__sink_kafka) {
            const ksink_t *c = plan->nodes[i].conf;
            if (c->shared)
                shared = true;
            else
                producers++;
        }
    return !stateful && producers + (shared ? 1 : 0) > 1;
}

const eddy_op_ops_t eddy__sink_kafka = {
    .abi = EDDY_OP_ABI,
    .name = "kafka",
    .compile = ksink_compile,
    .free_conf = ksink_free,
    .init = kop_init,
    .process = kop_process,
    .commit = kop_commit,
    .destroy = kop_destroy,
    .is_sink = true,
};
