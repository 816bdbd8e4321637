/* Death by SIGSEGV from a write through a null pointer, with no handler:
 * the translator must make the process die of the same signal. */
#include <stdio.h>

int main(void)
{
    /* Hide the null from gcc, which would otherwise delete the store or
     * turn it into ud2 (SIGILL). */
    volatile int *p = NULL;
    __asm__ volatile("" : "+r"(p));
    printf("writing through NULL\n");
    fflush(stdout);
    *p = 42;
    printf("not reached\n");
    return 0;
}
