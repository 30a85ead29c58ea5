#!/bin/sh
# Every usable Asterisk prompt of the bundled voices, for training beyond the bundled 54 clips each,
# and of the Russian voice, for zero-shot reference pools only (it is never trained on).
#
#   sh data/get_full_voices.sh [OUT_DIR]          (default: data/voices_full beside this script)
#
# - runs get_asterisk_voice.sh with no clip limit for en_allison, es_allison, fr_june and it_carlo,
#   leaving out the held-out clips of filelists/test.txt, and for ru_voice, leaving out those of
#   filelists/heldout_ru.txt: no clip scored by `voiceconv evaluate` or `benchmark.py` lands here;
# - writes OUT_DIR/train.txt (the four training voices) and OUT_DIR/references.txt (all five voices),
#   filelists with one path per line relative to OUT_DIR, for `voiceconv pretrain --input
#   OUT_DIR/<voice>` and `voiceconv evaluate --references OUT_DIR/references.txt`;
# - writes OUT_DIR/transcripts.csv (the English prompts' texts, get_asterisk_transcripts.sh) and
#   OUT_DIR/sources_en.txt: the en_allison clips with a transcript that filelists/train.txt (the
#   shipped models' training list) does not name, for `voiceconv evaluate --cer-sources`;
# - writes OUT_DIR/cer_en.txt, 12 of those spread over the list, for `voiceconv evaluate --cer-sources`,
#   and OUT_DIR/base_train.txt, train.txt without them, for `voiceconv pretrain
#   --filelist` (a base that never hears the clips its conversions are scored on; needs the package);
# - fetches en_allison's prompts of 5-30 s that no filelist names into OUT_DIR/long/en_allison (the bundled
#   recogniser reads up to 30 s at once) and writes OUT_DIR/cer_en_long.txt, those whose transcript is words
#   only (no * or #), for `voiceconv evaluate --cer-sources`: 16 prompts, 2.7 min, 407 words;
# - writes OUT_DIR/finetune_ru.txt, the first 59 ru_voice clips (2.5 min, as much as a bundled voice
#   has), to fine-tune into a voice that no shipped model has heard;
# - files that exist are kept (a rerun only fills what is missing). About 65 MB, 3-7 minutes.
# Exits 2 with one line on stderr on failure.
set -e
export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/voices_full}
out=${out%/}
lists=$here/../filelists

for pair in en:en_allison es:es_allison fr:fr_june it:it_carlo ru:ru_voice; do
    lang=${pair%%:*}
    voice=${pair#*:}
    held_out=$lists/test.txt
    [ "$voice" = ru_voice ] && held_out=$lists/heldout_ru.txt
    sh "$here/get_asterisk_voice.sh" "$lang" "$out/$voice" 100000 "$held_out"
done

(cd "$out" && ls en_allison/*.flac es_allison/*.flac fr_june/*.flac it_carlo/*.flac) >"$out/train.txt"
(cd "$out" && ls */*.flac) >"$out/references.txt"
(cd "$out" && ls ru_voice/*.flac | head -n 59) >"$out/finetune_ru.txt"
sh "$here/get_asterisk_transcripts.sh" en en_allison "$out/transcripts.csv"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/full-voices.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# (filelists/train.txt too: its bundled clips go up to 7.6 s)
{ sed "s|^|$out/|" "$out/train.txt"; cat "$lists/train.txt" "$lists/test.txt"; } >"$tmp/listed.txt"
sh "$here/get_asterisk_voice.sh" en "$out/long/en_allison" 100000 "$tmp/listed.txt" 5 30
python3 - "$out" >"$out/cer_en_long.txt" <<'EOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
with open(out / "transcripts.csv", newline="") as f:
    words_only = {row["file"] for row in csv.DictReader(f) if not set(row["text"]) & set("*#")}
for clip in sorted((out / "long" / "en_allison").glob("*.flac")):
    if f"en_allison/{clip.name}" in words_only:
        print(clip.relative_to(out))
EOF
sed -n 's|.*/\(en_allison/[^/]*\.flac\)$|\1|p' "$lists/train.txt" >"$tmp/trained.txt"
cut -d, -f1 "$out/transcripts.csv" >"$tmp/transcribed.txt"
(cd "$out" && ls en_allison/*.flac) | grep -F -x -f "$tmp/transcribed.txt" \
    | grep -v -F -x -f "$tmp/trained.txt" >"$out/sources_en.txt" || true
python3 -c "import sys; from wavegrad.filelist import spread; print(*spread(sys.stdin.read().split(), 12), sep='\n')" \
    <"$out/sources_en.txt" >"$out/cer_en.txt"
grep -v -F -x -f "$out/cer_en.txt" "$out/train.txt" >"$out/base_train.txt"
echo "wrote $out/train.txt ($(wc -l <"$out/train.txt" | tr -d ' ') clips), $out/references.txt" \
     "($(wc -l <"$out/references.txt" | tr -d ' ') clips), $out/sources_en.txt" \
     "($(wc -l <"$out/sources_en.txt" | tr -d ' ') clips), $out/cer_en.txt, $out/base_train.txt and" \
     "$out/finetune_ru.txt; $out/cer_en_long.txt" \
     "($(wc -l <"$out/cer_en_long.txt" | tr -d ' ') clips)"
