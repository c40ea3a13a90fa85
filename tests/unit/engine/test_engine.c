/*
 * Engine behaviour through the public API: pipelines deliver the right
 * records, watermarks follow max event time minus allowed disorder and
 * survive idle inputs, key_by sends every key to exactly one task, bad
 * input is dead-lettered with its position while processing continues.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

typedef struct {
    pthread_mutex_t lock;
    int n;
    char lines[256][512];
    int64_t ts[256];
} collect_t;

static eddy_err_t collect_cb(const eddy_record_t *rec, void *opaque) {
    collect_t *c = opaque;
    pthread_mutex_lock(&c->lock);
    if (c->n < 256) {
        eddy_record_to_json(rec, c->lines[c->n], sizeof(c->lines[0]));
        c->ts[c->n] = rec->ts_ms;
        c->n++;
    }
    pthread_mutex_unlock(&c->lock);
    return EDDY_OK;
}

static bool has_line(collect_t *c, const char *line) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->lines[i], line))
            return true;
    return false;
}

static eddy_topology_t *load(const char *yaml) {
    char err[1024];
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (!t)
        fail_msg("load failed: %s", err);
    return t;
}

static eddy_engine_t *engine(eddy_topology_t *t) {
    char err[1024];
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("engine_new failed: %s", err);
    return e;
}

static eddy_value_t str(const char *s) {
    eddy_value_t v = {.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(s)};
    v.u.s = s;
    return v;
}
static eddy_value_t num(int64_t i) {
    eddy_value_t v = {.type = EDDY_TYPE_INT};
    v.u.i = i;
    return v;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------- watermark recorder */

/* A host-defined operator that passes records through and remembers the
 * highest watermark it was told about (on any task). */
typedef struct {
    pthread_mutex_t lock;
    int64_t max_wm;
    int wm_calls;
    int instances;
    /* key -> instance that saw it (key_by routing) */
    int seen_by[64];
    int records;
} probe_t;

typedef struct {
    probe_t *p;
    int instance;
} probe_inst_t;

static eddy_err_t probe_init(void **statep, const eddy_schema_t *in, const eddy_cnode_t *args,
                             void *opaque, char *errstr, size_t n) {
    (void)in;
    (void)args;
    (void)errstr;
    (void)n;
    probe_t *p = opaque;
    probe_inst_t *pi = calloc(1, sizeof(*pi));
    pi->p = p;
    pthread_mutex_lock(&p->lock);
    pi->instance = p->instances++;
    pthread_mutex_unlock(&p->lock);
    *statep = pi;
    return EDDY_OK;
}

static eddy_err_t probe_process(void *state, eddy_operator_ctx_t *ctx, const eddy_record_t *rec) {
    probe_inst_t *pi = state;
    int ki = eddy_schema_field_index(rec->schema, "k");
    if (ki >= 0 && rec->values[ki].type == EDDY_TYPE_INT) {
        int64_t k = rec->values[ki].u.i;
        pthread_mutex_lock(&pi->p->lock);
        pi->p->records++;
        if (k >= 0 && k < 64) {
            if (pi->p->seen_by[k] == -1)
                pi->p->seen_by[k] = pi->instance;
            else if (pi->p->seen_by[k] != pi->instance)
                pi->p->seen_by[k] = -2; /* seen by two tasks: routing broken */
        }
        pthread_mutex_unlock(&pi->p->lock);
    }
    return eddy_operator_emit(ctx, rec->values, rec->ts_ms);
}

static eddy_err_t probe_wm(void *state, eddy_operator_ctx_t *ctx, int64_t wm) {
    (void)ctx;
    probe_inst_t *pi = state;
    pthread_mutex_lock(&pi->p->lock);
    if (wm > pi->p->max_wm)
        pi->p->max_wm = wm;
    pi->p->wm_calls++;
    pthread_mutex_unlock(&pi->p->lock);
    return EDDY_OK;
}

static void probe_destroy(void *state) { free(state); }

static void probe_setup(probe_t *p, eddy_operator_def_t *def) {
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->max_wm = INT64_MIN;
    for (int i = 0; i < 64; i++)
        p->seen_by[i] = -1;
    memset(def, 0, sizeof(*def));
    def->abi = EDDY_OPERATOR_ABI;
    def->name = "probe";
    def->init = probe_init;
    def->process = probe_process;
    def->on_watermark = probe_wm;
    def->destroy = probe_destroy;
    def->opaque = p;
}

static int64_t probe_wm_now(probe_t *p) {
    pthread_mutex_lock(&p->lock);
    int64_t w = p->max_wm;
    pthread_mutex_unlock(&p->lock);
    return w;
}

/* Wait until the probe's watermark reaches want, up to 5 s. */
static int64_t wait_wm(probe_t *p, int64_t want) {
    for (int i = 0; i < 500; i++) {
        int64_t w = probe_wm_now(p);
        if (w >= want)
            return w;
        sleep_ms(10);
    }
    return probe_wm_now(p);
}

/* -------------------------------------------------------------- tests */

static const char *host_yaml =
    "application: t\n"
    "settings: {threads: 1}\n"
    "sources:\n"
    "  - name: in\n"
    "    type: host\n"
    "    schema: {user: string, amount: int}\n"
    "pipelines:\n"
    "  - name: p\n"
    "    from: in\n"
    "    steps:\n"
    "      - filter: amount > 10\n"
    "      - map: {user: upper(user), double_amount: amount * 2}\n"
    "    to: out\n";

static void filter_and_map_deliver_exactly_the_matching_records(void **state) {
    (void)state;
    eddy_topology_t *t = load(host_yaml);
    collect_t c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", collect_cb, &c);
    eddy_engine_t *e = engine(t);
    const char *users[] = {"ann", "bob", "cy", "dee"};
    int64_t amounts[] = {5, 11, 10, 100};
    for (int i = 0; i < 4; i++) {
        eddy_value_t v[2] = {str(users[i]), num(amounts[i])};
        assert_int_equal(eddy_engine_push(e, "in", 0, v, 1000 + i), EDDY_OK);
    }
    assert_int_equal(eddy_engine_end_input(e, "in", -1), EDDY_OK);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    assert_int_equal(c.n, 2);
    assert_true(has_line(&c, "{\"user\":\"BOB\",\"double_amount\":22}"));
    assert_true(has_line(&c, "{\"user\":\"DEE\",\"double_amount\":200}"));
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.events_in, 4);
    assert_int_equal(st.events_out, 2);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void push_rejects_wrong_types_and_unknown_sources(void **state) {
    (void)state;
    eddy_topology_t *t = load(host_yaml);
    collect_t c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", collect_cb, &c);
    eddy_engine_t *e = engine(t);
    eddy_value_t bad[2] = {num(1), num(2)};
    assert_int_equal(eddy_engine_push(e, "in", 0, bad, 0), EDDY_ERR_INVAL);
    eddy_value_t ok[2] = {str("a"), num(2)};
    assert_int_equal(eddy_engine_push(e, "nope", 0, ok, 0), EDDY_ERR_NOENT);
    assert_int_equal(eddy_engine_push(e, "in", 7, ok, 0), EDDY_ERR_INVAL);
    eddy_engine_end_input(e, "in", 0);
    assert_int_equal(eddy_engine_push(e, "in", 0, ok, 0), EDDY_ERR_STATE);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void push_applies_backpressure_when_queue_is_full(void **state) {
    (void)state;
    const char *y = "application: t\n"
                    "sources: [{name: in, type: host, queue.max: 3, schema: {k: int}}]\n"
                    "pipelines: [{name: p, from: in, to: out}]\n"
                    "sinks: [{name: out, type: blackhole}]\n";
    eddy_topology_t *t = load(y);
    eddy_engine_t *e = engine(t);
    eddy_value_t v[1] = {num(1)};
    for (int i = 0; i < 3; i++)
        assert_int_equal(eddy_engine_push(e, "in", 0, v, i), EDDY_OK);
    assert_int_equal(eddy_engine_push(e, "in", 0, v, 3), EDDY_ERR_FULL);
    eddy_engine_end_input(e, "in", -1);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.events_out, 3);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static const char *wm_yaml_fmt =
    "application: t\n"
    "settings: {threads: %d}\n"
    "sources:\n"
    "  - name: in\n"
    "    type: host\n"
    "    partitions: %d\n"
    "    schema: {k: int}\n"
    "    watermark: {max_out_of_orderness: 100ms%s}\n"
    "pipelines:\n"
    "  - name: p\n"
    "    from: in\n"
    "    steps:\n"
    "%s"
    "      - probe: {}\n"
    "    to: out\n"
    "sinks: [{name: out, type: blackhole}]\n";

static eddy_engine_t *wm_engine(probe_t *p, eddy_operator_def_t *def, eddy_topology_t **tp,
                                int threads, int parts, const char *idle, const char *keyby) {
    char y[2048], err[512];
    snprintf(y, sizeof(y), wm_yaml_fmt, threads, parts, idle, keyby);
    probe_setup(p, def);
    eddy_topology_t *t = load(y);
    assert_int_equal(eddy_topology_register_operator(t, def, err, sizeof(err)), EDDY_OK);
    *tp = t;
    eddy_engine_t *e = engine(t);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    return e;
}

static void watermark_is_max_event_time_minus_allowed_disorder(void **state) {
    (void)state;
    probe_t p;
    eddy_operator_def_t def;
    eddy_topology_t *t;
    eddy_engine_t *e = wm_engine(&p, &def, &t, 1, 1, "", "");
    eddy_value_t v[1] = {num(1)};
    eddy_engine_push(e, "in", 0, v, 1000);
    assert_int_equal(wait_wm(&p, 900), 900);
    eddy_engine_push(e, "in", 0, v, 1500);
    assert_int_equal(wait_wm(&p, 1400), 1400);
    /* out of order: an older record never moves the watermark back */
    eddy_engine_push(e, "in", 0, v, 1200);
    sleep_ms(50);
    assert_int_equal(probe_wm_now(&p), 1400);
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    /* the end of a bounded input is the end of time: windows can close */
    assert_int_equal(probe_wm_now(&p), INT64_MAX);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void silent_partition_holds_back_watermark_behind_key_by_without_idle_timeout(
    void **state) {
    (void)state;
    probe_t p;
    eddy_operator_def_t def;
    eddy_topology_t *t;
    eddy_engine_t *e = wm_engine(&p, &def, &t, 2, 2, "", "      - key_by: k\n");
    eddy_value_t v[1] = {num(1)};
    eddy_engine_push(e, "in", 0, v, 5000);
    sleep_ms(300);
    /* partition 1 said nothing: after key_by the minimum is still unknown */
    assert_true(probe_wm_now(&p) < 4900);
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void idle_partition_is_left_out_of_the_minimum_after_idle_timeout(void **state) {
    (void)state;
    probe_t p;
    eddy_operator_def_t def;
    eddy_topology_t *t;
    eddy_engine_t *e = wm_engine(&p, &def, &t, 2, 2, ", idle_timeout: 50ms", "      - key_by: k\n");
    eddy_value_t v[1] = {num(1)};
    /* keep partition 0 active while partition 1 stays silent */
    for (int i = 0; i < 20; i++) {
        eddy_engine_push(e, "in", 0, v, 5000 + i);
        sleep_ms(10);
    }
    /* max event time 5019 minus 100 ms allowed disorder */
    assert_int_equal(wait_wm(&p, 4919), 4919);
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void key_by_sends_every_key_to_exactly_one_task(void **state) {
    (void)state;
    probe_t p;
    eddy_operator_def_t def;
    eddy_topology_t *t;
    eddy_engine_t *e = wm_engine(&p, &def, &t, 2, 4, "", "      - key_by: k\n");
    int pushed = 0;
    for (int round = 0; round < 25; round++) {
        for (int part = 0; part < 4; part++) {
            for (int k = 0; k < 40; k++) {
                eddy_value_t v[1] = {num(k)};
                while (eddy_engine_push(e, "in", part, v, round) == EDDY_ERR_FULL)
                    sleep_ms(1);
                pushed++;
            }
        }
    }
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 20000), EDDY_OK);
    assert_int_equal(p.records, pushed);
    assert_int_equal(p.instances, 4);
    int used[4] = {0};
    for (int k = 0; k < 40; k++) {
        assert_true(p.seen_by[k] >= 0); /* seen, and by one task only */
        used[p.seen_by[k]] = 1;
    }
    /* 40 keys over 4 tasks: the hash spreads them (all on one would be a bug) */
    assert_true(used[0] + used[1] + used[2] + used[3] >= 3);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

/* key_by hands a record to the task that owns its key: to another task as
 * a copy in a message, to its own task directly. Either way every field
 * must arrive intact, and the records of one partition and key in the
 * order they were pushed. */
#define XO_PARTS 2
#define XO_KEYS 16
#define XO_ROUNDS 300

typedef struct {
    pthread_mutex_t lock;
    int64_t last_seq[XO_PARTS][XO_KEYS];
    int records, bad_field, out_of_order;
} xorder_t;

static void xorder_text(char *buf, size_t n, int part, int64_t seq) {
    snprintf(buf, n, "p%d-s%lld-%0*d", part, (long long)seq, 40, (int)(seq % 7));
}

static eddy_err_t xorder_cb(const eddy_record_t *rec, void *opaque) {
    xorder_t *x = opaque;
    int64_t k = rec->values[0].u.i, seq = rec->values[1].u.i;
    char want[128];
    xorder_text(want, sizeof(want), rec->partition, seq);
    pthread_mutex_lock(&x->lock);
    x->records++;
    if (rec->values[2].type != EDDY_TYPE_STRING || rec->values[2].len != strlen(want) ||
        memcmp(rec->values[2].u.s, want, strlen(want)) != 0 || k < 0 || k >= XO_KEYS ||
        rec->partition < 0 || rec->partition >= XO_PARTS)
        x->bad_field++;
    else if (seq <= x->last_seq[rec->partition][k])
        x->out_of_order++;
    else
        x->last_seq[rec->partition][k] = seq;
    pthread_mutex_unlock(&x->lock);
    return EDDY_OK;
}

static void key_by_delivers_whole_records_in_order_to_its_own_task_and_to_others(void **state) {
    (void)state;
    for (int threads = 1; threads <= 2; threads++) {
        char y[1024];
        snprintf(y, sizeof(y),
                 "application: t\n"
                 "settings: {threads: %d, batch.size: 64}\n"
                 "sources: [{name: in, type: host, partitions: %d, queue.max: 1000000,\n"
                 "           schema: {k: int, seq: int, s: string}}]\n"
                 "pipelines: [{name: p, from: in, steps: [{key_by: k}], to: out}]\n",
                 threads, XO_PARTS);
        eddy_topology_t *t = load(y);
        xorder_t x = {.lock = PTHREAD_MUTEX_INITIALIZER};
        for (int p = 0; p < XO_PARTS; p++)
            for (int k = 0; k < XO_KEYS; k++)
                x.last_seq[p][k] = -1;
        eddy_topology_add_callback_sink(t, "out", xorder_cb, &x);
        eddy_engine_t *e = engine(t);
        assert_int_equal(eddy_engine_start(e), EDDY_OK);
        int64_t seq = 0;
        for (int r = 0; r < XO_ROUNDS; r++, seq++)
            for (int p = 0; p < XO_PARTS; p++)
                for (int k = 0; k < XO_KEYS; k++) {
                    char text[128];
                    xorder_text(text, sizeof(text), p, seq * XO_KEYS + k);
                    eddy_value_t v[3] = {num(k), num(seq * XO_KEYS + k), str(text)};
                    while (eddy_engine_push(e, "in", p, v, r) == EDDY_ERR_FULL)
                        sleep_ms(1);
                }
        eddy_engine_end_input(e, "in", -1);
        assert_int_equal(eddy_engine_poll(e, 20000), EDDY_OK);
        assert_int_equal(x.records, XO_ROUNDS * XO_PARTS * XO_KEYS);
        assert_int_equal(x.bad_field, 0);
        assert_int_equal(x.out_of_order, 0);
        eddy_engine_destroy(e);
        eddy_topology_destroy(t);
    }
}

/* A window reads only k and v, so key_by may leave the other fields out of
 * the records it copies to another task; but a record that window sends
 * to the late output must arrive whole. Two tasks on two threads, keys on
 * both; each partition sends on-time records, then (once both watermarks
 * have passed the first window) late ones for every key. */
#define LW_KEYS 16

typedef struct {
    pthread_mutex_t lock;
    int late, late_whole;
    atomic_int results;
    int64_t hi[LW_KEYS];
} lwin_t;

static const char *late_yaml_fmt =
    "application: t\n"
    "settings: {threads: 2, late: late, state.dir: '%s'}\n"
    "sources: [{name: in, type: host, partitions: 2,\n"
    "           schema: {k: int, pad: string, v: int}}]\n"
    "pipelines:\n"
    "  - name: p\n"
    "    from: in\n"
    "    steps:\n"
    "      - window: {type: tumbling, size: 10ms}\n"
    "        aggregate: {by: k, fields: {n: count(), hi: max(v)}}\n"
    "    to: out\n";

static void lw_pad(char *buf, size_t n, int64_t k) {
    snprintf(buf, n, "padding-%lld-%0*d", (long long)k, 60, 7);
}

static eddy_err_t lw_late_cb(const eddy_record_t *rec, void *opaque) {
    lwin_t *x = opaque;
    char want[128];
    lw_pad(want, sizeof(want), rec->values[0].u.i);
    pthread_mutex_lock(&x->lock);
    x->late++;
    if (rec->values[1].type == EDDY_TYPE_STRING && rec->values[1].len == strlen(want) &&
        !memcmp(rec->values[1].u.s, want, strlen(want)) && rec->values[2].type == EDDY_TYPE_INT)
        x->late_whole++;
    pthread_mutex_unlock(&x->lock);
    return EDDY_OK;
}

static eddy_err_t lw_out_cb(const eddy_record_t *rec, void *opaque) {
    lwin_t *x = opaque;
    int64_t k = rec->values[0].u.i;
    pthread_mutex_lock(&x->lock);
    atomic_fetch_add(&x->results, 1);
    /* fields: k, window_start, window_end, n, hi */
    if (k >= 0 && k < LW_KEYS && rec->values[4].u.i > x->hi[k])
        x->hi[k] = rec->values[4].u.i;
    pthread_mutex_unlock(&x->lock);
    return EDDY_OK;
}

static void late_records_reach_the_late_output_whole_across_tasks(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy-test-engine-XXXXXX", y[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(y, sizeof(y), late_yaml_fmt, dir);
    eddy_topology_t *t = load(y);
    lwin_t x = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", lw_out_cb, &x);
    eddy_topology_add_callback_sink(t, "late", lw_late_cb, &x);
    eddy_engine_t *e = engine(t);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    char pad[128];
    /* window [1000, 1010) for every key, from both partitions */
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < LW_KEYS; k++) {
            lw_pad(pad, sizeof(pad), k);
            eddy_value_t v[3] = {num(k), str(pad), num(100 * k + p)};
            assert_int_equal(eddy_engine_push(e, "in", p, v, 1000 + k % 10), EDDY_OK);
        }
    /* both partitions move on: the first window closes on both tasks */
    for (int p = 0; p < 2; p++) {
        lw_pad(pad, sizeof(pad), 0);
        eddy_value_t v[3] = {num(0), str(pad), num(0)};
        assert_int_equal(eddy_engine_push(e, "in", p, v, 5000), EDDY_OK);
    }
    for (int i = 0; i < 500 && atomic_load(&x.results) < LW_KEYS; i++)
        sleep_ms(10);
    assert_int_equal(atomic_load(&x.results), LW_KEYS);
    /* late: behind every open window, on both partitions, every key */
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < LW_KEYS; k++) {
            lw_pad(pad, sizeof(pad), k);
            eddy_value_t v[3] = {num(k), str(pad), num(7)};
            assert_int_equal(eddy_engine_push(e, "in", p, v, 1001), EDDY_OK);
        }
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    assert_int_equal(x.late, 2 * LW_KEYS);
    assert_int_equal(x.late_whole, 2 * LW_KEYS);
    /* on-time records kept what the window reads */
    for (int k = 0; k < LW_KEYS; k++)
        assert_int_equal(x.hi[k], 100 * k + 1);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void malformed_lines_are_dead_lettered_with_position_and_processing_continues(
    void **state) {
    (void)state;
    char path[] = "/tmp/eddy_test_dl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *data = "{\"user\":\"ann\",\"amount\":12}\n"
                       "{\"user\":\"bob\",\"amount\":\n"
                       "{\"user\":\"cy\"}\n"
                       "{\"user\":\"dee\",\"amount\":\"lots\"}\n"
                       "\n"
                       "{\"user\":\"eve\",\"amount\":30}\n";
    assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
    close(fd);
    char y[2048];
    snprintf(y, sizeof(y),
             "application: t\n"
             "settings: {threads: 1, dead_letter: dl}\n"
             "sources:\n"
             "  - {name: in, type: file, path: '%s', schema: {user: string, amount: int}}\n"
             "pipelines:\n"
             "  - {name: p, from: in, to: out}\n",
             path);
    eddy_topology_t *t = load(y);
    collect_t out = {.lock = PTHREAD_MUTEX_INITIALIZER};
    collect_t dl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", collect_cb, &out);
    eddy_topology_add_callback_sink(t, "dl", collect_cb, &dl);
    eddy_engine_t *e = engine(t);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    assert_int_equal(out.n, 2);
    assert_true(has_line(&out, "{\"user\":\"ann\",\"amount\":12}"));
    assert_true(has_line(&out, "{\"user\":\"eve\",\"amount\":30}"));
    assert_int_equal(dl.n, 3);
    /* each dead letter says why, where (path, line as offset) and what */
    assert_non_null(strstr(dl.lines[0], "\"offset\":2"));
    assert_non_null(strstr(dl.lines[0], path));
    assert_non_null(strstr(dl.lines[1], "missing field 'amount'"));
    assert_non_null(strstr(dl.lines[1], "\"offset\":3"));
    assert_non_null(strstr(dl.lines[2], "amount"));
    assert_non_null(strstr(dl.lines[2], "\"offset\":4"));
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.dead_lettered, 3);
    assert_int_equal(st.events_in, 5);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    unlink(path);
}

/* A sink that cannot write at a commit point fails the engine, and that
 * round is not acknowledged: a restart with a working sink delivers every
 * record (at-least-once), none is lost behind committed positions. */
static void failed_sink_commit_is_not_acknowledged(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy_test_sinkfail_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char in[300], out[300], y[2048];
    snprintf(in, sizeof(in), "%s/in.jsonl", dir);
    snprintf(out, sizeof(out), "%s/out.jsonl", dir);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    for (int i = 0; i < 50; i++)
        fprintf(f, "{\"user\":\"u%d\",\"amount\":%d}\n", i % 7, i);
    fclose(f);
    for (int run = 0; run < 2; run++) {
        /* run 0 writes to /dev/full: the buffered lines fail at the commit */
        snprintf(y, sizeof(y),
                 "application: t\n"
                 "settings: {threads: 1, state.dir: '%s/state'}\n"
                 "sources:\n"
                 "  - {name: in, type: file, path: '%s', schema: {user: string, amount: int}}\n"
                 "pipelines:\n"
                 "  - {name: sums, from: in, steps: [{aggregate: {by: user, fields: {s: "
                 "sum(amount)}}}], to: none}\n"
                 "  - {name: p, from: in, to: out}\n"
                 "sinks:\n"
                 "  - {name: out, type: file, path: '%s'}\n"
                 "  - {name: none, type: blackhole}\n",
                 dir, in, run == 0 ? "/dev/full" : out);
        eddy_topology_t *t = load(y);
        eddy_engine_t *e = engine(t);
        eddy_engine_start(e);
        eddy_err_t r = eddy_engine_poll(e, 10000);
        if (run == 0) {
            assert_int_not_equal(r, EDDY_OK);
            assert_non_null(strstr(eddy_engine_last_error(e), "commit failed"));
        } else {
            assert_int_equal(r, EDDY_OK);
        }
        eddy_engine_destroy(e);
        eddy_topology_destroy(t);
    }
    f = fopen(out, "r");
    assert_non_null(f);
    char line[256];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n++;
    fclose(f);
    assert_int_equal(n, 50);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A custom operator that emits each record twice with a new schema. */
static const eddy_schema_t *dup_schema(const eddy_schema_t *in, const eddy_cnode_t *args,
                                       void *opaque, char *errstr, size_t n) {
    (void)in;
    (void)args;
    (void)opaque;
    (void)errstr;
    (void)n;
    const char *names[] = {"copy"};
    eddy_type_t types[] = {EDDY_TYPE_INT};
    return eddy_schema_new(1, names, types);
}
static eddy_err_t dup_process(void *state, eddy_operator_ctx_t *ctx, const eddy_record_t *rec) {
    (void)state;
    eddy_value_t v = {.type = EDDY_TYPE_INT};
    int idx = eddy_schema_field_index(rec->schema, "amount");
    for (int i = 1; i <= 2; i++) {
        v.u.i = rec->values[idx].u.i * 10 + i;
        eddy_err_t err = eddy_operator_emit(ctx, &v, rec->ts_ms);
        if (err)
            return err;
    }
    return EDDY_OK;
}

static void host_operator_emits_records_with_its_own_schema(void **state) {
    (void)state;
    const char *y = "application: t\n"
                    "settings: {threads: 1}\n"
                    "sources: [{name: in, type: host, schema: {user: string, amount: int}}]\n"
                    "pipelines:\n"
                    "  - name: p\n"
                    "    from: in\n"
                    "    steps: [{dup: {}}, {filter: copy % 2 = 0}]\n"
                    "    to: out\n";
    eddy_topology_t *t = load(y);
    eddy_operator_def_t def = {.abi = EDDY_OPERATOR_ABI, .name = "dup",
                               .output_schema = dup_schema, .process = dup_process};
    char err[512];
    assert_int_equal(eddy_topology_register_operator(t, &def, err, sizeof(err)), EDDY_OK);
    /* names are unique: a second registration is refused */
    assert_int_equal(eddy_topology_register_operator(t, &def, err, sizeof(err)), EDDY_ERR_INVAL);
    collect_t c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", collect_cb, &c);
    eddy_engine_t *e = engine(t);
    eddy_value_t v[2] = {str("a"), num(7)};
    eddy_engine_push(e, "in", 0, v, 1);
    eddy_engine_end_input(e, "in", -1);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0], "{\"copy\":72}");
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void topology_built_in_c_runs_like_a_file(void **state) {
    (void)state;
    eddy_topology_t *t = eddy_topology_new("api");
    eddy_cnode_t *src = eddy_topology_add_source(t, "in", "host");
    eddy_cnode_t *schema = eddy_cnode_map(src, "schema");
    eddy_cnode_set(schema, "user", "string");
    eddy_cnode_set(schema, "amount", "int");
    eddy_cnode_t *pl = eddy_topology_add_pipeline(t, "p", "in");
    eddy_pipeline_add_step(pl, "filter", "amount >= 3", NULL);
    eddy_cnode_t *fields;
    eddy_pipeline_add_step(pl, "map", NULL, &fields);
    eddy_cnode_set(fields, "who", "concat(user, '!')");
    eddy_pipeline_to(pl, "out");
    collect_t c = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", collect_cb, &c);
    char err[512];
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_OK);
    eddy_conf_t *conf = eddy_conf_new();
    assert_int_equal(eddy_conf_set(conf, "threads", "1", err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy_conf_set(conf, "thread", "1", err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "did you mean 'threads'"));
    assert_int_equal(eddy_conf_set(conf, "threads", "0", err, sizeof(err)), EDDY_ERR_CONFIG);
    eddy_engine_t *e = eddy_engine_new(t, conf, err, sizeof(err));
    eddy_conf_destroy(conf);
    assert_non_null(e);
    eddy_value_t v1[2] = {str("x"), num(1)}, v2[2] = {str("y"), num(3)};
    eddy_engine_push(e, "in", 0, v1, 1);
    eddy_engine_push(e, "in", 0, v2, 2);
    eddy_engine_end_input(e, "in", -1);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.lines[0], "{\"who\":\"y!\"}");
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void stop_ends_an_unbounded_run_cleanly(void **state) {
    (void)state;
    const char *y = "application: t\n"
                    "sources: [{name: nx, type: nexmark, partitions: 2}]\n"
                    "pipelines: [{name: p, from: bid, to: out}]\n"
                    "sinks: [{name: out, type: blackhole}]\n";
    eddy_topology_t *t = load(y);
    eddy_engine_t *e = engine(t);
    eddy_engine_start(e);
    assert_int_equal(eddy_engine_poll(e, 200), EDDY_ERR_TIMEOUT);
    eddy_engine_stop(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_true(st.events_in > 0);
    assert_int_equal(st.running, 0);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

static void nexmark_run_counts_every_generated_event_once(void **state) {
    (void)state;
    for (int parts = 1; parts <= 3; parts += 2) {
        char y[1024];
        snprintf(y, sizeof(y),
                 "application: t\n"
                 "settings: {threads: 2}\n"
                 "sources: [{name: nx, type: nexmark, events: 50000, partitions: %d}]\n"
                 "pipelines: [{name: p, from: bid, to: out}]\n"
                 "sinks: [{name: out, type: blackhole}]\n",
                 parts);
        eddy_topology_t *t = load(y);
        eddy_engine_t *e = engine(t);
        eddy_engine_start(e);
        assert_int_equal(eddy_engine_poll(e, 30000), EDDY_OK);
        eddy_stats_t st;
        eddy_engine_stats(e, &st);
        assert_int_equal(st.events_in, 50000);
        assert_int_equal(st.events_out, 46000); /* 46 of every 50 are bids */
        eddy_engine_destroy(e);
        eddy_topology_destroy(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filter_and_map_deliver_exactly_the_matching_records),
        cmocka_unit_test(push_rejects_wrong_types_and_unknown_sources),
        cmocka_unit_test(push_applies_backpressure_when_queue_is_full),
        cmocka_unit_test(watermark_is_max_event_time_minus_allowed_disorder),
        cmocka_unit_test(silent_partition_holds_back_watermark_behind_key_by_without_idle_timeout),
        cmocka_unit_test(idle_partition_is_left_out_of_the_minimum_after_idle_timeout),
        cmocka_unit_test(key_by_sends_every_key_to_exactly_one_task),
        cmocka_unit_test(key_by_delivers_whole_records_in_order_to_its_own_task_and_to_others),
        cmocka_unit_test(late_records_reach_the_late_output_whole_across_tasks),
        cmocka_unit_test(malformed_lines_are_dead_lettered_with_position_and_processing_continues),
        cmocka_unit_test(failed_sink_commit_is_not_acknowledged),
        cmocka_unit_test(host_operator_emits_records_with_its_own_schema),
        cmocka_unit_test(topology_built_in_c_runs_like_a_file),
        cmocka_unit_test(stop_ends_an_unbounded_run_cleanly),
        cmocka_unit_test(nexmark_run_counts_every_generated_event_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
