/*
 * Who runs which task (docs/scaleout.md): every instance of an application
 * writes one record to the topic <application>-instances, keyed by its
 * instance id, whenever its set of open tasks (or its endpoint) changes,
 * and reads the topic from the beginning, keeping the last record per key
 * (a compacted topic on a broker; the embedded cluster does not compact,
 * so the reader does). This is the Kafka half: mcp/ sees no librdkafka
 * type.
 */
#ifndef EDDY_CONNECTORS_INSTANCES_H
#define EDDY_CONNECTORS_INSTANCES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy.h"

typedef struct eddy_instances_s eddy_instances_t;

/** Start publishing this instance (id, endpoint: the URL its MCP server
 *  answers at, "" for none) and reading the others. NULL with the reason
 *  in errstr when the topic cannot be made or read. */
eddy_instances_t *eddy__instances_start(eddy_topology_t *topo, eddy_engine_t *eng,
                                        const char *endpoint, char *errstr, size_t errstr_size);

/** Whether the engine's tasks follow a consumer group (a Kafka source):
 *  then instances are worth publishing. */
bool eddy__instances_wanted(eddy_engine_t *eng);

/** Publish an empty assignment (a clean stop), then stop. NULL is fine. */
void eddy__instances_stop(eddy_instances_t *in);

/** The instance that most recently said it runs task (another instance
 *  than this one): its id and endpoint. false when none is known. */
bool eddy__instances_owner(eddy_instances_t *in, int task, char *id, size_t idsz,
                           char *endpoint, size_t epsz);

/** The cluster as this instance sees it, JSON text (malloc'd): an array of
 *  {instance, endpoint, tasks, generation, updated_ms, self}. */
char *eddy__instances_json(eddy_instances_t *in);

#endif
