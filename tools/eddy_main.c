/*
 * eddy: the command-line front end.
 *
 *   eddy run FILE.yaml [--threads N] [--set key=value]... [--stats-json F] [--quiet]
 *   eddy check FILE.yaml
 *   eddy describe FILE.yaml [--format mermaid|dot]
 *   eddy version
 *
 * Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad topology.
 */
#include "eddy.h"
#include "cli_common.h"
#include "plan.h" /* eddy__engine_open_all (dump) */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static eddy_engine_t *volatile g_eng;
static eddy_engine_t *g_eng_stats; /* for --stats-json store figures */
static volatile sig_atomic_t g_signals;

static void on_signal(int sig) {
    (void)sig;
    g_signals++;
    if (g_eng)
        eddy_engine_stop(g_eng);
    if (g_signals > 2)
        _exit(130); /* a third Ctrl-C: the user really wants out */
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: eddy run FILE.yaml [--threads N] [--set KEY=VALUE]... [--stats-json FILE] "
            "[--quiet]\n"
            "       eddy check FILE.yaml\n"
            "       eddy describe FILE.yaml [--format mermaid|dot]\n"
            "       eddy dump FILE.yaml [STORE] [--set KEY=VALUE]...\n"
            "       eddy version\n"
            "\n"
            "run       run a topology until its bounded sources end or Ctrl-C\n"
            "check     validate a topology; exit 0 when valid, 2 with FILE:LINE:COL: message\n"
            "describe  print the compiled dataflow graph (Mermaid by default, or Graphviz DOT)\n"
            "dump      restore the topology's state and print a store (all stores when none is\n"
            "          named) as JSON lines, in key order; the topology must not be running\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static long long lag_ms(const eddy_stats_t *st) {
    if (st->watermark_ms == INT64_MIN || st->max_event_ms == INT64_MIN)
        return -1;
    if (st->watermark_ms == INT64_MAX)
        return 0;
    return (long long)(st->max_event_ms - st->watermark_ms);
}

static void write_stats_json(const char *path, const eddy_stats_t *st, double rate,
                             double elapsed, int final) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f,
            "{\"elapsed_seconds\": %.3f, \"events_in\": %llu, \"events_out\": %llu, "
            "\"events_per_second\": %.1f, \"watermark_ms\": %lld, \"max_event_ms\": %lld, "
            "\"watermark_lag_ms\": %lld, \"late\": %llu, \"dead_lettered\": %llu, "
            "\"tasks\": %d, \"threads\": %d, \"cpu_seconds\": %.3f, \"commits\": %llu, "
            "\"recoveries\": %llu, "
            "\"state_memory_bytes\": %lld, \"state_memory_budget_bytes\": %lld, ",
            elapsed, (unsigned long long)st->events_in, (unsigned long long)st->events_out, rate,
            (long long)st->watermark_ms, (long long)st->max_event_ms, lag_ms(st),
            (unsigned long long)st->late, (unsigned long long)st->dead_lettered, st->tasks,
            st->threads, cpu_s(), (unsigned long long)st->commits,
            (unsigned long long)st->recoveries, (long long)st->state_memory_bytes, (long long)st->state_memory_budget_bytes);
    eddy_store_stats_t ss[64];
    if (g_eng_stats) {
        eddy_memory_stats_t ms;
        eddy_engine_memory_stats(g_eng_stats, &ms);
        fprintf(f,
                "\"memory\": {\"budget_bytes\": %lld, \"heap_bytes\": %lld, "
                "\"heap_peak_bytes\": %lld, \"exchange_bytes\": %lld, "
                "\"exchange_budget_bytes\": %lld, \"throttled\": %d, "
                "\"throttle_events\": %llu, \"throttled_ms\": %llu}, ",
                (long long)ms.budget_bytes, (long long)ms.heap_bytes,
                (long long)ms.heap_peak_bytes, (long long)ms.exchange_bytes,
                (long long)ms.exchange_budget_bytes, ms.throttled,
                (unsigned long long)ms.throttle_events, (unsigned long long)ms.throttled_ms);
    }
    fprintf(f, "\"stores\": [");
    int n = g_eng_stats ? eddy_engine_store_stats(g_eng_stats, ss, 64) : 0;
    for (int i = 0; i < n && i < 64; i++) {
        uint64_t lookups = ss[i].cache_hits + ss[i].cache_misses;
        fprintf(f,
                "%s{\"name\": \"%s\", \"estimate_keys\": %llu, \"size_bytes\": %llu, "
                "\"cache_hit_rate\": %.4f, \"restored_records\": %llu, "
                "\"restore_seconds\": %.3f}",
                i ? ", " : "", ss[i].name, (unsigned long long)ss[i].estimate_keys,
                (unsigned long long)ss[i].size_bytes,
                lookups ? (double)ss[i].cache_hits / (double)lookups : 0.0,
                (unsigned long long)ss[i].restored_records, ss[i].restore_seconds);
    }
    fprintf(f, "], \"final\": %s}\n", final ? "true" : "false");
    fclose(f);
    rename(tmp, path);
}

static void status_line(const eddy_stats_t *st, double rate, int final) {
    char lag[32];
    long long l = lag_ms(st);
    if (l < 0)
        snprintf(lag, sizeof(lag), "-");
    else
        snprintf(lag, sizeof(lag), "%lldms", l);
    fprintf(stderr,
            "\r\033[K%s %llu events in, %llu out, %.0f ev/s, watermark lag %s, late %llu, "
            "dead-lettered %llu%s",
            final ? "done:" : "eddy:", (unsigned long long)st->events_in,
            (unsigned long long)st->events_out, rate, lag, (unsigned long long)st->late,
            (unsigned long long)st->dead_lettered, final ? "\n" : "");
    fflush(stderr);
}

static int cmd_run(int argc, char **argv) {
    const char *file = NULL, *stats_json = NULL;
    int quiet = 0;
    eddy_conf_t *conf = eddy_conf_new();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char kv[512];
        if (!strcmp(a, "--threads") && i + 1 < argc) {
            snprintf(kv, sizeof(kv), "threads=%s", argv[++i]);
            val = kv;
        } else if (!strcmp(a, "--set") && i + 1 < argc) {
            val = argv[++i];
        } else if (!strcmp(a, "--stats-json") && i + 1 < argc) {
            stats_json = argv[++i];
            continue;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        } else if (a[0] == '-') {
            fprintf(stderr, "eddy run: unknown option '%s'\n", a);
            usage(stderr);
            eddy_conf_destroy(conf);
            return 2;
        } else if (!file) {
            file = a;
            continue;
        } else {
            fprintf(stderr, "eddy run: one topology file only ('%s')\n", a);
            eddy_conf_destroy(conf);
            return 2;
        }
        if (eddy_cli_set_kv(conf, val, "eddy run")) {
            eddy_conf_destroy(conf);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        eddy_conf_destroy(conf);
        return 2;
    }
    eddy_topology_t *topo;
    eddy_engine_t *eng = eddy_cli_open_engine(file, conf, &topo);
    if (!eng)
        return 2;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    g_eng = eng;
    g_eng_stats = eng;
    int tty = isatty(2) && !quiet;
    double t0 = now_s(), last_t = t0, last_stats = t0;
    unsigned long long last_n = 0;
    double rate = 0;
    eddy_err_t err = eddy_engine_start(eng);
    eddy_stats_t st;
    while (!err) {
        err = eddy_engine_poll(eng, 200);
        if (err != EDDY_ERR_TIMEOUT)
            break;
        err = EDDY_OK;
        double t = now_s();
        eddy_engine_stats(eng, &st);
        if (t - last_t >= 0.5) {
            rate = (double)(st.events_in - last_n) / (t - last_t);
            last_n = st.events_in;
            last_t = t;
            if (tty)
                status_line(&st, rate, 0);
        }
        if (stats_json && t - last_stats >= 1.0) {
            write_stats_json(stats_json, &st, rate, t - t0, 0);
            last_stats = t;
        }
    }
    g_eng = NULL;
    eddy_engine_stats(eng, &st);
    double elapsed = now_s() - t0;
    double avg = elapsed > 0 ? (double)st.events_in / elapsed : 0;
    if (tty)
        status_line(&st, avg, 1);
    else if (!quiet)
        fprintf(stderr,
                "eddy: done: %llu events in, %llu out, %.0f ev/s, late %llu, dead-lettered "
                "%llu\n",
                (unsigned long long)st.events_in, (unsigned long long)st.events_out, avg,
                (unsigned long long)st.late, (unsigned long long)st.dead_lettered);
    if (stats_json)
        write_stats_json(stats_json, &st, avg, elapsed, 1);
    int rc = 0;
    if (err) {
        const char *why = eddy_engine_last_error(eng);
        fprintf(stderr, "eddy: stopped: %s\n", why[0] ? why : eddy_err2str(err));
        rc = 1;
    }
    g_eng_stats = NULL;
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    return rc;
}

static int cmd_check(int argc, char **argv) {
    if (argc != 1) {
        usage(stderr);
        return 2;
    }
    char errstr[1024];
    eddy_topology_t *topo = eddy_topology_load_file(argv[0], errstr, sizeof(errstr));
    if (!topo) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    eddy_err_t err = eddy_topology_check(topo, errstr, sizeof(errstr));
    eddy_topology_destroy(topo);
    if (err) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    printf("%s: ok\n", argv[0]);
    return 0;
}

static int cmd_describe(int argc, char **argv) {
    const char *file = NULL, *format = "mermaid";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc)
            format = argv[++i];
        else if (!strncmp(argv[i], "--format=", 9))
            format = argv[i] + 9;
        else if (!file && argv[i][0] != '-')
            file = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        return 2;
    }
    char errstr[1024];
    eddy_topology_t *topo = eddy_topology_load_file(file, errstr, sizeof(errstr));
    if (!topo) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    char *out = eddy_topology_describe(topo, format, errstr, sizeof(errstr));
    eddy_topology_destroy(topo);
    if (!out) {
        fprintf(stderr, "%s\n", errstr);
        return 2;
    }
    fputs(out, stdout);
    eddy_free(out);
    return 0;
}

static eddy_err_t print_rec(const eddy_record_t *rec, void *opaque) {
    const char *store = opaque;
    size_t need = eddy_record_to_json(rec, NULL, 0);
    char *buf = malloc(need + 1);
    if (!buf)
        return EDDY_ERR_NOMEM;
    eddy_record_to_json(rec, buf, need + 1);
    printf("{\"store\":\"%s\",\"value\":%s}\n", store, buf);
    free(buf);
    return EDDY_OK;
}

static int cmd_dump(int argc, char **argv) {
    const char *file = NULL, *store = NULL;
    eddy_conf_t *conf = eddy_conf_new();
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (eddy_cli_set_kv(conf, argv[++i], "eddy dump")) {
                eddy_conf_destroy(conf);
                return 2;
            }
        } else if (!file) {
            file = argv[i];
        } else if (!store) {
            store = argv[i];
        } else {
            usage(stderr);
            eddy_conf_destroy(conf);
            return 2;
        }
    }
    if (!file) {
        usage(stderr);
        eddy_conf_destroy(conf);
        return 2;
    }
    eddy_topology_t *topo;
    eddy_engine_t *eng = eddy_cli_open_engine(file, conf, &topo);
    if (!eng)
        return 2;
    /* tasks a consumer group would assign open here, to be read */
    char errstr[1024];
    if (eddy__engine_open_all(eng, errstr, sizeof(errstr))) {
        fprintf(stderr, "eddy dump: %s\n", errstr);
        eddy_engine_destroy(eng);
        eddy_topology_destroy(topo);
        return 1;
    }
    const char *names[256];
    int n = eddy_engine_stores(eng, names, 256);
    int rc = 0, found = 0;
    for (int i = 0; i < n && i < 256; i++) {
        if (store && strcmp(store, names[i]))
            continue;
        found = 1;
        char cursor[8200] = "";
        do {
            char next[8200];
            eddy_err_t err = eddy_engine_query_scan(eng, names[i], cursor, 1000, print_rec,
                                                    (void *)names[i], next, sizeof(next));
            if (err) {
                fprintf(stderr, "eddy dump: %s: %s\n", names[i], eddy_err2str(err));
                rc = 1;
                break;
            }
            memcpy(cursor, next, sizeof(cursor));
        } while (cursor[0]);
    }
    if (store && !found) {
        fprintf(stderr, "eddy dump: no queryable store '%s'\n", store);
        rc = 2;
    }
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "describe"))
        return cmd_describe(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump"))
        return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("eddy %s\n", eddy_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "eddy: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
