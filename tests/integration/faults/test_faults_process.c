/*
 * Process-side faults while an exactly-once topology runs
 * (faults_harness.h): SIGKILL aimed at the middle of a commit, of a
 * restore and of a rebalance (EDDY_FAULT_KILL kill points, engine/fault.h),
 * the state directory full (a file size limit set on the running process:
 * every write fails with EFBIG, as on a full disk), and the schema
 * registry going away and coming back. After each, the state equals an
 * uninterrupted run's and the outputs, deduplicated by source record,
 * equal the expected results.
 */
#include "faults_harness.h"

#include "tests/tools/tool_proc.h"

/* ---- SIGKILL aimed with kill points */

static void killed_at(const char *name, const char *point) {
    char yaml[512], state[512];
    paths(name, yaml, state, sizeof(yaml));
    char want[128];
    snprintf(want, sizeof(want), "killed at %s", point);
    if (!log_has(yaml, want)) {
        show_log(yaml, 10);
        fail_msg("%s: no run was killed at %s", name, point);
    }
}

static void sigkill_mid_commit(void **st) {
    (void)st;
    /* after the state is prepared, before the round is acknowledged; then,
     * in the next run, after the sinks committed their transactions but
     * before the state is prepared (either way the round is replayed: its
     * output twice) */
    run_conf_t rc = {.name = "fkill-commit",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:6",
                             "EDDY_FAULT_KILL=commit.flushed:3"},
                     .max_restarts = 2};
    run_result_t r = fault_case(&rc, NULL);
    assert_int_equal(r.restarts, 2);
    killed_at("fkill-commit", "commit.prepared");
    killed_at("fkill-commit", "commit.flushed");
}

/* The changelog topics of application name, one partition per task (the
 * cluster is in this process: eddy cannot create them on it over TCP). */
static void changelog_topics(const char *name) {
    char cl[200];
    snprintf(cl, sizeof(cl), "%s-per_user-changelog", name);
    create_topic(cl, PARTS);
    snprintf(cl, sizeof(cl), "%s-windows-changelog", name);
    create_topic(cl, PARTS);
}

/* Runs rc (one kill at commit.prepared), then checks what a roll-back
 * gives: state exact, outputs exact deduplicated, and no task rolled
 * forward (why: the failure message). */
static void check_rolled_back(const run_conf_t *rc, const char *why) {
    changelog_topics(rc->name);
    run_result_t r = fault_case(rc, NULL);
    assert_int_equal(r.restarts, 1);
    killed_at(rc->name, "commit.prepared");
    char yaml[512], state[512];
    paths(rc->name, yaml, state, sizeof(yaml));
    if (log_has(yaml, "rolled forward")) {
        show_log(yaml, 20);
        fail_msg("%s", why);
    }
}

/* Runs rc (one kill at commit.prepared), then checks what a roll-forward
 * gives: state exact, outputs exact WITHOUT deduplication, and a task
 * rolled forward (on the embedded cluster; the read_committed case needs
 * a real broker). */
static void check_rolled_forward(const run_conf_t *rc) {
    changelog_topics(rc->name);
    run_result_t r = run_with(rc, NULL);
    check_state(rc->name, NULL);
    check_outputs_as(rc->name, true);
    mock_heal();
    assert_int_equal(r.restarts, 1);
    killed_at(rc->name, "commit.prepared");
    char yaml[512], state[512];
    paths(rc->name, yaml, state, sizeof(yaml));
    if (!real_broker())
        print_message("%s: the read_committed case needs a real broker "
                      "(EDDY_TEST_KAFKA=host:port): not run here\n",
                      rc->name);
    if (!real_broker() && !log_has(yaml, "rolled forward to commit")) {
        show_log(yaml, 20);
        fail_msg("the restart rolled no task forward");
    }
}

/* With the Kafka changelog under exactly_once the changelog's records and
 * markers go into each stream thread's transaction, which commits after
 * the prepare: a SIGKILL at commit.prepared comes after the transactions
 * committed (outputs, repartition records, changelog, input offsets) and
 * before the round is acknowledged. The restart rolls the round forward:
 * every task's topics end with this state directory's marker of the
 * round after COMMITTED, so it replays its local group of that round
 * and takes its positions instead of replaying the round's input. The
 * state equals an uninterrupted run's and the outputs are exact WITHOUT
 * deduplication: the embedded cluster shows every record produced, so a
 * second commit of the round would show as duplicates. (On a real broker,
 * EDDY_TEST_KAFKA, the outputs are read read_committed; a thread whose
 * transaction had not committed yet when the other was killed rolls back
 * there, and its aborted output is invisible.) */
static void sigkill_between_transaction_and_acknowledgement(void **st) {
    (void)st;
    run_conf_t rc = {.name = "fkill-txncl",
                     .extra = ", state.changelog: kafka",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:6"},
                     .max_restarts = 1};
    check_rolled_forward(&rc);
}

/* Whether the log of yaml has a line with needle after the first line
 * with after (a later run's). */
static bool log_has_after(const char *yaml, const char *after, const char *needle) {
    msleep(200); /* the log's writer drains the pipe after eddy exits */
    char log[600];
    snprintf(log, sizeof(log), "%s.log", yaml);
    FILE *f = fopen(log, "r");
    if (!f)
        return false;
    char line[4096];
    bool seen = false, found = false;
    while (!found && fgets(line, sizeof(line), f)) {
        if (seen && strstr(line, needle))
            found = true;
        if (strstr(line, after))
            seen = true;
    }
    fclose(f);
    return found;
}

/* The roll-forward, then a second death before the rolled-forward tasks
 * commit again: the first restart acknowledges a round before the
 * consumer group's tasks open (COMMITTED reaches the rolled-forward
 * round's number) and rolls them forward, then is killed in its first
 * round with them (after the sinks flushed; the transaction aborted).
 * The third run must take the rolled-forward round again (the task's
 * ROLLED file, and its topics' marker above its own replay limit), not
 * roll it back below a committed transaction: rolled back, the round's
 * input was counted twice by the keys whose stores already held it. State
 * exact, outputs deduplicated exact. */
static void sigkill_after_roll_forward_before_its_next_commit(void **st) {
    (void)st;
    changelog_topics("fkill-txn2");
    run_conf_t rc = {.name = "fkill-txn2",
                     .extra = ", state.changelog: kafka",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:6",
                             "EDDY_FAULT_KILL=commit.flushed:1"},
                     .max_restarts = 2};
    run_result_t r = fault_case(&rc, NULL);
    assert_int_equal(r.restarts, 2);
    killed_at("fkill-txn2", "commit.prepared");
    killed_at("fkill-txn2", "commit.flushed");
    char yaml[512], state[512];
    paths("fkill-txn2", yaml, state, sizeof(yaml));
    if (!real_broker() &&
        !log_has_after(yaml, "killed at commit.flushed", "rolled forward to commit")) {
        show_log(yaml, 30);
        fail_msg("the third run did not take the rolled-forward commit again");
    }
}

/* The same kill with the exchange in process (repartition: local): a
 * rolled-forward sender would not send its in-process records of the
 * round again to a receiver of another thread that rolled back, so every
 * task rolls back and the round is replayed (state exact, outputs exact
 * deduplicated by source record; on the embedded cluster the round's
 * output is there twice). */
static void sigkill_between_transaction_and_acknowledgement_local_exchange(void **st) {
    (void)st;
    run_conf_t rc = {.name = "fkill-txnlocal",
                     .extra = ", state.changelog: kafka, repartition: local",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:6"},
                     .max_restarts = 1};
    check_rolled_back(&rc, "a task rolled forward with an in-process exchange");
}

/* The same with one stream thread: its one transaction holds every
 * task's round, so with the exchange in process too the tasks roll
 * forward together, and the round's output is there once (exact outputs
 * without deduplication, as with repartition topics). */
static void sigkill_between_transaction_and_acknowledgement_one_thread_local_exchange(void **st) {
    (void)st;
    run_conf_t rc = {.name = "fkill-txn1local",
                     .extra = ", state.changelog: kafka, repartition: local",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:4"},
                     .max_restarts = 1,
                     .threads = 1};
    check_rolled_forward(&rc);
}

/* One thread now, but the directory was run with two before (its
 * TXN_THREADS says 2, as a run with `threads: 2` leaves it): a round a
 * death left may be that run's, split over two transactions, so with the
 * exchange in process no task rolls forward; state exact, outputs exact
 * deduplicated. */
static void sigkill_one_thread_local_exchange_after_a_run_with_two(void **st) {
    (void)st;
    const char *name = "fkill-txn1after2";
    char yaml[512], state[512];
    paths(name, yaml, state, sizeof(yaml));
    char app_dir[600], cmd[1400];
    snprintf(app_dir, sizeof(app_dir), "%s/%s", state, name);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && printf '2\\n' > '%s/TXN_THREADS'", app_dir,
             app_dir);
    assert_int_equal(system(cmd), 0);
    run_conf_t rc = {.name = name,
                     .extra = ", state.changelog: kafka, repartition: local",
                     .env = {"EDDY_FAULT_KILL=commit.prepared:4"},
                     .max_restarts = 1,
                     .threads = 1};
    check_rolled_back(&rc, "a task rolled forward in a directory once run with two threads");
}

/* SIGKILL after the first acknowledged round that changed state, then,
 * restarted, after the first task wrote its next acknowledged round to
 * RocksDB (the other thread's tasks had not yet), with the exchange in
 * process: state exact and every window result there. It found two
 * losses: a task whose CLOSED was below the acknowledged round truncated
 * it alone (losing what the others had sent it), and a sender restored
 * at +inf (its input had ended) never broadcast its watermark again, so
 * its receivers' last windows never fired (in 1 run of 3 to 9). */
static void sigkill_between_acknowledgement_and_finish(void **st) {
    (void)st;
    run_conf_t rc = {.name = "fkill-fin",
                     .extra = ", repartition: local",
                     .env = {"EDDY_FAULT_KILL=commit.acked:1",
                             "EDDY_FAULT_KILL=commit.finished:1"},
                     .max_restarts = 2};
    run_result_t r = fault_case(&rc, NULL);
    assert_int_equal(r.restarts, 2);
    killed_at("fkill-fin", "commit.acked");
    killed_at("fkill-fin", "commit.finished");
}

/* SIGKILL once a third of the copies are out (opaque: the output topic) */
static void sigkill(void *opaque, pid_t pid) {
    for (int w = 0; w < 3000 && high_watermark(opaque, 0) < g_records / 3; w++) {
        siginfo_t si = {0}; /* exited (a kill point)? left for run_with to reap */
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
            return;
        msleep(10);
    }
    kill(pid, SIGKILL);
}
static void no_heal(void *opaque, pid_t pid) {
    (void)opaque;
    (void)pid;
}

static void sigkill_mid_restore(void **st) {
    (void)st;
    /* killed right after the first acknowledged round that changed state
     * (the group joined, input flowing; a SIGKILL at an output threshold
     * often came before any such round: nothing to restore); with no
     * checkpoint for a minute the restart replays the local changelog from
     * its start, and is killed after 3 updates of it; the run after
     * restores from what the killed restore left */
    run_conf_t rc = {.name = "fkill-restore",
                     .checkpoint_ms = 60000,
                     .env = {"EDDY_FAULT_KILL=commit.acked:1", "EDDY_FAULT_KILL=restore:3"},
                     .max_restarts = 2};
    run_result_t r = fault_case(&rc, NULL);
    assert_int_equal(r.restarts, 2);
    killed_at("fkill-restore", "commit.acked");
    killed_at("fkill-restore", "restore");
}

static void sigkill_mid_rebalance(void **st) {
    (void)st;
    /* killed once it writes output; the next run joins the group while it still counts
     * the dead member and is killed while it opens the tasks of its
     * assignment (restores done, partitions not yet assigned) */
    run_conf_t rc = {.name = "fkill-rebalance",
                     .env = {NULL, "EDDY_FAULT_KILL=rebalance:1"},
                     .max_restarts = 2};
    fault_t f = {sigkill, no_heal, "fkill-rebalance-out", false, false};
    run_result_t r = fault_case(&rc, &f);
    assert_int_equal(r.restarts, 2);
    killed_at("fkill-rebalance", "rebalance");
}

/* ---- a full state directory */

static void disk_full(void *opaque, pid_t pid) {
    (void)opaque;
    struct rlimit rl;
    assert_int_equal(prlimit(pid, RLIMIT_FSIZE, NULL, &rl), 0);
    rl.rlim_cur = 1; /* every write past the first byte of a file: EFBIG */
    if (prlimit(pid, RLIMIT_FSIZE, &rl, NULL))
        fprintf(stderr, "prlimit: %s (the run may have ended)\n", strerror(errno));
}
static void disk_back(void *opaque, pid_t pid) {
    (void)opaque;
    struct rlimit rl = {RLIM_INFINITY, RLIM_INFINITY};
    if (prlimit(pid, RLIMIT_FSIZE, &rl, NULL) && errno != ESRCH)
        fprintf(stderr, "prlimit: %s\n", strerror(errno));
}

static void state_dir_full(void **st) {
    (void)st;
    run_conf_t rc = {.name = "fdisk", .max_restarts = 3};
    fault_t f = {disk_full, disk_back, NULL, false, false};
    run_result_t r = fault_case(&rc, &f);
    char yaml[512], state[512];
    paths("fdisk", yaml, state, sizeof(yaml));
    /* the run stopped, saying why, and a restart on a writable disk
     * recovered (the checks above) */
    if (!log_has(yaml, "File too large")) {
        show_log(yaml, 10);
        fail_msg("the full disk left no clear error");
    }
    assert_true(r.restarts >= 1);
    /* an error exit, not an abort: RocksDB 7.8 aborted on the second
     * write to its LOG after a failed one, which every close made at INFO
     * level (docs/reliability.md) */
    assert_int_equal(r.first_fail, 1);
}

/* ---- the schema registry away and back */

static const char *CLICK_V1 =
    "{\"type\": \"record\", \"name\": \"click\", \"fields\": [{\"name\": \"user\", \"type\": "
    "\"string\"}, {\"name\": \"n\", \"type\": \"long\"}, {\"name\": \"ts\", \"type\": \"long\"}]}";
static const char *CLICK_V2 =
    "{\"type\": \"record\", \"name\": \"click\", \"fields\": [{\"name\": \"user\", \"type\": "
    "\"string\"}, {\"name\": \"n\", \"type\": \"long\"}, {\"name\": \"ts\", \"type\": \"long\"}, "
    "{\"name\": \"note\", \"type\": \"string\", \"default\": \"\"}]}";

static size_t zigzag(unsigned char *p, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    size_t n = 0;
    while (u >= 0x80) {
        p[n++] = (unsigned char)(u | 0x80);
        u >>= 7;
    }
    p[n++] = (unsigned char)u;
    return n;
}

/* click i in the Confluent wire format, written with schema id (v2 adds
 * the string note) */
static size_t encode_click(unsigned char *p, int id, bool v2, int i) {
    size_t n = 0;
    p[n++] = 0;
    p[n++] = (unsigned char)(id >> 24);
    p[n++] = (unsigned char)(id >> 16);
    p[n++] = (unsigned char)(id >> 8);
    p[n++] = (unsigned char)id;
    char user[16];
    int ul = snprintf(user, sizeof(user), "u%d", i % USERS);
    n += zigzag(p + n, ul);
    memcpy(p + n, user, (size_t)ul);
    n += (size_t)ul;
    n += zigzag(p + n, i);
    n += zigzag(p + n, T0 + i);
    if (v2) {
        n += zigzag(p + n, 2);
        memcpy(p + n, "v2", 2);
        n += 2;
    }
    return n;
}

static int read_id(const char *out_path, const char *subject) {
    char *out = tool_slurp(out_path);
    assert_non_null(out);
    int id = -1;
    for (char *l = out; l && *l;) {
        char subj[128];
        int v;
        if (sscanf(l, "%d %127s", &v, subj) == 2 && !strcmp(subj, subject))
            id = v;
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    free(out);
    assert_true(id > 0);
    return id;
}

typedef struct {
    pid_t sr;
    int id1;
    char log[600];
    int64_t stalled_at; /* copies while the v2 records waited */
} registry_t;

/* down (503 on every request) once eddy fetched the first writer schema */
static void registry_down(void *opaque, pid_t pid) {
    (void)pid;
    registry_t *r = opaque;
    char want[64];
    snprintf(want, sizeof(want), "/schemas/ids/%d", r->id1);
    /* every ms: the v2 records come right behind the v1 ones, and a
     * look every 10 ms once let eddy fetch v2's schema too (CI: the
     * copies never stalled) */
    for (int w = 0; w < 30000 && count_lines(r->log, want) == 0; w++)
        msleep(1);
    kill(r->sr, SIGUSR1);
}

/* back once the copies stopped growing (the v2 records wait) */
static void registry_up(void *opaque, pid_t pid) {
    (void)pid;
    registry_t *r = opaque;
    int64_t last = -1;
    for (int w = 0; w < 300; w++) {
        int64_t hw = high_watermark("fregistry-out", 0);
        if (hw == last)
            break;
        last = hw;
        msleep(1000);
    }
    r->stalled_at = last;
    kill(r->sr, SIGUSR1);
}

static void schema_registry_away_and_back(void **st) {
    (void)st;
    char sr_bin[1024], v1[600], v2[600], port_file[600], sr_out[600], sr_err[600], listen[64];
    tool_path(sr_bin, sizeof(sr_bin), "SR_SERVER", "sr-server");
    snprintf(v1, sizeof(v1), "%s/click1.avsc", g_dir);
    snprintf(v2, sizeof(v2), "%s/click2.avsc", g_dir);
    snprintf(port_file, sizeof(port_file), "%s/sr.port", g_dir);
    snprintf(sr_out, sizeof(sr_out), "%s/sr.out", g_dir);
    snprintf(sr_err, sizeof(sr_err), "%s/sr.err", g_dir);
    FILE *f = fopen(v1, "w");
    fputs(CLICK_V1, f);
    fclose(f);
    f = fopen(v2, "w");
    fputs(CLICK_V2, f);
    fclose(f);
    char pre1[700], pre2[700];
    snprintf(pre1, sizeof(pre1), "%s:fin-avro-v1", v1);
    snprintf(pre2, sizeof(pre2), "%s:fin-avro-v2", v2);
    const char *argv[] = {sr_bin, "--port-file", port_file, "--preload", pre1,
                          "--preload", pre2, "--verbose", NULL};
    pid_t sr = tool_spawn((char *const *)argv, sr_out, sr_err);
    assert_true(sr > 0);
    int port = tool_wait_port(port_file, sr, 10000);
    assert_true(port > 0);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    int id1 = read_id(sr_out, "fin-avro-v1"), id2 = read_id(sr_out, "fin-avro-v2");

    /* the first half of every partition written with v1, the rest with v2:
     * the v2 id is fetched mid-run, while the registry is away */
    create_topic("fin-avro", PARTS);
    rd_kafka_t *rk = producer();
    for (int i = 0; i < g_records; i++) {
        unsigned char buf[128];
        bool late = i >= g_records / 2;
        size_t len = encode_click(buf, late ? id2 : id1, late, i);
        produce_one(rk, "fin-avro", i % PARTS, (const char *)buf, len);
    }
    assert_int_equal(rd_kafka_flush(rk, 30000), 0);
    rd_kafka_destroy(rk);

    char source[2048], extra[256];
    snprintf(source, sizeof(source),
             "  - {name: clicks, type: kafka, topic: fin-avro, bounded: true, format: avro,\n"
             "     timestamp: ts, avro_schema: '%s'}\n",
             v1);
    snprintf(extra, sizeof(extra), "}\nschema_registry: {url: 'http://%s'", listen);
    run_conf_t rc = {.name = "fregistry", .source = source, .extra = extra, .max_restarts = 0};
    registry_t reg = {.sr = sr, .id1 = id1};
    snprintf(reg.log, sizeof(reg.log), "%s", sr_err);
    fault_t fault = {registry_down, registry_up, &reg, false, true};
    run_with(&rc, &fault);
    assert_int_equal(tool_stop(sr, 10000), 0);
    /* the records of v2 waited for the registry: the copies stopped short */
    print_message("fregistry: copies stalled at %lld while the registry was away\n",
                  (long long)reg.stalled_at);
    assert_in_range(reg.stalled_at, 0, g_records - 1);
    char yaml[512], state[512];
    paths("fregistry", yaml, state, sizeof(yaml));
    if (log_has(yaml, "\"reason\"")) {
        show_log(yaml, 5);
        fail_msg("records were dead-lettered while the registry was away");
    }
    check_state("fregistry", NULL);
    check_outputs("fregistry");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sigkill_mid_commit),
        cmocka_unit_test(sigkill_between_transaction_and_acknowledgement),
        cmocka_unit_test(sigkill_between_transaction_and_acknowledgement_local_exchange),
        cmocka_unit_test(sigkill_between_transaction_and_acknowledgement_one_thread_local_exchange),
        cmocka_unit_test(sigkill_one_thread_local_exchange_after_a_run_with_two),
        cmocka_unit_test(sigkill_after_roll_forward_before_its_next_commit),
        cmocka_unit_test(sigkill_between_acknowledgement_and_finish),
        cmocka_unit_test(sigkill_mid_restore),
        cmocka_unit_test(sigkill_mid_rebalance),
        cmocka_unit_test(state_dir_full),
        cmocka_unit_test(schema_registry_away_and_back),
    };
    const char *only = getenv("EDDY_FAULTS_ONLY"); /* one test, e.g. state_dir_full */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, faults_setup, faults_teardown);
}
