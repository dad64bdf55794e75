package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/internal/metrics"
	"github.com/pgcdc/pgcdc/internal/opshttp"
)

// The parts of the Kubernetes objects in deploy/kubernetes that the test checks.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port name
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef *struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	Resources      struct {
		Limits map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem bool `yaml:"readOnlyRootFilesystem"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type k8sDeployment struct {
	Replicas int           `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template struct {
		Metadata struct {
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
			Containers                    []k8sContainer `yaml:"containers"`
			Volumes                       []struct {
				Name   string `yaml:"name"`
				Secret *struct {
					SecretName string `yaml:"secretName"`
				} `yaml:"secret"`
				EmptyDir *struct{} `yaml:"emptyDir"`
			} `yaml:"volumes"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type k8sPDB struct {
	MaxUnavailable *int          `yaml:"maxUnavailable"`
	MinAvailable   *int          `yaml:"minAvailable"`
	Selector       labelSelector `yaml:"selector"`
}

type k8sService struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"`
	} `yaml:"ports"`
}

const deployDir = "../../deploy/kubernetes"

// readManifests parses every file listed in kustomization.yaml (and checks that no YAML file of the
// directory is left out) and returns the objects by kind.
func readManifests(t *testing.T) map[string][]k8sObject {
	t.Helper()
	var kust struct {
		Resources []string `yaml:"resources"`
	}
	data, err := os.ReadFile(filepath.Join(deployDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &kust); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(deployDir, "*.yaml"))
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" && !slices.Contains(kust.Resources, b) {
			t.Errorf("%s is not listed in kustomization.yaml", b)
		}
	}
	out := map[string][]k8sObject{}
	for _, name := range kust.Resources {
		data, err := os.ReadFile(filepath.Join(deployDir, name))
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		for {
			var o k8sObject
			if err := dec.Decode(&o); err != nil {
				if err.Error() == "EOF" {
					break
				}
				t.Fatalf("%s: %v", name, err)
			}
			if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
				t.Fatalf("%s: an object without kind, apiVersion or name", name)
			}
			out[o.Kind] = append(out[o.Kind], o)
		}
	}
	return out
}

func decodeSpec(t *testing.T, o k8sObject, v any) {
	t.Helper()
	if err := o.Spec.Decode(v); err != nil {
		t.Fatalf("%s %s: spec: %v", o.Kind, o.Metadata.Name, err)
	}
}

var quantityRE = regexp.MustCompile(`^(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

// quantity parses a Kubernetes memory quantity into bytes.
func quantity(t *testing.T, s string) int64 {
	t.Helper()
	m := quantityRE.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("memory quantity %q not understood", s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	mult := map[string]int64{"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m[2]]
	return n * mult
}

// deploy/kubernetes runs pgcdc in step with the configuration reference and the operations endpoint:
// every PGCDC_* variable is a configuration key and together they form a valid configuration with
// durable Kafka settings; the password comes from the Secret (a mounted file or a secret reference),
// never from the ConfigMap; the probes ask the endpoint's real paths on the port metrics.listen
// names; the grace period covers kafka.shutdown_timeout; the memory limit covers
// kafka.max_in_flight_bytes as docs/operations.md sizes it; a read-only root file system leaves the
// spool directory on a writable volume; two replicas (the standby model), a disruption budget of one
// and a service over the same pods.
func TestKubernetesManifests(t *testing.T) {
	objs := readManifests(t)
	for _, kind := range []string{"Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Service"} {
		if len(objs[kind]) != 1 {
			t.Fatalf("want one %s, found %d", kind, len(objs[kind]))
		}
	}
	var dep k8sDeployment
	decodeSpec(t, objs["Deployment"][0], &dep)
	cm, secret := objs["ConfigMap"][0], objs["Secret"][0]
	secretKeys := map[string]bool{}
	for k := range secret.StringData {
		secretKeys[k] = true
	}
	for k := range secret.Data {
		secretKeys[k] = true
	}

	// Two replicas for one slot; labels that select the pods.
	if dep.Replicas < 2 {
		t.Errorf("Deployment has %d replicas, want 2 (one active, one standby)", dep.Replicas)
	}
	labels := dep.Template.Metadata.Labels
	for k, v := range dep.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("Deployment selector %s=%s does not match the pod labels %v", k, v, labels)
		}
	}
	if len(dep.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container, found %d", len(dep.Template.Spec.Containers))
	}
	c := dep.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"run"}) || c.Image == "" {
		t.Errorf("container runs %q %v, want the pgcdc image with args [run]", c.Image, c.Args)
	}

	// The configuration: ConfigMap variables plus the container's own, each a real key.
	known := config.EnvNames()
	usesCM := false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			if ef.ConfigMapRef.Name != cm.Metadata.Name {
				t.Errorf("envFrom names ConfigMap %q; the ConfigMap is %q", ef.ConfigMapRef.Name, cm.Metadata.Name)
			}
			usesCM = true
		}
		if ef.SecretRef != nil && ef.SecretRef.Name != secret.Metadata.Name {
			t.Errorf("envFrom names Secret %q; the Secret is %q", ef.SecretRef.Name, secret.Metadata.Name)
		}
	}
	if !usesCM {
		t.Error("the container does not take its configuration from the ConfigMap (envFrom)")
	}
	var env []string
	for name, v := range cm.Data {
		if !slices.Contains(known, name) {
			t.Errorf("ConfigMap variable %s is not a configuration key (config/example.yaml)", name)
		}
		env = append(env, name+"="+v)
	}
	passwordFromSecret := false
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, config.EnvPrefix) {
			continue
		}
		if !slices.Contains(known, e.Name) {
			t.Errorf("container variable %s is not a configuration key", e.Name)
		}
		v := e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name != secret.Metadata.Name || !secretKeys[ref.Key] {
				t.Errorf("%s refers to Secret %s key %s, which the Secret %s does not have", e.Name, ref.Name, ref.Key, secret.Metadata.Name)
			}
			v = "from-the-secret"
			passwordFromSecret = passwordFromSecret || e.Name == "PGCDC_POSTGRES_PASSWORD"
		}
		env = append(env, e.Name+"="+v)
	}
	// Load reads postgres.password_file: give it a local copy of the file the pod would mount.
	passwordFile := ""
	for i, kv := range env {
		if name, v, _ := strings.Cut(kv, "="); name == "PGCDC_POSTGRES_PASSWORD_FILE" {
			passwordFile = v
			local := filepath.Join(t.TempDir(), path.Base(v))
			if err := os.WriteFile(local, []byte(secret.StringData[path.Base(v)]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			env[i] = name + "=" + local
		}
	}
	cfg, err := config.Load("", env)
	if err != nil {
		t.Fatalf("the manifests' variables are not a valid configuration: %v", err)
	}
	cfg.Postgres.PasswordFile = passwordFile
	if _, ok := cm.Data["PGCDC_POSTGRES_PASSWORD"]; ok || strings.Contains(cfg.Postgres.DSN, ":"+"change-me") {
		t.Error("the ConfigMap carries the password; it belongs in the Secret")
	}

	// Mounts: the password file comes from the Secret; the spool is on a writable volume.
	volumeOf := func(name string) (secretName string, emptyDir bool) {
		for _, v := range dep.Template.Spec.Volumes {
			if v.Name == name {
				if v.Secret != nil {
					return v.Secret.SecretName, false
				}
				return "", v.EmptyDir != nil
			}
		}
		t.Fatalf("volume %s is mounted but not defined", name)
		return "", false
	}
	within := func(p, dir string) bool {
		rel, err := filepath.Rel(dir, p)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	if pf := cfg.Postgres.PasswordFile; pf != "" {
		found := false
		for _, m := range c.VolumeMounts {
			if sn, _ := volumeOf(m.Name); sn != "" && within(pf, m.MountPath) {
				found = true
				if sn != secret.Metadata.Name || !secretKeys[path.Base(pf)] {
					t.Errorf("postgres.password_file %s: mount of Secret %s, key %s; the Secret %s has %v", pf, sn, path.Base(pf), secret.Metadata.Name, secretKeys)
				}
			}
		}
		if !found {
			t.Errorf("postgres.password_file %s is not on a mounted Secret", pf)
		}
		passwordFromSecret = found
	}
	if !passwordFromSecret {
		t.Error("the password comes from neither a mounted Secret (PGCDC_POSTGRES_PASSWORD_FILE) nor a secretKeyRef (PGCDC_POSTGRES_PASSWORD)")
	}
	if c.SecurityContext.ReadOnlyRootFilesystem {
		spool := cfg.Postgres.SpoolDir
		if spool == "" {
			spool = config.DefaultSpoolDir(cfg.Postgres.Slot)
		}
		writable := false
		for _, m := range c.VolumeMounts {
			if _, empty := volumeOf(m.Name); empty && !m.ReadOnly && within(spool, m.MountPath) {
				writable = true
			}
		}
		if !writable {
			t.Errorf("read-only root file system, but the spool directory %s is on no writable emptyDir mount", spool)
		}
	}

	// Two replicas: the standby takes over by the lease, and fences the old active one in Kafka.
	if !cfg.HA.Enabled {
		t.Error("ha.enabled is off: with two replicas a frozen active one would hold the slot until wal_sender_timeout, and nothing would fence it")
	}

	// Durable topics.
	if cfg.Kafka.ReplicationFactor < 3 || cfg.Kafka.Acks != "all" {
		t.Errorf("kafka.replication_factor %d, acks %s: want 3 and all", cfg.Kafka.ReplicationFactor, cfg.Kafka.Acks)
	}
	if isr, _ := strconv.Atoi(cfg.Kafka.TopicConfig["min.insync.replicas"]); isr < 2 {
		t.Errorf("topic min.insync.replicas %q, want 2", cfg.Kafka.TopicConfig["min.insync.replicas"])
	}

	// Probes: the endpoint's real paths on the port metrics.listen names.
	if !cfg.Metrics.Enabled() {
		t.Fatal("metrics.listen is off: the probes would have nothing to ask")
	}
	_, listenPort, _ := strings.Cut(cfg.Metrics.Listen, ":")
	portOf := func(p string) string {
		for _, cp := range c.Ports {
			if cp.Name == p {
				return strconv.Itoa(cp.ContainerPort)
			}
		}
		return p
	}
	handler := opshttp.Handler(metrics.New("test"))
	for _, pr := range []struct {
		name  string
		probe *k8sProbe
		path  string
		codes []int
	}{
		{"livenessProbe", c.LivenessProbe, "/healthz", []int{http.StatusOK}},
		{"readinessProbe", c.ReadinessProbe, "/readyz", []int{http.StatusOK, http.StatusServiceUnavailable}},
	} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("no %s with httpGet", pr.name)
			continue
		}
		if pr.probe.HTTPGet.Path != pr.path || portOf(pr.probe.HTTPGet.Port) != listenPort {
			t.Errorf("%s asks %s on port %s, want %s on %s (metrics.listen)", pr.name, pr.probe.HTTPGet.Path, portOf(pr.probe.HTTPGet.Port), pr.path, listenPort)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pr.probe.HTTPGet.Path, nil))
		if !slices.Contains(pr.codes, rec.Code) {
			t.Errorf("%s: the operations endpoint answers %s with %d", pr.name, pr.probe.HTTPGet.Path, rec.Code)
		}
	}

	// Stopping and memory, as docs/operations.md sizes them.
	if grace := time.Duration(dep.Template.Spec.TerminationGracePeriodSeconds) * time.Second; grace < cfg.Kafka.ShutdownTimeout+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %s, want at least kafka.shutdown_timeout (%s) + 10 s", grace, cfg.Kafka.ShutdownTimeout)
	}
	limit := c.Resources.Limits["memory"]
	if limit == "" {
		t.Error("no memory limit")
	} else {
		inFlight := int64(cfg.Kafka.MaxInFlightBytes)
		if need := max(2*inFlight+40<<20, inFlight+128<<20); quantity(t, limit) < need {
			t.Errorf("memory limit %s below %d MiB (kafka.max_in_flight_bytes %d MiB: twice it plus 40 MiB, and it plus 128 MiB)", limit, need>>20, inFlight>>20)
		}
	}

	// The disruption budget and the service cover the Deployment's pods.
	var pdb k8sPDB
	decodeSpec(t, objs["PodDisruptionBudget"][0], &pdb)
	if pdb.MaxUnavailable == nil || *pdb.MaxUnavailable != 1 || pdb.MinAvailable != nil {
		t.Error("PodDisruptionBudget: want maxUnavailable 1 (one replica at a time), no minAvailable")
	}
	for k, v := range pdb.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("PodDisruptionBudget selector %s=%s does not match the pods", k, v)
		}
	}
	var svc k8sService
	decodeSpec(t, objs["Service"][0], &svc)
	for k, v := range svc.Selector {
		if labels[k] != v {
			t.Errorf("Service selector %s=%s does not match the pods", k, v)
		}
	}
	if len(svc.Ports) != 1 || portOf(svc.Ports[0].TargetPort) != listenPort {
		t.Errorf("Service ports %+v, want the operations port %s", svc.Ports, listenPort)
	}
}
