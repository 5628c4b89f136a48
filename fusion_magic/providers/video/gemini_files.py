"""Gemini's Files API, as the video protocols have always imported it: the module is now
``fusion_magic.providers.gemini_files`` (the chat protocol uploads large attachments through it too)."""

from ..gemini_files import (
    CHUNK_ATTEMPTS,
    CHUNK_BYTES,
    CHUNK_RETRY_DELAY_S,
    UPLOAD_TIMEOUT,
    api_headers,
    delete_file,
    get_file,
    session_headers,
    upload_file,
    wait_active,
)

__all__ = ["CHUNK_ATTEMPTS", "CHUNK_BYTES", "CHUNK_RETRY_DELAY_S", "UPLOAD_TIMEOUT", "api_headers", "delete_file",
           "get_file", "session_headers", "upload_file", "wait_active"]
