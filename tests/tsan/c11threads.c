/*
 * Built only with -DEDDY_SANITIZE=thread: C11 threads (<threads.h>) on top
 * of pthreads, so that ThreadSanitizer sees them.
 *
 * librdkafka creates its threads with thrd_create() and locks with
 * mtx_lock()/cnd_wait(). glibc (2.34+) implements those by calling its
 * internal pthread functions directly, past TSan's pthread interceptors,
 * and the TSan runtimes of gcc 12 and clang 14 have no C11 interceptors:
 * a thread made by thrd_create() has no TSan state and crashes at its first
 * malloc, and TSan cannot see the locking that orders the data librdkafka
 * hands to our callbacks. These definitions, in the executable, take the
 * place of glibc's (the program's own symbols come first) and do what
 * glibc does, through the public pthread calls TSan intercepts. mtx_t and
 * cnd_t have the layout of pthread_mutex_t and pthread_cond_t, as in
 * glibc's own implementation.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

typedef struct {
    thrd_start_t fn;
    void *arg;
} start_t;

static void *start(void *p) {
    start_t s = *(start_t *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

static int result(int rc) {
    return rc == 0 ? thrd_success
           : rc == ENOMEM ? thrd_nomem
           : rc == ETIMEDOUT ? thrd_timedout
           : rc == EBUSY ? thrd_busy
                          : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t fn, void *arg) {
    start_t *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    s->fn = fn;
    s->arg = arg;
    int rc = pthread_create((pthread_t *)thr, NULL, start, s);
    if (rc)
        free(s);
    return result(rc);
}

int thrd_join(thrd_t thr, int *res) {
    void *r = NULL;
    int rc = pthread_join((pthread_t)thr, &r);
    if (!rc && res)
        *res = (int)(intptr_t)r;
    return result(rc);
}

int thrd_detach(thrd_t thr) { return result(pthread_detach((pthread_t)thr)); }

_Noreturn void thrd_exit(int res) { pthread_exit((void *)(intptr_t)res); }

int mtx_init(mtx_t *m, int type) {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return result(rc);
}

int mtx_lock(mtx_t *m) { return result(pthread_mutex_lock((pthread_mutex_t *)m)); }
int mtx_trylock(mtx_t *m) { return result(pthread_mutex_trylock((pthread_mutex_t *)m)); }
int mtx_timedlock(mtx_t *restrict m, const struct timespec *restrict ts) {
    return result(pthread_mutex_timedlock((pthread_mutex_t *)m, ts));
}
int mtx_unlock(mtx_t *m) { return result(pthread_mutex_unlock((pthread_mutex_t *)m)); }
void mtx_destroy(mtx_t *m) { pthread_mutex_destroy((pthread_mutex_t *)m); }

int cnd_init(cnd_t *c) { return result(pthread_cond_init((pthread_cond_t *)c, NULL)); }
int cnd_signal(cnd_t *c) { return result(pthread_cond_signal((pthread_cond_t *)c)); }
int cnd_broadcast(cnd_t *c) { return result(pthread_cond_broadcast((pthread_cond_t *)c)); }
int cnd_wait(cnd_t *c, mtx_t *m) {
    return result(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}
int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts) {
    return result(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}
void cnd_destroy(cnd_t *c) { pthread_cond_destroy((pthread_cond_t *)c); }
