"""Click options that several commands share (torch-free to import: the CLI stays fast)."""

from __future__ import annotations

import contextlib

import click

DEVICE_HELP = "Device for the model: cpu, cuda, cuda:N, mps or xpu (default: cuda if available, else cpu)."


def _checked_device(ctx, param, value):
    """Check --device when given (a bad or absent device is a usage error, not a traceback)."""
    if value is None:
        return None
    from .model.device import DeviceError, resolve_device

    try:
        return str(resolve_device(value))
    except DeviceError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def device_option(help: str = DEVICE_HELP):
    """``--device``: the one override of the device ``synpref.model`` picks (see ``resolve_device``)."""
    return click.option("--device", callback=_checked_device, help=help)


def engine_options(func):
    """``--engine``, ``--ray-address``, ``--ray-actors``, handed to the command as one
    :class:`~synpref.engine.EngineSettings` named ``engine`` (a wrong combination is a usage error)."""
    import functools

    from .engine import ENGINES, EngineError, EngineSettings

    helps = EngineSettings.help()

    @functools.wraps(func)
    def command(*args, engine, ray_address, ray_actors, **kwargs):
        try:
            settings = EngineSettings(engine, ray_address, ray_actors)
        except EngineError as e:
            raise click.UsageError(str(e)) from None
        return func(*args, engine=settings, **kwargs)

    options = [
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True, help=helps["name"]),
        click.option("--ray-address", help=helps["address"]),
        click.option("--ray-actors", type=int, default=0, show_default=True, help=helps["actors"]),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@contextlib.contextmanager
def engine_session(settings):
    """The started engine of ``settings`` (None for local); one that cannot start is a usage error."""
    from .engine import EngineError, open_engine

    try:
        session = open_engine(settings)
        started = session.__enter__()
    except EngineError as e:
        raise click.UsageError(str(e)) from None
    try:
        yield started
    finally:
        session.__exit__(None, None, None)
