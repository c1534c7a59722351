package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// k8sObject is one document of deploy/k8s.
type k8sObject struct {
	file string
	doc  map[string]any
}

func (o k8sObject) kind() string { return getStr(o.doc, "kind") }
func (o k8sObject) name() string { return getStr(o.doc, "metadata", "name") }
func (o k8sObject) String() string {
	return fmt.Sprintf("%s %s/%s", filepath.Base(o.file), o.kind(), o.name())
}

// apiVersions are the stable API versions of the kinds deploy/k8s uses.
var apiVersions = map[string]string{
	"Deployment": "apps/v1", "Job": "batch/v1", "Service": "v1", "Secret": "v1",
	"PersistentVolumeClaim": "v1", "PodDisruptionBudget": "policy/v1", "Ingress": "networking.k8s.io/v1",
	"Kustomization": "kustomize.config.k8s.io/v1beta1",
}

func readK8s(t *testing.T) []k8sObject {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/k8s/*.yaml: %v", err)
	}
	var objs []k8sObject
	for _, f := range files {
		for _, d := range readYAML(t, f) {
			o := k8sObject{file: f, doc: d}
			if getStr(d, "apiVersion") == "" || o.kind() == "" {
				t.Errorf("%s: a document without apiVersion and kind", f)
				continue
			}
			if want, ok := apiVersions[o.kind()]; !ok || getStr(d, "apiVersion") != want {
				t.Errorf("%s: %s %s: want one of the kinds %v at its stable apiVersion", f, getStr(d, "apiVersion"), o.kind(), apiVersions)
			}
			if o.kind() != "Kustomization" && o.name() == "" {
				t.Errorf("%s: %s without metadata.name", f, o.kind())
			}
			objs = append(objs, o)
		}
	}
	return objs
}

func TestKubernetesManifestsMatchTheBinary(t *testing.T) {
	objs := readK8s(t)
	img := readDockerfile(t)
	byKind := map[string]map[string]k8sObject{}
	for _, o := range objs {
		if byKind[o.kind()] == nil {
			byKind[o.kind()] = map[string]k8sObject{}
		}
		byKind[o.kind()][o.name()] = o
	}

	// The Kustomization lists files that exist, and every manifest but the
	// Secret's example and the on-demand weights Job.
	for _, k := range byKind["Kustomization"] {
		listed := map[string]bool{}
		for _, r := range strList(getList(k.doc, "resources")) {
			listed[r] = true
			if _, err := os.Stat(filepath.Join("k8s", r)); err != nil {
				t.Errorf("%s: resource %s: %v", k, r, err)
			}
		}
		for _, o := range objs {
			base := filepath.Base(o.file)
			if !listed[base] && o.kind() != "Kustomization" && o.kind() != "Secret" && base != "weights-job.yaml" {
				t.Errorf("kustomization.yaml does not list %s", o)
			}
		}
	}

	secretKeys := func(name string) map[string]bool {
		s, ok := byKind["Secret"][name]
		if !ok {
			return nil
		}
		keys := map[string]bool{}
		for _, field := range []string{"data", "stringData"} {
			for k := range getMap(s.doc, field) {
				keys[k] = true
			}
		}
		return keys
	}

	// Jobs first: the weights Job says where the model is written.
	slices.SortStableFunc(objs, func(a, b k8sObject) int {
		return strings.Compare(strings.Replace(a.kind(), "Job", "0", 1), strings.Replace(b.kind(), "Job", "0", 1))
	})
	var modelPVC string
	servePods := 0
	for _, o := range objs {
		if o.kind() != "Deployment" && o.kind() != "Job" {
			continue
		}
		pod := getMap(o.doc, "spec", "template", "spec")
		if pod == nil {
			t.Errorf("%s: no pod template", o)
			continue
		}
		volumes := map[string]map[string]any{}
		for _, v := range getList(pod, "volumes") {
			vm := v.(map[string]any)
			volumes[getStr(vm, "name")] = vm
			if claim := getStr(vm, "persistentVolumeClaim", "claimName"); claim != "" {
				if _, ok := byKind["PersistentVolumeClaim"][claim]; !ok {
					t.Errorf("%s: volume %s claims %s, which no manifest defines", o, getStr(vm, "name"), claim)
				}
			}
			if sn := getStr(vm, "secret", "secretName"); sn != "" {
				keys := secretKeys(sn)
				if keys == nil {
					t.Errorf("%s: volume %s reads Secret %s, which no manifest defines", o, getStr(vm, "name"), sn)
				}
				for _, it := range getList(vm, "secret", "items") {
					if !keys[getStr(it, "key")] {
						t.Errorf("%s: volume %s reads key %s of Secret %s, which it lacks", o, getStr(vm, "name"), getStr(it, "key"), sn)
					}
				}
			}
		}
		fetched := ""
		containers := append(slices.Clone(getList(pod, "initContainers")), getList(pod, "containers")...)
		for _, c := range containers {
			where := fmt.Sprintf("%s container %s", o, getStr(c, "name"))
			if !strings.HasPrefix(getStr(c, "image"), "gpt2d:") {
				continue
			}
			if getList(c, "command") != nil {
				t.Errorf("%s: sets command, replacing the image's entrypoint %v; use args", where, img.entrypoint)
			}
			env := map[string]string{}
			for _, e := range getList(c, "env") {
				name := getStr(e, "name")
				env[name] = getStr(e, "value")
				if ref := getMap(e, "valueFrom", "secretKeyRef"); ref != nil {
					keys := secretKeys(getStr(ref, "name"))
					if !keys[getStr(ref, "key")] {
						t.Errorf("%s: %s reads key %q of Secret %q, which no manifest defines", where, name, getStr(ref, "key"), getStr(ref, "name"))
					}
					env[name] = "(secret)"
				}
			}
			mounts := map[string]map[string]any{}
			for _, m := range getList(c, "volumeMounts") {
				mm := m.(map[string]any)
				mounts[getStr(mm, "mountPath")] = mm
				v := volumes[getStr(mm, "name")]
				if v == nil {
					t.Errorf("%s: mounts volume %s, which the pod does not have", where, getStr(mm, "name"))
				}
				// A claim written by a non-root pod must be given to it.
				if getStr(v, "persistentVolumeClaim", "claimName") != "" && getStr(mm, "readOnly") != "true" &&
					getStr(pod, "securityContext", "fsGroup") != getStr(pod, "securityContext", "runAsGroup") {
					t.Errorf("%s: writes claim %s without fsGroup = runAsGroup: the volume may not be writable", where, getStr(v, "persistentVolumeClaim", "claimName"))
				}
			}
			if getStr(c, "securityContext", "readOnlyRootFilesystem") != "true" {
				t.Errorf("%s: root filesystem not read-only", where)
			}
			mountOf := func(path string) (map[string]any, string) {
				best := ""
				for mp := range mounts {
					if strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") && len(mp) > len(best) {
						best = mp
					}
				}
				if best == "" {
					return nil, ""
				}
				return mounts[best], strings.TrimPrefix(path, strings.TrimSuffix(best, "/")+"/")
			}
			args := strList(getList(c, "args"))
			if args == nil {
				args = img.cmd
			}
			sub := checkInvocation(t, where, args, env)
			if slices.Equal(sub, []string{"weights", "fetch"}) {
				fetched = flagValue(args, "--dir")
			}
			if slices.Equal(sub, []string{"weights", "convert"}) && flagValue(args, "--from") != fetched {
				t.Errorf("%s: converts %s, but the fetch before it writes %q", where, flagValue(args, "--from"), fetched)
			}
			if out := flagValue(args, "--out"); slices.Equal(sub, []string{"weights", "convert"}) {
				if m, _ := mountOf(out); m == nil || volumes[getStr(m, "name")] == nil {
					t.Errorf("%s: writes %s outside any volume", where, out)
				} else {
					modelPVC = getStr(volumes[getStr(m, "name")], "persistentVolumeClaim", "claimName") + ":" + out
				}
			}
			if !slices.Equal(sub, []string{"serve"}) {
				continue
			}
			servePods++

			// The listener, its port, and the probes on /health there.
			ports := map[string]int{}
			for _, p := range getList(c, "ports") {
				n, _ := strconv.Atoi(getStr(p, "containerPort"))
				ports[getStr(p, "name")] = n
			}
			if len(ports) != 1 {
				t.Fatalf("%s: %d ports, want one", where, len(ports))
			}
			var port int
			for _, n := range ports {
				port = n
			}
			checkAddr(t, where, env["GPT2D_ADDR"], port)
			if port != img.expose {
				t.Errorf("%s: containerPort %d, but the image exposes %d", where, port, img.expose)
			}
			for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
				hg := getMap(c, probe, "httpGet")
				if hg == nil {
					t.Errorf("%s: no %s.httpGet", where, probe)
					continue
				}
				if getStr(hg, "path") != "/health" {
					t.Errorf("%s: %s on %q, want /health", where, probe, getStr(hg, "path"))
				}
				p := getStr(hg, "port")
				if n, err := strconv.Atoi(p); (err == nil && n != port) || (err != nil && ports[p] != port) {
					t.Errorf("%s: %s on port %q, but gpt2d listens on %d", where, probe, p, port)
				}
			}
			// SIGTERM drains for --shutdown-timeout after the preStop
			// sleep; the kubelet kills at terminationGracePeriodSeconds.
			drain := 30 * time.Second // gpt2d's default
			if v := env["GPT2D_SHUTDOWN_TIMEOUT"]; v != "" {
				var err error
				if drain, err = time.ParseDuration(v); err != nil {
					t.Errorf("%s: GPT2D_SHUTDOWN_TIMEOUT %q: %v", where, v, err)
				}
			}
			preStop, _ := strconv.Atoi(getStr(c, "lifecycle", "preStop", "sleep", "seconds"))
			grace, _ := strconv.Atoi(getStr(pod, "terminationGracePeriodSeconds"))
			if time.Duration(grace)*time.Second <= drain+time.Duration(preStop)*time.Second {
				t.Errorf("%s: terminationGracePeriodSeconds %d does not cover preStop %ds + drain %v", where, grace, preStop, drain)
			}
			if env["GPT2D_STORE"] != "(secret)" {
				t.Errorf("%s: GPT2D_STORE does not come from a Secret", where)
			}
			if env["GPT2D_PROXY_HEADER"] == "" || len(parsePrefixes(t, where, env["GPT2D_TRUSTED_PROXIES"])) == 0 {
				t.Errorf("%s: no GPT2D_PROXY_HEADER and GPT2D_TRUSTED_PROXIES: behind an ingress every client is the controller", where)
			}

			// The model, read-only from a read-only claim.
			m, _ := mountOf(env["GPT2D_MODEL"])
			if m == nil || getStr(m, "readOnly") != "true" {
				t.Errorf("%s: GPT2D_MODEL %q is not on a read-only mount", where, env["GPT2D_MODEL"])
			} else {
				v := volumes[getStr(m, "name")]
				if getStr(v, "persistentVolumeClaim", "readOnly") != "true" {
					t.Errorf("%s: the model's claim is not mounted readOnly", where)
				}
				if want := getStr(v, "persistentVolumeClaim", "claimName") + ":" + env["GPT2D_MODEL"]; modelPVC != "" && want != modelPVC {
					t.Errorf("%s: serves %s, but the weights Job writes %s", where, want, modelPVC)
				}
			}

			// The signing key: a file of a Secret volume.
			m, rel := mountOf(env["GPT2D_JWT_SECRET_FILE"])
			v := volumes[getStr(m, "name")]
			if m == nil || getStr(v, "secret", "secretName") == "" {
				t.Errorf("%s: GPT2D_JWT_SECRET_FILE %q is not a file of a Secret volume", where, env["GPT2D_JWT_SECRET_FILE"])
			} else if items := getList(v, "secret", "items"); items != nil && !slices.ContainsFunc(items, func(it any) bool { return getStr(it, "path") == rel }) {
				t.Errorf("%s: GPT2D_JWT_SECRET_FILE %q: the Secret volume has no item at %s", where, env["GPT2D_JWT_SECRET_FILE"], rel)
			}

			// The Service selects these pods and targets this port.
			labels := getMap(o.doc, "spec", "template", "metadata", "labels")
			for _, s := range byKind["Service"] {
				for k, v := range getMap(s.doc, "spec", "selector") {
					if getStr(labels, k) != fmt.Sprint(v) {
						t.Errorf("%s: selector %s=%v does not select %s's pods", s, k, v, o)
					}
				}
				for _, sp := range getList(s.doc, "spec", "ports") {
					tp := getStr(sp, "targetPort")
					if n, err := strconv.Atoi(tp); (err == nil && n != port) || (err != nil && ports[tp] != port) {
						t.Errorf("%s: targetPort %q is not gpt2d's port %d", s, tp, port)
					}
				}
			}
			for _, p := range byKind["PodDisruptionBudget"] {
				for k, v := range getMap(p.doc, "spec", "selector", "matchLabels") {
					if getStr(labels, k) != fmt.Sprint(v) {
						t.Errorf("%s: selector %s=%v does not select %s's pods", p, k, v, o)
					}
				}
			}
		}
	}
	if servePods == 0 {
		t.Fatal("deploy/k8s: no container runs gpt2d serve")
	}
	if modelPVC == "" {
		t.Error("deploy/k8s: no Job converts the model into a volume")
	}
	if _, ok := byKind["Job"]["gpt2d-migrate"]; !ok {
		t.Error("deploy/k8s: no migration Job")
	} else if args := strList(getList(byKind["Job"]["gpt2d-migrate"].doc, "spec", "template", "spec", "containers", "0", "args")); !slices.Equal(args, []string{"store", "migrate"}) {
		t.Errorf("gpt2d-migrate runs %q, want store migrate", args)
	}

	// Ingress backends are Services and their ports.
	for _, ing := range byKind["Ingress"] {
		ingressBackends(ing.doc, func(svc, port string) {
			s, ok := byKind["Service"][svc]
			if !ok {
				t.Errorf("%s: backend Service %s does not exist", ing, svc)
				return
			}
			if !slices.ContainsFunc(getList(s.doc, "spec", "ports"), func(p any) bool {
				return getStr(p, "name") == port || getStr(p, "port") == port
			}) {
				t.Errorf("%s: backend port %s is not a port of %s", ing, port, s)
			}
		})
	}
}

func ingressBackends(doc map[string]any, f func(svc, port string)) {
	for _, r := range getList(doc, "spec", "rules") {
		for _, p := range getList(r, "http", "paths") {
			svc := getMap(p, "backend", "service")
			port := getStr(svc, "port", "name")
			if port == "" {
				port = getStr(svc, "port", "number")
			}
			f(getStr(svc, "name"), port)
		}
	}
}
