# Benchmarks (included by the top-level Makefile). See benchmarks/README.md.
#   make bench                      full run (about 12 min native+dbo, more with peers)
#   make bench BENCH_ARGS=--quick   fewer runs, smaller inputs
#   make bench-setup BENCH_PEERS=1  also install valgrind and qemu-user as peers

# gnuplot draws build/bench/ratios.png; the harness times and measures RSS
# with its own helper (benchrun.c), so GNU time is not needed. lua and stockfish are
# optional workloads (skipped with a note when absent), like the chart.
BENCH_DEPS   := gnuplot-nox stockfish lua5.4
BENCH_PEER_DEPS := valgrind qemu-user
BENCH_CFLAGS ?= -O2
BENCH_CXXFLAGS ?= -O2
BENCH_LDLIBS ?= -pthread
BENCH_ARGS   ?= --variants
BENCH_PROGS  := $(patsubst benchmarks/workloads/%.c,$(BUILD)/bench/%,$(wildcard benchmarks/workloads/*.c)) \
                $(patsubst benchmarks/workloads/%.cpp,$(BUILD)/bench/%,$(wildcard benchmarks/workloads/*.cpp))

.PHONY: bench bench-setup bench-progs

bench: all bench-setup bench-progs
	BUILD=$(BUILD) DBO=$${DBO:-$(BUILD)/dbo} benchmarks/run $(BENCH_ARGS)

bench-progs: $(BENCH_PROGS)

# Workloads are plain -O2 C and C++, deliberately without the project's
# -Werror flags.
$(BUILD)/bench/%: benchmarks/workloads/%.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< $(BENCH_LDLIBS)

$(BUILD)/bench/%: benchmarks/workloads/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(BENCH_CXXFLAGS) -o $@ $< $(BENCH_LDLIBS)

# Missing packages are installed when root, otherwise only named: the chart is
# optional, so a non-root run goes on without it.
bench-setup:
	@missing=""; for p in $(BENCH_DEPS) $(if $(BENCH_PEERS),$(BENCH_PEER_DEPS)); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "bench-setup: installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends$$missing) >/dev/null \
	      || echo "bench-setup: apt-get failed; continuing without$$missing"; \
	  else \
	    echo "bench-setup: missing packages; run: sudo apt-get install$$missing"; \
	  fi; \
	fi
