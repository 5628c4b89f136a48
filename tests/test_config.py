"""Malformed %config FusionMagics values give one UsageError line naming the entry, not a traceback."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.fusion.estimate import Estimate
from fusion_magic.testing import Emulator


def usage_line(sh: InteractiveShell, line: str) -> str:
    with pytest.raises(UsageError) as info:
        sh.run_cell_magic("fuse", line, "hi")
    assert type(info.value) is UsageError and "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("value", ["1.0", "[1.0]", "[1, 2, 3]", "'cheap'", "[1, 'x']", "[-1, 2]"])
def test_bad_price_names_the_entry_and_the_form(shell: InteractiveShell, emulator_env: Emulator, value: str) -> None:
    shell.run_line_magic("config", f'FusionMagics.prices = {{"m": {value}}}')
    message = usage_line(shell, "-p openai:m -j vote --estimate")
    assert "prices['m']" in message and "[0.15, 0.6]" in message
    assert emulator_env.requests == []


def test_good_prices_are_used(shell: InteractiveShell, emulator_env: Emulator) -> None:
    shell.run_line_magic("config", 'FusionMagics.prices = {"m": [1, 2.5], "n": (0, 0)}')
    est = shell.run_cell_magic("fuse", "-p openai:m,openai:n -j vote --estimate", "hi")
    assert isinstance(est, Estimate) and est.total_usd is not None and est.unknown == []


@pytest.mark.parametrize("value", ['"https://api.example.com/v1"', '{"url": "https://x"}', "None",
                                   '{"base_url": "https://x", "key_env": 3}'])
def test_bad_endpoint_names_the_entry_and_the_form(shell: InteractiveShell, emulator_env: Emulator,
                                                   value: str) -> None:
    shell.run_line_magic("config", f'FusionMagics.endpoints = {{"x": {value}}}')
    message = usage_line(shell, "-p x:model -j vote")
    assert "endpoints['x']" in message and "'base_url': 'https://" in message
    assert emulator_env.requests == []
    # checked up front: also a run that does not use the endpoint says what is wrong
    assert "endpoints['x']" in usage_line(shell, "-p openai:a -j vote --estimate")
