/*
 * Shared by the SIGKILL crash tests: run a topology uninterrupted (the
 * reference), run it again paced and kill it with SIGKILL at random
 * moments (restarting it each time, at least 10 kills that hit a running
 * process), let it finish, and compare the two final states (`eddy dump`)
 * byte for byte. Header-only (static functions) so each test stays one
 * executable.
 */
#ifndef EDDY_TEST_CRASH_HARNESS_H
#define EDDY_TEST_CRASH_HARNESS_H
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

#define CH static __attribute__((unused))

static char g_eddy[1024], g_dir[256];

/* ThreadSanitizer runs eddy ~10-50 times slower: the tests take smaller
 * inputs there (each test's EDDY_*_EVENTS knob sets the size either way). */
#if defined(__SANITIZE_THREAD__)
#define CRASH_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CRASH_TSAN 1
#endif
#endif

/* The input size: the environment variable env if set, else full (or
 * under_tsan in a ThreadSanitizer build). */
CH long crash_events(const char *env, long full, long under_tsan) {
    const char *e = getenv(env);
    if (e && atol(e) > 0)
        return atol(e);
#ifdef CRASH_TSAN
    (void)full;
    return under_tsan;
#else
    (void)under_tsan;
    return full;
#endif
}

/* each run's stderr (a sanitizer's report, an error message), shown when a
 * run ends other than expected */
CH void err_path(char *buf, size_t n) { snprintf(buf, n, "%s/run.err", g_dir); }

CH void show_err(void) {
    char p[300];
    err_path(p, sizeof(p));
    FILE *f = fopen(p, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f))
        print_message("  | %s", line);
    fclose(f);
}

/* Start `eddy run` (or dump into out); returns the pid. */
CH pid_t spawn(const char *cmd, const char *yaml, const char *out) {
    char ep[300];
    err_path(ep, sizeof(ep));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(out ? out : "/dev/null", "w", stdout) || !freopen(ep, "w", stderr))
            _exit(127);
        execl(g_eddy, g_eddy, cmd, yaml, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

CH int wait_rc(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

CH void expect_ok(pid_t pid) {
    int rc = wait_rc(pid);
    if (rc != 0) {
        show_err();
        fail_msg("run exited with %d", rc);
    }
}

CH void dump(const char *yaml, const char *out) {
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

CH char *slurp(const char *path, size_t *n) {
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

/* write(path, state_dir, rate) writes the topology (rate 0: unpaced);
 * returns the reference's dump (caller frees) after checking that the
 * victim's equals it. */
CH char *crash_run(const char *what, void (*write)(const char *, const char *, int), int rate,
                   size_t *len) {
    char ya[512], yb[512], sa[512], sb[512], da[512], db[512];
    snprintf(ya, sizeof(ya), "%s/a.yaml", g_dir);
    snprintf(yb, sizeof(yb), "%s/b.yaml", g_dir);
    snprintf(sa, sizeof(sa), "%s/state-a", g_dir);
    snprintf(sb, sizeof(sb), "%s/state-b", g_dir);
    snprintf(da, sizeof(da), "%s/a.jsonl", g_dir);
    snprintf(db, sizeof(db), "%s/b.jsonl", g_dir);
    write(ya, sa, 0);
    write(yb, sb, rate);

    /* the reference: one uninterrupted run */
    expect_ok(spawn("run", ya, NULL));

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
        if (rc != 128 + SIGKILL) {
            show_err();
            fail_msg("run exited with %d", rc);
        }
        kills++;
    }
    print_message("%s: %d SIGKILLs hit a running process\n", what, kills);
    assert_true(kills >= 10);
    expect_ok(spawn("run", yb, NULL));

    dump(ya, da);
    dump(yb, db);
    size_t na, nb;
    char *a = slurp(da, &na), *b = slurp(db, &nb);
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
    free(b);
    *len = na;
    return a;
}

CH int crash_setup(void **state) {
    (void)state;
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_eddy, sizeof(g_eddy), "%s/eddy", bin ? bin : ".");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy_crash_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

CH int crash_teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
