"""Attachments and the thread as the reader sees them: in the static HTML report (what a saved notebook keeps), in
the live widget view, and in the text and Markdown reports.

An image shows as a small thumbnail (a shrunk copy, embedded as a ``data:`` URL: the only ``<img>`` any report
may carry), a PDF or a text file as a chip of its name, kind and size; a follow-up shows the conversation so far
folded above the new answer. File names and model text are untrusted: everything stays inert.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as widgets
import pytest
from html_checks import Tags, assert_inert, image_data_url, thumbnails
from markdown_it import MarkdownIt
from PIL import Image

import fusion_magic
from fusion_magic.calls.settings import Settings
from fusion_magic.core.attachment import Attachment
from fusion_magic.core.events import CallFinished, CallStarted
from fusion_magic.core.record import Response
from fusion_magic.fusion.events import RunFinished, RunStarted, VerdictReady
from fusion_magic.fusion.report import html_report, markdown_report, text_report, thread_markdown
from fusion_magic.fusion.result import FusionResult, Verdict
from fusion_magic.fusion.view import FusionView
from fusion_magic.present.attachments import THUMB_PX, chip_text, thumbnail
from fusion_magic.present.sanitize import clean_thumbnail, is_image_data_url
from fusion_magic.present.sanitize import image_data_url as sanitize_data_url
from fusion_magic.testing import Emulator, ModelScript

JUDGE = "anthropic:claude-sonnet-4-5"
POOL = ["openai:gpt-4o", "anthropic:claude-x"]
MiB = 1 << 20


# ---- building blocks ---------------------------------------------------------------------------------------


def png(width: int = 320, height: int = 200, colour: str = "steelblue") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def photo(width: int = 4000, height: int = 3000) -> bytes:
    """A 12-megapixel JPEG of noise: the worst case for a thumbnail's size (nothing compresses)."""
    buffer = io.BytesIO()
    Image.effect_noise((width, height), 64).convert("RGB").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def pdf(size: int) -> bytes:
    return (b"%PDF-1.7\n" + b"0" * size)[:size]


CHART = Attachment.of(png(), "chart.png")
PAPER = Attachment.of(pdf(int(1.2 * MiB)), "paper.pdf")
NOTES = Attachment.of(b"def f(x):\n    return x * 2\n" * 80, "notes.py")


def result(prompt: str = "What does the chart show?", answer: str = "It rises **steadily**.", *,
           attachments: tuple[Attachment, ...] = (), parent: FusionResult | None = None) -> FusionResult:
    responses = [
        Response(model=POOL[0], label="gpt-4o", call_id=1, text=answer, status="ok", input_tokens=10,
                 output_tokens=5, cost_usd=0.0001, cost_source="provider", latency_s=0.5, attempts=1),
        Response(model=POOL[1], label="claude-x", call_id=2, text=answer + " Indeed.", status="ok",
                 input_tokens=10, output_tokens=6, cost_usd=0.0001, cost_source="provider", latency_s=0.6,
                 attempts=1),
    ]  # fmt: skip
    verdict = Verdict(model=JUDGE, mode="best-of", reasoning="A is right.", answer=answer, choice=POOL[0],
                      choice_label="Answer A", labels={"Answer A": POOL[0], "Answer B": POOL[1]})
    return FusionResult(prompt=prompt, mode="best-of", judge=JUDGE, pool=list(POOL), responses=responses,
                        verdict=verdict, answer=answer, wall_s=1.5, attachments=attachments, parent=parent,
                        thread="fused" if parent is not None else None)


class Text(HTMLParser):
    """The text a browser shows for an HTML string (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def shown(html: str) -> str:
    parser = Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def html_values(widget: widgets.Widget) -> Iterator[str]:
    if isinstance(widget, widgets.HTML):
        yield widget.value
    for child in getattr(widget, "children", ()):
        yield from html_values(child)


def live_view(attachments: tuple[Attachment, ...] = (), thread: tuple[tuple[str, str], ...] = ()) -> FusionView:
    view = FusionView(render_interval=0.0, tick_s=0.0)
    view.handle(RunStarted("Why?", "best-of", JUDGE, ("gpt-4o", "claude-x"), tuple(POOL), attachments, thread))
    return view


def decoded(src: str | None) -> Image.Image:
    assert src is not None and image_data_url(src), src
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))


# ---- the static report ---------------------------------------------------------------------------------------


def test_the_report_shows_a_thumbnail_for_an_image_and_chips_for_the_rest_above_the_answer() -> None:
    html = html_report(result(attachments=(CHART, PAPER, NOTES)))
    assert_inert(html)
    images = thumbnails(html)
    assert len(images) == 1, html[:3000]
    assert images[0]["alt"] == "chart.png"
    assert "max-height:96px" in (images[0]["style"] or "")
    thumb = decoded(images[0]["src"])
    assert max(thumb.size) <= THUMB_PX and thumb.size == (160, 100)
    text = shown(html)
    assert "paper.pdf · PDF · 1.2 MB" in text and "notes.py · text · 2 KB" in text, text[:2000]
    assert "chart.png · " in text
    # Above the answer: the attachments come before the "Fused answer" heading.
    assert html.index('class="fm-attachments"') < html.index("Fused answer")
    assert text.index("paper.pdf") < text.index("Fused answer") < text.index("It rises steadily")


def test_a_run_without_attachments_has_no_attachment_row_and_no_image() -> None:
    html = html_report(result())
    assert "fm-attachments" not in html and "fm-thread" not in html and not thumbnails(html)
    assert html.lstrip().startswith('<div class="fusion-magic-report"')


def test_chip_words() -> None:
    assert chip_text(PAPER) == "paper.pdf · PDF · 1.2 MB"
    assert chip_text(NOTES) == "notes.py · text · 2 KB"
    assert chip_text(CHART).startswith("chart.png · image · ")


def test_text_and_markdown_reports_name_the_attachments() -> None:
    r = result(attachments=(CHART, PAPER, NOTES))
    text = text_report(r)
    head = text[: text.index("Fused answer")]
    assert "Attached: chart.png · image · " in head and "paper.pdf · PDF · 1.2 MB" in head, head
    assert all(len(line) <= 100 for line in text.splitlines())
    md = markdown_report(r)
    assert "paper.pdf · PDF · 1.2 MB" in md and "notes.py · text · 2 KB" in md
    assert "data:" not in md  # the Markdown report names them; only the .md transcript embeds thumbnails


HOSTILE_NAMES = [
    "<script>alert(1)</script>.png",
    '"onerror=alert(1).png',
    "x\" onerror=\"alert(1)\" y=\".pdf",
    "<img src=x onerror=alert(1)>.py",
    "' onload='alert(1).png",
    "javascript:alert(1).png",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_file_name_stays_inert_text(name: str) -> None:
    attachments = (Attachment.of(png(), name), Attachment.of(pdf(3000), name), Attachment.of(b"x = 1\n", name))
    earlier = result(name, f"About {name}", attachments=attachments)
    later = result(f"And {name}?", attachments=attachments, parent=earlier)
    view = live_view(attachments, ((name, name),))
    for html in (html_report(earlier), html_report(later), *html_values(view.widget)):
        assert_inert(html)
        assert "<script" not in html.lower()
    html = html_report(later)
    assert shown(html).count(f"{name} · PDF · ") == 2  # this turn's chip and the earlier turn's, as text
    assert len(thumbnails(html)) == 2
    assert all(t["alt"] == name for t in thumbnails(html))  # the name as an attribute value, nothing more
    text, md = text_report(later), markdown_report(later)
    assert name.replace("\n", " ") in text
    rendered = MarkdownIt("commonmark", {"html": True}).render(md)
    tags = Tags()
    tags.feed(rendered)
    assert not [t for t, _ in tags.tags if t == "script"], rendered[:3000]
    # The transcript's one kind of image: a thumbnail (one per turn here), its name only its alt text.
    images = [dict(attrs) for t, attrs in tags.tags if t == "img"]
    assert len(images) == 2 and all(image_data_url(i["src"]) and i["alt"] == name for i in images), images


# ---- what the sanitizer lets through ------------------------------------------------------------------------


def test_only_an_image_data_url_of_ours_passes_the_sanitizer() -> None:
    good = sanitize_data_url("image/png", png(8, 8))
    assert good is not None and is_image_data_url(good)
    assert clean_thumbnail(f'<img class="fm-thumb" src="{good}" alt="a">')
    html_page = base64.b64encode(b"<script>alert(1)</script>").decode()
    svg = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>').decode()
    lying = base64.b64encode(b"<html><script>alert(1)</script></html>").decode()
    for src in (f"data:text/html;base64,{html_page}", f"data:image/svg+xml;base64,{svg}",
                f"data:image/png;base64,{lying}",  # says PNG, is HTML
                f"data:image/jpeg;base64,{good.split(',', 1)[1]}",  # says JPEG, is a PNG
                "data:image/png,%89PNG", "https://example.com/pixel.png", "/files/secret.png", "javascript:alert(1)",
                good + "<", good.replace("data:", "DATA:", 1), f"{good}#x", " " + good):  # fmt: skip
        assert not is_image_data_url(src), src
        assert clean_thumbnail(f'<img class="fm-thumb" src="{src}" alt="a">') == "", src
    assert clean_thumbnail(f'<img src="{good}" onerror="alert(1)" style="position:fixed;max-height:9px">') == (
        f'<img src="{good}" style="max-height:9px">')
    assert sanitize_data_url("image/svg+xml", b"<svg/>") is None
    assert sanitize_data_url("text/html", b"<p>") is None


def test_the_inertness_check_refuses_any_other_image() -> None:
    """``assert_inert`` lets our thumbnail through, and nothing that only looks like one."""
    good = sanitize_data_url("image/png", png(8, 8))
    assert_inert(f'<img class="fm-thumb" src="{good}" alt="a">')
    html_page = base64.b64encode(b"<script>alert(1)</script>").decode()
    for bad in (f'<img class="fm-thumb" src="data:text/html;base64,{html_page}">',
                f'<img src="{good}">',  # not ours: no class
                f'<img class="fm-thumb" src="{good}" onerror="alert(1)">',
                '<img class="fm-thumb" src="https://evil.example/x.png">',
                f'<img class="fm-thumb" src="{good}" src="javascript:alert(1)">'):  # fmt: skip
        with pytest.raises(AssertionError):
            assert_inert(bad)


@pytest.mark.parametrize("mime, data", [
    ("image/svg+xml", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),
    ("image/png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'),  # an image type, not its bytes
    ("text/html", b"<script>alert(1)</script>"),
    ("image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),  # a PNG header on nothing: Pillow cannot read it
])  # fmt: skip
def test_an_attachment_that_is_no_readable_image_shows_as_a_chip(mime: str, data: bytes) -> None:
    a = Attachment(name="pic.png", mime=mime, data=data, sha256=f"fake-{mime}-{len(data)}")
    assert thumbnail(a) is None
    html = html_report(result(attachments=(a,)))
    assert_inert(html)
    assert not thumbnails(html) and "<img" not in html
    assert "pic.png · " in shown(html)


# ---- size ----------------------------------------------------------------------------------------------------


def test_a_twelve_megapixel_photo_is_embedded_as_a_thumbnail_of_a_few_kb() -> None:
    big = Attachment.of(photo(), "holiday.jpg")
    assert big.size > 1 * MiB
    html = html_report(result(attachments=(big,)))
    (image,) = thumbnails(html)
    src = image["src"] or ""
    embedded = base64.b64decode(src.split(",", 1)[1])
    assert len(embedded) < 16 * 1024, len(embedded)
    assert len(html) < 60 * 1024, len(html)
    thumb = decoded(src)
    assert max(thumb.size) <= THUMB_PX and thumb.size == (160, 120)
    assert big.base64[100:200] not in html  # the original's bytes are nowhere in the report


# ---- the live view ----------------------------------------------------------------------------------------------


def test_the_live_view_shows_the_attachments_above_the_tabs_from_run_started() -> None:
    view = FusionView(render_interval=0.0, tick_s=0.0)
    assert view.widget.children == (view.status, view.tab)  # nothing above the tabs before the run starts
    view.handle(RunStarted("Why?", "best-of", JUDGE, ("gpt-4o", "claude-x"), tuple(POOL), (CHART, PAPER, NOTES)))
    assert view.widget.children == (view.status, view.context, view.tab)
    html = view.context.value
    assert_inert(html)
    assert len(thumbnails(html)) == 1 and thumbnails(html)[0]["alt"] == "chart.png"
    assert "paper.pdf · PDF · 1.2 MB" in shown(html) and "notes.py · text · 2 KB" in shown(html)
    assert "fm-thread" not in html  # a first turn has no conversation so far
    for value in html_values(view.widget):
        assert_inert(value)


def test_a_first_turn_without_attachments_adds_nothing_above_the_tabs() -> None:
    view = live_view()
    assert view.widget.children == (view.status, view.tab) and view.context.value == ""


def test_the_live_view_of_a_follow_up_shows_the_thread_folded() -> None:
    long_answer = "\n\n".join(f"Paragraph {i}: " + "words " * 30 for i in range(30))
    thread = (("What does the chart show?", "It rises **steadily**."), ("Why <b>so</b>?", long_answer))
    view = live_view((NOTES,), thread)
    assert view.widget.children == (view.status, view.context, view.tab)
    html = view.context.value
    assert_inert(html)
    assert '<details class="fm-thread">' in html and "<details class=\"fm-thread\" open" not in html
    text = shown(html)
    assert "Conversation so far (2 turns)" in text
    assert text.index("Turn 1") < text.index("What does the chart show?") < text.index("It rises steadily")
    assert text.index("It rises steadily") < text.index("Turn 2") < text.index("Why <b>so</b>?")  # shown as text
    assert "<strong>steadily</strong>" in html  # Markdown rendered, as the report renders answers
    assert 'class="fm-more"' in html  # the long answer folded again under "show all"
    assert html.index("fm-thread") < html.index("fm-attachments")  # the thread, then this turn's files


def test_the_live_view_replaying_a_result_shows_each_turns_attachments() -> None:
    first = result(attachments=(CHART,))
    second = result("Why?", "Because.", attachments=(PAPER,), parent=first)
    view = FusionView.of(second)
    html = view.context.value
    assert_inert(html)
    assert len(thumbnails(html)) == 1  # the first turn's chart, inside the thread
    assert "Conversation so far (1 turn)" in shown(html) and "paper.pdf · PDF · 1.2 MB" in shown(html)


def test_the_finished_view_becomes_the_static_report_with_the_same_attachments() -> None:
    view = live_view((CHART,))
    r = result("Why?", attachments=(CHART,))
    for call in r.responses:
        view.handle(CallStarted(call))
        view.handle(CallFinished(call))
    assert r.verdict is not None
    view.handle(VerdictReady(r.verdict))
    view.handle(RunFinished(r))
    bundle = view._repr_mimebundle_()
    assert bundle["text/html"] == html_report(r) and len(thumbnails(bundle["text/html"])) == 1
    assert "Attached: chart.png · image · " in bundle["text/plain"]


# ---- the thread in the static reports --------------------------------------------------------------------------


def test_the_report_of_a_follow_up_folds_the_earlier_turns_above_the_new_answer() -> None:
    long_answer = "\n\n".join(f"Paragraph {i}: " + "words " * 30 for i in range(30))
    first = result("What does the chart show?", "It rises **steadily**.", attachments=(CHART, PAPER))
    second = result("Why?", long_answer, parent=first)
    third = result("So what <i>now</i>?", "Buy.", attachments=(NOTES,), parent=second)
    assert third.turns == [first, second, third]
    html = html_report(third)
    assert_inert(html)
    assert html.count("<details class=\"fm-thread\">") == 1 and "fm-thread\" open" not in html  # collapsed
    start, end = html.index('<details class="fm-thread">'), html.index("</details>\n")
    thread = html[start:end]
    assert "Conversation so far (2 turns)" in shown(thread)
    assert shown(thread).index("What does the chart show?") < shown(thread).index("Why?")
    assert "<strong>steadily</strong>" in thread and 'class="fm-more"' in thread
    assert len(thumbnails(thread)) == 1 and "paper.pdf · PDF · 1.2 MB" in shown(thread)
    # The thread is one folded line, then this turn's attachment, then the new answer.
    assert end < html.index("notes.py · text · 2 KB") < html.index("Fused answer") < html.index("Buy.")
    assert "Buy." not in thread and "notes.py" not in thread


def test_the_text_report_of_a_follow_up_starts_with_a_line_per_turn() -> None:
    first = result("What does the chart show?", "It rises steadily. " * 20, attachments=(CHART,))
    second = result("Why?", "Because of growth.", parent=first)
    text = text_report(second)
    head = text[: text.index("=" * 72)]
    lines = head.splitlines()
    assert lines[0] == "Conversation so far (1 turn):"
    assert lines[1] == "  Turn 1: What does the chart show?"
    assert "Attached: chart.png · image · " in head and "fused answer: It rises steadily." in head
    assert "Turn 2 (this one): Why?" in head
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "Turn" not in text_report(first)


def test_the_markdown_transcript_matches_the_report(tmp_path: Path) -> None:
    first = result("What does the chart show?", "It rises <b>steadily</b>.", attachments=(CHART, PAPER))
    second = result("Why?", "Because.", attachments=(NOTES,), parent=first)
    md = thread_markdown(second.turns)
    assert md == markdown_report(second) and md.startswith("# Conversation (2 turns)")
    assert md.index("## Turn 1") < md.index("What does the chart show?") < md.index("## Turn 2") < md.index("Why?")
    assert md.index("## Turn 2") < md.index("## Fused answer")
    assert "paper.pdf · PDF · 1.2 MB" in md and "notes.py · text · 2 KB" in md
    assert md.count("notes.py") == 1  # this turn's files once, in its header
    assert "![chart.png](data:image/" in md  # the thumbnail, as the HTML shows it
    assert "&lt;b>steadily" in md  # model text stays inert
    rendered = MarkdownIt("commonmark", {"html": True}).render(md)
    assert_inert(rendered.replace("<img src=", '<img class="fm-thumb" src='))
    assert second.export(tmp_path / "talk.md") == 2
    assert (tmp_path / "talk.md").read_text(encoding="utf-8") == md


# ---- a real run over the emulator ---------------------------------------------------------------------------------


def test_a_real_run_with_attachments_then_a_follow_up(emulator_env: Emulator, tmp_path: Path) -> None:
    emulator_env.script("gpt-4o", ModelScript(reply="The line rises from 1 to 3."))
    emulator_env.script("claude-x", ModelScript(reply="It goes up."))
    emulator_env.script("judge", ModelScript(reply='{"reasoning": "A reads the axis", "winner": "A"}'))
    chart, notes = tmp_path / "chart.png", tmp_path / "notes.py"
    chart.write_bytes(photo(1600, 1200))
    notes.write_text("xs = [1, 2, 3]\n", encoding="utf-8")
    settings = Settings(max_retries=0, timeout=20)

    view = FusionView(render_interval=0.0, tick_s=0.0)
    first = fusion_magic.fuse("What does the chart show?", pool=POOL, judge="gemini:judge", settings=settings,
                              attach=[str(chart), str(notes)], listeners=[view.handle])
    assert [a.name for a in first.attachments] == ["chart.png", "notes.py"]
    assert view.run is not None and view.run.attachments == first.attachments
    live = view.context.value
    assert len(thumbnails(live)) == 1 and "notes.py · text · 15 B" in shown(live)
    report = html_report(first)
    assert_inert(report)
    assert len(thumbnails(report)) == 1 and len(report) < 60 * 1024

    view2 = FusionView(render_interval=0.0, tick_s=0.0)
    second = first.ask("Why does it rise?", listeners=[view2.handle])
    assert second.parent is first and second.turns == [first, second]
    assert view2.run is not None
    assert view2.run.thread == (("What does the chart show?", first.answer, first.attachments),)
    live2 = view2.context.value
    assert_inert(live2)
    assert "Conversation so far (1 turn)" in shown(live2) and "What does the chart show?" in shown(live2)
    # The earlier turn's chart shows inside the live thread too, not only in the saved report.
    assert len(thumbnails(live2)) == 1
    report2 = html_report(second)
    assert_inert(report2)
    assert "Conversation so far (1 turn)" in shown(report2) and len(thumbnails(report2)) == 1
    assert shown(report2).index("What does the chart show?") < shown(report2).index("Fused answer")
    assert "Turn 1: What does the chart show?" in text_report(second)
    assert os.path.getsize(chart) > 100 * 1024
