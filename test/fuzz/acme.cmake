# Parsers of what an ACME server sends (owner: acme): control/acme_parse.h,
# implemented at the end of control/acme.c, which needs jws, pki and curlev
# to link. Seeds in test/fuzz/corpus/fuzz_acme/ (first byte: the parser).
hee_fuzz_target(fuzz_acme test/fuzz/fuzz_acme.c control/acme.c control/keypool.c control/jws.c control/pki.c
                common/curlev.c)
