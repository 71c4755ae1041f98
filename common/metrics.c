/* metrics.c -- metric updates and the Prometheus text format. See metrics.h. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics.h"

const double docq_rpc_latency_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int docq_rpc_latency_nbounds = sizeof(docq_rpc_latency_bounds) / sizeof(double);
const double docq_ai_latency_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,   2.5,  5,
                                         10,   30,   60,  120,  300, 600, 1800};
const int docq_ai_latency_nbounds = sizeof(docq_ai_latency_bounds) / sizeof(double);

void docq_histogram_init(docq_histogram *h, const double *bounds, int nbounds) {
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = nbounds < DOCQ_HISTOGRAM_MAX_BUCKETS ? nbounds : DOCQ_HISTOGRAM_MAX_BUCKETS;
}

void docq_histogram_observe_ns(docq_histogram *h, uint64_t ns) {
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < h->nbounds && s > h->bounds[i]) i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void docq_metrics_family(docq_buf *b, const char *name, const char *type, const char *help) {
    docq_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void docq_metrics_sample(docq_buf *b, const char *name, const char *labels, double value) {
    if (labels && *labels)
        docq_buf_printf(b, "%s{%s} %.17g\n", name, labels, value);
    else
        docq_buf_printf(b, "%s %.17g\n", name, value);
}

void docq_metrics_histogram(docq_buf *b, const char *name, const char *labels, const docq_histogram *h) {
    const char *sep = labels && *labels ? "," : "";
    const char *l = labels ? labels : "";
    uint64_t cumulative = 0;
    for (int i = 0; i <= h->nbounds; i++) {
        cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            docq_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, l, sep, h->bounds[i],
                            (unsigned long long)cumulative);
        else
            docq_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, l, sep,
                            (unsigned long long)cumulative);
    }
    double sum = (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9;
    if (*l) {
        docq_buf_printf(b, "%s_sum{%s} %.9g\n%s_count{%s} %llu\n", name, l, sum, name, l,
                        (unsigned long long)cumulative);
    } else {
        docq_buf_printf(b, "%s_sum %.9g\n%s_count %llu\n", name, sum, name, (unsigned long long)cumulative);
    }
}

/* The process's start, Unix seconds: its start in clock ticks after boot
 * (field 22 of /proc/self/stat) plus the boot time (btime of /proc/stat).
 * Returns -1 when either cannot be read. */
static double process_start_time(void) {
    char buf[1024];
    unsigned long long ticks = 0, btime = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* The command name may hold spaces. */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                     &ticks) != 1)
        return -1;
    f = fopen("/proc/stat", "r");
    while (f && fgets(buf, sizeof(buf), f))
        if (sscanf(buf, "btime %llu", &btime) == 1) break;
    if (f) fclose(f);
    long hz = sysconf(_SC_CLK_TCK);
    return btime && hz > 0 ? (double)btime + (double)ticks / (double)hz : -1;
}

/* Open file descriptors: the entries of /proc/self/fd, less the one the
 * listing itself holds. Returns -1 when it cannot be listed. */
static long open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    long n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

void docq_metrics_process(docq_buf *b) {
    struct rusage ru;
    struct rlimit rl;
    long pages = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        docq_metrics_family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.");
        docq_metrics_sample(b, "process_cpu_seconds_total", NULL,
                            (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    }
    FILE *f = fopen("/proc/self/statm", "r");
    if (f && fscanf(f, "%*s %ld", &pages) == 1) {
        docq_metrics_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size, bytes.");
        docq_metrics_sample(b, "process_resident_memory_bytes", NULL, (double)pages * (double)sysconf(_SC_PAGESIZE));
    }
    if (f) fclose(f);
    long fds = open_fds();
    if (fds >= 0) {
        docq_metrics_family(b, "process_open_fds", "gauge", "Open file descriptors.");
        docq_metrics_sample(b, "process_open_fds", NULL, (double)fds);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        docq_metrics_family(b, "process_max_fds", "gauge", "Limit on open file descriptors.");
        docq_metrics_sample(b, "process_max_fds", NULL, (double)rl.rlim_cur);
    }
    double start = process_start_time();
    if (start >= 0) {
        docq_metrics_family(b, "process_start_time_seconds", "gauge", "Start time of the process, Unix seconds.");
        docq_metrics_sample(b, "process_start_time_seconds", NULL, start);
    }
}
