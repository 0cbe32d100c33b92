# Verification end to end: the daemon against Knot DNS behind a scripted
# proxy (test/e2e/verify_dns.py). Skipped (77) without knotd. (owner: verify)
hee_e2e_test(verify_api test/e2e/verify_api.py)
set_tests_properties(e2e.verify_api PROPERTIES SKIP_RETURN_CODE 77 LABELS "e2e;knot")
hee_e2e_test(verify_schedule test/e2e/verify_schedule.py)
set_tests_properties(e2e.verify_schedule PROPERTIES SKIP_RETURN_CODE 77 LABELS "e2e;knot")
hee_e2e_test(verify_edge test/e2e/verify_edge.py)
set_tests_properties(e2e.verify_edge PROPERTIES SKIP_RETURN_CODE 77 LABELS "e2e;knot")
