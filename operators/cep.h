/*
 * CEP (complex event processing): the compiled pattern, shared by the
 * compiler (operators/cep_compile.c) and the matcher (operators/cep.c).
 * Syntax and semantics: docs/cep.md.
 *
 * A pattern is a sequence of stages. An event stage takes events (min..max
 * of them, max CEP_INF for loops); a negation stage (not_next,
 * not_followed_by) takes none and guards the gap before the next event
 * stage (or, last, the time up to `within`). Conditions are expressions
 * over the input record extended with one virtual field per aggregate
 * reference (`avg(small.price)` -> field nin + i), so iterative conditions
 * and output fields are compiled by the ordinary expression compiler.
 */
#ifndef EDDY_CEP_H
#define EDDY_CEP_H

#include "aggfn.h"
#include "expr.h"
#include "plan.h"

#define CEP_INF 0x7fffffff

typedef enum { CEP_STRICT = 0, CEP_RELAXED = 1, CEP_ANY = 2 } cep_contig_t;
typedef enum { CEP_EVENT = 0, CEP_NOT_NEXT = 1, CEP_NOT_FOLLOWED_BY = 2 } cep_kind_t;
typedef enum {
    CEP_NO_SKIP = 0,
    CEP_SKIP_TO_NEXT = 1,
    CEP_SKIP_PAST_LAST = 2,
    CEP_SKIP_TO_FIRST = 3,
    CEP_SKIP_TO_LAST = 4
} cep_skip_t;
typedef enum {
    CEP_F_COUNT = 0,
    CEP_F_SUM,
    CEP_F_AVG,
    CEP_F_MIN,
    CEP_F_MAX,
    CEP_F_FIRST,
    CEP_F_LAST
} cep_fn_t;

/** An accumulator a run keeps: over the events of `stage`, of input
 *  field `field` (-1: count(stage), events only). */
typedef struct {
    int stage, field;
} cep_acc_t;

/** An aggregate reference in an expression: virtual field nin + i. */
typedef struct {
    cep_fn_t fn;
    int acc;
    eddy_type_t type;
} cep_ref_t;

typedef struct {
    char *name;
    cep_kind_t kind;
    cep_contig_t contig; /* how its first event follows the previous event stage */
    cep_contig_t inner;  /* between its own events (loops) */
    int min, max;        /* events it takes; max CEP_INF: unbounded */
    bool greedy;
    eddy_expr_t *cond;   /* event stage: take; negation: the forbidden event */
    eddy_expr_t *until;  /* loops: stop taking */
    int *refs;           /* refs that cond and until read */
    int nrefs;
} cep_stage_t;

typedef struct cep_conf_s {
    int nst;
    cep_stage_t *st;
    int nacc;
    cep_acc_t *acc;
    int nref;
    cep_ref_t *ref;
    int nin;           /* input fields; expressions see nin + nref */
    eddy_aggspec_t by; /* only its by expressions */
    int nout;
    char **out_names;
    eddy_expr_t **out;
    int *orefs; /* refs the output fields read */
    int norefs;
    int64_t within; /* 0: none */
    cep_skip_t skip;
    int skip_stage;
    int timeouts_node; /* sink node of timed-out partial matches, or -1 */
    int state_store;   /* kv: per key, its partial matches and buffered events */
    int match_store;   /* log: matches by key and time (queryable) */
    eddy_schema_t *outs;  /* by, match_start, match_end, fields */
    eddy_schema_t *touts; /* the same + waiting_for */
    eddy_schema_t *keys;
} cep_conf_t;

eddy_err_t eddy__cep_compile(eddy_compile_ctx_t *cc, char *errstr, size_t errstr_size);
void eddy__cep_free(void *conf);
struct eddy_store_def_s;
eddy_err_t eddy__cep_decode_partial(const struct eddy_store_def_s *def, const char *v,
                                    size_t vl, eddy_arena_t *a, eddy_value_t *out);
const eddy_cnode_t *eddy__cep_exchange_key(const eddy_cnode_t *step, bool *wanted);

#endif
