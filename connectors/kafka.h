/*
 * Kafka plumbing shared by the Kafka source, the Kafka sink, the Kafka
 * changelog and the MCP Kafka transport (internal API; connectors/ is the
 * only user of librdkafka).
 *
 *  - Properties: the topology's top-level `kafka:` map (and a source's or
 *    sink's own `kafka:` map over it) is a list of librdkafka properties
 *    passed through unchanged, so SSL and SASL need no code. Each one is
 *    checked with rd_kafka_conf_set() while compiling, so a misspelt
 *    property is a config error at its file:line:col.
 *  - Embedded cluster: `bootstrap.servers: embedded` starts librdkafka's
 *    mock cluster in this process (once; shared by every user, destroyed
 *    with the last one) and replaces the value with its real TCP address on
 *    127.0.0.1, so other processes (kcat, tests) can reach it.
 */
#ifndef EDDY_CONNECTORS_KAFKA_H
#define EDDY_CONNECTORS_KAFKA_H

#include "eddy_int.h"

#include <librdkafka/rdkafka.h>

/** An ordered list of librdkafka properties (later entries win). */
typedef struct eddy_kprops_s {
    int n;
    char **keys;
    char **vals;
} eddy_kprops_t;

void eddy__kprops_set(eddy_kprops_t *p, const char *key, const char *val);
/** The value of key, or NULL. */
const char *eddy__kprops_get(const eddy_kprops_t *p, const char *key);
void eddy__kprops_copy(eddy_kprops_t *dst, const eddy_kprops_t *src);
void eddy__kprops_free(eddy_kprops_t *p);

/**
 * @brief Append the entries of a `kafka:` mapping (may be NULL) to p,
 *        checking each against librdkafka for the client type.
 * @param type RD_KAFKA_CONSUMER or RD_KAFKA_PRODUCER: consumer-only
 *        properties are accepted (and ignored by librdkafka with a warning)
 *        for producers, as librdkafka itself does.
 * @returns EDDY_ERR_CONFIG at the entry: "kafka: property 'bootstrap.server':
 *          No such configuration property" or "expected a mapping".
 */
eddy_err_t eddy__kprops_from_cnode(eddy_kprops_t *p, const eddy_cnode_t *map, char *errstr,
                                   size_t errstr_size);

/** @brief True when bootstrap.servers is "embedded" (or unset). */
bool eddy__kprops_embedded(const eddy_kprops_t *p);

/**
 * @brief A librdkafka conf from p; "embedded" is resolved to the embedded
 *        cluster, which is started on first use and held until a matching
 *        eddy__kafka_embedded_release() (*embedded_ref is set true when this
 *        call took a reference).
 * @returns a conf the caller owns, or NULL with the reason.
 */
rd_kafka_conf_t *eddy__kafka_conf_new(const eddy_kprops_t *p, bool *embedded_ref, char *errstr,
                                      size_t errstr_size);

/**
 * @brief Start (or share) the embedded mock cluster.
 * @param bootstrap out: its "127.0.0.1:port,..." address (up to size bytes).
 * @returns EDDY_OK or EDDY_ERR_IO. Thread-safe; reference counted.
 */
eddy_err_t eddy__kafka_embedded_acquire(char *bootstrap, size_t size, char *errstr,
                                        size_t errstr_size);
void eddy__kafka_embedded_release(void);
/** @brief One more reference to the embedded cluster if one runs (true:
 *  release it later): keeps its topics while every client is closed, as
 *  during an engine's recovery. */
bool eddy__kafka_embedded_hold(void);

/**
 * @brief Create topic on the embedded cluster (idempotent: an existing
 *        topic keeps its partitions). Must hold a reference.
 */
eddy_err_t eddy__kafka_embedded_topic(const char *topic, int partitions, char *errstr,
                                      size_t errstr_size);

/** @brief The embedded cluster while one runs (tests inject faults). */
struct rd_kafka_mock_cluster_s;
struct rd_kafka_mock_cluster_s *eddy__kafka_embedded_cluster(void);

/**
 * @brief The partition count of topic, from the cluster's metadata.
 * @param create_partitions when > 0 and the cluster is the embedded one,
 *        a missing topic is created with that many partitions.
 * @returns EDDY_OK; EDDY_ERR_NOENT when the topic does not exist;
 *          EDDY_ERR_IO when the cluster cannot be reached within timeout_ms
 *          ("kafka localhost:9092: metadata for topic 'bids': Local:
 *          Broker transport failure").
 */
eddy_err_t eddy__kafka_partitions(const eddy_kprops_t *p, const char *topic,
                                  int create_partitions, int timeout_ms, int *out, char *errstr,
                                  size_t errstr_size);

/**
 * @brief Create topic with `partitions` partitions if it does not exist
 *        (embedded: the mock cluster's call; a real broker: the Admin API,
 *        with `configs` = "k=v,k=v" topic configs, e.g.
 *        "cleanup.policy=compact", or NULL).
 * @returns EDDY_OK (also when it existed; its partition count is not
 *          checked here), or EDDY_ERR_IO with the broker's reason.
 */
eddy_err_t eddy__kafka_create_topic(const eddy_kprops_t *p, const char *topic, int partitions,
                                    const char *configs, int timeout_ms, char *errstr,
                                    size_t errstr_size);

/**
 * @brief Make sure topic exists with `partitions` partitions: created when
 *        missing (with configs, see eddy__kafka_create_topic), and waited
 *        for until metadata shows it.
 * @param more_ok a topic with more partitions will do (the extra ones
 *        unused).
 * @param kind what the topic is, for messages ("changelog").
 * @returns EDDY_OK; EDDY_ERR_CONFIG when it exists with another partition
 *          count ("kafka: changelog topic 'T' has 2 partitions, but the
 *          input has 4 ..."); EDDY_ERR_IO.
 */
eddy_err_t eddy__kafka_ensure_topic(const eddy_kprops_t *p, const char *topic, int partitions,
                                    bool more_ok, const char *configs, const char *kind,
                                    int timeout_ms, char *errstr, size_t errstr_size);

/**
 * @brief Redirect rk's main queue to its consumer queue and subscribe it
 *        to one topic.
 * @returns EDDY_OK, or EDDY_ERR_IO with "kafka: subscribe to 'T': reason".
 */
eddy_err_t eddy__kafka_subscribe(rd_kafka_t *rk, const char *topic, char *errstr,
                                 size_t errstr_size);

/**
 * Transactional input offsets (exactly_once, KIP-447). Per stream thread
 * and commit round, the engine collects the next offsets of the Kafka
 * source partitions of the thread's open tasks, with the group metadata
 * of each source's consumer (its generation), once, after the quiesce and
 * before the deliver phase: the positions the prepare then stores with
 * state. Every transaction the thread commits in that round (each Kafka
 * sink's, the repartition producer's) sends them first
 * (rd_kafka_send_offsets_to_transaction), so on a real broker the group
 * offsets move atomically with the output, and a producer whose consumer
 * lost its partitions in a rebalance (a zombie: stale generation) has its
 * transaction refused. A thread that wrote nothing in a round has no
 * transaction, and none is begun for the offsets alone: the source
 * commits them after the acknowledgement, as under at_least_once.
 * Used by one stream thread at a time (connectors/kafka_source.c).
 */
struct eddy_srcdef_s;
struct eddy_task_s;
struct eddy_plan_s;
typedef struct eddy_ktxo_s eddy_ktxo_t;
eddy_ktxo_t *eddy__ktxo_new(void);
void eddy__ktxo_free(eddy_ktxo_t *x);
/** A new round: forget the last round's offsets. */
void eddy__ktxo_reset(eddy_ktxo_t *x);
/** Add the position of one open source partition (a task's srcs[s]):
 *  the next offset as of this round, or with acked the one of the last
 *  acknowledged round (see eddy__ktxo_acked); anything but a running
 *  Kafka source with such a position is ignored. With stateful (the task
 *  has stores) a partition is left out until its task has a position
 *  stored with state (restored, or a round acknowledged since it opened):
 *  until then a restart resumes it from the group's offsets, which must
 *  not move ahead of an unacknowledged state. */
void eddy__ktxo_add(eddy_ktxo_t *x, const struct eddy_srcdef_s *def, void *state, bool stateful,
                    bool acked);
/** Whether the transactions must carry the last acknowledged offsets
 *  rather than this round's: when tasks resume from the group's offsets
 *  (no stores, so no positions stored with state) and a stream thread has
 *  more than one transactional producer (Kafka sinks, the repartition
 *  topics'). Then the first to commit would move the group past input
 *  whose output another transaction of the round has not committed yet,
 *  and a crash in between would lose that output; the acknowledged
 *  offsets still fence a stale generation. */
bool eddy__ktxo_acked(const struct eddy_plan_s *plan, bool stateful);
/** The offsets the transactions of the task's stream thread carry this
 *  round (engine/engine.c); NULL or empty: none. */
const eddy_ktxo_t *eddy__task_txn_offsets(const struct eddy_task_s *task);
/** Send x (NULL or empty: nothing) to producer rk's open transaction, one
 *  call per consumer group, each retried while retriable (10 times).
 *  NULL, or the first error (the caller destroys it). */
rd_kafka_error_t *eddy__ktxo_send(const eddy_ktxo_t *x, rd_kafka_t *rk);

/**
 * @brief Commit rk's open transaction, after sending offsets to it (NULL
 *        or empty: none), retrying each call while librdkafka says the
 *        error is retriable (10 times). On failure: false, the reason in
 *        why ("send_offsets_to_transaction: ..." or "commit_transaction:
 *        ..."), and the transaction aborted when it must be. *in_txn is
 *        false once no transaction is open; *transient (on failure)
 *        whether a restart from the last commit may clear the failure
 *        (eddy__kafka_err_transient(): a refusal for a stale consumer
 *        generation is, a fenced producer is not).
 */
bool eddy__kafka_txn_commit(rd_kafka_t *rk, const eddy_ktxo_t *offsets, bool *in_txn,
                            bool *transient, char *why, size_t why_size);
/** The first failure of a producer (sinks, repartition topics), sticky
 *  until the producer is closed. */
typedef struct {
    uint64_t failed; /* failures counted */
    bool permanent;  /* one a restart would meet again (not transient) */
    bool why_purged; /* why names records purged by an abort: a later failure replaces it */
    char why[512];   /* the first failure */
} eddy_kfail_t;
/** @brief Count a failure (transient: eddy__kafka_err_transient() of it);
 *         the first names it. */
void eddy__kfail(eddy_kfail_t *f, bool transient, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** @brief A delivery report with an error (kind: "topic", "repartition
 *         topic"): records purged while closing are no failure, records
 *         purged by an aborted transaction do not name it (its cause
 *         does). */
void eddy__kfail_delivery(eddy_kfail_t *f, rd_kafka_t *rk, const rd_kafka_message_t *m,
                          bool closing, const char *kind);
/** @brief The failure's text: why, and "(and N more failures)". */
void eddy__kfail_text(const eddy_kfail_t *f, char *buf, size_t size);
/** @brief EDDY_ERR_IO for a permanent failure, else EDDY_ERR_TRANSIENT. */
eddy_err_t eddy__kfail_err(const eddy_kfail_t *f);
/** @brief Whether a producer's failure with err (RD_KAFKA_RESP_ERR__FATAL:
 *         rk's fatal error) may clear with a new producer and a replay from
 *         the last commit: false when fenced, refused by authorization, or
 *         for a record or configuration the broker will refuse again. */
bool eddy__kafka_err_transient(rd_kafka_t *rk, rd_kafka_resp_err_t err);

/**
 * Progress of a read that may fetch records it never delivers (a
 * read_committed consumer skips the records of aborted transactions, and
 * a large one takes long to fetch through): the read moves when a record
 * is delivered past the last one, or when the consumer's fetch position
 * (eddy__kstats_fetch_pos()) changes. The two are watched apart: the
 * fetch position runs ahead to the end of the log at once while the
 * records already fetched are still being delivered, and each record
 * delivered is progress. A position below where the read started (from
 * statistics of an earlier read) is ignored. It is stalled when neither
 * moved for the limit; a read that only fetches is not.
 */
typedef struct eddy_kprogress_s {
    int64_t from;      /* where the read started */
    int64_t delivered; /* the offset after the last record delivered */
    int64_t fetched;   /* the last fetch position seen (-1: none yet) */
    int64_t since_ns;  /* when either last moved */
} eddy_kprogress_t;
/** @brief Starts watching a read at offset pos. */
void eddy__kprogress_start(eddy_kprogress_t *p, int64_t pos, int64_t now_ns);
/** @brief Notes where the read is at now_ns: delivered, the offset after
 *         the last record delivered; fetched, the consumer's fetch
 *         position (-1: unknown; the first one seen is not a move). True
 *         when neither moved for longer than limit_ns. */
bool eddy__kprogress_stalled(eddy_kprogress_t *p, int64_t delivered, int64_t fetched,
                             int64_t now_ns, int64_t limit_ns);
/** @brief The fetch position ("next_offset": the next offset the consumer
 *         fetches, past records it skipped) of topic/partition in a
 *         librdkafka statistics JSON document (statistics.interval.ms), or
 *         -1 when it holds none. */
int64_t eddy__kstats_fetch_pos(const char *json, size_t len, const char *topic, int partition);

/**
 * The shared transactional producer of one stream thread (exactly_once,
 * connectors/kafka_txn.h): its users (the thread's Kafka sinks with the
 * shared properties, the thread's repartition records) produce through rk
 * and begin the transaction with eddy__kprod_begin(); only the engine
 * commits it (eddy__ktxn_commit), once per thread and round. Used by its
 * stream thread only.
 */
typedef struct eddy_kprod_s {
    rd_kafka_t *rk;
    int thread;
    char id[200];   /* its transactional.id */
    bool embedded_ref;
    bool in_txn;    /* a transaction is open */
    bool closing;   /* purged on close: purge reports are no failures */
    eddy_kfail_t f; /* sticky until closed */
} eddy_kprod_t;
struct eddy_ktxn_s;
/** @brief Thread `thread`'s producer (of nthreads), opened (with
 *         init_transactions) on first use. NULL with the reason, and in
 *         *err (if not NULL) EDDY_ERR_TRANSIENT when worth a recovery. */
eddy_kprod_t *eddy__ktxn_producer(struct eddy_ktxn_s *k, int thread, int nthreads, eddy_err_t *err,
                                  char *errstr, size_t errstr_size);
/** @brief Producers opened from now on report every delivery, not only
 *         failures (the Kafka changelog learns its end offsets from them). */
void eddy__ktxn_all_reports(struct eddy_ktxn_s *k);
/** @brief The properties of the shared producers. */
const eddy_kprops_t *eddy__ktxn_props(const struct eddy_ktxn_s *k);
/** @brief Open p's transaction unless one is open (or p failed).
 *  @returns EDDY_OK or eddy__kfail_err() of p's failure. */
eddy_err_t eddy__kprod_begin(eddy_kprod_t *p);
/** @brief Before a producer is destroyed: a round that was not committed
 *         is not output, so an open transaction is aborted and what is
 *         queued purged (its input is replayed). */
void eddy__kprod_discard(rd_kafka_t *rk, bool in_txn);
/** @brief memory.max.bytes: a sixteenth bounds the producer queues
 *         (librdkafka takes 1 GiB by default), shared by the stream
 *         threads, unless p sets queue.buffering.max.kbytes. */
struct eddy_plan_s;
void eddy__kprod_queue_limit(rd_kafka_conf_t *conf, const eddy_kprops_t *p,
                             const struct eddy_plan_s *plan);
/** @brief A stream thread's producer of props: client.id defaults to id;
 *         transactional: transactional.id = id, then init_transactions;
 *         all_reports: every delivery reported, not only failures; the
 *         queue bounded by memory.max.bytes (eddy__kprod_queue_limit); dr
 *         and opaque its delivery callback. *embedded_ref as
 *         eddy__kafka_conf_new (released again on failure). NULL on
 *         failure, with why and *err: EDDY_ERR_CONFIG when it cannot be
 *         made (why: librdkafka's reason), else init_transactions' failure
 *         (why: "transactional producer '<id>': init_transactions: ...";
 *         EDDY_ERR_TRANSIENT when worth a recovery, else EDDY_ERR_IO). */
rd_kafka_t *eddy__kprod_open(const eddy_kprops_t *props, const struct eddy_plan_s *plan,
                             const char *id, bool transactional, bool all_reports,
                             void (*dr)(rd_kafka_t *, const rd_kafka_message_t *, void *),
                             void *opaque, bool *embedded_ref, eddy_err_t *err, char *why,
                             size_t why_size);
/** @brief The Kafka sink's producer defaults (linger.ms 5, idempotence,
 *         murmur2_random, ...), which the shared producers take too. */
void eddy__kprops_producer_defaults(eddy_kprops_t *p);
/** @brief Whether a and b give every property the same value. */
bool eddy__kprops_same(const eddy_kprops_t *a, const eddy_kprops_t *b);
/** @brief Transactional calls of this process so far, for tests: begun
 *         and committed transactions, offset sets sent to transactions
 *         (one per consumer group and commit). */
void eddy__ktxn_counts(uint64_t *begins, uint64_t *commits, uint64_t *offsets_sent);
/** Count one begin_transaction, one offset set sent (the producers and
 *  eddy__ktxo_send do). */
void eddy__ktxn_count_begin(void);
void eddy__ktxn_count_offsets(void);

/** @brief The Kafka changelog's delivery report of message m (a no-op
 *         for messages that are not the changelog's: no opaque). */
void eddy__kcl_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m);

/** @brief Log callback that forwards librdkafka's log lines to stderr with
 *         the client name; warnings and worse only. */
void eddy__kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif /* EDDY_CONNECTORS_KAFKA_H */
