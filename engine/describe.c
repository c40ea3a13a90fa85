/*
 * The compiled topology as JSON (public eddy_engine_describe_json), for
 * clients that discover a running engine: the MCP front end's describe
 * tool, `eddy describe --json`. Static facts only (names, schemas, kinds);
 * live figures come from eddy_engine_stats() and friends.
 */
#include <jansson.h>

#include "plan.h"
#include "state/store.h"

eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng);

static json_t *fields_json(const eddy_schema_t *s) {
    json_t *a = json_array();
    for (int i = 0; s && i < s->nfields; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "name", s->fields[i].name, "type",
                                           eddy_type2str(s->fields[i].type)));
    return a;
}

static const char *store_kind(eddy_store_kind_t k) {
    return k == EDDY_STORE_KV        ? "kv"
           : k == EDDY_STORE_WINDOW  ? "window"
           : k == EDDY_STORE_SESSION ? "session"
                                     : "log";
}

/* Name of what feeds node n through its i-th input. */
static const char *input_name(const eddy_plan_t *p, const eddy_node_t *n, int i) {
    int up = n->up[i];
    if (up >= 0)
        return p->nodes[up].name;
    const eddy_srcdef_t *src = &p->sources[-1 - up];
    for (int s = 0; s < src->nstreams; s++)
        for (int c = 0; c < src->streams[s].nconsumers; c++)
            if (src->streams[s].consumers[c] == n->id)
                return src->streams[s].name;
    return src->name;
}

static json_t *describe(const eddy_plan_t *p) {
    json_t *root = json_object();
    json_object_set_new(root, "application", json_string(p->application ? p->application : ""));
    json_object_set_new(root, "settings",
                        json_pack("{s:i, s:I, s:I, s:I, s:s}", "threads", p->settings.threads,
                                  "commit_interval_ms", (json_int_t)p->settings.commit_interval_ms,
                                  "max_out_of_orderness_ms", (json_int_t)p->settings.max_ooo_ms,
                                  "idle_timeout_ms", (json_int_t)p->settings.idle_timeout_ms,
                                  "state_dir",
                                  p->settings.state_dir ? p->settings.state_dir : ""));
    json_t *srcs = json_array();
    for (int i = 0; i < p->nsources; i++) {
        const eddy_srcdef_t *s = &p->sources[i];
        json_t *streams = json_array();
        for (int k = 0; k < s->nstreams; k++)
            json_array_append_new(streams, json_pack("{s:s, s:o}", "name", s->streams[k].name,
                                                     "fields", fields_json(s->streams[k].schema)));
        json_array_append_new(srcs, json_pack("{s:s, s:s, s:i, s:o}", "name", s->name, "type",
                                              s->ops->name, "partitions", s->partitions,
                                              "streams", streams));
    }
    json_object_set_new(root, "sources", srcs);
    json_t *ops = json_array();
    for (int k = 0; k < p->nnodes; k++) {
        const eddy_node_t *n = &p->nodes[p->topo_order ? p->topo_order[k] : k];
        json_t *in = json_array(), *out = json_array();
        for (int i = 0; i < n->nup; i++)
            json_array_append_new(in, json_string(input_name(p, n, i)));
        for (int i = 0; i < n->ndown; i++)
            json_array_append_new(out, json_string(p->nodes[n->down[i]].name));
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:o, s:b}", "name", n->name, "op",
                              n->ops->name, "label", n->label ? n->label : "", "inputs", in,
                              "outputs", out, "sink", n->ops->is_sink);
        if (n->out)
            json_object_set_new(o, "fields", fields_json(n->out));
        json_array_append_new(ops, o);
    }
    json_object_set_new(root, "operators", ops);
    json_t *stores = json_array();
    for (int i = 0; i < p->nstores; i++) {
        const eddy_store_def_t *d = p->stores[i];
        if (!d->queryable)
            continue;
        json_array_append_new(
            stores, json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", d->name, "kind",
                              d->sessions ? "session" : store_kind(d->kind), "operator",
                              d->node >= 0 && d->node < p->nnodes ? p->nodes[d->node].name : "",
                              "key", fields_json(d->key_schema), "value",
                              fields_json(d->value_schema), "retention_ms",
                              (json_int_t)d->retention_ms));
    }
    json_object_set_new(root, "stores", stores);
    return root;
}

char *eddy_engine_describe_json(eddy_engine_t *eng) {
    json_t *j = describe(eddy__engine_plan(eng));
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!s)
        return NULL;
    /* jansson allocates with malloc; hand out eddy_malloc memory */
    char *r = eddy_strdup(s);
    free(s);
    return r;
}
