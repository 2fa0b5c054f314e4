package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/exam-relay/relay/config"
	"github.com/exam-relay/relay/relay/webhook"
	"github.com/exam-relay/relay/templates"
)

const manifestDir = "kubernetes"

// kinds are the Kubernetes types a manifest may hold, by apiVersion and
// kind. A kind not listed here fails the test: add its type, so that it is
// checked like the others.
var kinds = map[string]func() metav1.Object{
	"v1 Namespace":                  func() metav1.Object { return &corev1.Namespace{} },
	"v1 ConfigMap":                  func() metav1.Object { return &corev1.ConfigMap{} },
	"v1 Secret":                     func() metav1.Object { return &corev1.Secret{} },
	"v1 Service":                    func() metav1.Object { return &corev1.Service{} },
	"apps/v1 StatefulSet":           func() metav1.Object { return &appsv1.StatefulSet{} },
	"apps/v1 Deployment":            func() metav1.Object { return &appsv1.Deployment{} },
	"policy/v1 PodDisruptionBudget": func() metav1.Object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1 Ingress":  func() metav1.Object { return &networkingv1.Ingress{} },
}

// manifest is one document of a file under kubernetes/, decoded.
type manifest struct {
	file string
	obj  metav1.Object
}

var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeManifests decodes every document of every .yaml file in dir,
// strictly: a field the Kubernetes type does not have, a value of the
// wrong type or a quantity that does not parse is an error.
func decodeManifests(dir string) ([]manifest, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var ms []manifest
	for _, path := range files {
		if filepath.Base(path) == kustomizationFile {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		docs, err := decodeDocuments(filepath.Base(path), b)
		if err != nil {
			return nil, err
		}
		ms = append(ms, docs...)
	}
	return ms, nil
}

func decodeDocuments(file string, b []byte) ([]manifest, error) {
	var ms []manifest
	for i, doc := range documentSeparator.Split(string(b), -1) {
		if js, err := yaml.YAMLToJSON([]byte(doc)); err == nil && string(js) == "null" {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s, document %d: %v", file, i+1, err)
		}
		newObject := kinds[tm.APIVersion+" "+tm.Kind]
		if newObject == nil {
			return nil, fmt.Errorf("%s, document %d: kind %q of %q is not one this test knows; add its type to kinds", file, i+1, tm.Kind, tm.APIVersion)
		}
		obj := newObject()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s, document %d (%s): %v", file, i+1, tm.Kind, err)
		}
		ms = append(ms, manifest{file: file, obj: obj})
	}
	return ms, nil
}

func loadManifests(t *testing.T) []manifest {
	t.Helper()
	ms, err := decodeManifests(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatalf("no manifests in %s", manifestDir)
	}
	return ms
}

// lookup is the object of type T named name.
func lookup[T metav1.Object](t *testing.T, ms []manifest, name string) T {
	t.Helper()
	for _, m := range ms {
		if o, ok := m.obj.(T); ok && o.GetName() == name {
			return o
		}
	}
	var zero T
	t.Fatalf("no %T named %q in %s", zero, name, manifestDir)
	return zero
}

func all[T metav1.Object](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

func TestManifestsDecodeStrictlyIntoKubernetesTypes(t *testing.T) {
	ms := loadManifests(t)
	namespaces := all[*corev1.Namespace](ms)
	if len(namespaces) != 1 {
		t.Fatalf("%d Namespaces, want the relay's one", len(namespaces))
	}
	ns := namespaces[0]
	if got := ns.Labels["pod-security.kubernetes.io/enforce"]; got != "restricted" {
		t.Errorf("namespace %s enforces Pod Security %q, want restricted", ns.Name, got)
	}
	seen := map[string]string{}
	for _, m := range ms {
		key := kindOf(m.obj) + "/" + m.obj.GetName()
		if first, dup := seen[key]; dup {
			t.Errorf("%s: %s is also in %s", m.file, key, first)
		}
		seen[key] = m.file
		if _, isNamespace := m.obj.(*corev1.Namespace); !isNamespace && m.obj.GetNamespace() != ns.Name {
			t.Errorf("%s: %s is in namespace %q, want %q", m.file, key, m.obj.GetNamespace(), ns.Name)
		}
	}

	k := readKustomization(t)
	if k.Namespace != ns.Name {
		t.Errorf("%s: namespace %q, want %q", kustomizationFile, k.Namespace, ns.Name)
	}
	// Every manifest is applied, except the example Secret: applying it
	// would overwrite the real one with placeholders.
	files, _ := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	var want []string
	for _, f := range files {
		name := filepath.Base(f)
		if name != kustomizationFile && !strings.HasSuffix(name, ".example.yaml") {
			want = append(want, name)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("%s lists resources %q, want every manifest but the examples: %q", kustomizationFile, got, want)
	}
	for _, m := range ms {
		if _, isSecret := m.obj.(*corev1.Secret); isSecret && slices.Contains(k.Resources, m.file) {
			t.Errorf("%s lists %s, which holds a Secret: kubectl apply -k would overwrite the real one", kustomizationFile, m.file)
		}
	}
}

// TestStrictDecodingCatchesTypos shows the decoding above can fail: a
// misspelt field and a malformed quantity in a copy of serve.yaml.
func TestStrictDecodingCatchesTypos(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(manifestDir, "serve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeDocuments("serve.yaml", b); err != nil {
		t.Fatalf("serve.yaml as it is: %v", err)
	}
	for _, typo := range []struct{ from, to string }{
		{"readinessProbe:", "readinesProbe:"},
		{"memory: 64Mi", "memory: 64MB"},
		{"runAsNonRoot: true", "runAsNonRoot: yes please"},
		{"kind: StatefulSet", "kind: StatefullSet"},
	} {
		if !bytes.Contains(b, []byte(typo.from)) {
			t.Fatalf("serve.yaml has no %q to spoil", typo.from)
		}
		spoilt := bytes.Replace(b, []byte(typo.from), []byte(typo.to), 1)
		if _, err := decodeDocuments("serve.yaml", spoilt); err == nil {
			t.Errorf("%q for %q decodes without an error", typo.to, typo.from)
		} else {
			t.Logf("%q: %v", typo.to, err)
		}
	}
}

const kustomizationFile = "kustomization.yaml"

type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Namespace  string           `json:"namespace"`
	Resources  []string         `json:"resources"`
	Images     []kustomizeImage `json:"images"`
}

type kustomizeImage struct {
	Name    string `json:"name"`
	NewName string `json:"newName"`
	NewTag  string `json:"newTag"`
}

func readKustomization(t *testing.T) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(manifestDir, kustomizationFile))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("%s: %v", kustomizationFile, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", kustomizationFile, k.APIVersion, k.Kind)
	}
	return k
}

// image is what the repository's Dockerfile builds: its entrypoint, and
// the user it runs as, who owns the spool folder it makes.
type image struct {
	entrypoint string
	uid, gid   int64
	spoolDir   string
}

func readDockerfile(t *testing.T) image {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	entrypoint := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindSubmatch(b)
	chown := regexp.MustCompile(`(?m)^COPY --from=build --chown=(\d+):(\d+) \S+ (\S+)$`).FindSubmatch(b)
	user := regexp.MustCompile(`(?m)^USER (\S+)$`).FindSubmatch(b)
	if entrypoint == nil || chown == nil || user == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT [\"…\"], COPY --chown=UID:GID of the spool, or USER: this test reads them")
	}
	img := image{entrypoint: string(entrypoint[1]), spoolDir: string(chown[3])}
	img.uid, _ = strconv.ParseInt(string(chown[1]), 10, 64)
	img.gid, _ = strconv.ParseInt(string(chown[2]), 10, 64)
	// distroless's nonroot user is 65532: the one that owns the spool.
	if string(user[1]) != "nonroot" || img.uid != 65532 {
		t.Fatalf("the Dockerfile runs as %s and gives the spool to uid %d: update this test and the manifests together", user[1], img.uid)
	}
	return img
}

// relayPod is a workload that runs the relay image.
type relayPod struct {
	workload string // StatefulSet/relay-serve
	command  string // serve, work
	meta     metav1.ObjectMeta
	spec     corev1.PodSpec
	relay    corev1.Container
	// claims are the StatefulSet's per-pod volumes, by name.
	claims map[string]corev1.PersistentVolumeClaim
	// cfg is the relay's config as the pod gives it: the ConfigMap's
	// file and the environment, loaded by the relay's own loader.
	cfg config.Config
}

// relayImage is the image name the manifests use and kustomization.yaml
// points at the registry.
const relayImage = "exam-relay"

func relayPods(t *testing.T, ms []manifest) []relayPod {
	t.Helper()
	var pods []relayPod
	add := func(workload string, tmpl corev1.PodTemplateSpec, claims []corev1.PersistentVolumeClaim) {
		for _, c := range tmpl.Spec.Containers {
			if c.Image != relayImage {
				continue
			}
			p := relayPod{workload: workload, meta: tmpl.ObjectMeta, spec: tmpl.Spec, relay: c, claims: map[string]corev1.PersistentVolumeClaim{}}
			if len(c.Args) > 0 {
				p.command = c.Args[0]
			}
			for _, claim := range claims {
				p.claims[claim.Name] = claim
			}
			p.cfg = podConfig(t, ms, p)
			pods = append(pods, p)
		}
	}
	for _, s := range all[*appsv1.StatefulSet](ms) {
		add("StatefulSet/"+s.Name, s.Spec.Template, s.Spec.VolumeClaimTemplates)
	}
	for _, d := range all[*appsv1.Deployment](ms) {
		add("Deployment/"+d.Name, d.Spec.Template, nil)
	}
	var commands []string
	for _, p := range pods {
		commands = append(commands, p.command)
	}
	if slices.Sort(commands); !slices.Equal(commands, []string{"serve", "work"}) {
		t.Fatalf("the manifests run relay %q, want one workload of relay serve and one of relay work", commands)
	}
	return pods
}

func (p relayPod) String() string { return p.workload }

// configVariable is read by the command line (-config's default), not by
// config.Load, so it is not one of config.Settings.
const configVariable = "RELAY_CONFIG"

// podConfig loads the relay's config as the pod would: its ConfigMap
// volumes written to folders here, its environment with the example
// Secret's values.
func podConfig(t *testing.T, ms []manifest, p relayPod) config.Config {
	t.Helper()
	mounts := map[string]string{} // mount path in the pod → folder here
	var templateDirs []string
	for _, vm := range p.relay.VolumeMounts {
		v := volume(p.spec, vm.Name)
		if v == nil || v.ConfigMap == nil {
			continue
		}
		if len(v.ConfigMap.Items) > 0 || vm.SubPath != "" {
			t.Fatalf("%s: volume %s uses items or subPath, which this test does not follow yet", p, vm.Name)
		}
		cm := lookup[*corev1.ConfigMap](t, ms, v.ConfigMap.Name)
		dir := filepath.Join(t.TempDir(), vm.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range cm.Data {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		mounts[vm.MountPath] = dir
	}
	env := map[string]string{}
	for _, e := range p.relay.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
			for mountPath, dir := range mounts {
				if rest, ok := strings.CutPrefix(e.Value, mountPath); ok && (rest == "" || rest[0] == '/') {
					env[e.Name] = dir + rest
				}
			}
			if e.Name == "RELAY_TEMPLATES_DIR" {
				templateDirs = append(templateDirs, env[e.Name])
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := lookup[*corev1.Secret](t, ms, ref.Name).StringData[ref.Key]
			if !ok {
				t.Fatalf("%s: %s comes from key %s of Secret %s, which secret.example.yaml does not have", p, e.Name, ref.Key, ref.Name)
			}
			env[e.Name] = v
		default:
			t.Fatalf("%s: %s comes from something other than a value or a Secret", p, e.Name)
		}
	}
	cfg, err := config.Load(env[configVariable], func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("%s: the relay would not start: %v", p, err)
	}
	for _, dir := range templateDirs {
		lang, err := templates.ParseLanguage(cfg.Language)
		if err != nil {
			t.Fatal(err)
		}
		set, err := templates.Load(templates.Options{Dirs: []string{dir}, Language: lang, DigestList: cfg.Slack.Digest.List})
		if err == nil {
			err = set.Check()
		}
		if err != nil {
			t.Fatalf("%s: the templates ConfigMap: %v", p, err)
		}
	}
	return cfg
}

func volume(spec corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// httpPort is the port the relay listens on, as its config says.
func httpPort(t *testing.T, p relayPod) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(p.cfg.HTTPAddr)
	if err != nil {
		t.Fatalf("%s: RELAY_HTTP_ADDR %q: %v", p, p.cfg.HTTPAddr, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("%s: RELAY_HTTP_ADDR %q has no numeric port", p, p.cfg.HTTPAddr)
	}
	return int32(n)
}

// containerPort resolves a probe's or a Service's port against c.
func containerPort(c corev1.Container, port intstr.IntOrString) int32 {
	if port.Type == intstr.Int {
		return port.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == port.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

func TestRelayPodsRunTheImageAsItIsBuilt(t *testing.T) {
	ms := loadManifests(t)
	img := readDockerfile(t)
	k := readKustomization(t)
	for _, p := range relayPods(t, ms) {
		t.Run(p.command, func(t *testing.T) {
			if len(p.relay.Command) > 0 {
				t.Errorf("command %q replaces the image's entrypoint %s; give the subcommand in args", p.relay.Command, img.entrypoint)
			}
			if !slices.ContainsFunc(k.Images, func(i kustomizeImage) bool { return i.Name == p.relay.Image && i.NewName != "" }) {
				t.Errorf("image %q has no entry in %s's images: it would be pulled under that bare name", p.relay.Image, kustomizationFile)
			}
			sc := p.spec.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Fatal("runAsNonRoot is not true")
			}
			// The kubelet cannot check the image's USER nonroot (a name)
			// against runAsNonRoot: the uid must be given.
			if sc.RunAsUser == nil || *sc.RunAsUser != img.uid || sc.RunAsGroup == nil || *sc.RunAsGroup != img.gid {
				t.Errorf("runs as %v:%v, want the image's %d:%d", deref(sc.RunAsUser), deref(sc.RunAsGroup), img.uid, img.gid)
			}
			if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("seccomp profile is not RuntimeDefault")
			}
			c := p.relay.SecurityContext
			if c == nil || c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
				t.Error("allowPrivilegeEscalation is not false")
			}
			if c == nil || c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem {
				t.Error("readOnlyRootFilesystem is not true")
			}
			if c == nil || c.Capabilities == nil || !slices.Equal(c.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(c.Capabilities.Add) > 0 {
				t.Error("capabilities: want drop [ALL] and nothing added")
			}
			if c != nil && c.Privileged != nil && *c.Privileged {
				t.Error("privileged")
			}
			// Service links put RELAY_<SERVICE>_* variables in the
			// environment: the relay's own prefix.
			if p.spec.EnableServiceLinks == nil || *p.spec.EnableServiceLinks {
				t.Error("enableServiceLinks is not false")
			}
			if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
				t.Error("automountServiceAccountToken is not false: the relay does not talk to the Kubernetes API")
			}
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func TestRelayPodsSetOnlyRelaySettingsAndKeepSecretsInTheSecret(t *testing.T) {
	ms := loadManifests(t)
	settings := map[string]config.Setting{}
	for _, s := range config.Settings {
		settings[s.Env] = s
	}
	secret := lookup[*corev1.Secret](t, ms, "relay-secrets")
	used := map[string]bool{}
	for _, p := range relayPods(t, ms) {
		for _, e := range p.relay.Env {
			s, known := settings[e.Name]
			if !known && e.Name != configVariable {
				t.Errorf("%s sets %s, which is not a relay setting (config.Settings)", p, e.Name)
				continue
			}
			if s.Secret && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s sets the secret %s in clear: take it from the Secret", p, e.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				if e.ValueFrom.SecretKeyRef.Name != secret.Name {
					t.Errorf("%s takes %s from Secret %s, want %s", p, e.Name, e.ValueFrom.SecretKeyRef.Name, secret.Name)
				}
				used[e.ValueFrom.SecretKeyRef.Key] = true
			}
		}
		if len(p.relay.EnvFrom) > 0 {
			t.Errorf("%s uses envFrom: name each variable, so that each is checked here", p)
		}
	}

	// The example Secret holds placeholders, each under the name of the
	// variable it becomes, and only what a pod uses.
	if len(secret.Data) > 0 {
		t.Error("secret.example.yaml has data: (base64): write placeholders in stringData")
	}
	for key, value := range secret.StringData {
		if _, known := settings[key]; !known {
			t.Errorf("Secret key %s is not a relay setting", key)
		}
		if !used[key] {
			t.Errorf("Secret key %s is used by no pod", key)
		}
		if !strings.Contains(value, "CHANGE") {
			t.Errorf("Secret key %s holds something other than a placeholder with CHANGE in it", key)
		}
	}

	// The ConfigMap's config file sets no secret.
	cm := lookup[*corev1.ConfigMap](t, ms, "relay-config")
	var file map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["relay.yaml"]), &file); err != nil {
		t.Fatalf("relay.yaml in ConfigMap %s: %v", cm.Name, err)
	}
	for _, s := range config.Settings {
		if s.Secret && hasKey(file, s.YAML) {
			t.Errorf("ConfigMap %s sets %s (%s) in clear: it belongs in the Secret", cm.Name, s.YAML, s.Env)
		}
	}
}

// hasKey says whether the dotted key (smtp.url) is set in m.
func hasKey(m map[string]any, key string) bool {
	head, rest, nested := strings.Cut(key, ".")
	v, ok := m[head]
	if !ok || !nested {
		return ok
	}
	sub, ok := v.(map[string]any)
	return ok && hasKey(sub, rest)
}

// httpShutdown is how long `relay serve` and `relay work` give their HTTP
// server to finish requests on SIGTERM (listenAndServe in
// cmd/relay/serve.go); a worker then lets deliveries finish for
// RELAY_SHUTDOWN_TIMEOUT.
const httpShutdown = 15 * time.Second

// shutdownMargin is what the grace period keeps beyond the longest
// orderly shutdown, for closing connections and a slow node.
const shutdownMargin = 10 * time.Second

// measuredMemory is the README's figure ("Performance"): under 50 MB per
// process under load.
var measuredMemory = resource.MustParse("50M")

func TestRelayPodsProbeListenShutDownAndKeepTheSpoolAsTheRelayDoes(t *testing.T) {
	ms := loadManifests(t)
	img := readDockerfile(t)
	for _, p := range relayPods(t, ms) {
		t.Run(p.command, func(t *testing.T) {
			port := httpPort(t, p)
			if got := containerPort(p.relay, intstr.FromString("http")); got != port {
				t.Errorf("container port http = %d, but the relay listens on %d (RELAY_HTTP_ADDR %q)", got, port, p.cfg.HTTPAddr)
			}
			// Probes: the relay's own endpoints, on its port.
			for name, probe := range map[string]*corev1.Probe{"liveness": p.relay.LivenessProbe, "readiness": p.relay.ReadinessProbe} {
				if probe == nil || probe.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", name)
					continue
				}
				if got := containerPort(p.relay, probe.HTTPGet.Port); got != port {
					t.Errorf("%s probe on port %d, but the relay listens on %d", name, got, port)
				}
			}
			if p.relay.LivenessProbe != nil && p.relay.LivenessProbe.HTTPGet != nil && p.relay.LivenessProbe.HTTPGet.Path != "/healthz" {
				// /readyz fails while Redis is away: the kubelet would
				// restart every relay for an outage it can do nothing about.
				t.Errorf("liveness probe on %s, want /healthz", p.relay.LivenessProbe.HTTPGet.Path)
			}
			wantReady := map[string]string{
				// A receiver out of the Service while Redis is away would
				// refuse webhooks it could spool; Synap does not retry.
				"serve": "/healthz",
				// A worker takes no traffic: readiness shows it reaches Redis.
				"work": "/readyz",
			}[p.command]
			if r := p.relay.ReadinessProbe; r != nil && r.HTTPGet != nil && r.HTTPGet.Path != wantReady {
				t.Errorf("readiness probe on %s, want %s", r.HTTPGet.Path, wantReady)
			}
			a := p.meta.Annotations
			if a["prometheus.io/scrape"] != "true" || a["prometheus.io/path"] != "/metrics" || a["prometheus.io/port"] != strconv.Itoa(int(port)) {
				t.Errorf("scrape annotations %v, want scrape \"true\", path /metrics, port %d", a, port)
			}

			// Shutdown: the grace period outlasts the relay's own.
			var preStop time.Duration
			if l := p.relay.Lifecycle; l != nil && l.PreStop != nil {
				if l.PreStop.Sleep == nil {
					t.Error("preStop is not a sleep: the image has no shell to run one")
				} else {
					preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
				}
			}
			need := preStop + httpShutdown
			if p.command != "serve" {
				need += time.Duration(p.cfg.Worker.ShutdownTimeout)
			}
			grace := 30 * time.Second // Kubernetes' default
			if p.spec.TerminationGracePeriodSeconds != nil {
				grace = time.Duration(*p.spec.TerminationGracePeriodSeconds) * time.Second
			}
			if grace < need+shutdownMargin {
				t.Errorf("terminationGracePeriodSeconds %v, want at least %v: preStop %v, HTTP %v, deliveries %v, margin %v",
					grace, need+shutdownMargin, preStop, httpShutdown, time.Duration(p.cfg.Worker.ShutdownTimeout), shutdownMargin)
			}
			if p.command == "serve" && preStop == 0 {
				t.Error("no preStop sleep: a webhook can arrive after the listener closes, before the endpoint leaves the Service")
			}

			// Memory: the README's measurement, with room.
			res := p.relay.Resources
			req, lim := res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory]
			if req.Cmp(measuredMemory) < 0 {
				t.Errorf("memory request %s is below the measured %s", req.String(), measuredMemory.String())
			}
			twice := measuredMemory.DeepCopy()
			twice.Add(measuredMemory)
			if lim.Cmp(twice) < 0 {
				t.Errorf("memory limit %s, want at least twice the measured %s", lim.String(), measuredMemory.String())
			}
			if _, ok := res.Requests[corev1.ResourceCPU]; !ok {
				t.Error("no CPU request")
			}

			// Writable folders: only the spool, on a volume of its own.
			var spool *corev1.VolumeMount
			for i, vm := range p.relay.VolumeMounts {
				if vm.MountPath == p.cfg.Spool.Dir {
					spool = &p.relay.VolumeMounts[i]
				} else if !vm.ReadOnly {
					t.Errorf("volume %s at %s is writable; the relay writes only its spool", vm.Name, vm.MountPath)
				}
			}
			if p.command != "serve" {
				if spool != nil {
					t.Errorf("relay %s keeps no spool, yet mounts %s at RELAY_SPOOL_DIR", p.command, spool.Name)
				}
				return
			}
			if spool == nil {
				t.Fatalf("nothing is mounted at RELAY_SPOOL_DIR %s: with a read-only root the spool cannot be written", p.cfg.Spool.Dir)
			}
			if spool.ReadOnly {
				t.Error("the spool is mounted read-only")
			}
			if spool.MountPath != img.spoolDir {
				t.Errorf("the spool is at %s, the image makes it at %s", spool.MountPath, img.spoolDir)
			}
			// One claim per pod, kept across restarts: not a pod volume
			// (shared by every replica, or gone with the pod).
			claim, ok := p.claims[spool.Name]
			if !ok {
				t.Fatalf("the spool volume %s is not one of the StatefulSet's volumeClaimTemplates", spool.Name)
			}
			if volume(p.spec, spool.Name) != nil {
				t.Errorf("volume %s is both a pod volume and a claim template", spool.Name)
			}
			if !slices.Equal(claim.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
				t.Errorf("spool claim access modes %v, want [ReadWriteOnce]: one receiver per spool", claim.Spec.AccessModes)
			}
			if sc := p.spec.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != img.gid {
				t.Errorf("fsGroup is not the image's group %d: the spool volume would not be writable", img.gid)
			}
		})
	}
}

func TestReceiversAreReachedThroughTheServiceAndKeptUpByTheBudget(t *testing.T) {
	ms := loadManifests(t)
	var serve, work relayPod
	for _, p := range relayPods(t, ms) {
		switch p.command {
		case "serve":
			serve = p
		case "work":
			work = p
		}
	}
	selects := func(selector map[string]string, p relayPod) bool {
		for k, v := range selector {
			if p.meta.Labels[k] != v {
				return false
			}
		}
		return len(selector) > 0
	}
	set := lookup[*appsv1.StatefulSet](t, ms, strings.TrimPrefix(serve.workload, "StatefulSet/"))
	svc := lookup[*corev1.Service](t, ms, set.Spec.ServiceName)
	if !selects(svc.Spec.Selector, serve) || selects(svc.Spec.Selector, work) {
		t.Errorf("Service %s selects %v: want the receivers and not the workers", svc.Name, svc.Spec.Selector)
	}
	for _, port := range svc.Spec.Ports {
		if containerPort(serve.relay, port.TargetPort) != httpPort(t, serve) {
			t.Errorf("Service %s port %s targets %s, not the relay's port", svc.Name, port.Name, port.TargetPort.String())
		}
	}
	pdbs := all[*policyv1.PodDisruptionBudget](ms)
	if len(pdbs) != 1 {
		t.Fatalf("%d PodDisruptionBudgets, want one for the receivers", len(pdbs))
	}
	pdb := pdbs[0]
	if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, serve) || selects(pdb.Spec.Selector.MatchLabels, work) || len(pdb.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("PodDisruptionBudget %s selects %v, want the receivers", pdb.Name, pdb.Spec.Selector)
	}
	replicas := int32(1)
	if set.Spec.Replicas != nil {
		replicas = *set.Spec.Replicas
	}
	if replicas < 2 {
		t.Errorf("%d receiver(s): one restart would leave Synap nobody to post to", replicas)
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget %s: want maxUnavailable 1", pdb.Name)
	}

	// The Ingress exposes the webhook, and nothing else, to Synap.
	for _, ing := range all[*networkingv1.Ingress](ms) {
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, path := range rule.HTTP.Paths {
				if path.Path != webhook.Path || path.PathType == nil || *path.PathType != networkingv1.PathTypeExact {
					t.Errorf("Ingress %s exposes %s (%v); want only %s, Exact: /metrics and the rest stay inside", ing.Name, path.Path, deref(path.PathType), webhook.Path)
				}
				b := path.Backend.Service
				if b == nil || b.Name != svc.Name || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == b.Port.Name || p.Port == b.Port.Number }) {
					t.Errorf("Ingress %s sends %s to %v, not to a port of Service %s", ing.Name, path.Path, b, svc.Name)
				}
			}
		}
	}
}

// kindOf is the Go type name of a decoded object, which is its kind.
func kindOf(obj metav1.Object) string {
	name := fmt.Sprintf("%T", obj)
	return name[strings.LastIndex(name, ".")+1:]
}
