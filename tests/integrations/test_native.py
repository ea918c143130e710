"""The native format as a registered parser."""

from __future__ import annotations

import pytest

from integrations.sources import native
from integrations.testing import assert_detect_conformance, assert_parser_conformance
from tests.helpers import finding


def test_native_batch_parses_and_conforms() -> None:
    document = {"findings": [finding(source_id="a-1"), finding(source_id="a-2", severity=72)]}
    findings = assert_parser_conformance(native, document, expect_source=None)
    assert [f.source_id for f in findings] == ["a-1", "a-2"]
    assert findings[1].severity_label == "high"
    assert findings[0].raw == document["findings"][0]


def test_native_detect() -> None:
    assert_detect_conformance(native, positives=[{"findings": []}, {"findings": [finding()]}])
    assert not native.detect({"findings": [], "extra": 1})


def test_first_invalid_item_is_named() -> None:
    with pytest.raises(ValueError, match=r"findings\[1\]: severity: .*between 0 and 100"):
        native.parse({"findings": [finding(), finding(severity=400)]})
    with pytest.raises(ValueError, match=r"findings\[0\]: must be an object"):
        native.parse({"findings": ["x"]})
    with pytest.raises(ValueError, match="not a native batch"):
        native.parse([finding()])
