/*
 * Crash test: a keyed running count and a tumbling-window count over the
 * generator are killed with
 * SIGKILL at random moments (at least 10 kills that hit a running process,
 * commits every 50 ms so kills land inside commits too) and restarted; its
 * final state equals an uninterrupted run's, key for key.
 */
#include "crash_harness.h"

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
            "  - {name: nx, type: nexmark, events: 8000000, partitions: 3, rate: %d}\n"
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
            state_dir, rate);
    fclose(f);
}

static void killed_and_restarted_run_ends_with_the_uninterrupted_state(void **state) {
    (void)state;
    size_t na;
    char *a = crash_run("crash test", write_topology, 1000000, &na);
    assert_true(na > 1000); /* tens of thousands of bidders */
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_and_restarted_run_ends_with_the_uninterrupted_state),
    };
    return cmocka_run_group_tests(tests, crash_setup, crash_teardown);
}
