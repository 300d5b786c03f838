package cgroup

import (
	"path"
	"regexp"
	"strings"

	"github.com/zombiewatch/zombiewatch/internal/proc"
)

// Identity is what a cgroup path says about its processes.
type Identity struct {
	Path        string `json:"path"`
	Unit        string `json:"unit,omitempty"`         // systemd unit or slice: "nginx.service", "session-3.scope"
	Runtime     string `json:"runtime,omitempty"`      // docker, containerd, cri-o, podman
	ContainerID string `json:"container_id,omitempty"` // 64 hex digits
	PodUID      string `json:"pod_uid,omitempty"`      // with dashes, as Kubernetes writes it
	QoS         string `json:"qos,omitempty"`          // guaranteed, burstable, besteffort
}

var (
	hex64 = `[0-9a-f]{64}`
	// The container's scope under the systemd driver, by runtime prefix.
	scopeRe = regexp.MustCompile(`^(docker|cri-containerd|crio|libpod)-(` + hex64 + `)\.scope$`)
	// Kubernetes pods: kubepods-burstable-pod<uid_with_underscores>.slice
	// (systemd driver) or pod<uid> (cgroupfs driver).
	podSliceRe = regexp.MustCompile(`^kubepods(?:-(burstable|besteffort))?-pod([0-9a-f_]{36})\.slice$`)
	podDirRe   = regexp.MustCompile(`^pod([0-9a-f-]{36})$`)
	idRe       = regexp.MustCompile(`^(?:(docker|cri-containerd|crio|libpod)-)?(` + hex64 + `)(?:\.scope)?$`)
)

var runtimes = map[string]string{"docker": "docker", "cri-containerd": "containerd", "crio": "cri-o", "libpod": "podman"}

// Identify reads what a cgroup path names, for the two kubelet cgroup
// drivers (systemd: kubepods.slice/kubepods-burstable.slice/
// kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope;
// cgroupfs: /kubepods/burstable/pod<uid>/<id>), plain docker and podman
// (/docker/<id>, docker-<id>.scope, libpod-<id>.scope) and systemd units.
func Identify(p string) Identity {
	id := Identity{Path: p}
	inKube := false
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	for i, part := range parts {
		switch {
		case part == "kubepods" || part == "kubepods.slice":
			inKube = true
			id.QoS = "guaranteed" // unless a burstable/besteffort level follows
		case inKube && (part == "burstable" || part == "besteffort"):
			id.QoS = part
		case strings.HasPrefix(part, "kubepods-") && strings.HasSuffix(part, ".slice") && podSliceRe.FindStringSubmatch(part) == nil:
			inKube = true
			qos := strings.TrimSuffix(strings.TrimPrefix(part, "kubepods-"), ".slice")
			if qos == "burstable" || qos == "besteffort" {
				id.QoS = qos
			}
		}
		if m := podSliceRe.FindStringSubmatch(part); m != nil {
			inKube = true
			id.PodUID = strings.ReplaceAll(m[2], "_", "-")
			if m[1] != "" {
				id.QoS = m[1]
			} else if id.QoS == "" {
				id.QoS = "guaranteed"
			}
		} else if m := podDirRe.FindStringSubmatch(part); m != nil && inKube {
			id.PodUID = m[1]
		}
		if m := scopeRe.FindStringSubmatch(part); m != nil {
			id.Runtime, id.ContainerID = runtimes[m[1]], m[2]
		} else if m := idRe.FindStringSubmatch(part); m != nil && i > 0 {
			id.ContainerID = m[2]
			switch {
			case m[1] != "":
				id.Runtime = runtimes[m[1]] // podman's cgroupfs manager: /libpod_parent/libpod-<id>
			case parts[i-1] == "docker":
				id.Runtime = "docker"
			case inKube && id.Runtime == "":
				id.Runtime = "" // cgroupfs driver: the runtime is not in the path
			}
		}
		if (strings.HasSuffix(part, ".service") || strings.HasSuffix(part, ".scope") || strings.HasSuffix(part, ".slice")) &&
			!strings.HasPrefix(part, "kubepods") {
			if id.ContainerID == "" || !strings.Contains(part, id.ContainerID) {
				id.Unit = part
			}
		}
	}
	if !inKube {
		id.QoS = ""
	}
	return id
}

// IdentityOf picks the path that names a process: the v2 line where it
// is not the root (hybrid hosts keep systemd's view there), else the v1
// name=systemd or pids line, else any non-root line.
func IdentityOf(lines []proc.CgroupLine) Identity {
	pick := func(ok func(proc.CgroupLine) bool) (string, bool) {
		for _, l := range lines {
			if l.Path != "/" && ok(l) {
				return l.Path, true
			}
		}
		return "", false
	}
	for _, ok := range []func(proc.CgroupLine) bool{
		func(l proc.CgroupLine) bool { return l.ID == 0 && len(l.Controllers) == 0 },
		func(l proc.CgroupLine) bool { return has(l.Controllers, "name=systemd") || has(l.Controllers, "pids") },
		func(proc.CgroupLine) bool { return true },
	} {
		if p, found := pick(ok); found {
			return Identify(p)
		}
	}
	return Identity{Path: "/"}
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
