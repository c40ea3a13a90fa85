/*
 * The join step (docs/joins.md), driven through the public API only.
 *
 * One host source `in` {s: string, k: "string?", v: int}; pipelines L and R
 * keep the records with s = 'L' / 'R' (fields k, v) as streams `left` and
 * `right`; pipeline j joins them on k with prefixes l_ and r_. With one
 * partition, one thread, batch.size 1 and max_out_of_orderness 0 the join
 * sees, for every record, the watermark W = the largest event time pushed
 * before it (window_harness.h explains why), so lateness and the moment an
 * outer row goes out are exact.
 *
 * Outputs are compared as multisets of "JSON @event time" lines; where
 * the moment of emission matters, as the exact sequence. The oracle tests
 * push random records (several seeds, out of order, some beyond the
 * grace) and compare with a brute-force evaluation of the definitions in
 * docs/joins.md over the same input.
 */
#include "window_harness.h"

typedef run_t jrun_t;

/* join: the join step's mapping body, after "join: {with: right, on: [k],
 * prefix: {left: l_, right: r_}, " */
static void jopen(jrun_t *r, const char *join, const char *dir, const char *schema,
                  const char *fields) {
    run_init(r, dir);
    char y[4096];
    snprintf(y, sizeof(y),
             "application: jt\n"
             "settings: {threads: 1, batch.size: 1, commit.interval.ms: 3600000, late: late,\n"
             "           state.dir: '%s'}\n"
             "sources:\n"
             "  - name: in\n"
             "    type: host\n"
             "    queue.max: 1000000\n"
             "    schema: %s\n"
             "    watermark: {max_out_of_orderness: 0ms}\n"
             "pipelines:\n"
             "  - name: L\n"
             "    from: in\n"
             "    steps: [{filter: \"s = 'L'\"}, {map: %s}]\n"
             "    as: left\n"
             "  - name: R\n"
             "    from: in\n"
             "    steps: [{filter: \"s = 'R'\"}, {map: %s}]\n"
             "    as: right\n"
             "  - name: j\n"
             "    from: left\n"
             "    steps:\n"
             "      - join: {with: right, on: [k], prefix: {left: l_, right: r_}, %s}\n"
             "    to: out\n",
             r->dir, schema ? schema : "{s: string, k: \"string?\", v: int}",
             fields ? fields : "[k, v]", fields ? fields : "[k, v]", join);
    run_load(r, y, "join.yaml");
    run_start(r);
}

/* (s, k, v, fourth); k NULL: a null key */
static void jpush4(jrun_t *r, char side, const char *k, int64_t v, int64_t ts,
                   eddy_value_t fourth) {
    eddy_value_t vals[4];
    static const char sides[2][2] = {"L", "R"};
    vals[0] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = 1};
    vals[0].u.s = sides[side == 'R'];
    vals[1] = (eddy_value_t){.type = k ? EDDY_TYPE_STRING : EDDY_TYPE_NULL,
                             .len = k ? (uint32_t)strlen(k) : 0};
    vals[1].u.s = k;
    vals[2] = (eddy_value_t){.type = EDDY_TYPE_INT};
    vals[2].u.i = v;
    vals[3] = fourth;
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", 0, vals, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
    r->pushed++;
}

/* op NULL: no __op (schemas without it) */
static void jpush_op(jrun_t *r, char side, const char *k, int64_t v, int64_t ts, const char *op) {
    eddy_value_t o = {.type = EDDY_TYPE_STRING, .len = op ? (uint32_t)strlen(op) : 0};
    o.u.s = op;
    jpush4(r, side, k, v, ts, o);
}

static void jpush(jrun_t *r, char side, const char *k, int64_t v, int64_t ts) {
    jpush_op(r, side, k, v, ts, NULL);
}

/* A record of USCHEMA (u: the left record's end, ignored on the
 * right). */
static void jpush_u(jrun_t *r, char side, const char *k, int64_t v, int64_t ts, int64_t u) {
    eddy_value_t o = {.type = EDDY_TYPE_INT};
    o.u.i = u;
    jpush4(r, side, k, v, ts, o);
}

static void jfinish(jrun_t *r) {
    assert_int_equal(eddy_engine_end_input(r->eng, "in", -1), EDDY_OK);
    eddy_err_t err = eddy_engine_poll(r->eng, 120000);
    if (err != EDDY_OK)
        fail_msg("run failed: %s: %s", eddy_err2str(err), eddy_engine_last_error(r->eng));
    eddy_engine_stats(r->eng, &r->st);
}

/* Wait until every pushed record was read, then stop (final commit). */
static void jstop(jrun_t *r) {
    for (int i = 0; i < 1000; i++) {
        eddy_engine_stats(r->eng, &r->st);
        if (r->st.events_in >= (uint64_t)r->pushed)
            break;
        sleep_ms(10);
    }
    sleep_ms(50);
    eddy_engine_stop(r->eng);
    eddy_engine_poll(r->eng, 60000);
}

#define jclose run_close

/* The sink must hold exactly want, in this order. */
static void expect_sequence(sink_t *s, const char *const *want, size_t n, const char *what) {
    size_t got = sink_count(s);
    for (size_t i = 0; i < got || i < n; i++) {
        char *l = i < got ? sink_line(s, i, true) : NULL;
        if (i >= n || !l || strcmp(l, want[i]))
            fail_msg("%s: line %zu: expected %s, got %s", what, i, i < n ? want[i] : "(end)",
                     l ? l : "(end)");
        free(l);
    }
}

#define JL(lk, lv, rk, rv, ts)                                                                \
    "{\"l_k\":" lk ",\"l_v\":" lv ",\"r_k\":" rk ",\"r_v\":" rv "} @" ts

/* ------------------------------------------------------ interval join */

static void interval_bounds_are_inclusive(void **state) {
    (void)state;
    jrun_t r;
    jopen(&r, "type: interval, between: [-2ms, 3ms]", NULL, NULL, NULL);
    jpush(&r, 'R', "a", 7, 7);   /* 7 - 10 = -3: outside */
    jpush(&r, 'R', "a", 8, 8);   /* -2: the lower bound */
    jpush(&r, 'L', "a", 10, 10);
    jpush(&r, 'R', "a", 13, 13); /* +3: the upper bound */
    jpush(&r, 'R', "a", 14, 14); /* +4: outside */
    jpush(&r, 'R', "b", 11, 14); /* another key */
    jfinish(&r);
    static const char *const want[] = {JL("\"a\"", "10", "\"a\"", "8", "10"),
                                       JL("\"a\"", "10", "\"a\"", "13", "13")};
    expect_lines(&r.out, want, true, "interval bounds");
    assert_int_equal(r.st.late, 0);
    jclose(&r);
}

/* A left row without a partner goes out once W - grace passes its ts +
 * upper: here ts 10 + upper 5 = 15, grace 2, so at W = 18 and not at W =
 * 17 (a partner at 15 can still come then); never twice. */
static void left_join_emits_unmatched_rows_when_the_interval_plus_grace_has_passed(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: interval, how: left, between: [0ms, 5ms], grace: 2ms", NULL, NULL, NULL);
    jpush(&r, 'L', "a", 1, 10);
    jpush(&r, 'L', "c", 2, 10);
    jpush(&r, 'R', "z", 0, 17);  /* W = 17 after it */
    jpush(&r, 'R', "c", 3, 15);  /* at W = 17: 15 >= 17 - 2, not late; matches c */
    jpush(&r, 'R', "z", 0, 18);  /* W = 18: a (10 + 5 < 18 - 2) goes out now */
    jpush(&r, 'L', "b", 4, 18);
    jpush(&r, 'R', "b", 5, 18);  /* a match after it */
    jfinish(&r);
    static const char *const want[] = {
        JL("\"c\"", "2", "\"c\"", "3", "15"),
        JL("\"a\"", "1", "null", "null", "10"),
        JL("\"b\"", "4", "\"b\"", "5", "18"),
    };
    expect_sequence(&r.out, want, 3, "left join timing");
    jclose(&r);
}

static void full_join_emits_both_sides_unmatched_rows(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: interval, how: full, between: [-1ms, 1ms]", NULL, NULL, NULL);
    jpush(&r, 'L', "a", 1, 10);
    jpush(&r, 'R', "a", 2, 11);   /* matches */
    jpush(&r, 'R', "a", 3, 13);   /* 13 - 10 = 3: no */
    jpush(&r, 'L', "b", 4, 13);
    jpush(&r, 'L', NULL, 5, 13);  /* null keys never match */
    jpush(&r, 'R', NULL, 6, 13);
    jfinish(&r);
    static const char *const want[] = {
        JL("\"a\"", "1", "\"a\"", "2", "11"), JL("null", "null", "\"a\"", "3", "13"),
        JL("\"b\"", "4", "null", "null", "13"), JL("null", "5", "null", "null", "13"),
        JL("null", "null", "null", "6", "13"),
    };
    expect_lines(&r.out, want, true, "full join");
    jclose(&r);
}

static void interval_records_beyond_the_grace_go_to_the_late_output(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: interval, between: [0ms, 100ms], grace: 2ms", NULL, NULL, NULL);
    jpush(&r, 'L', "a", 1, 20);
    jpush(&r, 'L', "a", 2, 17); /* W = 20: 17 < 18: late */
    jpush(&r, 'L', "a", 3, 18); /* not late */
    jpush(&r, 'R', "a", 4, 19); /* not late: matches 18 (and not 17) */
    jfinish(&r);
    static const char *const want[] = {JL("\"a\"", "3", "\"a\"", "4", "19")};
    expect_lines(&r.out, want, true, "late");
    static const char *const late[] = {"{\"k\":\"a\",\"v\":2} @17"};
    expect_lines(&r.late, late, true, "late output");
    assert_int_equal(r.st.late, 1);
    jclose(&r);
}

/* -------------------------------------------------------- window join */

#define WL(lk, lv, rk, rv, ws, we, ts)                                                        \
    "{\"l_k\":" lk ",\"l_v\":" lv ",\"r_k\":" rk ",\"r_v\":" rv ",\"window_start\":" ws        \
    ",\"window_end\":" we "} @" ts

static void window_join_pairs_records_of_the_same_window_only(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: window, how: left, window: {type: tumbling, size: 10ms}", NULL, NULL, NULL);
    jpush(&r, 'L', "a", 1, 9);
    jpush(&r, 'R', "a", 2, 10);  /* next window: no pair with 9 */
    jpush(&r, 'L', "a", 3, 10);
    jpush(&r, 'R', "a", 4, 19);  /* same window as 10 */
    jpush(&r, 'R', "a", 5, 15);
    jpush(&r, 'R', "z", 0, 20);  /* W = 20 closes [10, 20) */
    jpush(&r, 'L', "a", 6, 19);  /* late */
    jfinish(&r);
    static const char *const want[] = {
        WL("\"a\"", "1", "null", "null", "0", "10", "9"),
        WL("\"a\"", "3", "\"a\"", "2", "10", "20", "19"),
        WL("\"a\"", "3", "\"a\"", "4", "10", "20", "19"),
        WL("\"a\"", "3", "\"a\"", "5", "10", "20", "19"),
    };
    expect_lines(&r.out, want, true, "window join");
    assert_int_equal(r.st.late, 1);
    jclose(&r);
}

static void hopping_window_join_emits_each_window_when_it_closes(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: window, window: {type: hopping, size: 10ms, advance: 5ms}", NULL, NULL,
          NULL);
    jpush(&r, 'L', "a", 1, 4);  /* [-5,5) [0,10) */
    jpush(&r, 'R', "a", 2, 9);  /* [0,10) [5,15) */
    jpush(&r, 'R', "a", 3, 12); /* [5,15) [10,20) */
    jpush(&r, 'L', "a", 4, 14); /* [5,15) [10,20) */
    jfinish(&r);
    static const char *const want[] = {
        WL("\"a\"", "1", "\"a\"", "2", "0", "10", "9"),
        WL("\"a\"", "4", "\"a\"", "2", "5", "15", "14"),
        WL("\"a\"", "4", "\"a\"", "3", "5", "15", "14"),
        WL("\"a\"", "4", "\"a\"", "3", "10", "20", "19"),
    };
    expect_lines(&r.out, want, true, "hopping window join");
    jclose(&r);
}

/* --------------------------------------------------------- table join */

#define CDC "{s: string, k: \"string?\", v: int, __op: \"string?\"}"

static void table_join_emits_updates_and_deletes_of_the_join_rows(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: table, how: left", NULL, CDC, "[k, v, __op]");
    jpush_op(&r, 'R', "a", 1, 1, "c"); /* no left row: nothing */
    jpush_op(&r, 'L', "a", 2, 2, "c"); /* (2, 1) */
    jpush_op(&r, 'L', "b", 3, 3, "c"); /* left join: (3, null) */
    jpush_op(&r, 'R', "a", 4, 4, "u"); /* (2, 4) */
    jpush_op(&r, 'R', "b", 5, 5, "c"); /* (3, 5) */
    jpush_op(&r, 'R', "b", 0, 6, "d"); /* back to (3, null) */
    jpush_op(&r, 'L', "a", 0, 7, "d"); /* the row (2, 4) is deleted */
    jpush_op(&r, 'L', "x", 0, 8, "d"); /* unknown key: nothing */
    jfinish(&r);
#define TL(lk, lv, rk, rv, op, ts)                                                            \
    "{\"l_k\":" lk ",\"l_v\":" lv ",\"r_k\":" rk ",\"r_v\":" rv ",\"__op\":\"" op "\"} @" ts
    static const char *const want[] = {
        TL("\"a\"", "2", "\"a\"", "1", "u", "2"), TL("\"b\"", "3", "null", "null", "u", "3"),
        TL("\"a\"", "2", "\"a\"", "4", "u", "4"), TL("\"b\"", "3", "\"b\"", "5", "u", "5"),
        TL("\"b\"", "3", "null", "null", "u", "6"), TL("\"a\"", "2", "\"a\"", "4", "d", "7"),
    };
    expect_sequence(&r.out, want, 6, "table join");
    jclose(&r);
}

/* ------------------------------------------------------------ restart */

typedef struct {
    char **l;
    size_t n;
} lines_t;

static void collect(lines_t *ls, sink_t *s) {
    size_t n = sink_count(s);
    ls->l = realloc(ls->l, (ls->n + n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++)
        ls->l[ls->n++] = sink_line(s, i, true);
}

/* Half the input, a stop (final commit), the other half after a restart:
 * together exactly what one run over all of it gives (nothing lost, no
 * duplicate), for each join type. */
static void join_state_survives_a_restart(void **s) {
    (void)s;
    const char *joins[] = {"type: interval, how: full, between: [-3ms, 3ms], grace: 1ms",
                           "type: window, how: full, window: {type: tumbling, size: 10ms}",
                           "type: table, how: full",
                           /* left records filed under their end (v + 6), carrying their time */
                           "type: interval, how: full, between: [-3ms, v + 6], grace: 1ms, "
                           "time: l_v"};
    for (int j = 0; j < 4; j++) {
        char dir[] = "/tmp/eddy_test_join_rs_XXXXXX";
        assert_non_null(mkdtemp(dir));
        const char *schema = j == 2 ? CDC : NULL, *fields = j == 2 ? "[k, v, __op]" : NULL;
        jrun_t one, a, b;
        lines_t got = {0};
        jopen(&one, joins[j], NULL, schema, fields);
        jopen(&a, joins[j], dir, schema, fields);
        srand(7 + (unsigned)j);
        const char *keys[] = {"a", "b", "c"}, *ops[] = {"c", "u", "d"};
        for (int i = 0; i < 80; i++) {
            char side = rand() % 2 ? 'L' : 'R';
            const char *k = keys[rand() % 3];
            int64_t ts = i + rand() % 3;
            const char *op = j == 2 ? ops[rand() % 3] : NULL;
            if (i == 40) {
                jstop(&a);
                collect(&got, &a.out);
                jclose(&a);
                jopen(&b, joins[j], dir, schema, fields);
            }
            jpush_op(&one, side, k, i, ts, op);
            jpush_op(i < 40 ? &a : &b, side, k, i, ts, op);
        }
        jfinish(&one);
        jfinish(&b);
        collect(&got, &b.out);
        assert_true(sink_count(&one.out) > 10);
        expect_lines_(&one.out, (const char *const *)got.l, got.n, true, joins[j]);
        for (size_t i = 0; i < got.n; i++)
            free(got.l[i]);
        free(got.l);
        jclose(&b);
        jclose(&one);
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
    }
}

/* ------------------------------------------------------------ config */

static char *topo_with(const char *join) {
    static char y[2048];
    snprintf(y, sizeof(y),
             "application: jt\n"
             "sources:\n"
             "  - {name: in, type: host, schema: {s: string, k: string, v: int}}\n"
             "  - {name: other, type: host, partitions: 3, schema: {id: int, name: string}}\n"
             "pipelines:\n"
             "  - name: j\n"
             "    from: in\n"
             "    steps:\n"
             "      - join: %s\n"
             "    to: out\n"
             "sinks: [{name: out, type: blackhole}]\n",
             join);
    return y;
}

static void join_config_errors_name_the_inputs_and_the_fix(void **s) {
    (void)s;
    /* keys that can never be equal: the inputs cannot be co-partitioned */
    expect_config_error(topo_with("{with: other, type: window, on: {left: k, right: id}, "
                                  "window: {type: tumbling, size: 10s}}"),
                        "inputs 'in' and 'other' cannot be co-partitioned", "key types");
    expect_config_error(topo_with("{with: other, type: table, on: {left: [k, v], right: id}}"),
                        "key_by", "key counts");
    expect_config_error(topo_with("{with: othr, type: table, on: {left: v, right: id}}"),
                        "did you mean 'other'", "unknown stream");
    expect_config_error(topo_with("{with: other, type: table, on: {left: v, right: idd}}"),
                        "unknown field 'idd'", "unknown field");
    expect_config_error(topo_with("{with: other, type: interval, on: {left: v, right: id}}"),
                        "between: [lower, upper]", "no bounds");
    expect_config_error(topo_with("{with: other, type: interval, on: {left: v, right: id}, "
                                  "between: [5s, -1s]}"),
                        "above upper", "bounds reversed");
    expect_config_error(topo_with("{with: in, type: table, on: [k]}"),
                        "prefix: {left: a_, right: b_}", "field names collide");
    expect_config_error(topo_with("{with: other, type: table, on: {left: v, right: id}, "
                                  "hows: left}"),
                        "did you mean 'how'", "unknown key");
}

/* The same step built through the C API is checked and runs like YAML. */
static void join_built_in_c_runs_like_a_file(void **s) {
    (void)s;
    eddy_topology_t *t = eddy_topology_new("api");
    eddy_cnode_t *a = eddy_topology_add_source(t, "people", "host");
    eddy_cnode_t *sa = eddy_cnode_map(a, "schema");
    eddy_cnode_set(sa, "id", "int");
    eddy_cnode_set(sa, "name", "string");
    eddy_cnode_t *b = eddy_topology_add_source(t, "sales", "host");
    eddy_cnode_set(b, "partitions", "2");
    eddy_cnode_set(eddy_cnode_map(b, "schema"), "seller", "int");
    eddy_cnode_t *pl = eddy_topology_add_pipeline(t, "p", "people");
    eddy_cnode_t *args;
    eddy_pipeline_add_step(pl, "join", NULL, &args);
    eddy_cnode_set(args, "with", "sales");
    eddy_cnode_set(args, "type", "table");
    eddy_cnode_t *on = eddy_cnode_map(args, "on");
    eddy_cnode_set(on, "left", "id");
    eddy_cnode_set(on, "right", "sellr");
    eddy_pipeline_to(pl, "out");
    sink_t out;
    sink_init(&out);
    eddy_topology_add_callback_sink(t, "out", sink_cb, &out);
    char err[512];
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "did you mean 'seller'"));
    eddy_cnode_set(on, "right", "seller");
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_OK);
    char dir[] = "/tmp/eddy_test_join_api_XXXXXX";
    assert_non_null(mkdtemp(dir));
    eddy_conf_t *conf = eddy_conf_new();
    assert_int_equal(eddy_conf_set(conf, "state.dir", dir, err, sizeof(err)), EDDY_OK);
    eddy_engine_t *e = eddy_engine_new(t, conf, err, sizeof(err));
    eddy_conf_destroy(conf);
    assert_non_null(e);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_value_t p[2] = {{.type = EDDY_TYPE_INT}, {.type = EDDY_TYPE_STRING, .len = 3}};
    p[0].u.i = 7;
    p[1].u.s = "ann";
    eddy_value_t q = {.type = EDDY_TYPE_INT};
    q.u.i = 7;
    assert_int_equal(eddy_engine_push(e, "people", 0, p, 1), EDDY_OK);
    assert_int_equal(eddy_engine_push(e, "sales", 1, &q, 2), EDDY_OK);
    assert_int_equal(eddy_engine_end_input(e, "people", -1), EDDY_OK);
    assert_int_equal(eddy_engine_end_input(e, "sales", -1), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, 60000), EDDY_OK);
    static const char *const want[] = {"{\"id\":7,\"name\":\"ann\",\"seller\":7,\"__op\":\"u\"}"};
    expect_lines(&out, want, false, "C API join");
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    sink_free(&out);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ oracle */

#define ON 300

typedef struct {
    char side;
    const char *k; /* NULL: null key */
    int64_t v, ts;
    const char *op;
} ev_t;

static int64_t fdiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Random records, mostly ascending with disorder, a few far behind (late
 * beyond any grace used here), 5% null keys (not for tables). */
static void gen(ev_t *ev, unsigned seed, bool table) {
    srand(seed);
    static const char *keys[] = {"a", "b", "c", "d"};
    static const char *ops[] = {"c", "u", "u", "d"};
    for (int i = 0; i < ON; i++) {
        ev[i].side = rand() % 2 ? 'L' : 'R';
        ev[i].k = !table && rand() % 20 == 0 ? NULL : keys[rand() % 4];
        ev[i].v = i;
        ev[i].ts = i * 3 - rand() % 10 - (rand() % 20 == 0 ? 40 : 0);
        ev[i].op = table ? ops[rand() % 4] : NULL;
    }
}

static void kstr(char *b, size_t n, const char *k) {
    if (k)
        snprintf(b, n, "\"%s\"", k);
    else
        snprintf(b, n, "null");
}

/* one output line of the oracle; l/r NULL: the side is null */
static void oline(lines_t *o, const ev_t *l, const ev_t *r, int64_t ts, const int64_t *win) {
    char lk[16] = "null", rk[16] = "null", lv[24] = "null", rv[24] = "null", w[64] = "";
    if (l) {
        kstr(lk, sizeof(lk), l->k);
        snprintf(lv, sizeof(lv), "%" PRId64, l->v);
    }
    if (r) {
        kstr(rk, sizeof(rk), r->k);
        snprintf(rv, sizeof(rv), "%" PRId64, r->v);
    }
    if (win)
        snprintf(w, sizeof(w), ",\"window_start\":%" PRId64 ",\"window_end\":%" PRId64, win[0],
                 win[1]);
    char *line = malloc(256);
    snprintf(line, 256, "{\"l_k\":%s,\"l_v\":%s,\"r_k\":%s,\"r_v\":%s%s} @%" PRId64, lk, lv, rk,
             rv, w, ts);
    o->l = realloc(o->l, (o->n + 1) * sizeof(char *));
    o->l[o->n++] = line;
}

static bool same_key(const ev_t *a, const ev_t *b) {
    return a->k && b->k && !strcmp(a->k, b->k);
}

/* The watermark each record meets: the largest time pushed before it. */
static void watermarks(const ev_t *ev, int64_t *wm) {
    int64_t w = INT64_MIN;
    for (int i = 0; i < ON; i++) {
        wm[i] = w;
        if (ev[i].ts > w)
            w = ev[i].ts;
    }
}

static void oracle_interval(const ev_t *ev, int64_t lo, int64_t up, int64_t g, int how,
                            lines_t *o) {
    int64_t wm[ON];
    watermarks(ev, wm);
    bool ok[ON];
    for (int i = 0; i < ON; i++)
        ok[i] = wm[i] == INT64_MIN || ev[i].ts >= wm[i] - g;
    bool matched[ON] = {false};
    for (int i = 0; i < ON; i++)
        for (int j = 0; j < ON; j++) {
            if (!ok[i] || !ok[j] || ev[i].side != 'L' || ev[j].side != 'R' ||
                !same_key(&ev[i], &ev[j]))
                continue;
            if (ev[i].ts + lo <= ev[j].ts && ev[j].ts <= ev[i].ts + up) {
                oline(o, &ev[i], &ev[j], ev[i].ts > ev[j].ts ? ev[i].ts : ev[j].ts, NULL);
                matched[i] = matched[j] = true;
            }
        }
    for (int i = 0; i < ON; i++)
        if (ok[i] && !matched[i] && how >= (ev[i].side == 'L' ? 1 : 2))
            oline(o, ev[i].side == 'L' ? &ev[i] : NULL, ev[i].side == 'R' ? &ev[i] : NULL,
                  ev[i].ts, NULL);
}

static void oracle_window(const ev_t *ev, int64_t size, int64_t adv, int64_t g, int how,
                          lines_t *o) {
    int64_t wm[ON];
    watermarks(ev, wm);
    /* the windows each record was added to */
    enum { MAXW = 8 };
    int64_t ws[ON][MAXW];
    int nw[ON];
    for (int i = 0; i < ON; i++) {
        nw[i] = 0;
        int64_t t = ev[i].ts, last = fdiv(t, adv) * adv;
        for (int64_t s = last; s > t - size; s -= adv)
            if (wm[i] == INT64_MIN || s + size > wm[i] - g)
                ws[i][nw[i]++] = s;
        if (nw[i] && ws[i][0] != last)
            nw[i] = 0; /* the newest window closed: late */
    }
    for (int i = 0; i < ON; i++)
        for (int a = 0; a < nw[i]; a++) {
            int64_t w[2] = {ws[i][a], ws[i][a] + size};
            bool m = false;
            for (int j = 0; j < ON; j++) {
                if (ev[j].side == ev[i].side || !same_key(&ev[i], &ev[j]))
                    continue;
                for (int b = 0; b < nw[j]; b++)
                    if (ws[j][b] == w[0]) {
                        m = true;
                        if (ev[i].side == 'L')
                            oline(o, &ev[i], &ev[j], w[1] - 1, w);
                    }
            }
            if (!m && how >= (ev[i].side == 'L' ? 1 : 2))
                oline(o, ev[i].side == 'L' ? &ev[i] : NULL, ev[i].side == 'R' ? &ev[i] : NULL,
                      w[1] - 1, w);
        }
}

static int64_t uof(const ev_t *e);
#define USCHEMA "{s: string, k: \"string?\", v: int, u: int}"

/* with_u: the inputs have a field u (uof) and nothing is dead-lettered */
static void run_oracle_(const char *join, const ev_t *ev, lines_t *want, const char *what,
                        bool with_u) {
    jrun_t r;
    jopen(&r, join, NULL, with_u ? USCHEMA : NULL, with_u ? "[k, v, u]" : NULL);
    for (int i = 0; i < ON; i++)
        if (with_u)
            jpush_u(&r, ev[i].side, ev[i].k, ev[i].v, ev[i].ts, uof(&ev[i]));
        else
            jpush(&r, ev[i].side, ev[i].k, ev[i].v, ev[i].ts);
    jfinish(&r);
    if (want->n < 10)
        fail_msg("%s: the oracle expects only %zu lines: not a test", what, want->n);
    if (with_u)
        assert_int_equal(r.st.dead_lettered, 0);
    expect_lines_(&r.out, (const char *const *)want->l, want->n, true, what);
    jclose(&r);
    for (size_t i = 0; i < want->n; i++)
        free(want->l[i]);
    free(want->l);
    want->l = NULL;
    want->n = 0;
}

static void run_oracle(const char *join, const ev_t *ev, lines_t *want, const char *what) {
    run_oracle_(join, ev, want, what, false);
}

static const char *const hows[] = {"inner", "left", "full"};

static void interval_join_equals_brute_force_on_random_input(void **s) {
    (void)s;
    ev_t ev[ON];
    int64_t bounds[][2] = {{-6, 9}, {0, 3}, {3, 12}, {-15, -2}};
    for (unsigned seed = 1; seed <= 4; seed++) {
        gen(ev, seed, false);
        for (int how = 0; how < 3; how++) {
            int64_t *b = bounds[(seed + (unsigned)how) % 4];
            int64_t g = (int64_t)(seed % 3) * 3;
            char join[256], what[300];
            snprintf(join, sizeof(join),
                     "type: interval, how: %s, between: [%" PRId64 "ms, %" PRId64
                     "ms], grace: %" PRId64 "ms",
                     hows[how], b[0], b[1], g);
            snprintf(what, sizeof(what), "seed %u: %s", seed, join);
            lines_t want = {0};
            oracle_interval(ev, b[0], b[1], g, how, &want);
            run_oracle(join, ev, &want, what);
        }
    }
}

static void window_join_equals_brute_force_on_random_input(void **s) {
    (void)s;
    ev_t ev[ON];
    for (unsigned seed = 1; seed <= 4; seed++) {
        gen(ev, seed + 100, false);
        for (int how = 0; how < 3; how++) {
            bool hop = (seed + (unsigned)how) % 2;
            int64_t g = (int64_t)(seed % 3) * 4;
            char join[256], what[300];
            snprintf(join, sizeof(join),
                     "type: window, how: %s, grace: %" PRId64 "ms, window: %s", hows[how], g,
                     hop ? "{type: hopping, size: 12ms, advance: 4ms}"
                         : "{type: tumbling, size: 10ms}");
            snprintf(what, sizeof(what), "seed %u: %s", seed, join);
            lines_t want = {0};
            oracle_window(ev, hop ? 12 : 10, hop ? 4 : 10, g, how, &want);
            run_oracle(join, ev, &want, what);
        }
    }
}

/* Table join: the changelog the join emits, applied as upserts and
 * deletes by key, must leave the join of the two final tables. */
static void table_join_equals_brute_force_on_random_input(void **s) {
    (void)s;
    ev_t ev[ON];
    for (unsigned seed = 1; seed <= 4; seed++) {
        gen(ev, seed + 200, true);
        for (int how = 0; how < 3; how++) {
            char join[64];
            snprintf(join, sizeof(join), "type: table, how: %s", hows[how]);
            jrun_t r;
            jopen(&r, join, NULL, CDC, "[k, v, __op]");
            for (int i = 0; i < ON; i++)
                jpush_op(&r, ev[i].side, ev[i].k, ev[i].v, ev[i].ts, ev[i].op);
            jfinish(&r);
            /* final tables, brute force */
            const ev_t *tab[2][4] = {{NULL}};
            static const char *keys[] = {"a", "b", "c", "d"};
            for (int i = 0; i < ON; i++) {
                int k = ev[i].k[0] - 'a';
                tab[ev[i].side == 'R'][k] = strcmp(ev[i].op, "d") ? &ev[i] : NULL;
            }
            lines_t want = {0};
            for (int k = 0; k < 4; k++) {
                const ev_t *l = tab[0][k], *rr = tab[1][k];
                if ((l && rr) || (l && how >= 1) || (rr && how == 2))
                    oline(&want, l, rr, 0, NULL);
            }
            /* the output applied */
            char *res[4] = {NULL};
            for (size_t i = 0; i < sink_count(&r.out); i++) {
                char *line = sink_line(&r.out, i, false);
                char *op = strstr(line, ",\"__op\":\"");
                assert_non_null(op);
                bool del = op[9] == 'd';
                strcpy(op, "}");
                const char *lk = strstr(line, "\"l_k\":\"");
                const char *rk = strstr(line, "\"r_k\":\"");
                int k = (lk ? lk[7] : rk[7]) - 'a';
                free(res[k]);
                res[k] = del ? NULL : strdup(line);
                free(line);
            }
            size_t nres = 0;
            char *got[4];
            for (int k = 0; k < 4; k++)
                if (res[k]) {
                    size_t len = strlen(res[k]) + 8;
                    got[nres] = malloc(len);
                    snprintf(got[nres++], len, "%s @0", res[k]);
                    free(res[k]);
                }
            qsort(got, nres, sizeof(char *), cmp_str);
            qsort(want.l, want.n, sizeof(char *), cmp_str);
            assert_int_equal(nres, want.n);
            for (size_t i = 0; i < nres; i++) {
                if (strcmp(got[i], want.l[i]))
                    fail_msg("seed %u %s: key %s: got %s, want %s", seed, join, keys[i], got[i],
                             want.l[i]);
                free(got[i]);
                free(want.l[i]);
            }
            free(want.l);
            jclose(&r);
        }
    }
}

/* ------------------------------------ interval: until, time, unique */

/* one output line with the u fields; l/r NULL: the side is null */
static void uline(lines_t *o, const ev_t *l, int64_t lu, const ev_t *r, int64_t ru, int64_t ts) {
    char lk[16] = "null", rk[16] = "null", lv[24] = "null", rv[24] = "null", lus[24] = "null",
         rus[24] = "null";
    if (l) {
        kstr(lk, sizeof(lk), l->k);
        snprintf(lv, sizeof(lv), "%" PRId64, l->v);
        snprintf(lus, sizeof(lus), "%" PRId64, lu);
    }
    if (r) {
        kstr(rk, sizeof(rk), r->k);
        snprintf(rv, sizeof(rv), "%" PRId64, r->v);
        snprintf(rus, sizeof(rus), "%" PRId64, ru);
    }
    char *line = malloc(256);
    snprintf(line, 256,
             "{\"l_k\":%s,\"l_v\":%s,\"l_u\":%s,\"r_k\":%s,\"r_v\":%s,\"r_u\":%s} @%" PRId64,
             lk, lv, lus, rk, rv, rus, ts);
    o->l = realloc(o->l, (o->n + 1) * sizeof(char *));
    o->l[o->n++] = line;
}

/* The left record's end of the random inputs: from before its start (an
 * empty interval) to 25 ms after it. */
static int64_t uof(const ev_t *e) { return e->ts + (e->v * 7) % 28 - 3; }

/* l matches r when l.ts + lo <= r.ts <= l.u; time_u: output time l.u */
static void oracle_until(const ev_t *ev, int64_t lo, int64_t g, int how, bool time_u,
                         lines_t *o) {
    int64_t wm[ON];
    watermarks(ev, wm);
    bool ok[ON], matched[ON] = {false};
    for (int i = 0; i < ON; i++)
        ok[i] = wm[i] == INT64_MIN || ev[i].ts >= wm[i] - g;
    for (int i = 0; i < ON; i++)
        for (int j = 0; j < ON; j++) {
            if (!ok[i] || !ok[j] || ev[i].side != 'L' || ev[j].side != 'R' ||
                !same_key(&ev[i], &ev[j]))
                continue;
            if (ev[i].ts + lo <= ev[j].ts && ev[j].ts <= uof(&ev[i])) {
                int64_t t = ev[i].ts > ev[j].ts ? ev[i].ts : ev[j].ts;
                uline(o, &ev[i], uof(&ev[i]), &ev[j], uof(&ev[j]), time_u ? uof(&ev[i]) : t);
                matched[i] = matched[j] = true;
            }
        }
    for (int i = 0; i < ON; i++)
        if (ok[i] && !matched[i] && how >= (ev[i].side == 'L' ? 1 : 2)) {
            bool l = ev[i].side == 'L';
            uline(o, l ? &ev[i] : NULL, uof(&ev[i]), l ? NULL : &ev[i], uof(&ev[i]),
                  time_u && l ? uof(&ev[i]) : ev[i].ts);
        }
}

/* between: [lower, u]: each left record's interval ends at its own u
 * (empty when u < ts + lower); time: l_u sets the output's event time
 * (an unmatched right row has no l_u: its own time). */
static void interval_join_until_a_left_field_equals_brute_force(void **s) {
    (void)s;
    ev_t ev[ON];
    for (unsigned seed = 1; seed <= 4; seed++) {
        gen(ev, seed + 200, false);
        for (int how = 0; how < 3; how++) {
            int64_t lo = (seed + (unsigned)how) % 2 ? -4 : 0;
            int64_t g = (int64_t)(seed % 3) * 3;
            bool time_u = (seed + (unsigned)how) % 3 == 0;
            char join[256], what[300];
            snprintf(join, sizeof(join),
                     "type: interval, how: %s, between: [%" PRId64 "ms, u], grace: %" PRId64
                     "ms%s",
                     hows[how], lo, g, time_u ? ", time: l_u" : "");
            snprintf(what, sizeof(what), "seed %u: %s", seed, join);
            lines_t want = {0};
            oracle_until(ev, lo, g, how, time_u, &want);
            run_oracle_(join, ev, &want, what, true);
        }
    }
}

/* unique: left, with left keys that never repeat: the same output as
 * without it (the right records not buffered could never have matched). */
static void unique_left_keys_give_the_same_join(void **s) {
    (void)s;
    ev_t ev[ON];
    static char names[ON][16];
    for (unsigned seed = 1; seed <= 3; seed++) {
        gen(ev, seed + 300, false);
        /* left i gets key "k<n>" (n = how many lefts before it); a right
         * record a key among the 3 lefts before and 2 after it */
        int nl = 0;
        for (int i = 0; i < ON; i++)
            if (ev[i].side == 'L' && ev[i].k) {
                snprintf(names[i], sizeof(names[i]), "k%d", nl++);
                ev[i].k = names[i];
            }
        int seen = 0;
        for (int i = 0; i < ON; i++) {
            if (ev[i].side == 'L' && ev[i].k)
                seen++;
            else if (ev[i].side == 'R' && ev[i].k) {
                snprintf(names[i], sizeof(names[i]), "k%d", seen - 3 + rand() % 5);
                ev[i].k = names[i];
            }
        }
        for (int how = 0; how < 3; how++) {
            int64_t g = (int64_t)(seed % 2) * 4;
            char join[256], what[300];
            snprintf(join, sizeof(join),
                     "type: interval, how: %s, between: [-2ms, u], grace: %" PRId64
                     "ms, unique: left",
                     hows[how], g);
            snprintf(what, sizeof(what), "seed %u: %s", seed, join);
            lines_t want = {0};
            oracle_until(ev, -2, g, how, false, &want);
            run_oracle_(join, ev, &want, what, true);
        }
    }
}

/* unique: left: a second left record of a key whose first can still
 * match is dead-lettered (not joined); once the first's interval is
 * behind the watermark, the key may come again. */
static void unique_left_dead_letters_a_repeated_live_key(void **s) {
    (void)s;
    jrun_t r;
    jopen(&r, "type: interval, between: [0ms, u], unique: left", NULL, USCHEMA, "[k, v, u]");
    jpush_u(&r, 'L', "a", 1, 10, 20);
    jpush_u(&r, 'L', "a", 2, 12, 30); /* a is live until 20: dead-lettered */
    jpush_u(&r, 'R', "a", 3, 15, 0);  /* joins 1 only */
    jpush_u(&r, 'R', "a", 4, 25, 0);  /* joins nothing (1 ended at 20); W = 25 */
    jpush_u(&r, 'L', "a", 5, 26, 40); /* 1 is over: accepted */
    jpush_u(&r, 'R', "a", 6, 27, 0);
    jfinish(&r);
    const char *want[] = {
        "{\"l_k\":\"a\",\"l_v\":1,\"l_u\":20,\"r_k\":\"a\",\"r_v\":3,\"r_u\":0} @15",
        "{\"l_k\":\"a\",\"l_v\":5,\"l_u\":40,\"r_k\":\"a\",\"r_v\":6,\"r_u\":0} @27",
    };
    expect_sequence(&r.out, want, 2, "unique: left");
    assert_int_equal(r.st.dead_lettered, 1);
    jclose(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(interval_bounds_are_inclusive),
        cmocka_unit_test(left_join_emits_unmatched_rows_when_the_interval_plus_grace_has_passed),
        cmocka_unit_test(full_join_emits_both_sides_unmatched_rows),
        cmocka_unit_test(interval_records_beyond_the_grace_go_to_the_late_output),
        cmocka_unit_test(window_join_pairs_records_of_the_same_window_only),
        cmocka_unit_test(hopping_window_join_emits_each_window_when_it_closes),
        cmocka_unit_test(table_join_emits_updates_and_deletes_of_the_join_rows),
        cmocka_unit_test(join_state_survives_a_restart),
        cmocka_unit_test(join_config_errors_name_the_inputs_and_the_fix),
        cmocka_unit_test(join_built_in_c_runs_like_a_file),
        cmocka_unit_test(interval_join_equals_brute_force_on_random_input),
        cmocka_unit_test(window_join_equals_brute_force_on_random_input),
        cmocka_unit_test(table_join_equals_brute_force_on_random_input),
        cmocka_unit_test(interval_join_until_a_left_field_equals_brute_force),
        cmocka_unit_test(unique_left_keys_give_the_same_join),
        cmocka_unit_test(unique_left_dead_letters_a_repeated_live_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
