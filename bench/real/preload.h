/* What bench/real/replayer.c and bench/real/faultreplayer.c share: the allocator names and the preload check.
 *
 * Preload check: for every allocator but glibc, a symbol only that library exports (mallctl,
 * MallocExtension_GetNumericProperty, mi_version, __scudo_print_stats) must resolve, and malloc must be
 * defined by the same shared object (dladdr); otherwise exit status 2 with a message naming `program`.
 * Scudo needs it most: glibc also has mallinfo2, so without the check a preload that did not take would be
 * measured as glibc under Scudo's name.  bench/real/cleanheap.py hashes this header with each source it compiles.
 */
#ifndef ALLOCLAB_PRELOAD_H
#define ALLOCLAB_PRELOAD_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static const char *names_of[] = {"glibc", "jemalloc", "tcmalloc", "mimalloc", "scudo"};

static void check_preload(const char *program, int allocator) {
    static const char *signatures[] = {NULL, "mallctl", "MallocExtension_GetNumericProperty", "mi_version",
                                       "__scudo_print_stats"};
    const char *symbol = signatures[allocator];
    if (symbol == NULL) return;
    void *signature = dlsym(RTLD_DEFAULT, symbol);
    if (signature == NULL) {
        fprintf(stderr, "%s: %s asked for, but %s is not in the process (not preloaded?)\n", program,
                names_of[allocator], symbol);
        exit(2);
    }
    Dl_info from_malloc, from_signature;
    void *malloc_address = dlsym(RTLD_DEFAULT, "malloc"); /* not &malloc: that may be this binary's PLT stub */
    if (malloc_address == NULL || !dladdr(malloc_address, &from_malloc) || !dladdr(signature, &from_signature) ||
        from_malloc.dli_fbase != from_signature.dli_fbase) {
        fprintf(stderr, "%s: %s asked for, but malloc is not defined by the library that defines %s\n", program,
                names_of[allocator], symbol);
        exit(2);
    }
}

#endif
