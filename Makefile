# weft: the commands README.md documents. Every target installs what it needs first, so each one
# works on a fresh Debian 12 machine.
#
#   make run     deps + build + weftd's embedded single-node default (scripts/run-weftd)
#   make deps    install the Debian packages (scripts/install-deps; idempotent)
#   make build   release build (RelWithDebInfo, asserts on) into build/release; the programs
#                land in build/release/bin (weftd, weft)
#   make test    deps + build + the whole default test suite (ctest)
#   make bench   deps + build + the extent-store benchmark (bench/, not part of make test)
#   make bench-nbd  deps + build + weft over NBD vs qemu-nbd vs the raw file (bench/nbd-compare)
#   make bench-compare  deps + build + weft vs Ceph RBD vs qemu-nbd vs the raw device (bench/compare)
#   make bench-replication  deps + build + weft RF1/RF2/RF3 (3-node loopback cluster) vs Ceph
#                size 1 and size 3 (bench/compare --targets ...)
#   make bench-ring  deps + build + metadata ring (3 nodes, loopback) vs the local RocksDB store
#   make sim-long  deps + build + thousands of seeds of the metadata ring simulation (sim/run-long)
#   make fuzz    deps + the NBD decoder fuzzer for FUZZ_SECONDS (default 600) (fuzz/)
#   make asan    deps + AddressSanitizer/UBSan build and test suite, into build/asan
#   make tsan    deps + ThreadSanitizer build and test suite, into build/tsan
#   make format  clang-format every source file in place (make test checks it)
#   make tidy    clang-tidy over src/ (uses build/release/compile_commands.json)

JOBS ?= $(shell nproc)
BUILD_DIR := build/release

.PHONY: run deps build test bench bench-nbd bench-compare bench-replication bench-ring sim-long fuzz asan tsan debug format format-check tidy clean

run: build
	scripts/run-weftd

deps:
	scripts/install-deps

build: deps
	cmake --preset release
	cmake --build --preset release -j $(JOBS)

test: build format-check
	ctest --preset release -j $(JOBS)

bench: build
	bench/run-extent-store-bench

bench-nbd: build
	bench/nbd-compare

bench-compare: build
	bench/compare

bench-replication: build
	bench/compare --targets weft-rf1,weft-rf2,weft-rf3,ceph-1osd,ceph-3osd

bench-ring: build
	bench/ring-compare

SIM_SEEDS ?= 5000
sim-long: build
	sim/run-long $(SIM_SEEDS)

FUZZ_SECONDS ?= 600
fuzz: deps
	fuzz/run-nbd-fuzz $(FUZZ_SECONDS)

debug: deps
	cmake --preset debug
	cmake --build --preset debug -j $(JOBS)

asan: deps
	cmake --preset asan
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

tsan: deps
	cmake --preset tsan
	cmake --build --preset tsan -j $(JOBS)
	ctest --preset tsan -j $(JOBS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

# Fails when a source file differs from .clang-format's layout (part of make test).
format-check: deps
	git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror

tidy: build
	find src -name '*.cc' | xargs clang-tidy -p $(BUILD_DIR) --quiet

clean:
	rm -rf build
