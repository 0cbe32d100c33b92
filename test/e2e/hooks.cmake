# Webhooks against the real daemon and test/lib/receiver.py (see docs/webhooks.md).
hee_e2e_test(hooks_api test/e2e/hooks_api.py)
hee_e2e_test(hooks_delivery test/e2e/hooks_delivery.py)
hee_e2e_test(hooks_crash test/e2e/hooks_crash.py)
hee_e2e_test(hooks_ssrf test/e2e/hooks_ssrf.py)
hee_e2e_test(hooks_lifecycle test/e2e/hooks_lifecycle.py)
hee_e2e_test(hooks_expiry test/e2e/hooks_expiry.py)
# knotd missing: the lifecycle test exits 77 (skipped).
set_tests_properties(e2e.hooks_lifecycle PROPERTIES SKIP_RETURN_CODE 77)
# pebble missing: the expiry test exits 77 (skipped).
set_tests_properties(e2e.hooks_expiry PROPERTIES SKIP_RETURN_CODE 77 LABELS "e2e;pebble")
