/*
 * count_distinct, top and a host-registered aggregate (vrange = max - min,
 * through eddy_topology_register_aggregate) in aggregate steps and in
 * tumbling, hopping and session windows, driven through the public API
 * and checked against a brute-force computation over random input (several
 * seeds); a count_distinct aggregate that survives a restart; a record that
 * would pass the state limit is dead-lettered, never silently dropped.
 *
 * The source allows an hour of disorder, so no record is late and every
 * window fires once, at the end of the input (final watermark +inf).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------- a user aggregate */

typedef struct {
    int64_t lo, hi;
    int64_t seen; /* 0: no value yet */
} vrange_t;

static int vrange_inits; /* opaque points here: proves opaque is passed */

static void vrange_init(void *acc, void *opaque) {
    vrange_t *r = acc;
    r->seen = 0;
    (void)__atomic_add_fetch((int *)opaque, 1, __ATOMIC_RELAXED);
}
static eddy_err_t vrange_add(void *acc, const eddy_value_t *v, int64_t ts, void *opaque) {
    (void)ts;
    (void)opaque;
    vrange_t *r = acc;
    if (v->type != EDDY_TYPE_INT)
        return EDDY_ERR_TYPE;
    if (!r->seen || v->u.i < r->lo)
        r->lo = v->u.i;
    if (!r->seen || v->u.i > r->hi)
        r->hi = v->u.i;
    r->seen = 1;
    return EDDY_OK;
}
static void vrange_merge(void *acc, const void *other, void *opaque) {
    (void)opaque;
    vrange_t *r = acc;
    const vrange_t *o = other;
    if (!o->seen)
        return;
    if (!r->seen) {
        *r = *o;
        return;
    }
    if (o->lo < r->lo)
        r->lo = o->lo;
    if (o->hi > r->hi)
        r->hi = o->hi;
}
static void vrange_result(const void *acc, eddy_value_t *out, void *opaque) {
    (void)opaque;
    const vrange_t *r = acc;
    out->type = r->seen ? EDDY_TYPE_INT : EDDY_TYPE_NULL;
    out->u.i = r->hi - r->lo;
}

static const eddy_aggregate_def_t vrange_def = {
    .abi = EDDY_AGGREGATE_ABI,
    .name = "vrange",
    .result_type = EDDY_TYPE_INT,
    .acc_size = sizeof(vrange_t),
    .init = vrange_init,
    .add = vrange_add,
    .merge = vrange_merge,
    .result = vrange_result,
    .opaque = &vrange_inits,
};

/* ---------------------------------------------------------- outputs */

typedef struct {
    char k[16];
    int64_t ws, we; /* windows only */
    bool cd_null, top_null, u_null;
    int64_t n, cd, u;
    char top[256];
} row_t;

typedef struct {
    pthread_mutex_t mu;
    row_t *rows;
    size_t n, cap;
    size_t dead;
} out_t;

static int64_t ival(const eddy_record_t *rec, const char *name, bool *null) {
    int i = eddy_schema_field_index(rec->schema, name);
    if (i < 0) {
        if (null)
            *null = true;
        return 0;
    }
    if (null)
        *null = rec->values[i].type == EDDY_TYPE_NULL;
    return rec->values[i].u.i;
}

static eddy_err_t collect(const eddy_record_t *rec, void *opaque) {
    out_t *o = opaque;
    row_t r;
    memset(&r, 0, sizeof(r));
    int ki = eddy_schema_field_index(rec->schema, "k");
    if (ki >= 0)
        snprintf(r.k, sizeof(r.k), "%.*s", (int)rec->values[ki].len, rec->values[ki].u.s);
    r.ws = ival(rec, "window_start", NULL);
    r.we = ival(rec, "window_end", NULL);
    r.n = ival(rec, "n", NULL);
    r.cd = ival(rec, "cd", &r.cd_null);
    r.u = ival(rec, "u", &r.u_null);
    int ti = eddy_schema_field_index(rec->schema, "top");
    r.top_null = ti < 0 || rec->values[ti].type == EDDY_TYPE_NULL;
    if (!r.top_null)
        snprintf(r.top, sizeof(r.top), "%.*s", (int)rec->values[ti].len, rec->values[ti].u.s);
    pthread_mutex_lock(&o->mu);
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 256;
        o->rows = realloc(o->rows, sizeof(*o->rows) * o->cap);
    }
    o->rows[o->n++] = r;
    pthread_mutex_unlock(&o->mu);
    return EDDY_OK;
}

static eddy_err_t count_dead(const eddy_record_t *rec, void *opaque) {
    (void)rec;
    out_t *o = opaque;
    pthread_mutex_lock(&o->mu);
    o->dead++;
    pthread_mutex_unlock(&o->mu);
    return EDDY_OK;
}

/* ------------------------------------------------------------ input */

#define NUL INT64_MIN

typedef struct {
    char k[8];
    int64_t v, ts;
    const char *s; /* NULL: a null string */
} in_t;

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void gen(uint64_t seed, in_t *recs, size_t n) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        snprintf(recs[i].k, sizeof(recs[i].k), "%c", (char)('a' + rng(&s) % 3));
        recs[i].v = rng(&s) % 10 == 0 ? NUL : (int64_t)(rng(&s) % 40) - 10;
        recs[i].ts = (int64_t)(rng(&s) % 1500);
        recs[i].s = NULL;
    }
}

/* --------------------------------------------------------------- runs */

typedef struct {
    char dir[64];
    eddy_topology_t *topo;
    eddy_engine_t *eng;
    out_t out;
    eddy_stats_t st;
} run_t;

static void run_open(run_t *r, const char *dir, const char *steps) {
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->out.mu, NULL);
    snprintf(r->dir, sizeof(r->dir), "%s", dir);
    char y[4096], err[1024];
    snprintf(y, sizeof(y),
             "application: am\n"
             "settings: {threads: 1, batch.size: 64, dead_letter: dl, state.dir: '%s'}\n"
             "sources:\n"
             "  - name: in\n"
             "    type: host\n"
             "    partitions: 1\n"
             "    queue.max: 1000000\n"
             "    schema: {k: string, v: \"int?\", s: \"string?\"}\n"
             "    watermark: {max_out_of_orderness: 1h}\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps:\n"
             "%s"
             "    to: out\n",
             r->dir, steps);
    r->topo = eddy_topology_load_string(y, strlen(y), "more.yaml", err, sizeof(err));
    if (!r->topo)
        fail_msg("load failed: %s\n%s", err, y);
    assert_int_equal(eddy_topology_register_aggregate(r->topo, &vrange_def, err, sizeof(err)),
                     EDDY_OK);
    eddy_topology_add_callback_sink(r->topo, "out", collect, &r->out);
    eddy_topology_add_callback_sink(r->topo, "dl", count_dead, &r->out);
    r->eng = eddy_engine_new(r->topo, NULL, err, sizeof(err));
    if (!r->eng)
        fail_msg("engine_new failed: %s\n%s", err, y);
}

static void push(run_t *r, const in_t *in) {
    eddy_value_t v[3];
    v[0] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(in->k)};
    v[0].u.s = in->k;
    v[1] = (eddy_value_t){.type = in->v == NUL ? EDDY_TYPE_NULL : EDDY_TYPE_INT};
    v[1].u.i = in->v == NUL ? 0 : in->v;
    v[2] = (eddy_value_t){.type = in->s ? EDDY_TYPE_STRING : EDDY_TYPE_NULL};
    if (in->s) {
        v[2].u.s = in->s;
        v[2].len = (uint32_t)strlen(in->s);
    }
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", 0, v, in->ts)) == EDDY_ERR_FULL) {
        struct timespec t = {0, 1000000};
        nanosleep(&t, NULL);
    }
    assert_int_equal(err, EDDY_OK);
}

static void run_finish(run_t *r) {
    assert_int_equal(eddy_engine_end_input(r->eng, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_start(r->eng), EDDY_OK);
    eddy_err_t err = eddy_engine_poll(r->eng, 120000);
    if (err != EDDY_OK)
        fail_msg("run failed: %s: %s", eddy_err2str(err), eddy_engine_last_error(r->eng));
    eddy_engine_stats(r->eng, &r->st);
}

/* Stop the engine, keep the state directory. */
static void run_stop(run_t *r) {
    eddy_engine_destroy(r->eng);
    eddy_topology_destroy(r->topo);
    r->eng = NULL;
    r->topo = NULL;
}

static void run_close(run_t *r) {
    if (r->eng)
        run_stop(r);
    free(r->out.rows);
    pthread_mutex_destroy(&r->out.mu);
}

static void make_dir(char *dir, size_t size) {
    snprintf(dir, size, "/tmp/eddy_test_aggmore_XXXXXX");
    assert_non_null(mkdtemp(dir));
}
static void remove_dir(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* -------------------------------------------------------- brute force */

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The expected row of key k over the records with ws <= ts < we. */
static row_t expect(const in_t *recs, size_t n, const char *k, int64_t ws, int64_t we) {
    row_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.k, sizeof(r.k), "%s", k);
    r.ws = ws;
    r.we = we;
    int64_t *vals = malloc(sizeof(int64_t) * (n + 1));
    size_t nv = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].k, k) || recs[i].ts < ws || recs[i].ts >= we)
            continue;
        r.n++;
        if (recs[i].v != NUL)
            vals[nv++] = recs[i].v;
    }
    qsort(vals, nv, sizeof(*vals), cmp_desc);
    r.cd_null = r.u_null = r.top_null = nv == 0;
    for (size_t i = 0; i < nv; i++)
        r.cd += !i || vals[i] != vals[i - 1];
    if (nv) {
        r.u = vals[0] - vals[nv - 1];
        strcpy(r.top, "[");
        for (size_t i = 0; i < nv && i < 3; i++)
            snprintf(r.top + strlen(r.top), sizeof(r.top) - strlen(r.top), "%s%lld",
                     i ? "," : "", (long long)vals[i]);
        strcat(r.top, "]");
    }
    free(vals);
    return r;
}

static bool same_row(const row_t *a, const row_t *b) {
    return !strcmp(a->k, b->k) && a->ws == b->ws && a->we == b->we && a->n == b->n &&
           a->cd == b->cd && a->u_null == b->u_null && (a->u_null || a->u == b->u) &&
           a->top_null == b->top_null && (a->top_null || !strcmp(a->top, b->top));
}

static void print_row(const char *what, const row_t *r) {
    fprintf(stderr, "%s: k=%s [%lld,%lld) n=%lld cd=%lld u=%s%lld top=%s\n", what, r->k,
            (long long)r->ws, (long long)r->we, (long long)r->n, (long long)r->cd,
            r->u_null ? "null/" : "", (long long)r->u, r->top_null ? "null" : r->top);
}

/* Every expected row is emitted exactly once, nothing else is. */
static void check_rows(const row_t *got, size_t ngot, const row_t *want, size_t nwant,
                       const char *what) {
    bool *used = calloc(ngot + 1, 1);
    bool ok = ngot == nwant;
    for (size_t i = 0; i < nwant; i++) {
        size_t j = 0;
        while (j < ngot && (used[j] || !same_row(&got[j], &want[i])))
            j++;
        if (j == ngot) {
            print_row("missing or wrong", &want[i]);
            for (size_t g = 0; g < ngot; g++)
                if (!strcmp(got[g].k, want[i].k) && got[g].ws == want[i].ws)
                    print_row("  got", &got[g]);
            ok = false;
        } else {
            used[j] = true;
        }
    }
    free(used);
    if (!ok)
        fail_msg("%s: %zu rows, %zu expected (see above)", what, ngot, nwant);
}

/* quoted: in a YAML flow mapping the comma would end the value */
#define FIELDS "{n: count(), cd: count_distinct(v), top: 'top(v, 3)', u: vrange(v)}"

typedef enum { K_TUMBLING, K_HOPPING, K_SESSION } kind_t;

static int cmp_ts(const void *a, const void *b) {
    const in_t *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* The windows the rules of docs/windows.md give for the input. */
static size_t expected_windows(kind_t kind, const in_t *recs, size_t n, row_t *out) {
    size_t nout = 0;
    const char *keys[] = {"a", "b", "c"};
    for (int ki = 0; ki < 3; ki++) {
        if (kind == K_SESSION) {
            in_t *mine = malloc(sizeof(*mine) * (n + 1));
            size_t m = 0;
            for (size_t i = 0; i < n; i++)
                if (!strcmp(recs[i].k, keys[ki]))
                    mine[m++] = recs[i];
            qsort(mine, m, sizeof(*mine), cmp_ts);
            const int64_t gap = 30;
            for (size_t i = 0; i < m;) {
                size_t j = i + 1;
                int64_t end = mine[i].ts + gap;
                while (j < m && mine[j].ts <= end) { /* touching merges */
                    if (mine[j].ts + gap > end)
                        end = mine[j].ts + gap;
                    j++;
                }
                out[nout++] = expect(recs, n, keys[ki], mine[i].ts, end);
                i = j;
            }
            free(mine);
            continue;
        }
        int64_t size = 100, adv = kind == K_HOPPING ? 25 : 100;
        for (int64_t ws = -size; ws < 1600; ws += adv) {
            row_t r = expect(recs, n, keys[ki], ws, ws + size);
            if (r.n)
                out[nout++] = r;
        }
    }
    return nout;
}

static void windows_match_brute_force(kind_t kind) {
    static const char *const specs[] = {
        "      - window: {type: tumbling, size: 100ms}\n",
        "      - window: {type: hopping, size: 100ms, advance: 25ms}\n",
        "      - window: {type: session, gap: 30ms}\n",
    };
    for (uint64_t seed = 1; seed <= 4; seed++) {
        enum { N = 700 };
        in_t *recs = malloc(sizeof(*recs) * N);
        gen(seed, recs, N);
        char steps[512], dir[64];
        snprintf(steps, sizeof(steps), "%s        aggregate: {by: k, fields: " FIELDS "}\n",
                 specs[kind]);
        make_dir(dir, sizeof(dir));
        run_t r;
        run_open(&r, dir, steps);
        for (size_t i = 0; i < N; i++)
            push(&r, &recs[i]);
        run_finish(&r);
        assert_int_equal(r.st.late, 0);
        assert_int_equal(r.st.dead_lettered, 0);
        row_t *want = malloc(sizeof(*want) * 3 * 1700);
        size_t nwant = expected_windows(kind, recs, N, want);
        char what[64];
        snprintf(what, sizeof(what), "%s seed %llu", specs[kind] + 8, (unsigned long long)seed);
        check_rows(r.out.rows, r.out.n, want, nwant, what);
        free(want);
        run_close(&r);
        remove_dir(dir);
        free(recs);
    }
}

static void count_distinct_top_and_user_aggregate_in_tumbling_windows(void **state) {
    (void)state;
    windows_match_brute_force(K_TUMBLING);
}
static void count_distinct_top_and_user_aggregate_in_hopping_windows(void **state) {
    (void)state;
    windows_match_brute_force(K_HOPPING);
}
static void count_distinct_top_and_user_aggregate_in_session_windows(void **state) {
    (void)state;
    windows_match_brute_force(K_SESSION);
}

/* The last update of each key is the aggregate of all its records. */
static void check_last_per_key(const run_t *r, const in_t *recs, size_t n, const char *what) {
    const char *keys[] = {"a", "b", "c"};
    for (int ki = 0; ki < 3; ki++) {
        const row_t *last = NULL;
        for (size_t i = 0; i < r->out.n; i++)
            if (!strcmp(r->out.rows[i].k, keys[ki]))
                last = &r->out.rows[i];
        row_t want = expect(recs, n, keys[ki], INT64_MIN, INT64_MAX);
        want.ws = want.we = 0;
        if (!want.n) {
            assert_null(last);
            continue;
        }
        assert_non_null(last);
        if (!same_row(last, &want)) {
            print_row("want", &want);
            print_row("got", last);
            fail_msg("%s: key %s differs", what, keys[ki]);
        }
    }
}

static void count_distinct_top_and_user_aggregate_in_an_aggregate_step(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        enum { N = 1500 };
        in_t recs[N];
        gen(seed, recs, N);
        char dir[64];
        make_dir(dir, sizeof(dir));
        run_t r;
        run_open(&r, dir, "      - aggregate: {by: k, fields: " FIELDS "}\n");
        for (size_t i = 0; i < N; i++)
            push(&r, &recs[i]);
        run_finish(&r);
        assert_int_equal(r.out.n, N); /* one update per record */
        check_last_per_key(&r, recs, N, "aggregate");
        run_close(&r);
        remove_dir(dir);
    }
    assert_true(vrange_inits > 0);
}

static void count_distinct_is_exact_across_a_restart(void **state) {
    (void)state;
    enum { N = 3000 };
    static in_t recs[N];
    gen(99, recs, N);
    for (size_t i = 0; i < N; i++)
        if (recs[i].v != NUL)
            recs[i].v = recs[i].v * 1000 + (int64_t)(i % 700); /* ~2k distinct per key */
    char dir[64];
    make_dir(dir, sizeof(dir));
    const char *steps = "      - aggregate: {by: k, fields: " FIELDS "}\n";
    run_t r;
    run_open(&r, dir, steps);
    for (size_t i = 0; i < N / 2; i++)
        push(&r, &recs[i]);
    run_finish(&r);
    check_last_per_key(&r, recs, N / 2, "before the restart");
    run_close(&r);
    /* a new engine on the same state.dir continues from the stored sets */
    run_open(&r, dir, steps);
    for (size_t i = N / 2; i < N; i++)
        push(&r, &recs[i]);
    run_finish(&r);
    assert_int_equal(r.out.n, N - N / 2);
    check_last_per_key(&r, recs, N, "after the restart");
    run_close(&r);
    remove_dir(dir);
}

/* ------------------------------------------------------ limits, errors */

static void a_record_past_the_count_distinct_limit_is_dead_lettered_not_dropped(void **state) {
    (void)state;
    char dir[64];
    make_dir(dir, sizeof(dir));
    run_t r;
    run_open(&r, dir, "      - aggregate: {by: k, fields: {n: count(), cd: count_distinct(s)}}\n");
    enum { N = 1400 };
    static char big[N][1001];
    for (int i = 0; i < N; i++) {
        memset(big[i], 'x', 1000);
        big[i][1000] = 0;
        snprintf(big[i], 9, "%08d", i);
        big[i][8] = 'x';
        in_t in = {.k = "a", .v = 1, .ts = i, .s = big[i]};
        push(&r, &in);
    }
    run_finish(&r);
    /* ~1 KiB per distinct value, 1 MiB of state: the rest are refused */
    assert_true(r.st.dead_lettered > 300);
    assert_int_equal(r.out.dead, r.st.dead_lettered);
    assert_int_equal(r.out.n + r.out.dead, N);
    const row_t *last = &r.out.rows[r.out.n - 1];
    /* every record counted is in the set: nothing was silently lost */
    assert_int_equal(last->n, (int64_t)r.out.n);
    assert_int_equal(last->cd, (int64_t)r.out.n);
    run_close(&r);
    remove_dir(dir);
}

static void registering_a_bad_or_taken_aggregate_name_says_why(void **state) {
    (void)state;
    eddy_topology_t *t = eddy_topology_new("x");
    char err[256];
    assert_int_equal(eddy_topology_register_aggregate(t, &vrange_def, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy_topology_register_aggregate(t, &vrange_def, err, sizeof(err)),
                     EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "already exists"));
    eddy_aggregate_def_t d = vrange_def;
    d.name = "sum";
    assert_int_equal(eddy_topology_register_aggregate(t, &d, err, sizeof(err)), EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "already exists"));
    d.name = "two words";
    assert_int_equal(eddy_topology_register_aggregate(t, &d, err, sizeof(err)), EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "identifier"));
    d.name = "big";
    d.acc_size = EDDY_AGGREGATE_MAX_ACC_BYTES + 1;
    assert_int_equal(eddy_topology_register_aggregate(t, &d, err, sizeof(err)), EDDY_ERR_INVAL);
    assert_non_null(strstr(err, "acc_size"));
    d = vrange_def;
    d.name = "nomerge";
    d.merge = NULL;
    assert_int_equal(eddy_topology_register_aggregate(t, &d, err, sizeof(err)), EDDY_ERR_INVAL);
    eddy_topology_destroy(t);
}

static void top_without_a_count_and_unknown_names_are_config_errors(void **state) {
    (void)state;
    const char *const bad[][2] = {
        {"top: top(v)", "top() takes a value and how many to keep"},
        {"top: 'top(v, 0)'", "how many to keep (1..1000)"},
        {"top: 'bottom(v, x)'", "bottom() takes"},
        {"top: top(v, 3)", "quote it, e.g. \"top(price, 3)\""},
        {"r: vrang(v)", "did you mean 'vrange'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char y[1024], err[1024];
        snprintf(y, sizeof(y),
                 "application: x\n"
                 "sources: [{name: in, type: host, schema: {k: string, v: int}}]\n"
                 "pipelines:\n"
                 "  - name: p\n"
                 "    from: in\n"
                 "    steps:\n"
                 "      - aggregate: {by: k, fields: {%s}}\n"
                 "    to: out\n"
                 "sinks: [{name: out, type: blackhole}]\n",
                 bad[i][0]);
        eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "bad.yaml", err, sizeof(err));
        assert_non_null(t);
        assert_int_equal(eddy_topology_register_aggregate(t, &vrange_def, err, sizeof(err)),
                         EDDY_OK);
        assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
        if (!strstr(err, bad[i][1]) || !strstr(err, "bad.yaml:7:"))
            fail_msg("'%s': got '%s', want '%s' at bad.yaml:7", bad[i][0], err, bad[i][1]);
        eddy_topology_destroy(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(count_distinct_top_and_user_aggregate_in_an_aggregate_step),
        cmocka_unit_test(count_distinct_top_and_user_aggregate_in_tumbling_windows),
        cmocka_unit_test(count_distinct_top_and_user_aggregate_in_hopping_windows),
        cmocka_unit_test(count_distinct_top_and_user_aggregate_in_session_windows),
        cmocka_unit_test(count_distinct_is_exact_across_a_restart),
        cmocka_unit_test(a_record_past_the_count_distinct_limit_is_dead_lettered_not_dropped),
        cmocka_unit_test(registering_a_bad_or_taken_aggregate_name_says_why),
        cmocka_unit_test(top_without_a_count_and_unknown_names_are_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
