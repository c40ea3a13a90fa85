/*
 * Nexmark event generator.
 *
 * What it follows: the nexmark/nexmark (Flink) generator, which is Apache
 * Beam's NexmarkGenerator plus bid channels and urls. Event number n decides
 * everything: its kind (n mod 50 against the 1:3:46 proportions), the ids it
 * creates (person id n/50 + 1000, auction ids 3 per 50 events + 1000), the
 * ids it may reference (a "hot" id at the start of the current batch of 100,
 * or a random one among the recent in-flight auctions / active people plus a
 * lead of 10 not yet generated), and its time (base + n / rate). The rest is
 * random: prices log-uniform in [100, 1e8], strings, channels, and the
 * `extra` padding that brings each kind to its average size.
 *
 * How it is built, and why:
 *  - Pure function of (g, n). The reference seeds java.util.Random with the
 *    event id (Beam); we seed a splitmix64 stream with mix64(n, seed), so
 *    any thread or partition generating event n gets the same event, with
 *    no state to carry between calls and no lock: g is read-only.
 *  - Cheap. Nexmark q0 counts the generator's cost, and the engine aims at
 *    3M events per CPU-second, so an event must cost tens of ns. Nothing
 *    is allocated per event; strings are slices: `extra` of a 1 MiB
 *    random-letter pool, item names and descriptions of a pool drawn with
 *    the reference's character distribution (space with p = 1/13), channels
 *    and urls of a table built at init. Only a person's email and credit
 *    card are written into the caller's scratch. 10^(6u) uses two 1024-entry
 *    tables and a degree-2 polynomial rather than pow(). Division by the
 *    proportion total (50) uses a precomputed reciprocal.
 */
#include "connectors/nexmark_gen.h"

#include "eddy_int.h"

#include <inttypes.h>
#include <math.h>

__extension__ typedef unsigned __int128 nx_u128;

#define NX_GOLDEN UINT64_C(0x9e3779b97f4a7c15)
#define NX_SALT_OOO UINT64_C(0x6a09e667f3bcc909)
#define NX_SALT_INIT UINT64_C(0xbb67ae8584caa73b)

#define NX_PRICE_TAB 1024
#define NX_LETTERS_BYTES (1u << 20)
#define NX_SPACED_BYTES (1u << 18)
#define NX_MAX_AVG_BYTES (1 << 20)
#define NX_NUM_HOT_CHANNELS 4

/* Nexmark's fixed vocabularies (PersonGenerator, BidGenerator). */
static const char *const nx_first_names[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                             "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const nx_last_names[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                            "Walton", "Smith",  "Jones",   "Noris"};
#define NX_NFIRST (sizeof(nx_first_names) / sizeof(nx_first_names[0]))
#define NX_NLAST (sizeof(nx_last_names) / sizeof(nx_last_names[0]))

#define NX_STR(s)                                                                                  \
    { s, sizeof(s) - 1 }
static const eddy_nx_str_t nx_cities[] = {
    NX_STR("Phoenix"),  NX_STR("Los Angeles"), NX_STR("San Francisco"), NX_STR("Boise"),
    NX_STR("Portland"), NX_STR("Bend"),        NX_STR("Redmond"),       NX_STR("Seattle"),
    NX_STR("Kent"),     NX_STR("Cheyenne")};
static const eddy_nx_str_t nx_states[] = {NX_STR("AZ"), NX_STR("CA"), NX_STR("ID"),
                                          NX_STR("OR"), NX_STR("WA"), NX_STR("WY")};
static const char *const nx_hot_channels[NX_NUM_HOT_CHANNELS] = {"Google", "Facebook", "Baidu",
                                                                 "Apple"};
#define NX_NCITIES (sizeof(nx_cities) / sizeof(nx_cities[0]))
#define NX_NSTATES (sizeof(nx_states) / sizeof(nx_states[0]))

/* A string pair in a pool: a (name, url) channel, or a person name (b_len 0). */
typedef struct {
    uint32_t off;
    uint8_t a_len, b_len;
} nx_slot_t;

/* Unsigned 64-bit division by a run-time constant (round-up method of
 * Granlund and Montgomery): exact for every 64-bit n. */
typedef struct {
    uint64_t m;
    int sh;
    int pow2;
} nx_div_t;

struct eddy_nx_gen_s {
    eddy_nx_conf_t conf;
    uint64_t seed_key;
    nx_div_t div_total;
    int64_t total, pp, ap;          /* proportions */
    uint64_t rate_int;              /* rate_per_sec when whole, else 0 */
    nx_div_t div_rate;              /* division by rate_int */
    uint64_t delay_ps;              /* else: event-time distance between events */
    uint64_t ts_fast_max;           /* n * delay_ps fits in 64 bits up to this */
    int64_t auction_horizon_events; /* events until num_in_flight more auctions */
    uint64_t ooo_threshold;         /* event late iff hash < this; 0 = never */
    int bid_extra_min, bid_extra_span;
    double price_hi[NX_PRICE_TAB]; /* 100 * 10^(6 i / 2^10) */
    double price_lo[NX_PRICE_TAB]; /* 10^(6 j / 2^20) */
    char *letters;                 /* 'a'..'z', for extra */
    uint32_t letters_len;
    char *spaced; /* 'a'..'z' or ' ' (p = 1/13), for nextString */
    uint32_t spaced_len;
    char *strbuf; /* person names, channel names and urls */
    nx_slot_t names[NX_NFIRST * NX_NLAST];
    nx_slot_t channels[EDDY_NX_NUM_CHANNELS + NX_NUM_HOT_CHANNELS]; /* hot ones last */
};

/* ------------------------------------------------------------ randomness */

static inline uint64_t nx_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* splitmix64 stream; one per event, started at a hash of (n, seed). */
typedef struct {
    uint64_t x;
} nx_rng_t;

static inline uint64_t nx_next(nx_rng_t *r) {
    r->x += NX_GOLDEN;
    return nx_mix64(r->x);
}

/* Uniform in [0, n) by multiply-shift; bias below n / 2^64. */
static inline uint64_t nx_below(nx_rng_t *r, uint64_t n) {
    return (uint64_t)(((nx_u128)nx_next(r) * n) >> 64);
}

/* Uniform in [0, n) from the low / high 32 bits of a draw, so that one draw
 * serves two small choices; bias below n / 2^32 (n is at most 2^30 + 11). */
static inline uint32_t nx_lo(uint64_t x, uint32_t n) {
    return (uint32_t)(((x & 0xffffffffu) * n) >> 32);
}
static inline uint32_t nx_hi(uint64_t x, uint32_t n) {
    return (uint32_t)(((x >> 32) * n) >> 32);
}

/* ------------------------------------------------------------- division */

static void nx_div_init(nx_div_t *d, uint64_t v) {
    eddy_assert(v > 0);
    if ((v & (v - 1)) == 0) {
        d->pow2 = 1;
        d->sh = __builtin_ctzll(v);
        d->m = 0;
        return;
    }
    int l = 64 - __builtin_clzll(v - 1); /* ceil(log2 v), >= 2 */
    nx_u128 one = 1;
    d->pow2 = 0;
    d->m = (uint64_t)(((one << (64 + l)) / v) - (one << 64) + 1);
    d->sh = l - 1;
}

static inline uint64_t nx_div(const nx_div_t *d, uint64_t n) {
    if (d->pow2)
        return n >> d->sh;
    uint64_t t = (uint64_t)(((nx_u128)d->m * n) >> 64);
    return (t + ((n - t) >> 1)) >> d->sh;
}

/* ----------------------------------------------------------------- time */

/* The reference: baseTime + (long)(n * interEventDelayUs) / 1000. Here
 * exact for a whole rate (floor(n * 1000 / rate), no accumulated error at
 * any n); a fractional rate uses the delay rounded to a picosecond. */
int64_t eddy__nx_nominal_ms(const eddy_nx_gen_t *g, uint64_t n) {
    if (eddy_likely(g->rate_int)) {
        if (eddy_likely(n <= UINT64_MAX / 1000))
            return g->conf.base_time_ms + (int64_t)nx_div(&g->div_rate, n * 1000);
        return g->conf.base_time_ms + (int64_t)(((nx_u128)n * 1000) / g->rate_int);
    }
    if (n <= g->ts_fast_max)
        return g->conf.base_time_ms + (int64_t)((n * g->delay_ps) / UINT64_C(1000000000));
    return g->conf.base_time_ms + (int64_t)(((nx_u128)n * g->delay_ps) / UINT64_C(1000000000));
}

int64_t eddy__nx_max_delay_ms(const eddy_nx_gen_t *g) {
    return g->ooo_threshold ? g->conf.ooo_max_delay_ms : 0;
}

/* ------------------------------------------------------------ configuration */

void eddy__nx_conf_default(eddy_nx_conf_t *c) {
    memset(c, 0, sizeof(*c));
    c->seed = 0;
    c->base_time_ms = EDDY_NX_DEFAULT_BASE_TIME_MS;
    c->rate_per_sec = 10000000.0;
    c->ooo_fraction = 0.0;
    c->ooo_max_delay_ms = 3000;
    c->avg_person_bytes = 200;
    c->avg_auction_bytes = 500;
    c->avg_bid_bytes = 100;
    c->hot_auction_ratio = 2;
    c->hot_seller_ratio = 4;
    c->hot_bidder_ratio = 4;
    c->num_in_flight_auctions = 100;
    c->num_active_people = 1000;
    c->person_proportion = 1;
    c->auction_proportion = 3;
    c->bid_proportion = 46;
}

eddy_err_t eddy__nx_conf_check(const eddy_nx_conf_t *c, char *errstr, size_t errstr_size) {
    const struct {
        const char *name;
        int v, min, max;
    } ints[] = {
        {"avg_person_bytes", c->avg_person_bytes, 0, NX_MAX_AVG_BYTES},
        {"avg_auction_bytes", c->avg_auction_bytes, 0, NX_MAX_AVG_BYTES},
        {"avg_bid_bytes", c->avg_bid_bytes, 0, NX_MAX_AVG_BYTES},
        {"hot_auction_ratio", c->hot_auction_ratio, 1, 1 << 30},
        {"hot_seller_ratio", c->hot_seller_ratio, 1, 1 << 30},
        {"hot_bidder_ratio", c->hot_bidder_ratio, 1, 1 << 30},
        {"num_in_flight_auctions", c->num_in_flight_auctions, 1, 1 << 30},
        {"num_active_people", c->num_active_people, 1, 1 << 30},
        {"person_proportion", c->person_proportion, 1, 1 << 20},
        {"auction_proportion", c->auction_proportion, 1, 1 << 20},
        {"bid_proportion", c->bid_proportion, 0, 1 << 20},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (ints[i].v < ints[i].min || ints[i].v > ints[i].max) {
            eddy__seterr(errstr, errstr_size, "nexmark: %s %d: must be in [%d, %d]", ints[i].name,
                         ints[i].v, ints[i].min, ints[i].max);
            return EDDY_ERR_INVAL;
        }
    }
    /* delay_ps must be >= 1 */
    if (!(c->rate_per_sec > 0.0 && c->rate_per_sec <= 1e12)) {
        eddy__seterr(errstr, errstr_size, "nexmark: rate_per_sec %g: must be in (0, 1e12]",
                     c->rate_per_sec);
        return EDDY_ERR_INVAL;
    }
    if (!(c->ooo_fraction >= 0.0 && c->ooo_fraction <= 1.0)) {
        eddy__seterr(errstr, errstr_size, "nexmark: ooo_fraction %g: must be in [0, 1]",
                     c->ooo_fraction);
        return EDDY_ERR_INVAL;
    }
    if (c->ooo_fraction > 0.0 &&
        (c->ooo_max_delay_ms < 1 || c->ooo_max_delay_ms > INT64_C(1) << 40)) {
        eddy__seterr(errstr, errstr_size,
                     "nexmark: ooo_max_delay_ms %" PRId64 ": must be in [1, 2^40] "
                     "when ooo_fraction > 0",
                     c->ooo_max_delay_ms);
        return EDDY_ERR_INVAL;
    }
    return EDDY_OK;
}

/* ------------------------------------------------------------------ init */

/* The reference's nextString(random, maxLength, special) for init-time use:
 * 3..maxLength-1 characters, each `special` with p = 1/13 or a letter. */
static size_t nx_init_string(nx_rng_t *r, char *out, int max_len, char special) {
    size_t len = 3 + nx_below(r, (uint64_t)max_len - 3);
    for (size_t i = 0; i < len; i++)
        out[i] = nx_below(r, 13) == 0 ? special : (char)('a' + nx_below(r, 26));
    return len;
}

/* "https://www.nexmark.com/xxx/xxx/xxx/item.htm?query=1", as getBaseUrl(). */
static size_t nx_init_base_url(nx_rng_t *r, char *out) {
    static const char head[] = "https://www.nexmark.com/";
    static const char tail[] = "item.htm?query=1";
    size_t len = sizeof(head) - 1;
    memcpy(out, head, len);
    for (int i = 0; i < 3; i++) {
        len += nx_init_string(r, out + len, 5, '_');
        out[len++] = '/';
    }
    memcpy(out + len, tail, sizeof(tail) - 1);
    return len + sizeof(tail) - 1;
}

/* Java's Math.abs(Integer.reverse(i)): the bits of i reversed, as a signed
 * 32-bit value; abs(INT_MIN) stays INT_MIN in Java, so does it here. */
static int64_t nx_java_abs_reverse(uint32_t v) {
    uint32_t r = 0;
    for (int i = 0; i < 32; i++)
        r |= ((v >> i) & 1u) << (31 - i);
    int64_t s = (int32_t)r;
    if (s == INT32_MIN)
        return s;
    return s < 0 ? -s : s;
}

/* The strings used by every event, built once. */
#define NX_SLOT_MAX_BYTES 128
static void nx_build_pools(eddy_nx_gen_t *g) {
    nx_rng_t r = {nx_mix64(g->seed_key ^ NX_SALT_INIT)};

    /* an extra is at most 1.2 times an average size: room for any of them */
    int max_avg = g->conf.avg_person_bytes;
    max_avg = g->conf.avg_auction_bytes > max_avg ? g->conf.avg_auction_bytes : max_avg;
    max_avg = g->conf.avg_bid_bytes > max_avg ? g->conf.avg_bid_bytes : max_avg;
    g->letters_len = NX_LETTERS_BYTES + 2 * (uint32_t)max_avg;
    g->letters = eddy_malloc(g->letters_len);
    for (uint32_t i = 0; i < g->letters_len; i++)
        g->letters[i] = (char)('a' + nx_below(&r, 26));

    g->spaced_len = NX_SPACED_BYTES;
    g->spaced = eddy_malloc(g->spaced_len);
    for (uint32_t i = 0; i < g->spaced_len; i++)
        g->spaced[i] = nx_below(&r, 13) == 0 ? ' ' : (char)('a' + nx_below(&r, 26));

    size_t nslots = NX_NFIRST * NX_NLAST + EDDY_NX_NUM_CHANNELS + NX_NUM_HOT_CHANNELS;
    g->strbuf = eddy_malloc(nslots * NX_SLOT_MAX_BYTES);
    char *p = g->strbuf;

    for (size_t f = 0; f < NX_NFIRST; f++) {
        for (size_t l = 0; l < NX_NLAST; l++) {
            int len = snprintf(p, NX_SLOT_MAX_BYTES, "%s %s", nx_first_names[f], nx_last_names[l]);
            g->names[f * NX_NLAST + l] = (nx_slot_t){(uint32_t)(p - g->strbuf), (uint8_t)len, 0};
            p += len;
        }
    }

    /* Channels: "channel-<i>" with its own url, which carries
     * "&channel_id=<abs(reverse(i))>" 9 times out of 10; then the four hot
     * channels, each with one url (the reference's HOT_URLS). */
    for (int i = 0; i < EDDY_NX_NUM_CHANNELS + NX_NUM_HOT_CHANNELS; i++) {
        int alen;
        if (i < EDDY_NX_NUM_CHANNELS)
            alen = snprintf(p, NX_SLOT_MAX_BYTES, "channel-%d", i);
        else
            alen = snprintf(p, NX_SLOT_MAX_BYTES, "%s", nx_hot_channels[i - EDDY_NX_NUM_CHANNELS]);
        size_t blen = nx_init_base_url(&r, p + alen);
        if (i < EDDY_NX_NUM_CHANNELS && nx_below(&r, 10) > 0)
            blen += (size_t)snprintf(p + alen + blen, NX_SLOT_MAX_BYTES - alen - blen,
                                     "&channel_id=%" PRId64, nx_java_abs_reverse((uint32_t)i));
        eddy_assert((size_t)alen + blen < NX_SLOT_MAX_BYTES && blen <= 255);
        g->channels[i] = (nx_slot_t){(uint32_t)(p - g->strbuf), (uint8_t)alen, (uint8_t)blen};
        p += (size_t)alen + blen;
    }
}

eddy_nx_gen_t *eddy__nx_gen_new(const eddy_nx_conf_t *c) {
    if (eddy__nx_conf_check(c, NULL, 0) != EDDY_OK)
        return NULL;
    eddy_nx_gen_t *g = eddy_calloc(1, sizeof(*g));
    g->conf = *c;
    g->seed_key = nx_mix64(c->seed + NX_GOLDEN);
    g->pp = c->person_proportion;
    g->ap = c->auction_proportion;
    g->total = (int64_t)c->person_proportion + c->auction_proportion + c->bid_proportion;
    nx_div_init(&g->div_total, (uint64_t)g->total);

    if (c->rate_per_sec >= 1.0 && c->rate_per_sec == floor(c->rate_per_sec)) {
        g->rate_int = (uint64_t)c->rate_per_sec;
        nx_div_init(&g->div_rate, g->rate_int);
    }
    double ps = floor(1e12 / c->rate_per_sec + 0.5);
    g->delay_ps = ps < 1.0 ? 1 : (uint64_t)ps;
    g->ts_fast_max = UINT64_MAX / g->delay_ps;
    /* AuctionGenerator.nextAuctionLengthMs: events until num_in_flight more
     * auctions have been generated. */
    g->auction_horizon_events = (int64_t)c->num_in_flight_auctions * g->total / g->ap;

    if (c->ooo_fraction >= 1.0)
        g->ooo_threshold = UINT64_MAX;
    else
        g->ooo_threshold = (uint64_t)(c->ooo_fraction * 18446744073709551616.0);

    /* StringsGenerator.nextExtra for the constant bid size (4 numbers). */
    int bid_room = c->avg_bid_bytes - 32;
    if (bid_room >= 0) {
        int delta = (int)floor(bid_room * 0.2 + 0.5);
        g->bid_extra_min = bid_room - delta;
        g->bid_extra_span = 2 * delta;
    }

    for (int i = 0; i < NX_PRICE_TAB; i++) {
        g->price_hi[i] = 100.0 * pow(10.0, 6.0 * i / NX_PRICE_TAB);
        g->price_lo[i] = pow(10.0, 6.0 * i / ((double)NX_PRICE_TAB * NX_PRICE_TAB));
    }

    nx_build_pools(g);
    return g;
}

void eddy__nx_gen_destroy(eddy_nx_gen_t *g) {
    if (!g)
        return;
    eddy_free(g->letters);
    eddy_free(g->spaced);
    eddy_free(g->strbuf);
    eddy_free(g);
}

/* --------------------------------------------------------------- fields */

/* round(10^(6u) * 100) for u = m / 2^53. Split m into 10 + 10 + 33 bits:
 * 10^(6u) = hi[i] * lo[j] * e^y with y < 6 ln 10 / 2^20 = 1.4e-5, where
 * 1 + y + y^2/2 is good to 5e-16: a short dependency chain, no pow(). */
static inline int64_t nx_price_m(const eddy_nx_gen_t *g, uint64_t m) {
    const double k = 6.0 * 2.302585092994045684 * 0x1.0p-53;
    uint32_t i = (uint32_t)(m >> 43), j = (uint32_t)(m >> 33) & (NX_PRICE_TAB - 1);
    double y = (double)(m & ((UINT64_C(1) << 33) - 1)) * k;
    double e = 1.0 + y * (1.0 + 0.5 * y);
    return (int64_t)(g->price_hi[i] * g->price_lo[j] * e + 0.5); /* Java Math.round, x > 0 */
}

int64_t eddy__nx_price_from_uniform(const eddy_nx_gen_t *g, double u) {
    if (!(u >= 0.0))
        u = 0.0;
    if (u >= 1.0)
        u = 0x1.fffffffffffffp-1;
    return nx_price_m(g, (uint64_t)(u * 0x1.0p53));
}

/* PriceGenerator.nextPrice: round(10^(uniform[0,6)) * 100). */
static inline int64_t nx_price(const eddy_nx_gen_t *g, nx_rng_t *r) {
    return nx_price_m(g, nx_next(r) >> 11);
}

/* StringsGenerator.nextString(maxLength): 3..maxLength-1 characters, then
 * trimmed; here a slice of the pool drawn with the same distribution. */
static inline eddy_nx_str_t nx_string(const eddy_nx_gen_t *g, nx_rng_t *r, int max_len) {
    uint64_t x = nx_next(r);
    uint32_t len = 3 + nx_lo(x, (uint32_t)max_len - 3);
    const char *p = g->spaced + nx_hi(x, g->spaced_len - len + 1);
    while (len && *p == ' ') {
        p++;
        len--;
    }
    while (len && p[len - 1] == ' ')
        len--;
    return (eddy_nx_str_t){p, len};
}

/* StringsGenerator.nextExtra: pad current_bytes up to avg_bytes on average,
 * the length uniform in [room - delta, room + delta), delta = 20% of room
 * (nothing when the fields are already larger); the letters are a slice of
 * the pool at a random place. span = 2 * delta, precomputed for bids. */
static inline eddy_nx_str_t nx_extra_span(const eddy_nx_gen_t *g, nx_rng_t *r, uint32_t min,
                                          uint32_t span) {
    uint64_t x = nx_next(r);
    uint32_t len = min + nx_lo(x, span); /* nx_lo(x, 0) == 0 */
    return (eddy_nx_str_t){g->letters + nx_hi(x, g->letters_len - len + 1), len};
}

static inline eddy_nx_str_t nx_extra(const eddy_nx_gen_t *g, nx_rng_t *r, int current_bytes,
                                     int avg_bytes) {
    if (current_bytes > avg_bytes)
        return (eddy_nx_str_t){g->letters, 0};
    int room = avg_bytes - current_bytes;
    int delta = (int)floor(room * 0.2 + 0.5);
    return nx_extra_span(g, r, (uint32_t)(room - delta), 2 * (uint32_t)delta);
}

static inline eddy_nx_str_t nx_slot_a(const eddy_nx_gen_t *g, const nx_slot_t *s) {
    return (eddy_nx_str_t){g->strbuf + s->off, s->a_len};
}
static inline eddy_nx_str_t nx_slot_b(const eddy_nx_gen_t *g, const nx_slot_t *s) {
    return (eddy_nx_str_t){g->strbuf + s->off + s->a_len, s->b_len};
}

/* PersonGenerator.nextBase0PersonId: one of the last num_active_people
 * persons, or up to EDDY_NX_ID_LEAD not generated yet. */
static inline int64_t nx_random_person(const eddy_nx_gen_t *g, uint32_t x, int64_t last_person) {
    int64_t num_people = last_person + 1;
    int64_t active =
        num_people < g->conf.num_active_people ? num_people : g->conf.num_active_people;
    return num_people - active + nx_lo(x, (uint32_t)(active + EDDY_NX_ID_LEAD));
}

/* AuctionGenerator.nextBase0AuctionId: one of the last num_in_flight_auctions
 * auctions, or up to EDDY_NX_ID_LEAD not generated yet. */
static inline int64_t nx_random_auction(const eddy_nx_gen_t *g, uint32_t x, int64_t last_auction) {
    int64_t min = last_auction - g->conf.num_in_flight_auctions;
    if (min < 0)
        min = 0;
    return min + nx_lo(x, (uint32_t)(last_auction - min + 1 + EDDY_NX_ID_LEAD));
}

/* Writes v as 4 digits, "%04d". */
static inline void nx_put4(char *p, uint32_t v) {
    p[3] = (char)('0' + v % 10);
    v /= 10;
    p[2] = (char)('0' + v % 10);
    v /= 10;
    p[1] = (char)('0' + v % 10);
    p[0] = (char)('0' + v / 10);
}

static void nx_person(const eddy_nx_gen_t *g, nx_rng_t *r, int64_t last_person, eddy_nx_event_t *ev,
                      char *scratch) {
    ev->person.id = last_person + EDDY_NX_FIRST_PERSON_ID;
    uint32_t first = (uint32_t)nx_below(r, NX_NFIRST);
    uint32_t last = (uint32_t)nx_below(r, NX_NLAST);
    ev->person.name = nx_slot_a(g, &g->names[first * NX_NLAST + last]);

    /* nextEmail: nextString(7) + "@" + nextString(5) + ".com" */
    eddy_nx_str_t user = nx_string(g, r, 7), host = nx_string(g, r, 5);
    char *p = scratch;
    memcpy(p, user.p, user.len);
    p += user.len;
    *p++ = '@';
    memcpy(p, host.p, host.len);
    p += host.len;
    memcpy(p, ".com", 4);
    p += 4;
    ev->person.email = (eddy_nx_str_t){scratch, (uint32_t)(p - scratch)};

    /* nextCreditCard: four "%04d" groups separated by spaces */
    char *cc = p;
    for (int i = 0; i < 4; i++) {
        if (i)
            *p++ = ' ';
        nx_put4(p, (uint32_t)nx_below(r, 10000));
        p += 4;
    }
    ev->person.credit_card = (eddy_nx_str_t){cc, (uint32_t)(p - cc)};
    ev->person.city = nx_cities[nx_below(r, NX_NCITIES)];
    ev->person.state = nx_states[nx_below(r, NX_NSTATES)];

    int current =
        8 + (int)(ev->person.name.len + ev->person.email.len + ev->person.credit_card.len +
                  ev->person.city.len + ev->person.state.len);
    ev->person.extra = nx_extra(g, r, current, g->conf.avg_person_bytes);
}

static void nx_auction(const eddy_nx_gen_t *g, nx_rng_t *r, uint64_t n, int64_t last_auction,
                       int64_t last_person, eddy_nx_event_t *ev) {
    ev->auction.id = last_auction + EDDY_NX_FIRST_AUCTION_ID;

    /* nextSellerIdWithRandom: P(hot) = 1 - 1/hot_seller_ratio; the hot
     * seller is the first person of the current batch of 100. */
    int64_t seller;
    if (nx_below(r, (uint64_t)g->conf.hot_seller_ratio) > 0)
        seller = (last_person / EDDY_NX_HOT_BATCH) * EDDY_NX_HOT_BATCH;
    else
        seller = nx_random_person(g, (uint32_t)nx_next(r), last_person);
    ev->auction.seller = seller + EDDY_NX_FIRST_PERSON_ID;
    ev->auction.category = EDDY_NX_FIRST_CATEGORY_ID + (int64_t)nx_below(r, EDDY_NX_NUM_CATEGORIES);
    ev->auction.initial_bid = nx_price(g, r);
    ev->auction.reserve = ev->auction.initial_bid + nx_price(g, r);

    /* nextAuctionLengthMs: 1 + uniform[0, 2 * horizon), horizon being the
     * event time until num_in_flight_auctions more auctions exist. The
     * length is taken from the in-order times and added to ts_ms. */
    int64_t horizon_ms =
        eddy__nx_nominal_ms(g, n + (uint64_t)g->auction_horizon_events) - eddy__nx_nominal_ms(g, n);
    uint64_t span = horizon_ms * 2 > 1 ? (uint64_t)horizon_ms * 2 : 1;
    ev->auction.expires = ev->ts_ms + 1 + (int64_t)nx_below(r, span);

    ev->auction.item_name = nx_string(g, r, 20);
    ev->auction.description = nx_string(g, r, 100);
    int current = 8 + (int)(ev->auction.item_name.len + ev->auction.description.len) + 40;
    ev->auction.extra = nx_extra(g, r, current, g->conf.avg_auction_bytes);
}

static inline void nx_bid(const eddy_nx_gen_t *g, nx_rng_t *r, int64_t last_auction,
                          int64_t last_person, eddy_nx_event_t *ev) {
    /* Each 64-bit draw serves two choices. Both candidates of a hot-or-not
     * choice are computed and one is selected without a branch: a coin
     * flip is the worst case for the branch predictor. */
    uint64_t x_hot = nx_next(r), x_any = nx_next(r);

    /* P(hot auction) = 1 - 1/hot_auction_ratio: the first auction of the
     * current batch of 100. */
    int hot = nx_lo(x_hot, (uint32_t)g->conf.hot_auction_ratio) > 0;
    int64_t hot_id = (last_auction / EDDY_NX_HOT_BATCH) * EDDY_NX_HOT_BATCH;
    int64_t any_id = nx_random_auction(g, (uint32_t)x_any, last_auction);
    ev->bid.auction = (hot ? hot_id : any_id) + EDDY_NX_FIRST_AUCTION_ID;

    /* P(hot bidder) = 1 - 1/hot_bidder_ratio: the second person of the
     * batch, so that hot bidders and hot sellers differ. */
    hot = nx_hi(x_hot, (uint32_t)g->conf.hot_bidder_ratio) > 0;
    hot_id = (last_person / EDDY_NX_HOT_BATCH) * EDDY_NX_HOT_BATCH + 1;
    any_id = nx_random_person(g, (uint32_t)(x_any >> 32), last_person);
    ev->bid.bidder = (hot ? hot_id : any_id) + EDDY_NX_FIRST_PERSON_ID;
    ev->bid.price = nx_price(g, r);

    /* Half the bids come through one of 4 hot channels (HOT_CHANNELS_RATIO
     * 2), the others through one of 10,000. */
    uint64_t x_ch = nx_next(r);
    uint32_t hot_ch = EDDY_NX_NUM_CHANNELS + ((uint32_t)(x_ch >> 32) & 3);
    uint32_t any_ch = nx_lo(x_ch, EDDY_NX_NUM_CHANNELS);
    const nx_slot_t *ch = &g->channels[(x_ch >> 63) ? hot_ch : any_ch];
    ev->bid.channel = nx_slot_a(g, ch);
    ev->bid.url = nx_slot_b(g, ch);

    ev->bid.extra = nx_extra_span(g, r, (uint32_t)g->bid_extra_min, (uint32_t)g->bid_extra_span);
}

/* ----------------------------------------------------------------- events */

eddy_nx_kind_t eddy__nx_kind(const eddy_nx_gen_t *g, uint64_t n) {
    int64_t rem = (int64_t)(n - nx_div(&g->div_total, n) * (uint64_t)g->total);
    if (rem < g->pp)
        return EDDY_NX_PERSON;
    return rem < g->pp + g->ap ? EDDY_NX_AUCTION : EDDY_NX_BID;
}

void eddy__nx_event(const eddy_nx_gen_t *g, uint64_t n, eddy_nx_event_t *ev, char *scratch) {
    int64_t epoch = (int64_t)nx_div(&g->div_total, n);
    int64_t rem = (int64_t)n - epoch * g->total;
    nx_rng_t r = {nx_mix64(((n + 1) * NX_GOLDEN) ^ g->seed_key)};

    ev->ts_ms = eddy__nx_nominal_ms(g, n);
    if (g->ooo_threshold) {
        /* Beam's UnboundedEventSource holds a fraction of events back by
         * 1..delay ms; generating in number order, the same lateness shows
         * as an event time that far behind its neighbours'. Hashed apart
         * from the field stream, so that switching it on changes times only. */
        uint64_t h = nx_mix64(r.x ^ NX_SALT_OOO);
        if (h < g->ooo_threshold)
            ev->ts_ms -=
                1 + (int64_t)(((nx_u128)nx_mix64(h) * (uint64_t)g->conf.ooo_max_delay_ms) >> 64);
    }

    /* PersonGenerator.lastBase0PersonId / AuctionGenerator.lastBase0AuctionId:
     * the newest id generated so far (this event's own when it makes one). */
    int64_t last_person = epoch * g->pp + (rem < g->pp ? rem : g->pp - 1);
    if (rem < g->pp) {
        ev->kind = EDDY_NX_PERSON;
        nx_person(g, &r, last_person, ev, scratch);
    } else if (rem < g->pp + g->ap) {
        ev->kind = EDDY_NX_AUCTION;
        nx_auction(g, &r, n, epoch * g->ap + (rem - g->pp), last_person, ev);
    } else {
        ev->kind = EDDY_NX_BID;
        nx_bid(g, &r, epoch * g->ap + g->ap - 1, last_person, ev);
    }
}

uint32_t eddy__nx_event_bytes(const eddy_nx_event_t *ev) {
    switch (ev->kind) {
    case EDDY_NX_PERSON:
        return 8 + ev->person.name.len + ev->person.email.len + ev->person.credit_card.len +
               ev->person.city.len + ev->person.state.len + ev->person.extra.len;
    case EDDY_NX_AUCTION:
        return 8 + ev->auction.item_name.len + ev->auction.description.len + 40 +
               ev->auction.extra.len;
    case EDDY_NX_BID:
        return 32 + ev->bid.extra.len;
    }
    return 0;
}
