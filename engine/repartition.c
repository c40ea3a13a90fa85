/*
 * Repartition topic records: encoding, decoding, the sequence check
 * (format in repartition.h).
 */
#include "repartition.h"
#include "state/row.h"

static void zz_put(eddy_buf_t *b, int64_t v) {
    eddy__varint_put(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* The row of rec: every field (keep NULL) or the kept ones. */
static void row_put(eddy_buf_t *out, const eddy_rec_t *rec, const eddy_schema_t *s,
                    const bool *keep) {
    if (!keep) {
        eddy__row_encode(out, s->nfields, rec->vals);
        return;
    }
    /* fields follow each other with no count (state/row.h) */
    for (int i = 0; i < s->nfields; i++)
        if (keep[i])
            eddy__row_encode(out, 1, &rec->vals[i]);
}

/* ts, partition, offset, key, whole: what data and bundle records share */
static void rec_head_put(eddy_buf_t *out, const eddy_rec_t *rec, const bool *keep) {
    zz_put(out, rec->ts_ms);
    zz_put(out, rec->partition);
    zz_put(out, rec->offset);
    eddy__varint_put(out, rec->key_len);
    if (rec->key_len)
        eddy_buf_put(out, rec->key, rec->key_len);
    eddy_buf_putc(out, keep ? 0 : 1);
}

void eddy__xr_encode_data(eddy_buf_t *out, int sender, uint32_t gen, uint64_t seq,
                          const eddy_rec_t *rec, const eddy_schema_t *s, const bool *keep) {
    eddy_buf_putc(out, 'D');
    eddy__varint_put(out, (uint64_t)sender);
    eddy__varint_put(out, gen);
    eddy__varint_put(out, seq);
    rec_head_put(out, rec, keep);
    row_put(out, rec, s, keep);
}

void eddy__xr_encode_bundle_rec(eddy_buf_t *area, eddy_buf_t *scratch, const eddy_rec_t *rec,
                                const eddy_schema_t *s, const bool *keep) {
    rec_head_put(area, rec, keep);
    scratch->len = 0;
    row_put(scratch, rec, s, keep);
    eddy__varint_put(area, scratch->len);
    eddy_buf_put(area, scratch->p, scratch->len);
}

void eddy__xr_encode_bundle(eddy_buf_t *out, int sender, uint32_t gen, uint64_t first_seq,
                            uint64_t count, const char *area, size_t area_len) {
    eddy_buf_putc(out, 'B');
    eddy__varint_put(out, (uint64_t)sender);
    eddy__varint_put(out, gen);
    eddy__varint_put(out, first_seq);
    eddy__varint_put(out, count);
    eddy_buf_put(out, area, area_len);
}

void eddy__xr_encode_wm(eddy_buf_t *out, int sender, uint32_t gen, int64_t wm, uint8_t flags,
                        uint64_t seq) {
    eddy_buf_putc(out, 'W');
    eddy__varint_put(out, (uint64_t)sender);
    eddy__varint_put(out, gen);
    zz_put(out, wm);
    eddy_buf_putc(out, (char)flags);
    eddy__varint_put(out, seq);
}

typedef struct {
    const char *p;
    size_t n, o;
    bool bad;
} rd_t;

static uint64_t get_u(rd_t *r) {
    uint64_t v = 0;
    size_t k = r->bad ? 0 : eddy__varint_get(r->p + r->o, r->n - r->o, &v);
    if (!k)
        r->bad = true;
    r->o += k;
    return v;
}

static int64_t get_z(rd_t *r) {
    uint64_t u = get_u(r);
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static uint8_t get_byte(rd_t *r) {
    if (r->bad || r->o >= r->n) {
        r->bad = true;
        return 0;
    }
    return (uint8_t)r->p[r->o++];
}

/* ts, partition, offset, key, whole (rec_head_put) */
static eddy_err_t rec_head_get(rd_t *r, eddy_xr_msg_t *m) {
    m->ts_ms = get_z(r);
    m->partition = (int32_t)get_z(r);
    m->offset = get_z(r);
    uint64_t kl = get_u(r);
    if (r->bad || kl > r->n - r->o)
        return EDDY_ERR_DECODE;
    m->key = r->p + r->o;
    m->key_len = (uint32_t)kl;
    r->o += kl;
    m->whole = get_byte(r) != 0;
    return r->bad ? EDDY_ERR_DECODE : EDDY_OK;
}

eddy_err_t eddy__xr_decode(const char *p, size_t n, eddy_xr_msg_t *m) {
    memset(m, 0, sizeof(*m));
    rd_t r = {.p = p, .n = p ? n : 0};
    uint8_t kind = get_byte(&r);
    if (kind != 'D' && kind != 'W' && kind != 'B')
        return EDDY_ERR_DECODE;
    m->is_wm = kind == 'W';
    uint64_t sender = get_u(&r);
    uint64_t gen = get_u(&r);
    if (sender > INT32_MAX || gen > UINT32_MAX)
        return EDDY_ERR_DECODE;
    m->sender = (int)sender;
    m->gen = (uint32_t)gen;
    if (m->is_wm) {
        m->ts_ms = get_z(&r);
        m->flags = get_byte(&r);
        m->seq = get_u(&r);
        return r.bad ? EDDY_ERR_DECODE : EDDY_OK;
    }
    m->seq = get_u(&r);
    if (kind == 'B') {
        m->is_bundle = true;
        m->count = get_u(&r);
        /* every record takes at least 6 bytes */
        if (r.bad || m->count > (r.n - r.o) / 6)
            return EDDY_ERR_DECODE;
        m->row = p + r.o;
        m->row_len = r.n - r.o;
        return EDDY_OK;
    }
    if (rec_head_get(&r, m))
        return EDDY_ERR_DECODE;
    m->row = p + r.o;
    m->row_len = r.n - r.o;
    return EDDY_OK;
}

eddy_err_t eddy__xr_next(eddy_xr_msg_t *bundle, eddy_xr_msg_t *rec) {
    if (!bundle->count)
        return EDDY_ERR_EOF;
    memset(rec, 0, sizeof(*rec));
    rec->sender = bundle->sender;
    rec->gen = bundle->gen;
    rec->seq = bundle->seq;
    rd_t r = {.p = bundle->row, .n = bundle->row_len};
    if (rec_head_get(&r, rec))
        return EDDY_ERR_DECODE;
    uint64_t rl = get_u(&r);
    if (r.bad || rl > r.n - r.o)
        return EDDY_ERR_DECODE;
    rec->row = r.p + r.o;
    rec->row_len = rl;
    r.o += rl;
    bundle->row += r.o;
    bundle->row_len -= r.o;
    bundle->seq++;
    bundle->count--;
    return EDDY_OK;
}

eddy_err_t eddy__xr_decode_row(const eddy_xr_msg_t *m, const eddy_schema_t *s, const bool *keep,
                               eddy_value_t *vals) {
    if (m->whole || !keep)
        return eddy__row_decode(m->row, m->row_len, s->nfields, vals);
    int n = 0;
    for (int i = 0; i < s->nfields; i++)
        n += keep[i];
    eddy_value_t kept[64];
    eddy_value_t *v = n <= 64 ? kept : eddy_malloc(sizeof(eddy_value_t) * (size_t)n);
    eddy_err_t err = eddy__row_decode(m->row, m->row_len, n, v);
    for (int i = 0, k = 0; !err && i < s->nfields; i++)
        vals[i] = keep[i] ? v[k++] : (eddy_value_t){.type = EDDY_TYPE_NULL};
    if (v != kept)
        eddy_free(v);
    return err;
}

eddy_xr_admit_t eddy__xr_admit(eddy_xr_seen_t *s, uint32_t gen, uint64_t seq) {
    if (s->gen != gen) {
        s->gen = gen;
        s->applied = seq;
        return EDDY_XR_APPLY;
    }
    if (seq <= s->applied)
        return EDDY_XR_DUP;
    if (seq != s->applied + 1)
        return EDDY_XR_GAP;
    s->applied = seq;
    return EDDY_XR_APPLY;
}
