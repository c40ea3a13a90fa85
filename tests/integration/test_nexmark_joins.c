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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q8_emits_persons_with_an_auction_in_their_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
