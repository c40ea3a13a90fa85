/*
 * Broker faults while an exactly-once topology runs (faults_harness.h):
 * brokers silent and back (one broker, the partition leaders' broker), request
 * errors on Produce, Fetch, OffsetCommit and the transaction calls, leader
 * changes, the group and transaction coordinators moved or down. After
 * each, the state equals an uninterrupted run's and the outputs,
 * deduplicated by source record, equal the expected results.
 */
#include "faults_harness.h"

/* ---- brokers down and up */

/* A broker goes silent (its answers held back 3 s, longer than the fault)
 * rather than down: rd_kafka_mock_broker_set_up() of librdkafka 2.0.2
 * rebinds the old port and asserts when that fails, which it does while
 * the closed connections' TIME_WAIT holds the port. */
static void broker_down(void *opaque, pid_t pid) {
    (void)pid;
    mock_broker_silent(cluster(), (int)(intptr_t)opaque, true);
}
static void broker_up(void *opaque, pid_t pid) {
    (void)pid;
    mock_broker_silent(cluster(), (int)(intptr_t)opaque, false);
}

static void a_broker_down_and_up(void **st) {
    (void)st;
    NEED_MOCK();
    /* the leaders of the input on brokers 1 and 2, broker 3 goes down: it
     * leads the output and repartition topics some of the time and may be
     * a coordinator */
    for (int p = 0; p < PARTS; p++)
        rd_kafka_mock_partition_set_leader(cluster(), "fin", p, 1 + p % 2);
    run_conf_t rc = {.name = "fbroker3", .max_restarts = 3};
    fault_t f = {broker_down, broker_up, (void *)(intptr_t)3, false, false};
    fault_case(&rc, &f);
}

static void the_leaders_broker_down_and_up(void **st) {
    (void)st;
    NEED_MOCK();
    for (int p = 0; p < PARTS; p++)
        rd_kafka_mock_partition_set_leader(cluster(), "fin", p, 2);
    run_conf_t rc = {.name = "fleader-down", .max_restarts = 3};
    fault_t f = {broker_down, broker_up, (void *)(intptr_t)2, false, false};
    fault_case(&rc, &f);
}

/* ---- request errors */

typedef struct {
    int api;
    int count;
    rd_kafka_resp_err_t err;
} req_err_t;

static void push_errors(void *opaque, pid_t pid) {
    (void)pid;
    const req_err_t *r = opaque;
    mock_push_errors(cluster(), r->api, r->count, r->err);
}
static void clear_errors(void *opaque, pid_t pid) {
    (void)pid;
    const req_err_t *r = opaque;
    rd_kafka_mock_clear_request_errors(cluster(), (int16_t)r->api);
}

static run_result_t request_errors(const char *name, int api, int count, rd_kafka_resp_err_t err,
                                   bool before_start, int max_restarts) {
    req_err_t r = {api, count, err};
    run_conf_t rc = {.name = name, .max_restarts = max_restarts};
    fault_t f = {push_errors, clear_errors, &r, before_start, false};
    return fault_case(&rc, &f);
}

/* The log of run `name` says both a and b (b may be NULL), else fail. */
static void log_says(const char *name, const char *a, const char *b, const char *what) {
    char yaml[512], state[512];
    paths(name, yaml, state, sizeof(yaml));
    if (!log_has(yaml, a) || (b && !log_has(yaml, b))) {
        show_log(yaml, 20);
        fail_msg("%s: %s", name, what);
    }
}

static void produce_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("fproduce", API_PRODUCE, 20, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, false,
                   3);
}
static void fetch_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("ffetch", API_FETCH, 20, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, false, 3);
}
static void offset_commit_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("foffsets", API_OFFSET_COMMIT, 20, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                   false, 3);
}
static void init_producer_id_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("finitpid", API_INIT_PRODUCER_ID, 4,
                   RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, true, 3);
}
static void add_partitions_to_txn_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("faddparts", API_ADD_PARTITIONS_TO_TXN, 10,
                   RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS, false, 3);
}
static void end_txn_errors(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("fendtxn", API_END_TXN, 10, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, false,
                   3);
}

/* An abortable transaction error (the soak's OUT_OF_ORDER_SEQUENCE_NUMBER,
 * "requires epoch bump") no longer stops the engine: it recovers in
 * process, from the last acknowledged commit, and the process never exits
 * (max_restarts 0: a process restart fails the test). */
static void abortable_transaction_error_recovered_in_process(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("frecover", API_PRODUCE, 3, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                   false, 0);
    log_says("frecover", "restarting from the last acknowledged commit",
             "restarted after recovery 1", "no in-process recovery was logged");
}

/* ---- transactional input offsets (KIP-447, docs/kafka.md exactly_once) */

/* Every transaction of a commit round carries the round's input offsets
 * with the consumer's group generation (TxnOffsetCommit). A broker refuses
 * them with ILLEGAL_GENERATION when a rebalance made the generation stale
 * (the instance may be a zombie): the round must not be acknowledged, and
 * the engine recovers in process (leaves the group, rejoins, replays from
 * the last acknowledged round). The refusal also proves the offsets are
 * sent: without them no TxnOffsetCommit reaches the cluster, and the run
 * would see no error at all. */
static void stale_generation_refused_in_txn_offsets_recovers_in_process(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("ftxnoffsets", API_TXN_OFFSET_COMMIT, 2, RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION,
                   false, 0);
    log_says("ftxnoffsets", "send_offsets_to_transaction",
             "restarting from the last acknowledged commit",
             "the refused offsets did not lead to an in-process recovery");
}

/* A group coordinator that is not available for a while (the soak's
 * TxnOffsetCommit fault): librdkafka retries the offsets within the
 * round, which commits late but neither fails nor recovers. */
static void txn_offset_commit_retried_without_recovery(void **st) {
    (void)st;
    NEED_MOCK();
    request_errors("ftxnretry", API_TXN_OFFSET_COMMIT, 10,
                   RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE, false, 0);
    char yaml[512], state[512];
    paths("ftxnretry", yaml, state, sizeof(yaml));
    if (log_has(yaml, "restarting from the last acknowledged commit")) {
        show_log(yaml, 20);
        fail_msg("ftxnretry: a retriable TxnOffsetCommit error led to a recovery");
    }
}

/* FENCED_INSTANCE_ID: a consumer with this member's group.instance.id
 * took over. Rejoining would fence it in turn, so the engine stops (exit
 * status 1, no in-process recovery); a supervisor's restart then ends the
 * run with the state and outputs of an uninterrupted one. */
static void fenced_instance_in_txn_offsets_stops_the_engine(void **st) {
    (void)st;
    NEED_MOCK();
    run_result_t res = request_errors("ftxnfenced", API_TXN_OFFSET_COMMIT, 1,
                                      RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID, false, 1);
    if (res.restarts != 1 || res.first_fail != 1)
        fail_msg("ftxnfenced: %d restart(s), first exit status %d: the fenced member was not "
                 "stopped for good",
                 res.restarts, res.first_fail);
    log_says("ftxnfenced", "send_offsets_to_transaction: Failed to commit offsets", NULL,
             "the stop did not name the refused offsets");
}

/* Real broker only (EDDY_TEST_KAFKA; the mock keeps no offsets committed in
 * a transaction): the group's offsets move with the output. The run is
 * killed after the deliver phase of its 6th round (transactions committed,
 * round not acknowledged), so only the transactions can have committed
 * that round's offsets: for every input partition the group's committed
 * offset must be one past the last record whose copy is in the committed
 * output (before KIP-447 offsets, the group stayed a round behind). */
static void on_copy_offset(const char *p, size_t len, void *opaque) {
    int64_t *next = opaque;
    long n = json_int(p, len, "n");
    if (n >= 0 && n / PARTS + 1 > next[n % PARTS])
        next[n % PARTS] = n / PARTS + 1;
}

static void txn_offsets_move_the_group_with_the_output(void **st) {
    (void)st;
    if (!real_broker()) {
        print_message("skipped: %s needs a real broker (EDDY_TEST_KAFKA=host:port)\n", __func__);
        skip();
    }
    run_conf_t rc = {.name = "ftxngroup"};
    char yaml[512], state[512], out[300];
    paths(rc.name, yaml, state, sizeof(yaml));
    write_topology(&rc);
    create_outputs(rc.name);
    pid_t pid = spawn_eddy("run", yaml, "EDDY_FAULT_KILL=commit.flushed:6", NULL);
    assert_int_equal(poll_rc(pid, 120000), 128 + SIGKILL);
    int64_t copies[PARTS] = {0};
    snprintf(out, sizeof(out), "%s-out", rc.name);
    read_partitions(out, 1, on_copy_offset, copies);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    rd_kafka_conf_set(conf, "bootstrap.servers", g_bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", rc.name, err, sizeof(err));
    rd_kafka_conf_set(conf, "isolation.level", "read_committed", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, "fin", p);
    assert_int_equal(rd_kafka_committed(rk, l, 30000), 0);
    int64_t moved = 0;
    for (int p = 0; p < PARTS; p++) {
        int64_t g = l->elems[p].offset < 0 ? 0 : l->elems[p].offset;
        print_message("fin[%d]: group at %lld, committed copies up to %lld\n", p, (long long)g,
                      (long long)copies[p]);
        assert_int_equal(g, copies[p]);
        moved += g;
    }
    assert_true(moved > 0);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/* ---- leader changes */

static void move_leaders(void *opaque, pid_t pid) {
    (void)opaque;
    (void)pid;
    /* every partition the topology reads or writes changes leader, three
     * times while the fault lasts */
    static const char *topics[] = {"fin", "fleaders-out", "fleaders-wout"};
    for (int round = 0; round < 3; round++) {
        for (size_t t = 0; t < 3; t++)
            for (int p = 0; p < (t ? 1 : PARTS); p++)
                rd_kafka_mock_partition_set_leader(cluster(), topics[t], p,
                                                   1 + (p + round + 1) % 3);
        msleep(g_hold_ms / 3);
    }
}
static void nothing(void *opaque, pid_t pid) {
    (void)opaque;
    (void)pid;
}

static void leader_changes(void **st) {
    (void)st;
    NEED_MOCK();
    run_conf_t rc = {.name = "fleaders", .max_restarts = 3};
    fault_t f = {move_leaders, nothing, NULL, false, false};
    fault_case(&rc, &f);
}

/* ---- coordinators */

typedef struct {
    const char *app;
    int from, to;
    bool down; /* the old coordinator also goes silent for the fault */
} coord_t;

/* The transactional ids carry the instance id (docs/kafka.md), so the test
 * gives the application's state directory a known one before it starts. */
#define INSTANCE_ID "00000000000fa017"

static void set_coordinators(const char *app, int broker) {
    /* "txn": the stream threads' shared transactional producers (the
     * sinks' and the repartition records'); the others name producers of
     * their own (at_least_once, or a sink with its own properties) */
    static const char *const sinks[] = {"txn", "out", "wout", "repartition"};
    mock_move_coordinators(cluster(), app, INSTANCE_ID, sinks, 4, 2, broker);
}

static void write_instance_id(const char *app) {
    char yaml[512], state[512], path[1200];
    paths(app, yaml, state, sizeof(yaml));
    snprintf(path, sizeof(path), "mkdir -p '%s/%s'", state, app);
    assert_int_equal(system(path), 0);
    snprintf(path, sizeof(path), "%s/%s/INSTANCE", state, app);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", INSTANCE_ID);
    fclose(f);
}
static void coordinator_moves(void *opaque, pid_t pid) {
    (void)pid;
    coord_t *c = opaque;
    set_coordinators(c->app, c->to);
    if (c->down)
        broker_down((void *)(intptr_t)c->from, 0);
}
static void coordinator_back(void *opaque, pid_t pid) {
    (void)pid;
    coord_t *c = opaque;
    if (c->down)
        broker_up((void *)(intptr_t)c->from, 0);
}

static void coordinator_case(const char *name, bool down) {
    coord_t c = {name, 1, 3, down};
    /* the input's leaders away from the broker that goes down */
    for (int p = 0; p < PARTS; p++)
        rd_kafka_mock_partition_set_leader(cluster(), "fin", p, 2);
    write_instance_id(name);
    set_coordinators(name, c.from);
    run_conf_t rc = {.name = name, .max_restarts = 3};
    fault_t f = {coordinator_moves, coordinator_back, &c, false, false};
    fault_case(&rc, &f);
}

static void coordinators_move(void **st) {
    (void)st;
    NEED_MOCK();
    coordinator_case("fcoord-moved", false);
}
static void coordinators_down(void **st) {
    (void)st;
    NEED_MOCK();
    coordinator_case("fcoord-down", true);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_broker_down_and_up),
        cmocka_unit_test(the_leaders_broker_down_and_up),
        cmocka_unit_test(produce_errors),
        cmocka_unit_test(fetch_errors),
        cmocka_unit_test(offset_commit_errors),
        cmocka_unit_test(init_producer_id_errors),
        cmocka_unit_test(add_partitions_to_txn_errors),
        cmocka_unit_test(end_txn_errors),
        cmocka_unit_test(abortable_transaction_error_recovered_in_process),
        cmocka_unit_test(stale_generation_refused_in_txn_offsets_recovers_in_process),
        cmocka_unit_test(txn_offset_commit_retried_without_recovery),
        cmocka_unit_test(fenced_instance_in_txn_offsets_stops_the_engine),
        cmocka_unit_test(txn_offsets_move_the_group_with_the_output),
        cmocka_unit_test(leader_changes),
        cmocka_unit_test(coordinators_move),
        cmocka_unit_test(coordinators_down),
    };
    const char *only = getenv("EDDY_FAULTS_ONLY"); /* one test, e.g. state_dir_full */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, faults_setup, faults_teardown);
}
