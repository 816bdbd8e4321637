/* Running guest code (guest_code.S) under the translator in a forked
 * child, for the unit tests that need it end to end. Include after
 * cmocka.h. */
#ifndef DBO_TESTS_RUN_GUEST_H
#define DBO_TESTS_RUN_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "syscall/syscall.h"
#include "translator/translator.h"

/* Runs `code` in a child; returns its exit status (1000 + signal if killed). */
static inline int run_guest(uint8_t *code, bool fsgsbase)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct guest_context *ctx = context_create(fsgsbase);
        context_set_gs(ctx);
        signals_init(); /* faults in the cache are the runtime's to handle */
        uint64_t *stack = malloc(1 << 16);
        ctx->gpr[GPR_RSP] = (uint64_t)(stack + (1 << 13) - 2);
        ctx->guest_fs = ctx->host_fs;
        ctx->rip = (uint64_t)code;
        translator_run(ctx);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}

/* The same with --stats written to a file (counting from zero in the
 * child); `line` gets the stats line from `what` on, or "". */
static inline int run_guest_stats(uint8_t *code, const char *what, char *line, size_t size)
{
    char path[] = "/tmp/dbo-unit-stats-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    struct dbo_stats saved = dbo_stats;
    memset(&dbo_stats, 0, sizeof dbo_stats); /* tests before may have counted */
    dbo_opts.stats = true;
    dbo_opts.stats_file = path;
    int status = run_guest(code, true);
    dbo_opts.stats = false;
    dbo_opts.stats_file = NULL;
    dbo_stats = saved;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    line[0] = 0;
    char buf[256];
    while (fgets(buf, sizeof buf, f))
        if (strstr(buf, what))
            snprintf(line, size, "%s", strstr(buf, what));
    fclose(f);
    unlink(path);
    return status;
}

#endif
