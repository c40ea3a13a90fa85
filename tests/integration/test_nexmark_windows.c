/*
 * Nexmark q5, q7 and q11 (bench/queries/q5.yaml, q7.yaml, q11.yaml) against brute force.
 *
 * Each test loads the benchmark's own topology file, with @EVENTS@ =
 * 100000 and @PARTITIONS@ = 2, and changes only what a test must: the
 * generator runs at 500 events/s of event time (100K events = 200 s, so
 * there are many windows; the reference's 10M/s would put them all in 10
 * ms), with out-of-order events (10% delayed by up to 3 s); settings get
 * two threads, a private state.dir and a late sink; the blackhole sink is
 * replaced by a callback sink. The bench files keep the reference's
 * watermark (event time - 4 s): an event's time is at least its in-order
 * time - 3 s, and no earlier event of its partition has a later in-order
 * time, so every event time is above the watermark (4 s > 3 s): nothing is
 * late and no event meets a window (or session) that already closed, so
 * the result must equal the reference computed over all events at once.
 *
 * The brute force regenerates the same events with the generator API
 * (same seed, rate and out-of-order settings: the source's event n has
 * event time ev.ts_ms) and evaluates the reference SQL's meaning directly:
 *  q5: for each bid and each of the 5 hopping windows [s, s+10s) holding
 *      it (s a multiple of 2 s), count bids per (window, auction); per
 *      window keep every auction whose count equals the window's maximum;
 *  q7: per tumbling window [w, w+10s), the maximum price; every bid of
 *      the window with that price;
 *  q11: per bidder, bids sorted by time; a bid at most 10 s after the
 *      previous one (touching included) continues the session; session =
 *      [first, last + 10s), bid_count = bids in it.
 * Outputs are compared as multisets of tuples (strings by 64-bit hash).
 * For q5 and q7 a second run keeps the window bounds in the output too.
 */
#include "nexmark_harness.h"

/* ---------------------------------------------------- the brute force */

typedef struct {
    int64_t auction, bidder, price, ts, extra;
} bid_t;

static bid_t *gen_bids(size_t *n) {
    eddy_nx_gen_t *g = test_generator();
    bid_t *b = malloc(EVENTS * sizeof(*b));
    char scratch[EDDY_NX_SCRATCH_BYTES];
    size_t k = 0;
    for (uint64_t i = 0; i < EVENTS; i++) {
        eddy_nx_event_t ev;
        eddy__nx_event(g, i, &ev, scratch);
        if (ev.kind != EDDY_NX_BID)
            continue;
        b[k].auction = ev.bid.auction;
        b[k].bidder = ev.bid.bidder;
        b[k].price = ev.bid.price;
        b[k].ts = ev.ts_ms;
        b[k].extra = hash_str(ev.bid.extra.p, ev.bid.extra.len);
        k++;
    }
    eddy__nx_gen_destroy(g);
    *n = k;
    return b;
}

static void q5_reference(const bid_t *b, size_t n, tups_t *rows) {
    tups_t pairs = {0};
    for (size_t i = 0; i < n; i++) {
        int64_t last = floor_to(b[i].ts, 2000);
        for (int64_t s = last; s > b[i].ts - 10000; s -= 2000) {
            tup_t t = {{s, b[i].auction}};
            tups_push(&pairs, &t);
        }
    }
    qsort(pairs.t, pairs.n, sizeof(tup_t), cmp_tup);
    /* (window, auction, count) runs, then per window the largest */
    tups_t counts = {0};
    for (size_t i = 0; i < pairs.n;) {
        size_t j = i;
        while (j < pairs.n && pairs.t[j].v[0] == pairs.t[i].v[0] &&
               pairs.t[j].v[1] == pairs.t[i].v[1])
            j++;
        tup_t t = {{pairs.t[i].v[0], pairs.t[i].v[1], (int64_t)(j - i)}};
        tups_push(&counts, &t);
        i = j;
    }
    for (size_t i = 0; i < counts.n;) {
        size_t j = i;
        int64_t max = 0;
        while (j < counts.n && counts.t[j].v[0] == counts.t[i].v[0]) {
            if (counts.t[j].v[2] > max)
                max = counts.t[j].v[2];
            j++;
        }
        for (size_t k = i; k < j; k++)
            if (counts.t[k].v[2] == max) {
                int64_t s = counts.t[k].v[0];
                tup_t t = {{counts.t[k].v[1], max, s, s + 10000}};
                tups_push(rows, &t);
            }
        i = j;
    }
    free(pairs.t);
    free(counts.t);
}

/* q7: rows (auction, bidder, price, dateTime, extra, start, end). */
static void q7_reference(const bid_t *b, size_t n, tups_t *rows, int *between_extra) {
    tups_t w = {0}; /* (window, price) */
    for (size_t i = 0; i < n; i++) {
        tup_t t = {{floor_to(b[i].ts, 10000), b[i].price}};
        tups_push(&w, &t);
    }
    qsort(w.t, w.n, sizeof(tup_t), cmp_tup);
    tups_t max = {0}; /* (window, max price) */
    for (size_t i = 0; i < w.n; i++)
        if (i + 1 == w.n || w.t[i + 1].v[0] != w.t[i].v[0])
            tups_push(&max, &w.t[i]);
    *between_extra = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t s = floor_to(b[i].ts, 10000);
        for (size_t k = 0; k < max.n; k++) {
            if (max.t[k].v[0] == s && max.t[k].v[1] == b[i].price) {
                tup_t t = {{b[i].auction, b[i].bidder, b[i].price, b[i].ts, b[i].extra, s,
                            s + 10000}};
                tups_push(rows, &t);
            }
            /* the SQL's BETWEEN also takes a bid at exactly the end */
            if (max.t[k].v[0] + 10000 == b[i].ts && max.t[k].v[1] == b[i].price)
                (*between_extra)++;
        }
    }
    free(w.t);
    free(max.t);
}

/* q11: rows (bidder, bid_count, start, end). */
static void q11_reference(const bid_t *b, size_t n, tups_t *rows) {
    tups_t s = {0};
    for (size_t i = 0; i < n; i++) {
        tup_t t = {{b[i].bidder, b[i].ts}};
        tups_push(&s, &t);
    }
    qsort(s.t, s.n, sizeof(tup_t), cmp_tup);
    for (size_t i = 0; i < s.n;) {
        size_t j = i + 1;
        while (j < s.n && s.t[j].v[0] == s.t[i].v[0] && s.t[j].v[1] <= s.t[j - 1].v[1] + 10000)
            j++;
        tup_t t = {{s.t[i].v[0], (int64_t)(j - i), s.t[i].v[1], s.t[j - 1].v[1] + 10000}};
        tups_push(rows, &t);
        i = j;
    }
    free(s.t);
}

/* Keep the first nf fields of every row. */
/* --------------------------------------------------------------- tests */

static void q5_emits_the_auctions_with_most_bids_of_each_hopping_window(void **state) {
    (void)state;
    size_t n;
    bid_t *b = gen_bids(&n);
    tups_t want = {0};
    q5_reference(b, n, &want);
    size_t windows = 0;
    for (size_t i = 0; i < want.n; i++)
        if (!i || want.t[i].v[2] != want.t[i - 1].v[2])
            windows++;
    assert_true(windows >= 20); /* the run must hold many windows */

    /* the window bounds kept: (auction, num, starttime, endtime) with the
     * top window's [window_start, window_end) = [endtime - 2s, endtime) */
    static const char *const f1[] = {"auction", "num", "starttime", "endtime", "window_start",
                                     "window_end"};
    edit_t keep = {"      - map: [auction, num]\n",
                   "      - map: [auction, num, starttime, endtime, window_start, window_end]\n"};
    collect_t c;
    collect_init(&c, f1, 6);
    run_query("q5", &keep, 1, &c);
    for (size_t i = 0; i < c.rows.n; i++) {
        const tup_t *t = &c.rows.t[i];
        if (t->v[5] != t->v[3] || t->v[4] != t->v[3] - 2000)
            fail_msg("q5: top window [%" PRId64 ", %" PRId64 ") holds hopping window [%" PRId64
                     ", %" PRId64 ")",
                     t->v[4], t->v[5], t->v[2], t->v[3]);
    }
    project(&c.rows, 4);
    expect_tups(&c.rows, &want, 4, "q5 with window bounds");
    collect_free(&c);

    /* the benchmark's own output: (auction, num) */
    static const char *const f2[] = {"auction", "num"};
    collect_init(&c, f2, 2);
    run_query("q5", NULL, 0, &c);
    project(&want, 2);
    expect_tups(&c.rows, &want, 2, "q5");
    printf("q5: %zu bids, %zu hopping windows, %zu rows\n", n, windows, want.n);
    collect_free(&c);
    free(want.t);
    free(b);
}

static void q7_emits_the_highest_priced_bids_of_each_tumbling_window(void **state) {
    (void)state;
    size_t n;
    bid_t *b = gen_bids(&n);
    tups_t want = {0};
    int between_extra;
    q7_reference(b, n, &want, &between_extra);
    assert_true(want.n >= 5);

    static const char *const f1[] = {"auction", "bidder", "price", "dateTime", "extra",
                                     "window_start", "window_end"};
    edit_t keep = {"      - map: [auction, bidder, price, dateTime, extra]\n",
                   "      - map: [auction, bidder, price, dateTime, extra, window_start, "
                   "window_end]\n"};
    collect_t c;
    collect_init(&c, f1, 7);
    run_query("q7", &keep, 1, &c);
    expect_tups(&c.rows, &want, 7, "q7 with window bounds");
    collect_free(&c);

    static const char *const f2[] = {"auction", "bidder", "price", "dateTime", "extra"};
    collect_init(&c, f2, 5);
    run_query("q7", NULL, 0, &c);
    project(&want, 5);
    expect_tups(&c.rows, &want, 5, "q7");
    printf("q7: %zu bids, %zu rows (the SQL's closed BETWEEN would add %d at window ends)\n", n,
           want.n, between_extra);
    collect_free(&c);
    free(want.t);
    free(b);
}

static void q11_counts_the_bids_of_each_bidder_session(void **state) {
    (void)state;
    size_t n;
    bid_t *b = gen_bids(&n);
    tups_t want = {0};
    q11_reference(b, n, &want);
    assert_true(want.n >= 100);
    static const char *const f[] = {"bidder", "bid_count", "window_start", "window_end"};
    collect_t c;
    collect_init(&c, f, 4);
    run_query("q11", NULL, 0, &c);
    expect_tups(&c.rows, &want, 4, "q11");
    printf("q11: %zu bids, %zu sessions\n", n, want.n);
    collect_free(&c);
    free(want.t);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q5_emits_the_auctions_with_most_bids_of_each_hopping_window),
        cmocka_unit_test(q7_emits_the_highest_priced_bids_of_each_tumbling_window),
        cmocka_unit_test(q11_counts_the_bids_of_each_bidder_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
