/*
 * avro-produce: writes records to a Kafka topic in the Confluent wire
 * format (magic byte 0, 4-byte big-endian schema id, Avro binary), for
 * tests of eddy's Kafka source that need a producer other than eddy.
 *
 * The Avro body is written by Avro C's own writer (generic values filled
 * from JSON, then avro_value_write), never by eddy's code, so a test that
 * decodes these messages with eddy checks eddy against an independent
 * encoder. The records come from a JSON-lines file mapped onto the schema,
 * or from eddy's Nexmark generator (bids), which is the only eddy code used:
 * the bids are then the same bids eddy's `nexmark` source generates for the
 * same seed, so a test can compare a Kafka pipeline with a generator one.
 *
 * Messages go through librdkafka's idempotent producer. Any delivery
 * failure ends the run with a message and exit code 1; on success every
 * message has been acknowledged (flushed) and `produced N` is printed.
 *
 * --poison K replaces every K-th message by one that no consumer can
 * decode, cycling through three kinds: a wrong magic byte, a schema id the
 * registry does not know, and a body cut short. Which positions, partitions
 * and offsets were poisoned is printed after delivery, so a test can check
 * that exactly those reached the dead-letter output.
 *
 * Field defaults: Avro C drops them when it parses a schema, so they are
 * read from the same .avsc text with jansson (see field_default()).
 * Usage in tests/tools/README.md.
 */
#define _GNU_SOURCE
#include "connectors/nexmark_gen.h"

#include <avro.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/tools/tool_alloc.h"

/* The schema id of poisoned "unknown id" messages: far above any id a test
 * registry hands out. */
#define POISON_UNKNOWN_ID 999999
#define POISON_BAD_MAGIC 0x7f
#define DEFAULT_MESSAGE_TIMEOUT_MS "30000"
#define REGISTRY_ATTEMPTS 6

typedef enum { POISON_MAGIC = 0, POISON_ID = 1, POISON_TRUNCATED = 2 } poison_kind_t;
static const char *const poison_names[] = {"bad-magic", "unknown-id", "truncated"};

typedef struct {
    int64_t pos; /* message number, 0-based */
    poison_kind_t kind;
    int32_t partition;
    int64_t offset; /* -1 until delivered */
} poisoned_t;

typedef enum { PART_KEY, PART_ROUND_ROBIN, PART_FIXED } part_mode_t;

typedef struct {
    /* options */
    const char *bootstrap, *topic, *schema_file, *registry, *subject;
    const char *json_file, *key_field, *ts_field, *poison_log;
    int64_t schema_id; /* -1: not given */
    int64_t nexmark_bids, seed, poison_every;
    part_mode_t part_mode;
    int32_t fixed_partition;
    bool part_given;
    const char *props[64][2]; /* -X key=value */
    int nprops;

    /* schema */
    char *schema_text;
    json_t *schema_json; /* for field defaults */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t rec;

    /* input */
    FILE *json_in;
    int64_t line;
    char *linebuf;
    size_t linecap;
    eddy_nx_gen_t *gen;
    uint64_t next_event;

    /* Kafka */
    rd_kafka_t *rk;
    int32_t partitions; /* PART_ROUND_ROBIN only */
    int64_t delivered, failed;
    char first_failure[512];
    poisoned_t *poisoned;
    size_t npoisoned, poisoned_cap;

    char err[1024]; /* what went wrong, for the final message */
} app_t;

static void fail(app_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->err, sizeof(a->err), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------- JSON -> Avro */

/* "expected long, got a string" */
static const char *json_kind(const json_t *j) {
    static const char *const kinds[] = {
        [JSON_OBJECT] = "an object",   [JSON_ARRAY] = "an array",     [JSON_STRING] = "a string",
        [JSON_INTEGER] = "an integer", [JSON_REAL] = "a real number", [JSON_TRUE] = "a boolean",
        [JSON_FALSE] = "a boolean",    [JSON_NULL] = "null"};
    return kinds[json_typeof(j)];
}

static avro_schema_t deref(avro_schema_t s) {
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

/* The record definition named `name` (unqualified) in the .avsc JSON. */
static json_t *find_record(json_t *node, const char *name) {
    if (json_is_array(node)) { /* a union */
        for (size_t i = 0; i < json_array_size(node); i++) {
            json_t *r = find_record(json_array_get(node, i), name);
            if (r)
                return r;
        }
        return NULL;
    }
    if (!json_is_object(node))
        return NULL;
    const char *type = json_string_value(json_object_get(node, "type"));
    const char *n = json_string_value(json_object_get(node, "name"));
    if (type && n && (!strcmp(type, "record") || !strcmp(type, "error"))) {
        const char *dot = strrchr(n, '.');
        if (!strcmp(dot ? dot + 1 : n, name))
            return node;
    }
    json_t *fields = json_object_get(node, "fields"), *r;
    for (size_t i = 0; i < json_array_size(fields); i++)
        if ((r = find_record(json_object_get(json_array_get(fields, i), "type"), name)))
            return r;
    if ((r = find_record(json_object_get(node, "items"), name)) ||
        (r = find_record(json_object_get(node, "values"), name)))
        return r;
    json_t *t = json_object_get(node, "type");
    return json_is_object(t) || json_is_array(t) ? find_record(t, name) : NULL;
}

/* The default of field `field` of record schema `rs`, or NULL. */
static json_t *field_default(app_t *a, avro_schema_t rs, const char *field) {
    json_t *def = find_record(a->schema_json, avro_schema_name(rs));
    json_t *fields = json_object_get(def, "fields");
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        if (!strcmp(json_string_value(json_object_get(f, "name")) ?: "", field))
            return json_object_get(f, "default");
    }
    return NULL;
}

static bool int_fits(const json_t *j) {
    json_int_t x = json_integer_value(j);
    return json_is_integer(j) && x >= INT32_MIN && x <= INT32_MAX;
}

/* Whether a JSON value can be written as schema s (its shape only). */
static bool accepts(avro_schema_t s, const json_t *j) {
    s = deref(s);
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return json_is_null(j);
    case AVRO_BOOLEAN:
        return json_is_boolean(j);
    case AVRO_INT32:
        return int_fits(j);
    case AVRO_INT64:
        return json_is_integer(j);
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        return json_is_number(j);
    case AVRO_STRING:
    case AVRO_BYTES:
    case AVRO_FIXED:
        return json_is_string(j);
    case AVRO_ENUM:
        return json_is_string(j) && avro_schema_enum_get_by_name(s, json_string_value(j)) >= 0;
    case AVRO_ARRAY:
        return json_is_array(j);
    case AVRO_MAP:
    case AVRO_RECORD:
        return json_is_object(j);
    default:
        return false;
    }
}

/*
 * The union branch for a JSON value: Avro's JSON encoding ({"long": 5},
 * {"nexmark.Bid": {...}}) when the object's one key names a branch, else
 * the first branch the plain value fits. Returns the branch index and sets
 * *inner to the value to write, or -1.
 */
static int pick_branch(avro_schema_t u, json_t *j, json_t **inner) {
    if (json_is_object(j) && json_object_size(j) == 1) {
        const char *k = json_object_iter_key(json_object_iter(j));
        const char *dot = strrchr(k, '.');
        int idx;
        if (avro_schema_union_branch_by_name(u, &idx, k) ||
            (dot && avro_schema_union_branch_by_name(u, &idx, dot + 1))) {
            *inner = json_object_iter_value(json_object_iter(j));
            return idx;
        }
    }
    *inner = j;
    for (size_t i = 0; i < avro_schema_union_size(u); i++)
        if (accepts(avro_schema_union_branch(u, (int)i), j))
            return (int)i;
    return -1;
}

/* Bytes from a string of code points U+0000..U+00FF (Avro's JSON encoding
 * of bytes and fixed). Returns the length, or -1. */
static int64_t latin1_bytes(const char *s, size_t len, unsigned char *out) {
    int64_t n = 0;
    for (size_t i = 0; i < len; n++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            out[n] = c;
            i++;
        } else if ((c == 0xc2 || c == 0xc3) && i + 1 < len &&
                   ((unsigned char)s[i + 1] & 0xc0) == 0x80) {
            out[n] = (unsigned char)(((c & 0x03) << 6) | ((unsigned char)s[i + 1] & 0x3f));
            i += 2;
        } else
            return -1;
    }
    return n;
}

static int put(app_t *a, avro_value_t *v, json_t *j, const char *path);

/* Set a null value, or a union value to its null branch. Returns 0, or 1
 * when it has none. */
static int set_null_branch(avro_value_t *v, avro_schema_t s) {
    s = deref(s);
    avro_value_t br;
    if (is_avro_null(s))
        return avro_value_set_null(v) ? 1 : 0;
    for (size_t b = 0; is_avro_union(s) && b < avro_schema_union_size(s); b++)
        if (is_avro_null(deref(avro_schema_union_branch(s, (int)b))))
            return avro_value_set_branch(v, (int)b, &br) || avro_value_set_null(&br);
    return 1;
}

/* Fields missing from the JSON object take the schema's default, or null
 * when they can be null; fields the schema lacks are ignored (so one JSON file can
 * be written with two versions of a schema). */
static int put_record(app_t *a, avro_value_t *v, avro_schema_t s, json_t *j, const char *path) {
    for (size_t i = 0; i < avro_schema_record_size(s); i++) {
        const char *name = avro_schema_record_field_name(s, (int)i);
        char sub[512];
        snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", name);
        avro_value_t f;
        if (avro_value_get_by_index(v, i, &f, NULL)) {
            fail(a, "%s: %s", sub, avro_strerror());
            return -1;
        }
        json_t *fj = json_object_get(j, name);
        if (!fj)
            fj = field_default(a, s, name);
        if (fj ? put(a, &f, fj, sub) : set_null_branch(&f, avro_value_get_schema(&f))) {
            if (!fj)
                fail(a, "%s: missing, and the schema gives no default", sub);
            return -1;
        }
    }
    return 0;
}

/* Write JSON value j into Avro value v (whose schema drives the mapping);
 * path names the place for error messages. */
static int put(app_t *a, avro_value_t *v, json_t *j, const char *path) {
    avro_schema_t s = deref(avro_value_get_schema(v));
    const char *where = *path ? path : "record";
    int rc = 0;
    if (avro_typeof(s) != AVRO_UNION && !accepts(s, j)) {
        if (is_avro_enum(s) && json_is_string(j))
            fail(a, "%s: '%s' is not a symbol of enum %s", where, json_string_value(j),
                 avro_schema_name(s));
        else if (is_avro_int32(s) && json_is_integer(j))
            fail(a, "%s: %" JSON_INTEGER_FORMAT " is out of the range of an int", where,
                 json_integer_value(j));
        else
            fail(a, "%s: expected %s, got %s", where, avro_schema_type_name(s), json_kind(j));
        return -1;
    }
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        rc = avro_value_set_null(v);
        break;
    case AVRO_BOOLEAN:
        rc = avro_value_set_boolean(v, json_is_true(j));
        break;
    case AVRO_INT32:
        rc = avro_value_set_int(v, (int32_t)json_integer_value(j));
        break;
    case AVRO_INT64:
        rc = avro_value_set_long(v, json_integer_value(j));
        break;
    case AVRO_FLOAT:
        rc = avro_value_set_float(v, (float)json_number_value(j));
        break;
    case AVRO_DOUBLE:
        rc = avro_value_set_double(v, json_number_value(j));
        break;
    case AVRO_STRING:
        /* Avro C's string length counts the terminating NUL */
        rc = avro_value_set_string_len(v, json_string_value(j), json_string_length(j) + 1);
        break;
    case AVRO_BYTES:
    case AVRO_FIXED: {
        size_t len = json_string_length(j);
        unsigned char *buf = xrealloc(NULL, len + 1);
        int64_t n = latin1_bytes(json_string_value(j), len, buf);
        if (n < 0)
            fail(a, "%s: bytes are written as a string of code points U+0000..U+00FF", where);
        else if (is_avro_fixed(s) && n != avro_schema_fixed_size(s))
            fail(a, "%s: fixed %s takes %" PRId64 " bytes, got %" PRId64, where,
                 avro_schema_name(s), avro_schema_fixed_size(s), n);
        else if (is_avro_fixed(s))
            rc = avro_value_set_fixed(v, buf, (size_t)n);
        else
            rc = avro_value_set_bytes(v, buf, (size_t)n);
        free(buf);
        if (n < 0 || (is_avro_fixed(s) && n != avro_schema_fixed_size(s)))
            return -1;
        break;
    }
    case AVRO_ENUM:
        rc = avro_value_set_enum(v, avro_schema_enum_get_by_name(s, json_string_value(j)));
        break;
    case AVRO_ARRAY:
        for (size_t i = 0; i < json_array_size(j); i++) {
            char sub[512];
            avro_value_t item;
            snprintf(sub, sizeof(sub), "%s[%zu]", where, i);
            if ((rc = avro_value_append(v, &item, NULL)))
                break;
            if (put(a, &item, json_array_get(j, i), sub))
                return -1;
        }
        break;
    case AVRO_MAP: {
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x) {
            char sub[512];
            avro_value_t item;
            snprintf(sub, sizeof(sub), "%s[\"%s\"]", where, k);
            if ((rc = avro_value_add(v, k, &item, NULL, NULL)))
                break;
            if (put(a, &item, x, sub))
                return -1;
        }
        break;
    }
    case AVRO_RECORD:
        return put_record(a, v, s, j, path);
    case AVRO_UNION: {
        json_t *inner;
        avro_value_t br;
        int b = pick_branch(s, j, &inner);
        if (b < 0) {
            fail(a, "%s: %s fits no branch of the union", where, json_kind(j));
            return -1;
        }
        if ((rc = avro_value_set_branch(v, b, &br)))
            break;
        return put(a, &br, inner, path);
    }
    default:
        fail(a, "%s: Avro type %s is not supported", where, avro_schema_type_name(s));
        return -1;
    }
    if (rc) {
        fail(a, "%s: %s", where, avro_strerror());
        return -1;
    }
    return 0;
}

/* The value of a dotted field path in a JSON object, or NULL. */
static json_t *json_path(json_t *obj, const char *path) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = obj;
    for (char *save = NULL, *t = strtok_r(buf, ".", &save); t && cur;
         t = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, t);
    return cur;
}

/* ------------------------------------------------------------- records */

/* The next input record as a JSON object (owned by the caller): 1, or 0 at
 * the end, or -1 with a.err set. */
static int next_record(app_t *a, json_t **out) {
    if (a->gen) {
        if ((int64_t)a->line >= a->nexmark_bids)
            return 0;
        eddy_nx_event_t ev;
        char scratch[EDDY_NX_SCRATCH_BYTES];
        while (eddy__nx_kind(a->gen, a->next_event) != EDDY_NX_BID)
            a->next_event++;
        eddy__nx_event(a->gen, a->next_event++, &ev, scratch);
        a->line++;
        *out = json_pack("{s:I,s:I,s:I,s:s#,s:s#,s:I,s:s#}", "auction", (json_int_t)ev.bid.auction,
                         "bidder", (json_int_t)ev.bid.bidder, "price", (json_int_t)ev.bid.price,
                         "channel", ev.bid.channel.p, (int)ev.bid.channel.len, "url", ev.bid.url.p,
                         (int)ev.bid.url.len, "dateTime", (json_int_t)ev.ts_ms, "extra",
                         ev.bid.extra.p, (int)ev.bid.extra.len);
        if (!*out)
            fail(a, "nexmark bid %" PRId64 ": cannot build its JSON", a->line);
        return *out ? 1 : -1;
    }
    ssize_t n;
    while ((n = getline(&a->linebuf, &a->linecap, a->json_in)) >= 0) {
        a->line++;
        size_t len = (size_t)n;
        while (len && (a->linebuf[len - 1] == '\n' || a->linebuf[len - 1] == '\r' ||
                       a->linebuf[len - 1] == ' ' || a->linebuf[len - 1] == '\t'))
            len--;
        if (!len)
            continue;
        json_error_t jerr;
        *out = json_loadb(a->linebuf, len, JSON_ALLOW_NUL, &jerr);
        if (!*out) {
            fail(a, "%s:%" PRId64 ":%d: %s", a->json_file, a->line, jerr.column, jerr.text);
            return -1;
        }
        if (!json_is_object(*out)) {
            fail(a, "%s:%" PRId64 ": expected one JSON object per line", a->json_file, a->line);
            json_decref(*out);
            return -1;
        }
        return 1;
    }
    if (ferror(a->json_in)) {
        fail(a, "%s: read error: %s", a->json_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* Where the current record came from, for error messages. */
static void record_where(const app_t *a, char *buf, size_t size) {
    if (a->gen)
        snprintf(buf, size, "nexmark bid %" PRId64, a->line);
    else
        snprintf(buf, size, "%s:%" PRId64, a->json_file, a->line);
}

/* A key's text: strings as they are, null as no key, the rest as JSON. */
static char *key_text(json_t *j) {
    if (json_is_null(j))
        return NULL;
    if (json_is_string(j))
        return strndup(json_string_value(j), json_string_length(j));
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

/*
 * Encode one record as a Confluent wire-format message (malloc'd), poisoned
 * as `poison` says (-1: not). Returns the length, or -1 with a.err set.
 */
static int64_t encode(app_t *a, json_t *obj, int poison, char **msg) {
    char where[PATH_MAX + 32];
    size_t body_len;
    avro_value_reset(&a->rec);
    if (put(a, &a->rec, obj, "")) {
        record_where(a, where, sizeof(where));
        char why[sizeof(a->err)];
        snprintf(why, sizeof(why), "%s", a->err);
        fail(a, "%s: %s", where, why);
        return -1;
    }
    if (avro_value_sizeof(&a->rec, &body_len)) {
        fail(a, "avro_value_sizeof: %s", avro_strerror());
        return -1;
    }
    char *buf = xrealloc(NULL, 5 + body_len + 1);
    uint32_t id = (uint32_t)(poison == POISON_ID ? POISON_UNKNOWN_ID : a->schema_id);
    buf[0] = poison == POISON_MAGIC ? POISON_BAD_MAGIC : 0;
    buf[1] = (char)(id >> 24);
    buf[2] = (char)(id >> 16);
    buf[3] = (char)(id >> 8);
    buf[4] = (char)id;
    avro_writer_t w = avro_writer_memory(buf + 5, (int64_t)body_len + 1);
    int rc = avro_value_write(w, &a->rec);
    avro_writer_free(w);
    if (rc) {
        free(buf);
        fail(a, "avro_value_write: %s", avro_strerror());
        return -1;
    }
    /* Any strict prefix of a record's encoding fails to decode: the reader
     * consumes the same bytes in the same order and runs out before the
     * last one. */
    if (poison == POISON_TRUNCATED && body_len == 0) {
        free(buf);
        fail(a, "--poison: cannot cut short a record whose Avro body is empty");
        return -1;
    }
    if (poison == POISON_TRUNCATED)
        body_len /= 2;
    *msg = buf;
    return (int64_t)(5 + body_len);
}

/* ------------------------------------------------------------ registry */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    char **body = ud;
    size_t have = *body ? strlen(*body) : 0, add = size * n;
    if (have + add > (1u << 20))
        return 0;
    *body = xrealloc(*body, have + add + 1);
    memcpy(*body + have, p, add);
    (*body)[have + add] = 0;
    return add;
}

/*
 * Register the schema under the subject (POST /subjects/{s}/versions) and
 * learn its id. No connection and 5xx answers are retried a few times, so a
 * registry that is still starting (or runs with --fail-first) is waited for.
 */
static int register_schema(app_t *a) {
    json_t *req = json_pack("{s:s}", "schema", a->schema_text);
    char *post = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char *esc = curl_easy_escape(NULL, a->subject, 0);
    size_t ulen = strlen(a->registry);
    while (ulen && a->registry[ulen - 1] == '/')
        ulen--;
    char url[2048];
    snprintf(url, sizeof(url), "%.*s/subjects/%s/versions", (int)ulen, a->registry, esc);
    curl_free(esc);
    int rc = -1;
    long status = 0;
    char *body = NULL, curl_err[CURL_ERROR_SIZE];
    for (int attempt = 1; attempt <= REGISTRY_ATTEMPTS; attempt++) {
        CURL *h = curl_easy_init();
        struct curl_slist *hdrs =
            curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        free(body);
        body = NULL;
        curl_err[0] = 0;
        status = 0;
        CURLcode crc = curl_easy_perform(h);
        if (crc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
        if (crc != CURLE_OK)
            fail(a, "registry %s: %s", url, curl_err[0] ? curl_err : curl_easy_strerror(crc));
        else if (status != 200)
            fail(a, "registry %s: HTTP %ld: %s", url, status, body ? body : "");
        if (crc == CURLE_OK && status < 500)
            break;
        struct timespec ts = {0, 100000000L << (attempt < 4 ? attempt - 1 : 3)};
        if (attempt < REGISTRY_ATTEMPTS)
            nanosleep(&ts, NULL);
    }
    if (status == 200) {
        json_t *j = json_loads(body ? body : "", 0, NULL);
        json_t *id = json_object_get(j, "id");
        if (json_is_integer(id) && json_integer_value(id) >= 0 &&
            json_integer_value(id) <= INT32_MAX) {
            a->schema_id = json_integer_value(id);
            rc = 0;
        } else
            fail(a, "registry %s: answer without an id: %s", url, body ? body : "");
        json_decref(j);
    }
    free(body);
    free(post);
    return rc;
}

/* --------------------------------------------------------------- Kafka */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    app_t *a = opaque;
    uintptr_t slot = (uintptr_t)m->_private; /* poisoned[slot - 1], 0: not poisoned */
    if (m->err) {
        if (!a->failed++)
            snprintf(a->first_failure, sizeof(a->first_failure), "partition %" PRId32 ": %s",
                     m->partition, rd_kafka_err2str(m->err));
        return;
    }
    a->delivered++;
    if (slot) {
        a->poisoned[slot - 1].partition = m->partition;
        a->poisoned[slot - 1].offset = m->offset;
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    app_t *a = opaque;
    char fatal[256];
    if (err == RD_KAFKA_RESP_ERR__FATAL &&
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (!a->failed++)
            snprintf(a->first_failure, sizeof(a->first_failure), "fatal producer error: %s", fatal);
    }
    /* other errors are transient and librdkafka logs them itself */
}

static int make_producer(app_t *a) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *fixed[][2] = {{"bootstrap.servers", a->bootstrap},
                              {"enable.idempotence", "true"},
                              {"message.timeout.ms", DEFAULT_MESSAGE_TIMEOUT_MS},
                              /* the Java client's hash of the key, so partitions match
                               * what Kafka Streams and other clients pick */
                              {"partitioner", "murmur2_random"}};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (rd_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, sizeof(errstr))) {
            fail(a, "kafka property %s: %s", fixed[i][0], errstr);
            rd_kafka_conf_destroy(conf);
            return -1;
        }
    for (int i = 0; i < a->nprops; i++)
        if (rd_kafka_conf_set(conf, a->props[i][0], a->props[i][1], errstr, sizeof(errstr))) {
            fail(a, "-X %s=%s: %s", a->props[i][0], a->props[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return -1;
        }
    rd_kafka_conf_set_opaque(conf, a);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    a->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!a->rk) {
        fail(a, "cannot create the producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    return 0;
}

/* Partition count of the topic (for round-robin), waiting up to ~10 s for
 * a topic the broker creates on first use. */
static int topic_partitions(app_t *a) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(a->rk, a->topic, NULL);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 20 && a->partitions <= 0; attempt++) {
        const struct rd_kafka_metadata *md;
        err = rd_kafka_metadata(a->rk, 0, rkt, &md, 5000);
        if (!err) {
            if (md->topic_cnt == 1 && !md->topics[0].err)
                a->partitions = md->topics[0].partition_cnt;
            else if (md->topic_cnt == 1)
                err = md->topics[0].err;
            rd_kafka_metadata_destroy(md);
        }
        if (a->partitions <= 0 && err == RD_KAFKA_RESP_ERR__TRANSPORT)
            break;
        if (a->partitions <= 0) {
            struct timespec ts = {0, 500000000L};
            nanosleep(&ts, NULL);
        }
    }
    rd_kafka_topic_destroy(rkt);
    if (a->partitions <= 0) {
        fail(a, "topic %s: no partitions known from %s: %s", a->topic, a->bootstrap,
             err ? rd_kafka_err2str(err) : "the topic has no partitions");
        return -1;
    }
    return 0;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Hand one message to librdkafka (which frees msg on success), waiting
 * while its queue is full. */
static int send_message(app_t *a, int64_t pos, char *msg, size_t len, const char *key,
                        int64_t ts_ms, uintptr_t slot) {
    int32_t partition = RD_KAFKA_PARTITION_UA;
    if (a->part_mode == PART_FIXED)
        partition = a->fixed_partition;
    else if (a->part_mode == PART_ROUND_ROBIN)
        partition = (int32_t)(pos % a->partitions);
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            a->rk, RD_KAFKA_V_TOPIC(a->topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_VALUE(msg, len), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
            RD_KAFKA_V_OPAQUE((void *)slot), RD_KAFKA_V_END);
        if (!err)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fail(a, "message %" PRId64 ": %s", pos, rd_kafka_err2str(err));
            free(msg);
            return -1;
        }
        rd_kafka_poll(a->rk, 100);
    }
}

/* Produce every input record; returns the number of messages or -1. */
static int64_t produce_all(app_t *a) {
    int64_t pos = 0;
    json_t *obj;
    int more;
    while ((more = next_record(a, &obj)) > 0) {
        char where[PATH_MAX + 32];
        record_where(a, where, sizeof(where));
        char *key = NULL;
        int64_t ts_ms = 0;
        int rc = -1;
        if (a->key_field) {
            json_t *k = json_path(obj, a->key_field);
            if (!k)
                fail(a, "%s: no key field '%s'", where, a->key_field);
            else
                key = key_text(k);
            if (!k)
                goto next;
        }
        if (a->ts_field) {
            json_t *t = json_path(obj, a->ts_field);
            if (!json_is_integer(t)) {
                fail(a, "%s: timestamp field '%s' must be an integer (ms), got %s", where,
                     a->ts_field, t ? json_kind(t) : "nothing");
                goto next;
            }
            ts_ms = json_integer_value(t);
        }
        int poison = -1;
        uintptr_t slot = 0;
        if (a->poison_every > 0 && (pos + 1) % a->poison_every == 0) {
            poison = (int)(a->npoisoned % 3);
            if (a->npoisoned == a->poisoned_cap) {
                a->poisoned_cap = a->poisoned_cap ? 2 * a->poisoned_cap : 64;
                a->poisoned = xrealloc(a->poisoned, sizeof(poisoned_t) * a->poisoned_cap);
            }
            a->poisoned[a->npoisoned] =
                (poisoned_t){.pos = pos, .kind = (poison_kind_t)poison, .offset = -1};
            slot = ++a->npoisoned;
        }
        char *msg;
        int64_t len = encode(a, obj, poison, &msg);
        if (len >= 0)
            rc = send_message(a, pos, msg, (size_t)len, key, ts_ms, slot);
    next:
        free(key);
        json_decref(obj);
        if (rc)
            return -1;
        pos++;
        rd_kafka_poll(a->rk, 0);
        if (a->failed)
            break; /* the run has failed: stop early, report after the flush */
    }
    return more < 0 ? -1 : pos;
}

/* Wait for every delivery report: message.timeout.ms bounds each. */
static int flush_all(app_t *a) {
    int64_t deadline = now_ms() + 10 * 60 * 1000;
    while (rd_kafka_outq_len(a->rk) > 0 && now_ms() < deadline)
        rd_kafka_flush(a->rk, 1000);
    if (rd_kafka_outq_len(a->rk) > 0) {
        fail(a, "%d messages still undelivered after 10 minutes", rd_kafka_outq_len(a->rk));
        return -1;
    }
    return 0;
}

static int write_poison_log(app_t *a) {
    FILE *f = a->poison_log ? fopen(a->poison_log, "w") : stdout;
    if (!f) {
        fail(a, "--poison-log %s: %s", a->poison_log, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < a->npoisoned; i++) {
        const poisoned_t *p = &a->poisoned[i];
        fprintf(f, "poisoned %" PRId64 " %" PRId32 " %" PRId64 " %s\n", p->pos, p->partition,
                p->offset, poison_names[p->kind]);
    }
    if (f != stdout ? fclose(f) : fflush(f)) {
        fail(a, "--poison-log %s: %s", a->poison_log, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * After the last message (n of them, or -1 after an error): wait for every
 * acknowledgement and check them. Returns n, or -1 with a->err set.
 */
static int64_t finish(app_t *a, int64_t n) {
    if (n < 0) { /* the run has failed: drop what is still queued */
        rd_kafka_purge(a->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(a->rk, 5000);
        return -1;
    }
    if (flush_all(a))
        return -1;
    if (a->failed) {
        fail(a, "delivery failed for %" PRId64 " message%s (first: %s)", a->failed,
             a->failed == 1 ? "" : "s", a->first_failure);
        return -1;
    }
    if (a->delivered != n) {
        fail(a, "%" PRId64 " of %" PRId64 " messages acknowledged", a->delivered, n);
        return -1;
    }
    return a->poison_every && write_poison_log(a) ? -1 : n;
}

/* ---------------------------------------------------------------- main */

static void usage(FILE *f) {
    fprintf(f,
            "usage: avro-produce --bootstrap HOST:PORT --topic T --schema FILE.avsc\n"
            "                    (--schema-id N | --registry URL --subject S)\n"
            "                    (--json FILE | --nexmark-bids N [--seed S])\n"
            "                    [--key FIELD] [--partitions-by key|round-robin|P]\n"
            "                    [--timestamp-field FIELD] [--poison K [--poison-log FILE]]\n"
            "                    [-X librdkafka.property=value]...\n"
            "  --schema-id        the id written into every message\n"
            "  --registry/--subject  register the schema there and write its id\n"
            "  --json             one JSON object per line ('-' = stdin), mapped onto the schema\n"
            "  --nexmark-bids     N bids of eddy's Nexmark generator (seed --seed, default 0)\n"
            "  --key              message key = that field's value as text (a.b for nested)\n"
            "  --partitions-by    key: murmur2 of the key (default with --key);\n"
            "                     round-robin: message i to partition i mod partitions\n"
            "                     (default without --key); P: every message to partition P\n"
            "  --timestamp-field  Kafka message timestamp from that field (ms)\n"
            "  --poison           every K-th message undecodable (bad-magic, unknown-id,\n"
            "                     truncated in turn); 'poisoned POS PARTITION OFFSET KIND'\n"
            "                     lines go to stdout or --poison-log\n"
            "Prints 'schema-id N' when registering and 'produced N' at the end; exit 1 on\n"
            "any failure, 2 on a usage error.\n");
}

static int parse_count(const char *opt, const char *s, int64_t min, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < min) {
        fprintf(stderr, "avro-produce: %s %s: expected an integer >= %" PRId64 "\n", opt, s, min);
        return -1;
    }
    *out = x;
    return 0;
}

/* Parse argv into a; 0, or -1 after printing why. */
static int parse_args(app_t *a, int argc, char **argv) {
    static const struct option opts[] = {{"bootstrap", required_argument, NULL, 'b'},
                                         {"topic", required_argument, NULL, 't'},
                                         {"schema", required_argument, NULL, 's'},
                                         {"schema-id", required_argument, NULL, 'i'},
                                         {"registry", required_argument, NULL, 'r'},
                                         {"subject", required_argument, NULL, 'S'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"nexmark-bids", required_argument, NULL, 'n'},
                                         {"seed", required_argument, NULL, 'e'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"partitions-by", required_argument, NULL, 'p'},
                                         {"timestamp-field", required_argument, NULL, 'T'},
                                         {"poison", required_argument, NULL, 'P'},
                                         {"poison-log", required_argument, NULL, 'L'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    int64_t part;
    while ((opt = getopt_long(argc, argv, "X:", opts, NULL)) != -1) {
        switch (opt) {
        case 'b':
            a->bootstrap = optarg;
            break;
        case 't':
            a->topic = optarg;
            break;
        case 's':
            a->schema_file = optarg;
            break;
        case 'i':
            if (parse_count("--schema-id", optarg, 0, &a->schema_id) || a->schema_id > INT32_MAX)
                return -1;
            break;
        case 'r':
            a->registry = optarg;
            break;
        case 'S':
            a->subject = optarg;
            break;
        case 'j':
            a->json_file = optarg;
            break;
        case 'n':
            if (parse_count("--nexmark-bids", optarg, 0, &a->nexmark_bids))
                return -1;
            break;
        case 'e':
            if (parse_count("--seed", optarg, 0, &a->seed))
                return -1;
            break;
        case 'k':
            a->key_field = optarg;
            break;
        case 'p':
            a->part_given = true;
            if (!strcmp(optarg, "key"))
                a->part_mode = PART_KEY;
            else if (!strcmp(optarg, "round-robin"))
                a->part_mode = PART_ROUND_ROBIN;
            else if (!parse_count("--partitions-by", optarg, 0, &part) && part <= INT32_MAX) {
                a->part_mode = PART_FIXED;
                a->fixed_partition = (int32_t)part;
            } else
                return -1;
            break;
        case 'T':
            a->ts_field = optarg;
            break;
        case 'P':
            if (parse_count("--poison", optarg, 1, &a->poison_every))
                return -1;
            break;
        case 'L':
            a->poison_log = optarg;
            break;
        case 'X': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || a->nprops == 64) {
                fprintf(stderr, "avro-produce: -X %s: %s\n", optarg,
                        eq && eq != optarg ? "more than 64 -X options" : "expected property=value");
                return -1;
            }
            *eq = 0;
            a->props[a->nprops][0] = optarg;
            a->props[a->nprops++][1] = eq + 1;
            break;
        }
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    const char *why = NULL;
    if (optind < argc)
        why = "unexpected argument";
    else if (!a->bootstrap || !a->topic || !a->schema_file)
        why = "--bootstrap, --topic and --schema are required";
    else if ((a->schema_id >= 0) == (a->registry != NULL))
        why = "give either --schema-id or --registry (with --subject)";
    else if ((a->registry != NULL) != (a->subject != NULL))
        why = "--registry and --subject go together";
    else if ((a->json_file != NULL) == (a->nexmark_bids >= 0))
        why = "give either --json or --nexmark-bids";
    else if (a->part_given && a->part_mode == PART_KEY && !a->key_field)
        why = "--partitions-by key needs --key";
    else if (a->poison_log && !a->poison_every)
        why = "--poison-log needs --poison";
    if (why) {
        fprintf(stderr, "avro-produce: %s%s%s\n", why, optind < argc ? ": " : "",
                optind < argc ? argv[optind] : "");
        usage(stderr);
        return -1;
    }
    if (!a->part_given)
        a->part_mode = a->key_field ? PART_KEY : PART_ROUND_ROBIN;
    return 0;
}

static int load_schema(app_t *a) {
    FILE *f = fopen(a->schema_file, "r");
    if (!f) {
        fail(a, "--schema %s: %s", a->schema_file, strerror(errno));
        return -1;
    }
    json_error_t jerr;
    a->schema_json = json_loadf(f, JSON_DECODE_ANY, &jerr);
    fclose(f);
    if (!a->schema_json) {
        fail(a, "%s:%d:%d: %s", a->schema_file, jerr.line, jerr.column, jerr.text);
        return -1;
    }
    a->schema_text = json_dumps(a->schema_json, JSON_COMPACT | JSON_ENCODE_ANY);
    if (avro_schema_from_json_length(a->schema_text, strlen(a->schema_text), &a->schema)) {
        fail(a, "%s: %s", a->schema_file, avro_strerror());
        return -1;
    }
    a->iface = avro_generic_class_from_schema(a->schema);
    if (!a->iface || avro_generic_value_new(a->iface, &a->rec)) {
        fail(a, "%s: %s", a->schema_file, avro_strerror());
        return -1;
    }
    return 0;
}

static int open_input(app_t *a) {
    if (a->json_file) {
        a->json_in = strcmp(a->json_file, "-") ? fopen(a->json_file, "r") : stdin;
        if (!a->json_in)
            fail(a, "--json %s: %s", a->json_file, strerror(errno));
        return a->json_in ? 0 : -1;
    }
    eddy_nx_conf_t c;
    eddy__nx_conf_default(&c);
    c.seed = (uint64_t)a->seed;
    a->gen = eddy__nx_gen_new(&c);
    if (!a->gen)
        fail(a, "cannot build the Nexmark generator");
    return a->gen ? 0 : -1;
}

static void app_free(app_t *a) {
    if (a->rk)
        rd_kafka_destroy(a->rk);
    if (a->iface) {
        avro_value_decref(&a->rec);
        avro_value_iface_decref(a->iface);
    }
    if (a->schema)
        avro_schema_decref(a->schema);
    json_decref(a->schema_json);
    free(a->schema_text);
    if (a->json_in && a->json_in != stdin)
        fclose(a->json_in);
    free(a->linebuf);
    if (a->gen)
        eddy__nx_gen_destroy(a->gen);
    free(a->poisoned);
}

int main(int argc, char **argv) {
    app_t a = {.schema_id = -1, .nexmark_bids = -1};
    if (parse_args(&a, argc, argv))
        return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int64_t n = -1;
    if (!load_schema(&a) && (!a.registry || !register_schema(&a)) && !open_input(&a) &&
        !make_producer(&a) && (a.part_mode != PART_ROUND_ROBIN || !topic_partitions(&a))) {
        if (a.registry) {
            printf("schema-id %" PRId64 "\n", a.schema_id);
            fflush(stdout);
        }
        n = finish(&a, produce_all(&a));
    }
    if (n >= 0)
        printf("produced %" PRId64 "\n", n);
    else
        fprintf(stderr, "avro-produce: %s\n", a.err[0] ? a.err : "failed");
    app_free(&a);
    curl_global_cleanup();
    return n >= 0 ? 0 : 1;
}
