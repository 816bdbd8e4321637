# dbo — dynamic binary optimizer and user-mode sandbox for x86-64 Linux.
# `make demo` and `make test` are the two quick-start commands (see README.md).

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
VERSION  := 0.1.0
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -fno-strict-aliasing \
            -DDBO_VERSION='"$(VERSION)"' -I.
LDLIBS   := -lZydis -lpthread

# Debian packages dbo needs to build and test; `make setup` installs the
# missing ones when run as root, otherwise it prints the command to run.
BUILD_DEPS := gcc g++ make libzydis-dev libzycore-dev libxxhash-dev \
              libunwind-dev libcmocka-dev pkg-config
TEST_DEPS  := coreutils bash sed gawk grep tar gzip xz-utils bzip2 \
              python3 perl sqlite3 git binutils libc6-dev file

RUNTIME_SRCS := $(wildcard runtime/*.c) $(wildcard loader/*.c) \
                $(wildcard translator/*.c) $(wildcard cache/*.c) \
                $(wildcard optimizer/*.c) $(wildcard syscall/*.c)
RUNTIME_ASM  := $(wildcard translator/*.S) $(wildcard syscall/*.S)
LIB_OBJS     := $(patsubst %.c,$(BUILD)/%.o,$(filter-out runtime/main.c,$(RUNTIME_SRCS))) \
                $(patsubst %.S,$(BUILD)/%.o,$(RUNTIME_ASM))
DEPFILES     := $(patsubst %.c,$(BUILD)/%.d,$(RUNTIME_SRCS)) \
                $(patsubst %.S,$(BUILD)/%.d,$(RUNTIME_ASM)) # .S files read translator.h

.PHONY: all setup demo test unit-test diff-test real-test bench install clean format

all: $(BUILD)/dbo

setup:
	@missing=""; for p in $(BUILD_DEPS) $(TEST_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "setup: installing$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing) >/dev/null || exit 1; \
	  else \
	    echo "setup: missing packages; run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libdbo.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/dbo: $(BUILD)/runtime/main.o $(BUILD)/libdbo.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

-include $(DEPFILES)
-include tests/unit.mk
-include tests/tests.mk
-include benchmarks/bench.mk

demo: setup all
	@echo "== dbo --stats /bin/ls -l / (translated, every syscall through the gate)"
	$(BUILD)/dbo --stats ls -l /

install: $(BUILD)/dbo
	install -D -m 755 $(BUILD)/dbo $(DESTDIR)$(PREFIX)/bin/dbo
	install -D -m 644 dbo.1 $(DESTDIR)$(PREFIX)/share/man/man1/dbo.1

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)
