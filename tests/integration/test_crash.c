/*
 * Crash test: a keyed running count and a tumbling-window count over the
 * generator are killed with
 * SIGKILL at random moments (at least 10 kills that hit a running process,
 * commits every 50 ms so kills land inside commits too) and restarted; its
 * final state equals an uninterrupted run's, key for key.
 *
 * 8,000,000 events, the victim paced at 1,000,000/s (~8 s of running, so
 * the 12 kills land mid-run). Under ThreadSanitizer the input is 400,000
 * events paced at 50,000/s (the full form's two complete runs took ~12
 * minutes each there); EDDY_CRASH_EVENTS=N sets the size either way (the
 * pace follows: N / 8 per second).
 */
#include "crash_harness.h"

static long g_events;

/* rate 0: as fast as possible (the reference); the victim is paced so that
 * kills land mid-run. Pacing changes timing, never results. */
static void write_topology(const char *path, const char *state_dir, int rate) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "application: crash\n"
            "settings: {threads: 2, commit.interval.ms: 50, state.dir: '%s',\n"
            "           state.checkpoint.interval.ms: 300}\n"
            "sources:\n"
            "  - {name: nx, type: nexmark, events: %ld, partitions: 3, rate: %d}\n"
            "pipelines:\n"
            "  - name: counts\n"
            "    from: bid\n"
            "    steps:\n"
            "      - aggregate: {by: bidder, fields: {bids: count(), total: sum(price), "
            "top: max(price)}}\n"
            "    to: out\n"
            "  - name: per_window\n"
            "    from: bid\n"
            "    steps:\n"
            "      - window: {type: tumbling, size: 50ms, retention: 10s}\n"
            "        aggregate: {by: auction, fields: {bids: count(), top: max(price)}}\n"
            "    to: out\n"
            "sinks: [{name: out, type: blackhole}]\n",
            state_dir, g_events, rate);
    fclose(f);
}

static void killed_and_restarted_run_ends_with_the_uninterrupted_state(void **state) {
    (void)state;
    g_events = crash_events("EDDY_CRASH_EVENTS", 8000000, 400000);
    int rate = (int)(g_events / 8);
    print_message("crash test: %ld events, victim paced at %d/s\n", g_events, rate);
    size_t na;
    char *a = crash_run("crash test", write_topology, rate, &na);
    assert_true(na > 1000); /* thousands of bidders */
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_and_restarted_run_ends_with_the_uninterrupted_state),
    };
    return cmocka_run_group_tests(tests, crash_setup, crash_teardown);
}
