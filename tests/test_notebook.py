"""notebooks/inference.ipynb runs end to end (nbclient) on a tiny trained model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_model import ROOT, one_thread, train_tiny_checkpoint

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")


def test_inference_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with one_thread():
        checkpoint = train_tiny_checkpoint(tmp_path / "checkpoint_40.pt")
    for name, value in {"WAVEGRAD_CHECKPOINT": str(checkpoint), "WAVEGRAD_GRID": "8", "WAVEGRAD_BUDGET": "6",
                        "WAVEGRAD_SECONDS": "0.3", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(ROOT / "notebooks" / "inference.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    assert str(checkpoint) in text and "refined" in text and "real-time factor" in text
    assert sum("<audio" in o.get("data", {}).get("text/html", "") for o in outputs) == 6  # real + 4 + found
    assert not any(o.output_type == "error" for o in outputs)
