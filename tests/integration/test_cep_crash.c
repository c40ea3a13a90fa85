/*
 * CEP crash test: a fraud pattern over the transactions generator is
 * killed with SIGKILL at random moments (at least 10 kills that hit a
 * running process; commits every 50 ms, so kills land inside commits too,
 * with partial matches and buffered records in progress) and restarted;
 * its match store (exactly-once state: every match by key and time) ends
 * equal to an uninterrupted run's: no match lost, none duplicated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_eddy[1024], g_dir[256];

/* rate 0: as fast as possible (the reference); the victim is paced so that
 * kills land mid-run. Pacing changes timing, never results. */
static void write_topology(const char *path, const char *state_dir, int rate) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "application: cepcrash\n"
            "settings: {threads: 2, commit.interval.ms: 50, state.dir: '%s',\n"
            "           state.checkpoint.interval.ms: 300}\n"
            "sources:\n"
            "  - {name: cards, type: transactions, events: 3000000, partitions: 2, cards: 3000,\n"
            "     event_rate: 10000, rate: %d, watermark: {max_out_of_orderness: 2s}}\n"
            "pipelines:\n"
            "  - name: fraud\n"
            "    from: tx\n"
            "    steps:\n"
            "      - cep:\n"
            "          by: card\n"
            "          within: 2m\n"
            "          after_match: skip_past_last_event\n"
            "          pattern:\n"
            "            - {name: probe, where: \"amount < 500\"}\n"
            "            - {name: small, next: \"amount < 500\", times_or_more: 2, consecutive: "
            "true, greedy: true}\n"
            "            - {name: big, followed_by: \"amount > 40 * avg(small.amount)\"}\n"
            "          fields: {n: count(small), total: sum(small.amount), big: last(big.amount)}\n"
            "    to: out\n"
            "sinks: [{name: out, type: blackhole}]\n",
            state_dir, rate);
    fclose(f);
}

/* Start `eddy run` (or dump into out); returns the pid. */
static pid_t spawn(const char *cmd, const char *yaml, const char *out) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(out ? out : "/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execl(g_eddy, g_eddy, cmd, yaml, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void dump(const char *yaml, const char *out) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(out, "w", stdout))
            _exit(127);
        execl(g_eddy, g_eddy, "dump", yaml, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(wait_rc(pid), 0);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)len + 1);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    p[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void killed_cep_run_ends_with_the_uninterrupted_matches(void **state) {
    (void)state;
    char ya[512], yb[512], sa[512], sb[512], da[512], db[512];
    snprintf(ya, sizeof(ya), "%s/a.yaml", g_dir);
    snprintf(yb, sizeof(yb), "%s/b.yaml", g_dir);
    snprintf(sa, sizeof(sa), "%s/state-a", g_dir);
    snprintf(sb, sizeof(sb), "%s/state-b", g_dir);
    snprintf(da, sizeof(da), "%s/a.jsonl", g_dir);
    snprintf(db, sizeof(db), "%s/b.jsonl", g_dir);
    write_topology(ya, sa, 0);
    write_topology(yb, sb, 250000);

    /* the reference: one uninterrupted run */
    assert_int_equal(wait_rc(spawn("run", ya, NULL)), 0);

    /* the victim: killed at random moments, restarted each time */
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    int kills = 0;
    for (int i = 0; i < 12; i++) {
        pid_t pid = spawn("run", yb, NULL);
        struct timespec ts = {0, (long)(50 + rand() % 600) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int rc = wait_rc(pid);
        if (rc == 0)
            fail_msg("the run finished before kill %d: make the input longer", i + 1);
        if (rc != 128 + SIGKILL)
            fail_msg("run exited with %d", rc);
        kills++;
    }
    print_message("cep crash test: %d SIGKILLs hit a running process\n", kills);
    assert_true(kills >= 10);
    assert_int_equal(wait_rc(spawn("run", yb, NULL)), 0);

    dump(ya, da);
    dump(yb, db);
    size_t na, nb;
    char *a = slurp(da, &na), *b = slurp(db, &nb);
    /* thousands of matches in the match store, none lost or repeated, and
     * no partial match left (the end of the input times them all out) */
    size_t matches = 0;
    for (const char *p = a; (p = strstr(p, "{\"store\":\"fraud\"")); p++)
        matches++;
    print_message("cep crash test: %zu matches\n", matches);
    assert_true(matches > 1000);
    assert_null(strstr(a, "fraud.partial"));
    if (na != nb || memcmp(a, b, na)) {
        /* find the first differing line for the message */
        size_t i = 0;
        while (i < na && i < nb && a[i] == b[i])
            i++;
        size_t s = i;
        while (s > 0 && a[s - 1] != '\n')
            s--;
        fail_msg("state differs from the uninterrupted run at byte %zu:\n want %.200s\n got  %.200s",
                 i, a + s, b + s);
    }
    free(a);
    free(b);
}

static int setup(void **state) {
    (void)state;
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_eddy, sizeof(g_eddy), "%s/eddy", bin ? bin : ".");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy_cep_crash_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_cep_run_ends_with_the_uninterrupted_matches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
