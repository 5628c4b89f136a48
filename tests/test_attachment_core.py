"""core/attachment.py: what an attachment is, read once: its type from the bytes, text fenced so the file cannot
close its own fence, every way in (a path, bytes, a PIL image, a matplotlib figure, a DataFrame) and one clear
line for everything it cannot send."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fusion_magic.core.attachment import MAX_TEXT_BYTES, Attachment, load_attachment, load_attachments
from fusion_magic.core.errors import ConfigError


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="JPEG")
    return out.getvalue()


def test_the_type_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    (tmp_path / "chart.png").write_bytes(jpeg())
    a = load_attachment(tmp_path / "chart.png")
    assert (a.name, a.mime, a.kind, a.binary) == ("chart.png", "image/jpeg", "image", True)
    assert a.data_url().startswith("data:image/jpeg;base64,/9j/")
    (tmp_path / "notes.png").write_text("not an image at all", encoding="utf-8")
    assert load_attachment(tmp_path / "notes.png").kind == "text"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200))
def test_a_text_file_never_closes_its_own_fence(content: str) -> None:
    a = Attachment.of(content.encode("utf-8"), "notes.md")
    head, opening, *body, closing = a.fenced().split("\n")
    fence = opening.removesuffix("markdown")
    assert head == "notes.md:" and opening.endswith("markdown") and set(fence) == {"`"} and len(fence) >= 3
    # The file ends only at the closing fence: no line of the content opens with a run of backticks that long.
    assert closing == fence
    assert all(not line.startswith(fence) for line in body)
    assert "\n".join(body) == content.rstrip("\n")


def test_every_way_in_without_saving_a_file_first() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3])
    image = Image.new("RGBA", (8, 8), (0, 0, 255, 128))
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    got = load_attachments([fig, image, frame, jpeg(), b"%PDF-1.7\n%%EOF"])
    plt.close(fig)
    assert [(a.name, a.mime) for a in got] == [
        ("figure.png", "image/png"), ("image.png", "image/png"), ("table.csv", "text/plain"),
        ("attachment.jpg", "image/jpeg"), ("attachment.pdf", "application/pdf")]
    assert got[2].text() == ",x,y\n0,1,a\n1,2,b\n"
    assert load_attachments(frame) == (got[2],)  # one DataFrame is one attachment, not its columns
    assert load_attachments(None) == ()


@pytest.mark.parametrize(("source", "message"), [
    ("missing.png", "attachment missing.png: no such file"),
    ("https://example.org/chart.png", "a URL; download the file and attach its path"),
    (b"PK\x03\x04" + b"\0" * 30, "not an image, a PDF or UTF-8 text; attach PNG, JPEG"),
    (b"\x00\x00\x00\x18ftypmp42" + b"\0" * 40, "a video (video/mp4); ask about a video with %%video --understand"),
    (b"fLaC" + b"\0" * 30, "an audio/flac file"),
    (b"x" * (MAX_TEXT_BYTES + 1), "of text is over the 2.0 MB a text attachment may have"),
    (3.5, "cannot attach a float"),
])
def test_what_cannot_be_sent_is_one_line(source: object, message: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_attachment(source)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file \(a folder\)"):
        load_attachment(tmp_path)


def test_equal_bytes_and_name_are_one_attachment_whatever_the_source(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(jpeg())
    assert load_attachment(tmp_path / "a.jpg") == load_attachment(jpeg(), "a.jpg")
    assert load_attachment(jpeg(), "a.jpg") != load_attachment(jpeg(), "b.jpg")


def test_text_with_a_byte_order_mark_is_sent_as_utf8() -> None:
    table = "a,b\n1,2\n"
    for encoded in (table.encode("utf-16"), table.encode("utf-16-be"), "\ufeff".encode() + table.encode()):
        if not encoded.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
            encoded = b"\xfe\xff" + encoded  # utf-16-be writes no mark of its own
        a = load_attachment(encoded, "export.csv")
        assert (a.mime, a.text()) == ("text/plain", table)
