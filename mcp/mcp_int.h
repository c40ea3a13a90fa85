/* Helpers shared by the MCP tools and resources (mcp/tools.c). */
#ifndef EDDY_MCP_INT_H
#define EDDY_MCP_INT_H
#include "mcp.h"

/** Strings made while converting JSON to key values (freed together). */
typedef struct {
    char *strs[64];
    int n;
} scratch_t;
void eddy__mcp_scratch_free(scratch_t *sc);

/** A key given as {field: value}, [values], or a bare value (one field) ->
 *  values of the key schema; with partial, leading fields only. Returns
 *  the number of values, or -1 with the reason in err. */
int eddy__mcp_parse_key(const eddy_schema_t *ks, json_t *key, bool partial, eddy_value_t *out,
                        int max, scratch_t *sc, char *err, size_t errn);
/** Milliseconds, or an ISO-8601 time. */
bool eddy__mcp_parse_time(json_t *j, int64_t *ms);
json_t *eddy__mcp_value_json(const eddy_value_t *v);
json_t *eddy__mcp_utf8(const char *p, size_t n);
/** The queryable stores and what they are. */
typedef struct {
    char name[256];
    eddy_store_info_t info;
} eddy_mcp_store_t;
int eddy__mcp_stores(eddy_mcp_t *m, eddy_mcp_store_t *out, int max);
/** "a (kv), b (window)" */
void eddy__mcp_store_list_desc(eddy_mcp_t *m, char *out, size_t n);
/** describe_topology's answer (new reference). */
json_t *eddy__mcp_describe(eddy_mcp_t *m);
/** The resource URI template of a store (static buffer per call site:
 *  valid until the next call from the same thread). */
const char *eddy__mcp_store_template(eddy_mcp_t *m, const char *store);
/* Scale-out (mcp/route.c, docs/scaleout.md). Engine internals
 * (engine/plan.h declares them too): where a kv key lives, what is open. */
int eddy__engine_query_task(eddy_engine_t *eng, const char *store, const eddy_value_t *key,
                            int nkey);
bool eddy__engine_task_active(eddy_engine_t *eng, int task);
bool eddy__engine_task_opening(eddy_engine_t *eng, int task);
eddy_err_t eddy__engine_query_get_open(eddy_engine_t *eng, const char *store,
                                       const eddy_value_t *key, int nkey, eddy_sink_cb_t cb,
                                       void *opaque);
/** A kv key from this instance's standby copy of its task: EDDY_ERR_STATE
 *  when no copy is kept here, EDDY_ERR_NOENT when the copy lacks it; *lag
 *  and *age_ms say how far behind the copy is (engine/query.c). */
eddy_err_t eddy__engine_query_get_standby(eddy_engine_t *eng, const char *store,
                                          const eddy_value_t *key, int nkey, eddy_sink_cb_t cb,
                                          void *opaque, int64_t *lag, int64_t *age_ms);
struct eddy_restore_progress_s;
/** Where a task's restore here stands (state/tstate.h); 0 when none runs. */
int eddy__engine_restore_progress(eddy_engine_t *eng, int task,
                                  struct eddy_restore_progress_s *out, int max);
struct eddy_instances_s *eddy__mcp_cluster(eddy_mcp_t *m);
bool eddy__mcp_forwarding(eddy_mcp_t *m);
/** A tool call for a key of task, which is not open here: forwarded to the
 *  owner (its result), or a result whose structuredContent is not_here
 *  (adopted) completed with where the key lives; NULL with the reason in
 *  err when the owner did not answer. */
/** POST one JSON-RPC message to an MCP endpoint over HTTP (libcurl; with
 *  Mcp-Session-Id sid unless NULL or ""): the parsed answer, or NULL with
 *  the reason in err. sid_out (128 bytes, or NULL) gets the session id the
 *  answer carries ("" when none). */
json_t *eddy__mcp_http_post(const char *url, const char *sid, const char *body, long timeout_ms,
                            char *sid_out, char *err, size_t errsz);
json_t *eddy__mcp_route(eddy_mcp_t *m, const char *tool, json_t *args, int task,
                        json_t *not_here, char *err, size_t errsz);
/** tools/call of tool on the MCP endpoint url, in a session of its own,
 *  with args plus forwarded: true (the callee never forwards again): the
 *  call's result, or NULL with the reason in err. */
json_t *eddy__mcp_call_owner(const char *url, const char *tool, json_t *args, char *err,
                             size_t errsz);
int eddy__engine_ntasks(eddy_engine_t *eng);
/** eddy_engine_query_windows; with need_open, EDDY_ERR_STATE when the
 *  key's task is not open here, decided under the lock task opens and
 *  closes take (as eddy__engine_query_get_open) (engine/query.c). */
eddy_err_t eddy__engine_query_windows_open(eddy_engine_t *eng, const char *store,
                                           const eddy_value_t *key, int nkey, int64_t from_ms,
                                           int64_t to_ms, const char *cursor, int limit,
                                           bool need_open, eddy_sink_cb_t cb, void *opaque,
                                           char *next_cursor, size_t next_cursor_size);
/** eddy_engine_query_range, with on_key (or NULL) told each entry's store
 *  key (the bytes a cursor names) just before cb gets the entry: merging
 *  the scans of many instances (mcp/fanout.c). */
eddy_err_t eddy__engine_query_range_keyed(eddy_engine_t *eng, const char *store,
                                          const eddy_key_range_t *range, const char *cursor,
                                          int limit, eddy_sink_cb_t cb,
                                          void (*on_key)(const char *k, size_t kl, void *opaque),
                                          void *opaque, char *next_cursor,
                                          size_t next_cursor_size);
/** A store key as cursors spell it (lowercase hex): ordered as the keys. */
json_t *eddy__mcp_hex_key(const char *k, size_t kl);
/** scan_store and top_keys over the cluster (mcp/fanout.c). local is this
 *  instance's answer (its "items" from the tasks open here, in the tool's
 *  order) and keys each item's store key (eddy__mcp_hex_key); both are
 *  adopted. rank_field: top_keys' field (items by it, descending), NULL
 *  for scan_store (by key); limit: the most items to give. Without a
 *  cluster, local as it is; for a fan-out's call (args.with_keys), local
 *  with item_keys and the tasks open here; else local merged with every
 *  other instance's answer (forwarding on), saying which tasks are not
 *  included (partial). The structuredContent to answer with. */
json_t *eddy__mcp_gather(eddy_mcp_t *m, const char *tool, json_t *args, json_t *local,
                         json_t *keys, const char *rank_field, int limit);

/** get_metrics with cluster: true: local (this instance's metrics,
 *  adopted) with a `cluster` member: every other instance of the view
 *  that advertises an endpoint is asked for its metrics at the same time;
 *  their answers (or why not), and the sums of the counters and rates. */
json_t *eddy__mcp_cluster_metrics(eddy_mcp_t *m, json_t *local);
#endif
