// Package load is the load client: Part 3's client3 without its bug.
// Clients run concurrently, each opening its connections one after another
// with a request on each, and every outcome is counted.
package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Config is one load run.
type Config struct {
	Addr    string
	Clients int           // concurrent clients
	Conns   int           // connections each client opens, one after another
	Timeout time.Duration // per connection: dial, request and response
	// KeepOpen keeps every connection open until the run ends, as the
	// Part 3's client3 meant to (so the server's descriptors stay in use).
	KeepOpen bool
	// Progress, if set, is called about once a second with the counts so far.
	Progress func(Result)
}

// Result counts what happened.
type Result struct {
	Conns    int         `json:"conns"`    // connections attempted
	Answered int         `json:"answered"` // got an HTTP response (any status)
	Status   map[int]int `json:"status"`   // responses by status code
	Refused  int         `json:"refused"`  // connection refused
	Failed   int         `json:"failed"`   // timeouts, resets, no response
	// FirstError is one failure's text, for the report.
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`
	Max        time.Duration `json:"max_ns"`
}

// OK is the number of 200 responses.
func (r Result) OK() int { return r.Status[200] }

func (r Result) String() string {
	codes := slices.Sorted(func(yield func(int) bool) {
		for c := range r.Status {
			if !yield(c) {
				return
			}
		}
	})
	status := ""
	for _, c := range codes {
		if status != "" {
			status += ", "
		}
		status += fmt.Sprintf("%d: %d", c, r.Status[c])
	}
	rate := 0.0
	if r.Elapsed > 0 {
		rate = float64(r.Conns) / r.Elapsed.Seconds()
	}
	s := fmt.Sprintf("connections %d: %d answered (%s), %d refused, %d failed in %s (%.0f/s)\nlatency p50 %s  p90 %s  p99 %s  max %s",
		r.Conns, r.Answered, status, r.Refused, r.Failed, r.Elapsed.Round(time.Millisecond), rate,
		ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max))
	if r.FirstError != "" {
		s += "\nfirst failure: " + r.FirstError
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// Run drives the load until every client is done or ctx ends.
func Run(ctx context.Context, cfg Config) Result {
	t := &tally{res: Result{Status: map[int]int{}}}
	start := time.Now()
	stopProgress := make(chan struct{})
	if cfg.Progress != nil {
		go t.progress(start, cfg.Progress, stopProgress)
	}
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			for range cfg.Conns {
				if ctx.Err() != nil {
					return
				}
				code, lat, conn, err := request(ctx, cfg)
				if !cfg.KeepOpen && conn != nil {
					conn.Close()
					conn = nil
				}
				t.record(code, lat, err, conn)
			}
		})
	}
	wg.Wait()
	close(stopProgress)
	for _, c := range t.kept {
		c.Close()
	}
	res := t.res
	res.Elapsed = time.Since(start)
	slices.Sort(t.lats)
	res.P50, res.P90, res.P99 = quantile(t.lats, 0.5), quantile(t.lats, 0.9), quantile(t.lats, 0.99)
	if len(t.lats) > 0 {
		res.Max = t.lats[len(t.lats)-1]
	}
	return res
}

// tally is what the clients have counted so far.
type tally struct {
	mu   sync.Mutex
	res  Result
	lats []time.Duration
	kept []net.Conn // held open (KeepOpen) until the run ends
}

// record counts one connection: answered (with its status and latency),
// refused, or failed (the first error kept).
func (t *tally) record(code int, lat time.Duration, err error, conn net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.Conns++
	switch {
	case err == nil:
		t.res.Answered++
		t.res.Status[code]++
		t.lats = append(t.lats, lat)
	case errors.Is(err, syscall.ECONNREFUSED):
		t.res.Refused++
	default:
		t.res.Failed++
		if t.res.FirstError == "" {
			t.res.FirstError = err.Error()
		}
	}
	if conn != nil {
		t.kept = append(t.kept, conn)
	}
}

// progress hands a copy of the counts to report every second until stop.
func (t *tally) progress(start time.Time, report func(Result), stop <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			t.mu.Lock()
			snap := t.res
			snap.Status = maps.Clone(t.res.Status)
			t.mu.Unlock()
			snap.Elapsed = time.Since(start)
			report(snap)
		}
	}
}

// request makes one connection and one GET on it, and reads the response.
func request(ctx context.Context, cfg Config) (int, time.Duration, net.Conn, error) {
	start := time.Now()
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return 0, 0, nil, err
	}
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+cfg.Addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		conn.Close()
		return 0, 0, nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return 0, 0, nil, fmt.Errorf("no response: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		conn.Close()
		return 0, 0, nil, fmt.Errorf("reading body: %w", err)
	}
	return resp.StatusCode, time.Since(start), conn, nil
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(q*float64(len(sorted)-1))]
}
