"""Click options that several commands share (torch-free to import: the CLI stays fast)."""

from __future__ import annotations

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
