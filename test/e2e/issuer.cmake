# Issuer end-to-end tests (owner: issuer): the real daemon and edge with the
# built-in CA, and with Pebble (+ knot for real http-01 / tls-alpn-01
# validation; skipped when pebble or knotd is missing). "figure" lines in the
# output are the latency measurements.
hee_e2e_test(issuer_internal test/e2e/issuer_internal.py)
hee_e2e_test(issuer_acme test/e2e/issuer_acme.py)
set_tests_properties(e2e.issuer_acme PROPERTIES LABELS "e2e;pebble")
