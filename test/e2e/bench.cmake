# The benchmark harness proves it still works: 2 s of keep-alive through
# nginx and the built hee (bench/run --selftest). No figures are asserted.
add_test(NAME e2e.bench_selftest
         COMMAND bash ${CMAKE_SOURCE_DIR}/bench/run --selftest --hee-bin $<TARGET_FILE:hee>)
set_tests_properties(e2e.bench_selftest PROPERTIES LABELS e2e TIMEOUT 300)
