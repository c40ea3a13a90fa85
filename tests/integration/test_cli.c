/*
 * The eddy command as a user drives it: exit codes, error positions,
 * Ctrl-C with a final flush, --stats-json, describe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char g_eddy[1024];
static char g_dir[256];

static int setup(void **state) {
    (void)state;
    const char *bin = getenv("EDDY_BIN_DIR");
    snprintf(g_eddy, sizeof(g_eddy), "%s/eddy", bin ? bin : ".");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy_cli_XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Run eddy with args; capture stdout/stderr into files; return exit code.
 * sigint_after_ms > 0 sends SIGINT after that long. */
static int run_eddy(const char *const *args, const char *out, const char *err,
                    int sigint_after_ms) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(out, "w", stdout) || !freopen(err, "w", stderr))
            _exit(127);
        const char *argv[16] = {g_eddy};
        int i = 0;
        for (; args[i] && i < 14; i++)
            argv[i + 1] = args[i];
        argv[i + 1] = NULL;
        execv(g_eddy, (char *const *)argv);
        _exit(127);
    }
    if (sigint_after_ms > 0) {
        struct timespec ts = {sigint_after_ms / 1000, (long)(sigint_after_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGINT);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    size_t got = fread(p, 1, (size_t)n, f);
    p[got] = 0;
    fclose(f);
    return p;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static void check_of_a_broken_file_exits_2_with_file_line_col(void **state) {
    (void)state;
    char y[512], o[512], e[512];
    path_in(y, sizeof(y), "broken.yaml");
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    write_file(y, "application: x\n"
                  "sources: [{name: g, type: nexmark}]\n"
                  "pipelines:\n"
                  "  - name: p\n"
                  "    from: bid\n"
                  "    steps:\n"
                  "      - map: {eur: pryce * 0.9}\n"
                  "    to: out\n"
                  "sinks: [{name: out, type: stdout}]\n");
    const char *args[] = {"check", y, NULL};
    assert_int_equal(run_eddy(args, o, e, 0), 2);
    char *msg = slurp(e);
    char want[600];
    snprintf(want, sizeof(want), "%s:7:20: ", y);
    if (strncmp(msg, want, strlen(want)) || !strstr(msg, "did you mean 'price'"))
        fail_msg("got: %s", msg);
    free(msg);
}

static void check_of_a_good_file_exits_0(void **state) {
    (void)state;
    char y[512], o[512], e[512];
    path_in(y, sizeof(y), "good.yaml");
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    write_file(y, "application: x\nsources: [{name: g, type: nexmark}]\n"
                  "pipelines: [{name: p, from: bid, to: out}]\n"
                  "sinks: [{name: out, type: stdout}]\n");
    const char *args[] = {"check", y, NULL};
    assert_int_equal(run_eddy(args, o, e, 0), 0);
}

static void run_of_a_bounded_topology_writes_every_result_and_exits_0(void **state) {
    (void)state;
    char y[512], o[512], e[512], res[512], stats[512], text[1024];
    path_in(y, sizeof(y), "bounded.yaml");
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    path_in(res, sizeof(res), "bids.jsonl");
    path_in(stats, sizeof(stats), "stats.json");
    snprintf(text, sizeof(text),
             "application: x\n"
             "settings: {threads: 2}\n"
             "sources: [{name: g, type: nexmark, events: 5000, partitions: 3}]\n"
             "pipelines: [{name: p, from: bid, steps: [{map: [auction, price]}], to: out}]\n"
             "sinks: [{name: out, type: file, path: '%s'}]\n",
             res);
    write_file(y, text);
    const char *args[] = {"run", y, "--stats-json", stats, NULL};
    assert_int_equal(run_eddy(args, o, e, 0), 0);
    char *data = slurp(res);
    int lines = 0;
    for (char *p = data; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4600); /* 46 bids in every 50 events */
    free(data);
    json_error_t jerr;
    json_t *j = json_load_file(stats, 0, &jerr);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "events_in")), 5000);
    assert_int_equal(json_integer_value(json_object_get(j, "events_out")), 4600);
    assert_true(json_is_true(json_object_get(j, "final")));
    json_decref(j);
}

static void ctrl_c_stops_an_unbounded_run_cleanly_after_a_final_flush(void **state) {
    (void)state;
    char y[512], o[512], e[512], res[512], text[1024];
    path_in(y, sizeof(y), "unbounded.yaml");
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    path_in(res, sizeof(res), "stream.jsonl");
    snprintf(text, sizeof(text),
             "application: x\n"
             "settings: {threads: 1, commit.interval.ms: 60000}\n"
             "sources: [{name: g, type: nexmark, rate: 20000}]\n"
             "pipelines: [{name: p, from: bid, steps: [{map: [auction]}], to: out}]\n"
             "sinks: [{name: out, type: file, path: '%s'}]\n",
             res);
    write_file(y, text);
    const char *args[] = {"run", y, NULL};
    assert_int_equal(run_eddy(args, o, e, 700), 0);
    /* the commit interval is a minute: what is in the file was written by
     * the final commit on Ctrl-C; it ends with a complete line */
    char *data = slurp(res);
    size_t n = strlen(data);
    assert_true(n > 100);
    assert_int_equal(data[n - 1], '\n');
    free(data);
    char *err = slurp(e);
    assert_non_null(strstr(err, "done"));
    free(err);
}

static void describe_prints_a_mermaid_graph(void **state) {
    (void)state;
    char y[512], o[512], e[512];
    path_in(y, sizeof(y), "d.yaml");
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    write_file(y, "application: x\nsources: [{name: g, type: nexmark}]\n"
                  "pipelines: [{name: p, from: bid, steps: [{filter: price > 5}], to: out}]\n"
                  "sinks: [{name: out, type: stdout}]\n");
    const char *args[] = {"describe", y, NULL};
    assert_int_equal(run_eddy(args, o, e, 0), 0);
    char *out = slurp(o);
    assert_non_null(strstr(out, "flowchart LR"));
    assert_non_null(strstr(out, "filter price > 5"));
    free(out);
    const char *dargs[] = {"describe", y, "--format", "dot", NULL};
    assert_int_equal(run_eddy(dargs, o, e, 0), 0);
    out = slurp(o);
    assert_non_null(strstr(out, "digraph"));
    free(out);
}

static void unknown_command_and_missing_file_exit_2(void **state) {
    (void)state;
    char o[512], e[512];
    path_in(o, sizeof(o), "o.txt");
    path_in(e, sizeof(e), "e.txt");
    const char *a1[] = {"frobnicate", NULL};
    assert_int_equal(run_eddy(a1, o, e, 0), 2);
    const char *a2[] = {"run", "/nonexistent.yaml", NULL};
    assert_int_equal(run_eddy(a2, o, e, 0), 2);
    char *err = slurp(e);
    assert_non_null(strstr(err, "/nonexistent.yaml"));
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(check_of_a_broken_file_exits_2_with_file_line_col),
        cmocka_unit_test(check_of_a_good_file_exits_0),
        cmocka_unit_test(run_of_a_bounded_topology_writes_every_result_and_exits_0),
        cmocka_unit_test(ctrl_c_stops_an_unbounded_run_cleanly_after_a_final_flush),
        cmocka_unit_test(describe_prints_a_mermaid_graph),
        cmocka_unit_test(unknown_command_and_missing_file_exit_2),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
