"""Secrets never reach a log line."""

from __future__ import annotations

import io
import json
import logging

import jwt

from switchyard.logs import configure_logging, mask_secrets

KEY = "sy_ab12cd34ef_" + "0123456789abcdef" * 3
STREAM_TOKEN = "sst_" + "fedcba9876543210" * 3


def test_keys_tokens_and_bearer_credentials_are_masked() -> None:
    token = jwt.encode({"sub": "u"}, "s" * 32, algorithm="HS256")
    text = f"key {KEY} stream {STREAM_TOKEN} jwt {token} header Bearer abc.def"
    masked = mask_secrets(text)
    assert KEY not in masked and STREAM_TOKEN not in masked and token not in masked
    assert "sy_ab12cd34ef_***" in masked  # the public id stays, for the reader
    assert "sst_***" in masked and "<token>" in masked and "Bearer ***" in masked


def test_configured_logging_masks_every_record() -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("test")
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        logging.getLogger("any.library").warning("refused %s", KEY)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    record = json.loads(stream.getvalue())
    assert KEY not in record["message"]
    assert record["message"] == "refused sy_ab12cd34ef_***"
