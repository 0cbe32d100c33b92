# tlsrec_open after a real handshake: crafted inner plaintexts and raw
# records (owner: tlsrec). Seeds in test/fuzz/corpus/fuzz_tlsrec/.
hee_fuzz_target(fuzz_tlsrec test/fuzz/fuzz_tlsrec.c edge/tlsrec.c)
