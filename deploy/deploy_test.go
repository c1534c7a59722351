// Package deploy holds deployment examples (systemd, Compose, Kubernetes);
// its tests validate what can be validated without running them: the YAML
// parses into what the examples promise, nginx accepts its configuration
// (nginx -t), and the settings they give gpt2d are ones it knows.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// compose is the part of a Compose file the test reads.
type compose struct {
	Services map[string]struct {
		Image       string
		Build       any
		Command     []string
		Environment map[string]string
		Secrets     []string
		Volumes     []string
		Ports       []string
		Deploy      struct{ Replicas int }
		Networks    any
	}
	Secrets map[string]struct{ File string }
}

func readYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
}

func TestComposeRunsReplicasOnPostgresBehindNginx(t *testing.T) {
	b, err := os.ReadFile("compose/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "gpt2d", "nginx"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no %s service", name)
		}
	}
	g := c.Services["gpt2d"]
	if g.Deploy.Replicas < 2 {
		t.Fatalf("gpt2d replicas = %d, want several", g.Deploy.Replicas)
	}
	env := g.Environment
	if !strings.HasPrefix(env["GPT2D_STORE"], "postgres://") || strings.Contains(env["GPT2D_STORE"], ":CHANGE") {
		t.Fatalf("GPT2D_STORE = %q, want a postgres URL without a password", env["GPT2D_STORE"])
	}
	if env["GPT2D_JWT_SECRET_FILE"] == "" {
		t.Fatal("replicas need one shared signing key file")
	}
	if env["GPT2D_PROXY_HEADER"] != "X-Forwarded-For" || env["GPT2D_TRUSTED_PROXIES"] == "" {
		t.Fatalf("proxy settings %q / %q", env["GPT2D_PROXY_HEADER"], env["GPT2D_TRUSTED_PROXIES"])
	}
	// The trusted proxy is nginx's fixed address, and nothing wider.
	nginx, _ := yaml.Marshal(c.Services["nginx"].Networks)
	if !strings.Contains(string(nginx), "ipv4_address: "+env["GPT2D_TRUSTED_PROXIES"]) {
		t.Fatalf("GPT2D_TRUSTED_PROXIES %s is not nginx's address (%s)", env["GPT2D_TRUSTED_PROXIES"], nginx)
	}
	if !slicesContains(g.Volumes, ":/models:ro") {
		t.Fatalf("model volume not read-only: %v", g.Volumes)
	}
	for _, s := range g.Secrets {
		if _, ok := c.Secrets[s]; !ok {
			t.Fatalf("secret %s not declared", s)
		}
	}
	for _, p := range c.Services["nginx"].Ports {
		if !strings.HasPrefix(p, "127.0.0.1:") {
			t.Fatalf("nginx published on %s: bind loopback and put TLS in front", p)
		}
	}
	checkEnvKnown(t, env)
}

// checkEnvKnown runs `gpt2d serve --help` and requires every GPT2D_
// variable the example sets to be one gpt2d reads.
func checkEnvKnown(t *testing.T, env map[string]string) {
	t.Helper()
	out, _ := exec.Command("go", "run", "../cmd/gpt2d", "serve", "--help").CombinedOutput()
	for k := range env {
		if strings.HasPrefix(k, "GPT2D_") && !strings.Contains(string(out), "("+k+")") && !strings.Contains(string(out), k) {
			t.Errorf("%s is not a gpt2d setting (gpt2d serve --help)", k)
		}
	}
}

func slicesContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// TestNginxConfigIsValid runs nginx -t on the Compose example's
// configuration. The upstream's host name exists only on the Compose
// network, so the copy tested names 127.0.0.1 instead.
func TestNginxConfigIsValid(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, err2 := os.Stat(p); err2 == nil {
				nginx, err = p, nil
			}
		}
	}
	if err != nil {
		msg := "nginx is not installed: cannot check deploy/compose/nginx.conf (apt-get install nginx; .ci/run installs it)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	conf, err := os.ReadFile("compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"proxy_set_header X-Forwarded-For $remote_addr;", "proxy_buffering off;"} {
		if !strings.Contains(string(conf), want) {
			t.Fatalf("nginx.conf lacks %q", want)
		}
	}
	dir := t.TempDir()
	local := strings.Replace(string(conf), "server gpt2d:8000", "server 127.0.0.1:8000", 1)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(nginx, "-t", "-p", dir, "-c", path, "-g", "pid "+filepath.Join(dir, "nginx.pid")+";").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	t.Logf("%s", bytes.TrimSpace(out))
}

func TestKubernetesManifests(t *testing.T) {
	files, _ := filepath.Glob("k8s/*.yaml")
	byKind := map[string]map[string]any{}
	for _, f := range files {
		for _, d := range readYAML(t, f) {
			kind, _ := d["kind"].(string)
			if kind == "" || d["apiVersion"] == nil || d["metadata"] == nil {
				t.Fatalf("%s: a document without kind, apiVersion or metadata", f)
			}
			byKind[kind] = d
		}
	}
	for _, k := range []string{"Deployment", "Service", "Secret", "PersistentVolumeClaim"} {
		if byKind[k] == nil {
			t.Fatalf("no %s manifest", k)
		}
	}
	var dep struct {
		Spec struct {
			Replicas int
			Template struct {
				Spec struct {
					Containers []struct {
						Ports []struct {
							Name          string
							ContainerPort int `yaml:"containerPort"`
						}
						Env []struct {
							Name      string
							ValueFrom struct {
								SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
							} `yaml:"valueFrom"`
						}
						VolumeMounts []struct {
							MountPath string `yaml:"mountPath"`
							ReadOnly  bool   `yaml:"readOnly"`
						} `yaml:"volumeMounts"`
					}
				}
			}
		}
	}
	remarshal(t, byKind["Deployment"], &dep)
	if dep.Spec.Replicas < 2 {
		t.Fatalf("replicas = %d", dep.Spec.Replicas)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	probes := map[string]any{}
	remarshal(t, findContainer(t, byKind["Deployment"]), &probes)
	for _, p := range []string{"readinessProbe", "livenessProbe"} {
		var probe struct {
			HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
		}
		remarshal(t, probes[p], &probe)
		if probe.HTTPGet.Path != "/health" || probe.HTTPGet.Port != c.Ports[0].Name {
			t.Fatalf("%s = %+v, want GET /health on port %s", p, probe, c.Ports[0].Name)
		}
	}
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	remarshal(t, byKind["Secret"], &secret)
	refs := map[string]bool{}
	for _, e := range c.Env {
		if r := e.ValueFrom.SecretKeyRef; r.Key != "" {
			if _, ok := secret.StringData[r.Key]; !ok {
				t.Fatalf("env %s refers to missing secret key %s", e.Name, r.Key)
			}
			refs[e.Name] = true
		}
	}
	if !refs["GPT2D_STORE"] || !refs["GPT2D_JWT_SECRET"] {
		t.Fatalf("the store URL and signing key must come from the Secret: %v", refs)
	}
	if !strings.HasPrefix(secret.StringData["store"], "postgres://") {
		t.Fatalf("secret store = %q", secret.StringData["store"])
	}
	models := false
	for _, m := range c.VolumeMounts {
		models = models || (m.MountPath == "/models" && m.ReadOnly)
	}
	if !models {
		t.Fatalf("model not mounted read-only at /models: %+v", c.VolumeMounts)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = ""
	}
	checkEnvKnown(t, env)
}

func findContainer(t *testing.T, dep map[string]any) any {
	t.Helper()
	var d struct {
		Spec struct {
			Template struct {
				Spec struct{ Containers []map[string]any }
			}
		}
	}
	remarshal(t, dep, &d)
	return d.Spec.Template.Spec.Containers[0]
}

// remarshal decodes v (generic YAML) into out.
func remarshal(t *testing.T, v, out any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}
