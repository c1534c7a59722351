package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

// TestKubernetesManifestsDecodeStrictly decodes every manifest into the
// Kubernetes API's own Go types, refusing unknown fields (as kubectl's
// client-side validation does): a misspelt or misplaced field, a value of
// the wrong type or a malformed quantity fails here rather than at
// `kubectl apply`. The Kustomization is not an API object and is checked
// by TestKubernetesManifestsMatchTheBinary.
func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	types := map[string]func() any{
		"Deployment":            func() any { return new(appsv1.Deployment) },
		"Job":                   func() any { return new(batchv1.Job) },
		"Service":               func() any { return new(corev1.Service) },
		"Secret":                func() any { return new(corev1.Secret) },
		"PersistentVolumeClaim": func() any { return new(corev1.PersistentVolumeClaim) },
		"PodDisruptionBudget":   func() any { return new(policyv1.PodDisruptionBudget) },
		"Ingress":               func() any { return new(networkingv1.Ingress) },
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	decoded := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			if meta.Kind == "Kustomization" {
				continue
			}
			newObj, ok := types[meta.Kind]
			if !ok {
				t.Errorf("%s document %d: kind %q is not one this test knows", f, i+1, meta.Kind)
				continue
			}
			if err := yaml.UnmarshalStrict(doc, newObj()); err != nil {
				t.Errorf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
			}
			decoded++
		}
	}
	if decoded == 0 {
		t.Fatal("no Kubernetes manifest decoded")
	}
}
