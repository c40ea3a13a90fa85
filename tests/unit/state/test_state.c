/*
 * Restore: whatever happened to the local files, a task comes back with
 * exactly the acknowledged state and positions, or refuses to start with a
 * clear message; it never silently starts from a reset state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy_int.h"
#include "state/store.h"
#include "state/tstate.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
    char dir[64];
    eddy_state_env_t *env;
    eddy_tstate_t *ts;
    eddy_store_def_t def;
    uint64_t commit;
    char err[1024];
} fx_t;

static bool fx_open(fx_t *f) {
    eddy_state_conf_t sc = {.dir = f->dir, .application = "t", .memory_bytes = 64 << 20,
                            .checkpoint_interval_ms = INT64_MAX / 4, .ntasks = 1, .nstores = 1,
                            .segment_bytes = 4096};
    f->env = eddy__state_env_new(&sc, f->err, sizeof(f->err));
    if (!f->env)
        return false;
    const eddy_store_def_t *d[1] = {&f->def};
    f->ts = eddy__tstate_open(f->env, 0, d, 1, f->err, sizeof(f->err));
    if (!f->ts) {
        eddy__state_env_destroy(f->env);
        f->env = NULL;
        return false;
    }
    f->commit = eddy__state_env_committed(f->env);
    return true;
}

static void fx_close(fx_t *f) {
    eddy__tstate_close(f->ts);
    eddy__state_env_destroy(f->env);
    f->ts = NULL;
    f->env = NULL;
}

static int setup(void **state) {
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/eddy_state_XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->def.name = "counts";
    f->def.kind = EDDY_STORE_KV;
    *state = f;
    return fx_open(f) ? 0 : -1;
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

/* Write keys k0..k(n-1) = "<round>" and commit with positions "pos<round>". */
static void round_(fx_t *f, int n, bool checkpoint) {
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    f->commit++;
    char k[32], v[32], pos[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        snprintf(v, sizeof(v), "%llu", (unsigned long long)f->commit);
        eddy__store_put(st, k, strlen(k), v, strlen(v));
    }
    snprintf(pos, sizeof(pos), "pos%llu", (unsigned long long)f->commit);
    assert_int_equal(eddy__tstate_prepare(f->ts, f->commit, pos, strlen(pos), 0, f->err,
                                          sizeof(f->err)),
                     EDDY_OK);
    assert_int_equal(eddy__state_env_mark(f->env, f->commit, f->err, sizeof(f->err)), EDDY_OK);
    assert_int_equal(eddy__tstate_finish(f->ts, checkpoint, f->err, sizeof(f->err)), EDDY_OK);
}

/* Every key k0..k(n-1) holds `want`, and positions are "pos<want>". */
static void expect_state(fx_t *f, int n, unsigned long long want) {
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    char k[32], w[32];
    snprintf(w, sizeof(w), "%llu", want);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        const char *v;
        size_t vl;
        bool found;
        assert_int_equal(eddy__store_get(st, k, strlen(k), &v, &vl, &found), EDDY_OK);
        if (!found || vl != strlen(w) || memcmp(v, w, vl))
            fail_msg("key %s: want %s, got %s%.*s", k, w, found ? "" : "(absent)",
                     found ? (int)vl : 0, found ? v : "");
    }
    size_t plen = 0;
    const char *p = eddy__tstate_positions(f->ts, &plen);
    snprintf(w, sizeof(w), "pos%llu", want);
    assert_non_null(p);
    assert_int_equal(plen, strlen(w));
    assert_memory_equal(p, w, plen);
}

static void rm_rf(const char *path) {
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static void state_and_positions_come_back_after_a_clean_reopen(void **state) {
    fx_t *f = *state;
    round_(f, 100, false);
    round_(f, 100, true);
    fx_close(f);
    assert_true(fx_open(f));
    expect_state(f, 100, 2);
}

/* A consumer group moves a partition away and back while the engine runs:
 * the task closes and opens again under the same env, in a state
 * directory whose COMMITTED this env wrote itself. */
static void task_reopened_under_the_env_that_created_the_directory(void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    round_(f, 10, true);
    assert_int_equal(eddy__tstate_mark_closed(f->ts, f->err, sizeof(f->err)), EDDY_OK);
    eddy__tstate_close(f->ts);
    const eddy_store_def_t *d[1] = {&f->def};
    f->ts = eddy__tstate_open(f->env, 0, d, 1, f->err, sizeof(f->err));
    if (!f->ts)
        fail_msg("reopen: %s", f->err);
    expect_state(f, 10, 2);
}

static void lost_local_store_is_rebuilt_from_snapshot_and_changelog(void **state) {
    fx_t *f = *state;
    round_(f, 200, true);  /* checkpoint + snapshot */
    round_(f, 200, false); /* only in the changelog and the live store */
    round_(f, 200, false);
    fx_close(f);
    char p[128];
    snprintf(p, sizeof(p), "%s/t/task-0/db", f->dir);
    rm_rf(p);
    assert_true(fx_open(f));
    expect_state(f, 200, 3);
}

static void without_a_checkpoint_a_lost_store_is_replayed_from_the_whole_changelog(void **state) {
    fx_t *f = *state;
    for (int i = 0; i < 5; i++)
        round_(f, 50, false);
    fx_close(f);
    char p[128];
    snprintf(p, sizeof(p), "%s/t/task-0/db", f->dir);
    rm_rf(p);
    assert_true(fx_open(f));
    expect_state(f, 50, 5);
}

static void corrupt_checkpoint_file_is_not_trusted_and_state_is_still_exact(void **state) {
    fx_t *f = *state;
    round_(f, 100, true);
    round_(f, 100, true);
    round_(f, 100, false);
    fx_close(f);
    char p[128];
    snprintf(p, sizeof(p), "%s/t/task-0/checkpoint", f->dir);
    int fd = open(p, O_RDWR);
    assert_true(fd >= 0);
    char c;
    assert_int_equal(pread(fd, &c, 1, 10), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, 10), 1);
    close(fd);
    assert_true(fx_open(f));
    expect_state(f, 100, 3);
}

static void prepared_but_unacknowledged_commit_is_rolled_back(void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    /* round 2: prepared (durable in the changelog) but never acknowledged */
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    eddy__store_put(st, "k0", 2, "999", 3);
    assert_int_equal(eddy__tstate_prepare(f->ts, 2, "pos2", 4, 0, f->err, sizeof(f->err)), EDDY_OK);
    fx_close(f);
    assert_true(fx_open(f));
    expect_state(f, 10, 1);
    /* and work goes on from there */
    round_(f, 10, false);
    fx_close(f);
    assert_true(fx_open(f));
    expect_state(f, 10, 2);
}

/* A consumer group assigns partitions some time after start, and the
 * engine commits rounds meanwhile: the restarted process acknowledges
 * round numbers that the crashed one had only prepared. A task opened
 * after that still rolls back the crashed process's unacknowledged group
 * (its sinks may never have flushed that round's output), and it stays
 * rolled back when the task is reopened later. */
static void unacknowledged_commit_stays_rolled_back_when_the_task_opens_after_new_rounds(
    void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    eddy__store_put(st, "k0", 2, "999", 3);
    assert_int_equal(eddy__tstate_prepare(f->ts, 2, "pos2", 4, 0, f->err, sizeof(f->err)), EDDY_OK);
    fx_close(f); /* the crash: commit 2 prepared, never acknowledged */
    eddy_state_conf_t sc = {.dir = f->dir, .application = "t", .memory_bytes = 64 << 20,
                            .checkpoint_interval_ms = INT64_MAX / 4, .ntasks = 1, .nstores = 1,
                            .segment_bytes = 4096};
    f->env = eddy__state_env_new(&sc, f->err, sizeof(f->err));
    assert_non_null(f->env);
    assert_int_equal(eddy__state_env_committed(f->env), 1);
    for (uint64_t c = 2; c <= 5; c++) /* rounds with no task open yet */
        assert_int_equal(eddy__state_env_mark(f->env, c, f->err, sizeof(f->err)), EDDY_OK);
    const eddy_store_def_t *d[1] = {&f->def};
    f->ts = eddy__tstate_open(f->env, 0, d, 1, f->err, sizeof(f->err));
    assert_non_null(f->ts);
    expect_state(f, 10, 1);
    /* closed and opened again by the same process: still commit 1 */
    eddy__tstate_close(f->ts);
    f->ts = eddy__tstate_open(f->env, 0, d, 1, f->err, sizeof(f->err));
    assert_non_null(f->ts);
    expect_state(f, 10, 1);
    /* work goes on from there */
    f->commit = 5;
    round_(f, 10, false);
    fx_close(f);
    assert_true(fx_open(f));
    expect_state(f, 10, 6);
}

/* As above, but the process that acknowledged rounds 2-5 dies before the
 * group gives it the task (killed mid-rebalance, or mid-restore): the next
 * process opens it at commit 1 still, neither taking rounds 2-5 for lost
 * state nor replaying the never acknowledged commit 2. */
static void unacknowledged_commit_stays_rolled_back_after_a_process_that_never_opened_the_task(
    void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    eddy_store_t *st = eddy__tstate_store(f->ts, 0);
    eddy__store_put(st, "k0", 2, "999", 3);
    assert_int_equal(eddy__tstate_prepare(f->ts, 2, "pos2", 4, 0, f->err, sizeof(f->err)), EDDY_OK);
    fx_close(f); /* the crash: commit 2 prepared, never acknowledged */
    eddy_state_conf_t sc = {.dir = f->dir, .application = "t", .memory_bytes = 64 << 20,
                            .checkpoint_interval_ms = INT64_MAX / 4, .ntasks = 1, .nstores = 1,
                            .segment_bytes = 4096};
    f->env = eddy__state_env_new(&sc, f->err, sizeof(f->err));
    assert_non_null(f->env);
    for (uint64_t c = 2; c <= 5; c++) /* rounds with no task open yet */
        assert_int_equal(eddy__state_env_mark(f->env, c, f->err, sizeof(f->err)), EDDY_OK);
    eddy__state_env_destroy(f->env); /* killed before the task opened */
    f->env = NULL;
    if (!fx_open(f))
        fail_msg("%s", f->err);
    expect_state(f, 10, 1);
    f->commit = 5;
    round_(f, 10, false);
    fx_close(f);
    assert_true(fx_open(f));
    expect_state(f, 10, 6);
}

static void corruption_inside_the_changelog_stops_the_task_with_the_path(void **state) {
    fx_t *f = *state;
    round_(f, 20, true);
    for (int i = 0; i < 6; i++)
        round_(f, 20, false);
    fx_close(f);
    /* lose the live store (so the changelog is needed) and damage the
     * first segment after the checkpoint */
    char p[160];
    snprintf(p, sizeof(p), "%s/t/task-0/db", f->dir);
    rm_rf(p);
    snprintf(p, sizeof(p), "%s/t/task-0/changelog", f->dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *de;
    char seg[300] = "";
    while ((de = readdir(d)))
        if (de->d_name[0] == 's' && (!seg[0] || strcmp(de->d_name, seg) < 0))
            snprintf(seg, sizeof(seg), "%s", de->d_name);
    closedir(d);
    char full[512];
    snprintf(full, sizeof(full), "%s/%s", p, seg);
    int fd = open(full, O_RDWR);
    assert_true(fd >= 0);
    /* the middle of the segment: past the checkpoint, before the tail */
    off_t mid = lseek(fd, 0, SEEK_END) / 2;
    char c;
    assert_int_equal(pread(fd, &c, 1, mid), 1);
    c ^= 0xff;
    assert_int_equal(pwrite(fd, &c, 1, mid), 1);
    close(fd);
    assert_false(fx_open(f));
    if (!strstr(f->err, "changelog"))
        fail_msg("message does not name the changelog: %s", f->err);
}

static void lost_commit_marker_is_refused_not_treated_as_nothing_committed(void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    round_(f, 10, false);
    fx_close(f);
    char p[128];
    snprintf(p, sizeof(p), "%s/t/COMMITTED", f->dir);
    assert_int_equal(unlink(p), 0);
    assert_false(fx_open(f));
    assert_non_null(strstr(f->err, "COMMITTED is missing"));
}

/* One engine a directory: a second env on a live one (an `eddy dump`
 * beside a run, in this process or another) is refused before it writes
 * anything there (the CLOSED it would settle for a task it finds without
 * one), and the directory opens again once the first env is gone. */
static void second_env_on_a_live_directory_is_refused(void **state) {
    fx_t *f = *state;
    round_(f, 10, false);
    char closed[160];
    snprintf(closed, sizeof(closed), "%s/t/task-0/CLOSED", f->dir);
    bool had = access(closed, F_OK) == 0;
    eddy_state_conf_t sc = {.dir = f->dir, .application = "t", .memory_bytes = 64 << 20,
                            .checkpoint_interval_ms = 1000, .ntasks = 1, .nstores = 1};
    char err[1024];
    assert_null(eddy__state_env_new(&sc, err, sizeof(err)));
    assert_non_null(strstr(err, "in use by another process"));
    assert_int_equal(access(closed, F_OK) == 0, had);
    fx_close(f);
    eddy_state_env_t *env = eddy__state_env_new(&sc, err, sizeof(err));
    if (!env)
        fail_msg("the directory stayed locked after its env was destroyed: %s", err);
    eddy__state_env_destroy(env);
    assert_true(fx_open(f));
}

static void unwritable_state_dir_is_a_clear_error(void **state) {
    fx_t *f = *state;
    fx_close(f);
    char file[128];
    snprintf(file, sizeof(file), "%s/plainfile", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/inside", file);
    eddy_state_conf_t sc = {.dir = sub, .application = "t", .memory_bytes = 64 << 20,
                            .checkpoint_interval_ms = 1000, .ntasks = 1, .nstores = 1};
    char err[1024];
    assert_null(eddy__state_env_new(&sc, err, sizeof(err)));
    assert_non_null(strstr(err, sub));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(state_and_positions_come_back_after_a_clean_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(task_reopened_under_the_env_that_created_the_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_local_store_is_rebuilt_from_snapshot_and_changelog, setup, teardown),
        cmocka_unit_test_setup_teardown(without_a_checkpoint_a_lost_store_is_replayed_from_the_whole_changelog, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_checkpoint_file_is_not_trusted_and_state_is_still_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(prepared_but_unacknowledged_commit_is_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(unacknowledged_commit_stays_rolled_back_when_the_task_opens_after_new_rounds, setup, teardown),
        cmocka_unit_test_setup_teardown(unacknowledged_commit_stays_rolled_back_after_a_process_that_never_opened_the_task, setup, teardown),
        cmocka_unit_test_setup_teardown(corruption_inside_the_changelog_stops_the_task_with_the_path, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_commit_marker_is_refused_not_treated_as_nothing_committed, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_state_dir_is_a_clear_error, setup, teardown),
        cmocka_unit_test_setup_teardown(second_env_on_a_live_directory_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
