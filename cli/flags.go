package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// flags is a command's flag set. Each flag is declared with the KCK_*
// variable that sets it (or none): the variable gives its default, its
// usage names it, and a config file does not override it. What the config
// file may set is what the command table's flag sets declare
// (allFlagNames).
type flags struct {
	*flag.FlagSet
	env map[string]string // flag name: its variable
	// envErrs are KCK_* variables whose value the flag cannot take: parse
	// fails with them, as with a bad flag (never a silent default).
	envErrs []error
}

func newFlags(name string, out io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &flags{FlagSet: fs, env: map[string]string{}}
}

// usage is u with the variable named, as every command's help shows it.
func (f *flags) usage(name, env, u string) string {
	if env == "" {
		return u
	}
	f.env[name] = env
	return u + " (" + env + ")"
}

func (f *flags) str(p *string, name, env, def, usage string) {
	f.StringVar(p, name, envOr(env, def), f.usage(name, env, usage))
}

func (f *flags) int(p *int, name, env string, def int, usage string) {
	f.IntVar(p, name, envParsed(f, env, def, strconv.Atoi, "a whole number"), f.usage(name, env, usage))
}

func (f *flags) float(p *float64, name, env string, def float64, usage string) {
	f.Float64Var(p, name, envParsed(f, env, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }, "a number"), f.usage(name, env, usage))
}

func (f *flags) dur(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.DurationVar(p, name, envParsed(f, env, def, time.ParseDuration, "a duration such as 30s or 2m"), f.usage(name, env, usage))
}

func (f *flags) bool(p *bool, name, env string, def bool, usage string) {
	f.BoolVar(p, name, envParsed(f, env, def, strconv.ParseBool, "true or false"), f.usage(name, env, usage))
}

// envParsed is the variable env parsed by parse, or def when it is unset;
// a value parse refuses is recorded for flags.parse to report, saying
// what was wanted.
func envParsed[T any](f *flags, env string, def T, parse func(string) (T, error), want string) T {
	raw := envOr(env, "")
	if raw == "" {
		return def
	}
	v, err := parse(raw)
	if err != nil {
		f.envErrs = append(f.envErrs, fmt.Errorf("%s=%q: want %s", env, raw, want))
		return def
	}
	return v
}

// value declares a flag whose value already holds what its variable says.
func (f *flags) value(v flag.Value, name, env, usage string) {
	f.Var(v, name, f.usage(name, env, usage))
}

func envOr(name, def string) string {
	if name == "" {
		return def
	}
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envList(name string) []string {
	var h hostList
	_ = h.Set(envOr(name, ""))
	return h
}

// hostList is a comma-separated flag.
type hostList []string

func (h *hostList) String() string { return strings.Join(*h, ",") }
func (h *hostList) Set(s string) error {
	*h = nil
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*h = append(*h, p)
		}
	}
	return nil
}

// repeatList is a flag given several times (or comma-separated): its first
// use replaces the value from the environment, later ones add to it. (So
// the command line adds to a config file's list: both arrive through Set.)
type repeatList struct {
	vals    *[]string
	fromEnv bool
}

func (l *repeatList) String() string {
	if l.vals == nil {
		return ""
	}
	return strings.Join(*l.vals, ",")
}

func (l *repeatList) Set(s string) error {
	if l.fromEnv {
		*l.vals, l.fromEnv = nil, false
	}
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.vals = append(*l.vals, p)
		}
	}
	return nil
}

// A config file (--config FILE or KCK_CONFIG) sets flags by name, one YAML
// mapping of flag names to values, shared by every command:
//
//	addr: ":8080"
//	store: cassandra
//	cassandra-hosts: [10.0.0.1, 10.0.0.2]
//	compute-lease: 45s
//
// A flag given on the command line wins over its KCK_* variable, which wins
// over the file, which wins over the default. A command takes the settings
// it has and leaves the others (the file is shared); a name no command
// knows is an error, so that a typo is not silently ignored.

// parse applies the config file named in args or KCK_CONFIG, then parses
// args.
func (f *flags) parse(args []string) error {
	if f.Lookup("config") == nil {
		f.String("config", os.Getenv("KCK_CONFIG"), "YAML file of settings by flag name; flags and KCK_* variables win over it (KCK_CONFIG)")
	}
	// Help needs no settings.
	help := slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
	if err := errors.Join(f.envErrs...); err != nil && !help {
		fmt.Fprintf(f.Output(), "kck %s: %v\n", f.Name(), err)
		return saidError{err}
	}
	if path := configPath(args); path != "" && !help {
		if err := f.applyConfig(path); err != nil {
			// Said here, as the flag package says a bad flag.
			fmt.Fprintf(f.Output(), "kck %s: %v\n", f.Name(), err)
			return saidError{err}
		}
	}
	return f.Parse(args)
}

// saidError is an error already written to the command's output.
type saidError struct{ error }

func (e saidError) Unwrap() error { return e.error }

// parseCode is the exit code of a failed parse: 0 after --help, 2 for a
// usage error (already said).
func parseCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// configPath finds --config in args (before the flags are parsed: the file
// must be applied first so that flags override it), else KCK_CONFIG.
func configPath(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return os.Getenv("KCK_CONFIG")
}

func (f *flags) applyConfig(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	settings, err := parseConfig(b)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var known map[string]bool
	for _, s := range settings {
		if f.Lookup(s.name) == nil {
			if known == nil {
				known = allFlagNames()
			}
			if !known[s.name] {
				return fmt.Errorf("config %s:%d: no setting %q (settings are flag names: kck serve --help)", path, s.line, s.name)
			}
			continue // another command's
		}
		if env := f.env[s.name]; env != "" && os.Getenv(env) != "" {
			continue // the variable wins, and is already the flag's default
		}
		if err := f.Set(s.name, s.value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, s.line, s.name, err)
		}
	}
	return nil
}

// allFlagNames is every flag of every command, from the command table.
func allFlagNames() map[string]bool {
	names := map[string]bool{"config": true}
	for _, c := range commands() {
		f := newFlags(c.name, io.Discard)
		c.flags(f)
		f.VisitAll(func(fl *flag.Flag) { names[fl.Name] = true })
	}
	return names
}

type setting struct {
	name, value string
	line        int
}

// parseConfig reads a mapping of names to scalars or lists of scalars
// (joined with commas, as list flags take them).
func parseConfig(b []byte) ([]setting, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: want a mapping of setting names to values", m.Line)
	}
	var out []setting
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a setting name must be a string", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: %s is set twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		var val string
		switch v.Kind {
		case yaml.ScalarNode:
			val = v.Value
		case yaml.SequenceNode:
			parts := make([]string, 0, len(v.Content))
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("line %d: %s: a list of plain values only", e.Line, k.Value)
				}
				parts = append(parts, e.Value)
			}
			val = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("line %d: %s: want a value or a list of values", v.Line, k.Value)
		}
		out = append(out, setting{name: k.Value, value: val, line: k.Line})
	}
	return out, nil
}
