#!/usr/bin/env bash
# Print the Debian mirror to use (one URL): $DEBIAN_MIRROR when set, else the main archive
# of this machine's own apt sources: the first source whose suites include $1 (default
# bookworm; not -security/-updates) in /etc/apt/sources.list, /etc/apt/sources.list.d/*.list
# (one-line `deb` entries) and /etc/apt/sources.list.d/*.sources (deb822 `URIs:`/`Suites:`).
# Used by docker/base-image.sh (debootstrap) and docker/engine.sh (compose plugin download).
# Exit 2 with one line when no source names the suite.
set -euo pipefail
SUITE="${1:-bookworm}"
if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
  echo "${DEBIAN_MIRROR%/}"
  exit 0
fi
APT_DIR="${APT_SOURCES_DIR:-/etc/apt}"
shopt -s nullglob
files=()
for f in "$APT_DIR/sources.list" "$APT_DIR"/sources.list.d/*.list "$APT_DIR"/sources.list.d/*.sources; do
  [[ -r "$f" ]] && files+=("$f")
done
((${#files[@]})) || { echo "debian-mirror: no apt sources under $APT_DIR: set DEBIAN_MIRROR" >&2; exit 2; }
found="$(awk -v suite="$SUITE" '
  # POSIX awk (mawk, the Debian default, has no ENDFILE): a deb822 stanza ends at a blank line,
  # at the next file (FNR == 1) or at the end of the input.
  function has_suite(list,   n, i, parts) {
    n = split(list, parts, /[ \t]+/)
    for (i = 1; i <= n; i++) if (parts[i] == suite) return 1
    return 0
  }
  function flush(   u) {
    if (uris != "" && has_suite(suites)) { split(uris, u, /[ \t]+/); print u[1]; found = 1; exit }
    uris = ""; suites = ""
  }
  FNR == 1 && NR > 1 { flush() }
  FNR == 1 { uris = ""; suites = "" }
  /^[ \t]*#/ { next }
  FILENAME ~ /\.sources$/ {
    if ($0 ~ /^[ \t]*$/) { flush(); next }
    if (tolower($1) == "uris:") { $1 = ""; sub(/^[ \t]+/, ""); uris = $0 }
    if (tolower($1) == "suites:") { $1 = ""; sub(/^[ \t]+/, ""); suites = $0 }
    next
  }
  $1 == "deb" {
    i = 2
    if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
    if ($(i + 1) == suite) { print $i; found = 1; exit }
  }
  END { if (!found) flush() }
' "${files[@]}" 2>/dev/null || true)"
if [[ -z "$found" ]]; then
  echo "debian-mirror: no apt source of this machine names the suite $SUITE: set DEBIAN_MIRROR" >&2
  exit 2
fi
echo "${found%/}"
