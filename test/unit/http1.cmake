# HTTP/1.1 head parsers and chunked decoder (owner: http1).
hee_unit_test(test_http1 test/unit/test_http1.c edge/http1.c)
