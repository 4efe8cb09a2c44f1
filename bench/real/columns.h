/* What bench/real/faultreplayer.c and bench/real/threadreplayer.c share: reading their inputs.
 *
 * The includer defines REPLAYER_NAME (the program's name, the prefix of every message) before including this.
 * fail() and fail_row() (a message naming a row or an index) end the program with exit status 2 (bad usage or
 * input: never a crash);
 * map_column() maps DIR/NAME, a raw little-endian column of ITEM-byte values, read-only and pre-faulted, and
 * says how many values it holds; map_zeroed() maps zeroed, pre-faulted memory (the replayers' tables never
 * come from malloc, so the heap holds only the trace's blocks); parse_count() reads a decimal argument in
 * LOW..HIGH.  bench/real/cleanheap.py hashes this header with each source it compiles.
 */
#ifndef ALLOCLAB_COLUMNS_H
#define ALLOCLAB_COLUMNS_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef REPLAYER_NAME
#error "define REPLAYER_NAME before including columns.h"
#endif

static void fail(const char *message) {
    fprintf(stderr, REPLAYER_NAME ": %s\n", message);
    exit(2);
}

static void fail_row(const char *what, int64_t index) {
    fprintf(stderr, REPLAYER_NAME ": %s (at %lld)\n", what, (long long)index);
    exit(2);
}

static const void *map_column(const char *directory, const char *name, size_t item, int64_t *count) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", directory, name) >= (int)sizeof path) fail("column path too long");
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, REPLAYER_NAME ": cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    struct stat info;
    if (fstat(fd, &info) != 0) fail("cannot stat a column file");
    if (info.st_size % (off_t)item != 0) {
        fprintf(stderr, REPLAYER_NAME ": %s is %lld bytes, not a multiple of %zu\n", name, (long long)info.st_size,
                item);
        exit(2);
    }
    *count = (int64_t)(info.st_size / (off_t)item);
    const void *data = NULL;
    if (info.st_size > 0) {
        data = mmap(NULL, (size_t)info.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (data == MAP_FAILED) fail("cannot map a column file");
    }
    close(fd);
    return data;
}

static void *map_zeroed(size_t length, int flags) {
    void *data = mmap(NULL, length ? length : 1, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (data == MAP_FAILED) fail("cannot map a table");
    return data;
}

static int64_t parse_count(const char *text, const char *what, int64_t low, int64_t high) {
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || end == text || *end || value < low || value > high) {
        fprintf(stderr, REPLAYER_NAME ": bad %s '%s' (%lld..%lld)\n", what, text, (long long)low, (long long)high);
        exit(2);
    }
    return (int64_t)value;
}

#endif
