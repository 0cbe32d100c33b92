# Edge end-to-end tests (owner: edge). Each script starts the real daemon
# (test/lib/heetest.py), an origin (test/lib/upstream.py) and talks to it
# with Python's ssl/http.client, curl and openssl s_client.
hee_e2e_test(edge_proxy test/e2e/edge_proxy.py)
hee_e2e_test(edge_smuggling test/e2e/edge_smuggling.py)
hee_e2e_test(edge_upstream_faults test/e2e/edge_upstream_faults.py)
hee_e2e_test(edge_tls test/e2e/edge_tls.py)
hee_e2e_test(edge_plain test/e2e/edge_plain.py)
hee_e2e_test(edge_lifecycle test/e2e/edge_lifecycle.py)
hee_e2e_test(edge_ondemand test/e2e/edge_ondemand.py)
hee_e2e_test(edge_api test/e2e/edge_api.py)
hee_e2e_test(edge_config test/e2e/edge_config.py)
