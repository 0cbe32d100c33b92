# Webhook configuration parsers: the SSRF allow-list and the retry schedule
# (owner: hooks). Corpora in test/fuzz/corpus/fuzz_<name>/ replay under ctest.
hee_fuzz_target(fuzz_ssrf_policy test/fuzz/fuzz_ssrf_policy.c control/ssrf.c)
hee_fuzz_target(fuzz_hook_sched test/fuzz/fuzz_hook_sched.c control/hook_sched.c)
