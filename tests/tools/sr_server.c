/*
 * sr-server: a small Confluent Schema Registry for tests, run as its own
 * process so that a test reaches it the way eddy reaches a real registry
 * (libcurl over TCP on 127.0.0.1) and can take it away (SIGUSR1, SIGTERM).
 *
 * It keeps the REST subset a Kafka source and sink use, with Confluent's
 * status codes and error bodies, in memory:
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
 * Fault injection: --fail-first N answers 503 to the first N requests;
 * SIGUSR1 toggles a "down" mode that answers 503 to everything until the
 * next SIGUSR1. SIGTERM and SIGINT stop it cleanly (exit 0).
 *
 * One libmicrohttpd polling thread serves every request, so the registry
 * itself needs no lock; the main thread only waits for signals and flips
 * `down`, which is atomic. Usage in tests/tools/README.md.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <avro.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/tools/tool_alloc.h"

#define MAX_BODY_BYTES (4u << 20)
#define CONTENT_TYPE "application/vnd.schemaregistry.v1+json"

typedef struct {
    char *name;
    int *ids; /* ids[v - 1]: the schema id of version v */
    int nversions, cap;
} subject_t;

typedef struct {
    char **text;  /* text[id - 1]: compact JSON as first registered, served back */
    char **canon; /* canon[id - 1]: compact JSON with sorted keys, compared */
    int nschemas, cap;
    subject_t *subjects;
    int nsubjects, subjects_cap;
    int fail_first; /* requests still to answer 503; the MHD thread only */
    int down;       /* atomic: SIGUSR1 flips it in the main thread */
    long requests;  /* the MHD thread only */
    bool verbose;
} reg_t;

/* ------------------------------------------------------------- registry */

static subject_t *find_subject(reg_t *r, const char *name) {
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
    *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    *canon = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(j);
    if (!*text || !*canon) {
        fprintf(stderr, "sr-server: out of memory\n");
        abort();
    }
    return 0;
}

/* Id of a schema already known (by canonical text), or 0. */
static int find_schema(const reg_t *r, const char *canon) {
    for (int i = 0; i < r->nschemas; i++)
        if (!strcmp(r->canon[i], canon))
            return i + 1;
    return 0;
}

/*
 * Register `schema` under `subject`: the id of an equal schema if there is
 * one, else a new id; a new version unless the subject has it already.
 * Returns 0 with *id and *version, or -1 with the reason in why.
 */
static int reg_register(reg_t *r, const char *subject, const char *schema, int *id, int *version,
                        char *why, size_t why_size) {
    char *text, *canon;
    if (normalise(schema, &text, &canon, why, why_size))
        return -1;
    *id = find_schema(r, canon);
    if (*id) {
        free(text);
        free(canon);
    } else {
        if (r->nschemas == r->cap) {
            r->cap = r->cap ? 2 * r->cap : 16;
            r->text = xrealloc(r->text, sizeof(char *) * (size_t)r->cap);
            r->canon = xrealloc(r->canon, sizeof(char *) * (size_t)r->cap);
        }
        r->text[r->nschemas] = text;
        r->canon[r->nschemas] = canon;
        *id = ++r->nschemas;
    }
    subject_t *sub = find_subject(r, subject);
    if (!sub) {
        if (r->nsubjects == r->subjects_cap) {
            r->subjects_cap = r->subjects_cap ? 2 * r->subjects_cap : 8;
            r->subjects = xrealloc(r->subjects, sizeof(subject_t) * (size_t)r->subjects_cap);
        }
        sub = &r->subjects[r->nsubjects++];
        *sub = (subject_t){.name = xstrdup(subject)};
    }
    *version = version_of(sub, *id);
    if (!*version) {
        if (sub->nversions == sub->cap) {
            sub->cap = sub->cap ? 2 * sub->cap : 4;
            sub->ids = xrealloc(sub->ids, sizeof(int) * (size_t)sub->cap);
        }
        sub->ids[sub->nversions++] = *id;
        *version = sub->nversions;
    }
    return 0;
}

static void reg_free(reg_t *r) {
    for (int i = 0; i < r->nschemas; i++) {
        free(r->text[i]);
        free(r->canon[i]);
    }
    free(r->text);
    free(r->canon);
    for (int i = 0; i < r->nsubjects; i++) {
        free(r->subjects[i].name);
        free(r->subjects[i].ids);
    }
    free(r->subjects);
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
    char *body; /* malloc'd */
} reply_t;

static void reply_json(reply_t *rep, unsigned status, json_t *j) {
    rep->status = status;
    rep->body = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!rep->body) { /* json_pack refuses text that is not UTF-8 */
        rep->status = 500;
        rep->body = xstrdup("{\"error_code\":50001,\"message\":\"sr-server: cannot encode the "
                            "answer (not UTF-8?)\"}");
    }
}

static void reply_error(reply_t *rep, unsigned status, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    reply_json(rep, status, json_pack("{s:i,s:s}", "error_code", code, "message", msg));
}

static void reply_version(reply_t *rep, const reg_t *r, const subject_t *sub, int v) {
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
        reply_error(rep, 422, 42201, "Invalid schema: schemaType %s is not supported by sr-server",
                    type);
        return NULL;
    }
    if (json_array_size(refs)) {
        reply_error(rep, 422, 42201,
                    "Invalid schema: schema references are not supported by sr-server");
        return NULL;
    }
    return schema;
}

/* POST /subjects/{s}/versions and POST /subjects/{s}. */
static void route_post_subject(reg_t *r, reply_t *rep, const char *subject, bool lookup,
                               const upload_t *up) {
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
            free(text);
            free(canon);
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
 * Route one complete request. Path segments are split on '/' after
 * libmicrohttpd has unescaped the URL, so a subject holding "%2F" is not
 * supported.
 */
static void route(reg_t *r, reply_t *rep, const char *method, const char *url, const upload_t *up) {
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
            const char **names = xrealloc(NULL, sizeof(char *) * (size_t)(r->nsubjects + 1));
            for (int i = 0; i < r->nsubjects; i++)
                names[i] = r->subjects[i].name;
            qsort(names, (size_t)r->nsubjects, sizeof(char *), cmp_names);
            json_t *a = json_array();
            for (int i = 0; i < r->nsubjects; i++)
                json_array_append_new(a, json_string(names[i]));
            free(names);
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
                rep->body = xstrdup(r->text[sub->ids[v - 1] - 1]);
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
    MHD_add_response_header(resp, "Content-Type", CONTENT_TYPE);
    enum MHD_Result rc = MHD_queue_response(conn, rep->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
    reg_t *r = cls;
    if (!*con_cls) { /* first call of a request: headers only */
        *con_cls = calloc(1, sizeof(upload_t));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    upload_t *up = *con_cls;
    if (*upload_data_size) {
        if (up->len + *upload_data_size > MAX_BODY_BYTES)
            up->too_large = true;
        if (!up->too_large) {
            up->body = xrealloc(up->body, up->len + *upload_data_size + 1);
            memcpy(up->body + up->len, upload_data, *upload_data_size);
            up->len += *upload_data_size;
            up->body[up->len] = 0;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    reply_t rep = {0};
    r->requests++;
    if (__atomic_load_n(&r->down, __ATOMIC_SEQ_CST))
        reply_error(&rep, 503, 50301, "Service unavailable: sr-server is down (SIGUSR1)");
    else if (r->fail_first > 0) {
        r->fail_first--;
        reply_error(&rep, 503, 50301, "Service unavailable: sr-server --fail-first");
    } else if (up->too_large)
        reply_error(&rep, 413, 413, "Request body larger than %u bytes", MAX_BODY_BYTES);
    else
        route(r, &rep, method, url, up);
    if (r->verbose)
        fprintf(stderr, "sr-server: %s %s -> %u\n", method, url, rep.status);
    enum MHD_Result rc = answer(conn, &rep);
    free(rep.body);
    return rc;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    upload_t *up = *con_cls;
    if (up) {
        free(up->body);
        free(up);
    }
    *con_cls = NULL;
}

/* ---------------------------------------------------------------- start */

static int preload_file(reg_t *r, const char *file, const char *subject) {
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        text = xrealloc(text, len + got + 1);
        memcpy(text + len, chunk, got);
        len += got;
    }
    bool read_err = ferror(f);
    fclose(f);
    if (read_err || !text) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, read_err ? "read error" : "empty");
        free(text);
        return -1;
    }
    text[len] = 0;
    char name[NAME_MAX + 1];
    if (!subject) { /* the file name without directory and .avsc */
        const char *base = strrchr(file, '/');
        snprintf(name, sizeof(name), "%s", base ? base + 1 : file);
        size_t n = strlen(name);
        if (n > 5 && !strcmp(name + n - 5, ".avsc"))
            name[n - 5] = 0;
        subject = name;
    }
    int id, version;
    char why[512];
    int rc = reg_register(r, subject, text, &id, &version, why, sizeof(why));
    free(text);
    if (rc) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, why);
        return -1;
    }
    printf("%d %s %s\n", id, subject, file);
    return 0;
}

static int avsc_filter(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 5 && !strcmp(d->d_name + n - 5, ".avsc");
}

/* PATH[:SUBJECT]; a directory registers its *.avsc files in name order. */
static int preload(reg_t *r, const char *arg) {
    char path[PATH_MAX];
    const char *subject = NULL;
    struct stat st;
    snprintf(path, sizeof(path), "%s", arg);
    if (stat(path, &st)) {
        char *colon = strrchr(path, ':');
        if (colon) {
            *colon = 0;
            subject = arg + (colon - path) + 1;
        }
        if (!*path || (subject && !*subject) || stat(path, &st)) {
            fprintf(stderr, "sr-server: --preload %s: %s\n", arg, strerror(errno ? errno : ENOENT));
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode))
        return preload_file(r, path, subject);
    struct dirent **ents;
    int n = scandir(path, &ents, avsc_filter, alphasort);
    if (n < 0) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX + NAME_MAX + 2];
        snprintf(file, sizeof(file), "%s/%s", path, ents[i]->d_name);
        if (!rc)
            rc = preload_file(r, file, subject);
        free(ents[i]);
    }
    free(ents);
    if (n == 0)
        fprintf(stderr, "sr-server: --preload %s: no .avsc files\n", path);
    return n ? rc : -1;
}

/* Write the port to F.tmp, then rename, so a reader never sees half a file. */
static int write_port_file(const char *file, unsigned port) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) || rename(tmp, file)) {
        fprintf(stderr, "sr-server: --port-file %s: %s\n", file, strerror(errno));
        return -1;
    }
    return 0;
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

static void usage(FILE *f) {
    fprintf(f, "usage: sr-server [--listen HOST:PORT] [--port-file FILE]\n"
               "                 [--preload DIR_OR_FILE.avsc[:SUBJECT]]... [--fail-first N]\n"
               "                 [--verbose]\n"
               "  --listen      IPv4 address and port to listen on (default 127.0.0.1:0,\n"
               "                port 0 = any free port)\n"
               "  --port-file   write the bound port there once listening\n"
               "  --preload     register a schema file (subject: the file name without\n"
               "                .avsc, or SUBJECT) or every *.avsc of a directory in name\n"
               "                order; prints 'ID SUBJECT FILE' per schema\n"
               "  --fail-first  answer 503 to the first N requests\n"
               "  --verbose     log every request to stderr\n"
               "SIGUSR1 toggles down mode (503 on everything); SIGTERM/SIGINT stop.\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"port-file", required_argument, NULL, 'p'},
                                         {"preload", required_argument, NULL, 'r'},
                                         {"fail-first", required_argument, NULL, 'f'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen = "127.0.0.1:0", *port_file = NULL;
    reg_t reg = {0};
    int rc = 2, opt;
    char *end;

    /* Before any thread exists, so libmicrohttpd's inherit the mask and
     * only sigwait() below sees these signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'r':
            if (preload(&reg, optarg))
                goto out;
            break;
        case 'f':
            errno = 0;
            reg.fail_first = (int)strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || reg.fail_first < 0) {
                fprintf(stderr, "sr-server: --fail-first %s: expected a count >= 0\n", optarg);
                goto out;
            }
            break;
        case 'v':
            reg.verbose = true;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sr-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        goto out;
    }
    struct sockaddr_in addr;
    if (parse_listen(listen, &addr)) {
        fprintf(stderr, "sr-server: --listen %s: expected IPV4:PORT, e.g. 127.0.0.1:0\n", listen);
        goto out;
    }
    fflush(stdout);

    rc = 1;
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, ntohs(addr.sin_port), NULL, NULL,
        handler, &reg, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "sr-server: cannot listen on %s\n", listen);
        goto out;
    }
    unsigned port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    fprintf(stderr, "sr-server: listening on http://%s:%u\n", inet_ntoa(addr.sin_addr), port);
    if (!port_file || !write_port_file(port_file, port)) {
        rc = 0;
        for (;;) {
            int sig;
            if (sigwait(&sigs, &sig))
                continue;
            if (sig != SIGUSR1)
                break;
            int down = !__atomic_load_n(&reg.down, __ATOMIC_SEQ_CST);
            __atomic_store_n(&reg.down, down, __ATOMIC_SEQ_CST);
            fprintf(stderr, "sr-server: %s\n", down ? "down (503 on everything)" : "up");
        }
    }
    MHD_stop_daemon(d);
    fprintf(stderr, "sr-server: stopped after %ld requests\n", reg.requests);
out:
    reg_free(&reg);
    return rc;
}
