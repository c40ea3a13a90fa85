/*
 * State benchmark (run through bench/state): the acceptance figures of
 * eddy's state layer, measured against raw RocksDB on the same machine in
 * the same run.
 *
 * Every measurement runs in a forked child, so its CPU time (user+sys from
 * getrusage, which includes RocksDB's background flush and compaction
 * threads) and its peak RSS are its own; the parent never opens RocksDB, so
 * no threads exist at fork. Tasks are set up without the engine: one state
 * env, one task, one kv store, the commit sequence of the engine
 * (eddy__tstate_prepare -> eddy__state_env_mark -> eddy__tstate_finish).
 *
 *   raw       eddy__rocks_* WriteBatches of 1,000 puts (WAL as rocks.c sets
 *             it: off), the baseline every ratio divides by. The DB gets the
 *             same RocksDB share of the budget a task state gets.
 *   update    eddy__store_put into the write cache, a commit every 100,000
 *             updates (changelog append + fdatasync, COMMITTED marker,
 *             RocksDB WriteBatch). No periodic checkpoints.
 *   restore   the update run's task with its db/ and checkpoint removed:
 *             eddy__tstate_open replays the whole changelog into an empty
 *             store. Rate = records replayed / CPU-seconds of the open.
 *   restart   eddy__state_env_new + eddy__tstate_open, wall time, of a task
 *             holding the keys: after a clean shutdown (last finish forces
 *             a checkpoint), and after SIGKILL of a writer that committed
 *             every key after its last checkpoint (replay over the live
 *             store).
 *   memory    a writer of --keys distinct keys (default 10M) through the
 *             full path with state.memory.max.bytes = --budget; its peak
 *             RSS (ru_maxrss) against the budget.
 *
 * Keys are 16 bytes: the big-endian 64-bit multiplicative hash of the
 * counter i (a bijection, so keys are distinct), then i big-endian. So keys
 * arrive in random order, the honest case for a sorted store;
 * --order sequential gives the friendly one (big-endian i, then i).
 * Values are 16 bytes.
 */
#define _GNU_SOURCE /* RUSAGE_THREAD */
#include "eddy.h"
#include "state/rocks.h"
#include "state/tstate.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KEY_BYTES 16
#define VAL_BYTES 16
#define RAW_BATCH 1000
#define COMMIT_EVERY 100000
/* "Never" for periodic checkpoints: 2^40 ms (~35 years), which stays in
 * range when tstate.c turns it into nanoseconds (older trees multiplied
 * INT64_MAX/2 by 1e6 and overflowed). */
#define NO_CHECKPOINT_MS ((int64_t)1 << 40)

#define TARGET_UPDATE_RATIO 0.8
#define TARGET_RESTORE_RATIO 0.7
#define TARGET_RESTART_S 2.0
#define TARGET_RSS_OVER_BUDGET 1.2

typedef struct {
    const char *dir; /* this measurement's state.dir */
    uint64_t keys;
    int64_t budget;
    int sequential;
} job_t;

typedef struct {
    int ok;
    double cpu, wall;      /* of the measured part */
    double cpu_main;       /* of the calling thread alone (no RocksDB threads) */
    uint64_t n;            /* puts, updates or records replayed */
    long long rss;         /* ru_maxrss of the child, bytes */
    long long rocks_usage; /* eddy__state_env_usage() at the end */
    long long wal_bytes;   /* raw: RocksDB WAL files in the DB dir */
    double replay_s;       /* eddy__tstate_restore_stats() */
    char compression[16];  /* raw: eddy__rocks_env_compression() */
    char err[1536];
} result_t;

typedef void (*job_fn)(const job_t *job, result_t *r);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_of(const struct rusage *ru) {
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return cpu_of(&ru);
}

static double cpu_thread_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return cpu_of(&ru);
}

static long long maxrss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024LL;
}

/* Other work on the machine inflates wall times (not CPU times): recorded
 * beside the figures. */
static double loadavg1(void) {
    double l[1] = {0};
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

static void be64(char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* Key i: random order by default (odd multiplier: a bijection of 2^64). */
static void make_key(const job_t *job, uint64_t i, char *k) {
    be64(k, job->sequential ? i : i * 0x9E3779B97F4A7C15ULL);
    be64(k + 8, i);
}

static void make_val(uint64_t i, char *v) {
    be64(v, i);
    be64(v + 8, ~i);
}

static void rm_rf(const char *path) {
    char err[256];
    (void)eddy__rocks_destroy_dir(path, err, sizeof(err));
}

/* Bytes of RocksDB WAL files (NNNNNN.log) in a DB directory: 0 when the
 * WAL is really off. */
static long long wal_bytes_in(const char *dir) {
    DIR *d = opendir(dir);
    long long n = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 4, ".log"))
            continue;
        char path[8192];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (!stat(path, &sb))
            n += (long long)sb.st_size;
    }
    closedir(d);
    return n;
}

/* ----------------------------------------------------------- task state */

static const eddy_store_def_t store_def = {.name = "s", .kind = EDDY_STORE_KV};

static eddy_state_env_t *env_new(const job_t *job, char *errstr, size_t n) {
    eddy_state_conf_t conf = {.dir = job->dir,
                              .application = "bench",
                              .memory_bytes = job->budget,
                              .checkpoint_interval_ms = NO_CHECKPOINT_MS,
                              .ntasks = 1,
                              .nstores = 1};
    return eddy__state_env_new(&conf, errstr, n);
}

static eddy_tstate_t *task_open(eddy_state_env_t *env, char *errstr, size_t n) {
    const eddy_store_def_t *defs[] = {&store_def};
    return eddy__tstate_open(env, 0, defs, 1, errstr, n);
}

/* The engine's commit: phase 1, acknowledge, phase 2. */
static eddy_err_t commit(eddy_state_env_t *env, eddy_tstate_t *ts, uint64_t id, bool ckpt,
                         char *errstr, size_t n) {
    eddy_err_t e = eddy__tstate_prepare(ts, id, NULL, 0, 0, errstr, n);
    if (!e)
        e = eddy__state_env_mark(env, id, errstr, n);
    if (!e)
        e = eddy__tstate_finish(ts, ckpt, errstr, n);
    return e;
}

/* ------------------------------------------------------------------ jobs */

static void job_raw(const job_t *job, result_t *r) {
    char errstr[1024], path[4200];
    /* The RocksDB share a task state gets (tstate.c keeps a quarter of the
     * budget for write caches). */
    eddy_rocks_env_t *renv =
        eddy__rocks_env_new(job->budget - job->budget / 4, 1, errstr, sizeof(errstr));
    if (!renv) {
        snprintf(r->err, sizeof(r->err), "%s", errstr);
        return;
    }
    snprintf(path, sizeof(path), "%s/raw-db", job->dir);
    const char *cfs[] = {"s"};
    eddy_rocks_t *db = eddy__rocks_open(renv, path, cfs, 1, errstr, sizeof(errstr));
    if (!db) {
        snprintf(r->err, sizeof(r->err), "%s", errstr);
        eddy__rocks_env_destroy(renv);
        return;
    }
    eddy_rocks_batch_t *b = eddy__rocks_batch_new();
    char k[KEY_BYTES], v[VAL_BYTES];
    double c0 = cpu_now(), t0 = cpu_thread_now(), w0 = now_s();
    eddy_err_t e = EDDY_OK;
    for (uint64_t i = 0; i < job->keys && !e; i++) {
        make_key(job, i, k);
        make_val(i, v);
        eddy__rocks_batch_put(b, db, 0, k, KEY_BYTES, v, VAL_BYTES);
        if (eddy__rocks_batch_count(b) == RAW_BATCH || i + 1 == job->keys) {
            e = eddy__rocks_write(db, b, errstr, sizeof(errstr));
            eddy__rocks_batch_clear(b);
        }
    }
    r->cpu = cpu_now() - c0;
    r->cpu_main = cpu_thread_now() - t0;
    r->wall = now_s() - w0;
    r->n = job->keys;
    r->wal_bytes = wal_bytes_in(path);
    r->rocks_usage = eddy__rocks_env_usage_bytes(renv);
    snprintf(r->compression, sizeof(r->compression), "%s", eddy__rocks_env_compression(renv));
    if (e)
        snprintf(r->err, sizeof(r->err), "%s", errstr);
    else
        r->ok = 1;
    eddy__rocks_batch_destroy(b);
    eddy__rocks_close(db);
    eddy__rocks_env_destroy(renv);
}

typedef enum { END_CLOSE, END_CHECKPOINT, END_CRASH } write_end_t;

/* Write job->keys distinct keys through the full path. END_CLOSE: no
 * checkpoint at all, plain close. END_CHECKPOINT: the last finish forces a
 * checkpoint (clean shutdown). END_CRASH: a checkpoint of the empty task
 * first, then every key committed after it, then SIGKILL (the result is
 * sent before). */
static void write_task(const job_t *job, result_t *r, write_end_t end, int fd) {
    char errstr[1024];
    eddy_state_env_t *env = env_new(job, errstr, sizeof(errstr));
    eddy_tstate_t *ts = env ? task_open(env, errstr, sizeof(errstr)) : NULL;
    if (!ts) {
        snprintf(r->err, sizeof(r->err), "%s", errstr);
        eddy__state_env_destroy(env);
        return;
    }
    eddy_store_t *st = eddy__tstate_store(ts, 0);
    uint64_t id = eddy__state_env_committed(env);
    eddy_err_t e = EDDY_OK;
    if (end == END_CRASH)
        e = commit(env, ts, ++id, true, errstr, sizeof(errstr));
    char k[KEY_BYTES], v[VAL_BYTES];
    double c0 = cpu_now(), t0 = cpu_thread_now(), w0 = now_s();
    for (uint64_t i = 0; i < job->keys && !e; i++) {
        make_key(job, i, k);
        make_val(i, v);
        e = eddy__store_put(st, k, KEY_BYTES, v, VAL_BYTES);
        if (!e && ((i + 1) % COMMIT_EVERY == 0 || i + 1 == job->keys))
            e = commit(env, ts, ++id, end == END_CHECKPOINT && i + 1 == job->keys, errstr,
                       sizeof(errstr));
    }
    r->cpu = cpu_now() - c0;
    r->cpu_main = cpu_thread_now() - t0;
    r->wall = now_s() - w0;
    r->n = job->keys;
    r->rocks_usage = eddy__state_env_usage(env);
    r->rss = maxrss_bytes();
    if (e) {
        snprintf(r->err, sizeof(r->err), "%s", errstr[0] ? errstr : eddy_err2str(e));
    } else {
        r->ok = 1;
    }
    if (end == END_CRASH && r->ok) {
        if (write(fd, r, sizeof(*r)) != (ssize_t)sizeof(*r))
            _exit(3);
        raise(SIGKILL);
    }
    eddy__tstate_close(ts);
    eddy__state_env_destroy(env);
}

static int child_fd = -1;

static void job_write_close(const job_t *job, result_t *r) {
    write_task(job, r, END_CLOSE, child_fd);
}
static void job_write_checkpoint(const job_t *job, result_t *r) {
    write_task(job, r, END_CHECKPOINT, child_fd);
}
static void job_write_crash(const job_t *job, result_t *r) {
    write_task(job, r, END_CRASH, child_fd);
}

/* Open (and restore) the task: env + open, as an engine start does. */
static void job_open(const job_t *job, result_t *r) {
    char errstr[1024];
    double c0 = cpu_now(), t0 = cpu_thread_now(), w0 = now_s();
    eddy_state_env_t *env = env_new(job, errstr, sizeof(errstr));
    eddy_tstate_t *ts = env ? task_open(env, errstr, sizeof(errstr)) : NULL;
    r->cpu = cpu_now() - c0;
    r->cpu_main = cpu_thread_now() - t0;
    r->wall = now_s() - w0;
    if (!ts) {
        snprintf(r->err, sizeof(r->err), "%s", errstr);
        eddy__state_env_destroy(env);
        return;
    }
    eddy__tstate_restore_stats(ts, &r->n, &r->replay_s);
    r->rocks_usage = eddy__state_env_usage(env);
    r->rss = maxrss_bytes();
    r->ok = 1;
    eddy__tstate_close(ts);
    eddy__state_env_destroy(env);
}

static void job_nothing(const job_t *job, result_t *r) {
    r->rss = maxrss_bytes();
    r->ok = 1;
}

/* Run fn in a forked child; expect_kill: the child ends by SIGKILL. */
static int run_child(job_fn fn, const job_t *job, bool expect_kill, result_t *r) {
    int fds[2];
    if (pipe(fds))
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        result_t cr;
        memset(&cr, 0, sizeof(cr));
        child_fd = fds[1];
        fn(job, &cr);
        if (!cr.rss)
            cr.rss = maxrss_bytes();
        if (write(fds[1], &cr, sizeof(cr)) != (ssize_t)sizeof(cr))
            _exit(3);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], r, sizeof(*r));
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (n != (ssize_t)sizeof(*r)) {
        memset(r, 0, sizeof(*r));
        snprintf(r->err, sizeof(r->err), "child died (status %d)", status);
        return -1;
    }
    if (r->ok && expect_kill && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
        snprintf(r->err, sizeof(r->err), "writer was not killed (status %d)", status);
        r->ok = 0;
    }
    return r->ok ? 0 : -1;
}

/* --------------------------------------------------------------- report */

static const char *pass(bool ok) {
    return ok ? "PASS" : "MISS";
}

static void die_on(const char *what, int rc, const result_t *r) {
    if (!rc)
        return;
    fprintf(stderr, "bench/state: %s failed: %s\n", what, r->err);
    exit(1);
}

static double per(double n, double s) {
    return s > 0 ? n / s : 0;
}

int main(int argc, char **argv) {
    uint64_t rss_keys = 10000000ULL, base_keys = 1000000ULL;
    int64_t budget = (int64_t)256 << 20;
    int sequential = 0, skip_rss = 0;
    const char *results = "bench/results", *tmp = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--keys") && i + 1 < argc)
            rss_keys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--base-keys") && i + 1 < argc)
            base_keys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
            if (eddy__parse_bytes(argv[++i], &budget)) {
                fprintf(stderr, "bench/state: --budget %s: not a size (e.g. 268435456, 256MiB)\n",
                        argv[i]);
                return 2;
            }
        } else if (!strcmp(argv[i], "--order") && i + 1 < argc) {
            const char *o = argv[++i];
            if (!strcmp(o, "sequential"))
                sequential = 1;
            else if (strcmp(o, "random")) {
                fprintf(stderr, "bench/state: --order %s: random or sequential\n", o);
                return 2;
            }
        } else if (!strcmp(argv[i], "--no-rss"))
            skip_rss = 1;
        else if (!strcmp(argv[i], "--results-dir") && i + 1 < argc)
            results = argv[++i];
        else if (!strcmp(argv[i], "--tmp") && i + 1 < argc)
            tmp = argv[++i];
        else {
            fprintf(
                stderr,
                "usage: bench/state [--keys N] [--budget BYTES] [--base-keys N]\n"
                "                   [--order random|sequential] [--no-rss] [--tmp DIR]\n"
                "  --keys N       keys of the peak-RSS run (default 10000000)\n"
                "  --budget B     state.memory.max.bytes: bytes or 256MiB, 1GB (default 256 MiB)\n"
                "  --base-keys N  keys of the rate and restart runs (default 1000000)\n");
            return 2;
        }
    }
    if (rss_keys < 1 || base_keys < 1 || budget < EDDY_ROCKS_MIN_BUDGET_BYTES) {
        fprintf(stderr, "bench/state: --keys and --base-keys must be >= 1, --budget >= %lld\n",
                (long long)EDDY_ROCKS_MIN_BUDGET_BYTES);
        return 2;
    }
    double load0 = loadavg1();
    char root[4096];
    snprintf(root, sizeof(root), "%s/eddy-state-bench-XXXXXX", tmp);
    if (!mkdtemp(root)) {
        fprintf(stderr, "bench/state: mkdtemp %s: %s\n", root, strerror(errno));
        return 1;
    }
    char d_raw[4200], d_upd[4200], d_clean[4200], d_crash[4200], d_rss[4200], p[4300];
    snprintf(d_raw, sizeof(d_raw), "%s/raw", root);
    snprintf(d_upd, sizeof(d_upd), "%s/update", root);
    snprintf(d_clean, sizeof(d_clean), "%s/clean", root);
    snprintf(d_crash, sizeof(d_crash), "%s/crash", root);
    snprintf(d_rss, sizeof(d_rss), "%s/rss", root);
    mkdir(d_raw, 0755);
    job_t jb = {.keys = base_keys, .budget = budget, .sequential = sequential};
    const char *order = sequential ? "sequential" : "random";

    printf("eddy state benchmark: %llu keys (%s order), 16-byte keys and values, budget %lld "
           "MiB, commits every %d updates, state in %s\n",
           (unsigned long long)base_keys, order, (long long)(budget >> 20), COMMIT_EVERY, root);
    result_t r_base, r_raw, r_upd, r_rest, r_cw, r_clean, r_kw, r_crash, r_rss;
    memset(&r_rss, 0, sizeof(r_rss));
    int rc;

    rc = run_child(job_nothing, &jb, false, &r_base);
    die_on("baseline", rc, &r_base);

    jb.dir = d_raw;
    rc = run_child(job_raw, &jb, false, &r_raw);
    die_on("raw puts", rc, &r_raw);
    rm_rf(d_raw);
    double raw_rate = per((double)r_raw.n, r_raw.cpu);
    printf("  raw RocksDB puts      %10.0f /cpu-s  (%.3f cpu-s, %.3f wall-s, WAL bytes %lld)\n",
           raw_rate, r_raw.cpu, r_raw.wall, r_raw.wal_bytes);

    jb.dir = d_upd;
    rc = run_child(job_write_close, &jb, false, &r_upd);
    die_on("updates", rc, &r_upd);
    double upd_rate = per((double)r_upd.n, r_upd.cpu);
    printf("  store updates         %10.0f /cpu-s  (%.3f cpu-s, %.3f wall-s)\n", upd_rate,
           r_upd.cpu, r_upd.wall);

    /* Full replay: no live store, no checkpoint. */
    snprintf(p, sizeof(p), "%s/bench/task-0/db", d_upd);
    rm_rf(p);
    snprintf(p, sizeof(p), "%s/bench/task-0/checkpoint", d_upd);
    unlink(p);
    rc = run_child(job_open, &jb, false, &r_rest);
    die_on("restore", rc, &r_rest);
    if (r_rest.n != base_keys) {
        fprintf(stderr, "bench/state: restore replayed %llu records, expected %llu\n",
                (unsigned long long)r_rest.n, (unsigned long long)base_keys);
        return 1;
    }
    rm_rf(d_upd);
    double rest_rate = per((double)r_rest.n, r_rest.cpu);
    printf("  restore (full replay) %10.0f /cpu-s  (%llu records, %.3f cpu-s, %.3f wall-s)\n",
           rest_rate, (unsigned long long)r_rest.n, r_rest.cpu, r_rest.wall);

    jb.dir = d_clean;
    rc = run_child(job_write_checkpoint, &jb, false, &r_cw);
    die_on("clean writer", rc, &r_cw);
    rc = run_child(job_open, &jb, false, &r_clean);
    die_on("restart after clean shutdown", rc, &r_clean);
    rm_rf(d_clean);
    printf("  restart, clean        %10.3f s       (%llu records replayed)\n", r_clean.wall,
           (unsigned long long)r_clean.n);

    jb.dir = d_crash;
    rc = run_child(job_write_crash, &jb, true, &r_kw);
    die_on("crashing writer", rc, &r_kw);
    rc = run_child(job_open, &jb, false, &r_crash);
    die_on("restart after crash", rc, &r_crash);
    rm_rf(d_crash);
    printf("  restart, after kill   %10.3f s       (%llu records replayed, %.3f cpu-s, %.3f of "
           "them the opening thread's)\n",
           r_crash.wall, (unsigned long long)r_crash.n, r_crash.cpu, r_crash.cpu_main);

    if (!skip_rss) {
        job_t jr = jb;
        jr.dir = d_rss;
        jr.keys = rss_keys;
        rc = run_child(job_write_close, &jr, false, &r_rss);
        die_on("peak-RSS writer", rc, &r_rss);
        rm_rf(d_rss);
        printf("  %llu keys at budget %lld MiB: peak RSS %.1f MiB (%.2fx budget), "
               "%.0f updates/cpu-s\n",
               (unsigned long long)rss_keys, (long long)(budget >> 20),
               (double)r_rss.rss / 1048576.0, (double)r_rss.rss / (double)budget,
               per((double)r_rss.n, r_rss.cpu));
    }
    rm_rf(root);

    double upd_ratio = raw_rate > 0 ? upd_rate / raw_rate : 0;
    double rest_ratio = raw_rate > 0 ? rest_rate / raw_rate : 0;
    double rss_ratio = (double)r_rss.rss / (double)budget;
    bool ok_upd = upd_ratio >= TARGET_UPDATE_RATIO, ok_rest = rest_ratio >= TARGET_RESTORE_RATIO,
         ok_clean = r_clean.wall < TARGET_RESTART_S, ok_crash = r_crash.wall < TARGET_RESTART_S,
         ok_rss = !skip_rss && rss_ratio < TARGET_RSS_OVER_BUDGET;

    printf("\n%-44s %14s %14s %s\n", "figure", "value", "target", "");
    printf("%-44s %14.3f %14s %s\n", "update_ratio_to_raw_put", upd_ratio, ">= 0.8", pass(ok_upd));
    printf("%-44s %14.3f %14s %s\n", "restore_ratio_to_raw_put", rest_ratio, ">= 0.7",
           pass(ok_rest));
    printf("%-44s %14.3f %14s %s\n", "restart_seconds (clean)", r_clean.wall, "< 2",
           pass(ok_clean));
    printf("%-44s %14.3f %14s %s\n", "restart_seconds (after SIGKILL)", r_crash.wall, "< 2",
           pass(ok_crash));
    if (!skip_rss)
        printf("%-44s %13.1fM %13.1fM %s\n", "peak_rss (budget + 20%)",
               (double)r_rss.rss / 1048576.0, (double)budget * 1.2 / 1048576.0, pass(ok_rss));

    /* state.json */
    snprintf(p, sizeof(p), "%s/state.json", results);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "bench/state: cannot write %s: %s\n", p, strerror(errno));
        return 1;
    }
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    fprintf(f,
            "{\n  \"benchmark\": \"state\",\n  \"date\": \"%s\",\n  \"machine_cores\": %ld,\n"
            "  \"eddy_version\": \"%s\",\n  \"rocksdb_compression\": \"%s\",\n"
            "  \"keys\": %llu,\n  \"key_order\": \"%s\",\n"
            "  \"key_bytes\": %d,\n  \"value_bytes\": %d,\n  \"raw_batch_puts\": %d,\n"
            "  \"commit_every_updates\": %d,\n  \"memory_budget_bytes\": %lld,\n"
            "  \"cpu_seconds_are\": \"user+sys of the whole process, RocksDB background "
            "threads included\",\n",
            date, ncpu, eddy_version(), r_raw.compression, (unsigned long long)base_keys,
            sequential ? "sequential (big-endian counter)"
                       : "random (big-endian i * 0x9E3779B97F4A7C15, then i)",
            KEY_BYTES, VAL_BYTES, RAW_BATCH, COMMIT_EVERY, (long long)budget);
    fprintf(f,
            "  \"raw_puts_per_cpu_second\": %.1f,\n  \"raw_cpu_seconds\": %.4f,\n"
            "  \"raw_wall_seconds\": %.4f,\n  \"raw_main_thread_cpu_seconds\": %.4f,\n"
            "  \"raw_wal_bytes\": %lld,\n"
            "  \"updates_per_cpu_second\": %.1f,\n  \"update_cpu_seconds\": %.4f,\n"
            "  \"update_wall_seconds\": %.4f,\n  \"update_main_thread_cpu_seconds\": %.4f,\n"
            "  \"updates_per_wall_second\": %.1f,\n"
            "  \"update_ratio_to_raw_put\": %.4f,\n",
            raw_rate, r_raw.cpu, r_raw.wall, r_raw.cpu_main, r_raw.wal_bytes, upd_rate, r_upd.cpu,
            r_upd.wall, r_upd.cpu_main, per((double)r_upd.n, r_upd.wall), upd_ratio);
    fprintf(f,
            "  \"restore_records\": %llu,\n  \"restore_records_per_second\": %.1f,\n"
            "  \"restore_records_per_second_is\": \"per CPU-second of eddy__state_env_new + "
            "eddy__tstate_open (full replay into an empty store)\",\n"
            "  \"restore_cpu_seconds\": %.4f,\n  \"restore_wall_seconds\": %.4f,\n"
            "  \"restore_main_thread_cpu_seconds\": %.4f,\n"
            "  \"restore_records_per_wall_second\": %.1f,\n"
            "  \"restore_ratio_to_raw_put\": %.4f,\n",
            (unsigned long long)r_rest.n, rest_rate, r_rest.cpu, r_rest.wall, r_rest.cpu_main,
            per((double)r_rest.n, r_rest.wall), rest_ratio);
    fprintf(f,
            "  \"restart_seconds_1m_keys\": %.4f,\n  \"restart_cpu_seconds_1m_keys\": %.4f,\n"
            "  \"restart_records_replayed\": %llu,\n"
            "  \"restart_seconds_1m_keys_after_crash\": %.4f,\n"
            "  \"restart_cpu_seconds_1m_keys_after_crash\": %.4f,\n"
            "  \"restart_main_thread_cpu_seconds_1m_keys_after_crash\": %.4f,\n"
            "  \"restart_after_crash_records_replayed\": %llu,\n"
            "  \"restart_seconds_are\": \"wall time of eddy__state_env_new + eddy__tstate_open "
            "in a fresh process\",\n",
            r_clean.wall, r_clean.cpu, (unsigned long long)r_clean.n, r_crash.wall, r_crash.cpu,
            r_crash.cpu_main, (unsigned long long)r_crash.n);
    if (!skip_rss)
        fprintf(f,
                "  \"peak_rss_keys\": %llu,\n  \"peak_rss_bytes_10m_keys\": %lld,\n"
                "  \"peak_rss_ratio_to_budget\": %.4f,\n"
                "  \"peak_rss_updates_per_cpu_second\": %.1f,\n"
                "  \"peak_rss_run_cpu_seconds\": %.4f,\n  \"peak_rss_run_wall_seconds\": %.4f,\n"
                "  \"peak_rss_run_rocksdb_usage_bytes_at_end\": %lld,\n",
                (unsigned long long)rss_keys, r_rss.rss, rss_ratio, per((double)r_rss.n, r_rss.cpu),
                r_rss.cpu, r_rss.wall, r_rss.rocks_usage);
    fprintf(f, "  \"baseline_rss_bytes\": %lld,\n", r_base.rss);
    fprintf(f, "  \"load_average_1m_at_start\": %.2f,\n  \"load_average_1m_at_end\": %.2f,\n",
            load0, loadavg1());
    fprintf(f,
            "  \"targets\": {\"update_ratio_to_raw_put\": %.1f, \"restore_ratio_to_raw_put\": "
            "%.1f, \"restart_seconds\": %.1f, \"peak_rss_over_budget\": %.1f},\n"
            "  \"pass\": {\"update_ratio_to_raw_put\": %s, \"restore_ratio_to_raw_put\": %s, "
            "\"restart_seconds_1m_keys\": %s, \"restart_seconds_1m_keys_after_crash\": %s, "
            "\"peak_rss_bytes_10m_keys\": %s}\n}\n",
            TARGET_UPDATE_RATIO, TARGET_RESTORE_RATIO, TARGET_RESTART_S, TARGET_RSS_OVER_BUDGET,
            ok_upd ? "true" : "false", ok_rest ? "true" : "false", ok_clean ? "true" : "false",
            ok_crash ? "true" : "false",
            skip_rss ? "null"
            : ok_rss ? "true"
                     : "false");
    fclose(f);

    /* state.md */
    snprintf(p, sizeof(p), "%s/state.md", results);
    f = fopen(p, "w");
    if (f) {
        fprintf(f,
                "State benchmark, %s, %ld cores. %llu distinct 16-byte keys in %s order, "
                "16-byte values, budget %lld MiB, commits every %d updates; rates per "
                "CPU-second (user+sys, RocksDB threads included).\n\n"
                "| figure | value | target | |\n|---|---:|---:|---|\n",
                date, ncpu, (unsigned long long)base_keys, order, (long long)(budget >> 20),
                COMMIT_EVERY);
        fprintf(f, "| raw RocksDB puts (batches of %d, %s) | %.0f /CPU-s | | |\n", RAW_BATCH,
                r_raw.wal_bytes ? "WAL ON: check state/rocks.c" : "no WAL written", raw_rate);
        fprintf(f, "| store updates (cache + changelog + commit) | %.0f /CPU-s | | |\n", upd_rate);
        fprintf(f, "| update ratio to raw put | %.2f | >= 0.8 | %s |\n", upd_ratio, pass(ok_upd));
        fprintf(f, "| restore, full replay | %.0f records/CPU-s | | |\n", rest_rate);
        fprintf(f, "| restore ratio to raw put | %.2f | >= 0.7 | %s |\n", rest_ratio,
                pass(ok_rest));
        fprintf(f, "| restart, %llu keys, clean shutdown | %.3f s | < 2 s | %s |\n",
                (unsigned long long)base_keys, r_clean.wall, pass(ok_clean));
        fprintf(f,
                "| restart, %llu keys, after SIGKILL (%llu records replayed) | %.3f s | < 2 s "
                "| %s |\n",
                (unsigned long long)base_keys, (unsigned long long)r_crash.n, r_crash.wall,
                pass(ok_crash));
        if (!skip_rss)
            fprintf(f,
                    "| peak RSS, %llu keys | %.0f MiB | < %.0f MiB (budget %lld MiB + 20%%) "
                    "| %s |\n",
                    (unsigned long long)rss_keys, (double)r_rss.rss / 1048576.0,
                    (double)budget * 1.2 / 1048576.0, (long long)(budget >> 20), pass(ok_rss));
        fclose(f);
    }
    printf("wrote %s/state.json and %s/state.md\n", results, results);
    return 0;
}
