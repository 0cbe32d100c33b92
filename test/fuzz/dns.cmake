# Fuzz target for DNS answers through acceptance, parsing and the probe
# decision (owner: dns). Seeds in test/fuzz/corpus/fuzz_dns/.
hee_fuzz_target(fuzz_dns test/fuzz/fuzz_dns.c control/dns.c control/probe.c)
