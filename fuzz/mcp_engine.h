/*
 * The tiny engine the MCP fuzz targets (fuzz_mcp_jsonrpc, fuzz_http) serve:
 * a host source, a kv aggregate store with a one-field key, one with a
 * two-field key, and a tumbling window store, with a few keys committed,
 * so tool calls and resource reads do real lookups, scans and cursor
 * decoding. fuzz_mcp_engine_start() builds it once (from
 * LLVMFuzzerInitialize) and removes its state directory at exit.
 * Not a target itself (the build globs fuzz/fuzz_*.c).
 */
#ifndef EDDY_FUZZ_MCP_ENGINE_H
#define EDDY_FUZZ_MCP_ENGINE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy.h"
#include "mcp/mcp.h"

static eddy_topology_t *topo;
static eddy_engine_t *eng;
static eddy_mcp_t *srv;
static char state_dir[64];

static const char *YAML =
    "application: fuzz\n"
    "settings: {threads: 1, state.dir: '%s'}\n"
    "sources: [{name: in, type: host, partitions: 1, schema: {user: string, n: int},\n"
    "           watermark: {max_out_of_orderness: 0ms}}]\n"
    "sinks: [{name: void, type: blackhole}]\n"
    "pipelines:\n"
    "  - {name: totals, from: in, to: void,\n"
    "     steps: [{aggregate: {by: user, fields: {c: count(), s: sum(n)}, store: totals}}]}\n"
    "  - {name: pairs, from: in, to: void,\n"
    "     steps: [{aggregate: {by: [user, n], fields: {c: count()}, store: pairs}}]}\n"
    "  - name: per10\n"
    "    from: in\n"
    "    to: void\n"
    "    steps:\n"
    "      - window: {type: tumbling, size: 10ms, retention: 1h, store: per10}\n"
    "        aggregate: {by: user, fields: {c: count(), s: sum(n)}}\n";

static void cleanup(void) {
    eddy__mcp_destroy(srv);
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", state_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", state_dir);
}

/* The engine and an MCP server over it (max_request_bytes 64 KiB). */
static void fuzz_mcp_engine_start(void) {
    snprintf(state_dir, sizeof(state_dir), "/tmp/eddy_fuzz_XXXXXX");
    if (!mkdtemp(state_dir))
        abort();
    char y[4096], err[1024];
    snprintf(y, sizeof(y), YAML, state_dir);
    topo = eddy_topology_load_string(y, strlen(y), "fuzz.yaml", err, sizeof(err));
    if (!topo || !(eng = eddy_engine_new(topo, NULL, err, sizeof(err)))) {
        fprintf(stderr, "fuzz: %s\n", err);
        abort();
    }
    /* u0..u4 (and "" and a multi-byte name); user i has i+1 records */
    static const char *users[] = {"u0", "u1", "u2", "u3", "u4", "", "\xc3\xa9t\xc3\xa9"};
    for (int i = 0; i < 7; i++)
        for (int j = 0; j <= i % 5; j++) {
            eddy_value_t v[2] = {{.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(users[i])},
                                 {.type = EDDY_TYPE_INT}};
            v[0].u.s = users[i];
            v[1].u.i = j;
            if (eddy_engine_push(eng, "in", 0, v, 1700000000000LL + 10 * j) != EDDY_OK)
                abort();
        }
    if (eddy_engine_end_input(eng, "in", -1) || eddy_engine_start(eng) ||
        eddy_engine_poll(eng, 60000) != EDDY_OK)
        abort();
    eddy_mcp_opts_t o;
    eddy__mcp_opts_default(&o);
    o.max_request_bytes = 64 * 1024;
    srv = eddy__mcp_new(eng, &o);
    if (!srv)
        abort();
    atexit(cleanup);
}
#endif
