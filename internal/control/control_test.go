package control

import (
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCallRefusesAnImpostor plays a local user who binds the socket name
// of another process (a sleep here): the client must not believe it.
func TestCallRefusesAnImpostor(t *testing.T) {
	victim := exec.Command("sleep", "30")
	if err := victim.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	pid := victim.Process.Pid
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: Addr(pid) + "impostor", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			// The impostor's lie: a server with its reaper off.
			json.NewEncoder(conn).Encode(reply{Status: &Status{Settings: Settings{Reaper: ReaperOff}, HeldConns: 999}})
			conn.Close()
		}
	}()
	st, err := Call(pid, Request{}, time.Second)
	if !errors.Is(err, ErrImpostor) {
		t.Fatalf("Call(%d) to a socket this test holds = %+v, %v; want ErrImpostor", pid, st, err)
	}
}

func TestValidate(t *testing.T) {
	bogus, neg, long := Reaper("bogus"), -time.Second, 2*time.Hour
	for _, req := range []Request{{Reaper: &bogus}, {Hold: &neg}, {Hold: &long}} {
		if err := req.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", req)
		}
	}
	loop, hold := ReaperLoop, 300*time.Millisecond
	if err := (Request{Reaper: &loop, Hold: &hold}).Validate(); err != nil {
		t.Errorf("a valid request: %v", err)
	}
}

// FuzzRequest: any bytes from a peer decode to a request that is either
// refused or valid; nothing panics.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{`{}`, `{"reaper":"loop"}`, `{"reaper":"bogus"}`, `{"hold_ns":-1}`,
		`{"close_conn":true,"hold_ns":300000000}`, `{"reaper":`, `[]`, "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var req Request
		if json.NewDecoder(strings.NewReader(data)).Decode(&req) != nil {
			return
		}
		if req.Validate() == nil && req.Reaper != nil {
			if _, err := ParseReaper(string(*req.Reaper)); err != nil {
				t.Errorf("validated an unknown reaper %q", *req.Reaper)
			}
		}
	})
}
