// C++: exceptions (the unwinder walks guest stack frames using return
// addresses and .eh_frame, so those must be exact guest values), virtual
// calls, RTTI, and standard containers and algorithms.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace
{

int live_objects = 0;

struct Tracker {
    std::string name;
    explicit Tracker(std::string n) : name(std::move(n)) { ++live_objects; }
    ~Tracker() { --live_objects; }
};

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const { return "shape"; }
};

struct Rect : Shape {
    double w, h;
    Rect(double w_, double h_) : w(w_), h(h_) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

struct Square : Rect {
    explicit Square(double s) : Rect(s, s) {}
    std::string name() const override { return "square"; }
};

struct Circle : Shape {
    double r;
    explicit Circle(double r_) : r(r_) {}
    double area() const override { return 3.25 * r * r; }
};

struct MyError : std::runtime_error {
    int depth;
    MyError(const std::string &what, int d) : std::runtime_error(what), depth(d) {}
};

__attribute__((noinline)) int thrower(int depth, int limit)
{
    Tracker t("level" + std::to_string(depth));
    if (depth == limit)
        throw MyError("bottom reached", depth);
    return thrower(depth + 1, limit) + 1;
}

struct Fragile {
    Tracker a{"a"};
    Tracker b;
    explicit Fragile(bool fail) : b("b")
    {
        if (fail)
            throw std::invalid_argument("constructor failed");
    }
};

__attribute__((noinline)) void rethrower()
{
    try {
        thrower(0, 50);
    } catch (MyError &e) {
        e.depth += 1000;
        throw;
    }
}

} // namespace

int main()
{
    // exceptions across 200 frames, destructors run during unwinding
    try {
        thrower(0, 200);
    } catch (const std::runtime_error &e) {
        std::printf("caught runtime_error '%s', live objects %d\n", e.what(), live_objects);
    }
    try {
        rethrower();
    } catch (const MyError &e) {
        std::printf("rethrown, depth now %d\n", e.depth);
    }
    try {
        Fragile f(true);
    } catch (const std::exception &e) {
        std::printf("caught '%s', live objects %d\n", e.what(), live_objects);
    }
    int caught = 0;
    for (int i = 0; i < 10000; i++) {
        try {
            if (i % 3 == 0)
                throw i;
            if (i % 3 == 1)
                throw std::string("s");
            throw 1.5;
        } catch (int) {
            caught += 1;
        } catch (const std::string &) {
            caught += 10;
        } catch (...) {
            caught += 100;
        }
    }
    std::printf("caught score %d\n", caught);
    try {
        std::vector<int> v(3);
        (void)v.at(10);
    } catch (const std::out_of_range &) {
        std::printf("vector::at threw out_of_range\n");
    }

    // virtual calls and RTTI
    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 0; i < 30; i++) {
        if (i % 3 == 0)
            shapes.emplace_back(new Rect(i, i + 1));
        else if (i % 3 == 1)
            shapes.emplace_back(new Square(i));
        else
            shapes.emplace_back(new Circle(i));
    }
    double total = 0;
    int squares = 0;
    for (const auto &s : shapes) {
        total += s->area();
        if (dynamic_cast<const Square *>(s.get()))
            squares++;
    }
    std::printf("total area %.2f, squares %d, first is %s, second is %s\n", total, squares,
                shapes[0]->name().c_str(), shapes[1]->name().c_str());
    std::sort(shapes.begin(), shapes.end(),
              [](const auto &a, const auto &b) { return a->area() > b->area(); });
    std::printf("largest: %s %.2f\n", shapes[0]->name().c_str(), shapes[0]->area());

    // containers and algorithms
    std::vector<unsigned> v(100000);
    unsigned s = 1;
    for (auto &x : v) {
        s = s * 1664525u + 1013904223u;
        x = s >> 8;
    }
    std::sort(v.begin(), v.end());
    bool sorted = std::is_sorted(v.begin(), v.end());
    unsigned v500 = v[500];
    auto distinct = static_cast<size_t>(std::unique(v.begin(), v.end()) - v.begin());
    std::printf("sorted: %d, v[500]=%u, distinct=%zu\n", sorted, v500, distinct);
    std::stable_sort(v.begin(), v.end(),
                     [](unsigned a, unsigned b) { return a % 1000 < b % 1000; });
    std::printf("after stable_sort by mod 1000: v[0]=%u v[99999]=%u\n", v[0], v[99999]);

    std::map<std::string, int> counts;
    const char *text = "the cat and the dog and the bird saw the cat";
    std::string word;
    for (const char *p = text;; p++) {
        if (*p == ' ' || *p == 0) {
            if (!word.empty())
                counts[word]++;
            word.clear();
            if (*p == 0)
                break;
        } else {
            word += *p;
        }
    }
    for (const auto &kv : counts)
        std::printf("%s=%d ", kv.first.c_str(), kv.second);
    std::printf("\n");

    std::map<int, std::vector<int>> buckets;
    for (int i = 0; i < 1000; i++)
        buckets[i % 17].push_back(i);
    long acc = 0;
    for (const auto &kv : buckets)
        acc += kv.first * std::accumulate(kv.second.begin(), kv.second.end(), 0L);
    std::printf("buckets %zu acc %ld\n", buckets.size(), acc);

    std::function<long(int)> fact = [&](int n) -> long { return n <= 1 ? 1 : n * fact(n - 1); };
    std::printf("20! = %ld\n", fact(20));
    std::printf("live objects at end %d\n", live_objects);
    return live_objects == 0 ? 0 : 1;
}
