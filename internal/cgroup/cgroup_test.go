package cgroup

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

const (
	cid = "3e8a2c5a8b7f4f0b9d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c"
	uid = "6b1f2d4e-8a9b-4c3d-9e8f-7a6b5c4d3e2f"
)

func TestIdentify(t *testing.T) {
	for _, tc := range []struct {
		name, path string
		want       Identity
	}{
		{"kubelet systemd driver, containerd, burstable",
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b1f2d4e_8a9b_4c3d_9e8f_7a6b5c4d3e2f.slice/cri-containerd-" + cid + ".scope",
			Identity{Runtime: "containerd", ContainerID: cid, PodUID: uid, QoS: "burstable"}},
		{"kubelet systemd driver, cri-o, guaranteed",
			"/kubepods.slice/kubepods-pod6b1f2d4e_8a9b_4c3d_9e8f_7a6b5c4d3e2f.slice/crio-" + cid + ".scope",
			Identity{Runtime: "cri-o", ContainerID: cid, PodUID: uid, QoS: "guaranteed"}},
		{"kubelet systemd driver, docker, besteffort",
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b1f2d4e_8a9b_4c3d_9e8f_7a6b5c4d3e2f.slice/docker-" + cid + ".scope",
			Identity{Runtime: "docker", ContainerID: cid, PodUID: uid, QoS: "besteffort"}},
		{"kubelet cgroupfs driver",
			"/kubepods/burstable/pod" + uid + "/" + cid,
			Identity{ContainerID: cid, PodUID: uid, QoS: "burstable"}},
		{"kubelet cgroupfs driver, guaranteed pod",
			"/kubepods/pod" + uid + "/" + cid,
			Identity{ContainerID: cid, PodUID: uid, QoS: "guaranteed"}},
		{"plain docker, cgroupfs", "/docker/" + cid, Identity{Runtime: "docker", ContainerID: cid}},
		{"plain docker, systemd", "/system.slice/docker-" + cid + ".scope", Identity{Runtime: "docker", ContainerID: cid, Unit: "system.slice"}},
		{"podman, systemd manager", "/machine.slice/libpod-" + cid + ".scope", Identity{Runtime: "podman", ContainerID: cid, Unit: "machine.slice"}},
		// As podman with runc and the cgroupfs manager makes it on this
		// machine's hybrid hierarchy (LINUX-NOTES).
		{"podman, cgroupfs manager", "/libpod_parent/libpod-" + cid, Identity{Runtime: "podman", ContainerID: cid}},
		{"kubelet cgroupfs driver, cri-o", "/kubepods/burstable/pod" + uid + "/crio-" + cid,
			Identity{Runtime: "cri-o", ContainerID: cid, PodUID: uid, QoS: "burstable"}},
		{"systemd service", "/system.slice/nginx.service", Identity{Unit: "nginx.service"}},
		{"user session", "/user.slice/user-1000.slice/session-3.scope", Identity{Unit: "session-3.scope"}},
		{"root", "/", Identity{}},
		{"escape attempt", "/../../etc/passwd", Identity{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.Path = tc.path
			if diff := cmp.Diff(tc.want, Identify(tc.path)); diff != "" {
				t.Errorf("Identify(%q) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

// tree writes files under a temporary cgroupfs root.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestPidsOf(t *testing.T) {
	pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6b1f2d4e_8a9b_4c3d_9e8f_7a6b5c4d3e2f.slice"
	v2 := tree(t, map[string]string{
		"cgroup.controllers":  "cpuset cpu io memory pids\n",
		pod + "/pids.max":     "1024\n",
		pod + "/pids.current": "980\n",
		pod + "/pids.events":  "max 12\n",
		pod + "/cri-containerd-" + cid + ".scope/pids.max":     "max\n",
		pod + "/cri-containerd-" + cid + ".scope/pids.current": "975\n",
	})
	v1 := tree(t, map[string]string{
		"pids/tasks":                 "",
		"pids/app/pids.max":          "50\n",
		"pids/app/pids.current":      "50\n",
		"pids/app/pids.events":       "max 3\n",
		"unified/cgroup.controllers": "",
	})
	for _, tc := range []struct {
		name, root string
		lines      []proc.CgroupLine
		want       Pids
		limited    bool
	}{
		{"v2: the pod's limit, from its container", v2, []proc.CgroupLine{{ID: 0, Path: pod + "/cri-containerd-" + cid + ".scope"}},
			Pids{Path: pod, Current: 980, Max: 1024, Refused: 12}, true},
		{"v1 hybrid: the pids line", v1, []proc.CgroupLine{{ID: 8, Controllers: []string{"pids"}, Path: "/app"}, {ID: 0, Path: "/"}},
			Pids{Path: "/app", Current: 50, Max: 50, Refused: 3}, true},
		{"a path that climbs out stays inside", v1, []proc.CgroupLine{{ID: 8, Controllers: []string{"pids"}, Path: "/../../app"}},
			Pids{Path: "/app", Current: 50, Max: 50, Refused: 3}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := New(tc.root)
			if err != nil {
				t.Fatal(err)
			}
			got, limited, err := fs.PidsOf(tc.lines)
			if err != nil || limited != tc.limited {
				t.Fatalf("PidsOf: limited %v, %v; want %v", limited, err, tc.limited)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	// A cgroup removed between the read of /proc/PID/cgroup and its
	// files: no limit found, and no crash; unreadable events: -1.
	fs, _ := New(v1)
	if _, limited, _ := fs.PidsOf([]proc.CgroupLine{{ID: 8, Controllers: []string{"pids"}, Path: "/gone"}}); limited {
		t.Error("a vanished cgroup read as limited")
	}
	if _, err := New(t.TempDir()); err == nil {
		t.Error("an empty directory opened as a cgroupfs")
	}
}
