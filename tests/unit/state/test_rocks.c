/*
 * state/rocks.c: eddy's RocksDB layer. Reads and writes through batches,
 * atomicity across stores (CFs), what survives a close and what survives a
 * crash with the WAL disabled, ranges and seeks in byte order, snapshots,
 * CFs kept on reopen, errors that name the path, and the memory budget
 * split. Each test works in a fresh mkdtemp directory that it removes.
 *
 * Crashes are real: the test binary re-runs itself as a child
 * ("--crash-child") that writes and then SIGKILLs itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* cmocka needs the headers above first */
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/rocks.h"

extern char **environ;

#define MIB ((int64_t)1 << 20)

typedef struct {
    char root[64]; /* mkdtemp dir, removed by teardown */
    char dir[128]; /* root/db */
    char err[1024];
    eddy_rocks_env_t *env;
    eddy_rocks_t *open[8]; /* closed by teardown when a failed test left them */
    int nopen;
} fx_t;

static int setup(void **state) {
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->root, sizeof(fx->root), "/tmp/eddy-rocks-XXXXXX");
    if (!mkdtemp(fx->root)) {
        free(fx);
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/db", fx->root);
    fx->env = eddy__rocks_env_new(64 * MIB, 4, fx->err, sizeof(fx->err));
    if (!fx->env) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state) {
    fx_t *fx = *state;
    char err[512];
    for (int i = 0; i < fx->nopen; i++)
        eddy__rocks_close(fx->open[i]);
    eddy__rocks_env_destroy(fx->env);
    int rc = eddy__rocks_destroy_dir(fx->root, err, sizeof(err)) == EDDY_OK ? 0 : -1;
    free(fx);
    return rc;
}

static eddy_rocks_t *open_db(fx_t *fx, const char *dir, const char *const *cfs, int ncf) {
    eddy_rocks_t *db = eddy__rocks_open(fx->env, dir, cfs, ncf, fx->err, sizeof(fx->err));
    if (!db)
        fail_msg("open %s: %s", dir, fx->err);
    assert_true(fx->nopen < 8);
    fx->open[fx->nopen++] = db;
    return db;
}

static void close_db(fx_t *fx, eddy_rocks_t *db) {
    for (int i = 0; i < fx->nopen; i++) {
        if (fx->open[i] == db) {
            fx->open[i] = fx->open[--fx->nopen];
            break;
        }
    }
    eddy__rocks_close(db);
}

static void put(eddy_rocks_t *db, int cf, const char *k, const char *v) {
    char err[512];
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_put(b, db, cf, k, strlen(k), v, strlen(v));
    if (eddy__rocks_write(db, b, err, sizeof(err)) != EDDY_OK)
        fail_msg("write: %s", err);
    eddy__rocks_batch_destroy(b);
}

/* The value of k as a NUL-terminated string in buf, or NULL when absent. */
static const char *get(eddy_rocks_t *db, int cf, const char *k, eddy_buf_t *buf) {
    char err[512];
    bool found = true;
    if (eddy__rocks_get(db, cf, k, strlen(k), buf, &found, err, sizeof(err)) != EDDY_OK)
        fail_msg("get %s: %s", k, err);
    if (!found)
        return NULL;
    eddy_buf_putc(buf, 0);
    return buf->p;
}

static void assert_value(eddy_rocks_t *db, int cf, const char *k, const char *expect) {
    eddy_buf_t buf = {0};
    const char *v = get(db, cf, k, &buf);
    if (!expect && v)
        fail_msg("key %s: expected absent, found '%s'", k, v);
    if (expect && !v)
        fail_msg("key %s: expected '%s', absent", k, expect);
    if (expect)
        assert_string_equal(v, expect);
    eddy_buf_free(&buf);
}

/* ----------------------------------------------------------- read, write */

static void puts_and_deletes_in_batches_are_seen_by_get(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"counts"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 1);
    assert_int_equal(eddy__rocks_cf(db, "counts"), 0);
    assert_int_equal(eddy__rocks_cf(db, "nope"), -1);

    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_put(b, db, 0, "k1", 2, "one", 3);
    eddy__rocks_batch_put(b, db, 0, "k2", 2, "two", 3);
    eddy__rocks_batch_put(b, db, 0, "empty", 5, NULL, 0);
    assert_int_equal(eddy__rocks_batch_count(b), 3);
    assert_true(eddy__rocks_batch_bytes(b) > 0);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    eddy__rocks_batch_clear(b);
    assert_int_equal(eddy__rocks_batch_count(b), 0);

    /* The value buffer is overwritten, not appended to. */
    eddy_buf_t val = {0};
    eddy_buf_put(&val, "leftover-bytes", 14);
    bool found = false;
    assert_int_equal(eddy__rocks_get(db, 0, "k1", 2, &val, &found, fx->err, sizeof(fx->err)),
                     EDDY_OK);
    assert_true(found);
    assert_int_equal(val.len, 3);
    assert_memory_equal(val.p, "one", 3);
    /* An empty value is found, with length 0. */
    assert_int_equal(eddy__rocks_get(db, 0, "empty", 5, &val, &found, fx->err, sizeof(fx->err)),
                     EDDY_OK);
    assert_true(found);
    assert_int_equal(val.len, 0);
    eddy_buf_free(&val);

    eddy__rocks_batch_del(b, db, 0, "k1", 2);
    eddy__rocks_batch_put(b, db, 0, "k2", 2, "TWO", 3);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    assert_value(db, 0, "k1", NULL);
    assert_value(db, 0, "k2", "TWO");
    assert_value(db, 0, "never-written", NULL);

    /* An empty batch writes nothing and fails nothing. */
    eddy__rocks_batch_clear(b);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    eddy__rocks_batch_destroy(b);
    close_db(fx, db);
}

static void batch_across_two_cfs_lands_whole_and_survives_reopen(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"store", "positions"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 2);
    int st = eddy__rocks_cf(db, "store"), pos = eddy__rocks_cf(db, "positions");
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_put(b, db, st, "user1", 5, "42", 2);
    eddy__rocks_batch_put(b, db, pos, "p0", 2, "1000", 4);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    eddy__rocks_batch_destroy(b);
    close_db(fx, db);

    db = open_db(fx, fx->dir, cfs, 2);
    assert_value(db, eddy__rocks_cf(db, "store"), "user1", "42");
    assert_value(db, eddy__rocks_cf(db, "positions"), "p0", "1000");
    close_db(fx, db);
}

/* ---------------------------------------------------------------- crash */

static const char *const crash_cfs[] = {"store", "positions"};

/* Child: batch 1 (both CFs), optionally flush, batch 2 (both CFs), then die
 * as in a crash: no close, no exit handlers. */
static int crash_child(const char *dir, bool flush) {
    char err[1024];
    eddy_rocks_env_t *env = eddy__rocks_env_new(64 * MIB, 1, err, sizeof(err));
    eddy_rocks_t *db = env ? eddy__rocks_open(env, dir, crash_cfs, 2, err, sizeof(err)) : NULL;
    if (!db) {
        fprintf(stderr, "crash child: %s\n", err);
        return 2;
    }
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_put(b, db, 0, "k", 1, "v1", 2);
    eddy__rocks_batch_put(b, db, 1, "pos", 3, "100", 3);
    if (eddy__rocks_write(db, b, err, sizeof(err)) != EDDY_OK)
        return 3;
    if (flush && eddy__rocks_flush(db, err, sizeof(err)) != EDDY_OK) {
        fprintf(stderr, "crash child: %s\n", err);
        return 4;
    }
    eddy__rocks_batch_clear(b);
    eddy__rocks_batch_put(b, db, 0, "k", 1, "v2", 2);
    eddy__rocks_batch_put(b, db, 1, "pos", 3, "200", 3);
    if (eddy__rocks_write(db, b, err, sizeof(err)) != EDDY_OK)
        return 5;
    kill(getpid(), SIGKILL);
    return 6;
}

static void run_crash_child(const char *dir, bool flush) {
    char *argv[] = {"test_rocks", "--crash-child", (char *)dir, flush ? "flush" : "noflush", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (rc != 0)
        fail_msg("posix_spawn: %s", strerror(rc));
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("crash child did not reach its crash (status %d)", status);
}

/* The WAL is off: writes live only in memtables until a flush. A crash
 * after eddy__rocks_flush() keeps batch 1 in both CFs and loses batch 2;
 * without the flush the crash loses everything, which shows the WAL really
 * is disabled (with a WAL, both batches would be replayed). */
static void only_flushed_writes_survive_a_crash_because_the_wal_is_off(void **state) {
    fx_t *fx = *state;
    char flushed[160], unflushed[160];
    snprintf(flushed, sizeof(flushed), "%s/flushed", fx->root);
    snprintf(unflushed, sizeof(unflushed), "%s/unflushed", fx->root);
    run_crash_child(flushed, true);
    run_crash_child(unflushed, false);

    eddy_rocks_t *db = open_db(fx, flushed, crash_cfs, 2);
    assert_value(db, 0, "k", "v1");
    assert_value(db, 1, "pos", "100");
    close_db(fx, db);

    db = open_db(fx, unflushed, crash_cfs, 2);
    assert_value(db, 0, "k", NULL);
    assert_value(db, 1, "pos", NULL);
    close_db(fx, db);
}

/* ------------------------------------------------------------ iterators */

static void put_all(eddy_rocks_t *db, int cf, const char *const *keys, const size_t *lens, int n) {
    char err[512];
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    for (int i = 0; i < n; i++)
        eddy__rocks_batch_put(b, db, cf, keys[i], lens[i], "v", 1);
    if (eddy__rocks_write(db, b, err, sizeof(err)) != EDDY_OK)
        fail_msg("write: %s", err);
    eddy__rocks_batch_destroy(b);
}

static void assert_key(eddy_rocks_iter_t *it, const char *k, size_t kl) {
    if (!eddy__rocks_iter_valid(it))
        fail_msg("iterator ended, expected key '%.*s' (%zu bytes)", (int)kl, k, kl);
    size_t len = 0;
    const char *got = eddy__rocks_iter_key(it, &len);
    if (len != kl || memcmp(got, k, kl) != 0)
        fail_msg("key '%.*s' (%zu bytes), expected '%.*s' (%zu bytes)", (int)len, got, len, (int)kl,
                 k, kl);
}

static void iterator_walks_lower_to_upper_exclusive_in_byte_order(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 1);
    /* Written out of order; "a\0" sorts between "a" and "a\x01"; 0xff
     * sorts after 'b' (unsigned bytes). */
    const char *keys[] = {"b", "ab", "a\x01", "a", "a\0", "a\xff", "\x01", "bb", "c"};
    const size_t lens[] = {1, 2, 2, 1, 2, 2, 1, 2, 1};
    put_all(db, 0, keys, lens, 9);

    eddy_rocks_iter_t *it = eddy__rocks_iter_new(db, 0, "a", 1, "b", 1);
    assert_false(eddy__rocks_iter_valid(it)); /* not positioned yet */
    eddy__rocks_iter_seek_first(it);
    assert_key(it, "a", 1);
    eddy__rocks_iter_next(it);
    assert_key(it, "a\0", 2);
    eddy__rocks_iter_next(it);
    assert_key(it, "a\x01", 2);
    eddy__rocks_iter_next(it);
    assert_key(it, "ab", 2);
    eddy__rocks_iter_next(it);
    assert_key(it, "a\xff", 2);
    eddy__rocks_iter_next(it);
    assert_false(eddy__rocks_iter_valid(it)); /* "b" is the exclusive upper */
    assert_int_equal(eddy__rocks_iter_status(it, fx->err, sizeof(fx->err)), EDDY_OK);

    /* Seek: first key >= k, and never before lower. */
    eddy__rocks_iter_seek(it, "aa", 2);
    assert_key(it, "ab", 2);
    size_t vl = 0;
    assert_memory_equal(eddy__rocks_iter_value(it, &vl), "v", 1);
    assert_int_equal(vl, 1);
    eddy__rocks_iter_seek(it, "\x01", 1);
    assert_key(it, "a", 1);
    eddy__rocks_iter_seek(it, "b", 1);
    assert_false(eddy__rocks_iter_valid(it));

    /* Backwards. */
    eddy__rocks_iter_seek_last(it);
    assert_key(it, "a\xff", 2);
    eddy__rocks_iter_prev(it);
    assert_key(it, "ab", 2);
    eddy__rocks_iter_seek_for_prev(it, "a\x02", 2);
    assert_key(it, "a\x01", 2);
    eddy__rocks_iter_destroy(it);

    /* No upper bound: to the end; no lower: from the start. */
    it = eddy__rocks_iter_new(db, 0, "b", 1, NULL, 0);
    int n = 0;
    for (eddy__rocks_iter_seek_first(it); eddy__rocks_iter_valid(it); eddy__rocks_iter_next(it))
        n++;
    assert_int_equal(n, 3); /* b, bb, c */
    eddy__rocks_iter_destroy(it);
    it = eddy__rocks_iter_new(db, 0, NULL, 0, "a", 1);
    eddy__rocks_iter_seek_first(it);
    assert_key(it, "\x01", 1);
    eddy__rocks_iter_next(it);
    assert_false(eddy__rocks_iter_valid(it));
    eddy__rocks_iter_destroy(it);
    close_db(fx, db);
}

typedef struct {
    eddy_rocks_iter_t *it;
    int n;
} scan_t;

static void *scan_thread(void *arg) {
    scan_t *s = arg;
    for (eddy__rocks_iter_seek_first(s->it); eddy__rocks_iter_valid(s->it);
         eddy__rocks_iter_next(s->it)) {
        size_t vl = 0;
        const char *v = eddy__rocks_iter_value(s->it, &vl);
        if (vl == 3 && memcmp(v, "old", 3) == 0)
            s->n++;
        else
            s->n = -1000000; /* saw a write made after the iterator */
    }
    return NULL;
}

static void iterator_in_another_thread_sees_the_db_as_of_its_creation(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 1);
    char k[32];
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    for (int i = 0; i < 5000; i++) {
        int kl = snprintf(k, sizeof(k), "key%06d", i * 2);
        eddy__rocks_batch_put(b, db, 0, k, (size_t)kl, "old", 3);
    }
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);

    scan_t s = {.it = eddy__rocks_iter_new(db, 0, NULL, 0, NULL, 0)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, scan_thread, &s), 0);
    /* Meanwhile the owner overwrites, inserts and deletes. */
    for (int round = 0; round < 10; round++) {
        eddy__rocks_batch_clear(b);
        for (int i = round * 500; i < (round + 1) * 500; i++) {
            int kl = snprintf(k, sizeof(k), "key%06d", i * 2);
            eddy__rocks_batch_put(b, db, 0, k, (size_t)kl, "new", 3);
            kl = snprintf(k, sizeof(k), "key%06d", i * 2 + 1);
            eddy__rocks_batch_put(b, db, 0, k, (size_t)kl, "new", 3);
        }
        eddy__rocks_batch_del_range(b, db, 0, "key000000", 9, "key000100", 9);
        assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    }
    pthread_join(th, NULL);
    assert_int_equal(s.n, 5000);
    eddy__rocks_iter_destroy(s.it);
    eddy__rocks_batch_destroy(b);
    close_db(fx, db);
}

static void delete_range_removes_from_inclusive_to_exclusive(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s", "other"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 2);
    const char *keys[] = {"w1", "w2", "w2a", "w3", "w4"};
    const size_t lens[] = {2, 2, 3, 2, 2};
    put_all(db, 0, keys, lens, 5);
    put_all(db, 1, keys, lens, 5);
    /* Flushed first, so the tombstone must also hide keys in SST files. */
    assert_int_equal(eddy__rocks_flush(db, fx->err, sizeof(fx->err)), EDDY_OK);

    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_del_range(b, db, 0, "w2", 2, "w4", 2);
    assert_int_equal(eddy__rocks_batch_count(b), 1);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    eddy__rocks_batch_destroy(b);

    assert_value(db, 0, "w1", "v");
    assert_value(db, 0, "w2", NULL);
    assert_value(db, 0, "w2a", NULL);
    assert_value(db, 0, "w3", NULL);
    assert_value(db, 0, "w4", "v");
    assert_value(db, 1, "w3", "v"); /* other CFs untouched */
    eddy_rocks_iter_t *it = eddy__rocks_iter_new(db, 0, NULL, 0, NULL, 0);
    eddy__rocks_iter_seek_first(it);
    assert_key(it, "w1", 2);
    eddy__rocks_iter_next(it);
    assert_key(it, "w4", 2);
    eddy__rocks_iter_next(it);
    assert_false(eddy__rocks_iter_valid(it));
    eddy__rocks_iter_destroy(it);
    close_db(fx, db);
}

/* ------------------------------------------------------------ snapshots */

static void snapshot_opens_with_the_same_content_and_misses_later_writes(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"a", "b"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 2);
    put(db, 0, "x", "1");
    put(db, 1, "y", "2");
    put(db, 0, "gone-later", "3");

    char snap[160];
    snprintf(snap, sizeof(snap), "%s/snap", fx->root);
    assert_int_equal(eddy__rocks_snapshot(db, snap, fx->err, sizeof(fx->err)), EDDY_OK);
    /* The target must not exist. */
    assert_int_equal(eddy__rocks_snapshot(db, snap, fx->err, sizeof(fx->err)), EDDY_ERR_IO);
    assert_non_null(strstr(fx->err, snap));

    put(db, 0, "x", "changed");
    put(db, 1, "new", "4");
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    eddy__rocks_batch_del(b, db, 0, "gone-later", 10);
    assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
    eddy__rocks_batch_destroy(b);
    assert_int_equal(eddy__rocks_flush(db, fx->err, sizeof(fx->err)), EDDY_OK);

    eddy_rocks_t *copy = open_db(fx, snap, cfs, 2);
    assert_value(copy, 0, "x", "1");
    assert_value(copy, 1, "y", "2");
    assert_value(copy, 0, "gone-later", "3");
    assert_value(copy, 1, "new", NULL);
    /* Writes to the copy do not reach the original either. */
    put(copy, 1, "only-in-copy", "5");
    close_db(fx, copy);
    assert_value(db, 0, "x", "changed");
    assert_value(db, 0, "gone-later", NULL);
    assert_value(db, 1, "only-in-copy", NULL);
    close_db(fx, db);
}

/* --------------------------------------------------------- column families */

static void reopen_keeps_cfs_on_disk_that_were_not_named(void **state) {
    fx_t *fx = *state;
    const char *both[] = {"a", "b"};
    eddy_rocks_t *db = open_db(fx, fx->dir, both, 2);
    put(db, 1, "kb", "vb");
    close_db(fx, db);

    const char *only_a[] = {"a"};
    db = open_db(fx, fx->dir, only_a, 1);
    assert_int_equal(eddy__rocks_cf(db, "a"), 0); /* named CFs come first */
    int cb = eddy__rocks_cf(db, "b");
    assert_true(cb > 0);
    assert_true(eddy__rocks_cf(db, "default") > 0);
    assert_int_equal(eddy__rocks_ncf(db), 3);
    assert_string_equal(eddy__rocks_cf_name(db, cb), "b");
    assert_value(db, cb, "kb", "vb");
    close_db(fx, db);

    /* Still there when named again, in the caller's order. */
    const char *b_first[] = {"b", "a"};
    db = open_db(fx, fx->dir, b_first, 2);
    assert_int_equal(eddy__rocks_cf(db, "b"), 0);
    assert_value(db, 0, "kb", "vb");
    close_db(fx, db);
}

static void bad_store_lists_are_refused_with_a_reason(void **state) {
    fx_t *fx = *state;
    const char *dup[] = {"a", "a"};
    assert_null(eddy__rocks_open(fx->env, fx->dir, dup, 2, fx->err, sizeof(fx->err)));
    assert_non_null(strstr(fx->err, "store 'a' named twice"));
    const char *empty[] = {""};
    assert_null(eddy__rocks_open(fx->env, fx->dir, empty, 1, fx->err, sizeof(fx->err)));
    assert_non_null(strstr(fx->err, "has no name"));
}

/* ---------------------------------------------------------------- errors */

static void open_under_a_regular_file_fails_naming_the_path(void **state) {
    fx_t *fx = *state;
    /* chmod would not stop root; a regular file as parent stops everyone. */
    char file[160], dir[200];
    snprintf(file, sizeof(file), "%s/plainfile", fx->root);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(dir, sizeof(dir), "%s/task-0/db", file);

    const char *cfs[] = {"s"};
    fx->err[0] = 0;
    assert_null(eddy__rocks_open(fx->env, dir, cfs, 1, fx->err, sizeof(fx->err)));
    char expect[300];
    snprintf(expect, sizeof(expect), "state: cannot open RocksDB at %s: IO error: ", dir);
    if (strncmp(fx->err, expect, strlen(expect)) != 0)
        fail_msg("error '%s' does not start with '%s'", fx->err, expect);
    assert_non_null(strstr(fx->err, "Not a directory"));
    /* A failed open leaves the env with no DB to account for. */
    assert_true(eddy__rocks_env_usage_bytes(fx->env) >= 0);
}

static void destroy_dir_removes_the_db_and_accepts_a_missing_dir(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 1);
    put(db, 0, "k", "v");
    assert_int_equal(eddy__rocks_flush(db, fx->err, sizeof(fx->err)), EDDY_OK);
    close_db(fx, db);

    struct stat st;
    assert_int_equal(stat(fx->dir, &st), 0);
    assert_int_equal(eddy__rocks_destroy_dir(fx->dir, fx->err, sizeof(fx->err)), EDDY_OK);
    assert_int_equal(stat(fx->dir, &st), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(eddy__rocks_destroy_dir(fx->dir, fx->err, sizeof(fx->err)), EDDY_OK);

    db = open_db(fx, fx->dir, cfs, 1); /* a fresh, empty DB */
    assert_value(db, 0, "k", NULL);
    close_db(fx, db);
}

/* ------------------------------------------------------------ memory budget */

static void env_splits_the_budget_between_cache_and_task_memtables(void **state) {
    (void)state;
    char err[512];
    eddy_rocks_env_t *env = eddy__rocks_env_new(64 * MIB, 4, err, sizeof(err));
    assert_non_null(env);
    int64_t cache = eddy__rocks_env_cache_bytes(env);
    int64_t mt = eddy__rocks_env_memtable_bytes_per_db(env);
    assert_true(cache > 0 && mt > 0);
    assert_true(cache + 4 * mt <= 64 * MIB);
    assert_true(cache + 4 * mt > 60 * MIB); /* and the budget is used */
    assert_true(mt >= 4 * MIB);
    eddy__rocks_env_destroy(env);

    /* More tasks, same budget: smaller shares, same total. */
    env = eddy__rocks_env_new(64 * MIB, 16, err, sizeof(err));
    assert_non_null(env);
    assert_true(eddy__rocks_env_cache_bytes(env) +
                    16 * eddy__rocks_env_memtable_bytes_per_db(env) <=
                64 * MIB);
    assert_true(eddy__rocks_env_memtable_bytes_per_db(env) < mt);
    eddy__rocks_env_destroy(env);

    assert_null(eddy__rocks_env_new(8 * MIB, 1, err, sizeof(err)));
    assert_non_null(strstr(err, "must be at least 16777216 (16 MiB)"));
    /* A budget that cannot hold the tasks is refused, not overrun. */
    assert_null(eddy__rocks_env_new(16 * MIB, 1000, err, sizeof(err)));
    assert_non_null(strstr(err, "too small for 1000 tasks"));
    assert_non_null(strstr(err, "must be at least 524288000"));
    assert_null(eddy__rocks_env_new(64 * MIB, 0, err, sizeof(err)));
}

/* A write-heavy task over several stores keeps its memtables within its
 * share of the budget, and the whole env stays within the budget. */
static void memtables_stay_within_the_task_share_under_heavy_writes(void **state) {
    fx_t *fx = *state;
    char err[512];
    /* 16 MiB over 4 tasks: 2 MiB of memtables per task, 8 MiB of cache. */
    eddy_rocks_env_t *env = eddy__rocks_env_new(16 * MIB, 4, err, sizeof(err));
    assert_non_null(env);
    int64_t share = eddy__rocks_env_memtable_bytes_per_db(env);
    assert_int_equal(share, 2 * MIB);
    const char *cfs[] = {"s1", "s2", "s3", "s4"};
    eddy_rocks_t *db = eddy__rocks_open(env, fx->dir, cfs, 4, err, sizeof(err));
    if (!db)
        fail_msg("open: %s", err);

    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    char k[32], v[64];
    memset(v, 'x', sizeof(v));
    uint64_t max_mt = 0;
    size_t max_batch = 0;
    int64_t max_usage = 0;
    uint32_t rnd = 12345;
    for (int round = 0; round < 300; round++) {
        eddy__rocks_batch_clear(b);
        for (int i = 0; i < 500; i++) {
            rnd = rnd * 1103515245u + 12345u;
            int kl = snprintf(k, sizeof(k), "%08x", rnd);
            /* Skewed: s1 takes most of the writes. */
            int cf = (rnd >> 8) % 8 < 5 ? 0 : 1 + (int)((rnd >> 12) % 3);
            eddy__rocks_batch_put(b, db, cf, k, (size_t)kl, v, sizeof(v));
        }
        if (eddy__rocks_batch_bytes(b) > max_batch)
            max_batch = eddy__rocks_batch_bytes(b);
        if (eddy__rocks_write(db, b, err, sizeof(err)) != EDDY_OK)
            fail_msg("write: %s", err);
        uint64_t mt = eddy__rocks_memtable_bytes(db);
        if (mt > max_mt)
            max_mt = mt;
        int64_t usage = eddy__rocks_env_usage_bytes(env);
        if (usage > max_usage)
            max_usage = usage;
    }
    /* ~13 MB were written: far more than the share, so flushes happened. */
    uint64_t sst = 0;
    for (int i = 0; i < 4; i++)
        sst += eddy__rocks_size_bytes(db, i);
    assert_true(sst > (uint64_t)share);
    print_message("memtables peak %" PRIu64 " bytes of a %" PRId64 " share (batch %zu); "
                  "env usage peak %" PRId64 " of %" PRId64 "\n",
                  max_mt, share, max_batch, max_usage, (int64_t)16 * MIB);
    /* A memtable takes a batch whole, so allow one batch over the share. */
    assert_true(max_mt <= (uint64_t)share + max_batch);
    assert_true(max_usage <= 16 * MIB);
    eddy__rocks_batch_destroy(b);
    eddy__rocks_close(db);
    eddy__rocks_env_destroy(env);
}

/* --------------------------------------------------------------- metrics */

static void estimate_keys_is_close_after_10000_keys_and_a_flush(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s", "empty"};
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 2);
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    char k[32];
    for (int i = 0; i < 10000; i++) {
        int kl = snprintf(k, sizeof(k), "key-%05d", i);
        eddy__rocks_batch_put(b, db, 0, k, (size_t)kl, "0123456789abcdef", 16);
        if (eddy__rocks_batch_count(b) == 1000) {
            assert_int_equal(eddy__rocks_write(db, b, fx->err, sizeof(fx->err)), EDDY_OK);
            eddy__rocks_batch_clear(b);
        }
    }
    eddy__rocks_batch_destroy(b);
    assert_int_equal(eddy__rocks_flush(db, fx->err, sizeof(fx->err)), EDDY_OK);
    uint64_t n = eddy__rocks_estimate_keys(db, 0);
    if (n < 9000 || n > 11000)
        fail_msg("estimate-num-keys %" PRIu64 ", expected about 10000", n);
    assert_int_equal(eddy__rocks_estimate_keys(db, 1), 0);
    /* 10,000 x (9 + 16) bytes of data live on disk now. */
    uint64_t size = eddy__rocks_size_bytes(db, 0);
    if (size < 100000 || size > 2000000)
        fail_msg("size %" PRIu64 " bytes for 250 kB of keys and values", size);
    close_db(fx, db);
}

static void compression_falls_back_to_none_when_the_build_lacks_it(void **state) {
    fx_t *fx = *state;
    const char *cfs[] = {"s"};
    /* Debian's build links LZ4. */
    eddy_rocks_t *db = open_db(fx, fx->dir, cfs, 1);
    assert_string_equal(eddy__rocks_env_compression(fx->env), "LZ4");
    close_db(fx, db);

    /* Xpress exists only in Windows builds of RocksDB. */
    char other[160];
    snprintf(other, sizeof(other), "%s/xpress", fx->root);
    eddy__rocks_env_set_compression(fx->env, 6 /* rocksdb_xpress_compression */);
    db = open_db(fx, other, cfs, 1);
    assert_string_equal(eddy__rocks_env_compression(fx->env), "none");
    put(db, 0, "k", "v");
    assert_int_equal(eddy__rocks_flush(db, fx->err, sizeof(fx->err)), EDDY_OK);
    assert_value(db, 0, "k", "v");
    close_db(fx, db);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], strcmp(argv[3], "flush") == 0);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(puts_and_deletes_in_batches_are_seen_by_get, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(batch_across_two_cfs_lands_whole_and_survives_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(only_flushed_writes_survive_a_crash_because_the_wal_is_off,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(iterator_walks_lower_to_upper_exclusive_in_byte_order,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(iterator_in_another_thread_sees_the_db_as_of_its_creation,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(delete_range_removes_from_inclusive_to_exclusive, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            snapshot_opens_with_the_same_content_and_misses_later_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen_keeps_cfs_on_disk_that_were_not_named, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_store_lists_are_refused_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(open_under_a_regular_file_fails_naming_the_path, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(destroy_dir_removes_the_db_and_accepts_a_missing_dir, setup,
                                        teardown),
        cmocka_unit_test(env_splits_the_budget_between_cache_and_task_memtables),
        cmocka_unit_test_setup_teardown(memtables_stay_within_the_task_share_under_heavy_writes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(estimate_keys_is_close_after_10000_keys_and_a_flush, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(compression_falls_back_to_none_when_the_build_lacks_it,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
