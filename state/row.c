#include "row.h"

void eddy__varint_put(eddy_buf_t *out, uint64_t v) {
    char tmp[10];
    int n = 0;
    while (v >= 0x80) {
        tmp[n++] = (char)(v | 0x80);
        v >>= 7;
    }
    tmp[n++] = (char)v;
    eddy_buf_put(out, tmp, (size_t)n);
}

size_t eddy__varint_get(const char *p, size_t n, uint64_t *v) {
    uint64_t r = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        uint8_t b = (uint8_t)p[i];
        r |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

static inline uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

void eddy__row_encode(eddy_buf_t *out, int nfields, const eddy_value_t *vals) {
    for (int i = 0; i < nfields; i++) {
        const eddy_value_t *v = &vals[i];
        eddy_buf_putc(out, (char)v->type);
        switch ((eddy_type_t)v->type) {
        case EDDY_TYPE_NULL:
            break;
        case EDDY_TYPE_BOOL:
            eddy_buf_putc(out, (char)(v->u.i ? 1 : 0));
            break;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            eddy__varint_put(out, zz(v->u.i));
            break;
        case EDDY_TYPE_DOUBLE:
            eddy_buf_put(out, &v->u.d, 8);
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            eddy__varint_put(out, v->len);
            eddy_buf_put(out, v->u.s, v->len);
            break;
        }
    }
}

eddy_err_t eddy__row_decode(const char *p, size_t n, int nfields, eddy_value_t *vals) {
    size_t used = 0;
    eddy_err_t e = eddy__row_decode_prefix(p, n, nfields, vals, &used);
    if (e)
        return e;
    return used == n ? EDDY_OK : EDDY_ERR_DECODE;
}

eddy_err_t eddy__row_decode_prefix(const char *p, size_t n, int nfields, eddy_value_t *vals,
                                   size_t *used) {
    size_t o = 0;
    for (int i = 0; i < nfields; i++) {
        if (o >= n)
            return EDDY_ERR_DECODE;
        eddy_value_t *v = &vals[i];
        memset(v, 0, sizeof(*v));
        v->type = (uint8_t)p[o++];
        uint64_t u;
        size_t k;
        switch ((eddy_type_t)v->type) {
        case EDDY_TYPE_NULL:
            break;
        case EDDY_TYPE_BOOL:
            if (o >= n)
                return EDDY_ERR_DECODE;
            v->u.i = p[o++] ? 1 : 0;
            break;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            if (!(k = eddy__varint_get(p + o, n - o, &u)))
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
            if (!(k = eddy__varint_get(p + o, n - o, &u)) || u > n - o - k)
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
