/*
 * EDDY_FAULT_KILL kill points (engine/fault.h). The variable is parsed once;
 * each named point keeps its own pass counter.
 */
#include "fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    atomic_store(&eddy__fault_armed, g_npoints ? 2 : 1);
}

void eddy__fault_point_slow(const char *point) {
    pthread_once(&g_once, parse);
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
