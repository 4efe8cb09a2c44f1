/* Launcher: run one program and report its wall time and rusage, as GNU time does.
 *
 * bench/real/measured.py compiles this file once (bench/real/cleanheap.py) and runs
 *
 *     launcher RESULT_FILE TIMEOUT_SECONDS CMD ARGS...
 *
 * The launcher forks, the child execs CMD (searched on PATH) and the launcher waits for it with wait4,
 * then writes one JSON object to RESULT_FILE: wall_s (CLOCK_MONOTONIC from just before the fork to just
 * after wait4), user_s and sys_s (ru_utime, ru_stime), max_rss_kib (ru_maxrss), wait_status (the raw
 * status: exit code or signal), timed_out (1 when the launcher killed CMD after TIMEOUT_SECONDS; 0 = no
 * limit).  Exit status 0 when it measured (whatever CMD did), 2 on bad usage, 3 when fork failed.
 *
 * Why not os.wait4 in Python: Linux keeps a process's peak RSS across exec (exec_mmap records the old
 * memory's high-water mark in the process's maxrss), so a child forked from the lab's Python process
 * (about 100 MB resident with numpy and numba loaded) reports at least that much for any program,
 * /bin/true included.  The launcher is a small C process: its child starts from about 1 MiB.
 *
 * The preload.  The launcher itself runs without the allocator: the environment variable
 * ALLOCLAB_CHILD_PRELOAD holds what the child must preload, and the child moves it to LD_PRELOAD
 * between fork and exec.  So the probe (bench/real/probe.c) hears from CMD and whatever CMD runs, never
 * from the launcher.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile pid_t child;
static volatile sig_atomic_t timed_out;

static void on_alarm(int signal_number) {
    (void)signal_number;
    timed_out = 1;
    if (child > 0) kill(child, SIGKILL);
}

static double seconds(struct timeval value) { return (double)value.tv_sec + (double)value.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: launcher RESULT_FILE TIMEOUT_SECONDS CMD ARGS...\n");
        return 2;
    }
    const char *result_path = argv[1];
    unsigned timeout = (unsigned)strtoul(argv[2], NULL, 10);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_alarm; /* no SA_RESTART: wait4 returns EINTR, then waits again */
    sigaction(SIGALRM, &action, NULL);

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    pid_t pid = fork();
    if (pid < 0) {
        perror("launcher: fork");
        return 3;
    }
    if (pid == 0) {
        const char *preload = getenv("ALLOCLAB_CHILD_PRELOAD");
        if (preload != NULL && *preload != '\0') setenv("LD_PRELOAD", preload, 1);
        unsetenv("ALLOCLAB_CHILD_PRELOAD");
        execvp(argv[3], argv + 3);
        fprintf(stderr, "launcher: cannot run %s: %s\n", argv[3], strerror(errno));
        _exit(127);
    }
    child = pid;
    if (timeout > 0) alarm(timeout);
    int status = 0;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    while (wait4(pid, &status, 0, &usage) < 0) {
        if (errno != EINTR) {
            perror("launcher: wait4");
            return 3;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    alarm(0);
    double wall = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
    FILE *result = fopen(result_path, "w");
    if (result == NULL) {
        perror("launcher: result file");
        return 2;
    }
    fprintf(result,
            "{\"wall_s\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"max_rss_kib\": %ld, \"wait_status\": %d, "
            "\"timed_out\": %d}\n",
            wall, seconds(usage.ru_utime), seconds(usage.ru_stime), usage.ru_maxrss, status, (int)timed_out);
    fclose(result);
    return 0;
}
