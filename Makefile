# Thin wrapper over CMake. `make run` and `make test` are the README's two commands.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
MAKEFLAGS += --no-print-directory

SANITIZE_DIR ?= build-sanitize
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := webhook signature exponea_answer config text

.PHONY: all deps build fuzz-build run run-build test test-sanitize fuzz soak install clean status-page-screenshot bench

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DDSR_BUILD_TESTS=ON \
	  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Builds only the daemon and exponea-sim, then starts both (scripts/run-dev). On a fresh clone the
# build is the light Demo type (docs/building.md); a build folder that
# `make build` or `make test` configured is used as it is.
RUN_BUILD_TYPE ?= Demo
run: run-build
	@scripts/run-dev $(BUILD_DIR)

run-build:
	@scripts/install-deps run
	@[ -f $(BUILD_DIR)/CMakeCache.txt ] || cmake -S . -B $(BUILD_DIR) \
	  -DCMAKE_BUILD_TYPE=$(RUN_BUILD_TYPE) -DDSR_BUILD_TESTS=OFF >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target dsr-connector exponea-sim

# The libFuzzer targets (clang 14, ASan + UBSan): tests/fuzz/.
fuzz-build: deps
	@cmake -S . -B $(FUZZ_DIR) -DDSR_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(FUZZ_DIR) -j $(JOBS)

# The whole suite, then each fuzz target deterministically (-seed=1, fixed runs, ~20 s each).
test: build fuzz-build
	@ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)
	@ctest --test-dir $(FUZZ_DIR) --output-on-failure -j $(JOBS)

# Explores each target for FUZZ_SECONDS (default 120) from its seed corpus; new inputs collect in
# $(FUZZ_DIR)/corpus/<target>, crashes in $(FUZZ_DIR)/artifacts/ (add a minimised one to
# tests/fuzz/corpus/<target> with the fix).
fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
	  $(FUZZ_DIR)/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t > $(FUZZ_DIR)/fuzz-$$t.log 2>&1 \
	    || { tail -n 40 $(FUZZ_DIR)/fuzz-$$t.log; echo "fuzz: $$t failed (log: $(FUZZ_DIR)/fuzz-$$t.log)"; exit 1; }; \
	  grep -E '^stat::(number_of_executed_units|new_units_added)' $(FUZZ_DIR)/fuzz-$$t.log; \
	done

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer (leaks included); the
# end-to-end tests then run instrumented daemon and simulator binaries too. Line tables only
# (-g1): reports keep file:line, and the build is the larger part of CI's time.
test-sanitize: deps
	@cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DDSR_SANITIZE=ON \
	  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1" >/dev/null
	@cmake --build $(SANITIZE_DIR) -j $(JOBS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS) --timeout 300

# The kill test in full: 200 jobs, 5 kill -9s (make test runs 40 jobs, 2 kills); a copy of 1 GiB
# sent as a file link (make test: 64 MiB); two daemons on one PostgreSQL database with 500 jobs
# across three kill -9s of one (make test: 120).
soak: build
	@DSR_SOAK_JOBS=$${DSR_SOAK_JOBS:-200} DSR_SOAK_KILLS=$${DSR_SOAK_KILLS:-5} \
	  DSR_SOAK_EXPORT_MB=$${DSR_SOAK_EXPORT_MB:-1024} $(BUILD_DIR)/tests/dsr_soak_tests
	@DSR_SOAK_CLUSTER_JOBS=$${DSR_SOAK_CLUSTER_JOBS:-500} $(BUILD_DIR)/tests/dsr_cluster_tests \
	  --gtest_filter='*KilledThreeTimes*'

# Every benchmark (bench/README.md), about 20 minutes on 2 cores: build/bench/results.md and
# build/bench/intake.png. Never part of make test.
bench: build
	@scripts/install-deps bench
	@BUILD=$(BUILD_DIR) bench/run-all.sh $(CURDIR)/$(BUILD_DIR)/bench

# Re-takes docs/status-page.png: the status page's Chromium test, saving its screenshot there.
status-page-screenshot: build
	@DSR_STATUS_PAGE_PNG=$(CURDIR)/docs/status-page.png \
	  $(BUILD_DIR)/tests/dsr_e2e_tests --gtest_filter='StatusPage.*'

# Installs under PREFIX (default /usr/local) into DESTDIR: the binary, the systemd unit,
# sysusers/tmpfiles snippets and the docs with the example configuration.
PREFIX ?= /usr/local
install: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) $(FUZZ_DIR)

# The Debian package (debian/, debhelper), built from a copy of the tracked files in build-deb/,
# where the .deb lands; prints its path. The daemon only, no tests: about 10 minutes on 2 cores.
# scripts/check-deb checks it; docs/operations.md "Debian package" installs it.
.PHONY: deb
deb:
	@scripts/install-deps deb
	@JOBS=$(JOBS) scripts/build-deb
