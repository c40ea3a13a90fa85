/*
 * Avro encoding of engine rows: the derived record schema and the binary
 * encoder behind the Kafka sink's `format: avro`.
 *
 * The encoder is written by hand rather than through Avro C's generic
 * value API because it runs once per output record: Avro C would build a
 * value tree per record and call through its interface per field (see
 * docs/avro.md for the same trade-off on the decode side). Here a row
 * costs one capacity check and a pass over the values. Avro C still parses
 * every derived schema (the sink registers it), and the tests read the
 * bytes back with Avro C's own reader.
 */
#include "connectors/avro_write.h"

#include <avro.h>

/* ------------------------------------------------------------- schema */

static bool avro_name_char(char ch, bool first) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_' ||
           (!first && ch >= '0' && ch <= '9');
}

/* An Avro name for s: other characters become '_', a leading digit gets a
 * '_' in front, an empty name is "_". NUL-terminated in out. */
static void avro_name(eddy_buf_t *out, const char *s) {
    size_t start = out->len;
    if (*s >= '0' && *s <= '9')
        eddy_buf_putc(out, '_');
    for (; *s; s++)
        eddy_buf_putc(out, avro_name_char(*s, out->len == start) ? *s : '_');
    if (out->len == start)
        eddy_buf_putc(out, '_');
    eddy_buf_putc(out, 0);
}

static const char *avro_type_name(eddy_type_t t) {
    switch (t) {
    case EDDY_TYPE_BOOL:
        return "\"boolean\"";
    case EDDY_TYPE_INT:
        return "\"long\"";
    case EDDY_TYPE_DOUBLE:
        return "\"double\"";
    case EDDY_TYPE_STRING:
        return "\"string\"";
    case EDDY_TYPE_BYTES:
        return "\"bytes\"";
    case EDDY_TYPE_TIMESTAMP:
        return "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}";
    case EDDY_TYPE_NULL:
        break;
    }
    return "\"null\"";
}

/* A column is written as ["null", T] when it is nullable and its type is
 * not null itself (a union may not hold two nulls). */
static bool nullable_union(const eddy_field_t *f) {
    return f->nullable && f->type != EDDY_TYPE_NULL;
}

char *eddy__avro_schema_for_row(const eddy_schema_t *schema, const char *name, const char *ns,
                                char *errstr, size_t errstr_size) {
    /* all names first (offsets into one buffer), to find collisions */
    eddy_buf_t names = {0};
    size_t *off = eddy_calloc((size_t)schema->nfields + 1, sizeof(size_t));
    for (int i = 0; i < schema->nfields; i++) {
        off[i] = names.len;
        avro_name(&names, schema->fields[i].name);
    }
    for (int i = 0; i < schema->nfields; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(names.p + off[i], names.p + off[j])) {
                eddy__seterr(errstr, errstr_size,
                             "columns '%s' and '%s' both become the Avro field name '%s' "
                             "(rename one with a map step)",
                             schema->fields[j].name, schema->fields[i].name, names.p + off[i]);
                eddy_free(off);
                eddy_buf_free(&names);
                return NULL;
            }
    eddy_buf_t rec = {0};
    avro_name(&rec, name);
    eddy_buf_t b = {0};
    eddy_buf_printf(&b, "{\"type\":\"record\",\"name\":\"%s\"", rec.p);
    if (ns && *ns)
        eddy_buf_printf(&b, ",\"namespace\":\"%s\"", ns);
    eddy_buf_printf(&b, ",\"fields\":[");
    for (int i = 0; i < schema->nfields; i++) {
        const eddy_field_t *f = &schema->fields[i];
        eddy_buf_printf(&b, "%s{\"name\":\"%s\",\"type\":", i ? "," : "", names.p + off[i]);
        if (nullable_union(f))
            eddy_buf_printf(&b, "[\"null\",%s],\"default\":null}", avro_type_name(f->type));
        else
            eddy_buf_printf(&b, "%s}", avro_type_name(f->type));
    }
    eddy_buf_printf(&b, "]}");
    eddy_buf_putc(&b, 0);
    eddy_free(off);
    eddy_buf_free(&names);
    eddy_buf_free(&rec);
    return b.p;
}

eddy_err_t eddy__avro_schema_same(const char *ours, const char *theirs, char *errstr,
                                  size_t errstr_size) {
    avro_schema_t a = NULL, b = NULL;
    eddy_err_t err = EDDY_OK;
    if (avro_schema_from_json_length(ours, strlen(ours), &a) ||
        avro_schema_from_json_length(theirs, strlen(theirs), &b)) {
        eddy__seterr(errstr, errstr_size, "avro schema does not parse: %s", avro_strerror());
        err = EDDY_ERR_DECODE;
    } else if (!avro_schema_equal(a, b)) {
        eddy__seterr(errstr, errstr_size, "the schemas differ: rows are written as %s", ours);
        err = EDDY_ERR_TYPE;
    }
    if (a)
        avro_schema_decref(a);
    if (b)
        avro_schema_decref(b);
    return err;
}

/* ------------------------------------------------------------ encoder */

void eddy__avro_wire_header(eddy_buf_t *out, int32_t schema_id) {
    uint32_t id = (uint32_t)schema_id;
    char h[5] = {0, (char)(id >> 24), (char)(id >> 16), (char)(id >> 8), (char)id};
    eddy_buf_put(out, h, sizeof(h));
}

/* zigzag varint: at most 10 bytes */
static inline char *put_long(char *p, int64_t v) {
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        *p++ = (char)(z | 0x80);
        z >>= 7;
    }
    *p++ = (char)z;
    return p;
}

/* little-endian IEEE 754, whatever the host's byte order */
static inline char *put_double(char *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    for (int i = 0; i < 8; i++)
        *p++ = (char)(u >> (8 * i));
    return p;
}

eddy_err_t eddy__avro_encode_row(eddy_buf_t *out, const eddy_schema_t *schema,
                                 const eddy_value_t *vals, int *bad_field) {
    /* upper bound: union index + the widest of varint/double/length, plus
     * string bytes */
    size_t need = (size_t)schema->nfields * 11;
    for (int i = 0; i < schema->nfields; i++)
        if (vals[i].type == EDDY_TYPE_STRING || vals[i].type == EDDY_TYPE_BYTES)
            need += vals[i].len;
    if (out->len + need > out->cap)
        eddy_buf_reserve(out, need);
    char *p = out->p + out->len;
    int i;
    for (i = 0; i < schema->nfields; i++) {
        const eddy_field_t *f = &schema->fields[i];
        const eddy_value_t *v = &vals[i];
        if (v->type == EDDY_TYPE_NULL) {
            if (f->type == EDDY_TYPE_NULL)
                continue;
            if (!nullable_union(f))
                goto bad;
            *p++ = 0; /* branch 0: null */
            continue;
        }
        if (v->type != f->type)
            goto bad;
        if (nullable_union(f))
            *p++ = 2; /* branch 1, zigzag */
        switch ((eddy_type_t)v->type) {
        case EDDY_TYPE_BOOL:
            *p++ = v->u.i ? 1 : 0;
            break;
        case EDDY_TYPE_INT:
        case EDDY_TYPE_TIMESTAMP:
            p = put_long(p, v->u.i);
            break;
        case EDDY_TYPE_DOUBLE:
            p = put_double(p, v->u.d);
            break;
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            p = put_long(p, (int64_t)v->len);
            if (v->len)
                memcpy(p, v->u.s, v->len);
            p += v->len;
            break;
        case EDDY_TYPE_NULL:
            break;
        }
    }
    out->len = (size_t)(p - out->p);
    return EDDY_OK;
bad:
    *bad_field = i; /* nothing was committed to out->len */
    return EDDY_ERR_TYPE;
}
