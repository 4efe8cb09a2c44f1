/* Threaded replayer: a multi-thread trace replayed through the process's malloc, one OS thread per trace thread.
 *
 * bench/real/threaded.py compiles this file once (bench.real.cleanheap.replayer_binary, with -pthread) and runs it,
 * with LD_PRELOAD for jemalloc, tcmalloc, mimalloc or Scudo (glibc without).  The parent lays out a schedule
 * (bench.real.threaded.build_schedule): every row goes to the OS thread of its trace thread, each thread's rows
 * in trace order; every object lifetime (an ALLOC and the rows naming that object until its FREE) gets a table
 * entry, `slot`, and each of its rows a sequence number, `seq` (the ALLOC 0, the next row 1, ...).
 *
 * Order.  Entry s holds the block and an atomic version: the number of the lifetime's rows done so far.  A row
 * with seq k on slot s runs only when version[s] == k (acquire load); after its malloc, free or realloc the
 * thread stores version[s] = k + 1 (release store).  So a FREE of a block allocated by another thread runs after
 * that ALLOC (and after every row between), a REALLOC or ACCESS after the row before it, and the rows of one
 * thread run in their own order; rows on different objects never wait for each other.  There is no lock in the
 * measured loop: a row that finds its slot not ready (a "wait") spins SPINS pause instructions, then calls
 * sched_yield() until it is (what lets the thread it waits for run when there are more threads than cores).
 * Deadlock is impossible: each thread runs its rows in trace order and each row waits only for the row before
 * it on its slot, an earlier trace row; so the earliest row not yet done can always run.  The replayer checks
 * that before the first malloc (below), and a watchdog ends a wait that lasts WAIT_TIMEOUT_MS anyway (exit
 * status 4 with a JSON line naming the row): a bug can never hang the caller.
 *
 * Entries are 16 bytes (block pointer, version); the parent numbers the slots of each allocating thread apart
 * (each thread's run of slots starts on a 64-byte line), so threads that never share an object never share a
 * table line: the replayer adds no false sharing of its own.  A hand-off (a block freed by another thread)
 * moves the entry's line between cores, as the pointer's hand-off would in a program.
 *
 * Usage: threadreplayer ALLOCATOR DIR N_SLOTS REPEATS TOUCH WAIT_TIMEOUT_MS
 *   DIR holds raw little-endian columns, the rows grouped by OS thread (thread 0's rows first, each thread's in
 *   trace order): op.bin (int8: 0 alloc, 1 free, 2 realloc, 3 access), slot.bin (int64, 0..N_SLOTS-1),
 *   size.bin (int64: bytes for ALLOC/REALLOC; for ACCESS 1 if the object's requested size is > 0, else 0),
 *   seq.bin (int64), row.bin (int64: the row's index in the trace), and thread_rows.bin (int64 per OS thread:
 *   its number of rows; 1..MAX_THREADS threads).  TOUCH: 0 none, 1 first (one byte at the start of each new
 *   block), 2 page (one byte per 4 KiB page, as bench/real/replayer.c).  ACCESS writes the block's first byte.
 *   Checked before the first malloc: op codes, slot and size ranges, that row.bin is a permutation of the trace
 *   rows increasing within each thread, and that in trace order each slot's rows have seq 0, 1, 2, ... with the
 *   ALLOC at 0 and nothing after its FREE.  A bad input is exit status 2 with a message, never a crash or hang.
 *
 * Timing.  The OS threads are created once and run REPEATS + 1 replays of the whole schedule: the first is the
 * warm-up (thread caches, the allocator's first mappings, the schedule's pages), its time reported apart.  Each
 * replay starts at a barrier of all threads; a thread takes the clock (CLOCK_MONOTONIC) as it leaves the
 * barrier and after its last row; the replay's wall time is the last end minus the first start.  Between
 * replays (outside the clock, threads parked at a barrier) the main thread counts the blocks still live, frees
 * them and zeroes the versions, so every replay starts with no live block of the trace.
 *
 * Output (stdout, one JSON object): os_threads, rows, repeats, touch, nprocs (get_nprocs) and affinity_cores
 * (CPU_COUNT of this process's affinity mask), warmup_seconds, thread_rows (per thread); per timed replay
 * `seconds` (wall) and `live_end` (blocks still live after the last row, freed before the next replay); and per
 * timed replay a list per thread: thread_seconds, waits (rows that found their slot not ready), yields,
 * allocs (malloc calls), frees (blocks freed by FREE rows), null_frees (FREE rows that found no block: 0 unless
 * the order broke, or a realloc to 0 bytes returned NULL, as glibc's does after freeing the block).  malloc/realloc returning NULL for a non-zero size: {"error": ..., "row": N} and exit
 * status 1.  Test hook: ALLOCLAB_THREADREPLAYER_DROP=R makes trace row R never publish its version (the
 * watchdog's test).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/sysinfo.h>
#include <time.h>

#define REPLAYER_NAME "threadreplayer"
#include "columns.h"
#include "preload.h"

enum { OP_ALLOC = 0, OP_FREE = 1, OP_REALLOC = 2, OP_ACCESS = 3, OP_MASK = 3, OP_DROP = 16 };
enum { TOUCH_NONE = 0, TOUCH_FIRST = 1, TOUCH_PAGE = 2 };

#define MAX_THREADS 256
#define MAX_REPEATS 1000
#define MAX_REQUEST ((int64_t)1 << 40)
#define SPINS 256
#define EXIT_OOM 1
#define EXIT_WATCHDOG 4
#define DROP_HOOK "ALLOCLAB_THREADREPLAYER_DROP"

/* One row as a thread runs it (32 bytes, read in order). */
typedef struct {
    int64_t slot, size, seq, row; /* row: the trace row (messages) */
} step_t;

typedef struct {
    char *block;
    _Atomic int64_t version;
} entry_t;

/* A thread's figures of one replay, on a line of its own. */
typedef struct {
    double start, end;
    int64_t waits, yields, allocs, frees, null_frees;
} __attribute__((aligned(64))) tally_t;

typedef struct {
    int index;
    const step_t *steps;
    const int8_t *ops;
    int64_t count;
    tally_t tally;
} __attribute__((aligned(64))) worker_t;

static worker_t workers[MAX_THREADS];
static entry_t *table;
static int64_t n_slots, repeats;
static int touch_mode, os_threads;
static double wait_timeout;
static pthread_barrier_t start_barrier, end_barrier;
static atomic_int ending; /* the first thread to hit the watchdog or a NULL reports; the others stop there */

static double now(void) {
    struct timespec clock;
    clock_gettime(CLOCK_MONOTONIC, &clock);
    return (double)clock.tv_sec + 1e-9 * (double)clock.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* One JSON line, then the whole process ends: a second thread ending meanwhile just parks. */
static void end_process(int status, const char *message, int64_t row) {
    if (atomic_exchange(&ending, 1)) for (;;) pause();
    printf("{\"error\": \"%s\", \"row\": %lld}\n", message, (long long)row);
    fflush(stdout);
    _exit(status);
}

static void wait_for(const step_t *step, tally_t *tally, int index) {
    _Atomic int64_t *version = &table[step->slot].version;
    for (int spin = 0; spin < SPINS; spin++) {
        cpu_relax();
        if (atomic_load_explicit(version, memory_order_acquire) == step->seq) return;
    }
    double deadline = now() + wait_timeout;
    for (int64_t round = 1;; round++) {
        sched_yield();
        tally->yields++;
        if (atomic_load_explicit(version, memory_order_acquire) == step->seq) return;
        if ((round & 63) == 0 && now() > deadline) {
            char message[300];
            snprintf(message, sizeof message, "watchdog: OS thread %d waited %.1f s for the row before trace row %lld "
                     "on its object (operation %lld of the object, %lld done): a dependency that never ran", index,
                     wait_timeout, (long long)step->row, (long long)step->seq,
                     (long long)atomic_load(version));
            end_process(EXIT_WATCHDOG, message, step->row);
        }
    }
}

static void write_block(char *block, int64_t request) {
    if (touch_mode == TOUCH_NONE || request <= 0) return;
    volatile char *bytes = block;
    int64_t stride = touch_mode == TOUCH_PAGE ? 4096 : request;
    for (int64_t offset = 0; offset < request; offset += stride) bytes[offset] = 1;
}

static void null_block(const char *function, const step_t *step) {
    char message[120];
    snprintf(message, sizeof message, "%s returned NULL for %lld bytes", function, (long long)step->size);
    end_process(EXIT_OOM, message, step->row);
}

/* One replay of this thread's rows. */
static void run_steps(worker_t *worker) {
    tally_t *tally = &worker->tally;
    for (int64_t at = 0; at < worker->count; at++) {
        const step_t *step = &worker->steps[at];
        int code = worker->ops[at];
        entry_t *entry = &table[step->slot];
        if (step->seq && atomic_load_explicit(&entry->version, memory_order_acquire) != step->seq) {
            tally->waits++;
            wait_for(step, tally, worker->index);
        }
        switch (code & OP_MASK) {
        case OP_ALLOC: {
            char *block = malloc((size_t)step->size);
            if (block == NULL && step->size != 0) null_block("malloc", step);
            write_block(block, step->size);
            entry->block = block;
            tally->allocs++;
            break;
        }
        case OP_REALLOC: {
            char *block = realloc(entry->block, (size_t)step->size);
            if (block == NULL && step->size != 0) null_block("realloc", step);
            write_block(block, step->size);
            entry->block = block;
            break;
        }
        case OP_FREE:
            if (entry->block) {
                free(entry->block);
                tally->frees++;
            } else {
                tally->null_frees++;
            }
            entry->block = NULL;
            break;
        default:
            if (entry->block && step->size > 0) *(volatile char *)entry->block = 2;
        }
        if (!(code & OP_DROP)) atomic_store_explicit(&entry->version, step->seq + 1, memory_order_release);
    }
}

static void *thread_main(void *argument) {
    worker_t *worker = argument;
    for (int64_t replay = 0; replay <= repeats; replay++) {
        pthread_barrier_wait(&start_barrier);
        memset(&worker->tally, 0, sizeof worker->tally);
        worker->tally.start = now();
        run_steps(worker);
        worker->tally.end = now();
        pthread_barrier_wait(&end_barrier);
    }
    return NULL;
}

/* The checks of the header comment; `seen` and `counts` are scratch tables, unmapped afterwards. */
static void check_schedule(const int8_t *op, const int64_t *slot, const int64_t *size, const int64_t *seq,
                           const int64_t *row, const int64_t *thread_rows, int64_t rows) {
    int64_t *position = map_zeroed((size_t)rows * sizeof(int64_t), MAP_PRIVATE); /* trace row -> index + 1 */
    int64_t *done = map_zeroed((size_t)n_slots * sizeof(int64_t), MAP_PRIVATE);  /* rows seen per slot */
    int8_t *freed = map_zeroed((size_t)n_slots, MAP_PRIVATE);
    int64_t index = 0;
    for (int thread = 0; thread < os_threads; thread++) {
        if (thread_rows[thread] < 0 || thread_rows[thread] > rows - index) fail_row("bad row count of thread", thread);
        int64_t previous = -1;
        for (int64_t end = index + thread_rows[thread]; index < end; index++) {
            if (op[index] < OP_ALLOC || op[index] > OP_ACCESS) fail_row("unknown op code at index", index);
            if (slot[index] < 0 || slot[index] >= n_slots) fail_row("slot out of range at index", index);
            if (size[index] < 0 || size[index] > MAX_REQUEST) fail_row("size out of range at index", index);
            if (row[index] < 0 || row[index] >= rows || position[row[index]])
                fail_row("trace rows are not a permutation at index", index);
            if (row[index] <= previous) fail_row("a thread's rows are not in trace order at index", index);
            previous = row[index];
            position[row[index]] = index + 1;
        }
    }
    if (index != rows) fail("the threads' row counts do not add up to the rows");
    for (int64_t trace_row = 0; trace_row < rows; trace_row++) {
        int64_t at = position[trace_row] - 1, entry = slot[at];
        if (seq[at] != done[entry]) fail_row("a row's seq is not its place on its slot at trace row", trace_row);
        if ((op[at] == OP_ALLOC) != (seq[at] == 0) || freed[entry])
            fail_row("a slot's rows are not one lifetime (ALLOC first, nothing after FREE) at trace row", trace_row);
        done[entry]++;
        freed[entry] = op[at] == OP_FREE;
    }
    munmap(position, (size_t)rows * sizeof(int64_t));
    munmap(done, (size_t)n_slots * sizeof(int64_t));
    munmap(freed, (size_t)n_slots);
}

/* A JSON list of one figure per timed replay and thread: [[t0, t1, ...], ...]. */
static void print_per_thread(const char *name, const tally_t *tallies, size_t offset, int as_seconds) {
    printf(", \"%s\": [", name);
    for (int64_t replay = 0; replay < repeats; replay++) {
        printf(replay ? ", [" : "[");
        for (int thread = 0; thread < os_threads; thread++) {
            const tally_t *tally = &tallies[replay * os_threads + thread];
            if (as_seconds) printf(thread ? ", %.9f" : "%.9f", tally->end - tally->start);
            else printf(thread ? ", %lld" : "%lld", (long long)*(const int64_t *)((const char *)tally + offset));
        }
        printf("]");
    }
    printf("]");
}

static void print_list(const char *name, const int64_t *values) {
    printf(", \"%s\": [", name);
    for (int64_t replay = 0; replay < repeats; replay++) printf(replay ? ", %lld" : "%lld", (long long)values[replay]);
    printf("]");
}

int main(int argc, char **argv) {
    if (argc != 7) fail("usage: threadreplayer ALLOCATOR DIR N_SLOTS REPEATS TOUCH WAIT_TIMEOUT_MS");
    int allocator = -1;
    for (int index = 0; index < 5; index++)
        if (strcmp(argv[1], names_of[index]) == 0) allocator = index;
    if (allocator < 0) fail("unknown allocator (glibc, jemalloc, tcmalloc, mimalloc or scudo)");
    check_preload(REPLAYER_NAME, allocator);
    int64_t count[6], threads;
    const int8_t *op = map_column(argv[2], "op.bin", 1, &count[0]);
    const int64_t *slot = map_column(argv[2], "slot.bin", 8, &count[1]);
    const int64_t *size = map_column(argv[2], "size.bin", 8, &count[2]);
    const int64_t *seq = map_column(argv[2], "seq.bin", 8, &count[3]);
    const int64_t *row = map_column(argv[2], "row.bin", 8, &count[4]);
    const int64_t *thread_rows = map_column(argv[2], "thread_rows.bin", 8, &threads);
    int64_t rows = count[0];
    if (count[1] != rows || count[2] != rows || count[3] != rows || count[4] != rows)
        fail("column lengths differ");
    if (rows < 1) fail("no rows");
    if (threads < 1 || threads > MAX_THREADS) fail("thread_rows.bin must name 1 to 256 threads");
    os_threads = (int)threads;
    n_slots = parse_count(argv[3], "N_SLOTS", 1, (int64_t)1 << 36);
    repeats = parse_count(argv[4], "REPEATS", 1, MAX_REPEATS);
    touch_mode = (int)parse_count(argv[5], "TOUCH", TOUCH_NONE, TOUCH_PAGE);
    wait_timeout = (double)parse_count(argv[6], "WAIT_TIMEOUT_MS", 1, (int64_t)1 << 40) / 1000.0;
    check_schedule(op, slot, size, seq, row, thread_rows, rows);

    /* The schedule as the threads read it, and the table: mmap'ed and pre-faulted, never malloc'ed. */
    step_t *steps = map_zeroed((size_t)rows * sizeof(step_t), MAP_PRIVATE);
    int8_t *ops = map_zeroed((size_t)rows, MAP_PRIVATE);
    const char *drop = getenv(DROP_HOOK);
    int64_t drop_row = drop ? strtoll(drop, NULL, 10) : -1;
    for (int64_t index = 0; index < rows; index++) {
        steps[index] = (step_t){slot[index], size[index], seq[index], row[index]};
        ops[index] = (int8_t)(op[index] | (row[index] == drop_row ? OP_DROP : 0));
    }
    table = map_zeroed((size_t)n_slots * sizeof(entry_t), MAP_PRIVATE);
    tally_t *tallies = map_zeroed((size_t)(repeats * os_threads) * sizeof(tally_t), MAP_PRIVATE);

    pthread_barrier_init(&start_barrier, NULL, (unsigned)os_threads + 1);
    pthread_barrier_init(&end_barrier, NULL, (unsigned)os_threads + 1);
    int64_t first = 0;
    for (int thread = 0; thread < os_threads; thread++) {
        workers[thread] = (worker_t){.index = thread, .steps = steps + first, .ops = ops + first,
                                     .count = thread_rows[thread]};
        first += thread_rows[thread];
        pthread_t handle;
        if (pthread_create(&handle, NULL, thread_main, &workers[thread]) != 0) fail("pthread_create failed");
        pthread_detach(handle);
    }
    double warmup_seconds = 0;
    double *walls = map_zeroed((size_t)repeats * sizeof(double), MAP_PRIVATE);
    int64_t *live_end = map_zeroed((size_t)repeats * sizeof(int64_t), MAP_PRIVATE);
    for (int64_t replay = 0; replay <= repeats; replay++) {
        pthread_barrier_wait(&start_barrier);
        pthread_barrier_wait(&end_barrier);
        double start = workers[0].tally.start, end = workers[0].tally.end;
        for (int thread = 0; thread < os_threads; thread++) {
            if (workers[thread].tally.start < start) start = workers[thread].tally.start;
            if (workers[thread].tally.end > end) end = workers[thread].tally.end;
            if (replay) tallies[(replay - 1) * os_threads + thread] = workers[thread].tally;
        }
        int64_t live = 0;
        for (int64_t entry = 0; entry < n_slots; entry++) { /* outside the clock: the next replay starts empty */
            if (table[entry].block) {
                free(table[entry].block);
                live++;
            }
            table[entry].block = NULL;
            atomic_store_explicit(&table[entry].version, 0, memory_order_relaxed);
        }
        if (replay == 0) {
            warmup_seconds = end - start;
        } else {
            walls[replay - 1] = end - start;
            live_end[replay - 1] = live;
        }
    }

    cpu_set_t affinity;
    int affinity_cores = sched_getaffinity(0, sizeof affinity, &affinity) == 0 ? CPU_COUNT(&affinity) : -1;
    printf("{\"os_threads\": %d, \"rows\": %lld, \"repeats\": %lld, \"touch\": %d, \"nprocs\": %d, "
           "\"affinity_cores\": %d, \"warmup_seconds\": %.9f, \"seconds\": [", os_threads, (long long)rows,
           (long long)repeats, touch_mode, get_nprocs(), affinity_cores, warmup_seconds);
    for (int64_t replay = 0; replay < repeats; replay++) printf(replay ? ", %.9f" : "%.9f", walls[replay]);
    printf("], \"thread_rows\": [");
    for (int thread = 0; thread < os_threads; thread++)
        printf(thread ? ", %lld" : "%lld", (long long)thread_rows[thread]);
    printf("]");
    print_per_thread("thread_seconds", tallies, 0, 1);
    print_per_thread("waits", tallies, offsetof(tally_t, waits), 0);
    print_per_thread("yields", tallies, offsetof(tally_t, yields), 0);
    print_per_thread("allocs", tallies, offsetof(tally_t, allocs), 0);
    print_per_thread("frees", tallies, offsetof(tally_t, frees), 0);
    print_per_thread("null_frees", tallies, offsetof(tally_t, null_frees), 0);
    print_list("live_end", live_end);
    printf("}\n");
    return 0;
}
