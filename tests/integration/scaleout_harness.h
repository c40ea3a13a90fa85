/*
 * Shared by the scale-out test and the failover benchmark: instances of one
 * topology as separate `mcp-serve --http 127.0.0.1:0` processes on the mock
 * cluster the caller holds, and a small MCP client over HTTP (libcurl).
 * Header-only (static functions) so each program stays one executable.
 */
#ifndef EDDY_TESTS_SCALEOUT_HARNESS_H
#define EDDY_TESTS_SCALEOUT_HARNESS_H

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>

#include "mcp/mcp_int.h"
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SO static __attribute__((unused))

typedef struct {
    pid_t pid;
    int port;
    char sid[128];
    char yaml[512];
    char log[560];
} so_inst_t;

SO double so_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

SO void so_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A benchmark's results file opened for writing (NULL and a message when
 * it cannot be), with the time now in when ("2026-01-31T12:00Z"). */
SO FILE *so_results_open(const char *prog, const char *path, char *when, size_t size) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        return NULL;
    }
    time_t now = time(NULL);
    strftime(when, size, "%Y-%m-%dT%H:%MZ", gmtime(&now));
    return f;
}

/* Every instance started and not stopped yet, for so_kill_all. */
static pid_t so_pids[64];

/* SIGKILL whatever instance is still running (a failed test leaves them
 * behind otherwise, orphans of the cluster the test held). */
SO void so_kill_all(void) {
    for (int i = 0; i < 64; i++)
        if (so_pids[i] > 0) {
            kill(so_pids[i], SIGKILL);
            waitpid(so_pids[i], NULL, 0);
            so_pids[i] = 0;
        }
}

static void so_track(pid_t pid, bool add) {
    for (int i = 0; i < 64; i++)
        if (add ? so_pids[i] == 0 : so_pids[i] == pid) {
            so_pids[i] = add ? pid : 0;
            return;
        }
}

/* Start `mcp-serve --http 127.0.0.1:0 yaml` and wait for its port. */
SO bool so_start(so_inst_t *in, const char *mcp_serve, const char *yaml) {
    char pf[600];
    snprintf(in->yaml, sizeof(in->yaml), "%s", yaml);
    snprintf(in->log, sizeof(in->log), "%s.log", yaml);
    snprintf(pf, sizeof(pf), "%s.port", yaml);
    unlink(pf);
    in->port = 0;
    in->sid[0] = 0;
    pid_t parent = getpid();
    in->pid = fork();
    if (in->pid < 0)
        return false;
    if (in->pid > 0)
        so_track(in->pid, true);
    if (in->pid == 0) {
        /* dies with the test or benchmark, however that ends (the
         * cluster it needs is gone then) */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
            _exit(127);
        if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
            !freopen(in->log, "a", stderr))
            _exit(127);
        execl(mcp_serve, mcp_serve, yaml, "--http", "127.0.0.1:0", "--port-file", pf,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1200 && !in->port; i++) { /* up to 60 s */
        FILE *f = fopen(pf, "r");
        if (f) {
            if (fscanf(f, "%d", &in->port) != 1)
                in->port = 0;
            fclose(f);
        }
        if (!in->port)
            so_sleep_ms(50);
        int st;
        if (waitpid(in->pid, &st, WNOHANG) == in->pid) {
            so_track(in->pid, false);
            in->pid = 0;
            return false;
        }
    }
    return in->port > 0;
}

/* SIGTERM (clean) or SIGKILL; the exit status (128 + signal when killed). */
SO int so_stop(so_inst_t *in, int sig) {
    if (in->pid <= 0)
        return -1;
    kill(in->pid, sig);
    int st = 0;
    waitpid(in->pid, &st, 0);
    so_track(in->pid, false);
    in->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* POST one JSON-RPC message (mcp/route.c's client); the parsed answer,
 * NULL on a transport error. Keeps the session id the answer carries. */
SO json_t *so_post(so_inst_t *in, const char *body, long timeout_ms) {
    char url[128], sid[128] = "", err[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", in->port);
    json_t *j = eddy__mcp_http_post(url, in->sid, body, timeout_ms, sid, err, sizeof(err));
    if (sid[0])
        snprintf(in->sid, sizeof(in->sid), "%s", sid);
    return j;
}

/* A tools/call; its structuredContent (new reference) or NULL, *is_error
 * set when the tool said isError (then the text content is returned as a
 * JSON string). Opens a session first when there is none. */
SO json_t *so_tool(so_inst_t *in, const char *tool, json_t *args, bool *is_error) {
    if (!in->sid[0]) {
        json_t *r = so_post(in,
                            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                            "{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},"
                            "\"clientInfo\":{\"name\":\"scaleout-test\",\"version\":\"1\"}}}",
                            10000);
        json_decref(r);
        if (!in->sid[0]) {
            json_decref(args);
            return NULL;
        }
    }
    json_t *req = json_pack("{s:s, s:i, s:s, s:{s:s, s:o}}", "jsonrpc", "2.0", "id", 2, "method",
                            "tools/call", "params", "name", tool, "arguments", args);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *r = so_post(in, body, 30000);
    free(body);
    json_t *res = r ? json_object_get(r, "result") : NULL;
    json_t *out = NULL;
    if (res) {
        *is_error = json_is_true(json_object_get(res, "isError"));
        if (*is_error) {
            json_t *t = json_object_get(json_array_get(json_object_get(res, "content"), 0), "text");
            out = json_incref(t);
        } else {
            out = json_incref(json_object_get(res, "structuredContent"));
        }
    }
    json_decref(r);
    return out;
}

/* The partitions (tasks) of topic an instance has open (get_metrics' lag),
 * as a bit set; -1 when the instance does not answer. *lag gets the sum. */
SO long so_parts(so_inst_t *in, const char *topic, long *lag) {
    bool err = false;
    json_t *m = so_tool(in, "get_metrics", json_object(), &err);
    if (!m || err) {
        json_decref(m);
        return -1;
    }
    long bits = 0;
    *lag = 0;
    json_t *ps = json_object_get(json_object_get(m, "lag"), "partitions");
    size_t i;
    json_t *p;
    json_array_foreach(ps, i, p) {
        if (strcmp(json_string_value(json_object_get(p, "topic")) ?: "", topic))
            continue;
        bits |= 1L << json_integer_value(json_object_get(p, "partition"));
        json_t *l = json_object_get(p, "lag");
        *lag += json_is_integer(l) ? (long)json_integer_value(l) : 1000000;
    }
    json_decref(m);
    return bits;
}

/* Every entry of a kv store the instance answers (scan_store, all pages),
 * added to obj as key -> compact JSON of the value. false on an error. */
SO bool so_scan_into(so_inst_t *in, const char *store, const char *keyfield, json_t *obj) {
    const char *cursor = NULL;
    char *cur = NULL;
    bool ok = true;
    do {
        json_t *args = json_pack("{s:s, s:i}", "store", store, "limit", 500);
        if (cursor)
            json_object_set_new(args, "cursor", json_string(cursor));
        bool err = false;
        json_t *r = so_tool(in, "scan_store", args, &err);
        free(cur);
        cur = NULL;
        cursor = NULL;
        if (!r || err) {
            json_decref(r);
            ok = false;
            break;
        }
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(r, "items"), i, it) {
            json_t *kv = json_object_get(it, keyfield);
            char num[32];
            const char *k = json_string_value(kv);
            if (json_is_integer(kv)) { /* an integer key: its decimal form */
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(kv));
                k = num;
            }
            if (k)
                json_object_set(obj, k, it);
        }
        const char *nc = json_string_value(json_object_get(r, "next_cursor"));
        if (nc)
            cursor = cur = strdup(nc);
        json_decref(r);
    } while (cursor);
    free(cur);
    return ok;
}

#endif /* EDDY_TESTS_SCALEOUT_HARNESS_H */
