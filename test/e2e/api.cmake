# Control API end-to-end tests (owner: api). Each starts its own daemon on
# free loopback ports through test/lib/heetest.py.
hee_e2e_test(api_basic test/e2e/api_basic.py)
hee_e2e_test(api_tenancy test/e2e/api_tenancy.py)
hee_e2e_test(api_crash test/e2e/api_crash.py)
hee_e2e_test(api_cli test/e2e/api_cli.py)
hee_e2e_test(api_openapi test/e2e/api_openapi.py)
hee_e2e_test(api_batch test/e2e/api_batch.py)
hee_e2e_test(api_http test/e2e/api_http.py)
