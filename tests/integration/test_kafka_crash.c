/*
 * Exactly-once state from a Kafka source under SIGKILL: `eddy run` (a
 * separate process reaching the cluster over TCP) consumes JSON clicks
 * with processing.guarantee exactly_once, and is killed at random moments
 * while it processes (mid-batch, mid-commit) and restarted. The final
 * state equals an uninterrupted run's, key for key (`eddy dump`), and the
 * file output, deduplicated by source record, holds every input record
 * exactly once.
 */
#include "kafka_harness.h"
#include "crash_harness.h" /* g_eddy, g_dir, wait_rc, dump, slurp */

#define RECORDS 120000

static void write_topology(const char *path, const char *app, const char *state_dir,
                           const char *out) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 2, commit.interval.ms: 30, batch.size: 20, state.dir: '%s',\n"
            "           state.checkpoint.interval.ms: 300, processing.guarantee: exactly_once}\n"
            "kafka: {bootstrap.servers: '%s', session.timeout.ms: 6000}\n"
            "sources:\n"
            "  - {name: clicks, type: kafka, topic: kcrash, bounded: true, format: json,\n"
            "     timestamp: ts, schema: {user: string, n: int, ts: int}}\n"
            "pipelines:\n"
            "  - name: counts\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - aggregate: {by: user, fields: {clicks: count(), total: sum(n)}, "
            "store: per_user}\n"
            "    to: none\n"
            "  - name: per_window\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - window: {type: tumbling, size: 2s, retention: 1d, store: windows}\n"
            "        aggregate: {by: user, fields: {c: count(), top: max(n)}}\n"
            "    to: none\n"
            "  - {name: copy, from: clicks, steps: [{map: {n: n}}], to: out}\n"
            "sinks:\n"
            "  - {name: out, type: file, path: '%s', append: true}\n"
            "  - {name: none, type: blackhole}\n",
            app, state_dir, g_bootstrap, out);
    fclose(f);
}

static pid_t spawn_run(const char *yaml) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char log[600];
        snprintf(log, sizeof(log), "%s.log", yaml);
        if (!freopen("/dev/null", "w", stdout) || !freopen(log, "a", stderr))
            _exit(127);
        execl(g_eddy, g_eddy, "run", yaml, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void killed_runs_end_with_the_uninterrupted_state(void **st) {
    (void)st;
    create_topic("kcrash", 3);
    produce_clicks("kcrash", 0, RECORDS, 0, 3);
    char ya[512], yb[512], sa[512], sb[512], oa[512], ob[512], da[512], db[512];
    snprintf(ya, sizeof(ya), "%s/a.yaml", g_dir);
    snprintf(yb, sizeof(yb), "%s/b.yaml", g_dir);
    snprintf(sa, sizeof(sa), "%s/state-a", g_dir);
    snprintf(sb, sizeof(sb), "%s/state-b", g_dir);
    snprintf(oa, sizeof(oa), "%s/a.jsonl", g_dir);
    snprintf(ob, sizeof(ob), "%s/b.jsonl", g_dir);
    snprintf(da, sizeof(da), "%s/a.dump", g_dir);
    snprintf(db, sizeof(db), "%s/b.dump", g_dir);
    write_topology(ya, "kcrash-ref", sa, oa);
    write_topology(yb, "kcrash-victim", sb, ob);

    /* the reference: one uninterrupted run (its own consumer group) */
    assert_int_equal(wait_rc(spawn_run(ya)), 0);
    assert_int_equal(count_lines(oa, NULL), RECORDS);

    /* the victim: killed while it processes, at a random amount of output
     * past the last kill's, restarted each time */
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int kills = 0, finished = 0;
    for (int i = 0; i < 10 && !finished; i++) {
        /* once this run's output starts to grow (it joined the group and
         * processes), kill it a random few ms later */
        int before = count_lines(ob, NULL);
        pid_t pid = spawn_run(yb);
        for (int w = 0; w < 3000; w++) { /* up to 30 s */
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
            if (count_lines(ob, NULL) > before) {
                struct timespec d = {0, (long)(rand() % 60) * 1000000L};
                nanosleep(&d, NULL);
                break;
            }
            int s;
            if (waitpid(pid, &s, WNOHANG) == pid) {
                if (!WIFEXITED(s) || WEXITSTATUS(s) != 0) {
                    char cmd[600];
                    snprintf(cmd, sizeof(cmd), "grep -v COMMITFAIL %s.log | tail -5 >&2", yb);
                    if (system(cmd) != 0)
                        fprintf(stderr, "(no log)\n");
                    fail_msg("run %d exited with status %d", i, s);
                }
                finished = 1;
                pid = 0;
                break;
            }
        }
        fprintf(stderr, "run %d: output %d -> %d lines, %s\n", i, before, count_lines(ob, NULL),
                pid ? "killing" : "finished");
        if (pid) {
            kill(pid, SIGKILL);
            int rc = wait_rc(pid);
            if (rc == 128 + SIGKILL)
                kills++;
            else if (rc == 0)
                finished = 1;
            else
                fail_msg("run exited with %d", rc);
        }
    }
    print_message("kafka crash test: %d SIGKILLs hit a running process\n", kills);
    assert_true(kills >= 4);
    if (!finished)
        assert_int_equal(wait_rc(spawn_run(yb)), 0);

    dump(ya, da);
    dump(yb, db);
    size_t na, nb;
    char *a = slurp(da, &na), *b = slurp(db, &nb);
    assert_true(na > 100);
    if (na != nb || memcmp(a, b, na)) {
        size_t i = 0;
        while (i < na && i < nb && a[i] == b[i])
            i++;
        char cmd[4096];
        snprintf(cmd, sizeof(cmd),
                 "diff %s %s | head -6 >&2; grep -c 'dead letter' %s.log >&2; "
                 "grep -v COMMITFAIL %s.log | grep -v 'dead letter' | tail -20 >&2; "
                 "cp -r %s /tmp/kcrash-failed-$$ 2>/dev/null",
                 da, db, yb, yb, g_dir);
        if (system(cmd) < 0)
            fprintf(stderr, "(cannot diff)\n");
        fail_msg("state differs from the uninterrupted run's at byte %zu", i);
    }
    free(a);
    free(b);

    /* outputs: every record at least once; deduplicated, exactly once */
    unsigned char *seen = calloc(RECORDS, 1);
    FILE *f = fopen(ob, "r");
    assert_non_null(f);
    char line[256];
    int lines = 0, distinct = 0;
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "\"n\":");
        assert_non_null(p);
        long n = strtol(p + 4, NULL, 10);
        assert_true(n >= 0 && n < RECORDS);
        lines++;
        if (!seen[n]++)
            distinct++;
    }
    fclose(f);
    for (int n = 0, shown = 0; n < RECORDS && shown < 8; n++)
        if (!seen[n]) {
            fprintf(stderr, "missing n=%d (partition %d)\n", n, n % 3);
            shown++;
        }
    free(seen);
    print_message("kafka crash test: %d output lines, %d distinct records (%d replayed)\n",
                  lines, distinct, lines - distinct);
    if (distinct != RECORDS) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "cp -r %s /tmp/kcrash-failed-$$ && echo kept in /tmp/kcrash-failed-$$ >&2", g_dir);
        if (system(cmd) < 0)
            fprintf(stderr, "(cannot keep %s)\n", g_dir);
    }
    assert_int_equal(distinct, RECORDS);
}

static int group_setup(void **st) {
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_eddy, sizeof(g_eddy), "%s/eddy", bin ? bin : ".");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy-kcrash-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return setup(st);
}

static int group_teardown(void **st) {
    remove_dir(g_dir);
    return teardown(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_runs_end_with_the_uninterrupted_state),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
