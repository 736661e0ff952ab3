package alloc

import (
	"fmt"
	"strconv"

	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// PortAllocator allocates ports out of a utilnet.PortRange (kube's
// --service-node-port-range), with kube's static/dynamic bands and the Random
// strategy. It is safe for concurrent use.
type PortAllocator struct {
	pr utilnet.PortRange
	bm *Bitmap
}

// NewPortAllocator returns an empty allocator for pr. It fails when the range
// is empty or reaches outside 1-65535.
func NewPortAllocator(pr utilnet.PortRange) (*PortAllocator, error) {
	if pr.Size <= 0 {
		return nil, fmt.Errorf("port range %q is empty", pr.String())
	}
	if pr.Base < 1 || pr.Base+pr.Size-1 > 65535 {
		return nil, fmt.Errorf("port range %s is outside 1-65535", pr.String())
	}
	return &PortAllocator{
		pr: pr,
		bm: NewBitmap(pr.Size, rangeOffset(pr.Size, 16, 128, 32), Random),
	}, nil
}

// Range returns the port range.
func (a *PortAllocator) Range() utilnet.PortRange { return a.pr }

// StaticBand returns the first and last port of the lower (static) band, and
// false when the range has none.
func (a *PortAllocator) StaticBand() (first, last int, ok bool) {
	if a.bm.Offset() == 0 {
		return 0, 0, false
	}
	return a.pr.Base, a.pr.Base + a.bm.Offset() - 1, true
}

// Used returns the number of allocated ports.
func (a *PortAllocator) Used() int { return a.bm.Used() }

// Free returns the number of free ports.
func (a *PortAllocator) Free() int { return a.bm.Free() }

func (a *PortAllocator) index(port int) (int, bool) {
	if !a.pr.Contains(port) {
		return 0, false
	}
	return port - a.pr.Base, true
}

func (a *PortAllocator) notInRange(port int) error {
	return &NotInRangeError{Value: strconv.Itoa(port), ValidRange: a.pr.String(), Port: true}
}

// Allocate takes port. It returns a *NotInRangeError (errors.Is
// ErrNotInRange) for a port outside the range and ErrPortAllocated when the
// port is taken.
func (a *PortAllocator) Allocate(port int) error {
	i, ok := a.index(port)
	if !ok {
		return a.notInRange(port)
	}
	took, err := a.bm.Allocate(i)
	if err != nil {
		return fmt.Errorf("allocate port %d: %w", port, err)
	}
	if !took {
		return ErrPortAllocated
	}
	return nil
}

// AllocateNext takes a random free port, preferring the upper band. It
// returns ErrFull when every port is taken.
func (a *PortAllocator) AllocateNext() (int, error) {
	i, ok := a.bm.AllocateNext()
	if !ok {
		return 0, ErrFull
	}
	return a.pr.Base + i, nil
}

// Release gives back one hold on port and reports whether it was held.
// Releasing a free port or one outside the range is a no-op.
func (a *PortAllocator) Release(port int) bool {
	i, ok := a.index(port)
	if !ok {
		return false
	}
	return a.bm.Release(i)
}

// Retain adds a hold on port even if it is already allocated (see
// Bitmap.Retain). It returns a *NotInRangeError for a port outside the range.
func (a *PortAllocator) Retain(port int) error {
	i, ok := a.index(port)
	if !ok {
		return a.notInRange(port)
	}
	return a.bm.Retain(i)
}

// Has reports whether port is allocated.
func (a *PortAllocator) Has(port int) bool {
	i, ok := a.index(port)
	return ok && a.bm.Has(i)
}

// Holds returns the number of holds on port (0 when free or out of range).
func (a *PortAllocator) Holds(port int) int {
	i, ok := a.index(port)
	if !ok {
		return 0
	}
	return a.bm.Holds(i)
}

// Reset frees every port.
func (a *PortAllocator) Reset() { a.bm.Reset() }

// ForEach calls fn for every allocated port in increasing order. fn must not
// call back into the allocator.
func (a *PortAllocator) ForEach(fn func(port int)) {
	a.bm.ForEach(func(i int) { fn(a.pr.Base + i) })
}
