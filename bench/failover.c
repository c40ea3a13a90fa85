/*
 * bench/failover: how long the partitions of a dead instance stay without
 * processing, and what 1, 2 and 3 instances process together.
 *
 * On the mock cluster this program holds (3 brokers, real TCP): an input
 * topic of KEYS JSON records, each a new key, over PARTS partitions; a
 * topology counting per key (a kv store of KEYS keys behind a repartition
 * topic, state.changelog: kafka); instances are `mcp-serve --http`
 * processes.
 *
 *  - throughput: n = 1, 2, 3 instances of a new application read the whole
 *    input; events/s = KEYS / (time from the first record counted to every
 *    partition caught up);
 *  - failover: after the 3-instance run (KEYS keys of state), the instance
 *    with the most tasks is killed with SIGKILL and one record per input
 *    partition is produced. detection = kill -> the first restore of one of
 *    its tasks starts on a survivor (the restore's own log line gives its
 *    duration); recovery = that start -> every marker record counted in the
 *    state (its partition is processed again).
 *  - the same failover with standby replicas, for each R of
 *    --standby-replicas (1,2): three instances of a new application with
 *    standby.replicas: R read the whole input, get --standby-wait-s to let
 *    their standby copies catch up, and the one with most tasks is killed
 *    (the first R's figures are the *_standby keys, every R's are in
 *    standby_runs); their read of the input gives
 *    events_per_second_3_standby.
 *  - after each failover the state is checked: a scan of the survivors'
 *    store must give every key produced once, with count 1.
 *
 * Usage: failover_bench [--keys N] [--partitions P] [--session-timeout-ms T]
 *                       [--standby-wait-s S] [--standby-replicas R[,R...]] [--out FILE]
 * (bench/failover runs it with the defaults and writes
 * bench/results/failover.json)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* the harness uses cmocka's assertions */
#include <cmocka.h>

#include "kafka_harness.h"
#include "scaleout_harness.h"

static char g_serve[1024], g_dir[256];
static int g_keys = 1000000, g_parts = 16, g_session_ms = 3000, g_standby_wait_s = 20;
/* records produced to fo-in so far, each a new key; failovers run so far
 * (each one's markers are new keys: an application started later reads
 * the earlier markers with the rest of the input) */
static long g_produced;
static int g_runs;

/* Stop here: say why, kill every instance still running (none is left
 * behind) and exit 1. */
static void __attribute__((format(printf, 1, 2), noreturn)) die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "failover: FAILED: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nfailover: instances' logs and state kept in %s\n", g_dir);
    so_kill_all();
    exit(1);
}

static void write_topology(const char *path, const char *app, int inst, int replicas) {
    FILE *f = fopen(path, "w");
    if (!f)
        die("%s: %s", path, strerror(errno));
    char sbset[64];
    snprintf(sbset, sizeof(sbset), ", standby.replicas: %d", replicas);
    fprintf(f,
            "application: %s\n"
            "settings: {threads: 1, commit.interval.ms: 500, state.dir: '%s/state-%s-%d',\n"
            "           state.changelog: kafka%s}\n"
            "kafka: {bootstrap.servers: '%s', session.timeout.ms: %d,\n"
            "        heartbeat.interval.ms: 500, partition.assignment.strategy: "
            "cooperative-sticky}\n"
            "sources:\n"
            "  - {name: clicks, type: kafka, topic: fo-in, format: json,\n"
            "     timestamp: ts, schema: {user: string, n: int, ts: int}}\n"
            "pipelines:\n"
            "  - name: counts\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - aggregate: {by: user, fields: {clicks: count()}, store: per_user}\n"
            "    to: none\n"
            "sinks: [{name: none, type: blackhole}]\n",
            app, g_dir, app, inst, replicas ? sbset : "", g_bootstrap,
            g_session_ms);
    fclose(f);
}

static void produce_input(void) {
    rd_kafka_t *rk = producer();
    for (int i = 0; i < g_keys; i++) {
        char buf[128];
        int len = snprintf(buf, sizeof(buf), "{\"user\": \"k%d\", \"n\": %d, \"ts\": %lld}", i, i,
                           1700000000000LL + i);
        produce_one(rk, "fo-in", i % g_parts, buf, (size_t)len);
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_destroy(rk);
    g_produced += g_keys;
}

/* Sum over instances of events_in, and whether every partition is open
 * somewhere with lag 0. */
static long progress(so_inst_t *in, int n, bool *caught_up) {
    long events = 0, all = 0, lag_sum = 0;
    for (int i = 0; i < n; i++) {
        if (in[i].pid <= 0)
            continue;
        bool err = false;
        json_t *m = so_tool(&in[i], "get_metrics", json_object(), &err);
        if (!m || err) {
            json_decref(m);
            *caught_up = false;
            return -1;
        }
        events += (long)json_integer_value(json_object_get(m, "events_in"));
        json_decref(m);
        long lag = 0, bits = so_parts(&in[i], "fo-in", &lag);
        all |= bits > 0 ? bits : 0;
        lag_sum += lag;
    }
    *caught_up = all == (1L << g_parts) - 1 && lag_sum == 0;
    return events;
}

static void start_all(so_inst_t *in, int n, const char *app, int replicas) {
    /* with PARTS partitions: a cluster reached over TCP would make them
     * with its default count when first asked about them */
    char t[128];
    snprintf(t, sizeof(t), "%s-per_user-changelog", app);
    create_topic(t, g_parts);
    snprintf(t, sizeof(t), "%s-counts-1-key_by-repartition", app);
    create_topic(t, g_parts);
    for (int i = 0; i < n; i++) {
        char y[512];
        snprintf(y, sizeof(y), "%s/%s-%d.yaml", g_dir, app, i);
        write_topology(y, app, i, replicas);
        if (!so_start(&in[i], g_serve, y))
            die("instance %d of %s did not start (see %s.log)", i, app, y);
    }
}

/* events/s of n instances over the whole input. */
static double throughput(so_inst_t *in, int n, const char *app, int replicas) {
    start_all(in, n, app, replicas);
    double t0 = -1, t1 = -1;
    for (double end = so_now() + 900; so_now() < end; so_sleep_ms(100)) {
        bool done = false;
        long ev = progress(in, n, &done);
        if (ev > 0 && t0 < 0)
            t0 = so_now();
        if (done && ev >= g_keys) {
            t1 = so_now();
            break;
        }
    }
    if (t1 < 0)
        die("%d instance(s) of %s did not finish the input within 900 s", n, app);
    double eps = (double)g_keys / (t1 - t0);
    fprintf(stderr, "failover: %d instance(s): %d events in %.2f s: %.0f events/s\n", n, g_keys,
            t1 - t0, eps);
    return eps;
}

/* The earliest start of a rebuild logged in path since offset *off: the
 * line's arrival time minus the duration it reports. */
static void scan_restores(const char *path, long *off, double *first_start, double *restored_s,
                          long *records, int *warm) {
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fseek(f, *off, SEEK_SET);
    char line[1024];
    while (fgets(line, sizeof(line), f)) {
        const char *p = strstr(line, "rebuilt from the Kafka changelog");
        const char *w = strstr(line, "opened from its standby copy, ");
        long recs = 0;
        double s = 0;
        if ((p && (p = strstr(p, "): ")) && sscanf(p, "): %ld records in %lf s", &recs, &s) == 2) ||
            (w && sscanf(w, "opened from its standby copy, %ld changelog records after it "
                            "replayed in %lf s", &recs, &s) == 2)) {
            double start = so_now() - s;
            if (*first_start < 0 || start < *first_start)
                *first_start = start;
            *restored_s += s;
            *records += recs;
            *warm += w != NULL;
        }
    }
    *off = ftell(f);
    fclose(f);
}

typedef struct {
    int moved; /* partitions moved */
    double detection, recovery, total, restored_s;
    long restored;
    int warm; /* of them, opened from a standby copy */
} fo_result_t;

/* The state after a failover, read through instance `asked` (scan_store,
 * merged over the survivors): every key produced so far once, each with
 * clicks 1 (every input record is a new key). Dies otherwise. */
static void verify_state(so_inst_t *asked) {
    double t0 = so_now();
    long entries = 0, bad = 0;
    char *cursor = NULL, first_bad[256] = "";
    do {
        json_t *args = json_pack("{s:s, s:i}", "store", "per_user", "limit", 500);
        if (cursor)
            json_object_set_new(args, "cursor", json_string(cursor));
        bool err = false;
        json_t *r = so_tool(asked, "scan_store", args, &err);
        free(cursor);
        cursor = NULL;
        if (!r || err || json_is_true(json_object_get(r, "partial"))) {
            char *d = r ? json_dumps(r, JSON_COMPACT) : NULL;
            fprintf(stderr, "failover: scan_store after %ld entries: %.600s\n", entries,
                    d ? d : "no answer");
            free(d);
            json_decref(r);
            die("the survivors' per_user store could not be read whole after the failover");
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(r, "items"), i, it) {
            entries++;
            if (json_integer_value(json_object_get(it, "clicks")) != 1 && !bad++) {
                char *d = json_dumps(it, JSON_COMPACT);
                snprintf(first_bad, sizeof(first_bad), "%s", d ? d : "?");
                free(d);
            }
        }
        const char *nc = json_string_value(json_object_get(r, "next_cursor"));
        cursor = nc ? strdup(nc) : NULL;
        json_decref(r);
    } while (cursor);
    if (entries != g_produced || bad)
        die("after the failover the survivors hold %ld keys (expected %ld, one per input record), "
            "%ld of them with clicks other than 1 (the first: %s)",
            entries, g_produced, bad, first_bad[0] ? first_bad : "none");
    fprintf(stderr, "failover: state checked: %ld keys, each counted once (%.1f s)\n", entries,
            so_now() - t0);
}

/* Kill the instance with most tasks; time until its partitions are
 * processed again on the survivors (which keep running), then check the
 * state. Dies (killing every instance) when that does not happen. */
static fo_result_t failover(so_inst_t *in) {
    int run = ++g_runs;
    /* failover: kill the instance of the 3-instance run with most tasks */
    long parts[3];
    int victim = 0, most = -1;
    for (int i = 0; i < 3; i++) {
        long lag;
        parts[i] = so_parts(&in[i], "fo-in", &lag);
        int c = __builtin_popcountl(parts[i] > 0 ? (unsigned long)parts[i] : 0);
        if (c > most) {
            most = c;
            victim = i;
        }
    }
    if (most <= 0)
        die("no instance runs a task before the kill");
    long off[3] = {0};
    double first_start = -1, restored_s = 0;
    long restored = 0;
    int warm = 0;
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(in[i].log, "r");
        if (f) {
            fseek(f, 0, SEEK_END);
            off[i] = ftell(f);
            fclose(f);
        }
    }
    double t_kill = so_now();
    so_stop(&in[victim], SIGKILL);
    /* a marker per partition of the victim: a key new to this run */
    rd_kafka_t *rk = producer();
    for (int p = 0; p < g_parts; p++)
        if (parts[victim] >> p & 1) {
            char buf[128];
            int len = snprintf(buf, sizeof(buf),
                               "{\"user\": \"marker%d-%d\", \"n\": 0, \"ts\": %lld}", run, p,
                               1700000000000LL + g_keys);
            produce_one(rk, "fo-in", p, buf, (size_t)len);
            g_produced++;
        }
    rd_kafka_flush(rk, 10000);
    rd_kafka_destroy(rk);
    int asked = (victim + 1) % 3;
    double t_done = -1;
    int found = 0;
    char last[600] = "";
    for (double end = so_now() + 300; so_now() < end && t_done < 0; so_sleep_ms(20)) {
        for (int i = 0; i < 3; i++)
            if (i != victim)
                scan_restores(in[i].log, &off[i], &first_start, &restored_s, &restored, &warm);
        found = 0;
        for (int p = 0; p < g_parts; p++) {
            if (!(parts[victim] >> p & 1))
                continue;
            char k[32];
            snprintf(k, sizeof(k), "marker%d-%d", run, p);
            bool err = false;
            json_t *r = so_tool(&in[asked], "get_value",
                                json_pack("{s:s, s:s}", "store", "per_user", "key", k), &err);
            /* processed by its new owner: a standby copy's answer (which
             * the asked survivor may give while the task moves) does not
             * count */
            const char *src = json_string_value(json_object_get(r, "source"));
            bool ok = r && !err && json_is_true(json_object_get(r, "found")) &&
                      json_integer_value(json_object_get(json_object_get(r, "value"), "clicks")) ==
                          1 &&
                      !(src && !strcmp(src, "standby"));
            if (!ok) {
                char *d = r ? json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
                snprintf(last, sizeof(last), "%s: %s", k, d ? d : "no answer");
                free(d);
            }
            found += ok;
            json_decref(r);
            if (!ok)
                break;
        }
        if (found == most)
            t_done = so_now();
    }
    for (int i = 0; i < 3; i++)
        if (i != victim)
            scan_restores(in[i].log, &off[i], &first_start, &restored_s, &restored, &warm);
    if (t_done < 0)
        die("instance %d (%d of %d tasks) SIGKILLed: its partitions' markers were not all "
            "processed again within 300 s (the first missing, asked of instance %d: %s); the "
            "survivors logged %ld changelog records restored (%d tasks opened from a standby "
            "copy)",
            victim, most, g_parts, asked, last, restored, warm);
    if (first_start < 0)
        die("instance %d SIGKILLed: its partitions' markers were processed again after %.2f s, "
            "but no survivor logged opening one of its tasks (\"rebuilt from the Kafka "
            "changelog\" or \"opened from its standby copy\")",
            victim, t_done - t_kill);
    double detection = first_start - t_kill, recovery = t_done - first_start;
    fprintf(stderr,
            "failover: %d of %d partitions moved; detection %.2f s (session.timeout.ms %d), "
            "recovery %.2f s (%ld changelog records rebuilt in %.2f s; %d tasks opened from "
            "a standby copy), total %.2f s\n",
            most, g_parts, detection, g_session_ms, recovery, restored, restored_s, warm,
            t_done - t_kill);
    verify_state(&in[asked]);
    return (fo_result_t){.moved = most, .detection = detection, .recovery = recovery,
                         .total = t_done - t_kill, .restored_s = restored_s,
                         .restored = restored, .warm = warm};
}

int main(int argc, char **argv) {
    const char *out = "bench/results/failover.json";
    int reps[4] = {1, 2}, nrep = 2; /* --standby-replicas */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--keys"))
            g_keys = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--partitions"))
            g_parts = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--session-timeout-ms"))
            g_session_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--standby-wait-s"))
            g_standby_wait_s = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--standby-replicas")) {
            nrep = 0;
            for (char *t = strtok(argv[i + 1], ","); t && nrep < 4; t = strtok(NULL, ","))
                reps[nrep++] = atoi(t);
        }
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
    }
    bool bad_rep = nrep == 0;
    for (int r = 0; r < nrep; r++)
        bad_rep = bad_rep || reps[r] < 1 || reps[r] > 16;
    if (g_parts < 3 || g_parts > 62 || g_keys < 1000 || bad_rep) {
        fprintf(stderr, "failover: --partitions 3..62, --keys >= 1000, --standby-replicas "
                        "1..16[,...] (at most 4)\n");
        return 2;
    }
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_serve, sizeof(g_serve), "%s/mcp-serve", bin ? bin : "build");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy-failover-XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setup(NULL);
    create_topic("fo-in", g_parts);
    double tp0 = so_now();
    produce_input();
    fprintf(stderr, "failover: %d records produced in %.1f s\n", g_keys, so_now() - tp0);

    double eps[4] = {0};
    so_inst_t in[3];
    for (int n = 1; n <= 3; n++) {
        char app[32];
        snprintf(app, sizeof(app), "fo%d", n);
        memset(in, 0, sizeof(in));
        eps[n] = throughput(in, n, app, 0);
        if (n < 3)
            for (int i = 0; i < n; i++)
                so_stop(&in[i], SIGTERM);
    }

    fo_result_t cold = failover(in);
    for (int i = 0; i < 3; i++)
        so_stop(&in[i], SIGTERM);
    /* again with standby replicas: three instances of a new application,
     * each tailing the changelogs of the tasks it keeps copies of */
    fo_result_t warms[4];
    double eps3s[4];
    for (int r = 0; r < nrep; r++) {
        char app[32];
        snprintf(app, sizeof(app), "fo3s%d", reps[r]);
        memset(in, 0, sizeof(in));
        eps3s[r] = throughput(in, 3, app, reps[r]);
        fprintf(stderr, "failover: standby.replicas %d: %d s for the standby copies to catch up\n",
                reps[r], g_standby_wait_s);
        so_sleep_ms(g_standby_wait_s * 1000);
        warms[r] = failover(in);
        for (int i = 0; i < 3; i++)
            so_stop(&in[i], SIGTERM);
    }
    fo_result_t warm = warms[0];

    char when[64];
    FILE *f = so_results_open("failover", out, when, sizeof(when));
    if (!f)
        die("cannot write the results");
    fprintf(f,
            "{\n"
            "  \"date\": \"%s\",\n"
            "  \"command\": \"bench/failover\",\n"
            "  \"cluster\": \"librdkafka mock cluster (3 brokers, TCP, in the bench process)\",\n"
            "  \"machine\": \"2 shared cores; all instances and the cluster on it\",\n"
            "  \"keys_of_state\": %d,\n"
            "  \"partitions\": %d,\n"
            "  \"instances\": 3,\n"
            "  \"partitions_moved\": %d,\n"
            "  \"assignor\": \"cooperative-sticky\",\n"
            "  \"session_timeout_ms\": %d,\n"
            "  \"detection_seconds\": %.3f,\n"
            "  \"recovery_seconds\": %.3f,\n"
            "  \"total_seconds\": %.3f,\n"
            "  \"changelog_records_rebuilt\": %ld,\n"
            "  \"rebuild_seconds\": %.3f,\n"
            "  \"standby_replicas\": %d,\n"
            "  \"partitions_moved_standby\": %d,\n"
            "  \"partitions_opened_from_standby\": %d,\n"
            "  \"detection_seconds_standby\": %.3f,\n"
            "  \"recovery_seconds_standby\": %.3f,\n"
            "  \"total_seconds_standby\": %.3f,\n"
            "  \"changelog_records_replayed_standby\": %ld,\n"
            "  \"standby_wait_seconds\": %d,\n"
            "  \"events_per_second\": {\"1\": %.0f, \"2\": %.0f, \"3\": %.0f},\n"
            "  \"events_per_second_3_standby\": %.0f,\n",
            when, g_keys, g_parts, cold.moved, g_session_ms, cold.detection, cold.recovery,
            cold.total, cold.restored, cold.restored_s, reps[0], warm.moved, warm.warm,
            warm.detection, warm.recovery, warm.total, warm.restored, g_standby_wait_s, eps[1],
            eps[2], eps[3], eps3s[0]);
    /* every standby.replicas run, and flat keys per R for the later ones */
    for (int r = 1; r < nrep; r++)
        fprintf(f,
                "  \"recovery_seconds_standby_%d\": %.3f,\n"
                "  \"detection_seconds_standby_%d\": %.3f,\n"
                "  \"total_seconds_standby_%d\": %.3f,\n",
                reps[r], warms[r].recovery, reps[r], warms[r].detection, reps[r],
                warms[r].total);
    fprintf(f, "  \"standby_runs\": [\n");
    for (int r = 0; r < nrep; r++)
        fprintf(f,
                "    {\"standby_replicas\": %d, \"partitions_moved\": %d, "
                "\"partitions_opened_from_standby\": %d, \"detection_seconds\": %.3f, "
                "\"recovery_seconds\": %.3f, \"total_seconds\": %.3f, "
                "\"changelog_records_replayed\": %ld, \"replay_seconds\": %.3f, "
                "\"events_per_second_3\": %.0f}%s\n",
                reps[r], warms[r].moved, warms[r].warm, warms[r].detection, warms[r].recovery,
                warms[r].total, warms[r].restored, warms[r].restored_s, eps3s[r],
                r + 1 < nrep ? "," : "");
    fprintf(f, "  ],\n  \"state_checked\": \"after each failover: every key once, count 1\"\n}\n");
    fclose(f);
    fprintf(stderr, "failover: wrote %s\n", out);
    teardown(NULL);
    remove_dir(g_dir);
    curl_global_cleanup();
    return 0;
}
