// C++ exceptions unwinding through translated code: thrown through several
// frames of non-inlined functions with destructors to run, caught and
// rethrown (throw; and std::rethrow_exception), nested exceptions, catch
// by base class, exceptions in many threads at once, from a signal-free
// deep recursion, through a C callback (qsort), and function-try-blocks.
// The unwinder reads .eh_frame and walks return addresses on the stack, so
// a translator must keep both exactly as a native run has them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static thread_local std::string trail; // each thread's own record of destructors

struct Guard {
    const char *name;
    explicit Guard(const char *n) : name(n) {}
    ~Guard()
    {
        trail += '~';
        trail += name;
        trail += ' ';
    }
};

struct AppError : std::runtime_error {
    int code;
    AppError(const std::string &m, int c) : std::runtime_error(m), code(c) {}
};
struct DeepError : AppError {
    int depth;
    DeepError(int d) : AppError("deep", 100 + d), depth(d) {}
};

__attribute__((noinline)) static int level3(int x)
{
    Guard g("l3");
    if (x > 2)
        throw AppError("level3 failed with " + std::to_string(x), x);
    return x * 3;
}
__attribute__((noinline)) static int level2(int x)
{
    Guard g("l2");
    std::vector<int> v(100, x); // heap memory released by unwinding
    return level3(x) + v[99];
}
__attribute__((noinline)) static int level1(int x)
{
    Guard g("l1");
    try {
        return level2(x) + 1;
    } catch (const AppError &e) {
        trail += "[l1 caught, rethrows] ";
        throw; // rethrow the same object
    }
}

__attribute__((noinline)) static int recurse(int n, int at)
{
    Guard g(n % 2 ? "odd" : "even");
    if (n == at)
        throw DeepError(n);
    return recurse(n + 1, at) + 1;
}

static int cmp_throwing(const void *a, const void *b)
{
    int x = *static_cast<const int *>(a), y = *static_cast<const int *>(b);
    if (x == 13 || y == 13)
        throw std::out_of_range("unlucky element met in qsort");
    return x - y;
}

struct Ctor {
    std::string s;
    Ctor(int v)
    try : s(v < 0 ? throw std::invalid_argument("negative") : std::to_string(v)) {
    } catch (const std::invalid_argument &e) {
        trail += "[ctor function-try-block] ";
        // rethrown automatically
    }
};

static void nested()
{
    try {
        try {
            throw std::runtime_error("inner");
        } catch (...) {
            std::throw_with_nested(std::logic_error("outer"));
        }
    } catch (const std::exception &e) {
        std::printf("nested: %s", e.what());
        try {
            std::rethrow_if_nested(e);
        } catch (const std::exception &inner) {
            std::printf(" <- %s\n", inner.what());
        }
    }
}

__attribute__((noinline)) static long thread_work(int id)
{
    long caught = 0;
    for (int i = 0; i < 300; i++) {
        try {
            recurse(0, (i + id) % 17 + 1);
        } catch (const DeepError &e) {
            caught += e.depth;
        }
    }
    return caught;
}

int main()
{
    // 1: through three frames, caught in main, destructors in order
    for (int x = 1; x <= 4; x++) {
        trail.clear();
        try {
            int r = level1(x);
            std::printf("level1(%d) = %d; %s\n", x, r, trail.c_str());
        } catch (const AppError &e) {
            std::printf("level1(%d) threw \"%s\" code %d; %s\n", x, e.what(), e.code,
                        trail.c_str());
        }
    }

    // 2: deep recursion, caught by base class
    trail.clear();
    try {
        recurse(0, 40);
    } catch (const std::runtime_error &e) {
        const DeepError *d = dynamic_cast<const DeepError *>(&e);
        std::printf("recursion: caught %s at depth %d, %zu destructors ran\n", e.what(),
                    d ? d->depth : -1, std::count(trail.begin(), trail.end(), '~'));
    }

    // 3: exception_ptr carried out of a catch block and rethrown later
    std::exception_ptr saved;
    try {
        level3(9);
    } catch (...) {
        saved = std::current_exception();
    }
    try {
        std::rethrow_exception(saved);
    } catch (const AppError &e) {
        std::printf("rethrow_exception: %s\n", e.what());
    }

    // 4: through a C library frame (qsort's comparison callback)
    int v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i * 37) % 64;
    try {
        std::qsort(v, 64, sizeof v[0], cmp_throwing);
        std::printf("qsort finished\n");
    } catch (const std::out_of_range &e) {
        std::printf("through qsort: %s\n", e.what());
    }

    // 5: function-try-block and nested exceptions
    trail.clear();
    try {
        Ctor c(-1);
    } catch (const std::invalid_argument &e) {
        std::printf("constructor: %s %s\n", trail.c_str(), e.what());
    }
    nested();

    // 6: many threads throwing at once; an exception carried across threads
    std::vector<std::thread> ts;
    std::vector<long> results(8);
    for (int id = 0; id < 8; id++)
        ts.emplace_back([id, &results] { results[id] = thread_work(id); });
    for (auto &t : ts)
        t.join();
    long total = 0;
    for (long r : results)
        total += r;
    std::printf("threads: total depth caught %ld\n", total);

    std::exception_ptr from_thread;
    std::thread([&from_thread] {
        try {
            throw AppError("made in a thread", 7);
        } catch (...) {
            from_thread = std::current_exception();
        }
    }).join();
    try {
        std::rethrow_exception(from_thread);
    } catch (const AppError &e) {
        std::printf("exception from a thread: %s (code %d)\n", e.what(), e.code);
    }

    // 7: std::terminate is not reached; uncaught_exceptions inside a dtor
    struct Probe {
        ~Probe()
        {
            std::printf("uncaught_exceptions in a destructor during unwinding: %d\n",
                        std::uncaught_exceptions());
        }
    };
    try {
        Probe p;
        throw 42;
    } catch (int i) {
        std::printf("caught int %d\n", i);
    }
    return 0;
}
