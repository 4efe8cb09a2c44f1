/* usable: what a real allocator says is the usable size of each request size (bench/real/usable.py).
 *
 *   usable ALLOCATOR SIZES OUT [good]
 *
 * SIZES is a file of int64 request sizes (native byte order); OUT gets one int64 per size, in the same
 * order: the library's own answer for that request.
 *   glibc     malloc_usable_size(p) for p = malloc(size), then free(p): every size is malloc'ed and freed
 *             in the file's order, in this fresh process, so the heap (the top chunk, the mmap threshold
 *             that glibc raises when a mapped chunk is freed) is in the state that sequence leaves it in;
 *             bench/real/usable.py replays the same sequence through the model.
 *   tcmalloc  tc_nallocx(size, 0)   (gperftools)
 *   jemalloc  nallocx(size, 0)
 *   mimalloc  mi_usable_size(p) for p = malloc(size), then free(p), like glibc; with `good`: mi_good_size(size),
 *             which above 128 KiB (MI_MEDIUM_OBJ_SIZE_MAX) only rounds to the OS page while the block
 *             malloc returns is its whole large page (bench/real/usable.py)
 * jemalloc, tcmalloc and mimalloc are LD_PRELOADed by the caller and their functions looked up with
 * dlsym(RTLD_DEFAULT, ...) (dlopen of libjemalloc fails: "cannot allocate memory in static TLS block");
 * the preload check of preload.h makes sure the library asked for is the one that defines malloc.
 *
 * Nothing else is malloc'ed once the loop may start (the glibc case depends on it): both files are read
 * and written with read/write into mmap'ed buffers, and stdout is only written after the loop (one JSON
 * line: {"allocator": ..., "function": ..., "sizes": N}).  Exit status 2: bad arguments, a missing
 * function or a failed preload check; 1: malloc returned NULL ({"error": ..., "row": i}).
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

typedef size_t (*nallocx_fn)(size_t, int);
typedef size_t (*good_size_fn)(size_t);
typedef size_t (*usable_size_fn)(const void *);

static void *map_bytes(size_t bytes) {
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("usable: mmap");
        exit(2);
    }
    return p;
}

static int64_t *read_sizes(const char *path, size_t *count) {
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size % 8 != 0) {
        fprintf(stderr, "usable: cannot read %s (a file of int64 sizes)\n", path);
        exit(2);
    }
    int64_t *sizes = map_bytes((size_t)st.st_size);
    size_t done = 0;
    while (done < (size_t)st.st_size) {
        ssize_t got = read(fd, (char *)sizes + done, (size_t)st.st_size - done);
        if (got <= 0) {
            fprintf(stderr, "usable: short read on %s\n", path);
            exit(2);
        }
        done += (size_t)got;
    }
    close(fd);
    *count = (size_t)st.st_size / 8;
    return sizes;
}

static void write_answers(const char *path, const int64_t *answers, size_t count) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    size_t done = 0, bytes = count * 8;
    while (fd >= 0 && done < bytes) {
        ssize_t put = write(fd, (const char *)answers + done, bytes - done);
        if (put <= 0) break;
        done += (size_t)put;
    }
    if (fd < 0 || done != bytes || close(fd) != 0) {
        fprintf(stderr, "usable: cannot write %s\n", path);
        exit(2);
    }
}

static void *function_or_exit(const char *name) {
    void *f = dlsym(RTLD_DEFAULT, name);
    if (f == NULL) {
        fprintf(stderr, "usable: %s is not in the process (library not preloaded?)\n", name);
        exit(2);
    }
    return f;
}

int main(int argc, char **argv) {
    int good = argc == 5 && strcmp(argv[4], "good") == 0;
    if (argc != 4 && !good) {
        fprintf(stderr, "usage: usable glibc|tcmalloc|jemalloc|mimalloc SIZES OUT [good]\n");
        return 2;
    }
    int allocator = -1;
    for (int i = 0; i < (int)(sizeof names_of / sizeof names_of[0]); i++)
        if (strcmp(argv[1], names_of[i]) == 0) allocator = i;
    static const char *functions[] = {"malloc_usable_size", "nallocx", "tc_nallocx", "mi_usable_size", NULL};
    if (allocator < 0 || functions[allocator] == NULL || (good && allocator != 3)) {
        fprintf(stderr, "usable: unknown allocator %s (glibc, tcmalloc, jemalloc or mimalloc)\n", argv[1]);
        return 2;
    }
    check_preload("usable", allocator);
    size_t count;
    int64_t *sizes = read_sizes(argv[2], &count);
    int64_t *answers = map_bytes(count * 8);
    const char *asked = good ? "mi_good_size" : functions[allocator];
    void *function = allocator == 0 ? NULL : function_or_exit(asked);
    for (size_t i = 0; i < count; i++) {
        size_t size = (size_t)sizes[i];
        if (allocator == 0 || (allocator == 3 && !good)) {
            void *p = malloc(size);
            if (p == NULL) {
                printf("{\"error\": \"malloc(%zu) returned NULL\", \"row\": %zu}\n", size, i);
                return 1;
            }
            answers[i] = allocator == 0 ? (int64_t)malloc_usable_size(p) : (int64_t)((usable_size_fn)function)(p);
            free(p);
        } else if (allocator == 3) {
            answers[i] = (int64_t)((good_size_fn)function)(size);
        } else {
            answers[i] = (int64_t)((nallocx_fn)function)(size, 0);
        }
    }
    write_answers(argv[3], answers, count);
    printf("{\"allocator\": \"%s\", \"function\": \"%s\", \"sizes\": %zu}\n", argv[1], asked, count);
    return 0;
}
