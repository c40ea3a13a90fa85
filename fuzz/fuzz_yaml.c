/*
 * libFuzzer target: the YAML topology loader (engine/yaml_load.c) and the
 * compiler behind `eddy check` (engine/compile.c, the operators' and
 * connectors' config parsers, expressions in steps): load + check, never
 * run.
 *
 * Every input is one topology file. Checks besides the sanitizers:
 *   - a refused file has a "NAME:LINE:COL: message" error naming the
 *     file (fuzz.yaml), with a line and column of at least 1;
 *   - a loaded file that fails the check says so the same way.
 * Inputs that mention Kafka or a schema registry are skipped: compiling a
 * Kafka source asks the cluster for its partitions (network, seconds of
 * timeouts), which is not parsing; test_bad_input_config covers their
 * configuration errors.
 *
 * Build and run: see fuzz_mcp_jsonrpc.c (target fuzz_yaml, dict
 * fuzz/yaml.dict, corpus fuzz/corpus/yaml).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "eddy.h"

static bool mentions(const uint8_t *d, size_t n, const char *word) {
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (!strncasecmp((const char *)d + i, word, w))
            return true;
    return false;
}

/* "fuzz.yaml:L:C: message" with L, C >= 1 */
static void check_where(const char *err) {
    unsigned line = 0, col = 0;
    int used = 0;
    if (strncmp(err, "fuzz.yaml:", 10) ||
        sscanf(err + 10, "%u:%u: %n", &line, &col, &used) != 2 || !used || line < 1 ||
        col < 1 || !err[10 + used]) {
        fprintf(stderr, "fuzz_yaml: error without FILE:LINE:COL: message: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 64 * 1024 || mentions(data, size, "kafka") || mentions(data, size, "registry") ||
        mentions(data, size, "debezium"))
        return 0;
    char err[1024] = "";
    eddy_topology_t *t = eddy_topology_load_string((const char *)data, size, "fuzz.yaml", err,
                                                   sizeof(err));
    if (!t) {
        check_where(err);
        return 0;
    }
    err[0] = 0;
    if (eddy_topology_check(t, err, sizeof(err)) != EDDY_OK)
        check_where(err);
    eddy_topology_destroy(t);
    return 0;
}
