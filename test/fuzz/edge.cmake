# Edge parsers of URLs, CIDR lists, record headers (owner: edge).
hee_fuzz_target(fuzz_edge_parse test/fuzz/fuzz_edge_parse.c
  edge/upstream_addr.c edge/cidr.c edge/strmap.c edge/tlsrec.c)
