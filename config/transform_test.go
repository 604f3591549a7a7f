package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baitoru/baitoru-cdc/connector"
)

const transformsYAML = `source:
  dsn: postgres://cdc@localhost:5432/baitoru
sns:
  region: ap-northeast-1
  topic_arn: arn:aws:sns:ap-northeast-1:123456789012:baitoru-events
tables:
  - table: public.applications
    key: [company_id]
    columns:
      - column: application_id
      - column: company_id
      - column: applicant_name
        transform: {kind: truncate, max_characters: 1}
      - column: applicant_email
        transform: {kind: hash, key_env: TEST_PII_KEY}
      - column: applicant_phone
        transform: {kind: mask, last: 4}
      - column: answers
        transform: {kind: "null"}
    attributes:
      - column: applicant_email
        name: applicant
      - column: applicant_phone
        name: phone_hash
        transform: {kind: hash, key_env: TEST_PII_KEY}
      - name: origin
        value: baitoru
`

// TestTransformsResolved loads transforms and checks what the mapper gets:
// the key read from the environment, the parameters, where each is written,
// and an attribute of a transformed column taking the column's transform.
// Without the key in the environment, the same file is an error naming it.
func TestTransformsResolved(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, []byte(transformsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_PII_KEY", "0123456789abcdef0123")
	cfg, err := LoadConnector(file)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mappings()[0]
	cols := map[string]*connector.Transform{}
	for _, c := range m.Columns {
		cols[c.Column] = c.Transform
	}
	if cols["application_id"] != nil || cols["company_id"] != nil {
		t.Errorf("untransformed columns got transforms")
	}
	if tf := cols["applicant_email"]; tf == nil || tf.Kind != connector.TransformHash || string(tf.Key) != "0123456789abcdef0123" || tf.At != file+":15: tables[0].columns[3].transform" {
		t.Errorf("hash: %+v", tf)
	}
	if tf := cols["applicant_phone"]; tf == nil || tf.Kind != connector.TransformMask || tf.Last != 4 || tf.First != 0 {
		t.Errorf("mask: %+v", tf)
	}
	if tf := cols["applicant_name"]; tf == nil || tf.Kind != connector.TransformTruncate || tf.MaxChars != 1 {
		t.Errorf("truncate: %+v", tf)
	}
	if tf := cols["answers"]; tf == nil || tf.Kind != connector.TransformNull {
		t.Errorf("null: %+v", tf)
	}
	a := m.Attributes
	if len(a) != 3 || a[0].Transform != cols["applicant_email"] || a[1].Transform == nil || a[1].Transform.Kind != connector.TransformHash ||
		a[2].Value != "baitoru" || a[2].Column != "" || a[2].Name != "origin" {
		t.Errorf("attributes: %+v", a)
	}

	os.Unsetenv("TEST_PII_KEY")
	_, err = LoadConnector(file)
	if err == nil || !strings.Contains(err.Error(), ":15: tables[0].columns[3].transform.key_env: the environment variable TEST_PII_KEY is not set") {
		t.Errorf("without the key: %v", err)
	}
}
