/*
 * The card transaction generator (`type: transactions`), for the CEP
 * benchmark and tests: one stream `tx` {card, amount, merchant, dateTime}.
 *
 * Event n (0, 1, 2, ...) is a pure function of (seed, n): its event time is
 * base_time + n * 1000 / event_rate ms (in order), its card is uniform over
 * `cards`, and its amount (in cents) is small (1..499, 25%), ordinary
 * (1000..19999, 70%) or large (50000..199999, 5%). Partition p of P
 * produces the events whose number is p mod P, so any partitioning yields
 * the same events; the position is the next event number, so a restarted
 * run resumes exactly. With `rotate: 15m`, every 15 minutes of event time
 * a new set of cards takes over (card + cards * period) and the old ones go
 * idle: what keeps state bounded must then drop theirs.
 */
#include "cfg.h"
#include "plan.h"

typedef struct {
    uint64_t events, cards, seed;
    double rate, event_rate;
    int64_t base, rotate;
} tx_conf_t;

static const char *const tx_keys[] = {"name",  "type", "watermark",  "events",    "partitions",
                                      "cards", "seed", "rate",       "event_rate", "base_time",
                                      "rotate", NULL};

static eddy_err_t tx_compile(eddy_srcdef_t *def, const eddy_cnode_t *m, char *errstr,
                             size_t en) {
    tx_conf_t *c = eddy_calloc(1, sizeof(*c));
    def->conf = c;
    int64_t events = 0, parts = 1, cards = 100000, seed = 1, base = 1700000000000LL;
    double erate = 10000;
    eddy_err_t err;
    if ((err = eddy__cfg_check_keys(m, "transactions source", tx_keys, errstr, en)) ||
        (err = eddy__cfg_int(m, "events", false, 0, INT64_MAX, &events, errstr, en)) ||
        (err = eddy__cfg_int(m, "partitions", false, 1, 1024, &parts, errstr, en)) ||
        (err = eddy__cfg_int(m, "cards", false, 1, INT64_MAX, &cards, errstr, en)) ||
        (err = eddy__cfg_int(m, "seed", false, 0, INT64_MAX, &seed, errstr, en)) ||
        (err = eddy__cfg_double(m, "rate", false, 0, 1e12, &c->rate, errstr, en)) ||
        (err = eddy__cfg_double(m, "event_rate", false, 1e-3, 1e12, &erate, errstr, en)) ||
        (err = eddy__cfg_int(m, "base_time", false, 0, INT64_MAX / 4, &base, errstr, en)) ||
        (err = eddy__cfg_duration(m, "rotate", false, &c->rotate, errstr, en)))
        return err;
    c->events = (uint64_t)events;
    c->cards = (uint64_t)cards;
    c->seed = (uint64_t)seed;
    c->event_rate = erate;
    c->base = base;
    def->partitions = (int)parts;
    static const char *const names[] = {"card", "amount", "merchant", "dateTime"};
    static const eddy_type_t types[] = {EDDY_TYPE_INT, EDDY_TYPE_INT, EDDY_TYPE_INT,
                                        EDDY_TYPE_TIMESTAMP};
    eddy__srcdef_add_stream(def, "tx", eddy_schema_new(4, names, types));
    return EDDY_OK;
}

static void tx_free_conf(void *conf) { eddy_free(conf); }

typedef struct {
    const tx_conf_t *c;
    int partition, partitions;
    uint64_t next, produced;
    int64_t start_ns;
} tx_state_t;

static eddy_err_t tx_open(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                          size_t en) {
    (void)errstr;
    (void)en;
    tx_state_t *st = eddy_calloc(1, sizeof(*st));
    st->c = def->conf;
    st->partition = partition;
    st->partitions = def->partitions;
    st->next = (uint64_t)partition;
    *statep = st;
    return EDDY_OK;
}

static void tx_close(void *state) { eddy_free(state); }

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static eddy_err_t tx_poll(void *state, eddy_src_out_t *out, int max, bool *idle) {
    tx_state_t *st = state;
    const tx_conf_t *c = st->c;
    uint64_t limit = (uint64_t)max;
    if (c->rate > 0) {
        int64_t now = eddy__now_ns();
        if (!st->start_ns)
            st->start_ns = now;
        double allowed = (double)(now - st->start_ns) / 1e9 * (c->rate / st->partitions) -
                         (double)st->produced;
        if (allowed < 1) {
            *idle = true;
            return EDDY_OK;
        }
        if (allowed < (double)limit)
            limit = (uint64_t)allowed;
    }
    eddy_batch_t *b = out->batches[0];
    uint64_t n = 0;
    for (; n < limit && !(c->events && st->next >= c->events); n++) {
        uint64_t num = st->next;
        st->next += (uint64_t)st->partitions;
        if (!b)
            continue;
        uint64_t h = mix64(num * 0x9e3779b97f4a7c15ULL + c->seed);
        uint64_t h2 = mix64(h);
        uint64_t kind = h2 % 100, x = h2 >> 8;
        int64_t amount = kind < 25   ? 1 + (int64_t)(x % 499)
                         : kind < 95 ? 1000 + (int64_t)(x % 19000)
                                     : 50000 + (int64_t)(x % 150000);
        int64_t ts = c->base + (int64_t)((double)num * 1000.0 / c->event_rate);
        eddy_rec_t *r = eddy_batch_push(b);
        memset(r, 0, sizeof(*r));
        r->partition = st->partition;
        r->offset = (int64_t)num;
        r->ts_ms = ts;
        eddy_value_t *v = r->vals = eddy_arena_alloc(b->arena, sizeof(eddy_value_t) * 4);
        /* rotate: every `rotate` of event time a new set of cards takes over
         * (the old ones go idle) */
        int64_t card = (int64_t)(h % c->cards);
        if (c->rotate > 0)
            card += (int64_t)c->cards * ((ts - c->base) / c->rotate);
        v[0] = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = card};
        v[1] = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = amount};
        v[2] = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = (int64_t)((h >> 40) % 5000)};
        v[3] = (eddy_value_t){.type = EDDY_TYPE_TIMESTAMP, .u.i = ts};
    }
    st->produced += n;
    eddy__task_count_in(out->task, n);
    if (c->events && st->next >= c->events)
        return EDDY_ERR_EOF;
    return EDDY_OK;
}

static void tx_position(void *state, eddy_buf_t *out) {
    tx_state_t *st = state;
    eddy_buf_put(out, &st->next, 8);
    eddy_buf_put(out, &st->produced, 8);
}

static eddy_err_t tx_seek(void *state, const char *pos, size_t len, char *errstr, size_t en) {
    tx_state_t *st = state;
    uint64_t next;
    if (len != 16) {
        eddy__seterr(errstr, en, "transactions partition %d: stored position is %zu bytes, "
                     "expected 16", st->partition, len);
        return EDDY_ERR_DECODE;
    }
    memcpy(&next, pos, 8);
    if (next % (uint64_t)st->partitions != (uint64_t)st->partition) {
        eddy__seterr(errstr, en,
                     "transactions partition %d: stored position %llu belongs to another "
                     "partition (was the partition count changed?)",
                     st->partition, (unsigned long long)next);
        return EDDY_ERR_STATE;
    }
    st->next = next;
    memcpy(&st->produced, pos + 8, 8);
    return EDDY_OK;
}

const eddy_src_ops_t eddy__src_transactions = {
    .abi = EDDY_OP_ABI,
    .name = "transactions",
    .compile = tx_compile,
    .free_conf = tx_free_conf,
    .open = tx_open,
    .poll = tx_poll,
    .close = tx_close,
    .position = tx_position,
    .seek = tx_seek,
};
