/*
 * The row codec of store values (format in row.h).
 *
 * It runs on every state update (decode, change, encode), so both
 * directions avoid per-byte bounds checks where they can: encoding
 * reserves the row's worst case once and writes into the buffer directly;
 * decoding takes a varint without checks when at least 10 bytes remain
 * (the longest varint), and the checked loop only near the end of the
 * input. The format is unchanged by either.
 */
#include "row.h"

#define VARINT_MAX 10

/* Write v at p (room for VARINT_MAX bytes); returns the bytes written. */
static inline size_t varint_write(char *p, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (char)v;
    return n;
}

void eddy__varint_put(eddy_buf_t *out, uint64_t v) {
    eddy_buf_reserve(out, VARINT_MAX);
    out->len += varint_write(out->p + out->len, v);
}

/* At least VARINT_MAX readable bytes at p. */
static inline size_t varint_read_unchecked(const char *p, uint64_t *v) {
    const uint8_t *q = (const uint8_t *)p;
    uint64_t r = q[0];
    if (eddy_likely(r < 0x80)) {
        *v = r;
        return 1;
    }
    r &= 0x7f;
    for (size_t i = 1; i < VARINT_MAX; i++) {
        uint64_t b = q[i];
        r |= (b & 0x7f) << (7 * i);
        if (b < 0x80) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

/* Inlined into the row walker, so that stepping over an integer does not
 * assemble its value. */
static inline __attribute__((always_inline)) size_t varint_get(const char *p, size_t n,
                                                                uint64_t *v) {
    if (eddy_likely(n >= VARINT_MAX))
        return varint_read_unchecked(p, v);
    uint64_t r = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)p[i];
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

size_t eddy__varint_get(const char *p, size_t n, uint64_t *v) { return varint_get(p, n, v); }

static inline uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

void eddy__row_encode(eddy_buf_t *out, int nfields, const eddy_value_t *vals) {
    /* worst case: type byte + a 10-byte varint (or 8 bytes) per field,
     * plus the bytes of strings */
    size_t need = (size_t)nfields * (1 + VARINT_MAX);
    for (int i = 0; i < nfields; i++)
        if (vals[i].type == EDDY_TYPE_STRING || vals[i].type == EDDY_TYPE_BYTES)
            need += vals[i].len;
    eddy_buf_reserve(out, need);
    char *p = out->p + out->len;
    for (int i = 0; i < nfields; i++) {
        const eddy_value_t *v = &vals[i];
        *p++ = (char)v->type;
        switch ((eddy_type_t)v->type) {
        case EDDY_TYPE_NULL:
            break;
        case EDDY_TYPE_BOOL:
            *p++ = (char)(v->u.i ? 1 : 0);
            break;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            p += varint_write(p, zz(v->u.i));
            break;
        case EDDY_TYPE_DOUBLE:
            memcpy(p, &v->u.d, 8);
            p += 8;
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            p += varint_write(p, v->len);
            if (v->len)
                memcpy(p, v->u.s, v->len);
            p += v->len;
            break;
        }
    }
    out->len = (size_t)(p - out->p);
}

eddy_err_t eddy__row_decode(const char *p, size_t n, int nfields, eddy_value_t *vals) {
    size_t used = 0;
    eddy_err_t e = eddy__row_decode_prefix(p, n, nfields, vals, &used);
    if (e)
        return e;
    return used == n ? EDDY_OK : EDDY_ERR_DECODE;
}

/* Walk m encoded values: decode them into vals, or, with vals NULL, only
 * step over them (the same checks either way). Inlined into both callers,
 * so each gets its own loop without the other's work. */
static inline __attribute__((always_inline)) eddy_err_t
row_walk(const char *p, size_t n, int m, eddy_value_t *vals, size_t *used) {
    size_t o = 0;
    for (int i = 0; i < m; i++) {
        if (o >= n)
            return EDDY_ERR_DECODE;
        uint8_t type = (uint8_t)p[o++];
        eddy_value_t tmp, *v = vals ? &vals[i] : &tmp;
        uint64_t u;
        size_t k;
        memset(v, 0, sizeof(*v));
        v->type = type;
        switch ((eddy_type_t)type) {
        case EDDY_TYPE_NULL:
            break;
        case EDDY_TYPE_BOOL:
            if (o >= n)
                return EDDY_ERR_DECODE;
            v->u.i = p[o++] ? 1 : 0;
            break;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            if (!(k = varint_get(p + o, n - o, &u)))
                return EDDY_ERR_DECODE;
            o += k;
            v->u.i = unzz(u);
            break;
        case EDDY_TYPE_DOUBLE:
            if (n - o < 8)
                return EDDY_ERR_DECODE;
            memcpy(&v->u.d, p + o, 8);
            o += 8;
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            if (!(k = varint_get(p + o, n - o, &u)) || u > n - o - k)
                return EDDY_ERR_DECODE;
            o += k;
            v->u.s = p + o;
            v->len = (uint32_t)u;
            o += u;
            break;
        default:
            return EDDY_ERR_DECODE;
        }
    }
    *used = o;
    return EDDY_OK;
}

eddy_err_t eddy__row_decode_prefix(const char *p, size_t n, int nfields, eddy_value_t *vals,
                                   size_t *used) {
    return row_walk(p, n, nfields, vals, used);
}

eddy_err_t eddy__row_skip(const char *p, size_t n, int nfields, size_t *used) {
    return row_walk(p, n, nfields, NULL, used);
}
