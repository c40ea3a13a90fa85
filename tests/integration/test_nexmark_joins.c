/*
 * Nexmark q8 and q4 (bench/queries/q8.yaml, q4.yaml) against brute force,
 * on the small run of nexmark_harness.h (100K events at 500 events/s of
 * event time, 10% delayed by up to 3 s; the reference's 4 s watermark
 * delay, so nothing is late and the result must equal the definition
 * evaluated over all events at once).
 *
 * The brute force regenerates the same events with the generator API and
 * evaluates the reference SQL's meaning directly:
 *  q8: the persons (id, name, window start) for which an auction with
 *      seller = id has its dateTime in the same tumbling 10 s window as
 *      the person's dateTime; one row per such person and window;
 *  q4: per auction, the highest price of its bids with dateTime in
 *      [auction dateTime, expires]; per category the average of those
 *      maxima over the auctions that have such a bid (the last value the
 *      query emits for each category).
 */
#include "nexmark_harness.h"

#include <math.h>

typedef struct {
    int64_t id, name, ts;
} person_t;

typedef struct {
    int64_t id, seller, category, ts, expires;
} auction_t;

typedef struct {
    int64_t auction, price, ts;
} bidl_t;

typedef struct {
    person_t *p;
    auction_t *a;
    bidl_t *b;
    size_t np, na, nb;
} nx_events_t;

static void gen_events(nx_events_t *e) {
    eddy_nx_gen_t *g = test_generator();
    memset(e, 0, sizeof(*e));
    e->p = malloc(EVENTS * sizeof(*e->p));
    e->a = malloc(EVENTS * sizeof(*e->a));
    e->b = malloc(EVENTS * sizeof(*e->b));
    char scratch[EDDY_NX_SCRATCH_BYTES];
    for (uint64_t i = 0; i < EVENTS; i++) {
        eddy_nx_event_t ev;
        eddy__nx_event(g, i, &ev, scratch);
        if (ev.kind == EDDY_NX_PERSON)
            e->p[e->np++] = (person_t){ev.person.id,
                                       hash_str(ev.person.name.p, ev.person.name.len), ev.ts_ms};
        else if (ev.kind == EDDY_NX_AUCTION)
            e->a[e->na++] = (auction_t){ev.auction.id, ev.auction.seller, ev.auction.category,
                                        ev.ts_ms, ev.auction.expires};
        else
            e->b[e->nb++] = (bidl_t){ev.bid.auction, ev.bid.price, ev.ts_ms};
    }
    eddy__nx_gen_destroy(g);
}

static void free_events(nx_events_t *e) {
    free(e->p);
    free(e->a);
    free(e->b);
}

/* q8: (id, name, window start) of persons with an auction of theirs in
 * the same window. */
static void q8_reference(const nx_events_t *e, tups_t *rows) {
    tups_t sw = {0}; /* (seller, window) of every auction, sorted */
    for (size_t i = 0; i < e->na; i++) {
        tup_t t = {{e->a[i].seller, floor_to(e->a[i].ts, 10000)}};
        tups_push(&sw, &t);
    }
    qsort(sw.t, sw.n, sizeof(tup_t), cmp_tup);
    for (size_t i = 0; i < e->np; i++) {
        tup_t k = {{e->p[i].id, floor_to(e->p[i].ts, 10000)}};
        if (bsearch(&k, sw.t, sw.n, sizeof(tup_t), cmp_tup)) {
            tup_t t = {{e->p[i].id, e->p[i].name, k.v[1]}};
            tups_push(rows, &t);
        }
    }
    free(sw.t);
}

static void q8_emits_persons_with_an_auction_in_their_window(void **state) {
    (void)state;
    nx_events_t e;
    gen_events(&e);
    tups_t want = {0};
    q8_reference(&e, &want);
    static const char *const fields[] = {"id", "name", "starttime"};
    collect_t got;
    collect_init(&got, fields, 3);
    run_query("q8", NULL, 0, &got);
    assert_true(want.n > 100);
    expect_tups(&got.rows, &want, 3, "q8");
    collect_free(&got);
    free(want.t);
    free_events(&e);
}

/* q4: per category, the final price of each auction that has a bid in
 * [dateTime, expires] (the highest such bid), sorted: rows (category,
 * final). */
static void q4_reference(const nx_events_t *e, tups_t *finals) {
    /* auction ids are consecutive from the first one */
    int64_t first = e->na ? e->a[0].id : 0;
    int64_t *best = malloc((e->na + 1) * sizeof(int64_t));
    for (size_t i = 0; i < e->na; i++) {
        assert_int_equal(e->a[i].id, first + (int64_t)i);
        best[i] = -1;
    }
    for (size_t i = 0; i < e->nb; i++) {
        int64_t j = e->b[i].auction - first;
        if (j < 0 || j >= (int64_t)e->na)
            continue;
        const auction_t *a = &e->a[j];
        if (a->ts <= e->b[i].ts && e->b[i].ts <= a->expires && e->b[i].price > best[j])
            best[j] = e->b[i].price;
    }
    for (size_t i = 0; i < e->na; i++)
        if (best[i] >= 0) {
            tup_t t = {{e->a[i].category, best[i]}};
            tups_push(finals, &t);
        }
    free(best);
}

/* The query emits, per closed auction, its category's new average; with
 * a count and a sum added to the same aggregate (edits), consecutive rows
 * of a category give each auction's final price (sum difference), which
 * must be the brute force's, each once, and the last average of each
 * category must be the definition's average. */
static void q4_averages_each_auctions_final_price_per_category(void **state) {
    (void)state;
    nx_events_t e;
    gen_events(&e);
    tups_t want = {0};
    q4_reference(&e, &want);
    /* the premise: some auctions last longer than the watermark delay */
    int64_t longest = 0;
    for (size_t i = 0; i < e.na; i++)
        if (e.a[i].expires - e.a[i].ts > longest)
            longest = e.a[i].expires - e.a[i].ts;
    assert_true(longest > 4000);
    static const char *const fields[] = {"category", "n", "s", "avg_final"};
    collect_t got;
    collect_init(&got, fields, 4);
    const edit_t edits[] = {
        {"fields: {avg_final: avg(final)}", "fields: {avg_final: avg(final), n: count(), s: sum(final)}"},
        {"map: [category, avg_final]", "map: [category, avg_final, n, s]"},
    };
    run_query("q4", edits, 2, &got);
    /* rows by (category, n): n must run 1, 2, ... per category */
    qsort(got.rows.t, got.rows.n, sizeof(tup_t), cmp_tup);
    tups_t finals = {0};
    size_t ncat = 0;
    for (size_t i = 0; i < got.rows.n; i++) {
        const tup_t *r = &got.rows.t[i];
        bool first = !i || got.rows.t[i - 1].v[0] != r->v[0];
        int64_t prev_n = first ? 0 : got.rows.t[i - 1].v[1];
        int64_t prev_s = first ? 0 : got.rows.t[i - 1].v[2];
        if (r->v[1] != prev_n + 1)
            fail_msg("q4: category %" PRId64 ": row n = %" PRId64 " follows n = %" PRId64,
                     r->v[0], r->v[1], prev_n);
        tup_t f = {{r->v[0], r->v[2] - prev_s}};
        tups_push(&finals, &f);
        bool last = i + 1 == got.rows.n || got.rows.t[i + 1].v[0] != r->v[0];
        if (!last)
            continue;
        ncat++;
        /* the last average of the category: sum / count of the finals */
        double avg, sum = 0, n = 0;
        memcpy(&avg, &r->v[3], sizeof(avg));
        for (size_t j = 0; j < want.n; j++)
            if (want.t[j].v[0] == r->v[0]) {
                sum += (double)want.t[j].v[1];
                n++;
            }
        assert_true(n > 0);
        if (fabs(avg - sum / n) > 1e-9 * (sum / n))
            fail_msg("q4: category %" PRId64 ": last average %.17g, expected %.17g", r->v[0], avg,
                     sum / n);
    }
    assert_int_equal(ncat, 5);
    assert_true(want.n > 1000);
    expect_tups(&finals, &want, 2, "q4 (category, final price)");
    collect_free(&got);
    free(finals.t);
    free(want.t);
    free_events(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q8_emits_persons_with_an_auction_in_their_window),
        cmocka_unit_test(q4_averages_each_auctions_final_price_per_category),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
