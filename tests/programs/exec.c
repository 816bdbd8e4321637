/* execve: of a binary, of a #! script (the kernel runs the interpreter),
 * with an explicit environment, through PATH, failing ones with the right
 * errno, and finally the translated process replacing itself. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int run(char *const argv[], char *const envp[], int use_path)
{
    fflush(stdout);
    pid_t k = fork();
    if (k == 0) {
        if (use_path)
            execvp(argv[0], argv);
        else
            execve(argv[0], argv, envp);
        /* no path here: the temp dir name is random */
        printf("exec failed: %s\n", strerror(errno));
        fflush(stdout);
        _exit(127);
    }
    int st;
    waitpid(k, &st, 0);
    fflush(stdout);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
        perror(path);
        exit(1);
    }
    close(fd);
}

int main(void)
{
    char dir[] = "/tmp/dbo-exec-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char script[64], plain[64], noexec[64];
    snprintf(script, sizeof script, "%s/script.sh", dir);
    snprintf(plain, sizeof plain, "%s/plain", dir);
    snprintf(noexec, sizeof noexec, "%s/noexec.sh", dir);
    write_file(script,
               "#!/bin/sh\n"
               "echo \"script got $# args: $1 / $2\"\n"
               "echo \"script sees DBO_TEST=$DBO_TEST\"\n"
               "exit 3\n",
               0755);
    write_file(plain, "this is not a program\n", 0755);
    write_file(noexec, "#!/bin/sh\necho should not run\n", 0644);

    char *echo_argv[] = {"/bin/echo", "hello", "from", "echo", NULL};
    printf("echo -> %d\n", run(echo_argv, environ, 0));

    char *script_argv[] = {script, "first arg", "second", NULL};
    printf("script -> %d\n", run(script_argv, environ, 0));

    char *env_argv[] = {"/usr/bin/env", NULL};
    char *small_env[] = {"ALPHA=1", "BETA=two words", "EMPTY=", NULL};
    printf("env -> %d\n", run(env_argv, small_env, 0));

    char *path_argv[] = {"echo", "found", "via", "PATH", NULL};
    printf("execvp -> %d\n", run(path_argv, NULL, 1));

    char *sh_argv[] = {"/bin/sh", "-c", "echo \"sh -c: $0 $1\"; exit 5", "zero", "one", NULL};
    printf("sh -c -> %d\n", run(sh_argv, environ, 0));

    /* failures come back as errno in the child, which still runs */
    char *missing_argv[] = {"/nonexistent/program", NULL};
    printf("missing -> %d\n", run(missing_argv, environ, 0));
    char *plain_argv[] = {plain, NULL};
    printf("not executable format -> %d\n", run(plain_argv, environ, 0));
    char *noexec_argv[] = {noexec, NULL};
    printf("no x permission -> %d\n", run(noexec_argv, environ, 0));

    unlink(script);
    unlink(plain);
    unlink(noexec);

    /* Replace this process: the exit status is now the shell's. */
    printf("now replacing myself\n");
    fflush(stdout);
    execl("/bin/sh", "sh", "-c", "rmdir \"$1\" && echo \"replaced, $# arg\"; exit 7", "sh", dir,
          (char *)NULL);
    perror("execl");
    return 1;
}
