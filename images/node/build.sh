#!/usr/bin/env bash
# Build the cloud58 node image and import it into podman under the reference given.
#
#   images/node/build.sh localhost/cloud58-node:<recipe hash>
#
# Normally called by scripts/setup/image.sh, which computes the reference from the
# content of this directory and skips the build when the image exists already.
#
# Steps: debootstrap Debian 12 minbase with packages.txt into a temporary directory,
# make it a container host (units that cannot work in a container masked, sysctl
# defaults that would reach the host kernel disabled, apt caches removed), import it,
# boot it once with systemd to prove it works, and only then tag it. The temporary
# directory is removed and an untagged import deleted whatever happens, so a failed
# build never leaves a tag or a half-made root file system behind.
#
# Environment:
#   CLOUD58_DEBIAN_MIRROR           Debian mirror (default: the host's bookworm source)
#   CLOUD58_DEBIAN_SECURITY_MIRROR  security mirror written into the image's apt sources
#   CONTAINERS_CONF                 podman settings (default: the repository's)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/containers.conf}
suite=bookworm

die() {
  echo "image: $*" >&2
  exit 1
}

# The first URI of an enabled apt source (deb822 *.sources or one-line *.list) that
# serves the given suite, or nothing.
_host_apt_uri() {
  local want=$1 f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk -v want="$want" '
      BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^[ \t]*#/) continue
          split($i, kv, ":[ \t]*")
          key = tolower(kv[1]); value = substr($i, length(kv[1]) + 2)
          sub(/^[ \t]+/, "", value)
          if (key == "types") types = value
          else if (key == "uris") uris = value
          else if (key == "suites") suites = value
          else if (key == "enabled") enabled = tolower(value)
        }
        if (enabled != "no" && (" " types " ") ~ / deb / && (" " suites " ") ~ (" " want " ")) {
          split(uris, u, /[ \t]+/); print u[1]; exit
        }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI suite components...
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
      awk -v want="$want" '$1 == "deb" && $3 == want { print $2; exit }'
  done
}

_unmount_below() {
  local dir=$1 target
  # Deepest first; lazy, so a busy mount cannot block the cleanup.
  findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0, d) == 1' | sort -r |
    while read -r target; do umount -l "$target" || true; done
}

cleanup() {
  local rc=$?
  if [[ -n ${probe:-} ]]; then
    podman rm -f -t 0 "$probe" >/dev/null 2>&1 || true
  fi
  if [[ -n ${image_id:-} && $tagged != yes ]]; then
    podman rmi -f "$image_id" >/dev/null 2>&1 || true
  fi
  if [[ -n ${work:-} && -d $work ]]; then
    _unmount_below "$work"
    rm -rf --one-file-system "$work"
  fi
  if ((rc != 0)); then
    echo "image: build of $ref failed; nothing was tagged and the build directory was removed" >&2
  fi
}

# Turn the debootstrapped tree into a container host. Every change is explained,
# because each one is a difference from a real node that tests must not depend on.
configure_rootfs() {
  local root=$1 unit f

  # apt sources: the mirror the image was built from, plus updates and security,
  # so roles that install packages inside the container behave as on a real node.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

  # Keep the image small: no package lists or downloaded archives (roles refresh the
  # cache themselves, as they must on a fresh node), and no documentation, now or
  # from packages installed later (copyright files stay).
  cat >"$root/etc/dpkg/dpkg.cfg.d/cloud58-nodoc" <<'EOF'
# cloud58 node image: container test hosts carry no documentation.
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/lintian/*
EOF
  # dpkg in a test host does not fsync what it unpacks: a crash loses the container, not a
  # machine, and the lab's first site.yml spends most of its time in apt (7 hosts on 2
  # cores; about a fifth less per install here). Real nodes keep dpkg's default.
  cat >"$root/etc/dpkg/dpkg.cfg.d/cloud58-unsafe-io" <<'EOF'
# cloud58 node image: container test hosts, unpacked without fsync.
force-unsafe-io
EOF
  find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/lintian"
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb
  rm -f "$root/var/cache/debconf/"*-old "$root/var/lib/dpkg/"*-old
  find "$root/var/log" -type f -delete

  # Units that cannot work in a container, or that would act on the host through a
  # privileged container: no consoles to run gettys on, udev must never trigger
  # the host's devices, audit and binfmt_misc are not namespaced; apt's timers
  # would take the dpkg lock in the middle of a converge.
  for unit in \
    console-getty.service container-getty@.service getty@.service serial-getty@.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-journald-audit.socket \
    proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount systemd-binfmt.service \
    apt-daily.timer apt-daily-upgrade.timer; do
    ln -sfn /dev/null "$root/etc/systemd/system/$unit"
  done

  # Distribution sysctl defaults include keys that are not per network namespace
  # (kernel.pid_max, fs.protected_*, kernel.sysrq); in a privileged container
  # systemd-sysctl would set them on the host at every boot. Mask them; files that
  # roles add to /etc/sysctl.d still apply.
  for f in "$root"/usr/lib/sysctl.d/*.conf; do
    [[ -e $f ]] || continue
    ln -sfn /dev/null "$root/etc/sysctl.d/$(basename "$f")"
  done

  # Identity comes from the container: every container gets its own machine ID
  # (an empty file makes systemd generate one at boot, without "first boot"),
  # and podman supplies hostname, hosts and resolv.conf.
  : >"$root/etc/machine-id"
  ln -sfn /etc/machine-id "$root/var/lib/dbus/machine-id"
  echo localhost >"$root/etc/hostname"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
  rm -f "$root/etc/resolv.conf"
  : >"$root/etc/resolv.conf"

  # A UTF-8 locale that glibc has built in (no locales package needed).
  echo 'LANG=C.UTF-8' >"$root/etc/default/locale"
}

ref=${1:-}
[[ $ref == */*:* ]] || die "usage: $0 REGISTRY/NAME:TAG (scripts/setup/image.sh computes it)"
[[ $(id -u) -eq 0 ]] || die "building the node image needs root (debootstrap, chroot mounts)"
for cmd in debootstrap podman tar findmnt; do
  command -v "$cmd" >/dev/null || die "'$cmd' is not installed; run scripts/setup/apt.sh"
done

mirror=${CLOUD58_DEBIAN_MIRROR:-$(_host_apt_uri "$suite" | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
security_mirror=${CLOUD58_DEBIAN_SECURITY_MIRROR:-$(_host_apt_uri "$suite-security" | head -n1)}
security_mirror=${security_mirror:-http://deb.debian.org/debian-security}
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$here/packages.txt")
((${#packages[@]} > 0)) || die "$here/packages.txt lists no packages"

tagged=no
image_id=
probe=
work=$(mktemp -d "${TMPDIR:-/var/tmp}/cloud58-node.XXXXXX")
trap cleanup EXIT
# Interrupted builds clean up too (the EXIT trap runs on exit).
trap 'exit 130' INT TERM HUP
rootfs=$work/rootfs
started=$SECONDS

echo "image: debootstrap $suite minbase from $mirror (+${#packages[@]} packages)"
if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    "$suite" "$rootfs" "$mirror" >"$work/debootstrap.out" 2>&1; then
  tail -n 20 "$work/debootstrap.out" >&2
  [[ -f $rootfs/debootstrap/debootstrap.log ]] && tail -n 20 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap of $suite from $mirror failed (output above); is the mirror reachable, are the names in packages.txt right?"
fi
_unmount_below "$rootfs"
[[ -x $rootfs/sbin/init ]] || die "the root file system has no /sbin/init; is systemd-sysv in packages.txt?"

configure_rootfs "$rootfs"

echo "image: importing into podman"
hash=${ref##*:}
if ! image_id=$(tar -C "$rootfs" --numeric-owner --xattrs -c . |
    podman import -q \
      --change 'CMD ["/sbin/init"]' \
      --change "LABEL org.opencontainers.image.title=cloud58-node" \
      --change "LABEL cloud58.recipe-hash=$hash" \
      --change "LABEL cloud58.debian-mirror=$mirror" \
      - 2>"$work/import.err"); then
  cat "$work/import.err" >&2
  die "'podman import' of the root file system failed (CONTAINERS_CONF=$CONTAINERS_CONF)"
fi

# Prove the image boots: systemd reaches running (or degraded) and Python answers.
echo "image: boot check"
probe=cloud58-node-probe-$$
podman run -d --name "$probe" --systemd=always "$image_id" >/dev/null ||
  die "'podman run' of the new image failed (CONTAINERS_CONF=$CONTAINERS_CONF)"
# Poll: right after start, systemctl may not reach PID 1 yet ("Failed to connect to bus").
state=
for _ in $(seq 120); do
  state=$(podman exec "$probe" systemctl is-system-running 2>/dev/null || true)
  [[ $state == running || $state == degraded ]] && break
  sleep 0.5
done
case $state in
  running) ;;
  degraded)
    echo "image: warning: systemd is degraded in the new image; failed units:" >&2
    podman exec "$probe" systemctl --failed --no-legend >&2 || true
    ;;
  *)
    podman logs "$probe" 2>&1 | tail -n 30 >&2 || true
    die "systemd did not finish booting within 60 s (state '${state:-unknown}'); boot log above"
    ;;
esac
podman exec "$probe" python3 -c 'import apt, json' ||
  die "python3 with the apt binding does not run in the new image"
podman rm -f -t 0 "$probe" >/dev/null
probe=

podman tag "$image_id" "$ref" || die "'podman tag $image_id $ref' failed"
tagged=yes
size=$(podman image inspect --format '{{.Size}}' "$ref")
echo "image: built $ref ($((size / 1024 / 1024)) MiB) in $((SECONDS - started)) s"
