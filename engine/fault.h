/*
 * Kill points for the fault-injection tests (tests/integration/faults):
 * EDDY_FAULT_KILL=point[:n][,point[:n]...] makes the process raise SIGKILL
 * the n-th time (default 1) it passes `point`, so a test can aim a crash at
 * the middle of a commit, a restore or a rebalance instead of hoping a
 * random kill lands there. Unset (always, outside tests) a point costs one
 * load and a predictable branch.
 *
 * Points: commit.flushed (sinks committed, state not prepared yet),
 * commit.prepared (state prepared, round not acknowledged; with a Kafka
 * changelog under exactly_once the thread's transaction is committed too;
 * both count only rounds with a task open), commit.acked (the round
 * acknowledged, its state not yet written to RocksDB; counts only rounds
 * that changed some task's state), restore (one
 * changelog update applied during a restore), rebalance (tasks being
 * closed and opened for a new assignment), commit.finished (one task wrote
 * an acknowledged round to RocksDB; the others of the round may not have
 * yet).
 *
 * EDDY_FAULT_PAUSE=point:ms holds the thread that passes `point` for ms
 * milliseconds, once per process: the first pass after the file named by
 * EDDY_FAULT_PAUSE_WHEN exists (or the first pass, without it), so that a
 * test can show what goes on meanwhile (queries during a restore).
 */
#ifndef EDDY_FAULT_H
#define EDDY_FAULT_H

#include <stdatomic.h>
#include <stdbool.h>

extern atomic_int eddy__fault_armed; /* 0 unknown, 1 off, 2 on */

void eddy__fault_point_slow(const char *point);

static inline void eddy__fault_point(const char *point) {
    if (atomic_load_explicit(&eddy__fault_armed, memory_order_relaxed) != 1)
        eddy__fault_point_slow(point);
}

/*
 * Injected failures, for tests that run the engine in their own process:
 * after eddy__fault_fail_at(point, who, n, delay_ms) the n-th pass of
 * `point` by `who` (a task id; -1: anyone) waits delay_ms and reports a
 * failure, once. Points: commit.prepare (a task's prepare fails as a
 * transient error: the round is not acknowledged, the engine recovers in
 * process), commit.txn (`who` is a stream thread: its transaction of the
 * round is not committed and the round fails as a transient error, as
 * when the coordinator refuses its EndTxn; the other threads commit
 * theirs meanwhile, delay_ms gives them the time), txn.init (`who` is a
 * stream thread: initialising its transactional producer before tasks
 * open fails as a transient error, as init_transactions against a
 * coordinator still loading would). Unarmed, a point costs one load.
 */
extern atomic_int eddy__fault_fail_armed;

void eddy__fault_fail_at(const char *point, int who, long n, int delay_ms);
bool eddy__fault_fail_slow(const char *point, int who);

static inline bool eddy__fault_fail(const char *point, int who) {
    return atomic_load_explicit(&eddy__fault_fail_armed, memory_order_relaxed) &&
           eddy__fault_fail_slow(point, who);
}

#endif
