/*
 * Per-task state: the task's RocksDB (one column family per store plus one
 * for source positions), its changelog and its checkpoint; restore on open,
 * the two commit phases, periodic checkpoints. And the engine-wide state
 * environment: directory, memory budget, the globally committed id.
 */
#ifndef EDDY_TSTATE_H
#define EDDY_TSTATE_H

#include "store.h"

typedef struct eddy_state_env_s eddy_state_env_t;

typedef struct eddy_state_conf_s {
    const char *dir;               /* state.dir */
    const char *application;
    int64_t memory_bytes;          /* state.memory.max.bytes */
    int64_t checkpoint_interval_ms;
    int64_t checkpoint_max_bytes;  /* also checkpoint after this much changelog (0: 16 MiB) */
    int64_t segment_bytes;         /* changelog segment size */
    int ntasks;
    int nstores;                   /* per task, for the cache split */
    /* state.changelog: kafka: the remote changelog every task also writes
     * and rebuilds from when its local state is missing or unusable
     * (docs/state.md). Borrowed: outlives the env. NULL: local only. */
    struct eddy_cl_remote_s *remote;
    /* standby.replicas: with a remote changelog, > 0 keeps warm copies of
     * the tasks not open here (docs/scaleout.md) */
    int standby_replicas;
    /* a task whose remote changelog ends with this directory's marker of
     * a commit after COMMITTED takes that commit (its local group) instead
     * of rolling it back: the marker went out in the round's committed
     * transaction with its output (exactly_once with the changelog in the
     * transaction, every exchange through repartition topics or none;
     * docs/kafka.md "Rolling forward") */
    bool roll_forward;
} eddy_state_conf_t;

eddy_state_env_t *eddy__state_env_new(const eddy_state_conf_t *conf, char *errstr,
                                      size_t errstr_size);
void eddy__state_env_destroy(eddy_state_env_t *env);
/** The last commit id acknowledged by every task (the COMMITTED marker). */
uint64_t eddy__state_env_committed(const eddy_state_env_t *env);
/** The highest commit a task rolled forward to (conf roll_forward; 0:
 *  none): the engine numbers its rounds above it. Thread: any. */
uint64_t eddy__state_env_rolled(const eddy_state_env_t *env);
/** Transactional ids (stream threads) that runs of this state directory
 *  have used under exactly_once: the highest count recorded (file
 *  TXN_THREADS), 0 when none. A run with fewer threads fences the ids
 *  above its own (docs/kafka.md, "Rolling forward"). */
int eddy__state_env_txn_threads(const eddy_state_env_t *env);
/** Turns roll-forward off (before any task opens). */
void eddy__state_env_no_roll_forward(eddy_state_env_t *env);
/** Record (durably, before any transaction of the run) that this run uses
 *  n transactional ids; the file keeps the highest count. */
eddy_err_t eddy__state_env_record_txn_threads(eddy_state_env_t *env, int n, char *errstr,
                                              size_t errstr_size);
/** Make commit id n the acknowledged one (atomic, durable). */
/** Stores close without flushing from now on (the engine failed, perhaps
 *  on a full disk; the changelog holds what they hold). */
void eddy__state_env_no_close_flush(eddy_state_env_t *env);
eddy_err_t eddy__state_env_mark(eddy_state_env_t *env, uint64_t n, char *errstr,
                                size_t errstr_size);
const char *eddy__state_env_dir(const eddy_state_env_t *env);
int64_t eddy__state_env_budget(const eddy_state_env_t *env);
int64_t eddy__state_env_usage(const eddy_state_env_t *env);

/** Standby replicas (docs/scaleout.md): whether this instance keeps a
 *  copy of task (one it does not run) when each task has `replicas`
 *  copies: 1 yes, 0 no (a copy kept is dropped after a few seconds), -1
 *  not known now (a copy kept goes on, none is started). Called from the
 *  standby thread. */
typedef int (*eddy_standby_choice_t)(void *opaque, int task, int replicas);
/** Set (or clear, fn NULL) the choice; without one every task not run
 *  here has a copy. Returns after any call of the previous one ended. */
void eddy__state_env_set_standby_choice(eddy_state_env_t *env, eddy_standby_choice_t fn,
                                        void *opaque);

/** Where the restore of a task from the remote changelog stands, per
 *  changelog topic partition. */
typedef struct eddy_restore_progress_s {
    char topic[256];
    int partition;
    int64_t offset;     /* the next offset to apply; -1 not known yet */
    int64_t end_offset; /* the offset the restore heads for; -1 not known */
} eddy_restore_progress_t;
/** The task's restore, while one runs (out[] of up to max, one per
 *  store); 0 when none runs or the changelog cannot say. Thread: any. */
int eddy__state_restore_progress(eddy_state_env_t *env, int task, eddy_restore_progress_t *out,
                                 int max);
/** A key of store (its name) from this instance's standby copy of task:
 *  EDDY_ERR_NOENT when no copy is kept here (or none has caught up yet);
 *  else the RocksDB get's result, with *lag the changelog records after
 *  the copy's position when it last caught up (-1 unknown) and *age_ms
 *  how long ago that was. Thread: any. */
eddy_err_t eddy__state_standby_get(eddy_state_env_t *env, int task, const char *store,
                                   const void *key, size_t klen, eddy_buf_t *val, bool *found,
                                   int64_t *lag, int64_t *age_ms);

/** Open (and restore) task `task`'s state with the given stores. With a
 *  remote changelog: a task without a usable local state is rebuilt from
 *  it, and the remote log is brought in line with the restored state
 *  before this returns. */
eddy_tstate_t *eddy__tstate_open(eddy_state_env_t *env, int task,
                                 const eddy_store_def_t *const *defs, int ndefs, char *errstr,
                                 size_t errstr_size);
void eddy__tstate_close(eddy_tstate_t *ts);
/** After the task's last commit was acknowledged and before closing it:
 *  record (durably) that it closed cleanly at that commit, so commits
 *  made while it stays closed (its partition elsewhere) are not mistaken
 *  for lost state when it opens again. */
eddy_err_t eddy__tstate_mark_closed(eddy_tstate_t *ts, char *errstr, size_t errstr_size);
/** An in-process recovery closes the task without committing: record
 *  (durably) its last acknowledged commit, so the group of the failed
 *  round, whose output and transaction were aborted, is not replayed when
 *  it opens again (after later rounds were acknowledged without it). */
eddy_err_t eddy__tstate_mark_aborted(eddy_tstate_t *ts, char *errstr, size_t errstr_size);
/** An in-process recovery after round `commit` failed although the
 *  transaction that holds this task's Kafka changelog records of it
 *  committed (another thread's failed): the task keeps that round, as a
 *  roll-forward (docs/kafka.md "Rolling forward"). Records it durably
 *  (ROLLED) for every later open, until its next acknowledged commit.
 *  Call before eddy__tstate_mark_aborted(). Does nothing unless the env
 *  rolls forward and the task prepared `commit` (its local group is
 *  durable). */
eddy_err_t eddy__tstate_mark_rolled(eddy_tstate_t *ts, uint64_t commit, char *errstr,
                                    size_t errstr_size);
eddy_store_t *eddy__tstate_store(eddy_tstate_t *ts, int i);
/** Source positions of the restored commit (NULL when none). */
const char *eddy__tstate_positions(const eddy_tstate_t *ts, size_t *len);
/** Phase 1: dirty caches and positions into the batch and the changelog;
 *  durable on return. event_ms: the newest event time processed before
 *  this commit (the freshness of the stores it changes). */
eddy_err_t eddy__tstate_prepare(eddy_tstate_t *ts, uint64_t commit_id, const void *positions,
                                size_t plen, int64_t event_ms, char *errstr,
                                size_t errstr_size);
/** Store updates in the batch the last prepare built (positions not
 *  counted): whether the round changed this task's state. */
size_t eddy__tstate_prepared_updates(const eddy_tstate_t *ts);
/** Freshness of store i: event_ms of the last commit that changed it and
 *  reached RocksDB (INT64_MIN: none since start). Thread: any. */
int64_t eddy__tstate_store_newest(eddy_tstate_t *ts, int i);
/** Phase 2 (after the commit is acknowledged): write the batch to RocksDB;
 *  checkpoint when due (force: now). */
eddy_err_t eddy__tstate_finish(eddy_tstate_t *ts, bool force_checkpoint, char *errstr,
                               size_t errstr_size);
/** The task's caches are over their shared budget with dirty entries:
 *  commit early. */
bool eddy__tstate_wants_commit(const eddy_tstate_t *ts);
/** Records replayed at the last restore, and how long it took. */
void eddy__tstate_restore_stats(const eddy_tstate_t *ts, uint64_t *records, double *seconds);
/** Cache counters as of the last commit, and records restored. Thread: any. */
void eddy__tstate_store_stats(eddy_tstate_t *ts, int i, uint64_t *hits, uint64_t *misses,
                              uint64_t *restored);
/** For queries from other threads (committed state). */
struct eddy_rocks_s *eddy__tstate_db(eddy_tstate_t *ts);
int eddy__tstate_cf(eddy_tstate_t *ts, int store);

#endif
