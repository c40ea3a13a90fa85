/* Helpers shared by the command-line programs (eddy, mcp-serve). */
#ifndef EDDY_CLI_COMMON_H
#define EDDY_CLI_COMMON_H
#include "eddy.h"

/** Apply "KEY=VALUE" to conf; prints "CMD: reason" and returns 2 on error. */
int eddy_cli_set_kv(eddy_conf_t *conf, const char *kv, const char *cmd);
/** Load the topology and build its engine (which restores state); takes
 *  conf. Prints the reason and returns NULL on error. */
eddy_engine_t *eddy_cli_open_engine(const char *file, eddy_conf_t *conf, eddy_topology_t **topo);
#endif
