package postgres

import (
	"errors"
	"regexp"
)

var (
	urlPasswordRE = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
	kvPasswordRE  = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)
)

// Redact removes anything that looks like a password from a message.
func Redact(msg string) string {
	msg = urlPasswordRE.ReplaceAllString(msg, "${1}:xxxxx@")
	return kvPasswordRE.ReplaceAllString(msg, "${1}xxxxx")
}

// redact removes anything that looks like a password from an error,
// keeping the chain when there is nothing to remove.
func redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := Redact(msg); clean != msg {
		return errors.New(clean)
	}
	return err
}
