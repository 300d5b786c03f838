package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/zombiewatch/zombiewatch/internal/bundled"
	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/cli"
	"github.com/zombiewatch/zombiewatch/internal/events"
	"github.com/zombiewatch/zombiewatch/internal/exporter"
	"github.com/zombiewatch/zombiewatch/internal/model"
	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// run is zombiewatch-exporter: it parses args and serves or writes metrics.
func run(ctx context.Context, args []string, _ *os.File, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil || o.version {
		return err
	}
	pfs, err := proc.New(o.procRoot)
	if err != nil {
		return err
	}
	cfg := o.cfg
	// The sources each listed process is enriched with, by name: their
	// success and duration are exported as zombiewatch_source_*.
	cgSources, cgHost := cgroup.Sources(pfs, o.cgroupRoot, o.set["cgroup-root"])
	cfg.Reader = model.NewReader(pfs, append([]model.Source{model.TCPStates(pfs), bundled.Source(pfs)}, cgSources...)...)
	cfg.Reader.HostSources = cgHost
	// Every exit and reap on the host, where the kernel allows it (root or
	// the host's pid namespace); else zombiewatch_events_up is 0 and the
	// log says why.
	if pfs.Live() {
		src, err := events.Start(ctx, pfs)
		if err != nil {
			fmt.Fprintf(stderr, "zombiewatch-exporter: no exit-to-reap latencies, polling only: %v\n", err)
		}
		cfg.Events = src
	}
	col := exporter.New(cfg)
	if o.textfile != "" {
		return writeTextfiles(ctx, col, o.textfile, o.interval, o.once, stderr)
	}
	reg, err := exporter.Registry(col, true)
	if err != nil {
		return err
	}
	return serveHTTP(ctx, col, reg, o.listen, stderr)
}

// options are the exporter's flags, checked.
type options struct {
	listen, textfile, procRoot, cgroupRoot string
	interval                               time.Duration
	once, version                          bool
	set                                    map[string]bool // the flags given
	cfg                                    exporter.Config // without its Reader and Events
}

// parseFlags reads and checks the flags, before anything reads /proc; with
// --version it prints the version and sets o.version.
func parseFlags(args []string, stdout io.Writer) (options, error) {
	var (
		o                        options
		pids, names              cli.ListFlag
		top, maxParents, maxUIDs int
	)
	fs := flag.NewFlagSet("zombiewatch-exporter", flag.ContinueOnError)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:9857", "")
	fs.Var(&pids, "pid", "")
	fs.Var(&names, "name", "")
	fs.IntVar(&top, "top", 10, "")
	fs.IntVar(&maxParents, "max-parents", 100, "")
	fs.IntVar(&maxUIDs, "max-uids", 20, "")
	fs.StringVar(&o.textfile, "textfile", "", "")
	fs.DurationVar(&o.interval, "interval", 15*time.Second, "")
	fs.BoolVar(&o.once, "once", false, "")
	fs.StringVar(&o.procRoot, "proc-root", "/proc", "")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "/sys/fs/cgroup", "")
	showVersion := cli.VersionFlag(fs)
	if err := cli.Parse(fs, args, stdout, cli.Manual(docSource)); err != nil {
		return o, err
	}
	if *showVersion {
		o.version = true
		return o, cli.PrintVersion(stdout, "zombiewatch-exporter")
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	o.cfg = exporter.Config{Top: top, MaxParents: maxParents, MaxUIDs: maxUIDs}
	for _, p := range pids {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return o, cli.Usagef("--pid %q: want a process id above 0", p)
		}
		o.cfg.PIDs = append(o.cfg.PIDs, n)
	}
	for _, n := range names {
		re, err := regexp.Compile(n)
		if err != nil {
			return o, cli.Usagef("--name %q: %v", n, err)
		}
		o.cfg.Names = append(o.cfg.Names, re)
	}
	switch {
	case fs.NArg() > 0:
		return o, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case top < 0 || maxParents < 0 || maxUIDs < 0:
		return o, cli.Usagef("--top, --max-parents and --max-uids want 0 or more")
	case (o.set["interval"] || o.once) && o.textfile == "":
		return o, cli.Usagef("--interval and --once go with --textfile")
	case o.textfile != "" && o.interval < time.Second:
		return o, cli.Usagef("--interval %s: want 1s or more", o.interval)
	}
	if _, _, err := net.SplitHostPort(o.listen); err != nil {
		return o, cli.Usagef("--listen %q: want HOST:PORT, such as 127.0.0.1:9857", o.listen)
	}
	return o, nil
}

// The limits that keep the exporter standing when anyone on the network
// can reach it: scrapes in flight (the rest get 503 at once), open
// connections (the rest are closed at once), and how long a connection
// may sit idle or trickle its request.
const (
	maxScrapesInFlight = 3
	maxConns           = 32
	idleTimeout        = 5 * time.Second // Prometheus scrapes every 15 s or more: keeping idle connections buys nothing
	readTimeout        = 10 * time.Second
)

func serveHTTP(ctx context.Context, col *exporter.Collector, reg *prometheus.Registry, listen string, stderr io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ln = &limitListener{Listener: ln, slots: make(chan struct{}, maxConns)}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), Registry: reg, Timeout: 30 * time.Second,
	})
	inFlight := make(chan struct{}, maxScrapesInFlight)
	mux := http.NewServeMux()
	mux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics are read with GET", http.StatusMethodNotAllowed)
			return
		}
		select {
		case inFlight <- struct{}{}:
			defer func() { <-inFlight }()
		default:
			http.Error(w, "too many scrapes in flight", http.StatusServiceUnavailable)
			return
		}
		// Scrapes take turns; one whose caller leaves stops its scan.
		col.Scrape(r.Context(), func() { metrics.ServeHTTP(w, r) })
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "<html><body><h1>zombiewatch</h1><p><a href=\"/metrics\">metrics</a></p></body></html>\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: readTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: 16 << 10, ConnState: trackState}
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// limitListener bounds the open connections: a flood of idle or slow
// connections cannot take the exporter's descriptors. When every slot is
// taken, the oldest connection that is not serving a request (one that
// has not sent a whole request yet, or sits idle) is closed to make room,
// so a scrape that arrives complete is served; only when every slot
// serves a request is the new connection closed at once.
type limitListener struct {
	net.Listener
	slots chan struct{}
	mu    sync.Mutex
	open  map[*slotConn]bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if sc := l.admit(c); sc != nil {
			return sc, nil
		}
		if l.evict() {
			if sc := l.admit(c); sc != nil {
				return sc, nil
			}
		}
		c.Close()
	}
}

// admit takes a slot for c, nil if none is free.
func (l *limitListener) admit(c net.Conn) *slotConn {
	select {
	case l.slots <- struct{}{}:
	default:
		return nil
	}
	sc := &slotConn{Conn: c, since: time.Now()}
	sc.state.Store(int32(http.StateNew))
	sc.release = func() {
		l.mu.Lock()
		delete(l.open, sc)
		l.mu.Unlock()
		<-l.slots
	}
	l.mu.Lock()
	if l.open == nil {
		l.open = map[*slotConn]bool{}
	}
	l.open[sc] = true
	l.mu.Unlock()
	return sc
}

// evict closes the oldest connection not serving a request; false if
// every one is.
func (l *limitListener) evict() bool {
	l.mu.Lock()
	var oldest *slotConn
	for sc := range l.open {
		if st := http.ConnState(sc.state.Load()); st != http.StateNew && st != http.StateIdle {
			continue
		}
		if oldest == nil || sc.since.Before(oldest.since) {
			oldest = sc
		}
	}
	l.mu.Unlock()
	if oldest == nil {
		return false
	}
	oldest.Close()
	return true
}

// trackState is the server's ConnState hook: it tells the listener which
// connections serve a request.
func trackState(c net.Conn, st http.ConnState) {
	if sc, ok := c.(*slotConn); ok {
		sc.state.Store(int32(st))
	}
}

type slotConn struct {
	net.Conn
	since   time.Time
	state   atomic.Int32 // an http.ConnState
	once    sync.Once
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// writeTextfiles writes DIR/zombiewatch.prom now and every interval, each
// time to a temporary file renamed into place, so node_exporter never
// reads half a file.
func writeTextfiles(ctx context.Context, col *exporter.Collector, dir string, interval time.Duration, once bool, stderr io.Writer) error {
	reg, err := exporter.Registry(col, false)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "zombiewatch.prom")
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := prometheus.WriteToTextfile(path, reg); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
