/*
 * The one list of operator, sink and source families. Adding a family means
 * adding its vtable here; the engine never switches on type.
 */
#include "plan.h"

extern const eddy_op_ops_t eddy__op_table; /* operators/table.c */
extern const eddy_op_ops_t eddy__op_dedup; /* operators/dedup.c */
extern const eddy_op_ops_t eddy__op_lookup_join; /* operators/lookup.c */
extern const eddy_op_ops_t eddy__op_cep;   /* operators/cep.c */

static const eddy_op_ops_t *const ops_tab[] = {
    &eddy__op_filter, &eddy__op_map,       &eddy__op_extend,       &eddy__op_key_by,
    &eddy__op_aggregate, &eddy__op_window, &eddy__op_table,        &eddy__op_dedup,
    &eddy__op_lookup_join, &eddy__op_join, &eddy__op_cep,          NULL};
static const char *const op_names[] = {"filter", "map",   "extend", "key_by", "aggregate", "window",
                                       "table",  "dedup", "lookup", "join",   "cep",       NULL};

extern const eddy_op_ops_t eddy__sink_kafka; /* connectors/kafka_sink.c */

static const eddy_op_ops_t *const sink_tab[] = {&eddy__sink_stdout, &eddy__sink_file,
                                                &eddy__sink_blackhole, &eddy__sink_callback,
                                                &eddy__sink_kafka, NULL};
static const char *const sink_names[] = {"stdout", "file", "blackhole", "callback", "kafka",
                                         NULL};

extern const eddy_src_ops_t eddy__src_transactions; /* connectors/txgen_source.c */

static const eddy_src_ops_t *const src_tab[] = {&eddy__src_nexmark, &eddy__src_file,
                                                &eddy__src_host,    &eddy__src_kafka,
                                                &eddy__src_transactions, NULL};
static const char *const src_names[] = {"nexmark", "file", "host", "transactions", NULL};

const eddy_op_ops_t *eddy__op_lookup(const char *name) {
    for (int i = 0; ops_tab[i]; i++)
        if (!strcmp(ops_tab[i]->name, name))
            return ops_tab[i];
    return NULL;
}
const eddy_op_ops_t *eddy__sink_lookup(const char *type) {
    for (int i = 0; sink_tab[i]; i++)
        if (!strcmp(sink_tab[i]->name, type))
            return sink_tab[i];
    return NULL;
}
const eddy_src_ops_t *eddy__src_lookup(const char *name) {
    for (int i = 0; src_tab[i]; i++)
        if (!strcmp(src_tab[i]->name, name))
            return src_tab[i];
    return NULL;
}
const char *const *eddy__op_names(void) { return op_names; }
const char *const *eddy__sink_names(void) { return sink_names; }
const char *const *eddy__src_names(void) { return src_names; }
