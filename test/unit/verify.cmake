# Verification: the ConnectionState table, the decision and store SQL, the
# engine against a silent resolver, and (test_verify_live) the scheduler
# against a real Knot DNS (owner: verify).
hee_unit_test(test_domain_state test/unit/test_domain_state.c common/domain_state.c)

set(HEE_VERIFY_ENGINE_SRC
    test/unit/test_verify_fake.c control/verify.c control/probe.c control/dns.c
    common/domain_state.c common/store.c common/store_verify.c common/store_cert.c common/store_domain.c common/store_event.c
    common/domainobj.c common/hostname.c common/config.c common/metrics.c common/cpugauge.c ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c)
hee_unit_test(test_verify test/unit/test_verify.c ${HEE_VERIFY_ENGINE_SRC})

# Spawns test/lib/dnsserver.py (knot) itself; skipped (77) without knotd.
#   test_verify_live bench [N]   probes/s of the whole engine over N seeded domains
hee_unit_test(test_verify_live test/unit/test_verify_live.c ${HEE_VERIFY_ENGINE_SRC})
target_compile_definitions(test_verify_live PRIVATE HEE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_tests_properties(unit.test_verify_live PROPERTIES LABELS "unit;knot" TIMEOUT 300 SKIP_RETURN_CODE 77)
