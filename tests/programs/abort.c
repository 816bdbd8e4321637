/* Death by SIGABRT through abort(), after a SIGABRT handler that returns
 * (abort() must then still kill the process with SIGABRT). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void on_abrt(int sig)
{
    static const char msg[] = "SIGABRT handler ran and returns\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(1);
}

int main(void)
{
    printf("about to abort\n");
    fflush(stdout);
    printf("this line stays in the stdio buffer and is lost\n");
    signal(SIGABRT, on_abrt);
    abort();
}
