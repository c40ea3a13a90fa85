/*
 * RocksDB behind eddy's state stores: one RocksDB instance per task, one
 * column family (CF) per store, WriteBatches written once per commit with the
 * WAL disabled (eddy's changelog gives durability), and one engine-wide
 * memory budget shared by the block cache and the memtables of every task.
 * Only this folder talks to RocksDB (through its C API) and translates its
 * status strings into eddy errors. Why it is tuned the way it is: the comment
 * at the top of state/rocks.c.
 *
 * Threads: an env and a DB handle may be used from any thread (RocksDB is
 * internally synchronised); a batch or an iterator is used by one thread at
 * a time. Every iterator of a DB must be destroyed before eddy__rocks_close()
 * and every DB closed before eddy__rocks_env_destroy().
 */
#ifndef EDDY_STATE_ROCKS_H
#define EDDY_STATE_ROCKS_H

#include "eddy_int.h"

/** Smallest accepted engine-wide budget. */
#define EDDY_ROCKS_MIN_BUDGET_BYTES ((int64_t)16 << 20)
/** Smallest memtable share of one task's DB (RocksDB's own floor is 64 KiB
 *  per memtable; below this the DB would write tiny files non-stop). */
#define EDDY_ROCKS_MIN_MEMTABLE_BYTES_PER_DB ((int64_t)256 << 10)

/* ------------------------------------------------------------------- env */

typedef struct eddy_rocks_env_s eddy_rocks_env_t;

/**
 * @brief Engine-wide RocksDB resources: the shared LRU block cache and the
 *        static split of the budget between cache and per-task memtables.
 * @param budget_bytes the part of state.memory.max.bytes given to RocksDB;
 *                     >= EDDY_ROCKS_MIN_BUDGET_BYTES.
 * @param ntasks       number of task DBs that will be open at once (>= 1);
 *                     each gets 1/ntasks of the memtable half.
 * @returns NULL with the reason in errstr when the budget is too small or
 *          ntasks < 1.
 */
eddy_rocks_env_t *eddy__rocks_env_new(int64_t budget_bytes, int ntasks, char *errstr,
                                      size_t errstr_size);
/** @brief Free the env. Every DB opened on it must be closed. NULL-safe. */
void eddy__rocks_env_destroy(eddy_rocks_env_t *env);
/** @brief Block cache capacity in bytes. */
int64_t eddy__rocks_env_cache_bytes(const eddy_rocks_env_t *env);
/** @brief Memtable share of each task's DB in bytes (active + flushing). */
int64_t eddy__rocks_env_memtable_bytes_per_db(const eddy_rocks_env_t *env);
/**
 * @brief Memory RocksDB holds now: block cache usage (data, index and filter
 *        blocks) + memtables + table readers of every open DB, from
 *        RocksDB's own counters.
 * @remark Thread: any.
 */
int64_t eddy__rocks_env_usage_bytes(const eddy_rocks_env_t *env);
/**
 * @brief Name of the SST compression in effect ("LZ4" or "none"): LZ4 is
 *        used when this RocksDB build links it, otherwise none.
 * @remark Borrowed static string.
 */
const char *eddy__rocks_env_compression(const eddy_rocks_env_t *env);
/**
 * @brief Test hook: ask for another compression for the non-hot levels
 *        (RocksDB's rocksdb_*_compression numbering), e.g. one this build
 *        lacks, to exercise the fallback. Affects DBs opened afterwards.
 */
void eddy__rocks_env_set_compression(eddy_rocks_env_t *env, int rocksdb_compression);

/* -------------------------------------------------------------------- db */

typedef struct eddy_rocks_s eddy_rocks_t;

/**
 * @brief Open (create if missing) the DB in directory dir.
 * @param cf_names the store CFs, created if missing; they get indices
 *        0..ncf-1 in this order. CFs found on disk but not named are opened
 *        too (and kept) and get the following indices, as does "default"
 *        when not named. Names must be non-empty and distinct.
 * @returns NULL with e.g. "state: cannot open RocksDB at /x/task-0/db: IO
 *          error: ...: Permission denied" in errstr.
 * @remark The DB keeps env borrowed: env must outlive it.
 */
eddy_rocks_t *eddy__rocks_open(eddy_rocks_env_t *env, const char *dir, const char *const *cf_names,
                               int ncf, char *errstr, size_t errstr_size);
/**
 * @brief Close the DB. The memtables are flushed first (atomically; a
 *        failure is printed, not returned: call eddy__rocks_flush() before
 *        closing to know that everything reached disk), unless
 *        eddy__rocks_env_no_close_flush() was called. NULL-safe.
 */
void eddy__rocks_close(eddy_rocks_t *db);
/**
 * @brief From now on the env's DBs close without flushing: the state
 *        directory failed (a full disk), and a flush there would meet the
 *        failure again (RocksDB 7.8 aborts on it). What the memtables held
 *        is in the changelog.
 */
void eddy__rocks_env_no_close_flush(eddy_rocks_env_t *env);
/** @brief Index of the CF called name, or -1. */
int eddy__rocks_cf(const eddy_rocks_t *db, const char *name);
/** @brief Number of CFs open (named + found on disk + "default"). */
int eddy__rocks_ncf(const eddy_rocks_t *db);
/** @brief Name of CF cf (borrowed, valid until close). */
const char *eddy__rocks_cf_name(const eddy_rocks_t *db, int cf);
/** @brief The DB directory (borrowed, valid until close). */
const char *eddy__rocks_dir(const eddy_rocks_t *db);

/**
 * @brief Remove a DB directory and everything in it (before a full
 *        restore). A missing dir is not an error. The DB must not be open.
 */
eddy_err_t eddy__rocks_destroy_dir(const char *dir, char *errstr, size_t errstr_size);

/**
 * @brief Point get.
 * @param val overwritten (val->len set), not appended, when found.
 * @param found set to false when the key is absent (EDDY_OK then).
 * @returns EDDY_ERR_IO with RocksDB's text and the path on a read error.
 * @remark Thread: any.
 */
eddy_err_t eddy__rocks_get(eddy_rocks_t *db, int cf, const void *key, size_t klen, eddy_buf_t *val,
                           bool *found, char *errstr, size_t errstr_size);

/* ----------------------------------------------------------------- batch */

/** Updates to one DB, applied atomically (across CFs) by eddy__rocks_write().
 *  All updates of a batch must name the same DB. */
typedef struct eddy_rocks_batch_s eddy_rocks_batch_t;

eddy_rocks_batch_t *eddy__rocks_batch_new(void);
/** @brief Put k -> v into CF cf (k and v are copied). */
void eddy__rocks_batch_put(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *k,
                           size_t kl, const void *v, size_t vl);
/** @brief Delete k from CF cf. */
void eddy__rocks_batch_del(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *k,
                           size_t kl);
/** @brief Delete every key in [from, to) of CF cf (one range tombstone). */
void eddy__rocks_batch_del_range(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *from,
                                 size_t fl, const void *to, size_t tl);
/** @brief Number of updates (a range delete counts one). */
int eddy__rocks_batch_count(const eddy_rocks_batch_t *b);
/** @brief Bytes the batch holds (its RocksDB representation). */
size_t eddy__rocks_batch_bytes(const eddy_rocks_batch_t *b);
/** @brief Empty the batch for reuse (keeps its memory). */
void eddy__rocks_batch_clear(eddy_rocks_batch_t *b);
/** @brief NULL-safe. */
void eddy__rocks_batch_destroy(eddy_rocks_batch_t *b);

/**
 * @brief Apply the batch atomically, WAL disabled: until the memtables are
 *        flushed (eddy__rocks_flush(), a full memtable, or a clean close)
 *        the updates live only in memory and a crash loses them.
 * @param b unchanged by the call (clear it to reuse it). An empty batch is
 *        a no-op.
 * @returns EDDY_ERR_IO with RocksDB's text and the path (disk full after a
 *          failed flush, ...).
 * @remark Thread: the task's stream thread (the DB's one writer).
 */
eddy_err_t eddy__rocks_write(eddy_rocks_t *db, eddy_rocks_batch_t *b, char *errstr,
                             size_t errstr_size);

/* -------------------------------------------------------------- iterator */

/**
 * Iterator over the keys of one CF in [lower, upper), in byte order. It sees
 * the DB as of its creation (RocksDB's implicit snapshot), so another thread
 * may use it while the owner keeps writing. It pins the memtables and files
 * of that moment: do not keep it for long.
 */
typedef struct eddy_rocks_iter_s eddy_rocks_iter_t;

/**
 * @brief New iterator, not yet positioned (valid() is false until a seek).
 * @param lower NULL: from the first key. Copied.
 * @param upper NULL: to the end. Copied; exclusive.
 */
eddy_rocks_iter_t *eddy__rocks_iter_new(eddy_rocks_t *db, int cf, const void *lower, size_t ll,
                                        const void *upper, size_t ul);
/** @brief Position at the first key >= k (and >= lower). */
void eddy__rocks_iter_seek(eddy_rocks_iter_t *it, const void *k, size_t kl);
/** @brief Position at the first key of the range. */
void eddy__rocks_iter_seek_first(eddy_rocks_iter_t *it);
/** @brief Position at the last key of the range. */
void eddy__rocks_iter_seek_last(eddy_rocks_iter_t *it);
/** @brief Position at the last key <= k (and < upper). */
void eddy__rocks_iter_seek_for_prev(eddy_rocks_iter_t *it, const void *k, size_t kl);
bool eddy__rocks_iter_valid(eddy_rocks_iter_t *it);
void eddy__rocks_iter_next(eddy_rocks_iter_t *it);
void eddy__rocks_iter_prev(eddy_rocks_iter_t *it);
/** @brief Current key/value; borrowed until the iterator moves or dies. */
const char *eddy__rocks_iter_key(eddy_rocks_iter_t *it, size_t *len);
const char *eddy__rocks_iter_value(eddy_rocks_iter_t *it, size_t *len);
/** @brief EDDY_ERR_IO when the iteration stopped on an error (valid() is
 *         then false), EDDY_OK at a plain end. */
eddy_err_t eddy__rocks_iter_status(eddy_rocks_iter_t *it, char *errstr, size_t errstr_size);
/** @brief NULL-safe. */
void eddy__rocks_iter_destroy(eddy_rocks_iter_t *it);

/* ------------------------------------------------- durability, snapshots */

/**
 * @brief Flush the memtables of all CFs to SST files, as one atomic step
 *        (a crash never leaves one CF flushed and another not), and wait.
 *        Everything written so far then survives a crash.
 * @remark Thread: the DB's writer.
 */
eddy_err_t eddy__rocks_flush(eddy_rocks_t *db, char *errstr, size_t errstr_size);
/**
 * @brief A consistent on-disk copy of the DB (RocksDB checkpoint: memtables
 *        flushed first, SST files hard-linked where possible) that opens as
 *        a DB. dir must not exist.
 */
eddy_err_t eddy__rocks_snapshot(eddy_rocks_t *db, const char *dir, char *errstr,
                                size_t errstr_size);

/* --------------------------------------------------------------- metrics */

/** @brief Estimated number of keys of CF cf ("rocksdb.estimate-num-keys"). */
uint64_t eddy__rocks_estimate_keys(eddy_rocks_t *db, int cf);
/** @brief Live SST bytes + memtable bytes of CF cf. */
uint64_t eddy__rocks_size_bytes(eddy_rocks_t *db, int cf);
/** @brief Memtable bytes of all CFs of the DB (active + flushing). */
uint64_t eddy__rocks_memtable_bytes(eddy_rocks_t *db);

#endif /* EDDY_STATE_ROCKS_H */
