/*
 * An in-process Confluent Schema Registry, so that Avro topologies run
 * (and are tested) with no registry installed. It is reached the way a
 * real one is, over HTTP on 127.0.0.1 through eddy's libcurl client, so
 * nothing in the Kafka source or sink knows it is embedded; and the same
 * code is the sr-server test program (tests/tools/sr_server.c), whose
 * fault injection the client's retry and circuit-breaker tests use.
 *
 * It keeps, in memory, the REST subset a Kafka source and sink use, with
 * Confluent's status codes and error bodies:
 *
 *   POST /subjects/{s}/versions          register: {"schema": "..."} -> {"id": N}
 *   POST /subjects/{s}                   look a schema up under a subject
 *   GET  /schemas/ids/{id}               {"schema": "..."}
 *   GET  /subjects                       ["a", "b"]
 *   GET  /subjects/{s}/versions          [1, 2]
 *   GET  /subjects/{s}/versions/{v}      v = N | latest | -1
 *   GET  /subjects/{s}/versions/{v}/schema  the schema text alone
 *   GET  /config                         {"compatibilityLevel": "NONE"}
 *
 * Ids are global and given per distinct schema: the same schema (compared
 * as compact JSON with sorted keys, so whitespace and key order do not
 * matter) registered again, under any subject, gets its first id back, as
 * Confluent's registry does. A schema must parse with Avro C, else 422
 * (42201). Compatibility is not checked (the config says NONE).
 *
 * Threads: one libmicrohttpd polling thread serves every request; the
 * registry is under one mutex because eddy__sr_embedded_register() may be
 * called from any thread while it serves. Requests are rare (a schema per
 * id and process), so the lock is never contended in practice.
 */
#include "connectors/sr_embedded.h"

#include <arpa/inet.h>
#include <avro.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>

#define MAX_BODY_BYTES (4u << 20)
#define CONTENT_TYPE "application/vnd.schemaregistry.v1+json"

typedef struct {
    char *name;
    int *ids; /* ids[v - 1]: the schema id of version v */
    int nversions, cap;
} subject_t;

struct eddy_sr_embedded_s {
    char *log_name;
    pthread_mutex_t lock; /* guards everything below but `down` and `d` */
    char **text;          /* text[id - 1]: compact JSON as first registered, served back */
    char **canon;         /* canon[id - 1]: compact JSON with sorted keys, compared */
    int nschemas, cap;
    subject_t *subjects;
    int nsubjects, subjects_cap;
    int fail_first;   /* requests still to answer 503 */
    int64_t requests; /* answered */
    bool verbose;
    int down;             /* atomic */
    struct MHD_Daemon *d; /* set once by listen */
    int port;
};

/* ------------------------------------------------------------- registry */

static subject_t *find_subject(eddy_sr_embedded_t *r, const char *name) {
    for (int i = 0; i < r->nsubjects; i++)
        if (!strcmp(r->subjects[i].name, name))
            return &r->subjects[i];
    return NULL;
}

/* The version of schema `id` under `sub`, or 0. */
static int version_of(const subject_t *sub, int id) {
    for (int v = 0; v < sub->nversions; v++)
        if (sub->ids[v] == id)
            return v + 1;
    return 0;
}

/* jansson's text (its allocator) as ours */
static char *dump(const json_t *j, size_t flags) {
    char *s = json_dumps(j, flags);
    if (!s)
        return NULL;
    char *copy = eddy_strdup(s);
    free(s);
    return copy;
}

/*
 * Check schema text and bring it to its two stored forms. Returns 0, or -1
 * with Confluent's reason in why.
 */
static int normalise(const char *schema, char **text, char **canon, char *why, size_t why_size) {
    json_error_t jerr;
    json_t *j = json_loads(schema, JSON_DECODE_ANY, &jerr);
    if (!j) {
        snprintf(why, why_size, "Invalid schema: not JSON: %s (line %d, column %d)", jerr.text,
                 jerr.line, jerr.column);
        return -1;
    }
    avro_schema_t s;
    if (avro_schema_from_json_length(schema, strlen(schema), &s)) {
        snprintf(why, why_size, "Invalid schema: %s", avro_strerror());
        json_decref(j);
        return -1;
    }
    avro_schema_decref(s);
    *text = dump(j, JSON_COMPACT | JSON_ENCODE_ANY);
    *canon = dump(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(j);
    if (!*text || !*canon) { /* jansson refuses strings that are not UTF-8 */
        eddy_free(*text);
        eddy_free(*canon);
        snprintf(why, why_size, "Invalid schema: not UTF-8");
        return -1;
    }
    return 0;
}

/* Id of a schema already known (by canonical text), or 0. */
static int find_schema(const eddy_sr_embedded_t *r, const char *canon) {
    for (int i = 0; i < r->nschemas; i++)
        if (!strcmp(r->canon[i], canon))
            return i + 1;
    return 0;
}

/* Register under r->lock; returns 0, or -1 with the reason in why. */
static int reg_register(eddy_sr_embedded_t *r, const char *subject, const char *schema, int *id,
                        int *version, char *why, size_t why_size) {
    char *text, *canon;
    if (normalise(schema, &text, &canon, why, why_size))
        return -1;
    *id = find_schema(r, canon);
    if (*id) {
        eddy_free(text);
        eddy_free(canon);
    } else {
        if (r->nschemas == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 16;
            r->text = eddy_realloc(r->text, sizeof(char *) * (size_t)r->cap);
            r->canon = eddy_realloc(r->canon, sizeof(char *) * (size_t)r->cap);
        }
        r->text[r->nschemas] = text;
        r->canon[r->nschemas] = canon;
        *id = ++r->nschemas;
    }
    subject_t *sub = find_subject(r, subject);
    if (!sub) {
        if (r->nsubjects == r->subjects_cap) {
            r->subjects_cap = r->subjects_cap ? 2 * r->subjects_cap : 8;
            r->subjects = eddy_realloc(r->subjects, sizeof(subject_t) * (size_t)r->subjects_cap);
        }
        sub = &r->subjects[r->nsubjects++];
        *sub = (subject_t){.name = eddy_strdup(subject)};
    }
    *version = version_of(sub, *id);
    if (!*version) {
        if (sub->nversions == sub->cap) {
            sub->cap = sub->cap ? 2 * sub->cap : 4;
            sub->ids = eddy_realloc(sub->ids, sizeof(int) * (size_t)sub->cap);
        }
        sub->ids[sub->nversions++] = *id;
        *version = sub->nversions;
    }
    return 0;
}

/* ----------------------------------------------------------------- HTTP */

typedef struct {
    char *body;
    size_t len;
    bool too_large;
} upload_t;

/* The body of one answer, built by the route that handled the request. */
typedef struct {
    unsigned status;
    char *body; /* eddy_malloc'd */
} reply_t;

static void reply_json(reply_t *rep, unsigned status, json_t *j) {
    rep->status = status;
    rep->body = j ? dump(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!rep->body) { /* json_pack refuses text that is not UTF-8 */
        rep->status = 500;
        rep->body = eddy_strdup("{\"error_code\":50001,\"message\":\"schema registry: cannot "
                                "encode the answer (not UTF-8?)\"}");
    }
}

static void reply_error(reply_t *rep, unsigned status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply_error(reply_t *rep, unsigned status, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(rep, status, json_pack("{s:i,s:s}", "error_code", code, "message", msg));
}

static void reply_version(reply_t *rep, const eddy_sr_embedded_t *r, const subject_t *sub, int v) {
    int id = sub->ids[v - 1];
    reply_json(rep, 200,
               json_pack("{s:s,s:i,s:i,s:s}", "subject", sub->name, "version", v, "id", id,
                         "schema", r->text[id - 1]));
}

/* A positive decimal int, else -1. */
static int parse_pos_int(const char *s) {
    if (!*s || strlen(s) > 9)
        return -1;
    int n = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        n = n * 10 + (*s - '0');
    }
    return n > 0 ? n : -1;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The version a {v} path segment names under sub: 0 after an error reply. */
static int resolve_version(reply_t *rep, const subject_t *sub, const char *seg) {
    if (!strcmp(seg, "latest") || !strcmp(seg, "-1"))
        return sub->nversions;
    int v = parse_pos_int(seg);
    if (v < 0) {
        reply_error(rep, 422, 42202,
                    "The specified version '%s' is not a valid version id. Allowed values are "
                    "between [1, 2^31-1] and the string \"latest\"",
                    seg);
        return 0;
    }
    if (v > sub->nversions) {
        reply_error(rep, 404, 40402, "Version %d not found.", v);
        return 0;
    }
    return v;
}

/* The "schema" member of a registration body, or NULL after an error reply. */
static const char *body_schema(reply_t *rep, json_t *body) {
    const char *schema = json_string_value(json_object_get(body, "schema"));
    const char *type = json_string_value(json_object_get(body, "schemaType"));
    json_t *refs = json_object_get(body, "references");
    if (!schema) {
        reply_error(rep, 422, 42201, "Invalid schema: the body needs a \"schema\" string");
        return NULL;
    }
    if (type && strcmp(type, "AVRO")) {
        reply_error(rep, 422, 42201,
                    "Invalid schema: schemaType %s is not supported by this registry", type);
        return NULL;
    }
    if (json_array_size(refs)) {
        reply_error(rep, 422, 42201,
                    "Invalid schema: schema references are not supported by this registry");
        return NULL;
    }
    return schema;
}

/* POST /subjects/{s}/versions and POST /subjects/{s}. */
static void route_post_subject(eddy_sr_embedded_t *r, reply_t *rep, const char *subject,
                               bool lookup, const upload_t *up) {
    json_error_t jerr;
    json_t *body = json_loadb(up->body ? up->body : "", up->len, 0, &jerr);
    if (!body) {
        reply_error(rep, 400, 400, "Unexpected character: the body is not JSON: %s", jerr.text);
        return;
    }
    const char *schema = body_schema(rep, body);
    if (!schema) {
        json_decref(body);
        return;
    }
    char why[512];
    if (lookup) {
        subject_t *sub = find_subject(r, subject);
        char *text, *canon;
        if (!sub)
            reply_error(rep, 404, 40401, "Subject '%s' not found.", subject);
        else if (normalise(schema, &text, &canon, why, sizeof(why)))
            reply_error(rep, 422, 42201, "%s", why);
        else {
            int id = find_schema(r, canon);
            int v = id ? version_of(sub, id) : 0;
            if (v)
                reply_version(rep, r, sub, v);
            else
                reply_error(rep, 404, 40403, "Schema not found");
            eddy_free(text);
            eddy_free(canon);
        }
    } else {
        int id, version;
        if (reg_register(r, subject, schema, &id, &version, why, sizeof(why)))
            reply_error(rep, 422, 42201, "%s", why);
        else
            reply_json(rep, 200, json_pack("{s:i}", "id", id));
    }
    json_decref(body);
}

/*
 * Route one complete request (under r->lock). Path segments are split on
 * '/' after libmicrohttpd has unescaped the URL, so a subject holding "%2F"
 * is not supported.
 */
static void route(eddy_sr_embedded_t *r, reply_t *rep, const char *method, const char *url,
                  const upload_t *up) {
    char path[1024];
    char *seg[8];
    int n = 0;
    snprintf(path, sizeof(path), "%s", url);
    for (char *save = NULL, *t = strtok_r(path, "/", &save); t && n < 8;
         t = strtok_r(NULL, "/", &save))
        seg[n++] = t;
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");

    if (n == 0 || (n == 1 && !strcmp(seg[0], "config"))) {
        if (!get)
            goto not_allowed;
        reply_json(rep, 200, n ? json_pack("{s:s}", "compatibilityLevel", "NONE") : json_object());
        return;
    }
    if (n == 3 && !strcmp(seg[0], "schemas") && !strcmp(seg[1], "ids")) {
        if (!get)
            goto not_allowed;
        int id = parse_pos_int(seg[2]);
        if (id < 1 || id > r->nschemas)
            reply_error(rep, 404, 40403, "Schema not found");
        else
            reply_json(rep, 200, json_pack("{s:s}", "schema", r->text[id - 1]));
        return;
    }
    if (!strcmp(seg[0], "subjects")) {
        if (n == 1) {
            if (!get)
                goto not_allowed;
            /* sorted, so a test can compare the list as a whole */
            const char **names = eddy_malloc(sizeof(char *) * (size_t)(r->nsubjects + 1));
            for (int i = 0; i < r->nsubjects; i++)
                names[i] = r->subjects[i].name;
            qsort(names, (size_t)r->nsubjects, sizeof(char *), cmp_names);
            json_t *a = json_array();
            for (int i = 0; i < r->nsubjects; i++)
                json_array_append_new(a, json_string(names[i]));
            eddy_free(names);
            reply_json(rep, 200, a);
            return;
        }
        if (n == 2 && post) {
            route_post_subject(r, rep, seg[1], true, up);
            return;
        }
        if (n == 3 && !strcmp(seg[2], "versions") && post) {
            route_post_subject(r, rep, seg[1], false, up);
            return;
        }
        if (n >= 3 && n <= 5 && !strcmp(seg[2], "versions") &&
            (n < 5 || !strcmp(seg[4], "schema"))) {
            if (!get)
                goto not_allowed;
            subject_t *sub = find_subject(r, seg[1]);
            if (!sub) {
                reply_error(rep, 404, 40401, "Subject '%s' not found.", seg[1]);
                return;
            }
            if (n == 3) {
                json_t *a = json_array();
                for (int v = 1; v <= sub->nversions; v++)
                    json_array_append_new(a, json_integer(v));
                reply_json(rep, 200, a);
                return;
            }
            int v = resolve_version(rep, sub, seg[3]);
            if (v && n == 4)
                reply_version(rep, r, sub, v);
            else if (v) {
                rep->status = 200;
                rep->body = eddy_strdup(r->text[sub->ids[v - 1] - 1]);
            }
            return;
        }
    }
    reply_error(rep, 404, 404, "HTTP 404 Not Found");
    return;
not_allowed:
    reply_error(rep, 405, 405, "HTTP 405 Method Not Allowed");
}

static enum MHD_Result answer(struct MHD_Connection *conn, reply_t *rep) {
    const char *body = rep->body ? rep->body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", CONTENT_TYPE);
    enum MHD_Result rc = MHD_queue_response(conn, rep->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    eddy_sr_embedded_t *r = cls;
    if (!*con_cls) { /* first call of a request: headers only */
        *con_cls = eddy_calloc(1, sizeof(upload_t));
        return MHD_YES;
    }
    upload_t *up = *con_cls;
    if (*upload_data_size) {
        if (up->len + *upload_data_size > MAX_BODY_BYTES)
            up->too_large = true;
        if (!up->too_large) {
            up->body = eddy_realloc(up->body, up->len + *upload_data_size + 1);
            memcpy(up->body + up->len, upload_data, *upload_data_size);
            up->len += *upload_data_size;
            up->body[up->len] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    reply_t rep = {0};
    pthread_mutex_lock(&r->lock);
    r->requests++;
    if (eddy__sr_embedded_down(r))
        reply_error(&rep, 503, 50301, "Service unavailable: the registry is down");
    else if (r->fail_first > 0) {
        r->fail_first--;
        reply_error(&rep, 503, 50301, "Service unavailable: failing the first requests");
    } else if (up->too_large)
        reply_error(&rep, 413, 413, "Request body larger than %u bytes", MAX_BODY_BYTES);
    else
        route(r, &rep, method, url, up);
    bool verbose = r->verbose;
    pthread_mutex_unlock(&r->lock);
    if (verbose)
        fprintf(stderr, "%s: %s %s -> %u\n", r->log_name, method, url, rep.status);
    enum MHD_Result rc = answer(conn, &rep);
    eddy_free(rep.body);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    upload_t *up = *con_cls;
    if (up) {
        eddy_free(up->body);
        eddy_free(up);
    }
    *con_cls = NULL;
}

/* ------------------------------------------------------------------ API */

eddy_sr_embedded_t *eddy__sr_embedded_new(const char *log_name) {
    eddy_sr_embedded_t *r = eddy_calloc(1, sizeof(*r));
    r->log_name = eddy_strdup(log_name);
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void eddy__sr_embedded_destroy(eddy_sr_embedded_t *r) {
    if (!r)
        return;
    if (r->d)
        MHD_stop_daemon(r->d);
    for (int i = 0; i < r->nschemas; i++) {
        eddy_free(r->text[i]);
        eddy_free(r->canon[i]);
    }
    eddy_free(r->text);
    eddy_free(r->canon);
    for (int i = 0; i < r->nsubjects; i++) {
        eddy_free(r->subjects[i].name);
        eddy_free(r->subjects[i].ids);
    }
    eddy_free(r->subjects);
    pthread_mutex_destroy(&r->lock);
    eddy_free(r->log_name);
    eddy_free(r);
}

eddy_err_t eddy__sr_embedded_register(eddy_sr_embedded_t *r, const char *subject,
                                      const char *schema_json, int32_t *id, int *version,
                                      char *errstr, size_t errstr_size) {
    int i, v;
    char why[512];
    pthread_mutex_lock(&r->lock);
    int rc = reg_register(r, subject, schema_json, &i, &v, why, sizeof(why));
    pthread_mutex_unlock(&r->lock);
    if (rc) {
        eddy__seterr(errstr, errstr_size, "subject '%s': %s", subject, why);
        return EDDY_ERR_INVAL;
    }
    *id = i;
    if (version)
        *version = v;
    return EDDY_OK;
}

static int parse_listen(const char *s, struct sockaddr_in *a) {
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        return -1;
    *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

eddy_err_t eddy__sr_embedded_listen(eddy_sr_embedded_t *r, const char *host_port, char *errstr,
                                    size_t errstr_size) {
    struct sockaddr_in addr;
    if (parse_listen(host_port, &addr)) {
        eddy__seterr(errstr, errstr_size, "'%s': expected IPV4:PORT, e.g. 127.0.0.1:0", host_port);
        return EDDY_ERR_CONFIG;
    }
    if (r->d) {
        eddy__seterr(errstr, errstr_size, "already listening on port %d", r->port);
        return EDDY_ERR_STATE;
    }
    r->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                            ntohs(addr.sin_port), NULL, NULL, handler, r, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!r->d) {
        eddy__seterr(errstr, errstr_size, "cannot listen on %s", host_port);
        return EDDY_ERR_IO;
    }
    r->port = MHD_get_daemon_info(r->d, MHD_DAEMON_INFO_BIND_PORT)->port;
    return EDDY_OK;
}

int eddy__sr_embedded_port(const eddy_sr_embedded_t *r) {
    return r->port;
}

void eddy__sr_embedded_fail_first(eddy_sr_embedded_t *r, int n) {
    pthread_mutex_lock(&r->lock);
    r->fail_first = n;
    pthread_mutex_unlock(&r->lock);
}

void eddy__sr_embedded_set_down(eddy_sr_embedded_t *r, bool down) {
    __atomic_store_n(&r->down, down ? 1 : 0, __ATOMIC_SEQ_CST);
}

bool eddy__sr_embedded_down(const eddy_sr_embedded_t *r) {
    return __atomic_load_n(&r->down, __ATOMIC_SEQ_CST) != 0;
}

void eddy__sr_embedded_set_verbose(eddy_sr_embedded_t *r, bool verbose) {
    pthread_mutex_lock(&r->lock);
    r->verbose = verbose;
    pthread_mutex_unlock(&r->lock);
}

int64_t eddy__sr_embedded_requests(const eddy_sr_embedded_t *r) {
    eddy_sr_embedded_t *m = (eddy_sr_embedded_t *)r; /* the lock only */
    pthread_mutex_lock(&m->lock);
    int64_t n = r->requests;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ------------------------------------------------- the process's registry */

static pthread_mutex_t emb_lock = PTHREAD_MUTEX_INITIALIZER;
static int emb_refs;
static eddy_sr_embedded_t *emb_reg;

eddy_err_t eddy__sr_embedded_acquire(char *url, size_t url_size, char *errstr, size_t errstr_size) {
    pthread_mutex_lock(&emb_lock);
    if (!emb_reg) {
        eddy_sr_embedded_t *r = eddy__sr_embedded_new("eddy: embedded schema registry");
        char why[256];
        if (eddy__sr_embedded_listen(r, "127.0.0.1:0", why, sizeof(why))) {
            eddy__sr_embedded_destroy(r);
            pthread_mutex_unlock(&emb_lock);
            eddy__seterr(errstr, errstr_size, "embedded schema registry: %s", why);
            return EDDY_ERR_IO;
        }
        emb_reg = r;
        fprintf(stderr, "eddy: embedded schema registry at http://127.0.0.1:%d\n", r->port);
    }
    emb_refs++;
    if (url)
        snprintf(url, url_size, "http://127.0.0.1:%d", emb_reg->port);
    pthread_mutex_unlock(&emb_lock);
    return EDDY_OK;
}

void eddy__sr_embedded_release(void) {
    pthread_mutex_lock(&emb_lock);
    if (emb_refs > 0 && --emb_refs == 0) {
        eddy__sr_embedded_destroy(emb_reg);
        emb_reg = NULL;
    }
    pthread_mutex_unlock(&emb_lock);
}
