package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zombiewatch/zombiewatch/internal/cgroup"
	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

// startServe runs the exporter in this process on a free loopback
// port and returns its metrics URL; cleanup stops it.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &zombietest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), nil, io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	re := regexp.MustCompile(`addr=(http://\S+/metrics)`)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("serve did not start: %s", logs.String())
	return ""
}

func get(t *testing.T, client *http.Client, u string) string {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return string(b)
}

// metric finds one sample's value in exposition text.
func metric(text, name, labels string) (float64, bool) {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, name+"{"+labels+"} "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

func TestServeLive(t *testing.T) {
	a := zombietest.Start(t, zombietest.Spec{Children: 4})
	b := zombietest.Start(t, zombietest.Spec{Children: 11, Threads: 2})
	c := zombietest.Start(t, zombietest.Spec{CloseWait: 6})
	u := startServe(t, "--pid", strconv.Itoa(c.PID), "--top", "2")
	text := get(t, http.DefaultClient, u)
	// The helpers are this test binary re-executed: they share its comm.
	self, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	comm := strings.TrimSpace(string(self))
	for _, want := range []struct {
		name, labels string
		v            float64
	}{
		{"zombiewatch_zombie_children", fmt.Sprintf(`comm=%q,pid="%d"`, comm, a.PID), 4},
		{"zombiewatch_zombie_children", fmt.Sprintf(`comm=%q,pid="%d"`, comm, b.PID), 11},
		{"zombiewatch_close_wait_sockets", fmt.Sprintf(`comm=%q,pid="%d"`, comm, c.PID), 6},
		{"zombiewatch_watched_process_up", fmt.Sprintf(`pid="%d"`, c.PID), 1},
	} {
		if got, ok := metric(text, want.name, want.labels); !ok || got != want.v {
			t.Errorf("%s{%s} = %v (present %v), want %v", want.name, want.labels, got, ok, want.v)
		}
	}
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Skip("promtool not installed (.ci/run installs Debian's prometheus): exposition not linted")
	}
	cmd := exec.Command("promtool", "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestServeFDsFlat: thousands of scrapes do not leak the exporter's fds.
func TestServeFDsFlat(t *testing.T) {
	zombietest.SkipSlow(t)
	fixtures, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "proc", "fds"))
	for _, tc := range []struct {
		root    string
		scrapes int
	}{{fixtures, 2000}, {"/proc", 200}} {
		u := startServe(t, "--proc-root", tc.root)
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		get(t, client, u) // warm up: the connection, the Go collector
		before := ownFDs(t)
		for range tc.scrapes {
			get(t, client, u)
		}
		if after := ownFDs(t); after != before {
			t.Errorf("%s: fds %d before %d scrapes, %d after", tc.root, before, tc.scrapes, after)
		}
		// Close this client's connection, and wait for the exporter's end
		// to close too, so the next case starts from a settled count.
		client.CloseIdleConnections()
		deadline := time.Now().Add(5 * time.Second)
		for ownFDs(t) > before-2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func ownFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestServeTextfile(t *testing.T) {
	fixtures, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "proc", "zombies-threads"))
	dir := t.TempDir()
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"--proc-root", fixtures, "--textfile", dir, "--once"}, nil, io.Discard, &stderr); err != nil {
		t.Fatalf("--textfile --once: %v %s", err, stderr.String())
	}
	data, err := os.ReadFile(filepath.Join(dir, "zombiewatch.prom"))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := metric(string(data), "zombiewatch_zombie_children", `comm="server",pid="100"`); !ok || v != 3 {
		t.Errorf("textfile: zombie_children of pid 100 = %v (present %v), want 3", v, ok)
	}
	if strings.Contains(string(data), "go_goroutines") || strings.Contains(string(data), "process_open_fds") {
		t.Error("textfile holds the exporter's own go_ and process_ metrics; node_exporter has its own")
	}
}

// TestPrometheusEndToEnd: a real Prometheus server on loopback scrapes the
// exporter and gives the zombie counts back through its HTTP API.
func TestPrometheusEndToEnd(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (.ci/run installs Debian's prometheus)")
	}
	h := zombietest.Start(t, zombietest.Spec{Children: 8, Threads: 2})
	// A parent that reaps each child 300 ms late, for the histogram (with
	// process events: root here; elsewhere that part is skipped).
	var late *exec.Cmd
	if os.Geteuid() == 0 {
		late = exec.Command("/usr/bin/python3", "-c", "import os, time\nwhile True:\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    time.sleep(0.3)\n    os.waitpid(pid, 0)")
		if err := late.Start(); err != nil {
			late = nil
		} else {
			t.Cleanup(func() { late.Process.Kill(); late.Wait(); zombietest.ReapAll() })
		}
	}
	// A pids cgroup with a pids.max, for the cgroup series (root with a
	// writable pids controller; elsewhere that part is skipped).
	var cgPath string
	if os.Geteuid() == 0 {
		if m, err := cgroup.MakePids("/sys/fs/cgroup", fmt.Sprintf("zombiewatch-prom-%d", os.Getpid()), 50); err == nil {
			cgPath = m.Path
			t.Cleanup(func() { m.Remove(5 * time.Second) })
		}
	}
	// A process holding a connection in CLOSE_WAIT, asked for by pid, for
	// the dashboard's CLOSE_WAIT panel.
	closeWait := zombietest.Python(t, `
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.close()
print("ready", flush=True); time.sleep(300)
`)
	target := strings.TrimSuffix(strings.TrimPrefix(startServe(t, "--pid", strconv.Itoa(closeWait.Process.Pid)), "http://"), "/metrics")

	dir := t.TempDir()
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: zombiewatch\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	var logs zombietest.Buffer
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:"+port)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logs.String())
		}
	})

	ask := func(query string, ok func(float64) bool) {
		t.Helper()
		api := "http://127.0.0.1:" + port + "/api/v1/query?query=" + url.QueryEscape(query)
		deadline := time.Now().Add(60 * time.Second)
		for {
			v, err := promQuery(api)
			if err == nil && ok(v) {
				t.Logf("Prometheus says %s = %v", query, v)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus never gave the value wanted for %s (last: %v, %v)", query, v, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	ask(fmt.Sprintf(`zombiewatch_zombie_children{pid="%d"}`, h.PID), func(v float64) bool { return v == 8 })
	if cgPath != "" {
		ask(fmt.Sprintf(`zombiewatch_cgroup_pids_max{cgroup=%q}`, cgPath), func(v float64) bool { return v == 50 })
	}
	if late != nil {
		ask(`max(zombiewatch_kernel_pid_max)`, func(v float64) bool { return v > 0 })
		// The late reaper's exit-to-reap tail, per parent, from its histogram.
		ask(`histogram_quantile(0.99, sum by (le) (rate(zombiewatch_reap_latency_seconds_bucket{comm="python3"}[30s])))`,
			func(v float64) bool { return v >= 0.25 && v <= 2.5 })
	}

	// The dashboard and the alerts, against this Prometheus: where this
	// scenario has no data for a query, why.
	noData := map[string]string{}
	if late == nil {
		noData["zombiewatch_reap_latency_seconds_bucket"] = "no process events without root"
		noData["zombiewatch_child_exits_total"] = "no process events without root"
	}
	if cgPath == "" {
		noData["zombiewatch_cgroup_pids"] = "no pids cgroup could be made"
		noData["zombiewatch_cgroup_pids_refused_total"] = "no pids cgroup could be made"
	}
	checkDashboard(t, "http://127.0.0.1:"+port, "http://"+target+"/metrics", noData)
}

func promQuery(api string) (float64, error) {
	resp, err := http.Get(api)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(bufio.NewReader(resp.Body)).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" || len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("status %s, %d results", r.Status, len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestRefusedReadsLeaveSeriesOut: root without CAP_SYS_PTRACE cannot read
// the fd links of a uid-65534 process holding a CLOSE_WAIT socket. The
// exporter must count the refusal and publish no close_wait series for
// it, rather than a 0.
func TestRefusedReadsLeaveSeriesOut(t *testing.T) {
	victim := zombietest.Nobody(t, `
import socket, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(8)
c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.close()
print("ready", flush=True); time.sleep(120)
`)
	pid := strconv.Itoa(victim.Process.Pid)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := zombietest.NoPtrace(t, self, "--textfile", dir, "--once", "--pid", pid)
	cmd.Env = append(os.Environ(), "ZW_TEST_MAIN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("exporter without CAP_SYS_PTRACE: %v %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "zombiewatch.prom"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	if _, ok := metric(text, "zombiewatch_open_fds", `comm="python3",pid="`+pid+`"`); !ok {
		t.Errorf("no zombiewatch_open_fds for pid %s: the count is readable and must be exported:\n%s", pid, text)
	}
	if v, ok := metric(text, "zombiewatch_close_wait_sockets", `comm="python3",pid="`+pid+`"`); ok {
		t.Errorf("zombiewatch_close_wait_sockets for pid %s = %v: a refused read published as a number", pid, v)
	}
	if v, ok := metric(text, "zombiewatch_scrape_errors_total", `kind="permission"`); !ok || v < 1 {
		t.Errorf("scrape_errors_total{kind=permission} = %v (present %v), want at least 1 in the same scrape", v, ok)
	}
}

// TestServeUnderLoad plays a flood: idle connections cannot take the
// exporter's descriptors, surplus scrapes get 503 at once, scrapes whose
// callers leave stop their scans (counted), and a scrape after it all is
// answered.
func TestServeUnderLoad(t *testing.T) {
	u := startServe(t)
	host := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/metrics")
	// The exporter runs in this process: each idle connection is one fd
	// here on the client's side, plus one on the exporter's if accepted.
	before := ownFDs(t)
	var idle []net.Conn
	for range 200 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	// Let the exporter accept what it will.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && ownFDs(t) < before+200+maxConns {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ownFDs(t) - before - 200; n > maxConns+4 {
		t.Errorf("200 idle connections: the exporter holds %d of them; want at most %d", n, maxConns)
	}
	for _, c := range idle {
		c.Close()
	}

	// Floods of 20 simultaneous scrapes, half of whose callers give up
	// after a millisecond: scrapes take turns and at most 3 wait, so the
	// rest get 503 at once, and a caller that left while its scrape waited
	// has its scan stopped and counted. Each must be seen, not hoped for:
	// a flood is sent again (up to 5 times) until both have been.
	seen503 := false
	for round := 0; round < 5 && !(seen503 && abandoned(t, u) > 0); round++ {
		var wg sync.WaitGroup
		codes := make(chan int, 20)
		start := make(chan struct{})
		for i := range 20 {
			wg.Go(func() {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				<-start
				if i%2 == 1 {
					time.AfterFunc(time.Millisecond, cancel)
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes <- resp.StatusCode
				}
			})
		}
		close(start)
		wg.Wait()
		close(codes)
		for code := range codes {
			switch code {
			case http.StatusServiceUnavailable:
				seen503 = true
			case 200:
			default:
				t.Errorf("a scrape in the flood got %d; want 200, or 503 when too many are in flight", code)
			}
		}
	}
	if !seen503 {
		t.Errorf("5 floods of 20 simultaneous scrapes and no 503: the in-flight bound did not show")
	}
	// The abandoned scrapes' handlers end as their scans notice; then a
	// scrape is answered again.
	var text string
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			text = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape answered within 10 s of the flood: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(text, "\nzombiewatch_zombies ") {
		t.Errorf("the scrape after the flood lacks zombiewatch_zombies:\n%.500s", text)
	}
	if n, ok := metric(text, "zombiewatch_scrape_errors_total", `kind="abandoned"`); !ok || n == 0 {
		t.Errorf("zombiewatch_scrape_errors_total{kind=\"abandoned\"} %v (present %v): want the scrapes whose callers left counted", n, ok)
	}
}

// abandoned is the exporter's count of scrapes whose callers left, read
// with a scrape of its own (0 when that scrape is refused).
func abandoned(t *testing.T, u string) float64 {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n, _ := metric(string(b), "zombiewatch_scrape_errors_total", `kind="abandoned"`)
	return n
}

// TestSilentServersFailTheSource: 20 processes of another uid bind control
// names and never answer: a scrape costs one probe budget for all of
// them, not half a second each, and says the "server" source failed.
func TestSilentServersFailTheSource(t *testing.T) {
	zombietest.SkipSlow(t)
	u := startServe(t, "--top", "0")
	client := &http.Client{Timeout: 60 * time.Second}
	start := time.Now()
	get(t, client, u)
	before := time.Since(start)
	zombietest.Nobody(t, `
import os, socket, time
for i in range(20):
    if os.fork() == 0:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind("\0zombiewatch/server/%d/silent" % os.getpid())
        s.listen(64)
        held = []
        while True:
            c, _ = s.accept()
            held.append(c)
print("ready", flush=True)
time.sleep(120)
`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		unix, _ := os.ReadFile("/proc/net/unix")
		if strings.Count(string(unix), "/silent") >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the 20 silent servers did not bind in 30s")
		}
	}
	start = time.Now()
	text := get(t, client, u)
	took := time.Since(start)
	if took > before+4*250*time.Millisecond {
		t.Errorf("a scrape beside 20 silent control sockets took %s (%s before): the probes are not bounded together", took, before)
	}
	if v, ok := metric(text, "zombiewatch_source_success", `source="server"`); !ok || v != 0 {
		t.Errorf("zombiewatch_source_success{source=\"server\"} %v (present %v); want 0: its probes failed", v, ok)
	}
}

// TestOnlyGETAndHEAD: the metrics answer GET and HEAD; POST, DELETE and
// TRACE get 405 with the methods allowed.
func TestOnlyGETAndHEAD(t *testing.T) {
	u := startServe(t)
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "DELETE": 405, "TRACE": 405, "PUT": 405} {
		req, _ := http.NewRequest(method, u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || (want == 405 && resp.Header.Get("Allow") != "GET, HEAD") {
			t.Errorf("%s /metrics: %d (Allow %q); want %d", method, resp.StatusCode, resp.Header.Get("Allow"), want)
		}
	}
}

// TestSlowConnectionsDoNotStarveScrapes: 40 connections that send half a
// request and wait hold every slot; a scrape that arrives complete is
// still served (the oldest connection not serving a request makes room).
func TestSlowConnectionsDoNotStarveScrapes(t *testing.T) {
	u := startServe(t)
	host := strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/metrics")
	var slow []net.Conn
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	for range 40 {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n") // never finished
		slow = append(slow, c)
	}
	for i := range 5 {
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(u)
		if err != nil {
			t.Fatalf("scrape %d beside 40 slow connections: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("scrape %d beside 40 slow connections: %d", i, resp.StatusCode)
		}
	}
}
