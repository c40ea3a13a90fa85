/*
 * The consumer group generation of a consumer's membership (scale-out:
 * who owns a task when two instances' records claim it, docs/scaleout.md).
 */
#ifndef EDDY_CONNECTORS_KAFKA_GENERATION_H
#define EDDY_CONNECTORS_KAFKA_GENERATION_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>

/** The generation of rk's current group membership (group group_id), or
 *  -1 when it is not known (not a member yet, static membership, or a
 *  librdkafka whose metadata this cannot read). */
int64_t eddy__kafka_group_generation(rd_kafka_t *rk, const char *group_id);

#endif
