#!/usr/bin/env bash
# README command 2: install what the build and the tests need, build Debug with
# AddressSanitizer + UndefinedBehaviorSanitizer, and run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh test
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DHEE_SANITIZE=ON >/dev/null
cmake --build build-test -j"$(nproc)"
cd build-test
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure -j2 --timeout 900 "$@"
