/*
 * The approximate dedup (docs/dedup.md, "Approximate mode"): time-sliced
 * Bloom filters. What it promises and what is checked here: a duplicate
 * within the horizon never gets through (no false negatives, also with
 * disorder and across a restart); a record with no kept record of its
 * key within H + W (W the slice width) is dropped only by a false
 * positive, at most at the stated rate while no slice holds more than
 * expected_keys kept keys (measured over 1M distinct keys against the
 * bound plus a binomial margin); config errors name the place; the
 * step's description states the memory the filters take.
 */
#include "window_harness.h"

#include "operators/bloom.h"

#include <math.h>

static void approx_steps(char *buf, size_t n, int64_t within_ms, double fpr, long long nkeys) {
    snprintf(buf, n,
             "      - dedup: {key: k, within: %" PRId64 "ms, store: seen,\n"
             "                approximate: {false_positive_rate: %g, expected_keys: %lld}}\n",
             within_ms, fpr, nkeys);
}

static int64_t id_of(const char *line) {
    const char *p = strstr(line, "\"id\":");
    assert_non_null(p);
    return strtoll(p + 5, NULL, 10);
}

/* ----------------------------------------------- no false negatives */

typedef struct {
    int key;
    int64_t ts;
} rin_t;

static void no_duplicate_within_the_horizon_gets_through(void **state) {
    (void)state;
    const int64_t h = 1000, w = h / 4; /* slices: 4 by default */
    enum { N = 6000 };
    static rin_t in[N];
    uint64_t x = 42;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t r = (uint32_t)(x >> 33);
        /* 30% on 10 hot keys (duplicates), the rest spread over 3000 */
        in[i].key = r % 10 < 3 ? (int)(r / 10 % 10) : 10 + (int)(r / 10 % 3000);
        in[i].ts = 20 * i - (int64_t)(r / 30000 % 300); /* disorder up to 300 ms */
    }
    static char steps[256];
    approx_steps(steps, sizeof(steps), h, 1e-9, 10000);
    run_t r;
    conf_t c = {.steps = steps, .ooo_ms = 300};
    run_open(&r, &c);
    run_start(&r);
    char k[16];
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "k%d", in[i].key);
        push(&r, k, in[i].key, i, in[i].ts);
    }
    run_finish(&r);
    assert_int_equal(sink_count(&r.late), 0);
    static bool out[N];
    size_t nout = sink_count(&r.out);
    for (size_t i = 0; i < nout; i++)
        out[id_of(r.out.lines[i])] = true;
    int isolated = 0;
    for (int i = 0; i < N; i++) {
        bool near_out = false, near_any = false;
        for (int j = 0; j < N; j++) {
            if (j == i || in[j].key != in[i].key)
                continue;
            int64_t d = llabs(in[j].ts - in[i].ts);
            /* (a) kept records of a key are at least H apart */
            if (out[i] && out[j] && d < h)
                near_out = true;
            if (d < h + w)
                near_any = true;
        }
        if (near_out)
            fail_msg("records %d and another of key %d less than %lldms apart both kept", i,
                     in[i].key, (long long)h);
        /* (b) nothing within H + W: only a false positive (at 1e-9) drops it */
        if (!near_any) {
            isolated++;
            if (!out[i])
                fail_msg("record %d (key %d at %lld) has no other of its key within H + W "
                         "but was dropped",
                         i, in[i].key, (long long)in[i].ts);
        }
    }
    assert_true(isolated > 1000);      /* the check above had something to check */
    assert_true(nout < (size_t)N - 1000); /* and duplicates were dropped */
    run_close(&r);
}

/* ------------------------------------------- the false-positive bound */

static void false_positives_over_1m_distinct_keys_stay_under_the_stated_bound(void **state) {
    (void)state;
    /* 10 slices of 2.5 s, each with expected_keys distinct keys: every
     * filter at the load it is sized for, and a record checks up to 5 */
    const double fpr = 0.01;
    const int per_slice = 100000, nslices = 10, n = per_slice * nslices;
    char y[2048], err[1024];
    char dir[] = "/tmp/eddy_test_dedup_approx_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(y, sizeof(y),
             "application: fp\n"
             "settings: {threads: 1, batch.size: 1024, state.dir: '%s'}\n"
             "sources:\n"
             "  - {name: in, type: host, queue.max: 100000, schema: {k: string},\n"
             "     watermark: {max_out_of_orderness: 0ms}}\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps:\n"
             "      - dedup: {key: k, within: 10s,\n"
             "                approximate: {false_positive_rate: %g, expected_keys: %d}}\n"
             "    to: out\n",
             dir, fpr, per_slice);
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "fp.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s", err);
    uint64_t kept = 0;
    eddy_topology_add_callback_sink(t, "out", count_cb, &kept);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    char k[32];
    eddy_value_t v = {.type = EDDY_TYPE_STRING};
    for (int i = 0; i < n; i++) {
        v.len = (uint32_t)snprintf(k, sizeof(k), "key-%d", i);
        v.u.s = k;
        int64_t ts = (int64_t)(i / per_slice) * 2500 + (int64_t)(i % per_slice) * 2500 / per_slice;
        eddy_err_t rc;
        while ((rc = eddy_engine_push(e, "in", 0, &v, ts)) == EDDY_ERR_FULL)
            sleep_ms(1);
        assert_int_equal(rc, EDDY_OK);
    }
    assert_int_equal(eddy_engine_end_input(e, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, 300000), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    rm_dir(dir);
    /* every key is new: each drop is a false positive. Drops are a sum of
     * independent trials of probability at most fpr each: their mean is at
     * most n * fpr, their sd at most sqrt(n fpr (1 - fpr)); 4 sd over the
     * bound fails a correct filter with probability about 3e-5 */
    uint64_t dropped = (uint64_t)n - kept;
    double bound = n * fpr + 4 * sqrt(n * fpr * (1 - fpr));
    print_message("approximate dedup: %llu of %d distinct keys dropped (%.5f; stated %.5f)\n",
                  (unsigned long long)dropped, n, (double)dropped / n, fpr);
    assert_true((double)dropped <= bound);
}

/* The filter alone, at its planned load: measured rate vs what sizing
 * promised (the rate the step's bound is built from). */
static void a_filter_at_its_planned_load_meets_its_rate(void **state) {
    (void)state;
    const uint64_t n = 1000000;
    const double q = 0.001;
    eddy_bloom_size_t sz;
    assert_true(eddy__bloom_size(n, q, 1ULL << 30, &sz));
    assert_true(sz.fp <= q);
    eddy_bloom_t f;
    eddy__bloom_init(&f, &sz);
    uint64_t x = 7;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t h = x ^ (x >> 29);
        eddy__bloom_add(&f, h * 0x9E3779B97F4A7C15ULL);
        assert_true(eddy__bloom_has(&f, h * 0x9E3779B97F4A7C15ULL)); /* no false negative */
    }
    uint64_t fp = 0;
    for (uint64_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        fp += eddy__bloom_has(&f, (x ^ (x >> 29)) * 0xD1B54A32D192ED03ULL);
    }
    double bound = (double)n * q + 4 * sqrt((double)n * q);
    print_message("bloom: %d bits/key, k=%d, planned %.6f, measured %.6f\n",
                  (int)(eddy__bloom_bytes(&sz) * 8 / n), sz.k, sz.fp, (double)fp / (double)n);
    assert_true((double)fp <= bound);
    eddy__bloom_free(&f);
}

/* ------------------------------------------------------------ restart */

static void approximate_state_survives_a_restart(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_dedup_approx_XXXXXX";
    assert_non_null(mkdtemp(dir));
    static char steps[256];
    approx_steps(steps, sizeof(steps), 1000, 1e-6, 1000);
    conf_t c = {.steps = steps, .ooo_ms = 1000, .dir = dir};
    run_t r;
    run_open(&r, &c);
    run_start(&r);
    push(&r, "a", 1, 1, 1000);
    push(&r, "b", 2, 2, 1050);
    push(&r, "c", 3, 3, 1900); /* its slice is later than what comes next */
    stop_after(&r, 3);
    assert_int_equal(sink_count(&r.out), 3);
    run_close(&r);

    run_open(&r, &c);
    /* the watermark restored: 1900 - 1000 */
    push(&r, "b", 5, 5, 951);  /* within 1 s of b@1050, earlier */
    push(&r, "c", 6, 6, 1200); /* within 1 s of c@1900, earlier: its slice is before */
    push(&r, "d", 8, 8, 1010); /* new */
    push(&r, "a", 4, 4, 1999); /* within 1 s of a@1000 before the restart */
    push(&r, "a", 7, 7, 2300); /* 1.3 s after: past H + W, kept */
    run_finish(&r);
    assert_int_equal(sink_count(&r.late), 0);
    static const char *const want[] = {"{\"k\":\"a\",\"v\":7,\"id\":7} @2300",
                                       "{\"k\":\"d\",\"v\":8,\"id\":8} @1010"};
    expect_lines(&r.out, want, true, "after the restart");
    run_close(&r);
    rm_dir(dir);
}

/* -------------------------------------------------------- config */

static const char *const head = "application: t\n"
                                "sources: [{name: in, type: host, schema: {k: string, v: int}}]\n"
                                "sinks: [{name: out, type: blackhole}]\n"
                                "pipelines:\n"
                                "  - name: p\n"
                                "    from: in\n"
                                "    to: out\n"
                                "    steps:\n";

static void config_errors_name_the_place(void **state) {
    (void)state;
    static const struct {
        const char *step, *needle;
    } cases[] = {
        {"      - dedup: {key: k, within: 1s, keep: last, approximate: "
         "{false_positive_rate: 0.01, expected_keys: 10}}\n",
         "needs keep: first"},
        {"      - dedup: {key: k, within: 1s, approximate: {false_positive_rate: 0.01}}\n",
         "expected_keys"},
        {"      - dedup: {key: k, within: 1s, approximate: {expected_keys: 10}}\n",
         "false_positive_rate"},
        {"      - dedup: {key: k, within: 1s, approximate: "
         "{false_positive_rate: 0.7, expected_keys: 10}}\n",
         "out of range"},
        {"      - dedup: {key: k, within: 1s, approximate: "
         "{false_positive_rate: 0.01, expected_key: 10}}\n",
         "did you mean 'expected_keys'"},
        {"      - dedup: {key: k, within: 1s, approximate: 0.01}\n", "approximate: expected"},
        {"      - dedup: {key: k, within: 3ms, approximate: "
         "{false_positive_rate: 0.01, expected_keys: 10, slices: 4}}\n",
         "under 1ms"},
        {"      - dedup: {key: k, within: 1s, approximate: "
         "{false_positive_rate: 0.000000001, expected_keys: 1000000000000}}\n",
         "16GiB"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y), "%s%s", head, cases[i].step);
        expect_config_error(y, cases[i].needle, cases[i].step);
    }
}

static void the_description_states_the_filters_memory(void **state) {
    (void)state;
    char y[1024], err[512];
    snprintf(y, sizeof(y), "%s%s", head,
             "      - dedup: {key: k, within: 10s, approximate: "
             "{false_positive_rate: 0.001, expected_keys: 10000000}}\n");
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "w.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s", err);
    char *d = eddy_topology_describe(t, "dot", err, sizeof(err));
    if (!d)
        fail_msg("%s", err);
    /* 10M keys at 0.001 / 9: about 20 bits a key, ~25 MiB a filter */
    const char *p = strstr(d, "a Bloom filter of ");
    if (!p)
        fail_msg("no filter size in: %s", d);
    double mib = strtod(p + strlen("a Bloom filter of "), NULL);
    assert_true(mib > 20 && mib < 40);
    assert_non_null(strstr(d, "with 6 slices live"));
    eddy_free(d);
    eddy_topology_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_duplicate_within_the_horizon_gets_through),
        cmocka_unit_test(false_positives_over_1m_distinct_keys_stay_under_the_stated_bound),
        cmocka_unit_test(a_filter_at_its_planned_load_meets_its_rate),
        cmocka_unit_test(approximate_state_survives_a_restart),
        cmocka_unit_test(config_errors_name_the_place),
        cmocka_unit_test(the_description_states_the_filters_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
