#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for integration tests: etcd,
# kube-apiserver and kwok (which fakes the nodes and runs `kubectl exec`
# commands as local processes). No Docker, no controller-manager, no scheduler:
# pods must set spec.nodeName (the node is kwok-node-0).
#
# Usage:
#   bash scripts/testcluster.sh build           build (once per version) and print the binaries' paths
#   bash scripts/testcluster.sh start DIR       build if needed, start the cluster with all state in DIR,
#                                               print DIR/kubeconfig; `. DIR/env` sets KUBECONFIG and
#                                               RDEV_TEST_KUBECONFIG
#   bash scripts/testcluster.sh stop DIR        stop it (TERM, then KILL); idempotent
#   bash scripts/testcluster.sh status DIR      show which processes run and whether /readyz answers
#   bash scripts/testcluster.sh user DIR NAME   write DIR/kubeconfig-NAME for user NAME (no groups), to
#                                               test RBAC; bind a Role to the user NAME
#
# Versions (an environment variable of the same name overrides each):
#   ETCD_VERSION, KUBE_VERSION, KWOK_VERSION (below)
# Binaries are built from source through the Go module proxy (a cold build
# takes 10-15 minutes and up to ~2 GB of memory on 2 cores, once per version;
# later starts take seconds) into
#   ${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}/k8s/etcd-<v>/etcd
#   ${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}/k8s/kube-apiserver-<v>/kube-apiserver
#   ${RDEV_TOOLS_DIR:-$HOME/.cache/rdev-tools}/k8s/kwok-<v>/kwok
# Everything listens on 127.0.0.1 only, on free ports picked at start, so
# several clusters (in different DIRs) can run side by side.
# Needs: go, openssl, curl, kubectl (KUBECTL overrides), ss, setsid, flock.
# kubectl must be within one minor version of the server: if the one on PATH
# is not (Debian's google-cloud-sdk kubectl is 1.32), a sibling kubectl.1.<m>
# next to it (m = 33..35) is used instead for this script's own calls.
# DIR holds: kubeconfig, env, kubeconfig-NAME, pki/, etcd-data/, *.log,
# *.pid, ports, kwok.yaml, objects.yaml, tokens.csv (admin,"system:masters"),
# audit-policy.yaml and audit.log: the API server's audit log of pods/exec and
# secrets requests at Metadata level (request URIs), as a production policy
# keeps it.
#
# In tests: `set -a; . DIR/env; set +a` exports KUBECONFIG and
# RDEV_TEST_KUBECONFIG (both DIR/kubeconfig: user "admin", group
# system:masters, namespace default). Restricted identities for RBAC tests:
#   - `bash scripts/testcluster.sh user DIR rdev-test` signs a client
#     certificate (CN=rdev-test, no O, so only the implicit group
#     system:authenticated) with the cluster CA, at any time while it runs, and
#     prints DIR/kubeconfig-rdev-test. Grant it rights as admin, e.g.
#       kubectl create role pods --verb=get,list --resource=pods -n default
#       kubectl create rolebinding rdev-test-pods --role=pods --user=rdev-test -n default
#     (or in Go: an rbacv1.RoleBinding with Subject{Kind: "User", Name: "rdev-test"}).
#   - Bearer tokens: DIR/tokens.csv holds the admin's
#     (TOKEN,admin,admin,"system:masters"); kube-apiserver reads that file only
#     when it starts, so token users are for setups that start their own
#     cluster; certificates (above) need no restart.
set -euo pipefail

ETCD_VERSION="${ETCD_VERSION:-3.6.8}"
KUBE_VERSION="${KUBE_VERSION:-1.34.4}"
KWOK_VERSION="${KWOK_VERSION:-0.8.0}"

ETCD_VERSION="${ETCD_VERSION#v}"
KUBE_VERSION="${KUBE_VERSION#v}"
KWOK_VERSION="${KWOK_VERSION#v}"

tools_dir="${RDEV_TOOLS_DIR:-${HOME:?HOME is not set}/.cache/rdev-tools}"
k8s_dir="$tools_dir/k8s"
etcd_bin="$k8s_dir/etcd-$ETCD_VERSION/etcd"
apiserver_bin="$k8s_dir/kube-apiserver-$KUBE_VERSION/kube-apiserver"
kwok_bin="$k8s_dir/kwok-$KWOK_VERSION/kwok"
kubectl="${KUBECTL:-kubectl}"

node_name="kwok-node-0"
ready_timeout=60

log() { printf 'testcluster: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit "${1:-2}"
}

# ---------------------------------------------------------------- building

# go_env runs go with settings that make the throwaway builds reproducible and
# independent of the caller's module (no workspace, module mode, no VCS stamp).
go_env() {
	GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" GO111MODULE=on CGO_ENABLED=0 go "$@"
}

# new_build_dir prints a fresh temporary directory under the cache (same file
# system as the binaries, so the final mv is an atomic rename).
new_build_dir() {
	mkdir -p "$k8s_dir"
	mktemp -d "$k8s_dir/.build.XXXXXX"
}

# install_bin SRC DEST moves a finished binary into place atomically.
install_bin() {
	local src="$1" dest="$2"
	mkdir -p "$(dirname "$dest")"
	chmod 0755 "$src"
	mv -f "$src" "$dest.tmp.$$"
	mv -f "$dest.tmp.$$" "$dest"
}

build_etcd() {
	[[ -x "$etcd_bin" ]] && return
	local t start=$SECONDS
	t="$(new_build_dir)"
	log "building etcd $ETCD_VERSION (about 1.5 minutes, once) in $t"
	cat >"$t/go.mod" <<-EOF
		module rdev.local/testcluster/etcd

		go 1.24

		require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
	EOF
	cat >"$t/tools.go" <<-'EOF'
		//go:build tools

		package tools

		import _ "go.etcd.io/etcd/server/v3"
	EOF
	(
		cd "$t"
		go_env mod tidy
		go_env build -trimpath -ldflags '-s -w' -o "$t/etcd" go.etcd.io/etcd/server/v3
	)
	install_bin "$t/etcd" "$etcd_bin"
	rm -rf "$t"
	log "etcd built in $((SECONDS - start)) s: $etcd_bin"
}

build_apiserver() {
	[[ -x "$apiserver_bin" ]] && return
	local t start=$SECONDS gomod staging_version minor major
	major="${KUBE_VERSION%%.*}"
	minor="${KUBE_VERSION#*.}"
	minor="${minor%%.*}"
	staging_version="v0.${KUBE_VERSION#*.}"
	t="$(new_build_dir)"
	log "building kube-apiserver $KUBE_VERSION (about 7 minutes and 2 GB of memory, once) in $t"
	gomod="$(cd "$t" && go_env mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
	[[ -f "$gomod" ]] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
	{
		printf 'module rdev.local/testcluster/kube-apiserver\n\ngo 1.24\n\n'
		printf 'require k8s.io/kubernetes v%s\n\n' "$KUBE_VERSION"
		# kubernetes' own go.mod replaces each staging module
		# (k8s.io/X => ./staging/src/k8s.io/X); a dependent module must pin
		# them to the matching published version instead.
		sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\)[[:space:]]*=>[[:space:]]*\./staging/src/.*#\1#p' "$gomod" |
			grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' |
			sort -u | while read -r m; do
			printf 'replace %s => %s %s\n' "$m" "$m" "$staging_version"
		done
	} >"$t/go.mod"
	grep -q '^replace ' "$t/go.mod" || die "no staging modules found in $gomod"
	cat >"$t/tools.go" <<-'EOF'
		//go:build tools

		package tools

		import _ "k8s.io/kubernetes/cmd/kube-apiserver"
	EOF
	local v ldflags="-s -w"
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $v.gitVersion=v$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=$minor"
		ldflags+=" -X $v.gitTreeState=clean"
	done
	(
		cd "$t"
		go_env mod tidy
		go_env build -trimpath -ldflags "$ldflags" -o "$t/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
	)
	install_bin "$t/kube-apiserver" "$apiserver_bin"
	rm -rf "$t"
	log "kube-apiserver built in $((SECONDS - start)) s: $apiserver_bin"
}

build_kwok() {
	[[ -x "$kwok_bin" ]] && return
	local t start=$SECONDS
	t="$(new_build_dir)"
	log "building kwok $KWOK_VERSION (about 3 minutes, once) in $t"
	(
		cd "$t"
		GOBIN="$t" go_env install -trimpath -ldflags '-s -w' "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
	)
	install_bin "$t/kwok" "$kwok_bin"
	rm -rf "$t"
	log "kwok built in $((SECONDS - start)) s: $kwok_bin"
}

# build_all builds what is missing, one at a time (peak memory), under a lock
# so that parallel callers wait for one build instead of racing.
build_all() {
	if [[ -x "$etcd_bin" && -x "$apiserver_bin" && -x "$kwok_bin" ]]; then
		return
	fi
	command -v go >/dev/null || die "go is not on PATH; it is needed to build the test cluster"
	mkdir -p "$k8s_dir"
	exec {lock_fd}>"$k8s_dir/.build.lock"
	if ! flock -n "$lock_fd"; then
		log "another build is running; waiting for it"
		flock "$lock_fd"
	fi
	# Leftovers of interrupted builds (never the binaries: they are renamed
	# into place only when complete).
	find "$k8s_dir" -maxdepth 1 -name '.build.*' -type d -exec rm -rf {} +
	build_etcd
	build_kwok
	build_apiserver
	flock -u "$lock_fd"
	exec {lock_fd}>&-
}

cmd_build() {
	build_all
	printf '%s\n' "$etcd_bin" "$apiserver_bin" "$kwok_bin"
}

# ---------------------------------------------------------------- helpers

# abs_dir DIR creates DIR if needed and prints its absolute path.
abs_dir() {
	[[ -n "$1" ]] || usage
	mkdir -p "$1"
	(cd "$1" && pwd -P)
}

# pid_of DIR NAME prints the pid of component NAME if it runs; a pid file whose
# process is gone or is not ours (its command line does not name DIR) counts
# as not running.
pid_of() {
	local dir="$1" name="$2" pid
	[[ -f "$dir/$name.pid" ]] || return 1
	pid="$(<"$dir/$name.pid")"
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[[ -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$dir/" || return 1
	printf '%s\n' "$pid"
}

components=(kwok kube-apiserver etcd) # in stopping order

# running PID succeeds while process PID exists and is not a zombie.
running() {
	[[ -r "/proc/$1/stat" && "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# Ports are picked at random from 20000-32767 (below Linux's ephemeral range,
# so they never collide with outgoing connections), skipping any port with a
# socket, and reserved with an atomic mkdir until the cluster is up, so that
# parallel starts never pick the same one.
port_reservations="${TMPDIR:-/tmp}/rdev-testcluster-ports"
reserved_ports=()
picked_port=""

pick_port() {
	local used p i
	mkdir -p "$port_reservations"
	find "$port_reservations" -mindepth 1 -maxdepth 1 -mmin +10 -exec rm -rf {} + 2>/dev/null || true
	used=" $(ss -Htan | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u | tr '\n' ' ') "
	for ((i = 0; i < 500; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
		[[ "$used" == *" $p "* ]] && continue
		mkdir "$port_reservations/$p" 2>/dev/null || continue
		reserved_ports+=("$p")
		picked_port="$p"
		return
	done
	die "found no free port on 127.0.0.1"
}

release_ports() {
	local p
	for p in "${reserved_ports[@]}"; do
		rmdir "$port_reservations/$p" 2>/dev/null || true
	done
	reserved_ports=()
}

# launch DIR NAME BIN ARGS... starts BIN detached (its own session, so Ctrl-C of
# the caller does not reach it and stop can end its whole process group).
# It returns once the process runs BIN: until the forked child has exec'd, its
# command line is this script's, and pid_of would take it for gone.
declare -A launched=()
launch() {
	local dir="$1" name="$2" pid i
	shift 2
	setsid "$@" >"$dir/$name.log" 2>&1 </dev/null &
	pid=$!
	launched[$name]=$pid
	printf '%s\n' "$pid" >"$dir/$name.pid"
	for ((i = 0; i < 200; i++)); do
		pid_of "$dir" "$name" >/dev/null && return
		running "$pid" || return
		sleep 0.025
	done
}

# describe_exit NAME sets exit_desc to how a component this script launched
# ended (wait works only in this shell, not in a $(...) subshell).
exit_desc=""
describe_exit() {
	local pid="${launched[$1]:-}" rc=0
	exit_desc="status unknown"
	[[ -n "$pid" ]] || return 0
	if running "$pid"; then
		exit_desc="pid $pid still runs, but its command line does not name the state directory"
		return 0
	fi
	wait "$pid" 2>/dev/null || rc=$?
	if ((rc > 128)); then
		exit_desc="killed by signal $((rc - 128))"
	else
		exit_desc="exit status $rc"
	fi
}

# wait_for DIR NAME DESCRIPTION CMD... retries CMD until it succeeds, failing
# after $ready_timeout s or as soon as the component dies, with its log's tail.
wait_for() {
	local dir="$1" name="$2" what="$3" deadline=$((SECONDS + ready_timeout))
	shift 3
	until "$@" >/dev/null 2>&1; do
		if ! pid_of "$dir" "$name" >/dev/null; then
			describe_exit "$name"
			log "$name exited ($exit_desc); the end of $dir/$name.log:"
			tail -n 40 "$dir/$name.log" >&2 || true
			die "$name did not start"
		fi
		if ((SECONDS >= deadline)); then
			log "timed out after ${ready_timeout} s waiting for $what; the end of $dir/$name.log:"
			tail -n 40 "$dir/$name.log" >&2 || true
			die "$what: not ready"
		fi
		sleep 0.2
	done
}

# kc DIR ARGS... runs kubectl as the admin of the cluster in DIR (discovery
# cache in DIR, not in ~/.kube/cache: every cluster has a new port).
kc() {
	local dir="$1"
	shift
	"$kubectl" --kubeconfig "$dir/kubeconfig" --cache-dir "$dir/kubectl-cache" "$@"
}

readyz() {
	[[ "$(kc "$1" --request-timeout=5s get --raw /readyz 2>/dev/null)" == ok ]]
}

# ---------------------------------------------------------------- certificates

# sign_cert PKI NAME SUBJECT [EXTFILE_LINES] writes PKI/NAME.key and
# PKI/NAME.crt signed by PKI/ca.
sign_cert() {
	local pki="$1" name="$2" subj="$3" ext="${4:-}"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$pki/$name.key" \
		-subj "$subj" -out "$pki/$name.csr" 2>/dev/null
	printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$ext" >"$pki/$name.ext"
	openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
	rm -f "$pki/$name.csr" "$pki/$name.ext"
	chmod 0600 "$pki/$name.key"
}

make_pki() {
	local pki="$1/pki"
	rm -rf "$pki"
	mkdir -p "$pki"
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -sha256 \
		-keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=rdev-testcluster-ca" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
	chmod 0600 "$pki/ca.key"
	# kube-apiserver's and kwok's (the fake kubelet's) serving certificate.
	sign_cert "$pki" serving "/CN=localhost" \
		"extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
	sign_cert "$pki" admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
	# kube-apiserver -> kwok (exec, logs, port-forward).
	sign_cert "$pki" apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" \
		"extendedKeyUsage=clientAuth"
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key" 2>/dev/null
	openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	chmod 0600 "$pki/sa.key"
}

# write_kubeconfig FILE SERVER PKI CERTNAME USER writes a self-contained
# kubeconfig (certificates embedded).
write_kubeconfig() {
	local file="$1" server="$2" pki="$3" cert="$4" user="$5"
	cat >"$file.tmp" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: rdev-testcluster
		  cluster:
		    server: $server
		    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
		users:
		- name: $user
		  user:
		    client-certificate-data: $(base64 -w0 <"$pki/$cert.crt")
		    client-key-data: $(base64 -w0 <"$pki/$cert.key")
		contexts:
		- name: $user@rdev-testcluster
		  context:
		    cluster: rdev-testcluster
		    user: $user
		    namespace: default
		current-context: $user@rdev-testcluster
	EOF
	chmod 0600 "$file.tmp"
	mv -f "$file.tmp" "$file"
}

# ---------------------------------------------------------------- commands

# stop_dir DIR ends the components whose pid files are in DIR: TERM to each
# process group, then KILL after 5 s.
stop_dir() {
	local dir="$1" name pid pids=() i
	for name in "${components[@]}"; do
		if pid="$(pid_of "$dir" "$name")"; then
			kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	for ((i = 0; i < 50; i++)); do
		local alive=()
		for pid in "${pids[@]}"; do
			if running "$pid"; then
				alive+=("$pid")
			fi
		done
		pids=("${alive[@]}")
		((${#pids[@]} == 0)) && break
		sleep 0.1
	done
	for pid in "${pids[@]}"; do
		log "process $pid did not stop on TERM; killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	done
	for name in "${components[@]}"; do
		rm -f "$dir/$name.pid"
	done
}

cmd_stop() {
	[[ $# -eq 1 ]] || usage
	local dir
	[[ -d "$1" ]] || return 0
	dir="$(abs_dir "$1")"
	stop_dir "$dir"
	log "stopped the cluster in $dir"
}

cmd_status() {
	[[ $# -eq 1 ]] || usage
	local dir name pid rc=0
	[[ -d "$1" ]] || die "$1: no such directory"
	dir="$(abs_dir "$1")"
	for name in etcd kube-apiserver kwok; do
		if pid="$(pid_of "$dir" "$name")"; then
			printf '%-15s running (pid %s)\n' "$name" "$pid"
		else
			printf '%-15s stopped\n' "$name"
			rc=1
		fi
	done
	if [[ -f "$dir/kubeconfig" ]] && readyz "$dir"; then
		printf '%-15s ok (%s)\n' "readyz" "$(sed -n 's/^ *server: //p' "$dir/kubeconfig")"
	else
		printf '%-15s not ready\n' "readyz"
		rc=1
	fi
	[[ -f "$dir/kubeconfig" ]] && printf '%-15s %s\n' kubeconfig "$dir/kubeconfig"
	return "$rc"
}

cmd_user() {
	[[ $# -eq 2 ]] || usage
	local dir name="$2"
	[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._@-]*$ ]] || die "invalid user name: $name"
	dir="$(abs_dir "$1")"
	[[ -f "$dir/pki/ca.key" && -f "$dir/kubeconfig" ]] || die "no cluster in $dir: run start first"
	local pki="$dir/pki" server
	server="$(sed -n 's/^ *server: //p' "$dir/kubeconfig")"
	sign_cert "$pki" "user-$name" "/CN=$name" "extendedKeyUsage=clientAuth"
	write_kubeconfig "$dir/kubeconfig-$name" "$server" "$pki" "user-$name" "$name"
	printf '%s\n' "$dir/kubeconfig-$name"
}

# write_objects DIR writes DIR/objects.yaml: the fake node kwok manages and
# the default ServiceAccount.
write_objects() {
	cat >"$1/objects.yaml" <<-EOF
		apiVersion: v1
		kind: Node
		metadata:
		  name: $node_name
		  annotations:
		    kwok.x-k8s.io/node: fake
		    node.alpha.kubernetes.io/ttl: "0"
		  labels:
		    kubernetes.io/arch: amd64
		    kubernetes.io/hostname: $node_name
		    kubernetes.io/os: linux
		    kubernetes.io/role: agent
		    node-role.kubernetes.io/agent: ""
		    type: kwok
		spec: {}
		status:
		  allocatable:
		    cpu: "32"
		    memory: 256Gi
		    pods: "110"
		  capacity:
		    cpu: "32"
		    memory: 256Gi
		    pods: "110"
		---
		apiVersion: v1
		kind: ServiceAccount
		metadata:
		  name: default
		  namespace: default
	EOF
}

# write_audit_policy records pods/exec and secrets requests, their URIs
# included, at Metadata level (never their bodies, which for secrets hold the
# values), and nothing else.
write_audit_policy() {
	local dir="$1"
	cat >"$dir/audit-policy.yaml" <<-EOF
		apiVersion: audit.k8s.io/v1
		kind: Policy
		omitStages:
		- RequestReceived
		rules:
		- level: Metadata
		  resources:
		  - group: ""
		    resources: ["pods/exec", "secrets"]
		- level: None
	EOF
}

write_kwok_config() {
	local dir="$1" node_port="$2"
	cat >"$dir/kwok.yaml" <<-EOF
		apiVersion: config.kwok.x-k8s.io/v1alpha1
		kind: KwokConfiguration
		options:
		  enableCRDs:
		  - Stage
		  - Metric
		  - Attach
		  - ClusterAttach
		  - Exec
		  - ClusterExec
		  - Logs
		  - ClusterLogs
		  - PortForward
		  - ClusterPortForward
		  - ResourceUsage
		  - ClusterResourceUsage
		  cidr: 10.244.0.0/16
		  nodeIP: 127.0.0.1
		  nodeName: ""
		  nodePort: $node_port
		  tlsCertFile: $dir/pki/serving.crt
		  tlsPrivateKeyFile: $dir/pki/serving.key
		  manageSingleNode: ""
		  manageAllNodes: false
		  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
		  manageNodesWithLabelSelector: ""
		  disregardStatusWithAnnotationSelector: ""
		  disregardStatusWithLabelSelector: ""
		  serverAddress: 127.0.0.1:$node_port
		  enableDebuggingHandlers: true
		  enableContentionProfiling: false
		  enableProfilingHandler: false
		  podPlayStageParallelism: 4
		  nodePlayStageParallelism: 4
		  nodeLeaseDurationSeconds: 40
		  nodeLeaseParallelism: 4
		  podsOnNodeSyncParallelism: 4
		  enablePodsOnNodeSyncListPager: false
		  enablePodsOnNodeSyncStreamWatch: true
	EOF
}

# kwok_src prints kwok's module directory (CRDs and stages), downloading it if
# the module cache lacks it.
kwok_src() {
	local d
	d="$(cd "${TMPDIR:-/tmp}" && GOWORK=off GOFLAGS='' GO111MODULE=on go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
	[[ -d "$d/kustomize/crd/bases" ]] || die "kwok $KWOK_VERSION's sources not found in the module cache"
	printf '%s\n' "$d"
}

# check_kubectl makes sure $kubectl is within kubectl's supported version skew
# (+/-1 minor) of kube-apiserver $KUBE_VERSION: if not, and KUBECTL is unset,
# it switches to a kubectl.1.<minor> beside it (google-cloud-sdk ships those),
# or else warns.
check_kubectl() {
	local want client path m alt
	want="${KUBE_VERSION#*.}"
	want="${want%%.*}"
	client="$("$kubectl" version --client -o json 2>/dev/null |
		sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n 1)"
	if [[ -z "$client" ]]; then
		log "WARNING: cannot tell $kubectl's version"
		return
	fi
	((client >= want - 1 && client <= want + 1)) && return
	if [[ -z "${KUBECTL:-}" ]]; then
		path="$(readlink -f "$(command -v "$kubectl")")"
		for m in "$want" $((want - 1)) $((want + 1)); do
			alt="$(dirname "$path")/kubectl.1.$m"
			if [[ -x "$alt" ]]; then
				log "kubectl on PATH is 1.$client, outside the skew of kube-apiserver $KUBE_VERSION; using $alt (KUBECTL=$alt for your own calls)"
				kubectl="$alt"
				return
			fi
		done
	fi
	log "WARNING: $kubectl is 1.$client, more than one minor version from kube-apiserver $KUBE_VERSION; set KUBECTL to a kubectl 1.$((want - 1))-1.$((want + 1))"
}

# shellcheck disable=SC2317 # run by the EXIT trap of cmd_start
start_failed() {
	local dir="$1"
	trap - EXIT
	release_ports
	log "start failed; stopping what was started in $dir"
	stop_dir "$dir"
}

cmd_start() {
	[[ $# -eq 1 ]] || usage
	local dir begin=$SECONDS
	dir="$(abs_dir "$1")"
	command -v "$kubectl" >/dev/null || die "kubectl not found (set KUBECTL)"
	check_kubectl
	command -v openssl >/dev/null || die "openssl not found"

	if pid_of "$dir" kube-apiserver >/dev/null && pid_of "$dir" kwok >/dev/null && readyz "$dir"; then
		log "already running in $dir"
		printf '%s\n' "$dir/kubeconfig"
		return
	fi
	stop_dir "$dir"
	build_all
	local src
	src="$(kwok_src)"

	# Any failure from here on (die, a failing command, Ctrl-C) stops what
	# was started.
	# shellcheck disable=SC2064 # expand $dir now
	trap "start_failed $(printf '%q' "$dir")" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	rm -rf "$dir/etcd-data" "$dir/kwok-home" "$dir/kubectl-cache"
	rm -f "$dir"/kubeconfig* "$dir/env" "$dir"/*.log
	mkdir -p "$dir/etcd-data" "$dir/kwok-home"
	chmod 0700 "$dir/etcd-data"
	make_pki "$dir"
	printf '%s,admin,admin,"system:masters"\n' "$(openssl rand -hex 16)" >"$dir/tokens.csv"
	write_audit_policy "$dir"
	chmod 0600 "$dir/tokens.csv"

	# kwok serves the fake kubelet API (exec, logs) on one port, HTTP and
	# HTTPS: its server address must be the node port it advertises.
	local etcd_port peer_port api_port node_port
	pick_port && etcd_port="$picked_port"
	pick_port && peer_port="$picked_port"
	pick_port && api_port="$picked_port"
	pick_port && node_port="$picked_port"
	printf 'etcd=%s\netcd-peer=%s\nkube-apiserver=%s\nkwok=%s\n' \
		"$etcd_port" "$peer_port" "$api_port" "$node_port" >"$dir/ports"

	local etcd_url="http://127.0.0.1:$etcd_port" peer_url="http://127.0.0.1:$peer_port"
	launch "$dir" etcd "$etcd_bin" --name rdev-testcluster --data-dir "$dir/etcd-data" \
		--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
		--listen-peer-urls "$peer_url" --initial-advertise-peer-urls "$peer_url" \
		--initial-cluster "rdev-testcluster=$peer_url" --unsafe-no-fsync
	wait_for "$dir" etcd "etcd on $etcd_url" curl -fsS --max-time 2 "$etcd_url/health"
	log "etcd up on $etcd_url ($((SECONDS - begin)) s)"

	local pki="$dir/pki" api_url="https://127.0.0.1:$api_port"
	launch "$dir" kube-apiserver "$apiserver_bin" \
		--etcd-servers="$etcd_url" \
		--bind-address=127.0.0.1 --secure-port="$api_port" --advertise-address=127.0.0.1 \
		--endpoint-reconciler-type=none \
		--cert-dir="$pki" \
		--tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key" \
		--client-ca-file="$pki/ca.crt" \
		--token-auth-file="$dir/tokens.csv" \
		--kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$pki/apiserver-kubelet-client.key" \
		--service-account-key-file="$pki/sa.pub" \
		--service-account-signing-key-file="$pki/sa.key" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--authorization-mode=RBAC \
		--service-cluster-ip-range=10.0.0.0/24 \
		--disable-admission-plugins=ServiceAccount,TaintNodesByCondition \
		--allow-privileged=true \
		--profiling=false \
		--audit-policy-file="$dir/audit-policy.yaml" \
		--audit-log-path="$dir/audit.log"
	write_kubeconfig "$dir/kubeconfig" "$api_url" "$pki" admin admin
	wait_for "$dir" kube-apiserver "kube-apiserver /readyz on $api_url" readyz "$dir"
	log "kube-apiserver ready on $api_url ($((SECONDS - begin)) s)"

	# No controller-manager runs: nothing else creates the default
	# ServiceAccount. (The default namespace appears shortly after readyz.)
	wait_for "$dir" kube-apiserver "namespace default" kc "$dir" get namespace default
	kc "$dir" apply -f "$src/kustomize/crd/bases/" >/dev/null
	kc "$dir" wait --for condition=Established --timeout=60s -f "$src/kustomize/crd/bases/" >/dev/null
	write_objects "$dir"
	local f stages=()
	for f in "$src"/kustomize/stage/node/fast/*.yaml "$src"/kustomize/stage/pod/fast/*.yaml; do
		[[ "$(basename "$f")" == kustomization.yaml ]] || stages+=(-f "$f")
	done
	kc "$dir" apply "${stages[@]}" -f "$dir/objects.yaml" >/dev/null

	log "CRDs, stages, node $node_name and ServiceAccount default created ($((SECONDS - begin)) s)"
	write_kwok_config "$dir" "$node_port"
	# HOME: kwok would also load ~/.kwok/kwok.yaml.
	launch "$dir" kwok env HOME="$dir/kwok-home" "$kwok_bin" \
		--config="$dir/kwok.yaml" --kubeconfig="$dir/kubeconfig" \
		--manage-all-nodes=false \
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--node-ip=127.0.0.1 --node-port="$node_port" \
		--server-address="127.0.0.1:$node_port" \
		--tls-cert-file="$pki/serving.crt" --tls-private-key-file="$pki/serving.key"
	wait_for "$dir" kwok "node $node_name Ready" node_ready "$dir"
	release_ports
	trap - EXIT INT TERM

	{
		printf 'KUBECONFIG=%q\n' "$dir/kubeconfig"
		printf 'RDEV_TEST_KUBECONFIG=%q\n' "$dir/kubeconfig"
	} >"$dir/env"
	log "cluster up in $((SECONDS - begin)) s: $api_url (state in $dir; stop: bash scripts/testcluster.sh stop $dir)"
	printf '%s\n' "$dir/kubeconfig"
}

# shellcheck disable=SC2317 # run by wait_for
node_ready() {
	[[ "$(kc "$1" get node "$node_name" \
		-o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

# ---------------------------------------------------------------- main

main() {
	[[ $# -ge 1 ]] || usage
	local sub="$1"
	shift
	case "$sub" in
	build) cmd_build "$@" ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	status) cmd_status "$@" ;;
	user) cmd_user "$@" ;;
	-h | --help | help) usage 0 ;;
	*) usage ;;
	esac
}

# On one line: bash reads a script as it runs it, so an edit of this file
# during a long build must not make it run what follows.
main "$@"; exit
