package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// envFlags is a flag set whose every flag also reads an environment
// variable: the flag wins over the variable, the variable over the default.
// Help output names both, so `rdev serve --help` is the configuration
// reference.
type envFlags struct {
	*flag.FlagSet
	getenv func(string) string
	errs   []error
}

func newEnvFlags(name string, getenv func(string) string, out io.Writer) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &envFlags{FlagSet: fs, getenv: getenv}
}

func (f *envFlags) usage(env, usage string) string {
	if env == "" {
		return usage
	}
	return usage + " (env " + env + ")"
}

func (f *envFlags) lookup(env string) (string, bool) {
	if env == "" {
		return "", false
	}
	v := f.getenv(env)
	return v, v != ""
}

// String defines a string flag backed by env. Help shows its default
// with any password in it redacted (a database URL's userinfo, a
// password=… setting).
func (f *envFlags) String(p *string, name, env, def, usage string) {
	if v, ok := f.lookup(env); ok {
		def = v
	}
	f.StringVar(p, name, def, f.usage(env, usage))
	f.Lookup(name).DefValue = redactSecrets(def)
}

// Secret defines a string flag backed by env whose value is a secret (an
// API key, a signing key): help never shows it, only where it comes from.
func (f *envFlags) Secret(p *string, name, env, usage string) {
	v, ok := f.lookup(env)
	if !ok {
		f.StringVar(p, name, "", f.usage(env, usage))
		return
	}
	f.StringVar(p, name, "", usage+" (from "+env+", not shown)")
	*p = v
}

// passwordSetting is a password in a key=value connection string.
var passwordSetting = regexp.MustCompile(`(?i)(password\s*=\s*)('[^']*'|[^\s&]+)`)

// redactSecrets hides the password of a URL with userinfo
// (postgres://u:pw@h → postgres://u:xxxxx@h), in a URL's query
// (?password=pw) and in a key=value connection string (password=pw).
func redactSecrets(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		s = u.Redacted()
	}
	return passwordSetting.ReplaceAllString(s, "${1}xxxxx")
}

// Int defines an int flag backed by env.
func (f *envFlags) Int(p *int, name, env string, def int, usage string) {
	f.IntVar(p, name, envValue(f, env, def, strconv.Atoi, "an integer"), f.usage(env, usage))
}

// Bool defines a bool flag backed by env.
func (f *envFlags) Bool(p *bool, name, env string, def bool, usage string) {
	f.BoolVar(p, name, envValue(f, env, def, strconv.ParseBool, "true or false"), f.usage(env, usage))
}

// Float defines a float64 flag backed by env.
func (f *envFlags) Float(p *float64, name, env string, def float64, usage string) {
	parse := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
	f.Float64Var(p, name, envValue(f, env, def, parse, "a number"), f.usage(env, usage))
}

// Duration defines a duration flag backed by env.
func (f *envFlags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.DurationVar(p, name, envValue(f, env, def, time.ParseDuration, "a duration such as 30s or 5m"), f.usage(env, usage))
}

// envValue parses env's value, or returns def if it is unset. A value that
// does not parse is recorded for Parse to report, naming want.
func envValue[T any](f *envFlags, env string, def T, parse func(string) (T, error), want string) T {
	v, ok := f.lookup(env)
	if !ok {
		return def
	}
	x, err := parse(v)
	if err != nil {
		f.errs = append(f.errs, fmt.Errorf("%s: %q is not %s", env, v, want))
		return def
	}
	return x
}

// List defines a comma-separated list flag backed by env.
func (f *envFlags) List(p *[]string, name, env, usage string) {
	if v, ok := f.lookup(env); ok {
		*p = splitList(v)
	}
	f.Func(name, f.usage(env, usage+" (comma-separated)"), func(s string) error {
		*p = splitList(s)
		return nil
	})
}

// Parse parses args and reports bad environment values first.
func (f *envFlags) Parse(args []string) error {
	if err := f.FlagSet.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError(err.Error())
	}
	return errors.Join(f.errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
