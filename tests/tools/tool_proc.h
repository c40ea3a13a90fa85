/*
 * Test helper: run the tools of tests/tools (sr-server, avro-produce) as
 * child processes. A child is started with its output in files, gets
 * SIGTERM if the test process dies (PR_SET_PDEATHSIG), and is always waited
 * for with a deadline, so a failing test leaves no process behind: keep the
 * pid in the test's state and call tool_stop() from its teardown.
 */
#ifndef EDDY_TESTS_TOOL_PROC_H
#define EDDY_TESTS_TOOL_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Where a tool binary is: $env_var if set, else $EDDY_BIN_DIR/name, else
 * ./name. */
static inline void tool_path(char *buf, size_t size, const char *env_var, const char *name) {
    const char *p = getenv(env_var), *dir = getenv("EDDY_BIN_DIR");
    if (p && *p)
        snprintf(buf, size, "%s", p);
    else
        snprintf(buf, size, "%s/%s", dir && *dir ? dir : ".", name);
}

static inline void tool_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Start argv[0] (a path) with argv. stdout and stderr go to the files named
 * (NULL: inherited). Returns the pid, or -1.
 */
static inline pid_t tool_spawn(char *const argv[], const char *out, const char *err) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) /* the parent died before prctl() */
        _exit(126);
    int fd;
    if (out && ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 || dup2(fd, 1) < 0))
        _exit(126);
    if (err && ((fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0 || dup2(fd, 2) < 0))
        _exit(126);
    execv(argv[0], argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Exit code of a reaped child: its status, or 128 + the signal. */
static inline int tool_exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Wait up to timeout_ms for pid. Returns its exit code, or -1 when it is
 * still running (not reaped). */
static inline int tool_wait(pid_t pid, int timeout_ms) {
    for (int waited = 0;; waited += 10) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return tool_exit_code(status);
        if (r < 0 || waited >= timeout_ms)
            return -1;
        tool_sleep_ms(10);
    }
}

/* SIGTERM, then SIGKILL if pid has not exited within timeout_ms; always
 * reaps it. Returns its exit code (128 + signal when killed by one). */
static inline int tool_stop(pid_t pid, int timeout_ms) {
    kill(pid, SIGTERM);
    int code = tool_wait(pid, timeout_ms);
    if (code < 0) {
        kill(pid, SIGKILL);
        int status;
        code = waitpid(pid, &status, 0) == pid ? tool_exit_code(status) : -1;
    }
    return code;
}

/* Run a tool to its end, killing it after timeout_ms. Returns its exit code,
 * or -1 when it had to be killed. */
static inline int tool_run(char *const argv[], const char *out, const char *err, int timeout_ms) {
    pid_t pid = tool_spawn(argv, out, err);
    if (pid < 0)
        return -1;
    int code = tool_wait(pid, timeout_ms);
    if (code < 0)
        tool_stop(pid, 1000);
    return code;
}

/* The whole file as a string (malloc'd; "" when it cannot be read). */
static inline char *tool_slurp(const char *path) {
    FILE *f = fopen(path, "r");
    char *p = NULL;
    size_t len = 0, got;
    char chunk[4096];
    while (f && (got = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        char *q = realloc(p, len + got + 1);
        if (!q)
            break;
        p = q;
        memcpy(p + len, chunk, got);
        len += got;
    }
    if (f)
        fclose(f);
    if (!p && !(p = malloc(1)))
        abort();
    p[len] = 0;
    return p;
}

/* The port a tool wrote with --port-file, waiting up to timeout_ms.
 * Returns -1 when pid exits first (not reaped) or the time runs out. */
static inline int tool_wait_port(const char *port_file, pid_t pid, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
        FILE *f = fopen(port_file, "r");
        int port = -1;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = -1;
            fclose(f);
        }
        if (port > 0)
            return port;
        siginfo_t si = {0}; /* exited? (WNOWAIT: leave it for tool_stop() to reap) */
        if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) || si.si_pid == pid)
            return -1;
        tool_sleep_ms(20);
    }
    return -1;
}

#endif
