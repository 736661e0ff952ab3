package dataplane

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"testing"
	"time"
)

// TestRootReadChains reads two chains of a throwaway namespace, one of which counted real
// packets (a UDP datagram to the namespace's own loopback), and one that does not exist.
func TestRootReadChains(t *testing.T) {
	pxRequireRoot(t)
	path := pxNewNetns(t)
	payload := []byte(`*filter
:SVCLAB-COUNT - [0:0]
:SVCLAB-OTHER - [0:0]
-A OUTPUT -p udp -d 127.0.0.1 --dport 9 -j SVCLAB-COUNT
-A SVCLAB-COUNT -m comment --comment "counted" -j RETURN
-A SVCLAB-OTHER -j RETURN
COMMIT
`)
	err := onFreshThread(func() error {
		return inNetns(path, func() error {
			cmd := exec.Command("iptables-restore", "--noflush")
			cmd.Stdin = bytes.NewReader(payload)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("iptables-restore: %v: %s", err, out)
			}
			l, err := net.ListenPacket("udp", "127.0.0.1:9") // the namespace's own loopback
			if err != nil {
				return err
			}
			defer l.Close()
			c, err := net.Dial("udp", "127.0.0.1:9")
			if err != nil {
				return err
			}
			defer c.Close()
			for range 3 {
				if _, err := c.Write([]byte("x")); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rs, err := ReadChains(ctx, path, "", TableFilter, []string{"SVCLAB-COUNT", "SVCLAB-MISSING", "SVCLAB-OTHER"})
	if err != nil {
		t.Fatal(err)
	}
	c := rs.Chain(TableFilter, "SVCLAB-COUNT")
	if c == nil || len(c.Rules) != 1 {
		t.Fatalf("SVCLAB-COUNT = %+v, want one rule", c)
	}
	if r := c.Rules[0]; r.Comment != "counted" || r.Counters == nil || r.Counters.Packets != 3 {
		t.Errorf("SVCLAB-COUNT rule = %q counters %+v, want comment \"counted\" and 3 packets", r.Text, r.Counters)
	}
	if o := rs.Chain(TableFilter, "SVCLAB-OTHER"); o == nil || len(o.Rules) != 1 {
		t.Errorf("SVCLAB-OTHER = %+v, want one rule", o)
	}
	if m := rs.Chain(TableFilter, "SVCLAB-MISSING"); m != nil {
		t.Errorf("a missing chain came back: %+v", m)
	}
	if _, err := ReadChains(ctx, "", "", TableFilter, []string{"X"}); err == nil {
		t.Error("ReadChains without a namespace: no error")
	}
}
