/*
 * The nexmark source through the public API: a paced run that is stopped
 * and started again goes on at its pace at once (it used to wait, after a
 * restart, for as long as all its earlier runs had taken: a demo stopped
 * with Ctrl-C after a minute printed nothing for a minute when started
 * again).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "eddy.h"

/* Run the paced topology (a store, so its positions are committed with
 * its state in dir) for run_ms; returns the events it read. */
static uint64_t run_paced(const char *dir, int run_ms) {
    char yaml[512], err[1024];
    snprintf(yaml, sizeof(yaml),
             "application: paced\n"
             "settings: {threads: 1, commit.interval.ms: 50, state.dir: '%s'}\n"
             "sources: [{name: g, type: nexmark, rate: 4000}]\n"
             "pipelines: [{name: p, from: bid, to: out,\n"
             "             steps: [{aggregate: {by: bidder, fields: {n: count()}}}]}]\n"
             "sinks: [{name: out, type: blackhole}]\n",
             dir);
    eddy_topology_t *t = eddy_topology_load_string(yaml, strlen(yaml), "t.yaml", err, sizeof(err));
    if (!t)
        fail_msg("%s", err);
    eddy_engine_t *e = eddy_engine_new(t, NULL, err, sizeof(err));
    if (!e)
        fail_msg("%s", err);
    assert_int_equal(eddy_engine_start(e), EDDY_OK);
    assert_int_equal(eddy_engine_poll(e, run_ms), EDDY_ERR_TIMEOUT); /* unbounded */
    eddy_engine_stop(e);
    assert_int_equal(eddy_engine_poll(e, 10000), EDDY_OK);
    eddy_stats_t st;
    eddy_engine_stats(e, &st);
    eddy_engine_destroy(e);
    eddy_topology_destroy(t);
    return st.events_in;
}

static void paced_run_resumed_after_a_stop_keeps_its_pace_at_once(void **state) {
    (void)state;
    char dir[] = "/tmp/eddy-nx-paced-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* 2 s at 4,000 events/s, then 0.8 s: the second run must not first wait
     * the 2 s the first one took */
    uint64_t first = run_paced(dir, 2000);
    uint64_t second = run_paced(dir, 800);
    assert_true(first > 4000);
    if (second < 1000)
        fail_msg("the resumed run read %llu events in 0.8 s at 4,000/s (first run: %llu)",
                 (unsigned long long)second, (unsigned long long)first);
    /* and at its pace: not a burst making up for lost time */
    assert_true(second < 8000);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paced_run_resumed_after_a_stop_keeps_its_pace_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
