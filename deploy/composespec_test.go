package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// composeSpecSchema is the Compose Specification's JSON schema
// (github.com/compose-spec/compose-spec, schema/compose-spec.json at
// 170098ba07d9, Apache-2.0: testdata/compose-spec.LICENSE), the schema
// `docker compose` itself validates files with.
const composeSpecSchema = "testdata/compose-spec.json"

// TestComposeFileFollowsTheComposeSpecification validates compose.yaml
// against the Compose Specification's schema: unknown or misplaced keys
// and values of the wrong type, which the other tests, reading only what
// they look for, would not notice.
func TestComposeFileFollowsTheComposeSpecification(t *testing.T) {
	f, err := os.Open(composeSpecSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	schemaDoc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", composeSpecSchema, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("compose-spec.json", schemaDoc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("compose-spec.json")
	if err != nil {
		t.Fatalf("compile %s: %v", composeSpecSchema, err)
	}

	// YAML (merge keys resolved) → JSON values, as Compose sees the file.
	b, err := os.ReadFile(composeYAML)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", composeYAML, err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: %v", composeYAML, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	if err := schema.Validate(inst); err != nil {
		t.Errorf("%s does not follow the Compose Specification:\n%v", composeYAML, err)
	}
}
