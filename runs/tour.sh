#!/bin/sh
# The README's quick tour, run with the installed `wavegrad` and `voiceconv` from a temporary folder
# outside the checkout: the configs, vocoder and schedules come from the package by name, and only
# the bundled clips are read from here. CI runs it on a non-editable install in a fresh venv.
#   sh runs/tour.sh [WORK_DIR]      (default: a new temporary folder)
set -eu
VOICES=$(cd "$(dirname "$0")/../data/voices" && pwd)
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK/clips"
cd "$WORK"
echo "quick tour in $WORK with $(command -v wavegrad)"
wavegrad --version
for clip in agent-pass call-forwarding conf-getpin conf-locked conf-nonextended conf-now-unmuted conf-thereare \
    conf-userswilljoin; do
    cp "$VOICES/fr_june/$clip.flac" clips/
done
ls "$WORK"/clips/*.flac > clips.txt

# render: audio -> log-mels -> the shipped vocoder with the shipped 6-iteration schedule
wavegrad mel -c small_16k -i clips -o mels
wavegrad inference -c small_16k -ch small_16k -ns 6iters -m mels/mels.txt --out-dir rendered
test -s rendered/predicted_agent-pass.wav

# voice conversion: preprocess (bound to the shipped vocoder config), pitch, features, train, index, convert
voiceconv one-click --exp tour --input clips --f0-method pm --preset tiny --total-epoch 2 --batch-size 4
voiceconv convert --model logs/tour/tour.pt --input "$VOICES/en_allison/agent-pass.flac" --output converted.wav \
    --index "$(ls logs/tour/added_*.index)" --f0-up-key 4
test -s converted.wav

# vocoder training: a few steps of the shipped tiny config on the clips
wavegrad train -c tiny --exp tour_vocoder --set training_config.max_steps=3 \
    --set training_config.train_filelist_path=clips.txt --set training_config.test_filelist_path=clips.txt
ls logs/tour_vocoder/checkpoint_3.pt
echo "quick tour passed in $WORK"
