#!/usr/bin/env bash
# Build the meshfs Debian packages: one command from a clean clone (issue 17).
#
#   packaging/build-deb.sh                  amd64 and arm64 (and armhf if its Rust target is installed)
#   packaging/build-deb.sh arm64            one architecture
#
# Each package holds the binary (release build, stripped), /etc/meshfs/meshfs.toml (a conffile,
# from packaging/meshfs.toml), the systemd units (packaging/systemd), man pages and bash, zsh and
# fish completions (written by the hidden `meshfs generate` of a host build), and the maintainer
# scripts (packaging/debian: the meshfs system user, /srv/meshfs).
#
# Packages land in $OUT (default: $CARGO_TARGET_DIR/debian, else target/debian). Built with
# dpkg-deb alone: no cargo-deb to install, nothing but Debian's dpkg.
#
# Cross builds (Debian bookworm): `rustup target add aarch64-unknown-linux-gnu
# armv7-unknown-linux-gnueabihf` and `apt-get install gcc-aarch64-linux-gnu
# gcc-arm-linux-gnueabihf` (the linkers, and the C compilers ring and blake3 need).
# armhf is the 32-bit Raspberry Pi OS; blake3 gets its `neon` feature there
# (crates/meshfs-core/Cargo.toml), every Pi since the 2 has NEON.
#
# MESHFS_BIN=PATH packages that binary instead of building one (one ARCH only): the test suite
# packages its debug build this way, with DEB_COMPRESSION=none (default xz) so it takes seconds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=${OUT:-$target_dir/debian}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)

# Debian architecture → Rust target, the GNU toolchain prefix.
rust_target() {
  case $1 in
    amd64) echo x86_64-unknown-linux-gnu ;;
    arm64) echo aarch64-unknown-linux-gnu ;;
    armhf) echo armv7-unknown-linux-gnueabihf ;;
    *) echo "unknown architecture $1 (amd64, arm64 or armhf)" >&2; return 1 ;;
  esac
}
gnu_prefix() {
  case $1 in
    amd64) echo "" ;;
    arm64) echo aarch64-linux-gnu- ;;
    armhf) echo arm-linux-gnueabihf- ;;
  esac
}

if [ $# -eq 0 ]; then
  set -- amd64 arm64
  rustup target list --installed 2>/dev/null | grep -qx armv7-unknown-linux-gnueabihf && set -- "$@" armhf
fi
if [ -n "${MESHFS_BIN:-}" ] && [ $# -ne 1 ]; then
  echo "MESHFS_BIN packages one binary: name exactly one architecture" >&2
  exit 2
fi

# The dist build (Cargo.toml's `[profile.dist]`: release with LTO) for one target (the host's
# needs no --target: its binary also writes the man pages and completions).
build() {
  local arch=$1 target prefix env_target
  target=$(rust_target "$arch")
  prefix=$(gnu_prefix "$arch")
  if [ -z "$prefix" ]; then
    cargo build --profile dist --locked -p meshfs --manifest-path "$root/Cargo.toml" >&2
    echo "$target_dir/dist/meshfs"
    return
  fi
  command -v "${prefix}gcc" >/dev/null || {
    echo "missing ${prefix}gcc: apt-get install gcc-${prefix%-}" >&2
    return 1
  }
  env_target=$(echo "$target" | tr 'a-z-' 'A-Z_')
  env "CARGO_TARGET_${env_target}_LINKER=${prefix}gcc" \
    "CC_${target//-/_}=${prefix}gcc" "AR_${target//-/_}=${prefix}ar" \
    cargo build --profile dist --locked -p meshfs --target "$target" --manifest-path "$root/Cargo.toml" >&2
  echo "$target_dir/$target/dist/meshfs"
}

# The highest glibc symbol version the binary needs: its libc6 dependency.
glibc_needed() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1
}

package() {
  local arch=$1 bin=$2 host_bin=$3 stage prefix glibc deb
  prefix=$(gnu_prefix "$arch")
  stage=$(mktemp -d)
  chmod 0755 "$stage"
  trap 'rm -rf "$stage"' RETURN
  install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/meshfs" "$stage/lib/systemd/system" \
    "$stage/usr/share/doc/meshfs" "$stage/usr/share/man/man1" \
    "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"
  "${prefix}strip" --strip-unneeded -o "$stage/usr/bin/meshfs" "$bin"
  chmod 0755 "$stage/usr/bin/meshfs"
  install -m 0644 "$root/packaging/meshfs.toml" "$stage/etc/meshfs/meshfs.toml"
  install -m 0644 "$root/packaging/meshfs.toml" "$stage/usr/share/doc/meshfs/meshfs.toml"
  install -m 0644 "$root/packaging/systemd/"*.service "$stage/lib/systemd/system/"
  install -m 0644 "$root/packaging/debian/copyright" "$stage/usr/share/doc/meshfs/copyright"
  local gen
  gen=$(mktemp -d)
  "$host_bin" generate man "$gen/man" >/dev/null
  "$host_bin" generate completions "$gen/completions" >/dev/null
  for page in "$gen/man/"*.1; do gzip -9n -c "$page" > "$stage/usr/share/man/man1/$(basename "$page").gz"; done
  install -m 0644 "$gen/completions/meshfs.bash" "$stage/usr/share/bash-completion/completions/meshfs"
  install -m 0644 "$gen/completions/_meshfs" "$stage/usr/share/zsh/vendor-completions/_meshfs"
  install -m 0644 "$gen/completions/meshfs.fish" "$stage/usr/share/fish/vendor_completions.d/meshfs.fish"
  rm -rf "$gen"
  for script in postinst prerm postrm; do
    install -m 0755 "$root/packaging/debian/$script" "$stage/DEBIAN/$script"
  done
  echo /etc/meshfs/meshfs.toml > "$stage/DEBIAN/conffiles"
  glibc=$(glibc_needed "$stage/usr/bin/meshfs")
  sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@GLIBC@/$glibc/" \
    -e "s/@SIZE@/$(du -sk --exclude=DEBIAN "$stage" | cut -f1)/" \
    "$root/packaging/debian/control" > "$stage/DEBIAN/control"
  mkdir -p "$out"
  deb="$out/meshfs_${version}_${arch}.deb"
  dpkg-deb --root-owner-group "-Z${DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
  echo "$deb"
}

if [ -n "${MESHFS_BIN:-}" ]; then
  host_bin=${MESHFS_HOST_BIN:-$MESHFS_BIN}
  package "$1" "$MESHFS_BIN" "$host_bin"
  exit 0
fi
host_bin=$(build amd64)
for arch in "$@"; do
  rust_target "$arch" >/dev/null
  if [ "$arch" = amd64 ]; then bin=$host_bin; else bin=$(build "$arch"); fi
  package "$arch" "$bin" "$host_bin"
done
