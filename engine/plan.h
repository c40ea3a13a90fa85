/*
 * The compiled plan and the vtables of operators, sources and sinks.
 *
 * A topology tree (cnode) is compiled once into a plan: sources with their
 * streams and schemas, a DAG of nodes (operators and sinks) with resolved
 * schemas and parsed options. The plan is immutable and shared by every
 * task; each task instantiates every node (eddy_op_t) and every source
 * partition it owns. The engine never switches on operator type: it calls
 * the vtables listed once in the registry (engine/registry.c).
 */
#ifndef EDDY_PLAN_H
#define EDDY_PLAN_H

#include "eddy_int.h"

typedef struct eddy_plan_s eddy_plan_t;
typedef struct eddy_node_s eddy_node_t;
typedef struct eddy_op_s eddy_op_t;
typedef struct eddy_task_s eddy_task_t;
typedef struct eddy_srcdef_s eddy_srcdef_t;

#define EDDY_OP_ABI 1
#define EDDY_WM_MIN INT64_MIN
#define EDDY_WM_MAX INT64_MAX

/** Context handed to an operator's compile(): the step, the input schema,
 *  and what it must fill in. */
typedef struct eddy_compile_ctx_s {
    const eddy_cnode_t *step;    /* the step map, e.g. {filter: "..."} */
    const eddy_cnode_t *arg;     /* step[op name]: the operator's value */
    const eddy_schema_t *in;     /* input schema */
    eddy_schema_t *out;          /* set by compile: output schema (owned) */
    void *conf;                  /* set by compile: parsed options */
    char *label;                 /* set by compile (optional): for describe */
    const eddy_plan_t *plan;
    const void *user_def;        /* custom operators: the host's definition */
    const char *pipeline;        /* name of the step's pipeline */
    const struct eddy_topology_s *topo; /* what the host registered (aggregates) */
    int wm_with1;                /* set by compile (optional): node id + 1 of another node
                                    whose input watermark also bounds this node's (0: none) */
    /* two-input steps (side_input): the right input's schema and the
     * names of both inputs (the pipeline's `from`, the step's stream) */
    const eddy_schema_t *in2;
    const char *in_name, *in2_name;
    /* set by compile (optional): a second stream the step produces on the
     * side (CEP's timed-out partial matches), named by the scalar side_at
     * for other pipelines' `from:`, with schema side_out (owned). The
     * compiler makes a node for it and stores its id in *side_node; the
     * operator sends side records there (eddy__task_side_output). */
    const eddy_cnode_t *side_at;
    eddy_schema_t *side_out;
    int *side_node;
} eddy_compile_ctx_t;

/** An operator family (filter, map, key_by, window, ...). */
typedef struct eddy_op_ops_s {
    uint32_t abi;       /* EDDY_OP_ABI; fields are only ever appended */
    const char *name;   /* step key, e.g. "filter" */
    /** Parse and check options against the input schema. Errors name the
     *  step's file:line:col. */
    eddy_err_t (*compile)(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size);
    void (*free_conf)(void *conf);
    /** Per-task instance set-up (op->state). Optional. */
    eddy_err_t (*init)(eddy_op_t *op, char *errstr, size_t errstr_size);
    /** Process a batch: read `in` (never modify it), append to `out`. */
    eddy_err_t (*process)(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out);
    /** Optional: the node's input watermark advanced to wm_ms. */
    eddy_err_t (*on_watermark)(eddy_op_t *op, int64_t wm_ms, eddy_batch_t *out);
    /** Optional: commit point (flush buffered output, state). */
    eddy_err_t (*commit)(eddy_op_t *op);
    void (*destroy)(eddy_op_t *op);
    /** Routes records to other tasks (key_by); downstream nodes of an
     *  exchange run on the receiving task. */
    bool is_exchange;
    /** A sink: a node with no output. */
    bool is_sink;
    /** When set, the step option of this name (e.g. "by") makes the
     *  compiler put a key_by exchange on it in front of the operator, so
     *  records of one key meet on one task (Kafka Streams' groupBy). */
    const char *exchange_option;
    /** Optional: emit buffered results (update mode) at the start of each
     *  commit round, before the tasks quiesce. */
    eddy_err_t (*flush_emit)(eddy_op_t *op, eddy_batch_t *out);
    /** Optional: the key expressions of the implicit key_by, when the
     *  option is not directly in the step's value (window steps keep it in
     *  a sibling). NULL node = one global key. */
    const eddy_cnode_t *(*exchange_key)(const eddy_cnode_t *step, bool *wanted);
    /** Optional: mark in used[] (input schema order) every input field the
     *  node reads, or that reaches its output, for a record it does not
     *  send to the late output; false (or no hook): it may read any. An
     *  exchange whose consumers all tell copies only those fields across
     *  tasks (see may_be_late). */
    bool (*input_fields)(const eddy_node_t *n, bool *used);
    /** Optional: true when a record with event time ts_ms could go to the
     *  late output (eddy__task_late(), which gets the whole record) at any
     *  input watermark up to wm_ms. No hook: the node has no late output. */
    bool (*may_be_late)(const eddy_node_t *n, int64_t ts_ms, int64_t wm_ms);
    /** Optional, two-input operators (joins): the scalar naming the
     *  step's second (right) input stream, a source stream or a
     *  pipeline's `as:` name (`join: {with: persons}`); NULL: none. The
     *  pipeline's own stream is the left input (side 0). */
    const eddy_cnode_t *(*side_input)(const eddy_cnode_t *step);
    /** With side_input: the key expressions of the implicit key_by put
     *  in front of the right input (exchange_key serves the left). */
    const eddy_cnode_t *(*side_exchange_key)(const eddy_cnode_t *step, bool *wanted);
    /** With side_input: called instead of process() with the side the
     *  batch came from (0 left, 1 right). The node's input watermark is
     *  the minimum over both sides. */
    eddy_err_t (*process_side)(eddy_op_t *op, int side, const eddy_batch_t *in,
                               eddy_batch_t *out);
    /** Optional: in every commit round, after the tasks quiesced and
     *  before their stores are prepared: write state the operator keeps
     *  in memory into its stores, so that the commit holds it (CEP). */
    eddy_err_t (*pre_commit)(eddy_op_t *op);
} eddy_op_ops_t;

/** A node of the plan. */
struct eddy_node_s {
    int id;
    const eddy_op_ops_t *ops;
    char *name;                  /* "q1/filter#1", "sink:out" */
    char *label;                 /* short description for describe */
    eddy_schema_t *in, *out;     /* out == NULL for sinks */
    eddy_schema_t *in2;          /* two-input nodes: the right input (up[1]) */
    void *conf;
    const eddy_cnode_t *where;   /* for runtime messages */
    int *down;                   /* downstream node ids */
    int ndown;
    int *up;                     /* upstream node ids (-1-s for source streams) */
    int nup;
    int order;                   /* topological order */
    bool behind_exchange;        /* fed by an exchange (key_by) */
    /* exchange: the input fields its consumers read ([in->nfields]); a
     * record no consumer can send to the late output crosses tasks with
     * only these, the others null. NULL: every field always crosses. */
    bool *xkeep;
    /* node id + 1 of a node on the same task whose input watermark also
     * bounds this one's (a temporal lookup waits for its table); 0: none */
    int wm_with1;
};

/** A stream a source produces. */
typedef struct eddy_stream_s {
    char *name;          /* full name "nexmark.bid" */
    char *short_name;    /* "bid" (NULL if ambiguous/none) */
    eddy_schema_t *schema;
    int *consumers;      /* node ids reading this stream */
    int nconsumers;
} eddy_stream_t;

/** Source poll output: one batch per stream (NULL when nobody reads it). */
typedef struct eddy_src_out_s {
    eddy_batch_t **batches;   /* [nstreams] */
    eddy_task_t *task;        /* for dead letters */
} eddy_src_out_t;

/** A source family (nexmark, file, kafka, ...). */
typedef struct eddy_src_ops_s {
    uint32_t abi;
    const char *name;   /* "type:" value */
    /** Parse options; declare streams (eddy__srcdef_add_stream) and the
     *  partition count. */
    eddy_err_t (*compile)(eddy_srcdef_t *def, const eddy_cnode_t *node, char *errstr,
                          size_t errstr_size);
    void (*free_conf)(void *conf);
    /** Open one partition for a task. */
    eddy_err_t (*open)(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                       size_t errstr_size);
    /** Read up to max records (all streams together) into out. Returns
     *  EDDY_OK, EDDY_ERR_EOF when the bounded input has ended (records may
     *  still have been produced), or another error. *idle = true when no
     *  data was available right now (not ended). */
    eddy_err_t (*poll)(void *state, eddy_src_out_t *out, int max, bool *idle);
    void (*close)(void *state);
    /** Optional: the position after the last record returned by poll, for
     *  commits (exactly-once resume). */
    void (*position)(void *state, eddy_buf_t *out);
    /** Optional: continue after a committed position. */
    eddy_err_t (*seek)(void *state, const char *pos, size_t len, char *errstr,
                       size_t errstr_size);
    /** Optional: the position last reported by position() is now part of
     *  an acknowledged commit (e.g. commit Kafka group offsets). */
    void (*committed)(void *state);
    /** Optional, makes the source's partitions dynamic (a consumer group):
     *  no task opens at engine creation; start() runs once per source when
     *  the engine starts (stream threads running) and opens and closes
     *  tasks with eddy__engine_assign(); stop() runs after the stream
     *  threads ended, before tasks are freed. */
    eddy_err_t (*start)(const eddy_srcdef_t *def, eddy_engine_t *eng, char *errstr,
                        size_t errstr_size);
    void (*stop)(const eddy_srcdef_t *def);
    /** Optional, any thread: position, end and lag of an open partition
     *  (see eddy_source_lag_t); false when it has none. */
    bool (*lag)(void *state, eddy_source_lag_t *out);
} eddy_src_ops_t;

struct eddy_srcdef_s {
    int idx;
    char *name;
    const eddy_src_ops_t *ops;
    const eddy_cnode_t *where;
    void *conf;
    int partitions;
    eddy_stream_t *streams;
    int nstreams;
    int64_t max_ooo_ms;      /* watermark = max event time - this */
    int64_t idle_timeout_ms; /* partition idle longer: left out of the min */
    const eddy_cnode_t *root; /* the topology (top-level kafka:, schema_registry:) */
    /* memory.max.bytes / 8 split over this source's partitions, for its
     * prefetch queues (0: no whole-engine budget) */
    int64_t queue_bytes;
    const char *application;  /* the plan's */
    bool exactly_once;        /* processing.guarantee */
};

/** Add a stream to a source during compile(); returns its index. The
 *  schema is adopted (owned by the plan). */
int eddy__srcdef_add_stream(eddy_srcdef_t *def, const char *stream, eddy_schema_t *schema);

/** Settings of the engine (settings: in YAML, eddy_conf_t in C). */
typedef struct eddy_settings_s {
    int threads;
    int batch_size;
    int64_t commit_interval_ms;
    int64_t idle_timeout_ms;
    int64_t max_ooo_ms;
    int64_t stats_interval_ms;
    char *state_dir;
    int64_t state_memory_bytes;
    bool state_memory_set;    /* state.memory.max.bytes given (not derived) */
    /* memory.max.bytes: the whole engine's budget (0: none; then only
     * state.memory.max.bytes and the exchange's default bound apply) */
    int64_t memory_bytes;
    int64_t checkpoint_interval_ms;
    int64_t checkpoint_max_bytes;
    char *dead_letter_sink;   /* sink name or NULL (stderr) */
    char *late_sink;          /* sink name or NULL (stderr) */
    bool exactly_once;        /* processing.guarantee: exactly_once */
    bool changelog_kafka;     /* state.changelog: kafka */
    int standby_replicas;     /* standby.replicas (docs/scaleout.md) */
    int repartition;          /* EDDY_REPARTITION_* (settings.repartition) */
    int64_t repartition_error_timeout_ms; /* repartition.error.timeout.ms (0: none) */
} eddy_settings_t;

/* settings.repartition: how key_by exchanges cross tasks */
enum { EDDY_REPARTITION_AUTO, EDDY_REPARTITION_KAFKA, EDDY_REPARTITION_LOCAL };

struct eddy_plan_s {
    char *application;
    eddy_settings_t settings;
    eddy_srcdef_t *sources;
    int nsources;
    eddy_node_t *nodes;
    int nnodes;
    int *topo_order;          /* node ids in topological order */
    int ntasks;               /* max partitions over sources */
    struct eddy_store_def_s **stores; /* every stateful operator's stores */
    int nstores;
    int dead_letter_node;     /* sink node id or -1 */
    int late_node;            /* sink node id or -1 */
    /* state.changelog: kafka with stores: the Kafka changelog service
     * (connectors/kafka_changelog.c), handed to state/ by the engine */
    struct eddy_cl_remote_s *cl_remote;
    /* key_by through repartition topics (connectors/kafka_repartition.c):
     * NULL when exchanges stay in-process */
    struct eddy_krp_s *krp;
    /* exactly_once: the stream threads' shared transactional producers
     * (connectors/kafka_txn.c) for Kafka sinks and repartition records */
    struct eddy_ktxn_s *ktxn;
    /* this instance of the application (engine/instance.c), set by
     * eddy_engine_new: names its transactional producers */
    char instance_id[17];
};

/** Load (or make once) the instance id into plan->instance_id: kept in
 *  <state.dir>/<application>/INSTANCE when persist, else a fresh one. */
eddy_err_t eddy__instance_id_load(eddy_plan_t *plan, bool persist, char *errstr,
                                  size_t errstr_size);

/** Per-task instance of a node. */
struct eddy_op_s {
    const eddy_node_t *node;
    eddy_task_t *task;
    void *state;
    eddy_batch_t out;         /* reusable output batch */
    int64_t wm_ms;            /* input watermark seen by this op */
};

/* ----------------------------------------------------------- registries */

const eddy_op_ops_t *eddy__op_lookup(const char *name);
const eddy_src_ops_t *eddy__src_lookup(const char *name);
/** Names, for did-you-mean and error listings (NULL-terminated). */
const char *const *eddy__op_names(void);
const char *const *eddy__src_names(void);
const char *const *eddy__sink_names(void);
/** Sink families are operators with is_sink; looked up by "type:". */
const eddy_op_ops_t *eddy__sink_lookup(const char *type);

extern const eddy_op_ops_t eddy__op_filter;
extern const eddy_op_ops_t eddy__op_map;
extern const eddy_op_ops_t eddy__op_extend;
extern const eddy_op_ops_t eddy__op_key_by;
extern const eddy_op_ops_t eddy__op_custom;
extern const eddy_op_ops_t eddy__op_aggregate;
extern const eddy_op_ops_t eddy__op_window;
extern const eddy_op_ops_t eddy__op_join;
extern const eddy_op_ops_t eddy__op_side_stream;
extern const eddy_op_ops_t eddy__sink_stdout;
extern const eddy_op_ops_t eddy__sink_file;
extern const eddy_op_ops_t eddy__sink_blackhole;
extern const eddy_op_ops_t eddy__sink_callback;
extern const eddy_src_ops_t eddy__src_nexmark;
extern const eddy_src_ops_t eddy__src_file;
extern const eddy_src_ops_t eddy__src_host;
extern const eddy_src_ops_t eddy__src_kafka;
eddy_err_t eddy__host_push(const eddy_srcdef_t *def, int partition, const eddy_value_t *values,
                           int64_t ts_ms);
eddy_err_t eddy__host_end(const eddy_srcdef_t *def, int partition);

/**
 * Open tasks (restore their state, open their source partitions and seek
 * them to the committed positions) and close tasks (after a final commit),
 * for a consumer group's assignment. Called from a non-stream thread; the
 * change is applied by the next commit round, which this call requests
 * and waits for.
 * @returns EDDY_OK once applied; EDDY_ERR_STATE when the engine is not
 *          running (stopped, finished, or not dynamic): nothing to do.
 */
eddy_err_t eddy__engine_assign(eddy_engine_t *eng, const int *open, int nopen, const int *close,
                               int nclose);
/** Open every task of a dynamic engine that will not be started (to read
 *  its state: `eddy dump`): stores are restored, sources stay passive. */
eddy_err_t eddy__engine_open_all(eddy_engine_t *eng, char *errstr, size_t errstr_size);
/** Whether task is open on this instance. */
bool eddy__engine_task_active(eddy_engine_t *eng, int task);
/** The consumer group generation of the latest assignment the Kafka
 *  source applied (-1: none, or not known); connectors/instances.c
 *  publishes it with the tasks, to order two instances' claims. */
void eddy__engine_set_group_generation(eddy_engine_t *eng, int64_t gen);
int64_t eddy__engine_group_generation(eddy_engine_t *eng);
/** Standby replicas: which tasks this instance keeps copies of
 *  (state/tstate.h; connectors/instances.c sets it from the instances view). */
void eddy__engine_set_standby_choice(eddy_engine_t *eng, int (*fn)(void *, int task, int replicas),
                                     void *opaque);
/** Assigned to this instance and being restored (not active yet). */
bool eddy__engine_task_opening(eddy_engine_t *eng, int task);
/** The task a key of a queryable store lives on, or -1 (engine/query.c). */
int eddy__engine_query_task(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                            int nkey);
/** eddy_engine_query_get, but EDDY_ERR_STATE (not NOENT) when the key's
 *  task is not open here; decided under the lock that task opens and
 *  closes take, so a task closed between a check and the read is never
 *  taken for an absent key (scale-out routing, mcp/tools.c). */
eddy_err_t eddy__engine_query_get_open(eddy_engine_t *eng, const char *store,
                                       const eddy_value_t *key, int nkey, eddy_sink_cb_t cb,
                                       void *opaque);

/* ------------------------------------------------------------- compile */

struct eddy_topology_s;
/** Compile the topology tree; NULL with "FILE:LINE:COL: ..." on error. */
eddy_plan_t *eddy__plan_compile(struct eddy_topology_s *topo, const eddy_conf_t *conf,
                                char *errstr, size_t errstr_size);
void eddy__plan_free(eddy_plan_t *plan);
/** Apply an eddy_conf_t's settings over s. */
eddy_err_t eddy__conf_apply(const eddy_conf_t *conf, eddy_settings_t *s, char *errstr,
                            size_t errstr_size);

/* ------------------------------------------------ services for operators */

/** Task services (engine/engine.c). */
eddy_arena_t *eddy__task_arena(eddy_task_t *task);
int eddy__task_id(const eddy_task_t *task);
int eddy__task_count(const eddy_task_t *task);
/** The stream thread running the task (0 .. threads-1), and how many
 *  there are: per-thread resources (a transactional producer) are used by
 *  one thread's tasks in turn, never concurrently. */
int eddy__task_thread(const eddy_task_t *task);
int eddy__task_threads(const eddy_task_t *task);
/** Exchange: send one record (deep-copied) to task `dest`'s side of the
 *  node's downstream. */
void eddy__task_exchange(eddy_task_t *task, const eddy_node_t *node, int dest,
                         const eddy_schema_t *schema, const eddy_rec_t *rec);
/** Dead letter: reason + position (+ raw bytes). Counted; never fails. */
void eddy__task_dead_letter(eddy_task_t *task, const char *reason, const char *source,
                            int32_t partition, int64_t offset, const char *raw, size_t raw_len);
/** Late record of node: counted and sent to the late output. */
void eddy__task_late(eddy_task_t *task, const eddy_node_t *node, const eddy_schema_t *schema,
                     const eddy_rec_t *rec);
/** Side output: run one batch through node `node` (a sink) of the task,
 *  e.g. CEP's timed-out partial matches to the sink its `timeouts:` names. */
void eddy__task_side_output(eddy_task_t *task, int node, const eddy_batch_t *b);
/** Input records a source consumed (delivered, skipped or dead-lettered). */
void eddy__task_count_in(eddy_task_t *task, uint64_t n);
/** Records delivered to sinks (for stats). */
void eddy__task_count_out(eddy_task_t *task, uint64_t n);
/** Monotonic ns at which the batch being processed entered the engine. */
int64_t eddy__task_ingest_ns(const eddy_task_t *task);
/** Record a latency sample (ns) into the task's histogram. */
void eddy__task_latency(eddy_task_t *task, int64_t ns);

/** Schema declared in a topology (engine/schema_cfg.c). */
eddy_schema_t *eddy__schema_from_cnode(const eddy_cnode_t *n, char *errstr, size_t errstr_size);
/** A source's `timestamp:` option (node tn, field name ts): the index of
 *  a timestamp or int field of s, or -1 with the error at tn (`where`
 *  says where else it may come from, e.g. " (or 'kafka' for the message
 *  timestamp)", or ""). */
int eddy__schema_timestamp_field(const eddy_schema_t *s, const eddy_cnode_t *tn, const char *ts,
                                 const char *where, char *errstr, size_t errstr_size);

/** Register a store while compiling; the plan owns def. Returns its id. */
struct eddy_store_def_s;
int eddy__plan_add_store(eddy_plan_t *plan, struct eddy_store_def_s *def);
const struct eddy_store_def_s *eddy__plan_find_store(const eddy_plan_t *plan, const char *name);
/** The task's instance of store `id`. */
struct eddy_store_s *eddy__task_store(eddy_task_t *task, int id);

/** From on_watermark()/flush_emit() only: send what `out` holds downstream
 *  now, process the data messages already queued for this task, and
 *  recycle the batch memory, so a large burst of results (many windows
 *  closing at once) is handled in batches instead of held in memory. The
 *  caller must hold no pointers into the batch arena across the call. */
void eddy__op_emit_flush(eddy_op_t *op, eddy_batch_t *out);

/** The task's instance of plan node `node` (a node reading another's state
 *  on the same task: a lookup join and its table). */
eddy_op_t *eddy__task_op(eddy_task_t *task, int node);

/** Key encoding shared by key_by and stores: order-preserving bytes. */
size_t eddy__key_encode(const eddy_value_t *v, char *out, size_t cap);
/** The task of ntasks that owns an encoded key: where key_by sends it, and
 *  where queries and tests look for it. */
int eddy__key_task(const char *key, size_t len, int ntasks);

#endif /* EDDY_PLAN_H */
