# Unit tests: one cmocka program per component, linked against libdbo.a.
UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/unit/%,$(wildcard tests/unit/test_*.c))

$(BUILD)/tests/unit/guest_code.o: tests/unit/guest_code.S
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/run_guest.h $(BUILD)/libdbo.a $(BUILD)/tests/unit/guest_code.o
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/tests/unit/guest_code.o $(BUILD)/libdbo.a $(LDLIBS) -lcmocka

.PHONY: unit-test
unit-test: $(UNIT_TESTS)
	@for t in $(UNIT_TESTS); do timeout 60 $$t || exit 1; done
