/*
 * sr-server: a small Confluent Schema Registry for tests, run as its own
 * process so that a test reaches it the way eddy reaches a real registry
 * (libcurl over TCP on 127.0.0.1) and can take it away (SIGUSR1, SIGTERM).
 *
 * The registry itself (routes, ids, Confluent's status codes and error
 * bodies) is eddy's embedded registry, connectors/sr_embedded.c, the one
 * `schema_registry: {url: embedded}` starts; this file is its command
 * line: preloading .avsc files, the port file, and signals.
 *
 * Fault injection: --fail-first N answers 503 to the first N requests;
 * SIGUSR1 toggles a "down" mode that answers 503 to everything until the
 * next SIGUSR1. SIGTERM and SIGINT stop it cleanly (exit 0).
 *
 * The main thread only waits for signals and flips `down`; the registry's
 * libmicrohttpd thread serves every request. Usage in
 * tests/tools/README.md.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "connectors/sr_embedded.h"
#include "tests/tools/tool_alloc.h"

/* ---------------------------------------------------------------- start */

static int preload_file(eddy_sr_embedded_t *r, const char *file, const char *subject) {
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, got;
    char chunk[4096];
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        text = xrealloc(text, len + got + 1);
        memcpy(text + len, chunk, got);
        len += got;
    }
    bool read_err = ferror(f);
    fclose(f);
    if (read_err || !text) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, read_err ? "read error" : "empty");
        free(text);
        return -1;
    }
    text[len] = 0;
    char name[NAME_MAX + 1];
    if (!subject) { /* the file name without directory and .avsc */
        const char *base = strrchr(file, '/');
        snprintf(name, sizeof(name), "%s", base ? base + 1 : file);
        size_t n = strlen(name);
        if (n > 5 && !strcmp(name + n - 5, ".avsc"))
            name[n - 5] = 0;
        subject = name;
    }
    int32_t id;
    char why[640];
    eddy_err_t rc = eddy__sr_embedded_register(r, subject, text, &id, NULL, why, sizeof(why));
    free(text);
    if (rc) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", file, why);
        return -1;
    }
    printf("%d %s %s\n", (int)id, subject, file);
    return 0;
}

static int avsc_filter(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 5 && !strcmp(d->d_name + n - 5, ".avsc");
}

/* PATH[:SUBJECT]; a directory registers its *.avsc files in name order. */
static int preload(eddy_sr_embedded_t *r, const char *arg) {
    char path[PATH_MAX];
    const char *subject = NULL;
    struct stat st;
    snprintf(path, sizeof(path), "%s", arg);
    if (stat(path, &st)) {
        char *colon = strrchr(path, ':');
        if (colon) {
            *colon = 0;
            subject = arg + (colon - path) + 1;
        }
        if (!*path || (subject && !*subject) || stat(path, &st)) {
            fprintf(stderr, "sr-server: --preload %s: %s\n", arg, strerror(errno ? errno : ENOENT));
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode))
        return preload_file(r, path, subject);
    struct dirent **ents;
    int n = scandir(path, &ents, avsc_filter, alphasort);
    if (n < 0) {
        fprintf(stderr, "sr-server: --preload %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char file[PATH_MAX + NAME_MAX + 2];
        snprintf(file, sizeof(file), "%s/%s", path, ents[i]->d_name);
        if (!rc)
            rc = preload_file(r, file, subject);
        free(ents[i]);
    }
    free(ents);
    if (n == 0)
        fprintf(stderr, "sr-server: --preload %s: no .avsc files\n", path);
    return n ? rc : -1;
}

/* Write the port to F.tmp, then rename, so a reader never sees half a file. */
static int write_port_file(const char *file, unsigned port) {
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) || rename(tmp, file)) {
        fprintf(stderr, "sr-server: --port-file %s: %s\n", file, strerror(errno));
        return -1;
    }
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: sr-server [--listen HOST:PORT] [--port-file FILE]\n"
               "                 [--preload DIR_OR_FILE.avsc[:SUBJECT]]... [--fail-first N]\n"
               "                 [--verbose]\n"
               "  --listen      IPv4 address and port to listen on (default 127.0.0.1:0,\n"
               "                port 0 = any free port)\n"
               "  --port-file   write the bound port there once listening\n"
               "  --preload     register a schema file (subject: the file name without\n"
               "                .avsc, or SUBJECT) or every *.avsc of a directory in name\n"
               "                order; prints 'ID SUBJECT FILE' per schema\n"
               "  --fail-first  answer 503 to the first N requests\n"
               "  --verbose     log every request to stderr\n"
               "SIGUSR1 toggles down mode (503 on everything); SIGTERM/SIGINT stop.\n");
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"port-file", required_argument, NULL, 'p'},
                                         {"preload", required_argument, NULL, 'r'},
                                         {"fail-first", required_argument, NULL, 'f'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen = "127.0.0.1:0", *port_file = NULL;
    eddy_sr_embedded_t *reg = eddy__sr_embedded_new("sr-server");
    int rc = 2, opt, fail_first;
    char *end, why[512];

    /* Before any thread exists, so libmicrohttpd's inherit the mask and
     * only sigwait() below sees these signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'r':
            if (preload(reg, optarg))
                goto out;
            break;
        case 'f':
            errno = 0;
            fail_first = (int)strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || fail_first < 0) {
                fprintf(stderr, "sr-server: --fail-first %s: expected a count >= 0\n", optarg);
                goto out;
            }
            eddy__sr_embedded_fail_first(reg, fail_first);
            break;
        case 'v':
            eddy__sr_embedded_set_verbose(reg, true);
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sr-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        goto out;
    }
    fflush(stdout);
    eddy_err_t err = eddy__sr_embedded_listen(reg, listen, why, sizeof(why));
    if (err) {
        fprintf(stderr, "sr-server: %s%s\n", err == EDDY_ERR_CONFIG ? "--listen " : "", why);
        rc = err == EDDY_ERR_CONFIG ? 2 : 1;
        goto out;
    }
    rc = 1;
    unsigned port = (unsigned)eddy__sr_embedded_port(reg);
    fprintf(stderr, "sr-server: listening on http://%.*s:%u\n",
            (int)(strrchr(listen, ':') - listen), listen, port);
    if (!port_file || !write_port_file(port_file, port)) {
        rc = 0;
        for (;;) {
            int sig;
            if (sigwait(&sigs, &sig))
                continue;
            if (sig != SIGUSR1)
                break;
            bool down = !eddy__sr_embedded_down(reg);
            eddy__sr_embedded_set_down(reg, down);
            fprintf(stderr, "sr-server: %s\n", down ? "down (503 on everything)" : "up");
        }
    }
    fprintf(stderr, "sr-server: stopped after %lld requests\n",
            (long long)eddy__sr_embedded_requests(reg));
out:
    eddy__sr_embedded_destroy(reg);
    return rc;
}
