# Hostname normalisation and registration rules (owner: api).
hee_fuzz_target(fuzz_hostname test/fuzz/fuzz_hostname.c common/hostname.c)
