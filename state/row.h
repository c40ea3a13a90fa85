/*
 * Compact binary rows for values kept in stores: per field a type byte,
 * then zigzag varints for integers and timestamps, 8 bytes for doubles,
 * varint length + bytes for strings and bytes. Decoding points strings into
 * the input (zero copy), so the input must outlive the decoded row.
 */
#ifndef EDDY_ROW_H
#define EDDY_ROW_H
#include "eddy_int.h"

void eddy__row_encode(eddy_buf_t *out, int nfields, const eddy_value_t *vals);
/** Decode nfields values. Returns EDDY_ERR_DECODE on a short or malformed
 *  input (a store value that does not decode is corruption, not input). */
eddy_err_t eddy__row_decode(const char *p, size_t n, int nfields, eddy_value_t *vals);

/** Decode the first m of the encoded values; *used = bytes consumed. */
eddy_err_t eddy__row_decode_prefix(const char *p, size_t n, int m, eddy_value_t *vals,
                                   size_t *used);

/** Step over the first m encoded values without decoding them (checked as
 *  decoding would); *used = their bytes. Lets an update rewrite only the
 *  values it changes and copy the others' bytes as they are. */
eddy_err_t eddy__row_skip(const char *p, size_t n, int m, size_t *used);

void eddy__varint_put(eddy_buf_t *out, uint64_t v);
/** Returns bytes read, 0 on error. */
size_t eddy__varint_get(const char *p, size_t n, uint64_t *v);
#endif
