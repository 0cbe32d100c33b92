hee_unit_test(test_config test/unit/test_config.c)
target_compile_definitions(test_config PRIVATE HEE_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
hee_unit_test(test_queue test/unit/test_queue.c common/queue.c)
hee_unit_test(test_util test/unit/test_util.c)
