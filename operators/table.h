/*
 * Versioned tables (the `history.retention` option of a table step),
 * read by the temporal lookup join (operators/lookup.c) on the same task.
 */
#ifndef EDDY_OP_TABLE_H
#define EDDY_OP_TABLE_H

#include "plan.h"

/** Whether store def belongs to a table step; its key and history. */
bool eddy__table_of_store(const eddy_store_def_t *def, bool *versioned, int64_t *retention_ms);

/**
 * The row of key that was valid at event time t in a versioned table:
 * the latest change at or before t, unless that change was a delete.
 * table_op is the table node's instance on the caller's task. row gets
 * the table's columns (the store's value schema), strings in arena.
 */
eddy_err_t eddy__table_row_at(eddy_op_t *table_op, const char *key, size_t klen, int64_t t,
                              eddy_arena_t *arena, eddy_value_t *row, bool *found);

/** The earliest event time for which eddy__table_row_at() is exact:
 *  changes before it may have been dropped (history.retention). */
int64_t eddy__table_history_from(eddy_op_t *table_op);

#endif /* EDDY_OP_TABLE_H */
