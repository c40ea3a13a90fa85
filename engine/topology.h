#ifndef EDDY_TOPOLOGY_H
#define EDDY_TOPOLOGY_H
#include "eddy_int.h"

struct eddy_topology_s {
    eddy_cnode_t *root;
    char *file;                        /* owned; every node's file points here */
    const eddy_operator_def_t **ops;   /* host-registered operators */
    int nops;
    const eddy_aggregate_def_t **aggs; /* host-registered aggregates */
    int naggs;
};

const eddy_operator_def_t *eddy__topology_find_op(const eddy_topology_t *topo, const char *name);
const eddy_aggregate_def_t *eddy__topology_find_agg(const eddy_topology_t *topo,
                                                    const char *name);

#endif
