/*
 * Order-preserving key encoding, shared by key_by routing and (later) the
 * stores, so RocksDB's bytewise order is the order queries need: a type
 * tag, then big-endian integers with the sign bit flipped, doubles with the
 * usual sign trick, strings with 0x00 escaped and a 0x00 0x00 terminator so
 * that composite keys compare field by field.
 */
#include "plan.h"

static size_t put_be64(uint64_t v, char *out, size_t cap) {
    if (cap < 8)
        return cap + 1;
    for (int i = 7; i >= 0; i--) {
        out[i] = (char)(v & 0xff);
        v >>= 8;
    }
    return 8;
}

size_t eddy__key_encode(const eddy_value_t *v, char *out, size_t cap) {
    if (cap < 1)
        return 1;
    out[0] = (char)v->type;
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_NULL:
        return 1;
    case EDDY_TYPE_BOOL:
        if (cap < 2)
            return 2;
        out[1] = (char)(v->u.i ? 1 : 0);
        return 2;
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        return 1 + put_be64((uint64_t)v->u.i ^ 0x8000000000000000ULL, out + 1, cap - 1);
    case EDDY_TYPE_DOUBLE: {
        uint64_t bits;
        double d = v->u.d == 0.0 ? 0.0 : v->u.d; /* -0.0 == 0.0 */
        memcpy(&bits, &d, 8);
        bits = (bits & 0x8000000000000000ULL) ? ~bits : bits ^ 0x8000000000000000ULL;
        return 1 + put_be64(bits, out + 1, cap - 1);
    }
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES: {
        size_t n = 1;
        for (uint32_t i = 0; i < v->len; i++) {
            if (n + 2 > cap)
                return cap + 1;
            out[n++] = v->u.s[i];
            if (v->u.s[i] == 0)
                out[n++] = (char)0xff;
        }
        if (n + 2 > cap)
            return cap + 1;
        out[n++] = 0;
        out[n++] = 0;
        return n;
    }
    }
    return 1;
}

int eddy__key_task(const char *key, size_t len, int ntasks) {
    return ntasks <= 1 ? 0 : (int)(eddy__hash64(key, len) % (uint64_t)ntasks);
}
