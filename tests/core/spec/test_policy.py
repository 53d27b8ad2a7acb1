"""Tests for sloguard.core.spec.policy: the SRE-workbook burn-rate table and its scaling to other windows.

The oracle is the table itself (Google, "The Site Reliability Workbook", ch. 5, table 5-8):
page at burn 14.4 over 1 h and 5 m (2 % of a 30-day budget), page at 6 over 6 h and 30 m (5 %),
ticket at 1 over 3 d and 6 h (10 %).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sloguard.core.spec.policy import AlertRule, load_policy, scale_rules

H, M, D = 3600, 60, 86_400

WORKBOOK = (
    AlertRule("fast-burn", "page", 14.4, 1 * H, 5 * M),
    AlertRule("medium-burn", "page", 6.0, 6 * H, 30 * M),
    AlertRule("slow-burn", "ticket", 1.0, 3 * D, 6 * H),
)


def test_default_policy_is_the_workbook_table() -> None:
    rules, window = load_policy("sre-workbook")
    assert window == 30 * D
    assert rules == WORKBOOK


def test_budget_consumed_of_the_workbook_rules() -> None:
    rules, _ = load_policy("sre-workbook")
    assert [r.budget_consumed for r in rules] == pytest.approx([0.02, 0.05, 0.10], abs=1e-12)
    assert [r.windows for r in rules] == [("1h", "5m"), ("6h", "30m"), ("3d", "6h")]


def test_scaling_to_30d_keeps_the_table() -> None:
    assert scale_rules(WORKBOOK, 30 * D, 30 * D, 60) == WORKBOOK


def test_scaling_to_7d_by_hand() -> None:
    # windows x 7/30, rounded to whole minutes: 1h -> 14m, 5m -> 70s -> 1m, 6h -> 84m, 30m -> 7m,
    # 3d -> 16h48m, 6h -> 84m; burn rates unchanged
    scaled = scale_rules(WORKBOOK, 30 * D, 7 * D, 60)
    assert scaled == (
        AlertRule("fast-burn", "page", 14.4, 14 * M, 1 * M),
        AlertRule("medium-burn", "page", 6.0, 84 * M, 7 * M),
        AlertRule("slow-burn", "ticket", 1.0, 16 * H + 48 * M, 84 * M),
    )


def test_scaling_never_goes_below_one_step() -> None:
    scaled = scale_rules(WORKBOOK, 30 * D, 1 * D, 300)
    assert all(r.short_window_s >= 300 and r.long_window_s >= 300 for r in scaled)
    # 1h x 1/30 = 2 min -> below one 5-minute step -> one step
    assert scaled[0].long_window_s == 300 and scaled[0].short_window_s == 300


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.sampled_from([60, 300, 900]))
def test_scaled_windows_are_nearest_whole_steps(slo_window_steps: int, step: int) -> None:
    slo_window = slo_window_steps * step
    for orig, new in zip(WORKBOOK, scale_rules(WORKBOOK, 30 * D, slo_window, step), strict=True):
        assert (new.name, new.severity, new.burn_rate) == (orig.name, orig.severity, orig.burn_rate)
        pairs = ((orig.long_window_s, new.long_window_s), (orig.short_window_s, new.short_window_s))
        for before, after in pairs:
            exact = Fraction(before * slo_window, 30 * D)
            assert after % step == 0 and after >= step
            if exact >= step:
                assert abs(after - exact) <= Fraction(step, 2)
            else:
                assert after == step


def test_inline_policy_and_file_policy(tmp_path) -> None:
    inline = {"slo_window": "7d", "rules": [
        {"name": "fast", "severity": "page", "burn_rate": 10, "long_window": "1h", "short_window": "5m"}]}
    rules, window = load_policy(inline)
    assert window == 7 * D
    assert rules == (AlertRule("fast", "page", 10.0, H, 5 * M),)

    file = tmp_path / "mine.yaml"
    file.write_text("slo_window: 28d\nrules:\n  - {name: x, severity: ticket, burn_rate: 2,"
                    " long_window: 1d, short_window: 2h}\n")
    rules, window = load_policy("mine.yaml", tmp_path)
    assert window == 28 * D
    assert rules == (AlertRule("x", "ticket", 2.0, D, 2 * H),)


def _rule(**over):
    r = {"name": "r", "severity": "page", "burn_rate": 2, "long_window": "1h", "short_window": "5m"}
    r.update(over)
    return r


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([_rule(severity="sms")], "rules[0].severity"),
        ([_rule(burn_rate=0)], "rules[0].burn_rate"),
        ([_rule(burn_rate=-1)], "rules[0].burn_rate"),
        ([_rule(burn_rate=True)], "rules[0].burn_rate"),
        ([_rule(burn_rate="fast")], "rules[0].burn_rate"),
        ([_rule(), _rule()], "rules[1].name"),
        ([_rule(short_window="1h")], "rules[0].short_window"),
        ([_rule(short_window="2h")], "rules[0].short_window"),
        ([_rule(long_window="soon")], "rules[0]"),
        ([{"name": "r", "severity": "page"}], "rules[0]"),
        (["fast"], "rules[0]"),
        ([], "rules"),
    ],
)
def test_bad_policies_name_the_field(rules, field: str) -> None:
    with pytest.raises(ValueError) as err:
        load_policy({"slo_window": "30d", "rules": rules})
    assert field in str(err.value)


def test_unknown_named_policy() -> None:
    with pytest.raises(ValueError, match="no-such-policy"):
        load_policy("no-such-policy")
