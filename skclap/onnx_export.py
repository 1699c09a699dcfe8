"""ONNX export: a model's two towers as ONNX graphs, to run without PyTorch (onnxruntime, other
languages, browsers).

``export_onnx(model, out)`` writes

- ``out/audio.onnx``: input ``waveform``, float32 ``(batch, window_samples)`` at the model's rate, one
  window a row; output ``embedding``, ``(batch, proj_dim)``, projected, before L2 normalisation. The
  log-mel front-end is inside the graph (ONNX's ``STFT`` operator); the batch is dynamic.
- ``out/text.onnx``: inputs ``input_ids`` and ``attention_mask`` (and ``token_type_ids`` where the
  model's tokenisation gives them to its tower: a GPT-2 tower with a BERT-style tokenizer reads
  them), int64 ``(batch, tokens)``; output ``embedding`` as above. Batch and length are dynamic.
- the tokenizer's files, and ``out/skclap-onnx.json``: what is done outside the graphs (reading,
  resampling, windowing and padding, pooling a clip's windows, tokenising, normalising), with the
  numbers it needs.

Each graph is checked against the model with onnxruntime before it is kept (``check=True``). The
exporter is PyTorch's own (``torch.onnx.export(dynamo=True)``); onnxruntime is needed for the check
only.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .batching import normalize_rows
from .onnx_engine import MANIFEST

__all__ = ["export_onnx"]
#: Largest |difference| to the torch model's L2-normalised embedding that the export's check accepts.
TOLERANCE = 1e-4


class _AudioGraph(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        # a model whose front-end is not torch gives its graph form, and that form's constants,
        # which the graph keeps as its own
        self.graph = getattr(model, "encode_audio_graph", None)
        self.names: list[str] = []
        for name, value in (model.graph_constants() if self.graph is not None else {}).items():
            self.register_buffer(name, value, persistent=False)
            self.names.append(name)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            return self.model.encode_audio(waveform)
        return self.graph(waveform, **{n: getattr(self, n) for n in self.names})


class _TextGraph(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        tokens = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            tokens["token_type_ids"] = token_type_ids
        return self.model.encode_text(tokens)


def _export(module: nn.Module, args: tuple, inputs: Sequence[str], dynamic: dict, path: Path, opset: int) -> None:
    """One graph, its output named ``embedding`` (a value of that name inside it, such as a word
    embedding's, renamed first: ONNX names are unique in a graph)."""
    with torch.no_grad():
        program = torch.onnx.export(
            module.eval(), args, dynamo=True, input_names=list(inputs), dynamic_shapes=dynamic, opset_version=opset, verbose=False
        )
    if program is None:
        raise RuntimeError(f"torch.onnx.export returned no program for {path.name}")
    graph = program.model.graph
    for node in graph.all_nodes() if hasattr(graph, "all_nodes") else graph:
        for value in node.outputs:
            if value.name == "embedding" and value not in graph.outputs:
                value.name = "embedding_inner"
    graph.outputs[0].name = "embedding"
    # the weights inside the file, where ONNX's 2 GB limit on one file allows (one file a tower)
    size = sum(p.numel() * p.element_size() for p in module.parameters()) + sum(b.numel() * b.element_size() for b in module.buffers())
    program.save(str(path), external_data=size >= 1_800_000_000)


def _manifest(model: Any) -> dict[str, Any]:
    cfg = model.config
    suffix = model.config.text.suffix if hasattr(model.config, "text") else ""
    limit = model.text_limit() if hasattr(model, "text_limit") else model.config.text_max_length
    return {
        "format": "skclap-onnx",
        "version": 1,
        "source": os.path.basename(str(getattr(model, "source", None) or "")) or None,
        "sample_rate": cfg.sample_rate,
        "window_samples": cfg.window_samples,
        "proj_dim": cfg.proj_dim,
        "logit_scale": float(model.logit_scale.detach().exp()),
        "audio": {
            "input": "waveform: float32 (batch, window_samples), mono, at sample_rate, one window a row",
            "output": "embedding: float32 (batch, proj_dim), before L2 normalisation",
            "outside_the_graph": [
                "read the file and average its channels",
                "resample to sample_rate (soxr, high quality)",
                "cut into windows of window_samples (skclap.audio.window_spans); a clip shorter than a window "
                f"is filled by {model.window_padding!r} (skclap.audio.PADDINGS)",
                "the clip's embedding is the mean of its windows' embeddings, leaving out windows more than "
                "quiet_window_db under its loudest (mean square, in dB) where quiet_window_db is set",
                "L2-normalise",
            ],
            "resampled_length": "ceil(samples * sample_rate / rate), a missing last sample zero (skclap.audio.resampled_length)",
            "window_padding": model.window_padding,
            "quiet_window_db": model.quiet_window_db,
        },
        "text": {
            "inputs": "the tokenizer's tensors, by name, int64 (batch, tokens), right-padded",
            "input_names": [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in model.tokenize(["a"])],
            "output": "embedding: float32 (batch, proj_dim), before L2 normalisation",
            "tokenizer": "the tokenizer files in this folder (tokenizer.json: the Hugging Face tokenizers library)",
            "suffix": suffix,
            "pad_token_id": model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0,
            "max_tokens": limit,
            "outside_the_graph": [
                "tokenise text + suffix with the tokenizer, special tokens added; a text longer than max_tokens is "
                "cut before the suffix (skclap.models.clap.tokenize_with_suffix)",
                "L2-normalise",
            ],
        },
    }


def _check(session: Any, feeds: dict[str, np.ndarray], expected: np.ndarray, what: str) -> float:
    got = session.run(None, feeds)[0]
    if got.shape != expected.shape:
        raise RuntimeError(f"the exported {what} graph gives shape {got.shape}; the model gives {expected.shape}")
    # Compared as every consumer uses them, L2-normalised: float32 rounding grows with the unnormalised
    # vector's scale, which a trained projection sets, while the direction is what is searched and scored.
    diff = float(np.abs(normalize_rows(got) - normalize_rows(expected)).max())
    if not diff <= TOLERANCE:
        raise RuntimeError(f"the exported {what} graph differs from the model by {diff:.3g} (L2-normalised vectors)")
    return diff


def export_onnx(
    model: Any,
    out: str | os.PathLike,
    *,
    opset: int = 18,
    check: bool = True,
    quantize: str | None = None,
    calibration: Sequence[Any] | None = None,
    float_layers: int = 4,
) -> Path:
    """Export ``model`` (a name, a path or a model object: the bundled model, msclap 2022 and 2023, the
    presets, the LAION models, fused or not) to ``out``; returns ``out``. See the module's docstring
    for what is written. A fused LAION model's graph takes windows of up to 10 s, as its global
    branch does; a longer clip's fusion input is not in it.

    ``quantize="int8"`` writes the audio graph with int8 convolutions and matrix products
    (onnxruntime's static quantisation, per channel), their activation ranges measured on the
    windows of ``calibration`` (audio items as the estimators take them: what the model will hear);
    the front-end and the first ``float_layers`` convolutions stay float32: by default four (CNN14's
    first two blocks, on the largest feature maps, whose int8 error reaches the embedding most);
    fewer are faster and further from the float32 model (docs/onnx.md measures both). skclap's own
    architectures only."""
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8'; got {quantize!r}")
    if float_layers < 1:
        raise ValueError(f"float_layers must be 1 or more (the first layer's input is the log-mel itself); got {float_layers}")
    if quantize and not calibration:
        raise ValueError("an int8 export is calibrated on audio: pass calibration=[clips the model will hear]")
    from .backends import LaionCLAP
    from .checkpoints import resolve_model
    from .models import CLAPModel
    from .models.tokenizer import save_tokenizer

    clap = resolve_model(model, "cpu" if isinstance(model, (str, os.PathLike)) else "auto")
    if not isinstance(clap, (CLAPModel, LaionCLAP)):
        raise NotImplementedError(
            f"ONNX export covers skclap's architectures and LAION's (CLAPModel, LaionCLAP); {type(clap).__name__} is neither"
        )
    if quantize and not isinstance(clap, CLAPModel):
        raise NotImplementedError(f"an int8 export covers skclap's architectures (CLAPModel); this is {type(clap).__name__}")
    if clap.device.type != "cpu":
        raise ValueError(f"export a model on the CPU; this one is on {clap.device} (model.to('cpu'))")
    if clap.logit_scale.dtype != torch.float32:
        raise ValueError(f"export a float32 model; this one is {clap.logit_scale.dtype} (model.float())")
    for package in ("onnxscript", "onnxruntime") if check else ("onnxscript",):
        try:
            __import__(package)
        except ImportError:
            raise ImportError(f"ONNX export needs {package}: pip install 'skclap[onnx]'") from None
    final = Path(out)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise FileExistsError(f"{os.fspath(final)!r} exists and is not an empty folder: export into a new one")
    final.parent.mkdir(parents=True, exist_ok=True)
    # written beside it, and put in place once checked: a failed export leaves nothing behind
    dest = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    modes = {m: m.training for m in clap.modules()}  # each module's own, restored as it was
    clap.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        wave = (torch.rand(2, clap.config.window_samples, generator=gen) - 0.5) * 0.2
        tokens = clap.tokenize(["a dog barking", "rain"])
        batch, length = torch.export.Dim("batch"), torch.export.Dim("tokens")
        _export(_AudioGraph(clap), (wave,), ["waveform"], {"waveform": {0: batch}}, dest / "audio.onnx", opset)
        # every tensor the tokenizer gives goes in (a BERT-style tokenizer's token_type_ids too)
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in tokens]
        dims = {0: batch, 1: length}
        _export(_TextGraph(clap), tuple(tokens[k] for k in names), names, {k: dims for k in names}, dest / "text.onnx", opset)
        save_tokenizer(clap.tokenizer, dest)
        manifest = _manifest(clap)
        if check:
            _check_export(clap, dest)
        if quantize:
            assert calibration is not None
            manifest["audio"]["quantized"] = _quantize_audio(clap, dest, calibration, float_layers)
        (dest / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            final.rmdir()
        dest.rename(final)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
        for module, training in modes.items():
            module.training = training
    return final


def _check_export(clap: Any, dest: Path) -> None:
    """The graphs against the model, on a batch size and a text length other than the export's."""
    import onnxruntime as ort

    gen = torch.Generator().manual_seed(1)
    n, rate = clap.config.window_samples, clap.config.sample_rate
    t = torch.arange(n) / rate
    tone = torch.sin(2 * torch.pi * 1000 * t)  # a full-scale tone: where float32 spectra would drift
    wave = torch.stack([(torch.rand(n, generator=gen) - 0.5) * 0.5, tone, 1.5 * tone, torch.zeros(n), 1e-4 * tone]).float()
    tokens = clap.tokenize(["a", "the low sound of a cello played softly, then a trumpet, then silence", "rain on a roof"])
    with torch.no_grad():
        audio_ref = clap.encode_audio(wave).numpy()
        text_ref = clap.encode_text(tokens).numpy()
    opts = ort.SessionOptions()
    audio = ort.InferenceSession(str(dest / "audio.onnx"), opts, providers=["CPUExecutionProvider"])
    text = ort.InferenceSession(str(dest / "text.onnx"), opts, providers=["CPUExecutionProvider"])
    _check(audio, {"waveform": wave.numpy()}, audio_ref, "audio")
    if sorted(i.name for i in text.get_inputs()) != sorted(tokens):
        raise RuntimeError(f"the text graph takes {[i.name for i in text.get_inputs()]}; the tokenizer gives {list(tokens)}")
    _check(text, {k: v.numpy() for k, v in tokens.items()}, text_ref, "text")


def _quantize_audio(clap: Any, dest: Path, calibration: Sequence[Any], float_layers: int) -> dict[str, Any]:
    """Replace ``dest/audio.onnx`` by its static int8 form, calibrated on ``calibration``'s windows;
    return what the manifest records of it (calibration size, cosines to the float32 model)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .int8 import calibration_windows, check_int8

    wins = calibration_windows(clap, calibration)
    graph = dest / "audio.onnx"
    pre = dest / "audio.pre.onnx"
    quant_pre_process(str(graph), str(pre), skip_symbolic_shape=True)
    nodes = list(onnx.load(str(pre)).graph.node)
    convs = [i for i, n in enumerate(nodes) if n.op_type == "Conv"]
    float_layers = min(float_layers, len(convs))
    last_float = convs[float_layers - 1]
    # the front-end (the mel filterbank's product) and the first layers, the first of which takes
    # the log-mel itself
    keep = [n.name for n in nodes[: last_float + 1] if n.op_type in ("Conv", "MatMul", "Gemm")]

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"waveform": wins[i : i + 8]} for i in range(0, len(wins), 8)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantized = dest / "audio.int8.onnx"
    quantize_static(
        str(pre),
        str(quantized),
        Windows(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv", "MatMul", "Gemm"],
        nodes_to_exclude=keep,
    )
    import onnxruntime as ort

    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    got = np.concatenate([session.run(None, {"waveform": wins[i : i + 8]})[0] for i in range(0, len(wins), 8)])
    with torch.no_grad():
        ref = np.concatenate([clap.encode_audio(torch.from_numpy(wins[i : i + 8])).numpy() for i in range(0, len(wins), 8)])
    low, mean = check_int8(wins, got, ref, "the int8 audio graph")
    quantized.replace(graph)
    pre.unlink()
    return {
        "precision": f"int8 (static, per channel; front-end and first {float_layers} convolution(s) float32)",
        "float_layers": float_layers,
        "calibration_windows": len(wins),
        "min_cosine_calibration": round(low, 4),
        "mean_cosine_calibration": round(mean, 4),
    }
