"""Content encoders on real speech: Whisper (bundled tiny.en), HuBERT from fairseq- and Hugging Face-format weights."""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from voiceconv.content import load_encoder
from voiceconv.hubert import load_hubert
from wavegrad.audio import load_audio
from wavegrad.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parent.parent
VOICES = REPO / "data" / "voices"
FEMALE_CLIP = VOICES / "en_allison" / "conf-getpin.flac"
MALE_CLIP = VOICES / "it_carlo" / "conf-getpin.flac"

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="transformers (optional) not installed")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return load_audio(FEMALE_CLIP, 16000).numpy()


def test_whisper_shapes_and_frame_rate(speech: np.ndarray) -> None:
    encoder = load_encoder("whisper")
    assert encoder.dim == 384 and encoder.version == "tiny.en"
    for n in (len(speech), 16000):
        features = encoder(speech[:n])
        assert features.shape == (n // 320, 384) and features.dtype == np.float32  # 50 frames/s
        assert np.isfinite(features).all() and features.std() > 0.1
    # Speech and silence give different features (the encoder sees the audio).
    assert np.abs(encoder(speech[:16000]) - encoder(np.zeros(16000, np.float32))).mean() > 0.1



def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_whisper_match_keys_drop_the_place_in_the_window(speech: np.ndarray) -> None:
    """The same speech 3 s later in Whisper's window: its features differ by their place (cosine ~0.6), its match
    keys far less; and frames of another voice matched by their keys are not the ones at the same place."""
    encoder = load_encoder("whisper")
    later = np.concatenate([np.zeros(3 * 16000, np.float32), speech])
    here, there = encoder(speech), encoder(later)[150:150 + len(speech) // 320]
    raw = np.median(_cosines(here, there))
    keyed = np.median(_cosines(encoder.match_keys(here), encoder.match_keys(there)))
    assert raw < 0.75 and keyed > raw + 0.15
    assert encoder.match_keys(here).shape == here.shape and encoder.match_keys(here).dtype == np.float32
    other = [encoder(load_audio(path, 16000).numpy()) for path in sorted((VOICES / "it_carlo").glob("*.flac"))[:12]]
    places, frames = np.concatenate([np.arange(len(f)) for f in other]), np.arange(len(here))

    def matched_places(query: np.ndarray, pool: np.ndarray) -> np.ndarray:
        return places[np.argmax(query @ pool.T / np.linalg.norm(pool, axis=1), axis=1)]

    by_features = matched_places(here, np.concatenate(other))
    by_keys = matched_places(encoder.match_keys(here), np.concatenate([encoder.match_keys(f) for f in other]))
    assert np.corrcoef(by_features, frames)[0, 1] > 0.9  # raw matching follows the place (8 frames off)
    assert np.median(np.abs(by_keys - frames)) > 1.5 * np.median(np.abs(by_features - frames))  # 16 frames


_TO_FAIRSEQ = [("feature_extractor.conv_layers.0.layer_norm.", "feature_extractor.conv_layers.0.2."),
               (".conv.weight", ".0.weight"), ("feature_projection.layer_norm.", "layer_norm."),
               ("feature_projection.projection.", "post_extract_proj."), ("pos_conv_embed.conv.", "pos_conv.0."),
               ("parametrizations.weight.original0", "weight_g"), ("parametrizations.weight.original1", "weight_v"),
               (".attention.", ".self_attn."), ("feed_forward.intermediate_dense", "fc1"),
               ("feed_forward.output_dense", "fc2")]


def _fairseq_key(key: str) -> str | None:
    """transformers HubertModel name -> fairseq name, written out independently of voiceconv.hubert."""
    if key.startswith("masked_spec_embed"):
        return None
    if key.startswith("encoder.layers.") and ".layer_norm." in key:
        key = key.replace(".layer_norm.", ".self_attn_layer_norm.")
    for old, new in _TO_FAIRSEQ:
        key = key.replace(old, new)
    return key


@pytest.fixture(scope="module")
def hubert_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object, torch.nn.Linear]:
    """A tiny random HuBERT saved as a Hugging Face folder and as a fairseq-style .pt (with a final_proj and a
    pickled object of a 'fairseq' class that is not importable at load time)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.HubertConfig(hidden_size=32, num_hidden_layers=12, num_attention_heads=4,
                                       intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                                       num_conv_pos_embedding_groups=4)
    model = transformers.HubertModel(config).eval()
    root = tmp_path_factory.mktemp("hubert")
    model.save_pretrained(root / "hf")
    final_proj = torch.nn.Linear(32, 16)
    state = {_fairseq_key(k): v for k, v in model.state_dict().items() if _fairseq_key(k)}
    state |= {"final_proj.weight": final_proj.weight.detach(), "final_proj.bias": final_proj.bias.detach(),
              "label_embs_concat": torch.randn(504, 16)}
    fake = types.ModuleType("fairseq.fake_configs")
    fake.TaskConfig = type("TaskConfig", (), {"__module__": "fairseq.fake_configs"})
    sys.modules.update({"fairseq": types.ModuleType("fairseq"), "fairseq.fake_configs": fake})
    try:
        cfg = {"model": {"encoder_attention_heads": 4, "conv_pos": 16, "conv_pos_groups": 4,
                         "conv_feature_layers": "[(16,10,5)] + [(16,3,2)] * 4 + [(16,2,2)] * 2"},
               "task": {"normalize": False}}
        torch.save({"model": state, "cfg": cfg, "extra": fake.TaskConfig()}, root / "hubert_base.pt",
                   pickle_protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        del sys.modules["fairseq"], sys.modules["fairseq.fake_configs"]
    return root / "hubert_base.pt", root / "hf", model, final_proj


@needs_transformers
def test_hubert_fairseq_and_hf_formats_match_transformers(speech: np.ndarray, hubert_checkpoints) -> None:
    fairseq_path, hf_dir, reference, final_proj = hubert_checkpoints
    x = torch.from_numpy(speech)[None]
    with torch.no_grad():
        hidden = reference(x, output_hidden_states=True).hidden_states
        expected = {"v1": final_proj(hidden[9])[0].numpy(), "v2": hidden[12][0].numpy()}
    frames = (len(speech) - 400) // 320 + 1  # 50 frames/s
    for path in (fairseq_path, hf_dir):
        for version in (("v1", "v2") if path == fairseq_path else ("v2",)):
            encoder = load_encoder("hubert", path, version)
            features = encoder(speech)
            assert features.shape == (frames, 16 if version == "v1" else 32) == expected[version].shape
            assert encoder.dim == features.shape[1]
            np.testing.assert_allclose(features, expected[version], atol=2e-4, rtol=1e-3)
    with pytest.raises(ConfigError, match="final_proj"):  # HF HubertModel has no final_proj: v1 is refused
        load_encoder("hubert", hf_dir, "v1")


def test_hubert_missing_or_foreign_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_hubert(tmp_path / "nope.pt")
    torch.save({"model": {"something": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError):
        load_hubert(tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="--checkpoint"):
        load_encoder("hubert", None)
