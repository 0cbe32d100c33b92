# ClientHello parser fuzz target; the corpus holds real hellos and broken ones.
hee_fuzz_target(fuzz_clienthello test/fuzz/fuzz_clienthello.c edge/clienthello.c)
