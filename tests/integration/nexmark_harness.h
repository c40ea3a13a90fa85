/*
 * What the Nexmark query tests share (test_nexmark_windows.c,
 * test_nexmark_joins.c, test_nexmark_dedup_q3.c): run a bench/queries/<q>.yaml on a small input as
 * its file comment says (@EVENTS@ = 100000, @PARTITIONS@ = 2, the generator
 * at 500 events/s of event time with 10% of events delayed by up to 3 s, a
 * callback sink collecting chosen fields as integer tuples, strings by
 * 64-bit hash) and compare multisets of tuples with a brute force.
 */
#ifndef EDDY_TEST_NEXMARK_HARNESS_H
#define EDDY_TEST_NEXMARK_HARNESS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "connectors/nexmark_gen.h"
#include "eddy.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NH static __attribute__((unused))

/* an includer may set its own before including */
#ifndef EVENTS
#define EVENTS 100000
#endif
#ifndef PARTITIONS
#define PARTITIONS 2
#endif
#ifndef EVENT_RATE
#define EVENT_RATE 500
#endif
#define MAXF 8

/* ---------------------------------------------------------- tuples */

typedef struct {
    int64_t v[MAXF];
} tup_t;

typedef struct {
    tup_t *t;
    size_t n, cap;
} tups_t;

NH void tups_push(tups_t *a, const tup_t *t) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 1024;
        a->t = realloc(a->t, a->cap * sizeof(*a->t));
    }
    a->t[a->n++] = *t;
}

NH int cmp_tup(const void *x, const void *y) {
    const tup_t *a = x, *b = y;
    for (int i = 0; i < MAXF; i++)
        if (a->v[i] != b->v[i])
            return a->v[i] < b->v[i] ? -1 : 1;
    return 0;
}

NH int64_t hash_str(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return (int64_t)(h >> 1);
}

NH void print_tup(const char *tag, const tup_t *t, int nf) {
    fprintf(stderr, "  %s (", tag);
    for (int i = 0; i < nf; i++)
        fprintf(stderr, "%s%" PRId64, i ? ", " : "", t->v[i]);
    fprintf(stderr, ")\n");
}

/* got and want must be the same multiset. */
NH void expect_tups(tups_t *got, tups_t *want, int nf, const char *what) {
    qsort(got->t, got->n, sizeof(tup_t), cmp_tup);
    qsort(want->t, want->n, sizeof(tup_t), cmp_tup);
    bool same = got->n == want->n;
    for (size_t i = 0; same && i < got->n; i++)
        same = !cmp_tup(&got->t[i], &want->t[i]);
    if (same)
        return;
    fprintf(stderr, "%s: expected %zu rows, got %zu; missing (-) and unexpected (+):\n", what,
            want->n, got->n);
    size_t i = 0, j = 0;
    int shown = 0;
    while ((i < want->n || j < got->n) && shown < 40) {
        int c = i == want->n ? 1 : j == got->n ? -1 : cmp_tup(&want->t[i], &got->t[j]);
        if (c < 0) {
            print_tup("-", &want->t[i++], nf);
            shown++;
        } else if (c > 0) {
            print_tup("+", &got->t[j++], nf);
            shown++;
        } else {
            i++;
            j++;
        }
    }
    fail_msg("%s: outputs differ (see above)", what);
}

/* ---------------------------------------------------- the callback sink */

typedef struct {
    pthread_mutex_t lock;
    const char *const *fields; /* what to keep, in order */
    int nf;
    tups_t rows;
    char err[256];
} collect_t;

NH eddy_err_t collect_cb(const eddy_record_t *rec, void *opaque) {
    collect_t *c = opaque;
    tup_t t;
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < c->nf; i++) {
        int idx = eddy_schema_field_index(rec->schema, c->fields[i]);
        if (idx < 0) {
            pthread_mutex_lock(&c->lock);
            snprintf(c->err, sizeof(c->err), "output has no field '%s'", c->fields[i]);
            pthread_mutex_unlock(&c->lock);
            return EDDY_ERR_NOENT;
        }
        const eddy_value_t *v = &rec->values[idx];
        switch ((eddy_type_t)v->type) {
        case EDDY_TYPE_STRING:
        case EDDY_TYPE_BYTES:
            t.v[i] = hash_str(v->u.s, v->len);
            break;
        case EDDY_TYPE_NULL:
            t.v[i] = INT64_MIN;
            break;
        default:
            t.v[i] = v->u.i;
        }
    }
    pthread_mutex_lock(&c->lock);
    tups_push(&c->rows, &t);
    pthread_mutex_unlock(&c->lock);
    return EDDY_OK;
}

NH eddy_err_t count_cb(const eddy_record_t *rec, void *opaque) {
    (void)rec;
    __atomic_fetch_add((int *)opaque, 1, __ATOMIC_RELAXED);
    return EDDY_OK;
}

/* ----------------------------------------------------- the topologies */

NH const char *source_dir(char *buf, size_t n) {
    const char *e = getenv("EDDY_SOURCE_DIR");
    if (e && *e) {
        snprintf(buf, n, "%s", e);
        return buf;
    }
    /* CMake compiles with the absolute path of this file */
    snprintf(buf, n, "%s", __FILE__);
    char *p = strstr(buf, "/tests/integration/");
    if (p)
        *p = 0;
    else
        snprintf(buf, n, ".");
    return buf;
}

NH char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    p[n] = 0;
    fclose(f);
    return p;
}

/* Replace the first `from` in *s by `to`; the bench file must hold it. */
NH void replace(char **s, const char *from, const char *to, const char *file) {
    char *at = strstr(*s, from);
    if (!at)
        fail_msg("%s: expected to find \"%s\"", file, from);
    size_t pre = (size_t)(at - *s), fl = strlen(from), tl = strlen(to), rest = strlen(at + fl);
    char *r = malloc(pre + tl + rest + 1);
    memcpy(r, *s, pre);
    memcpy(r + pre, to, tl);
    memcpy(r + pre + tl, at + fl, rest + 1);
    free(*s);
    *s = r;
}

typedef struct {
    const char *from, *to;
} edit_t;

/* Run bench/queries/<q>.yaml as the file comment says; collect `fields`
 * of each output record. `edits` change the pipelines (e.g. keep more
 * fields). */
NH void run_query(const char *q, const edit_t *edits, int nedits, collect_t *out) {
    char src[1024], path[1200], dir[] = "/tmp/eddy_test_nxw_XXXXXX";
    snprintf(path, sizeof(path), "%s/bench/queries/%s.yaml", source_dir(src, sizeof(src)), q);
    assert_non_null(mkdtemp(dir));
    char *y = slurp(path);
    char buf[512];
    snprintf(buf, sizeof(buf), "%d", EVENTS);
    replace(&y, "@EVENTS@", buf, path);
    snprintf(buf, sizeof(buf), "%d", PARTITIONS);
    replace(&y, "@PARTITIONS@", buf, path);
    snprintf(buf, sizeof(buf),
             "partitions: %d\n"
             "    event_rate: %d\n"
             "    out_of_order: {fraction: 0.1, max_delay: 3s}\n",
             PARTITIONS, EVENT_RATE);
    char part[64];
    snprintf(part, sizeof(part), "partitions: %d\n", PARTITIONS);
    replace(&y, part, buf, path);
    if (!strstr(y, "    watermark: {max_out_of_orderness: 4s}\n"))
        fail_msg("%s: the tests assume the reference's 4 s watermark delay", path);
    snprintf(buf, sizeof(buf), "\nsettings: {threads: 2, late: late, state.dir: '%s'}\nsources:",
             dir);
    replace(&y, "\nsources:", buf, path);
    for (int i = 0; i < nedits; i++)
        replace(&y, edits[i].from, edits[i].to, path);
    char *sinks = strstr(y, "\nsinks:");
    if (!sinks)
        fail_msg("%s: no sinks section", path);
    sinks[1] = 0; /* the callback sinks replace the blackhole */

    char err[1024];
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), path, err, sizeof(err));
    if (!t)
        fail_msg("%s: %s\n%s", path, err, y);
    int late = 0;
    eddy_topology_add_callback_sink(t, "out", collect_cb, out);
    eddy_topology_add_callback_sink(t, "late", count_cb, &late);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s: %s\n%s", path, err, y);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    eddy_err_t rc = eddy_engine_poll(e, 300000);
    if (rc != EDDY_OK)
        fail_msg("%s: run failed: %s: %s %s", path, eddy_err2str(rc), eddy_engine_last_error(e),
                 out->err);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.events_in, EVENTS);
    /* the premise: nothing is late in any window step */
    assert_int_equal(st.late, 0);
    assert_int_equal(late, 0);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    free(y);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}


NH int64_t floor_to(int64_t t, int64_t w) {
    int64_t q = t / w;
    if (t % w != 0 && t < 0)
        q--;
    return q * w;
}

/* q5: rows (auction, num, start, end) of the hopping windows' winners. */
NH void project(tups_t *rows, int nf) {
    for (size_t i = 0; i < rows->n; i++)
        for (int f = nf; f < MAXF; f++)
            rows->t[i].v[f] = 0;
}

NH void collect_init(collect_t *c, const char *const *fields, int nf) {
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->fields = fields;
    c->nf = nf;
}

NH void collect_free(collect_t *c) {
    free(c->rows.t);
    pthread_mutex_destroy(&c->lock);
}


/* The generator as run_query() configures the source (seed 0). */
NH eddy_nx_gen_t *test_generator(void) {
    eddy_nx_conf_t c;
    eddy__nx_conf_default(&c);
    c.seed = 0;
    c.rate_per_sec = EVENT_RATE;
    c.ooo_fraction = 0.1;
    c.ooo_max_delay_ms = 3000;
    eddy_nx_gen_t *g = eddy__nx_gen_new(&c);
    assert_non_null(g);
    return g;
}

#endif
