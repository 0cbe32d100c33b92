# Edge unit tests (owner: edge): building blocks and the edge's store reads.
hee_unit_test(test_edge_units test/unit/test_edge_units.c
  edge/iobuf.c edge/strmap.c edge/cidr.c edge/upstream_addr.c edge/health.c)
hee_unit_test(test_store_edge test/unit/test_store_edge.c
  common/store_edge.c common/store.c ${CMAKE_BINARY_DIR}/embed_store_schema_sql.c)
hee_unit_test(test_edge_tlsrec test/unit/test_edge_tlsrec.c edge/tlsrec.c)
hee_unit_test(test_edge_route_project test/unit/test_edge_route_project.c
  edge/route_project.c edge/upstream_addr.c)
