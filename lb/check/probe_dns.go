package check

import (
	"context"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

type dnsProber struct{ s Spec }

func (p dnsProber) probe(ctx context.Context) outcome {
	m := new(dns.Msg)
	m.SetQuestion(p.s.QName, dns.StringToType[p.s.QType])
	m.RecursionDesired = true
	c := &dns.Client{Net: "udp", Dialer: dialerFor("udp", p.s.Source, p.s.FWMark)}
	if d, ok := ctx.Deadline(); ok {
		c.Timeout = time.Until(d)
	}
	r, _, err := c.ExchangeContext(ctx, m, p.s.Target.String())
	if err != nil {
		return classify(ctx, "dns "+p.s.QType+" "+p.s.QName, err)
	}
	return p.verdict(r)
}

// verdict judges a reply to the check's query (the client matched its
// ID): up with rcode NOERROR and an answer of the query's type.
func (p dnsProber) verdict(r *dns.Msg) outcome {
	if r.Rcode != dns.RcodeSuccess {
		name, known := dns.RcodeToString[r.Rcode]
		if !known { // an extended rcode (EDNS) without a name
			name = strconv.Itoa(r.Rcode)
		}
		return fail(Failure, "dns %s %s: rcode %s", p.s.QType, p.s.QName, name)
	}
	want := dns.StringToType[p.s.QType]
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == want {
			return ok("dns %s %s: %d answers", p.s.QType, p.s.QName, len(r.Answer))
		}
	}
	return fail(Failure, "dns %s %s: no %s answer", p.s.QType, p.s.QName, p.s.QType)
}
