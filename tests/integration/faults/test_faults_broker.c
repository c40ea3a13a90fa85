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
    rd_kafka_mock_broker_set_rtt(cluster(), (int32_t)(intptr_t)opaque, 3000);
}
static void broker_up(void *opaque, pid_t pid) {
    (void)pid;
    rd_kafka_mock_broker_set_rtt(cluster(), (int32_t)(intptr_t)opaque, 0);
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
    rd_kafka_resp_err_t errs[64];
    for (int i = 0; i < r->count && i < 64; i++)
        errs[i] = r->err;
    rd_kafka_mock_push_request_errors_array(cluster(), (int16_t)r->api, (size_t)r->count, errs);
}
static void clear_errors(void *opaque, pid_t pid) {
    (void)pid;
    const req_err_t *r = opaque;
    rd_kafka_mock_clear_request_errors(cluster(), (int16_t)r->api);
}

static void request_errors(const char *name, int api, int count, rd_kafka_resp_err_t err,
                           bool before_start, int max_restarts) {
    req_err_t r = {api, count, err};
    run_conf_t rc = {.name = name, .max_restarts = max_restarts};
    fault_t f = {push_errors, clear_errors, &r, before_start, false};
    fault_case(&rc, &f);
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

static void set_coordinators(const char *app, int broker) {
    char key[256];
    rd_kafka_mock_coordinator_set(cluster(), "group", app, broker);
    snprintf(key, sizeof(key), "%s-repartition", app);
    rd_kafka_mock_coordinator_set(cluster(), "group", key, broker);
    const char *sinks[] = {"out", "wout", "repartition"};
    for (int s = 0; s < 3; s++)
        for (int t = 0; t < 2; t++) {
            snprintf(key, sizeof(key), "%s-%s-%d", app, sinks[s], t);
            rd_kafka_mock_coordinator_set(cluster(), "transaction", key, broker);
        }
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
        cmocka_unit_test(leader_changes),
        cmocka_unit_test(coordinators_move),
        cmocka_unit_test(coordinators_down),
    };
    const char *only = getenv("EDDY_FAULTS_ONLY"); /* one test, e.g. state_dir_full */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, faults_setup, faults_teardown);
}
