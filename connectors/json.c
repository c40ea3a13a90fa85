/*
 * JSON record codec.
 *
 * Encoding runs once per output record of the stdout and file sinks, so it
 * is written by hand against eddy_buf_t: no DOM, no printf for integers
 * (two digits per division from a table), one capacity reservation per
 * string, ASCII runs copied with memcpy and UTF-8 validated inline so the
 * output is valid JSON whatever bytes a string holds. Doubles are the one
 * place printf is used: the shortest of %.15g/%.16g/%.17g that reads back
 * to the same double, then any locale decimal separator turned into '.'.
 *
 * Decoding (the JSON-lines file source) is not hot in the same way, so
 * jansson parses each line into a DOM and the schema drives the lookups.
 * Field names are resolved once, in eddy__json_dec_new(), into a trie of
 * key segments ("a.b.c" -> a -> b -> c), so a line costs one hash lookup
 * per schema path segment and unknown keys cost nothing. Before jansson
 * sees a line a single byte pass rejects raw NUL bytes, invalid UTF-8 (with
 * an exact column) and nesting deeper than EDDY_JSON_MAX_DEPTH: jansson
 * recurses per level (its own limit is 2048), and those are the three
 * ways a hostile line could otherwise get a vague message or a deep stack.
 *
 * Parse flags and why:
 *   JSON_DECODE_ANY        so "top-level value is an array" can be said;
 *   JSON_REJECT_DUPLICATES {"price":1,"price":1000} has no agreed meaning
 *                          (parsers differ on which wins), so it goes to the
 *                          dead letters rather than silently picking one;
 *   JSON_ALLOW_NUL         "\u0000" in a string is legal JSON and eddy
 *                          strings carry a length, so it is kept.
 * Limitation: jansson rejects integer literals outside int64 at parse time
 * ("too big integer") even for a double field; write them as 1e20.
 */
#include "connectors/json.h"

#include <jansson.h>
#include <stdlib.h>

#define PUT_LIT(b, lit) eddy_buf_put((b), (lit), sizeof(lit) - 1)

/* ------------------------------------------------------------ UTF-8 */

/*
 * Length (2..4) of the well-formed UTF-8 sequence starting at p (p[0] >=
 * 0x80), or 0 with *bad set to the length of the maximal ill-formed
 * subpart (>= 1), as Unicode 15 §3.9 "U+FFFD substitution of maximal
 * subparts" prescribes: overlongs, surrogates and > U+10FFFF are rejected
 * at the second byte.
 */
static inline int utf8_seq(const unsigned char *p, const unsigned char *end, size_t *bad) {
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    int n;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong */
        else if (c == 0xF4)
            hi = 0x8F; /* > U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    size_t avail = (size_t)(end - p);
    if (avail < 2 || p[1] < lo || p[1] > hi) {
        *bad = 1;
        return 0;
    }
    for (int i = 2; i < n; i++) {
        if ((size_t)i >= avail || (p[i] & 0xC0) != 0x80) {
            *bad = (size_t)i;
            return 0;
        }
    }
    return n;
}

/* Largest cut <= n that does not split a UTF-8 character of s[0..len). */
static size_t utf8_cut(const char *s, size_t len, size_t n) {
    if (n >= len)
        return len;
    /* Back off over at most 3 continuation bytes: enough for any valid
     * character, and binary garbage does not make us eat the buffer. */
    for (int i = 0; i < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; i++)
        n--;
    return n;
}

/* ----------------------------------------------------------- encoder */

/* 0: copy as is; 1: ASCII that needs an escape; 2: non-ASCII, validate. */
static const unsigned char json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xA0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xB0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xC0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xD0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xE0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xF0 */
};

static const char hex_digits[] = "0123456789abcdef";

/* Write the escape of an ASCII byte that needs one; returns its length. */
static inline size_t put_escape(char *w, unsigned char c) {
    w[0] = '\\';
    switch (c) {
    case '"':
        w[1] = '"';
        return 2;
    case '\\':
        w[1] = '\\';
        return 2;
    case '\b':
        w[1] = 'b';
        return 2;
    case '\f':
        w[1] = 'f';
        return 2;
    case '\n':
        w[1] = 'n';
        return 2;
    case '\r':
        w[1] = 'r';
        return 2;
    case '\t':
        w[1] = 't';
        return 2;
    default:
        memcpy(w + 1, "u00", 3);
        w[4] = hex_digits[c >> 4];
        w[5] = hex_digits[c & 15];
        return 6;
    }
}

/*
 * Bit 7 of each byte of the result is set where the byte of w needs a look
 * (< 0x20, '"', '\\', or >= 0x80). Bytes above a true hit may be flagged
 * falsely (borrows run upward), never bytes below it, so on little-endian
 * the lowest flag is exact.
 */
static inline uint64_t swar_special(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t ctl = (w - ones * 0x20) & ~w;                  /* byte < 0x20 */
    uint64_t esc = ((q - ones) & ~q) | ((bs - ones) & ~bs); /* byte == '"' or '\\' */
    return (ctl | esc | w) & high;
}

void eddy__json_encode_str(eddy_buf_t *out, const char *s, size_t len) {
    if (!s) {
        s = "";
        len = 0;
    }
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    /* Invariant: there is room for (end - p) + 1 more bytes at w, i.e. the
     * rest copied unescaped plus the closing quote. One reservation covers
     * a string with nothing to escape; each escape re-checks the room. */
    if (out->len + len + 2 > out->cap)
        eddy_buf_reserve(out, len + 2);
    char *w = out->p + out->len;
    *w++ = '"';
    while (p < end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* Plain ASCII (most text) is copied 8 bytes at a time. */
        if (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            memcpy(w, &word, 8); /* room: end - p >= 8 */
            uint64_t m = swar_special(word);
            if (!m) {
                p += 8;
                w += 8;
                continue;
            }
            size_t k = (size_t)__builtin_ctzll(m) >> 3;
            p += k;
            w += k;
        }
#endif
        unsigned char c = *p, cls = json_esc[c];
        if (eddy_likely(cls == 0)) {
            *w++ = (char)*p++;
            continue;
        }
        if (cls == 2) {
            size_t bad;
            int n = utf8_seq(p, end, &bad);
            if (eddy_likely(n)) {
                memcpy(w, p, (size_t)n);
                w += n;
                p += n;
                continue;
            }
            p += bad;
        } else {
            p++;
        }
        /* An escape: up to 6 bytes for what took >= 1 of the room. */
        size_t used = (size_t)(w - out->p);
        if (used + 6 + (size_t)(end - p) + 1 > out->cap) {
            out->len = used;
            eddy_buf_reserve(out, 6 + (size_t)(end - p) + 1);
            w = out->p + used;
        }
        if (cls == 2) {
            memcpy(w, "\\ufffd", 6);
            w += 6;
        } else {
            w += put_escape(w, c);
        }
    }
    *w++ = '"';
    out->len = (size_t)(w - out->p);
}

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

void eddy__json_encode_int(eddy_buf_t *out, int64_t v) {
    char tmp[24];
    char *end = tmp + sizeof(tmp), *p = end;
    /* Negate in unsigned arithmetic: INT64_MIN has no positive twin. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (u >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * u, 2);
    } else {
        *--p = (char)('0' + u);
    }
    if (v < 0)
        *--p = '-';
    eddy_buf_put(out, p, (size_t)(end - p));
}

/* Shortest %.Ng text of a finite d that reads back to d, with '.' as the
 * decimal point and a ".0" when it would otherwise read as an integer.
 * buf holds >= 40 bytes. Returns the length. */
static size_t fmt_double(char *buf, size_t size, double d) {
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, d);
        /* strtod follows the same locale as snprintf, so compare first
         * and fix the decimal point after. */
        if (prec == 17 || strtod(buf, NULL) == d)
            break;
    }
    if (n < 0 || (size_t)n >= size)
        n = (int)size - 1; /* cannot happen for %.17g in 40 bytes */
    size_t w = 0;
    bool point = false;
    for (int r = 0; r < n; r++) {
        char c = buf[r];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            buf[w++] = c;
        } else if (w == 0 || buf[w - 1] != '.') {
            /* a locale's (possibly multi-byte) decimal separator */
            buf[w++] = '.';
            point = true;
        }
        if (c == 'e')
            point = true; /* 1e+20 is a real already */
    }
    if (!point) {
        buf[w++] = '.';
        buf[w++] = '0';
    }
    buf[w] = 0;
    return w;
}

void eddy__json_encode_double(eddy_buf_t *out, double d) {
    if (eddy_unlikely(d != d || d - d != 0)) { /* NaN or +-Inf: JSON has none */
        PUT_LIT(out, "null");
        return;
    }
    char tmp[48];
    size_t n = fmt_double(tmp, sizeof(tmp), d);
    eddy_buf_put(out, tmp, n);
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void encode_base64(eddy_buf_t *out, const unsigned char *s, size_t len) {
    eddy_buf_reserve(out, (len + 2) / 3 * 4 + 2);
    char *w = out->p + out->len;
    *w++ = '"';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *w++ = b64_alphabet[v >> 18];
        *w++ = b64_alphabet[(v >> 12) & 63];
        *w++ = b64_alphabet[(v >> 6) & 63];
        *w++ = b64_alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        *w++ = b64_alphabet[v >> 18];
        *w++ = b64_alphabet[(v >> 12) & 63];
        *w++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w++ = '"';
    out->len = (size_t)(w - out->p);
}

static void encode_value(eddy_buf_t *out, const eddy_value_t *v) {
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_BOOL:
        if (v->u.i)
            PUT_LIT(out, "true");
        else
            PUT_LIT(out, "false");
        return;
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        eddy__json_encode_int(out, v->u.i);
        return;
    case EDDY_TYPE_DOUBLE:
        eddy__json_encode_double(out, v->u.d);
        return;
    case EDDY_TYPE_STRING:
        eddy__json_encode_str(out, v->u.s, v->len);
        return;
    case EDDY_TYPE_BYTES:
        encode_base64(out, (const unsigned char *)v->u.s, v->u.s ? v->len : 0);
        return;
    case EDDY_TYPE_NULL:
        break;
    }
    /* NULL, and (defensively) an unknown type tag: a sink must not crash
     * or emit invalid JSON because of one bad value. */
    PUT_LIT(out, "null");
}

void eddy__json_encode_row(eddy_buf_t *out, const eddy_schema_t *schema, const eddy_value_t *vals) {
    eddy_buf_putc(out, '{');
    for (int i = 0; i < schema->nfields; i++) {
        const char *name = schema->fields[i].name;
        if (i)
            eddy_buf_putc(out, ',');
        eddy__json_encode_str(out, name, strlen(name));
        eddy_buf_putc(out, ':');
        encode_value(out, &vals[i]);
    }
    eddy_buf_putc(out, '}');
}

size_t eddy_record_to_json(const eddy_record_t *rec, char *buf, size_t buf_size) {
    if (!rec || !rec->schema || (!rec->values && rec->schema->nfields > 0)) {
        if (buf && buf_size)
            buf[0] = 0;
        return 0;
    }
    /* The public entry point allocates a scratch buffer per call; the
     * sinks use eddy__json_encode_row() on a buffer they keep. */
    eddy_buf_t b = {NULL, 0, 0};
    eddy__json_encode_row(&b, rec->schema, rec->values);
    size_t need = b.len;
    if (buf && buf_size) {
        size_t n = need < buf_size ? need : utf8_cut(b.p, b.len, buf_size - 1);
        memcpy(buf, b.p, n);
        buf[n] = 0;
    }
    eddy_buf_free(&b);
    return need;
}

/* ------------------------------------------------------------ dead letter */

void eddy__json_dead_letter(eddy_buf_t *out, const char *reason, const char *source,
                            int32_t partition, int64_t offset, const char *raw, size_t raw_len,
                            size_t max_raw) {
    if (!raw)
        raw_len = 0;
    size_t n = raw_len > max_raw ? utf8_cut(raw, raw_len, max_raw) : raw_len;
    PUT_LIT(out, "{\"reason\":");
    if (reason)
        eddy__json_encode_str(out, reason, strlen(reason));
    else
        PUT_LIT(out, "null");
    PUT_LIT(out, ",\"source\":");
    if (source)
        eddy__json_encode_str(out, source, strlen(source));
    else
        PUT_LIT(out, "null");
    PUT_LIT(out, ",\"partition\":");
    eddy__json_encode_int(out, partition);
    PUT_LIT(out, ",\"offset\":");
    eddy__json_encode_int(out, offset);
    PUT_LIT(out, ",\"raw\":");
    eddy__json_encode_str(out, raw, n);
    if (n < raw_len)
        PUT_LIT(out, ",\"raw_truncated\":true}");
    else
        PUT_LIT(out, ",\"raw_truncated\":false}");
}

/* ------------------------------------------------------ ISO-8601 times */

static bool take_digits(const char *s, size_t len, size_t *i, int count, int *out) {
    int v = 0;
    for (int k = 0; k < count; k++) {
        if (*i >= len || s[*i] < '0' || s[*i] > '9')
            return false;
        v = v * 10 + (s[(*i)++] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m) {
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int eddy__json_parse_iso8601(const char *s, size_t len, int64_t *ms, const char **why) {
    size_t i = 0;
    int y, mo, da, h = 0, mi = 0, se = 0, frac_ms = 0, off_min = 0;
    if (!take_digits(s, len, &i, 4, &y) || i >= len || s[i++] != '-' ||
        !take_digits(s, len, &i, 2, &mo) || i >= len || s[i++] != '-' ||
        !take_digits(s, len, &i, 2, &da)) {
        *why = "expected a date YYYY-MM-DD";
        return -1;
    }
    if (mo < 1 || mo > 12) {
        *why = "month out of range";
        return -1;
    }
    if (da < 1 || da > days_in_month(y, mo)) {
        *why = "day out of range for the month";
        return -1;
    }
    if (i < len) {
        if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') {
            *why = "expected 'T' between date and time";
            return -1;
        }
        i++;
        if (!take_digits(s, len, &i, 2, &h) || i >= len || s[i++] != ':' ||
            !take_digits(s, len, &i, 2, &mi)) {
            *why = "expected a time HH:MM[:SS]";
            return -1;
        }
        if (i < len && s[i] == ':') {
            i++;
            if (!take_digits(s, len, &i, 2, &se)) {
                *why = "expected seconds SS after HH:MM:";
                return -1;
            }
            if (i < len && (s[i] == '.' || s[i] == ',')) {
                i++;
                size_t start = i;
                int scale = 100;
                for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
                    frac_ms += (s[i] - '0') * scale; /* digits past ms truncated */
                    scale /= 10;
                }
                if (i == start) {
                    *why = "expected digits after the decimal point";
                    return -1;
                }
            }
        }
        if (h > 23 || mi > 59 || se > 60) { /* 60: leap second */
            *why = "time of day out of range";
            return -1;
        }
        if (i < len) {
            if (s[i] == 'Z' || s[i] == 'z') {
                i++;
            } else if (s[i] == '+' || s[i] == '-') {
                int sign = s[i++] == '-' ? -1 : 1, oh, om = 0;
                if (!take_digits(s, len, &i, 2, &oh)) {
                    *why = "expected an offset +HH:MM";
                    return -1;
                }
                if (i < len && s[i] == ':') {
                    i++;
                    if (!take_digits(s, len, &i, 2, &om)) {
                        *why = "expected an offset +HH:MM";
                        return -1;
                    }
                } else if (i < len && !take_digits(s, len, &i, 2, &om)) {
                    *why = "expected an offset +HH:MM";
                    return -1;
                }
                if (oh > 23 || om > 59) {
                    *why = "offset out of range";
                    return -1;
                }
                off_min = sign * (oh * 60 + om);
            }
        }
    }
    if (i != len) {
        *why = "unexpected text after the timestamp";
        return -1;
    }
    int64_t days = days_from_civil(y, mo, da);
    int64_t sec = ((days * 24 + h) * 60 + mi - off_min) * 60 + se;
    *ms = sec * 1000 + frac_ms;
    return 0;
}

/* ----------------------------------------------------------- decoder */

typedef struct dec_field_s {
    char *name;
    size_t name_len;
    eddy_type_t type;
    bool nullable;
    bool dotted; /* name has a '.': also try it as one literal key */
} dec_field_t;

/* One key segment of a schema path. Children are in schema order. */
typedef struct dec_node_s {
    char *path;     /* dotted path from the root to here (owned) */
    size_t seg_off; /* this node's key is path[seg_off .. seg_off+seg_len) */
    size_t seg_len;
    int field; /* schema index whose full name ends here, or -1 */
    int child, sibling, last_child;
} dec_node_t;

struct eddy_json_dec_s {
    int nfields;
    dec_field_t *fields;
    int nnodes;
    dec_node_t *nodes; /* nodes[0] is the root (the top-level object) */
};

eddy_json_dec_t *eddy__json_dec_new(const eddy_schema_t *schema) {
    eddy_json_dec_t *d = eddy_calloc(1, sizeof(*d));
    d->nfields = schema->nfields;
    d->fields = eddy_calloc((size_t)(d->nfields ? d->nfields : 1), sizeof(*d->fields));
    size_t cap = 1;
    for (int i = 0; i < schema->nfields; i++) {
        const char *name = schema->fields[i].name;
        dec_field_t *f = &d->fields[i];
        f->name = eddy_strdup(name);
        f->name_len = strlen(name);
        f->type = schema->fields[i].type;
        f->nullable = schema->fields[i].nullable;
        f->dotted = strchr(name, '.') != NULL;
        cap += 1;
        for (const char *c = name; *c; c++)
            cap += *c == '.';
    }
    d->nodes = eddy_calloc(cap, sizeof(*d->nodes));
    d->nodes[0] = (dec_node_t){
        .path = eddy_strdup(""), .field = -1, .child = -1, .sibling = -1, .last_child = -1};
    d->nnodes = 1;
    for (int i = 0; i < d->nfields; i++) {
        const char *name = d->fields[i].name;
        size_t off = 0, len = d->fields[i].name_len;
        int cur = 0;
        for (;;) {
            const char *dot = memchr(name + off, '.', len - off);
            size_t seg_end = dot ? (size_t)(dot - name) : len;
            int c = d->nodes[cur].child;
            for (; c >= 0; c = d->nodes[c].sibling)
                if (d->nodes[c].seg_len == seg_end - off &&
                    !memcmp(d->nodes[c].path + d->nodes[c].seg_off, name + off, seg_end - off))
                    break;
            if (c < 0) {
                eddy_assert((size_t)d->nnodes < cap);
                c = d->nnodes++;
                d->nodes[c] = (dec_node_t){.path = eddy_strndup(name, seg_end),
                                           .seg_off = off,
                                           .seg_len = seg_end - off,
                                           .field = -1,
                                           .child = -1,
                                           .sibling = -1,
                                           .last_child = -1};
                if (d->nodes[cur].last_child >= 0)
                    d->nodes[d->nodes[cur].last_child].sibling = c;
                else
                    d->nodes[cur].child = c;
                d->nodes[cur].last_child = c;
            }
            cur = c;
            if (!dot)
                break;
            off = seg_end + 1;
        }
        if (d->nodes[cur].field < 0)
            d->nodes[cur].field = i;
    }
    return d;
}

void eddy__json_dec_destroy(eddy_json_dec_t *d) {
    if (!d)
        return;
    for (int i = 0; i < d->nfields; i++)
        eddy_free(d->fields[i].name);
    for (int i = 0; i < d->nnodes; i++)
        eddy_free(d->nodes[i].path);
    eddy_free(d->fields);
    eddy_free(d->nodes);
    eddy_free(d);
}

/* Marks a value slot not (yet) filled by this line. */
#define VAL_UNSET 0xFF

typedef struct dec_ctx_s {
    const eddy_json_dec_t *d;
    eddy_arena_t *arena;
    eddy_value_t *vals;
    char *reason;
    size_t reason_size;
    bool all_nullable; /* EDDY_JSON_ALL_NULLABLE */
} dec_ctx_t;

/* What a value is, for messages: string "abc", number 1.5, true, an array. */
static void describe(const json_t *v, char *buf, size_t size) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        snprintf(buf, size, "an object");
        return;
    case JSON_ARRAY:
        snprintf(buf, size, "an array");
        return;
    case JSON_TRUE:
        snprintf(buf, size, "true");
        return;
    case JSON_FALSE:
        snprintf(buf, size, "false");
        return;
    case JSON_NULL:
        snprintf(buf, size, "null");
        return;
    case JSON_INTEGER:
        snprintf(buf, size, "number %lld", (long long)json_integer_value(v));
        return;
    case JSON_REAL: {
        char tmp[48];
        fmt_double(tmp, sizeof(tmp), json_real_value(v));
        snprintf(buf, size, "number %s", tmp);
        return;
    }
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v), cut = utf8_cut(s, len, 40);
        eddy_buf_t b = {NULL, 0, 0};
        eddy__json_encode_str(&b, s, cut);
        if (cut < len) {
            b.len--; /* reopen the quote for the ellipsis */
            PUT_LIT(&b, "...\"");
        }
        snprintf(buf, size, "string %.*s", (int)b.len, b.p);
        eddy_buf_free(&b);
        return;
    }
    }
    snprintf(buf, size, "?");
}

static eddy_err_t type_error(dec_ctx_t *cx, const dec_field_t *f, const char *expected,
                             const json_t *v) {
    char got[128];
    describe(v, got, sizeof(got));
    eddy__seterr(cx->reason, cx->reason_size, "field '%s': expected %s, got %s", f->name, expected,
                 got);
    return EDDY_ERR_DECODE;
}

/* JSON number -> int64 for int and timestamp fields: integers as they are,
 * reals only when integral and in range. */
static eddy_err_t number_to_i64(dec_ctx_t *cx, const dec_field_t *f, const char *expected,
                                const json_t *v, int64_t *out) {
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return EDDY_OK;
    }
    double x = json_real_value(v);
    /* 2^63 is exact as a double; the range test precedes the cast (UB). */
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0)) {
        char tmp[48];
        fmt_double(tmp, sizeof(tmp), x);
        eddy__seterr(cx->reason, cx->reason_size,
                     "field '%s': number %s is out of range for %s (64-bit)", f->name, tmp,
                     eddy_type2str(f->type));
        return EDDY_ERR_DECODE;
    }
    int64_t i = (int64_t)x;
    if ((double)i != x)
        return type_error(cx, f, expected, v);
    *out = i;
    return EDDY_OK;
}

static const signed char b64_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62,
    -1, -1, -1, 63,                                                 /* + / */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, /* 0-9 */
    -1, 0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, /* A-O */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1, /* P-Z */
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* a-o */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1, /* p-z */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* Standard alphabet; the '=' padding may be omitted. */
static eddy_err_t decode_base64(dec_ctx_t *cx, const dec_field_t *f, const char *s, size_t len,
                                eddy_value_t *out) {
    size_t n = len;
    int pads = 0;
    while (n > 0 && s[n - 1] == '=' && pads < 2) {
        n--;
        pads++;
    }
    if ((pads && len % 4 != 0) || n % 4 == 1) {
        eddy__seterr(cx->reason, cx->reason_size,
                     "field '%s': invalid base64: length %zu is not a valid encoded length",
                     f->name, len);
        return EDDY_ERR_DECODE;
    }
    size_t out_len = n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0);
    if (out_len > UINT32_MAX) {
        eddy__seterr(cx->reason, cx->reason_size, "field '%s': %zu bytes is too long", f->name,
                     out_len);
        return EDDY_ERR_DECODE;
    }
    unsigned char *w = eddy_arena_alloc(cx->arena, out_len + 1);
    out->u.s = (const char *)w;
    out->len = (uint32_t)out_len;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_values[(unsigned char)s[i]];
        if (v < 0) {
            unsigned char c = (unsigned char)s[i];
            if (c >= 0x20 && c < 0x7F)
                eddy__seterr(cx->reason, cx->reason_size,
                             "field '%s': invalid base64: character '%c' at offset %zu", f->name, c,
                             i);
            else
                eddy__seterr(cx->reason, cx->reason_size,
                             "field '%s': invalid base64: byte 0x%02x at offset %zu", f->name, c,
                             i);
            return EDDY_ERR_DECODE;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *w++ = (unsigned char)(acc >> bits);
        }
    }
    *w = 0;
    return EDDY_OK;
}

static eddy_err_t set_field(dec_ctx_t *cx, int fi, const json_t *v) {
    const dec_field_t *f = &cx->d->fields[fi];
    eddy_value_t *out = &cx->vals[fi];
    if (json_is_null(v)) {
        if (!f->nullable && !cx->all_nullable) {
            eddy__seterr(cx->reason, cx->reason_size,
                         "missing field '%s' (null, and the field is not nullable)", f->name);
            return EDDY_ERR_DECODE;
        }
        out->type = EDDY_TYPE_NULL;
        return EDDY_OK;
    }
    eddy_err_t err;
    switch (f->type) {
    case EDDY_TYPE_NULL:
        break;
    case EDDY_TYPE_BOOL:
        if (!json_is_boolean(v))
            return type_error(cx, f, "boolean (true or false)", v);
        out->u.i = json_is_true(v);
        break;
    case EDDY_TYPE_INT:
        if (!json_is_number(v))
            return type_error(cx, f, "int", v);
        if ((err = number_to_i64(cx, f, "int", v, &out->u.i)))
            return err;
        break;
    case EDDY_TYPE_DOUBLE:
        if (!json_is_number(v))
            return type_error(cx, f, "double", v);
        out->u.d = json_number_value(v);
        break;
    case EDDY_TYPE_TIMESTAMP: {
        static const char exp_ts[] = "timestamp (ms since epoch or ISO-8601)";
        if (json_is_number(v)) {
            if ((err = number_to_i64(cx, f, exp_ts, v, &out->u.i)))
                return err;
        } else if (json_is_string(v)) {
            const char *why = NULL;
            if (eddy__json_parse_iso8601(json_string_value(v), json_string_length(v), &out->u.i,
                                         &why) < 0) {
                char got[128];
                describe(v, got, sizeof(got));
                eddy__seterr(cx->reason, cx->reason_size, "field '%s': expected %s, got %s: %s",
                             f->name, exp_ts, got, why);
                return EDDY_ERR_DECODE;
            }
        } else {
            return type_error(cx, f, exp_ts, v);
        }
        break;
    }
    case EDDY_TYPE_STRING:
        if (json_is_string(v)) {
            size_t len = json_string_length(v);
            if (len > UINT32_MAX) {
                eddy__seterr(cx->reason, cx->reason_size,
                             "field '%s': string of %zu bytes is too long", f->name, len);
                return EDDY_ERR_DECODE;
            }
            out->u.s = eddy_arena_strndup(cx->arena, json_string_value(v), len);
            out->len = (uint32_t)len;
        } else if (json_is_array(v) || json_is_object(v)) {
            /* Kept as compact JSON text, for the user to take apart later. */
            size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
            size_t len = json_dumpb(v, NULL, 0, flags);
            if (len == 0 || len > UINT32_MAX) {
                eddy__seterr(cx->reason, cx->reason_size,
                             "field '%s': cannot keep the value as JSON text", f->name);
                return EDDY_ERR_DECODE;
            }
            char *p = eddy_arena_alloc(cx->arena, len + 1);
            json_dumpb(v, p, len, flags);
            p[len] = 0;
            out->u.s = p;
            out->len = (uint32_t)len;
        } else {
            return type_error(cx, f, "string", v);
        }
        break;
    case EDDY_TYPE_BYTES:
        if (!json_is_string(v))
            return type_error(cx, f, "bytes (a base64 string)", v);
        if ((err = decode_base64(cx, f, json_string_value(v), json_string_length(v), out)))
            return err;
        break;
    default:
        eddy__seterr(cx->reason, cx->reason_size, "field '%s': unsupported type %d", f->name,
                     (int)f->type);
        return EDDY_ERR_DECODE;
    }
    out->type = (uint8_t)f->type;
    return EDDY_OK;
}

static eddy_err_t walk(dec_ctx_t *cx, int node, const json_t *obj) {
    const eddy_json_dec_t *d = cx->d;
    for (int c = d->nodes[node].child; c >= 0; c = d->nodes[c].sibling) {
        const dec_node_t *n = &d->nodes[c];
        json_t *v = json_object_getn(obj, n->path + n->seg_off, n->seg_len);
        if (!v)
            continue;
        eddy_err_t err;
        if (n->field >= 0 && (err = set_field(cx, n->field, v)))
            return err;
        if (n->child < 0)
            continue;
        if (json_is_object(v)) {
            if ((err = walk(cx, c, v)))
                return err;
        } else if (n->field < 0 && !json_is_null(v)) {
            /* A path "a.b" in the schema but "a" is not an object. */
            int leaf = n->child;
            while (d->nodes[leaf].field < 0)
                leaf = d->nodes[leaf].child;
            char got[128];
            describe(v, got, sizeof(got));
            eddy__seterr(cx->reason, cx->reason_size,
                         "field '%s': expected an object (holding '%s'), got %s", n->path,
                         d->fields[d->nodes[leaf].field].name, got);
            return EDDY_ERR_DECODE;
        }
    }
    return EDDY_OK;
}

/*
 * One pass over the raw bytes before jansson: raw NUL, invalid UTF-8 and
 * excessive nesting get a precise column (1-based, in characters, as
 * jansson counts), and an empty line a plain message.
 */
static eddy_err_t prescan(const char *line, size_t len, char *reason, size_t reason_size) {
    const unsigned char *p = (const unsigned char *)line, *end = p + len;
    size_t col = 0;
    int depth = 0;
    bool in_str = false, esc = false, any = false;
    while (p < end) {
        unsigned char c = *p;
        col++;
        if (eddy_unlikely(c >= 0x80)) {
            size_t bad;
            int n = utf8_seq(p, end, &bad);
            if (!n) {
                eddy__seterr(reason, reason_size,
                             "invalid UTF-8 at column %zu (byte 0x%02x); JSON text must be "
                             "UTF-8",
                             col, c);
                return EDDY_ERR_DECODE;
            }
            p += n;
            any = true;
            esc = false;
            continue;
        }
        p++;
        if (eddy_unlikely(c == 0)) {
            eddy__seterr(reason, reason_size,
                         "NUL byte at column %zu; a raw NUL is not allowed (inside a string "
                         "write \\u0000)",
                         col);
            return EDDY_ERR_DECODE;
        }
        if (in_str) {
            if (esc)
                esc = false;
            else if (c == '\\')
                esc = true;
            else if (c == '"')
                in_str = false;
            continue;
        }
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
            continue;
        case '"':
            in_str = true;
            break;
        case '{':
        case '[':
            if (++depth > EDDY_JSON_MAX_DEPTH) {
                eddy__seterr(reason, reason_size, "nesting deeper than %d levels at column %zu",
                             EDDY_JSON_MAX_DEPTH, col);
                return EDDY_ERR_DECODE;
            }
            break;
        case '}':
        case ']':
            depth--; /* unbalanced input is left to jansson to report */
            break;
        default:
            break;
        }
        any = true;
    }
    if (!any) {
        eddy__seterr(reason, reason_size, "empty line; expected a JSON object");
        return EDDY_ERR_DECODE;
    }
    return EDDY_OK;
}

const char *eddy__json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
        return "true";
    case JSON_FALSE:
        return "false";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

eddy_err_t eddy__json_parse(const char *line, size_t len, json_t **root, char *reason,
                           size_t reason_size) {
    if (!line)
        len = 0;
    eddy_err_t err = prescan(line ? line : "", len, reason, reason_size);
    if (err)
        return err;

    json_error_t jerr;
    json_t *r =
        json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!r) {
        char where[48];
        if (jerr.line > 1)
            snprintf(where, sizeof(where), "line %d column %d", jerr.line, jerr.column);
        else
            snprintf(where, sizeof(where), "column %d", jerr.column);
        switch (json_error_code(&jerr)) {
        case json_error_invalid_utf8:
            eddy__seterr(reason, reason_size, "invalid UTF-8 at %s: %s", where, jerr.text);
            break;
        case json_error_numeric_overflow:
            eddy__seterr(reason, reason_size,
                         "invalid JSON at %s: %s (integers must fit in 64 bits)", where, jerr.text);
            break;
        default:
            eddy__seterr(reason, reason_size, "invalid JSON at %s: %s", where, jerr.text);
            break;
        }
        return EDDY_ERR_DECODE;
    }
    if (!json_is_object(r)) {
        eddy__seterr(reason, reason_size, "top-level value is %s, expected an object",
                     eddy__json_kind(r));
        json_decref(r);
        return EDDY_ERR_DECODE;
    }
    *root = r;
    return EDDY_OK;
}

eddy_err_t eddy__json_decode_object(const eddy_json_dec_t *d, const json_t *obj, unsigned flags,
                                    eddy_arena_t *arena, eddy_value_t *vals, char *reason,
                                    size_t reason_size) {
    dec_ctx_t cx = {d, arena, vals, reason, reason_size, (flags & EDDY_JSON_ALL_NULLABLE) != 0};
    for (int i = 0; i < d->nfields; i++)
        vals[i].type = VAL_UNSET;
    eddy_err_t err = walk(&cx, 0, obj);
    for (int i = 0; !err && i < d->nfields; i++) {
        if (vals[i].type != VAL_UNSET)
            continue;
        const dec_field_t *f = &d->fields[i];
        const json_t *v = f->dotted ? json_object_getn(obj, f->name, f->name_len) : NULL;
        if (v) {
            err = set_field(&cx, i, v);
        } else if (f->nullable || cx.all_nullable || f->type == EDDY_TYPE_NULL) {
            vals[i].type = EDDY_TYPE_NULL;
        } else {
            eddy__seterr(reason, reason_size, "missing field '%s'", f->name);
            err = EDDY_ERR_DECODE;
        }
    }
    return err;
}

eddy_err_t eddy__json_decode(eddy_json_dec_t *d, const char *line, size_t len, eddy_arena_t *arena,
                             eddy_value_t *vals, char *reason, size_t reason_size) {
    json_t *root = NULL;
    eddy_err_t err = eddy__json_parse(line, len, &root, reason, reason_size);
    if (err)
        return err;
    err = eddy__json_decode_object(d, root, 0, arena, vals, reason, reason_size);
    json_decref(root);
    return err;
}
