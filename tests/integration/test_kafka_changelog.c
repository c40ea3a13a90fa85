/*
 * The Kafka changelog (state.changelog: kafka) against the embedded
 * cluster, which the test holds so that it outlives the engines, as a
 * broker outlives applications:
 *
 *  - a stateful topology (a per-bidder aggregate and a tumbling window
 *    with retention over the Nexmark generator) is stopped, its state
 *    directory deleted, and started again: the state is rebuilt from the
 *    topics, key for key (public queries and the raw stores);
 *  - records after the last commit marker (an unacknowledged tail) are not
 *    applied, and stay harmless once later commits follow them;
 *  - a failed delivery fails the commit (never acknowledged), and the
 *    state restored from the topics afterwards leads to the reference
 *    result;
 *  - the changelog handle itself: a failed commit leaves nothing a restore
 *    would apply, retried errors are retried, a partition that lost its
 *    oldest records is refused, restore throughput;
 *  - config errors.
 *
 * Data stays far below the embedded cluster's ~5 MiB per partition (it
 * drops older records beyond that), except where that limit is the point.
 * With EDDY_TEST_KAFKA=host:port the tests that need no fault injection
 * and no embedded limit run against that broker (applications named per
 * run, as its topics outlive the test); the others are skipped.
 */
#include "kafka_harness.h"

#include "connectors/kafka.h"
#include "connectors/kafka_changelog.h"
#include "engine/fault.h"
#include "state/checkpoint.h"
#include "state/rocks.h"
#include "state/tstate.h"

/* engine internals the test reads (engine/query.c declares them too) */
eddy_tstate_t *eddy__engine_tstate(eddy_engine_t *eng, int task);
eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);
eddy_state_env_t *eddy__engine_state_env(eddy_engine_t *eng);

#define API_PRODUCE 0 /* the Kafka protocol's ProduceRequest key */

static bool embedded(void) { return !strcmp(g_kafka_conf, "embedded"); }

/* Fault injection and the size limit are the embedded cluster's. */
#define EMBEDDED_ONLY()                                                                        \
    do {                                                                                       \
        if (!embedded()) {                                                                     \
            fprintf(stderr, "[ SKIPPED  ] needs the embedded cluster\n");                      \
            skip();                                                                            \
        }                                                                                      \
    } while (0)

/* An application name: a real broker keeps the topics of earlier runs. */
static const char *app(const char *base) {
    static char names[16][96];
    static int next;
    char *n = names[next++ % 16];
    if (embedded())
        snprintf(n, 96, "%s", base);
    else
        snprintf(n, 96, "%s_%ld_%d", base, (long)time(NULL), (int)getpid());
    return n;
}

static void sh(const char *fmt, const char *arg) {
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), fmt, arg);
    assert_int_equal(system(cmd), 0);
}

/* A per-bidder aggregate (kv store) and a tumbling window by bidder with
 * retention (window stores: segment drops reach Kafka as tombstones).
 * Event time spans 6 s at the generator's event_rate, so segments expire. */
static char *topology_with(const char *app, const char *dir, int events, int rate,
                           const char *settings) {
    char *y = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&y, &n);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 50, state.dir: '%s/state',\n"
            "           state.changelog: kafka%s}\n"
            "kafka: {bootstrap.servers: '%s'}\n"
            "sources:\n"
            "  - {name: nx, type: nexmark, events: %d, partitions: 2, rate: %d,\n"
            "     event_rate: 10000}\n"
            "pipelines:\n"
            "  - name: per_bidder\n"
            "    from: bid\n"
            "    steps:\n"
            "      - aggregate: {by: bidder, fields: {bids: count(), total: sum(price)}}\n"
            "    to: out\n"
            "  - name: per_window\n"
            "    from: bid\n"
            "    steps:\n"
            "      - window: {type: tumbling, size: 500ms, retention: 2s}\n"
            "        aggregate: {by: bidder, fields: {bids: count(), top: max(price)}}\n"
            "    to: out\n"
            "sinks: [{name: out, type: blackhole}]\n",
            app, dir, settings, g_kafka_conf, events, rate);
    fclose(f);
    return y;
}

static char *topology(const char *app, const char *dir, int events, int rate) {
    return topology_with(app, dir, events, rate, "");
}

/* ------------------------------------------------------------ snapshots */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sb_put(sbuf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

typedef struct {
    sbuf_t *out;
    eddy_value_t keys[4096];
    char *kstore[4096];
    int nkeys;
} snap_ctx_t;

static eddy_err_t line_cb(const eddy_record_t *rec, void *opaque) {
    snap_ctx_t *c = opaque;
    char buf[2048];
    size_t n = eddy_record_to_json(rec, buf, sizeof(buf));
    assert_true(n < sizeof(buf));
    sb_put(c->out, buf, n);
    sb_put(c->out, "\n", 1);
    return EDDY_OK;
}

static eddy_err_t key_cb(const eddy_record_t *rec, void *opaque) {
    snap_ctx_t *c = opaque;
    assert_true(c->nkeys < 4096);
    c->keys[c->nkeys++] = rec->values[0]; /* bidder: an int */
    return line_cb(rec, opaque);
}

/* What a user sees: every row of the aggregate and every window of every
 * bidder, through the public queries. */
static char *public_state(eddy_engine_t *e) {
    sbuf_t b = {0};
    snap_ctx_t *c = calloc(1, sizeof(*c));
    c->out = &b;
    char cursor[256] = "", next[256];
    do {
        assert_int_equal(eddy_engine_query_scan(e, "per_bidder", cursor, 500, key_cb, c, next,
                                                sizeof(next)),
                         EDDY_OK);
        snprintf(cursor, sizeof(cursor), "%s", next);
    } while (*cursor);
    for (int i = 0; i < c->nkeys; i++) {
        cursor[0] = 0;
        do {
            assert_int_equal(eddy_engine_query_windows(e, "per_window", &c->keys[i], 1,
                                                       INT64_MIN / 4, INT64_MAX / 4, cursor, 500,
                                                       line_cb, c, next, sizeof(next)),
                             EDDY_OK);
            snprintf(cursor, sizeof(cursor), "%s", next);
        } while (*cursor);
    }
    assert_true(c->nkeys > 100);
    free(c);
    sb_put(&b, "", 0);
    return b.p;
}

/* Every entry of every store of every task, raw (what the topics must
 * reproduce exactly, expired window segments included). */
static char *raw_state(eddy_engine_t *e, size_t *entries) {
    sbuf_t b = {0};
    eddy_plan_t *p = eddy__engine_plan(e);
    *entries = 0;
    for (int t = 0; t < p->ntasks; t++) {
        eddy_tstate_t *ts = eddy__engine_tstate(e, t);
        assert_non_null(ts);
        for (int s = 0; s < p->nstores; s++) {
            eddy_rocks_iter_t *it = eddy__rocks_iter_new(eddy__tstate_db(ts),
                                                         eddy__tstate_cf(ts, s), NULL, 0, NULL, 0);
            for (eddy__rocks_iter_seek_first(it); eddy__rocks_iter_valid(it);
                 eddy__rocks_iter_next(it)) {
                size_t kl, vl;
                const char *k = eddy__rocks_iter_key(it, &kl);
                const char *v = eddy__rocks_iter_value(it, &vl);
                char hdr[64];
                int n = snprintf(hdr, sizeof(hdr), "%d/%d ", t, s);
                sb_put(&b, hdr, (size_t)n);
                for (size_t i = 0; i < kl + vl; i++) {
                    char hx[3];
                    snprintf(hx, sizeof(hx), "%02x", (unsigned char)(i < kl ? k[i] : v[i - kl]));
                    sb_put(&b, hx, 2);
                    if (i + 1 == kl)
                        sb_put(&b, "=", 1);
                }
                sb_put(&b, "\n", 1);
                (*entries)++;
            }
            eddy__rocks_iter_destroy(it);
        }
    }
    sb_put(&b, "", 0);
    return b.p;
}

static void assert_same(const char *want, const char *got, const char *what) {
    if (strcmp(want, got)) {
        size_t i = 0;
        while (want[i] && want[i] == got[i])
            i++;
        fail_msg("%s differs at byte %zu of %zu/%zu: want ...%.80s got ...%.80s", what, i,
                 strlen(want), strlen(got), want + i, got + i);
    }
}

static uint64_t restored_records(eddy_engine_t *e, double *seconds) {
    uint64_t total = 0;
    double secs = 0;
    eddy_plan_t *p = eddy__engine_plan(e);
    for (int t = 0; t < p->ntasks; t++) {
        uint64_t r;
        double s;
        eddy__tstate_restore_stats(eddy__engine_tstate(e, t), &r, &s);
        total += r;
        secs += s;
    }
    if (seconds)
        *seconds = secs;
    return total;
}

static void expect_raw(eddy_engine_t *e, const char *raw, const char *what) {
    size_t n = 0;
    char *got = raw_state(e, &n);
    assert_same(raw, got, what);
    free(got);
}

/* The state directory is lost: a new engine rebuilds every task from the
 * topics, and its stores must hold exactly `raw`. */
static eddy_engine_t *rebuild(const char *y, const char *dir, const char *raw, const char *what) {
    sh("rm -rf '%s/state'", dir);
    eddy_engine_t *e = make(y);
    expect_raw(e, raw, what);
    return e;
}

/* One run of the topology to its end in a new directory, and what its
 * stores then hold: the state every later engine must come back to. */
typedef struct {
    const char *app;
    char dir[96];
    char *yaml;
    char *pub; /* public_state() */
    char *raw; /* raw_state() */
    size_t nraw;
} first_run_t;

static void first_run(first_run_t *r, const char *base, int events) {
    r->app = app(base);
    snprintf(r->dir, sizeof(r->dir), "/tmp/eddy-%s-XXXXXX", r->app);
    assert_non_null(mkdtemp(r->dir));
    r->yaml = topology(r->app, r->dir, events, 0);
    eddy_engine_t *e = make(r->yaml);
    run_to_end(e, 60);
    r->pub = public_state(e);
    r->raw = raw_state(e, &r->nraw);
    destroy(e);
}

static void first_run_free(first_run_t *r) {
    free(r->yaml);
    free(r->pub);
    free(r->raw);
    sh("rm -rf '%s'", r->dir);
}

/* Start a paced engine and return once it made a few commits (mid-run). */
static void start_and_let_it_commit(eddy_engine_t *e) {
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_stats_t s;
    for (int i = 0; i < 400; i++) {
        eddy_engine_stats(e, &s);
        if (s.commits >= 6)
            break;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_true(s.commits >= 6);
}

/* --------------------------------------------------------------- tests */

static void state_is_rebuilt_from_kafka_after_the_state_directory_is_deleted(void **st) {
    (void)st;
    first_run_t r;
    first_run(&r, "kcl_rebuild", 60000);

    /* a clean restart on the same machine: local restore, topics match */
    eddy_engine_t *e = make(r.yaml);
    char *pub2 = public_state(e);
    assert_same(r.pub, pub2, "state after a clean restart");
    free(pub2);
    destroy(e);

    e = rebuild(r.yaml, r.dir, r.raw, "raw stores after the rebuild"); /* in eddy_engine_new */
    double secs = 0;
    uint64_t recs = restored_records(e, &secs);
    assert_true(recs >= r.nraw);
    fprintf(stderr, "[ restore  ] %llu records from the embedded cluster in %.3f s (%.0f/s); %zu "
                    "entries in the stores\n",
            (unsigned long long)recs, secs, secs > 0 ? (double)recs / secs : 0.0, r.nraw);
    pub2 = public_state(e);
    assert_same(r.pub, pub2, "queried state after the rebuild");
    free(pub2);
    /* it runs on from the restored positions: the input is at its end */
    run_to_end(e, 60);
    pub2 = public_state(e);
    assert_same(r.pub, pub2, "state after running on");
    free(pub2);
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, 0);
    destroy(e);
    first_run_free(&r);
}

/* Junk after the last marker of both topics of task 0: puts over existing
 * keys, deletes of existing keys, new keys. */
static void produce_junk(const char *app, const char *raw) {
    rd_kafka_t *rk = producer();
    const char *stores[2] = {"per_bidder", "per_window"};
    int n = 0;
    for (const char *line = raw; *line; line = strchr(line, '\n') + 1) {
        int t, s;
        char hex[600];
        if (sscanf(line, "%d/%d %599[0-9a-f]", &t, &s, hex) != 3 || t != 0 || s > 1)
            continue;
        char key[300];
        size_t kl = strlen(hex) / 2;
        for (size_t i = 0; i < kl; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            key[i] = (char)v;
        }
        char *topic = eddy__kafka_changelog_topic(app, stores[s]);
        bool del = n % 3 == 0;
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_KEY(key, kl),
                                           RD_KAFKA_V_VALUE(del ? NULL : "junk", del ? 0 : 4),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
        if (n % 5 == 0) { /* a key nobody has */
            key[kl - 1] ^= 0x55;
            assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                               RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY(key, kl),
                                               RD_KAFKA_V_VALUE("new", 3),
                                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                               RD_KAFKA_V_END),
                             0);
        }
        eddy_free(topic);
        if (++n >= 400)
            break;
    }
    assert_true(n >= 100);
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
}

static void unacknowledged_tail_is_not_applied(void **st) {
    (void)st;
    first_run_t r;
    first_run(&r, "kcl_tail", 40000);

    /* a crash mid-commit leaves records with no marker after them */
    produce_junk(r.app, r.raw);
    eddy_engine_t *e = rebuild(r.yaml, r.dir, r.raw, "rebuilt over an unacknowledged tail");
    run_to_end(e, 60); /* its final commit puts a marker after the tail */
    destroy(e);
    destroy(rebuild(r.yaml, r.dir, r.raw, "rebuilt when a marker follows the old tail"));

    /* the same tail seen by a restart that still has its local state */
    produce_junk(r.app, r.raw);
    e = make(r.yaml);
    expect_raw(e, r.raw, "local restart");
    run_to_end(e, 60);
    destroy(e);
    e = rebuild(r.yaml, r.dir, r.raw, "rebuilt after a local restart rewrote the tail");
    char *pub2 = public_state(e);
    assert_same(r.pub, pub2, "queried state");
    free(pub2);
    destroy(e);
    first_run_free(&r);
}

/* Two instances (two state directories) of one application take turns on
 * the same partitions, as after rebalances: each one that takes over
 * rebuilds from the topics, and one that comes back with its old local
 * state sees the other's newer commits and rebuilds too, instead of
 * dragging the topics back to its state and re-reading the input. */
static void a_task_that_ran_elsewhere_is_rebuilt_from_the_newer_topics(void **st) {
    (void)st;
    first_run_t ref;
    first_run(&ref, "kcl_moveref", 60000);
    char a[128], b[128];
    snprintf(a, sizeof(a), "%s/a", ref.dir);
    snprintf(b, sizeof(b), "%s/b", ref.dir);
    /* a runs for a while and stops (a clean stop, not the end of input) */
    const char *mv = app("kcl_move");
    char *ya = topology(mv, a, 60000, 30000);
    eddy_engine_t *e = make(ya);
    start_and_let_it_commit(e);
    eddy_engine_stop(e);
    assert_int_equal(eddy_engine_poll(e, 30000), EDDY_OK);
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    uint64_t by_a = s.events_in;
    assert_true(by_a > 0 && by_a < 60000);
    destroy(e);
    free(ya);

    /* b takes over: rebuilt from a's commits, reads only the rest */
    char *yb = topology(mv, b, 60000, 0);
    e = make(yb);
    assert_true(restored_records(e, NULL) > 0);
    run_to_end(e, 60);
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, 60000 - by_a);
    destroy(e);
    free(yb);

    /* a comes back: its local state is older than the topics */
    ya = topology(mv, a, 60000, 0);
    e = make(ya);
    char *got = public_state(e);
    assert_same(ref.pub, got, "state of the instance that came back");
    free(got);
    run_to_end(e, 60);
    eddy_engine_stats(e, &s);
    assert_int_equal(s.events_in, 0);
    destroy(e);
    free(ya);
    first_run_free(&ref);
}

static uint64_t committed_id(const char *dir, const char *app) {
    char path[600], err[256];
    snprintf(path, sizeof(path), "%s/state/%s/COMMITTED", dir, app);
    eddy_ckpt_t c;
    assert_int_equal(eddy__ckpt_read(path, &c, err, sizeof(err)), EDDY_OK);
    return c.commit_id;
}

static void failed_delivery_fails_the_commit_and_the_topics_stay_consistent(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    const int events = 60000;
    /* the reference: the same input, undisturbed */
    first_run_t ref;
    first_run(&ref, "kcl_failref", events);
    const char *dir = ref.dir, *want = ref.pub;
    eddy_engine_t *e;

    for (int round = 0; round < 2; round++) {
        /* paced so that the failure lands mid-run */
        char app[64];
        snprintf(app, sizeof(app), "kcl_fail%d", round);
        char *y = topology(app, dir, events, 30000);
        e = make(y);
        start_and_let_it_commit(e);
        eddy_stats_t s;
        rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
        assert_non_null(mc);
        rd_kafka_resp_err_t errs[64];
        for (int i = 0; i < 64; i++)
            errs[i] = RD_KAFKA_RESP_ERR_INVALID_RECORD; /* not retriable */
        rd_kafka_mock_push_request_errors_array(mc, API_PRODUCE, 64, errs);
        eddy_err_t r = eddy_engine_poll(e, 30000);
        rd_kafka_mock_clear_request_errors(mc, API_PRODUCE);
        assert_int_not_equal(r, EDDY_OK);
        const char *msg = eddy_engine_last_error(e);
        if (!strstr(msg, "delivery failed"))
            fail_msg("expected a delivery failure, got: %s", msg);
        eddy_engine_stats(e, &s);
        uint64_t acked = committed_id(dir, app);
        assert_true(s.events_in < (uint64_t)events); /* stopped mid-run */
        destroy(e);
        assert_int_equal(committed_id(dir, app), acked);
        if (round == 0) /* the machine is lost: rebuild from the topics */
            sh("rm -rf '%s/state'", dir);
        /* round 1: restart with the local state (the tail gets rewritten) */
        free(y);
        y = topology(app, dir, events, 0);
        e = make(y);
        run_to_end(e, 60);
        char *got = public_state(e);
        assert_same(want, got, round ? "state after a local restart" : "state after a rebuild");
        free(got);
        destroy(e);
        /* and what the topics hold now rebuilds the same state */
        sh("rm -rf '%s/state'", dir);
        e = make(y);
        got = public_state(e);
        assert_same(want, got, "state rebuilt at the end");
        free(got);
        destroy(e);
        free(y);
    }
    first_run_free(&ref);
}

/* A delivery that fails in a way a new producer clears (here the
 * broker's OUT_OF_ORDER_SEQUENCE_NUMBER, a fatal idempotence error in
 * librdkafka 2.0.2) fails the round, which is not acknowledged; the
 * engine recovers in process (docs/reliability.md) with a new changelog
 * producer, runs to the end, and state and topics equal an undisturbed
 * run's. */
static void transient_delivery_failure_recovers_in_process(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    const int events = 30000;
    first_run_t ref;
    first_run(&ref, "kcl_transref", events);
    char app[64];
    snprintf(app, sizeof(app), "%s", ref.app);
    strncat(app, "x", sizeof(app) - strlen(app) - 1);
    char *y = topology(app, ref.dir, events, 20000);
    eddy_engine_t *e = make(y);
    start_and_let_it_commit(e);
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    assert_non_null(mc);
    rd_kafka_resp_err_t errs[3];
    for (int i = 0; i < 3; i++)
        errs[i] = RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    rd_kafka_mock_push_request_errors_array(mc, API_PRODUCE, 3, errs);
    eddy_err_t r = eddy_engine_poll(e, 60000);
    rd_kafka_mock_clear_request_errors(mc, API_PRODUCE);
    if (r != EDDY_OK)
        fail_msg("expected the run to end: %s", eddy_engine_last_error(e));
    eddy_stats_t s;
    eddy_engine_stats(e, &s);
    assert_true(s.recoveries >= 1);
    char *got = public_state(e);
    assert_same(ref.pub, got, "state after an in-process recovery");
    free(got);
    destroy(e);
    /* what the topics hold rebuilds the same state */
    sh("rm -rf '%s/state'", ref.dir);
    free(y);
    y = topology(app, ref.dir, events, 0);
    e = make(y);
    got = public_state(e);
    assert_same(ref.pub, got, "state rebuilt from the topics after the recovery");
    free(got);
    destroy(e);
    free(y);
    first_run_free(&ref);
}

/* exactly_once: each stream thread's transaction holds its changelog
 * records and markers and commits after the prepare. Task 1's prepare
 * (thread 1) fails in a round, late (300 ms: in the old order thread 0
 * had committed by then): the round is not acknowledged, and thread 0's
 * transaction of that round must be aborted, not committed (the
 * in-process recovery replays the round: committed, its output would be
 * there twice on a real broker). State exact after the recovery. With
 * repartition topics (where tasks may roll forward at a restart) the
 * reopen after the recovery must not roll task 0 forward to the aborted
 * round, whose marker the embedded cluster shows; thread 1 has a
 * transaction open then too (repartition records), so only the state and
 * the roll-forward are checked there. */
static void failed_prepare_aborts_the_other_threads_transaction(void **st) {
    (void)st;
    const int events = 30000;
    first_run_t ref;
    first_run(&ref, "kcl_eosref", events);
    for (int repartition = 0; repartition < 2; repartition++) {
        char base[64];
        snprintf(base, sizeof(base), "kcl_eosprep%d", repartition);
        const char *a = app(base);
        char *y = topology_with(a, ref.dir, events, 20000,
                                repartition
                                    ? ", processing.guarantee: exactly_once, repartition: kafka"
                                    : ", processing.guarantee: exactly_once");
        eddy_engine_t *e = make(y);
        uint64_t b0, c0, o0, b1, c1, o1;
        eddy__ktxn_counts(&b0, &c0, &o0);
        eddy__fault_fail_at("commit.prepare", 1, 5, 300);
        assert_int_equal(eddy_engine_start(e), EDDY_OK);
        eddy_err_t r = eddy_engine_poll(e, 60000);
        if (r != EDDY_OK)
            fail_msg("expected the run to end: %s", eddy_engine_last_error(e));
        eddy_stats_t s;
        eddy_engine_stats(e, &s);
        assert_int_equal(s.recoveries, 1);
        char *got = public_state(e);
        assert_same(ref.pub, got, "state after a failed prepare and the recovery");
        free(got);
        assert_int_equal(eddy__state_env_rolled(eddy__engine_state_env(e)), 0);
        destroy(e);
        eddy__ktxn_counts(&b1, &c1, &o1);
        print_message("%s: transactions: %llu begun, %llu committed\n", a,
                      (unsigned long long)(b1 - b0), (unsigned long long)(c1 - c0));
        assert_true(c1 - c0 > 10);
        /* the failed round's transactions were aborted, every other one
         * committed; without repartition topics thread 1 wrote nothing
         * before its prepare failed, so the round had one (thread 0's) */
        if (repartition)
            assert_in_range(b1 - b0 - (c1 - c0), 1, 2);
        else
            assert_int_equal(b1 - b0 - (c1 - c0), 1);
        free(y);
    }
    first_run_free(&ref);
}

/* Consumer-group sources (Kafka): tasks open only at the end of a round
 * acknowledged after the assignment. Task 1's prepare fails late (300 ms,
 * thread 0 has prepared task 0's group durably by then) in the first
 * round after the tasks opened; the in-process recovery closes them, an
 * empty round is acknowledged after the group rejoined, and the tasks
 * open again. Task 0 must not replay its group of the failed round (it
 * used to: the acknowledged commit was above it by then): its state and
 * positions would include the round, whose output was aborted, while
 * task 1 reads its part of the round again and sends it to task 0 once
 * more through the in-process exchange (repartition: local): counted
 * twice. The state must equal an undisturbed run's. */
/* With copy: repartition topics instead, and a copy of every record to
 * the Kafka topic `<a>-out` (round_committed_by_one_thread_only_is_kept_by_its_tasks). */
static char *kgroup_topology(const char *a, const char *dir, const char *topic, bool copy) {
    char *y = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&y, &n);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 50, state.dir: '%s/state',\n"
            "           state.changelog: kafka, processing.guarantee: exactly_once,\n"
            "           repartition: %s}\n"
            "kafka: {bootstrap.servers: '%s', session.timeout.ms: 6000}\n"
            "sources:\n"
            "  - {name: clicks, type: kafka, topic: %s, bounded: true, format: json,\n"
            "     timestamp: ts, schema: {user: string, n: int, ts: int}}\n"
            "pipelines:\n"
            "  - name: per_user\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - aggregate: {by: user, fields: {clicks: count(), total: sum(n)}}\n"
            "    to: none\n",
            a, dir, copy ? "kafka" : "local", g_kafka_conf, topic);
    if (copy)
        fprintf(f,
                "  - {name: copy, from: clicks, steps: [{map: {n: n, user: user}}], to: out}\n"
                "sinks: [{name: none, type: blackhole}, {name: out, type: kafka, topic: %s-out}]\n",
                a);
    else
        fprintf(f, "sinks: [{name: none, type: blackhole}]\n");
    fclose(f);
    return y;
}

/* Every row of pipeline per_user, through the public query. */
static char *per_user_rows(eddy_engine_t *e) {
    sbuf_t b = {0};
    snap_ctx_t c = {.out = &b};
    char cursor[256] = "", next[256];
    do {
        assert_int_equal(eddy_engine_query_scan(e, "per_user", cursor, 500, line_cb, &c, next,
                                                sizeof(next)),
                         EDDY_OK);
        snprintf(cursor, sizeof(cursor), "%s", next);
    } while (*cursor);
    sb_put(&b, "", 0);
    return b.p;
}

/* Runs topology `topo` of app `a` over topic to its end in a new
 * directory; with fail_point, that injected failure hits thread or task 1
 * (the point's `who`) 300 ms late once the input flows (rounds
 * acknowledged after the assignment took some). Returns per_user's rows. */
typedef struct {
    uint64_t recoveries;
    uint64_t rolled; /* the highest commit a task rolled forward to */
} group_run_t;

static char *kgroup_run(const char *a, const char *topic, bool copy, const char *fail_point,
                        group_run_t *out) {
    char dir[96];
    snprintf(dir, sizeof(dir), "/tmp/eddy-%s-XXXXXX", a);
    assert_non_null(mkdtemp(dir));
    char *y = kgroup_topology(a, dir, topic, copy);
    eddy_engine_t *e = make(y);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_stats_t s = {0};
    for (int i = 0; fail_point && i < 3000 && !s.events_in; i++) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        eddy_engine_stats(e, &s);
    }
    if (fail_point)
        eddy__fault_fail_at(fail_point, 1, 1, 300);
    eddy_err_t r = eddy_engine_poll(e, 90000);
    if (r != EDDY_OK)
        fail_msg("engine: %s (%s)", eddy_err2str(r), eddy_engine_last_error(e));
    eddy_engine_stats(e, &s);
    out->recoveries = s.recoveries;
    out->rolled = eddy__state_env_rolled(eddy__engine_state_env(e));
    char *rows = per_user_rows(e);
    destroy(e);
    free(y);
    sh("rm -rf '%s'", dir);
    return rows;
}

static void consumer_group_task_reopened_after_recovery_drops_the_failed_round(void **st) {
    (void)st;
    const char *topic = app("kcl_grp_in");
    create_topic(topic, 2);
    produce_clicks(topic, 0, 60000, 0, 2);
    group_run_t rec;
    char *want = kgroup_run(app("kcl_grpref"), topic, false, NULL, &rec);
    assert_int_equal(rec.recoveries, 0);
    assert_true(strlen(want) > 0);
    char *got = kgroup_run(app("kcl_grpfail"), topic, false, "commit.prepare", &rec);
    assert_int_equal(rec.recoveries, 1);
    assert_same(want, got, "state after a failed prepare and the recovery (consumer group)");
    free(got);
    free(want);
}

typedef struct {
    int *seen; /* per record n */
    int n;
} copies_t;

static void on_copy(const char *p, size_t len, void *opaque) {
    copies_t *c = opaque;
    char buf[256];
    snprintf(buf, sizeof(buf), "%.*s", (int)len, p);
    const char *v = strstr(buf, "\"n\":");
    long i = v ? strtol(v + 4, NULL, 10) : -1;
    if (i < 0 || i >= c->n)
        fail_msg("unexpected output record %s", buf);
    c->seen[i]++;
}

/* How many copies of each record (0 .. n-1) partition 0 of topic holds. */
static int *count_copies(const char *topic, int n) {
    copies_t c = {.seen = calloc((size_t)n, sizeof(int)), .n = n};
    read_partitions(topic, 1, on_copy, &c);
    return c.seen;
}

/* kgroup_run with the copy; *copies: count_copies of its output. */
static char *copy_run(const char *base, const char *topic, int records, const char *fail_point,
                      group_run_t *out, int **copies) {
    const char *a = app(base);
    char topic_out[128];
    snprintf(topic_out, sizeof(topic_out), "%s-out", a);
    create_topic(topic_out, 1);
    char *rows = kgroup_run(a, topic, true, fail_point, out);
    *copies = count_copies(topic_out, records);
    return rows;
}

/* exactly_once, a Kafka changelog, repartition topics: thread 1's
 * transaction of a round fails to commit (its EndTxn refused, injected
 * with a 300 ms delay) after thread 0 committed its own: the round is not
 * acknowledged and the engine recovers in process. Thread 0's outputs of
 * the round are committed, so its task must keep the round (rolled
 * forward), not replay its input: rolled back, it wrote the round's
 * copies a second time (a read_committed reader sees them twice). Task 0
 * (thread 0) reads the even records, task 1 the odd ones; on the embedded
 * cluster, which shows aborted records, only task 0's copies can be
 * checked for duplicates. State equals an undisturbed run's. */
static void round_committed_by_one_thread_only_is_kept_by_its_tasks(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    const int records = 40000;
    const char *topic = app("kcl_half_in");
    create_topic(topic, 2);
    produce_clicks(topic, 0, records, 0, 2);
    group_run_t rec;
    int *copies = NULL;
    char *want = copy_run("kcl_halfref", topic, records, NULL, &rec, &copies);
    assert_int_equal(rec.recoveries, 0);
    assert_true(strlen(want) > 0);
    for (int i = 0; i < records; i++)
        if (copies[i] != 1)
            fail_msg("undisturbed run: record %d copied %d times", i, copies[i]);
    free(copies);
    char *got = copy_run("kcl_half", topic, records, "commit.txn", &rec, &copies);
    assert_int_equal(rec.recoveries, 1);
    /* task 0 kept the failed round (a roll-forward), task 1 replayed it */
    assert_true(rec.rolled > 0);
    assert_same(want, got, "state after a round that one thread failed to commit");
    int twice0 = 0, twice1 = 0, missing = 0;
    for (int i = 0; i < records; i++) {
        if (!copies[i])
            missing++;
        else if (copies[i] > 1)
            *(i % 2 ? &twice1 : &twice0) += 1;
    }
    print_message("copies of task 0's records written twice: %d; of task 1's (its aborted "
                  "transaction shows on the embedded cluster): %d\n",
                  twice0, twice1);
    assert_int_equal(missing, 0);
    assert_int_equal(twice0, 0);
    free(copies);
    free(got);
    free(want);
}

/* The topology of app `a` with `settings` added, in a new directory
 * (dir[96]), run to its end over 20,000 events; *y its YAML. */
static eddy_engine_t *eos_run_to_end(const char *a, char *dir, const char *settings, char **y) {
    snprintf(dir, 96, "/tmp/eddy-%s-XXXXXX", a);
    assert_non_null(mkdtemp(dir));
    *y = topology_with(a, dir, 20000, 0, settings);
    eddy_engine_t *e = make(*y);
    run_to_end(e, 60);
    return e;
}

/* Records in the changelog topics of app (both stores, both partitions),
 * control records included. */
static int64_t changelog_records(const char *app) {
    rd_kafka_t *rk = producer();
    const char *stores[2] = {"per_bidder", "per_window"};
    int64_t n = 0;
    for (int s = 0; s < 2; s++) {
        char *topic = eddy__kafka_changelog_topic(app, stores[s]);
        for (int p = 0; p < 2; p++) {
            int64_t lo = 0, hi = 0;
            assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
            n += hi;
        }
        eddy_free(topic);
    }
    rd_kafka_destroy(rk);
    return n;
}

/* A clean reopen under exactly_once finds the topics ending with this
 * state directory's marker of its last commit and writes nothing to them.
 * On a real broker (EDDY_TEST_KAFKA) a partition's last offsets are then
 * the transaction's control records, which no reader receives: the
 * marker is found a few records back (it used to take the last offset
 * for the marker, and every open wrote one more). */
static void clean_reopen_writes_nothing_to_the_changelog(void **st) {
    (void)st;
    const char *a = app("kcl_reopen");
    char dir[96], *y;
    eddy_engine_t *e = eos_run_to_end(a, dir, ", processing.guarantee: exactly_once", &y);
    char *want = public_state(e);
    destroy(e);
    int64_t n0 = changelog_records(a);
    assert_true(n0 > 0);
    for (int i = 0; i < 2; i++) {
        e = make(y); /* the tasks open (and resync) here */
        char *got = public_state(e);
        assert_same(want, got, "state after a clean reopen");
        free(got);
        destroy(e);
        int64_t n = changelog_records(a);
        if (n != n0)
            fail_msg("reopen %d wrote %lld records to the changelog topics", i + 1,
                     (long long)(n - n0));
    }
    free(want);
    free(y);
    sh("rm -rf '%s'", dir);
}

/* Reads INSTANCE of app's state directory under dir: the transactional
 * id of thread `thread` into id. */
static void txn_id_of(const char *dir, const char *a, int thread, char *id, size_t size) {
    char path[256], instance[64] = "";
    snprintf(path, sizeof(path), "%s/state/%s/INSTANCE", dir, a);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(instance, sizeof(instance), f));
    fclose(f);
    instance[strcspn(instance, "\n")] = 0;
    snprintf(id, size, "%s-txn-%s-%d", a, instance, thread);
}

/* Whether the armed injected failure fired (and disarm it). */
static bool fault_fired(void) {
    return !atomic_exchange(&eddy__fault_fail_armed, 0);
}

/* txn_ready fences the transactional ids of every thread a former run of
 * the state directory had (TXN_THREADS), not only this run's: a run with
 * 2 threads, then an engine with 1 thread on the same directory must
 * initialise thread 1's transactional id too before its tasks read their
 * topics' tail. On a real broker (EDDY_TEST_KAFKA) a zombie producer of
 * that id with a transaction open (a dead process's commit still
 * completing) must be fenced by then: its commit refused. The embedded
 * cluster does not fence (a zombie's commit goes through whatever
 * happens), so there the test sees thread 1's initialisation through an
 * injected failure of it (txn.init, thread 1: retried), which must fire.
 * Without the record, id 1 was never initialised. */
static void transactional_ids_of_a_former_run_with_more_threads_are_fenced(void **st) {
    (void)st;
    const char *a = app("kcl_fence");
    char dir[96], *y;
    eddy_engine_t *e = eos_run_to_end(
        a, dir, ", processing.guarantee: exactly_once, repartition: kafka", &y);
    destroy(e);
    char path[256], id1[200], err[1024], topic[128];
    snprintf(path, sizeof(path), "%s/state/%s/TXN_THREADS", dir, a);
    assert_int_equal(count_lines(path, "2"), 1);
    txn_id_of(dir, a, 1, id1, sizeof(id1));
    char *one = strdup(y); /* one thread now */
    char *th = strstr(one, "threads: 2");
    assert_non_null(th);
    th[strlen("threads: ")] = '1';
    if (embedded()) {
        eddy__fault_fail_at("txn.init", 1, 1, 0); /* retried */
        e = make(one);
        if (!fault_fired())
            fail_msg("the 1-thread engine was made without initialising %s", id1);
        destroy(e);
    } else {
        snprintf(topic, sizeof(topic), "%s-zombie", a);
        create_topic(topic, 1);
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "transactional.id", id1, err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        rd_kafka_t *zombie = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        assert_non_null(zombie);
        assert_null(rd_kafka_init_transactions(zombie, 10000));
        assert_null(rd_kafka_begin_transaction(zombie));
        produce_one(zombie, topic, 0, "before", 6);
        assert_int_equal(rd_kafka_flush(zombie, 10000), 0);
        e = make(one); /* the tasks open here, after txn_ready */
        rd_kafka_error_t *ce = rd_kafka_commit_transaction(zombie, 10000);
        if (!ce)
            fail_msg("the zombie producer of %s committed after the 1-thread engine opened its "
                     "tasks: not fenced",
                     id1);
        print_message("zombie's commit: %s\n", rd_kafka_error_string(ce));
        rd_kafka_error_destroy(ce);
        rd_kafka_destroy(zombie);
        destroy(e);
    }
    /* the record keeps the highest count */
    snprintf(path, sizeof(path), "%s/state/%s/TXN_THREADS", dir, a);
    assert_int_equal(count_lines(path, "2"), 1);
    free(one);
    free(y);
    sh("rm -rf '%s'", dir);
}

/* `eddy dump` (eddy__engine_open_all) of a consumer-group topology opens
 * every task: with roll-forward on it must initialise the transactional
 * ids first, as a run does (a dead run's transaction still completing
 * would otherwise look absent: the dump rolls the round back, resyncs
 * marker N-1 over the committed N, and the next run repeats round N).
 * The embedded cluster does not model a transaction still completing, so
 * the test sees the initialisation through an injected failure of it
 * (txn.init, thread 0: retried): it must fire (without the fix the dump
 * opened every task without initialising anything). Beside a live run of
 * the same directory the dump must fail before initialising (which would
 * fence that run's producers): the failure must not fire, and the error
 * names the task in use. */
static void dump_initialises_the_transactional_ids_before_opening_tasks(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    const char *topic = app("kcl_dump_in");
    create_topic(topic, 2);
    produce_clicks(topic, 0, 4000, 0, 2);
    const char *a = app("kcl_dump");
    char dir[96], err[1024];
    snprintf(dir, sizeof(dir), "/tmp/eddy-%s-XXXXXX", a);
    assert_non_null(mkdtemp(dir));
    char *y = kgroup_topology(a, dir, topic, true);
    eddy_engine_t *live = make(y);
    run_to_end(live, 60); /* its tasks stay open (locked) until destroyed */
    char *want = per_user_rows(live);
    /* beside the live run: refused at the directory's lock, before its
     * CLOSED files are settled or a transactional id initialised */
    eddy__fault_fail_at("txn.init", 0, 1, 0);
    eddy_engine_t *e = try_make(y, err, sizeof(err));
    bool fired = fault_fired();
    if (e) {
        eddy_err_t r = eddy__engine_open_all(e, err, sizeof(err));
        fired = fault_fired();
        destroy(e);
        if (r == EDDY_OK)
            fail_msg("a dump beside a live run opened its tasks");
    }
    print_message("dump beside a live run: %s\n", err);
    if (fired || !strstr(err, "in use by another process"))
        fail_msg("the dump beside a live run initialised its transactional ids: %s", err);
    destroy(live);
    /* after the run */
    e = make(y);
    eddy__fault_fail_at("txn.init", 0, 1, 0);
    eddy_err_t r = eddy__engine_open_all(e, err, sizeof(err));
    fired = fault_fired();
    if (r != EDDY_OK)
        fail_msg("eddy__engine_open_all: %s", err);
    if (!fired)
        fail_msg("the dump opened its tasks without initialising its transactional ids");
    char *got = per_user_rows(e);
    assert_same(want, got, "the dump's state");
    destroy(e);
    free(got);
    free(want);
    free(y);
    sh("rm -rf '%s'", dir);
}

/* A transient init_transactions failure while the engine is made (a
 * coordinator loading, a broker restarting) is tried again, not the end
 * of eddy_engine_new(): injected once for thread 0 (txn.init). */
static void transient_init_transactions_failure_is_retried(void **st) {
    (void)st;
    const char *a = app("kcl_initretry");
    char dir[96];
    snprintf(dir, sizeof(dir), "/tmp/eddy-%s-XXXXXX", a);
    assert_non_null(mkdtemp(dir));
    char *y = topology_with(a, dir, 2000, 0,
                            ", processing.guarantee: exactly_once, repartition: kafka");
    eddy__fault_fail_at("txn.init", 0, 1, 0);
    char err[1024];
    eddy_engine_t *e = try_make(y, err, sizeof(err));
    if (!e)
        fail_msg("eddy_engine_new failed on a transient init_transactions failure: %s", err);
    run_to_end(e, 60);
    destroy(e);
    free(y);
    sh("rm -rf '%s'", dir);
}

/* ------------------------------------------------ the changelog handle */

typedef struct {
    eddy_cl_remote_t *r;
    eddy_cnode_t *kafka;
} remote_t;

static remote_t remote_new(const char *app, int nstores) {
    remote_t rm;
    rm.kafka = eddy__cnode_new(EDDY_CNODE_MAP, "test", 1, 1);
    eddy_cnode_set(rm.kafka, "bootstrap.servers", "embedded");
    const char *names[2] = {"a", "b"};
    char err[512];
    rm.r = eddy__kafka_changelog_new(rm.kafka, app, names, nstores, 1, err, sizeof(err));
    if (!rm.r || rm.r->setup(rm.r, err, sizeof(err)))
        fail_msg("%s", err);
    return rm;
}

static void remote_free(remote_t *rm) {
    eddy__cl_remote_destroy(rm->r);
    eddy__cnode_free(rm->kafka);
}

typedef struct {
    uint64_t puts, dels, commits, last_commit;
    char last_key[64];
    char positions[64];
} count_t;

static eddy_err_t count_update(void *opaque, uint16_t store, eddy_cl_op_t op, const char *key,
                               size_t klen, const char *val, size_t vlen) {
    (void)store;
    (void)val;
    (void)vlen;
    count_t *c = opaque;
    if (op == EDDY_CL_PUT)
        c->puts++;
    else
        c->dels++;
    snprintf(c->last_key, sizeof(c->last_key), "%.*s", (int)klen, key);
    return EDDY_OK;
}

static eddy_err_t count_commit(void *opaque, uint64_t commit_id, const char *pos, size_t plen) {
    count_t *c = opaque;
    c->commits++;
    c->last_commit = commit_id;
    snprintf(c->positions, sizeof(c->positions), "%.*s", (int)plen, pos);
    return EDDY_OK;
}

static count_t replay_all(remote_t *rm, eddy_err_t want, char *err, size_t errsize) {
    count_t c = {0};
    eddy_changelog_t *cl = rm->r->open(rm->r, 0, 42, err, errsize);
    assert_non_null(cl);
    uint64_t last = 0;
    eddy_err_t e = eddy__cl_replay(cl, 0, UINT64_MAX, count_update, count_commit, &c, &last, NULL,
                                   err, errsize);
    if (e != want)
        fail_msg("replay: %s: %s", eddy_err2str(e), err);
    eddy__cl_close(cl);
    return c;
}

static void put_n(eddy_changelog_t *cl, uint16_t store, int from, int n, size_t vlen) {
    char *v = calloc(1, vlen + 1);
    memset(v, 'v', vlen);
    for (int i = from; i < from + n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "key-%08d", i);
        assert_int_equal(eddy__cl_append(cl, store, EDDY_CL_PUT, k, (size_t)kl, v, vlen), EDDY_OK);
    }
    free(v);
}

static void failed_commit_leaves_nothing_a_restore_applies(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    remote_t rm = remote_new("kcl_handle", 2);
    char err[512];
    eddy_changelog_t *cl = rm.r->open(rm.r, 0, 42, err, sizeof(err));
    put_n(cl, 0, 0, 100, 10);
    put_n(cl, 1, 0, 50, 10);
    assert_int_equal(eddy__cl_commit(cl, 1, "pos-1", 5, NULL, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_DEL, "key-00000000", 12, NULL, 0), EDDY_OK);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_DEL_RANGE, "a", 1, "b", 1), EDDY_ERR_INVAL);
    assert_int_equal(eddy__cl_commit(cl, 2, "pos-2", 5, NULL, err, sizeof(err)), EDDY_OK);

    /* commit 3: one produce request fails (records of the other topic may
     * be delivered) */
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    put_n(cl, 0, 100, 100, 10);
    put_n(cl, 1, 100, 100, 10);
    rd_kafka_mock_push_request_errors(mc, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    eddy_err_t e = eddy__cl_commit(cl, 3, "pos-3", 5, NULL, err, sizeof(err));
    rd_kafka_mock_clear_request_errors(mc, API_PRODUCE);
    assert_int_equal(e, EDDY_ERR_IO);
    assert_non_null(strstr(err, "delivery failed"));
    /* the handle refuses to go on: only a resync can continue */
    assert_int_equal(eddy__cl_commit(cl, 4, "pos-4", 5, NULL, err, sizeof(err)), EDDY_ERR_STATE);
    eddy__cl_close(cl);

    count_t c = replay_all(&rm, EDDY_OK, err, sizeof(err));
    assert_int_equal(c.commits, 1);
    assert_int_equal(c.last_commit, 2);
    assert_string_equal(c.positions, "pos-2");
    assert_int_equal(c.puts, 150);
    assert_int_equal(c.dels, 1);

    /* retriable errors are retried by the producer: the commit succeeds */
    cl = rm.r->open(rm.r, 0, 42, err, sizeof(err));
    count_t ignore = {0};
    assert_int_equal(eddy__cl_replay(cl, 0, UINT64_MAX, NULL, NULL, &ignore, NULL, NULL, err,
                                     sizeof(err)),
                     EDDY_OK);
    put_n(cl, 1, 200, 10, 10);
    rd_kafka_mock_push_request_errors(mc, API_PRODUCE, 3,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    e = eddy__cl_commit(cl, 5, "pos-5", 5, NULL, err, sizeof(err));
    rd_kafka_mock_clear_request_errors(mc, API_PRODUCE);
    if (e)
        fail_msg("commit with retriable errors: %s", err);
    eddy__cl_close(cl);
    c = replay_all(&rm, EDDY_OK, err, sizeof(err));
    assert_int_equal(c.last_commit, 5);
    assert_string_equal(c.positions, "pos-5");
    /* commit 3's delivered records lie before commit 5's marker: they are
     * applied now (a resync is what rewrites such a tail; the engine
     * always runs one before committing again) */
    assert_true(c.puts >= 160);
    remote_free(&rm);
}

/* Standby replicas: catch_up from a mark applies the commits after it
 * only, and never records after the last marker. */
static void catch_up_applies_only_the_commits_after_the_mark(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    remote_t rm = remote_new("kcl_standby", 2);
    char err[512];
    eddy_changelog_t *w = rm.r->open(rm.r, 0, 42, err, sizeof(err));
    assert_non_null(w);
    put_n(w, 0, 0, 100, 10);
    put_n(w, 1, 0, 50, 10);
    assert_int_equal(eddy__cl_commit(w, 1, "pos-1", 5, NULL, err, sizeof(err)), EDDY_OK);

    eddy_changelog_t *sb = rm.r->open(rm.r, 0, 7, err, sizeof(err));
    assert_non_null(sb);
    count_t c = {0};
    uint64_t n = 0;
    if (sb->ops->catch_up(sb, NULL, 0, count_update, count_commit, &c, &n, err, sizeof(err)))
        fail_msg("catch_up: %s", err);
    assert_int_equal(n, 150);
    assert_int_equal(c.puts, 150);
    assert_int_equal(c.commits, 1);
    assert_string_equal(c.positions, "pos-1");
    size_t ml = 0;
    const void *m = sb->ops->mark(sb, &ml);
    char mark[256];
    assert_true(ml <= sizeof(mark));
    memcpy(mark, m, ml);

    /* commit 2, then records with no marker after them (a writer that
     * died mid-commit) */
    put_n(w, 0, 100, 20, 10);
    assert_int_equal(eddy__cl_commit(w, 2, "pos-2", 5, NULL, err, sizeof(err)), EDDY_OK);
    rd_kafka_t *rk = producer();
    char *topic = eddy__kafka_changelog_topic("kcl_standby", "a");
    for (int i = 0; i < 30; i++)
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_KEY("tail", 4), RD_KAFKA_V_VALUE("x", 1),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         0);
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);
    eddy_free(topic);
    memset(&c, 0, sizeof(c));
    if (sb->ops->catch_up(sb, mark, ml, count_update, count_commit, &c, &n, err, sizeof(err)))
        fail_msg("catch_up: %s", err);
    assert_int_equal(n, 20);
    assert_int_equal(c.commits, 1);
    assert_string_equal(c.positions, "pos-2");
    assert_string_equal(c.last_key, "key-00000119");

    /* nothing committed since: nothing applied, the mark stays */
    m = sb->ops->mark(sb, &ml);
    memcpy(mark, m, ml);
    memset(&c, 0, sizeof(c));
    assert_int_equal(
        sb->ops->catch_up(sb, mark, ml, count_update, count_commit, &c, &n, err, sizeof(err)),
        EDDY_OK);
    assert_int_equal(n, 0);
    assert_int_equal(c.commits, 0);
    size_t ml2 = 0;
    m = sb->ops->mark(sb, &ml2);
    assert_int_equal(ml2, ml);
    assert_memory_equal(m, mark, ml);
    eddy__cl_close(sb);
    eddy__cl_close(w);
    remote_free(&rm);
}

static void partition_that_lost_records_is_refused_and_restore_throughput(void **st) {
    (void)st;
    EMBEDDED_ONLY();
    remote_t rm = remote_new("kcl_big", 1);
    char err[512];
    eddy_changelog_t *cl = rm.r->open(rm.r, 0, 7, err, sizeof(err));
    /* ~4 MiB in 100,000 records: under the embedded cluster's limit */
    for (int c = 0; c < 10; c++) {
        put_n(cl, 0, c * 10000, 10000, 24);
        assert_int_equal(eddy__cl_commit(cl, (uint64_t)c + 1, "p", 1, NULL, err, sizeof(err)),
                         EDDY_OK);
    }
    eddy__cl_close(cl);
    int64_t t0 = eddy__now_ns();
    count_t c = replay_all(&rm, EDDY_OK, err, sizeof(err));
    double secs = (double)(eddy__now_ns() - t0) / 1e9;
    assert_int_equal(c.puts, 100000);
    assert_int_equal(c.last_commit, 10);
    fprintf(stderr, "[ restore  ] 100000 records (~40 bytes) in %.3f s: %.0f records/s\n", secs,
            100000 / secs);

    /* past ~5 MiB the embedded cluster drops the oldest records: the
     * history is incomplete and a restore must say so */
    cl = rm.r->open(rm.r, 0, 7, err, sizeof(err));
    count_t ignore = {0};
    assert_int_equal(eddy__cl_replay(cl, 0, UINT64_MAX, NULL, NULL, &ignore, NULL, NULL, err,
                                     sizeof(err)),
                     EDDY_OK);
    for (int i = 0; i < 4; i++) {
        put_n(cl, 0, i * 20, 20, 64 * 1024);
        assert_int_equal(eddy__cl_commit(cl, 11 + (uint64_t)i, "p", 1, NULL, err, sizeof(err)),
                         EDDY_OK);
    }
    eddy__cl_close(cl);
    replay_all(&rm, EDDY_ERR_STATE, err, sizeof(err));
    assert_non_null(strstr(err, "records before it were deleted"));
    remote_free(&rm);
}

/* ------------------------------------------------------------- config */

static void config_errors_name_the_setting(void **st) {
    (void)st;
    char err[1024];
    const char *no_kafka = "application: kcl_cfg\n"
                           "settings: {state.dir: /tmp/eddy-kcl-cfg, state.changelog: kafka}\n"
                           "sources: [{name: nx, type: nexmark, events: 10}]\n"
                           "pipelines: [{name: c, from: bid, steps: [{aggregate: {by: bidder, "
                           "fields: {n: count()}}}], to: out}]\n"
                           "sinks: [{name: out, type: blackhole}]\n";
    assert_null(try_make(no_kafka, err, sizeof(err)));
    assert_non_null(strstr(err, "test.yaml:2:"));
    assert_non_null(strstr(err, "state.changelog: kafka needs the topology's top-level kafka:"));
    const char *bad = "application: kcl_cfg\n"
                      "settings: {state.changelog: remote}\n"
                      "sources: [{name: nx, type: nexmark, events: 10}]\n"
                      "pipelines: [{name: c, from: bid, steps: [{filter: 'price > 0'}], to: out}]\n"
                      "sinks: [{name: out, type: blackhole}]\n";
    assert_null(try_make(bad, err, sizeof(err)));
    assert_non_null(strstr(err, "state.changelog"));
    assert_non_null(strstr(err, "kafka"));
    const char *standby = "application: kcl_cfg\n"
                          "settings:\n"
                          "  state.dir: /tmp/eddy-kcl-cfg\n"
                          "  standby.replicas: 1\n"
                          "sources: [{name: nx, type: nexmark, events: 10}]\n"
                          "pipelines: [{name: c, from: bid, steps: [{filter: 'price > 0'}], "
                          "to: out}]\n"
                          "sinks: [{name: out, type: blackhole}]\n";
    assert_null(try_make(standby, err, sizeof(err)));
    assert_non_null(strstr(err, "test.yaml:4:"));
    assert_non_null(strstr(err, "standby.replicas"));
    assert_non_null(strstr(err, "need state.changelog: kafka"));

    /* an existing changelog topic with another partition count */
    const char *pa = app("kcl_parts");
    char *topic = eddy__kafka_changelog_topic(pa, "c");
    create_topic(topic, 3);
    char parts[1024], want[256];
    snprintf(parts, sizeof(parts),
             "application: %s\n"
             "settings: {state.dir: /tmp/eddy-kcl-cfg, state.changelog: kafka}\n"
             "kafka: {bootstrap.servers: '%s'}\n"
             "sources: [{name: nx, type: nexmark, events: 10, partitions: 2}]\n"
             "pipelines: [{name: c, from: bid, steps: [{aggregate: {by: bidder, "
             "fields: {n: count()}}}], to: out}]\n"
             "sinks: [{name: out, type: blackhole}]\n",
             pa, g_kafka_conf);
    assert_null(try_make(parts, err, sizeof(err)));
    snprintf(want, sizeof(want), "'%s' has 3 partitions, but the input has 2", topic);
    if (!strstr(err, want))
        fail_msg("want \"%s\" in: %s", want, err);
    eddy_free(topic);
    sh("rm -rf '%s'", "/tmp/eddy-kcl-cfg");
}

/* With a broker address instead of "embedded" the topics are found (or
 * made with Admin CreateTopics, which the embedded cluster cannot serve)
 * through the cluster's metadata, as on a real broker: here they exist. */
static void a_broker_address_uses_existing_topics(void **st) {
    (void)st;
    EMBEDDED_ONLY(); /* against a real broker every test does this */
    char dir[] = "/tmp/eddy-kcl-addr-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(eddy__kafka_embedded_topic("kcl_addr-c-changelog", 2, err, sizeof(err)),
                     EDDY_OK);
    char y[2048];
    snprintf(y, sizeof(y),
             "application: kcl_addr\n"
             "settings: {threads: 1, state.dir: '%s', state.changelog: kafka}\n"
             "kafka: {bootstrap.servers: '%s'}\n"
             "sources: [{name: nx, type: nexmark, events: 5000, partitions: 2}]\n"
             "pipelines: [{name: c, from: bid, steps: [{aggregate: {by: bidder, fields: "
             "{n: count()}}}], to: out}]\n"
             "sinks: [{name: out, type: blackhole}]\n",
             dir, g_bootstrap);
    eddy_engine_t *e = make(y);
    run_to_end(e, 60);
    size_t n = 0;
    char *raw = raw_state(e, &n);
    assert_true(n > 100);
    destroy(e);
    sh("rm -rf '%s'/*", dir);
    e = make(y);
    expect_raw(e, raw, "rebuilt through a broker address");
    destroy(e);
    free(raw);
    sh("rm -rf '%s'", dir);
}

static void unhex(const char *h, size_t n, char *out) {
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
}

/* Roll-forward (docs/kafka.md): a task whose topics end with this state
 * directory's marker of a commit after COMMITTED takes that commit from
 * its local changelog; when the local changelog has no such group (it
 * was rolled back, e.g. after the round's transaction aborted on a
 * cluster that shows aborted records) the task is rebuilt from the topics
 * instead, which hold what the output shows. Here the commit after
 * COMMITTED is written to task 0's topics by hand (one key of its first
 * store takes another key's value) under the directory's writer id: the
 * reopened task must hold it (a local restore and a resync would have
 * rewritten the key back). */
static void marker_of_this_directory_without_local_group_rebuilds_from_the_topics(void **st) {
    (void)st;
    EMBEDDED_ONLY(); /* the changelog handle below writes to the embedded cluster */
    const char *a = app("kcl_rollmiss");
    char dir[96], *y;
    eddy_engine_t *e =
        eos_run_to_end(a, dir, ", processing.guarantee: exactly_once, repartition: kafka", &y);
    size_t n = 0;
    char *raw = raw_state(e, &n);
    size_t plen = 0;
    const char *pos = eddy__tstate_positions(eddy__engine_tstate(e, 0), &plen);
    char *positions = malloc(plen + 1);
    memcpy(positions, pos, plen);
    destroy(e);
    uint64_t committed = committed_id(dir, a);
    char path[300];
    snprintf(path, sizeof(path), "%s/state/%s/WRITER", dir, a);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    unsigned long long writer = 0;
    assert_int_equal(fscanf(f, "%llx", &writer), 1);
    fclose(f);

    /* the first two entries of task 0's first store: the first key gets
     * the second one's value */
    char k1[600], v1[1200], v2[1200];
    const char *l1 = strstr(raw, "0/0 ");
    assert_non_null(l1);
    const char *l2 = strstr(l1 + 1, "\n0/0 ");
    assert_non_null(l2);
    assert_int_equal(sscanf(l1 + 4, "%599[0-9a-f]=%1199[0-9a-f]", k1, v1), 2);
    assert_int_equal(sscanf(l2 + 5, "%*[0-9a-f]=%1199[0-9a-f]", v2), 1);
    char key[300], val[600];
    unhex(k1, strlen(k1), key);
    unhex(v2, strlen(v2), val);
    eddy_cnode_t *kafka = eddy__cnode_new(EDDY_CNODE_MAP, "test", 1, 1);
    eddy_cnode_set(kafka, "bootstrap.servers", "embedded");
    const char *names[2] = {"per_bidder", "per_window"};
    char err[512];
    eddy_cl_remote_t *r = eddy__kafka_changelog_new(kafka, a, names, 2, 2, err, sizeof(err));
    if (!r || r->setup(r, err, sizeof(err)))
        fail_msg("%s", err);
    eddy_changelog_t *cl = r->open(r, 0, writer, err, sizeof(err));
    assert_non_null(cl);
    count_t c = {0}; /* a replay first: the handle learns where the topics end */
    assert_int_equal(eddy__cl_replay(cl, 0, UINT64_MAX, count_update, count_commit, &c, NULL,
                                     NULL, err, sizeof(err)),
                     EDDY_OK);
    assert_int_equal(c.last_commit, committed);
    assert_int_equal(eddy__cl_append(cl, 0, EDDY_CL_PUT, key, strlen(k1) / 2, val,
                                     strlen(v2) / 2),
                     EDDY_OK);
    assert_int_equal(eddy__cl_commit(cl, committed + 1, positions, plen, NULL, err, sizeof(err)),
                     EDDY_OK);
    eddy__cl_close(cl);
    eddy__cl_remote_destroy(r);
    eddy__cnode_free(kafka);

    /* what the topics hold now */
    size_t l1len = strcspn(l1, "\n");
    char *want = malloc(strlen(raw) + strlen(v2) + 1);
    int head = (int)(l1 - raw);
    sprintf(want, "%.*s0/0 %s=%s%s", head, raw, k1, v2, l1 + l1len);
    e = make(y);
    expect_raw(e, want, "task 0 after its topics got a commit its local changelog lacks");
    destroy(e);
    free(want);
    free(positions);
    free(raw);
    free(y);
    sh("rm -rf '%s'", dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_errors_name_the_setting),
        cmocka_unit_test(a_broker_address_uses_existing_topics),
        cmocka_unit_test(failed_commit_leaves_nothing_a_restore_applies),
        cmocka_unit_test(partition_that_lost_records_is_refused_and_restore_throughput),
        cmocka_unit_test(state_is_rebuilt_from_kafka_after_the_state_directory_is_deleted),
        cmocka_unit_test(unacknowledged_tail_is_not_applied),
        cmocka_unit_test(catch_up_applies_only_the_commits_after_the_mark),
        cmocka_unit_test(a_task_that_ran_elsewhere_is_rebuilt_from_the_newer_topics),
        cmocka_unit_test(failed_delivery_fails_the_commit_and_the_topics_stay_consistent),
        cmocka_unit_test(transient_delivery_failure_recovers_in_process),
        cmocka_unit_test(failed_prepare_aborts_the_other_threads_transaction),
        cmocka_unit_test(consumer_group_task_reopened_after_recovery_drops_the_failed_round),
        cmocka_unit_test(round_committed_by_one_thread_only_is_kept_by_its_tasks),
        cmocka_unit_test(clean_reopen_writes_nothing_to_the_changelog),
        cmocka_unit_test(transactional_ids_of_a_former_run_with_more_threads_are_fenced),
        cmocka_unit_test(transient_init_transactions_failure_is_retried),
        cmocka_unit_test(dump_initialises_the_transactional_ids_before_opening_tasks),
        cmocka_unit_test(marker_of_this_directory_without_local_group_rebuilds_from_the_topics),
    };
    const char *only = getenv("EDDY_KCL_ONLY"); /* one test by name */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, setup, teardown);
}
