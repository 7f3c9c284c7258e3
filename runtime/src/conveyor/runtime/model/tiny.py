"""Build the tiny default model: a byte-level BPE tokenizer and a random Llama checkpoint.

Everything comes from files shipped in this package and a fixed seed, so two builds are
byte-identical and no network is ever touched. The weights are random: the model is for
exercising the serving path (engine, streaming, forced outputs), not for answering questions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from conveyor.runtime.model.manifest import is_current, staged, write_manifest

DEFAULT_MODEL_DIR = Path.home() / ".cache" / "conveyor" / "models" / "tiny"

# Chat structure is special (never shown to users); tool-call markers are ordinary added tokens
# so that they survive detokenization, as in Qwen2.5, and parsers see them in the text.
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TOOL_MARKERS = [
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "[TOOL_CALLS]",
    "<|python_tag|>",
]


@dataclass(frozen=True)
class TinyModelSpec:
    """Sized so that vLLM on a laptop CPU decodes well over 100 tokens/s at batch 1."""

    vocab_size: int = 2048
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_positions: int = 8192
    seed: int = 20240601
    recipe: int = 2  # bump when the build changes: a model built by another recipe is rebuilt


def _package_text(name: str) -> str:
    return resources.files("conveyor.runtime.model").joinpath(name).read_text(encoding="utf-8")


def _train_tokenizer(spec: TinyModelSpec):  # -> PreTrainedTokenizerFast
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # Added before training so the corpus' markers are kept whole instead of being merged into BPE.
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    tokenizer.add_tokens([AddedToken(m, special=False, normalized=False) for m in TOOL_MARKERS])
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,  # listing the markers here would make them special
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_package_text("corpus.txt").splitlines(keepends=True), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=spec.max_positions,
        chat_template=_package_text("chat_template.jinja"),
    )


def _random_model(spec: TinyModelSpec, tokenizer):  # -> LlamaForCausalLM
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        max_position_embeddings=spec.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        torch_dtype="bfloat16",
    )
    torch.manual_seed(spec.seed)
    # Initialised in float32 (deterministic on the CPU), stored as bfloat16: the dtype vLLM
    # serves on the CPU, so nothing is cast at load time.
    return LlamaForCausalLM(config).to(torch.bfloat16).eval()


def build_tiny(out: Path = DEFAULT_MODEL_DIR, spec: TinyModelSpec | None = None) -> Path:
    """Build the tiny model into ``out``, or reuse it when it is already there and intact."""
    spec = spec or TinyModelSpec()
    if is_current(out, asdict(spec)):
        return out
    with staged(out) as staging, tqdm(total=4, desc="building tiny model", unit="step") as bar:
        bar.set_postfix_str("tokenizer")
        tokenizer = _train_tokenizer(spec)
        tokenizer.save_pretrained(staging)
        bar.update()
        bar.set_postfix_str("weights")
        model = _random_model(spec, tokenizer)
        bar.update()
        bar.set_postfix_str("saving")
        model.save_pretrained(staging, safe_serialization=True)
        bar.update()
        bar.set_postfix_str("checksums")
        write_manifest(staging, asdict(spec))
        bar.update()
    return out
