/*
 * mcp-serve: run a topology and answer MCP clients from its live state.
 *
 *   mcp-serve [options] TOPOLOGY.yaml
 *
 * stdio (default): one MCP session on stdin/stdout, newline-delimited
 * JSON-RPC; stdout carries nothing else (anything the topology would print
 * there goes to stderr). Ends at end of input or SIGINT/SIGTERM.
 * --http HOST:PORT: Streamable HTTP at /mcp (plus /metrics and /health);
 * ends at SIGINT/SIGTERM.
 * --kafka-requests TOPIC: MCP over Kafka as well (requests from TOPIC,
 * replies to each request's mcp-reply-to topic), alongside stdio or HTTP;
 * --no-stdio serves Kafka alone, until SIGINT/SIGTERM.
 *
 * The engine keeps running after a bounded input ends, so its final state
 * stays queryable. Exit codes: 0, 1 runtime failure, 2 bad usage/topology.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "eddy.h"
#include "connectors/instances.h"
#include "mcp/mcp.h"
#include "mcp/mcp_transport.h"

static atomic_bool g_stop;
static eddy_engine_t *volatile g_eng;

static void on_signal(int sig) {
    (void)sig;
    atomic_store(&g_stop, true);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: mcp-serve [options] TOPOLOGY.yaml\n"
            "\n"
            "Run the topology and serve MCP (protocol 2025-11-25, also 2025-06-18 and\n"
            "2025-03-26) from its live state.\n"
            "\n"
            "  --http HOST:PORT       Streamable HTTP at http://HOST:PORT/mcp instead of stdio\n"
            "                         (port 0: any free port; HOST defaults to 127.0.0.1)\n"
            "  --allow-origin ORIGIN  accept browser requests from ORIGIN (repeatable; '*'\n"
            "                         for any); loopback origins are always accepted\n"
            "  --sse                  answer HTTP requests as SSE streams, not JSON\n"
            "  --port-file FILE       write the HTTP port there once listening\n"
            "  --advertise URL        the MCP endpoint other instances forward queries to\n"
            "                         (default http://HOST:PORT/mcp of --http)\n"
            "  --no-forward           answer a key of another instance's task with that\n"
            "                         instance's endpoint instead of asking it, and scans\n"
            "                         from this instance's tasks only (partial: true)\n"
            "  --session-idle-timeout S  end HTTP sessions idle S seconds with no stream\n"
            "                         open, Kafka sessions S seconds without a message\n"
            "                         (1800; 0: never)\n"
            "  --kafka-requests TOPIC MCP over Kafka too: requests from TOPIC, replies to the\n"
            "                         topic in each request's mcp-reply-to header; client\n"
            "                         properties from the topology's kafka: map\n"
            "                         (bootstrap.servers: embedded, or none, is the in-process\n"
            "                         cluster; its address is printed on stderr)\n"
            "  --kafka-replies TOPIC  replies to requests without mcp-reply-to go there\n"
            "                         (otherwise they are dropped and counted)\n"
            "  --kafka-reply-prefix P replies only to topics whose name starts with P\n"
            "  --kafka-set KEY=VALUE  librdkafka property for the Kafka transport, over the\n"
            "                         kafka: map (repeatable); group.id defaults to\n"
            "                         APPLICATION-mcp\n"
            "  --kafka-threads N      requests handled in parallel, per session in order (4)\n"
            "  --no-stdio             with --kafka-requests and no --http: serve Kafka only\n"
            "  --set KEY=VALUE        engine setting, as in `eddy run` (repeatable)\n"
            "  --limit N              default rows per answer (20)\n"
            "  --max-limit N          most rows per answer (500)\n"
            "  --max-request-bytes N  larger requests are refused (1048576; HTTP 413)\n"
            "  --version, --help\n");
}

/* Run until SIGINT/SIGTERM (the transports serve on their own threads). */
static void serve_until_signal(eddy_engine_t *eng) {
    bool reported = false;
    while (!atomic_load(&g_stop)) {
        eddy_err_t e = eddy_engine_poll(eng, 200);
        if (e != EDDY_ERR_TIMEOUT && !reported) {
            reported = true;
            if (e)
                fprintf(stderr, "mcp-serve: the engine stopped: %s (still serving its last "
                                "committed state)\n",
                        eddy_engine_last_error(eng));
            else
                fprintf(stderr, "mcp-serve: the input ended; serving the final state\n");
        }
    }
}

/* Start MCP over Kafka (NULL and a message on failure). */
static eddy_mcp_kafka_transport_t *start_kafka(eddy_mcp_t *m,
                                               eddy_mcp_kafka_transport_opts_t *ko) {
    char err[1024];
    eddy_mcp_kafka_transport_t *kt = eddy__mcp_kafka_transport_start(m, ko, err, sizeof(err));
    if (!kt) {
        fprintf(stderr, "mcp-serve: MCP over Kafka: %s\n", err);
        return NULL;
    }
    fprintf(stderr,
            "mcp-serve: serving MCP over Kafka at %s: requests on topic '%s' (consumer group "
            "'%s'), replies to each request's " EDDY_MCP_KAFKA_REPLY_TO " topic%s%s%s\n",
            eddy__mcp_kafka_transport_bootstrap(kt), ko->kafka.request_topic,
            eddy__mcp_kafka_transport_group(kt),
            ko->kafka.default_reply_topic ? ", else '" : "",
            ko->kafka.default_reply_topic ? ko->kafka.default_reply_topic : "",
            ko->kafka.default_reply_topic ? "'" : "");
    return kt;
}

/* What the Kafka transport did, on the way out. */
static void report_kafka(eddy_mcp_kafka_transport_t *kt) {
    eddy_mcp_kafka_transport_stats_t ks;
    eddy__mcp_kafka_transport_stats(kt, &ks);
    fprintf(stderr,
            "mcp-serve: kafka: %llu messages, %llu replies, %llu server messages, %llu "
            "sessions; dropped: %llu without a reply topic, %llu with a refused reply topic, "
            "%llu undelivered; %llu bad, %llu without a session, %llu for an unknown one\n",
            (unsigned long long)ks.kafka.received, (unsigned long long)ks.kafka.replies,
            (unsigned long long)ks.kafka.sent, (unsigned long long)ks.sessions_opened,
            (unsigned long long)ks.kafka.no_reply_topic,
            (unsigned long long)ks.kafka.bad_reply_to,
            (unsigned long long)ks.kafka.produce_errors, (unsigned long long)ks.bad_input,
            (unsigned long long)ks.no_session, (unsigned long long)ks.unknown_session);
}

static long parse_num(const char *opt, const char *v, long lo, long hi) {
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || n < lo || n > hi) {
        fprintf(stderr, "mcp-serve: %s expects a number from %ld to %ld\n", opt, lo, hi);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv) {
    const char *file = NULL, *http = NULL, *port_file = NULL, *advertise = NULL;
    bool forward = true;
    const char *origins[32];
    int norigins = 0;
    bool sse = false;
    long idle_s = 1800;
    bool no_stdio = false;
    eddy_mcp_kafka_transport_opts_t ko;
    eddy__mcp_kafka_transport_opts_default(&ko);
    const char *kafka_set[65];
    int nkafka_set = 0;
    eddy_mcp_opts_t mo;
    eddy__mcp_opts_default(&mo);
    eddy_conf_t *conf = eddy_conf_new();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            eddy_conf_destroy(conf);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("mcp-serve (eddy) %s\n", eddy_version());
            eddy_conf_destroy(conf);
            return 0;
        } else if (!strcmp(a, "--http") && v) {
            http = v;
            i++;
        } else if (!strcmp(a, "--allow-origin") && v && norigins < 32) {
            origins[norigins++] = v;
            i++;
        } else if (!strcmp(a, "--port-file") && v) {
            port_file = v;
            i++;
        } else if (!strcmp(a, "--session-idle-timeout")) {
            idle_s = parse_num(a, v, 0, 100000000);
            i++;
        } else if (!strcmp(a, "--advertise") && v) {
            advertise = v;
            i++;
        } else if (!strcmp(a, "--no-forward")) {
            forward = false;
        } else if (!strcmp(a, "--sse")) {
            sse = true;
        } else if (!strcmp(a, "--kafka-requests") && v) {
            ko.kafka.request_topic = v;
            i++;
        } else if (!strcmp(a, "--kafka-replies") && v) {
            ko.kafka.default_reply_topic = v;
            i++;
        } else if (!strcmp(a, "--kafka-reply-prefix") && v) {
            ko.kafka.reply_prefix = v;
            i++;
        } else if (!strcmp(a, "--kafka-set") && v && nkafka_set < 64) {
            kafka_set[nkafka_set++] = v;
            i++;
        } else if (!strcmp(a, "--kafka-threads")) {
            ko.kafka.threads = (int)parse_num(a, v, 1, 256);
            i++;
        } else if (!strcmp(a, "--no-stdio")) {
            no_stdio = true;
        } else if (!strcmp(a, "--set") && v) {
            if (eddy_cli_set_kv(conf, v, "mcp-serve")) {
                eddy_conf_destroy(conf);
                return 2;
            }
            i++;
        } else if (!strcmp(a, "--limit")) {
            mo.default_limit = (int)parse_num(a, v, 1, 100000);
            i++;
        } else if (!strcmp(a, "--max-limit")) {
            mo.max_limit = (int)parse_num(a, v, 1, 1000000);
            i++;
        } else if (!strcmp(a, "--max-request-bytes")) {
            mo.max_request_bytes = (size_t)parse_num(a, v, 1024, 1L << 30);
            i++;
        } else if (a[0] == '-' || file) {
            fprintf(stderr, "mcp-serve: unexpected argument '%s'\n", a);
            usage(stderr);
            eddy_conf_destroy(conf);
            return 2;
        } else {
            file = a;
        }
    }
    if (!file) {
        usage(stderr);
        eddy_conf_destroy(conf);
        return 2;
    }
    if (mo.max_limit < mo.default_limit)
        mo.max_limit = mo.default_limit;
    if ((no_stdio && !ko.kafka.request_topic) ||
        (!ko.kafka.request_topic &&
         (ko.kafka.default_reply_topic || ko.kafka.reply_prefix || nkafka_set))) {
        fprintf(stderr, "mcp-serve: --no-stdio, --kafka-replies, --kafka-reply-prefix and "
                        "--kafka-set need --kafka-requests TOPIC\n");
        eddy_conf_destroy(conf);
        return 2;
    }
    kafka_set[nkafka_set] = NULL;
    bool use_stdio = !http && !no_stdio;
    /* stdio: keep the real stdout for the protocol, send all else to stderr */
    int proto_fd = 1;
    if (use_stdio) {
        proto_fd = dup(1);
        if (proto_fd < 0 || dup2(2, 1) < 0) {
            perror("mcp-serve: dup");
            return 1;
        }
    }
    eddy_topology_t *topo = NULL;
    eddy_engine_t *eng = eddy_cli_open_engine(file, conf, &topo);
    if (!eng)
        return 2;
    g_eng = eng;
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: reads end */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    eddy_mcp_t *m = eddy__mcp_new(eng, &mo);
    if (eddy_engine_start(eng)) {
        fprintf(stderr, "mcp-serve: the engine did not start: %s\n", eddy_engine_last_error(eng));
        eddy__mcp_destroy(m);
        eddy_engine_destroy(eng);
        eddy_topology_destroy(topo);
        return 1;
    }
    int rc = 0;
    eddy_mcp_kafka_transport_t *kt = NULL;
    eddy_instances_t *cl = NULL; /* scale-out routing (--http) */
    if (ko.kafka.request_topic) {
        ko.topo = topo;
        ko.props = kafka_set;
        ko.session_idle_s = idle_s;
        if (!(kt = start_kafka(m, &ko)))
            rc = 2;
    }
    if (rc) {
        /* nothing more to serve */
    } else if (http) {
        eddy_mcp_http_opts_t ho;
        eddy__mcp_http_opts_default(&ho);
        ho.max_request_bytes = mo.max_request_bytes;
        ho.origins = origins;
        ho.norigins = norigins;
        ho.prefer_sse = sse;
        ho.session_idle_s = idle_s;
        char err[512];
        eddy_mcp_http_t *srv = eddy__mcp_http_start(m, http, &ho, err, sizeof(err));
        if (!srv) {
            fprintf(stderr, "mcp-serve: %s\n", err);
            rc = 2;
        } else {
            int port = eddy__mcp_http_port(srv);
            const char *colon = strrchr(http, ':');
            int hl = colon && colon > http ? (int)(colon - http) : 0;
            fprintf(stderr, "mcp-serve: serving MCP at http://%.*s:%d/mcp\n", hl ? hl : 9,
                    hl ? http : "127.0.0.1", port);
            if (port_file) {
                char tmp[4200];
                snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
                FILE *f = fopen(tmp, "w");
                if (f) {
                    fprintf(f, "%d\n", port);
                    fclose(f);
                    rename(tmp, port_file);
                }
            }
            /* scale-out: say which tasks run here and where to ask */
            if (eddy__instances_wanted(eng)) {
                char ep[600];
                if (advertise)
                    snprintf(ep, sizeof(ep), "%s", advertise);
                else
                    snprintf(ep, sizeof(ep), "http://%.*s:%d/mcp", hl ? hl : 9,
                             hl ? http : "127.0.0.1", port);
                if (!(cl = eddy__instances_start(topo, eng, ep, err, sizeof(err))))
                    fprintf(stderr, "mcp-serve: scale-out routing is off: %s\n", err);
                eddy__mcp_set_cluster(m, cl, forward);
            }
            serve_until_signal(eng);
            eddy__mcp_http_stop(srv);
        }
    } else if (!use_stdio) {
        if (kt)
            serve_until_signal(eng);
    } else {
        fprintf(stderr, "mcp-serve: serving MCP on stdio\n");
        if (eddy__mcp_serve_stdio(m, 0, proto_fd, &g_stop))
            rc = 1;
    }
    if (kt) {
        report_kafka(kt);
        eddy__mcp_kafka_transport_stop(kt);
    }
    /* no transport asks any more: stop saying which tasks run here */
    eddy__mcp_set_cluster(m, NULL, forward);
    eddy__instances_stop(cl);
    eddy__mcp_destroy(m);
    eddy_engine_stop(eng);
    eddy_err_t e = eddy_engine_poll(eng, 30000);
    if (e && e != EDDY_ERR_TIMEOUT && eddy_engine_last_error(eng)[0])
        fprintf(stderr, "mcp-serve: %s\n", eddy_engine_last_error(eng));
    eddy_engine_destroy(eng);
    eddy_topology_destroy(topo);
    return rc;
}
