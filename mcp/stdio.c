/*
 * MCP over stdio: newline-delimited JSON-RPC on in_fd/out_fd, nothing
 * else on out_fd (logs go to stderr).
 *
 * A reader thread splits lines; notifications (notifications/cancelled
 * among them) are handled at once, requests go to a worker through a
 * queue, so a cancellation can overtake the request it cancels. Responses
 * and server notifications share one write lock, one message per line.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcp.h"
#include "mcp_transport.h"

typedef struct qmsg {
    json_t *msg;
    struct qmsg *next;
} qmsg_t;

typedef struct {
    eddy_mcp_t *m;
    eddy_mcp_session_t *sess;
    int out_fd;
    pthread_mutex_t wlock;
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    qmsg_t *head, *tail;
    bool eof;
    atomic_bool *stop;
} stdio_t;

static void write_line(stdio_t *st, const char *json, size_t len) {
    pthread_mutex_lock(&st->wlock);
    const char *p = json;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(st->out_fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        left -= (size_t)w;
    }
    while (write(st->out_fd, "\n", 1) < 0 && errno == EINTR)
        ;
    pthread_mutex_unlock(&st->wlock);
}

static void on_notify(void *opaque, const char *json, size_t len) {
    write_line(opaque, json, len);
}

static void *worker_main(void *arg) {
    stdio_t *st = arg;
    for (;;) {
        pthread_mutex_lock(&st->qlock);
        while (!st->head && !st->eof)
            pthread_cond_wait(&st->qcond, &st->qlock);
        qmsg_t *q = st->head;
        if (q) {
            st->head = q->next;
            if (!st->head)
                st->tail = NULL;
        }
        pthread_mutex_unlock(&st->qlock);
        if (!q)
            return NULL; /* eof and drained */
        eddy_mcp_result_t r;
        eddy__mcp_handle_json(st->sess, q->msg, &r);
        json_decref(q->msg);
        free(q);
        if (r.response) {
            write_line(st, r.response, strlen(r.response));
            free(r.response);
        }
    }
}

static void enqueue(stdio_t *st, json_t *msg) {
    qmsg_t *q = calloc(1, sizeof(*q));
    q->msg = msg;
    pthread_mutex_lock(&st->qlock);
    if (st->tail)
        st->tail->next = q;
    else
        st->head = q;
    st->tail = q;
    pthread_cond_signal(&st->qcond);
    pthread_mutex_unlock(&st->qlock);
}

/* One line from the client. */
static void on_line(stdio_t *st, const char *line, size_t len) {
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (!len)
        return;
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY, &je);
    if (!j) {
        char *e = eddy__rpc_error_str(NULL, RPC_PARSE_ERROR, "parse error at column %d: %s",
                                      je.column, je.text);
        write_line(st, e, strlen(e));
        free(e);
        return;
    }
    /* notifications (no id) at once; requests in order on the worker */
    if (json_is_object(j) && !json_object_get(j, "id")) {
        eddy_mcp_result_t r;
        eddy__mcp_handle_json(st->sess, j, &r);
        json_decref(j);
        if (r.response) {
            write_line(st, r.response, strlen(r.response));
            free(r.response);
        }
        return;
    }
    enqueue(st, j);
}

int eddy__mcp_serve_stdio(eddy_mcp_t *m, int in_fd, int out_fd, atomic_bool *stop) {
    stdio_t st = {.m = m, .out_fd = out_fd, .stop = stop};
    pthread_mutex_init(&st.wlock, NULL);
    pthread_mutex_init(&st.qlock, NULL);
    pthread_cond_init(&st.qcond, NULL);
    st.sess = eddy__mcp_session_new(m, on_notify, &st);
    pthread_t worker;
    if (pthread_create(&worker, NULL, worker_main, &st)) {
        eddy__mcp_session_close(st.sess);
        return -1;
    }
    size_t max = eddy__mcp_opts(m)->max_request_bytes;
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    bool skipping = false; /* inside an oversized line */
    char chunk[65536];
    while (!atomic_load(stop)) {
        /* wait in short slices, so a stop request that lands between the
         * check above and a blocking read is still seen */
        struct pollfd pfd = {.fd = in_fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 200);
        if (pr == 0 || (pr < 0 && errno == EINTR))
            continue;
        ssize_t n = read(in_fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            char c = chunk[i];
            if (c == '\n') {
                if (skipping) {
                    char *e = eddy__rpc_error_str(NULL, RPC_INVALID_REQUEST,
                                                  "message over the limit of %zu bytes", max);
                    write_line(&st, e, strlen(e));
                    free(e);
                } else {
                    on_line(&st, buf, len);
                }
                len = 0;
                skipping = false;
                continue;
            }
            if (skipping)
                continue;
            if (len >= max) {
                skipping = true;
                continue;
            }
            if (len == cap) {
                cap *= 2;
                buf = realloc(buf, cap);
            }
            buf[len++] = c;
        }
    }
    if (len && !skipping)
        on_line(&st, buf, len);
    free(buf);
    pthread_mutex_lock(&st.qlock);
    st.eof = true;
    pthread_cond_signal(&st.qcond);
    pthread_mutex_unlock(&st.qlock);
    pthread_join(worker, NULL);
    eddy__mcp_session_close(st.sess);
    pthread_mutex_destroy(&st.wlock);
    pthread_mutex_destroy(&st.qlock);
    pthread_cond_destroy(&st.qcond);
    return 0;
}
