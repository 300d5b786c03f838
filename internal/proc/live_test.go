package proc

import (
	"os"
	"testing"
	"time"
)

func liveFS(t testing.TB) *FS {
	t.Helper()
	fs, err := New("/proc")
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestLiveBootTime: the btime line read by hand agrees with procfs's
// parse of the whole /proc/stat.
func TestLiveBootTime(t *testing.T) {
	fs := liveFS(t)
	got, err := fs.BootTime()
	if err != nil {
		t.Fatal(err)
	}
	st, err := fs.fs.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(int64(st.BootTime), 0); !got.Equal(want) {
		t.Errorf("boot time %v, procfs says %v", got, want)
	}
}

// TestLiveIsLive: this process's /proc is the live host; a copied tree is not.
func TestLiveIsLive(t *testing.T) {
	if !liveFS(t).Live() {
		t.Errorf("/proc: Live() = false, want true")
	}
	fs, err := New("../../testdata/proc/fds")
	if err != nil {
		t.Fatal(err)
	}
	if fs.Live() || fs.Real() {
		t.Errorf("a fixture tree: Live() %v, Real() %v; want false, false", fs.Live(), fs.Real())
	}
	_ = os.Getpid
	_ = time.Second
}
