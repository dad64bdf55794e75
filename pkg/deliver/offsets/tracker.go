package offsets

// Entry is one tracked record.
type Entry struct {
	offset int64
	done   bool
}

// Offset is the record's offset.
func (e *Entry) Offset() int64 { return e.offset }

// Tracker tracks one partition. It is not safe for concurrent use: one goroutine owns it.
type Tracker struct {
	pending []*Entry // in offset order; pending[:head] are finished and dropped lazily
	head    int
	next    int64 // one past the newest record added; the position when nothing is pending
	known   bool  // next is a real offset (false until the first record when started symbolically)
	open    int   // records added and not done
}

// New returns a tracker for a partition read from start. A negative start (Kafka's symbolic
// first/last offset) means the position is unknown until the first record is added.
func New(start int64) *Tracker {
	return &Tracker{next: start, known: start >= 0}
}

// Add tracks a record just read. Offsets must increase (gaps are fine: compaction, transaction
// markers).
func (t *Tracker) Add(offset int64) *Entry {
	e := &Entry{offset: offset}
	t.known = true
	t.pending = append(t.pending, e)
	t.next = offset + 1
	t.open++
	return e
}

// Done marks a record finished.
func (t *Tracker) Done(e *Entry) {
	if e.done {
		return
	}
	e.done = true
	t.open--
	for t.head < len(t.pending) && t.pending[t.head].done {
		t.pending[t.head] = nil
		t.head++
	}
	if t.head == len(t.pending) {
		t.pending, t.head = t.pending[:0], 0
	} else if t.head > 1024 && t.head*2 > len(t.pending) {
		n := copy(t.pending, t.pending[t.head:])
		clear(t.pending[n:])
		t.pending, t.head = t.pending[:n], 0
	}
}

// Position is the offset to commit (the next record to read after a restart) and whether it is
// known.
func (t *Tracker) Position() (int64, bool) {
	if t.head < len(t.pending) {
		return t.pending[t.head].offset, true
	}
	return t.next, t.known
}

// Pending is the number of records read and not finished.
func (t *Tracker) Pending() int { return t.open }
