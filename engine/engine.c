/*
 * The runtime: tasks, stream threads, the key_by exchange and watermarks.
 *
 * A task owns one partition of every source (partition = task id), one
 * instance of every plan node, and an inbox. Stream threads run tasks
 * round-robin (task i on thread i % threads); tasks share no mutable state,
 * so operators take no locks. A task step polls each of its source
 * partitions for one batch and pushes it depth-first through the nodes;
 * per-batch memory comes from the task arena, reset after the step.
 *
 * key_by is an exchange: the record is deep-copied into an outgoing message
 * for the task that owns its key (hash % tasks), and the nodes behind the
 * exchange run on that task when it drains its inbox. Outgoing messages are
 * flushed when full and at the end of every step, so a batch never waits
 * to fill. Records a task sends itself skip the copy and the inbox (see
 * run_local()) unless some of its own messages for that node are queued.
 *
 * Watermarks: per source partition, max event time minus the allowed
 * out-of-orderness; an ended partition is +inf; a partition idle longer
 * than its idle timeout is left out of the minimum. A node's input
 * watermark is the minimum of its inputs'; an exchange forwards its
 * watermark to every task in the same FIFO as its data, and the receiving
 * side takes the minimum over senders. Operators see on_watermark() when
 * their input watermark advances, after all data before it.
 *
 * Termination: the engine is finished when every task's bounded sources
 * have ended and delivered their final (+inf) watermark, and no exchange
 * message is pending (the pending count is raised before a message is
 * queued and lowered only after everything it caused was queued).
 */
#include "plan.h"
#include "connectors/kafka.h"
#include "connectors/kafka_changelog.h"
#include "connectors/kafka_repartition.h"
#include "connectors/kafka_txn.h"
#include "repartition.h"
#include "fault.h"
#include "state/tstate.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- histogram */

/* Log-linear latency histogram: 8 sub-buckets per power of two (< 13%
 * error), 64 powers: covers 1 ns .. centuries. One writer (the task's
 * thread); the counters are relaxed atomics because eddy_engine_latency_ns
 * (MCP metrics, from an HTTP connection thread) reads them while the
 * stream threads count (ThreadSanitizer: eddy__task_latency against
 * eddy_engine_latency_ns). */
#define HIST_SUB 8
#define HIST_BUCKETS (64 * HIST_SUB)

typedef struct {
    _Atomic uint64_t counts[HIST_BUCKETS];
    _Atomic uint64_t total;
} hist_t;

static void hist_bump(_Atomic uint64_t *c) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static int hist_index(uint64_t v) {
    if (v < HIST_SUB)
        return (int)v;
    int p = 63 - __builtin_clzll(v);  /* >= 3 */
    int sub = (int)((v >> (p - 3)) & (HIST_SUB - 1));
    return (p - 2) * HIST_SUB + sub;
}
static uint64_t hist_value(int idx) {
    if (idx < HIST_SUB)
        return (uint64_t)idx;
    int p = idx / HIST_SUB + 2;
    int sub = idx % HIST_SUB;
    return ((uint64_t)(HIST_SUB + sub) << (p - 3)) + ((uint64_t)1 << (p - 3)) / 2;
}

/* ------------------------------------------------------------- messages */

typedef struct msg_s {
    struct msg_s *next;
    int node;        /* the exchange node; the receiver runs its downstream */
    int sender;
    bool is_wm;
    bool idle;       /* with is_wm: the sender has no active input */
    int64_t wm;
    int64_t ingest_ns;
    int64_t bytes;   /* charged to the exchange while queued */
    eddy_batch_t batch;
    eddy_arena_t arena;
} msg_t;

typedef struct tsrc_s {
    const eddy_srcdef_t *def;
    void *state;
    bool ended;
    int64_t max_ts;
    int64_t last_active_ns;
    eddy_batch_t **batches;   /* [nstreams]; NULL where nobody reads */
} tsrc_t;

typedef struct thread_s thread_t;

struct eddy_task_s {
    /* fixed for the engine's life (eddy_engine_push reads thr without a
     * lock): task_close() clears only from ops to TASK_PLAIN_END */
    int id;
    eddy_engine_t *eng;
    thread_t *thr;
    eddy_op_t *ops;           /* [nnodes] */
    tsrc_t *srcs;             /* [nsources]; def NULL when no such partition */
    int64_t **xwm;            /* [nnodes][ntasks] for exchange nodes */
    bool **xidle;             /* [nnodes][ntasks] sender idle */
    bool *node_idle;          /* [nnodes] all inputs idle */
    bool *src_idle;           /* [nsources] */
    msg_t ***xout;            /* [nnodes][ntasks] outgoing, being filled */
    eddy_batch_t *xlocal;     /* [nnodes] records this task sends itself */
    int *xself;               /* [nnodes] its messages to itself in the inbox */
    int64_t *node_wm;         /* [nnodes] input watermark */
    int64_t *src_wm;          /* [nsources] */
    pthread_mutex_t lock;     /* inbox */
    msg_t *head, *tail;
    eddy_arena_t arena;
    int64_t ingest_ns;
    int64_t throttle_poll_ns; /* memory governor: the last source poll while slowed */
    bool sources_done;        /* counted in eng->tasks_done */
    bool wm_resend;           /* opened: its exchanges' watermarks go out once */
    eddy_tstate_t *ts;        /* state; NULL without stores */
    struct xrt_s *xr;         /* repartition topics: NULL when in-process */
    eddy_buf_t posbuf;        /* positions blob being built */
    uint64_t n_in, n_out, n_dead, n_late;
    /* Read without the tasks lock (instances, MCP, stats, tests): keep
     * them last. task_close() clears the fields above with memset and
     * stores these one by one (TASK_PLAIN_END). */
    atomic_bool active;       /* opened; false until a group assigns it */
    atomic_bool opening;      /* assigned here, its state being restored */
    _Atomic int64_t wm_pub;   /* min node watermark, for stats */
    _Atomic int64_t maxts_pub;
};
#define TASK_PLAIN_START offsetof(eddy_task_t, ops)
#define TASK_PLAIN_END offsetof(eddy_task_t, active)

struct thread_s {
    int id;
    eddy_engine_t *eng;
    pthread_t tid;
    eddy_task_t **tasks;
    int ntasks;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool wake;
    uint64_t rounds_done;
    eddy_krp_msg_t *xmsgs;    /* repartition topics: one poll's messages */
    eddy_ktxo_t *txo;         /* exactly_once: this round's input offsets */
    uint64_t txn_round;       /* the last round whose transaction it committed */
};

struct eddy_engine_s {
    eddy_plan_t *plan;
    eddy_topology_t *topo;
    eddy_task_t *tasks;
    int ntasks;
    thread_t *threads;
    int nthreads;
    /* atomic: eddy_engine_stats() reads it from any thread (mcp-serve's
     * watcher thread calls it while main is still in eddy_engine_start(),
     * and recovery_main writes it) */
    atomic_bool started;
    hist_t *hist;              /* latency per task (by id): not in eddy_task_t,
                                * which task_close clears while readers look */
    atomic_int stop;
    atomic_int finished;
    atomic_int tasks_done;
    atomic_long pending;
    atomic_int error;          /* eddy_err_t that stopped the engine */
    char errmsg[512];
    pthread_mutex_t lock;      /* finished cond, stderr side outputs */
    pthread_cond_t cond;
    atomic_ullong events_in, events_out, dead, late;
    eddy_schema_t *dl_schema;  /* dead-letter record schema */
    bool *reach;               /* [from * nnodes + to]: to is downstream of from */
    int64_t *xceil;            /* [nnodes] exchange: highest restored consumer watermark */
    eddy_state_env_t *senv;
    pthread_barrier_t barrier;
    atomic_ullong round_req;
    atomic_int paused;
    atomic_int round_err;
    atomic_bool round_updates; /* a task prepared store updates this round */
    bool round_final;
    uint64_t round_id;
    int64_t last_round_ns;
    atomic_ullong commits;
    /* Dynamic tasks (a Kafka source's group assignment): tasks open and
     * close inside commit rounds, asked for by eddy__engine_assign(). */
    bool dynamic;
    pthread_rwlock_t tasks_lock;  /* write: opening/closing; read: queries */
    pthread_mutex_t asg_lock;
    pthread_cond_t asg_cond;
    int *asg_open, nopen, *asg_close, nclose;
    uint64_t asg_req, asg_done;
    atomic_int asg_pending;
    bool threads_exited;
    bool opened_all;              /* eddy__engine_open_all(): never starts */
    bool txn_fenced;              /* txn_ready fenced the ids of TXN_THREADS */
    bool roll_forward;            /* may_roll_forward(), and the directory agrees */
    bool has_exchange;            /* the plan has a key_by */
    atomic_int nactive;           /* open tasks */
    _Atomic int64_t group_gen;    /* consumer group generation of the assignment; 0: none */
    int64_t gated_since_ns;       /* thread 0: sources held back since */
    bool gate_warned;
    /* repartition topics (plan->krp): exchange index of each node (-1:
     * none), node of each exchange */
    int *xidx, *xnode, nx;
    /* memory (docs/memory.md): key_by messages queued, bounded by
     * xbudget (sources wait); the heap against memory.max.bytes, looked
     * at by thread 0 every MEM_CHECK_NS, slows input while over */
    atomic_llong xbytes, xpeak;
    int64_t xbudget;
    atomic_ullong xwaits;
    int64_t mem_budget;
    atomic_llong heap, heap_peak;
    atomic_int throttled;
    atomic_ullong throttle_events, throttled_ns;
    int64_t mem_checked_ns, throttle_since_ns, trimmed_ns;
    int64_t mem_checked_cpu_ns, mem_check_cpu_ns; /* process CPU then, and to wait for */
    int64_t trim_cpu_after_ns;    /* process CPU time before the next early trim */
    atomic_ullong early_trims;
    atomic_ullong heap_checks, heap_check_ns;
    bool mem_warned;
    /* In-process recovery (docs/reliability.md): a transient error (a
     * Kafka sink's or repartition topic's delivery or transaction) stops
     * the stream threads as any error does; then, instead of the engine
     * ending, the recovery thread closes every task without committing,
     * leaves and rejoins the consumer group, and reopens the tasks from
     * their last acknowledged commit, as a restarted process would. */
    atomic_bool recovering;       /* the current error is being recovered */
    atomic_int host_stop;         /* eddy_engine_stop(): no more recoveries */
    bool replayable;              /* every source can be read again from a position */
    pthread_t rec_tid;
    bool rec_started;             /* rec_tid to join */
    bool rec_quit;                /* eddy_engine_destroy(): the recovery thread ends */
    bool srcs_starting;           /* under lock: eddy_engine_start is starting the sources */
    atomic_int rec_streak;        /* recoveries without a minute of rounds since */
    int64_t rec_last_ns;
    atomic_ullong recoveries;
};

/* recoveries in a row with no acknowledged round between them before the
 * error stops the engine; the wait before the n-th is 2^(n-1) s */
#define RECOVERY_MAX_STREAK 6

#define MEM_CHECK_NS (10 * 1000000LL)
/* looks at the heap cost at most 1/MEM_CHECK_SHARE of the process's CPU
 * time: one is taken once the process has used MEM_CHECK_SHARE times the
 * last look's CPU time since it (mallinfo2 walks every free chunk; a heap
 * with many, as after many keys went idle, made a look cost ~10 ms at one
 * every 10 ms). CPU time, not wall time: on a loaded machine the stream
 * thread gets a fraction of a CPU, and wall-time spacing let looks take
 * ~8% of it. */
#define MEM_CHECK_SHARE 100
/* trims before the budget is reached: at most this often */
#define MEM_TRIM_NS (10 * 1000000000LL)
/* while slowed, each task polls its sources at most this often */
#define MEM_THROTTLE_POLL_NS (20 * 1000000LL)
/* without memory.max.bytes the exchange is still bounded */
#define XBUDGET_DEFAULT (256LL * 1024 * 1024)

/* ------------------------------------------------------ task services */

eddy_arena_t *eddy__task_arena(eddy_task_t *task) { return &task->arena; }
int eddy__task_id(const eddy_task_t *task) { return task->id; }
int eddy__task_count(const eddy_task_t *task) { return task->eng->ntasks; }
int eddy__task_thread(const eddy_task_t *task) { return task->thr->id; }
int eddy__task_threads(const eddy_task_t *task) { return task->eng->nthreads; }
const eddy_ktxo_t *eddy__task_txn_offsets(const eddy_task_t *task) { return task->thr->txo; }
int64_t eddy__task_ingest_ns(const eddy_task_t *task) { return task->ingest_ns; }
void eddy__task_count_out(eddy_task_t *task, uint64_t n) { task->n_out += n; }
void eddy__task_latency(eddy_task_t *task, int64_t ns) {
    hist_t *h = &task->eng->hist[task->id];
    hist_bump(&h->counts[hist_index(ns < 0 ? 0 : (uint64_t)ns)]);
    hist_bump(&h->total);
}

/* EDDY_ERR_TRANSIENT (a Kafka delivery or transaction failure that a
 * restart from the last acknowledged commit clears) is recovered in
 * process when every source can replay and the streak allows; decided
 * with the error, so that eddy_engine_poll() never reports an error that
 * is being recovered. */
static void engine_fail(eddy_engine_t *eng, eddy_err_t err, const char *fmt, ...) {
    int expected = 0;
    if (atomic_compare_exchange_strong(&eng->error, &expected, (int)err)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eng->errmsg, sizeof(eng->errmsg), fmt, ap);
        va_end(ap);
        if (err == EDDY_ERR_TRANSIENT && eng->replayable &&
            atomic_load(&eng->rec_streak) < RECOVERY_MAX_STREAK && !atomic_load(&eng->host_stop))
            atomic_store(&eng->recovering, true);
    }
    atomic_store(&eng->stop, 1);
}

static void thread_wake(thread_t *thr) {
    pthread_mutex_lock(&thr->lock);
    thr->wake = true;
    pthread_cond_signal(&thr->cond);
    pthread_mutex_unlock(&thr->lock);
}

/* -------------------------------------------------------- running nodes */

static void run_node(eddy_task_t *task, int id, int from, const eddy_batch_t *in);

static void run_down(eddy_task_t *task, const eddy_node_t *n, const eddy_batch_t *out) {
    if (!out->n)
        return;
    for (int i = 0; i < n->ndown; i++)
        run_node(task, n->down[i], n->id, out);
}

static void run_local(eddy_task_t *task, const eddy_node_t *n);

/* from: the upstream node id (or -1-source) the batch comes from; a
 * two-input node (process_side) is told its side: up[0] is the left. */
static void run_node(eddy_task_t *task, int id, int from, const eddy_batch_t *in) {
    eddy_op_t *op = &task->ops[id];
    const eddy_node_t *n = op->node;
    if (n->ops->is_sink || n->ops->is_exchange) {
        eddy_err_t err = n->ops->process(op, in, NULL);
        if (err)
            engine_fail(task->eng, err, "%s: %s", n->name, eddy_err2str(err));
        if (n->ops->is_exchange)
            run_local(task, n);
        return;
    }
    op->out.n = 0;
    op->out.arena = &task->arena;
    eddy_err_t err = n->ops->process_side
                         ? n->ops->process_side(op, n->up[0] == from ? 0 : 1, in, &op->out)
                         : n->ops->process(op, in, &op->out);
    if (err) {
        engine_fail(task->eng, err, "%s: %s", n->name, eddy_err2str(err));
        return;
    }
    run_down(task, n, &op->out);
}

/* ------------------------------------------------------------ exchange */

static msg_t *msg_new(int node, int sender, const eddy_schema_t *schema, uint32_t cap) {
    msg_t *m = eddy_calloc(1, sizeof(*m));
    m->node = node;
    m->sender = sender;
    eddy_arena_init(&m->arena, 32 * 1024);
    eddy_batch_init(&m->batch, schema, cap, &m->arena);
    return m;
}

static void msg_free(msg_t *m) {
    eddy_batch_free(&m->batch);
    eddy_arena_free(&m->arena);
    eddy_free(m);
}

static void inbox_push(eddy_task_t *dst, msg_t *m) {
    if (eddy_unlikely(!dst->active)) {
        /* A task this instance does not own (another member of the Kafka
         * group has its partition): watermarks are moot, data cannot be
         * delivered without a repartition topic. */
        if (!m->is_wm)
            engine_fail(dst->eng, EDDY_ERR_UNSUPPORTED,
                        "key_by: task %d (input partition %d) is not assigned to this "
                        "instance; key_by across instances of one consumer group needs "
                        "repartition topics: settings: {repartition: kafka} (or auto)",
                        dst->id, dst->id);
        msg_free(m);
        return;
    }
    if (m->sender == dst->id)
        dst->xself[m->node]++; /* only the owning thread sends to itself */
    atomic_fetch_add(&dst->eng->pending, 1);
    if (!m->is_wm) {
        m->bytes = (int64_t)(sizeof(*m) + m->arena.total_bytes + sizeof(eddy_rec_t) * m->batch.cap);
        int64_t now = atomic_fetch_add(&dst->eng->xbytes, m->bytes) + m->bytes;
        int64_t peak = atomic_load_explicit(&dst->eng->xpeak, memory_order_relaxed);
        while (now > peak && !atomic_compare_exchange_weak(&dst->eng->xpeak, &peak, now))
            ;
    }
    pthread_mutex_lock(&dst->lock);
    if (dst->tail)
        dst->tail->next = m;
    else
        dst->head = m;
    dst->tail = m;
    pthread_mutex_unlock(&dst->lock);
    thread_wake(dst->thr);
}

static void copy_value(eddy_arena_t *a, eddy_value_t *dst, const eddy_value_t *src) {
    *dst = *src;
    if ((src->type == EDDY_TYPE_STRING || src->type == EDDY_TYPE_BYTES) && src->len)
        dst->u.s = eddy_arena_strndup(a, src->u.s, src->len);
}

/* Could a consumer of exchange n send rec to its late output when it gets
 * there? The receiving task's watermark for n's consumers is at most this
 * task's watermark for n (it takes the minimum over all senders, and no
 * sender is left out of it: compile.c prunes nothing when a source can be
 * idle), unless one was restored higher (xceil). */
static bool may_be_late(eddy_task_t *task, const eddy_node_t *n, const eddy_rec_t *rec) {
    eddy_engine_t *eng = task->eng;
    int64_t wm = task->node_wm[n->id];
    if (eng->xceil[n->id] > wm)
        wm = eng->xceil[n->id];
    for (int i = 0; i < n->ndown; i++) {
        const eddy_node_t *c = &eng->plan->nodes[n->down[i]];
        if (c->ops->may_be_late && c->ops->may_be_late(c, rec->ts_ms, wm))
            return true;
    }
    return false;
}

static void xr_send(eddy_task_t *task, const eddy_node_t *node, int dest,
                    const eddy_schema_t *schema, const eddy_rec_t *rec);
static void xr_wm(eddy_task_t *task, int node, int64_t wm, bool idle);
static void xr_flush(eddy_task_t *task, int x);

void eddy__task_exchange(eddy_task_t *task, const eddy_node_t *node, int dest,
                         const eddy_schema_t *schema, const eddy_rec_t *rec) {
    if (task->xr && dest != task->id) {
        xr_send(task, node, dest, schema, rec);
        return;
    }
    msg_t **slot = &task->xout[node->id][dest];
    if (dest == task->id && !*slot && !task->xself[node->id]) {
        /* To itself, with nothing of ours queued before it for this node:
         * no copy. The values stay where the sender's batch keeps them,
         * valid until run_local() (before the sender's process() call
         * returns); only the key is the caller's scratch. */
        eddy_batch_t *b = &task->xlocal[node->id];
        eddy_rec_t *r = eddy_batch_push(b);
        *r = *rec;
        if (rec->key_len)
            r->key = eddy_arena_strndup(&task->arena, rec->key, rec->key_len);
        return;
    }
    if (!*slot) {
        *slot = msg_new(node->id, task->id, schema, (uint32_t)task->eng->plan->settings.batch_size);
        (*slot)->ingest_ns = task->ingest_ns;
    }
    msg_t *m = *slot;
    eddy_rec_t *r = eddy_batch_push(&m->batch);
    *r = *rec;
    int nf = schema->nfields;
    r->vals = eddy_arena_alloc(&m->arena, sizeof(eddy_value_t) * (size_t)nf);
    const bool *keep = node->xkeep;
    if (keep && may_be_late(task, node, rec))
        keep = NULL; /* the late output gets the whole record */
    for (int i = 0; i < nf; i++) {
        if (keep && !keep[i])
            r->vals[i] = (eddy_value_t){.type = EDDY_TYPE_NULL};
        else
            copy_value(&m->arena, &r->vals[i], &rec->vals[i]);
    }
    if (rec->key_len)
        r->key = eddy_arena_strndup(&m->arena, rec->key, rec->key_len);
    if (m->batch.n >= (uint32_t)task->eng->plan->settings.batch_size) {
        *slot = NULL;
        inbox_push(&task->eng->tasks[dest], m);
    }
}

/* The records an exchange node's process() sent to its own task run
 * downstream now, as a message from this task would when drained: in
 * order with everything else this task sent on the node (eddy__task_exchange
 * takes this path only when nothing of ours is queued for the node), and
 * while the sender's batch is still alive. Re-entrant: downstream nodes may
 * send to other exchanges (never to this one: the graph has no cycles). */
static void run_local(eddy_task_t *task, const eddy_node_t *n) {
    eddy_batch_t *b = &task->xlocal[n->id];
    if (!b->n)
        return;
    run_down(task, n, b);
    b->n = 0;
}

static void flush_exchanges(eddy_task_t *task) {
    eddy_engine_t *eng = task->eng;
    if (task->xr)
        xr_flush(task, -1);
    for (int n = 0; n < eng->plan->nnodes; n++) {
        if (!task->xout[n])
            continue;
        for (int d = 0; d < eng->ntasks; d++) {
            msg_t *m = task->xout[n][d];
            if (m) {
                task->xout[n][d] = NULL;
                inbox_push(&eng->tasks[d], m);
            }
        }
    }
}

static void broadcast_wm(eddy_task_t *task, int node, int64_t wm, bool idle) {
    eddy_engine_t *eng = task->eng;
    if (task->xr) {
        xr_wm(task, node, wm, idle);
        return;
    }
    /* Data first: a watermark must never overtake records before it. */
    for (int d = 0; d < eng->ntasks; d++) {
        msg_t *m = task->xout[node][d];
        if (m) {
            task->xout[node][d] = NULL;
            inbox_push(&eng->tasks[d], m);
        }
        m = eddy_calloc(1, sizeof(*m));
        m->node = node;
        m->sender = task->id;
        m->is_wm = true;
        m->idle = idle;
        m->wm = wm;
        inbox_push(&eng->tasks[d], m);
    }
}

/* ------------------------------------------------------------ watermarks */

/* Watermark status of one input: its watermark, or idle (left out of the
 * minimum). When every input of a node is idle the node keeps its
 * watermark and is idle itself, as Flink's idleness does: an idle input
 * never drags the minimum down, and all-idle never jumps to +inf. */
static void update_watermarks(eddy_task_t *task) {
    eddy_engine_t *eng = task->eng;
    eddy_plan_t *p = eng->plan;
    int64_t now = 0;
    for (int s = 0; s < p->nsources; s++) {
        tsrc_t *ts = &task->srcs[s];
        task->src_idle[s] = false;
        if (!ts->def) {
            task->src_wm[s] = EDDY_WM_MAX; /* no such partition: never holds back */
            continue;
        }
        if (ts->ended) {
            task->src_wm[s] = EDDY_WM_MAX;
            continue;
        }
        if (ts->def->idle_timeout_ms > 0) {
            if (!now)
                now = eddy__now_ns();
            if (now - ts->last_active_ns > ts->def->idle_timeout_ms * 1000000LL) {
                task->src_idle[s] = true;
                continue;
            }
        }
        if (ts->max_ts != EDDY_WM_MIN) {
            int64_t w = ts->max_ts - ts->def->max_ooo_ms;
            if (w > task->src_wm[s])
                task->src_wm[s] = w;
        }
    }
    int64_t task_min = EDDY_WM_MAX;
    for (int k = 0; k < p->nnodes; k++) {
        int id = p->topo_order[k];
        const eddy_node_t *n = &p->nodes[id];
        int64_t in = EDDY_WM_MAX;
        bool active = false;
        for (int u = 0; u < n->nup; u++) {
            int up = n->up[u];
            if (up < 0) {
                if (!task->src_idle[-1 - up]) {
                    active = true;
                    if (task->src_wm[-1 - up] < in)
                        in = task->src_wm[-1 - up];
                }
            } else if (p->nodes[up].ops->is_exchange) {
                for (int t = 0; t < eng->ntasks; t++) {
                    if (task->xidle[up][t])
                        continue;
                    active = true;
                    if (task->xwm[up][t] < in)
                        in = task->xwm[up][t];
                }
            } else if (!task->node_idle[up]) {
                active = true;
                if (task->node_wm[up] < in)
                    in = task->node_wm[up];
            }
        }
        if (n->wm_with1) { /* a temporal lookup: its table's watermark too */
            int w = n->wm_with1 - 1;
            if (!task->node_idle[w]) {
                active = true;
                if (task->node_wm[w] < in)
                    in = task->node_wm[w];
            }
        }
        bool idle = n->nup > 0 && !active;
        if (idle)
            in = task->node_wm[id];
        bool idle_changed = idle != task->node_idle[id];
        task->node_idle[id] = idle;
        if (!idle && in < task_min)
            task_min = in;
        if (n->ops->is_exchange) {
            if (in > task->node_wm[id] || idle_changed || task->wm_resend) {
                if (in > task->node_wm[id])
                    task->node_wm[id] = in;
                task->ops[id].wm_ms = task->node_wm[id];
                broadcast_wm(task, id, task->node_wm[id], idle);
            }
            continue;
        }
        if (in <= task->node_wm[id])
            continue;
        task->node_wm[id] = in;
        eddy_op_t *op = &task->ops[id];
        op->wm_ms = in;
        if (n->ops->on_watermark) {
            if (!n->ops->is_sink) {
                op->out.n = 0;
                op->out.arena = &task->arena;
            }
            eddy_err_t err = n->ops->on_watermark(op, in, n->ops->is_sink ? NULL : &op->out);
            if (err)
                engine_fail(eng, err, "%s: %s", n->name, eddy_err2str(err));
            else if (!n->ops->is_sink)
                run_down(task, n, &op->out);
        }
    }
    task->wm_resend = false;
    atomic_store_explicit(&task->wm_pub, task_min, memory_order_relaxed);
}

/* ------------------------------------------------------- side outputs */

static void side_to_stderr(eddy_engine_t *eng, eddy_buf_t *line) {
    eddy_buf_putc(line, '\n');
    pthread_mutex_lock(&eng->lock);
    fwrite(line->p, 1, line->len, stderr);
    pthread_mutex_unlock(&eng->lock);
}

void eddy__json_dead_letter(eddy_buf_t *out, const char *reason, const char *source,
                            int32_t partition, int64_t offset, const char *raw, size_t raw_len,
                            size_t max_raw);
void eddy__json_encode_row(eddy_buf_t *out, const eddy_schema_t *schema,
                           const eddy_value_t *vals);

#define DL_MAX_RAW (64 * 1024)

void eddy__task_dead_letter(eddy_task_t *task, const char *reason, const char *source,
                            int32_t partition, int64_t offset, const char *raw, size_t raw_len) {
    eddy_engine_t *eng = task->eng;
    task->n_dead++;
    int sink = eng->plan->dead_letter_node;
    if (sink < 0) {
        eddy_buf_t line = {0};
        eddy_buf_printf(&line, "eddy: dead letter: ");
        eddy__json_dead_letter(&line, reason, source, partition, offset, raw, raw_len, DL_MAX_RAW);
        side_to_stderr(eng, &line);
        eddy_buf_free(&line);
        return;
    }
    eddy_value_t v[5];
    size_t rl = raw_len > DL_MAX_RAW ? DL_MAX_RAW : raw_len;
    v[0] = (eddy_value_t){.u.s = reason, .len = (uint32_t)strlen(reason), .type = EDDY_TYPE_STRING};
    v[1] = (eddy_value_t){.u.s = source, .len = (uint32_t)strlen(source), .type = EDDY_TYPE_STRING};
    v[2] = (eddy_value_t){.u.i = partition, .type = EDDY_TYPE_INT};
    v[3] = (eddy_value_t){.u.i = offset, .type = EDDY_TYPE_INT};
    v[4] = (eddy_value_t){.u.s = raw ? raw : "", .len = (uint32_t)rl, .type = EDDY_TYPE_BYTES};
    eddy_rec_t r = {.vals = v, .partition = partition, .offset = offset, .ts_ms = 0};
    eddy_batch_t b = {.schema = eng->dl_schema, .recs = &r, .n = 1, .cap = 1,
                      .arena = &task->arena};
    run_node(task, sink, -1, &b);
}

eddy_op_t *eddy__task_op(eddy_task_t *task, int node) { return &task->ops[node]; }

void eddy__task_late(eddy_task_t *task, const eddy_node_t *node, const eddy_schema_t *schema,
                     const eddy_rec_t *rec) {
    eddy_engine_t *eng = task->eng;
    task->n_late++;
    int sink = eng->plan->late_node;
    if (sink < 0) {
        eddy_buf_t line = {0};
        eddy_buf_printf(&line,
                        "eddy: late record at %s (event time %lld, watermark %lld, partition "
                        "%d, offset %lld): ",
                        node->name, (long long)rec->ts_ms, (long long)task->ops[node->id].wm_ms,
                        rec->partition, (long long)rec->offset);
        eddy__json_encode_row(&line, schema, rec->vals);
        side_to_stderr(eng, &line);
        eddy_buf_free(&line);
        return;
    }
    eddy_batch_t b = {.schema = schema, .recs = (eddy_rec_t *)rec, .n = 1, .cap = 1,
                      .arena = &task->arena};
    run_node(task, sink, -1, &b);
}

/* ------------------------------------------------- repartition topics */

/*
 * settings.repartition: kafka (docs/kafka.md, "Repartition topics"). An
 * exchange writes a record for another task to partition `dest` of its
 * topic instead of that task's inbox, and every task reads its own
 * partition of every exchange topic (its stream thread's consumer), so the
 * receiving task may run on another instance of the group. Records a task
 * routes to itself stay in-process (run_local()).
 *
 * Watermarks: a sender writes a marker (its watermark for the exchange and
 * its idle flag) to every other partition when it changes, at most every
 * XR_WM_INTERVAL_NS (the final +inf at once), and every XR_HEARTBEAT_NS in
 * any case; a receiver takes the minimum over all tasks (the task count is
 * the source's partition count), as it does in-process. A marker follows
 * the data before it in the partition, so it never overtakes it.
 *
 * Replays: each record carries (sender, gen, seq), seq counting per
 * destination; the sender's last seq per destination and the receiver's
 * highest seq applied per sender are in the task's committed state (the
 * positions blob, same RocksDB batch as the stores), with the receiver's
 * offset. A sender that replays after a crash writes the same records with
 * the same seqs, and receivers drop what they applied already.
 */

#define XR_WM_INTERVAL_NS (50 * 1000000LL)
#define XR_HEARTBEAT_NS (1000 * 1000000LL)
#define XR_POLL_MAX 4096
/* A bundle (the records of one task for one other task, repartition.h)
 * goes out at this size, or when the batch that made it is done. */
#define XR_BUNDLE_BYTES (64 * 1024)
#define XR_ENTRY 0xFFFE

typedef struct xrt_s {
    uint32_t gen;            /* this task's state id as a sender */
    uint64_t *sent;          /* [nx * ntasks] last seq sent to each task */
    eddy_xr_seen_t *seen;    /* [nx * ntasks] per sender: highest applied */
    int64_t *rnext;          /* [nx] next offset of our partition (-1: unknown) */
    int64_t *wm_sent;        /* [nx] the last marker's watermark, flags, time */
    uint8_t *flags_sent;
    int64_t *sent_ns;
    bool *ended;             /* [nx * ntasks] the sender said it sends no more (this run) */
    bool assigned;           /* our partitions are assigned to the thread's consumer */
    uint64_t dups;           /* replayed records dropped */
    eddy_buf_t buf;
    eddy_batch_t *in;        /* [nx] received records being run */
    eddy_buf_t *bund;        /* [nx * ntasks] records not sent yet, one bundle each */
    uint64_t *bfirst;        /* [nx * ntasks] the bundle's first seq */
    uint32_t *bcount;        /* [nx * ntasks] its records */
    eddy_buf_t scratch;
} xrt_t;

static void xr_fail(eddy_task_t *task, int x, eddy_err_t err, const char *what) {
    engine_fail(task->eng, err, "task %d: repartition topic %s: %s", task->id,
                eddy__krp_topic(task->eng->plan->krp, x), what);
}

/* The bundle of exchange x for task dest goes out (if it holds records). */
static void xr_flush_one(eddy_task_t *task, int x, int dest) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    size_t i = (size_t)x * (size_t)eng->ntasks + (size_t)dest;
    if (!xr->bcount[i])
        return;
    xr->buf.len = 0;
    eddy__xr_encode_bundle(&xr->buf, task->id, xr->gen, xr->bfirst[i], xr->bcount[i],
                           xr->bund[i].p, xr->bund[i].len);
    xr->bund[i].len = 0;
    xr->bcount[i] = 0;
    eddy_err_t err = eddy__krp_send(eng->plan->krp, task->thr->id, x, dest, xr->buf.p,
                                    xr->buf.len);
    if (err)
        xr_fail(task, x, err, "cannot write (see the commit's error)");
}

/* Every bundle of exchange x (-1: of every exchange) goes out. */
static void xr_flush(eddy_task_t *task, int x) {
    int nt = task->eng->ntasks;
    for (int e = x < 0 ? 0 : x; e < (x < 0 ? task->eng->nx : x + 1); e++)
        for (int d = 0; d < nt; d++)
            xr_flush_one(task, e, d);
}

static void xr_send(eddy_task_t *task, const eddy_node_t *node, int dest,
                    const eddy_schema_t *schema, const eddy_rec_t *rec) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    int x = eng->xidx[node->id];
    const bool *keep = node->xkeep;
    if (keep && may_be_late(task, node, rec))
        keep = NULL; /* the late output gets the whole record */
    size_t i = (size_t)x * (size_t)eng->ntasks + (size_t)dest;
    uint64_t seq = ++xr->sent[i];
    if (!xr->bcount[i]++)
        xr->bfirst[i] = seq;
    eddy__xr_encode_bundle_rec(&xr->bund[i], &xr->scratch, rec, schema, keep);
    if (xr->bund[i].len >= XR_BUNDLE_BYTES)
        xr_flush_one(task, x, dest);
}

static bool xr_inputs_ended(const eddy_task_t *task, int upto);

/* This task sends nothing more on exchange x in this run: its sources
 * ended, and so did every exchange before x (bounded input). */
static bool xr_sender_ended(const eddy_task_t *task, int x) {
    for (int s = 0; s < task->eng->plan->nsources; s++)
        if (task->srcs[s].def && !task->srcs[s].ended)
            return false;
    return xr_inputs_ended(task, x);
}

/* Markers of exchange x to every other task, when due. */
static void xr_markers(eddy_task_t *task, int x, int64_t now) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    int node = eng->xnode[x];
    int64_t wm = task->node_wm[node];
    bool ended = xr_sender_ended(task, x);
    uint8_t flags = (task->node_idle[node] ? EDDY_XR_IDLE : 0) | (ended ? EDDY_XR_ENDED : 0);
    xr->ended[(size_t)x * (size_t)eng->ntasks + (size_t)task->id] = ended;
    bool changed = wm != xr->wm_sent[x] || flags != xr->flags_sent[x];
    int64_t age = now - xr->sent_ns[x];
    if (!(changed && (ended || wm == EDDY_WM_MAX || age >= XR_WM_INTERVAL_NS)) &&
        age < XR_HEARTBEAT_NS)
        return;
    xr->wm_sent[x] = wm;
    xr->flags_sent[x] = flags;
    xr->sent_ns[x] = now;
    for (int d = 0; d < eng->ntasks; d++) {
        if (d == task->id)
            continue;
        xr_flush_one(task, x, d); /* the data before it first */
        xr->buf.len = 0;
        eddy__xr_encode_wm(&xr->buf, task->id, xr->gen, wm, flags,
                           xr->sent[(size_t)x * (size_t)eng->ntasks + (size_t)d]);
        eddy_err_t err = eddy__krp_send(eng->plan->krp, task->thr->id, x, d, xr->buf.p,
                                        xr->buf.len);
        if (err) {
            xr_fail(task, x, err, "cannot write a watermark (see the commit's error)");
            return;
        }
    }
}

static void xr_tick(eddy_task_t *task) {
    int64_t now = eddy__now_ns();
    for (int x = 0; x < task->eng->nx; x++)
        xr_markers(task, x, now);
}

/* The exchange's watermark changed on this task (update_watermarks): its
 * own receiving side sees it at once, the others through markers. */
static void xr_wm(eddy_task_t *task, int node, int64_t wm, bool idle) {
    if (wm > task->xwm[node][task->id])
        task->xwm[node][task->id] = wm;
    task->xidle[node][task->id] = idle;
    xr_markers(task, task->eng->xidx[node], eddy__now_ns());
}

/* Every sender said it ended on every exchange before exchange `upto`
 * (-1: on every exchange): with bounded input, nothing more can come. */
static bool xr_inputs_ended(const eddy_task_t *task, int upto) {
    const eddy_engine_t *eng = task->eng;
    int nn = eng->plan->nnodes;
    for (int x = 0; x < eng->nx; x++) {
        if (upto >= 0 && !eng->reach[(size_t)eng->xnode[x] * (size_t)nn + (size_t)eng->xnode[upto]])
            continue;
        for (int t = 0; t < eng->ntasks; t++)
            if (!task->xr->ended[(size_t)x * (size_t)eng->ntasks + (size_t)t])
                return false;
    }
    return true;
}

static void xr_run(eddy_task_t *task, const eddy_node_t *n, eddy_batch_t *b) {
    if (b->n) {
        task->ingest_ns = eddy__now_ns();
        run_down(task, n, b);
        b->n = 0;
    }
    flush_exchanges(task);
    eddy_arena_reset(&task->arena);
}

/* One data record of the message at `offset` on exchange x: dropped when
 * a replay, else pushed to the exchange's input batch (run when full).
 * False when the engine failed (a gap, a row that does not decode). */
static bool xr_admit_rec(eddy_task_t *task, int x, int64_t offset, const eddy_xr_msg_t *d) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    const eddy_node_t *node = &eng->plan->nodes[eng->xnode[x]];
    eddy_batch_t *b = &xr->in[x];
    char why[256];
    eddy_xr_seen_t *seen = &xr->seen[(size_t)x * (size_t)eng->ntasks + (size_t)d->sender];
    uint64_t before = seen->applied;
    eddy_xr_admit_t a = eddy__xr_admit(seen, d->gen, d->seq);
    if (a == EDDY_XR_DUP) {
        xr->dups++;
        return true;
    }
    if (a == EDDY_XR_GAP) {
        snprintf(why, sizeof(why),
                 "offset %lld: records %llu..%llu of task %d are missing (deleted by "
                 "retention before they were read?)",
                 (long long)offset, (unsigned long long)before + 1,
                 (unsigned long long)d->seq - 1, d->sender);
        xr_fail(task, x, EDDY_ERR_IO, why);
        return false;
    }
    eddy_rec_t *r = eddy_batch_push(b);
    r->vals = eddy_arena_alloc(&task->arena, sizeof(eddy_value_t) * (size_t)node->in->nfields);
    if (eddy__xr_decode_row(d, node->in, node->xkeep, r->vals)) {
        snprintf(why, sizeof(why), "offset %lld: the row does not decode", (long long)offset);
        xr_fail(task, x, EDDY_ERR_IO, why);
        return false;
    }
    r->key = d->key; /* in the message, which outlives the batch */
    r->key_len = d->key_len;
    r->ts_ms = d->ts_ms;
    r->partition = d->partition;
    r->offset = d->offset;
    if (b->n >= (uint32_t)eng->plan->settings.batch_size)
        xr_run(task, node, b);
    return true;
}

/* Messages of one exchange's partition for this task, in offset order. */
static void xr_receive(eddy_task_t *task, const eddy_krp_msg_t *ms, int n) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    int x = ms[0].x, nt = eng->ntasks;
    const eddy_node_t *node = &eng->plan->nodes[eng->xnode[x]];
    eddy_batch_t *b = &xr->in[x];
    b->n = 0;
    b->arena = &task->arena;
    for (int i = 0; i < n && !atomic_load(&eng->error); i++) {
        const eddy_krp_msg_t *m = &ms[i];
        if (xr->rnext[x] >= 0 && m->offset < xr->rnext[x])
            continue; /* fetched before a seek to a later offset */
        xr->rnext[x] = m->offset + 1;
        eddy_xr_msg_t d;
        char why[256];
        if (eddy__xr_decode(m->val, m->len, &d) || d.sender >= nt) {
            snprintf(why, sizeof(why), "offset %lld: not a repartition record",
                     (long long)m->offset);
            xr_fail(task, x, EDDY_ERR_IO, why);
            break;
        }
        if (d.is_wm) {
            xr_run(task, node, b); /* the data before it first */
            if (d.ts_ms > task->xwm[node->id][d.sender])
                task->xwm[node->id][d.sender] = d.ts_ms;
            task->xidle[node->id][d.sender] = (d.flags & EDDY_XR_IDLE) != 0;
            xr->ended[(size_t)x * (size_t)nt + (size_t)d.sender] = (d.flags & EDDY_XR_ENDED) != 0;
            update_watermarks(task);
            xr_run(task, node, b);
            continue;
        }
        if (!d.is_bundle) {
            if (!xr_admit_rec(task, x, m->offset, &d))
                break;
            continue;
        }
        eddy_xr_msg_t rec;
        eddy_err_t e;
        while (!(e = eddy__xr_next(&d, &rec)) && xr_admit_rec(task, x, m->offset, &rec))
            ;
        if (e == EDDY_ERR_DECODE) {
            snprintf(why, sizeof(why), "offset %lld: a record of the bundle does not decode",
                     (long long)m->offset);
            xr_fail(task, x, EDDY_ERR_IO, why);
        }
        if (e != EDDY_ERR_EOF)
            break;
    }
    xr_run(task, node, b);
}

/* Thread: assign the partitions of tasks opened since, then take what the
 * consumer has and hand it to the tasks. Returns the messages taken. */
static int xr_poll(thread_t *thr) {
    eddy_engine_t *eng = thr->eng;
    eddy_krp_t *krp = eng->plan->krp;
    char errstr[512];
    for (int i = 0; i < thr->ntasks; i++) {
        eddy_task_t *task = thr->tasks[i];
        if (!task->active || !task->xr || task->xr->assigned)
            continue;
        if (eddy__krp_assign(krp, thr->id, task->id, task->xr->rnext, true, errstr,
                             sizeof(errstr))) {
            engine_fail(eng, EDDY_ERR_IO, "task %d: %s", task->id, errstr);
            return 0;
        }
        task->xr->assigned = true;
    }
    if (!thr->xmsgs)
        thr->xmsgs = eddy_malloc(sizeof(eddy_krp_msg_t) * XR_POLL_MAX);
    eddy_err_t perr = EDDY_OK;
    int n = eddy__krp_poll(krp, thr->id, thr->xmsgs, XR_POLL_MAX, &perr, errstr, sizeof(errstr));
    if (n < 0) {
        engine_fail(eng, perr, "%s", errstr);
        return 0;
    }
    for (int i = 0; i < n;) {
        const eddy_krp_msg_t *m = &thr->xmsgs[i];
        int j = i + 1;
        while (j < n && thr->xmsgs[j].x == m->x && thr->xmsgs[j].partition == m->partition)
            j++;
        eddy_task_t *task = m->partition < eng->ntasks ? &eng->tasks[m->partition] : NULL;
        /* a task closed since is not ours: its next owner reads it again */
        if (task && task->active && task->xr && task->xr->assigned && task->thr == thr)
            xr_receive(task, m, j - i);
        i = j;
    }
    return n;
}

static void xr_new(eddy_task_t *task) {
    eddy_engine_t *eng = task->eng;
    size_t nx = (size_t)eng->nx, nt = (size_t)eng->ntasks;
    xrt_t *xr = eddy_calloc(1, sizeof(*xr));
    xr->sent = eddy_calloc(nx * nt, sizeof(uint64_t));
    xr->seen = eddy_calloc(nx * nt, sizeof(eddy_xr_seen_t));
    xr->rnext = eddy_malloc(sizeof(int64_t) * nx);
    xr->wm_sent = eddy_malloc(sizeof(int64_t) * nx);
    xr->flags_sent = eddy_calloc(nx, 1);
    xr->ended = eddy_calloc(nx * nt, sizeof(bool));
    xr->sent_ns = eddy_calloc(nx, sizeof(int64_t));
    xr->in = eddy_calloc(nx, sizeof(eddy_batch_t));
    xr->bund = eddy_calloc(nx * nt, sizeof(eddy_buf_t));
    xr->bfirst = eddy_calloc(nx * nt, sizeof(uint64_t));
    xr->bcount = eddy_calloc(nx * nt, sizeof(uint32_t));
    for (size_t x = 0; x < nx; x++) {
        xr->rnext[x] = -1;
        xr->wm_sent[x] = EDDY_WM_MIN;
        eddy_batch_init(&xr->in[x], eng->plan->nodes[eng->xnode[x]].in,
                        (uint32_t)eng->plan->settings.batch_size, &task->arena);
    }
    /* a new state id; a restored one replaces it */
    uint64_t seed[3] = {(uint64_t)eddy__now_ns(), (uint64_t)getpid(), (uint64_t)task->id};
    uint64_t h = eddy__hash64(seed, sizeof(seed));
    xr->gen = (uint32_t)(h ^ (h >> 32)) | 1;
    task->xr = xr;
}

static void xr_free(eddy_task_t *task) {
    xrt_t *xr = task->xr;
    if (!xr)
        return;
    eddy_engine_t *eng = task->eng;
    if (xr->assigned) {
        char errstr[512];
        if (eddy__krp_assign(eng->plan->krp, task->thr->id, task->id, NULL, false, errstr,
                             sizeof(errstr)))
            fprintf(stderr, "eddy: task %d: %s\n", task->id, errstr);
    }
    for (int x = 0; x < eng->nx; x++)
        eddy_batch_free(&xr->in[x]);
    eddy_free(xr->in);
    eddy_free(xr->sent);
    eddy_free(xr->seen);
    eddy_free(xr->rnext);
    eddy_free(xr->wm_sent);
    eddy_free(xr->flags_sent);
    eddy_free(xr->ended);
    eddy_free(xr->sent_ns);
    for (size_t i = 0; i < (size_t)eng->nx * (size_t)eng->ntasks; i++)
        eddy_buf_free(&xr->bund[i]);
    eddy_free(xr->bund);
    eddy_free(xr->bfirst);
    eddy_free(xr->bcount);
    eddy_buf_free(&xr->scratch);
    eddy_buf_free(&xr->buf);
    eddy_free(xr);
    task->xr = NULL;
}

/* Positions blob entry: [u32 gen], per exchange [i64 offset], per task
 * [u64 sent][u32 gen seen][u64 applied]. (Senders' watermarks are not
 * kept: markers repeat every XR_HEARTBEAT_NS, and the operators behind
 * the exchange keep their own.) */
#define XR_PER_TASK (8 + 4 + 8)

static size_t xr_entry_size(const eddy_engine_t *eng) {
    return 4 + (size_t)eng->nx * (8 + (size_t)eng->ntasks * XR_PER_TASK);
}

static void xr_save(eddy_task_t *task, eddy_buf_t *b) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    uint16_t idx = XR_ENTRY;
    uint32_t len = (uint32_t)xr_entry_size(eng);
    eddy_buf_put(b, &idx, 2);
    eddy_buf_put(b, &len, 4);
    eddy_buf_put(b, &xr->gen, 4);
    for (int x = 0; x < eng->nx; x++) {
        eddy_buf_put(b, &xr->rnext[x], 8);
        for (int t = 0; t < eng->ntasks; t++) {
            size_t k = (size_t)x * (size_t)eng->ntasks + (size_t)t;
            eddy_buf_put(b, &xr->sent[k], 8);
            eddy_buf_put(b, &xr->seen[k].gen, 4);
            eddy_buf_put(b, &xr->seen[k].applied, 8);
        }
    }
}

static bool blob_next(const char *p, size_t n, size_t *o, uint16_t *idx, const char **data,
                      uint32_t *len);

static void xr_restore(eddy_task_t *task, const char *p, size_t n) {
    eddy_engine_t *eng = task->eng;
    xrt_t *xr = task->xr;
    size_t o = 0;
    uint16_t idx;
    uint32_t len;
    const char *d;
    while (blob_next(p, n, &o, &idx, &d, &len)) {
        if (idx != XR_ENTRY || len != xr_entry_size(eng))
            continue;
        memcpy(&xr->gen, d, 4);
        d += 4;
        for (int x = 0; x < eng->nx; x++) {
            memcpy(&xr->rnext[x], d, 8);
            d += 8;
            for (int t = 0; t < eng->ntasks; t++) {
                size_t k = (size_t)x * (size_t)eng->ntasks + (size_t)t;
                memcpy(&xr->sent[k], d, 8);
                memcpy(&xr->seen[k].gen, d + 8, 4);
                memcpy(&xr->seen[k].applied, d + 12, 8);
                d += XR_PER_TASK;
            }
        }
    }
}

void eddy__task_side_output(eddy_task_t *task, int node, const eddy_batch_t *b) {
    run_node(task, node, -1, b);
}

/* -------------------------------------------------------------- stepping */

static void publish_counters(eddy_task_t *task) {
    eddy_engine_t *eng = task->eng;
    if (task->n_in) {
        atomic_fetch_add_explicit(&eng->events_in, task->n_in, memory_order_relaxed);
        task->n_in = 0;
    }
    if (task->n_out) {
        atomic_fetch_add_explicit(&eng->events_out, task->n_out, memory_order_relaxed);
        task->n_out = 0;
    }
    if (task->n_dead) {
        atomic_fetch_add_explicit(&eng->dead, task->n_dead, memory_order_relaxed);
        task->n_dead = 0;
    }
    if (task->n_late) {
        atomic_fetch_add_explicit(&eng->late, task->n_late, memory_order_relaxed);
        task->n_late = 0;
    }
}

/* Drain up to `max` inbox messages; with data_only, stop at the first
 * watermark message (it must follow the data before it, and watermark
 * handling must not re-enter itself). Returns how many were handled. */
static int drain_inbox_(eddy_task_t *task, int max, int below) {
    eddy_engine_t *eng = task->eng;
    bool data_only = below >= 0;
    int done = 0;
    while (done < max) {
        pthread_mutex_lock(&task->lock);
        msg_t *m = task->head;
        /* re-entrant drain: only data for exchanges downstream of node
         * `below`, never a watermark, and stop at anything else (order) */
        if (m && data_only &&
            (m->is_wm || !eng->reach[(size_t)below * (size_t)eng->plan->nnodes + (size_t)m->node]))
            m = NULL;
        if (m) {
            task->head = m->next;
            if (!task->head)
                task->tail = NULL;
        }
        pthread_mutex_unlock(&task->lock);
        if (!m)
            break;
        if (m->sender == task->id)
            task->xself[m->node]--;
        if (m->is_wm) {
            if (m->wm > task->xwm[m->node][m->sender])
                task->xwm[m->node][m->sender] = m->wm;
            task->xidle[m->node][m->sender] = m->idle;
            update_watermarks(task);
        } else {
            int64_t saved = task->ingest_ns;
            task->ingest_ns = m->ingest_ns;
            run_down(task, &eng->plan->nodes[m->node], &m->batch);
            if (!data_only)
                eddy_arena_reset(&task->arena);
            else
                task->ingest_ns = saved;
        }
        flush_exchanges(task);
        if (m->bytes)
            atomic_fetch_sub(&eng->xbytes, m->bytes);
        msg_free(m);
        atomic_fetch_sub(&eng->pending, 1);
        done++;
    }
    return done;
}

static int drain_inbox(eddy_task_t *task, int max) { return drain_inbox_(task, max, -1); }

void eddy__op_emit_flush(eddy_op_t *op, eddy_batch_t *out) {
    eddy_task_t *task = op->task;
    run_down(task, op->node, out);
    out->n = 0;
    flush_exchanges(task);
    /* what this task just sent itself (a global key_by behind a window) */
    while (drain_inbox_(task, 64, op->node->id) > 0)
        ;
    eddy_arena_reset(&task->arena);
}

/* A source record whose event time is outside +-EDDY_TIME_LIMIT_MS (the
 * ends of int64 included): windows, joins and expiry would overflow on it,
 * so it is a dead letter with the row as its raw text. */
static void time_dead_letter(eddy_task_t *task, const char *source, const eddy_schema_t *schema,
                             const eddy_rec_t *rec) {
    char why[192];
    snprintf(why, sizeof(why),
             "event time %lld ms is outside the supported range of +-2^61 ms (about 73 million "
             "years around 1970)",
             (long long)rec->ts_ms);
    eddy_buf_t raw = {0};
    eddy__json_encode_row(&raw, schema, rec->vals);
    eddy__task_dead_letter(task, why, source, rec->partition, rec->offset, raw.p, raw.len);
    eddy_buf_free(&raw);
}

/* Poll each source partition once. Returns the number of records read. */
static int poll_sources(eddy_task_t *task) {
    eddy_engine_t *eng = task->eng;
    eddy_plan_t *p = eng->plan;
    int total = 0;
    for (int s = 0; s < p->nsources; s++) {
        tsrc_t *ts = &task->srcs[s];
        if (!ts->def || ts->ended)
            continue;
        const eddy_srcdef_t *def = ts->def;
        for (int i = 0; i < def->nstreams; i++)
            if (ts->batches[i]) {
                ts->batches[i]->n = 0;
                ts->batches[i]->arena = &task->arena;
            }
        eddy_src_out_t out = {.batches = ts->batches, .task = task};
        bool idle = false;
        task->ingest_ns = eddy__now_ns();
        eddy_err_t err = def->ops->poll(ts->state, &out, p->settings.batch_size, &idle);
        if (err && err != EDDY_ERR_EOF) {
            engine_fail(eng, err, "source %s partition %d: %s", def->name, task->id,
                        eddy_err2str(err));
            return total;
        }
        int n = 0;
        for (int i = 0; i < def->nstreams; i++) {
            eddy_batch_t *b = ts->batches[i];
            if (!b || !b->n)
                continue;
            uint32_t w = 0;
            for (uint32_t r = 0; r < b->n; r++) {
                eddy_rec_t *rec = &b->recs[r];
                if (eddy_unlikely(rec->ts_ms > EDDY_TIME_LIMIT_MS ||
                                  rec->ts_ms < -EDDY_TIME_LIMIT_MS)) {
                    time_dead_letter(task, def->name, b->schema, rec);
                    continue;
                }
                if (rec->ts_ms > ts->max_ts)
                    ts->max_ts = rec->ts_ms;
                if (w != r)
                    b->recs[w] = *rec;
                w++;
            }
            b->n = w;
            n += (int)w;
        }
        if (n || !idle)
            ts->last_active_ns = task->ingest_ns;
        if (ts->max_ts > atomic_load_explicit(&task->maxts_pub, memory_order_relaxed))
            atomic_store_explicit(&task->maxts_pub, ts->max_ts, memory_order_relaxed);
        for (int i = 0; i < def->nstreams; i++) {
            eddy_batch_t *b = ts->batches[i];
            if (!b || !b->n)
                continue;
            for (int c = 0; c < def->streams[i].nconsumers; c++)
                run_node(task, def->streams[i].consumers[c], -1 - s, b);
        }
        total += n;
        if (err == EDDY_ERR_EOF)
            ts->ended = true;
        eddy_arena_reset(&task->arena);
    }
    /* Every poll: watermarks advance with data, and idleness with time. */
    update_watermarks(task);
    flush_exchanges(task);
    eddy_arena_reset(&task->arena);
    if (!task->sources_done) {
        bool ended = true;
        for (int s = 0; s < p->nsources; s++)
            if (task->srcs[s].def && !task->srcs[s].ended)
                ended = false;
        if (ended && task->xr && !xr_inputs_ended(task, -1))
            ended = false; /* other tasks may still send */
        if (ended) {
            update_watermarks(task); /* final +inf */
            flush_exchanges(task);
            task->sources_done = true;
            atomic_fetch_add(&eng->tasks_done, 1);
        }
    }
    return total;
}

/* Sources count every input record they consume (delivered, skipped
 * because no pipeline reads its stream, or dead-lettered). */
void eddy__task_count_in(eddy_task_t *task, uint64_t n) { task->n_in += n; }

static bool engine_done(eddy_engine_t *eng) {
    return atomic_load(&eng->tasks_done) == eng->ntasks && atomic_load(&eng->pending) == 0;
}

#define WM_ENTRY 0xFFFF

/* The positions of a task's source partitions, as one blob:
 * per source [u16 index][u32 length][bytes]. */
static void build_positions(eddy_task_t *task) {
    eddy_plan_t *p = task->eng->plan;
    eddy_buf_t *b = &task->posbuf;
    b->len = 0;
    eddy_buf_t one = {0};
    for (int s = 0; s < p->nsources; s++) {
        tsrc_t *ts = &task->srcs[s];
        if (!ts->def || !ts->def->ops->position)
            continue;
        one.len = 0;
        ts->def->ops->position(ts->state, &one);
        uint16_t idx = (uint16_t)s;
        uint32_t len = (uint32_t)one.len;
        eddy_buf_put(b, &idx, 2);
        eddy_buf_put(b, &len, 4);
        if (one.len)
            eddy_buf_put(b, one.p, one.len);
    }
    eddy_buf_free(&one);
    /* Operator watermarks are committed with state: after a restart a
     * window must not re-open or re-admit records it had closed on. */
    uint16_t idx = WM_ENTRY;
    uint32_t len = (uint32_t)(sizeof(int64_t) * (size_t)p->nnodes);
    eddy_buf_put(b, &idx, 2);
    eddy_buf_put(b, &len, 4);
    eddy_buf_put(b, task->node_wm, len);
    if (task->xr)
        xr_save(task, b);
}

/* Next [u16 index][u32 length][bytes] entry of a positions blob at *o;
 * false at the end (or at a truncated entry). */
static bool blob_next(const char *p, size_t n, size_t *o, uint16_t *idx, const char **data,
                      uint32_t *len) {
    if (*o + 6 > n)
        return false;
    memcpy(idx, p + *o, 2);
    memcpy(len, p + *o + 2, 4);
    if (*len > n - *o - 6)
        return false;
    *data = p + *o + 6;
    *o += 6 + *len;
    return true;
}

static void restore_watermarks(eddy_task_t *task, const char *p, size_t n) {
    eddy_plan_t *plan = task->eng->plan;
    size_t o = 0;
    uint16_t idx;
    uint32_t len;
    const char *d;
    while (blob_next(p, n, &o, &idx, &d, &len))
        if (idx == WM_ENTRY && len == sizeof(int64_t) * (size_t)plan->nnodes)
            memcpy(task->node_wm, d, len);
}

static eddy_err_t seek_positions(eddy_task_t *task, const char *p, size_t n, char *errstr,
                                 size_t errstr_size) {
    eddy_plan_t *plan = task->eng->plan;
    size_t o = 0;
    uint16_t idx;
    uint32_t len;
    const char *d;
    while (blob_next(p, n, &o, &idx, &d, &len)) {
        if (idx >= plan->nsources)
            continue;
        tsrc_t *ts = &task->srcs[idx];
        if (ts->def && ts->def->ops->seek) {
            eddy_err_t err = ts->def->ops->seek(ts->state, d, len, errstr, errstr_size);
            if (err)
                return err;
        }
    }
    return EDDY_OK;
}

/* Operators that keep state in memory write it to their stores. */
static bool pre_commit_ops(eddy_task_t *task) {
    eddy_plan_t *p = task->eng->plan;
    for (int i = 0; i < p->nnodes; i++) {
        eddy_op_t *op = &task->ops[i];
        if (op->node->ops->pre_commit) {
            eddy_err_t err = op->node->ops->pre_commit(op);
            if (err) {
                engine_fail(task->eng, err, "%s: commit failed: %s", op->node->name,
                            eddy_err2str(err));
                return false;
            }
        }
    }
    return true;
}

static void commit_ops(eddy_task_t *task) {
    eddy_plan_t *p = task->eng->plan;
    for (int i = 0; i < p->nnodes; i++) {
        eddy_op_t *op = &task->ops[i];
        if (op->node->ops->commit) {
            eddy_err_t err = op->node->ops->commit(op);
            if (err)
                engine_fail(task->eng, err, "%s: commit failed: %s", op->node->name,
                            eddy_err2str(err));
        }
    }
}

/* ------------------------------------------------------ dynamic tasks */

static eddy_err_t task_init(eddy_engine_t *eng, eddy_task_t *task, int id, char *errstr,
                            size_t errstr_size);
static void task_free(eddy_engine_t *eng, eddy_task_t *task);

/* Close an active task whose state was just committed: free everything
 * but the identity and the counters, so it can be opened again. */
static void task_close(eddy_engine_t *eng, eddy_task_t *task, bool clean) {
    if (clean && task->ts) {
        char errstr[1024];
        if (eddy__tstate_mark_closed(task->ts, errstr, sizeof(errstr)))
            engine_fail(eng, EDDY_ERR_IO, "task %d: %s", task->id, errstr);
    }
    publish_counters(task);
    if (task->sources_done)
        atomic_fetch_sub(&eng->tasks_done, 1);
    if (atomic_load(&task->active))
        atomic_fetch_sub(&eng->nactive, 1);
    task_free(eng, task);
    /* the atomics, which other threads read meanwhile, are stored, never
     * overwritten by memset (a data race by the C11 rules); maxts_pub
     * keeps the task's highest event time */
    atomic_store(&task->active, false);
    atomic_store(&task->opening, false);
    atomic_store(&task->wm_pub, EDDY_WM_MAX);
    memset((char *)task + TASK_PLAIN_START, 0, TASK_PLAIN_END - TASK_PLAIN_START);
    /* receivers leave the closed sender out of their minimum (through
     * repartition topics it runs on, elsewhere) */
    eddy_plan_t *p = eng->plan;
    for (int t = 0; !p->krp && t < eng->ntasks; t++) {
        eddy_task_t *o = &eng->tasks[t];
        if (!o->active)
            continue;
        for (int n = 0; n < p->nnodes; n++)
            if (o->xidle[n])
                o->xidle[n][task->id] = true;
    }
}

/* Thread 0: say once when sources wait for the whole assignment. */
static void gate_warn(eddy_engine_t *eng) {
    int64_t now = eddy__now_ns();
    if (!eng->gated_since_ns)
        eng->gated_since_ns = now;
    if (eng->gate_warned || now - eng->gated_since_ns < 15000000000LL)
        return;
    eng->gate_warned = true;
    char msg[512];
    snprintf(msg, sizeof(msg),
             "eddy: waiting for the consumer group to assign all %d partitions to this "
             "instance (%d now): key_by routes records to every task, and across instances "
             "that needs repartition topics (settings: {repartition: kafka})\n",
             eng->ntasks, atomic_load(&eng->nactive));
    pthread_mutex_lock(&eng->lock);
    fputs(msg, stderr);
    pthread_mutex_unlock(&eng->lock);
}

static bool may_roll_forward(const eddy_plan_t *p);
static bool local_exchange(const eddy_plan_t *p);

/* Before tasks open with roll-forward on (they read their topics' tail,
 * read_committed): every thread's transactional producer initialised,
 * since init_transactions returns only once a dead predecessor's
 * transaction of that id completed, its markers written; else a commit
 * the broker had accepted could look absent and be rolled back. That
 * holds for the ids of threads a former run of this state directory had
 * and this one has not too (TXN_THREADS): those are fenced once. With
 * retry, a transient failure (a coordinator loading, a broker
 * restarting) is tried again, backing off, for up to the transaction
 * timeout (at engine creation and in `eddy dump`); inside a commit round
 * (a consumer group's assignment: every thread waits at the barrier, the
 * rebalance callback with them) one attempt, and a failure fails the
 * round into the recovery's backoff. */
static eddy_err_t txn_ready(eddy_engine_t *eng, bool retry, char *errstr, size_t errstr_size) {
    eddy_plan_t *p = eng->plan;
    if (!eng->roll_forward)
        return EDDY_OK;
    /* a live run of the directory is never fenced: this engine's state
     * env holds the directory's lock (.engine.lock) */
    int used = eng->txn_fenced ? 0 : eddy__state_env_txn_threads(eng->senv);
    int64_t start_ns = eddy__now_ns();
    int64_t deadline_ns = start_ns + eddy__ktxn_timeout_ms(p->ktxn) * 1000000LL;
    for (int t = 0; t < eng->nthreads || t < used; t++) {
        for (int64_t backoff_ms = 100;; backoff_ms = backoff_ms < 2500 ? backoff_ms * 2 : 5000) {
            eddy_err_t err = EDDY_OK;
            if (eddy__fault_fail("txn.init", t)) {
                err = EDDY_ERR_TRANSIENT;
                snprintf(errstr, errstr_size, "injected failure (txn.init)");
            } else if (t >= eng->nthreads) {
                err = eddy__ktxn_fence(p->ktxn, t, errstr, errstr_size);
            } else if (!eddy__ktxn_producer(p->ktxn, t, eng->nthreads, &err, errstr,
                                            errstr_size) &&
                       !err) {
                err = EDDY_ERR_IO;
            }
            if (!err)
                break;
            int64_t now = eddy__now_ns();
            if (err != EDDY_ERR_TRANSIENT || !retry || atomic_load(&eng->host_stop) ||
                now + backoff_ms * 1000000LL > deadline_ns) {
                if (err == EDDY_ERR_TRANSIENT && retry) {
                    size_t len = strlen(errstr);
                    snprintf(errstr + len, errstr_size - len,
                             " (still failing after %.1f s of retries; transaction.timeout.ms "
                             "bounds them)",
                             (double)(now - start_ns) / 1e9);
                }
                return err;
            }
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    eng->txn_fenced = true;
    return EDDY_OK;
}

/* Thread 0, inside a commit round (all threads quiesced): open and close
 * the tasks asked for since the last round. */
static void apply_assignment(eddy_engine_t *eng) {
    pthread_mutex_lock(&eng->asg_lock);
    int *open = eng->asg_open, nopen = eng->nopen, *close = eng->asg_close, nclose = eng->nclose;
    uint64_t req = eng->asg_req;
    eng->asg_open = eng->asg_close = NULL;
    eng->nopen = eng->nclose = 0;
    atomic_store(&eng->asg_pending, 0);
    pthread_mutex_unlock(&eng->asg_lock);
    if (nopen || nclose) {
        for (int i = 0; i < nopen; i++) /* queries say so meanwhile */
            atomic_store(&eng->tasks[open[i]].opening, !eng->tasks[open[i]].active);
        eddy__fault_point("rebalance");
        pthread_rwlock_wrlock(&eng->tasks_lock);
        for (int i = 0; i < nclose; i++) {
            eddy_task_t *task = &eng->tasks[close[i]];
            if (task->active)
                task_close(eng, task, true);
        }
        pthread_rwlock_unlock(&eng->tasks_lock);
        char terr[1024];
        eddy_err_t txe = nopen ? txn_ready(eng, false, terr, sizeof(terr)) : EDDY_OK;
        if (txe) {
            engine_fail(eng, txe, "%s", terr);
            for (int i = 0; i < nopen; i++)
                atomic_store(&eng->tasks[open[i]].opening, false);
            nopen = 0;
        }
        /* Restores run without the tasks lock: queries of the open tasks
         * go on meanwhile (a task still opening is not active, and nothing
         * that reads under the lock looks at it). */
        for (int i = 0; i < nopen; i++) {
            eddy_task_t *task = &eng->tasks[open[i]];
            if (task->active)
                continue;
            char errstr[1024];
            eddy_err_t err = task_init(eng, task, task->id, errstr, sizeof(errstr));
            pthread_rwlock_wrlock(&eng->tasks_lock);
            task->active = true;
            atomic_store(&task->opening, false);
            atomic_fetch_add(&eng->nactive, 1);
            if (err) {
                engine_fail(eng, err, "task %d: cannot open: %s", task->id, errstr);
                task_close(eng, task, false); /* frees what was made */
                for (int j = i + 1; j < nopen; j++) /* not opening any more */
                    atomic_store(&eng->tasks[open[j]].opening, false);
                pthread_rwlock_unlock(&eng->tasks_lock);
                break;
            }
            pthread_rwlock_unlock(&eng->tasks_lock);
        }
        pthread_rwlock_wrlock(&eng->tasks_lock);
        /* every open task now waits for the watermarks of the tasks opened
         * here (as it would for a partition present from the start) */
        eddy_plan_t *p = eng->plan;
        for (int i = 0; i < nopen; i++) {
            if (!eng->tasks[open[i]].active)
                continue;
            for (int t = 0; t < eng->ntasks; t++) {
                eddy_task_t *o = &eng->tasks[t];
                if (!o->active)
                    continue;
                for (int n = 0; n < p->nnodes; n++)
                    if (o->xidle[n])
                        o->xidle[n][open[i]] = false;
            }
        }
        pthread_rwlock_unlock(&eng->tasks_lock);
    }
    eddy_free(open);
    eddy_free(close);
    pthread_mutex_lock(&eng->asg_lock);
    eng->asg_done = req;
    pthread_cond_broadcast(&eng->asg_cond);
    pthread_mutex_unlock(&eng->asg_lock);
}

eddy_err_t eddy__engine_assign(eddy_engine_t *eng, const int *open, int nopen, const int *close,
                               int nclose) {
    pthread_mutex_lock(&eng->asg_lock);
    if (!eng->dynamic || eng->threads_exited || !eng->started) {
        pthread_mutex_unlock(&eng->asg_lock);
        return EDDY_ERR_STATE;
    }
    for (int i = 0; i < nopen; i++) {
        if (open[i] < 0 || open[i] >= eng->ntasks)
            continue;
        eng->asg_open = eddy_realloc(eng->asg_open, sizeof(int) * (size_t)(eng->nopen + 1));
        eng->asg_open[eng->nopen++] = open[i];
    }
    for (int i = 0; i < nclose; i++) {
        if (close[i] < 0 || close[i] >= eng->ntasks)
            continue;
        eng->asg_close = eddy_realloc(eng->asg_close, sizeof(int) * (size_t)(eng->nclose + 1));
        eng->asg_close[eng->nclose++] = close[i];
    }
    uint64_t mine = ++eng->asg_req;
    atomic_store(&eng->asg_pending, 1);
    pthread_mutex_unlock(&eng->asg_lock);
    thread_wake(&eng->threads[0]);
    pthread_mutex_lock(&eng->asg_lock);
    while (eng->asg_done < mine && !eng->threads_exited)
        pthread_cond_wait(&eng->asg_cond, &eng->asg_lock);
    bool ok = eng->asg_done >= mine;
    pthread_mutex_unlock(&eng->asg_lock);
    return ok ? EDDY_OK : EDDY_ERR_STATE;
}

eddy_err_t eddy__engine_open_all(eddy_engine_t *eng, char *errstr, size_t errstr_size) {
    if (eng->started) {
        eddy__seterr(errstr, errstr_size, "eddy__engine_open_all: the engine is running");
        return EDDY_ERR_STATE;
    }
    eng->opened_all = true;
    /* as a run does (static tasks opened in eddy_engine_new did already):
     * roll-forward reads the topics' tail only once a dead run's
     * transactions completed, else the dump could roll back and resync
     * (marker N-1 over a committed N) and the next run repeat round N */
    eddy_err_t txe = eng->senv ? txn_ready(eng, true, errstr, errstr_size) : EDDY_OK;
    if (txe)
        return txe;
    for (int i = 0; i < eng->ntasks; i++) {
        eddy_task_t *task = &eng->tasks[i];
        if (task->active)
            continue;
        eddy_err_t err = task_init(eng, task, task->id, errstr, errstr_size);
        task->active = true;
        atomic_fetch_add(&eng->nactive, 1);
        if (err) {
            task_close(eng, task, false);
            return err;
        }
    }
    return EDDY_OK;
}

void eddy__engine_set_group_generation(eddy_engine_t *eng, int64_t gen) {
    atomic_store(&eng->group_gen, gen + 1);
}

int64_t eddy__engine_group_generation(eddy_engine_t *eng) {
    return atomic_load(&eng->group_gen) - 1;
}

bool eddy__engine_task_active(eddy_engine_t *eng, int task) {
    return task >= 0 && task < eng->ntasks && eng->tasks[task].active;
}

void eddy__engine_set_standby_choice(eddy_engine_t *eng, eddy_standby_choice_t fn, void *opaque) {
    eddy__state_env_set_standby_choice(eng->senv, fn, opaque); /* NULL-safe */
}

bool eddy__engine_task_opening(eddy_engine_t *eng, int task) {
    return task >= 0 && task < eng->ntasks && atomic_load(&eng->tasks[task].opening);
}

void eddy__engine_tasks_rdlock(eddy_engine_t *eng) { pthread_rwlock_rdlock(&eng->tasks_lock); }
void eddy__engine_tasks_unlock(eddy_engine_t *eng) { pthread_rwlock_unlock(&eng->tasks_lock); }

/* After a round was acknowledged: sources that keep a position elsewhere
 * too (Kafka consumer group offsets) learn that it is committed. */
static void committed_sources(eddy_task_t *task) {
    eddy_plan_t *p = task->eng->plan;
    for (int s = 0; s < p->nsources; s++) {
        tsrc_t *ts = &task->srcs[s];
        if (ts->def && ts->state && ts->def->ops->committed)
            ts->def->ops->committed(ts->state);
    }
    if (task->xr && task->xr->assigned)
        eddy__krp_commit(p->krp, task->thr->id, task->id, task->xr->rnext);
}

/* Ask for a commit round (idempotent within a round). */
/* ---------------------------------------------------- memory governor */

/* Thread 0, every MEM_CHECK_NS: the heap against memory.max.bytes. Over
 * it, input slows down (each task polls its sources once per
 * MEM_THROTTLE_POLL_NS instead of continuously) and an early commit round
 * lets the state caches give entries back; free pages go back to the
 * system. Under 90% of it, input runs freely again. Input is slowed, never
 * stopped, so watermarks keep moving and state that expires with them is
 * dropped: the engine slows down instead of growing or dying. */
static void request_round(thread_t *thr);
static void mem_govern(thread_t *thr) {
    eddy_engine_t *eng = thr->eng;
    int64_t now = eddy__now_ns();
    if (now - eng->mem_checked_ns < MEM_CHECK_NS)
        return;
    int64_t cpu = eddy__process_cpu_ns();
    if (cpu - eng->mem_checked_cpu_ns < eng->mem_check_cpu_ns)
        return;
    eng->mem_checked_ns = now;
    eng->mem_checked_cpu_ns = cpu;
    int64_t cost;
    int64_t heap = eddy__mem_heap_bytes_cost(&cost);
    eng->mem_check_cpu_ns = cost * MEM_CHECK_SHARE;
    atomic_fetch_add_explicit(&eng->heap_checks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&eng->heap_check_ns, (unsigned long long)cost,
                              memory_order_relaxed);
    atomic_store_explicit(&eng->heap, heap, memory_order_relaxed);
    if (heap > atomic_load_explicit(&eng->heap_peak, memory_order_relaxed))
        atomic_store_explicit(&eng->heap_peak, heap, memory_order_relaxed);
    if (!eng->mem_budget)
        return;
    bool slowed = atomic_load_explicit(&eng->throttled, memory_order_relaxed);
    if (!slowed && heap > eng->mem_budget) {
        atomic_store(&eng->throttled, 1);
        atomic_fetch_add(&eng->throttle_events, 1);
        eng->throttle_since_ns = now;
        request_round(thr);
        if (!eng->mem_warned) {
            eng->mem_warned = true;
            int64_t st = eng->senv ? eddy__state_env_usage(eng->senv) : 0;
            fprintf(stderr,
                    "eddy: memory.max.bytes: heap %lld MiB over the budget of %lld MiB "
                    "(state %lld MiB, exchange %lld MiB): input slowed until it is back "
                    "under 90%% (docs/memory.md; reported once)\n",
                    (long long)(heap >> 20), (long long)(eng->mem_budget >> 20),
                    (long long)(st >> 20), (long long)(atomic_load(&eng->xbytes) >> 20));
        }
    } else if (slowed && heap < eng->mem_budget / 10 * 9) {
        atomic_store(&eng->throttled, 0);
        atomic_fetch_add(&eng->throttled_ns, (unsigned long long)(now - eng->throttle_since_ns));
    }
    if (slowed && now - eng->trimmed_ns >= 1000000000LL) {
        eng->trimmed_ns = now;
        eddy__mem_trim();
        request_round(thr); /* caches shrink after each commit */
    } else if (!slowed && heap > eng->mem_budget / 4 * 3 && now - eng->trimmed_ns >= MEM_TRIM_NS &&
               cpu >= eng->trim_cpu_after_ns) {
        /* glibc keeps what was freed in its arenas: a soak's resident
         * memory grew 0.25 MiB/s while its live data stayed flat, and one
         * malloc_trim took it from 135 to 77 MiB. Past three quarters of
         * the budget that is given back before it can slow input; a trim
         * walks the arenas, so at most every MEM_TRIM_NS and at most a
         * MEM_CHECK_SHARE-th of the process's CPU time. */
        eng->trimmed_ns = now;
        eng->trim_cpu_after_ns = cpu + eddy__mem_trim() * MEM_CHECK_SHARE;
        atomic_fetch_add_explicit(&eng->early_trims, 1, memory_order_relaxed);
    }
}

static bool mem_may_poll(eddy_task_t *task) {
    int64_t now = eddy__now_ns();
    if (now - task->throttle_poll_ns < MEM_THROTTLE_POLL_NS)
        return false;
    task->throttle_poll_ns = now;
    return true;
}

void eddy_engine_memory_stats(eddy_engine_t *eng, eddy_memory_stats_t *out) {
    memset(out, 0, sizeof(*out));
    out->budget_bytes = eng->mem_budget;
    out->heap_bytes = atomic_load(&eng->heap);
    if (!out->heap_bytes)
        out->heap_bytes = eddy__mem_heap_bytes(); /* not started yet */
    out->heap_peak_bytes = atomic_load(&eng->heap_peak);
    if (out->heap_peak_bytes < out->heap_bytes)
        out->heap_peak_bytes = out->heap_bytes;
    if (eng->senv) {
        out->state_bytes = eddy__state_env_usage(eng->senv);
        out->state_budget_bytes = eddy__state_env_budget(eng->senv);
    }
    out->exchange_bytes = atomic_load(&eng->xbytes);
    out->exchange_peak_bytes = atomic_load(&eng->xpeak);
    out->exchange_budget_bytes = eng->xbudget;
    out->heap_checks = atomic_load(&eng->heap_checks);
    out->heap_check_ms = atomic_load(&eng->heap_check_ns) / 1000000ULL;
    out->early_trims = atomic_load(&eng->early_trims);
    out->throttled = atomic_load(&eng->throttled);
    out->throttle_events = atomic_load(&eng->throttle_events);
    uint64_t ns = atomic_load(&eng->throttled_ns);
    if (out->throttled)
        ns += (uint64_t)(eddy__now_ns() - eng->throttle_since_ns);
    out->throttled_ms = ns / 1000000;
    out->exchange_waits = atomic_load(&eng->xwaits);
}

static void request_round(thread_t *thr) {
    eddy_engine_t *eng = thr->eng;
    unsigned long long cur = thr->rounds_done;
    if (atomic_compare_exchange_strong(&eng->round_req, &cur, thr->rounds_done + 1)) {
        for (int t = 0; t < eng->nthreads; t++)
            if (&eng->threads[t] != thr)
                thread_wake(&eng->threads[t]);
    }
}

/*
 * A commit round: an in-process two-phase commit over every task.
 *  1. quiesce: every thread stops reading sources and drains inboxes until
 *     no exchange message is pending anywhere: the tasks' states now
 *     reflect exactly the source positions they hold;
 *  2. deliver: sinks flush (transactional ones commit), repartition
 *     producers flush;
 *  3. prepare: each task writes its dirty state and positions to its
 *     changelog, durably (with a Kafka changelog under exactly_once, into
 *     the thread's transaction, which commits after a barrier once every
 *     thread prepared);
 *  4. acknowledge: thread 0 writes COMMITTED = round id;
 *  5. finish: each task writes its RocksDB batch (and checkpoints when
 *     due).
 * key_by makes a task's state depend on other tasks' sources, so the tasks
 * must commit the same cut; a crash before step 3 rolls every task back to
 * the previous round, after it forward to this one. Returns true when the
 * threads should exit (end of input, stop, or failure).
 */
static void flush_emits(eddy_task_t *task) {
    eddy_plan_t *p = task->eng->plan;
    for (int k = 0; k < p->nnodes; k++) {
        int id = p->topo_order[k];
        eddy_op_t *op = &task->ops[id];
        if (!op->node->ops->flush_emit)
            continue;
        op->out.n = 0;
        op->out.arena = &task->arena;
        eddy_err_t err = op->node->ops->flush_emit(op, &op->out);
        if (err)
            engine_fail(task->eng, err, "%s: %s", op->node->name, eddy_err2str(err));
        else
            run_down(task, op->node, &op->out);
    }
    flush_exchanges(task);
    eddy_arena_reset(&task->arena);
}

/* exactly_once: the next offsets of the Kafka partitions of the thread's
 * tasks, as the prepare will store them, for every transaction the
 * deliver phase commits (connectors/kafka.h). */
static void txn_offsets(thread_t *thr) {
    if (!thr->txo)
        thr->txo = eddy__ktxo_new();
    eddy__ktxo_reset(thr->txo);
    bool stateful = thr->eng->senv != NULL;
    bool acked = eddy__ktxo_acked(thr->eng->plan, stateful);
    for (int i = 0; i < thr->ntasks; i++) {
        eddy_task_t *task = thr->tasks[i];
        for (int s = 0; task->active && s < thr->eng->plan->nsources; s++)
            if (task->srcs[s].def)
                eddy__ktxo_add(thr->txo, task->srcs[s].def, task->srcs[s].state, stateful,
                               acked);
    }
}

/* Commit the thread's shared transaction (connectors/kafka_txn.h) unless
 * the round failed. */
static void txn_commit(thread_t *thr) {
    eddy_engine_t *eng = thr->eng;
    char errstr[1024];
    if (atomic_load(&eng->round_err) || atomic_load(&eng->error))
        return;
    eddy_err_t err = EDDY_ERR_TRANSIENT;
    if (eddy__fault_fail("commit.txn", thr->id))
        snprintf(errstr, sizeof(errstr), "injected failure (commit.txn)");
    else
        err = eddy__ktxn_commit(eng->plan->ktxn, thr->id, thr->txo, errstr, sizeof(errstr));
    if (err) {
        atomic_store(&eng->round_err, 1);
        engine_fail(eng, err, "commit %llu: %s", (unsigned long long)eng->round_id, errstr);
    } else {
        thr->txn_round = eng->round_id; /* the recovery keeps it (recover_restart) */
    }
}

static bool commit_round(thread_t *thr) {
    eddy_engine_t *eng = thr->eng;
    char errstr[1024];
    /* Buffered update-mode results go out first; what they send to other
     * tasks is drained by the quiesce below. */
    for (int i = 0; i < thr->ntasks; i++)
        if (thr->tasks[i]->active)
            flush_emits(thr->tasks[i]);
    atomic_fetch_add(&eng->paused, 1);
    for (;;) {
        int w = 0;
        for (int i = 0; i < thr->ntasks; i++)
            if (thr->tasks[i]->active)
                w += drain_inbox(thr->tasks[i], 64);
        if (atomic_load(&eng->paused) == eng->nthreads && atomic_load(&eng->pending) == 0)
            break;
        if (!w)
            sched_yield();
    }
    pthread_barrier_wait(&eng->barrier);
    if (thr->id == 0) {
        eng->round_final = atomic_load(&eng->stop) || engine_done(eng);
        /* A failed engine (an operator, sink or source error) may hold
         * half-processed input: what it did since the last round is not
         * committed, so a restart repeats it from a consistent cut. */
        if (atomic_load(&eng->error))
            atomic_store(&eng->round_err, 1);
        eng->round_id++;
        /* above any commit a task rolled forward to: its local changelog
         * holds that group already */
        uint64_t rolled = eng->senv ? eddy__state_env_rolled(eng->senv) : 0;
        if (eng->round_id <= rolled)
            eng->round_id = rolled + 1;
        atomic_store(&eng->round_updates, false);
        atomic_store(&eng->paused, 0);
    }
    pthread_barrier_wait(&eng->barrier);
    bool stateful = eng->senv != NULL;
    /* Sinks flush (and transactional ones commit), and what went to
     * repartition topics is flushed, BEFORE any task prepares its state:
     * input positions are never committed ahead of the output they caused
     * (at-least-once). With a Kafka changelog the prepare writes the
     * round's commit marker, which another instance restores from after a
     * failover without asking whether this round was acknowledged: had
     * the marker gone out first, a SIGKILL between it and the sinks'
     * commit lost the round's output (seen in test_scaleout). A crash
     * after the sinks and before the acknowledgement replays the round
     * (duplicates, no loss). */
    if (eng->plan->settings.exactly_once && !atomic_load(&eng->round_err))
        txn_offsets(thr);
    if (!atomic_load(&eng->round_err))
        for (int i = 0; i < thr->ntasks; i++)
            if (thr->tasks[i]->active)
                commit_ops(thr->tasks[i]);
    eddy_err_t xerr = EDDY_OK;
    if (eng->plan->krp && !atomic_load(&eng->round_err) &&
        (xerr = eddy__krp_flush(eng->plan->krp, thr->id, errstr, sizeof(errstr)))) {
        atomic_store(&eng->round_err, 1);
        engine_fail(eng, xerr, "commit %llu: %s", (unsigned long long)eng->round_id, errstr);
    }
    /* exactly_once: the one transaction of the thread's shared producer
     * (its Kafka sinks' records and its repartition records, with the
     * round's input offsets), after the sinks with producers of their own;
     * with a Kafka changelog only after the prepare put the changelog's
     * records and markers into it too (below) */
    bool txn_late = eng->plan->ktxn && eng->plan->cl_remote && stateful;
    if (eng->plan->ktxn && !txn_late)
        txn_commit(thr);
    pthread_barrier_wait(&eng->barrier);
    if (thr->id == 0 && stateful && atomic_load(&eng->nactive) > 0)
        eddy__fault_point("commit.flushed");
    /* a sink that failed to flush or commit above has not delivered this
     * round's output: its state must be neither prepared nor acknowledged
     * (every thread reads eng->error itself: it was set before the barrier) */
    if (atomic_load(&eng->error))
        atomic_store(&eng->round_err, 1);
    if (stateful && !atomic_load(&eng->round_err)) {
        /* quiesced: every record processed so far has ts <= max event */
        int64_t event_ms = EDDY_WM_MIN;
        for (int i = 0; i < eng->ntasks; i++) {
            int64_t m = atomic_load_explicit(&eng->tasks[i].maxts_pub, memory_order_relaxed);
            if (m > event_ms)
                event_ms = m;
        }
        for (int i = 0; i < thr->ntasks; i++) {
            eddy_task_t *task = thr->tasks[i];
            if (!task->active)
                continue;
            if (!pre_commit_ops(task)) {
                atomic_store(&eng->round_err, 1);
                break;
            }
            build_positions(task);
            eddy_err_t err = EDDY_ERR_TRANSIENT;
            if (eddy__fault_fail("commit.prepare", task->id))
                snprintf(errstr, sizeof(errstr), "injected failure (commit.prepare)");
            else
                err = eddy__tstate_prepare(task->ts, eng->round_id, task->posbuf.p,
                                           task->posbuf.len, event_ms, errstr, sizeof(errstr));
            if (err) {
                atomic_store(&eng->round_err, 1);
                engine_fail(eng, err, "task %d: commit %llu failed: %s", task->id,
                            (unsigned long long)eng->round_id, errstr);
                break;
            }
            if (eddy__tstate_prepared_updates(task->ts))
                atomic_store(&eng->round_updates, true);
        }
    }
    /* with a Kafka changelog the transactions commit only once every
     * thread prepared: a thread that committed while another one's prepare
     * failed would have its output of the round committed twice (the
     * round is replayed); a round that failed leaves every transaction
     * open, and the recovery aborts them */
    if (txn_late) {
        pthread_barrier_wait(&eng->barrier);
        txn_commit(thr);
    }
    if (stateful && atomic_load(&eng->nactive) > 0)
        eddy__fault_point("commit.prepared");
    pthread_barrier_wait(&eng->barrier);
    if (thr->id == 0 && atomic_load(&eng->error))
        atomic_store(&eng->round_err, 1);
    if (stateful && thr->id == 0 && !atomic_load(&eng->round_err)) {
        eddy_err_t err = eddy__state_env_mark(eng->senv, eng->round_id, errstr, sizeof(errstr));
        if (err) {
            atomic_store(&eng->round_err, 1);
            engine_fail(eng, err, "commit %llu: %s", (unsigned long long)eng->round_id, errstr);
        } else if (atomic_load(&eng->round_updates)) {
            eddy__fault_point("commit.acked");
        }
    }
    pthread_barrier_wait(&eng->barrier);
    if (!atomic_load(&eng->round_err)) {
        for (int i = 0; i < thr->ntasks; i++) {
            eddy_task_t *task = thr->tasks[i];
            if (!task->active)
                continue;
            if (stateful) {
                eddy_err_t err = eddy__tstate_finish(task->ts, eng->round_final, errstr,
                                                     sizeof(errstr));
                if (err) {
                    atomic_store(&eng->round_err, 1);
                    engine_fail(eng, err, "task %d: %s", task->id, errstr);
                    break;
                }
                eddy__fault_point("commit.finished");
            }
            committed_sources(task);
            publish_counters(task);
        }
    }
    if (thr->id == 0) {
        atomic_fetch_add(&eng->commits, 1);
        eng->last_round_ns = eddy__now_ns();
        /* a minute of rounds since the last recovery ends its streak, or
         * longer than a repartition partition stuck since the restart
         * takes to fail a round (its first error can take a socket
         * timeout to come): rounds go on while its clock runs, and the
         * streak must still reach its stop */
        int64_t calm_ns = 60000000000LL;
        if (eng->plan->krp)
            calm_ns += 2 * eng->plan->settings.repartition_error_timeout_ms * 1000000LL;
        if (!atomic_load(&eng->round_err) && atomic_load(&eng->rec_streak) &&
            eng->last_round_ns - eng->rec_last_ns > calm_ns)
            atomic_store(&eng->rec_streak, 0);
    }
    pthread_barrier_wait(&eng->barrier);
    if (eng->dynamic) {
        /* every task is committed and quiesced only now (the other threads
         * were still finishing theirs above: ThreadSanitizer saw task->active
         * written here while read there): tasks open and close here, and
         * the others wait for the new assignment */
        if (thr->id == 0 && !eng->round_final && !atomic_load(&eng->round_err))
            apply_assignment(eng);
        pthread_barrier_wait(&eng->barrier);
    }
    thr->rounds_done++;
    return eng->round_final || atomic_load(&eng->round_err);
}

static void *thread_main(void *arg) {
    thread_t *thr = arg;
    eddy_engine_t *eng = thr->eng;
    int64_t commit_ns = eng->plan->settings.commit_interval_ms * 1000000LL;
    /* Stream threads leave signals to the host's main thread. */
    sigset_t set;
    sigfillset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* named for top -H, perf and gdb: "eddy:stream0" ... */
    char name[16];
    snprintf(name, sizeof(name), "eddy:stream%d", thr->id);
    prctl(PR_SET_NAME, name, 0, 0, 0);
    for (;;) {
        if (atomic_load(&eng->round_req) > thr->rounds_done) {
            if (commit_round(thr))
                break;
            continue;
        }
        if (atomic_load(&eng->stop)) {
            request_round(thr);
            continue;
        }
        int work = 0;
        if (thr->id == 0 && atomic_load(&eng->asg_pending)) {
            request_round(thr);
            continue;
        }
        /* key_by needs every task here (no repartition topics yet): with a
         * partial assignment (a restart while the group still counts the
         * dead member, or a second instance) sources wait, so no record
         * is routed to a task that is not open and watermarks do not run
         * ahead of partitions that are not open yet */
        bool gated = eng->dynamic && eng->has_exchange && !eng->plan->krp &&
                     atomic_load(&eng->nactive) < eng->ntasks;
        if (thr->id == 0)
            mem_govern(thr);
        /* backpressure: a full exchange holds every source back until the
         * receivers drained it (they always do: inboxes are drained first) */
        bool xfull = atomic_load_explicit(&eng->xbytes, memory_order_relaxed) > eng->xbudget;
        if (xfull)
            atomic_fetch_add_explicit(&eng->xwaits, 1, memory_order_relaxed);
        bool slowed = atomic_load_explicit(&eng->throttled, memory_order_relaxed);
        if (eng->plan->krp)
            work += xr_poll(thr);
        if (gated && thr->id == 0)
            gate_warn(eng);
        else if (thr->id == 0)
            eng->gated_since_ns = 0;
        for (int i = 0; i < thr->ntasks; i++) {
            eddy_task_t *task = thr->tasks[i];
            if (!task->active)
                continue;
            work += drain_inbox(task, 64);
            if (!task->sources_done && !gated && !xfull && (!slowed || mem_may_poll(task)))
                work += poll_sources(task);
            if (task->xr)
                xr_tick(task);
            publish_counters(task);
            if (task->ts && eddy__tstate_wants_commit(task->ts))
                request_round(thr);
        }
        if (thr->id == 0 && eddy__now_ns() - eng->last_round_ns >= commit_ns)
            request_round(thr);
        if (!work) {
            if (engine_done(eng)) {
                request_round(thr); /* the final commit */
                continue;
            }
            pthread_mutex_lock(&thr->lock);
            if (!thr->wake) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 1000000; /* 1 ms: sources that were idle */
                if (ts.tv_nsec >= 1000000000) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000;
                }
                pthread_cond_timedwait(&thr->cond, &thr->lock, &ts);
            }
            thr->wake = false;
            pthread_mutex_unlock(&thr->lock);
        }
    }
    if (eng->dynamic) {
        /* no more rounds: assignment requests must not wait for one */
        pthread_mutex_lock(&eng->asg_lock);
        eng->threads_exited = true;
        pthread_cond_broadcast(&eng->asg_cond);
        pthread_mutex_unlock(&eng->asg_lock);
    }
    pthread_mutex_lock(&eng->lock);
    atomic_fetch_add(&eng->finished, 1);
    pthread_cond_broadcast(&eng->cond);
    pthread_mutex_unlock(&eng->lock);
    return NULL;
}

/* ------------------------------------------------------------ recovery */

static void exchange_ceilings(eddy_engine_t *eng);

/* Leave the consumer groups: a revoke then finds no stream threads
 * (threads_exited) and closes nothing. */
static void sources_stop(eddy_engine_t *eng) {
    for (int s = 0; s < eng->plan->nsources; s++)
        if (eng->plan->sources[s].ops->stop)
            eng->plan->sources[s].ops->stop(&eng->plan->sources[s]);
}

/* A task of an engine whose tasks are all its own (no group): open. */
static eddy_err_t task_open_static(eddy_engine_t *eng, eddy_task_t *task, char *errstr,
                                   size_t errstr_size) {
    task->active = true;
    atomic_fetch_add(&eng->nactive, 1);
    return task_init(eng, task, (int)(task - eng->tasks), errstr, errstr_size);
}

static bool recover_restart(eddy_engine_t *eng, int streak);

/* Recovery thread: wait the streak's backoff (false: the host stopped the
 * engine meanwhile). Called with eng->lock held. */
static bool recovery_wait(eddy_engine_t *eng, int streak) {
    int64_t wait_ns = (1000000000LL << (streak > 5 ? 5 : streak - 1));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + wait_ns;
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    while (!eng->rec_quit && !atomic_load(&eng->host_stop))
        if (pthread_cond_timedwait(&eng->cond, &eng->lock, &ts))
            break;
    return !eng->rec_quit && !atomic_load(&eng->host_stop);
}

/* The stream threads have ended on a transient error: close every task
 * without committing (what it did since its last acknowledged round is
 * dropped, its sinks' open transactions aborted), leave the consumer
 * groups, and start again: tasks reopen from their last acknowledged
 * commit and sources read on from the positions stored with it, exactly
 * as after a process restart. Returns false when the engine stays
 * stopped (the host stopped it, or the restart failed: eng->error says). */
static bool recover(eddy_engine_t *eng) {
    int streak = atomic_fetch_add(&eng->rec_streak, 1) + 1;
    atomic_fetch_add(&eng->recoveries, 1);
    pthread_mutex_lock(&eng->lock);
    fprintf(stderr,
            "eddy: %s: restarting from the last acknowledged commit in %d s (recovery %d in "
            "a row, at most %d)\n",
            eng->errmsg, 1 << (streak > 5 ? 5 : streak - 1), streak, RECOVERY_MAX_STREAK);
    pthread_mutex_unlock(&eng->lock);
    for (int t = 0; t < eng->nthreads; t++)
        pthread_join(eng->threads[t].tid, NULL);
    /* the embedded cluster (if any) outlives the clients closed here */
    bool emb = eddy__kafka_embedded_hold();
    bool ok = recover_restart(eng, streak);
    if (emb)
        eddy__kafka_embedded_release();
    if (ok)
        fprintf(stderr, "eddy: restarted after recovery %d\n", streak);
    return ok;
}

static bool recover_restart(eddy_engine_t *eng, int streak) {
    eddy_plan_t *p = eng->plan;
    sources_stop(eng);
    eng->started = false; /* no stream threads to join any more */
    pthread_mutex_lock(&eng->lock);
    bool go = recovery_wait(eng, streak);
    pthread_mutex_unlock(&eng->lock);
    if (!go)
        return false;
    char errstr[1024];
    eddy_err_t merr = EDDY_OK;
    /* A round whose transaction some threads committed before another
     * one's failed (an EndTxn refused while a coordinator moves): their
     * outputs, repartition records, changelog and offsets of it are
     * committed, so their tasks keep the round (roll forward, as after a
     * death before the acknowledgement) while the others roll it back.
     * Rolled back too, they replayed its input and committed its output a
     * second time. */
    uint64_t failed = eng->round_id;
    bool keep = eng->senv && eng->roll_forward && failed > eddy__state_env_committed(eng->senv);
    pthread_rwlock_wrlock(&eng->tasks_lock);
    for (int i = 0; i < eng->ntasks; i++) {
        eddy_task_t *task = &eng->tasks[i];
        if (keep && task->active && task->ts && !merr && task->thr->txn_round == failed &&
            !(merr = eddy__tstate_mark_rolled(task->ts, failed, errstr, sizeof(errstr))))
            fprintf(stderr,
                    "eddy: task %d: keeps commit %llu (its thread's transaction committed "
                    "before the round failed)\n",
                    task->id, (unsigned long long)failed);
        /* a task reopened after later rounds were acknowledged without it
         * (consumer groups) must not replay the failed round's group */
        if (task->active && task->ts && !merr)
            merr = eddy__tstate_mark_aborted(task->ts, errstr, sizeof(errstr));
        if (task->active)
            task_close(eng, task, false);
    }
    pthread_rwlock_unlock(&eng->tasks_lock);
    eddy__krp_stop(p->krp);
    eddy__ktxn_stop(p->ktxn); /* after its users: open transactions aborted */
    if (merr) {
        atomic_store(&eng->error, 0);
        engine_fail(eng, merr, "recovery: %s", errstr);
        return false;
    }
    /* every message between tasks went with them */
    atomic_store(&eng->pending, 0);
    atomic_store(&eng->xbytes, 0);
    atomic_store(&eng->tasks_done, 0);
    atomic_store(&eng->round_err, 0);
    atomic_store(&eng->paused, 0);
    pthread_mutex_lock(&eng->asg_lock);
    eddy_free(eng->asg_open);
    eddy_free(eng->asg_close);
    eng->asg_open = eng->asg_close = NULL;
    eng->nopen = eng->nclose = 0;
    atomic_store(&eng->asg_pending, 0);
    eng->asg_done = eng->asg_req;
    eng->threads_exited = false;
    pthread_mutex_unlock(&eng->asg_lock);
    eng->gated_since_ns = 0;
    eng->gate_warned = false;
    eddy_free(eng->xceil);
    eng->xceil = NULL;
    for (int i = 0; !eng->dynamic && i < eng->ntasks; i++) {
        eddy_task_t *task = &eng->tasks[i];
        pthread_rwlock_wrlock(&eng->tasks_lock);
        eddy_err_t err = task_open_static(eng, task, errstr, sizeof(errstr));
        pthread_rwlock_unlock(&eng->tasks_lock);
        if (err) {
            atomic_store(&eng->error, 0);
            engine_fail(eng, err, "recovery: task %d: cannot open: %s", i, errstr);
            return false;
        }
    }
    eng->rec_last_ns = eddy__now_ns();
    pthread_mutex_lock(&eng->lock);
    atomic_store(&eng->finished, 0);
    eng->errmsg[0] = 0;
    atomic_store(&eng->error, 0);
    atomic_store(&eng->stop, atomic_load(&eng->host_stop));
    pthread_mutex_unlock(&eng->lock);
    /* false on failure: the threads that started end on the error */
    return eddy_engine_start(eng) == EDDY_OK;
}

/* A key_by exchanged in process (not through repartition topics). */
static bool local_exchange(const eddy_plan_t *p) {
    for (int i = 0; !p->krp && i < p->nnodes; i++)
        if (p->nodes[i].ops->is_exchange)
            return true;
    return false;
}

/* Roll-forward (docs/kafka.md): a task whose changelog went out in its
 * thread's committed transaction may take that round after a death before
 * the acknowledgement, while tasks of other threads roll it back. That
 * is consistent when every exchange dedupes replays (repartition topics:
 * the seq check) or there is none. An exchange in process would not send
 * a rolled-forward sender's records of the round again to a receiver
 * that rolled back; only with one stream thread, whose one transaction
 * holds every task's round (the quiesce drained every inbox), do all
 * tasks go one way. That must hold for the run that wrote the round too:
 * eddy_engine_new turns it off when the directory was ever run with more
 * threads (TXN_THREADS). */
static bool may_roll_forward(const eddy_plan_t *p) {
    if (!p->settings.exactly_once || !p->ktxn || !p->cl_remote)
        return false;
    return !local_exchange(p) || p->settings.threads == 1;
}

static void *recovery_main(void *arg) {
    eddy_engine_t *eng = arg;
    prctl(PR_SET_NAME, "eddy:recovery", 0, 0, 0);
    sigset_t set;
    sigfillset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_lock(&eng->lock);
    for (;;) {
        /* a stream thread may fail before eddy_engine_start has started
         * every source: the recovery stops them only once it has */
        while (!eng->rec_quit &&
               (eng->srcs_starting || !(atomic_load(&eng->recovering) &&
                                        atomic_load(&eng->finished) >= eng->nthreads)))
            pthread_cond_wait(&eng->cond, &eng->lock);
        if (eng->rec_quit)
            break;
        pthread_mutex_unlock(&eng->lock);
        bool ok = recover(eng);
        pthread_mutex_lock(&eng->lock);
        atomic_store(&eng->recovering, false);
        if (!ok && !atomic_load(&eng->error)) {
            eng->errmsg[0] = 0;
            snprintf(eng->errmsg, sizeof(eng->errmsg), "stopped while recovering");
            atomic_store(&eng->error, EDDY_ERR_STATE);
        }
        (void)ok;
        pthread_cond_broadcast(&eng->cond);
    }
    pthread_mutex_unlock(&eng->lock);
    return NULL;
}

/* NULL unless the task is open: a task being opened (apply_assignment
 * restores it without the tasks lock) is not for queries yet. */
eddy_tstate_t *eddy__engine_tstate(eddy_engine_t *eng, int task) {
    return task >= 0 && task < eng->ntasks && atomic_load(&eng->tasks[task].active)
               ? eng->tasks[task].ts
               : NULL;
}
int eddy__engine_ntasks(eddy_engine_t *eng) { return eng->ntasks; }
eddy_state_env_t *eddy__engine_state_env(eddy_engine_t *eng) { return eng->senv; }
eddy_plan_t *eddy__engine_plan(eddy_engine_t *eng) { return eng->plan; }

struct eddy_store_s *eddy__task_store(eddy_task_t *task, int id) {
    return task->ts ? eddy__tstate_store(task->ts, id) : NULL;
}

/* ---------------------------------------------------------------- public */

static void task_free(eddy_engine_t *eng, eddy_task_t *task) {
    eddy_plan_t *p = eng->plan;
    if (task->ops) {
        for (int i = 0; i < p->nnodes; i++) {
            eddy_op_t *op = &task->ops[i];
            if (op->node && op->node->ops->destroy)
                op->node->ops->destroy(op);
            eddy_batch_free(&op->out);
        }
    }
    if (task->srcs) {
        for (int s = 0; s < p->nsources; s++) {
            tsrc_t *ts = &task->srcs[s];
            if (ts->def && ts->state)
                ts->def->ops->close(ts->state);
            if (ts->batches) {
                for (int i = 0; i < p->sources[s].nstreams; i++) {
                    if (ts->batches[i]) {
                        eddy_batch_free(ts->batches[i]);
                        eddy_free(ts->batches[i]);
                    }
                }
                eddy_free(ts->batches);
            }
        }
    }
    if (task->xout) {
        for (int n = 0; n < p->nnodes; n++) {
            if (task->xout[n]) {
                for (int d = 0; d < eng->ntasks; d++)
                    if (task->xout[n][d])
                        msg_free(task->xout[n][d]);
                eddy_free(task->xout[n]);
                eddy_batch_free(&task->xlocal[n]);
                eddy_free(task->xwm[n]);
                eddy_free(task->xidle[n]);
            }
        }
    }
    msg_t *m = task->head;
    while (m) {
        msg_t *next = m->next;
        msg_free(m);
        m = next;
    }
    xr_free(task);
    eddy__tstate_close(task->ts);
    eddy_buf_free(&task->posbuf);
    eddy_free(task->xout);
    eddy_free(task->xlocal);
    eddy_free(task->xself);
    eddy_free(task->xwm);
    eddy_free(task->xidle);
    eddy_free(task->node_idle);
    eddy_free(task->src_idle);
    eddy_free(task->ops);
    eddy_free(task->srcs);
    eddy_free(task->node_wm);
    eddy_free(task->src_wm);
    eddy_arena_free(&task->arena);
    pthread_mutex_destroy(&task->lock);
}

static eddy_err_t task_init(eddy_engine_t *eng, eddy_task_t *task, int id, char *errstr,
                            size_t errstr_size) {
    eddy_plan_t *p = eng->plan;
    task->id = id;
    task->eng = eng;
    pthread_mutex_init(&task->lock, NULL);
    eddy_arena_init(&task->arena, 256 * 1024);
    task->node_wm = eddy_malloc(sizeof(int64_t) * (size_t)(p->nnodes + 1));
    task->src_wm = eddy_malloc(sizeof(int64_t) * (size_t)(p->nsources + 1));
    for (int i = 0; i < p->nnodes; i++)
        task->node_wm[i] = EDDY_WM_MIN;
    for (int s = 0; s < p->nsources; s++)
        task->src_wm[s] = EDDY_WM_MIN;
    atomic_store(&task->wm_pub, EDDY_WM_MIN);
    atomic_store(&task->maxts_pub, EDDY_WM_MIN);
    task->xout = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->xout));
    task->xlocal = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->xlocal));
    task->xself = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->xself));
    task->xwm = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->xwm));
    task->xidle = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->xidle));
    task->node_idle = eddy_calloc((size_t)p->nnodes + 1, sizeof(bool));
    task->src_idle = eddy_calloc((size_t)p->nsources + 1, sizeof(bool));
    task->ops = eddy_calloc((size_t)p->nnodes + 1, sizeof(*task->ops));
    for (int i = 0; i < p->nnodes; i++) {
        const eddy_node_t *n = &p->nodes[i];
        if (n->ops->is_exchange) {
            task->xout[i] = eddy_calloc((size_t)eng->ntasks, sizeof(msg_t *));
            eddy_batch_init(&task->xlocal[i], n->in, (uint32_t)p->settings.batch_size,
                            &task->arena);
            task->xwm[i] = eddy_malloc(sizeof(int64_t) * (size_t)eng->ntasks);
            task->xidle[i] = eddy_calloc((size_t)eng->ntasks, sizeof(bool));
            for (int t = 0; t < eng->ntasks; t++) {
                task->xwm[i][t] = EDDY_WM_MIN;
                /* a sender not (yet) open here is idle until it speaks */
                task->xidle[i][t] =
                    eng->dynamic && !p->krp && !eng->tasks[t].active && t != id;
            }
        }
    }
    if (p->krp)
        xr_new(task);
    if (eng->senv) {
        task->ts = eddy__tstate_open(eng->senv, id, (const eddy_store_def_t *const *)p->stores,
                                     p->nstores, errstr, errstr_size);
        if (!task->ts)
            return EDDY_ERR_IO;
        /* committed watermarks first: operators derive what already fired */
        size_t plen = 0;
        const char *pos = eddy__tstate_positions(task->ts, &plen);
        if (pos)
            restore_watermarks(task, pos, plen);
        if (pos && task->xr)
            xr_restore(task, pos, plen);
    }
    /* In process, receivers start from no watermark for each sender and
     * learn it from its broadcasts, which go out when it rises: a sender
     * restored at +inf (its input had ended) would never send one again,
     * and the windows of its receivers past their own restored watermark
     * would never fire. So each exchange's restored watermark goes out once
     * (through repartition topics xr_restore gives them). */
    task->wm_resend = !task->xr;
    /* through repartition topics, a task's own records skip the topic and
     * its own watermark counts for its receiving side at once */
    for (int x = 0; task->xr && x < eng->nx; x++)
        task->xwm[eng->xnode[x]][id] = task->node_wm[eng->xnode[x]];
    for (int i = 0; i < p->nnodes; i++) {
        eddy_op_t *op = &task->ops[i];
        op->node = &p->nodes[i];
        op->task = task;
        op->wm_ms = task->node_wm[i];
        if (!op->node->ops->is_sink && !op->node->ops->is_exchange)
            eddy_batch_init(&op->out, op->node->out, (uint32_t)p->settings.batch_size,
                            &task->arena);
        if (op->node->ops->init) {
            eddy_err_t err = op->node->ops->init(op, errstr, errstr_size);
            if (err) {
                op->node = NULL; /* not initialised: no destroy */
                for (int j = i + 1; j < p->nnodes; j++)
                    task->ops[j].node = NULL;
                return err;
            }
        }
    }
    task->srcs = eddy_calloc((size_t)p->nsources + 1, sizeof(*task->srcs));
    for (int s = 0; s < p->nsources; s++) {
        const eddy_srcdef_t *def = &p->sources[s];
        if (id >= def->partitions)
            continue;
        tsrc_t *ts = &task->srcs[s];
        ts->max_ts = EDDY_WM_MIN;
        ts->last_active_ns = eddy__now_ns();
        ts->batches = eddy_calloc((size_t)def->nstreams + 1, sizeof(*ts->batches));
        for (int i = 0; i < def->nstreams; i++) {
            if (!def->streams[i].nconsumers)
                continue;
            ts->batches[i] = eddy_malloc(sizeof(eddy_batch_t));
            eddy_batch_init(ts->batches[i], def->streams[i].schema,
                            (uint32_t)p->settings.batch_size, &task->arena);
        }
        eddy_err_t err = def->ops->open(def, id, &ts->state, errstr, errstr_size);
        if (err)
            return err;
        ts->def = def;
    }
    size_t plen = 0;
    const char *pos = task->ts ? eddy__tstate_positions(task->ts, &plen) : NULL;
    if (pos)
        return seek_positions(task, pos, plen, errstr, errstr_size);
    return EDDY_OK;
}

eddy_engine_t *eddy_engine_new(eddy_topology_t *topo, const eddy_conf_t *conf, char *errstr,
                               size_t errstr_size) {
    if (!topo) {
        eddy__seterr(errstr, errstr_size, "eddy_engine_new: topology is NULL");
        return NULL;
    }
    eddy_plan_t *plan = eddy__plan_compile(topo, conf, errstr, errstr_size);
    if (!plan)
        return NULL;
    /* kept with the state when there is state or a transactional producer */
    if (eddy__instance_id_load(plan, plan->nstores > 0 || plan->settings.exactly_once, errstr,
                               errstr_size)) {
        eddy__plan_free(plan);
        return NULL;
    }
    eddy_engine_t *eng = eddy_calloc(1, sizeof(*eng));
    eng->plan = plan;
    eng->topo = topo;
    pthread_mutex_init(&eng->lock, NULL);
    pthread_cond_init(&eng->cond, NULL);
    pthread_rwlock_init(&eng->tasks_lock, NULL);
    pthread_mutex_init(&eng->asg_lock, NULL);
    pthread_cond_init(&eng->asg_cond, NULL);
    eng->replayable = plan->nsources > 0;
    for (int s = 0; s < plan->nsources; s++) {
        if (plan->sources[s].ops->start)
            eng->dynamic = true;
        if (!plan->sources[s].ops->seek) /* a host source: what was pushed is gone */
            eng->replayable = false;
    }
    for (int i = 0; i < plan->nnodes; i++)
        if (plan->nodes[i].ops->is_exchange)
            eng->has_exchange = true;
    static const char *const dl_names[] = {"reason", "source", "partition", "offset", "raw"};
    static const eddy_type_t dl_types[] = {EDDY_TYPE_STRING, EDDY_TYPE_STRING, EDDY_TYPE_INT,
                                           EDDY_TYPE_INT, EDDY_TYPE_BYTES};
    eng->dl_schema = eddy_schema_new(5, dl_names, dl_types);
    /* reachability, for re-entrant drains (eddy__op_emit_flush) */
    int nn = plan->nnodes;
    eng->reach = eddy_calloc((size_t)nn * (size_t)nn + 1, sizeof(bool));
    for (int k = nn - 1; k >= 0; k--) {
        int id = plan->topo_order[k];
        for (int d = 0; d < plan->nodes[id].ndown; d++) {
            int dn = plan->nodes[id].down[d];
            eng->reach[(size_t)id * (size_t)nn + (size_t)dn] = true;
            for (int m = 0; m < nn; m++)
                if (eng->reach[(size_t)dn * (size_t)nn + (size_t)m])
                    eng->reach[(size_t)id * (size_t)nn + (size_t)m] = true;
        }
    }
    eng->xidx = eddy_malloc(sizeof(int) * ((size_t)nn + 1));
    eng->xnode = eddy_malloc(sizeof(int) * ((size_t)nn + 1));
    for (int i = 0; i < nn; i++) {
        eng->xidx[i] = -1;
        if (plan->krp && plan->nodes[i].ops->is_exchange) {
            eng->xidx[i] = eng->nx;
            eng->xnode[eng->nx++] = i;
        }
    }
    eng->ntasks = plan->ntasks;
    eng->nthreads = plan->settings.threads < eng->ntasks ? plan->settings.threads : eng->ntasks;
    eng->tasks = eddy_calloc((size_t)eng->ntasks, sizeof(*eng->tasks));
    eng->hist = eddy_calloc((size_t)eng->ntasks, sizeof(*eng->hist));
    eng->threads = eddy_calloc((size_t)eng->nthreads, sizeof(*eng->threads));
    pthread_barrier_init(&eng->barrier, NULL, (unsigned)eng->nthreads);
    eng->last_round_ns = eddy__now_ns();
    eng->mem_budget = plan->settings.memory_bytes;
    eng->xbudget = eng->mem_budget ? eng->mem_budget / 16 : XBUDGET_DEFAULT;
    if (eng->xbudget < 4 * 1024 * 1024)
        eng->xbudget = 4 * 1024 * 1024;
    /* exactly_once with a Kafka changelog: each commit's changelog goes
     * into the transaction of the task's stream thread (commit_round) */
    if (plan->cl_remote && plan->ktxn)
        eddy__kafka_changelog_share(plan->cl_remote, plan->ktxn, eng->nthreads);
    if (plan->nstores > 0) {
        eddy_state_conf_t sc = {
            .dir = plan->settings.state_dir ? plan->settings.state_dir : "/tmp/eddy-state",
            .application = plan->application,
            .memory_bytes = plan->settings.state_memory_bytes,
            .checkpoint_interval_ms = plan->settings.checkpoint_interval_ms,
            .checkpoint_max_bytes = plan->settings.checkpoint_max_bytes,
            .ntasks = eng->ntasks,
            .nstores = plan->nstores,
            .remote = plan->cl_remote, /* state.changelog: kafka (kafka-changelog branch) */
            .standby_replicas = plan->settings.standby_replicas,
            .roll_forward = may_roll_forward(plan)};
        eng->senv = eddy__state_env_new(&sc, errstr, errstr_size);
        if (!eng->senv) {
            eng->ntasks = 0;
            eddy_engine_destroy(eng);
            return NULL;
        }
        eng->round_id = eddy__state_env_committed(eng->senv);
        /* before any transaction of this run: a later run with fewer
         * threads fences the ids of this one's (txn_ready) */
        if (plan->ktxn &&
            eddy__state_env_record_txn_threads(eng->senv, eng->nthreads, errstr, errstr_size)) {
            eng->ntasks = 0;
            eddy_engine_destroy(eng);
            return NULL;
        }
        /* one thread now, but the round a death left may be a run's with
         * more (TXN_THREADS only grows): no roll-forward across it */
        eng->roll_forward = sc.roll_forward;
        if (eng->roll_forward && local_exchange(plan) &&
            eddy__state_env_txn_threads(eng->senv) > 1) {
            eng->roll_forward = false;
            eddy__state_env_no_roll_forward(eng->senv);
        }
    }
    if (!eng->dynamic && eng->senv && txn_ready(eng, true, errstr, errstr_size)) {
        eng->ntasks = 0;
        eddy_engine_destroy(eng);
        return NULL;
    }
    for (int t = 0; t < eng->nthreads; t++) {
        thread_t *thr = &eng->threads[t];
        thr->id = t;
        thr->eng = eng;
        pthread_mutex_init(&thr->lock, NULL);
        pthread_cond_init(&thr->cond, NULL);
        thr->tasks = eddy_calloc((size_t)eng->ntasks, sizeof(eddy_task_t *));
    }
    for (int i = 0; i < eng->ntasks; i++) {
        eddy_task_t *task = &eng->tasks[i];
        thread_t *thr = &eng->threads[i % eng->nthreads];
        task->thr = thr;
        thr->tasks[thr->ntasks++] = task;
        if (eng->dynamic) {
            /* opened when the consumer group assigns its partition */
            task->id = i;
            task->eng = eng;
            atomic_store(&task->wm_pub, EDDY_WM_MAX);
            atomic_store(&task->maxts_pub, EDDY_WM_MIN);
            continue;
        }
        eddy_err_t err = task_open_static(eng, task, errstr, errstr_size);
        if (err) {
            eng->ntasks = i + 1; /* free what was made */
            eddy_engine_destroy(eng);
            return NULL;
        }
    }
    return eng;
}

/* Before the threads run (tasks have restored their watermarks): per
 * exchange, the highest watermark any task restored for its consumers, a
 * floor of the bound may_be_late() uses. (Engines whose tasks open later,
 * for a consumer group, prune nothing: compile.c.) */
static void exchange_ceilings(eddy_engine_t *eng) {
    eddy_plan_t *p = eng->plan;
    eng->xceil = eddy_malloc(sizeof(int64_t) * ((size_t)p->nnodes + 1));
    for (int i = 0; i < p->nnodes; i++) {
        const eddy_node_t *n = &p->nodes[i];
        eng->xceil[i] = EDDY_WM_MIN;
        for (int t = 0; n->ops->is_exchange && t < eng->ntasks; t++)
            for (int d = 0; eng->tasks[t].node_wm && d < n->ndown; d++)
                if (eng->tasks[t].node_wm[n->down[d]] > eng->xceil[i])
                    eng->xceil[i] = eng->tasks[t].node_wm[n->down[d]];
    }
}

/* While eddy_engine_start starts the sources, the recovery thread (which
 * stops them) waits: a stream thread can fail, and ask for a recovery,
 * before the last source has started. */
static void sources_starting(eddy_engine_t *eng, bool on) {
    pthread_mutex_lock(&eng->lock);
    eng->srcs_starting = on;
    if (!on)
        pthread_cond_broadcast(&eng->cond);
    pthread_mutex_unlock(&eng->lock);
}

eddy_err_t eddy_engine_start(eddy_engine_t *eng) {
    if (eng->started || eng->opened_all)
        return EDDY_ERR_STATE;
    if (eng->plan->krp) {
        /* the topics and the threads' clients, before anything is read */
        char errstr[1024];
        eddy_err_t err = eddy__krp_start(eng->plan->krp, eng->nthreads, eng->plan->instance_id,
                                         errstr, sizeof(errstr));
        if (err) {
            engine_fail(eng, err, "%s", errstr);
            return err;
        }
    }
    eng->started = true;
    exchange_ceilings(eng);
    if (eng->replayable && !eng->rec_started) {
        if (pthread_create(&eng->rec_tid, NULL, recovery_main, eng) == 0)
            eng->rec_started = true;
        else
            eng->replayable = false; /* errors stop the engine, as before */
    }
    sources_starting(eng, true);
    for (int t = 0; t < eng->nthreads; t++) {
        if (pthread_create(&eng->threads[t].tid, NULL, thread_main, &eng->threads[t])) {
            engine_fail(eng, EDDY_ERR_STATE, "cannot create stream thread %d", t);
            for (int j = 0; j < t; j++)
                pthread_join(eng->threads[j].tid, NULL);
            eng->nthreads = t;
            sources_starting(eng, false);
            return EDDY_ERR_STATE;
        }
    }
    /* group members join now: assignments open tasks from here on */
    eddy_plan_t *p = eng->plan;
    eddy_err_t err = EDDY_OK;
    for (int s = 0; !err && s < p->nsources; s++) {
        const eddy_srcdef_t *def = &p->sources[s];
        if (!def->ops->start)
            continue;
        char errstr[1024];
        err = def->ops->start(def, eng, errstr, sizeof(errstr));
        if (err)
            engine_fail(eng, err, "source %s: %s", def->name, errstr);
    }
    sources_starting(eng, false);
    return err;
}

eddy_err_t eddy_engine_poll(eddy_engine_t *eng, int timeout_ms) {
    if (!eng->started && !eng->rec_started) /* never started */
        return EDDY_ERR_STATE;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000LL;
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&eng->lock);
    /* an error being recovered is not the end (recovery_main) */
    while (atomic_load(&eng->finished) < eng->nthreads || atomic_load(&eng->recovering)) {
        if (timeout_ms >= 0 && pthread_cond_timedwait(&eng->cond, &eng->lock, &ts))
            break;
        if (timeout_ms < 0)
            pthread_cond_wait(&eng->cond, &eng->lock);
    }
    bool rec = atomic_load(&eng->recovering);
    bool fin = !rec && atomic_load(&eng->finished) >= eng->nthreads;
    eddy_err_t err = rec ? EDDY_OK : (eddy_err_t)atomic_load(&eng->error);
    pthread_mutex_unlock(&eng->lock);
    if (err)
        return err;
    return fin ? EDDY_OK : EDDY_ERR_TIMEOUT;
}

static const eddy_srcdef_t *find_source(eddy_engine_t *eng, const char *name) {
    for (int i = 0; name && i < eng->plan->nsources; i++)
        if (!strcmp(eng->plan->sources[i].name, name))
            return &eng->plan->sources[i];
    return NULL;
}

eddy_err_t eddy_engine_push(eddy_engine_t *eng, const char *source, int partition,
                            const eddy_value_t *values, int64_t ts_ms) {
    const eddy_srcdef_t *def = find_source(eng, source);
    if (!def)
        return EDDY_ERR_NOENT;
    eddy_err_t err = eddy__host_push(def, partition, values, ts_ms);
    if (!err && partition < eng->ntasks)
        thread_wake(eng->tasks[partition].thr);
    return err;
}

eddy_err_t eddy_engine_end_input(eddy_engine_t *eng, const char *source, int partition) {
    const eddy_srcdef_t *def = find_source(eng, source);
    if (!def)
        return EDDY_ERR_NOENT;
    eddy_err_t err = eddy__host_end(def, partition);
    for (int t = 0; !err && t < eng->nthreads; t++)
        thread_wake(&eng->threads[t]);
    return err;
}

const char *eddy_engine_last_error(eddy_engine_t *eng) { return eng->errmsg; }

void eddy_engine_stop(eddy_engine_t *eng) {
    if (!eng)
        return;
    atomic_store(&eng->host_stop, 1);
    atomic_store(&eng->stop, 1);
    pthread_mutex_lock(&eng->lock); /* a recovery waiting out its backoff gives up */
    pthread_cond_broadcast(&eng->cond);
    pthread_mutex_unlock(&eng->lock);
}

void eddy_engine_destroy(eddy_engine_t *eng) {
    if (!eng)
        return;
    if (eng->rec_started) {
        /* a recovery under way ends first (given up in its backoff, or
         * the engine restarted: stopped below as usual) */
        eddy_engine_stop(eng);
        pthread_mutex_lock(&eng->lock);
        eng->rec_quit = true;
        pthread_cond_broadcast(&eng->cond);
        pthread_mutex_unlock(&eng->lock);
        pthread_join(eng->rec_tid, NULL);
    }
    if (eng->started) {
        atomic_store(&eng->stop, 1);
        for (int t = 0; t < eng->nthreads; t++)
            thread_wake(&eng->threads[t]);
        for (int t = 0; t < eng->nthreads; t++)
            pthread_join(eng->threads[t].tid, NULL);
        /* leave the group after the final commit (the state is committed) */
        sources_stop(eng);
    }
    /* stopped by an error (perhaps the state directory's): close the
     * stores without flushing them (the changelog has what they hold) */
    if (eng->senv && atomic_load(&eng->error))
        eddy__state_env_no_close_flush(eng->senv);
    for (int i = 0; i < eng->ntasks; i++) {
        eddy_task_t *task = &eng->tasks[i];
        if (eng->dynamic && task->active && eng->started && !eng->opened_all &&
            !atomic_load(&eng->error))
            task_close(eng, task, true); /* the final round committed it */
        else if (task->active || (!eng->dynamic && task->eng))
            task_free(eng, task);
    }
    for (int t = 0; t < eng->nthreads; t++) {
        pthread_mutex_destroy(&eng->threads[t].lock);
        pthread_cond_destroy(&eng->threads[t].cond);
        eddy_free(eng->threads[t].tasks);
        eddy_free(eng->threads[t].xmsgs);
        eddy__ktxo_free(eng->threads[t].txo);
    }
    eddy_free(eng->threads);
    eddy_free(eng->tasks);
    eddy_free(eng->hist);
    eddy__schema_unref(eng->dl_schema);
    eddy_free(eng->reach);
    eddy_free(eng->xceil);
    eddy_free(eng->xidx);
    eddy_free(eng->xnode);
    eddy__state_env_destroy(eng->senv);
    pthread_barrier_destroy(&eng->barrier);
    eddy__plan_free(eng->plan);
    pthread_mutex_destroy(&eng->lock);
    pthread_cond_destroy(&eng->cond);
    pthread_rwlock_destroy(&eng->tasks_lock);
    pthread_mutex_destroy(&eng->asg_lock);
    pthread_cond_destroy(&eng->asg_cond);
    eddy_free(eng->asg_open);
    eddy_free(eng->asg_close);
    eddy_free(eng);
}

void eddy_engine_stats(eddy_engine_t *eng, eddy_stats_t *st) {
    memset(st, 0, sizeof(*st));
    st->events_in = atomic_load(&eng->events_in);
    st->events_out = atomic_load(&eng->events_out);
    st->dead_lettered = atomic_load(&eng->dead);
    st->late = atomic_load(&eng->late);
    st->tasks = eng->ntasks;
    st->threads = eng->nthreads;
    st->running = eng->started && atomic_load(&eng->finished) < eng->nthreads;
    int64_t wm = EDDY_WM_MAX, mx = EDDY_WM_MIN;
    for (int i = 0; i < eng->ntasks; i++) {
        int64_t w = atomic_load_explicit(&eng->tasks[i].wm_pub, memory_order_relaxed);
        if (w < wm)
            wm = w;
        int64_t m = atomic_load_explicit(&eng->tasks[i].maxts_pub, memory_order_relaxed);
        if (m > mx)
            mx = m;
    }
    st->watermark_ms = eng->ntasks ? wm : EDDY_WM_MIN;
    st->max_event_ms = mx;
    st->commits = atomic_load(&eng->commits);
    st->recoveries = atomic_load(&eng->recoveries);
    if (eng->senv) {
        st->state_memory_bytes = eddy__state_env_usage(eng->senv);
        st->state_memory_budget_bytes = eddy__state_env_budget(eng->senv);
    }
}

int64_t eddy_engine_latency_ns(eddy_engine_t *eng, double pct) {
    uint64_t total = 0;
    for (int i = 0; i < eng->ntasks; i++)
        total += atomic_load_explicit(&eng->hist[i].total, memory_order_relaxed);
    if (!total)
        return -1;
    if (pct < 0)
        pct = 0;
    uint64_t want = (uint64_t)(pct / 100.0 * (double)total);
    if (want >= total)
        want = total - 1;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        for (int i = 0; i < eng->ntasks; i++)
            seen += atomic_load_explicit(&eng->hist[i].counts[b], memory_order_relaxed);
        if (seen > want)
            return (int64_t)hist_value(b);
    }
    return -1;
}

int eddy_engine_source_lag(eddy_engine_t *eng, eddy_source_lag_t *out, int max) {
    int n = 0;
    eddy_plan_t *p = eng->plan;
    pthread_rwlock_rdlock(&eng->tasks_lock);
    for (int t = 0; t < eng->ntasks; t++) {
        eddy_task_t *task = &eng->tasks[t];
        if (!task->active || !task->srcs)
            continue;
        for (int s = 0; s < p->nsources; s++) {
            tsrc_t *ts = &task->srcs[s];
            eddy_source_lag_t l = {0};
            if (!ts->def || !ts->state || !ts->def->ops->lag || !ts->def->ops->lag(ts->state, &l))
                continue;
            l.source = ts->def->name;
            if (n < max)
                out[n] = l;
            n++;
        }
    }
    pthread_rwlock_unlock(&eng->tasks_lock);
    return n;
}

int eddy_engine_task_watermarks(eddy_engine_t *eng, int64_t *wm_ms, int max) {
    for (int i = 0; i < eng->ntasks && i < max; i++)
        wm_ms[i] = atomic_load_explicit(&eng->tasks[i].wm_pub, memory_order_relaxed);
    return eng->ntasks;
}
