# Thin wrapper over CMake. `make run` and `make test` are the README's two commands.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory

SANITIZE_DIR ?= build-sanitize

.PHONY: all deps build run test test-sanitize soak clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@scripts/run-dev $(BUILD_DIR)

test: build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks included); the
# end-to-end tests then run instrumented daemon and simulator binaries too.
test-sanitize: deps
	@cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=Debug \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" >/dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS) --timeout 300

# The kill test in full: 200 jobs, 5 kill -9s (make test runs 40 jobs, 2 kills).
soak: build
	@DSR_SOAK_JOBS=$${DSR_SOAK_JOBS:-200} DSR_SOAK_KILLS=$${DSR_SOAK_KILLS:-5} \
	  $(BUILD_DIR)/tests/dsr_soak_tests

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR)
