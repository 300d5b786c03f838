// Package deploy holds the files that run zombiewatch in production: a
// systemd unit, a Kubernetes DaemonSet, and Prometheus alert rules. Its
// tests check them with the tools that will read them.
package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/zombiewatch/zombiewatch/internal/cli"
)

func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (.ci/run installs Debian's prometheus)")
	}
	for _, args := range [][]string{
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"}, // the alerts fire when they should, and only then
	} {
		if out, err := exec.Command(promtool, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestDaemonSet(t *testing.T) {
	data, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds struct {
		Kind string
		Spec struct {
			Template struct {
				Spec struct {
					HostPID     bool `yaml:"hostPID"`
					HostNetwork bool `yaml:"hostNetwork"`
					Containers  []struct {
						Name            string
						Image           string
						Command         []string
						Args            []string
						SecurityContext struct {
							RunAsNonRoot             bool `yaml:"runAsNonRoot"`
							RunAsUser                int  `yaml:"runAsUser"`
							AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
							ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
							Capabilities             struct{ Drop, Add []string }
						} `yaml:"securityContext"`
						VolumeMounts []struct {
							Name      string
							MountPath string `yaml:"mountPath"`
							ReadOnly  bool   `yaml:"readOnly"`
						} `yaml:"volumeMounts"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &ds); err != nil {
		t.Fatalf("daemonset.yaml: %v", err)
	}
	pod := ds.Spec.Template.Spec
	// hostNetwork: the process events' connector lives in the host's first
	// network namespace only.
	if ds.Kind != "DaemonSet" || !pod.HostPID || !pod.HostNetwork || len(pod.Containers) != 2 {
		t.Fatalf("want a DaemonSet with hostPID, hostNetwork, the exporter and its proxy: %+v", ds)
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc.AllowPrivilegeEscalation || !sc.ReadOnlyRootFilesystem || strings.Join(sc.Capabilities.Drop, ",") != "ALL" {
			t.Errorf("%s: security context %+v: want no escalation, read-only root, every capability dropped", c.Name, sc)
		}
	}
	c, proxy := pod.Containers[0], pod.Containers[1]
	// The exporter: root (capabilities are added to root alone) with the
	// two that reading fd links takes, and nothing else.
	if got := strings.Join(c.SecurityContext.Capabilities.Add, ","); got != "SYS_PTRACE,DAC_READ_SEARCH" || c.SecurityContext.RunAsUser != 0 {
		t.Errorf("exporter runs as uid %d adding %q: want uid 0 adding SYS_PTRACE and DAC_READ_SEARCH only", c.SecurityContext.RunAsUser, got)
	}
	if sc := proxy.SecurityContext; len(sc.Capabilities.Add) != 0 || !sc.RunAsNonRoot || sc.RunAsUser == 0 {
		t.Errorf("proxy: %+v: want a non-root user adding no capabilities", sc)
	}
	// The image is the one deploy/image/build.sh makes, of this version.
	if want := ":" + cli.Release; !strings.HasSuffix(c.Image, want) {
		t.Errorf("exporter image %q: want the release deploy/image/build.sh tags (%s)", c.Image, want)
	}
	if len(c.VolumeMounts) != 2 || c.VolumeMounts[0].MountPath != "/host/proc" || !c.VolumeMounts[0].ReadOnly ||
		c.VolumeMounts[1].MountPath != "/host/sys/fs/cgroup" || !c.VolumeMounts[1].ReadOnly {
		t.Errorf("mounts %+v: want the host's /proc and cgroupfs read-only under /host", c.VolumeMounts)
	}
	// In the host's network, the exporter on loopback only; the proxy,
	// which checks the caller's token, on the node's address.
	if strings.Join(c.Command, " ") != "/zombiewatch-exporter" || strings.Join(c.Args, " ") != "--listen=127.0.0.1:9857 --proc-root=/host/proc --cgroup-root=/host/sys/fs/cgroup" {
		t.Errorf("command %q, args %q: want the exporter on 127.0.0.1:9857 reading /host/proc and the host's cgroupfs", c.Command, c.Args)
	}
	if args := strings.Join(proxy.Args, " "); !strings.Contains(args, "--upstream=http://127.0.0.1:9857/") || !strings.Contains(args, "--secure-listen-address=") {
		t.Errorf("proxy args %q: want HTTPS on the node's address in front of 127.0.0.1:9857", args)
	}
}

func TestSystemdUnit(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit is not verified")
	}
	data, err := os.ReadFile("systemd/zombiewatch-exporter.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "ExecStart=/usr/local/bin/zombiewatch-exporter ") {
		t.Fatal("the unit does not run zombiewatch-exporter")
	}
	// verify wants ExecStart's binary to exist: point it at this test's.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "zombiewatch-exporter.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(data), "/usr/local/bin/zombiewatch-exporter", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
