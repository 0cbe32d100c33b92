# ACME, local CA and PKI tests (owner: acme). acme_httpd is a tiny threaded
# HTTP server the network tests talk to.
hee_unit_test(test_acme_curlev test/unit/test_acme_curlev.c test/unit/acme_httpd.c common/curlev.c)
hee_unit_test(test_pki test/unit/test_pki.c control/pki.c)
hee_unit_test(test_acme_localca test/unit/test_acme_localca.c control/localca.c control/pki.c)
# test_jws includes control/jws.c itself to reach its static helpers.
hee_unit_test(test_jws test/unit/test_jws.c control/pki.c)
# Against a real Pebble (skipped when not installed); prints latencies.
hee_unit_test(test_acme_pebble test/unit/test_acme_pebble.c test/unit/acme_pebble.c test/unit/acme_httpd.c
              test/unit/acme_alpnd.c common/curlev.c control/acme.c control/keypool.c control/jws.c control/pki.c)
target_compile_definitions(test_acme_pebble PRIVATE HEE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
set_tests_properties(unit.test_acme_pebble PROPERTIES LABELS "unit;pebble" TIMEOUT 300)
# Against a scripted fake CA: error paths, Retry-After, polling, ARI, badNonce.
hee_unit_test(test_acme_fake test/unit/test_acme_fake.c test/unit/acme_httpd.c common/curlev.c
              control/acme.c control/keypool.c control/jws.c control/pki.c control/localca.c)
# The parsers of what the CA sends (control/acme_parse.h, at the end of
# control/acme.c, hence its link partners); test/fuzz/acme.cmake fuzzes them.
hee_unit_test(test_acme_parse test/unit/test_acme_parse.c control/acme.c control/keypool.c control/jws.c control/pki.c
              common/curlev.c)
# RSA keys made off the loop (control/keypool).
hee_unit_test(test_keypool test/unit/test_keypool.c control/keypool.c control/pki.c)
