/*
 * Whole-store tools over a cluster (docs/scaleout.md, "Scans and top_keys
 * across instances"): scan_store and top_keys answer from the tasks open
 * on the instance asked, so in a cluster the instance asks every other
 * instance that runs a task (the <application>-instances view) for its
 * answer to the same call and merges:
 *
 *  - scan_store: every instance scans from the same cursor (the hex of a
 *    store key, the same on every instance) and gives up to `limit`
 *    entries with their store keys; the merge orders them by key, drops a
 *    key given twice (a task moving between two instances), keeps the
 *    first `limit`, and the next cursor is the last one's key. The `limit`
 *    first entries of the union are among the `limit` first of each part,
 *    so pages neither skip nor repeat an entry.
 *  - top_keys: every instance gives its n best; the merge orders them by
 *    the field (descending), drops repeated keys and keeps n.
 *
 * Tasks that no answer covered (an instance did not answer, no instance
 * runs them, forwarding is off) make the answer `partial: true`, with the
 * instances and endpoints whose tasks are missing.
 *
 * The other instances are asked at the same time (a thread each), so a
 * page costs the slowest answer, not their sum, and an unreachable
 * instance costs its connect timeout once.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/instances.h"
#include "mcp_int.h"

json_t *eddy__mcp_hex_key(const char *k, size_t kl) {
    static const char hx[] = "0123456789abcdef";
    char stackb[512];
    char *b = kl * 2 < sizeof(stackb) ? stackb : malloc(kl * 2 + 1);
    for (size_t i = 0; i < kl; i++) {
        b[2 * i] = hx[(unsigned char)k[i] >> 4];
        b[2 * i + 1] = hx[(unsigned char)k[i] & 15];
    }
    json_t *j = json_stringn(b, kl * 2);
    if (b != stackb)
        free(b);
    return j;
}

/* One entry of the merge. */
typedef struct {
    const char *key;
    json_t *item;
    double rank;
} entry_t;

static int by_key(const void *a, const void *b) {
    return strcmp(((const entry_t *)a)->key, ((const entry_t *)b)->key);
}

static int by_rank(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    if (x->rank != y->rank)
        return x->rank < y->rank ? 1 : -1;
    return strcmp(x->key, y->key); /* ties: a stable order whoever answers */
}

/* Every entry of answer (items with item_keys) into the pool. */
static void pool_add(json_t *pool, json_t *answer) {
    json_t *items = json_object_get(answer, "items"), *keys = json_object_get(answer, "item_keys");
    for (size_t i = 0; i < json_array_size(items) && i < json_array_size(keys); i++)
        json_array_append_new(
            pool, json_pack("[O, O]", json_array_get(keys, i), json_array_get(items, i)));
}

static void tasks_add(uint8_t *covered, int nt, json_t *tasks) {
    size_t i;
    json_t *t;
    json_array_foreach(tasks, i, t) {
        json_int_t v = json_integer_value(t);
        if (json_is_integer(t) && v >= 0 && v < nt)
            covered[v] = 1;
    }
}

static json_t *task_list(const uint8_t *set, int nt, uint8_t want) {
    json_t *a = json_array();
    for (int t = 0; t < nt; t++)
        if (set[t] == want)
            json_array_append_new(a, json_integer(t));
    return a;
}

/* The other instances that own a task not in covered: [{instance,
 * endpoint, tasks}], one per instance; tasks with no owner under "". */
static json_t *owners(eddy_mcp_t *m, const uint8_t *covered, int nt) {
    json_t *by = json_object();
    for (int t = 0; t < nt; t++) {
        if (covered[t])
            continue;
        char id[40] = "", ep[256] = "";
        if (!eddy__instances_owner(eddy__mcp_cluster(m), t, id, sizeof(id), ep, sizeof(ep)))
            id[0] = ep[0] = 0;
        json_t *o = json_object_get(by, id);
        if (!o) {
            o = json_pack("{s:o, s:o, s:[]}", "instance", id[0] ? json_string(id) : json_null(),
                          "endpoint", ep[0] ? json_string(ep) : json_null(), "tasks");
            json_object_set_new(by, id, o);
        }
        json_array_append_new(json_object_get(o, "tasks"), json_integer(t));
    }
    return by;
}

/* The merged items of pool (arrays [key, item]), in the tool's order,
 * without repeated keys, at most limit; *more when entries were left. */
static json_t *merge(json_t *pool, const char *rank_field, int limit, bool *more,
                     const char **last_key) {
    size_t n = json_array_size(pool);
    entry_t *e = calloc(n ? n : 1, sizeof(*e));
    for (size_t i = 0; i < n; i++) {
        json_t *p = json_array_get(pool, i);
        e[i].key = json_string_value(json_array_get(p, 0)) ?: "";
        e[i].item = json_array_get(p, 1);
        e[i].rank = rank_field ? json_number_value(json_object_get(e[i].item, rank_field)) : 0;
    }
    qsort(e, n, sizeof(*e), rank_field ? by_rank : by_key);
    json_t *items = json_array();
    *more = false;
    *last_key = NULL;
    for (size_t i = 0; i < n; i++) {
        bool seen = false; /* repeated keys: adjacent by key; by rank, look back */
        for (size_t j = i; j-- > 0 && !seen && (rank_field || j + 1 == i);)
            seen = !strcmp(e[j].key, e[i].key);
        if (seen)
            continue;
        if ((int)json_array_size(items) == limit) {
            *more = true;
            break;
        }
        json_array_append(items, e[i].item);
        *last_key = e[i].key;
    }
    free(e);
    return items;
}

/* One other instance's answer to the fan-out's call. */
typedef struct {
    const char *id, *ep, *tool;
    json_t *args; /* the thread's own copy */
    json_t *r;
    char why[512];
    pthread_t tid;
    bool threaded;
} ask_t;

static void *ask_main(void *arg) {
    ask_t *a = arg;
    a->r = eddy__mcp_call_owner(a->ep, a->tool, a->args, a->why, sizeof(a->why));
    return NULL;
}

/* Ask them all at the same time; each k->r is the answer (NULL: k->why).
 * The args are consumed. */
static void ask_all(ask_t *asks, size_t n) {
    for (size_t i = 0; i < n; i++) {
        asks[i].threaded = pthread_create(&asks[i].tid, NULL, ask_main, &asks[i]) == 0;
        if (!asks[i].threaded)
            ask_main(&asks[i]);
    }
    for (size_t i = 0; i < n; i++) {
        if (asks[i].threaded)
            pthread_join(asks[i].tid, NULL);
        json_decref(asks[i].args);
        asks[i].args = NULL;
    }
}

/* The text of a failed answer (r NULL: it did not answer). */
static json_t *ask_failure(const ask_t *k) {
    if (!k->r)
        return json_sprintf("it did not answer: %s", k->why);
    return json_sprintf(
        "it answered with an error: %.300s",
        json_string_value(json_object_get(json_array_get(json_object_get(k->r, "content"), 0),
                                          "text"))
            ?: "?");
}

json_t *eddy__mcp_gather(eddy_mcp_t *m, const char *tool, json_t *args, json_t *local, json_t *keys,
                         const char *rank_field, int limit) {
    eddy_engine_t *eng = eddy__mcp_engine(m);
    int nt = eddy__engine_ntasks(eng);
    uint8_t *covered = calloc((size_t)nt + 1, 1);
    for (int t = 0; t < nt; t++)
        covered[t] = eddy__engine_task_active(eng, t);
    if (json_is_true(json_object_get(args, "with_keys"))) { /* a fan-out's call */
        json_object_set_new(local, "item_keys", keys);
        json_object_set_new(local, "tasks", task_list(covered, nt, 1));
        free(covered);
        return local;
    }
    if (!eddy__mcp_cluster(m)) {
        json_decref(keys);
        free(covered);
        return local;
    }
    json_t *here = task_list(covered, nt, 1);
    json_object_set_new(local, "item_keys", keys);
    json_t *pool = json_array(), *answered = json_array(), *failed = json_object();
    pool_add(pool, local);
    json_object_del(local, "item_keys");
    bool more = json_is_string(json_object_get(local, "next_cursor"));
    bool complete = json_is_true(json_object_get(local, "complete"));
    json_int_t scanned = json_integer_value(json_object_get(local, "scanned"));
    bool ask = eddy__mcp_forwarding(m) && !json_is_true(json_object_get(args, "forwarded"));
    json_t *others = owners(m, covered, nt);
    const char *id;
    json_t *o;
    ask_t *asks = calloc(json_object_size(others) + 1, sizeof(ask_t));
    size_t nask = 0;
    json_object_foreach(others, id, o) {
        const char *ep = json_string_value(json_object_get(o, "endpoint"));
        if (!ask || !id[0] || !ep)
            continue;
        ask_t *k = &asks[nask++];
        *k = (ask_t){.id = id, .ep = ep, .tool = tool, .args = json_deep_copy(args)};
        json_object_set_new(k->args, "with_keys", json_true());
    }
    ask_all(asks, nask);
    for (size_t i = 0; i < nask; i++) {
        ask_t *k = &asks[i];
        id = k->id;
        const char *ep = k->ep;
        json_t *r = k->r;
        json_t *sc = json_object_get(r, "structuredContent");
        if (!r || json_is_true(json_object_get(r, "isError")) || !json_is_object(sc)) {
            json_object_set_new(failed, id, ask_failure(k));
            json_decref(r);
            continue;
        }
        pool_add(pool, sc);
        tasks_add(covered, nt, json_object_get(sc, "tasks"));
        more = more || json_is_string(json_object_get(sc, "next_cursor"));
        complete = complete && json_is_true(json_object_get(sc, "complete"));
        scanned += json_integer_value(json_object_get(sc, "scanned"));
        json_array_append_new(answered, json_pack("{s:s, s:s, s:O}", "instance", id, "endpoint", ep,
                                                  "tasks", json_object_get(sc, "tasks")));
        json_decref(r);
    }
    free(asks);
    json_decref(others);
    bool left;
    const char *last;
    json_t *items = merge(pool, rank_field, limit, &left, &last);
    json_object_set_new(local, "count", json_integer((json_int_t)json_array_size(items)));
    if (rank_field) {
        json_object_set_new(local, "scanned", json_integer(scanned));
    } else {
        more = more || left;
        json_object_set_new(local, "next_cursor", more && last ? json_string(last) : json_null());
    }
    json_object_set_new(local, "items", items);
    json_decref(pool);
    /* what is not included, and why */
    json_t *missing = json_array();
    char note[2048] = "";
    size_t nl = 0;
    others = owners(m, covered, nt);
    json_object_foreach(others, id, o) {
        const char *why = json_string_value(json_object_get(failed, id));
        if (!id[0])
            why = "no instance says it runs these tasks: the consumer group is moving them; "
                  "retry in a few seconds";
        else if (!why && !json_object_get(o, "endpoint"))
            why = "it advertises no MCP endpoint";
        else if (!why)
            why = ask ? "it answered without these tasks (they are moving); retry in a few "
                        "seconds"
                      : "forwarding is off (mcp-serve --no-forward, or a forwarded call): ask "
                        "its endpoint";
        json_object_set_new(o, "reason", json_string(why));
        json_array_append(missing, o);
        if (nl < sizeof(note))
            nl += (size_t)snprintf(note + nl, sizeof(note) - nl, "%s%s (at %s): %s", nl ? "; " : "",
                                   id[0] ? id : "tasks without an owner",
                                   json_string_value(json_object_get(o, "endpoint")) ?: "-", why);
    }
    json_decref(others);
    bool partial = json_array_size(missing) > 0;
    if (rank_field)
        json_object_set_new(local, "complete", json_boolean(complete && !partial));
    json_object_set_new(local, "partial", json_boolean(partial));
    json_object_set_new(local, "tasks_included", task_list(covered, nt, 1));
    json_object_set_new(local, "answered_by", json_pack("[{s:b, s:o}]", "self", 1, "tasks", here));
    json_array_extend(json_object_get(local, "answered_by"), answered);
    json_decref(answered);
    json_decref(failed);
    if (partial) {
        json_object_set_new(local, "missing", missing);
        json_object_set_new(local, "note",
                            json_sprintf("partial answer: the tasks of these instances are not "
                                         "included: %s",
                                         note));
    } else {
        json_decref(missing);
    }
    free(covered);
    return local;
}

json_t *eddy__mcp_cluster_metrics(eddy_mcp_t *m, json_t *local) {
    static const char *sums[] = {"events_in", "events_out", "late", "dead_lettered",
                                 "state_memory_bytes"};
    enum { NSUMS = sizeof(sums) / sizeof(sums[0]) };
    json_t *view = NULL;
    char *txt = eddy__mcp_cluster(m) ? eddy__instances_json(eddy__mcp_cluster(m)) : NULL;
    if (txt)
        view = json_loads(txt, 0, NULL);
    bool unreadable = txt && !view;
    free(txt);
    json_t *list = json_array();
    json_t *self = json_deep_copy(local);
    json_object_set_new(self, "self", json_true());
    json_array_append_new(list, json_pack("{s:b, s:o}", "self", 1, "metrics", self));
    size_t nv = json_array_size(view), nask = 0;
    ask_t *asks = calloc(nv + 1, sizeof(ask_t));
    for (size_t i = 0; i < nv; i++) {
        json_t *v = json_array_get(view, i);
        const char *ep = json_string_value(json_object_get(v, "endpoint"));
        if (json_is_true(json_object_get(v, "self")) || !ep || !ep[0])
            continue;
        if (!json_array_size(json_object_get(v, "tasks"))) {
            /* a stopped or dead instance's record stays in the topic:
             * one that runs no task is listed, not asked */
            json_array_append_new(
                list, json_pack("{s:s?, s:s, s:s}", "instance",
                                json_string_value(json_object_get(v, "instance")), "endpoint", ep,
                                "note", "runs no task (idle, stopped or gone): not asked"));
            continue;
        }
        asks[nask++] = (ask_t){.id = json_string_value(json_object_get(v, "instance")) ?: "?",
                               .ep = ep, .tool = "get_metrics", .args = json_object()};
    }
    if (eddy__mcp_forwarding(m))
        ask_all(asks, nask);
    json_int_t total[NSUMS] = {0};
    double eps = 0;
    int answered = 1, failed = unreadable; /* a view that cannot be read: partial */
    for (size_t i = 0; i < nask; i++) {
        ask_t *k = &asks[i];
        json_t *sc = json_object_get(k->r, "structuredContent");
        json_t *e = json_pack("{s:s, s:s}", "instance", k->id, "endpoint", k->ep);
        if (!eddy__mcp_forwarding(m)) {
            json_object_set_new(e, "error", json_string("forwarding is off: ask its endpoint"));
            failed++;
        } else if (!k->r || json_is_true(json_object_get(k->r, "isError")) ||
                   !json_is_object(sc)) {
            json_object_set_new(e, "error", ask_failure(k));
            failed++;
        } else {
            json_object_set(e, "metrics", sc);
            answered++;
        }
        json_decref(k->args);
        json_decref(k->r);
        json_array_append_new(list, e);
    }
    free(asks);
    json_decref(view);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *mt = json_object_get(json_array_get(list, i), "metrics");
        for (int s = 0; mt && s < NSUMS; s++)
            total[s] += json_integer_value(json_object_get(mt, sums[s]));
        if (mt)
            eps += json_number_value(json_object_get(mt, "events_per_second"));
    }
    json_t *tot = json_object();
    for (int s = 0; s < NSUMS; s++)
        json_object_set_new(tot, sums[s], json_integer(total[s]));
    json_object_set_new(tot, "events_per_second", json_real(eps));
    json_object_set_new(local, "cluster",
                        json_pack("{s:o, s:o, s:i, s:i, s:b}", "instances", list, "totals", tot,
                                  "answered", answered, "failed", failed, "partial", failed > 0));
    return local;
}
