package alloc

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync"
)

// Strategy selects how AllocateNext picks a free slot.
type Strategy int

const (
	// Random is kube-apiserver's randomScanStrategyWithOffset: start at a random
	// slot of the upper (dynamic) band and scan forward, wrapping inside the band;
	// only when the band is full, do the same in the lower (static) band.
	Random Strategy = iota
	// Lowest returns the lowest free slot (no bands), like MetalLB's pool allocator.
	Lowest
)

// String returns "Random" or "Lowest".
func (s Strategy) String() string {
	switch s {
	case Random:
		return "Random"
	case Lowest:
		return "Lowest"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Bitmap is a goroutine-safe allocation bitmap over the slots [0, Size()).
// Slots [0, Offset()) form the static band. A slot is allocated while it has at
// least one hold; holds beyond the first (see Retain) are counted separately.
type Bitmap struct {
	size     int
	offset   int
	strategy Strategy

	mu       sync.Mutex
	rnd      *rand.Rand
	used     []uint64
	reserved []uint64
	extra    map[int]int // additional holds on a slot beyond the first
	count    int         // number of slots with at least one hold
}

// NewBitmap returns an empty bitmap of size slots whose first offset slots
// form the static band. offset is clamped to [0, size]; it is ignored (0) for
// the Lowest strategy. A size below 0 is treated as 0.
func NewBitmap(size, offset int, strategy Strategy) *Bitmap {
	if size < 0 {
		size = 0
	}
	if offset < 0 || strategy == Lowest {
		offset = 0
	}
	if offset > size {
		offset = size
	}
	words := (size + 63) / 64
	return &Bitmap{
		size:     size,
		offset:   offset,
		strategy: strategy,
		rnd:      rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		used:     make([]uint64, words),
		reserved: make([]uint64, words),
		extra:    map[int]int{},
	}
}

// Size returns the number of slots.
func (b *Bitmap) Size() int { return b.size }

// Offset returns the size of the static (lower) band.
func (b *Bitmap) Offset() int { return b.offset }

func (b *Bitmap) check(i int) error {
	if i < 0 || i >= b.size {
		return fmt.Errorf("offset %d out of range [0,%d)", i, b.size)
	}
	return nil
}

func (b *Bitmap) bit(words []uint64, i int) bool {
	return words[i/64]&(1<<(uint(i)%64)) != 0
}

// Allocate takes slot i if it is free and reports whether it did; it returns
// false (and no error) when the slot is already held. Reserved slots can be
// taken. An out-of-range slot is an error.
func (b *Bitmap) Allocate(i int) (bool, error) {
	if err := b.check(i); err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bit(b.used, i) {
		return false, nil
	}
	b.set(i)
	return true, nil
}

func (b *Bitmap) set(i int) {
	b.used[i/64] |= 1 << (uint(i) % 64)
	b.count++
}

// Retain adds a hold on slot i whether or not it is already held: a free slot
// becomes allocated, a held slot gets one more hold (which a later Release
// gives back). It is used to undo a Release and to rebuild state from stored
// objects. An out-of-range slot is an error.
func (b *Bitmap) Retain(i int) error {
	if err := b.check(i); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bit(b.used, i) {
		b.extra[i]++
		return nil
	}
	b.set(i)
	return nil
}

// Release gives back one hold on slot i and reports whether the slot was held.
// The slot becomes free when its last hold is released. Releasing a free or
// out-of-range slot is a no-op that returns false.
func (b *Bitmap) Release(i int) bool {
	if b.check(i) != nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.bit(b.used, i) {
		return false
	}
	if n := b.extra[i]; n > 0 {
		if n == 1 {
			delete(b.extra, i)
		} else {
			b.extra[i] = n - 1
		}
		return true
	}
	b.used[i/64] &^= 1 << (uint(i) % 64)
	b.count--
	return true
}

// Has reports whether slot i is held. Out-of-range slots are never held.
func (b *Bitmap) Has(i int) bool {
	if b.check(i) != nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bit(b.used, i)
}

// Holds returns the number of holds on slot i (0 when free or out of range).
func (b *Bitmap) Holds(i int) int {
	if b.check(i) != nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.bit(b.used, i) {
		return 0
	}
	return 1 + b.extra[i]
}

// Reserve excludes slot i from AllocateNext. It does not allocate the slot.
func (b *Bitmap) Reserve(i int) error {
	if err := b.check(i); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved[i/64] |= 1 << (uint(i) % 64)
	return nil
}

// IsReserved reports whether slot i is reserved.
func (b *Bitmap) IsReserved(i int) bool {
	if b.check(i) != nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bit(b.reserved, i)
}

// Used returns the number of allocated slots (a slot with several holds counts once).
func (b *Bitmap) Used() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.count
}

// Free returns the number of free slots, including free reserved slots, like
// kube's Free(); AllocateNext may find fewer.
func (b *Bitmap) Free() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size - b.count
}

// Reset frees every slot. Reservations are kept.
func (b *Bitmap) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.used)
	clear(b.extra)
	b.count = 0
}

// ForEach calls fn for every allocated slot in increasing order. fn must not
// call back into the bitmap.
func (b *Bitmap) ForEach(fn func(i int)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w, word := range b.used {
		for word != 0 {
			t := bits.TrailingZeros64(word)
			fn(w*64 + t)
			word &^= 1 << uint(t)
		}
	}
}

// AllocateNext takes a free, unreserved slot chosen by the strategy and
// returns it; ok is false when there is none.
func (b *Bitmap) AllocateNext() (i int, ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.count >= b.size {
		return 0, false
	}
	switch b.strategy {
	case Lowest:
		i = b.firstFree(0, b.size)
	default:
		i = -1
		if upper := b.size - b.offset; upper > 0 {
			i = b.scan(b.offset, b.size, b.offset+b.rnd.IntN(upper))
		}
		if i < 0 && b.offset > 0 {
			i = b.scan(0, b.offset, b.rnd.IntN(b.offset))
		}
	}
	if i < 0 {
		return 0, false
	}
	b.set(i)
	return i, true
}

// scan returns the first free, unreserved slot in [start, hi), else in
// [lo, start), else -1.
func (b *Bitmap) scan(lo, hi, start int) int {
	if i := b.firstFree(start, hi); i >= 0 {
		return i
	}
	return b.firstFree(lo, start)
}

// firstFree returns the lowest free, unreserved slot in [from, to), or -1. It
// skips whole 64-slot words at a time.
func (b *Bitmap) firstFree(from, to int) int {
	for i := from; i < to; {
		w := i / 64
		free := ^(b.used[w] | b.reserved[w]) >> (uint(i) % 64)
		if free != 0 {
			j := i + bits.TrailingZeros64(free)
			if j < to {
				return j
			}
			return -1
		}
		i = (w + 1) * 64
	}
	return -1
}
