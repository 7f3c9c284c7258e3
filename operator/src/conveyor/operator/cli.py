"""The `conveyor-operator` command: print the CRD, render a ConveyorService, run the operator."""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
from typing import Any

import yaml

from conveyor.operator.crd import crd_yaml
from conveyor.operator.render import Images, render

DEFAULT_LIVENESS_PORT = 8080


def _cmd_crd(args: argparse.Namespace) -> None:
    sys.stdout.write(crd_yaml())


def _cmd_render(args: argparse.Namespace) -> None:
    with open(args.file) if args.file != "-" else sys.stdin as f:
        obj: dict[str, Any] = yaml.safe_load(f)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("namespace", args.namespace)
    meta.setdefault("uid", "00000000-0000-0000-0000-000000000000")
    children = render(obj, images=_images(args), service_monitors=args.service_monitors)
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
    images = _images(args)
    logging.getLogger("conveyor.operator").info(
        "default images: runtime %s, runtime (CPU) %s, tools %s",
        images.runtime, images.runtime_cpu, images.tools,
    )  # fmt: skip
    registry = build_registry(lambda: Kube.connect(args.kubeconfig), images=images)
    kopf.run(
        registry=registry,
        clusterwide=not args.namespace,
        namespaces=args.namespace or (),
        # With peering, replicas agree through a (Cluster)KopfPeering object that the one with
        # the highest priority works and the others stand by; equal priorities would pause all,
        # so each process draws its own.
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=args.priority if args.priority is not None else random.randint(1, 2**31),
        liveness_endpoint=f"http://0.0.0.0:{args.liveness_port}/healthz"
        if args.liveness_port
        else None,
    )


def _images(args: argparse.Namespace) -> Images:
    local = Images.local()
    return Images(
        runtime=args.runtime_image or local.runtime,
        runtime_cpu=args.runtime_cpu_image or local.runtime_cpu,
        tools=args.tools_image or local.tools,
    )


def _add_image_args(parser: argparse.ArgumentParser) -> None:
    """The default images, for ConveyorServices that name none; also from the environment."""
    local = Images.local()
    for flag, env, default, what in (
        ("--runtime-image", "CONVEYOR_RUNTIME_IMAGE", local.runtime, "runtime image (GPU)"),
        ("--runtime-cpu-image", "CONVEYOR_RUNTIME_CPU_IMAGE", local.runtime_cpu,
         "runtime image for services with no GPU"),
        ("--tools-image", "CONVEYOR_TOOLS_IMAGE", local.tools, "tools sidecar image"),
    ):  # fmt: skip
        parser.add_argument(
            flag, default=os.environ.get(env), metavar="IMAGE",
            help=f"default {what}; ${env}, else {default}",
        )  # fmt: skip


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
    _add_image_args(rnd)
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
    _add_image_args(run)
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="run as one of several replicas that elect one active through the (Cluster)"
        "KopfPeering NAME, which must exist (the chart creates one named like the operator's "
        "Deployment); default: standalone",
    )
    run.add_argument(
        "--priority",
        type=int,
        help="peering priority (highest is active); default: a random one per process",
    )
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
