/*
 * The expression language of filter and map steps (and later of joins, CEP
 * and dedup): `auction % 123 = 0`, `price * 0.908`,
 * `lower(channel) in ('web', 'app') and price between 10 and 100`.
 *
 * An expression is compiled once against the schema of its input: field
 * names become indexes, types are checked, constant sub-expressions are
 * folded. Evaluation then never allocates (except string results, which go
 * into the caller's arena), never looks a name up and never parses. The
 * language itself is described at the top of expr.c and in
 * docs/expressions.md.
 *
 * Thread: a compiled expression is immutable; any number of threads may
 * evaluate it at the same time (each with its own arena).
 */
#ifndef EDDY_EXPR_H
#define EDDY_EXPR_H

#include "eddy_int.h"

/** Longest accepted source text, in bytes. */
#define EDDY_EXPR_MAX_LEN (64 * 1024)
/** Deepest accepted nesting (parentheses, unary operators, operator
 *  chains, function calls): bounds the stack used by compile and eval.
 *  At this limit compiling needs up to about 180 KB of stack and
 *  evaluating about 40 KB (measured on x86-64 at -O2; sanitizers need
 *  more): compile on a thread with at least 256 KB of stack. */
#define EDDY_EXPR_MAX_DEPTH 256

typedef struct eddy_expr_s eddy_expr_t;

/**
 * @brief Compile src against the schema `in`.
 * @param in borrowed, only during the call (fields are resolved to indexes
 *        and types); may be NULL for an expression that reads no field.
 * @param err_col on error, the 0-based byte column in src where the
 *        problem is (may be NULL).
 * @returns the expression (free with eddy__expr_destroy()), or NULL with a
 *          message such as "unknown field 'prize' (did you mean 'price'?)"
 *          in errstr.
 */
eddy_expr_t *eddy__expr_compile(const char *src, const eddy_schema_t *in, char *errstr,
                                size_t errstr_size, int *err_col);

/** @brief Static result type (EDDY_TYPE_NULL for the literal `null`). */
eddy_type_t eddy__expr_type(const eddy_expr_t *e);

/** @brief True when the expression reads no field (it was folded to a
 *         constant at compile time). */
bool eddy__expr_is_const(const eddy_expr_t *e);

/** @brief True when evaluation may allocate string results from the arena
 *         (lower, upper, concat, casts to string). When false, eval accepts
 *         a NULL arena. */
bool eddy__expr_needs_arena(const eddy_expr_t *e);

/** @brief The source text the expression was compiled from (borrowed,
 *         valid while e lives). */
const char *eddy__expr_source(const eddy_expr_t *e);

/**
 * @brief Evaluate against one row.
 * @param row the values of the input schema's fields, in schema order.
 * @param arena where string results are allocated (see
 *        eddy__expr_needs_arena()).
 * @param out the result; EDDY_TYPE_NULL for SQL NULL. Never fails: runtime
 *        errors (division by zero, overflow, a failed cast) give NULL.
 * @remark A string result may point into the row, into the arena or into
 *         the expression's constants: it is valid while all three are.
 * @remark Thread: any; e is not modified.
 */
void eddy__expr_eval(const eddy_expr_t *e, const eddy_value_t *row, eddy_arena_t *arena,
                     eddy_value_t *out);

/** @brief Filter helper: true only when the result is non-null boolean
 *         true (NULL and false both drop the record, as SQL WHERE does). */
bool eddy__expr_eval_bool(const eddy_expr_t *e, const eddy_value_t *row, eddy_arena_t *arena);

void eddy__expr_destroy(eddy_expr_t *e);

/** @brief If the expression is exactly a field reference (`price`), its field index; else -1.
 *  Lets map/project copy the value without evaluating. */
int eddy__expr_field_ref(const eddy_expr_t *e);

/**
 * @brief The distinct field indexes the expression reads, ascending.
 * @returns how many there are; at most max are written to out (as
 *          snprintf, call again with a larger array when the result > max).
 */
int eddy__expr_fields(const eddy_expr_t *e, int *out, int max);

#endif /* EDDY_EXPR_H */
