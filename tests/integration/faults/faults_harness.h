/*
 * Shared by the fault-injection tests (tests/integration/faults): a
 * stateful exactly-once topology (Kafka source, a per-user table
 * aggregate behind a repartition topic, a tumbling window aggregate and a
 * copy of every record, both to Kafka sinks) runs as `eddy run` in a child
 * process against the test's broker while a test injects a fault; the run
 * is restarted after every exit that is not a success (as a supervisor
 * would), and at the end
 *  - the state (`eddy dump`) equals an uninterrupted run's, key for key;
 *  - the copies, deduplicated by their source record (n names partition
 *    n % PARTS, offset n / PARTS), are every input record exactly once,
 *    and the window results, deduplicated by (user, window), are exactly
 *    the ones computed here from the input (a duplicate must repeat the
 *    same values).
 * With EDDY_TEST_KAFKA=host:port the outputs are read read_committed and
 * must hold no duplicate at all; tests that need the mock cluster's
 * controls skip there and say so. EDDY_FAULTS_LONG=1 runs more records and
 * holds every fault longer.
 */
#ifndef EDDY_TESTS_FAULTS_HARNESS_H
#define EDDY_TESTS_FAULTS_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif

#include "crash_harness.h"
#include "kafka_harness.h"
#include "mock_faults.h"

#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int g_records = 30000; /* input records (EDDY_FAULTS_LONG: 150000) */
static int g_hold_ms = 1500;  /* how long a fault lasts (EDDY_FAULTS_LONG: 6000) */
static char *g_ref_dump;      /* the uninterrupted run's state */
static size_t g_ref_len;

static inline bool real_broker(void) { return strcmp(g_kafka_conf, "embedded") != 0; }

/* Skips (saying so) a test that needs the mock cluster's controls. */
#define NEED_MOCK()                                                                          \
    do {                                                                                     \
        if (real_broker()) {                                                                 \
            print_message("skipped: %s needs the mock cluster's controls (EDDY_TEST_KAFKA)\n", \
                          __func__);                                                         \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

static inline rd_kafka_mock_cluster_t *cluster(void) {
    rd_kafka_mock_cluster_t *mc = eddy__kafka_embedded_cluster();
    assert_non_null(mc);
    return mc;
}

static inline void msleep(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every broker up and no request error left queued (after each test). */
static inline void mock_heal(void) {
    if (real_broker())
        return;
    mock_heal_all(cluster());
}

/* ------------------------------------------------------------- topology */

typedef struct {
    const char *name;    /* application and topic prefix */
    const char *source;  /* NULL: the JSON source on topic `fin` */
    const char *extra;   /* more settings, e.g. ", state.changelog: kafka" */
    const char *env[3];  /* NAME=VALUE for the first, second, third run (kill points) */
    int max_restarts;    /* runs that may fail before the test does */
    int checkpoint_ms;   /* state.checkpoint.interval.ms (0: 400) */
    int threads;         /* stream threads (0: 2) */
} run_conf_t;

static inline void paths(const char *name, char *yaml, char *state, size_t size) {
    snprintf(yaml, size, "%s/%s.yaml", g_dir, name);
    snprintf(state, size, "%s/state-%s", g_dir, name);
}

static inline void write_topology(const run_conf_t *rc) {
    char yaml[512], state[512];
    paths(rc->name, yaml, state, sizeof(yaml));
    FILE *f = fopen(yaml, "w");
    assert_non_null(f);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: %d, commit.interval.ms: 50, state.dir: '%s',\n"
            "           state.checkpoint.interval.ms: %d, processing.guarantee: exactly_once%s}\n"
            "kafka: {bootstrap.servers: '%s', session.timeout.ms: 6000}\n"
            "sources:\n%s"
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
            "      - window: {type: tumbling, size: %dms, retention: 1d, store: windows}\n"
            "        aggregate: {by: user, fields: {c: count(), top: max(n)}}\n"
            "    to: wout\n"
            "  - {name: copy, from: clicks, steps: [{map: {n: n, user: user}}], to: out}\n"
            "sinks:\n"
            "  - {name: out, type: kafka, topic: %s-out}\n"
            "  - {name: wout, type: kafka, topic: %s-wout}\n"
            "  - {name: none, type: blackhole}\n",
            rc->name, rc->threads ? rc->threads : 2, state,
            rc->checkpoint_ms ? rc->checkpoint_ms : 400, rc->extra ? rc->extra : "", g_bootstrap,
            rc->source
                ? rc->source
                : "  - {name: clicks, type: kafka, topic: fin, bounded: true, format: json,\n"
                  "     timestamp: ts, schema: {user: string, n: int, ts: int}}\n",
            WINDOW_MS, rc->name, rc->name);
    fclose(f);
}

/* ------------------------------------------------------------ processes */

/* `eddy run yaml` with stderr appended to yaml.log; env "NAME=VALUE" (or
 * NULL) set in the child only. SIGXFSZ is ignored so that a file size
 * limit (a full disk) shows as EFBIG errors, as ENOSPC would. */
static inline pid_t spawn_eddy(const char *cmd, const char *yaml, const char *env,
                               const char *out) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char log[600];
        snprintf(log, sizeof(log), "%s.log", yaml);
        /* stderr reaches the log through a pipe and a process of its own,
         * so that a file size limit on eddy (a full disk) does not keep
         * its error messages out of the log */
        int fd[2];
        if (!freopen(out ? out : "/dev/null", "w", stdout) || pipe(fd))
            _exit(127);
        if (fork() == 0) {
            close(fd[1]);
            FILE *lf = fopen(log, "a");
            if (lf)
                setvbuf(lf, NULL, _IONBF, 0);
            char buf[4096];
            ssize_t r;
            while (lf && (r = read(fd[0], buf, sizeof(buf))) > 0)
                fwrite(buf, 1, (size_t)r, lf);
            _exit(0);
        }
        close(fd[0]);
        dup2(fd[1], STDERR_FILENO);
        close(fd[1]);
        signal(SIGXFSZ, SIG_IGN);
        if (getenv("EDDY_FAULTS_CORE")) { /* debugging: core files in the cwd */
            struct rlimit core = {RLIM_INFINITY, RLIM_INFINITY};
            setrlimit(RLIMIT_CORE, &core);
        }
        if (env) {
            char kv[256];
            snprintf(kv, sizeof(kv), "%s", env);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = 0;
                setenv(kv, eq + 1, 1);
            }
        }
        execl(g_eddy, g_eddy, cmd, yaml, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* exit status, 128 + signal, or -1 while it runs (wait_ms 0: no wait) */
static inline int poll_rc(pid_t pid, int wait_ms) {
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        assert_int_equal(r, 0);
        if (waited >= wait_ms)
            return -1;
        msleep(10);
    }
}

static inline void show_log(const char *yaml, int lines) {
    char cmd[700];
    snprintf(cmd, sizeof(cmd),
             "grep -v -e COMMITFAIL -e 'dead letter' '%s.log' | tail -%d | sed 's/^/    | /' >&2",
             yaml, lines);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

static inline bool log_has(const char *yaml, const char *needle) {
    msleep(200); /* the log's writer drains the pipe after eddy exits */
    char log[600];
    snprintf(log, sizeof(log), "%s.log", yaml);
    return count_lines(log, needle) > 0;
}

/* ---------------------------------------------------------------- Kafka */

static inline int64_t high_watermark(const char *topic, int partition) {
    static rd_kafka_t *rk;
    if (!rk)
        rk = producer();
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(rk, topic, partition, &lo, &hi, 2000))
        return -1;
    return hi;
}

/* ------------------------------------------------------------ the check */

typedef struct {
    unsigned char *seen; /* per input record */
    int lines, distinct, bad;
    /* per (user, window): count and max of n, 0 when not seen */
    int nwin;
    long *c, *top;
    int dup_windows, wrong_windows, wrong_values;
} outputs_t;

static inline void on_copy(const char *p, size_t len, void *opaque) {
    outputs_t *o = opaque;
    long n = json_int(p, len, "n");
    o->lines++;
    if (n < 0 || n >= g_records) {
        o->bad++;
        return;
    }
    char want[32];
    snprintf(want, sizeof(want), "\"u%ld\"", n % USERS);
    if (!memmem(p, len, want, strlen(want)))
        o->wrong_values++;
    if (!o->seen[n]++)
        o->distinct++;
}

static inline void on_window(const char *p, size_t len, void *opaque) {
    outputs_t *o = opaque;
    long start = json_int(p, len, "window_start");
    long user = json_user(p, len);
    int i = user >= 0 && user < USERS && start >= 0 ? win_index(user, start) : -1;
    if (i < 0 || i >= o->nwin) {
        o->wrong_windows++;
        return;
    }
    long c = json_int(p, len, "c"), top = json_int(p, len, "top");
    if (o->c[i]) {
        o->dup_windows++;
        if (o->c[i] != c || o->top[i] != top)
            o->wrong_values++;
        return;
    }
    o->c[i] = c;
    o->top[i] = top;
}

/* The outputs of application `name` against the input; exact: no
 * duplicate at all (a real broker's read_committed output always). */
static inline void check_outputs_as(const char *name, bool exact) {
    outputs_t o = {0};
    o.seen = calloc((size_t)g_records, 1);
    o.nwin = win_index(USERS - 1, ((T0 + g_records) / WINDOW_MS) * WINDOW_MS) + 1;
    o.c = calloc((size_t)o.nwin, sizeof(long));
    o.top = calloc((size_t)o.nwin, sizeof(long));
    char topic[256];
    snprintf(topic, sizeof(topic), "%s-out", name);
    read_partitions(topic, 1, on_copy, &o);
    snprintf(topic, sizeof(topic), "%s-wout", name);
    read_partitions(topic, 1, on_window, &o);
    /* the expected windows, from the input: record i has user i % USERS
     * and time T0 + i */
    long *c = calloc((size_t)o.nwin, sizeof(long)), *top = calloc((size_t)o.nwin, sizeof(long));
    for (long i = 0; i < g_records; i++) {
        int w = win_index(i % USERS, ((T0 + i) / WINDOW_MS) * WINDOW_MS);
        c[w]++;
        top[w] = i;
    }
    int missing_windows = 0, wrong = o.wrong_values;
    for (int w = 0; w < o.nwin; w++) {
        if (c[w] && !o.c[w])
            missing_windows++;
        else if (c[w] != o.c[w] || top[w] != o.top[w])
            wrong++;
    }
    int first_missing = -1;
    for (int n = 0; n < g_records && first_missing < 0; n++)
        if (!o.seen[n])
            first_missing = n;
    print_message("%s: %d copies, %d distinct (%d replayed), %d missing (first n=%d); windows: "
                  "%d duplicated, %d missing, %d wrong\n",
                  name, o.lines, o.distinct, o.lines - o.distinct, g_records - o.distinct,
                  first_missing, o.dup_windows, missing_windows, wrong + o.wrong_windows);
    assert_int_equal(o.bad, 0);
    assert_int_equal(o.distinct, g_records);
    assert_int_equal(missing_windows, 0);
    assert_int_equal(wrong + o.wrong_windows, 0);
    if (exact || real_broker()) { /* read committed: no duplicate at all */
        assert_int_equal(o.lines, g_records);
        assert_int_equal(o.dup_windows, 0);
    }
    free(o.seen);
    free(o.c);
    free(o.top);
    free(c);
    free(top);
}

static inline void check_outputs(const char *name) { check_outputs_as(name, false); }

static inline char *dump_state(const char *name, size_t *len) {
    char yaml[512], state[512], out[600];
    paths(name, yaml, state, sizeof(yaml));
    snprintf(out, sizeof(out), "%s.dump", yaml);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(out, "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(127);
        execl(g_eddy, g_eddy, "dump", yaml, (char *)NULL);
        _exit(127);
    }
    assert_int_equal(poll_rc(pid, 120000), 0);
    return slurp(out, len);
}

static inline void check_state(const char *name, const char *ref) {
    size_t n, rn;
    char *got = dump_state(name, &n);
    char *want = ref ? dump_state(ref, &rn) : g_ref_dump;
    if (!ref)
        rn = g_ref_len;
    assert_true(rn > 100);
    if (n != rn || memcmp(got, want, n)) {
        size_t i = 0;
        while (i < n && i < rn && got[i] == want[i])
            i++;
        size_t s = i;
        while (s > 0 && want[s - 1] != '\n')
            s--;
        fail_msg("%s: state differs from the uninterrupted run's at byte %zu:\n want %.160s\n "
                 "got  %.160s",
                 name, i, want + s, got + s);
    }
    free(got);
    if (ref)
        free(want);
}

/* ------------------------------------------------------------- the run */

typedef struct {
    int restarts;       /* runs that ended in failure and were restarted */
    int first_fail;     /* the exit status of the first, 128 + signal if killed */
    int64_t out_at_fault, out_at_heal; /* copies written when the fault came, went */
} run_result_t;

/* A fault: inject(opaque, pid) when the run has written output (or at
 * once with before_start), heal(opaque) after g_hold_ms. */
typedef struct {
    void (*inject)(void *opaque, pid_t pid);
    void (*heal)(void *opaque, pid_t pid);
    void *opaque;
    bool before_start;
    bool at_start; /* right after the start, not waiting for output */
} fault_t;

static inline void create_outputs(const char *name) {
    char topic[256];
    snprintf(topic, sizeof(topic), "%s-out", name);
    create_topic(topic, 1);
    snprintf(topic, sizeof(topic), "%s-wout", name);
    create_topic(topic, 1);
}

/* Runs rc's topology to the end with the fault, restarting failed runs;
 * returns what happened (the checks are the caller's). */
static inline run_result_t run_with(const run_conf_t *rc, const fault_t *fault) {
    char yaml[512], state[512], out[300];
    paths(rc->name, yaml, state, sizeof(yaml));
    snprintf(out, sizeof(out), "%s-out", rc->name);
    write_topology(rc);
    create_outputs(rc->name);
    run_result_t res = {0};
    if (fault && fault->before_start)
        fault->inject(fault->opaque, 0);
    pid_t pid = spawn_eddy("run", yaml, rc->env[0], NULL);
    int rc_exit = -1;
    if (fault && fault->at_start)
        fault->inject(fault->opaque, pid);
    else if (fault && !fault->before_start) {
        /* wait for output, so the fault hits a running topology */
        for (int w = 0; w < 3000 && rc_exit < 0; w++) {
            int64_t hw = high_watermark(out, 0);
            if (hw > 0) {
                res.out_at_fault = hw;
                break;
            }
            rc_exit = poll_rc(pid, 10);
        }
        fault->inject(fault->opaque, pid);
    }
    if (fault) {
        if (rc_exit < 0)
            rc_exit = poll_rc(pid, g_hold_ms);
        fault->heal(fault->opaque, pid);
        res.out_at_heal = high_watermark(out, 0);
    }
    for (;;) {
        if (rc_exit < 0)
            rc_exit = poll_rc(pid, 180000);
        if (rc_exit < 0) {
            kill(pid, SIGKILL);
            poll_rc(pid, 10000);
            show_log(yaml, 20);
            fail_msg("%s: the run did not end within 3 min", rc->name);
        }
        if (rc_exit == 0)
            break;
        fprintf(stderr, "%s: run %d ended with status %d; restarting. Its log ends:\n", rc->name,
                res.restarts + 1, rc_exit);
        show_log(yaml, 4);
        if (!res.restarts)
            res.first_fail = rc_exit;
        if (++res.restarts > rc->max_restarts)
            fail_msg("%s: %d failed runs (at most %d expected)", rc->name, res.restarts,
                     rc->max_restarts);
        pid = spawn_eddy("run", yaml, res.restarts < 3 ? rc->env[res.restarts] : NULL, NULL);
        rc_exit = -1;
    }
    print_message("%s: fault from %lld to %lld copies written; %d restart(s)\n", rc->name,
                  (long long)res.out_at_fault, (long long)res.out_at_heal, res.restarts);
    return res;
}

/* run_with + both checks against the reference */
static inline run_result_t fault_case(const run_conf_t *rc, const fault_t *fault) {
    run_result_t r = run_with(rc, fault);
    check_state(rc->name, NULL);
    check_outputs(rc->name);
    mock_heal();
    return r;
}

/* ---------------------------------------------------------------- setup */

static inline void produce_input(const char *topic, int n) {
    create_topic(topic, PARTS);
    produce_clicks(topic, 0, n, 0, PARTS);
}

static int faults_setup(void **st) {
    if (crash_setup(st))
        return -1;
    const char *lng = getenv("EDDY_FAULTS_LONG");
    if (lng && *lng && strcmp(lng, "0")) {
        g_records = 150000;
        g_hold_ms = 6000;
    }
    if (setup(st))
        return -1;
    produce_input("fin", g_records);
    /* the reference: one uninterrupted run */
    run_conf_t ref = {.name = "fref"};
    run_with(&ref, NULL);
    check_outputs("fref");
    g_ref_dump = dump_state("fref", &g_ref_len);
    return 0;
}

static int faults_teardown(void **st) {
    free(g_ref_dump);
    const char *keep = getenv("EDDY_FAULTS_KEEP");
    if (keep && *keep)
        fprintf(stderr, "kept %s\n", g_dir);
    else
        remove_dir(g_dir);
    return teardown(st);
}

#endif /* EDDY_TESTS_FAULTS_HARNESS_H */
