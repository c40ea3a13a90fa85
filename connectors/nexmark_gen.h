/*
 * Nexmark event generator: persons, auctions and bids as the nexmark/nexmark
 * (Flink) generator, itself derived from Apache Beam's NexmarkGenerator,
 * makes them. Event k is a pure function of (configuration, seed, k): any
 * thread or partition that generates event number k gets the same event, so
 * a source splits the stream by event number (partition p of P generates
 * k = p, p + P, p + 2P, ...). docs/nexmark-generator.md lists what follows
 * the reference and what deliberately does not.
 */
#ifndef EDDY_NEXMARK_GEN_H
#define EDDY_NEXMARK_GEN_H

#include "eddy.h"

#include <stddef.h>
#include <stdint.h>

/* Constants of the reference generator (GeneratorConfig, *Generator.java). */
#define EDDY_NX_FIRST_PERSON_ID 1000
#define EDDY_NX_FIRST_AUCTION_ID 1000
#define EDDY_NX_FIRST_CATEGORY_ID 10
#define EDDY_NX_NUM_CATEGORIES 5
/** Hot auctions/sellers/bidders are picked inside batches of this many ids. */
#define EDDY_NX_HOT_BATCH 100
/** Ids of not-yet-generated persons/auctions a random pick may reach. */
#define EDDY_NX_ID_LEAD 10
/** Number of non-hot bid channels ("channel-0" .. "channel-9999"). */
#define EDDY_NX_NUM_CHANNELS 10000
/** 2015-07-15T00:00:00Z, the reference's fixed base time. */
#define EDDY_NX_DEFAULT_BASE_TIME_MS INT64_C(1436918400000)
/** Fraction of delayed events to use when out-of-order mode is switched on
 *  (the reference's probDelayedEvent). */
#define EDDY_NX_DEFAULT_OOO_FRACTION 0.1

typedef enum { EDDY_NX_PERSON = 0, EDDY_NX_AUCTION = 1, EDDY_NX_BID = 2 } eddy_nx_kind_t;

/** Generator settings. Start from eddy__nx_conf_default(). */
typedef struct eddy_nx_conf_s {
    uint64_t seed;              /* default 0 */
    int64_t base_time_ms;       /* time of event 0; default EDDY_NX_DEFAULT_BASE_TIME_MS */
    double rate_per_sec;        /* event-time rate; default 10,000,000 (0.1 us apart) */
    double ooo_fraction;        /* fraction of events made late; 0 = in order (default) */
    int64_t ooo_max_delay_ms;   /* a late event is 1..this ms late; default 3000 */
    int avg_person_bytes;       /* 200 */
    int avg_auction_bytes;      /* 500 */
    int avg_bid_bytes;          /* 100 */
    int hot_auction_ratio;      /* 2: P(bid on the hot auction) = 1 - 1/2 */
    int hot_seller_ratio;       /* 4: P(auction by a hot seller) = 1 - 1/4 */
    int hot_bidder_ratio;       /* 4: P(bid by a hot bidder) = 1 - 1/4 */
    int num_in_flight_auctions; /* 100 */
    int num_active_people;      /* 1000 */
    int person_proportion;      /* 1 */
    int auction_proportion;     /* 3 */
    int bid_proportion;         /* 46 */
} eddy_nx_conf_t;

/** @brief Fill c with the reference defaults listed in eddy_nx_conf_t. */
void eddy__nx_conf_default(eddy_nx_conf_t *c);

/**
 * @brief Check a configuration.
 * @returns EDDY_OK, or EDDY_ERR_INVAL with the reason (field and value) in
 *          errstr (NULL-safe).
 */
eddy_err_t eddy__nx_conf_check(const eddy_nx_conf_t *c, char *errstr, size_t errstr_size);

typedef struct eddy_nx_gen_s eddy_nx_gen_t;

/**
 * @brief Build a generator: checks c and builds the string pools (about
 *        2.5 MiB, a few ms) once.
 * @param c copied; may be freed after the call.
 * @returns NULL when c fails eddy__nx_conf_check() (call it for the reason).
 */
eddy_nx_gen_t *eddy__nx_gen_new(const eddy_nx_conf_t *c);
void eddy__nx_gen_destroy(eddy_nx_gen_t *g);

/** A string slice, not NUL-terminated. */
typedef struct {
    const char *p;
    uint32_t len;
} eddy_nx_str_t;

typedef struct eddy_nx_event_s {
    eddy_nx_kind_t kind;
    int64_t ts_ms; /* event time (dateTime), after the out-of-order delay */
    union {
        struct {
            int64_t id;
            eddy_nx_str_t name, email, credit_card, city, state, extra;
        } person;
        struct {
            int64_t id;
            eddy_nx_str_t item_name, description;
            int64_t initial_bid, reserve, expires, seller, category;
            eddy_nx_str_t extra;
        } auction;
        struct {
            int64_t auction, bidder, price;
            eddy_nx_str_t channel, url, extra;
        } bid;
    };
} eddy_nx_event_t;

#define EDDY_NX_SCRATCH_BYTES 1024

/**
 * @brief Fill *ev with event number n (0-based).
 * @param scratch at least EDDY_NX_SCRATCH_BYTES; a person's email and
 *        credit card are written there. Other strings point into g's pools.
 * @remark Strings stay valid while g lives and scratch is not reused.
 *         Thread: any; g is read-only after eddy__nx_gen_new(), so calls may
 *         run concurrently as long as each uses its own scratch. Allocates
 *         nothing. n must be below 2^62.
 */
void eddy__nx_event(const eddy_nx_gen_t *g, uint64_t n, eddy_nx_event_t *ev, char *scratch);

/** @brief Kind of event number n, without generating it. */
eddy_nx_kind_t eddy__nx_kind(const eddy_nx_gen_t *g, uint64_t n);

/**
 * @brief In-order event time of event number n: base + n / rate, in ms
 *        (computed in picoseconds, truncated to ms as the reference does).
 *        Without out-of-order delay this is ev.ts_ms; with it, events >= n
 *        are never earlier than this minus eddy__nx_max_delay_ms(), which is
 *        what a source needs for its watermark.
 */
int64_t eddy__nx_nominal_ms(const eddy_nx_gen_t *g, uint64_t n);

/** @brief The largest lateness an event can have: 0 when in order. */
int64_t eddy__nx_max_delay_ms(const eddy_nx_gen_t *g);

/**
 * @brief Size of an event as the reference counts it when it pads `extra`:
 *        8 bytes per counted number plus the string lengths. Person: id +
 *        name, email, credit card, city, state, extra. Auction: 6 numbers
 *        (the reference counts 8 + 5 * 8 for its 7) + item name,
 *        description, extra. Bid: 4 numbers (auction, bidder, price,
 *        dateTime) + extra; channel and url are not counted, as in the
 *        reference, so bids carry them on top of avg_bid_bytes.
 */
uint32_t eddy__nx_event_bytes(const eddy_nx_event_t *ev);

/**
 * @brief The price formula, exposed for tests: round(10^(6u) * 100) for u
 *        in [0, 1), computed with a table and a polynomial instead of pow().
 */
int64_t eddy__nx_price_from_uniform(const eddy_nx_gen_t *g, double u);

#endif /* EDDY_NEXMARK_GEN_H */
