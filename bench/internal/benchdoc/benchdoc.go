// Package benchdoc is what the benchmark programs under bench/cmd share to
// write their figures: the machine's load average, and a section of
// bench/README.md replaced between its markers.
package benchdoc

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// LoadAvg is the machine's 1-, 5- and 15-minute load averages
// ("unknown" when /proc does not say).
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Splice replaces what is between the markers begin and end in file with
// md; the markers stay.
func Splice(file, begin, end, md string) error {
	old, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section", file, begin, end)
	}
	var out bytes.Buffer
	out.Write(old[:i+len(begin)])
	out.WriteString("\n")
	out.WriteString(md)
	out.Write(old[j:])
	return os.WriteFile(file, out.Bytes(), 0o644)
}
