/*
 * Topology compiler: good files compile; every kind of mistake is reported
 * at FILE:LINE:COL with what was expected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "eddy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char g_err[1024];

/* Compile yaml; return 0 if valid, else leave the message in g_err. */
static int check(const char *yaml) {
    g_err[0] = 0;
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "t.yaml", g_err,
                                                   sizeof(g_err));
    if (!t)
        return -1;
    eddy_err_t err = eddy_topology_check(t, g_err, sizeof(g_err));
    eddy_topology_destroy(t);
    return err ? -1 : 0;
}

#define assert_error(yaml, prefix, needle)                                                 \
    do {                                                                                   \
        assert_int_equal(check(yaml), -1);                                                 \
        if (strncmp(g_err, prefix, strlen(prefix)) || !strstr(g_err, needle))             \
            fail_msg("expected '%s...%s', got '%s'", prefix, needle, g_err);               \
    } while (0)

#define HEAD                                                                               \
    "application: t\n"                                                                     \
    "sources:\n"                                                                           \
    "  - name: nx\n"                                                                       \
    "    type: nexmark\n"
#define SINK                                                                               \
    "sinks:\n"                                                                             \
    "  - name: out\n"                                                                      \
    "    type: stdout\n"

static void valid_topology_compiles(void **state) {
    (void)state;
    const char *y = HEAD "pipelines:\n"
                         "  - name: a\n"
                         "    from: bid\n"
                         "    steps:\n"
                         "      - filter: price > 10\n"
                         "      - key_by: bidder\n"
                         "    as: big\n"
                         "  - name: b\n"
                         "    from: big\n"
                         "    steps:\n"
                         "      - extend: {eur: price * 0.908}\n"
                         "    to: [out]\n" SINK;
    if (check(y))
        fail_msg("%s", g_err);
}

static void pipelines_may_be_declared_before_the_stream_they_read(void **state) {
    (void)state;
    const char *y = HEAD "pipelines:\n"
                         "  - {name: b, from: mid, to: out}\n"
                         "  - {name: a, from: nx.bid, as: mid}\n" SINK;
    if (check(y))
        fail_msg("%s", g_err);
}

static void unknown_root_key_is_reported_at_the_key(void **state) {
    (void)state;
    assert_error("application: t\nsourcez: []\n", "t.yaml:2:1:", "sourcez");
}

static void missing_application_is_reported(void **state) {
    (void)state;
    assert_error("sources: []\n", "t.yaml:1:1:", "application");
}

static void unknown_source_type_suggests_the_closest(void **state) {
    (void)state;
    assert_error("application: t\nsources:\n  - name: x\n    type: nexmrk\n", "t.yaml:4:11:",
                 "did you mean 'nexmark'");
}

static void unknown_stream_lists_the_known_ones(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bids\n    to: out\n" SINK,
                 "t.yaml:7:11:", "did you mean 'bid'");
}

static void unknown_operator_is_reported_at_the_step(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    steps:\n      - filtr: x\n"
                      "    to: out\n" SINK,
                 "t.yaml:9:9:", "unknown operator 'filtr' (did you mean 'filter'");
}

static void unknown_field_in_expression_points_into_the_expression(void **state) {
    (void)state;
    /* `prize` starts at column 9 + 8 = 17 of line 9 */
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    steps:\n"
                      "      - filter: prize > 10\n    to: out\n" SINK,
                 "t.yaml:9:17:", "prize");
}

static void quoted_expression_error_column_skips_the_quote(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    steps:\n"
                      "      - filter: \"price > \"\n    to: out\n" SINK,
                 "t.yaml:9:", "filter");
}

static void filter_must_be_boolean(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    steps:\n"
                      "      - filter: price + 1\n    to: out\n" SINK,
                 "t.yaml:9:17:", "must be boolean");
}

static void unknown_sink_is_reported_at_to(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    to: outt\n" SINK,
                 "t.yaml:8:9:", "unknown sink 'outt' (did you mean 'out'");
}

static void pipeline_without_output_is_an_error(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n", "t.yaml:6:5:", "no output");
}

static void duplicate_pipeline_names_are_rejected(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - {name: a, from: bid, to: out}\n"
                      "  - {name: a, from: bid, to: out}\n" SINK,
                 "t.yaml:7:", "duplicate pipeline name 'a'");
}

static void cycle_between_pipelines_is_rejected(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - {name: a, from: y, as: x}\n"
                      "  - {name: b, from: x, as: y}\n",
                 "t.yaml:6:", "cycle");
}

static void settings_out_of_range_is_reported(void **state) {
    (void)state;
    assert_error("application: t\nsettings:\n  threads: 0\n", "t.yaml:3:12:", "threads");
}

static void wrong_value_type_is_reported(void **state) {
    (void)state;
    assert_error("application: t\nsources:\n  - name: nx\n    type: nexmark\n"
                 "    events: lots\n",
                 "t.yaml:5:13:", "events");
}

static void map_with_duplicate_output_field_is_rejected(void **state) {
    (void)state;
    assert_error(HEAD "pipelines:\n  - name: a\n    from: bid\n    steps:\n"
                      "      - map: [price, price]\n    to: out\n" SINK,
                 "t.yaml:9:", "appears twice");
}

static void file_source_timestamp_must_be_a_schema_field(void **state) {
    (void)state;
    assert_error("application: t\nsources:\n  - name: f\n    type: file\n    path: /dev/null\n"
                 "    schema: {a: int}\n    timestamp: ts\n"
                 "pipelines: [{name: p, from: f, to: out}]\n" SINK,
                 "t.yaml:7:16:", "no field 'ts'");
}

static void yaml_syntax_error_has_position(void **state) {
    (void)state;
    assert_error("application: t\nsources: [\n", "t.yaml:", "");
    assert_non_null(strchr(g_err + 7, ':'));
}

static void callback_sink_cannot_come_from_a_file(void **state) {
    (void)state;
    assert_error(HEAD "pipelines: [{name: a, from: bid, to: cb}]\n"
                      "sinks:\n  - name: cb\n    type: callback\n",
                 "t.yaml:8:11:", "eddy_topology_add_callback_sink");
}

static void describe_draws_sources_steps_sinks_and_exchanges(void **state) {
    (void)state;
    const char *y = HEAD "pipelines:\n"
                         "  - name: a\n"
                         "    from: bid\n"
                         "    steps: [{filter: price > 10}, {key_by: bidder}, {map: [bidder]}]\n"
                         "    to: out\n" SINK;
    char err[512];
    eddy_topology_t *t = eddy_topology_load_string(y, strlen(y), "t.yaml", err, sizeof(err));
    assert_non_null(t);
    char *m = eddy_topology_describe(t, "mermaid", err, sizeof(err));
    assert_non_null(m);
    assert_non_null(strstr(m, "flowchart LR"));
    assert_non_null(strstr(m, "filter price > 10"));
    assert_non_null(strstr(m, "exchange"));
    assert_non_null(strstr(m, "s0 -- nx.bid --> n1"));
    eddy_free(m);
    char *d = eddy_topology_describe(t, "dot", err, sizeof(err));
    assert_non_null(d);
    assert_non_null(strstr(d, "digraph"));
    assert_non_null(strstr(d, "s0 -> n1"));
    eddy_free(d);
    assert_null(eddy_topology_describe(t, "svg", err, sizeof(err)));
    assert_non_null(strstr(err, "mermaid or dot"));
    eddy_topology_destroy(t);
}

static void missing_file_error_names_the_path(void **state) {
    (void)state;
    char err[512];
    assert_null(eddy_topology_load_file("/nonexistent/x.yaml", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x.yaml"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_topology_compiles),
        cmocka_unit_test(pipelines_may_be_declared_before_the_stream_they_read),
        cmocka_unit_test(unknown_root_key_is_reported_at_the_key),
        cmocka_unit_test(missing_application_is_reported),
        cmocka_unit_test(unknown_source_type_suggests_the_closest),
        cmocka_unit_test(unknown_stream_lists_the_known_ones),
        cmocka_unit_test(unknown_operator_is_reported_at_the_step),
        cmocka_unit_test(unknown_field_in_expression_points_into_the_expression),
        cmocka_unit_test(quoted_expression_error_column_skips_the_quote),
        cmocka_unit_test(filter_must_be_boolean),
        cmocka_unit_test(unknown_sink_is_reported_at_to),
        cmocka_unit_test(pipeline_without_output_is_an_error),
        cmocka_unit_test(duplicate_pipeline_names_are_rejected),
        cmocka_unit_test(cycle_between_pipelines_is_rejected),
        cmocka_unit_test(settings_out_of_range_is_reported),
        cmocka_unit_test(wrong_value_type_is_reported),
        cmocka_unit_test(map_with_duplicate_output_field_is_rejected),
        cmocka_unit_test(file_source_timestamp_must_be_a_schema_field),
        cmocka_unit_test(yaml_syntax_error_has_position),
        cmocka_unit_test(callback_sink_cannot_come_from_a_file),
        cmocka_unit_test(describe_draws_sources_steps_sinks_and_exchanges),
        cmocka_unit_test(missing_file_error_names_the_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
