/*
 * The lookup step (stream-table join): a `table` of persons, fed by a
 * changelog source, and a stream of orders that looks up the person of
 * each order on the same task. Both sources have several partitions, so
 * the join works only if the key_by in front of the lookup and the one in
 * front of the table route a key to the same task. The inputs go in in
 * phases (table changes, then orders), each waited for through the sinks,
 * so the table a record meets is known; the oracle test compares random
 * phases with a brute-force join.
 */
#include "window_harness.h"

#include "eddy_int.h"
#include "plan.h"

#define PEOPLE "{__op: \"string?\", id: int, name: \"string?\", city: \"string?\"}"
#define ORDERS "{oid: int, pid: int, amount: int, code: string}"

typedef struct {
    char dir[64];
    eddy_topology_t *topo;
    eddy_engine_t *eng;
    sink_t out, changes, late;
    int partitions;
} lk_t;

#define TABLE_ARGS "{key: id, store: persons}"

static void lk_open_(lk_t *l, const char *table_args, const char *lookup_args, int partitions) {
    memset(l, 0, sizeof(*l));
    sink_init(&l->out);
    sink_init(&l->changes);
    sink_init(&l->late);
    l->partitions = partitions;
    snprintf(l->dir, sizeof(l->dir), "/tmp/eddy_test_lookup_XXXXXX");
    assert_non_null(mkdtemp(l->dir));
    char y[4096], err[1024];
    snprintf(y, sizeof(y),
             "application: lk\n"
             "settings: {threads: 2, commit.interval.ms: 3600000, late: late, state.dir: '%s'}\n"
             "sources:\n"
             "  - {name: people, type: host, partitions: %d, schema: " PEOPLE "}\n"
             "  - {name: orders, type: host, partitions: %d, schema: " ORDERS "}\n"
             "pipelines:\n"
             "  - name: persons\n"
             "    from: people\n"
             "    steps:\n"
             "      - table: %s\n"
             "    to: changes\n"
             "  - name: joined\n"
             "    from: orders\n"
             "    steps:\n"
             "      - lookup: %s\n"
             "    to: out\n",
             l->dir, partitions, partitions, table_args, lookup_args);
    l->topo = eddy_topology_load_string(y, strlen(y), "lk.yaml", err, sizeof(err));
    if (!l->topo)
        fail_msg("%s\n%s", err, y);
    eddy_topology_add_callback_sink(l->topo, "out", sink_cb, &l->out);
    eddy_topology_add_callback_sink(l->topo, "changes", sink_cb, &l->changes);
    eddy_topology_add_callback_sink(l->topo, "late", sink_cb, &l->late);
    l->eng = eddy_engine_new(l->topo, NULL, err, sizeof(err));
    if (!l->eng)
        fail_msg("%s\n%s", err, y);
    assert_int_equal(eddy_engine_start(l->eng), EDDY_OK);
}

static void lk_open(lk_t *l, const char *lookup_args, int partitions) {
    lk_open_(l, TABLE_ARGS, lookup_args, partitions);
}

/* End the input and run to the end; the sinks stay for checks. */
static void lk_close_keep(lk_t *l) {
    eddy_engine_end_input(l->eng, "people", -1);
    eddy_engine_end_input(l->eng, "orders", -1);
    assert_int_equal(eddy_engine_poll(l->eng, 60000), EDDY_OK);
}

static void lk_free(lk_t *l) {
    eddy_engine_destroy(l->eng);
    eddy_topology_destroy(l->topo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", l->dir);
    assert_int_equal(system(cmd), 0);
    sink_free(&l->out);
    sink_free(&l->changes);
    sink_free(&l->late);
}

static void lk_close(lk_t *l) {
    lk_close_keep(l);
    lk_free(l);
}

static void push_at(lk_t *l, const char *src, int partition, const eddy_value_t *v, int64_t ts) {
    eddy_err_t err;
    while ((err = eddy_engine_push(l->eng, src, partition, v, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
}

static eddy_value_t s_(const char *s) {
    eddy_value_t v = {.type = s ? EDDY_TYPE_STRING : EDDY_TYPE_NULL,
                      .len = s ? (uint32_t)strlen(s) : 0};
    v.u.s = s;
    return v;
}
static eddy_value_t i_(int64_t i) {
    eddy_value_t v = {.type = EDDY_TYPE_INT};
    v.u.i = i;
    return v;
}

/* A change of person id at event time ts, into the partition of its key
 * (as a keyed Kafka topic holds it). */
static void person_at(lk_t *l, const char *op, int64_t id, const char *name, const char *city,
                      int64_t ts) {
    eddy_value_t v[4] = {s_(op), i_(id), s_(name), s_(city)};
    push_at(l, "people", (int)(id % l->partitions), v, ts);
}
static void person(lk_t *l, const char *op, int64_t id, const char *name, const char *city) {
    person_at(l, op, id, name, city, 1);
}

/* An order at event time ts, into any partition. */
static void order_at(lk_t *l, int64_t oid, int64_t pid, int64_t amount, int64_t ts) {
    eddy_value_t v[4] = {i_(oid), i_(pid), i_(amount), s_("x")};
    push_at(l, "orders", (int)((oid * 7) % l->partitions), v, ts);
}
static void order(lk_t *l, int64_t oid, int64_t pid, int64_t amount) {
    order_at(l, oid, pid, amount, 1);
}

static void wait_for(sink_t *s, size_t n) {
    assert_int_equal(wait_count(s, n), n);
}

static void inner_join_adds_the_row_and_drops_orders_without_one(void **state) {
    (void)state;
    lk_t l;
    lk_open(&l, "{table: persons, on: pid}", 3);
    person(&l, "c", 1, "Ann", "Paris");
    person(&l, "c", 2, "Bo", "Rome");
    wait_for(&l.changes, 2);
    order(&l, 10, 1, 5);
    order(&l, 11, 3, 7); /* no person 3 */
    order(&l, 12, 2, 9);
    order(&l, 13, 1, 4);
    wait_for(&l.out, 3);
    person(&l, "u", 1, "Ann", "Lyon"); /* an update changes later lookups only */
    person(&l, "d", 2, NULL, NULL);
    wait_for(&l.changes, 4);
    order(&l, 14, 1, 1);
    order(&l, 15, 2, 2); /* deleted */
    wait_for(&l.out, 4);
    sleep_ms(50);
    static const char *const want[] = {
        "{\"oid\":10,\"pid\":1,\"amount\":5,\"code\":\"x\",\"name\":\"Ann\",\"city\":\"Paris\"}",
        "{\"oid\":12,\"pid\":2,\"amount\":9,\"code\":\"x\",\"name\":\"Bo\",\"city\":\"Rome\"}",
        "{\"oid\":13,\"pid\":1,\"amount\":4,\"code\":\"x\",\"name\":\"Ann\",\"city\":\"Paris\"}",
        "{\"oid\":14,\"pid\":1,\"amount\":1,\"code\":\"x\",\"name\":\"Ann\",\"city\":\"Lyon\"}",
    };
    expect_lines(&l.out, want, false, "inner lookup");
    lk_close(&l);
}

static void left_join_keeps_orders_without_a_row_with_nulls(void **state) {
    (void)state;
    lk_t l;
    lk_open(&l, "{table: persons, on: pid, type: left, fields: {who: name}}", 2);
    person(&l, "c", 1, "Ann", "Paris");
    person(&l, "c", 2, "Bo", "Rome");
    person(&l, "d", 2, NULL, NULL);
    wait_for(&l.changes, 3);
    order(&l, 10, 1, 5);
    order(&l, 11, 2, 7);
    order(&l, 12, 3, 9);
    wait_for(&l.out, 3);
    static const char *const want[] = {
        "{\"oid\":10,\"pid\":1,\"amount\":5,\"code\":\"x\",\"who\":\"Ann\"}",
        "{\"oid\":11,\"pid\":2,\"amount\":7,\"code\":\"x\",\"who\":null}",
        "{\"oid\":12,\"pid\":3,\"amount\":9,\"code\":\"x\",\"who\":null}",
    };
    expect_lines(&l.out, want, false, "left lookup");
    lk_close(&l);
}

/* ----------------------------------------------------------- temporal */

#define VERSIONED "{key: id, store: persons, history.retention: 1s}"

static void temporal_join_takes_the_version_valid_at_the_records_time(void **state) {
    (void)state;
    lk_t l;
    lk_open_(&l, VERSIONED, "{table: persons, on: pid, type: left, fields: [city]}", 2);
    /* the orders come first: they wait for the table's watermark */
    order_at(&l, 1, 1, 0, 50);
    order_at(&l, 2, 1, 0, 150);
    order_at(&l, 3, 1, 0, 250);
    order_at(&l, 4, 1, 0, 350);
    order_at(&l, 5, 1, 0, 450);
    order_at(&l, 6, 1, 0, 200); /* exactly at a change: the new version */
    /* the changes out of order: Lyon before Paris */
    person_at(&l, "u", 1, "Ann", "Lyon", 200);
    person_at(&l, "c", 1, "Ann", "Paris", 100);
    person_at(&l, "d", 1, NULL, NULL, 300);
    person_at(&l, "c", 1, "Ann", "Nice", 400);
    wait_for(&l.changes, 4);
    sleep_ms(50);
    assert_int_equal(sink_count(&l.out), 0); /* not before the watermarks */
    lk_close_keep(&l);
    static const char *const want[] = {
        "{\"oid\":1,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":null} @50",
        "{\"oid\":2,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Paris\"} @150",
        "{\"oid\":3,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Lyon\"} @250",
        "{\"oid\":4,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":null} @350",
        "{\"oid\":5,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Nice\"} @450",
        "{\"oid\":6,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Lyon\"} @200",
    };
    expect_lines(&l.out, want, true, "temporal lookup");
    lk_free(&l);
}

static void temporal_join_emits_once_both_watermarks_pass(void **state) {
    (void)state;
    lk_t l;
    lk_open_(&l, VERSIONED, "{table: persons, on: pid, fields: [city]}", 1);
    person_at(&l, "c", 1, "Ann", "Paris", 100);
    order_at(&l, 1, 1, 0, 150);
    order_at(&l, 2, 1, 0, 500); /* the orders' watermark is 500 */
    wait_for(&l.changes, 1);
    sleep_ms(50);
    assert_int_equal(sink_count(&l.out), 0); /* the table's is 100 */
    /* the table's watermark passes 150; Lyon comes after the order's time */
    person_at(&l, "u", 1, "Ann", "Lyon", 160);
    wait_for(&l.out, 1);
    char *line = sink_line(&l.out, 0, true);
    assert_string_equal(
        line, "{\"oid\":1,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Paris\"} @150");
    free(line);
    lk_close(&l);
}

static void records_older_than_the_history_retention_are_late(void **state) {
    (void)state;
    lk_t l;
    lk_open_(&l, VERSIONED, "{table: persons, on: pid, fields: [city]}", 1);
    person_at(&l, "c", 1, "Ann", "Paris", 100);
    person_at(&l, "u", 1, "Ann", "Lyon", 5000);
    person_at(&l, "c", 2, "Bo", "Rome", 10000);  /* the table's watermark: 10000 */
    person_at(&l, "u", 1, "Ann", "Nice", 10001); /* drops Paris: older than 10000 - 1s */
    wait_for(&l.changes, 4);
    order_at(&l, 1, 1, 0, 20000);
    order_at(&l, 2, 1, 0, 150);  /* Paris is gone: late */
    order_at(&l, 3, 1, 0, 9500); /* Lyon still answers */
    wait_for(&l.late, 1);
    wait_for(&l.out, 1);
    lk_close_keep(&l);
    static const char *const want[] = {
        "{\"oid\":3,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Lyon\"} @9500",
        "{\"oid\":1,\"pid\":1,\"amount\":0,\"code\":\"x\",\"city\":\"Nice\"} @20000",
    };
    expect_lines(&l.out, want, true, "lookup after retention");
    static const char *const late[] = {
        "{\"oid\":2,\"pid\":1,\"amount\":0,\"code\":\"x\"} @150"};
    expect_lines(&l.late, late, true, "late");
    lk_free(&l);
}

/* ------------------------------------------------------------ oracle */

static uint64_t rng(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The task a key_by sends an int key to (operators/stateless.c). */
static int task_of(int64_t id, int ntasks) {
    char buf[64];
    eddy_value_t v = i_(id);
    size_t len = eddy__key_encode(&v, buf, sizeof(buf));
    return eddy__key_task(buf, len, ntasks);
}

/* One order per source partition and task, each for a sentinel person that
 * the task holds: once all their rows are out, every order pushed before
 * them has been processed, even those of the inner join that emit nothing
 * (a barrier on the expected rows alone lets an unmatched order of one
 * phase meet the table of the next). */
static void sentinel_orders(lk_t *l, const int64_t *sentinel, int ntasks, int64_t *soid,
                            char **want, size_t *nwant) {
    for (int q = 0; q < l->partitions; q++)
        for (int t = 0; t < ntasks; t++) {
            int64_t oid = ++*soid;
            eddy_value_t v[4] = {i_(oid), i_(sentinel[t]), i_(0), s_("x")};
            push_at(l, "orders", q, v, 1);
            char line[160];
            snprintf(line, sizeof(line),
                     "{\"oid\":%" PRId64 ",\"pid\":%" PRId64
                     ",\"amount\":0,\"code\":\"x\",\"name\":\"S\"}",
                     oid, sentinel[t]);
            want[(*nwant)++] = strdup(line);
        }
}

static void random_phases_equal_a_brute_force_join_(uint64_t seed, bool left) {
    enum { KEYS = 12, PHASES = 6 };
    static const char *const names[] = {"A", "B", "C", "D"};
    lk_t l;
    lk_open(&l, left ? "{table: persons, on: pid, type: left, fields: [name]}"
                     : "{table: persons, on: pid, fields: [name]}",
            3);
    const char *table[KEYS] = {0}; /* the brute force's table: name or NULL */
    eddy_stats_t st;
    eddy_engine_stats(l.eng, &st);
    enum { MAXT = 8 };
    const int ntasks = st.tasks;
    assert_true(ntasks > 0 && ntasks <= MAXT);
    char **want = calloc(PHASES * (40 + 3 * MAXT) + 1, sizeof(char *));
    size_t nwant = 0, nchanges = 0;
    int64_t sentinel[MAXT], soid = 100000;
    for (int t = 0; t < ntasks; t++) {
        sentinel[t] = 1000;
        while (task_of(sentinel[t], ntasks) != t)
            sentinel[t]++;
        person(&l, "u", sentinel[t], "S", "c");
        nchanges++;
    }
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 7;
    int64_t oid = 0;
    for (int p = 0; p < PHASES; p++) {
        for (int i = 0; i < 15; i++) {
            int64_t id = (int64_t)(rng(&s) % KEYS);
            if (rng(&s) % 4 == 0) {
                if (table[id])
                    nchanges++; /* a delete of a held key emits the row */
                table[id] = NULL;
                person(&l, "d", id, NULL, NULL);
            } else {
                table[id] = names[rng(&s) % 4];
                nchanges++;
                person(&l, "u", id, table[id], "c");
            }
        }
        wait_for(&l.changes, nchanges);
        for (int i = 0; i < 40; i++) {
            int64_t pid = (int64_t)(rng(&s) % (KEYS + 2));
            oid++;
            order(&l, oid, pid, i);
            const char *nm = pid < KEYS ? table[pid] : NULL;
            if (!nm && !left)
                continue;
            char line[160];
            if (nm)
                snprintf(line, sizeof(line),
                         "{\"oid\":%" PRId64 ",\"pid\":%" PRId64
                         ",\"amount\":%d,\"code\":\"x\",\"name\":\"%s\"}",
                         oid, pid, i, nm);
            else
                snprintf(line, sizeof(line),
                         "{\"oid\":%" PRId64 ",\"pid\":%" PRId64
                         ",\"amount\":%d,\"code\":\"x\",\"name\":null}",
                         oid, pid, i);
            want[nwant++] = strdup(line);
        }
        sentinel_orders(&l, sentinel, ntasks, &soid, want, &nwant);
        wait_for(&l.out, nwant);
    }
    sleep_ms(20);
    expect_lines_(&l.out, (const char *const *)want, nwant, false, "lookup vs brute force");
    for (size_t i = 0; i < nwant; i++)
        free(want[i]);
    free(want);
    lk_close(&l);
}

static void random_phases_equal_a_brute_force_join(void **state) {
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        random_phases_equal_a_brute_force_join_(seed, false);
        random_phases_equal_a_brute_force_join_(seed, true);
    }
}

/* -------------------------------------------------------- config errors */

static void config_errors_name_both_sides_and_the_fix(void **state) {
    (void)state;
    static const struct {
        const char *args, *needle;
    } cases[] = {
        {"{table: persons, on: code}", "not co-partitioned"},
        {"{table: persons, on: code}", "table 'persons' (pipeline persons, key: id int)"},
        {"{table: persons, on: [pid, oid]}", "one value per key column"},
        {"{table: person, on: pid}", "did you mean 'persons'"},
        {"{table: persons, on: pid, fields: [nme]}", "did you mean 'name'"},
        {"{table: persons, on: pid, fields: [id]}", "already has a field"},
        {"{table: persons}", "missing required key 'on'"},
        {"{table: persons, on: pid, type: outer}", "outer"},
        {"{table: persons, on: pidd}", "did you mean 'pid'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char y[2048];
        snprintf(y, sizeof(y),
                 "application: lk\n"
                 "sources:\n"
                 "  - {name: people, type: host, schema: " PEOPLE "}\n"
                 "  - {name: orders, type: host, schema: {oid: int, pid: int, code: string, "
                 "id: int}}\n"
                 "sinks: [{name: out, type: blackhole}]\n"
                 "pipelines:\n"
                 "  - name: persons\n"
                 "    from: people\n"
                 "    steps: [{table: {key: id, store: persons}}]\n"
                 "    to: out\n"
                 "  - name: joined\n"
                 "    from: orders\n"
                 "    steps:\n"
                 "      - lookup: %s\n"
                 "    to: out\n",
                 cases[i].args);
        expect_config_error(y, cases[i].needle, cases[i].args);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inner_join_adds_the_row_and_drops_orders_without_one),
        cmocka_unit_test(left_join_keeps_orders_without_a_row_with_nulls),
        cmocka_unit_test(temporal_join_takes_the_version_valid_at_the_records_time),
        cmocka_unit_test(temporal_join_emits_once_both_watermarks_pass),
        cmocka_unit_test(records_older_than_the_history_retention_are_late),
        cmocka_unit_test(random_phases_equal_a_brute_force_join),
        cmocka_unit_test(config_errors_name_both_sides_and_the_fix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
