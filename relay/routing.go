package relay

import "fmt"

// Routing picks a Route for a registration: the first of Routes whose
// Match holds, else Default. It is built whole from one config and never
// changed, so that a reload swaps it for another at once.
type Routing struct {
	Default *Route
	Routes  []*Route
}

// Match is the route reg takes.
func (r *Routing) Match(reg Registration) *Route {
	for _, route := range r.Routes {
		if _, ok := route.Match.Check(reg); ok {
			return route
		}
	}
	return r.Default
}

// Explain says, route by route, why reg does or does not match, ending
// with the route it takes: what `relay route` prints.
func (r *Routing) Explain(reg Registration) (*Route, []string) {
	var lines []string
	for _, route := range r.Routes {
		why, ok := route.Match.Check(reg)
		if ok {
			return route, append(lines, fmt.Sprintf("%s: matches: %s", route.Name, why))
		}
		lines = append(lines, fmt.Sprintf("%s: no: %s", route.Name, why))
	}
	return r.Default, append(lines, DefaultRoute+": no route matched, so the top-level settings apply")
}

// Named is the route called name.
func (r *Routing) Named(name string) (*Route, bool) {
	for _, route := range r.All() {
		if route.Name == name {
			return route, true
		}
	}
	return nil, false
}

// All is the default route and then the others, in order.
func (r *Routing) All() []*Route {
	return append([]*Route{r.Default}, r.Routes...)
}

// Destination is the staff destination called name, for a digest gathered
// before a reload; false when no route posts there any more.
func (r *Routing) Destination(name string) (Destination, bool) {
	for _, route := range r.All() {
		for _, d := range []Destination{route.Slack, route.Teams} {
			if d.Name == name && name != "" {
				return d, true
			}
		}
	}
	return Destination{}, false
}
