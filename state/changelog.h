/*
 * The changelog: every update of an operator's state store is also
 * written here, and a task's stores are restored by replaying it.
 *
 * An abstract log (a vtable) with two implementations: a Kafka topic and
 * the local append-only segment log of state/changelog.c (embedded mode).
 * One log per task holds the updates of all the task's stores, tagged by
 * store id. Updates are grouped per commit: append() buffers updates,
 * commit() appends a commit marker (commit id + the task's source
 * positions as an opaque blob) and makes the group durable. Replay applies
 * complete groups only; a torn last group is discarded, corruption before
 * the last group is an error.
 *
 * Thread: a changelog handle is used by one thread at a time (the task's
 * stream thread); implementations take no locks.
 *
 * Remote logs (the Kafka changelog, state.changelog: kafka) implement the
 * same vtable plus resync() and mark(), and are made by a remote factory
 * (eddy_cl_remote_t) that the engine hands to state/ through the state
 * conf, so state/ never sees librdkafka. A task writes its remote log in
 * addition to its local one: the local log is what a restart on the same
 * machine replays; the remote one rebuilds the task anywhere (docs/state.md).
 */
#ifndef EDDY_STATE_CHANGELOG_H
#define EDDY_STATE_CHANGELOG_H

#include "eddy_int.h" /* eddy_buf_t */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum { EDDY_CL_PUT = 1, EDDY_CL_DEL = 2, EDDY_CL_DEL_RANGE = 3 } eddy_cl_op_t;

/** Largest key + value of one update, and largest positions blob. */
#define EDDY_CL_MAX_RECORD_BYTES (64u * 1024 * 1024)

typedef struct eddy_changelog_s eddy_changelog_t;
typedef struct eddy_cl_state_s eddy_cl_state_t;

/** Called by replay for each update; key/val are borrowed for the call. */
typedef eddy_err_t (*eddy_cl_update_cb_t)(void *opaque, uint16_t store, eddy_cl_op_t op,
                                          const char *key, size_t klen, const char *val,
                                          size_t vlen);
/** Called by replay after the updates of each commit group; positions are
 *  borrowed for the call. */
typedef eddy_err_t (*eddy_cl_commit_cb_t)(void *opaque, uint64_t commit_id, const char *positions,
                                          size_t plen);

typedef struct eddy_changelog_ops_s {
    const char *name; /* "local", "kafka" */
    /**
     * Buffer one update of store `store` (not durable until commit).
     * PUT: key, val. DEL: key, vlen must be 0. DEL_RANGE: key = from, val = to.
     * @returns EDDY_OK; EDDY_ERR_INVAL (bad op, NULL data with a length,
     *          key + value over EDDY_CL_MAX_RECORD_BYTES); EDDY_ERR_STATE
     *          (log failed or must be replayed first). The reason is in
     *          cl->errstr. A rejected update is not buffered.
     */
    eddy_err_t (*append)(eddy_changelog_t *cl, uint16_t store, eddy_cl_op_t op, const void *key,
                         size_t klen, const void *val, size_t vlen);
    /**
     * Append the commit marker (commit_id, positions) after the buffered
     * updates and make the group durable. On EDDY_OK the commit is durable
     * and *end_offset (may be NULL) is the log offset just after it.
     * commit_id must be > 0 (0 means "no commit") and greater than the
     * last commit id written or replayed by this handle (EDDY_ERR_INVAL).
     * A group may hold no updates.
     * @returns EDDY_ERR_IO (with path and strerror) when the write or sync
     *          failed. After a failed write the log is rolled back to the
     *          previous commit and the buffered updates are kept, so commit
     *          may be retried (e.g. after ENOSPC); after a failed fsync, or
     *          when the rollback failed, the handle refuses further writes
     *          (EDDY_ERR_STATE): close, reopen and replay.
     */
    eddy_err_t (*commit)(eddy_changelog_t *cl, uint64_t commit_id, const void *positions,
                         size_t plen, uint64_t *end_offset, char *errstr, size_t errstr_size);
    /**
     * Replay complete groups from `from_offset` (0, start_offset(), or an
     * offset returned by commit) up to and including commit id `upto`
     * (UINT64_MAX = all). Calls on_update for each update of a group, then
     * on_commit (either may be NULL). A group is checked whole before any
     * of its updates is passed on. A torn tail (the last group incomplete
     * or damaged, garbage after it) and every group with a commit id above
     * `upto` are truncated away. Corruption before the last group, a
     * missing or short segment, a from_offset that is not a group boundary
     * -> EDDY_ERR_IO / EDDY_ERR_INVAL and nothing is truncated, e.g.
     * "changelog /dir/seg-00000000000000001234.log: bad checksum at offset
     * 1234 (byte 0 of the segment, not the tail): valid data follows".
     * from_offset before start_offset() -> EDDY_ERR_NOENT. A callback error
     * stops the replay and is returned.
     * *last_commit_id: the last commit id replayed (0 when none from
     * from_offset); *end_offset: the log end after replay. Both may be NULL.
     * After a successful replay, appends continue at the end; after a
     * failed one, appends are refused until a replay succeeds.
     */
    eddy_err_t (*replay)(eddy_changelog_t *cl, uint64_t from_offset, uint64_t upto,
                         eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit, void *opaque,
                         uint64_t *last_commit_id, uint64_t *end_offset, char *errstr,
                         size_t errstr_size);
    /** Drop whole segments that end at or before offset (state up to there
     *  is safe elsewhere). The segment being written is never dropped. */
    eddy_err_t (*truncate_before)(eddy_changelog_t *cl, uint64_t offset, char *errstr,
                                  size_t errstr_size);
    /** Offset just after the last durable commit. */
    uint64_t (*end_offset)(eddy_changelog_t *cl);
    /** First retained offset (moves with truncate_before). */
    uint64_t (*start_offset)(eddy_changelog_t *cl);
    /** Close; buffered, uncommitted updates are dropped. */
    void (*close)(eddy_changelog_t *cl);
    /* ---- remote logs only (NULL in the local log) ---- */
    /**
     * Bring the log in line with the task's restored state before the
     * first commit: afterwards, replaying the log yields exactly that
     * state and these positions, whatever was written after the last
     * acknowledged commit (failed or unacknowledged commits, another
     * writer). `mark` is what mark() returned when the state was last
     * committed (stored with the state; NULL/0 when unknown: the log is
     * then seeded from the whole state). commit_id and positions describe
     * the restored state. Reads the state through `state`.
     * *stale is set (and nothing written) when the log's last commit since
     * the mark was made by another writer: the state is behind the log
     * (the task ran elsewhere since) and should be rebuilt from it.
     * @returns EDDY_OK; EDDY_ERR_IO (broker unreachable, delivery failed);
     *          EDDY_ERR_STATE (the log lost records after the mark).
     */
    eddy_err_t (*resync)(eddy_changelog_t *cl, const void *mark, size_t mlen, uint64_t commit_id,
                         const void *positions, size_t plen, const eddy_cl_state_t *state,
                         bool *stale, char *errstr, size_t errstr_size);
    /** How far the log is known to match the state after the last commit,
     *  replay or resync (opaque; store it with the state, give it back to
     *  resync()). Borrowed until the next call on the handle. */
    const void *(*mark)(eddy_changelog_t *cl, size_t *len);
    /**
     * Standby replicas (docs/scaleout.md): apply the commits written after
     * `mark` (what mark() returned after the last catch_up or replay;
     * NULL/0: from the start) up to the last commit marker, calling
     * on_update for each record and on_commit once with the last commit's
     * positions (not at all when no commit followed the mark). Records
     * after the last marker are never applied. *applied: records applied.
     * Afterwards mark() says how far the state has come.
     */
    eddy_err_t (*catch_up)(eddy_changelog_t *cl, const void *mark, size_t mlen,
                           eddy_cl_update_cb_t on_update, eddy_cl_commit_cb_t on_commit,
                           void *opaque, uint64_t *applied, char *errstr, size_t errstr_size);
    /**
     * Where a replay or catch-up of store `store`'s topic partition stands
     * (NULL in implementations without one; thread: any, while the handle
     * is open): *offset the next offset to apply (-1: not known yet),
     * *end the offset it is heading for (during a replay: the end the last
     * commit marker names, or the partition's end before the marker is
     * found; after it: the partition's end when it was read). false when
     * store is out of range.
     */
    bool (*progress)(eddy_changelog_t *cl, int store, const char **topic, int *partition,
                     int64_t *offset, int64_t *end);
    /**
     * The commit the log ends with, as a reader sees it (nothing follows
     * its marker in any store's log): *found, its id, and whether this
     * handle's writer wrote it (*ours). *found false when records follow
     * the last marker, or it is not near the end (a restart then rolls
     * back as usual). Used at task open to roll a commit whose marker
     * went out in a committed transaction forward (docs/kafka.md).
     */
    eddy_err_t (*tail)(eddy_changelog_t *cl, bool *found, uint64_t *commit_id, bool *ours,
                       char *errstr, size_t errstr_size);
} eddy_changelog_ops_t;

/** Implementations embed this first. */
struct eddy_changelog_s {
    const eddy_changelog_ops_t *ops;
    char errstr[256]; /**< why the last append() failed (append has no errstr) */
};

/**
 * @brief Open (creating dir and missing parents) the local segment log of
 *        one task. Files are seg-<20-digit base offset>.log; a new segment
 *        is started when the current one has reached segment_bytes (at a
 *        commit boundary). Offsets are logical byte offsets across
 *        segments: base offset + position in the segment.
 * @returns NULL with the reason in errstr: bad segment_bytes, I/O errors,
 *          the directory in use by another open handle (flock), a missing
 *          or short segment between the first and the last.
 * @remark Opening does not replay. When the log holds data, replay before
 *         appending (commit returns EDDY_ERR_STATE otherwise): replay is
 *         what finds and removes a torn tail.
 */
eddy_changelog_t *eddy__changelog_local_open(const char *dir, int64_t segment_bytes, char *errstr,
                                             size_t errstr_size);

/** Test hooks of the local log: replace pwrite()/fdatasync() of segment
 *  files (e.g. to write into /dev/full or fail after a partial write).
 *  A NULL member uses the system call. */
typedef struct eddy_cl_local_hooks_s {
    ssize_t (*pwrite)(void *opaque, int fd, const void *buf, size_t len, off_t off);
    int (*fdatasync)(void *opaque, int fd);
    void *opaque;
} eddy_cl_local_hooks_t;

/** @brief Install (hooks != NULL) or remove (NULL) test hooks on a log
 *         opened with eddy__changelog_local_open(). */
void eddy__changelog_local_set_hooks(eddy_changelog_t *cl, const eddy_cl_local_hooks_t *hooks);

/* ------------------------------------------------------ remote changelogs */

/** Read access to a task's restored state, for resync(). Called on the
 *  caller's thread during resync() only. */
struct eddy_cl_state_s {
    /** The value of key in store; *found false when absent. val is reset
     *  and filled. */
    eddy_err_t (*get)(void *opaque, uint16_t store, const char *key, size_t klen, eddy_buf_t *val,
                      bool *found, char *errstr, size_t errstr_size);
    /** Call emit(PUT) for every entry of store, in key order. */
    eddy_err_t (*scan)(void *opaque, uint16_t store, eddy_cl_update_cb_t emit, void *emit_opaque,
                       char *errstr, size_t errstr_size);
    void *opaque;
};

/**
 * A remote changelog service, made once per engine from the topology
 * (connectors/kafka_changelog.c: eddy__kafka_changelog_new()) and owned by
 * the plan. It knows the application, the stores (in the order the tasks
 * open them) and the task count.
 */
typedef struct eddy_cl_remote_s eddy_cl_remote_t;
struct eddy_cl_remote_s {
    const char *name; /* "kafka" */
    /** Once, before the first open (engine start): connect, create or
     *  check the topics. Thread: the engine's creator. */
    eddy_err_t (*setup)(eddy_cl_remote_t *r, char *errstr, size_t errstr_size);
    /** The log of one task. writer_id identifies the state directory that
     *  writes it (its commit ids mean something only with it). Thread:
     *  the thread opening the task; handles of different tasks may be used
     *  from different threads at once. */
    eddy_changelog_t *(*open)(eddy_cl_remote_t *r, int task, uint64_t writer_id, char *errstr,
                              size_t errstr_size);
    /** After every handle is closed. NULL-safe through the wrapper. */
    void (*destroy)(eddy_cl_remote_t *r);
    int tasks;                 /* partitions of every changelog topic */
    int nstores;
    const char *const *stores; /* store names, in the tasks' order */
};

static inline void eddy__cl_remote_destroy(eddy_cl_remote_t *r) {
    if (r)
        r->destroy(r);
}

/* ------------------------------------------------------------- wrappers */

static inline eddy_err_t eddy__cl_append(eddy_changelog_t *cl, uint16_t store, eddy_cl_op_t op,
                                         const void *key, size_t klen, const void *val,
                                         size_t vlen) {
    return cl->ops->append(cl, store, op, key, klen, val, vlen);
}
static inline eddy_err_t eddy__cl_commit(eddy_changelog_t *cl, uint64_t commit_id,
                                         const void *positions, size_t plen, uint64_t *end_offset,
                                         char *errstr, size_t errstr_size) {
    return cl->ops->commit(cl, commit_id, positions, plen, end_offset, errstr, errstr_size);
}
static inline eddy_err_t eddy__cl_replay(eddy_changelog_t *cl, uint64_t from_offset, uint64_t upto,
                                         eddy_cl_update_cb_t on_update,
                                         eddy_cl_commit_cb_t on_commit, void *opaque,
                                         uint64_t *last_commit_id, uint64_t *end_offset,
                                         char *errstr, size_t errstr_size) {
    return cl->ops->replay(cl, from_offset, upto, on_update, on_commit, opaque, last_commit_id,
                           end_offset, errstr, errstr_size);
}
static inline eddy_err_t eddy__cl_truncate_before(eddy_changelog_t *cl, uint64_t offset,
                                                  char *errstr, size_t errstr_size) {
    return cl->ops->truncate_before(cl, offset, errstr, errstr_size);
}
static inline uint64_t eddy__cl_end_offset(eddy_changelog_t *cl) {
    return cl->ops->end_offset(cl);
}
static inline uint64_t eddy__cl_start_offset(eddy_changelog_t *cl) {
    return cl->ops->start_offset(cl);
}
/** Why the last append() failed; borrowed, valid until the next call. */
static inline const char *eddy__cl_errstr(const eddy_changelog_t *cl) {
    return cl->errstr;
}
/** NULL-safe. */
static inline void eddy__cl_close(eddy_changelog_t *cl) {
    if (cl)
        cl->ops->close(cl);
}

#endif /* EDDY_STATE_CHANGELOG_H */
