/* qsort, qsort_r and bsearch: the library calls back into guest code
 * through function pointers millions of times. */
#define _GNU_SOURCE
#include <search.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rec {
    int key;
    char name[12];
    double weight;
};

static unsigned long compares;

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    compares++;
    return (x > y) - (x < y);
}

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return (x->weight > y->weight) - (x->weight < y->weight);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* qsort_r: sort indices by the values they point at, direction in ctx */
static int cmp_idx(const void *a, const void *b, void *ctx)
{
    const int *vals = ((const int **)ctx)[0];
    int dir = *((const int **)ctx)[1];
    int x = vals[*(const int *)a], y = vals[*(const int *)b];
    if (x != y)
        return dir * ((x > y) - (x < y));
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static unsigned rnd(void)
{
    static uint64_t s = 88172645463325252ULL;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (unsigned)s;
}

int main(void)
{
    enum { N = 200000 };
    static int a[N];
    for (int i = 0; i < N; i++)
        a[i] = (int)(rnd() % 1000000) - 500000;
    qsort(a, N, sizeof a[0], cmp_int);
    int sorted = 1;
    for (int i = 1; i < N; i++)
        sorted &= a[i - 1] <= a[i];
    printf("ints sorted: %d, min %d, median %d, max %d\n", sorted, a[0], a[N / 2], a[N - 1]);

    int found = 0, missing = 0;
    for (int k = -500000; k < 500000; k += 37) {
        int *p = bsearch(&k, a, N, sizeof a[0], cmp_int);
        if (p) {
            found++;
            if (*p != k)
                return 1;
        } else {
            missing++;
        }
    }
    printf("bsearch: found %d, missing %d\n", found, missing);
    printf("comparisons > N log N / 2: %d\n", compares > (unsigned long)N * 8);

    static struct rec recs[5000];
    for (int i = 0; i < 5000; i++) {
        recs[i].key = (int)(rnd() % 50);
        snprintf(recs[i].name, sizeof recs[i].name, "n%05u", rnd() % 3000);
        recs[i].weight = (double)(rnd() % 10000) / 7.0;
    }
    qsort(recs, 5000, sizeof recs[0], cmp_rec);
    printf("recs: first {%d %s %.4f} last {%d %s %.4f}\n", recs[0].key, recs[0].name,
           recs[0].weight, recs[4999].key, recs[4999].name, recs[4999].weight);
    unsigned long h = 0;
    for (int i = 0; i < 5000; i++)
        h = h * 31 + (unsigned long)recs[i].key * 7 + (unsigned char)recs[i].name[3];
    printf("recs hash %lu\n", h);

    const char *words[] = {"pear", "apple",      "fig",   "banana",  "kiwi", "cherry",
                           "date", "elderberry", "grape", "apricot", "lime", "mango"};
    size_t nw = sizeof words / sizeof words[0];
    qsort(words, nw, sizeof words[0], cmp_str);
    for (size_t i = 0; i < nw; i++)
        printf("%s%s", words[i], i + 1 < nw ? " " : "\n");
    const char *key = "grape";
    const char **w = bsearch(&key, words, nw, sizeof words[0], cmp_str);
    printf("bsearch grape at %td\n", w ? w - words : -1);

    static int vals[1000], idx[1000];
    for (int i = 0; i < 1000; i++) {
        vals[i] = (int)(rnd() % 100);
        idx[i] = i;
    }
    int dir = -1;
    const void *ctx[2] = {vals, &dir};
    qsort_r(idx, 1000, sizeof idx[0], cmp_idx, ctx);
    printf("qsort_r desc: idx[0]=%d (val %d) idx[999]=%d (val %d)\n", idx[0], vals[idx[0]],
           idx[999], vals[idx[999]]);

    /* lsearch/lfind: linear search with callback */
    int small[20] = {5, 3, 9};
    size_t n = 3;
    for (int k = 0; k < 12; k++) {
        int v = k * 2;
        lsearch(&v, small, &n, sizeof small[0], cmp_int);
    }
    int nine = 9;
    printf("lsearch grew to %zu, lfind 9 at %td\n", n,
           (int *)lfind(&nine, small, &n, sizeof small[0], cmp_int) - small);
    return 0;
}
