/*
 * Topologies: the configuration tree plus what the host registered (custom
 * operators, callback sinks). Loading only parses; eddy_topology_check()
 * and eddy_engine_new() compile.
 */
#include "cfg.h"
#include "plan.h"
#include "topology.h"
#include "operators/aggfn.h"

#include <errno.h>
#include <stdlib.h>

static eddy_topology_t *topo_alloc(const char *file) {
    eddy_topology_t *topo = eddy_calloc(1, sizeof(*topo));
    topo->file = eddy_strdup(file ? file : "<api>");
    return topo;
}

eddy_topology_t *eddy_topology_new(const char *application) {
    eddy_topology_t *topo = topo_alloc("<api>");
    topo->root = eddy__cnode_new(EDDY_CNODE_MAP, topo->file, 0, 0);
    if (application)
        eddy_cnode_set(topo->root, "application", application);
    return topo;
}

eddy_topology_t *eddy_topology_load_string(const char *yaml, size_t len, const char *name,
                                           char *errstr, size_t errstr_size) {
    eddy_topology_t *topo = topo_alloc(name ? name : "<string>");
    topo->root = eddy__yaml_load(yaml, len, topo->file, errstr, errstr_size);
    if (!topo->root) {
        eddy_topology_destroy(topo);
        return NULL;
    }
    return topo;
}

/* Topology files are small; 16 MiB is a generous bound that keeps a
 * mistaken path (a log file, /dev/zero) from eating memory. */
#define EDDY_TOPOLOGY_MAX_BYTES (16 * 1024 * 1024)

eddy_topology_t *eddy_topology_load_file(const char *path, char *errstr, size_t errstr_size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        eddy__seterr(errstr, errstr_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    eddy_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        eddy_buf_put(&b, chunk, n);
        if (b.len > EDDY_TOPOLOGY_MAX_BYTES) {
            fclose(f);
            eddy_buf_free(&b);
            eddy__seterr(errstr, errstr_size, "%s: larger than %d bytes: not a topology file",
                         path, EDDY_TOPOLOGY_MAX_BYTES);
            return NULL;
        }
    }
    bool rerr = ferror(f);
    fclose(f);
    if (rerr) {
        eddy_buf_free(&b);
        eddy__seterr(errstr, errstr_size, "%s: read error", path);
        return NULL;
    }
    eddy_topology_t *topo = eddy_topology_load_string(b.p ? b.p : "", b.len, path, errstr,
                                                      errstr_size);
    eddy_buf_free(&b);
    return topo;
}

void eddy_topology_destroy(eddy_topology_t *topo) {
    if (!topo)
        return;
    eddy__cnode_free(topo->root);
    eddy_free(topo->ops);
    eddy_free(topo->aggs);
    eddy_free(topo->file);
    eddy_free(topo);
}

eddy_cnode_t *eddy_topology_root(eddy_topology_t *topo) { return topo->root; }

static eddy_cnode_t *add_named(eddy_topology_t *topo, const char *list, const char *name,
                               const char *k2, const char *v2) {
    eddy_cnode_t *m = eddy_cnode_append_map(eddy_cnode_seq(topo->root, list));
    if (!m)
        return NULL;
    eddy_cnode_set(m, "name", name);
    if (v2)
        eddy_cnode_set(m, k2, v2);
    return m;
}

eddy_cnode_t *eddy_topology_add_source(eddy_topology_t *topo, const char *name,
                                       const char *type) {
    return add_named(topo, "sources", name, "type", type);
}
eddy_cnode_t *eddy_topology_add_sink(eddy_topology_t *topo, const char *name, const char *type) {
    return add_named(topo, "sinks", name, "type", type);
}
eddy_cnode_t *eddy_topology_add_pipeline(eddy_topology_t *topo, const char *name,
                                         const char *from) {
    return add_named(topo, "pipelines", name, "from", from);
}

eddy_cnode_t *eddy_pipeline_add_step(eddy_cnode_t *pipeline, const char *op, const char *arg,
                                     eddy_cnode_t **args) {
    eddy_cnode_t *step = eddy_cnode_append_map(eddy_cnode_seq(pipeline, "steps"));
    if (!step)
        return NULL;
    if (arg) {
        eddy_cnode_set(step, op, arg);
        if (args)
            *args = NULL;
    } else {
        eddy_cnode_t *m = eddy_cnode_map(step, op);
        if (args)
            *args = m;
    }
    return step;
}

void eddy_pipeline_to(eddy_cnode_t *pipeline, const char *sink) {
    eddy_cnode_t *to = eddy__cnode_get(pipeline, "to");
    if (to && to->kind == EDDY_CNODE_SCALAR) {
        /* turn a single sink into a list */
        char *first = eddy_strdup(to->scalar);
        to = eddy_cnode_seq(pipeline, "to");
        eddy_cnode_append(to, first);
        eddy_free(first);
    }
    if (!to)
        to = eddy_cnode_seq(pipeline, "to");
    eddy_cnode_append(to, sink);
}

eddy_cnode_t *eddy_topology_add_callback_sink(eddy_topology_t *topo, const char *name,
                                              eddy_sink_cb_t cb, void *opaque) {
    eddy_cnode_t *m = eddy_topology_add_sink(topo, name, "callback");
    if (m) {
        m->opaque = (void *)cb;
        m->opaque2 = opaque;
    }
    return m;
}

eddy_err_t eddy_topology_register_operator(eddy_topology_t *topo, const eddy_operator_def_t *def,
                                           char *errstr, size_t errstr_size) {
    if (!def || def->abi < 1 || !def->name || !def->process) {
        eddy__seterr(errstr, errstr_size, "operator definition needs abi, name and process");
        return EDDY_ERR_INVAL;
    }
    if (eddy__op_lookup(def->name) || eddy__topology_find_op(topo, def->name)) {
        eddy__seterr(errstr, errstr_size, "an operator named '%s' already exists", def->name);
        return EDDY_ERR_INVAL;
    }
    topo->ops = eddy_realloc(topo->ops, sizeof(*topo->ops) * (size_t)(topo->nops + 1));
    topo->ops[topo->nops++] = def;
    return EDDY_OK;
}

const eddy_operator_def_t *eddy__topology_find_op(const eddy_topology_t *topo, const char *name) {
    for (int i = 0; i < topo->nops; i++)
        if (!strcmp(topo->ops[i]->name, name))
            return topo->ops[i];
    return NULL;
}

eddy_err_t eddy_topology_register_aggregate(eddy_topology_t *topo,
                                            const eddy_aggregate_def_t *def, char *errstr,
                                            size_t errstr_size) {
    if (!topo || !def || def->abi < 1 || !def->name || !def->init || !def->add ||
        !def->merge || !def->result) {
        eddy__seterr(errstr, errstr_size,
                     "aggregate definition needs abi, name, init, add, merge and result");
        return EDDY_ERR_INVAL;
    }
    bool ident = def->name[0] && !(def->name[0] >= '0' && def->name[0] <= '9');
    for (const char *p = def->name; *p; p++)
        ident &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '_';
    if (!ident || strlen(def->name) > 31) {
        eddy__seterr(errstr, errstr_size,
                     "aggregate name '%s': expected an identifier (letters, digits, '_', at "
                     "most 31 characters)",
                     def->name);
        return EDDY_ERR_INVAL;
    }
    if (def->acc_size < 1 || def->acc_size > EDDY_AGGREGATE_MAX_ACC_BYTES) {
        eddy__seterr(errstr, errstr_size, "aggregate '%s': acc_size %zu: must be 1..%d",
                     def->name, def->acc_size, EDDY_AGGREGATE_MAX_ACC_BYTES);
        return EDDY_ERR_INVAL;
    }
    if (def->result_type < EDDY_TYPE_BOOL || def->result_type > EDDY_TYPE_TIMESTAMP) {
        eddy__seterr(errstr, errstr_size, "aggregate '%s': result_type %d is not a value type",
                     def->name, (int)def->result_type);
        return EDDY_ERR_INVAL;
    }
    if (eddy__aggfn_builtin(def->name) || eddy__topology_find_agg(topo, def->name)) {
        eddy__seterr(errstr, errstr_size, "an aggregate named '%s' already exists", def->name);
        return EDDY_ERR_INVAL;
    }
    topo->aggs = eddy_realloc(topo->aggs, sizeof(*topo->aggs) * (size_t)(topo->naggs + 1));
    topo->aggs[topo->naggs++] = def;
    return EDDY_OK;
}

const eddy_aggregate_def_t *eddy__topology_find_agg(const eddy_topology_t *topo,
                                                    const char *name) {
    for (int i = 0; topo && i < topo->naggs; i++)
        if (!strcmp(topo->aggs[i]->name, name))
            return topo->aggs[i];
    return NULL;
}

eddy_err_t eddy_topology_check(eddy_topology_t *topo, char *errstr, size_t errstr_size) {
    eddy_plan_t *plan = eddy__plan_compile(topo, NULL, errstr, errstr_size);
    if (!plan)
        return EDDY_ERR_CONFIG;
    eddy__plan_free(plan);
    return EDDY_OK;
}
