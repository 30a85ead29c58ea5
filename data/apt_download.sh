# Sourced by the data scripts (not run alone): `apt-get download` with one `apt-get update` retry.
# The sourcing script defines die() (one line on stderr, exit 2) and a temporary folder $tmp for the logs.

apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return 0
    apt-get update >"$tmp/apt-update.log" 2>&1 || die "apt-get update failed: $(tail -n 1 "$tmp/apt-update.log")"
    apt_updated=1
}

# apt_download PKG DIR: the package's .deb into DIR (nothing is installed).
apt_download() {
    (cd "$2" && apt-get download "$1") >"$tmp/apt-download.log" 2>&1 && return 0
    apt_update
    (cd "$2" && apt-get download "$1") >"$tmp/apt-download.log" 2>&1 \
        || die "apt-get download $1 failed: $(tail -n 1 "$tmp/apt-download.log")"
}
