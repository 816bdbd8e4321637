/* The kernel writes (read(2)) over code that was already translated: the
 * write must land and the new code must run. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>
typedef int (*fn)(void);
int main(void)
{
    unsigned char *page =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 0xb8;
    page[1] = 5;
    page[2] = page[3] = page[4] = 0;
    page[5] = 0xc3;
    int a = ((fn)page)();
    int p[2];
    if (pipe(p) < 0)
        return 1;
    unsigned char code[6] = {0xb8, 9, 0, 0, 0, 0xc3};
    if (write(p[1], code, 6) != 6)
        return 1;
    ssize_t n = read(p[0], page, 6); /* the kernel writes over translated code */
    int b = ((fn)page)();
    printf("%d %zd %d\n", a, n, b);
    return 0;
}
