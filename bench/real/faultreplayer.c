/* Fault replayer: the faults of a fault trace carried out against the process's real malloc, one fork per fault.
 *
 * bench/real/safety.py compiles this file once (bench.real.cleanheap.replayer_binary) and runs it, with LD_PRELOAD for
 * jemalloc, tcmalloc, mimalloc or Scudo (glibc without).  The process replays the trace's rows from the start
 * (the parent: clean rows only, it never carries out a fault).  At each fault's anchor (before row `at`) it
 * fork()s; the child carries out the fault as a program would, replays the next WINDOW rows (or to the end) and
 * _exit(0)s.  The parent waits for the child (at most TIMEOUT_MS; then SIGKILL), writes one JSON line saying how
 * the child ended and goes on with its clean replay to the next fault, so faults never see each other and an
 * abort never ends the run.
 *
 * Usage: faultreplayer ALLOCATOR DIR N_IDS WINDOW TIMEOUT_MS
 *   DIR holds raw little-endian columns: op.bin (int8 per row: 0 alloc, 1 free, 2 realloc, 3 access), obj.bin
 *   (int64 dense object id 0..N_IDS-1), size.bin (int64), and the fault table: fault_at.bin, fault_kind.bin,
 *   fault_obj.bin (int64 dense id of the target, -1 for a foreign free), fault_param.bin (int64).
 *   Every input is checked before the first malloc (sizes, ids, op codes, the object states the trace and each
 *   fault need: workloads/faults.py's rules); a bad one is exit status 2 with a message, never a crash.
 *
 * Faults (codes as workloads.faults.FAULT_KINDS), carried out in the child; addr is the target's last block
 * (kept per object after its FREE), requested its requested size:
 *   0 double_free   free(addr)             1 invalid_free  free(addr + param)
 *   2 foreign_free  free(foreign + param): `foreign` is 4096 bytes into a zeroed, 4096-aligned static buffer
 *                   of 4096 + 1 MiB + 4096 bytes that the heap never handed out
 *   3 uaf_write     8 bytes of 0x41 at addr + param
 *   4 overflow      param bytes of 0x41 at addr + requested
 *   5 underflow     param bytes of 0x41 at addr - param
 *   6 stale_free    free every live block (the reset), then free(addr)
 * The window's rows then run as in the trace (after a stale free the trace's objects are still live to it, so
 * its FREE rows free blocks the reset freed, as the model's window does).  ACCESS writes the block's first byte.
 *
 * Before each operation the child writes the row it is executing into a MAP_SHARED page (at - 1 while carrying
 * out the fault), so the parent knows where a child died.  The child's stderr and stdout go to a pipe the
 * parent reads (the last 8 KiB are kept); core dumps are off (RLIMIT_CORE 0, PR_SET_DUMPABLE 0).
 *
 * Per fault the parent also reports what the fault's class needs (workloads.faults.fault_class): the target's
 * requested bytes and granted bytes (malloc_usable_size at the block's allocation: Scudo aborts on
 * malloc_usable_size of a freed block) and whether a live object holds the target's address at the anchor
 * (reused).  A target whose block is NULL (malloc(0) may return NULL) is skipped.
 *
 * ASLR: the replayer turns it off for itself (personality(ADDR_NO_RANDOMIZE), then re-exec of /proc/self/exe) so
 * that heap addresses, and with them glibc's safe-linking masks, repeat from run to run; if the kernel refuses,
 * it runs with ASLR on and says so.
 *
 * Preload check (as bench/real/replayer.c): for every allocator but glibc, a symbol only that library exports must
 * resolve, and malloc must be defined by the same shared object; otherwise exit status 2.
 *
 * Output (stdout, JSON lines): first {"aslr_disabled": 0|1, "rows": N, "faults": F}; then per fault, in table
 * order, {"index", "end": "signal"|"exit"|"hang"|"skipped", "signal", "exit_status", "row", "rows_after",
 * "requested", "granted", "reused", "elapsed_us", "stderr", "message"}.  If malloc/realloc returns NULL in the
 * parent's clean replay, that fault and every later one are "skipped" with the reason.  A child that gets NULL
 * exits with status 3 (FAULT_CHILD_NULL).  Test hook: ALLOCLAB_FAULTREPLAYER_HANG=I makes the child of fault I
 * sleep forever after carrying out its fault (the timeout's test).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPLAYER_NAME "faultreplayer"
#include "columns.h"
#include "preload.h"

enum { OP_ALLOC = 0, OP_FREE = 1, OP_REALLOC = 2, OP_ACCESS = 3 };
enum { F_DOUBLE_FREE, F_INVALID_FREE, F_FOREIGN_FREE, F_UAF_WRITE, F_OVERFLOW, F_UNDERFLOW, F_STALE_FREE, F_COUNT };
enum { ALLOC_GLIBC, ALLOC_JEMALLOC, ALLOC_TCMALLOC, ALLOC_MIMALLOC, ALLOC_SCUDO, ALLOC_COUNT };
enum { STATE_NEVER = 0, STATE_LIVE = 1, STATE_FREED = 2 };

#define FAULT_BYTE 0x41
#define MAX_FAULT_BYTES ((int64_t)1 << 20)
#define MAX_REQUEST ((int64_t)1 << 40)
#define FOREIGN_OFFSET 4096
#define FAULT_CHILD_NULL 3
#define STDERR_KEEP 8192
#define REEXEC_MARKER "ALLOCLAB_FAULTREPLAYER_REEXEC"
#define HANG_HOOK "ALLOCLAB_FAULTREPLAYER_HANG"

static int allocator;

/* Memory the heap never handed out: a foreign free points FOREIGN_OFFSET bytes into it. */
static char foreign_memory[FOREIGN_OFFSET + (1 << 20) + 4096] __attribute__((aligned(4096)));
/* Its address through a volatile, so the compiler cannot see (and act on) free() of a static object. */
static char *volatile foreign = foreign_memory + FOREIGN_OFFSET;

/* The trace, the fault table and the per-object tables (all mmap'ed: the heap holds only the trace's blocks). */
static const int8_t *op;
static const int64_t *obj, *size;
static const int64_t *fault_at, *fault_kind, *fault_obj, *fault_param;
static int64_t rows, n_faults, n_ids;
static char **block;       /* the object's last block (kept after its FREE) */
static int64_t *requested; /* its requested size */
static int64_t *granted;   /* malloc_usable_size of its block, read when the block was handed out */
static int8_t *state;      /* STATE_* */
static volatile int64_t *shared_row; /* MAP_SHARED: the row the child is executing */
static size_t (*usable_size)(void *);


/* Turn ASLR off for this process (re-exec with ADDR_NO_RANDOMIZE); 1 if it is off. */
static int disable_aslr(char **argv) {
    int persona = personality(0xffffffff);
    if (persona == -1) return 0;
    if (persona & ADDR_NO_RANDOMIZE) return 1;
    if (getenv(REEXEC_MARKER) != NULL) return 0; /* tried once already: the flag did not stick */
    if (personality((unsigned long)persona | ADDR_NO_RANDOMIZE) == -1) return 0;
    setenv(REEXEC_MARKER, "1", 1);
    execv("/proc/self/exe", argv);
    personality((unsigned long)persona); /* exec failed: carry on as we are */
    return 0;
}

/* Every check of the header comment: the rows are a valid trace and each fault fits the objects at its anchor. */
static void check_inputs(void) {
    int8_t *seen = map_zeroed((size_t)n_ids, MAP_PRIVATE);
    int64_t *current = map_zeroed((size_t)n_ids * sizeof(int64_t), MAP_PRIVATE);
    int64_t row = 0;
    for (int64_t index = 0; index <= n_faults; index++) {
        int64_t stop = index < n_faults ? fault_at[index] : rows;
        if (stop < 0 || stop > rows) fail_row("fault anchor outside the trace", index);
        if (stop < row) fail_row("faults are not sorted by their anchor", index);
        for (; row < stop; row++) {
            int64_t ident = obj[row], request = size[row];
            if (ident < 0 || ident >= n_ids) fail_row("object id out of range in row", row);
            if (request < 0 || request > MAX_REQUEST) fail_row("size out of range in row", row);
            switch (op[row]) {
            case OP_ALLOC:
                if (seen[ident] == STATE_LIVE) fail_row("ALLOC of a live object in row", row);
                seen[ident] = STATE_LIVE;
                current[ident] = request;
                break;
            case OP_FREE:
            case OP_REALLOC:
            case OP_ACCESS:
                if (seen[ident] != STATE_LIVE) fail_row("row names an object that is not live", row);
                if (op[row] == OP_FREE) seen[ident] = STATE_FREED;
                else if (op[row] == OP_REALLOC) current[ident] = request;
                else if (request > current[ident]) fail_row("ACCESS past the object's size in row", row);
                break;
            default:
                fail_row("unknown op code in row", row);
            }
        }
        if (index == n_faults) break;
        int64_t kind = fault_kind[index], target = fault_obj[index], param = fault_param[index];
        if (kind < 0 || kind >= F_COUNT) fail_row("unknown fault kind in fault", index);
        if (kind == F_FOREIGN_FREE) {
            if (target != -1) fail_row("a foreign free names an object in fault", index);
            if (param < 0 || param > MAX_FAULT_BYTES) fail_row("foreign offset out of range in fault", index);
            continue;
        }
        if (target < 0 || target >= n_ids) fail_row("target id out of range in fault", index);
        int dead = kind == F_DOUBLE_FREE || kind == F_UAF_WRITE;
        if (seen[target] != (dead ? STATE_FREED : STATE_LIVE)) fail_row("target in the wrong state in fault", index);
        int ok;
        switch (kind) {
        case F_DOUBLE_FREE:
        case F_STALE_FREE: ok = param == 0; break;
        case F_INVALID_FREE: ok = param > 0 && param < current[target]; break;
        case F_UAF_WRITE: ok = param >= 0 && param < current[target]; break;
        default: ok = param >= 1 && param <= MAX_FAULT_BYTES;
        }
        if (!ok) fail_row("fault parameter out of range in fault", index);
    }
    munmap(seen, n_ids > 0 ? (size_t)n_ids : 1);
    munmap(current, n_ids > 0 ? (size_t)n_ids * sizeof(int64_t) : 1);
}

/* The fault's bytes, written one by one so that the compiler cannot drop or reorder them. */
static void write_fault_bytes(char *start, int64_t count) {
    volatile char *bytes = start;
    for (int64_t offset = 0; offset < count; offset++) bytes[offset] = FAULT_BYTE;
}

/* One trace row; 0, or -1 when malloc/realloc returned NULL for a non-zero size. */
static int replay_row(int64_t row) {
    int64_t ident = obj[row], request = size[row];
    switch (op[row]) {
    case OP_ALLOC:
    case OP_REALLOC: {
        char *fresh = op[row] == OP_ALLOC ? malloc((size_t)request) : realloc(block[ident], (size_t)request);
        if (fresh == NULL && request != 0) return -1;
        block[ident] = fresh;
        requested[ident] = request;
        granted[ident] = fresh ? (int64_t)usable_size(fresh) : 0;
        state[ident] = STATE_LIVE;
        break;
    }
    case OP_FREE:
        free(block[ident]);
        state[ident] = STATE_FREED;
        break;
    default:
        if (block[ident] && requested[ident] > 0) *(volatile char *)block[ident] = 2;
    }
    return 0;
}

static void carry_out(int64_t kind, char *addr, int64_t request, int64_t param) {
    switch (kind) {
    case F_DOUBLE_FREE: free(addr); break;
    case F_INVALID_FREE: free(addr + param); break;
    case F_FOREIGN_FREE: free(foreign + param); break;
    case F_UAF_WRITE: write_fault_bytes(addr + param, 8); break;
    case F_OVERFLOW: write_fault_bytes(addr + request, param); break;
    case F_UNDERFLOW: write_fault_bytes(addr - param, param); break;
    default:
        for (int64_t ident = 0; ident < n_ids; ident++)
            if (state[ident] == STATE_LIVE) {
                free(block[ident]);
                state[ident] = STATE_FREED;
            }
        free(addr);
    }
}

static void run_child(int64_t index, int output_fd, int64_t stop) {
    dup2(output_fd, STDERR_FILENO);
    dup2(output_fd, STDOUT_FILENO);
    close(output_fd);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    static const int fatal[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGPIPE};
    for (size_t each = 0; each < sizeof fatal / sizeof *fatal; each++) signal(fatal[each], SIG_DFL);
    int64_t at = fault_at[index], target = fault_obj[index];
    *shared_row = at - 1;
    carry_out(fault_kind[index], target >= 0 ? block[target] : NULL, target >= 0 ? requested[target] : 0,
              fault_param[index]);
    const char *hang = getenv(HANG_HOOK);
    if (hang && strtoll(hang, NULL, 10) == index)
        for (;;) pause();
    for (int64_t row = at; row < stop; row++) {
        *shared_row = row;
        if (replay_row(row) != 0) _exit(FAULT_CHILD_NULL);
    }
    _exit(0);
}

static double seconds_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* Output goes through write(2) from static buffers: no stdio buffer in the heap, nothing a child could flush. */
static char line[6 * STDERR_KEEP + 2048];

static void emit(size_t length) {
    size_t done = 0;
    while (done < length) {
        ssize_t wrote = write(STDOUT_FILENO, line + done, length - done);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) exit(2);
        done += (size_t)wrote;
    }
}

/* `text` as a JSON string body (bytes >= 0x80 as \u00XX: the stderr of a dying process need not be UTF-8). */
static size_t json_escape(char *out, const char *text, size_t length) {
    size_t used = 0;
    for (size_t at = 0; at < length; at++) {
        unsigned char byte = (unsigned char)text[at];
        if (byte == '"' || byte == '\\') {
            out[used++] = '\\';
            out[used++] = (char)byte;
        } else if (byte < 0x20 || byte >= 0x7f) {
            used += (size_t)sprintf(out + used, "\\u%04x", byte);
        } else {
            out[used++] = (char)byte;
        }
    }
    return used;
}

static void emit_fault(int64_t index, const char *end, int signal_number, int exit_status, int64_t row,
                       int64_t rows_after, int64_t request, int64_t usable, int reused, double elapsed,
                       const char *captured, size_t captured_length, const char *message) {
    static char escaped[6 * STDERR_KEEP + 16];
    size_t escaped_length = json_escape(escaped, captured, captured_length);
    escaped[escaped_length] = 0;
    int length = snprintf(line, sizeof line,
                          "{\"index\": %lld, \"end\": \"%s\", \"signal\": %d, \"exit_status\": %d, \"row\": %lld, "
                          "\"rows_after\": %lld, \"requested\": %lld, \"granted\": %lld, \"reused\": %d, "
                          "\"elapsed_us\": %lld, \"stderr\": \"%s\", \"message\": \"%s\"}\n",
                          (long long)index, end, signal_number, exit_status, (long long)row, (long long)rows_after,
                          (long long)request, (long long)usable, reused, (long long)(elapsed * 1e6), escaped,
                          message);
    if (length < 0 || (size_t)length >= sizeof line) fail("output line too long");
    emit((size_t)length);
}

/* Read what the child wrote so far, keeping the last STDERR_KEEP bytes; 1 at end of file (the child has gone). */
static int drain(int fd, char *captured, size_t *length) {
    char chunk[4096];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return 0;
        if (got == 0) return 1;
        if (*length + (size_t)got > STDERR_KEEP) {
            size_t drop = *length + (size_t)got - STDERR_KEEP;
            memmove(captured, captured + drop, *length - drop);
            *length -= drop;
        }
        memcpy(captured + *length, chunk, (size_t)got);
        *length += (size_t)got;
    }
}

static void run_fault(int64_t index, int window, double timeout) {
    static char captured[STDERR_KEEP];
    size_t captured_length = 0;
    int64_t at = fault_at[index], target = fault_obj[index];
    int64_t stop = at + window < rows ? at + window : rows;
    char *addr = target >= 0 ? block[target] : foreign;
    int64_t request = target >= 0 ? requested[target] : 0, usable = target >= 0 ? granted[target] : 0;
    int reused = 0;
    if (target >= 0 && addr != NULL)
        for (int64_t ident = 0; ident < n_ids && !reused; ident++)
            reused = state[ident] == STATE_LIVE && block[ident] == addr;
    if (target >= 0 && addr == NULL) {
        emit_fault(index, "skipped", 0, 0, -1, 0, request, usable, reused, 0, "", 0,
                   "the target has no block in this allocator (malloc(0) returned NULL)");
        return;
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) fail("pipe failed");
    *shared_row = at - 1;
    double start = seconds_now();
    pid_t child = fork();
    if (child < 0) fail("fork failed");
    if (child == 0) {
        close(pipe_fds[0]);
        run_child(index, pipe_fds[1], stop);
    }
    close(pipe_fds[1]);
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    int status = 0, open_pipe = 1, finished = 0, killed = 0;
    double deadline = start + timeout;
    while (!finished) {
        double left = deadline - seconds_now();
        if (left <= 0) {
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
            killed = 1;
            break;
        }
        if (open_pipe) {
            struct pollfd wanted = {pipe_fds[0], POLLIN, 0};
            if (poll(&wanted, 1, left > 0.1 ? 100 : (int)(left * 1000) + 1) > 0 &&
                drain(pipe_fds[0], captured, &captured_length))
                open_pipe = 0;
        } else {
            struct timespec pause_for = {0, 1000000};
            nanosleep(&pause_for, NULL);
        }
        pid_t done = waitpid(child, &status, WNOHANG);
        if (done == child) finished = 1;
    }
    drain(pipe_fds[0], captured, &captured_length);
    close(pipe_fds[0]);
    double elapsed = seconds_now() - start;
    int64_t row = *shared_row;
    char message[160] = "";
    if (killed) {
        snprintf(message, sizeof message, "hang (killed after %g s)", timeout);
        emit_fault(index, "hang", SIGKILL, 0, row, row - at + 1, request, usable, reused, elapsed, captured,
                   captured_length, message);
    } else if (WIFSIGNALED(status)) {
        emit_fault(index, "signal", WTERMSIG(status), 0, row, row - at + 1, request, usable, reused, elapsed,
                   captured, captured_length, "");
    } else {
        emit_fault(index, "exit", 0, WEXITSTATUS(status), row, WEXITSTATUS(status) == 0 ? stop - at : row - at + 1,
                   request, usable, reused, elapsed, captured, captured_length, "");
    }
}

int main(int argc, char **argv) {
    if (argc != 6) fail("usage: faultreplayer ALLOCATOR DIR N_IDS WINDOW TIMEOUT_MS");
    int aslr_disabled = disable_aslr(argv);
    allocator = -1;
    for (int index = 0; index < ALLOC_COUNT; index++)
        if (strcmp(argv[1], names_of[index]) == 0) allocator = index;
    if (allocator < 0) fail("unknown allocator (glibc, jemalloc, tcmalloc, mimalloc or scudo)");
    check_preload("faultreplayer", allocator);
    usable_size = (size_t(*)(void *))dlsym(RTLD_DEFAULT, "malloc_usable_size");
    if (usable_size == NULL) fail("malloc_usable_size is not in the process");
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);

    int64_t count[6];
    op = map_column(argv[2], "op.bin", 1, &count[0]);
    obj = map_column(argv[2], "obj.bin", 8, &count[1]);
    size = map_column(argv[2], "size.bin", 8, &count[2]);
    fault_at = map_column(argv[2], "fault_at.bin", 8, &count[3]);
    fault_kind = map_column(argv[2], "fault_kind.bin", 8, &count[4]);
    fault_obj = map_column(argv[2], "fault_obj.bin", 8, &count[5]);
    fault_param = map_column(argv[2], "fault_param.bin", 8, &n_faults);
    rows = count[0];
    if (count[1] != rows || count[2] != rows) fail("trace column lengths differ");
    if (count[3] != n_faults || count[4] != n_faults || count[5] != n_faults) fail("fault column lengths differ");
    n_ids = parse_count(argv[3], "N_IDS", 0, (int64_t)1 << 36);
    int window = (int)parse_count(argv[4], "WINDOW", 0, 1 << 30);
    double timeout = (double)parse_count(argv[5], "TIMEOUT_MS", 1, (int64_t)1 << 40) / 1000.0;
    check_inputs();

    block = map_zeroed((size_t)n_ids * sizeof(char *), MAP_PRIVATE);
    requested = map_zeroed((size_t)n_ids * sizeof(int64_t), MAP_PRIVATE);
    granted = map_zeroed((size_t)n_ids * sizeof(int64_t), MAP_PRIVATE);
    state = map_zeroed((size_t)n_ids, MAP_PRIVATE);
    shared_row = map_zeroed(4096, MAP_SHARED);
    signal(SIGPIPE, SIG_DFL);

    emit((size_t)snprintf(line, sizeof line, "{\"aslr_disabled\": %d, \"rows\": %lld, \"faults\": %lld}\n",
                          aslr_disabled, (long long)rows, (long long)n_faults));
    int64_t row = 0;
    for (int64_t index = 0; index < n_faults; index++) {
        for (; row < fault_at[index]; row++) {
            if (replay_row(row) == 0) continue;
            char message[200];
            snprintf(message, sizeof message, "the clean replay failed at row %lld (%s returned NULL for %lld bytes)",
                     (long long)row, op[row] == OP_ALLOC ? "malloc" : "realloc", (long long)size[row]);
            for (; index < n_faults; index++)
                emit_fault(index, "skipped", 0, 0, -1, 0, 0, 0, 0, 0, "", 0, message);
            return 0;
        }
        run_fault(index, window, timeout);
    }
    return 0;
}
