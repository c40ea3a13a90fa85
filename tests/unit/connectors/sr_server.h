/*
 * Test helper: a tiny Confluent Schema Registry over real HTTP
 * (libmicrohttpd on 127.0.0.1, port 0) implementing GET /schemas/ids/{id}
 * and POST /subjects/{subject}/versions. It counts requests, records the
 * Authorization header, can answer 503 a number of times, and can be
 * stopped and restarted on its port. Registered schemas get ids from
 * next_id up (set it, and preload schemas[], before srv_start()).
 */
#ifndef EDDY_TESTS_SR_SERVER_H
#define EDDY_TESTS_SR_SERVER_H

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    struct MHD_Daemon *d;
    uint16_t port;
    int requests;       /* atomic */
    int fail_next;      /* atomic: answer 503 this many times */
    pthread_mutex_t lock;
    char auth[256];     /* last Authorization header */
    char *schemas[16];  /* by id (registered, or preloaded by the test) */
    char *subjects[16];
    int next_id;
} srv_t;

typedef struct {
    char *body;
    size_t len;
} upload_t;

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *body) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/vnd.schemaregistry.v1+json");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    (void)version;
    srv_t *s = cls;
    if (!*con_cls) { /* first call of a request: headers only */
        *con_cls = calloc(1, sizeof(upload_t));
        return MHD_YES;
    }
    upload_t *up = *con_cls;
    if (*upload_data_size) {
        up->body = realloc(up->body, up->len + *upload_data_size + 1);
        memcpy(up->body + up->len, upload_data, *upload_data_size);
        up->len += *upload_data_size;
        up->body[up->len] = 0;
        *upload_data_size = 0;
        return MHD_YES;
    }
    __atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&s->lock);
    snprintf(s->auth, sizeof(s->auth), "%s", auth ? auth : "");
    pthread_mutex_unlock(&s->lock);
    if (__atomic_load_n(&s->fail_next, __ATOMIC_SEQ_CST) > 0) {
        __atomic_sub_fetch(&s->fail_next, 1, __ATOMIC_SEQ_CST);
        return answer(conn, 503, "{\"error_code\":50301,\"message\":\"busy\"}");
    }
    int id;
    char subject[128];
    if (!strcmp(method, "GET") && sscanf(url, "/schemas/ids/%d", &id) == 1) {
        pthread_mutex_lock(&s->lock);
        char *text = id >= 0 && id < 16 ? s->schemas[id] : NULL;
        json_t *j = text ? json_pack("{s:s}", "schema", text) : NULL;
        pthread_mutex_unlock(&s->lock);
        if (!j)
            return answer(conn, 404, "{\"error_code\":40403,\"message\":\"Schema not found\"}");
        char *body = json_dumps(j, JSON_COMPACT);
        enum MHD_Result rc = answer(conn, 200, body);
        free(body);
        json_decref(j);
        return rc;
    }
    if (!strcmp(method, "POST") && sscanf(url, "/subjects/%127[^/]/versions", subject) == 1) {
        json_t *j = json_loadb(up->body ? up->body : "", up->len, 0, NULL);
        const char *text = j ? json_string_value(json_object_get(j, "schema")) : NULL;
        if (!text || !*text) {
            json_decref(j);
            return answer(conn, 422, "{\"error_code\":42201,\"message\":\"Invalid schema\"}");
        }
        pthread_mutex_lock(&s->lock);
        int nid = s->next_id++;
        s->schemas[nid] = strdup(text);
        s->subjects[nid] = strdup(subject);
        pthread_mutex_unlock(&s->lock);
        json_decref(j);
        char body[64];
        snprintf(body, sizeof(body), "{\"id\":%d}", nid);
        return answer(conn, 200, body);
    }
    return answer(conn, 404, "{\"error_code\":404,\"message\":\"HTTP 404 Not Found\"}");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    upload_t *up = *con_cls;
    if (up) {
        free(up->body);
        free(up);
    }
    *con_cls = NULL;
}

/* Start on 127.0.0.1:port (0: any). Returns 0 or -1. */
static int srv_start(srv_t *s, uint16_t port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, port, NULL, NULL, handler, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_END);
    if (!s->d)
        return -1;
    s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return 0;
}

static void srv_stop(srv_t *s) {
    if (s->d)
        MHD_stop_daemon(s->d);
    s->d = NULL;
}

/* A stopped server with no schemas; ids are handed out from first_id. */
static srv_t *srv_new(int first_id) {
    srv_t *s = calloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->next_id = first_id;
    return s;
}

static void srv_free(srv_t *s) {
    srv_stop(s);
    for (int i = 0; i < 16; i++) {
        free(s->schemas[i]);
        free(s->subjects[i]);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

#endif /* EDDY_TESTS_SR_SERVER_H */
