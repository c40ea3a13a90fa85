/*
 * The expression language (engine/expr.c): what expressions evaluate to,
 * the exact compile errors a user reads (message and column), the limits
 * that keep hostile input from crashing or exhausting the stack, and the
 * promise that evaluating a non-string expression allocates nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <math.h>
#include <stdlib.h>

#include "expr.h"

/* ------------------------------------------------------------ fixtures */

/* The input schema most tests compile against, and one row of it. */
enum { F_AUCTION, F_PRICE, F_CHANNEL, F_FLAG, F_TS, F_AB, F_N, F_SN, F_WEIRD, F_DATA, F_END, NF };
static const char *const g_names[NF] = {"auction", "price", "channel",    "flag", "ts", "a.b",
                                        "n",       "sn",    "weird name", "data", "end"};
static const eddy_type_t g_types[NF] = {EDDY_TYPE_INT,   EDDY_TYPE_DOUBLE,    EDDY_TYPE_STRING,
                                        EDDY_TYPE_BOOL,  EDDY_TYPE_TIMESTAMP, EDDY_TYPE_INT,
                                        EDDY_TYPE_INT,   EDDY_TYPE_STRING,    EDDY_TYPE_INT,
                                        EDDY_TYPE_BYTES, EDDY_TYPE_INT};
static eddy_schema_t *g_schema;
static eddy_value_t g_row[NF];

#define TS_VALUE INT64_C(1700000000123) /* 2023-11-14T22:13:20.123Z */

static int group_setup(void **state) {
    (void)state;
    g_schema = eddy_schema_new(NF, g_names, g_types);
    g_row[F_AUCTION] = (eddy_value_t){.u.i = 246, .type = EDDY_TYPE_INT};
    g_row[F_PRICE] = (eddy_value_t){.u.d = 100.0, .type = EDDY_TYPE_DOUBLE};
    g_row[F_CHANNEL] = (eddy_value_t){.u.s = "Web", .len = 3, .type = EDDY_TYPE_STRING};
    g_row[F_FLAG] = (eddy_value_t){.u.i = 1, .type = EDDY_TYPE_BOOL};
    g_row[F_TS] = (eddy_value_t){.u.i = TS_VALUE, .type = EDDY_TYPE_TIMESTAMP};
    g_row[F_AB] = (eddy_value_t){.u.i = 7, .type = EDDY_TYPE_INT};
    g_row[F_N] = (eddy_value_t){.type = EDDY_TYPE_NULL};
    g_row[F_SN] = (eddy_value_t){.type = EDDY_TYPE_NULL};
    g_row[F_WEIRD] = (eddy_value_t){.u.i = 1, .type = EDDY_TYPE_INT};
    g_row[F_DATA] = (eddy_value_t){.u.s = "r\0w", .len = 3, .type = EDDY_TYPE_BYTES};
    g_row[F_END] = (eddy_value_t){.u.i = 3, .type = EDDY_TYPE_INT};
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    eddy_schema_destroy(g_schema);
    return 0;
}

static eddy_expr_t *compile_in(const char *src, const eddy_schema_t *schema) {
    char err[512] = "";
    int col = -1;
    eddy_expr_t *e = eddy__expr_compile(src, schema, err, sizeof(err), &col);
    if (!e)
        fail_msg("'%s' failed to compile at column %d: %s", src, col, err);
    return e;
}

static eddy_expr_t *compile(const char *src) {
    return compile_in(src, g_schema);
}

/* A result copied out of the arena, so the expression can be freed. */
typedef struct result_s {
    eddy_value_t v;
    eddy_type_t type; /* static type */
    char text[512];
} result_t;

static result_t eval_row(const char *src, const eddy_value_t *row) {
    eddy_expr_t *e = compile(src);
    eddy_arena_t a;
    eddy_arena_init(&a, 0);
    result_t r;
    memset(&r, 0, sizeof(r));
    eddy__expr_eval(e, row, &a, &r.v);
    r.type = eddy__expr_type(e);
    /* The evaluator's contract: NULL or exactly the static type. */
    if (r.v.type != EDDY_TYPE_NULL && r.v.type != r.type)
        fail_msg("'%s': value of type %s, static type %s", src,
                 eddy_type2str((eddy_type_t)r.v.type), eddy_type2str(r.type));
    if (r.v.type == EDDY_TYPE_STRING || r.v.type == EDDY_TYPE_BYTES) {
        assert_true(r.v.len < sizeof(r.text));
        if (r.v.len)
            memcpy(r.text, r.v.u.s, r.v.len);
        r.v.u.s = r.text;
    }
    eddy_arena_free(&a);
    eddy__expr_destroy(e);
    return r;
}

static result_t eval(const char *src) {
    return eval_row(src, g_row);
}

static void expect_int(const char *src, int64_t want) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_INT || r.v.u.i != want)
        fail_msg("'%s': expected int %lld, got type %s value %lld", src, (long long)want,
                 eddy_type2str((eddy_type_t)r.v.type), (long long)r.v.u.i);
}

static void expect_ts(const char *src, int64_t want) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_TIMESTAMP || r.v.u.i != want)
        fail_msg("'%s': expected timestamp %lld, got type %s value %lld", src, (long long)want,
                 eddy_type2str((eddy_type_t)r.v.type), (long long)r.v.u.i);
}

static void expect_dbl(const char *src, double want) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_DOUBLE || !(fabs(r.v.u.d - want) <= 1e-12 * fabs(want)))
        fail_msg("'%s': expected double %.17g, got type %s value %.17g", src, want,
                 eddy_type2str((eddy_type_t)r.v.type), r.v.u.d);
}

static void expect_bool(const char *src, bool want) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_BOOL || r.v.u.i != want)
        fail_msg("'%s': expected %s, got type %s value %lld", src, want ? "true" : "false",
                 eddy_type2str((eddy_type_t)r.v.type), (long long)r.v.u.i);
}

static void expect_null(const char *src) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_NULL)
        fail_msg("'%s': expected NULL, got type %s", src, eddy_type2str((eddy_type_t)r.v.type));
}

static void expect_str(const char *src, const char *want) {
    result_t r = eval(src);
    if (r.v.type != EDDY_TYPE_STRING || r.v.len != strlen(want) || memcmp(r.text, want, r.v.len))
        fail_msg("'%s': expected '%s', got type %s '%.*s'", src, want,
                 eddy_type2str((eddy_type_t)r.v.type), (int)r.v.len, r.text);
}

static void expect_type(const char *src, eddy_type_t want) {
    eddy_expr_t *e = compile(src);
    eddy_type_t t = eddy__expr_type(e);
    eddy__expr_destroy(e);
    if (t != want)
        fail_msg("'%s': expected static type %s, got %s", src, eddy_type2str(want),
                 eddy_type2str(t));
}

/* Compiling src must fail with exactly `msg` at column `col`. */
static void expect_err(const char *src, int col, const char *msg) {
    char err[512] = "";
    int got_col = -1;
    eddy_expr_t *e = eddy__expr_compile(src, g_schema, err, sizeof(err), &got_col);
    if (e) {
        eddy__expr_destroy(e);
        fail_msg("'%s' compiled, expected error: %s", src, msg);
    }
    if (strcmp(err, msg) != 0)
        fail_msg("'%s':\n  expected: %s\n  got:      %s", src, msg, err);
    if (got_col != col)
        fail_msg("'%s': error at column %d, expected %d (%s)", src, got_col, col, err);
}

/* ---------------------------------------------------------- arithmetic */

static void arithmetic_follows_precedence_and_left_associativity(void **state) {
    (void)state;
    expect_int("1 + 2 * 3", 7);
    expect_int("(1 + 2) * 3", 9);
    expect_int("10 - 4 - 3", 3);
    expect_int("100 / 10 / 5", 2);
    expect_int("2 * 3 % 4", 2);
    expect_int("-2 * 3", -6);
    expect_int("- -3", 3);
    expect_int("+auction", 246);
    expect_int("auction - 6 * 2 * 10", 126);
}

static void arithmetic_promotes_int_to_double(void **state) {
    (void)state;
    expect_int("7 / 2", 3);
    expect_dbl("7 / 2.0", 3.5);
    expect_dbl("auction * 0.5", 123.0);
    expect_dbl("auction + price", 346.0);
    expect_dbl("price * 0.908", 90.8);
    expect_dbl("1e6 + 1", 1000001.0);
    expect_dbl(".5 * 4", 2.0);
    expect_type("auction * 2", EDDY_TYPE_INT);
    expect_type("auction * 2.0", EDDY_TYPE_DOUBLE);
}

static void integer_division_truncates_toward_zero(void **state) {
    (void)state;
    expect_int("-7 / 2", -3);
    expect_int("-7 % 2", -1);
    expect_int("7 % -2", 1);
    expect_dbl("7.5 % 2", 1.5);
}

static void division_or_modulo_by_zero_gives_null(void **state) {
    (void)state;
    expect_null("auction / 0");
    expect_null("auction % 0");
    expect_null("price / 0");
    expect_null("price % 0.0");
    expect_null("1 / 0");
    expect_null("auction / (auction - 246)");
    expect_type("auction / 0", EDDY_TYPE_INT);
}

static void int_overflow_gives_null_and_never_wraps(void **state) {
    (void)state;
    expect_null("9223372036854775807 + 1");
    expect_null("auction * 9223372036854775807");
    expect_null("-9223372036854775808 - 1");
    expect_null("-(-9223372036854775808)");
    expect_null("-9223372036854775808 / -1");
    expect_null("abs(-9223372036854775808)");
    expect_int("-9223372036854775808 % -1", 0);
    expect_int("-9223372036854775808", INT64_MIN);
    expect_int("9223372036854775807", INT64_MAX);
}

static void integer_literal_beyond_int64_is_a_compile_error(void **state) {
    (void)state;
    expect_err("auction + 9223372036854775808", 10,
               "integer 9223372036854775808 is out of range (write 9223372036854775808.0 for a "
               "double)");
    expect_err("1 + 1e400", 4, "number 1e400 is out of range for a double");
    expect_err("12abc", 0, "malformed number '12abc'");
    expect_err("1e+", 0, "malformed number '1e+'");
}

static void null_propagates_through_operators_and_functions(void **state) {
    (void)state;
    expect_null("n + 1");
    expect_null("n * 2.0");
    expect_null("-n");
    expect_null("n = 1");
    expect_null("n < auction");
    expect_null("upper(sn)");
    expect_null("len(sn)");
    expect_null("substr(channel, n)");
    expect_null("abs(n)");
    expect_null("round(price, n)");
    expect_null("greatest(1, n)");
    expect_null("cast(n as string)");
    expect_null("null + 1");
    expect_type("null + 1", EDDY_TYPE_INT);
}

static void timestamps_take_int_milliseconds(void **state) {
    (void)state;
    expect_ts("ts + 1000", TS_VALUE + 1000);
    expect_ts("1000 + ts", TS_VALUE + 1000);
    expect_ts("ts - 123", TS_VALUE - 123);
    expect_int("ts - ts", 0);
    expect_bool("ts > 1700000000000", true);
    expect_bool("ts = 1700000000123", true);
    expect_err("ts * 2", 3,
               "operator '*' cannot combine timestamp and int (a timestamp takes + or - an int "
               "of milliseconds, and - another timestamp)");
}

static void plus_on_strings_is_a_type_error_with_column(void **state) {
    (void)state;
    expect_err("auction + 'x'", 8, "operator '+' needs numbers, got int and string");
    expect_err("price + 'x'", 6, "operator '+' needs numbers, got double and string");
    expect_err("channel * 2", 8, "operator '*' needs numbers, got string and int");
    expect_err("1 + -channel", 4, "operator '-' needs a number, got string");
    expect_err("- +channel", 2, "operator '+' needs a number, got string"); /* innermost */
    expect_err("flag + 1", 5, "operator '+' needs numbers, got boolean and int");
}

/* ---------------------------------------------------------- comparisons */

static void comparisons_compare_int_and_double_numerically(void **state) {
    (void)state;
    expect_bool("auction = 246.0", true);
    expect_bool("auction == 246", true);
    expect_bool("auction < 246.5", true);
    expect_bool("2 > 1.5", true);
    expect_bool("price >= 100", true);
    expect_bool("price <= 99", false);
    expect_bool("auction <> 246", false);
    expect_bool("auction != 245.9", true);
    expect_bool("auction % 123 = 0", true);
    expect_bool("double('NaN') = double('NaN')", false);
    expect_bool("double('NaN') != 1.0", true);
}

static void comparisons_order_strings_bytewise(void **state) {
    (void)state;
    expect_bool("'abc' < 'abd'", true);
    expect_bool("'ab' < 'abc'", true);
    expect_bool("'B' < 'a'", true);
    expect_bool("channel = 'Web'", true);
    expect_bool("channel = 'web'", false);
    expect_bool("'\\u00e9' > 'z'", true); /* UTF-8 lead byte 0xC3 > 'z' */
    expect_bool("'' < 'a'", true);
}

static void comparisons_order_booleans_false_before_true(void **state) {
    (void)state;
    expect_bool("false < true", true);
    expect_bool("flag = true", true);
    expect_bool("flag > false", true);
}

static void comparing_incompatible_types_is_a_compile_error(void **state) {
    (void)state;
    expect_err("channel = 1", 8, "operator '=' cannot compare string and int");
    expect_err("flag <> 1", 5, "operator '<>' cannot compare boolean and int");
    expect_err("1 < 2 < 3", 6,
               "comparisons do not chain: combine them with 'and' (a < b and b < c)");
}

/* -------------------------------------------------------------- logic */

/* p and q range over true, false and NULL through fields, so the run-time
 * path is tested, not only constant folding. */
static const char *const g_pq_names[] = {"p", "q"};
static const eddy_type_t g_pq_types[] = {EDDY_TYPE_BOOL, EDDY_TYPE_BOOL};

/* t: 1 true, 0 false, -1 NULL */
static eddy_value_t tv(int t) {
    eddy_value_t v = {.type = EDDY_TYPE_NULL};
    if (t >= 0) {
        v.type = EDDY_TYPE_BOOL;
        v.u.i = t;
    }
    return v;
}

static void check_table(const char *src, const int want[3][3]) {
    eddy_schema_t *s = eddy_schema_new(2, (const char *const *)g_pq_names, g_pq_types);
    eddy_expr_t *e = compile_in(src, s);
    const int vals[3] = {1, 0, -1};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) {
            eddy_value_t row[2] = {tv(vals[i]), tv(vals[j])}, out;
            eddy__expr_eval(e, row, NULL, &out);
            int got = out.type == EDDY_TYPE_NULL ? -1 : (int)out.u.i;
            if (got != want[i][j])
                fail_msg("'%s' with p=%d q=%d: got %d, expected %d (-1 = NULL)", src, vals[i],
                         vals[j], got, want[i][j]);
        }
    }
    eddy__expr_destroy(e);
    eddy_schema_destroy(s);
}

static void and_follows_three_valued_logic(void **state) {
    (void)state;
    /* rows p = true, false, NULL; columns q = true, false, NULL */
    static const int t_and[3][3] = {{1, 0, -1}, {0, 0, 0}, {-1, 0, -1}};
    check_table("p and q", t_and);
    check_table("p AND q", t_and);
    check_table("p && q", t_and);
}

static void or_follows_three_valued_logic(void **state) {
    (void)state;
    static const int t_or[3][3] = {{1, 1, 1}, {1, 0, -1}, {1, -1, -1}};
    check_table("p or q", t_or);
    check_table("p || q", t_or);
}

static void not_follows_three_valued_logic(void **state) {
    (void)state;
    static const int t_not[3][3] = {{0, 0, 0}, {1, 1, 1}, {-1, -1, -1}};
    check_table("not p", t_not);
    check_table("!p", t_not);
    check_table("NOT p", t_not);
    expect_null("not null");
}

static void and_binds_tighter_than_or_and_not_looser_than_comparison(void **state) {
    (void)state;
    expect_bool("true or true and false", true);
    expect_bool("true || true && false", true);
    expect_bool("not auction = 1", true);
    expect_bool("not flag and false", false);
    expect_bool("auction > 1000 || auction < 300", true);
}

static void logic_operators_need_booleans(void **state) {
    (void)state;
    expect_err("flag and auction", 5, "operator 'and' needs booleans, got boolean and int");
    expect_err("auction or flag", 8, "operator 'or' needs booleans, got int and boolean");
    expect_err("not price", 0, "operator 'not' needs a boolean, got double");
    expect_err("not !price", 4, "operator '!' needs a boolean, got double"); /* innermost */
    expect_err("auction || 1", 8,
               "operator '||' needs booleans (logical or) or a string (concat), got int and int");
}

static void is_null_and_is_not_null_never_return_null(void **state) {
    (void)state;
    expect_bool("n is null", true);
    expect_bool("n is not null", false);
    expect_bool("auction IS NULL", false);
    expect_bool("auction is not null", true);
    expect_bool("null is null", true);
    expect_bool("n + 1 is null", true);
    expect_err("n is 1", 5, "expected 'null' or 'not null' after 'is', got '1'");
}

static void in_list_matches_and_treats_null_as_sql_does(void **state) {
    (void)state;
    expect_bool("auction in (1, 246)", true);
    expect_bool("auction in (1, 2)", false);
    expect_null("auction in (1, null)");
    expect_bool("auction in (246, null)", true);
    expect_bool("auction not in (1, 2)", true);
    expect_null("auction not in (1, null)");
    expect_null("n in (1, 2)");
    expect_bool("auction in (246.0)", true);
    expect_bool("lower(channel) in ('web', 'app')", true);
    expect_bool("channel NOT IN ('web', 'app')", true);
}

static void in_list_of_another_type_is_a_compile_error(void **state) {
    (void)state;
    expect_err("auction in (1, 'x')", 15, "'in' cannot compare int with string");
    expect_err("auction in ()", 12, "'in' needs at least one value");
    expect_err("auction in (1, 2", 16,
               "expected ',' or ')' in the 'in' list, got the end of the expression");
}

static void in_list_of_ten_thousand_values_works(void **state) {
    (void)state;
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "auction in (");
    for (int i = 0; i < 10000; i++)
        eddy_buf_printf(&b, "%s%d", i ? "," : "", 10000 - i);
    eddy_buf_printf(&b, ")");
    expect_bool(b.p, true);
    eddy_buf_free(&b);
}

static void between_is_inclusive_and_three_valued(void **state) {
    (void)state;
    expect_bool("auction between 246 and 300", true);
    expect_bool("auction between 200 and 246", true);
    expect_bool("auction between 247 and 300", false);
    expect_bool("auction not between 1 and 10", true);
    expect_bool("price between 99.5 and 100", true);
    expect_bool("channel between 'A' and 'Z'", true);
    expect_null("n between 1 and 2");
    expect_null("auction between null and 300");
    expect_bool("auction between 300 and null", false); /* already below lo */
    expect_bool("auction between 1 and 300 and flag", true);
    expect_err("auction between 1 or 2", 18, "expected 'and' in 'between ... and ...', got 'or'");
    expect_err("auction between 'a' and 'b'", 16, "'between' cannot compare int with string");
}

/* ------------------------------------------------------- conditionals */

static void case_returns_first_true_branch_and_null_counts_as_false(void **state) {
    (void)state;
    expect_str("case when auction > 300 then 'big' when auction > 200 then 'mid' else 'small' "
               "end",
               "mid");
    expect_str("case when n > 1 then 'a' else 'b' end", "b");
    expect_null("case when auction > 300 then 'big' end");
    expect_dbl("CASE WHEN flag THEN 1 ELSE 2.5 END", 1.0);
    expect_err("case auction when 1 then 2 end", 5,
               "expected 'when' after 'case', got 'auction' (the form is: case when condition "
               "then value ... else value end)");
    expect_err("case when auction then 1 end", 10, "'when' needs a boolean condition, got int");
    expect_err("case when flag then 1 when true then 'x' end", 37,
               "branches of case have different types: int and string");
    expect_err("case when flag then 1", 21,
               "expected 'when', 'else' or 'end' in case, got the end of the expression");
}

static void if_treats_null_condition_as_false(void **state) {
    (void)state;
    expect_int("if(n > 0, 1, 2)", 2);
    expect_int("if(flag, 1, 2)", 1);
    expect_dbl("if(flag, 1, 2.5)", 1.0);
    expect_null("if(flag, null, 2)");
    expect_type("if(flag, null, 2)", EDDY_TYPE_INT);
    expect_err("if(flag, 1, 'x')", 12, "branches of if() have different types: int and string");
    expect_err("if(auction, 1, 2)", 3,
               "function 'if' needs a boolean condition as argument 1, got int");
}

static void coalesce_returns_first_non_null(void **state) {
    (void)state;
    expect_int("coalesce(n, auction, 1)", 246);
    expect_int("coalesce(n, 5)", 5);
    expect_null("coalesce(n, null)");
    expect_dbl("coalesce(n, 2.5)", 2.5);
    expect_str("coalesce(sn, channel)", "Web");
    expect_err("coalesce(n, 'x')", 12,
               "arguments of coalesce() have different types: int and string");
}

/* ------------------------------------------------------------ strings */

static void string_functions_return_expected_text(void **state) {
    (void)state;
    expect_str("lower(channel)", "web");
    expect_str("upper(channel)", "WEB");
    expect_str("upper('h\\u00e9llo')", "H\xc3\xa9LLO"); /* ASCII letters only */
    expect_str("trim('  hi \\t')", "hi");
    expect_int("len(channel)", 3);
    expect_int("length('\\u00e9')", 2); /* bytes */
    expect_bool("contains(channel, 'e')", true);
    expect_bool("contains(channel, '')", true);
    expect_bool("contains(channel, 'x')", false);
    expect_bool("starts_with(channel, 'We')", true);
    expect_bool("starts_with(channel, 'Webb')", false);
    expect_bool("ends_with(channel, 'eb')", true);
    expect_bool("ends_with(channel, 'W')", false);
    expect_str("concat(channel, '-', auction)", "Web-246");
    expect_err("lower(auction)", 6, "function 'lower' needs a string, got int");
    expect_err("substr(channel, 1.5)", 16,
               "function 'substr' needs an int as argument 2, got double");
}

static void substr_is_one_based_and_clamps(void **state) {
    (void)state;
    expect_str("substr('hello', 1, 2)", "he");
    expect_str("substr('hello', 0, 2)", "he");
    expect_str("substr('hello', 2)", "ello");
    expect_str("substr('hello', 4, 100)", "lo");
    expect_str("substr('hello', 9)", "");
    expect_str("substr('hello', -2)", "lo");
    expect_str("substr('hello', -9, 2)", "he");
    expect_str("substring('hello', 2, -1)", "");
}

static void concat_converts_non_strings_and_propagates_null(void **state) {
    (void)state;
    expect_str("concat('a', 1, 2.5, true, ts)", "a12.5true2023-11-14T22:13:20.123Z");
    expect_str("concat(price)", "100.0");
    expect_null("concat('a', n)");
    expect_null("channel || sn");
    /* more arguments than the evaluator keeps on its stack */
    expect_str("concat('a','b','c','d','e','f','g','h','i','j',auction)", "abcdefghij246");
}

static void bars_is_concat_when_a_side_is_a_string_else_logical_or(void **state) {
    (void)state;
    expect_str("channel || '-' || auction", "Web-246");
    expect_str("auction || '-'", "246-");
    expect_str("auction + 1 || '-' || flag", "247-true");
    expect_bool("channel || 'x' = 'Webx'", true); /* concat binds tighter than = */
    expect_bool("flag || n > 1", true);
    expect_bool("auction > 1000 || auction < 300", true);
    expect_err("auction > 1 || 'x'", 12,
               "'||' between a comparison and a string: as concat, '||' binds tighter than "
               "comparisons; add parentheses or use concat()");
}

static void string_results_come_from_the_arena_or_point_into_the_row(void **state) {
    (void)state;
    eddy_arena_t a;
    eddy_arena_init(&a, 0);
    eddy_value_t v;

    eddy_expr_t *e = compile("upper(channel)");
    assert_true(eddy__expr_needs_arena(e));
    eddy__expr_eval(e, g_row, &a, &v);
    assert_non_null(a.head);
    assert_true(v.u.s >= a.head->data && v.u.s + v.len <= a.head->data + a.head->used);
    eddy__expr_destroy(e);

    /* substr and trim share the input's bytes: no copy, no arena. */
    e = compile("substr(channel, 2)");
    assert_false(eddy__expr_needs_arena(e));
    eddy__expr_eval(e, g_row, NULL, &v);
    assert_ptr_equal(v.u.s, g_row[F_CHANNEL].u.s + 1);
    assert_int_equal(v.len, 2);
    eddy__expr_destroy(e);

    /* A string result without an arena is NULL, never a crash. */
    e = compile("upper(channel)");
    eddy__expr_eval(e, g_row, NULL, &v);
    assert_int_equal(v.type, EDDY_TYPE_NULL);
    eddy__expr_destroy(e);
    eddy_arena_free(&a);
}

static void string_literals_decode_escapes_and_doubled_quotes(void **state) {
    (void)state;
    expect_str("'it''s'", "it's");
    expect_str("\"say \"\"hi\"\"\"", "say \"hi\"");
    expect_str("'a\\tb\\nc\\\\d\\'e\\\"f'", "a\tb\nc\\d'e\"f");
    expect_str("'\\x41\\u00e9\\ud83d\\ude00'", "A\xc3\xa9\xf0\x9f\x98\x80");
    expect_int("len('a\\0b')", 3);
    expect_err("channel = 'w\\qeb'", 12, "unknown escape '\\q' in string");
    expect_err("'\\x4'", 1, "bad \\x escape in string (needs two hex digits)");
    expect_err("'\\ud83d'", 1, "bad \\u escape in string (high surrogate without a low one)");
}

static void unterminated_string_reports_column_of_opening_quote(void **state) {
    (void)state;
    expect_err("channel = 'web", 10, "unterminated string (missing closing ')");
    expect_err("channel = \"web", 10, "unterminated string (missing closing \")");
    expect_err("channel = 'web\\'", 10, "unterminated string (missing closing ')");
    expect_err("`weird name", 0, "unterminated backquoted name (missing closing `)");
}

/* -------------------------------------------------------------- casts */

static void casts_convert_and_a_failed_parse_gives_null(void **state) {
    (void)state;
    expect_int("cast('12' as int)", 12);
    expect_int("cast(' -42 ' as long)", -42);
    expect_null("cast('x' as int)");
    expect_null("cast('12.5' as int)");
    expect_null("cast('99999999999999999999' as int)");
    expect_dbl("cast('1.5' as double)", 1.5);
    expect_dbl("float('1e3')", 1000.0);
    expect_dbl("double('0.1')", 0.1);
    expect_dbl("double('123456789012345678901234567890')", 1.2345678901234568e29);
    expect_null("cast('abc' as double)");
    expect_null("double('0x10')");
    expect_int("cast(3.9 as int)", 3);
    expect_int("int(-3.9)", -3);
    expect_null("cast(1e300 as int)");
    expect_dbl("double(auction)", 246.0);
    expect_str("string(auction)", "246");
    expect_str("string(-9223372036854775808)", "-9223372036854775808");
    expect_str("string(price)", "100.0");
    expect_str("string(0.1)", "0.1");
    expect_str("string(1.0 / 3)", "0.3333333333333333");
    expect_str("cast(flag as string)", "true");
    expect_bool("cast('TRUE' as boolean)", true);
    expect_bool("bool('no')", false);
    expect_null("cast('maybe' as boolean)");
    expect_bool("boolean(0)", false);
    expect_int("int(flag)", 1);
    expect_ts("timestamp('2023-11-14T22:13:20.123Z')", TS_VALUE);
    expect_ts("timestamp('2023-11-14 23:13:20.123+01:00')", TS_VALUE);
    expect_ts("timestamp('1970-01-01')", 0);
    expect_ts("timestamp('1700000000123')", TS_VALUE);
    expect_null("timestamp('2023-02-29')");
    expect_null("timestamp('2023-11-14T25:00')");
    expect_str("string(ts)", "2023-11-14T22:13:20.123Z");
    expect_str("string(timestamp(-1))", "1969-12-31T23:59:59.999Z");
    expect_int("cast(ts as int)", TS_VALUE);
    expect_int("len(data)", 3);
    expect_bool("cast(data as string) = 'r\\0w'", true); /* bytes keep their NUL */
    expect_bool("data = 'r\\0w'", true);
}

static void cast_errors_are_reported_at_compile_time(void **state) {
    (void)state;
    expect_err("cast(auction as foo)", 16,
               "expected a type in cast (int, long, double, float, string, boolean, timestamp "
               "or bytes), got 'foo'");
    expect_err("cast(auction, int)", 12, "expected 'as' in cast(value as type), got ','");
    expect_err("cast(flag as timestamp)", 0, "cannot cast boolean to timestamp");
}

/* ------------------------------------------------------------ numbers */

static void number_functions_round_half_away_from_zero(void **state) {
    (void)state;
    expect_dbl("round(2.5)", 3.0);
    expect_dbl("round(-2.5)", -3.0);
    expect_dbl("round(3.14159, 2)", 3.14);
    expect_dbl("round(1234.5, -2)", 1200.0);
    expect_int("round(1250, -2)", 1300);
    expect_int("round(-1250, -2)", -1300);
    expect_int("round(1249, -2)", 1200);
    expect_int("round(auction)", 246);
    expect_dbl("floor(-2.5)", -3.0);
    expect_dbl("ceil(2.1)", 3.0);
    expect_int("floor(auction)", 246);
    expect_int("abs(-3)", 3);
    expect_dbl("abs(-2.5)", 2.5);
    expect_dbl("greatest(1, 2.5, 0)", 2.5);
    expect_int("least(3, auction, 7)", 3);
    expect_str("least('b', 'a', 'c')", "a");
    expect_ts("greatest(ts, 0)", TS_VALUE);
    expect_err("round(price, 1.5)", 13,
               "function 'round' needs an int (digits) as argument 2, got double");
    expect_err("abs(channel)", 4, "function 'abs' needs a number, got string");
}

/* ---------------------------------------------------- compile results */

static void constant_subexpressions_are_folded(void **state) {
    (void)state;
    eddy_expr_t *e = compile("1 + 2 * 3");
    assert_true(eddy__expr_is_const(e));
    eddy__expr_destroy(e);

    /* a folded string constant needs no arena at evaluation */
    e = compile("upper('abc') || '-' || string(1.5)");
    assert_true(eddy__expr_is_const(e));
    assert_false(eddy__expr_needs_arena(e));
    eddy_value_t v;
    eddy__expr_eval(e, NULL, NULL, &v);
    assert_int_equal(v.type, EDDY_TYPE_STRING);
    assert_int_equal(v.len, 7);
    assert_memory_equal(v.u.s, "ABC-1.5", 7);
    eddy__expr_destroy(e);

    e = compile("auction + 1 * 2");
    assert_false(eddy__expr_is_const(e));
    eddy__expr_destroy(e);
}

static void field_ref_detects_a_plain_field_reference(void **state) {
    (void)state;
    static const struct {
        const char *src;
        int ref;
    } cases[] = {
        {"price", F_PRICE},
        {"(price)", F_PRICE},
        {"`a.b`", F_AB},
        {"a.b", F_AB},
        {"`weird name`", F_WEIRD},
        {"string(channel)", F_CHANNEL},
        {"price + 0", -1},
        {"1", -1},
        {"-price", -1},
        {"lower(channel)", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        eddy_expr_t *e = compile(cases[i].src);
        int ref = eddy__expr_field_ref(e);
        eddy__expr_destroy(e);
        if (ref != cases[i].ref)
            fail_msg("'%s': field_ref %d, expected %d", cases[i].src, ref, cases[i].ref);
    }
}

static void fields_lists_distinct_fields_ascending(void **state) {
    (void)state;
    eddy_expr_t *e = compile("price * auction + auction > 1 and contains(channel, 'x')");
    int out[8];
    assert_int_equal(eddy__expr_fields(e, out, 8), 3);
    assert_int_equal(out[0], F_AUCTION);
    assert_int_equal(out[1], F_PRICE);
    assert_int_equal(out[2], F_CHANNEL);
    int one[1] = {-1};
    assert_int_equal(eddy__expr_fields(e, one, 1), 3); /* as snprintf */
    assert_int_equal(one[0], F_AUCTION);
    assert_string_equal(eddy__expr_source(e),
                        "price * auction + auction > 1 and contains(channel, 'x')");
    eddy__expr_destroy(e);

    e = compile("1 + 1");
    assert_int_equal(eddy__expr_fields(e, out, 8), 0);
    eddy__expr_destroy(e);
}

static void result_type_is_reported_for_filters(void **state) {
    (void)state;
    expect_type("auction > 1", EDDY_TYPE_BOOL);
    expect_type("price * 2", EDDY_TYPE_DOUBLE);
    expect_type("upper(channel)", EDDY_TYPE_STRING);
    expect_type("ts + 1", EDDY_TYPE_TIMESTAMP);
    expect_type("data", EDDY_TYPE_BYTES);
    expect_type("null", EDDY_TYPE_NULL);
    expect_type("n is null and null", EDDY_TYPE_BOOL);
}

static void eval_bool_is_true_only_for_non_null_true(void **state) {
    (void)state;
    static const struct {
        const char *src;
        bool want;
    } cases[] = {{"auction > 1", true}, {"auction < 1", false}, {"n > 1", false},
                 {"null", false},       {"auction", false},     {"flag", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        eddy_expr_t *e = compile(cases[i].src);
        bool got = eddy__expr_eval_bool(e, g_row, NULL);
        eddy__expr_destroy(e);
        if (got != cases[i].want)
            fail_msg("'%s': eval_bool %d", cases[i].src, got);
    }
}

/* -------------------------------------------------------------- names */

static void dotted_and_backquoted_names_resolve_to_fields(void **state) {
    (void)state;
    expect_int("a.b * 2", 14);
    expect_int("`a.b` + 1", 8);
    expect_int("`weird name` + 1", 2);
    expect_int("`end` + 1", 4);
    expect_err("a.c", 0, "unknown field 'a.c' (did you mean 'a.b'?)");
    expect_err("``", 0, "empty backquoted name");
}

static void keywords_and_function_names_are_case_insensitive(void **state) {
    (void)state;
    expect_bool("NOT flag OR auction IS NOT NULL", true);
    expect_str("LOWER(channel)", "web");
    expect_int("Case When flag Then 1 Else 0 End", 1);
    expect_bool("TRUE and False", false);
    expect_null("NULL");
    expect_int("CAST('5' AS INT)", 5);
    expect_bool("auction BETWEEN 1 AND 300 AND auction IN (246)", true);
}

static void field_names_are_case_sensitive(void **state) {
    (void)state;
    expect_err("Auction > 1", 0, "unknown field 'Auction' (did you mean 'auction'?)");
}

static void a_field_named_like_a_keyword_needs_backquotes(void **state) {
    (void)state;
    expect_err("end + 1", 0,
               "expected an operand, got 'end' (a field with a keyword's name is written `end`)");
    expect_err("auction + then", 10, "expected an operand, got 'then'");
}

/* ------------------------------------------------------------- errors */

static void unknown_field_suggests_closest_name_at_exact_column(void **state) {
    (void)state;
    expect_err("auction > 1 and prize < 5", 16, "unknown field 'prize' (did you mean 'price'?)");
    expect_err("lower(chanel)", 6, "unknown field 'chanel' (did you mean 'channel'?)");
}

static void unknown_field_without_close_match_lists_the_fields(void **state) {
    (void)state;
    expect_err("1 + zzzzzz", 4,
               "unknown field 'zzzzzz' (the input has: auction, price, channel, flag, ts, a.b, "
               "n, sn, weird name, data, end)");
    char err[256] = "";
    int col = -1;
    assert_null(eddy__expr_compile("x + 1", NULL, err, sizeof(err), &col));
    assert_string_equal(err, "unknown field 'x' (the input has no fields)");
    assert_int_equal(col, 0);
}

static void unknown_function_suggests_closest_name(void **state) {
    (void)state;
    expect_err("1 + lenght(channel)", 4, "unknown function 'lenght' (did you mean 'length'?)");
    expect_err("frobnicate(1)", 0, "unknown function 'frobnicate'");
    expect_err("price(1)", 0, "unknown function 'price'");
}

static void wrong_argument_count_is_reported_at_the_function_name(void **state) {
    (void)state;
    expect_err("  lower()", 2, "function 'lower' takes 1 argument, got 0");
    expect_err("substr('a')", 0, "function 'substr' takes 2 or 3 arguments, got 1");
    expect_err("flag and if(flag, 1)", 9, "function 'if' takes 3 arguments, got 2");
    expect_err("coalesce()", 0, "function 'coalesce' takes at least 1 argument, got 0");
    expect_err("lower(channel, 1", 16,
               "expected ',' or ')' in the arguments of lower(), got the end of the expression");
}

static void parse_error_reports_column_of_unexpected_token(void **state) {
    (void)state;
    expect_err("auction > > 1", 10, "expected an operand, got '>'");
    expect_err("auction 1", 8, "expected an operator or the end of the expression, got '1'");
    expect_err("(auction + 1", 12, "expected ')' to close '(', got the end of the expression");
    expect_err("auction + 1)", 11, "expected an operator or the end of the expression, got ')'");
    expect_err("auction + ", 10, "expected an operand, got the end of the expression");
    expect_err("auction # 1", 8, "unexpected character '#'");
    expect_err("auction | 1", 8, "unexpected character '|' (did you mean '||'?)");
    expect_err("auction > 1 & flag", 12, "unexpected character '&' (did you mean '&&' or 'and'?)");
    expect_err("auction = \x01", 10, "unexpected byte 0x01");
    expect_err("n is not 1", 9, "expected 'null' after 'is not', got '1'");
    expect_err("n not like 1", 6, "expected 'in' or 'between' after 'not', got 'like'");
}

static void empty_expression_is_an_error(void **state) {
    (void)state;
    expect_err("", 0, "empty expression");
    expect_err("   ", 3, "empty expression");
    char err[64] = "";
    int col = -1;
    assert_null(eddy__expr_compile(NULL, g_schema, err, sizeof(err), &col));
    assert_string_equal(err, "no expression");
}

/* ------------------------------------------------------------- limits */

static char *repeat(const char *prefix, const char *unit, int n, const char *suffix) {
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "%s", prefix);
    for (int i = 0; i < n; i++)
        eddy_buf_printf(&b, "%s", unit);
    eddy_buf_printf(&b, "%s", suffix);
    return b.p;
}

static void nesting_within_the_depth_limit_is_accepted(void **state) {
    (void)state;
    char *open = repeat("", "(", 250, "auction");
    char *src = repeat(open, ")", 250, "");
    expect_int(src, 246);
    eddy_free(open);
    eddy_free(src);
    /* and/or chains are n-ary, so a long one is not deep */
    src = repeat("flag", " and flag", 1000, "");
    expect_bool(src, true);
    eddy_free(src);
    src = repeat("1", " + 1", 1000, ""); /* folded as it is read */
    expect_int(src, 1001);
    eddy_free(src);
}

static void deep_nesting_is_rejected_cleanly(void **state) {
    (void)state;
    char *open = repeat("", "(", 100000, "1");
    char *src = repeat(open, ")", 100000, "");
    /* longer than EDDY_EXPR_MAX_LEN as well: cut to the limit */
    src[EDDY_EXPR_MAX_LEN] = 0;
    expect_err(src, 256, "expression nested too deeply (more than 256 levels)");
    eddy_free(open);
    eddy_free(src);

    src = repeat("", "not ", 300, "flag");
    expect_err(src, 1024, "expression nested too deeply (more than 256 levels)");
    eddy_free(src);
    src = repeat("", "-", 300, "1");
    expect_err(src, 256, "expression nested too deeply (more than 256 levels)");
    eddy_free(src);
    src = repeat("", "lower(", 300, "channel");
    expect_err(src, 1536, "expression nested too deeply (more than 256 levels)");
    eddy_free(src);
    /* a left-deep operator chain is as deep as it is long */
    src = repeat("auction", " + auction", 300, "");
    expect_err(src, 2558, "expression nested too deeply (more than 256 levels)");
    eddy_free(src);
}

static void overly_long_input_is_rejected(void **state) {
    (void)state;
    char *src = repeat("", " ", EDDY_EXPR_MAX_LEN, "1");
    expect_err(src, EDDY_EXPR_MAX_LEN, "expression too long (more than 65536 bytes)");
    /* exactly at the limit is fine */
    src[EDDY_EXPR_MAX_LEN - 1] = '1';
    src[EDDY_EXPR_MAX_LEN] = 0;
    expect_int(src, 1);
    eddy_free(src);
}

/* Every input either compiles and evaluates, or fails with a message and
 * a column inside the source; under ASan/UBSan nothing else may happen. */
static void check_clean(const char *src) {
    char err[512] = "";
    int col = -1;
    eddy_expr_t *e = eddy__expr_compile(src, g_schema, err, sizeof(err), &col);
    if (!e) {
        if (!err[0] || col < 0 || (size_t)col > strlen(src))
            fail_msg("'%s': bad error report: col %d, '%s'", src, col, err);
        return;
    }
    eddy_arena_t a;
    eddy_arena_init(&a, 0);
    eddy_value_t v;
    eddy__expr_eval(e, g_row, &a, &v);
    if (v.type != EDDY_TYPE_NULL && v.type != eddy__expr_type(e))
        fail_msg("'%s': value type %d, static type %d", src, v.type, eddy__expr_type(e));
    (void)eddy__expr_eval_bool(e, g_row, &a);
    eddy_arena_free(&a);
    eddy__expr_destroy(e);
}

static void hostile_inputs_fail_cleanly(void **state) {
    (void)state;
    static const char *const inputs[] = {
        "(",
        ")",
        "'",
        "\"",
        "`",
        "\\",
        "\xff\xfe",
        ".",
        "a.",
        "1.",
        "1e",
        "1e+",
        "..1",
        "cast(",
        "cast(1 as",
        "cast(1 as int",
        "case",
        "case when",
        "case when true then",
        "in",
        "auction in",
        "auction in (",
        "auction in (1,",
        "auction between",
        "auction between 1",
        "auction between 1 and",
        "if(",
        "if(true,",
        "lower(",
        ",",
        "is null",
        "auction is",
        "auction is not",
        "not",
        "!",
        "- ",
        "||",
        "&&",
        "'\\",
        "'\\u",
        "'\\ud800\\u0041'",
        "'\\x'",
        "`a",
        "auction =",
        "substr(channel, 2, 3, 4)",
        "concat(",
        "1 + (2",
        "((((",
        "))))",
        "null null",
        "true false",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999",
        "1e308 * 10",
        "string(1e308 * 10)",
        "string(double('nan'))",
        "timestamp('99999-01-01')",
        "string(timestamp(9223372036854775807))",
        "string(timestamp(-9223372036854775807 - 1))",
        "round(1e308, 300)",
        "round(1.5, -400)",
        "round(9223372036854775807, -1)",
        "round(-9223372036854775807, -18)",
        "substr(channel, -9223372036854775807 - 1, 9223372036854775807)",
        "substr(channel, 9223372036854775807)",
        "double('1' || substr(concat(1e300), 1, 0))",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        check_clean(inputs[i]);
}

static void random_token_soup_never_crashes(void **state) {
    (void)state;
    static const char *const frags[] = {
        "auction",   "price",      "channel", "flag",    "n",
        "sn",        "data",       "ts",      "1",       "0",
        "2.5",       "'s'",        "\"",      "'",       "(",
        ")",         ",",          "+",       "-",       "*",
        "/",         "%",          "=",       "<>",      "<",
        ">=",        "||",         "&&",      "!",       "and",
        "or",        "not",        "is",      "null",    "in",
        "between",   "case",       "when",    "then",    "else",
        "end",       "cast",       "as",      "int",     "string",
        "lower(",    "concat(",    "if(",     "substr(", "coalesce(",
        "round(",    "greatest(",  "`",       "`a.b`",   "9223372036854775808",
        "1e",        ".",          "true",    "\\",      "\xff",
        "'\\u00e9'", "timestamp(", "double(", "0.0"};
    const size_t nf = sizeof(frags) / sizeof(frags[0]);
    uint64_t seed = 0x9E3779B97F4A7C15u;
    char src[1024];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = 0;
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        int n = 1 + (int)((seed >> 33) % 24);
        for (int k = 0; k < n; k++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            const char *f = frags[(seed >> 33) % nf];
            size_t fl = strlen(f);
            if (len + fl + 2 >= sizeof(src))
                break;
            memcpy(src + len, f, fl);
            len += fl;
            if ((seed >> 20) & 1)
                src[len++] = ' ';
        }
        src[len] = 0;
        check_clean(src);
    }
}

static void field_values_with_a_mismatched_tag_are_coerced_or_null(void **state) {
    (void)state;
    eddy_value_t row[NF];
    memcpy(row, g_row, sizeof(row));
    row[F_PRICE] = (eddy_value_t){.u.i = 5, .type = EDDY_TYPE_INT};   /* loose decoder */
    row[F_CHANNEL] = (eddy_value_t){.u.i = 5, .type = EDDY_TYPE_INT}; /* not a string */
    row[F_TS] = (eddy_value_t){.u.i = 42, .type = EDDY_TYPE_INT};
    result_t r = eval_row("price * 2", row);
    assert_int_equal(r.v.type, EDDY_TYPE_DOUBLE);
    assert_true(r.v.u.d == 10.0);
    r = eval_row("upper(channel)", row);
    assert_int_equal(r.v.type, EDDY_TYPE_NULL);
    r = eval_row("channel", row);
    assert_int_equal(r.v.type, EDDY_TYPE_NULL);
    r = eval_row("ts + 1", row);
    assert_int_equal(r.v.type, EDDY_TYPE_TIMESTAMP);
    assert_int_equal(r.v.u.i, 43);
}

/* --------------------------------------------------------- allocation */

static size_t g_allocs;
static void *counting_malloc(size_t n) {
    g_allocs++;
    return malloc(n);
}
static void *counting_realloc(void *p, size_t n) {
    g_allocs++;
    return realloc(p, n);
}

/* Evaluate src 10,000 times under the counting allocator; returns how
 * many allocations that made and how many results were true. */
static size_t allocations_for(const char *src, int *trues) {
    eddy_expr_t *e = compile(src);
    eddy_arena_t a;
    eddy_arena_init(&a, 0); /* no chunk yet: any arena use would allocate */
    *trues = 0;
    g_allocs = 0;
    eddy_set_allocator(counting_malloc, counting_realloc, NULL);
    for (int i = 0; i < 10000; i++) {
        eddy_value_t v;
        eddy__expr_eval(e, g_row, &a, &v);
        *trues += v.type == EDDY_TYPE_BOOL && v.u.i;
        *trues += eddy__expr_eval_bool(e, g_row, &a);
    }
    eddy_set_allocator(NULL, NULL, NULL);
    size_t n = g_allocs;
    eddy_arena_free(&a);
    eddy__expr_destroy(e);
    return n;
}

static void eval_of_non_string_expression_allocates_nothing(void **state) {
    (void)state;
    static const char *const srcs[] = {
        "auction % 123 = 0",
        "price * 0.908 > 90",
        "auction in (1, 2, 246) and price between 10 and 100 and not flag is null",
        "coalesce(n, auction) + len(channel) > 3 and contains(channel, 'e')",
        "case when substr(trim(channel), 2) = 'eb' then round(price, 1) > 1 else false end",
        "ts - 1000 > timestamp('2023-01-01') and cast('12' as int) < auction",
    };
    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
        int trues;
        size_t n = allocations_for(srcs[i], &trues);
        if (n != 0)
            fail_msg("'%s': %zu allocations in 10,000 evaluations", srcs[i], n);
        if (trues != 20000)
            fail_msg("'%s': true %d times of 20,000", srcs[i], trues);
    }
    /* The counter does see allocations: a string expression fills the
     * arena, whose first chunk comes from the allocator. */
    int trues;
    assert_true(allocations_for("upper(channel) = 'WEB'", &trues) > 0);
    assert_int_equal(trues, 20000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arithmetic_follows_precedence_and_left_associativity),
        cmocka_unit_test(arithmetic_promotes_int_to_double),
        cmocka_unit_test(integer_division_truncates_toward_zero),
        cmocka_unit_test(division_or_modulo_by_zero_gives_null),
        cmocka_unit_test(int_overflow_gives_null_and_never_wraps),
        cmocka_unit_test(integer_literal_beyond_int64_is_a_compile_error),
        cmocka_unit_test(null_propagates_through_operators_and_functions),
        cmocka_unit_test(timestamps_take_int_milliseconds),
        cmocka_unit_test(plus_on_strings_is_a_type_error_with_column),
        cmocka_unit_test(comparisons_compare_int_and_double_numerically),
        cmocka_unit_test(comparisons_order_strings_bytewise),
        cmocka_unit_test(comparisons_order_booleans_false_before_true),
        cmocka_unit_test(comparing_incompatible_types_is_a_compile_error),
        cmocka_unit_test(and_follows_three_valued_logic),
        cmocka_unit_test(or_follows_three_valued_logic),
        cmocka_unit_test(not_follows_three_valued_logic),
        cmocka_unit_test(and_binds_tighter_than_or_and_not_looser_than_comparison),
        cmocka_unit_test(logic_operators_need_booleans),
        cmocka_unit_test(is_null_and_is_not_null_never_return_null),
        cmocka_unit_test(in_list_matches_and_treats_null_as_sql_does),
        cmocka_unit_test(in_list_of_another_type_is_a_compile_error),
        cmocka_unit_test(in_list_of_ten_thousand_values_works),
        cmocka_unit_test(between_is_inclusive_and_three_valued),
        cmocka_unit_test(case_returns_first_true_branch_and_null_counts_as_false),
        cmocka_unit_test(if_treats_null_condition_as_false),
        cmocka_unit_test(coalesce_returns_first_non_null),
        cmocka_unit_test(string_functions_return_expected_text),
        cmocka_unit_test(substr_is_one_based_and_clamps),
        cmocka_unit_test(concat_converts_non_strings_and_propagates_null),
        cmocka_unit_test(bars_is_concat_when_a_side_is_a_string_else_logical_or),
        cmocka_unit_test(string_results_come_from_the_arena_or_point_into_the_row),
        cmocka_unit_test(string_literals_decode_escapes_and_doubled_quotes),
        cmocka_unit_test(unterminated_string_reports_column_of_opening_quote),
        cmocka_unit_test(casts_convert_and_a_failed_parse_gives_null),
        cmocka_unit_test(cast_errors_are_reported_at_compile_time),
        cmocka_unit_test(number_functions_round_half_away_from_zero),
        cmocka_unit_test(constant_subexpressions_are_folded),
        cmocka_unit_test(field_ref_detects_a_plain_field_reference),
        cmocka_unit_test(fields_lists_distinct_fields_ascending),
        cmocka_unit_test(result_type_is_reported_for_filters),
        cmocka_unit_test(eval_bool_is_true_only_for_non_null_true),
        cmocka_unit_test(dotted_and_backquoted_names_resolve_to_fields),
        cmocka_unit_test(keywords_and_function_names_are_case_insensitive),
        cmocka_unit_test(field_names_are_case_sensitive),
        cmocka_unit_test(a_field_named_like_a_keyword_needs_backquotes),
        cmocka_unit_test(unknown_field_suggests_closest_name_at_exact_column),
        cmocka_unit_test(unknown_field_without_close_match_lists_the_fields),
        cmocka_unit_test(unknown_function_suggests_closest_name),
        cmocka_unit_test(wrong_argument_count_is_reported_at_the_function_name),
        cmocka_unit_test(parse_error_reports_column_of_unexpected_token),
        cmocka_unit_test(empty_expression_is_an_error),
        cmocka_unit_test(nesting_within_the_depth_limit_is_accepted),
        cmocka_unit_test(deep_nesting_is_rejected_cleanly),
        cmocka_unit_test(overly_long_input_is_rejected),
        cmocka_unit_test(hostile_inputs_fail_cleanly),
        cmocka_unit_test(random_token_soup_never_crashes),
        cmocka_unit_test(field_values_with_a_mismatched_tag_are_coerced_or_null),
        cmocka_unit_test(eval_of_non_string_expression_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
