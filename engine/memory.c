/*
 * What the memory governor measures. In a normal build: the process's
 * resident memory (VmRSS, from /proc/self/statm), what memory.max.bytes
 * promises to bound and what the operating system charges. It is not
 * glibc's mallinfo2(): that walks every free chunk of every arena under
 * the arena's lock, and in a fragmented heap one call took 198 ms (8
 * threads, 800,000 free chunks: docs/memory.md), so a look every 10 ms
 * stalled the first stream thread, and the threads allocating, with it; reading statm costs a few microseconds whatever the
 * heap. RSS also holds memory malloc has freed but not returned; the
 * governor trims while over the budget. Under AddressSanitizer and
 * ThreadSanitizer the sanitizer's allocator stands in for malloc and
 * answers for the bytes allocated (RSS there is mostly shadow memory: under
 * TSan a 128 MiB budget was exceeded by the shadow alone, so the governor
 * throttled the input for good and test_memory never finished).
 */
#include "eddy_int.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define EDDY_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define EDDY_SANITIZER_HEAP 1
#endif
#endif

#ifdef EDDY_SANITIZER_HEAP
/* exported by libasan and libtsan (sanitizer/allocator_interface.h, which
 * GCC does not install) */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static int64_t cpu_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t eddy__process_cpu_ns(void) { return cpu_ns(CLOCK_PROCESS_CPUTIME_ID); }

/* A look with its CPU cost, so that the governor can space its looks
 * should one ever be dear (mallinfo2(), read before, cost milliseconds on
 * a fragmented heap). */
int64_t eddy__mem_heap_bytes_cost(int64_t *cost_ns) {
    int64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    int64_t heap = eddy__mem_heap_bytes();
    *cost_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    return heap;
}

int64_t eddy__mem_heap_bytes(void) {
#ifdef EDDY_SANITIZER_HEAP
    return (int64_t)__sanitizer_get_current_allocated_bytes();
#else
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (int64_t)resident * page;
#endif
}

int64_t eddy__mem_trim(void) {
    int64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
#ifndef EDDY_SANITIZER_HEAP
    malloc_trim(0);
#endif
    return cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}
