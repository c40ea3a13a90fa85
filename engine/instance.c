/*
 * The id of an instance of an application (docs/scaleout.md): 16 hex
 * digits kept in <state.dir>/<application>/INSTANCE, made once. Several
 * instances of one application (one consumer group) differ in it, so their
 * transactional producers do not fence each other; a restart of the same
 * instance (same state directory) keeps it, so it fences its predecessor.
 * It also names the instance in the <application>-instances topic.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan.h"


/* mkdir -p dir/app */
static int make_dirs(const char *dir, const char *app) {
    char *p = eddy_asprintf("%s/%s", dir, app);
    int r = 0;
    for (char *s = p + 1; r == 0; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0755) && errno != EEXIST)
            r = -1;
        *s = c;
        if (!c)
            break;
    }
    eddy_free(p);
    return r;
}

eddy_err_t eddy__instance_id_load(eddy_plan_t *plan, bool persist, char *errstr,
                                  size_t errstr_size) {
    const char *dir = plan->settings.state_dir ? plan->settings.state_dir : "/tmp/eddy-state";
    unsigned long long v = 0;
    if (!persist) {
        v = eddy__random_id();
        snprintf(plan->instance_id, sizeof(plan->instance_id), "%016llx", v);
        return EDDY_OK;
    }
    char *path = eddy_asprintf("%s/%s/INSTANCE", dir, plan->application);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%llx", &v) != 1)
            v = 0;
        fclose(f);
    }
    eddy_err_t e = EDDY_OK;
    if (!v) {
        v = eddy__random_id();
        char *tmp = eddy_asprintf("%s.tmp", path);
        f = make_dirs(dir, plan->application) ? NULL : fopen(tmp, "w");
        if (!f || fprintf(f, "%016llx\n", v) < 0 || fflush(f) || fsync(fileno(f)) ||
            fclose(f) || rename(tmp, path)) {
            eddy__seterr(errstr, errstr_size, "state: %s: %s", path, strerror(errno));
            e = EDDY_ERR_IO;
        }
        eddy_free(tmp);
    }
    snprintf(plan->instance_id, sizeof(plan->instance_id), "%016llx", v);
    eddy_free(path);
    return e;
}
