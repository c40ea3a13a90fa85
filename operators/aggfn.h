#ifndef EDDY_AGGFN_H
#define EDDY_AGGFN_H
#include "eddy_int.h"
#include "expr.h"

typedef struct eddy_aggfn_s {
    const char *name;
    bool needs_arg;
    bool numeric;   /* the argument must be a number */
    eddy_type_t (*result_type)(eddy_type_t arg);
    /* v NULL: count() of records; ts: the record's event time */
    void (*add)(eddy_value_t acc[2], const eddy_value_t *v, int64_t ts);
    void (*merge)(eddy_value_t acc[2], const eddy_value_t other[2]);
    void (*result)(const eddy_value_t acc[2], eddy_value_t *out);
} eddy_aggfn_t;

extern const eddy_aggfn_t eddy__aggfns[];
extern const int eddy__naggfns;
extern const char *const eddy__aggfn_names[];

/** A grouped aggregation as `aggregate` and window steps declare it: key
 *  expressions (`by`) and aggregate functions (`fields`). */
typedef struct eddy_aggspec_s {
    int nby;
    eddy_expr_t **by;
    int nagg;
    const eddy_aggfn_t **fn;
    eddy_expr_t **arg; /* NULL for count() */
} eddy_aggspec_t;

/** Compile `by` (an expression or a list; NULL: no key) against in; the
 *  key fields (named after plain field references, else key/keyN) are
 *  added to out (when not NULL) and to keys. */
eddy_err_t eddy__aggspec_by(eddy_aggspec_t *a, const eddy_cnode_t *by, const eddy_schema_t *in,
                            eddy_schema_t *out, eddy_schema_t *keys, char *errstr,
                            size_t errstr_size);
/** Compile `fields` ({name: fn(arg)}); the results are added to out. */
eddy_err_t eddy__aggspec_fields(eddy_aggspec_t *a, const eddy_cnode_t *fields,
                                const eddy_schema_t *in, eddy_schema_t *out, const char *what,
                                char *errstr, size_t errstr_size);
void eddy__aggspec_free(eddy_aggspec_t *a);

/** Parse "fn(arg)" held by scalar n, compiling arg against in. */
eddy_err_t eddy__aggfn_parse(const eddy_cnode_t *n, const eddy_schema_t *in,
                             const eddy_aggfn_t **fn, eddy_expr_t **arg, char *errstr,
                             size_t errstr_size);
#endif
