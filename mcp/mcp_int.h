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
#endif
