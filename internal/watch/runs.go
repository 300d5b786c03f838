package watch

// runs is one process's or cgroup's counts over the window, as runs of
// samples with the same counts: most stand still, and keep one run however
// long the window.
type runs[C comparable] struct {
	list  []span[C] // oldest first; the first reaches into the window
	first int       // the sample it was first seen in
}

// span is samples from..to (inclusive) with the same counts.
type span[C comparable] struct {
	from, to int
	c        C
}

// add records sample seq's counts, and forgets the runs that ended before
// the window. Samples come in order, every one: a process or cgroup not
// seen in a sample is forgotten whole.
func (r *runs[C]) add(seq, window int, c C) {
	if n := len(r.list); n > 0 && r.list[n-1].c == c && r.list[n-1].to == seq-1 {
		r.list[n-1].to = seq
	} else {
		r.list = append(r.list, span[C]{seq, seq, c})
	}
	drop := 0
	for drop < len(r.list)-1 && r.list[drop].to <= seq-window {
		drop++
	}
	r.list = r.list[drop:]
}

// window is the first sample of the window that this history covers, and
// whether rates can be taken: seen in minHistory samples at least (one just
// started, its threads coming up, is not a leak) and something moved.
func (r *runs[C]) window(seq, window int) (start int, ok bool) {
	start = max(r.first, seq-window+1)
	return start, seq-start+1 >= minHistory && len(r.list) >= 2
}

// ends are the counts at the window's start and now.
func (r *runs[C]) ends() (first, last C) { return r.list[0].c, r.list[len(r.list)-1].c }

// lowest is the last sample at which val was at its lowest in the window:
// when a growth began.
func (r *runs[C]) lowest(val func(C) int32) int {
	low := 0
	for i, s := range r.list {
		if val(s.c) <= val(r.list[low].c) {
			low = i
		}
	}
	return r.list[low].to
}
