"""What a user shows the models besides the prompt: an image, a PDF or a text file, read once into bytes.

The type comes from the bytes (``core.mime.sniff``), never from the name: a JPEG saved as ``chart.png`` is sent
as ``image/jpeg`` everywhere. A text file (code, CSV, JSON, Markdown, logs) is valid UTF-8 without NUL bytes; it
goes into the prompt's text, fenced and named (``fenced``), so every model can read it. Anything else is refused
with one line (``ConfigError``) before any request.

    a = load_attachment("chart.png")           # from a path
    a = load_attachment(fig)                   # a matplotlib figure, a PIL image, a DataFrame, bytes
    a.kind, a.mime, a.size, a.sha256[:12]      # "image", "image/jpeg", 48213, "3f9a..."

The cache key, the run log and every saved file name an attachment by its ``sha256`` and ``name``, never by
its bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .mime import HEAD_BYTES, IMAGE_TYPES, sniff

PDF = "application/pdf"
TEXT = "text/plain"
AttachmentKind = Literal["image", "pdf", "text"]

# Suffixes a text attachment's fence names as its language; any valid UTF-8 file is text, these only label it.
_LANGUAGES = {
    ".py": "python", ".js": "javascript", ".ts": "typescript", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".md": "markdown", ".html": "html", ".css": "css", ".sql": "sql", ".sh": "bash", ".yaml": "yaml",
    ".yml": "yaml", ".toml": "toml", ".xml": "xml", ".r": "r", ".jl": "julia", ".rs": "rust", ".go": "go",
    ".c": "c", ".h": "c", ".cpp": "cpp", ".java": "java", ".ipynb": "json", ".tex": "latex", ".log": "",
    ".txt": "",
}
# A plain-text attachment past this is almost certainly a mistake (a data dump), and it would be sent whole to
# every member on every turn.
MAX_TEXT_BYTES = 2 << 20


@dataclass(frozen=True)
class Attachment:
    """One attachment: its name as shown (a basename, never a local path), its MIME type sniffed from the bytes,
    and the bytes. Equality and hashing go by ``sha256`` and ``name``, so a request that carries one stays cheap
    to compare and to key.

        Attachment.of(b"%PDF-1.7 ...", "paper.pdf").kind   # "pdf"
    """

    name: str
    mime: str
    data: bytes = field(repr=False, compare=False)
    sha256: str = ""

    @classmethod
    def of(cls, data: bytes, name: str) -> Attachment:
        """An attachment of ``data`` named ``name`` (a basename); ``ConfigError`` when it is no kind we send. Text
        with a byte-order mark (UTF-16 from Excel or PowerShell, UTF-8 with a BOM) is sent as plain UTF-8."""
        data = _without_bom(bytes(data))
        return cls(name=name, mime=mime_of(data, name), data=data, sha256=hashlib.sha256(data).hexdigest())

    @property
    def kind(self) -> AttachmentKind:
        if self.mime == PDF:
            return "pdf"
        return "image" if self.mime in IMAGE_TYPES else "text"

    @property
    def binary(self) -> bool:
        """An image or a PDF: a part of its own on the wire (a text file is part of the prompt's text)."""
        return self.kind != "text"

    @property
    def size(self) -> int:
        return len(self.data)

    @functools.cached_property
    def base64(self) -> str:
        """The bytes in standard base64 with padding (RFC 4648 §4), as every provider takes them, whole: made once,
        on first use, for what needs the whole string (a batch's request file). A live request never asks for it:
        it encodes the bytes a chunk at a time as it sends them (``providers/_body.py``), so a large file is not
        held a second time, 4/3 its size, for as long as the attachment lives."""
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        """``data:<mime>;base64,<data>``: OpenAI's and OpenRouter's form (and an ``<img src>``)."""
        return f"data:{self.mime};base64,{self.base64}"

    def text(self) -> str:
        """A text attachment's content, verbatim."""
        return self.data.decode("utf-8")

    def fenced(self) -> str:
        """A text attachment as it goes into the prompt: its name, then its content in a fence longer than any
        backtick run inside it (so the file cannot close the fence early)."""
        content = self.text()
        longest = max((len(run) for run in re.findall(r"`+", content)), default=0)
        fence = "`" * max(3, longest + 1)
        language = _LANGUAGES.get(Path(self.name).suffix.lower(), "")
        return f"{self.name}:\n{fence}{language}\n{content.rstrip(chr(10))}\n{fence}"

    def describe(self) -> str:
        """``chart.png (image/jpeg, 48 KB)``: how a line or a view names it."""
        return f"{self.name} ({self.mime}, {human_size(self.size)})"


def human_size(size: int) -> str:
    """``48213`` -> ``"47 KB"``; one decimal under 10 MB (``"3.2 MB"``)."""
    if size < 1024:
        return f"{size} B"
    if size < 1 << 20:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1 << 20):.1f} MB"


# Byte-order marks of text, longest first (UTF-32's LE mark begins with UTF-16's).
_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def _without_bom(data: bytes) -> bytes:
    """Text that starts with a byte-order mark, as UTF-8 without it; anything else (or a BOM on bytes that are no
    such text) unchanged."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec).encode("utf-8")
            except UnicodeDecodeError:
                return data
    return data


def mime_of(data: bytes, name: str) -> str:
    """The MIME type an attachment is sent as, from its bytes; ``ConfigError`` for anything we cannot send."""
    mime = sniff(data[:HEAD_BYTES])
    if mime in IMAGE_TYPES or mime == PDF:
        return mime
    if mime is None and _is_text(data):
        if len(data) > MAX_TEXT_BYTES:
            raise ConfigError(f"attachment {name}: {human_size(len(data))} of text is over the "
                              f"{human_size(MAX_TEXT_BYTES)} a text attachment may have; attach an excerpt")
        return TEXT
    if mime is not None and mime.startswith("video/"):
        raise ConfigError(f"attachment {name}: a video ({mime}); ask about a video with "
                          "%%video --understand FILE (it samples frames and fuses the answers)")
    article = "an" if mime and mime[0] in "aeiou" else "a"
    what = f"{article} {mime} file" if mime else "not an image, a PDF or UTF-8 text"
    raise ConfigError(f"attachment {name}: {what}; attach PNG, JPEG, WebP, GIF, PDF or a text file "
                      "(code, CSV, JSON, Markdown, logs)")


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def load_attachment(source: Any, name: str | None = None) -> Attachment:
    """An ``Attachment`` from a path (``str`` or ``Path``), bytes, a PIL image, a matplotlib figure or a pandas
    DataFrame (sent as a CSV table). ``ConfigError`` with one line for a missing or unreadable file and for a
    type we cannot send.

        load_attachment("notes.py"); load_attachment(df, "sales.csv"); load_attachment(png_bytes, "plot.png")
    """
    if isinstance(source, Attachment):
        return source
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise ConfigError(f"attachment {source[:80]}: a URL; download the file and attach its path "
                          "(nothing is fetched for you: the bytes sent must be the bytes you checked)")
    if isinstance(source, str | Path):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ConfigError(f"attachment {source}: no such file" + (" (a folder)" if path.is_dir() else ""))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"attachment {source}: cannot read it ({exc.strerror or type(exc).__name__})") from None
        return Attachment.of(data, name or path.name)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return Attachment.of(data, name or _default_name(data))
    kind = type(source).__module__.split(".", 1)[0]
    if kind == "PIL" and hasattr(source, "save"):
        buffer = io.BytesIO()
        source.save(buffer, format="PNG")
        return Attachment.of(buffer.getvalue(), name or "image.png")
    if kind == "matplotlib" and hasattr(source, "savefig"):
        buffer = io.BytesIO()
        source.savefig(buffer, format="png", bbox_inches="tight")
        return Attachment.of(buffer.getvalue(), name or "figure.png")
    if kind == "pandas" and hasattr(source, "to_csv"):
        return Attachment.of(source.to_csv(index=True).encode("utf-8"), name or "table.csv")
    raise ConfigError(f"cannot attach a {type(source).__name__}: attach a file path, bytes, a PIL image, "
                      "a matplotlib figure or a pandas DataFrame")


def _default_name(data: bytes) -> str:
    mime = sniff(data[:HEAD_BYTES])
    suffix = {"image/jpeg": "jpg", "video/quicktime": "mov"}.get(mime or "", (mime or "/txt").split("/")[1])
    return f"attachment.{suffix}"


def load_attachments(sources: Any) -> tuple[Attachment, ...]:
    """``load_attachment`` for each of ``sources`` (one source, or a list of them; None: none)."""
    if sources is None:
        return ()
    if isinstance(sources, str | Path | bytes | bytearray | Attachment) or not hasattr(sources, "__iter__"):
        sources = [sources]
    elif type(sources).__module__.split(".", 1)[0] == "pandas":
        sources = [sources]  # a DataFrame iterates over its columns: it is one attachment
    return tuple(load_attachment(s) for s in sources)


def with_text_files(prompt: str, attachments: tuple[Attachment, ...]) -> str:
    """The prompt followed by each text attachment, fenced and named (shared/reference/attachments.md §6)."""
    texts = [a.fenced() for a in attachments if not a.binary]
    return "\n\n".join([prompt, *texts]) if texts else prompt


__all__ = ["MAX_TEXT_BYTES", "PDF", "TEXT", "Attachment", "AttachmentKind", "human_size", "load_attachment",
           "load_attachments", "mime_of", "with_text_files"]
