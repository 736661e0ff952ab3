package alloc

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

func mustRange(t *testing.T, cidr string, opts IPOptions) *IPRange {
	t.Helper()
	r, err := NewIPRange(netip.MustParsePrefix(cidr), opts)
	if err != nil {
		t.Fatalf("NewIPRange(%s): %v", cidr, err)
	}
	return r
}

func mustPorts(t *testing.T, spec string) *PortAllocator {
	t.Helper()
	pr, err := utilnet.ParsePortRange(spec)
	if err != nil {
		t.Fatalf("ParsePortRange(%s): %v", spec, err)
	}
	a, err := NewPortAllocator(*pr)
	if err != nil {
		t.Fatalf("NewPortAllocator(%s): %v", spec, err)
	}
	return a
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func allocated(r *IPRange) []netip.Addr {
	var out []netip.Addr
	r.ForEach(func(a netip.Addr) { out = append(out, a) })
	return out
}

func TestNewIPRange(t *testing.T) {
	tests := []struct {
		cidr                string
		wantErr             string
		size                int
		bandFirst, bandLast string // empty: no static band
	}{
		{cidr: "10.96.0.0/12", size: 1<<20 - 2, bandFirst: "10.96.0.1", bandLast: "10.96.1.0"},
		{cidr: "10.96.0.0/24", size: 254, bandFirst: "10.96.0.1", bandLast: "10.96.0.16"},
		{cidr: "10.96.0.0/20", size: 4094, bandFirst: "10.96.0.1", bandLast: "10.96.1.0"},
		{cidr: "10.96.0.0/21", size: 2046, bandFirst: "10.96.0.1", bandLast: "10.96.0.128"},
		{cidr: "10.96.0.0/28", size: 14},
		{cidr: "10.96.0.0/30", size: 2},
		{cidr: "10.96.0.7/29", size: 6}, // masked to 10.96.0.0/29
		{cidr: "fd00::/120", size: 255, bandFirst: "fd00::1", bandLast: "fd00::10"},
		{cidr: "fd00::/127", size: 1},
		{cidr: "10.96.0.0/31", wantErr: "CIDR 10.96.0.0/31 is too small: it has no allocatable address"},
		{cidr: "10.96.0.1/32", wantErr: "CIDR 10.96.0.1/32 is too small: it has no allocatable address"},
		{cidr: "fd00::/128", wantErr: "CIDR fd00::/128 is too small: it has no allocatable address"},
		{cidr: "10.0.0.0/11", wantErr: "CIDR 10.0.0.0/11 is too large; for 32-bit addresses, the mask must be >= 12"},
		{cidr: "fd00::/107", wantErr: "CIDR fd00::/107 is too large; for 128-bit addresses, the mask must be >= 108"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			r, err := NewIPRange(netip.MustParsePrefix(tt.cidr), IPOptions{})
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Size() != tt.size || r.Free() != tt.size || r.Used() != 0 {
				t.Errorf("size/free/used = %d/%d/%d, want %d/%d/0", r.Size(), r.Free(), r.Used(), tt.size, tt.size)
			}
			first, last, ok := r.StaticBand()
			var got [2]string
			if ok {
				got = [2]string{first.String(), last.String()}
			}
			if want := [2]string{tt.bandFirst, tt.bandLast}; got != want {
				t.Errorf("static band = %v, want %v", got, want)
			}
		})
	}
}

func TestIPRangeRequested(t *testing.T) {
	r := mustRange(t, "10.96.0.0/12", IPOptions{})
	tests := []struct {
		ip      string
		wantErr string
	}{
		{ip: "10.96.0.100"},
		{ip: "10.96.0.100", wantErr: "provided IP is already allocated"},
		{ip: "10.96.0.1"},
		{ip: "10.111.255.254"},
		{ip: "10.96.0.0", wantErr: "the provided IP (10.96.0.0) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{ip: "10.111.255.255", wantErr: "the provided IP (10.111.255.255) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{ip: "10.95.255.254", wantErr: "the provided IP (10.95.255.254) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{ip: "fd00::1", wantErr: "the provided IP (fd00::1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"},
		{ip: "::ffff:10.96.0.5"}, // IPv4-mapped form of an in-range address
		{ip: "10.96.0.5", wantErr: "provided IP is already allocated"},
	}
	for _, tt := range tests {
		err := r.Allocate(netip.MustParseAddr(tt.ip))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("Allocate(%s) = %q, want %q", tt.ip, got, tt.wantErr)
		}
	}
	if err := r.Allocate(netip.MustParseAddr("10.96.0.0")); !errors.Is(err, ErrNotInRange) {
		t.Errorf("errors.Is(%v, ErrNotInRange) = false", err)
	}
	if err := r.Allocate(netip.MustParseAddr("10.96.0.1")); !errors.Is(err, ErrIPAllocated) {
		t.Errorf("errors.Is(%v, ErrIPAllocated) = false", err)
	}
	want := addrs("10.96.0.1", "10.96.0.5", "10.96.0.100", "10.111.255.254")
	if diff := cmp.Diff(want, allocated(r), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("allocated (-want +got):\n%s", diff)
	}
	if r.Used() != 4 || r.Free() != r.Size()-4 {
		t.Errorf("used/free = %d/%d", r.Used(), r.Free())
	}
}

// TestIPRangeExhaustion fills a small range dynamically: every address is
// handed out exactly once, then ErrFull.
func TestIPRangeExhaustion(t *testing.T) {
	r := mustRange(t, "10.96.0.0/29", IPOptions{})
	seen := map[netip.Addr]bool{}
	for i := 0; i < 6; i++ {
		ip, err := r.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext #%d: %v", i, err)
		}
		if seen[ip] {
			t.Fatalf("AllocateNext returned %s twice", ip)
		}
		seen[ip] = true
	}
	if _, err := r.AllocateNext(); !errors.Is(err, ErrFull) || err.Error() != "range is full" {
		t.Fatalf("AllocateNext on a full range = %v, want ErrFull", err)
	}
	want := addrs("10.96.0.1", "10.96.0.2", "10.96.0.3", "10.96.0.4", "10.96.0.5", "10.96.0.6")
	if diff := cmp.Diff(want, allocated(r), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("allocated (-want +got):\n%s", diff)
	}
	// Releasing one makes exactly that one available again.
	r.Release(netip.MustParseAddr("10.96.0.4"))
	ip, err := r.AllocateNext()
	if err != nil || ip != netip.MustParseAddr("10.96.0.4") {
		t.Fatalf("AllocateNext after release = %s, %v; want 10.96.0.4", ip, err)
	}
}

// TestIPRangeBands checks kube's KEP-3070 split: dynamic allocation drains the
// upper band completely before touching the static band.
func TestIPRangeBands(t *testing.T) {
	r := mustRange(t, "10.96.0.0/24", IPOptions{}) // static band .1-.16
	lo, hi := netip.MustParseAddr("10.96.0.1"), netip.MustParseAddr("10.96.0.16")
	inStatic := func(ip netip.Addr) bool { return ip.Compare(lo) >= 0 && ip.Compare(hi) <= 0 }
	for i := 0; i < 254-16; i++ {
		ip, err := r.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext #%d: %v", i, err)
		}
		if inStatic(ip) {
			t.Fatalf("AllocateNext #%d = %s, inside the static band while the dynamic band has room", i, ip)
		}
	}
	for i := 0; i < 16; i++ {
		ip, err := r.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext (static) #%d: %v", i, err)
		}
		if !inStatic(ip) {
			t.Fatalf("AllocateNext (static) #%d = %s, want the static band", i, ip)
		}
	}
	if _, err := r.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
}

func TestIPRangeReserved(t *testing.T) {
	r := mustRange(t, "10.96.0.0/28", IPOptions{}) // 14 addresses, no static band
	dns := netip.MustParseAddr("10.96.0.10")
	if err := r.Reserve(dns); err != nil {
		t.Fatal(err)
	}
	if err := r.Reserve(netip.MustParseAddr("10.97.0.10")); !errors.Is(err, ErrNotInRange) {
		t.Fatalf("Reserve outside the range = %v, want ErrNotInRange", err)
	}
	if !r.IsReserved(dns) || r.Has(dns) {
		t.Fatalf("reserved=%v has=%v, want reserved and free", r.IsReserved(dns), r.Has(dns))
	}
	for i := 0; i < 13; i++ {
		ip, err := r.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext #%d: %v", i, err)
		}
		if ip == dns {
			t.Fatalf("AllocateNext returned the reserved %s", dns)
		}
	}
	if _, err := r.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Fatalf("with only the reserved address left, AllocateNext = %v, want ErrFull", err)
	}
	if err := r.Allocate(dns); err != nil {
		t.Fatalf("explicit Allocate of a reserved address: %v", err)
	}
	if r.Used() != 14 {
		t.Fatalf("used = %d, want 14", r.Used())
	}
}

func TestIPRangeLowestAvoidBuggy(t *testing.T) {
	r := mustRange(t, "172.29.254.0/23", IPOptions{Strategy: Lowest, AvoidDotZeroAndDot255: true})
	if _, _, ok := r.StaticBand(); ok {
		t.Fatal("Lowest strategy must not have a static band")
	}
	var got []netip.Addr
	for {
		ip, err := r.AllocateNext()
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ip)
	}
	if len(got) != 508 {
		t.Fatalf("allocated %d addresses, want 510-2", len(got))
	}
	if got[0] != netip.MustParseAddr("172.29.254.1") || got[1] != netip.MustParseAddr("172.29.254.2") {
		t.Errorf("first addresses = %s, %s; want lowest first", got[0], got[1])
	}
	if !slices.IsSortedFunc(got, func(a, b netip.Addr) int { return a.Compare(b) }) {
		t.Error("Lowest strategy did not allocate in increasing order")
	}
	for _, bad := range addrs("172.29.254.255", "172.29.255.0") {
		if slices.Contains(got, bad) {
			t.Errorf("AllocateNext handed out %s", bad)
		}
		if err := r.Allocate(bad); err != nil {
			t.Errorf("explicit Allocate(%s) = %v", bad, err)
		}
	}
}

// TestRetainRelease shows that holds are counted, so undo steps commute.
func TestRetainRelease(t *testing.T) {
	r := mustRange(t, "10.96.0.0/24", IPOptions{})
	ip := netip.MustParseAddr("10.96.0.50")
	if err := r.Allocate(ip); err != nil {
		t.Fatal(err)
	}
	// Write A released ip (delete), write B then took it (create). Undo them in
	// the wrong order: A's undo retains first, then B's undo releases.
	r.Release(ip) // A
	if err := r.Allocate(ip); err != nil {
		t.Fatal(err) // B
	}
	if err := r.Retain(ip); err != nil {
		t.Fatal(err) // undo A
	}
	if got := r.Holds(ip); got != 2 {
		t.Fatalf("holds = %d, want 2", got)
	}
	if !r.Release(ip) { // undo B
		t.Fatal("Release of a held address returned false")
	}
	if !r.Has(ip) || r.Used() != 1 || r.Holds(ip) != 1 {
		t.Fatalf("after both undos: has=%v used=%d holds=%d, want held once", r.Has(ip), r.Used(), r.Holds(ip))
	}
	if !r.Release(ip) || r.Has(ip) || r.Release(ip) {
		t.Fatal("final release did not free the address exactly once")
	}
	if err := r.Retain(netip.MustParseAddr("10.96.0.0")); !errors.Is(err, ErrNotInRange) {
		t.Fatalf("Retain of the network address = %v, want ErrNotInRange", err)
	}
	r.Allocate(ip)
	r.Retain(ip)
	r.Reset()
	if r.Used() != 0 || r.Has(ip) || r.Holds(ip) != 0 {
		t.Fatal("Reset left allocations behind")
	}
}

func TestIPRangeConcurrent(t *testing.T) {
	r := mustRange(t, "10.96.0.0/24", IPOptions{})
	const n = 64
	var wg sync.WaitGroup
	got := make([]netip.Addr, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { got[i], errs[i] = r.AllocateNext() })
	}
	wg.Wait()
	seen := map[netip.Addr]int{}
	for i, ip := range got {
		if errs[i] != nil {
			t.Fatalf("AllocateNext #%d: %v", i, errs[i])
		}
		seen[ip]++
		if seen[ip] > 1 {
			t.Errorf("%s handed out twice", ip)
		}
		if !r.Has(ip) {
			t.Errorf("%s not marked allocated", ip)
		}
	}
	if r.Used() != n {
		t.Fatalf("used = %d, want %d", r.Used(), n)
	}
}

func TestPortAllocator(t *testing.T) {
	a := mustPorts(t, "30000-32767")
	first, last, ok := a.StaticBand()
	if !ok || first != 30000 || last != 30085 {
		t.Fatalf("static band = %d-%d (%v), want 30000-30085", first, last, ok)
	}
	tests := []struct {
		port    int
		wantErr string
	}{
		{port: 30080},
		{port: 30080, wantErr: "provided port is already allocated"},
		{port: 30000},
		{port: 32767},
		{port: 29999, wantErr: "provided port is not in the valid range. The range of valid ports is 30000-32767"},
		{port: 32768, wantErr: "provided port is not in the valid range. The range of valid ports is 30000-32767"},
		{port: 80, wantErr: "provided port is not in the valid range. The range of valid ports is 30000-32767"},
	}
	for _, tt := range tests {
		err := a.Allocate(tt.port)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("Allocate(%d) = %q, want %q", tt.port, got, tt.wantErr)
		}
	}
	if err := a.Allocate(30080); !errors.Is(err, ErrPortAllocated) {
		t.Errorf("errors.Is(%v, ErrPortAllocated) = false", err)
	}
	if err := a.Allocate(1); !errors.Is(err, ErrNotInRange) {
		t.Errorf("errors.Is(%v, ErrNotInRange) = false", err)
	}
	var ports []int
	a.ForEach(func(p int) { ports = append(ports, p) })
	if diff := cmp.Diff([]int{30000, 30080, 32767}, ports); diff != "" {
		t.Errorf("allocated (-want +got):\n%s", diff)
	}
	for i := 0; i < 200; i++ {
		p, err := a.AllocateNext()
		if err != nil {
			t.Fatal(err)
		}
		if p <= last {
			t.Fatalf("dynamic port %d inside the static band while the upper band has room", p)
		}
	}
}

func TestPortAllocatorBandsAndExhaustion(t *testing.T) {
	a := mustPorts(t, "30000-30099") // 100 ports: static band 30000-30015
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		p, err := a.AllocateNext()
		if err != nil {
			t.Fatalf("AllocateNext #%d: %v", i, err)
		}
		if seen[p] || p < 30000 || p > 30099 {
			t.Fatalf("AllocateNext #%d = %d (dup or out of range)", i, p)
		}
		if static := p <= 30015; static != (i >= 84) {
			t.Fatalf("AllocateNext #%d = %d: static=%v, want static only after the 84 dynamic ports", i, p, static)
		}
		seen[p] = true
	}
	if _, err := a.AllocateNext(); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	if a.Used() != 100 || a.Free() != 0 {
		t.Fatalf("used/free = %d/%d", a.Used(), a.Free())
	}
	small := mustPorts(t, "40000-40009")
	if _, _, ok := small.StaticBand(); ok {
		t.Fatal("a 10-port range must have no static band")
	}
}

func TestNewPortAllocatorErrors(t *testing.T) {
	tests := []struct {
		pr   utilnet.PortRange
		want string
	}{
		{pr: utilnet.PortRange{}, want: `port range "" is empty`},
		{pr: utilnet.PortRange{Base: 65000, Size: 1000}, want: "port range 65000-65999 is outside 1-65535"},
		{pr: utilnet.PortRange{Base: 0, Size: 10}, want: "port range 0-9 is outside 1-65535"},
	}
	for _, tt := range tests {
		if _, err := NewPortAllocator(tt.pr); err == nil || err.Error() != tt.want {
			t.Errorf("NewPortAllocator(%+v) = %v, want %q", tt.pr, err, tt.want)
		}
	}
}

func TestPortConcurrent(t *testing.T) {
	a := mustPorts(t, "30000-32767")
	const n = 64
	var wg sync.WaitGroup
	got := make([]int, n)
	for i := range n {
		wg.Go(func() {
			p, err := a.AllocateNext()
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		})
	}
	wg.Wait()
	slices.Sort(got)
	if len(slices.Compact(got)) != n || a.Used() != n {
		t.Fatalf("64 concurrent allocations gave %d unique ports, used=%d", len(slices.Compact(got)), a.Used())
	}
}

func BenchmarkIPRangeAllocateNext(b *testing.B) {
	r, err := NewIPRange(netip.MustParsePrefix("10.96.0.0/12"), IPOptions{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		ip, err := r.AllocateNext()
		if err != nil {
			b.Fatal(err)
		}
		r.Release(ip)
	}
}
