/*
 * The embedded Nexmark source: three streams (person, auction, bid) from
 * the generator in connectors/nexmark_gen.c. Partition p of P produces the
 * events whose number is p mod P, so any partitioning yields the same event
 * set. Every event is generated, whichever streams are read: as in the
 * reference benchmark, the generator's cost is part of every query.
 *
 * Field names follow the reference (Flink SQL DDL of the nexmark repo):
 * person(id, name, emailAddress, creditCard, city, state, dateTime, extra),
 * auction(id, itemName, description, initialBid, reserve, dateTime, expires,
 * seller, category, extra), bid(auction, bidder, price, channel, url,
 * dateTime, extra).
 */
#include "cfg.h"
#include "nexmark_gen.h"
#include "plan.h"

#include <time.h>

typedef struct {
    eddy_nx_conf_t gen;
    uint64_t events;    /* 0 = unbounded */
    double rate;        /* wall-clock events/s over all partitions; 0 = unpaced */
    int s_person, s_auction, s_bid;
} nx_conf_t;

static const char *const nx_keys[] = {"name", "type", "watermark", "events", "partitions",
                                      "seed", "rate", "event_rate", "out_of_order", "base_time",
                                      NULL};
static const char *const ooo_keys[] = {"fraction", "max_delay", NULL};

static eddy_schema_t *mk(int n, const char *const *names, const eddy_type_t *types) {
    return eddy_schema_new(n, names, types);
}

static eddy_err_t nx_compile(eddy_srcdef_t *def, const eddy_cnode_t *m, char *errstr,
                             size_t errstr_size) {
    nx_conf_t *c = eddy_calloc(1, sizeof(*c));
    def->conf = c;
    eddy__nx_conf_default(&c->gen);
    eddy_err_t err;
    int64_t events = 0, parts = 1, seed = (int64_t)c->gen.seed;
    int64_t base = c->gen.base_time_ms;
    double rate = 0, erate = c->gen.rate_per_sec;
    if ((err = eddy__cfg_check_keys(m, "nexmark source", nx_keys, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "events", false, 0, INT64_MAX, &events, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "partitions", false, 1, 1024, &parts, errstr, errstr_size)) ||
        (err = eddy__cfg_int(m, "seed", false, 0, INT64_MAX, &seed, errstr, errstr_size)) ||
        (err = eddy__cfg_double(m, "rate", false, 0, 1e12, &rate, errstr, errstr_size)) ||
        (err = eddy__cfg_double(m, "event_rate", false, 1e-3, 1e12, &erate, errstr,
                                errstr_size)) ||
        (err = eddy__cfg_int(m, "base_time", false, 0, INT64_MAX / 4, &base, errstr,
                             errstr_size)))
        return err;
    const eddy_cnode_t *ooo = eddy__cnode_get(m, "out_of_order");
    if (ooo) {
        if (ooo->kind != EDDY_CNODE_MAP)
            return eddy__cnode_err(ooo, errstr, errstr_size,
                                   "out_of_order: expected {fraction: 0.1, max_delay: 3s}");
        c->gen.ooo_fraction = 0.1;
        if ((err = eddy__cfg_check_keys(ooo, "out_of_order", ooo_keys, errstr, errstr_size)) ||
            (err = eddy__cfg_double(ooo, "fraction", false, 0, 1, &c->gen.ooo_fraction, errstr,
                                    errstr_size)) ||
            (err = eddy__cfg_duration(ooo, "max_delay", false, &c->gen.ooo_max_delay_ms, errstr,
                                      errstr_size)))
            return err;
    }
    c->events = (uint64_t)events;
    c->rate = rate;
    c->gen.seed = (uint64_t)seed;
    c->gen.rate_per_sec = erate;
    c->gen.base_time_ms = base;
    def->partitions = (int)parts;

    static const char *const pn[] = {"id", "name", "emailAddress", "creditCard",
                                     "city", "state", "dateTime", "extra"};
    static const eddy_type_t pt[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING, EDDY_TYPE_STRING,
                                     EDDY_TYPE_STRING, EDDY_TYPE_STRING, EDDY_TYPE_STRING,
                                     EDDY_TYPE_TIMESTAMP, EDDY_TYPE_STRING};
    static const char *const an[] = {"id", "itemName", "description", "initialBid", "reserve",
                                     "dateTime", "expires", "seller", "category", "extra"};
    static const eddy_type_t at[] = {EDDY_TYPE_INT, EDDY_TYPE_STRING, EDDY_TYPE_STRING,
                                     EDDY_TYPE_INT, EDDY_TYPE_INT, EDDY_TYPE_TIMESTAMP,
                                     EDDY_TYPE_TIMESTAMP, EDDY_TYPE_INT, EDDY_TYPE_INT,
                                     EDDY_TYPE_STRING};
    static const char *const bn[] = {"auction", "bidder", "price", "channel",
                                     "url", "dateTime", "extra"};
    static const eddy_type_t bt[] = {EDDY_TYPE_INT, EDDY_TYPE_INT, EDDY_TYPE_INT,
                                     EDDY_TYPE_STRING, EDDY_TYPE_STRING, EDDY_TYPE_TIMESTAMP,
                                     EDDY_TYPE_STRING};
    eddy_schema_t *ps = mk(8, pn, pt);
    ps->fields[1].pii = ps->fields[2].pii = ps->fields[3].pii = true; /* name, email, card */
    c->s_person = eddy__srcdef_add_stream(def, "person", ps);
    c->s_auction = eddy__srcdef_add_stream(def, "auction", mk(10, an, at));
    c->s_bid = eddy__srcdef_add_stream(def, "bid", mk(7, bn, bt));
    return EDDY_OK;
}

static void nx_free_conf(void *conf) { eddy_free(conf); }

typedef struct {
    const nx_conf_t *c;
    eddy_nx_gen_t *gen;
    eddy_task_t *task;
    int partition, partitions;
    uint64_t next;       /* next event number of this partition */
    uint64_t produced;
    int64_t start_ns;        /* pacing: when this run began producing */
    uint64_t start_produced; /* pacing: produced then (a resumed run's earlier events) */
    char scratch[EDDY_NX_SCRATCH_BYTES];
} nx_state_t;

static eddy_err_t nx_open(const eddy_srcdef_t *def, int partition, void **statep, char *errstr,
                          size_t errstr_size) {
    (void)errstr;
    (void)errstr_size;
    nx_state_t *st = eddy_calloc(1, sizeof(*st));
    st->c = def->conf;
    st->gen = eddy__nx_gen_new(&st->c->gen);
    st->partition = partition;
    st->partitions = def->partitions;
    st->next = (uint64_t)partition;
    st->start_ns = 0;
    *statep = st;
    return EDDY_OK;
}

static void nx_close(void *state) {
    nx_state_t *st = state;
    eddy__nx_gen_destroy(st->gen);
    eddy_free(st);
}

/* Strings that point into the scratch buffer are copied: the scratch is
 * reused for the next event. Pool strings are stable for the run. */
static inline void str_val(eddy_value_t *v, eddy_nx_str_t s, const char *scratch,
                           eddy_arena_t *a) {
    v->type = EDDY_TYPE_STRING;
    v->len = s.len;
    if (s.p >= scratch && s.p < scratch + EDDY_NX_SCRATCH_BYTES)
        v->u.s = eddy_arena_strndup(a, s.p, s.len);
    else
        v->u.s = s.p;
}
static inline void int_val(eddy_value_t *v, int64_t i) {
    v->type = EDDY_TYPE_INT;
    v->u.i = i;
}
static inline void ts_val(eddy_value_t *v, int64_t i) {
    v->type = EDDY_TYPE_TIMESTAMP;
    v->u.i = i;
}

static eddy_err_t nx_poll(void *state, eddy_src_out_t *out, int max, bool *idle) {
    nx_state_t *st = state;
    const nx_conf_t *c = st->c;
    eddy_task_t *task = out->task;
    uint64_t limit = (uint64_t)max;
    if (c->rate > 0) {
        int64_t now = eddy__now_ns();
        if (!st->start_ns) {
            st->start_ns = now;
            st->start_produced = st->produced;
        }
        /* the pace of this run: a resumed run does not first wait for the
         * time its earlier runs took */
        double per_part = c->rate / st->partitions;
        double allowed = (double)(now - st->start_ns) / 1e9 * per_part -
                         (double)(st->produced - st->start_produced);
        if (allowed < 1) {
            *idle = true;
            return EDDY_OK;
        }
        if (allowed < (double)limit)
            limit = (uint64_t)allowed;
    }
    eddy_batch_t *bp = out->batches[c->s_person];
    eddy_batch_t *ba = out->batches[c->s_auction];
    eddy_batch_t *bb = out->batches[c->s_bid];
    eddy_nx_event_t ev;
    uint64_t n = 0;
    const uint64_t step = (uint64_t)st->partitions;
    while (n < limit) {
        if (c->events && st->next >= c->events)
            break;
        uint64_t num = st->next;
        st->next += step;
        n++;
        eddy__nx_event(st->gen, num, &ev, st->scratch);
        eddy_batch_t *b = ev.kind == EDDY_NX_BID ? bb : ev.kind == EDDY_NX_AUCTION ? ba : bp;
        if (!b)
            continue;
        eddy_arena_t *a = b->arena;
        eddy_rec_t *r = eddy_batch_push(b);
        r->key = NULL;
        r->key_len = 0;
        r->partition = st->partition;
        r->offset = (int64_t)num;
        r->ts_ms = ev.ts_ms;
        eddy_value_t *v;
        switch (ev.kind) {
        case EDDY_NX_BID:
            v = r->vals = eddy_arena_alloc(a, sizeof(eddy_value_t) * 7);
            int_val(&v[0], ev.bid.auction);
            int_val(&v[1], ev.bid.bidder);
            int_val(&v[2], ev.bid.price);
            str_val(&v[3], ev.bid.channel, st->scratch, a);
            str_val(&v[4], ev.bid.url, st->scratch, a);
            ts_val(&v[5], ev.ts_ms);
            str_val(&v[6], ev.bid.extra, st->scratch, a);
            break;
        case EDDY_NX_AUCTION:
            v = r->vals = eddy_arena_alloc(a, sizeof(eddy_value_t) * 10);
            int_val(&v[0], ev.auction.id);
            str_val(&v[1], ev.auction.item_name, st->scratch, a);
            str_val(&v[2], ev.auction.description, st->scratch, a);
            int_val(&v[3], ev.auction.initial_bid);
            int_val(&v[4], ev.auction.reserve);
            ts_val(&v[5], ev.ts_ms);
            ts_val(&v[6], ev.auction.expires);
            int_val(&v[7], ev.auction.seller);
            int_val(&v[8], ev.auction.category);
            str_val(&v[9], ev.auction.extra, st->scratch, a);
            break;
        case EDDY_NX_PERSON:
            v = r->vals = eddy_arena_alloc(a, sizeof(eddy_value_t) * 8);
            int_val(&v[0], ev.person.id);
            str_val(&v[1], ev.person.name, st->scratch, a);
            str_val(&v[2], ev.person.email, st->scratch, a);
            str_val(&v[3], ev.person.credit_card, st->scratch, a);
            str_val(&v[4], ev.person.city, st->scratch, a);
            str_val(&v[5], ev.person.state, st->scratch, a);
            ts_val(&v[6], ev.ts_ms);
            str_val(&v[7], ev.person.extra, st->scratch, a);
            break;
        }
    }
    st->produced += n;
    eddy__task_count_in(task, n);
    if (c->events && st->next >= c->events)
        return EDDY_ERR_EOF;
    return EDDY_OK;
}

/* Position: the next event number of this partition (and how many were
 * produced, for pacing). Event numbers identify events, so a resumed run
 * generates exactly the events an uninterrupted one would. */
static void nx_position(void *state, eddy_buf_t *out) {
    nx_state_t *st = state;
    eddy_buf_put(out, &st->next, 8);
    eddy_buf_put(out, &st->produced, 8);
}

static eddy_err_t nx_seek(void *state, const char *pos, size_t len, char *errstr,
                          size_t errstr_size) {
    nx_state_t *st = state;
    uint64_t next, produced;
    if (len != 16) {
        eddy__seterr(errstr, errstr_size, "nexmark partition %d: stored position is %zu bytes, "
                     "expected 16", st->partition, len);
        return EDDY_ERR_DECODE;
    }
    memcpy(&next, pos, 8);
    memcpy(&produced, pos + 8, 8);
    if (next % (uint64_t)st->partitions != (uint64_t)st->partition) {
        eddy__seterr(errstr, errstr_size,
                     "nexmark partition %d: stored position %llu belongs to another partition "
                     "(was the partition count changed?)",
                     st->partition, (unsigned long long)next);
        return EDDY_ERR_STATE;
    }
    st->next = next;
    st->produced = produced;
    return EDDY_OK;
}

const eddy_src_ops_t eddy__src_nexmark = {
    .position = nx_position,
    .seek = nx_seek,
    .abi = EDDY_OP_ABI,
    .name = "nexmark",
    .compile = nx_compile,
    .free_conf = nx_free_conf,
    .open = nx_open,
    .poll = nx_poll,
    .close = nx_close,
};
