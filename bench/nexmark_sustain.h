/*
 * bench/nexmark --kafka-sustain: one long pass over a topic that the
 * broker process keeps topped up (nexmark_sustain.c says how).
 */
#ifndef EDDY_BENCH_NEXMARK_SUSTAIN_H
#define EDDY_BENCH_NEXMARK_SUSTAIN_H

#include "eddy.h"

#include <stdbool.h>
#include <stdint.h>

#define SUS_MAXPARTS 64
/* Fewer delivered and unread bids than this in all partitions: the
 * instance is about to run dry (at 1M events/s, 4 ms of work; a fetch of
 * kafka-q5's fetch.min.bytes holds about 2,500 bids). */
#define SUS_STARVED 4000

/* One message on the command pipe to the broker process (smaller than
 * PIPE_BUF: each write is whole, from the parent or a measured child). */
typedef struct {
    int32_t type; /* SUS_BEGIN (parent), SUS_PROGRESS (child), SUS_END (parent) */
    int32_t partitions;
    unsigned long long total; /* SUS_BEGIN: bids to produce in all */
    char topic[64];
    int64_t pos[SUS_MAXPARTS]; /* SUS_PROGRESS: each partition's next offset to process */
} sus_msg_t;

enum { SUS_BEGIN = 1, SUS_PROGRESS, SUS_END };

/* The broker's answer to SUS_BEGIN and SUS_END. */
typedef struct {
    int ok;
    unsigned long long produced, delivered; /* SUS_END */
    double broker_cpu;                      /* SUS_END: the broker process's CPU-s in the pass */
    double starved; /* SUS_END: share of the read phase with the instance nearly out of bids */
    double waiting; /* SUS_END: mean delivered and unread bids over the read phase */
    char err[512];
} sus_reply_t;

/* The broker process's loader. */
typedef struct sus_loader sus_loader_t;

/* Read every bid of topic `from` (filled by kafka-load.yaml) as the
 * templates of the sustained stream; NULL with the reason in err. */
sus_loader_t *sus_loader_new(const char *bootstrap, const char *from, int partitions,
                             unsigned long long cap_per_partition, char *err, size_t err_size);
void sus_loader_destroy(sus_loader_t *l);
/* Serve SUS_ messages from cmd_fd (replies on reply_fd) until hold_fd
 * reaches its end. */
void sus_loader_serve(sus_loader_t *l, int cmd_fd, int reply_fd, int hold_fd);

/* The measured child's side: the positions of topic's partitions, sent
 * to the loader when they moved. */
typedef struct {
    int fd; /* the command pipe */
    const char *topic;
    int partitions;
    unsigned long long total;
    int64_t sent[SUS_MAXPARTS];
    int64_t pos[SUS_MAXPARTS];
} sus_child_t;

/* Read the positions and report them if they moved; returns their sum
 * (offsets of a fresh topic start at 0). */
unsigned long long sus_child_progress(sus_child_t *c, eddy_engine_t *eng);
/* 0 when every partition's position is what the loader produced into
 * it (total bids round robin); -1 with the reason in err. */
int sus_child_check(const sus_child_t *c, unsigned long long events_in, char *err, size_t err_size);

#endif
