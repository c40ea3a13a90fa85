/*
 * Sliding windows (docs/windows.md, "Sliding windows"), driven through the
 * public API with the harness of window_harness.h: boundaries, creation of
 * windows when a record enters and when it leaves, lateness, out-of-order
 * records, emit modes, restart, queries, config errors, and an oracle
 * comparing the operator with a brute-force batch computation of the same
 * definition over random streams.
 *
 * Sizes are small and in milliseconds (size 10ms) so the numbers read as
 * in docs/windows.md: with size d a window is [s, s+d] with both ends
 * inclusive, printed as window_start = s, window_end = s+d+1 (exclusive),
 * event time s+d.
 */
#include "window_harness.h"

#define SLIDING_10 "      - window: {type: sliding, size: 10ms}\n"
#define COUNT_SUM_BY_K "        aggregate: {by: k, fields: {n: count(), s: sum(v)}}\n"
#define NOT_X "      - filter: k <> 'x'\n"

/* ------------------------------------------------------- boundaries */

/* size 10: a@100 and a@110 are 10 apart, so [100,110] holds both; b@100
 * and b@111 are 11 apart and share no window ([101,111] is both b@111's
 * window and the one starting just after b@100). */
static void records_exactly_size_apart_share_a_window_and_size_plus_one_apart_do_not(
    void **state) {
    (void)state;
    conf_t c = {.ooo_ms = 100, .steps = SLIDING_10 COUNT_SUM_BY_K};
    run_t r;
    run_open(&r, &c);
    push(&r, "a", 1, 1, 100);
    push(&r, "a", 2, 2, 110);
    push(&r, "b", 1, 3, 100);
    push(&r, "b", 2, 4, 111);
    run_finish(&r);
    const char *want[] = {
        "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1} @100",
        "{\"k\":\"a\",\"window_start\":100,\"window_end\":111,\"n\":2,\"s\":3} @110",
        "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":2} @111",
        "{\"k\":\"b\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1} @100",
        "{\"k\":\"b\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":2} @111",
    };
    expect_lines(&r.out, want, true, "size apart");
    assert_int_equal(r.st.late, 0);
    run_close(&r);
}

/* a@100 (v 1), a@105 (v 2), a@120 (v 4): each record makes the window
 * ending at it ([90,100], [95,105], [110,120]); a@100 leaving the window
 * when time passes 100 makes [101,111], which holds a@105 only; a@105
 * leaving makes [106,116], which is empty and never appears; a@120 has no
 * later record. */
static void a_window_is_created_when_a_record_enters_and_when_it_leaves(void **state) {
    (void)state;
    conf_t c = {.ooo_ms = 100, .steps = SLIDING_10 COUNT_SUM_BY_K};
    run_t r;
    run_open(&r, &c);
    push(&r, "a", 1, 1, 100);
    push(&r, "a", 2, 2, 105);
    push(&r, "a", 4, 3, 120);
    run_finish(&r);
    const char *want[] = {
        "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1} @100",
        "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":2,\"s\":3} @105",
        "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":2} @111",
        "{\"k\":\"a\",\"window_start\":110,\"window_end\":121,\"n\":1,\"s\":4} @120",
    };
    expect_lines(&r.out, want, true, "enter and leave");
    run_close(&r);
}

/* Records with the same event time make one window, not one each. */
static void records_with_the_same_event_time_share_their_windows(void **state) {
    (void)state;
    conf_t c = {.ooo_ms = 100, .steps = SLIDING_10 COUNT_SUM_BY_K};
    run_t r;
    run_open(&r, &c);
    push(&r, "a", 1, 1, 100);
    push(&r, "a", 2, 2, 100);
    push(&r, "a", 4, 3, 104);
    push(&r, "a", 8, 4, 104);
    run_finish(&r);
    const char *want[] = {
        "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":2,\"s\":3} @100",
        "{\"k\":\"a\",\"window_start\":94,\"window_end\":105,\"n\":4,\"s\":15} @104",
        "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":2,\"s\":12} @111",
    };
    expect_lines(&r.out, want, true, "same event time");
    run_close(&r);
}

/* The newest window a record at t can be in is [t, t+10], which closes at
 * W = t+11+grace. a@110 makes [100,110]; a@100 arriving at W = 110+g finds
 * its own window [90,100] closed (never made) but [100,110] open: added
 * there, and it makes [101,111] (it leaves before a@110). At W = 111+g a
 * record at 100 is late. */
static void record_joins_an_open_window_until_its_end_plus_grace_then_is_late(void **state) {
    (void)state;
    for (int g = 0; g <= 5; g += 5) {
        char steps[256];
        snprintf(steps, sizeof(steps),
                 "      - window: {type: sliding, size: 10ms, grace: %dms}\n" COUNT_SUM_BY_K NOT_X,
                 g);
        conf_t c = {.steps = steps};
        run_t r;
        run_open(&r, &c);
        push(&r, "a", 1, 1, 110);
        push(&r, "x", 0, 2, 110 + g); /* W = 110 + g */
        push(&r, "a", 2, 3, 100);     /* aggregated */
        push(&r, "x", 0, 4, 111 + g); /* W = 111 + g: [100,110] closes */
        push(&r, "a", 4, 5, 100);     /* late */
        push(&r, "b", 8, 6, 100);     /* late: no window of b at all */
        run_finish(&r);
        const char *want[] = {
            "{\"k\":\"a\",\"window_start\":100,\"window_end\":111,\"n\":2,\"s\":3} @110",
            "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":1} @111",
        };
        expect_lines(&r.out, want, true, g ? "grace 5" : "grace 0");
        const char *late[] = {
            "{\"k\":\"a\",\"v\":4,\"id\":5} @100",
            "{\"k\":\"b\",\"v\":8,\"id\":6} @100",
        };
        expect_lines(&r.late, late, true, g ? "late, grace 5" : "late, grace 0");
        assert_int_equal(r.st.late, 2);
        run_close(&r);
    }
}

/* A window [s, s+10] (window_end s+11) takes records until W = s+11+g-1:
 * b@105 makes [95,105]; b@100 at W = 105+g is aggregated into it. Another
 * record at 105 arriving when W = 106+g finds [95,105] closed but is not
 * late: it goes to the open [101,111] (made when b@100 came: b@100 is
 * followed by b@105 within 11 ms). */
static void window_takes_records_until_end_plus_grace(void **state) {
    (void)state;
    for (int g = 0; g <= 5; g += 5) {
        char steps[256];
        snprintf(steps, sizeof(steps),
                 "      - window: {type: sliding, size: 10ms, grace: %dms}\n" COUNT_SUM_BY_K NOT_X,
                 g);
        conf_t c = {.steps = steps};
        run_t r;
        run_open(&r, &c);
        push(&r, "b", 1, 1, 105);
        push(&r, "x", 0, 2, 105 + g); /* W = 105 + g */
        push(&r, "b", 2, 3, 100);     /* into [95,105]; [90,100] is closed */
        push(&r, "x", 0, 4, 106 + g); /* W = 106 + g: [95,105] closes */
        push(&r, "b", 4, 5, 105);     /* [95,105] closed: not added */
        run_finish(&r);
        /* b@100 also left before b@105: [101,111] = {b@105 (1), b@105 (4)} */
        const char *want[] = {
            "{\"k\":\"b\",\"window_start\":95,\"window_end\":106,\"n\":2,\"s\":3} @105",
            "{\"k\":\"b\",\"window_start\":101,\"window_end\":112,\"n\":2,\"s\":5} @111",
        };
        expect_lines(&r.out, want, true, g ? "end + grace 5" : "end + grace 0");
        assert_int_equal(r.st.late, 0);
        run_close(&r);
    }
}

/* ---------------------------------------------------- out of order */

/* {100, 103, 105, 111, 120} with v = 1, 2, 4, 8, 16 (a window's sum
 * names its records), every aggregate; in time order and shuffled (nothing
 * closes before the end: out-of-orderness 100ms) the results are the same.
 * Windows ending at a record: [90,100] {1}, [93,103] {1,2}, [95,105]
 * {1,2,4}, [101,111] {2,4,8}, [110,120] {8,16}; starting after one:
 * [101,111] (the same), [104,114] {4,8}, [106,116] {8}, [112,122] {16}. */
static void out_of_order_records_update_and_create_the_same_windows_as_in_order(void **state) {
    (void)state;
    static const int64_t ts[] = {100, 103, 105, 111, 120};
    static const int orders[][5] = {{0, 1, 2, 3, 4}, {4, 0, 3, 2, 1}, {2, 4, 1, 3, 0}};
    for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
        conf_t c = {.ooo_ms = 100,
                    .steps = SLIDING_10
                    "        aggregate: {by: k, fields: {n: count(), s: sum(v), lo: min(v),\n"
                    "                    hi: max(v), m: avg(v), f: first(v), l: last(v)}}\n"};
        run_t r;
        run_open(&r, &c);
        for (int i = 0; i < 5; i++) {
            int j = orders[o][i];
            push(&r, "a", (int64_t)1 << j, j, ts[j]);
        }
        run_finish(&r);
#define W_(s, e, n, sum, lo, hi, m, f, l)                                                          \
    "{\"k\":\"a\",\"window_start\":" #s ",\"window_end\":" #e ",\"n\":" #n ",\"s\":" #sum           \
    ",\"lo\":" #lo ",\"hi\":" #hi ",\"m\":" #m ",\"f\":" #f ",\"l\":" #l "}"
        const char *want[] = {
            W_(90, 101, 1, 1, 1, 1, 1.0, 1, 1),
            W_(93, 104, 2, 3, 1, 2, 1.5, 1, 2),
            W_(95, 106, 3, 7, 1, 4, 2.3333333333333335, 1, 4),
            W_(101, 112, 3, 14, 2, 8, 4.666666666666667, 2, 8),
            W_(104, 115, 2, 12, 4, 8, 6.0, 4, 8),
            W_(106, 117, 1, 8, 8, 8, 8.0, 8, 8),
            W_(110, 121, 2, 24, 8, 16, 12.0, 8, 16),
            W_(112, 123, 1, 16, 16, 16, 16.0, 16, 16),
        };
#undef W_
        char what[64];
        snprintf(what, sizeof(what), "arrival order %zu", o);
        expect_lines(&r.out, want, false, what);
        assert_int_equal(r.st.late, 0);
        run_close(&r);
    }
}

/* Grace lets an out-of-order record into windows already past their end:
 * W reaches 130 before a@103 arrives (grace 20: [93,103] closes at
 * W = 124, [101,111] at 132, [104,114] at 135). */
static void out_of_order_record_within_grace_updates_open_windows_and_creates_new_ones(
    void **state) {
    (void)state;
    conf_t c = {.steps = "      - window: {type: sliding, size: 10ms, grace: 20ms}\n" COUNT_SUM_BY_K
                NOT_X};
    run_t r;
    run_open(&r, &c);
    push(&r, "a", 1, 1, 100);
    push(&r, "a", 4, 2, 105);
    push(&r, "x", 0, 3, 130); /* W = 130 */
    push(&r, "a", 2, 4, 103);
    run_finish(&r);
    /* [93,103] would be {100, 103} but closed before a@103 came: not made;
     * [95,105] (closed at W = 126) keeps {100, 105}; [101,111] gets a@103;
     * [104,114] (a@103 leaving) is made: {105} */
    const char *want[] = {
        "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1} @100",
        "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":2,\"s\":5} @105",
        "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":2,\"s\":6} @111",
        "{\"k\":\"a\",\"window_start\":104,\"window_end\":115,\"n\":1,\"s\":4} @114",
    };
    expect_lines(&r.out, want, true, "within grace");
    assert_int_equal(r.st.late, 0);
    run_close(&r);
}

/* ------------------------------------------------------- emit modes */

/* final: one result per window when it closes; update: a result per
 * commit for each window that changed, so a window updated after its
 * first result appears twice, and one that did not change appears once. */
static void update_mode_emits_changed_windows_and_final_mode_each_window_once(void **state) {
    (void)state;
    for (int update = 0; update <= 1; update++) {
        char steps[256];
        snprintf(steps, sizeof(steps),
                 "      - window: {type: sliding, size: 10ms, emit: %s}\n" COUNT_SUM_BY_K,
                 update ? "update" : "final");
        conf_t c = {.commit_ms = 30, .ooo_ms = 0, .steps = steps};
        run_t r;
        run_open(&r, &c);
        run_start(&r);
        push(&r, "a", 1, 1, 100);
        if (update) {
            assert_int_equal(wait_count(&r.out, 1), 1); /* [90,100] before it closes */
        } else {
            sleep_ms(200);
            assert_int_equal(sink_count(&r.out), 0);
        }
        push(&r, "a", 2, 2, 105); /* W = 100 -> 105: [90,100] closes */
        assert_int_equal(wait_count(&r.out, update ? 3 : 1), update ? 3 : 1);
        push(&r, "a", 4, 3, 100); /* into [95,105] only ([90,100] is closed) */
        sleep_ms(200);
        run_finish(&r);
        if (update) {
            const char *want[] = {
                "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1}",
                "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":2,\"s\":3}",
                "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":2}",
                "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":3,\"s\":7}",
            };
            expect_lines(&r.out, want, false, "update");
        } else {
            const char *want[] = {
                "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1}",
                "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":3,\"s\":7}",
                "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,\"s\":2}",
            };
            expect_lines(&r.out, want, false, "final");
        }
        run_close(&r);
    }
}

/* ------------------------------------------------ restart, queries */

/* The windows and the records they are made from survive a restart: the
 * second run adds to windows of the first, makes a window from a record of
 * the first (a@105 in [104,114]), and does not emit again what the first
 * emitted. The windows are in the named store, queryable. */
static void windows_and_their_records_survive_a_restart(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_sliding_XXXXXX";
    assert_non_null(mkdtemp(dir));
    conf_t c = {.ooo_ms = 50,
                .dir = dir,
                .steps = "      - window: {type: sliding, size: 10ms, store: hot}\n" COUNT_SUM_BY_K
                    NOT_X};
    run_t r;
    run_open(&r, &c);
    run_start(&r);
    push(&r, "a", 1, 1, 100);
    push(&r, "a", 4, 2, 105);
    push(&r, "x", 0, 3, 155); /* W = 105: a's [90,100] closes */
    assert_int_equal(wait_count(&r.out, 1), 1);
    eddy_engine_stop(r.eng);
    assert_int_equal(eddy_engine_poll(r.eng, 20000), EDDY_OK);
    const char *want1[] = {
        "{\"k\":\"a\",\"window_start\":90,\"window_end\":101,\"n\":1,\"s\":1} @100",
    };
    expect_lines(&r.out, want1, true, "first run");
    run_close(&r);

    run_open(&r, &c);
    /* committed state, queryable before the engine starts */
    sink_t q;
    sink_init(&q);
    char cursor[512];
    assert_int_equal(
        eddy_engine_query_scan(r.eng, "hot", NULL, 100, sink_cb, &q, cursor, sizeof(cursor)),
        EDDY_OK);
    bool open1 = false, open2 = false;
    for (size_t i = 0; i < q.n; i++) {
        open1 |= !strcmp(q.lines[i], "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":2,"
                                     "\"s\":5}");
        open2 |= !strcmp(q.lines[i], "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":1,"
                                     "\"s\":4}");
    }
    if (!open1 || !open2) {
        for (size_t i = 0; i < q.n; i++)
            fprintf(stderr, "  %s\n", q.lines[i]);
        fail_msg("the open windows of the first run are not in store 'hot'");
    }
    sink_free(&q);
    push(&r, "a", 2, 4, 103);
    run_finish(&r);
    /* the same as one uninterrupted run: [93,103] closed before a@103 */
    const char *want2[] = {
        "{\"k\":\"a\",\"window_start\":95,\"window_end\":106,\"n\":3,\"s\":7} @105",
        "{\"k\":\"a\",\"window_start\":101,\"window_end\":112,\"n\":2,\"s\":6} @111",
        "{\"k\":\"a\",\"window_start\":104,\"window_end\":115,\"n\":1,\"s\":4} @114",
    };
    expect_lines(&r.out, want2, true, "second run");
    assert_int_equal(r.st.late, 0);
    run_close(&r);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------ bad options */

static void bad_sliding_options_are_config_errors_that_say_why(void **state) {
    (void)state;
    static const struct {
        const char *window, *sub, *needle;
    } cases[] = {
        {"{type: sliding}", "aggregate: {by: k, fields: {n: count()}}", "size"},
        {"{type: sliding, size: 0ms}", "aggregate: {by: k, fields: {n: count()}}", "size"},
        {"{type: sliding, size: 10s, advance: 5s}", "aggregate: {by: k, fields: {n: count()}}",
         "advance"},
        {"{type: sliding, size: 10s, gap: 5s}", "aggregate: {by: k, fields: {n: count()}}",
         "gap"},
        {"{type: sliding, size: 10s}", "top: {n: 1, order_by: v}", "tumbling"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 "application: wt\n"
                 "sources: [{name: in, type: host, schema: {k: string, v: \"int?\"}}]\n"
                 "pipelines:\n"
                 "  - name: w\n"
                 "    from: in\n"
                 "    steps:\n"
                 "      - window: %s\n"
                 "        %s\n"
                 "    to: out\n"
                 "sinks: [{name: out, type: blackhole}]\n",
                 cases[i].window, cases[i].sub);
        expect_config_error(y, cases[i].needle, cases[i].window);
    }
}

/* ----------------------------------------------------------- oracle */

/*
 * Brute force of docs/windows.md for sliding windows of size d, final
 * mode, computed per key over the whole stream rather than record by
 * record:
 *  - W_i, the watermark record i sees = max event time of records 0..i-1
 *    minus the allowed out-of-orderness (none before the first record);
 *    exact with batch.size 1. A window [s, s+d] is closed at W when
 *    s+d+1 + grace <= W. Record i at t is late when [t, t+d] is closed at
 *    W_i; the others are "accepted".
 *  - the windows of a key are the candidates s = t-d (the window ending
 *    at t) and s = t+1 (the window starting after t) over its accepted
 *    records t, identified by s. Window s comes to exist at the first
 *    arrival b(s) after which the accepted records define it: a record at
 *    s+d, or a record at s-1 together with one in [s, s+d] (the later of
 *    the two first arrivals). It exists only when it is open at W_b(s);
 *    it holds every accepted record in [s, s+d] that arrived while it was
 *    open, so the records before its creation count too.
 *  - each existing window is one result: k, window_start s, window_end
 *    s+d+1, n: count(), nv: count(v), s: sum(v), lo: min(v), hi: max(v),
 *    m: avg(v), f: first(v) (smallest event time, then earliest arrival),
 *    l: last(v) (largest event time, then latest arrival); event time s+d.
 */

typedef struct {
    int k;
    bool vnull;
    int64_t v, ts;
} orec_t;

typedef struct {
    int k;
    int64_t start, end;
    int64_t n, nv, s, lo, hi;
    int64_t f, fts, fidx, l, lts, lidx;
} owin_t;

typedef struct {
    owin_t *w;
    size_t n, cap;
} owins_t;

#define NKEYS 5
#define NONE INT64_MAX

typedef struct {
    int64_t d, grace, ooo;
} sspec_t;

/* What a stream exercised. */
typedef struct {
    size_t late;
    size_t not_made;    /* windows closed when they would have been made */
    size_t left_out;    /* accepted records that came after a window of theirs closed */
    size_t same_content; /* windows with the same records as another (must be 0) */
} ostats_t;

static void owin_add(owin_t *w, const orec_t *r, int64_t idx) {
    w->n++;
    if (r->vnull)
        return;
    if (!w->nv || r->v < w->lo)
        w->lo = r->v;
    if (!w->nv || r->v > w->hi)
        w->hi = r->v;
    if (!w->nv || r->ts < w->fts || (r->ts == w->fts && idx < w->fidx)) {
        w->f = r->v;
        w->fts = r->ts;
        w->fidx = idx;
    }
    if (!w->nv || r->ts > w->lts || (r->ts == w->lts && idx > w->lidx)) {
        w->l = r->v;
        w->lts = r->ts;
        w->lidx = idx;
    }
    w->nv++;
    w->s += r->v;
}

/* eddy's JSON doubles: the shortest %.15g/%.16g/%.17g that reads back,
 * with ".0" when it would read as an integer. */
static void fmt_double(char *buf, size_t size, double d) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (!strpbrk(buf, ".e"))
        strncat(buf, ".0", size - strlen(buf) - 1);
}

static char *owin_line(const owin_t *w) {
    char lo[32] = "null", hi[32] = "null", s[32] = "null", m[48] = "null", f[32] = "null",
         l[32] = "null";
    if (w->nv) {
        snprintf(lo, sizeof(lo), "%" PRId64, w->lo);
        snprintf(hi, sizeof(hi), "%" PRId64, w->hi);
        snprintf(s, sizeof(s), "%" PRId64, w->s);
        snprintf(f, sizeof(f), "%" PRId64, w->f);
        snprintf(l, sizeof(l), "%" PRId64, w->l);
        fmt_double(m, sizeof(m), (double)w->s / (double)w->nv);
    }
    char *line = malloc(320);
    snprintf(line, 320,
             "{\"k\":\"k%d\",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64
             ",\"n\":%" PRId64 ",\"nv\":%" PRId64
             ",\"s\":%s,\"lo\":%s,\"hi\":%s,\"m\":%s,\"f\":%s,\"l\":%s} @%" PRId64,
             w->k, w->start, w->end, w->n, w->nv, s, lo, hi, m, f, l, w->end - 1);
    return line;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_span(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

static bool oclosed(const sspec_t *sp, int64_t end, int64_t w) {
    return w != INT64_MIN && end + sp->grace <= w;
}

/* Fills out (result windows) and late (indexes of late records). */
static void oracle(const sspec_t *sp, const orec_t *recs, size_t n, owins_t *out, size_t *late,
                   size_t *nlate, ostats_t *ost) {
    int64_t d = sp->d;
    int64_t *wm = malloc(n * sizeof(*wm));
    bool *ok = malloc(n * sizeof(*ok));
    size_t *mine = malloc(n * sizeof(*mine));
    int64_t *cand = malloc(2 * n * sizeof(*cand));
    int64_t maxts = INT64_MIN;
    *nlate = 0;
    for (size_t i = 0; i < n; i++) {
        wm[i] = maxts == INT64_MIN ? INT64_MIN : maxts - sp->ooo;
        ok[i] = !oclosed(sp, recs[i].ts + d + 1, wm[i]);
        if (!ok[i])
            late[(*nlate)++] = i;
        if (recs[i].ts > maxts)
            maxts = recs[i].ts;
    }
    ost->late += *nlate;
    for (int k = 0; k < NKEYS; k++) {
        size_t nm = 0, nc = 0;
        for (size_t i = 0; i < n; i++)
            if (ok[i] && recs[i].k == k) {
                mine[nm++] = i;
                cand[nc++] = recs[i].ts - d;
                cand[nc++] = recs[i].ts + 1;
            }
        qsort(cand, nc, sizeof(*cand), cmp_i64);
        size_t first_out = out->n;
        for (size_t ci = 0; ci < nc; ci++) {
            int64_t s = cand[ci];
            if (ci && cand[ci - 1] == s)
                continue;
            /* first arrivals (mine is in arrival order) */
            int64_t at_end = NONE, at_before = NONE, inside = NONE;
            for (size_t j = 0; j < nm; j++) {
                int64_t t = recs[mine[j]].ts, i = (int64_t)mine[j];
                if (t == s + d && at_end == NONE)
                    at_end = i;
                if (t == s - 1 && at_before == NONE)
                    at_before = i;
                if (t >= s && t <= s + d && inside == NONE)
                    inside = i;
            }
            int64_t b = at_end;
            if (at_before != NONE && inside != NONE) {
                int64_t br = at_before > inside ? at_before : inside;
                if (br < b)
                    b = br;
            }
            if (b == NONE)
                continue; /* s = t+1 with nothing after t */
            int64_t end = s + d + 1;
            if (oclosed(sp, end, wm[b])) {
                ost->not_made++;
                continue;
            }
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 256;
                out->w = realloc(out->w, out->cap * sizeof(*out->w));
            }
            owin_t *w = &out->w[out->n++];
            memset(w, 0, sizeof(*w));
            w->k = k;
            w->start = s;
            w->end = end;
            for (size_t j = 0; j < nm; j++) {
                const orec_t *r = &recs[mine[j]];
                if (r->ts < s || r->ts > s + d)
                    continue;
                if (oclosed(sp, end, wm[mine[j]]))
                    ost->left_out++;
                else
                    owin_add(w, r, (int64_t)mine[j]);
            }
            assert_true(w->n > 0);
        }
        /* Kafka Streams' promise: no two windows of a key with the same
         * records. Content is a set of records; with every record counted
         * (nothing left out) it is fixed by its smallest and largest event
         * time: sort the windows' (first, last) pairs and compare
         * neighbours. */
        size_t nw = out->n - first_out;
        int64_t(*span)[2] = malloc((nw + 1) * sizeof(*span));
        for (size_t x = 0; x < nw; x++) {
            const owin_t *w = &out->w[first_out + x];
            span[x][0] = NONE;
            span[x][1] = INT64_MIN;
            for (size_t j = 0; j < nm; j++) {
                int64_t t = recs[mine[j]].ts;
                if (t >= w->start && t < w->end) {
                    span[x][0] = t < span[x][0] ? t : span[x][0];
                    span[x][1] = t > span[x][1] ? t : span[x][1];
                }
            }
        }
        qsort(span, nw, sizeof(*span), cmp_span);
        for (size_t x = 1; x < nw; x++)
            if (span[x][0] == span[x - 1][0] && span[x][1] == span[x - 1][1])
                ost->same_content++;
        free(span);
    }
    free(wm);
    free(ok);
    free(mine);
    free(cand);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Event times rise by 0..3 ms per record (and jump 40 ms in 1% of them,
 * so windows break apart), minus a random disorder of 0..disorder ms.
 * Keys are skewed: k0 half of the records, k4 one in 16. v is null one
 * time in 20. */
static void gen_stream(uint64_t seed, size_t n, int64_t disorder, orec_t *recs) {
    uint64_t x = seed * 0x2545f4914f6cdd1dULL + 7;
    int64_t nominal = 1000;
    static const int keymap[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 4};
    for (size_t i = 0; i < n; i++) {
        nominal += (int64_t)(splitmix(&x) % 4);
        if (splitmix(&x) % 100 == 0)
            nominal += 40;
        recs[i].ts = nominal - (int64_t)(splitmix(&x) % (uint64_t)(disorder + 1));
        recs[i].k = keymap[splitmix(&x) % 16];
        recs[i].vnull = splitmix(&x) % 20 == 0;
        recs[i].v = (int64_t)(splitmix(&x) % 1000) - 200;
    }
}

static int oracle_seeds(void) {
    const char *e = getenv("EDDY_WINDOW_SEEDS");
    int n = e ? atoi(e) : 0;
    return n > 0 ? n : 25;
}

#define ORACLE_RECORDS 3000

static void oracle_run(const sspec_t *sp, uint64_t seed, int64_t disorder, int batch,
                       ostats_t *ost) {
    orec_t *recs = malloc(ORACLE_RECORDS * sizeof(*recs));
    size_t *late = malloc(ORACLE_RECORDS * sizeof(*late));
    gen_stream(seed, ORACLE_RECORDS, disorder, recs);
    owins_t res = {0};
    size_t nlate;
    oracle(sp, recs, ORACLE_RECORDS, &res, late, &nlate, ost);

    char win[160], steps[512];
    snprintf(win, sizeof(win), "{type: sliding, size: %" PRId64 "ms, grace: %" PRId64 "ms}",
             sp->d, sp->grace);
    snprintf(steps, sizeof(steps),
             "      - window: %s\n"
             "        aggregate: {by: k, fields: {n: count(), nv: count(v), s: sum(v), lo: "
             "min(v), hi: max(v), m: avg(v), f: first(v), l: last(v)}}\n",
             win);
    conf_t c = {.batch = batch, .ooo_ms = sp->ooo, .steps = steps};
    run_t r;
    run_open(&r, &c);
    for (size_t i = 0; i < ORACLE_RECORDS; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", recs[i].k);
        push(&r, k, recs[i].vnull ? NUL : recs[i].v, (int64_t)i, recs[i].ts);
    }
    run_finish(&r);

    char what[256];
    snprintf(what, sizeof(what), "oracle %s seed %llu disorder %lld ooo %lld batch %d", win,
             (unsigned long long)seed, (long long)disorder, (long long)sp->ooo, batch);
    char **want = calloc(res.n + 1, sizeof(char *));
    for (size_t i = 0; i < res.n; i++)
        want[i] = owin_line(&res.w[i]);
    expect_lines_(&r.out, (const char *const *)want, res.n, true, what);
    for (size_t i = 0; i < res.n; i++)
        free(want[i]);
    free(want);

    char **lw = calloc(nlate + 1, sizeof(char *));
    for (size_t i = 0; i < nlate; i++) {
        const orec_t *x = &recs[late[i]];
        lw[i] = malloc(128);
        char v[24] = "null";
        if (!x->vnull)
            snprintf(v, sizeof(v), "%" PRId64, x->v);
        snprintf(lw[i], 128, "{\"k\":\"k%d\",\"v\":%s,\"id\":%zu} @%" PRId64, x->k, v, late[i],
                 x->ts);
    }
    snprintf(what + strlen(what), sizeof(what) - strlen(what), " (late records)");
    expect_lines_(&r.late, (const char *const *)lw, nlate, true, what);
    for (size_t i = 0; i < nlate; i++)
        free(lw[i]);
    free(lw);
    assert_int_equal(r.st.late, nlate);

    /* final mode, one task: results come in order of window end */
    for (size_t i = 1; i < r.out.n; i++) {
        const char *a = strstr(r.out.lines[i - 1], "\"window_end\":");
        const char *b = strstr(r.out.lines[i], "\"window_end\":");
        assert_non_null(a);
        assert_non_null(b);
        if (atoll(a + 13) > atoll(b + 13))
            fail_msg("%s: result %zu ends after result %zu: %s then %s", what, i - 1, i,
                     r.out.lines[i - 1], r.out.lines[i]);
    }
    run_close(&r);
    free(res.w);
    free(recs);
    free(late);
}

/* Per seed: (a) disorder below the allowed out-of-orderness, batches of
 * 256: nothing closes before its records are in, so the result is the
 * batch definition itself, whatever the arrival order; (b) disorder far
 * beyond it (more than a window plus the allowed disorder and grace), with
 * grace 0, 5 or 20 ms and batch.size 1: late records, windows that closed
 * before the record that makes them came, records left out of windows that
 * closed before them. */
static void sliding_results_match_brute_force_on_random_streams(void **state) {
    (void)state;
    int seeds = oracle_seeds();
    ostats_t a = {0}, b = {0};
    for (int s = 0; s < seeds; s++) {
        sspec_t sp = {.d = 30, .ooo = 10, .grace = 0};
        oracle_run(&sp, (uint64_t)s, 9, 256, &a);
        static const int64_t graces[] = {0, 5, 20};
        sp.grace = graces[s % 3];
        oracle_run(&sp, (uint64_t)s + 1000, 100, 1, &b);
    }
    printf("sliding: %d seeds x 2 streams of %d records; in order: %zu late, %zu not made, "
           "%zu left out; out of order: %zu late, %zu windows not made, %zu records left out\n",
           seeds, ORACLE_RECORDS, a.late, a.not_made, a.left_out, b.late, b.not_made,
           b.left_out);
    assert_int_equal(a.late + a.not_made + a.left_out, 0);
    assert_int_equal(a.same_content, 0);
    assert_true(b.late > 0);
    assert_true(b.not_made > 0);
    assert_true(b.left_out > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            records_exactly_size_apart_share_a_window_and_size_plus_one_apart_do_not),
        cmocka_unit_test(a_window_is_created_when_a_record_enters_and_when_it_leaves),
        cmocka_unit_test(records_with_the_same_event_time_share_their_windows),
        cmocka_unit_test(record_joins_an_open_window_until_its_end_plus_grace_then_is_late),
        cmocka_unit_test(window_takes_records_until_end_plus_grace),
        cmocka_unit_test(out_of_order_records_update_and_create_the_same_windows_as_in_order),
        cmocka_unit_test(
            out_of_order_record_within_grace_updates_open_windows_and_creates_new_ones),
        cmocka_unit_test(update_mode_emits_changed_windows_and_final_mode_each_window_once),
        cmocka_unit_test(windows_and_their_records_survive_a_restart),
        cmocka_unit_test(bad_sliding_options_are_config_errors_that_say_why),
        cmocka_unit_test(sliding_results_match_brute_force_on_random_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
