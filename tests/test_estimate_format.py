"""One ``--estimate`` format for ``%%fuse`` and ``%%video`` (``present/estimate.py``): a title, one row per call
or clip (call, model, what is counted, where the price comes from, cost) and a total line, with every figure
each estimate has."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from fusion_magic.core.pricing import table_age_note
from fusion_magic.fusion.estimate import Estimate
from fusion_magic.present.estimate import CostRow, estimate_text, money
from fusion_magic.testing import Emulator
from fusion_magic.videos.estimate import VideoEstimate

HEADER = ["call", "model", "counted", "price", "cost"]
VEO = "gemini:veo-3.1-fast-generate-preview"


def table(text: str) -> tuple[str, list[str], list[str], str]:
    """The title, the header's words, the rows, and the total line."""
    lines = text.splitlines()
    total = next(line for line in lines if line.startswith("Total: "))
    rows = lines[3:lines.index(total)]
    assert set(lines[2]) <= {"-", " "}  # the rule under the header
    return lines[0], lines[1].split(), rows, total


def test_fuse_and_video_estimates_read_the_same(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    fused = vshell.run_cell_magic("fuse", "-p local:gemma3-270m,openai:gpt-4o -j openai:gpt-4o-mini -m debate "
                                  "--estimate", "Why is the sky blue?")
    video = vshell.run_cell_magic("video", f"-p {VEO},gemini:gemini-omni-1.2-flash --seconds 6 --estimate", "A fox")
    assert isinstance(fused, Estimate) and isinstance(video, VideoEstimate) and emulator_env.requests == []
    f_title, f_header, f_rows, f_total = table(str(fused))
    v_title, v_header, v_rows, v_total = table(str(video))
    assert f_header == v_header == HEADER
    assert f_title.startswith("Projected cost (nothing sent; ") and v_title.startswith("Projected cost (nothing sent; ")
    assert "max_tokens cap" in f_title
    # every figure each one had: calls and tokens per call, the cost per call and in all
    for row, data in zip(f_rows, fused.rows, strict=True):
        calls = data["calls"]
        assert row.startswith(f"{data['role']} ") and f" {data['model']} " in row
        assert f"{calls} call{'s' if calls != 1 else ''}: {data['est_input_tokens']} in + " \
               f"{data['est_output_tokens']} out tokens" in row
        assert isinstance(data["est_cost_usd"], float) and row.endswith(money(data["est_cost_usd"]))
    assert "local model (free)" in f_rows[0] and "price table" in f_rows[1]
    assert fused.total_usd is not None and f_total == f"Total: {money(fused.total_usd)}"
    # priced from the table: its age follows the total when it is old (as %fuse list says it)
    age = table_age_note()
    assert (str(fused).splitlines()[-1] == age) if age else (str(fused).splitlines()[-1] == f_total)
    # a clip: its seconds, the price per second, the price's source, its cost
    assert [row.split()[:2] for row in v_rows] == [["clip", VEO], ["clip", "gemini:gemini-omni-1.2-flash"]]
    assert all(" 6 s x $0.10/s " in row and row.endswith("$0.60") and "price list" in row for row in v_rows)
    assert v_total == "Total: $1.20"


def test_an_unknown_price_is_named_in_the_total(vshell: InteractiveShell, emulator_env: Emulator) -> None:
    fused = str(vshell.run_cell_magic("fuse", "-p openai:some-new-model -j vote --estimate", "hi"))
    assert fused.splitlines()[-1] == ("Total: unknown (no price known for openai:some-new-model; add one with "
                                      "%config FusionMagics.prices)")
    row = fused.splitlines()[3]
    assert "no price known" in row and row.endswith("unknown")
    video = str(vshell.run_cell_magic("video", "-p fal:nosuch/model --seconds 4 --estimate", "A fox"))
    total = next(line for line in video.splitlines() if line.startswith("Total: "))
    assert total == "Total: unknown (no price known for fal:nosuch/model; add one with %config VideoMagics.prices)"
    assert " 4 s x ? " in video


@pytest.mark.parametrize(("usd", "shown"), [(0.6, "$0.60"), (1.4, "$1.40"), (0.0, "$0.00"), (0.010255, "$0.0103"),
                                            (None, "unknown")])
def test_money_shows_whole_cents_with_two_decimals_and_fractions_with_four(usd: float | None, shown: str) -> None:
    assert money(usd) == shown


def test_the_table_lines_up() -> None:
    text = estimate_text([CostRow("judge", "x:long-model-name", "1 call: 2 in + 3 out tokens", "table", 0.5),
                          CostRow("clip", "y:m", "6 s x ?", "", None)], None, notes=("a note",))
    lines = text.splitlines()
    assert lines[0] == "Projected cost (nothing sent):" and lines[-1] == "a note"
    assert len({len(line) for line in lines[1:5]}) == 1  # the cost column is right-aligned
    assert lines[4].endswith("unknown") and "no price known" in lines[4]
    assert lines[5] == "Total: unknown (no price known for y:m)"
