package alloc

import (
	"errors"
	"fmt"
)

// Sentinel errors. Their texts are kube-apiserver's, because they end up in
// the messages users see (for example
// `spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated`).
var (
	// ErrFull is returned by AllocateNext when no free, unreserved slot is left.
	ErrFull = errors.New("range is full")
	// ErrIPAllocated is returned by IPRange.Allocate for an address that is in use.
	ErrIPAllocated = errors.New("provided IP is already allocated")
	// ErrPortAllocated is returned by PortAllocator.Allocate for a port that is in use.
	ErrPortAllocated = errors.New("provided port is already allocated")
	// ErrNotInRange matches (errors.Is) every *NotInRangeError.
	ErrNotInRange = errors.New("not in the valid range")
)

// NotInRangeError reports a requested IP or port outside the allocator's range.
// Its message is kube-apiserver's, naming the valid range.
type NotInRangeError struct {
	// Value is the requested IP or port, as text.
	Value string
	// ValidRange is the range, e.g. "10.96.0.0/12" or "30000-32767".
	ValidRange string
	// Port is true for a port allocator, false for an IP range.
	Port bool
}

// Error implements error.
func (e *NotInRangeError) Error() string {
	if e.Port {
		return fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %s", e.ValidRange)
	}
	return fmt.Sprintf("the provided IP (%s) is not in the valid range. The range of valid IPs is %s", e.Value, e.ValidRange)
}

// Is reports whether target is ErrNotInRange.
func (e *NotInRangeError) Is(target error) bool { return target == ErrNotInRange }
