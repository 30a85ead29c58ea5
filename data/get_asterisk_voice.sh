#!/bin/sh
# Fetch one voice of the Asterisk "core sounds" from Debian's G.722 (16 kHz wideband) package
# and keep a few spoken prompts as 16 kHz mono 16-bit FLAC clips.
#
#   sh data/get_asterisk_voice.sh LANG OUT_DIR [N_CLIPS] [EXCLUDE_FILELIST] [MIN_S MAX_S]
#   e.g. sh data/get_asterisk_voice.sh ru data/voices_heldout/ru_voice
#        sh data/get_asterisk_voice.sh en data/voices_full/en_allison 1000 filelists/test.txt
#        sh data/get_asterisk_voice.sh en data/voices_full/long/en_allison 1000 filelists/test.txt 5 30
#
# - installs ffmpeg with apt-get when it is missing (root; runs apt-get update when needed);
# - downloads asterisk-core-sounds-LANG-g722 with `apt-get download` into a temporary folder
#   and unpacks it with `dpkg-deb -x` (nothing is installed);
# - candidates: prompts MIN_S-MAX_S long (default 1.5-5 s), outside digits/ letters/ phonetic/ silence/,
#   whose names do not look like beeps/tones/jingles, and that are not near-silent (mean level > -40 dBFS),
#   and that EXCLUDE_FILELIST (lines ending <speaker>/<name>.flac) does not name (held-out clips);
# - keeps N_CLIPS (default 12) of them, evenly spread over the name-sorted candidate list
#   (deterministic), as OUT_DIR/<prompt path with / -> __>.flac;
# - writes OUT_DIR/manifest.csv with the columns of data/voices/manifest.csv ("file" is
#   <speaker>/<name>.flac, relative to the folder above OUT_DIR, as in data/voices/);
#   speaker = basename of OUT_DIR; licence and credit come from the package's copyright file;
# - never overwrites a file that already exists in OUT_DIR (it is skipped and reported).
# Exits 2 with one line on stderr on failure.
set -e
export LC_ALL=C

die() { echo "get_asterisk_voice: error: $*" >&2; exit 2; }

usage="usage: sh $0 LANG OUT_DIR [N_CLIPS] [EXCLUDE_FILELIST] [MIN_S MAX_S]"
[ $# -ge 2 ] && [ $# -le 6 ] && [ $# -ne 5 ] || die "$usage"
lang=$1
out=${2%/}
n=${3:-12}
exclude=${4:-/dev/null}
min_s=${5:-1.5}
max_s=${6:-5}
[ -r "$exclude" ] || die "cannot read EXCLUDE_FILELIST $exclude"
case $lang in ''|*[!a-zA-Z_-]*) die "bad LANG '$lang' (expected e.g. ru, fr, it)";; esac
case $n in ''|*[!0-9]*) die "N_CLIPS must be a positive integer, got '$n'";; esac
[ "$n" -gt 0 ] || die "N_CLIPS must be a positive integer, got '$n'"
awk -v lo="$min_s" -v hi="$max_s" 'BEGIN { exit !(lo ~ /^[0-9.]+$/ && hi ~ /^[0-9.]+$/ && lo + 0 < hi + 0) }' \
    || die "MIN_S MAX_S must be seconds with MIN_S < MAX_S, got '$min_s' '$max_s'"
pkg=asterisk-core-sounds-$lang-g722
min_db=-40

tmp=$(mktemp -d "${TMPDIR:-/tmp}/asterisk-voice.XXXXXX") || die "cannot create a temporary folder"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' HUP INT TERM

. "$(dirname "$0")/apt_download.sh"   # apt_update, apt_download

# --- ffmpeg ---------------------------------------------------------------------------------
if ! command -v ffmpeg >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "ffmpeg is missing and apt-get is not available"
    [ "$(id -u)" -eq 0 ] || die "ffmpeg is missing; run as root (or install ffmpeg) so apt-get can install it"
    echo "installing ffmpeg with apt-get ..."
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg \
            >"$tmp/apt-install.log" 2>&1; then
        apt_update
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg \
            >"$tmp/apt-install.log" 2>&1 || die "apt-get install ffmpeg failed: $(tail -n 1 "$tmp/apt-install.log")"
    fi
    command -v ffmpeg >/dev/null 2>&1 || die "ffmpeg still not found after apt-get install"
fi
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb not found (needs a Debian-based system)"

# --- download and unpack the package -----------------------------------------------------------
mkdir "$tmp/deb" "$tmp/x" "$tmp/clips"
apt_download "$pkg" "$tmp/deb"
deb=$(ls "$tmp"/deb/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"
version=$(dpkg-deb -f "$deb" Version) || die "cannot read the version of $deb"
dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x failed on $deb"
echo "package: $pkg $version"

sounds=
for d in "$tmp"/x/usr/share/asterisk/sounds/"$lang"* "$tmp"/x/usr/share/asterisk/sounds/*; do
    [ -d "$d" ] && { sounds=$d; break; }
done
[ -n "$sounds" ] || die "no sounds folder in $pkg"
voice_dir=$(basename "$sounds")           # e.g. ru_RU_f_IvrvoiceRU
case $voice_dir in
    *_f_*) sex=F ;;
    *_m_*) sex=M ;;
    *) sex= ;;
esac
case $voice_dir in
    [a-z][a-z]_[A-Z][A-Z]*) language=$(echo "$voice_dir" | cut -c1-5 | tr _ -) ;;
    *) language=$lang ;;
esac

# Licence and credit: the copyright stanza "Files: LANG-*" (else "Files: *").
copyright=$tmp/x/usr/share/doc/$pkg/copyright
[ -f "$copyright" ] || die "no copyright file in $pkg"
stanza() {
    awk -v pat="$1" '
        /^Files:/ { on = ($2 == pat) }
        on { print }
    ' "$copyright"
}
st=$(stanza "$lang-*")
[ -n "$st" ] || st=$(stanza "*")
licence=$(printf '%s\n' "$st" | awk '/^License:/ { print $2; exit }')
credit=$(printf '%s\n' "$st" | awk '
    /(Recorded|Provided) by:/ {
        sub(/.*(Recorded|Provided) by:[ \t]*/, ""); if ($0 != "") { name = $0 } else { want = 1 }; next
    }
    want && /[^ .\t]/ { sub(/^[ \t]+/, ""); name = $0; want = 0; next }
    name != "" && url == "" && match($0, /https?:\/\/[^ )]+/) { url = substr($0, RSTART, RLENGTH) }
    END {
        if (match(name, /\(https?:\/\/[^)]*\)/)) { url = substr(name, RSTART + 1, RLENGTH - 2); name = substr(name, 1, RSTART - 1) }
        sub(/[ \t]+$/, "", name)
        sub(/^https?:\/\//, "", url); sub(/^www\./, "", url); sub(/\/$/, "", url)
        if (name == "") exit
        if (url != "") printf "%s (%s)", name, url; else printf "%s", name
    }')
[ -n "$licence" ] || licence=unknown
credit="${credit:-unknown}, Asterisk core sounds"
echo "voice: $voice_dir (sex ${sex:-?}, $language), licence $licence, credit: $credit"

# A prompt's clip name: its path with / -> __, .flac instead of .g722.
clip_name() { printf '%s' "${1%.g722}" | sed 's|/|__|g'; printf '.flac'; }

# --- candidates ---------------------------------------------------------------------------------
# Raw G.722 at 16 kHz is 4 bits per sample: seconds = bytes * 2 / 16000.
sed -n 's|.*/\([^/]*/[^/]*\.flac\)$|\1|p' "$exclude" >"$tmp/exclude.txt"   # <speaker>/<name>.flac
(cd "$sounds" && find . -type f -name '*.g722' | sed 's|^\./||' | sort) >"$tmp/all.txt"
[ -s "$tmp/all.txt" ] || die "no .g722 prompts in $pkg"
: >"$tmp/cand.txt"
while IFS= read -r rel; do
    case $rel in digits/*|letters/*|phonetic/*|silence/*) continue ;; esac
    case $(basename "$rel") in *beep*|*tone*|*jingle*|*monkeys*|*silence*|*ring*) continue ;; esac
    name=$(clip_name "$rel")
    grep -q -F -x -e "$(basename "$out")/$name" "$tmp/exclude.txt" && continue
    bytes=$(wc -c <"$sounds/$rel")
    secs=$(awk -v b="$bytes" 'BEGIN { printf "%.3f", b * 2 / 16000 }')
    awk -v s="$secs" -v lo="$min_s" -v hi="$max_s" 'BEGIN { exit !(s >= lo && s <= hi) }' || continue
    db=$(ffmpeg -nostdin -hide_banner -f g722 -i "$sounds/$rel" -af volumedetect -f null - 2>&1 \
         | sed -n 's/.*mean_volume: *\([-0-9.inf]*\) dB.*/\1/p' | tail -n 1)
    [ -n "$db" ] || die "ffmpeg could not decode $rel"
    awk -v d="$db" -v m="$min_db" 'BEGIN { exit !(d != "-inf" && d + 0 > m) }' || continue
    printf '%s %s\n' "$rel" "$secs" >>"$tmp/cand.txt"
done <"$tmp/all.txt"
m=$(wc -l <"$tmp/cand.txt" | tr -d ' ')
[ "$m" -gt 0 ] || die "no prompt of $min_s-$max_s s with speech found in $pkg"
[ "$m" -ge "$n" ] || { echo "note: only $m candidate prompts, keeping all of them"; n=$m; }
# Evenly spread picks: line floor((2i+1)*m/(2n)) + 1 for i = 0..n-1 (distinct since m >= n).
awk -v m="$m" -v n="$n" 'BEGIN { for (i = 0; i < n; i++) want[int((2 * i + 1) * m / (2 * n)) + 1] = 1 }
     want[NR]' "$tmp/cand.txt" >"$tmp/pick.txt"

# --- decode --------------------------------------------------------------------------------
mkdir -p "$out" || die "cannot create $out"
speaker=$(basename "$out")
rows=$tmp/manifest.csv
echo "speaker,file,source,seconds,sex,language,licence,credit" >"$rows"
made=0; kept=0; total=0
while read -r rel secs; do
    name=$(clip_name "$rel")
    dst=$out/$name
    if [ -e "$dst" ]; then
        echo "skip (exists)  $dst"
        kept=$((kept + 1))
    else
        ffmpeg -nostdin -hide_banner -loglevel error -f g722 -i "$sounds/$rel" \
            -ac 1 -ar 16000 -sample_fmt s16 -c:a flac -compression_level 8 \
            -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$tmp/clips/$name" \
            || die "ffmpeg failed to decode $rel"
        mv "$tmp/clips/$name" "$dst"
        echo "wrote $secs s  $dst"
        made=$((made + 1))
    fi
    total=$(awk -v t="$total" -v s="$secs" 'BEGIN { printf "%.3f", t + s }')
    printf '%s,%s/%s,%s,%s,%s,%s,%s,"%s"\n' "$speaker" "$speaker" "$name" "$rel" "$secs" \
        "$sex" "$language" "$licence" "$credit" >>"$rows"
done <"$tmp/pick.txt"

if [ -e "$out/manifest.csv" ]; then
    echo "skip (exists)  $out/manifest.csv"
else
    mv "$rows" "$out/manifest.csv"
    echo "wrote $out/manifest.csv"
fi
echo "done: $pkg $version -> $out: $((made + kept)) clips ($made new, $kept already there), $total s"
