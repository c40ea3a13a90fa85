/*
 * Nexmark q3 and dedup (bench/queries/q3.yaml, dedup.yaml) against brute
 * force, run as nexmark_harness.h describes: 100K events at 500 events/s
 * of event time (200 s: many dedup horizons), 10% out of order by up to
 * 3 s, the reference's 4 s watermark (nothing is late).
 *
 *  q3: the reference's regular join over all events at once: every
 *      (person of OR, ID or CA, auction of category 10 it sells) pair,
 *      (name, city, state, auction id), whatever the order of events.
 *  dedup: the bids in the order the source delivers them (one partition:
 *      event number order); a bid is kept when its (auction, bidder) has
 *      no kept bid less than 10 s away in event time (docs/dedup.md).
 *      With several partitions the order in which bids of different
 *      partitions meet is not fixed, and with it which of two bids close
 *      in time comes first, so this test uses one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connectors/nexmark_gen.h"
#include "eddy.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EVENTS 100000
#define PARTITIONS 1
#define EVENT_RATE 500

#include "nexmark_harness.h"

static bool local_state(const eddy_nx_str_t *s) {
    return s->len == 2 && (!memcmp(s->p, "OR", 2) || !memcmp(s->p, "ID", 2) ||
                           !memcmp(s->p, "CA", 2));
}

static void q3_equals_the_regular_join(void **state) {
    (void)state;
    eddy_nx_gen_t *g = test_generator();
    char scratch[EDDY_NX_SCRATCH_BYTES];
    tups_t persons = {0}, auctions = {0}, want = {0};
    for (uint64_t i = 0; i < EVENTS; i++) {
        eddy_nx_event_t ev;
        eddy__nx_event(g, i, &ev, scratch);
        if (ev.kind == EDDY_NX_PERSON && local_state(&ev.person.state)) {
            tup_t t = {{ev.person.id, hash_str(ev.person.name.p, ev.person.name.len),
                        hash_str(ev.person.city.p, ev.person.city.len),
                        hash_str(ev.person.state.p, ev.person.state.len)}};
            tups_push(&persons, &t);
        } else if (ev.kind == EDDY_NX_AUCTION && ev.auction.category == 10) {
            tup_t t = {{ev.auction.seller, ev.auction.id}};
            tups_push(&auctions, &t);
        }
    }
    eddy__nx_gen_destroy(g);
    for (size_t a = 0; a < auctions.n; a++)
        for (size_t p = 0; p < persons.n; p++)
            if (persons.t[p].v[0] == auctions.t[a].v[0]) {
                tup_t t = {{persons.t[p].v[1], persons.t[p].v[2], persons.t[p].v[3],
                            auctions.t[a].v[1]}};
                tups_push(&want, &t);
            }
    assert_true(want.n > 100); /* the join has something to find */
    static const char *const fields[] = {"name", "city", "state", "id"};
    collect_t got;
    collect_init(&got, fields, 4);
    run_query("q3", NULL, 0, &got);
    expect_tups(&got.rows, &want, 4, "q3");
    collect_free(&got);
    free(persons.t);
    free(auctions.t);
    free(want.t);
}

/* The kept bids' times of each (auction, bidder): open addressing. */
#define SLOTS (1u << 18)
typedef struct {
    int64_t auction, bidder;
    int64_t *ts;
    size_t n;
    bool used;
} pair_t;

static pair_t *pair_of(pair_t *tab, int64_t auction, int64_t bidder) {
    uint64_t h = ((uint64_t)auction * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)bidder * 31);
    for (uint32_t i = (uint32_t)(h >> 40) & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        pair_t *p = &tab[i];
        if (!p->used) {
            p->used = true;
            p->auction = auction;
            p->bidder = bidder;
            return p;
        }
        if (p->auction == auction && p->bidder == bidder)
            return p;
    }
}

static void dedup_keeps_the_first_bid_per_auction_and_bidder_within_10s(void **state) {
    (void)state;
    eddy_nx_gen_t *g = test_generator();
    char scratch[EDDY_NX_SCRATCH_BYTES];
    pair_t *tab = calloc(SLOTS, sizeof(*tab));
    tups_t want = {0};
    size_t bids = 0;
    for (uint64_t i = 0; i < EVENTS; i++) {
        eddy_nx_event_t ev;
        eddy__nx_event(g, i, &ev, scratch);
        if (ev.kind != EDDY_NX_BID)
            continue;
        bids++;
        pair_t *p = pair_of(tab, ev.bid.auction, ev.bid.bidder);
        bool dup = false;
        /* against every kept bid of the pair */
        for (size_t k = 0; k < p->n && !dup; k++)
            dup = llabs(p->ts[k] - ev.ts_ms) < 10000;
        if (dup)
            continue;
        p->ts = realloc(p->ts, (p->n + 1) * sizeof(int64_t));
        p->ts[p->n++] = ev.ts_ms;
        tup_t t = {{ev.bid.auction, ev.bid.bidder, ev.bid.price, ev.ts_ms}};
        tups_push(&want, &t);
    }
    eddy__nx_gen_destroy(g);
    for (uint32_t i = 0; i < SLOTS; i++)
        free(tab[i].ts);
    free(tab);
    assert_true(want.n < bids && want.n > bids / 10); /* duplicates, and not only */
    static const char *const fields[] = {"auction", "bidder", "price", "dateTime"};
    collect_t got;
    collect_init(&got, fields, 4);
    run_query("dedup", NULL, 0, &got);
    expect_tups(&got.rows, &want, 4, "dedup");
    collect_free(&got);
    free(want.t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(q3_equals_the_regular_join),
        cmocka_unit_test(dedup_keeps_the_first_bid_per_auction_and_bidder_within_10s),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
