/*
 * CEP matcher: patterns over keyed streams in event-time order (see
 * docs/cep.md for the semantics, operators/cep_compile.c for the syntax).
 *
 * Records are buffered until the watermark passes them and then run
 * through the pattern in (event time, arrival) order per key, so disorder
 * within the allowed out-of-orderness does not change results; a record
 * older than the watermark is late (late output, counted).
 *
 * Per key the matcher keeps its partial matches ("runs") and the events
 * they refer to. A run is a position in the pattern (stage, events taken
 * in it), a guard flag (a negation is watching the gap), its first and
 * last event, and one accumulator per (stage, field) the conditions and
 * output fields aggregate (count, sum, first, last, min, max). Events are
 * shared: a run branching into several (relaxed and non-deterministic
 * contiguity, loops) copies the run, never the events, which are
 * reference counted (FlinkCEP's SharedBuffer idea, reduced to what the
 * aggregates and skip strategies need).
 *
 * State: the runs and the buffered (not yet processed) records of every
 * key live in memory and are written to the kv store `<store>.partial` at
 * every commit (pre_commit hook, before the task's stores are prepared),
 * one value per key, deleted when the key has nothing left; init reads
 * the store back. The operator's watermark is committed with its state,
 * so after a restart nothing is matched twice and nothing is lost. Keys
 * whose runs time out (within) leave no state. Matches are appended to the
 * log store `<store>` (by key and time, queryable: MCP get_matches).
 */
#include "cep.h"
#include "cfg.h"
#include "state/row.h"
#include "state/store.h"

#include <math.h>
#include <stdlib.h>

/* Partial matches one key may hold; beyond, new branches are dropped
 * (dead letter, counted): non-deterministic contiguity can branch
 * exponentially. */
#define CEP_MAX_RUNS 100000

/* Records whose key lookups are prefetched together. */
#define CEP_CHUNK 16

typedef struct kst_s kst_t;

typedef struct ev_s {
    int64_t seq; /* processing order within the key */
    int64_t ts;
    int64_t arr; /* arrival order within the key (buffered records) */
    uint64_t garr; /* arrival order within the task (not stored) */
    int64_t part, off; /* source partition and offset: ties in event time */
    int refs;
    signed int mark : 31; /* encoding index */
    unsigned pooled : 1;  /* from cst_t.evp */
    kst_t *k;    /* buffered records: their key */
    eddy_value_t v[];
} ev_t;

typedef struct {
    int64_t n, si;
    double sd;
    ev_t *first, *last, *mn, *mx;
} acc_t;

typedef struct run_s {
    int stage, k;
    bool guarded;
    int64_t skip_first, skip_last;
    ev_t *first, *last;
    acc_t acc[];
} run_t;

struct kst_s {
    const char *key; /* = kbuf */
    uint32_t klen;
    uint64_t h;
    run_t **runs;
    int nruns, cap;
    int npend;
    size_t pofs; /* pre_commit: where its buffered records start */
    int64_t next_seq, next_arr;
    int64_t timer;   /* its due time in the timer heap; INT64_MAX: not there */
    int64_t due_min; /* earliest first-event time + within over its runs */
    int64_t hpos;    /* its place in the timer heap, -1: none */
    size_t dpos;     /* its place in the dirty list (while dirty) */
    bool dirty, stored;
    char kbuf[]; /* the key bytes, beside the rest */
};

/* A slot of the key table (open addressing, linear probing): the key's
 * hash (0: empty), so that a probe reads no key state until the hash
 * matches, and its state. */
typedef struct {
    uint64_t h;
    kst_t *k;
} kslot_t;

/* Free lists of the fixed-size blocks the matcher allocates per event:
 * events without strings, runs and keys (a key of up to KEY_INLINE bytes). */
typedef struct {
    void *head;
    size_t n, size;
} pool_t;

#define KEY_INLINE 23
#define POOL_MAX 65536 /* blocks a free list keeps; beyond, they go back to malloc */

typedef struct {
    run_t **v;
    int n, cap;
} runvec_t;

typedef struct {
    struct eddy_store_s *kv, *log;
    kslot_t *tab;
    size_t tcap, nkeys; /* tcap: a power of two, at least twice nkeys */
    ev_t **pend; /* out-of-order buffered records: a min-heap */
    size_t npend, pcap;
    ev_t **fifo; /* buffered records that arrived in order: [fhead, fn) */
    size_t fhead, fn, fcap;
    uint64_t garr;
    kst_t **heap; /* keys with runs that can time out, by timer (a min-heap) */
    size_t nheap, hcap;
    pool_t evp, runp, keyp;
    run_t *r0; /* the empty run every event may start from */
    ev_t **evs; /* encode_key: the events of a key */
    int evcap;
    kst_t **dirty;
    size_t ndirty, dcap;
    runvec_t nr, mt;
    eddy_value_t *row; /* nin + nref */
    int *stage_accs;   /* per stage: start index into acc_idx */
    int *acc_idx;
    eddy_buf_t enc;
    size_t run_size;
    int nacc;
    int last_ev_stage; /* index of the last event stage */
    bool trailing;     /* the pattern ends with a negation */
    uint64_t dropped;
    uint64_t hs[CEP_CHUNK]; /* cep_process: the hashes of a chunk of keys */
} cst_t;

/* ------------------------------------------------------------- pools */

static void *pool_get(pool_t *p) {
    void *b = p->head;
    if (!b)
        return eddy_malloc(p->size);
    memcpy(&p->head, b, sizeof(void *));
    p->n--;
    return b;
}

static void pool_put(pool_t *p, void *b) {
    if (p->n >= POOL_MAX) {
        eddy_free(b);
        return;
    }
    memcpy(b, &p->head, sizeof(void *));
    p->head = b;
    p->n++;
}

static void pool_drain(pool_t *p) {
    while (p->head) {
        void *b = p->head;
        memcpy(&p->head, b, sizeof(void *));
        eddy_free(b);
    }
    p->n = 0;
}

/* ------------------------------------------------------------ events */

static ev_t *ev_new(cst_t *s, const cep_conf_t *c, const eddy_value_t *v, int64_t ts) {
    size_t extra = 0;
    for (int i = 0; i < c->nin; i++)
        if (v[i].type == EDDY_TYPE_STRING || v[i].type == EDDY_TYPE_BYTES)
            extra += v[i].len;
    ev_t *e = extra ? eddy_malloc(s->evp.size + extra) : pool_get(&s->evp);
    memset(e, 0, sizeof(*e));
    e->pooled = !extra;
    char *p = (char *)&e->v[c->nin];
    for (int i = 0; i < c->nin; i++) {
        e->v[i] = v[i];
        if ((v[i].type == EDDY_TYPE_STRING || v[i].type == EDDY_TYPE_BYTES)) {
            if (v[i].len)
                memcpy(p, v[i].u.s, v[i].len);
            e->v[i].u.s = p;
            p += v[i].len;
        }
    }
    e->ts = ts;
    e->refs = 1;
    return e;
}

static inline void ev_ref(ev_t *e) {
    if (e)
        e->refs++;
}
static void ev_free(cst_t *s, ev_t *e) {
    if (e->pooled)
        pool_put(&s->evp, e);
    else
        eddy_free(e);
}

static inline void ev_unref(cst_t *s, ev_t *e) {
    if (e && --e->refs == 0)
        ev_free(s, e);
}

/* -------------------------------------------------------------- runs */

static run_t *run_copy(cst_t *s, const run_t *r) {
    run_t *n = pool_get(&s->runp);
    memcpy(n, r, s->run_size);
    ev_ref(n->first);
    ev_ref(n->last);
    for (int i = 0; i < s->nacc; i++) {
        ev_ref(n->acc[i].first);
        ev_ref(n->acc[i].last);
        ev_ref(n->acc[i].mn);
        ev_ref(n->acc[i].mx);
    }
    return n;
}

static void run_free(cst_t *s, run_t *r) {
    if (!r)
        return;
    ev_unref(s, r->first);
    ev_unref(s, r->last);
    for (int i = 0; i < s->nacc; i++) {
        ev_unref(s, r->acc[i].first);
        ev_unref(s, r->acc[i].last);
        ev_unref(s, r->acc[i].mn);
        ev_unref(s, r->acc[i].mx);
    }
    pool_put(&s->runp, r);
}

static void rv_push(runvec_t *v, run_t *r) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->v = eddy_realloc(v->v, sizeof(run_t *) * (size_t)v->cap);
    }
    v->v[v->n++] = r;
}

static int cmp_val(const eddy_value_t *a, const eddy_value_t *b) {
    if (a->type == EDDY_TYPE_DOUBLE || b->type == EDDY_TYPE_DOUBLE) {
        double x = a->type == EDDY_TYPE_DOUBLE ? a->u.d : (double)a->u.i;
        double y = b->type == EDDY_TYPE_DOUBLE ? b->u.d : (double)b->u.i;
        return x < y ? -1 : x > y;
    }
    if (a->type == EDDY_TYPE_STRING || a->type == EDDY_TYPE_BYTES) {
        uint32_t n = a->len < b->len ? a->len : b->len;
        int r = n ? memcmp(a->u.s, b->u.s, n) : 0;
        return r ? r : (a->len < b->len ? -1 : a->len > b->len);
    }
    return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
}

static inline void ev_set(cst_t *s, ev_t **slot, ev_t *e) {
    ev_ref(e);
    ev_unref(s, *slot);
    *slot = e;
}

/* Add event e to the accumulators of stage st in run r. */
static void acc_add(const cep_conf_t *c, cst_t *s, run_t *r, int st, ev_t *e) {
    for (int j = s->stage_accs[st]; j < s->stage_accs[st + 1]; j++) {
        int ai = s->acc_idx[j];
        acc_t *a = &r->acc[ai];
        int f = c->acc[ai].field;
        if (f < 0) {
            a->n++;
            continue;
        }
        const eddy_value_t *v = &e->v[f];
        if (v->type == EDDY_TYPE_NULL)
            continue;
        a->n++;
        if (v->type == EDDY_TYPE_DOUBLE)
            a->sd += v->u.d;
        else
            a->si += v->u.i;
        if (!a->first)
            ev_set(s, &a->first, e);
        ev_set(s, &a->last, e);
        if (!a->mn || cmp_val(v, &a->mn->v[f]) < 0)
            ev_set(s, &a->mn, e);
        if (!a->mx || cmp_val(v, &a->mx->v[f]) > 0)
            ev_set(s, &a->mx, e);
    }
}

/* Fill the virtual fields `refs` of s->row from run r. */
static void fill_refs(const cep_conf_t *c, cst_t *s, const run_t *r, const int *refs, int n) {
    for (int i = 0; i < n; i++) {
        const cep_ref_t *ref = &c->ref[refs[i]];
        const acc_t *a = &r->acc[ref->acc];
        int f = c->acc[ref->acc].field;
        eddy_value_t *o = &s->row[c->nin + refs[i]];
        *o = (eddy_value_t){.type = EDDY_TYPE_NULL};
        const ev_t *e = NULL;
        switch (ref->fn) {
        case CEP_F_COUNT:
            *o = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = a->n};
            break;
        case CEP_F_SUM:
            if (a->n)
                *o = ref->type == EDDY_TYPE_DOUBLE
                         ? (eddy_value_t){.type = EDDY_TYPE_DOUBLE, .u.d = a->sd}
                         : (eddy_value_t){.type = ref->type, .u.i = a->si};
            break;
        case CEP_F_AVG:
            if (a->n)
                /* one of si (integers) and sd (doubles) is 0 */
                *o = (eddy_value_t){.type = EDDY_TYPE_DOUBLE,
                                    .u.d = ((double)a->si + a->sd) / (double)a->n};
            break;
        case CEP_F_MIN:
            e = a->mn;
            break;
        case CEP_F_MAX:
            e = a->mx;
            break;
        case CEP_F_FIRST:
            e = a->first;
            break;
        case CEP_F_LAST:
            e = a->last;
            break;
        }
        if (e && f >= 0)
            *o = e->v[f];
    }
}

static bool eval_cond(const cep_conf_t *c, cst_t *s, const run_t *r, const cep_stage_t *st,
                      const eddy_expr_t *x) {
    if (st->nrefs)
        fill_refs(c, s, r, st->refs, st->nrefs);
    return eddy__expr_eval_bool(x, s->row, NULL);
}

/* ---------------------------------------------------------- stepping */

typedef struct {
    const cep_conf_t *c;
    cst_t *s;
    kst_t *k;
    ev_t *e;
    bool full; /* CEP_MAX_RUNS reached */
} stepctx_t;

static void keep(stepctx_t *x, run_t *r) {
    if (x->s->nr.n >= CEP_MAX_RUNS) {
        x->full = true;
        run_free(x->s, r);
        return;
    }
    rv_push(&x->s->nr, r);
}

/* r2 has just taken x->e into its stage. */
static void after_take(stepctx_t *x, run_t *r2) {
    const cep_conf_t *c = x->c;
    const cep_stage_t *st = &c->st[r2->stage];
    if (r2->stage == x->s->last_ev_stage && r2->k >= st->min) {
        run_t *m = r2->k < st->max ? run_copy(x->s, r2) : r2;
        if (x->s->trailing) {
            m->stage = c->nst; /* waiting for the trailing negation to pass */
            m->k = 0;
            m->guarded = true;
            keep(x, m);
        } else {
            rv_push(&x->s->mt, m);
        }
        if (m != r2)
            keep(x, r2);
        return;
    }
    keep(x, r2);
}

static void take(stepctx_t *x, const run_t *r, int stage, int k) {
    cst_t *s = x->s;
    run_t *n = run_copy(s, r);
    n->stage = stage;
    n->k = k + 1;
    n->guarded = false;
    if (!n->first)
        ev_set(s, &n->first, x->e);
    ev_set(s, &n->last, x->e);
    if (stage == x->c->skip_stage) {
        if (n->skip_first < 0)
            n->skip_first = x->e->seq;
        n->skip_last = x->e->seq;
    }
    acc_add(x->c, s, n, stage, x->e);
    after_take(x, n);
}

static void expand(stepctx_t *x, const run_t *r, int stage, int k, bool guarded, bool start,
                   bool no_stay);

/* Leave stage `from` (its minimum reached) for the next event stage. */
static void proceed(stepctx_t *x, const run_t *r, int from, bool start, bool no_stay) {
    const cep_conf_t *c = x->c;
    int nx = from + 1;
    if (nx >= c->nst)
        return; /* matched when its last event was taken */
    if (c->st[nx].kind != CEP_EVENT) {
        if (nx == c->nst - 1)
            return; /* trailing negation: entered when the last event was taken */
        expand(x, r, nx + 1, 0, true, start, no_stay);
        return;
    }
    expand(x, r, nx, 0, false, start, no_stay);
}

/*
 * The run r, standing at (stage, k) with `guarded` (the negation before
 * the stage watches), meets event x->e: take it (new run), ignore it
 * (the run stays, per contiguity), or proceed to the next stage with it
 * (the stage's minimum reached). `start`: the closure of a new match
 * (nothing to ignore). `no_stay`: the run the proceed came from stays
 * itself and will proceed again with later events, so staying here too
 * would duplicate it.
 */
static void expand(stepctx_t *x, const run_t *r, int stage, int k, bool guarded, bool start,
                   bool no_stay) {
    const cep_conf_t *c = x->c;
    cst_t *s = x->s;
    const cep_stage_t *st = &c->st[stage];
    if (guarded && eval_cond(c, s, r, &c->st[stage - 1], c->st[stage - 1].cond))
        return; /* the forbidden event came: the run dies */
    bool cond = eval_cond(c, s, r, st, st->cond);
    bool until = k >= 1 && st->until && eval_cond(c, s, r, st, st->until);
    bool can_take = cond && k < st->max && !until;
    if (can_take)
        take(x, r, stage, k);
    bool stay = false;
    if (!start && !no_stay && !until && k < st->max) {
        cep_contig_t ct = k == 0 ? st->contig : st->inner;
        stay = ct == CEP_ANY || (ct == CEP_RELAXED && !cond);
    }
    if (stay) {
        run_t *n = run_copy(s, r);
        n->stage = stage;
        n->k = k;
        n->guarded = guarded && c->st[stage - 1].kind == CEP_NOT_FOLLOWED_BY;
        keep(x, n);
    }
    if (k >= st->min && !(st->greedy && can_take))
        proceed(x, r, stage, start, no_stay || stay);
}

/* A run waiting for the trailing negation meets x->e. */
static void trailing_step(stepctx_t *x, run_t *r) {
    const cep_stage_t *neg = &x->c->st[x->c->nst - 1];
    if (eval_cond(x->c, x->s, r, neg, neg->cond)) {
        run_free(x->s, r);
        return;
    }
    if (neg->kind == CEP_NOT_NEXT)
        rv_push(&x->s->mt, r); /* the next event was not the forbidden one */
    else
        keep(x, r);
}

/* ------------------------------------------------------------ output */

static void out_values(const cep_conf_t *c, cst_t *s, const run_t *r, eddy_value_t *o,
                       eddy_arena_t *a) {
    int nby = c->by.nby;
    for (int i = 0; i < nby; i++)
        eddy__expr_eval(c->by.by[i], r->first->v, a, &o[i]);
    o[nby] = (eddy_value_t){.type = EDDY_TYPE_TIMESTAMP, .u.i = r->first->ts};
    o[nby + 1] = (eddy_value_t){.type = EDDY_TYPE_TIMESTAMP, .u.i = r->last->ts};
    memcpy(s->row, r->last->v, sizeof(eddy_value_t) * (size_t)c->nin);
    fill_refs(c, s, r, c->orefs, c->norefs);
    for (int i = 0; i < c->nout; i++)
        eddy__expr_eval(c->out[i], s->row, a, &o[nby + 2 + i]);
    int no = nby + 2 + c->nout;
    for (int i = 0; i < no; i++)
        if ((o[i].type == EDDY_TYPE_STRING || o[i].type == EDDY_TYPE_BYTES) && o[i].len)
            o[i].u.s = eddy_arena_strndup(a, o[i].u.s, o[i].len);
}

static eddy_err_t emit_match(eddy_op_t *op, kst_t *k, const run_t *r, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    eddy_arena_t *a = out->arena;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)c->outs->nfields);
    out_values(c, s, r, o, a);
    eddy_rec_t *rec = eddy_batch_push(out);
    memset(rec, 0, sizeof(*rec));
    rec->vals = o;
    rec->ts_ms = r->last->ts;
    rec->key = eddy_arena_strndup(a, k->key, k->klen);
    rec->key_len = k->klen;
    s->enc.len = 0;
    eddy__row_encode(&s->enc, c->outs->nfields, o);
    return eddy__store_append(s->log, k->key, k->klen, r->last->ts, s->enc.p, s->enc.len);
}

static void emit_timeout(eddy_op_t *op, kst_t *k, const run_t *r, int64_t due) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    if (c->timeouts_node < 0)
        return;
    eddy_arena_t *a = eddy__task_arena(op->task);
    int nf = c->touts->nfields;
    eddy_value_t *o = eddy_arena_alloc(a, sizeof(eddy_value_t) * (size_t)nf);
    out_values(c, s, r, o, a);
    /* what the run was waiting for: its stage, or the next one when it
     * cannot take more */
    int w = r->stage;
    if (r->k >= c->st[w].max)
        w++;
    while (w < c->nst - 1 && c->st[w].kind != CEP_EVENT)
        w++;
    const char *nm = c->st[w < c->nst ? w : c->nst - 1].name;
    o[nf - 1] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(nm)};
    o[nf - 1].u.s = nm;
    eddy_rec_t rec = {.vals = o, .ts_ms = due, .key = k->key, .key_len = k->klen};
    eddy_batch_t b = {.schema = c->touts, .recs = &rec, .n = 1, .cap = 1, .arena = a};
    eddy__task_side_output(op->task, c->timeouts_node, &b);
}

/* The skip strategy after match m: discard runs (and later matches of the
 * same step) that started in [lo, hi). */
static void skip_range(const cep_conf_t *c, const run_t *m, int64_t *lo, int64_t *hi) {
    *lo = m->first->seq;
    *hi = *lo;
    switch (c->skip) {
    case CEP_NO_SKIP:
        *hi = *lo;
        break;
    case CEP_SKIP_TO_NEXT:
        *hi = *lo + 1;
        break;
    case CEP_SKIP_PAST_LAST:
        *hi = m->last->seq + 1;
        break;
    case CEP_SKIP_TO_FIRST:
        *hi = m->skip_first >= 0 ? m->skip_first : *lo;
        break;
    case CEP_SKIP_TO_LAST:
        *hi = m->skip_last >= 0 ? m->skip_last : *lo;
        break;
    }
}

static void prune(cst_t *s, runvec_t *v, int from, int64_t lo, int64_t hi) {
    int w = from;
    for (int i = from; i < v->n; i++) {
        int64_t st = v->v[i]->first->seq;
        if (st >= lo && st < hi)
            run_free(s, v->v[i]);
        else
            v->v[w++] = v->v[i];
    }
    v->n = w;
}

static int cmp_start(const void *a, const void *b) {
    const run_t *x = *(run_t *const *)a, *y = *(run_t *const *)b;
    return x->first->seq < y->first->seq ? -1 : x->first->seq > y->first->seq;
}

static void maybe_flush(eddy_op_t *op, eddy_batch_t *out) {
    if (out->n >= 1024)
        eddy__op_emit_flush(op, out);
}

/* Emit the matches found in s->mt (in order of their first event) and
 * apply the skip strategy to them and to the runs in s->nr. */
static eddy_err_t finish_matches(eddy_op_t *op, kst_t *k, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    eddy_err_t e = EDDY_OK;
    if (s->mt.n > 1) {
        /* stable: insertion sort keeps the order of equal starts */
        for (int i = 1; i < s->mt.n; i++) {
            run_t *t = s->mt.v[i];
            int j = i - 1;
            while (j >= 0 && cmp_start(&s->mt.v[j], &t) > 0) {
                s->mt.v[j + 1] = s->mt.v[j];
                j--;
            }
            s->mt.v[j + 1] = t;
        }
    }
    for (int i = 0; i < s->mt.n; i++) {
        run_t *m = s->mt.v[i];
        if (!e)
            e = emit_match(op, k, m, out);
        int64_t lo, hi;
        skip_range(c, m, &lo, &hi);
        if (hi > lo) {
            prune(s, &s->nr, 0, lo, hi);
            prune(s, &s->mt, i + 1, lo, hi);
        }
        run_free(s, m);
    }
    s->mt.n = 0;
    return e;
}

static void mark_dirty(cst_t *s, kst_t *k) {
    if (k->dirty)
        return;
    k->dirty = true;
    if (s->ndirty == s->dcap) {
        s->dcap = s->dcap ? 2 * s->dcap : 256;
        s->dirty = eddy_realloc(s->dirty, sizeof(kst_t *) * s->dcap);
    }
    k->dpos = s->ndirty;
    s->dirty[s->ndirty++] = k;
}

/* Replace the key's runs with s->nr. */
static void install_runs(cst_t *s, kst_t *k) {
    if (k->cap < s->nr.n) {
        k->cap = s->nr.n;
        k->runs = eddy_realloc(k->runs, sizeof(run_t *) * (size_t)k->cap);
    }
    if (s->nr.n)
        memcpy(k->runs, s->nr.v, sizeof(run_t *) * (size_t)s->nr.n);
    k->nruns = s->nr.n;
    s->nr.n = 0;
}

/* Is run r's time up at t? Without within only at the end of the input,
 * and only for a trailing not_next (nothing else can come). */
static bool run_up(const cep_conf_t *c, const run_t *r, int64_t t) {
    if (c->within)
        return r->first->ts + c->within <= t;
    return t == INT64_MAX && r->stage == c->nst;
}

/* Runs of k whose time is up at t: timed out (side output), or, waiting
 * for a trailing negation, matched. */
static eddy_err_t expire(eddy_op_t *op, kst_t *k, int64_t t, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    if (!c->within && t != INT64_MAX)
        return EDDY_OK;
    if (c->within && t < k->due_min)
        return EDDY_OK; /* nothing is due yet (the common case) */
    bool any = false;
    for (int i = 0; i < k->nruns && !any; i++)
        any = run_up(c, k->runs[i], t);
    if (!any)
        return EDDY_OK;
    s->nr.n = 0;
    for (int i = 0; i < k->nruns; i++) {
        run_t *r = k->runs[i];
        int64_t due = c->within ? r->first->ts + c->within : INT64_MAX;
        if (!run_up(c, r, t)) {
            rv_push(&s->nr, r);
        } else if (r->stage == c->nst) {
            rv_push(&s->mt, r); /* no forbidden event in time: a match */
        } else {
            emit_timeout(op, k, r, due);
            run_free(s, r);
        }
    }
    eddy_err_t e = finish_matches(op, k, out);
    install_runs(s, k);
    mark_dirty(s, k);
    k->due_min = INT64_MIN; /* recomputed by schedule() */
    return e;
}

/* The timer heap: one entry per key whose runs can time out, at the
 * earliest time one of them does (k->timer); k->hpos is its place. */
static void heap_place(cst_t *s, size_t i, kst_t *k) {
    s->heap[i] = k;
    k->hpos = (int64_t)i;
}

static void heap_up(cst_t *s, size_t i) {
    kst_t *k = s->heap[i];
    while (i > 0 && s->heap[(i - 1) / 2]->timer > k->timer) {
        heap_place(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_place(s, i, k);
}

static void heap_down(cst_t *s, size_t i) {
    kst_t *k = s->heap[i];
    size_t n = s->nheap;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n)
            break;
        size_t m = l + 1 < n && s->heap[l + 1]->timer < s->heap[l]->timer ? l + 1 : l;
        if (s->heap[m]->timer >= k->timer)
            break;
        heap_place(s, i, s->heap[m]);
        i = m;
    }
    heap_place(s, i, k);
}

static void heap_remove(cst_t *s, kst_t *k) {
    if (k->hpos < 0)
        return;
    size_t i = (size_t)k->hpos;
    k->hpos = -1;
    k->timer = INT64_MAX;
    kst_t *last = s->heap[--s->nheap];
    if (i == s->nheap)
        return;
    heap_place(s, i, last);
    heap_up(s, i);
    heap_down(s, (size_t)last->hpos);
}

/* Set the key's timer to the earliest due time of its runs. */
static void schedule(cst_t *s, const cep_conf_t *c, kst_t *k) {
    if (!c->within)
        return;
    int64_t due = INT64_MAX;
    for (int i = 0; i < k->nruns; i++)
        if (k->runs[i]->first->ts + c->within < due)
            due = k->runs[i]->first->ts + c->within;
    k->due_min = due;
    if (due == k->timer)
        return;
    if (due == INT64_MAX) {
        heap_remove(s, k);
        return;
    }
    int64_t was = k->timer;
    k->timer = due;
    if (k->hpos < 0) {
        if (s->nheap == s->hcap) {
            s->hcap = s->hcap ? 2 * s->hcap : 256;
            s->heap = eddy_realloc(s->heap, sizeof(*s->heap) * s->hcap);
        }
        k->hpos = (int64_t)s->nheap++;
        s->heap[k->hpos] = k;
        heap_up(s, (size_t)k->hpos);
    } else if (due < was) {
        heap_up(s, (size_t)k->hpos);
    } else {
        heap_down(s, (size_t)k->hpos);
    }
}

/* Run one event through the key's pattern. */
static eddy_err_t step(eddy_op_t *op, kst_t *k, ev_t *e, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    eddy_err_t err;
    e->seq = k->next_seq++;
    if ((err = expire(op, k, e->ts, out)))
        return err;
    memcpy(s->row, e->v, sizeof(eddy_value_t) * (size_t)c->nin);
    stepctx_t x = {.c = c, .s = s, .k = k, .e = e};
    s->nr.n = 0;
    for (int i = 0; i < k->nruns; i++) {
        run_t *r = k->runs[i];
        if (r->stage == c->nst)
            trailing_step(&x, r);
        else {
            expand(&x, r, r->stage, r->k, r->guarded, false, false);
            run_free(s, r);
        }
    }
    k->nruns = 0;
    /* a new match may start with every event */
    expand(&x, s->r0, 0, 0, false, true, false);
    if (x.full) {
        char why[200];
        snprintf(why, sizeof(why),
                 "cep: the key holds %d partial matches; branches beyond are dropped",
                 CEP_MAX_RUNS);
        eddy__task_dead_letter(op->task, why, op->node->name, -1, e->seq, NULL, 0);
    }
    err = finish_matches(op, k, out);
    install_runs(s, k);
    schedule(s, c, k);
    mark_dirty(s, k);
    maybe_flush(op, out);
    return err;
}

/* ------------------------------------------------------------- keys */

static uint64_t key_hash(const char *key, uint32_t klen) {
    uint64_t h = eddy__hash64(key, klen);
    return h ? h : 1; /* 0 marks an empty slot */
}

static size_t key_slot(const cst_t *s, uint64_t h) { return (size_t)h & (s->tcap - 1); }

static kst_t *key_find(const cst_t *s, const char *key, uint32_t klen, uint64_t h) {
    if (!s->tcap)
        return NULL;
    for (size_t i = key_slot(s, h);; i = (i + 1) & (s->tcap - 1)) {
        const kslot_t *sl = &s->tab[i];
        if (!sl->h)
            return NULL;
        if (sl->h == h && sl->k->klen == klen && !memcmp(sl->k->key, key, klen))
            return sl->k;
    }
}

static void key_insert_slot(cst_t *s, kst_t *k) {
    size_t i = key_slot(s, k->h);
    while (s->tab[i].h)
        i = (i + 1) & (s->tcap - 1);
    s->tab[i] = (kslot_t){k->h, k};
}

/* Prefetch the table slot of hash h (a chunk of records ahead). */
static inline void key_prefetch_slot(const cst_t *s, uint64_t h) {
    if (s->tcap)
        __builtin_prefetch(&s->tab[key_slot(s, h)]);
}

/* Prefetch the state of the key whose hash is h when its slot (prefetched
 * before) holds it. */
static inline void key_prefetch_state(const cst_t *s, uint64_t h) {
    if (!s->tcap)
        return;
    const kslot_t *sl = &s->tab[key_slot(s, h)];
    if (sl->h == h)
        __builtin_prefetch(sl->k);
}

static kst_t *key_add(cst_t *s, const char *key, uint32_t klen, uint64_t h) {
    if (2 * (s->nkeys + 1) > s->tcap) {
        size_t oc = s->tcap;
        kslot_t *ot = s->tab;
        s->tcap = oc ? 2 * oc : 1024;
        s->tab = eddy_calloc(s->tcap, sizeof(kslot_t));
        for (size_t i = 0; i < oc; i++)
            if (ot[i].h)
                key_insert_slot(s, ot[i].k);
        eddy_free(ot);
    }
    kst_t *k = klen <= KEY_INLINE ? pool_get(&s->keyp) : eddy_malloc(sizeof(*k) + klen + 1);
    memset(k, 0, sizeof(*k));
    memcpy(k->kbuf, key, klen);
    k->kbuf[klen] = 0;
    k->key = k->kbuf;
    k->klen = klen;
    k->h = h;
    k->timer = INT64_MAX;
    k->due_min = INT64_MAX;
    k->hpos = -1;
    key_insert_slot(s, k);
    s->nkeys++;
    return k;
}

/* Take k out of the table (backward-shift deletion: no tombstones). */
static void key_unlink(cst_t *s, const kst_t *k) {
    size_t m = s->tcap - 1, i = key_slot(s, k->h);
    while (s->tab[i].k != k)
        i = (i + 1) & m;
    for (size_t j = (i + 1) & m;; j = (j + 1) & m) {
        if (!s->tab[j].h)
            break;
        size_t home = key_slot(s, s->tab[j].h);
        /* the entry at j may move to i when i lies between its home and j */
        if (((j - home) & m) >= ((j - i) & m)) {
            s->tab[i] = s->tab[j];
            i = j;
        }
    }
    s->tab[i] = (kslot_t){0, NULL};
    s->nkeys--;
}

static void key_release(cst_t *s, kst_t *k) {
    if (k->klen <= KEY_INLINE)
        pool_put(&s->keyp, k);
    else
        eddy_free(k);
}

static void key_free(cst_t *s, kst_t *k) {
    key_unlink(s, k);
    heap_remove(s, k);
    if (k->dirty) {
        kst_t *last = s->dirty[--s->ndirty];
        s->dirty[k->dpos] = last;
        last->dpos = k->dpos;
    }
    for (int i = 0; i < k->nruns; i++)
        run_free(s, k->runs[i]);
    eddy_free(k->runs);
    key_release(s, k);
}

static bool key_empty(const kst_t *k) { return k->nruns == 0 && k->npend == 0; }

/* A key with nothing left goes, unless the store still holds its state
 * (then the commit deletes that first, and frees the key). */
static void maybe_free(cst_t *s, kst_t *k) {
    if (key_empty(k) && !k->stored)
        key_free(s, k);
}

/* ----------------------------------------------------------- state i/o */

static void put_s(eddy_buf_t *b, int64_t v) {
    eddy__varint_put(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

typedef struct {
    const char *p;
    size_t n;
    bool bad;
} rd_t;

static uint64_t get_u(rd_t *r) {
    uint64_t v = 0;
    size_t u = r->bad ? 0 : eddy__varint_get(r->p, r->n, &v);
    if (!u) {
        r->bad = true;
        return 0;
    }
    r->p += u;
    r->n -= u;
    return v;
}
static int64_t get_s(rd_t *r) {
    uint64_t v = get_u(r);
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static void note_ev(ev_t ***evs, int *nev, int *cap, ev_t *e) {
    if (!e || e->mark >= 0)
        return;
    if (*nev == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *evs = eddy_realloc(*evs, sizeof(ev_t *) * (size_t)*cap);
    }
    e->mark = *nev;
    (*evs)[(*nev)++] = e;
}

/* Encode a key's state: its events (those runs refer to and its buffered
 * records), then its runs. */
static void encode_key(const cep_conf_t *c, cst_t *s, kst_t *k, ev_t **pend, int npend) {
    ev_t **evs = s->evs;
    int nev = 0, cap = s->evcap;
    for (int i = 0; i < npend; i++)
        pend[i]->mark = -1;
    for (int i = 0; i < k->nruns; i++) {
        run_t *r = k->runs[i];
        r->first->mark = r->last->mark = -1;
        for (int j = 0; j < c->nacc; j++) {
            acc_t *a = &r->acc[j];
            if (a->first)
                a->first->mark = -1;
            if (a->last)
                a->last->mark = -1;
            if (a->mn)
                a->mn->mark = -1;
            if (a->mx)
                a->mx->mark = -1;
        }
    }
    for (int i = 0; i < npend; i++)
        note_ev(&evs, &nev, &cap, pend[i]);
    for (int i = 0; i < k->nruns; i++) {
        run_t *r = k->runs[i];
        note_ev(&evs, &nev, &cap, r->first);
        note_ev(&evs, &nev, &cap, r->last);
        for (int j = 0; j < c->nacc; j++) {
            note_ev(&evs, &nev, &cap, r->acc[j].first);
            note_ev(&evs, &nev, &cap, r->acc[j].last);
            note_ev(&evs, &nev, &cap, r->acc[j].mn);
            note_ev(&evs, &nev, &cap, r->acc[j].mx);
        }
    }
    eddy_buf_t *b = &s->enc;
    b->len = 0;
    eddy__varint_put(b, 1); /* format */
    put_s(b, k->next_seq);
    put_s(b, k->next_arr);
    eddy__varint_put(b, (uint64_t)npend);
    eddy__varint_put(b, (uint64_t)nev);
    for (int i = 0; i < nev; i++) {
        put_s(b, evs[i]->seq);
        put_s(b, evs[i]->ts);
        put_s(b, evs[i]->arr);
        put_s(b, evs[i]->part);
        put_s(b, evs[i]->off);
        eddy__row_encode(b, c->nin, evs[i]->v);
    }
#define IDX(e) eddy__varint_put(b, (e) ? (uint64_t)(e)->mark + 1 : 0)
    eddy__varint_put(b, (uint64_t)k->nruns);
    for (int i = 0; i < k->nruns; i++) {
        run_t *r = k->runs[i];
        eddy__varint_put(b, (uint64_t)r->stage);
        eddy__varint_put(b, (uint64_t)r->k);
        eddy__varint_put(b, r->guarded);
        put_s(b, r->skip_first);
        put_s(b, r->skip_last);
        IDX(r->first);
        IDX(r->last);
        for (int j = 0; j < c->nacc; j++) {
            acc_t *a = &r->acc[j];
            put_s(b, a->n);
            put_s(b, a->si);
            eddy_buf_put(b, &a->sd, 8);
            IDX(a->first);
            IDX(a->last);
            IDX(a->mn);
            IDX(a->mx);
        }
    }
#undef IDX
    s->evs = evs;
    s->evcap = cap;
}

/* Event time, then the source position (deterministic across runs and
 * restarts for replayable sources), then arrival. */
static bool pend_less(const ev_t *x, const ev_t *y) {
    if (x->ts != y->ts)
        return x->ts < y->ts;
    if (x->part != y->part)
        return x->part < y->part;
    if (x->off != y->off)
        return x->off < y->off;
    return x->garr < y->garr;
}

/* The buffered records: those that arrive in order (the common case) are
 * appended to a FIFO, the others go to a min-heap; the next one due is
 * the smaller of the two fronts. */
static void heap_push_ev(cst_t *s, ev_t *e) {
    if (s->npend == s->pcap) {
        s->pcap = s->pcap ? 2 * s->pcap : 1024;
        s->pend = eddy_realloc(s->pend, sizeof(ev_t *) * s->pcap);
    }
    size_t i = s->npend++;
    while (i > 0 && pend_less(e, s->pend[(i - 1) / 2])) {
        s->pend[i] = s->pend[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->pend[i] = e;
}

static void pend_push(cst_t *s, ev_t *e) {
    if (s->fn > s->fhead && pend_less(e, s->fifo[s->fn - 1])) {
        heap_push_ev(s, e);
        return;
    }
    if (s->fn == s->fcap) {
        if (s->fhead) { /* reuse the consumed front */
            memmove(s->fifo, s->fifo + s->fhead, sizeof(ev_t *) * (s->fn - s->fhead));
            s->fn -= s->fhead;
            s->fhead = 0;
        }
        if (s->fn == s->fcap) {
            s->fcap = s->fcap ? 2 * s->fcap : 1024;
            s->fifo = eddy_realloc(s->fifo, sizeof(ev_t *) * s->fcap);
        }
    }
    s->fifo[s->fn++] = e;
}

/* The next buffered record in order, or NULL. */
static ev_t *pend_peek(const cst_t *s) {
    ev_t *f = s->fn > s->fhead ? s->fifo[s->fhead] : NULL;
    ev_t *h = s->npend ? s->pend[0] : NULL;
    return !f ? h : !h ? f : pend_less(h, f) ? h : f;
}

static size_t pend_count(const cst_t *s) { return s->npend + (s->fn - s->fhead); }

static ev_t *heap_pop_ev(cst_t *s) {
    ev_t *top = s->pend[0], *last = s->pend[--s->npend];
    size_t i = 0, n = s->npend;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n)
            break;
        size_t m = l + 1 < n && pend_less(s->pend[l + 1], s->pend[l]) ? l + 1 : l;
        if (!pend_less(s->pend[m], last))
            break;
        s->pend[i] = s->pend[m];
        i = m;
    }
    if (n)
        s->pend[i] = last;
    return top;
}

static ev_t *pend_pop(cst_t *s) {
    ev_t *e = pend_peek(s);
    if (s->npend && e == s->pend[0])
        return heap_pop_ev(s);
    s->fhead++;
    if (s->fhead == s->fn)
        s->fhead = s->fn = 0;
    return e;
}

/* Decode a key's state written by encode_key(). */
static eddy_err_t decode_key(const cep_conf_t *c, cst_t *s, kst_t *k, const char *v,
                             size_t vl) {
    rd_t r = {v, vl, false};
    eddy_value_t *vals = eddy_calloc((size_t)c->nin + 1, sizeof(eddy_value_t));
    ev_t **evs = NULL;
    uint64_t nev = 0, npend = 0;
    eddy_err_t err = EDDY_ERR_DECODE;
    if (get_u(&r) != 1)
        goto out;
    k->next_seq = get_s(&r);
    k->next_arr = get_s(&r);
    npend = get_u(&r);
    nev = get_u(&r);
    if (r.bad || npend > nev || nev > r.n)
        goto out;
    evs = eddy_calloc(nev + 1, sizeof(ev_t *));
    for (uint64_t i = 0; i < nev; i++) {
        int64_t seq = get_s(&r), ts = get_s(&r), arr = get_s(&r);
        int64_t part = get_s(&r), off = get_s(&r);
        size_t used = 0;
        if (r.bad || eddy__row_decode_prefix(r.p, r.n, c->nin, vals, &used))
            goto out;
        r.p += used;
        r.n -= used;
        evs[i] = ev_new(s, c, vals, ts);
        evs[i]->seq = seq;
        evs[i]->arr = arr;
        evs[i]->part = part;
        evs[i]->off = off;
        evs[i]->refs = 0;
    }
    uint64_t nruns = get_u(&r);
    if (r.bad || nruns > r.n)
        goto out;
#define EV(dst)                                                                          \
    do {                                                                                 \
        uint64_t ix_ = get_u(&r);                                                        \
        if (ix_ > nev) {                                                                 \
            r.bad = true;                                                                \
            break;                                                                       \
        }                                                                                \
        (dst) = ix_ ? evs[ix_ - 1] : NULL;                                               \
        if (dst)                                                                         \
            (dst)->refs++;                                                               \
    } while (0)
    for (uint64_t i = 0; i < nruns && !r.bad; i++) {
        run_t *run = eddy_calloc(1, s->run_size);
        run->stage = (int)get_u(&r);
        run->k = (int)get_u(&r);
        run->guarded = get_u(&r) != 0;
        run->skip_first = get_s(&r);
        run->skip_last = get_s(&r);
        EV(run->first);
        EV(run->last);
        for (int j = 0; j < c->nacc && !r.bad; j++) {
            acc_t *a = &run->acc[j];
            a->n = get_s(&r);
            a->si = get_s(&r);
            if (r.n < 8) {
                r.bad = true;
                break;
            }
            memcpy(&a->sd, r.p, 8);
            r.p += 8;
            r.n -= 8;
            EV(a->first);
            EV(a->last);
            EV(a->mn);
            EV(a->mx);
        }
        if (k->nruns == k->cap) {
            k->cap = k->cap ? 2 * k->cap : 4;
            k->runs = eddy_realloc(k->runs, sizeof(run_t *) * (size_t)k->cap);
        }
        k->runs[k->nruns++] = run;
        if (r.bad || run->stage < 0 || run->stage > c->nst || !run->first || !run->last)
            r.bad = true;
    }
#undef EV
    if (r.bad)
        goto out;
    for (uint64_t i = 0; i < npend; i++) {
        evs[i]->refs++;
        evs[i]->k = k;
        evs[i]->garr = s->garr++;
        k->npend++;
        pend_push(s, evs[i]);
    }
    err = EDDY_OK;
out:
    for (uint64_t i = 0; evs && i < nev; i++)
        if (evs[i] && evs[i]->refs == 0)
            ev_free(s, evs[i]);
    eddy_free(evs);
    eddy_free(vals);
    return err;
}

/* For queries of `<store>.partial`: a key's number of partial matches and
 * buffered records (the events themselves are internal). */
eddy_err_t eddy__cep_decode_partial(const eddy_store_def_t *def, const char *v, size_t vl,
                                    eddy_arena_t *a, eddy_value_t *out) {
    (void)a;
    const cep_conf_t *c = def->owner;
    rd_t r = {v, vl, false};
    if (get_u(&r) != 1)
        return EDDY_ERR_DECODE;
    get_s(&r);
    get_s(&r);
    uint64_t npend = get_u(&r), nev = get_u(&r);
    for (uint64_t i = 0; i < nev && !r.bad; i++) {
        for (int f = 0; f < 5; f++)
            get_s(&r); /* seq, ts, arr, partition, offset */
        size_t used = 0;
        if (eddy__row_skip(r.p, r.n, c->nin, &used))
            return EDDY_ERR_DECODE;
        r.p += used;
        r.n -= used;
    }
    uint64_t nruns = get_u(&r);
    if (r.bad)
        return EDDY_ERR_DECODE;
    out[0] = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = (int64_t)nruns};
    out[1] = (eddy_value_t){.type = EDDY_TYPE_INT, .u.i = (int64_t)npend};
    return EDDY_OK;
}

/* -------------------------------------------------------- the operator */

static eddy_err_t cep_init(eddy_op_t *op, char *errstr, size_t en) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = eddy_calloc(1, sizeof(*s));
    op->state = s;
    s->kv = eddy__task_store(op->task, c->state_store);
    s->log = eddy__task_store(op->task, c->match_store);
    if (!s->kv || !s->log)
        return eddy__cnode_err(op->node->where, errstr, en, "cep: its stores are not open");
    s->row = eddy_calloc((size_t)(c->nin + c->nref) + 1, sizeof(eddy_value_t));
    s->run_size = sizeof(run_t) + sizeof(acc_t) * (size_t)c->nacc;
    s->nacc = c->nacc;
    s->evp.size = sizeof(ev_t) + sizeof(eddy_value_t) * (size_t)c->nin;
    s->runp.size = s->run_size;
    s->keyp.size = sizeof(kst_t) + KEY_INLINE + 1;
    s->r0 = eddy_calloc(1, s->run_size);
    s->r0->skip_first = s->r0->skip_last = -1;
    s->stage_accs = eddy_calloc((size_t)c->nst + 2, sizeof(int));
    s->acc_idx = eddy_calloc((size_t)c->nacc + 1, sizeof(int));
    int w = 0;
    for (int st = 0; st < c->nst; st++) {
        s->stage_accs[st] = w;
        for (int i = 0; i < c->nacc; i++)
            if (c->acc[i].stage == st)
                s->acc_idx[w++] = i;
    }
    s->stage_accs[c->nst] = w;
    s->trailing = c->st[c->nst - 1].kind != CEP_EVENT;
    s->last_ev_stage = s->trailing ? c->nst - 2 : c->nst - 1;
    /* restore every key's state */
    static const char hi[] = "\xff\xff\xff\xff";
    eddy_store_iter_t *it = eddy__store_iter(s->kv, "", 0, hi, 4);
    const char *kk, *v;
    size_t kl, vl;
    while (eddy__store_iter_next(it, &kk, &kl, &v, &vl)) {
        kst_t *k = key_add(s, kk, (uint32_t)kl, key_hash(kk, (uint32_t)kl));
        k->stored = true;
        if (decode_key(c, s, k, v, vl)) {
            eddy__store_iter_destroy(it);
            return eddy__cnode_err(op->node->where, errstr, en,
                                   "cep: the stored state of a key does not decode");
        }
        schedule(s, c, k);
    }
    return eddy__store_iter_destroy(it);
}

static void cep_destroy(eddy_op_t *op) {
    cst_t *s = op->state;
    if (!s)
        return;
    for (size_t i = 0; i < s->npend; i++)
        ev_unref(s, s->pend[i]);
    for (size_t i = s->fhead; i < s->fn; i++)
        ev_unref(s, s->fifo[i]);
    eddy_free(s->fifo);
    for (size_t i = 0; i < s->tcap; i++) {
        kst_t *k = s->tab[i].k;
        if (!k)
            continue;
        for (int j = 0; j < k->nruns; j++)
            run_free(s, k->runs[j]);
        eddy_free(k->runs);
        key_release(s, k);
    }
    eddy_free(s->tab);
    eddy_free(s->r0);
    eddy_free(s->evs);
    pool_drain(&s->evp);
    pool_drain(&s->runp);
    pool_drain(&s->keyp);
    eddy_free(s->pend);
    eddy_free(s->heap);
    eddy_free(s->dirty);
    eddy_free(s->nr.v);
    eddy_free(s->mt.v);
    eddy_free(s->row);
    eddy_free(s->stage_accs);
    eddy_free(s->acc_idx);
    eddy_buf_free(&s->enc);
    eddy_free(s);
}

/* Could event values v start a match? (with no accumulators yet) */
static bool may_start(const cep_conf_t *c, cst_t *s, const eddy_value_t *v) {
    memcpy(s->row, v, sizeof(eddy_value_t) * (size_t)c->nin);
    for (int i = 0; i < c->nref; i++)
        s->row[c->nin + i] = c->ref[i].fn == CEP_F_COUNT
                                 ? (eddy_value_t){.type = EDDY_TYPE_INT}
                                 : (eddy_value_t){.type = EDDY_TYPE_NULL};
    for (int st = 0; st < c->nst; st++) {
        if (c->st[st].kind != CEP_EVENT)
            return true;
        if (eddy__expr_eval_bool(c->st[st].cond, s->row, NULL))
            return true;
        if (c->st[st].min > 0)
            return false;
    }
    return false;
}

/* Hash a chunk of records and prefetch their keys' table slots, then the
 * states of the keys found there: the lookups that follow find them in
 * the cache instead of waiting for memory one after another (the keys
 * of a stream are many and touched in no order). */
static void prefetch_chunk(cst_t *s, const eddy_batch_t *in, uint32_t from, uint32_t n) {
    if (n > in->n - from)
        n = in->n - from;
    for (uint32_t j = 0; j < n; j++) {
        const eddy_rec_t *r = &in->recs[from + j];
        s->hs[j] = key_hash(r->key, r->key_len);
        key_prefetch_slot(s, s->hs[j]);
    }
    for (uint32_t j = 0; j < n; j++)
        key_prefetch_state(s, s->hs[j]);
}

static eddy_err_t cep_process(eddy_op_t *op, const eddy_batch_t *in, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    for (uint32_t i = 0; i < in->n; i++) {
        if (i % CEP_CHUNK == 0)
            prefetch_chunk(s, in, i, CEP_CHUNK);
        const eddy_rec_t *r = &in->recs[i];
        if (op->wm_ms != INT64_MIN && r->ts_ms < op->wm_ms) {
            eddy__task_late(op->task, op->node, in->schema, r);
            continue;
        }
        uint64_t h = s->hs[i % CEP_CHUNK];
        kst_t *k = key_find(s, r->key, r->key_len, h);
        bool now = op->wm_ms != INT64_MIN && r->ts_ms <= op->wm_ms;
        if (!k) {
            /* processed now, with nothing to continue and nothing to
             * start, it leaves no state (a buffered record cannot be
             * judged yet: an earlier one may still come) */
            if (now && !may_start(c, s, r->vals))
                continue;
            k = key_add(s, r->key, r->key_len, h);
        }
        ev_t *e = ev_new(s, c, r->vals, r->ts_ms);
        if (now && k->npend == 0) {
            /* at the watermark: everything before it has been processed */
            eddy_err_t err = step(op, k, e, out);
            ev_unref(s, e);
            if (err)
                return err;
            maybe_free(s, k);
            continue;
        }
        e->arr = k->next_arr++;
        e->garr = s->garr++;
        e->part = r->partition;
        e->off = r->offset;
        e->k = k;
        k->npend++;
        pend_push(s, e);
        mark_dirty(s, k);
    }
    return EDDY_OK;
}

static eddy_err_t cep_watermark(eddy_op_t *op, int64_t wm, eddy_batch_t *out) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    eddy_err_t err = EDDY_OK;
    /* the buffered records up to wm, in event-time order */
    ev_t *e;
    while ((e = pend_peek(s)) && e->ts <= wm) {
        pend_pop(s);
        /* the in-order records ahead: prefetch their keys' states, and
         * (those keys having arrived) the runs of nearer ones */
        if (s->fhead + CEP_CHUNK < s->fn)
            __builtin_prefetch(s->fifo[s->fhead + CEP_CHUNK]->k);
        if (s->fhead + CEP_CHUNK / 2 < s->fn && s->fifo[s->fhead + CEP_CHUNK / 2]->k->nruns)
            __builtin_prefetch(s->fifo[s->fhead + CEP_CHUNK / 2]->k->runs[0]);
        kst_t *k = e->k;
        k->npend--;
        e->k = NULL;
        if (!err)
            err = step(op, k, e, out);
        ev_unref(s, e);
        maybe_free(s, k);
    }
    /* runs whose time is up */
    while (!err && s->nheap && s->heap[0]->timer <= wm) {
        kst_t *k = s->heap[0];
        heap_remove(s, k);
        err = expire(op, k, wm, out);
        schedule(s, c, k);
        maybe_flush(op, out);
        maybe_free(s, k);
    }
    if (!err && wm == INT64_MAX && !c->within && s->trailing) {
        /* the end of the input: a trailing not_next has seen its last chance */
        for (size_t i = 0; i < s->tcap && !err; i++)
            if (s->tab[i].k)
                err = expire(op, s->tab[i].k, wm, out);
    }
    return err;
}

static int cmp_key_arr(const void *a, const void *b) {
    const ev_t *x = *(ev_t *const *)a, *y = *(ev_t *const *)b;
    if (x->k != y->k)
        return (uintptr_t)x->k < (uintptr_t)y->k ? -1 : 1;
    return x->arr < y->arr ? -1 : x->arr > y->arr;
}

static eddy_err_t cep_pre_commit(eddy_op_t *op) {
    const cep_conf_t *c = op->node->conf;
    cst_t *s = op->state;
    eddy_err_t err = EDDY_OK;
    if (!s->ndirty)
        return EDDY_OK;
    /* the buffered records of the dirty keys, grouped by key */
    ev_t **pend = NULL;
    size_t np = 0;
    if (pend_count(s)) {
        np = pend_count(s);
        pend = eddy_malloc(sizeof(ev_t *) * np);
        if (s->npend)
            memcpy(pend, s->pend, sizeof(ev_t *) * s->npend);
        memcpy(pend + s->npend, s->fifo + s->fhead, sizeof(ev_t *) * (s->fn - s->fhead));
    }
    /* buffered records grouped by key, in arrival order within a key */
    if (np) {
        qsort(pend, np, sizeof(ev_t *), cmp_key_arr);
        for (size_t i = np; i-- > 0;)
            pend[i]->k->pofs = i;
    }
    for (size_t d = 0; d < s->ndirty && !err; d++) {
        kst_t *k = s->dirty[d];
        k->dirty = false;
        if (key_empty(k)) {
            if (k->stored)
                err = eddy__store_del(s->kv, k->key, k->klen);
            k->stored = false;
            continue;
        }
        encode_key(c, s, k, k->npend ? pend + k->pofs : NULL, k->npend);
        err = eddy__store_put(s->kv, k->key, k->klen, s->enc.p, s->enc.len);
        k->stored = true;
    }
    size_t nd = s->ndirty;
    s->ndirty = 0;
    for (size_t d = 0; d < nd; d++) {
        s->dirty[d]->dirty = false;
        maybe_free(s, s->dirty[d]);
    }
    eddy_free(pend);
    return err;
}

static bool cep_may_be_late(const eddy_node_t *n, int64_t ts, int64_t wm) {
    (void)n;
    return wm != INT64_MIN && ts < wm;
}

const eddy_op_ops_t eddy__op_cep = {
    .abi = EDDY_OP_ABI,
    .name = "cep",
    .compile = eddy__cep_compile,
    .free_conf = eddy__cep_free,
    .init = cep_init,
    .process = cep_process,
    .on_watermark = cep_watermark,
    .destroy = cep_destroy,
    .exchange_key = eddy__cep_exchange_key,
    .may_be_late = cep_may_be_late,
    .pre_commit = cep_pre_commit,
};
