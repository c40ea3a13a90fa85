/*
 * MCP resources and prompts.
 *
 * Resources (application/json):
 *   eddy://topology               what describe_topology answers
 *   eddy://metrics                what get_metrics answers
 *   eddy://store/{store}          a store: kind, fields, its first entries
 *   eddy://store/{store}/{k1}/... one key: a kv store's value, or the
 *                                 latest windows of the key
 * Key segments are percent-encoded values of the key fields in order.
 * Every one of them can be subscribed to (server.c re-reads it after each
 * commit and notifies when it changed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcp_int.h"

#define STORE_PREFIX "eddy://store/"

static bool windowed(const eddy_store_info_t *i) {
    return !strcmp(i->kind, "window") || !strcmp(i->kind, "session");
}

const char *eddy__mcp_store_template(eddy_mcp_t *m, const char *store) {
    static _Thread_local char buf[1024];
    eddy_store_info_t si;
    if (!store || eddy_engine_store_info(eddy__mcp_engine(m), store, &si)) {
        buf[0] = 0;
        return buf;
    }
    size_t k = (size_t)snprintf(buf, sizeof(buf), STORE_PREFIX "%s", store);
    for (int i = 0; i < eddy_schema_nfields(si.key_schema) && k < sizeof(buf); i++)
        k += (size_t)snprintf(buf + k, sizeof(buf) - k, "/{%s}",
                              eddy_schema_field_name(si.key_schema, i));
    return buf;
}

json_t *eddy__mcp_resources_list(eddy_mcp_t *m) {
    json_t *l = json_array();
    json_array_append_new(
        l, json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", "eddy://topology", "name", "topology",
                     "title", "Topology", "description",
                     "Sources, operators and queryable stores of the running topology",
                     "mimeType", "application/json"));
    json_array_append_new(
        l, json_pack("{s:s, s:s, s:s, s:s, s:s}", "uri", "eddy://metrics", "name", "metrics",
                     "title", "Metrics", "description",
                     "Throughput, latency, watermarks, late/dead-lettered counts, store "
                     "freshness",
                     "mimeType", "application/json"));
    eddy_mcp_store_t st[128];
    int n = eddy__mcp_stores(m, st, 128);
    for (int i = 0; i < n; i++) {
        const char *name = st[i].name;
        const eddy_store_info_t si = st[i].info;
        char uri[512], desc[1024];
        snprintf(uri, sizeof(uri), STORE_PREFIX "%.256s", name);
        snprintf(desc, sizeof(desc), "%s store written by %s: its fields and first entries",
                 si.kind, si.node);
        json_array_append_new(l, json_pack("{s:s, s:s, s:s, s:s}", "uri", uri, "name", name,
                                           "description", desc, "mimeType",
                                           "application/json"));
    }
    return l;
}

json_t *eddy__mcp_resource_templates(eddy_mcp_t *m) {
    json_t *l = json_array();
    eddy_mcp_store_t st[128];
    int n = eddy__mcp_stores(m, st, 128);
    for (int i = 0; i < n; i++) {
        const char *name = st[i].name;
        const eddy_store_info_t si = st[i].info;
        char desc[512], nm[300];
        snprintf(desc, sizeof(desc),
                 windowed(&si) ? "The latest windows of one key of %s store '%s'"
                               : "The value of one key of %s store '%s'",
                 si.kind, name);
        snprintf(nm, sizeof(nm), "%.250s-key", name);
        json_array_append_new(l, json_pack("{s:s, s:s, s:s, s:s}", "uriTemplate",
                                           eddy__mcp_store_template(m, name), "name", nm,
                                           "description", desc, "mimeType", "application/json"));
    }
    return l;
}

static int hexv(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode [p, p+n) into out; false on a bad escape. */
static bool pct_decode(const char *p, size_t n, char *out, size_t cap, size_t *len) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 1 >= cap)
            return false;
        if (p[i] == '%') {
            int a = i + 2 < n ? hexv(p[i + 1]) : -1, b = i + 2 < n ? hexv(p[i + 2]) : -1;
            if (a < 0 || b < 0)
                return false;
            out[k++] = (char)(a * 16 + b);
            i += 2;
        } else {
            out[k++] = p[i];
        }
    }
    out[k] = 0;
    *len = k;
    return true;
}

static json_t *contents(const char *uri, json_t *body) {
    char *txt = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    json_t *r = json_pack("{s:[{s:s, s:s, s:s}]}", "contents", "uri", uri, "mimeType",
                          "application/json", "text", txt ? txt : "{}");
    free(txt);
    return r;
}

typedef struct {
    json_t *items;
    size_t keep; /* 0: all */
} acc_t;

static eddy_err_t add(const eddy_record_t *rec, void *opaque) {
    acc_t *a = opaque;
    json_array_append_new(a->items, eddy__mcp_record_json(rec));
    if (a->keep && json_array_size(a->items) > a->keep)
        json_array_remove(a->items, 0);
    return EDDY_OK;
}

static json_t *store_summary(eddy_mcp_t *m, const char *name, const eddy_store_info_t *si) {
    json_t *kf = json_array(), *vf = json_array();
    for (int i = 0; i < eddy_schema_nfields(si->key_schema); i++)
        json_array_append_new(kf, json_pack("{s:s, s:s}", "name",
                                            eddy_schema_field_name(si->key_schema, i), "type",
                                            eddy_type2str(eddy_schema_field_type(si->key_schema, i))));
    for (int i = 0; i < eddy_schema_nfields(si->value_schema); i++)
        json_array_append_new(
            vf, json_pack("{s:s, s:s}", "name", eddy_schema_field_name(si->value_schema, i), "type",
                          eddy_type2str(eddy_schema_field_type(si->value_schema, i))));
    acc_t a = {json_array(), 0};
    char next[9000];
    eddy_engine_query_scan(eddy__mcp_engine(m), name, NULL, eddy__mcp_opts(m)->default_limit, add,
                           &a, next, sizeof(next));
    return json_pack("{s:s, s:s, s:s, s:o, s:o, s:I, s:o, s:b}", "store", name, "kind", si->kind,
                     "operator", si->node, "key", kf, "value", vf, "retention_ms",
                     (json_int_t)si->retention_ms, "first_entries", a.items, "more",
                     next[0] != 0);
}

json_t *eddy__mcp_resource_read(eddy_mcp_t *m, const char *uri, int *code, char *msg,
                                size_t msg_size) {
    *code = RPC_RESOURCE_NOT_FOUND;
    if (!strcmp(uri, "eddy://topology"))
        return contents(uri, eddy__mcp_describe(m));
    if (!strcmp(uri, "eddy://metrics"))
        return contents(uri, eddy__mcp_metrics_json(m));
    if (strncmp(uri, STORE_PREFIX, strlen(STORE_PREFIX))) {
        snprintf(msg, msg_size,
                 "Resource not found: %s (resources are eddy://topology, eddy://metrics and "
                 "eddy://store/...)",
                 uri);
        return NULL;
    }
    const char *p = uri + strlen(STORE_PREFIX);
    const char *slash = strchr(p, '/');
    char name[512];
    size_t nl;
    if (!pct_decode(p, slash ? (size_t)(slash - p) : strlen(p), name, sizeof(name), &nl)) {
        snprintf(msg, msg_size, "Resource not found: %s (bad percent-encoding)", uri);
        return NULL;
    }
    eddy_store_info_t si;
    if (eddy_engine_store_info(eddy__mcp_engine(m), name, &si)) {
        char list[2048];
        eddy__mcp_store_list_desc(m, list, sizeof(list));
        snprintf(msg, msg_size, "Resource not found: no store '%s' (stores: %s)", name, list);
        return NULL;
    }
    if (!slash)
        return contents(uri, store_summary(m, name, &si));
    /* key segments -> JSON values -> key values */
    json_t *key = json_array();
    const char *q = slash + 1;
    for (;;) {
        const char *e = strchr(q, '/');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        char seg[4096];
        size_t sl;
        if (!pct_decode(q, n, seg, sizeof(seg), &sl)) {
            json_decref(key);
            snprintf(msg, msg_size, "Resource not found: %s (bad percent-encoding)", uri);
            return NULL;
        }
        json_array_append_new(key, !strcmp(seg, "true")    ? json_true()
                                   : !strcmp(seg, "false") ? json_false()
                                                           : json_stringn(seg, sl));
        if (!e)
            break;
        q = e + 1;
    }
    eddy_value_t k[32];
    scratch_t sc = {0};
    char err[1024];
    int n = eddy__mcp_parse_key(si.key_schema, key, false, k, 32, &sc, err, sizeof(err));
    if (n < 0) {
        eddy__mcp_scratch_free(&sc);
        json_decref(key);
        snprintf(msg, msg_size, "Resource not found: %s (%s; template %s)", uri, err,
                 eddy__mcp_store_template(m, name));
        *code = RPC_INVALID_PARAMS;
        return NULL;
    }
    json_t *kj = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(kj, eddy_schema_field_name(si.key_schema, i),
                            eddy__mcp_value_json(&k[i]));
    json_t *body;
    if (windowed(&si)) {
        /* the latest windows: page through, keeping the last default_limit */
        acc_t a = {json_array(), (size_t)eddy__mcp_opts(m)->default_limit};
        char cur[9000] = "";
        eddy_err_t e = EDDY_OK;
        for (int page = 0; page < 64; page++) {
            e = eddy_engine_query_windows(eddy__mcp_engine(m), name, k, n, INT64_MIN / 4,
                                          INT64_MAX / 4, cur, 512, add, &a, cur, sizeof(cur));
            if (e || !cur[0])
                break;
        }
        body = json_pack("{s:s, s:s, s:o, s:o}", "store", name, "kind", si.kind, "key", kj,
                         "latest_windows", a.items);
        (void)e;
    } else {
        acc_t a = {json_array(), 0};
        eddy_err_t e = eddy_engine_query_get(eddy__mcp_engine(m), name, k, n, add, &a);
        body = json_pack("{s:s, s:o, s:b, s:O}", "store", name, "key", kj, "found", e == EDDY_OK,
                         "value", e == EDDY_OK ? json_array_get(a.items, 0) : json_null());
        json_decref(a.items);
    }
    eddy__mcp_scratch_free(&sc);
    json_decref(key);
    return contents(uri, body);
}

/* ------------------------------------------------------------- prompts */

typedef struct {
    const char *name, *title, *description;
    const char *args[3][2]; /* name, description; required = first nreq */
    int nargs, nreq;
    const char *text; /* %1$s .. : the arguments in order */
} prompt_t;

static const prompt_t prompts[] = {
    {"summarize_hot_keys",
     "Summarise the hottest keys",
     "Find and summarise the keys with the most activity in a store.",
     {{"store", "The store to look at (see describe_topology)"},
      {"field", "The numeric field that measures activity (default: a count field)"}},
     2,
     1,
     "Using the eddy tools, summarise the hottest keys of store '%s'. First call "
     "describe_topology to learn the store's kind and fields. Then call top_keys with store "
     "'%s' and field '%s' (if that field is empty, pick the count-like numeric field) and n=10. "
     "For the top three keys, look at their history: get_windows for a window or session "
     "store, get_value for a kv store. Call get_metrics to see how fresh the store is. Report "
     "the hottest keys with their figures, how concentrated the activity is, whether it is "
     "rising or falling, and the event time the answer reflects."},
    {"explain_topology",
     "Explain the topology",
     "Explain what the running topology computes and what can be asked of it.",
     {{NULL, NULL}},
     0,
     0,
     "Call describe_topology and get_metrics, then explain in plain words what this eddy "
     "topology computes: where its data comes from, what each operator does, which stores hold "
     "results (and what one entry means), how fresh they are, and three example questions the "
     "stores can answer, with the tool call that would answer each."},
    {"investigate_key",
     "Investigate one key",
     "Everything the stores know about one key.",
     {{"key", "The key value (e.g. an auction id or a user name)"},
      {"store", "Limit to this store (default: every store whose key fits)"}},
     2,
     1,
     "Using the eddy tools, find everything about key '%s'%s%s. Call describe_topology to find "
     "the stores keyed by a field this value fits; for each, call get_value (kv stores) or "
     "get_windows (window and session stores). Summarise the key's current state and recent "
     "history, and note anything unusual compared with the store's top keys (top_keys)."},
};
#define NPROMPTS ((int)(sizeof(prompts) / sizeof(prompts[0])))

json_t *eddy__mcp_prompts_list(eddy_mcp_t *m) {
    (void)m;
    json_t *l = json_array();
    for (int i = 0; i < NPROMPTS; i++) {
        const prompt_t *p = &prompts[i];
        json_t *args = json_array();
        for (int k = 0; k < p->nargs; k++)
            json_array_append_new(args, json_pack("{s:s, s:s, s:b}", "name", p->args[k][0],
                                                  "description", p->args[k][1], "required",
                                                  k < p->nreq));
        json_array_append_new(l, json_pack("{s:s, s:s, s:s, s:o}", "name", p->name, "title",
                                           p->title, "description", p->description, "arguments",
                                           args));
    }
    return l;
}

json_t *eddy__mcp_prompt_get(eddy_mcp_t *m, const char *name, json_t *args, int *code, char *msg,
                             size_t msg_size) {
    (void)m;
    for (int i = 0; i < NPROMPTS; i++) {
        const prompt_t *p = &prompts[i];
        if (strcmp(p->name, name))
            continue;
        const char *v[3] = {"", "", ""};
        for (int k = 0; k < p->nargs; k++) {
            json_t *a = json_object_get(args, p->args[k][0]);
            if (a && !json_is_string(a)) {
                *code = RPC_INVALID_PARAMS;
                snprintf(msg, msg_size, "prompt '%s': argument '%s' must be a string", name,
                         p->args[k][0]);
                return NULL;
            }
            v[k] = a ? json_string_value(a) : "";
            if (k < p->nreq && !*v[k]) {
                *code = RPC_INVALID_PARAMS;
                snprintf(msg, msg_size, "prompt '%s': argument '%s' is required", name,
                         p->args[k][0]);
                return NULL;
            }
        }
        char text[4096];
        if (i == 0)
            snprintf(text, sizeof(text), p->text, v[0], v[0], v[1]);
        else if (i == 1)
            snprintf(text, sizeof(text), "%s", p->text);
        else
            snprintf(text, sizeof(text), p->text, v[0], *v[1] ? " in store " : "", v[1]);
        /* text holds client strings and may be cut inside a character */
        json_t *r = json_pack("{s:s, s:[{s:s, s:{s:s, s:o}}]}", "description", p->description,
                              "messages", "role", "user", "content", "type", "text", "text",
                              eddy__mcp_utf8(text, strlen(text)));
        if (!r) {
            *code = RPC_INTERNAL_ERROR;
            snprintf(msg, msg_size, "prompt '%s' could not be built", name);
        }
        return r;
    }
    *code = RPC_INVALID_PARAMS;
    snprintf(msg, msg_size, "unknown prompt '%s'; prompts: summarize_hot_keys, explain_topology, "
                            "investigate_key",
             name);
    return NULL;
}
