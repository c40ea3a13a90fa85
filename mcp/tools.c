/*
 * MCP tools: what a model can ask of the running topology. All read-only
 * (annotations.readOnlyHint), each with an inputSchema and an outputSchema,
 * answering with structuredContent plus the same JSON as text. Every
 * answer is bounded: `limit` defaults to opts.default_limit and is capped
 * at opts.max_limit; scans return an opaque cursor for the next page.
 *
 * Mistakes a model can fix (unknown store, wrong key fields, bad time)
 * come back as isError results that say what would work; only malformed
 * calls (unknown tool) are JSON-RPC errors.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp.h"
#include "connectors/instances.h"
#include "mcp_int.h"

/* ----------------------------------------------------------- values */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static json_t *base64(const char *p, size_t n) {
    char *o = malloc(4 * ((n + 2) / 3) + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)p[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)p[i + 2];
        o[k++] = b64[(v >> 18) & 63];
        o[k++] = b64[(v >> 12) & 63];
        o[k++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        o[k++] = i + 2 < n ? b64[v & 63] : '=';
    }
    json_t *j = json_stringn(o, k);
    free(o);
    return j;
}

/* A JSON string of p, with invalid UTF-8 replaced by U+FFFD. */
json_t *eddy__mcp_utf8(const char *p, size_t n) {
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    char *o = malloc(n * 3 + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)p[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n && c != 0;
        for (size_t q = 1; ok && q < len; q++)
            ok = ((unsigned char)p[i + q] >> 6) == 2;
        if (ok && len > 1) {
            json_t *t = json_stringn(p + i, len); /* overlongs, surrogates */
            ok = t != NULL;
            json_decref(t);
        }
        if (ok) {
            memcpy(o + k, p + i, len);
            k += len;
            i += len;
        } else {
            memcpy(o + k, "\xef\xbf\xbd", 3);
            k += 3;
            i++;
        }
    }
    j = json_stringn(o, k);
    free(o);
    return j;
}

json_t *eddy__mcp_value_json(const eddy_value_t *v) {
    switch ((eddy_type_t)v->type) {
    case EDDY_TYPE_NULL:
        return json_null();
    case EDDY_TYPE_BOOL:
        return json_boolean(v->u.i);
    case EDDY_TYPE_INT:
    case EDDY_TYPE_TIMESTAMP:
        return json_integer(v->u.i);
    case EDDY_TYPE_DOUBLE:
        return isfinite(v->u.d) ? json_real(v->u.d) : json_null();
    case EDDY_TYPE_STRING:
        return eddy__mcp_utf8(v->u.s, v->len);
    case EDDY_TYPE_BYTES:
        return base64(v->u.s, v->len);
    }
    return json_null();
}

json_t *eddy__mcp_record_json(const eddy_record_t *rec) {
    json_t *o = json_object();
    int n = eddy_schema_nfields(rec->schema);
    for (int i = 0; i < n; i++)
        json_object_set_new(o, eddy_schema_field_name(rec->schema, i),
                            eddy__mcp_value_json(&rec->values[i]));
    return o;
}

/* Times a client may give: the ECMAScript date range, +-10^8 days. Far past
 * any event time, and far enough from INT64_MIN/MAX that the stores' segment
 * arithmetic (which negates and rounds times) cannot overflow. */
#define TIME_LIMIT_MS 8640000000000000LL

static bool time_in_range(int64_t ms) { return ms >= -TIME_LIMIT_MS && ms <= TIME_LIMIT_MS; }

/* ISO-8601 ("2026-11-21T10:32:00Z", fractions, +hh:mm offsets, or a bare
 * date) or integer milliseconds, within TIME_LIMIT_MS of the epoch. */
bool eddy__mcp_parse_time(json_t *j, int64_t *ms) {
    if (json_is_integer(j)) {
        *ms = json_integer_value(j);
        return time_in_range(*ms);
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (!(d >= -(double)TIME_LIMIT_MS && d <= (double)TIME_LIMIT_MS))
            return false; /* NaN too */
        *ms = (int64_t)d;
        return true;
    }
    const char *s = json_string_value(j);
    if (!s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s && !*end) {
        *ms = v;
        return errno == 0 && time_in_range(*ms);
    }
    struct tm tm = {0};
    int Y, M, D, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) != 3)
        return false;
    const char *p = s + n;
    double frac = 0;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        int m2 = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m2) != 2)
            return false;
        p += 1 + m2;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m2) != 1)
                return false;
            p += 1 + m2;
            if (*p == '.') {
                char *fe;
                frac = strtod(p, &fe);
                /* ".5e999" is inf: (int64_t)(inf * 1000) would be undefined */
                if (!(frac >= 0 && frac < 1))
                    return false;
                p = fe;
            }
        }
    }
    int64_t off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om = 0, m2 = 0;
        int sign = *p == '-' ? -1 : 1;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &m2) < 1)
            return false;
        if (!m2) {
            m2 = 2;
            if (p[3] && isdigit((unsigned char)p[3]) && sscanf(p + 3, "%2d", &om) == 1)
                m2 = 4;
        }
        p += 1 + m2;
        off_s = sign * (oh * 3600 + om * 60);
    }
    if (*p || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    int64_t t = (int64_t)timegm(&tm);
    *ms = (t - off_s) * 1000 + (int64_t)(frac * 1000 + 0.5);
    return time_in_range(*ms);
}

/* ------------------------------------------------------------ stores */

int eddy__mcp_stores(eddy_mcp_t *m, eddy_mcp_store_t *out, int max) {
    const char *names[128];
    int n = eddy_engine_stores(eddy__mcp_engine(m), names, 128);
    int k = 0;
    for (int i = 0; i < n && i < 128 && k < max; i++) {
        if (eddy_engine_store_info(eddy__mcp_engine(m), names[i], &out[k].info))
            continue;
        snprintf(out[k].name, sizeof(out[k].name), "%s", names[i]);
        k++;
    }
    return k;
}

static bool is_windowed(const eddy_store_info_t *i) {
    return !strcmp(i->kind, "window") || !strcmp(i->kind, "session");
}

/* A log store: CEP matches by key and time. */
static bool is_log(const eddy_store_info_t *i) { return !strcmp(i->kind, "log"); }

static void fields_desc(const eddy_schema_t *s, char *out, size_t n) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < eddy_schema_nfields(s) && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%s%s (%s)", i ? ", " : "",
                              eddy_schema_field_name(s, i),
                              eddy_type2str(eddy_schema_field_type(s, i)));
}

void eddy__mcp_store_list_desc(eddy_mcp_t *m, char *out, size_t n) {
    eddy_mcp_store_t st[64];
    int ns = eddy__mcp_stores(m, st, 64);
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < ns && k < n; i++)
        k += (size_t)snprintf(out + k, n - k, "%s%s (%s)", i ? ", " : "", st[i].name,
                              st[i].info.kind);
    if (!ns)
        snprintf(out, n, "none (the topology has no queryable store)");
}

/* ------------------------------------------------------------- keys */

void eddy__mcp_scratch_free(scratch_t *sc) {
    for (int i = 0; i < sc->n; i++)
        free(sc->strs[i]);
    sc->n = 0;
}

/* One JSON value -> a value of type t. */
static bool to_value(json_t *j, eddy_type_t t, eddy_value_t *v, scratch_t *sc) {
    memset(v, 0, sizeof(*v));
    if (json_is_null(j)) {
        v->type = EDDY_TYPE_NULL;
        return true;
    }
    v->type = (uint8_t)t;
    switch (t) {
    case EDDY_TYPE_STRING:
    case EDDY_TYPE_BYTES:
        if (json_is_string(j)) {
            v->u.s = json_string_value(j);
            v->len = (uint32_t)json_string_length(j);
            return true;
        }
        if (json_is_integer(j) && sc->n < 64) {
            char *s = malloc(32);
            snprintf(s, 32, "%lld", (long long)json_integer_value(j));
            sc->strs[sc->n++] = s;
            v->u.s = s;
            v->len = (uint32_t)strlen(s);
            return true;
        }
        return false;
    case EDDY_TYPE_INT:
        if (json_is_integer(j)) {
            v->u.i = json_integer_value(j);
            return true;
        }
        if (json_is_string(j)) {
            char *end;
            const char *s = json_string_value(j);
            long long x = strtoll(s, &end, 10);
            if (*s && !*end) {
                v->u.i = x;
                return true;
            }
        }
        return false;
    case EDDY_TYPE_TIMESTAMP:
        return eddy__mcp_parse_time(j, &v->u.i);
    case EDDY_TYPE_DOUBLE:
        if (json_is_number(j)) {
            v->u.d = json_number_value(j);
            return true;
        }
        if (json_is_string(j)) {
            char *end;
            const char *s = json_string_value(j);
            double d = strtod(s, &end);
            if (*s && !*end) {
                v->u.d = d;
                return true;
            }
        }
        return false;
    case EDDY_TYPE_BOOL:
        if (json_is_boolean(j)) {
            v->u.i = json_is_true(j);
            return true;
        }
        return false;
    case EDDY_TYPE_NULL:
        return false;
    }
    return false;
}

/*
 * A key given as {field: value, ...}, [v1, v2, ...], or a bare value when
 * the key has one field. With partial, fewer leading fields are allowed
 * (prefixes and range bounds). Returns the number of fields, or -1 with
 * the reason in err.
 */
int eddy__mcp_parse_key(const eddy_schema_t *ks, json_t *key, bool partial, eddy_value_t *out,
                        int max, scratch_t *sc, char *err, size_t errn) {
    int nf = eddy_schema_nfields(ks);
    char want[1024];
    fields_desc(ks, want, sizeof(want));
    if (nf > max) {
        snprintf(err, errn, "keys of more than %d fields are not supported", max);
        return -1;
    }
    int n = 0;
    if (json_is_object(key)) {
        for (int i = 0; i < nf; i++) {
            json_t *v = json_object_get(key, eddy_schema_field_name(ks, i));
            if (!v)
                break;
            if (!to_value(v, eddy_schema_field_type(ks, i), &out[n], sc)) {
                snprintf(err, errn, "key field '%s' must be of type %s; the key fields are, in order: %s",
                         eddy_schema_field_name(ks, i),
                         eddy_type2str(eddy_schema_field_type(ks, i)), want);
                return -1;
            }
            n++;
        }
        if ((size_t)n != json_object_size(key)) {
            snprintf(err, errn,
                     "the key fields are, in order: %s; give %s as an object with those names",
                     want, partial ? "leading fields" : "all of them");
            return -1;
        }
    } else if (json_is_array(key)) {
        if (json_array_size(key) > (size_t)nf) {
            snprintf(err, errn, "too many key values: the key fields are %s", want);
            return -1;
        }
        for (size_t i = 0; i < json_array_size(key); i++) {
            if (!to_value(json_array_get(key, i), eddy_schema_field_type(ks, (int)i), &out[n],
                          sc)) {
                snprintf(err, errn, "key field '%s' must be of type %s; the key fields are, in order: %s",
                         eddy_schema_field_name(ks, (int)i),
                         eddy_type2str(eddy_schema_field_type(ks, (int)i)), want);
                return -1;
            }
            n++;
        }
    } else if (key && nf >= 1 && (nf == 1 || partial)) {
        if (!to_value(key, eddy_schema_field_type(ks, 0), &out[0], sc)) {
            snprintf(err, errn, "key field '%s' must be of type %s; the key fields are, in order: %s",
                     eddy_schema_field_name(ks, 0), eddy_type2str(eddy_schema_field_type(ks, 0)),
                     want);
            return -1;
        }
        n = 1;
    } else {
        snprintf(err, errn, "give the key as an object {field: value}; the key fields are %s",
                 nf ? want : "none (one global key: use {})");
        return -1;
    }
    if (!partial && n != nf) {
        snprintf(err, errn, "the key needs every field: %s", want);
        return -1;
    }
    return n;
}

static json_t *key_json(const eddy_schema_t *ks, const eddy_value_t *k, int n) {
    json_t *o = json_object();
    for (int i = 0; i < n; i++)
        json_object_set_new(o, eddy_schema_field_name(ks, i), eddy__mcp_value_json(&k[i]));
    return o;
}

/* ------------------------------------------------------------ results */

static json_t *tool_ok(const char *version, json_t *structured) {
    char *txt = json_dumps(structured, JSON_COMPACT);
    json_t *r = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                          txt ? txt : "{}", "isError", 0);
    free(txt);
    if (strcmp(version, "2025-03-26"))
        json_object_set_new(r, "structuredContent", structured);
    else
        json_decref(structured);
    return r;
}

static json_t *tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_err(const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* msg may end inside a character cut by the buffer: repair, or json_pack fails */
    return json_pack("{s:[{s:s, s:o}], s:b}", "content", "type", "text", "text",
                     eddy__mcp_utf8(msg, strlen(msg)), "isError", 1);
}

static json_t *no_store(eddy_mcp_t *m, const char *name, const char *what) {
    char list[2048];
    eddy__mcp_store_list_desc(m, list, sizeof(list));
    if (!name)
        return tool_err("'store' is required (%s). Stores: %s", what, list);
    return tool_err("no store named '%s'. Stores: %s", name, list);
}

static int get_limit(eddy_mcp_t *m, json_t *args, const char *name, int *limit) {
    const eddy_mcp_opts_t *o = eddy__mcp_opts(m);
    json_t *l = json_object_get(args, name);
    *limit = o->default_limit;
    if (!l)
        return 0;
    if (!json_is_integer(l) || json_integer_value(l) < 1)
        return -1;
    json_int_t v = json_integer_value(l);
    *limit = v > o->max_limit ? o->max_limit : (int)v;
    return 0;
}

typedef struct {
    json_t *items;
    json_t *keys; /* each item's store key (eddy__mcp_hex_key), or NULL */
} acc_t;

static eddy_err_t add_item(const eddy_record_t *rec, void *opaque) {
    acc_t *a = opaque;
    json_array_append_new(a->items, eddy__mcp_record_json(rec));
    return EDDY_OK;
}

static void add_key(const char *k, size_t kl, void *opaque) {
    acc_t *a = opaque;
    json_array_append_new(a->keys, eddy__mcp_hex_key(k, kl));
}

/* ------------------------------------------------------------- tools */

json_t *eddy__mcp_describe(eddy_mcp_t *m) {
    eddy_engine_t *eng = eddy__mcp_engine(m);
    char *d = eddy_engine_describe_json(eng);
    json_t *j = d ? json_loads(d, 0, NULL) : NULL;
    eddy_free(d);
    if (!j)
        j = json_object();
    json_t *stores = json_object_get(j, "stores");
    for (size_t i = 0; i < json_array_size(stores); i++) {
        json_t *s = json_array_get(stores, i);
        const char *k = json_string_value(json_object_get(s, "kind"));
        bool w = k && (!strcmp(k, "window") || !strcmp(k, "session"));
        bool lg = k && !strcmp(k, "log");
        json_object_set_new(s, "answers",
                            lg  ? json_pack("[s,s]", "get_matches", "scan_store")
                            : w ? json_pack("[s,s,s]", "get_windows", "scan_store", "top_keys")
                                : json_pack("[s,s,s]", "get_value", "scan_store", "top_keys"));
        json_object_set_new(s, "resource_template",
                            json_string(eddy__mcp_store_template(m, json_string_value(
                                                                        json_object_get(s, "name")))));
    }
    int64_t wm[256];
    int nt = eddy_engine_task_watermarks(eng, wm, 256);
    json_t *tw = json_array();
    eddy_stats_t st;
    eddy_engine_stats(eng, &st);
    for (int i = 0; i < nt && i < 256; i++)
        json_array_append_new(tw, wm[i] == INT64_MIN ? json_null() : json_integer(wm[i]));
    json_object_set_new(j, "watermarks",
                        json_pack("{s:o, s:o}", "min_ms",
                                  st.watermark_ms == INT64_MIN || st.watermark_ms == INT64_MAX
                                      ? json_null()
                                      : json_integer(st.watermark_ms),
                                  "tasks", tw));
    json_object_set_new(j, "running", json_boolean(st.running));
    return j;
}

static json_t *t_describe(eddy_mcp_t *m, json_t *args, const char *version) {
    (void)args;
    json_t *d = eddy__mcp_describe(m);
    if (eddy__mcp_cluster(m)) { /* scale-out: every instance's tasks */
        char *c = eddy__instances_json(eddy__mcp_cluster(m));
        json_t *cj = c ? json_loads(c, 0, NULL) : NULL;
        free(c);
        json_object_set_new(d, "cluster", cj ? cj : json_array());
    }
    return tool_ok(version, d);
}

/* A call for a key of task of store (k: n values; si: the store). */
typedef struct {
    eddy_mcp_t *m;
    const char *store;
    const eddy_store_info_t *si;
    const eddy_value_t *k;
    int n, task;
} key_call_t;

/* get_value from this instance's standby copy of the key's task, when the
 * routed answer r (NULL: the owner did not answer, why in err) says the
 * task is restoring or moving; NULL when no copy is kept here or the
 * answer is not one of those. */
static json_t *standby_answer(const key_call_t *c, json_t *r, const char *err) {
    eddy_mcp_t *m = c->m;
    const char *name = c->store;
    const eddy_store_info_t *si = c->si;
    const eddy_value_t *k = c->k;
    int n = c->n, task = c->task;
    json_t *st = r ? json_object_get(r, "structuredContent") : NULL;
    const char *status = json_string_value(json_object_get(st, "status"));
    bool restoring = status && !strcmp(status, "restoring");
    if (r && !restoring && !(status && !strcmp(status, "unassigned")))
        return NULL;
    acc_t a = {json_array(), NULL};
    int64_t lag = -1, age = 0;
    eddy_err_t e = eddy__engine_query_get_standby(eddy__mcp_engine(m), name, k, n, add_item, &a,
                                                  &lag, &age);
    if (e && e != EDDY_ERR_NOENT) {
        json_decref(a.items);
        return NULL;
    }
    json_t *out = st ? json_deep_copy(st) : json_object();
    json_object_set_new(out, "store", json_string(name));
    json_object_set_new(out, "key", key_json(si->key_schema, k, n));
    json_object_set_new(out, "found", json_boolean(e == EDDY_OK));
    json_object_set_new(out, "value", e == EDDY_OK ? json_incref(json_array_get(a.items, 0))
                                                   : json_null());
    json_decref(a.items);
    json_object_set_new(out, "task", json_integer(task));
    if (!st) {
        json_object_set_new(out, "status", json_string("unreachable"));
        json_object_set_new(out, "owner_error", json_string(err));
    }
    json_object_set_new(out, "source", json_string("standby"));
    json_object_set_new(out, "standby", json_pack("{s:o, s:I}", "lag_records",
                                                  lag >= 0 ? json_integer(lag) : json_null(),
                                                  "caught_up_ms_ago", (json_int_t)age));
    char lags[64] = "an unknown number of";
    if (lag >= 0)
        snprintf(lags, sizeof(lags), "%lld", (long long)lag);
    json_object_set_new(out, "note",
                        json_sprintf("answered from this instance's standby copy of task %d, "
                                     "which trailed its changelog by %s records %lld ms ago: %s; "
                                     "the owner's answer may be newer",
                                     task, lags, (long long)age,
                                     !st ? "the task's owner did not answer"
                                     : restoring ? "the task is being restored"
                                                 : "the consumer group is moving the task"));
    return out;
}

/* A key-addressed call (get_value, get_windows, get_matches) for a key of
 * task, which is not open here (scale-out): forwarded to the task's owner
 * or answered with where the key lives (eddy__mcp_route); not_here is the
 * answer's shape with nothing found (adopted). standby (or NULL) may
 * answer instead from a standby copy kept here, given the routed result
 * (NULL: the owner did not answer, why in err). */
static json_t *routed(const key_call_t *c, const char *version, const char *tool, json_t *args,
                      json_t *not_here,
                      json_t *(*standby)(const key_call_t *c, json_t *r, const char *err)) {
    char err[1024];
    json_t *r = eddy__mcp_route(c->m, tool, args, c->task, not_here, err, sizeof(err));
    json_t *sb = standby ? standby(c, r, err) : NULL;
    if (sb) {
        json_decref(r);
        return tool_ok(version, sb);
    }
    if (!r)
        return tool_err("store '%s': %s", c->store, err);
    json_t *st = json_object_get(r, "content") ? NULL : json_object_get(r, "structuredContent");
    if (st) { /* an answer made here */
        json_incref(st);
        json_decref(r);
        return tool_ok(version, st);
    }
    return r; /* the owner's result */
}

static json_t *t_get(eddy_mcp_t *m, json_t *args, const char *version) {
    const char *name = json_string_value(json_object_get(args, "store"));
    eddy_store_info_t si;
    if (!name || eddy_engine_store_info(eddy__mcp_engine(m), name, &si))
        return no_store(m, name, "a kv store");
    if (is_windowed(&si))
        return tool_err("store '%s' is a %s store: its entries are windows; use get_windows "
                        "with store '%s' and the key",
                        name, si.kind, name);
    eddy_value_t k[32];
    scratch_t sc = {0};
    char err[1024];
    json_t *key = json_object_get(args, "key");
    int n = eddy__mcp_parse_key(si.key_schema, key, false, k, 32, &sc, err, sizeof(err));
    if (n < 0) {
        eddy__mcp_scratch_free(&sc);
        return tool_err("store '%s': %s", name, err);
    }
    /* scale-out: a key of a task another instance runs goes there */
    eddy_engine_t *eng = eddy__mcp_engine(m);
    int task = eddy__engine_query_task(eng, name, k, n);
    bool cluster = task >= 0 && eddy__mcp_cluster(m);
    acc_t a = {json_array(), NULL};
    /* the task's state is read only if it is open when the read holds the
     * tasks' lock: a task closed after the check would read as an absent
     * key (a task not open or being opened goes to routing at once; a
     * restore holds no lock queries wait for) */
    eddy_err_t e = EDDY_ERR_STATE;
    if (!cluster || eddy__engine_task_active(eng, task))
        e = cluster ? eddy__engine_query_get_open(eng, name, k, n, add_item, &a)
                    : eddy_engine_query_get(eng, name, k, n, add_item, &a);
    if (cluster && e == EDDY_ERR_STATE) {
        json_decref(a.items);
        json_t *nh = json_pack("{s:s, s:o, s:b, s:n}", "store", name, "key",
                               key_json(si.key_schema, k, n), "found", 0, "value");
        /* the key's task restores, moves, or its owner does not answer:
         * a standby copy kept here answers, saying so */
        key_call_t c = {m, name, &si, k, n, task};
        json_t *r = routed(&c, version, "get_value", args, nh, standby_answer);
        eddy__mcp_scratch_free(&sc);
        return r;
    }
    json_t *r = NULL;
    if (e == EDDY_ERR_STATE && eddy__engine_task_opening(eng, task))
        r = tool_err("store '%s': the key's task %d is being restored on this instance (the "
                     "consumer group just assigned it): retry in a few seconds",
                     name, task);
    else if (e && e != EDDY_ERR_NOENT)
        r = tool_err("store '%s': the lookup failed: %s", name, eddy_err2str(e));
    else
        r = tool_ok(version, json_pack("{s:s, s:o, s:b, s:O}", "store", name, "key",
                                       key_json(si.key_schema, k, n), "found", e == EDDY_OK,
                                       "value",
                                       e == EDDY_OK ? json_array_get(a.items, 0) : json_null()));
    json_decref(a.items);
    eddy__mcp_scratch_free(&sc);
    return r;
}

static json_t *t_scan(eddy_mcp_t *m, json_t *args, const char *version) {
    const char *name = json_string_value(json_object_get(args, "store"));
    eddy_store_info_t si;
    if (!name || eddy_engine_store_info(eddy__mcp_engine(m), name, &si))
        return no_store(m, name, "the store to scan");
    int limit;
    if (get_limit(m, args, "limit", &limit))
        return tool_err("'limit' must be a positive integer (at most %d)",
                        eddy__mcp_opts(m)->max_limit);
    json_t *jc = json_object_get(args, "cursor");
    if (jc && !json_is_string(jc) && !json_is_null(jc))
        return tool_err("'cursor' must be the next_cursor string of a previous scan_store");
    eddy_value_t pv[32], fv[32], tv[32];
    scratch_t sc = {0};
    char err[1024];
    eddy_key_range_t r = {0};
    json_t *jp = json_object_get(args, "prefix"), *jf = json_object_get(args, "from"),
           *jt = json_object_get(args, "to");
    bool sp = json_is_true(json_object_get(args, "string_prefix"));
    if ((jp || jf || jt) && is_windowed(&si)) {
        return tool_err("store '%s' is a %s store: prefix/from/to apply to kv stores; use "
                        "get_windows for one key's windows over a time range",
                        name, si.kind);
    }
    int n;
    if (jp) {
        if ((n = eddy__mcp_parse_key(si.key_schema, jp, true, pv, 32, &sc, err, sizeof(err))) < 0)
            goto bad;
        r.prefix = pv;
        r.nprefix = n;
        r.string_prefix = sp;
        if (sp && (n == 0 || (eddy_schema_field_type(si.key_schema, n - 1) != EDDY_TYPE_STRING &&
                              eddy_schema_field_type(si.key_schema, n - 1) != EDDY_TYPE_BYTES))) {
            snprintf(err, sizeof(err), "string_prefix needs a string as the last prefix value");
            goto bad;
        }
    }
    if (jf) {
        if ((n = eddy__mcp_parse_key(si.key_schema, jf, true, fv, 32, &sc, err, sizeof(err))) < 0)
            goto bad;
        r.from = fv;
        r.nfrom = n;
    }
    if (jt) {
        if ((n = eddy__mcp_parse_key(si.key_schema, jt, true, tv, 32, &sc, err, sizeof(err))) < 0)
            goto bad;
        r.to = tv;
        r.nto = n;
    }
    acc_t a = {json_array(), json_array()};
    char next[9000];
    eddy_err_t e = eddy__engine_query_range_keyed(eddy__mcp_engine(m), name, &r,
                                                  json_string_value(jc), limit, add_item, add_key,
                                                  &a, next, sizeof(next));
    eddy__mcp_scratch_free(&sc);
    if (e) {
        json_decref(a.items);
        json_decref(a.keys);
        if (e == EDDY_ERR_INVAL)
            return tool_err("invalid cursor: pass next_cursor from the previous scan_store of "
                            "the same store, or omit it to start over");
        return tool_err("store '%s': the scan failed: %s", name, eddy_err2str(e));
    }
    size_t cnt = json_array_size(a.items);
    json_t *out = json_pack("{s:s, s:o, s:I, s:o}", "store", name, "items", a.items, "count",
                            (json_int_t)cnt, "next_cursor",
                            next[0] ? json_string(next) : json_null());
    /* scale-out: with every other instance's entries */
    return tool_ok(version, eddy__mcp_gather(m, "scan_store", args, out, a.keys, NULL, limit));
bad:
    eddy__mcp_scratch_free(&sc);
    return tool_err("store '%s': %s", name, err);
}

/* get_windows (matches false) and get_matches (true): entries of one key
 * over a time range. */
static json_t *by_key_and_time(eddy_mcp_t *m, json_t *args, const char *version, bool matches) {
    const char *tool = matches ? "get_matches" : "get_windows";
    const char *name = json_string_value(json_object_get(args, "store"));
    eddy_store_info_t si;
    if (!name || eddy_engine_store_info(eddy__mcp_engine(m), name, &si))
        return no_store(m, name, matches ? "a match store (log)" : "a window or session store");
    if (is_log(&si) && !matches)
        return tool_err("store '%s' holds CEP matches: use get_matches", name);
    if (is_windowed(&si) && matches)
        return tool_err("store '%s' is a %s store: use get_windows", name, si.kind);
    if (!is_windowed(&si) && !is_log(&si))
        return tool_err("store '%s' is a kv store (one value per key): use get_value", name);
    int limit;
    if (get_limit(m, args, "limit", &limit))
        return tool_err("'limit' must be a positive integer (at most %d)",
                        eddy__mcp_opts(m)->max_limit);
    int64_t from = INT64_MIN / 4, to = INT64_MAX / 4;
    json_t *jf = json_object_get(args, "from"), *jt = json_object_get(args, "to");
    if (jf && !eddy__mcp_parse_time(jf, &from))
        return tool_err("'from' must be milliseconds since the epoch or an ISO-8601 time such "
                        "as 2026-11-21T10:32:00Z");
    if (jt && !eddy__mcp_parse_time(jt, &to))
        return tool_err("'to' must be milliseconds since the epoch or an ISO-8601 time such "
                        "as 2026-11-21T10:32:00Z");
    if (from > to)
        return tool_err("'from' is after 'to'");
    json_t *jc = json_object_get(args, "cursor");
    if (jc && !json_is_string(jc) && !json_is_null(jc))
        return tool_err("'cursor' must be the next_cursor string of a previous %s", tool);
    eddy_value_t k[32];
    scratch_t sc = {0};
    char err[1024];
    json_t *key = json_object_get(args, "key");
    int n = 0;
    if (key || eddy_schema_nfields(si.key_schema) > 0)
        n = eddy__mcp_parse_key(si.key_schema, key, false, k, 32, &sc, err, sizeof(err));
    if (n < 0) {
        eddy__mcp_scratch_free(&sc);
        return tool_err("store '%s': %s", name, err);
    }
    /* scale-out: a key of a task another instance runs goes there */
    eddy_engine_t *eng = eddy__mcp_engine(m);
    int task = eddy__engine_query_task(eng, name, k, n);
    bool cluster = task >= 0 && eddy__mcp_cluster(m);
    acc_t a = {json_array(), NULL};
    char next[9000];
    eddy_err_t e = EDDY_ERR_STATE;
    if (!cluster)
        e = eddy_engine_query_windows(eng, name, k, n, from, to, json_string_value(jc), limit,
                                      add_item, &a, next, sizeof(next));
    else if (eddy__engine_task_active(eng, task)) /* as in t_get */
        e = eddy__engine_query_windows_open(eng, name, k, n, from, to, json_string_value(jc),
                                            limit, true, add_item, &a, next, sizeof(next));
    json_t *kj = key_json(si.key_schema, k, n);
    if (cluster && e == EDDY_ERR_STATE) {
        json_t *nh = json_pack("{s:s, s:s, s:o, s:o, s:i, s:n}", "store", name, "kind", si.kind,
                               "key", kj, matches ? "matches" : "windows", a.items, "count", 0,
                               "next_cursor");
        key_call_t c = {m, name, &si, k, n, task};
        json_t *r = routed(&c, version, tool, args, nh, NULL);
        eddy__mcp_scratch_free(&sc);
        return r;
    }
    eddy__mcp_scratch_free(&sc);
    if (e) {
        json_decref(a.items);
        json_decref(kj);
        if (e == EDDY_ERR_INVAL)
            return tool_err("invalid cursor: pass next_cursor from the previous %s, or omit it",
                            tool);
        return tool_err("store '%s': the query failed: %s", name, eddy_err2str(e));
    }
    size_t cnt = json_array_size(a.items);
    return tool_ok(version, json_pack("{s:s, s:s, s:o, s:o, s:I, s:o}", "store", name, "kind",
                                      si.kind, "key", kj, matches ? "matches" : "windows",
                                      a.items, "count", (json_int_t)cnt, "next_cursor",
                                      next[0] ? json_string(next) : json_null()));
}

static json_t *t_windows(eddy_mcp_t *m, json_t *args, const char *version) {
    return by_key_and_time(m, args, version, false);
}

static json_t *t_matches(eddy_mcp_t *m, json_t *args, const char *version) {
    return by_key_and_time(m, args, version, true);
}

/* top_keys: a bounded scan keeping the n largest values of a field. */
typedef struct {
    int field;
    int n;
    int64_t from, to;
    int start_field;
    json_t *top;  /* the items, sorted descending */
    json_t *keys; /* their store keys (eddy__mcp_hex_key) */
    json_t *key;  /* the store key of the entry visited */
    double *vals;
    int ntop;
    uint64_t scanned;
} top_t;

static void top_key(const char *k, size_t kl, void *opaque) {
    top_t *t = opaque;
    json_decref(t->key);
    t->key = eddy__mcp_hex_key(k, kl);
}

static eddy_err_t top_visit(const eddy_record_t *rec, void *opaque) {
    top_t *t = opaque;
    t->scanned++;
    if (t->start_field >= 0) {
        int64_t s = rec->values[t->start_field].u.i;
        if (s < t->from || s > t->to)
            return EDDY_OK;
    }
    const eddy_value_t *v = &rec->values[t->field];
    double d;
    if (v->type == EDDY_TYPE_DOUBLE)
        d = v->u.d;
    else if (v->type == EDDY_TYPE_INT || v->type == EDDY_TYPE_TIMESTAMP)
        d = (double)v->u.i;
    else
        return EDDY_OK;
    if (isnan(d) || (t->ntop == t->n && d <= t->vals[t->ntop - 1]))
        return EDDY_OK;
    int pos = t->ntop < t->n ? t->ntop : t->n - 1;
    while (pos > 0 && t->vals[pos - 1] < d)
        pos--;
    if (t->ntop == t->n) {
        json_array_remove(t->top, (size_t)t->n - 1);
        json_array_remove(t->keys, (size_t)t->n - 1);
    } else {
        t->ntop++;
    }
    memmove(&t->vals[pos + 1], &t->vals[pos], sizeof(double) * (size_t)(t->ntop - 1 - pos));
    t->vals[pos] = d;
    json_array_insert_new(t->top, (size_t)pos, eddy__mcp_record_json(rec));
    json_array_insert(t->keys, (size_t)pos, t->key);
    return EDDY_OK;
}

static json_t *t_top(eddy_mcp_t *m, json_t *args, const char *version) {
    const char *name = json_string_value(json_object_get(args, "store"));
    eddy_store_info_t si;
    if (!name || eddy_engine_store_info(eddy__mcp_engine(m), name, &si))
        return no_store(m, name, "the store to rank");
    const char *field = json_string_value(json_object_get(args, "field"));
    int fi = field ? eddy_schema_field_index(si.value_schema, field) : -1;
    char vf[1024];
    fields_desc(si.value_schema, vf, sizeof(vf));
    if (fi < 0)
        return tool_err("'field' must name a numeric value field of '%s': %s", name, vf);
    eddy_type_t ft = eddy_schema_field_type(si.value_schema, fi);
    if (ft != EDDY_TYPE_INT && ft != EDDY_TYPE_DOUBLE && ft != EDDY_TYPE_TIMESTAMP)
        return tool_err("field '%s' is a %s; top_keys ranks numeric fields: %s", field,
                        eddy_type2str(ft), vf);
    json_t *jn = json_object_get(args, "n");
    int n = 10;
    if (jn && (!json_is_integer(jn) || json_integer_value(jn) < 1 || json_integer_value(jn) > 100))
        return tool_err("'n' must be an integer from 1 to 100");
    if (jn)
        n = (int)json_integer_value(jn);
    json_int_t max_scan = 100000;
    json_t *jm = json_object_get(args, "max_scan");
    if (jm && (!json_is_integer(jm) || json_integer_value(jm) < 1 ||
               json_integer_value(jm) > 10000000))
        return tool_err("'max_scan' must be an integer from 1 to 10000000");
    if (jm)
        max_scan = json_integer_value(jm);
    json_t *jf = json_object_get(args, "from"), *jt = json_object_get(args, "to");
    if ((jf || jt) && !is_windowed(&si))
        return tool_err("'from'/'to' select windows by start time; store '%s' is a kv store",
                        name);
    top_t t = {.field = fi, .n = n, .start_field = -1, .from = INT64_MIN, .to = INT64_MAX};
    if ((jf && !eddy__mcp_parse_time(jf, &t.from)) || (jt && !eddy__mcp_parse_time(jt, &t.to)))
        return tool_err("'from'/'to' must be milliseconds since the epoch or ISO-8601 times");
    t.top = json_array();
    t.keys = json_array();
    t.vals = calloc((size_t)n + 1, sizeof(double));
    if (jf || jt)
        t.start_field = eddy_schema_field_index(si.value_schema, "window_start");
    char cur[9000] = "";
    bool complete = false;
    eddy_err_t e = EDDY_OK;
    while (!e && t.scanned < (uint64_t)max_scan) {
        json_int_t left = max_scan - (json_int_t)t.scanned;
        e = eddy__engine_query_range_keyed(eddy__mcp_engine(m), name, NULL, cur,
                                           left > 4096 ? 4096 : (int)left, top_visit, top_key,
                                           &t, cur, sizeof(cur));
        if (!cur[0]) {
            complete = !e;
            break;
        }
    }
    free(t.vals);
    json_decref(t.key);
    if (e) {
        json_decref(t.top);
        json_decref(t.keys);
        return tool_err("store '%s': the scan failed: %s", name, eddy_err2str(e));
    }
    json_t *out = json_pack("{s:s, s:s, s:o, s:I, s:b}", "store", name, "field", field, "items",
                            t.top, "scanned", (json_int_t)t.scanned, "complete", complete);
    /* scale-out: merged with every other instance's best */
    return tool_ok(version, eddy__mcp_gather(m, "top_keys", args, out, t.keys, field, n));
}

/* Consumer lag of the Kafka partitions open here. */
static json_t *lag_json(eddy_engine_t *eng) {
    eddy_source_lag_t l[256];
    int n = eddy_engine_source_lag(eng, l, 256);
    if (n == 0)
        return json_pack("{s:o, s:s}", "records", json_null(), "note",
                         "consumer lag applies to Kafka sources; none is open here");
    json_t *parts = json_array();
    json_int_t total = 0;
    bool known = true;
    for (int i = 0; i < n && i < 256; i++) {
        if (l[i].lag < 0)
            known = false;
        else
            total += l[i].lag;
        json_array_append_new(
            parts, json_pack("{s:s, s:s, s:i, s:o, s:o, s:o, s:b}", "source", l[i].source,
                             "topic", l[i].topic, "partition", (int)l[i].partition, "position",
                             l[i].position >= 0 ? json_integer(l[i].position) : json_null(),
                             "end_offset",
                             l[i].end_offset >= 0 ? json_integer(l[i].end_offset) : json_null(),
                             "lag", l[i].lag >= 0 ? json_integer(l[i].lag) : json_null(),
                             "paused", l[i].paused != 0));
    }
    return json_pack("{s:o, s:o}", "records", known ? json_integer(total) : json_null(),
                     "partitions", parts);
}

json_t *eddy__mcp_metrics_json(eddy_mcp_t *m) {
    eddy_engine_t *eng = eddy__mcp_engine(m);
    eddy_stats_t st;
    eddy_engine_stats(eng, &st);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    json_t *lat = json_object();
    static const struct {
        const char *k;
        double p;
    } ps[] = {{"p50", 50}, {"p90", 90}, {"p99", 99}, {"p999", 99.9}};
    for (int i = 0; i < 4; i++) {
        int64_t ns = eddy_engine_latency_ns(eng, ps[i].p);
        json_object_set_new(lat, ps[i].k, ns < 0 ? json_null() : json_real((double)ns / 1e6));
    }
    eddy_store_stats_t ss[128];
    int ns = eddy_engine_store_stats(eng, ss, 128);
    json_t *stores = json_array();
    for (int i = 0; i < ns && i < 128; i++) {
        eddy_store_info_t si;
        if (eddy_engine_store_info(eng, ss[i].name, &si))
            continue; /* internal store */
        bool fresh = ss[i].newest_event_ms != INT64_MIN;
        json_array_append_new(
            stores,
            json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:I, s:f}", "name", ss[i].name, "kind",
                      si.kind, "estimate_keys", (json_int_t)ss[i].estimate_keys, "size_bytes",
                      (json_int_t)ss[i].size_bytes, "newest_event_ms",
                      fresh ? json_integer(ss[i].newest_event_ms) : json_null(), "freshness_ms",
                      fresh ? json_integer(now_ms - ss[i].newest_event_ms) : json_null(),
                      "restored_records", (json_int_t)ss[i].restored_records, "restore_seconds",
                      ss[i].restore_seconds));
    }
    int64_t wm[256];
    int nt = eddy_engine_task_watermarks(eng, wm, 256);
    json_t *tasks = json_array();
    for (int i = 0; i < nt && i < 256; i++)
        json_array_append_new(tasks, json_pack("{s:i, s:o}", "task", i, "watermark_ms",
                                                wm[i] == INT64_MIN || wm[i] == INT64_MAX
                                                    ? json_null()
                                                    : json_integer(wm[i])));
    bool wm_ok = st.watermark_ms != INT64_MIN && st.watermark_ms != INT64_MAX;
    return json_pack(
        "{s:b, s:s, s:I, s:I, s:f, s:o, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:I}",
        "running", st.running, "last_error", eddy_engine_last_error(eng), "events_in",
        (json_int_t)st.events_in, "events_out", (json_int_t)st.events_out, "events_per_second",
        eddy__mcp_events_per_second(m), "latency_ms", lat, "watermark_ms",
        wm_ok ? json_integer(st.watermark_ms) : json_null(), "max_event_ms",
        st.max_event_ms == INT64_MIN ? json_null() : json_integer(st.max_event_ms), "late",
        (json_int_t)st.late, "dead_lettered", (json_int_t)st.dead_lettered, "commits",
        (json_int_t)st.commits, "state_memory_bytes", (json_int_t)st.state_memory_bytes,
        "state_memory_budget_bytes", (json_int_t)st.state_memory_budget_bytes, "lag",
        lag_json(eng),
        "tasks", tasks, "stores", stores, "now_ms", (json_int_t)now_ms);
}

static json_t *t_metrics(eddy_mcp_t *m, json_t *args, const char *version) {
    json_t *local = eddy__mcp_metrics_json(m);
    if (json_is_true(json_object_get(args, "cluster")) &&
        !json_is_true(json_object_get(args, "forwarded")))
        local = eddy__mcp_cluster_metrics(m, local);
    return tool_ok(version, local);
}

/* ------------------------------------------------------------ the list */

typedef struct {
    const char *name, *title, *description, *input, *output;
    json_t *(*fn)(eddy_mcp_t *m, json_t *args, const char *version);
    const char *store_kinds; /* "kv", "windowed", "any": enum of store names */
} tool_t;

#define KEY_SCHEMA                                                                               \
    "{\"description\":\"The key: an object {field: value} with the store's key fields (see "      \
    "describe_topology), an array of values in key order, or a bare value for a one-field "      \
    "key.\",\"type\":[\"object\",\"array\",\"string\",\"integer\",\"number\",\"boolean\"]}"
#define TIME_SCHEMA(what)                                                                        \
    "{\"description\":\"" what " (milliseconds since the epoch, or ISO-8601 such as "            \
    "2026-11-21T10:32:00Z)\",\"type\":[\"integer\",\"string\"]}"
#define LIMIT_SCHEMA                                                                             \
    "{\"type\":\"integer\",\"minimum\":1,\"description\":\"Maximum entries to return (default " \
    "20, capped at the server's maximum).\"}"
#define CURSOR_SCHEMA                                                                            \
    "{\"type\":[\"string\",\"null\"],\"description\":\"next_cursor of the previous call, to "    \
    "continue.\"}"
#define ITEMS "{\"type\":\"array\",\"items\":{\"type\":\"object\"}}"

static const tool_t tools[] = {
    {"describe_topology", "Describe the topology",
     "The running topology: its sources (and their fields), operators in dataflow order, and "
     "queryable stores with their kind (kv: one value per key; window/session: windows per key "
     "over time), key fields, value fields and which tools answer them; plus the current "
     "event-time watermarks. Call this first.",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"application\":{\"type\":\"string\"},\"sources\":"
     "{\"type\":\"array\"},\"operators\":{\"type\":\"array\"},\"stores\":{\"type\":\"array\"},"
     "\"watermarks\":{\"type\":\"object\"},\"running\":{\"type\":\"boolean\"}},\"required\":["
     "\"application\",\"sources\",\"operators\",\"stores\",\"watermarks\"]}",
     t_describe, NULL},
    {"get_value", "Get the value of a key",
     "The current (last committed) value of one key in a kv store, such as an aggregate's "
     "table: found=false when the key has no value.",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\",\"description\":"
     "\"A kv store (see describe_topology).\"},\"key\":" KEY_SCHEMA
     "},\"required\":[\"store\",\"key\"]}",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"key\":{\"type\":"
     "\"object\"},\"found\":{\"type\":\"boolean\"},\"value\":{\"type\":[\"object\",\"null\"]}},"
     "\"required\":[\"store\",\"key\",\"found\",\"value\"]}",
     t_get, "kv"},
    {"scan_store", "Scan a store",
     "Entries of a store in key order, at most `limit` per call, with a cursor to continue. For "
     "kv stores, restrict to keys starting with `prefix` (leading key fields; with "
     "string_prefix the last one matches as a string prefix) or to the key range [from, to). "
     "Window and session stores are scanned whole (use get_windows for one key).",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"prefix\":" KEY_SCHEMA
     ",\"string_prefix\":{\"type\":\"boolean\",\"description\":\"Match the last prefix value as "
     "a string prefix (\\\"ab\\\" matches \\\"abc\\\").\"},\"from\":" KEY_SCHEMA ",\"to\":" KEY_SCHEMA
     ",\"limit\":" LIMIT_SCHEMA ",\"cursor\":" CURSOR_SCHEMA "},\"required\":[\"store\"]}",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"items\":" ITEMS
     ",\"count\":{\"type\":\"integer\"},\"next_cursor\":{\"type\":[\"string\",\"null\"]}},"
     "\"required\":[\"store\",\"items\",\"count\",\"next_cursor\"]}",
     t_scan, "any"},
    {"get_windows", "Get the windows of a key",
     "The windows of one key in a window or session store, in time order: windows whose start "
     "lies in [from, to], sessions that overlap [from, to]. Each has window_start and "
     "window_end (exclusive) in milliseconds since the epoch and the aggregate fields.",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"key\":" KEY_SCHEMA
     ",\"from\":" TIME_SCHEMA("Earliest time") ",\"to\":" TIME_SCHEMA("Latest time")
     ",\"limit\":" LIMIT_SCHEMA ",\"cursor\":" CURSOR_SCHEMA "},\"required\":[\"store\"]}",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"kind\":{\"type\":"
     "\"string\"},\"key\":{\"type\":\"object\"},\"windows\":" ITEMS ",\"count\":{\"type\":"
     "\"integer\"},\"next_cursor\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"store\","
     "\"key\",\"windows\",\"count\",\"next_cursor\"]}",
     t_windows, "windowed"},
    {"get_matches", "Get the CEP matches of a key",
     "The matches a cep step found for one key (its `by` fields) whose last event lies in "
     "[from, to], in time order: match_start, match_end (milliseconds since the epoch) and the "
     "step's output fields.",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"key\":" KEY_SCHEMA
     ",\"from\":" TIME_SCHEMA("Earliest match end") ",\"to\":" TIME_SCHEMA("Latest match end")
     ",\"limit\":" LIMIT_SCHEMA ",\"cursor\":" CURSOR_SCHEMA "},\"required\":[\"store\"]}",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"kind\":{\"type\":"
     "\"string\"},\"key\":{\"type\":\"object\"},\"matches\":" ITEMS ",\"count\":{\"type\":"
     "\"integer\"},\"next_cursor\":{\"type\":[\"string\",\"null\"]}},\"required\":[\"store\","
     "\"key\",\"matches\",\"count\",\"next_cursor\"]}",
     t_matches, "log"},
    {"top_keys", "Rank keys by a field",
     "The entries with the largest values of a numeric field (e.g. the hottest keys by count), "
     "from a bounded scan of up to max_scan entries (complete=false when the store is larger). "
     "For window stores, from/to restrict to windows starting in that range.",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"field\":{\"type\":"
     "\"string\",\"description\":\"A numeric value field.\"},\"n\":{\"type\":\"integer\","
     "\"minimum\":1,\"maximum\":100,\"description\":\"How many (default 10).\"},\"from\":"
     TIME_SCHEMA("Windows starting at or after") ",\"to\":" TIME_SCHEMA("Windows starting at or before")
     ",\"max_scan\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"Entries to scan at "
     "most (default 100000).\"}},\"required\":[\"store\",\"field\"]}",
     "{\"type\":\"object\",\"properties\":{\"store\":{\"type\":\"string\"},\"field\":{\"type\":"
     "\"string\"},\"items\":" ITEMS ",\"scanned\":{\"type\":\"integer\"},\"complete\":{\"type\":"
     "\"boolean\"}},\"required\":[\"store\",\"field\",\"items\",\"scanned\",\"complete\"]}",
     t_top, "any"},
    {"get_metrics", "Engine metrics",
     "Throughput (events/s), end-to-end latency percentiles (ms), watermarks per task, late and "
     "dead-lettered counts, commits, state memory, and per store: estimated keys, size and "
     "freshness (now minus the newest event time behind its committed state). With cluster: "
     "true, also every other instance's metrics (asked at the same time) and the totals.",
     "{\"type\":\"object\",\"properties\":{\"cluster\":{\"type\":\"boolean\","
     "\"description\":\"Also ask every other instance of the application (default false).\"}},"
     "\"additionalProperties\":false}",
     "{\"type\":\"object\",\"properties\":{\"running\":{\"type\":\"boolean\"},\"events_in\":{"
     "\"type\":\"integer\"},\"events_out\":{\"type\":\"integer\"},\"events_per_second\":{\"type\":"
     "\"number\"},\"latency_ms\":{\"type\":\"object\"},\"watermark_ms\":{\"type\":[\"integer\","
     "\"null\"]},\"late\":{\"type\":\"integer\"},\"dead_lettered\":{\"type\":\"integer\"},"
     "\"stores\":{\"type\":\"array\"},\"tasks\":{\"type\":\"array\"}},\"required\":[\"running\","
     "\"events_in\",\"events_per_second\",\"latency_ms\",\"late\",\"dead_lettered\",\"stores\"]}",
     t_metrics, NULL},
};
#define NTOOLS ((int)(sizeof(tools) / sizeof(tools[0])))

json_t *eddy__mcp_tools_list(eddy_mcp_t *m, const char *version) {
    json_t *list = json_array();
    bool old = !strcmp(version, "2025-03-26");
    eddy_mcp_store_t st[64];
    int ns = eddy__mcp_stores(m, st, 64);
    for (int i = 0; i < NTOOLS; i++) {
        const tool_t *t = &tools[i];
        json_error_t je;
        json_t *in = json_loads(t->input, 0, &je);
        if (!in) {
            fprintf(stderr, "mcp: tool %s: bad inputSchema: %s\n", t->name, je.text);
            continue;
        }
        if (t->store_kinds) {
            json_t *names = json_array();
            for (int k = 0; k < ns; k++) {
                bool w = is_windowed(&st[k].info), lg = is_log(&st[k].info);
                if (!strcmp(t->store_kinds, "any") || (w && !strcmp(t->store_kinds, "windowed")) ||
                    (lg && !strcmp(t->store_kinds, "log")) ||
                    (!w && !lg && !strcmp(t->store_kinds, "kv")))
                    json_array_append_new(names, json_string(st[k].name));
            }
            json_t *sp = json_object_get(json_object_get(in, "properties"), "store");
            if (json_array_size(names))
                json_object_set_new(sp, "enum", names);
            else
                json_decref(names);
        }
        json_t *o = json_pack("{s:s, s:s, s:o, s:{s:b, s:b, s:b}}", "name", t->name,
                              "description", t->description, "inputSchema", in, "annotations",
                              "readOnlyHint", 1, "destructiveHint", 0, "openWorldHint", 0);
        json_object_set_new(json_object_get(o, "annotations"), "title", json_string(t->title));
        if (!old) {
            json_object_set_new(o, "title", json_string(t->title));
            json_t *out = json_loads(t->output, 0, &je);
            if (out)
                json_object_set_new(o, "outputSchema", out);
            else
                fprintf(stderr, "mcp: tool %s: bad outputSchema: %s\n", t->name, je.text);
        }
        json_array_append_new(list, o);
    }
    return list;
}

json_t *eddy__mcp_tool_call(eddy_mcp_t *m, const char *version, const char *name, json_t *args,
                            int *code, char *msg, size_t msg_size) {
    json_t *empty = NULL;
    if (!args)
        args = empty = json_object();
    for (int i = 0; i < NTOOLS; i++)
        if (!strcmp(tools[i].name, name)) {
            json_t *r = tools[i].fn(m, args, version);
            json_decref(empty);
            if (!r) {
                *code = RPC_INTERNAL_ERROR;
                snprintf(msg, msg_size, "tool '%s' could not build its answer", name);
            }
            return r;
        }
    json_decref(empty);
    *code = RPC_INVALID_PARAMS;
    size_t k = (size_t)snprintf(msg, msg_size, "unknown tool '%s'; tools:", name);
    for (int i = 0; i < NTOOLS && k < msg_size; i++)
        k += (size_t)snprintf(msg + k, msg_size - k, " %s", tools[i].name);
    return NULL;
}
