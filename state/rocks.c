/*
 * eddy's state in RocksDB, through the C API of RocksDB 7.8 (Debian 12).
 *
 * Layout. One RocksDB instance per task (a directory per task) and one
 * column family (CF) per store of the task, plus the CF the caller names for
 * source positions. Stores of one task share a DB so that one WriteBatch can
 * update all of them and the source positions atomically at each commit.
 *
 * Durability. Every write disables the WAL: eddy's own changelog is the
 * durable log, and logging every update twice would halve write throughput.
 * The price is that RocksDB alone cannot recover memtable contents after a
 * crash; what reaches disk is what a flush wrote. So the DB runs with
 * atomic_flush: every flush (ours, a full memtable, a clean close) cuts all
 * CFs at the same batch boundary and records them in one MANIFEST edit. The
 * on-disk state after a crash is therefore always the state as of some whole
 * commit, across all stores and the source positions, and eddy replays its
 * changelog from the positions found there. The 7.8 C API has no call that
 * flushes several CFs at once (rocksdb_flush_cf flushes one, even under
 * atomic_flush), but a checkpoint flushes all CFs atomically before it links
 * the files; eddy__rocks_flush() makes a checkpoint into a scratch directory
 * inside the DB directory and deletes it again (hard links: a few syscalls
 * per SST plus a copy of the MANIFEST, which max_manifest_file_size keeps
 * small). Measured on the 2-core build VM: 15-25 ms for a small flush of 4
 * CFs, against 7-20 ms for four separate, non-atomic rocksdb_flush_cf calls.
 *
 * Memory: one budget (state.memory.max.bytes) for the whole engine, however
 * many tasks there are. Half goes to memtables, half to one LRU block cache
 * shared by every DB.
 *  - Memtables: each task's DB gets memtable_budget / ntasks ("share"). The
 *    C API has no WriteBufferManager to share, so the split is static: each
 *    DB gets its own limit through db_write_buffer_size. RocksDB counts only
 *    active (mutable) memtables against db_write_buffer_size and flushes when
 *    they pass 7/8 of it; memtables already switched and being flushed count
 *    extra. With max_write_buffer_number = 2 a CF holds at most one active
 *    and one flushing memtable (writes stall rather than make a third), so
 *    db_write_buffer_size = share / 2 keeps active + flushing within the
 *    share, whatever the number of CFs. Each CF's own write_buffer_size is
 *    also share / 2, so one busy store may use the whole active half rather
 *    than a fixed 1/ncf of it; with atomic_flush a flush switches every CF
 *    anyway. (A memtable takes a write batch whole, so it can pass its limit
 *    by the size of the last batch.) In the unit test (2 MiB share, 4 CFs,
 *    skewed writes) memtables peak at 1.03 MB; with db_write_buffer_size =
 *    share they reach 2.04 MB, and without atomic_flush (RocksDB then
 *    flushes only the largest CF) 3.3 MB, 1.6x the share.
 *  - Block cache: index and filter blocks live in the cache
 *    (cache_index_and_filter_blocks, high priority so data blocks are
 *    evicted first) instead of beside it, so they count against the budget.
 *    Index and filters are partitioned (two-level index, 4 KiB partitions)
 *    so that no single cached block is large: a big SST no longer means a
 *    multi-MiB filter block that must sit whole in a small cache. The cache
 *    is "strict-ish": RocksDB's strict_capacity_limit is off, because with
 *    it an insert into a cache full of pinned blocks fails the Get or
 *    iterator that needed the block ("Insert failed due to LRU cache being
 *    full"), which would fail the task; without it the cache exceeds its
 *    capacity only by the blocks pinned at that instant (an iterator's
 *    current blocks, top-level index partitions, L0 filters) and evicts
 *    down to capacity as they are released. Few shards (>= 4 MiB each): the
 *    machine has 2 cores, so lock contention is low, and big shards keep
 *    one hot shard from evicting while others sit empty.
 *
 * Workload: write-heavy, point gets, prefix range scans.
 *  - 10 bits/key full Bloom filters (~1% false positives) so a get of an
 *    absent key usually reads no data block, plus a small memtable Bloom
 *    (2% of the memtable) for whole keys.
 *  - Data blocks carry a hash index (binary_search_and_hash) so a point get
 *    inside a cached block is a hash probe, not a binary search.
 *  - Compression: values are small, so gains are modest and CPU matters. L0
 *    and the base level (rewritten most often, and the hottest for reads)
 *    are uncompressed; deeper levels use LZ4 (cheap to decompress). The
 *    build is probed by opening: if RocksDB reports the compression as not
 *    linked in, the env switches to no compression for good and the open is
 *    retried (Debian's librocksdb7.8 links LZ4, Snappy, Zstd, zlib, bz2).
 *  - Level compaction with level_compaction_dynamic_level_bytes: level sizes
 *    follow the data, keeping space amplification near 1.1 even for small
 *    stores. max_background_jobs = 2 (one flush, one compaction) per DB;
 *    the thread pools are RocksDB's process-wide ones, so many tasks still
 *    share one flush and one compaction thread on this 2-core machine.
 *  - max_open_files = 128 per DB: table readers are small since index and
 *    filters live in the cache, and an embedded engine with many tasks
 *    must not exhaust the process's file descriptors.
 *  - The info LOG of each DB is capped (4 files of 1 MiB).
 */
#include "state/rocks.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define ROCKS_NUM_LEVELS 7
#define ROCKS_MIN_SHARD_BYTES ((int64_t)4 << 20)
#define ROCKS_MAX_SHARD_BITS 6
#define ROCKS_FLUSH_SCRATCH "eddy-flush"

struct eddy_rocks_env_s {
    int64_t budget_bytes;
    int64_t cache_bytes;
    int64_t memtable_bytes_per_db;
    int ntasks;
    rocksdb_cache_t *cache;
    atomic_int compression; /* rocksdb_*_compression of the non-hot levels */
    atomic_bool no_close_flush; /* eddy__rocks_env_no_close_flush() */
    pthread_mutex_t lock;   /* protects dbs, ndbs */
    eddy_rocks_t *dbs;
    int ndbs;
};

struct eddy_rocks_s {
    eddy_rocks_env_t *env;
    rocksdb_t *db;
    char *dir;
    int ncf;
    char **cf_names;
    rocksdb_column_family_handle_t **cfs;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    eddy_rocks_t *prev, *next; /* env->dbs, under env->lock */
};

struct eddy_rocks_batch_s {
    rocksdb_writebatch_t *wb;
    eddy_rocks_t *db; /* the DB every update names; NULL while empty */
    int count;
};

struct eddy_rocks_iter_s {
    eddy_rocks_t *db;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts;
    char *lower, *upper; /* the bounds ropts points at */
    size_t ll, ul;
};

/* RocksDB wants a non-NULL pointer even for an empty slice. */
static const char *slice_ptr(const void *p) {
    return p ? (const char *)p : "";
}

/* ------------------------------------------------------------------- env */

static const char *compression_name(int c) {
    switch (c) {
    case rocksdb_no_compression:
        return "none";
    case rocksdb_snappy_compression:
        return "Snappy";
    case rocksdb_zlib_compression:
        return "zlib";
    case rocksdb_bz2_compression:
        return "bzip2";
    case rocksdb_lz4_compression:
        return "LZ4";
    case rocksdb_lz4hc_compression:
        return "LZ4HC";
    case rocksdb_xpress_compression:
        return "Xpress";
    case rocksdb_zstd_compression:
        return "ZSTD";
    default:
        return "unknown";
    }
}

eddy_rocks_env_t *eddy__rocks_env_new(int64_t budget_bytes, int ntasks, char *errstr,
                                      size_t errstr_size) {
    if (budget_bytes < EDDY_ROCKS_MIN_BUDGET_BYTES) {
        eddy__seterr(errstr, errstr_size,
                     "state: RocksDB memory budget of %" PRId64 " bytes is too small: it must "
                     "be at least %" PRId64 " (16 MiB); raise state.memory.max.bytes",
                     budget_bytes, EDDY_ROCKS_MIN_BUDGET_BYTES);
        return NULL;
    }
    if (ntasks < 1) {
        eddy__seterr(errstr, errstr_size, "state: number of tasks %d: must be >= 1", ntasks);
        return NULL;
    }
    int64_t memtables = budget_bytes / 2;
    int64_t per_db = memtables / ntasks;
    if (per_db < EDDY_ROCKS_MIN_MEMTABLE_BYTES_PER_DB) {
        eddy__seterr(errstr, errstr_size,
                     "state: RocksDB memory budget of %" PRId64 " bytes is too small for %d "
                     "tasks: each task's memtables need at least %" PRId64 " bytes, so it "
                     "must be at least %" PRId64 "; raise state.memory.max.bytes",
                     budget_bytes, ntasks, EDDY_ROCKS_MIN_MEMTABLE_BYTES_PER_DB,
                     2 * EDDY_ROCKS_MIN_MEMTABLE_BYTES_PER_DB * (int64_t)ntasks);
        return NULL;
    }
    eddy_rocks_env_t *env = eddy_calloc(1, sizeof(*env));
    env->budget_bytes = budget_bytes;
    env->ntasks = ntasks;
    env->memtable_bytes_per_db = per_db;
    env->cache_bytes = budget_bytes - per_db * ntasks;
    atomic_init(&env->compression, rocksdb_lz4_compression);
    pthread_mutex_init(&env->lock, NULL);

    int bits = 0;
    while (bits < ROCKS_MAX_SHARD_BITS && (env->cache_bytes >> (bits + 1)) >= ROCKS_MIN_SHARD_BYTES)
        bits++;
    rocksdb_lru_cache_options_t *co = rocksdb_lru_cache_options_create();
    rocksdb_lru_cache_options_set_capacity(co, (size_t)env->cache_bytes);
    rocksdb_lru_cache_options_set_num_shard_bits(co, bits);
    env->cache = rocksdb_cache_create_lru_opts(co);
    rocksdb_lru_cache_options_destroy(co);
    return env;
}

void eddy__rocks_env_destroy(eddy_rocks_env_t *env) {
    if (!env)
        return;
    pthread_mutex_lock(&env->lock);
    eddy_assert(env->ndbs == 0); /* every DB closed first */
    pthread_mutex_unlock(&env->lock);
    rocksdb_cache_destroy(env->cache);
    pthread_mutex_destroy(&env->lock);
    eddy_free(env);
}

int64_t eddy__rocks_env_cache_bytes(const eddy_rocks_env_t *env) {
    return env->cache_bytes;
}

int64_t eddy__rocks_env_memtable_bytes_per_db(const eddy_rocks_env_t *env) {
    return env->memtable_bytes_per_db;
}

static uint64_t cf_prop(eddy_rocks_t *db, int cf, const char *name) {
    uint64_t v = 0;
    if (rocksdb_property_int_cf(db->db, db->cfs[cf], name, &v) != 0)
        return 0;
    return v;
}

int64_t eddy__rocks_env_usage_bytes(const eddy_rocks_env_t *env) {
    /* The cache handle is only read; the C API lacks const. */
    eddy_rocks_env_t *e = (eddy_rocks_env_t *)env;
    uint64_t total = rocksdb_cache_get_usage(e->cache);
    pthread_mutex_lock(&e->lock);
    for (eddy_rocks_t *db = e->dbs; db; db = db->next) {
        for (int i = 0; i < db->ncf; i++) {
            total += cf_prop(db, i, "rocksdb.size-all-mem-tables");
            total += cf_prop(db, i, "rocksdb.estimate-table-readers-mem");
        }
    }
    pthread_mutex_unlock(&e->lock);
    return (int64_t)total;
}

const char *eddy__rocks_env_compression(const eddy_rocks_env_t *env) {
    return compression_name(atomic_load(&((eddy_rocks_env_t *)env)->compression));
}

void eddy__rocks_env_set_compression(eddy_rocks_env_t *env, int rocksdb_compression) {
    atomic_store(&env->compression, rocksdb_compression);
}

/* -------------------------------------------------------------- options */

/* Options of the DB and of every CF (all CFs share one set: see the top). */
static rocksdb_options_t *make_options(eddy_rocks_env_t *env, int compression) {
    rocksdb_options_t *o = rocksdb_options_create();
    size_t share = (size_t)env->memtable_bytes_per_db;

    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_set_atomic_flush(o, 1);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_max_open_files(o, 128);
    rocksdb_options_set_bytes_per_sync(o, 1 << 20);
    rocksdb_options_set_max_manifest_file_size(o, 4 << 20);
    rocksdb_options_set_max_log_file_size(o, 1 << 20);
    rocksdb_options_set_keep_log_file_num(o, 4);
    /* The LOG file gets warnings and errors only: RocksDB 7.8 aborts the
     * process (an assertion in its file writer) on the second write to a
     * LOG whose previous write failed, and at INFO level every close logs,
     * so a full disk ended in an abort instead of eddy's error exit. */
    rocksdb_options_set_info_log_level(o, 2 /* WARN */);

    /* Memtables: active + flushing within the share (see the top). */
    rocksdb_options_set_db_write_buffer_size(o, share / 2);
    rocksdb_options_set_write_buffer_size(o, share / 2);
    rocksdb_options_set_max_write_buffer_number(o, 2);
    rocksdb_options_set_min_write_buffer_number_to_merge(o, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(o, 1);

    /* Level compaction, level sizes following the data. */
    rocksdb_options_set_compaction_style(o, rocksdb_level_compaction);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_num_levels(o, ROCKS_NUM_LEVELS);

    /* L0 and the base level uncompressed, the rest `compression`. With
     * dynamic level bytes, entry 1 means the base level, wherever it is. */
    int per_level[ROCKS_NUM_LEVELS];
    for (int i = 0; i < ROCKS_NUM_LEVELS; i++)
        per_level[i] = i < 2 ? rocksdb_no_compression : compression;
    rocksdb_options_set_compression(o, compression);
    rocksdb_options_set_compression_per_level(o, per_level, ROCKS_NUM_LEVELS);

    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(t, env->cache);
    rocksdb_block_based_options_set_block_size(t, 4096);
    /* The table options take ownership of the filter policy. */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    rocksdb_block_based_options_set_index_type(
        t, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(t, 1);
    rocksdb_block_based_options_set_metadata_block_size(t, 4096);
    rocksdb_block_based_options_set_data_block_index_type(
        t, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
    rocksdb_block_based_options_set_data_block_hash_ratio(t, 0.75);
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    /* No flush of its own at close (the 7.8 C API has no setter for it):
     * eddy__rocks_close() flushes, unless the state directory failed. */
    rocksdb_options_t *n = rocksdb_options_create();
    char *err = NULL;
    rocksdb_get_options_from_string(o, "avoid_flush_during_shutdown=true", n, &err);
    if (err) { /* keep RocksDB's flush at close */
        rocksdb_free(err);
        rocksdb_options_destroy(n);
        return o;
    }
    rocksdb_options_destroy(o);
    return n;
}

/* ------------------------------------------------------------------- db */

static void env_link(eddy_rocks_env_t *env, eddy_rocks_t *db) {
    pthread_mutex_lock(&env->lock);
    db->next = env->dbs;
    if (env->dbs)
        env->dbs->prev = db;
    env->dbs = db;
    env->ndbs++;
    pthread_mutex_unlock(&env->lock);
}

static void env_unlink(eddy_rocks_env_t *env, eddy_rocks_t *db) {
    pthread_mutex_lock(&env->lock);
    if (db->prev)
        db->prev->next = db->next;
    else
        env->dbs = db->next;
    if (db->next)
        db->next->prev = db->prev;
    env->ndbs--;
    pthread_mutex_unlock(&env->lock);
}

static bool has_name(char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        eddy_free(names[i]);
    eddy_free(names);
}

/* Frees db and what it holds; the RocksDB handle must be closed or NULL. */
static void db_free(eddy_rocks_t *db) {
    if (db->ropts)
        rocksdb_readoptions_destroy(db->ropts);
    if (db->wopts)
        rocksdb_writeoptions_destroy(db->wopts);
    free_names(db->cf_names, db->ncf);
    eddy_free(db->cfs);
    eddy_free(db->dir);
    eddy_free(db);
}

static bool is_compression_error(const char *err) {
    return strstr(err, "not linked with the binary") != NULL ||
           strstr(err, "Compression type") != NULL;
}

eddy_rocks_t *eddy__rocks_open(eddy_rocks_env_t *env, const char *dir, const char *const *cf_names,
                               int ncf, char *errstr, size_t errstr_size) {
    if (!dir || !*dir) {
        eddy__seterr(errstr, errstr_size, "state: cannot open RocksDB: no directory given");
        return NULL;
    }
    if (ncf < 0 || (ncf > 0 && !cf_names)) {
        eddy__seterr(errstr, errstr_size, "state: cannot open RocksDB at %s: bad store list", dir);
        return NULL;
    }
    for (int i = 0; i < ncf; i++) {
        if (!cf_names[i] || !*cf_names[i]) {
            eddy__seterr(errstr, errstr_size,
                         "state: cannot open RocksDB at %s: store %d has no name", dir, i);
            return NULL;
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(cf_names[i], cf_names[j]) == 0) {
                eddy__seterr(errstr, errstr_size,
                             "state: cannot open RocksDB at %s: store '%s' named twice", dir,
                             cf_names[i]);
                return NULL;
            }
        }
    }

    eddy_rocks_t *db = eddy_calloc(1, sizeof(*db));
    db->env = env;
    db->dir = eddy_strdup(dir);

    int compression = atomic_load(&env->compression);
    rocksdb_options_t *opts = make_options(env, compression);

    /* The CFs on disk: a missing DB (or any error here) means none; a real
     * problem with dir shows again, with its reason, in the open below. */
    char *err = NULL;
    size_t ndisk = 0;
    char **disk = rocksdb_list_column_families(opts, dir, &ndisk, &err);
    if (err) {
        /* The list comes back allocated (malloc(0)) even on error. */
        rocksdb_free(err);
        err = NULL;
        if (disk)
            rocksdb_list_column_families_destroy(disk, ndisk);
        disk = NULL;
        ndisk = 0;
    }

    int cap = ncf + (int)ndisk + 1;
    db->cf_names = eddy_calloc((size_t)cap, sizeof(char *));
    for (int i = 0; i < ncf; i++)
        db->cf_names[db->ncf++] = eddy_strdup(cf_names[i]);
    for (size_t i = 0; i < ndisk; i++)
        if (!has_name(db->cf_names, db->ncf, disk[i]))
            db->cf_names[db->ncf++] = eddy_strdup(disk[i]);
    if (disk)
        rocksdb_list_column_families_destroy(disk, ndisk);
    if (!has_name(db->cf_names, db->ncf, "default"))
        db->cf_names[db->ncf++] = eddy_strdup("default");
    db->cfs = eddy_calloc((size_t)db->ncf, sizeof(*db->cfs));

    const rocksdb_options_t **cf_opts = eddy_calloc((size_t)db->ncf, sizeof(*cf_opts));
    for (;;) {
        for (int i = 0; i < db->ncf; i++)
            cf_opts[i] = opts;
        db->db = rocksdb_open_column_families(opts, dir, db->ncf, (const char *const *)db->cf_names,
                                              cf_opts, db->cfs, &err);
        if (!err || compression == rocksdb_no_compression || !is_compression_error(err))
            break;
        /* This RocksDB build lacks the compression: do without, for good. */
        rocksdb_free(err);
        err = NULL;
        compression = rocksdb_no_compression;
        atomic_store(&env->compression, compression);
        rocksdb_options_destroy(opts);
        opts = make_options(env, compression);
    }
    eddy_free(cf_opts);
    rocksdb_options_destroy(opts);
    if (err) {
        eddy__seterr(errstr, errstr_size, "state: cannot open RocksDB at %s: %s", dir, err);
        rocksdb_free(err);
        db->db = NULL;
        db_free(db);
        return NULL;
    }

    db->ropts = rocksdb_readoptions_create();
    db->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(db->wopts, 1);

    /* Scratch left by a flush that was interrupted by a crash. */
    char *scratch = eddy_asprintf("%s/" ROCKS_FLUSH_SCRATCH, dir);
    char *scratch_tmp = eddy_asprintf("%s.tmp", scratch);
    (void)eddy__rocks_destroy_dir(scratch, NULL, 0);
    (void)eddy__rocks_destroy_dir(scratch_tmp, NULL, 0);
    eddy_free(scratch);
    eddy_free(scratch_tmp);

    env_link(env, db);
    return db;
}

void eddy__rocks_close(eddy_rocks_t *db) {
    if (!db)
        return;
    env_unlink(db->env, db);
    for (int i = 0; i < db->ncf; i++)
        rocksdb_column_family_handle_destroy(db->cfs[i]);
    /* Unflushed WAL-less writes are flushed (atomically) here, not by
     * RocksDB's close: after a write failure on the state directory (a full
     * disk) RocksDB 7.8's own flush at close trips an assertion of its
     * file writer and aborts the process. Skipping the flush loses
     * nothing: the changelog holds every acknowledged update since the
     * last checkpoint, and the next open replays it. */
    if (!atomic_load(&db->env->no_close_flush)) {
        char err[512];
        if (eddy__rocks_flush(db, err, sizeof(err)))
            fprintf(stderr, "eddy: %s (the next start replays the changelog)\n", err);
    }
    rocksdb_close(db->db);
    db_free(db);
}

void eddy__rocks_env_no_close_flush(eddy_rocks_env_t *env) {
    if (env)
        atomic_store(&env->no_close_flush, true);
}

int eddy__rocks_cf(const eddy_rocks_t *db, const char *name) {
    for (int i = 0; i < db->ncf; i++)
        if (strcmp(db->cf_names[i], name) == 0)
            return i;
    return -1;
}

int eddy__rocks_ncf(const eddy_rocks_t *db) {
    return db->ncf;
}

const char *eddy__rocks_cf_name(const eddy_rocks_t *db, int cf) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    return db->cf_names[cf];
}

const char *eddy__rocks_dir(const eddy_rocks_t *db) {
    return db->dir;
}

/* ----------------------------------------------------------- destroy dir */

static eddy_err_t rm_tree(const char *path, char *errstr, size_t errstr_size) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT)
            return EDDY_OK;
        eddy__seterr(errstr, errstr_size, "state: cannot remove %s: %s", path, strerror(errno));
        return EDDY_ERR_IO;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT) {
            eddy__seterr(errstr, errstr_size, "state: cannot remove %s: %s", path, strerror(errno));
            return EDDY_ERR_IO;
        }
        return EDDY_OK;
    }
    DIR *d = opendir(path);
    if (!d) {
        eddy__seterr(errstr, errstr_size, "state: cannot remove %s: %s", path, strerror(errno));
        return EDDY_ERR_IO;
    }
    /* Read every name before removing any: readdir() over a directory that
     * changes underneath may skip entries. */
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = eddy_realloc(names, (size_t)cap * sizeof(*names));
        }
        names[n++] = eddy_asprintf("%s/%s", path, de->d_name);
    }
    closedir(d);
    eddy_err_t err = EDDY_OK;
    for (int i = 0; i < n && !err; i++)
        err = rm_tree(names[i], errstr, errstr_size);
    free_names(names, n);
    if (err)
        return err;
    if (rmdir(path) != 0 && errno != ENOENT) {
        eddy__seterr(errstr, errstr_size, "state: cannot remove %s: %s", path, strerror(errno));
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

eddy_err_t eddy__rocks_destroy_dir(const char *dir, char *errstr, size_t errstr_size) {
    if (!dir || !*dir) {
        eddy__seterr(errstr, errstr_size, "state: cannot remove a RocksDB: no directory given");
        return EDDY_ERR_INVAL;
    }
    return rm_tree(dir, errstr, errstr_size);
}

/* ------------------------------------------------------------------ get */

eddy_err_t eddy__rocks_get(eddy_rocks_t *db, int cf, const void *key, size_t klen, eddy_buf_t *val,
                           bool *found, char *errstr, size_t errstr_size) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    char *err = NULL;
    *found = false;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(db->db, db->ropts, db->cfs[cf], slice_ptr(key), klen, &err);
    if (err) {
        eddy__seterr(errstr, errstr_size, "state: cannot read store '%s' from RocksDB at %s: %s",
                     db->cf_names[cf], db->dir, err);
        rocksdb_free(err);
        rocksdb_pinnableslice_destroy(ps);
        return EDDY_ERR_IO;
    }
    if (!ps)
        return EDDY_OK;
    size_t vlen = 0;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    val->len = 0;
    if (vlen > 0)
        eddy_buf_put(val, v, vlen);
    rocksdb_pinnableslice_destroy(ps);
    *found = true;
    return EDDY_OK;
}

/* ---------------------------------------------------------------- batch */

eddy_rocks_batch_t *eddy__rocks_batch_new(void) {
    eddy_rocks_batch_t *b = eddy_calloc(1, sizeof(*b));
    b->wb = rocksdb_writebatch_create();
    return b;
}

/* Every update of a batch names the same DB: CF handles of one DB mean
 * nothing to another. */
static rocksdb_column_family_handle_t *batch_cf(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    eddy_assert(!b->db || b->db == db);
    b->db = db;
    b->count++;
    return db->cfs[cf];
}

void eddy__rocks_batch_put(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *k,
                           size_t kl, const void *v, size_t vl) {
    rocksdb_writebatch_put_cf(b->wb, batch_cf(b, db, cf), slice_ptr(k), kl, slice_ptr(v), vl);
}

void eddy__rocks_batch_del(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *k,
                           size_t kl) {
    rocksdb_writebatch_delete_cf(b->wb, batch_cf(b, db, cf), slice_ptr(k), kl);
}

void eddy__rocks_batch_del_range(eddy_rocks_batch_t *b, eddy_rocks_t *db, int cf, const void *from,
                                 size_t fl, const void *to, size_t tl) {
    rocksdb_writebatch_delete_range_cf(b->wb, batch_cf(b, db, cf), slice_ptr(from), fl,
                                       slice_ptr(to), tl);
}

int eddy__rocks_batch_count(const eddy_rocks_batch_t *b) {
    return b->count;
}

size_t eddy__rocks_batch_bytes(const eddy_rocks_batch_t *b) {
    size_t n = 0;
    (void)rocksdb_writebatch_data(b->wb, &n);
    return n;
}

void eddy__rocks_batch_clear(eddy_rocks_batch_t *b) {
    rocksdb_writebatch_clear(b->wb);
    b->db = NULL;
    b->count = 0;
}

void eddy__rocks_batch_destroy(eddy_rocks_batch_t *b) {
    if (!b)
        return;
    rocksdb_writebatch_destroy(b->wb);
    eddy_free(b);
}

eddy_err_t eddy__rocks_write(eddy_rocks_t *db, eddy_rocks_batch_t *b, char *errstr,
                             size_t errstr_size) {
    if (b->count == 0)
        return EDDY_OK;
    eddy_assert(b->db == db);
    char *err = NULL;
    rocksdb_write(db->db, db->wopts, b->wb, &err);
    if (err) {
        eddy__seterr(errstr, errstr_size, "state: cannot write to RocksDB at %s: %s", db->dir, err);
        rocksdb_free(err);
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

/* ------------------------------------------------------------- iterator */

eddy_rocks_iter_t *eddy__rocks_iter_new(eddy_rocks_t *db, int cf, const void *lower, size_t ll,
                                        const void *upper, size_t ul) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    eddy_rocks_iter_t *it = eddy_calloc(1, sizeof(*it));
    it->db = db;
    it->ropts = rocksdb_readoptions_create();
    /* ReadOptions keep pointers to the bounds: the iterator owns copies. */
    if (lower) {
        it->lower = eddy_malloc(ll ? ll : 1);
        if (ll)
            memcpy(it->lower, lower, ll);
        it->ll = ll;
        rocksdb_readoptions_set_iterate_lower_bound(it->ropts, it->lower, ll);
    }
    if (upper) {
        it->upper = eddy_malloc(ul ? ul : 1);
        if (ul)
            memcpy(it->upper, upper, ul);
        it->ul = ul;
        rocksdb_readoptions_set_iterate_upper_bound(it->ropts, it->upper, ul);
    }
    it->it = rocksdb_create_iterator_cf(db->db, it->ropts, db->cfs[cf]);
    return it;
}

/* Byte order, shorter first on a common prefix (RocksDB's default). */
static int key_cmp(const void *a, size_t al, const void *b, size_t bl) {
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

void eddy__rocks_iter_seek(eddy_rocks_iter_t *it, const void *k, size_t kl) {
    if (it->lower && key_cmp(k, kl, it->lower, it->ll) < 0) {
        k = it->lower;
        kl = it->ll;
    }
    rocksdb_iter_seek(it->it, slice_ptr(k), kl);
}

void eddy__rocks_iter_seek_first(eddy_rocks_iter_t *it) {
    rocksdb_iter_seek_to_first(it->it);
}

void eddy__rocks_iter_seek_last(eddy_rocks_iter_t *it) {
    rocksdb_iter_seek_to_last(it->it);
}

void eddy__rocks_iter_seek_for_prev(eddy_rocks_iter_t *it, const void *k, size_t kl) {
    rocksdb_iter_seek_for_prev(it->it, slice_ptr(k), kl);
}

bool eddy__rocks_iter_valid(eddy_rocks_iter_t *it) {
    return rocksdb_iter_valid(it->it) != 0;
}

void eddy__rocks_iter_next(eddy_rocks_iter_t *it) {
    rocksdb_iter_next(it->it);
}

void eddy__rocks_iter_prev(eddy_rocks_iter_t *it) {
    rocksdb_iter_prev(it->it);
}

const char *eddy__rocks_iter_key(eddy_rocks_iter_t *it, size_t *len) {
    return rocksdb_iter_key(it->it, len);
}

const char *eddy__rocks_iter_value(eddy_rocks_iter_t *it, size_t *len) {
    return rocksdb_iter_value(it->it, len);
}

eddy_err_t eddy__rocks_iter_status(eddy_rocks_iter_t *it, char *errstr, size_t errstr_size) {
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    if (err) {
        eddy__seterr(errstr, errstr_size, "state: cannot iterate RocksDB at %s: %s", it->db->dir,
                     err);
        rocksdb_free(err);
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

void eddy__rocks_iter_destroy(eddy_rocks_iter_t *it) {
    if (!it)
        return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ropts);
    eddy_free(it->lower);
    eddy_free(it->upper);
    eddy_free(it);
}

/* ------------------------------------------------- flush, snapshot */

/* A RocksDB checkpoint at dir, memtables flushed first (log_size_for_flush
 * 0: always flush, since with the WAL off the memtables hold the only copy).
 * Under atomic_flush that flush covers all CFs in one MANIFEST edit.
 * Returns RocksDB's error (free with rocksdb_free()) or NULL. */
static char *checkpoint(eddy_rocks_t *db, const char *dir) {
    char *err = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(db->db, &err);
    if (!err)
        rocksdb_checkpoint_create(cp, dir, 0, &err);
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    return err;
}

eddy_err_t eddy__rocks_flush(eddy_rocks_t *db, char *errstr, size_t errstr_size) {
    char *scratch = eddy_asprintf("%s/" ROCKS_FLUSH_SCRATCH, db->dir);
    char *scratch_tmp = eddy_asprintf("%s.tmp", scratch);
    eddy_err_t err = eddy__rocks_destroy_dir(scratch, errstr, errstr_size);
    if (!err)
        err = eddy__rocks_destroy_dir(scratch_tmp, errstr, errstr_size);
    if (!err) {
        char *rerr = checkpoint(db, scratch);
        if (rerr) {
            eddy__seterr(errstr, errstr_size, "state: cannot flush RocksDB at %s: %s", db->dir,
                         rerr);
            rocksdb_free(rerr);
            err = EDDY_ERR_IO;
            (void)eddy__rocks_destroy_dir(scratch_tmp, NULL, 0);
        }
    }
    /* The checkpoint only served to flush: drop its links. */
    if (!err)
        err = eddy__rocks_destroy_dir(scratch, errstr, errstr_size);
    eddy_free(scratch);
    eddy_free(scratch_tmp);
    return err;
}

eddy_err_t eddy__rocks_snapshot(eddy_rocks_t *db, const char *dir, char *errstr,
                                size_t errstr_size) {
    if (!dir || !*dir) {
        eddy__seterr(errstr, errstr_size,
                     "state: cannot snapshot RocksDB at %s: no directory given", db->dir);
        return EDDY_ERR_INVAL;
    }
    char *rerr = checkpoint(db, dir);
    if (rerr) {
        eddy__seterr(errstr, errstr_size, "state: cannot snapshot RocksDB at %s into %s: %s",
                     db->dir, dir, rerr);
        rocksdb_free(rerr);
        return EDDY_ERR_IO;
    }
    return EDDY_OK;
}

/* -------------------------------------------------------------- metrics */

uint64_t eddy__rocks_estimate_keys(eddy_rocks_t *db, int cf) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    return cf_prop(db, cf, "rocksdb.estimate-num-keys");
}

uint64_t eddy__rocks_size_bytes(eddy_rocks_t *db, int cf) {
    eddy_assert(cf >= 0 && cf < db->ncf);
    return cf_prop(db, cf, "rocksdb.live-sst-files-size") +
           cf_prop(db, cf, "rocksdb.size-all-mem-tables");
}

uint64_t eddy__rocks_memtable_bytes(eddy_rocks_t *db) {
    uint64_t total = 0;
    for (int i = 0; i < db->ncf; i++)
        total += cf_prop(db, i, "rocksdb.size-all-mem-tables");
    return total;
}
