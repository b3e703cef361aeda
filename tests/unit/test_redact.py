"""Secrets never reach a log line, whichever library writes it and at whatever level."""

from __future__ import annotations

import io
import json
import logging

from seaice_tasks.redact import MASK, install_secret_filter, redact, secrets_from_env

ENV = {
    "EARTHDATA_TOKEN": "edl-token-0a1b2c",
    "EARTHDATA_USERNAME": "ice",
    "EARTHDATA_PASSWORD": "pw-9z8y7x",
    "SEAICE_STAC_TOKEN": "stac-token-5e6f",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4d3c",
    "SEAICE_LAKE_OPTIONS": json.dumps({"key": "AKIAPUBLICID", "secret": "opt-secret-77aa",
                                       "client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}),
    "HOME": "/root",
}


def test_secrets_are_the_secret_variables_and_secret_option_fields() -> None:
    found = set(secrets_from_env(ENV))
    assert {"edl-token-0a1b2c", "pw-9z8y7x", "stac-token-5e6f", "aws-secret-4d3c", "opt-secret-77aa"} <= found
    assert "aWNlOnB3LTl6OHk3eA==" in found  # the basic-auth header form of ice:pw-9z8y7x
    assert "AKIAPUBLICID" not in found and "/root" not in found  # an access key id and the rest are not secret


def test_a_handler_with_the_filter_masks_every_level_and_traceback() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("seaice-test-redact")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        install_secret_filter([handler], ENV)
        logger.debug("GET https://x/search Headers: {'Authorization': 'Bearer %s'}", "anything-at-all")
        logger.info("basic %s", "Basic aWNlOnB3LTl6OHk3eA==")
        logger.warning("option %s", ENV["SEAICE_LAKE_OPTIONS"])
        try:
            raise RuntimeError("failed with aws-secret-4d3c")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    for secret in ("anything-at-all", "aWNlOnB3LTl6OHk3eA==", "opt-secret-77aa", "aws-secret-4d3c"):
        assert secret not in text
    assert text.count(MASK) >= 4 and "RuntimeError" in text


def test_redact_leaves_ordinary_text_alone() -> None:
    assert redact("fetched 3 granules of 2019-11-04", ["edl-token-0a1b2c"]) == "fetched 3 granules of 2019-11-04"
