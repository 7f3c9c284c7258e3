"""The `conveyor` command: build the tiny model, generate, serve, benchmark."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from conveyor.runtime.model import DEFAULT_MODEL_DIR, ModelError, build_tiny, check_model


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


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help=f"model directory or hub id (default: the tiny model in {DEFAULT_MODEL_DIR})",
    )
    parser.add_argument("--max-model-len", type=int, help="context length (default: the model's)")


def _engine_options(args: argparse.Namespace, engine_argv: list[str] | None = None):
    from conveyor.runtime.engine import EngineOptions, engine_overrides

    return EngineOptions(
        model=_resolve_model(args.model),
        max_model_len=args.max_model_len,
        extra=engine_overrides(engine_argv or []),
    )


def _cmd_build_tiny(args: argparse.Namespace) -> None:
    out = build_tiny(Path(args.out).expanduser())
    print(out)


def _cmd_generate(args: argparse.Namespace) -> None:
    from conveyor.runtime.generate import run

    run(_engine_options(args), args.prompt, args.max_tokens, args.force, args.raw)


def _cmd_serve(args: argparse.Namespace) -> None:
    from conveyor.runtime.serve_command import run

    run(args, _engine_options(args, args.engine_argv))


def _cmd_bench(args: argparse.Namespace) -> None:
    from conveyor.runtime.bench.command import run

    run(args, _resolve_model(args.model))


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
    _add_model_args(serve)
    add_serve_args(serve)
    serve.set_defaults(func=_cmd_serve)

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
        "--model", help="model directory (default: the tiny model, built on first use)"
    )
    add_bench_args(bench)
    bench.set_defaults(func=_cmd_bench)
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
