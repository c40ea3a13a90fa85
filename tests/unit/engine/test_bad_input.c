/*
 * The bad-input matrix (docs/reliability-input.md): what a user gets for
 * each kind of bad input, and that processing goes on afterwards.
 *
 *  - broken topology files: one table of mistakes, each reported as
 *    t.yaml:LINE:COL: and a message saying why (YAML syntax, structure,
 *    unknown names with did-you-mean, types, expressions, zero and negative
 *    window sizes and durations, out-of-range settings);
 *  - bad records in a JSON-lines source: 100k levels of nesting, invalid
 *    UTF-8, a 64 MiB field over the line limit, a raw NUL, a truncated line,
 *    a timestamp that is not one: each a dead letter with the source, the
 *    line as offset and the reason, and the good lines around them all come
 *    out; a 64 MiB field under a raised limit comes out whole;
 *  - event times at the ends of int64 (and far in the past, negative):
 *    windows neither crash nor overflow (UBSan in CI), the extreme records
 *    are late or aggregated by the rules of docs/windows.md, and the windows
 *    of ordinary records still close with the right counts.
 * Avro (truncated, wrong magic byte, unknown schema id) and MCP requests
 * (malformed, oversized, stdio and HTTP) are covered where their code is
 * tested; the document lists those tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eddy.h"
#include "eddy_int.h" /* EDDY_TIME_LIMIT_MS */

/* ------------------------------------------------------------ configs */

typedef struct {
    const char *name; /* what is wrong */
    const char *yaml;
    const char *where; /* "LINE:COL" */
    const char *why;   /* the message starts with this */
} bad_cfg_t;

static const bad_cfg_t BAD_CFGS[] = {
    {"tab_indent", "application: t\nsources:\n\t- name: in\n", "3:1",
     "found character that cannot start any token (while scanning for the ne"},
    {"unclosed_flow", "application: t\nsources: [{name: in, type: host\n", "3:1",
     "did not find expected ',' or '}' (while parsing a flow mapping at 2:11"},
    {"unclosed_quote", "application: 't\nsources: []\n", "3:1",
     "found unexpected end of stream (while scanning a quoted scalar at 1:14"},
    {"bad_indent", "application: t\nsources:\n  - name: in\n   type: host\n", "4:4",
     "did not find expected '-' indicator (while parsing a block collection "},
    {"duplicate_key", "application: t\napplication: u\n", "2:1",
     "duplicate key 'application' (first at 1:1)"},
    {"not_a_mapping", "- just\n- a list\n", "1:1", "a topology must be a mapping"},
    {"empty_file", "", "1:1", "the document is empty; a topology must be a mapping"},
    {"unknown_top_key",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelnes: []\n",
     "4:1", "unknown key 'pipelnes' in topology (did you mean 'pipelines'?; expecte"},
    {"missing_application",
     "sources: [{name: in, type: host, schema: {k: string}}]\nsinks: [{name: out, type: "
     "stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "1:1", "missing required key 'application'"},
    {"unknown_source_type",
     "application: t\nsources: [{name: in, type: hots, schema: {k: string}}]\nsinks: [{name: out, "
     "type: stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:28", "unknown source type 'hots' (did you mean 'host'?)"},
    {"unknown_sink_type",
     "application: t\nsources: [{name: in, type: host, schema: {k: string}}]\nsinks: [{name: out, "
     "type: stdot}]\npipelines: [{name: p, from: in, to: out}]\n",
     "3:27", "unknown sink type 'stdot' (did you mean 'stdout'?)"},
    {"unknown_field_type",
     "application: t\nsources: [{name: in, type: host, schema: {k: strng}}]\nsinks: [{name: out, "
     "type: stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:46", "field 'k': unknown type 'strng' (expected boolean, int, long, float, d"},
    {"unknown_from",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: inn, to: "
     "out}]\n",
     "4:29", "unknown stream 'inn' (did you mean 'in'?); known streams: in"},
    {"unknown_to",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: in, to: "
     "outt}]\n",
     "4:37", "unknown sink 'outt' (did you mean 'out'?); declared sinks: out"},
    {"duplicate_source",
     "application: t\nsources: [{name: in, type: host, schema: {k: string}}, {name: in, type: "
     "host, schema: {k: string}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: "
     "in, to: out}]\n",
     "2:63", "duplicate source name 'in'"},
    {"unknown_step",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - filtr: n > 1\n",
     "9:9", "unknown operator 'filtr' (did you mean 'filter'?)"},
    {"unknown_field_in_expr",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - filter: m > 1\n",
     "9:17", "filter: unknown field 'm' (the input has: k, n, at)"},
    {"expr_syntax",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - filter: n > > 1\n",
     "9:21", "filter: expected an operand, got '>'"},
    {"expr_type",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - filter: k + 1\n",
     "9:19", "filter: operator '+' needs numbers, got string and int"},
    {"filter_not_bool",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - filter: n + 1\n",
     "9:17", "filter: the condition must be boolean, but this expression is int"},
    {"window_size_zero",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: tumbling, size: 0ms}\n        aggregate: {by: k, "
     "fields: {c: count()}}\n",
     "9:40", "window size 0ms: must be > 0"},
    {"window_size_negative",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: tumbling, size: -5s}\n        aggregate: {by: k, "
     "fields: {c: count()}}\n",
     "9:40", "key 'size': a duration must be >= 0, got '-5s'"},
    {"window_size_garbage",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: tumbling, size: 10 parsecs}\n        aggregate: "
     "{by: k, fields: {c: count()}}\n",
     "9:40", "key 'size': expected a duration like 10s or 500ms, got '10 parsecs'"},
    {"window_size_huge",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: tumbling, size: 9223372036854775807ms}\n        "
     "aggregate: {by: k, fields: {c: count()}}\n",
     "9:40",
     "key 'size': a duration must be at most 2^61 ms (about 73 million years), got "
     "'9223372036854775807ms'"},
    {"hopping_advance_zero",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: hopping, size: 10s, advance: 0s}\n        "
     "aggregate: {by: k, fields: {c: count()}}\n",
     "9:53", "hopping advance 0ms: must be > 0, at most the size, and divide the siz"},
    {"hopping_advance_gt_size",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: hopping, size: 10s, advance: 20s}\n        "
     "aggregate: {by: k, fields: {c: count()}}\n",
     "9:53", "hopping advance 20000ms: must be > 0, at most the size, and divide the"},
    {"session_gap_negative",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: session, gap: -1s}\n        aggregate: {by: k, "
     "fields: {c: count()}}\n",
     "9:38", "key 'gap': a duration must be >= 0, got '-1s'"},
    {"window_type_unknown",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - window: {type: tumblng, size: 10s}\n        aggregate: {by: k, "
     "fields: {c: count()}}\n",
     "9:24", "key 'type': expected one of tumbling, hopping, session, sliding; got '"},
    {"unknown_agg_fn",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - aggregate: {by: k, fields: {c: cnt()}}\n",
     "9:40", "unknown aggregate 'cnt' (did you mean 'count'?) (expected count, sum, "},
    {"agg_by_unknown",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - aggregate: {by: kk, fields: {c: count()}}\n",
     "9:25", "key_by: unknown field 'kk' (did you mean 'k'?)"},
    {"sum_of_string",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - aggregate: {by: n, fields: {s: sum(k)}}\n",
     "9:40", "sum() needs a number, got string"},
    {"threads_zero",
     "application: t\nsettings: {threads: 0}\nsources: [{name: in, type: host, schema: {k: string, "
     "n: int, at: timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: "
     "in, to: out}]\n",
     "2:21", "key 'threads': 0 is out of range [1, 1024]"},
    {"repartition_error_timeout_short",
     "application: t\nsettings: {repartition.error.timeout.ms: 1s}\nsources: [{name: in, type: "
     "host, schema: {k: string, n: int, at: timestamp}}]\nsinks: [{name: out, type: "
     "stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:42", "repartition.error.timeout.ms: at least 5s (a healthy partition gets a"},
    {"repartition_error_timeout_long",
     "application: t\nsettings: {repartition.error.timeout.ms: 2d}\nsources: [{name: in, type: "
     "host, schema: {k: string, n: int, at: timestamp}}]\nsinks: [{name: out, type: "
     "stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:42", "repartition.error.timeout.ms: at most 1d, or 0 to retry for ever"},
    {"threads_text",
     "application: t\nsettings: {threads: many}\nsources: [{name: in, type: host, schema: {k: "
     "string, n: int, at: timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, "
     "from: in, to: out}]\n",
     "2:21", "key 'threads': expected an integer, got 'many'"},
    {"unknown_setting",
     "application: t\nsettings: {thread: 2}\nsources: [{name: in, type: host, schema: {k: string, "
     "n: int, at: timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: "
     "in, to: out}]\n",
     "2:12", "unknown key 'thread' in settings (did you mean 'threads'?; expected on"},
    {"timestamp_not_a_field",
     "application: t\nsources: [{name: in, type: host, timestamp: when, schema: {k: "
     "string}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:34", "unknown key 'timestamp' in host source (expected one of: name, type, w"},
    {"watermark_negative",
     "application: t\nsources: [{name: in, type: host, schema: {k: string}, watermark: "
     "{max_out_of_orderness: -1s}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, "
     "from: in, to: out}]\n",
     "2:89", "key 'max_out_of_orderness': a duration must be >= 0, got '-1s'"},
    {"partitions_negative",
     "application: t\nsources: [{name: in, type: host, partitions: -2, schema: {k: "
     "string}}]\nsinks: [{name: out, type: stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:46", "key 'partitions': -2 is out of range [1, 1024]"},
    {"sources_not_a_list",
     "application: t\nsources: {name: in}\nsinks: [{name: out, type: stdout}]\npipelines: [{name: "
     "p, from: in, to: out}]\n",
     "2:10", "sources: expected a non-empty list of sources"},
    {"step_not_a_map",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - just a string\n",
     "9:9", "a step must be a mapping naming its operator, e.g. '- filter: price > "},
    {"map_not_a_map",
     "application: t\nsources: [{name: in, type: host, schema: {k: string, n: int, at: "
     "timestamp}}]\nsinks: [{name: out, type: stdout}]\npipelines:\n  - name: p\n    from: in\n    "
     "to: out\n    steps:\n      - map: [a, b]\n",
     "9:15", "map: unknown field 'a' (the input has: k, n, at)"},
    {"alias_undefined", "application: *nope\n", "1:14", "unknown alias '*nope'"},
    {"invalid_utf8_key",
     "application: t\n\xff"
     "\xfe"
     ": 1\n",
     "2:1", "invalid leading UTF-8 octet (byte 0xff)"},
    {"huge_int",
     "application: t\nsettings: {threads: 99999999999999999999999}\nsources: [{name: in, type: "
     "host, schema: {k: string, n: int, at: timestamp}}]\nsinks: [{name: out, type: "
     "stdout}]\npipelines: [{name: p, from: in, to: out}]\n",
     "2:21", "key 'threads': 99999999999999999999999 is out of range [1, 1024]"},
};

static void broken_configs_say_where_and_why(void **state) {
    (void)state;
    int n = (int)(sizeof(BAD_CFGS) / sizeof(BAD_CFGS[0])), failed = 0;
    for (int i = 0; i < n; i++) {
        const bad_cfg_t *c = &BAD_CFGS[i];
        char err[1024] = "", want[128];
        eddy_topology_t *t = eddy_topology_load_string(c->yaml, strlen(c->yaml), "t.yaml", err,
                                                       sizeof(err));
        if (t) {
            eddy_err_t e = eddy_topology_check(t, err, sizeof(err));
            eddy_topology_destroy(t);
            if (e != EDDY_ERR_CONFIG) {
                print_error("%s: accepted (%d)\n", c->name, (int)e);
                failed++;
                continue;
            }
        }
        snprintf(want, sizeof(want), "t.yaml:%s: ", c->where);
        if (strncmp(err, want, strlen(want)) || strncmp(err + strlen(want), c->why, strlen(c->why))) {
            print_error("%s:\n  got      %s\n  expected %s%s...\n", c->name, err, want, c->why);
            failed++;
        }
    }
    assert_true(n >= 30);
    assert_int_equal(failed, 0);
}

/* ------------------------------------------------------------ records */

typedef struct {
    pthread_mutex_t lock;
    int n;
    char *lines[16];
    size_t max_len; /* longest string value seen */
    int64_t ts[16];
} sink_t;

static eddy_err_t sink_cb(const eddy_record_t *rec, void *opaque) {
    sink_t *s = opaque;
    pthread_mutex_lock(&s->lock);
    int nf = eddy_schema_nfields(rec->schema);
    size_t longest = 0;
    for (int i = 0; i < nf; i++)
        if (rec->values[i].type == EDDY_TYPE_STRING && rec->values[i].len > longest)
            longest = rec->values[i].len;
    if (longest > s->max_len)
        s->max_len = longest;
    if (s->n < 16) {
        /* whole lines, but not the 64 MiB one: its string is checked by length */
        size_t need = longest >= (1u << 20) ? 0 : eddy_record_to_json(rec, NULL, 0);
        s->lines[s->n] = calloc(1, need + 1);
        if (need)
            eddy_record_to_json(rec, s->lines[s->n], need + 1);
        s->ts[s->n] = rec->ts_ms;
    }
    s->n++;
    pthread_mutex_unlock(&s->lock);
    return EDDY_OK;
}

static void sink_free(sink_t *s) {
    for (int i = 0; i < s->n && i < 16; i++)
        free(s->lines[i]);
}

static bool sink_has(const sink_t *s, const char *line) {
    for (int i = 0; i < s->n && i < 16; i++)
        if (!strcmp(s->lines[i], line))
            return true;
    return false;
}

static void write_all(FILE *f, const char *p, size_t n) { assert_int_equal(fwrite(p, 1, n, f), n); }
static void put(FILE *f, const char *s) { write_all(f, s, strlen(s)); }

/* {"k":"<n bytes of x>","n":3,"at":1500} */
static void write_big_line(FILE *f, size_t n) {
    write_all(f, "{\"k\":\"", 6);
    char *x = malloc(n);
    memset(x, 'x', n);
    write_all(f, x, n);
    free(x);
    put(f, "\",\"n\":3,\"at\":1500}\n");
}

#define BIG (64u << 20)
#define DEEP 100000

/* Runs a file source over path with the settings given; returns after the
 * whole file is read (bounded input). */
static void run_file(const char *path, const char *source_extra, sink_t *out, sink_t *dl,
                     eddy_stats_t *st) {
    char y[2048], err[1024];
    snprintf(y, sizeof(y),
             "application: bad\n"
             "settings: {threads: 1, dead_letter: dl}\n"
             "sources:\n"
             "  - {name: in, type: file, path: '%s', timestamp: at%s,\n"
             "     schema: {k: string, n: int, at: timestamp}}\n"
             "pipelines:\n"
             "  - {name: p, from: in, to: out}\n",
             path, source_extra);
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "bad.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s", err);
    eddy_topology_add_callback_sink(t, "out", sink_cb, out);
    eddy_topology_add_callback_sink(t, "dl", sink_cb, dl);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, 120000), EDDY_OK);
    eddy_engine_stats(e, st);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
}

/* The dead letter at a line: its reason contains why, source and offset match. */
static void assert_dead_letter(const sink_t *dl, int64_t line, const char *why) {
    for (int i = 0; i < dl->n && i < 16; i++) {
        /* the dead-letter sink's rows are {reason, source, partition, offset, raw, ...} */
        json_error_t je;
        json_t *j = json_loads(dl->lines[i], JSON_ALLOW_NUL, &je);
        if (!j)
            fail_msg("dead letter %d is not JSON (%s): %.300s", i, je.text, dl->lines[i]);
        json_int_t off = json_integer_value(json_object_get(j, "offset"));
        const char *reason = json_string_value(json_object_get(j, "reason"));
        if (off == line) {
            if (!reason || !strstr(reason, why))
                fail_msg("line %lld: reason '%s', expected '%s'", (long long)line,
                         reason ? reason : "(none)", why);
            print_message("dead letter at line %lld: %s\n", (long long)line, reason);
            assert_int_equal(json_integer_value(json_object_get(j, "partition")), 0);
            json_decref(j);
            return;
        }
        json_decref(j);
    }
    fail_msg("no dead letter for line %lld (%s)", (long long)line, why);
}

static void bad_json_lines_are_dead_lettered_and_the_rest_flows(void **state) {
    (void)state;
    char path[] = "/tmp/eddy_test_badin_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    const char *good1 = "{\"k\":\"a\",\"n\":1,\"at\":1000}\n";
    put(f, good1); /* line 1 */
    write_all(f, "{\"k\":\"b\",\"n\":", 13); /* line 2: 100k levels of nesting */
    for (int i = 0; i < DEEP; i++)
        fputc('[', f);
    for (int i = 0; i < DEEP; i++)
        fputc(']', f);
    write_all(f, ",\"at\":1}\n", 9);
    const char *utf8 = "{\"k\":\"caf\xc3\x28\",\"n\":2,\"at\":1100}\n"; /* line 3 */
    put(f, utf8);
    write_big_line(f, BIG); /* line 4: 64 MiB over the 1 MiB default */
    const char *nul = "{\"k\":\"d\",\"n\":4,\"at\":1200}\0\n"; /* line 5: a raw NUL */
    write_all(f, nul, 27);
    const char *trunc = "{\"k\":\"e\",\"n\":\n"; /* line 6 */
    put(f, trunc);
    const char *when = "{\"k\":\"f\",\"n\":6,\"at\":\"yesterday\"}\n"; /* line 7 */
    put(f, when);
    const char *good2 = "{\"k\":\"g\",\"n\":7,\"at\":2000}\n"; /* line 8 */
    put(f, good2);
    fclose(f);

    sink_t out = {.lock = PTHREAD_MUTEX_INITIALIZER}, dl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_stats_t st;
    run_file(path, "", &out, &dl, &st);
    assert_int_equal(out.n, 2);
    assert_true(sink_has(&out, "{\"k\":\"a\",\"n\":1,\"at\":1000}"));
    assert_true(sink_has(&out, "{\"k\":\"g\",\"n\":7,\"at\":2000}"));
    assert_int_equal(dl.n, 6);
    assert_dead_letter(&dl, 2, "nest");
    assert_dead_letter(&dl, 3, "invalid UTF-8");
    assert_dead_letter(&dl, 4, "line longer than max_line_bytes (1048576)");
    assert_dead_letter(&dl, 5, "NUL");
    assert_dead_letter(&dl, 6, "invalid JSON");
    assert_dead_letter(&dl, 7, "'at'");
    /* every dead letter names the source */
    for (int i = 0; i < dl.n; i++)
        assert_non_null(strstr(dl.lines[i], path));
    assert_int_equal(st.dead_lettered, 6);
    sink_free(&out);
    sink_free(&dl);
    unlink(path);
}

static void a_64_mib_field_comes_out_whole_under_a_raised_line_limit(void **state) {
    (void)state;
    char path[] = "/tmp/eddy_test_badin_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    write_big_line(f, BIG);
    const char *good = "{\"k\":\"g\",\"n\":7,\"at\":2000}\n";
    put(f, good);
    fclose(f);
    sink_t out = {.lock = PTHREAD_MUTEX_INITIALIZER}, dl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_stats_t st;
    run_file(path, ", max_line_bytes: 65MiB", &out, &dl, &st);
    assert_int_equal(dl.n, 0);
    assert_int_equal(out.n, 2);
    assert_int_equal(out.max_len, BIG);
    assert_true(sink_has(&out, "{\"k\":\"g\",\"n\":7,\"at\":2000}"));
    sink_free(&out);
    sink_free(&dl);
    unlink(path);
}

/* ------------------------------------------------------------ event times */

typedef struct {
    pthread_mutex_t lock;
    int n;
    char lines[32][256];
} rows_t;

static eddy_err_t rows_cb(const eddy_record_t *rec, void *opaque) {
    rows_t *r = opaque;
    pthread_mutex_lock(&r->lock);
    if (r->n < 32)
        eddy_record_to_json(rec, r->lines[r->n], sizeof(r->lines[0]));
    r->n++;
    pthread_mutex_unlock(&r->lock);
    return EDDY_OK;
}

static void push(eddy_engine_t *e, const char *k, int64_t ts) {
    eddy_value_t v[1] = {{.type = EDDY_TYPE_STRING, .len = (uint32_t)strlen(k)}};
    v[0].u.s = k;
    assert_int_equal(eddy_engine_push(e, "in", 0, v, ts), EDDY_OK);
}

static bool rows_has(rows_t *r, const char *line) {
    pthread_mutex_lock(&r->lock);
    bool found = false;
    for (int i = 0; i < r->n && i < 32 && !found; i++)
        found = !strcmp(r->lines[i], line);
    pthread_mutex_unlock(&r->lock);
    return found;
}

static void wait_for(rows_t *r, const char *line) {
    for (int i = 0; i < 3000 && !rows_has(r, line); i++)
        usleep(10000);
    if (!rows_has(r, line))
        fail_msg("no row %s", line);
}

/* Event times at the ends of int64 are dead letters (windows, joins and
 * expiry would overflow on them); times far in the past or negative are
 * ordinary: windowed while open, late once the watermark passed them. */
static void extreme_event_times_are_dead_letters_far_past_ones_windowed_or_late(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy-test-badin-XXXXXX", y[1024], err[1024];
    assert_non_null(mkdtemp(dir));
    snprintf(y, sizeof(y),
             "application: t\n"
             "settings: {threads: 1, late: late, dead_letter: dl, state.dir: '%s'}\n"
             "sources: [{name: in, type: host, partitions: 1, schema: {k: string},\n"
             "           watermark: {max_out_of_orderness: 0ms}}]\n"
             "pipelines:\n"
             "  - name: p\n"
             "    from: in\n"
             "    steps:\n"
             "      - window: {type: tumbling, size: 10ms}\n"
             "        aggregate: {by: k, fields: {n: count()}}\n"
             "    to: out\n",
             dir);
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "t.yaml", err, sizeof(err));
    assert_non_null(t);
    rows_t out = {.lock = PTHREAD_MUTEX_INITIALIZER}, late = {.lock = PTHREAD_MUTEX_INITIALIZER},
           dl = {.lock = PTHREAD_MUTEX_INITIALIZER};
    eddy_topology_add_callback_sink(t, "out", rows_cb, &out);
    eddy_topology_add_callback_sink(t, "late", rows_cb, &late);
    eddy_topology_add_callback_sink(t, "dl", rows_cb, &dl);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    push(e, "end", INT64_MIN);
    push(e, "end", INT64_MIN + 1);
    push(e, "end", -EDDY_TIME_LIMIT_MS - 1);
    push(e, "far", -86400000000000LL); /* 2.7 million years ago */
    push(e, "neg", -1);
    push(e, "end", INT64_MAX);
    push(e, "end", EDDY_TIME_LIMIT_MS + 1);
    push(e, "a", 1000);
    push(e, "a", 1009);
    push(e, "b", 1010); /* the watermark passes [1000, 1010) */
    wait_for(&out, "{\"k\":\"a\",\"window_start\":1000,\"window_end\":1010,\"n\":2}");
    push(e, "neg", -5); /* behind the watermark */
    push(e, "end", INT64_MAX - 1);
    push(e, "c", 2000); /* still on time: the extremes did not move the watermark */
    eddy_engine_end_input(e, "in", -1);
    assert_int_equal(eddy_engine_poll(e, 30000), EDDY_OK);
    for (int i = 0; i < out.n; i++)
        print_message("out:  %s\n", out.lines[i]);
    static const char *const want[] = {
        "{\"k\":\"far\",\"window_start\":-86400000000000,\"window_end\":-86399999999990,\"n\":1}",
        "{\"k\":\"neg\",\"window_start\":-10,\"window_end\":0,\"n\":1}",
        "{\"k\":\"a\",\"window_start\":1000,\"window_end\":1010,\"n\":2}",
        "{\"k\":\"b\",\"window_start\":1010,\"window_end\":1020,\"n\":1}",
        "{\"k\":\"c\",\"window_start\":2000,\"window_end\":2010,\"n\":1}",
    };
    assert_int_equal(out.n, 5);
    for (int i = 0; i < 5; i++)
        if (!rows_has(&out, want[i]))
            fail_msg("missing %s", want[i]);
    assert_int_equal(late.n, 1);
    assert_string_equal(late.lines[0], "{\"k\":\"neg\"}");
    assert_int_equal(dl.n, 6);
    for (int i = 0; i < dl.n; i++) {
        assert_non_null(strstr(dl.lines[i], "is outside the supported range of +-2^61 ms"));
        assert_non_null(strstr(dl.lines[i], "\"source\":\"in\""));
    }
    print_message("dead letter: %s\n", dl.lines[0]);
    assert_non_null(strstr(dl.lines[0], "event time -9223372036854775808 ms"));
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.dead_lettered, 6);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    snprintf(y, sizeof(y), "rm -rf '%s'", dir);
    assert_int_equal(system(y), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broken_configs_say_where_and_why),
        cmocka_unit_test(bad_json_lines_are_dead_lettered_and_the_rest_flows),
        cmocka_unit_test(a_64_mib_field_comes_out_whole_under_a_raised_line_limit),
        cmocka_unit_test(extreme_event_times_are_dead_letters_far_past_ones_windowed_or_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
