"""Fixed ports a step asks for, checked before the run starts (both executors).

A step with `ports: [8000]` or `["8000:3000"]` names ports on this machine: the app's own port
where the step shares the host's network (the local executor always, Docker by default), and
the local port of an "APP:LOCAL" mapping (a relay or a published port). One that something
already listens on would make the step die with the app's "Address already in use" traceback
after the run started; it is refused before, naming the port and the fix.
"""

from __future__ import annotations

from dstack_prefect.errors import ResourcesUnavailableError
from dstack_prefect.graph import Step


def check_fixed_ports(step: Step, *, host_network: bool = True) -> None:
    """Raise ResourcesUnavailableError for a fixed port of ``step`` that is in use here."""
    from dstack_prefect.server import port_is_free  # noqa: PLC0415

    for spec in step.ports:
        app, local = spec.port, spec.local_port
        if local is not None and local != app and not port_is_free(local):
            msg = (
                f"port {local} of step '{step.name}' is in use on this machine"
                f' (the local port of "{app}:{local}")'
            )
            hint = f'stop what listens on {local}, or map another local port: ports: ["{app}:OTHER"]'
            raise ResourcesUnavailableError(msg, hint=hint)
        if app is not None and host_network and not port_is_free(app):
            msg = (
                f"port {app} of step '{step.name}' is in use on this machine"
                " (host networking: the app listens here)"
            )
            hint = f"stop what listens on {app}, or give the app another port in `ports:`"
            raise ResourcesUnavailableError(msg, hint=hint)
