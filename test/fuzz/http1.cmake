# HTTP/1.1 request/response parsers and chunked decoder (owner: http1).
hee_fuzz_target(fuzz_http1 test/fuzz/fuzz_http1.c edge/http1.c)
