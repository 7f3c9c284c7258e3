"""The `conveyor-operator` command: print the CRD, render a ConveyorService, run the operator."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

from conveyor.operator.crd import crd_yaml
from conveyor.operator.render import render

DEFAULT_LIVENESS_PORT = 8080


def _cmd_crd(args: argparse.Namespace) -> None:
    sys.stdout.write(crd_yaml())


def _cmd_render(args: argparse.Namespace) -> None:
    with open(args.file) if args.file != "-" else sys.stdin as f:
        obj: dict[str, Any] = yaml.safe_load(f)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("namespace", args.namespace)
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    children = render(obj, service_monitors=args.service_monitors)
    sys.stdout.write(yaml.safe_dump_all(children, sort_keys=False))


def _cmd_run(args: argparse.Namespace) -> None:
    # kopf and the API client load only for `run`: `crd` and `render` work without a cluster.
    import kopf

    from conveyor.operator.handlers import build_registry
    from conveyor.operator.kube import Kube

    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    registry = build_registry(
        lambda: Kube.connect(args.kubeconfig), resync_seconds=args.resync_seconds
    )
    kopf.run(
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        # One replica with a Recreate strategy: no peering between operators is needed.
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz"
        if args.liveness_port
        else None,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="conveyor-operator",
        description="The Conveyor Kubernetes operator: ConveyorService → vLLM pods with tools.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crd = commands.add_parser("crd", help="print the ConveyorService CRD (YAML)")
    crd.set_defaults(func=_cmd_crd)

    rnd = commands.add_parser("render", help="print the children a ConveyorService file renders")
    rnd.add_argument("file", help="a ConveyorService YAML file, or - for stdin")
    rnd.add_argument("--namespace", default="default", help="namespace when the file has none")
    rnd.add_argument(
        "--service-monitors",
        action="store_true",
        help="render as if the Prometheus Operator were installed",
    )
    rnd.set_defaults(func=_cmd_render)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="watch only this namespace (repeatable); default: every namespace",
    )
    run.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, else $KUBECONFIG)")
    run.add_argument(
        "--liveness-port",
        type=int,
        default=DEFAULT_LIVENESS_PORT,
        help=f"serve GET /healthz on this port; 0 turns it off (default {DEFAULT_LIVENESS_PORT})",
    )
    run.add_argument(
        "--resync-seconds",
        type=float,
        default=60.0,
        help="re-check every ConveyorService this often (default 60)",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
