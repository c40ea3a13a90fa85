#ifndef EDDY_AGGFN_H
#define EDDY_AGGFN_H
#include "eddy_int.h"
#include "expr.h"

struct eddy_compile_ctx_s;
struct eddy_topology_s;

/** Largest state a variable-size accumulator (count_distinct, top, bottom)
 *  may reach by adding records; see docs/windows.md "Aggregates". */
#define EDDY_AGG_MAX_STATE_BYTES (1u << 20)
/** Largest n of top(x, n) / bottom(x, n). */
#define EDDY_AGG_MAX_TOP_N 1000

/** What one aggregate of a step was compiled with besides its function
 *  and argument. Immutable after compile; shared by every task. */
typedef struct eddy_aggparam_s {
    int64_t n;                          /* top/bottom: how many values */
    const eddy_aggregate_def_t *udef;   /* user aggregates: the host's definition */
} eddy_aggparam_t;

/**
 * Scratch memory of one aggregate in one task: variable-size accumulators
 * (sets, lists, user accumulators) are rebuilt into it by add and merge, so
 * a record costs no allocation once the buffers have grown. An accumulator
 * value produced by add/merge points into the context and stays valid
 * until the next add/merge on the same context (the row codec copies it
 * into the store). Thread: the task's stream thread only.
 */
typedef struct eddy_aggctx_s {
    const eddy_aggparam_t *p;
    eddy_buf_t buf[3]; /* [cur]: last result; [!cur]: being built; [2]: aligned copy of other */
    int cur;
    char why[160];     /* add failed: the reason (for the dead letter) */
} eddy_aggctx_t;

typedef struct eddy_aggfn_s {
    const char *name;
    bool needs_arg;
    bool numeric;   /* the argument must be a number */
    eddy_type_t (*result_type)(eddy_type_t arg);
    /** v NULL: count() of records; ts: the record's event time. A non-OK
     *  return (the state would outgrow its limit, a user aggregate
     *  refused v) leaves acc as it was and writes x->why. */
    eddy_err_t (*add)(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t *v,
                      int64_t ts);
    /** acc = acc merged with other; never refused (merging drops nothing). */
    void (*merge)(eddy_aggctx_t *x, eddy_value_t acc[2], const eddy_value_t other[2]);
    /** Strings of out are in a (or in acc). a: memory for the call's
     *  output, valid as long as out is used. Thread: any. */
    void (*result)(const eddy_aggparam_t *p, const eddy_value_t acc[2], eddy_value_t *out,
                   eddy_arena_t *a);
} eddy_aggfn_t;

extern const eddy_aggfn_t eddy__aggfns[];
extern const int eddy__naggfns;
extern const char *const eddy__aggfn_names[];
/** A built-in aggregate of that name, or NULL. */
const eddy_aggfn_t *eddy__aggfn_builtin(const char *name);

/** A grouped aggregation as `aggregate` and window steps declare it: key
 *  expressions (`by`) and aggregate functions (`fields`). Each aggregate
 *  keeps 2 accumulator values in the stored row. */
typedef struct eddy_aggspec_s {
    int nby;
    eddy_expr_t **by;
    int nagg;
    const eddy_aggfn_t **fn;
    eddy_expr_t **arg; /* NULL for count() */
    eddy_aggparam_t *param;
} eddy_aggspec_t;

/** Compile `by` (an expression or a list; NULL: no key) against in; the
 *  key fields (named after plain field references, else key/keyN) are
 *  added to out (when not NULL) and to keys. */
eddy_err_t eddy__aggspec_by(eddy_aggspec_t *a, const eddy_cnode_t *by, const eddy_schema_t *in,
                            eddy_schema_t *out, eddy_schema_t *keys, char *errstr,
                            size_t errstr_size);
/** Compile `fields` ({name: fn(arg)}) against cc->in, with the
 *  aggregates registered on cc->topo; the results are added to out. */
eddy_err_t eddy__aggspec_fields(eddy_aggspec_t *a, const eddy_cnode_t *fields,
                                const struct eddy_compile_ctx_s *cc, eddy_schema_t *out,
                                const char *what, char *errstr, size_t errstr_size);
void eddy__aggspec_free(eddy_aggspec_t *a);
/** Mark in used[] the input fields the `by` expressions and the
 *  aggregates' arguments read: all that a step's results depend on. */
void eddy__aggspec_input_fields(const eddy_aggspec_t *a, bool *used);

/** Per-task scratch of every aggregate of a; free with
 *  eddy__aggspec_ctx_free. */
eddy_aggctx_t *eddy__aggspec_ctx_new(const eddy_aggspec_t *a);
void eddy__aggspec_ctx_free(const eddy_aggspec_t *a, eddy_aggctx_t *x);

/**
 * Add one record (row: its values, ts: its event time) to the 2*nagg
 * accumulator values at acc. Arguments are evaluated into ar.
 * @returns EDDY_OK, or an error with the reason in why: the record must
 *          then be dead-lettered and acc not stored (it may be partly
 *          updated).
 */
eddy_err_t eddy__aggspec_add(const eddy_aggspec_t *a, eddy_aggctx_t *x, eddy_value_t *acc,
                             const eddy_value_t *row, eddy_arena_t *ar, int64_t ts, char *why,
                             size_t why_size);
/** Merge the accumulators at from into those at into. */
void eddy__aggspec_merge(const eddy_aggspec_t *a, eddy_aggctx_t *x, eddy_value_t *into,
                         const eddy_value_t *from);
/** The nagg results of the accumulators at acc into out (memory from ar).
 *  Thread: any (queries call it). */
void eddy__aggspec_results(const eddy_aggspec_t *a, const eddy_value_t *acc, eddy_value_t *out,
                           eddy_arena_t *ar);

/** Parse "fn(arg)" (or "top(arg, n)") held by scalar n, compiling arg
 *  against in; user aggregates are looked up in topo (may be NULL). */
eddy_err_t eddy__aggfn_parse(const eddy_cnode_t *n, const eddy_schema_t *in,
                             const struct eddy_topology_s *topo, const eddy_aggfn_t **fn,
                             eddy_expr_t **arg, eddy_aggparam_t *param, char *errstr,
                             size_t errstr_size);
#endif
