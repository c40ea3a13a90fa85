/*
 * The expression language of filter, map, extend and key_by steps.
 *
 * How it is built. eddy__expr_compile() runs a hand-written
 * recursive-descent parser over the source once. Each syntactic construct
 * becomes a typed node in one flat array (children always have smaller
 * indexes than their parent); names are resolved to field indexes, types
 * are checked and operand domains chosen (integer, double or bytewise
 * comparison, integer or double arithmetic) as the node is made, and a
 * node whose children are all constants is evaluated on the spot and
 * replaced by a constant (constant folding). The array is then compacted
 * to the nodes the root reaches, so evaluation walks a small, dense array.
 *
 * Evaluation is a recursive switch over that array. Reading a field or a
 * constant is done inline by the parent (no call), so `price * 0.908` is
 * one call and `auction % 123 = 0` two. The invariant that keeps the
 * switch small: at run time a node's value is either NULL or exactly its
 * static type (branches of if/case/coalesce/greatest/least are wrapped in
 * casts at compile time to the common type). Evaluation never allocates
 * except for string results (lower, upper, concat, casts to string), which
 * come from the caller's arena; nothing is looked up or parsed per record.
 * Recursion depth is bounded by EDDY_EXPR_MAX_DEPTH, checked at compile.
 *
 * The parser's stack per nesting level is kept small on purpose (it is
 * what a hostile, deeply nested input costs): runs of prefix operators
 * are read by loops, + - and * / % share one precedence-climbing
 * function, and everything that is not on the recursive path (leaves,
 * node construction, error messages) is kept out of line.
 *
 * The language (docs/expressions.md has the full reference):
 *
 *   literals     42  0.908  1e6  'single'  "double"  true  false  null
 *                strings take \n \t \r \0 \\ \' \" \` \xHH \uXXXX escapes;
 *                '' inside '...' (and "" inside "...") is one quote
 *   fields       price  a.b (one field literally named "a.b")  `any name`
 *   arithmetic   + - * / % and unary -: int op int is int (/ truncates),
 *                any double makes it double; timestamp +/- int is a
 *                timestamp, timestamp - timestamp is int (ms).
 *                Division or modulo by zero and int overflow give NULL
 *                (never a wrap). `+` on strings is a type error.
 *   comparison   = == != <> < <= > >= between numbers (int vs double
 *                numerically), strings and bytes (bytewise), booleans
 *                (false < true), timestamps (also vs int). No chaining.
 *   logic        and or not, with && || ! as aliases; SQL three-valued.
 *                `||` is concat when either operand is a string at
 *                compile time (binding like SQL concat, tighter than
 *                comparisons), otherwise logical or (binding like `or`).
 *   predicates   x is [not] null, x [not] in (a, ...), x [not] between a and b
 *   conditionals if(c, a, b), case when c then a [when ...] [else b] end,
 *                coalesce(a, ...); a NULL condition counts as false.
 *   strings      lower upper trim len/length substr/substring(s, start[, n])
 *                contains starts_with ends_with concat(a, ...) (bytes,
 *                1-based; lower/upper change ASCII letters only)
 *   casts        cast(x as int|long|double|float|string|boolean|bool|
 *                timestamp|bytes), int(x) long(x) double(x) float(x)
 *                string(x) boolean(x) bool(x) timestamp(x); an
 *                unparsable string gives NULL.
 *   numbers      abs floor ceil round(x[, digits]) greatest least
 *   NULL         propagates through operators and functions except
 *                is null, coalesce, and/or (3VL) and conditions.
 *   precedence   or < and < not < comparison/is/in/between < || (concat)
 *                < + - < * / % < unary - < primary. Keywords and function
 *                names are case-insensitive, field names are not.
 */
#include "expr.h"

#include "cfg.h" /* eddy__cfg_suggest: one did-you-mean for the whole tree */

#include <locale.h>
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ the form */

typedef enum {
    OP_CONST,
    OP_FIELD,
    /* arithmetic: _I in int64 (also timestamps), _D in double */
    OP_NEG_I,
    OP_NEG_D,
    OP_ADD_I,
    OP_SUB_I,
    OP_MUL_I,
    OP_DIV_I,
    OP_MOD_I,
    OP_ADD_D,
    OP_SUB_D,
    OP_MUL_D,
    OP_DIV_D,
    OP_MOD_D,
    OP_CMP, /* aux: mask of true outcomes (CMP_*), dom: domain */
    OP_AND, /* n-ary */
    OP_OR,  /* n-ary */
    OP_NOT,
    OP_IS_NULL, /* neg: is not null */
    OP_IN,      /* x, item...; neg: not in */
    OP_BETWEEN, /* x, lo, hi; neg: not between */
    OP_IF,      /* cond, then, else */
    OP_CASE,    /* cond, value, ... [, else] */
    OP_COALESCE,
    OP_GREATEST,
    OP_LEAST,
    OP_LOWER,
    OP_UPPER,
    OP_TRIM,
    OP_LEN,
    OP_SUBSTR, /* s, start [, count] */
    OP_CONTAINS,
    OP_STARTS,
    OP_ENDS,
    OP_CONCAT, /* n-ary, any types */
    OP_CAST,   /* to the node's type */
    OP_ABS,
    OP_FLOOR,
    OP_CEIL,
    OP_ROUND /* x [, digits] */
} op_t;

/* Comparison domains, chosen at compile time from the operand types. */
enum { D_INT = 0, D_DBL = 1, D_STR = 2 };

/* A comparison is true for the outcomes in its mask: bit 0 less, bit 1
 * equal, bit 2 greater, bit 3 unordered (a NaN operand). */
enum { CMP_LT = 1, CMP_EQ = 2, CMP_LE = 3, CMP_GT = 4, CMP_NE = 5 | 8, CMP_GE = 6 };

typedef struct node_s {
    uint8_t op;     /* op_t */
    uint8_t type;   /* static result type (eddy_type_t) */
    uint8_t dom;    /* D_*; OP_CAST: the source type */
    uint8_t aux;    /* OP_CMP: CMP_* mask */
    uint8_t neg;    /* not in / not between / is not null */
    uint16_t depth; /* height of the subtree, bounded by EDDY_EXPR_MAX_DEPTH */
    int32_t field;  /* OP_FIELD: index in the input schema */
    int32_t kid;    /* first child in kids[] */
    int32_t nkid;
    int32_t col;    /* source column of the operator (for messages) */
    int32_t start;  /* source column where the sub-expression starts */
    eddy_value_t k; /* OP_CONST: the value */
} node_t;

struct eddy_expr_s {
    node_t *nodes;
    int32_t *kids;
    int nnodes, nkids;
    int root;
    eddy_type_t type;
    bool needs_arena;
    int *fields; /* distinct field indexes read, ascending */
    int nfields;
    char *src;
    eddy_arena_t consts; /* string literals and folded string constants */
};

/* ------------------------------------------------------- value helpers */

static inline void set_null(eddy_value_t *v) {
    v->u.i = 0;
    v->len = 0;
    v->type = EDDY_TYPE_NULL;
}

static inline void set_int(eddy_value_t *v, uint8_t type, int64_t i) {
    v->u.i = i;
    v->len = 0;
    v->type = type;
}

static inline void set_bool(eddy_value_t *v, bool b) {
    set_int(v, EDDY_TYPE_BOOL, b);
}

static inline void set_dbl(eddy_value_t *v, double d) {
    v->u.d = d;
    v->len = 0;
    v->type = EDDY_TYPE_DOUBLE;
}

/* A string or bytes value; an empty one points at a static "" so that no
 * NULL pointer ever reaches memcpy/memcmp. */
static inline void set_str(eddy_value_t *v, uint8_t type, const char *s, size_t len) {
    v->u.s = len ? s : "";
    v->len = (uint32_t)len;
    v->type = type;
}

static inline double num(const eddy_value_t *v) {
    return v->type == EDDY_TYPE_DOUBLE ? v->u.d : (double)v->u.i;
}

static inline bool is_num(int t) {
    return t == EDDY_TYPE_INT || t == EDDY_TYPE_DOUBLE;
}
static inline bool is_strlike(int t) {
    return t == EDDY_TYPE_STRING || t == EDDY_TYPE_BYTES;
}

static inline bool is_space(int c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static inline bool is_digit(int c) {
    return c >= '0' && c <= '9';
}
static inline bool is_alpha(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static inline int to_lower(int c) {
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool ascii_ieq(const char *a, size_t alen, const char *b) {
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
            return false;
    return true;
}

/* Strip ASCII whitespace from both ends (casts accept " 42 "). */
static void trim_span(const char **s, size_t *n) {
    while (*n && is_space((unsigned char)**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((unsigned char)(*s)[*n - 1]))
        (*n)--;
}

static int str_cmp(const eddy_value_t *x, const eddy_value_t *y) {
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->u.s, y->u.s, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return (x->len > y->len) - (x->len < y->len);
}

/* -1, 0, 1, or 2 when unordered (NaN). */
static inline int cmp3(int dom, const eddy_value_t *x, const eddy_value_t *y) {
    if (dom == D_INT)
        return (x->u.i > y->u.i) - (x->u.i < y->u.i);
    if (dom == D_DBL) {
        double a = num(x), b = num(y);
        if (a < b)
            return -1;
        if (a > b)
            return 1;
        return a == b ? 0 : 2;
    }
    return str_cmp(x, y);
}

/* String results need the caller's arena; without one (a caller that
 * trusted eddy__expr_needs_arena() wrongly) the result is NULL, not a
 * crash. */
static inline char *salloc(eddy_arena_t *a, size_t n) {
    return a ? eddy_arena_alloc(a, n ? n : 1) : NULL;
}

/* ------------------------------------------------ numbers <-> text */

/* Decimal text of v into buf (>= 21 bytes); returns the length. Not
 * snprintf: this is on the path of every int-to-string cast. */
static size_t fmt_int(int64_t v, char *buf) {
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t len = 0;
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    return len;
}

/* The shortest of %.15g, %.16g, %.17g that reads back to d (0.1 stays
 * "0.1", 1/3 is "0.3333333333333333"), with '.' as decimal point whatever
 * the host's locale, and ".0" on integral values so the text still looks
 * like a double. buf >= 40 bytes. */
static size_t fmt_double(double d, char *buf) {
    if (isnan(d))
        return (size_t)snprintf(buf, 40, "NaN");
    if (isinf(d))
        return (size_t)snprintf(buf, 40, d > 0 ? "Infinity" : "-Infinity");
    char tmp[48];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) /* same locale both ways, so the check holds */
            break;
    }
    size_t n = 0;
    bool point = false, in_dp = false;
    for (const char *s = tmp; *s && n < 39; s++) {
        char c = *s;
        if (is_digit(c) || c == '-' || c == '+' || c == 'e') {
            buf[n++] = c;
            point |= c == 'e';
            in_dp = false;
        } else if (!in_dp) { /* a locale's decimal point, maybe multibyte */
            buf[n++] = '.';
            point = true;
            in_dp = true;
        }
    }
    if (!point && n + 2 < 40) {
        buf[n++] = '.';
        buf[n++] = '0';
    }
    buf[n] = 0;
    return n;
}

/* Strict integer syntax: [ws][+-]digits[ws]; false on anything else or
 * overflow. */
static bool parse_int(const char *s, size_t n, int64_t *out) {
    trim_span(&s, &n);
    bool negv = false;
    if (n && (*s == '+' || *s == '-')) {
        negv = *s == '-';
        s++;
        n--;
    }
    if (!n)
        return false;
    uint64_t u = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (u > (UINT64_MAX - dgt) / 10)
            return false;
        u = u * 10 + dgt;
    }
    if (negv) {
        if (u > (uint64_t)INT64_MAX + 1)
            return false;
        *out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)u;
    }
    return true;
}

static const double pow10_tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define NUM_TEXT_MAX 256 /* longest numeric text accepted (literal or cast) */

/*
 * Decimal text to double: [ws][+-](digits[.digits]|.digits)[(e|E)[+-]digits][ws],
 * or NaN / Infinity / Inf (any case). Checked here rather than by strtod,
 * which also takes hex floats and a locale-dependent decimal point. Up to
 * 15 significant digits and a power of ten up to 22 convert exactly with
 * one multiply or divide (both operands exact doubles); the rest goes
 * through strtod with the locale's decimal point swapped in.
 */
static bool parse_double(const char *s, size_t n, double *out) {
    trim_span(&s, &n);
    if (n == 0 || n >= NUM_TEXT_MAX)
        return false;
    size_t i = 0;
    bool negv = false;
    if (s[i] == '+' || s[i] == '-')
        negv = s[i++] == '-';
    if (ascii_ieq(s + i, n - i, "nan")) {
        *out = NAN;
        return true;
    }
    if (ascii_ieq(s + i, n - i, "inf") || ascii_ieq(s + i, n - i, "infinity")) {
        *out = negv ? -INFINITY : INFINITY;
        return true;
    }
    uint64_t mant = 0;
    int ndig = 0, exp10 = 0, seen = 0;
    for (; i < n && is_digit((unsigned char)s[i]); i++, seen++) {
        if (mant || s[i] != '0') {
            if (ndig < 19)
                mant = mant * 10 + (uint64_t)(s[i] - '0');
            else
                exp10++;
            ndig++;
        }
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit((unsigned char)s[i]); i++, seen++) {
            if (mant || s[i] != '0') {
                if (ndig < 19) {
                    mant = mant * 10 + (uint64_t)(s[i] - '0');
                    exp10--;
                }
                ndig++;
            } else {
                exp10--;
            }
        }
    }
    if (!seen)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= n || !is_digit((unsigned char)s[i]))
            return false;
        int ev = 0;
        for (; i < n && is_digit((unsigned char)s[i]); i++)
            if (ev < 100000)
                ev = ev * 10 + (s[i] - '0');
        exp10 += eneg ? -ev : ev;
    }
    if (i != n)
        return false;
    if (ndig <= 15 && exp10 >= -22 && exp10 <= 22) {
        double d = (double)mant;
        d = exp10 < 0 ? d / pow10_tab[-exp10] : d * pow10_tab[exp10];
        *out = negv ? -d : d;
        return true;
    }
    /* Slow path: hand it to strtod in the locale's terms. */
    const char *dp = localeconv()->decimal_point;
    size_t dpl = dp && *dp ? strlen(dp) : 1;
    char buf[NUM_TEXT_MAX + 8];
    size_t o = 0;
    for (size_t j = 0; j < n && o + dpl < sizeof(buf) - 1; j++) {
        if (s[j] == '.' && dp && *dp) {
            memcpy(buf + o, dp, dpl);
            o += dpl;
        } else {
            buf[o++] = s[j];
        }
    }
    buf[o] = 0;
    char *end;
    *out = strtod(buf, &end);
    return end == buf + o;
}

static bool parse_bool(const char *s, size_t n, bool *out) {
    trim_span(&s, &n);
    static const char *const yes[] = {"true", "t", "yes", "y", "1"};
    static const char *const no[] = {"false", "f", "no", "n", "0"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (ascii_ieq(s, n, yes[i])) {
            *out = true;
            return true;
        }
        if (ascii_ieq(s, n, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Truncate toward zero; false for NaN and values outside int64. */
static bool dbl_to_i64(double d, int64_t *out) {
    double t = trunc(d);
    if (!(t >= -9223372036854775808.0 && t < 9223372036854775808.0))
        return false;
    *out = (int64_t)t;
    return true;
}

/* -------------------------------------------------------- timestamps */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm: exact over the whole int64 range we can reach). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define MS_PER_DAY INT64_C(86400000)

/* ISO-8601 in UTC with milliseconds: 2024-03-01T12:00:00.000Z. buf >= 48. */
static size_t fmt_ts(int64_t ms, char *buf) {
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    int n = snprintf(buf, 48, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, mo, d,
                     (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
                     (int)(rem % 1000));
    return n > 0 && n < 48 ? (size_t)n : 0;
}

/* Read exactly `width` digits at s[*i]. */
static bool digits(const char *s, size_t n, size_t *i, int width, int *out) {
    int v = 0;
    for (int k = 0; k < width; k++, (*i)++) {
        if (*i >= n || !is_digit((unsigned char)s[*i]))
            return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

/*
 * Text to epoch ms: an integer (ms), or YYYY-MM-DD[(T|t| )HH:MM[:SS[.fff]]]
 * followed by nothing (UTC), Z, or an offset +HH[:MM] / -HH[:MM].
 */
static bool parse_ts(const char *s, size_t n, int64_t *out) {
    trim_span(&s, &n);
    if (parse_int(s, n, out))
        return true;
    size_t i = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (!digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &mo) ||
        i >= n || s[i++] != '-' || !digits(s, n, &i, 2, &d))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return false;
    if (i < n && (s[i] == 'T' || s[i] == 't' || s[i] == ' ')) {
        i++;
        if (!digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !digits(s, n, &i, 2, &mi))
            return false;
        if (i < n && s[i] == ':') {
            i++;
            if (!digits(s, n, &i, 2, &sec))
                return false;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                i++;
                int nd = 0;
                for (; i < n && is_digit((unsigned char)s[i]); i++, nd++)
                    if (nd < 3)
                        ms = ms * 10 + (s[i] - '0');
                if (nd == 0)
                    return false;
                for (; nd < 3; nd++)
                    ms *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return false;
    }
    int64_t off_ms = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        bool west = s[i++] == '-';
        int oh, om = 0;
        if (!digits(s, n, &i, 2, &oh))
            return false;
        if (i < n && s[i] == ':')
            i++;
        if (i < n && !digits(s, n, &i, 2, &om))
            return false;
        if (oh > 23 || om > 59)
            return false;
        off_ms = ((int64_t)oh * 60 + om) * 60000;
        if (west)
            off_ms = -off_ms;
    }
    if (i != n)
        return false;
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * MS_PER_DAY + (int64_t)h * 3600000 +
           (int64_t)mi * 60000 + (int64_t)sec * 1000 + ms - off_ms;
    return true;
}

/* ---------------------------------------------------------------- casts */

/*
 * Convert a non-NULL value x to type `to`. Failed conversions (a string
 * that is not a number, a double outside int64) give NULL. Text results
 * are copied into the arena except where they can be shared (bool names,
 * string <-> bytes). Kept out of line so the evaluator's recursive frame
 * stays small.
 */
static __attribute__((noinline)) void cast_value(const eddy_value_t *x, uint8_t to, eddy_arena_t *a,
                                                 eddy_value_t *out) {
    char buf[64];
    size_t n;
    int64_t i;
    double d;
    bool b;
    switch (to) {
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        switch (x->type) {
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            set_int(out, to, x->u.i);
            return;
        case EDDY_TYPE_BOOL:
            set_int(out, to, x->u.i != 0);
            return;
        case EDDY_TYPE_DOUBLE:
            if (dbl_to_i64(x->u.d, &i)) {
                set_int(out, to, i);
                return;
            }
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            if (to == EDDY_TYPE_TIMESTAMP ? parse_ts(x->u.s, x->len, &i)
                                          : parse_int(x->u.s, x->len, &i)) {
                set_int(out, to, i);
                return;
            }
            break;
        }
        break;
    case EDDY_TYPE_DOUBLE:
        switch (x->type) {
        case EDDY_TYPE_DOUBLE:
            *out = *x;
            return;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            set_dbl(out, (double)x->u.i);
            return;
        case EDDY_TYPE_BOOL:
            set_dbl(out, x->u.i != 0);
            return;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            if (parse_double(x->u.s, x->len, &d)) {
                set_dbl(out, d);
                return;
            }
            break;
        }
        break;
    case EDDY_TYPE_BOOL:
        switch (x->type) {
        case EDDY_TYPE_BOOL:
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            set_bool(out, x->u.i != 0);
            return;
        case EDDY_TYPE_DOUBLE:
            if (!isnan(x->u.d)) {
                set_bool(out, x->u.d != 0);
                return;
            }
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            if (parse_bool(x->u.s, x->len, &b)) {
                set_bool(out, b);
                return;
            }
            break;
        }
        break;
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        switch (x->type) {
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            set_str(out, to, x->u.s, x->len);
            return;
        case EDDY_TYPE_BOOL:
            if (x->u.i)
                set_str(out, to, "true", 4);
            else
                set_str(out, to, "false", 5);
            return;
        case EDDY_TYPE_INT:
            n = fmt_int(x->u.i, buf);
            break;
        case EDDY_TYPE_DOUBLE:
            n = fmt_double(x->u.d, buf);
            break;
        case EDDY_TYPE_TIMESTAMP:
            n = fmt_ts(x->u.i, buf);
            break;
        default:
            n = 0;
            break;
        }
        {
            char *p = salloc(a, n);
            if (!p)
                break;
            memcpy(p, buf, n);
            set_str(out, to, p, n);
            return;
        }
    }
    set_null(out);
}

/* A field value whose tag disagrees with the schema (a loose decoder):
 * convert what converts losslessly, NULL the rest, so the evaluator can
 * rely on "NULL or the static type". */
static __attribute__((noinline)) void coerce_field(eddy_value_t *v, uint8_t type) {
    eddy_value_t x = *v;
    if ((type == EDDY_TYPE_DOUBLE && x.type == EDDY_TYPE_INT))
        set_dbl(v, (double)x.u.i);
    else if ((type == EDDY_TYPE_INT || type == EDDY_TYPE_TIMESTAMP) &&
             (x.type == EDDY_TYPE_INT || x.type == EDDY_TYPE_TIMESTAMP))
        set_int(v, type, x.u.i);
    else if (is_strlike(type) && is_strlike(x.type))
        set_str(v, type, x.u.s, x.len);
    else
        set_null(v);
}

/* ------------------------------------------------------------ evaluator */

static void ev(const eddy_expr_t *e, const node_t *n, const eddy_value_t *row, eddy_arena_t *a,
               eddy_value_t *out);

/* Value of node idx. Fields and constants are read inline: they are most
 * of the operands, and a call per leaf would double the cost of
 * `price * 0.908`. */
static inline void get(const eddy_expr_t *e, int32_t idx, const eddy_value_t *row, eddy_arena_t *a,
                       eddy_value_t *out) {
    const node_t *n = &e->nodes[idx];
    if (n->op == OP_FIELD) {
        *out = row[n->field];
        if (eddy_unlikely(out->type != n->type) && out->type != EDDY_TYPE_NULL)
            coerce_field(out, n->type);
    } else if (n->op == OP_CONST) {
        *out = n->k;
    } else {
        ev(e, n, row, a, out);
    }
}

#define KID(i) (e->kids[n->kid + (i)])

/* Two operands, NULL if either is NULL (the right one is then not even
 * evaluated). */
#define GET2(x, y)                                                                                 \
    get(e, KID(0), row, a, &(x));                                                                  \
    if ((x).type == EDDY_TYPE_NULL)                                                                \
        goto null;                                                                                 \
    get(e, KID(1), row, a, &(y));                                                                  \
    if ((y).type == EDDY_TYPE_NULL)                                                                \
    goto null

/* Integer rounding of v to a multiple of 10^-digits (digits < 0), half
 * away from zero; false on overflow. */
static bool round_int(int64_t v, int64_t digits, int64_t *out) {
    if (digits >= 0) {
        *out = v;
        return true;
    }
    if (digits < -18) {
        *out = 0;
        return true;
    }
    int64_t p = 1;
    for (int64_t k = 0; k < -digits; k++)
        p *= 10;
    int64_t q = v / p, r = v % p;
    if (r >= p - r) /* r >= p/2 without overflow */
        q++;
    else if (-r >= p + r)
        q--;
    return !__builtin_mul_overflow(q, p, out);
}

static double round_dbl(double v, int64_t digits) {
    if (!isfinite(v))
        return v;
    if (digits == 0)
        return round(v);
    if (digits > 0) {
        if (digits > 22)
            return v;
        double p = pow10_tab[digits], s = v * p;
        return isfinite(s) ? round(s) / p : v;
    }
    if (digits < -22)
        return 0.0 * v;
    double p = pow10_tab[-digits];
    return round(v / p) * p;
}

static bool mem_find(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0)
        return true;
    if (nn > hn)
        return false;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn))
            return true;
    return false;
}

/* concat: every argument as text, NULL if any is NULL. */
static __attribute__((noinline)) void ev_concat(const eddy_expr_t *e, const node_t *n,
                                                const eddy_value_t *row, eddy_arena_t *a,
                                                eddy_value_t *out) {
    eddy_value_t small[8], *parts = small;
    if (n->nkid > 8) {
        parts = (eddy_value_t *)salloc(a, sizeof(eddy_value_t) * (size_t)n->nkid);
        if (!parts)
            goto null;
    }
    size_t total = 0;
    for (int32_t i = 0; i < n->nkid; i++) {
        eddy_value_t v;
        get(e, KID(i), row, a, &v);
        if (v.type == EDDY_TYPE_NULL)
            goto null;
        if (!is_strlike(v.type)) {
            eddy_value_t t;
            cast_value(&v, EDDY_TYPE_STRING, a, &t);
            if (t.type == EDDY_TYPE_NULL)
                goto null;
            v = t;
        }
        parts[i] = v;
        total += v.len;
    }
    if (total > UINT32_MAX)
        goto null;
    char *p = salloc(a, total);
    if (!p)
        goto null;
    size_t off = 0;
    for (int32_t i = 0; i < n->nkid; i++) {
        if (parts[i].len)
            memcpy(p + off, parts[i].u.s, parts[i].len);
        off += parts[i].len;
    }
    set_str(out, EDDY_TYPE_STRING, p, total);
    return;
null:
    set_null(out);
}

/* The string functions, out of line for the same reason as casts. */
static __attribute__((noinline)) void ev_string(const eddy_expr_t *e, const node_t *n,
                                                const eddy_value_t *row, eddy_arena_t *a,
                                                eddy_value_t *out) {
    eddy_value_t x, y, z;
    get(e, KID(0), row, a, &x);
    if (x.type == EDDY_TYPE_NULL)
        goto null;
    switch (n->op) {
    case OP_LOWER:
    case OP_UPPER: {
        char *p = salloc(a, x.len);
        if (!p)
            goto null;
        int delta = n->op == OP_LOWER ? 32 : -32;
        char lo = n->op == OP_LOWER ? 'A' : 'a', hi = n->op == OP_LOWER ? 'Z' : 'z';
        for (uint32_t i = 0; i < x.len; i++) {
            char c = x.u.s[i];
            p[i] = c >= lo && c <= hi ? (char)(c + delta) : c;
        }
        set_str(out, EDDY_TYPE_STRING, p, x.len);
        return;
    }
    case OP_TRIM: {
        const char *s = x.u.s;
        size_t len = x.len;
        trim_span(&s, &len);
        set_str(out, n->type, s, len);
        return;
    }
    case OP_LEN:
        set_int(out, EDDY_TYPE_INT, x.len);
        return;
    case OP_SUBSTR: {
        /* 1-based start; 0 counts as 1, negative counts from the end. */
        get(e, KID(1), row, a, &y);
        if (y.type == EDDY_TYPE_NULL)
            goto null;
        int64_t len = x.len, b;
        if (y.u.i > 0)
            b = y.u.i - 1;
        else if (y.u.i < 0)
            b = y.u.i < -len ? 0 : len + y.u.i;
        else
            b = 0;
        if (b > len)
            b = len;
        int64_t cnt = len - b;
        if (n->nkid > 2) {
            get(e, KID(2), row, a, &z);
            if (z.type == EDDY_TYPE_NULL)
                goto null;
            if (z.u.i < cnt)
                cnt = z.u.i < 0 ? 0 : z.u.i;
        }
        set_str(out, n->type, cnt ? x.u.s + b : "", (size_t)cnt);
        return;
    }
    case OP_CONTAINS:
    case OP_STARTS:
    case OP_ENDS:
        get(e, KID(1), row, a, &y);
        if (y.type == EDDY_TYPE_NULL)
            goto null;
        if (n->op == OP_CONTAINS)
            set_bool(out, mem_find(x.u.s, x.len, y.u.s, y.len));
        else if (y.len > x.len)
            set_bool(out, false);
        else if (!y.len)
            set_bool(out, true);
        else
            set_bool(out,
                     !memcmp(n->op == OP_STARTS ? x.u.s : x.u.s + x.len - y.len, y.u.s, y.len));
        return;
    }
null:
    set_null(out);
}

/* 3VL and/or over n operands: `stop` is the value that decides (false for
 * and, true for or); otherwise NULL if any operand was NULL. */
static inline void ev_logic(const eddy_expr_t *e, const node_t *n, const eddy_value_t *row,
                            eddy_arena_t *a, eddy_value_t *out, int64_t stop) {
    bool saw_null = false;
    for (int32_t i = 0; i < n->nkid; i++) {
        eddy_value_t v;
        get(e, KID(i), row, a, &v);
        if (v.type == EDDY_TYPE_NULL)
            saw_null = true;
        else if ((v.u.i != 0) == stop) {
            set_bool(out, stop);
            return;
        }
    }
    if (saw_null)
        set_null(out);
    else
        set_bool(out, !stop);
}

static void ev(const eddy_expr_t *e, const node_t *n, const eddy_value_t *row, eddy_arena_t *a,
               eddy_value_t *out) {
    eddy_value_t x, y;
    switch ((op_t)n->op) {
    case OP_CONST:
        *out = n->k;
        return;
    case OP_FIELD:
        *out = row[n->field];
        if (out->type != n->type && out->type != EDDY_TYPE_NULL)
            coerce_field(out, n->type);
        return;

    case OP_NEG_I:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL || x.u.i == INT64_MIN)
            goto null;
        set_int(out, n->type, -x.u.i);
        return;
    case OP_NEG_D:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        set_dbl(out, -num(&x));
        return;
    case OP_ADD_I:
        GET2(x, y);
        if (__builtin_add_overflow(x.u.i, y.u.i, &out->u.i))
            goto null;
        break;
    case OP_SUB_I:
        GET2(x, y);
        if (__builtin_sub_overflow(x.u.i, y.u.i, &out->u.i))
            goto null;
        break;
    case OP_MUL_I:
        GET2(x, y);
        if (__builtin_mul_overflow(x.u.i, y.u.i, &out->u.i))
            goto null;
        break;
    case OP_DIV_I:
        GET2(x, y);
        if (y.u.i == 0 || (y.u.i == -1 && x.u.i == INT64_MIN))
            goto null;
        out->u.i = x.u.i / y.u.i;
        break;
    case OP_MOD_I:
        GET2(x, y);
        if (y.u.i == 0)
            goto null;
        out->u.i = y.u.i == -1 ? 0 : x.u.i % y.u.i; /* INT64_MIN % -1 traps in C */
        break;
    case OP_ADD_D:
        GET2(x, y);
        set_dbl(out, num(&x) + num(&y));
        return;
    case OP_SUB_D:
        GET2(x, y);
        set_dbl(out, num(&x) - num(&y));
        return;
    case OP_MUL_D:
        GET2(x, y);
        set_dbl(out, num(&x) * num(&y));
        return;
    case OP_DIV_D:
        GET2(x, y);
        if (num(&y) == 0)
            goto null;
        set_dbl(out, num(&x) / num(&y));
        return;
    case OP_MOD_D:
        GET2(x, y);
        if (num(&y) == 0)
            goto null;
        set_dbl(out, fmod(num(&x), num(&y)));
        return;

    case OP_CMP:
        GET2(x, y);
        set_bool(out, (n->aux >> (cmp3(n->dom, &x, &y) + 1)) & 1);
        return;
    case OP_AND:
        ev_logic(e, n, row, a, out, 0);
        return;
    case OP_OR:
        ev_logic(e, n, row, a, out, 1);
        return;
    case OP_NOT:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        set_bool(out, !x.u.i);
        return;
    case OP_IS_NULL:
        get(e, KID(0), row, a, &x);
        set_bool(out, (x.type == EDDY_TYPE_NULL) != n->neg);
        return;
    case OP_IN: {
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        bool saw_null = false;
        for (int32_t i = 1; i < n->nkid; i++) {
            get(e, KID(i), row, a, &y);
            if (y.type == EDDY_TYPE_NULL)
                saw_null = true;
            else if (cmp3(n->dom, &x, &y) == 0) {
                set_bool(out, !n->neg);
                return;
            }
        }
        if (saw_null)
            goto null;
        set_bool(out, n->neg);
        return;
    }
    case OP_BETWEEN: {
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        /* lo <= x and x <= hi, in three-valued logic. */
        int res = 1; /* 1 true, 0 false, -1 unknown */
        for (int k = 1; k <= 2 && res != 0; k++) {
            get(e, KID(k), row, a, &y);
            if (y.type == EDDY_TYPE_NULL) {
                res = -1;
                continue;
            }
            int c = cmp3(n->dom, &x, &y);
            if (c == 2 || (k == 1 ? c < 0 : c > 0))
                res = 0;
        }
        if (res < 0)
            goto null;
        set_bool(out, (res == 1) != n->neg);
        return;
    }

    case OP_IF:
        get(e, KID(0), row, a, &x);
        get(e, KID(x.type == EDDY_TYPE_BOOL && x.u.i ? 1 : 2), row, a, out);
        return;
    case OP_CASE: {
        int32_t i = 0;
        for (; i + 1 < n->nkid; i += 2) {
            get(e, KID(i), row, a, &x);
            if (x.type == EDDY_TYPE_BOOL && x.u.i) {
                get(e, KID(i + 1), row, a, out);
                return;
            }
        }
        if (i < n->nkid) /* else branch */
            get(e, KID(i), row, a, out);
        else
            set_null(out);
        return;
    }
    case OP_COALESCE:
        for (int32_t i = 0; i < n->nkid; i++) {
            get(e, KID(i), row, a, out);
            if (out->type != EDDY_TYPE_NULL)
                return;
        }
        return;
    case OP_GREATEST:
    case OP_LEAST: {
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        int want = n->op == OP_GREATEST ? 1 : -1;
        for (int32_t i = 1; i < n->nkid; i++) {
            get(e, KID(i), row, a, &y);
            if (y.type == EDDY_TYPE_NULL)
                goto null;
            if (cmp3(n->dom, &y, &x) == want)
                x = y;
        }
        *out = x;
        return;
    }

    case OP_LOWER:
    case OP_UPPER:
    case OP_TRIM:
    case OP_LEN:
    case OP_SUBSTR:
    case OP_CONTAINS:
    case OP_STARTS:
    case OP_ENDS:
        ev_string(e, n, row, a, out);
        return;
    case OP_CONCAT:
        ev_concat(e, n, row, a, out);
        return;
    case OP_CAST:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        cast_value(&x, n->type, a, out);
        return;

    case OP_ABS:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        if (x.type == EDDY_TYPE_DOUBLE) {
            set_dbl(out, fabs(x.u.d));
            return;
        }
        if (x.u.i == INT64_MIN)
            goto null;
        set_int(out, EDDY_TYPE_INT, x.u.i < 0 ? -x.u.i : x.u.i);
        return;
    case OP_FLOOR:
    case OP_CEIL:
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        set_dbl(out, n->op == OP_FLOOR ? floor(num(&x)) : ceil(num(&x)));
        return;
    case OP_ROUND: {
        get(e, KID(0), row, a, &x);
        if (x.type == EDDY_TYPE_NULL)
            goto null;
        int64_t digits = 0;
        if (n->nkid > 1) {
            get(e, KID(1), row, a, &y);
            if (y.type == EDDY_TYPE_NULL)
                goto null;
            digits = y.u.i;
        }
        if (x.type == EDDY_TYPE_DOUBLE) {
            set_dbl(out, round_dbl(x.u.d, digits));
            return;
        }
        int64_t r;
        if (!round_int(x.u.i, digits, &r))
            goto null;
        set_int(out, EDDY_TYPE_INT, r);
        return;
    }
    }
    /* integer arithmetic ends here with out->u.i set */
    out->len = 0;
    out->type = n->type;
    return;
null:
    set_null(out);
}

/* ---------------------------------------------------------------- lexer */

typedef enum {
    T_END,
    T_ERR, /* after an error: the parser stops at it */
    T_INT,
    T_DBL,
    T_STR,
    T_IDENT,  /* also keywords, recognised by the parser case-insensitively */
    T_QIDENT, /* `backquoted name` */
    T_LP,
    T_RP,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PCT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_BARS, /* || */
    T_AMPS, /* && */
    T_BANG  /* ! */
} tok_kind_t;

typedef struct tok_s {
    tok_kind_t kind;
    int col, len;  /* source span */
    uint64_t ival; /* T_INT */
    bool ovf;      /* T_INT: above UINT64_MAX */
    double dval;   /* T_DBL */
    const char *s; /* T_STR: decoded text (constants arena); T_[Q]IDENT: the name */
    size_t slen;
} tok_t;

typedef struct parser_s {
    const char *src;
    int len, pos;
    tok_t tok; /* the current token (one token of lookahead is all we need) */
    eddy_expr_t *e;
    int ncap, kcap;
    const eddy_schema_t *in;
    int nest; /* recursion depth of the parser */
    /* The expression just parsed has a comparison, not, and or or at its
     * top: `||` must then not be read as concat (see parse_or). */
    bool loose;
    bool failed;
    int errcol;
    char errmsg[400];
} parser_t;

/* What the recursive grammar functions keep of an operator token: small,
 * because one lives in each frame of a deeply nested expression. */
typedef struct optok_s {
    tok_kind_t kind;
    int col, len;
} optok_t;

static inline optok_t optok(const parser_t *p) {
    return (optok_t){.kind = p->tok.kind, .col = p->tok.col, .len = p->tok.len};
}

static int fail(parser_t *p, int col, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Record the first error (later ones are consequences) and stop the
 * token stream. Returns -1, the "no node" value, for `return fail(...)`. */
static __attribute__((noinline)) int fail(parser_t *p, int col, const char *fmt, ...) {
    if (!p->failed) {
        p->failed = true;
        p->errcol = col;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->errmsg, sizeof(p->errmsg), fmt, ap);
        va_end(ap);
    }
    p->tok.kind = T_ERR;
    return -1;
}

static __attribute__((noinline)) int fail_depth(parser_t *p, int col) {
    return fail(p, col, "expression nested too deeply (more than %d levels)", EDDY_EXPR_MAX_DEPTH);
}

/* The current token for a message: 'text' (clipped) or "the end of the
 * expression". */
static const char *describe(const parser_t *p, char *buf, size_t size) {
    if (p->tok.kind == T_END)
        return "the end of the expression";
    int n = p->tok.len > 24 ? 24 : p->tok.len;
    snprintf(buf, size, "'%.*s%s'", n, p->src + p->tok.col, p->tok.len > 24 ? "..." : "");
    return buf;
}

static int hexval(int c) {
    if (is_digit(c))
        return c - '0';
    c = to_lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* n hex digits at s[i..], or -1. */
static long hexn(const char *s, int i, int n) {
    long v = 0;
    for (int k = 0; k < n; k++) {
        int h = hexval((unsigned char)s[i + k]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t utf8_put(char *out, long cp) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A quoted string starting at s[i]; decoded into the constants arena
 * (never longer than its source). Returns the index after it, or -1. */
static int lex_string(parser_t *p, int i) {
    const char *s = p->src;
    int n = p->len, start = i;
    char q = s[i];
    int j = i + 1;
    for (;;) {
        if (j >= n)
            return fail(p, start, "unterminated string (missing closing %c)", q);
        if (s[j] == '\\') {
            j += 2;
            continue;
        }
        if (s[j] == q) {
            if (j + 1 < n && s[j + 1] == q) { /* '' inside '...' is one quote */
                j += 2;
                continue;
            }
            break;
        }
        j++;
    }
    char *out = eddy_arena_alloc(&p->e->consts, (size_t)(j - i));
    size_t o = 0;
    for (int k = i + 1; k < j; k++) {
        char c = s[k];
        if (c == q) {
            out[o++] = q;
            k++;
            continue;
        }
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        int bs = k++;
        long cp;
        switch (s[k]) {
        case 'n':
            out[o++] = '\n';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case '0':
            out[o++] = '\0';
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case '\\':
        case '\'':
        case '"':
        case '`':
        case '/':
            out[o++] = s[k];
            break;
        case 'x':
            if (k + 2 >= j || (cp = hexn(s, k + 1, 2)) < 0)
                return fail(p, bs, "bad \\x escape in string (needs two hex digits)");
            out[o++] = (char)cp;
            k += 2;
            break;
        case 'u':
            if (k + 4 >= j || (cp = hexn(s, k + 1, 4)) < 0)
                return fail(p, bs, "bad \\u escape in string (needs four hex digits)");
            k += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(p, bs, "bad \\u escape in string (lone low surrogate)");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo;
                if (k + 6 >= j || s[k + 1] != '\\' || s[k + 2] != 'u' ||
                    (lo = hexn(s, k + 3, 4)) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, bs,
                                "bad \\u escape in string (high surrogate without "
                                "a low one)");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            }
            o += utf8_put(out + o, cp);
            break;
        default:
            if (s[k] > 32 && s[k] < 127)
                return fail(p, bs, "unknown escape '\\%c' in string", s[k]);
            return fail(p, bs, "unknown escape in string");
        }
    }
    p->tok.kind = T_STR;
    p->tok.s = out;
    p->tok.slen = o;
    return j + 1;
}

/* A number starting at s[i]; returns the index after it, or -1. */
static int lex_number(parser_t *p, int i) {
    const char *s = p->src;
    int n = p->len, start = i;
    bool dbl = false, bad = false;
    while (i < n && is_digit((unsigned char)s[i]))
        i++;
    if (i < n && s[i] == '.') {
        dbl = true;
        for (i++; i < n && is_digit((unsigned char)s[i]); i++)
            ;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        int j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit((unsigned char)s[j])) {
            dbl = true;
            for (i = j; i < n && is_digit((unsigned char)s[i]); i++)
                ;
        } else {
            bad = true;
        }
    }
    if (bad || (i < n &&
                (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) || s[i] == '.'))) {
        while (i < n && (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i]) ||
                         s[i] == '.' || s[i] == '+' || s[i] == '-'))
            i++;
        int len = i - start > 40 ? 40 : i - start;
        return fail(p, start, "malformed number '%.*s'", len, s + start);
    }
    if (i - start >= NUM_TEXT_MAX)
        return fail(p, start, "number too long (more than %d characters)", NUM_TEXT_MAX - 1);
    if (dbl) {
        if (!parse_double(s + start, (size_t)(i - start), &p->tok.dval))
            return fail(p, start, "malformed number '%.*s'", i - start, s + start);
        if (!isfinite(p->tok.dval))
            return fail(p, start, "number %.*s is out of range for a double",
                        i - start > 40 ? 40 : i - start, s + start);
        p->tok.kind = T_DBL;
        return i;
    }
    uint64_t v = 0;
    for (int k = start; k < i; k++) {
        unsigned dgt = (unsigned)(s[k] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            p->tok.ovf = true;
        else
            v = v * 10 + dgt;
    }
    p->tok.kind = T_INT;
    p->tok.ival = v;
    return i;
}

/* Read the next token into p->tok. */
static void next(parser_t *p) {
    if (p->failed) {
        p->tok.kind = T_ERR;
        return;
    }
    const char *s = p->src;
    int n = p->len, i = p->pos;
    while (i < n && is_space((unsigned char)s[i]))
        i++;
    tok_t *t = &p->tok;
    memset(t, 0, sizeof(*t));
    t->col = i;
    int start = i;
    if (i >= n) {
        t->kind = T_END;
        p->pos = i;
        return;
    }
    unsigned char c = (unsigned char)s[i];
    if (is_digit(c) || (c == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))) {
        i = lex_number(p, i);
    } else if (is_alpha(c)) {
        /* a.b is one name: flattened nested fields are named that way */
        for (;;) {
            while (i < n && (is_alpha((unsigned char)s[i]) || is_digit((unsigned char)s[i])))
                i++;
            if (!(i + 1 < n && s[i] == '.' && is_alpha((unsigned char)s[i + 1])))
                break;
            i++; /* the dot; the next segment follows */
        }
        t->kind = T_IDENT;
        t->s = s + start;
        t->slen = (size_t)(i - start);
    } else if (c == '`') {
        int j = i + 1;
        while (j < n && s[j] != '`')
            j++;
        if (j >= n)
            i = fail(p, start, "unterminated backquoted name (missing closing `)");
        else if (j == i + 1)
            i = fail(p, start, "empty backquoted name");
        else {
            t->kind = T_QIDENT;
            t->s = s + i + 1;
            t->slen = (size_t)(j - i - 1);
            i = j + 1;
        }
    } else if (c == '\'' || c == '"') {
        i = lex_string(p, i);
    } else {
        char c2 = i + 1 < n ? s[i + 1] : 0;
        i++;
        switch (c) {
        case '(':
            t->kind = T_LP;
            break;
        case ')':
            t->kind = T_RP;
            break;
        case ',':
            t->kind = T_COMMA;
            break;
        case '+':
            t->kind = T_PLUS;
            break;
        case '-':
            t->kind = T_MINUS;
            break;
        case '*':
            t->kind = T_STAR;
            break;
        case '/':
            t->kind = T_SLASH;
            break;
        case '%':
            t->kind = T_PCT;
            break;
        case '=':
            t->kind = T_EQ;
            i += c2 == '=';
            break;
        case '!':
            t->kind = c2 == '=' ? T_NE : T_BANG;
            i += c2 == '=';
            break;
        case '<':
            t->kind = c2 == '=' ? T_LE : c2 == '>' ? T_NE : T_LT;
            i += c2 == '=' || c2 == '>';
            break;
        case '>':
            t->kind = c2 == '=' ? T_GE : T_GT;
            i += c2 == '=';
            break;
        case '|':
            if (c2 != '|') {
                i = fail(p, start, "unexpected character '|' (did you mean '||'?)");
                break;
            }
            t->kind = T_BARS;
            i++;
            break;
        case '&':
            if (c2 != '&') {
                i = fail(p, start, "unexpected character '&' (did you mean '&&' or 'and'?)");
                break;
            }
            t->kind = T_AMPS;
            i++;
            break;
        default:
            if (c > 32 && c < 127)
                i = fail(p, start, "unexpected character '%c'", c);
            else
                i = fail(p, start, "unexpected byte 0x%02x", c);
            break;
        }
    }
    if (i < 0) { /* fail() already set T_ERR */
        p->pos = n;
        return;
    }
    t->col = start;
    t->len = i - start;
    p->pos = i;
}

/* --------------------------------------------------------------- parser */

typedef struct ivec_s {
    int32_t *v;
    int n, cap;
} ivec_t;

static void ivec_push(ivec_t *v, int32_t x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->v = eddy_realloc(v->v, sizeof(int32_t) * (size_t)v->cap);
    }
    v->v[v->n++] = x;
}

static void ivec_free(ivec_t *v) {
    eddy_free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

static inline node_t *N(const parser_t *p, int idx) {
    return &p->e->nodes[idx];
}
static inline int ntype(const parser_t *p, int idx) {
    return p->e->nodes[idx].type;
}
static inline const char *tname(int t) {
    return eddy_type2str((eddy_type_t)t);
}
static inline bool boolish(int t) {
    return t == EDDY_TYPE_BOOL || t == EDDY_TYPE_NULL;
}

/*
 * Append node `t` with children kids[0..nk), and fold it: a node whose
 * children are all constants is evaluated now (strings into the
 * expression's own arena) and becomes a constant. Every operator is pure,
 * so this is always safe. Returns the node's index, or -1.
 */
static __attribute__((noinline)) int add(parser_t *p, node_t t, const int32_t *kids, int nk) {
    eddy_expr_t *e = p->e;
    if (p->failed)
        return -1;
    int depth = 0;
    bool all_const = nk > 0;
    for (int k = 0; k < nk; k++) {
        const node_t *c = &e->nodes[kids[k]];
        if (c->depth > depth)
            depth = c->depth;
        all_const &= c->op == OP_CONST;
    }
    depth++;
    if (depth > EDDY_EXPR_MAX_DEPTH)
        return fail_depth(p, t.col);
    if (e->nnodes == p->ncap) {
        p->ncap = p->ncap ? p->ncap * 2 : 16;
        e->nodes = eddy_realloc(e->nodes, sizeof(node_t) * (size_t)p->ncap);
    }
    if (e->nkids + nk > p->kcap) {
        while (e->nkids + nk > p->kcap)
            p->kcap = p->kcap ? p->kcap * 2 : 16;
        e->kids = eddy_realloc(e->kids, sizeof(int32_t) * (size_t)p->kcap);
    }
    t.kid = e->nkids;
    t.nkid = nk;
    t.depth = (uint16_t)depth;
    if (nk)
        memcpy(e->kids + e->nkids, kids, sizeof(int32_t) * (size_t)nk);
    e->nkids += nk;
    int idx = e->nnodes++;
    e->nodes[idx] = t;
    if (all_const && t.op != OP_CONST && t.op != OP_FIELD) {
        eddy_value_t v;
        ev(e, &e->nodes[idx], NULL, &e->consts, &v);
        node_t *nd = &e->nodes[idx];
        nd->op = OP_CONST;
        nd->k = v;
        nd->nkid = 0;
        nd->depth = 1;
        e->nkids -= nk; /* its children were the last ones appended */
    }
    return idx;
}

/* A node from scalars, out of line: the grammar functions recurse, and a
 * node_t built in each of their frames would multiply the stack a deep
 * expression needs. */
static __attribute__((noinline)) int mk(parser_t *p, int op, int type, bool neg, int col, int start,
                                        const int32_t *kids, int nk) {
    return add(
        p,
        (node_t){.op = (uint8_t)op, .type = (uint8_t)type, .neg = neg, .col = col, .start = start},
        kids, nk);
}

static int mk_const(parser_t *p, eddy_value_t v, int type, int col) {
    return add(p, (node_t){.op = OP_CONST, .type = (uint8_t)type, .col = col, .start = col, .k = v},
               NULL, 0);
}

static __attribute__((noinline)) int mk_int(parser_t *p, int64_t i, int col) {
    eddy_value_t v;
    set_int(&v, EDDY_TYPE_INT, i);
    return mk_const(p, v, EDDY_TYPE_INT, col);
}

/* Unknown field: suggest the closest name, or list the few there are. */
static __attribute__((noinline)) int unknown_field(parser_t *p, const char *name, size_t len,
                                                   int col) {
    const eddy_schema_t *in = p->in;
    int nf = in ? in->nfields : 0;
    int shown = len > 64 ? 64 : (int)len;
    if (nf == 0)
        return fail(p, col, "unknown field '%.*s' (the input has no fields)", shown, name);
    char *word = eddy_strndup(name, len);
    const char **cands = eddy_calloc((size_t)nf + 1, sizeof(char *));
    for (int i = 0; i < nf; i++)
        cands[i] = in->fields[i].name;
    const char *sg = eddy__cfg_suggest(word, cands);
    if (sg) {
        fail(p, col, "unknown field '%.*s' (did you mean '%s'?)", shown, name, sg);
    } else if (nf <= 12) {
        eddy_buf_t b = {0};
        for (int i = 0; i < nf; i++)
            eddy_buf_printf(&b, "%s%s", i ? ", " : "", cands[i]);
        fail(p, col, "unknown field '%.*s' (the input has: %s)", shown, name, b.p);
        eddy_buf_free(&b);
    } else {
        fail(p, col, "unknown field '%.*s'", shown, name);
    }
    eddy_free(cands);
    eddy_free(word);
    return -1;
}

static int find_field(const eddy_schema_t *in, const char *name, size_t len) {
    for (int i = 0; in && i < in->nfields; i++) {
        const char *f = in->fields[i].name;
        if (strlen(f) == len && !memcmp(f, name, len))
            return i;
    }
    return -1;
}

static __attribute__((noinline)) int mk_field(parser_t *p, const char *name, size_t len, int col) {
    int i = find_field(p->in, name, len);
    if (i < 0)
        return unknown_field(p, name, len, col);
    return add(p,
               (node_t){.op = OP_FIELD,
                        .type = (uint8_t)p->in->fields[i].type,
                        .field = i,
                        .col = col,
                        .start = col},
               NULL, 0);
}

/* Wrap x in a cast to `to` (no-op when it already has that type). */
static __attribute__((noinline)) int mk_cast(parser_t *p, int x, int to, int col) {
    if (x < 0 || ntype(p, x) == to)
        return x;
    int tx = ntype(p, x);
    int32_t k = x;
    return add(p,
               (node_t){.op = OP_CAST,
                        .type = (uint8_t)to,
                        .dom = (uint8_t)tx,
                        .col = col,
                        .start = N(p, x)->start},
               &k, 1);
}

/* The type two branches (or arguments) share, or -1. */
static int unify(int a, int b) {
    if (a == EDDY_TYPE_NULL)
        return b;
    if (b == EDDY_TYPE_NULL || a == b)
        return a;
    if (is_num(a) && is_num(b))
        return EDDY_TYPE_DOUBLE;
    if ((a == EDDY_TYPE_INT && b == EDDY_TYPE_TIMESTAMP) ||
        (a == EDDY_TYPE_TIMESTAMP && b == EDDY_TYPE_INT))
        return EDDY_TYPE_TIMESTAMP;
    if (is_strlike(a) && is_strlike(b))
        return EDDY_TYPE_STRING;
    return -1;
}

/* The domain in which a and b compare, or -1 when they do not. */
static int cmp_dom(int a, int b) {
    if (a == EDDY_TYPE_NULL)
        a = b;
    if (b == EDDY_TYPE_NULL)
        b = a;
    if (a == EDDY_TYPE_NULL)
        return D_INT;
    bool na = is_num(a) || a == EDDY_TYPE_TIMESTAMP, nb = is_num(b) || b == EDDY_TYPE_TIMESTAMP;
    if (na && nb)
        return a == EDDY_TYPE_DOUBLE || b == EDDY_TYPE_DOUBLE ? D_DBL : D_INT;
    if (is_strlike(a) && is_strlike(b))
        return D_STR;
    if (a == EDDY_TYPE_BOOL && b == EDDY_TYPE_BOOL)
        return D_INT;
    return -1;
}

static int join_dom(int d1, int d2) {
    if (d1 == d2)
        return d1;
    if ((d1 == D_INT || d1 == D_DBL) && (d2 == D_INT || d2 == D_DBL))
        return D_DBL;
    return -1;
}

static int dom_of_type(int t) {
    return t == EDDY_TYPE_DOUBLE ? D_DBL : is_strlike(t) ? D_STR : D_INT;
}

static __attribute__((noinline)) int mk_arith(parser_t *p, const optok_t *op, int l, int r) {
    int tl = ntype(p, l), tr = ntype(p, r);
    bool nl = is_num(tl) || tl == EDDY_TYPE_NULL, nr = is_num(tr) || tr == EDDY_TYPE_NULL;
    bool plus = op->kind == T_PLUS, minus = op->kind == T_MINUS;
    int type = -1;
    bool dbl = false;
    if (nl && nr) {
        dbl = tl == EDDY_TYPE_DOUBLE || tr == EDDY_TYPE_DOUBLE;
        type =
            dbl ? EDDY_TYPE_DOUBLE
                : (tl == EDDY_TYPE_NULL && tr == EDDY_TYPE_NULL ? EDDY_TYPE_NULL : EDDY_TYPE_INT);
    } else if (tl == EDDY_TYPE_TIMESTAMP || tr == EDDY_TYPE_TIMESTAMP) {
        bool il = tl == EDDY_TYPE_INT || tl == EDDY_TYPE_NULL;
        bool ir = tr == EDDY_TYPE_INT || tr == EDDY_TYPE_NULL;
        if ((plus || minus) && tl == EDDY_TYPE_TIMESTAMP && ir)
            type = EDDY_TYPE_TIMESTAMP;
        else if (plus && il && tr == EDDY_TYPE_TIMESTAMP)
            type = EDDY_TYPE_TIMESTAMP;
        else if (minus && tl == EDDY_TYPE_TIMESTAMP && tr == EDDY_TYPE_TIMESTAMP)
            type = EDDY_TYPE_INT;
        else
            return fail(p, op->col,
                        "operator '%c' cannot combine %s and %s (a timestamp takes + or - "
                        "an int of milliseconds, and - another timestamp)",
                        p->src[op->col], tname(tl), tname(tr));
    }
    if (type < 0)
        return fail(p, op->col, "operator '%c' needs numbers, got %s and %s", p->src[op->col],
                    tname(tl), tname(tr));
    int base = op->kind == T_PLUS    ? OP_ADD_I
               : op->kind == T_MINUS ? OP_SUB_I
               : op->kind == T_STAR  ? OP_MUL_I
               : op->kind == T_SLASH ? OP_DIV_I
                                     : OP_MOD_I;
    int32_t kids[2] = {l, r};
    return add(p,
               (node_t){.op = (uint8_t)(base + (dbl ? OP_ADD_D - OP_ADD_I : 0)),
                        .type = (uint8_t)type,
                        .col = op->col,
                        .start = N(p, l)->start},
               kids, 2);
}

static bool is_cmp_tok(tok_kind_t k) {
    return k == T_EQ || k == T_NE || k == T_LT || k == T_LE || k == T_GT || k == T_GE;
}

static __attribute__((noinline)) int mk_cmp(parser_t *p, const optok_t *op, int l, int r) {
    int tl = ntype(p, l), tr = ntype(p, r);
    int dom = cmp_dom(tl, tr);
    if (dom < 0)
        return fail(p, op->col, "operator '%.*s' cannot compare %s and %s", op->len,
                    p->src + op->col, tname(tl), tname(tr));
    static const uint8_t mask[] = {[T_EQ] = CMP_EQ, [T_NE] = CMP_NE, [T_LT] = CMP_LT,
                                   [T_LE] = CMP_LE, [T_GT] = CMP_GT, [T_GE] = CMP_GE};
    int32_t kids[2] = {l, r};
    return add(p,
               (node_t){.op = OP_CMP,
                        .type = EDDY_TYPE_BOOL,
                        .dom = (uint8_t)dom,
                        .aux = mask[op->kind],
                        .col = op->col,
                        .start = N(p, l)->start},
               kids, 2);
}

/* ------------------------------------------------------------ functions */

typedef enum {
    F_ABS,
    F_CEIL,
    F_FLOOR,
    F_ROUND,
    F_COALESCE,
    F_CONCAT,
    F_CONTAINS,
    F_STARTS,
    F_ENDS,
    F_GREATEST,
    F_LEAST,
    F_IF,
    F_LEN,
    F_LOWER,
    F_UPPER,
    F_TRIM,
    F_SUBSTR,
    F_CAST
} fn_id_t;

typedef struct fn_s {
    const char *name;
    fn_id_t id;
    int8_t min, max; /* argument count; max -1: any */
    uint8_t cast_to; /* F_CAST */
} fn_t;

static const fn_t fns[] = {
    {"abs", F_ABS, 1, 1, 0},
    {"bool", F_CAST, 1, 1, EDDY_TYPE_BOOL},
    {"boolean", F_CAST, 1, 1, EDDY_TYPE_BOOL},
    {"ceil", F_CEIL, 1, 1, 0},
    {"ceiling", F_CEIL, 1, 1, 0},
    {"coalesce", F_COALESCE, 1, -1, 0},
    {"concat", F_CONCAT, 1, -1, 0},
    {"contains", F_CONTAINS, 2, 2, 0},
    {"double", F_CAST, 1, 1, EDDY_TYPE_DOUBLE},
    {"ends_with", F_ENDS, 2, 2, 0},
    {"float", F_CAST, 1, 1, EDDY_TYPE_DOUBLE},
    {"floor", F_FLOOR, 1, 1, 0},
    {"greatest", F_GREATEST, 1, -1, 0},
    {"if", F_IF, 3, 3, 0},
    {"int", F_CAST, 1, 1, EDDY_TYPE_INT},
    {"least", F_LEAST, 1, -1, 0},
    {"len", F_LEN, 1, 1, 0},
    {"length", F_LEN, 1, 1, 0},
    {"long", F_CAST, 1, 1, EDDY_TYPE_INT},
    {"lower", F_LOWER, 1, 1, 0},
    {"round", F_ROUND, 1, 2, 0},
    {"starts_with", F_STARTS, 2, 2, 0},
    {"string", F_CAST, 1, 1, EDDY_TYPE_STRING},
    {"substr", F_SUBSTR, 2, 3, 0},
    {"substring", F_SUBSTR, 2, 3, 0},
    {"timestamp", F_CAST, 1, 1, EDDY_TYPE_TIMESTAMP},
    {"trim", F_TRIM, 1, 1, 0},
    {"upper", F_UPPER, 1, 1, 0},
};
#define NFNS ((int)(sizeof(fns) / sizeof(fns[0])))

static const fn_t *find_fn(const char *name, size_t len) {
    for (int i = 0; i < NFNS; i++)
        if (ascii_ieq(name, len, fns[i].name))
            return &fns[i];
    return NULL;
}

static __attribute__((noinline)) int unknown_fn(parser_t *p, const char *name, size_t len,
                                                int col) {
    int shown = len > 64 ? 64 : (int)len;
    char word[32];
    const char *sg = NULL;
    if (len < sizeof(word)) { /* longer than any function: no hint */
        for (size_t i = 0; i < len; i++)
            word[i] = (char)to_lower((unsigned char)name[i]);
        word[len] = 0;
        const char *names[NFNS + 1];
        for (int i = 0; i < NFNS; i++)
            names[i] = fns[i].name;
        names[NFNS] = NULL;
        sg = eddy__cfg_suggest(word, names);
    }
    if (sg)
        return fail(p, col, "unknown function '%.*s' (did you mean '%s'?)", shown, name, sg);
    return fail(p, col, "unknown function '%.*s'", shown, name);
}

/* Argument i (0-based) has the wrong type. */
static int arg_err(parser_t *p, const fn_t *fn, int nargs, int i, int arg, const char *want) {
    if (nargs == 1)
        return fail(p, N(p, arg)->start, "function '%s' needs %s, got %s", fn->name, want,
                    tname(ntype(p, arg)));
    return fail(p, N(p, arg)->start, "function '%s' needs %s as argument %d, got %s", fn->name,
                want, i + 1, tname(ntype(p, arg)));
}

static int mk_cast_checked(parser_t *p, int x, int to, int col) {
    int tx = ntype(p, x);
    if ((tx == EDDY_TYPE_BOOL && to == EDDY_TYPE_TIMESTAMP) ||
        (tx == EDDY_TYPE_TIMESTAMP && to == EDDY_TYPE_BOOL))
        return fail(p, col, "cannot cast %s to %s", tname(tx), tname(to));
    return mk_cast(p, x, to, col);
}

/* Unify the types of args[from..n), casting them to the common type;
 * returns it, or -1. `what` names them: "branches of if()". */
static int unify_args(parser_t *p, const char *what, int32_t *args, int from, int n) {
    int type = EDDY_TYPE_NULL;
    for (int i = from; i < n; i++) {
        int u = unify(type, ntype(p, args[i]));
        if (u < 0)
            return fail(p, N(p, args[i])->start, "%s have different types: %s and %s", what,
                        tname(type), tname(ntype(p, args[i])));
        type = u;
    }
    if (type != EDDY_TYPE_NULL)
        for (int i = from; i < n; i++)
            if ((args[i] = mk_cast(p, args[i], type, N(p, args[i])->start)) < 0)
                return -1;
    return type;
}

static __attribute__((noinline)) int mk_call(parser_t *p, const fn_t *fn, int col, int32_t *args,
                                             int n) {
    node_t t = {.col = col, .start = col};
    int t0 = ntype(p, args[0]);
    int t1 = n > 1 ? ntype(p, args[1]) : EDDY_TYPE_NULL;
    char what[48];
    switch (fn->id) {
    case F_ABS:
    case F_CEIL:
    case F_FLOOR:
    case F_ROUND:
        if (!is_num(t0) && t0 != EDDY_TYPE_NULL)
            return arg_err(p, fn, n, 0, args[0], "a number");
        if (fn->id == F_ROUND && n > 1 && t1 != EDDY_TYPE_INT && t1 != EDDY_TYPE_NULL)
            return arg_err(p, fn, n, 1, args[1], "an int (digits)");
        if (t0 == EDDY_TYPE_INT &&
            (fn->id == F_CEIL || fn->id == F_FLOOR || (fn->id == F_ROUND && n == 1)))
            return args[0]; /* already integral */
        t.op = fn->id == F_ABS     ? OP_ABS
               : fn->id == F_CEIL  ? OP_CEIL
               : fn->id == F_FLOOR ? OP_FLOOR
                                   : OP_ROUND;
        t.type = (uint8_t)(fn->id == F_CEIL || fn->id == F_FLOOR ? EDDY_TYPE_DOUBLE : t0);
        break;
    case F_COALESCE:
    case F_GREATEST:
    case F_LEAST: {
        snprintf(what, sizeof(what), "arguments of %s()", fn->name);
        int type = unify_args(p, what, args, 0, n);
        if (type < 0)
            return -1;
        if (n == 1)
            return args[0];
        if (fn->id != F_COALESCE && type == EDDY_TYPE_BYTES)
            return arg_err(p, fn, n, 0, args[0], "numbers, strings, booleans or timestamps");
        t.op = fn->id == F_COALESCE ? OP_COALESCE : fn->id == F_GREATEST ? OP_GREATEST : OP_LEAST;
        t.type = (uint8_t)type;
        t.dom = (uint8_t)dom_of_type(type);
        break;
    }
    case F_CONCAT:
        t.op = OP_CONCAT;
        t.type = EDDY_TYPE_STRING;
        break;
    case F_CONTAINS:
    case F_STARTS:
    case F_ENDS:
        for (int i = 0; i < 2; i++)
            if (!is_strlike(ntype(p, args[i])) && ntype(p, args[i]) != EDDY_TYPE_NULL)
                return arg_err(p, fn, n, i, args[i], "a string");
        t.op = fn->id == F_CONTAINS ? OP_CONTAINS : fn->id == F_STARTS ? OP_STARTS : OP_ENDS;
        t.type = EDDY_TYPE_BOOL;
        break;
    case F_IF: {
        if (!boolish(t0))
            return arg_err(p, fn, n, 0, args[0], "a boolean condition");
        int type = unify_args(p, "branches of if()", args, 1, 3);
        if (type < 0)
            return -1;
        t.op = OP_IF;
        t.type = (uint8_t)type;
        break;
    }
    case F_LEN:
    case F_LOWER:
    case F_UPPER:
    case F_TRIM:
    case F_SUBSTR:
        if (!is_strlike(t0) && t0 != EDDY_TYPE_NULL)
            return arg_err(p, fn, n, 0, args[0], "a string");
        for (int i = 1; i < n; i++)
            if (ntype(p, args[i]) != EDDY_TYPE_INT && ntype(p, args[i]) != EDDY_TYPE_NULL)
                return arg_err(p, fn, n, i, args[i], "an int");
        t.op = fn->id == F_LEN     ? OP_LEN
               : fn->id == F_LOWER ? OP_LOWER
               : fn->id == F_UPPER ? OP_UPPER
               : fn->id == F_TRIM  ? OP_TRIM
                                   : OP_SUBSTR;
        t.type = fn->id == F_LEN ? EDDY_TYPE_INT
                 : (t0 == EDDY_TYPE_BYTES && (fn->id == F_TRIM || fn->id == F_SUBSTR))
                     ? EDDY_TYPE_BYTES
                     : EDDY_TYPE_STRING;
        break;
    case F_CAST:
        return mk_cast_checked(p, args[0], fn->cast_to, col);
    }
    return add(p, t, args, n);
}

/* -------------------------------------------------------------- grammar */

static const char *const keywords[] = {"and",   "or",  "not",     "is",   "null", "true",
                                       "false", "in",  "between", "case", "when", "then",
                                       "else",  "end", "cast",    "as",   NULL};

static bool kw(const parser_t *p, const char *word) {
    return p->tok.kind == T_IDENT && ascii_ieq(p->tok.s, p->tok.slen, word);
}

static bool is_keyword(const tok_t *t) {
    for (int i = 0; keywords[i]; i++)
        if (ascii_ieq(t->s, t->slen, keywords[i]))
            return true;
    return false;
}

/* Every recursion of the parser passes through here, so its stack is
 * bounded like the tree's depth. */
static int enter(parser_t *p) {
    if (++p->nest > EDDY_EXPR_MAX_DEPTH)
        return fail_depth(p, p->tok.col);
    return 0;
}

static int parse_or(parser_t *p);
static int parse_concat(parser_t *p);

/* "expected <what>, got <current token>" (nothing new after an earlier
 * error). */
static __attribute__((noinline)) int fail_expected(parser_t *p, const char *what) {
    if (p->tok.kind == T_ERR)
        return -1;
    char buf[40];
    return fail(p, p->tok.col, "expected %s, got %s", what, describe(p, buf, sizeof(buf)));
}

/* Expect token kind k (what names it in the message); consume it. */
static int expect(parser_t *p, tok_kind_t k, const char *what) {
    if (p->tok.kind != k)
        return fail_expected(p, what);
    next(p);
    return 0;
}

static int expect_kw(parser_t *p, const char *word, const char *what) {
    if (!kw(p, word))
        return fail_expected(p, what);
    next(p);
    return 0;
}

/* The closing parenthesis or the argument count of fn() is wrong. */
static __attribute__((noinline)) int call_error(parser_t *p, const fn_t *fn, int col, int nargs) {
    if (p->tok.kind != T_RP) {
        char what[64];
        snprintf(what, sizeof(what), "',' or ')' in the arguments of %s()", fn->name);
        return fail_expected(p, what);
    }
    if (fn->min == fn->max)
        return fail(p, col, "function '%s' takes %d argument%s, got %d", fn->name, fn->min,
                    fn->min == 1 ? "" : "s", nargs);
    if (fn->max < 0)
        return fail(p, col, "function '%s' takes at least %d argument%s, got %d", fn->name, fn->min,
                    fn->min == 1 ? "" : "s", nargs);
    return fail(p, col, "function '%s' takes %d or %d arguments, got %d", fn->name, fn->min,
                fn->max, nargs);
}

/* name '(' [expr {',' expr}] ')' ; the name was consumed, '(' is current. */
static __attribute__((noinline)) int parse_call(parser_t *p, const char *name, size_t len,
                                                int col) {
    const fn_t *fn = find_fn(name, len);
    if (!fn)
        return unknown_fn(p, name, len, col);
    next(p);
    ivec_t args = {0};
    int idx = -1;
    if (p->tok.kind != T_RP) {
        for (;;) {
            int a = parse_or(p);
            if (a < 0)
                goto out;
            ivec_push(&args, a);
            if (p->tok.kind != T_COMMA)
                break;
            next(p);
        }
    }
    if (p->tok.kind != T_RP || args.n < fn->min || (fn->max >= 0 && args.n > fn->max)) {
        call_error(p, fn, col, args.n);
        goto out;
    }
    next(p);
    idx = mk_call(p, fn, col, args.v, args.n);
out:
    ivec_free(&args);
    return idx;
}

/* cast '(' expr as type ')' ; `cast` is current. */
static __attribute__((noinline)) int parse_cast(parser_t *p) {
    int col = p->tok.col;
    next(p);
    if (expect(p, T_LP, "'(' after 'cast'") < 0)
        return -1;
    int x = parse_or(p);
    if (x < 0 || expect_kw(p, "as", "'as' in cast(value as type)") < 0)
        return -1;
    char name[16];
    int type = -1;
    if (p->tok.kind == T_IDENT && p->tok.slen < sizeof(name)) {
        for (size_t i = 0; i < p->tok.slen; i++)
            name[i] = (char)to_lower((unsigned char)p->tok.s[i]);
        name[p->tok.slen] = 0;
        type = eddy__type_parse(name);
    }
    if (type <= EDDY_TYPE_NULL) {
        if (p->tok.kind == T_ERR)
            return -1;
        char buf[40];
        return fail(p, p->tok.col,
                    "expected a type in cast (int, long, double, float, string, boolean, "
                    "timestamp or bytes), got %s",
                    describe(p, buf, sizeof(buf)));
    }
    next(p);
    if (expect(p, T_RP, "')' to close cast(") < 0)
        return -1;
    return mk_cast_checked(p, x, type, col);
}

/* case when c then v {when c then v} [else v] end ; `case` is current. */
static __attribute__((noinline)) int parse_case(parser_t *p) {
    int col = p->tok.col;
    next(p);
    if (!kw(p, "when")) {
        if (p->tok.kind == T_ERR)
            return -1;
        char buf[40];
        return fail(p, p->tok.col,
                    "expected 'when' after 'case', got %s (the form is: case when "
                    "condition then value ... else value end)",
                    describe(p, buf, sizeof(buf)));
    }
    ivec_t kids = {0};
    int idx = -1;
    while (kw(p, "when")) {
        next(p);
        int c = parse_or(p);
        if (c < 0)
            goto out;
        if (!boolish(ntype(p, c))) {
            fail(p, N(p, c)->start, "'when' needs a boolean condition, got %s", tname(ntype(p, c)));
            goto out;
        }
        if (expect_kw(p, "then", "'then' after the condition of 'when'") < 0)
            goto out;
        int v = parse_or(p);
        if (v < 0)
            goto out;
        ivec_push(&kids, c);
        ivec_push(&kids, v);
    }
    if (kw(p, "else")) {
        next(p);
        int v = parse_or(p);
        if (v < 0)
            goto out;
        ivec_push(&kids, v);
    }
    if (expect_kw(p, "end", "'when', 'else' or 'end' in case") < 0)
        goto out;
    /* Values sit at odd positions, and the else branch (if any) last. */
    int type = EDDY_TYPE_NULL;
    for (int i = 0; i < kids.n; i++) {
        if (i % 2 == 0 && !(kids.n % 2 == 1 && i == kids.n - 1))
            continue;
        int u = unify(type, ntype(p, kids.v[i]));
        if (u < 0) {
            fail(p, N(p, kids.v[i])->start, "branches of case have different types: %s and %s",
                 tname(type), tname(ntype(p, kids.v[i])));
            goto out;
        }
        type = u;
    }
    for (int i = 0; i < kids.n && type != EDDY_TYPE_NULL; i++) {
        if (i % 2 == 0 && !(kids.n % 2 == 1 && i == kids.n - 1))
            continue;
        if ((kids.v[i] = mk_cast(p, kids.v[i], type, N(p, kids.v[i])->start)) < 0)
            goto out;
    }
    idx = add(p, (node_t){.op = OP_CASE, .type = (uint8_t)type, .col = col, .start = col}, kids.v,
              kids.n);
out:
    ivec_free(&kids);
    return idx;
}

static __attribute__((noinline)) int parse_ident(parser_t *p) {
    const char *name = p->tok.s;
    size_t len = p->tok.slen;
    int col = p->tok.col;
    if (kw(p, "true") || kw(p, "false")) {
        next(p);
        eddy_value_t v;
        set_bool(&v, len == 4);
        return mk_const(p, v, EDDY_TYPE_BOOL, col);
    }
    if (kw(p, "null")) {
        next(p);
        eddy_value_t v;
        set_null(&v);
        return mk_const(p, v, EDDY_TYPE_NULL, col);
    }
    if (kw(p, "case"))
        return parse_case(p);
    if (kw(p, "cast"))
        return parse_cast(p);
    if (is_keyword(&p->tok)) {
        bool field = find_field(p->in, name, len) >= 0;
        return fail(p, col, "expected an operand, got '%.*s'%s%.*s%s", (int)len, name,
                    field ? " (a field with a keyword's name is written `" : "",
                    field ? (int)len : 0, name, field ? "`)" : "");
    }
    next(p);
    if (p->tok.kind == T_LP)
        return parse_call(p, name, len, col);
    return mk_field(p, name, len, col);
}

/* Literals and backquoted names: out of line, so that their locals are
 * not part of every level of a deeply nested expression. */
static __attribute__((noinline)) int parse_leaf(parser_t *p) {
    tok_t t = p->tok;
    eddy_value_t v;
    switch (t.kind) {
    case T_INT:
        if (t.ovf || t.ival > (uint64_t)INT64_MAX)
            return fail(p, t.col, "integer %.*s is out of range (write %.*s.0 for a double)",
                        t.len > 40 ? 40 : t.len, p->src + t.col, t.len > 40 ? 40 : t.len,
                        p->src + t.col);
        next(p);
        return mk_int(p, (int64_t)t.ival, t.col);
    case T_DBL:
        next(p);
        set_dbl(&v, t.dval);
        return mk_const(p, v, EDDY_TYPE_DOUBLE, t.col);
    case T_STR:
        next(p);
        set_str(&v, EDDY_TYPE_STRING, t.s, t.slen);
        return mk_const(p, v, EDDY_TYPE_STRING, t.col);
    case T_QIDENT:
        next(p);
        return mk_field(p, t.s, t.slen, t.col);
    default:
        return fail_expected(p, "an operand");
    }
}

static int parse_primary(parser_t *p) {
    int idx;
    if (p->tok.kind == T_LP) {
        next(p);
        idx = parse_or(p);
        if (idx < 0 || expect(p, T_RP, "')' to close '('") < 0)
            return -1;
    } else if (p->tok.kind == T_IDENT) {
        idx = parse_ident(p);
    } else {
        idx = parse_leaf(p);
    }
    p->loose = false;
    return idx;
}

/* Apply prefix operators (- + not !) read by a loop, innermost (last
 * read) first; ops holds their columns. */
static __attribute__((noinline)) int apply_prefixes(parser_t *p, int x, const ivec_t *ops) {
    for (int i = ops->n - 1; i >= 0 && x >= 0; i--) {
        int col = ops->v[i];
        char c = p->src[col];
        int tx = ntype(p, x);
        int32_t k = x;
        if (c == '-' || c == '+') {
            if (!is_num(tx) && tx != EDDY_TYPE_NULL)
                return fail(p, col, "operator '%c' needs a number, got %s", c, tname(tx));
            if (c == '-')
                x = mk(p, tx == EDDY_TYPE_DOUBLE ? OP_NEG_D : OP_NEG_I, tx, false, col, col, &k, 1);
        } else {
            int len = c == '!' ? 1 : 3;
            if (!boolish(tx))
                return fail(p, col, "operator '%.*s' needs a boolean, got %s", len, p->src + col,
                            tname(tx));
            x = mk(p, OP_NOT, EDDY_TYPE_BOOL, false, col, col, &k, 1);
            p->loose = true;
        }
    }
    return x;
}

/* Unary - and +. A run of prefixes is read by a loop rather than by
 * recursion, so it costs heap instead of stack; each still counts toward
 * the nesting limit. */
static int parse_unary(parser_t *p) {
    if (p->tok.kind != T_MINUS && p->tok.kind != T_PLUS)
        return parse_primary(p);
    ivec_t ops = {0};
    int x = -1, entered = 0;
    while (p->tok.kind == T_MINUS || p->tok.kind == T_PLUS) {
        int col = p->tok.col;
        bool minus = p->tok.kind == T_MINUS;
        next(p);
        /* -9223372036854775808: the only literal that exists just negated */
        if (minus && p->tok.kind == T_INT && !p->tok.ovf &&
            p->tok.ival == (uint64_t)INT64_MAX + 1) {
            next(p);
            p->loose = false;
            x = mk_int(p, INT64_MIN, col);
            goto apply;
        }
        if (enter(p) < 0)
            goto out;
        entered++;
        ivec_push(&ops, col);
    }
    x = parse_primary(p);
apply:
    x = apply_prefixes(p, x, &ops);
out:
    p->nest -= entered;
    ivec_free(&ops);
    return x;
}

static int arith_prec(tok_kind_t k) {
    if (k == T_PLUS || k == T_MINUS)
        return 1;
    return k == T_STAR || k == T_SLASH || k == T_PCT ? 2 : 0;
}

/* + - and * / %, left-associative, by precedence climbing: one function
 * for both levels keeps the frames per nesting level (and so the stack a
 * deep expression needs) down. */
static int parse_arith(parser_t *p, int min_prec) {
    int l = parse_unary(p);
    for (;;) {
        int prec = arith_prec(p->tok.kind);
        if (l < 0 || prec == 0 || prec < min_prec)
            return l;
        optok_t op = optok(p);
        next(p);
        int r = parse_arith(p, prec + 1);
        if (r < 0)
            return -1;
        l = mk_arith(p, &op, l, r);
    }
}

/* `||` after a string is concat (SQL). After anything else it is left for
 * parse_or, which reads it as logical or - or as concat when the right
 * side turns out to be a string. */
static int parse_concat(parser_t *p) {
    int l = parse_arith(p, 1);
    if (l < 0 || p->tok.kind != T_BARS || !is_strlike(ntype(p, l)))
        return l;
    int col = p->tok.col;
    ivec_t parts = {0};
    ivec_push(&parts, l);
    while (p->tok.kind == T_BARS) {
        next(p);
        int r = parse_arith(p, 1);
        if (r < 0) {
            ivec_free(&parts);
            return -1;
        }
        ivec_push(&parts, r);
    }
    int idx = mk(p, OP_CONCAT, EDDY_TYPE_STRING, false, col, N(p, l)->start, parts.v, parts.n);
    ivec_free(&parts);
    p->loose = false;
    return idx;
}

/* x [not] in (a, ...) ; `in` is current. */
static __attribute__((noinline)) int parse_in(parser_t *p, int x, bool neg, int col) {
    next(p);
    if (expect(p, T_LP, "'(' after 'in'") < 0)
        return -1;
    if (p->tok.kind == T_RP)
        return fail(p, p->tok.col, "'in' needs at least one value");
    ivec_t kids = {0};
    ivec_push(&kids, x);
    int dom = -1, idx = -1;
    for (;;) {
        int it = parse_or(p);
        if (it < 0)
            goto out;
        int d = cmp_dom(ntype(p, x), ntype(p, it));
        int j = d < 0 ? -1 : dom < 0 ? d : join_dom(dom, d);
        if (j < 0) {
            fail(p, N(p, it)->start, "'in' cannot compare %s with %s", tname(ntype(p, x)),
                 tname(ntype(p, it)));
            goto out;
        }
        dom = j;
        ivec_push(&kids, it);
        if (p->tok.kind != T_COMMA)
            break;
        next(p);
    }
    if (expect(p, T_RP, "',' or ')' in the 'in' list") < 0)
        goto out;
    idx = add(p,
              (node_t){.op = OP_IN,
                       .type = EDDY_TYPE_BOOL,
                       .dom = (uint8_t)dom,
                       .neg = neg,
                       .col = col,
                       .start = N(p, x)->start},
              kids.v, kids.n);
out:
    ivec_free(&kids);
    return idx;
}

/* x [not] between lo and hi ; `between` is current. */
static __attribute__((noinline)) int parse_between(parser_t *p, int x, bool neg, int col) {
    next(p);
    int lo = parse_concat(p);
    if (lo < 0 || expect_kw(p, "and", "'and' in 'between ... and ...'") < 0)
        return -1;
    int hi = parse_concat(p);
    if (hi < 0)
        return -1;
    int tx = ntype(p, x);
    int d1 = cmp_dom(tx, ntype(p, lo)), d2 = cmp_dom(tx, ntype(p, hi));
    if (d1 < 0 || d2 < 0 || join_dom(d1, d2) < 0) {
        int bad = d1 < 0 ? lo : hi;
        return fail(p, N(p, bad)->start, "'between' cannot compare %s with %s", tname(tx),
                    tname(ntype(p, bad)));
    }
    int32_t kids[3] = {x, lo, hi};
    return add(p,
               (node_t){.op = OP_BETWEEN,
                        .type = EDDY_TYPE_BOOL,
                        .dom = (uint8_t)join_dom(d1, d2),
                        .neg = neg,
                        .col = col,
                        .start = N(p, x)->start},
               kids, 3);
}

static bool at_comparison(const parser_t *p) {
    return is_cmp_tok(p->tok.kind) || kw(p, "is") || kw(p, "in") || kw(p, "between") ||
           kw(p, "not");
}

static int parse_cmp(parser_t *p) {
    int l = parse_concat(p);
    if (l < 0 || !at_comparison(p))
        return l;
    optok_t t = optok(p);
    int idx;
    if (is_cmp_tok(t.kind)) {
        next(p);
        int r = parse_concat(p);
        if (r < 0)
            return -1;
        idx = mk_cmp(p, &t, l, r);
    } else if (kw(p, "is")) {
        next(p);
        bool neg = kw(p, "not");
        if (neg)
            next(p);
        if (expect_kw(p, "null",
                      neg ? "'null' after 'is not'" : "'null' or 'not null' after 'is'") < 0)
            return -1;
        int32_t k = l;
        idx = mk(p, OP_IS_NULL, EDDY_TYPE_BOOL, neg, t.col, N(p, l)->start, &k, 1);
    } else {
        bool neg = kw(p, "not");
        if (neg)
            next(p);
        if (kw(p, "in"))
            idx = parse_in(p, l, neg, t.col);
        else if (kw(p, "between"))
            idx = parse_between(p, l, neg, t.col);
        else
            return fail_expected(p, "'in' or 'between' after 'not'");
    }
    if (idx < 0)
        return -1;
    if (at_comparison(p))
        return fail(p, p->tok.col,
                    "comparisons do not chain: combine them with 'and' (a < b and b < c)");
    p->loose = true;
    return idx;
}

/* not / ! : a run of them is read by a loop, like unary minus. */
static int parse_not(parser_t *p) {
    if (!kw(p, "not") && p->tok.kind != T_BANG)
        return parse_cmp(p);
    ivec_t ops = {0};
    int x = -1, entered = 0;
    while (kw(p, "not") || p->tok.kind == T_BANG) {
        int col = p->tok.col;
        next(p);
        if (enter(p) < 0)
            goto out;
        entered++;
        ivec_push(&ops, col);
    }
    x = parse_cmp(p);
    x = apply_prefixes(p, x, &ops);
out:
    p->nest -= entered;
    ivec_free(&ops);
    return x;
}

static int parse_and(parser_t *p) {
    int l = parse_not(p);
    if (l < 0 || (!kw(p, "and") && p->tok.kind != T_AMPS))
        return l;
    ivec_t ops = {0};
    ivec_push(&ops, l);
    int col = p->tok.col, idx = -1;
    while (kw(p, "and") || p->tok.kind == T_AMPS) {
        optok_t t = optok(p);
        next(p);
        int r = parse_not(p);
        if (r < 0)
            goto out;
        int last = ops.v[ops.n - 1];
        if (!boolish(ntype(p, last)) || !boolish(ntype(p, r))) {
            fail(p, t.col, "operator '%.*s' needs booleans, got %s and %s", t.len, p->src + t.col,
                 tname(ntype(p, last)), tname(ntype(p, r)));
            goto out;
        }
        ivec_push(&ops, r);
    }
    idx = mk(p, OP_AND, EDDY_TYPE_BOOL, false, col, N(p, l)->start, ops.v, ops.n);
    p->loose = true;
out:
    ivec_free(&ops);
    return idx;
}

/*
 * or-chains, and the second reading of `||`. parse_concat took `||` as
 * concat when its left side was a string; otherwise it arrives here as
 * logical or, binding like `or` (so `a > 1 || b < 2` means what a C
 * programmer expects). If one side is nevertheless a string (`id || '-'`),
 * it is concat after all - unless the left side is a comparison or other
 * loose operator, where SQL would have bound differently: that is an
 * error asking for parentheses rather than a silent surprise.
 */
static int parse_or_chain(parser_t *p) {
    int l = parse_and(p);
    if (l < 0 || (!kw(p, "or") && p->tok.kind != T_BARS))
        return l;
    bool last_loose = p->loose;
    ivec_t ops = {0};
    ivec_push(&ops, l);
    int col = p->tok.col, idx = -1;
    while (kw(p, "or") || p->tok.kind == T_BARS) {
        optok_t t = optok(p);
        next(p);
        int r = parse_and(p);
        if (r < 0)
            goto out;
        bool r_loose = p->loose;
        int last = ops.v[ops.n - 1];
        int tl = ntype(p, last), tr = ntype(p, r);
        if (t.kind == T_BARS && (is_strlike(tl) || is_strlike(tr))) {
            if (last_loose || r_loose) {
                fail(p, t.col,
                     "'||' between a comparison and a string: as concat, '||' binds tighter "
                     "than comparisons; add parentheses or use concat()");
                goto out;
            }
            int32_t kids[2] = {last, r};
            int c = mk(p, OP_CONCAT, EDDY_TYPE_STRING, false, t.col, N(p, last)->start, kids, 2);
            if (c < 0)
                goto out;
            ops.v[ops.n - 1] = c;
            last_loose = false;
            continue;
        }
        if (!boolish(tl) || !boolish(tr)) {
            if (t.kind == T_BARS)
                fail(p, t.col,
                     "operator '||' needs booleans (logical or) or a string (concat), got %s "
                     "and %s",
                     tname(tl), tname(tr));
            else
                fail(p, t.col, "operator 'or' needs booleans, got %s and %s", tname(tl), tname(tr));
            goto out;
        }
        ivec_push(&ops, r);
        last_loose = r_loose;
    }
    if (ops.n == 1) {
        idx = ops.v[0];
        p->loose = last_loose;
    } else {
        idx = mk(p, OP_OR, EDDY_TYPE_BOOL, false, col, N(p, l)->start, ops.v, ops.n);
        p->loose = true;
    }
out:
    ivec_free(&ops);
    return idx;
}

static int parse_or(parser_t *p) {
    if (enter(p) < 0)
        return -1;
    int idx = parse_or_chain(p);
    p->nest--;
    return idx;
}

/* ------------------------------------------------------------------- API */

/* Keep only the nodes the root reaches (folding leaves dead children
 * behind), in the same child-before-parent order, and record what the
 * public queries need. */
static void finish(eddy_expr_t *e, int root, const eddy_schema_t *in) {
    int n = e->nnodes;
    uint8_t *live = eddy_calloc((size_t)n, 1);
    int *map = eddy_malloc(sizeof(int) * (size_t)n);
    live[root] = 1;
    int nlive = 0, nkids = 0;
    for (int i = root; i >= 0; i--) {
        if (!live[i])
            continue;
        nlive++;
        nkids += e->nodes[i].nkid;
        for (int k = 0; k < e->nodes[i].nkid; k++)
            live[e->kids[e->nodes[i].kid + k]] = 1;
    }
    node_t *nodes = eddy_malloc(sizeof(node_t) * (size_t)nlive);
    int32_t *kids = eddy_malloc(sizeof(int32_t) * (size_t)(nkids ? nkids : 1));
    int nf = in ? in->nfields : 0;
    uint8_t *used = eddy_calloc((size_t)nf + 1, 1);
    int m = 0, mk = 0;
    e->needs_arena = false;
    for (int i = 0; i <= root; i++) {
        if (!live[i])
            continue;
        node_t nd = e->nodes[i];
        for (int k = 0; k < nd.nkid; k++)
            kids[mk + k] = map[e->kids[nd.kid + k]];
        nd.kid = mk;
        mk += nd.nkid;
        map[i] = m;
        nodes[m++] = nd;
        if (nd.op == OP_FIELD)
            used[nd.field] = 1;
        if (nd.op == OP_LOWER || nd.op == OP_UPPER || nd.op == OP_CONCAT ||
            (nd.op == OP_CAST && is_strlike(nd.type) &&
             (is_num(nd.dom) || nd.dom == EDDY_TYPE_TIMESTAMP)))
            e->needs_arena = true;
    }
    eddy_free(e->nodes);
    eddy_free(e->kids);
    e->nodes = nodes;
    e->kids = kids;
    e->nnodes = m;
    e->nkids = mk;
    e->root = map[root];
    e->type = (eddy_type_t)nodes[e->root].type;
    e->nfields = 0;
    for (int i = 0; i < nf; i++)
        e->nfields += used[i];
    e->fields = eddy_malloc(sizeof(int) * (size_t)(e->nfields ? e->nfields : 1));
    for (int i = 0, j = 0; i < nf; i++)
        if (used[i])
            e->fields[j++] = i;
    eddy_free(used);
    eddy_free(map);
    eddy_free(live);
}

eddy_expr_t *eddy__expr_compile(const char *src, const eddy_schema_t *in, char *errstr,
                                size_t errstr_size, int *err_col) {
    if (err_col)
        *err_col = 0;
    if (!src) {
        eddy__seterr(errstr, errstr_size, "no expression");
        return NULL;
    }
    size_t len = strnlen(src, (size_t)EDDY_EXPR_MAX_LEN + 1);
    if (len > EDDY_EXPR_MAX_LEN) {
        eddy__seterr(errstr, errstr_size, "expression too long (more than %d bytes)",
                     EDDY_EXPR_MAX_LEN);
        if (err_col)
            *err_col = EDDY_EXPR_MAX_LEN;
        return NULL;
    }
    eddy_expr_t *e = eddy_calloc(1, sizeof(*e));
    e->src = eddy_strndup(src, len);
    eddy_arena_init(&e->consts, 1024);
    parser_t p = {.src = e->src, .len = (int)len, .e = e, .in = in};
    next(&p);
    int root = -1;
    if (p.tok.kind == T_END) {
        fail(&p, p.tok.col, "empty expression");
    } else {
        root = parse_or(&p);
        if (root >= 0 && p.tok.kind != T_END) {
            char buf[40];
            fail(&p, p.tok.col, "expected an operator or the end of the expression, got %s",
                 describe(&p, buf, sizeof(buf)));
        }
    }
    if (p.failed) {
        eddy__seterr(errstr, errstr_size, "%s", p.errmsg);
        if (err_col)
            *err_col = p.errcol;
        eddy__expr_destroy(e);
        return NULL;
    }
    finish(e, root, in);
    return e;
}

eddy_type_t eddy__expr_type(const eddy_expr_t *e) {
    return e->type;
}

bool eddy__expr_is_const(const eddy_expr_t *e) {
    return e->nodes[e->root].op == OP_CONST;
}

bool eddy__expr_needs_arena(const eddy_expr_t *e) {
    return e->needs_arena;
}

const char *eddy__expr_source(const eddy_expr_t *e) {
    return e->src;
}

int eddy__expr_field_ref(const eddy_expr_t *e) {
    const node_t *n = &e->nodes[e->root];
    return n->op == OP_FIELD ? n->field : -1;
}

void eddy__expr_eval(const eddy_expr_t *e, const eddy_value_t *row, eddy_arena_t *arena,
                     eddy_value_t *out) {
    get(e, e->root, row, arena, out);
}

bool eddy__expr_eval_bool(const eddy_expr_t *e, const eddy_value_t *row, eddy_arena_t *arena) {
    eddy_value_t v;
    get(e, e->root, row, arena, &v);
    return v.type == EDDY_TYPE_BOOL && v.u.i != 0;
}

void eddy__expr_destroy(eddy_expr_t *e) {
    if (!e)
        return;
    eddy_free(e->nodes);
    eddy_free(e->kids);
    eddy_free(e->fields);
    eddy_free(e->src);
    eddy_arena_free(&e->consts);
    eddy_free(e);
}

int eddy__expr_fields(const eddy_expr_t *e, int *out, int max) {
    for (int i = 0; i < e->nfields && i < max; i++)
        out[i] = e->fields[i];
    return e->nfields;
}
