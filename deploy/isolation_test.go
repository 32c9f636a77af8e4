package deploy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// internalRanges are the addresses no project pod may reach: the private
// ranges a cluster's pods, services and nodes live in, and the metadata
// address that hands out a cloud node's credentials.
var internalRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.169.254/32"}

// TestManifests_ProjectIsolation checks that the example project pod is
// apart from rdev's: no volume, secret or service account of rdev's, no
// token, a restricted security context with a read-only root filesystem,
// and network policies that let it reach DNS and HTTPS on public addresses
// only, nothing internal and not the metadata address.
func TestManifests_ProjectIsolation(t *testing.T) {
	objs := append(render(t, "base"), render(t, "examples/project")...)
	var project *corev1.Pod
	var rdev *corev1.PodSpec
	var policies []*networkingv1.NetworkPolicy
	for _, o := range objs {
		switch o.GetKind() {
		case "Pod":
			if _, ok := o.GetLabels()["rdev.dev/project"]; ok {
				project = convert[corev1.Pod](t, o)
			}
		case "Deployment":
			if o.GetName() == "rdev" {
				rdev, _ = podSpec(t, o)
			}
		case "NetworkPolicy":
			policies = append(policies, convert[networkingv1.NetworkPolicy](t, o))
		}
	}
	if project == nil || rdev == nil {
		t.Fatalf("want the example project pod and rdev's Deployment; got pod %v, deployment %v", project != nil, rdev != nil)
	}

	t.Run("SecurityContext", func(t *testing.T) {
		spec := project.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("automountServiceAccountToken must be false: commands must not act as the pod's service account")
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			t.Error("the project pod must not share the node's network, PID or IPC namespace")
		}
		psc := spec.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
			psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("the pod must run as a non-root user with the RuntimeDefault seccomp profile: %+v", psc)
		}
		for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				(sc.Privileged != nil && *sc.Privileged) || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("container %s: want no privilege escalation, not privileged, a read-only root filesystem, every capability dropped; got %+v", c.Name, sc)
			}
		}
	})

	t.Run("NothingOfRdevs", func(t *testing.T) {
		spec := project.Spec
		if spec.ServiceAccountName == rdev.ServiceAccountName && spec.ServiceAccountName != "" {
			t.Errorf("the project pod runs as rdev's service account %q", spec.ServiceAccountName)
		}
		// What rdev's pod mounts and reads its secrets from.
		rdevClaims, rdevSecrets := map[string]bool{}, map[string]bool{}
		for _, v := range rdev.Volumes {
			switch {
			case v.PersistentVolumeClaim != nil:
				rdevClaims[v.PersistentVolumeClaim.ClaimName] = true
			case v.Secret != nil:
				rdevSecrets[v.Secret.SecretName] = true
			case v.HostPath != nil:
				t.Errorf("rdev's volume %s is a hostPath: a pod on the same node could share it", v.Name)
			}
		}
		for _, c := range rdev.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					rdevSecrets[e.ValueFrom.SecretKeyRef.Name] = true
				}
			}
		}
		for _, v := range spec.Volumes {
			switch {
			case v.HostPath != nil:
				t.Errorf("project volume %s is a hostPath", v.Name)
			case v.PersistentVolumeClaim != nil && rdevClaims[v.PersistentVolumeClaim.ClaimName]:
				t.Errorf("project volume %s is rdev's claim %s", v.Name, v.PersistentVolumeClaim.ClaimName)
			case v.Secret != nil && rdevSecrets[v.Secret.SecretName]:
				t.Errorf("project volume %s is rdev's secret %s", v.Name, v.Secret.SecretName)
			}
		}
		for _, c := range spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && rdevSecrets[e.ValueFrom.SecretKeyRef.Name] {
					t.Errorf("container %s reads rdev's secret %s", c.Name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			for _, f := range c.EnvFrom {
				if f.SecretRef != nil && rdevSecrets[f.SecretRef.Name] {
					t.Errorf("container %s reads rdev's secret %s", c.Name, f.SecretRef.Name)
				}
			}
		}
		if v := dataVolume(rdev); v == nil || v.EmptyDir == nil {
			t.Errorf("rdev's data directory is on volume %+v; want an emptyDir, which no other pod can mount", v)
		}
		if len(rdevSecrets) == 0 {
			t.Error("found none of rdev's secrets; the check would prove nothing")
		}
	})

	t.Run("SecretsVolume", func(t *testing.T) {
		// The project's own Secret (RDEV_SECRETS_BACKEND=kubernetes), as
		// files: optional, read-only, at the documented path, readable by
		// no one but the pod's user and group.
		want := "rdev-project-secrets-" + project.Labels["rdev.dev/project"]
		var vol *corev1.Volume
		for i, v := range project.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == want {
				vol = &project.Spec.Volumes[i]
			}
		}
		if vol == nil {
			t.Fatalf("the project pod does not mount its Secret %s", want)
		}
		if s := vol.Secret; s.Optional == nil || !*s.Optional || s.DefaultMode == nil || *s.DefaultMode&^0o440 != 0 {
			t.Errorf("volume %s: want optional, mode at most 0440; got %+v", vol.Name, s)
		}
		mounted := false
		for _, c := range project.Spec.Containers {
			for _, m := range c.VolumeMounts {
				if m.Name != vol.Name {
					continue
				}
				mounted = true
				if !m.ReadOnly || m.MountPath != "/var/run/secrets/rdev" {
					t.Errorf("container %s mounts %s at %s, read-only %v; want /var/run/secrets/rdev, read-only", c.Name, vol.Name, m.MountPath, m.ReadOnly)
				}
			}
		}
		if !mounted {
			t.Errorf("no container mounts volume %s", vol.Name)
		}
	})

	t.Run("NetworkPolicy", func(t *testing.T) {
		var ingressTyped, egressTyped, dns, https bool
		for _, np := range policies {
			sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
			if err != nil {
				t.Fatalf("NetworkPolicy %s: %v", np.Name, err)
			}
			if !sel.Matches(labels.Set(project.Labels)) {
				continue
			}
			ingressTyped = ingressTyped || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
			egressTyped = egressTyped || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			if len(np.Spec.Ingress) > 0 {
				t.Errorf("NetworkPolicy %s lets connections in to project pods: %+v", np.Name, np.Spec.Ingress)
			}
			for _, rule := range np.Spec.Egress {
				switch ports := portsOf(rule); {
				case slices.Equal(ports, []string{"TCP/53", "UDP/53"}):
					dns = true
					for _, peer := range rule.To {
						if peer.IPBlock != nil {
							t.Errorf("NetworkPolicy %s: DNS goes to addresses %s, want the cluster's DNS pods only", np.Name, peer.IPBlock.CIDR)
						}
					}
				case slices.Equal(ports, []string{"TCP/443"}):
					https = true
					checkPublicOnly(t, np.Name, rule)
				default:
					t.Errorf("NetworkPolicy %s: an egress rule allows ports %v; want DNS (53) and HTTPS (443) only", np.Name, ports)
				}
			}
		}
		if !ingressTyped || !egressTyped || !dns || !https {
			t.Errorf("project pods: ingress restricted %v, egress restricted %v, DNS allowed %v, HTTPS allowed %v; want all",
				ingressTyped, egressTyped, dns, https)
		}
	})
}

// dataVolume returns the volume that holds rdev's data directory
// (RDEV_DATA_DIR), nil if it is on none.
func dataVolume(spec *corev1.PodSpec) *corev1.Volume {
	for _, c := range spec.Containers {
		for _, e := range c.Env {
			if e.Name != "RDEV_DATA_DIR" {
				continue
			}
			for _, m := range c.VolumeMounts {
				if e.Value == m.MountPath || strings.HasPrefix(e.Value, strings.TrimSuffix(m.MountPath, "/")+"/") {
					for i := range spec.Volumes {
						if spec.Volumes[i].Name == m.Name {
							return &spec.Volumes[i]
						}
					}
				}
			}
		}
	}
	return nil
}

// portsOf returns a rule's ports as "PROTO/port", sorted; nil for a rule
// that allows every port.
func portsOf(rule networkingv1.NetworkPolicyEgressRule) []string {
	var out []string
	for _, p := range rule.Ports {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		port := "all"
		if p.Port != nil {
			port = p.Port.String()
		}
		out = append(out, string(proto)+"/"+port)
	}
	slices.Sort(out)
	return out
}

// checkPublicOnly checks that a rule's peers are address blocks that except
// every internal range they hold.
func checkPublicOnly(t *testing.T, policy string, rule networkingv1.NetworkPolicyEgressRule) {
	t.Helper()
	if len(rule.To) == 0 {
		t.Errorf("NetworkPolicy %s: HTTPS to every destination, the cluster's own included", policy)
	}
	for _, peer := range rule.To {
		if peer.IPBlock == nil {
			t.Errorf("NetworkPolicy %s: HTTPS to pods or namespaces %+v; want public addresses only", policy, peer)
			continue
		}
		block := netip.MustParsePrefix(peer.IPBlock.CIDR)
		for _, r := range internalRanges {
			internal := netip.MustParsePrefix(r)
			if !block.Contains(internal.Addr()) {
				continue
			}
			if !slices.ContainsFunc(peer.IPBlock.Except, func(e string) bool {
				ex := netip.MustParsePrefix(e)
				return ex.Bits() <= internal.Bits() && ex.Contains(internal.Addr())
			}) {
				t.Errorf("NetworkPolicy %s: %s allows %s", policy, peer.IPBlock.CIDR, r)
			}
		}
	}
}

// convert decodes o into a typed object.
func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
		t.Fatalf("%s/%s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// TestManifests_SecretsBackendMatchesRole: the shipped Role grants rdev
// rights on Secrets exactly when the shipped config keeps projects'
// secrets in Kubernetes Secrets, and then only get, create and update.
func TestManifests_SecretsBackendMatchesRole(t *testing.T) {
	var backend string
	var secretVerbs []string
	for _, o := range render(t, "base") {
		switch o.GetKind() {
		case "ConfigMap":
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			if b, ok := data["RDEV_SECRETS_BACKEND"]; ok {
				backend = b
			}
		case "Role":
			for _, r := range convert[rbacv1.Role](t, o).Rules {
				if slices.Contains(r.Resources, "secrets") {
					secretVerbs = append(secretVerbs, r.Verbs...)
				}
			}
		}
	}
	switch backend {
	case "kubernetes":
		if !slices.Equal(secretVerbs, []string{"get", "create", "update"}) {
			t.Errorf("RDEV_SECRETS_BACKEND=kubernetes with verbs %v on secrets; want get, create, update", secretVerbs)
		}
	default:
		if len(secretVerbs) > 0 {
			t.Errorf("RDEV_SECRETS_BACKEND=%q, yet the Role grants %v on secrets", backend, secretVerbs)
		}
	}
}
