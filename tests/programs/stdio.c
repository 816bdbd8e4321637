/* Standard streams: reading stdin several ways (stdio, getline, scanf,
 * raw read after lseek), and writing stdout and stderr interleaved, both
 * through stdio and through raw write(2). The runner feeds a fixed file
 * on stdin. */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    char first[256];
    if (!fgets(first, sizeof first, stdin)) {
        fprintf(stderr, "no input\n");
        return 1;
    }
    first[strcspn(first, "\n")] = 0;
    printf("first line: [%s]\n", first);

    int a, b;
    double d;
    char word[32];
    int n = scanf("%d %d %lf %31s", &a, &b, &d, word);
    printf("scanf got %d items: %d %d %.3f %s\n", n, a, b, d, word);
    int c = getchar(); /* rest of that line */
    while (c != '\n' && c != EOF)
        c = getchar();

    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    long words = 0, chars = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        chars += len;
        int inword = 0;
        for (ssize_t i = 0; i < len; i++) {
            if (isspace((unsigned char)line[i]))
                inword = 0;
            else if (!inword) {
                inword = 1;
                words++;
            }
        }
        if (line[len - 1] == '\n')
            line[--len] = 0;
        /* stdout: the line reversed (long lines shortened) */
        printf("%3d: ", lineno);
        for (ssize_t i = len - 1; i >= 0 && i >= len - 60; i--)
            putchar(line[i]);
        putchar('\n');
        /* stderr: its length, unbuffered */
        fprintf(stderr, "line %d has %zd bytes\n", lineno, len);
        if (lineno % 3 == 0) {
            /* raw writes must land after what stdio already has */
            fflush(stdout);
            char msg[64];
            int m = snprintf(msg, sizeof msg, "raw write after line %d\n", lineno);
            if (write(1, msg, (size_t)m) != m || write(2, msg, (size_t)m) != m)
                return 1;
        }
    }
    free(line);
    printf("lines %d words %ld chars %ld eof %d\n", lineno, words, chars, feof(stdin) != 0);

    /* stdin is a regular file here: rewind the descriptor and read it raw */
    if (lseek(0, 0, SEEK_SET) == 0) {
        char buf[7];
        ssize_t r;
        long total = 0;
        unsigned long sum = 0;
        while ((r = read(0, buf, sizeof buf)) > 0) {
            total += r;
            for (ssize_t i = 0; i < r; i++)
                sum = sum * 33 + (unsigned char)buf[i];
        }
        printf("raw reread: %ld bytes, hash %lu\n", total, sum);
    } else {
        printf("stdin not seekable\n");
    }
    fprintf(stderr, "done\n");
    return lineno % 256;
}
