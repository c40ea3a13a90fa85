/*
 * Avro from Kafka end to end, everything in its own process as in a real
 * deployment: sr-server (a Confluent-compatible registry over HTTP) and
 * avro-produce (Avro C's writer, librdkafka's producer) write Confluent
 * wire-format bids to a topic of the embedded cluster; an eddy engine reads
 * them with a Kafka source of format avro and the reader schema
 * schemas/bid_v2.avsc.
 *
 *  - writer v1 (schemas/bid.avsc, Nexmark bids): price long -> double,
 *    currency takes its default "USD", extra is skipped;
 *  - writer v2 (the reader's own schema), registered later under the same
 *    subject, on the same topic: read as written;
 *  - poisoned messages (bad magic byte, unknown schema id, truncated body)
 *    go to the dead-letter sink with topic, partition and offset, exactly
 *    those avro-produce logged;
 *  - a writer schema the reader cannot resolve (auction as a string) is a
 *    dead letter per record naming the schema id and the field.
 * Every other record comes out once, with the values the generator made.
 */
#include "kafka_harness.h"

#include <jansson.h>

#include "connectors/nexmark_gen.h"
#include "tests/tools/tool_proc.h"

#define TOPIC "avbids"
#define PARTITIONS 3
#define V1_BIDS 3000
#define POISON 50
#define V2_BIDS 400
#define BAD_BIDS 7

static char g_dir[64], g_src[1024], g_sr_bin[1024], g_produce_bin[1024];
static pid_t g_sr;
static char g_sr_url[64];

static void path_in(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", g_dir, name);
}

static void start_registry(void) {
    char port_file[128], out[128], err[128];
    path_in(port_file, sizeof(port_file), "sr.port");
    path_in(out, sizeof(out), "sr.out");
    path_in(err, sizeof(err), "sr.err");
    char *argv[] = {g_sr_bin, "--port-file", port_file, NULL};
    g_sr = tool_spawn(argv, out, err);
    assert_true(g_sr > 0);
    int port = tool_wait_port(port_file, g_sr, 10000);
    if (port <= 0)
        fail_msg("sr-server did not start: %s", tool_slurp(err));
    snprintf(g_sr_url, sizeof(g_sr_url), "http://127.0.0.1:%d", port);
}

/* avro-produce with the common arguments, then extra (NULL-terminated). */
static void produce(const char *schema, const char *const *extra) {
    char schema_path[1100], out[128], err[128];
    snprintf(schema_path, sizeof(schema_path), "%s%s%s", schema[0] == '/' ? "" : g_src,
             schema[0] == '/' ? "" : "/", schema);
    path_in(out, sizeof(out), "produce.out");
    path_in(err, sizeof(err), "produce.err");
    const char *argv[32] = {g_produce_bin, "--bootstrap", g_bootstrap, "--topic", TOPIC,
                            "--schema",    schema_path, "--registry", g_sr_url, "--subject",
                            TOPIC "-value"};
    int n = 11;
    for (; *extra && n < 31; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    int rc = tool_run((char *const *)argv, out, err, 120000);
    if (rc != 0)
        fail_msg("avro-produce %s exited with %d: %s", schema, rc, tool_slurp(err));
}

/* "auction bidder price dateTime currency" of one bid, as text to compare. */
static char *bid_line(int64_t auction, int64_t bidder, double price, int64_t ts,
                      const char *currency) {
    char buf[160];
    snprintf(buf, sizeof(buf), "%lld %lld %.3f %lld %s", (long long)auction, (long long)bidder,
             price, (long long)ts, currency);
    return strdup(buf);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void avro_bids_of_two_writers_and_bad_input(void **st) {
    (void)st;
    create_topic(TOPIC, PARTITIONS);
    start_registry();

    /* v1: Nexmark bids (seed 7), poisoned every 50th */
    char poison_log[128];
    path_in(poison_log, sizeof(poison_log), "poison.log");
    produce("schemas/bid.avsc",
            (const char *[]){"--nexmark-bids", "3000", "--seed", "7", "--key", "auction",
                             "--timestamp-field", "dateTime", "--poison", "50", "--poison-log",
                             poison_log, NULL});
    /* v2: the reader's own schema, later, same subject and topic */
    char v2_json[128];
    path_in(v2_json, sizeof(v2_json), "v2.jsonl");
    FILE *f = fopen(v2_json, "w");
    assert_non_null(f);
    for (int i = 0; i < V2_BIDS; i++)
        fprintf(f,
                "{\"auction\": %d, \"bidder\": %d, \"price\": %d.25, \"currency\": \"%s\", "
                "\"channel\": \"app\", \"url\": \"https://x/%d\", \"dateTime\": %lld}\n",
                5000 + i % 13, 70000 + i, i, i % 2 ? "EUR" : "GBP", i,
                1700000000000LL + i);
    fclose(f);
    produce("schemas/bid_v2.avsc",
            (const char *[]){"--json", v2_json, "--key", "auction", "--timestamp-field",
                             "dateTime", NULL});
    /* a writer the reader cannot resolve: auction is a string */
    char bad_avsc[128], bad_json[128];
    path_in(bad_avsc, sizeof(bad_avsc), "bad.avsc");
    path_in(bad_json, sizeof(bad_json), "bad.jsonl");
    f = fopen(bad_avsc, "w");
    assert_non_null(f);
    fputs("{\"type\": \"record\", \"name\": \"Bid\", \"namespace\": \"nexmark\", \"fields\": ["
          "{\"name\": \"auction\", \"type\": \"string\"}, {\"name\": \"bidder\", \"type\": "
          "\"long\"}, {\"name\": \"price\", \"type\": \"long\"}, {\"name\": \"channel\", "
          "\"type\": \"string\"}, {\"name\": \"url\", \"type\": \"string\"}, {\"name\": "
          "\"dateTime\", \"type\": \"long\"}]}\n",
          f);
    fclose(f);
    f = fopen(bad_json, "w");
    assert_non_null(f);
    for (int i = 0; i < BAD_BIDS; i++)
        fprintf(f,
                "{\"auction\": \"a%d\", \"bidder\": 1, \"price\": 2, \"channel\": \"c\", "
                "\"url\": \"u\", \"dateTime\": 1700000000000}\n",
                i);
    fclose(f);
    produce(bad_avsc, (const char *[]){"--json", bad_json, NULL});

    /* read it all back */
    char out[128], dlq[128];
    path_in(out, sizeof(out), "out.jsonl");
    path_in(dlq, sizeof(dlq), "dlq.jsonl");
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "application: kavro\n"
             "settings: {threads: 2, dead_letter: dlq}\n"
             "kafka: {bootstrap.servers: '%s'}\n"
             "schema_registry: {url: '%s'}\n"
             "sources:\n"
             "  - {name: bids, type: kafka, topic: " TOPIC ", format: avro, bounded: true,\n"
             "     avro_schema: '%s/schemas/bid_v2.avsc', timestamp: dateTime}\n"
             "pipelines:\n"
             "  - {name: copy, from: bids, steps: [{map: [auction, bidder, price, dateTime, "
             "currency]}], to: out}\n"
             "sinks:\n"
             "  - {name: out, type: file, path: '%s'}\n"
             "  - {name: dlq, type: file, path: '%s'}\n",
             g_kafka_conf, g_sr_url, g_src, out, dlq);
    eddy_engine_t *e = make(yaml);
    run_to_end(e, 120);
    destroy(e);

    /* expected rows: the generator's bids but the poisoned, then v2's */
    int nexp = 0, npois = 0;
    char **exp = calloc(V1_BIDS + V2_BIDS, sizeof(char *));
    unsigned char *poisoned = calloc(V1_BIDS, 1);
    char pois_where[V1_BIDS / POISON][64];
    char *plog = tool_slurp(poison_log);
    for (char *line = strtok(plog, "\n"); line; line = strtok(NULL, "\n")) {
        int pos, part;
        long long off;
        char kind[32];
        assert_int_equal(sscanf(line, "poisoned %d %d %lld %31s", &pos, &part, &off, kind), 4);
        assert_true(pos >= 0 && pos < V1_BIDS && npois < V1_BIDS / POISON);
        poisoned[pos] = 1;
        snprintf(pois_where[npois++], sizeof(pois_where[0]),
                 "topic " TOPIC " partition %d offset %lld:", part, off);
    }
    free(plog);
    assert_int_equal(npois, V1_BIDS / POISON);
    eddy_nx_conf_t nc;
    eddy__nx_conf_default(&nc);
    nc.seed = 7;
    eddy_nx_gen_t *gen = eddy__nx_gen_new(&nc);
    char scratch[EDDY_NX_SCRATCH_BYTES];
    for (uint64_t ev = 0, pos = 0; pos < V1_BIDS; ev++) {
        if (eddy__nx_kind(gen, ev) != EDDY_NX_BID)
            continue;
        eddy_nx_event_t b;
        eddy__nx_event(gen, ev, &b, scratch);
        if (!poisoned[pos])
            exp[nexp++] =
                bid_line(b.bid.auction, b.bid.bidder, (double)b.bid.price, b.ts_ms, "USD");
        pos++;
    }
    eddy__nx_gen_destroy(gen);
    for (int i = 0; i < V2_BIDS; i++)
        exp[nexp++] = bid_line(5000 + i % 13, 70000 + i, i + 0.25, 1700000000000LL + i,
                               i % 2 ? "EUR" : "GBP");

    /* what came out */
    char **got = calloc((size_t)nexp + 64, sizeof(char *));
    int ngot = 0;
    FILE *o = fopen(out, "r");
    assert_non_null(o);
    char line[1024];
    while (fgets(line, sizeof(line), o)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        assert_non_null(j);
        json_t *price = json_object_get(j, "price");
        assert_true(json_is_real(price)); /* promoted long -> double */
        assert_true(ngot < nexp + 64);
        got[ngot++] = bid_line(json_integer_value(json_object_get(j, "auction")),
                               json_integer_value(json_object_get(j, "bidder")),
                               json_real_value(price),
                               json_integer_value(json_object_get(j, "dateTime")),
                               json_string_value(json_object_get(j, "currency")));
        json_decref(j);
    }
    fclose(o);
    print_message("kafka avro: %d rows out of %d v1 bids (%d poisoned) and %d v2 bids\n", ngot,
                  V1_BIDS, npois, V2_BIDS);
    assert_int_equal(ngot, nexp);
    qsort(exp, (size_t)nexp, sizeof(char *), cmp_str);
    qsort(got, (size_t)ngot, sizeof(char *), cmp_str);
    for (int i = 0; i < nexp; i++)
        if (strcmp(exp[i], got[i]))
            fail_msg("row %d: got '%s', expected '%s'", i, got[i], exp[i]);

    /* dead letters: each poisoned message at its place, each bad-writer
     * record with the schema id and the field */
    char *dl = tool_slurp(dlq);
    int ndl = 0, nbad = 0;
    for (char *l = strtok(dl, "\n"); l; l = strtok(NULL, "\n")) {
        ndl++;
        json_error_t je;
        json_t *j = json_loads(l, 0, &je);
        assert_non_null(j);
        const char *reason = json_string_value(json_object_get(j, "reason"));
        assert_non_null(reason);
        if (strstr(reason, "subject " TOPIC "-value: schema id ") &&
            strstr(reason, "Bid.auction: writer type string cannot be read as long")) {
            nbad++;
        } else {
            bool found = false;
            for (int i = 0; i < npois && !found; i++)
                found = strstr(reason, pois_where[i]) != NULL;
            if (!found)
                fail_msg("dead letter not at a poisoned message: %s", reason);
        }
        if (ndl == 1 || nbad == 1)
            print_message("dead letter: %s\n", reason);
        json_decref(j);
    }
    free(dl);
    assert_int_equal(nbad, BAD_BIDS);
    assert_int_equal(ndl, npois + BAD_BIDS);

    for (int i = 0; i < nexp; i++)
        free(exp[i]);
    for (int i = 0; i < ngot; i++)
        free(got[i]);
    free(exp);
    free(got);
    free(poisoned);
}

static int group_setup(void **st) {
    const char *src = getenv("EDDY_SOURCE_DIR");
    snprintf(g_src, sizeof(g_src), "%s", src ? src : ".");
    tool_path(g_sr_bin, sizeof(g_sr_bin), "SR_SERVER", "sr-server");
    tool_path(g_produce_bin, sizeof(g_produce_bin), "AVRO_PRODUCE", "avro-produce");
    snprintf(g_dir, sizeof(g_dir), "/tmp/eddy-kavro-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return setup(st);
}

static int group_teardown(void **st) {
    if (g_sr > 0 && tool_stop(g_sr, 5000) != 0)
        fprintf(stderr, "sr-server did not exit cleanly\n");
    remove_dir(g_dir);
    return teardown(st);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(avro_bids_of_two_writers_and_bad_input),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
