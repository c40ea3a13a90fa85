/*
 * Repartition topics (settings.repartition: kafka): the wire format of the
 * records a key_by exchange writes to `<application>-<exchange>-repartition`
 * and the sequence check that makes a sender's replay harmless. The
 * transport is connectors/kafka_repartition.c; the engine side (sending,
 * receiving, watermarks) is in engine/engine.c; docs/kafka.md, "Repartition
 * topics", has the design.
 *
 * A message value is one of
 *   data:      'D' varint sender, varint gen, varint seq, zigzag ts,
 *              zigzag partition, zigzag offset, varint key length, key,
 *              u8 whole, row (state/row.h) of every field (whole = 1) or
 *              only of the fields the consumers read (whole = 0, the
 *              exchange's xkeep, in field order)
 *   bundle:    'B' varint sender, varint gen, varint seq of the first
 *              record, varint count, then count records, each: zigzag ts,
 *              zigzag partition, zigzag offset, varint key length, key, u8
 *              whole, varint row length, row (as in data); the records'
 *              seqs are seq, seq + 1, ... (what a sender writes: the
 *              records it sends one destination between two flushes, so
 *              the broker and both clients handle one message per bundle)
 *   watermark: 'W' varint sender, varint gen, zigzag watermark, u8 flags
 *              (EDDY_XR_IDLE, EDDY_XR_ENDED), varint seq (the last data
 *              seq sent to this partition)
 * sender = the sending task, gen = a random nonzero id of the sender's
 * state (a new one when that state starts empty), seq = 1, 2, ... per
 * (sender, destination partition), kept in the sender's state.
 */
#ifndef EDDY_REPARTITION_H
#define EDDY_REPARTITION_H

#include "eddy_int.h"

/* watermark flags: the sender has no active input (left out of the
 * minimum); the sender will send nothing more in this run (its bounded
 * input ended) */
#define EDDY_XR_IDLE 1
#define EDDY_XR_ENDED 2

typedef struct eddy_xr_msg_s {
    bool is_wm;
    bool is_bundle;     /* a bundle: take its records with eddy__xr_next() */
    uint64_t count;     /* bundle: records not taken yet */
    int sender;
    uint32_t gen;
    uint64_t seq;
    int64_t ts_ms;      /* data: event time; watermark: the watermark */
    uint8_t flags;      /* watermark: EDDY_XR_* */
    int32_t partition;  /* data: the record's source partition and offset */
    int64_t offset;
    const char *key;    /* points into the message */
    uint32_t key_len;
    bool whole;
    const char *row;    /* points into the message */
    size_t row_len;
} eddy_xr_msg_t;

/** Append a data message for rec (schema s; keep NULL: every field). */
void eddy__xr_encode_data(eddy_buf_t *out, int sender, uint32_t gen, uint64_t seq,
                          const eddy_rec_t *rec, const eddy_schema_t *s, const bool *keep);
void eddy__xr_encode_wm(eddy_buf_t *out, int sender, uint32_t gen, int64_t wm, uint8_t flags,
                        uint64_t seq);
/** Append one record to a bundle's record area (bundle_rec_encode's
 *  layout; scratch holds the row while it is measured). */
void eddy__xr_encode_bundle_rec(eddy_buf_t *area, eddy_buf_t *scratch, const eddy_rec_t *rec,
                                const eddy_schema_t *s, const bool *keep);
/** Append a bundle message: header, then the record area of count records. */
void eddy__xr_encode_bundle(eddy_buf_t *out, int sender, uint32_t gen, uint64_t first_seq,
                            uint64_t count, const char *area, size_t area_len);
/** Parse a message; EDDY_ERR_DECODE when it is not one of ours. */
eddy_err_t eddy__xr_decode(const char *p, size_t n, eddy_xr_msg_t *m);
/** The next record of a bundle (as a data message, seq set) into rec;
 *  EDDY_ERR_EOF after the last, EDDY_ERR_DECODE on a truncated record. */
eddy_err_t eddy__xr_next(eddy_xr_msg_t *bundle, eddy_xr_msg_t *rec);
/** The values of a data message into vals[nfields] (strings point into the
 *  message); fields not carried are null. */
eddy_err_t eddy__xr_decode_row(const eddy_xr_msg_t *m, const eddy_schema_t *s, const bool *keep,
                               eddy_value_t *vals);

/** What a receiver remembers per sender: the sender's state id and the
 *  highest seq applied from it. */
typedef struct eddy_xr_seen_s {
    uint32_t gen;
    uint64_t applied;
} eddy_xr_seen_t;

typedef enum {
    EDDY_XR_APPLY = 1,   /* new: apply it */
    EDDY_XR_DUP = 0,     /* at or below the highest applied: a replay, drop it */
    EDDY_XR_GAP = -1     /* beyond applied + 1: records of this sender are missing */
} eddy_xr_admit_t;

/** Decide about data seq from a sender whose state id is gen, and record
 *  it when it is applied. A gen other than the remembered one (first
 *  contact, or the sender's state started over) starts a new sequence. */
eddy_xr_admit_t eddy__xr_admit(eddy_xr_seen_t *s, uint32_t gen, uint64_t seq);

#endif /* EDDY_REPARTITION_H */
