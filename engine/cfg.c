/*
 * Typed getters over the configuration-node tree, used by the topology
 * compiler. One rule set for every option: absent or null means "use the
 * default" unless required, and every error names the key, says what was
 * expected and what was found, at the position of the offending text.
 *
 * Map getters find the key, apply the null/required rule, then hand the
 * value to the matching node getter (eddy__cfg_node_*) with the label
 * "key 'name'", so a sequence item and a map value are checked by the same
 * code and read the same in messages.
 *
 * Numbers are checked for syntax here before any strtod()/unit parser sees
 * them: strtod() would accept "nan", "inf", "0x10" and leading blanks,
 * none of which is a sensible option value.
 */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <strings.h>

/* Values quoted in messages are cut to this many characters. */
#define QUOTE_MAX 40

bool eddy__cfg_is_null(const eddy_cnode_t *node) {
    if (!node)
        return true;
    if (node->kind != EDDY_CNODE_SCALAR || node->quoted)
        return false;
    const char *s = node->scalar ? node->scalar : "";
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* 'text' (clipped, control characters shown as '?'), "null", "a mapping"
 * or "a sequence": what the user wrote, for "got ..." in messages. */
static const char *describe(const eddy_cnode_t *node, char *buf, size_t size) {
    if (!node || eddy__cfg_is_null(node))
        return "null";
    if (node->kind == EDDY_CNODE_MAP)
        return "a mapping";
    if (node->kind == EDDY_CNODE_SEQ)
        return "a sequence";
    const char *s = node->scalar ? node->scalar : "";
    size_t i = 0, o = 0;
    buf[o++] = '\'';
    for (; s[i] && i < QUOTE_MAX && o + 5 < size; i++)
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (s[i] && o + 5 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '\'';
    buf[o] = 0;
    return buf;
}

static bool is_scalar(const eddy_cnode_t *node) {
    return node && node->kind == EDDY_CNODE_SCALAR && !eddy__cfg_is_null(node);
}

/* "<what>: expected <expected>, got <what the node is>" at the node. */
static eddy_err_t expected(const eddy_cnode_t *node, const char *what, const char *exp,
                           char *errstr, size_t n) {
    char buf[QUOTE_MAX + 8];
    return eddy__cnode_err(node, errstr, n, "%s: expected %s, got %s", what, exp,
                           describe(node, buf, sizeof(buf)));
}

/* ---------------------------------------------------------- node getters */

eddy_err_t eddy__cfg_node_str(const eddy_cnode_t *node, const char *what, const char **out,
                              char *errstr, size_t n) {
    if (!is_scalar(node))
        return expected(node, what, "a string", errstr, n);
    *out = node->scalar;
    return EDDY_OK;
}

/* -?[0-9]+ ; *overflow set when the digits do not fit in an int64_t. */
static bool parse_i64(const char *s, int64_t *out, bool *overflow) {
    bool neg = *s == '-';
    const char *p = neg ? s + 1 : s;
    if (!isdigit((unsigned char)*p))
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, acc = 0;
    *overflow = false;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (acc > (limit - d) / 10)
            *overflow = true;
        else
            acc = acc * 10 + d;
    }
    if (*p)
        return false;
    if (!*overflow)
        *out = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
    return true;
}

static eddy_err_t int_range_err(const eddy_cnode_t *node, const char *what, int64_t min,
                                int64_t max, char *errstr, size_t n) {
    char buf[QUOTE_MAX + 8];
    /* the value as written, without the quotes describe() adds */
    const char *v = describe(node, buf, sizeof(buf));
    int vlen = (int)strlen(v) - 2;
    /* a one-sided bound reads better than a range ending in 2^63 - 1 */
    if (max == INT64_MAX && min != INT64_MIN)
        return eddy__cnode_err(node, errstr, n, "%s: %.*s is out of range: must be >= %" PRId64,
                               what, vlen, v + 1, min);
    if (min == INT64_MIN && max != INT64_MAX)
        return eddy__cnode_err(node, errstr, n, "%s: %.*s is out of range: must be <= %" PRId64,
                               what, vlen, v + 1, max);
    return eddy__cnode_err(node, errstr, n, "%s: %.*s is out of range [%" PRId64 ", %" PRId64 "]",
                           what, vlen, v + 1, min, max);
}

eddy_err_t eddy__cfg_node_int(const eddy_cnode_t *node, const char *what, int64_t min, int64_t max,
                              int64_t *out, char *errstr, size_t n) {
    int64_t v = 0;
    bool overflow = false;
    if (!is_scalar(node) || !parse_i64(node->scalar, &v, &overflow))
        return expected(node, what, "an integer", errstr, n);
    if (overflow || v < min || v > max)
        return int_range_err(node, what, min, max, errstr, n);
    *out = v;
    return EDDY_OK;
}

/* -?(D+(.D*)?|.D+)([eE][-+]?D+)? : what a person writes for a number. */
static bool double_syntax(const char *s) {
    const char *p = s;
    if (*p == '-')
        p++;
    size_t digits = 0;
    for (; isdigit((unsigned char)*p); p++)
        digits++;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits++;
    if (!digits)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    return !*p;
}

eddy_err_t eddy__cfg_node_double(const eddy_cnode_t *node, const char *what, double min, double max,
                                 double *out, char *errstr, size_t n) {
    if (!is_scalar(node) || !double_syntax(node->scalar))
        return expected(node, what, "a number", errstr, n);
    double v = strtod(node->scalar, NULL);
    if (!isfinite(v) || v < min || v > max) {
        char buf[QUOTE_MAX + 8];
        const char *d = describe(node, buf, sizeof(buf));
        return eddy__cnode_err(node, errstr, n, "%s: %.*s is out of range [%g, %g]", what,
                               (int)strlen(d) - 2, d + 1, min, max);
    }
    *out = v;
    return EDDY_OK;
}

eddy_err_t eddy__cfg_node_bool(const eddy_cnode_t *node, const char *what, bool *out, char *errstr,
                               size_t n) {
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    if (is_scalar(node)) {
        for (size_t i = 0; i < 3; i++) {
            if (!strcasecmp(node->scalar, yes[i])) {
                *out = true;
                return EDDY_OK;
            }
            if (!strcasecmp(node->scalar, no[i])) {
                *out = false;
                return EDDY_OK;
            }
        }
    }
    return expected(node, what, "true or false", errstr, n);
}

/* D+(.D*)? or .D+, optional blanks, then letters only: the shape of "10s",
 * "1.5 h", "64MiB". Keeps strtod()'s extras away from the unit parsers. */
static bool unit_syntax(const char *s) {
    const char *p = s;
    size_t digits = 0;
    for (; isdigit((unsigned char)*p); p++)
        digits++;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits++;
    if (!digits)
        return false;
    while (*p == ' ')
        p++;
    while (isalpha((unsigned char)*p))
        p++;
    return !*p;
}

/* One core for durations and sizes: they differ only in parser and words. */
static eddy_err_t unit_value(const eddy_cnode_t *node, const char *what,
                             int (*parse)(const char *, int64_t *), const char *exp,
                             const char *noun, int64_t *out, char *errstr, size_t n) {
    int64_t v;
    if (!is_scalar(node))
        return expected(node, what, exp, errstr, n);
    const char *s = node->scalar;
    if (unit_syntax(s) && parse(s, &v) == 0) {
        *out = v;
        return EDDY_OK;
    }
    if (s[0] == '-' && unit_syntax(s + 1) && parse(s + 1, &v) == 0) {
        char buf[QUOTE_MAX + 8];
        return eddy__cnode_err(node, errstr, n, "%s: %s must be >= 0, got %s", what, noun,
                               describe(node, buf, sizeof(buf)));
    }
    return expected(node, what, exp, errstr, n);
}

eddy_err_t eddy__cfg_node_duration(const eddy_cnode_t *node, const char *what, int64_t *out_ms,
                                   char *errstr, size_t n) {
    int64_t v;
    if (is_scalar(node) && unit_syntax(node->scalar) &&
        eddy__parse_duration_ms(node->scalar, &v) == -2) {
        char buf[QUOTE_MAX + 8];
        return eddy__cnode_err(node, errstr, n,
                               "%s: a duration must be at most 2^61 ms (about 73 million "
                               "years), got %s",
                               what, describe(node, buf, sizeof(buf)));
    }
    return unit_value(node, what, eddy__parse_duration_ms, "a duration like 10s or 500ms",
                      "a duration", out_ms, errstr, n);
}

eddy_err_t eddy__cfg_node_bytes(const eddy_cnode_t *node, const char *what, int64_t *out,
                                char *errstr, size_t n) {
    return unit_value(node, what, eddy__parse_bytes, "a size like 64MiB or 512k", "a size", out,
                      errstr, n);
}

/* "a, b, c" */
static void join(eddy_buf_t *b, const char *const *words) {
    for (int i = 0; words[i]; i++)
        eddy_buf_printf(b, "%s%s", i ? ", " : "", words[i]);
    eddy_buf_putc(b, 0);
}

eddy_err_t eddy__cfg_node_enum(const eddy_cnode_t *node, const char *what,
                               const char *const *choices, int *out_index, char *errstr, size_t n) {
    if (is_scalar(node)) {
        for (int i = 0; choices[i]; i++) {
            if (!strcmp(node->scalar, choices[i])) {
                *out_index = i;
                return EDDY_OK;
            }
        }
    }
    eddy_buf_t list = {0};
    join(&list, choices);
    char buf[QUOTE_MAX + 8];
    eddy_err_t err = eddy__cnode_err(node, errstr, n, "%s: expected one of %s; got %s", what,
                                     list.p, describe(node, buf, sizeof(buf)));
    eddy_buf_free(&list);
    return err;
}

/* ----------------------------------------------------------- map getters */

typedef struct {
    const eddy_cnode_t *val; /* NULL: not present (and not required) */
    char label[128];         /* "key 'name'" */
} slot_t;

/* Find key in map and apply the absent/null/required rule. */
static eddy_err_t slot(const eddy_cnode_t *map, const char *key, bool required, slot_t *s,
                       char *errstr, size_t n) {
    s->val = NULL;
    snprintf(s->label, sizeof(s->label), "key '%s'", key);
    if (map && map->kind != EDDY_CNODE_MAP) {
        char buf[QUOTE_MAX + 8];
        return eddy__cnode_err(map, errstr, n, "expected a mapping with key '%s', got %s", key,
                               describe(map, buf, sizeof(buf)));
    }
    int i = -1;
    for (int k = 0; map && k < map->n; k++) {
        if (!strcmp(map->keys[k], key)) {
            i = k;
            break;
        }
    }
    if (i < 0) {
        if (required)
            return eddy__cnode_err(map, errstr, n, "missing required key '%s'", key);
        return EDDY_OK;
    }
    if (eddy__cfg_is_null(map->items[i])) {
        if (required)
            return eddy__cnode_err(map->key_nodes ? map->key_nodes[i] : map, errstr, n,
                                   "key '%s' needs a value", key);
        return EDDY_OK;
    }
    s->val = map->items[i];
    return EDDY_OK;
}

eddy_err_t eddy__cfg_str(const eddy_cnode_t *map, const char *key, bool required, const char **out,
                         char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_str(s.val, s.label, out, errstr, n);
}

eddy_err_t eddy__cfg_int(const eddy_cnode_t *map, const char *key, bool required, int64_t min,
                         int64_t max, int64_t *out, char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_int(s.val, s.label, min, max, out, errstr, n);
}

eddy_err_t eddy__cfg_double(const eddy_cnode_t *map, const char *key, bool required, double min,
                            double max, double *out, char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_double(s.val, s.label, min, max, out, errstr, n);
}

eddy_err_t eddy__cfg_bool(const eddy_cnode_t *map, const char *key, bool required, bool *out,
                          char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_bool(s.val, s.label, out, errstr, n);
}

eddy_err_t eddy__cfg_duration(const eddy_cnode_t *map, const char *key, bool required,
                              int64_t *out_ms, char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_duration(s.val, s.label, out_ms, errstr, n);
}

eddy_err_t eddy__cfg_bytes(const eddy_cnode_t *map, const char *key, bool required, int64_t *out,
                           char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_bytes(s.val, s.label, out, errstr, n);
}

eddy_err_t eddy__cfg_enum(const eddy_cnode_t *map, const char *key, bool required,
                          const char *const *choices, int *out_index, char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    return eddy__cfg_node_enum(s.val, s.label, choices, out_index, errstr, n);
}

static eddy_err_t get_kind(const eddy_cnode_t *map, const char *key, bool required,
                           eddy_cnode_kind_t kind, eddy_cnode_t **out, char *errstr, size_t n) {
    slot_t s;
    eddy_err_t err = slot(map, key, required, &s, errstr, n);
    if (err || !s.val)
        return err;
    if (s.val->kind != kind)
        return expected(s.val, s.label, kind == EDDY_CNODE_MAP ? "a mapping" : "a sequence", errstr,
                        n);
    *out = (eddy_cnode_t *)s.val; /* borrowed from the caller's tree */
    return EDDY_OK;
}

eddy_err_t eddy__cfg_map(const eddy_cnode_t *map, const char *key, bool required,
                         eddy_cnode_t **out, char *errstr, size_t n) {
    return get_kind(map, key, required, EDDY_CNODE_MAP, out, errstr, n);
}

eddy_err_t eddy__cfg_seq(const eddy_cnode_t *map, const char *key, bool required,
                         eddy_cnode_t **out, char *errstr, size_t n) {
    return get_kind(map, key, required, EDDY_CNODE_SEQ, out, errstr, n);
}

/* ------------------------------------------------------------ key checks */

/* Optimal string alignment distance (Levenshtein plus swapping two
 * neighbours, the commonest typo), or SIZE_MAX when above limit. */
static size_t edit_distance(const char *a, const char *b, size_t limit) {
    size_t la = strlen(a), lb = strlen(b);
    if ((la > lb ? la - lb : lb - la) > limit)
        return SIZE_MAX; /* also keeps a huge word from costing la * lb */
    size_t *rows = eddy_malloc(sizeof(size_t) * 3 * (lb + 1));
    size_t *pp = rows, *prev = rows + lb + 1, *cur = rows + 2 * (lb + 1);
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t d = prev[j - 1] + cost;
            if (prev[j] + 1 < d)
                d = prev[j] + 1;
            if (cur[j - 1] + 1 < d)
                d = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < d)
                d = pp[j - 2] + 1;
            cur[j] = d;
        }
        size_t *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    size_t d = prev[lb];
    eddy_free(rows);
    return d <= limit ? d : SIZE_MAX;
}

const char *eddy__cfg_suggest(const char *word, const char *const *candidates) {
    if (!word || !*word || !candidates)
        return NULL;
    size_t len = strlen(word);
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    /* Replacing every character of a short word is not a typo fix. */
    if (limit >= len)
        limit = len - 1;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (int i = 0; candidates[i]; i++) {
        size_t d = edit_distance(word, candidates[i], limit);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}

eddy_err_t eddy__cfg_check_keys(const eddy_cnode_t *map, const char *what,
                                const char *const *allowed, char *errstr, size_t n) {
    if (!map)
        return EDDY_OK;
    if (map->kind != EDDY_CNODE_MAP)
        return expected(map, what, "a mapping", errstr, n);
    for (int i = 0; i < map->n; i++) {
        const char *key = map->keys[i];
        bool known = false;
        for (int k = 0; allowed[k] && !known; k++)
            known = !strcmp(key, allowed[k]);
        if (known)
            continue;
        const eddy_cnode_t *at = map->key_nodes ? map->key_nodes[i] : map;
        const char *hint = eddy__cfg_suggest(key, allowed);
        eddy_buf_t list = {0};
        join(&list, allowed);
        char buf[QUOTE_MAX + 8];
        eddy_cnode_t tmp = {.kind = EDDY_CNODE_SCALAR, .scalar = (char *)key, .quoted = true};
        const char *shown = describe(&tmp, buf, sizeof(buf)); /* 'key', clipped */
        eddy_err_t err;
        if (hint)
            err = eddy__cnode_err(at, errstr, n,
                                  "unknown key %s in %s (did you mean '%s'?; expected one of: %s)",
                                  shown, what, hint, list.p);
        else
            err = eddy__cnode_err(at, errstr, n, "unknown key %s in %s (expected one of: %s)",
                                  shown, what, list.p);
        eddy_buf_free(&list);
        return err;
    }
    return EDDY_OK;
}

eddy_err_t eddy__cfg_window_advance(const eddy_cnode_t *win, bool hopping, int64_t size,
                                    int64_t *advance, char *errstr, size_t n) {
    *advance = size;
    const eddy_cnode_t *at = eddy__cnode_get(win, "advance");
    if (!hopping)
        return at ? eddy__cnode_err(at, errstr, n, "only hopping windows have an advance")
                  : EDDY_OK;
    eddy_err_t err = eddy__cfg_duration(win, "advance", true, advance, errstr, n);
    if (err)
        return err;
    if (*advance <= 0 || *advance > size || size % *advance)
        return eddy__cnode_err(at, errstr, n,
                               "hopping advance %lldms: must be > 0, at most the size, and "
                               "divide the size (%lldms)",
                               (long long)*advance, (long long)size);
    return EDDY_OK;
}
