/*
 * Request/reply over Kafka for the MCP front end (internal API). This is
 * the Kafka half of the MCP Kafka transport: it knows topics, headers,
 * keys and the consumer group, nothing of JSON-RPC. mcp/kafka.c is the MCP
 * half (sessions, error replies); the two meet through the handler below,
 * so mcp/ never sees a librdkafka type (connectors/ is the only user of
 * librdkafka).
 *
 * A bridge consumes the request topic in its own consumer group, hands
 * every message to the handler on one of its handler threads (messages
 * with the same mcp-session-id header go to the same thread, in topic
 * order) and produces the handler's reply, if any, to the reply topic: the
 * request's mcp-reply-to header, else the default reply topic. The reply
 * has the request's key and echoes its mcp-correlation-id header.
 */
#ifndef EDDY_CONNECTORS_MCP_KAFKA_H
#define EDDY_CONNECTORS_MCP_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy.h"

/* Header names (matched without regard to case; values are UTF-8 text). */
#define EDDY_MCP_KAFKA_REPLY_TO "mcp-reply-to"             /* topic for the reply */
#define EDDY_MCP_KAFKA_CORRELATION_ID "mcp-correlation-id" /* echoed on the reply */
#define EDDY_MCP_KAFKA_SESSION_ID "mcp-session-id"         /* the MCP session */

typedef struct eddy_mcp_kafka_s eddy_mcp_kafka_t;

/** One request as the handler sees it. Every pointer is valid for the
 *  duration of the handler call only. */
typedef struct eddy_mcp_kafka_msg {
    const char *value; /* the message value (not NUL-terminated) */
    size_t len;
    bool tombstone;  /* null value (len 0, value NULL) */
    const void *key; /* may be NULL */
    size_t key_len;
    const char *reply_topic;  /* where a reply goes (header or default), or NULL */
    const char *session_id;   /* mcp-session-id header (NUL-terminated), or NULL */
    const char *header_error; /* why a header was refused (the session id is not
                               * 1-128 printable ASCII characters), or NULL */
    const char *topic;        /* where the request came from, for messages */
    int32_t partition;
    int64_t offset;
} eddy_mcp_kafka_msg_t;

/** What the handler answers. */
typedef struct eddy_mcp_kafka_reply {
    char *value;          /* malloc'd reply (the bridge frees it), or NULL: none */
    char session_id[160]; /* mcp-session-id of the reply ("": the request's) */
} eddy_mcp_kafka_reply_t;

/**
 * @brief Handle one request.
 * @remark Thread: one of the bridge's handler threads; the messages of
 *         one session id arrive on one thread, in order.
 */
typedef void (*eddy_mcp_kafka_handle_cb)(void *opaque, const eddy_mcp_kafka_msg_t *msg,
                                         eddy_mcp_kafka_reply_t *reply);
/**
 * @brief Optional: look at a request on the consumer thread before it is
 *        queued; return true to consume it there (it is not handled).
 *        Lets a cancellation overtake the queued request it cancels.
 * @remark Thread: the consumer thread. Must not block.
 */
typedef bool (*eddy_mcp_kafka_early_cb)(void *opaque, const eddy_mcp_kafka_msg_t *msg);

typedef struct eddy_mcp_kafka_opts {
    const char *request_topic;       /* required */
    const char *default_reply_topic; /* for requests without mcp-reply-to (NULL: dropped) */
    const char *reply_prefix;        /* replies only to topics starting with this (NULL: any) */
    const char *group_id;            /* NULL: "<application>-mcp" */
    const char *application;         /* names the default group (NULL: "eddy") */
    int threads;                     /* handler threads (0: 4) */
    int queue_max;                   /* requests queued per thread before the consumer
                                      * waits (0: 1000) */
} eddy_mcp_kafka_opts_t;

/** Counters of a bridge (monotonic). */
typedef struct eddy_mcp_kafka_stats {
    uint64_t received;       /* messages consumed from the request topic */
    uint64_t replies;        /* replies produced (and acknowledged by the cluster) */
    uint64_t sent;           /* other messages produced (eddy__mcp_kafka_send) */
    uint64_t no_reply_topic; /* a reply was due but no topic was known: dropped */
    uint64_t bad_reply_to;   /* mcp-reply-to not a topic name or outside the prefix */
    uint64_t produce_errors; /* replies or messages the cluster did not take */
} eddy_mcp_kafka_stats_t;

/**
 * @brief Client properties: the topology's top-level `kafka:` map (may be
 *        NULL), then "key=value" overrides (may be NULL, NULL-terminated).
 *        Each is checked by librdkafka. `bootstrap.servers: embedded` (or
 *        none) is the in-process cluster.
 * @returns a property list for eddy__mcp_kafka_start (free with
 *          eddy__mcp_kafka_props_free), or NULL with the reason
 *          ("topology.yaml:3:9: kafka: property 'bootstrap.server': ...").
 */
typedef struct eddy_mcp_kafka_props_s eddy_mcp_kafka_props_t;
eddy_mcp_kafka_props_t *eddy__mcp_kafka_props_new(eddy_topology_t *topo,
                                                  const char *const *overrides, char *errstr,
                                                  size_t errstr_size);
void eddy__mcp_kafka_props_free(eddy_mcp_kafka_props_t *p);

/**
 * @brief Start a bridge: check (on the embedded cluster: create) the
 *        request topic, join the consumer group and wait until it is
 *        assigned its partitions (up to ready_timeout_ms), so that a request
 *        produced after this returns is seen.
 * @param props borrowed for this call only.
 * @param bound where the bridge is stored before its threads start (so
 *        that handlers, which may run before this returns, can use it).
 * @returns the bridge, or NULL with the reason.
 * @remark Thread: any; handle and early run on the bridge's threads.
 */
eddy_mcp_kafka_t *eddy__mcp_kafka_start(const eddy_mcp_kafka_opts_t *opts,
                                        const eddy_mcp_kafka_props_t *props,
                                        eddy_mcp_kafka_handle_cb handle,
                                        eddy_mcp_kafka_early_cb early, void *opaque,
                                        eddy_mcp_kafka_t *_Atomic *bound, int ready_timeout_ms,
                                        char *errstr, size_t errstr_size);

/** @brief The cluster's address ("127.0.0.1:39211,..." for the embedded
 *         one); valid until eddy__mcp_kafka_destroy. */
const char *eddy__mcp_kafka_bootstrap(const eddy_mcp_kafka_t *b);
/** @brief The consumer group; valid until eddy__mcp_kafka_destroy. */
const char *eddy__mcp_kafka_group(const eddy_mcp_kafka_t *b);
/** @brief The largest reply value the producer takes (message.max.bytes
 *         less room for a key of key_len and the headers). */
size_t eddy__mcp_kafka_max_value_bytes(const eddy_mcp_kafka_t *b, size_t key_len);

/**
 * @brief Produce a message the server starts (a notification) to topic.
 * @param session_id the mcp-session-id header (may be NULL).
 * @returns EDDY_OK when queued (delivery failures are counted), or
 *          EDDY_ERR_INVAL / EDDY_ERR_IO.
 * @remark Thread: any, until eddy__mcp_kafka_destroy.
 */
eddy_err_t eddy__mcp_kafka_send(eddy_mcp_kafka_t *b, const char *topic, const void *key,
                                size_t key_len, const char *session_id, const char *value,
                                size_t len);

/** @brief Whether topic may receive replies (a legal topic name, inside
 *         the reply prefix). */
bool eddy__mcp_kafka_reply_topic_ok(const eddy_mcp_kafka_t *b, const char *topic);

void eddy__mcp_kafka_stats(eddy_mcp_kafka_t *b, eddy_mcp_kafka_stats_t *out);

/**
 * @brief Stop consuming: the consumer leaves its group, queued requests
 *        are dropped, the handler threads end. Sending still works.
 *        Idempotent.
 */
void eddy__mcp_kafka_stop(eddy_mcp_kafka_t *b);
/** @brief Stop, deliver what is produced (up to 5 s), free. NULL-safe. */
void eddy__mcp_kafka_destroy(eddy_mcp_kafka_t *b);

#endif /* EDDY_CONNECTORS_MCP_KAFKA_H */
