/*
 * Confluent Schema Registry client over libcurl.
 *
 * Lookups are rare (once per schema id, then cached), so each request uses
 * its own easy handle: no handle is shared between threads and no lock is
 * held while the network is slow. The caches (schemas by id, plans by
 * (id, reader)) are small arrays under one mutex; sources keep their own
 * per-task memo of the last plan so the hot path never takes it.
 *
 * Retries: an attempt that may succeed later (connect refused, timeout,
 * HTTP 5xx, 429) is retried after retry.backoff.ms, doubling up to
 * retry.backoff.max.ms, at most `retries` times. 4xx answers are final:
 * an unknown id will not appear by asking again.
 */
#include "connectors/schema_registry.h"
#include "connectors/sr_embedded.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* A registry answer larger than this is not a schema. */
#define SR_MAX_BODY_BYTES (16 * 1024 * 1024)

struct eddy_sr_conf_s {
    char *url;
    char *userinfo;
    char *ca, *cert, *key, *key_password;
    bool verify;
    int64_t request_timeout_ms, connect_timeout_ms;
    int64_t retries, backoff_ms, backoff_max_ms;
};

typedef struct {
    int32_t id;
    eddy_avro_schema_t *sch;
} sr_schema_ent_t;

typedef struct {
    int32_t id;
    uint64_t reader_hash;
    char *reader_json;
    eddy_avro_plan_t *plan;
} sr_plan_ent_t;

struct eddy_sr_s {
    eddy_sr_conf_t *conf;
    pthread_mutex_t lock; /* guards the two caches */
    sr_schema_ent_t *schemas;
    int nschemas, capschemas;
    sr_plan_ent_t *plans;
    int nplans, capplans;
    int64_t requests; /* atomic */
    bool embedded;    /* holds a reference on the process's embedded registry */
};

/* --------------------------------------------------------------- conf */

eddy_sr_conf_t *eddy__sr_conf_new(void) {
    eddy_sr_conf_t *c = eddy_calloc(1, sizeof(*c));
    c->verify = true;
    c->request_timeout_ms = 10000;
    c->connect_timeout_ms = 5000;
    c->retries = 5;
    c->backoff_ms = 100;
    c->backoff_max_ms = 5000;
    return c;
}

void eddy__sr_conf_destroy(eddy_sr_conf_t *c) {
    if (!c)
        return;
    eddy_free(c->url);
    eddy_free(c->userinfo);
    eddy_free(c->ca);
    eddy_free(c->cert);
    eddy_free(c->key);
    eddy_free(c->key_password);
    eddy_free(c);
}

typedef enum { OPT_STR, OPT_MS, OPT_COUNT, OPT_BOOL } opt_kind_t;

typedef struct {
    const char *key;
    opt_kind_t kind;
    size_t off;
} sr_opt_t;

#define OFF(f) offsetof(eddy_sr_conf_t, f)
static const sr_opt_t sr_opts[] = {
    {"url", OPT_STR, OFF(url)},
    {"basic.auth.user.info", OPT_STR, OFF(userinfo)},
    {"ssl.ca.location", OPT_STR, OFF(ca)},
    {"ssl.certificate.location", OPT_STR, OFF(cert)},
    {"ssl.key.location", OPT_STR, OFF(key)},
    {"ssl.key.password", OPT_STR, OFF(key_password)},
    {"enable.ssl.certificate.verification", OPT_BOOL, OFF(verify)},
    {"request.timeout.ms", OPT_MS, OFF(request_timeout_ms)},
    {"connect.timeout.ms", OPT_MS, OFF(connect_timeout_ms)},
    {"retries", OPT_COUNT, OFF(retries)},
    {"retry.backoff.ms", OPT_MS, OFF(backoff_ms)},
    {"retry.backoff.max.ms", OPT_MS, OFF(backoff_max_ms)},
};
#undef OFF

eddy_err_t eddy__sr_conf_set(eddy_sr_conf_t *conf, const char *key, const char *value,
                             char *errstr, size_t errstr_size) {
    for (size_t i = 0; i < sizeof(sr_opts) / sizeof(sr_opts[0]); i++) {
        const sr_opt_t *o = &sr_opts[i];
        if (strcmp(o->key, key))
            continue;
        char *field = (char *)conf + o->off;
        switch (o->kind) {
        case OPT_STR:
            eddy_free(*(char **)field);
            *(char **)field = value ? eddy_strdup(value) : NULL;
            return EDDY_OK;
        case OPT_BOOL:
            if (value && !strcmp(value, "true"))
                *(bool *)field = true;
            else if (value && !strcmp(value, "false"))
                *(bool *)field = false;
            else
                goto bad;
            return EDDY_OK;
        case OPT_MS:
        case OPT_COUNT: {
            int64_t v;
            char *end = NULL;
            if (!value || !*value)
                goto bad;
            if (o->kind == OPT_MS) {
                if (eddy__parse_duration_ms(value, &v))
                    goto bad;
            } else {
                errno = 0;
                long long ll = strtoll(value, &end, 10);
                if (errno || *end)
                    goto bad;
                v = ll;
            }
            if (v < 0 || v > 86400000)
                goto bad;
            *(int64_t *)field = v;
            return EDDY_OK;
        }
        }
    bad:
        eddy__seterr(errstr, errstr_size, "schema registry option %s: '%s' is not %s", key,
                     value ? value : "(null)",
                     o->kind == OPT_BOOL    ? "true or false"
                     : o->kind == OPT_COUNT ? "a count (0..86400000)"
                                            : "a duration (e.g. 500ms, 10s)");
        return EDDY_ERR_CONFIG;
    }
    eddy__seterr(errstr, errstr_size, "unknown schema registry option '%s'", key);
    return EDDY_ERR_CONFIG;
}

/* --------------------------------------------------------------- client */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

eddy_sr_t *eddy__sr_new(eddy_sr_conf_t *conf, char *errstr, size_t errstr_size) {
    if (!conf->url || !*conf->url) {
        eddy__seterr(errstr, errstr_size, "schema registry: 'url' is required");
        return NULL;
    }
    bool embedded = !strcmp(conf->url, "embedded");
    if (!embedded && strncmp(conf->url, "http://", 7) && strncmp(conf->url, "https://", 8)) {
        eddy__seterr(errstr, errstr_size,
                     "schema registry url '%s': must start with http:// or https://, or be "
                     "'embedded'",
                     conf->url);
        return NULL;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        eddy__seterr(errstr, errstr_size, "schema registry: curl_global_init: %s",
                     curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (embedded) {
        /* the process's own registry, reached over HTTP like any other */
        char url[64];
        if (eddy__sr_embedded_acquire(url, sizeof(url), errstr, errstr_size))
            return NULL;
        eddy_free(conf->url);
        conf->url = eddy_strdup(url);
    }
    size_t n = strlen(conf->url);
    while (n > 0 && conf->url[n - 1] == '/')
        conf->url[--n] = 0; /* paths are appended with their leading '/' */
    eddy_sr_t *sr = eddy_calloc(1, sizeof(*sr));
    sr->conf = conf;
    sr->embedded = embedded;
    pthread_mutex_init(&sr->lock, NULL);
    return sr;
}

void eddy__sr_destroy(eddy_sr_t *sr) {
    if (!sr)
        return;
    for (int i = 0; i < sr->nschemas; i++)
        eddy__avro_schema_destroy(sr->schemas[i].sch);
    for (int i = 0; i < sr->nplans; i++) {
        eddy__avro_plan_destroy(sr->plans[i].plan);
        eddy_free(sr->plans[i].reader_json);
    }
    eddy_free(sr->schemas);
    eddy_free(sr->plans);
    pthread_mutex_destroy(&sr->lock);
    eddy__sr_conf_destroy(sr->conf);
    if (sr->embedded)
        eddy__sr_embedded_release();
    eddy_free(sr);
}

const char *eddy__sr_url(const eddy_sr_t *sr) { return sr->conf->url; }
int64_t eddy__sr_requests(const eddy_sr_t *sr) {
    return __atomic_load_n(&sr->requests, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- HTTP */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
    eddy_buf_t *b = ud;
    size_t n = size * nmemb;
    if (b->len + n > SR_MAX_BODY_BYTES)
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    eddy_buf_put(b, data, n);
    return n;
}

static void sleep_ms(int64_t ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/*
 * One request with retries. *status is the final HTTP status (0 when no
 * answer ever came); body holds the final answer. Returns EDDY_OK when an
 * answer (of any status) came, EDDY_ERR_IO with `what` in errstr when the
 * registry stayed unreachable or kept failing with 5xx/429.
 */
static eddy_err_t http(eddy_sr_t *sr, const char *path, const char *post, const char *what,
                       long *status, eddy_buf_t *body, char *errstr, size_t errstr_size) {
    const eddy_sr_conf_t *c = sr->conf;
    char *url = eddy_asprintf("%s%s", c->url, path);
    char curl_err[CURL_ERROR_SIZE];
    char last[CURL_ERROR_SIZE + 64] = "";
    int64_t backoff = c->backoff_ms;
    int attempts = 0;
    eddy_err_t err = EDDY_ERR_IO;
    for (;;) {
        attempts++;
        body->len = 0;
        *status = 0;
        CURL *h = curl_easy_init();
        if (!h) {
            snprintf(last, sizeof(last), "curl_easy_init failed");
            break;
        }
        struct curl_slist *hdrs = NULL;
        hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
                                       "application/json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if (c->userinfo) {
            curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(h, CURLOPT_USERPWD, c->userinfo);
        }
        if (c->ca)
            curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
        if (c->cert)
            curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
        if (c->key)
            curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
        if (c->key_password)
            curl_easy_setopt(h, CURLOPT_KEYPASSWD, c->key_password);
        if (!c->verify) {
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (post) {
            hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_err[0] = 0;
        __atomic_add_fetch(&sr->requests, 1, __ATOMIC_RELAXED);
        CURLcode rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        bool retry;
        if (rc != CURLE_OK) {
            snprintf(last, sizeof(last), "%s", curl_err[0] ? curl_err : curl_easy_strerror(rc));
            retry = rc != CURLE_WRITE_ERROR && rc != CURLE_UNSUPPORTED_PROTOCOL &&
                    rc != CURLE_URL_MALFORMAT;
        } else if (*status >= 500 || *status == 429) {
            snprintf(last, sizeof(last), "HTTP %ld", *status);
            retry = true;
        } else {
            err = EDDY_OK;
            break;
        }
        if (!retry || attempts > c->retries)
            break;
        sleep_ms(backoff);
        backoff = backoff * 2 > c->backoff_max_ms ? c->backoff_max_ms : backoff * 2;
    }
    if (err)
        eddy__seterr(errstr, errstr_size, "schema registry %s: %s failed after %d attempt%s: %s",
                     c->url, what, attempts, attempts == 1 ? "" : "s", last);
    eddy_free(url);
    return err;
}

/* "40403 Schema not found" from a Confluent error body, else the body. */
static void error_detail(const eddy_buf_t *body, char *out, size_t size) {
    json_t *j = json_loadb(body->p ? body->p : "", body->len, 0, NULL);
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    json_int_t code = j ? json_integer_value(json_object_get(j, "error_code")) : 0;
    if (msg)
        snprintf(out, size, "%lld %s", (long long)code, msg);
    else
        snprintf(out, size, "%.*s", (int)(body->len > 200 ? 200 : body->len),
                 body->p ? body->p : "");
    json_decref(j);
}

static eddy_err_t http_error(eddy_sr_t *sr, long status, const eddy_buf_t *body, const char *what,
                             char *errstr, size_t errstr_size) {
    char detail[256];
    error_detail(body, detail, sizeof(detail));
    eddy_err_t err = status == 404 ? EDDY_ERR_NOENT : EDDY_ERR_IO;
    eddy__seterr(errstr, errstr_size, "schema registry %s: %s: %s (HTTP %ld%s%s)", sr->conf->url,
                 what, status == 404 ? "not found" : "refused", status, detail[0] ? ": " : "",
                 detail);
    return err;
}

/* --------------------------------------------------------------- API */

static eddy_avro_schema_t *cached_schema(eddy_sr_t *sr, int32_t id) {
    for (int i = 0; i < sr->nschemas; i++)
        if (sr->schemas[i].id == id)
            return sr->schemas[i].sch;
    return NULL;
}

eddy_err_t eddy__sr_get_schema(eddy_sr_t *sr, int32_t id, const eddy_avro_schema_t **out,
                               char *errstr, size_t errstr_size) {
    pthread_mutex_lock(&sr->lock);
    eddy_avro_schema_t *sch = cached_schema(sr, id);
    pthread_mutex_unlock(&sr->lock);
    if (sch) {
        *out = sch;
        return EDDY_OK;
    }
    char path[64], what[64];
    snprintf(path, sizeof(path), "/schemas/ids/%d", (int)id);
    snprintf(what, sizeof(what), "schema id %d", (int)id);
    eddy_buf_t body = {0};
    long status;
    eddy_err_t err = http(sr, path, NULL, what, &status, &body, errstr, errstr_size);
    if (err) {
        eddy_buf_free(&body);
        return err;
    }
    if (status != 200) {
        err = http_error(sr, status, &body, what, errstr, errstr_size);
        eddy_buf_free(&body);
        return err;
    }
    json_error_t jerr;
    json_t *j = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
    eddy_buf_free(&body);
    const char *text = j ? json_string_value(json_object_get(j, "schema")) : NULL;
    const char *type = j ? json_string_value(json_object_get(j, "schemaType")) : NULL;
    if (!text || (type && strcmp(type, "AVRO"))) {
        eddy__seterr(errstr, errstr_size, "schema registry %s: schema id %d: %s", sr->conf->url,
                     (int)id,
                     !j      ? "answer is not JSON"
                     : !text ? "answer has no \"schema\" string"
                             : "schema is not Avro");
        json_decref(j);
        return EDDY_ERR_DECODE;
    }
    char perr[512];
    sch = eddy__avro_schema_parse(text, json_string_length(json_object_get(j, "schema")), perr,
                                  sizeof(perr));
    json_decref(j);
    if (!sch) {
        eddy__seterr(errstr, errstr_size, "schema registry %s: schema id %d: %s", sr->conf->url,
                     (int)id, perr);
        return EDDY_ERR_DECODE;
    }
    pthread_mutex_lock(&sr->lock);
    eddy_avro_schema_t *again = cached_schema(sr, id);
    if (again) { /* another thread fetched it meanwhile */
        eddy__avro_schema_destroy(sch);
        sch = again;
    } else {
        if (sr->nschemas == sr->capschemas) {
            sr->capschemas = sr->capschemas ? sr->capschemas * 2 : 8;
            sr->schemas = eddy_realloc(sr->schemas, sizeof(*sr->schemas) * (size_t)sr->capschemas);
        }
        sr->schemas[sr->nschemas++] = (sr_schema_ent_t){.id = id, .sch = sch};
    }
    pthread_mutex_unlock(&sr->lock);
    *out = sch;
    return EDDY_OK;
}

static eddy_avro_plan_t *cached_plan(eddy_sr_t *sr, int32_t id, uint64_t h, const char *json) {
    for (int i = 0; i < sr->nplans; i++) {
        sr_plan_ent_t *e = &sr->plans[i];
        if (e->id == id && e->reader_hash == h && !strcmp(e->reader_json, json))
            return e->plan;
    }
    return NULL;
}

eddy_err_t eddy__sr_plan(eddy_sr_t *sr, int32_t id, const eddy_avro_schema_t *reader,
                         const eddy_avro_plan_t **plan, char *errstr, size_t errstr_size) {
    uint64_t h = eddy__avro_schema_hash(reader);
    const char *rjson = eddy__avro_schema_json(reader);
    pthread_mutex_lock(&sr->lock);
    eddy_avro_plan_t *p = cached_plan(sr, id, h, rjson);
    pthread_mutex_unlock(&sr->lock);
    if (p) {
        *plan = p;
        return EDDY_OK;
    }
    const eddy_avro_schema_t *writer;
    eddy_err_t err = eddy__sr_get_schema(sr, id, &writer, errstr, errstr_size);
    if (err)
        return err;
    char perr[512];
    p = eddy__avro_plan_new(writer, reader, perr, sizeof(perr));
    if (!p) {
        eddy__seterr(errstr, errstr_size, "schema id %d (registry %s): %s", (int)id,
                     sr->conf->url, perr);
        return EDDY_ERR_TYPE;
    }
    pthread_mutex_lock(&sr->lock);
    eddy_avro_plan_t *again = cached_plan(sr, id, h, rjson);
    if (again) {
        eddy__avro_plan_destroy(p);
        p = again;
    } else {
        if (sr->nplans == sr->capplans) {
            sr->capplans = sr->capplans ? sr->capplans * 2 : 8;
            sr->plans = eddy_realloc(sr->plans, sizeof(*sr->plans) * (size_t)sr->capplans);
        }
        sr->plans[sr->nplans++] = (sr_plan_ent_t){
            .id = id, .reader_hash = h, .reader_json = eddy_strdup(rjson), .plan = p};
    }
    pthread_mutex_unlock(&sr->lock);
    *plan = p;
    return EDDY_OK;
}

eddy_err_t eddy__sr_register(eddy_sr_t *sr, const char *subject, const char *schema_json,
                             int32_t *id, char *errstr, size_t errstr_size) {
    char *esc = curl_easy_escape(NULL, subject, 0);
    if (!esc) {
        eddy__seterr(errstr, errstr_size, "schema registry: cannot escape subject '%s'", subject);
        return EDDY_ERR_NOMEM;
    }
    char *path = eddy_asprintf("/subjects/%s/versions", esc);
    curl_free(esc);
    char *what = eddy_asprintf("registering subject '%s'", subject);
    json_t *req = json_pack("{s:s}", "schema", schema_json);
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    eddy_buf_t body = {0};
    long status = 0;
    eddy_err_t err;
    if (!post) {
        eddy__seterr(errstr, errstr_size, "schema registry: subject '%s': schema is not UTF-8",
                     subject);
        err = EDDY_ERR_INVAL;
    } else {
        err = http(sr, path, post, what, &status, &body, errstr, errstr_size);
    }
    if (!err && status != 200)
        err = http_error(sr, status, &body, what, errstr, errstr_size);
    if (!err) {
        json_t *j = json_loadb(body.p ? body.p : "", body.len, 0, NULL);
        json_t *jid = j ? json_object_get(j, "id") : NULL;
        if (!json_is_integer(jid)) {
            eddy__seterr(errstr, errstr_size, "schema registry %s: %s: answer has no \"id\"",
                         sr->conf->url, what);
            err = EDDY_ERR_DECODE;
        } else {
            *id = (int32_t)json_integer_value(jid);
        }
        json_decref(j);
    }
    free(post);
    eddy_buf_free(&body);
    eddy_free(path);
    eddy_free(what);
    return err;
}
