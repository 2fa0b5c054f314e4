package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Rate is how many emails a mail provider takes per second, minute or
// hour, written "14/s", "30/m" or "500/h". The zero Rate is no limit.
type Rate struct {
	N   int
	Per time.Duration
}

var ratePeriods = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// ParseRate reads "N/s", "N/m" or "N/h"; "" is no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Rate{}, nil
	}
	count, unit, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(strings.TrimSpace(count))
	per, known := ratePeriods[strings.TrimSpace(unit)]
	if !ok || err != nil || n < 1 || !known {
		return Rate{}, fmt.Errorf("%q is not a rate such as 14/s, 30/m or 500/h", s)
	}
	return Rate{N: n, Per: per}, nil
}

// String is the rate as ParseRate reads it.
func (r Rate) String() string {
	if r.N == 0 {
		return ""
	}
	for unit, per := range ratePeriods {
		if per == r.Per {
			return fmt.Sprintf("%d/%s", r.N, unit)
		}
	}
	return fmt.Sprintf("%d per %v", r.N, r.Per)
}

func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*r = v
	return nil
}
