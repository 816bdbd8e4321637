/* A libunwind (nongnu, libunwind.so.8) stack walk: unw_getcontext,
 * unw_init_local, unw_step, unw_get_proc_name and unw_get_reg, from plain
 * code, from a signal handler (libunwind recognises the sigreturn
 * trampoline by its bytes) and from a thread. libunwind names functions
 * from the ELF files it finds through /proc/self/maps, so the translated
 * program's mappings must look native. The library is loaded with dlopen
 * (diff.sh links no extra libraries); a static build skips the test, the
 * same way natively and translated. */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <libunwind.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#pragma weak dlopen
#pragma weak dlsym

static int (*getcontext_p)(unw_context_t *);
static int (*init_local_p)(unw_cursor_t *, unw_context_t *);
static int (*init_local2_p)(unw_cursor_t *, unw_context_t *, int);
static int (*step_p)(unw_cursor_t *);
static int (*get_reg_p)(unw_cursor_t *, unw_regnum_t, unw_word_t *);
static int (*get_proc_name_p)(unw_cursor_t *, char *, size_t, unw_word_t *);

/* does the program have an interpreter, i.e. is it dynamically linked? */
static int has_interp(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_INTERP)
            *(int *)data = 1;
    return 1; /* the first object is the program itself */
}

static int load(void)
{
    int dynamic = 0;
    dl_iterate_phdr(has_interp, &dynamic);
    /* in a static build dlopen would load a second C library */
    if (!dynamic || !dlopen)
        return -1;
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return -2;
    getcontext_p = (int (*)(unw_context_t *))dlsym(h, "_Ux86_64_getcontext");
    init_local_p = (int (*)(unw_cursor_t *, unw_context_t *))dlsym(h, "_ULx86_64_init_local");
    init_local2_p =
        (int (*)(unw_cursor_t *, unw_context_t *, int))dlsym(h, "_ULx86_64_init_local2");
    step_p = (int (*)(unw_cursor_t *))dlsym(h, "_ULx86_64_step");
    get_reg_p = (int (*)(unw_cursor_t *, unw_regnum_t, unw_word_t *))dlsym(h, "_ULx86_64_get_reg");
    get_proc_name_p =
        (int (*)(unw_cursor_t *, char *, size_t, unw_word_t *))dlsym(h, "_ULx86_64_get_proc_name");
    if (!getcontext_p || !init_local_p || !init_local2_p || !step_p || !get_reg_p ||
        !get_proc_name_p)
        return -3;
    return 0;
}

/* walk from the caller's context; names up to main/thread_main */
#define NOINLINE __attribute__((noinline, noclone))
static volatile int sink;

NOINLINE static void walk(const char *what, unw_context_t *uc, int flags)
{
    unw_cursor_t c;
    if ((flags ? init_local2_p(&c, uc, flags) : init_local_p(&c, uc)) != 0) {
        printf("%s: init_local failed\n", what);
        return;
    }
    printf("%s:", what);
    int frames = 0, named = 0, ip_ok = 1, after = 0, done = 0;
    do {
        unw_word_t ip = 0, sp = 0, off = 0;
        get_reg_p(&c, UNW_REG_IP, &ip);
        get_reg_p(&c, UNW_REG_SP, &sp);
        ip_ok &= ip != 0 && sp != 0;
        char name[128];
        frames++;
        if (done) {
            after++;
            continue;
        }
        if (get_proc_name_p(&c, name, sizeof name, &off) == 0) {
            named++;
            printf(" %s", name);
            done = !strcmp(name, "main") || !strcmp(name, "thread_main");
        } else
            printf(" ?");
    } while (step_p(&c) > 0 && frames < 64);
    printf(" +%d outer; all with ip and sp %d\n", after, ip_ok);
    (void)named;
}

NOINLINE static int leaf(const char *what)
{
    unw_context_t uc;
    getcontext_p(&uc);
    walk(what, &uc, 0);
    return sink;
}
NOINLINE static int middle(const char *what)
{
    return leaf(what) + sink;
}
NOINLINE static int top(const char *what)
{
    return middle(what) + sink;
}

NOINLINE static int deep(int n)
{
    if (n == 0)
        return leaf("recursive") + sink;
    return deep(n - 1) + sink;
}

static void on_usr1(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    /* from the handler's own context, through the trampoline */
    unw_context_t uc;
    getcontext_p(&uc);
    walk("in a signal handler", &uc, 0);
    /* from the interrupted context the kernel (or translator) saved */
    walk("from the signal's ucontext", (unw_context_t *)ctx, UNW_INIT_SIGNAL_FRAME);
}

NOINLINE static int raiser(void)
{
    raise(SIGUSR1);
    return sink;
}

NOINLINE static void *thread_main(void *arg)
{
    top((const char *)arg);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int r = load();
    if (r == -1) {
        printf("libunwind: static build, skipped\n");
        return 0;
    }
    if (r < 0) {
        printf("libunwind.so.8 not usable (%d), skipped\n", r);
        return 0;
    }
    top("plain");
    deep(10);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raiser();
    pthread_t t;
    pthread_create(&t, NULL, thread_main, "in a thread");
    pthread_join(t, NULL);
    return 0;
}
