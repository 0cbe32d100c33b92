# Hostname rules and the API's store modules (owner: api).
hee_unit_test(test_hostname test/unit/test_hostname.c common/hostname.c)
hee_unit_test(test_store_api test/unit/test_store_api.c
              common/store.c common/store_project.c common/store_token.c common/store_domain.c
              common/store_event.c common/store_audit.c common/store_usage.c common/domainobj.c
              ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c)
# The router on a real socket (bound by evhttp, as control.c does), with the control thread's hooks stubbed.
hee_unit_test(test_api_router test/unit/test_api_router.c
              control/api.c control/api_ops.c control/api_projects.c control/api_tokens.c
              control/api_domains.c control/api_misc.c control/api_resolve.c control/api_http.c edge/http1.c
              common/store.c common/store_project.c common/store_token.c common/store_domain.c
              common/store_event.c common/store_audit.c common/store_usage.c common/domainobj.c
              common/hostname.c common/config.c common/metrics.c ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c
              ${CMAKE_BINARY_DIR}/embed_api_openapi_yaml.c)
target_compile_definitions(test_api_router PRIVATE HEE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
