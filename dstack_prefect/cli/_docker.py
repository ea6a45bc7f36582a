"""Commands: `dstack image build` (the runtime image Docker steps run in)."""

from __future__ import annotations

from typing import Annotated

import typer

from dstack_prefect.cli._app import app, console, handles_errors

image_app = typer.Typer(
    name="image",
    help="Build the images `--docker` runs bash/code/lab/notebook steps in.",
    no_args_is_help=True,
)
app.add_typer(image_app, name="image")


@image_app.command("build")
@handles_errors
def build(
    cuda: Annotated[bool, typer.Option("--cuda", help="Build the CUDA variant for GPU steps.")] = False,
    python: Annotated[
        str,
        typer.Option(
            "--python",
            help="Python major.minor inside the image; a full image needs 3.11+, older only --slim.",
        ),
    ] = "3.11",
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            help="Base image. Default python:<python>-slim-bookworm (nvidia/cuda with --cuda); "
            "without a registry use dstack-prefect/base:bookworm from .ci/docker-setup.sh.",
        ),
    ] = None,
    slim: Annotated[
        bool,
        typer.Option(
            "--slim",
            help="Only a Python venv: no dstack-prefect, no prefect. Enough for `dstack run --docker`, "
            "which uses it when the full image for a step's Python is missing.",
        ),
    ] = False,
) -> None:
    """Build dstack-prefect/runtime:<version>-py<python>[-cuda][-slim] from a wheelhouse (no network
    in the build).

    A missing base image is pulled first; without a registry, pass --base with one on this engine.

    Example: dstack image build --python 3.11 --base dstack-prefect/base:bookworm
    """
    from dstack_prefect.executors._docker_image import build_runtime_image  # noqa: PLC0415

    tag = build_runtime_image(
        python=python,
        cuda=cuda,
        base=base,
        slim=slim,
        on_line=lambda line: console.print(line, highlight=False, markup=False),
    )
    console.print(f"built [bold]{tag}[/]")
