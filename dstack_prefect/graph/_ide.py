"""The IDE providers (code, lab, notebook): what their step runs, as old dstack's runner did.

    lab / notebook   JupyterLab / Jupyter Notebook from the step's PATH, on $PORT_0, token $TOKEN
    code             openvscode-server from the step's PATH, on $PORT_0, token $CONNECTION_TOKEN

The IDE takes the first port; the workflow's own `ports` follow it (PORT_1...), as in old
dstack. `setup` runs first; the IDE then runs until the run is stopped. Old dstack installed
the IDE into its image; here it must be on the step's PATH (the host's, or the image's), and a
step without it fails at once saying what to install. Pure: no I/O.
"""

from __future__ import annotations

from dstack_prefect.graph._plan import PortSpec, Step

IDE_PROVIDERS = ("code", "lab", "notebook")

#: The variable that holds each IDE's access token (set by the engine when the step starts).
TOKEN_VARIABLE = {"code": "CONNECTION_TOKEN", "lab": "TOKEN", "notebook": "TOKEN"}

#: What each IDE is called where its URL is logged ("code: VS Code: http://...").
LABEL = {"code": "VS Code", "lab": "JupyterLab", "notebook": "Jupyter Notebook"}

#: The path that opens each IDE in a browser, with its token.
URL_PATH = {"code": "/?tkn=", "lab": "/lab?token=", "notebook": "/tree?token="}

_NEEDS = {
    "lab": ("jupyter lab --version", "JupyterLab", "pip install jupyterlab"),
    "notebook": ("jupyter notebook --version", "Jupyter Notebook", "pip install notebook"),
    "code": (
        "command -v openvscode-server",
        "openvscode-server",
        "see https://github.com/gitpod-io/openvscode-server/releases",
    ),
}

_START = {
    "lab": 'exec jupyter lab --no-browser --ip=127.0.0.1 --port="$PORT_0" --ServerApp.token="$TOKEN"'
    ' --ServerApp.root_dir="$PWD" --ServerApp.allow_root=True',
    "notebook": 'exec jupyter notebook --no-browser --ip=127.0.0.1 --port="$PORT_0"'
    ' --ServerApp.token="$TOKEN" --ServerApp.root_dir="$PWD" --ServerApp.allow_root=True',
    "code": 'exec openvscode-server --host 127.0.0.1 --port "$PORT_0"'
    ' --connection-token "$CONNECTION_TOKEN" --default-folder "$PWD"',
}


def ide_step(step: Step) -> Step:
    """``step`` with its IDE's port first and the commands that start the IDE; other
    providers unchanged."""
    if step.provider not in IDE_PROVIDERS:
        return step
    probe, what, install = _NEEDS[step.provider]
    check = (
        f"{probe} >/dev/null 2>&1 || {{ echo 'dstack: provider {step.provider} runs {what} from the"
        f" PATH, and it is not there: {install}' >&2; exit 127; }}"
    )
    return step.model_copy(
        update={
            "ports": [PortSpec(), *step.ports],
            "commands": [*step.commands, check, _START[step.provider]],
        }
    )


def ide_url(provider: str, port: int, token: str) -> str:
    """Where a user opens the IDE of a step of ``provider`` serving on ``port``, named:
    ``JupyterLab: http://127.0.0.1:PORT/lab?token=...``."""
    return f"{LABEL[provider]}: http://127.0.0.1:{port}{URL_PATH[provider]}{token}"
