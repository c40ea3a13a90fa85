/*
 * memory.max.bytes, as a user would see it (docs/memory.md):
 *  - 10 million distinct keys through a keyed aggregate stay under the
 *    budget plus 20% (the process's peak RSS, VmHWM), and every key is
 *    counted;
 *  - key_by messages queued between tasks stay within the exchange's share
 *    (sources wait), and nothing is lost;
 *  - when operators' in-memory state outgrows the budget, input slows down
 *    (reported in the memory figures and once on stderr), the run neither
 *    dies nor loses a record.
 * Under AddressSanitizer and ThreadSanitizer RSS means little (shadow
 * memory, quarantine): the sanitizer's own count of allocated bytes is
 * checked instead (engine/memory.c measures the same), over fewer keys. EDDY_MEMORY_KEYS sets the key count of the first test.
 */
#include <eddy.h>

#include <setjmp.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define MIB (1024LL * 1024)

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* VmHWM (peak resident set) of this process, bytes. */
static int64_t peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    int64_t kb = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtoll(line + 6, NULL, 10);
    fclose(f);
    assert_true(kb > 0);
    return kb * 1024;
}

typedef struct {
    char dir[64];
    eddy_topology_t *topo;
    eddy_engine_t *eng;
} run_t;

static void run_open(run_t *r, const char *fmt, ...) {
    snprintf(r->dir, sizeof(r->dir), "/tmp/eddy-test-memory-XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    char yaml[4096], err[1024];
    va_list ap;
    va_start(ap, fmt);
    char body[3072];
    vsnprintf(body, sizeof(body), fmt, ap);
    va_end(ap);
    snprintf(yaml, sizeof(yaml), body, r->dir);
    r->topo = eddy_topology_load_string(yaml, strlen(yaml), "memory.yaml", err, sizeof(err));
    if (!r->topo)
        fail_msg("topology: %s", err);
    r->eng = eddy_engine_new(r->topo, NULL, err, sizeof(err));
    if (!r->eng)
        fail_msg("engine: %s", err);
    assert_int_equal(eddy_engine_start(r->eng), EDDY_OK);
}

static void push(run_t *r, int partition, const eddy_value_t *v, int64_t ts) {
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", partition, v, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
}

static void run_finish(run_t *r) {
    assert_int_equal(eddy_engine_end_input(r->eng, "in", -1), EDDY_OK);
    eddy_err_t err = eddy_engine_poll(r->eng, 600000);
    if (err)
        fail_msg("run failed: %s: %s", eddy_err2str(err), eddy_engine_last_error(r->eng));
}

static void run_close(run_t *r) {
    eddy_engine_destroy(r->eng);
    eddy_topology_destroy(r->topo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    assert_int_equal(system(cmd), 0);
}

static void print_mem(const char *what, const eddy_memory_stats_t *m) {
    print_message("%s: budget %lld MiB, heap peak %lld MiB, state %lld/%lld MiB, exchange peak "
                  "%lld KiB of %lld KiB, throttle events %llu, slowed %llu ms, exchange waits "
                  "%llu, peak RSS %lld MiB\n",
                  what, (long long)(m->budget_bytes / MIB), (long long)(m->heap_peak_bytes / MIB),
                  (long long)(m->state_bytes / MIB), (long long)(m->state_budget_bytes / MIB),
                  (long long)(m->exchange_peak_bytes / 1024),
                  (long long)(m->exchange_budget_bytes / 1024),
                  (unsigned long long)m->throttle_events, (unsigned long long)m->throttled_ms,
                  (unsigned long long)m->exchange_waits, (long long)(peak_rss() / MIB));
}

static eddy_err_t copy_json(const eddy_record_t *rec, void *opaque) {
    eddy_record_to_json(rec, opaque, 256);
    return EDDY_OK;
}

/* ------------------------------------------------------------------ */

static void ten_million_keys_stay_under_the_budget_plus_a_fifth(void **state) {
    (void)state;
    int64_t keys = SANITIZED ? 300000 : 10000000;
    const char *env = getenv("EDDY_MEMORY_KEYS");
    if (env)
        keys = strtoll(env, NULL, 10);
    const int64_t budget = 128 * MIB;
    run_t r;
    run_open(&r,
             "application: mem\n"
             "settings: {threads: 1, memory.max.bytes: 128MiB, state.dir: '%%s'}\n"
             "sources: [{name: in, type: host, schema: {k: int, v: int}}]\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps: [{aggregate: {by: k, fields: {n: count(), s: sum(v)}, store: counts}}]\n"
             "    to: out\n"
             "sinks: [{name: out, type: blackhole}]\n");
    /* every key once, in a scattered order: k = i * P mod keys, P prime
     * and not a factor of keys */
    const int64_t P = 1000003;
    eddy_value_t v[2] = {{.type = EDDY_TYPE_INT}, {.type = EDDY_TYPE_INT}};
    for (int64_t i = 0; i < keys; i++) {
        int64_t k = (int64_t)(((unsigned __int128)i * (unsigned __int128)P) % (uint64_t)keys);
        v[0].u.i = k;
        v[1].u.i = k * 3 + 1;
        push(&r, 0, v, i / 1000);
    }
    run_finish(&r);
    eddy_stats_t st;
    eddy_engine_stats(r.eng, &st);
    assert_int_equal(st.events_in, keys);
    eddy_memory_stats_t m;
    eddy_engine_memory_stats(r.eng, &m);
    print_mem("aggregate", &m);
    assert_int_equal(m.budget_bytes, budget);
    assert_int_equal(m.state_budget_bytes, budget / 2); /* the default split */
    if (SANITIZED)
        assert_true(m.heap_peak_bytes <= budget + budget / 5);
    else
        assert_true(peak_rss() <= budget + budget / 5);
    /* every key was counted once, with its own value */
    char buf[256], want[256];
    for (int j = 0; j < 2000; j++) {
        int64_t k = (int64_t)((uint64_t)j * 7919u % (uint64_t)keys);
        eddy_value_t key = {.type = EDDY_TYPE_INT};
        key.u.i = k;
        buf[0] = 0;
        assert_int_equal(eddy_engine_query_get(r.eng, "counts", &key, 1, copy_json, buf), EDDY_OK);
        snprintf(want, sizeof(want), "{\"k\":%lld,\"n\":1,\"s\":%lld}", (long long)k,
                 (long long)(k * 3 + 1));
        assert_string_equal(buf, want);
    }
    run_close(&r);
}

static void a_full_exchange_holds_sources_back_and_loses_nothing(void **state) {
    (void)state;
    const int64_t n = SANITIZED ? 200000 : 1000000;
    run_t r;
    /* both partitions' records meet on one task (key_by on a constant),
     * which also writes a store entry per record: the receiver is slower
     * than the senders */
    run_open(&r,
             "application: mem\n"
             "settings: {threads: 2, memory.max.bytes: 64MiB, state.dir: '%%s'}\n"
             "sources: [{name: in, type: host, partitions: 2, schema: {id: int, pad: string}}]\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps:\n"
             "      - key_by: pad\n"
             "      - aggregate: {by: id, fields: {n: count()}, store: ids}\n"
             "    to: out\n"
             "sinks: [{name: out, type: blackhole}]\n");
    char pad[201];
    memset(pad, 'x', 200);
    pad[200] = 0;
    eddy_value_t v[2] = {{.type = EDDY_TYPE_INT}, {.type = EDDY_TYPE_STRING, .len = 200}};
    v[1].u.s = pad;
    for (int64_t i = 0; i < n; i++) {
        v[0].u.i = i;
        push(&r, (int)(i & 1), v, i / 1000);
    }
    run_finish(&r);
    eddy_stats_t st;
    eddy_engine_stats(r.eng, &st);
    assert_int_equal(st.events_in, n);
    assert_int_equal(st.events_out, n); /* one update per record, none lost */
    eddy_memory_stats_t m;
    eddy_engine_memory_stats(r.eng, &m);
    print_mem("exchange", &m);
    assert_int_equal(m.exchange_budget_bytes, 4 * MIB); /* 64 MiB / 16 */
    assert_int_equal(m.exchange_bytes, 0);
    assert_true(m.exchange_peak_bytes > 0);
    /* over the bound by at most what was already in flight when the
     * senders looked: one batch message per sender */
    assert_true(m.exchange_peak_bytes <= m.exchange_budget_bytes + 2 * MIB);
    run_close(&r);
}

static void operator_state_over_the_budget_slows_input_and_loses_nothing(void **state) {
    (void)state;
    /* exact dedup keeps every key of its horizon in memory (about 50 bytes
     * a key): 1M keys within a day's horizon outgrow 64 MiB */
    const int64_t n = 1000000;
    run_t r;
    run_open(&r,
             "application: mem\n"
             "settings: {threads: 1, memory.max.bytes: 64MiB, state.dir: '%%s'}\n"
             "sources: [{name: in, type: host, schema: {k: int}}]\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps: [{dedup: {key: k, within: 1d, keep: first, store: seen}}]\n"
             "    to: out\n"
             "sinks: [{name: out, type: blackhole}]\n");
    eddy_value_t v[1] = {{.type = EDDY_TYPE_INT}};
    for (int64_t i = 0; i < n; i++) {
        v[0].u.i = i;
        push(&r, 0, v, i / 1000);
        if (i % 10 == 9) { /* and a repeat, to be dropped */
            v[0].u.i = i - 5;
            push(&r, 0, v, i / 1000);
        }
    }
    run_finish(&r);
    eddy_stats_t st;
    eddy_engine_stats(r.eng, &st);
    assert_int_equal(st.events_in, n + n / 10);
    assert_int_equal(st.events_out, n); /* each key once: nothing lost, no repeat */
    eddy_memory_stats_t m;
    eddy_engine_memory_stats(r.eng, &m);
    print_mem("dedup", &m);
    assert_true(m.heap_peak_bytes > m.budget_bytes);
    assert_true(m.throttle_events >= 1);
    assert_true(m.throttled_ms > 0);
    run_close(&r);
}

static void a_state_share_over_three_quarters_is_a_config_error(void **state) {
    (void)state;
    const char *y = "application: mem\n"
                    "settings: {memory.max.bytes: 128MiB, state.memory.max.bytes: 100MiB}\n"
                    "sources: [{name: in, type: host, schema: {k: int}}]\n"
                    "pipelines: [{name: p, from: in, to: out}]\n"
                    "sinks: [{name: out, type: blackhole}]\n";
    char err[512];
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "m.yaml", err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "m.yaml:2:"));
    assert_non_null(strstr(err, "three quarters of memory.max.bytes"));
    eddy_topology_destroy(t);
    y = "application: mem\n"
        "settings: {memory.max.bytes: 10MiB}\n"
        "sources: [{name: in, type: host, schema: {k: int}}]\n"
        "pipelines: [{name: p, from: in, to: out}]\n"
        "sinks: [{name: out, type: blackhole}]\n";
    t = eddy_topology_load_string(y, strlen(y), "m.yaml", err, sizeof(err));
    assert_non_null(t);
    assert_int_equal(eddy_topology_check(t, err, sizeof(err)), EDDY_ERR_CONFIG);
    assert_non_null(strstr(err, "m.yaml:2:"));
    assert_non_null(strstr(err, "below the minimum of 64MiB"));
    eddy_topology_destroy(t);
}

/* The governor looks at memory every 10 ms. Its first measure,
 * mallinfo2, walks every free chunk, so with many (a process that freed
 * much, as a CEP run after its keys went idle) each look cost
 * milliseconds: a CEP benchmark spent 80% of its stream thread there. Its
 * looks must stay a small share of the time however fragmented the heap
 * is. */
static void looks_at_a_fragmented_heap_stay_a_small_share(void **state) {
    (void)state;
    /* half a million free chunks between live ones (none can merge) */
    const size_t n = SANITIZED ? 20000 : 1000000;
    void **blocks = malloc(n * sizeof(void *));
    assert_non_null(blocks);
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(40);
        assert_non_null(blocks[i]);
        memset(blocks[i], (int)i, 40);
    }
    for (size_t i = 0; i < n; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    run_t r;
    run_open(&r, "application: mem\n"
                 "settings: {threads: 1, memory.max.bytes: 1GiB, state.dir: '%%s'}\n"
                 "sources: [{name: in, type: host, schema: {k: int}}]\n"
                 "pipelines: [{name: p, from: in, steps: [{filter: 'k > 0'}], to: out}]\n"
                 "sinks: [{name: out, type: blackhole}]\n");
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    eddy_value_t v[1] = {{.type = EDDY_TYPE_INT}};
    int64_t i = 0;
    double wall;
    do { /* a trickle of records for 2 s */
        v[0].u.i = i;
        push(&r, 0, v, i++);
        sleep_ms(1);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        wall = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    } while (wall < 2000);
    run_finish(&r);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) * 1e3 + (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
    eddy_memory_stats_t m;
    eddy_engine_memory_stats(r.eng, &m);
    print_message("heap looks: %llu in %.0f ms of wall time, %.0f ms of CPU; they took %llu ms\n",
                  (unsigned long long)m.heap_checks, wall, cpu,
                  (unsigned long long)m.heap_check_ms);
    assert_true(m.heap_checks >= 1);
    /* under 1% of the process's CPU time by design; 3% and one 10 ms look
     * of slack (the first look is taken before its cost is known) */
    assert_true((double)m.heap_check_ms <= cpu * 0.03 + 10);
    run_close(&r);
    for (size_t j = 1; j < n; j += 2)
        free(blocks[j]);
    free(blocks);
}

/* VmRSS of this process now, bytes. */
static int64_t rss_now(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    long long size = 0, res = 0;
    assert_int_equal(fscanf(f, "%lld %lld", &size, &res), 2);
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

/* Memory malloc keeps after a free (glibc's arenas: the soak's resident
 * memory grew while its live data stayed flat) is given back once the
 * process passes three quarters of the budget, before it could slow
 * input. */
static void freed_memory_is_given_back_before_it_slows_input(void **state) {
    (void)state;
    if (SANITIZED) { /* the sanitizer's allocator keeps its own books */
        print_message("skipped under a sanitizer\n");
        return;
    }
    malloc_trim(0); /* what the tests before left */
    int64_t base = rss_now();
    /* 16 KiB blocks (below the mmap threshold: from the arenas), all
     * touched, then every one but each 32nd freed: nothing merges into the
     * top of the heap, so glibc keeps the freed pages */
    const int64_t budget = 256 * MIB, want = budget / 100 * 85;
    if (base + 32 * MIB > want)
        fail_msg("the process already holds %lld MiB", (long long)(base / MIB));
    size_t n = (size_t)((want - base) / (16 * 1024));
    char **blocks = malloc(n * sizeof(char *));
    assert_non_null(blocks);
    for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(16 * 1024);
        assert_non_null(blocks[i]);
        memset(blocks[i], 1, 16 * 1024);
    }
    for (size_t i = 0; i < n; i++)
        if (i % 32) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
    int64_t held = rss_now();
    print_message("resident: %lld MiB before, %lld MiB with the freed blocks kept by malloc\n",
                  (long long)(base / MIB), (long long)(held / MIB));
    assert_true(held > budget / 4 * 3);
    assert_true(held < budget);
    run_t r;
    run_open(&r, "application: mem\n"
                 "settings: {threads: 1, memory.max.bytes: 256MiB, state.dir: '%%s'}\n"
                 "sources: [{name: in, type: host, schema: {k: int}}]\n"
                 "pipelines: [{name: p, from: in, steps: [{filter: 'k > 0'}], to: out}]\n"
                 "sinks: [{name: out, type: blackhole}]\n");
    eddy_value_t v[1] = {{.type = EDDY_TYPE_INT}};
    for (int i = 0; i < 500; i++) { /* a trickle for 0.5 s */
        v[0].u.i = i;
        push(&r, 0, v, i);
        sleep_ms(1);
    }
    run_finish(&r);
    eddy_memory_stats_t m;
    eddy_engine_memory_stats(r.eng, &m);
    int64_t after = rss_now();
    print_message("resident after: %lld MiB; early trims %llu, throttle events %llu\n",
                  (long long)(after / MIB), (unsigned long long)m.early_trims,
                  (unsigned long long)m.throttle_events);
    assert_true(m.early_trims >= 1);
    assert_int_equal(m.throttle_events, 0);
    assert_true(after < held - (held - base) / 2);
    run_close(&r);
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    free(blocks);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* first: VmHWM is the process's peak, and the others go higher */
        cmocka_unit_test(ten_million_keys_stay_under_the_budget_plus_a_fifth),
        cmocka_unit_test(a_state_share_over_three_quarters_is_a_config_error),
        cmocka_unit_test(a_full_exchange_holds_sources_back_and_loses_nothing),
        cmocka_unit_test(operator_state_over_the_budget_slows_input_and_loses_nothing),
        cmocka_unit_test(looks_at_a_fragmented_heap_stay_a_small_share),
        cmocka_unit_test(freed_memory_is_given_back_before_it_slows_input),
    };
    const char *only = getenv("EDDY_TEST_ONLY"); /* one test by name */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
