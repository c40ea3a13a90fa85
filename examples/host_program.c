/*
 * A host program that embeds eddy: it builds a topology in C, feeds it
 * trades through a host source, adds its own operator, and receives the
 * results in a callback. Build it against an installed eddy:
 *
 *   cc host_program.c $(pkg-config --cflags --libs eddy) -o host_program
 */
#include <eddy.h>

#include <stdio.h>
#include <string.h>

/* Results arrive here, on a stream thread. */
static eddy_err_t print_result(const eddy_record_t *rec, void *opaque) {
    int *count = opaque;
    char line[512];
    eddy_record_to_json(rec, line, sizeof(line));
    printf("result: %s\n", line);
    (*count)++;
    return EDDY_OK;
}

/* A custom operator: tags each trade with a notional bucket. */
static const eddy_schema_t *bucket_schema(const eddy_schema_t *in, const eddy_cnode_t *args,
                                          void *opaque, char *errstr, size_t n) {
    (void)in; (void)args; (void)opaque; (void)errstr; (void)n;
    const char *names[] = {"symbol", "notional", "bucket"};
    eddy_type_t types[] = {EDDY_TYPE_STRING, EDDY_TYPE_DOUBLE, EDDY_TYPE_STRING};
    return eddy_schema_new(3, names, types);
}

static eddy_err_t bucket_process(void *state, eddy_operator_ctx_t *ctx,
                                 const eddy_record_t *rec) {
    (void)state;
    int sym = eddy_schema_field_index(rec->schema, "symbol");
    int notional = eddy_schema_field_index(rec->schema, "notional");
    double n = rec->values[notional].u.d;
    const char *b = n >= 1e6 ? "large" : n >= 1e4 ? "medium" : "small";
    eddy_value_t out[3] = {rec->values[sym], rec->values[notional],
                           {.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(b)}};
    out[2].u.s = b;
    return eddy_operator_emit(ctx, out, rec->ts_ms);
}

int main(void) {
    char err[512];
    eddy_topology_t *topo = eddy_topology_new("host-example");
    eddy_cnode_t *src = eddy_topology_add_source(topo, "trades", "host");
    eddy_cnode_t *schema = eddy_cnode_map(src, "schema");
    eddy_cnode_set(schema, "symbol", "string");
    eddy_cnode_set(schema, "qty", "int");
    eddy_cnode_set(schema, "price", "double");

    eddy_cnode_t *pl = eddy_topology_add_pipeline(topo, "big-trades", "trades");
    eddy_pipeline_add_step(pl, "filter", "qty > 0 and price > 0", NULL);
    eddy_cnode_t *fields;
    eddy_pipeline_add_step(pl, "map", NULL, &fields);
    eddy_cnode_set(fields, "symbol", "upper(symbol)");
    eddy_cnode_set(fields, "notional", "qty * price");
    eddy_pipeline_add_step(pl, "bucket", NULL, NULL);
    eddy_pipeline_to(pl, "results");

    static const eddy_operator_def_t bucket = {.abi = EDDY_OPERATOR_ABI, .name = "bucket",
                                               .output_schema = bucket_schema,
                                               .process = bucket_process};
    if (eddy_topology_register_operator(topo, &bucket, err, sizeof(err))) {
        fprintf(stderr, "register: %s\n", err);
        return 1;
    }
    int count = 0;
    eddy_topology_add_callback_sink(topo, "results", print_result, &count);

    eddy_conf_t *conf = eddy_conf_new();
    eddy_conf_set(conf, "threads", "1", err, sizeof(err));
    eddy_engine_t *eng = eddy_engine_new(topo, conf, err, sizeof(err));
    eddy_conf_destroy(conf);
    if (!eng) {
        fprintf(stderr, "engine: %s\n", err);
        return 1;
    }
    struct { const char *sym; int64_t qty; double px; } trades[] = {
        {"acme", 100, 12.5}, {"initech", 0, 99.0}, {"acme", 20000, 51.0}, {"globex", 5, 2.0}};
    for (size_t i = 0; i < sizeof(trades) / sizeof(trades[0]); i++) {
        eddy_value_t v[3] = {{.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(trades[i].sym)},
                             {.type = EDDY_TYPE_INT}, {.type = EDDY_TYPE_DOUBLE}};
        v[0].u.s = trades[i].sym;
        v[1].u.i = trades[i].qty;
        v[2].u.d = trades[i].px;
        eddy_engine_push(eng, "trades", 0, v, 1700000000000 + (int64_t)i);
    }
    eddy_engine_end_input(eng, "trades", -1);
    eddy_engine_start(eng);
    eddy_err_t rc = eddy_engine_poll(eng, 10000);
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    if (rc) {
        fprintf(stderr, "run: %s\n", eddy_err2str(rc));
        return 1;
    }
    printf("%d results (eddy %s)\n", count, eddy_version());
    return count == 3 ? 0 : 1;
}
