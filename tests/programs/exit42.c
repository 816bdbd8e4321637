/* Orderly exit with status 42: atexit handlers run in reverse order,
 * destructors run, and stdio buffers (stdout is a file here, so fully
 * buffered and not yet written) are flushed by exit(). */
#include <stdio.h>
#include <stdlib.h>

static void first(void)
{
    printf("atexit: registered first, runs last\n");
}
static void second(void)
{
    printf("atexit: registered second, runs first\n");
}

__attribute__((destructor)) static void dtor(void)
{
    printf("destructor\n");
}

__attribute__((constructor)) static void ctor(void)
{
    printf("constructor runs before main\n");
}

int main(void)
{
    atexit(first);
    atexit(second);
    for (int i = 0; i < 2000; i++)
        printf("buffered line %d\n", i); /* > BUFSIZ: partly flushed early */
    fprintf(stderr, "stderr is unbuffered\n");
    exit(42);
}
