/*
 * Test harness for window steps, driven through the public API only: a
 * host source fed with eddy_engine_push(), callback sinks for the results
 * and for the late records (settings.late), eddy_engine_stats() for the
 * late count. Outputs are compared as multisets of JSON lines (plus
 * " @<event time>" where the event time is specified).
 *
 * Watermarks are steered exactly: one partition, one thread, batch.size 1
 * and max_out_of_orderness 0 make the operator see, for every record, the
 * watermark W = (largest event time pushed before it) - 0. To have W = x
 * when a record arrives, push a record (of another key) at time x first.
 *
 * Shared by test_window.c, test_window_sliding.c and test_table.c (which
 * sets its own schema); a state.dir can outlive a run for restart tests.
 */
#ifndef EDDY_TEST_WINDOW_HARNESS_H
#define EDDY_TEST_WINDOW_HARNESS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WH static __attribute__((unused))

/* ------------------------------------------------------------ sinks */

typedef struct {
    pthread_mutex_t lock;
    size_t n, cap;
    char **lines; /* JSON of the record */
    int64_t *ts;  /* its event time */
} sink_t;

WH void sink_init(sink_t *s) {
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
}

WH void sink_free(sink_t *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
    free(s->ts);
    pthread_mutex_destroy(&s->lock);
}

WH eddy_err_t sink_cb(const eddy_record_t *rec, void *opaque) {
    sink_t *s = opaque;
    size_t need = eddy_record_to_json(rec, NULL, 0);
    char *line = malloc(need + 1);
    if (!line)
        return EDDY_ERR_NOMEM;
    eddy_record_to_json(rec, line, need + 1);
    pthread_mutex_lock(&s->lock);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->lines = realloc(s->lines, s->cap * sizeof(*s->lines));
        s->ts = realloc(s->ts, s->cap * sizeof(*s->ts));
    }
    s->lines[s->n] = line;
    s->ts[s->n] = rec->ts_ms;
    s->n++;
    pthread_mutex_unlock(&s->lock);
    return EDDY_OK;
}

/* A callback sink that only counts, into a uint64_t. */
WH eddy_err_t count_cb(const eddy_record_t *rec, void *opaque) {
    (void)rec;
    (*(uint64_t *)opaque)++;
    return EDDY_OK;
}

WH size_t sink_count(sink_t *s) {
    pthread_mutex_lock(&s->lock);
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* Line i as "JSON @ts" (with_ts) or "JSON"; caller frees. */
WH char *sink_line(sink_t *s, size_t i, bool with_ts) {
    pthread_mutex_lock(&s->lock);
    size_t len = strlen(s->lines[i]) + 32;
    char *l = malloc(len);
    if (with_ts)
        snprintf(l, len, "%s @%" PRId64, s->lines[i], s->ts[i]);
    else
        snprintf(l, len, "%s", s->lines[i]);
    pthread_mutex_unlock(&s->lock);
    return l;
}

WH int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sink must hold exactly the lines of want (any order, repeats count). */
WH void expect_lines_(sink_t *s, const char *const *want, size_t nwant, bool with_ts,
                          const char *what) {
    size_t n = sink_count(s);
    char **got = calloc(n + 1, sizeof(char *));
    char **wnt = calloc(nwant + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        got[i] = sink_line(s, i, with_ts);
    for (size_t i = 0; i < nwant; i++)
        wnt[i] = strdup(want[i]);
    qsort(got, n, sizeof(char *), cmp_str);
    qsort(wnt, nwant, sizeof(char *), cmp_str);
    bool same = n == nwant;
    for (size_t i = 0; same && i < n; i++)
        same = !strcmp(got[i], wnt[i]);
    if (!same) {
        /* the difference only: both lists are sorted */
        fprintf(stderr, "%s: expected %zu lines, got %zu; missing (-) and unexpected (+):\n",
                what, nwant, n);
        size_t i = 0, j = 0;
        int shown = 0;
        while ((i < nwant || j < n) && shown < 60) {
            int c = i == nwant ? 1 : j == n ? -1 : strcmp(wnt[i], got[j]);
            if (c < 0) {
                fprintf(stderr, "  - %s\n", wnt[i++]);
                shown++;
            } else if (c > 0) {
                fprintf(stderr, "  + %s\n", got[j++]);
                shown++;
            } else {
                i++;
                j++;
            }
        }
        if (shown == 60)
            fprintf(stderr, "  ...\n");
    }
    for (size_t i = 0; i < n; i++)
        free(got[i]);
    for (size_t i = 0; i < nwant; i++)
        free(wnt[i]);
    free(got);
    free(wnt);
    if (!same)
        fail_msg("%s: outputs differ (see above)", what);
}
#define expect_lines(s, want, with_ts, what)                                                    \
    expect_lines_((s), (want), sizeof(want) / sizeof((want)[0]), (with_ts), (what))

/* ------------------------------------------------------------ runs */

typedef struct {
    int batch;          /* batch.size (1: the watermark advances per record) */
    int commit_ms;      /* commit.interval.ms */
    int64_t ooo_ms;     /* the source's max_out_of_orderness */
    const char *steps;  /* the pipeline's steps, indented by 6 */
    const char *dir;    /* state.dir to use and keep (restart tests); NULL: a fresh
                           one, removed by run_close() */
    const char *schema; /* the source's schema; NULL: {k: string, v: "int?", id: int} */
    int partitions;     /* the source's; 0: 1 */
} conf_t;

typedef struct {
    char dir[256];
    bool keep_dir;
    eddy_topology_t *topo;
    eddy_engine_t *eng;
    bool started;
    sink_t out, late;
    eddy_stats_t st;
    int pushed; /* records pushed (test_join.c) */
} run_t;

#define NUL INT64_MIN /* a null v */

/* A fresh run: sinks, and dir as state.dir (kept) or a new temporary one. */
WH void run_init(run_t *r, const char *dir) {
    memset(r, 0, sizeof(*r));
    sink_init(&r->out);
    sink_init(&r->late);
    if (dir) {
        snprintf(r->dir, sizeof(r->dir), "%s", dir);
        r->keep_dir = true;
    } else {
        snprintf(r->dir, sizeof(r->dir), "/tmp/eddy_test_window_XXXXXX");
        assert_non_null(mkdtemp(r->dir));
    }
}

/* Load topology y (sinks `out` and `late` are callbacks) and make the engine. */
WH void run_load(run_t *r, const char *y, const char *file) {
    char err[1024];
    r->topo = eddy_topology_load_string(y, strlen(y), file, err, sizeof(err));
    if (!r->topo)
        fail_msg("load failed: %s\n%s", err, y);
    eddy_topology_add_callback_sink(r->topo, "out", sink_cb, &r->out);
    eddy_topology_add_callback_sink(r->topo, "late", sink_cb, &r->late);
    r->eng = eddy_engine_new(r->topo, NULL, err, sizeof(err));
    if (!r->eng)
        fail_msg("engine_new failed: %s\n%s", err, y);
}

WH void run_open(run_t *r, const conf_t *c) {
    run_init(r, c->dir);
    char y[4096];
    snprintf(y, sizeof(y),
             "application: wt\n"
             "settings: {threads: 1, batch.size: %d, commit.interval.ms: %d, late: late,\n"
             "           state.dir: '%s'}\n"
             "sources:\n"
             "  - name: in\n"
             "    type: host\n"
             "    partitions: %d\n"
             "    queue.max: 1000000\n"
             "    schema: %s\n"
             "    watermark: {max_out_of_orderness: %" PRId64 "ms}\n"
             "pipelines:\n"
             "  - name: w\n"
             "    from: in\n"
             "    steps:\n"
             "%s"
             "    to: out\n",
             c->batch ? c->batch : 1, c->commit_ms ? c->commit_ms : 3600000, r->dir,
             c->partitions ? c->partitions : 1,
             c->schema ? c->schema : "{k: string, v: \"int?\", id: int}", c->ooo_ms, c->steps);
    run_load(r, y, "window.yaml");
}

WH void run_start(run_t *r) {
    assert_int_equal(eddy_engine_start(r->eng), EDDY_OK);
    r->started = true;
}

WH void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

WH void push(run_t *r, const char *k, int64_t v, int64_t id, int64_t ts) {
    eddy_value_t vals[3];
    vals[0] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(k)};
    vals[0].u.s = k;
    vals[1] = (eddy_value_t){.type = v == NUL ? EDDY_TYPE_NULL : EDDY_TYPE_INT};
    vals[1].u.i = v == NUL ? 0 : v;
    vals[2] = (eddy_value_t){.type = EDDY_TYPE_INT};
    vals[2].u.i = id;
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", 0, vals, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
}

/* Push {k: string, t: string, v: int} (the CEP tests' schema). */
WH void push_ktv(run_t *r, const char *k, const char *t, int64_t v, int64_t ts) {
    eddy_value_t vals[3];
    vals[0] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(k)};
    vals[0].u.s = k;
    vals[1] = (eddy_value_t){.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(t)};
    vals[1].u.s = t;
    vals[2] = (eddy_value_t){.type = EDDY_TYPE_INT};
    vals[2].u.i = v;
    eddy_err_t err;
    while ((err = eddy_engine_push(r->eng, "in", 0, vals, ts)) == EDDY_ERR_FULL)
        sleep_ms(1);
    assert_int_equal(err, EDDY_OK);
}

/* Stop (a final commit, no end of input: the watermark is restored with
 * the state, and an ended input's is +inf) once n records were read. */
WH void stop_after(run_t *r, uint64_t n) {
    for (int i = 0; i < 1000; i++) {
        eddy_engine_stats(r->eng, &r->st);
        if (r->st.events_in == n)
            break;
        sleep_ms(10);
    }
    assert_int_equal(r->st.events_in, n);
    eddy_engine_stop(r->eng);
    assert_int_equal(eddy_engine_poll(r->eng, 60000), EDDY_OK);
}

WH void rm_dir(const char *dir) {
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* End the input, run to the end, read the stats. */
WH void run_finish(run_t *r) {
    assert_int_equal(eddy_engine_end_input(r->eng, "in", -1), EDDY_OK);
    if (!r->started)
        run_start(r);
    eddy_err_t err = eddy_engine_poll(r->eng, 120000);
    if (err != EDDY_OK)
        fail_msg("run failed: %s: %s", eddy_err2str(err), eddy_engine_last_error(r->eng));
    eddy_engine_stats(r->eng, &r->st);
}

WH void run_close(run_t *r) {
    if (r->eng)
        eddy_engine_destroy(r->eng);
    if (r->topo)
        eddy_topology_destroy(r->topo);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
    if (!r->keep_dir && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
    sink_free(&r->out);
    sink_free(&r->late);
}

/* Wait up to 10 s for the sink to hold at least n records. */
WH size_t wait_count(sink_t *s, size_t n) {
    for (int i = 0; i < 1000 && sink_count(s) < n; i++)
        sleep_ms(10);
    return sink_count(s);
}

typedef struct {
    const char *k;
    int64_t v, ts;
} in_t;

#define COUNT_BY_K "        aggregate: {by: k, fields: {n: count()}}\n"

/* The topology yaml ("w.yaml") must be refused by the checker with a
 * message naming needle and its position; what names the case. */
WH void expect_config_error(const char *yaml, const char *needle, const char *what) {
    char err[1024] = "";
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "w.yaml", err, sizeof(err));
    eddy_err_t rc = EDDY_ERR_CONFIG;
    if (t)
        rc = eddy_topology_check(t, err, sizeof(err));
    if (t)
        eddy_topology_destroy(t);
    if (rc != EDDY_ERR_CONFIG || !strstr(err, needle) || !strstr(err, "w.yaml:"))
        fail_msg("window %s: expected a config error naming '%s' with its position, got "
                 "%s: %s",
                 what, needle, eddy_err2str(rc), err);
}

#endif
