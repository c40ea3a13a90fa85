/*
 * The MCP front end (internal interface of mcp/).
 *
 * One server (eddy_mcp_t) wraps a running engine. Each client connection
 * is a session: stdio has one, Streamable HTTP one per Mcp-Session-Id.
 * A transport hands every incoming message to eddy__mcp_handle() and
 * writes back what it returns; messages the server starts on its own
 * (notifications/resources/updated, notifications/message) reach the
 * session's notify callback, from the server's watcher thread.
 *
 * Everything here reads the engine through the public query API only
 * (include/eddy.h): committed state, from any thread, never stopping the
 * stream threads.
 *
 * Layers: jsonrpc.c (framing, validation, errors) -> server.c (protocol:
 * initialize, lists, logging, cancellation, subscriptions) -> tools.c and
 * resources.c (what the model can ask) -> stdio.c / http.c (transports).
 */
#ifndef EDDY_MCP_H
#define EDDY_MCP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eddy.h"

#define EDDY_MCP_LATEST "2025-11-25"

/* JSON-RPC error codes */
#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603
#define RPC_RESOURCE_NOT_FOUND -32002

typedef struct eddy_mcp_s eddy_mcp_t;
typedef struct eddy_mcp_session_s eddy_mcp_session_t;

typedef struct eddy_mcp_opts {
    size_t max_request_bytes; /* larger messages are refused (HTTP 413) */
    int default_limit;        /* rows per answer when the client gives none */
    int max_limit;            /* upper bound on any client-given limit */
    int64_t notify_min_interval_ms; /* per subscribed resource, besides the one check per
                                     * commit (0: no further throttling) */
    const char *instructions; /* sent in the initialize result (may be NULL) */
} eddy_mcp_opts_t;

void eddy__mcp_opts_default(eddy_mcp_opts_t *o);

/** @brief A server over eng (borrowed; must outlive the server). Starts the
 *         watcher thread (subscriptions, log notifications, rates). */
eddy_mcp_t *eddy__mcp_new(eddy_engine_t *eng, const eddy_mcp_opts_t *opts);
void eddy__mcp_destroy(eddy_mcp_t *m);
eddy_engine_t *eddy__mcp_engine(eddy_mcp_t *m);
const eddy_mcp_opts_t *eddy__mcp_opts(eddy_mcp_t *m);

/** Called with one server-to-client message (compact JSON, no newline).
 *  Thread: the watcher thread, or a transport thread. */
typedef void (*eddy_mcp_notify_cb)(void *opaque, const char *json, size_t len);

/** @brief A new session; notify may be NULL (notifications are dropped). */
eddy_mcp_session_t *eddy__mcp_session_new(eddy_mcp_t *m, eddy_mcp_notify_cb notify,
                                          void *opaque);
/** @brief End a session: no notify call after this returns; the memory
 *         goes with the last reference. */
void eddy__mcp_session_close(eddy_mcp_session_t *s);
/** @brief The open session with this id, with a reference taken (release
 *         it), or NULL. */
eddy_mcp_session_t *eddy__mcp_session_find(eddy_mcp_t *m, const char *id);
void eddy__mcp_session_release(eddy_mcp_session_t *s);
/** The random id of a session (HTTP Mcp-Session-Id). */
const char *eddy__mcp_session_id(const eddy_mcp_session_t *s);
/** The protocol version negotiated ("" before initialize). */
const char *eddy__mcp_session_version(const eddy_mcp_session_t *s);
bool eddy__mcp_session_initialized(const eddy_mcp_session_t *s);

/** What eddy__mcp_handle found in a message. */
typedef struct eddy_mcp_result {
    char *response;     /* JSON to send back (malloc'd), or NULL: nothing */
    bool had_request;   /* the message held at least one request */
    bool initialize;    /* it was an initialize request that succeeded */
    bool parse_error;   /* not JSON at all */
} eddy_mcp_result_t;

/**
 * @brief Handle one incoming message: a request, a notification, a
 *        response, or (2025-03-26 only) a batch.
 * @remark Thread: any; requests of one session may run concurrently.
 */
void eddy__mcp_handle(eddy_mcp_session_t *s, const char *msg, size_t len,
                      eddy_mcp_result_t *res);

/** Same, for a message already parsed (the HTTP transport peeks at it). */
void eddy__mcp_handle_json(eddy_mcp_session_t *s, json_t *msg, eddy_mcp_result_t *res);

/** A JSON-RPC error response (malloc'd), id may be NULL (-> null). */
char *eddy__rpc_error_str(json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
json_t *eddy__rpc_error(json_t *id, int code, const char *message, json_t *data);

/** Prometheus text exposition of the engine and MCP figures (malloc'd). */
char *eddy__mcp_prometheus(eddy_mcp_t *m);
/** Record one served call (for /metrics): method, tool (or NULL), ns. */
void eddy__mcp_count_call(eddy_mcp_t *m, const char *method, int64_t ns, bool error);

/* ------------------------------------------------ tools and resources */

/** The tool list (JSON array), for a protocol version. New reference. */
json_t *eddy__mcp_tools_list(eddy_mcp_t *m, const char *version);
/**
 * @brief Call a tool. Returns the CallToolResult object (content,
 *        structuredContent, isError), or NULL with code and msg set for a
 *        protocol error (unknown tool: -32602).
 */
json_t *eddy__mcp_tool_call(eddy_mcp_t *m, const char *version, const char *name,
                            json_t *args, int *code, char *msg, size_t msg_size);

json_t *eddy__mcp_resources_list(eddy_mcp_t *m);
json_t *eddy__mcp_resource_templates(eddy_mcp_t *m);
/** Read a resource: the ReadResourceResult, or NULL (code and msg set). */
json_t *eddy__mcp_resource_read(eddy_mcp_t *m, const char *uri, int *code, char *msg,
                                size_t msg_size);
json_t *eddy__mcp_prompts_list(eddy_mcp_t *m);
json_t *eddy__mcp_prompt_get(eddy_mcp_t *m, const char *name, json_t *args, int *code,
                             char *msg, size_t msg_size);

/** Metrics as the get_metrics tool returns them (new reference). */
json_t *eddy__mcp_metrics_json(eddy_mcp_t *m);
/** Input rate (events/s over the last second), from the watcher. */
double eddy__mcp_events_per_second(eddy_mcp_t *m);

/** One record as a JSON object (strings made valid UTF-8, bytes base64). */
json_t *eddy__mcp_record_json(const eddy_record_t *rec);

/** Scale-out: route queries for keys of other instances' tasks through
 *  cluster (connectors/instances.h); forward: ask the owner, else answer
 *  with its endpoint. Set before serving; cluster outlives m's use. */
struct eddy_instances_s;
void eddy__mcp_set_cluster(eddy_mcp_t *m, struct eddy_instances_s *cluster, bool forward);

#endif /* EDDY_MCP_H */
