"""Decoding and admission: every bad-input kind gets its named reason, good input passes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.ingest import (
    Admission,
    Decoder,
    ParsedMessage,
    RawMessage,
    Reason,
    Rejection,
    Telemetry,
)

NOW = 1_800_000_000.0


def raw(payload: object, device: str = "d1", channel: str = "telemetry") -> RawMessage:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawMessage(f"devices/{device}/{channel}", body, NOW)


def decode(message: RawMessage) -> object:
    return Decoder("devices", 1024, 300).decode(message, NOW)


def test_valid_message_with_epoch_and_iso_timestamps_decodes() -> None:
    a = decode(raw({"ts": NOW - 5, "metrics": {"t": 1, "p": 2.5}, "seq": 3, "fw": "1.0"}))
    b = decode(raw({"ts": "2027-01-15T08:00:00Z", "metrics": {"t": 1}}))
    assert isinstance(a, Telemetry)
    assert a.metrics == {"t": 1.0, "p": 2.5}
    assert a.seq == 3
    assert isinstance(b, Telemetry)
    assert b.ts == 1_800_000_000.0


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json{", Reason.NOT_JSON),
        (b"\xff\xfe", Reason.NOT_JSON),
        ([1, 2], Reason.NOT_OBJECT),
        ({"metrics": {"t": 1}}, Reason.MISSING_TS),
        ({"ts": "yesterday", "metrics": {"t": 1}}, Reason.BAD_TS),
        ({"ts": NOW + 3600, "metrics": {"t": 1}}, Reason.FUTURE_TS),
        ({"ts": NOW}, Reason.MISSING_METRICS),
        ({"ts": NOW, "metrics": {}}, Reason.MISSING_METRICS),
        ({"ts": NOW, "metrics": {"t": "hot"}}, Reason.NON_NUMERIC_METRIC),
        ({"ts": NOW, "metrics": {"t": True}}, Reason.NON_NUMERIC_METRIC),
        ({"ts": NOW, "metrics": {"t": 1}, "seq": "7"}, Reason.BAD_FIELD),
        (b'{"ts": 1800000000, "metrics": {"t": NaN}}', Reason.NON_FINITE_METRIC),
        (b'{"ts": 1800000000, "metrics": {"t": Infinity}}', Reason.NON_FINITE_METRIC),
        (b'{"ts": 1800000000, "metrics": {"a": 1.5, "t": -Infinity}}', Reason.NON_FINITE_METRIC),
        ({"ts": NOW, "metrics": {"a": 1.5, "t": None}}, Reason.NON_NUMERIC_METRIC),
        (b"x" * 2000, Reason.TOO_LARGE),
    ],
)
def test_bad_message_is_rejected_with_its_reason(payload: object, reason: Reason) -> None:
    result = decode(raw(payload))
    assert isinstance(result, Rejection)
    assert result.reason is reason
    assert result.device_id == "d1"


def test_topic_outside_the_contract_is_rejected_and_events_are_ignored() -> None:
    bad = Decoder("devices", 1024, 300).decode(RawMessage("devices/x", b"{}", NOW), NOW)
    assert isinstance(bad, Rejection)
    assert bad.reason is Reason.BAD_TOPIC
    assert decode(raw({"code": 4}, channel="events")) is None


def test_configurable_prefix_with_levels_is_honoured() -> None:
    decoder = Decoder("acme/eu", 1024, 300)
    msg = RawMessage("acme/eu/d9/telemetry", b'{"ts": 1800000000, "metrics": {"a": 1}}', NOW)
    result = decoder.decode(msg, NOW)
    assert isinstance(result, Telemetry)
    assert result.device_id == "d9"


def telemetry(ts: float, device: str = "d1", seq: int | None = None) -> Telemetry:
    return Telemetry(device, ts, {"t": 1.0}, seq)


def test_older_and_repeated_messages_are_refused_per_device() -> None:
    admission = Admission({}, require_registration=False)
    out = admission.run(
        [telemetry(10), telemetry(20), telemetry(15), telemetry(20), telemetry(5, "d2")]
    )
    assert [t.ts for t in out.telemetry] == [10, 20, 5]
    assert [r.reason for r in out.rejections] == [Reason.OUT_OF_ORDER, Reason.DUPLICATE]
    assert set(out.new_devices) == {"d1", "d2"}


def test_unknown_device_is_refused_when_registration_is_required() -> None:
    from monitor.ingest import KnownDevice

    admission = Admission({"known": KnownDevice()}, require_registration=True)
    out = admission.run([telemetry(1, "known"), telemetry(1, "stranger")])
    assert [t.device_id for t in out.telemetry] == ["known"]
    assert out.rejections[0].reason is Reason.UNKNOWN_DEVICE


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()  # infinities and NaN too: devices send them
    | st.text(max_size=8)
    | st.sampled_from([NOW - 5, "2027-01-15T08:00:00Z", "1.5", NOW + 3600])
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_NUMBERS = st.floats(-1e9, 1e9) | st.integers(-(10**6), 10**6)
_BODIES = st.fixed_dictionaries(
    {
        # Mostly good timestamps, so that most bodies get as far as their metrics.
        "ts": st.sampled_from(
            [NOW - 5, int(NOW) - 1, "2027-01-15T08:00:00Z", "2027-01-15T08:00:00"] * 3
            + [NOW + 3600, None, True, "yesterday", float("nan"), -5, [NOW]]
        ),
        "metrics": st.dictionaries(st.text(max_size=4), _NUMBERS, max_size=4)
        | st.dictionaries(
            st.text(max_size=4),
            _NUMBERS | st.sampled_from([math.inf, -math.inf, math.nan, "1.5", True, None]),
            max_size=4,
        )
        | _JSON,
    },
    optional={"seq": _JSON_SCALARS, "fw": _JSON_SCALARS, "model": _JSON_SCALARS, "x": _JSON},
)


def _outcome(decoded: object) -> tuple[Any, ...]:
    if isinstance(decoded, Rejection):
        return (decoded.reason, decoded.detail, decoded.device_id, decoded.message)
    assert isinstance(decoded, Telemetry)
    return (decoded.device_id, decoded.ts, decoded.metrics, decoded.seq, decoded.fw, decoded.model)


@settings(max_examples=300, deadline=None)
@given(
    body=_BODIES | st.dictionaries(st.text(max_size=8), _JSON),
    overstated=st.integers(0, 400),
)
def test_a_parsed_body_is_judged_as_the_bytes_it_encodes(
    body: dict[str, Any], overstated: int
) -> None:
    # A replay hands the decoder the object a payload decodes to: whatever that object, the
    # outcome must be the one its bytes get (the limit is small so that size is judged too).
    payload = json.dumps(body).encode()
    decoder = Decoder("devices", 300, 300)
    parsed = ParsedMessage("devices/d1/telemetry", body, len(payload) + overstated, NOW)
    from_bytes = decoder.decode(RawMessage("devices/d1/telemetry", payload, NOW), NOW)
    from_body = decoder.decode(parsed, NOW)
    assert _outcome(from_body) == _outcome(from_bytes)
    if isinstance(from_body, Telemetry):
        assert from_body.source is parsed


def test_a_parsed_message_refused_later_is_parked_with_its_bytes() -> None:
    body = {"ts": NOW, "metrics": {"t": 1.5}}
    decoder = Decoder("devices", 1024, 300)
    decoded = [decoder.decode(ParsedMessage("devices/d1/telemetry", body, 99), NOW)] * 2
    assert all(isinstance(d, Telemetry) for d in decoded)
    out = Admission({}, require_registration=False).run([d for d in decoded if d is not None])
    [duplicate] = out.rejections
    assert duplicate.reason is Reason.DUPLICATE
    assert duplicate.message == RawMessage("devices/d1/telemetry", json.dumps(body).encode(), 0.0)
