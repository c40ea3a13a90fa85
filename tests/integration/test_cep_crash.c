/*
 * CEP crash test: a fraud pattern over the transactions generator is
 * killed with SIGKILL at random moments (at least 10 kills that hit a
 * running process; commits every 50 ms, so kills land inside commits too,
 * with partial matches and buffered records in progress) and restarted;
 * its match store (exactly-once state: every match by key and time) ends
 * equal to an uninterrupted run's: no match lost, none duplicated.
 */
#include "crash_harness.h"

/* rate 0: as fast as possible (the reference); the victim is paced so that
 * kills land mid-run. Pacing changes timing, never results. */
static void write_topology(const char *path, const char *state_dir, int rate) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "application: cepcrash\n"
            "settings: {threads: 2, commit.interval.ms: 50, state.dir: '%s',\n"
            "           state.checkpoint.interval.ms: 300}\n"
            "sources:\n"
            "  - {name: cards, type: transactions, events: 3000000, partitions: 2, cards: 3000,\n"
            "     event_rate: 10000, rate: %d, watermark: {max_out_of_orderness: 2s}}\n"
            "pipelines:\n"
            "  - name: fraud\n"
            "    from: tx\n"
            "    steps:\n"
            "      - cep:\n"
            "          by: card\n"
            "          within: 2m\n"
            "          after_match: skip_past_last_event\n"
            "          pattern:\n"
            "            - {name: probe, where: \"amount < 500\"}\n"
            "            - {name: small, next: \"amount < 500\", times_or_more: 2, consecutive: "
            "true, greedy: true}\n"
            "            - {name: big, followed_by: \"amount > 40 * avg(small.amount)\"}\n"
            "          fields: {n: count(small), total: sum(small.amount), big: last(big.amount)}\n"
            "    to: out\n"
            "sinks: [{name: out, type: blackhole}]\n",
            state_dir, rate);
    fclose(f);
}

static void killed_cep_run_ends_with_the_uninterrupted_matches(void **state) {
    (void)state;
    size_t na;
    char *a = crash_run("cep crash test", write_topology, 250000, &na);
    /* thousands of matches in the match store, none lost or repeated, and
     * no partial match left (the end of the input times them all out) */
    size_t matches = 0;
    for (const char *p = a; (p = strstr(p, "{\"store\":\"fraud\"")); p++)
        matches++;
    print_message("cep crash test: %zu matches\n", matches);
    assert_true(matches > 1000);
    assert_null(strstr(a, "fraud.partial"));
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_cep_run_ends_with_the_uninterrupted_matches),
    };
    return cmocka_run_group_tests(tests, crash_setup, crash_teardown);
}
