/*
 * Test helper: the number of rows of a kv store, by a complete scan
 * through the public query API (the scan must finish in one call).
 */
#ifndef EDDY_TESTS_STORE_ROWS_H
#define EDDY_TESTS_STORE_ROWS_H

#include "eddy.h"

static eddy_err_t store_rows_cb(const eddy_record_t *rec, void *opaque) {
    (void)rec;
    (*(int *)opaque)++;
    return EDDY_OK;
}

static __attribute__((unused)) int store_rows(eddy_engine_t *eng, const char *store) {
    int n = 0;
    char next[256];
    assert_int_equal(eddy_engine_query_scan(eng, store, NULL, 10000, store_rows_cb, &n, next,
                                            sizeof(next)),
                     EDDY_OK);
    assert_string_equal(next, "");
    return n;
}

#endif /* EDDY_TESTS_STORE_ROWS_H */
