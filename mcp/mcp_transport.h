/* MCP transports: stdio (mcp/stdio.c) and Streamable HTTP (mcp/http.c). */
#ifndef EDDY_MCP_TRANSPORT_H
#define EDDY_MCP_TRANSPORT_H
#include <stdatomic.h>

#include "mcp.h"

/** @brief Serve one session on in_fd/out_fd until end of input or *stop.
 *  @returns 0, or -1 when the worker thread cannot start. */
int eddy__mcp_serve_stdio(eddy_mcp_t *m, int in_fd, int out_fd, atomic_bool *stop);

typedef struct eddy_mcp_http_s eddy_mcp_http_t;

typedef struct eddy_mcp_http_opts {
    size_t max_request_bytes;  /* 0: the server's */
    const char *path;          /* "/mcp" */
    const char *const *origins; /* allowed Origin values besides loopback ("*": any) */
    int norigins;
    bool prefer_sse;           /* answer POSTs with SSE when the client accepts both */
    int64_t session_idle_s;    /* end sessions idle this long without a stream (0: never) */
} eddy_mcp_http_opts_t;

void eddy__mcp_http_opts_default(eddy_mcp_http_opts_t *o);
/** @brief Listen on addr ("127.0.0.1:8080"; port 0 picks a free one). */
eddy_mcp_http_t *eddy__mcp_http_start(eddy_mcp_t *m, const char *addr,
                                      const eddy_mcp_http_opts_t *opts, char *errstr,
                                      size_t errstr_size);
/** The port listened on. */
int eddy__mcp_http_port(const eddy_mcp_http_t *h);
void eddy__mcp_http_stop(eddy_mcp_http_t *h);
#endif
