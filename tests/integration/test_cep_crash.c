/*
 * CEP crash test: a fraud pattern over the transactions generator is
 * killed with SIGKILL at random moments (at least 10 kills that hit a
 * running process; commits every 50 ms, so kills land inside commits too,
 * with partial matches and buffered records in progress) and restarted;
 * its match store (exactly-once state: every match by key and time) ends
 * equal to an uninterrupted run's: no match lost, none duplicated.
 *
 * The full form is 3,000,000 transactions, the victim paced at 250,000/s.
 * Under AddressSanitizer (CI's sanitizer stage) that took ~12 minutes, most
 * of it the two complete runs at sanitizer speed, so there the input is
 * 600,000 transactions paced at 50,000/s: the same 12 kills land mid-run
 * (the victim needs ~12 s of running to finish) and the same checks
 * apply. Under ThreadSanitizer (slower still) it is 240,000 transactions
 * paced at 20,000/s. EDDY_CEP_CRASH_EVENTS=N sets the input size either
 * way (the pace follows it: N / 12 per second); EDDY_CEP_CRASH_EVENTS=3000000
 * under a sanitizer runs the full form.
 */
#include "crash_harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define CEP_CRASH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CEP_CRASH_ASAN 1
#endif
#endif
#ifdef CEP_CRASH_ASAN
#define CEP_CRASH_EVENTS 600000
#else
#define CEP_CRASH_EVENTS 3000000
#endif

static long g_events;

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
            "  - {name: cards, type: transactions, events: %ld, partitions: 2, cards: 3000,\n"
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
            state_dir, g_events, rate);
    fclose(f);
}

static void killed_cep_run_ends_with_the_uninterrupted_matches(void **state) {
    (void)state;
    g_events = crash_events("EDDY_CEP_CRASH_EVENTS", CEP_CRASH_EVENTS, 240000);
    /* the full form's pace, scaled: the victim needs ~12 s of running */
    int rate = g_events >= 3000000 ? 250000 : (int)(g_events / 12);
    print_message("cep crash test: %ld transactions, victim paced at %d/s\n", g_events, rate);
    size_t na;
    char *a = crash_run("cep crash test", write_topology, rate, &na);
    /* thousands of matches in the match store, none lost or repeated, and
     * no partial match left (the end of the input times them all out) */
    size_t matches = 0;
    for (const char *p = a; (p = strstr(p, "{\"store\":\"fraud\"")); p++)
        matches++;
    print_message("cep crash test: %zu matches\n", matches);
    assert_true(matches > (size_t)g_events / 3000);
    assert_null(strstr(a, "fraud.partial"));
    free(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(killed_cep_run_ends_with_the_uninterrupted_matches),
    };
    return cmocka_run_group_tests(tests, crash_setup, crash_teardown);
}
