package alloc

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// MaxHostBits is the largest number of host bits an IPRange accepts, the
// limit kube-apiserver puts on --service-cluster-ip-range (a /12 for IPv4,
// a /108 for IPv6), which keeps a bitmap at most 128 KiB.
const MaxHostBits = 20

// IPOptions tunes an IPRange.
type IPOptions struct {
	// Strategy selects how AllocateNext picks an address (Random by default).
	Strategy Strategy
	// AvoidDotZeroAndDot255 reserves (see Reserve) every IPv4 address ending in
	// .0 or .255, which some clients mishandle, as MetalLB's avoidBuggyIPs does.
	AvoidDotZeroAndDot255 bool
}

// IPRange allocates addresses out of one CIDR. For IPv4 the network and
// broadcast addresses are not part of the range; for IPv6 the subnet-router
// (all-zeros) address is not. It is safe for concurrent use.
type IPRange struct {
	prefix netip.Prefix
	first  netip.Addr // first allocatable address (network + 1)
	bm     *Bitmap
}

// NewIPRange returns an empty allocator for prefix (which is masked first).
// It fails when the prefix is invalid, has more than MaxHostBits host bits, or
// has no allocatable address (an IPv4 /31 or /32, an IPv6 /128).
func NewIPRange(prefix netip.Prefix, opts IPOptions) (*IPRange, error) {
	if !prefix.IsValid() {
		return nil, fmt.Errorf("invalid CIDR %q", prefix.String())
	}
	prefix = prefix.Masked()
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	if hostBits > MaxHostBits {
		return nil, fmt.Errorf("CIDR %s is too large; for %d-bit addresses, the mask must be >= %d",
			prefix, prefix.Addr().BitLen(), prefix.Addr().BitLen()-MaxHostBits)
	}
	cidrSize := 1 << hostBits
	size := cidrSize - 1 // the network address
	if prefix.Addr().Is4() {
		size-- // the broadcast address
	}
	if size <= 0 {
		return nil, fmt.Errorf("CIDR %s is too small: it has no allocatable address", prefix)
	}
	offset := 0
	if opts.Strategy == Random {
		offset = rangeOffset(cidrSize, 16, 256, 16)
	}
	r := &IPRange{
		prefix: prefix,
		first:  prefix.Addr().Next(),
		bm:     NewBitmap(size, offset, opts.Strategy),
	}
	if opts.AvoidDotZeroAndDot255 && prefix.Addr().Is4() {
		for i := 0; i < size; i++ {
			if b := r.addrAt(i).As4(); b[3] == 0 || b[3] == 255 {
				_ = r.bm.Reserve(i) // i < size by construction
			}
		}
	}
	return r, nil
}

// rangeOffset is kube-apiserver's calculateRangeOffset: the size of the static
// band, min(max(lo, size/step), hi), or 0 when size <= lo.
func rangeOffset(size, lo, hi, step int) int {
	if size <= lo {
		return 0
	}
	off := size / step
	if off < lo {
		return lo
	}
	if off > hi {
		return hi
	}
	return off
}

// Prefix returns the range's CIDR.
func (r *IPRange) Prefix() netip.Prefix { return r.prefix }

// Size returns the number of allocatable addresses.
func (r *IPRange) Size() int { return r.bm.Size() }

// StaticBand returns the first and last address of the lower (static) band,
// and false when the range has none.
func (r *IPRange) StaticBand() (first, last netip.Addr, ok bool) {
	if r.bm.Offset() == 0 {
		return netip.Addr{}, netip.Addr{}, false
	}
	return r.first, r.addrAt(r.bm.Offset() - 1), true
}

// Used returns the number of allocated addresses.
func (r *IPRange) Used() int { return r.bm.Used() }

// Free returns the number of free addresses, reserved ones included.
func (r *IPRange) Free() int { return r.bm.Free() }

func (r *IPRange) addrAt(i int) netip.Addr {
	b := r.first.As16()
	binary.BigEndian.PutUint64(b[8:], binary.BigEndian.Uint64(b[8:])+uint64(i))
	return netip.AddrFrom16(b).Unmap()
}

// index returns the slot of ip, or false when ip is not allocatable in this
// range (outside the prefix, or the network/broadcast address).
func (r *IPRange) index(ip netip.Addr) (int, bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() || !r.prefix.Contains(ip) {
		return 0, false
	}
	a, f := ip.As16(), r.first.As16()
	d := int64(binary.BigEndian.Uint64(a[8:]) - binary.BigEndian.Uint64(f[8:]))
	if d < 0 || d >= int64(r.bm.Size()) {
		return 0, false
	}
	return int(d), true
}

// Contains reports whether ip is an allocatable address of the range.
func (r *IPRange) Contains(ip netip.Addr) bool {
	_, ok := r.index(ip)
	return ok
}

func (r *IPRange) notInRange(ip netip.Addr) error {
	return &NotInRangeError{Value: ip.String(), ValidRange: r.prefix.String()}
}

// Allocate takes ip. It returns a *NotInRangeError (errors.Is ErrNotInRange)
// when ip is not allocatable here and ErrIPAllocated when it is taken.
// Reserved addresses can be allocated this way.
func (r *IPRange) Allocate(ip netip.Addr) error {
	i, ok := r.index(ip)
	if !ok {
		return r.notInRange(ip)
	}
	took, err := r.bm.Allocate(i)
	if err != nil {
		return fmt.Errorf("allocate %s: %w", ip, err)
	}
	if !took {
		return ErrIPAllocated
	}
	return nil
}

// AllocateNext takes a free, unreserved address chosen by the strategy. It
// returns ErrFull when there is none.
func (r *IPRange) AllocateNext() (netip.Addr, error) {
	i, ok := r.bm.AllocateNext()
	if !ok {
		return netip.Addr{}, ErrFull
	}
	return r.addrAt(i), nil
}

// Release gives back one hold on ip (see Bitmap.Release) and reports whether
// it was held. Releasing a free address or one outside the range is a no-op.
func (r *IPRange) Release(ip netip.Addr) bool {
	i, ok := r.index(ip)
	if !ok {
		return false
	}
	return r.bm.Release(i)
}

// Retain adds a hold on ip even if it is already allocated (see
// Bitmap.Retain). It returns a *NotInRangeError for an address outside the range.
func (r *IPRange) Retain(ip netip.Addr) error {
	i, ok := r.index(ip)
	if !ok {
		return r.notInRange(ip)
	}
	return r.bm.Retain(i)
}

// Has reports whether ip is allocated.
func (r *IPRange) Has(ip netip.Addr) bool {
	i, ok := r.index(ip)
	return ok && r.bm.Has(i)
}

// Holds returns the number of holds on ip (0 when free or outside the range).
func (r *IPRange) Holds(ip netip.Addr) int {
	i, ok := r.index(ip)
	if !ok {
		return 0
	}
	return r.bm.Holds(i)
}

// Reserve excludes ip from AllocateNext without allocating it. It returns a
// *NotInRangeError for an address outside the range.
func (r *IPRange) Reserve(ip netip.Addr) error {
	i, ok := r.index(ip)
	if !ok {
		return r.notInRange(ip)
	}
	return r.bm.Reserve(i)
}

// IsReserved reports whether ip is reserved.
func (r *IPRange) IsReserved(ip netip.Addr) bool {
	i, ok := r.index(ip)
	return ok && r.bm.IsReserved(i)
}

// Reset frees every address; reservations are kept.
func (r *IPRange) Reset() { r.bm.Reset() }

// ForEach calls fn for every allocated address in increasing order. fn must
// not call back into the range.
func (r *IPRange) ForEach(fn func(netip.Addr)) {
	r.bm.ForEach(func(i int) { fn(r.addrAt(i)) })
}
