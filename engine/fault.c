/*
 * EDDY_FAULT_KILL kill points, the EDDY_FAULT_PAUSE pause and the
 * injected failures of in-process tests (engine/fault.h). The variables
 * are parsed once; each named kill point keeps its own pass counter.
 */
#include "fault.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

atomic_int eddy__fault_armed;

#define MAX_POINTS 8

static struct {
    char name[32];
    long at;
    atomic_long passes;
} g_points[MAX_POINTS];
static int g_npoints;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static char g_pause_point[32];
static long g_pause_ms;
static const char *g_pause_when; /* a file whose existence arms the pause */
static atomic_int g_paused;

static void parse_pause(void) {
    const char *v = getenv("EDDY_FAULT_PAUSE");
    size_t nlen = v ? strcspn(v, ":") : 0;
    if (!nlen || nlen >= sizeof(g_pause_point) || v[nlen] != ':')
        return;
    memcpy(g_pause_point, v, nlen);
    g_pause_ms = strtol(v + nlen + 1, NULL, 10);
    g_pause_when = getenv("EDDY_FAULT_PAUSE_WHEN");
}

static void pause_at(const char *point) {
    if (g_pause_ms <= 0 || strcmp(g_pause_point, point) ||
        (g_pause_when && access(g_pause_when, F_OK)) || atomic_exchange(&g_paused, 1))
        return;
    char msg[96];
    int n = snprintf(msg, sizeof(msg), "eddy: EDDY_FAULT_PAUSE: %ld ms at %s\n", g_pause_ms, point);
    if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg)) < 0) {
        /* the message is only for the test's log */
    }
    struct timespec ts = {g_pause_ms / 1000, (g_pause_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static void parse(void) {
    const char *v = getenv("EDDY_FAULT_KILL");
    for (const char *p = v; p && *p && g_npoints < MAX_POINTS;) {
        size_t len = strcspn(p, ",");
        size_t nlen = strcspn(p, ":,");
        if (nlen > 0 && nlen < sizeof(g_points[0].name)) {
            memcpy(g_points[g_npoints].name, p, nlen);
            g_points[g_npoints].at = nlen < len ? strtol(p + nlen + 1, NULL, 10) : 1;
            if (g_points[g_npoints].at < 1)
                g_points[g_npoints].at = 1;
            g_npoints++;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    parse_pause();
    atomic_store(&eddy__fault_armed, g_npoints || g_pause_ms > 0 ? 2 : 1);
}

void eddy__fault_point_slow(const char *point) {
    pthread_once(&g_once, parse);
    pause_at(point);
    for (int i = 0; i < g_npoints; i++)
        if (!strcmp(g_points[i].name, point) &&
            atomic_fetch_add(&g_points[i].passes, 1) + 1 == g_points[i].at) {
            char msg[96];
            int n = snprintf(msg, sizeof(msg), "eddy: EDDY_FAULT_KILL: killed at %s\n", point);
            if (n > 0 && write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg)) < 0) {
                /* nothing to do: the kill follows */
            }
            raise(SIGKILL);
        }
}

atomic_int eddy__fault_fail_armed;

static struct {
    pthread_mutex_t lock;
    char name[32];
    int who;
    long at, passes;
    int delay_ms;
} g_fail = {.lock = PTHREAD_MUTEX_INITIALIZER};

void eddy__fault_fail_at(const char *point, int who, long n, int delay_ms) {
    pthread_mutex_lock(&g_fail.lock);
    snprintf(g_fail.name, sizeof(g_fail.name), "%s", point);
    g_fail.who = who;
    g_fail.at = n < 1 ? 1 : n;
    g_fail.passes = 0;
    g_fail.delay_ms = delay_ms;
    atomic_store(&eddy__fault_fail_armed, 1);
    pthread_mutex_unlock(&g_fail.lock);
}

bool eddy__fault_fail_slow(const char *point, int who) {
    pthread_mutex_lock(&g_fail.lock);
    bool fire = atomic_load(&eddy__fault_fail_armed) && !strcmp(g_fail.name, point) &&
                (g_fail.who < 0 || g_fail.who == who) && ++g_fail.passes == g_fail.at;
    int delay_ms = g_fail.delay_ms;
    if (fire)
        atomic_store(&eddy__fault_fail_armed, 0);
    pthread_mutex_unlock(&g_fail.lock);
    if (fire && delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return fire;
}
