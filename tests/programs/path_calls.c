/* Calls on a path, which the gate's fast path makes itself unless the
 * path starts with "/pro" (the links to the program under /proc that the
 * C gate answers): the same answers either way, for a bad pointer, a path
 * at the very end of readable memory, /proc/self/exe and its cmdline, and
 * ordinary paths, by every call of the family. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long r)
{
    printf("%s: %s\n", what, r < 0 ? strerror(errno) : "ok");
}

int main(void)
{
    struct stat st;
    struct statx stx;
    char buf[256];
    report("stat bad pointer", stat((const char *)16, &st));
    report("statx bad pointer", statx(AT_FDCWD, (const char *)16, 0, STATX_BASIC_STATS, &stx));
    report("access bad pointer", access((const char *)16, R_OK));
    report("readlink bad pointer", readlink((const char *)16, buf, sizeof buf));
    report("open bad pointer", open((const char *)16, O_RDONLY));
    /* "/." as the last 3 bytes before an unmapped page: reading 4 would fault */
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);
    strcpy(page + 4093, "/.");
    report("stat at a page's end", stat(page + 4093, &st));
    report("access at a page's end", syscall(SYS_faccessat, AT_FDCWD, page + 4093, R_OK));
    strcpy(page + 4094, "/");
    report("statx of / at a page's end", statx(AT_FDCWD, page + 4094, 0, STATX_TYPE, &stx));
    /* the program's own links: answered for the program, not for dbo */
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("exe ends in path_calls: %d\n", n > 0 && strstr(buf, "path_calls") != NULL);
    n = syscall(SYS_readlinkat, AT_FDCWD, "/proc/self/exe", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    printf("readlinkat exe ends in path_calls: %d\n", n > 0 && strstr(buf, "path_calls") != NULL);
    struct stat self, exe;
    stat("/proc/self/exe", &exe);
    int fd = open("/proc/self/exe", O_RDONLY);
    fstat(fd, &self);
    close(fd);
    printf("stat and open of exe agree: %d\n", self.st_ino == exe.st_ino);
    fd = open("/proc/self/cmdline", O_RDONLY);
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    printf("cmdline ends in path_calls: %d\n", strstr(buf, "path_calls") != NULL);
    /* ordinary paths, relative ones too */
    report("stat /", stat("/", &st));
    report("stat missing", stat("/nonexistent/x", &st));
    report("newfstatat .", fstatat(AT_FDCWD, ".", &st, 0));
    report("access /bin/sh", access("/bin/sh", X_OK));
    report("faccessat2 /", syscall(SYS_faccessat2, AT_FDCWD, "/", R_OK, 0));
    report("readlink /proc/self/cwd (not the program)", readlink("/proc/self/cwd", buf, 10));
    report("readlink a file", readlink("/etc/hostname", buf, sizeof buf));
    fd = open("/dev/null", O_RDONLY);
    report("open /dev/null", fd);
    close(fd);
    return 0;
}
