/*
 * Store semantics: key-value read-your-writes and persistence across a
 * commit and reopen; window ranges in time order and retention; session
 * lookups for merging; the append-only log; the write cache's budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy_int.h"
#include "state/store.h"
#include "state/tstate.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    char dir[64];
    eddy_state_env_t *env;
    eddy_tstate_t *ts;
    eddy_store_def_t defs[4];
    uint64_t commit;
    int64_t budget;
} fx_t;

static void fx_open(fx_t *f) {
    char err[1024];
    eddy_state_conf_t sc = {.dir = f->dir, .application = "t",
                            .memory_bytes = f->budget ? f->budget : 64 * 1024 * 1024,
                            .checkpoint_interval_ms = INT64_MAX / 4, .ntasks = 1, .nstores = 4};
    f->env = eddy__state_env_new(&sc, err, sizeof(err));
    if (!f->env)
        fail_msg("env: %s", err);
    const eddy_store_def_t *d[4] = {&f->defs[0], &f->defs[1], &f->defs[2], &f->defs[3]};
    f->ts = eddy__tstate_open(f->env, 0, d, 4, err, sizeof(err));
    if (!f->ts)
        fail_msg("open: %s", err);
}

static void fx_close(fx_t *f) {
    eddy__tstate_close(f->ts);
    eddy__state_env_destroy(f->env);
    f->ts = NULL;
    f->env = NULL;
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy_store_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    static char *names[] = {"kv", "win", "sess", "log"};
    eddy_store_kind_t kinds[] = {EDDY_STORE_KV, EDDY_STORE_WINDOW, EDDY_STORE_SESSION,
                                 EDDY_STORE_LOG};
    for (int i = 0; i < 4; i++) {
        f->defs[i].name = names[i];
        f->defs[i].kind = kinds[i];
        f->defs[i].segment_ms = 10;
        f->defs[i].retention_ms = 20;
    }
    *state = f;
    fx_open(f);
    return 0;
}

static int teardown(void **state) {
    fx_t *f = *state;
    if (f->ts)
        fx_close(f);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    int rc = system(cmd);
    free(f);
    return rc ? -1 : 0;
}

static void commit(fx_t *f, bool checkpoint) {
    char err[1024];
    f->commit++;
    assert_int_equal(eddy__tstate_prepare(f->ts, f->commit, "pos", 3, 0, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__state_env_mark(f->env, f->commit, err, sizeof(err)), EDDY_OK);
    assert_int_equal(eddy__tstate_finish(f->ts, checkpoint, err, sizeof(err)), EDDY_OK);
}

static bool kv_get(fx_t *f, const char *k, char *out, size_t n) {
    const char *v;
    size_t vl;
    bool found;
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    assert_int_equal(eddy__store_get(st, k, strlen(k), &v, &vl, &found), EDDY_OK);
    if (found)
        snprintf(out, n, "%.*s", (int)vl, v);
    return found;
}

static void kv_reads_its_own_writes_and_keeps_them_after_commit_and_reopen(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    char v[64];
    assert_false(kv_get(f, "a", v, sizeof(v)));
    eddy__store_put(st, "a", 1, "1", 1);
    eddy__store_put(st, "a", 1, "22", 2); /* a hot key: the newest value wins */
    eddy__store_put(st, "b", 1, "3", 1);
    assert_true(kv_get(f, "a", v, sizeof(v)));
    assert_string_equal(v, "22");
    eddy__store_del(st, "b", 1);
    assert_false(kv_get(f, "b", v, sizeof(v)));
    commit(f, false);
    fx_close(f);
    fx_open(f);
    assert_true(kv_get(f, "a", v, sizeof(v)));
    assert_string_equal(v, "22");
    assert_false(kv_get(f, "b", v, sizeof(v)));
}

/* A cache entry keeps a small value next to its key and moves it to a
 * buffer of its own when it outgrows that room: every size, in any order,
 * reads back whole, before and after a commit. */
static void values_read_back_whole_as_they_grow_and_shrink(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    static const size_t sizes[] = {5, 7, 8, 9, 31, 33, 250, 300, 3, 0, 1000, 12};
    char big[1100], got[1100];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    assert_false(kv_get(f, "m", got, sizeof(got))); /* a miss first: room reserved */
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            big[sizes[i]] = 0;
            eddy__store_put(st, "m", 1, big, sizes[i]);
            eddy__store_put(st, "n", 1, big, sizes[i]); /* made by a put */
            if (i == 5)
                eddy__store_del(st, "d", 1); /* made by a delete */
            if (i == 6)
                eddy__store_put(st, "d", 1, big, sizes[i]);
            assert_true(kv_get(f, "m", got, sizeof(got)));
            assert_string_equal(got, big);
            assert_true(kv_get(f, "n", got, sizeof(got)));
            assert_string_equal(got, big);
            big[sizes[i]] = (char)('a' + sizes[i] % 26);
        }
        commit(f, false);
    }
    fx_close(f);
    fx_open(f);
    big[12] = 0;
    assert_true(kv_get(f, "m", got, sizeof(got)));
    assert_string_equal(got, big);
    big[12] = (char)('a' + 12 % 26);
    big[250] = 0;
    assert_true(kv_get(f, "d", got, sizeof(got)));
    assert_string_equal(got, big);
}

static void uncommitted_writes_are_gone_after_reopen(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    eddy__store_put(st, "k", 1, "old", 3);
    commit(f, false);
    eddy__store_put(st, "k", 1, "new", 3);
    fx_close(f);
    fx_open(f);
    char v[16];
    assert_true(kv_get(f, "k", v, sizeof(v)));
    assert_string_equal(v, "old");
}

typedef struct {
    int n;
    int64_t ts[32], ts2[32];
    char val[32][16];
} seen_t;

static eddy_err_t collect(void *opaque, int64_t ts, int64_t ts2, const char *v, size_t vl) {
    seen_t *s = opaque;
    if (s->n < 32) {
        s->ts[s->n] = ts;
        s->ts2[s->n] = ts2;
        snprintf(s->val[s->n], sizeof(s->val[0]), "%.*s", (int)vl, v);
        s->n++;
    }
    return EDDY_OK;
}

static void window_fetch_returns_a_keys_windows_in_time_order_within_the_range(void **state) {
    fx_t *f = *state;
    eddy_store_t *w = eddy__tstate_store(f->ts, 1);
    int64_t starts[] = {30, 0, 20, 10, 40};
    for (int i = 0; i < 5; i++) {
        char v[8];
        snprintf(v, sizeof(v), "a%lld", (long long)starts[i]);
        eddy__store_tput(w, "A", 1, starts[i], 0, v, strlen(v));
        eddy__store_tput(w, "AB", 2, starts[i], 0, "x", 1); /* a key with A as prefix */
    }
    commit(f, false); /* half in RocksDB ... */
    eddy__store_tput(w, "A", 1, 15, 0, "a15", 3); /* ... half in the cache */
    eddy__store_tdel(w, "A", 1, 30, 0);
    seen_t s = {0};
    assert_int_equal(eddy__store_fetch(w, "A", 1, 10, 40, collect, &s), EDDY_OK);
    assert_int_equal(s.n, 4);
    int64_t want[] = {10, 15, 20, 40};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s.ts[i], want[i]);
    assert_string_equal(s.val[1], "a15");
}

static void window_retention_drops_whole_expired_segments(void **state) {
    fx_t *f = *state;
    eddy_store_t *w = eddy__tstate_store(f->ts, 1);
    for (int64_t t = 0; t < 100; t += 5)
        eddy__store_tput(w, "K", 1, t, 0, "v", 1);
    commit(f, false);
    /* segment 10 ms, retention 20 ms: at time 100, segments ending at or
     * before 80 are gone */
    assert_int_equal(eddy__store_expire(w, 100), EDDY_OK);
    seen_t s = {0};
    eddy__store_fetch(w, "K", 1, 0, 200, collect, &s);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ts[0], 80);
    commit(f, false);
    fx_close(f);
    fx_open(f);
    w = eddy__tstate_store(f->ts, 1);
    memset(&s, 0, sizeof(s));
    eddy__store_fetch(w, "K", 1, 0, 200, collect, &s);
    assert_int_equal(s.n, 4); /* the expiry was committed too */
}

static void session_lookup_finds_the_sessions_a_record_would_merge(void **state) {
    fx_t *f = *state;
    eddy_store_t *ss = eddy__tstate_store(f->ts, 2);
    /* sessions [0,10], [20,30], [50,60] of key S (ts = end, ts2 = start) */
    eddy__store_tput(ss, "S", 1, 10, 0, "s1", 2);
    eddy__store_tput(ss, "S", 1, 30, 20, "s2", 2);
    eddy__store_tput(ss, "S", 1, 60, 50, "s3", 2);
    eddy__store_tput(ss, "T", 1, 25, 15, "t1", 2);
    commit(f, false);
    seen_t s = {0};
    /* a record at 15 with gap 7 touches [8, 22]: the first two sessions */
    assert_int_equal(eddy__store_find_sessions(ss, "S", 1, 8, 22, collect, &s), EDDY_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.val[0], "s1");
    assert_string_equal(s.val[1], "s2");
    /* merging: remove both, put the merged session */
    eddy__store_tdel(ss, "S", 1, 10, 0);
    eddy__store_tdel(ss, "S", 1, 30, 20);
    eddy__store_tput(ss, "S", 1, 30, 0, "m", 1);
    memset(&s, 0, sizeof(s));
    eddy__store_find_sessions(ss, "S", 1, 0, 100, collect, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.val[0], "m");
    assert_int_equal(s.ts2[0], 0);
    assert_string_equal(s.val[1], "s3");
}

static void log_keeps_every_append_in_order_even_at_equal_times(void **state) {
    fx_t *f = *state;
    eddy_store_t *lg = eddy__tstate_store(f->ts, 3);
    eddy__store_append(lg, "c", 1, 5, "first", 5);
    eddy__store_append(lg, "c", 1, 5, "second", 6);
    eddy__store_append(lg, "c", 1, 3, "earlier", 7);
    seen_t s = {0};
    eddy__store_fetch(lg, "c", 1, 0, 10, collect, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.val[0], "earlier");
    assert_string_equal(s.val[1], "first");
    assert_string_equal(s.val[2], "second");
}

/* State memory of 32 MiB: a quarter, 8 MiB, for the caches of the 4
 * stores (2 MiB shares); commits trim them to 4 MiB. */
static eddy_store_t *reopen_with_8mib_of_cache(fx_t *f) {
    fx_close(f);
    f->budget = 32 * 1024 * 1024;
    fx_open(f);
    return eddy__tstate_store(f->ts, 0);
}

static void cache_over_budget_asks_for_a_commit_and_a_commit_relieves_it(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = reopen_with_8mib_of_cache(f);
    assert_false(eddy__tstate_wants_commit(f->ts));
    char k[32], v[256];
    memset(v, 'v', sizeof(v));
    int i = 0;
    while (!eddy__tstate_wants_commit(f->ts) && i < 100000) {
        snprintf(k, sizeof(k), "key-%08d", i++);
        eddy__store_put(st, k, strlen(k), v, sizeof(v));
    }
    assert_true(eddy__tstate_wants_commit(f->ts));
    assert_true(i < 100000);
    commit(f, false);
    assert_false(eddy__tstate_wants_commit(f->ts));
    char got[300];
    snprintf(k, sizeof(k), "key-%08d", 0);
    assert_true(kv_get(f, k, got, sizeof(got)));
}

static void put_keys(eddy_store_t *st, const char *prefix, int from, int to) {
    char k[32], v[200];
    memset(v, 'v', sizeof(v));
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "%s-%08d", prefix, i);
        eddy__store_put(st, k, strlen(k), v, sizeof(v));
    }
}

/* Reads of keys prefix-[from, to): how many the cache answered. */
static uint64_t cached_reads(fx_t *f, eddy_store_t *st, const char *prefix, int from, int to) {
    eddy_store_metrics_t m0, m1;
    eddy__store_metrics(st, &m0);
    char k[32], got[300];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "%s-%08d", prefix, i);
        assert_true(kv_get(f, k, got, sizeof(got)));
    }
    eddy__store_metrics(st, &m1);
    return m1.cache_hits - m0.cache_hits;
}

/* The stores of a task share their cache budget: one store may hold more
 * than its share while the others hold less, and only the total forces a
 * commit. */
static void stores_of_a_task_share_one_cache_budget(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = reopen_with_8mib_of_cache(f);
    put_keys(st, "k", 0, 16384); /* about 4 MiB: twice its share */
    assert_false(eddy__tstate_wants_commit(f->ts));
    int i = 16384;
    while (!eddy__tstate_wants_commit(f->ts) && i < 100000) {
        put_keys(st, "k", i, i + 1);
        i++;
    }
    assert_true(eddy__tstate_wants_commit(f->ts));
    eddy_store_metrics_t m;
    eddy__store_metrics(st, &m);
    assert_true(m.cache_bytes > 6 * 1024 * 1024);
}

/* A commit over half the budget gives back the entries unused the longest
 * and keeps those in use: after it, the keys read since the previous
 * commit are still answered from the cache. */
static void a_commit_over_half_the_budget_keeps_the_entries_in_use(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = reopen_with_8mib_of_cache(f);
    put_keys(st, "old", 0, 20000); /* about 4.7 MiB */
    commit(f, false);
    eddy_store_metrics_t m;
    eddy__store_metrics(st, &m);
    assert_true(m.cache_bytes <= 4 * 1024 * 1024);
    assert_true(m.cache_bytes > 3 * 1024 * 1024); /* trimmed, not emptied */
    cached_reads(f, st, "old", 0, 2000);           /* in use (read back if evicted) */
    put_keys(st, "new", 0, 10000);                 /* about 2.3 MiB more */
    commit(f, false);
    assert_int_equal(cached_reads(f, st, "old", 0, 2000), 2000);
    /* the cold ones went first: most of them must be read from RocksDB */
    assert_true(cached_reads(f, st, "old", 2000, 20000) < 9000);
}

/* Entries read back from RocksDB (after a reopen nothing is cached) keep
 * their own keys: the iterator must not advance RocksDB before the caller
 * has used the key it returned (RocksDB may reuse its key buffer). */
static void iteration_over_rocksdb_pairs_each_key_with_its_own_value(void **state) {
    fx_t *f = *state;
    eddy_store_t *w = eddy__tstate_store(f->ts, 1);
    for (int64_t t = 0; t < 20; t++) {
        char v[16];
        snprintf(v, sizeof(v), "v%lld", (long long)t);
        eddy__store_tput(w, "key", 3, t, 0, v, strlen(v));
    }
    commit(f, false);
    fx_close(f);
    fx_open(f);
    w = eddy__tstate_store(f->ts, 1);
    seen_t s = {0};
    assert_int_equal(eddy__store_fetch(w, "key", 3, 0, 19, collect, &s), EDDY_OK);
    assert_int_equal(s.n, 20);
    for (int i = 0; i < 20; i++) {
        char want[16];
        snprintf(want, sizeof(want), "v%d", i);
        assert_int_equal(s.ts[i], i);
        assert_string_equal(s.val[i], want);
    }
}

static void merged_iteration_hides_rows_deleted_since_the_last_commit(void **state) {
    fx_t *f = *state;
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    eddy__store_put(st, "a", 1, "1", 1);
    eddy__store_put(st, "b", 1, "2", 1);
    eddy__store_put(st, "c", 1, "3", 1);
    commit(f, false);
    eddy__store_del(st, "b", 1);
    eddy__store_put(st, "bb", 2, "4", 1);
    eddy_store_iter_t *it = eddy__store_iter(st, "a", 1, "z", 1);
    const char *k, *v;
    size_t kl, vl;
    char keys[64] = "";
    while (eddy__store_iter_next(it, &k, &kl, &v, &vl))
        snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%.*s,", (int)kl, k);
    assert_int_equal(eddy__store_iter_destroy(it), EDDY_OK);
    assert_string_equal(keys, "a,bb,c,");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(kv_reads_its_own_writes_and_keeps_them_after_commit_and_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(values_read_back_whole_as_they_grow_and_shrink, setup, teardown),
        cmocka_unit_test_setup_teardown(uncommitted_writes_are_gone_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(window_fetch_returns_a_keys_windows_in_time_order_within_the_range, setup, teardown),
        cmocka_unit_test_setup_teardown(window_retention_drops_whole_expired_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(session_lookup_finds_the_sessions_a_record_would_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(log_keeps_every_append_in_order_even_at_equal_times, setup, teardown),
        cmocka_unit_test_setup_teardown(cache_over_budget_asks_for_a_commit_and_a_commit_relieves_it, setup, teardown),
        cmocka_unit_test_setup_teardown(stores_of_a_task_share_one_cache_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(a_commit_over_half_the_budget_keeps_the_entries_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(merged_iteration_hides_rows_deleted_since_the_last_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(iteration_over_rocksdb_pairs_each_key_with_its_own_value, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
