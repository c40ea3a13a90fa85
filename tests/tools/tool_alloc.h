/*
 * Allocation for the test tools (sr-server, avro-produce): short-lived test
 * programs, so running out of memory ends them with a message instead of
 * threading an error through every caller.
 */
#ifndef EDDY_TESTS_TOOL_ALLOC_H
#define EDDY_TESTS_TOOL_ALLOC_H

#include <errno.h> /* program_invocation_short_name (_GNU_SOURCE) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
        abort();
    }
    return q;
}

static inline char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

#endif
