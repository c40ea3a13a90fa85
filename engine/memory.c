/*
 * What the memory governor measures: the bytes malloc has handed out and
 * not taken back, for the whole process (RocksDB and librdkafka allocate
 * through the same glibc malloc; Debian builds neither with jemalloc or
 * tcmalloc). Under AddressSanitizer the sanitizer's allocator stands in
 * for malloc and answers the same question itself.
 */
#include "eddy_int.h"

#include <malloc.h>

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
