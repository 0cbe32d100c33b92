# Webhook delivery engine (control/hooks.c), its SQL (common/store_hook.c)
# and the fuzz-free pieces it is built from.
set(HOOKS_STORE_SRC common/store.c ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c common/store_event.c common/store_hook.c)
hee_unit_test(test_hooks_store test/unit/test_hooks_store.c ${HOOKS_STORE_SRC})
hee_unit_test(test_hooks test/unit/test_hooks.c control/hooks.c control/hook_sign.c control/hook_sched.c
              control/ssrf.c common/curlev.c common/metrics.c common/config.c ${HOOKS_STORE_SRC})
target_compile_definitions(test_hooks PRIVATE HEE_VERSION="test")
set_tests_properties(unit.test_hooks PROPERTIES TIMEOUT 300)
