/*
 * The dedup step: keep the first (or last) record per key within a horizon
 * of event time. Records go in through a host source (window_harness.h:
 * one partition, batch.size 1, so the watermark at each record is the
 * largest event time before it minus max_out_of_orderness); outputs are
 * compared as multisets of "JSON @event-time" lines. The oracle tests run
 * random inputs with disorder and late records through the engine and
 * through a brute-force reading of the definition (docs/dedup.md).
 */
#include "window_harness.h"

#include "tests/store_rows.h"

#include "state/rocks.h"
#include "state/store.h"

static void dedup_steps(char *buf, size_t n, const char *key, int64_t within_ms,
                        const char *keep) {
    snprintf(buf, n, "      - dedup: {key: %s, within: %" PRId64 "ms, keep: %s, store: seen}\n",
             key, within_ms, keep);
}

static void run_dedup(run_t *r, int64_t within_ms, const char *keep, int64_t ooo_ms,
                      const char *dir, int partitions) {
    static char steps[256];
    dedup_steps(steps, sizeof(steps), "k", within_ms, keep);
    conf_t c = {.steps = steps, .ooo_ms = ooo_ms, .dir = dir, .partitions = partitions};
    run_open(r, &c);
}

/* -------------------------------------------------------- keep: first */

static void keep_first_drops_records_less_than_the_horizon_away(void **state) {
    (void)state;
    run_t r;
    run_dedup(&r, 10, "first", 100, NULL, 1);
    push(&r, "a", 1, 1, 0);  /* kept */
    push(&r, "a", 2, 2, 9);  /* 9 after 0: duplicate */
    push(&r, "a", 3, 3, 10); /* 10 after 0: kept, opens a new horizon */
    push(&r, "a", 4, 4, 19); /* 9 after 10: duplicate */
    push(&r, "b", 5, 5, 5);  /* another key */
    push(&r, "b", 6, 6, 50); /* kept */
    push(&r, "b", 7, 7, 41); /* 9 before 50 (disorder): duplicate */
    push(&r, "b", 8, 8, 40); /* 10 before 50: kept */
    push(&r, "b", 9, 9, 31); /* 9 before 40: duplicate */
    push(&r, "b", 10, 10, 45); /* 5 after 40 and 5 before 50: duplicate */
    run_finish(&r);
    static const char *const want[] = {
        "{\"k\":\"a\",\"v\":1,\"id\":1} @0",   "{\"k\":\"a\",\"v\":3,\"id\":3} @10",
        "{\"k\":\"b\",\"v\":5,\"id\":5} @5",   "{\"k\":\"b\",\"v\":6,\"id\":6} @50",
        "{\"k\":\"b\",\"v\":8,\"id\":8} @40",
    };
    expect_lines(&r.out, want, true, "dedup keep first");
    assert_int_equal(r.st.late, 0);
    run_close(&r);
}

static void late_records_go_to_the_late_output_and_change_nothing(void **state) {
    (void)state;
    run_t r;
    run_dedup(&r, 10, "first", 100, NULL, 1);
    push(&r, "x", 1, 1, 500); /* watermark 400 from here on */
    push(&r, "a", 2, 2, 399); /* late */
    push(&r, "a", 3, 3, 400); /* on time (not below the watermark): kept */
    push(&r, "a", 4, 4, 405); /* duplicate of 400, not of the late 399 */
    push(&r, "c", 5, 5, 300); /* late */
    push(&r, "c", 6, 6, 401); /* kept: the late c never counted */
    run_finish(&r);
    static const char *const want[] = {"{\"k\":\"x\",\"v\":1,\"id\":1} @500",
                                       "{\"k\":\"a\",\"v\":3,\"id\":3} @400",
                                       "{\"k\":\"c\",\"v\":6,\"id\":6} @401"};
    expect_lines(&r.out, want, true, "dedup output");
    static const char *const late[] = {"{\"k\":\"a\",\"v\":2,\"id\":2} @399",
                                       "{\"k\":\"c\",\"v\":5,\"id\":5} @300"};
    expect_lines(&r.late, late, true, "late output");
    assert_int_equal(r.st.late, 2);
    run_close(&r);
}

static void duplicates_from_different_partitions_meet_on_one_task(void **state) {
    (void)state;
    run_t r;
    run_dedup(&r, 1000, "first", 0, NULL, 3);
    eddy_value_t v[3] = {{.type = EDDY_TYPE_STRING, .len = 1}, {.type = EDDY_TYPE_INT},
                         {.type = EDDY_TYPE_INT}};
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 24; i++) {
        v[0].u.s = keys[i % 4];
        v[1].u.i = i;
        v[2].u.i = i;
        assert_int_equal(eddy_engine_push(r.eng, "in", i % 3, v, i), EDDY_OK);
    }
    run_finish(&r);
    /* the first of each key, whichever partition the others came from */
    static const char *const want[] = {
        "{\"k\":\"a\",\"v\":0,\"id\":0}", "{\"k\":\"b\",\"v\":1,\"id\":1}",
        "{\"k\":\"c\",\"v\":2,\"id\":2}", "{\"k\":\"d\",\"v\":3,\"id\":3}"};
    expect_lines(&r.out, want, false, "dedup over 3 partitions");
    run_close(&r);
}

/* The window starts of the entries of store "seen" in the state of task 0
 * of the harness's application under dir (after the engine closed). */
static int stored_buckets(const char *dir, int64_t *starts, int max) {
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/wt/task-0/db", dir);
    eddy_rocks_env_t *env = eddy__rocks_env_new(64 << 20, 1, err, sizeof(err));
    assert_non_null(env);
    const char *const names[] = {"seen"};
    eddy_rocks_t *db = eddy__rocks_open(env, path, names, 1, err, sizeof(err));
    if (!db)
        fail_msg("%s", err);
    eddy_rocks_iter_t *it = eddy__rocks_iter_new(db, eddy__rocks_cf(db, "seen"), NULL, 0, NULL, 0);
    int n = 0;
    for (eddy__rocks_iter_seek_first(it); eddy__rocks_iter_valid(it); eddy__rocks_iter_next(it)) {
        size_t kl, lkl;
        const char *k = eddy__rocks_iter_key(it, &kl), *lk;
        int64_t ts, ts2;
        assert_true(eddy__tkey_parse(EDDY_STORE_WINDOW, k, kl, &lk, &lkl, &ts, &ts2));
        if (n < max)
            starts[n] = ts;
        n++;
    }
    eddy__rocks_iter_destroy(it);
    eddy__rocks_close(db);
    eddy__rocks_env_destroy(env);
    return n;
}

static void state_of_keys_that_stopped_sending_expires(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_dedup_XXXXXX";
    assert_non_null(mkdtemp(dir));
    run_t r;
    run_dedup(&r, 10, "first", 0, dir, 1);
    char k[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        push(&r, k, i, i, i);
    }
    push(&r, "k95", 1, 200, 104); /* 9 after 95: still held at watermark 99 */
    push(&r, "z", 0, 300, 1000);  /* the watermark jumps to 1000 */
    push(&r, "z", 0, 301, 1000);
    push(&r, "k99", 1, 400, 1001); /* 99 is long gone: kept again */
    run_finish(&r);
    assert_int_equal(sink_count(&r.out), 102);
    run_close(&r);
    /* what is left: z and k99 of the last horizon (bucket 1000); the 100
     * others expired with their segments */
    int64_t starts[8];
    int n = stored_buckets(dir, starts, 8);
    assert_in_range(n, 1, 2); /* one batch per process() call */
    for (int i = 0; i < n; i++)
        assert_int_equal(starts[i], 1000);
    rm_dir(dir);
}

static void keep_last_state_is_queryable_and_expires(void **state) {
    (void)state;
    run_t r;
    run_dedup(&r, 10, "last", 0, NULL, 1);
    char k[16];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        push(&r, k, i, i, i);
    }
    push(&r, "z", 0, 300, 1000); /* the watermark jumps to 1000 */
    push(&r, "k99", 1, 400, 1001);
    run_finish(&r);
    /* groups are emitted (and deleted) as their horizons close; the +inf
     * watermark at the end closes z's and k99's too */
    assert_int_equal(sink_count(&r.out), 102);
    assert_int_equal(store_rows(r.eng, "seen"), 0);
    eddy_store_info_t info;
    assert_int_equal(eddy_engine_store_info(r.eng, "seen", &info), EDDY_OK);
    assert_string_equal(eddy_schema_field_name(info.key_schema, 0), "k");
    assert_string_equal(eddy_schema_field_name(info.value_schema, 0), "kept_ms");
    run_close(&r);
}

static void dedup_state_survives_a_restart(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_dedup_XXXXXX";
    assert_non_null(mkdtemp(dir));
    run_t r;
    run_dedup(&r, 10, "first", 100, dir, 2);
    run_start(&r);
    push(&r, "a", 1, 1, 100);
    push(&r, "b", 2, 2, 105);
    push(&r, "c", 3, 3, 130); /* its bucket is later than what comes next */
    stop_after(&r, 3);
    assert_int_equal(sink_count(&r.out), 3);
    run_close(&r);

    run_dedup(&r, 10, "first", 100, dir, 2);
    push(&r, "a", 4, 4, 109); /* within 10 of a@100 before the restart */
    push(&r, "b", 5, 5, 96);  /* within 10 of b@105, earlier */
    push(&r, "c", 6, 6, 121); /* within 10 of c@130, earlier: its bucket is before */
    push(&r, "a", 7, 7, 110); /* 10 after: kept */
    push(&r, "d", 8, 8, 101); /* new */
    run_finish(&r);
    static const char *const want[] = {"{\"k\":\"a\",\"v\":7,\"id\":7} @110",
                                       "{\"k\":\"d\",\"v\":8,\"id\":8} @101"};
    expect_lines(&r.out, want, true, "after the restart");
    run_close(&r);
    rm_dir(dir);
}

/* --------------------------------------------------------- keep: last */

static void keep_last_emits_each_horizons_last_record_when_the_watermark_passes_it(
    void **state) {
    (void)state;
    run_t r;
    run_dedup(&r, 10, "last", 0, NULL, 1);
    run_start(&r);
    push(&r, "a", 1, 1, 0); /* opens [0, 10) */
    push(&r, "a", 2, 2, 3);
    push(&r, "a", 3, 3, 9);  /* the last of [0, 10) */
    push(&r, "a", 4, 4, 10); /* opens [10, 20) */
    push(&r, "b", 5, 5, 12); /* watermark 10: [0, 10) is over */
    assert_int_equal(wait_count(&r.out, 1), 1);
    sleep_ms(100);
    assert_int_equal(sink_count(&r.out), 1); /* [10, 20) is still open */
    char *first = sink_line(&r.out, 0, true);
    assert_string_equal(first, "{\"k\":\"a\",\"v\":3,\"id\":3} @9");
    free(first);
    push(&r, "c", 6, 6, 30);
    push(&r, "c", 7, 7, 30); /* a tie: the later arrival is the last */
    push(&r, "c", 8, 8, 39);
    push(&r, "c", 9, 9, 39);
    run_finish(&r);
    static const char *const want[] = {
        "{\"k\":\"a\",\"v\":3,\"id\":3} @9", "{\"k\":\"a\",\"v\":4,\"id\":4} @10",
        "{\"k\":\"b\",\"v\":5,\"id\":5} @12", "{\"k\":\"c\",\"v\":9,\"id\":9} @39"};
    expect_lines(&r.out, want, true, "dedup keep last");
    /* emitted groups leave nothing behind */
    assert_int_equal(store_rows(r.eng, "seen"), 0);
    run_close(&r);
}

static void keep_last_state_survives_a_restart(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_dedup_XXXXXX";
    assert_non_null(mkdtemp(dir));
    run_t r;
    run_dedup(&r, 100, "last", 0, dir, 1);
    /* stop without ending the input: the open group stays in the store */
    run_start(&r);
    push(&r, "a", 1, 1, 0);
    push(&r, "a", 2, 2, 50);
    stop_after(&r, 2);
    assert_int_equal(sink_count(&r.out), 0);
    run_close(&r);

    run_dedup(&r, 100, "last", 0, dir, 1);
    push(&r, "a", 3, 3, 60);  /* joins the group opened before the restart */
    push(&r, "a", 4, 4, 100); /* opens the next */
    run_finish(&r);
    static const char *const want[] = {"{\"k\":\"a\",\"v\":3,\"id\":3} @60",
                                       "{\"k\":\"a\",\"v\":4,\"id\":4} @100"};
    expect_lines(&r.out, want, true, "keep last across a restart");
    run_close(&r);
    rm_dir(dir);
}

/* ------------------------------------------------------------ oracle */

typedef struct {
    char k[4];
    int64_t v, id, ts;
} rec_t;

typedef struct {
    int key;
    int64_t k;    /* the kept record's time */
    int last;     /* index of the group's last record */
} anchor_t;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static char *line_of(const rec_t *x) {
    char *l = malloc(96);
    snprintf(l, 96, "{\"k\":\"%s\",\"v\":%" PRId64 ",\"id\":%" PRId64 "} @%" PRId64, x->k,
             x->v, x->id, x->ts);
    return l;
}

/* The definition, by brute force over every kept record of the key. */
static void oracle(const rec_t *in, int n, int64_t h, int64_t ooo, bool keep_last, char ***out,
                   size_t *nout, char ***late, size_t *nlate) {
    anchor_t *an = calloc((size_t)n + 1, sizeof(*an));
    int na = 0;
    int64_t max_ts = INT64_MIN;
    *out = calloc((size_t)n + 1, sizeof(char *));
    *late = calloc((size_t)n + 1, sizeof(char *));
    *nout = *nlate = 0;
    for (int i = 0; i < n; i++) {
        int64_t wm = max_ts == INT64_MIN ? INT64_MIN : max_ts - ooo;
        const rec_t *x = &in[i];
        if (max_ts == INT64_MIN || x->ts > max_ts)
            max_ts = x->ts;
        if (wm != INT64_MIN && x->ts < wm) {
            (*late)[(*nlate)++] = line_of(x);
            continue;
        }
        int before = -1, after = -1;
        for (int a = 0; a < na; a++) {
            if (strcmp(in[an[a].key].k, x->k))
                continue;
            if (an[a].k <= x->ts && x->ts - an[a].k < h)
                before = a;
            if (an[a].k > x->ts && an[a].k - x->ts < h)
                after = a;
        }
        int claim = before >= 0 ? before : after;
        if (claim < 0) {
            an[na++] = (anchor_t){.key = i, .k = x->ts, .last = i};
            if (!keep_last)
                (*out)[(*nout)++] = line_of(x);
        } else if (x->ts >= in[an[claim].last].ts) {
            an[claim].last = i;
        }
    }
    if (keep_last)
        for (int a = 0; a < na; a++)
            (*out)[(*nout)++] = line_of(&in[an[a].last]);
    free(an);
}

static void random_input(uint64_t seed, rec_t *in, int n, int nkeys) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    int64_t base = 1000;
    for (int i = 0; i < n; i++) {
        base += (int64_t)(rng_next(&s) % 4);
        int64_t ts = base;
        if (rng_next(&s) % 10 < 3) /* disorder, now and then past the bound */
            ts -= (int64_t)(rng_next(&s) % 45);
        snprintf(in[i].k, sizeof(in[i].k), "%c", 'a' + (int)(rng_next(&s) % (uint64_t)nkeys));
        in[i].v = (int64_t)(rng_next(&s) % 100);
        in[i].id = i;
        in[i].ts = ts;
    }
}

static void check_oracle(uint64_t seed, int64_t h, bool keep_last) {
    enum { N = 1500 };
    const int64_t ooo = 30;
    rec_t *in = calloc(N, sizeof(*in));
    random_input(seed, in, N, 6);
    run_t r;
    run_dedup(&r, h, keep_last ? "last" : "first", ooo, NULL, 1);
    for (int i = 0; i < N; i++)
        push(&r, in[i].k, in[i].v, in[i].id, in[i].ts);
    run_finish(&r);
    char **want, **late;
    size_t nwant, nlate;
    oracle(in, N, h, ooo, keep_last, &want, &nwant, &late, &nlate);
    char what[96];
    snprintf(what, sizeof(what), "seed %" PRIu64 " within %" PRId64 " keep %s", seed, h,
             keep_last ? "last" : "first");
    assert_true(nlate > 0); /* the input does exercise the late path */
    assert_true(nwant < (size_t)N - nlate); /* and has duplicates */
    expect_lines_(&r.out, (const char *const *)want, nwant, true, what);
    expect_lines_(&r.late, (const char *const *)late, nlate, true, "late output");
    assert_int_equal(r.st.late, nlate);
    for (size_t i = 0; i < nwant; i++)
        free(want[i]);
    for (size_t i = 0; i < nlate; i++)
        free(late[i]);
    free(want);
    free(late);
    free(in);
    run_close(&r);
}

static void random_inputs_keep_first_equal_the_definition(void **state) {
    (void)state;
    const int64_t horizons[] = {7, 20, 50}; /* below, near and above the disorder */
    for (uint64_t seed = 1; seed <= 4; seed++)
        for (int h = 0; h < 3; h++)
            check_oracle(seed, horizons[h], false);
}

static void random_inputs_keep_last_equal_the_definition(void **state) {
    (void)state;
    const int64_t horizons[] = {7, 20, 50};
    for (uint64_t seed = 11; seed <= 14; seed++)
        for (int h = 0; h < 3; h++)
            check_oracle(seed, horizons[h], true);
}

/* ------------------------------------------------------------ the C API */

static void a_dedup_step_built_in_c_runs_like_yaml(void **state) {
    (void)state;
    eddy_topology_t *t = eddy_topology_new("api");
    eddy_cnode_t *src = eddy_topology_add_source(t, "in", "host");
    eddy_cnode_t *schema = eddy_cnode_map(src, "schema");
    eddy_cnode_set(schema, "user", "string");
    eddy_cnode_set(schema, "item", "int");
    eddy_cnode_t *pl = eddy_topology_add_pipeline(t, "p", "in");
    eddy_cnode_t *args;
    eddy_pipeline_add_step(pl, "dedup", NULL, &args);
    eddy_cnode_t *key = eddy_cnode_seq(args, "key");
    eddy_cnode_append(key, "user");
    eddy_cnode_append(key, "item");
    eddy_cnode_set(args, "within", "1s");
    eddy_pipeline_to(pl, "out");
    uint64_t n = 0;
    eddy_topology_add_callback_sink(t, "out", count_cb, &n);
    char err[512], dir[] = "/tmp/eddy_test_dedup_XXXXXX";
    assert_non_null(mkdtemp(dir));
    eddy_conf_t *conf = eddy_conf_new();
    assert_int_equal(eddy_conf_set(conf, "state.dir", dir, err, sizeof(err)), EDDY_OK);
    eddy_engine_t *e = eddy_engine_new(t, conf, err, sizeof(err));
    eddy_conf_destroy(conf);
    if (!e)
        fail_msg("%s", err);
    eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = 3}, {.type = EDDY_TYPE_INT}};
    v[0].u.s = "ann";
    const int64_t items[] = {1, 2, 1, 1, 2, 3};
    for (int i = 0; i < 6; i++) {
        v[1].u.i = items[i];
        assert_int_equal(eddy_engine_push(e, "in", 0, v, 100 * i), EDDY_OK);
    }
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, 60000), EDDY_OK);
    assert_int_equal(n, 3); /* (ann, 1), (ann, 2), (ann, 3) */
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    rm_dir(dir);
}

/* -------------------------------------------------------- config errors */

static void config_errors_name_the_place(void **state) {
    (void)state;
    const char *head = "application: t\n"
                       "sources: [{name: in, type: host, schema: {k: string, v: int}}]\n"
                       "sinks: [{name: out, type: blackhole}]\n"
                       "pipelines:\n"
                       "  - name: p\n"
                       "    from: in\n"
                       "    to: out\n"
                       "    steps:\n";
    static const struct {
        const char *step, *needle;
    } cases[] = {
        {"      - dedup: {key: k}\n", "missing required key 'within'"},
        {"      - dedup: {within: 1s}\n", "missing required key 'key'"},
        {"      - dedup: {key: k, withn: 1s}\n", "did you mean 'within'"},
        {"      - dedup: {key: k, within: 0s}\n", "positive"},
        {"      - dedup: {key: k, within: 1s, keep: lats}\n", "lats"},
        {"      - dedup: {key: kk, within: 1s}\n", "did you mean 'k'"},
        {"      - dedup: [k]\n", "dedup: expected"},
        {"      - dedup: {key: k, within: 1s}\n      - dedup: {key: v, within: 1s}\n",
         "already exists"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char y[1024];
        snprintf(y, sizeof(y), "%s%s", head, cases[i].step);
        expect_config_error(y, cases[i].needle, cases[i].step);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keep_first_drops_records_less_than_the_horizon_away),
        cmocka_unit_test(late_records_go_to_the_late_output_and_change_nothing),
        cmocka_unit_test(duplicates_from_different_partitions_meet_on_one_task),
        cmocka_unit_test(state_of_keys_that_stopped_sending_expires),
        cmocka_unit_test(keep_last_state_is_queryable_and_expires),
        cmocka_unit_test(dedup_state_survives_a_restart),
        cmocka_unit_test(keep_last_emits_each_horizons_last_record_when_the_watermark_passes_it),
        cmocka_unit_test(keep_last_state_survives_a_restart),
        cmocka_unit_test(random_inputs_keep_first_equal_the_definition),
        cmocka_unit_test(random_inputs_keep_last_equal_the_definition),
        cmocka_unit_test(a_dedup_step_built_in_c_runs_like_yaml),
        cmocka_unit_test(config_errors_name_the_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
