/*
 * Topology compiler: configuration tree -> plan.
 *
 * One pass over the tree checks everything a user can get wrong and says
 * where (FILE:LINE:COL): unknown keys, wrong types, unknown stream, sink or
 * operator names (with a did-you-mean), expressions that do not parse or do
 * not type-check against the schema flowing into their step. Pipelines may
 * be written in any order: a pipeline reading another's `as:` stream is
 * compiled after it; a cycle is an error naming the pipelines in it.
 *
 * The plan is the same whether the tree came from YAML or the C builder
 * API, and it is immutable once built, so every task shares it.
 */
#include "cfg.h"
#include "plan.h"
#include "connectors/kafka_changelog.h"
#include "connectors/kafka_repartition.h"
#include "connectors/kafka_txn.h"
#include "state/store.h"
#include "topology.h"

#include <unistd.h>

#define ERRN 512

/* A reference to a stream: a source stream or the output of a node. */
typedef struct {
    int src, stream; /* src >= 0: source stream */
    int node;        /* src < 0: node id */
} sref_t;

typedef struct {
    char *name;
    sref_t ref;
    const eddy_cnode_t *where;
} named_stream_t;

typedef struct {
    eddy_plan_t *plan;
    eddy_topology_t *topo;
    named_stream_t *streams;
    int nstreams;
    char *errstr;
    size_t errstr_size;
} cctx_t;

/* ------------------------------------------------------------ helpers */

int eddy__srcdef_add_stream(eddy_srcdef_t *def, const char *stream, eddy_schema_t *schema) {
    def->streams = eddy_realloc(def->streams, sizeof(*def->streams) * (size_t)(def->nstreams + 1));
    eddy_stream_t *st = &def->streams[def->nstreams];
    memset(st, 0, sizeof(*st));
    if (stream) {
        st->name = eddy_asprintf("%s.%s", def->name, stream);
        st->short_name = eddy_strdup(stream);
    } else {
        st->name = eddy_strdup(def->name);
    }
    st->schema = schema;
    return def->nstreams++;
}

static const eddy_schema_t *ref_schema(cctx_t *cc, sref_t r) {
    if (r.src >= 0)
        return cc->plan->sources[r.src].streams[r.stream].schema;
    return cc->plan->nodes[r.node].out;
}

static void int_push(int **arr, int *n, int v) {
    *arr = eddy_realloc(*arr, sizeof(**arr) * (size_t)(*n + 1));
    (*arr)[(*n)++] = v;
}

static eddy_node_t *node_new(cctx_t *cc, const eddy_op_ops_t *ops, const char *name,
                             const eddy_cnode_t *where) {
    eddy_plan_t *p = cc->plan;
    p->nodes = eddy_realloc(p->nodes, sizeof(*p->nodes) * (size_t)(p->nnodes + 1));
    eddy_node_t *n = &p->nodes[p->nnodes];
    memset(n, 0, sizeof(*n));
    n->id = p->nnodes++;
    n->ops = ops;
    n->name = eddy_strdup(name);
    n->where = where;
    return n;
}

static void connect(cctx_t *cc, sref_t from, int to) {
    eddy_node_t *dst = &cc->plan->nodes[to];
    if (from.src >= 0) {
        eddy_stream_t *st = &cc->plan->sources[from.src].streams[from.stream];
        int_push(&st->consumers, &st->nconsumers, to);
        int_push(&dst->up, &dst->nup, -1 - from.src); /* source marker */
    } else {
        eddy_node_t *src = &cc->plan->nodes[from.node];
        int_push(&src->down, &src->ndown, to);
        int_push(&dst->up, &dst->nup, from.node);
        if (src->ops->is_exchange || src->behind_exchange)
            dst->behind_exchange = true;
    }
}

static named_stream_t *find_stream(cctx_t *cc, const char *name) {
    for (int i = 0; i < cc->nstreams; i++)
        if (!strcmp(cc->streams[i].name, name))
            return &cc->streams[i];
    return NULL;
}

static void add_stream_name(cctx_t *cc, const char *name, sref_t ref, const eddy_cnode_t *where) {
    cc->streams = eddy_realloc(cc->streams, sizeof(*cc->streams) * (size_t)(cc->nstreams + 1));
    cc->streams[cc->nstreams].name = eddy_strdup(name);
    cc->streams[cc->nstreams].ref = ref;
    cc->streams[cc->nstreams].where = where;
    cc->nstreams++;
}

static char *stream_list(cctx_t *cc) {
    eddy_buf_t b = {0};
    for (int i = 0; i < cc->nstreams; i++)
        eddy_buf_printf(&b, "%s%s", i ? ", " : "", cc->streams[i].name);
    if (!b.p)
        eddy_buf_printf(&b, "(none)");
    return b.p;
}

static const char *suggest_stream(cctx_t *cc, const char *name) {
    const char **names = eddy_calloc((size_t)cc->nstreams + 1, sizeof(*names));
    for (int i = 0; i < cc->nstreams; i++)
        names[i] = cc->streams[i].name;
    const char *s = eddy__cfg_suggest(name, names);
    eddy_free(names);
    return s;
}

/* ------------------------------------------------------------ settings */

/* memory.max.bytes is split (docs/memory.md): half to state (caches,
 * RocksDB) unless state.memory.max.bytes says otherwise, which may take at
 * most three quarters; an eighth to sources' prefetch queues; the exchange
 * and the rest (operators' in-memory state, batches, MCP) share what is
 * left, watched by the engine's memory governor. */
static eddy_err_t memory_split(eddy_settings_t *s, const eddy_cnode_t *where, char *e,
                               size_t en) {
    if (!s->memory_bytes)
        return EDDY_OK;
    if (!s->state_memory_set) {
        s->state_memory_bytes = s->memory_bytes / 2;
        return EDDY_OK;
    }
    if (s->state_memory_bytes > s->memory_bytes / 4 * 3) {
        const eddy_cnode_t *n = eddy__cnode_get(where, "state.memory.max.bytes");
        return eddy__cnode_err(n ? n : where, e, en,
                               "state.memory.max.bytes: %lld is more than three quarters of "
                               "memory.max.bytes (%lld); the rest holds sources' queues, the "
                               "exchange and operators' in-memory state",
                               (long long)s->state_memory_bytes, (long long)s->memory_bytes);
    }
    return EDDY_OK;
}

static const char *const settings_keys[] = {
    "threads", "batch.size", "commit.interval.ms", "idle.timeout.ms",
    "max.out.of.orderness.ms", "stats.interval.ms", "dead_letter", "late", "state.dir",
    "memory.max.bytes", "state.memory.max.bytes", "state.checkpoint.interval.ms", "state.checkpoint.max.bytes",
    "processing.guarantee", "state.changelog", "repartition", "repartition.error.timeout.ms",
    "standby.replicas", NULL};

static const char *const guarantee_names[] = {"at_least_once", "exactly_once", NULL};
static const char *const changelog_names[] = {"local", "kafka", NULL};
static const char *const repartition_names[] = {"auto", "kafka", "local", NULL};

static eddy_err_t parse_settings(cctx_t *cc, const eddy_cnode_t *m) {
    eddy_settings_t *s = &cc->plan->settings;
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(m, "settings", settings_keys, e, en)))
        return err;
    int64_t v;
    v = s->threads;
    if ((err = eddy__cfg_int(m, "threads", false, 1, 1024, &v, e, en)))
        return err;
    s->threads = (int)v;
    v = s->batch_size;
    if ((err = eddy__cfg_int(m, "batch.size", false, 1, 65536, &v, e, en)))
        return err;
    s->batch_size = (int)v;
    if ((err = eddy__cfg_duration(m, "commit.interval.ms", false, &s->commit_interval_ms, e, en)))
        return err;
    if ((err = eddy__cfg_duration(m, "idle.timeout.ms", false, &s->idle_timeout_ms, e, en)))
        return err;
    if ((err = eddy__cfg_duration(m, "max.out.of.orderness.ms", false, &s->max_ooo_ms, e, en)))
        return err;
    if ((err = eddy__cfg_duration(m, "stats.interval.ms", false, &s->stats_interval_ms, e, en)))
        return err;
    if ((err = eddy__cfg_bytes(m, "state.memory.max.bytes", false, &s->state_memory_bytes, e,
                               en)) ||
        (err = eddy__cfg_duration(m, "state.checkpoint.interval.ms", false,
                                  &s->checkpoint_interval_ms, e, en)) ||
        (err = eddy__cfg_bytes(m, "state.checkpoint.max.bytes", false, &s->checkpoint_max_bytes,
                               e, en)))
        return err;
    if (s->state_memory_bytes < 32 * 1024 * 1024)
        return eddy__cnode_err(eddy__cnode_get(m, "state.memory.max.bytes"), e, en,
                               "state.memory.max.bytes: %lld is below the minimum of 32MiB",
                               (long long)s->state_memory_bytes);
    if (eddy__cnode_get(m, "state.memory.max.bytes"))
        s->state_memory_set = true;
    if ((err = eddy__cfg_bytes(m, "memory.max.bytes", false, &s->memory_bytes, e, en)))
        return err;
    if (s->memory_bytes && s->memory_bytes < 64 * 1024 * 1024)
        return eddy__cnode_err(eddy__cnode_get(m, "memory.max.bytes"), e, en,
                               "memory.max.bytes: %lld is below the minimum of 64MiB (half of "
                               "it goes to state, whose minimum is 32MiB)",
                               (long long)s->memory_bytes);
    int g = s->exactly_once ? 1 : 0;
    if ((err = eddy__cfg_enum(m, "processing.guarantee", false, guarantee_names, &g, e, en)))
        return err;
    s->exactly_once = g == 1;
    int cl = s->changelog_kafka ? 1 : 0;
    if ((err = eddy__cfg_enum(m, "state.changelog", false, changelog_names, &cl, e, en)))
        return err;
    s->changelog_kafka = cl == 1;
    v = s->standby_replicas;
    if ((err = eddy__cfg_int(m, "standby.replicas", false, 0, 16, &v, e, en)))
        return err;
    s->standby_replicas = (int)v;
    if (v > 0 && !s->changelog_kafka)
        return eddy__cnode_err(eddy__cnode_get(m, "standby.replicas"), e, en,
                               "standby.replicas: standby replicas tail the Kafka changelog "
                               "topics: they need state.changelog: kafka");
    if ((err = eddy__cfg_enum(m, "repartition", false, repartition_names, &s->repartition, e, en)))
        return err;
    if ((err = eddy__cfg_duration(m, "repartition.error.timeout.ms", false,
                                  &s->repartition_error_timeout_ms, e, en)))
        return err;
    /* every task's watermark heartbeat reaches each partition about once
     * a second: a shorter limit would take a blip for a stuck partition */
    if (s->repartition_error_timeout_ms > 0 && s->repartition_error_timeout_ms < 5000)
        return eddy__cnode_err(eddy__cnode_get(m, "repartition.error.timeout.ms"), e, en,
                               "repartition.error.timeout.ms: at least 5s (a healthy partition "
                               "gets a record about once a second), or 0 to retry for ever");
    if (s->repartition_error_timeout_ms > 86400000)
        return eddy__cnode_err(eddy__cnode_get(m, "repartition.error.timeout.ms"), e, en,
                               "repartition.error.timeout.ms: at most 1d, or 0 to retry for ever");
    const char *str = NULL;
    if ((err = eddy__cfg_str(m, "state.dir", false, &str, e, en)))
        return err;
    if (str) {
        eddy_free(s->state_dir);
        s->state_dir = eddy_strdup(str);
    }
    str = NULL;
    if ((err = eddy__cfg_str(m, "dead_letter", false, &str, e, en)))
        return err;
    if (str) {
        eddy_free(s->dead_letter_sink);
        s->dead_letter_sink = eddy_strdup(str);
    }
    str = NULL;
    if ((err = eddy__cfg_str(m, "late", false, &str, e, en)))
        return err;
    if (str) {
        eddy_free(s->late_sink);
        s->late_sink = eddy_strdup(str);
    }
    return EDDY_OK;
}

/* ------------------------------------------------------------- sources */

static const char *const watermark_keys[] = {"max_out_of_orderness", "idle_timeout", NULL};

static eddy_err_t compile_source(cctx_t *cc, const eddy_cnode_t *m) {
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    if (m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m, e, en, "a source must be a mapping with name and type");
    const char *name = NULL, *type = NULL;
    if ((err = eddy__cfg_str(m, "name", true, &name, e, en)) ||
        (err = eddy__cfg_str(m, "type", true, &type, e, en)))
        return err;
    eddy_plan_t *p = cc->plan;
    for (int i = 0; i < p->nsources; i++)
        if (!strcmp(p->sources[i].name, name))
            return eddy__cnode_err(eddy__cnode_get(m, "name"), e, en,
                                   "duplicate source name '%s'", name);
    const eddy_src_ops_t *ops = eddy__src_lookup(type);
    if (!ops) {
        const char *sg = eddy__cfg_suggest(type, eddy__src_names());
        return eddy__cnode_err(eddy__cnode_get(m, "type"), e, en,
                               "unknown source type '%s'%s%s%s", type, sg ? " (did you mean '" : "",
                               sg ? sg : "", sg ? "'?)" : "");
    }
    p->sources = eddy_realloc(p->sources, sizeof(*p->sources) * (size_t)(p->nsources + 1));
    eddy_srcdef_t *def = &p->sources[p->nsources];
    memset(def, 0, sizeof(*def));
    def->idx = p->nsources++;
    def->name = eddy_strdup(name);
    def->ops = ops;
    def->where = m;
    def->root = cc->topo->root;
    def->application = p->application;
    def->exactly_once = p->settings.exactly_once;
    def->partitions = 1;
    def->max_ooo_ms = p->settings.max_ooo_ms;
    def->idle_timeout_ms = p->settings.idle_timeout_ms;
    const eddy_cnode_t *wm = eddy__cnode_get(m, "watermark");
    if (wm) {
        if (wm->kind != EDDY_CNODE_MAP)
            return eddy__cnode_err(wm, e, en,
                                   "watermark: expected a mapping like "
                                   "{max_out_of_orderness: 3s, idle_timeout: 10s}");
        if ((err = eddy__cfg_check_keys(wm, "watermark", watermark_keys, e, en)) ||
            (err = eddy__cfg_duration(wm, "max_out_of_orderness", false, &def->max_ooo_ms, e,
                                      en)) ||
            (err = eddy__cfg_duration(wm, "idle_timeout", false, &def->idle_timeout_ms, e, en)))
            return err;
    }
    if ((err = ops->compile(def, m, e, en)))
        return err;
    if (def->partitions < 1)
        def->partitions = 1;
    if (p->settings.memory_bytes)
        def->queue_bytes = p->settings.memory_bytes / 8 / def->partitions;
    if (def->partitions > p->ntasks)
        p->ntasks = def->partitions;
    for (int i = 0; i < def->nstreams; i++) {
        eddy_stream_t *st = &def->streams[i];
        sref_t r = {def->idx, i, -1};
        if (find_stream(cc, st->name))
            return eddy__cnode_err(m, e, en, "stream name '%s' is already taken", st->name);
        add_stream_name(cc, st->name, r, m);
    }
    return EDDY_OK;
}

/* Short names ("bid") are added after all sources, only when unambiguous. */
static void add_short_names(cctx_t *cc) {
    eddy_plan_t *p = cc->plan;
    for (int s = 0; s < p->nsources; s++) {
        for (int i = 0; i < p->sources[s].nstreams; i++) {
            const char *sn = p->sources[s].streams[i].short_name;
            if (!sn)
                continue;
            int count = 0;
            for (int s2 = 0; s2 < p->nsources; s2++)
                for (int j = 0; j < p->sources[s2].nstreams; j++)
                    if (p->sources[s2].streams[j].short_name &&
                        !strcmp(p->sources[s2].streams[j].short_name, sn))
                        count++;
            if (count == 1 && !find_stream(cc, sn)) {
                sref_t r = {s, i, -1};
                add_stream_name(cc, sn, r, p->sources[s].where);
            }
        }
    }
}

/* --------------------------------------------------------------- sinks */

static const eddy_op_ops_t *sink_ops_of(const eddy_node_t *n) { return n->ops; }

static int find_sink_node(cctx_t *cc, const char *name) {
    char nm[256];
    snprintf(nm, sizeof(nm), "sink:%s", name);
    for (int i = 0; i < cc->plan->nnodes; i++)
        if (sink_ops_of(&cc->plan->nodes[i])->is_sink && !strcmp(cc->plan->nodes[i].name, nm))
            return i;
    return -1;
}

static eddy_err_t compile_sink(cctx_t *cc, const eddy_cnode_t *m) {
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    if (m->kind != EDDY_CNODE_MAP)
        return eddy__cnode_err(m, e, en, "a sink must be a mapping with name and type");
    const char *name = NULL, *type = NULL;
    if ((err = eddy__cfg_str(m, "name", true, &name, e, en)) ||
        (err = eddy__cfg_str(m, "type", true, &type, e, en)))
        return err;
    if (find_sink_node(cc, name) >= 0)
        return eddy__cnode_err(eddy__cnode_get(m, "name"), e, en, "duplicate sink name '%s'",
                               name);
    const eddy_op_ops_t *ops = eddy__sink_lookup(type);
    if (!ops) {
        const char *sg = eddy__cfg_suggest(type, eddy__sink_names());
        return eddy__cnode_err(eddy__cnode_get(m, "type"), e, en,
                               "unknown sink type '%s'%s%s%s", type, sg ? " (did you mean '" : "",
                               sg ? sg : "", sg ? "'?)" : "");
    }
    char nm[300];
    snprintf(nm, sizeof(nm), "sink:%s", name);
    eddy_node_t *n = node_new(cc, ops, nm, m);
    int id = n->id;
    eddy_compile_ctx_t ccx = {.step = m, .arg = m, .in = NULL, .plan = cc->plan,
                              .topo = cc->topo};
    if ((err = ops->compile(&ccx, e, en)))
        return err;
    n = &cc->plan->nodes[id];
    n->conf = ccx.conf;
    n->label = ccx.label ? ccx.label : eddy_asprintf("%s", type);
    return EDDY_OK;
}

/* ----------------------------------------------------------- pipelines */

static const char *const pipeline_keys[] = {"name", "from", "steps", "to", "as", NULL};

/* Put a key_by on xkey in front of the step (groupBy semantics: route on
 * the key first); *cur becomes the key_by node. */
static eddy_err_t add_key_by(cctx_t *cc, const char *pname, int stepno, const char *what,
                             const eddy_cnode_t *step, const eddy_cnode_t *xkey, sref_t *cur) {
    char nm[300];
    snprintf(nm, sizeof(nm), "%s/%d:%s", pname, stepno, what);
    eddy_node_t *kn = node_new(cc, &eddy__op_key_by, nm, step);
    int kid = kn->id;
    eddy_cnode_t fake = *step;
    eddy_cnode_t *items[1] = {(eddy_cnode_t *)xkey};
    fake.items = items;
    fake.n = 1;
    eddy_compile_ctx_t kcc = {.step = &fake, .arg = xkey, .in = ref_schema(cc, *cur),
                              .plan = cc->plan};
    eddy_err_t err = eddy__op_key_by.compile(&kcc, cc->errstr, cc->errstr_size);
    if (err)
        return err;
    kn = &cc->plan->nodes[kid];
    kn->conf = kcc.conf;
    kn->label = kcc.label;
    kn->in = eddy__schema_ref(ref_schema(cc, *cur));
    kn->out = eddy__schema_ref(kn->in);
    connect(cc, *cur, kid);
    cur->src = -1;
    cur->stream = -1;
    cur->node = kid;
    return EDDY_OK;
}

static eddy_err_t unknown_stream(cctx_t *cc, const eddy_cnode_t *at, const char *name) {
    const char *sg = suggest_stream(cc, name);
    char *list = stream_list(cc);
    eddy_err_t err = eddy__cnode_err(at, cc->errstr, cc->errstr_size,
                                     "unknown stream '%s'%s%s%s; known streams: %s", name,
                                     sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "",
                                     list);
    eddy_free(list);
    return err;
}

/* `name` is not a declared sink: the error at `at`, with a did-you-mean
 * and the declared sinks; `more` is appended. */
static eddy_err_t unknown_sink(cctx_t *cc, const eddy_cnode_t *at, const char *more) {
    const char **names = eddy_calloc((size_t)cc->plan->nnodes + 1, sizeof(char *));
    int k = 0;
    for (int j = 0; j < cc->plan->nnodes; j++)
        if (cc->plan->nodes[j].ops->is_sink)
            names[k++] = cc->plan->nodes[j].name + 5;
    const char *sg = eddy__cfg_suggest(at->scalar, names);
    eddy_buf_t b = {0};
    for (int j = 0; j < k; j++)
        eddy_buf_printf(&b, "%s%s", j ? ", " : "", names[j]);
    eddy_err_t err = eddy__cnode_err(
        at, cc->errstr, cc->errstr_size, "unknown sink '%s'%s%s%s; declared sinks: %s%s",
        at->scalar, sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "",
        b.p ? b.p : "(none)", more);
    eddy_buf_free(&b);
    eddy_free(names);
    return err;
}

/* The scalar naming a step's second input stream (a join's `with:`), or
 * NULL. */
static const eddy_cnode_t *step_side_input(const eddy_cnode_t *st) {
    if (st->kind != EDDY_CNODE_MAP || st->n < 1)
        return NULL;
    const eddy_op_ops_t *ops = eddy__op_lookup(st->keys[0]);
    const eddy_cnode_t *with = ops && ops->side_input ? ops->side_input(st) : NULL;
    return with && with->kind == EDDY_CNODE_SCALAR ? with : NULL;
}

/* Does some pipeline read stream `name` (its `from:` or a join's `with:`)? */
static bool stream_is_read(cctx_t *cc, const char *name) {
    const eddy_cnode_t *seq = eddy__cnode_get(cc->topo->root, "pipelines");
    for (int i = 0; seq && seq->kind == EDDY_CNODE_SEQ && i < seq->n; i++) {
        const eddy_cnode_t *from = eddy__cnode_get(seq->items[i], "from");
        if (from && from->kind == EDDY_CNODE_SCALAR && !strcmp(from->scalar, name))
            return true;
        const eddy_cnode_t *steps = eddy__cnode_get(seq->items[i], "steps");
        for (int j = 0; steps && steps->kind == EDDY_CNODE_SEQ && j < steps->n; j++) {
            const eddy_cnode_t *with = step_side_input(steps->items[j]);
            if (with && !strcmp(with->scalar, name))
                return true;
        }
    }
    return false;
}

/* A step's side stream (ccx->side_at names it): a side_stream node behind
 * step node `id`, registered under its name for other pipelines. */
static eddy_err_t side_stream_node(cctx_t *cc, const char *pname, int stepno, int id,
                                   eddy_compile_ctx_t *ccx) {
    const eddy_cnode_t *at = ccx->side_at;
    if (find_stream(cc, at->scalar))
        return eddy__cnode_err(at, cc->errstr, cc->errstr_size,
                               "'%s' is not a sink, and as a stream the name is already taken "
                               "(a source stream or another pipeline's output)",
                               at->scalar);
    if (!stream_is_read(cc, at->scalar))
        return unknown_sink(cc, at, "; or, as a stream, no pipeline reads it (from:)");
    char nm[300];
    snprintf(nm, sizeof(nm), "%s/%d:%s", pname, stepno, at->scalar);
    eddy_node_t *n = node_new(cc, &eddy__op_side_stream, nm, at);
    n->label = eddy_asprintf("side stream %s", at->scalar);
    n->in = eddy__schema_ref(ccx->side_out);
    n->out = eddy__schema_ref(ccx->side_out);
    *ccx->side_node = n->id;
    sref_t step = {-1, -1, id}, side = {-1, -1, n->id};
    connect(cc, step, n->id); /* up[0]: the step's output, dropped */
    add_stream_name(cc, at->scalar, side, at);
    return EDDY_OK;
}

/* The stream a two-input step names (`with:`). */
static eddy_err_t side_stream(cctx_t *cc, const eddy_cnode_t *with, sref_t *out) {
    if (with->kind != EDDY_CNODE_SCALAR)
        return eddy__cnode_err(with, cc->errstr, cc->errstr_size,
                               "expected the name of a stream (a source stream or a "
                               "pipeline's 'as:')");
    named_stream_t *ns = find_stream(cc, with->scalar);
    if (!ns)
        return unknown_stream(cc, with, with->scalar);
    *out = ns->ref;
    return EDDY_OK;
}

/* The side input a step needs before its pipeline can compile (NULL: none
 * or already known). */
static const eddy_cnode_t *missing_side_input(cctx_t *cc, const eddy_cnode_t *pipeline) {
    const eddy_cnode_t *steps = eddy__cnode_get(pipeline, "steps");
    for (int i = 0; steps && steps->kind == EDDY_CNODE_SEQ && i < steps->n; i++) {
        const eddy_cnode_t *with = step_side_input(steps->items[i]);
        if (with && !find_stream(cc, with->scalar))
            return with;
    }
    return NULL;
}

static eddy_err_t compile_step(cctx_t *cc, const char *pname, const char *from_name, int stepno,
                               const eddy_cnode_t *step, sref_t *cur) {
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    if (step->kind != EDDY_CNODE_MAP || step->n < 1)
        return eddy__cnode_err(step, e, en,
                               "a step must be a mapping naming its operator, e.g. "
                               "'- filter: price > 100'");
    const char *opname = step->keys[0];
    const eddy_op_ops_t *ops = eddy__op_lookup(opname);
    const eddy_operator_def_t *udef = NULL;
    if (!ops && (udef = eddy__topology_find_op(cc->topo, opname)))
        ops = &eddy__op_custom;
    if (!ops) {
        const char *sg = eddy__cfg_suggest(opname, eddy__op_names());
        return eddy__cnode_err(step->key_nodes[0], e, en, "unknown operator '%s'%s%s%s", opname,
                               sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "");
    }
    char nm[300];
    const eddy_cnode_t *xkey = ops->exchange_option
                                   ? eddy__cnode_get(step->items[0], ops->exchange_option)
                                   : NULL;
    bool xwanted = xkey != NULL;
    eddy_cnode_t *global_key = NULL;
    if (ops->exchange_key) {
        xkey = ops->exchange_key(step, &xwanted);
        if (xwanted && !xkey) {
            /* no key: one global group, all records to one task */
            global_key = eddy__cnode_new(EDDY_CNODE_SCALAR, step->file, step->line, step->col);
            global_key->scalar = eddy_strdup("0");
            xkey = global_key;
        }
    }
    if (xkey && (err = add_key_by(cc, pname, stepno, "key_by", step, xkey, cur))) {
        eddy__cnode_free(global_key);
        return err;
    }
    eddy__cnode_free(global_key);
    /* a two-input step (join): its right input, keyed the same way */
    sref_t right = {-1, -1, -1};
    const char *right_name = NULL;
    if (ops->side_input) {
        const eddy_cnode_t *with = ops->side_input(step);
        if (with) {
            if ((err = side_stream(cc, with, &right)))
                return err;
            right_name = with->scalar;
            bool rwanted = false;
            const eddy_cnode_t *rkey = ops->side_exchange_key(step, &rwanted);
            if (rkey && (err = add_key_by(cc, pname, stepno, "key_by.right", step, rkey, &right)))
                return err;
        }
    }
    snprintf(nm, sizeof(nm), "%s/%d:%s", pname, stepno, opname);
    eddy_node_t *n = node_new(cc, ops, nm, step);
    int id = n->id;
    eddy_compile_ctx_t ccx = {.step = step,
                              .arg = step->items[0],
                              .in = ref_schema(cc, *cur),
                              .plan = cc->plan,
                              .user_def = udef,
                              .pipeline = pname,
                              .topo = cc->topo,
                              .in2 = right_name ? ref_schema(cc, right) : NULL,
                              .in_name = stepno == 1 ? from_name : pname,
                              .in2_name = right_name};
    int first_store = cc->plan->nstores;
    if ((err = ops->compile(&ccx, e, en))) {
        /* an operator may have set its conf before failing */
        if (ccx.conf && ops->free_conf)
            ops->free_conf(ccx.conf);
        eddy_free(ccx.label);
        eddy__schema_unref(ccx.out);
        eddy__schema_unref(ccx.side_out);
        return err;
    }
    n = &cc->plan->nodes[id];
    for (int i = first_store; i < cc->plan->nstores; i++)
        cc->plan->stores[i]->node = id;
    n->wm_with1 = ccx.wm_with1;
    n->conf = ccx.conf;
    n->label = ccx.label ? ccx.label : eddy_strdup(opname);
    n->in = eddy__schema_ref(ref_schema(cc, *cur));
    n->out = ccx.out ? ccx.out : eddy__schema_ref(n->in);
    connect(cc, *cur, id); /* up[0]: the left input */
    if (right_name) {
        n->in2 = eddy__schema_ref(ref_schema(cc, right));
        connect(cc, right, id);
    }
    cur->src = -1;
    cur->stream = -1;
    cur->node = id;
    err = ccx.side_at ? side_stream_node(cc, pname, stepno, id, &ccx) : EDDY_OK;
    eddy__schema_unref(ccx.side_out);
    return err;
}

static eddy_err_t compile_pipeline(cctx_t *cc, const eddy_cnode_t *m, sref_t from) {
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    const char *name = NULL;
    eddy__cfg_str(m, "name", true, &name, e, en);
    const char *from_name = eddy__cnode_get(m, "from")->scalar;
    sref_t cur = from;
    const eddy_cnode_t *steps = eddy__cnode_get(m, "steps");
    if (steps) {
        if (steps->kind != EDDY_CNODE_SEQ)
            return eddy__cnode_err(steps, e, en, "steps: expected a list of steps");
        for (int i = 0; i < steps->n; i++)
            if ((err = compile_step(cc, name, from_name, i + 1, steps->items[i], &cur)))
                return err;
    }
    const eddy_cnode_t *to = eddy__cnode_get(m, "to");
    const eddy_cnode_t *as = eddy__cnode_get(m, "as");
    if (!to && !as)
        return eddy__cnode_err(m, e, en,
                               "pipeline '%s' has no output: add 'to: <sink>' or 'as: <stream>'",
                               name);
    if (to) {
        const eddy_cnode_t *const *items = (const eddy_cnode_t *const *)&to;
        int nitems = 1;
        if (to->kind == EDDY_CNODE_SEQ) {
            items = (const eddy_cnode_t *const *)to->items;
            nitems = to->n;
        }
        for (int i = 0; i < nitems; i++) {
            const eddy_cnode_t *t = items[i];
            if (t->kind != EDDY_CNODE_SCALAR)
                return eddy__cnode_err(t, e, en, "to: expected a sink name or a list of them");
            int sid = find_sink_node(cc, t->scalar);
            if (sid < 0)
                return unknown_sink(cc, t, "");
            connect(cc, cur, sid);
        }
    }
    if (as) {
        if (as->kind != EDDY_CNODE_SCALAR)
            return eddy__cnode_err(as, e, en, "as: expected a stream name");
        if (find_stream(cc, as->scalar))
            return eddy__cnode_err(as, e, en, "stream name '%s' is already taken", as->scalar);
        add_stream_name(cc, as->scalar, cur, as);
    }
    return EDDY_OK;
}

static eddy_err_t compile_pipelines(cctx_t *cc, const eddy_cnode_t *seq) {
    char *e = cc->errstr;
    size_t en = cc->errstr_size;
    eddy_err_t err;
    int n = seq->n;
    bool *done = eddy_calloc((size_t)n + 1, sizeof(bool));
    /* first pass: shape checks and duplicate names */
    for (int i = 0; i < n; i++) {
        const eddy_cnode_t *m = seq->items[i];
        if (m->kind != EDDY_CNODE_MAP) {
            eddy_free(done);
            return eddy__cnode_err(m, e, en, "a pipeline must be a mapping with name and from");
        }
        const char *name, *from;
        if ((err = eddy__cfg_check_keys(m, "pipeline", pipeline_keys, e, en)) ||
            (err = eddy__cfg_str(m, "name", true, &name, e, en)) ||
            (err = eddy__cfg_str(m, "from", true, &from, e, en))) {
            eddy_free(done);
            return err;
        }
        for (int j = 0; j < i; j++) {
            const char *other = eddy__cnode_get(seq->items[j], "name")->scalar;
            if (!strcmp(other, name)) {
                eddy_free(done);
                return eddy__cnode_err(eddy__cnode_get(m, "name"), e, en,
                                       "duplicate pipeline name '%s'", name);
            }
        }
    }
    /* dependency order: compile a pipeline once its `from` is known */
    int remaining = n;
    while (remaining > 0) {
        bool progress = false;
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            const eddy_cnode_t *m = seq->items[i];
            const char *from = eddy__cnode_get(m, "from")->scalar;
            named_stream_t *ns = find_stream(cc, from);
            if (!ns || missing_side_input(cc, m))
                continue;
            if ((err = compile_pipeline(cc, m, ns->ref))) {
                eddy_free(done);
                return err;
            }
            done[i] = true;
            remaining--;
            progress = true;
        }
        if (!progress)
            break;
    }
    if (remaining > 0) {
        /* Either an unknown stream or a cycle among `as:` streams. */
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            const eddy_cnode_t *m = seq->items[i];
            const eddy_cnode_t *fromn = eddy__cnode_get(m, "from");
            if (find_stream(cc, fromn->scalar))
                fromn = missing_side_input(cc, m); /* a join's `with:` */
            bool produced_later = false;
            for (int j = 0; j < n; j++) {
                const eddy_cnode_t *as = eddy__cnode_get(seq->items[j], "as");
                if (!done[j] && as && as->kind == EDDY_CNODE_SCALAR &&
                    !strcmp(as->scalar, fromn->scalar))
                    produced_later = true;
            }
            if (produced_later)
                err = eddy__cnode_err(fromn, e, en,
                                      "pipelines form a cycle through stream '%s'", fromn->scalar);
            else
                err = unknown_stream(cc, fromn, fromn->scalar);
            eddy_free(done);
            return err;
        }
    }
    eddy_free(done);
    return EDDY_OK;
}

/* -------------------------------------------------------- finishing */

static eddy_err_t topo_sort(cctx_t *cc) {
    eddy_plan_t *p = cc->plan;
    int *indeg = eddy_calloc((size_t)p->nnodes + 1, sizeof(int));
    for (int i = 0; i < p->nnodes; i++) {
        for (int j = 0; j < p->nodes[i].ndown; j++)
            indeg[p->nodes[i].down[j]]++;
        if (p->nodes[i].wm_with1) /* after the node whose watermark it takes */
            indeg[i]++;
    }
    p->topo_order = eddy_calloc((size_t)p->nnodes + 1, sizeof(int));
    int head = 0, tail = 0;
    for (int i = 0; i < p->nnodes; i++)
        if (!indeg[i])
            p->topo_order[tail++] = i;
    while (head < tail) {
        eddy_node_t *n = &p->nodes[p->topo_order[head++]];
        for (int j = 0; j < n->ndown; j++)
            if (--indeg[n->down[j]] == 0)
                p->topo_order[tail++] = n->down[j];
        for (int j = 0; j < p->nnodes; j++)
            if (p->nodes[j].wm_with1 == n->id + 1 && --indeg[j] == 0)
                p->topo_order[tail++] = j;
    }
    eddy_free(indeg);
    for (int i = 0; i < tail; i++)
        p->nodes[p->topo_order[i]].order = i;
    eddy_assert(tail == p->nnodes); /* cycles were rejected while compiling */
    return EDDY_OK;
}

/*
 * Column pruning at exchanges: a record crossing to another task is copied
 * (engine.c), and most of a wide row is often read by nobody behind the
 * exchange (q5 counts bids per auction: one field of seven, and not the
 * long `extra`). An exchange whose consumers all declare the fields they
 * read (input_fields) copies only those, except for a record a consumer
 * could send to the late output, which gets the whole row: the engine asks
 * the consumer (may_be_late) with an upper bound of the watermark the
 * receiving task can have when the record gets there, the sender's own
 * watermark for the exchange (receivers take the minimum over senders),
 * or the highest watermark restored for a consumer. That bound holds only
 * while every sender counts in every receiver's minimum, i.e. while no
 * sender can be left out of it: with an idle timeout anywhere, or a source
 * whose partitions a consumer group assigns (a closed task is left out),
 * nothing is pruned. Through repartition topics no sender is left out (a
 * receiver waits for every task, wherever it runs), so there the group is
 * no reason.
 */
static void exchange_fields(eddy_plan_t *p) {
    for (int s = 0; s < p->nsources; s++)
        if (p->sources[s].idle_timeout_ms > 0 || (p->sources[s].ops->start && !p->krp))
            return;
    for (int i = 0; i < p->nnodes; i++) {
        eddy_node_t *n = &p->nodes[i];
        if (!n->ops->is_exchange || !n->in || !n->ndown)
            continue;
        int nf = n->in->nfields;
        bool *used = eddy_calloc((size_t)nf + 1, sizeof(bool));
        bool all = false;
        for (int d = 0; d < n->ndown && !all; d++) {
            const eddy_node_t *c = &p->nodes[n->down[d]];
            all = !c->ops->input_fields || !c->ops->input_fields(c, used);
        }
        int nused = 0;
        for (int f = 0; f < nf; f++)
            nused += used[f];
        if (all || nused == nf)
            eddy_free(used);
        else
            n->xkeep = used;
    }
}

static eddy_err_t resolve_side_sink(cctx_t *cc, const char *name, const char *what, int *out) {
    *out = -1;
    if (!name)
        return EDDY_OK;
    *out = find_sink_node(cc, name);
    if (*out < 0) {
        const eddy_cnode_t *settings = eddy__cnode_get(cc->topo->root, "settings");
        return eddy__cnode_err(eddy__cnode_get(settings, what), cc->errstr, cc->errstr_size,
                               "%s: unknown sink '%s'", what, name);
    }
    return EDDY_OK;
}

/* state.changelog: kafka needs the top-level kafka: map; the service is
 * made here (no connection yet) and set up when the engine starts. */
static eddy_err_t kafka_changelog(cctx_t *cc) {
    eddy_plan_t *p = cc->plan;
    const eddy_cnode_t *root = cc->topo->root;
    const eddy_cnode_t *kafka = eddy__cnode_get(root, "kafka");
    if (!kafka) {
        const eddy_cnode_t *settings = eddy__cnode_get(root, "settings");
        const eddy_cnode_t *at = eddy__cnode_get(settings, "state.changelog");
        return eddy__cnode_err(at ? at : root, cc->errstr, cc->errstr_size,
                               "state.changelog: kafka needs the topology's top-level kafka: "
                               "map (librdkafka properties, e.g. kafka: {bootstrap.servers: "
                               "host:9092})");
    }
    if (p->nstores == 0)
        return EDDY_OK;
    const char **names = eddy_calloc((size_t)p->nstores, sizeof(char *));
    for (int i = 0; i < p->nstores; i++)
        names[i] = p->stores[i]->name;
    p->cl_remote = eddy__kafka_changelog_new(kafka, p->application, names, p->nstores, p->ntasks,
                                             cc->errstr, cc->errstr_size);
    eddy_free(names);
    return p->cl_remote ? EDDY_OK : EDDY_ERR_CONFIG;
}

/* settings.repartition: kafka, or auto with a source whose partitions a
 * consumer group assigns: every exchange gets a repartition topic (engine
 * side in engine.c, transport in connectors/kafka_repartition.c). */
static eddy_err_t repartition(cctx_t *cc) {
    eddy_plan_t *p = cc->plan;
    bool grouped = false;
    for (int s = 0; s < p->nsources; s++)
        grouped |= p->sources[s].ops->start != NULL;
    int mode = p->settings.repartition;
    if (mode == EDDY_REPARTITION_LOCAL || (mode == EDDY_REPARTITION_AUTO && !grouped))
        return EDDY_OK;
    const char **names = eddy_calloc((size_t)p->nnodes + 1, sizeof(char *));
    int nx = 0;
    for (int i = 0; i < p->nnodes; i++)
        if (p->nodes[i].ops->is_exchange)
            names[nx++] = p->nodes[i].name;
    if (nx)
        p->krp = eddy__krp_new(eddy__cnode_get(cc->topo->root, "kafka"), p->application, names,
                               nx, p->ntasks, cc->errstr, cc->errstr_size);
    eddy_free(names);
    if (!nx)
        return EDDY_OK;
    if (!p->krp)
        return EDDY_ERR_CONFIG;
    eddy__krp_share(p->krp, p->ktxn);
    /* under exactly_once a healthy partition's records become visible
     * only when a commit round ends: never less than two rounds */
    int64_t stall_ms = p->settings.repartition_error_timeout_ms;
    if (stall_ms && p->settings.exactly_once && stall_ms < 2 * p->settings.commit_interval_ms)
        stall_ms = 2 * p->settings.commit_interval_ms;
    p->settings.repartition_error_timeout_ms = stall_ms; /* the engine's streak reads it */
    eddy__krp_error_timeout(p->krp, stall_ms);
    return EDDY_OK;
}

/* exactly_once: one transactional producer per stream thread for the
 * Kafka sinks and the repartition records (connectors/kafka_txn.c); it
 * opens only if one of them produces. */
static eddy_err_t txn_producers(cctx_t *cc) {
    eddy_plan_t *p = cc->plan;
    if (!p->settings.exactly_once)
        return EDDY_OK;
    p->ktxn = eddy__ktxn_new(eddy__cnode_get(cc->topo->root, "kafka"), p, cc->errstr,
                             cc->errstr_size);
    return p->ktxn ? EDDY_OK : EDDY_ERR_CONFIG;
}

static const char *const root_keys[] = {"application", "settings", "kafka", "schema_registry",
                                         "sources", "pipelines", "sinks", NULL};

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}

eddy_plan_t *eddy__plan_compile(eddy_topology_t *topo, const eddy_conf_t *conf, char *errstr,
                                size_t errstr_size) {
    char *e = errstr;
    size_t en = errstr_size;
    eddy_err_t err;
    const eddy_cnode_t *root = topo->root;
    cctx_t cc = {.topo = topo, .errstr = errstr, .errstr_size = errstr_size};
    eddy_plan_t *p = cc.plan = eddy_calloc(1, sizeof(*p));
    p->settings.threads = default_threads();
    p->settings.batch_size = 1024;
    p->settings.commit_interval_ms = 1000;
    p->settings.idle_timeout_ms = 0;
    p->settings.stats_interval_ms = 1000;
    p->settings.state_memory_bytes = 256 * 1024 * 1024;
    p->settings.checkpoint_interval_ms = 10000;
    p->settings.checkpoint_max_bytes = 16 * 1024 * 1024;
    p->settings.repartition_error_timeout_ms = 60000;
    p->dead_letter_node = p->late_node = -1;

    if ((err = eddy__cfg_check_keys(root, "topology", root_keys, e, en)))
        goto fail;
    const char *app = NULL;
    if ((err = eddy__cfg_str(root, "application", true, &app, e, en)))
        goto fail;
    p->application = eddy_strdup(app);
    const eddy_cnode_t *settings = eddy__cnode_get(root, "settings");
    if (settings) {
        if (settings->kind != EDDY_CNODE_MAP) {
            eddy__cnode_err(settings, e, en, "settings: expected a mapping");
            goto fail;
        }
        if ((err = parse_settings(&cc, settings)))
            goto fail;
    }
    if (conf && (err = eddy__conf_apply(conf, &p->settings, e, en)))
        goto fail;
    if ((err = memory_split(&p->settings, settings ? settings : root, e, en)))
        goto fail;

    const eddy_cnode_t *sources = eddy__cnode_get(root, "sources");
    if (!sources || sources->kind != EDDY_CNODE_SEQ || sources->n == 0) {
        eddy__cnode_err(sources ? sources : root, e, en,
                        "sources: expected a non-empty list of sources");
        goto fail;
    }
    for (int i = 0; i < sources->n; i++)
        if ((err = compile_source(&cc, sources->items[i])))
            goto fail;
    add_short_names(&cc);

    const eddy_cnode_t *sinks = eddy__cnode_get(root, "sinks");
    if (sinks) {
        if (sinks->kind != EDDY_CNODE_SEQ) {
            eddy__cnode_err(sinks, e, en, "sinks: expected a list of sinks");
            goto fail;
        }
        for (int i = 0; i < sinks->n; i++)
            if ((err = compile_sink(&cc, sinks->items[i])))
                goto fail;
    }
    const eddy_cnode_t *pipelines = eddy__cnode_get(root, "pipelines");
    if (!pipelines || pipelines->kind != EDDY_CNODE_SEQ || pipelines->n == 0) {
        eddy__cnode_err(pipelines ? pipelines : root, e, en,
                        "pipelines: expected a non-empty list of pipelines");
        goto fail;
    }
    if ((err = compile_pipelines(&cc, pipelines)))
        goto fail;
    if ((err = resolve_side_sink(&cc, p->settings.dead_letter_sink, "dead_letter",
                                 &p->dead_letter_node)) ||
        (err = resolve_side_sink(&cc, p->settings.late_sink, "late", &p->late_node)))
        goto fail;
    topo_sort(&cc);
    if (p->ntasks < 1)
        p->ntasks = 1;
    if ((err = txn_producers(&cc)) || (err = repartition(&cc)))
        goto fail;
    exchange_fields(p);
    if (p->settings.changelog_kafka && (err = kafka_changelog(&cc)))
        goto fail;
    for (int i = 0; i < cc.nstreams; i++)
        eddy_free(cc.streams[i].name);
    eddy_free(cc.streams);
    return p;
fail:
    for (int i = 0; i < cc.nstreams; i++)
        eddy_free(cc.streams[i].name);
    eddy_free(cc.streams);
    eddy__plan_free(p);
    return NULL;
}

void eddy__plan_free(eddy_plan_t *p) {
    if (!p)
        return;
    for (int i = 0; i < p->nsources; i++) {
        eddy_srcdef_t *s = &p->sources[i];
        if (s->conf && s->ops->free_conf)
            s->ops->free_conf(s->conf);
        for (int j = 0; j < s->nstreams; j++) {
            eddy_free(s->streams[j].name);
            eddy_free(s->streams[j].short_name);
            eddy__schema_unref(s->streams[j].schema);
            eddy_free(s->streams[j].consumers);
        }
        eddy_free(s->streams);
        eddy_free(s->name);
    }
    eddy_free(p->sources);
    for (int i = 0; i < p->nnodes; i++) {
        eddy_node_t *n = &p->nodes[i];
        if (n->conf && n->ops->free_conf)
            n->ops->free_conf(n->conf);
        eddy_free(n->name);
        eddy_free(n->label);
        eddy__schema_unref(n->in);
        eddy__schema_unref(n->in2);
        eddy__schema_unref(n->out);
        eddy_free(n->down);
        eddy_free(n->up);
        eddy_free(n->xkeep);
    }
    eddy_free(p->nodes);
    eddy_free(p->topo_order);
    eddy_free(p->application);
    for (int i = 0; i < p->nstores; i++) {
        eddy_store_def_t *d = p->stores[i];
        eddy_free(d->name);
        eddy__schema_unref(d->key_schema);
        eddy__schema_unref(d->value_schema);
        eddy_free(d);
    }
    eddy_free(p->stores);
    eddy__cl_remote_destroy(p->cl_remote);
    eddy__krp_destroy(p->krp);
    eddy__ktxn_destroy(p->ktxn); /* after its users */
    eddy_free(p->settings.state_dir);
    eddy_free(p->settings.dead_letter_sink);
    eddy_free(p->settings.late_sink);
    eddy_free(p);
}

int eddy__plan_add_store(eddy_plan_t *plan, eddy_store_def_t *def) {
    plan->stores = eddy_realloc(plan->stores, sizeof(*plan->stores) * (size_t)(plan->nstores + 1));
    plan->stores[plan->nstores] = def;
    return plan->nstores++;
}

const eddy_store_def_t *eddy__plan_find_store(const eddy_plan_t *plan, const char *name) {
    for (int i = 0; i < plan->nstores; i++)
        if (!strcmp(plan->stores[i]->name, name))
            return plan->stores[i];
    return NULL;
}

/* ------------------------------------------------------------ describe */

static void esc_label(eddy_buf_t *b, const char *s, bool dot) {
    for (; *s; s++) {
        if (*s == '"')
            eddy_buf_put(b, dot ? "\\\"" : "#quot;", dot ? 2 : 6);
        else if (*s == '\n')
            eddy_buf_putc(b, ' ');
        else
            eddy_buf_putc(b, *s);
    }
}

char *eddy_topology_describe(eddy_topology_t *topo, const char *format, char *errstr,
                             size_t errstr_size) {
    bool dot;
    if (!format || !strcmp(format, "mermaid"))
        dot = false;
    else if (!strcmp(format, "dot"))
        dot = true;
    else {
        eddy__seterr(errstr, errstr_size, "unknown format '%s': expected mermaid or dot", format);
        return NULL;
    }
    eddy_plan_t *p = eddy__plan_compile(topo, NULL, errstr, errstr_size);
    if (!p)
        return NULL;
    eddy_buf_t b = {0};
    if (dot)
        eddy_buf_printf(&b, "digraph \"%s\" {\n  rankdir=LR;\n", p->application);
    else
        eddy_buf_printf(&b, "flowchart LR\n");
    for (int s = 0; s < p->nsources; s++) {
        eddy_srcdef_t *sd = &p->sources[s];
        if (dot)
            eddy_buf_printf(&b, "  s%d [shape=cylinder,label=\"%s: %s, %d partition(s)\"];\n", s,
                            sd->name, sd->ops->name, sd->partitions);
        else
            eddy_buf_printf(&b, "  s%d[(\"%s: %s, %d partition(s)\")]\n", s, sd->name,
                            sd->ops->name, sd->partitions);
    }
    for (int i = 0; i < p->nnodes; i++) {
        eddy_node_t *n = &p->nodes[i];
        if (dot)
            eddy_buf_printf(&b, "  n%d [shape=%s,label=\"", i, n->ops->is_sink ? "box3d" : "box");
        else
            eddy_buf_printf(&b, n->ops->is_sink ? "  n%d[/\"" : "  n%d[\"", i);
        esc_label(&b, n->name, dot);
        eddy_buf_printf(&b, "%s", dot ? "\\n" : "<br/>");
        esc_label(&b, n->label ? n->label : "", dot);
        eddy_buf_printf(&b, "%s", dot ? "\"];\n" : (n->ops->is_sink ? "\"/]\n" : "\"]\n"));
    }
    for (int s = 0; s < p->nsources; s++) {
        eddy_srcdef_t *sd = &p->sources[s];
        for (int j = 0; j < sd->nstreams; j++)
            for (int k = 0; k < sd->streams[j].nconsumers; k++) {
                if (dot)
                    eddy_buf_printf(&b, "  s%d -> n%d [label=\"%s\"];\n", s,
                                    sd->streams[j].consumers[k], sd->streams[j].name);
                else
                    eddy_buf_printf(&b, "  s%d -- %s --> n%d\n", s, sd->streams[j].name,
                                    sd->streams[j].consumers[k]);
            }
    }
    for (int i = 0; i < p->nnodes; i++) {
        eddy_node_t *n = &p->nodes[i];
        for (int k = 0; k < n->ndown; k++) {
            if (dot)
                eddy_buf_printf(&b, "  n%d -> n%d%s;\n", i, n->down[k],
                                n->ops->is_exchange ? " [style=dashed,label=\"exchange\"]" : "");
            else
                eddy_buf_printf(&b, "  n%d %s n%d\n", i,
                                n->ops->is_exchange ? "-. exchange .->" : "-->", n->down[k]);
        }
    }
    if (dot)
        eddy_buf_printf(&b, "}\n");
    eddy__plan_free(p);
    return b.p;
}

/* ---------------------------------------------------------- eddy_conf_t */

/* A conf object is a settings map built through the API: applying it goes
 * through the same parser as `settings:` in YAML, so both accept the same
 * keys and values and give the same messages. */
struct eddy_conf_s {
    eddy_cnode_t *map;
};

eddy_conf_t *eddy_conf_new(void) {
    eddy_conf_t *conf = eddy_calloc(1, sizeof(*conf));
    conf->map = eddy__cnode_new(EDDY_CNODE_MAP, "<conf>", 0, 0);
    return conf;
}

void eddy_conf_destroy(eddy_conf_t *conf) {
    if (!conf)
        return;
    eddy__cnode_free(conf->map);
    eddy_free(conf);
}

static eddy_err_t apply_map(const eddy_cnode_t *map, eddy_settings_t *s, char *errstr,
                            size_t errstr_size) {
    eddy_plan_t tmp = {0};
    tmp.settings = *s;
    cctx_t cc = {.plan = &tmp, .errstr = errstr, .errstr_size = errstr_size};
    eddy_err_t err = parse_settings(&cc, map);
    *s = tmp.settings;
    return err;
}

eddy_err_t eddy_conf_set(eddy_conf_t *conf, const char *key, const char *value, char *errstr,
                         size_t errstr_size) {
    if (!conf || !key || !value) {
        eddy__seterr(errstr, errstr_size, "eddy_conf_set: key and value are required");
        return EDDY_ERR_INVAL;
    }
    /* Validate on a one-key map first, so a bad value never lands. */
    eddy_cnode_t *one = eddy__cnode_new(EDDY_CNODE_MAP, "<conf>", 0, 0);
    eddy_cnode_set(one, key, value);
    eddy_settings_t scratch = {0};
    scratch.state_memory_bytes = 256 * 1024 * 1024;
    eddy_err_t err = apply_map(one, &scratch, errstr, errstr_size);
    eddy_free(scratch.state_dir);
    eddy_free(scratch.dead_letter_sink);
    eddy_free(scratch.late_sink);
    eddy__cnode_free(one);
    if (err)
        return err;
    eddy_cnode_set(conf->map, key, value);
    return EDDY_OK;
}

const char *eddy_conf_get(const eddy_conf_t *conf, const char *key) {
    const eddy_cnode_t *n = eddy__cnode_get(conf->map, key);
    return n && n->kind == EDDY_CNODE_SCALAR ? n->scalar : NULL;
}

eddy_err_t eddy__conf_apply(const eddy_conf_t *conf, eddy_settings_t *s, char *errstr,
                            size_t errstr_size) {
    return apply_map(conf->map, s, errstr, errstr_size);
}
