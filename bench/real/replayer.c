/* Clean-heap replayer: replays a trace through the process's malloc with nothing else in the heap.
 *
 * bench/real/cleanheap.py compiles this file once and runs it (with LD_PRELOAD for jemalloc, tcmalloc,
 * mimalloc or Scudo; glibc without).  Unlike bench/real/__init__.py's Python child, this process has made almost no heap
 * allocations before the replay, so the heap growth it measures is not hidden by memory the host freed
 * into the allocator earlier.
 *
 * Usage: replayer ALLOCATOR OP_FILE OBJ_FILE SIZE_FILE N_IDS
 *   OP_FILE: int8 per row (0 alloc, 1 free, 2 realloc, 3 access); OBJ_FILE: int64 dense object id
 *   (0..N_IDS-1) per row; SIZE_FILE: int64 per row.  ALLOCATOR (glibc|jemalloc|tcmalloc|mimalloc|scudo)
 *   picks the statistic read through dlsym(RTLD_DEFAULT, ...):
 *     glibc     mallinfo2() arena + hblkhd
 *     jemalloc  mallctl("epoch") then stats.active + (stats.arenas.<all>.pdirty + pmuzzy) x page: the pages
 *               of active and dirty extents (stats.mapped less the base allocator's metadata blocks)
 *     tcmalloc  MallocExtension_GetNumericProperty generic.heap_size - tcmalloc.pageheap_unmapped_bytes
 *     mimalloc  mi_process_info current_commit
 *     scudo     Scudo's own mallinfo2() hblkhd (its StatMapped counter: primary regions + secondary blocks)
 *   falling back to VmRSS when the symbol is missing.
 *
 * Preload check: for every allocator but glibc, a symbol only that library exports (mallctl,
 * MallocExtension_GetNumericProperty, mi_version, __scudo_print_stats) must resolve, and malloc must be
 * defined by the same shared object (dladdr); otherwise exit status 2 with a message.  Scudo needs it
 * most: glibc also has mallinfo2, so without the check a preload that did not take would be measured
 * as glibc under Scudo's name.
 *
 * All of the replayer's own memory (columns, pointer table) is mmap'ed, never malloc'ed; the pointer
 * table is pre-faulted (MAP_POPULATE) and the columns are read in full before the baseline, so VmRSS growth
 * is the heap's.  A first pass (no allocation) finds the row where live requested bytes first reach their
 * peak; the replay then reads the heap statistic before any replay allocation, at that row and after the
 * last row, and VmRSS at the same points.  Each new block (malloc, realloc) gets one byte written per
 * 4 KiB page so its memory is real; ACCESS writes the block's first byte.
 *
 * Besides the statistic it reads, at the baseline, the bytes the allocator counts as handed out
 * (in_use_start: glibc uordblks + hblkhd, jemalloc stats.allocated, tcmalloc
 * generic.current_allocated_bytes; mimalloc and Scudo: none, -1), and it samples the process's anonymous
 * resident memory (/proc/self/statm resident - shared: RssAnon, without the file pages of the libraries
 * that fault in during the replay) every RSS_EVERY rows, at the peak row and at the end: its largest
 * growth over the baseline is rss_anon_peak_growth.  bench/real/cleanheap.py turns these into one peak
 * footprint per allocator (its docstring says which and why).
 *
 * Placement (bench/real/placement.py): with ALLOCLAB_ADDRESSES=PATH in the environment, the address each
 * ALLOC / REALLOC row got is written to PATH (int64 per row, 0 for the other rows; the file is mmap'ed
 * before the baseline, never malloc'ed) and the JSON says where the warm-up malloc(16) block was
 * (warm_address), which a model replaying the same warm-up puts at its own first address.
 *
 * Output (stdout, one JSON object): peak_heap_bytes = max(growth at the peak row, growth at the end),
 * heap_growth_at_peak_row, heap_growth_at_end, heap_start, in_use_start, measure, rss_growth_bytes (VmRSS
 * at the peak row - at start), rss_anon_start, rss_anon_peak_growth, peak_live_requested, peak_row, rows.  malloc/realloc returning NULL for a non-zero
 * size: {"error": ..., "row": N} and exit status 1.  Bad usage or unreadable input: exit status 2.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload.h"

enum { OP_ALLOC = 0, OP_FREE = 1, OP_REALLOC = 2, OP_ACCESS = 3 };
enum { ALLOC_GLIBC, ALLOC_JEMALLOC, ALLOC_TCMALLOC, ALLOC_MIMALLOC, ALLOC_SCUDO, ALLOC_COUNT };

typedef struct mallinfo2 (*mallinfo2_fn)(void);
typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);
typedef int (*tc_property_fn)(const char *, size_t *);
typedef void (*mi_process_info_fn)(size_t *, size_t *, size_t *, size_t *, size_t *, size_t *, size_t *,
                                   size_t *);

static int allocator;
static void *stat_fn;
static const char *measure = "VmRSS (allocator statistic not found)";

static void fail(const char *message) {
    fprintf(stderr, "replayer: %s\n", message);
    exit(2);
}

/* VmRSS in bytes, read with plain syscalls (no stdio, so no malloc). */
static int64_t vm_rss(void) {
    char buffer[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t length = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (length <= 0) return -1;
    buffer[length] = 0;
    char *line = strstr(buffer, "VmRSS:");
    if (!line) return -1;
    return strtoll(line + 6, NULL, 10) * 1024;
}

/* Anonymous resident bytes (statm resident - shared pages), read with plain syscalls. */
static int64_t rss_anon(void) {
    char buffer[256];
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return -1;
    ssize_t length = read(fd, buffer, sizeof buffer - 1);
    close(fd);
    if (length <= 0) return -1;
    buffer[length] = 0;
    char *cursor = buffer;
    strtoll(cursor, &cursor, 10); /* total program size */
    int64_t resident = strtoll(cursor, &cursor, 10);
    int64_t shared = strtoll(cursor, &cursor, 10);
    return (resident - shared) * (int64_t)sysconf(_SC_PAGESIZE);
}

enum { RSS_EVERY = 1024 };

static void setup_stats(void) {
    static const char *symbols[] = {"mallinfo2", "mallctl", "MallocExtension_GetNumericProperty",
                                    "mi_process_info", "mallinfo2"};
    static const char *measures[] = {
        "mallinfo2 arena + hblkhd (sbrk/mmap heap + mmapped chunks)",
        "mallctl stats.active + (pdirty + pmuzzy) x page (active and dirty extents, base metadata not counted)",
        "generic.heap_size - tcmalloc.pageheap_unmapped_bytes (page heap mapped from the OS)",
        "mi_process_info current_commit (memory mimalloc has committed)",
        "Scudo mallinfo2 hblkhd (StatMapped: bytes mapped for the primary's size-class regions and the "
        "secondary's large blocks)"};
    stat_fn = dlsym(RTLD_DEFAULT, symbols[allocator]);
    if (stat_fn) measure = measures[allocator];
}


/* Heap the allocator has taken from the OS, by its own statistic (VmRSS when there is none). */
static int64_t heap_bytes(void) {
    if (!stat_fn) return vm_rss();
    switch (allocator) {
    case ALLOC_GLIBC: {
        struct mallinfo2 info = ((mallinfo2_fn)stat_fn)();
        return (int64_t)(info.arena + info.hblkhd);
    }
    case ALLOC_SCUDO: {
        struct mallinfo2 info = ((mallinfo2_fn)stat_fn)();
        return (int64_t)info.hblkhd;
    }
    case ALLOC_JEMALLOC: { /* 4096 = MALLCTL_ARENAS_ALL: the sum over all arenas */
        uint64_t epoch = 1;
        size_t active = 0, dirty = 0, muzzy = 0, page = 0, length = sizeof active;
        ((mallctl_fn)stat_fn)("epoch", NULL, NULL, &epoch, sizeof epoch);
        if (((mallctl_fn)stat_fn)("stats.active", &active, &length, NULL, 0) != 0) return -1;
        if (((mallctl_fn)stat_fn)("stats.arenas.4096.pdirty", &dirty, &length, NULL, 0) != 0) return -1;
        if (((mallctl_fn)stat_fn)("stats.arenas.4096.pmuzzy", &muzzy, &length, NULL, 0) != 0) return -1;
        if (((mallctl_fn)stat_fn)("arenas.page", &page, &length, NULL, 0) != 0) return -1;
        return (int64_t)(active + (dirty + muzzy) * page);
    }
    case ALLOC_TCMALLOC: {
        size_t heap = 0, unmapped = 0;
        if (!((tc_property_fn)stat_fn)("generic.heap_size", &heap)) return -1;
        ((tc_property_fn)stat_fn)("tcmalloc.pageheap_unmapped_bytes", &unmapped);
        return (int64_t)heap - (int64_t)unmapped;
    }
    default: {
        size_t values[8] = {0};
        ((mi_process_info_fn)stat_fn)(&values[0], &values[1], &values[2], &values[3], &values[4], &values[5],
                                      &values[6], &values[7]);
        return (int64_t)values[5];
    }
    }
}

/* Bytes the allocator counts as handed out to the program (-1: no such statistic). */
static int64_t in_use_bytes(void) {
    if (!stat_fn) return -1;
    switch (allocator) {
    case ALLOC_GLIBC: {
        struct mallinfo2 info = ((mallinfo2_fn)stat_fn)();
        return (int64_t)(info.uordblks + info.hblkhd);
    }
    case ALLOC_JEMALLOC: {
        uint64_t epoch = 1;
        size_t allocated = 0, length = sizeof allocated;
        ((mallctl_fn)stat_fn)("epoch", NULL, NULL, &epoch, sizeof epoch);
        if (((mallctl_fn)stat_fn)("stats.allocated", &allocated, &length, NULL, 0) != 0) return -1;
        return (int64_t)allocated;
    }
    case ALLOC_TCMALLOC: {
        size_t allocated = 0;
        if (!((tc_property_fn)stat_fn)("generic.current_allocated_bytes", &allocated)) return -1;
        return (int64_t)allocated;
    }
    default:
        return -1;
    }
}

static void *map_file(const char *path, size_t *length) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) fail("cannot open a column file");
    struct stat info;
    if (fstat(fd, &info) != 0) fail("cannot stat a column file");
    *length = (size_t)info.st_size;
    void *data = NULL;
    if (*length > 0) {
        data = mmap(NULL, *length, PROT_READ, MAP_PRIVATE, fd, 0);
        if (data == MAP_FAILED) fail("cannot map a column file");
    }
    close(fd);
    return data;
}

static void *map_zeroed(size_t length) {
    void *data = mmap(NULL, length ? length : 1, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (data == MAP_FAILED) fail("cannot map the pointer table");
    return data;
}

static void touch_pages(char *block, int64_t size) {
    volatile char *bytes = block;
    for (int64_t offset = 0; offset < size; offset += 4096) bytes[offset] = 1;
}

int main(int argc, char **argv) {
    if (argc != 6) fail("usage: replayer ALLOCATOR OP_FILE OBJ_FILE SIZE_FILE N_IDS");
    allocator = -1;
    for (int index = 0; index < ALLOC_COUNT; index++)
        if (strcmp(argv[1], names_of[index]) == 0) allocator = index;
    if (allocator < 0) fail("unknown allocator (glibc, jemalloc, tcmalloc, mimalloc or scudo)");
    check_preload("replayer", allocator);
    size_t op_length, obj_length, size_length;
    const int8_t *op = map_file(argv[2], &op_length);
    const int64_t *obj = map_file(argv[3], &obj_length);
    const int64_t *size = map_file(argv[4], &size_length);
    int64_t rows = (int64_t)op_length;
    if (obj_length != op_length * 8 || size_length != op_length * 8) fail("column lengths differ");
    int64_t n_ids = strtoll(argv[5], NULL, 10);
    if (n_ids < 0) fail("bad N_IDS");
    for (int64_t row = 0; row < rows; row++)
        if (obj[row] < 0 || obj[row] >= n_ids) fail("object id out of range");
    char **pointers = map_zeroed((size_t)n_ids * sizeof(char *));
    int64_t *current = map_zeroed((size_t)n_ids * sizeof(int64_t));
    int64_t *addresses = NULL;
    const char *addresses_path = getenv("ALLOCLAB_ADDRESSES");
    if (addresses_path && *addresses_path) {
        int fd = open(addresses_path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, (off_t)(rows ? rows : 1) * 8) != 0) fail("cannot create the addresses file");
        addresses = mmap(NULL, (size_t)(rows ? rows : 1) * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (addresses == MAP_FAILED) fail("cannot map the addresses file");
    }

    /* First pass: peak live requested bytes and the first row reaching it (no allocation). */
    int64_t live = 0, peak_live = 0, peak_row = -1;
    for (int64_t row = 0; row < rows; row++) {
        int64_t ident = obj[row];
        if (op[row] == OP_ALLOC || op[row] == OP_REALLOC) {
            live += size[row] - current[ident];
            current[ident] = size[row];
        } else if (op[row] == OP_FREE) {
            live -= current[ident];
            current[ident] = 0;
        }
        if (live > peak_live) {
            peak_live = live;
            peak_row = row;
        }
    }
    memset(current, 0, (size_t)n_ids * sizeof(int64_t));

    setup_stats();
    char *volatile warm = malloc(16); /* let the allocator initialise itself before the baseline */
    int64_t warm_address = (int64_t)(intptr_t)warm;
    free(warm);
    heap_bytes();
    int64_t heap_start = heap_bytes(), rss_start = vm_rss(), in_use_start = in_use_bytes();
    int64_t heap_at_peak = heap_start, rss_at_peak = rss_start;
    int64_t anon_start = rss_anon(), anon_peak = anon_start;

    for (int64_t row = 0; row < rows; row++) {
        int64_t ident = obj[row];
        int64_t request = size[row];
        switch (op[row]) {
        case OP_ALLOC:
        case OP_REALLOC: {
            char *block = op[row] == OP_ALLOC ? malloc((size_t)request) : realloc(pointers[ident], (size_t)request);
            if (block == NULL && request != 0) {
                printf("{\"error\": \"%s returned NULL for %lld bytes\", \"row\": %lld}\n",
                       op[row] == OP_ALLOC ? "malloc" : "realloc", (long long)request, (long long)row);
                return 1;
            }
            if (op[row] == OP_ALLOC && pointers[ident]) free(pointers[ident]);
            pointers[ident] = block;
            current[ident] = request;
            if (addresses) addresses[row] = (int64_t)(intptr_t)block;
            touch_pages(block, request);
            break;
        }
        case OP_FREE:
            free(pointers[ident]);
            pointers[ident] = NULL;
            current[ident] = 0;
            break;
        default:
            if (pointers[ident] && current[ident] > 0) *(volatile char *)pointers[ident] = 2;
        }
        if (row == peak_row) {
            heap_at_peak = heap_bytes();
            rss_at_peak = vm_rss();
        }
        if (row == peak_row || row % RSS_EVERY == RSS_EVERY - 1) {
            int64_t anon = rss_anon();
            if (anon > anon_peak) anon_peak = anon;
        }
    }
    int64_t heap_end = heap_bytes(), anon_end = rss_anon();
    if (anon_end > anon_peak) anon_peak = anon_end;
    int64_t growth_peak = heap_at_peak - heap_start, growth_end = heap_end - heap_start;
    printf("{\"peak_heap_bytes\": %lld, \"heap_growth_at_peak_row\": %lld, \"heap_growth_at_end\": %lld, "
           "\"heap_start\": %lld, \"in_use_start\": %lld, \"measure\": \"%s\", \"rss_growth_bytes\": %lld, "
           "\"rss_start\": %lld, \"rss_anon_start\": %lld, \"rss_anon_peak_growth\": %lld, "
           "\"peak_live_requested\": %lld, \"peak_row\": %lld, \"rows\": %lld, \"warm_address\": %lld}\n",
           (long long)(growth_peak > growth_end ? growth_peak : growth_end), (long long)growth_peak,
           (long long)growth_end, (long long)heap_start, (long long)in_use_start, measure,
           (long long)(rss_at_peak - rss_start), (long long)rss_start, (long long)anon_start,
           (long long)(anon_peak - anon_start), (long long)peak_live, (long long)peak_row, (long long)rows,
           (long long)warm_address);
    return 0;
}
