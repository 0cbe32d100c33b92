# Resolver and probe unit tests (owner: dns). The live test against knot is
# registered in test/e2e/dns.cmake.
hee_unit_test(test_dns test/unit/test_dns.c control/dns.c)
hee_unit_test(test_probe test/unit/test_probe.c control/probe.c control/dns.c)
