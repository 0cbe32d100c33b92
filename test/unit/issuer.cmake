# Issuer tests (owner: issuer). test_issuer includes control/issuer.c itself
# to reach its static parts; the Pebble group is skipped when pebble is not
# installed. Latency lines ("latency ...") are printed for comparison.
hee_unit_test(test_issuer test/unit/test_issuer.c test/unit/acme_pebble.c
              common/store.c ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c common/store_cert.c common/store_domain.c
              common/store_event.c common/domainobj.c common/hostname.c common/domain_state.c
              common/hub.c common/queue.c common/metrics.c common/challenge.c common/curlev.c
              common/keyseal.c common/config.c
              control/acme.c control/keypool.c control/jws.c control/pki.c control/localca.c)
target_compile_definitions(test_issuer PRIVATE HEE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_tests_properties(unit.test_issuer PROPERTIES LABELS "unit;pebble" TIMEOUT 300)
