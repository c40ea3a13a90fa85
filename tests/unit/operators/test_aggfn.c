/*
 * Aggregate functions on their own: add, merge and result of
 * count_distinct and top/bottom (nulls, types, exactness on large sets,
 * merge associativity, the state limit), checked against brute force. The
 * accumulators go through the row codec between steps, as they do between
 * records in the engine (store, changelog, restart).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy_int.h"
#include "operators/aggfn.h"
#include "state/row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const eddy_aggfn_t *fn;
    eddy_aggparam_t p;
    eddy_aggctx_t x;
    eddy_value_t acc[2];
    eddy_buf_t stored; /* acc as the store holds it */
    eddy_arena_t arena;
} agg_t;

static void agg_init(agg_t *g, const char *name, int64_t n) {
    memset(g, 0, sizeof(*g));
    g->fn = eddy__aggfn_builtin(name);
    assert_non_null(g->fn);
    g->p.n = n;
    g->x.p = &g->p;
    eddy_arena_init(&g->arena, 4096);
}

static void agg_free(agg_t *g) {
    for (int b = 0; b < 3; b++)
        eddy_buf_free(&g->x.buf[b]);
    eddy_buf_free(&g->stored);
    eddy_arena_free(&g->arena);
}

/* Write acc to the "store" and read it back: acc then points there. */
static void agg_roundtrip(agg_t *g) {
    eddy_buf_t enc = {0};
    eddy__row_encode(&enc, 2, g->acc);
    g->stored.len = 0;
    eddy_buf_put(&g->stored, enc.p, enc.len);
    eddy_buf_free(&enc);
    assert_int_equal(eddy__row_decode(g->stored.p, g->stored.len, 2, g->acc), EDDY_OK);
}

static eddy_err_t add_int(agg_t *g, int64_t v) {
    eddy_value_t x = {.u.i = v, .type = EDDY_TYPE_INT};
    return g->fn->add(&g->x, g->acc, &x, 0);
}
static eddy_err_t add_str(agg_t *g, const char *s) {
    eddy_value_t x = {.u.s = s, .len = (uint32_t)strlen(s), .type = EDDY_TYPE_STRING};
    return g->fn->add(&g->x, g->acc, &x, 0);
}
static eddy_err_t add_dbl(agg_t *g, double d) {
    eddy_value_t x = {.u.d = d, .type = EDDY_TYPE_DOUBLE};
    return g->fn->add(&g->x, g->acc, &x, 0);
}
static eddy_err_t add_null(agg_t *g) {
    eddy_value_t x = {.type = EDDY_TYPE_NULL};
    return g->fn->add(&g->x, g->acc, &x, 0);
}

static eddy_value_t result(agg_t *g) {
    eddy_value_t out;
    g->fn->result(&g->p, g->acc, &out, &g->arena);
    return out;
}
static int64_t result_int(agg_t *g) {
    eddy_value_t out = result(g);
    assert_int_equal(out.type, EDDY_TYPE_INT);
    return out.u.i;
}
static void assert_result_str(agg_t *g, const char *want) {
    eddy_value_t out = result(g);
    assert_int_equal(out.type, EDDY_TYPE_STRING);
    char buf[4096];
    snprintf(buf, sizeof(buf), "%.*s", (int)out.len, out.u.s);
    assert_string_equal(buf, want);
}

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t distinct(int64_t *v, size_t n) {
    qsort(v, n, sizeof(*v), cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!k || v[k - 1] != v[i])
            v[k++] = v[i];
    return k;
}

/* ----------------------------------------------------- count_distinct */

static void count_distinct_counts_each_value_once_and_ignores_nulls(void **state) {
    (void)state;
    agg_t g;
    agg_init(&g, "count_distinct", 0);
    assert_int_equal(result_int(&g), 0); /* no input */
    const int64_t vals[] = {5, -3, 5, 0, INT64_MIN, INT64_MAX, -3, 0, 7};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        assert_int_equal(add_int(&g, vals[i]), EDDY_OK);
        assert_int_equal(add_null(&g), EDDY_OK);
        agg_roundtrip(&g);
    }
    assert_int_equal(result_int(&g), 6);
    agg_free(&g);

    agg_init(&g, "count_distinct", 0);
    const char *strs[] = {"b", "a", "", "ab", "a", "", "b\"c", "ab"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        assert_int_equal(add_str(&g, strs[i]), EDDY_OK);
    assert_int_equal(result_int(&g), 5);
    agg_free(&g);

    /* doubles: -0 and 0 are one value; 1.5 once */
    agg_init(&g, "count_distinct", 0);
    const double ds[] = {0.0, -0.0, 1.5, 1.5, -1.5, 1e300};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
        assert_int_equal(add_dbl(&g, ds[i]), EDDY_OK);
    assert_int_equal(result_int(&g), 4);
    agg_free(&g);
}

/* Each add rewrites the sorted set (O(n) element copies, each a memcpy):
 * ThreadSanitizer intercepts every one, and 60,000 adds did not finish in
 * the test's 300 s there, so a TSan build checks a quarter of the set. */
#if defined(__SANITIZE_THREAD__)
#define AGGFN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AGGFN_TSAN 1
#endif
#endif
#ifdef AGGFN_TSAN
enum { LARGE_SET = 15000 };
#else
enum { LARGE_SET = 60000 };
#endif

static void count_distinct_is_exact_on_a_large_set(void **state) {
    (void)state;
    enum { N = LARGE_SET };
    int64_t *all = malloc(sizeof(*all) * N);
    uint64_t seed = 42;
    agg_t g;
    agg_init(&g, "count_distinct", 0);
    for (size_t i = 0; i < N; i++) {
        all[i] = (int64_t)(rng(&seed) % (N * 2 / 3)) - N / 3; /* many repeats */
        assert_int_equal(add_int(&g, all[i]), EDDY_OK);
        if (i % 997 == 0)
            agg_roundtrip(&g);
    }
    agg_roundtrip(&g);
    size_t want = distinct(all, N);
    assert_true(want > N / 2);
    assert_int_equal(result_int(&g), (int64_t)want);
    free(all);
    agg_free(&g);
}

/* Parts of one random input merged in different orders all give the
 * count of the whole, and the same state bytes. */
static void count_distinct_merge_is_a_union_whatever_the_grouping(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        uint64_t s = seed * 7919;
        agg_t part[3], whole;
        agg_init(&whole, "count_distinct", 0);
        for (int k = 0; k < 3; k++)
            agg_init(&part[k], "count_distinct", 0);
        int64_t vals[3000];
        size_t n = 500 + rng(&s) % 2500;
        for (size_t i = 0; i < n; i++) {
            vals[i] = (int64_t)(rng(&s) % 900);
            int k = (int)(rng(&s) % 3);
            assert_int_equal(add_int(&part[k], vals[i]), EDDY_OK);
            assert_int_equal(add_int(&whole, vals[i]), EDDY_OK);
        }
        for (int k = 0; k < 3; k++)
            agg_roundtrip(&part[k]);
        agg_roundtrip(&whole);
        size_t want = distinct(vals, n);
        /* (a + b) + c */
        agg_t l;
        agg_init(&l, "count_distinct", 0);
        l.fn->merge(&l.x, l.acc, part[0].acc);
        l.fn->merge(&l.x, l.acc, part[1].acc);
        agg_roundtrip(&l);
        l.fn->merge(&l.x, l.acc, part[2].acc);
        agg_roundtrip(&l);
        /* a + (b + c) */
        agg_t r, bc;
        agg_init(&r, "count_distinct", 0);
        agg_init(&bc, "count_distinct", 0);
        bc.fn->merge(&bc.x, bc.acc, part[1].acc);
        bc.fn->merge(&bc.x, bc.acc, part[2].acc);
        agg_roundtrip(&bc);
        r.fn->merge(&r.x, r.acc, part[0].acc);
        r.fn->merge(&r.x, r.acc, bc.acc);
        agg_roundtrip(&r);
        assert_int_equal(result_int(&l), (int64_t)want);
        assert_int_equal(result_int(&r), (int64_t)want);
        assert_int_equal(result_int(&whole), (int64_t)want);
        assert_int_equal(l.acc[0].len, whole.acc[0].len);
        assert_memory_equal(l.acc[0].u.s, whole.acc[0].u.s, whole.acc[0].len);
        assert_memory_equal(r.acc[0].u.s, whole.acc[0].u.s, whole.acc[0].len);
        /* merging a set into itself changes nothing */
        agg_t self;
        agg_init(&self, "count_distinct", 0);
        self.fn->merge(&self.x, self.acc, whole.acc);
        self.fn->merge(&self.x, self.acc, whole.acc);
        assert_int_equal(result_int(&self), (int64_t)want);
        for (int k = 0; k < 3; k++)
            agg_free(&part[k]);
        agg_free(&whole);
        agg_free(&l);
        agg_free(&r);
        agg_free(&bc);
        agg_free(&self);
    }
}

static void count_distinct_refuses_a_value_that_would_pass_the_state_limit(void **state) {
    (void)state;
    agg_t g;
    agg_init(&g, "count_distinct", 0);
    char s[1001];
    memset(s, 'x', 1000);
    s[1000] = 0;
    int accepted = 0;
    eddy_err_t e = EDDY_OK;
    for (int i = 0; i < 5000 && !e; i++) {
        snprintf(s, 9, "%08d", i);
        s[8] = 'x';
        if (!(e = add_str(&g, s)))
            accepted++;
    }
    assert_int_equal(e, EDDY_ERR_FULL);
    assert_non_null(strstr(g.x.why, "limit"));
    assert_true(accepted > 900 && accepted < 1100);
    /* the refused value left the set as it was; known values still count */
    assert_int_equal(result_int(&g), accepted);
    snprintf(s, 9, "%08d", 3);
    s[8] = 'x';
    assert_int_equal(add_str(&g, s), EDDY_OK);
    assert_int_equal(result_int(&g), accepted);
    agg_free(&g);
}

/* ---------------------------------------------------------- top/bottom */

static void top_keeps_the_n_largest_descending_with_duplicates(void **state) {
    (void)state;
    agg_t g;
    agg_init(&g, "top", 3);
    eddy_value_t none = result(&g);
    assert_int_equal(none.type, EDDY_TYPE_NULL); /* no input */
    const int64_t vals[] = {4, 9, -2, 7, 9, 1, 8, 9};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        assert_int_equal(add_int(&g, vals[i]), EDDY_OK);
        assert_int_equal(add_null(&g), EDDY_OK);
        agg_roundtrip(&g);
        if (i == 1)
            assert_result_str(&g, "[9,4]");
    }
    assert_result_str(&g, "[9,9,9]");
    agg_free(&g);

    agg_init(&g, "bottom", 2);
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        assert_int_equal(add_int(&g, vals[i]), EDDY_OK);
    assert_result_str(&g, "[-2,1]");
    agg_free(&g);

    agg_init(&g, "top", 4);
    const double ds[] = {0.1, -1.5, 2.0, 1e-7, 0.1};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++)
        assert_int_equal(add_dbl(&g, ds[i]), EDDY_OK);
    assert_result_str(&g, "[2,0.1,0.1,1e-07]");
    agg_free(&g);

    agg_init(&g, "top", 2);
    const char *strs[] = {"apple", "pe\"ar", "fig", "pe\"ar", "zz\n"};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        assert_int_equal(add_str(&g, strs[i]), EDDY_OK);
    assert_result_str(&g, "[\"zz\\u000a\",\"pe\\\"ar\"]");
    agg_free(&g);
}

static int cmp_desc(const void *a, const void *b) { return -cmp_i64(a, b); }

static void top_merge_keeps_the_n_largest_whatever_the_grouping(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        uint64_t s = seed * 104729;
        int64_t n = 1 + (int64_t)(rng(&s) % 8);
        agg_t part[3], l, r, bc;
        for (int k = 0; k < 3; k++)
            agg_init(&part[k], "top", n);
        agg_init(&l, "top", n);
        agg_init(&r, "top", n);
        agg_init(&bc, "top", n);
        int64_t vals[400];
        size_t cnt = 1 + rng(&s) % 400;
        for (size_t i = 0; i < cnt; i++) {
            vals[i] = (int64_t)(rng(&s) % 50) - 25;
            assert_int_equal(add_int(&part[rng(&s) % 3], vals[i]), EDDY_OK);
        }
        for (int k = 0; k < 3; k++)
            agg_roundtrip(&part[k]);
        l.fn->merge(&l.x, l.acc, part[0].acc);
        l.fn->merge(&l.x, l.acc, part[1].acc);
        l.fn->merge(&l.x, l.acc, part[2].acc);
        bc.fn->merge(&bc.x, bc.acc, part[2].acc);
        bc.fn->merge(&bc.x, bc.acc, part[1].acc);
        agg_roundtrip(&bc);
        r.fn->merge(&r.x, r.acc, bc.acc);
        r.fn->merge(&r.x, r.acc, part[0].acc);
        qsort(vals, cnt, sizeof(vals[0]), cmp_desc);
        char want[400] = "[";
        for (int64_t i = 0; i < n && i < (int64_t)cnt; i++)
            snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%lld", i ? "," : "",
                     (long long)vals[i]);
        strcat(want, "]");
        assert_result_str(&l, want);
        assert_result_str(&r, want);
        for (int k = 0; k < 3; k++)
            agg_free(&part[k]);
        agg_free(&l);
        agg_free(&r);
        agg_free(&bc);
    }
}

/* ------------------------------------------------- the older aggregates */

static void count_sum_avg_merge_like_adding_everything(void **state) {
    (void)state;
    agg_t a, b;
    const char *names[] = {"count", "sum", "avg", "min", "max"};
    const int64_t want[] = {6, 21, 0, 1, 6};
    for (int f = 0; f < 5; f++) {
        agg_init(&a, names[f], 0);
        agg_init(&b, names[f], 0);
        for (int i = 1; i <= 3; i++)
            assert_int_equal(add_int(&a, i), EDDY_OK);
        for (int i = 4; i <= 6; i++)
            assert_int_equal(add_int(&b, i), EDDY_OK);
        assert_int_equal(add_null(&b), EDDY_OK);
        a.fn->merge(&a.x, a.acc, b.acc);
        eddy_value_t out = result(&a);
        if (f == 2) {
            assert_int_equal(out.type, EDDY_TYPE_DOUBLE);
            assert_true(out.u.d == 3.5);
        } else {
            assert_int_equal(out.u.i, want[f]);
        }
        agg_free(&a);
        agg_free(&b);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(count_distinct_counts_each_value_once_and_ignores_nulls),
        cmocka_unit_test(count_distinct_is_exact_on_a_large_set),
        cmocka_unit_test(count_distinct_merge_is_a_union_whatever_the_grouping),
        cmocka_unit_test(count_distinct_refuses_a_value_that_would_pass_the_state_limit),
        cmocka_unit_test(top_keeps_the_n_largest_descending_with_duplicates),
        cmocka_unit_test(top_merge_keeps_the_n_largest_whatever_the_grouping),
        cmocka_unit_test(count_sum_avg_merge_like_adding_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
