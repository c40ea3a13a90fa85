/*
 * Nexmark benchmark harness (run through bench/nexmark).
 *
 * Each query runs in a forked child so that its CPU time (user+sys, from
 * getrusage) and peak RSS are its own. The generator runs in-process and
 * its cost is included, as in the reference benchmark; events counted are
 * all generated events (persons, auctions and bids), as Nexmark counts
 * them. Results go to RESULTS_DIR/latest.json and latest.md, beside the
 * published per-core figures of Flink (nexmark repository, 1.13) and
 * Feldera (16-core run divided by 16) from shared/NEXMARK.md.
 *
 * Each query is a YAML topology (bench/queries/QUERY.yaml) with the
 * placeholders @EVENTS@ and @PARTITIONS@, so what is measured is exactly
 * what a user would run with `eddy run`.
 */
#include "eddy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *name;
    const char *what;
    double flink, feldera; /* published events/s per core; 0 = none */
} query_t;

static const query_t queries[] = {
    {"q0", "pass-through of bids", 155e3, 436e3},
    {"q1", "currency conversion", 158e3, 412e3},
    {"q2", "selection: auction % 123 = 0", 175e3, 422e3},
    {"q3", "local item suggestion: persons of OR/ID/CA x auctions of category 10", 152e3,
     413e3},
    {"q4", "average closing price per category: auctions x bids in [dateTime, expires] (Flink 31-34K)",
     32.5e3, 265e3},
    {"q5", "hot items: top bid count per auction, hopping 10s/2s (Flink 22-41K)", 31.5e3,
     412e3},
    {"q7", "highest bid, tumbling 10s (Flink 12-18K)", 15e3, 196e3},
    {"q8", "new users: window join of persons and auctions, tumbling 10s (Flink 131-146K)",
     138.5e3, 415e3},
    {"q11", "user sessions: bids per bidder, session gap 10s (Flink 34-40K)", 37e3, 0},
    {"dedup", "first bid per (auction, bidder) within 10s", 0, 0},
};
#define NQ (int)(sizeof(queries) / sizeof(queries[0]))

typedef struct {
    unsigned long long events, out;
    double cpu, wall;
    long long rss;
    double p50_ms, p99_ms, max_ms;
    int ok;
    char err[1536];
} result_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_of(const struct rusage *ru) {
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        fclose(f);
        return NULL;
    }
    p[n] = 0;
    fclose(f);
    return p;
}

/* Replace every @KEY@ by value. */
static char *subst(const char *in, const char *key, const char *value) {
    size_t kl = strlen(key), vl = strlen(value), cap = strlen(in) + 1;
    for (const char *p = in; (p = strstr(p, key)); p += kl)
        cap += vl;
    char *out = malloc(cap), *o = out;
    const char *p = in, *q;
    while ((q = strstr(p, key))) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, value, vl);
        o += vl;
        p = q + kl;
    }
    strcpy(o, p);
    return out;
}

static void run_child(const char *qdir, const query_t *q, unsigned long long events, int threads,
                      int fd) {
    result_t r;
    memset(&r, 0, sizeof(r));
    char path[1024], errstr[1024], num[64];
    snprintf(path, sizeof(path), "%s/%s.yaml", qdir, q->name);
    char *text = read_file(path);
    if (!text) {
        snprintf(r.err, sizeof(r.err), "%s: %s", path, strerror(errno));
        goto out;
    }
    snprintf(num, sizeof(num), "%llu", events);
    char *t1 = subst(text, "@EVENTS@", num);
    snprintf(num, sizeof(num), "%d", threads);
    char *t2 = subst(t1, "@PARTITIONS@", num);
    free(text);
    free(t1);
    eddy_topology_t *topo = eddy_topology_load_string(t2, strlen(t2), path, errstr,
                                                      sizeof(errstr));
    free(t2);
    if (!topo) {
        snprintf(r.err, sizeof(r.err), "%s", errstr);
        goto out;
    }
    /* A fresh state directory per run: a run must never resume the
     * committed state of an earlier one. */
    char sdir[] = "/tmp/eddy-bench-state-XXXXXX";
    if (!mkdtemp(sdir)) {
        snprintf(r.err, sizeof(r.err), "mkdtemp: %s", strerror(errno));
        eddy_topology_destroy(topo);
        goto out;
    }
    eddy_conf_t *conf = eddy_conf_new();
    eddy_conf_set(conf, "threads", num, errstr, sizeof(errstr));
    eddy_conf_set(conf, "state.dir", sdir, errstr, sizeof(errstr));
    eddy_engine_t *eng = eddy_engine_new(topo, conf, errstr, sizeof(errstr));
    eddy_conf_destroy(conf);
    if (!eng) {
        snprintf(r.err, sizeof(r.err), "%s", errstr);
        eddy_topology_destroy(topo);
        goto out;
    }
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double w0 = now_s();
    eddy_err_t err = eddy_engine_start(eng);
    if (!err)
        err = eddy_engine_poll(eng, -1);
    double w1 = now_s();
    getrusage(RUSAGE_SELF, &ru1);
    if (err) {
        snprintf(r.err, sizeof(r.err), "engine: %s", eddy_engine_last_error(eng));
    } else {
        eddy_stats_t st;
        eddy_engine_stats(eng, &st);
        r.events = st.events_in;
        r.out = st.events_out;
        r.cpu = cpu_of(&ru1) - cpu_of(&ru0);
        r.wall = w1 - w0;
        r.rss = ru1.ru_maxrss * 1024LL;
        r.p50_ms = (double)eddy_engine_latency_ns(eng, 50) / 1e6;
        r.p99_ms = (double)eddy_engine_latency_ns(eng, 99) / 1e6;
        r.max_ms = (double)eddy_engine_latency_ns(eng, 100) / 1e6;
        r.ok = 1;
    }
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sdir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench: could not remove %s\n", sdir);
    }
out:
    if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(3);
    _exit(0);
}

static int run_query(const char *qdir, const query_t *q, unsigned long long events, int threads,
                     result_t *r) {
    int fds[2];
    if (pipe(fds))
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        run_child(qdir, q, events, threads, fds[1]);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], r, sizeof(*r));
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (n != (ssize_t)sizeof(*r)) {
        memset(r, 0, sizeof(*r));
        snprintf(r->err, sizeof(r->err), "child died (status %d)", status);
        return -1;
    }
    return r->ok ? 0 : -1;
}

static const char *human(double v, char *buf, size_t n) {
    if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fK", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

int main(int argc, char **argv) {
    unsigned long long events = 10000000ULL;
    int threads = 1;
    const char *results = "bench/results", *qdir = "bench/queries";
    const char *want[64];
    int nwant = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--results-dir") && i + 1 < argc)
            results = argv[++i];
        else if (!strcmp(argv[i], "--queries-dir") && i + 1 < argc)
            qdir = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr,
                    "usage: bench/nexmark [--events N] [--threads T] [QUERY...]\n"
                    "queries:");
            for (int q = 0; q < NQ; q++)
                fprintf(stderr, " %s", queries[q].name);
            fprintf(stderr, "\n");
            return 2;
        } else if (nwant < 64)
            want[nwant++] = argv[i];
    }
    if (threads < 1 || events < 1) {
        fprintf(stderr, "bench/nexmark: --events and --threads must be positive\n");
        return 2;
    }
    for (int w = 0; w < nwant; w++) {
        int found = 0;
        for (int q = 0; q < NQ; q++)
            found |= !strcmp(want[w], queries[q].name);
        if (!found) {
            fprintf(stderr, "bench/nexmark: unknown query '%s'\n", want[w]);
            return 2;
        }
    }
    result_t res[NQ];
    int ran[NQ] = {0}, failed = 0;
    printf("Nexmark, %llu events, %d stream thread%s, generator in-process\n", events, threads,
           threads == 1 ? "" : "s");
    printf("%-5s %14s %12s %10s %9s %9s %10s\n", "query", "events/cpu-s", "cpu-s", "wall-s",
           "p50-ms", "p99-ms", "peak-RSS");
    for (int q = 0; q < NQ; q++) {
        int sel = nwant == 0;
        for (int w = 0; w < nwant; w++)
            sel |= !strcmp(want[w], queries[q].name);
        if (!sel)
            continue;
        ran[q] = 1;
        if (run_query(qdir, &queries[q], events, threads, &res[q])) {
            printf("%-5s FAILED: %s\n", queries[q].name, res[q].err);
            failed++;
            ran[q] = 0;
            continue;
        }
        result_t *r = &res[q];
        printf("%-5s %14.0f %12.3f %10.3f %9.3f %9.3f %9.1fM\n", queries[q].name,
               r->cpu > 0 ? (double)r->events / r->cpu : 0, r->cpu, r->wall, r->p50_ms,
               r->p99_ms, (double)r->rss / (1024.0 * 1024.0));
        fflush(stdout);
    }
    /* latest.json */
    char path[1024];
    snprintf(path, sizeof(path), "%s/latest.json", results);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench/nexmark: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(f,
            "{\n  \"benchmark\": \"nexmark\",\n  \"date\": \"%s\",\n  \"events\": %llu,\n"
            "  \"threads\": %d,\n  \"machine_cores\": %ld,\n  \"eddy_version\": \"%s\",\n"
            "  \"queries\": {",
            date, events, threads, ncpu, eddy_version());
    int first = 1;
    for (int q = 0; q < NQ; q++) {
        if (!ran[q])
            continue;
        result_t *r = &res[q];
        fprintf(f,
                "%s\n    \"%s\": {\"events\": %llu, \"events_out\": %llu, \"cpu_seconds\": %.4f, "
                "\"events_per_cpu_second\": %.1f, \"wall_seconds\": %.4f, "
                "\"events_per_second\": %.1f, \"peak_rss_bytes\": %lld, "
                "\"latency_p50_ms\": %.4f, \"latency_p99_ms\": %.4f, \"latency_max_ms\": %.4f, "
                "\"flink_events_per_core_second\": %.0f, "
                "\"feldera_events_per_core_second\": %.0f}",
                first ? "" : ",", queries[q].name, r->events, r->out, r->cpu,
                r->cpu > 0 ? (double)r->events / r->cpu : 0, r->wall,
                r->wall > 0 ? (double)r->events / r->wall : 0, r->rss, r->p50_ms, r->p99_ms,
                r->max_ms, queries[q].flink, queries[q].feldera);
        first = 0;
    }
    fprintf(f, "\n  }\n}\n");
    fclose(f);
    /* latest.md */
    snprintf(path, sizeof(path), "%s/latest.md", results);
    f = fopen(path, "w");
    if (f) {
        fprintf(f,
                "Nexmark, %llu events, %d stream thread(s), generator included, %s.\n\n"
                "| query | what | eddy events/CPU-s | Flink /core | Feldera /core | eddy vs "
                "Feldera | p50 ms | p99 ms | peak RSS |\n"
                "|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
                events, threads, date);
        for (int q = 0; q < NQ; q++) {
            if (!ran[q])
                continue;
            result_t *r = &res[q];
            double eps = r->cpu > 0 ? (double)r->events / r->cpu : 0;
            char a[32], b[32], c[32];
            char ratio[32];
            if (queries[q].feldera > 0)
                snprintf(ratio, sizeof(ratio), "%.1fx", eps / queries[q].feldera);
            else
                snprintf(ratio, sizeof(ratio), "n/a");
            fprintf(f, "| %s | %s | %s | %s | %s | %s | %.3f | %.3f | %.0f MiB |\n",
                    queries[q].name, queries[q].what, human(eps, a, sizeof(a)),
                    human(queries[q].flink, b, sizeof(b)),
                    queries[q].feldera > 0 ? human(queries[q].feldera, c, sizeof(c)) : "n/a",
                    ratio, r->p50_ms, r->p99_ms, (double)r->rss / (1024.0 * 1024.0));
        }
        fclose(f);
    }
    printf("wrote %s/latest.json and %s/latest.md\n", results, results);
    return failed ? 1 : 0;
}
