package dns

import (
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary packets through the UDP query path (the
// header screen and unpack of acceptPacket, then ServeDNS with a fake
// writer; tcp only changes the transport ServeDNS sees) and checks that the server neither panics nor
// hangs, that every reply packs, echoes the query ID and fits the UDP limit.
// The server has no upstreams, so nothing leaves the process. Seeds: the
// table's queries plus testdata/fuzz/FuzzServeDNS.
func FuzzServeDNS(f *testing.F) {
	for _, c := range dnsCases {
		m := new(mdns.Msg)
		m.SetQuestion(c.qname, c.qtype)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	s := NewServer(Config{Upstreams: []string{}, Logger: quietLogger}, newFixtureIndex())
	f.Fuzz(func(t *testing.T, data []byte, tcp bool) {
		req, reject := acceptPacket(data)
		if reject != nil {
			if _, err := reject.Pack(); err != nil {
				t.Fatalf("rejection does not pack: %v", err)
			}
			return
		}
		if req == nil {
			return // dropped, as the real server does
		}
		done := make(chan *fakeWriter, 1)
		go func() {
			w := &fakeWriter{tcp: tcp}
			s.ServeDNS(w, req)
			done <- w
		}()
		var w *fakeWriter
		select {
		case w = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeDNS still running after 10s for %v", req)
		}
		if w.err != nil {
			t.Fatalf("reply to %v: %v", req, w.err)
		}
		if w.msg == nil {
			if !req.Response {
				t.Fatalf("no reply to %v", req)
			}
			return
		}
		if w.msg.Id != req.Id {
			t.Errorf("reply id %d, query id %d", w.msg.Id, req.Id)
		}
		limit := mdns.MaxMsgSize
		if !tcp {
			limit = mdns.MinMsgSize
			if o := req.IsEdns0(); o != nil && int(o.UDPSize()) > limit {
				limit = int(o.UDPSize())
			}
		}
		if len(w.packed) > limit {
			t.Errorf("reply of %d bytes exceeds the %d-byte limit", len(w.packed), limit)
		}
	})
}
