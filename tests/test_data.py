"""Training data: filelist errors name the file and the fix, segments, per-process batches, resampling, and the
fetch script's arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from wavegrad.__main__ import main as cli_main
from wavegrad.data import SegmentDataset, check_filelist, epoch_batches, resample_corpus
from wavegrad.errors import WaveGradError
from wavegrad.filelist import read_filelist

VOICES = Path(__file__).resolve().parent.parent / "data" / "voices"
CLIPS = sorted((VOICES / "en_allison").glob("*.flac"))


def write_list(path: Path, entries: list[str | Path]) -> Path:
    path.write_text("".join(f"{entry}\n" for entry in entries))
    return path


def test_missing_file_is_reported_and_skipped(tmp_path: Path) -> None:
    missing = tmp_path / "gone.wav"
    paths, errors = check_filelist(write_list(tmp_path / "l.txt", [CLIPS[0], missing]), 16000)
    assert paths == [CLIPS[0]]
    assert len(errors) == 1 and str(missing) in errors[0] and "not found" in errors[0]


def test_wrong_rate_list_is_refused_with_the_fix(tmp_path: Path) -> None:
    wav = tmp_path / "rate.wav"
    sf.write(wav, np.zeros(22050, dtype=np.float32) + 0.1, 22050)
    with pytest.raises(WaveGradError, match=r"22050 Hz but the config needs 16000 Hz.*wavegrad resample"):
        check_filelist(write_list(tmp_path / "l.txt", [wav]), 16000)


def test_empty_and_corrupt_files_are_named(tmp_path: Path) -> None:
    corrupt, empty = tmp_path / "corrupt.wav", tmp_path / "empty.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(WaveGradError, match="none of its 2 file") as info:
        check_filelist(write_list(tmp_path / "l.txt", [corrupt, empty]), 16000)
    assert "corrupt.wav: unreadable" in str(info.value) and "empty.wav: audio file is empty" in str(info.value)


def test_empty_list_stops_the_cli_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = write_list(tmp_path / "train.txt", [])
    config = tmp_path / "c.yaml"
    config.write_text(f"training_config: {{train_filelist_path: {empty}, test_filelist_path: {empty}}}\n")
    assert cli_main(["train", "-c", str(config), "--exp", "never"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(empty) in err and "filelist is empty" in err


def test_segments_are_fixed_length_padded_and_vary_by_epoch() -> None:
    long_clip = max(CLIPS, key=lambda p: sf.info(p).frames)
    short_clip = min(CLIPS, key=lambda p: sf.info(p).frames)
    segment = sf.info(short_clip).frames + 300
    dataset = SegmentDataset([long_clip, short_clip], 16000, segment, seed=3)
    first = dataset[0]
    assert first.shape == (segment,) and torch.equal(first, dataset[0])
    padded = dataset[1]
    assert padded.shape == (segment,) and torch.all(padded[-300:] == 0) and padded[:-300].abs().max() > 0
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0])


def test_pitch_up_segments_are_the_clip_played_faster(tmp_path: Path) -> None:
    rate, segment = 16000, 7200
    tone = tmp_path / "tone.wav"
    sf.write(tone, 0.5 * np.sin(2 * np.pi * 200 * np.arange(3 * rate) / rate), rate)
    plain = SegmentDataset([tone], rate, segment, seed=3)
    raised = SegmentDataset([tone], rate, segment, seed=3, pitch_up_semitones=12, pitch_up_probability=1)
    off = SegmentDataset([tone], rate, segment, seed=3, pitch_up_semitones=12, pitch_up_probability=0)
    peaks = []
    for epoch in range(8):
        for dataset in (plain, raised, off):
            dataset.set_epoch(epoch)
        assert torch.equal(off[0], plain[0])  # probability 0 draws nothing: the windows of no augmentation
        audio = raised[0]
        assert audio.shape == (segment,) and audio[-50:].abs().max() > 0.3  # a full window, not padded
        spectrum = np.abs(np.fft.rfft(audio.numpy() * np.hanning(segment)))
        peaks.append(np.argmax(spectrum) * rate / segment)
    assert all(195 <= f <= 405 for f in peaks) and max(peaks) - min(peaks) > 50, peaks


def test_epoch_batches_split_a_shuffle_between_processes() -> None:
    ranks = [epoch_batches(10, 2, epoch=4, seed=7, rank=r, world_size=2) for r in range(2)]
    order = torch.randperm(10, generator=torch.Generator().manual_seed(7 + 4)).tolist()
    for r in range(2):
        assert ranks[r] == [order[r::2][0:2], order[r::2][2:4]]  # 5 per process: 2 full batches
    assert epoch_batches(10, 2, 5, 7) != epoch_batches(10, 2, 4, 7)
    with pytest.raises(WaveGradError, match="batch_size"):
        epoch_batches(3, 2, 0, 7, 0, 2)


def test_resample_corpus_writes_a_usable_list_and_keeps_inputs(tmp_path: Path) -> None:
    originals = {p: p.read_bytes() for p in CLIPS[:2]}
    source = write_list(tmp_path / "train.txt", [*CLIPS[:2], tmp_path / "gone.wav"])
    new_list, errors = resample_corpus(source, tmp_path / "out", 22050)
    assert len(errors) == 1 and "gone.wav" in errors[0]
    paths, bad = check_filelist(new_list, 22050)
    assert len(paths) == 2 and not bad
    assert abs(sf.info(paths[0]).frames / 22050 - sf.info(CLIPS[0]).frames / 16000) < 1e-3
    assert all(p.read_bytes() == data for p, data in originals.items())
    with pytest.raises(WaveGradError, match="would overwrite"):
        resample_corpus(new_list, tmp_path / "out", 16000)


def test_read_filelist_is_its_own_module(tmp_path: Path) -> None:
    """Training, mel, search and benchmarks read filelists without the inference CLI module."""
    from wavegrad import data, mel, search

    (tmp_path / "a.wav").touch()
    listing = write_list(tmp_path / "list.txt", ["a.wav|speaker", "", str(CLIPS[0])])
    assert read_filelist(listing) == [tmp_path / "a.wav", CLIPS[0]]
    assert read_filelist.__module__ == "wavegrad.filelist"
    assert data.read_filelist is mel.read_filelist is search.read_filelist is read_filelist


@pytest.mark.parametrize("window", [["7", "3"], ["5"], ["five", "30"]])
def test_asterisk_fetch_refuses_a_bad_length_window_in_one_line(tmp_path: Path, window: list[str]) -> None:
    """get_asterisk_voice.sh LANG OUT N EXCLUDE MIN_S MAX_S: a window it cannot use stops it before any download."""
    script = VOICES.parent / "get_asterisk_voice.sh"
    done = subprocess.run(["sh", str(script), "en", str(tmp_path / "en_allison"), "5", "/dev/null", *window],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "MIN_S MAX_S" in done.stderr
    assert not (tmp_path / "en_allison").exists()
