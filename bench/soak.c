/*
 * bench/soak: a full exactly-once topology under random broker faults and
 * MCP queries for a given time; checks every result and watches the
 * engine's memory and open files.
 *
 * This program holds the mock cluster (3 brokers, real TCP on 127.0.0.1)
 * and runs the engine as `mcp-serve --http` in a child process (restarted,
 * as a supervisor would, when it dies or its engine stops). While it runs:
 *  - a producer writes JSON clicks {user, n, k, ts} at --rate events/s to
 *    `soak-in` (3 partitions; record n: user u(n % 17), k = n / 10, event
 *    time T0 + n ms, partition n % 3) and one tag {tk, tag, tts} per k to
 *    `soak-tags` (3 partitions, tts = T0 + 10 k);
 *  - the topology: a per-user table aggregate (store per_user, behind a
 *    repartition), a 2 s tumbling window aggregate per user, an interval
 *    join of the clicks with the tags on k, a CEP pattern per user (an
 *    event with n % 4 = 0 directly followed by the user's next event, n %
 *    4 = 1), and a copy of every click; exactly_once, 2 threads;
 *  - a reader consumes the four output topics as they are written (the
 *    mock keeps only ~100,000 messages per partition) and deduplicates each
 *    result by the source record(s) it comes from (the mock does not
 *    isolate aborted transactions, so a replayed transaction's records are
 *    read twice): copies and join rows by n, windows by (user, start), CEP
 *    matches by their first event's n; a repeat with other values, or a
 *    result that should not exist, is a duplicate;
 *  - an MCP client calls get_value / get_metrics every --mcp-interval-ms;
 *  - every 2-6 s one random fault: a broker silent for 1-3 s, request
 *    errors on Produce, Fetch, OffsetCommit, TxnOffsetCommit,
 *    AddPartitionsToTxn or EndTxn, the leaders of every partition moved,
 *    or the group and transaction coordinators moved.
 * At the end the faults stop, the producer writes one record far ahead in
 * event time per partition (so that every window, join and CEP buffer
 * closes) and the soak waits for the outputs; then every expected result
 * (computed here from the input) must have been read, and the per_user
 * state (asked over MCP) must equal the input's counts and sums.
 *
 * Usage: soak_bench [--seconds N] [--rate EV_PER_S] [--mcp-interval-ms MS]
 *                   [--seed S] [--faults 0|1] [--only-faults KIND,...]
 *                   [--memory-max-mib M] [--out FILE]
 * (--memory-max-mib: the engine's memory.max.bytes, 256 by default, 0 none)
 * (bench/soak builds it and writes bench/results/soak.json)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* the harness uses cmocka's assertions */
#include <cmocka.h>

#include "faults/mock_faults.h"
#include "kafka_harness.h"
#include "scaleout_harness.h"

#define FLUSH_AHEAD_MS 600000 /* the end records' event time past the last */
#define APP "soak"

static int g_seconds = 60, g_rate = 1000, g_mcp_ms = 5, g_with_faults = 1;
static int g_memory_mib = 256; /* memory.max.bytes (0: none) */
static unsigned
    g_only_faults; /* --only-faults K1,K2: those kinds only (bits: index in inject_fault) */
static unsigned g_seed = 1;
static char g_serve[1024], g_dir[256], g_yaml[512];
static double g_t0; /* so_now() at the start of the run */

/* ------------------------------------------------------------ input */

static long g_cap;             /* most records the run may produce */
static double *g_sent_at;      /* per n: so_now() when produced */
static atomic_long g_produced; /* records produced (n < g_produced) */
static atomic_bool g_stop_input;
static atomic_long g_delivery_failed;
static long g_n_end = -1; /* the checked records: n < g_n_end */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) {
        atomic_fetch_add(&g_delivery_failed, 1);
        fprintf(stderr, "soak: input not delivered: %s\n", rd_kafka_err2str(m->err));
    }
}

static rd_kafka_t *input_producer(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    /* no duplicate and no reordering while the brokers misbehave: record n
     * stays at offset n / 3 of partition n % 3 */
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set(conf, "message.timeout.ms", "600000", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "soak: producer: %s\n", err);
        exit(1);
    }
    return rk;
}

static void produce_click(rd_kafka_t *rk, long n, long k, long long ts) {
    char buf[160];
    int len =
        snprintf(buf, sizeof(buf), "{\"user\": \"u%ld\", \"n\": %ld, \"k\": %ld, \"ts\": %lld}",
                 n % USERS, n, k, ts);
    produce_one(rk, "soak-in", (int)(n % PARTS), buf, (size_t)len);
}

static void produce_tag(rd_kafka_t *rk, long k, long long ts) {
    char buf[160];
    int len =
        snprintf(buf, sizeof(buf), "{\"tk\": %ld, \"tag\": \"t%ld\", \"tts\": %lld}", k, k, ts);
    produce_one(rk, "soak-tags", (int)((k < 0 ? -k : k) % PARTS), buf, (size_t)len);
}

/* Paced input until g_stop_input, then the end records. */
static void *producer_main(void *arg) {
    (void)arg;
    rd_kafka_t *rk = input_producer();
    long n = 0;
    while (!atomic_load(&g_stop_input)) {
        long due = (long)((so_now() - g_t0) * g_rate);
        if (due > g_cap - 16)
            due = g_cap - 16;
        for (; n < due; n++) {
            g_sent_at[n] = so_now();
            produce_click(rk, n, n / 10, T0 + n);
            if (n % 10 == 0)
                produce_tag(rk, n / 10, T0 + n);
            atomic_store(&g_produced, n + 1);
        }
        rd_kafka_poll(rk, 0);
        so_sleep_ms(2);
    }
    g_n_end = n;
    /* one record per partition far ahead (k and tk that match nothing):
     * every window, join entry and CEP buffer before them closes */
    long long far = T0 + n + FLUSH_AHEAD_MS;
    for (int p = 0; p < PARTS; p++, n++) {
        g_sent_at[n] = so_now();
        produce_click(rk, n, -1, far);
        produce_tag(rk, -100 - p, far);
    }
    atomic_store(&g_produced, n);
    if (rd_kafka_flush(rk, 120000))
        fprintf(stderr, "soak: the input producer did not flush within 120 s\n");
    rd_kafka_destroy(rk);
    return NULL;
}

/* ------------------------------------------------------------ outputs */

typedef struct {
    long lines;       /* records read */
    long distinct;    /* results seen (deduplicated) */
    long replayed;    /* identical repeats (aborted transactions the mock keeps) */
    long conflicting; /* a repeat with other values: a duplicated result */
    long unexpected;  /* a result no input record makes */
} out_stats_t;

enum { O_COPY, O_WIN, O_JOIN, O_CEP, O_N };
static const char *const g_out_topic[O_N] = {"soak-out", "soak-wout", "soak-jout", "soak-cout"};
static const char *const g_out_name[O_N] = {"copies", "windows", "join", "cep"};

static struct {
    out_stats_t st[O_N];
    unsigned char *copy, *join, *cep; /* per n: seen */
    unsigned char *in, *tag;          /* per n, per k: the input record read back */
    long in_offset_gaps;              /* input offsets skipped between reads (deleted or lost) */
    long nwin;
    long *wc, *wtop; /* per (window, user): count and max n, 0 when not seen */
    float *lat_ms;   /* per n: end-to-end latency of its copy's first read */
    long reader_errors;
} g_out;

static pthread_mutex_t g_out_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool g_stop_reader;

/* a result keyed by n: first sight, identical repeat or conflict */
static void seen_n(out_stats_t *s, unsigned char *seen, long n, bool ok) {
    if (n < 0 || n >= g_cap || !ok) {
        s->unexpected++;
        return;
    }
    if (seen[n])
        s->replayed++;
    else {
        seen[n] = 1;
        s->distinct++;
    }
}

static void on_output(int o, const char *p, size_t len) {
    out_stats_t *s = &g_out.st[o];
    s->lines++;
    if (o == O_COPY) {
        long n = json_int(p, len, "n");
        bool fresh = n >= 0 && n < g_cap && !g_out.copy[n];
        seen_n(s, g_out.copy, n, json_user(p, len) == n % USERS);
        if (fresh && g_out.copy[n])
            g_out.lat_ms[n] = (float)((so_now() - g_sent_at[n]) * 1000.0);
    } else if (o == O_JOIN) {
        long n = json_int(p, len, "n");
        char want[40];
        snprintf(want, sizeof(want), "\"t%ld\"", n / 10);
        seen_n(s, g_out.join, n, memmem(p, len, want, strlen(want)) != NULL);
    } else if (o == O_CEP) {
        long n = json_int(p, len, "first"), end = json_int(p, len, "match_end");
        seen_n(s, g_out.cep, n,
               n % 4 == 0 && json_user(p, len) == n % USERS && end == T0 + n + USERS);
    } else {
        long user = json_user(p, len), start = json_int(p, len, "window_start");
        long i = user >= 0 && user < USERS && start >= T0 - WINDOW_MS ? win_index(user, start) : -1;
        long c = json_int(p, len, "c"), top = json_int(p, len, "top");
        if (i < 0 || i >= g_out.nwin || c <= 0) {
            s->unexpected++;
            return;
        }
        if (!g_out.wc[i]) {
            g_out.wc[i] = c;
            g_out.wtop[i] = top;
            s->distinct++;
        } else if (g_out.wc[i] == c && g_out.wtop[i] == top)
            s->replayed++;
        else
            s->conflicting++;
    }
}

static void *reader_main(void *arg) {
    (void)arg;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "soak-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "soak: reader: %s\n", err);
        exit(1);
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(O_N * PARTS + 6);
    for (int o = 0; o < O_N; o++)
        for (int p = 0; p < (o == O_COPY ? PARTS : 1); p++)
            rd_kafka_topic_partition_list_add(tp, g_out_topic[o], p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    /* the input too, to tell input the cluster lost from input the engine lost */
    for (int p = 0; p < PARTS; p++) {
        rd_kafka_topic_partition_list_add(tp, "soak-in", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_topic_partition_list_add(tp, "soak-tags", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    int64_t next_off[2][PARTS] = {{0}};
    rd_kafka_assign(rk, tp);
    rd_kafka_topic_partition_list_destroy(tp);
    while (!atomic_load(&g_stop_reader)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        pthread_mutex_lock(&g_out_lock);
        if (m->err) {
            /* e.g. offsets out of range: the mock dropped records unread */
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                g_out.reader_errors++;
                fprintf(stderr, "soak: reader: %s\n", rd_kafka_message_errstr(m));
            }
        } else {
            const char *t = rd_kafka_topic_name(m->rkt);
            int in = !strcmp(t, "soak-in") ? 0 : !strcmp(t, "soak-tags") ? 1 : -1;
            if (in >= 0) {
                if (m->offset != next_off[in][m->partition]) {
                    g_out.in_offset_gaps++;
                    fprintf(stderr, "soak: reader: %s [%d]: offset %lld read after %lld\n", t,
                            (int)m->partition, (long long)m->offset,
                            (long long)next_off[in][m->partition] - 1);
                }
                next_off[in][m->partition] = m->offset + 1;
                long v = json_int(m->payload, m->len, in ? "tk" : "n");
                if (v >= 0 && v < g_cap)
                    (in ? g_out.tag : g_out.in)[v] = 1;
            }
            for (int o = 0; o < O_N; o++)
                if (!strcmp(t, g_out_topic[o]))
                    on_output(o, m->payload, m->len);
        }
        pthread_mutex_unlock(&g_out_lock);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return NULL;
}

/* Expected results of records n < n_end (record n: user n % USERS, time
 * T0 + n), against what was read: the missing ones. */
typedef struct {
    long expected[O_N], missing[O_N];
    long wrong;                 /* windows with other values than the input's, or with no record */
    long first_missing[O_N][8]; /* n (windows: the index) of the first missing ones */
} check_t;

#define MISSING(c, o, n)                                                                           \
    do {                                                                                           \
        if ((c).missing[o] < 8)                                                                    \
            (c).first_missing[o][(c).missing[o]] = (n);                                            \
        (c).missing[o]++;                                                                          \
    } while (0)

/* The expected results are those of the input the cluster holds (read
 * back by the reader): the mock cluster loses acknowledged records of an
 * idempotent producer when partition leaders move (docs/reliability.md),
 * and the engine cannot output what is not there. Those are counted apart
 * (input_clicks_missing_on_the_cluster). */
static check_t check_outputs(long n_end) {
    check_t c = {0};
    for (long n = 0; n < n_end; n++) {
        if (!g_out.in[n])
            continue;
        c.expected[O_COPY]++;
        if (!g_out.copy[n])
            MISSING(c, O_COPY, n);
        if (g_out.tag[n / 10]) {
            c.expected[O_JOIN]++;
            if (!g_out.join[n])
                MISSING(c, O_JOIN, n);
        }
        /* the user's next event is n + USERS, 17 ms later: (n + 17) % 4 = 1 */
        if (n % 4 == 0 && n + USERS < n_end && g_out.in[n + USERS]) {
            c.expected[O_CEP]++;
            if (!g_out.cep[n])
                MISSING(c, O_CEP, n);
        }
    }
    long nw = win_index(USERS - 1, ((T0 + n_end) / WINDOW_MS) * WINDOW_MS) + 1;
    long *wc = calloc((size_t)nw, sizeof(long)), *wtop = calloc((size_t)nw, sizeof(long));
    for (long n = 0; n < n_end; n++) {
        if (!g_out.in[n])
            continue;
        long w = win_index(n % USERS, ((T0 + n) / WINDOW_MS) * WINDOW_MS);
        wc[w]++;
        wtop[w] = n;
    }
    for (long w = 0; w < nw && w < g_out.nwin; w++) {
        if (!wc[w]) {
            if (g_out.wc[w]) /* a window no record falls in */
                c.wrong++;
            continue;
        }
        c.expected[O_WIN]++;
        if (!g_out.wc[w])
            MISSING(c, O_WIN, w);
        else if (g_out.wc[w] != wc[w] || g_out.wtop[w] != wtop[w])
            c.wrong++;
    }
    free(wc);
    free(wtop);
    return c;
}

static bool outputs_complete(long n_end) {
    pthread_mutex_lock(&g_out_lock);
    /* the input read back to its end (the last record of each partition) */
    bool all_in = true;
    for (int p = 0; p < PARTS; p++)
        all_in = all_in && g_out.in[n_end + p];
    check_t c = check_outputs(n_end);
    pthread_mutex_unlock(&g_out_lock);
    for (int o = 0; o < O_N; o++)
        if (c.missing[o])
            return false;
    return all_in;
}

/* ------------------------------------------------------------ engine */

static so_inst_t g_eng;
static pthread_mutex_t g_eng_lock = PTHREAD_MUTEX_INITIALIZER; /* g_eng's session */
static long g_log_off;
static int g_restarts;
static char g_restart_why[8][200];

static void write_topology(void) {
    FILE *f = fopen(g_yaml, "w");
    if (!f)
        exit(1);
    char mem[64] = "";
    if (g_memory_mib > 0)
        snprintf(mem, sizeof(mem), ", memory.max.bytes: %dMiB", g_memory_mib);
    fprintf(f,
            "application: " APP "\n"
            "settings: {threads: 2, commit.interval.ms: 100, state.dir: '%s/state',\n"
            "           processing.guarantee: exactly_once%s}\n"
            "kafka: {bootstrap.servers: '%s', session.timeout.ms: 6000}\n"
            "sources:\n"
            "  - {name: clicks, type: kafka, topic: soak-in, format: json, timestamp: ts,\n"
            "     schema: {user: string, n: int, k: int, ts: int},\n"
            "     watermark: {max_out_of_orderness: 1s}}\n"
            "  - {name: tags, type: kafka, topic: soak-tags, format: json, timestamp: tts,\n"
            "     schema: {tk: int, tag: string, tts: int},\n"
            "     watermark: {max_out_of_orderness: 1s}}\n"
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
            "      - window: {type: tumbling, size: %dms, retention: 1m, store: windows}\n"
            "        aggregate: {by: user, fields: {c: count(), top: max(n)}}\n"
            "    to: wout\n"
            "  - name: tagged\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - join: {with: tags, type: interval, on: {left: k, right: tk},\n"
            "               between: [-10ms, 0ms], store: tagged}\n"
            "      - map: {n: n, tag: tag}\n"
            "    to: jout\n"
            "  - name: pairs\n"
            "    from: clicks\n"
            "    steps:\n"
            "      - cep:\n"
            "          by: user\n"
            "          within: 1s\n"
            "          pattern:\n"
            "            - {name: a, where: \"n %% 4 = 0\"}\n"
            "            - {name: b, next: \"n %% 4 = 1\"}\n"
            "          fields: {first: first(a.n)}\n"
            "          store: pairs\n"
            "          retention: 1m\n"
            "    to: cout\n"
            "  - {name: copy, from: clicks, steps: [{map: {n: n, user: user}}], to: out}\n"
            "sinks:\n"
            "  - {name: out, type: kafka, topic: soak-out}\n"
            "  - {name: wout, type: kafka, topic: soak-wout}\n"
            "  - {name: jout, type: kafka, topic: soak-jout}\n"
            "  - {name: cout, type: kafka, topic: soak-cout}\n"
            "  - {name: none, type: blackhole}\n",
            g_dir, mem, g_bootstrap, WINDOW_MS);
    fclose(f);
}

static void start_engine(void) {
    pthread_mutex_lock(&g_eng_lock);
    bool ok = so_start(&g_eng, g_serve, g_yaml);
    pthread_mutex_unlock(&g_eng_lock);
    if (!ok) {
        fprintf(stderr, "soak: mcp-serve did not start (see %s)\n", g_eng.log);
        exit(1);
    }
}

/* The engine's consumer found its position deleted: the mock cluster keeps
 * only ~100,000 messages a partition, so input the engine fell that far
 * behind on is gone before it was read, and the run cannot be judged. */
static long g_offset_resets;
/* in-process recoveries of the engine (docs/reliability.md): restarts
 * from the last acknowledged commit that did not need a new process */
static long g_recoveries;

/* A line of the engine's log since the last look that says it stopped. */
static bool engine_stopped(char *why, size_t size) {
    FILE *f = fopen(g_eng.log, "r");
    if (!f)
        return false;
    fseek(f, g_log_off, SEEK_SET);
    char line[2048];
    bool stopped = false;
    long at = g_log_off;
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n'))
            break; /* a line still being written */
        at = ftell(f);
        if (strstr(line, "Offset out of range"))
            g_offset_resets++;
        if (strstr(line, "restarted after recovery"))
            g_recoveries++;
        if (strstr(line, "the engine stopped") || strstr(line, "the input ended")) {
            stopped = true;
            snprintf(why, size, "%.*s", (int)strcspn(line, "\n"), line);
        }
    }
    g_log_off = at;
    fclose(f);
    return stopped;
}

/* Restart the engine when its process died or its engine stopped. */
static void supervise(void) {
    char why[200] = "";
    int st, rc = -1;
    if (waitpid(g_eng.pid, &st, WNOHANG) == g_eng.pid) {
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        snprintf(why, sizeof(why), "mcp-serve exited with status %d", rc);
        g_eng.pid = 0;
    } else if (!engine_stopped(why, sizeof(why)))
        return;
    fprintf(stderr, "soak: %.1f s: %s; restarting\n", so_now() - g_t0, why);
    if (g_restarts < 8)
        snprintf(g_restart_why[g_restarts], sizeof(g_restart_why[0]), "%d s: %.160s",
                 (int)(so_now() - g_t0), why);
    g_restarts++;
    if (g_eng.pid > 0)
        so_stop(&g_eng, SIGTERM);
    start_engine();
}

/* ------------------------------------------------------------ MCP client */

static atomic_bool g_stop_mcp;
static float *g_mcp_lat;
static long g_mcp_n, g_mcp_cap, g_mcp_errors;

static void *mcp_main(void *arg) {
    (void)arg;
    so_inst_t me = {0};
    for (long i = 0; !atomic_load(&g_stop_mcp); i++) {
        pthread_mutex_lock(&g_eng_lock);
        if (me.port != g_eng.port) { /* a new engine process: a new session */
            me.port = g_eng.port;
            me.sid[0] = 0;
        }
        pthread_mutex_unlock(&g_eng_lock);
        double t = so_now();
        bool err = false;
        json_t *r;
        if (i % 4 == 3)
            r = so_tool(&me, "get_metrics", json_object(), &err);
        else {
            char key[16];
            snprintf(key, sizeof(key), "u%ld", i % USERS);
            r = so_tool(&me, "get_value", json_pack("{s:s, s:s}", "store", "per_user", "key", key),
                        &err);
        }
        double ms = (so_now() - t) * 1000.0;
        if (!r || err)
            g_mcp_errors++;
        if (r && !err && g_mcp_n < g_mcp_cap)
            g_mcp_lat[g_mcp_n++] = (float)ms;
        json_decref(r);
        so_sleep_ms(g_mcp_ms);
    }
    return NULL;
}

/* ------------------------------------------------------------ faults */

typedef struct {
    double at;
    char what[120];
} fault_rec_t;

static fault_rec_t *g_faults;
static int g_nfaults, g_fault_cap;
static int g_fault_kinds[8];
static const char *const g_fault_kind[8] = {"broker_silent",
                                            "produce_errors",
                                            "fetch_errors",
                                            "offset_commit_errors",
                                            "txn_offset_commit_errors",
                                            "add_partitions_errors",
                                            "end_txn_errors",
                                            "leaders_moved"};
static int g_coord_moves;
static char g_instance[40];

static rd_kafka_mock_cluster_t *mc(void) {
    return eddy__kafka_embedded_cluster();
}

static void note_fault(const char *fmt, ...) {
    if (g_nfaults == g_fault_cap) {
        g_fault_cap = g_fault_cap ? 2 * g_fault_cap : 256;
        g_faults = realloc(g_faults, (size_t)g_fault_cap * sizeof(*g_faults));
    }
    fault_rec_t *f = &g_faults[g_nfaults++];
    f->at = so_now() - g_t0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->what, sizeof(f->what), fmt, ap);
    va_end(ap);
}

static void read_instance(void) {
    char path[600];
    snprintf(path, sizeof(path), "%s/state/" APP "/INSTANCE", g_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%39s", g_instance) != 1)
            g_instance[0] = 0;
        fclose(f);
    }
}

/* One random fault; returns how long it holds (ms). */
static int inject_fault(unsigned *rs) {
    int kind = (int)(rand_r(rs) % 9);
    while (g_only_faults && !(g_only_faults >> kind & 1))
        kind = (int)(rand_r(rs) % 9);
    int hold = 1000 + (int)(rand_r(rs) % 2000);
    if (kind == 8) { /* coordinators */
        static const char *const sinks[] = {"out", "wout", "jout", "cout", "repartition"};
        int b = 1 + (int)(rand_r(rs) % 3);
        read_instance();
        mock_move_coordinators(mc(), APP, g_instance[0] ? g_instance : NULL, sinks, 5, 2, b);
        g_coord_moves++;
        note_fault("coordinators_moved to broker %d", b);
        return hold;
    }
    g_fault_kinds[kind]++;
    int count = 5 + (int)(rand_r(rs) % 16);
    switch (kind) {
    case 0: {
        int b = 1 + (int)(rand_r(rs) % 3);
        mock_broker_silent(mc(), b, true);
        note_fault("broker_silent %d for %d ms", b, hold);
        break;
    }
    case 1:
        mock_push_errors(mc(), API_PRODUCE, count, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
        break;
    case 2:
        mock_push_errors(mc(), API_FETCH, count, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
        break;
    case 3:
        mock_push_errors(mc(), API_OFFSET_COMMIT, count,
                         RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
        break;
    case 4:
        mock_push_errors(mc(), API_TXN_OFFSET_COMMIT, count,
                         RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
        break;
    case 5:
        mock_push_errors(mc(), API_ADD_PARTITIONS_TO_TXN, count,
                         RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS);
        break;
    case 6:
        mock_push_errors(mc(), API_END_TXN, count, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE);
        break;
    default: {
        static const char *const topics[] = {"soak-in",   "soak-tags", "soak-out",
                                             "soak-wout", "soak-jout", "soak-cout"};
        for (int t = 0; t < 6; t++)
            for (int p = 0; p < (t < 3 ? PARTS : 1); p++)
                rd_kafka_mock_partition_set_leader(mc(), topics[t], p, 1 + (int)(rand_r(rs) % 3));
        note_fault("leaders_moved");
        return hold;
    }
    }
    if (kind >= 1 && kind <= 6)
        note_fault("%s x%d for %d ms", g_fault_kind[kind], count, hold);
    return hold;
}

/* ------------------------------------------------------------ resources */

typedef struct {
    double t;
    long rss, fds, soak_rss, produced, events_in, copies_read, state_bytes;
} sample_t;

static sample_t *g_samples;
static int g_nsamples, g_sample_cap;

static long proc_rss(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

static long proc_fds(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void take_sample(void) {
    if (g_nsamples == g_sample_cap) {
        g_sample_cap = g_sample_cap ? 2 * g_sample_cap : 128;
        g_samples = realloc(g_samples, (size_t)g_sample_cap * sizeof(*g_samples));
    }
    sample_t *s = &g_samples[g_nsamples++];
    s->t = so_now() - g_t0;
    s->rss = g_eng.pid > 0 ? proc_rss(g_eng.pid) : -1;
    s->fds = g_eng.pid > 0 ? proc_fds(g_eng.pid) : -1;
    s->soak_rss = proc_rss(getpid());
    s->produced = atomic_load(&g_produced);
    pthread_mutex_lock(&g_out_lock);
    s->copies_read = g_out.st[O_COPY].distinct;
    pthread_mutex_unlock(&g_out_lock);
    s->events_in = s->state_bytes = -1;
    so_inst_t me;
    pthread_mutex_lock(&g_eng_lock);
    me = g_eng;
    pthread_mutex_unlock(&g_eng_lock);
    me.sid[0] = 0;
    bool err = false;
    json_t *m = so_tool(&me, "get_metrics", json_object(), &err);
    if (m && !err) {
        s->events_in = (long)json_integer_value(json_object_get(m, "events_in"));
        s->state_bytes = (long)json_integer_value(json_object_get(m, "state_memory_bytes"));
    }
    json_decref(m);
    fprintf(stderr,
            "soak: %6.1f s: produced %ld, engine events_in %ld, copies read %ld, RSS %.1f MiB, "
            "%ld fds\n",
            s->t, s->produced, s->events_in, s->copies_read, (double)s->rss / 1048576.0, s->fds);
}

/* ------------------------------------------------------------ report */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double pct(float *v, long n, double q) {
    if (n <= 0)
        return -1;
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i];
}

/* latencies of the copies of records first..end-1 that were read, sorted */
static long latencies(long first, long end, float *v) {
    long m = 0;
    for (long n = first; n < end; n++)
        if (g_out.copy[n])
            v[m++] = g_out.lat_ms[n];
    qsort(v, (size_t)m, sizeof(float), cmp_float);
    return m;
}

/* the engine's per_user state against the input's counts and sums */
static int check_state(long produced, long *users_wrong) {
    *users_wrong = 0;
    so_inst_t me = g_eng;
    me.sid[0] = 0;
    for (int u = 0; u < USERS; u++) {
        long want_c = 0, want_sum = 0;
        for (long n = u; n < produced; n += USERS) {
            if (!g_out.in[n]) /* not on the cluster */
                continue;
            want_c++;
            want_sum += n;
        }
        char key[16];
        snprintf(key, sizeof(key), "u%d", u);
        bool err = false;
        json_t *r = so_tool(&me, "get_value",
                            json_pack("{s:s, s:s}", "store", "per_user", "key", key), &err);
        json_t *v = r && !err ? json_object_get(r, "value") : NULL;
        long c = (long)json_integer_value(json_object_get(v, "clicks"));
        long sum = (long)json_integer_value(json_object_get(v, "total"));
        if (c != want_c || sum != want_sum) {
            (*users_wrong)++;
            char *s = r ? json_dumps(r, JSON_COMPACT) : NULL;
            fprintf(stderr, "soak: state of %s: want clicks %ld total %ld, got %s\n", key, want_c,
                    want_sum, s ? s : "(no answer)");
            free(s);
        }
        json_decref(r);
    }
    return *users_wrong == 0;
}

int main(int argc, char **argv) {
    const char *out = "bench/results/soak.json";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            g_seconds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rate"))
            g_rate = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mcp-interval-ms"))
            g_mcp_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--memory-max-mib"))
            g_memory_mib = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--only-faults")) {
            char list[256];
            snprintf(list, sizeof(list), "%s", argv[i + 1]);
            for (char *save, *k = strtok_r(list, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
                int kind = !strcmp(k, "coordinators_moved") ? 8 : -1;
                for (int j = 0; j < 8; j++)
                    if (!strcmp(k, g_fault_kind[j]))
                        kind = j;
                if (kind < 0) {
                    fprintf(stderr, "soak: --only-faults: unknown kind %s\n", k);
                    return 2;
                }
                g_only_faults |= 1u << kind;
            }
        } else if (!strcmp(argv[i], "--faults"))
            g_with_faults = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            g_seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--out"))
            out = argv[i + 1];
        else {
            fprintf(stderr, "soak: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (g_seconds < 5 || g_rate < 100 || g_rate > 200000 || g_mcp_ms < 0) {
        fprintf(stderr, "soak: --seconds >= 5, --rate 100..200000, --mcp-interval-ms >= 0\n");
        return 2;
    }
    double load0[3];
    getloadavg(load0, 3);
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_serve, sizeof(g_serve), "%s/mcp-serve", bin ? bin : "build");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy-soak-XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    snprintf(g_yaml, sizeof(g_yaml), "%s/soak.yaml", g_dir);
    g_cap = (long)g_rate * (g_seconds + 30) + 1000;
    g_sent_at = calloc((size_t)g_cap, sizeof(double));
    g_out.copy = calloc((size_t)g_cap, 1);
    g_out.join = calloc((size_t)g_cap, 1);
    g_out.cep = calloc((size_t)g_cap, 1);
    g_out.in = calloc((size_t)g_cap, 1);
    g_out.tag = calloc((size_t)g_cap, 1);
    g_out.lat_ms = calloc((size_t)g_cap, sizeof(float));
    g_out.nwin = win_index(USERS - 1, ((T0 + g_cap) / WINDOW_MS) * WINDOW_MS) + 1;
    g_out.wc = calloc((size_t)g_out.nwin, sizeof(long));
    g_out.wtop = calloc((size_t)g_out.nwin, sizeof(long));
    g_mcp_cap = (long)(g_seconds + 300) * 1000 / (g_mcp_ms + 1) + 1000;
    g_mcp_lat = calloc((size_t)g_mcp_cap, sizeof(float));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    setup(NULL);
    if (strcmp(g_kafka_conf, "embedded")) {
        fprintf(stderr, "soak: needs the mock cluster's controls (unset EDDY_TEST_KAFKA)\n");
        return 2;
    }
    create_topic("soak-in", PARTS);
    create_topic("soak-tags", PARTS);
    create_topic("soak-out", PARTS);
    for (int o = 1; o < O_N; o++)
        create_topic(g_out_topic[o], 1);
    write_topology();

    g_t0 = so_now();
    start_engine();
    double started = so_now() - g_t0;
    fprintf(stderr, "soak: engine up in %.1f s (%s), %d s at %d events/s, seed %u\n", started,
            g_yaml, g_seconds, g_rate, g_seed);
    pthread_t prod, reader, mcp;
    g_t0 = so_now(); /* the input's pace counts from here */
    pthread_create(&reader, NULL, reader_main, NULL);
    pthread_create(&prod, NULL, producer_main, NULL);
    pthread_create(&mcp, NULL, mcp_main, NULL);

    unsigned rs = g_seed;
    double sample_every = g_seconds >= 200 ? 10.0 : g_seconds / 20.0;
    double next_sample = 0, next_fault = 2.0, heal_at = -1;
    take_sample();
    next_sample = sample_every;
    while (so_now() - g_t0 < g_seconds) {
        double t = so_now() - g_t0;
        if (heal_at >= 0 && t >= heal_at) {
            mock_heal_all(mc());
            heal_at = -1;
        }
        if (g_with_faults && heal_at < 0 && t >= next_fault && t < g_seconds - 3) {
            heal_at = t + inject_fault(&rs) / 1000.0;
            next_fault = heal_at + 1.0 + (double)(rand_r(&rs) % 3000) / 1000.0;
        }
        if (t >= next_sample) {
            take_sample();
            next_sample += sample_every;
        }
        supervise();
        so_sleep_ms(50);
    }
    mock_heal_all(mc());
    atomic_store(&g_stop_input, true);
    pthread_join(prod, NULL);
    double t_input_end = so_now() - g_t0;
    fprintf(stderr, "soak: faults stopped, %ld records produced; waiting for the outputs\n",
            g_n_end);
    /* the outputs of every record, or 300 s */
    bool complete = false;
    double drain_until = so_now() + 300;
    while (!(complete = outputs_complete(g_n_end)) && so_now() < drain_until) {
        supervise();
        if (so_now() - g_t0 >= next_sample) {
            take_sample();
            next_sample += sample_every;
        }
        so_sleep_ms(200);
    }
    double t_done = so_now() - g_t0;
    fprintf(stderr, "soak: outputs %s %.1f s after the input ended\n",
            complete ? "complete" : "INCOMPLETE", t_done - t_input_end);
    so_sleep_ms(2000); /* late repeats */
    atomic_store(&g_stop_mcp, true);
    pthread_join(mcp, NULL);
    take_sample();
    long users_wrong = 0;
    bool state_ok = check_state(atomic_load(&g_produced), &users_wrong);
    atomic_store(&g_stop_reader, true);
    pthread_join(reader, NULL);
    int stop_rc = so_stop(&g_eng, SIGTERM);
    char why_end[200];
    engine_stopped(why_end, sizeof(why_end)); /* the last lines' offset resets */
    double load1[3];
    getloadavg(load1, 3);

    check_t c = check_outputs(g_n_end);
    long in_missing = 0, tags_missing = 0, first_in_missing = -1;
    for (long n = 0; n < g_n_end; n++) {
        if (!g_out.in[n] && first_in_missing < 0)
            first_in_missing = n;
        in_missing += !g_out.in[n];
        tags_missing += n % 10 == 0 && !g_out.tag[n / 10];
    }
    if (in_missing || tags_missing)
        fprintf(stderr,
                "soak: input read back: %ld clicks missing (first n=%ld), %ld tags missing\n",
                in_missing, first_in_missing, tags_missing);
    long lost = 0, dup = 0, replayed = 0;
    for (int o = 0; o < O_N; o++) {
        lost += c.missing[o];
        dup += g_out.st[o].conflicting + g_out.st[o].unexpected;
        replayed += g_out.st[o].replayed;
    }
    /* end-to-end latency over all records, and after the warm-up (records
     * produced after the first output was read: the group's first
     * assignment and the tasks' start come before) */
    float *lat = malloc((size_t)g_cap * sizeof(float));
    long nlat = latencies(0, g_n_end, lat);
    double p50 = pct(lat, nlat, 0.5), p99 = pct(lat, nlat, 0.99);
    double lmax = nlat ? (double)lat[nlat - 1] : -1.0;
    long warm = g_n_end;
    double warm_t = -1; /* the first copy read */
    for (long n = 0; n < g_n_end; n++)
        if (g_out.copy[n]) {
            double at = g_sent_at[n] - g_t0 + g_out.lat_ms[n] / 1000.0;
            if (warm_t < 0 || at < warm_t)
                warm_t = at;
        }
    if (warm_t >= 0)
        warm = (long)(warm_t * g_rate) + 1;
    if (warm > g_n_end)
        warm = g_n_end;
    long nwarm = latencies(warm, g_n_end, lat);
    double p99w = pct(lat, nwarm, 0.99), p999w = pct(lat, nwarm, 0.999);
    free(lat);
    qsort(g_mcp_lat, (size_t)g_mcp_n, sizeof(float), cmp_float);
    /* resources: the first sample with the engine up, the last, the most */
    long rss0 = -1, rss1 = -1, rss_max = 0, fd0 = -1, fd1 = -1, fd_max = 0;
    for (int i = 0; i < g_nsamples; i++) {
        sample_t *s = &g_samples[i];
        if (s->rss < 0)
            continue;
        if (rss0 < 0) {
            rss0 = s->rss;
            fd0 = s->fds;
        }
        rss1 = s->rss;
        fd1 = s->fds;
        rss_max = s->rss > rss_max ? s->rss : rss_max;
        fd_max = s->fds > fd_max ? s->fds : fd_max;
    }
    /* growth over the second half of the run (after warm-up): the sample
     * nearest the middle against the last one taken while the input ran */
    long rss_mid = -1, rss_late = -1, fd_mid = -1, fd_late = -1;
    for (int i = 0; i < g_nsamples; i++) {
        sample_t *s = &g_samples[i];
        if (s->rss < 0 || s->t > t_input_end)
            continue;
        if (rss_mid < 0 && s->t >= t_input_end / 2) {
            rss_mid = s->rss;
            fd_mid = s->fds;
        }
        rss_late = s->rss;
        fd_late = s->fds;
    }
    long events = g_n_end;
    double eps = (double)events / t_input_end;
    char when[64];
    FILE *f = so_results_open("soak", out, when, sizeof(when));
    if (!f)
        return 1;
    fprintf(f,
            "{\n"
            "  \"date\": \"%s\",\n"
            "  \"command\": \"bench/soak --seconds %d --rate %d --mcp-interval-ms %d --seed %u "
            "--faults %d "
            "--memory-max-mib %d\",\n"
            "  \"cluster\": \"librdkafka mock cluster (3 brokers, TCP, in the soak process)\",\n"
            "  \"engine\": \"mcp-serve --http (child process): Kafka sources, table aggregate, "
            "tumbling windows, interval join, CEP, exactly_once, 2 threads\",\n"
            "  \"machine\": \"%ld cores shared with other work\",\n"
            "  \"load_average_start\": [%.2f, %.2f, %.2f],\n"
            "  \"load_average_end\": [%.2f, %.2f, %.2f],\n"
            "  \"seconds\": %d,\n"
            "  \"events\": %ld,\n"
            "  \"events_per_second\": %.0f,\n"
            "  \"outputs_complete_seconds_after_input_end\": %.1f,\n"
            "  \"lost\": %ld,\n"
            "  \"duplicated\": %ld,\n"
            "  \"replayed_identical\": %ld,\n"
            "  \"replayed_note\": \"identical repeats of a result, deduplicated by its source "
            "records: the mock cluster does not isolate aborted transactions\",\n"
            "  \"windows_wrong\": %ld,\n"
            "  \"state_users_wrong\": %ld,\n"
            "  \"outputs\": {",
            when, g_seconds, g_rate, g_mcp_ms, g_seed, g_with_faults, g_memory_mib,
            sysconf(_SC_NPROCESSORS_ONLN), load0[0], load0[1], load0[2], load1[0], load1[1],
            load1[2], g_seconds, events, eps, t_done - t_input_end, lost, dup, replayed, c.wrong,
            users_wrong);
    for (int o = 0; o < O_N; o++) {
        fprintf(f,
                "%s\n    \"%s\": {\"expected\": %ld, \"missing\": %ld, \"read\": %ld, "
                "\"distinct\": %ld, \"replayed\": %ld, \"conflicting\": %ld, \"unexpected\": %ld, "
                "\"first_missing\": [",
                o ? "," : "", g_out_name[o], c.expected[o], c.missing[o], g_out.st[o].lines,
                g_out.st[o].distinct, g_out.st[o].replayed, g_out.st[o].conflicting,
                g_out.st[o].unexpected);
        for (long i = 0; i < c.missing[o] && i < 8; i++) {
            fprintf(f, "%s%ld", i ? ", " : "", c.first_missing[o][i]);
            fprintf(stderr, "soak: %s: missing the result of %s %ld\n", g_out_name[o],
                    o == O_WIN ? "window index" : "n", c.first_missing[o][i]);
        }
        fprintf(f, "]}");
    }
    fprintf(f,
            "\n  },\n"
            "  \"input_offset_resets\": %ld,\n"
            "  \"input_offset_resets_note\": \"positions the engine's consumer found deleted by "
            "the mock cluster's retention (~100,000 messages a partition): nonzero means input "
            "was dropped unread and the run is not valid\",\n"
            "  \"input_clicks_missing_on_the_cluster\": %ld,\n"
            "  \"input_tags_missing_on_the_cluster\": %ld,\n"
            "  \"input_offset_gaps\": %ld,\n"
            "  \"reader_errors\": %ld,\n"
            "  \"input_delivery_failures\": %ld,\n"
            "  \"faults_injected\": %d,\n"
            "  \"faults_by_kind\": {",
            g_offset_resets, in_missing, tags_missing, g_out.in_offset_gaps, g_out.reader_errors,
            atomic_load(&g_delivery_failed), g_nfaults);
    for (int k = 0; k < 8; k++)
        fprintf(f, "\"%s\": %d, ", g_fault_kind[k], g_fault_kinds[k]);
    fprintf(f,
            "\"coordinators_moved\": %d},\n"
            "  \"engine_recoveries_in_process\": %ld,\n"
            "  \"engine_restarts\": %d,\n"
            "  \"engine_restart_reasons\": [",
            g_coord_moves, g_recoveries, g_restarts);
    for (int i = 0; i < g_restarts && i < 8; i++) {
        char esc[220];
        size_t j = 0;
        for (const char *p = g_restart_why[i]; *p && j < sizeof(esc) - 2; p++)
            if (*p != '"' && *p != '\\')
                esc[j++] = *p;
        esc[j] = 0;
        fprintf(f, "%s\"%s\"", i ? ", " : "", esc);
    }
    fprintf(f,
            "],\n"
            "  \"engine_exit_status\": %d,\n"
            "  \"mcp_queries\": %ld,\n"
            "  \"mcp_errors\": %ld,\n"
            "  \"mcp_p50_ms\": %.2f,\n"
            "  \"mcp_p99_ms\": %.2f,\n"
            "  \"latency_note\": \"p50/p99/max_ms: end to end, a click produced to its copy "
            "first read (commit.interval.ms 100, exactly_once: outputs are visible at commit)\",\n"
            "  \"p50_ms\": %.1f,\n"
            "  \"p99_ms\": %.1f,\n"
            "  \"max_ms\": %.1f,\n"
            "  \"warm_up_seconds\": %.1f,\n"
            "  \"p99_ms_after_warm_up\": %.1f,\n"
            "  \"p999_ms_after_warm_up\": %.1f,\n"
            "  \"memory_max_bytes\": %ld,\n"
            "  \"rss_start_bytes\": %ld,\n"
            "  \"rss_end_bytes\": %ld,\n"
            "  \"rss_max_bytes\": %ld,\n"
            "  \"rss_growth_second_half_bytes\": %ld,\n"
            "  \"open_files_start\": %ld,\n"
            "  \"open_files_end\": %ld,\n"
            "  \"open_files_max\": %ld,\n"
            "  \"open_files_growth_second_half\": %ld,\n"
            "  \"samples\": [",
            stop_rc, g_mcp_n + g_mcp_errors, g_mcp_errors, pct(g_mcp_lat, g_mcp_n, 0.5),
            pct(g_mcp_lat, g_mcp_n, 0.99), p50, p99, lmax, warm_t, p99w, p999w,
            (long)g_memory_mib << 20, rss0, rss1, rss_max, rss_late - rss_mid, fd0, fd1, fd_max,
            fd_late - fd_mid);
    for (int i = 0; i < g_nsamples; i++) {
        sample_t *s = &g_samples[i];
        fprintf(f,
                "%s\n    {\"t\": %.1f, \"rss_bytes\": %ld, \"open_files\": %ld, \"produced\": "
                "%ld, \"events_in\": %ld, \"copies_read\": %ld, \"state_memory_bytes\": %ld, "
                "\"soak_process_rss_bytes\": %ld}",
                i ? "," : "", s->t, s->rss, s->fds, s->produced, s->events_in, s->copies_read,
                s->state_bytes, s->soak_rss);
    }
    fprintf(f, "\n  ],\n  \"faults\": [");
    for (int i = 0; i < g_nfaults; i++)
        fprintf(f, "%s\n    {\"t\": %.1f, \"fault\": \"%s\"}", i ? "," : "", g_faults[i].at,
                g_faults[i].what);
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
    fprintf(stderr,
            "soak: %ld events in %.0f s (%.0f/s); lost %ld, duplicated %ld (identical replays "
            "%ld); state %s; %d faults, %ld in-process recoveries, %d engine restarts; %ld MCP "
            "queries (%ld errors, p99 "
            "%.1f ms); end-to-end p99 %.0f ms (after warm-up %.0f ms); RSS %.1f -> %.1f MiB (max "
            "%.1f), fds %ld -> %ld; "
            "wrote %s\n",
            events, t_input_end, eps, lost, dup, replayed, state_ok ? "ok" : "WRONG", g_nfaults,
            g_recoveries, g_restarts, g_mcp_n + g_mcp_errors, g_mcp_errors, pct(g_mcp_lat, g_mcp_n, 0.99), p99,
            p99w, (double)rss0 / 1048576.0, (double)rss1 / 1048576.0, (double)rss_max / 1048576.0,
            fd0, fd1, out);
    teardown(NULL);
    if (!getenv("EDDY_SOAK_KEEP"))
        remove_dir(g_dir);
    else
        fprintf(stderr, "soak: kept %s\n", g_dir);
    curl_global_cleanup();
    if (g_offset_resets)
        fprintf(stderr,
                "soak: NOT VALID: the engine fell more than the mock cluster keeps "
                "behind the input (%ld offset resets): lower --rate\n",
                g_offset_resets);
    return lost == 0 && dup == 0 && c.wrong == 0 && state_ok && complete && !g_offset_resets ? 0
                                                                                             : 1;
}
