#!/bin/sh
# Transcripts of one voice of the Asterisk "core sounds", from the list of prompts that Debian's
# asterisk-core-sounds-LANG package ships (core-sounds-LANG.txt), for `voiceconv evaluate --transcripts`.
#
#   sh data/get_asterisk_transcripts.sh LANG SPEAKER OUT_CSV
#   e.g. sh data/get_asterisk_transcripts.sh en en_allison data/voices_full/transcripts.csv
#
# - downloads the package with `apt-get download` into a temporary folder (nothing is installed);
# - writes OUT_CSV with the columns file,text of data/voices/transcripts.csv, one row per prompt:
#   file is SPEAKER/<prompt path with / -> __>.flac, the names get_asterisk_voice.sh gives its clips;
# - leaves out prompts whose text is not plain speech: notes in [] or (), and digits, which a
#   recogniser may write as words;
# - an existing OUT_CSV is kept (never overwritten).
# Exits 2 with one line on stderr on failure.
set -e
export LC_ALL=C

die() { echo "get_asterisk_transcripts: error: $*" >&2; exit 2; }

[ $# -eq 3 ] || die "usage: sh $0 LANG SPEAKER OUT_CSV"
lang=$1
speaker=$2
out=$3
case $lang in ''|*[!a-zA-Z_-]*) die "bad LANG '$lang' (expected e.g. en, fr)";; esac
if [ -e "$out" ]; then
    echo "skip (exists)  $out"
    exit 0
fi
pkg=asterisk-core-sounds-$lang

tmp=$(mktemp -d "${TMPDIR:-/tmp}/asterisk-text.XXXXXX") || die "cannot create a temporary folder"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

. "$(dirname "$0")/apt_download.sh"   # apt_download
mkdir "$tmp/deb" "$tmp/x"
apt_download "$pkg" "$tmp/deb"
dpkg-deb -x "$tmp"/deb/*.deb "$tmp/x" || die "dpkg-deb -x failed on the $pkg package"
list=$(find "$tmp/x" -name "core-sounds-$lang.txt*" | head -n 1)
[ -n "$list" ] || die "no core-sounds-$lang.txt in $pkg"
case $list in *.gz) gzip -dc "$list" ;; *) cat "$list" ;; esac >"$tmp/list.txt"

# Lines "<prompt path>: <text>"; the text goes in double quotes, its own quotes doubled (RFC 4180).
awk -v speaker="$speaker" '
    BEGIN { print "file,text" }
    /^;/ || !/^[^ :]+: / { next }
    {
        i = index($0, ": "); name = substr($0, 1, i - 1); text = substr($0, i + 2)
        sub(/^[ \t]+/, "", text); sub(/[ \t\r]+$/, "", text); gsub(/[ \t]+/, " ", text)
        if (text == "" || text ~ /[][()0-9]/) next
        gsub(/\//, "__", name); gsub(/"/, "\"\"", text)
        printf "%s/%s.flac,\"%s\"\n", speaker, name, text
    }' "$tmp/list.txt" >"$tmp/transcripts.csv"
rows=$(($(wc -l <"$tmp/transcripts.csv") - 1))
[ "$rows" -gt 0 ] || die "no transcripts found in core-sounds-$lang.txt of $pkg"
mkdir -p "$(dirname "$out")" || die "cannot create the folder of $out"
mv "$tmp/transcripts.csv" "$out"
echo "wrote $out ($rows prompts of $pkg)"
