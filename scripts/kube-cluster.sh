#!/usr/bin/env bash
# A single-node Kubernetes on this machine, inside a network namespace of its own.
#
#   scripts/kube-cluster.sh up     start it (idempotent: a running cluster is left as is)
#   scripts/kube-cluster.sh down   stop it and undo what it did to the host (idempotent)
#   scripts/kube-cluster.sh status
#
# `up` prints one line on stdout: the path of an admin kubeconfig. Progress and
# timings go to stderr. The cluster has a registry of its own at
# 10.233.0.2:5000 (plain HTTP): the host pushes to it, containerd pulls pod
# images from it, and pods reach it for bundles. Binaries come from scripts/kube.sh (or
# $MODELOPS_KUBE_BIN); etcd, containerd, runc and the CNI plugins from Debian.
#
# Everything the cluster runs lives under $MODELOPS_KUBE_DIR (default
# <repo>/.modelops/kube): certificates, configs, etcd data, containerd's own
# root, state and socket, the kubelet's root, logs and pid files. The daemons
# run in the network namespace `modelops-kube`, reached from the host over a
# veth pair (host 10.233.0.1, node 10.233.0.2); pods get 10.234.0.0/24 on a
# bridge inside it, Services 10.235.0.0/24. Nothing listens on the host's
# interfaces and nothing routes out of the namespace.
#
# Host side effects, and how `down` undoes them:
#   - the kubelet sets vm.overcommit_memory, kernel.panic and kernel.panic_on_oops
#     (no warn-only option): `up` records them first, `down` restores them;
#   - the kubelet creates kubepods cgroups under each v1 controller: removed;
#   - the kubelet insists on /var/lib/kubelet/device-plugins: removed if `up` created it;
#   - containerd's shims use /run/containerd/s: removed if `up` created it and it is empty;
#   - libcni caches results in /var/lib/cni: our network's entries removed, and
#     the directory if `up` created it;
#   - mounts under the state directory (pod volumes, overlay snapshots): unmounted.
#
# docs/kubernetes.md explains each setting; the comments below say why where
# the reason is not obvious.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname -- "$script_dir")
state=${MODELOPS_KUBE_DIR:-$repo/.modelops/kube}
netns=modelops-kube
host_if=mkube-h
node_if=mkube-n
host_ip=10.233.0.1
node_ip=10.233.0.2
pod_cidr=10.234.0.0/24
svc_cidr=10.235.0.0/24
api_svc_ip=10.235.0.1
dns_ip=10.235.0.10
node_name=modelops-node
cni_name=modelops-kube
sock=$state/containerd/containerd.sock
host_sysctls=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
registry_addr=$node_ip:5000
daemons=(etcd kube-apiserver containerd registry kubelet kube-controller-manager kube-scheduler kube-proxy)

log() { printf 'kube-cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
in_ns() { nsenter --net="/run/netns/$netns" "$@"; }

pid_of() {
    local f=$state/run/$1.pid pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

# start NAME CMD...: run CMD in the cluster's network namespace, logging to logs/NAME.log.
# nsenter, not `ip netns exec`: the latter gives each daemon a private mount
# namespace, and the kubelet and containerd must see each other's mounts.
start() {
    local name=$1
    shift
    setsid nsenter --net="/run/netns/$netns" "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$state/run/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
    local what=$1 limit=$2 start=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - start >= limit)); then
            die "$what not ready after ${limit} s (logs in $state/logs)"
        fi
        sleep 0.5
    done
    log "$what ready at $((SECONDS - t0)) s"
}

kubectl_admin() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

need_tools() {
    local missing=() t
    for t in etcd containerd runc ctr openssl nsenter ip curl docker-registry; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    [ -x /usr/lib/cni/bridge ] || missing+=("/usr/lib/cni/bridge")
    [ "${#missing[@]}" -eq 0 ] || die "missing: ${missing[*]} (make kube-deps installs them)"
}

# --------------------------------------------------------------------------- certificates

make_certs() {
    local d=$state/pki
    [ -f "$d/done" ] && return 0
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=modelops-kube-ca" \
        -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    # name CN O [SANs]: a certificate signed by the CA.
    issue() {
        local name=$1 cn=$2 org=$3 san=${4:-}
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn${org:+/O=$org}" \
            -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
        local ext="basicConstraints=CA:FALSE
keyUsage=digitalSignature,keyEncipherment
extendedKeyUsage=${san:+serverAuth,}clientAuth${san:+
subjectAltName=$san}"
        openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
            -extfile <(printf '%s\n' "$ext") -out "$d/$name.crt" 2>/dev/null
        rm -f "$d/$name.csr"
    }
    issue apiserver kube-apiserver "" \
        "IP:$node_ip,IP:$api_svc_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
    # One test cluster, one trust domain: the components and the kubelet are
    # system:masters (RBAC only, no Node authorizer). Never reuse this set-up.
    issue admin kubernetes-admin system:masters
    issue kubelet "system:node:$node_name" system:masters "IP:$node_ip,DNS:$node_name"
    openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
    openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
    chmod 600 "$d"/*.key
    touch "$d/done"
}

kubeconfig() {
    local user=$1 out=$2
    cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: modelops-kube
  cluster:
    server: https://$node_ip:6443
    certificate-authority-data: $(base64 -w0 "$state/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$state/pki/$user.crt")
    client-key-data: $(base64 -w0 "$state/pki/$user.key")
contexts:
- name: modelops-kube
  context: {cluster: modelops-kube, user: $user}
current-context: modelops-kube
EOF
    chmod 600 "$out"
}

# --------------------------------------------------------------------------- configs

write_configs() {
    mkdir -p "$state/cni/net.d" "$state/cni/ipam" "$state/containerd" "$state/kubelet" "$state/kubelet-plugins"
    cat >"$state/cni/net.d/10-modelops.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$cni_name",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$state/cni/ipam",
               "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
    # restrict_oom_score_adj: the sandbox lacks CAP_SYS_RESOURCE, and runc
    # fails every pod sandbox writing oom_score_adj without it.
    cat >"$state/containerd/config.toml" <<EOF
version = 2
root = "$state/containerd/root"
state = "$state/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(cat "$bin/pause-image.name")"
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not /run/netns: a pod
  # that down kills without a CRI StopPodSandbox would leave one behind there.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$state/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$state/containerd/certs.d"
EOF
    # The cluster's own registry speaks plain HTTP; containerd reads hosts.toml at each pull.
    mkdir -p "$state/containerd/certs.d/$registry_addr"
    cat >"$state/containerd/certs.d/$registry_addr/hosts.toml" <<EOF
server = "http://$registry_addr"
[host."http://$registry_addr"]
  capabilities = ["pull", "resolve"]
EOF
    mkdir -p "$state/registry"
    cat >"$state/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $state/registry/data
  delete:
    enabled: true
http:
  addr: $registry_addr
EOF
    printf 'nameserver %s\n' "$dns_ip" >"$state/resolv.conf"
    cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# 1.34 still runs on cgroup v1 when told to; this machine mounts the v1 controllers.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $state/pki/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $state/pki/kubelet.crt
tlsPrivateKeyFile: $state/pki/kubelet.key
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
resolvConf: $state/resolv.conf
failSwapOn: false
volumePluginDir: $state/kubelet-plugins
address: $node_ip
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# The shared disk is large and mostly other people's: evict on absolute room, not on percentages.
evictionHard: {memory.available: 200Mi, nodefs.available: 2Gi, imagefs.available: 2Gi, nodefs.inodesFree: 5%}
imageGCHighThresholdPercent: 100
serializeImagePulls: false
EOF
    cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $pod_cidr
hostnameOverride: $node_name
clientConnection: {kubeconfig: $state/admin.kubeconfig}
# 0 leaves the global conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
}

# --------------------------------------------------------------------------- up

setup_netns() {
    [ -e "/run/netns/$netns" ] && return 0
    ip netns add "$netns"
    ip link add "$host_if" type veth peer name "$node_if"
    ip link set "$node_if" netns "$netns"
    ip addr add "$host_ip/24" dev "$host_if"
    ip link set "$host_if" up
    in_ns ip addr add "$node_ip/24" dev "$node_if"
    in_ns ip link set "$node_if" up
    in_ns ip link set lo up
    # The node reaches Service IPs through kube-proxy's DNAT, which needs a
    # route first. One through lo: whatever is not DNATed loops back and is
    # dropped, so nothing for the Service range ever leaves the namespace.
    # (This kernel has no dummy device, and a blackhole route fails the
    # lookup before the DNAT.)
    in_ns ip route add "$svc_cidr" dev lo
    # Per network namespace on this kernel: the host's own values are untouched.
    in_ns sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
}

record_sysctls() {
    [ -f "$state/sysctl.saved" ] && return 0
    local k
    for k in "${host_sysctls[@]}"; do
        printf '%s=%s\n' "$k" "$(sysctl -n "$k")"
    done >"$state/sysctl.saved.new"
    mv "$state/sysctl.saved.new" "$state/sysctl.saved"
    [ -d /var/lib/kubelet ] || touch "$state/created-var-lib-kubelet"
    [ -d /var/lib/cni ] || touch "$state/created-var-lib-cni"
    # containerd 1.6 puts shim sockets in /run/containerd/s whatever its state dir.
    [ -d /run/containerd ] || touch "$state/created-run-containerd"
}

up() {
    need_tools
    bin=${MODELOPS_KUBE_BIN:-$("$script_dir/kube.sh")}
    [ -x "$bin/kube-apiserver" ] || die "no kube-apiserver in $bin"
    if pid_of kube-apiserver >/dev/null && pid_of kubelet >/dev/null; then
        if ! pid_of registry >/dev/null; then
            # Started before the cluster had a registry, or the registry died: (re)start it alone.
            t0=$SECONDS
            write_configs
            start registry docker-registry serve "$state/registry/config.yml"
            wait_for "registry $registry_addr" 30 curl -sf "http://$registry_addr/v2/"
        fi
        log "already running (scripts/kube-cluster.sh down stops it)"
        printf '%s\n' "$state/admin.kubeconfig"
        return 0
    fi
    if [ -e "/run/netns/$netns" ] && ! pid_of etcd >/dev/null && in_ns curl -sf http://127.0.0.1:2379/health >/dev/null 2>&1; then
        die "another cluster runs in the network namespace $netns (not the one of $state): stop it first with its own MODELOPS_KUBE_DIR and 'scripts/kube-cluster.sh down'"
    fi
    mkdir -p "$state/run" "$state/logs"
    printf '%s\n' "$bin" >"$state/bin-dir"
    t0=$SECONDS
    record_sysctls
    setup_netns
    make_certs
    kubeconfig admin "$state/admin.kubeconfig"
    kubeconfig kubelet "$state/kubelet.kubeconfig"
    write_configs

    start etcd etcd --name modelops --data-dir "$state/etcd" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster modelops=http://127.0.0.1:2380
    wait_for etcd 30 in_ns curl -sf http://127.0.0.1:2379/health

    local pki=$state/pki
    start kube-apiserver "$bin/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
        --advertise-address="$node_ip" --bind-address=0.0.0.0 --secure-port=6443 \
        --service-cluster-ip-range="$svc_cidr" --allow-privileged=true --authorization-mode=RBAC \
        --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
        --kubelet-certificate-authority="$pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --shutdown-delay-duration=0s --shutdown-send-retry-after=false
    wait_for kube-apiserver 90 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
        "https://$node_ip:6443/readyz"

    start containerd containerd --config "$state/containerd/config.toml"
    wait_for containerd 30 ctr --address "$sock" version
    ctr --address "$sock" -n k8s.io images import "$bin/pause-image.tar" >/dev/null
    start registry docker-registry serve "$state/registry/config.yml"
    wait_for "registry $registry_addr" 30 curl -sf "http://$registry_addr/v2/"

    start kubelet "$bin/kubelet" --config="$state/kubelet.yaml" --kubeconfig="$state/kubelet.kubeconfig" \
        --root-dir="$state/kubelet" --hostname-override="$node_name" --node-ip="$node_ip"
    start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig="$state/admin.kubeconfig" \
        --leader-elect=false --bind-address=127.0.0.1 --service-account-private-key-file="$pki/sa.key" \
        --root-ca-file="$pki/ca.crt" --cluster-signing-cert-file="$pki/ca.crt" \
        --cluster-signing-key-file="$pki/ca.key" --service-cluster-ip-range="$svc_cidr" \
        --use-service-account-credentials=false
    start kube-scheduler "$bin/kube-scheduler" --kubeconfig="$state/admin.kubeconfig" \
        --leader-elect=false --bind-address=127.0.0.1
    start kube-proxy "$bin/kube-proxy" --config="$state/kube-proxy.yaml"
    node_ready() {
        [ "$(kubectl_admin get node "$node_name" \
            -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
    }
    wait_for "node $node_name" 120 node_ready
    start_coredns
    log "cluster up in $((SECONDS - t0)) s; kubeconfig $state/admin.kubeconfig; registry $registry_addr (HTTP)"
    printf '%s\n' "$state/admin.kubeconfig"
}

# CoreDNS serves cluster.local only: nothing routes out of the namespace, so
# there is no upstream to forward to. It listens on 1053 so it can run as
# nobody with no capability; the kube-dns Service maps 53 to it.
start_coredns() {
    local image
    image=modelops.local/coredns:$("$bin/coredns" -version 2>/dev/null | sed -n 's/^CoreDNS-//p' | head -n1)
    mkdir -p "$state/images"
    if [ ! -s "$state/images/coredns.tar" ] || [ "$bin/coredns" -nt "$state/images/coredns.tar" ]; then
        "$script_dir/oci-image.sh" "$image" "$bin/coredns" "$state/images/coredns.tar"
    fi
    ctr --address "$sock" -n k8s.io images import "$state/images/coredns.tar" >/dev/null
    cat >"$state/coredns.yaml" <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 30
        loop
        reload
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65534, runAsGroup: 65534, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: coredns
        image: $image
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, initialDelaySeconds: 10}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        resources: {requests: {cpu: 50m, memory: 64Mi}, limits: {memory: 128Mi}}
        volumeMounts: [{name: config, mountPath: /etc/coredns, readOnly: true}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $dns_ip
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
EOF
    kubectl_admin apply -f "$state/coredns.yaml" >/dev/null
    wait_for "CoreDNS (kubernetes.default resolves)" 120 in_ns python3 "$script_dir/dns-query.py" "$dns_ip" \
        kubernetes.default.svc.cluster.local "$api_svc_ip"
}

# --------------------------------------------------------------------------- down

stop_pid() {
    local name=$1 pid i
    pid=$(pid_of "$name") || { rm -f "$state/run/$name.pid"; return 0; }
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    # A SIGTERM'd apiserver lingers in graceful shutdown for minutes.
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    rm -f "$state/run/$name.pid"
}

# Kills every pod container; prints the container ids, whose CNI results `down` then removes.
kill_pod_containers() {
    pid_of containerd >/dev/null || return 0
    local id
    ctr --address "$sock" -n k8s.io containers ls -q 2>/dev/null || true
    for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    done
}

down() {
    [ -d "$state" ] || { log "nothing to stop"; return 0; }
    # The kubelet first, so it restarts nothing; then the pods; then the rest.
    stop_pid kubelet
    stop_pid kube-proxy
    stop_pid kube-scheduler
    stop_pid kube-controller-manager
    local ids
    ids=$(kill_pod_containers)
    stop_pid containerd
    stop_pid registry
    stop_pid kube-apiserver
    stop_pid etcd
    # Pod volumes and snapshots mounted under the state directory, deepest first.
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v s="$state" 'index($2, s) == 1 {print $2}' /proc/self/mounts | sort -r)
    if [ -e "/run/netns/$netns" ]; then
        ip netns del "$netns"
    fi
    ip link del "$host_if" 2>/dev/null || true
    if [ -f "$state/sysctl.saved" ]; then
        sysctl -qp "$state/sysctl.saved" >/dev/null
        log "restored $(tr '\n' ' ' <"$state/sysctl.saved")"
        rm -f "$state/sysctl.saved"
    fi
    # The kubelet's QoS cgroups under each v1 controller, leaves first; busy ones stay and are reported.
    local c
    for c in /sys/fs/cgroup/*/kubepods; do
        [ -d "$c" ] || continue
        find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || log "warning: could not remove $c (busy)"
    done
    # Pods killed without a CNI DEL leave their results behind, named after the sandbox.
    local id
    for id in $ids; do
        rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
    done
    rm -f /var/lib/cni/results/"$cni_name"-* 2>/dev/null || true
    if [ -f "$state/created-var-lib-cni" ]; then
        rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
        rm -f "$state/created-var-lib-cni"
    fi
    if [ -f "$state/created-run-containerd" ]; then
        rmdir /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd/s /run/containerd 2>/dev/null || true
        rm -f "$state/created-run-containerd"
    fi
    if [ -f "$state/created-var-lib-kubelet" ]; then
        rm -rf /var/lib/kubelet
        rm -f "$state/created-var-lib-kubelet"
    fi
    log "cluster stopped; data kept in $state (rm -rf it for a fresh cluster)"
}

status() {
    local d
    for d in "${daemons[@]}"; do
        if pid=$(pid_of "$d"); then echo "$d running ($pid)"; else echo "$d stopped"; fi
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
