package config

import (
	"net/url"
	"strings"
)

// withPassword returns dsn with password as its password, in the form the
// DSN is written in: the URL's user info (percent-encoded), or a quoted
// password=... pair. Any character is allowed in the password. An empty
// password, or a DSN that is neither form, leaves dsn as it is (libpq's
// PGPASSWORD and ~/.pgpass then apply).
func withPassword(dsn, password string) string {
	if password == "" || dsn == "" {
		return dsn
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return dsn
		}
		u.User = url.UserPassword(u.User.Username(), password)
		return u.String()
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return strings.TrimRight(dsn, " ") + " password='" + r.Replace(password) + "'"
}

// dsnHasPassword reports whether dsn carries a password of its own: in a
// URL's user info or password parameter, or a password=... pair.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return false
		}
		_, set := u.User.Password()
		return set || u.Query().Has("password")
	}
	return kvPasswordRe.MatchString(dsn)
}
