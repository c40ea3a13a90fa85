/* MCP transports: stdio (mcp/stdio.c), Streamable HTTP (mcp/http.c) and
 * Kafka (mcp/kafka_transport.c over connectors/mcp_kafka.c). */
#ifndef EDDY_MCP_TRANSPORT_H
#define EDDY_MCP_TRANSPORT_H
#include <stdatomic.h>

#include "connectors/mcp_kafka.h"
#include "mcp.h"

/** @brief Serve one session on in_fd/out_fd until end of input or *stop.
 *  @returns 0, or -1 when the worker thread cannot start. */
int eddy__mcp_serve_stdio(eddy_mcp_t *m, int in_fd, int out_fd, atomic_bool *stop);

typedef struct eddy_mcp_http_s eddy_mcp_http_t;

typedef struct eddy_mcp_http_opts {
    size_t max_request_bytes;  /* 0: the server's */
    const char *path;          /* "/mcp" */
    const char *const *origins; /* allowed Origin values besides loopback ("*": any) */
    int norigins;
    bool prefer_sse;           /* answer POSTs with SSE when the client accepts both */
    int64_t session_idle_s;    /* end sessions idle this long without a stream (0: never) */
} eddy_mcp_http_opts_t;

void eddy__mcp_http_opts_default(eddy_mcp_http_opts_t *o);
/** @brief Listen on addr ("127.0.0.1:8080"; port 0 picks a free one). */
eddy_mcp_http_t *eddy__mcp_http_start(eddy_mcp_t *m, const char *addr,
                                      const eddy_mcp_http_opts_t *opts, char *errstr,
                                      size_t errstr_size);
/** The port listened on. */
int eddy__mcp_http_port(const eddy_mcp_http_t *h);
void eddy__mcp_http_stop(eddy_mcp_http_t *h);
/* ------------------------------------------------------------ Kafka */

typedef struct eddy_mcp_kafka_transport_s eddy_mcp_kafka_transport_t;

typedef struct eddy_mcp_kafka_transport_opts {
    eddy_mcp_kafka_opts_t kafka; /* topics, group, handler threads */
    eddy_topology_t *topo;       /* its kafka: map and application (may be NULL) */
    const char *const *props;    /* "key=value" librdkafka overrides (NULL-terminated,
                                  * may be NULL) */
    int max_sessions;            /* an initialize beyond is refused (0: 1024) */
    int64_t session_idle_s;      /* end sessions without a message this long (0: never) */
    int ready_timeout_ms;        /* wait for the group's assignment (0: 30000) */
} eddy_mcp_kafka_transport_opts_t;

/** Counters: the bridge's and the MCP layer's (monotonic). */
typedef struct eddy_mcp_kafka_transport_stats {
    eddy_mcp_kafka_stats_t kafka;
    uint64_t bad_input;        /* not JSON, over the size limit, empty, bad header */
    uint64_t no_session;       /* no mcp-session-id on a message other than initialize */
    uint64_t unknown_session;  /* an mcp-session-id no open session has */
    uint64_t sessions_opened, sessions_ended, sessions_expired;
    uint64_t notifications_dropped; /* a session with no reply topic yet */
} eddy_mcp_kafka_transport_stats_t;

void eddy__mcp_kafka_transport_opts_default(eddy_mcp_kafka_transport_opts_t *o);
/**
 * @brief Serve MCP over Kafka: requests from o->kafka.request_topic,
 *        replies to each request's mcp-reply-to topic. Returns once the
 *        consumer group has assigned the request topic's partitions.
 * @returns the transport, or NULL with the reason in errstr.
 */
eddy_mcp_kafka_transport_t *eddy__mcp_kafka_transport_start(
    eddy_mcp_t *m, const eddy_mcp_kafka_transport_opts_t *o, char *errstr, size_t errstr_size);
/** The cluster's address and the consumer group (valid until stop). */
const char *eddy__mcp_kafka_transport_bootstrap(const eddy_mcp_kafka_transport_t *t);
const char *eddy__mcp_kafka_transport_group(const eddy_mcp_kafka_transport_t *t);
void eddy__mcp_kafka_transport_stats(eddy_mcp_kafka_transport_t *t,
                                     eddy_mcp_kafka_transport_stats_t *out);
/** @brief Stop consuming, end the sessions, deliver what is queued, free.
 *         Before eddy__mcp_destroy. NULL-safe. */
void eddy__mcp_kafka_transport_stop(eddy_mcp_kafka_transport_t *t);
#endif
