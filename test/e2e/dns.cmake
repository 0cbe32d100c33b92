# Live resolver/probe test against a real Knot DNS (owner: dns). The daemon
# does not drive DNS probes yet, so instead of hee_e2e_test this builds a
# cmocka program that the Python driver runs once knot serves its zones.
# Benchmark: python3 test/e2e/dns_probe_live.py <build>/test_dns_live --bench
add_executable(test_dns_live test/unit/test_dns_live.c control/probe.c control/dns.c)
target_link_libraries(test_dns_live PRIVATE heebase cmocka)
target_include_directories(test_dns_live PRIVATE ${CMAKE_SOURCE_DIR})
add_test(NAME e2e.dns_probe_live
         COMMAND python3 -u ${CMAKE_SOURCE_DIR}/test/e2e/dns_probe_live.py $<TARGET_FILE:test_dns_live>)
set_tests_properties(e2e.dns_probe_live PROPERTIES LABELS e2e TIMEOUT 300 SKIP_RETURN_CODE 77
  ENVIRONMENT "PYTHONPATH=${CMAKE_SOURCE_DIR}/test/lib")
