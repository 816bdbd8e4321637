// stl: C++ standard library workload. Usage: stl N (N rounds, work linear in N).
// Each round builds a vector of strings and sorts it, counts words in a
// std::map and keys in a std::unordered_map, copies shared_ptrs (atomic
// reference counts) to objects called through virtual functions, and calls
// through std::function. A PRNG seeded per round drives it, so the output
// depends on nothing but N; prints a checksum per phase.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace
{

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
    uint32_t operator()()
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        return static_cast<uint32_t>(s >> 11);
    }
};

const char *const syll[] = {"ka",  "lo", "mi", "ne", "ru", "ta",
                            "shi", "vo", "ze", "qu", "ba", "dor"};

std::string word(Rng &r)
{
    std::string w;
    int n = 1 + r() % 4;
    for (int i = 0; i < n; i++)
        w += syll[r() % 12];
    if (r() % 5 == 0)
        w += std::to_string(r() % 100);
    return w;
}

struct Shape {
    virtual ~Shape() = default;
    virtual long area() const = 0;
    virtual long perimeter() const = 0;
    virtual std::string kind() const = 0;
};
struct Rect : Shape {
    long w, h;
    Rect(long w_, long h_) : w(w_), h(h_) {}
    long area() const override { return w * h; }
    long perimeter() const override { return 2 * (w + h); }
    std::string kind() const override { return "rect"; }
};
struct Square final : Rect {
    explicit Square(long s) : Rect(s, s) {}
    std::string kind() const override { return "square"; }
};
struct Tri : Shape {
    long a, b, c;
    Tri(long a_, long b_, long c_) : a(a_), b(b_), c(c_) {}
    long area() const override { return a * b / 2; }
    long perimeter() const override { return a + b + c; }
    std::string kind() const override { return "tri"; }
};
struct Circle : Shape {
    long r;
    explicit Circle(long r_) : r(r_) {}
    long area() const override { return 355 * r * r / 113; }
    long perimeter() const override { return 710 * r / 113; }
    std::string kind() const override { return "circle"; }
};

std::shared_ptr<Shape> make_shape(Rng &r)
{
    long a = 1 + r() % 50, b = 1 + r() % 50;
    switch (r() % 4) {
    case 0: return std::make_shared<Rect>(a, b);
    case 1: return std::make_shared<Square>(a);
    case 2: return std::make_shared<Tri>(a, b, a + b - 1);
    default: return std::make_shared<Circle>(a);
    }
}

uint64_t strings_phase(Rng &r)
{
    std::vector<std::string> v;
    v.reserve(1000);
    for (int i = 0; i < 1000; i++)
        v.push_back(word(r));
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
    std::stable_sort(v.begin(), v.end(), [](const std::string &x, const std::string &y) {
        return x.size() < y.size();
    });
    uint64_t h = v.size();
    for (const auto &s : v)
        h = h * 1000003 + std::hash<std::string>{}(s) % 65521;
    return h;
}

uint64_t maps_phase(Rng &r)
{
    std::map<std::string, int> count;
    std::unordered_map<uint64_t, long> sums;
    for (int i = 0; i < 1500; i++) {
        std::string w = word(r);
        ++count[w];
        sums[r() % 512] += static_cast<long>(w.size());
    }
    uint64_t h = 0;
    for (const auto &kv : count)
        h = h * 31 + static_cast<uint64_t>(kv.second) * kv.first.size();
    for (uint64_t k = 0; k < 512; k++) {
        auto it = sums.find(k);
        if (it != sums.end())
            h ^= static_cast<uint64_t>(it->second) << (k % 40);
    }
    auto lo = count.lower_bound("m"), hi = count.upper_bound("t");
    return h + static_cast<uint64_t>(std::distance(lo, hi));
}

uint64_t shapes_phase(Rng &r)
{
    std::vector<std::shared_ptr<Shape>> all;
    for (int i = 0; i < 300; i++)
        all.push_back(make_shape(r));
    // Copies bump the (atomic) reference counts; the sort moves them around.
    std::vector<std::shared_ptr<Shape>> big;
    for (const auto &s : all)
        if (s->area() > 400)
            big.push_back(s);
    std::sort(big.begin(), big.end(),
              [](const std::shared_ptr<Shape> &a, const std::shared_ptr<Shape> &b) {
                  return a->perimeter() != b->perimeter() ? a->perimeter() < b->perimeter()
                                                          : a->area() < b->area();
              });
    std::map<std::string, long> by_kind;
    for (auto s : all)
        by_kind[s->kind()] += s->area() + s->perimeter();
    uint64_t h = big.size();
    for (const auto &s : big)
        h = h * 7 + static_cast<uint64_t>(s->area()) + static_cast<uint64_t>(s.use_count());
    for (const auto &kv : by_kind)
        h = h * 131 + static_cast<uint64_t>(kv.second);
    return h;
}

uint64_t function_phase(Rng &r)
{
    long k = r() % 7 + 1;
    std::vector<std::function<long(long)>> fs = {
        [](long x) { return x + 1; },
        [k](long x) { return x * k; },
        [](long x) { return x ^ (x >> 3); },
        [k](long x) { return x - k; },
    };
    std::function<long(long, int)> rec = [&](long x, int d) {
        return d ? rec(fs[d & 3](x), d - 1) : x;
    };
    long x = static_cast<long>(r() % 1000);
    for (int i = 0; i < 2000; i++)
        x = fs[r() & 3](x) % 1000003;
    for (int i = 0; i < 100; i++)
        x = rec(x, 10) % 1000003;
    return static_cast<uint64_t>(x);
}

} // namespace

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100;
    uint64_t h[4] = {0, 0, 0, 0};
    for (long i = 0; i < n; i++) {
        Rng r(static_cast<uint64_t>(i));
        h[0] = h[0] * 3 + strings_phase(r);
        h[1] = h[1] * 3 + maps_phase(r);
        h[2] = h[2] * 3 + shapes_phase(r);
        h[3] = h[3] * 3 + function_phase(r);
    }
    printf("stl %ld rounds: strings %016llx maps %016llx shapes %016llx function %016llx\n", n,
           (unsigned long long)h[0], (unsigned long long)h[1], (unsigned long long)h[2],
           (unsigned long long)h[3]);
    return 0;
}
