/*
 * Task state: restore, two-phase commit, checkpoints.
 *
 * Layout under <state.dir>/<application>/:
 *   COMMITTED             the last commit id every task acknowledged
 *   task-<n>/db           live RocksDB (written without WAL)
 *   task-<n>/changelog/   local changelog segments
 *   task-<n>/checkpoint   {commit id, changelog offset, snapshot id}, CRC
 *   task-<n>/snap-<id>    RocksDB checkpoints (hard links), two kept
 *
 * Invariants that make restore exact:
 *  1. RocksDB only ever receives a commit's batch after that commit was
 *     acknowledged (COMMITTED written), so the live store never holds more
 *     than the acknowledged state.
 *  2. Changelog records hold absolute values (put/delete, not deltas), so
 *     replaying from any offset at or before the store's state converges to
 *     the state at the replay's end.
 *  3. Each commit's group carries the source positions it reflects, and the
 *     positions are in the same RocksDB batch as the state: a replay sets
 *     state and positions together, so no input is applied twice.
 * Restore: live store (or, if it cannot be opened, the snapshot named by
 * the checkpoint) + replay of the changelog from the checkpoint's offset up
 * to COMMITTED; groups after COMMITTED (prepared, never acknowledged) are
 * truncated. A corrupt checkpoint file is never trusted: with the changelog
 * complete from offset 0 the task replays it all into an empty store; with
 * a live store it replays the retained changelog over it (invariant 2);
 * otherwise it refuses to start rather than reset state.
 *
 * With a remote changelog (state.changelog: kafka; docs/state.md) each
 * commit also goes to the Kafka topics in the prepare phase, after the
 * local group is durable, and RocksDB keeps, with the positions, the mark
 * saying how far the topics match the state. A task that opens with no
 * task directory, or whose local restore fails, is rebuilt from the
 * topics instead (the unusable directory is moved aside to lost-task-<n>
 * until the rebuild succeeded); either way the topics are brought in line
 * with the restored state (resync) before the first commit. A lock file
 * per task keeps a second process from moving a directory in use aside.
 */
#include "tstate.h"

#include "changelog.h"
#include "checkpoint.h"
#include "rocks.h"
#include "store_int.h"
#include "engine/fault.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define POS_CF "__positions"
#define POS_KEY "p"
#define MARK_KEY "k" /* the remote changelog's mark, with the positions */

struct eddy_state_env_s {
    char *dir;
    int dir_lock; /* .engine.lock, held (flock) for the env's life; -1 none */
    eddy_rocks_env_t *renv;
    uint64_t committed;
    uint64_t committed_initial; /* at env creation: what every task took part in */
    bool have_marker;   /* COMMITTED exists */
    int64_t budget;
    int64_t checkpoint_interval_ms;
    int64_t checkpoint_max_bytes;
    int64_t segment_bytes;
    size_t cache_per_store;
    eddy_cl_remote_t *remote; /* borrowed; NULL: local changelog only */
    uint64_t writer_id;       /* WRITER: who wrote this directory's remote commits */
    /* roll-forward (conf roll_forward): per task the commit it rolled
     * forward to at its first open (0: none; a reopen after an in-process
     * recovery keeps it), and the highest of them */
    bool roll_forward;
    uint64_t *rolled; /* [nrolled] */
    int nrolled;
    _Atomic uint64_t rolled_max;
    /* tasks this env has opened (a task is opened again after a consumer
     * group took it away and gave it back): bit n of opened[n / 64] */
    uint64_t *opened;
    int nopened_words;
    /* standby replicas (docs/scaleout.md): warm copies of the tasks not
     * open here, in standby-<n>/db, kept by sb_thread; sb_mu guards owned
     * and sb, except sb[sb_busy], which the thread is bringing up to date
     * outside it (a catch-up reads from Kafka: whoever needs that copy
     * waits on sb_cond, nobody else waits for it) */
    int standby;
    pthread_mutex_t sb_mu;
    pthread_cond_t sb_cond;
    int sb_busy; /* -1: none */
    pthread_t sb_thread;
    bool sb_started;
    atomic_bool sb_stop;
    atomic_bool *owned;         /* [ntasks]: the task is open here */
    _Atomic int64_t sb_last_open_ns; /* the last task open began or ended; 0: none yet */
    int64_t sb_start_ns;
    struct eddy_tstate_s **sb;  /* [ntasks]: open standby copies */
    int sb_tasks;
    eddy_standby_choice_t sb_choice; /* which copies to keep; NULL: every task (sb_mu) */
    void *sb_choice_op;
    bool sb_choice_gone;        /* set, then cleared: keep what there is */
    int64_t *sb_unchosen_ns;    /* [ntasks]: since when not chosen; 0: chosen */
    /* remote changelog handles of the tasks being restored, for queries
     * (eddy__state_restore_progress); guarded by prog_mu */
    pthread_mutex_t prog_mu;
    eddy_changelog_t **restoring;
    int nrestoring;
};

struct eddy_tstate_s {
    eddy_state_env_t *env;
    int task;
    char *dir;
    eddy_rocks_t *db;
    eddy_changelog_t *cl;
    eddy_store_t *stores;
    int nstores;
    int cf_pos;
    eddy_rocks_batch_t *batch;
    eddy_buf_t positions;
    bool have_positions;
    eddy_ckpt_t ckpt;
    bool have_ckpt;
    uint64_t prev_ckpt_offset;
    uint64_t last_commit_id, last_offset;
    int64_t last_ckpt_ns;
    size_t prepared_updates; /* store updates of the last prepare */
    uint64_t restored;
    int64_t caught_up_ns;  /* a standby copy: its last catch-up ended */
    double restore_s;
    bool closed_marker;  /* CLOSED exists: delete after the next commit */
    uint64_t closed_c;   /* the commit CLOSED names */
    bool closed_pending; /* CLOSED also names the commit prepared since: */
    uint64_t closed_p;   /* that one */
    bool rolled_marker;  /* ROLLED exists: likewise */
    eddy_changelog_t *rcl; /* the remote changelog, or NULL */
    int lockfd;            /* remote mode: the task's lock file, else -1 */
};

/* CLOSED: "this task was closed cleanly at commit N" (a consumer group
 * moved its partition away, or the engine stopped), or "closed by an
 * in-process recovery; N is the last acknowledged commit it holds"
 * (eddy__tstate_mark_aborted). Rounds acknowledged while the task was
 * closed have no groups in its changelog; without the marker that gap
 * would look like lost state, and a group after N is never replayed.
 * ROLLED: "this task rolled forward to commit N" (docs/kafka.md "Rolling
 * forward"): written before the group reaches RocksDB, so an open after a
 * second death replays at least up to it. Both go at the task's next
 * finish (a later commit acknowledged). Between that commit's prepare and
 * the finish CLOSED reads "N P": P is the commit prepared (its group is in
 * the changelog), which counts once COMMITTED reaches it, so that a death
 * after the acknowledgement and before this task's finish does not
 * truncate an acknowledged group (mark_unopened_tasks settles it at the
 * next start; an in-process recovery puts back "N"). */
static int sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes dir/name = commit (and pending, unless 0), durably. */
static eddy_err_t write_commit_file2(const char *dir, const char *name, uint64_t commit,
                                     uint64_t pending, char *errstr, size_t errstr_size) {
    char *path = eddy_asprintf("%s/%s", dir, name);
    char *tmp = eddy_asprintf("%s.tmp", path);
    eddy_err_t e = EDDY_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char text[64];
    int n = pending ? snprintf(text, sizeof(text), "%llu %llu\n", (unsigned long long)commit,
                               (unsigned long long)pending)
                    : snprintf(text, sizeof(text), "%llu\n", (unsigned long long)commit);
    if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) || close(fd) ||
        rename(tmp, path) || sync_dir(dir)) {
        eddy__seterr(errstr, errstr_size, "state: %s: %s", path, strerror(errno));
        e = EDDY_ERR_IO;
    }
    eddy_free(tmp);
    eddy_free(path);
    return e;
}

static eddy_err_t write_commit_file(const char *dir, const char *name, uint64_t commit,
                                    char *errstr, size_t errstr_size) {
    return write_commit_file2(dir, name, commit, 0, errstr, errstr_size);
}

static eddy_err_t write_closed(const char *dir, uint64_t commit, char *errstr,
                               size_t errstr_size) {
    return write_commit_file(dir, "CLOSED", commit, errstr, errstr_size);
}

/* The commit in dir/name, or 0 (no file); *pending the second one, if
 * any (CLOSED "N P"), else 0. */
static uint64_t read_commit_file2(const char *dir, const char *name, uint64_t *pending) {
    char *path = eddy_asprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    eddy_free(path);
    unsigned long long v = 0, p = 0;
    if (f) {
        int n = fscanf(f, "%llu %llu", &v, &p);
        if (n < 1)
            v = 0;
        if (n < 2)
            p = 0;
        fclose(f);
    }
    if (pending)
        *pending = p;
    return v;
}

static uint64_t read_commit_file(const char *dir, const char *name) {
    return read_commit_file2(dir, name, NULL);
}

/* Removes dir/name durably; true when it is gone. */
static bool remove_commit_file(const char *dir, const char *name) {
    char *path = eddy_asprintf("%s/%s", dir, name);
    bool gone = !unlink(path) || errno == ENOENT;
    sync_dir(dir);
    eddy_free(path);
    return gone;
}

eddy_err_t eddy__tstate_mark_closed(eddy_tstate_t *ts, char *errstr, size_t errstr_size) {
    return write_closed(ts->dir, ts->last_commit_id, errstr, errstr_size);
}

static uint64_t env_rolled(const eddy_state_env_t *env, int task);

eddy_err_t eddy__tstate_mark_aborted(eddy_tstate_t *ts, char *errstr, size_t errstr_size) {
    if (ts->closed_marker) { /* no commit finished since it opened: its CLOSED says */
        if (!ts->closed_pending)
            return EDDY_OK;
        ts->closed_pending = false; /* settled: acknowledged or not */
        return write_closed(ts->dir,
                            ts->closed_p <= ts->env->committed ? ts->closed_p : ts->closed_c,
                            errstr, errstr_size);
    }
    /* it took part in every round since it opened, so it holds a group of
     * the last acknowledged one; a commit it rolled forward to stays */
    uint64_t c = ts->last_commit_id < ts->env->committed ? ts->last_commit_id
                                                         : ts->env->committed;
    if (c < env_rolled(ts->env, ts->task))
        c = env_rolled(ts->env, ts->task);
    return write_closed(ts->dir, c, errstr, errstr_size);
}

static void env_set_rolled(eddy_state_env_t *env, int task, uint64_t commit);

eddy_err_t eddy__tstate_mark_rolled(eddy_tstate_t *ts, uint64_t commit, char *errstr,
                                    size_t errstr_size) {
    if (!ts->env->roll_forward || !ts->rcl || ts->last_commit_id != commit ||
        commit <= ts->env->committed)
        return EDDY_OK;
    /* the reopen replays up to it (open_local), and so does every open
     * after a death until the task's next finish */
    eddy_err_t e = write_commit_file(ts->dir, "ROLLED", commit, errstr, errstr_size);
    if (e)
        return e;
    ts->rolled_marker = true;
    env_set_rolled(ts->env, ts->task, commit);
    return EDDY_OK;
}

/* At start, before this process acknowledges a round: every task directory
 * without CLOSED gets CLOSED = the acknowledged commit it holds now. A task
 * that opens later (a consumer group assigns partitions some time after
 * start) has no group in the rounds acknowledged meanwhile; if this process
 * dies before the task commits, the next one would otherwise take those
 * rounds for lost state, or replay a group of an older process that was
 * prepared under one of their numbers but never acknowledged. */
static eddy_err_t mark_unopened_tasks(const char *dir, uint64_t committed, char *errstr,
                                      size_t errstr_size) {
    DIR *d = opendir(dir);
    if (!d)
        return EDDY_OK;
    eddy_err_t e = EDDY_OK;
    struct dirent *de;
    while (!e && (de = readdir(d))) {
        const char *n = de->d_name;
        if (strncmp(n, "task-", 5) || !n[5] || strspn(n + 5, "0123456789") != strlen(n + 5))
            continue;
        char *tdir = eddy_asprintf("%s/%s", dir, n), *closed = eddy_asprintf("%s/CLOSED", tdir);
        uint64_t pending = 0, c = read_commit_file2(tdir, "CLOSED", &pending);
        if (access(closed, F_OK) != 0)
            e = write_closed(tdir, committed, errstr, errstr_size);
        else if (pending) /* the commit prepared after it counts if acknowledged */
            e = write_closed(tdir, pending <= committed ? pending : c, errstr, errstr_size);
        eddy_free(closed);
        eddy_free(tdir);
    }
    closedir(d);
    return e;
}

/* The commit a task was closed at, or 0. */
static uint64_t read_closed(const eddy_tstate_t *ts) { return read_commit_file(ts->dir, "CLOSED"); }

static int mkdir_p(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

static void remove_tree(const char *path);
static void tstate_free(eddy_tstate_t *ts);
static void sb_start(eddy_state_env_t *env, int replicas);
static void sb_stop(eddy_state_env_t *env);

/* ------------------------------------------------- remote mode: helpers */

/* WRITER names this directory in its remote commit markers. A new one
 * whenever COMMITTED starts over: commit ids start over with it, and an
 * old marker must not pass for a new one. */
static eddy_err_t writer_id(eddy_state_env_t *env, bool fresh, char *errstr,
                            size_t errstr_size) {
    char *path = eddy_asprintf("%s/WRITER", env->dir);
    char *tmp = eddy_asprintf("%s.tmp", path);
    eddy_err_t e = EDDY_OK;
    unsigned long long v = 0;
    FILE *f = fresh ? NULL : fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llx", &v) != 1)
            v = 0;
        fclose(f);
    }
    if (!v) {
        v = eddy__random_id();
        char text[32];
        int n = snprintf(text, sizeof(text), "%016llx\n", v);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) || close(fd) ||
            rename(tmp, path) || sync_dir(env->dir)) {
            eddy__seterr(errstr, errstr_size, "state: %s: %s", path, strerror(errno));
            e = EDDY_ERR_IO;
        }
    }
    env->writer_id = v;
    eddy_free(tmp);
    eddy_free(path);
    return e;
}

/* Move task-<n> aside to lost-task-<n> (replacing an older one): its state
 * is not trusted and will be rebuilt from the remote changelog, but stays
 * at hand until that succeeded. */
static eddy_err_t set_aside(const char *envdir, const char *name, char *errstr,
                            size_t errstr_size) {
    char *from = eddy_asprintf("%s/%s", envdir, name);
    char *to = eddy_asprintf("%s/lost-%s", envdir, name);
    remove_tree(to);
    eddy_err_t e = EDDY_OK;
    if (rename(from, to) || sync_dir(envdir)) {
        eddy__seterr(errstr, errstr_size, "state: cannot move %s aside to %s: %s", from, to,
                     strerror(errno));
        e = EDDY_ERR_IO;
    } else {
        fprintf(stderr, "eddy: state: %s moved aside to %s\n", from, to);
    }
    eddy_free(from);
    eddy_free(to);
    return e;
}

/* COMMITTED is lost or unreadable: no task state can be trusted, and all
 * of it can be rebuilt from the remote changelog. */
static eddy_err_t set_all_tasks_aside(eddy_state_env_t *env, char *errstr, size_t errstr_size) {
    DIR *d = opendir(env->dir);
    if (!d) {
        eddy__seterr(errstr, errstr_size, "state: %s: %s", env->dir, strerror(errno));
        return EDDY_ERR_IO;
    }
    eddy_err_t e = EDDY_OK;
    struct dirent *de;
    while (!e && (de = readdir(d)))
        if (!strncmp(de->d_name, "task-", 5))
            e = set_aside(env->dir, de->d_name, errstr, errstr_size);
    closedir(d);
    return e;
}

/* ----------------------------------------------------------------- env */

eddy_state_env_t *eddy__state_env_new(const eddy_state_conf_t *conf, char *errstr,
                                      size_t errstr_size) {
    eddy_state_env_t *env = eddy_calloc(1, sizeof(*env));
    env->dir_lock = -1;
    env->dir = eddy_asprintf("%s/%s", conf->dir, conf->application);
    env->budget = conf->memory_bytes;
    pthread_mutex_init(&env->sb_mu, NULL);
    pthread_cond_init(&env->sb_cond, NULL);
    env->sb_busy = -1;
    pthread_mutex_init(&env->prog_mu, NULL);
    env->roll_forward = conf->roll_forward && conf->remote;
    env->nrolled = conf->ntasks > 0 ? conf->ntasks : 0;
    env->rolled = eddy_calloc((size_t)env->nrolled + 1, sizeof(*env->rolled));
    env->nrestoring = conf->ntasks > 0 ? conf->ntasks : 0;
    env->restoring = eddy_calloc((size_t)env->nrestoring + 1, sizeof(*env->restoring));
    env->checkpoint_interval_ms = conf->checkpoint_interval_ms;
    env->segment_bytes = conf->segment_bytes > 0 ? conf->segment_bytes : 64 * 1024 * 1024;
    env->checkpoint_max_bytes =
        conf->checkpoint_max_bytes > 0 ? conf->checkpoint_max_bytes : 16 * 1024 * 1024;
    if (mkdir_p(env->dir)) {
        eddy__seterr(errstr, errstr_size, "state: cannot create state directory %s: %s",
                     env->dir, strerror(errno));
        eddy__state_env_destroy(env);
        return NULL;
    }
    /* Probe writability now: a clear error before anything starts. */
    char probe[4200];
    snprintf(probe, sizeof(probe), "%s/.probe", env->dir);
    int fd = open(probe, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) {
        eddy__seterr(errstr, errstr_size, "state: state directory %s is not writable: %s",
                     env->dir, strerror(errno));
        eddy__state_env_destroy(env);
        return NULL;
    }
    close(fd);
    unlink(probe);
    /* One engine a directory, across processes and within one: before
     * anything in it is read or written (the settling of CLOSED below, a
     * fence of its transactional ids, `eddy dump` beside a run whose
     * partitions were all revoked, which holds no task lock) */
    char lpath[4200];
    snprintf(lpath, sizeof(lpath), "%s/.engine.lock", env->dir);
    env->dir_lock = open(lpath, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (env->dir_lock < 0 || flock(env->dir_lock, LOCK_EX | LOCK_NB)) {
        eddy__seterr(errstr, errstr_size, "state: %s: %s", lpath,
                     env->dir_lock >= 0 && errno == EWOULDBLOCK
                         ? "state directory in use by another process or engine"
                         : strerror(errno));
        eddy__state_env_destroy(env);
        return NULL;
    }
    /* A quarter of the budget for write caches, the rest for RocksDB. */
    int64_t caches = conf->memory_bytes / 4;
    int nst = conf->nstores > 0 ? conf->nstores : 1;
    int nt = conf->ntasks > 0 ? conf->ntasks : 1;
    env->cache_per_store = (size_t)(caches / (nst * nt));
    if (env->cache_per_store < 64 * 1024)
        env->cache_per_store = 64 * 1024;
    env->renv = eddy__rocks_env_new(conf->memory_bytes - caches, nt, errstr, errstr_size);
    if (!env->renv) {
        eddy__state_env_destroy(env);
        return NULL;
    }
    /* the topics first: nothing is touched when the broker cannot be used */
    env->remote = conf->remote;
    if (env->remote && env->remote->setup(env->remote, errstr, errstr_size)) {
        eddy__state_env_destroy(env);
        return NULL;
    }
    bool fresh = false; /* COMMITTED written just now */
    char path[4200];
    snprintf(path, sizeof(path), "%s/COMMITTED", env->dir);
    eddy_ckpt_t c;
    char err[512];
    eddy_err_t rc = eddy__ckpt_read(path, &c, err, sizeof(err));
    if (rc == EDDY_OK) {
        env->committed = env->committed_initial = c.commit_id;
        env->have_marker = true;
        if (mark_unopened_tasks(env->dir, c.commit_id, errstr, errstr_size)) {
            eddy__state_env_destroy(env);
            return NULL;
        }
    } else if (rc == EDDY_ERR_NOENT) {
        /* COMMITTED is written when a state directory is first used, before
         * any task directory: task directories without it mean it was lost,
         * and restoring to "nothing committed" would discard state. */
        bool has_tasks = false;
        DIR *d = opendir(env->dir);
        struct dirent *de;
        while (d && (de = readdir(d)))
            if (!strncmp(de->d_name, "task-", 5))
                has_tasks = true;
        if (d)
            closedir(d);
        if (has_tasks && env->remote) {
            fprintf(stderr,
                    "eddy: state: %s/COMMITTED is missing: every task will be rebuilt from the "
                    "Kafka changelog\n",
                    env->dir);
            if (set_all_tasks_aside(env, errstr, errstr_size)) {
                eddy__state_env_destroy(env);
                return NULL;
            }
        } else if (has_tasks) {
            eddy__seterr(errstr, errstr_size,
                         "state: %s/COMMITTED is missing but task state exists there: refusing "
                         "to start rather than discard committed state (restore the file, or "
                         "remove %s to start empty)",
                         env->dir, env->dir);
            eddy__state_env_destroy(env);
            return NULL;
        }
        if (eddy__state_env_mark(env, 0, errstr, errstr_size)) {
            eddy__state_env_destroy(env);
            return NULL;
        }
        fresh = true;
    } else if (env->remote) {
        fprintf(stderr, "eddy: state: %s; every task will be rebuilt from the Kafka changelog\n",
                err);
        if (set_all_tasks_aside(env, errstr, errstr_size) ||
            eddy__state_env_mark(env, 0, errstr, errstr_size)) {
            eddy__state_env_destroy(env);
            return NULL;
        }
        fresh = true;
    } else {
        /* The acknowledged commit is what every task restores to: never
         * guess it. */
        eddy__seterr(errstr, errstr_size,
                     "state: %s; cannot tell which commit was acknowledged, refusing to start "
                     "(restore the file or remove %s to start empty)",
                     err, env->dir);
        eddy__state_env_destroy(env);
        return NULL;
    }
    if (env->remote && writer_id(env, fresh, errstr, errstr_size)) {
        eddy__state_env_destroy(env);
        return NULL;
    }
    if (env->remote && conf->standby_replicas > 0)
        sb_start(env, conf->standby_replicas);
    return env;
}

void eddy__state_env_destroy(eddy_state_env_t *env) {
    if (!env)
        return;
    sb_stop(env);
    pthread_mutex_destroy(&env->sb_mu);
    pthread_cond_destroy(&env->sb_cond);
    pthread_mutex_destroy(&env->prog_mu);
    eddy_free(env->restoring);
    eddy_free(env->rolled);
    eddy__rocks_env_destroy(env->renv);
    eddy_free(env->opened);
    eddy_free(env->dir);
    if (env->dir_lock >= 0)
        close(env->dir_lock); /* releases the flock */
    eddy_free(env);
}

uint64_t eddy__state_env_committed(const eddy_state_env_t *env) { return env->committed; }

uint64_t eddy__state_env_rolled(const eddy_state_env_t *env) {
    return atomic_load(&env->rolled_max);
}

void eddy__state_env_no_roll_forward(eddy_state_env_t *env) {
    env->roll_forward = false;
}

int eddy__state_env_txn_threads(const eddy_state_env_t *env) {
    uint64_t n = read_commit_file(env->dir, "TXN_THREADS");
    return n > 4096 ? 4096 : (int)n; /* a damaged file fences no absurd count */
}

eddy_err_t eddy__state_env_record_txn_threads(eddy_state_env_t *env, int n, char *errstr,
                                              size_t errstr_size) {
    if (n <= eddy__state_env_txn_threads(env))
        return EDDY_OK;
    return write_commit_file(env->dir, "TXN_THREADS", (uint64_t)n, errstr, errstr_size);
}

static uint64_t env_rolled(const eddy_state_env_t *env, int task) {
    return task >= 0 && task < env->nrolled ? env->rolled[task] : 0;
}

static void env_set_rolled(eddy_state_env_t *env, int task, uint64_t commit) {
    if (task < 0 || task >= env->nrolled)
        return;
    env->rolled[task] = commit;
    uint64_t m = atomic_load(&env->rolled_max);
    while (m < commit && !atomic_compare_exchange_weak(&env->rolled_max, &m, commit)) {
    }
}

static bool env_opened(const eddy_state_env_t *env, int task) {
    return task / 64 < env->nopened_words && (env->opened[task / 64] >> (task % 64)) & 1;
}

static void env_set_opened(eddy_state_env_t *env, int task) {
    int w = task / 64;
    if (w >= env->nopened_words) {
        env->opened = eddy_realloc(env->opened, sizeof(uint64_t) * (size_t)(w + 1));
        memset(env->opened + env->nopened_words, 0,
               sizeof(uint64_t) * (size_t)(w + 1 - env->nopened_words));
        env->nopened_words = w + 1;
    }
    env->opened[w] |= 1ULL << (task % 64);
}
const char *eddy__state_env_dir(const eddy_state_env_t *env) { return env->dir; }
int64_t eddy__state_env_budget(const eddy_state_env_t *env) { return env->budget; }
int64_t eddy__state_env_usage(const eddy_state_env_t *env) {
    return eddy__rocks_env_usage_bytes(env->renv);
}

void eddy__state_env_no_close_flush(eddy_state_env_t *env) {
    eddy__rocks_env_no_close_flush(env->renv);
}

eddy_err_t eddy__state_env_mark(eddy_state_env_t *env, uint64_t n, char *errstr,
                                size_t errstr_size) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/COMMITTED", env->dir);
    eddy_ckpt_t c = {.commit_id = n, .created_ms = (uint64_t)eddy__wall_ms()};
    eddy_err_t rc = eddy__ckpt_write(path, &c, errstr, errstr_size);
    if (!rc) {
        env->committed = n;
        /* it exists now: a task reopened later under this env (a
         * partition moved away and back) must not take it for lost */
        env->have_marker = true;
    }
    return rc;
}

/* ----------------------------------------------------- snapshot copies */

static int copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY);
    if (in < 0)
        return -1;
    int out = open(dst, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            rc = -1;
            break;
        }
    }
    if (n < 0 || fsync(out))
        rc = -1;
    close(in);
    close(out);
    return rc;
}

/* Copy a RocksDB checkpoint directory: SST files are immutable, so hard
 * links suffice; everything else is copied. */
static int copy_dir(const char *src, const char *dst) {
    if (mkdir_p(dst))
        return -1;
    DIR *d = opendir(src);
    if (!d)
        return -1;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char s[4200], t[4200];
        int ls = snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
        int lt = snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
        if (ls < 0 || lt < 0 || (size_t)ls >= sizeof(s) || (size_t)lt >= sizeof(t)) {
            rc = -1;
            break;
        }
        size_t l = strlen(de->d_name);
        bool sst = l > 4 && !strcmp(de->d_name + l - 4, ".sst");
        if (sst && !link(s, t))
            continue;
        if (copy_file(s, t)) {
            rc = -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

static void remove_tree(const char *path) {
    char err[256];
    eddy__rocks_destroy_dir(path, err, sizeof(err));
}

/* ------------------------------------------------------------- restore */

typedef struct {
    eddy_tstate_t *ts;
    eddy_rocks_batch_t *b;
    int *cf_of;      /* store id -> cf */
    int nstores;
    uint64_t updates;
    char *errstr;
    size_t errstr_size;
} replay_ctx_t;

static eddy_err_t flush_replay(replay_ctx_t *rc) {
    if (!eddy__rocks_batch_count(rc->b))
        return EDDY_OK;
    eddy_err_t e = eddy__rocks_write(rc->ts->db, rc->b, rc->errstr, rc->errstr_size);
    eddy__rocks_batch_clear(rc->b);
    return e;
}

static eddy_err_t on_update(void *opaque, uint16_t store, eddy_cl_op_t op, const char *key,
                            size_t klen, const char *val, size_t vlen) {
    replay_ctx_t *rc = opaque;
    if (store >= rc->nstores) {
        eddy__seterr(rc->errstr, rc->errstr_size,
                     "state: task %d changelog names store #%u, but the topology has %d stores "
                     "(was the topology changed? its stores must stay in the same order)",
                     rc->ts->task, store, rc->nstores);
        return EDDY_ERR_STATE;
    }
    int cf = rc->cf_of[store];
    if (op == EDDY_CL_PUT)
        eddy__rocks_batch_put(rc->b, rc->ts->db, cf, key, klen, val, vlen);
    else if (op == EDDY_CL_DEL)
        eddy__rocks_batch_del(rc->b, rc->ts->db, cf, key, klen);
    else
        eddy__rocks_batch_del_range(rc->b, rc->ts->db, cf, key, klen, val, vlen);
    rc->ts->stores[store].restored++;
    rc->updates++;
    eddy__fault_point("restore");
    if (eddy__rocks_batch_count(rc->b) >= 10000)
        return flush_replay(rc);
    return EDDY_OK;
}

static eddy_err_t on_commit(void *opaque, uint64_t commit_id, const char *pos, size_t plen) {
    replay_ctx_t *rc = opaque;
    eddy_tstate_t *ts = rc->ts;
    ts->positions.len = 0;
    eddy_buf_put(&ts->positions, pos, plen);
    ts->have_positions = true;
    ts->last_commit_id = commit_id;
    eddy__rocks_batch_put(rc->b, ts->db, ts->cf_pos, POS_KEY, 1, pos, plen);
    return EDDY_OK;
}

static eddy_rocks_t *open_db(eddy_tstate_t *ts, const eddy_store_def_t *const *defs, int ndefs,
                             char *errstr, size_t errstr_size) {
    const char **names = eddy_calloc((size_t)ndefs + 1, sizeof(char *));
    for (int i = 0; i < ndefs; i++)
        names[i] = defs[i]->name;
    names[ndefs] = POS_CF;
    char path[4200];
    snprintf(path, sizeof(path), "%s/db", ts->dir);
    eddy_rocks_t *db = eddy__rocks_open(ts->env->renv, path, names, ndefs + 1, errstr,
                                        errstr_size);
    eddy_free(names);
    return db;
}

static eddy_tstate_t *tstate_alloc(eddy_state_env_t *env, int task) {
    eddy_tstate_t *ts = eddy_calloc(1, sizeof(*ts));
    ts->env = env;
    ts->task = task;
    ts->dir = eddy_asprintf("%s/task-%d", env->dir, task);
    ts->last_ckpt_ns = eddy__now_ns();
    ts->lockfd = -1;
    return ts;
}

/* The stores over the open DB; returns store id -> column family. */
static int *init_stores(eddy_tstate_t *ts, const eddy_store_def_t *const *defs, int ndefs) {
    ts->cf_pos = eddy__rocks_cf(ts->db, POS_CF);
    ts->nstores = ndefs;
    ts->stores = eddy_calloc((size_t)ndefs + 1, sizeof(*ts->stores));
    int *cf_of = eddy_calloc((size_t)ndefs + 1, sizeof(int));
    for (int i = 0; i < ndefs; i++) {
        cf_of[i] = eddy__rocks_cf(ts->db, defs[i]->name);
        eddy__store_init(&ts->stores[i], defs[i], ts, ts->db, cf_of[i], (uint16_t)i,
                         ts->env->cache_per_store);
    }
    return cf_of;
}

/*
 * Restore from the local store, snapshot and changelog. On failure *lost
 * (may be NULL) tells whether the task's own state is what failed (so a
 * rebuild from the remote changelog may replace it) rather than the
 * environment (the directory cannot even be created).
 */
static eddy_tstate_t *open_local(eddy_state_env_t *env, int task,
                                 const eddy_store_def_t *const *defs, int ndefs, uint64_t roll_to,
                                 uint64_t *rolled, bool *lost, char *errstr, size_t errstr_size) {
    int64_t t0 = eddy__now_ns();
    eddy_tstate_t *ts = tstate_alloc(env, task);
    bool env_err = false;
    char path[4200], err[1024];
    if (mkdir_p(ts->dir)) {
        eddy__seterr(errstr, errstr_size, "state: cannot create %s: %s", ts->dir,
                     strerror(errno));
        env_err = true;
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/changelog", ts->dir);
    ts->cl = eddy__changelog_local_open(path, env->segment_bytes, errstr, errstr_size);
    if (!ts->cl)
        goto fail;
    snprintf(path, sizeof(path), "%s/checkpoint", ts->dir);
    eddy_err_t crc = eddy__ckpt_read(path, &ts->ckpt, err, sizeof(err));
    uint64_t from;
    char dbpath[4200];
    snprintf(dbpath, sizeof(dbpath), "%s/db", ts->dir);
    char current[4300];
    snprintf(current, sizeof(current), "%s/CURRENT", dbpath);
    bool live_exists = access(current, F_OK) == 0;
    if (crc == EDDY_OK) {
        ts->have_ckpt = true;
        from = ts->ckpt.changelog_offset;
        /* RocksDB would create a missing store empty: a lost live store
         * must come back from the snapshot instead. */
        if (live_exists)
            ts->db = open_db(ts, defs, ndefs, err, sizeof(err));
        else
            snprintf(err, sizeof(err), "the live store is missing (no CURRENT file)");
        if (!ts->db) {
            char snap[4200];
            snprintf(snap, sizeof(snap), "%s/snap-%llu", ts->dir,
                     (unsigned long long)ts->ckpt.snapshot_id);
            fprintf(stderr, "eddy: state: task %d: local store unusable (%s); restoring %s\n",
                    task, err, snap);
            remove_tree(dbpath);
            if (copy_dir(snap, dbpath)) {
                eddy__seterr(errstr, errstr_size,
                             "state: task %d: local store unusable (%s) and snapshot %s cannot "
                             "be copied: %s",
                             task, err, snap, strerror(errno));
                goto fail;
            }
            ts->db = open_db(ts, defs, ndefs, errstr, errstr_size);
            if (!ts->db)
                goto fail;
        }
    } else {
        uint64_t start = ts->cl->ops->start_offset(ts->cl);
        if (crc == EDDY_ERR_DECODE)
            fprintf(stderr, "eddy: state: task %d: %s: not trusted\n", task, err);
        if (start == 0) {
            /* The whole history is here: rebuild from nothing. */
            remove_tree(dbpath);
            from = 0;
            ts->db = open_db(ts, defs, ndefs, errstr, errstr_size);
            if (!ts->db)
                goto fail;
        } else {
            if (live_exists)
                ts->db = open_db(ts, defs, ndefs, err, sizeof(err));
            else
                snprintf(err, sizeof(err), "the live store is missing (no CURRENT file)");
            if (!ts->db) {
                eddy__seterr(errstr, errstr_size,
                             "state: task %d: no usable checkpoint in %s, the local store cannot "
                             "be opened (%s), and the changelog starts at offset %llu: the "
                             "state cannot be rebuilt; refusing to start with empty state",
                             task, ts->dir, err, (unsigned long long)start);
                goto fail;
            }
            fprintf(stderr,
                    "eddy: state: task %d: replaying the retained changelog (from %llu) over "
                    "the local store\n",
                    task, (unsigned long long)start);
            from = start;
        }
    }
    int *cf_of = init_stores(ts, defs, ndefs);
    /* positions as of the store's content */
    eddy_buf_t pb = {0};
    bool found = false;
    if (eddy__rocks_get(ts->db, ts->cf_pos, POS_KEY, 1, &pb, &found, errstr, errstr_size)) {
        eddy_free(cf_of);
        eddy_buf_free(&pb);
        goto fail;
    }
    if (found) {
        eddy_buf_put(&ts->positions, pb.p, pb.len);
        ts->have_positions = true;
    }
    eddy_buf_free(&pb);
    /* The live store and checkpoints only ever hold acknowledged commits:
     * if they exist, a missing COMMITTED marker is lost, not "nothing was
     * committed", and replaying to commit 0 would throw state away. */
    if (!env->have_marker && (found || crc == EDDY_OK)) {
        eddy__seterr(errstr, errstr_size,
                     "state: %s/COMMITTED is missing but task %d holds committed state: "
                     "refusing to start rather than discard it",
                     env->dir, task);
        eddy_free(cf_of);
        goto fail;
    }
    ts->batch = eddy__rocks_batch_new();
    replay_ctx_t rc = {.ts = ts, .b = ts->batch, .cf_of = cf_of, .nstores = ndefs,
                       .errstr = errstr, .errstr_size = errstr_size};
    uint64_t last = 0, end = 0;
    /* Opened for the first time by this process, the task can only hold
     * groups of earlier processes: those after the COMMITTED this process
     * started with were prepared and never acknowledged (a crash between
     * prepare and acknowledgement; their sinks may not have flushed), even
     * when this process has acknowledged rounds of those numbers since
     * (rounds run while a consumer group had not assigned the task yet).
     * The replay truncates them. Opened again, every group it holds after
     * that was written and acknowledged here. */
    uint64_t upto = env_opened(env, task) ? env->committed : env->committed_initial;
    /* groups after a clean close (or after the commit a process started
     * with, mark_unopened_tasks) were never acknowledged */
    uint64_t closed_before = read_closed(ts);
    if (closed_before && closed_before < upto)
        upto = closed_before;
    /* rolling forward (tstate_open): the groups up to roll_to (the marker
     * the topics end with, at a first open) went out in committed
     * transactions with their rounds' output; so did those up to ROLLED
     * (a roll-forward of this or an earlier process whose next commit was
     * never acknowledged) and to what this process rolled forward to */
    uint64_t rolled_before = read_commit_file(ts->dir, "ROLLED");
    ts->rolled_marker = rolled_before > 0;
    if (roll_to < rolled_before)
        roll_to = rolled_before;
    if (roll_to < env_rolled(env, task))
        roll_to = env_rolled(env, task);
    if (roll_to <= upto)
        roll_to = 0; /* nothing to roll forward */
    else {
        upto = roll_to;
        /* before RocksDB gets the group: a death from here on must not
         * roll it back */
        if (roll_to != rolled_before &&
            write_commit_file(ts->dir, "ROLLED", roll_to, errstr, errstr_size)) {
            eddy_free(cf_of);
            env_err = true;
            goto fail;
        }
        ts->rolled_marker = true;
    }
    if (rolled)
        *rolled = roll_to;
    eddy_err_t e = ts->cl->ops->replay(ts->cl, from, upto, on_update, on_commit, &rc, &last,
                                       &end, errstr, errstr_size);
    if (!e)
        e = flush_replay(&rc);
    eddy_free(cf_of);
    if (e)
        goto fail;
    uint64_t reached = last > ts->ckpt.commit_id ? last : ts->ckpt.commit_id;
    uint64_t closed_at = read_closed(ts);
    ts->closed_marker = closed_at > 0;
    ts->closed_c = closed_at;
    /* A task takes part in every round while it is open. Rounds after it
     * closed cleanly (CLOSED), or acknowledged by this process before it
     * first opened it (a consumer group assigns partitions some time after
     * start), have no group in its changelog, and need none. */
    uint64_t bound = closed_at ? closed_at : env->committed_initial;
    if (reached < bound && (ts->have_ckpt || last > 0)) {
        eddy__seterr(errstr, errstr_size,
                     "state: task %d: its changelog ends at commit %llu, but commit %llu was "
                     "acknowledged: committed state is missing from %s/changelog; refusing to "
                     "start",
                     task, (unsigned long long)reached, (unsigned long long)bound,
                     ts->dir);
        goto fail;
    }
    if (roll_to && reached < roll_to) {
        /* the group was rolled back before (an in-process recovery after
         * the transaction aborted, on a cluster that shows aborted
         * records): the topics hold what the output shows */
        eddy__seterr(errstr, errstr_size,
                     "state: task %d: its Kafka changelog ends with commit %llu of this state "
                     "directory, but its local changelog ends at commit %llu",
                     task, (unsigned long long)roll_to, (unsigned long long)reached);
        goto fail;
    }
    ts->last_commit_id = reached;
    ts->last_offset = end;
    ts->prev_ckpt_offset = from;
    ts->restored = rc.updates;
    ts->restore_s = (double)(eddy__now_ns() - t0) / 1e9;
    return ts;
fail:
    if (lost)
        *lost = !env_err;
    tstate_free(ts);
    return NULL;
}

/* ---------------------------------------------------- remote changelog */

static eddy_err_t acc_get(void *opaque, uint16_t store, const char *key, size_t klen,
                          eddy_buf_t *val, bool *found, char *errstr, size_t errstr_size) {
    eddy_tstate_t *ts = opaque;
    val->len = 0;
    return eddy__rocks_get(ts->db, ts->stores[store].cf, key, klen, val, found, errstr,
                           errstr_size);
}

static eddy_err_t acc_scan(void *opaque, uint16_t store, eddy_cl_update_cb_t emit,
                           void *emit_opaque, char *errstr, size_t errstr_size) {
    eddy_tstate_t *ts = opaque;
    eddy_rocks_iter_t *it = eddy__rocks_iter_new(ts->db, ts->stores[store].cf, NULL, 0, NULL, 0);
    eddy_err_t e = EDDY_OK;
    for (eddy__rocks_iter_seek_first(it); !e && eddy__rocks_iter_valid(it);
         eddy__rocks_iter_next(it)) {
        size_t kl, vl;
        const char *k = eddy__rocks_iter_key(it, &kl);
        const char *v = eddy__rocks_iter_value(it, &vl);
        if ((e = emit(emit_opaque, store, EDDY_CL_PUT, k, kl, v, vl)))
            eddy__seterr(errstr, errstr_size, "state: task %d: seeding the Kafka changelog: %s",
                         ts->task, eddy_err2str(e));
    }
    if (!e)
        e = eddy__rocks_iter_status(it, errstr, errstr_size);
    eddy__rocks_iter_destroy(it);
    return e;
}

/* Bring the remote log in line with the restored state, from the mark
 * stored with it (NULL: unknown). *stale: the log is ahead instead. */
static eddy_err_t resync_remote(eddy_tstate_t *ts, const void *mark, size_t mlen, bool *stale,
                                char *errstr, size_t errstr_size) {
    eddy_cl_state_t acc = {.get = acc_get, .scan = acc_scan, .opaque = ts};
    return ts->rcl->ops->resync(ts->rcl, mark, mlen, ts->last_commit_id,
                                ts->have_positions ? ts->positions.p : NULL,
                                ts->have_positions ? ts->positions.len : 0, &acc, stale, errstr,
                                errstr_size);
}

/* Store the remote log's mark with the state, now. */
static eddy_err_t store_mark(eddy_tstate_t *ts, char *errstr, size_t errstr_size) {
    size_t ml = 0;
    const void *m = ts->rcl->ops->mark(ts->rcl, &ml);
    eddy__rocks_batch_clear(ts->batch);
    eddy__rocks_batch_put(ts->batch, ts->db, ts->cf_pos, MARK_KEY, 1, m, ml);
    eddy_err_t e = eddy__rocks_write(ts->db, ts->batch, errstr, errstr_size);
    eddy__rocks_batch_clear(ts->batch);
    return e;
}

static eddy_err_t checkpoint(eddy_tstate_t *ts, char *errstr, size_t errstr_size);

/* ------------------------------------------------ restores, for queries */

static void restoring_set(eddy_state_env_t *env, int task, eddy_changelog_t *cl) {
    if (task < 0 || task >= env->nrestoring)
        return;
    pthread_mutex_lock(&env->prog_mu);
    env->restoring[task] = cl;
    pthread_mutex_unlock(&env->prog_mu);
}

/* Fill out[] from a handle's progress(); the number of stores. */
static int progress_of(eddy_changelog_t *cl, eddy_restore_progress_t *out, int max) {
    int n = 0;
    const char *topic;
    int part;
    int64_t at, until;
    while (cl && cl->ops->progress && n < max &&
           cl->ops->progress(cl, n, &topic, &part, &at, &until)) {
        snprintf(out[n].topic, sizeof(out[n].topic), "%s", topic);
        out[n].partition = part;
        out[n].offset = at;
        out[n].end_offset = until;
        n++;
    }
    return n;
}

int eddy__state_restore_progress(eddy_state_env_t *env, int task, eddy_restore_progress_t *out,
                                 int max) {
    if (!env || task < 0 || task >= env->nrestoring)
        return 0;
    pthread_mutex_lock(&env->prog_mu);
    int n = progress_of(env->restoring[task], out, max);
    pthread_mutex_unlock(&env->prog_mu);
    return n;
}

/* ----------------------------------------------------- standby replicas */

/* A standby copy is an eddy_tstate_t with only a DB (same column
 * families as the task's), the restore counters and the remote handle;
 * nstores stays 0 so that tstate_free frees no store. The DB holds, under
 * POS_CF, the positions (POS_KEY) and the remote mark (MARK_KEY) of the
 * last commit it applied. */
static eddy_tstate_t *sb_open(eddy_state_env_t *env, int task, char *errstr,
                              size_t errstr_size) {
    eddy_cl_remote_t *r = env->remote;
    eddy_tstate_t *sb = tstate_alloc(env, task);
    eddy_free(sb->dir);
    sb->dir = eddy_asprintf("%s/standby-%d", env->dir, task);
    const char **names = eddy_calloc((size_t)r->nstores + 1, sizeof(char *));
    for (int i = 0; i < r->nstores; i++)
        names[i] = r->stores[i];
    names[r->nstores] = POS_CF;
    char path[4200];
    snprintf(path, sizeof(path), "%s/db", sb->dir);
    if (mkdir_p(sb->dir))
        eddy__seterr(errstr, errstr_size, "state: cannot create %s: %s", sb->dir,
                     strerror(errno));
    else
        sb->db = eddy__rocks_open(env->renv, path, names, r->nstores + 1, errstr, errstr_size);
    eddy_free(names);
    if (sb->db) {
        sb->cf_pos = eddy__rocks_cf(sb->db, POS_CF);
        sb->stores = eddy_calloc((size_t)r->nstores, sizeof(*sb->stores));
        sb->batch = eddy__rocks_batch_new();
        sb->rcl = r->open(r, task, env->writer_id, errstr, errstr_size);
    }
    if (!sb->rcl) {
        tstate_free(sb);
        return NULL;
    }
    return sb;
}

/* Apply the commits that reached the task's changelog since the last
 * step, up to its last commit marker; the records and the new mark go to
 * the DB together. */
static eddy_err_t sb_step(eddy_state_env_t *env, int task, char *errstr, size_t errstr_size) {
    eddy_tstate_t *sb = env->sb[task];
    if (!sb && !(sb = env->sb[task] = sb_open(env, task, errstr, errstr_size)))
        return EDDY_ERR_IO;
    eddy_cl_remote_t *r = env->remote;
    eddy_buf_t mark = {0};
    bool found = false;
    int *cf_of = eddy_calloc((size_t)r->nstores, sizeof(int));
    for (int i = 0; i < r->nstores; i++)
        cf_of[i] = eddy__rocks_cf(sb->db, r->stores[i]);
    replay_ctx_t rc = {.ts = sb, .b = sb->batch, .cf_of = cf_of, .nstores = r->nstores,
                       .errstr = errstr, .errstr_size = errstr_size};
    eddy_err_t e = eddy__rocks_get(sb->db, sb->cf_pos, MARK_KEY, 1, &mark, &found, errstr,
                                   errstr_size);
    if (!e)
        e = sb->rcl->ops->catch_up(sb->rcl, found ? mark.p : NULL, found ? mark.len : 0,
                                   on_update, on_commit, &rc, NULL, errstr, errstr_size);
    if (!e)
        sb->caught_up_ns = eddy__now_ns();
    size_t ml = 0;
    const void *m = e ? NULL : sb->rcl->ops->mark(sb->rcl, &ml);
    if (m && (ml != mark.len || memcmp(m, mark.p, ml))) {
        eddy__rocks_batch_put(sb->batch, sb->db, sb->cf_pos, MARK_KEY, 1, m, ml);
        e = flush_replay(&rc);
    }
    eddy__rocks_batch_clear(sb->batch);
    eddy_buf_free(&mark);
    eddy_free(cf_of);
    if (e) { /* start it again from nothing */
        char *dir = eddy_strdup(sb->dir);
        tstate_free(sb);
        env->sb[task] = NULL;
        remove_tree(dir);
        eddy_free(dir);
    }
    return e;
}

/* A copy this instance is no longer chosen for goes after this long (the
 * instances view settles over a rebalance: records arrive one by one) */
#define SB_DROP_AFTER_NS 3000000000LL

/* Drop the copy of task (open or only on disk), with its files. */
static void sb_drop(eddy_state_env_t *env, int task) {
    char *dir = eddy_asprintf("%s/standby-%d", env->dir, task);
    struct stat st;
    bool had = env->sb[task] || stat(dir, &st) == 0;
    tstate_free(env->sb[task]);
    env->sb[task] = NULL;
    remove_tree(dir);
    eddy_free(dir);
    if (had)
        fprintf(stderr,
                "eddy: state: standby copy of task %d dropped: this instance is not among the "
                "%d chosen to keep one (docs/scaleout.md)\n",
                task, env->standby);
}

/* One task's turn in a round, under sb_mu: drop its copy or not, as the
 * choice says; true when the copy is to be kept up to date or started
 * (sb_step, outside sb_mu). */
static bool sb_turn(eddy_state_env_t *env, int task, int64_t now) {
    int c = env->sb_choice ? env->sb_choice(env->sb_choice_op, task, env->standby)
            : env->sb_choice_gone ? -1
                                  : 1;
    if (c == 0) {
        if (!env->sb_unchosen_ns[task])
            env->sb_unchosen_ns[task] = now;
        else if (env->sb_unchosen_ns[task] > 0 && now - env->sb_unchosen_ns[task] > SB_DROP_AFTER_NS) {
            sb_drop(env, task);
            env->sb_unchosen_ns[task] = -1; /* dropped: nothing more to do */
        }
        return false;
    }
    if (c > 0)
        env->sb_unchosen_ns[task] = 0;
    /* not known (no owner in the view): a copy kept goes on, none starts */
    return c > 0 || env->sb[task] != NULL;
}

/* Wait, under sb_mu, until the thread is not bringing task's copy up to
 * date. */
static void sb_wait_idle(eddy_state_env_t *env, int task) {
    while (env->sb_busy == task)
        pthread_cond_wait(&env->sb_cond, &env->sb_mu);
}

static void *sb_main(void *arg) {
    eddy_state_env_t *env = arg;
    char err[1024];
    while (!atomic_load(&env->sb_stop)) {
        bool failed = false;
        /* Not while the group's assignment is being opened: the copies are
         * of the tasks this instance does not get, so wait for its first
         * tasks to open (or 10 s, for an instance that gets none), and
         * for 1 s after any task open (a restart's own tasks open from
         * their directories, not from copies) */
        int64_t now = eddy__now_ns(), last = atomic_load(&env->sb_last_open_ns);
        bool ready = last ? now - last > 1000000000LL : now - env->sb_start_ns > 10000000000LL;
        for (int t = 0; ready && t < env->sb_tasks && !atomic_load(&env->sb_stop); t++) {
            pthread_mutex_lock(&env->sb_mu);
            bool step = !atomic_load(&env->owned[t]) && sb_turn(env, t, now);
            if (step)
                env->sb_busy = t;
            pthread_mutex_unlock(&env->sb_mu);
            if (!step)
                continue;
            /* not under sb_mu: a task open, a query or the instances view
             * would wait for Kafka reads of every copy in turn (with
             * copies of many tasks, for whole rounds: the thread takes
             * the mutex again at once) */
            if (sb_step(env, t, err, sizeof(err))) {
                fprintf(stderr, "eddy: state: standby copy of task %d: %s (started again)\n",
                        t, err);
                failed = true;
            }
            pthread_mutex_lock(&env->sb_mu);
            env->sb_busy = -1;
            pthread_cond_broadcast(&env->sb_cond);
            pthread_mutex_unlock(&env->sb_mu);
        }
        /* a round every 100 ms, every 2 s after a failure */
        for (int i = 0; i < (failed ? 100 : 5) && !atomic_load(&env->sb_stop); i++)
            nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
    return NULL;
}

static void sb_start(eddy_state_env_t *env, int replicas) {
    env->standby = replicas;
    env->sb_tasks = env->remote->tasks;
    env->owned = eddy_calloc((size_t)env->sb_tasks, sizeof(*env->owned));
    env->sb = eddy_calloc((size_t)env->sb_tasks, sizeof(*env->sb));
    env->sb_unchosen_ns = eddy_calloc((size_t)env->sb_tasks, sizeof(int64_t));
    env->sb_start_ns = eddy__now_ns();
    env->sb_started = pthread_create(&env->sb_thread, NULL, sb_main, env) == 0;
    if (!env->sb_started)
        fprintf(stderr, "eddy: state: standby replicas off: cannot start their thread\n");
}

static void sb_stop(eddy_state_env_t *env) {
    if (env->sb_started) {
        atomic_store(&env->sb_stop, true);
        pthread_join(env->sb_thread, NULL);
        env->sb_started = false;
    }
    for (int t = 0; env->sb && t < env->sb_tasks; t++)
        tstate_free(env->sb[t]);
    eddy_free(env->sb);
    eddy_free(env->owned);
    eddy_free(env->sb_unchosen_ns);
    env->sb_unchosen_ns = NULL;
    env->sb = NULL;
    env->owned = NULL;
}

eddy_err_t eddy__state_standby_get(eddy_state_env_t *env, int task, const char *store,
                                   const void *key, size_t klen, eddy_buf_t *val, bool *found,
                                   int64_t *lag, int64_t *age_ms) {
    if (!env || !env->sb || task < 0 || task >= env->sb_tasks)
        return EDDY_ERR_NOENT;
    pthread_mutex_lock(&env->sb_mu);
    sb_wait_idle(env, task);
    eddy_tstate_t *sb = env->sb[task];
    eddy_err_t e = EDDY_ERR_NOENT;
    int cf = sb && sb->caught_up_ns ? eddy__rocks_cf(sb->db, store) : -1;
    if (cf >= 0) {
        char err[256];
        e = eddy__rocks_get(sb->db, cf, key, klen, val, found, err, sizeof(err));
        eddy_restore_progress_t p[16];
        int n = progress_of(sb->rcl, p, 16);
        *lag = 0;
        for (int i = 0; i < n; i++)
            *lag = p[i].offset >= 0 && p[i].end_offset >= p[i].offset && *lag >= 0
                       ? *lag + (p[i].end_offset - p[i].offset)
                       : -1;
        *age_ms = (eddy__now_ns() - sb->caught_up_ns) / 1000000;
    }
    pthread_mutex_unlock(&env->sb_mu);
    return e;
}

void eddy__state_env_set_standby_choice(eddy_state_env_t *env, eddy_standby_choice_t fn,
                                        void *opaque) {
    if (!env)
        return;
    pthread_mutex_lock(&env->sb_mu);
    env->sb_choice_gone = !fn && (env->sb_choice || env->sb_choice_gone);
    env->sb_choice = fn;
    env->sb_choice_op = opaque;
    pthread_mutex_unlock(&env->sb_mu);
}

/* Mark the task open here (or not); on opening, hand over its standby
 * copy, if one is kept (the caller frees it). */
static eddy_tstate_t *sb_own(eddy_state_env_t *env, int task, bool own) {
    if (!env->owned || task < 0 || task >= env->sb_tasks)
        return NULL;
    atomic_store(&env->owned[task], own);
    atomic_store(&env->sb_last_open_ns, eddy__now_ns());
    if (!own) /* no wait for a step of the thread in progress */
        return NULL;
    pthread_mutex_lock(&env->sb_mu);
    sb_wait_idle(env, task); /* a catch-up in progress ends first */
    eddy_tstate_t *sb = env->sb[task];
    env->sb[task] = NULL;
    pthread_mutex_unlock(&env->sb_mu);
    return sb;
}

/* Move a standby copy's DB in as the task's DB at `path`: true when done. */
static bool sb_adopt(eddy_tstate_t *sb, const char *path) {
    if (!sb)
        return false;
    char *from = eddy_asprintf("%s/db", sb->dir);
    eddy__rocks_close(sb->db);
    sb->db = NULL;
    bool ok = rename(from, path) == 0;
    if (!ok)
        fprintf(stderr, "eddy: state: task %d: cannot take its standby copy %s: %s\n", sb->task,
                from, strerror(errno));
    eddy_free(from);
    tstate_free(sb);
    return ok;
}

/* Rebuild the task from the remote changelog into a new task directory. */
static eddy_tstate_t *open_remote(eddy_state_env_t *env, int task,
                                  const eddy_store_def_t *const *defs, int ndefs,
                                  eddy_tstate_t *sb, char *errstr, size_t errstr_size) {
    int64_t t0 = eddy__now_ns();
    eddy_tstate_t *ts = tstate_alloc(env, task);
    char path[4200];
    int *cf_of = NULL;
    if (mkdir_p(ts->dir)) {
        eddy__seterr(errstr, errstr_size, "state: cannot create %s: %s", ts->dir,
                     strerror(errno));
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/changelog", ts->dir);
    ts->cl = eddy__changelog_local_open(path, env->segment_bytes, errstr, errstr_size);
    if (!ts->cl)
        goto fail;
    snprintf(path, sizeof(path), "%s/db", ts->dir);
    remove_tree(path);
    bool warm = sb_adopt(sb, path);
    sb = NULL;
    ts->db = open_db(ts, defs, ndefs, errstr, errstr_size);
    if (!ts->db)
        goto fail;
    cf_of = init_stores(ts, defs, ndefs);
    ts->batch = eddy__rocks_batch_new();
    ts->rcl = env->remote->open(env->remote, task, env->writer_id, errstr, errstr_size);
    if (!ts->rcl)
        goto fail;
    restoring_set(env, task, ts->rcl); /* queries ask how far it is */
    replay_ctx_t rc = {.ts = ts, .b = ts->batch, .cf_of = cf_of, .nstores = ndefs,
                       .errstr = errstr, .errstr_size = errstr_size};
    uint64_t last = 0;
    eddy_err_t e;
    if (warm) {
        /* the standby copy: its positions, then only the commits since */
        eddy_buf_t sm = {0};
        bool found = false;
        e = eddy__rocks_get(ts->db, ts->cf_pos, POS_KEY, 1, &ts->positions, &ts->have_positions,
                            errstr, errstr_size);
        if (!e)
            e = eddy__rocks_get(ts->db, ts->cf_pos, MARK_KEY, 1, &sm, &found, errstr,
                                errstr_size);
        if (!e)
            e = ts->rcl->ops->catch_up(ts->rcl, found ? sm.p : NULL, found ? sm.len : 0,
                                       on_update, on_commit, &rc, NULL, errstr, errstr_size);
        eddy_buf_free(&sm);
    } else {
        e = ts->rcl->ops->replay(ts->rcl, 0, UINT64_MAX, on_update, on_commit, &rc, &last, NULL,
                                 errstr, errstr_size);
    }
    if (!e)
        e = flush_replay(&rc);
    restoring_set(env, task, NULL);
    if (e)
        goto fail;
    /* the remote commit ids are the writer's; locally the task continues
     * at this instance's acknowledged commit */
    ts->last_commit_id = env->committed;
    ts->last_offset = eddy__cl_end_offset(ts->cl);
    ts->restored = rc.updates;
    size_t ml = 0;
    const void *m = ts->rcl->ops->mark(ts->rcl, &ml);
    eddy_buf_t mark = {0};
    eddy_buf_put(&mark, m, ml);
    bool stale = false;
    e = resync_remote(ts, mark.p, mark.len, &stale, errstr, errstr_size);
    eddy_buf_free(&mark);
    if (!e && stale) { /* someone committed while we read */
        eddy__seterr(errstr, errstr_size,
                     "state: task %d: its Kafka changelog changed during the rebuild (another "
                     "instance writing it?)",
                     task);
        e = EDDY_ERR_STATE;
    }
    /* the local state must stand on its own before anything else
     * happens: a crash now would otherwise find an empty changelog and no
     * checkpoint and take that for the whole history */
    if (e || (e = store_mark(ts, errstr, errstr_size)) ||
        (e = checkpoint(ts, errstr, errstr_size)))
        goto fail;
    ts->restore_s = (double)(eddy__now_ns() - t0) / 1e9;
    if (warm)
        fprintf(stderr,
                "eddy: state: task %d: opened from its standby copy, %llu changelog records "
                "after it replayed in %.3f s\n",
                task, (unsigned long long)ts->restored, ts->restore_s);
    else if (last || ts->restored) /* else a new task: nothing to say */
        fprintf(stderr,
                "eddy: state: task %d: rebuilt from the Kafka changelog (remote commit %llu): "
                "%llu records in %.3f s\n",
                task, (unsigned long long)last, (unsigned long long)ts->restored,
                ts->restore_s);
    snprintf(path, sizeof(path), "%s/lost-task-%d", env->dir, task);
    remove_tree(path);
    eddy_free(cf_of);
    return ts;
fail:
    restoring_set(env, task, NULL);
    eddy_free(cf_of);
    tstate_free(sb);
    tstate_free(ts);
    return NULL;
}

/* Remote mode: one process per task directory (a second one must not
 * move it aside under the first). */
static int lock_task(eddy_state_env_t *env, int task, char *errstr, size_t errstr_size) {
    char *path = eddy_asprintf("%s/.task-%d.lock", env->dir, task);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB)) {
        eddy__seterr(errstr, errstr_size, "state: %s: %s", path,
                     fd >= 0 && errno == EWOULDBLOCK ? "task in use by another process"
                                                     : strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    eddy_free(path);
    return fd;
}

/* Roll-forward (docs/kafka.md): at a task's first open in this process,
 * the commit its topics end with, when this state directory wrote it (its
 * transaction committed, with the round's output); open_local rolls
 * forward to it when it is above the task's own replay limit (the process
 * died before acknowledging it, or before the task's first commit after
 * rolling forward to it); 0 when none; UINT64_MAX on an error (in
 * errstr). Never at a reopen after an in-process recovery: a round this
 * process aborted is not rolled forward (a cluster that shows aborted
 * records, as the embedded one, would show its marker). */
static uint64_t roll_forward_to(eddy_state_env_t *env, int task, eddy_changelog_t *rcl,
                                char *errstr, size_t errstr_size) {
    if (!env->roll_forward || env_opened(env, task) || !rcl->ops->tail)
        return 0;
    bool found = false, ours = false;
    uint64_t id = 0;
    if (rcl->ops->tail(rcl, &found, &id, &ours, errstr, errstr_size))
        return UINT64_MAX;
    return found && ours ? id : 0;
}

static eddy_tstate_t *tstate_open(eddy_state_env_t *env, int task,
                                  const eddy_store_def_t *const *defs, int ndefs, char *errstr,
                                  size_t errstr_size) {
    if (!env->remote)
        return open_local(env, task, defs, ndefs, 0, NULL, NULL, errstr, errstr_size);
    int lockfd = lock_task(env, task, errstr, errstr_size);
    if (lockfd < 0)
        return NULL;
    eddy_tstate_t *warm = sb_own(env, task, true); /* standby replicas: NULL when none */
    eddy_tstate_t *ts = NULL;
    struct stat sb;
    char *dir = eddy_asprintf("%s/task-%d", env->dir, task);
    bool exists = stat(dir, &sb) == 0;
    eddy_free(dir);
    if (exists) {
        bool lost = false;
        char lerr[1024];
        eddy_changelog_t *rcl =
            env->remote->open(env->remote, task, env->writer_id, errstr, errstr_size);
        uint64_t roll_to = 0;
        if (rcl && (roll_to = roll_forward_to(env, task, rcl, errstr, errstr_size)) ==
                       UINT64_MAX) {
            eddy__cl_close(rcl);
            rcl = NULL;
        }
        if (!rcl) {
            tstate_free(warm);
            close(lockfd);
            return NULL;
        }
        uint64_t rolled = 0;
        ts = open_local(env, task, defs, ndefs, roll_to, &rolled, &lost, lerr, sizeof(lerr));
        if (!ts && !lost) {
            eddy__seterr(errstr, errstr_size, "%s", lerr);
            eddy__cl_close(rcl);
            close(lockfd);
            return NULL;
        }
        bool stale = false;
        if (ts) {
            ts->rcl = rcl;
            eddy_buf_t mark = {0};
            bool found = false;
            eddy_err_t e = eddy__rocks_get(ts->db, ts->cf_pos, MARK_KEY, 1, &mark, &found,
                                           errstr, errstr_size);
            if (!e)
                e = resync_remote(ts, found ? mark.p : NULL, found ? mark.len : 0, &stale,
                                  errstr, errstr_size);
            eddy_buf_free(&mark);
            if (!e && !stale) {
                ts->lockfd = lockfd;
                tstate_free(warm); /* its files stay, for when the task leaves */
                if (rolled && rolled != env_rolled(env, task)) {
                    env_set_rolled(env, task, rolled);
                    fprintf(stderr,
                            "eddy: state: task %d: rolled forward to commit %llu (its "
                            "transaction committed before the process died)\n",
                            task, (unsigned long long)rolled);
                }
                return ts;
            }
            tstate_free(ts);
            ts = NULL;
            if (e) {
                tstate_free(warm);
                close(lockfd);
                return NULL;
            }
        } else {
            eddy__cl_close(rcl);
            fprintf(stderr, "eddy: %s; rebuilding task %d from the Kafka changelog\n", lerr,
                    task);
        }
        char name[32];
        snprintf(name, sizeof(name), "task-%d", task);
        if (set_aside(env->dir, name, errstr, errstr_size)) {
            tstate_free(warm);
            close(lockfd);
            return NULL;
        }
    }
    bool had_copy = warm != NULL;
    ts = open_remote(env, task, defs, ndefs, warm, errstr, errstr_size);
    if (!ts && had_copy) {
        fprintf(stderr, "eddy: %s; task %d: rebuilding it from the Kafka changelog instead\n",
                errstr, task);
        ts = open_remote(env, task, defs, ndefs, NULL, errstr, errstr_size);
    }
    if (!ts) {
        close(lockfd);
        return NULL;
    }
    ts->lockfd = lockfd;
    return ts;
}


eddy_tstate_t *eddy__tstate_open(eddy_state_env_t *env, int task,
                                 const eddy_store_def_t *const *defs, int ndefs, char *errstr,
                                 size_t errstr_size) {
    eddy_tstate_t *ts = tstate_open(env, task, defs, ndefs, errstr, errstr_size);
    if (ts)
        env_set_opened(env, task);
    else
        sb_own(env, task, false);
    if (env->owned) /* the open has ended: standby copies wait a while */
        atomic_store(&env->sb_last_open_ns, eddy__now_ns());
    return ts;
}

void eddy__tstate_close(eddy_tstate_t *ts) {
    if (ts)
        sb_own(ts->env, ts->task, false);
    tstate_free(ts);
}

static void tstate_free(eddy_tstate_t *ts) {
    if (!ts)
        return;
    for (int i = 0; ts->stores && i < ts->nstores; i++)
        eddy__store_free(&ts->stores[i]);
    eddy_free(ts->stores);
    if (ts->batch)
        eddy__rocks_batch_destroy(ts->batch);
    eddy__rocks_close(ts->db);
    if (ts->cl)
        ts->cl->ops->close(ts->cl);
    eddy__cl_close(ts->rcl);
    if (ts->lockfd >= 0)
        close(ts->lockfd);
    eddy_buf_free(&ts->positions);
    eddy_free(ts->dir);
    eddy_free(ts);
}

eddy_store_t *eddy__tstate_store(eddy_tstate_t *ts, int i) {
    return i >= 0 && i < ts->nstores ? &ts->stores[i] : NULL;
}

const char *eddy__tstate_positions(const eddy_tstate_t *ts, size_t *len) {
    if (!ts->have_positions)
        return NULL;
    *len = ts->positions.len;
    return ts->positions.p;
}

void eddy__tstate_restore_stats(const eddy_tstate_t *ts, uint64_t *records, double *seconds) {
    *records = ts->restored;
    *seconds = ts->restore_s;
}

struct eddy_rocks_s *eddy__tstate_db(eddy_tstate_t *ts) { return ts->db; }

int64_t eddy__tstate_store_newest(eddy_tstate_t *ts, int i) {
    return atomic_load_explicit(&ts->stores[i].pub_newest_ms, memory_order_relaxed);
}

void eddy__tstate_store_stats(eddy_tstate_t *ts, int i, uint64_t *hits, uint64_t *misses,
                              uint64_t *restored) {
    eddy_store_t *st = &ts->stores[i];
    *hits = atomic_load_explicit(&st->pub_hits, memory_order_relaxed);
    *misses = atomic_load_explicit(&st->pub_misses, memory_order_relaxed);
    *restored = st->restored;
}
int eddy__tstate_cf(eddy_tstate_t *ts, int store) { return ts->stores[store].cf; }

/* The task's write caches share one budget (the stores' shares added up):
 * a store may grow into what the others leave unused, as the hopping
 * panes of a window do beside the small store of the step after it. */
static size_t caches_bytes(const eddy_tstate_t *ts, size_t *budget, bool *dirty) {
    size_t total = 0;
    *budget = 0;
    *dirty = false;
    for (int i = 0; i < ts->nstores; i++) {
        total += ts->stores[i].bytes;
        *budget += ts->stores[i].limit_bytes;
        *dirty |= ts->stores[i].dirty > 0;
    }
    return total;
}

bool eddy__tstate_wants_commit(const eddy_tstate_t *ts) {
    size_t budget;
    bool dirty;
    return caches_bytes(ts, &budget, &dirty) > budget && dirty;
}

/* -------------------------------------------------------------- commit */

eddy_err_t eddy__tstate_prepare(eddy_tstate_t *ts, uint64_t commit_id, const void *positions,
                                size_t plen, int64_t event_ms, char *errstr,
                                size_t errstr_size) {
    if (ts->closed_marker && !ts->closed_pending) {
        eddy_err_t e = write_commit_file2(ts->dir, "CLOSED", ts->closed_c, commit_id, errstr,
                                          errstr_size);
        if (e)
            return e;
        ts->closed_pending = true;
        ts->closed_p = commit_id;
    }
    eddy__rocks_batch_clear(ts->batch);
    for (int i = 0; i < ts->nstores; i++) {
        if (ts->stores[i].dirty || ts->stores[i].nranges)
            ts->stores[i].pend_newest_ms = event_ms;
        eddy_err_t e =
            eddy__store_flush(&ts->stores[i], ts->batch, ts->cl, ts->rcl, errstr, errstr_size);
        if (e)
            return e;
    }
    if (positions) {
        eddy__rocks_batch_put(ts->batch, ts->db, ts->cf_pos, POS_KEY, 1, positions, plen);
        ts->positions.len = 0;
        eddy_buf_put(&ts->positions, positions, plen);
        ts->have_positions = true;
    }
    uint64_t end = 0;
    eddy_err_t e = ts->cl->ops->commit(ts->cl, commit_id, positions, plen, &end, errstr,
                                       errstr_size);
    if (e)
        return e;
    /* after the local group is durable; returns once every record and the
     * marker are confirmed, so an acknowledged commit is in the topics */
    if (ts->rcl && (e = eddy__cl_commit(ts->rcl, commit_id, positions, plen, NULL, errstr,
                                        errstr_size)))
        return e;
    ts->last_commit_id = commit_id;
    ts->last_offset = end;
    ts->prepared_updates = (size_t)eddy__rocks_batch_count(ts->batch) - (positions ? 1 : 0);
    return EDDY_OK;
}

size_t eddy__tstate_prepared_updates(const eddy_tstate_t *ts) {
    return ts->prepared_updates;
}

static eddy_err_t checkpoint(eddy_tstate_t *ts, char *errstr, size_t errstr_size) {
    /* The snapshot (a RocksDB checkpoint) first flushes every column
     * family atomically, which is what makes the live store durable up to
     * this commit; no separate flush is needed. */
    eddy_err_t e;
    uint64_t sid = ts->ckpt.snapshot_id + 1;
    char snap[4200], path[4200];
    snprintf(snap, sizeof(snap), "%s/snap-%llu", ts->dir, (unsigned long long)sid);
    remove_tree(snap);
    if ((e = eddy__rocks_snapshot(ts->db, snap, errstr, errstr_size)))
        return e;
    eddy_ckpt_t c = {.commit_id = ts->last_commit_id,
                     .changelog_offset = ts->last_offset,
                     .snapshot_id = sid,
                     .created_ms = (uint64_t)eddy__wall_ms()};
    snprintf(path, sizeof(path), "%s/checkpoint", ts->dir);
    if ((e = eddy__ckpt_write(path, &c, errstr, errstr_size)))
        return e;
    /* Keep one generation back: the previous snapshot and the changelog
     * since the previous checkpoint. */
    if (sid >= 2) {
        snprintf(snap, sizeof(snap), "%s/snap-%llu", ts->dir, (unsigned long long)(sid - 2));
        remove_tree(snap);
    }
    uint64_t keep_from = ts->have_ckpt ? ts->ckpt.changelog_offset : 0;
    if (keep_from > 0 &&
        (e = ts->cl->ops->truncate_before(ts->cl, keep_from, errstr, errstr_size)))
        return e;
    ts->ckpt = c;
    ts->have_ckpt = true;
    ts->last_ckpt_ns = eddy__now_ns();
    return EDDY_OK;
}

eddy_err_t eddy__tstate_finish(eddy_tstate_t *ts, bool force_checkpoint, char *errstr,
                               size_t errstr_size) {
    if (ts->rcl) {
        size_t ml = 0;
        const void *m = ts->rcl->ops->mark(ts->rcl, &ml);
        eddy__rocks_batch_put(ts->batch, ts->db, ts->cf_pos, MARK_KEY, 1, m, ml);
    }
    eddy_err_t e = eddy__rocks_write(ts->db, ts->batch, errstr, errstr_size);
    eddy__rocks_batch_clear(ts->batch);
    if (e)
        return e;
    /* the changelog has an acknowledged group past the close (and past a
     * rolled-forward commit) again */
    if (ts->closed_marker && remove_commit_file(ts->dir, "CLOSED"))
        ts->closed_marker = ts->closed_pending = false;
    if (ts->rolled_marker && remove_commit_file(ts->dir, "ROLLED"))
        ts->rolled_marker = false;
    /* Over half the budget, the caches give back the entries unused the
     * longest, each store in proportion to its size, down to half: room
     * for the next interval's new entries before a commit is forced. */
    size_t budget;
    bool dirty;
    size_t total = caches_bytes(ts, &budget, &dirty);
    for (int i = 0; i < ts->nstores; i++) {
        eddy_store_t *st = &ts->stores[i];
        atomic_store_explicit(&st->pub_hits, st->hits, memory_order_relaxed);
        atomic_store_explicit(&st->pub_misses, st->misses, memory_order_relaxed);
        if (st->pend_newest_ms > atomic_load_explicit(&st->pub_newest_ms, memory_order_relaxed))
            atomic_store_explicit(&st->pub_newest_ms, st->pend_newest_ms, memory_order_relaxed);
        if (total > budget / 2)
            eddy__store_trim(st, (size_t)((double)st->bytes * (double)(budget / 2) / (double)total));
    }
    /* Due by time, or by the changelog a crash would have to replay: the
     * size bound is what keeps restart after a crash short whatever the
     * update rate. */
    int64_t iv = ts->env->checkpoint_interval_ms;
    bool due = iv < INT64_MAX / 1000000LL && eddy__now_ns() - ts->last_ckpt_ns >= iv * 1000000LL;
    uint64_t since = ts->last_offset - (ts->have_ckpt ? ts->ckpt.changelog_offset : 0);
    if (since >= (uint64_t)ts->env->checkpoint_max_bytes)
        due = true;
    if (force_checkpoint || due)
        return checkpoint(ts, errstr, errstr_size);
    return EDDY_OK;
}
