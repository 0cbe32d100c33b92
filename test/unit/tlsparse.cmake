# ClientHello parser (edge/clienthello.c) and certificate / negative caches
# (edge/certcache.c).
hee_unit_test(test_clienthello test/unit/test_clienthello.c edge/clienthello.c)
target_compile_definitions(test_clienthello PRIVATE
  TLSPARSE_DATA_DIR="${CMAKE_SOURCE_DIR}/test/unit/data")
# The test includes edge/certcache.c itself to reach its static functions
# (SipHash, the leaf template codec, key packing). Its memory figures need a
# build without sanitizers: see test_memory_per_cert.
hee_unit_test(test_certcache test/unit/test_certcache.c)
