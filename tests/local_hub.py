"""A local Hugging Face hub on 127.0.0.1, and stand-ins of every repository skclap registers.

The server answers the requests ``huggingface_hub``'s own client makes (``HEAD`` and ``GET`` on
``/{repo}/resolve/{revision}/{file}`` with ``X-Repo-Commit`` and ``ETag``, ``Range`` for resumed
downloads, ``/api/models/{repo}[/revision/{revision}]``, ``/api/models/{repo}/tree/{revision}/{folder}``, and 404s tagged ``X-Error-Code:
RepoNotFound`` / ``EntryNotFound`` as the hub tags them), so a test points ``HF_ENDPOINT`` at it
and runs the real client end to end. Faults can be set per file: an HTTP 500, or a download cut
off half way.

The stand-ins have random weights, small where the loader reads the architecture off the file and
full size where it does not (msclap's releases are loaded onto fixed architectures), in the layout
each tool writes:

- ``microsoft/msclap``: the reference code's ``CLAP`` module's ``state_dict()`` under ``"model"``
  (``CLAPWrapper.load_clap`` reads ``torch.load(...)["model"]``), saved by ``torch.save``'s default
  pickle protocol 2. Its text towers are the full BERT-base / GPT-2 of the release, and the buffers
  the transformers of 2022 kept in state dicts (BERT's ``position_ids``, GPT-2's ``attn.bias`` and
  ``attn.masked_bias``) are there as in the released files.
- ``lukewys/laion_clap``: what laion_clap's ``training/main.py`` saves, ``{"epoch", "name",
  "state_dict", "optimizer"}`` with the DataParallel ``module.`` prefix, protocol 2; the optimizer's
  learning rate is a ``numpy.float64`` (its ``cosine_lr`` scheduler computes it with numpy), pickled
  under numpy 1.x's names (``numpy.core.multiarray.scalar``, ``numpy.dtype``, ``_codecs.encode``),
  the globals the hub's pickle scan lists for these files. The towers come from laion_clap's own
  ``CLAP`` class (HTS-AT tiny, unfused or fused; a one-layer RoBERTa of the release's width). The
  three music files are HTS-AT base in the release; their stand-ins are HTS-AT tiny, which the
  loader reads off the weights the same way.
- ``laion/*``: transformers' ``ClapModel`` repositories as they are on the hub's main branch, with
  ``pytorch_model.bin`` only (no safetensors), ``config.json``, ``preprocessor_config.json`` and the
  RoBERTa tokenizer files; small towers. ``laion/larger_clap_music``'s text tower is collapsed on
  purpose (every text maps to nearly one vector), as reported of the released one.
- The tokenizers the releases name (``bert-base-uncased``, ``gpt2``, ``roberta-base``): their
  vocabulary files in the real formats, with small vocabularies.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import re
import threading
import types
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import torch

from skclap.models.tokenizer import basic_vocab

from . import reference

# ---------------------------------------------------------------------------------------- server


@functools.cache
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    """The file's sha256, its ETag on the hub (LFS files are tagged with it); hashed once per version."""
    stat = path.stat()
    return _sha256_of(path, stat.st_size, stat.st_mtime_ns)


def _commit(repo: str) -> str:
    return hashlib.sha1(repo.encode()).hexdigest()


class LocalHub:
    """A hub that serves ``files[repo][filename]`` (paths on disk) on 127.0.0.1.

    ``faults[(repo, filename)]``: ``"500"`` answers every request for the file with an HTTP 500;
    ``"truncate"`` sends the full ``Content-Length`` and then only half the bytes. ``requests``
    records ``(method, path)`` of every request.
    """

    def __init__(self, files: dict[str, dict[str, Path]]) -> None:
        self.files = files
        self.faults: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------------------ requests
    def _answer(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.requests.append((h.command, path))
        tree = re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)(?:/(.*))?", path)
        if tree:
            return self._tree(h, tree.group(1), tree.group(3) or "", body)
        api = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path)
        if api:
            return self._api(h, api.group(1), body)
        resolve = re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path)
        if not resolve:
            return self._error(h, 404, None, "not a hub route")
        repo, filename = resolve.group(1), resolve.group(3)
        if repo not in self.files:
            return self._error(h, 404, "RepoNotFound", f"Repository {repo} not found")
        if filename not in self.files[repo]:
            return self._error(h, 404, "EntryNotFound", f"{filename} does not exist in {repo}")
        fault = self.faults.get((repo, filename))
        if fault == "500":
            return self._error(h, 500, None, "Internal Error")
        path = self.files[repo][filename]
        size = path.stat().st_size
        start = 0
        rng = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if rng and int(rng.group(1)) < size:
            start = int(rng.group(1))
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", _commit(repo))
        h.send_header("ETag", f'"{sha256(path)}"')
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(size - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if fault == "truncate":
            h.send_header("Connection", "close")
        h.end_headers()
        if not body:
            return
        count = size - start
        if fault == "truncate":
            count //= 2
            h.close_connection = True
        with path.open("rb") as f:  # straight from the file to the socket: the files are up to 750 MB
            h.connection.sendfile(f, offset=start, count=count)

    def _api(self, h: BaseHTTPRequestHandler, repo: str, body: bool) -> None:
        if repo not in self.files:
            return self._error(h, 404, "RepoNotFound", f"Repository {repo} not found")
        info = {"id": repo, "modelId": repo, "sha": _commit(repo), "siblings": [{"rfilename": f} for f in sorted(self.files[repo])]}
        self._json(h, 200, info, body)

    def _tree(self, h: BaseHTTPRequestHandler, repo: str, folder: str, body: bool) -> None:
        """The repository's files under ``folder`` (flat repositories: only the root has any)."""
        if repo not in self.files:
            return self._error(h, 404, "RepoNotFound", f"Repository {repo} not found")
        if folder.strip("/"):
            return self._error(h, 404, "EntryNotFound", f"{folder} does not exist in {repo}")
        entries = [{"type": "file", "path": f, "size": p.stat().st_size, "oid": _commit(f)} for f, p in sorted(self.files[repo].items())]
        self._json(h, 200, entries, body)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(h, status, {"error": message}, h.command != "HEAD", headers)

    @staticmethod
    def _json(h: BaseHTTPRequestHandler, status: int, obj: Any, body: bool, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)


# ------------------------------------------------------------------------- pickled as numpy 1.x


class _Numpy1Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Python's pickler, writing numpy's globals under numpy 1.x's module names (``numpy.core``),
    as the released files name them; numpy 2 writes ``numpy._core``."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        module = getattr(obj, "__module__", "")
        if module.startswith("numpy._core") and self.proto < 4:
            self.write(pickle.GLOBAL + f"{module.replace('numpy._core', 'numpy.core')}\n{name or obj.__name__}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]


NUMPY1_PICKLE = types.SimpleNamespace(Pickler=_Numpy1Pickler, __name__="numpy1_pickle")


def save_protocol_2(obj: Any, path: Path) -> Path:
    """``torch.save`` with its default protocol (2), numpy globals under numpy 1.x names."""
    torch.save(obj, path, pickle_module=NUMPY1_PICKLE, pickle_protocol=2)
    return path


def pickled_globals(path: Path) -> set[str]:
    """The ``module.name`` globals a torch zip file's pickle names (what a hub pickle scan lists)."""
    with zipfile.ZipFile(path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    import pickletools

    found = set()
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name == "GLOBAL":
            found.add(str(arg).replace(" ", "."))
    return found


# ------------------------------------------------------------------------------- tokenizers


def byte_level_alphabet() -> list[str]:
    """GPT-2/RoBERTa's printable stand-ins for the 256 byte values."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def save_bert_tokenizer(out: Path) -> Path:
    from transformers import BertConfig, BertTokenizer

    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_text("\n".join(basic_vocab()) + "\n")
    BertTokenizer(vocab_file=str(out / "vocab.txt")).save_pretrained(out)
    BertConfig().save_pretrained(out)
    return out


def write_bpe_files(out: Path, vocab: dict[str, int]) -> None:
    """A byte-level BPE tokenizer's files as the hub's GPT-2/RoBERTa repositories hold them: the
    vocabulary and (here empty) merges, beside what the tokenizer's own save writes."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab))
    (out / "merges.txt").write_text("#version: 0.2\n")


def gpt2_vocab() -> dict[str, int]:
    """GPT-2's layout: ``!`` is id 0 (msclap 2023's pad token), ``<|endoftext|>`` the last id."""
    return {t: i for i, t in enumerate([*byte_level_alphabet(), "<|endoftext|>"])}


def save_gpt2_tokenizer(out: Path, config: bool = True) -> Path:
    """GPT-2's tokenizer files (:func:`gpt2_vocab`), and with ``config`` GPT-2's own config.json."""
    from transformers import GPT2Config, GPT2Tokenizer

    write_bpe_files(out, gpt2_vocab())
    GPT2Tokenizer(vocab=gpt2_vocab(), merges=[]).save_pretrained(out)
    if config:
        GPT2Config().save_pretrained(out)
    return out


def roberta_vocab() -> dict[str, int]:
    return {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>", *byte_level_alphabet()])}


def save_roberta_tokenizer(out: Path) -> Path:
    from transformers import RobertaConfig, RobertaTokenizer

    write_bpe_files(out, roberta_vocab())
    RobertaTokenizer(vocab=roberta_vocab(), merges=[]).save_pretrained(out)
    RobertaConfig().save_pretrained(out)
    return out


# ------------------------------------------------------------------------------ msclap files


def msclap_file(version: str, out: Path, work: Path, seed: int = 0) -> Path:
    """``CLAP_weights_{version}.pth``: the reference ``CLAP`` module with the release's full-size
    towers, random weights."""
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model

    ms = reference.msclap_models()
    torch.manual_seed(seed)
    if version == "2022":
        small = work / "bert-small"
        save_bert_tokenizer(small)
        BertModel(BertConfig(vocab_size=len(basic_vocab()), hidden_size=32, num_hidden_layers=1, num_attention_heads=2)).save_pretrained(
            small
        )
        ref = ms.CLAP("Cnn14", 44100, 1024, 320, 64, 50, 14000, 527, 2048, str(small), 768, 1024)
        ref.caption_encoder.base = BertModel(BertConfig(), add_pooling_layer=True)
    else:
        small = work / "gpt2-small"  # the reference picks GPT-2's pooling by "gpt" in the name
        save_gpt2_tokenizer(small)
        GPT2Model(GPT2Config(vocab_size=257, n_embd=32, n_layer=1, n_head=2)).save_pretrained(small)
        ref = ms.CLAP("HTSAT", 44100, 1024, 320, 64, 50, 8000, 527, 768, str(small), 768, 1024)
        ref.caption_encoder.base = GPT2Model(GPT2Config())
    state = ref.state_dict()
    if version == "2022":
        state["caption_encoder.base.embeddings.position_ids"] = torch.arange(512)[None]
    else:
        for i in range(12):
            state[f"caption_encoder.base.h.{i}.attn.bias"] = torch.tril(torch.ones(1024, 1024, dtype=torch.bool))[None, None]
            state[f"caption_encoder.base.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    return save_protocol_2({"model": state}, out)


# -------------------------------------------------------------------------- laion_clap files


def laion_reference(roberta_dir: Path, fused: bool, seed: int = 10) -> torch.nn.Module:
    """laion_clap's own ``CLAP`` (HTS-AT tiny, 48 kHz, 10 s; fused or not) with the one-layer
    RoBERTa in ``roberta_dir`` in place of ``roberta-base``."""
    from transformers import RobertaModel

    module = reference.laion_clap_model_module()
    audio_cfg = dict(
        model_type="HTSAT",
        model_name="tiny",
        sample_rate=48000,
        audio_length=1024,
        window_size=1024,
        hop_size=480,
        fmin=50,
        fmax=14000,
        class_num=527,
        mel_bins=64,
        clip_samples=480000,
    )
    text_cfg = dict(context_length=77, vocab_size=50265, width=512, heads=8, layers=12, model_type="roberta")
    saved = module.RobertaModel
    module.RobertaModel = types.SimpleNamespace(from_pretrained=lambda *a, **k: RobertaModel.from_pretrained(roberta_dir))
    try:
        torch.manual_seed(seed + fused)
        return module.CLAP(
            embed_dim=768,
            audio_cfg=audio_cfg,
            text_cfg=text_cfg,
            enable_fusion=fused,
            fusion_type="aff_2d" if fused else "None",
            joint_embed_shape=512,
            mlp_act="relu",
        ).eval()
    finally:
        module.RobertaModel = saved


def save_small_roberta(out: Path, seed: int = 4) -> Path:
    """A one-layer RoBERTa as wide as roberta-base (laion_clap's heads take 768-wide features)."""
    from transformers import RobertaConfig, RobertaModel

    save_roberta_tokenizer(out)
    cfg = RobertaConfig(
        vocab_size=len(roberta_vocab()),
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=96,
        max_position_embeddings=80,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        RobertaModel(cfg).save_pretrained(out)
    return out


def laion_checkpoint(ref: torch.nn.Module, name: str) -> dict[str, Any]:
    """The dictionary laion_clap's ``training/main.py`` saves, with the optimizer after one step
    (its state for the projection heads only, to keep the stand-in small)."""
    heads = [p for n, p in ref.named_parameters() if n.startswith(("audio_projection", "text_projection"))]
    opt = torch.optim.AdamW(heads, lr=1e-4)
    for p in heads:
        p.grad = torch.zeros_like(p)
    opt.step()
    for p in heads:
        p.grad = None
    opt_state = opt.state_dict()
    for group in opt_state["param_groups"]:
        group["lr"] = np.float64(0.5 * (1 + np.cos(np.pi * 3 / 45)) * 1e-4)  # cosine_lr, computed with numpy
    state = {"module." + k: v for k, v in ref.state_dict().items()}
    return {"epoch": 45, "name": name, "state_dict": state, "optimizer": opt_state}


# ------------------------------------------------------------------- transformers repositories


def small_clap(fused: bool, collapsed_text: bool = False, seed: int = 0, spread_text: bool = True) -> tuple[Any, Any]:
    """A small random ``ClapModel`` and its ``ClapProcessor`` (RoBERTa byte-level tokenizer).
    ``spread_text``: text-tower weights of unit gain (see below) instead of the initialiser's."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    vocab = roberta_vocab()
    cfg = ClapConfig(
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=80,
            projection_dim=24,
        ),
        audio_config=dict(
            depths=[1, 1, 1, 1],
            num_attention_heads=[1, 1, 2, 2],
            patch_embeds_hidden_size=16,
            hidden_size=128,
            projection_dim=24,
            enable_fusion=fused,
        ),
        projection_dim=24,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = ClapModel(cfg).eval()
        # The initialiser's weights (std 0.02) make an untrained text tower map every text to nearly
        # one vector; weights of unit gain let the random tower tell prompts apart, as trained ones do.
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.text_model.modules() if spread_text else ():
                if isinstance(module, torch.nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / module.in_features**0.5)
    if collapsed_text:
        with torch.no_grad():  # the text projection ignores its input: one vector for every text
            model.text_projection.linear2.weight.mul_(1e-4)
            model.text_projection.linear2.bias.normal_(0, 1.0)
    tok = RobertaTokenizer(vocab=vocab, merges=[])
    fe = ClapFeatureExtractor(truncation="fusion" if fused else "rand_trunc")
    return model, ClapProcessor(feature_extractor=fe, tokenizer=tok)


def save_transformers_repo(out: Path, fused: bool, collapsed_text: bool = False, bin_only: bool = True) -> Path:
    """A ``laion/*`` repository: config, weights (``pytorch_model.bin`` as transformers 4 wrote it,
    a ``torch.save`` of the state dict; or ``model.safetensors``), processor and tokenizer files."""
    model, processor = small_clap(fused, collapsed_text)
    out.mkdir(parents=True, exist_ok=True)
    if bin_only:
        model.config.save_pretrained(out)
        torch.save(model.state_dict(), out / "pytorch_model.bin")
    else:
        model.save_pretrained(out)
    # the hub's repositories hold preprocessor_config.json and the tokenizer's vocab.json/merges.txt
    processor.feature_extractor.save_pretrained(out)
    processor.tokenizer.save_pretrained(out)
    write_bpe_files(out, roberta_vocab())
    return out


# ---------------------------------------------------------------------------- every repository


def build_standins(root: Path) -> dict[str, dict[str, Path]]:
    """Every registered repository's files, written under ``root``: ``{repo: {filename: path}}``."""
    from skclap.registry import PRETRAINED

    root.mkdir(parents=True, exist_ok=True)
    work = root / "work"
    files: dict[str, dict[str, Path]] = {}

    def folder(repo: str, directory: Path) -> None:
        files[repo] = {p.name: p for p in directory.iterdir() if p.is_file()}

    folder("bert-base-uncased", save_bert_tokenizer(root / "bert-base-uncased"))
    folder("gpt2", save_gpt2_tokenizer(root / "gpt2"))
    folder("roberta-base", save_roberta_tokenizer(root / "roberta-base"))
    files["microsoft/msclap"] = {
        "CLAP_weights_2022.pth": msclap_file("2022", root / "CLAP_weights_2022.pth", work),
        "CLAP_weights_2023.pth": msclap_file("2023", root / "CLAP_weights_2023.pth", work),
    }
    roberta = save_small_roberta(work / "roberta-small")
    laion = {}
    for fused in (False, True):
        ref = laion_reference(roberta, fused)
        laion[fused] = save_protocol_2(laion_checkpoint(ref, "stand-in"), root / f"laion-{'fused' if fused else 'unfused'}.pt")
    files["lukewys/laion_clap"] = {}
    for p in PRETRAINED.values():
        if p.format == "laion":
            files["lukewys/laion_clap"][str(p.filename)] = laion["fusion" in str(p.filename)]
        elif p.format == "hf-clap":
            d = save_transformers_repo(root / p.repo_id, fused="fused" in p.repo_id, collapsed_text=p.repo_id == "laion/larger_clap_music")
            folder(p.repo_id, d)
    return files
