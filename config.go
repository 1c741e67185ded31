package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

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

// parseFlags applies the config file named in args or KCK_CONFIG to fs,
// then parses args.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if fs.Lookup("config") == nil {
		fs.String("config", os.Getenv("KCK_CONFIG"), "YAML file of settings by flag name; flags and KCK_* variables win over it (KCK_CONFIG)")
	}
	// Help needs no settings (and flagNamesOf asks every command for it).
	help := slices.ContainsFunc(args, func(a string) bool { return a == "-h" || a == "-help" || a == "--help" })
	if path := configPath(args); path != "" && !help {
		if err := applyConfig(fs, path); err != nil {
			// Said here, as the flag package says a bad flag.
			fmt.Fprintf(fs.Output(), "kck %s: %v\n", fs.Name(), err)
			return saidError{err}
		}
	}
	return fs.Parse(args)
}

// saidError is an error already written to the command's output.
type saidError struct{ error }

func (e saidError) Unwrap() error { return e.error }

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

var envInUsage = regexp.MustCompile(`\((KCK_[A-Z0-9_]+)\)`)

func applyConfig(fs *flag.FlagSet, path string) error {
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
		f := fs.Lookup(s.name)
		if f == nil {
			if known == nil {
				known = allFlagNames()
			}
			if !known[s.name] {
				return fmt.Errorf("config %s:%d: no setting %q (settings are flag names: kck serve --help)", path, s.line, s.name)
			}
			continue // another command's
		}
		if m := envInUsage.FindStringSubmatch(f.Usage); m != nil && os.Getenv(m[1]) != "" {
			continue // the variable wins, and is already the flag's default
		}
		if err := fs.Set(s.name, s.value); err != nil {
			return fmt.Errorf("config %s:%d: %s: %w", path, s.line, s.name, err)
		}
	}
	return nil
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

// runForHelp is run, set at init: the command table refers to the
// commands, which reach this file, so a direct call would be an
// initialization cycle.
var (
	runForHelp   func(args []string, stdout, stderr io.Writer) int
	commandNames []string
)

func init() {
	runForHelp = run
	for _, c := range commands {
		commandNames = append(commandNames, c.name)
	}
}

// allFlagNames is every flag of every command, from their flag sets.
func allFlagNames() map[string]bool {
	names := map[string]bool{"config": true}
	for _, name := range commandNames {
		args := []string{name}
		if name == "demo" {
			args = append(args, "load") // its flags follow the subcommand
		}
		for _, n := range flagNamesOf(args) {
			names[n] = true
		}
	}
	return names
}

// flagNamesOf runs a command with --help and reads the flags its usage
// lists: usage is where every command's flags are declared, so the names a
// config file may use cannot drift from them.
func flagNamesOf(args []string) []string {
	var out strings.Builder
	_ = runForHelp(append(args, "--help"), io.Discard, &out)
	var names []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "  -") {
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "  -"), " ")
			names = append(names, name)
		}
	}
	return names
}
