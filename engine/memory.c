/*
 * What the memory governor measures: the bytes malloc has handed out and
 * not taken back, for the whole process (RocksDB and librdkafka allocate
 * through the same glibc malloc; Debian builds neither with jemalloc or
 * tcmalloc). Under AddressSanitizer the sanitizer's allocator stands in
 * for malloc and answers the same question itself.
 */
#include "eddy_int.h"

#include <malloc.h>
#include <time.h>

#if defined(__SANITIZE_ADDRESS__)
#define EDDY_ASAN_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EDDY_ASAN_HEAP 1
#endif
#endif

#ifdef EDDY_ASAN_HEAP
/* exported by libasan (sanitizer/allocator_interface.h, which GCC does not
 * install) */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static int64_t cpu_ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t eddy__process_cpu_ns(void) { return cpu_ns(CLOCK_PROCESS_CPUTIME_ID); }

/* mallinfo2() walks every free chunk in every arena's bins: after a
 * process has freed much (keys going idle), a look costs milliseconds
 * where it cost microseconds, so what it costs is measured. */
int64_t eddy__mem_heap_bytes_cost(int64_t *cost_ns) {
    int64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    int64_t heap = eddy__mem_heap_bytes();
    *cost_ns = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
    return heap;
}

int64_t eddy__mem_heap_bytes(void) {
#ifdef EDDY_ASAN_HEAP
    return (int64_t)__sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)(mi.uordblks + mi.hblkhd);
#endif
}

void eddy__mem_trim(void) {
#ifndef EDDY_ASAN_HEAP
    malloc_trim(0);
#endif
}
