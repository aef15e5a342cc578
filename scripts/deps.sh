#!/usr/bin/env bash
# Installs what mvdp needs to build and run, and only what is missing.
# Sourced or run by scripts/main.sh and scripts/test.sh; safe to run again.
set -euo pipefail

# Debian packages, and why each is here.
PACKAGES=(
  clang-19          # compiles ebpf/bpf/*.c to BPF; xsk-rs's libxdp build needs it too
  llvm-19           # llc-19, which libxdp's build needs
  gcc               # libxdp's configure (CC=gcc) and the -sys crates
  libbpf-dev        # bpf_helpers.h for the XDP program
  libelf-dev        # libxdp (built by xsk-rs)
  zlib1g-dev        # libxdp
  m4                # libxdp's build
  pkg-config        # libxdp's build
  make              # libxdp's build
  ethtool           # tests read offloads back with ethtool -k (mvdp sets them over netlink)
  iproute2          # ip netns exec: the lab runs programs in its namespaces; tests check what was built
  iputils-ping      # lab connectivity checks
  containernetworking-plugins  # /usr/lib/cni/macvlan: the reference the kernel backend is cross-checked against;
                               # host-local/static/dhcp: the IPAM plugins the mvdp CNI plugin delegates to
  podman            # tests/cni_runtimes: a real runtime (CNI backend) attaching containers through `type: mvdp`
  containerd        # tests/cni_runtimes: `ctr run --cni`
  crun              # OCI runtime podman uses
  runc              # OCI runtime containerd uses
  docker.io         # tests/docker_plugin: dockerd 20.10 with `-d macvlan` (the reference) and `-d mvdp`
  busybox-static    # the registry-free container image the runtime tests import
  openvswitch-switch  # `mvdp bench` backends ovs-afxdp / ovs-afxdp-nonpmd: OVS's userspace datapath with
                      # AF_XDP ports, the peer mvdp is measured against (tests/bench_ovs); the bench runs its
                      # own ovsdb-server/ovs-vswitchd in a lab namespace, never the system's
)

if [ "$(id -u)" -ne 0 ]; then
  echo "mvdp: setup needs root (it installs packages, and mvdp itself needs root for XDP and network namespaces)." >&2
  echo "      run: sudo $0" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "mvdp: installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start their services here (openvswitch-switch would start ovsdb-server and
  # ovs-vswitchd in the root namespace): without a policy-rc.d, put one refusing every start in place
  # for the install and remove it afterwards.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then
    rm -f "$policy"
    trap - EXIT
  fi
fi

# The bench starts its own OVS daemons in a lab namespace; a system one would share nothing with
# them but would hold a core (its PMD thread) and confuse the leftover checks.
if pgrep -x ovs-vswitchd >/dev/null || pgrep -x ovsdb-server >/dev/null; then
  echo "mvdp: warning: an ovs-vswitchd/ovsdb-server runs on this machine (not started by mvdp);" >&2
  echo "      stop it (systemctl stop openvswitch-switch) before benchmarking the OVS backends." >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "mvdp: cargo not found: install Rust stable (https://rustup.rs) first." >&2
  exit 1
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      echo "mvdp: installing the Rust $component component"
      rustup component add "$component"
    else
      echo "mvdp: cargo $component is missing and there is no rustup to add it." >&2
      exit 1
    fi
  fi
done
