/*
 * Nexmark benchmark harness (run through bench/nexmark).
 *
 * Each query runs in a forked child so that its CPU time (user+sys, from
 * getrusage) and peak RSS are its own. Results go to
 * RESULTS_DIR/latest.json and latest.md, beside the published per-core
 * figures of Flink (nexmark repository, 1.13) and Feldera (16-core run
 * divided by 16) from shared/NEXMARK.md.
 *
 * Each query is a YAML topology (bench/queries/FILE.yaml) with
 * placeholders, so what is measured is exactly what a user would run with
 * `eddy run`. Two kinds:
 *
 *  - generator queries (q0 ... q11): the generator runs in-process and its
 *    cost is included, as in the reference benchmark; events counted are
 *    all generated events (persons, auctions and bids), as Nexmark counts
 *    them. Placeholders @EVENTS@ and @PARTITIONS@ (= --threads).
 *
 *  - Kafka queries (kafka-q0, kafka-q5, kafka-q5-eos, kafka-q5-local): end
 *    to end through Kafka; kafka-q5-local is kafka-q5 with its key_by
 *    in-process (settings.repartition: local) instead of through
 *    repartition topics (auto, the default).
 *    A broker process, forked once, hosts the embedded Kafka cluster and
 *    the embedded schema registry and fills topic nexmark-bids with Avro
 *    bids (bench/queries/kafka-load.yaml), then only serves. The measured
 *    child is the eddy instance alone: bench/queries/kafka-q5.yaml reads
 *    the topic over TCP, decodes the Avro, runs q5 and writes its results
 *    to Kafka as JSON; its getrusage is the instance's CPU, librdkafka's
 *    threads included, the broker's not. The mock cluster keeps only about
 *    5 MiB per partition, so the topic holds what fits (--kafka-bids) and
 *    the child reads it several times, each pass a fresh consumer group
 *    (application) and state, until --events bids are read. A fresh group
 *    waits for the group protocol (the mock's join takes about 3 s) and
 *    opens its tasks (a RocksDB store each) before the first record: that
 *    startup is measured and reported apart (wall and CPU), and the
 *    instance's figures are over the time from the first record of a pass
 *    to its end. Events counted are the bids read. Each pass is also split
 *    in two, reported beside (not instead of) those figures: the read
 *    phase, until the pass's last bid was read, and the end of the pass
 *    (the last windows fire, the exchanges and repartition topics drain,
 *    the final commit checkpoints every task). A long-running instance
 *    lands between the two: it waits on a checkpoint's fsyncs every
 *    state.checkpoint.interval.ms (10 s) rather than every 92,000 bids,
 *    but the state writes of the end (changelog, RocksDB, memtable
 *    flushes) are work it also does, at every commit, and which the read
 *    phase leaves out.
 *
 *    --kafka-sustain measures that long-running instance instead: ONE pass
 *    of --events bids with one consumer group, from a topic of the query's
 *    own that the broker process keeps topped up (at most --kafka-bids /
 *    partitions bids a partition ahead of the instance's position, which
 *    the measured child reports on a pipe), unbounded, stopped once every
 *    bid produced was read (checked offset by offset) as a long-running
 *    instance is stopped: in-flight batches finish, a final commit and
 *    checkpoint. The broker process's loader and mock cluster are not
 *    counted but share the cores. nexmark_sustain.c says how and why.
 *
 * Profiling: EDDY_BENCH_MARKS=FILE (bench_mark below) writes each pass's
 * measured interval in CLOCK_MONOTONIC seconds; record with `perf record
 * -k CLOCK_MONOTONIC -F 1999 --call-graph dwarf -- build-bench/nexmark_bench
 * ...` and keep the samples of `perf script` whose times fall in those
 * intervals (the broker process's first interval is its load). With
 * EDDY_BENCH_TMP=/dev/shm the state directories are on tmpfs: what is
 * left is the run without fsync latency.
 */
#define _GNU_SOURCE
#include "connectors/kafka.h"
#include "connectors/sr_embedded.h"
#include "eddy.h"
#include "nexmark_sustain.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef enum { SRC_GENERATOR, SRC_KAFKA } source_t;

typedef struct {
    const char *name;
    const char *file; /* bench/queries/FILE.yaml; NULL: the name */
    source_t source;
    const char *guarantee; /* kafka queries */
    const char *what;
    double flink, feldera; /* published events/s per core; 0 = none */
} query_t;

#define Q5_WHAT "hot items: top bid count per auction, hopping 10s/2s"
static const query_t queries[] = {
    {"q0", NULL, SRC_GENERATOR, NULL, "pass-through of bids", 155e3, 436e3},
    {"q1", NULL, SRC_GENERATOR, NULL, "currency conversion", 158e3, 412e3},
    {"q2", NULL, SRC_GENERATOR, NULL, "selection: auction % 123 = 0", 175e3, 422e3},
    {"q3", NULL, SRC_GENERATOR, NULL,
     "local item suggestion: persons of OR/ID/CA x auctions of category 10", 152e3, 413e3},
    {"q4", NULL, SRC_GENERATOR, NULL,
     "average closing price per category: auctions x bids in [dateTime, expires] (Flink "
     "31-34K)",
     32.5e3, 265e3},
    {"q5", NULL, SRC_GENERATOR, NULL, Q5_WHAT " (Flink 22-41K)", 31.5e3, 412e3},
    {"q7", NULL, SRC_GENERATOR, NULL, "highest bid, tumbling 10s (Flink 12-18K)", 15e3, 196e3},
    {"q8", NULL, SRC_GENERATOR, NULL,
     "new users: window join of persons and auctions, tumbling 10s (Flink 131-146K)", 138.5e3,
     415e3},
    {"q11", NULL, SRC_GENERATOR, NULL,
     "user sessions: bids per bidder, session gap 10s (Flink 34-40K)", 37e3, 0},
    {"dedup", NULL, SRC_GENERATOR, NULL, "first bid per (auction, bidder) within 10s", 0, 0},
    {"dedup-approx", NULL, SRC_GENERATOR, NULL,
     "dedup with Bloom filters: 3M keys a horizon at 0.001", 0, 0},
    {"cep", NULL, SRC_GENERATOR, NULL,
     "CEP fraud: 3+ small card transactions then a large one within 10 min "
     "(transactions generator, not Nexmark events)",
     0, 0},
    {"kafka-q0", "kafka-q0", SRC_KAFKA, "at_least_once",
     "q0 through Kafka: Avro bids from Kafka -> q0 -> blackhole (the ingest path alone)", 155e3,
     436e3},
    {"kafka-q5", "kafka-q5", SRC_KAFKA, "at_least_once",
     "q5 end to end: Avro bids from Kafka -> q5 -> Kafka (JSON), at-least-once", 31.5e3, 412e3},
    {"kafka-q5-eos", "kafka-q5", SRC_KAFKA, "exactly_once",
     "q5 end to end as kafka-q5, exactly-once (transactional sink)", 31.5e3, 412e3},
    {"kafka-q5-local", "kafka-q5", SRC_KAFKA, "at_least_once",
     "q5 end to end as kafka-q5, key_by in-process (repartition: local, one instance only)", 31.5e3,
     412e3},
};
#define NQ (int)(sizeof(queries) / sizeof(queries[0]))

typedef struct {
    unsigned long long events, out;
    double cpu, wall;         /* from the first record (kafka) or the start to the end */
    double startup_cpu, join; /* kafka: start -> first record, summed over passes */
    /* kafka, summed over passes: the read phase and the end (pass_t) */
    double read_cpu, read_wall, end_cpu, end_wall;
    int passes;
    int sustained;     /* --kafka-sustain: one pass over a topic kept topped up */
    double broker_cpu; /* --kafka-sustain: the broker process's CPU-s in the pass (its
                        * loader and the mock cluster serving both sides) */
    double starved;    /* --kafka-sustain: share of the read phase the instance was nearly
                        * out of bids (nexmark_sustain.c, SUS_STARVED) */
    double waiting;    /* --kafka-sustain: mean delivered and unread bids */
    long long rss;
    double p50_ms, p99_ms, max_ms;
    int ok;
    char err[1536];
} result_t;

/* The broker process of the Kafka queries. */
typedef struct {
    int ok;
    char bootstrap[512];
    char registry[128];
    unsigned long long bids; /* in topic nexmark-bids */
    double load_wall;
    char err[1536];
} broker_t;

typedef struct {
    unsigned long long events;
    int threads;
    int kafka_partitions;
    unsigned long long kafka_bids;
    const char *qdir;
    double load_start; /* 1-minute load average when the run began */
    bool sustain;      /* --kafka-sustain (nexmark_sustain.c) */
    int sus_fd;        /* --kafka-sustain: the command pipe to the broker process */
} opts_t;

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

/* Replace every @KEY@ by value; frees `in`. */
static char *subst(char *in, const char *key, const char *value) {
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
    free(in);
    return out;
}

/* bench/queries/FILE.yaml with its placeholders filled: keys[i] by vals[i]
 * (NULL-terminated); NULL with the reason in err. */
static char *query_text(const char *qdir, const char *file, const char *const *keys,
                        const char *const *vals, char *path, size_t path_size, char *err,
                        size_t err_size) {
    snprintf(path, path_size, "%s/%s.yaml", qdir, file);
    char *text = read_file(path);
    if (!text) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (int i = 0; keys[i]; i++)
        text = subst(text, keys[i], vals[i]);
    return text;
}

/*
 * EDDY_BENCH_MARKS=FILE: each pass appends "FIRST END" to FILE, the
 * CLOCK_MONOTONIC seconds of its first record and of its end, so that a
 * profile taken with `perf record -k CLOCK_MONOTONIC` can be cut to what
 * the figures measure (not the group join and task opening).
 */
static void bench_mark(double first, double end) {
    const char *path = getenv("EDDY_BENCH_MARKS");
    FILE *f = path && *path ? fopen(path, "a") : NULL;
    if (!f)
        return;
    fprintf(f, "%.6f %.6f\n", first, end);
    fclose(f);
}

/* What one engine run measured. */
typedef struct {
    unsigned long long events, out;
    double cpu, wall;         /* from the first record (wait_first) or the start to the end */
    double startup_cpu, join; /* wait_first: before the first record */
    /* expect > 0: from the first record until expect records were read
     * (the read phase) and from then to the end (the end of the pass:
     * the last windows fire, exchanges drain, the final commit and
     * checkpoint) */
    double read_cpu, read_wall, end_cpu, end_wall;
    double p50_ms, p99_ms, max_ms;
} pass_t;

/*
 * EDDY_BENCH_PROGRESS=S: every S seconds of wall time one line to stderr:
 * events read so far and the events per CPU-second over that interval (to
 * see whether a run slows down as it goes, and when), in the read phase
 * (progress_look) and to the end (poll_to_end).
 */
typedef struct {
    double every, c0, w0, wstart;
    unsigned long long n0;
} progress_t;

static void progress_init(progress_t *pr) {
    const char *pe = getenv("EDDY_BENCH_PROGRESS");
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    pr->every = pe ? atof(pe) : 0;
    pr->c0 = cpu_of(&ru);
    pr->w0 = pr->wstart = now_s();
    pr->n0 = 0;
}

/* One line if S seconds passed since the last. */
static void progress_look(progress_t *pr, eddy_engine_t *eng) {
    double w1 = now_s();
    if (pr->every <= 0 || w1 - pr->w0 < pr->every)
        return;
    eddy_stats_t st;
    eddy_engine_stats(eng, &st);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double c1 = cpu_of(&ru);
    unsigned long long n1 = (unsigned long long)st.events_in;
    fprintf(stderr, "progress: %7.1f s %12llu events %10.0f events/CPU-s %10.0f events/s\n",
            w1 - pr->wstart, n1, c1 > pr->c0 ? (double)(n1 - pr->n0) / (c1 - pr->c0) : 0,
            w1 > pr->w0 ? (double)(n1 - pr->n0) / (w1 - pr->w0) : 0);
    pr->c0 = c1;
    pr->w0 = w1;
    pr->n0 = n1;
}

/* Run the engine to its end. */
static eddy_err_t poll_to_end(eddy_engine_t *eng, progress_t *pr) {
    if (pr->every <= 0)
        return eddy_engine_poll(eng, -1);
    for (;;) {
        eddy_err_t e = eddy_engine_poll(eng, (int)(pr->every * 1000));
        if (e != EDDY_ERR_TIMEOUT)
            return e;
        progress_look(pr, eng);
    }
}

/*
 * Load, run to the end and destroy one topology with a fresh state
 * directory. CPU and wall time are taken from eddy_engine_start() to the
 * end; with wait_first, from the first record read to the end, and what
 * came before (the group join: wall; opening the tasks: CPU) is measured
 * apart. Returns 0, or -1 with the reason in err.
 */
static int run_engine(const char *text, const char *path, int threads, bool wait_first,
                      unsigned long long expect, sus_child_t *sus, pass_t *ps, char *err,
                      size_t err_size) {
    char errstr[1024], num[32];
    memset(ps, 0, sizeof(*ps));
    eddy_topology_t *topo =
        eddy_topology_load_string(text, strlen(text), path, errstr, sizeof(errstr));
    if (!topo) {
        snprintf(err, err_size, "%s", errstr);
        return -1;
    }
    /* A fresh state directory per run: a run must never resume the
     * committed state of an earlier one. Under /tmp, or EDDY_BENCH_TMP
     * (/dev/shm: how much of a run is fsync latency). */
    const char *tmp = getenv("EDDY_BENCH_TMP");
    char sdir[256];
    if ((size_t)snprintf(sdir, sizeof(sdir), "%s/eddy-bench-state-XXXXXX",
                         tmp && *tmp ? tmp : "/tmp") >= sizeof(sdir)) {
        snprintf(err, err_size, "EDDY_BENCH_TMP is too long");
        eddy_topology_destroy(topo);
        return -1;
    }
    if (!mkdtemp(sdir)) {
        snprintf(err, err_size, "mkdtemp: %s", strerror(errno));
        eddy_topology_destroy(topo);
        return -1;
    }
    eddy_conf_t *conf = eddy_conf_new();
    snprintf(num, sizeof(num), "%d", threads);
    eddy_conf_set(conf, "threads", num, errstr, sizeof(errstr));
    eddy_conf_set(conf, "state.dir", sdir, errstr, sizeof(errstr));
    eddy_engine_t *eng = eddy_engine_new(topo, conf, errstr, sizeof(errstr));
    eddy_conf_destroy(conf);
    int rc = -1;
    if (!eng) {
        snprintf(err, err_size, "%s", errstr);
        goto out;
    }
    struct rusage ru0, rufirst, ruread, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    rufirst = ruread = ru0;
    double w0 = now_s(), wfirst = w0, wread = w0;
    progress_t pr;
    progress_init(&pr);
    eddy_err_t e = eddy_engine_start(eng);
    /* Wait for the first record in steps of 5 ms (each look reads the
     * engine's stats, state memory included: not free). */
    while (!e && wait_first) {
        eddy_stats_t st;
        eddy_engine_stats(eng, &st);
        if (st.events_in > 0)
            break;
        wfirst = now_s();
        getrusage(RUSAGE_SELF, &rufirst);
        e = eddy_engine_poll(eng, 5);
        if (e == EDDY_ERR_TIMEOUT)
            e = EDDY_OK;
        else if (!e) /* ended before a record was seen */
            goto ended;
    }
    /* the read phase: looks every 2 ms (a stats read each: cheap); with
     * sus, each look reports the positions to the loader */
    ruread = rufirst;
    wread = wfirst;
    unsigned long long seen = 0;
    double moved = wfirst, skipped_since = 0;
    while (!e && expect) {
        eddy_stats_t st;
        eddy_engine_stats(eng, &st);
        wread = now_s();
        getrusage(RUSAGE_SELF, &ruread);
        /* positions past the records read (for more than a moment:
         * they are published once a batch) are records skipped */
        unsigned long long at = sus ? sus_child_progress(sus, eng) : 0;
        if (at <= st.events_in)
            skipped_since = 0;
        else if (!skipped_since)
            skipped_since = wread;
        if ((unsigned long long)st.events_in >= expect)
            break;
        if (st.events_in != seen) {
            seen = st.events_in;
            moved = wread;
        }
        if (sus && (wread - moved > 30 || (skipped_since && wread - skipped_since > 2))) {
            snprintf(err, err_size,
                     "sustained pass: read %llu of %llu bids, the positions are at %llu%s "
                     "(records dropped by the mock before they were read)",
                     (unsigned long long)st.events_in, expect, at,
                     skipped_since ? "" : ", none read for 30 s");
            eddy_engine_destroy(eng);
            goto out;
        }
        progress_look(&pr, eng);
        e = eddy_engine_poll(eng, 2);
        if (e == EDDY_ERR_TIMEOUT)
            e = EDDY_OK;
        else if (!e)
            goto ended;
    }
    /* sustained: every bid produced is read; the positions catch up
     * (published once a batch), then the instance stops as a long-running
     * one is stopped: in-flight batches finish, a final commit */
    for (int i = 0; !e && sus && i < 1000 && sus_child_progress(sus, eng) < sus->total; i++) {
        e = eddy_engine_poll(eng, 1);
        if (e == EDDY_ERR_TIMEOUT)
            e = EDDY_OK;
    }
    if (!e && sus)
        eddy_engine_stop(eng);
    if (!e)
        e = poll_to_end(eng, &pr);
ended:;
    double w1 = now_s();
    getrusage(RUSAGE_SELF, &ru1);
    bench_mark(wfirst, w1);
    if (e) {
        snprintf(err, err_size, "engine: %s", eddy_engine_last_error(eng));
    } else {
        eddy_stats_t st;
        eddy_engine_stats(eng, &st);
        ps->events = st.events_in;
        ps->out = st.events_out;
        ps->cpu = cpu_of(&ru1) - cpu_of(&rufirst);
        ps->startup_cpu = cpu_of(&rufirst) - cpu_of(&ru0);
        ps->wall = w1 - wfirst;
        ps->join = wfirst - w0;
        if (expect) {
            ps->read_cpu = cpu_of(&ruread) - cpu_of(&rufirst);
            ps->read_wall = wread - wfirst;
            ps->end_cpu = cpu_of(&ru1) - cpu_of(&ruread);
            ps->end_wall = w1 - wread;
        }
        ps->p50_ms = (double)eddy_engine_latency_ns(eng, 50) / 1e6;
        ps->p99_ms = (double)eddy_engine_latency_ns(eng, 99) / 1e6;
        ps->max_ms = (double)eddy_engine_latency_ns(eng, 100) / 1e6;
        rc = 0;
    }
    eddy_engine_destroy(eng);
out:
    eddy_topology_destroy(topo);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sdir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", sdir);
    return rc;
}

static void add_pass(result_t *r, const pass_t *ps) {
    r->events += ps->events;
    r->out += ps->out;
    r->cpu += ps->cpu;
    r->wall += ps->wall;
    r->join += ps->join;
    r->startup_cpu += ps->startup_cpu;
    r->read_cpu += ps->read_cpu;
    r->read_wall += ps->read_wall;
    r->end_cpu += ps->end_cpu;
    r->end_wall += ps->end_wall;
    r->p50_ms = ps->p50_ms; /* the last pass's */
    r->p99_ms = ps->p99_ms;
    r->max_ms = ps->max_ms;
    r->passes++;
}

/* The measured child: one pass (generator) or passes over the topic
 * (kafka) until o->events records are read. */
static void run_child(const opts_t *o, const query_t *q, const broker_t *bk, int fd) {
    result_t r;
    memset(&r, 0, sizeof(r));
    char path[1024], num[32], threads[32], app[128];
    snprintf(num, sizeof(num), "%llu", o->events);
    snprintf(threads, sizeof(threads), "%d", o->threads);
    const char *gkeys[] = {"@EVENTS@", "@PARTITIONS@", NULL};
    const char *gvals[] = {num, threads};
    const char *kkeys[] = {"@APPLICATION@", "@GUARANTEE@", "@REPARTITION@", "@BOOTSTRAP@",
                           "@REGISTRY@",    "@TOPIC@",     "@BOUNDED@",     NULL};
    bool kafka = q->source == SRC_KAFKA;
    /* --kafka-sustain: one pass of o->events bids over a topic of its own
     * that the broker process keeps topped up, unbounded, stopped once
     * every bid was read */
    char topic[64];
    snprintf(topic, sizeof(topic), "nexmark-sustain-%s", q->name);
    sus_child_t sus = {.fd = kafka && o->sustain ? o->sus_fd : -1,
                       .topic = topic,
                       .partitions = o->kafka_partitions,
                       .total = o->events};
    unsigned long long expect = sus.fd >= 0 ? o->events : bk ? bk->bids : 0;
    r.sustained = sus.fd >= 0;
    /* settings.repartition: a name's -local keeps key_by in-process */
    const char *kvals[] = {app,
                           q->guarantee,
                           strstr(q->name, "-local") ? "local" : "auto",
                           bk ? bk->bootstrap : "",
                           bk ? bk->registry : "",
                           sus.fd >= 0 ? topic : "nexmark-bids",
                           sus.fd >= 0 ? "false" : "true"};
    do {
        snprintf(app, sizeof(app), "nexmark-%s-%d-%d", q->name, (int)getpid(), r.passes);
        char *text = query_text(o->qdir, q->file ? q->file : q->name, kafka ? kkeys : gkeys,
                                kafka ? kvals : gvals, path, sizeof(path), r.err, sizeof(r.err));
        pass_t ps;
        int rc = text ? run_engine(text, path, o->threads, kafka, kafka ? expect : 0,
                                   sus.fd >= 0 ? &sus : NULL, &ps, r.err, sizeof(r.err))
                      : -1;
        free(text);
        if (rc)
            goto out;
        if (sus.fd >= 0) {
            if (sus_child_check(&sus, ps.events, r.err, sizeof(r.err)))
                goto out;
        } else if (kafka && ps.events != bk->bids) {
            snprintf(r.err, sizeof(r.err), "pass %d read %llu bids of the %llu in the topic",
                     r.passes + 1, ps.events, bk->bids);
            goto out;
        }
        add_pass(&r, &ps);
    } while (kafka && !r.sustained && r.events < o->events);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.rss = ru.ru_maxrss * 1024LL;
    r.ok = 1;
out:
    if (write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        _exit(3);
    _exit(0);
}

static int run_query(const opts_t *o, const query_t *q, const broker_t *bk, result_t *r) {
    int fds[2];
    if (pipe(fds))
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        run_child(o, q, bk, fds[1]);
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

/* ------------------------------------------------------ broker process */

/* Every partition of topic still holds its offset 0 (the mock drops the
 * oldest record sets past about 5 MiB); *records = their sum. */
static int topic_intact(const char *bootstrap, const char *topic, int partitions,
                        unsigned long long *records, char *err, size_t err_size) {
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(err, err_size, "%s", why);
        return -1;
    }
    int rc = 0;
    *records = 0;
    for (int p = 0; p < partitions && !rc; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        if (e) {
            snprintf(err, err_size, "topic %s partition %d: %s", topic, p, rd_kafka_err2str(e));
            rc = -1;
        } else if (lo != 0) {
            snprintf(err, err_size,
                     "topic %s partition %d lost its first %lld records: the mock cluster keeps "
                     "about 5 MiB per partition; lower --kafka-bids or raise --kafka-partitions",
                     topic, p, (long long)lo);
            rc = -1;
        }
        *records += (unsigned long long)(hi - lo);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* The broker process: fill the topic, report, then serve until `hold`
 * is closed by the parent (or the parent dies); with --kafka-sustain, also
 * run the loader of the sustained passes (commands on cmd_fd, answers on
 * reply_fd). */
static void broker_main(const opts_t *o, int report_fd, int hold_fd, int cmd_fd, int reply_fd) {
    broker_t b;
    memset(&b, 0, sizeof(b));
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    char path[1024], events[32], parts[32], err[1024];
    sus_loader_t *loader = NULL;
    /* 46 in 50 events are bids; generate enough for kafka_bids of them */
    snprintf(events, sizeof(events), "%llu", (o->kafka_bids * 50 + 45) / 46);
    snprintf(parts, sizeof(parts), "%d", o->kafka_partitions);
    const char *keys[] = {"@EVENTS@", "@PARTITIONS@", NULL};
    const char *vals[] = {events, parts};
    /* held here for the whole run: the cluster and the registry outlive
     * the loading engine, as a broker outlives an application */
    if (eddy__kafka_embedded_acquire(b.bootstrap, sizeof(b.bootstrap), b.err, sizeof(b.err)) ||
        eddy__sr_embedded_acquire(b.registry, sizeof(b.registry), b.err, sizeof(b.err)) ||
        eddy__kafka_embedded_topic("nexmark-q5", 1, b.err, sizeof(b.err)))
        goto report;
    char *text =
        query_text(o->qdir, "kafka-load", keys, vals, path, sizeof(path), b.err, sizeof(b.err));
    pass_t ps;
    double w0 = now_s();
    int rc = text ? run_engine(text, path, 1, false, 0, NULL, &ps, b.err, sizeof(b.err)) : -1;
    free(text);
    if (rc)
        goto report;
    b.load_wall = now_s() - w0;
    if (topic_intact(b.bootstrap, "nexmark-bids", o->kafka_partitions, &b.bids, err, sizeof(err))) {
        snprintf(b.err, sizeof(b.err), "%s", err);
        goto report;
    }
    if (b.bids != ps.out) {
        snprintf(b.err, sizeof(b.err), "topic nexmark-bids holds %llu records, %llu written",
                 b.bids, ps.out);
        goto report;
    }
    /* EDDY_BENCH_SUSTAIN_AHEAD=N: N bids a partition ahead instead (past
     * what the mock keeps: to see the loss check fail) */
    const char *ahead = getenv("EDDY_BENCH_SUSTAIN_AHEAD");
    if (o->sustain &&
        !(loader = sus_loader_new(b.bootstrap, "nexmark-bids", o->kafka_partitions,
                                  ahead && *ahead
                                      ? strtoull(ahead, NULL, 10)
                                      : o->kafka_bids / (unsigned long long)o->kafka_partitions,
                                  b.err, sizeof(b.err))))
        goto report;
    b.ok = 1;
report:
    if (write(report_fd, &b, sizeof(b)) != (ssize_t)sizeof(b))
        _exit(3);
    if (loader) {
        sus_loader_serve(loader, cmd_fd, reply_fd, hold_fd);
        sus_loader_destroy(loader);
        _exit(0);
    }
    char c;
    while (b.ok && read(hold_fd, &c, 1) > 0) {
    }
    _exit(0);
}

typedef struct {
    pid_t pid;
    int hold_fd;          /* closing it ends the broker */
    int cmd_fd, reply_fd; /* --kafka-sustain: commands to the loader, its answers */
    broker_t b;
} broker_proc_t;

static int broker_start(const opts_t *o, broker_proc_t *bp) {
    int rep[2], hold[2], cmd[2], reply[2];
    memset(bp, 0, sizeof(*bp));
    if (pipe(cmd))
        goto fail;
    if (pipe(reply)) {
        int e = errno;
        close(cmd[0]);
        close(cmd[1]);
        errno = e;
        goto fail;
    }
    bp->cmd_fd = cmd[1];
    bp->reply_fd = reply[0];
    if (pipe(rep))
        goto fail_sus;
    if (pipe(hold)) {
        int e = errno;
        close(rep[0]);
        close(rep[1]);
        errno = e;
        goto fail_sus;
    }
    fflush(stdout);
    fflush(stderr);
    bp->pid = fork();
    if (bp->pid < 0) {
        int e = errno;
        close(rep[0]);
        close(rep[1]);
        close(hold[0]);
        close(hold[1]);
        errno = e;
        goto fail_sus;
    }
    if (bp->pid == 0) {
        close(rep[0]);
        close(hold[1]);
        close(cmd[1]);
        close(reply[0]);
        broker_main(o, rep[1], hold[0], cmd[0], reply[1]);
    }
    close(rep[1]);
    close(hold[0]);
    close(cmd[0]);
    close(reply[1]);
    bp->hold_fd = hold[1];
    ssize_t n = read(rep[0], &bp->b, sizeof(bp->b));
    close(rep[0]);
    if (n != (ssize_t)sizeof(bp->b)) {
        snprintf(bp->b.err, sizeof(bp->b.err), "broker process died");
        bp->b.ok = 0;
    }
    return bp->b.ok ? 0 : -1;
fail_sus:;
    int e = errno;
    close(cmd[0]);
    close(cmd[1]);
    close(reply[0]);
    close(reply[1]);
    errno = e;
fail:
    snprintf(bp->b.err, sizeof(bp->b.err), "pipe or fork: %s", strerror(errno));
    bp->pid = 0;
    bp->cmd_fd = bp->reply_fd = -1;
    return -1;
}

/* --kafka-sustain: one command to the loader and its answer. */
static int sus_command(const broker_proc_t *bp, const sus_msg_t *m, sus_reply_t *r) {
    memset(r, 0, sizeof(*r));
    if (write(bp->cmd_fd, m, sizeof(*m)) != (ssize_t)sizeof(*m) ||
        read(bp->reply_fd, r, sizeof(*r)) != (ssize_t)sizeof(*r)) {
        snprintf(r->err, sizeof(r->err), "the broker process's loader is gone");
        r->ok = 0;
    }
    return r->ok ? 0 : -1;
}

static void broker_stop(broker_proc_t *bp) {
    if (bp->pid <= 0)
        return;
    close(bp->hold_fd);
    close(bp->cmd_fd);
    close(bp->reply_fd);
    int status;
    waitpid(bp->pid, &status, 0);
    bp->pid = 0;
}

/* --kafka-sustain: the loader starts the query's topic (its first CAP
 * bids a partition in), the child reads the pass, the loader says it
 * produced and delivered every bid. */
static int run_sustained(opts_t *o, const query_t *q, const broker_proc_t *bp, result_t *r) {
    sus_msg_t m = {.type = SUS_BEGIN, .partitions = o->kafka_partitions, .total = o->events};
    sus_reply_t rep;
    snprintf(m.topic, sizeof(m.topic), "nexmark-sustain-%s", q->name);
    if (sus_command(bp, &m, &rep)) {
        memset(r, 0, sizeof(*r));
        snprintf(r->err, sizeof(r->err), "loader: %s", rep.err);
        return -1;
    }
    o->sus_fd = bp->cmd_fd;
    int rc = run_query(o, q, &bp->b, r);
    m.type = SUS_END;
    if (sus_command(bp, &m, &rep)) {
        if (!rc)
            snprintf(r->err, sizeof(r->err), "loader: %s", rep.err);
        return -1;
    }
    r->broker_cpu = rep.broker_cpu;
    r->starved = rep.starved;
    r->waiting = rep.waiting;
    return rc;
}

/* ------------------------------------------------------------- report */

static const char *human(double v, char *buf, size_t n) {
    if (v >= 1e6)
        snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, n, "%.1fK", v / 1e3);
    else
        snprintf(buf, n, "%.0f", v);
    return buf;
}

static double per(double n, double d) {
    return d > 0 ? n / d : 0;
}

static int index_of(const char *name) {
    for (int q = 0; q < NQ; q++)
        if (!strcmp(queries[q].name, name))
            return q;
    return -1;
}

static int write_results(const char *results, const opts_t *o, const result_t *res, const int *ran,
                         const broker_t *bk) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/latest.json", results);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench/nexmark: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double load_end = 0;
    getloadavg(&load_end, 1);
    fprintf(f,
            "{\n  \"benchmark\": \"nexmark\",\n  \"date\": \"%s\",\n  \"events\": %llu,\n"
            "  \"threads\": %d,\n  \"machine_cores\": %ld,\n"
            "  \"load_average_1m\": {\"start\": %.2f, \"end\": %.2f},\n"
            "  \"eddy_version\": \"%s\",\n  \"queries\": {",
            date, o->events, o->threads, ncpu, o->load_start, load_end, eddy_version());
    int first = 1;
    for (int q = 0; q < NQ; q++) {
        if (!ran[q])
            continue;
        const result_t *r = &res[q];
        fprintf(f,
                "%s\n    \"%s\": {\"events\": %llu, \"events_out\": %llu, \"cpu_seconds\": %.4f, "
                "\"events_per_cpu_second\": %.1f, \"wall_seconds\": %.4f, "
                "\"events_per_second\": %.1f, \"peak_rss_bytes\": %lld, "
                "\"latency_p50_ms\": %.4f, \"latency_p99_ms\": %.4f, \"latency_max_ms\": %.4f, "
                "\"flink_events_per_core_second\": %.0f, "
                "\"feldera_events_per_core_second\": %.0f",
                first ? "" : ",", queries[q].name, r->events, r->out, r->cpu,
                per((double)r->events, r->cpu), r->wall, per((double)r->events, r->wall), r->rss,
                r->p50_ms, r->p99_ms, r->max_ms, queries[q].flink, queries[q].feldera);
        if (queries[q].source == SRC_KAFKA)
            fprintf(f,
                    ", \"source\": \"kafka\", \"processing_guarantee\": \"%s\", "
                    "\"passes\": %d, \"bids_per_pass\": %llu, \"topic_partitions\": %d, "
                    "\"startup_wall_seconds\": %.4f, \"startup_cpu_seconds\": %.4f, "
                    "\"events_per_second_with_startup\": %.1f, "
                    "\"events_per_cpu_second_with_startup\": %.1f, "
                    "\"read_phase\": {\"wall_seconds\": %.4f, \"cpu_seconds\": %.4f, "
                    "\"events_per_second\": %.1f, \"events_per_cpu_second\": %.1f}, "
                    "\"end_of_pass\": {\"wall_seconds\": %.4f, \"cpu_seconds\": %.4f}, "
                    "\"mode\": \"%s\", \"broker_process_cpu_seconds\": %.4f, "
                    "\"starved_share\": %.4f, \"mean_bids_waiting\": %.0f",
                    queries[q].guarantee, r->passes, bk->bids, o->kafka_partitions, r->join,
                    r->startup_cpu, per((double)r->events, r->wall + r->join),
                    per((double)r->events, r->cpu + r->startup_cpu), r->read_wall, r->read_cpu,
                    per((double)r->events, r->read_wall), per((double)r->events, r->read_cpu),
                    r->end_wall, r->end_cpu, r->sustained ? "sustained" : "passes", r->broker_cpu,
                    r->starved, r->waiting);
        fprintf(f, "}");
        first = 0;
    }
    fprintf(f, "\n  }\n}\n");
    fclose(f);

    snprintf(path, sizeof(path), "%s/latest.md", results);
    f = fopen(path, "w");
    if (!f)
        return 0;
    fprintf(f,
            "Nexmark, %llu events, %d stream thread(s), %s, %ld cores, load average %.1f at "
            "the start and %.1f at the end.\n\n"
            "| query | what | eddy events/CPU-s | eddy events/s | Flink /core | Feldera /core | "
            "eddy vs Feldera | p50 ms | p99 ms | peak RSS |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            o->events, o->threads, date, ncpu, o->load_start, load_end);
    for (int q = 0; q < NQ; q++) {
        if (!ran[q])
            continue;
        const result_t *r = &res[q];
        double eps = per((double)r->events, r->cpu);
        char a[32], b[32], c[32], d[32], ratio[32];
        if (queries[q].feldera > 0)
            snprintf(ratio, sizeof(ratio), "%.1fx", eps / queries[q].feldera);
        else
            snprintf(ratio, sizeof(ratio), "n/a");
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %.3f | %.3f | %.0f MiB |\n",
                queries[q].name, queries[q].what, human(eps, a, sizeof(a)),
                human(per((double)r->events, r->wall), d, sizeof(d)),
                queries[q].flink > 0 ? human(queries[q].flink, b, sizeof(b)) : "n/a",
                queries[q].feldera > 0 ? human(queries[q].feldera, c, sizeof(c)) : "n/a", ratio,
                r->p50_ms, r->p99_ms, (double)r->rss / (1024.0 * 1024.0));
    }
    int alo = index_of("kafka-q5"), eos = index_of("kafka-q5-eos"), kq = -1;
    for (int q = 0; q < NQ && kq < 0; q++)
        if (ran[q] && queries[q].source == SRC_KAFKA)
            kq = q; /* its passes and startup stand for the others' */
    if (kq >= 0) {
        const result_t *r = &res[kq];
        char a[32];
        char closed[96];
        if (r->out)
            snprintf(closed, sizeof(closed), "and windows closed during it (%llu results out)",
                     r->out);
        else
            snprintf(closed, sizeof(closed), "so no window closed during it (no results out)");
        if (r->sustained)
            fprintf(f,
                    "\nKafka queries sustained (--kafka-sustain): each reads ONE pass of %llu "
                    "bids with one consumer group from a topic of its own (%d partitions) that "
                    "the broker process keeps topped up, at most %llu bids a partition ahead of "
                    "the instance's position (the mock cluster keeps about 5 MiB a partition), "
                    "with the Nexmark bids of nexmark-bids round after round, moved on in event "
                    "time and auction ids; the instance reads every offset exactly once (checked) "
                    "and is then stopped as a long-running one is: in-flight batches finish, a "
                    "final commit and checkpoint. Figures are from the first record to the end of "
                    "the stop; the broker process's CPU (loader and mock cluster) is not counted "
                    "but shares the cores: %.1f CPU-s for %s. With Nexmark's event time (10M "
                    "events/s) the pass spans %.1f s of event time, %s (the stop fires none: a "
                    "stopped instance keeps its open windows in its state). The "
                    "startup (group join and opening %d task stores) is left out: for %s, %.1f s "
                    "and %.2f CPU-s (with it: %s events/s, ",
                    o->events, o->kafka_partitions,
                    o->kafka_bids / (unsigned long long)o->kafka_partitions, r->broker_cpu,
                    queries[kq].name, (double)o->events * 50.0 / 46.0 / 1e7, closed,
                    o->kafka_partitions, queries[kq].name, r->join, r->startup_cpu,
                    human(per((double)r->events, r->wall + r->join), a, sizeof(a)));
        else
            fprintf(f,
                    "\nGenerator queries (q0-q11): the generator runs in the measured process and "
                    "every generated event counts. Kafka queries: %llu Avro bids in topic "
                    "nexmark-bids (%d partitions) on the embedded cluster of a separate broker "
                    "process; the measured process is the eddy instance alone, reading the topic "
                    "%d times with a fresh consumer group and state each time; events are the "
                    "bids read; CPU and wall time are from each pass's first record to its end; "
                    "the startup of a pass (group join and opening %d task stores) is left out: "
                    "for %s, %.1f s and %.2f CPU-s in all (with it: %s events/s, ",
                    bk->bids, o->kafka_partitions, r->passes, o->kafka_partitions, queries[kq].name,
                    r->join, r->startup_cpu,
                    human(per((double)r->events, r->wall + r->join), a, sizeof(a)));
        fprintf(f, "%s events/CPU-s).",
                human(per((double)r->events, r->cpu + r->startup_cpu), a, sizeof(a)));
        if (ran[alo] && ran[eos]) {
            double ca = per((double)res[alo].events, res[alo].cpu);
            double ce = per((double)res[eos].events, res[eos].cpu);
            double wa = per((double)res[alo].events, res[alo].wall);
            double we = per((double)res[eos].events, res[eos].wall);
            fprintf(f,
                    " Exactly-once costs %.1f%% of events per CPU-second and %.1f%% of events "
                    "per second against at-least-once.",
                    100.0 * (1.0 - ce / ca), 100.0 * (1.0 - we / wa));
        }
        if (r->sustained)
            fprintf(f,
                    "\n\nThe pass split in two: the read phase (from the first record until "
                    "the last bid was read) and the end (the stop: in-flight batches, the "
                    "final commit with its checkpoint of every task). Nearly out of bids: the "
                    "share of the read phase with fewer than %d bids delivered to the "
                    "broker and not yet read by the instance (%.0f ms of work at 1M events/s), "
                    "where the loader, not the instance, set the pace:\n\n| query | read "
                    "phase events/CPU-s | read phase events/s | end ms | end CPU-ms | nearly "
                    "out of bids | bids waiting (mean) |\n"
                    "|---|---:|---:|---:|---:|---:|---:|\n",
                    SUS_STARVED, SUS_STARVED / 1000.0);
        else
            fprintf(f,
                    "\n\nEach pass split in two: the read phase (from the first record until the "
                    "pass's last bid was read) and the end of the pass (the last windows fire, "
                    "exchanges drain, the final commit with its checkpoint of every task). A "
                    "long-running instance lands between the two: it checkpoints every "
                    "state.checkpoint.interval.ms, not every %llu bids, but the end's state writes "
                    "are work it does too, at every commit:\n\n| query | read phase events/CPU-s | "
                    "read phase events/s | "
                    "end of a pass ms | end of a pass CPU-ms |\n|---|---:|---:|---:|---:|\n",
                    bk->bids);
        for (int q = 0; q < NQ; q++) {
            if (!ran[q] || queries[q].source != SRC_KAFKA || !res[q].passes)
                continue;
            const result_t *x = &res[q];
            char b[32];
            fprintf(f, "| %s | %s | %s | %.1f | %.1f |", queries[q].name,
                    human(per((double)x->events, x->read_cpu), a, sizeof(a)),
                    human(per((double)x->events, x->read_wall), b, sizeof(b)),
                    1e3 * x->end_wall / x->passes, 1e3 * x->end_cpu / x->passes);
            if (x->sustained)
                fprintf(f, " %.1f%% | %.0f |", 100.0 * x->starved, x->waiting);
            fprintf(f, "\n");
        }
    }
    fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    opts_t o = {.events = 10000000ULL,
                .threads = 1,
                .kafka_partitions = 4, /* bench/queries/kafka-q5.yaml says why */
                .kafka_bids = 0,       /* what fits: 23000 a partition */
                .qdir = "bench/queries"};
    const char *results = "bench/results";
    const char *want[64];
    int nwant = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--events") && i + 1 < argc)
            o.events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            o.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kafka-partitions") && i + 1 < argc)
            o.kafka_partitions = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kafka-bids") && i + 1 < argc)
            o.kafka_bids = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--kafka-sustain"))
            o.sustain = true;
        else if (!strcmp(argv[i], "--results-dir") && i + 1 < argc)
            results = argv[++i];
        else if (!strcmp(argv[i], "--queries-dir") && i + 1 < argc)
            o.qdir = argv[++i];
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench/nexmark [--events N] [--threads T] [--kafka-bids N]\n"
                            "                     [--kafka-partitions P] [--kafka-sustain] "
                            "[QUERY...]\n"
                            "queries:");
            for (int q = 0; q < NQ; q++)
                fprintf(stderr, " %s", queries[q].name);
            fprintf(stderr, "\n");
            return 2;
        } else if (nwant < 64)
            want[nwant++] = argv[i];
    }
    if (!o.kafka_bids && o.kafka_partitions > 0)
        o.kafka_bids = 23000ULL * (unsigned long long)o.kafka_partitions;
    if (o.threads < 1 || o.events < 1 || o.kafka_partitions < 1 || o.kafka_bids < 1) {
        fprintf(stderr, "bench/nexmark: --events, --threads, --kafka-bids and "
                        "--kafka-partitions must be positive\n");
        return 2;
    }
    for (int w = 0; w < nwant; w++) {
        if (index_of(want[w]) < 0) {
            fprintf(stderr, "bench/nexmark: unknown query '%s'\n", want[w]);
            return 2;
        }
    }
    if (o.sustain && o.kafka_partitions > SUS_MAXPARTS) {
        fprintf(stderr, "bench/nexmark: --kafka-sustain takes at most %d partitions\n",
                SUS_MAXPARTS);
        return 2;
    }
    /* a small run reads no more than it asked for */
    if (o.kafka_bids > o.events)
        o.kafka_bids = o.events;
    result_t res[NQ];
    int ran[NQ] = {0}, failed = 0;
    getloadavg(&o.load_start, 1);
    broker_proc_t bp = {0};
    printf("Nexmark, %llu events, %d stream thread%s\n", o.events, o.threads,
           o.threads == 1 ? "" : "s");
    printf("%-12s %14s %14s %10s %10s %9s %9s %10s\n", "query", "events/cpu-s", "events/s", "cpu-s",
           "wall-s", "p50-ms", "p99-ms", "peak-RSS");
    for (int q = 0; q < NQ; q++) {
        int sel = nwant == 0;
        for (int w = 0; w < nwant; w++)
            sel |= !strcmp(want[w], queries[q].name);
        if (!sel)
            continue;
        if (queries[q].source == SRC_KAFKA && !bp.pid) {
            if (broker_start(&o, &bp)) {
                printf("%-12s FAILED: broker process: %s\n", queries[q].name, bp.b.err);
                failed++;
                broker_stop(&bp);
                bp.pid = -1; /* no second try */
                continue;
            }
            printf("(broker process: %llu Avro bids in nexmark-bids, %d partitions, loaded in "
                   "%.1f s)\n",
                   bp.b.bids, o.kafka_partitions, bp.b.load_wall);
        }
        if (queries[q].source == SRC_KAFKA && bp.pid < 0) {
            printf("%-12s FAILED: broker process: %s\n", queries[q].name, bp.b.err);
            failed++;
            continue;
        }
        ran[q] = 1;
        if (queries[q].source == SRC_KAFKA && o.sustain
                ? run_sustained(&o, &queries[q], &bp, &res[q])
                : run_query(&o, &queries[q], &bp.b, &res[q])) {
            printf("%-12s FAILED: %s\n", queries[q].name, res[q].err);
            failed++;
            ran[q] = 0;
            continue;
        }
        result_t *r = &res[q];
        printf("%-12s %14.0f %14.0f %10.3f %10.3f %9.3f %9.3f %9.1fM", queries[q].name,
               per((double)r->events, r->cpu), per((double)r->events, r->wall), r->cpu, r->wall,
               r->p50_ms, r->p99_ms, (double)r->rss / (1024.0 * 1024.0));
        if (queries[q].source == SRC_KAFKA && r->sustained)
            printf("  (sustained: one pass, the topic topped up to %llu bids a partition ahead "
                   "of the instance; nearly out of bids %.1f%% of the read phase, %.0f bids "
                   "waiting on average; broker process %.2f CPU-s; startup left out: %.1f s, "
                   "%.2f CPU-s; read phase %.0f events/CPU-s, %.0f events/s; end %.1f ms, %.1f "
                   "CPU-ms)",
                   o.kafka_bids / (unsigned long long)o.kafka_partitions, 100.0 * r->starved,
                   r->waiting, r->broker_cpu, r->join, r->startup_cpu,
                   per((double)r->events, r->read_cpu), per((double)r->events, r->read_wall),
                   1e3 * r->end_wall, 1e3 * r->end_cpu);
        else if (queries[q].source == SRC_KAFKA)
            printf("  (%d pass%s; startup left out: %.1f s, %.2f CPU-s; read phase %.0f "
                   "events/CPU-s, %.0f events/s; end of a pass %.1f ms, %.1f CPU-ms)",
                   r->passes, r->passes == 1 ? "" : "es", r->join, r->startup_cpu,
                   per((double)r->events, r->read_cpu), per((double)r->events, r->read_wall),
                   r->passes ? 1e3 * r->end_wall / r->passes : 0,
                   r->passes ? 1e3 * r->end_cpu / r->passes : 0);
        printf("\n");
        fflush(stdout);
    }
    broker_stop(&bp);
    if (write_results(results, &o, res, ran, &bp.b))
        return 1;
    printf("wrote %s/latest.json and %s/latest.md\n", results, results);
    return failed ? 1 : 0;
}
