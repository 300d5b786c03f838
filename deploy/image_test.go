package deploy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/zombiewatch/zombiewatch/internal/zombietest"
)

func TestMain(m *testing.M) { zombietest.Main(m) }

// daemonSet is what the image test takes from the manifest to run the
// container as a kubelet would.
type daemonSet struct {
	Spec struct {
		Template struct {
			Spec struct {
				HostPID     bool `yaml:"hostPID"`
				HostNetwork bool `yaml:"hostNetwork"`
				Containers  []struct {
					Command         []string
					Args            []string
					SecurityContext struct {
						RunAsUser                int  `yaml:"runAsUser"`
						RunAsGroup               int  `yaml:"runAsGroup"`
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
				Volumes []struct {
					Name     string
					HostPath struct{ Path string } `yaml:"hostPath"`
				}
			}
		}
	}
}

// podmanArgs is `podman run` as the manifest's exporter container would
// be run: its pid and network namespaces, user, capabilities, escalation,
// read-only root, host mounts, command and arguments (the listening port
// changed to listen).
func (ds daemonSet) podmanArgs(t *testing.T, image, listen string) []string {
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	sc := c.SecurityContext
	args := []string{"run", "-d", "--rm", "--user", fmt.Sprintf("%d:%d", sc.RunAsUser, sc.RunAsGroup)}
	if pod.HostPID {
		args = append(args, "--pid=host")
	}
	if pod.HostNetwork {
		args = append(args, "--network=host")
	}
	for _, c := range sc.Capabilities.Drop {
		args = append(args, "--cap-drop", c)
	}
	for _, c := range sc.Capabilities.Add {
		args = append(args, "--cap-add", c)
	}
	if !sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only")
	}
	host := map[string]string{}
	for _, v := range pod.Volumes {
		host[v.Name] = v.HostPath.Path
	}
	for _, m := range c.VolumeMounts {
		mount := host[m.Name] + ":" + m.MountPath
		if m.ReadOnly {
			mount += ":ro"
		}
		args = append(args, "-v", mount)
	}
	// A kubelet leaves the node's limits alone; podman would raise
	// RLIMIT_NOFILE and RLIMIT_NPROC, which root here may not (no
	// CAP_SYS_RESOURCE): keep them below this process's.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	args = append(args, "--ulimit", fmt.Sprintf("nofile=%d:%d", lim.Cur, lim.Cur), "--ulimit", "nproc=4096:4096")
	args = append(args, "--entrypoint", c.Command[0], image)
	for _, a := range c.Args {
		if strings.HasPrefix(a, "--listen=") {
			a = "--listen=" + listen
		}
		args = append(args, a)
	}
	return args
}

// TestImageAsDaemonSet builds the image offline (deploy/image/build.sh),
// runs it as deploy/kubernetes/daemonset.yaml runs it, and scrapes it: it
// must see a zombie parent started on this host, by its host pid, and the
// pids.max of a pids cgroup made on this host, and read that parent's fd
// links (another uid's would need the capabilities the manifest adds).
func TestImageAsDaemonSet(t *testing.T) {
	zombietest.SkipSlow(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a container with the host's pid namespace")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman not installed (.ci/run installs Debian's podman)")
	}
	// Debian's crun refuses a hybrid cgroup hierarchy (this machine's);
	// runc runs there.
	var runtime []string
	if _, err := exec.LookPath("runc"); err == nil {
		runtime = []string{"--runtime", "runc"}
	}
	data, err := os.ReadFile("kubernetes/daemonset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var ds daemonSet
	if err := yaml.NewDecoder(strings.NewReader(string(data))).Decode(&ds); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "image/build.sh", "localhost/zombiewatch:test").CombinedOutput()
	if err != nil {
		t.Fatalf("image/build.sh: %v\n%s", err, out)
	}

	// On the host: a parent holding 5 zombies, in a pids cgroup of max 50
	// (the zombies stay where they died; the parent is moved).
	h := zombietest.Start(t, zombietest.Spec{Children: 5})
	dir, cg := zombietest.PidsCgroup(t, 50)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(h.PID)), 0o644); err != nil {
		t.Fatal(err)
	}

	listen := "127.0.0.1:" + freePort(t)
	args := append(runtime, ds.podmanArgs(t, "localhost/zombiewatch:test", listen)...)
	t.Logf("podman %s", strings.Join(args, " "))
	id, err := exec.CommandContext(ctx, podman, args...).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("podman run: %s", msg)
	}
	container := strings.TrimSpace(string(id))
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := exec.Command(podman, "logs", container).CombinedOutput()
			t.Logf("container log:\n%s", logs)
		}
		exec.Command(podman, append(runtime, "stop", "-t", "5", container)...).Run()
	})

	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", h.PID))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		fmt.Sprintf(`zombiewatch_zombie_children{comm=%q,pid="%d"}`, strings.TrimSpace(string(comm)), h.PID): "5",
		fmt.Sprintf(`zombiewatch_cgroup_pids_max{cgroup=%q,container_id="",pod_uid=""}`, cg):                 "50",
	}
	var last string
	deadline := time.Now().Add(60 * time.Second)
	for {
		last, err = scrape("http://" + listen + "/metrics")
		missing := 0
		for series, value := range want {
			if !strings.Contains(last, series+" "+value+"\n") {
				missing++
			}
		}
		if err == nil && missing == 0 {
			for series, value := range want {
				t.Logf("the container's /metrics: %s %s", series, value)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's /metrics never showed %v (last error %v):\n%s", want, err, grepZombiewatch(last))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The parent's own fd links were read: its kinds are exported (it is
	// among the processes asked for only if near its limit, so look for
	// any kinds at all: with the manifest's capabilities, root's
	// processes' links are readable).
	if !strings.Contains(last, "zombiewatch_fds_by_kind{") {
		t.Errorf("no fd kinds exported: the container could read no fd links:\n%s", grepZombiewatch(last))
	}
}

func scrape(url string) (string, error) {
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text() + "\n")
	}
	if resp.StatusCode != 200 {
		return b.String(), fmt.Errorf("%s", resp.Status)
	}
	return b.String(), sc.Err()
}

func grepZombiewatch(metrics string) string {
	var b strings.Builder
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, "zombiewatch_") && !strings.Contains(line, "_bucket") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
