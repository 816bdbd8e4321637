# Differential, real-program, no-exec and bad-input tests (included by the
# top-level Makefile; unit-test comes from tests/unit.mk). Each script ends
# with "N passed, N failed" and exits nonzero on any failure.
#   make diff-test DIFF_FILTER=signals   only programs whose name matches
#   make real-test REAL_FILTER=git       only checks whose name matches
DIFF_FILTER ?=
REAL_FILTER ?=
TEST_ENV     = BUILD=$(BUILD) DBO=$${DBO:-$(BUILD)/dbo}

.PHONY: test diff-test real-test noexec-test badinput-test

test: setup all unit-test diff-test real-test noexec-test badinput-test

diff-test: all
	$(TEST_ENV) tests/diff.sh $(DIFF_FILTER)

real-test: all
	$(TEST_ENV) tests/real.sh $(REAL_FILTER)

noexec-test: all
	$(TEST_ENV) tests/noexec.sh

badinput-test: all
	$(TEST_ENV) tests/badinput.sh
