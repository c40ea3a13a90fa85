/* Helpers shared by the command-line programs (eddy, mcp-serve). */
#include <stdio.h>
#include <string.h>

#include "cli_common.h"

/* Apply "KEY=VALUE" to conf; prints the reason and returns 2 on error. */
int eddy_cli_set_kv(eddy_conf_t *conf, const char *kv, const char *cmd) {
    char key[256], errstr[1024];
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
        fprintf(stderr, "%s: --set expects KEY=VALUE, got '%s'\n", cmd, kv);
        return 2;
    }
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    if (eddy_conf_set(conf, key, eq + 1, errstr, sizeof(errstr))) {
        fprintf(stderr, "%s: %s\n", cmd, errstr);
        return 2;
    }
    return 0;
}

/* Load the topology and build its engine (which restores state); takes
 * conf. Prints the reason and returns NULL on error. */
eddy_engine_t *eddy_cli_open_engine(const char *file, eddy_conf_t *conf, eddy_topology_t **topo) {
    char errstr[1024];
    *topo = eddy_topology_load_file(file, errstr, sizeof(errstr));
    if (!*topo) {
        fprintf(stderr, "%s\n", errstr);
        eddy_conf_destroy(conf);
        return NULL;
    }
    eddy_engine_t *eng = eddy_engine_new(*topo, conf, errstr, sizeof(errstr));
    eddy_conf_destroy(conf);
    if (!eng) {
        fprintf(stderr, "%s\n", errstr);
        eddy_topology_destroy(*topo);
        *topo = NULL;
    }
    return eng;
}

