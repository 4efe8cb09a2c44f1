/* Preload probe: which shared object defines malloc in a program we did not write.
 *
 * bench/real/probe.py compiles this file once into a shared library (bench/real/cleanheap.py,
 * shared=True) and bench/real/probe.py preloads it before the allocator under test:
 * LD_PRELOAD="<this library> <allocator library>" (glibc: this library alone).  It defines no allocation
 * function, so it changes no binding.  Its constructor runs in every dynamically linked process of the run
 * (the program and any program it execs, since they inherit the environment), finds the malloc the
 * program's calls bind to and names the object that defines it (dladdr):
 *
 *   - dlsym(RTLD_DEFAULT, "malloc"): the first definition in the global scope, the executable's own if
 *     it defines one (dladdr1 then gives the symbol, defined: st_shndx is not SHN_UNDEF);
 *   - otherwise dlsym(RTLD_NEXT, "malloc"): the first definition in the objects loaded after this one,
 *     i.e. the preloaded allocator, else libc.  The second look-up is needed for a non-PIE executable
 *     (Debian's python3): it takes malloc's address, so its dynamic symbol table gives malloc the
 *     address of its own PLT entry (the "canonical" address: st_shndx SHN_UNDEF, st_value not 0), and
 *     RTLD_DEFAULT finds that stub, which only jumps to the real malloc.
 *
 * It appends one line to the file named by ALLOCLAB_PROBE_FILE:
 *
 *     <pid> TAB <path of the object defining malloc, or "" for the executable> TAB <the executable> LF
 *
 * A statically linked program never runs the loader, so never loads the probe: no line at all, which
 * the Python side reports as "preload did not take".  So does a setuid program, which ignores LD_PRELOAD.
 *
 * No allocation: the constructor uses getenv, dlsym, dladdr (which do not allocate on success), readlink
 * and open/write/close on a stack buffer; no stdio.  So the probe adds no heap to the run it checks,
 * only its own mapping (a few pages, the same for every allocator, glibc included).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t append(char *line, size_t used, size_t capacity, const char *text) {
    size_t length = strlen(text);
    if (used + length >= capacity) length = capacity - used - 1;
    memcpy(line + used, text, length);
    return used + length;
}

static size_t append_number(char *line, size_t used, size_t capacity, long value) {
    char digits[24];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0 && count < 23);
    while (count > 0 && used + 1 < capacity) line[used++] = digits[--count];
    return used;
}

__attribute__((constructor)) static void alloclab_probe(void) {
    const char *path = getenv("ALLOCLAB_PROBE_FILE");
    if (path == NULL || *path == '\0') return;
    const char *object = "?";
    Dl_info info;
    const ElfW(Sym) *symbol = NULL;
    void *address = dlsym(RTLD_DEFAULT, "malloc");
    int defined = address != NULL && dladdr1(address, &info, (void **)&symbol, RTLD_DL_SYMENT) && symbol != NULL &&
                  symbol->st_shndx != SHN_UNDEF && info.dli_saddr == address;
    if (!defined) { /* a non-PIE executable's canonical PLT entry (or nothing): look past this library */
        address = dlsym(RTLD_NEXT, "malloc");
        defined = address != NULL && dladdr(address, &info);
    }
    if (defined && info.dli_fname != NULL) object = info.dli_fname;
    char executable[1024];
    ssize_t length = readlink("/proc/self/exe", executable, sizeof executable - 1);
    executable[length > 0 ? length : 0] = '\0';
    char line[4096];
    size_t used = append_number(line, 0, sizeof line, (long)getpid());
    used = append(line, used, sizeof line, "\t");
    used = append(line, used, sizeof line, object);
    used = append(line, used, sizeof line, "\t");
    used = append(line, used, sizeof line, executable);
    line[used++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t written = write(fd, line, used); /* one write of < PIPE_BUF bytes with O_APPEND: lines never interleave */
    (void)written;
    close(fd);
}
