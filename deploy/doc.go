// Package deploy holds what runs the relay on a cluster rather than on one
// machine: Kubernetes manifests (kubernetes/), Prometheus alert rules and
// their scrape job (prometheus/) and a Grafana dashboard (grafana/). It has
// no code; its tests hold those files to the relay itself: its settings,
// its ports and paths, its image and the series its /metrics exposes.
package deploy
