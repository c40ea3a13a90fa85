/*
 * eddy - an embeddable stream-processing engine.
 *
 * This is the one public header. Everything a host program needs is here:
 * configuration objects set by string key, the topology builder (the same
 * tree the YAML loader produces), typed values and records as seen by
 * callbacks, custom operators and sinks, and the engine life cycle.
 *
 * Conventions (see STYLE.md of the project):
 *  - what can fail returns eddy_err_t (0 = EDDY_OK, negative = error);
 *  - constructors return NULL and write the reason into errstr;
 *  - every _new has a _destroy;
 *  - borrowed pointers say how long they stay valid.
 */
#ifndef EDDY_H
#define EDDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EDDY_EXPORT __attribute__((visibility("default")))
#else
#define EDDY_EXPORT
#endif

#define EDDY_VERSION_STR "0.1.0"
#define EDDY_VERSION_NUM 0x000100

/** @brief Library version string, e.g. "0.1.0". */
EDDY_EXPORT const char *eddy_version(void);

/* ------------------------------------------------------------------ errors */

typedef enum eddy_err {
    EDDY_OK = 0,
    EDDY_ERR_INVAL = -1,       /**< invalid argument */
    EDDY_ERR_NOMEM = -2,       /**< out of memory */
    EDDY_ERR_IO = -3,          /**< I/O error */
    EDDY_ERR_CONFIG = -4,      /**< bad topology or configuration */
    EDDY_ERR_NOENT = -5,       /**< no such thing (key, store, field) */
    EDDY_ERR_STATE = -6,       /**< call not valid in the current state */
    EDDY_ERR_DECODE = -7,      /**< undecodable input record */
    EDDY_ERR_TYPE = -8,        /**< type mismatch */
    EDDY_ERR_EOF = -9,         /**< end of a bounded input */
    EDDY_ERR_TIMEOUT = -10,    /**< timed out */
    EDDY_ERR_UNSUPPORTED = -11, /**< not supported */
    EDDY_ERR_FULL = -12,       /**< queue full: retry later (backpressure) */
    EDDY_ERR_TRANSIENT = -13   /**< a Kafka delivery or transaction failed in a way a restart
                                    from the last commit clears (the engine recovers in
                                    process; docs/reliability.md) */
} eddy_err_t;

/** @brief Human-readable name of an error code. Never NULL. */
EDDY_EXPORT const char *eddy_err2str(eddy_err_t err);

/* --------------------------------------------------------------- allocator */

/**
 * @brief Replace the allocator used by every eddy allocation.
 * @remark Call before creating any eddy object; not thread-safe. NULL
 *         arguments restore the libc functions.
 */
EDDY_EXPORT void eddy_set_allocator(void *(*malloc_fn)(size_t),
                                    void *(*realloc_fn)(void *, size_t),
                                    void (*free_fn)(void *));

/* ------------------------------------------------------------ typed values */

typedef enum eddy_type {
    EDDY_TYPE_NULL = 0,
    EDDY_TYPE_BOOL = 1,
    EDDY_TYPE_INT = 2,       /**< 64-bit signed (Avro int and long) */
    EDDY_TYPE_DOUBLE = 3,    /**< IEEE double (Avro float and double) */
    EDDY_TYPE_STRING = 4,    /**< UTF-8, not NUL-terminated */
    EDDY_TYPE_BYTES = 5,
    EDDY_TYPE_TIMESTAMP = 6  /**< milliseconds since the Unix epoch */
} eddy_type_t;

/** @brief Name of a type ("int", "string", ...). */
EDDY_EXPORT const char *eddy_type2str(eddy_type_t type);

/**
 * A value of a row. `type` is EDDY_TYPE_NULL for SQL NULL, otherwise the
 * column's type. Strings and bytes point into memory owned by the batch
 * (or the store) the value came from.
 */
typedef struct eddy_value {
    union {
        int64_t i; /**< BOOL (0/1), INT, TIMESTAMP */
        double d;  /**< DOUBLE */
        const char *s; /**< STRING, BYTES */
    } u;
    uint32_t len;   /**< STRING, BYTES: length in bytes */
    uint8_t type;   /**< eddy_type_t */
} eddy_value_t;

typedef struct eddy_schema_s eddy_schema_t;

/** @brief Number of fields of a schema. */
EDDY_EXPORT int eddy_schema_nfields(const eddy_schema_t *schema);
/** @brief Name of field i (borrowed, valid while the schema lives). */
EDDY_EXPORT const char *eddy_schema_field_name(const eddy_schema_t *schema, int i);
/** @brief Type of field i. */
EDDY_EXPORT eddy_type_t eddy_schema_field_type(const eddy_schema_t *schema, int i);
/** @brief Index of a field by name, or -1. Resolve once, not per record. */
EDDY_EXPORT int eddy_schema_field_index(const eddy_schema_t *schema, const char *name);

/**
 * A record as a callback sees it. Everything is borrowed and valid only
 * during the callback.
 */
typedef struct eddy_record {
    const eddy_schema_t *schema;
    const eddy_value_t *values; /**< schema->nfields values */
    const void *key;            /**< key bytes, or NULL */
    size_t key_len;
    int64_t ts_ms;      /**< event time */
    int32_t partition;  /**< source partition */
    int64_t offset;     /**< source offset within the partition */
} eddy_record_t;

/**
 * @brief Write a record as one line of JSON (no newline) into buf.
 * @returns the length the full line needs; as snprintf, output is truncated
 *          when it does not fit in buf_size.
 */
EDDY_EXPORT size_t eddy_record_to_json(const eddy_record_t *rec, char *buf, size_t buf_size);

/* ------------------------------------------------------------ conf objects */

typedef struct eddy_conf_s eddy_conf_t;

/**
 * @brief Engine settings, set by string key so that new options leave the
 *        ABI alone. Keys: "threads", "batch.size", "commit.interval.ms",
 *        "idle.timeout.ms", "stats.interval.ms", ... (README: settings).
 */
EDDY_EXPORT eddy_conf_t *eddy_conf_new(void);
EDDY_EXPORT void eddy_conf_destroy(eddy_conf_t *conf);
/** @returns EDDY_ERR_CONFIG with the reason in errstr for an unknown key
 *           or a bad value. */
EDDY_EXPORT eddy_err_t eddy_conf_set(eddy_conf_t *conf, const char *key, const char *value,
                                     char *errstr, size_t errstr_size);
/** @returns the value of key (borrowed, valid until the next set), or NULL. */
EDDY_EXPORT const char *eddy_conf_get(const eddy_conf_t *conf, const char *key);

/* ---------------------------------------------------------------- topology */

/**
 * A topology is a tree of configuration nodes: maps, sequences and scalar
 * strings, exactly what a YAML topology file holds. The YAML loader and the
 * builder functions below produce the same tree; one compiler checks it and
 * builds the dataflow graph, so a topology built in C is checked as
 * strictly as a file.
 */
typedef struct eddy_topology_s eddy_topology_t;
typedef struct eddy_cnode_s eddy_cnode_t;

/** @brief An empty topology with the given application name. */
EDDY_EXPORT eddy_topology_t *eddy_topology_new(const char *application);
/**
 * @brief Load a topology from a YAML file.
 * @returns NULL on error, with "FILE:LINE:COL: message" in errstr.
 */
EDDY_EXPORT eddy_topology_t *eddy_topology_load_file(const char *path, char *errstr,
                                                     size_t errstr_size);
/** @brief Load a topology from YAML text; `name` is used in messages. */
EDDY_EXPORT eddy_topology_t *eddy_topology_load_string(const char *yaml, size_t len,
                                                       const char *name, char *errstr,
                                                       size_t errstr_size);
EDDY_EXPORT void eddy_topology_destroy(eddy_topology_t *topo);

/**
 * @brief Check the topology completely (sources, steps, expressions, sinks)
 *        without running it.
 * @returns EDDY_ERR_CONFIG with "FILE:LINE:COL: message" in errstr.
 */
EDDY_EXPORT eddy_err_t eddy_topology_check(eddy_topology_t *topo, char *errstr,
                                           size_t errstr_size);

/**
 * @brief Write the compiled graph in Mermaid ("mermaid") or Graphviz DOT
 *        ("dot") into a newly allocated string (free with eddy_free()).
 */
EDDY_EXPORT char *eddy_topology_describe(eddy_topology_t *topo, const char *format,
                                         char *errstr, size_t errstr_size);

/** @brief The root map of the topology tree (borrowed). */
EDDY_EXPORT eddy_cnode_t *eddy_topology_root(eddy_topology_t *topo);

/** @brief Set map[key] = scalar value; returns the scalar node. */
EDDY_EXPORT eddy_cnode_t *eddy_cnode_set(eddy_cnode_t *map, const char *key, const char *value);
/** @brief map[key], created as an empty map when missing. */
EDDY_EXPORT eddy_cnode_t *eddy_cnode_map(eddy_cnode_t *map, const char *key);
/** @brief map[key], created as an empty sequence when missing. */
EDDY_EXPORT eddy_cnode_t *eddy_cnode_seq(eddy_cnode_t *map, const char *key);
/** @brief Append an empty map to a sequence and return it. */
EDDY_EXPORT eddy_cnode_t *eddy_cnode_append_map(eddy_cnode_t *seq);
/** @brief Append a scalar to a sequence and return it. */
EDDY_EXPORT eddy_cnode_t *eddy_cnode_append(eddy_cnode_t *seq, const char *value);

/**
 * @brief Add a source {name, type} to sources:. Set its options on the
 *        returned map with eddy_cnode_set().
 */
EDDY_EXPORT eddy_cnode_t *eddy_topology_add_source(eddy_topology_t *topo, const char *name,
                                                   const char *type);
/** @brief Add a sink {name, type} to sinks:. */
EDDY_EXPORT eddy_cnode_t *eddy_topology_add_sink(eddy_topology_t *topo, const char *name,
                                                 const char *type);
/** @brief Add a pipeline {name, from} to pipelines:. */
EDDY_EXPORT eddy_cnode_t *eddy_topology_add_pipeline(eddy_topology_t *topo, const char *name,
                                                     const char *from);
/**
 * @brief Append a step {op: arg} to a pipeline. With arg NULL the step's
 *        value is a map (returned through *args when args is not NULL)
 *        for the operator's options. Returns the step map, to which
 *        sibling options (e.g. "aggregate" of a window step) can be added.
 */
EDDY_EXPORT eddy_cnode_t *eddy_pipeline_add_step(eddy_cnode_t *pipeline, const char *op,
                                                 const char *arg, eddy_cnode_t **args);
/** @brief Send a pipeline's output to a sink (or append to its sinks). */
EDDY_EXPORT void eddy_pipeline_to(eddy_cnode_t *pipeline, const char *sink);

/* ------------------------------------------------------ host callback sink */

/**
 * @brief Called for each record reaching a callback sink.
 * @remark Thread: a stream thread; the same sink may be called from several
 *         stream threads at once unless settings.threads is 1.
 *         The record is borrowed for the duration of the call.
 * @returns EDDY_OK, or an error that stops the engine with that error.
 */
typedef eddy_err_t (*eddy_sink_cb_t)(const eddy_record_t *rec, void *opaque);

/** @brief Add a sink of type "callback" that calls cb for each record. */
EDDY_EXPORT eddy_cnode_t *eddy_topology_add_callback_sink(eddy_topology_t *topo,
                                                          const char *name,
                                                          eddy_sink_cb_t cb, void *opaque);

/* --------------------------------------------------------- custom operators */

#define EDDY_OPERATOR_ABI 1

typedef struct eddy_operator_ctx_s eddy_operator_ctx_t;

/**
 * A host-defined operator, usable as a step named `name` in any pipeline.
 * One instance per task: init() is called once per task with that step's
 * option map. Fields are only ever appended (abi says which are present).
 */
typedef struct eddy_operator_def {
    int abi;          /**< EDDY_OPERATOR_ABI */
    const char *name; /**< step name, e.g. "enrich" */
    /** Output schema: NULL = same as input. Called once at build time with
     *  the input schema; may return a schema made with eddy_schema_new(). */
    const eddy_schema_t *(*output_schema)(const eddy_schema_t *in, const eddy_cnode_t *args,
                                          void *opaque, char *errstr, size_t errstr_size);
    /** Per-task state. *statep is passed to process/on_watermark/destroy. */
    eddy_err_t (*init)(void **statep, const eddy_schema_t *in, const eddy_cnode_t *args,
                       void *opaque, char *errstr, size_t errstr_size);
    /** Called per record; emit 0..n records with eddy_operator_emit(). */
    eddy_err_t (*process)(void *state, eddy_operator_ctx_t *ctx, const eddy_record_t *rec);
    /** Optional: the task's event-time watermark advanced. */
    eddy_err_t (*on_watermark)(void *state, eddy_operator_ctx_t *ctx, int64_t wm_ms);
    void (*destroy)(void *state);
    void *opaque;
} eddy_operator_def_t;

/**
 * @brief Emit a record downstream from a custom operator's callback.
 * @param values nfields values of the output schema; copied by the call.
 */
EDDY_EXPORT eddy_err_t eddy_operator_emit(eddy_operator_ctx_t *ctx, const eddy_value_t *values,
                                          int64_t ts_ms);

/** @brief Make operator `def` available to this topology's steps. def must
 *         outlive the topology and its engines. */
EDDY_EXPORT eddy_err_t eddy_topology_register_operator(eddy_topology_t *topo,
                                                       const eddy_operator_def_t *def,
                                                       char *errstr, size_t errstr_size);

/** @brief A schema for custom operators: names[i] of types[i]. */
EDDY_EXPORT eddy_schema_t *eddy_schema_new(int nfields, const char *const *names,
                                           const eddy_type_t *types);
EDDY_EXPORT void eddy_schema_destroy(eddy_schema_t *schema);

/* -------------------------------------------------------- user aggregates */

#define EDDY_AGGREGATE_ABI 1

/** Largest accumulator a user aggregate may declare (acc_size). */
#define EDDY_AGGREGATE_MAX_ACC_BYTES 65536

/**
 * A host-defined aggregate function, usable as `name(expr)` in the
 * `fields:` of aggregate and window steps, beside count(), sum(), ...
 *
 * The accumulator is acc_size bytes that eddy owns: it keeps them in the
 * step's state store (so they are committed, restored after a restart and
 * replayed from the changelog like any other state) and hands the
 * callbacks a copy aligned for any C type. The bytes must therefore be
 * plain data: no pointers, no handles, nothing that means something only
 * to one process. Changing their layout is changing the state format: give
 * the new layout a new name or start on an empty state.dir (stored
 * accumulators of another size are refused, see add()).
 *
 * Null inputs are skipped (SQL): add() only sees non-null values. A group
 * (or window) that saw no non-null input has a NULL result; result() is
 * not called for it.
 *
 * Thread rules: the callbacks run on the stream threads, for different
 * tasks at the same time, so they must be reentrant; each call has its own
 * acc, and opaque is shared (read it only, or lock it yourself). They must
 * not call back into eddy and must not keep acc, other or v after they
 * return.
 *
 * Fields are only ever appended; abi says which are present.
 */
typedef struct eddy_aggregate_def {
    int abi;          /**< EDDY_AGGREGATE_ABI */
    const char *name; /**< e.g. "product": used as product(price); letters, digits, '_';
                           must not be a built-in aggregate's name */
    eddy_type_t result_type; /**< type of every non-null result */
    size_t acc_size;  /**< accumulator bytes, fixed, 1..EDDY_AGGREGATE_MAX_ACC_BYTES */
    /** Set up an empty accumulator (acc holds acc_size zero bytes). */
    void (*init)(void *acc, void *opaque);
    /**
     * Add one non-null value v (type: that of the argument expression)
     * with the record's event time ts_ms.
     * @returns EDDY_OK, or an error: the record is then dead-lettered with
     *          the aggregate's name in the reason, and none of the step's
     *          aggregates sees it (acc must be left as it was).
     */
    eddy_err_t (*add)(void *acc, const eddy_value_t *v, int64_t ts_ms, void *opaque);
    /**
     * Merge other into acc (hopping-window panes, merging sessions). Must
     * be associative and commutative up to what result() shows: merging
     * the accumulators of two halves of the input must give the result of
     * adding the whole input.
     */
    void (*merge)(void *acc, const void *other, void *opaque);
    /**
     * The result of acc into *out: out->type is result_type (or
     * EDDY_TYPE_NULL); any other type is turned into NULL. A STRING or
     * BYTES result may point into acc or into the host's memory: eddy
     * copies it before the call returns to the engine.
     */
    void (*result)(const void *acc, eddy_value_t *out, void *opaque);
    /** Optional (may be NULL): take back a value added earlier, for window
     *  kinds that retract records. No window kind of this version calls
     *  it; a definition may provide it now to be ready for them. */
    void (*remove)(void *acc, const eddy_value_t *v, int64_t ts_ms, void *opaque);
    void *opaque;     /**< passed to every callback */
} eddy_aggregate_def_t;

/**
 * @brief Make aggregate `def` available to this topology's aggregate and
 *        window steps.
 * @param def borrowed: it (and its name and opaque) must outlive the
 *        topology and every engine built from it.
 * @returns EDDY_OK; EDDY_ERR_INVAL with the reason in errstr when a
 *          required field is missing, acc_size is out of range, the name
 *          is not an identifier, or the name is taken (built-in aggregates
 *          included).
 * @remark Thread: the thread building the topology, before
 *         eddy_engine_new() / eddy_topology_check().
 */
EDDY_EXPORT eddy_err_t eddy_topology_register_aggregate(eddy_topology_t *topo,
                                                        const eddy_aggregate_def_t *def,
                                                        char *errstr, size_t errstr_size);

/* ------------------------------------------------------------------ engine */

typedef struct eddy_engine_s eddy_engine_t;

/**
 * @brief Build an engine for a topology.
 * @param topo borrowed; must outlive the engine.
 * @param conf settings that override the topology's settings: (may be NULL);
 *             borrowed.
 * @returns NULL on error with the reason in errstr.
 */
EDDY_EXPORT eddy_engine_t *eddy_engine_new(eddy_topology_t *topo, const eddy_conf_t *conf,
                                           char *errstr, size_t errstr_size);
/** @brief Start the stream threads. */
EDDY_EXPORT eddy_err_t eddy_engine_start(eddy_engine_t *eng);
/**
 * @brief Wait up to timeout_ms for the engine to finish.
 * @returns EDDY_OK when every bounded source has ended and everything
 *          downstream was processed, EDDY_ERR_TIMEOUT while still running,
 *          or the error that stopped the engine.
 */
EDDY_EXPORT eddy_err_t eddy_engine_poll(eddy_engine_t *eng, int timeout_ms);
/**
 * @brief Why the engine stopped with an error ("" when it did not).
 * @remark Borrowed; valid until eddy_engine_destroy().
 */
EDDY_EXPORT const char *eddy_engine_last_error(eddy_engine_t *eng);
/**
 * @brief Ask the engine to stop: sources stop reading, in-flight batches
 *        finish, a final commit is made. Safe from any thread and from a
 *        signal handler (it only sets a flag).
 */
EDDY_EXPORT void eddy_engine_stop(eddy_engine_t *eng);
/** @brief Stop (if running), join the threads and free everything. */
EDDY_EXPORT void eddy_engine_destroy(eddy_engine_t *eng);

/**
 * @brief Feed one record into partition `partition` of a source of type
 *        "host" (declared with a schema in the topology).
 * @param values schema nfields values; copied by the call.
 * @returns EDDY_OK; EDDY_ERR_FULL when the partition's queue holds
 *          `queue.max` records (backpressure: retry later); EDDY_ERR_NOENT
 *          for an unknown source; EDDY_ERR_INVAL for a bad partition or
 *          a value whose type does not match the schema; EDDY_ERR_STATE
 *          after eddy_engine_end_input() of that partition.
 * @remark Thread: any; one producer per partition keeps its order.
 */
EDDY_EXPORT eddy_err_t eddy_engine_push(eddy_engine_t *eng, const char *source, int partition,
                                        const eddy_value_t *values, int64_t ts_ms);
/**
 * @brief Mark the end of a host source partition (-1: all partitions), so
 *        that a bounded run can finish and its final watermark is +inf.
 */
EDDY_EXPORT eddy_err_t eddy_engine_end_input(eddy_engine_t *eng, const char *source,
                                             int partition);

/** Engine-wide counters, read at any time from any thread. */
typedef struct eddy_stats {
    uint64_t events_in;       /**< records read from sources */
    uint64_t events_out;      /**< records delivered to sinks */
    uint64_t dead_lettered;   /**< undecodable or failing records */
    uint64_t late;            /**< records later than the watermark allows */
    int64_t watermark_ms;     /**< min task watermark (INT64_MIN if none) */
    int64_t max_event_ms;     /**< max event time seen */
    int32_t tasks;
    int32_t threads;
    int32_t running;          /**< 1 while the stream threads run */
    uint64_t commits;         /**< commit rounds completed */
    int64_t state_memory_bytes;        /**< RocksDB cache + memtables now */
    int64_t state_memory_budget_bytes; /**< state.memory.max.bytes (0: no state) */
    uint64_t recoveries;      /**< in-process restarts after transient Kafka errors */
} eddy_stats_t;

EDDY_EXPORT void eddy_engine_stats(eddy_engine_t *eng, eddy_stats_t *stats);

/** Memory of the engine against memory.max.bytes (docs/memory.md). */
typedef struct eddy_memory_stats {
    int64_t budget_bytes;        /**< memory.max.bytes (0: none set) */
    int64_t heap_bytes;          /**< the process's resident memory (VmRSS) now, as
                                      of the governor's last look (every 10 ms);
                                      under ASan the sanitizer's allocated bytes */
    int64_t heap_peak_bytes;     /**< highest heap_bytes seen */
    int64_t state_bytes;         /**< RocksDB block cache + memtables now */
    int64_t state_budget_bytes;  /**< state.memory.max.bytes */
    int64_t exchange_bytes;      /**< key_by messages queued between tasks now */
    int64_t exchange_peak_bytes;
    int64_t exchange_budget_bytes; /**< sources wait while exchange_bytes is over it */
    int32_t throttled;           /**< 1 while input is slowed for memory */
    uint64_t throttle_events;    /**< times the heap went over the budget */
    uint64_t throttled_ms;       /**< time spent slowed, in all */
    uint64_t exchange_waits;     /**< source polls skipped for a full exchange */
    uint64_t heap_checks;        /**< the governor's looks at the heap */
    uint64_t heap_check_ms;      /**< CPU time they took, in all (kept under 1% of
                                      the process's: a look costing more is taken
                                      less often than every 10 ms) */
    uint64_t early_trims;        /**< freed memory given back to the system
                                      (malloc_trim) past 3/4 of the budget, before
                                      it could slow input (at most every 10 s) */
} eddy_memory_stats_t;

/** @brief Fill *out with the engine's memory figures. @remark Thread: any. */
EDDY_EXPORT void eddy_engine_memory_stats(eddy_engine_t *eng, eddy_memory_stats_t *out);

/**
 * @brief End-to-end latency percentile in ns (source read to sink write,
 *        per batch), over all tasks; -1 when nothing reached a sink.
 * @param pct percentile in [0, 100], e.g. 99.
 * @remark Exact once eddy_engine_poll() returned EDDY_OK; approximate while
 *         the stream threads run.
 */
EDDY_EXPORT int64_t eddy_engine_latency_ns(eddy_engine_t *eng, double pct);

/* ----------------------------------------------------------- state queries */

/**
 * Read-only queries of a queryable store, answered from committed state
 * (at most one commit interval old), from any thread, while the engine
 * runs or before it starts (after eddy_engine_new() restored the state).
 * Each answer is a record of the store's value schema (for an aggregate:
 * its by fields and results), passed to cb and borrowed for the call.
 */

/** @brief The stores of the topology: names[i] (borrowed), up to max;
 *         returns the count. */
EDDY_EXPORT int eddy_engine_stores(eddy_engine_t *eng, const char **names, int max);

/**
 * @brief Look up one key. key holds the store's key fields in order.
 * @returns EDDY_OK (cb called once), EDDY_ERR_NOENT when the key is absent
 *          or the store unknown, EDDY_ERR_TYPE when key does not match the
 *          key schema, EDDY_ERR_STATE while the key's task is being
 *          restored on this instance (a consumer group just assigned it).
 */
EDDY_EXPORT eddy_err_t eddy_engine_query_get(eddy_engine_t *eng, const char *store,
                                             const eddy_value_t *key, int nkey,
                                             eddy_sink_cb_t cb, void *opaque);

/**
 * @brief Scan a store in key order, at most `limit` entries after `cursor`
 *        (NULL or "" = from the start). When more remain, next_cursor gets
 *        an opaque cursor for the next call; "" when the scan is complete.
 */
EDDY_EXPORT eddy_err_t eddy_engine_query_scan(eddy_engine_t *eng, const char *store,
                                              const char *cursor, int limit, eddy_sink_cb_t cb,
                                              void *opaque, char *next_cursor,
                                              size_t next_cursor_size);

/**
 * Bounds of a key-ordered scan of a kv store (an aggregate's table). Keys
 * compare field by field in the order of the key schema; values compare
 * as numbers or bytewise (strings). Unused parts are NULL / 0.
 */
typedef struct eddy_key_range {
    const eddy_value_t *prefix; /**< keys whose first nprefix fields equal these */
    int nprefix;
    bool string_prefix;         /**< the last prefix value (a string) matches as a
                                     string prefix ("ab" matches "abc") */
    const eddy_value_t *from;   /**< keys >= from (nfrom leading fields); inclusive */
    int nfrom;
    const eddy_value_t *to;     /**< keys < to (nto leading fields); exclusive */
    int nto;
} eddy_key_range_t;

/**
 * @brief Like eddy_engine_query_scan(), restricted to range (NULL: all).
 * @returns EDDY_ERR_UNSUPPORTED for a range on a store that is not kv
 *          (window and session stores are read by key and time with
 *          eddy_engine_query_windows()), EDDY_ERR_TYPE when a bound does
 *          not match the key schema.
 */
EDDY_EXPORT eddy_err_t eddy_engine_query_range(eddy_engine_t *eng, const char *store,
                                               const eddy_key_range_t *range,
                                               const char *cursor, int limit,
                                               eddy_sink_cb_t cb, void *opaque,
                                               char *next_cursor, size_t next_cursor_size);

/**
 * @brief The windows of one key over a time range, from a window or
 *        session store, in time order: windows whose start lies in
 *        [from_ms, to_ms]; sessions that overlap [from_ms, to_ms]; from a
 *        log store (a cep step's matches), the entries whose time (match
 *        end) lies in [from_ms, to_ms]. At most limit per call;
 *        next_cursor as for eddy_engine_query_scan().
 * @returns EDDY_ERR_UNSUPPORTED for a kv store.
 */
EDDY_EXPORT eddy_err_t eddy_engine_query_windows(eddy_engine_t *eng, const char *store,
                                                 const eddy_value_t *key, int nkey,
                                                 int64_t from_ms, int64_t to_ms,
                                                 const char *cursor, int limit,
                                                 eddy_sink_cb_t cb, void *opaque,
                                                 char *next_cursor, size_t next_cursor_size);

/** What a queryable store is, for clients that discover it at run time. */
typedef struct eddy_store_info {
    const char *name;                 /**< borrowed, valid while the engine lives */
    const char *kind;                 /**< "kv", "window", "session" or "log" */
    const char *node;                 /**< the operator that owns it, e.g. "hot/window#1" */
    const eddy_schema_t *key_schema;  /**< the key fields, in key order */
    const eddy_schema_t *value_schema; /**< the fields of each answer */
    int64_t retention_ms;             /**< closed windows kept this long (0: forever) */
} eddy_store_info_t;

/** @brief Describe a queryable store. @returns EDDY_ERR_NOENT when unknown. */
EDDY_EXPORT eddy_err_t eddy_engine_store_info(eddy_engine_t *eng, const char *store,
                                              eddy_store_info_t *info);

/**
 * @brief The compiled topology as JSON: application, settings, sources
 *        (type, partitions, streams and their fields), operators (name,
 *        label, inputs, outputs, fields) and stores (kind, key and value
 *        fields). Newly allocated; free with eddy_free().
 */
EDDY_EXPORT char *eddy_engine_describe_json(eddy_engine_t *eng);

/**
 * @brief Event-time watermark of each task (INT64_MIN: none yet), up to
 *        max; returns the number of tasks. @remark Thread: any.
 */
EDDY_EXPORT int eddy_engine_task_watermarks(eddy_engine_t *eng, int64_t *wm_ms, int max);

/** Consumer position and lag of one source partition open on this
 *  instance (Kafka sources). */
typedef struct eddy_source_lag {
    const char *source;   /**< source name (borrowed, valid while the engine lives) */
    const char *topic;    /**< topic (borrowed) */
    int32_t partition;
    int64_t position;     /**< next offset to process; -1 before the first */
    int64_t end_offset;   /**< partition end (high watermark) last seen; -1 unknown */
    int64_t lag;          /**< end_offset - position; -1 unknown */
    int32_t paused;       /**< 1: input paused (backpressure or circuit breaker) */
} eddy_source_lag_t;

/** @brief Lag of every open Kafka partition (up to max); returns how many
 *         there are. @remark Thread: any. */
EDDY_EXPORT int eddy_engine_source_lag(eddy_engine_t *eng, eddy_source_lag_t *out, int max);

/** Per-store figures, summed over the tasks. */
typedef struct eddy_store_stats {
    const char *name;           /**< borrowed, valid while the engine lives */
    uint64_t estimate_keys;     /**< RocksDB's estimate of live keys */
    uint64_t size_bytes;        /**< SST files + memtables */
    uint64_t cache_hits;        /**< write-cache hits, as of the last commit */
    uint64_t cache_misses;
    uint64_t restored_records;  /**< changelog records replayed at start */
    double restore_seconds;     /**< longest task restore at start */
    /** Freshness: the newest event time processed before the last commit
     *  that changed the store (INT64_MIN: unchanged since start). What a
     *  query reads reflects the input up to about this time. */
    int64_t newest_event_ms;
} eddy_store_stats_t;

/** @brief Figures of every store (up to max); returns the number of stores.
 *  @remark Thread: any. */
EDDY_EXPORT int eddy_engine_store_stats(eddy_engine_t *eng, eddy_store_stats_t *out, int max);

/** @brief Allocate/free with eddy's allocator (for strings eddy returns). */
EDDY_EXPORT void *eddy_malloc(size_t size);
EDDY_EXPORT void eddy_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif /* EDDY_H */
