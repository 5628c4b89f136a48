"""``--estimate`` counts attached images and PDFs by each provider's published rule (``core/media_tokens.py``), on
real PNG/JPEG bytes made with Pillow and real PDFs made with pypdf.

The expected figures are worked out here from the rules as the vendors state them:

* OpenAI (developers.openai.com/api/docs/guides/images-vision): fit in 2048x2048, shortest side to 768, then
  base + per-tile tokens for each 512-px tile (gpt-4o 85 + 170, gpt-5 70 + 140, gpt-4o-mini 2833 + 5667), or
  32-px patches (at most 1536) x a multiplier (gpt-4.1-mini 1.62). The guide's own examples: 1024x1024 is 765 on
  gpt-4o, 2048x4096 is 1105; 1800x2400 is 1452 patches.
* Anthropic (platform.claude.com/docs/en/build-with-claude/vision): width x height / 750 after scaling to a long
  side of 1568 and about 1,600 tokens; the guide's examples: 200x200 is ~54, 1000x1000 ~1334, 1092x1092 ~1590.
  PDFs (pdf-support): 1,500 text tokens a page (the documented range's low end) plus the page as an image.
* Gemini (ai.google.dev/gemini-api/docs/image-understanding, document-processing): 258 for an image of at most
  384 px on both sides, else 258 per 768x768 tile; 258 a PDF page.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

import fusion_magic
from fusion_magic.api import plan_fuse
from fusion_magic.calls.settings import Settings
from fusion_magic.core.attachment import Attachment, load_attachment
from fusion_magic.core.errors import BudgetError
from fusion_magic.core.media_tokens import (
    attachment_tokens,
    family_of,
    image_size,
    image_tokens,
    measure,
    openai_patches,
    pdf_tokens,
)
from fusion_magic.fusion.engine import FusionPlan
from fusion_magic.fusion.estimate import Estimate, check_budget, estimate
from fusion_magic.fusion.options import FuseOptions
from fusion_magic.testing import Emulator, ModelScript

GPT, CLAUDE, GEMINI = "openai:gpt-4o", "anthropic:claude-sonnet-4-5", "gemini:gemini-2.5-flash"
JUDGE = "anthropic:claude-haiku-4-5"
# A US Letter page at 150 dpi, as the page image both OpenAI and Anthropic count.
LETTER_PX = (1275, 1650)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (30, 30, 200)).save(out, format="JPEG")
    return out.getvalue()


def pdf(pages: int, text: str = "") -> bytes:
    """``pages`` blank US Letter pages; the first says ``text`` when given (Helvetica, one line)."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    if text:
        page = writer.pages[0]
        font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                                 NameObject("/BaseFont"): NameObject("/Helvetica")})
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): writer._add_object(font)})})
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 12 Tf 72 700 Td ({text}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# ---- who counts how ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "family"), [
    ("openai:gpt-4o", "openai"), ("openrouter:openai/gpt-4o", "openai"), ("anthropic:claude-x", "anthropic"),
    ("openrouter:anthropic/claude-sonnet-4.5", "anthropic"), ("gemini:gemini-2.5-pro", "gemini"),
    ("openrouter:google/gemini-2.5-flash", "gemini"), ("openrouter:meta-llama/llama-4", "other"),
    ("ollama:llava", "other"), ("local:gemma3-270m", "other"), ("together:some/model", "other"),
])
def test_each_model_counts_by_its_vendors_rule(model_id: str, family: str) -> None:
    assert family_of(model_id) == family


# ---- images ---------------------------------------------------------------------------------------------------


def test_openai_tiles_on_real_images() -> None:
    square = Attachment.of(png(1024, 1024), "chart.png")
    tall = Attachment.of(jpeg(2048, 4096), "scan.jpg")
    small = Attachment.of(png(300, 200), "icon.png")
    assert (measure(square).width, measure(square).height) == (1024, 1024)
    assert attachment_tokens(square, GPT).tokens == 85 + 170 * 4  # 768x768: 2x2 tiles (the guide's 765)
    assert attachment_tokens(tall, GPT).tokens == 85 + 170 * 6  # 1024x2048 -> 768x1536: 2x3 tiles (1105)
    assert attachment_tokens(small, GPT).tokens == 85 + 170 * 1
    assert attachment_tokens(square, "openrouter:openai/gpt-4o-2024-08-06").tokens == 765
    assert attachment_tokens(square, "openai:gpt-5").tokens == 70 + 140 * 4
    assert attachment_tokens(square, "openai:gpt-4o-mini").tokens == 2833 + 5667 * 4
    # the patch rule: 32x32 patches, at most 1536, times the model's multiplier
    assert openai_patches(1024, 1024) == 32 * 32
    assert openai_patches(1800, 2400) == 1452  # scaled to 1056x1408 (the guide's example)
    assert attachment_tokens(square, "openai:gpt-4.1-mini").tokens == round(1024 * 1.62)
    # 2048x4096 needs 64x128 patches: scaled by sqrt(32*32*1536 / (2048*4096)) = 0.4330, then to whole patches
    # (x 27/27.71), 862x1724: 27x54 = 1458
    assert openai_patches(2048, 4096) == 27 * 54
    assert attachment_tokens(tall, "openai:gpt-4.1-nano").tokens == round(1458 * 2.46)
    # we send no detail, so a model may pick low: the figure is an upper bound, marked "~"
    assert attachment_tokens(square, GPT).approx


def test_anthropic_pixels_over_750_after_scaling() -> None:
    assert image_tokens(200, 200, CLAUDE).tokens == 54
    assert image_tokens(1000, 1000, CLAUDE).tokens == 1334
    assert image_tokens(1092, 1092, CLAUDE).tokens == 1590  # the largest square not scaled
    assert attachment_tokens(Attachment.of(png(1024, 1024), "a.png"), CLAUDE).tokens == math.ceil(1024 * 1024 / 750)
    # 2048x4096: the 1.2-megapixel bound binds before the 1568-px side: 774x1549
    scale = math.sqrt(1600 * 750 / (2048 * 4096))
    expected = math.ceil(math.floor(2048 * scale) * math.floor(4096 * scale) / 750)
    big = attachment_tokens(Attachment.of(jpeg(2048, 4096), "scan.jpg"), CLAUDE)
    assert big.tokens == expected and 1580 <= big.tokens <= 1600 and big.approx
    # a long strip: the 1568-px side binds (4000x400 -> 1568x156)
    assert image_tokens(4000, 400, CLAUDE).tokens == math.ceil(1568 * 156 / 750)


def test_gemini_258_for_a_small_image_else_per_768_tile() -> None:
    small = attachment_tokens(Attachment.of(png(384, 384), "s.png"), GEMINI)
    assert small.tokens == 258 and not small.approx  # exact: no "~"
    assert attachment_tokens(Attachment.of(jpeg(385, 100), "w.jpg"), GEMINI).tokens == 258  # one tile
    assert attachment_tokens(Attachment.of(png(1024, 1024), "a.png"), GEMINI).tokens == 4 * 258
    assert attachment_tokens(Attachment.of(jpeg(2048, 4096), "t.jpg"), GEMINI).tokens == 3 * 6 * 258


def test_other_models_are_approximate() -> None:
    counted = attachment_tokens(Attachment.of(png(1024, 1024), "a.png"), "ollama:llava")
    assert counted.approx and counted.tokens == 765


def test_the_size_comes_from_the_header_alone() -> None:
    data = png(1600, 900)
    assert image_size(data[:100]) == (1600, 900)  # the chunks before the pixels, no more
    photo = jpeg(1600, 900)
    assert len(photo) > 10_000 and image_size(photo[:1000]) == (1600, 900)
    broken = Attachment.of(b"\x89PNG\r\n\x1a\n" + b"not an image at all", "broken.png")
    m = measure(broken)
    assert not m.readable and m.describe() == "1 image (size unreadable)"
    assert attachment_tokens(broken, GEMINI).approx  # a stand-in size: never an exact figure


# ---- PDFs -------------------------------------------------------------------------------------------------------


def test_pdf_pages_on_each_vendor() -> None:
    doc = Attachment.of(pdf(3), "paper.pdf")
    m = measure(doc)
    assert m.describe() == "3 pages" and [(p.width_pt, p.height_pt) for p in m.pages] == [(612, 792)] * 3
    assert m.pages[0].pixels() == LETTER_PX
    gemini = attachment_tokens(doc, GEMINI)
    assert gemini.tokens == 3 * 258 and not gemini.approx
    # OpenAI: no text on a blank page, plus the page image: 1275x1650 -> 768x993: 2x2 tiles
    openai = attachment_tokens(doc, GPT)
    assert openai.tokens == 3 * (85 + 170 * 4) and openai.approx
    # Anthropic: 1,500 text tokens plus the page image (1275x1650 scaled to 1.2 megapixels: 962x1246)
    page_image = math.ceil(962 * 1246 / 750)
    assert attachment_tokens(doc, CLAUDE).tokens == 3 * (1500 + page_image)


def test_a_pages_text_adds_to_openais_count() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 4
    doc = Attachment.of(pdf(2, text.strip()), "memo.pdf")
    pages = measure(doc).pages
    assert pages[0].text_chars >= len(text.strip()) - 4 and pages[1].text_chars == 0
    assert attachment_tokens(doc, GPT).tokens == 2 * 765 + math.ceil(pages[0].text_chars / 4)
    assert pdf_tokens(pages, GEMINI).tokens == 2 * 258  # Gemini: pages only


def test_an_unreadable_pdf_counts_one_page_approximately() -> None:
    doc = Attachment.of(b"%PDF-1.7\n this is not a PDF body", "bad.pdf")
    m = measure(doc)
    assert not m.readable and len(m.pages) == 1 and "unreadable" in m.describe()
    assert attachment_tokens(doc, GEMINI) .approx and attachment_tokens(doc, GEMINI).tokens == 258


# ---- the estimate ---------------------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"chart.png": png(1024, 1024), "paper.pdf": pdf(3), "notes.py": b"def area(r):\n    return 3.14 * r * r\n"}
    for name, data in paths.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in paths}


def plan_with(attach: tuple[Path, ...], **options: Any) -> FusionPlan:
    base = {"pool": (GPT, CLAUDE, GEMINI), "judge": JUDGE, "max_tokens": 100, **options}
    return plan_fuse("Describe the chart and summarise the paper.", require_keys=False,
                     options=FuseOptions(attach=tuple(load_attachment(p) for p in attach), **base))


def by_role(est: Estimate) -> dict[str, dict[str, object]]:
    return {str(r["role"]): r for r in est.rows}


def test_every_member_and_the_judge_count_the_attachments_by_their_rule(files: dict[str, Path]) -> None:
    bare = by_role(estimate(plan_with(())))
    est = estimate(plan_with((files["chart.png"], files["paper.pdf"])))
    rows = by_role(est)
    claude_pdf = 3 * (1500 + math.ceil(962 * 1246 / 750))
    media = {"member gpt-4o": 765 + 3 * 765, "member claude-sonnet-4-5": 1399 + claude_pdf,
             "member gemini-2.5-flash": 4 * 258 + 3 * 258, "judge": 1399 + claude_pdf}
    for role, tokens in media.items():
        assert rows[role]["est_attachment_tokens"] == tokens, role
        assert rows[role]["est_input_tokens"] == bare[role]["est_input_tokens"] + tokens, role  # type: ignore[operator]
    # priced: the input tokens cost what they cost, so the total grows by each model's input rate
    gpt_delta = (rows["member gpt-4o"]["est_cost_usd"] - bare["member gpt-4o"]["est_cost_usd"])  # type: ignore[operator]
    assert gpt_delta == pytest.approx(media["member gpt-4o"] * 2.50 / 1e6)
    text = str(est)
    lines = text.splitlines()
    assert "  chart.png: 1 image (1024x1024), ~765 tok on OpenAI, ~1,399 on Anthropic, ~1,032 on Gemini" in lines
    assert (f"  paper.pdf: 3 pages, ~2,295 tok on OpenAI, ~{claude_pdf:,} on Anthropic, 774 on Gemini"
            in lines)
    # the rule of each kind and vendor, with its source
    for kind, vendor, source in (("images", "OpenAI", "images-vision"), ("images", "Anthropic", "vision"),
                                 ("images", "Gemini", "image-understanding"), ("PDFs", "OpenAI", "file-inputs"),
                                 ("PDFs", "Anthropic", "pdf-support"), ("PDFs", "Gemini", "document-processing")):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"  {kind} on {vendor}: "))
        rule = " ".join(lines[start:start + 6])
        assert source in rule.split("[", 1)[1], (kind, vendor)
    ours = lines[lines.index(next(x for x in lines if x.startswith("Attach"))):]
    assert all(len(line) <= 100 for line in ours if not line.startswith("prices as of"))


def test_a_text_file_is_counted_in_the_prompts_text(files: dict[str, Path]) -> None:
    bare = by_role(estimate(plan_with(())))
    rows = by_role(estimate(plan_with((files["notes.py"],))))
    grown = rows["member gpt-4o"]["est_input_tokens"] - bare["member gpt-4o"]["est_input_tokens"]  # type: ignore[operator]
    assert rows["member gpt-4o"]["est_attachment_tokens"] == 0
    assert 8 <= grown <= 20  # its ~40 characters, fenced and named, at 4 a token
    assert rows["judge"]["est_input_tokens"] > bare["judge"]["est_input_tokens"]  # type: ignore[operator]


def test_one_vendors_models_that_count_differently_are_named_apart(files: dict[str, Path]) -> None:
    est = estimate(plan_with((files["chart.png"],), pool=(GPT, "openai:gpt-4o-mini"), judge="vote"))
    assert "  chart.png: 1 image (1024x1024), ~765 tok on openai:gpt-4o, ~25,501 on openai:gpt-4o-mini" in (
        str(est).splitlines())


def test_each_debate_round_sends_them_again(files: dict[str, Path]) -> None:
    est = estimate(plan_with((files["chart.png"],), mode="debate", rounds=2))
    assert by_role(est)["member gpt-4o"]["est_attachment_tokens"] == 3 * 765


def test_attachments_can_push_a_run_over_its_budget(files: dict[str, Path]) -> None:
    bare = estimate(plan_with(()))
    heavy = estimate(plan_with((files["paper.pdf"],) * 1 + (files["chart.png"],)))
    assert bare.total_usd is not None and heavy.total_usd is not None and heavy.total_usd > bare.total_usd
    budget = (bare.total_usd + heavy.total_usd) / 2
    check_budget(bare, budget)
    with pytest.raises(BudgetError, match="above --budget"):
        check_budget(heavy, budget)


def test_no_attachment_no_lines(files: dict[str, Path]) -> None:
    assert "Attachments" not in str(estimate(plan_with(())))


def test_the_magics_estimate_shows_them_and_sends_nothing(shell: InteractiveShell, emulator_env: Emulator,
                                                          files: dict[str, Path]) -> None:
    est = shell.run_cell_magic("fuse", f"-p {GPT},{GEMINI} -j vote --attach {files['chart.png']} --estimate",
                               "What does the chart show?")
    assert isinstance(est, Estimate) and emulator_env.requests == []
    assert "  chart.png: 1 image (1024x1024), ~765 tok on OpenAI, ~1,032 on Gemini" in str(est).splitlines()


# ---- a thread: the earlier turns' attachments go with every call ---------------------------------------------


def test_a_follow_ups_estimate_counts_the_earlier_turns_attachments(emulator_env: Emulator,
                                                                     files: dict[str, Path]) -> None:
    emulator_env.script("gpt-4o", ModelScript(reply="A red square."))
    emulator_env.script("claude-sonnet-4-5", ModelScript(reply="A red square, 1024 px."))
    emulator_env.script("claude-haiku-4-5", ModelScript(reply=json.dumps({"reasoning": "A says it.", "winner": "A"})))
    settings = Settings(max_retries=0, timeout=20)
    r = fusion_magic.fuse("What does the chart show?", pool=[GPT, CLAUDE], judge=JUDGE,
                          mode="best-of", attach=[str(files["chart.png"])], settings=settings)
    assert not r.degraded and r.answer
    # turn 2 adds nothing: every call still sends the chart, and the thread's text
    second = estimate(plan_fuse("Why red?", settings, parent=r))
    rows = by_role(second)
    assert rows["member gpt-4o"]["est_attachment_tokens"] == 765
    assert rows["member claude-sonnet-4-5"]["est_attachment_tokens"] == 1399
    assert rows["judge"]["est_attachment_tokens"] == 1399  # the judge sees the chart too
    fresh = by_role(estimate(plan_fuse("Why red?", settings, FuseOptions(pool=(GPT, CLAUDE), judge=JUDGE,
                                                                          mode="best-of"))))
    thread_text = rows["member gpt-4o"]["est_input_tokens"] - fresh["member gpt-4o"]["est_input_tokens"]  # type: ignore[operator]
    assert thread_text > 765  # the chart, plus the first prompt and the fused answer
    text = str(second)
    assert "  chart.png (turn 1): 1 image (1024x1024), ~765 tok on OpenAI, ~1,399 on Anthropic" in text.splitlines()
    assert "every call sends them, and a thread's earlier turns', in full" in " ".join(text.split())
    ours = text.splitlines()[text.splitlines().index(next(x for x in text.splitlines() if x.startswith("Attach"))):]
    assert all(len(line) <= 100 for line in ours if not line.startswith("prices as of"))
    # turn 3, after a turn that attached the paper: both, each once per call
    r2 = r.ask("And this paper?", attach=[str(files["paper.pdf"])])
    assert not r2.degraded
    third = by_role(estimate(plan_fuse("Compare them.", settings, parent=r2)))
    assert third["member gpt-4o"]["est_attachment_tokens"] == 765 + 3 * 765
    assert third["judge"]["est_attachment_tokens"] == 1399 + 3 * (1500 + math.ceil(962 * 1246 / 750))
    lines = str(estimate(plan_fuse("Compare them.", settings, parent=r2))).splitlines()
    assert any(line.startswith("  chart.png (turn 1): ") for line in lines)
    assert any(line.startswith("  paper.pdf (turn 2): 3 pages, ") for line in lines)
