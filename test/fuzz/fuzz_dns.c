/* fuzz_dns: arbitrary bytes as a DNS answer through the resolver's acceptance
 * check (ID, QR, question), ldns parsing, the probe's CNAME walk and value
 * rendering for every record type, the decision and the JSON report.
 * Input: byte 0 selects options, the rest is the message.
 *   bit 0     overwrite the message ID with the expected one (so mutations
 *             get past the ID check instead of dying there)
 *   bits 1-2  question type expected: A, AAAA, TXT, CAA */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/dns.h"
#include "control/probe.h"

#define FUZZ_ID 0x4242

static void absorb_all(probe_facts_t *f, const char *qname, ldns_rr_type type, const ldns_pkt *pkt)
{
    const char *next = NULL;
    probe_facts_init(f, qname);
    f->queried = true;
    f->status = dns_rcode_status(pkt);
    if (probe_absorb(f, qname, type, "edge.hee.la", pkt, &next) != 0)
        return;
    /* A server answering the next hop with the same bytes: the walk must
     * still end (loop detection across answers). */
    for (int i = 0; next && i < PROBE_MAX_HOPS + 2; i++) {
        char *n = strdup(next);
        if (!n || probe_absorb(f, n, type, "edge.hee.la", pkt, &next) != 0)
            next = NULL;
        free(n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const ldns_rr_type types[] = {LDNS_RR_TYPE_A, LDNS_RR_TYPE_AAAA, LDNS_RR_TYPE_TXT,
                                         LDNS_RR_TYPE_CAA};
    if (size < 1)
        return 0;
    uint8_t opts = data[0];
    size_t len = size - 1;
    uint8_t *msg = malloc(len ? len : 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 1, len);
    if ((opts & 1) && len >= 2) {
        msg[0] = FUZZ_ID >> 8;
        msg[1] = FUZZ_ID & 0xff;
    }
    ldns_rr_type qtype = types[(opts >> 1) & 3];
    const char *qname = qtype == LDNS_RR_TYPE_TXT ? "_customdomain-challenge.www.cust.test"
                                                  : "www.cust.test";
    ldns_rdf *qn = ldns_dname_new_frm_str(qname);
    ldns_pkt *pkt = NULL;
    if (qn && dns_answer_check(msg, len, FUZZ_ID, qn, qtype, &pkt) == DNS_CHECK_ACCEPT) {
        probe_answers_t ans;
        memset(&ans, 0, sizeof(ans));
        absorb_all(&ans.a, "www.cust.test", LDNS_RR_TYPE_A, pkt);
        absorb_all(&ans.aaaa, "www.cust.test", LDNS_RR_TYPE_AAAA, pkt);
        absorb_all(&ans.txt, "_customdomain-challenge.www.cust.test", LDNS_RR_TYPE_TXT, pkt);
        absorb_all(&ans.caa, "www.cust.test", LDNS_RR_TYPE_CAA, pkt);
        if (opts & 0x80)
            ans.a.cd_answered = true;
        static const char *const edge[] = {"192.0.2.10", "2001:db8::10"};
        probe_request_t req = {.hostname = "www.cust.test", .cname_target = "edge.hee.la",
                               .edge_addrs = edge, .n_edge_addrs = 2,
                               .methods = PROBE_M_CNAME | PROBE_M_A | PROBE_M_TXT,
                               .txt_value = "tok-1", .ca_identifier = "letsencrypt.org"};
        probe_result_t res;
        if (probe_decide(&req, &ans, &res) == 0) {
            json_t *j = probe_result_to_json(&res);
            char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
            if (j && !s)
                abort(); /* every value must be valid UTF-8 */
            free(s);
            json_decref(j);
            probe_result_clear(&res);
        }
        probe_facts_clear(&ans.a);
        probe_facts_clear(&ans.aaaa);
        probe_facts_clear(&ans.txt);
        probe_facts_clear(&ans.caa);
        ldns_pkt_free(pkt);
    }
    ldns_rdf_deep_free(qn);
    free(msg);
    return 0;
}
