# Webhook signing, SSRF guard, retry schedule, and the Python test receiver.
hee_unit_test(test_hook_sign test/unit/test_hook_sign.c control/hook_sign.c)
hee_unit_test(test_ssrf test/unit/test_ssrf.c control/ssrf.c)
hee_unit_test(test_hook_sched test/unit/test_hook_sched.c control/hook_sched.c)
add_test(NAME unit.receiver_selftest COMMAND python3 ${CMAKE_SOURCE_DIR}/test/lib/receiver.py --selftest)
set_tests_properties(unit.receiver_selftest PROPERTIES LABELS unit TIMEOUT 120)
