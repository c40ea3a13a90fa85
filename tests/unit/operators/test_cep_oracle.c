/*
 * CEP against a brute-force oracle: random patterns (strict, relaxed and
 * non-deterministic contiguity; times n..m, one_or_more, times_or_more,
 * optional, greedy, until, consecutive / allow_combinations loops;
 * not_next and not_followed_by in the middle and at the end; within; every
 * skip strategy) over random keyed input pushed with disorder and late
 * records, several seeds. The operator's matches and timed-out partial
 * matches must equal the oracle's exactly (as multisets of records).
 *
 * The oracle is written from docs/cep.md, not from operators/cep.c's data
 * structures: per key it sorts the records that are not late by event
 * time and, for every event that may start a match, enumerates every path
 * through the pattern one at a time (depth first: at each later event,
 * take it into a stage, or ignore it where the contiguity allows, waiting
 * at the earliest stage that can wait), with no shared runs, buffers,
 * timers or hash tables. The skip strategy and `within` are applied
 * afterwards, in the order the operator emits (the event that completes a
 * match, then the match's first event, then path order), with expiries at
 * the first event or watermark at or after first + within.
 *
 * Each record has v = 2^i (i: its index within its key) and the output
 * has sum(stage.v) per event stage, so a line names exactly the events
 * each stage took. EDDY_CEP_ORACLE_SEEDS=N runs N seeds (default 40).
 */
#include "window_harness.h"

#define MAXST 5
#define MAXEV 11
#define NKEYS 3
#define INFN (1 << 30)
#define OOO 25 /* max_out_of_orderness: watermarks end in 5, event times in 0 */

enum { EV, NN, NFB };
enum { STRICT, RELAXED, ANY };
enum { NO_SKIP, TO_NEXT, PAST_LAST, TO_FIRST, TO_LAST };

typedef struct {
    int kind, contig, inner, min, max;
    bool greedy;
    unsigned cond, until; /* sets of letters a..d (bit 0: a) */
} ost_t;

typedef struct {
    int nst;
    ost_t st[MAXST];
    int64_t within;
    int skip, skip_stage;
} opat_t;

typedef struct {
    int64_t ts, v;
    int t;   /* letter */
    int key; /* 0..NKEYS-1 */
    bool late;
} oev_t;

/* A path: where it stands and what it took. */
typedef struct {
    int j, k;
    bool guarded;
    int first, last, sf, sl; /* event indexes within the key; sf/sl: skip stage */
    int64_t sum[MAXST];
    bool have[MAXST];
} opath_t;

/* Something the operator would emit for one key. */
typedef struct {
    int kind;    /* 0 match at a step, 1 expiry of a start (timeout or trailing match) */
    int64_t at;  /* step: the event's index; expiry: the call's order (see call_order) */
    int start;   /* first event's index */
    long order;  /* path order (depth first) */
    bool timeout;
    opath_t p;
} oout_t;

typedef struct {
    const opat_t *P;
    const oev_t *E; /* the key's records, not late, by event time */
    int n;
    oout_t *out;
    int nout, cap;
    long order;
    int start;
} octx_t;

static bool has(unsigned set, int t) { return (set >> t) & 1; }

static void out_push(octx_t *x, int kind, int64_t at, bool timeout, const opath_t *p) {
    if (x->nout == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 256;
        x->out = realloc(x->out, sizeof(*x->out) * (size_t)x->cap);
    }
    x->out[x->nout++] = (oout_t){kind, at, x->start, x->order++, timeout, *p};
}

static int last_ev_stage(const opat_t *P) {
    return P->st[P->nst - 1].kind == EV ? P->nst - 1 : P->nst - 2;
}

static void walk(octx_t *x, opath_t p, int i);

/* Path p meets event i (not past within) at stage j with k taken. */
static void at_event(octx_t *x, const opath_t *p, int i, int j, int k, bool guarded, bool start,
                     bool waited);

static void taken(octx_t *x, opath_t q, int i) {
    const opat_t *P = x->P;
    int le = last_ev_stage(P);
    if (q.j == le && q.k >= P->st[le].min) {
        if (P->st[P->nst - 1].kind != EV) {
            /* waits for the trailing negation to pass */
            opath_t w = q;
            w.j = P->nst;
            w.k = 0;
            w.guarded = true;
            walk(x, w, i + 1);
        } else {
            out_push(x, 0, i, false, &q);
        }
        if (q.k >= P->st[le].max)
            return;
    }
    walk(x, q, i + 1);
}

static void at_event(octx_t *x, const opath_t *p, int i, int j, int k, bool guarded, bool start,
                     bool waited) {
    const opat_t *P = x->P;
    const ost_t *st = &P->st[j];
    int t = x->E[i].t;
    if (guarded && has(P->st[j - 1].cond, t))
        return;
    bool cond = has(st->cond, t);
    bool until = k >= 1 && st->until && has(st->until, t);
    bool can_take = cond && k < st->max && !until;
    if (can_take) {
        opath_t q = *p;
        q.j = j;
        q.k = k + 1;
        q.guarded = false;
        if (q.first < 0)
            q.first = i;
        q.last = i;
        if (j == P->skip_stage) {
            if (q.sf < 0)
                q.sf = i;
            q.sl = i;
        }
        q.sum[j] += x->E[i].v;
        q.have[j] = true;
        taken(x, q, i);
    }
    /* ignore it: only at the earliest stage that can wait */
    bool wait = false;
    if (!start && !waited && !until && k < st->max) {
        int ct = k == 0 ? st->contig : st->inner;
        wait = ct == ANY || (ct == RELAXED && !cond);
    }
    if (wait) {
        opath_t q = *p;
        q.j = j;
        q.k = k;
        q.guarded = guarded && P->st[j - 1].kind == NFB;
        walk(x, q, i + 1);
    }
    if (k >= st->min && !(st->greedy && can_take)) {
        int nx = j + 1;
        if (nx >= P->nst)
            return;
        if (P->st[nx].kind != EV) {
            if (nx == P->nst - 1)
                return;
            at_event(x, p, i, nx + 1, 0, true, start, waited || wait);
        } else {
            at_event(x, p, i, nx, 0, false, start, waited || wait);
        }
    }
}

/* Path p continues at event i. */
static void walk(octx_t *x, opath_t p, int i) {
    const opat_t *P = x->P;
    int64_t due = P->within ? x->E[x->start].ts + P->within : INT64_MAX;
    if (i >= x->n || x->E[i].ts >= due) {
        /* alive when its time is up (or at the end of the input) */
        if (P->within || p.j == P->nst)
            out_push(x, 1, 0, p.j != P->nst, &p);
        return;
    }
    if (p.j == P->nst) {
        const ost_t *neg = &P->st[P->nst - 1];
        if (has(neg->cond, x->E[i].t))
            return;
        if (neg->kind == NN) {
            out_push(x, 0, i, false, &p);
            return;
        }
        walk(x, p, i + 1);
        return;
    }
    at_event(x, &p, i, p.j, p.k, p.guarded, false, false);
}

static void fmt_line(char *l, size_t cap, const opat_t *P, int key, const oev_t *E,
                     const opath_t *p, bool timeout) {
    int off = snprintf(l, cap, "{\"k\":\"k%d\",\"match_start\":%" PRId64 ",\"match_end\":%" PRId64,
                       key, E[p->first].ts, E[p->last].ts);
    for (int j = 0; j < P->nst; j++) {
        if (P->st[j].kind != EV)
            continue;
        if (p->have[j])
            off += snprintf(l + off, cap - (size_t)off, ",\"s%d\":%" PRId64, j, p->sum[j]);
        else
            off += snprintf(l + off, cap - (size_t)off, ",\"s%d\":null", j);
    }
    if (timeout) {
        int w = p->j;
        if (p->k >= P->st[w].max)
            w++;
        while (w < P->nst - 1 && P->st[w].kind != EV)
            w++;
        off += snprintf(l + off, cap - (size_t)off, ",\"waiting_for\":\"s%d\"",
                        w < P->nst ? w : P->nst - 1);
    }
    snprintf(l + off, cap - (size_t)off, "}");
}

typedef struct {
    char **v;
    size_t n, cap;
} lines_t;

static void lines_add(lines_t *ls, const char *l) {
    if (ls->n == ls->cap) {
        ls->cap = ls->cap ? 2 * ls->cap : 64;
        ls->v = realloc(ls->v, sizeof(char *) * ls->cap);
    }
    ls->v[ls->n++] = strdup(l);
}

static int cmp_out(const void *a, const void *b) {
    const oout_t *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    if (x->start != y->start)
        return x->start - y->start;
    return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * One key: enumerate, then emit in the operator's order with the skip
 * strategy. Times: step i happens at E[i].ts; an expiry of start s at the
 * first "call" at or after its due time: the key's events (a step expires
 * first) and the watermarks (ws: the distinct watermark values, ascending,
 * the last INT64_MAX). Steps and calls are ordered by time into one
 * sequence (event times end in 0 and watermarks in 5, so no ties).
 */
static void oracle_key(const opat_t *P, int key, const oev_t *E, int n, const int64_t *ws,
                       int nws, lines_t *matches, lines_t *timeouts) {
    octx_t x = {.P = P, .E = E, .n = n};
    opath_t p0;
    memset(&p0, 0, sizeof(p0));
    p0.first = p0.last = p0.sf = p0.sl = -1;
    for (int s = 0; s < n; s++) {
        x.start = s;
        x.order = 0;
        at_event(&x, &p0, s, 0, 0, false, true, false);
    }
    /* when each is emitted: step i at 2 * E[i].ts + 1; an expiry at the
     * first call at or after its due time: a step (its expire comes
     * first: 2 * ts) or a watermark (2 * w); the end of the input last */
    for (int o = 0; o < x.nout; o++) {
        oout_t *u = &x.out[o];
        if (u->kind == 0) {
            u->at = 2 * E[u->at].ts + 1;
            continue;
        }
        int64_t due = P->within ? E[u->start].ts + P->within : INT64_MAX;
        int64_t t = INT64_MAX;
        for (int i = 0; i < n; i++)
            if (E[i].ts >= due) {
                t = E[i].ts;
                break;
            }
        for (int w = 0; w < nws; w++)
            if (ws[w] >= due) {
                if (ws[w] < t)
                    t = ws[w];
                break;
            }
        u->at = t == INT64_MAX ? INT64_MAX : 2 * t;
    }
    if (x.nout)
        qsort(x.out, (size_t)x.nout, sizeof(*x.out), cmp_out);
    bool killed[MAXEV + 1] = {0};
    char l[1024];
    for (int o = 0; o < x.nout;) {
        /* one slot: expiries first emit their timeouts, then matches */
        int e = o;
        while (e < x.nout && x.out[e].at == x.out[o].at)
            e++;
        for (int q = o; q < e; q++)
            if (x.out[q].timeout && !killed[x.out[q].start]) {
                fmt_line(l, sizeof(l), P, key, E, &x.out[q].p, true);
                lines_add(timeouts, l);
            }
        for (int q = o; q < e; q++) {
            oout_t *u = &x.out[q];
            if (u->timeout || killed[u->start])
                continue;
            fmt_line(l, sizeof(l), P, key, E, &u->p, false);
            lines_add(matches, l);
            int lo = u->p.first, hi = lo;
            switch (P->skip) {
            case TO_NEXT:
                hi = lo + 1;
                break;
            case PAST_LAST:
                hi = u->p.last + 1;
                break;
            case TO_FIRST:
                hi = u->p.sf >= 0 ? u->p.sf : lo;
                break;
            case TO_LAST:
                hi = u->p.sl >= 0 ? u->p.sl : lo;
                break;
            }
            for (int s = lo; s < hi; s++)
                killed[s] = true;
        }
        o = e;
    }
    free(x.out);
}

/* ------------------------------------------------------------ random */

static uint64_t g_rng;
static unsigned rnd(unsigned n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng % n);
}

static unsigned rnd_set(void) {
    unsigned s = 1u << rnd(4);
    if (rnd(3) == 0)
        s |= 1u << rnd(4);
    return s;
}

static void gen_pattern(opat_t *P) {
    memset(P, 0, sizeof(*P));
    P->nst = 2 + (int)rnd(3);
    P->within = rnd(2) ? 10 * (3 + rnd(10)) : 0;
    for (int j = 0; j < P->nst; j++) {
        ost_t *s = &P->st[j];
        bool last = j == P->nst - 1;
        bool after_neg = j > 0 && P->st[j - 1].kind != EV;
        s->cond = rnd_set();
        s->contig = (int)rnd(3);
        s->min = s->max = 1;
        if (j > 0 && !after_neg && rnd(4) == 0 && (!last || rnd(2))) {
            s->kind = rnd(2) ? NN : NFB;
            if (last && s->kind == NFB && !P->within)
                P->within = 10 * (3 + rnd(10));
            continue;
        }
        s->kind = EV;
        switch (rnd(6)) {
        case 0:
            break;
        case 1:
            s->min = 1 + (int)rnd(2), s->max = s->min + (int)rnd(2);
            break;
        case 2:
            s->min = 1, s->max = INFN;
            break;
        case 3:
            s->min = 2, s->max = INFN;
            break;
        case 4:
            if (!last && !after_neg)
                s->min = 0;
            break;
        case 5:
            s->min = 2, s->max = 2;
            break;
        }
        if (s->max > 1) {
            s->inner = (int)rnd(3);
            s->greedy = !last && rnd(3) == 0;
            if (s->max == INFN && rnd(3) == 0)
                s->until = 1u << rnd(4);
            if (s->min > 0 && !last && !after_neg && rnd(4) == 0)
                s->min = 0; /* optional loop */
        }
    }
    /* the first stage takes at least one event when a negation follows
     * it, and so does the last event stage */
    if (P->st[0].min == 0 && P->st[1].kind != EV)
        P->st[0].min = 1;
    if (P->st[last_ev_stage(P)].min == 0)
        P->st[last_ev_stage(P)].min = 1;
    P->skip = (int)rnd(5);
    int evs[MAXST], ne = 0;
    for (int j = 0; j < P->nst; j++)
        if (P->st[j].kind == EV)
            evs[ne++] = j;
    P->skip_stage = P->skip >= TO_FIRST ? evs[rnd((unsigned)ne)] : -1;
}

static void cond_expr(char *o, size_t cap, unsigned set) {
    int off = snprintf(o, cap, "t in (");
    bool first = true;
    for (int t = 0; t < 4; t++)
        if (has(set, t)) {
            off += snprintf(o + off, cap - (size_t)off, "%s'%c'", first ? "" : ", ", 'a' + t);
            first = false;
        }
    snprintf(o + off, cap - (size_t)off, ")");
}

static void pattern_yaml(const opat_t *P, char *y, size_t cap) {
    static const char *const ck[] = {"next", "followed_by", "followed_by_any"};
    static const char *const sk[] = {"no_skip", "skip_to_next", "skip_past_last_event",
                                     "skip_to_first", "skip_to_last"};
    int off = snprintf(y, cap, "      - cep:\n          by: k\n");
    if (P->within)
        off += snprintf(y + off, cap - (size_t)off, "          within: %" PRId64 "ms\n",
                        P->within);
    if (P->skip >= TO_FIRST)
        off += snprintf(y + off, cap - (size_t)off, "          after_match: {%s: s%d}\n",
                        sk[P->skip], P->skip_stage);
    else
        off += snprintf(y + off, cap - (size_t)off, "          after_match: %s\n", sk[P->skip]);
    if (P->within)
        off += snprintf(y + off, cap - (size_t)off, "          timeouts: late\n");
    off += snprintf(y + off, cap - (size_t)off, "          pattern:\n");
    char fields[512] = "";
    int fo = 0;
    for (int j = 0; j < P->nst; j++) {
        const ost_t *s = &P->st[j];
        char c[64];
        cond_expr(c, sizeof(c), s->cond);
        const char *key = j == 0          ? "where"
                          : s->kind == NN  ? "not_next"
                          : s->kind == NFB ? "not_followed_by"
                                           : ck[s->contig];
        off += snprintf(y + off, cap - (size_t)off, "            - {name: s%d, %s: \"%s\"", j,
                        key, c);
        if (s->kind == EV) {
            fo += snprintf(fields + fo, sizeof(fields) - (size_t)fo, "%ss%d: sum(s%d.v)",
                           fo ? ", " : "", j, j);
            int mn = s->min, mx = s->max;
            bool opt = mn == 0;
            if (opt)
                mn = 1;
            if (mx == INFN)
                off += mn == 1 ? snprintf(y + off, cap - (size_t)off, ", one_or_more: true")
                               : snprintf(y + off, cap - (size_t)off, ", times_or_more: %d", mn);
            else if (mn != 1 || mx != 1)
                off += mn == mx ? snprintf(y + off, cap - (size_t)off, ", times: %d", mn)
                                : snprintf(y + off, cap - (size_t)off, ", times: %d..%d", mn, mx);
            if (opt)
                off += snprintf(y + off, cap - (size_t)off, ", optional: true");
            if (s->max > 1) {
                if (s->inner == STRICT)
                    off += snprintf(y + off, cap - (size_t)off, ", consecutive: true");
                else if (s->inner == ANY)
                    off += snprintf(y + off, cap - (size_t)off, ", allow_combinations: true");
                if (s->greedy)
                    off += snprintf(y + off, cap - (size_t)off, ", greedy: true");
                if (s->until) {
                    char u[64];
                    cond_expr(u, sizeof(u), s->until);
                    off += snprintf(y + off, cap - (size_t)off, ", until: \"%s\"", u);
                }
            }
        }
        off += snprintf(y + off, cap - (size_t)off, "}\n");
    }
    snprintf(y + off, cap - (size_t)off, "          fields: {%s}\n", fields);
}

static void push_rec(run_t *r, int key, int t, int64_t v, int64_t ts) {
    char k[8], tt[2] = {(char)('a' + t), 0};
    snprintf(k, sizeof(k), "k%d", key);
    push_ktv(r, k, tt, v, ts);
}

static int cmp_ts(const void *a, const void *b) {
    const oev_t *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

static void expect_same(sink_t *s, lines_t *want, bool timeouts, const char *yaml, uint64_t seed,
                        const char *what) {
    /* the late sink holds the late records too: keep only the timeouts */
    size_t n = 0;
    char **got = calloc(sink_count(s) + 1, sizeof(char *));
    for (size_t i = 0; i < sink_count(s); i++) {
        char *l = sink_line(s, i, false);
        if (!timeouts || strstr(l, "waiting_for"))
            got[n++] = l;
        else
            free(l);
    }
    qsort(got, n, sizeof(char *), cmp_str);
    if (want->n)
        qsort(want->v, want->n, sizeof(char *), cmp_str);
    size_t i = 0;
    while (i < n && i < want->n && !strcmp(got[i], want->v[i]))
        i++;
    if (i < n || i < want->n)
        fail_msg("seed %llu: %s differ (operator %zu, oracle %zu) at sorted line %zu:\n"
                 " operator: %s\n oracle:   %s\npattern:\n%s",
                 (unsigned long long)seed, what, n, want->n, i, i < n ? got[i] : "(none)",
                 i < want->n ? want->v[i] : "(none)", yaml);
    for (size_t j = 0; j < n; j++)
        free(got[j]);
    free(got);
}

static void one_seed(uint64_t seed) {
    g_rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    opat_t P;
    gen_pattern(&P);
    char steps[2048]; /* run_open's topology holds it */
    pattern_yaml(&P, steps, sizeof(steps));
    /* input: NKEYS keys, up to MAXEV records each, distinct event times */
    oev_t ev[NKEYS * MAXEV];
    int n = 0, per[NKEYS] = {0};
    int total = NKEYS * (6 + (int)rnd(MAXEV - 5));
    for (int i = 0; i < total && n < NKEYS * MAXEV; i++) {
        int key = (int)rnd(NKEYS);
        if (per[key] == MAXEV)
            continue;
        ev[n] = (oev_t){.ts = 10 * (n + 1), .v = (int64_t)1 << per[key], .t = (int)rnd(4),
                        .key = key};
        per[key]++;
        n++;
    }
    /* push order: mostly in order, some swapped within the allowed
     * disorder, some much later (late) */
    int order[NKEYS * MAXEV];
    for (int i = 0; i < n; i++)
        order[i] = i;
    for (int i = 0; i + 1 < n; i++)
        if (rnd(4) == 0) {
            int d = 1 + (int)rnd(rnd(5) == 0 ? 6 : 2);
            if (i + d < n) {
                int t = order[i];
                order[i] = order[i + d];
                order[i + d] = t;
            }
        }
    conf_t c = {.steps = steps, .schema = "{k: string, t: string, v: int}", .ooo_ms = OOO};
    run_t r;
    run_open(&r, &c);
    int64_t maxts = INT64_MIN, ws[NKEYS * MAXEV + 1];
    int nws = 0, nlate = 0;
    for (int i = 0; i < n; i++) {
        oev_t *e = &ev[order[i]];
        int64_t w = maxts == INT64_MIN ? INT64_MIN : maxts - OOO;
        e->late = w != INT64_MIN && e->ts < w;
        nlate += e->late;
        push_rec(&r, e->key, e->t, e->v, e->ts);
        if (e->ts > maxts) {
            maxts = e->ts;
            ws[nws++] = maxts - OOO;
        }
    }
    ws[nws++] = INT64_MAX;
    run_finish(&r);
    /* the oracle, per key */
    lines_t m = {0}, to = {0};
    for (int key = 0; key < NKEYS; key++) {
        oev_t E[MAXEV];
        int ne = 0;
        for (int i = 0; i < n; i++)
            if (ev[i].key == key && !ev[i].late)
                E[ne++] = ev[i];
        qsort(E, (size_t)ne, sizeof(oev_t), cmp_ts);
        oracle_key(&P, key, E, ne, ws, nws, &m, &to);
    }
    if (getenv("EDDY_CEP_ORACLE_VERBOSE"))
        print_message("seed %llu: %zu matches, %zu timeouts, %d late\n", (unsigned long long)seed, m.n, to.n, nlate);
    expect_same(&r.out, &m, false, steps, seed, "matches");
    expect_same(&r.late, &to, true, steps, seed, "timed-out partial matches");
    assert_int_equal(r.st.late, (uint64_t)nlate);
    for (size_t i = 0; i < m.n; i++)
        free(m.v[i]);
    for (size_t i = 0; i < to.n; i++)
        free(to.v[i]);
    free(m.v);
    free(to.v);
    run_close(&r);
}

static void random_patterns_match_the_oracle(void **state) {
    (void)state;
    const char *e = getenv("EDDY_CEP_ORACLE_SEEDS");
    int seeds = e && atoi(e) > 0 ? atoi(e) : 40;
    for (int s = 1; s <= seeds; s++)
        one_seed((uint64_t)s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_patterns_match_the_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
