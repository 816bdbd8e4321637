# Interpreter-heavy loop for the python3 workload: bytecode dispatch, calls,
# dicts, strings and small objects, no C-level bulk work. Usage: loop.py N
import sys

class Vec:
    __slots__ = ("x", "y")
    def __init__(self, x, y):
        self.x, self.y = x, y
    def add(self, o):
        return Vec(self.x + o.x, (self.y ^ o.y) & 0xFFFF)

def step(i, acc):
    if i % 3 == 0:
        return acc + i * 7
    elif i % 3 == 1:
        return acc ^ (i << 2)
    return acc - (i >> 1)

def main(n):
    acc, counts, v = 0, {}, Vec(0, 0)
    for i in range(n):
        acc = step(i, acc) & 0xFFFFFFFF
        key = "k%d" % (i & 255)
        counts[key] = counts.get(key, 0) + 1
        v = v.add(Vec(i & 15, i))
    print(n, acc, len(counts), v.x, v.y)

main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)
